//===- ExecutorBase.cpp - what every executor backend shares --------------===//
#include "llmrt/Executor.h"
#include "llmrt/Comm.h"

#include "absl/strings/str_cat.h"

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

} // namespace llmrt
