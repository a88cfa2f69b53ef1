//===- CudaKernels.cu - CUDA kernels of the runtime -----------------------===//
//
// See CudaKernels.h for the contract: every kernel mirrors the CPU kernel of
// the same name (CpuKernels.h), on fp32 storage.
//
//===----------------------------------------------------------------------===//
#include "llmrt/CudaKernels.h"
#include "llmrt/Store16.h"

#include "FastMath.cuh"
#include "TileLoad.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>

namespace llmrt::cuda {
namespace {

constexpr int kThreads = 256;

/// Blocks for a grid-stride loop over n elements (capped: each thread
/// walks several elements of a large tensor).
unsigned gridFor(int64_t n, int threads = kThreads) {
  int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(std::clamp<int64_t>(b, 1, 1 << 16));
}

/// A 2-D launch over a [rows, cols] index space: blockIdx.y and
/// threadIdx.x walk rows and columns, so that no thread divides a 64-bit
/// flat index (tens of instructions on a GPU).
dim3 grid2d(int64_t rows, int64_t cols, int threads = kThreads) {
  return dim3(static_cast<unsigned>(std::clamp<int64_t>((cols + threads - 1) / threads, 1, 1024)),
              static_cast<unsigned>(std::clamp<int64_t>(rows, 1, 65535)));
}
#define ROWS_COLS(r, c, rows, cols)                                            \
  for (int64_t r = blockIdx.y; r < (rows); r += gridDim.y)                     \
    for (int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; \
         c < (cols); c += static_cast<int64_t>(gridDim.x) * blockDim.x)

#define GRID_STRIDE(i, n)                                                      \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; \
       i < (n); i += static_cast<int64_t>(gridDim.x) * blockDim.x)

/// Stores of fp32 results as fp32 or as a GEMM's 16-bit operand, rounded
/// to nearest even as toBf16 / toFp16 round (bit for bit their copies).
__device__ __forceinline__ void put(float *p, float v) { *p = v; }
__device__ __forceinline__ void put(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void put(__half *p, float v) { *p = __float2half_rn(v); }
/// p[4 i .. 4 i + 3] = v (p + 4 i aligned to 4 elements).
__device__ __forceinline__ void put4(float *p, int64_t i, float4 v) {
  reinterpret_cast<float4 *>(p)[i] = v;
}
__device__ __forceinline__ void put4(__nv_bfloat16 *p, int64_t i, float4 v) {
  __nv_bfloat162 h[2] = {__floats2bfloat162_rn(v.x, v.y), __floats2bfloat162_rn(v.z, v.w)};
  reinterpret_cast<uint2 *>(p)[i] = *reinterpret_cast<const uint2 *>(h);
}
__device__ __forceinline__ void put4(__half *p, int64_t i, float4 v) {
  __half2 h[2] = {__floats2half2_rn(v.x, v.y), __floats2half2_rn(v.z, v.w)};
  reinterpret_cast<uint2 *>(p)[i] = *reinterpret_cast<const uint2 *>(h);
}
__device__ __forceinline__ float get(const float *p) { return *p; }
/// p[4 i .. 4 i + 3] as floats (p + 4 i aligned to 4 elements).
__device__ __forceinline__ float4 get4(const float *p, int64_t i) {
  return reinterpret_cast<const float4 *>(p)[i];
}
__device__ __forceinline__ float4 get4(const __nv_bfloat16 *p, int64_t i) {
  const uint2 u = reinterpret_cast<const uint2 *>(p)[i];
  const float2 a = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&u.x));
  const float2 b = __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&u.y));
  return make_float4(a.x, a.y, b.x, b.y);
}
__device__ __forceinline__ float4 get4(const __half *p, int64_t i) {
  const uint2 u = reinterpret_cast<const uint2 *>(p)[i];
  const float2 a = __half22float2(*reinterpret_cast<const __half2 *>(&u.x));
  const float2 b = __half22float2(*reinterpret_cast<const __half2 *>(&u.y));
  return make_float4(a.x, a.y, b.x, b.y);
}
/// Whether p is aligned for vectors of 4 elements of T.
template <typename T> __host__ __device__ bool aligned4(const T *p) {
  return reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) == 0;
}
__device__ __forceinline__ float get(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ float get(const __half *p) { return __half2float(*p); }

__device__ __forceinline__ float warpSum(float v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// Block-wide reductions (blockDim.x a multiple of 32, at most 1024); every
/// thread gets the result. `scratch` holds 32 values.
template <typename T, typename Op>
__device__ T blockReduce(T v, T *scratch, Op op) {
  const T identity = Op::template identity<T>();
  int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  int warps = blockDim.x / 32;
  for (int o = 16; o > 0; o >>= 1)
    v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads(); // scratch may still be read from a previous reduction
  if (lane == 0)
    scratch[warp] = v;
  __syncthreads();
  v = lane < warps ? scratch[lane] : identity;
  for (int o = 16; o > 0; o >>= 1)
    v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
struct SumOp {
  template <typename T> __device__ T operator()(T a, T b) const { return a + b; }
  template <typename T> __device__ static T identity() { return T(0); }
};
struct MaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
  template <typename T> __device__ static T identity() { return -INFINITY; }
};

// Embeddings -----------------------------------------------------------------

/// out[t, c] = table[ids[t], c], plus addend[(t C + c) % period] where
/// an addend is given (the position embedding's add, fused).
__global__ void embeddingFwdK(const int32_t *ids, const float *table, float *out, int64_t n,
                              int64_t C, const float *addend, int64_t period) {
  ROWS_COLS(t, c, n, C) {
    float v = table[static_cast<int64_t>(ids[t]) * C + c];
    if (addend)
      v += addend[(t * C + c) % period];
    out[t * C + c] = v;
  }
}
/// The same by 16-byte vectors: C4 and period4 count vectors.
__global__ void embeddingFwd4K(const int32_t *ids, const float4 *table, float4 *out, int64_t n,
                               int64_t C4, const float4 *addend, int64_t period4) {
  ROWS_COLS(t, c, n, C4) {
    float4 v = table[static_cast<int64_t>(ids[t]) * C4 + c];
    if (addend) {
      const float4 a = addend[(t * C4 + c) % period4];
      v = make_float4(v.x + a.x, v.y + a.y, v.z + a.z, v.w + a.w);
    }
    out[t * C4 + c] = v;
  }
}

__global__ void embeddingBwdK(const int32_t *ids, const float *dout,
                              float *dtable, int64_t n, int64_t C) {
  ROWS_COLS(t, c, n, C) {
    atomicAdd(dtable + static_cast<int64_t>(ids[t]) * C + c, dout[t * C + c]);
  }
}

__global__ void vocabEmbeddingFwdK(const int32_t *ids, const float *table,
                                   float *out, int64_t n, int64_t C,
                                   int64_t start, int64_t V) {
  ROWS_COLS(t, c, n, C) {
    int64_t row = static_cast<int64_t>(ids[t]) - start;
    out[t * C + c] = row >= 0 && row < V ? table[row * C + c] : 0.0f;
  }
}

__global__ void vocabEmbeddingBwdK(const int32_t *ids, const float *dout,
                                   float *dtable, int64_t n, int64_t C,
                                   int64_t start, int64_t V) {
  ROWS_COLS(t, c, n, C) {
    int64_t row = static_cast<int64_t>(ids[t]) - start;
    if (row >= 0 && row < V)
      atomicAdd(dtable + row * C + c, dout[t * C + c]);
  }
}

// Normalization --------------------------------------------------------------

template <typename OutT>
__global__ void layerNormFwdK(const float *x, const float *w, const float *b,
                              OutT *y, int64_t rows, int C, float eps) {
  int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (row >= rows)
    return;
  const float *xr = x + row * C;
  float s = 0;
  for (int j = lane; j < C; j += 32)
    s += xr[j];
  float mean = warpSum(s) / C;
  float v = 0;
  for (int j = lane; j < C; j += 32) {
    float d = xr[j] - mean;
    v += d * d;
  }
  float rstd = rsqrtf(warpSum(v) / C + eps);
  OutT *yr = y + row * C;
  for (int j = lane; j < C; j += 32)
    put(yr + j, (xr[j] - mean) * rstd * w[j] + b[j]);
}

/// The same with the row in registers, for C a multiple of 128 up to
/// 128 x MaxV: each lane holds MaxV float4s of the row (lane + 32 k),
/// read once with 16-byte loads, instead of three passes over it.
/// AddT (not void): the row is x + addend, written to `sum` as it is
/// formed (a residual add fused into the norm after it; each lane writes
/// the elements it read, so `sum` may be x itself).
template <int MaxV, typename OutT, typename AddT = void>
__global__ void layerNormFwdRegK(const float *x, const float *w, const float *b,
                                 OutT *y, int64_t rows, int C, float eps,
                                 const AddT *addend = nullptr, float *sum = nullptr) {
  const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
  const int lane = threadIdx.x % 32, nv = C / 128;
  if (row >= rows)
    return;
  const float *xr = x + row * C;
  float4 v[MaxV];
  float s = 0;
#pragma unroll
  for (int k = 0; k < MaxV; ++k)
    if (k < nv) {
      v[k] = get4(xr, lane + 32 * k);
      if constexpr (!std::is_void_v<AddT>) {
        const float4 d = get4(addend + row * C, lane + 32 * k);
        v[k] = make_float4(v[k].x + d.x, v[k].y + d.y, v[k].z + d.z, v[k].w + d.w);
      }
      s += (v[k].x + v[k].y) + (v[k].z + v[k].w);
    }
  // The sums after every load of the row: `sum` may be x or the addend,
  // and stores between would hold the later loads back.
  if constexpr (!std::is_void_v<AddT>) {
#pragma unroll
    for (int k = 0; k < MaxV; ++k)
      if (k < nv)
        put4(sum + row * C, lane + 32 * k, v[k]);
  }
  const float mean = warpSum(s) / C;
  float q = 0;
#pragma unroll
  for (int k = 0; k < MaxV; ++k)
    if (k < nv) {
      v[k].x -= mean;
      v[k].y -= mean;
      v[k].z -= mean;
      v[k].w -= mean;
      q += (v[k].x * v[k].x + v[k].y * v[k].y) + (v[k].z * v[k].z + v[k].w * v[k].w);
    }
  const float rstd = rsqrtf(warpSum(q) / C + eps);
  OutT *yr = y + row * C;
#pragma unroll
  for (int k = 0; k < MaxV; ++k)
    if (k < nv) {
      const float4 g = get4(w, lane + 32 * k), c = get4(b, lane + 32 * k);
      put4(yr, lane + 32 * k,
           make_float4(v[k].x * rstd * g.x + c.x, v[k].y * rstd * g.y + c.y,
                       v[k].z * rstd * g.z + c.z, v[k].w * rstd * g.w + c.w));
    }
}

/// The layer-norm backward kernels' per-block gradient sums: 2 C floats of
/// dynamic shared memory (dw, then db), zeroed before the rows ...
__device__ __forceinline__ void zeroBlockSums(float *sm, int C) {
  for (int j = threadIdx.x; j < 2 * C; j += blockDim.x)
    sm[j] = 0;
  __syncthreads();
}
/// ... and added to the (zeroed) outputs after them.
__device__ __forceinline__ void flushBlockSums(const float *sm, float *dw,
                                               float *db, int C) {
  __syncthreads();
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    atomicAdd(dw + j, sm[j]);
    atomicAdd(db + j, sm[C + j]);
  }
}

/// One warp per row (rows strided over the grid); dw, db summed in shared
/// memory per block, then added to the zeroed outputs.
template <typename DyT>
__global__ void layerNormBwdK(const float *x, const float *w, const DyT *dy,
                              float *dx, float *dw, float *db, int64_t rows,
                              int C, float eps, const float *addTo) {
  extern __shared__ float sm[];
  float *dwS = sm, *dbS = sm + C;
  zeroBlockSums(sm, C);
  int lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int64_t row = blockIdx.x * static_cast<int64_t>(warps) + threadIdx.x / 32;
       row < rows; row += static_cast<int64_t>(gridDim.x) * warps) {
    const float *xr = x + row * C;
    const DyT *dyr = dy + row * C;
    float s = 0;
    for (int j = lane; j < C; j += 32)
      s += xr[j];
    float mean = warpSum(s) / C;
    float v = 0;
    for (int j = lane; j < C; j += 32) {
      float d = xr[j] - mean;
      v += d * d;
    }
    float rstd = rsqrtf(warpSum(v) / C + eps);
    float sg = 0, sgx = 0;
    for (int j = lane; j < C; j += 32) {
      const float d = get(dyr + j);
      float xh = (xr[j] - mean) * rstd, g = d * w[j];
      sg += g;
      sgx += g * xh;
      atomicAdd(dwS + j, d * xh);
      atomicAdd(dbS + j, d);
    }
    float mg = warpSum(sg) / C, mgx = warpSum(sgx) / C;
    float *dxr = dx + row * C;
    const float *ar = addTo ? addTo + row * C : nullptr;
    for (int j = lane; j < C; j += 32) {
      float xh = (xr[j] - mean) * rstd, g = get(dyr + j) * w[j];
      dxr[j] = (ar ? ar[j] : 0.0f) + rstd * (g - mg - xh * mgx);
    }
  }
  flushBlockSums(sm, dw, db, C);
}

/// A warp's row of a layer norm's backward in registers: lane's columns
/// lane + 32 k of x (centered: x - mean) into xv and of dy into dv; returns
/// 1 / sqrt(var + eps).
template <int MaxCPL, typename DyT>
__device__ __forceinline__ float loadRowCentered(const float *xr, const DyT *dyr, int lane,
                                                 int cpl, int C, float eps,
                                                 float (&xv)[MaxCPL], float (&dv)[MaxCPL]) {
  float s = 0;
#pragma unroll
  for (int k = 0; k < MaxCPL; ++k)
    if (k < cpl) {
      xv[k] = xr[lane + 32 * k];
      dv[k] = get(dyr + lane + 32 * k);
      s += xv[k];
    }
  const float mean = warpSum(s) / C;
  float v = 0;
#pragma unroll
  for (int k = 0; k < MaxCPL; ++k)
    if (k < cpl) {
      xv[k] -= mean;
      v += xv[k] * xv[k];
    }
  return rsqrtf(warpSum(v) / C + eps);
}

/// The same with each lane's columns in registers, for C a multiple of 32
/// up to 32 x MaxCPL: a row of x and dy is read once, and the weight and
/// bias gradients build up in registers over the warp's rows and meet in
/// shared memory once per warp (not once per element and row).
template <int MaxCPL, typename DyT>
__global__ void layerNormBwdRegK(const float *x, const float *w, const DyT *dy,
                                 float *dx, float *dw, float *db, int64_t rows,
                                 int C, float eps, const float *addTo) {
  extern __shared__ float sm[];
  float *dwS = sm, *dbS = sm + C;
  zeroBlockSums(sm, C);
  const int lane = threadIdx.x % 32, warps = blockDim.x / 32, cpl = C / 32;
  float pw[MaxCPL], pb[MaxCPL], wr[MaxCPL];
#pragma unroll
  for (int k = 0; k < MaxCPL; ++k) {
    pw[k] = pb[k] = 0.0f;
    wr[k] = k < cpl ? w[lane + 32 * k] : 0.0f;
  }
  for (int64_t row = blockIdx.x * static_cast<int64_t>(warps) + threadIdx.x / 32;
       row < rows; row += static_cast<int64_t>(gridDim.x) * warps) {
    const float *xr = x + row * C;
    const DyT *dyr = dy + row * C;
    float xv[MaxCPL], dv[MaxCPL];
    const float rstd = loadRowCentered<MaxCPL>(xr, dyr, lane, cpl, C, eps, xv, dv);
    float sg = 0, sgx = 0;
#pragma unroll
    for (int k = 0; k < MaxCPL; ++k)
      if (k < cpl) {
        const float xh = xv[k] * rstd, g = dv[k] * wr[k];
        xv[k] = xh;
        sg += g;
        sgx += g * xh;
        pw[k] += dv[k] * xh;
        pb[k] += dv[k];
      }
    const float mg = warpSum(sg) / C, mgx = warpSum(sgx) / C;
    float *dxr = dx + row * C; // may be dy: its row is in registers
    // The addend (may be dx) read whole before any store: loads after a
    // store to a maybe-aliased row would wait for it one by one.
    float av[MaxCPL];
    const float *ar = addTo ? addTo + row * C : nullptr;
#pragma unroll
    for (int k = 0; k < MaxCPL; ++k)
      av[k] = ar && k < cpl ? ar[lane + 32 * k] : 0.0f;
#pragma unroll
    for (int k = 0; k < MaxCPL; ++k)
      if (k < cpl)
        dxr[lane + 32 * k] = av[k] + rstd * (dv[k] * wr[k] - mg - xv[k] * mgx);
  }
#pragma unroll
  for (int k = 0; k < MaxCPL; ++k)
    if (k < cpl) {
      atomicAdd(dwS + lane + 32 * k, pw[k]);
      atomicAdd(dbS + lane + 32 * k, pb[k]);
    }
  flushBlockSums(sm, dw, db, C);
}

/// 16 bytes from global to shared memory by cp.async (both 16-byte
/// aligned), in the thread's current group.
__device__ __forceinline__ void cpAsync16(void *dst, const void *src) {
  const auto to = static_cast<unsigned>(__cvta_generic_to_shared(dst));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(to), "l"(src) : "memory");
}
__device__ __forceinline__ void cpAsyncCommit() {
  asm volatile("cp.async.commit_group;\n" ::: "memory");
}
/// Waits until at most N of the thread's groups are in flight.
template <int N> __device__ __forceinline__ void cpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/// layerNormBwdRegK with each warp's rows staged in shared memory by
/// cp.async, kLnStages rows a warp in flight (LLMRT_CUDA_LN_BWD_ASYNC=1):
/// the register kernels hold a row's x, dy and addend in registers, so 8
/// to 12 rows an SM are in flight and the kernel waits on memory's latency
/// at about 2 TB/s (Nsight Compute on an H200: 41% of the bandwidth);
/// staged, 2 blocks of 4 warps an SM keep 24 rows (7.5 KB each for
/// GPT-2) in flight, and a warp reads its row from shared memory while
/// the next ones arrive. The same arithmetic as layerNormBwdRegK; the
/// weight is read from shared memory. For C a multiple of 32 up to 32 x
/// MaxCPL with x, dy and the addend 16-byte aligned (dx: any).
constexpr int kLnStages = 3, kLnWarps = 4;
template <int MaxCPL, typename DyT>
__global__ void __launch_bounds__(32 * kLnWarps)
    layerNormBwdAsyncK(const float *x, const float *w, const DyT *dy, float *dx, float *dw,
                       float *db, int64_t rows, int C, float eps, const float *addTo) {
  extern __shared__ __align__(16) unsigned char lnSmem[];
  float *wS = reinterpret_cast<float *>(lnSmem), *sums = wS + C; // w; dw, db block sums
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, cpl = C / 32;
  const int dyBytes = C * static_cast<int>(sizeof(DyT)),
            rowBytes = 4 * C + dyBytes + (addTo ? 4 * C : 0);
  unsigned char *stages = lnSmem + 12 * C + warp * kLnStages * rowBytes;
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    wS[j] = w[j];
    sums[j] = sums[C + j] = 0.0f;
  }
  __syncthreads();
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kLnWarps,
                first = static_cast<int64_t>(blockIdx.x) * kLnWarps + warp;
  // Row `row`'s x, dy and addend into stage s (16 bytes a copy, the warp's
  // lanes side by side); one group each, empty past the last row.
  auto issue = [&](int64_t row, int s) {
    if (row < rows) {
      unsigned char *to = stages + s * rowBytes;
      const auto *fx = reinterpret_cast<const unsigned char *>(x + row * C);
      const auto *fd = reinterpret_cast<const unsigned char *>(dy + row * C);
      for (int c = 16 * lane; c < 4 * C; c += 16 * 32)
        cpAsync16(to + c, fx + c);
      for (int c = 16 * lane; c < dyBytes; c += 16 * 32)
        cpAsync16(to + 4 * C + c, fd + c);
      if (addTo) {
        const auto *fa = reinterpret_cast<const unsigned char *>(addTo + row * C);
        for (int c = 16 * lane; c < 4 * C; c += 16 * 32)
          cpAsync16(to + 4 * C + dyBytes + c, fa + c);
      }
    }
    cpAsyncCommit();
  };
  for (int s = 0; s + 1 < kLnStages; ++s)
    issue(first + s * stride, s);
  float pw[MaxCPL], pb[MaxCPL];
#pragma unroll
  for (int k = 0; k < MaxCPL; ++k)
    pw[k] = pb[k] = 0.0f;
  int it = 0;
  for (int64_t row = first; row < rows; row += stride, ++it) {
    // The stage of the row before, which every lane has read (the
    // __syncwarp at the end of its iteration), takes the row S - 1 ahead.
    issue(row + (kLnStages - 1) * stride, (it + kLnStages - 1) % kLnStages);
    cpAsyncWait<kLnStages - 1>(); // this row's group has landed
    __syncwarp();
    const unsigned char *at = stages + (it % kLnStages) * rowBytes;
    const float *xs = reinterpret_cast<const float *>(at);
    const DyT *ds = reinterpret_cast<const DyT *>(at + 4 * C);
    const float *as = addTo ? reinterpret_cast<const float *>(at + 4 * C + dyBytes) : nullptr;
    float s = 0;
#pragma unroll
    for (int k = 0; k < MaxCPL; ++k)
      if (k < cpl)
        s += xs[lane + 32 * k];
    const float mean = warpSum(s) / C;
    float q = 0;
#pragma unroll
    for (int k = 0; k < MaxCPL; ++k)
      if (k < cpl) {
        const float d = xs[lane + 32 * k] - mean;
        q += d * d;
      }
    const float rstd = rsqrtf(warpSum(q) / C + eps);
    float sg = 0, sgx = 0;
#pragma unroll
    for (int k = 0; k < MaxCPL; ++k)
      if (k < cpl) {
        const int j = lane + 32 * k;
        const float xh = (xs[j] - mean) * rstd, dv = get(ds + j), g = dv * wS[j];
        sg += g;
        sgx += g * xh;
        pw[k] += dv * xh;
        pb[k] += dv;
      }
    const float mg = warpSum(sg) / C, mgx = warpSum(sgx) / C;
    float *dxr = dx + row * C;
#pragma unroll
    for (int k = 0; k < MaxCPL; ++k)
      if (k < cpl) {
        const int j = lane + 32 * k;
        const float xh = (xs[j] - mean) * rstd;
        dxr[j] = (as ? as[j] : 0.0f) + rstd * (get(ds + j) * wS[j] - mg - xh * mgx);
      }
    __syncwarp();
  }
  cpAsyncWait<0>(); // the empty groups past the last row
#pragma unroll
  for (int k = 0; k < MaxCPL; ++k)
    if (k < cpl) {
      atomicAdd(sums + lane + 32 * k, pw[k]);
      atomicAdd(sums + C + lane + 32 * k, pb[k]);
    }
  __syncthreads();
  for (int j = threadIdx.x; j < C; j += blockDim.x) {
    atomicAdd(dw + j, sums[j]);
    atomicAdd(db + j, sums[C + j]);
  }
}

template <typename OutT>
__global__ void rmsNormFwdK(const float *x, const float *w, OutT *y,
                            int64_t rows, int C, float eps) {
  int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x / 32) + threadIdx.x / 32;
  int lane = threadIdx.x % 32;
  if (row >= rows)
    return;
  const float *xr = x + row * C;
  float s = 0;
  for (int j = lane; j < C; j += 32)
    s += xr[j] * xr[j];
  float rstd = rsqrtf(warpSum(s) / C + eps);
  OutT *yr = y + row * C;
  for (int j = lane; j < C; j += 32)
    put(yr + j, xr[j] * rstd * w[j]);
}

__global__ void rmsNormBwdK(const float *x, const float *w, const float *dy,
                            float *dx, float *dw, int64_t rows, int C,
                            float eps) {
  extern __shared__ float sm[];
  for (int j = threadIdx.x; j < C; j += blockDim.x)
    sm[j] = 0;
  __syncthreads();
  int lane = threadIdx.x % 32, warps = blockDim.x / 32;
  for (int64_t row = blockIdx.x * static_cast<int64_t>(warps) + threadIdx.x / 32;
       row < rows; row += static_cast<int64_t>(gridDim.x) * warps) {
    const float *xr = x + row * C, *dyr = dy + row * C;
    float s = 0;
    for (int j = lane; j < C; j += 32)
      s += xr[j] * xr[j];
    float rstd = rsqrtf(warpSum(s) / C + eps);
    float sgx = 0;
    for (int j = lane; j < C; j += 32) {
      float xh = xr[j] * rstd;
      sgx += dyr[j] * w[j] * xh;
      atomicAdd(sm + j, dyr[j] * xh);
    }
    float mgx = warpSum(sgx) / C;
    float *dxr = dx + row * C;
    for (int j = lane; j < C; j += 32) {
      float xh = xr[j] * rstd;
      dxr[j] = rstd * (dyr[j] * w[j] - xh * mgx);
    }
  }
  __syncthreads();
  for (int j = threadIdx.x; j < C; j += blockDim.x)
    atomicAdd(dw + j, sm[j]);
}

/// Blocks for the norm backward kernels: enough to fill the GPU, few enough
/// that the per-block column sums stay cheap.
unsigned normBwdBlocks(int64_t rows) {
  return static_cast<unsigned>(std::clamp<int64_t>((rows + 7) / 8, 1, 528));
}

void setDynamicShared(const void *kernel, size_t bytes) {
  if (bytes > 48 * 1024)
    cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         static_cast<int>(bytes));
}

// Linear helpers and layout --------------------------------------------------

template <typename T>
__global__ void addBiasK(T *y, const float *bias, int64_t rows, int64_t C) {
  ROWS_COLS(r, c, rows, C) { put(y + r * C + c, get(y + r * C + c) + bias[c]); }
}

/// Column sums: threadIdx.x walks 32 adjacent columns (coalesced),
/// threadIdx.y rows; partial sums meet in shared memory, then one atomic
/// per column and block.
template <typename InT>
__global__ void sumRowsK(const InT *dy, float *db, int64_t rows, int64_t C) {
  __shared__ float part[8][33];
  int64_t c = blockIdx.x * 32 + threadIdx.x;
  float s = 0;
  if (c < C)
    for (int64_t r = blockIdx.y * 8 + threadIdx.y; r < rows; r += gridDim.y * 8)
      s += get(dy + r * C + c);
  part[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && c < C) {
    float t = 0;
    for (int k = 0; k < 8; ++k)
      t += part[k][threadIdx.x];
    atomicAdd(db + c, t);
  }
}

template <typename InT, typename OutT>
__global__ void copyColumnsK(const InT *src, int64_t srcCols, int64_t srcOff,
                             OutT *dst, int64_t dstCols, int64_t dstOff,
                             int64_t width, int64_t rows) {
  ROWS_COLS(r, j, rows, width) {
    put(dst + r * dstCols + dstOff + j, get(src + r * srcCols + srcOff + j));
  }
}

/// The same 4 elements at a time (every offset and width a multiple of 4,
/// both tensors aligned to 4 elements): `total` = rows x width4 vectors.
template <typename InT, typename OutT>
__global__ void copyColumns4K(const InT *src, int64_t srcCols4, int64_t srcOff4,
                              OutT *dst, int64_t dstCols4, int64_t dstOff4,
                              int64_t width4, int64_t total) {
  GRID_STRIDE(e, total) {
    const int64_t r = e / width4, j = e - r * width4;
    put4(dst, r * dstCols4 + dstOff4 + j, get4(src, r * srcCols4 + srcOff4 + j));
  }
}

__global__ void ropeK(const float *x, float *y, int64_t BS, int64_t S,
                      int64_t H, int64_t D, double theta, bool inverse) {
  const int d = static_cast<int>(D / 2);
  ROWS_COLS(bs, e, BS, H * d) {
    const int i = static_cast<int>(e) % d, h = static_cast<int>(e) / d;
    double p = static_cast<double>(bs % S);
    double a = p / pow(theta, static_cast<double>(2 * i) / static_cast<double>(D));
    float c = static_cast<float>(cos(a));
    float sn = static_cast<float>(inverse ? -sin(a) : sin(a));
    int64_t base = bs * H * D + h * D;
    float x0 = x[base + i], x1 = x[base + i + d];
    y[base + i] = x0 * c - x1 * sn;
    y[base + i + d] = x1 * c + x0 * sn;
  }
}

// Attention ------------------------------------------------------------------
//
// T threads share one row (query or key) of head dimension D; thread u of
// the T holds the dimensions u, u + T, u + 2T, ... (DT of them), so the T
// threads read adjacent shared-memory words of a broadcast row: no bank
// conflicts. Dot products are summed over the T threads with shuffles.

template <int D> struct AttnCfg {
  static constexpr int T = D >= 64 ? D / 32 : 1;
  static constexpr int DT = D / T;
  static constexpr int Rows = 64;                // rows per block
  static constexpr int Tile = D <= 64 ? 64 : 32; // rows per shared tile
  static constexpr int Threads = Rows * T;
};

/// Rows [r0, r0 + Tile) of head h of two [B, S, H, D] tensors (k and v, or
/// q and dO) into the shared tiles `x` and `y`.
template <typename Cfg, int D>
__device__ __forceinline__ void loadPair(float (&x)[Cfg::Tile][D],
                                         float (&y)[Cfg::Tile][D],
                                         const float *xs, const float *ys, int b,
                                         int S, int H, int h, int r0) {
  loadRows<Cfg::Tile, D, Cfg::Threads>(xs, b, S, H, h, r0, [&](int r, int c, float4 v) {
    *reinterpret_cast<float4 *>(&x[r][c]) = v;
  });
  loadRows<Cfg::Tile, D, Cfg::Threads>(ys, b, S, H, h, r0, [&](int r, int c, float4 v) {
    *reinterpret_cast<float4 *>(&y[r][c]) = v;
  });
}

template <int T> __device__ __forceinline__ float groupSum(float v) {
  for (int o = 1; o < T; o <<= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// out = softmax(q k^T scale + mask) v, online over key tiles.
template <int D>
__global__ void __launch_bounds__(AttnCfg<D>::Threads)
    attnFwdK(const float *q, const float *k, const float *v, float *out, int S,
             int Hq, int Hkv, float scale, bool causal) {
  using Cfg = AttnCfg<D>;
  constexpr int T = Cfg::T, DT = Cfg::DT, Tile = Cfg::Tile;
  __shared__ __align__(16) float ks[Tile][D];
  __shared__ __align__(16) float vs[Tile][D];
  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * Cfg::Rows;
  const int hk = h / (Hq / Hkv);
  const int row = threadIdx.x / T, u = threadIdx.x % T;
  const int i = q0 + row;
  const bool valid = i < S;
  const int ic = valid ? i : S - 1;
  const float *qr = q + ((static_cast<int64_t>(b) * S + ic) * Hq + h) * D;
  float qv[DT], acc[DT];
#pragma unroll
  for (int d = 0; d < DT; ++d) {
    qv[d] = qr[d * T + u] * scale;
    acc[d] = 0;
  }
  float m = -INFINITY, l = 0;
  const int kEnd = causal ? min(S, q0 + Cfg::Rows) : S;
  for (int k0 = 0; k0 < kEnd; k0 += Tile) {
    __syncthreads();
    loadPair<Cfg>(ks, vs, k, v, b, S, Hkv, hk, k0);
    __syncthreads();
    const int jn = min(Tile, kEnd - k0);
    for (int jj = 0; jj < jn; ++jj) {
      float s = 0;
#pragma unroll
      for (int d = 0; d < DT; ++d)
        s += qv[d] * ks[jj][d * T + u];
      s = groupSum<T>(s);
      if (causal && k0 + jj > ic)
        continue;
      float mNew = fmaxf(m, s);
      float c = __expf(m - mNew), p = __expf(s - mNew);
      l = l * c + p;
#pragma unroll
      for (int d = 0; d < DT; ++d)
        acc[d] = acc[d] * c + p * vs[jj][d * T + u];
      m = mNew;
    }
  }
  if (valid) {
    float inv = 1.0f / l;
    float *orow = out + ((static_cast<int64_t>(b) * S + i) * Hq + h) * D;
#pragma unroll
    for (int d = 0; d < DT; ++d)
      orow[d * T + u] = acc[d] * inv;
  }
}

/// Per query row: the log-sum-exp L and D = sum_j P_ij dP_ij (dP = dO v^T),
/// stored for the key pass, then dq = scale sum_j P_ij (dP_ij - D) k_j.
template <int D>
__global__ void __launch_bounds__(AttnCfg<D>::Threads)
    attnBwdQK(const float *q, const float *k, const float *v, const float *dout,
              float *dq, float *lseOut, float *dOut, int S, int Hq, int Hkv,
              float scale, bool causal) {
  using Cfg = AttnCfg<D>;
  constexpr int T = Cfg::T, DT = Cfg::DT, Tile = Cfg::Tile;
  __shared__ __align__(16) float ks[Tile][D];
  __shared__ __align__(16) float vs[Tile][D];
  const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * Cfg::Rows;
  const int hk = h / (Hq / Hkv);
  const int row = threadIdx.x / T, u = threadIdx.x % T;
  const int i = q0 + row;
  const bool valid = i < S;
  const int ic = valid ? i : S - 1;
  const int64_t rowOff = ((static_cast<int64_t>(b) * S + ic) * Hq + h) * D;
  float qv[DT], dov[DT], dqv[DT];
#pragma unroll
  for (int d = 0; d < DT; ++d) {
    qv[d] = q[rowOff + d * T + u] * scale;
    dov[d] = dout[rowOff + d * T + u];
    dqv[d] = 0;
  }
  const int kEnd = causal ? min(S, q0 + Cfg::Rows) : S;
  float m = -INFINITY, l = 0, pd = 0, lse = 0, Dv = 0;
  for (int pass = 0; pass < 2; ++pass) {
    for (int k0 = 0; k0 < kEnd; k0 += Tile) {
      __syncthreads();
      loadPair<Cfg>(ks, vs, k, v, b, S, Hkv, hk, k0);
      __syncthreads();
      const int jn = min(Tile, kEnd - k0);
      for (int jj = 0; jj < jn; ++jj) {
        float s = 0, dp = 0;
#pragma unroll
        for (int d = 0; d < DT; ++d) {
          s += qv[d] * ks[jj][d * T + u];
          dp += dov[d] * vs[jj][d * T + u];
        }
        s = groupSum<T>(s);
        dp = groupSum<T>(dp);
        if (causal && k0 + jj > ic)
          continue;
        if (pass == 0) {
          float mNew = fmaxf(m, s);
          float c = __expf(m - mNew), p = __expf(s - mNew);
          l = l * c + p;
          pd = pd * c + p * dp;
          m = mNew;
        } else {
          float ds = __expf(s - lse) * (dp - Dv);
#pragma unroll
          for (int d = 0; d < DT; ++d)
            dqv[d] += ds * ks[jj][d * T + u];
        }
      }
    }
    lse = m + __logf(l);
    Dv = pd / l;
  }
  if (valid) {
    int64_t off = rowOff;
#pragma unroll
    for (int d = 0; d < DT; ++d)
      dq[off + d * T + u] = dqv[d] * scale;
    if (u == 0) {
      int64_t st = (static_cast<int64_t>(b) * Hq + h) * S + i;
      lseOut[st] = lse;
      dOut[st] = Dv;
    }
  }
}

/// Per key row j of kv head hk: over every query head of its group and
/// every query i (i >= j when causal), dv_j += P_ij dO_i and
/// dk_j += P_ij (dP_ij - D_i) q_i scale.
template <int D>
__global__ void __launch_bounds__(AttnCfg<D>::Threads)
    attnBwdKV(const float *q, const float *k, const float *v, const float *dout,
              float *dk, float *dv, const float *lseIn, const float *dIn,
              int S, int Hq, int Hkv, float scale, bool causal) {
  using Cfg = AttnCfg<D>;
  constexpr int T = Cfg::T, DT = Cfg::DT, Tile = Cfg::Tile;
  __shared__ __align__(16) float qs[Tile][D];
  __shared__ __align__(16) float dos[Tile][D];
  __shared__ float ls[Tile], ds_[Tile];
  const int b = blockIdx.z, hk = blockIdx.y, j0 = blockIdx.x * Cfg::Rows;
  const int group = Hq / Hkv;
  const int row = threadIdx.x / T, u = threadIdx.x % T;
  const int j = j0 + row;
  const bool valid = j < S;
  const int jc = valid ? j : S - 1;
  const int64_t rowOff = ((static_cast<int64_t>(b) * S + jc) * Hkv + hk) * D;
  float kv[DT], vv[DT], dkv[DT], dvv[DT];
#pragma unroll
  for (int d = 0; d < DT; ++d) {
    kv[d] = k[rowOff + d * T + u] * scale;
    vv[d] = v[rowOff + d * T + u];
    dkv[d] = 0;
    dvv[d] = 0;
  }
  const int qStart = causal ? (j0 / Tile) * Tile : 0;
  for (int h = hk * group; h < (hk + 1) * group; ++h) {
    for (int i0 = qStart; i0 < S; i0 += Tile) {
      __syncthreads();
      loadPair<Cfg>(qs, dos, q, dout, b, S, Hq, h, i0);
      for (int e = threadIdx.x; e < Tile; e += blockDim.x) {
        int i = i0 + e;
        int64_t st = (static_cast<int64_t>(b) * Hq + h) * S + i;
        ls[e] = i < S ? lseIn[st] : 0.0f;
        ds_[e] = i < S ? dIn[st] : 0.0f;
      }
      __syncthreads();
      for (int ii = 0; ii < Tile; ++ii) {
        const int i = i0 + ii;
        float s = 0, dp = 0;
#pragma unroll
        for (int d = 0; d < DT; ++d) {
          s += qs[ii][d * T + u] * kv[d];
          dp += dos[ii][d * T + u] * vv[d];
        }
        s = groupSum<T>(s);
        dp = groupSum<T>(dp);
        if (i >= S || (causal && i < jc))
          continue;
        float p = __expf(s - ls[ii]);
        float dsc = p * (dp - ds_[ii]);
#pragma unroll
        for (int d = 0; d < DT; ++d) {
          dvv[d] += p * dos[ii][d * T + u];
          dkv[d] += dsc * qs[ii][d * T + u];
        }
      }
    }
  }
  if (valid) {
#pragma unroll
    for (int d = 0; d < DT; ++d) {
      dk[rowOff + d * T + u] = dkv[d] * scale;
      dv[rowOff + d * T + u] = dvv[d];
    }
  }
}

template <int D>
void attnFwdLaunch(const float *q, const float *k, const float *v, float *out,
                   int B, int S, int Hq, int Hkv, float scale, bool causal,
                   cudaStream_t s) {
  using Cfg = AttnCfg<D>;
  dim3 grid((S + Cfg::Rows - 1) / Cfg::Rows, Hq, B);
  attnFwdK<D><<<grid, Cfg::Threads, 0, s>>>(q, k, v, out, S, Hq, Hkv, scale,
                                             causal);
}

template <int D>
void attnBwdLaunch(const float *q, const float *k, const float *v,
                   const float *dout, float *dq, float *dk, float *dv, int B,
                   int S, int Hq, int Hkv, float scale, bool causal, float *ws,
                   cudaStream_t s) {
  using Cfg = AttnCfg<D>;
  float *lse = ws, *dvec = ws + static_cast<int64_t>(B) * Hq * S;
  dim3 gq((S + Cfg::Rows - 1) / Cfg::Rows, Hq, B);
  attnBwdQK<D><<<gq, Cfg::Threads, 0, s>>>(q, k, v, dout, dq, lse, dvec, S,
                                            Hq, Hkv, scale, causal);
  dim3 gk((S + Cfg::Rows - 1) / Cfg::Rows, Hkv, B);
  attnBwdKV<D><<<gk, Cfg::Threads, 0, s>>>(q, k, v, dout, dk, dv, lse, dvec,
                                            S, Hq, Hkv, scale, causal);
}

// Elementwise ----------------------------------------------------------------

constexpr float kGeluBeta = 0.7978845608028654f; // sqrt(2 / pi)
constexpr float kGeluKappa = 0.044715f;

__device__ __forceinline__ float sigmoid2z(float x) {
  float z = kGeluBeta * (x + kGeluKappa * x * x * x);
  return 1.0f / (1.0f + expf(-2.0f * z));
}

struct GeluF {
  __device__ float operator()(float x) const { return x * sigmoid2z(x); }
};
struct GeluG { // (x, dy) -> dx
  __device__ float operator()(float x, float dy) const {
    float s = sigmoid2z(x);
    float dz = kGeluBeta * (1.0f + 3.0f * kGeluKappa * x * x);
    return dy * (s + 2.0f * x * s * (1.0f - s) * dz);
  }
};
struct SiluF {
  __device__ float operator()(float x) const { return x / (1.0f + expf(-x)); }
};
struct SiluG {
  __device__ float operator()(float x, float dy) const {
    float s = 1.0f / (1.0f + expf(-x));
    return dy * s * (1.0f + x * (1.0f - s));
  }
};
struct AddF {
  __device__ float operator()(float a, float b) const { return a + b; }
};
struct MulF {
  __device__ float operator()(float a, float b) const { return a * b; }
};

/// y = op(x) elementwise; `vec`: x and y 16-byte aligned, so that the
/// first n / 4 * 4 elements go as float4 (memory-bound kernels reach the
/// bandwidth only with 16-byte accesses). y may alias x.
template <typename Op, typename InT, typename OutT>
__global__ void map1K(const InT *x, OutT *y, int64_t n, bool vec, Op op) {
  int64_t done = 0;
  if (vec) {
    GRID_STRIDE(i, n / 4) {
      float4 a = get4(x, i);
      put4(y, i, make_float4(op(a.x), op(a.y), op(a.z), op(a.w)));
    }
    done = n / 4 * 4;
  }
  for (int64_t i = done + blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    put(y + i, op(get(x + i)));
}
/// y = op(a, b) elementwise, likewise.
template <typename Op, typename InA, typename InB, typename OutT>
__global__ void map2K(const InA *a, const InB *b, OutT *y, int64_t n, bool vec,
                      Op op) {
  int64_t done = 0;
  if (vec) {
    GRID_STRIDE(i, n / 4) {
      float4 u = get4(a, i);
      float4 v = get4(b, i);
      put4(y, i, make_float4(op(u.x, v.x), op(u.y, v.y), op(u.z, v.z), op(u.w, v.w)));
    }
    done = n / 4 * 4;
  }
  for (int64_t i = done + blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
       i < n; i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    put(y + i, op(get(a + i), get(b + i)));
}
/// y = a op b, b broadcast over the rows of a [n / nb, nb] view.
__global__ void addK(const float *a, const float *b, float *y, int64_t rows,
                     int64_t nb) {
  ROWS_COLS(r, c, rows, nb) { y[r * nb + c] = a[r * nb + c] + b[c]; }
}
__global__ void mulK(const float *a, const float *b, float *y, int64_t rows,
                     int64_t nb) {
  ROWS_COLS(r, c, rows, nb) { y[r * nb + c] = a[r * nb + c] * b[c]; }
}
__global__ void scaleK(const float *x, float factor, float *y, int64_t n) {
  GRID_STRIDE(i, n) { y[i] = x[i] * factor; }
}

// Loss -----------------------------------------------------------------------

/// The online softmax's state over a set of logits: their maximum m and
/// the sum s of exp(x - m). An empty set is (-inf, 0).
struct MaxSum {
  float m, s;
};

/// The state of the union of two disjoint sets (Milakov and Gimelshein's
/// merge): m = max(m1, m2), s = s1 exp(m1 - m) + s2 exp(m2 - m).
__device__ __forceinline__ MaxSum mergeMaxSum(MaxSum a, MaxSum b) {
  float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) // both empty (exp(-inf - -inf) would be NaN)
    return {m, 0.0f};
  return {m, a.s * expf(a.m - m) + b.s * expf(b.m - m)};
}

/// Adds logit x to the state: one exponential per element (the running
/// sum is rescaled only when the maximum grows).
__device__ __forceinline__ void pushMaxSum(MaxSum &st, float x) {
  if (x > st.m) {
    st.s = st.s * expf(st.m - x) + 1.0f;
    st.m = x;
  } else {
    st.s += expf(x - st.m);
  }
}

/// mergeMaxSum in base 2 (m a maximum of x log2(e), s a sum of 2^(x
/// log2(e) - m)), by fastExp2.
__device__ __forceinline__ MaxSum mergeMaxSum2(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY)
    return {m, 0.0f};
  return {m, a.s * fastExp2(a.m - m) + b.s * fastExp2(b.m - m)};
}

/// Every thread's (m, s) merged over the block (warp shuffles, then one
/// value per warp in `scratch`); every thread gets the result. Starts and
/// ends with a barrier. Base2: the states are mergeMaxSum2's.
template <bool Base2 = false>
__device__ MaxSum blockMergeMaxSum(MaxSum st, MaxSum *scratch) {
  auto merge = [](MaxSum a, MaxSum b) { return Base2 ? mergeMaxSum2(a, b) : mergeMaxSum(a, b); };
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, st.m, o),
                 __shfl_xor_sync(0xffffffffu, st.s, o)};
    st = merge(st, other);
  }
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32,
            warps = blockDim.x / 32;
  __syncthreads(); // scratch may still be read from a previous reduction
  if (lane == 0)
    scratch[warp] = st;
  __syncthreads();
  st = lane < warps ? scratch[lane] : MaxSum{-INFINITY, 0.0f};
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum other{__shfl_xor_sync(0xffffffffu, st.m, o),
                 __shfl_xor_sync(0xffffffffu, st.s, o)};
    st = merge(st, other);
  }
  return st;
}

/// Block level, one pass: the maximum of row x[0, valid) (of a row of V)
/// and the sum of exp(x - max), each thread keeping its own (m, s) and the
/// block merging them (warp shuffles, then one value per warp in
/// `scratch`). float4 loads where V % 4 == 0 and the row is 16-byte
/// aligned; every thread gets the result.
template <typename T>
__device__ MaxSum rowMaxSumExp(const T *x, int64_t V, int64_t valid,
                               MaxSum *scratch) {
  MaxSum st{-INFINITY, 0.0f};
  int64_t head = 0;
  if (V % 4 == 0 && aligned4(x)) {
    const int64_t n4 = valid / 4;
    for (int64_t j = threadIdx.x; j < n4; j += blockDim.x) {
      float4 v = get4(x, j);
      pushMaxSum(st, v.x);
      pushMaxSum(st, v.y);
      pushMaxSum(st, v.z);
      pushMaxSum(st, v.w);
    }
    head = 4 * n4;
  }
  for (int64_t j = head + threadIdx.x; j < valid; j += blockDim.x)
    pushMaxSum(st, get(x + j));
  return blockMergeMaxSum(st, scratch);
}

/// One block per row: loss_r = logsumexp(x_r[0, valid)) - x_r[t_r]. The
/// logits are read once.
template <typename T>
__global__ void crossEntropyRowsK(const T *logits, const int32_t *targets,
                                  float *rowLoss, int64_t V, int64_t valid,
                                  float2 *rowStats) {
  __shared__ MaxSum scratch[32];
  const int64_t r = blockIdx.x;
  const T *x = logits + r * V;
  MaxSum st = rowMaxSumExp(x, V, valid, scratch);
  if (threadIdx.x == 0) {
    rowLoss[r] = logf(st.s) + st.m - get(x + targets[r]);
    if (rowStats) // kept for the backward
      rowStats[r] = make_float2(st.m, st.s);
  }
}

/// *loss = mean of rowLoss (one block, summed in double).
__global__ void meanK(const float *rowLoss, float *loss, int64_t rows) {
  __shared__ double scratch[32];
  double s = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x)
    s += rowLoss[r];
  s = blockReduce(s, scratch, SumOp());
  if (threadIdx.x == 0)
    *loss = static_cast<float>(s / rows);
}

/// One block per row: dx = (softmax over [0, valid) - onehot) * invRows,
/// zero at and past `valid`. The logits are read twice: the row's
/// statistics, then the gradient.
template <typename InT, typename OutT>
__global__ void crossEntropyBwdK(const InT *logits, const int32_t *targets,
                                 OutT *dlogits, int64_t V, int64_t valid,
                                 float invRows, const float2 *rowStats,
                                 float *rowLoss) {
  __shared__ MaxSum scratch[32];
  const int64_t r = blockIdx.x;
  const InT *x = logits + r * V;
  // The forward's statistics of the row, or a pass over it for them.
  const MaxSum st = rowStats ? MaxSum{rowStats[r].x, rowStats[r].y}
                             : rowMaxSumExp(x, V, valid, scratch);
  const float mx = st.m, scale = invRows / st.s;
  const int64_t t = targets[r];
  if (rowLoss) { // the forward's loss too (fused), read before any store
    if (threadIdx.x == 0)
      rowLoss[r] = logf(st.s) + st.m - get(x + t);
    __syncthreads();
  }
  OutT *dx = dlogits + r * V;
  auto grad = [&](int64_t j, float xj) {
    return j < valid ? expf(xj - mx) * scale - (j == t ? invRows : 0.0f)
                     : 0.0f;
  };
  int64_t head = 0;
  if (V % 4 == 0 && aligned4(x) && aligned4(dx)) {
    const int64_t n4 = V / 4;
    for (int64_t j = threadIdx.x; j < n4; j += blockDim.x) {
      float4 v = get4(x, j);
      const int64_t c = 4 * j;
      put4(dx, j, make_float4(grad(c, v.x), grad(c + 1, v.y), grad(c + 2, v.z),
                              grad(c + 3, v.w)));
    }
    head = 4 * n4;
  }
  for (int64_t j = head + threadIdx.x; j < V; j += blockDim.x)
    put(dx + j, grad(j, get(x + j)));
}

/// Eight 16-bit values (a 16-byte vector) as floats, and back (rounded to
/// nearest even, as put does).
__device__ __forceinline__ void unpack8(uint4 u, float f[8], const __nv_bfloat16 *) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    f[2 * k] = __uint_as_float(w[k] << 16);
    f[2 * k + 1] = __uint_as_float(w[k] & 0xffff0000u);
  }
}
__device__ __forceinline__ void unpack8(uint4 u, float f[8], const __half *) {
  const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 v = __half22float2(*reinterpret_cast<const __half2 *>(&w[k]));
    f[2 * k] = v.x;
    f[2 * k + 1] = v.y;
  }
}
__device__ __forceinline__ uint32_t pack2(float a, float b, const __nv_bfloat16 *) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  return *reinterpret_cast<const uint32_t *>(&h);
}
__device__ __forceinline__ uint32_t pack2(float a, float b, const __half *) {
  const __half2 h = __floats2half2_rn(a, b);
  return *reinterpret_cast<const uint32_t *>(&h);
}
template <typename T> __device__ __forceinline__ uint4 pack8(const float f[8], const T *tag) {
  return make_uint4(pack2(f[0], f[1], tag), pack2(f[2], f[3], tag), pack2(f[4], f[5], tag),
                    pack2(f[6], f[7], tag));
}

/// The fused loss (crossEntropyBwdK with rowLoss, no kept statistics) for
/// 16-bit logits and gradient (LLMRT_CUDA_LOSS_ROW): a row a block, 16-byte
/// vectors, the softmax in base 2 by the special function unit (one
/// instruction an exponential, where expf takes several: the generic
/// kernel is bound by its instructions, not by memory), the maximum taken
/// over each vector of 8 before its exponentials (no branch an element).
/// Shared (=2): the row held in shared memory by the first pass, so that
/// the second reads it there instead of from memory (V x 2 bytes of
/// dynamic shared memory: GPT-2's 50304, 98 KB, two blocks an SM). V a
/// multiple of 8, both tensors 16-byte aligned. dlogits may be the
/// logits' own bytes (each thread reads its vectors before it writes them,
/// the target's logit is read before the first barrier).
template <typename T, bool Shared>
__global__ void __launch_bounds__(512, 2)
    crossEntropyFusedRowK(const T *logits, const int32_t *targets, T *dlogits, int64_t V,
                          int64_t valid, float invRows, float *rowLoss) {
  extern __shared__ uint4 rowS[];
  __shared__ MaxSum scratch[32];
  constexpr float kLog2e = 1.4426950408889634f, kLn2 = 0.6931471805599453f;
  const int64_t r = blockIdx.x, n8 = V / 8;
  const T *row = logits + r * V;
  const uint4 *x = reinterpret_cast<const uint4 *>(row);
  const int64_t t = targets[r];
  const float xt = threadIdx.x == 0 ? get(row + t) : 0.0f;
  MaxSum st{-INFINITY, 0.0f}; // base 2
#pragma unroll 4
  for (int64_t j = threadIdx.x; j < n8; j += blockDim.x) {
    const uint4 u = x[j];
    if constexpr (Shared)
      rowS[j] = u;
    float f[8];
    unpack8(u, f, logits);
    if (8 * j + 8 > valid)
#pragma unroll
      for (int k = 0; k < 8; ++k)
        if (8 * j + k >= valid)
          f[k] = -INFINITY;
    const float cm = fmaxf(fmaxf(fmaxf(f[0], f[1]), fmaxf(f[2], f[3])),
                           fmaxf(fmaxf(f[4], f[5]), fmaxf(f[6], f[7]))) *
                     kLog2e;
    if (cm == -INFINITY) // all past `valid` (-inf - -inf would be NaN)
      continue;
    if (cm > st.m) {
      st.s *= fastExp2(st.m - cm);
      st.m = cm;
    }
#pragma unroll
    for (int k = 0; k < 8; ++k)
      st.s += fastExp2(fmaf(f[k], kLog2e, -st.m));
  }
  st = blockMergeMaxSum<true>(st, scratch); // its barriers publish rowS too
  const float mx = st.m, scale = invRows / st.s;
  if (threadIdx.x == 0)
    rowLoss[r] = logf(st.s) + mx * kLn2 - xt;
  uint4 *dx = reinterpret_cast<uint4 *>(dlogits + r * V);
  for (int64_t j = threadIdx.x; j < n8; j += blockDim.x) {
    float f[8];
    if constexpr (Shared)
      unpack8(rowS[j], f, logits);
    else
      unpack8(x[j], f, logits);
#pragma unroll
    for (int k = 0; k < 8; ++k)
      f[k] = fastExp2(fmaf(f[k], kLog2e, -mx)) * scale;
    if (static_cast<uint64_t>(t - 8 * j) < 8) // the target is in this vector
#pragma unroll
      for (int k = 0; k < 8; ++k)
        if (8 * j + k == t)
          f[k] -= invRows;
    if (8 * j + 8 > valid) // past `valid` 0, as the generic kernel has it
#pragma unroll
      for (int k = 0; k < 8; ++k)
        if (8 * j + k >= valid)
          f[k] = 0.0f;
    dx[j] = pack8(f, logits);
  }
}

/// One block per row: stats[r] = max over this rank's slice.
__global__ void vocabRowMaxK(const float *logits, int64_t V, int64_t valid,
                             double *stats) {
  __shared__ float scratch[32];
  const float *x = logits + blockIdx.x * V;
  float mx = -INFINITY;
  for (int64_t j = threadIdx.x; j < valid; j += blockDim.x)
    mx = fmaxf(mx, x[j]);
  mx = blockReduce(mx, scratch, MaxOp());
  if (threadIdx.x == 0)
    stats[blockIdx.x] = mx;
}

/// One block per row: the slice's sum of exp(x - max) (in double) and the
/// target's logit where the slice holds it.
__global__ void vocabRowSumsK(const float *logits, const int32_t *targets,
                              int64_t rows, int64_t V, int64_t valid,
                              int64_t start, double *stats) {
  __shared__ double scratch[32];
  const int64_t r = blockIdx.x;
  const float *x = logits + r * V;
  const float mx = static_cast<float>(stats[r]);
  double s = 0;
  for (int64_t j = threadIdx.x; j < valid; j += blockDim.x)
    s += expf(x[j] - mx);
  s = blockReduce(s, scratch, SumOp());
  if (threadIdx.x == 0) {
    stats[rows + r] = s;
    int64_t t = static_cast<int64_t>(targets[r]) - start;
    stats[2 * rows + r] = t >= 0 && t < valid ? static_cast<double>(x[t]) : 0.0;
  }
}

/// One block: *loss = mean over rows of log(sum) + max - target.
__global__ void vocabLossK(const double *stats, int64_t rows, float *loss) {
  __shared__ double scratch[32];
  double s = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x)
    s += log(stats[rows + r]) + stats[r] - stats[2 * rows + r];
  s = blockReduce(s, scratch, SumOp());
  if (threadIdx.x == 0)
    *loss = static_cast<float>(s / rows);
}

__global__ void vocabCrossEntropyBwdK(const float *logits,
                                      const int32_t *targets, int64_t rows,
                                      int64_t V, int64_t valid, int64_t start,
                                      const double *stats, float *dlogits,
                                      float dloss) {
  const int64_t r = blockIdx.x;
  const float *x = logits + r * V;
  const float mx = static_cast<float>(stats[r]);
  const float scale = static_cast<float>(dloss / (stats[rows + r] * rows));
  const int64_t t = static_cast<int64_t>(targets[r]) - start;
  const float hit = dloss / static_cast<float>(rows);
  float *dx = dlogits + r * V;
  for (int64_t j = threadIdx.x; j < V; j += blockDim.x)
    dx[j] = j < valid ? expf(x[j] - mx) * scale - (j == t ? hit : 0.0f) : 0.0f;
}

// Optimizer ------------------------------------------------------------------

/// Thread `first`'s part (of `stride` threads) of the sum of x[i]^2 over
/// [0, n), in double: the elements before the first 16-byte boundary and
/// after the last one an element a thread, those between by 16-byte
/// vectors, two in flight a thread (a pass over all the gradients: read
/// once, at the memory's speed rather than its latency's).
__device__ __forceinline__ double squaresOf(const float *x, int64_t n, int64_t first,
                                            int64_t stride) {
  const int64_t toBoundary =
      static_cast<int64_t>((16 - (reinterpret_cast<uintptr_t>(x) & 15)) & 15) / 4;
  const int64_t head = toBoundary < n ? toBoundary : n;
  const int64_t nv = (n - head) / 4, tail = head + 4 * nv;
  double s = 0, s2 = 0;
  if (first < head)
    s = static_cast<double>(x[first]) * x[first];
  if (tail + first < n)
    s += static_cast<double>(x[tail + first]) * x[tail + first];
  const float4 *v = reinterpret_cast<const float4 *>(x + head);
  auto sq = [](float4 q) {
    return (static_cast<double>(q.x) * q.x + static_cast<double>(q.y) * q.y) +
           (static_cast<double>(q.z) * q.z + static_cast<double>(q.w) * q.w);
  };
  int64_t i = first;
  for (; i + stride < nv; i += 2 * stride) {
    const float4 a = v[i], b = v[i + stride];
    s += sq(a);
    s2 += sq(b);
  }
  if (i < nv)
    s += sq(v[i]);
  return s + s2;
}

/// Blocks for a pass of squaresOf over n elements: a thread a vector, up
/// to 1024 blocks.
unsigned squaresBlocks(int64_t n) { return std::min(gridFor((n + 3) / 4), 1024u); }

__global__ void sumSquaresK(const float *x, int64_t n, double *acc) {
  __shared__ double scratch[32];
  double s = squaresOf(x, n, blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x,
                       static_cast<int64_t>(gridDim.x) * blockDim.x);
  s = blockReduce(s, scratch, SumOp());
  if (threadIdx.x == 0)
    atomicAdd(acc, s);
}

/// Tensors of one sumSquaresBatch launch (kernel parameters: by value).
struct SquaresBatchArgs {
  SquaresTensor t[kSquaresBatch];
  unsigned firstBlock[kSquaresBatch + 1];
  int count;
};

__global__ void sumSquaresBatchK(SquaresBatchArgs a, double *acc) {
  __shared__ double scratch[32];
  int k = 0;
  while (k + 1 < a.count && blockIdx.x >= a.firstBlock[k + 1])
    ++k;
  const SquaresTensor &t = a.t[k];
  const int64_t stride =
      static_cast<int64_t>(a.firstBlock[k + 1] - a.firstBlock[k]) * blockDim.x;
  double s = squaresOf(
      t.x, t.n, (blockIdx.x - a.firstBlock[k]) * static_cast<int64_t>(blockDim.x) + threadIdx.x,
      stride);
  s = blockReduce(s, scratch, SumOp());
  if (threadIdx.x == 0)
    atomicAdd(acc + t.slot, s);
}

__global__ void finishNormK(const double *acc, int count, float *out,
                            double scale) {
  double total = 0;
  for (int i = 0; i < count; ++i)
    total += acc[i];
  *out = static_cast<float>(sqrt(total) * scale);
}

__global__ void clipScaleK(const float *norm, const float *maxNorm, float *out) {
  if (!isfinite(*norm)) { // an overflow: NaN marks the step, AdamW skips it
    *out = __int_as_float(0x7fc00000);
    return;
  }
  float mx = *maxNorm;
  float coef = mx > 0 ? mx / (*norm + 1e-6f) : 1.0f;
  *out = fminf(coef, 1.0f);
}

/// CpuKernels.cpp's adamw: the scalars in double as PyTorch forms them,
/// rounded to float, the per-element arithmetic in float.
/// The step's AdamW scalars (from the device), computed by one thread into
/// `sc`: decay, 1 - beta1, beta2, 1 - beta2, sqrt(bias correction 2),
/// -lr / bias correction 1, gradient scale.
__device__ void adamwScalars(float *sc, const float *lrP, const int64_t *stepP,
                             const float *wdP, const float *gsP, double beta1,
                             double beta2, float extraScale) {
  if (threadIdx.x == 0) {
    double lr = *lrP, wd = wdP ? static_cast<double>(*wdP) : 0.0;
    double step = static_cast<double>(*stepP);
    double bc1 = 1.0 - pow(beta1, step), bc2 = 1.0 - pow(beta2, step);
    sc[0] = static_cast<float>(1.0 - lr * wd);
    sc[1] = static_cast<float>(1.0 - beta1);
    sc[2] = static_cast<float>(beta2);
    sc[3] = static_cast<float>(1.0 - beta2);
    sc[4] = static_cast<float>(sqrt(bc2));
    sc[5] = static_cast<float>(-(lr / bc1));
    sc[6] = *gsP * extraScale;
  }
  __syncthreads();
}

/// Elements [first, n) step `stride` of one tensor's update. Vec
/// (LLMRT_CUDA_ADAMW_VEC=1): where the four arrays are 16-byte aligned,
/// by 16-byte vectors (first and stride then count vectors; the last n %
/// 4 elements one by one), the same arithmetic per element.
/// p16 (optional): the parameter's 16-bit copy (fp16 or bf16), written
/// with p, rounded as toBf16 / toFp16 round.
template <bool Vec = false>
__device__ __forceinline__ void adamwRange(const float *sc, float *p,
                                           const float *grad, float *m, float *v,
                                           int64_t first, int64_t n,
                                           int64_t stride, double eps,
                                           void *p16 = nullptr, bool fp16 = false) {
  const float decay = sc[0], w1 = sc[1], b2 = sc[2], w2 = sc[3],
              bc2Sqrt = sc[4], negStep = sc[5], gs = sc[6];
  if (isnan(gs)) // clip_scale's mark of an overflow: this step updates nothing
    return;
  const float epsF = static_cast<float>(eps);
  const bool smallW1 = fabsf(w1) < 0.5f;
  auto update = [&](float &pi, float gi, float &mi, float &vi) {
    const float g = gs != 1.0f ? gi * gs : gi;
    const float pd = pi * decay;
    mi = smallW1 ? mi + w1 * (g - mi) : g - (g - mi) * (1.0f - w1);
    vi = vi * b2;
    vi = vi + w2 * g * g;
    const float denom = sqrtf(vi) / bc2Sqrt + epsF;
    pi = pd + negStep * mi / denom;
  };
  int64_t head = 0;
  if (Vec && aligned4(p) && aligned4(grad) && aligned4(m) && aligned4(v) &&
      reinterpret_cast<uintptr_t>(p16) % 8 == 0) {
    const int64_t n4 = n / 4;
    for (int64_t i = first; i < n4; i += stride) {
      float4 pv = reinterpret_cast<const float4 *>(p)[i];
      const float4 gv = reinterpret_cast<const float4 *>(grad)[i];
      float4 mv = reinterpret_cast<const float4 *>(m)[i];
      float4 vv = reinterpret_cast<const float4 *>(v)[i];
      update(pv.x, gv.x, mv.x, vv.x);
      update(pv.y, gv.y, mv.y, vv.y);
      update(pv.z, gv.z, mv.z, vv.z);
      update(pv.w, gv.w, mv.w, vv.w);
      reinterpret_cast<float4 *>(p)[i] = pv;
      reinterpret_cast<float4 *>(m)[i] = mv;
      reinterpret_cast<float4 *>(v)[i] = vv;
      if (p16 && fp16)
        put4(static_cast<__half *>(p16), i, pv);
      else if (p16)
        put4(static_cast<__nv_bfloat16 *>(p16), i, pv);
    }
    head = 4 * n4;
  }
  for (int64_t i = head + first; i < n; i += stride) {
    float pi = p[i], mi = m[i], vi = v[i];
    update(pi, grad[i], mi, vi);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    if (p16 && fp16)
      put(static_cast<__half *>(p16) + i, pi);
    else if (p16)
      put(static_cast<__nv_bfloat16 *>(p16) + i, pi);
  }
}

__global__ void adamwK(float *p, const float *grad, float *m, float *v,
                       int64_t n, const float *lrP, const int64_t *stepP,
                       const float *wdP, const float *gsP, double beta1,
                       double beta2, double eps, float extraScale, void *p16, bool fp16) {
  __shared__ float sc[7];
  adamwScalars(sc, lrP, stepP, wdP, gsP, beta1, beta2, extraScale);
  adamwRange(sc, p, grad, m, v, blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x,
             n, static_cast<int64_t>(gridDim.x) * blockDim.x, eps, p16, fp16);
}

/// Tensors of one AdamW launch (kernel parameters: by value).
struct AdamWBatchArgs {
  AdamWTensor t[kAdamWBatch];
  unsigned firstBlock[kAdamWBatch + 1]; ///< tensor k: blocks [first[k], first[k+1])
  int count;
};

template <bool Vec>
__global__ void adamwBatchK(AdamWBatchArgs a, const float *lrP,
                            const int64_t *stepP, const float *wdP,
                            const float *gsP, double beta1, double beta2,
                            double eps, float extraScale, bool fp16) {
  __shared__ float sc[7];
  adamwScalars(sc, lrP, stepP, wdP, gsP, beta1, beta2, extraScale);
  int k = 0;
  while (k + 1 < a.count && blockIdx.x >= a.firstBlock[k + 1])
    ++k;
  const AdamWTensor &t = a.t[k];
  const unsigned blocks = a.firstBlock[k + 1] - a.firstBlock[k];
  if (!t.decay) { // sc[0] is the decaying tensors' factor
    __syncthreads();
    if (threadIdx.x == 0)
      sc[0] = 1.0f;
    __syncthreads();
  }
  adamwRange<Vec>(sc, t.p, t.grad, t.m, t.v,
             (blockIdx.x - a.firstBlock[k]) * static_cast<int64_t>(blockDim.x) + threadIdx.x,
             t.n, static_cast<int64_t>(blocks) * blockDim.x, eps, t.p16, fp16);
}

__global__ void toBf16K(const float *src, __nv_bfloat16 *dst, int64_t n) {
  // Four elements a thread where the pointers allow (both are the starts
  // of arena buffers or of the scratch: 64-byte aligned).
  int64_t n4 = n / 4;
  GRID_STRIDE(i, n4) {
    float4 x = reinterpret_cast<const float4 *>(src)[i];
    __nv_bfloat162 lo = __floats2bfloat162_rn(x.x, x.y);
    __nv_bfloat162 hi = __floats2bfloat162_rn(x.z, x.w);
    reinterpret_cast<__nv_bfloat162 *>(dst)[2 * i] = lo;
    reinterpret_cast<__nv_bfloat162 *>(dst)[2 * i + 1] = hi;
  }
  GRID_STRIDE(i, n - n4 * 4) { dst[n4 * 4 + i] = __float2bfloat16(src[n4 * 4 + i]); }
}

__global__ void toFp16K(const float *src, __half *dst, int64_t n) {
  GRID_STRIDE(i, n) { dst[i] = __float2half_rn(src[i]); }
}

// Launchers of the kernels with fp32 and 16-bit variants.
template <typename OutT>
void layerNormFwdT(const float *x, const float *w, const float *b, OutT *y,
                   int64_t rows, int64_t C, double eps, cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>((rows + 7) / 8);
  const int c = static_cast<int>(C);
  const float e = static_cast<float>(eps);
  // The row in registers where C and the alignment allow (GPT-2's 768).
  const bool vec = C % 128 == 0 && aligned4(x) && aligned4(w) && aligned4(b) && aligned4(y);
  if (vec && C <= 128 * 8)
    layerNormFwdRegK<8><<<blocks, kThreads, 0, s>>>(x, w, b, y, rows, c, e);
  else if (vec && C <= 128 * 16)
    layerNormFwdRegK<16><<<blocks, kThreads, 0, s>>>(x, w, b, y, rows, c, e);
  else
    layerNormFwdK<<<blocks, kThreads, 0, s>>>(x, w, b, y, rows, c, e);
}
template <typename OutT>
void rmsNormFwdT(const float *x, const float *w, OutT *y, int64_t rows,
                 int64_t C, double eps, cudaStream_t s) {
  rmsNormFwdK<<<static_cast<unsigned>((rows + 7) / 8), kThreads, 0, s>>>(
      x, w, y, rows, static_cast<int>(C), static_cast<float>(eps));
}
template <typename InT>
void sumRowsT(const InT *dy, float *db, int64_t rows, int64_t C, cudaStream_t s) {
  cudaMemsetAsync(db, 0, static_cast<size_t>(C) * 4, s);
  dim3 grid(static_cast<unsigned>((C + 31) / 32),
            static_cast<unsigned>(std::clamp<int64_t>((rows + 63) / 64, 1, 256)));
  sumRowsK<<<grid, dim3(32, 8), 0, s>>>(dy, db, rows, C);
}
template <typename InT, typename OutT>
void crossEntropyBwdLaunch(const InT *logits, const int32_t *targets, OutT *dlogits,
                           int64_t rows, int64_t V, int64_t valid, float dloss,
                           cudaStream_t s, const float *rowStats = nullptr,
                           float *rowLoss = nullptr) {
  crossEntropyBwdK<<<static_cast<unsigned>(rows), 512, 0, s>>>(
      logits, targets, dlogits, V, std::clamp<int64_t>(valid, 1, V),
      dloss / static_cast<float>(rows), reinterpret_cast<const float2 *>(rowStats),
      rowLoss);
}
template <typename T>
void crossEntropyFwdLaunch(const T *logits, const int32_t *targets, float *loss,
                           int64_t rows, int64_t V, int64_t valid,
                           float *rowScratch, cudaStream_t s, float *rowStats = nullptr) {
  crossEntropyRowsK<<<static_cast<unsigned>(rows), 512, 0, s>>>(
      logits, targets, rowScratch, V, std::clamp<int64_t>(valid, 1, V),
      reinterpret_cast<float2 *>(rowStats));
  meanK<<<1, 1024, 0, s>>>(rowScratch, loss, rows);
}
/// f(std::integral_constant<int, M>{}) for the fewest columns a lane, M of
/// 8, 16, 24 or 32, that hold a row of C (a multiple of 32 up to 1024).
template <typename F> bool byColumnsPerLane(int64_t C, F f) {
  if (C <= 32 * 8)
    return f(std::integral_constant<int, 8>{});
  if (C <= 32 * 16)
    return f(std::integral_constant<int, 16>{});
  if (C <= 32 * 24)
    return f(std::integral_constant<int, 24>{});
  return f(std::integral_constant<int, 32>{});
}

/// Returns whether the staged kernel ran (asked for by `staged`).
template <typename DyT>
bool layerNormBwdLaunch(const float *x, const float *w, const DyT *dy, float *dx,
                        float *dw, float *db, int64_t rows, int64_t C, double eps,
                        cudaStream_t s, const float *addTo = nullptr, bool staged = false) {
  if (db == dw + C) { // side by side (the compiler's packing): one memset
    cudaMemsetAsync(dw, 0, static_cast<size_t>(2 * C) * 4, s);
  } else {
    cudaMemsetAsync(dw, 0, static_cast<size_t>(C) * 4, s);
    cudaMemsetAsync(db, 0, static_cast<size_t>(C) * 4, s);
  }
  size_t shared = static_cast<size_t>(2 * C) * 4;
  const int c = static_cast<int>(C);
  const float e = static_cast<float>(eps);
  // Staged (LLMRT_CUDA_LN_BWD_ASYNC=1): blocks of kLnWarps warps, as many
  // as the GPU holds at once (each a share of the rows), at most a row a
  // warp; where the stages fit in an SM's shared memory.
  const size_t stagedBytes =
      static_cast<size_t>(12 * C) +
      static_cast<size_t>(kLnWarps * kLnStages) *
          static_cast<size_t>(C * (4 + static_cast<int64_t>(sizeof(DyT)) + (addTo ? 4 : 0)));
  auto chunks = [](const void *q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; };
  auto async = [&](auto kernel) {
    static const int sms = [] { // the process's device (one a process)
      int device = 0, n = 0;
      if (cudaGetDevice(&device) != cudaSuccess ||
          cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, device) != cudaSuccess ||
          n < 1) {
        cudaGetLastError();
        n = 132;
      }
      return n;
    }();
    int fit = 0;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             static_cast<int>(stagedBytes)) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, kernel, 32 * kLnWarps,
                                                      stagedBytes) != cudaSuccess ||
        fit < 1) {
      cudaGetLastError(); // too much shared memory: the register kernel
      return false;
    }
    const auto blocks = static_cast<unsigned>(std::min<int64_t>(
        (rows + kLnWarps - 1) / kLnWarps, static_cast<int64_t>(sms) * fit));
    kernel<<<blocks, 32 * kLnWarps, stagedBytes, s>>>(x, w, dy, dx, dw, db, rows, c, e, addTo);
    return true;
  };
  const bool inRegisters = C % 32 == 0 && C <= 32 * 32;
  if (staged && rows > 0 && inRegisters && chunks(x) && chunks(dy) &&
      (!addTo || chunks(addTo)) && stagedBytes <= 227 * 1024 &&
      byColumnsPerLane(C, [&](auto m) { return async(layerNormBwdAsyncK<m.value, DyT>); }))
    return true;
  // Columns per lane in registers where C allows (GPT-2's 768: 24).
  auto regs = [&](auto kernel) {
    setDynamicShared(reinterpret_cast<const void *>(kernel), shared);
    kernel<<<normBwdBlocks(rows), kThreads, shared, s>>>(x, w, dy, dx, dw, db,
                                                        rows, c, e, addTo);
  };
  if (inRegisters)
    byColumnsPerLane(C, [&](auto m) {
      regs(layerNormBwdRegK<m.value, DyT>);
      return true;
    });
  else
    regs(layerNormBwdK<DyT>);
  return false;
}
template <typename InT, typename OutT>
void copyColumnsLaunch(const InT *src, int64_t srcCols, int64_t srcOff, OutT *dst,
                       int64_t dstCols, int64_t dstOff, int64_t width, int64_t rows,
                       cudaStream_t s) {
  if ((srcCols | srcOff | dstCols | dstOff | width) % 4 == 0 && aligned4(src) &&
      aligned4(dst)) {
    const int64_t total = rows * (width / 4);
    copyColumns4K<<<gridFor(std::max<int64_t>(total, 1)), kThreads, 0, s>>>(
        src, srcCols / 4, srcOff / 4, dst, dstCols / 4, dstOff / 4, width / 4, total);
    return;
  }
  copyColumnsK<<<grid2d(rows, width), kThreads, 0, s>>>(
      src, srcCols, srcOff, dst, dstCols, dstOff, width, rows);
}

} // namespace

// Launchers ------------------------------------------------------------------

void toFp16(const float *src, void *dst, int64_t n, cudaStream_t s) {
  toFp16K<<<gridFor(n), kThreads, 0, s>>>(src, static_cast<__half *>(dst), n);
}

void toBf16(const float *src, void *dst, int64_t n, cudaStream_t s) {
  toBf16K<<<gridFor((n + 3) / 4), kThreads, 0, s>>>(
      src, static_cast<__nv_bfloat16 *>(dst), n);
}

void embeddingFwd(const int32_t *ids, const float *table, float *out,
                  int64_t n, int64_t C, cudaStream_t s, const float *addend, int64_t period) {
  if (!addend)
    period = 4;
  if (C % 4 == 0 && period % 4 == 0 && aligned4(table) && aligned4(out) &&
      (!addend || aligned4(addend))) {
    embeddingFwd4K<<<grid2d(n, C / 4), kThreads, 0, s>>>(
        ids, reinterpret_cast<const float4 *>(table), reinterpret_cast<float4 *>(out), n, C / 4,
        reinterpret_cast<const float4 *>(addend), period / 4);
    return;
  }
  embeddingFwdK<<<grid2d(n, C), kThreads, 0, s>>>(ids, table, out, n, C, addend,
                                                  addend ? period : 1);
}
namespace {
/// The table gradient's start: zeros, init's values, or (init is dtable)
/// what it holds.
void startTable(float *dtable, const float *init, int64_t V, int64_t C, cudaStream_t s) {
  const size_t bytes = static_cast<size_t>(V * C) * 4;
  if (!init)
    cudaMemsetAsync(dtable, 0, bytes, s);
  else if (init != dtable)
    cudaMemcpyAsync(dtable, init, bytes, cudaMemcpyDeviceToDevice, s);
}
} // namespace
void embeddingBwd(const int32_t *ids, const float *dout, float *dtable,
                  int64_t n, int64_t V, int64_t C, cudaStream_t s, const float *init) {
  startTable(dtable, init, V, C, s);
  embeddingBwdK<<<grid2d(n, C), kThreads, 0, s>>>(ids, dout, dtable, n, C);
}
void positionEmbeddingFwd(const float *table, float *out, int64_t S, int64_t C,
                          cudaStream_t s) {
  if (out != table)
    cudaMemcpyAsync(out, table, static_cast<size_t>(S * C) * 4,
                    cudaMemcpyDeviceToDevice, s);
}
void positionEmbeddingBwd(const float *dout, float *dtable, int64_t S,
                          int64_t P, int64_t C, cudaStream_t s) {
  if (dtable != dout)
    cudaMemcpyAsync(dtable, dout, static_cast<size_t>(S * C) * 4,
                    cudaMemcpyDeviceToDevice, s);
  if (P > S)
    cudaMemsetAsync(dtable + S * C, 0, static_cast<size_t>((P - S) * C) * 4, s);
}

void layerNormFwd(const float *x, const float *w, const float *b, float *y,
                  int64_t rows, int64_t C, double eps, cudaStream_t s) {
  layerNormFwdT(x, w, b, y, rows, C, eps, s);
}
void layerNormBwd(const float *x, const float *w, const float *dy, float *dx,
                  float *dw, float *db, int64_t rows, int64_t C, double eps,
                  cudaStream_t s) {
  layerNormBwdLaunch(x, w, dy, dx, dw, db, rows, C, eps, s);
}
void rmsNormFwd(const float *x, const float *w, float *y, int64_t rows,
                int64_t C, double eps, cudaStream_t s) {
  rmsNormFwdT(x, w, y, rows, C, eps, s);
}
void rmsNormBwd(const float *x, const float *w, const float *dy, float *dx,
                float *dw, int64_t rows, int64_t C, double eps,
                cudaStream_t s) {
  cudaMemsetAsync(dw, 0, static_cast<size_t>(C) * 4, s);
  size_t shared = static_cast<size_t>(C) * 4;
  setDynamicShared(reinterpret_cast<const void *>(rmsNormBwdK), shared);
  rmsNormBwdK<<<normBwdBlocks(rows), kThreads, shared, s>>>(
      x, w, dy, dx, dw, rows, static_cast<int>(C), static_cast<float>(eps));
}

void addBias(float *y, const float *bias, int64_t rows, int64_t C,
             cudaStream_t s) {
  addBiasK<<<grid2d(rows, C), kThreads, 0, s>>>(y, bias, rows, C);
}
void sumRows(const float *dy, float *db, int64_t rows, int64_t C,
             cudaStream_t s) {
  sumRowsT(dy, db, rows, C, s);
}
void copyColumns(const float *src, int64_t srcCols, int64_t srcOff, float *dst,
                 int64_t dstCols, int64_t dstOff, int64_t width, int64_t rows,
                 cudaStream_t s) {
  copyColumnsLaunch(src, srcCols, srcOff, dst, dstCols, dstOff, width, rows, s);
}
void rope(const float *x, float *y, int64_t B, int64_t S, int64_t H, int64_t D,
          double theta, bool inverse, cudaStream_t s) {
  ropeK<<<grid2d(B * S, H * (D / 2)), kThreads, 0, s>>>(x, y, B * S, S, H, D,
                                                        theta, inverse);
}

bool attentionSupportsHeadDim(int64_t D) {
  return D == 16 || D == 32 || D == 64 || D == 128;
}
int64_t attentionWorkspaceBytes(int64_t B, int64_t S, int64_t Hq) {
  return attentionStatsBytes(B, S, Hq); // (Store16.h: llmrt-memory sizes it alike)
}

#define LLMRT_ATTN_DISPATCH(D, CALL)                                           \
  switch (D) {                                                                 \
  case 16: CALL(16); break;                                                    \
  case 32: CALL(32); break;                                                    \
  case 64: CALL(64); break;                                                    \
  case 128: CALL(128); break;                                                  \
  default: break;                                                              \
  }

void attentionFwd(const float *q, const float *k, const float *v, float *out,
                  int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                  double scale, bool causal, cudaStream_t s) {
#define CALL(DD)                                                               \
  attnFwdLaunch<DD>(q, k, v, out, int(B), int(S), int(Hq), int(Hkv),          \
                    float(scale), causal, s)
  LLMRT_ATTN_DISPATCH(D, CALL)
#undef CALL
}
void attentionBwd(const float *q, const float *k, const float *v,
                  const float *dout, float *dq, float *dk, float *dv,
                  int64_t B, int64_t S, int64_t Hq, int64_t Hkv, int64_t D,
                  double scale, bool causal, void *workspace, cudaStream_t s) {
#define CALL(DD)                                                               \
  attnBwdLaunch<DD>(q, k, v, dout, dq, dk, dv, int(B), int(S), int(Hq),       \
                    int(Hkv), float(scale), causal,                            \
                    static_cast<float *>(workspace), s)
  LLMRT_ATTN_DISPATCH(D, CALL)
#undef CALL
}

namespace {
template <typename Op, typename InT, typename OutT>
void map1(const InT *x, OutT *y, int64_t n, Op op, cudaStream_t s) {
  bool vec = aligned4(x) && aligned4(y);
  map1K<<<gridFor(vec ? std::max<int64_t>(n / 4, 1) : n), kThreads, 0, s>>>(
      x, y, n, vec, op);
}
template <typename Op, typename InA, typename InB, typename OutT>
void map2(const InA *a, const InB *b, OutT *y, int64_t n, Op op, cudaStream_t s) {
  bool vec = aligned4(a) && aligned4(b) && aligned4(y);
  map2K<<<gridFor(vec ? std::max<int64_t>(n / 4, 1) : n), kThreads, 0, s>>>(
      a, b, y, n, vec, op);
}
/// f(p as fp32, or as the 16-bit type h names where h16).
template <typename F> void typed(In x, Half h, F f) {
  if (!x.h16)
    f(static_cast<const float *>(x.p));
  else if (h == Half::Bf16)
    f(static_cast<const __nv_bfloat16 *>(x.p));
  else
    f(static_cast<const __half *>(x.p));
}
template <typename F> void typed(Out y, Half h, F f) {
  if (!y.h16)
    f(static_cast<float *>(y.p));
  else if (h == Half::Bf16)
    f(static_cast<__nv_bfloat16 *>(y.p));
  else
    f(static_cast<__half *>(y.p));
}
template <typename Op> void map1T(In x, Out y, int64_t n, Op op, Half h, cudaStream_t s) {
  typed(x, h, [&](auto *xp) { typed(y, h, [&](auto *yp) { map1(xp, yp, n, op, s); }); });
}
template <typename Op>
void map2T(In a, In b, Out y, int64_t n, Op op, Half h, cudaStream_t s) {
  typed(a, h, [&](auto *ap) {
    typed(b, h, [&](auto *bp) { typed(y, h, [&](auto *yp) { map2(ap, bp, yp, n, op, s); }); });
  });
}
/// x + addend into sum, then its layer norm into y, from registers (the
/// row kernel); elsewhere an add then the norm.
template <typename AddT, typename OutT>
void layerNormFwdAddT(const float *x, const AddT *addend, float *sum, const float *w,
                      const float *b, OutT *y, int64_t rows, int64_t C, double eps,
                      cudaStream_t s) {
  const unsigned blocks = static_cast<unsigned>((rows + 7) / 8);
  const int c = static_cast<int>(C);
  const float e = static_cast<float>(eps);
  const bool vec = C % 128 == 0 && aligned4(x) && aligned4(addend) && aligned4(sum) &&
                   aligned4(w) && aligned4(b) && aligned4(y);
  if (vec && C <= 128 * 8) {
    layerNormFwdRegK<8><<<blocks, kThreads, 0, s>>>(x, w, b, y, rows, c, e, addend, sum);
  } else if (vec && C <= 128 * 16) {
    layerNormFwdRegK<16><<<blocks, kThreads, 0, s>>>(x, w, b, y, rows, c, e, addend, sum);
  } else {
    map2(x, addend, sum, rows * C, AddF(), s);
    layerNormFwdT(sum, w, b, y, rows, C, eps, s);
  }
}
} // namespace

void geluFwdT(In x, Out y, int64_t n, Half h, cudaStream_t s) { map1T(x, y, n, GeluF(), h, s); }
void geluBwdT(In x, In dy, Out dx, int64_t n, Half h, cudaStream_t s) {
  map2T(x, dy, dx, n, GeluG(), h, s);
}
void siluFwdT(In x, Out y, int64_t n, Half h, cudaStream_t s) { map1T(x, y, n, SiluF(), h, s); }
void siluBwdT(In x, In dy, Out dx, int64_t n, Half h, cudaStream_t s) {
  map2T(x, dy, dx, n, SiluG(), h, s);
}
void addT(In a, In b, Out y, int64_t n, Half h, cudaStream_t s) {
  map2T(a, b, y, n, AddF(), h, s);
}
void layerNormFwd16(const float *x, const float *w, const float *b, void *y,
                    int64_t rows, int64_t C, double eps, Half h, cudaStream_t s) {
  typed(Out{y, true}, h, [&](auto *o) { layerNormFwdT(x, w, b, o, rows, C, eps, s); });
}
void layerNormFwdAdd(const float *x, In addend, float *sum, const float *w, const float *b,
                     Out y, int64_t rows, int64_t C, double eps, Half h, cudaStream_t s) {
  typed(addend, h, [&](auto *d) {
    typed(y, h, [&](auto *o) { layerNormFwdAddT(x, d, sum, w, b, o, rows, C, eps, s); });
  });
}
void rmsNormFwd16(const float *x, const float *w, void *y, int64_t rows,
                  int64_t C, double eps, Half h, cudaStream_t s) {
  typed(Out{y, true}, h, [&](auto *o) { rmsNormFwdT(x, w, o, rows, C, eps, s); });
}
void addBias16(void *y, const float *bias, int64_t rows, int64_t C, Half h,
               cudaStream_t s) {
  typed(Out{y, true}, h, [&](auto *o) {
    addBiasK<<<grid2d(rows, C), kThreads, 0, s>>>(o, bias, rows, C);
  });
}
void sumRows16(const void *dy, float *db, int64_t rows, int64_t C, Half h,
               cudaStream_t s) {
  typed(In{dy, true}, h, [&](auto *in) { sumRowsT(in, db, rows, C, s); });
}
bool layerNormBwdT(const float *x, const float *w, In dy, float *dx, float *dw,
                   float *db, int64_t rows, int64_t C, double eps, Half h,
                   cudaStream_t s, const float *addTo, bool staged) {
  bool ran = false;
  typed(dy, h, [&](auto *d) {
    ran = layerNormBwdLaunch(x, w, d, dx, dw, db, rows, C, eps, s, addTo, staged);
  });
  return ran;
}
void crossEntropyFwdT(In logits, const int32_t *targets, float *loss,
                      int64_t rows, int64_t V, int64_t valid, float *rowScratch,
                      Half h, cudaStream_t s, float *rowStats) {
  typed(logits, h, [&](auto *l) {
    crossEntropyFwdLaunch(l, targets, loss, rows, V, valid, rowScratch, s, rowStats);
  });
}
void crossEntropyBwdT(In logits, const int32_t *targets, Out dlogits,
                      int64_t rows, int64_t V, int64_t valid, float dloss,
                      Half h, cudaStream_t s, const float *rowStats) {
  typed(logits, h, [&](auto *l) {
    typed(dlogits, h, [&](auto *d) {
      crossEntropyBwdLaunch(l, targets, d, rows, V, valid, dloss, s, rowStats);
    });
  });
}
/// crossEntropyFusedRowK (rowKernel 1, or 2 with the row in shared
/// memory) where it applies: 16-bit logits and gradient of the same type,
/// V % 8 == 0, 16-byte aligned, and (2) the device grants the shared
/// memory; false where it does not.
template <typename InT, typename OutT>
bool crossEntropyFusedRow(const InT *logits, const int32_t *targets, OutT *dlogits,
                          int64_t rows, int64_t V, int64_t valid, float dloss, float *rowLoss,
                          cudaStream_t s, int rowKernel) {
  using T = InT;
  constexpr bool k16 = std::is_same_v<InT, OutT> && (std::is_same_v<T, __nv_bfloat16> ||
                                                     std::is_same_v<T, __half>);
  if constexpr (!k16) {
    return false; // fp32, or mixed types: the two-pass kernel
  } else {
    const bool shared = rowKernel == 2;
    const size_t bytes = shared ? static_cast<size_t>(V) * sizeof(T) : 0;
    auto a16 = [](const void *p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
    if (rowKernel < 1 || rowKernel > 2 || V % 8 != 0 || !a16(logits) || !a16(dlogits) ||
        bytes > 200 * 1024)
      return false;
    auto kernel = shared ? crossEntropyFusedRowK<T, true> : crossEntropyFusedRowK<T, false>;
    if (shared) {
      // The shared memory granted so far (per process: one device), and
      // the largest carveout, so that two blocks of GPT-2's rows fit an SM.
      static size_t granted = 0;
      if (bytes > granted) {
        if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 static_cast<int>(bytes)) != cudaSuccess) {
          cudaGetLastError(); // the device refused: the other kernel
          return false;
        }
        cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                             cudaSharedmemCarveoutMaxShared);
        cudaGetLastError();
        granted = bytes;
      }
    }
    kernel<<<static_cast<unsigned>(rows), 512, bytes, s>>>(
        logits, targets, dlogits, V, std::clamp<int64_t>(valid, 1, V),
        dloss / static_cast<float>(rows), rowLoss);
    return true;
  }
}

bool crossEntropyFusedT(In logits, const int32_t *targets, float *loss, Out dlogits,
                        int64_t rows, int64_t V, int64_t valid, float dloss,
                        float *rowScratch, Half h, cudaStream_t s, int rowKernel) {
  bool ran = false;
  typed(logits, h, [&](auto *l) {
    typed(dlogits, h, [&](auto *d) {
      ran = crossEntropyFusedRow(l, targets, d, rows, V, valid, dloss, rowScratch, s,
                                 rowKernel);
      if (!ran)
        crossEntropyBwdLaunch(l, targets, d, rows, V, valid, dloss, s, nullptr, rowScratch);
    });
  });
  meanK<<<1, 1024, 0, s>>>(rowScratch, loss, rows);
  return ran;
}
void copyColumnsT(In src, int64_t srcCols, int64_t srcOff, Out dst,
                  int64_t dstCols, int64_t dstOff, int64_t width, int64_t rows,
                  Half h, cudaStream_t s) {
  typed(src, h, [&](auto *sp) {
    typed(dst, h, [&](auto *dp) {
      copyColumnsLaunch(sp, srcCols, srcOff, dp, dstCols, dstOff, width, rows, s);
    });
  });
}

void geluFwd(const float *x, float *y, int64_t n, cudaStream_t s) {
  map1(x, y, n, GeluF(), s);
}
void geluBwd(const float *x, const float *dy, float *dx, int64_t n,
             cudaStream_t s) {
  map2(x, dy, dx, n, GeluG(), s);
}
void siluFwd(const float *x, float *y, int64_t n, cudaStream_t s) {
  map1(x, y, n, SiluF(), s);
}
void siluBwd(const float *x, const float *dy, float *dx, int64_t n,
             cudaStream_t s) {
  map2(x, dy, dx, n, SiluG(), s);
}
void add(const float *a, const float *b, float *y, int64_t n, int64_t nb,
         cudaStream_t s) {
  if (nb == n)
    map2(a, b, y, n, AddF(), s);
  else
    addK<<<grid2d(n / nb, nb), kThreads, 0, s>>>(a, b, y, n / nb, nb);
}
void mul(const float *a, const float *b, float *y, int64_t n, int64_t nb,
         cudaStream_t s) {
  if (nb == n)
    map2(a, b, y, n, MulF(), s);
  else
    mulK<<<grid2d(n / nb, nb), kThreads, 0, s>>>(a, b, y, n / nb, nb);
}

void scale(const float *x, float factor, float *y, int64_t n, cudaStream_t s) {
  scaleK<<<gridFor(n), kThreads, 0, s>>>(x, factor, y, n);
}

void crossEntropyFwd(const float *logits, const int32_t *targets, float *loss,
                     int64_t rows, int64_t V, int64_t valid, float *rowScratch,
                     cudaStream_t s) {
  crossEntropyFwdLaunch(logits, targets, loss, rows, V, valid, rowScratch, s);
}
void crossEntropyBwd(const float *logits, const int32_t *targets,
                     float *dlogits, int64_t rows, int64_t V, int64_t valid,
                     float dloss, cudaStream_t s) {
  crossEntropyBwdLaunch(logits, targets, dlogits, rows, V, valid, dloss, s);
}

void sumSquares(const float *x, int64_t n, double *acc, cudaStream_t s) {
  sumSquaresK<<<squaresBlocks(n), kThreads, 0, s>>>(x, n, acc);
}
void sumSquaresBatch(const SquaresTensor *tensors, int count, double *acc,
                     cudaStream_t s) {
  for (int first = 0; first < count; first += kSquaresBatch) {
    SquaresBatchArgs a{};
    a.count = std::min(kSquaresBatch, count - first);
    unsigned blocks = 0;
    for (int k = 0; k < a.count; ++k) {
      a.t[k] = tensors[first + k];
      a.firstBlock[k] = blocks;
      blocks += squaresBlocks(a.t[k].n);
    }
    a.firstBlock[a.count] = blocks;
    sumSquaresBatchK<<<blocks, kThreads, 0, s>>>(a, acc);
  }
}
void finishNorm(const double *acc, int count, float *out, double scale,
                cudaStream_t s) {
  finishNormK<<<1, 1, 0, s>>>(acc, count, out, scale);
}

void vocabEmbeddingFwd(const int32_t *ids, const float *table, float *out,
                       int64_t n, int64_t C, int64_t start, int64_t V,
                       cudaStream_t s) {
  vocabEmbeddingFwdK<<<grid2d(n, C), kThreads, 0, s>>>(ids, table, out, n, C,
                                                       start, V);
}
void vocabEmbeddingBwd(const int32_t *ids, const float *dout, float *dtable,
                       int64_t n, int64_t V, int64_t C, int64_t start,
                       cudaStream_t s, const float *init) {
  startTable(dtable, init, V, C, s);
  vocabEmbeddingBwdK<<<grid2d(n, C), kThreads, 0, s>>>(ids, dout, dtable, n, C,
                                                       start, V);
}
void vocabRowMax(const float *logits, int64_t rows, int64_t V, int64_t valid,
                 double *stats, cudaStream_t s) {
  vocabRowMaxK<<<static_cast<unsigned>(rows), 512, 0, s>>>(logits, V, valid, stats);
}
void vocabRowSums(const float *logits, const int32_t *targets, int64_t rows,
                  int64_t V, int64_t valid, int64_t start, double *stats,
                  cudaStream_t s) {
  vocabRowSumsK<<<static_cast<unsigned>(rows), 512, 0, s>>>(
      logits, targets, rows, V, valid, start, stats);
}
void vocabLoss(const double *stats, int64_t rows, float *loss, cudaStream_t s) {
  vocabLossK<<<1, 1024, 0, s>>>(stats, rows, loss);
}
void vocabCrossEntropyBwd(const float *logits, const int32_t *targets,
                          int64_t rows, int64_t V, int64_t valid, int64_t start,
                          const double *stats, float *dlogits, float dloss,
                          cudaStream_t s) {
  vocabCrossEntropyBwdK<<<static_cast<unsigned>(rows), 512, 0, s>>>(
      logits, targets, rows, V, valid, start, stats, dlogits, dloss);
}
/// One thread that waits `ns` nanoseconds of the GPU's clock.
__global__ void holdK(uint64_t ns) {
  uint64_t start, now;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  do {
    __nanosleep(1000);
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
  } while (now - start < ns);
}
void holdStream(cudaStream_t s, unsigned microseconds) {
  holdK<<<1, 1, 0, s>>>(uint64_t(microseconds) * 1000);
}
void clipScale(const float *norm, const float *maxNorm, float *out,
               cudaStream_t s) {
  clipScaleK<<<1, 1, 0, s>>>(norm, maxNorm, out);
}
void adamw(float *p, const float *grad, float *m, float *v, int64_t n,
           const float *lr, const int64_t *step, const float *weightDecay,
           const float *gradScale, double beta1, double beta2, double eps,
           float extraScale, cudaStream_t s, void *p16, Half h) {
  adamwK<<<std::min(gridFor(n), 2048u), kThreads, 0, s>>>(
      p, grad, m, v, n, lr, step, weightDecay, gradScale, beta1, beta2, eps,
      extraScale, p16, h == Half::Fp16);
}
void adamwBatch(const AdamWTensor *tensors, int count, const float *lr,
                const int64_t *step, const float *weightDecay,
                const float *gradScale, double beta1, double beta2, double eps,
                float extraScale, cudaStream_t s, bool vec, Half h) {
  AdamWBatchArgs a{};
  a.count = count;
  unsigned blocks = 0;
  for (int k = 0; k < count; ++k) {
    a.t[k] = tensors[k];
    a.firstBlock[k] = blocks;
    // Vectors: a thread a vector (4 elements), up to 2048 blocks a tensor.
    blocks += std::min(gridFor(vec ? (tensors[k].n + 3) / 4 : tensors[k].n), 2048u);
  }
  a.firstBlock[count] = blocks;
  (vec ? adamwBatchK<true> : adamwBatchK<false>)<<<blocks, kThreads, 0, s>>>(
      a, lr, step, weightDecay, gradScale, beta1, beta2, eps, extraScale, h == Half::Fp16);
}

} // namespace llmrt::cuda
