//===- CudaBlas.cpp - the CUDA backend's GEMMs through cuBLAS -------------===//
//
// Row-major products through column-major cuBLAS: a row-major X is the
// column-major Xᵀ with the same leading dimension, so C = op(A) op(B) is
// computed as Cᵀ = op(B)ᵀ op(A)ᵀ, i.e. cuBLAS's gemm with the operands
// swapped.
//
//===----------------------------------------------------------------------===//
#include "llmrt/CudaKernels.h"

#include <cublas_v2.h>

#include <string>

namespace llmrt::cuda {

struct Blas {
  cublasHandle_t handle = nullptr;
  cudaStream_t stream = nullptr;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F_FAST_16BF;
};

bool parseGemmMode(const std::string &name, GemmMode &mode) {
  if (name == "bf16")
    mode = GemmMode::Bf16;
  else if (name == "tf32")
    mode = GemmMode::Tf32;
  else if (name == "fp32")
    mode = GemmMode::Fp32;
  else
    return false;
  return true;
}

const char *gemmModeName(GemmMode mode) {
  switch (mode) {
  case GemmMode::Bf16: return "bf16";
  case GemmMode::Tf32: return "tf32";
  case GemmMode::Fp32: return "fp32";
  }
  return "?";
}

Blas *createBlas(cudaStream_t s, GemmMode mode, std::string *error) {
  Blas *b = new Blas();
  if (cublasStatus_t st = cublasCreate(&b->handle); st != CUBLAS_STATUS_SUCCESS) {
    *error = std::string("cublasCreate: ") + cublasGetStatusString(st);
    delete b;
    return nullptr;
  }
  cublasSetStream(b->handle, s);
  b->stream = s;
  b->compute = mode == GemmMode::Bf16   ? CUBLAS_COMPUTE_32F_FAST_16BF
               : mode == GemmMode::Tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                        : CUBLAS_COMPUTE_32F;
  return b;
}

void destroyBlas(Blas *blas) {
  if (!blas)
    return;
  cublasDestroy(blas->handle);
  delete blas;
}

namespace {
/// Row-major C[M, N] = op(A)[M, K] op(B)[K, N]; lda, ldb, ldc are the
/// row lengths of A, B, C as stored.
bool gemm(Blas *b, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
          const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
          int64_t ldc, std::string *error) {
  const float alpha = 1.0f, beta = 0.0f;
  cublasStatus_t st = cublasGemmEx(
      b->handle, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha, B,
      CUDA_R_32F, static_cast<int>(ldb), A, CUDA_R_32F, static_cast<int>(lda),
      &beta, C, CUDA_R_32F, static_cast<int>(ldc), b->compute,
      CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) {
    *error = std::string("cublasGemmEx: ") + cublasGetStatusString(st);
    return false;
  }
  return true;
}
} // namespace

bool linearFwd(Blas *blas, const float *x, const float *w, const float *bias,
               float *y, int64_t rows, int64_t in, int64_t out, bool transW,
               std::string *error) {
  // y[rows, out] = x[rows, in] W, W stored [in, out] or (transW) [out, in].
  if (!gemm(blas, false, transW, rows, out, in, x, in, w, transW ? in : out, y,
            out, error))
    return false;
  if (bias)
    addBias(y, bias, rows, out, blas->stream);
  return true;
}

bool linearBwdWeight(Blas *blas, const float *x, const float *dy, float *dw,
                     int64_t rows, int64_t in, int64_t out, bool transW,
                     std::string *error) {
  // dW = xᵀ dy ([in, out]) or, in the transposed layout, dyᵀ x ([out, in]).
  if (!transW)
    return gemm(blas, true, false, in, out, rows, x, in, dy, out, dw, out, error);
  return gemm(blas, true, false, out, in, rows, dy, out, x, in, dw, in, error);
}

} // namespace llmrt::cuda
