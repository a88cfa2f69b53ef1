//===- CpuKernels.h - CPU kernels of the runtime ------------------*- C++ -*-===//
//
// Forward and backward kernels for every llm op, and the optimizer, on the
// CPU. Templated on the element type (float for training, double for the
// finite-difference gradient tests); instantiated for both in CpuKernels.cpp.
//
// Conventions (all tensors row-major and contiguous):
// - `rows` is the product of all but the last axis, `C` the last axis.
// - Activations are [B, S, features]; attention heads live inside the
//   feature axis (features = heads * head_dim), as in the llm dialect.
// - "overwrite" outputs are fully written (no need to zero them first);
//   no kernel accumulates into its outputs unless it says so.
// - Elementwise kernels accept out == an input (in place).
// - Parallelism: GEMMs through OpenBLAS (cblas_sgemm / cblas_dgemm), other
//   loops with OpenMP; setThreads() sets both.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_CPUKERNELS_H
#define LLMRT_CPUKERNELS_H

#include <cstdint>

namespace llmrt::cpu {

/// Threads for OpenMP loops and OpenBLAS (n <= 0: leave the defaults).
void setThreads(int n);

// Embeddings ---------------------------------------------------------------

/// out[t, :] = table[ids[t], :] for t in [0, n). ids are already validated.
template <typename T>
void embeddingFwd(const int32_t *ids, const T *table, T *out, int64_t n,
                  int64_t C);
/// dtable = 0; dtable[ids[t], :] += dout[t, :]  (dtable is [V, C], overwritten).
template <typename T>
void embeddingBwd(const int32_t *ids, const T *dout, T *dtable, int64_t n,
                  int64_t V, int64_t C);
/// out[s, :] = table[s, :] for s in [0, S).
template <typename T>
void positionEmbeddingFwd(const T *table, T *out, int64_t S, int64_t C);
/// dtable[s, :] = dout[s, :] for s < S, 0 for S <= s < P (overwritten).
template <typename T>
void positionEmbeddingBwd(const T *dout, T *dtable, int64_t S, int64_t P,
                          int64_t C);

// Normalization ------------------------------------------------------------

/// y = (x - mean) / sqrt(var + eps) * w + b over the last axis (biased var).
template <typename T>
void layerNormFwd(const T *x, const T *w, const T *b, T *y, int64_t rows,
                  int64_t C, double eps);
/// dx, dw, db overwritten (dw, db summed over rows).
template <typename T>
void layerNormBwd(const T *x, const T *w, const T *dy, T *dx, T *dw, T *db,
                  int64_t rows, int64_t C, double eps);
/// y = x / sqrt(mean(x^2) + eps) * w.
template <typename T>
void rmsNormFwd(const T *x, const T *w, T *y, int64_t rows, int64_t C,
                double eps);
template <typename T>
void rmsNormBwd(const T *x, const T *w, const T *dy, T *dx, T *dw,
                int64_t rows, int64_t C, double eps);

// Linear -------------------------------------------------------------------

/// y[rows, out] = x[rows, in] · W (+ bias[out] if bias != nullptr), with W
/// [in, out], or [out, in] when transW (then y = x · Wᵀ).
template <typename T>
void linearFwd(const T *x, const T *w, const T *bias, T *y, int64_t rows,
               int64_t in, int64_t out, bool transW);
/// dx[rows, in] = dy[rows, out] · (W as [in, out])ᵀ.
template <typename T>
void linearBwdInput(const T *dy, const T *w, T *dx, int64_t rows, int64_t in,
                    int64_t out, bool transW);
/// dW in W's own layout: xᵀ·dy ([in, out]) or dyᵀ·x ([out, in] when transW).
template <typename T>
void linearBwdWeight(const T *x, const T *dy, T *dw, int64_t rows, int64_t in,
                     int64_t out, bool transW);
/// db[c] = sum over rows of dy[r, c] (bias gradient; also the gradient of a
/// broadcast operand of add/mul).
template <typename T>
void sumRows(const T *dy, T *db, int64_t rows, int64_t C);

// Layout -------------------------------------------------------------------

/// dst[r, dstOff + j] = src[r, srcOff + j] for j in [0, width): a slice of
/// the last axis (split forward, concat = split backward).
template <typename T>
void copyColumns(const T *src, int64_t srcCols, int64_t srcOff, T *dst,
                 int64_t dstCols, int64_t dstOff, int64_t width, int64_t rows);

// Attention ----------------------------------------------------------------

/// Rotary embedding on x [B, S, H * D], Hugging Face "rotate half": with
/// d = D/2, f_i = theta^(-2i/D), angle a = p * f_i at position p:
///   y[i] = x[i] cos a - x[i+d] sin a,  y[i+d] = x[i+d] cos a + x[i] sin a.
/// Angles are computed in double and cos/sin rounded to T. inverse: rotate
/// by -a (the backward of the forward rotation). D is even; p is the index
/// within S.
template <typename T>
void rope(const T *x, T *y, int64_t B, int64_t S, int64_t H, int64_t D,
          double theta, bool inverse);

/// Bytes of scratch the attention kernels need for these sizes (per call).
int64_t attentionWorkspaceBytes(int64_t B, int64_t S, int64_t Hq, int64_t D,
                                int elementBytes);
/// out = softmax(q kᵀ · scale + causal mask) v per head; q, out [B, S, Hq*D],
/// k, v [B, S, Hkv*D]; query head h reads kv head h / (Hq / Hkv). lse
/// (optional, [B, Hq, S]): each row's log-sum-exp, log sum_j exp(s_ij).
/// `ld` (optional): the row strides of q, k, v (and in the backward dq,
/// dk, dv), in elements, where they are column slices of wider rows
/// (AttentionLayout; the pointers are at the slice's first column); out
/// and dout are dense.
template <typename T>
void attentionFwd(const T *q, const T *k, const T *v, T *out, int64_t B,
                  int64_t S, int64_t Hq, int64_t Hkv, int64_t D, double scale,
                  bool causal, void *workspace, T *lse = nullptr,
                  const int64_t *ld = nullptr);
/// dq, dk, dv overwritten (dk, dv summed over the query heads of a group).
template <typename T>
void attentionBwd(const T *q, const T *k, const T *v, const T *dout, T *dq,
                  T *dk, T *dv, int64_t B, int64_t S, int64_t Hq, int64_t Hkv,
                  int64_t D, double scale, bool causal, void *workspace,
                  const int64_t *ld = nullptr);

// Elementwise --------------------------------------------------------------

/// GELU, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
template <typename T> void geluFwd(const T *x, T *y, int64_t n);
template <typename T> void geluBwd(const T *x, const T *dy, T *dx, int64_t n);
/// SiLU: x * sigmoid(x).
template <typename T> void siluFwd(const T *x, T *y, int64_t n);
template <typename T> void siluBwd(const T *x, const T *dy, T *dx, int64_t n);
/// y[i] = a[i] + b[i % nb] (nb divides n; nb == n: no broadcast).
template <typename T>
void add(const T *a, const T *b, T *y, int64_t n, int64_t nb);
/// y[i] = a[i] * b[i % nb].
template <typename T>
void mul(const T *a, const T *b, T *y, int64_t n, int64_t nb);
/// y[i] = a[i] * s.
template <typename T> void scale(const T *a, T s, T *y, int64_t n);

// Loss ---------------------------------------------------------------------

/// *loss = mean over rows of (logsumexp(logits[r, :]) - logits[r, t[r]]).
template <typename T>
void crossEntropyFwd(const T *logits, const int32_t *targets, T *loss,
                     int64_t rows, int64_t V);
/// dlogits = (softmax(logits) - onehot(targets)) * dloss / rows.
template <typename T>
void crossEntropyBwd(const T *logits, const int32_t *targets, T dloss,
                     T *dlogits, int64_t rows, int64_t V);

// Optimizer ----------------------------------------------------------------

/// Sum of squares, accumulated in double.
template <typename T> double sumSquares(const T *x, int64_t n);

/// One AdamW step in PyTorch's arithmetic (torch.optim.AdamW, foreach off),
/// on a gradient scaled by gradScale (the clipping coefficient, 1 if none):
///   g = grad * gradScale
///   p = p * (1 - lr * weightDecay)
///   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
///   denom = sqrt(v) / sqrt(1 - beta2^step) + eps
///   p = p - (lr / (1 - beta1^step)) * m / denom
/// step is 1-based.
template <typename T>
void adamw(T *p, const T *grad, T *m, T *v, int64_t n, double lr,
           double beta1, double beta2, double eps, double weightDecay,
           int64_t step, double gradScale);

} // namespace llmrt::cpu

#endif // LLMRT_CPUKERNELS_H
