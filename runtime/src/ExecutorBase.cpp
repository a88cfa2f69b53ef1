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

} // namespace llmrt
