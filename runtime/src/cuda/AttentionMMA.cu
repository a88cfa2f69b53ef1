//===- AttentionMMA.cu - flash attention in registers (mma.sync) ----------===//
//
// Causal or full attention, grouped-query, for head dimension 64, as
// FlashAttention-2 computes it: every product on bf16 tensor cores through
// `mma.sync.m16n8k16` (fp32 accumulation), the scores and probabilities in
// registers (an accumulator fragment of S is, repacked to bf16, the
// A-operand fragment of P for P·V: no round trip through shared memory).
// Tiles are rounded to bf16 as they enter shared memory, or (16-bit inputs,
// LLMRT_CUDA_ATTN16) copied as they are.
//
// A block is 4 warps; a warp owns 16 rows (queries in the forward, keys in
// the backward) of the block's 64, and tiles of 64 rows of the other side
// stream through shared memory. The forward also comes in blocks of 8 warps
// (128 queries sharing each key tile; LLMRT_CUDA_ATTN_FWD8=1).
//   forward:   S = Q Kᵀ, online softmax (base 2), O += P V;
//   row stats: the forward again, writing lse (base 2) and
//              D = rowsum(dO ∘ O) instead of O (the backward's inputs);
//   backward:  per key block over the query tiles of every head of its
//              group (16-bit Q and dO: the next tile's copied by cp.async
//              while this one's products run, LLMRT_CUDA_ATTN_BWD_ASYNC=1,
//              and =2 its rows' lse and D with them; fp32 ones `staged`,
//              no faster on an H100, so off): Sᵀ = K Qᵀ, dPᵀ = V dOᵀ,
//              Pᵀ = exp2(Sᵀ - lse),
//              dSᵀ = Pᵀ ∘ (dPᵀ - D), dV += Pᵀ dO, dK += dSᵀ Q, and
//              dQ += dS K added to dq atomically (dq zeroed first).
//
// Fragment layouts (PTX ISA, mma.m16n8k16 with .bf16): lane = 4 g + t;
// A (16 x 16, row): a0 = (g, 2t..2t+1), a1 = (g+8, 2t..), a2 = (g, 2t+8..),
// a3 = (g+8, 2t+8..); B (16 x 8, col): b0 = (k 2t..2t+1, n g), b1 = (k
// 2t+8.., n g); C (16 x 8): c0,c1 = (g, 2t..2t+1), c2,c3 = (g+8, 2t..).
// Operands whose k runs along a stored row are read as 32-bit words;
// transposed ones through ldmatrix .trans.
//
//===----------------------------------------------------------------------===//
#include "llmrt/CudaKernels.h"
#include "llmrt/Store16.h"

#include "FastMath.cuh"
#include "TileLoad.cuh"

#include <cuda_bf16.h>

#include <cmath>
#include <type_traits>

namespace llmrt::cuda {
namespace {

using bf16 = __nv_bfloat16;

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kRows = 64; // rows of a block and of a streamed tile
constexpr float kLog2e = 1.4426950408889634f;

template <int D> struct Lay {
  /// bf16 elements per shared-memory row: 16 bytes of padding put the
  /// 8 rows an ldmatrix or a fragment load touches in distinct banks.
  static constexpr int Ld = D + 8;
  static constexpr int TileElems = kRows * Ld;
};

__device__ __forceinline__ unsigned pack(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<unsigned *>(&v);
}

__device__ __forceinline__ unsigned lds32(const bf16 *p) {
  return *reinterpret_cast<const unsigned *>(p);
}

/// d += a · b (16 x 8 x 16, bf16 in, fp32 accumulation).
__device__ __forceinline__ void mma(float (&d)[4], const unsigned (&a)[4],
                                    unsigned b0, unsigned b1) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
               "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
               "{%0, %1, %2, %3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/// Four 8 x 8 bf16 matrices by ldmatrix: as stored (lane 4 g + t gets row
/// g, elements 2t and 2t + 1 of each) or, with Trans, transposed; lanes
/// 8m..8m+7 give the row addresses of matrix m.
template <bool Trans>
__device__ __forceinline__ void ldsm4x(unsigned (&r)[4], const bf16 *p) {
  unsigned addr = static_cast<unsigned>(__cvta_generic_to_shared(p));
  if constexpr (Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 "
                 "{%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 "
                 "{%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void ldsm4t(unsigned (&r)[4], const bf16 *p) { ldsm4x<true>(r, p); }
__device__ __forceinline__ void ldsm4(unsigned (&r)[4], const bf16 *p) { ldsm4x<false>(r, p); }

/// The A fragments of rows [r0, r0 + 16) x [0, D) of a tile in shared
/// memory (k along the stored rows).
template <int D>
__device__ __forceinline__ void loadA(unsigned (&a)[D / 16][4], const bf16 *tile,
                                      int r0, int lane) {
  constexpr int Ld = Lay<D>::Ld;
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int kc = 0; kc < D / 16; ++kc) {
    const bf16 *p = tile + (r0 + g) * Ld + kc * 16 + 2 * t;
    a[kc][0] = lds32(p);
    a[kc][1] = lds32(p + 8 * Ld);
    a[kc][2] = lds32(p + 8);
    a[kc][3] = lds32(p + 8 * Ld + 8);
  }
}

/// s[n] = A · Bᵀ for the 8 n-tiles of a 64-row tile B in shared memory
/// (its rows are the n index; k along them): a warp's 16 x 64 scores.
template <int D>
__device__ __forceinline__ void productABt(float (&s)[8][4],
                                           const unsigned (&a)[D / 16][4],
                                           const bf16 *tile, int lane) {
  constexpr int Ld = Lay<D>::Ld;
  const int g = lane >> 2, t = lane & 3;
#pragma unroll
  for (int nt = 0; nt < 8; ++nt) {
    s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
    for (int kc = 0; kc < D / 16; ++kc) {
      const bf16 *p = tile + (nt * 8 + g) * Ld + kc * 16 + 2 * t;
      mma(s[nt], a[kc], lds32(p), lds32(p + 8));
    }
  }
}

/// productABt with B's fragments by ldmatrix: one instruction brings the
/// 16 k of two n-tiles (matrices: n-tile 2np, k 0-7 and 8-15; n-tile
/// 2np + 1, the same), a quarter of the shared-memory loads of the 32-bit
/// reads (the cp.async kernels; the others keep those).
template <int D>
__device__ __forceinline__ void productABtLdsm(float (&s)[8][4],
                                               const unsigned (&a)[D / 16][4],
                                               const bf16 *tile, int lane) {
  constexpr int Ld = Lay<D>::Ld;
  const int m = lane >> 3, r = lane & 7;
  const bf16 *base = tile + ((m >> 1) * 8 + r) * Ld + (m & 1) * 8;
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
    s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
  for (int np = 0; np < 4; ++np)
#pragma unroll
    for (int kc = 0; kc < D / 16; ++kc) {
      unsigned b[4];
      ldsm4(b, base + np * 16 * Ld + kc * 16);
      mma(s[2 * np], a[kc], b[0], b[1]);
      mma(s[2 * np + 1], a[kc], b[2], b[3]);
    }
}

/// The A fragment of k-chunk kc (16 columns) of a warp's 16 x 64
/// accumulator tile, rounded to bf16.
__device__ __forceinline__ void accToA(unsigned (&a)[4], const float (&s)[8][4],
                                       int kc) {
  a[0] = pack(s[2 * kc][0], s[2 * kc][1]);
  a[1] = pack(s[2 * kc][2], s[2 * kc][3]);
  a[2] = pack(s[2 * kc + 1][0], s[2 * kc + 1][1]);
  a[3] = pack(s[2 * kc + 1][2], s[2 * kc + 1][3]);
}

/// acc[D/8] += A · B[kc*16 .. kc*16 + 16) for one k-chunk: A a warp's
/// 16 x 16 fragment, B a 64 x D tile in shared memory stored [k][n] (read
/// transposed by ldmatrix).
/// Cols < D: the first Cols columns of `tile` (offset the pointer for
/// others).
template <int D, int Cols = D>
__device__ __forceinline__ void productChunkB(float (&acc)[Cols / 8][4],
                                             const unsigned (&a)[4],
                                             const bf16 *tile, int kc, int lane) {
  constexpr int Ld = Lay<D>::Ld;
  // Lane l addresses row (l & 7) of matrix l >> 3: matrices 0, 1 are the
  // k rows 0-7 and 8-15 of n-tile 2 dp, matrices 2, 3 those of 2 dp + 1.
  const int row = ((lane >> 3) & 1) * 8 + (lane & 7), col = (lane >> 4) * 8;
#pragma unroll
  for (int dp = 0; dp < Cols / 16; ++dp) {
    unsigned b[4];
    ldsm4t(b, tile + (kc * 16 + row) * Ld + dp * 16 + col);
    mma(acc[2 * dp], a, b[0], b[1]);
    mma(acc[2 * dp + 1], a, b[2], b[3]);
  }
}

/// acc[D/8] += P · B where P is a warp's 16 x 64 tile (fp32 fragments in
/// registers) and B a 64 x D tile in shared memory, stored [k][n].
template <int D>
__device__ __forceinline__ void productPB(float (&acc)[D / 8][4],
                                          const float (&p)[8][4],
                                          const bf16 *tile, int lane) {
#pragma unroll
  for (int kc = 0; kc < 4; ++kc) {
    unsigned a[4];
    accToA(a, p, kc);
    productChunkB<D>(acc, a, tile, kc, lane);
  }
}

/// A 64 x D fp32 tile of head h of a [B, S, H, D] tensor held in registers
/// between its load from global memory and its store (as bf16) to shared
/// memory, so that the next tile's loads overlap this tile's products.
template <int D, int Rows = kRows, int Threads = kThreads>
struct Tile : RowVectors<Rows, D, Threads> {
  __device__ __forceinline__ void store(bf16 *dst) const {
    this->put([&](int r, int c, float4 x) {
      *reinterpret_cast<uint2 *>(dst + r * Lay<D>::Ld + c) =
          make_uint2(pack(x.x, x.y), pack(x.z, x.w));
    });
  }
};

/// The same tile where each tensor may be stored bf16 (16-bit attention
/// inputs, LLMRT_CUDA_ATTN16): held as bf16 pairs from the load on (fp32
/// rows are rounded as they arrive), bf16 rows copied as they are.
template <int D, int Rows = kRows, int Threads = kThreads> struct Tile16 {
  static constexpr int Per = Rows * D / 4 / Threads;
  static_assert(Rows * D / 4 % Threads == 0, "the tile does not split evenly");
  uint2 x[Per];
  __device__ __forceinline__ void fetch(const void *src, bool h16, int b, int S,
                                        int64_t ld, int h, int r0) {
#pragma unroll
    for (int u = 0; u < Per; ++u) {
      const int e = u * Threads + threadIdx.x;
      const int r = e / (D / 4), c = (e % (D / 4)) * 4, i = r0 + r;
      const int64_t at = (static_cast<int64_t>(b) * S + i) * ld + h * D + c;
      if (i >= S) {
        x[u] = make_uint2(0u, 0u);
      } else if (h16) {
        x[u] = __ldg(reinterpret_cast<const uint2 *>(static_cast<const bf16 *>(src) + at));
      } else {
        const float4 f = __ldg(reinterpret_cast<const float4 *>(static_cast<const float *>(src) + at));
        x[u] = make_uint2(pack(f.x, f.y), pack(f.z, f.w));
      }
    }
  }
  __device__ __forceinline__ void store(bf16 *dst) const {
#pragma unroll
    for (int u = 0; u < Per; ++u) {
      const int e = u * Threads + threadIdx.x;
      *reinterpret_cast<uint2 *>(dst + (e / (D / 4)) * Lay<D>::Ld + (e % (D / 4)) * 4) = x[u];
    }
  }
};

/// Bits of the 16-bit operands of the attention kernels (Any16); dk and
/// dv written 16-bit (the backward; dq is accumulated in fp32 and rounded
/// by the caller).
enum : unsigned { kQ16 = 1, kK16 = 2, kV16 = 4, kDO16 = 8, kO16 = 16, kDK16 = 64, kDV16 = 128 };

/// A tile of `src` into registers: Tile (fp32) or Tile16 (either). Row
/// (b, i) of `src` starts at (b S + i) ld: ld = H D where the tensor is
/// dense, wider where it is a column slice (AttentionLayout).
template <int D, bool Any16, int Rows = kRows, int Threads = kThreads> struct TileOf {
  using Type = std::conditional_t<Any16, Tile16<D, Rows, Threads>, Tile<D, Rows, Threads>>;
};
template <int D, bool Any16, int Rows = kRows, int Threads = kThreads>
__device__ __forceinline__ void fetchTile(typename TileOf<D, Any16, Rows, Threads>::Type &tile,
                                          const void *src, bool h16, int b, int S,
                                          int64_t ld, int h, int r0) {
  if constexpr (Any16)
    tile.fetch(src, h16, b, S, ld, h, r0);
  else
    tile.fetchLd(static_cast<const float *>(src), b, S, ld, h, r0);
}
/// Two adjacent elements of an fp32 or (h16) bf16 tensor.
__device__ __forceinline__ float2 load2(const void *p, bool h16, int64_t at) {
  if (h16)
    return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(
        static_cast<const bf16 *>(p) + at));
  return *reinterpret_cast<const float2 *>(static_cast<const float *>(p) + at);
}

/// What the forward kernel writes: the output; the backward's row
/// statistics instead (lse in base 2 of the scaled scores, and
/// D = rowsum(dO ∘ O), [B, Hq, S] each); or the output and the rows'
/// natural log-sum-exp (kept for the backward).
enum FwdMode { kOut = 0, kStats = 1, kOutLse = 2 };

/// A warp's forward state before its first key tile: O zero; rows g and
/// g + 8 of its 16: the running max (base 2, scaled) and this lane's part
/// of the running sum (the quad's parts are added at the end: the
/// rescaling is the same for all four).
template <int D>
__device__ __forceinline__ void fwdStart(float (&o)[D / 8][4], float (&m)[2], float (&l)[2]) {
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
    o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  m[0] = m[1] = -INFINITY;
  l[0] = l[1] = 0.0f;
}

/// One key tile of the forward for a warp's 16 query rows (row g: query
/// i0): S = Q Kᵀ from the warp's A fragments and the tile's keys k0.. in
/// shared memory, masked where `mask` (keys past S, or causal j > i), the
/// online softmax's running max m and sum l (rows g and g + 8, base 2) and
/// o rescaled, then O += P V.
template <int D, bool Ldsm = false>
__device__ __forceinline__ void fwdTile(float (&o)[D / 8][4], float (&m)[2], float (&l)[2],
                                        const unsigned (&qa)[D / 16][4], const bf16 *Ks,
                                        const bf16 *Vs, bool mask, int k0, int i0, int S,
                                        bool causal, float scaleLog2, int lane) {
  const int t = lane & 3;
  float s[8][4];
  if constexpr (Ldsm)
    productABtLdsm<D>(s, qa, Ks, lane);
  else
    productABt<D>(s, qa, Ks, lane);
  float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float x = s[nt][e] * scaleLog2;
      if (mask) {
        const int j = k0 + nt * 8 + 2 * t + (e & 1), i = i0 + (e >> 1) * 8;
        if (j >= S || (causal && j > i))
          x = -INFINITY;
      }
      s[nt][e] = x;
      mx[e >> 1] = fmaxf(mx[e >> 1], x);
    }
  float corr[2], base[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
    mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
    const float mNew = fmaxf(m[r], mx[r]);
    base[r] = mNew == -INFINITY ? 0.0f : mNew;
    corr[r] = fastExp2(m[r] - base[r]); // 0 while m is -inf
    m[r] = mNew;
    l[r] *= corr[r];
  }
#pragma unroll
  for (int nt = 0; nt < 8; ++nt)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const float p = fastExp2(s[nt][e] - base[e >> 1]);
      s[nt][e] = p;
      l[e >> 1] += p;
    }
#pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    o[n][0] *= corr[0];
    o[n][1] *= corr[0];
    o[n][2] *= corr[1];
    o[n][3] *= corr[1];
  }
  productPB<D>(o, s, Vs, lane);
}

/// The forward's end for a warp's rows (row g: query i0): O / l written
/// (16-bit where kO16), with the natural log-sum-exp (kOutLse); or the
/// backward's row statistics instead (kStats: lse in base 2 and D =
/// rowsum(dO ∘ O)).
template <int D, int Mode, bool Any16>
__device__ __forceinline__ void fwdFinish(const float (&o)[D / 8][4], const float (&m)[2],
                                          float (&l)[2], int i0, int b, int h, int S,
                                          int Hq, void *out, float *lseOut, float *dOut,
                                          const void *dout, unsigned h16, int lane) {
  const int t = lane & 3;
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 1);
    l[r] += __shfl_xor_sync(0xffffffffu, l[r], 2);
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int i = i0 + r * 8;
    const float inv = 1.0f / l[r];
    const int64_t row = ((static_cast<int64_t>(b) * S + i) * Hq + h) * D;
    if (Mode != kStats) {
      if (i < S)
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
          const float2 y = make_float2(o[n][2 * r] * inv, o[n][2 * r + 1] * inv);
          if (Any16 && (h16 & kO16))
            *reinterpret_cast<__nv_bfloat162 *>(static_cast<bf16 *>(out) + row + n * 8 +
                                                2 * t) = __floats2bfloat162_rn(y.x, y.y);
          else
            *reinterpret_cast<float2 *>(static_cast<float *>(out) + row + n * 8 + 2 * t) = y;
        }
      if (Mode == kOutLse && i < S && t == 0) // natural log: x ln 2
        lseOut[(static_cast<int64_t>(b) * Hq + h) * S + i] =
            (m[r] + log2f(l[r])) * 0.6931471805599453f;
    } else {
      float dsum = 0.0f;
      if (i < S)
#pragma unroll
        for (int n = 0; n < D / 8; ++n) {
          const float2 d = load2(dout, Any16 && (h16 & kDO16), row + n * 8 + 2 * t);
          dsum += d.x * o[n][2 * r] + d.y * o[n][2 * r + 1];
        }
      dsum += __shfl_xor_sync(0xffffffffu, dsum, 1);
      dsum += __shfl_xor_sync(0xffffffffu, dsum, 2);
      if (i < S && t == 0) {
        const int64_t st = (static_cast<int64_t>(b) * Hq + h) * S + i;
        lseOut[st] = m[r] + log2f(l[r]);
        dOut[st] = dsum * inv;
      }
    }
  }
}


/// Forward (mode kOut, kOutLse) or the backward's row statistics (kStats).
/// Grid: (query blocks of 16 x Warps rows, Hq, B); under causal masking
/// the longest rows go first. Key tiles are 64 rows whatever the warps: 8
/// warps (LLMRT_CUDA_ATTN_FWD8=1) share each K, V tile among 128 queries,
/// half the loads of 4.
template <int D, int Mode, bool Any16, int Warps = kWarps>
__global__ void __launch_bounds__(32 * Warps)
    attnFwdMMA(const void *q, const void *k, const void *v,
               const void *dout, void *out, float *lseOut, float *dOut,
               int S, int Hq, int Hkv, float scaleLog2, bool causal, unsigned h16,
               int ldq, int ldk, int ldv) {
  constexpr int Threads = 32 * Warps, QRows = 16 * Warps;
  __shared__ __align__(16) bf16 Qs[QRows * Lay<D>::Ld];
  __shared__ __align__(16) bf16 Ks[Lay<D>::TileElems];
  __shared__ __align__(16) bf16 Vs[Lay<D>::TileElems];

  const int nq = gridDim.x;
  const int qt = causal ? nq - 1 - blockIdx.x : blockIdx.x;
  const int b = blockIdx.z, h = blockIdx.y, q0 = qt * QRows;
  const int hk = h / (Hq / Hkv);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2;
  const int tiles = (S + kRows - 1) / kRows;
  const int nk = !causal       ? tiles
                 : Warps == kWarps ? qt + 1
                                   : min(tiles, (q0 + QRows - 1) / kRows + 1);

  typename TileOf<D, Any16, kRows, Threads>::Type kreg, vreg;
  {
    typename TileOf<D, Any16, QRows, Threads>::Type qreg;
    fetchTile<D, Any16, QRows, Threads>(qreg, q, h16 & kQ16, b, S, ldq, h, q0);
    fetchTile<D, Any16, kRows, Threads>(kreg, k, h16 & kK16, b, S, ldk, hk, 0);
    fetchTile<D, Any16, kRows, Threads>(vreg, v, h16 & kV16, b, S, ldv, hk, 0);
    qreg.store(Qs);
  }
  __syncthreads();
  unsigned qa[D / 16][4];
  loadA<D>(qa, Qs, warp * 16, lane);

  float o[D / 8][4], m[2], l[2];
  fwdStart<D>(o, m, l);
  const int i0 = q0 + warp * 16 + g; // the query of row g

  for (int kt = 0; kt < nk; ++kt) {
    const int k0 = kt * kRows;
    __syncthreads(); // every warp is done with the previous tile
    kreg.store(Ks);
    vreg.store(Vs);
    __syncthreads();
    if (kt + 1 < nk) {
      fetchTile<D, Any16, kRows, Threads>(kreg, k, h16 & kK16, b, S, ldk, hk, k0 + kRows);
      fetchTile<D, Any16, kRows, Threads>(vreg, v, h16 & kV16, b, S, ldv, hk, k0 + kRows);
    }
    // Masked: a tile past S, or (causal) one reaching past the block's
    // first query (the diagonal tile with 4 warps; the last two with 8).
    const bool mask =
        k0 + kRows > S || (causal && (Warps == kWarps ? kt == qt : k0 + kRows > q0));
    fwdTile<D>(o, m, l, qa, Ks, Vs, mask, k0, i0, S, causal, scaleLog2, lane);
  }
  fwdFinish<D, Mode, Any16>(o, m, l, i0, b, h, S, Hq, out, lseOut, dOut, dout, h16, lane);
}

/// Loads rows [r0, r0 + Rows) of head h (fp32 or bf16) into a bf16 tile, all loads
/// issued before any store.
template <int D, bool Any16, int Rows = kRows, int Threads = kThreads>
__device__ __forceinline__ void loadTile(bf16 *dst, const void *src, bool h16, int b,
                                         int S, int64_t ld, int h, int r0) {
  typename TileOf<D, Any16, Rows, Threads>::Type x;
  fetchTile<D, Any16, Rows, Threads>(x, src, h16, b, S, ld, h, r0);
  x.store(dst);
}

/// Rows [r0, r0 + 64) of head h (fp32) copied into an fp32 staging tile
/// (D floats a row) with cp.async: no registers held while they fly, rows
/// past S zero-filled. Each thread copies the same vectors convertStaged
/// then converts, so a thread waits only for its own copies.
template <int D>
__device__ __forceinline__ void stageTile(float *staging, const float *src,
                                          int b, int S, int64_t ld, int h, int r0) {
  constexpr int Per = kRows * D / 4 / kThreads;
#pragma unroll
  for (int u = 0; u < Per; ++u) {
    const int e = u * kThreads + threadIdx.x;
    const int r = e / (D / 4), c = (e % (D / 4)) * 4, i = r0 + r;
    const float *from =
        i < S ? src + (static_cast<int64_t>(b) * S + i) * ld + h * D + c : src;
    const unsigned to = static_cast<unsigned>(__cvta_generic_to_shared(staging + r * D + c));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(to),
                 "l"(from), "r"(i < S ? 16 : 0)
                 : "memory");
  }
}
__device__ __forceinline__ void commitStaged() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/// Rows [r0, r0 + Rows) of head h of a bf16 tensor (row (b, i) at
/// (b S + i) ld) copied by cp.async into a padded shared tile, rows past S
/// zero-filled: no registers held while they fly. 16-byte chunks: ld, the
/// tensor's first column and D multiples of 8 elements.
template <int D, int Rows, int Threads>
__device__ __forceinline__ void asyncTile(bf16 *dst, const bf16 *src, int b, int S,
                                          int64_t ld, int h, int r0) {
  constexpr int Chunks = Rows * D / 8;
  static_assert(Chunks % Threads == 0, "the tile does not split evenly");
#pragma unroll
  for (int u = 0; u < Chunks / Threads; ++u) {
    const int e = u * Threads + threadIdx.x;
    const int r = e / (D / 8), c = (e % (D / 8)) * 8, i = r0 + r;
    const bf16 *from = i < S ? src + (static_cast<int64_t>(b) * S + i) * ld + h * D + c : src;
    const unsigned to =
        static_cast<unsigned>(__cvta_generic_to_shared(dst + r * Lay<D>::Ld + c));
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(to), "l"(from),
                 "r"(i < S ? 16 : 0)
                 : "memory");
  }
}

/// The forward (kOut, kOutLse) for bf16 q, k, v (LLMRT_CUDA_ATTN_ASYNC):
/// the tiles come by cp.async into two buffers, the next key tile in
/// flight while this one's products run, instead of through registers.
/// Without the registers a tile held in flight, a block of 4 warps fits
/// in 168 registers a thread: Blocks = 3 blocks (12 warps) an SM instead
/// of 2, no spills (=1); or 4 in 128 registers, about 50 bytes spilled
/// (=2). RowBlocks = 2 (=3): each warp 32 queries (FlashAttention-2's
/// 128-query blocks), two independent row blocks that read the same K and
/// V tiles between barriers, at 2 blocks an SM. Dynamic shared memory: Q,
/// and K and V twice.
template <int D, int Mode, int Blocks, int RowBlocks>
__global__ void __launch_bounds__(kThreads, Blocks)
    attnFwdAsync(const bf16 *q, const bf16 *k, const bf16 *v, void *out, float *lseOut,
                 int S, int Hq, int Hkv, float scaleLog2, bool causal, unsigned h16,
                 int ldq, int ldk, int ldv) {
  constexpr int TE = Lay<D>::TileElems, QRows = 16 * kWarps * RowBlocks;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16 *Qs = reinterpret_cast<bf16 *>(smem);
  bf16 *Ks = Qs + QRows * Lay<D>::Ld, *Vs = Ks + 2 * TE;
  const int nq = gridDim.x;
  const int qt = causal ? nq - 1 - blockIdx.x : blockIdx.x;
  const int b = blockIdx.z, h = blockIdx.y, q0 = qt * QRows;
  const int hk = h / (Hq / Hkv);
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2;
  const int tiles = (S + kRows - 1) / kRows;
  const int nk = causal ? min(tiles, (q0 + QRows - 1) / kRows + 1) : tiles;
  asyncTile<D, QRows, kThreads>(Qs, q, b, S, ldq, h, q0);
  asyncTile<D, kRows, kThreads>(Ks, k, b, S, ldk, hk, 0);
  asyncTile<D, kRows, kThreads>(Vs, v, b, S, ldv, hk, 0);
  commitStaged();
  // Row block r of this warp: queries first[r] .. + 16 (row g: first[r] + g).
  unsigned qa[RowBlocks][D / 16][4];
  float o[RowBlocks][D / 8][4], m[RowBlocks][2], l[RowBlocks][2];
  int first[RowBlocks];
#pragma unroll
  for (int r = 0; r < RowBlocks; ++r) {
    fwdStart<D>(o[r], m[r], l[r]);
    first[r] = q0 + (r * kWarps + warp) * 16;
  }
  for (int kt = 0; kt < nk; ++kt) {
    const int cur = (kt & 1) * TE, k0 = kt * kRows;
    // The next tile into the other buffer, which the block finished
    // reading before the barrier that ended the previous iteration.
    if (kt + 1 < nk) {
      asyncTile<D, kRows, kThreads>(Ks + (TE - cur), k, b, S, ldk, hk, k0 + kRows);
      asyncTile<D, kRows, kThreads>(Vs + (TE - cur), v, b, S, ldv, hk, k0 + kRows);
    }
    commitStaged(); // empty on the last tile: the wait below is then for all
    asm volatile("cp.async.wait_group 1;\n" ::: "memory");
    __syncthreads(); // every thread's copies of this tile have landed
    if (kt == 0)
#pragma unroll
      for (int r = 0; r < RowBlocks; ++r)
        loadA<D>(qa[r], Qs, first[r] - q0, lane);
#pragma unroll
    for (int r = 0; r < RowBlocks; ++r) {
      // Masked: a tile past S, or (causal) one with a key past the row
      // block's first query.
      const bool mask = k0 + kRows > S || (causal && k0 + kRows - 1 > first[r]);
      fwdTile<D, true>(o[r], m[r], l[r], qa[r], Ks + cur, Vs + cur, mask, k0, first[r] + g,
                       S, causal, scaleLog2, lane);
    }
    __syncthreads(); // done with this buffer: the next iteration refills it
  }
#pragma unroll
  for (int r = 0; r < RowBlocks; ++r)
    fwdFinish<D, Mode, true>(o[r], m[r], l[r], first[r] + g, b, h, S, Hq, out, lseOut,
                             nullptr, nullptr, h16, lane);
}

/// Waits for this thread's staged copies, then rounds them to bf16 into
/// `dst` (ld Lay<D>::Ld).
template <int D>
__device__ __forceinline__ void convertStaged(bf16 *dst, const float *staging) {
  constexpr int Per = kRows * D / 4 / kThreads;
#pragma unroll
  for (int u = 0; u < Per; ++u) {
    const int e = u * kThreads + threadIdx.x;
    const int r = e / (D / 4), c = (e % (D / 4)) * 4;
    const float4 x = *reinterpret_cast<const float4 *>(staging + r * D + c);
    *reinterpret_cast<uint2 *>(dst + r * Lay<D>::Ld + c) =
        make_uint2(pack(x.x, x.y), pack(x.z, x.w));
  }
}

/// dk, dv of a block of 16 x Warps keys of kv head blockIdx.y (all the
/// query heads of its group), and their part of dq. Grid: (key tiles, Hkv, B); under
/// causal masking the first keys (the most queries) go first.
/// Warps = 8 (LLMRT_CUDA_ATTN_BWD8=1): blocks of 128 keys, each query
/// tile's Q and dO loaded once for twice the keys, and dQ's product split
/// between the warps by query rows and halves of the head dimension.
template <int D, bool Staged, bool Any16, int Warps = kWarps, int Async = 0>
__global__ void __launch_bounds__(32 * Warps)
    attnBwdMMA(const void *q, const void *k, const void *v,
               const void *dout, float *dq, void *dk, void *dv,
               const float *lseIn, const float *dIn, int S, int Hq, int Hkv,
               float scale, float scaleLog2, bool causal, unsigned h16,
               int ldq, int ldk, int ldv, int lddq, int lddk, int lddv) {
  static_assert(!(Staged && Any16), "the staged copies are fp32");
  static_assert(!(Staged && Warps != kWarps), "the staged copies are 4 warps'");
  static_assert(!Async || (Any16 && !Staged), "the asynchronous copies are of bf16 tiles");
  static_assert(Async == 0 || Async == 1, "Async: 0 or 1 (tiles)");
  constexpr int Ld = Lay<D>::Ld, TE = Lay<D>::TileElems;
  constexpr int Threads = 32 * Warps, KRows = 16 * Warps, KE = KRows * Ld;
  // dQ per warp: 16 query rows x DQ columns (4 warps: all of D; 8: half).
  constexpr int QWarps = kRows / 16, DQ = D * QWarps / Warps;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16 *Ks = reinterpret_cast<bf16 *>(smem);
  bf16 *Vs = Ks + KE, *Qs = Vs + KE, *dOs = Qs + TE;
  bf16 *dSs = dOs + TE; // dSᵀ: [key][query]
  float *lseS = reinterpret_cast<float *>(dSs + KE), *dS = lseS + kRows;
  // The next query tile's Q and dO, in flight while this one's products
  // run (Staged: fp32, D floats a row; Async: bf16 tiles, the second of
  // two buffers each).
  float *stQ = dS + kRows, *stdO = stQ + kRows * D;
  // Buffer n of Q at Qs + n qStep, of dO at dOs + n dOStep (no indexed
  // arrays of pointers: those would live in local memory).
  bf16 *const Q0 = Qs, *const dO0 = dOs;
  const ptrdiff_t qStep = reinterpret_cast<bf16 *>(dS + kRows) - Q0,
                  dOStep = reinterpret_cast<bf16 *>(dS + kRows) + TE - dO0;

  const int b = blockIdx.z, hk = blockIdx.y, jt = blockIdx.x, j0 = jt * KRows;
  const int group = Hq / Hkv;
  const int ldo = Hq * D; // dout is dense
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int nq = (S + kRows - 1) / kRows;
  // dQ: this warp's query rows and columns.
  const int qw = Warps == kWarps ? warp : warp % QWarps,
            dh = Warps == kWarps ? 0 : warp / QWarps;
  loadTile<D, Any16, KRows, Threads>(Ks, k, h16 & kK16, b, S, ldk, hk, j0);
  loadTile<D, Any16, KRows, Threads>(Vs, v, h16 & kV16, b, S, ldv, hk, j0);
  __syncthreads();
  unsigned ka[D / 16][4], va[D / 16][4];
  loadA<D>(ka, Ks, warp * 16, lane);
  loadA<D>(va, Vs, warp * 16, lane);
  float accK[D / 8][4], accV[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e)
      accK[n][e] = accV[n][e] = 0.0f;
  const int jRow = j0 + warp * 16 + g; // the key of row g

  // ldmatrix lanes for dQ's A (dS, stored transposed).
  const int aRow = (lane >> 4) * 8 + (lane & 7), aCol = ((lane >> 3) & 1) * 8;

  const int itFirst = !causal ? 0 : Warps == kWarps ? jt : j0 / kRows;
  if constexpr (Staged) {
    stageTile<D>(stQ, static_cast<const float *>(q), b, S, ldq, hk * group, itFirst * kRows);
    stageTile<D>(stdO, static_cast<const float *>(dout), b, S, ldo, hk * group,
                 itFirst * kRows);
    commitStaged();
  } else if constexpr (Async) {
    asyncTile<D, kRows, Threads>(Q0, static_cast<const bf16 *>(q), b, S, ldq, hk * group,
                                 itFirst * kRows);
    asyncTile<D, kRows, Threads>(dO0, static_cast<const bf16 *>(dout), b, S, ldo,
                                 hk * group, itFirst * kRows);
    commitStaged();
  }
  int buf = 0; // Async: the buffer of this (head, query tile) pair
  for (int h = hk * group; h < (hk + 1) * group; ++h) {
    for (int it = itFirst; it < nq; ++it) {
      const int i0 = it * kRows;
      // The next (head, query tile) pair (hn past the group: none).
      int hn = h, itn = it + 1;
      if (itn == nq) {
        ++hn;
        itn = itFirst;
      }
      const bool more = hn < (hk + 1) * group;
      if constexpr (Staged) {
        asm volatile("cp.async.wait_all;\n" ::: "memory");
        __syncthreads(); // the previous tile's products are done
        convertStaged<D>(Qs, stQ);
        convertStaged<D>(dOs, stdO);
        // The next pair's copies start now: this thread's staging
        // vectors are converted already.
        if (more) {
          stageTile<D>(stQ, static_cast<const float *>(q), b, S, ldq, hn, itn * kRows);
          stageTile<D>(stdO, static_cast<const float *>(dout), b, S, ldo, hn, itn * kRows);
        }
        commitStaged();
      } else if constexpr (Async) {
        // The next pair into the other buffers: the block read them last
        // (Q and dO) before the barrier in the middle of the previous
        // iteration.
        if (more) {
          asyncTile<D, kRows, Threads>(Q0 + (buf ^ 1) * qStep, static_cast<const bf16 *>(q),
                                       b, S, ldq, hn, itn * kRows);
          asyncTile<D, kRows, Threads>(dO0 + (buf ^ 1) * dOStep,
                                       static_cast<const bf16 *>(dout), b, S, ldo, hn,
                                       itn * kRows);
        }
        commitStaged(); // empty on the last pair: the wait is then for all
        asm volatile("cp.async.wait_group 1;\n" ::: "memory");
        __syncthreads(); // this pair's tiles landed; the previous products are done
        Qs = Q0 + buf * qStep;
        dOs = dO0 + buf * dOStep;
        buf ^= 1;
      } else {
        __syncthreads(); // the previous tile's products are done
        loadTile<D, Any16, kRows, Threads>(Qs, q, h16 & kQ16, b, S, ldq, h, i0);
        loadTile<D, Any16, kRows, Threads>(dOs, dout, h16 & kDO16, b, S, ldo, h, i0);
      }
      if (threadIdx.x < kRows) {
        const int i = i0 + threadIdx.x;
        const int64_t st = (static_cast<int64_t>(b) * Hq + h) * S + i;
        lseS[threadIdx.x] = i < S ? lseIn[st] : 0.0f;
        dS[threadIdx.x] = i < S ? dIn[st] : 0.0f;
      }
      __syncthreads();
      float s[8][4], dp[8][4];
      if constexpr (Async) { // the same products, B by ldmatrix
        productABtLdsm<D>(s, ka, Qs, lane);
        productABtLdsm<D>(dp, va, dOs, lane);
      } else {
        productABt<D>(s, ka, Qs, lane);  // Sᵀ: keys x queries
        productABt<D>(dp, va, dOs, lane); // dPᵀ
      }
      // Masked: a tile past S, or (causal) one before the block's last key
      // (the diagonal tile with 4 warps; the first two with 8).
      // Padding keys (past S, zero rows) too: exp2(-lse) alone could
      // overflow, and inf x 0 in the products would be NaN.
      const bool mask = i0 + kRows > S || j0 + KRows > S ||
                        (causal && (Warps == kWarps ? it == jt : i0 < j0 + KRows));
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int c = nt * 8 + 2 * t + (e & 1);
          float p = fastExp2(s[nt][e] * scaleLog2 - lseS[c]);
          if (mask) {
            const int i = i0 + c, j = jRow + (e >> 1) * 8;
            if (i >= S || j >= S || (causal && i < j))
              p = 0.0f;
          }
          s[nt][e] = p;
          dp[nt][e] = p * (dp[nt][e] - dS[c]);
        }
      productPB<D>(accV, s, dOs, lane); // dV += Pᵀ dO
      productPB<D>(accK, dp, Qs, lane); // dK += dSᵀ Q
      // dSᵀ to shared memory, for dQ = dS K (a warp per 16 queries).
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        bf16 *row = dSs + (warp * 16 + g) * Ld + nt * 8 + 2 * t;
        *reinterpret_cast<unsigned *>(row) = pack(dp[nt][0], dp[nt][1]);
        *reinterpret_cast<unsigned *>(row + 8 * Ld) = pack(dp[nt][2], dp[nt][3]);
      }
      __syncthreads();
      float accQ[DQ / 8][4];
#pragma unroll
      for (int n = 0; n < DQ / 8; ++n)
        accQ[n][0] = accQ[n][1] = accQ[n][2] = accQ[n][3] = 0.0f;
#pragma unroll
      for (int kc = 0; kc < KRows / 16; ++kc) {
        // A = dS[queries qw*16.., keys kc*16..]: matrix m holds queries
        // (m & 1) * 8 and keys (m >> 1) * 8 of it, stored [key][query].
        unsigned a[4];
        ldsm4t(a, dSs + (kc * 16 + aRow) * Ld + qw * 16 + aCol);
        productChunkB<D, DQ>(accQ, a, Ks + dh * DQ, kc, lane);
      }
      // dq += scale · accQ as 16-byte atomics: lanes t and t ^ 1 swap a
      // pair so that the even lane holds 4 adjacent columns of n-tile n and
      // the odd lane those of n-tile n + 1.
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int i = i0 + qw * 16 + g + r * 8;
        float *row = dq + (static_cast<int64_t>(b) * S + i) * lddq + h * D + dh * DQ;
        const bool odd = t & 1;
#pragma unroll
        for (int n = 0; n < DQ / 8; n += 2) {
          // The pair this lane gives away: the odd lane's n-tile n, the
          // even lane's n-tile n + 1.
          const float give0 = odd ? accQ[n][2 * r] : accQ[n + 1][2 * r];
          const float give1 = odd ? accQ[n][2 * r + 1] : accQ[n + 1][2 * r + 1];
          const float got0 = __shfl_xor_sync(0xffffffffu, give0, 1);
          const float got1 = __shfl_xor_sync(0xffffffffu, give1, 1);
          float4 v;
          if (!odd)
            v = make_float4(accQ[n][2 * r], accQ[n][2 * r + 1], got0, got1);
          else
            v = make_float4(got0, got1, accQ[n + 1][2 * r], accQ[n + 1][2 * r + 1]);
          v.x *= scale;
          v.y *= scale;
          v.z *= scale;
          v.w *= scale;
          const int col = (odd ? n + 1 : n) * 8 + 2 * (t & ~1);
          if (i < S)
            atomicAdd(reinterpret_cast<float4 *>(row + col), v);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    const int j = jRow + r * 8;
    if (j >= S)
      continue;
    const int64_t rowK = (static_cast<int64_t>(b) * S + j) * lddk + hk * D + 2 * t,
                  rowV = (static_cast<int64_t>(b) * S + j) * lddv + hk * D + 2 * t;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) {
      const float2 gk = make_float2(accK[n][2 * r] * scale, accK[n][2 * r + 1] * scale),
                   gv = make_float2(accV[n][2 * r], accV[n][2 * r + 1]);
      if (Any16 && (h16 & kDK16))
        *reinterpret_cast<__nv_bfloat162 *>(static_cast<bf16 *>(dk) + rowK + n * 8) =
            __floats2bfloat162_rn(gk.x, gk.y);
      else
        *reinterpret_cast<float2 *>(static_cast<float *>(dk) + rowK + n * 8) = gk;
      if (Any16 && (h16 & kDV16))
        *reinterpret_cast<__nv_bfloat162 *>(static_cast<bf16 *>(dv) + rowV + n * 8) =
            __floats2bfloat162_rn(gv.x, gv.y);
      else
        *reinterpret_cast<float2 *>(static_cast<float *>(dv) + rowV + n * 8) = gv;
    }
  }
}

/// The backward's row statistics from the forward's output and natural
/// log-sum-exp: D = rowsum(dO ∘ O) and lse in base 2 ([B, Hq, S] each). A
/// warp per (b, i, h) row.
template <int D>
__global__ void rowStatsK(const void *dout, const void *out, const float *lse,
                          float *lse2, float *dvec, int64_t rows, int S, int Hq,
                          unsigned h16) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) // rows = B S Hq, in the tensors' order (b, i, h)
    return;
  float sum = 0.0f;
  if (h16 & (kDO16 | kO16)) {
    // Two adjacent columns a lane (D = 64: one pair each).
#pragma unroll
    for (int c = 2 * lane; c < D; c += 64) {
      const float2 d = load2(dout, h16 & kDO16, row * D + c),
                   o = load2(out, h16 & kO16, row * D + c);
      sum += d.x * o.x + d.y * o.y;
    }
  } else {
    const float *d = static_cast<const float *>(dout) + row * D,
                *o = static_cast<const float *>(out) + row * D;
#pragma unroll
    for (int c = lane; c < D; c += 32)
      sum += d[c] * o[c];
  }
#pragma unroll
  for (int off = 16; off > 0; off >>= 1)
    sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (lane == 0) {
    const int64_t bi = row / Hq, h = row % Hq, b = bi / S, i = bi % S;
    const int64_t st = (b * Hq + h) * S + i;
    dvec[st] = sum;
    lse2[st] = lse[st] * 1.4426950408889634f; // log2(e)
  }
}

/// K, V, dSᵀ (KRows rows each), Q, dO (64), the rows' lse and D; the
/// staged fp32 Q and dO, or (async) the second bf16 Q and dO tiles.
template <int D>
constexpr size_t bwdSmem(bool staged, int warps = kWarps, bool async = false) {
  return (3 * 16 * warps + 2 * kRows) * Lay<D>::Ld * sizeof(bf16) +
         2 * kRows * sizeof(float) + (staged ? 2 * kRows * D * sizeof(float) : 0) +
         (async ? 2 * Lay<D>::TileElems * sizeof(bf16) : 0);
}

} // namespace

bool attentionMMASupport(int64_t D) { return D == kFlashAttentionHeadDim; }

void attentionFwdMMA(const void *q, const void *k, const void *v, void *out,
                     int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                     double scale, bool causal, cudaStream_t s, float *lse,
                     unsigned h16, bool wide, const int64_t *ld, int async) {
  if (D != 64)
    return;
  const float scaleLog2 = static_cast<float>(scale) * kLog2e;
  const int ldq = int(ld ? ld[0] : Hq * D), ldk = int(ld ? ld[1] : Hkv * D),
            ldv = int(ld ? ld[2] : Hkv * D);
  auto chunks = [](const void *p, int ld) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % 8 == 0;
  };
  if (async > 0 && (h16 & (kQ16 | kK16 | kV16)) == (kQ16 | kK16 | kV16) &&
      chunks(q, ldq) && chunks(k, ldk) && chunks(v, ldv)) {
    const int rowBlocks = async == 3 ? 2 : 1, qrows = 16 * kWarps * rowBlocks;
    dim3 grid(static_cast<unsigned>((S + qrows - 1) / qrows), static_cast<unsigned>(Hq),
              static_cast<unsigned>(B));
    auto kernel = async == 3   ? (lse ? attnFwdAsync<64, kOutLse, 2, 2> : attnFwdAsync<64, kOut, 2, 2>)
                  : async == 2 ? (lse ? attnFwdAsync<64, kOutLse, 4, 1> : attnFwdAsync<64, kOut, 4, 1>)
                               : (lse ? attnFwdAsync<64, kOutLse, 3, 1> : attnFwdAsync<64, kOut, 3, 1>);
    const int smem = (qrows + 4 * kRows) * Lay<64>::Ld * static_cast<int>(sizeof(bf16));
    // As much shared memory as the SM has (2 to 4 blocks of 45 or 54 KB);
    // where the device refuses, the register-staged kernel below.
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) ==
            cudaSuccess &&
        cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                             cudaSharedmemCarveoutMaxShared) == cudaSuccess) {
      kernel<<<grid, kThreads, smem, s>>>(static_cast<const bf16 *>(q),
                                          static_cast<const bf16 *>(k),
                                          static_cast<const bf16 *>(v), out, lse, int(S),
                                          int(Hq), int(Hkv), scaleLog2, causal, h16, ldq, ldk,
                                          ldv);
      return;
    }
    cudaGetLastError(); // clear it: the kernel below runs instead
  }
  const int warps = wide ? 8 : kWarps, qrows = 16 * warps;
  dim3 grid(static_cast<unsigned>((S + qrows - 1) / qrows),
            static_cast<unsigned>(Hq), static_cast<unsigned>(B));
  auto launch = [&](auto kernel, float *l) {
    kernel<<<grid, 32 * warps, 0, s>>>(q, k, v, nullptr, out, l, nullptr, int(S), int(Hq),
                                       int(Hkv), scaleLog2, causal, h16, ldq, ldk, ldv);
  };
  if (wide) {
    if (h16 && lse)
      launch(attnFwdMMA<64, kOutLse, true, 8>, lse);
    else if (h16)
      launch(attnFwdMMA<64, kOut, true, 8>, nullptr);
    else if (lse)
      launch(attnFwdMMA<64, kOutLse, false, 8>, lse);
    else
      launch(attnFwdMMA<64, kOut, false, 8>, nullptr);
  } else if (h16 && lse)
    launch(attnFwdMMA<64, kOutLse, true>, lse);
  else if (h16)
    launch(attnFwdMMA<64, kOut, true>, nullptr);
  else if (lse)
    launch(attnFwdMMA<64, kOutLse, false>, lse);
  else
    launch(attnFwdMMA<64, kOut, false>, nullptr);
}

void attentionBwdMMA(const void *q, const void *k, const void *v,
                     const void *dout, float *dq, void *dk, void *dv,
                     int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                     double scale, bool causal, void *workspace,
                     cudaStream_t s, bool staged, const void *out,
                     const float *fwdLse, unsigned h16, bool wide, const int64_t *ld,
                     int async) {
  if (D != 64)
    return;
  int lds[6];
  for (int t = 0; t < 6; ++t)
    lds[t] = int(ld ? ld[t] : (t % 3 == 0 ? Hq : Hkv) * D);
  float *lse = static_cast<float *>(workspace), *dvec = lse + B * Hq * S;
  const float scaleLog2 = static_cast<float>(scale) * kLog2e;
  const unsigned tiles = static_cast<unsigned>((S + kRows - 1) / kRows);
  if (out && fwdLse) {
    // The forward's statistics: no pass over the keys.
    const int64_t rows = B * S * Hq;
    rowStatsK<64><<<static_cast<unsigned>((rows + 7) / 8), 256, 0, s>>>(
        dout, out, fwdLse, lse, dvec, rows, int(S), int(Hq), h16);
  } else {
    (h16 ? attnFwdMMA<64, kStats, true> : attnFwdMMA<64, kStats, false>)
        <<<dim3(tiles, unsigned(Hq), unsigned(B)), kThreads, 0, s>>>(
            q, k, v, dout, nullptr, lse, dvec, int(S), int(Hq), int(Hkv), scaleLog2,
            causal, h16, lds[0], lds[1], lds[2]);
  }
  // dq's rows (a column slice: their columns only).
  if (lds[3] == Hq * D)
    cudaMemsetAsync(dq, 0, static_cast<size_t>(B * S * Hq * D) * sizeof(float), s);
  else
    cudaMemset2DAsync(dq, static_cast<size_t>(lds[3]) * sizeof(float), 0,
                      static_cast<size_t>(Hq * D) * sizeof(float),
                      static_cast<size_t>(B * S), s);
  auto launch = [&](auto kernel, bool staged, int warps, bool async = false) {
    const size_t smem = bwdSmem<64>(staged, warps, async);
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(smem)) != cudaSuccess) {
      cudaGetLastError(); // clear it: the caller falls back
      return false;
    }
    const unsigned keyBlocks = static_cast<unsigned>((S + 16 * warps - 1) / (16 * warps));
    kernel<<<dim3(keyBlocks, unsigned(Hkv), unsigned(B)), 32 * warps, smem, s>>>(
        q, k, v, dout, dq, dk, dv, lse, dvec, int(S), int(Hq), int(Hkv),
        static_cast<float>(scale), scaleLog2, causal, h16, lds[0], lds[1], lds[2],
        lds[3], lds[4], lds[5]);
    return true;
  };
  // bf16 Q and dO by cp.async, double-buffered (async; 16-byte copies:
  // strides and tensors at multiples of 8 elements, 16-byte addresses).
  auto chunks = [](const void *p, int ld) {
    return reinterpret_cast<uintptr_t>(p) % 16 == 0 && ld % 8 == 0;
  };
  if (async > 0 && (h16 & (kQ16 | kDO16)) == (kQ16 | kDO16) && chunks(q, lds[0]) &&
      chunks(dout, int(Hq * D)) &&
      (wide ? launch(attnBwdMMA<64, false, true, 8, 1>, false, 8, true)
            : launch(attnBwdMMA<64, false, true, kWarps, 1>, false, kWarps, true)))
    return;
  // 8 warps (72 KB of shared memory) where asked and the device allows,
  // else 4. The staged kernel needs 79 KB: where the device refuses it,
  // the unstaged one (46 KB). 16-bit inputs: unstaged.
  if (wide && (h16 ? launch(attnBwdMMA<64, false, true, 8>, false, 8)
                   : launch(attnBwdMMA<64, false, false, 8>, false, 8)))
    return;
  if (h16)
    launch(attnBwdMMA<64, false, true>, false, kWarps);
  else if (!staged || !launch(attnBwdMMA<64, true, false>, true, kWarps))
    launch(attnBwdMMA<64, false, false>, false, kWarps);
}

} // namespace llmrt::cuda
