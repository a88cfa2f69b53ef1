//===- Schedule.h - pipeline schedules and their simulator --------*- C++ -*-===//
//
// Per-rank action lists of the GPipe, 1F1B and interleaved 1F1B pipeline
// schedules (Narayanan et al. 2021), as the pipeline pass will emit them,
// and a simulator that plays them against their dependencies: the timeline,
// the bubble and the activations each rank holds.
//
//===----------------------------------------------------------------------===//
#ifndef LLM_PLANNER_SCHEDULE_H
#define LLM_PLANNER_SCHEDULE_H

#include "llm/Planner/Planner.h"

#include <string>
#include <vector>

namespace mlir::llm {

/// One step of a rank: the forward or backward of a micro-batch through one
/// of its model chunks (virtual stage chunk * pp + rank).
struct PipelineAction {
  enum Kind { Forward, Backward } kind;
  int64_t microbatch;
  int64_t chunk;
};

/// The action lists of `pp` ranks for `micro` micro-batches and `vpp` chunks
/// per rank. Interleaved needs vpp > 1 and micro divisible by pp (Megatron);
/// an empty result with `error` set otherwise.
std::vector<std::vector<PipelineAction>>
buildPipelineSchedule(Schedule schedule, int64_t pp, int64_t vpp,
                      int64_t micro, std::string &error);

struct PipelineTimeline {
  double makespan = 0;
  /// (makespan - ideal) / ideal, ideal = micro x (forward + backward) of a
  /// whole rank.
  double bubbleFraction = 0;
  /// Most micro-batch chunks whose forward is done and backward not, per
  /// rank (the activations it holds).
  std::vector<int64_t> maxInFlight;
  /// Start and end of every action, per rank, in list order.
  std::vector<std::vector<std::pair<double, double>>> times;
};

/// Plays the lists: an action starts when its rank is free and its
/// dependencies are done (the previous stage's forward, the next stage's
/// backward, its own forward). Forward of a chunk takes `forward`, backward
/// `backward`, a send between stages `p2p`. Fails (error set) on a deadlock
/// or an incomplete list.
PipelineTimeline simulatePipeline(
    const std::vector<std::vector<PipelineAction>> &lists, int64_t pp,
    int64_t vpp, int64_t micro, double forward, double backward, double p2p,
    std::string &error);

} // namespace mlir::llm

#endif // LLM_PLANNER_SCHEDULE_H
