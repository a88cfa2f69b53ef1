//===- Executor.h - runs a program's functions on the CPU ---------*- C++ -*-===//
//
// Owns the arena (one allocation of the compile-time size) and the attention
// workspace, resolves every instruction's operands to pointers once, and runs
// a function as a straight loop of kernel calls: nothing is allocated while
// a step runs.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_EXECUTOR_H
#define LLMRT_EXECUTOR_H

#include "llmrt/ProgramFormat.h"

#include "absl/status/statusor.h"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace llmrt {

class Communicator;

/// One timed kernel call, for --trace.
struct TraceEvent {
  const char *name;
  double beginUs, durationUs;
};

class Executor {
public:
  /// Allocates the arena and workspace for `program` (zeroed); collectives
  /// go through `comm`.
  static absl::StatusOr<std::unique_ptr<Executor>> create(ProgramDesc program,
                                                          Communicator &comm);
  ~Executor();

  const ProgramDesc &program() const { return program_; }

  /// Index of the function `name`, or an error naming it.
  absl::StatusOr<int> function(const std::string &name) const;

  /// Runs function `fn`. When `trace` is set, appends one event per kernel
  /// (times relative to `origin`).
  void run(int fn, std::vector<TraceEvent> *trace = nullptr,
           std::chrono::steady_clock::time_point origin = {});

  /// The buffer with this role and name, or nullptr.
  const BufferDesc *find(BufferRole role, const std::string &name) const;
  template <typename T> T *data(const BufferDesc &b) {
    return reinterpret_cast<T *>(arena_ + b.offset);
  }

  /// The instruction running now (for the watchdog) and a counter of the
  /// instructions started, which a stalled collective stops.
  std::atomic<const char *> current{"idle"};
  std::atomic<uint64_t> progress{0};

  /// Bytes the executor holds for a step: arena plus attention workspace.
  int64_t allocatedBytes() const { return program_.arenaBytes + workspaceBytes_; }

private:
  Executor() = default;
  struct Resolved {
    const Instruction *inst;
    std::vector<void *> ptrs;
  };

  ProgramDesc program_;
  Communicator *comm_ = nullptr;
  uint8_t *arena_ = nullptr;
  void *workspace_ = nullptr;
  int64_t workspaceBytes_ = 0;
  /// Per-row scratch of the vocabulary-parallel loss (sized at load).
  std::vector<double> rowScratch_;
  std::vector<std::vector<Resolved>> functions_;
};

} // namespace llmrt

#endif // LLMRT_EXECUTOR_H
