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
#include "mlir/Dialect/ControlFlow/IR/ControlFlow.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Target/LLVM/NVVM/Target.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/Transforms/Passes.h"

void mlir::llm::registerAllDialects(DialectRegistry &registry) {
  registry.insert<LLMDialect, llmrt::LLMRTDialect, func::FuncDialect, arith::ArithDialect,
                  tensor::TensorDialect, shard::ShardDialect>();
  func::registerShardingInterfaceExternalModels(registry);
  llm::registerShardingInterfaceExternalModels(registry);
  // The GPU kernels of fusion groups (llm-fuse-elementwise) and their
  // lowering to PTX (llm-gpu-to-ptx): the dialects, their conversions to
  // LLVM, the translation to LLVM IR and the NVVM target.
  registry.insert<gpu::GPUDialect, math::MathDialect, memref::MemRefDialect,
                  scf::SCFDialect, cf::ControlFlowDialect, LLVM::LLVMDialect,
                  NVVM::NVVMDialect>();
  registerAllExtensions(registry);
  registerAllToLLVMIRTranslations(registry);
  NVVM::registerNVVMTargetInterfaceExternalModels(registry);
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
