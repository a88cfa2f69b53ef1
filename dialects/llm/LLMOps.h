//===- LLMOps.h - llm dialect ops ---------------------------------*- C++ -*-===//
#ifndef LLM_LLMOPS_H
#define LLM_LLMOPS_H

#include "llm/LLMDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "llm/LLMInterfaces.h.inc"

#define GET_ATTRDEF_CLASSES
#include "llm/LLMAttrs.h.inc"

#define GET_OP_CLASSES
#include "llm/LLMOps.h.inc"

#endif // LLM_LLMOPS_H
