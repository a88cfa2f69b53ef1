//===- InitAll.h - the one registration list ----------------------*- C++ -*-===//
//
// Every tool registers dialects and passes through these two functions, so a
// new dialect or pass is added in one place.
//
//===----------------------------------------------------------------------===//
#ifndef LLM_INITALL_H
#define LLM_INITALL_H

namespace mlir {
class DialectRegistry;
namespace llm {

/// llm, plus the upstream dialects our IR uses: func, arith, tensor, shard.
void registerAllDialects(DialectRegistry &registry);

/// Every llm pass, and the upstream shard passes (sharding-propagation,
/// shard-partition) plus the generic ones our pipelines use.
void registerAllPasses();

} // namespace llm
} // namespace mlir

#endif // LLM_INITALL_H
