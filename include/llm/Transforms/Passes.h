//===- Passes.h - llm compiler passes -----------------------------*- C++ -*-===//
#ifndef LLM_TRANSFORMS_PASSES_H
#define LLM_TRANSFORMS_PASSES_H

#include "llm/LLMDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Pass/Pass.h"

namespace mlir::llm {

#define GEN_PASS_DECL
#include "llm/Transforms/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "llm/Transforms/Passes.h.inc"

} // namespace mlir::llm

#endif // LLM_TRANSFORMS_PASSES_H
