//===- LLMDialect.h - llm dialect ---------------------------------*- C++ -*-===//
#ifndef LLM_LLMDIALECT_H
#define LLM_LLMDIALECT_H

#include "mlir/IR/Dialect.h"

#include "llm/LLMDialect.h.inc"

#endif // LLM_LLMDIALECT_H
