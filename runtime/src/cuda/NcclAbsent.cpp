//===- NcclAbsent.cpp - the one-GPU runner has no NCCL --------------------===//
//
// Linked into llmrt-runner-cuda instead of Nccl.cpp, so that the one-GPU
// executable needs no libnccl where it runs. The executor asks for device
// communication only when the world has more than one rank, which the
// one-rank runner never sees (the multi-GPU runner links Nccl.cpp).
//
//===----------------------------------------------------------------------===//
#include "DeviceComm.h"

#include "absl/strings/str_cat.h"

namespace llmrt::cuda {

absl::StatusOr<std::unique_ptr<DeviceComm>> createDeviceComm(Communicator &host) {
  return absl::FailedPreconditionError(absl::StrCat(
      "rank ", host.rank(), ": this runner was built without NCCL; a ",
      host.worldSize(), "-rank job needs the multi-GPU runner "
      "(llmrt-runner-cuda-mpi, which llm-compile --target cuda --devices N "
      "uses)"));
}

} // namespace llmrt::cuda
