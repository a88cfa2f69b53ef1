//===- Passes.h - planner passes ----------------------------------*- C++ -*-===//
#ifndef LLM_PLANNER_PASSES_H
#define LLM_PLANNER_PASSES_H

#include "llm/LLMDialect.h"
#include "mlir/Pass/Pass.h"

namespace mlir::llm {

#define GEN_PASS_DECL
#include "llm/Planner/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "llm/Planner/Passes.h.inc"

} // namespace mlir::llm

#endif // LLM_PLANNER_PASSES_H
