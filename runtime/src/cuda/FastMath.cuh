//===- FastMath.cuh - one-instruction exponentials ------------*- CUDA -*-===//
//
// Shared by the softmax kernels (the loss, attention).
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_CUDA_FASTMATH_CUH
#define LLMRT_CUDA_FASTMATH_CUH

namespace llmrt::cuda {

/// 2^x by the special function unit (ex2.approx.ftz: within 2 ulp; 2^-inf
/// = 0, results below 2^-126 flushed to 0): one instruction, where exp2f
/// without --use_fast_math adds the handling of denormal results and expf
/// takes several.
__device__ __forceinline__ float fastExp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
  return y;
}

} // namespace llmrt::cuda

#endif // LLMRT_CUDA_FASTMATH_CUH
