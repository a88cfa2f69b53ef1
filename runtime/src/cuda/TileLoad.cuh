//===- TileLoad.cuh - attention tiles from global memory ------*- CUDA -*-===//
//
// Shared by the fp32 and tensor-core attention kernels.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_CUDA_TILELOAD_CUH
#define LLMRT_CUDA_TILELOAD_CUH

#include <cstdint>

namespace llmrt::cuda {

/// Rows [r0, r0 + Rows) of head h of a [B, S, H, D] fp32 tensor, as 16-byte
/// vectors, this thread's share into registers (rows past S read as zero):
/// the first half of loadRows, for kernels that overlap a tile's loads
/// with the previous tile's work.
template <int Rows, int D, int Threads>
struct RowVectors {
  static constexpr int Vectors = Rows * D / 4;
  static_assert(Vectors % Threads == 0, "the tile does not split evenly");
  static constexpr int Per = Vectors / Threads;
  float4 x[Per];

  __device__ __forceinline__ void fetch(const float *src, int b, int S, int H,
                                        int h, int r0) {
    fetchRows(src, S, r0, [&](int i) {
      return ((static_cast<int64_t>(b) * S + i) * H + h) * D;
    });
  }
  /// The same where a row (b, i) starts ld floats after the one before
  /// (H x D dense; wider where the tensor is a column slice of wider rows).
  __device__ __forceinline__ void fetchLd(const float *src, int b, int S, int64_t ld,
                                          int h, int r0) {
    fetchRows(src, S, r0, [&](int i) {
      return (static_cast<int64_t>(b) * S + i) * ld + h * D;
    });
  }
  /// rowAt(i): the element where row i of the head starts.
  template <typename RowAt>
  __device__ __forceinline__ void fetchRows(const float *src, int S, int r0, RowAt rowAt) {
#pragma unroll
    for (int t = 0; t < Per; ++t) {
      const int e = t * Threads + threadIdx.x;
      const int r = e / (D / 4), c = (e % (D / 4)) * 4, i = r0 + r;
      x[t] = i < S ? __ldg(reinterpret_cast<const float4 *>(src + rowAt(i) + c))
                   : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
  }
  /// store(row, col, float4) for each vector (row within the tile).
  template <typename Store> __device__ __forceinline__ void put(Store store) const {
#pragma unroll
    for (int t = 0; t < Per; ++t) {
      const int e = t * Threads + threadIdx.x;
      store(e / (D / 4), (e % (D / 4)) * 4, x[t]);
    }
  }
};

/// The same tile loaded and stored at once: each thread issues all of its
/// loads before it stores any, so that their latencies overlap instead of
/// adding up (a block has few warps to hide them). store(row, col, float4)
/// puts each vector where the kernel wants it.
template <int Rows, int D, int Threads, typename Store>
__device__ __forceinline__ void loadRows(const float *src, int b, int S, int H,
                                         int h, int r0, Store store) {
  RowVectors<Rows, D, Threads> v;
  v.fetch(src, b, S, H, h, r0);
  v.put(store);
}

} // namespace llmrt::cuda

#endif // LLMRT_CUDA_TILELOAD_CUH
