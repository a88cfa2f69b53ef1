//===- ArenaPackTest.cpp - the temporaries packed anew --------------------===//
#include "llmrt/ArenaPack.h"
#include "llmrt/Comm.h"

#include <gtest/gtest.h>

#include <random>

using namespace llmrt;

namespace {

Instruction inst(Opcode op, std::vector<uint32_t> operands) {
  Instruction i;
  i.opcode = static_cast<uint16_t>(op);
  i.operands = std::move(operands);
  return i;
}

BufferDesc buffer(BufferRole role, uint64_t offset, uint64_t bytes) {
  BufferDesc d;
  d.role = role;
  d.offset = offset;
  d.bytes = bytes;
  d.dims = {static_cast<int64_t>(bytes / 4)};
  return d;
}

std::vector<uint64_t> sizes(const ProgramDesc &p) {
  std::vector<uint64_t> s;
  for (const BufferDesc &b : p.buffers)
    s.push_back(b.bytes);
  return s;
}

/// The operand slots an instruction of these tests writes (bit k): the
/// last of gelu, add, sum_rows and linear_bwd_weight, a reduce-scatter's
/// result, a fused group's outputs (after its inputs). The rest read.
uint32_t writes(const Instruction &in) {
  const auto n = static_cast<uint32_t>(in.operands.size());
  switch (static_cast<Opcode>(in.opcode)) {
  case Opcode::GeluFwd:
  case Opcode::Add:
  case Opcode::SumRows:
  case Opcode::LinearBwdWeight:
    return 1u << (n - 1);
  case Opcode::ReduceScatter:
    return 2u;
  case Opcode::FusedElementwise:
    return ((1u << n) - 1) & ~((1u << in.ints[2]) - 1); // ints[2]: the inputs
  default:
    return 0;
  }
}

/// What each read sees: the program run twice (every function in order,
/// then again), each buffer reading and writing the first `need` bytes at
/// its offset, memory in blocks of the arena's alignment, each block
/// holding the (run, function, instruction, buffer, block) that last wrote
/// it. Reads come before the instruction's writes.
struct Seen {
  int run = -1, f = -1, i = -1;
  uint32_t b = 0;
  uint64_t block = 0;
  bool operator==(const Seen &o) const {
    return run == o.run && f == o.f && i == o.i && b == o.b && block == o.block;
  }
};
std::vector<std::vector<Seen>> run(const ProgramDesc &p, const std::vector<uint64_t> &offset,
                                   const std::vector<uint64_t> &need, uint64_t arenaBytes) {
  const uint64_t A = kArenaAlignment;
  std::vector<Seen> mem(arenaBytes / A + 1);
  std::vector<std::vector<Seen>> reads;
  for (int r = 0; r < 2; ++r)
    for (size_t f = 0; f < p.functions.size(); ++f)
      for (size_t i = 0; i < p.functions[f].instructions.size(); ++i) {
        const Instruction &in = p.functions[f].instructions[i];
        const uint32_t w = writes(in);
        for (uint32_t pass = 0; pass < 2; ++pass) // reads, then writes
          for (uint32_t k = 0; k < in.operands.size(); ++k) {
            if ((w >> k & 1u) != pass)
              continue;
            const uint32_t b = in.operands[k];
            const uint64_t blocks = (need[b] + A - 1) / A;
            std::vector<Seen> seen;
            for (uint64_t q = 0; q < blocks; ++q) {
              Seen &m = mem.at(offset[b] / A + q);
              if (pass == 0)
                seen.push_back(m);
              else
                m = Seen{r, static_cast<int>(f), static_cast<int>(i), b, q};
            }
            if (pass == 0)
              reads.push_back(std::move(seen));
          }
      }
  return reads;
}

/// What a layout must do, checked without the packer's reasoning: every
/// read sees what it saw in the compiler's layout (where that was written
/// at all: what nothing wrote may differ), each buffer taking its first
/// `need` bytes. The persistent buffers stay; every buffer lies inside the
/// arena, at the arena's alignment, its needed bytes inside the peak.
void expectSound(const ProgramDesc &p, const std::vector<uint64_t> &needs,
                 const ArenaLayout &l) {
  const size_t nb = p.buffers.size();
  ASSERT_EQ(l.offset.size(), nb);
  std::vector<uint64_t> need(needs);
  for (size_t b = 0; b < nb; ++b)
    need[b] = std::min(need[b], p.buffers[b].bytes);
  uint64_t persistentEnd = 0;
  for (const BufferDesc &b : p.buffers)
    if (b.role != BufferRole::Temp)
      persistentEnd = std::max(persistentEnd, b.offset + b.bytes);
  std::vector<uint64_t> old;
  for (size_t b = 0; b < nb; ++b) {
    old.push_back(p.buffers[b].offset);
    if (p.buffers[b].role != BufferRole::Temp)
      EXPECT_EQ(l.offset[b], p.buffers[b].offset) << "buffer " << b;
    EXPECT_LE(l.offset[b] + p.buffers[b].bytes, l.arenaBytes) << "buffer " << b;
    EXPECT_EQ(l.offset[b] % kArenaAlignment, 0u) << "buffer " << b;
    if (p.buffers[b].role == BufferRole::Temp && p.buffers[b].bytes > 0) {
      EXPECT_GE(l.offset[b], persistentEnd) << "buffer " << b;
      EXPECT_LE(l.offset[b] + need[b], l.peakBytes) << "buffer " << b;
    }
  }
  const auto before = run(p, old, need, p.arenaBytes);
  const auto after = run(p, l.offset, need, l.arenaBytes);
  ASSERT_EQ(before.size(), after.size());
  for (size_t e = 0; e < before.size(); ++e)
    for (size_t q = 0; q < before[e].size(); ++q)
      if (before[e][q].run >= 0 && !(before[e][q] == after[e][q])) {
        ADD_FAILURE() << "read " << e << " block " << q << " saw (run " << after[e][q].run
                      << ", function " << after[e][q].f << ", instruction " << after[e][q].i
                      << ", buffer " << after[e][q].b << "), not buffer " << before[e][q].b
                      << "'s write at instruction " << before[e][q].i;
        return;
      }
}

PackOptions anyway() {
  PackOptions o;
  o.evenIfLarger = true;
  return o;
}

/// One parameter P (4 KiB) and temporaries at their own offsets after it,
/// sizes in KiB.
ProgramDesc withTemps(std::vector<uint64_t> kib) {
  ProgramDesc p;
  p.buffers.push_back(buffer(BufferRole::Param, 0, 4096));
  uint64_t at = 4096;
  for (uint64_t k : kib) {
    p.buffers.push_back(buffer(BufferRole::Temp, at, k * 1024));
    at += k * 1024;
  }
  p.arenaBytes = at;
  return p;
}

} // namespace

TEST(ArenaPack, TemporariesShareWhatTimeSeparates) {
  // sum_rows writes 1; gelu: 1 -> 2, 2 -> 3, 3 -> 4: each temporary lives
  // two instructions, so 1 and 3 (and 2 and 4) can share bytes. The
  // compiler's layout here gives each its own (4 + 4 x 8 KiB).
  ProgramDesc p = withTemps({8, 8, 8, 8});
  p.functions = {{"train",
                  {inst(Opcode::SumRows, {0, 1}), inst(Opcode::GeluFwd, {1, 2}),
                   inst(Opcode::GeluFwd, {2, 3}), inst(Opcode::GeluFwd, {3, 4})}}};
  const std::vector<uint64_t> need = sizes(p);
  ArenaLayout l = packArena(p, need);
  EXPECT_EQ(l.unused, "");
  expectSound(p, need, l);
  EXPECT_EQ(l.peakBytes, 4096u + 2 * 8192); // two live at a time
  EXPECT_EQ(l.arenaBytes, l.peakBytes);
  EXPECT_EQ(l.groups, 4);
  EXPECT_EQ(l.shrunk, 0);
  // Without the sum_rows, buffer 1 is read first (what an earlier run
  // left): it lives throughout and shares no byte.
  p.functions[0].instructions.erase(p.functions[0].instructions.begin());
  l = packArena(p, need);
  expectSound(p, need, l);
  EXPECT_EQ(l.peakBytes, 4096u + 3 * 8192);
  // So is a buffer an instruction first updates in place (reads too).
  p.functions[0].instructions.insert(p.functions[0].instructions.begin(),
                                     inst(Opcode::Add, {0, 1, 1}));
  l = packArena(p, need);
  expectSound(p, need, l);
  EXPECT_EQ(l.peakBytes, 4096u + 3 * 8192);
}

TEST(ArenaPack, SixteenBitBuffersTakeHalf) {
  // Buffers 2 and 3 stored 16-bit (half their bytes), 1 fp32, all live
  // at once: 4 + 8 + 4 + 4 KiB, not 4 + 24.
  ProgramDesc p = withTemps({8, 8, 8});
  p.functions = {{"train",
                  {inst(Opcode::SumRows, {0, 1}), inst(Opcode::GeluFwd, {1, 2}),
                   inst(Opcode::Add, {1, 2, 3}), inst(Opcode::GeluFwd, {3, 1})}}};
  std::vector<uint64_t> need = sizes(p);
  need[2] = need[3] = 4096;
  ArenaLayout l = packArena(p, need);
  EXPECT_EQ(l.unused, "");
  expectSound(p, need, l);
  EXPECT_EQ(l.peakBytes, 4096u + 8192 + 4096 + 4096);
  EXPECT_EQ(l.shrunk, 2);
  // The largest goes first: the fp32 buffer right after the parameter.
  EXPECT_EQ(l.offset[1], 4096u);
  // Every buffer's whole size lies inside the arena: a 16-bit one placed
  // last reaches past the peak by the half it does not use.
  EXPECT_EQ(l.arenaBytes, std::max(l.offset[2], l.offset[3]) + 8192);
  EXPECT_GT(l.arenaBytes, l.peakBytes);
  // A need above the size counts as the size; one not a multiple of the
  // alignment is rounded up.
  need[2] = 1 << 20;
  need[3] = 100;
  l = packArena(p, need, anyway()); // (its arena is the compiler's)
  expectSound(p, need, l);
  EXPECT_EQ(l.peakBytes, 4096u + 8192 + 8192 + 2 * kArenaAlignment);
}

TEST(ArenaPack, AliasesMoveTogether) {
  // 2 is written in place over 1 (the compiler's storage of both, as
  // gelu_bwd's dy1 over dg), and 3 is a view of 1's second half, read
  // with it: 1, 2 and 3 stay at the same distances. 1 and 2 alone would
  // take half (need), but 3 reads bytes of the second half: the group
  // keeps its whole size.
  ProgramDesc p = withTemps({8, 8, 8, 8});
  p.buffers[2].offset = p.buffers[1].offset;
  p.buffers[3].offset = p.buffers[1].offset + 4096;
  p.buffers[3].bytes = 4096;
  p.functions = {{"train",
                  {inst(Opcode::SumRows, {0, 4}), inst(Opcode::GeluFwd, {4, 1}),
                   inst(Opcode::Add, {1, 3, 2}), inst(Opcode::GeluFwd, {2, 4})}}};
  std::vector<uint64_t> need = sizes(p);
  need[1] = need[2] = 4096;
  ArenaLayout l = packArena(p, need, anyway());
  expectSound(p, need, l);
  EXPECT_EQ(l.offset[2], l.offset[1]);
  EXPECT_EQ(l.offset[3], l.offset[1] + 4096);
  EXPECT_EQ(l.groups, 2);
  EXPECT_EQ(l.shrunk, 0);
  EXPECT_EQ(l.peakBytes, 4096u + 2 * 8192);
  // Without the view, the in-place pair (the same bytes) takes half.
  p.functions[0].instructions[2] = inst(Opcode::GeluFwd, {1, 2});
  l = packArena(p, need, anyway());
  expectSound(p, need, l);
  EXPECT_EQ(l.offset[2], l.offset[1]);
  EXPECT_EQ(l.shrunk, 1);
  EXPECT_EQ(l.peakBytes, 4096u + 8192 + 4096);
}

TEST(ArenaPack, FunctionsShareTheRegion) {
  // train's 1 and 2, eval's 3 and 4: each function's pair lives
  // together, the functions never do.
  ProgramDesc p = withTemps({8, 8, 8, 8});
  p.functions = {{"train", {inst(Opcode::SumRows, {0, 1}), inst(Opcode::GeluFwd, {1, 2})}},
                 {"eval", {inst(Opcode::SumRows, {0, 3}), inst(Opcode::GeluFwd, {3, 4})}}};
  const std::vector<uint64_t> need = sizes(p);
  ArenaLayout l = packArena(p, need);
  EXPECT_EQ(l.unused, "");
  expectSound(p, need, l);
  EXPECT_EQ(l.peakBytes, 4096u + 2 * 8192);
}

TEST(ArenaPack, KeepsTheCompilersLayoutWhereItCannotDoBetter) {
  ProgramDesc p = withTemps({8, 8});
  p.functions = {{"train", {inst(Opcode::SumRows, {0, 1}), inst(Opcode::GeluFwd, {1, 2})}}};
  ArenaLayout l = packArena(p, sizes(p));
  EXPECT_EQ(l.unused, "no smaller than the compiler's arena");
  EXPECT_EQ(l.arenaBytes, p.arenaBytes);
  for (size_t b = 0; b < p.buffers.size(); ++b)
    EXPECT_EQ(l.offset[b], p.buffers[b].offset);
  // Rank-dependent views need their extent on all ranks (PackOptions).
  ProgramDesc q = withTemps({8, 8, 8, 8});
  q.functions = {{"train",
                  {inst(Opcode::SumRows, {0, 1}), inst(Opcode::GeluFwd, {1, 2}),
                   inst(Opcode::GeluFwd, {2, 3}), inst(Opcode::GeluFwd, {3, 4})}}};
  q.buffers[3].rankGroup = 1;
  q.buffers[3].rankStride = 4096;
  EXPECT_EQ(packArena(q, sizes(q)).unused, "rank-dependent views (several ranks)");
  q.buffers[3].rankGroup = 0;
  EXPECT_EQ(packArena(q, sizes(q)).unused, "");
  // withLayout moves the buffers and the arena, nothing else.
  l = packArena(q, sizes(q));
  ProgramDesc r = withLayout(q, l);
  EXPECT_EQ(r.arenaBytes, l.arenaBytes);
  EXPECT_LT(r.arenaBytes, q.arenaBytes);
  for (size_t b = 0; b < q.buffers.size(); ++b) {
    EXPECT_EQ(r.buffers[b].offset, l.offset[b]);
    EXPECT_EQ(r.buffers[b].bytes, q.buffers[b].bytes);
  }
  EXPECT_EQ(r.functions.size(), q.functions.size());
}

TEST(ArenaPack, WhatAnEarlierRunLeftLivesThroughout) {
  // eval writes 1 (gelu of 2, itself read first: throughout), then 3 and 4;
  // train's first instruction naming 1 is a fused_elementwise that reads
  // it: what eval left. 1 must share no byte with train's 3 and 4, which
  // would otherwise reuse the bytes its life in eval left free.
  ProgramDesc p = withTemps({8, 8, 8, 8});
  FusedProgram fp; // out = in0 + in1
  fp.n = 2048;
  fp.nb = {2048, 2048};
  fp.ops = {{MicroOp::Add, 0, 1}};
  fp.outputs = {2};
  Instruction fused = inst(Opcode::FusedElementwise, {1, 2, 4});
  fused.ints = fp.encode();
  p.functions = {{"eval", {inst(Opcode::GeluFwd, {2, 1})}},
                 {"train",
                  {inst(Opcode::SumRows, {0, 3}), inst(Opcode::GeluFwd, {3, 4}), fused}}};
  const std::vector<uint64_t> need = sizes(p);
  ArenaLayout l = packArena(p, need, anyway());
  expectSound(p, need, l);
  for (uint32_t b : {2u, 3u, 4u})
    EXPECT_FALSE(l.offset[1] < l.offset[b] + 8192 && l.offset[b] < l.offset[1] + 8192)
        << "buffer " << b;
  // Its output is written, not read: where train's first naming of a
  // buffer is a fused group's output, the buffer starts there.
  p.functions[1].instructions = {inst(Opcode::SumRows, {0, 1}), inst(Opcode::SumRows, {0, 2}),
                                 fused, inst(Opcode::GeluFwd, {4, 3})};
  p.functions[0].instructions = {inst(Opcode::SumRows, {0, 1})};
  l = packArena(p, need, anyway());
  expectSound(p, need, l);
  EXPECT_EQ(l.peakBytes, 4096u + 3 * 8192); // 1, 2 and 4 live together
}

TEST(ArenaPack, WeightGradientOperandsToTheNext) {
  // Two weight gradients with a gelu between: 1 (x of the first) could
  // share bytes with 3 (the gelu's output) unless it lives to the second
  // weight gradient, as the compiler keeps it for a second stream.
  ProgramDesc p = withTemps({8, 8, 8, 8, 8});
  p.functions = {{"train",
                  {inst(Opcode::SumRows, {0, 1}), inst(Opcode::SumRows, {0, 2}),
                   inst(Opcode::LinearBwdWeight, {1, 2, 5}), inst(Opcode::GeluFwd, {2, 3}),
                   inst(Opcode::SumRows, {0, 4}),
                   inst(Opcode::LinearBwdWeight, {3, 4, 5})}}};
  std::vector<uint64_t> need = sizes(p);
  ArenaLayout l = packArena(p, need, anyway());
  expectSound(p, need, l);
  const auto meet = [&](uint32_t a, uint32_t b) {
    return l.offset[a] < l.offset[b] + 8192 && l.offset[b] < l.offset[a] + 8192;
  };
  EXPECT_TRUE(meet(1, 3) || meet(1, 4));
  PackOptions keep = anyway();
  keep.keepWeightGradOperands = true;
  l = packArena(p, need, keep);
  expectSound(p, need, l);
  for (uint32_t b : {2u, 3u, 4u})
    EXPECT_FALSE(meet(1, b)) << "buffer " << b;
}

TEST(ArenaPack, ATemporaryAcrossThePersistentRegionsEnd) {
  ProgramDesc p = withTemps({8, 8});
  p.functions = {{"train", {inst(Opcode::SumRows, {0, 1}), inst(Opcode::GeluFwd, {1, 2})}}};
  p.buffers[1].offset = 2048; // inside the parameter's bytes, and past them
  p.buffers[1].name = "t";
  EXPECT_EQ(packArena(p, sizes(p), anyway()).unused,
            "temporary 't' starts in the persistent region and ends past it");
}

TEST(ArenaPack, SeveralRanks) {
  // A ZeRO share: 2 is this rank's quarter of 1 (rank stride 2 KiB, a
  // group of 4), read with 1 live; 3 is a reduce-scatter's result,
  // written by the collective (not read first). The view moves with its
  // base; 1's group keeps its whole size, whatever `need` says.
  ProgramDesc p = withTemps({8, 2, 2, 8});
  p.buffers[2].offset = p.buffers[1].offset;
  p.buffers[2].rankGroup = 1;
  p.buffers[2].rankStride = 2048;
  p.functions = {{"train",
                  {inst(Opcode::SumRows, {0, 1}), inst(Opcode::SumRows, {0, 4}),
                   inst(Opcode::ReduceScatter, {1, 3}), inst(Opcode::Add, {2, 3, 4})}}};
  std::vector<uint64_t> need = sizes(p);
  need[1] = 4096;
  PackOptions o = anyway();
  o.allRanks = [](const BufferDesc &d) { return d.rankStride * 3 + d.bytes; };
  ArenaLayout l = packArena(p, need, o);
  EXPECT_EQ(l.unused, "");
  EXPECT_EQ(l.offset[2], l.offset[1]);
  EXPECT_EQ(l.shrunk, 0);
  EXPECT_EQ(l.peakBytes, 4096u + 8192 + 8192 + 2048); // 1, 4 and 3 live at 2
  // A collective left running to instruction 4 keeps its operands to
  // there: without, 1 (with its share, last named at 3) could share bytes
  // with a buffer written at 4.
  p.functions[0].instructions.push_back(inst(Opcode::SumRows, {0, 5}));
  p.buffers.push_back(buffer(BufferRole::Temp, p.arenaBytes, 2048)); // 5
  p.arenaBytes += 2048;
  need.push_back(2048);
  l = packArena(p, need, o);
  expectSound(p, need, l);
  const auto meet15 = [&] {
    return l.offset[1] < l.offset[5] + 2048 && l.offset[5] < l.offset[1] + 8192;
  };
  EXPECT_TRUE(meet15());
  o.livesTo = {{0, 1, 4, 3, 4}};
  l = packArena(p, need, o);
  expectSound(p, need, l);
  EXPECT_FALSE(meet15());
  EXPECT_EQ(l.unused, "");
}

TEST(ArenaPack, VerifyLayoutSeesWhatEachReadSees) {
  // sum_rows writes 1; gelu 1 -> 2; add 1 + 2 -> 3: 1 and 2 are read while
  // both live. The packer's layout passes; one that puts 2 on 1's bytes
  // fails.
  ProgramDesc p = withTemps({8, 8, 8});
  p.functions = {{"train",
                  {inst(Opcode::SumRows, {0, 1}), inst(Opcode::GeluFwd, {1, 2}),
                   inst(Opcode::Add, {1, 2, 3})}}};
  const auto comm = createLocalCommunicator();
  Store16Plan f32;
  f32.slots = {{0u, 0u, 0u}};
  ArenaLayout l = packArena(p, sizes(p), anyway());
  EXPECT_EQ(verifyLayout(p, *comm, f32, l), "");
  ArenaLayout bad = l;
  bad.offset[2] = bad.offset[1];
  EXPECT_NE(verifyLayout(p, *comm, f32, bad), "");
  // 2 on the second half of 1's bytes: wrong at fp32 sizes, right where
  // both are stored 16-bit (each takes the first half of its bytes).
  ArenaLayout halves = l;
  halves.offset = {0, 4096, 8192, 16384};
  EXPECT_NE(verifyLayout(p, *comm, f32, halves), "");
  Store16Plan b16;
  b16.slots = {{2u, 3u, 3u}};
  EXPECT_EQ(verifyLayout(p, *comm, b16, halves), "");
  // A collective reads its input; a receive posted early is in flight to
  // its wait: a layout that puts 2 on 1's bytes there fails.
  for (const std::vector<Instruction> &code :
       {std::vector<Instruction>{inst(Opcode::SumRows, {0, 1}), inst(Opcode::SumRows, {0, 2}),
                                 inst(Opcode::AllReduce, {1, 3}), inst(Opcode::GeluFwd, {2, 3})},
        std::vector<Instruction>{inst(Opcode::RecvStart, {1}), inst(Opcode::SumRows, {0, 2}),
                                 inst(Opcode::GeluFwd, {2, 3}), inst(Opcode::RecvWait, {1}),
                                 inst(Opcode::GeluFwd, {1, 3})}}) {
    ProgramDesc q = p;
    q.functions = {{"train", code}};
    Store16Plan plain;
    plain.slots = {std::vector<uint32_t>(code.size(), 0u)};
    ArenaLayout good = packArena(q, sizes(q), anyway());
    EXPECT_EQ(verifyLayout(q, *comm, plain, good), "");
    ArenaLayout over = good;
    over.offset[2] = over.offset[1];
    EXPECT_NE(verifyLayout(q, *comm, plain, over), "");
  }
  // A value beside its buffer (a side value) touches none of the arena:
  // 2 kept beside may share 1's very bytes.
  b16.side[{0, 1, 1}] = 0;
  b16.side[{0, 2, 1}] = 0;
  halves.offset[2] = halves.offset[1];
  EXPECT_EQ(verifyLayout(p, *comm, b16, halves), "");
}

TEST(ArenaPack, RandomProgramsStaySound) {
  // Programs of gelus, adds and sum_rows over 24 temporaries, some written
  // in place over another (the same bytes) or as a view of part of one,
  // each needing its size or half; the layout must pass expectSound.
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const uint32_t nt = 24;
    std::vector<uint64_t> kib;
    for (uint32_t t = 0; t < nt; ++t)
      kib.push_back(1 + rng() % 16);
    ProgramDesc p = withTemps(kib);
    // Aliases: buffer t at the offset of an earlier one (in place), or
    // inside it (a view).
    for (uint32_t t = 2; t <= nt; ++t)
      if (rng() % 5 == 0) {
        const uint32_t base = 1 + rng() % (t - 1);
        const BufferDesc &b = p.buffers[base];
        p.buffers[t].offset = b.offset + (rng() % 2 ? 0 : (b.bytes / 2) / 64 * 64);
        p.buffers[t].bytes = std::min<uint64_t>(p.buffers[t].bytes,
                                                b.offset + b.bytes - p.buffers[t].offset);
      }
    std::vector<uint64_t> need = sizes(p);
    for (uint32_t t = 1; t <= nt; ++t)
      if (rng() % 2)
        need[t] = need[t] / 2;
    // Each function reads only what it wrote before (as the compiler's
    // programs: a temporary is one function's): a buffer it wrote, or one
    // whose needed bytes lie inside what it wrote through other buffers
    // (a view read through another id, whatever wrote over part of them
    // since).
    for (int f = 0; f < 2; ++f) {
      FunctionDesc fn;
      fn.name = f ? "eval" : "train";
      std::vector<char> wrote(nt + 1, 0);
      std::vector<std::pair<uint64_t, uint64_t>> bytes;
      auto readable = [&](uint32_t t) {
        if (wrote[t])
          return true;
        uint64_t at = p.buffers[t].offset, end = at + need[t];
        std::sort(bytes.begin(), bytes.end());
        for (auto [b0, b1] : bytes)
          if (b0 <= at)
            at = std::max(at, b1);
        return at >= end;
      };
      auto written = [&](uint32_t t) {
        wrote[t] = 1;
        bytes.push_back({p.buffers[t].offset, p.buffers[t].offset + need[t]});
      };
      auto input = [&]() -> uint32_t {
        std::vector<uint32_t> ok;
        for (uint32_t t = 1; t <= nt; ++t)
          if (readable(t))
            ok.push_back(t);
        return ok.empty() ? 0 : ok[rng() % ok.size()];
      };
      for (int i = 0; i < 40; ++i) {
        const uint32_t a = input(), b = input(), c = 1 + rng() % nt;
        if (!a || !b || rng() % 4 == 0) {
          fn.instructions.push_back(inst(Opcode::SumRows, {0, c}));
        } else if (rng() % 2) {
          fn.instructions.push_back(inst(Opcode::GeluFwd, {a, c}));
        } else {
          fn.instructions.push_back(inst(Opcode::Add, {a, b, c}));
        }
        written(c);
      }
      p.functions.push_back(std::move(fn));
    }
    const ArenaLayout l = packArena(p, need, anyway());
    ASSERT_EQ(l.unused, "");
    expectSound(p, need, l);
    if (::testing::Test::HasFailure()) {
      ADD_FAILURE() << "trial " << trial;
      return;
    }
  }
}
