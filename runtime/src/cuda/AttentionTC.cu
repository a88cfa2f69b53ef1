//===- AttentionTC.cu - flash attention on bf16 tensor cores --------------===//
//
// The same operations as the fp32 attention kernels of CudaKernels.cu, with
// every product on tensor cores (WMMA, bf16 inputs, fp32 accumulation):
// the bf16 counterpart of the GEMMs' CUBLAS_COMPUTE_32F_FAST_16BF. Storage
// stays fp32; tiles are rounded to bf16 as they enter shared memory.
//
// A block is 4 warps and 64 rows (16 per warp); key (or query) tiles of 64
// rows stream through shared memory. Each warp owns its 16 rows of every
// per-row buffer (scores, probabilities, output), so warps meet only at the
// tile loads.
//   forward:  S = Q Kᵀ, online softmax, O += P V (O rescaled in shared
//             memory, divided by the row sum at the end);
//   dq pass:  row statistics L (log-sum-exp) and D = rowsum(P ∘ dP), then
//             dQ += dS K with dS = P ∘ (dP - D) (accumulated in registers);
//   dk, dv:   per key block, over every query head of its group and every
//             query tile: Sᵀ = K Qᵀ, dPᵀ = V dOᵀ, dV += Pᵀ dO, dK += dSᵀ Q.
// Head dimensions 64 and 128 (others use the fp32 kernels).
//
//===----------------------------------------------------------------------===//
#include "llmrt/CudaKernels.h"

#include "TileLoad.cuh"

#include <cuda_bf16.h>
#include <mma.h>

#include <cmath>

namespace llmrt::cuda {
namespace {

using namespace nvcuda;
using bf16 = __nv_bfloat16;

constexpr int kRows = 64;   // rows per block (16 per warp)
constexpr int kTile = 64;   // rows per streamed tile
constexpr int kWarps = 4;
constexpr int kThreadsTC = 32 * kWarps;
constexpr int kLdS = kTile + 4; // fp32 score rows (a multiple of 4)
constexpr int kLdP = kTile + 8; // bf16 probability rows (a multiple of 8)

template <int D> struct TC {
  static constexpr int LdB = D + 8; // bf16 rows of Q, K, V, dO tiles
  static constexpr int LdO = D + 4; // fp32 output rows
};

using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragBt = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;
using FragB = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

/// Rows [r0, r0 + 64) of a [B, S, H, D] tensor (head h) into bf16 shared
/// memory; rows past S are zero.
template <int D>
__device__ void loadTile(bf16 *dst, const float *src, int b, int S, int H,
                         int h, int r0) {
  loadRows<kTile, D, kThreadsTC>(src, b, S, H, h, r0, [&](int r, int c, float4 x) {
    __nv_bfloat162 lo = __floats2bfloat162_rn(x.x, x.y);
    __nv_bfloat162 hi = __floats2bfloat162_rn(x.z, x.w);
    uint2 packed;
    packed.x = *reinterpret_cast<unsigned *>(&lo);
    packed.y = *reinterpret_cast<unsigned *>(&hi);
    *reinterpret_cast<uint2 *>(dst + r * TC<D>::LdB + c) = packed;
  });
}

/// Warp-level: out[16 x 64] (fp32, ld kLdS) = A[16 x D] · Bᵀ where B is
/// [64 x D] (both bf16, ld LdB).
template <int D>
__device__ void productABt(float *out, const bf16 *A, const bf16 *B) {
  FragA a;
  FragBt bt;
  FragC c;
#pragma unroll
  for (int n = 0; n < kTile / 16; ++n) {
    wmma::fill_fragment(c, 0.0f);
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      wmma::load_matrix_sync(a, A + kk * 16, TC<D>::LdB);
      wmma::load_matrix_sync(bt, B + n * 16 * TC<D>::LdB + kk * 16, TC<D>::LdB);
      wmma::mma_sync(c, a, bt, c);
    }
    wmma::store_matrix_sync(out + n * 16, c, kLdS, wmma::mem_row_major);
  }
}

/// Lane-pair level: scales this lane's half of query row i's scores (key
/// tile at k0) in place, -inf where masked (keys past S; after i when
/// causal), and returns the row's maximum over the tile (both halves).
__device__ float scaleMaskMax(float *row, int half, int k0, int i, int S,
                              float scale, bool causal) {
  float mx = -INFINITY;
  for (int c = half * 32; c < half * 32 + 32; ++c) {
    int j = k0 + c;
    bool masked = j >= S || (causal && j > i);
    float s = masked ? -INFINITY : row[c] * scale;
    row[c] = s;
    mx = fmaxf(mx, s);
  }
  return fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
}

template <int D>
__global__ void __launch_bounds__(kThreadsTC)
    attnFwdTC(const float *q, const float *k, const float *v, float *out, int S,
              int Hq, int Hkv, float scale, bool causal) {
  constexpr int LdB = TC<D>::LdB, LdO = TC<D>::LdO;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16 *Qs = reinterpret_cast<bf16 *>(smem);
  bf16 *Ks = Qs + kRows * LdB;
  bf16 *Vs = Ks + kTile * LdB;
  float *Ss = reinterpret_cast<float *>(Vs + kTile * LdB);
  bf16 *Ps = reinterpret_cast<bf16 *>(Ss + kRows * kLdS);
  float *Os = reinterpret_cast<float *>(Ps + kRows * kLdP);
  float *rowM = Os + kRows * LdO, *rowL = rowM + kRows;

  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * kRows;
  const int hk = h / (Hq / Hkv);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  loadTile<D>(Qs, q, b, S, Hq, h, q0);
  for (int e = threadIdx.x; e < kRows * LdO; e += blockDim.x)
    Os[e] = 0.0f;
  for (int e = threadIdx.x; e < kRows; e += blockDim.x) {
    rowM[e] = -INFINITY;
    rowL[e] = 0.0f;
  }
  // Lane pairs share a row: lane/2 is the row within the warp's 16, lane%2
  // the half of the tile's columns (and of the output's) it handles.
  const int r = warp * 16 + lane / 2, half = lane % 2;
  const int i = q0 + r;
  const int kEnd = causal ? min(S, q0 + kRows) : S;
  float *Sw = Ss + warp * 16 * kLdS;
  bf16 *Pw = Ps + warp * 16 * kLdP;
  float *Ow = Os + warp * 16 * LdO;
  for (int k0 = 0; k0 < kEnd; k0 += kTile) {
    __syncthreads();
    loadTile<D>(Ks, k, b, S, Hkv, hk, k0);
    loadTile<D>(Vs, v, b, S, Hkv, hk, k0);
    __syncthreads();
    productABt<D>(Sw, Qs + warp * 16 * LdB, Ks);
    __syncwarp();
    const float mx = scaleMaskMax(Ss + r * kLdS, half, k0, i, S, scale, causal);
    const float mOld = rowM[r];
    const float mNew = fmaxf(mOld, mx);
    const float base = mNew == -INFINITY ? 0.0f : mNew;
    float sum = 0.0f;
    for (int c = half * 32; c < half * 32 + 32; ++c) {
      float p = __expf(Ss[r * kLdS + c] - base);
      // Round first: the sum is of the probabilities the product uses.
      bf16 pb = __float2bfloat16(p);
      Pw[(lane / 2) * kLdP + c] = pb;
      sum += __bfloat162float(pb);
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    const float corr = __expf(mOld - base); // 0 while mOld is -inf
    for (int d = half * (D / 2); d < (half + 1) * (D / 2); ++d)
      Ow[(lane / 2) * LdO + d] *= corr;
    __syncwarp(); // rowM is read by both lanes of the pair above
    if (half == 0) {
      rowL[r] = rowL[r] * corr + sum;
      rowM[r] = mNew;
    }
    __syncwarp();
    FragA a;
    FragB bv;
    FragC c;
#pragma unroll
    for (int n = 0; n < D / 16; ++n) {
      wmma::load_matrix_sync(c, Ow + n * 16, LdO, wmma::mem_row_major);
#pragma unroll
      for (int kk = 0; kk < kTile / 16; ++kk) {
        wmma::load_matrix_sync(a, Pw + kk * 16, kLdP);
        wmma::load_matrix_sync(bv, Vs + kk * 16 * LdB + n * 16, LdB);
        wmma::mma_sync(c, a, bv, c);
      }
      wmma::store_matrix_sync(Ow + n * 16, c, LdO, wmma::mem_row_major);
    }
    __syncwarp();
  }
  if (i < S) {
    const float inv = 1.0f / rowL[r];
    float *orow = out + ((static_cast<int64_t>(b) * S + i) * Hq + h) * D;
    for (int d = half * (D / 2); d < (half + 1) * (D / 2); ++d)
      orow[d] = Ow[(lane / 2) * LdO + d] * inv;
  }
}

/// Warp-level: scales the warp's 16 x D accumulators, stages them in
/// `stage` (ld LdO) and copies this lane's half of its row to `row`
/// (nullptr: a row past S, not written).
template <int D>
__device__ void storeRows(FragC (&acc)[D / 16], float scale, float *stage,
                          float *row, int lane) {
  constexpr int LdO = TC<D>::LdO;
#pragma unroll
  for (int n = 0; n < D / 16; ++n) {
#pragma unroll
    for (int t = 0; t < acc[n].num_elements; ++t)
      acc[n].x[t] *= scale;
    wmma::store_matrix_sync(stage + n * 16, acc[n], LdO, wmma::mem_row_major);
  }
  __syncwarp();
  const int half = lane % 2;
  if (row)
    for (int d = half * (D / 2); d < (half + 1) * (D / 2); ++d)
      row[d] = stage[(lane / 2) * LdO + d];
  __syncwarp();
}

/// dq, and the row statistics (log-sum-exp, D) for the key pass.
template <int D>
__global__ void __launch_bounds__(kThreadsTC)
    attnBwdQTC(const float *q, const float *k, const float *v,
               const float *dout, float *dq, float *lseOut, float *dOut, int S,
               int Hq, int Hkv, float scale, bool causal) {
  constexpr int LdB = TC<D>::LdB, LdO = TC<D>::LdO;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16 *Qs = reinterpret_cast<bf16 *>(smem);
  bf16 *dOs = Qs + kRows * LdB;
  bf16 *Ks = dOs + kRows * LdB;
  bf16 *Vs = Ks + kTile * LdB;
  float *Ss = reinterpret_cast<float *>(Vs + kTile * LdB);
  float *dPs = Ss + kRows * kLdS;
  bf16 *dSs = reinterpret_cast<bf16 *>(dPs + kRows * kLdS);
  float *rowM = reinterpret_cast<float *>(dSs + kRows * kLdP);
  float *rowL = rowM + kRows, *rowPD = rowL + kRows;

  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * kRows;
  const int hk = h / (Hq / Hkv);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  loadTile<D>(Qs, q, b, S, Hq, h, q0);
  loadTile<D>(dOs, dout, b, S, Hq, h, q0);
  for (int e = threadIdx.x; e < kRows; e += blockDim.x) {
    rowM[e] = -INFINITY;
    rowL[e] = 0.0f;
    rowPD[e] = 0.0f;
  }
  const int r = warp * 16 + lane / 2, half = lane % 2;
  const int i = q0 + r;
  const int kEnd = causal ? min(S, q0 + kRows) : S;
  float *Sw = Ss + warp * 16 * kLdS, *dPw = dPs + warp * 16 * kLdS;
  bf16 *dSw = dSs + warp * 16 * kLdP;
  FragC acc[D / 16];
#pragma unroll
  for (int n = 0; n < D / 16; ++n)
    wmma::fill_fragment(acc[n], 0.0f);
  float lse = 0.0f, Dv = 0.0f;
  for (int pass = 0; pass < 2; ++pass) {
    for (int k0 = 0; k0 < kEnd; k0 += kTile) {
      __syncthreads();
      loadTile<D>(Ks, k, b, S, Hkv, hk, k0);
      loadTile<D>(Vs, v, b, S, Hkv, hk, k0);
      __syncthreads();
      productABt<D>(Sw, Qs + warp * 16 * LdB, Ks);
      productABt<D>(dPw, dOs + warp * 16 * LdB, Vs);
      __syncwarp();
      if (pass == 0) {
        const float mx = scaleMaskMax(Ss + r * kLdS, half, k0, i, S, scale, causal);
        const float mOld = rowM[r];
        const float mNew = fmaxf(mOld, mx);
        const float base = mNew == -INFINITY ? 0.0f : mNew;
        float sum = 0.0f, pd = 0.0f;
        for (int c = half * 32; c < half * 32 + 32; ++c) {
          float p = __expf(Ss[r * kLdS + c] - base);
          sum += p;
          pd += p * dPs[r * kLdS + c];
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        pd += __shfl_xor_sync(0xffffffffu, pd, 1);
        const float corr = __expf(mOld - base);
        __syncwarp();
        if (half == 0) {
          rowL[r] = rowL[r] * corr + sum;
          rowPD[r] = rowPD[r] * corr + pd;
          rowM[r] = mNew;
        }
        __syncwarp();
      } else {
        for (int c = half * 32; c < half * 32 + 32; ++c) {
          int j = k0 + c;
          bool masked = j >= S || (causal && j > i);
          float p = masked ? 0.0f : __expf(Ss[r * kLdS + c] * scale - lse);
          dSw[(lane / 2) * kLdP + c] =
              __float2bfloat16(p * (dPs[r * kLdS + c] - Dv));
        }
        __syncwarp();
        FragA a;
        FragB bk;
#pragma unroll
        for (int n = 0; n < D / 16; ++n)
#pragma unroll
          for (int kk = 0; kk < kTile / 16; ++kk) {
            wmma::load_matrix_sync(a, dSw + kk * 16, kLdP);
            wmma::load_matrix_sync(bk, Ks + kk * 16 * LdB + n * 16, LdB);
            wmma::mma_sync(acc[n], a, bk, acc[n]);
          }
      }
    }
    lse = rowM[r] + __logf(rowL[r]);
    Dv = rowPD[r] / rowL[r];
  }
  // dq = scale dS K, staged through shared memory (the score buffers) so
  // that rows past S are never written.
  __syncthreads();
  float *stage = Ss + warp * 16 * LdO;
  storeRows<D>(acc, scale, stage,
               i < S ? dq + ((static_cast<int64_t>(b) * S + i) * Hq + h) * D : nullptr,
               lane);
  if (i < S) {
    if (half == 0) {
      int64_t st = (static_cast<int64_t>(b) * Hq + h) * S + i;
      lseOut[st] = lse;
      dOut[st] = Dv;
    }
  }
}

/// dk, dv for a block of 64 keys of kv head blockIdx.y.
template <int D>
__global__ void __launch_bounds__(kThreadsTC)
    attnBwdKVTC(const float *q, const float *k, const float *v,
                const float *dout, float *dk, float *dv, const float *lseIn,
                const float *dIn, int S, int Hq, int Hkv, float scale,
                bool causal) {
  constexpr int LdB = TC<D>::LdB, LdO = TC<D>::LdO;
  extern __shared__ __align__(128) unsigned char smem[];
  bf16 *Ks = reinterpret_cast<bf16 *>(smem);
  bf16 *Vs = Ks + kRows * LdB;
  bf16 *Qs = Vs + kRows * LdB;
  bf16 *dOs = Qs + kTile * LdB;
  float *St = reinterpret_cast<float *>(dOs + kTile * LdB);
  float *dPt = St + kRows * kLdS;
  bf16 *Pt = reinterpret_cast<bf16 *>(dPt + kRows * kLdS);
  bf16 *dSt = Pt + kRows * kLdP;
  float *lseS = reinterpret_cast<float *>(dSt + kRows * kLdP);
  float *dS = lseS + kTile;

  const int b = blockIdx.z, hk = blockIdx.y, j0 = blockIdx.x * kRows;
  const int group = Hq / Hkv;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  loadTile<D>(Ks, k, b, S, Hkv, hk, j0);
  loadTile<D>(Vs, v, b, S, Hkv, hk, j0);
  const int r = warp * 16 + lane / 2, half = lane % 2;
  const int j = j0 + r;
  float *Sw = St + warp * 16 * kLdS, *dPw = dPt + warp * 16 * kLdS;
  bf16 *Pw = Pt + warp * 16 * kLdP, *dSw = dSt + warp * 16 * kLdP;
  FragC accK[D / 16], accV[D / 16];
#pragma unroll
  for (int n = 0; n < D / 16; ++n) {
    wmma::fill_fragment(accK[n], 0.0f);
    wmma::fill_fragment(accV[n], 0.0f);
  }
  const int iStart = causal ? j0 : 0;
  for (int h = hk * group; h < (hk + 1) * group; ++h) {
    for (int i0 = iStart; i0 < S; i0 += kTile) {
      __syncthreads();
      loadTile<D>(Qs, q, b, S, Hq, h, i0);
      loadTile<D>(dOs, dout, b, S, Hq, h, i0);
      for (int e = threadIdx.x; e < kTile; e += blockDim.x) {
        int i = i0 + e;
        int64_t st = (static_cast<int64_t>(b) * Hq + h) * S + i;
        lseS[e] = i < S ? lseIn[st] : 0.0f;
        dS[e] = i < S ? dIn[st] : 0.0f;
      }
      __syncthreads();
      productABt<D>(Sw, Ks + warp * 16 * LdB, Qs);
      productABt<D>(dPw, Vs + warp * 16 * LdB, dOs);
      __syncwarp();
      for (int c = half * 32; c < half * 32 + 32; ++c) {
        int i = i0 + c;
        bool masked = i >= S || (causal && i < j);
        float p = masked ? 0.0f : __expf(St[r * kLdS + c] * scale - lseS[c]);
        Pw[(lane / 2) * kLdP + c] = __float2bfloat16(p);
        dSw[(lane / 2) * kLdP + c] = __float2bfloat16(p * (dPt[r * kLdS + c] - dS[c]));
      }
      __syncwarp();
      FragA a;
      FragB bm;
#pragma unroll
      for (int n = 0; n < D / 16; ++n)
#pragma unroll
        for (int kk = 0; kk < kTile / 16; ++kk) {
          wmma::load_matrix_sync(a, Pw + kk * 16, kLdP);
          wmma::load_matrix_sync(bm, dOs + kk * 16 * LdB + n * 16, LdB);
          wmma::mma_sync(accV[n], a, bm, accV[n]);
          wmma::load_matrix_sync(a, dSw + kk * 16, kLdP);
          wmma::load_matrix_sync(bm, Qs + kk * 16 * LdB + n * 16, LdB);
          wmma::mma_sync(accK[n], a, bm, accK[n]);
        }
    }
  }
  // Stage through the score buffers: rows past S are never written.
  __syncthreads();
  float *stage = St + warp * 16 * LdO;
  const int64_t rowOff = ((static_cast<int64_t>(b) * S + j) * Hkv + hk) * D;
  storeRows<D>(accK, scale, stage, j < S ? dk + rowOff : nullptr, lane);
  storeRows<D>(accV, 1.0f, stage, j < S ? dv + rowOff : nullptr, lane);
}

template <int D> constexpr size_t fwdSmem() {
  return 3 * kTile * TC<D>::LdB * 2 + kRows * kLdS * 4 + kRows * kLdP * 2 +
         kRows * TC<D>::LdO * 4 + 2 * kRows * 4;
}
template <int D> constexpr size_t bwdQSmem() {
  return 4 * kTile * TC<D>::LdB * 2 + 2 * kRows * kLdS * 4 + kRows * kLdP * 2 +
         3 * kRows * 4;
}
template <int D> constexpr size_t bwdKVSmem() {
  return 4 * kTile * TC<D>::LdB * 2 + 2 * kRows * kLdS * 4 +
         2 * kRows * kLdP * 2 + 2 * kTile * 4;
}
// The dq and dk/dv results are staged in the two score buffers.
static_assert(2 * kLdS >= TC<128>::LdO, "staging does not fit");

template <int D>
void fwdTC(const float *q, const float *k, const float *v, float *out, int B,
           int S, int Hq, int Hkv, float scale, bool causal, cudaStream_t s) {
  constexpr size_t smem = fwdSmem<D>();
  cudaFuncSetAttribute(attnFwdTC<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(smem));
  dim3 grid((S + kRows - 1) / kRows, Hq, B);
  attnFwdTC<D><<<grid, kThreadsTC, smem, s>>>(q, k, v, out, S, Hq, Hkv, scale,
                                              causal);
}

template <int D>
void bwdTC(const float *q, const float *k, const float *v, const float *dout,
           float *dq, float *dk, float *dv, int B, int S, int Hq, int Hkv,
           float scale, bool causal, float *ws, cudaStream_t s) {
  float *lse = ws, *dvec = ws + static_cast<int64_t>(B) * Hq * S;
  constexpr size_t smemQ = bwdQSmem<D>(), smemKV = bwdKVSmem<D>();
  cudaFuncSetAttribute(attnBwdQTC<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(smemQ));
  cudaFuncSetAttribute(attnBwdKVTC<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                       static_cast<int>(smemKV));
  dim3 gq((S + kRows - 1) / kRows, Hq, B);
  attnBwdQTC<D><<<gq, kThreadsTC, smemQ, s>>>(q, k, v, dout, dq, lse, dvec, S,
                                              Hq, Hkv, scale, causal);
  dim3 gk((S + kRows - 1) / kRows, Hkv, B);
  attnBwdKVTC<D><<<gk, kThreadsTC, smemKV, s>>>(q, k, v, dout, dk, dv, lse,
                                                dvec, S, Hq, Hkv, scale, causal);
}

} // namespace

bool attentionTensorCoresSupport(int64_t D) { return D == 64 || D == 128; }

void attentionFwdTC(const float *q, const float *k, const float *v, float *out,
                    int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                    double scale, bool causal, cudaStream_t s) {
  if (D == 64)
    fwdTC<64>(q, k, v, out, int(B), int(S), int(Hq), int(Hkv), float(scale),
              causal, s);
  else if (D == 128)
    fwdTC<128>(q, k, v, out, int(B), int(S), int(Hq), int(Hkv), float(scale),
               causal, s);
}

void attentionBwdTC(const float *q, const float *k, const float *v,
                    const float *dout, float *dq, float *dk, float *dv,
                    int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                    double scale, bool causal, void *workspace,
                    cudaStream_t s) {
  float *ws = static_cast<float *>(workspace);
  if (D == 64)
    bwdTC<64>(q, k, v, dout, dq, dk, dv, int(B), int(S), int(Hq), int(Hkv),
              float(scale), causal, ws, s);
  else if (D == 128)
    bwdTC<128>(q, k, v, dout, dq, dk, dv, int(B), int(S), int(Hq), int(Hkv),
               float(scale), causal, ws, s);
}

} // namespace llmrt::cuda
