//===- ExecutorBase.cpp - what every executor backend shares --------------===//
#include "llmrt/Executor.h"

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

} // namespace llmrt
