//===- Serialize.h - llmrt module to program blob -----------------*- C++ -*-===//
#ifndef LLM_TARGET_SERIALIZE_H
#define LLM_TARGET_SERIALIZE_H

#include "mlir/IR/BuiltinOps.h"

#include <cstdint>
#include <string>
#include <vector>

namespace mlir::llm {

/// Serializes a module lowered by llm-lower-to-rt (functions @train and
/// @eval of llmrt ops) into the runtime's program format
/// (runtime/include/llmrt/ProgramFormat.h). Emits an error and fails on
/// anything else.
FailureOr<std::vector<uint8_t>> serializeProgram(ModuleOp module);

/// The PTX of the module's GPU kernels ("" when it has none).
FailureOr<std::string> getKernelPTX(ModuleOp module);

/// Writes the executable `exe`: the runtime binary `runner` followed by
/// `program` and the trailer the runtime looks for (ProgramFormat.h),
/// written aside and renamed, mode 0755.
LogicalResult writeExecutable(StringRef runner, ArrayRef<uint8_t> program,
                              StringRef exe, std::string &error);

} // namespace mlir::llm

#endif // LLM_TARGET_SERIALIZE_H
