//===- PipeLinks.h - a pipeline's point-to-point links on devices -*- C++ -*-===//
//
// NCCL pairs a send with a receive by their order on a communicator, not by
// a tag as MPI does. The GPU runtime therefore gives every kind of message
// between two neighbouring stages a link of its own: a two-rank
// communicator on its own streams that carries activations one way
// (stage s to s + 1, and the interleaved schedule's wrap from the last
// stage to the first) or gradients the other way (s + 1 to s, and the wrap
// from the first stage to the last). On one link the sender's sends and the
// receiver's receives must then come in the same order, which
// checkLinkOrder verifies over a pipeline's stage programs (llm-compile
// runs it for --target cuda).
//
// Plain C++, no CUDA: the CPU tests cover it.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_PIPELINKS_H
#define LLMRT_PIPELINKS_H

#include "llmrt/ProgramFormat.h"

#include "absl/status/statusor.h"

#include <vector>

namespace llmrt {

struct PipeLink {
  int from, to;
  bool gradient; ///< false: activations (even tags); true: gradients (odd)
};

/// Every link of a `stages`-stage pipeline, in the order all ranks create
/// them: activations s -> (s + 1) mod p at index s, gradients
/// (s + 1) mod p -> s at index p + s. Empty for one stage.
std::vector<PipeLink> pipelineLinks(int stages);

/// The index in pipelineLinks(stages) of the link that send, recv or
/// recv_start `inst` uses on `stage`; an error names the function, the
/// instruction and why (a message to a stage that is not a neighbour in
/// its direction).
absl::StatusOr<int> linkOf(const Instruction &inst, int stage, int stages,
                           const std::string &function, size_t index);

/// Checks, for each function and each link of a pipeline whose stage s runs
/// `stages[s]`, that the sends on the link (in the sender's program order)
/// and the receives (in the receiver's) pair off one by one with equal tags
/// and sizes; an error names the link, the function and the first message
/// that differs.
absl::Status checkLinkOrder(const std::vector<ProgramDesc> &stages);

} // namespace llmrt

#endif // LLMRT_PIPELINKS_H
