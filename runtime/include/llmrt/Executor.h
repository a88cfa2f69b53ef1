//===- Executor.h - runs a program's functions ---------------------*- C++ -*-===//
//
// An executor owns the arena (one allocation of the compile-time size) and
// the kernels' workspace, resolves every instruction's operands to pointers
// once, and runs a function as a straight loop of kernel calls: nothing is
// allocated while a step runs. Two backends implement it: the CPU
// (createCpuExecutor, Executor.cpp) and CUDA (createCudaExecutor,
// cuda/CudaExecutor.cpp, only in the CUDA runner).
//
// The trainer reads and writes buffers through host views (data<T>). On the
// CPU they are the arena itself; on a GPU they are host copies of the
// non-temporary buffers, moved by the upload/download calls below, which
// are no-ops on the CPU.
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

/// One timed kernel call, for --trace; communication (collectives, send,
/// recv) also gives the bytes this rank moves and a send/recv its peer.
struct TraceEvent {
  const char *name;
  double beginUs, durationUs;
  int64_t bytes = -1; ///< -1: not communication
  int peer = 0;       ///< send/recv: the other stage's offset
  /// A phase span (Opcode::Phase up to the next, or the run's end):
  /// kind 0 forward, 1 backward, 2 recompute; -1 for an instruction.
  int phase = -1;
  int64_t microbatch = 0, chunk = 0;
  /// The instruction (its integer operands, the shapes, go to the trace's
  /// args); null for phases and waits.
  const Instruction *inst = nullptr;
};

/// The bytes `inst` sends or receives (its float count x 4) when it is a
/// collective or a send/recv, else -1: what --trace records.
int64_t communicationBytes(const Instruction &inst);

/// Checks the pipeline peers of `program`'s send and recv instructions
/// against the stage this rank runs (`stage` of `stages`): an error names
/// the function, the instruction and the peer.
absl::Status checkPipelinePeers(const ProgramDesc &program, int stage,
                                int stages);

/// Collectives the program runs as blocking instructions (all_reduce,
/// reduce_scatter, all_gather) that an executor may start and let run on
/// while the instructions after them do, until the first later instruction
/// that touches (reads or writes) a byte of their operands: a tensor-
/// parallel all-reduce is needed at once, a ZeRO gradient reduce-scatter
/// not before the optimizer, a ZeRO parameter all-gather not before the
/// next step's forward. `operands[i]` are instruction i's operand byte
/// ranges (resolved addresses and sizes); deferred collectives get slots
/// from `firstSlot` on. With `fence`, every instruction that communicates
/// (a collective, a send or receive, the global norm, the vocabulary-
/// parallel loss) also completes all deferred ones first: MPI need not
/// progress a non-blocking collective while its rank blocks in another
/// communicator's call, which the peer may be waiting in (NCCL's streams
/// run independently and need no fence).
struct DeferredCollectives {
  std::vector<int> slotOf;                  ///< per instruction; -1: not deferred
  std::vector<std::vector<int>> waitBefore; ///< per instruction: slots to complete first
  std::vector<int> atEnd;                   ///< slots to complete after the last
  std::vector<uint16_t> opcodeOf;           ///< by slot - firstSlot
};
DeferredCollectives
deferCollectives(const std::vector<uint16_t> &opcodes,
                 const std::vector<std::vector<std::pair<uintptr_t, uint64_t>>> &operands,
                 int firstSlot, bool fence);

/// Where the collectives an executor lets run on (deferCollectives over
/// its operands' addresses, `fence` as the executor's) are waited for,
/// over `p`'s own layout on rank `comm.rank()`: per function and
/// instruction, the instruction up to which its operands stay live (its
/// wait; the last for one completed at the end), else its own index
/// (ArenaPack.h's PackOptions::livesTo).
std::vector<std::vector<size_t>> deferredLives(const ProgramDesc &p, const Communicator &comm,
                                               bool fence);
/// The bytes from a rank-dependent view's offset that its views on all
/// ranks cover (PackOptions::allRanks).
uint64_t allRanksBytes(const BufferDesc &b, const Communicator &comm);

class Executor {
public:
  virtual ~Executor() = default;

  const ProgramDesc &program() const { return program_; }

  /// Index of the function `name`, or an error naming it.
  absl::StatusOr<int> function(const std::string &name) const;

  /// Runs function `fn`. When `trace` is set, appends one event per kernel
  /// (times relative to `origin`).
  virtual void run(int fn, std::vector<TraceEvent> *trace = nullptr,
                   std::chrono::steady_clock::time_point origin = {}) = 0;

  /// The buffer with this role and name, or nullptr.
  const BufferDesc *find(BufferRole role, const std::string &name) const;
  /// The host view of a buffer (not of a temporary on a GPU backend).
  template <typename T> T *data(const BufferDesc &b) {
    return reinterpret_cast<T *>(hostView(b));
  }

  /// Host views to the device and back: parameters and optimizer state
  /// (after initialization or loading; before saving), the inputs (before
  /// each run; a backend may not wait for the copy, so the host writes the
  /// next inputs only after downloadOutputs) and the outputs (after each
  /// run; this waits for the run).
  virtual void uploadState() {}
  virtual void downloadState() {}
  virtual void uploadInputs() {}
  virtual void downloadOutputs() {}

  /// The instruction running now (for the watchdog) and a counter of the
  /// instructions started, which a stalled collective stops.
  std::atomic<const char *> current{"idle"};
  std::atomic<uint64_t> progress{0};

  /// Loss scaling (mixed precision): the backward starts from `scale` times
  /// the loss gradient; the global norm and the update divide it out; a
  /// non-finite norm (an overflow) skips every update of the step.
  void setLossScale(double scale) { lossScale_ = scale; }
  double lossScale() const { return lossScale_; }
  /// Whether the last run found a non-finite gradient norm and skipped the
  /// update (on a GPU known once downloadOutputs has waited for the run).
  bool lastRunOverflowed() const { return overflowed_; }
  /// Whether the backend computes in fp16 (the trainer then scales the loss
  /// dynamically unless --loss-scale says otherwise).
  virtual bool needsLossScaling() const { return false; }

  /// Bytes the executor holds for a step (on the device): arena plus the
  /// kernels' workspace.
  virtual int64_t allocatedBytes() const = 0;

  /// The backend's name ("cpu", "cuda") and, for logs, its device.
  virtual std::string backend() const = 0;
  virtual std::string deviceName() const { return backend(); }

  /// For the watchdog: the oldest communication queued on the device that
  /// has not completed (a GPU backend; the CPU's collectives block the host
  /// instead, and `current` names them); an error a communicator reported
  /// asynchronously; and aborting the communicators so that work waiting
  /// for a failed peer returns.
  virtual std::string stallReport() { return ""; }
  virtual std::string asyncError() { return ""; }
  virtual void abortCommunication() {}

protected:
  Executor() = default;
  virtual uint8_t *hostView(const BufferDesc &b) = 0;

  /// The addresses of `inst`'s operands in `arena` for this rank (adding a
  /// rank-dependent view's stride), or an error naming a buffer that would
  /// end past the arena.
  static absl::Status resolveOperands(const ProgramDesc &p,
                                      const Instruction &inst, uint8_t *arena,
                                      Communicator &comm,
                                      std::vector<void *> &ptrs);

  /// deferCollectives over function `f` whose instructions' operands
  /// resolved to `ptrs` (one list per instruction), with the slots of
  /// kDeferredSlotBase on (above the program's own).
  static DeferredCollectives
  deferFunction(const ProgramDesc &p, const FunctionDesc &f,
                const std::vector<const std::vector<void *> *> &ptrs, bool fence);
  static constexpr int kDeferredSlotBase = 4096;

  ProgramDesc program_;
  Communicator *comm_ = nullptr;
  double lossScale_ = 1.0;
  bool overflowed_ = false;
};

/// Makes an executor for `program` with a zeroed arena; collectives go
/// through `comm`; `threads` > 0 sets the host threads (CPU backend).
using ExecutorFactory = absl::StatusOr<std::unique_ptr<Executor>> (*)(
    ProgramDesc program, Communicator &comm, int threads);

/// The CPU backend (OpenBLAS GEMMs, OpenMP loops).
absl::StatusOr<std::unique_ptr<Executor>>
createCpuExecutor(ProgramDesc program, Communicator &comm, int threads);

/// The CUDA backend (defined only in CUDA builds: llmrt_cuda).
absl::StatusOr<std::unique_ptr<Executor>>
createCudaExecutor(ProgramDesc program, Communicator &comm, int threads);

} // namespace llmrt

#endif // LLMRT_EXECUTOR_H
