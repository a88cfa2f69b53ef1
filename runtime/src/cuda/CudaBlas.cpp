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
  GemmMode mode = GemmMode::Bf16;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  /// bf16 copies of the operands (GemmMode::Bf16).
  uint16_t *scratch = nullptr;
  int64_t scratchElems = 0;
};

bool parseGemmMode(const std::string &name, GemmMode &mode) {
  if (name == "bf16")
    mode = GemmMode::Bf16;
  else if (name == "bf16-fast")
    mode = GemmMode::Bf16Fast;
  else if (name == "fp16")
    mode = GemmMode::Fp16;
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
  case GemmMode::Bf16Fast: return "bf16-fast";
  case GemmMode::Fp16: return "fp16";
  case GemmMode::Tf32: return "tf32";
  case GemmMode::Fp32: return "fp32";
  }
  return "?";
}

Blas *createBlas(cudaStream_t s, GemmMode mode, int64_t scratchElems,
                 std::string *error) {
  Blas *b = new Blas();
  if (cublasStatus_t st = cublasCreate(&b->handle); st != CUBLAS_STATUS_SUCCESS) {
    *error = std::string("cublasCreate: ") + cublasGetStatusString(st);
    delete b;
    return nullptr;
  }
  cublasSetStream(b->handle, s);
  b->stream = s;
  b->mode = mode;
  b->compute = mode == GemmMode::Bf16Fast ? CUBLAS_COMPUTE_32F_FAST_16BF
               : mode == GemmMode::Tf32   ? CUBLAS_COMPUTE_32F_FAST_TF32
                                          : CUBLAS_COMPUTE_32F;
  if ((mode == GemmMode::Bf16 || mode == GemmMode::Fp16) && scratchElems > 0) {
    // Each operand starts on a 256-byte boundary.
    b->scratchElems = scratchElems + 256;
    if (cudaMalloc(reinterpret_cast<void **>(&b->scratch),
                   static_cast<size_t>(b->scratchElems) * 2) != cudaSuccess) {
      cudaGetLastError();
      *error = "cannot allocate the " + std::to_string(b->scratchElems * 2) +
               "-byte bf16 GEMM scratch";
      cublasDestroy(b->handle);
      delete b;
      return nullptr;
    }
  }
  return b;
}

void destroyBlas(Blas *blas) {
  if (!blas)
    return;
  cublasDestroy(blas->handle);
  cudaFree(blas->scratch);
  delete blas;
}

namespace {
/// Row-major C[M, N] = op(A)[M, K] op(B)[K, N]; lda, ldb, ldc are the
/// row lengths of A, B, C as stored.
bool gemm(Blas *b, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
          const float *A, int64_t lda, const float *B, int64_t ldb, float *C,
          int64_t ldc, std::string *error) {
  const float alpha = 1.0f, beta = 0.0f;
  const void *a = A, *bm = B;
  cudaDataType type = CUDA_R_32F;
  if (b->mode == GemmMode::Bf16 || b->mode == GemmMode::Fp16) {
    // 16-bit copies of both operands (each contiguous: M x K and K x N).
    int64_t na = M * K, nb = K * N, aSlot = (na + 127) / 128 * 128;
    if (aSlot + nb > b->scratchElems) {
      *error = "GEMM operands (" + std::to_string(na + nb) +
               " elements) exceed the bf16 scratch (" +
               std::to_string(b->scratchElems) + ")";
      return false;
    }
    bool half = b->mode == GemmMode::Fp16;
    (half ? toFp16 : toBf16)(A, b->scratch, na, b->stream);
    (half ? toFp16 : toBf16)(B, b->scratch + aSlot, nb, b->stream);
    a = b->scratch;
    bm = b->scratch + aSlot;
    type = half ? CUDA_R_16F : CUDA_R_16BF;
  }
  cublasStatus_t st = cublasGemmEx(
      b->handle, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha, bm,
      type, static_cast<int>(ldb), a, type, static_cast<int>(lda), &beta, C,
      CUDA_R_32F, static_cast<int>(ldc), b->compute, CUBLAS_GEMM_DEFAULT);
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
