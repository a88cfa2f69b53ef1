//===- InitAll.cpp - the one registration list ----------------------------===//
#include "llm/InitAll.h"
#include "llm/Conversion/Passes.h"
#include "llm/LLMDialect.h"
#include "llm/Planner/Passes.h"
#include "llmrt/LLMRTDialect.h"
#include "llm/Transforms/Passes.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/Extensions/ShardingExtensions.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Shard/IR/ShardDialect.h"
#include "mlir/Dialect/Shard/Transforms/Passes.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

void mlir::llm::registerAllDialects(DialectRegistry &registry) {
  registry.insert<LLMDialect, llmrt::LLMRTDialect, func::FuncDialect, arith::ArithDialect,
                  tensor::TensorDialect, shard::ShardDialect>();
  func::registerShardingInterfaceExternalModels(registry);
}

void mlir::llm::registerAllPasses() {
  registerLLMPasses();
  registerLLMConversionPasses();
  registerLLMPlannerPasses();
  shard::registerShardPasses();
  registerCanonicalizerPass();
  registerCSEPass();
  registerPrintOpStatsPass();
  registerSymbolDCEPass();
}
