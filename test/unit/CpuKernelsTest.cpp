//===- CpuKernelsTest.cpp - CPU kernels: references, gradients, float -----===//
//
// Three kinds of checks of llmrt/CpuKernels.h:
// - CpuKernelsFwd: forward kernels (double) against straightforward loops
//   written here from the header's formulas;
// - CpuKernelsGrad: every backward kernel (double) against central finite
//   differences of L = sum(forward(...) * R) for a fixed random R;
// - CpuKernelsFloat / CpuKernelsDeterminism: float against double, and
//   bitwise reproducibility across thread counts.
//
//===----------------------------------------------------------------------===//
#include "llmrt/CpuKernels.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

namespace {

namespace k = llmrt::cpu;
using Vec = std::vector<double>;

/// Uniform values in [lo, hi) from a fixed seed.
Vec randomVec(size_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  Vec v(n);
  for (double &x : v)
    x = dist(gen);
  return v;
}

double dot(const Vec &a, const Vec &b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

double maxAbs(const Vec &v) {
  double m = 0.0;
  for (double x : v)
    m = std::max(m, std::abs(x));
  return m;
}

/// Central differences of L with respect to every entry of x (x is
/// perturbed in place and restored).
Vec numericGrad(Vec &x, const std::function<double()> &L, double h = 1e-5) {
  Vec g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double lp = L();
    x[i] = x0 - h;
    const double lm = L();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

/// Expects max_i |actual_i - expected_i| <= rtol * max(max|expected|, 1e-3).
void expectClose(const Vec &actual, const Vec &expected, double rtol,
                 const std::string &what) {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  const double scale = std::max(maxAbs(expected), 1e-3);
  double worst = 0.0;
  size_t at = 0;
  for (size_t i = 0; i < actual.size(); ++i) {
    const double err = std::abs(actual[i] - expected[i]);
    if (!(err <= worst)) { // Also catches NaN.
      worst = err;
      at = i;
    }
  }
  EXPECT_LE(worst / scale, rtol)
      << what << ": worst at " << at << ": " << actual[at] << " vs "
      << expected[at] << " (scale " << scale << ")";
}

/// Gradient check tolerance (double, central differences with h = 1e-5).
constexpr double kGradTol = 1e-6;

/// Restores the thread settings a test changed.
class ThreadGuard {
public:
  ThreadGuard() : saved(omp_get_max_threads()) {}
  ~ThreadGuard() { k::setThreads(saved); }

private:
  int saved;
};

// References ----------------------------------------------------------------

/// Naive attention: out = softmax(q kᵀ scale + mask) v per (b, head).
Vec refAttention(const Vec &q, const Vec &kk, const Vec &v, int64_t B,
                 int64_t S, int64_t Hq, int64_t Hkv, int64_t D, double scale,
                 bool causal) {
  Vec out(B * S * Hq * D);
  const int64_t group = Hq / Hkv;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t g = h / group;
      for (int64_t i = 0; i < S; ++i) {
        const int64_t n = causal ? i + 1 : S;
        Vec s(n);
        double m = -INFINITY;
        for (int64_t j = 0; j < n; ++j) {
          double acc = 0.0;
          for (int64_t d = 0; d < D; ++d)
            acc += q[((b * S + i) * Hq + h) * D + d] *
                   kk[((b * S + j) * Hkv + g) * D + d];
          s[j] = acc * scale;
          m = std::max(m, s[j]);
        }
        double z = 0.0;
        for (int64_t j = 0; j < n; ++j)
          z += (s[j] = std::exp(s[j] - m));
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0.0;
          for (int64_t j = 0; j < n; ++j)
            acc += s[j] / z * v[((b * S + j) * Hkv + g) * D + d];
          out[((b * S + i) * Hq + h) * D + d] = acc;
        }
      }
    }
  return out;
}

/// Naive y = x W (+ bias), W [in, out] or [out, in] when transW.
Vec refLinear(const Vec &x, const Vec &w, const Vec *bias, int64_t rows,
              int64_t in, int64_t out, bool transW) {
  Vec y(rows * out);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double acc = bias ? (*bias)[o] : 0.0;
      for (int64_t i = 0; i < in; ++i)
        acc += x[r * in + i] * (transW ? w[o * in + i] : w[i * out + o]);
      y[r * out + o] = acc;
    }
  return y;
}

Vec refLayerNorm(const Vec &x, const Vec &w, const Vec &b, int64_t rows,
                 int64_t C, double eps) {
  Vec y(rows * C);
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0.0, var = 0.0;
    for (int64_t c = 0; c < C; ++c)
      mean += x[r * C + c] / C;
    for (int64_t c = 0; c < C; ++c)
      var += (x[r * C + c] - mean) * (x[r * C + c] - mean) / C;
    for (int64_t c = 0; c < C; ++c)
      y[r * C + c] = (x[r * C + c] - mean) / std::sqrt(var + eps) * w[c] + b[c];
  }
  return y;
}

/// Rotary embedding straight from the header's formula.
Vec refRope(const Vec &x, int64_t B, int64_t S, int64_t H, int64_t D,
            double theta, bool inverse) {
  Vec y(x.size());
  const int64_t d = D / 2;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t p = 0; p < S; ++p)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < d; ++i) {
          double a = p * std::pow(theta, -2.0 * i / D);
          if (inverse)
            a = -a;
          const int64_t base = ((b * S + p) * H + h) * D;
          y[base + i] =
              x[base + i] * std::cos(a) - x[base + i + d] * std::sin(a);
          y[base + i + d] =
              x[base + i + d] * std::cos(a) + x[base + i] * std::sin(a);
        }
  return y;
}

std::vector<float> toFloat(const Vec &v) {
  return std::vector<float>(v.begin(), v.end());
}
Vec toDouble(const std::vector<float> &v) { return Vec(v.begin(), v.end()); }
/// v rounded to float and back: the inputs a float kernel really sees.
Vec roundToFloat(const Vec &v) { return toDouble(toFloat(v)); }

/// Workspace for the attention kernels, in units of T (aligned for T).
template <typename T>
std::vector<T> workspaceFor(int64_t B, int64_t S, int64_t Hq, int64_t D) {
  const int64_t bytes = k::attentionWorkspaceBytes(B, S, Hq, D, sizeof(T));
  return std::vector<T>((bytes + sizeof(T) - 1) / sizeof(T) + 1);
}

// Forward ---------------------------------------------------------------------

TEST(CpuKernelsFwd, Embeddings) {
  const int64_t V = 5, C = 3, n = 6, P = 4, S = 3;
  const std::vector<int32_t> ids = {4, 0, 4, 2, 1, 0};
  Vec table = randomVec(V * C, 1), out(n * C, 9.0);
  k::embeddingFwd(ids.data(), table.data(), out.data(), n, C);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t c = 0; c < C; ++c)
      EXPECT_EQ(out[t * C + c], table[ids[t] * C + c]);

  Vec pos = randomVec(P * C, 2), pout(S * C, 9.0);
  k::positionEmbeddingFwd(pos.data(), pout.data(), S, C);
  for (int64_t i = 0; i < S * C; ++i)
    EXPECT_EQ(pout[i], pos[i]);
}

TEST(CpuKernelsFwd, LayerNormAndRmsNorm) {
  const int64_t rows = 5, C = 9;
  const double eps = 1e-5;
  Vec x = randomVec(rows * C, 3, -2.0, 3.0), w = randomVec(C, 4),
      b = randomVec(C, 5), y(rows * C, 9.0);
  k::layerNormFwd(x.data(), w.data(), b.data(), y.data(), rows, C, eps);
  expectClose(y, refLayerNorm(x, w, b, rows, C, eps), 1e-13, "layerNorm");

  Vec ref(rows * C);
  for (int64_t r = 0; r < rows; ++r) {
    double ms = 0.0;
    for (int64_t c = 0; c < C; ++c)
      ms += x[r * C + c] * x[r * C + c] / C;
    for (int64_t c = 0; c < C; ++c)
      ref[r * C + c] = x[r * C + c] / std::sqrt(ms + eps) * w[c];
  }
  k::rmsNormFwd(x.data(), w.data(), y.data(), rows, C, eps);
  expectClose(y, ref, 1e-13, "rmsNorm");
}

TEST(CpuKernelsFwd, Linear) {
  const int64_t rows = 7, in = 5, out = 6;
  Vec x = randomVec(rows * in, 6), w = randomVec(in * out, 7),
      bias = randomVec(out, 8);
  for (bool transW : {false, true}) {
    for (bool withBias : {false, true}) {
      Vec y(rows * out, 9.0);
      k::linearFwd(x.data(), w.data(), withBias ? bias.data() : nullptr,
                   y.data(), rows, in, out, transW);
      expectClose(
          y, refLinear(x, w, withBias ? &bias : nullptr, rows, in, out, transW),
          1e-13,
          "linear transW=" + std::to_string(transW) +
              " bias=" + std::to_string(withBias));
    }
  }
}

TEST(CpuKernelsFwd, SumRowsAndCopyColumns) {
  const int64_t rows = 6, C = 5;
  Vec dy = randomVec(rows * C, 9), db(C, 9.0), ref(C, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < C; ++c)
      ref[c] += dy[r * C + c];
  k::sumRows(dy.data(), db.data(), rows, C);
  expectClose(db, ref, 1e-14, "sumRows");

  Vec dst(rows * 4, 9.0);
  k::copyColumns(dy.data(), C, 1, dst.data(), 4, 1, 3, rows);
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(dst[r * 4 + 0], 9.0); // Untouched outside the slice.
    for (int64_t j = 0; j < 3; ++j)
      EXPECT_EQ(dst[r * 4 + 1 + j], dy[r * C + 1 + j]);
  }
}

TEST(CpuKernelsFwd, Rope) {
  const int64_t B = 2, S = 7, H = 3, D = 8;
  Vec x = randomVec(B * S * H * D, 10), y(x.size(), 9.0);
  for (double theta : {10000.0, 10.0}) {
    for (bool inverse : {false, true}) {
      k::rope(x.data(), y.data(), B, S, H, D, theta, inverse);
      expectClose(y, refRope(x, B, S, H, D, theta, inverse), 1e-13,
                  "rope theta=" + std::to_string(theta) +
                      " inverse=" + std::to_string(inverse));
    }
    // The inverse undoes the rotation, in place too.
    k::rope(x.data(), y.data(), B, S, H, D, theta, false);
    k::rope(y.data(), y.data(), B, S, H, D, theta, true);
    expectClose(y, x, 1e-14, "rope round trip");
  }
}

struct AttnCase {
  int64_t B, S, Hq, Hkv, D;
  bool causal;
};

std::string name(const AttnCase &c) {
  return "B" + std::to_string(c.B) + " S" + std::to_string(c.S) + " Hq" +
         std::to_string(c.Hq) + " Hkv" + std::to_string(c.Hkv) + " D" +
         std::to_string(c.D) + (c.causal ? " causal" : " full");
}

TEST(CpuKernelsFwd, Attention) {
  const AttnCase cases[] = {{2, 5, 2, 2, 6, true},  {2, 5, 2, 2, 6, false},
                            {2, 5, 4, 2, 6, true},  {2, 5, 4, 2, 6, false},
                            {1, 17, 4, 1, 8, true}, {3, 9, 6, 3, 4, false},
                            {1, 1, 1, 1, 3, true},
                            // Several 64-row causal blocks, the last partial.
                            {2, 150, 2, 1, 4, true}};
  for (const AttnCase &c : cases) {
    Vec q = randomVec(c.B * c.S * c.Hq * c.D, 11),
        kk = randomVec(c.B * c.S * c.Hkv * c.D, 12),
        v = randomVec(c.B * c.S * c.Hkv * c.D, 13), out(q.size(), 9.0);
    const double scale = 1.0 / std::sqrt(double(c.D));
    auto ws = workspaceFor<double>(c.B, c.S, c.Hq, c.D);
    k::attentionFwd(q.data(), kk.data(), v.data(), out.data(), c.B, c.S, c.Hq,
                    c.Hkv, c.D, scale, c.causal, ws.data());
    expectClose(
        out,
        refAttention(q, kk, v, c.B, c.S, c.Hq, c.Hkv, c.D, scale, c.causal),
        1e-13, "attention " + name(c));
  }
}

TEST(CpuKernelsFwd, AttentionLogSumExp) {
  // lse[b, h, i] = log sum_{j visible} exp(scale q_i · k_j), by direct sums.
  for (AttnCase c : {AttnCase{2, 70, 4, 2, 6, true}, AttnCase{1, 9, 2, 1, 4, false}}) {
    Vec q = randomVec(c.B * c.S * c.Hq * c.D, 21),
        kk = randomVec(c.B * c.S * c.Hkv * c.D, 22),
        v = randomVec(c.B * c.S * c.Hkv * c.D, 23), out(q.size()),
        lse(c.B * c.Hq * c.S, 9.0), ref(lse.size());
    const double scale = 0.7;
    auto ws = workspaceFor<double>(c.B, c.S, c.Hq, c.D);
    k::attentionFwd(q.data(), kk.data(), v.data(), out.data(), c.B, c.S, c.Hq,
                    c.Hkv, c.D, scale, c.causal, ws.data(), lse.data());
    const int64_t g = c.Hq / c.Hkv;
    for (int64_t b = 0; b < c.B; ++b)
      for (int64_t h = 0; h < c.Hq; ++h)
        for (int64_t i = 0; i < c.S; ++i) {
          double sum = 0;
          for (int64_t j = 0; j <= (c.causal ? i : c.S - 1); ++j) {
            double dot = 0;
            for (int64_t d = 0; d < c.D; ++d)
              dot += q[((b * c.S + i) * c.Hq + h) * c.D + d] *
                     kk[((b * c.S + j) * c.Hkv + h / g) * c.D + d];
            sum += std::exp(scale * dot);
          }
          ref[(b * c.Hq + h) * c.S + i] = std::log(sum);
        }
    expectClose(lse, ref, 1e-12, "attention log-sum-exp " + name(c));
  }
}

TEST(CpuKernelsFwd, AttentionLargeScoresStayFinite) {
  // Scores in the hundreds: exp overflows without the max subtraction.
  const int64_t B = 1, S = 6, H = 2, D = 4;
  Vec q = randomVec(B * S * H * D, 14, -20.0, 20.0),
      kk = randomVec(q.size(), 15, -20.0, 20.0), v = randomVec(q.size(), 16),
      out(q.size());
  auto ws = workspaceFor<double>(B, S, H, D);
  k::attentionFwd(q.data(), kk.data(), v.data(), out.data(), B, S, H, H, D, 1.0,
                  true, ws.data());
  expectClose(out, refAttention(q, kk, v, B, S, H, H, D, 1.0, true), 1e-12,
              "attention, large scores");
}

TEST(CpuKernelsFwd, AttentionWorkspaceIsEnough) {
  // The kernels must stay inside attentionWorkspaceBytes: fill a guard zone
  // behind it and check that it survives forward and backward.
  const int64_t B = 3, S = 11, Hq = 4, Hkv = 2, D = 5;
  const int64_t bytes = k::attentionWorkspaceBytes(B, S, Hq, D, 8);
  ASSERT_GE(bytes, 2 * S * S * 8);
  const int64_t words = bytes / 8, guard = 64;
  Vec ws(words + guard, 0.0);
  std::fill(ws.begin() + words, ws.end(), 1234.5);
  Vec q = randomVec(B * S * Hq * D, 17), kk = randomVec(B * S * Hkv * D, 18),
      v = randomVec(kk.size(), 19), dout = randomVec(q.size(), 20),
      out(q.size()), dq(q.size()), dk(kk.size()), dv(kk.size());
  k::attentionFwd(q.data(), kk.data(), v.data(), out.data(), B, S, Hq, Hkv, D,
                  0.5, true, ws.data());
  k::attentionBwd(q.data(), kk.data(), v.data(), dout.data(), dq.data(),
                  dk.data(), dv.data(), B, S, Hq, Hkv, D, 0.5, true, ws.data());
  for (int64_t i = words; i < words + guard; ++i)
    ASSERT_EQ(ws[i], 1234.5) << "workspace overrun at word " << i;
  EXPECT_EQ(k::attentionWorkspaceBytes(0, S, Hq, D, 8), 0);
}

TEST(CpuKernelsFwd, AttentionReadsAndWritesColumnSlices) {
  // q, k, v as column slices of one fused [B S, (Hq + 2 Hkv) D] row (the
  // q/k/v projection's output), dq, dk, dv written into the gradient's
  // slices: the same numbers as the dense tensors, and the gradient's
  // other columns untouched. The dense run is the reference.
  const int64_t B = 2, S = 9, Hq = 4, Hkv = 2, D = 3;
  const int64_t wq = Hq * D, wk = Hkv * D, C = wq + 2 * wk, rows = B * S;
  Vec q = randomVec(rows * wq, 31), kk = randomVec(rows * wk, 32),
      v = randomVec(rows * wk, 33), dout = randomVec(rows * wq, 34);
  Vec fused(rows * C), grad(rows * C, 7.0);
  for (int64_t r = 0; r < rows; ++r) {
    std::copy_n(&q[r * wq], wq, &fused[r * C]);
    std::copy_n(&kk[r * wk], wk, &fused[r * C + wq]);
    std::copy_n(&v[r * wk], wk, &fused[r * C + wq + wk]);
  }
  Vec ws(k::attentionWorkspaceBytes(B, S, Hq, D, 8) / 8);
  for (bool causal : {false, true}) {
    Vec out(q.size()), dq(q.size()), dk(kk.size()), dv(kk.size());
    Vec out2(q.size()), lse(B * Hq * S), lse2(lse.size());
    k::attentionFwd(q.data(), kk.data(), v.data(), out.data(), B, S, Hq, Hkv, D,
                    0.3, causal, ws.data(), lse.data());
    k::attentionBwd(q.data(), kk.data(), v.data(), dout.data(), dq.data(),
                    dk.data(), dv.data(), B, S, Hq, Hkv, D, 0.3, causal, ws.data());
    const int64_t ld[6] = {C, C, C, C, C, C};
    const double *f = fused.data();
    k::attentionFwd(f, f + wq, f + wq + wk, out2.data(), B, S, Hq, Hkv, D, 0.3,
                    causal, ws.data(), lse2.data(), ld);
    EXPECT_EQ(out2, out);
    EXPECT_EQ(lse2, lse);
    // Only the k and v slices of the gradient are written: q's columns
    // (a dense dq) keep their 7s.
    const int64_t ldkv[6] = {C, C, C, wq, C, C};
    Vec dq2(q.size());
    k::attentionBwd(f, f + wq, f + wq + wk, dout.data(), dq2.data(),
                    grad.data() + wq, grad.data() + wq + wk, B, S, Hq, Hkv, D, 0.3,
                    causal, ws.data(), ldkv);
    EXPECT_EQ(dq2, dq);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < wq; ++c)
        ASSERT_EQ(grad[r * C + c], 7.0) << "row " << r << " column " << c;
      for (int64_t c = 0; c < wk; ++c) {
        ASSERT_EQ(grad[r * C + wq + c], dk[r * wk + c]);
        ASSERT_EQ(grad[r * C + wq + wk + c], dv[r * wk + c]);
      }
    }
  }
}

TEST(CpuKernelsFwd, Elementwise) {
  const int64_t n = 12, nb = 4;
  Vec x = randomVec(n, 21, -4.0, 4.0), b = randomVec(nb, 22), y(n);
  const double beta = std::sqrt(2.0 / M_PI);
  k::geluFwd(x.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_NEAR(
        y[i],
        0.5 * x[i] *
            (1 + std::tanh(beta * (x[i] + 0.044715 * std::pow(x[i], 3)))),
        1e-14);
  k::siluFwd(x.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_NEAR(y[i], x[i] / (1 + std::exp(-x[i])), 1e-14);
  k::add(x.data(), b.data(), y.data(), n, nb);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(y[i], x[i] + b[i % nb]);
  k::add(x.data(), x.data(), y.data(), n, n);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(y[i], 2 * x[i]);
  k::mul(x.data(), b.data(), y.data(), n, nb);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(y[i], x[i] * b[i % nb]);
  k::scale(x.data(), 0.25, y.data(), n);
  for (int64_t i = 0; i < n; ++i)
    EXPECT_EQ(y[i], x[i] * 0.25);
  // In place.
  Vec z = x;
  k::geluFwd(z.data(), z.data(), n);
  k::geluFwd(x.data(), y.data(), n);
  EXPECT_EQ(z, y);
  EXPECT_DOUBLE_EQ(k::sumSquares(x.data(), n), dot(x, x));
}

TEST(CpuKernelsFwd, CrossEntropy) {
  const int64_t rows = 5, V = 7;
  const std::vector<int32_t> t = {3, 0, 6, 3, 1};
  Vec logits = randomVec(rows * V, 23, -3.0, 3.0);
  // Direct log-softmax: -log(exp(x_t) / sum_j exp(x_j)).
  double ref = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    double z = 0.0;
    for (int64_t j = 0; j < V; ++j)
      z += std::exp(logits[r * V + j]);
    ref += -std::log(std::exp(logits[r * V + t[r]]) / z) / rows;
  }
  double loss = 9.0;
  k::crossEntropyFwd(logits.data(), t.data(), &loss, rows, V);
  EXPECT_NEAR(loss, ref, 1e-14 * std::abs(ref));

  // Shift invariance at logits where a naive exp overflows.
  Vec shifted = logits;
  for (double &x : shifted)
    x += 1000.0;
  double lossShifted = 0.0;
  k::crossEntropyFwd(shifted.data(), t.data(), &lossShifted, rows, V);
  EXPECT_NEAR(lossShifted, ref, 1e-11 * std::abs(ref));
}

TEST(CpuKernelsFwd, AdamW) {
  const int64_t n = 9;
  const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1,
               gradScale = 0.6;
  Vec p = randomVec(n, 24), m(n, 0.0), v(n, 0.0);
  Vec rp = p, rm = m, rv = v;
  for (int64_t step = 1; step <= 3; ++step) {
    Vec grad = randomVec(n, 100 + step);
    k::adamw(p.data(), grad.data(), m.data(), v.data(), n, lr, b1, b2, eps, wd,
             step, gradScale);
    // The header's formula.
    for (int64_t i = 0; i < n; ++i) {
      const double g = grad[i] * gradScale;
      rp[i] = rp[i] * (1 - lr * wd);
      rm[i] = b1 * rm[i] + (1 - b1) * g;
      rv[i] = b2 * rv[i] + (1 - b2) * g * g;
      const double denom =
          std::sqrt(rv[i]) / std::sqrt(1 - std::pow(b2, step)) + eps;
      rp[i] = rp[i] - (lr / (1 - std::pow(b1, step))) * rm[i] / denom;
    }
    expectClose(p, rp, 1e-14, "adamw p, step " + std::to_string(step));
    expectClose(m, rm, 1e-14, "adamw m, step " + std::to_string(step));
    expectClose(v, rv, 1e-14, "adamw v, step " + std::to_string(step));
  }
}

// Gradients -------------------------------------------------------------------

TEST(CpuKernelsGrad, EmbeddingRepeatedIds) {
  const int64_t V = 5, C = 3, n = 7;
  const std::vector<int32_t> ids = {3, 1, 3, 0, 3, 2, 1}; // Row 4 unused.
  Vec table = randomVec(V * C, 30), R = randomVec(n * C, 31), out(n * C);
  auto L = [&] {
    k::embeddingFwd(ids.data(), table.data(), out.data(), n, C);
    return dot(out, R);
  };
  Vec dtable(V * C, 9.0);
  k::embeddingBwd(ids.data(), R.data(), dtable.data(), n, V, C);
  expectClose(dtable, numericGrad(table, L), kGradTol, "embeddingBwd");
  for (int64_t c = 0; c < C; ++c)
    EXPECT_EQ(dtable[4 * C + c], 0.0);
}

TEST(CpuKernelsGrad, PositionEmbedding) {
  const int64_t S = 3, P = 5, C = 4;
  Vec table = randomVec(P * C, 32), R = randomVec(S * C, 33), out(S * C);
  auto L = [&] {
    k::positionEmbeddingFwd(table.data(), out.data(), S, C);
    return dot(out, R);
  };
  Vec dtable(P * C, 9.0);
  k::positionEmbeddingBwd(R.data(), dtable.data(), S, P, C);
  expectClose(dtable, numericGrad(table, L), kGradTol, "positionEmbeddingBwd");
}

TEST(CpuKernelsGrad, LayerNorm) {
  const int64_t rows = 4, C = 7;
  const double eps = 1e-5;
  Vec x = randomVec(rows * C, 34, -2.0, 2.0), w = randomVec(C, 35),
      b = randomVec(C, 36), R = randomVec(rows * C, 37), y(rows * C);
  auto L = [&] {
    k::layerNormFwd(x.data(), w.data(), b.data(), y.data(), rows, C, eps);
    return dot(y, R);
  };
  Vec dx(x.size(), 9.0), dw(C, 9.0), db(C, 9.0);
  k::layerNormBwd(x.data(), w.data(), R.data(), dx.data(), dw.data(), db.data(),
                  rows, C, eps);
  expectClose(dx, numericGrad(x, L), kGradTol, "layerNormBwd dx");
  expectClose(dw, numericGrad(w, L), kGradTol, "layerNormBwd dw");
  expectClose(db, numericGrad(b, L), kGradTol, "layerNormBwd db");

  // dx may overwrite dy.
  Vec inPlace = R;
  k::layerNormBwd(x.data(), w.data(), inPlace.data(), inPlace.data(), dw.data(),
                  db.data(), rows, C, eps);
  EXPECT_EQ(inPlace, dx);
}

TEST(CpuKernelsGrad, RmsNorm) {
  const int64_t rows = 4, C = 7;
  const double eps = 1e-5;
  Vec x = randomVec(rows * C, 38, -2.0, 2.0), w = randomVec(C, 39),
      R = randomVec(rows * C, 40), y(rows * C);
  auto L = [&] {
    k::rmsNormFwd(x.data(), w.data(), y.data(), rows, C, eps);
    return dot(y, R);
  };
  Vec dx(x.size(), 9.0), dw(C, 9.0);
  k::rmsNormBwd(x.data(), w.data(), R.data(), dx.data(), dw.data(), rows, C,
                eps);
  expectClose(dx, numericGrad(x, L), kGradTol, "rmsNormBwd dx");
  expectClose(dw, numericGrad(w, L), kGradTol, "rmsNormBwd dw");
}

TEST(CpuKernelsGrad, LinearAndBias) {
  const int64_t rows = 3, in = 4, out = 5;
  for (bool transW : {false, true}) {
    const std::string tag = " transW=" + std::to_string(transW);
    Vec x = randomVec(rows * in, 41), w = randomVec(in * out, 42),
        bias = randomVec(out, 43), R = randomVec(rows * out, 44), y(rows * out);
    auto L = [&] {
      k::linearFwd(x.data(), w.data(), bias.data(), y.data(), rows, in, out,
                   transW);
      return dot(y, R);
    };
    Vec dx(x.size(), 9.0), dw(w.size(), 9.0), db(out, 9.0);
    k::linearBwdInput(R.data(), w.data(), dx.data(), rows, in, out, transW);
    k::linearBwdWeight(x.data(), R.data(), dw.data(), rows, in, out, transW);
    k::sumRows(R.data(), db.data(), rows, out);
    expectClose(dx, numericGrad(x, L), kGradTol, "linearBwdInput" + tag);
    expectClose(dw, numericGrad(w, L), kGradTol, "linearBwdWeight" + tag);
    expectClose(db, numericGrad(bias, L), kGradTol, "sumRows as bias" + tag);
  }
}

TEST(CpuKernelsGrad, BroadcastAddMulViaSumRows) {
  const int64_t n = 12, nb = 4;
  Vec a = randomVec(n, 45), b = randomVec(nb, 46), R = randomVec(n, 47), y(n);
  auto Ladd = [&] {
    k::add(a.data(), b.data(), y.data(), n, nb);
    return dot(y, R);
  };
  auto Lmul = [&] {
    k::mul(a.data(), b.data(), y.data(), n, nb);
    return dot(y, R);
  };
  Vec db(nb, 9.0), Ra(n);
  k::sumRows(R.data(), db.data(), n / nb, nb);
  expectClose(db, numericGrad(b, Ladd), kGradTol, "add broadcast grad");
  k::mul(R.data(), a.data(), Ra.data(), n, n);
  k::sumRows(Ra.data(), db.data(), n / nb, nb);
  expectClose(db, numericGrad(b, Lmul), kGradTol, "mul broadcast grad");
}

TEST(CpuKernelsGrad, RopeInverseIsBackward) {
  const int64_t B = 2, S = 4, H = 2, D = 6;
  for (bool inverse : {false, true}) {
    Vec x = randomVec(B * S * H * D, 48), R = randomVec(x.size(), 49),
        y(x.size());
    auto L = [&] {
      k::rope(x.data(), y.data(), B, S, H, D, 10.0, inverse);
      return dot(y, R);
    };
    Vec dx(x.size(), 9.0);
    k::rope(R.data(), dx.data(), B, S, H, D, 10.0, !inverse);
    expectClose(dx, numericGrad(x, L), kGradTol,
                "rope backward, inverse=" + std::to_string(inverse));
  }
}

TEST(CpuKernelsGrad, Attention) {
  const AttnCase cases[] = {{2, 5, 2, 2, 6, true},
                            {2, 5, 2, 2, 6, false},
                            {2, 5, 4, 2, 6, true},
                            {2, 5, 4, 2, 6, false},
                            {1, 5, 4, 1, 3, true},
                            // Three causal row blocks (64, 64, 2).
                            {1, 130, 2, 1, 2, true}};
  for (const AttnCase &c : cases) {
    const std::string tag = " " + name(c);
    const double scale = 0.7;
    Vec q = randomVec(c.B * c.S * c.Hq * c.D, 50),
        kk = randomVec(c.B * c.S * c.Hkv * c.D, 51),
        v = randomVec(kk.size(), 52), R = randomVec(q.size(), 53),
        out(q.size());
    auto ws = workspaceFor<double>(c.B, c.S, c.Hq, c.D);
    auto L = [&] {
      k::attentionFwd(q.data(), kk.data(), v.data(), out.data(), c.B, c.S, c.Hq,
                      c.Hkv, c.D, scale, c.causal, ws.data());
      return dot(out, R);
    };
    Vec dq(q.size(), 9.0), dk(kk.size(), 9.0), dv(v.size(), 9.0);
    k::attentionBwd(q.data(), kk.data(), v.data(), R.data(), dq.data(),
                    dk.data(), dv.data(), c.B, c.S, c.Hq, c.Hkv, c.D, scale,
                    c.causal, ws.data());
    expectClose(dq, numericGrad(q, L), kGradTol, "attention dq" + tag);
    expectClose(dk, numericGrad(kk, L), kGradTol, "attention dk" + tag);
    expectClose(dv, numericGrad(v, L), kGradTol, "attention dv" + tag);
  }
}

TEST(CpuKernelsGrad, GeluAndSilu) {
  const int64_t n = 15;
  Vec x = randomVec(n, 54, -4.0, 4.0), R = randomVec(n, 55), y(n);
  auto Lgelu = [&] {
    k::geluFwd(x.data(), y.data(), n);
    return dot(y, R);
  };
  auto Lsilu = [&] {
    k::siluFwd(x.data(), y.data(), n);
    return dot(y, R);
  };
  Vec dx(n, 9.0);
  k::geluBwd(x.data(), R.data(), dx.data(), n);
  expectClose(dx, numericGrad(x, Lgelu), kGradTol, "geluBwd");
  k::siluBwd(x.data(), R.data(), dx.data(), n);
  expectClose(dx, numericGrad(x, Lsilu), kGradTol, "siluBwd");
}

TEST(CpuKernelsGrad, CrossEntropy) {
  const int64_t rows = 4, V = 6;
  const std::vector<int32_t> t = {5, 0, 2, 2};
  const double dloss = 0.7;
  Vec logits = randomVec(rows * V, 56, -3.0, 3.0);
  auto L = [&] {
    double loss;
    k::crossEntropyFwd(logits.data(), t.data(), &loss, rows, V);
    return dloss * loss;
  };
  Vec dlogits(logits.size(), 9.0);
  k::crossEntropyBwd(logits.data(), t.data(), dloss, dlogits.data(), rows, V);
  expectClose(dlogits, numericGrad(logits, L), kGradTol, "crossEntropyBwd");
}

TEST(CpuKernelsGrad, CopyColumnsSplitAndConcat) {
  const int64_t rows = 3, wa = 3, wb = 4, C = wa + wb;
  // Split: a = x[:, 0:3], b = x[:, 3:7]; its backward is a concat.
  {
    Vec x = randomVec(rows * C, 57), Ra = randomVec(rows * wa, 58),
        Rb = randomVec(rows * wb, 59), a(rows * wa), b(rows * wb);
    auto L = [&] {
      k::copyColumns(x.data(), C, 0, a.data(), wa, 0, wa, rows);
      k::copyColumns(x.data(), C, wa, b.data(), wb, 0, wb, rows);
      return dot(a, Ra) + dot(b, Rb);
    };
    Vec dx(x.size(), 9.0);
    k::copyColumns(Ra.data(), wa, 0, dx.data(), C, 0, wa, rows);
    k::copyColumns(Rb.data(), wb, 0, dx.data(), C, wa, wb, rows);
    expectClose(dx, numericGrad(x, L), kGradTol, "split backward");
  }
  // Concat: y = [a | b]; its backward is a split.
  {
    Vec a = randomVec(rows * wa, 60), b = randomVec(rows * wb, 61),
        R = randomVec(rows * C, 62), y(rows * C);
    auto L = [&] {
      k::copyColumns(a.data(), wa, 0, y.data(), C, 0, wa, rows);
      k::copyColumns(b.data(), wb, 0, y.data(), C, wa, wb, rows);
      return dot(y, R);
    };
    Vec da(a.size(), 9.0), db(b.size(), 9.0);
    k::copyColumns(R.data(), C, 0, da.data(), wa, 0, wa, rows);
    k::copyColumns(R.data(), C, wa, db.data(), wb, 0, wb, rows);
    expectClose(da, numericGrad(a, L), kGradTol, "concat backward a");
    expectClose(db, numericGrad(b, L), kGradTol, "concat backward b");
  }
}

// Float -----------------------------------------------------------------------

/// Float results must match double ones on the same (float) inputs.
constexpr double kFloatTol = 1e-5;

TEST(CpuKernelsFloat, LinearMatchesDouble) {
  const int64_t rows = 9, in = 33, out = 17;
  for (bool transW : {false, true}) {
    Vec x = roundToFloat(randomVec(rows * in, 70)),
        w = roundToFloat(randomVec(in * out, 71)),
        bias = roundToFloat(randomVec(out, 72)), y(rows * out);
    auto xf = toFloat(x), wf = toFloat(w), bf = toFloat(bias);
    std::vector<float> yf(y.size());
    k::linearFwd(x.data(), w.data(), bias.data(), y.data(), rows, in, out,
                 transW);
    k::linearFwd(xf.data(), wf.data(), bf.data(), yf.data(), rows, in, out,
                 transW);
    expectClose(toDouble(yf), y, kFloatTol,
                "float linear transW=" + std::to_string(transW));
  }
}

TEST(CpuKernelsFloat, AttentionMatchesDouble) {
  const int64_t B = 2, S = 9, Hq = 4, Hkv = 2, D = 8;
  const double scale = 1.0 / std::sqrt(double(D));
  Vec q = roundToFloat(randomVec(B * S * Hq * D, 73, -2.0, 2.0)),
      kk = roundToFloat(randomVec(B * S * Hkv * D, 74, -2.0, 2.0)),
      v = roundToFloat(randomVec(kk.size(), 75)),
      dout = roundToFloat(randomVec(q.size(), 76)), out(q.size()), dq(q.size()),
      dk(kk.size()), dv(kk.size());
  auto qf = toFloat(q), kf = toFloat(kk), vf = toFloat(v),
       doutf = toFloat(dout);
  std::vector<float> outf(q.size()), dqf(q.size()), dkf(kk.size()),
      dvf(kk.size());
  auto ws = workspaceFor<double>(B, S, Hq, D);
  auto wsf = workspaceFor<float>(B, S, Hq, D);
  for (bool causal : {true, false}) {
    const std::string tag = causal ? " causal" : " full";
    k::attentionFwd(q.data(), kk.data(), v.data(), out.data(), B, S, Hq, Hkv, D,
                    scale, causal, ws.data());
    k::attentionFwd(qf.data(), kf.data(), vf.data(), outf.data(), B, S, Hq, Hkv,
                    D, scale, causal, wsf.data());
    expectClose(toDouble(outf), out, kFloatTol, "float attention" + tag);
    k::attentionBwd(q.data(), kk.data(), v.data(), dout.data(), dq.data(),
                    dk.data(), dv.data(), B, S, Hq, Hkv, D, scale, causal,
                    ws.data());
    k::attentionBwd(qf.data(), kf.data(), vf.data(), doutf.data(), dqf.data(),
                    dkf.data(), dvf.data(), B, S, Hq, Hkv, D, scale, causal,
                    wsf.data());
    expectClose(toDouble(dqf), dq, kFloatTol, "float attention dq" + tag);
    expectClose(toDouble(dkf), dk, kFloatTol, "float attention dk" + tag);
    expectClose(toDouble(dvf), dv, kFloatTol, "float attention dv" + tag);
  }
}

TEST(CpuKernelsFloat, LayerNormAndLossMatchDouble) {
  const int64_t rows = 6, C = 48;
  Vec x = roundToFloat(randomVec(rows * C, 77, -3.0, 5.0)),
      w = roundToFloat(randomVec(C, 78)), b = roundToFloat(randomVec(C, 79)),
      dy = roundToFloat(randomVec(rows * C, 80)), y(x.size()), dx(x.size()),
      dw(C), db(C);
  auto xf = toFloat(x), wf = toFloat(w), bf = toFloat(b), dyf = toFloat(dy);
  std::vector<float> yf(x.size()), dxf(x.size()), dwf(C), dbf(C);
  k::layerNormFwd(x.data(), w.data(), b.data(), y.data(), rows, C, 1e-5);
  k::layerNormFwd(xf.data(), wf.data(), bf.data(), yf.data(), rows, C, 1e-5);
  expectClose(toDouble(yf), y, kFloatTol, "float layerNorm");
  k::layerNormBwd(x.data(), w.data(), dy.data(), dx.data(), dw.data(),
                  db.data(), rows, C, 1e-5);
  k::layerNormBwd(xf.data(), wf.data(), dyf.data(), dxf.data(), dwf.data(),
                  dbf.data(), rows, C, 1e-5);
  expectClose(toDouble(dxf), dx, kFloatTol, "float layerNormBwd dx");
  expectClose(toDouble(dwf), dw, kFloatTol, "float layerNormBwd dw");
  expectClose(toDouble(dbf), db, kFloatTol, "float layerNormBwd db");

  // Cross-entropy over a vocabulary-sized row, where float sums would drift.
  const int64_t lrows = 3, V = 5000;
  const std::vector<int32_t> t = {17, 4999, 0};
  Vec logits = roundToFloat(randomVec(lrows * V, 81, -8.0, 8.0));
  auto logitsf = toFloat(logits);
  double loss;
  float lossf;
  k::crossEntropyFwd(logits.data(), t.data(), &loss, lrows, V);
  k::crossEntropyFwd(logitsf.data(), t.data(), &lossf, lrows, V);
  EXPECT_NEAR(lossf, loss, kFloatTol * std::abs(loss));
}

// Determinism
// -------------------------------------------------------------------

/// Runs the reductions and attention with 1 and 2 threads (sizes above the
/// parallel thresholds); results must be bitwise equal.
TEST(CpuKernelsDeterminism, SameBitsForAnyThreadCount) {
  ThreadGuard guard;
  const int64_t rows = 300, C = 200, V = 40;
  std::vector<int32_t> ids(rows);
  for (int64_t i = 0; i < rows; ++i)
    ids[i] = int32_t((i * 7) % V);
  auto x = toFloat(randomVec(rows * C, 90)), w = toFloat(randomVec(C, 91)),
       bb = toFloat(randomVec(C, 92)), dy = toFloat(randomVec(rows * C, 93));
  const int64_t B = 2, S = 40, Hq = 4, Hkv = 2, D = 16;
  auto q = toFloat(randomVec(B * S * Hq * D, 94)),
       kk = toFloat(randomVec(B * S * Hkv * D, 95)),
       v = toFloat(randomVec(kk.size(), 96)),
       dout = toFloat(randomVec(q.size(), 97));
  auto ws = workspaceFor<float>(B, S, Hq, D);

  auto runAll = [&] {
    std::vector<std::vector<float>> res;
    std::vector<float> dtable(V * C), dx(rows * C), dw(C), db(C), sr(C),
        dq(q.size()), dk(kk.size()), dv(kk.size()), out(q.size()), loss(1);
    k::embeddingBwd(ids.data(), dy.data(), dtable.data(), rows, V, C);
    k::layerNormBwd(x.data(), w.data(), dy.data(), dx.data(), dw.data(),
                    db.data(), rows, C, 1e-5);
    k::sumRows(dy.data(), sr.data(), rows, C);
    k::attentionFwd(q.data(), kk.data(), v.data(), out.data(), B, S, Hq, Hkv, D,
                    0.25, true, ws.data());
    k::attentionBwd(q.data(), kk.data(), v.data(), dout.data(), dq.data(),
                    dk.data(), dv.data(), B, S, Hq, Hkv, D, 0.25, true,
                    ws.data());
    std::vector<int32_t> targets(ids.begin(), ids.end());
    k::crossEntropyFwd(x.data(), targets.data(), loss.data(), rows, C);
    float ss = float(k::sumSquares(x.data(), int64_t(x.size())));
    return std::vector<std::vector<float>>{dtable, dx, dw, db,   sr,  out,
                                           dq,     dk, dv, loss, {ss}};
  };
  k::setThreads(1);
  auto one = runAll();
  k::setThreads(2);
  auto two = runAll();
  auto again = runAll();
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) {
    EXPECT_EQ(one[i], two[i]) << "result " << i << " differs, 1 vs 2 threads";
    EXPECT_EQ(two[i], again[i]) << "result " << i << " differs between runs";
  }
}

} // namespace

// The float activations use a polynomial exp; they must stay within a few
// ulp of the double (libm) results over the whole range, negative tails
// included.
TEST(CpuKernelsFloat, ActivationsMatchDoubleAcrossRange) {
  const int64_t n = 4001;
  std::vector<float> xf(n), yf(n), dyf(n, 1.0f), df(n);
  std::vector<double> xd(n), yd(n), dyd(n, 1.0), dd(n);
  for (int64_t i = 0; i < n; ++i) {
    xd[i] = -20.0 + 40.0 * static_cast<double>(i) / (n - 1);
    xf[i] = static_cast<float>(xd[i]);
    xd[i] = xf[i]; // the same input in both precisions
  }
  // The float exp argument a (2 z(x) for GELU, x for SiLU) itself carries
  // about 2 ulp of rounding, 1.2e-7 |a|, which exp turns into that much
  // relative error: the tolerance is a few ulp plus that.
  auto check = [&](const char *what, double tol) {
    for (int64_t i = 0; i < n; ++i) {
      double x = xd[i];
      double arg = what[0] == 'g'
                       ? 2 * 0.7978845608028654 * (x + 0.044715 * x * x * x)
                       : x;
      double scale = std::max(std::abs(yd[i]), 1e-30);
      ASSERT_LE(std::abs(yf[i] - yd[i]) / scale, tol + 1.2e-7 * std::abs(arg))
          << what << " at x = " << xd[i] << ": " << yf[i] << " vs " << yd[i];
    }
  };
  llmrt::cpu::geluFwd(xf.data(), yf.data(), n);
  llmrt::cpu::geluFwd(xd.data(), yd.data(), n);
  check("gelu", 2e-6);
  llmrt::cpu::siluFwd(xf.data(), yf.data(), n);
  llmrt::cpu::siluFwd(xd.data(), yd.data(), n);
  check("silu", 2e-6);
  llmrt::cpu::geluBwd(xf.data(), dyf.data(), df.data(), n);
  llmrt::cpu::geluBwd(xd.data(), dyd.data(), dd.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_NEAR(df[i], dd[i], 2e-6 * std::max(1.0, std::abs(dd[i])))
        << "gelu' at x = " << xd[i];
  llmrt::cpu::siluBwd(xf.data(), dyf.data(), df.data(), n);
  llmrt::cpu::siluBwd(xd.data(), dyd.data(), dd.data(), n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_NEAR(df[i], dd[i], 2e-6 * std::max(1.0, std::abs(dd[i])))
        << "silu' at x = " << xd[i];
}
