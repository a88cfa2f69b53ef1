//===- CudaBlas.cpp - the CUDA backend's GEMMs through cuBLAS -------------===//
//
// Row-major products through column-major cuBLAS: a row-major X is the
// column-major Xᵀ with the same leading dimension, so C = op(A) op(B) is
// computed as Cᵀ = op(B)ᵀ op(A)ᵀ, i.e. cuBLAS's gemm with the operands
// swapped.
//
//===----------------------------------------------------------------------===//
#include "llmrt/CudaKernels.h"
#include "llmrt/Store16.h"

#include <cublasLt.h>
#include <cublas_v2.h>

#include <cuda_runtime_api.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <tuple>
#include <vector>

namespace llmrt::cuda {

/// A cuBLASLt product (16-bit operands; a bias or bias-gradient epilogue,
/// or none), planned once per shape: its descriptors and algorithm (none:
/// GemmEx and a bias kernel instead). The heuristic's first candidates are
/// timed on the first call and the fastest kept: its first choice leaves
/// SMs idle where the output has fewer tiles than the GPU has SMs (the
/// weight gradients' 768 x 768 is 36 tiles of 128 x 128 on 132 SMs),
/// where a candidate that splits k does not.
struct LtPlan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  std::vector<cublasLtMatmulAlgo_t> candidates;
  bool ok = false, tuned = false;
};

struct Blas {
  cublasHandle_t handle = nullptr;
  cublasLtHandle_t lt = nullptr;
  /// Key: transposes, M, N, K, leading dimensions, output alignment,
  /// epilogue, 16-bit output.
  std::map<std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t,
                      int64_t, int, int, bool>,
           LtPlan>
      ltPlans;
  void *ltWorkspace = nullptr;
  int64_t epilogues = 0, biasGrads = 0, tunedPlans = 0;
  /// How many of the heuristic's candidates each plan times (1: none;
  /// LLMRT_CUDA_GEMM_TUNE=0; 32 with LLMRT_CUDA_GEMM_TUNE=3);
  /// LLMRT_CUDA_GEMM_TUNE=2 also times each with k split 2, 4 and 8 ways
  /// where it can.
  int tune = 8;
  bool splitK = false;
  static constexpr size_t kLtWorkspace = kGemmLtWorkspaceBytes; // (Store16.h)
  cudaStream_t stream = nullptr;
  GemmMode mode = GemmMode::Bf16;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  /// bf16 copies of the operands (GemmMode::Bf16).
  uint16_t *scratch = nullptr;
  int64_t scratchElems = 0;
  /// The 16-bit copies the last GEMM left in the scratch (its two
  /// operands): the next GEMM reuses one it reads again (a backward's dy,
  /// read by the input gradient and then the weight gradient) unless
  /// something was written since (gemmForget; or that GEMM's output).
  struct Copy {
    const float *src = nullptr;
    int64_t n = 0, offset = 0;
  };
  Copy copies[2];
  int64_t reused = 0;
  /// A 16-bit copy of the bias of a product with a 16-bit output
  /// (cuBLASLt's bias is of the output's type).
  uint16_t *bias16 = nullptr;
  static constexpr int64_t kBias16 = kGemmBias16Elems; // (Store16.h)
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
  // cuBLASLt for the bias epilogue of 16-bit products (optional: without
  // it those products add their bias with a kernel).
  if (mode == GemmMode::Bf16 || mode == GemmMode::Fp16) {
    if (cublasLtCreate(&b->lt) != CUBLAS_STATUS_SUCCESS)
      b->lt = nullptr;
    else if (cudaMalloc(&b->ltWorkspace, Blas::kLtWorkspace) != cudaSuccess) {
      cudaGetLastError();
      cublasLtDestroy(b->lt);
      b->lt = nullptr;
    }
  }
  b->stream = s;
  b->mode = mode;
  if (const char *t = std::getenv("LLMRT_CUDA_GEMM_TUNE")) {
    b->tune = std::atoi(t) == 0 ? 1 : std::atoi(t) == 3 ? 32 : b->tune;
    b->splitK = std::atoi(t) == 2;
  }
  b->compute = mode == GemmMode::Bf16Fast ? CUBLAS_COMPUTE_32F_FAST_16BF
               : mode == GemmMode::Tf32   ? CUBLAS_COMPUTE_32F_FAST_TF32
                                          : CUBLAS_COMPUTE_32F;
  if ((mode == GemmMode::Bf16 || mode == GemmMode::Fp16) && scratchElems > 0) {
    // Each operand starts on a 256-byte boundary; the bias copy after them.
    b->scratchElems = scratchElems + kGemmScratchPadElems; // (Store16.h)
    if (cudaMalloc(reinterpret_cast<void **>(&b->scratch),
                   static_cast<size_t>(b->scratchElems + Blas::kBias16) * 2) !=
        cudaSuccess) {
      cudaGetLastError();
      *error = "cannot allocate the " +
               std::to_string((b->scratchElems + Blas::kBias16) * 2) +
               "-byte bf16 GEMM scratch";
      cublasDestroy(b->handle);
      delete b;
      return nullptr;
    }
    b->bias16 = b->scratch + b->scratchElems;
  }
  return b;
}

void destroyBlas(Blas *blas) {
  if (!blas)
    return;
  for (auto &[key, plan] : blas->ltPlans) {
    cublasLtMatrixLayoutDestroy(plan.a);
    cublasLtMatrixLayoutDestroy(plan.b);
    cublasLtMatrixLayoutDestroy(plan.c);
    cublasLtMatmulDescDestroy(plan.desc);
  }
  if (blas->lt)
    cublasLtDestroy(blas->lt);
  cudaFree(blas->ltWorkspace);
  cublasDestroy(blas->handle);
  cudaFree(blas->scratch);
  delete blas;
}

int64_t gemmEpilogueCount(const Blas *blas) { return blas->epilogues; }
int64_t gemmReusedCopies(const Blas *blas) { return blas->reused; }
int64_t blasDeviceBytes(const Blas *blas) {
  if (!blas)
    return 0;
  return (blas->scratch ? (blas->scratchElems + Blas::kBias16) * 2 : 0) +
         (blas->lt ? static_cast<int64_t>(Blas::kLtWorkspace) : 0);
}
int64_t gemmBiasGradCount(const Blas *blas) { return blas->biasGrads; }
int64_t gemmTunedPlans(const Blas *blas) { return blas->tunedPlans; }
bool gemmTakes16(GemmMode mode) {
  return mode == GemmMode::Bf16 || mode == GemmMode::Fp16;
}
void gemmForget(Blas *blas) {
  if (blas)
    blas->copies[0] = blas->copies[1] = Blas::Copy{};
}

namespace {
/// The largest power of two (at most 256) that divides p's address.
int alignmentOf(const void *p) {
  auto v = reinterpret_cast<uintptr_t>(p);
  int a = 1;
  while (a < 256 && v % (2 * a) == 0)
    a *= 2;
  return a;
}

/// The Lt plan of C = op(A) op(B) with epilogue `epi` (a bias added, or
/// a bias gradient: the sum of one operand over k) in the column-major
/// terms of gemm() below (operands swapped): m = N, n = M, 16-bit operands
/// at 256-byte-aligned scratch, fp32 C aligned to `cAlign` bytes.
LtPlan &ltPlan(Blas *b, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
               int64_t lda, int64_t ldb, int64_t ldc, int cAlign,
               cublasLtEpilogue_t epi, bool out16, const void *aux = nullptr) {
  LtPlan &p = b->ltPlans[{ta, tb, M, N, K, lda, ldb, ldc, cAlign, static_cast<int>(epi),
                          out16}];
  if (p.desc)
    return p;
  const cudaDataType in = b->mode == GemmMode::Fp16 ? CUDA_R_16F : CUDA_R_16BF;
  const cudaDataType outType = out16 ? in : CUDA_R_32F;
  cublasOperation_t opA = tb ? CUBLAS_OP_T : CUBLAS_OP_N,
                    opB = ta ? CUBLAS_OP_T : CUBLAS_OP_N;
  cudaDataType biasType = outType;
  bool ok =
      cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F) ==
          CUBLAS_STATUS_SUCCESS &&
      cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA,
                                     sizeof(opA)) == CUBLAS_STATUS_SUCCESS &&
      cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB,
                                     sizeof(opB)) == CUBLAS_STATUS_SUCCESS &&
      cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                     sizeof(epi)) == CUBLAS_STATUS_SUCCESS &&
      cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                     &biasType, sizeof(biasType)) ==
          CUBLAS_STATUS_SUCCESS &&
      // A GELU's pre-activation: D's shape and leading dimension (the
      // heuristic takes the pointer's alignment from it).
      (!aux || (cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
                                               &ldc, sizeof(ldc)) == CUBLAS_STATUS_SUCCESS &&
                cublasLtMatmulDescSetAttribute(p.desc,
                                               CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux,
                                               sizeof(aux)) == CUBLAS_STATUS_SUCCESS)) &&
      // Lt's A is our B (N x K as op'd), its B our A; C is N x M.
      cublasLtMatrixLayoutCreate(&p.a, in, tb ? K : N, tb ? N : K, ldb) ==
          CUBLAS_STATUS_SUCCESS &&
      cublasLtMatrixLayoutCreate(&p.b, in, ta ? M : K, ta ? K : M, lda) ==
          CUBLAS_STATUS_SUCCESS &&
      cublasLtMatrixLayoutCreate(&p.c, outType, N, M, ldc) ==
          CUBLAS_STATUS_SUCCESS;
  cublasLtMatmulPreference_t pref = nullptr;
  if (ok && cublasLtMatmulPreferenceCreate(&pref) == CUBLAS_STATUS_SUCCESS) {
    size_t ws = Blas::kLtWorkspace;
    uint32_t align = static_cast<uint32_t>(cAlign);
    cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align, sizeof(align));
    cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align, sizeof(align));
    std::vector<cublasLtMatmulHeuristicResult_t> heur(static_cast<size_t>(b->tune));
    int found = 0;
    ok = cublasLtMatmulAlgoGetHeuristic(b->lt, p.desc, p.a, p.b, p.c, p.c, pref, b->tune,
                                        heur.data(), &found) == CUBLAS_STATUS_SUCCESS &&
         found > 0;
    if (ok) {
      p.algo = heur[0].algo;
      for (int i = 0; i < found; ++i)
        if (heur[i].state == CUBLAS_STATUS_SUCCESS)
          p.candidates.push_back(heur[i].algo);
      // The same algorithms with k split (the partial products reduced in
      // fp32 through the workspace), where an algorithm allows it: the
      // weight gradients' long k and small outputs leave SMs idle.
      if (b->splitK) {
        const size_t plain = p.candidates.size();
        for (size_t c = 0; c < plain; ++c) {
          int32_t supported = 0, splits = 1;
          uint32_t schemes = 0;
          size_t written = 0;
          if (cublasLtMatmulAlgoCapGetAttribute(&p.candidates[c], CUBLASLT_ALGO_CAP_SPLITK_SUPPORT,
                                                &supported, sizeof(supported),
                                                &written) != CUBLAS_STATUS_SUCCESS ||
              !supported ||
              cublasLtMatmulAlgoCapGetAttribute(&p.candidates[c],
                                                CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK, &schemes,
                                                sizeof(schemes), &written) !=
                  CUBLAS_STATUS_SUCCESS ||
              !(schemes & CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE) ||
              cublasLtMatmulAlgoConfigGetAttribute(&p.candidates[c],
                                                   CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splits,
                                                   sizeof(splits), &written) !=
                  CUBLAS_STATUS_SUCCESS ||
              splits != 1)
            continue;
          for (int32_t k : {2, 4, 8}) {
            cublasLtMatmulAlgo_t algo = p.candidates[c];
            const uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
            cublasLtMatmulHeuristicResult_t check{};
            if (cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &k,
                                                     sizeof(k)) == CUBLAS_STATUS_SUCCESS &&
                cublasLtMatmulAlgoConfigSetAttribute(&algo,
                                                     CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME,
                                                     &scheme, sizeof(scheme)) ==
                    CUBLAS_STATUS_SUCCESS &&
                cublasLtMatmulAlgoCheck(b->lt, p.desc, p.a, p.b, p.c, p.c, &algo, &check) ==
                    CUBLAS_STATUS_SUCCESS &&
                check.workspaceSize <= Blas::kLtWorkspace)
              p.candidates.push_back(algo);
          }
        }
      }
      p.tuned = p.candidates.size() <= 1;
    }
    cublasLtMatmulPreferenceDestroy(pref);
  } else {
    ok = false;
  }
  p.ok = ok;
  return p;
}

/// Row-major C[M, N] = op(A)[M, K] op(B)[K, N] (+ bias[N] on every row,
/// when given); lda, ldb, ldc are the row lengths of A, B, C as stored.
/// biasGrad: also the sums over k of the operand `gradOf` ('A' or 'B', as
/// op'd: M or N sums) into it, where cuBLASLt can (*gradDone says whether
/// it did). half16: A (bit 0) or B (bit 1) is stored 16-bit already
/// (gemmTakes16 modes only).
bool gemm(Blas *b, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
          const void *Av, int64_t lda, const void *Bv, int64_t ldb, void *C,
          int64_t ldc, std::string *error, const float *bias = nullptr,
          float *biasGrad = nullptr, char gradOf = 0, bool *gradDone = nullptr,
          unsigned half16 = 0, const float *addC = nullptr,
          const GeluEpilogue *gelu = nullptr) {
  if (gradDone)
    *gradDone = false;
  if (gelu)
    *gelu->done = false;
  // addC: C = op(A) op(B) (+ bias) + addC (fp32 C; addC may be C itself).
  const float alpha = 1.0f, beta = addC ? 1.0f : 0.0f;
  if (addC && (half16 & 4u)) {
    *error = "a GEMM that adds to its output writes fp32";
    return false;
  }
  const void *a = Av, *bm = Bv;
  const auto *A = static_cast<const float *>(Av), *B = static_cast<const float *>(Bv);
  cudaDataType type = CUDA_R_32F;
  if (half16 && !gemmTakes16(b->mode)) {
    *error = "a 16-bit operand for a GEMM in " + std::string(gemmModeName(b->mode));
    return false;
  }
  if (gemmTakes16(b->mode)) {
    // 16-bit copies of the fp32 operands (each contiguous: M x K and
    // K x N), or the copy the previous GEMM made of the same operand; an
    // operand stored 16-bit is read as it is (it takes no scratch).
    const int64_t na = M * K, nb = K * N;
    const bool stored16A = half16 & 1u, stored16B = half16 & 2u, out16 = half16 & 4u;
    int64_t offA = -1, offB = -1;
    for (const Blas::Copy &c : b->copies) {
      if (!stored16A && c.src == A && c.n == na)
        offA = c.offset;
      if (!stored16B && c.src == B && c.n == nb)
        offB = c.offset;
    }
    // Where a fresh copy of n elements goes: the first 256-byte-aligned
    // place that overlaps no reused copy.
    auto place = [&](int64_t n, int64_t keep, int64_t keepN) -> int64_t {
      for (int64_t at : {int64_t(0), (keep + keepN + 127) / 128 * 128})
        if (keep < 0 || at + n <= keep || at >= keep + keepN)
          if (at + n <= b->scratchElems)
            return at;
      return -1;
    };
    const bool reuseA = offA >= 0, reuseB = offB >= 0;
    if (stored16A && stored16B) {
      offA = offB = 0; // neither takes scratch
    } else if (stored16A) {
      offB = reuseB ? offB : place(nb, -1, 0);
    } else if (stored16B) {
      offA = reuseA ? offA : place(na, -1, 0);
    } else if (reuseA && !reuseB) {
      offB = place(nb, offA, na);
    } else if (reuseB && !reuseA) {
      offA = place(na, offB, nb);
    }
    const bool ok = offA >= 0 && offB >= 0;
    const bool freshA = !stored16A && (!ok || !reuseA),
               freshB = !stored16B && (!ok || !reuseB);
    if (!ok) { // no room beside a reused copy: both afresh from 0
      offA = 0;
      offB = stored16A ? 0 : (na + 127) / 128 * 128;
    }
    if ((!stored16A && offA + na > b->scratchElems) ||
        (!stored16B && offB + nb > b->scratchElems)) {
      *error = "GEMM operands (" + std::to_string(na + nb) +
               " elements) exceed the bf16 scratch (" +
               std::to_string(b->scratchElems) + ")";
      return false;
    }
    bool half = b->mode == GemmMode::Fp16;
    if (freshA)
      (half ? toFp16 : toBf16)(A, b->scratch + offA, na, b->stream);
    if (freshB)
      (half ? toFp16 : toBf16)(B, b->scratch + offB, nb, b->stream);
    b->reused += (!stored16A && !freshA) + (!stored16B && !freshB);
    a = stored16A ? Av : b->scratch + offA;
    bm = stored16B ? Bv : b->scratch + offB;
    type = half ? CUDA_R_16F : CUDA_R_16BF;
    b->copies[0] = stored16A ? Blas::Copy{} : Blas::Copy{A, na, offA};
    b->copies[1] = stored16B ? Blas::Copy{} : Blas::Copy{B, nb, offB};
    // The output overwrites what it overlaps.
    const auto *c0 = static_cast<const char *>(C);
    const char *cEnd = c0 + ((M - 1) * ldc + N) * (out16 ? 2 : 4);
    for (Blas::Copy &c : b->copies)
      if (reinterpret_cast<const char *>(c.src) < cEnd &&
          c0 < reinterpret_cast<const char *>(c.src + c.n))
        c = Blas::Copy{};
    // A 16-bit output's bias is 16-bit (cuBLASLt's rule): rounded first.
    if (bias && out16 && N <= Blas::kBias16) {
      (half ? toFp16 : toBf16)(bias, b->bias16, N, b->stream);
    }
    // The bias in the product's epilogue (one pass over C, not two), or
    // the bias gradient summed from the 16-bit operand it reads anyway.
    // Lt's A is our B (its m: N), its B our A (its n: M).
    // A GELU epilogue writes its own output (and the forward the
    // pre-activation where the plain product would go), of its own type.
    const bool fuseGelu = gelu && !addC && !biasGrad &&
                          (gelu->mode == GeluEpilogue::Forward || !bias);
    const bool d16 = fuseGelu ? gelu->h16 : out16;
    if (fuseGelu && gelu->h16 && bias && N <= Blas::kBias16 && !out16)
      (half ? toFp16 : toBf16)(bias, b->bias16, N, b->stream);
    if (b->lt && (!d16 || !bias || N <= Blas::kBias16)) {
      const void *vec = bias ? (d16 ? static_cast<const void *>(b->bias16)
                                    : static_cast<const void *>(bias))
                             : biasGrad;
      cublasLtEpilogue_t epi = bias              ? CUBLASLT_EPILOGUE_BIAS
                               : biasGrad == nullptr ? CUBLASLT_EPILOGUE_DEFAULT
                               : gradOf == 'B'   ? CUBLASLT_EPILOGUE_BGRADA
                                                 : CUBLASLT_EPILOGUE_BGRADB;
      void *D = C;
      const void *aux = nullptr;
      if (fuseGelu) {
        epi = gelu->mode == GeluEpilogue::Backward ? CUBLASLT_EPILOGUE_DGELU
              : bias                              ? CUBLASLT_EPILOGUE_GELU_AUX_BIAS
                                                  : CUBLASLT_EPILOGUE_GELU_AUX;
        D = gelu->out;
        aux = gelu->aux;
      }
      int align = alignmentOf(D);
      for (const void *q : {vec, aux})
        if (q)
          align = std::min(align, alignmentOf(q));
      LtPlan &p = ltPlan(b, ta, tb, M, N, K, lda, ldb, ldc, align, epi, d16, aux);
      auto matmul = [&](const cublasLtMatmulAlgo_t &algo) {
        return cublasLtMatmul(b->lt, p.desc, &alpha, bm, p.a, a, p.b, &beta,
                              addC ? static_cast<const void *>(addC) : D, p.c, D, p.c,
                              &algo, b->ltWorkspace, Blas::kLtWorkspace,
                              b->stream) == CUBLAS_STATUS_SUCCESS;
      };
      const bool set =
          p.ok &&
          (!vec || cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                  &vec, sizeof(vec)) ==
                       CUBLAS_STATUS_SUCCESS) &&
          (!aux || cublasLtMatmulDescSetAttribute(p.desc,
                                                  CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER,
                                                  &aux, sizeof(aux)) == CUBLAS_STATUS_SUCCESS);
      // Timed only where a run leaves what the next reads as it was (not
      // while adding to C: in place, each run would add again). A CUDA
      // graph's capture cannot time (it waits for events): the capture
      // fails instead, its caller runs the step kernel by kernel.
      if (set && !p.tuned && !addC) {
        cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
        if (cudaStreamIsCapturing(b->stream, &capture) == cudaSuccess &&
            capture != cudaStreamCaptureStatusNone) {
          if (error)
            *error = "cuBLASLt's candidates for this shape are not timed yet (a CUDA graph's "
                     "capture cannot time them)";
          return false;
        }
        // Each candidate once to warm up, then three times timed; the
        // product is the same (beta = 0), whichever runs last.
        cudaEvent_t e0 = nullptr, e1 = nullptr;
        float best = 0;
        if (cudaEventCreate(&e0) == cudaSuccess && cudaEventCreate(&e1) == cudaSuccess)
          for (const cublasLtMatmulAlgo_t &algo : p.candidates) {
            if (!matmul(algo))
              continue;
            cudaEventRecord(e0, b->stream);
            bool ran = matmul(algo) && matmul(algo) && matmul(algo);
            cudaEventRecord(e1, b->stream);
            float ms = 0;
            if (ran && cudaEventSynchronize(e1) == cudaSuccess &&
                cudaEventElapsedTime(&ms, e0, e1) == cudaSuccess && (best == 0 || ms < best)) {
              best = ms;
              p.algo = algo;
            }
          }
        cudaEventDestroy(e0);
        cudaEventDestroy(e1);
        cudaGetLastError();
        p.tuned = true;
        ++b->tunedPlans;
      }
      if (set && matmul(p.algo)) {
        if (bias)
          ++b->epilogues;
        else if (biasGrad)
          ++b->biasGrads;
        if (gradDone)
          *gradDone = biasGrad != nullptr;
        if (fuseGelu)
          *gelu->done = true;
        return true;
      }
      if (fuseGelu) // the plain product instead, the caller's GELU after it
        return gemm(b, ta, tb, M, N, K, Av, lda, Bv, ldb, C, ldc, error, bias, biasGrad,
                    gradOf, gradDone, half16, addC, nullptr);
    }
  }
  const bool out16 = half16 & 4u;
  if (addC && addC != C)
    cudaMemcpyAsync(C, addC, static_cast<size_t>(M) * ldc * 4, cudaMemcpyDeviceToDevice,
                    b->stream);
  cublasStatus_t st = cublasGemmEx(
      b->handle, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
      static_cast<int>(N), static_cast<int>(M), static_cast<int>(K), &alpha, bm,
      type, static_cast<int>(ldb), a, type, static_cast<int>(lda), &beta, C,
      out16 ? type : CUDA_R_32F, static_cast<int>(ldc), b->compute, CUBLAS_GEMM_DEFAULT);
  if (st != CUBLAS_STATUS_SUCCESS) {
    *error = std::string("cublasGemmEx: ") + cublasGetStatusString(st);
    return false;
  }
  if (bias && out16)
    addBias16(C, bias, M, N, b->mode == GemmMode::Fp16 ? Half::Fp16 : Half::Bf16,
              b->stream);
  else if (bias)
    addBias(static_cast<float *>(C), bias, M, N, b->stream);
  return true;
}
} // namespace

bool linearFwd(Blas *blas, const void *x, const void *w, const float *bias,
               void *y, int64_t rows, int64_t in, int64_t out, bool transW,
               std::string *error, unsigned half16, const float *addTo,
               const GeluEpilogue *gelu) {
  // y[rows, out] = x[rows, in] W (+ bias) (+ addTo), W stored [in, out] or
  // (transW) [out, in].
  return gemm(blas, false, transW, rows, out, in, x, in, w, transW ? in : out,
              y, out, error, bias, nullptr, 0, nullptr, half16, addTo, gelu);
}

bool linearBwdWeight(Blas *blas, const void *x, const void *dy, float *dw,
                     int64_t rows, int64_t in, int64_t out, bool transW,
                     std::string *error, float *db, bool *dbDone,
                     unsigned half16) {
  // dW = xᵀ dy ([in, out]) or, in the transposed layout, dyᵀ x ([out, in]);
  // db = the column sums of dy (dy is B, or in the transposed layout A).
  if (!transW)
    return gemm(blas, true, false, in, out, rows, x, in, dy, out, dw, out, error,
                nullptr, db, 'B', dbDone, half16);
  const unsigned swapped = ((half16 & 1u) << 1) | ((half16 & 2u) >> 1);
  return gemm(blas, true, false, out, in, rows, dy, out, x, in, dw, in, error,
              nullptr, db, 'A', dbDone, swapped);
}

} // namespace llmrt::cuda
