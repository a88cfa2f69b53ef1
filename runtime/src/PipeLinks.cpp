//===- PipeLinks.cpp - a pipeline's point-to-point links on devices -------===//
#include "llmrt/PipeLinks.h"

#include "absl/strings/str_cat.h"

#include <map>

namespace llmrt {

std::vector<PipeLink> pipelineLinks(int stages) {
  std::vector<PipeLink> links;
  if (stages < 2)
    return links;
  for (int s = 0; s < stages; ++s)
    links.push_back({s, (s + 1) % stages, false});
  for (int s = 0; s < stages; ++s)
    links.push_back({(s + 1) % stages, s, true});
  return links;
}

absl::StatusOr<int> linkOf(const Instruction &inst, int stage, int stages,
                           const std::string &function, size_t index) {
  auto op = static_cast<Opcode>(inst.opcode);
  auto fail = [&](const std::string &why) {
    return absl::InvalidArgumentError(absl::StrCat(
        "function '", function, "' instruction #", index, " (",
        opcodeInfo(inst.opcode)->name, "): ", why));
  };
  if (op != Opcode::Send && op != Opcode::Recv && op != Opcode::RecvStart)
    return fail("not a send or a receive");
  if (inst.ints.size() < 3)
    return fail("no peer and tag");
  int64_t peer = inst.ints[1], tag = inst.ints[2], other = stage + peer;
  if (stages < 2 || peer == 0 || other < 0 || other >= stages)
    return fail(absl::StrCat("peer ", peer > 0 ? "+" : "", peer, " of stage ",
                             stage, " is outside the pipeline's ", stages,
                             " stage(s)"));
  if (tag < 0)
    return fail(absl::StrCat("negative tag ", tag));
  bool gradient = tag % 2 == 1, sends = op == Opcode::Send;
  int next = (stage + 1) % stages, prev = (stage + stages - 1) % stages;
  // Activations go to the next stage, gradients to the previous one.
  int expected = sends != gradient ? next : prev;
  if (other != expected)
    return fail(absl::StrCat(
        gradient ? "a gradient (odd tag " : "an activation (even tag ", tag,
        ") ", sends ? "sent to" : "received from", " stage ", other,
        " (from stage ", stage, "): on devices activations travel to the "
        "next stage and gradients to the previous one"));
  int from = sends ? stage : static_cast<int>(other);
  int to = sends ? static_cast<int>(other) : stage;
  return gradient ? stages + to : from;
}

absl::Status checkLinkOrder(const std::vector<ProgramDesc> &stages) {
  const int p = static_cast<int>(stages.size());
  if (p < 2)
    return absl::OkStatus();
  std::vector<PipeLink> links = pipelineLinks(p);
  struct Message {
    int64_t tag, n;
    size_t index;
  };
  // function -> link -> the sends, and the receives, in program order.
  std::map<std::string, std::vector<std::vector<Message>>> sends, recvs;
  for (int s = 0; s < p; ++s)
    for (const FunctionDesc &f : stages[s].functions) {
      auto &fs = sends[f.name], &fr = recvs[f.name];
      fs.resize(links.size());
      fr.resize(links.size());
      for (size_t i = 0; i < f.instructions.size(); ++i) {
        const Instruction &inst = f.instructions[i];
        auto op = static_cast<Opcode>(inst.opcode);
        if (op != Opcode::Send && op != Opcode::Recv && op != Opcode::RecvStart)
          continue;
        absl::StatusOr<int> link = linkOf(inst, s, p, f.name, i);
        if (!link.ok())
          return absl::InvalidArgumentError(
              absl::StrCat("stage ", s, ": ", link.status().message()));
        (op == Opcode::Send ? fs : fr)[*link].push_back(
            {inst.ints[2], inst.ints[0], i});
      }
    }
  for (const auto &[fn, perLink] : sends) {
    const auto &received = recvs[fn];
    for (size_t l = 0; l < links.size(); ++l) {
      const PipeLink &k = links[l];
      const std::vector<Message> &a = perLink[l], &b = received[l];
      std::string what = absl::StrCat(
          "function '", fn, "': the ", k.gradient ? "gradient" : "activation",
          " link from stage ", k.from, " to stage ", k.to);
      for (size_t m = 0; m < std::min(a.size(), b.size()); ++m)
        if (a[m].tag != b[m].tag || a[m].n != b[m].n)
          return absl::InvalidArgumentError(absl::StrCat(
              what, ": message ", m, " is sent as tag ", a[m].tag, " (", a[m].n,
              " floats, instruction #", a[m].index, ") but received as tag ",
              b[m].tag, " (", b[m].n, " floats, instruction #", b[m].index,
              "); NCCL pairs messages by their order"));
      if (a.size() != b.size())
        return absl::InvalidArgumentError(absl::StrCat(
            what, ": ", a.size(), " message(s) sent but ", b.size(),
            " received"));
    }
  }
  return absl::OkStatus();
}

} // namespace llmrt
