//===- LLMDialect.cpp - llm dialect registration --------------------------===//
#include "llm/LLMDialect.h"
#include "llm/LLMOps.h"

using namespace mlir;
using namespace mlir::llm;

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "llvm/ADT/TypeSwitch.h"

#include "llm/LLMDialect.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "llm/LLMAttrs.cpp.inc"

void LLMDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "llm/LLMAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "llm/LLMOps.cpp.inc"
      >();
}
