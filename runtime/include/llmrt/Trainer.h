//===- Trainer.h - the training executable's driver ---------------*- C++ -*-===//
//
// What every compiled executable runs: flags (DESIGN.md section 5), data,
// initialization, the training loop with its logs, evaluation and
// checkpoints.
//
// Semantics shared with the PyTorch reference (python/llm_ref):
// - Batches: a splitmix64 generator seeded with --seed draws, for each of
//   the B sequences of a step, r and the offset r % (N - S) in the N-token
//   file; inputs are tokens[off, off + S), targets tokens[off + 1, off + S].
// - Learning rate of update t (0-based): linear warm-up
//   lr * (t + 1) / warmup for t < warmup, then cosine decay
//   min_lr + (lr - min_lr) / 2 * (1 + cos(pi * (t - warmup) / max(1, steps - warmup))).
// - Default init: the importer's per-parameter scheme (GPT-2's), normal
//   samples from splitmix64 seeded with seed ^ 0x5eed5eed5eed5eed through
//   Box-Muller.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_TRAINER_H
#define LLMRT_TRAINER_H

#include "llmrt/Executor.h"
#include "llmrt/ProgramFormat.h"

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include <cstdint>
#include <string>
#include <vector>

namespace llmrt {

struct TrainOptions {
  std::string data, val, init, save, resume, log, trace;
  int64_t steps = 100;
  double lr = 3e-4, minLr = 0.0, weightDecay = 0.1, gradClip = 1.0;
  int64_t warmup = 0;
  uint64_t seed = 1337;
  int64_t saveEvery = 0;  ///< 0: save only at the end
  int64_t evalEvery = 0;  ///< 0: evaluate only at the end (with --val)
  int64_t evalBatches = 8;
  int threads = 0;        ///< 0: the runtime's default
  /// Loss scaling: 0 none, > 0 a static scale, < 0 dynamic (PyTorch
  /// GradScaler's: 2^16 to start, halved on an overflow, which skips the
  /// step, doubled after 2000 steps without one).
  double lossScale = 0;
};

/// Parses the executable's flags; an error names the flag and value.
absl::StatusOr<TrainOptions> parseTrainOptions(const std::vector<std::string> &args);

/// The usage text.
std::string trainUsage(const std::string &argv0);

/// Learning rate of update `t` (0-based).
double learningRate(const TrainOptions &opts, int64_t t);

/// splitmix64 (Steele, Lea, Flood 2014).
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
};

class Communicator;

/// Trains the program with `opts` (the executable's main after parsing) on
/// this rank of `comm`. Every failure is returned as a status whose message
/// names the cause; FailedPrecondition means every rank found it. The
/// executor comes from `makeExecutor` (the runner's backend).
///
/// A pipeline-parallel plan (metadata "pp" > 1) runs `program`, this rank's
/// stage, and needs `stages`, every stage's program (stage order, from the
/// executable's bundle): the checkpoint index lists every stage's tensors,
/// each written by the first stage that holds it (the tied embedding by
/// stage 0), and the default initialization draws each parameter from the
/// position of the one-rank stream that it has in the stages' parameters
/// in order (stage 0's, then each later stage's not seen before), so that
/// a pipeline starts from the one-rank values. Only the last stage has the
/// "loss" and "eval_loss" outputs; the trainer sums them over the pipeline.
absl::Status train(const ProgramDesc &program, const TrainOptions &opts,
                   Communicator &comm, ExecutorFactory makeExecutor,
                   const std::vector<ProgramDesc> &stages = {});

} // namespace llmrt

#endif // LLMRT_TRAINER_H
