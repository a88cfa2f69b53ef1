//===- LLMDialect.h - llm dialect ---------------------------------*- C++ -*-===//
#ifndef LLM_LLMDIALECT_H
#define LLM_LLMDIALECT_H

#include "mlir/IR/Dialect.h"

#include "llm/LLMDialect.h.inc"

namespace mlir {
class DialectRegistry;
namespace llm {
/// The ShardingInterface models of the llm ops (LLMSharding.cpp), for
/// upstream's sharding-propagation.
void registerShardingInterfaceExternalModels(DialectRegistry &registry);
} // namespace llm
} // namespace mlir

#endif // LLM_LLMDIALECT_H
