//===- GPUToPTX.cpp - the module's GPU kernels to PTX ---------------------===//
//
// Upstream's NVVM pipeline, as one pass of ours so that llm-compile and
// llm-opt run the same thing (see Passes.td).
//
//===----------------------------------------------------------------------===//
#include "llm/Conversion/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/ADT/SmallString.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"

#include <cstdlib>

namespace mlir::llm {
#define GEN_PASS_DEF_GPUTOPTX
#include "llm/Conversion/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;

namespace {
struct GPUToPTXPass : public llm::impl::GPUToPTXBase<GPUToPTXPass> {
  using GPUToPTXBase::GPUToPTXBase;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    if (module.getOps<gpu::GPUModuleOp>().empty())
      return;
    if (!StringRef(chip).starts_with("sm_")) {
      module.emitError() << "llm-gpu-to-ptx: chip '" << chip
                         << "' is not an NVIDIA architecture (sm_XY)";
      return signalPassFailure();
    }
    // libdevice (the math functions' bodies) from the CUDA toolkit:
    // $CUDA_HOME, $CUDA_PATH or /usr/local/cuda.
    std::string cuda = "/usr/local/cuda";
    for (const char *var : {"CUDA_HOME", "CUDA_PATH"})
      if (const char *v = std::getenv(var); v && *v) {
        cuda = v;
        break;
      }
    llvm::SmallString<256> libdevice(cuda);
    llvm::sys::path::append(libdevice, "nvvm", "libdevice", "libdevice.10.bc");
    if (!llvm::sys::fs::exists(libdevice)) {
      module.emitError() << "llm-gpu-to-ptx: " << libdevice
                         << " is missing (set CUDA_HOME to the CUDA toolkit)";
      return signalPassFailure();
    }
    OpPassManager pm("builtin.module");
    GpuNVVMAttachTargetOptions target;
    target.chip = chip;
    target.optLevel = 3;
    target.linkLibs.push_back(std::string(libdevice));
    pm.addPass(createGpuNVVMAttachTarget(target));
    OpPassManager &kernels = pm.nest<gpu::GPUModuleOp>();
    kernels.addPass(createSCFToControlFlowPass());
    ConvertGpuOpsToNVVMOpsOptions nvvm;
    nvvm.useBarePtrCallConv = true;
    kernels.addPass(createConvertGpuOpsToNVVMOps(nvvm));
    kernels.addPass(createReconcileUnrealizedCastsPass());
    GpuModuleToBinaryPassOptions binary;
    binary.compilationTarget = "isa"; // PTX text
    binary.toolkitPath = cuda;
    pm.addPass(createGpuModuleToBinaryPass(binary));
    if (failed(runPipeline(pm, module))) {
      module.emitError() << "llm-gpu-to-ptx: lowering the GPU kernels to PTX failed";
      signalPassFailure();
    }
  }
};
} // namespace
