//===- LLMDialect.cpp - llm dialect registration --------------------------===//
#include "llm/LLMDialect.h"
#include "llm/LLMOps.h"

using namespace mlir;
using namespace mlir::llm;

#include "llm/LLMDialect.cpp.inc"

void LLMDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "llm/LLMOps.cpp.inc"
      >();
}
