//===- CudaKernels.h - CUDA kernels of the runtime ----------------*- C++ -*-===//
//
// Host-side launchers of the CUDA backend's kernels: the same operations,
// operand orders and conventions as CpuKernels.h (row-major, contiguous;
// "overwrite" outputs; elementwise kernels may run in place; the norm
// backward kernels accept dx aliasing x or dy), on device pointers, queued
// on `stream`. Storage is fp32; GEMMs go through cuBLAS (CudaExecutor.cpp)
// on bf16 tensor cores with fp32 accumulation.
//
// Included only by the CUDA executor and the kernel check tool, never by a
// widely included header.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_CUDAKERNELS_H
#define LLMRT_CUDAKERNELS_H

#include <cuda_runtime_api.h>

#include <cstdint>
#include <string>

namespace llmrt::cuda {

// GEMMs (CudaBlas.cpp) ---------------------------------------------------------

/// How cuBLAS multiplies fp32 matrices: on bf16 tensor cores with fp32
/// accumulation, either from bf16 copies of the operands that a conversion
/// kernel writes first (Bf16, the default) or letting cuBLAS round fp32
/// inputs itself (Bf16Fast: CUBLAS_COMPUTE_32F_FAST_16BF); TF32 tensor
/// cores; or plain fp32.
/// Fp16 converts the operands to fp16 instead (more mantissa, less range:
/// the trainer then scales the loss dynamically).
enum class GemmMode { Bf16, Bf16Fast, Tf32, Fp32, Fp16 };
/// Parses "bf16", "bf16-fast", "tf32", "fp32", "fp16".
bool parseGemmMode(const std::string &name, GemmMode &mode);
const char *gemmModeName(GemmMode mode);

/// A cuBLAS handle bound to one stream.
struct Blas;
/// nullptr on failure, with the reason in *error. `scratchElems`: the most
/// operand elements one GEMM converts (GemmMode::Bf16; rows x in + in x out
/// for linearFwd, rows x (in + out) for linearBwdWeight).
Blas *createBlas(cudaStream_t s, GemmMode mode, int64_t scratchElems,
                 std::string *error);
void destroyBlas(Blas *blas);
/// How many biases so far were added in a GEMM's epilogue (cuBLASLt, the
/// 16-bit modes) rather than by a kernel after it.
int64_t gemmEpilogueCount(const Blas *blas);
/// A GEMM reuses the 16-bit copy of an operand the previous GEMM made of
/// the same tensor (a backward's dy: input gradient, then weight
/// gradient); gemmForget says that memory may have changed since (the
/// executor calls it before every instruction that is not a GEMM).
void gemmForget(Blas *blas);
/// How many operand copies were reused so far.
int64_t gemmReusedCopies(const Blas *blas);
/// The device bytes a Blas holds: its 16-bit operand scratch and its
/// cuBLASLt workspace.
int64_t blasDeviceBytes(const Blas *blas);
/// CpuKernels.h's linearFwd (bias may be nullptr) and linearBwdWeight.
/// false on a cuBLAS error, with the reason in *error. `half16`: the
/// operands stored in the mode's 16-bit type (GemmMode::Bf16 and Fp16
/// only; bit 0 the first operand, x, bit 1 the second, w or dy): the GEMM
/// reads them as they are instead of converting fp32 ones; bit 2
/// (linearFwd): y is written in it (the bias rounded to it first).
/// A GELU in the GEMM's epilogue (cuBLASLt): Forward, `out` = gelu(x W +
/// b) and `aux` = x W + b (the pre-activation, kept for the backward);
/// Backward, `out` = (x W) ∘ gelu'(aux). `out` and `aux` are both 16-bit
/// (h16) or both fp32. *done says whether the GEMM did it; if not, it
/// wrote the plain product to y and the caller runs the GELU kernel.
struct GeluEpilogue {
  enum Mode { Forward, Backward } mode;
  void *out;
  void *aux;
  bool h16;
  bool *done;
};
/// addTo (optional, fp32 [rows, out], may be y itself): y = x W (+ bias)
/// + addTo, the residual add in the GEMM's epilogue (y fp32).
bool linearFwd(Blas *blas, const void *x, const void *w, const float *bias,
               void *y, int64_t rows, int64_t in, int64_t out, bool transW,
               std::string *error, unsigned half16 = 0,
               const float *addTo = nullptr, const GeluEpilogue *gelu = nullptr);
/// db (optional): the bias gradient (sumRows of dy) from the GEMM's
/// epilogue where cuBLASLt can (the 16-bit modes); *dbDone says whether it
/// was computed (else the caller runs sumRows).
bool linearBwdWeight(Blas *blas, const void *x, const void *dy, float *dw,
                     int64_t rows, int64_t in, int64_t out, bool transW,
                     std::string *error, float *db = nullptr,
                     bool *dbDone = nullptr, unsigned half16 = 0);
/// Whether the GEMMs of this mode take 16-bit operands (Bf16, Fp16): the
/// type kernels write a tensor in that only GEMMs read (Half below).
bool gemmTakes16(GemmMode mode);
/// How many bias gradients so far came from a GEMM's epilogue.
int64_t gemmBiasGradCount(const Blas *blas);
/// How many GEMM shapes so far had the heuristic's candidates timed
/// (cuBLASLt, the 16-bit modes; LLMRT_CUDA_GEMM_TUNE=0: none).
int64_t gemmTunedPlans(const Blas *blas);

// Kernels (CudaKernels.cu) -----------------------------------------------------

/// dst[i] = bf16(src[i]), round to nearest even (dst: __nv_bfloat16).
void toBf16(const float *src, void *dst, int64_t n, cudaStream_t s);
/// dst[i] = fp16(src[i]), round to nearest (dst: __half; inf past 65504).
void toFp16(const float *src, void *dst, int64_t n, cudaStream_t s);

// 16-bit storage. A tensor that only GEMMs read (a layer norm's output,
// GELU's, a loss gradient) is stored as the 16-bit copy the GEMM would
// have made of it: the same rounding (to nearest even), so the products
// are bit for bit those of fp32 storage, with half the bytes written and
// no conversion pass. With 16-bit activations (CudaExecutor.cpp) GEMM
// outputs are stored 16-bit too where every reader takes them so
// (elementwise kernels, the layer norm's backward, the loss, column
// copies): that rounds them, as PyTorch's autocast does. The executor
// picks these tensors (Store16.h); an output may not alias an input of
// another element size.
enum class Half { Bf16, Fp16 };
/// An operand of the kernels with 16-bit forms: fp32, or (h16) the 16-bit
/// type a Half names.
struct In {
  const void *p;
  bool h16 = false;
};
struct Out {
  void *p;
  bool h16 = false;
};
void layerNormFwd16(const float *x, const float *w, const float *b, void *y,
                    int64_t rows, int64_t C, double eps, Half h, cudaStream_t s);
/// sum = x + addend (fp32; may be x itself), then y = layer_norm(sum): a
/// residual add fused into the norm after it (LLMRT_CUDA_FUSE_ADD_NORM).
void layerNormFwdAdd(const float *x, In addend, float *sum, const float *w, const float *b,
                     Out y, int64_t rows, int64_t C, double eps, Half h, cudaStream_t s);
void rmsNormFwd16(const float *x, const float *w, void *y, int64_t rows,
                  int64_t C, double eps, Half h, cudaStream_t s);
/// addBias on a 16-bit y (where the GEMM's epilogue could not).
void addBias16(void *y, const float *bias, int64_t rows, int64_t C, Half h,
               cudaStream_t s);
/// sumRows of a 16-bit dy (where the GEMM's epilogue could not).
void sumRows16(const void *dy, float *db, int64_t rows, int64_t C, Half h,
               cudaStream_t s);
void geluFwdT(In x, Out y, int64_t n, Half h, cudaStream_t s);
void geluBwdT(In x, In dy, Out dx, int64_t n, Half h, cudaStream_t s);
void siluFwdT(In x, Out y, int64_t n, Half h, cudaStream_t s);
void siluBwdT(In x, In dy, Out dx, int64_t n, Half h, cudaStream_t s);
/// add without broadcast (nb = n).
void addT(In a, In b, Out y, int64_t n, Half h, cudaStream_t s);
/// addTo (optional, [rows, C], may be dx itself): dx = addTo + the layer
/// norm's input gradient (the residual stream's gradient add, fused).
/// dx may be dy itself (an fp32 dy) or addTo. staged
/// (LLMRT_CUDA_LN_BWD_ASYNC=1): each warp's next rows come into shared
/// memory by cp.async while it works on one (C a multiple of 32 up to
/// 1024; x, dy and addTo 16-byte aligned; the stages within an SM's
/// shared memory); returns whether that kernel ran.
bool layerNormBwdT(const float *x, const float *w, In dy, float *dx, float *dw,
                   float *db, int64_t rows, int64_t C, double eps, Half h,
                   cudaStream_t s, const float *addTo = nullptr, bool staged = false);
/// rowStats (optional, 2 x rows floats): the forward keeps each row's
/// max and sum of exp(x - max) there, and a backward of the same logits
/// given them reads the logits once instead of twice (the same results).
void crossEntropyFwdT(In logits, const int32_t *targets, float *loss,
                      int64_t rows, int64_t V, int64_t valid, float *rowScratch,
                      Half h, cudaStream_t s, float *rowStats = nullptr);
void crossEntropyBwdT(In logits, const int32_t *targets, Out dlogits,
                      int64_t rows, int64_t V, int64_t valid, float dloss,
                      Half h, cudaStream_t s, const float *rowStats = nullptr);
/// The loss's forward and backward in one pass over the logits (a
/// forward whose loss nothing reads before its backward; rowScratch: rows
/// floats): crossEntropyFwdT's loss and crossEntropyBwdT's dlogits.
/// rowKernel (LLMRT_CUDA_LOSS_ROW): 0 the generic kernel; 1, where the
/// logits and gradient are 16-bit (V % 8 == 0, 16-byte aligned), a row
/// kernel with the softmax in base 2 by the special function unit (its
/// exponentials within a few ulp); 2 the same with each row held in shared
/// memory (read from memory once, not twice) where the device grants V x 2
/// bytes of it. Returns whether a row kernel ran.
bool crossEntropyFusedT(In logits, const int32_t *targets, float *loss, Out dlogits,
                        int64_t rows, int64_t V, int64_t valid, float dloss,
                        float *rowScratch, Half h, cudaStream_t s, int rowKernel = 0);
/// A column copy with either side 16-bit (a 16-bit destination: the
/// columns of a tensor that copies assemble whole).
void copyColumnsT(In src, int64_t srcCols, int64_t srcOff, Out dst,
                  int64_t dstCols, int64_t dstOff, int64_t width, int64_t rows,
                  Half h, cudaStream_t s);

// Embeddings (ids already validated by the trainer).
/// addend (optional): out[t, c] += addend[(t C + c) % period] (the
/// position embedding's add, fused; out may be the addend itself where
/// period is n C).
void embeddingFwd(const int32_t *ids, const float *table, float *out,
                  int64_t n, int64_t C, cudaStream_t s, const float *addend = nullptr,
                  int64_t period = 0);
/// dtable [V, C] overwritten: zeroed, then rows scattered with atomics.
/// init (optional, [V, C] fp32, dtable itself or not overlapping it):
/// dtable starts from it instead of zeros (a residual add fused in: the
/// tied output layer's gradient).
void embeddingBwd(const int32_t *ids, const float *dout, float *dtable,
                  int64_t n, int64_t V, int64_t C, cudaStream_t s,
                  const float *init = nullptr);
/// This rank's rows [start, start + V) of a vocabulary-parallel table:
/// tokens outside them give zeros (the all-reduce that follows completes
/// the lookup); the backward scatters only the rows this rank holds into
/// dtable [V, C] (zeroed first; or starting from init, as embeddingBwd's).
void vocabEmbeddingFwd(const int32_t *ids, const float *table, float *out,
                       int64_t n, int64_t C, int64_t start, int64_t V,
                       cudaStream_t s);
void vocabEmbeddingBwd(const int32_t *ids, const float *dout, float *dtable,
                       int64_t n, int64_t V, int64_t C, int64_t start,
                       cudaStream_t s, const float *init = nullptr);
void positionEmbeddingFwd(const float *table, float *out, int64_t S, int64_t C,
                          cudaStream_t s);
void positionEmbeddingBwd(const float *dout, float *dtable, int64_t S,
                          int64_t P, int64_t C, cudaStream_t s);

// Normalization: one warp per row; dw, db are summed per block in shared
// memory, then added to the (zeroed) outputs.
void layerNormFwd(const float *x, const float *w, const float *b, float *y,
                  int64_t rows, int64_t C, double eps, cudaStream_t s);
void layerNormBwd(const float *x, const float *w, const float *dy, float *dx,
                  float *dw, float *db, int64_t rows, int64_t C, double eps,
                  cudaStream_t s);
void rmsNormFwd(const float *x, const float *w, float *y, int64_t rows,
                int64_t C, double eps, cudaStream_t s);
void rmsNormBwd(const float *x, const float *w, const float *dy, float *dx,
                float *dw, int64_t rows, int64_t C, double eps, cudaStream_t s);

/// y[r, c] += bias[c].
void addBias(float *y, const float *bias, int64_t rows, int64_t C,
             cudaStream_t s);
/// db[c] = sum over rows of dy[r, c] (overwritten).
void sumRows(const float *dy, float *db, int64_t rows, int64_t C,
             cudaStream_t s);
void copyColumns(const float *src, int64_t srcCols, int64_t srcOff, float *dst,
                 int64_t dstCols, int64_t dstOff, int64_t width, int64_t rows,
                 cudaStream_t s);
void rope(const float *x, float *y, int64_t B, int64_t S, int64_t H, int64_t D,
          double theta, bool inverse, cudaStream_t s);

// Attention, flash style: no S x S matrix in memory. Query blocks of 64
// rows stream over key tiles in shared memory with an online softmax; the
// backward recomputes the row statistics (log-sum-exp and
// D = rowsum(P * dP)), then dq per query row and dk, dv per key row (a
// key block walks every query head of its group: no atomics).
/// Whether the kernels are built for this head dimension.
bool attentionSupportsHeadDim(int64_t D);
/// Bytes of workspace attentionBwd needs.
int64_t attentionWorkspaceBytes(int64_t B, int64_t S, int64_t Hq);
void attentionFwd(const float *q, const float *k, const float *v, float *out,
                  int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                  double scale, bool causal, cudaStream_t s);
void attentionBwd(const float *q, const float *k, const float *v,
                  const float *dout, float *dq, float *dk, float *dv,
                  int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                  double scale, bool causal, void *workspace, cudaStream_t s);

/// The same on bf16 tensor cores (AttentionTC.cu; fp32 accumulation and
/// softmax), for head dimensions 64 and 128: what the executor runs when
/// the GEMMs are bf16.
bool attentionTensorCoresSupport(int64_t D);
void attentionFwdTC(const float *q, const float *k, const float *v, float *out,
                    int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                    double scale, bool causal, cudaStream_t s);
void attentionBwdTC(const float *q, const float *k, const float *v,
                    const float *dout, float *dq, float *dk, float *dv,
                    int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                    double scale, bool causal, void *workspace, cudaStream_t s);

/// FlashAttention-2 on bf16 tensor cores (AttentionMMA.cu: mma.sync, the
/// scores and probabilities in registers; dq added atomically), for head
/// dimension 64: what the executor runs there by default with bf16 GEMMs.
/// Same arguments and workspace as above.
bool attentionMMASupport(int64_t D);
/// lse (optional, [B, Hq, S]): also each row's natural log-sum-exp, which
/// attentionBwdMMA takes with the output instead of recomputing the row
/// statistics (the default; LLMRT_CUDA_ATTN_LSE=0 recomputes them).
/// h16 (LLMRT_CUDA_ATTN16): the operands stored bf16, bit 0 q, 1 k, 2 v,
/// 3 dout, 4 out (the forward writes it bf16; the backward reads it).
/// wide (LLMRT_CUDA_ATTN_FWD8=1): blocks of 8 warps, 128 queries sharing
/// each key tile (not faster on an H100: off by default).
/// ld (optional): the row strides in elements of q, k, v (then, in the
/// backward, dq, dk, dv) where they are column slices of wider rows
/// (AttentionLayout; the pointers at the slice's first column); each a
/// multiple of 4, as the slices' first columns (16-byte vectors).
/// async (LLMRT_CUDA_ATTN_ASYNC=1 to 3; 3 the default): where q,
/// k, v are all bf16 with strides and first columns multiples of 8, the
/// tiles come by cp.async, double-buffered, 3 (1) or 4 (2) blocks an SM,
/// or (3) 32 query rows a warp at 2; it takes precedence over `wide`.
void attentionFwdMMA(const void *q, const void *k, const void *v, void *out,
                     int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                     double scale, bool causal, cudaStream_t s,
                     float *lse = nullptr, unsigned h16 = 0, bool wide = false,
                     const int64_t *ld = nullptr, int async = 0);
/// staged: the backward's next Q and dO tiles copied by cp.async while the
/// current tile's products run (LLMRT_CUDA_ATTN_STAGED=1; fp32 inputs
/// only; as fast as without on an H100, so off by default).
/// wide (LLMRT_CUDA_ATTN_BWD8=1): blocks of 8 warps, 128 keys sharing
/// each query tile (not faster on an H100: off by default; unstaged, so it
/// takes precedence over `staged`).
/// dq is fp32 (added atomically; a caller that stores it 16-bit passes an
/// fp32 scratch and rounds it after); dk, dv are bf16 where h16 has bit 6
/// (dk) or 7 (dv).
/// async (LLMRT_CUDA_ATTN_BWD_ASYNC=1, the default): where q and dout are
/// bf16 (strides and first columns multiples of 8), each query tile's Q
/// and dO come by cp.async into a second pair of buffers while the tile
/// before runs (4 warps, or 8 with `wide`).
void attentionBwdMMA(const void *q, const void *k, const void *v,
                     const void *dout, float *dq, void *dk, void *dv,
                     int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                     double scale, bool causal, void *workspace, cudaStream_t s,
                     bool staged = false, const void *out = nullptr,
                     const float *lse = nullptr, unsigned h16 = 0, bool wide = false,
                     const int64_t *ld = nullptr, int async = 0);

// Elementwise.
void geluFwd(const float *x, float *y, int64_t n, cudaStream_t s);
void geluBwd(const float *x, const float *dy, float *dx, int64_t n,
             cudaStream_t s);
void siluFwd(const float *x, float *y, int64_t n, cudaStream_t s);
void siluBwd(const float *x, const float *dy, float *dx, int64_t n,
             cudaStream_t s);
void add(const float *a, const float *b, float *y, int64_t n, int64_t nb,
         cudaStream_t s);
void mul(const float *a, const float *b, float *y, int64_t n, int64_t nb,
         cudaStream_t s);
/// y[i] = x[i] * factor.
void scale(const float *x, float factor, float *y, int64_t n, cudaStream_t s);

// Loss, on [rows, V] logits of which the first `valid` columns are the
// model's vocabulary (the rest pads it: outside the softmax, zero
// gradient; valid = V without padding). One block per row, a single-pass
// online softmax (float4 loads where V % 4 == 0 and the logits are
// 16-byte aligned): the forward reads the logits once, the backward twice.
/// *loss = mean over rows of logsumexp - the target's logit. rowScratch:
/// `rows` floats of workspace.
void crossEntropyFwd(const float *logits, const int32_t *targets, float *loss,
                     int64_t rows, int64_t V, int64_t valid, float *rowScratch,
                     cudaStream_t s);
/// dlogits = (softmax - onehot) * dloss / rows (dloss: the loss scale).
void crossEntropyBwd(const float *logits, const int32_t *targets,
                     float *dlogits, int64_t rows, int64_t V, int64_t valid,
                     float dloss, cudaStream_t s);

// The vocabulary-parallel loss: each rank holds the logits of its slice
// [start, start + V) of the vocabulary, of which the first `valid` columns
// are the model's (the rest pads the vocabulary to a multiple of the
// group: outside the softmax, zero gradient); `stats` (3 x rows doubles:
// max, sum, target logit) is all-reduced over the group between the steps.
/// stats[r] = max of this slice's row r.
void vocabRowMax(const float *logits, int64_t rows, int64_t V, int64_t valid,
                 double *stats, cudaStream_t s);
/// stats[rows + r] = sum of exp(x - stats[r]) over the slice;
/// stats[2 rows + r] = the target's logit if this slice holds it, else 0.
void vocabRowSums(const float *logits, const int32_t *targets, int64_t rows,
                  int64_t V, int64_t valid, int64_t start, double *stats,
                  cudaStream_t s);
/// *loss = mean over rows of log(sum) + max - target logit (the stats
/// reduced over the group).
void vocabLoss(const double *stats, int64_t rows, float *loss, cudaStream_t s);
/// dlogits = (softmax - onehot) * dloss / rows on this slice.
void vocabCrossEntropyBwd(const float *logits, const int32_t *targets,
                          int64_t rows, int64_t V, int64_t valid, int64_t start,
                          const double *stats, float *dlogits, float dloss,
                          cudaStream_t s);

// Optimizer. The scalars live on the device (the program's input buffers).
/// *acc += sum of x[i]^2 (acc in double).
void sumSquares(const float *x, int64_t n, double *acc, cudaStream_t s);
/// The same for many tensors, each into acc[slot], in launches of up to
/// kSquaresBatch tensors.
struct SquaresTensor {
  const float *x;
  int64_t n;
  int slot;
};
constexpr int kSquaresBatch = 32;
void sumSquaresBatch(const SquaresTensor *tensors, int count, double *acc,
                     cudaStream_t s);
/// *out = sqrt(acc[0] + ... + acc[count - 1]) * scale.
void finishNorm(const double *acc, int count, float *out, double scale,
                cudaStream_t s);
/// Holds stream s for about `microseconds` of GPU time (one thread
/// sleeping): what the host queues meanwhile starts back to back after it
/// (--trace: an instruction's events then time its kernels, not their
/// launch).
void holdStream(cudaStream_t s, unsigned microseconds);
/// *out = min(1, max / (norm + 1e-6)) (1 when max <= 0); NaN where the
/// norm is not finite, which the AdamW kernels read as "skip this step"
/// (what the host's overflow check does, inside a CUDA graph).
void clipScale(const float *norm, const float *maxNorm, float *out,
               cudaStream_t s);
/// CpuKernels.h's adamw, reading lr, step, weight decay (nullptr: none) and
/// the gradient scale from the device (NaN, clipScale's mark of an
/// overflow: nothing is updated).
void adamw(float *p, const float *grad, float *m, float *v, int64_t n,
           const float *lr, const int64_t *step, const float *weightDecay,
           const float *gradScale, double beta1, double beta2, double eps,
           float extraScale, cudaStream_t s, void *p16 = nullptr,
           Half h = Half::Bf16);
/// Several such updates with the same scalars in one launch (at most
/// kAdamWBatch tensors; weight decay on those marked): a model's many
/// small parameters cost one launch. vec (LLMRT_CUDA_ADAMW_VEC=1): 16-byte
/// vectors where a tensor's arrays are 16-byte aligned.
struct AdamWTensor {
  float *p;
  const float *grad;
  float *m, *v;
  int64_t n;
  bool decay; ///< weight decay applies (the launch's weightDecay)
  /// The parameter's 16-bit copy (the launch's Half type; optional): the
  /// updated p rounded as toBf16 / toFp16 round, written with it.
  void *p16 = nullptr;
};
constexpr int kAdamWBatch = 24;
void adamwBatch(const AdamWTensor *tensors, int count, const float *lr,
                const int64_t *step, const float *weightDecay,
                const float *gradScale, double beta1, double beta2, double eps,
                float extraScale, cudaStream_t s, bool vec = false,
                Half h = Half::Bf16);

} // namespace llmrt::cuda

#endif // LLMRT_CUDAKERNELS_H
