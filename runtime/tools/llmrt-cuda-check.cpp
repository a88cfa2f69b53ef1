//===- llmrt-cuda-check.cpp - every CUDA kernel against the CPU backend ---===//
//
// Runs each kernel of the CUDA backend and the CPU kernel of the same name
// (CpuKernels.h, the reference that the PyTorch parity tests pin) on the
// same random inputs, and compares: max |gpu - cpu| / max |cpu| per output
// must stay within the tolerance of the arithmetic (1e-4 for the fp32
// kernels; 2e-2 for GEMMs on bf16 tensor cores, 1e-5 in fp32 mode). Shapes
// include the awkward ones: row lengths that are not multiples of 32,
// sequence lengths that are not multiples of the attention tiles,
// grouped-query attention, every supported head dimension.
//
//   llmrt-cuda-check [--gemm bf16|bf16-fast|tf32|fp32] [--only GROUP]
//                    [--program EXE]...
//
// --program: also the compiler's generated kernels of the program EXE
// embeds (compiled with --target cuda), each against the CPU's
// interpretation of its fusion group (group "generated").
//
// Exit 0: all pass; 1: a kernel is wrong; 77: no CUDA device (ctest: skip).
//
//===----------------------------------------------------------------------===//
#include "llmrt/CpuKernels.h"
#include "llmrt/CudaGenerated.h"
#include "llmrt/CudaKernels.h"
#include "llmrt/FusedKernels.h"
#include "llmrt/Program.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace llmrt;

namespace {

struct Rng {
  uint64_t s;
  double uniform() { // [-1, 1)
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (z >> 11) * 0x1.0p-53 * 2.0 - 1.0;
  }
};

std::vector<float> randomVec(Rng &rng, int64_t n, double scale = 1.0) {
  std::vector<float> v(n);
  for (float &x : v)
    x = static_cast<float>(rng.uniform() * scale);
  return v;
}

void must(cudaError_t e, const char *what) {
  if (e != cudaSuccess) {
    std::fprintf(stderr, "error: %s: %s\n", what, cudaGetErrorString(e));
    std::exit(1);
  }
}

int failures = 0, checks = 0, guarded = 0;

/// Whether device buffers carry guards (LLMRT_CHECK_GUARD=0: not, for
/// compute-sanitizer, whose memcheck then sees every access past a buffer).
bool guardsOn() {
  static const bool on = [] {
    const char *e = std::getenv("LLMRT_CHECK_GUARD");
    if (e && std::string(e) != "0" && std::string(e) != "1") {
      std::fprintf(stderr, "error: LLMRT_CHECK_GUARD='%s' is not 0 or 1\n", e);
      std::exit(2);
    }
    return !(e && std::string(e) == "0");
  }();
  return on;
}

/// A device buffer of n elements (from a host vector, or filled with NaNs),
/// and as many bytes again after them filled with a guard pattern that the
/// destructor checks: a kernel that writes past its output (a 16-bit
/// tensor written at fp32 size, over the bytes the runtime's arena gives
/// its neighbour: ArenaPack.h) fails.
template <typename T> struct Dev {
  static constexpr int kGuard = 0xa5;
  T *p = nullptr;
  size_t n = 0;
  explicit Dev(const std::vector<T> &h) : n(h.size()) {
    allocate();
    must(cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice), "upload");
  }
  explicit Dev(size_t count) : n(count) {
    allocate();
    must(cudaMemset(p, 0xff, std::max<size_t>(n, 1) * sizeof(T)), "memset"); // NaN: unwritten shows
  }
  ~Dev() {
    const size_t bytes = std::max<size_t>(n, 1) * sizeof(T);
    std::vector<unsigned char> guard(bytes);
    if (guardsOn() && cudaDeviceSynchronize() == cudaSuccess &&
        cudaMemcpy(guard.data(), reinterpret_cast<unsigned char *>(p) + bytes, bytes,
                   cudaMemcpyDeviceToHost) == cudaSuccess) {
      size_t bad = 0;
      for (unsigned char g : guard)
        bad += g != kGuard;
      ++guarded;
      if (bad) {
        ++checks;
        ++failures;
        std::printf("%-44s FAIL  %zu bytes written past a buffer of %zu elements of %zu bytes\n",
                    "buffer bounds", bad, n, sizeof(T));
      }
    }
    cudaFree(p);
  }
  Dev(const Dev &) = delete;

private:
  void allocate() {
    const size_t bytes = std::max<size_t>(n, 1) * sizeof(T);
    must(cudaMalloc(reinterpret_cast<void **>(&p), (guardsOn() ? 2 : 1) * bytes), "cudaMalloc");
    if (guardsOn())
      must(cudaMemset(reinterpret_cast<unsigned char *>(p) + bytes, kGuard, bytes), "memset");
  }

public:
  std::vector<T> host() const {
    std::vector<T> h(n);
    must(cudaDeviceSynchronize(), "kernel");
    must(cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return h;
  }
};

void compare(const std::string &name, const std::vector<float> &ref,
             const std::vector<float> &got, double tol) {
  double maxRef = 0, maxErr = 0;
  bool finite = true;
  for (size_t i = 0; i < ref.size(); ++i) {
    maxRef = std::max(maxRef, std::fabs(double(ref[i])));
    if (!std::isfinite(got[i]))
      finite = false;
    else
      maxErr = std::max(maxErr, std::fabs(double(got[i]) - ref[i]));
  }
  double rel = maxErr / std::max(maxRef, 1e-30);
  bool ok = finite && rel <= tol;
  ++checks;
  failures += !ok;
  std::printf("%-44s %s  rel err %.2e (tol %.0e, max |ref| %.3g)%s\n",
              name.c_str(), ok ? "PASS" : "FAIL", rel, tol, maxRef,
              finite ? "" : " non-finite output");
}

constexpr double kTol = 1e-4;

/// Two 16-bit tensors (bits) element by element: equal, or one rounding
/// step apart (adjacent codes of the same sign), zeros of either sign
/// equal. Counts as one check.
void compare16Steps(const std::string &name, const std::vector<uint16_t> &a,
                    const std::vector<uint16_t> &b) {
  int64_t apart = 0, worst = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const int ma = a[i] & 0x7fff, mb = b[i] & 0x7fff;
    const bool sameSign = (a[i] >> 15) == (b[i] >> 15) || (ma == 0 && mb == 0);
    const int64_t d = sameSign ? std::abs(ma - mb) : ma + mb;
    worst = std::max(worst, d);
    apart += d > 1;
  }
  const bool ok = a.size() == b.size() && apart == 0;
  ++checks;
  failures += !ok;
  std::printf("%-44s %s  %lld of %zu elements more than one 16-bit step apart (worst %lld)\n",
              name.c_str(), ok ? "PASS" : "FAIL", static_cast<long long>(apart), a.size(),
              static_cast<long long>(worst));
}


float from16(uint16_t v, cuda::Half h);
uint16_t to16(float f, cuda::Half h);

/// A cuBLAS handle for the GEMM checks, or the reason it failed and exit.
cuda::Blas *blasOrExit(cuda::GemmMode mode) {
  std::string err;
  cuda::Blas *blas = cuda::createBlas(nullptr, mode, 1 << 20, &err);
  if (!blas) {
    std::fprintf(stderr, "error: %s\n", err.c_str());
    std::exit(1);
  }
  return blas;
}

void checkNorms(Rng &rng) {
  for (auto [rows, C] : {std::pair<int64_t, int64_t>{300, 200}, {64, 768},
                         {5000, 256}, {33, 1536}, {7, 4096}}) {
    std::string sz = "[" + std::to_string(rows) + "x" + std::to_string(C) + "]";
    auto x = randomVec(rng, rows * C, 2.0), w = randomVec(rng, C),
         b = randomVec(rng, C), dy = randomVec(rng, rows * C);
    std::vector<float> y(rows * C), dx(rows * C), dw(C), db(C);
    cpu::layerNormFwd(x.data(), w.data(), b.data(), y.data(), rows, C, 1e-5);
    cpu::layerNormBwd(x.data(), w.data(), dy.data(), dx.data(), dw.data(),
                      db.data(), rows, C, 1e-5);
    Dev<float> X(x), W(w), Bb(b), DY(dy), Y(rows * C), DX(rows * C), DW(C), DB(C);
    cuda::layerNormFwd(X.p, W.p, Bb.p, Y.p, rows, C, 1e-5, nullptr);
    cuda::layerNormBwd(X.p, W.p, DY.p, DX.p, DW.p, DB.p, rows, C, 1e-5, nullptr);
    compare("layer_norm_fwd " + sz, y, Y.host(), kTol);
    compare("layer_norm_bwd dx " + sz, dx, DX.host(), kTol);
    compare("layer_norm_bwd dw " + sz, dw, DW.host(), kTol);
    compare("layer_norm_bwd db " + sz, db, DB.host(), kTol);

    cpu::rmsNormFwd(x.data(), w.data(), y.data(), rows, C, 1e-6);
    cpu::rmsNormBwd(x.data(), w.data(), dy.data(), dx.data(), dw.data(), rows, C, 1e-6);
    cuda::rmsNormFwd(X.p, W.p, Y.p, rows, C, 1e-6, nullptr);
    cuda::rmsNormBwd(X.p, W.p, DY.p, DX.p, DW.p, rows, C, 1e-6, nullptr);
    compare("rms_norm_fwd " + sz, y, Y.host(), kTol);
    compare("rms_norm_bwd dx " + sz, dx, DX.host(), kTol);
    compare("rms_norm_bwd dw " + sz, dw, DW.host(), kTol);
    // In place (dx aliasing dy), as the compiler's buffer packing allows.
    Dev<float> DY2(dy);
    cuda::rmsNormBwd(X.p, W.p, DY2.p, DY2.p, DW.p, rows, C, 1e-6, nullptr);
    compare("rms_norm_bwd dx in place " + sz, dx, DY2.host(), kTol);

    // The residual add fused into the layer norm (LLMRT_CUDA_FUSE_ADD_NORM):
    // sum = x + dy (an fp32 addend, and a bf16 one with a bf16 output), in
    // place over x too, against the CPU's add then norm.
    std::vector<float> sum(rows * C);
    cpu::add(x.data(), dy.data(), sum.data(), rows * C, rows * C);
    cpu::layerNormFwd(sum.data(), w.data(), b.data(), y.data(), rows, C, 1e-5);
    Dev<float> SUM(rows * C), XI(x);
    cuda::layerNormFwdAdd(X.p, cuda::In{DY.p, false}, SUM.p, W.p, Bb.p, cuda::Out{Y.p, false},
                          rows, C, 1e-5, cuda::Half::Bf16, nullptr);
    compare("layer_norm_fwd + add: sum " + sz, sum, SUM.host(), 0);
    compare("layer_norm_fwd + add " + sz, y, Y.host(), kTol);
    Dev<uint16_t> DY16(dy.size()), Y16(rows * C);
    cuda::toBf16(DY.p, DY16.p, rows * C, nullptr);
    std::vector<float> dyRounded(dy.size());
    {
      std::vector<uint16_t> h = DY16.host();
      for (size_t i = 0; i < h.size(); ++i)
        dyRounded[i] = from16(h[i], cuda::Half::Bf16);
    }
    cpu::add(x.data(), dyRounded.data(), sum.data(), rows * C, rows * C);
    cpu::layerNormFwd(sum.data(), w.data(), b.data(), y.data(), rows, C, 1e-5);
    cuda::layerNormFwdAdd(XI.p, cuda::In{DY16.p, true}, XI.p, W.p, Bb.p, cuda::Out{Y16.p, true},
                          rows, C, 1e-5, cuda::Half::Bf16, nullptr);
    std::vector<float> y16(rows * C);
    {
      std::vector<uint16_t> h = Y16.host();
      for (size_t i = 0; i < h.size(); ++i)
        y16[i] = from16(h[i], cuda::Half::Bf16);
    }
    compare("layer_norm_fwd + bf16 add in place: sum " + sz, sum, XI.host(), 0);
    compare("layer_norm_fwd + bf16 add, bf16 out " + sz, y, y16, 1e-2);
    // A bf16 addend with an fp32 output; the sum over the fp32 addend.
    Dev<float> SUM2(rows * C), Y2(rows * C);
    cuda::layerNormFwdAdd(X.p, cuda::In{DY16.p, true}, SUM2.p, W.p, Bb.p,
                          cuda::Out{Y2.p, false}, rows, C, 1e-5, cuda::Half::Bf16, nullptr);
    compare("layer_norm_fwd + bf16 add, fp32 out " + sz, y, Y2.host(), kTol);
    cpu::add(x.data(), dy.data(), sum.data(), rows * C, rows * C);
    cpu::layerNormFwd(sum.data(), w.data(), b.data(), y.data(), rows, C, 1e-5);
    Dev<float> D2(dy);
    cuda::layerNormFwdAdd(X.p, cuda::In{D2.p, false}, D2.p, W.p, Bb.p, cuda::Out{Y2.p, false},
                          rows, C, 1e-5, cuda::Half::Bf16, nullptr);
    compare("layer_norm_fwd + add over the addend: sum " + sz, sum, D2.host(), 0);
    compare("layer_norm_fwd + add over the addend " + sz, y, Y2.host(), kTol);
  }
}

void checkLinear(Rng &rng, cuda::GemmMode mode) {
  double tol = mode == cuda::GemmMode::Fp32 ? 1e-5 : 2e-2;
  std::string err;
  cuda::Blas *blas = blasOrExit(mode);
  const char *m = cuda::gemmModeName(mode);
  struct Shape {
    int64_t rows, in, out;
  };
  // An odd width too: unaligned rows of C (the head of an unpadded
  // vocabulary).
  for (auto [rows, in, out] : {Shape{333, 192, 160}, Shape{257, 96, 37}})
  for (bool transW : {false, true}) {
    auto x = randomVec(rng, rows * in), w = randomVec(rng, in * out),
         bias = randomVec(rng, out), dy = randomVec(rng, rows * out);
    std::vector<float> y(rows * out), dw(in * out), dx(rows * in);
    cpu::linearFwd(x.data(), w.data(), bias.data(), y.data(), rows, in, out, transW);
    cpu::linearBwdWeight(x.data(), dy.data(), dw.data(), rows, in, out, transW);
    // The input gradient is a forward GEMM with the layout flipped:
    // dx = dy Wᵀ (W as [in, out]).
    cpu::linearBwdInput(dy.data(), w.data(), dx.data(), rows, in, out, transW);
    Dev<float> X(x), Wd(w), Bd(bias), DY(dy), Y(rows * out), DW(in * out), DX(rows * in);
    // New buffers (perhaps at a freed one's address) with new contents.
    cuda::gemmForget(blas);
    std::string t = std::string(" ") + m + (transW ? " transW" : "") + " [" +
                    std::to_string(rows) + "x" + std::to_string(in) + "x" +
                    std::to_string(out) + "]";
    // The bias gradient from the weight gradient's epilogue, where it can.
    std::vector<float> db(out);
    cpu::sumRows(dy.data(), db.data(), rows, out);
    Dev<float> DB(out);
    bool dbDone = false;
    bool ok = cuda::linearFwd(blas, X.p, Wd.p, Bd.p, Y.p, rows, in, out, transW, &err) &&
              cuda::linearBwdWeight(blas, X.p, DY.p, DW.p, rows, in, out, transW, &err,
                                    DB.p, &dbDone) &&
              cuda::linearFwd(blas, DY.p, Wd.p, nullptr, DX.p, rows, out, in, !transW, &err);
    if (!ok) {
      std::printf("linear%s FAIL: %s\n", t.c_str(), err.c_str());
      ++failures;
      continue;
    }
    compare("linear_fwd (bias)" + t, y, Y.host(), tol);
    compare("linear_bwd_weight" + t, dw, DW.host(), tol);
    compare("linear_bwd_input (as linear_fwd)" + t, dx, DX.host(), tol);
    if (dbDone)
      compare("linear_bwd_weight's bias gradient (epilogue)" + t, db, DB.host(), tol);
  }
  std::printf("linear: %lld of 4 biases added and %lld of 4 bias gradients summed in "
              "the GEMMs' epilogues (cuBLASLt); %lld operand copies reused; %lld "
              "shapes' algorithms timed\n",
              static_cast<long long>(cuda::gemmEpilogueCount(blas)),
              static_cast<long long>(cuda::gemmBiasGradCount(blas)),
              static_cast<long long>(cuda::gemmReusedCopies(blas)),
              static_cast<long long>(cuda::gemmTunedPlans(blas)));
  cuda::destroyBlas(blas);
}

/// A 16-bit value (bf16 or fp16 bits) as a float, on the host.
float from16(uint16_t v, cuda::Half h) {
  if (h == cuda::Half::Bf16) {
    uint32_t u = static_cast<uint32_t>(v) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  }
  const int e = (v >> 10) & 31, m = v & 1023;
  const float sign = (v & 0x8000) ? -1.0f : 1.0f;
  if (e == 0)
    return sign * std::ldexp(static_cast<float>(m), -24);
  if (e == 31)
    return m ? std::numeric_limits<float>::quiet_NaN() : sign * INFINITY;
  return sign * std::ldexp(static_cast<float>(m + 1024), e - 25);
}

/// A float rounded to the 16-bit type `h` (nearest even), as its bits.
uint16_t to16(float f, cuda::Half h) {
  if (h == cuda::Half::Bf16) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
  }
  // fp16 by way of the nearest representable value (inputs here are small).
  const float a = std::fabs(f);
  uint16_t sign = f < 0 ? 0x8000 : 0;
  if (a < std::ldexp(1.0f, -14)) // subnormal: steps of 2^-24
    return sign | static_cast<uint16_t>(std::nearbyint(std::ldexp(a, 24)));
  int e;
  float m = std::frexp(a, &e); // a = m 2^e, m in [0.5, 1)
  int q = static_cast<int>(std::nearbyint(std::ldexp(m, 11))); // 11 significant bits
  if (q == 2048) {
    q = 1024;
    ++e;
  }
  return sign | static_cast<uint16_t>(((e + 14) << 10) | (q - 1024));
}

/// The kernels that read 16-bit activations (GEMM outputs stored 16-bit)
/// against the fp32 kernels on the same values widened to fp32: the same
/// results (the arithmetic is fp32 in both).
template <typename Round>
void checkInputs16(Rng &rng, cuda::Half h, const std::string &tag, Round round16) {
  auto widen = [&](const std::vector<uint16_t> &v) {
    std::vector<float> f(v.size());
    for (size_t i = 0; i < v.size(); ++i)
      f[i] = from16(v[i], h);
    return f;
  };
  // A 16-bit copy of random values, and the same values as fp32.
  auto pair = [&](int64_t n, double scale) {
    auto x = randomVec(rng, n, scale);
    Dev<float> X(x);
    std::vector<uint16_t> x16 = round16(X.p, n);
    return std::make_pair(x16, widen(x16));
  };
  for (int64_t n : {int64_t(100003), int64_t(65536)}) {
    const std::string sz = " [" + std::to_string(n) + "]" + tag;
    auto [x16, xw] = pair(n, 6.0);
    auto [g16, gw] = pair(n, 1.0);
    Dev<uint16_t> X16(x16), G16(g16);
    Dev<float> XW(xw), GW(gw), Y(n), Y2(n);
    cuda::geluFwd(XW.p, Y.p, n, nullptr);
    cuda::geluFwdT({X16.p, true}, {Y2.p}, n, h, nullptr);
    compare("gelu_fwd, 16-bit x" + sz, Y.host(), Y2.host(), 0);
    cuda::geluBwd(XW.p, GW.p, Y.p, n, nullptr);
    cuda::geluBwdT({X16.p, true}, {G16.p, true}, {Y2.p}, n, h, nullptr);
    compare("gelu_bwd, 16-bit x and dy" + sz, Y.host(), Y2.host(), 0);
    cuda::geluBwdT({XW.p}, {G16.p, true}, {Y2.p}, n, h, nullptr);
    compare("gelu_bwd, 16-bit dy" + sz, Y.host(), Y2.host(), 0);
    cuda::siluBwd(XW.p, GW.p, Y.p, n, nullptr);
    cuda::siluBwdT({X16.p, true}, {G16.p, true}, {Y2.p}, n, h, nullptr);
    compare("silu_bwd, 16-bit x and dy" + sz, Y.host(), Y2.host(), 0);
    cuda::add(XW.p, GW.p, Y.p, n, n, nullptr);
    cuda::addT({XW.p}, {G16.p, true}, {Y2.p}, n, h, nullptr);
    compare("add, 16-bit b" + sz, Y.host(), Y2.host(), 0);
  }
  // The layer-norm backward: C a multiple of 32 up to 1024 in registers
  // (8, 16, 24 or 32 columns a lane: 2000 x 128, 4500 x 320, 64 x 768,
  // 4300 x 640, 3000 x 1024), the others by the generic kernel (300 x 200,
  // 7 x 4096); 66 x 768: the staged kernel's last block with warps
  // without a row.
  for (auto [rows, C] : {std::pair<int64_t, int64_t>{300, 200}, {64, 768}, {7, 4096},
                         {4500, 320}, {4300, 640}, {3000, 1024}, {2000, 128}, {66, 768}}) {
    const std::string sz = " [" + std::to_string(rows) + "x" + std::to_string(C) + "]" + tag;
    auto x = randomVec(rng, rows * C, 2.0), w = randomVec(rng, C);
    auto [dy16, dyw] = pair(rows * C, 1.0);
    Dev<float> X(x), W(w), DYW(dyw), DX(rows * C), DW(C), DB(C), DX2(rows * C),
        DW2(C), DB2(C);
    Dev<uint16_t> DY16(dy16);
    cuda::layerNormBwd(X.p, W.p, DYW.p, DX.p, DW.p, DB.p, rows, C, 1e-5, nullptr);
    cuda::layerNormBwdT(X.p, W.p, {DY16.p, true}, DX2.p, DW2.p, DB2.p, rows, C, 1e-5, h,
                        nullptr);
    // dw, db: atomics in a different order; dx the same arithmetic.
    compare("layer_norm_bwd dx, 16-bit dy" + sz, DX.host(), DX2.host(), 0);
    // The residual gradient added in the kernel (fused add): into dx,
    // and in place over the addend.
    {
      auto g = randomVec(rng, rows * C);
      Dev<float> G(g), G2(g), DX3(rows * C);
      std::vector<float> want = DX.host();
      for (size_t e = 0; e < want.size(); ++e)
        want[e] += g[e];
      Dev<float> DWS(C), DBS(C); // the weight gradients of these: compared below
      cuda::layerNormBwdT(X.p, W.p, {DYW.p}, DX3.p, DWS.p, DBS.p, rows, C, 1e-5, h, nullptr,
                          G.p);
      cuda::layerNormBwdT(X.p, W.p, {DYW.p}, G2.p, DWS.p, DBS.p, rows, C, 1e-5, h, nullptr,
                          G2.p);
      compare("layer_norm_bwd dx + residual gradient" + sz, want, DX3.host(), 1e-6);
      compare("layer_norm_bwd dx + residual gradient, in place" + sz, want, G2.host(), 1e-6);
      // dx over dy (an fp32 dy: a row's dy is read before its dx is
      // stored).
      Dev<float> DY5(dyw);
      cuda::layerNormBwdT(X.p, W.p, {DY5.p}, DY5.p, DWS.p, DBS.p, rows, C, 1e-5, h, nullptr);
      compare("layer_norm_bwd dx over dy" + sz, DX.host(), DY5.host(), 1e-6);
      // The rows staged by cp.async (LLMRT_CUDA_LN_BWD_ASYNC=1; C a
      // multiple of 32 up to 1024, else the others): the same, with its
      // weight and bias gradients.
      {
        const bool applies = C % 32 == 0 && C <= 1024;
        Dev<float> G3(g), DX4(rows * C), DW4(C), DB4(C), DY6(dyw);
        const bool ran = cuda::layerNormBwdT(X.p, W.p, {DYW.p}, DX4.p, DW4.p, DB4.p, rows, C,
                                             1e-5, h, nullptr, G.p, true);
        ++checks;
        if (ran != applies) {
          ++failures;
          std::printf("layer_norm_bwd staged%s FAIL  the kernel %s\n", sz.c_str(),
                      ran ? "ran where it does not apply" : "did not run");
        }
        compare("layer_norm_bwd staged dx + residual gradient" + sz, want, DX4.host(), 1e-6);
        compare("layer_norm_bwd staged dw" + sz, DW.host(), DW4.host(), 1e-5);
        compare("layer_norm_bwd staged db" + sz, DB.host(), DB4.host(), 1e-5);
        int stagedRuns =
            cuda::layerNormBwdT(X.p, W.p, {DYW.p}, G3.p, DWS.p, DBS.p, rows, C, 1e-5, h,
                                nullptr, G3.p, true);
        compare("layer_norm_bwd staged, in place" + sz, want, G3.host(), 1e-6);
        stagedRuns += cuda::layerNormBwdT(X.p, W.p, {DY6.p}, DY6.p, DWS.p, DBS.p, rows, C, 1e-5,
                                          h, nullptr, nullptr, true);
        compare("layer_norm_bwd staged dx over dy" + sz, DX.host(), DY6.host(), 1e-6);
        stagedRuns += cuda::layerNormBwdT(X.p, W.p, {DY16.p, true}, DX4.p, DW4.p, DB4.p, rows, C,
                                          1e-5, h, nullptr, nullptr, true);
        ++checks;
        if (stagedRuns != (applies ? 3 : 0)) {
          ++failures;
          std::printf("layer_norm_bwd staged%s FAIL  %d of 3 calls (in place, over dy, 16-bit "
                      "dy) staged\n", sz.c_str(), stagedRuns);
        }
        compare("layer_norm_bwd staged dx, 16-bit dy" + sz, DX2.host(), DX4.host(), 1e-6);
        compare("layer_norm_bwd staged dw, 16-bit dy" + sz, DW2.host(), DW4.host(), 1e-5);
        compare("layer_norm_bwd staged db, 16-bit dy" + sz, DB2.host(), DB4.host(), 1e-5);
      }
    }
    compare("layer_norm_bwd dw, 16-bit dy" + sz, DW.host(), DW2.host(), 1e-5);
    compare("layer_norm_bwd db, 16-bit dy" + sz, DB.host(), DB2.host(), 1e-5);
    // dw and db side by side (as the compiler packs them: one memset).
    {
      Dev<float> DWB(2 * C), DX5(rows * C);
      cuda::layerNormBwdT(X.p, W.p, {DYW.p}, DX5.p, DWB.p, DWB.p + C, rows, C, 1e-5, h,
                          nullptr);
      const std::vector<float> both = DWB.host();
      compare("layer_norm_bwd dw, beside db" + sz, DW.host(),
              std::vector<float>(both.begin(), both.begin() + C), 1e-5);
      compare("layer_norm_bwd db, beside dw" + sz, DB.host(),
              std::vector<float>(both.begin() + C, both.end()), 1e-5);
    }
  }
  for (auto [rows, V, valid] : {std::tuple<int64_t, int64_t, int64_t>{16, 1024, 1000},
                               {8, 999, 999}}) {
    const std::string sz = " [" + std::to_string(rows) + "x" + std::to_string(V) + "]" + tag;
    auto [l16, lw] = pair(rows * V, 8.0);
    std::vector<int32_t> tg(rows);
    for (int32_t &t : tg)
      t = static_cast<int32_t>((rng.uniform() + 1) * 0.5 * valid) % valid;
    Dev<uint16_t> L16(l16);
    Dev<float> LW(lw), LOSS(1), LOSS2(1), RS(rows), DL(rows * V), DL2(rows * V);
    Dev<int32_t> TG(tg);
    cuda::crossEntropyFwd(LW.p, TG.p, LOSS.p, rows, V, valid, RS.p, nullptr);
    cuda::crossEntropyFwdT({L16.p, true}, TG.p, LOSS2.p, rows, V, valid, RS.p, h, nullptr);
    compare("cross_entropy_fwd, 16-bit logits" + sz, LOSS.host(), LOSS2.host(), 0);
    cuda::crossEntropyBwd(LW.p, TG.p, DL.p, rows, V, valid, 1.0f, nullptr);
    cuda::crossEntropyBwdT({L16.p, true}, TG.p, {DL2.p}, rows, V, valid, 1.0f, h, nullptr);
    compare("cross_entropy_bwd, 16-bit logits" + sz, DL.host(), DL2.host(), 0);
  }
  {
    const int64_t rows = 129;
    auto [s16, sw] = pair(rows * 300, 1.0);
    Dev<uint16_t> S16(s16);
    Dev<float> SW(sw);
    for (auto [off, dOff, width] : {std::tuple<int64_t, int64_t, int64_t>{100, 10, 100},
                                   {96, 8, 100}}) {
      std::vector<float> init = randomVec(rng, rows * 120);
      Dev<float> D(init), D2(init);
      cuda::copyColumns(SW.p, 300, off, D.p, 120, dOff, width, rows, nullptr);
      cuda::copyColumnsT({S16.p, true}, 300, off, {D2.p}, 120, dOff, width, rows, h, nullptr);
      compare("copy_columns, 16-bit src" + std::string(off % 4 ? "" : " (vectors)") + tag,
              D.host(), D2.host(), 0);
    }
  }
}

/// The kernels' 16-bit outputs (a tensor only GEMMs read, stored as their
/// operand: Store16.h) against the fp32 kernels' outputs rounded by
/// toBf16 / toFp16, the GEMMs' own conversion: the same bits. And GEMMs
/// reading 16-bit operands against the same GEMMs converting fp32 ones.
void checkStore16(Rng &rng, cuda::GemmMode mode) {
  if (!cuda::gemmTakes16(mode))
    return;
  const cuda::Half h = mode == cuda::GemmMode::Fp16 ? cuda::Half::Fp16 : cuda::Half::Bf16;
  const std::string tag = mode == cuda::GemmMode::Fp16 ? " (fp16)" : " (bf16)";
  auto round16 = [&](const float *src, int64_t n) {
    Dev<uint16_t> d(static_cast<size_t>(n));
    (h == cuda::Half::Bf16 ? cuda::toBf16 : cuda::toFp16)(src, d.p, n, nullptr);
    return d.host();
  };
  auto same = [&](const std::string &name, const std::vector<uint16_t> &want,
                  const Dev<uint16_t> &got) {
    std::vector<uint16_t> g = got.host();
    size_t bad = 0;
    for (size_t i = 0; i < want.size(); ++i)
      bad += g[i] != want[i];
    ++checks;
    failures += bad != 0;
    std::printf("%-44s %s  %zu of %zu values differ from the rounded fp32 output\n",
                (name + tag).c_str(), bad ? "FAIL" : "PASS", bad, want.size());
  };
  for (auto [rows, C] : {std::pair<int64_t, int64_t>{300, 200}, {64, 768}}) {
    std::string sz = " [" + std::to_string(rows) + "x" + std::to_string(C) + "]";
    auto x = randomVec(rng, rows * C, 2.0), w = randomVec(rng, C), b = randomVec(rng, C);
    Dev<float> X(x), W(w), Bb(b), Y(rows * C);
    Dev<uint16_t> Y16(rows * C);
    cuda::layerNormFwd(X.p, W.p, Bb.p, Y.p, rows, C, 1e-5, nullptr);
    cuda::layerNormFwd16(X.p, W.p, Bb.p, Y16.p, rows, C, 1e-5, h, nullptr);
    same("layer_norm_fwd 16-bit" + sz, round16(Y.p, rows * C), Y16);
    cuda::rmsNormFwd(X.p, W.p, Y.p, rows, C, 1e-6, nullptr);
    cuda::rmsNormFwd16(X.p, W.p, Y16.p, rows, C, 1e-6, h, nullptr);
    same("rms_norm_fwd 16-bit" + sz, round16(Y.p, rows * C), Y16);
  }
  // An odd length (the scalar tail) and a multiple of 4 (vectors only).
  for (int64_t n : {int64_t(100003), int64_t(65536)}) {
    std::string sz = " [" + std::to_string(n) + "]";
    auto x = randomVec(rng, n, 6.0), g = randomVec(rng, n);
    Dev<float> X(x), G(g), Y(n);
    Dev<uint16_t> Y16(n);
    // Each kernel: (name, its fp32 form, its 16-bit form).
    using F32 = std::function<void(float *)>;
    using F16 = std::function<void(void *)>;
    const std::vector<std::tuple<const char *, F32, F16>> maps = {
        {"gelu_fwd", [&](float *y) { cuda::geluFwd(X.p, y, n, nullptr); },
         [&](void *y) { cuda::geluFwdT({X.p}, {y, true}, n, h, nullptr); }},
        {"gelu_bwd", [&](float *y) { cuda::geluBwd(X.p, G.p, y, n, nullptr); },
         [&](void *y) { cuda::geluBwdT({X.p}, {G.p}, {y, true}, n, h, nullptr); }},
        {"silu_fwd", [&](float *y) { cuda::siluFwd(X.p, y, n, nullptr); },
         [&](void *y) { cuda::siluFwdT({X.p}, {y, true}, n, h, nullptr); }},
        {"silu_bwd", [&](float *y) { cuda::siluBwd(X.p, G.p, y, n, nullptr); },
         [&](void *y) { cuda::siluBwdT({X.p}, {G.p}, {y, true}, n, h, nullptr); }},
        {"add", [&](float *y) { cuda::add(X.p, G.p, y, n, n, nullptr); },
         [&](void *y) { cuda::addT({X.p}, {G.p}, {y, true}, n, h, nullptr); }}};
    for (const auto &[name, f32, f16] : maps) {
      f32(Y.p);
      f16(Y16.p);
      same(std::string(name) + " 16-bit" + sz, round16(Y.p, n), Y16);
    }
  }
  // The loss gradient: V % 4 == 0 (vectors), an odd V (scalars); padding.
  for (auto [rows, V, valid] : {std::tuple<int64_t, int64_t, int64_t>{16, 1024, 1000},
                               {8, 999, 999}}) {
    std::string sz = " [" + std::to_string(rows) + "x" + std::to_string(V) + ", valid " +
                     std::to_string(valid) + "]";
    auto logits = randomVec(rng, rows * V, 8.0);
    std::vector<int32_t> tg(rows);
    for (int32_t &t : tg)
      t = static_cast<int32_t>((rng.uniform() + 1) * 0.5 * valid) % valid;
    Dev<float> L(logits), DL(rows * V);
    Dev<int32_t> TG(tg);
    Dev<uint16_t> DL16(rows * V);
    cuda::crossEntropyBwd(L.p, TG.p, DL.p, rows, V, valid, 1.0f, nullptr);
    cuda::crossEntropyBwdT({L.p}, TG.p, {DL16.p, true}, rows, V, valid, 1.0f, h, nullptr);
    same("cross_entropy_bwd 16-bit" + sz, round16(DL.p, rows * V), DL16);
  }
  // A tensor assembled from column copies (attention's dq, dk, dv into the
  // qkv gradient), written 16-bit: vectors, and scalars (odd widths).
  for (auto widths : {std::vector<int64_t>{40, 40, 40}, std::vector<int64_t>{37, 43, 40}}) {
    const int64_t rows = 129, cols = 120;
    auto src = randomVec(rng, rows * 300);
    Dev<float> S(src), D(rows * cols);
    Dev<uint16_t> D16(rows * cols);
    int64_t at = 0;
    for (int64_t w : widths) {
      cuda::copyColumns(S.p, 300, 100 + at, D.p, cols, at, w, rows, nullptr);
      cuda::copyColumnsT({S.p}, 300, 100 + at, {D16.p, true}, cols, at, w, rows, h, nullptr);
      at += w;
    }
    same(std::string("copy_columns 16-bit dst") + (widths[0] % 4 ? " (scalars)" : ""),
         round16(D.p, rows * cols), D16);
  }
  // sum_rows of a 16-bit dy against the CPU's on the same (rounded) values.
  {
    int64_t rows = 129, C = 97;
    auto dy = randomVec(rng, rows * C);
    Dev<float> DY(dy), DB(C);
    std::vector<uint16_t> dy16 = round16(DY.p, rows * C);
    std::vector<float> rounded(dy16.size()), db(C);
    for (size_t i = 0; i < dy16.size(); ++i)
      rounded[i] = from16(dy16[i], h);
    Dev<uint16_t> DY16(dy16);
    cpu::sumRows(rounded.data(), db.data(), rows, C);
    cuda::sumRows16(DY16.p, DB.p, rows, C, h, nullptr);
    compare("sum_rows of 16-bit dy" + tag, db, DB.host(), 1e-5);
  }
  checkInputs16(rng, h, tag, round16);
  // GEMMs: each operand given 16-bit against the same product converting
  // it; both layouts, with a bias, and the bias gradient.
  std::string err;
  cuda::Blas *blas = blasOrExit(mode);
  const int64_t rows = 333, in = 192, out = 160;
  for (bool transW : {false, true}) {
    const std::string t = std::string(transW ? " transW" : "") + tag;
    auto x = randomVec(rng, rows * in), w = randomVec(rng, in * out),
         bias = randomVec(rng, out), dy = randomVec(rng, rows * out);
    Dev<float> X(x), Wd(w), Bd(bias), DY(dy), Y(rows * out), Y2(rows * out),
        DW(in * out), DW2(in * out), DB(out), DB2(out), DX(rows * in), DX2(rows * in);
    Dev<uint16_t> X16(round16(X.p, rows * in)), DY16(round16(DY.p, rows * out));
    bool ok = true, done = false, done2 = false;
    cuda::gemmForget(blas);
    ok &= cuda::linearFwd(blas, X.p, Wd.p, Bd.p, Y.p, rows, in, out, transW, &err);
    cuda::gemmForget(blas);
    ok &= cuda::linearFwd(blas, X16.p, Wd.p, Bd.p, Y2.p, rows, in, out, transW, &err, 1u);
    cuda::gemmForget(blas);
    ok &= cuda::linearBwdWeight(blas, X.p, DY.p, DW.p, rows, in, out, transW, &err, DB.p, &done);
    cuda::gemmForget(blas);
    ok &= cuda::linearBwdWeight(blas, X16.p, DY16.p, DW2.p, rows, in, out, transW, &err,
                                DB2.p, &done2, 3u);
    cuda::gemmForget(blas);
    ok &= cuda::linearFwd(blas, DY.p, Wd.p, nullptr, DX.p, rows, out, in, !transW, &err);
    cuda::gemmForget(blas);
    ok &= cuda::linearFwd(blas, DY16.p, Wd.p, nullptr, DX2.p, rows, out, in, !transW, &err, 1u);
    // One 16-bit operand and one converted (dy), reusing nothing.
    cuda::gemmForget(blas);
    Dev<float> DW3(in * out);
    ok &= cuda::linearBwdWeight(blas, X.p, DY16.p, DW3.p, rows, in, out, transW, &err,
                                nullptr, nullptr, 2u);
    if (!ok) {
      std::printf("linear 16-bit operands%s FAIL: %s\n", t.c_str(), err.c_str());
      ++failures;
      continue;
    }
    compare("linear_fwd, x 16-bit" + t, Y.host(), Y2.host(), 1e-6);
    // The residual add in the epilogue (C, beta = 1): into another
    // buffer, and in place.
    {
      auto res = randomVec(rng, rows * out);
      Dev<float> R(res), Z(rows * out), R2(res);
      std::vector<float> want = Y.host();
      for (size_t e = 0; e < want.size(); ++e)
        want[e] += res[e];
      cuda::gemmForget(blas);
      const bool okAdd =
          cuda::linearFwd(blas, X16.p, Wd.p, Bd.p, Z.p, rows, in, out, transW, &err, 1u, R.p) &&
          cuda::linearFwd(blas, X16.p, Wd.p, Bd.p, R2.p, rows, in, out, transW, &err, 1u, R2.p);
      if (!okAdd) {
        std::printf("linear_fwd adding to its output%s FAIL: %s\n", t.c_str(), err.c_str());
        ++failures;
      } else {
        compare("linear_fwd + residual (epilogue)" + t, want, Z.host(), 1e-5);
        compare("linear_fwd + residual (epilogue, in place)" + t, want, R2.host(), 1e-5);
      }
    }
    // A 16-bit output (the bias rounded to 16 bits first): within the
    // rounding of the output of the fp32 one.
    for (bool withBias : {true, false}) {
      Dev<uint16_t> Y16(rows * out);
      cuda::gemmForget(blas);
      if (!cuda::linearFwd(blas, X16.p, Wd.p, withBias ? Bd.p : nullptr, Y16.p, rows, in,
                           out, transW, &err, 1u | 4u)) {
        std::printf("linear_fwd 16-bit output%s FAIL: %s\n", t.c_str(), err.c_str());
        ++failures;
        continue;
      }
      std::vector<uint16_t> got = Y16.host();
      std::vector<float> gotF(got.size()), want = Y.host();
      for (size_t i = 0; i < got.size(); ++i)
        gotF[i] = from16(got[i], h);
      if (!withBias)
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t c = 0; c < out; ++c)
            want[r * out + c] -= bias[c];
      compare(std::string("linear_fwd, 16-bit y") + (withBias ? " (bias)" : "") + t, want,
              gotF, mode == cuda::GemmMode::Fp16 ? 2e-3 : 8e-3);
    }
    compare("linear_bwd_weight, x and dy 16-bit" + t, DW.host(), DW2.host(), 1e-6);
    compare("linear_bwd_weight, dy 16-bit" + t, DW.host(), DW3.host(), 1e-6);
    compare("linear_bwd_input, dy 16-bit" + t, DX.host(), DX2.host(), 1e-6);
    // The weight stored 16-bit (LLMRT_CUDA_WEIGHT16: its copy, which AdamW
    // writes): the same products as converting it, alone or with x or dy
    // 16-bit, and with the residual add in the epilogue.
    {
      Dev<uint16_t> W16(round16(Wd.p, in * out));
      auto res = randomVec(rng, rows * out);
      Dev<float> Y3(rows * out), Y4(rows * out), DX3(rows * in), R3(res), R4(res);
      bool ok3 = true;
      cuda::gemmForget(blas);
      ok3 &= cuda::linearFwd(blas, X.p, W16.p, Bd.p, Y3.p, rows, in, out, transW, &err, 2u);
      cuda::gemmForget(blas);
      ok3 &= cuda::linearFwd(blas, X16.p, W16.p, Bd.p, Y4.p, rows, in, out, transW, &err, 3u);
      cuda::gemmForget(blas);
      ok3 &= cuda::linearFwd(blas, DY16.p, W16.p, nullptr, DX3.p, rows, out, in, !transW,
                             &err, 3u);
      cuda::gemmForget(blas);
      ok3 &= cuda::linearFwd(blas, X16.p, W16.p, Bd.p, R3.p, rows, in, out, transW, &err, 3u,
                             R3.p);
      cuda::gemmForget(blas);
      ok3 &= cuda::linearFwd(blas, X16.p, Wd.p, Bd.p, R4.p, rows, in, out, transW, &err, 1u,
                             R4.p);
      if (!ok3) {
        std::printf("linear 16-bit weight%s FAIL: %s\n", t.c_str(), err.c_str());
        ++failures;
      } else {
        compare("linear_fwd, W 16-bit" + t, Y.host(), Y3.host(), 1e-6);
        compare("linear_fwd, x and W 16-bit" + t, Y.host(), Y4.host(), 1e-6);
        compare("linear_bwd_input, dy and W 16-bit" + t, DX.host(), DX3.host(), 1e-6);
        compare("linear_fwd + residual add, x and W 16-bit" + t, R4.host(), R3.host(), 1e-6);
      }
    }
    if (done && done2)
      compare("bias gradient from 16-bit dy" + t, DB.host(), DB2.host(), 1e-6);
  }
  cuda::destroyBlas(blas);
}

/// GELU in the GEMM's epilogue (cuBLASLt GELU_AUX_BIAS, DGELU), fp32 and
/// 16-bit, against the GEMM and the GELU kernels apart: the forward's
/// output and kept pre-activation, the backward's input gradient.
void checkGeluEpilogue(Rng &rng, cuda::GemmMode mode) {
  if (!cuda::gemmTakes16(mode))
    return;
  const cuda::Half h = mode == cuda::GemmMode::Fp16 ? cuda::Half::Fp16 : cuda::Half::Bf16;
  std::string err;
  cuda::Blas *blas = blasOrExit(mode);
  const int64_t rows = 256, in = 128, out = 512;
  auto x = randomVec(rng, rows * in), w = randomVec(rng, in * out, 0.2),
       bias = randomVec(rng, out), dy = randomVec(rng, rows * in);
  Dev<float> X(x), W(w), Bd(bias), DY(dy), Y(rows * out), G(rows * out), DG(rows * out),
      DYP(rows * out);
  // Apart: y = x W + b, g = gelu(y); dg = dy Wᵀ, dpre = gelu'(y) dg.
  bool ok = cuda::linearFwd(blas, X.p, W.p, Bd.p, Y.p, rows, in, out, false, &err) &&
            cuda::linearFwd(blas, DY.p, W.p, nullptr, DG.p, rows, in, out, false, &err);
  cuda::geluFwd(Y.p, G.p, rows * out, nullptr);
  cuda::geluBwd(Y.p, DG.p, DYP.p, rows * out, nullptr);
  auto widen = [&](const Dev<uint16_t> &d) {
    std::vector<uint16_t> v = d.host();
    std::vector<float> f(v.size());
    for (size_t e = 0; e < v.size(); ++e)
      f[e] = from16(v[e], h);
    return f;
  };
  for (bool h16 : {false, true}) {
    const std::string tag = h16 ? (h == cuda::Half::Fp16 ? " (fp16)" : " (bf16)") : " (fp32)";
    // cuBLASLt's GELU (the tanh form, as GPT-2's) computed its own way.
    const double tol = h16 ? (h == cuda::Half::Fp16 ? 5e-3 : 1e-2) : 5e-3;
    // 16-bit: the tensors are stored in halves of these buffers.
    Dev<float> Yf(rows * out), Gf(rows * out), DGf(rows * out), DYf(rows * out), Y16(rows * out);
    if (h16)
      (h == cuda::Half::Bf16 ? cuda::toBf16 : cuda::toFp16)(Y.p, Y16.p, rows * out, nullptr);
    bool fwdDone = false, bwdDone = false;
    cuda::GeluEpilogue fwd{cuda::GeluEpilogue::Forward, Gf.p, Yf.p, h16, &fwdDone};
    cuda::GeluEpilogue bwd{cuda::GeluEpilogue::Backward, DYf.p, h16 ? Y16.p : Y.p, h16,
                           &bwdDone};
    cuda::gemmForget(blas);
    ok = ok &&
         cuda::linearFwd(blas, X.p, W.p, Bd.p, Yf.p, rows, in, out, false, &err,
                         h16 ? 4u : 0u, nullptr, &fwd) &&
         cuda::linearFwd(blas, DY.p, W.p, nullptr, DGf.p, rows, in, out, false, &err, 0u,
                         nullptr, &bwd);
    if (!ok) {
      std::printf("GELU epilogue%s FAIL: %s\n", tag.c_str(), err.c_str());
      ++failures;
      continue;
    }
    auto host = [&](Dev<float> &d) {
      if (!h16)
        return d.host();
      Dev<uint16_t> v(static_cast<size_t>(rows * out));
      must(cudaMemcpy(v.p, d.p, rows * out * 2, cudaMemcpyDeviceToDevice), "copy");
      return widen(v);
    };
    if (fwdDone) {
      compare("linear_fwd + GELU epilogue, output" + tag, G.host(), host(Gf), tol);
      compare("linear_fwd + GELU epilogue, kept input" + tag, Y.host(), host(Yf), tol);
    }
    // Both epilogues from the weight's 16-bit copy (LLMRT_CUDA_WEIGHT16),
    // where the fp32 weight's were fused: the same numbers. The backward
    // (DGELU) is the input gradient dy W2ᵀ of the MLP's second GEMM.
    Dev<uint16_t> W16(static_cast<size_t>(in * out));
    (h == cuda::Half::Fp16 ? cuda::toFp16 : cuda::toBf16)(W.p, W16.p, in * out, nullptr);
    auto fusedToo = [&](bool ok, bool done, const char *what) {
      ++checks;
      if (ok && done)
        return true;
      ++failures;
      std::printf("%s, W 16-bit%s FAIL: %s\n", what, tag.c_str(), ok ? "declined" : err.c_str());
      return false;
    };
    if (fwdDone) {
      Dev<float> Yw(rows * out), Gw(rows * out);
      bool doneW = false;
      cuda::GeluEpilogue fwdW{cuda::GeluEpilogue::Forward, Gw.p, Yw.p, h16, &doneW};
      cuda::gemmForget(blas);
      const bool okW = cuda::linearFwd(blas, X.p, W16.p, Bd.p, Yw.p, rows, in, out, false, &err,
                                       (h16 ? 4u : 0u) | 2u, nullptr, &fwdW);
      if (fusedToo(okW, doneW, "GELU epilogue")) {
        compare("linear_fwd + GELU epilogue, W 16-bit, output" + tag, host(Gf), host(Gw), 1e-6);
        compare("linear_fwd + GELU epilogue, W 16-bit, kept input" + tag, host(Yf), host(Yw),
                1e-6);
      }
    }
    if (bwdDone) {
      Dev<float> DYw(rows * out);
      bool bwdW = false;
      cuda::GeluEpilogue bwd16{cuda::GeluEpilogue::Backward, DYw.p, h16 ? Y16.p : Y.p, h16,
                               &bwdW};
      cuda::gemmForget(blas);
      const bool okB = cuda::linearFwd(blas, DY.p, W16.p, nullptr, DYw.p, rows, in, out, false,
                                       &err, 2u, nullptr, &bwd16);
      if (fusedToo(okB, bwdW, "GELU backward epilogue"))
        compare("linear_fwd + GELU backward epilogue, W 16-bit" + tag, host(DYf), host(DYw),
                1e-6);
    }
    if (!fwdDone) { // cuBLASLt declined: the plain product, the GELU apart
      compare("linear_fwd (GELU epilogue declined)" + tag, Y.host(), host(Yf), tol);
    }
    if (bwdDone)
      compare("linear_fwd + GELU backward epilogue" + tag, DYP.host(), host(DYf), tol);
    else
      compare("linear_fwd (GELU backward epilogue declined)" + tag, DG.host(), DGf.host(), 1e-6);
    std::printf("GELU epilogues%s: forward %s, backward %s\n", tag.c_str(),
                fwdDone ? "fused" : "declined", bwdDone ? "fused" : "declined");
  }
  cuda::destroyBlas(blas);
}

void checkLayoutAndElementwise(Rng &rng) {
  int64_t rows = 129, C = 97;
  auto dy = randomVec(rng, rows * C);
  std::vector<float> db(C);
  cpu::sumRows(dy.data(), db.data(), rows, C);
  Dev<float> DY(dy), DB(C);
  cuda::sumRows(DY.p, DB.p, rows, C, nullptr);
  compare("sum_rows [129x97]", db, DB.host(), kTol);

  {
    auto src = randomVec(rng, rows * 300);
    std::vector<float> dst = randomVec(rng, rows * 120);
    Dev<float> Sd(src), Dd(dst);
    cpu::copyColumns(src.data(), 300, 100, dst.data(), 120, 10, 100, rows);
    cuda::copyColumns(Sd.p, 300, 100, Dd.p, 120, 10, 100, rows, nullptr);
    compare("copy_columns", dst, Dd.host(), 0);
    // Offsets and widths of whole 16-byte vectors (the float4 kernel).
    cpu::copyColumns(src.data(), 300, 96, dst.data(), 120, 8, 100, rows);
    cuda::copyColumns(Sd.p, 300, 96, Dd.p, 120, 8, 100, rows, nullptr);
    compare("copy_columns (float4)", dst, Dd.host(), 0);
  }
  for (bool inverse : {false, true}) {
    int64_t B = 2, S = 37, H = 3, D = 64;
    auto x = randomVec(rng, B * S * H * D);
    std::vector<float> y(x.size());
    cpu::rope(x.data(), y.data(), B, S, H, D, 10000.0, inverse);
    Dev<float> X(x), Y(x.size());
    cuda::rope(X.p, Y.p, B, S, H, D, 10000.0, inverse, nullptr);
    compare(std::string("rope") + (inverse ? " inverse" : ""), y, Y.host(), 1e-5);
  }
  int64_t n = 100003;
  auto x = randomVec(rng, n, 6.0), g = randomVec(rng, n);
  std::vector<float> y(n), dx(n);
  Dev<float> X(x), G(g), Y(n), DX(n);
  cpu::geluFwd(x.data(), y.data(), n);
  cpu::geluBwd(x.data(), g.data(), dx.data(), n);
  cuda::geluFwd(X.p, Y.p, n, nullptr);
  cuda::geluBwd(X.p, G.p, DX.p, n, nullptr);
  compare("gelu_fwd", y, Y.host(), 1e-5);
  compare("gelu_bwd", dx, DX.host(), 1e-5);
  cpu::siluFwd(x.data(), y.data(), n);
  cpu::siluBwd(x.data(), g.data(), dx.data(), n);
  cuda::siluFwd(X.p, Y.p, n, nullptr);
  cuda::siluBwd(X.p, G.p, DX.p, n, nullptr);
  compare("silu_fwd", y, Y.host(), 1e-5);
  compare("silu_bwd", dx, DX.host(), 1e-5);
  for (int64_t nb : {n, int64_t(1), int64_t(7)}) {
    std::vector<float> b(x.begin(), x.begin() + nb);
    Dev<float> Bd(b);
    cpu::add(g.data(), b.data(), y.data(), n - n % nb, nb);
    cuda::add(G.p, Bd.p, Y.p, n - n % nb, nb, nullptr);
    auto got = Y.host();
    got.resize(n - n % nb);
    compare("add (broadcast " + std::to_string(nb) + ")",
            std::vector<float>(y.begin(), y.begin() + (n - n % nb)), got, 1e-6);
    cpu::mul(g.data(), b.data(), y.data(), n - n % nb, nb);
    cuda::mul(G.p, Bd.p, Y.p, n - n % nb, nb, nullptr);
    got = Y.host();
    got.resize(n - n % nb);
    compare("mul (broadcast " + std::to_string(nb) + ")",
            std::vector<float>(y.begin(), y.begin() + (n - n % nb)), got, 1e-6);
  }
}

void checkEmbeddings(Rng &rng) {
  int64_t V = 1000, C = 96, ntok = 777, P = 128, S = 100;
  std::vector<int32_t> ids(ntok);
  for (int32_t &t : ids)
    t = static_cast<int32_t>((rng.uniform() + 1) * 0.5 * V) % 50; // repeats
  auto table = randomVec(rng, V * C), dout = randomVec(rng, ntok * C);
  std::vector<float> out(ntok * C), dtable(V * C);
  cpu::embeddingFwd(ids.data(), table.data(), out.data(), ntok, C);
  cpu::embeddingBwd(ids.data(), dout.data(), dtable.data(), ntok, V, C);
  Dev<int32_t> IDS(ids);
  Dev<float> T(table), DO(dout), O(ntok * C), DT(V * C);
  cuda::embeddingFwd(IDS.p, T.p, O.p, ntok, C, nullptr);
  cuda::embeddingBwd(IDS.p, DO.p, DT.p, ntok, V, C, nullptr);
  compare("embedding_fwd", out, O.host(), 0);
  // With the position embedding's add (an addend of 7 rows, broadcast),
  // by vectors and (an output 4 bytes past a 16-byte boundary) not; and
  // in place over a whole-size addend.
  {
    const int64_t period = 7 * C;
    auto pos = randomVec(rng, period), whole = randomVec(rng, ntok * C);
    std::vector<float> want(ntok * C), wantWhole(ntok * C);
    for (int64_t e = 0; e < ntok * C; ++e) {
      want[e] = out[e] + pos[e % period];
      wantWhole[e] = out[e] + whole[e];
    }
    Dev<float> POS(pos), O2(ntok * C), O3(ntok * C + 1), W(whole);
    cuda::embeddingFwd(IDS.p, T.p, O2.p, ntok, C, nullptr, POS.p, period);
    compare("embedding_fwd + positions", want, O2.host(), 0);
    cuda::embeddingFwd(IDS.p, T.p, O3.p + 1, ntok, C, nullptr, POS.p, period);
    std::vector<float> o3 = O3.host();
    compare("embedding_fwd + positions, unaligned", want,
            std::vector<float>(o3.begin() + 1, o3.end()), 0);
    cuda::embeddingFwd(IDS.p, T.p, W.p, ntok, C, nullptr, W.p, ntok * C);
    compare("embedding_fwd + addend, in place", wantWhole, W.host(), 0);
  }
  compare("embedding_bwd", dtable, DT.host(), 1e-5);
  // Starting from another gradient (a tied output layer's: the residual
  // add fused in), copied in or in place; and the vocabulary-parallel
  // scatter of rows [20, 420) (ids below 50: tokens outside the rows too)
  // the same way.
  {
    auto init = randomVec(rng, V * C);
    const int64_t start = 20, VL = 400;
    std::vector<float> want(V * C), wantVocab(VL * C, 0.0f);
    for (size_t e = 0; e < want.size(); ++e)
      want[e] = init[e] + dtable[e];
    for (int64_t t = 0; t < ntok; ++t)
      for (int64_t c = 0; c < C; ++c)
        if (ids[t] >= start && ids[t] < start + VL)
          wantVocab[(ids[t] - start) * C + c] += dout[t * C + c];
    std::vector<float> wantVocabInit(VL * C);
    for (size_t e = 0; e < wantVocab.size(); ++e)
      wantVocabInit[e] = init[e] + wantVocab[e];
    Dev<float> I(init), DT2(V * C), IN(init);
    cuda::embeddingBwd(IDS.p, DO.p, DT2.p, ntok, V, C, nullptr, I.p);
    compare("embedding_bwd from another gradient", want, DT2.host(), 1e-5);
    compare("embedding_bwd from another gradient: that gradient unchanged", init, I.host(), 0);
    cuda::embeddingBwd(IDS.p, DO.p, IN.p, ntok, V, C, nullptr, IN.p);
    compare("embedding_bwd from another gradient, in place", want, IN.host(), 1e-5);
    Dev<float> VT(VL * C), VI(std::vector<float>(init.begin(), init.begin() + VL * C));
    cuda::vocabEmbeddingBwd(IDS.p, DO.p, VT.p, ntok, VL, C, start, nullptr);
    compare("vocab_embedding_bwd", wantVocab, VT.host(), 1e-5);
    cuda::vocabEmbeddingBwd(IDS.p, DO.p, VI.p, ntok, VL, C, start, nullptr, VI.p);
    compare("vocab_embedding_bwd from another gradient, in place", wantVocabInit, VI.host(),
            1e-5);
  }
  auto pt = randomVec(rng, P * C), pd = randomVec(rng, S * C);
  std::vector<float> po(S * C), pdt(P * C);
  cpu::positionEmbeddingFwd(pt.data(), po.data(), S, C);
  cpu::positionEmbeddingBwd(pd.data(), pdt.data(), S, P, C);
  Dev<float> PT(pt), PD(pd), PO(S * C), PDT(P * C);
  cuda::positionEmbeddingFwd(PT.p, PO.p, S, C, nullptr);
  cuda::positionEmbeddingBwd(PD.p, PDT.p, S, P, C, nullptr);
  compare("position_embedding_fwd", po, PO.host(), 0);
  compare("position_embedding_bwd", pdt, PDT.host(), 0);
}

/// kind: 0 the fp32 kernels, 1 WMMA tensor cores, 2 FlashAttention-2
/// (mma.sync), 3 the same with the backward's cp.async staging, 4 with the
/// forward's log-sum-exp kept for the backward, 5 16-bit operands, 6 the
/// forward in 8 warps, 7 16-bit in 8 warps, 8 the backward in 8 warps, 9
/// to 11 16-bit with the forward's cp.async tiles (LLMRT_CUDA_ATTN_ASYNC 1
/// to 3: 3 or 4 blocks an SM, or 32 query rows a warp), 12 and 13 16-bit
/// with the backward's (LLMRT_CUDA_ATTN_BWD_ASYNC=1; 4 and 8 warps).
void checkAttention(Rng &rng, int kind) {
  const bool tensorCores = kind > 0;
  struct Case {
    int64_t B, S, Hq, Hkv, D;
    bool causal;
  };
  for (Case c : {Case{2, 100, 4, 2, 16, true}, Case{1, 77, 2, 2, 32, false},
                 Case{2, 130, 4, 1, 64, true}, Case{1, 65, 2, 2, 128, true},
                 Case{1, 1024, 2, 2, 64, true}, Case{1, 200, 4, 2, 64, false},
                 Case{1, 200, 2, 1, 64, true}, Case{2, 33, 2, 2, 64, true},
                 Case{1, 64, 2, 1, 64, true}, Case{1, 128, 2, 2, 64, false},
                 Case{1, 300, 2, 1, 128, false}}) {
    int64_t qn = c.B * c.S * c.Hq * c.D, kn = c.B * c.S * c.Hkv * c.D;
    auto q = randomVec(rng, qn, 2.0), k = randomVec(rng, kn, 2.0),
         v = randomVec(rng, kn), dout = randomVec(rng, qn);
    std::vector<float> out(qn), dq(qn), dk(kn), dv(kn), lse(c.B * c.Hq * c.S);
    std::vector<uint8_t> ws(cpu::attentionWorkspaceBytes(c.B, c.S, c.Hq, c.D, 4) + 64);
    double scale = 1.0 / std::sqrt(double(c.D));
    cpu::attentionFwd(q.data(), k.data(), v.data(), out.data(), c.B, c.S, c.Hq,
                      c.Hkv, c.D, scale, c.causal, ws.data(), lse.data());
    cpu::attentionBwd(q.data(), k.data(), v.data(), dout.data(), dq.data(),
                      dk.data(), dv.data(), c.B, c.S, c.Hq, c.Hkv, c.D, scale,
                      c.causal, ws.data());
    // The inputs followed by 128 rows of NaN (the largest block's query
    // rows): a kernel that reads past the sequence (a missing zero-fill)
    // gets NaN into its results.
    auto padded = [&](const std::vector<float> &x, int64_t H) {
      std::vector<float> y(x);
      y.resize(x.size() + 128 * H * c.D, std::numeric_limits<float>::quiet_NaN());
      return y;
    };
    Dev<float> Q(padded(q, c.Hq)), K(padded(k, c.Hkv)), Vd(padded(v, c.Hkv)),
        DO(padded(dout, c.Hq)), O(qn), DQ(qn), DK(kn), DV(kn);
    Dev<float> WS(cuda::attentionWorkspaceBytes(c.B, c.S, c.Hq) / 4);
    Dev<float> LSE(lse.size());
    if ((kind == 1 && !cuda::attentionTensorCoresSupport(c.D)) ||
        (kind >= 2 && !cuda::attentionMMASupport(c.D)))
      continue;
    if (kind == 5 || kind == 7 || kind >= 9) {
      // 16-bit q, k, v, dout and out (LLMRT_CUDA_ATTN16), with the kept
      // log-sum-exp: the output widened from bf16 for the comparison.
      auto to16 = [&](const Dev<float> &x) {
        Dev<uint16_t> y(x.n);
        cuda::toBf16(x.p, y.p, static_cast<int64_t>(x.n), nullptr);
        return y.host();
      };
      Dev<uint16_t> Q16(to16(Q)), K16(to16(K)), V16(to16(Vd)), DO16(to16(DO)), O16(qn);
      const unsigned all = 31;
      cuda::attentionFwdMMA(Q16.p, K16.p, V16.p, O16.p, c.B, c.S, c.Hq, c.Hkv, c.D, scale,
                            c.causal, nullptr, LSE.p, all, kind == 7, nullptr,
                            kind >= 9 && kind <= 11 ? kind - 8 : 0);
      cuda::attentionBwdMMA(Q16.p, K16.p, V16.p, DO16.p, DQ.p, DK.p, DV.p, c.B, c.S, c.Hq,
                            c.Hkv, c.D, scale, c.causal, WS.p, nullptr, false, O16.p,
                            LSE.p, all, kind == 7 || kind == 13, nullptr, kind >= 12 ? 1 : 0);
      std::vector<uint16_t> o16 = O16.host();
      std::vector<float> o(o16.size());
      for (size_t e = 0; e < o.size(); ++e)
        o[e] = from16(o16[e], cuda::Half::Bf16);
      must(cudaMemcpy(O.p, o.data(), o.size() * 4, cudaMemcpyHostToDevice), "upload");
    } else if (kind >= 2) {
      // kind 4: the forward keeps the log-sum-exp, the backward takes it;
      // kind 6 too, its forward in blocks of 8 warps; kind 8, its backward.
      cuda::attentionFwdMMA(Q.p, K.p, Vd.p, O.p, c.B, c.S, c.Hq, c.Hkv, c.D, scale,
                            c.causal, nullptr, kind >= 4 ? LSE.p : nullptr, 0u, kind == 6);
      cuda::attentionBwdMMA(Q.p, K.p, Vd.p, DO.p, DQ.p, DK.p, DV.p, c.B, c.S, c.Hq,
                            c.Hkv, c.D, scale, c.causal, WS.p, nullptr, kind == 3,
                            kind >= 4 ? O.p : nullptr, kind >= 4 ? LSE.p : nullptr, 0u,
                            kind == 8);
    } else {
      (kind == 1 ? cuda::attentionFwdTC : cuda::attentionFwd)(
          Q.p, K.p, Vd.p, O.p, c.B, c.S, c.Hq, c.Hkv, c.D, scale, c.causal, nullptr);
      (kind == 1 ? cuda::attentionBwdTC : cuda::attentionBwd)(
          Q.p, K.p, Vd.p, DO.p, DQ.p, DK.p, DV.p, c.B, c.S, c.Hq, c.Hkv, c.D,
          scale, c.causal, WS.p, nullptr);
    }
    char sz[128];
    std::snprintf(sz, sizeof(sz), "%s [B%lld S%lld Hq%lld Hkv%lld D%lld%s]",
                  kind == 13 ? " fa2 16-bit backward cp.async 8 warps"
                  : kind == 12 ? " fa2 16-bit backward cp.async"
                  : kind == 11 ? " fa2 16-bit cp.async 32 rows a warp"
                  : kind == 10 ? " fa2 16-bit cp.async 4 blocks"
                  : kind == 9 ? " fa2 16-bit cp.async"
                  : kind == 8 ? " fa2 backward 8 warps"
                  : kind == 7 ? " fa2 16-bit 8 warps"
                  : kind == 6 ? " fa2 forward 8 warps"
                  : kind == 5 ? " fa2 16-bit"
                  : kind == 4 ? " fa2 kept-lse"
                  : kind == 3 ? " fa2 staged"
                  : kind == 2 ? " fa2"
                  : kind == 1 ? " bf16"
                              : "",
                  (long long)c.B, (long long)c.S, (long long)c.Hq,
                  (long long)c.Hkv, (long long)c.D, c.causal ? " causal" : "");
    // bf16 tensor cores: inputs and probabilities rounded to 8 bits of
    // mantissa (as the bf16 GEMMs' tolerance).
    double tol = tensorCores ? 2e-2 : kTol;
    compare(std::string("attention_fwd") + sz, out, O.host(), tol);
    compare(std::string("attention_bwd dq") + sz, dq, DQ.host(), tol);
    compare(std::string("attention_bwd dk") + sz, dk, DK.host(), tol);
    compare(std::string("attention_bwd dv") + sz, dv, DV.host(), tol);
    if (kind >= 4) // the natural log-sum-exp (values ~5: bf16 scores give ~1e-3)
      compare(std::string("attention_fwd lse") + sz, lse, LSE.host(), 2e-3);
  }
}

/// FlashAttention-2 reading q, k, v and writing dq, dk, dv as column
/// slices of wider rows (AttentionLayout: the compiler's column views), as
/// the executor runs it: each tensor in its own buffer with its own row
/// stride and first column (a swapped stride shows), the other columns
/// holding a sentinel that must survive; fp32 or bf16 inputs (bf16: dk, dv
/// written bf16, dq added in an fp32 scratch and rounded into its columns
/// after); 4 or 8 warps, cp.async tiles, and the backward's row
/// statistics recomputed instead of taken from the forward. Against the
/// CPU's dense kernels.
void checkAttentionColumns(Rng &rng) {
  struct Case {
    int64_t B, S, Hq, Hkv, D;
    bool causal;
  };
  for (Case c : {Case{2, 100, 4, 2, 64, true}, Case{1, 200, 2, 1, 64, false},
                 Case{1, 130, 4, 4, 64, true}}) {
    const int64_t rows = c.B * c.S, wq = c.Hq * c.D, wk = c.Hkv * c.D;
    auto q = randomVec(rng, rows * wq, 2.0), k = randomVec(rng, rows * wk, 2.0),
         v = randomVec(rng, rows * wk), dout = randomVec(rng, rows * wq);
    std::vector<float> out(rows * wq), dq(q.size()), dk(k.size()), dv(k.size()),
        lse(c.B * c.Hq * c.S);
    std::vector<uint8_t> ws(cpu::attentionWorkspaceBytes(c.B, c.S, c.Hq, c.D, 4) + 64);
    const double scale = 1.0 / std::sqrt(double(c.D));
    cpu::attentionFwd(q.data(), k.data(), v.data(), out.data(), c.B, c.S, c.Hq, c.Hkv,
                      c.D, scale, c.causal, ws.data(), lse.data());
    cpu::attentionBwd(q.data(), k.data(), v.data(), dout.data(), dq.data(), dk.data(),
                      dv.data(), c.B, c.S, c.Hq, c.Hkv, c.D, scale, c.causal, ws.data());
    // q, k, v, dq, dk, dv: width, row stride, first column (multiples of 8).
    const int64_t width[6] = {wq, wk, wk, wq, wk, wk};
    const int64_t ld[6] = {wq + 8, wk + 24, wk + 40, wq + 16, wk + 32, wk + 8};
    const int64_t first[6] = {8, 16, 40, 16, 0, 8};
    const std::vector<float> *dense[6] = {&q, &k, &v, &dq, &dk, &dv};
    // Tensor t placed in its rows, the sentinel 0.25 (exact in bf16) around.
    auto placed = [&](int t, bool data) {
      std::vector<float> x(rows * ld[t], 0.25f);
      for (int64_t r = 0; data && r < rows; ++r)
        std::copy_n(dense[t]->data() + r * width[t], width[t], x.data() + r * ld[t] + first[t]);
      return x;
    };
    struct Variant {
      bool h16, wide;
      int async; // LLMRT_CUDA_ATTN_ASYNC
      bool recompute; // the backward's row statistics
      int bwdAsync; // LLMRT_CUDA_ATTN_BWD_ASYNC (with 16-bit dout)
    };
    for (Variant var :
         {Variant{false, false, 0, false, 0}, Variant{true, false, 0, false, 0},
          Variant{false, true, 0, false, 0}, Variant{true, true, 0, false, 0},
          Variant{true, false, 1, false, 0}, Variant{true, false, 3, false, 0},
          Variant{false, false, 0, true, 0}, Variant{true, false, 0, true, 0},
          Variant{true, false, 0, false, 1}, Variant{true, true, 0, false, 1}}) {
      const bool h16 = var.h16, wide = var.wide, recompute = var.recompute;
      const int async = var.async;
      const size_t e = h16 ? 2 : 4;
      std::vector<std::unique_ptr<Dev<float>>> f32;
      std::vector<std::unique_ptr<Dev<uint16_t>>> b16;
      char *ptr[6];
      for (int t = 0; t < 6; ++t) {
        f32.push_back(std::make_unique<Dev<float>>(placed(t, t < 3)));
        b16.push_back(std::make_unique<Dev<uint16_t>>(f32.back()->n));
        cuda::toBf16(f32[t]->p, b16[t]->p, static_cast<int64_t>(f32[t]->n), nullptr);
        ptr[t] = (h16 ? reinterpret_cast<char *>(b16[t]->p) : reinterpret_cast<char *>(f32[t]->p)) +
                 first[t] * e;
      }
      Dev<float> DO(dout), O(rows * wq), LSE(lse.size()), DQ(rows * wq),
          WS(cuda::attentionWorkspaceBytes(c.B, c.S, c.Hq) / 4);
      cuda::attentionFwdMMA(ptr[0], ptr[1], ptr[2], O.p, c.B, c.S, c.Hq, c.Hkv, c.D, scale,
                            c.causal, nullptr, LSE.p, h16 ? 7u : 0u, wide, ld, async);
      int64_t ldb[6];
      std::copy(ld, ld + 6, ldb);
      if (h16)
        ldb[3] = wq; // dq in the fp32 scratch
      // The backward's cp.async copies take a bf16 dout (bit 3).
      Dev<uint16_t> DO16(dout.size());
      cuda::toBf16(DO.p, DO16.p, static_cast<int64_t>(dout.size()), nullptr);
      cuda::attentionBwdMMA(ptr[0], ptr[1], ptr[2],
                            var.bwdAsync ? static_cast<const void *>(DO16.p) : DO.p,
                            h16 ? DQ.p : reinterpret_cast<float *>(ptr[3]), ptr[4], ptr[5],
                            c.B, c.S, c.Hq, c.Hkv, c.D, scale, c.causal, WS.p, nullptr, false,
                            recompute ? nullptr : O.p, recompute ? nullptr : LSE.p,
                            (h16 ? 7u | 64u | 128u : 0u) | (var.bwdAsync ? 8u : 0u), wide,
                            ldb, var.bwdAsync);
      if (h16)
        cuda::copyColumnsT(cuda::In{DQ.p, false}, wq, 0, cuda::Out{b16[3]->p, true}, ld[3],
                           first[3], wq, rows, cuda::Half::Bf16, nullptr);
      char sz[128];
      std::snprintf(sz, sizeof(sz), " columns%s%s%s%s [B%lld S%lld Hq%lld Hkv%lld D%lld%s]",
                    h16 ? " 16-bit" : "", var.bwdAsync ? " backward cp.async" : "",
                    async == 3 ? " cp.async 32 rows a warp" : async ? " cp.async"
                    : wide     ? " 8 warps"
                               : "",
                    recompute ? " recomputed statistics" : "", (long long)c.B,
                    (long long)c.S, (long long)c.Hq, (long long)c.Hkv, (long long)c.D,
                    c.causal ? " causal" : "");
      compare(std::string("attention_fwd") + sz, out, O.host(), 2e-2);
      const char *names[6] = {"q", "k", "v", "dq", "dk", "dv"};
      for (int t = 0; t < 6; ++t) {
        std::vector<float> got(rows * ld[t]);
        if (h16) {
          std::vector<uint16_t> g16 = b16[t]->host();
          for (size_t i = 0; i < got.size(); ++i)
            got[i] = from16(g16[i], cuda::Half::Bf16);
        } else {
          got = f32[t]->host();
        }
        // Its columns, and the rest (with the inputs: all of them unchanged).
        std::vector<float> cols(rows * width[t]), rest, restRef;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t j = 0; j < ld[t]; ++j) {
            const float x = got[r * ld[t] + j];
            if (j >= first[t] && j < first[t] + width[t])
              cols[r * width[t] + j - first[t]] = x;
            else
              rest.push_back(x), restRef.push_back(0.25f);
          }
        if (t >= 3)
          compare(std::string("attention_bwd ") + names[t] + sz, *dense[t], cols, 2e-2);
        else if (!h16) // bf16 inputs were rounded on the way in
          compare(std::string("attention input ") + names[t] + " kept" + sz, *dense[t],
                  cols, 0);
        compare(std::string("attention ") + names[t] + " other columns" + sz, restRef, rest,
                0);
      }
    }
  }
}

/// The vocabulary-parallel embedding and loss of tensor parallelism, with
/// the group simulated on one GPU: the vocabulary (1000) cut into 3 slices
/// of 334, the last one padded by 2 columns (Megatron's padding, filled
/// with large logits that must not count), each slice's kernels run alone,
/// their statistics reduced on the host as NCCL would (max, then sums).
/// The slices together must give the whole vocabulary's CPU kernels: the
/// lookup summed over slices, the loss, the logits' gradient slice by slice
/// and zero on the padding.
void checkVocabParallel(Rng &rng) {
  const int64_t rows = 48, C = 40, parts = 3, V = 1000, Vl = 334;
  auto logits = randomVec(rng, rows * V, 8.0), table = randomVec(rng, V * C),
       dout = randomVec(rng, rows * C);
  std::vector<int32_t> tg(rows);
  for (int32_t &t : tg)
    t = static_cast<int32_t>((rng.uniform() + 1) * 0.5 * V) % V;
  tg[0] = V - 1; // a target in the last, padded slice
  std::vector<float> loss(1), dl(rows * V), emb(rows * C), dtable(V * C);
  cpu::crossEntropyFwd(logits.data(), tg.data(), loss.data(), rows, V);
  cpu::crossEntropyBwd(logits.data(), tg.data(), 1.0f, dl.data(), rows, V);
  cpu::embeddingFwd(tg.data(), table.data(), emb.data(), rows, C);
  cpu::embeddingBwd(tg.data(), dout.data(), dtable.data(), rows, V, C);

  Dev<int32_t> TG(tg);
  Dev<float> DO(dout);
  auto valid = [&](int64_t k) { return std::min(Vl, V - k * Vl); };
  std::vector<double> mx(rows, -INFINITY), sums(2 * rows, 0.0);
  std::vector<float> embSum(rows * C, 0.0f), dtableAll(V * C), dlAll(rows * V);
  std::vector<std::vector<float>> sliceLogits(parts);
  for (int64_t k = 0; k < parts; ++k) { // each slice's max
    sliceLogits[k].assign(rows * Vl, 50.0f); // the padding: must not count
    for (int64_t r = 0; r < rows; ++r)
      std::copy(logits.begin() + r * V + k * Vl,
                logits.begin() + r * V + k * Vl + valid(k),
                sliceLogits[k].begin() + r * Vl);
    Dev<float> L(sliceLogits[k]);
    Dev<double> ST(3 * rows);
    cuda::vocabRowMax(L.p, rows, Vl, valid(k), ST.p, nullptr);
    std::vector<double> st = ST.host();
    for (int64_t r = 0; r < rows; ++r)
      mx[r] = std::max(mx[r], st[r]);
  }
  for (int64_t k = 0; k < parts; ++k) { // the sums at the group's max
    std::vector<double> st(3 * rows, 0.0);
    std::copy(mx.begin(), mx.end(), st.begin());
    Dev<float> L(sliceLogits[k]);
    Dev<double> ST(st);
    cuda::vocabRowSums(L.p, TG.p, rows, Vl, valid(k), k * Vl, ST.p, nullptr);
    st = ST.host();
    for (int64_t i = 0; i < 2 * rows; ++i)
      sums[i] += st[rows + i];
  }
  std::vector<double> reduced(mx);
  reduced.insert(reduced.end(), sums.begin(), sums.end());
  Dev<double> RED(reduced);
  Dev<float> LOSS(1);
  cuda::vocabLoss(RED.p, rows, LOSS.p, nullptr);
  compare("vocab_cross_entropy_fwd (3 slices, padded)", loss, LOSS.host(), 1e-5);
  std::vector<float> padGrads;
  for (int64_t k = 0; k < parts; ++k) {
    std::vector<float> tslice(Vl * C, 0.0f);
    std::copy(table.begin() + k * Vl * C, table.begin() + (k * Vl + valid(k)) * C,
              tslice.begin());
    Dev<float> L(sliceLogits[k]), DL(rows * Vl), T(tslice);
    Dev<float> E(rows * C), DT(Vl * C);
    cuda::vocabCrossEntropyBwd(L.p, TG.p, rows, Vl, valid(k), k * Vl, RED.p,
                               DL.p, 1.0f, nullptr);
    cuda::vocabEmbeddingFwd(TG.p, T.p, E.p, rows, C, k * Vl, Vl, nullptr);
    cuda::vocabEmbeddingBwd(TG.p, DO.p, DT.p, rows, Vl, C, k * Vl, nullptr);
    std::vector<float> dls = DL.host(), e = E.host(), dt = DT.host();
    for (int64_t r = 0; r < rows; ++r) {
      std::copy(dls.begin() + r * Vl, dls.begin() + r * Vl + valid(k),
                dlAll.begin() + r * V + k * Vl);
      padGrads.insert(padGrads.end(), dls.begin() + r * Vl + valid(k),
                      dls.begin() + (r + 1) * Vl);
    }
    for (size_t i = 0; i < e.size(); ++i)
      embSum[i] += e[i];
    std::copy(dt.begin(), dt.begin() + valid(k) * C, dtableAll.begin() + k * Vl * C);
    padGrads.insert(padGrads.end(), dt.begin() + valid(k) * C, dt.end());
  }
  compare("vocab_cross_entropy_bwd (3 slices, padded)", dl, dlAll, 1e-5);
  compare("vocab padding gradients (zero)", std::vector<float>(padGrads.size(), 0.0f),
          padGrads, 0);
  compare("vocab_embedding_fwd (3 slices, summed)", emb, embSum, 0);
  compare("vocab_embedding_bwd (3 slices)", dtable, dtableAll, 1e-5);

  // The global norm's accumulators (one per split mask) add up.
  Dev<double> ACC(std::vector<double>{1.5, 2.0, 0.25, 0.25});
  Dev<float> NORM(1);
  cuda::finishNorm(ACC.p, 4, NORM.p, 0.5, nullptr);
  compare("global_norm (4 accumulators)", {1.0f}, NORM.host(), 1e-7);
}

/// The loss over a vocabulary padded on one rank (llm-compile
/// --vocab-align): [rows, V] logits of which the first `valid` columns are
/// the model's; the padding is filled with large logits that must not
/// count and must get a zero gradient. Against the CPU kernels on the
/// [rows, valid] logits. `offset` floats shift the logits and the gradient
/// off 16-byte alignment (the kernels' scalar path); V % 4 == 0 with
/// offset 0 takes the float4 path.
void checkPaddedLoss(Rng &rng, int64_t rows, int64_t V, int64_t valid,
                     int64_t offset, float dloss) {
  auto logits = randomVec(rng, rows * valid, 8.0);
  std::vector<int32_t> tg(rows);
  for (int32_t &t : tg)
    t = static_cast<int32_t>((rng.uniform() + 1) * 0.5 * valid) % valid;
  tg[0] = static_cast<int32_t>(valid - 1); // the last column that counts
  std::vector<float> loss(1), dl(rows * valid);
  cpu::crossEntropyFwd(logits.data(), tg.data(), loss.data(), rows, valid);
  cpu::crossEntropyBwd(logits.data(), tg.data(), dloss, dl.data(), rows, valid);
  std::vector<float> padded(offset + rows * V, 50.0f);
  for (int64_t r = 0; r < rows; ++r)
    std::copy(logits.begin() + r * valid, logits.begin() + (r + 1) * valid,
              padded.begin() + offset + r * V);
  Dev<float> L(padded), LOSS(1), DL(offset + rows * V), RS(rows);
  Dev<int32_t> TG(tg);
  cuda::crossEntropyFwd(L.p + offset, TG.p, LOSS.p, rows, V, valid, RS.p, nullptr);
  cuda::crossEntropyBwd(L.p + offset, TG.p, DL.p + offset, rows, V, valid,
                        dloss, nullptr);
  std::vector<float> got = DL.host(), dlValid, dlPad;
  for (int64_t r = 0; r < rows; ++r) {
    const float *row = got.data() + offset + r * V;
    dlValid.insert(dlValid.end(), row, row + valid);
    dlPad.insert(dlPad.end(), row + valid, row + V);
  }
  std::string sz = " [" + std::to_string(rows) + "x" + std::to_string(V) +
                   ", valid " + std::to_string(valid) +
                   (offset ? ", unaligned" : "") + "]";
  compare("cross_entropy_fwd" + sz, loss, LOSS.host(), 1e-5);
  compare("cross_entropy_bwd" + sz, dl, dlValid, 1e-5);
  // The backward from the forward's kept row statistics: the same
  // arithmetic, but the two kernels' statistics may differ in the last
  // bit (the compiler contracts the online sum differently in each; seen
  // on an H100: 1e-9), hence 1e-6, far below any wrong statistic.
  {
    Dev<float> STATS(2 * rows), LOSS2(1), DL2(offset + rows * V);
    cuda::crossEntropyFwdT({L.p + offset}, TG.p, LOSS2.p, rows, V, valid, RS.p,
                           cuda::Half::Bf16, nullptr, STATS.p);
    cuda::crossEntropyBwdT({L.p + offset}, TG.p, {DL2.p + offset}, rows, V, valid, dloss,
                           cuda::Half::Bf16, nullptr, STATS.p);
    compare("cross_entropy_fwd keeping row statistics" + sz, LOSS.host(), LOSS2.host(), 0);
    std::vector<float> again = DL2.host();
    compare("cross_entropy_bwd from kept statistics" + sz,
            std::vector<float>(got.begin() + offset, got.end()),
            std::vector<float>(again.begin() + offset, again.end()), 1e-6);
    // Both in one pass (LLMRT_CUDA_LOSS_FUSED): the backward's own bits,
    // the forward's loss within the last bit of the statistics.
    Dev<float> LOSS3(1), DL3(offset + rows * V);
    cuda::crossEntropyFusedT({L.p + offset}, TG.p, LOSS3.p, {DL3.p + offset}, rows, V, valid,
                             dloss, RS.p, cuda::Half::Bf16, nullptr);
    std::vector<float> fused = DL3.host();
    compare("cross_entropy fused, loss" + sz, LOSS.host(), LOSS3.host(), 1e-6);
    compare("cross_entropy fused, gradient" + sz,
            std::vector<float>(got.begin() + offset, got.end()),
            std::vector<float>(fused.begin() + offset, fused.end()), 0);
    // The fused loss's row kernels for 16-bit logits (LLMRT_CUDA_LOSS_ROW
    // 1, and 2 with the row in shared memory): against the generic kernel
    // on the same 16-bit logits, the loss within 1e-6 (the base-2
    // exponentials' few ulp) and the 16-bit gradient within one rounding
    // step; out of place and in place (the gradient over the logits).
    if (V % 8 == 0 && offset == 0)
      for (cuda::Half h16 : {cuda::Half::Bf16, cuda::Half::Fp16}) {
        std::vector<float> lh = L.host();
        std::vector<uint16_t> bits(lh.size());
        for (size_t i = 0; i < lh.size(); ++i)
          bits[i] = to16(lh[i], h16);
        Dev<uint16_t> L16(bits), D16a(lh.size());
        Dev<float> LA(1);
        cuda::crossEntropyFusedT({L16.p, true}, TG.p, LA.p, {D16a.p, true}, rows, V, valid,
                                 dloss, RS.p, h16, nullptr, 0);
        const std::string tag = h16 == cuda::Half::Bf16 ? " bf16" : " fp16";
        for (int rowKernel : {1, 2}) {
          Dev<uint16_t> L16b(bits), D16b(lh.size());
          Dev<float> LB(1), LC(1);
          const bool ran = cuda::crossEntropyFusedT({L16.p, true}, TG.p, LB.p, {D16b.p, true},
                                                    rows, V, valid, dloss, RS.p, h16, nullptr,
                                                    rowKernel);
          cuda::crossEntropyFusedT({L16b.p, true}, TG.p, LC.p, {L16b.p, true}, rows, V, valid,
                                   dloss, RS.p, h16, nullptr, rowKernel);
          const std::string what = std::string("cross_entropy fused, row kernel") +
                                   (rowKernel == 2 ? " in shared memory" : "") + tag + sz;
          ++checks;
          if (!ran) {
            ++failures;
            std::printf("%s FAIL  the kernel did not run%s\n", what.c_str(),
                        rowKernel == 2 ? " (the device refused its shared memory)" : "");
          }
          compare(what + ", loss", LA.host(), LB.host(), 1e-6);
          compare(what + ", loss in place", LA.host(), LC.host(), 1e-6);
          compare16Steps(what + ", gradient", D16a.host(), D16b.host());
          compare16Steps(what + ", in place", D16a.host(), L16b.host());
        }
      }
  }
  if (!dlPad.empty())
    compare("cross_entropy_bwd padding (zero)" + sz,
            std::vector<float>(dlPad.size(), 0.0f), dlPad, 0);
}

void checkLossAndOptimizer(Rng &rng) {
  // The whole vocabulary (valid = V): an odd V (scalar loads), V % 4 == 0
  // (float4 loads), GPT-2's 50257; a loss scale on the gradient.
  checkPaddedLoss(rng, 64, 1000, 1000, 0, 1.0f);
  checkPaddedLoss(rng, 8, 50257, 50257, 0, 1.0f);
  checkPaddedLoss(rng, 16, 999, 999, 0, 1024.0f);
  // Padded (valid < V): 251 -> 256 (--vocab-align 64: float4 loads, a
  // valid count that is not a multiple of 4), the same unaligned, a V that
  // is not a multiple of 4, GPT-2's 50257 -> 50304 (--vocab-align 128).
  checkPaddedLoss(rng, 48, 256, 251, 0, 1.0f);
  checkPaddedLoss(rng, 48, 256, 251, 1, 1.0f);
  checkPaddedLoss(rng, 20, 1002, 1000, 0, 1.0f);
  checkPaddedLoss(rng, 8, 50304, 50257, 0, 1.0f);
  // Fewer columns than threads (most threads hold no logit at all).
  checkPaddedLoss(rng, 5, 64, 3, 0, 1.0f);
  checkVocabParallel(rng);
  int64_t n = 50001;
  auto p = randomVec(rng, n), g = randomVec(rng, n), m = randomVec(rng, n, 0.1),
       v = randomVec(rng, n, 0.01);
  for (float &x : v)
    x = std::fabs(x);
  Dev<float> P(p), G(g), M(m), Vv(v);
  Dev<float> P3(p), M3(m), V3(v); // the batched launch's copies
  Dev<float> P4(p), M4(m), V4(v); // and the vector launch's (the CPU updates p, m, v below)
  std::vector<float> pe = p, me = m, ve = v; // and its expected results
  // Scalars as the program's input buffers hold them.
  std::vector<float> lr{3e-4f}, wd{0.1f}, gs{0.5f};
  std::vector<int64_t> step{7};
  Dev<float> LR(lr), WD(wd), GS(gs);
  Dev<int64_t> ST(step);
  cpu::adamw(p.data(), g.data(), m.data(), v.data(), n, double(lr[0]), 0.9,
             0.95, 1e-8, double(wd[0]), step[0], double(gs[0]));
  cuda::adamw(P.p, G.p, M.p, Vv.p, n, LR.p, ST.p, WD.p, GS.p, 0.9, 0.95, 1e-8,
              1.0f, nullptr);
  compare("adamw p", p, P.host(), 1e-6);
  compare("adamw m", m, M.host(), 1e-6);
  compare("adamw v", v, Vv.host(), 1e-6);
  // One launch for three tensors (pieces of the same arrays; the middle
  // one without weight decay, as a bias).
  std::vector<cuda::AdamWTensor> parts;
  for (auto [at, len] : {std::pair<int64_t, int64_t>{0, 20000}, {20000, 13}, {20013, n - 20013}}) {
    bool decay = at != 20000;
    parts.push_back({P3.p + at, G.p + at, M3.p + at, V3.p + at, len, decay});
    cpu::adamw(pe.data() + at, g.data() + at, me.data() + at, ve.data() + at, len,
               double(lr[0]), 0.9, 0.95, 1e-8, decay ? double(wd[0]) : 0.0, step[0],
               double(gs[0]));
  }
  // The same by 16-byte vectors (LLMRT_CUDA_ADAMW_VEC=1): the first two
  // pieces aligned (20000 elements; 13, three vectors and one alone), the
  // third not (one by one).
  std::vector<cuda::AdamWTensor> parts4 = parts;
  for (size_t k = 0; k < parts4.size(); ++k) {
    const int64_t at = parts[k].p - P3.p;
    parts4[k].p = P4.p + at;
    parts4[k].m = M4.p + at;
    parts4[k].v = V4.p + at;
  }
  cuda::adamwBatch(parts.data(), 3, LR.p, ST.p, WD.p, GS.p, 0.9, 0.95, 1e-8, 1.0f,
                   nullptr);
  cuda::adamwBatch(parts4.data(), 3, LR.p, ST.p, WD.p, GS.p, 0.9, 0.95, 1e-8, 1.0f,
                   nullptr, true);
  compare("adamw (3 tensors, one launch) p", pe, P3.host(), 1e-6);
  compare("adamw (3 tensors, one launch) m", me, M3.host(), 1e-6);
  compare("adamw (3 tensors, one launch) v", ve, V3.host(), 1e-6);
  compare("adamw vectors (3 tensors, one launch) p", pe, P4.host(), 1e-6);
  compare("adamw vectors (3 tensors, one launch) m", me, M4.host(), 1e-6);
  compare("adamw vectors (3 tensors, one launch) v", ve, V4.host(), 1e-6);
  // With the parameter's 16-bit copy (LLMRT_CUDA_WEIGHT16): each path
  // writes p as without it, and the copy exactly as toBf16 / toFp16 round
  // that p (50001 elements: the vectors' last one alone).
  for (cuda::Half hc : {cuda::Half::Bf16, cuda::Half::Fp16})
    for (int path = 0; path < 3; ++path) {
      const std::vector<float> p0 = P4.host(), m0 = M4.host(), v0 = V4.host();
      Dev<float> PA(p0), MA(m0), VA(v0), PB(p0), MB(m0), VB(v0);
      Dev<uint16_t> C16(static_cast<size_t>(n)), R16(static_cast<size_t>(n));
      auto update = [&](float *pp, float *mm, float *vv, void *copy16) {
        if (path == 0) {
          cuda::adamw(pp, G.p, mm, vv, n, LR.p, ST.p, WD.p, GS.p, 0.9, 0.95, 1e-8, 1.0f,
                      nullptr, copy16, hc);
          return;
        }
        std::vector<cuda::AdamWTensor> one{{pp, G.p, mm, vv, n, true, copy16}};
        cuda::adamwBatch(one.data(), 1, LR.p, ST.p, WD.p, GS.p, 0.9, 0.95, 1e-8, 1.0f,
                         nullptr, path == 2, hc);
      };
      update(PA.p, MA.p, VA.p, nullptr);
      update(PB.p, MB.p, VB.p, C16.p);
      (hc == cuda::Half::Fp16 ? cuda::toFp16 : cuda::toBf16)(PB.p, R16.p, n, nullptr);
      const std::string what = std::string("adamw with a ") +
                               (hc == cuda::Half::Fp16 ? "fp16" : "bf16") + " copy" +
                               (path == 0 ? "" : path == 1 ? ", batched" : ", by vectors");
      compare(what + ": p", PA.host(), PB.host(), 0);
      compare(what + ": m", MA.host(), MB.host(), 0);
      ++checks;
      if (R16.host() != C16.host()) {
        ++failures;
        std::printf("%s: the copy FAIL  not the updated p rounded\n", what.c_str());
      }
    }

  double ref = std::sqrt(cpu::sumSquares(g.data(), n) + cpu::sumSquares(p.data(), n));
  Dev<double> ACC(std::vector<double>{0.0});
  Dev<float> NORM(1), MAXN(std::vector<float>{1.0f}), COEF(1);
  Dev<float> P2(p);
  cuda::sumSquares(G.p, n, ACC.p, nullptr);
  cuda::sumSquares(P2.p, n, ACC.p, nullptr);
  cuda::finishNorm(ACC.p, 1, NORM.p, 1.0, nullptr);
  cuda::clipScale(NORM.p, MAXN.p, COEF.p, nullptr);
  compare("global_norm", {static_cast<float>(ref)}, NORM.host(), 1e-6);
  {
    // Batched: 40 pieces (two launches) into two slots, summed.
    std::vector<cuda::SquaresTensor> parts;
    for (int k = 0; k < 40; ++k) {
      int64_t at = k * (n / 40), len = k == 39 ? n - at : n / 40;
      parts.push_back({(k % 2 ? P2.p : G.p) + at, len, k % 2});
      parts.push_back({(k % 2 ? G.p : P2.p) + at, len, 1 - k % 2});
    }
    Dev<double> ACC2(std::vector<double>{0.0, 0.0});
    cuda::sumSquaresBatch(parts.data(), static_cast<int>(parts.size()), ACC2.p, nullptr);
    cuda::finishNorm(ACC2.p, 2, NORM.p, 1.0, nullptr);
    compare("global_norm (80 tensors, batched)", {static_cast<float>(ref)}, NORM.host(), 1e-6);
  }
  // Tensors shorter than the elements before their first 16-byte
  // boundary, and ending before or after it: each start 0 to 3 elements
  // past one, lengths 0 to 9.
  for (int64_t off = 0; off < 4; ++off) {
    std::vector<cuda::SquaresTensor> parts;
    double want = 0;
    for (int64_t len = 0; len < 10; ++len) {
      parts.push_back({G.p + 64 * len + off, len, 0});
      want += cpu::sumSquares(g.data() + 64 * len + off, len);
    }
    Dev<double> ACC3(std::vector<double>{0.0});
    cuda::sumSquaresBatch(parts.data(), static_cast<int>(parts.size()), ACC3.p, nullptr);
    cuda::finishNorm(ACC3.p, 1, NORM.p, 1.0, nullptr);
    compare("global_norm (short tensors, " + std::to_string(off) + " past a 16-byte boundary)",
            {static_cast<float>(std::sqrt(want))}, NORM.host(), 1e-6);
  }
  compare("clip_scale", {std::min(1.0f, 1.0f / (static_cast<float>(ref) + 1e-6f))},
          COEF.host(), 1e-6);
  // An overflow (a non-finite norm): clip_scale marks the step with NaN and
  // AdamW, single and batched, updates nothing (the graph's skip).
  {
    Dev<float> INF(std::vector<float>{std::numeric_limits<float>::infinity()}),
        MARK(std::vector<float>{1.0f}); // not NaN before: the kernel must write it
    cuda::clipScale(INF.p, MAXN.p, MARK.p, nullptr);
    ++checks;
    if (float mark = MARK.host()[0]; !std::isnan(mark)) {
      ++failures;
      std::printf("clip_scale of an infinite norm FAIL  %g, not NaN\n", mark);
    }
    std::vector<float> p0(1000, 0.5f), g0(1000, 1.0f), m0(1000, 0.25f), v0(1000, 0.125f);
    Dev<float> G5(g0);
    // Each path on its own tensors: single, batched, batched by vectors.
    const std::vector<uint16_t> k0(1000, 0x3f00); // bf16 0.5 (fp16 1.75)
    for (int path = 0; path < 6; ++path) { // 3 to 5: the same with an fp16 copy
      Dev<float> P5(p0), M5(m0), V5(v0);
      Dev<uint16_t> K5(k0); // the parameter's 16-bit copy, unchanged too
      if (path == 0) {
        cuda::adamw(P5.p, G5.p, M5.p, V5.p, 1000, LR.p, ST.p, WD.p, MARK.p, 0.9, 0.95, 1e-8,
                    1.0f, nullptr, K5.p);
      } else if (path == 3) {
        cuda::adamw(P5.p, G5.p, M5.p, V5.p, 1000, LR.p, ST.p, WD.p, MARK.p, 0.9, 0.95, 1e-8,
                    1.0f, nullptr, K5.p, cuda::Half::Fp16);
      } else {
        std::vector<cuda::AdamWTensor> one{{P5.p, G5.p, M5.p, V5.p, 1000, true, K5.p}};
        cuda::adamwBatch(one.data(), 1, LR.p, ST.p, WD.p, MARK.p, 0.9, 0.95, 1e-8, 1.0f,
                         nullptr, path % 3 == 2, path > 3 ? cuda::Half::Fp16 : cuda::Half::Bf16);
      }
      must(cudaGetLastError(), "adamw launch");
      const std::string what =
          std::string("adamw of a marked step") +
          (path % 3 == 0 ? "" : path % 3 == 1 ? ", batched" : ", by vectors") +
          (path > 2 ? ", fp16 copy" : "");
      compare(what + ": p unchanged", p0, P5.host(), 0);
      compare(what + ": m unchanged", m0, M5.host(), 0);
      compare(what + ": v unchanged", v0, V5.host(), 0);
      ++checks;
      if (K5.host() != k0) {
        ++failures;
        std::printf("%s: the 16-bit copy FAIL  changed\n", what.c_str());
      }
    }
  }
}

} // namespace

/// The compiler's generated kernels (llm-fuse-elementwise's groups) of the
/// program embedded in `exe`: each kernel once per aliasing pattern of its
/// instructions, on random operands, against the CPU's interpretation (FusedKernels.h), with the
/// instruction's own aliasing (operands on the same arena bytes share one
/// buffer: the in-place residual adds). A fused_norm also with its row
/// inputs and y in bf16 and in fp16 (the runtime's storage codes), the CPU
/// reading the same rounded inputs.
void checkGenerated(Rng &rng, const std::string &exe) {
  auto fail = [&](const std::string &why) {
    std::printf("generated kernels of %s: FAIL  %s\n", exe.c_str(), why.c_str());
    ++checks;
    ++failures;
  };
  absl::StatusOr<ProgramDesc> p = loadEmbeddedProgram(exe);
  if (!p.ok())
    return fail(std::string(p.status().message()));
  if (p->gpuEntries.empty())
    return fail("the program has no generated kernels (compiled without --target cuda?)");
  cuda::GeneratedKernels gen;
  if (std::string e = gen.load(p->gpuPtx, p->gpuEntries); !e.empty())
    return fail(e);
  std::set<std::vector<int64_t>> seen;
  for (const FunctionDesc &f : p->functions)
    for (const Instruction &inst : f.instructions) {
      const bool norm = inst.opcode == static_cast<uint16_t>(Opcode::FusedNorm);
      FusedNormProgram fn;
      const FusedProgram &fp = fn.pro;
      const size_t K = inst.operands.size();
      if (!isFusedGroup(inst.opcode) || !decodeFusedGroup(inst.opcode, inst.ints, K, fn).empty())
        continue;
      const size_t I = fp.nb.size();
      // One buffer per distinct arena range; which operands read, which write.
      std::map<std::pair<uint64_t, uint64_t>, size_t> bufOf;
      std::vector<size_t> buf(K);
      std::vector<int64_t> elems;
      std::vector<char> read, written;
      for (size_t k = 0; k < K; ++k) {
        const BufferDesc &d = p->buffers[inst.operands[k]];
        auto [it, added] = bufOf.try_emplace({d.offset, d.bytes}, elems.size());
        if (added) {
          elems.push_back(static_cast<int64_t>(d.bytes / 4));
          read.push_back(0);
          written.push_back(0);
        }
        buf[k] = it->second;
        (k < I ? read : written)[buf[k]] = 1;
      }
      if (fp.kernel < 0 || fp.kernel >= static_cast<int64_t>(p->gpuEntries.size()))
        return fail("an instruction names no generated kernel");
      // Each kernel once per aliasing pattern (in place or not).
      std::vector<int64_t> pattern(buf.begin(), buf.end());
      pattern.push_back(fp.kernel);
      if (!seen.insert(pattern).second)
        continue;
      const std::string entry = p->gpuEntries[fp.kernel];
      const std::string shape =
          norm ? (fn.kind == FusedNormProgram::Layer ? " layer " : " RMS ") +
                     std::to_string(fn.rows) + "x" + std::to_string(fn.C)
               : " n " + std::to_string(fp.n);
      // Storage variants: all fp32; for a norm, row inputs and y 16-bit.
      for (int variant = 0; variant < (norm ? 3 : 1); ++variant) {
        const cuda::Half h = variant == 2 ? cuda::Half::Fp16 : cuda::Half::Bf16;
        std::vector<int32_t> codes(K, 0);
        if (variant > 0)
          for (size_t k = 0; k < K; ++k) {
            // A 16-bit operand must not share its buffer with another
            // operand (the runtime moves such values to a side region).
            size_t sharing = 0;
            for (size_t j = 0; j < K; ++j)
              sharing += buf[j] == buf[k];
            const bool rowInput = k < I && fp.nb[k] == fp.n;
            if (sharing == 1 && (rowInput || k + 1 == K))
              codes[k] = variant;
          }
        std::vector<std::vector<float>> host(elems.size());
        for (size_t b = 0; b < elems.size(); ++b)
          host[b] = read[b] ? randomVec(rng, elems[b], 2.0)
                            : std::vector<float>(elems[b], std::nanf(""));
        for (size_t k = 0; k < I; ++k) // the CPU reads what the GPU reads
          if (codes[k])
            for (float &x : host[buf[k]])
              x = from16(to16(x, h), h);
        // The device's buffers: fp32, or the 16-bit bits of a coded operand.
        std::vector<std::unique_ptr<Dev<float>>> dev;
        for (size_t b = 0; b < elems.size(); ++b)
          dev.push_back(std::make_unique<Dev<float>>(host[b]));
        for (size_t k = 0; k < K; ++k)
          if (codes[k]) {
            std::vector<uint16_t> bits(elems[buf[k]]);
            for (size_t e = 0; e < bits.size(); ++e)
              bits[e] = k < I ? to16(host[buf[k]][e], h) : 0xffff; // NaN: unwritten shows
            must(cudaMemcpy(dev[buf[k]]->p, bits.data(), bits.size() * 2,
                            cudaMemcpyHostToDevice),
                 "upload 16-bit");
          }
        std::vector<void *> hp(K), dp(K);
        for (size_t k = 0; k < K; ++k) {
          hp[k] = host[buf[k]].data();
          dp[k] = dev[buf[k]]->p;
        }
        if (norm)
          cpu::fusedNorm(fn, hp.data(), inst.floats.at(0));
        else
          cpu::fusedElementwise(fp, hp.data());
        std::string e = norm ? gen.launchNorm(fp.kernel, fn.rows, dp.data(), codes.data(), K,
                                              nullptr)
                             : gen.launchElementwise(fp.kernel, fp.n, dp.data(), K, nullptr);
        if (!e.empty())
          return fail(entry + ": " + e);
        const char *tag[] = {" fp32", " bf16 in/out", " fp16 in/out"};
        for (size_t k = I; k < K; ++k) {
          if (std::find(buf.begin() + I, buf.begin() + k, buf[k]) != buf.begin() + k)
            continue; // this buffer compared already
          std::vector<float> got = dev[buf[k]]->host();
          if (codes[k]) {
            std::vector<uint16_t> bits(got.size());
            must(cudaMemcpy(bits.data(), dev[buf[k]]->p, bits.size() * 2,
                            cudaMemcpyDeviceToHost),
                 "download 16-bit");
            for (size_t i = 0; i < got.size(); ++i)
              got[i] = from16(bits[i], h);
          }
          compare(entry + shape + tag[variant] + " out " + std::to_string(k - I), host[buf[k]],
                  got, !codes[k] ? kTol : h == cuda::Half::Bf16 ? 4.5e-3 : 1e-3);
        }
      }
    }
}

int main(int argc, char **argv) {
  cuda::GemmMode mode = cuda::GemmMode::Bf16;
  // --only GROUP: one group of checks (shorter runs under
  // compute-sanitizer, whose memcheck and racecheck are slow).
  const std::vector<std::string> groups = {"norms",     "linear",    "elementwise",
                                           "store16",   "epilogues", "embeddings",
                                           "attention", "loss",      "generated"};
  std::string only;
  std::vector<std::string> programs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--gemm" && i + 1 < argc && cuda::parseGemmMode(argv[i + 1], mode)) {
      ++i;
      continue;
    }
    if (a == "--program" && i + 1 < argc) {
      programs.push_back(argv[++i]);
      continue;
    }
    if (a == "--only" && i + 1 < argc &&
        std::find(groups.begin(), groups.end(), argv[i + 1]) != groups.end()) {
      only = argv[++i];
      continue;
    }
    std::string names;
    for (const std::string &g : groups)
      names += (names.empty() ? "" : "|") + g;
    std::fprintf(stderr,
                 "usage: %s [--gemm bf16|bf16-fast|tf32|fp32|fp16] [--only %s] [--program EXE]...\n",
                 argv[0], names.c_str());
    return 2;
  }
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    std::printf("SKIP: no CUDA device (%s)\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 77;
  }
  cudaDeviceProp prop;
  cudaGetDeviceProperties(&prop, 0);
  std::printf("device: %s (sm_%d%d), GEMMs in %s%s%s\n", prop.name, prop.major,
              prop.minor, cuda::gemmModeName(mode), only.empty() ? "" : ", only ",
              only.c_str());
  Rng rng{42};
  auto run = [&](const char *group) { return only.empty() || only == group; };
  if (run("norms"))
    checkNorms(rng);
  if (run("linear"))
    checkLinear(rng, mode);
  if (run("elementwise"))
    checkLayoutAndElementwise(rng);
  if (run("store16"))
    checkStore16(rng, mode);
  if (run("epilogues"))
    checkGeluEpilogue(rng, mode);
  if (run("embeddings"))
    checkEmbeddings(rng);
  if (run("attention")) {
    checkAttention(rng, 0);
    if (mode == cuda::GemmMode::Bf16 || mode == cuda::GemmMode::Bf16Fast)
      for (int kind = 1; kind <= 13; ++kind)
        checkAttention(rng, kind);
    if (mode == cuda::GemmMode::Bf16)
      checkAttentionColumns(rng);
  }
  if (run("loss"))
    checkLossAndOptimizer(rng);
  if (run("generated"))
    for (const std::string &exe : programs)
      checkGenerated(rng, exe);
  must(cudaDeviceSynchronize(), "kernels");
  std::printf("%d of %d checks pass (%d device buffers' bounds guarded)\n", checks - failures,
              checks, guarded);
  return failures ? 1 : 0;
}
