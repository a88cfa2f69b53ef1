//===- CudaGenerated.h - the compiler's GPU kernels, loaded -------*- C++ -*-===//
//
// A program's generated kernels (llm-fuse-elementwise's groups, lowered to
// PTX by llm-gpu-to-ptx): the PTX JIT-compiled by the driver, and the launch
// of each kind of group with the parameters its gpu.func declares. The CUDA
// executor runs them; llmrt-cuda-check compares them with the CPU's
// interpretation (FusedKernels.h). The driver's functions come through the
// CUDA runtime, so no libcuda is linked.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_CUDAGENERATED_H
#define LLMRT_CUDAGENERATED_H

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace llmrt::cuda {

class GeneratedKernels {
public:
  GeneratedKernels();
  ~GeneratedKernels();
  GeneratedKernels(const GeneratedKernels &) = delete;
  GeneratedKernels &operator=(const GeneratedKernels &) = delete;

  /// JIT-loads `ptx` and finds each of `entries`; "" or what failed (the
  /// driver's log included). `noDriver` (optional): set where the failure
  /// is that no CUDA driver is installed (every rank alike).
  std::string load(const std::string &ptx, const std::vector<std::string> &entries,
                   bool *noDriver = nullptr);
  size_t size() const;

  /// A fused_elementwise group's kernel (a grid-stride loop over n
  /// elements): one pointer per operand, inputs then outputs.
  std::string launchElementwise(int64_t kernel, int64_t n, void *const *operands,
                                size_t count, cudaStream_t s) const;
  /// A fused_norm's kernel (a warp a row, kFusedNormWarps rows a block):
  /// every operand's pointer, then its storage code (0 fp32, 1 bf16,
  /// 2 fp16).
  std::string launchNorm(int64_t kernel, int64_t rows, void *const *operands,
                         const int32_t *codes, size_t count, cudaStream_t s) const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace llmrt::cuda

#endif // LLMRT_CUDAGENERATED_H
