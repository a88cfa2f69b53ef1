//===- LLMRTDialect.h - llmrt dialect -----------------------------*- C++ -*-===//
#ifndef LLMRT_LLMRTDIALECT_H
#define LLMRT_LLMRTDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"

#include "llmrt/LLMRTDialect.h.inc"

#define GET_OP_CLASSES
#include "llmrt/LLMRTOps.h.inc"

#endif // LLMRT_LLMRTDIALECT_H
