//===- DeviceComm.h - collectives between GPUs (NCCL) -------------*- C++ -*-===//
//
// What the CUDA executor asks of the other ranks' GPUs: the collectives of
// the program's groups (Comm.h) and the pipeline's sends and receives on
// device memory. Every operation is queued on a communication stream after
// an event recorded on the compute stream, and the compute stream waits for
// it with another event (at once for a blocking instruction, at the wait
// instruction for a started one): the host never waits for communication.
//
// One implementation, NCCL (Nccl.cpp, the only file that includes nccl.h,
// linked into the multi-GPU runner); the one-GPU runner links NcclAbsent.cpp
// instead, and never needs libnccl.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_CUDA_DEVICECOMM_H
#define LLMRT_CUDA_DEVICECOMM_H

#include "llmrt/Comm.h"

#include "absl/status/statusor.h"

#include <cuda_runtime_api.h>

#include <cstdint>
#include <memory>
#include <string>

namespace llmrt::cuda {

enum class DType : uint8_t { F32, F64 };

class DeviceComm {
public:
  virtual ~DeviceComm() = default;

  /// In place over `group` (blocking: `compute` waits for it). `what`
  /// names the instruction for the watchdog (a string that outlives the
  /// run: the opcode's name).
  virtual void allReduce(void *data, int64_t n, DType type, Group group,
                         Reduction op, cudaStream_t compute,
                         const char *what) = 0;
  /// dst (n floats) = this rank's share of reduce(src) (n x group size).
  virtual void reduceScatter(const float *src, float *dst, int64_t n,
                             Group group, Reduction op, cudaStream_t compute,
                             const char *what) = 0;
  /// In place: rank i's part is data[i n, (i + 1) n), already there.
  virtual void allGather(float *data, int64_t n, Group group,
                         cudaStream_t compute, const char *what) = 0;

  /// Non-blocking (a gradient bucket, a prefetched ZeRO-3 gather): started
  /// here, `compute` waits for it at wait(slot).
  virtual void startAllReduce(float *data, int64_t n, Group group,
                              Reduction op, int slot, cudaStream_t compute,
                              const char *what) = 0;
  virtual void startAllGather(float *data, int64_t n, Group group, int slot,
                              cudaStream_t compute, const char *what) = 0;
  virtual void startReduceScatter(const float *src, float *dst, int64_t n,
                                  Group group, Reduction op, int slot,
                                  cudaStream_t compute, const char *what) = 0;
  virtual void wait(int slot, cudaStream_t compute) = 0;
  /// Started collectives between groupStart() and groupEnd() go to NCCL as
  /// one group call (the buckets that complete at the same instruction).
  virtual void groupStart() = 0;
  virtual void groupEnd() = 0;

  /// Reserves the staging of `link` (PipeLinks.h): `slots` buffers of
  /// `maxFloats` each, allocated now (nothing is allocated during a step).
  virtual absl::Status reserveLink(int link, int64_t maxFloats, int slots) = 0;
  /// The bytes reserved for staging sends.
  virtual int64_t stagingBytes() const = 0;
  /// Copies `data` to a staging buffer on `compute`, then sends it on the
  /// link's stream: the arena may be overwritten after this instruction.
  virtual void send(const float *data, int64_t n, int link,
                    cudaStream_t compute, const char *what) = 0;
  /// Receives on the link's stream once `compute` reaches this point (the
  /// buffer is free); `compute` waits for the data at waitRecv(slot).
  virtual void startRecv(float *data, int64_t n, int link, int slot,
                         cudaStream_t compute, const char *what) = 0;
  virtual void waitRecv(int slot, cudaStream_t compute) = 0;

  /// The oldest queued operation that has not completed ("all_reduce of
  /// 4194304 bytes on group dp, queued 612 s ago"), or "" if none.
  virtual std::string stalled() = 0;
  /// An error a communicator reports asynchronously (a peer failed), or "".
  virtual std::string asyncError() = 0;
  /// Aborts every communicator: kernels waiting for a peer return, so the
  /// process can end instead of hanging.
  virtual void abort() = 0;
};

/// Creates the communicators of this rank's groups (DP, TP, PP, Tied: each
/// with more than one rank) and of its pipeline links, on the current
/// device: the group's first rank draws the id (ncclGetUniqueId) and `host`
/// broadcasts it (MPI_Bcast). An error names this rank and the group.
absl::StatusOr<std::unique_ptr<DeviceComm>> createDeviceComm(Communicator &host);

} // namespace llmrt::cuda

#endif // LLMRT_CUDA_DEVICECOMM_H
