//===- PipelineTest.cpp - pipeline bundles, groups, send and recv ---------===//
#include "llmrt/Comm.h"
#include "llmrt/Executor.h"
#include "llmrt/PipeLinks.h"
#include "llmrt/Program.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <unistd.h>

using namespace llmrt;

namespace {

/// A valid one-buffer program of stage `stage` whose metadata holds
/// `extra` JSON members (`stage` < 0: no "stage" and "pp").
ProgramDesc stageProgram(int stage, int pp, const std::string &extra = "") {
  ProgramDesc p;
  p.metadata = "{\"config\": {\"batch\": 1}";
  if (stage >= 0)
    p.metadata += ", \"stage\": " + std::to_string(stage) +
                  ", \"pp\": " + std::to_string(pp);
  p.metadata += extra + "}";
  p.arenaBytes = 64;
  p.buffers = {{"x" + std::to_string(stage), BufferRole::Temp, ElemType::F32, {4}, 0, 16}};
  Instruction gelu;
  gelu.opcode = static_cast<uint16_t>(Opcode::GeluFwd);
  gelu.operands = {0, 0};
  gelu.ints = {4};
  p.functions = {{"eval", {gelu}}};
  return p;
}

/// A bundle of `pp` stages under plan tp x dp x pp (program 0 carries the
/// plan).
std::vector<uint8_t> bundle(int pp, int tp = 1, int dp = 1) {
  std::vector<std::vector<uint8_t>> stages;
  for (int s = 0; s < pp; ++s)
    stages.push_back(writeProgram(stageProgram(
        s, pp,
        ", \"world\": " + std::to_string(tp * dp * pp) + ", \"tp\": " +
            std::to_string(tp) + ", \"dp\": " + std::to_string(dp))));
  return writeBundle(stages);
}

std::string message(const absl::Status &s) {
  return s.ok() ? "<ok>" : std::string(s.message());
}

template <typename T> std::string message(const absl::StatusOr<T> &s) {
  return message(s.status());
}

void putU64(std::vector<uint8_t> &b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

} // namespace

TEST(Bundle, RoundTripAndStageOfRank) {
  std::vector<uint8_t> b = bundle(3, /*tp=*/2, /*dp=*/2);
  // The layout of ProgramFormat.h, byte for byte.
  ASSERT_TRUE(isBundle(b));
  EXPECT_EQ(std::string(reinterpret_cast<const char *>(b.data()), 8),
            std::string("LLMPIPE\0", 8));
  EXPECT_EQ(b[8], 3);
  EXPECT_EQ(b[9] | b[10] | b[11], 0);
  auto split = splitBundle(b, "exe");
  ASSERT_TRUE(split.ok()) << split.status();
  ASSERT_EQ(split->size(), 3u);
  uint64_t len0 = 0;
  for (int i = 0; i < 8; ++i)
    len0 |= uint64_t(b[12 + i]) << (8 * i);
  EXPECT_EQ(len0, (*split)[0].size());
  EXPECT_EQ((*split)[0].data(), b.data() + 20);

  for (int s = 0; s < 3; ++s) {
    auto p = parseEmbedded(b, "exe", s);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->buffers[0].name, "x" + std::to_string(s));
  }
  auto all = parseEmbeddedAll(b, "exe");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 3u);

  // rank = tp_rank + tp dp_rank + tp dp pp_rank: stage = rank / (tp dp).
  for (int rank = 0; rank < 12; ++rank) {
    auto s = stageOfRank(b, "exe", rank, 12);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(*s, rank / 4) << "rank " << rank;
  }
}

TEST(Bundle, SingleProgramIsStageZero) {
  std::vector<uint8_t> one = writeProgram(stageProgram(-1, 1));
  EXPECT_FALSE(isBundle(one));
  auto s = stageOfRank(one, "exe", 3, 4);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(*s, 0);
  EXPECT_TRUE(parseEmbedded(one, "exe", 0).ok());
  EXPECT_EQ(message(parseEmbedded(one, "exe", 1)),
            "exe: stage 1 requested, but the executable holds one program, "
            "not a pipeline bundle");
  // A pipeline plan must come as a bundle.
  std::vector<uint8_t> pp2 = writeProgram(stageProgram(-1, 1, ", \"pp\": 2"));
  EXPECT_EQ(message(stageOfRank(pp2, "exe", 0, 2)),
            "exe: the program's metadata says pp 2 but the executable holds "
            "one program, not a pipeline bundle");
  auto all = parseEmbeddedAll(one, "exe");
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u);
}

TEST(Bundle, FramingErrors) {
  std::vector<uint8_t> good = bundle(2);
  auto bad = good;
  bad[3] = 'X';
  EXPECT_EQ(message(splitBundle(bad, "exe")),
            "exe: offset 0: bad magic (not a pipeline bundle)");
  // Not a bundle and not a program either: the program's own error.
  EXPECT_EQ(message(parseEmbedded(bad, "exe", 0)),
            "exe: offset 0: bad magic (not an llm program)");

  bad = good;
  bad[8] = 1;
  EXPECT_EQ(message(splitBundle(bad, "exe")),
            "exe: offset 8: a pipeline bundle of 1 stage program(s), needs at "
            "least 2");
  bad.resize(10);
  EXPECT_EQ(message(splitBundle(bad, "exe")),
            "exe: pipeline bundle truncated in its header");

  // Truncated inside the last stage, and before a declared stage.
  bad = good;
  bad.pop_back();
  EXPECT_NE(message(splitBundle(bad, "exe")).find(
                "stage 1's program is"),
            std::string::npos);
  EXPECT_NE(message(splitBundle(bad, "exe")).find("(truncated bundle)"),
            std::string::npos);
  bad = good;
  bad[8] = 3;
  EXPECT_NE(message(splitBundle(bad, "exe")).find(
                "pipeline bundle truncated before stage 2's length (3 stages "
                "declared)"),
            std::string::npos);
  // A length past the end (and one that would overflow an addition).
  bad = good;
  putU64(bad, 12, ~uint64_t(0));
  EXPECT_NE(message(splitBundle(bad, "exe")).find(
                "exe: offset 12: stage 0's program is 18446744073709551615 bytes"),
            std::string::npos);
  bad = good;
  bad.push_back(0);
  EXPECT_NE(message(splitBundle(bad, "exe")).find(
                "1 trailing bytes after the last stage program"),
            std::string::npos);
  // A stage whose program is corrupt names the stage.
  bad = good;
  bad.back() ^= 1;
  EXPECT_EQ(message(parseEmbedded(bad, "exe", 1)),
            "exe: stage 1: checksum mismatch (corrupt program)");
}

TEST(Bundle, StageErrors) {
  std::vector<uint8_t> b = bundle(2);
  EXPECT_EQ(message(parseEmbedded(b, "exe", 2)),
            "exe: stage 2 requested, but the pipeline bundle holds 2 stage "
            "programs");
  EXPECT_EQ(message(parseEmbedded(b, "exe", -1)),
            "exe: stage -1 requested, but the pipeline bundle holds 2 stage "
            "programs");

  // Stage 1's program says it is stage 0; then says nothing.
  std::string plan = ", \"world\": 2, \"tp\": 1, \"dp\": 1";
  std::vector<uint8_t> swapped = writeBundle(
      {writeProgram(stageProgram(0, 2, plan)), writeProgram(stageProgram(0, 2))});
  EXPECT_TRUE(parseEmbedded(swapped, "exe", 0).ok());
  EXPECT_EQ(message(parseEmbedded(swapped, "exe", 1)),
            "exe: stage 1: the program's metadata says stage 0 of pp 2, "
            "expected stage 1 of pp 2");
  EXPECT_FALSE(parseEmbeddedAll(swapped, "exe").ok());
  std::vector<uint8_t> unnamed = writeBundle(
      {writeProgram(stageProgram(0, 2, plan)), writeProgram(stageProgram(-1, 2))});
  EXPECT_EQ(message(parseEmbedded(unnamed, "exe", 1)),
            "exe: stage 1: the program's metadata says stage (none) of pp "
            "(none), expected stage 1 of pp 2");
  std::vector<uint8_t> wrongPp = writeBundle(
      {writeProgram(stageProgram(0, 2, plan)), writeProgram(stageProgram(1, 3))});
  EXPECT_EQ(message(parseEmbedded(wrongPp, "exe", 1)),
            "exe: stage 1: the program's metadata says stage 1 of pp 3, "
            "expected stage 1 of pp 2");
}

TEST(Bundle, StageOfRankErrors) {
  std::vector<uint8_t> b = bundle(2, /*tp=*/2);
  // The world the executable was compiled for (every rank finds it).
  auto s = stageOfRank(b, "exe", 0, 2);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(message(s), "this executable was compiled for 4 rank(s) but is "
                        "running in a world of 2; recompile with --devices 2");
  EXPECT_EQ(message(stageOfRank(b, "exe", 4, 4)),
            "exe: rank 4 is outside the world of 4");

  // Program 0's plan disagrees with the bundle or with itself.
  std::vector<uint8_t> three = writeBundle(
      {writeProgram(stageProgram(0, 3, ", \"world\": 3")),
       writeProgram(stageProgram(1, 3))});
  EXPECT_EQ(message(stageOfRank(three, "exe", 0, 3)),
            "exe: stage 0: metadata says pp 3 but the bundle holds 2 stage "
            "programs");
  std::vector<uint8_t> world = writeBundle(
      {writeProgram(stageProgram(0, 2, ", \"world\": 3, \"tp\": 1")),
       writeProgram(stageProgram(1, 2))});
  EXPECT_EQ(message(stageOfRank(world, "exe", 0, 3)),
            "exe: stage 0: metadata's plan tp 1 x dp 1 x pp 2 is not its world "
            "of 3");
  std::vector<uint8_t> notInt = writeBundle(
      {writeProgram(stageProgram(0, 2, ", \"world\": \"2\"")),
       writeProgram(stageProgram(1, 2))});
  EXPECT_EQ(message(stageOfRank(notInt, "exe", 0, 2)),
            "exe: stage 0: metadata \"world\" is not an integer");
}

TEST(Bundle, LoadsFromAnExecutableTrailer) {
  // [runtime bytes][bundle][u64 offset][u64 length]["LLMRTEXE"], as
  // llm-compile writes it.
  std::vector<uint8_t> b = bundle(2);
  char path[] = "/tmp/llmrt-bundle-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  {
    std::ofstream f(path, std::ios::binary);
    std::string runtime = "#!not really a runtime\n";
    f << runtime;
    f.write(reinterpret_cast<const char *>(b.data()), b.size());
    std::vector<uint8_t> trailer(16);
    putU64(trailer, 0, runtime.size());
    putU64(trailer, 8, b.size());
    f.write(reinterpret_cast<const char *>(trailer.data()), 16);
    f.write(kExeTrailerMagic, 8);
  }
  auto p1 = loadEmbeddedProgram(path, 1);
  ASSERT_TRUE(p1.ok()) << p1.status();
  EXPECT_EQ(p1->buffers[0].name, "x1");
  EXPECT_EQ(message(loadEmbeddedProgram(path, 2)),
            std::string(path) + ": stage 2 requested, but the pipeline bundle "
                                "holds 2 stage programs");
  std::remove(path);
}

namespace {
/// A program with one send or recv of 4 floats.
ProgramDesc p2pProgram(Opcode op, std::vector<int64_t> ints) {
  ProgramDesc p = stageProgram(0, 2);
  Instruction i;
  i.opcode = static_cast<uint16_t>(op);
  i.operands = {0};
  i.ints = std::move(ints);
  p.functions[0].instructions.push_back(i);
  return p;
}

std::string parseError(const ProgramDesc &p) {
  return message(parseProgram(writeProgram(p), "prog"));
}
} // namespace

TEST(PointToPoint, Validation) {
  for (Opcode op : {Opcode::Send, Opcode::Recv}) {
    const char *name = op == Opcode::Send ? "send" : "recv";
    EXPECT_EQ(opcodeInfoByName(name)->opcode, op);
    EXPECT_EQ(parseError(p2pProgram(op, {4, 1, 0})), "<ok>");
    EXPECT_EQ(parseError(p2pProgram(op, {4, -1, 3})), "<ok>");
    EXPECT_EQ(parseError(p2pProgram(op, {4, -3, 32767})), "<ok>");
    // The loader's message names the function, instruction and opcode.
    auto error = [&](std::vector<int64_t> ints) {
      std::string m = parseError(p2pProgram(op, std::move(ints)));
      std::string where = std::string("function 'eval' instruction #1 (") + name + ")";
      size_t at = m.find(where);
      return at == std::string::npos ? m : m.substr(at + where.size());
    };
    EXPECT_EQ(error({4, 0, 0}), ": peer 0 (a stage sends to itself)");
    EXPECT_EQ(error({4, 1, 32768}), ": tag 32768 exceeds 32767");
    EXPECT_EQ(error({4, 1, -1}), ": negative parameter -1");
    EXPECT_EQ(error({-4, 1, 0}), ": negative parameter -4");
    EXPECT_EQ(error({5, 1, 0}), ": operand 0 ('x0') holds 4 elements, needs 5");
    EXPECT_EQ(error({4, 1}), ": wrong number of operands or parameters");
  }
  // Collectives may name the pipeline and tied groups (3, 4), no other.
  ProgramDesc p = stageProgram(0, 2);
  Instruction ar;
  ar.opcode = static_cast<uint16_t>(Opcode::AllReduce);
  ar.operands = {0, 0};
  ar.ints = {4, 4, 0};
  p.functions[0].instructions.push_back(ar);
  EXPECT_EQ(parseError(p), "<ok>");
  p.functions[0].instructions.back().ints = {4, 5, 0};
  EXPECT_NE(parseError(p).find("bad group or reduction"), std::string::npos);
}

TEST(PointToPoint, PeersOutsideThePipelineAreRefused) {
  ProgramDesc p = p2pProgram(Opcode::Send, {4, 1, 0});
  EXPECT_EQ(message(checkPipelinePeers(p, 0, 2)), "<ok>");
  EXPECT_EQ(message(checkPipelinePeers(p, 1, 2)),
            "function 'eval' instruction #1 (send): peer +1 of stage 1 is "
            "outside the pipeline's 2 stage(s)");
  p = p2pProgram(Opcode::Recv, {4, -1, 1});
  EXPECT_EQ(message(checkPipelinePeers(p, 1, 2)), "<ok>");
  EXPECT_EQ(message(checkPipelinePeers(p, 0, 2)),
            "function 'eval' instruction #1 (recv): peer -1 of stage 0 is "
            "outside the pipeline's 2 stage(s)");
  // One rank: the CPU executor refuses the program before it runs.
  std::unique_ptr<Communicator> comm = createLocalCommunicator();
  ASSERT_TRUE(comm->setupGroups(1, 1, 1).ok());
  auto ex = createCpuExecutor(p2pProgram(Opcode::Send, {4, 1, 0}), *comm, 1);
  EXPECT_EQ(message(ex), "function 'eval' instruction #1 (send): peer +1 of "
                         "stage 0 is outside the pipeline's 1 stage(s)");
  EXPECT_EQ(communicationBytes(p.functions[0].instructions[1]), 16);
  EXPECT_EQ(communicationBytes(p.functions[0].instructions[0]), -1);
}

namespace {
/// The group arithmetic of rank `rank` in a tp x dp x pp world, without MPI.
class FakeCommunicator final : public Communicator {
public:
  FakeCommunicator(int rank, int tp, int dp, int pp) {
    rank_ = rank, tp_ = tp, dp_ = dp, pp_ = pp, worldSize_ = tp * dp * pp;
  }
  absl::Status setupGroups(int, int, int) override { return absl::OkStatus(); }
  void allReduce(float *, int64_t, Group, Reduction) override {}
  void allReduce(double *, int64_t, Group, Reduction) override {}
  void reduceScatter(const float *, float *, int64_t, Group, Reduction) override {}
  void allGather(float *, int64_t, Group) override {}
  void gatherToRoot(const float *, float *, int64_t, Group) override {}
  void barrier() override {}
  void broadcast(void *, int64_t, Group, int) override {}
  void send(const float *, int64_t, int, int) override {}
  void recv(float *, int64_t, int, int) override {}
  [[noreturn]] void abort(int code) override { std::exit(code); }
};
} // namespace

TEST(Groups, RankOrderTpThenDpThenPp) {
  // Megatron's order: rank = tp_rank + tp dp_rank + tp dp pp_rank.
  const int tp = 2, dp = 3, pp = 4;
  for (int tr = 0; tr < tp; ++tr)
    for (int dr = 0; dr < dp; ++dr)
      for (int s = 0; s < pp; ++s) {
        int rank = tr + tp * dr + tp * dp * s;
        FakeCommunicator c(rank, tp, dp, pp);
        SCOPED_TRACE(rank);
        EXPECT_EQ(c.groupRank(Group::TP), tr);
        EXPECT_EQ(c.groupRank(Group::DP), dr);
        EXPECT_EQ(c.groupRank(Group::PP), s);
        EXPECT_EQ(c.groupSize(Group::TP), tp);
        EXPECT_EQ(c.groupSize(Group::DP), dp);
        EXPECT_EQ(c.groupSize(Group::PP), pp);
        // The tied embedding's group: the first and the last stage.
        bool end = s == 0 || s == pp - 1;
        EXPECT_EQ(c.groupSize(Group::Tied), end ? 2 : 1);
        EXPECT_EQ(c.groupRank(Group::Tied), s == pp - 1 ? 1 : 0);
      }
  // Without a pipeline the tied group is this rank alone.
  FakeCommunicator one(3, 2, 2, 1);
  EXPECT_EQ(one.groupSize(Group::Tied), 1);
  EXPECT_EQ(one.groupRank(Group::Tied), 0);
  EXPECT_EQ(one.groupRank(Group::PP), 0);
  EXPECT_EQ(one.groupRank(Group::DP), 1);
  // The one-rank communicator refuses a plan of more ranks.
  std::unique_ptr<Communicator> local = createLocalCommunicator();
  EXPECT_EQ(message(local->setupGroups(1, 1, 2)),
            "a plan of more than one rank needs the MPI runner");
}

namespace {
Instruction p2p(Opcode op, int64_t n, int64_t peer, int64_t tag) {
  Instruction i;
  i.opcode = static_cast<uint16_t>(op);
  i.ints = {n, peer, tag, 0};
  return i;
}
ProgramDesc stageOf(std::vector<Instruction> train) {
  ProgramDesc p;
  p.functions.push_back({"train", std::move(train)});
  return p;
}
} // namespace

TEST(PipeLinks, OneLinkPerKindAndDirection) {
  EXPECT_TRUE(pipelineLinks(1).empty());
  // p = 2: activations 0->1 and the interleaved wrap 1->0; gradients 1->0
  // and the wrap 0->1: four links, two of them per ordered pair.
  std::vector<PipeLink> two = pipelineLinks(2);
  ASSERT_EQ(two.size(), 4u);
  auto is = [](const PipeLink &l, int from, int to, bool gradient) {
    return l.from == from && l.to == to && l.gradient == gradient;
  };
  EXPECT_TRUE(is(two[0], 0, 1, false));
  EXPECT_TRUE(is(two[1], 1, 0, false));
  EXPECT_TRUE(is(two[2], 1, 0, true));
  EXPECT_TRUE(is(two[3], 0, 1, true));
  // A send and its receive name the same link from their two stages.
  const int p = 4;
  for (int s = 0; s < p; ++s) {
    int next = (s + 1) % p, toNext = next - s;
    auto link = [&](Opcode op, int stage, int peer, int tag) {
      absl::StatusOr<int> l = linkOf(p2p(op, 4, peer, tag), stage, p, "train", 0);
      EXPECT_TRUE(l.ok()) << l.status().message();
      return l.ok() ? *l : -1;
    };
    EXPECT_EQ(link(Opcode::Send, s, toNext, 2), s);
    EXPECT_EQ(link(Opcode::Recv, next, s - next, 2), s);
    EXPECT_EQ(link(Opcode::Send, next, s - next, 3), p + s);
    EXPECT_EQ(link(Opcode::RecvStart, s, toNext, 3), p + s);
    EXPECT_EQ(pipelineLinks(p)[p + s].from, next);
  }
  // An activation sent backwards has no link.
  EXPECT_EQ(message(linkOf(p2p(Opcode::Send, 4, -1, 0), 2, 4, "train", 7)),
            "function 'train' instruction #7 (send): an activation (even tag "
            "0) sent to stage 1 (from stage 2): on devices activations travel "
            "to the next stage and gradients to the previous one");
  EXPECT_EQ(message(linkOf(p2p(Opcode::Recv, 4, 2, 1), 0, 4, "train", 3)),
            "function 'train' instruction #3 (recv): a gradient (odd tag 1) "
            "received from stage 2 (from stage 0): on devices activations "
            "travel to the next stage and gradients to the previous one");
  EXPECT_EQ(message(linkOf(p2p(Opcode::Send, 4, 1, 0), 1, 2, "train", 0)),
            "function 'train' instruction #0 (send): peer +1 of stage 1 is "
            "outside the pipeline's 2 stage(s)");
}

TEST(PipeLinks, SendsAndReceivesPairInOrder) {
  // Two stages, two chunks each (interleaved): activations of chunks 0 and 1
  // go 0 -> 1, chunk 1's output wraps 1 -> 0 for chunk 2; gradients back.
  std::vector<Instruction> s0 = {
      p2p(Opcode::Send, 8, 1, 0), p2p(Opcode::Send, 8, 1, 0),
      p2p(Opcode::RecvStart, 8, 1, 2), p2p(Opcode::RecvWait, 8, 1, 2),
      p2p(Opcode::Send, 8, 1, 5), // the wrap's gradient, 0 -> 1
      p2p(Opcode::Recv, 8, 1, 1)};
  std::vector<Instruction> s1 = {
      p2p(Opcode::RecvStart, 8, -1, 0), p2p(Opcode::RecvWait, 8, -1, 0),
      p2p(Opcode::Send, 8, -1, 2), // the wrap's activation, 1 -> 0
      p2p(Opcode::Recv, 8, -1, 0), p2p(Opcode::Recv, 8, -1, 5),
      p2p(Opcode::Send, 8, -1, 1)};
  std::vector<ProgramDesc> stages = {stageOf(s0), stageOf(s1)};
  EXPECT_EQ(message(checkLinkOrder(stages)), "<ok>");
  // The same messages in another order on one side: MPI's tags would pair
  // them, NCCL would not.
  std::vector<Instruction> swapped = s0;
  std::swap(swapped[4], swapped[5]);
  EXPECT_EQ(message(checkLinkOrder({stageOf(swapped), stageOf(s1)})), "<ok>")
      << "different links do not constrain each other";
  swapped = s1;
  swapped[3] = p2p(Opcode::Recv, 8, -1, 4);
  EXPECT_EQ(message(checkLinkOrder({stageOf(s0), stageOf(swapped)})),
            "function 'train': the activation link from stage 0 to stage 1: "
            "message 1 is sent as tag 0 (8 floats, instruction #1) but "
            "received as tag 4 (8 floats, instruction #3); NCCL pairs "
            "messages by their order");
  swapped = s1;
  swapped[3] = p2p(Opcode::Recv, 6, -1, 0);
  EXPECT_NE(message(checkLinkOrder({stageOf(s0), stageOf(swapped)}))
                .find("sent as tag 0 (8 floats, instruction #1) but received "
                      "as tag 0 (6 floats"),
            std::string::npos);
  swapped = s1;
  swapped.erase(swapped.begin() + 3);
  EXPECT_EQ(message(checkLinkOrder({stageOf(s0), stageOf(swapped)})),
            "function 'train': the activation link from stage 0 to stage 1: "
            "2 message(s) sent but 1 received");
  // With two stages a gradient sent to stage 1 takes the wrap's link: the
  // activation link then misses a message.
  swapped = s0;
  swapped[0] = p2p(Opcode::Send, 8, 1, 1);
  EXPECT_EQ(message(checkLinkOrder({stageOf(swapped), stageOf(s1)})),
            "function 'train': the activation link from stage 0 to stage 1: "
            "1 message(s) sent but 2 received");
  // Three stages: stage 1 sends an activation back to stage 0.
  std::vector<ProgramDesc> three = {stageOf({}), stageOf({p2p(Opcode::Send, 8, -1, 0)}),
                                    stageOf({})};
  EXPECT_EQ(message(checkLinkOrder(three)),
            "stage 1: function 'train' instruction #0 (send): an activation "
            "(even tag 0) sent to stage 0 (from stage 1): on devices "
            "activations travel to the next stage and gradients to the "
            "previous one");
}

TEST(DeferredCollectives, RunUntilTheirBytesAreTouched) {
  using R = std::pair<uintptr_t, uint64_t>;
  auto op = [](Opcode o) { return static_cast<uint16_t>(o); };
  // 0 reduce_scatter [0, 400) -> [400, 500)     (a ZeRO gradient share)
  // 1 linear         [1000, 2000)               (unrelated compute)
  // 2 all_reduce     [2000, 2100)               (tensor-parallel: needed next)
  // 3 add            [2000, 2100), [3000, 3100)
  // 4 all_gather     [4000, 4400)               (parameters for the next step)
  // 5 adamw          [450, 460) ...             (reads part of the share)
  // 6 linear         [399, 401)                 (touches nothing pending now)
  std::vector<uint16_t> ops = {op(Opcode::ReduceScatter), op(Opcode::LinearFwd),
                               op(Opcode::AllReduce),     op(Opcode::Add),
                               op(Opcode::AllGather),     op(Opcode::AdamW),
                               op(Opcode::LinearFwd)};
  std::vector<std::vector<R>> ranges = {{{0, 400}, {400, 100}},
                                        {{1000, 1000}},
                                        {{2000, 100}, {2000, 100}},
                                        {{2000, 100}, {3000, 100}},
                                        {{4000, 400}, {4000, 400}},
                                        {{450, 10}, {5000, 8}},
                                        {{399, 2}}};
  DeferredCollectives d = deferCollectives(ops, ranges, 4096, /*fence=*/false);
  EXPECT_EQ(d.slotOf, (std::vector<int>{4096, -1, -1, -1, 4098, -1, -1}));
  EXPECT_EQ(d.waitBefore[5], (std::vector<int>{4096}));
  for (size_t i : {0u, 1u, 2u, 3u, 4u, 6u})
    EXPECT_TRUE(d.waitBefore[i].empty()) << i;
  EXPECT_EQ(d.atEnd, (std::vector<int>{4098}));
  EXPECT_EQ(d.opcodeOf.size(), 3u);
  EXPECT_EQ(d.opcodeOf[4098 - 4096], op(Opcode::AllGather));
  // An empty range touches nothing; adjacent ranges do not overlap.
  DeferredCollectives e = deferCollectives(
      {op(Opcode::AllReduce), op(Opcode::Add), op(Opcode::Add)},
      {{{0, 64}}, {{64, 64}, {0, 0}}, {{63, 1}}}, 10, /*fence=*/false);
  EXPECT_EQ(e.slotOf, (std::vector<int>{10, -1, -1}));
  EXPECT_EQ(e.waitBefore[2], (std::vector<int>{10}));
  // An all-reduce copies its input (operand 0) to its output before it
  // starts: an instruction that then overwrites the input need not wait;
  // a reduce-scatter still reads its input.
  DeferredCollectives g = deferCollectives(
      {op(Opcode::AllReduce), op(Opcode::Add), op(Opcode::ReduceScatter),
       op(Opcode::Add), op(Opcode::Add)},
      {{{0, 64}, {64, 64}}, {{0, 64}}, {{200, 64}, {300, 32}}, {{64, 4}}, {{200, 4}}},
      10, /*fence=*/false);
  EXPECT_EQ(g.slotOf, (std::vector<int>{10, -1, 11, -1, -1}));
  EXPECT_TRUE(g.waitBefore[1].empty());
  EXPECT_EQ(g.waitBefore[3], (std::vector<int>{10}));
  EXPECT_EQ(g.waitBefore[4], (std::vector<int>{11}));
  // With the MPI fence, communication completes every deferred collective:
  // the reduce-scatter ends before the tensor-parallel all-reduce (2).
  DeferredCollectives f = deferCollectives(ops, ranges, 4096, /*fence=*/true);
  EXPECT_EQ(f.slotOf, (std::vector<int>{4096, -1, -1, -1, 4098, -1, -1}));
  EXPECT_EQ(f.waitBefore[2], (std::vector<int>{4096}));
  EXPECT_TRUE(f.waitBefore[5].empty());
  EXPECT_EQ(f.atEnd, (std::vector<int>{4098}));
}
