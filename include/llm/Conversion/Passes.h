//===- Passes.h - llm conversion passes ---------------------------*- C++ -*-===//
#ifndef LLM_CONVERSION_PASSES_H
#define LLM_CONVERSION_PASSES_H

#include "llmrt/LLMRTDialect.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Pass/Pass.h"

namespace mlir::llm {

#define GEN_PASS_DECL
#include "llm/Conversion/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "llm/Conversion/Passes.h.inc"

} // namespace mlir::llm

#endif // LLM_CONVERSION_PASSES_H
