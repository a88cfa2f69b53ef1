//===- CpuKernels.cpp - CPU kernels of the runtime ------------------------===//
//
// Implementation of llmrt/CpuKernels.h. Matrix products go to OpenBLAS
// (cblas_sgemm / cblas_dgemm, with leading dimensions to address one head's
// columns of a [B, S, H * D] tensor in place); everything else is OpenMP
// loops.
//
// Determinism: no kernel depends on the order in which threads finish.
// Reductions over rows (sumRows, the norms' dw / db, embeddingBwd) are
// parallelised over column chunks, each column summed over the rows in
// order, so their results do not even depend on the thread count; scalar
// reductions (cross-entropy, sumSquares) use a fixed number of row blocks
// combined in order. Attention's grouped-query backward gives each
// (batch, kv head) pair to one thread, which walks the group's query heads
// in order.
//
// Numerics: means, variances, softmax and log-sum-exp sums, and sums of
// squares are accumulated in double; softmax and cross-entropy subtract the
// row maximum before exponentiating.
//
//===----------------------------------------------------------------------===//
#include "llmrt/CpuKernels.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#if defined(__SSE__) || defined(__x86_64__)
#include <xmmintrin.h>
#endif
#include <vector>

// Declared by OpenBLAS's cblas.h; repeated so that a reference cblas.h
// found first on the include path still compiles against OpenBLAS.
extern "C" void openblas_set_num_threads(int);
extern "C" int openblas_get_num_threads(void);
extern "C" int openblas_get_parallel(void);

namespace llmrt::cpu {

namespace {

/// Below this many elements of work a loop runs on the calling thread: the
/// cost of waking a team exceeds the work.
constexpr int64_t kParallelGrain = 1 << 14;

/// Whether `work` elements of work are worth a parallel region.
constexpr bool worthThreads(int64_t work) { return work >= 2 * kParallelGrain; }

/// Row blocks of the scalar reductions; fixed, so that the result does not
/// depend on the number of threads.
constexpr int64_t kSumBlocks = 64;

/// Widest column chunk of the column-parallel row reductions.
constexpr int64_t kMaxColChunk = 256;

/// Processors as seen at the first call; fixes the attention workspace's
/// number of per-thread slots for the life of the process.
int numProcs() {
  static const int n = std::max(1, omp_get_num_procs());
  return n;
}

/// Threads a parallel region started here would get (1 inside a region).
int availableThreads() {
  return omp_in_parallel() ? 1 : std::max(1, omp_get_max_threads());
}

// GEMM ---------------------------------------------------------------------

void blasGemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
              float alpha, const float *a, int lda, const float *b, int ldb,
              float beta, float *c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c,
              ldc);
}

void blasGemm(CBLAS_TRANSPOSE ta, CBLAS_TRANSPOSE tb, int m, int n, int k,
              double alpha, const double *a, int lda, const double *b, int ldb,
              double beta, double *c, int ldc) {
  cblas_dgemm(CblasRowMajor, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c,
              ldc);
}

/// Row-major C[M, N] = alpha op(A)[M, K] op(B)[K, N] + beta C, where op
/// transposes when the flag says so and A, B, C may be strided views (lda,
/// ldb, ldc: elements between consecutive rows as stored). Handles the
/// empty cases that BLAS implementations treat inconsistently.
template <typename T>
void gemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, T alpha,
          const T *A, int64_t lda, const T *B, int64_t ldb, T beta, T *C,
          int64_t ldc) {
  if (M <= 0 || N <= 0)
    return;
  if (K <= 0) {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j)
        C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  // As stored, A has rows x cols = (transA ? K x M : M x K), likewise B.
  lda = std::max<int64_t>(lda, 1);
  ldb = std::max<int64_t>(ldb, 1);
  ldc = std::max<int64_t>(ldc, 1);
  blasGemm(transA ? CblasTrans : CblasNoTrans,
           transB ? CblasTrans : CblasNoTrans, static_cast<int>(M),
           static_cast<int>(N), static_cast<int>(K), alpha, A,
           static_cast<int>(lda), B, static_cast<int>(ldb), beta, C,
           static_cast<int>(ldc));
}

/// While alive, makes the pthread build of OpenBLAS single-threaded so that
/// GEMMs issued concurrently from an OpenMP team run on their own thread
/// instead of contending for OpenBLAS's pool. (The OpenMP build of OpenBLAS
/// does this by itself inside a parallel region; the sequential build needs
/// nothing.)
class SerialBlasScope {
public:
  SerialBlasScope() {
    if (openblas_get_parallel() != 1)
      return;
    saved = openblas_get_num_threads();
    if (saved > 1)
      openblas_set_num_threads(1);
  }
  ~SerialBlasScope() {
    if (saved > 1)
      openblas_set_num_threads(saved);
  }
  SerialBlasScope(const SerialBlasScope &) = delete;
  SerialBlasScope &operator=(const SerialBlasScope &) = delete;

private:
  int saved = 0;
};

// Loop helpers -------------------------------------------------------------

/// Calls fn(lo, hi) on disjoint contiguous ranges covering [0, n), one per
/// thread, in parallel when n is at least a couple of grains.
template <typename F> void parallelRanges(int64_t n, F fn) {
  if (n <= 0)
    return;
  int64_t parts = std::min<int64_t>(availableThreads(),
                                    (n + kParallelGrain - 1) / kParallelGrain);
  if (parts <= 1) {
    fn(int64_t(0), n);
    return;
  }
  const int team = static_cast<int>(parts);
#pragma omp parallel num_threads(team)
  {
    int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    fn(n * t / nt, n * (t + 1) / nt);
  }
}

/// Sum of f(i) for i in [0, n) in double: kSumBlocks fixed row blocks, each
/// summed in order (blocks in parallel), then the blocks in order. The
/// result is independent of the thread count. `workPerItem` only decides
/// whether to go parallel.
template <typename F>
double deterministicSum(int64_t n, int64_t workPerItem, F f) {
  if (n <= 0)
    return 0.0;
  double partial[kSumBlocks];
  const int64_t blocks = std::min(n, kSumBlocks);
  const bool par = blocks > 1 && worthThreads(n * workPerItem);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    double s = 0.0;
    for (int64_t i = n * blk / blocks, e = n * (blk + 1) / blocks; i < e; ++i)
      s += f(i);
    partial[blk] = s;
  }
  double total = 0.0;
  for (int64_t blk = 0; blk < blocks; ++blk)
    total += partial[blk];
  return total;
}

/// Column chunk for the column-parallel row reductions: about two chunks
/// per thread, a multiple of 16 elements (whole cache lines, so threads do
/// not share lines of the rows they write), at most kMaxColChunk. Only the
/// speed depends on it; every column is summed over the rows in order.
int64_t columnChunk(int64_t C) {
  int64_t nt = availableThreads();
  int64_t chunk = (C + 2 * nt - 1) / (2 * nt);
  chunk = (chunk + 15) / 16 * 16;
  return std::clamp<int64_t>(chunk, 16, kMaxColChunk);
}

/// For each chunk of columns [c0, c0 + width) (chunks in parallel): zeroes
/// a double accumulator acc[0, width), calls f(r, c0, width, acc) for every
/// row r in order to add that row's contribution, then done(c0, width, acc)
/// to store the sums.
template <typename F, typename Done>
void columnReduce(int64_t rows, int64_t C, F f, Done done) {
  if (C <= 0)
    return;
  const int64_t chunk = columnChunk(C);
  const int64_t chunks = (C + chunk - 1) / chunk;
  const bool par = chunks > 1 && worthThreads(rows * C);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t ci = 0; ci < chunks; ++ci) {
    const int64_t c0 = ci * chunk, width = std::min(chunk, C - c0);
    double acc[kMaxColChunk];
    std::fill(acc, acc + width, 0.0);
    for (int64_t r = 0; r < rows; ++r)
      f(r, c0, width, acc);
    done(c0, width, acc);
  }
}

/// Numerically stable in-place softmax of row[0, n); row[n, S) is zeroed
/// (the causally masked columns). Sums in double. Returns the row's
/// log-sum-exp.
template <typename T> double softmaxRow(T *row, int64_t n, int64_t S) {
  T m = row[0];
  for (int64_t j = 1; j < n; ++j)
    m = std::max(m, row[j]);
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) {
    T e = std::exp(row[j] - m);
    row[j] = e;
    sum += e;
  }
  const double inv = 1.0 / sum;
  for (int64_t j = 0; j < n; ++j)
    row[j] = static_cast<T>(row[j] * inv);
  std::fill(row + n, row + S, T(0));
  return static_cast<double>(m) + std::log(sum);
}

} // namespace

void setThreads(int n) {
  if (n > 0) {
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
  }
  // Subnormal floats flushed to zero (FTZ) and read as zero (DAZ) on every
  // thread of the pool: some arguments of the activations' exp took the
  // slow microcoded path (GELU forward 8x slower on inputs near 1 than on
  // zeros). Values below 2^-126 change by less than that; the parity with
  // PyTorch is unchanged.
#if defined(__SSE__) || defined(__x86_64__)
#pragma omp parallel
  _mm_setcsr(_mm_getcsr() | 0x8040);
  _mm_setcsr(_mm_getcsr() | 0x8040);
#endif
}

// Embeddings ---------------------------------------------------------------

template <typename T>
void embeddingFwd(const int32_t *ids, const T *table, T *out, int64_t n,
                  int64_t C) {
#pragma omp parallel for schedule(static) if (worthThreads(n * C))
  for (int64_t t = 0; t < n; ++t)
    std::memcpy(out + t * C, table + int64_t(ids[t]) * C, sizeof(T) * C);
}

template <typename T>
void embeddingBwd(const int32_t *ids, const T *dout, T *dtable, int64_t n,
                  int64_t V, int64_t C) {
  if (C <= 0)
    return;
  // Each thread owns a chunk of columns of the whole table and adds the
  // tokens in order: repeated ids sum deterministically, without races.
  const int64_t chunk = columnChunk(C);
  const int64_t chunks = (C + chunk - 1) / chunk;
  const bool par = chunks > 1 && worthThreads((n + V) * C);
#pragma omp parallel for schedule(static) if (par)
  for (int64_t ci = 0; ci < chunks; ++ci) {
    const int64_t c0 = ci * chunk, width = std::min(chunk, C - c0);
    for (int64_t r = 0; r < V; ++r)
      std::fill(dtable + r * C + c0, dtable + r * C + c0 + width, T(0));
    for (int64_t t = 0; t < n; ++t) {
      T *dst = dtable + int64_t(ids[t]) * C + c0;
      const T *src = dout + t * C + c0;
      for (int64_t j = 0; j < width; ++j)
        dst[j] += src[j];
    }
  }
}

template <typename T>
void positionEmbeddingFwd(const T *table, T *out, int64_t S, int64_t C) {
  if (S * C > 0)
    std::memcpy(out, table, sizeof(T) * S * C);
}

template <typename T>
void positionEmbeddingBwd(const T *dout, T *dtable, int64_t S, int64_t P,
                          int64_t C) {
  if (S * C > 0)
    std::memcpy(dtable, dout, sizeof(T) * S * C);
  if (P > S)
    std::fill(dtable + S * C, dtable + P * C, T(0));
}

// Normalization ------------------------------------------------------------

namespace {

/// Mean and 1 / sqrt(biased variance + eps) of x[0, C), two-pass in double.
template <typename T>
void meanRstd(const T *x, int64_t C, double eps, double &mean, double &rstd) {
  double s = 0.0;
  for (int64_t j = 0; j < C; ++j)
    s += x[j];
  mean = s / C;
  double v = 0.0;
  for (int64_t j = 0; j < C; ++j) {
    double d = x[j] - mean;
    v += d * d;
  }
  rstd = 1.0 / std::sqrt(v / C + eps);
}

/// 1 / sqrt(mean(x^2) + eps) of x[0, C), in double.
template <typename T> double rmsRstd(const T *x, int64_t C, double eps) {
  double s = 0.0;
  for (int64_t j = 0; j < C; ++j)
    s += double(x[j]) * x[j];
  return 1.0 / std::sqrt(s / C + eps);
}

} // namespace

template <typename T>
void layerNormFwd(const T *x, const T *w, const T *b, T *y, int64_t rows,
                  int64_t C, double eps) {
#pragma omp parallel for schedule(static) if (worthThreads(rows * C))
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * C;
    T *yr = y + r * C;
    double mean, rstd;
    meanRstd(xr, C, eps, mean, rstd);
    for (int64_t j = 0; j < C; ++j)
      yr[j] = static_cast<T>((xr[j] - mean) * rstd * w[j] + b[j]);
  }
}

namespace {
/// Scratch of at least `n` doubles owned by the calling thread: allocated on
/// the first step, reused by every later one (no allocation in the loop).
double *rowScratch(int64_t n) {
  static thread_local std::vector<double> scratch;
  if (static_cast<int64_t>(scratch.size()) < n)
    scratch.resize(n);
  return scratch.data();
}
} // namespace

template <typename T>
void layerNormBwd(const T *x, const T *w, const T *dy, T *dx, T *dw, T *db,
                  int64_t rows, int64_t C, double eps) {
  // Row statistics first, then dw / db, then dx: dx may alias dy or x.
  double *stats = rowScratch(2 * std::max<int64_t>(rows, 0));
#pragma omp parallel for schedule(static) if (worthThreads(rows * C))
  for (int64_t r = 0; r < rows; ++r)
    meanRstd(x + r * C, C, eps, stats[2 * r], stats[2 * r + 1]);

  // dw[c] = sum_r dy xhat, db[c] = sum_r dy.
  columnReduce(
      rows, C,
      [&](int64_t r, int64_t c0, int64_t width, double *acc) {
        const T *xr = x + r * C + c0, *dyr = dy + r * C + c0;
        const double mean = stats[2 * r], rstd = stats[2 * r + 1];
        for (int64_t j = 0; j < width; ++j)
          acc[j] += dyr[j] * ((xr[j] - mean) * rstd);
      },
      [&](int64_t c0, int64_t width, const double *acc) {
        for (int64_t j = 0; j < width; ++j)
          dw[c0 + j] = static_cast<T>(acc[j]);
      });
  sumRows(dy, db, rows, C);

#pragma omp parallel for schedule(static) if (worthThreads(rows * C))
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * C, *dyr = dy + r * C;
    T *dxr = dx + r * C;
    const double mean = stats[2 * r], rstd = stats[2 * r + 1];
    // dx = rstd (g - mean(g) - xhat mean(g xhat)), g = dy w.
    double sg = 0.0, sgx = 0.0;
    for (int64_t j = 0; j < C; ++j) {
      double g = double(dyr[j]) * w[j];
      sg += g;
      sgx += g * ((xr[j] - mean) * rstd);
    }
    const double mg = sg / C, mgx = sgx / C;
    for (int64_t j = 0; j < C; ++j) {
      double xhat = (xr[j] - mean) * rstd;
      dxr[j] = static_cast<T>(rstd * (double(dyr[j]) * w[j] - mg - xhat * mgx));
    }
  }
}

template <typename T>
void rmsNormFwd(const T *x, const T *w, T *y, int64_t rows, int64_t C,
                double eps) {
#pragma omp parallel for schedule(static) if (worthThreads(rows * C))
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * C;
    T *yr = y + r * C;
    const double rstd = rmsRstd(xr, C, eps);
    for (int64_t j = 0; j < C; ++j)
      yr[j] = static_cast<T>(xr[j] * rstd * w[j]);
  }
}

template <typename T>
void rmsNormBwd(const T *x, const T *w, const T *dy, T *dx, T *dw, int64_t rows,
                int64_t C, double eps) {
  // As layerNormBwd: statistics, dw, then dx (which may alias dy or x).
  double *rstds = rowScratch(std::max<int64_t>(rows, 0));
#pragma omp parallel for schedule(static) if (worthThreads(rows * C))
  for (int64_t r = 0; r < rows; ++r)
    rstds[r] = rmsRstd(x + r * C, C, eps);

  columnReduce(
      rows, C,
      [&](int64_t r, int64_t c0, int64_t width, double *acc) {
        const T *xr = x + r * C + c0, *dyr = dy + r * C + c0;
        const double rstd = rstds[r];
        for (int64_t j = 0; j < width; ++j)
          acc[j] += dyr[j] * (xr[j] * rstd);
      },
      [&](int64_t c0, int64_t width, const double *acc) {
        for (int64_t j = 0; j < width; ++j)
          dw[c0 + j] = static_cast<T>(acc[j]);
      });

#pragma omp parallel for schedule(static) if (worthThreads(rows * C))
  for (int64_t r = 0; r < rows; ++r) {
    const T *xr = x + r * C, *dyr = dy + r * C;
    T *dxr = dx + r * C;
    const double rstd = rstds[r];
    // dx = rstd (g - xhat mean(g xhat)), g = dy w, xhat = x rstd.
    double sgx = 0.0;
    for (int64_t j = 0; j < C; ++j)
      sgx += double(dyr[j]) * w[j] * (xr[j] * rstd);
    const double mgx = sgx / C;
    for (int64_t j = 0; j < C; ++j)
      dxr[j] =
          static_cast<T>(rstd * (double(dyr[j]) * w[j] - (xr[j] * rstd) * mgx));
  }
}

// Linear -------------------------------------------------------------------

template <typename T>
void linearFwd(const T *x, const T *w, const T *bias, T *y, int64_t rows,
               int64_t in, int64_t out, bool transW) {
  // y[rows, out] = x[rows, in] · (W [in, out], or Wᵀ of W [out, in]).
  gemm<T>(false, transW, rows, out, in, T(1), x, in, w, transW ? in : out, T(0),
          y, out);
  if (!bias)
    return;
#pragma omp parallel for schedule(static) if (worthThreads(rows * out))
  for (int64_t r = 0; r < rows; ++r) {
    T *yr = y + r * out;
    for (int64_t j = 0; j < out; ++j)
      yr[j] += bias[j];
  }
}

template <typename T>
void linearBwdInput(const T *dy, const T *w, T *dx, int64_t rows, int64_t in,
                    int64_t out, bool transW) {
  // dx[rows, in] = dy[rows, out] · Wᵀ for W [in, out]; = dy · W for W
  // stored [out, in].
  gemm<T>(false, !transW, rows, in, out, T(1), dy, out, w, transW ? in : out,
          T(0), dx, in);
}

template <typename T>
void linearBwdWeight(const T *x, const T *dy, T *dw, int64_t rows, int64_t in,
                     int64_t out, bool transW) {
  if (transW) // dW[out, in] = dyᵀ · x.
    gemm<T>(true, false, out, in, rows, T(1), dy, out, x, in, T(0), dw, in);
  else // dW[in, out] = xᵀ · dy.
    gemm<T>(true, false, in, out, rows, T(1), x, in, dy, out, T(0), dw, out);
}

template <typename T>
void sumRows(const T *dy, T *db, int64_t rows, int64_t C) {
  columnReduce(
      rows, C,
      [&](int64_t r, int64_t c0, int64_t width, double *acc) {
        const T *row = dy + r * C + c0;
        for (int64_t j = 0; j < width; ++j)
          acc[j] += row[j];
      },
      [&](int64_t c0, int64_t width, const double *acc) {
        for (int64_t j = 0; j < width; ++j)
          db[c0 + j] = static_cast<T>(acc[j]);
      });
}

// Layout -------------------------------------------------------------------

template <typename T>
void copyColumns(const T *src, int64_t srcCols, int64_t srcOff, T *dst,
                 int64_t dstCols, int64_t dstOff, int64_t width, int64_t rows) {
  if (width <= 0)
    return;
#pragma omp parallel for schedule(static) if (worthThreads(rows * width))
  for (int64_t r = 0; r < rows; ++r)
    std::memcpy(dst + r * dstCols + dstOff, src + r * srcCols + srcOff,
                sizeof(T) * width);
}

// Attention ----------------------------------------------------------------

template <typename T>
void rope(const T *x, T *y, int64_t B, int64_t S, int64_t H, int64_t D,
          double theta, bool inverse) {
  // Angles in double, then cos/sin rounded to T: the most accurate table,
  // and the one the PyTorch reference (python/llm_ref) builds.
  const int64_t d = D / 2, rowLen = H * D;
#pragma omp parallel for schedule(static) if (worthThreads(B * S * rowLen))
  for (int64_t bs = 0; bs < B * S; ++bs) {
    const double p = static_cast<double>(bs % S);
    const T *xr = x + bs * rowLen;
    T *yr = y + bs * rowLen;
    for (int64_t i = 0; i < d; ++i) {
      const double f =
          1.0 / std::pow(theta, static_cast<double>(2 * i) / static_cast<double>(D));
      const double a = p * f;
      const T c = static_cast<T>(std::cos(a));
      const T s = static_cast<T>(inverse ? -std::sin(a) : std::sin(a));
      for (int64_t h = 0; h < H; ++h) {
        const T x0 = xr[h * D + i], x1 = xr[h * D + i + d];
        yr[h * D + i] = x0 * c - x1 * s;
        yr[h * D + i + d] = x1 * c + x0 * s;
      }
    }
  }
}

namespace {

/// Workspace layout: `attentionSlots` per-thread slots, each holding two
/// S x S matrices (the probabilities P and, in the backward, dS), padded to
/// 64 bytes. The slot count depends only on B, Hq and the number of
/// processors, never on the current thread setting, so a workspace sized
/// once stays valid after setThreads().
int64_t attentionSlots(int64_t B, int64_t Hq) {
  return std::max<int64_t>(1, std::min<int64_t>(B * Hq, numProcs()));
}

int64_t attentionSlotBytes(int64_t S, int elementBytes) {
  return (2 * S * S * elementBytes + 63) / 64 * 64;
}

/// How to run `pairs` independent (batch, head) items of `workPerPair`
/// multiply-adds each: `team` threads each taking whole items with
/// single-threaded GEMMs, or (team == 1) one item at a time with OpenBLAS
/// threads and row-parallel softmax (too few items to share out, or too
/// little work to wake a team for).
int attentionTeam(int64_t pairs, int64_t workPerPair, int64_t slots) {
  const int64_t nt = availableThreads();
  if (nt <= 1 || 2 * pairs < nt || pairs * workPerPair < 8 * kParallelGrain)
    return 1;
  return static_cast<int>(std::min({nt, slots, pairs}));
}

/// Rows per block of the causal kernels: a block of rows [i0, i1) only
/// reads keys [0, i1), so the masked upper triangle is (mostly) never
/// computed: about half the work of the full S x S products.
constexpr int64_t kCausalBlock = 64;

/// Row blocks [i0, i1) and the columns each needs: all S, or [0, i1) when
/// causal.
template <typename F>
void forEachRowBlock(int64_t S, bool causal, F f) {
  if (!causal) {
    f(int64_t(0), S, S);
    return;
  }
  for (int64_t i0 = 0; i0 < S; i0 += kCausalBlock) {
    int64_t i1 = std::min(S, i0 + kCausalBlock);
    f(i0, i1, i1);
  }
}

/// Fills P[S, S] with softmax(scale · q_h k_gᵀ + mask) for one head, and
/// lse[S] (when given) with its rows' log-sum-exp.
template <typename T>
void attentionProbs(const T *qh, int64_t ldq, const T *kg, int64_t ldkv, T *P,
                    int64_t S, int64_t D, T scale, bool causal,
                    bool rowsParallel, T *lse = nullptr) {
  forEachRowBlock(S, causal, [&](int64_t i0, int64_t i1, int64_t cols) {
    gemm<T>(false, true, i1 - i0, cols, D, scale, qh + i0 * ldq, ldq, kg, ldkv,
            T(0), P + i0 * S, S);
  });
#pragma omp parallel for schedule(static) if (rowsParallel && S >= 64)
  for (int64_t i = 0; i < S; ++i) {
    const double l = softmaxRow(P + i * S, causal ? i + 1 : S, S);
    if (lse)
      lse[i] = static_cast<T>(l);
  }
}

/// Runs body(pair, slot, rowsParallel) for pair in [0, pairs), spreading
/// whole pairs over threads when there are enough of them.
template <typename F>
void forEachPair(int64_t pairs, int64_t workPerPair, int64_t slots, char *ws,
                 int64_t slotBytes, F body) {
  const int team = attentionTeam(pairs, workPerPair, slots);
  if (team <= 1) {
    for (int64_t pr = 0; pr < pairs; ++pr)
      body(pr, ws, true);
    return;
  }
  SerialBlasScope serialBlas;
#pragma omp parallel num_threads(team)
  {
    char *slot = ws + omp_get_thread_num() * slotBytes;
#pragma omp for schedule(static)
    for (int64_t pr = 0; pr < pairs; ++pr)
      body(pr, slot, false);
  }
}

} // namespace

int64_t attentionWorkspaceBytes(int64_t B, int64_t S, int64_t Hq, int64_t D,
                                int elementBytes) {
  (void)D;
  if (B <= 0 || S <= 0 || Hq <= 0)
    return 0;
  return attentionSlots(B, Hq) * attentionSlotBytes(S, elementBytes);
}

template <typename T>
void attentionFwd(const T *q, const T *k, const T *v, T *out, int64_t B,
                  int64_t S, int64_t Hq, int64_t Hkv, int64_t D, double scale,
                  bool causal, void *workspace, T *lse, const int64_t *ld) {
  if (B <= 0 || S <= 0 || Hq <= 0 || D <= 0)
    return;
  assert(Hkv > 0 && Hq % Hkv == 0 && "query heads must group evenly");
  const int64_t group = Hq / Hkv, ldo = Hq * D;
  const int64_t ldq = ld ? ld[0] : ldo, ldk = ld ? ld[1] : Hkv * D,
                ldv = ld ? ld[2] : Hkv * D;
  const int64_t slotBytes = attentionSlotBytes(S, sizeof(T));
  forEachPair(B * Hq, 2 * S * S * D, attentionSlots(B, Hq),
              static_cast<char *>(workspace), slotBytes,
              [&](int64_t pr, char *slot, bool rowsParallel) {
                const int64_t b = pr / Hq, h = pr % Hq, g = h / group;
                T *P = reinterpret_cast<T *>(slot);
                const T *qh = q + b * S * ldq + h * D;
                const T *kg = k + b * S * ldk + g * D;
                const T *vg = v + b * S * ldv + g * D;
                attentionProbs(qh, ldq, kg, ldk, P, S, D, T(scale), causal,
                               rowsParallel, lse ? lse + pr * S : nullptr);
                // out_h[S, D] = P[S, S] · v_g[S, D], by row blocks.
                T *oh = out + b * S * ldo + h * D;
                forEachRowBlock(S, causal, [&](int64_t i0, int64_t i1,
                                               int64_t cols) {
                  gemm<T>(false, false, i1 - i0, D, cols, T(1), P + i0 * S, S,
                          vg, ldv, T(0), oh + i0 * ldo, ldo);
                });
              });
}

template <typename T>
void attentionBwd(const T *q, const T *k, const T *v, const T *dout, T *dq,
                  T *dk, T *dv, int64_t B, int64_t S, int64_t Hq, int64_t Hkv,
                  int64_t D, double scale, bool causal, void *workspace,
                  const int64_t *ld) {
  if (B <= 0 || S <= 0 || Hq <= 0 || D <= 0)
    return;
  assert(Hkv > 0 && Hq % Hkv == 0 && "query heads must group evenly");
  const int64_t group = Hq / Hkv, ldo = Hq * D, ldkv = Hkv * D;
  const int64_t ldq = ld ? ld[0] : ldo, ldk = ld ? ld[1] : ldkv,
                ldv = ld ? ld[2] : ldkv, lddq = ld ? ld[3] : ldo,
                lddk = ld ? ld[4] : ldkv, lddv = ld ? ld[5] : ldkv;
  const int64_t slotBytes = attentionSlotBytes(S, sizeof(T));
  const T sc = static_cast<T>(scale);
  // One (batch, kv head) per item: its query heads accumulate into dk_g and
  // dv_g in head order on one thread.
  forEachPair(
      B * Hkv, 4 * group * S * S * D, attentionSlots(B, Hq),
      static_cast<char *>(workspace), slotBytes,
      [&](int64_t pr, char *slot, bool rowsParallel) {
        const int64_t b = pr / Hkv, g = pr % Hkv;
        T *P = reinterpret_cast<T *>(slot);
        T *dS = P + S * S;
        const T *kg = k + b * S * ldk + g * D;
        const T *vg = v + b * S * ldv + g * D;
        T *dkg = dk + b * S * lddk + g * D;
        T *dvg = dv + b * S * lddv + g * D;
        for (int64_t i = 0; i < S; ++i) {
          std::fill(dkg + i * lddk, dkg + i * lddk + D, T(0));
          std::fill(dvg + i * lddv, dvg + i * lddv + D, T(0));
        }
        for (int64_t h = g * group; h < (g + 1) * group; ++h) {
          const T *qh = q + b * S * ldq + h * D;
          const T *doh = dout + b * S * ldo + h * D;
          T *dqh = dq + b * S * lddq + h * D;
          attentionProbs(qh, ldq, kg, ldk, P, S, D, sc, causal, rowsParallel);
          // By row blocks [i0, i1), which read columns [0, cols) only:
          forEachRowBlock(S, causal, [&](int64_t i0, int64_t i1, int64_t cols) {
            const int64_t rows = i1 - i0;
            T *Pb = P + i0 * S, *dSb = dS + i0 * S;
            // dV_g[0, cols) += P_bᵀ dO_h[i0, i1).
            gemm<T>(true, false, cols, D, rows, T(1), Pb, S, doh + i0 * ldo,
                    ldo, T(1), dvg, lddv);
            // dP_b = dO_h[i0, i1) V_g[0, cols)ᵀ, then in place
            // dS = P ∘ (dP − rowsum(dP ∘ P)); masked entries have P = 0,
            // hence dS = 0.
            gemm<T>(false, true, rows, cols, D, T(1), doh + i0 * ldo, ldo, vg,
                    ldv, T(0), dSb, S);
#pragma omp parallel for schedule(static) if (rowsParallel && rows >= 32)
            for (int64_t i = 0; i < rows; ++i) {
              const T *prow = Pb + i * S;
              T *drow = dSb + i * S;
              double dot = 0.0;
              for (int64_t j = 0; j < cols; ++j)
                dot += double(drow[j]) * prow[j];
              for (int64_t j = 0; j < cols; ++j)
                drow[j] = static_cast<T>(prow[j] * (drow[j] - dot));
            }
            // dQ_h[i0, i1) = scale · dS_b K_g[0, cols);
            // dK_g[0, cols) += scale · dS_bᵀ Q_h[i0, i1).
            gemm<T>(false, false, rows, D, cols, sc, dSb, S, kg, ldk, T(0),
                    dqh + i0 * lddq, lddq);
            gemm<T>(true, false, cols, D, rows, sc, dSb, S, qh + i0 * ldq, ldq,
                    T(1), dkg, lddk);
          });
        }
      });
}

// Elementwise --------------------------------------------------------------

namespace {
/// sqrt(2 / pi) and the cubic coefficient of the tanh GELU.
constexpr double kGeluBeta = 0.7978845608028654;
constexpr double kGeluKappa = 0.044715;
} // namespace

namespace {

/// exp for the activations: in float a branch-free Cody-Waite reduction and
/// Cephes' degree-6 polynomial (about 1 ulp on the clamped range), which the
/// compiler vectorizes, unlike the libm call; in double, std::exp (the
/// finite-difference tests run in double).
#pragma omp declare simd
inline float expAct(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  // n = round(x / ln 2) by the 1.5 * 2^23 trick (exact for |x / ln 2| < 2^22).
  const float t = x * 1.44269504088896341f;
  const float n = (t + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return e * scale;
}
inline double expAct(double x) { return std::exp(x); }

/// GELU's tanh argument z(x) = beta (x + kappa x^3).
template <typename T> inline T geluArg(T x) {
  return T(kGeluBeta) * (x + T(kGeluKappa) * x * x * x);
}

} // namespace

// GELU (tanh) as x * sigmoid(2 z): 0.5 (1 + tanh z) = sigmoid(2 z) exactly,
// and the sigmoid form keeps full relative precision for negative x where
// 1 + tanh z cancels.
template <typename T> void geluFwd(const T *x, T *y, int64_t n) {
  parallelRanges(n, [&](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) {
      const T xi = x[i];
      y[i] = xi / (T(1) + expAct(T(-2) * geluArg(xi)));
    }
  });
}

// d/dx [x s(2z)] = s + 2 x s (1 - s) z'(x), z'(x) = beta (1 + 3 kappa x^2).
template <typename T> void geluBwd(const T *x, const T *dy, T *dx, int64_t n) {
  const T beta = T(kGeluBeta), kappa = T(kGeluKappa);
  parallelRanges(n, [&](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) {
      const T xi = x[i];
      const T s = T(1) / (T(1) + expAct(T(-2) * geluArg(xi)));
      const T dz = beta * (T(1) + T(3) * kappa * xi * xi);
      dx[i] = dy[i] * (s + T(2) * xi * s * (T(1) - s) * dz);
    }
  });
}

template <typename T> void siluFwd(const T *x, T *y, int64_t n) {
  parallelRanges(n, [&](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i)
      y[i] = x[i] / (T(1) + expAct(-x[i]));
  });
}

template <typename T> void siluBwd(const T *x, const T *dy, T *dx, int64_t n) {
  parallelRanges(n, [&](int64_t lo, int64_t hi) {
#pragma omp simd
    for (int64_t i = lo; i < hi; ++i) {
      const T s = T(1) / (T(1) + expAct(-x[i]));
      dx[i] = dy[i] * s * (T(1) + x[i] * (T(1) - s));
    }
  });
}

namespace {
/// y[i] = op(a[i], b[i % nb]), walking i % nb incrementally per range.
template <typename T, typename Op>
void broadcastBinary(const T *a, const T *b, T *y, int64_t n, int64_t nb,
                     Op op) {
  if (nb <= 0)
    return;
  parallelRanges(n, [&](int64_t lo, int64_t hi) {
    int64_t j = lo % nb;
    for (int64_t i = lo; i < hi; ++i) {
      y[i] = op(a[i], b[j]);
      if (++j == nb)
        j = 0;
    }
  });
}
} // namespace

template <typename T>
void add(const T *a, const T *b, T *y, int64_t n, int64_t nb) {
  broadcastBinary(a, b, y, n, nb, [](T u, T w) { return u + w; });
}

template <typename T>
void mul(const T *a, const T *b, T *y, int64_t n, int64_t nb) {
  broadcastBinary(a, b, y, n, nb, [](T u, T w) { return u * w; });
}

template <typename T> void scale(const T *a, T s, T *y, int64_t n) {
  parallelRanges(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i)
      y[i] = a[i] * s;
  });
}

// Loss ---------------------------------------------------------------------

namespace {
/// Row maximum and sum of exp(x - max) in double.
template <typename T>
void maxAndExpSum(const T *row, int64_t V, T &m, double &sum) {
  m = row[0];
  for (int64_t j = 1; j < V; ++j)
    m = std::max(m, row[j]);
  sum = 0.0;
  for (int64_t j = 0; j < V; ++j)
    sum += std::exp(row[j] - m);
}
} // namespace

template <typename T>
void crossEntropyFwd(const T *logits, const int32_t *targets, T *loss,
                     int64_t rows, int64_t V) {
  if (rows <= 0) {
    *loss = T(0);
    return;
  }
  const double total = deterministicSum(rows, V, [&](int64_t r) {
    const T *row = logits + r * V;
    T m;
    double sum;
    maxAndExpSum(row, V, m, sum);
    return (double(m) + std::log(sum)) - double(row[targets[r]]);
  });
  *loss = static_cast<T>(total / rows);
}

template <typename T>
void crossEntropyBwd(const T *logits, const int32_t *targets, T dloss,
                     T *dlogits, int64_t rows, int64_t V) {
  if (rows <= 0)
    return;
  const double g = double(dloss) / rows;
#pragma omp parallel for schedule(static) if (worthThreads(rows * V))
  for (int64_t r = 0; r < rows; ++r) {
    const T *row = logits + r * V;
    T *drow = dlogits + r * V;
    T m;
    double sum;
    maxAndExpSum(row, V, m, sum);
    const double inv = 1.0 / sum;
    for (int64_t j = 0; j < V; ++j)
      drow[j] = static_cast<T>(std::exp(row[j] - m) * inv * g);
    const int64_t t = targets[r];
    drow[t] = static_cast<T>((std::exp(row[t] - m) * inv - 1.0) * g);
  }
}

// Optimizer ----------------------------------------------------------------

template <typename T> double sumSquares(const T *x, int64_t n) {
  return deterministicSum(n, 1, [&](int64_t i) { return double(x[i]) * x[i]; });
}

template <typename T>
void adamw(T *p, const T *grad, T *m, T *v, int64_t n, double lr, double beta1,
           double beta2, double eps, double weightDecay, int64_t step,
           double gradScale) {
  // Scalars as PyTorch forms them (Python doubles, cast to T by the tensor
  // ops); the per-element arithmetic in T and in PyTorch's order. The first
  // moment uses lerp (exp_avg.lerp_(g, 1 - beta1)), PyTorch's form of
  // beta1 m + (1 - beta1) g.
  const T decay = static_cast<T>(1.0 - lr * weightDecay);
  const T w1 = static_cast<T>(1.0 - beta1);
  const T b2 = static_cast<T>(beta2), w2 = static_cast<T>(1.0 - beta2);
  const double bc1 = 1.0 - std::pow(beta1, double(step));
  const double bc2 = 1.0 - std::pow(beta2, double(step));
  const T bc2Sqrt = static_cast<T>(std::sqrt(bc2));
  const T negStep = static_cast<T>(-(lr / bc1));
  const T epsT = static_cast<T>(eps), gs = static_cast<T>(gradScale);
  const bool scaled = gradScale != 1.0;
  parallelRanges(n, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const T g = scaled ? grad[i] * gs : grad[i];
      T pi = p[i] * decay;
      T mi = m[i];
      mi = std::abs(w1) < T(0.5) ? mi + w1 * (g - mi)
                                 : g - (g - mi) * (T(1) - w1);
      T vi = v[i] * b2;
      vi = vi + w2 * g * g;
      const T denom = std::sqrt(vi) / bc2Sqrt + epsT;
      pi = pi + negStep * mi / denom;
      p[i] = pi;
      m[i] = mi;
      v[i] = vi;
    }
  });
}

// Instantiations -----------------------------------------------------------

#define LLMRT_INSTANTIATE(T)                                                   \
  template void embeddingFwd<T>(const int32_t *, const T *, T *, int64_t,      \
                                int64_t);                                      \
  template void embeddingBwd<T>(const int32_t *, const T *, T *, int64_t,      \
                                int64_t, int64_t);                             \
  template void positionEmbeddingFwd<T>(const T *, T *, int64_t, int64_t);     \
  template void positionEmbeddingBwd<T>(const T *, T *, int64_t, int64_t,      \
                                        int64_t);                              \
  template void layerNormFwd<T>(const T *, const T *, const T *, T *, int64_t, \
                                int64_t, double);                              \
  template void layerNormBwd<T>(const T *, const T *, const T *, T *, T *,     \
                                T *, int64_t, int64_t, double);                \
  template void rmsNormFwd<T>(const T *, const T *, T *, int64_t, int64_t,     \
                              double);                                         \
  template void rmsNormBwd<T>(const T *, const T *, const T *, T *, T *,       \
                              int64_t, int64_t, double);                       \
  template void linearFwd<T>(const T *, const T *, const T *, T *, int64_t,    \
                             int64_t, int64_t, bool);                          \
  template void linearBwdInput<T>(const T *, const T *, T *, int64_t, int64_t, \
                                  int64_t, bool);                              \
  template void linearBwdWeight<T>(const T *, const T *, T *, int64_t,         \
                                   int64_t, int64_t, bool);                    \
  template void sumRows<T>(const T *, T *, int64_t, int64_t);                  \
  template void copyColumns<T>(const T *, int64_t, int64_t, T *, int64_t,      \
                               int64_t, int64_t, int64_t);                     \
  template void rope<T>(const T *, T *, int64_t, int64_t, int64_t, int64_t,    \
                        double, bool);                                         \
  template void attentionFwd<T>(const T *, const T *, const T *, T *, int64_t, \
                                int64_t, int64_t, int64_t, int64_t, double,    \
                                bool, void *, T *, const int64_t *);           \
  template void attentionBwd<T>(const T *, const T *, const T *, const T *,    \
                                T *, T *, T *, int64_t, int64_t, int64_t,      \
                                int64_t, int64_t, double, bool, void *,        \
                                const int64_t *);                              \
  template void geluFwd<T>(const T *, T *, int64_t);                           \
  template void geluBwd<T>(const T *, const T *, T *, int64_t);                \
  template void siluFwd<T>(const T *, T *, int64_t);                           \
  template void siluBwd<T>(const T *, const T *, T *, int64_t);                \
  template void add<T>(const T *, const T *, T *, int64_t, int64_t);           \
  template void mul<T>(const T *, const T *, T *, int64_t, int64_t);           \
  template void scale<T>(const T *, T, T *, int64_t);                          \
  template void crossEntropyFwd<T>(const T *, const int32_t *, T *, int64_t,   \
                                   int64_t);                                   \
  template void crossEntropyBwd<T>(const T *, const int32_t *, T, T *,         \
                                   int64_t, int64_t);                          \
  template double sumSquares<T>(const T *, int64_t);                           \
  template void adamw<T>(T *, const T *, T *, T *, int64_t, double, double,    \
                         double, double, double, int64_t, double);

LLMRT_INSTANTIATE(float)
LLMRT_INSTANTIATE(double)

#undef LLMRT_INSTANTIATE

} // namespace llmrt::cpu
