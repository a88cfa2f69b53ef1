//===- ExecutorBase.cpp - what every executor backend shares --------------===//
#include "llmrt/Executor.h"
#include "llmrt/Comm.h"

#include "absl/strings/str_cat.h"

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <functional>

namespace llmrt {

absl::StatusOr<int> Executor::function(const std::string &name) const {
  for (size_t i = 0; i < program_.functions.size(); ++i)
    if (program_.functions[i].name == name)
      return static_cast<int>(i);
  return absl::NotFoundError(
      absl::StrCat("the program has no function '", name, "'"));
}

const BufferDesc *Executor::find(BufferRole role, const std::string &name) const {
  for (const BufferDesc &b : program_.buffers)
    if (b.role == role && b.name == name)
      return &b;
  return nullptr;
}

absl::Status Executor::resolveOperands(const ProgramDesc &p,
                                       const Instruction &inst, uint8_t *arena,
                                       Communicator &comm,
                                       std::vector<void *> &ptrs) {
  // Sizes that depend on the group's size (the loader checked the rest).
  if (inst.opcode == static_cast<uint16_t>(Opcode::AllGather) ||
      inst.opcode == static_cast<uint16_t>(Opcode::AllGatherStart) ||
      inst.opcode == static_cast<uint16_t>(Opcode::ReduceScatter)) {
    int64_t whole = inst.ints[0] * comm.groupSize(static_cast<Group>(inst.ints[1]));
    const BufferDesc &big = p.buffers[inst.operands[
        inst.opcode == static_cast<uint16_t>(Opcode::ReduceScatter) ? 0 : 1]];
    if (static_cast<int64_t>(big.bytes / 4) < whole)
      return absl::InvalidArgumentError(absl::StrCat(
          "buffer '", big.name, "' is smaller than the group's ", whole,
          " elements"));
  }
  for (uint32_t o : inst.operands) {
    const BufferDesc &b = p.buffers[o];
    uint64_t at = b.offset;
    if (b.rankGroup)
      at += b.rankStride * comm.groupRank(static_cast<Group>(b.rankGroup));
    if (at + b.bytes > p.arenaBytes)
      return absl::InvalidArgumentError(absl::StrCat(
          "buffer '", b.name, "' of this rank ends past the arena"));
    ptrs.push_back(arena + at);
  }
  return absl::OkStatus();
}

int64_t communicationBytes(const Instruction &inst) {
  switch (static_cast<Opcode>(inst.opcode)) {
  case Opcode::AllReduce:
  case Opcode::AllGather:
  case Opcode::ReduceScatter:
  case Opcode::AllReduceStart:
  case Opcode::AllGatherStart:
  case Opcode::Send:
  case Opcode::Recv:
  case Opcode::RecvStart:
  case Opcode::RecvWait:
    return inst.ints.empty() ? -1 : inst.ints[0] * 4;
  default:
    return -1;
  }
}

absl::Status checkPipelinePeers(const ProgramDesc &p, int stage, int stages) {
  for (const FunctionDesc &f : p.functions)
    for (size_t i = 0; i < f.instructions.size(); ++i) {
      const Instruction &inst = f.instructions[i];
      if (!isPointToPoint(inst.opcode))
        continue;
      int64_t peer = inst.ints[1], to = stage + peer;
      if (peer == 0 || to < 0 || to >= stages)
        return absl::InvalidArgumentError(absl::StrCat(
            "function '", f.name, "' instruction #", i, " (",
            opcodeInfo(inst.opcode)->name, "): peer ", peer > 0 ? "+" : "",
            peer, " of stage ", stage, " is outside the pipeline's ", stages,
            " stage(s)"));
    }
  return absl::OkStatus();
}

DeferredCollectives
deferCollectives(const std::vector<uint16_t> &opcodes,
                 const std::vector<std::vector<std::pair<uintptr_t, uint64_t>>> &operands,
                 int firstSlot, bool fence) {
  DeferredCollectives d;
  d.slotOf.assign(opcodes.size(), -1);
  d.waitBefore.resize(opcodes.size());
  struct Pending {
    int slot;
    const std::vector<std::pair<uintptr_t, uint64_t>> *ranges;
  };
  std::vector<Pending> pending;
  // What each deferred collective keeps touching while it runs (stable
  // addresses: a deque).
  std::deque<std::vector<std::pair<uintptr_t, uint64_t>>> touched;
  constexpr int kMaxDeferred = 60000;
  auto overlap = [](const std::vector<std::pair<uintptr_t, uint64_t>> &a,
                    const std::vector<std::pair<uintptr_t, uint64_t>> &b) {
    for (auto [pa, na] : a)
      for (auto [pb, nb] : b)
        if (na && nb && pa < pb + nb && pb < pa + na)
          return true;
    return false;
  };
  int next = firstSlot;
  for (size_t i = 0; i < opcodes.size(); ++i) {
    // Every deferred collective whose bytes this instruction touches
    // completes before it.
    auto op = static_cast<Opcode>(opcodes[i]);
    bool communicates = communicationBytes(Instruction{opcodes[i], {}, {0}, {}}) >= 0 ||
                        op == Opcode::AllReduceWait || op == Opcode::AllGatherWait ||
                        op == Opcode::GlobalNorm || op == Opcode::VocabCrossEntropyFwd ||
                        op == Opcode::VocabCrossEntropyBwd;
    for (size_t k = 0; k < pending.size();) {
      if ((fence && communicates) || overlap(*pending[k].ranges, operands[i])) {
        d.waitBefore[i].push_back(pending[k].slot);
        pending.erase(pending.begin() + static_cast<std::ptrdiff_t>(k));
      } else {
        ++k;
      }
    }
    // (The slots stay below the receive slot and the communicators' range.)
    if ((op == Opcode::AllReduce || op == Opcode::ReduceScatter ||
         op == Opcode::AllGather) &&
        next < firstSlot + kMaxDeferred) {
      d.slotOf[i] = next++;
      d.opcodeOf.push_back(opcodes[i]);
      // An in-place all-reduce or all-gather reads its input (operand 0)
      // only on this rank, before it starts: what runs on touches the
      // output; a reduce-scatter reads its input while it runs.
      const std::vector<std::pair<uintptr_t, uint64_t>> &all = operands[i];
      touched.push_back(op != Opcode::ReduceScatter && all.size() >= 2
                            ? std::vector<std::pair<uintptr_t, uint64_t>>{all[1]}
                            : all);
      pending.push_back({d.slotOf[i], &touched.back()});
    }
  }
  for (const Pending &p : pending)
    d.atEnd.push_back(p.slot);
  // A collective the very next instruction needs (a tensor-parallel
  // all-reduce) gains nothing from running on: it stays blocking.
  for (size_t i = 0; i + 1 < opcodes.size(); ++i) {
    if (d.slotOf[i] < 0)
      continue;
    std::vector<int> &next = d.waitBefore[i + 1];
    auto it = std::find(next.begin(), next.end(), d.slotOf[i]);
    if (it != next.end()) {
      next.erase(it);
      d.slotOf[i] = -1;
    }
  }
  return d;
}

namespace {
/// deferCollectives over function `f`, its instruction i's operand k (of
/// the first `count(i)`) at address `at(i, k)`, slots from `firstSlot`
/// (LLMRT_DEFER_COLLECTIVES=0: none deferred).
DeferredCollectives deferAt(const ProgramDesc &p, const FunctionDesc &f,
                            const std::function<uintptr_t(size_t, size_t)> &at,
                            const std::function<size_t(size_t)> &count, int firstSlot,
                            bool fence) {
  // LLMRT_DEFER_COLLECTIVES=0 keeps every collective blocking (to measure
  // the overlap, or to rule it out when a job hangs).
  if (const char *e = std::getenv("LLMRT_DEFER_COLLECTIVES"); e && std::atoi(e) == 0)
    return DeferredCollectives{};
  std::vector<uint16_t> opcodes;
  std::vector<std::vector<std::pair<uintptr_t, uint64_t>>> ranges;
  for (size_t i = 0; i < f.instructions.size(); ++i) {
    const Instruction &inst = f.instructions[i];
    opcodes.push_back(inst.opcode);
    std::vector<std::pair<uintptr_t, uint64_t>> r;
    for (size_t k = 0; k < count(i); ++k)
      r.push_back({at(i, k), p.buffers[inst.operands[k]].bytes});
    ranges.push_back(std::move(r));
  }
  return deferCollectives(opcodes, ranges, firstSlot, fence);
}
} // namespace

DeferredCollectives
Executor::deferFunction(const ProgramDesc &p, const FunctionDesc &f,
                        const std::vector<const std::vector<void *> *> &ptrs,
                        bool fence) {
  return deferAt(
      p, f, [&](size_t i, size_t k) { return reinterpret_cast<uintptr_t>((*ptrs[i])[k]); },
      [&](size_t i) { return std::min(f.instructions[i].operands.size(), ptrs[i]->size()); },
      kDeferredSlotBase, fence);
}

uint64_t allRanksBytes(const BufferDesc &b, const Communicator &comm) {
  if (!b.rankGroup)
    return b.bytes;
  const int g = comm.groupSize(static_cast<Group>(b.rankGroup));
  return b.rankStride * static_cast<uint64_t>(std::max(g, 1) - 1) + b.bytes;
}

std::vector<std::vector<size_t>> deferredLives(const ProgramDesc &p, const Communicator &comm,
                                               bool fence) {
  std::vector<std::vector<size_t>> lives;
  for (const FunctionDesc &f : p.functions) {
    const DeferredCollectives d = deferAt(
        p, f,
        [&](size_t i, size_t k) -> uintptr_t {
          const BufferDesc &b = p.buffers[f.instructions[i].operands[k]];
          return b.offset +
                 (b.rankGroup ? b.rankStride * comm.groupRank(static_cast<Group>(b.rankGroup))
                              : 0);
        },
        [&](size_t i) { return f.instructions[i].operands.size(); }, /*firstSlot=*/0, fence);
    const size_t n = f.instructions.size();
    std::vector<size_t> to(n);
    for (size_t i = 0; i < n; ++i) {
      to[i] = i;
      if (i >= d.slotOf.size() || d.slotOf[i] < 0)
        continue;
      to[i] = n ? n - 1 : 0; // completed at the end, unless waited before
      for (size_t j = i + 1; j < n && j < d.waitBefore.size(); ++j)
        if (std::find(d.waitBefore[j].begin(), d.waitBefore[j].end(), d.slotOf[i]) !=
            d.waitBefore[j].end()) {
          to[i] = j;
          break;
        }
    }
    lives.push_back(std::move(to));
  }
  return lives;
}

} // namespace llmrt
