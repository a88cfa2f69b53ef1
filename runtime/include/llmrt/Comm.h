//===- Comm.h - collectives between ranks -------------------------*- C++ -*-===//
//
// The runtime's view of the other ranks: world size and rank, the
// communicator groups of a plan (rank order, Megatron's: tensor-parallel
// ranks adjacent, then data parallel, then pipeline stages:
// rank = tp_rank + tp * dp_rank + tp * dp * pp_rank), the collectives and
// the pipeline's point-to-point messages the program's instructions call. No MPI header here: the MPI backend is
// one translation unit (CommMpi.cpp) linked only into the multi-rank
// runner, so single-rank executables run where no MPI is installed.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_COMM_H
#define LLMRT_COMM_H

#include "absl/status/status.h"

#include <cstdint>
#include <memory>
#include <string>

namespace llmrt {

/// Groups the program's collectives name.
enum class Group : uint8_t {
  World = 0,
  DP = 1, ///< the same tp_rank and pp_rank, ordered by dp_rank
  TP = 2, ///< the same dp_rank and pp_rank, ordered by tp_rank
  PP = 3, ///< the same tp_rank and dp_rank, ordered by stage
  /// The first and last stage's ranks of the same tp_rank and dp_rank (the
  /// tied embedding's two copies): size 2 when pp > 1, else (and on the
  /// middle stages) this rank alone.
  Tied = 4,
};

enum class Reduction : uint8_t { Sum = 0, Mean = 1, Max = 2 };

class Communicator {
public:
  virtual ~Communicator() = default;

  int worldSize() const { return worldSize_; }
  int rank() const { return rank_; }
  int groupSize(Group g) const;
  int groupRank(Group g) const;

  /// Builds the groups for `tp` x `dp` x `pp` = world size (an error on
  /// every rank otherwise).
  virtual absl::Status setupGroups(int tp, int dp, int pp) = 0;

  /// In place over `group`.
  virtual void allReduce(float *data, int64_t n, Group group, Reduction op) = 0;
  /// A non-blocking all-reduce in place (a gradient bucket): started here,
  /// complete after waitAllReduce(slot); `data` must not be touched in
  /// between. progress() lets outstanding ones advance (MPI progresses only
  /// inside its calls). The base class runs it synchronously.
  virtual void startAllReduce(float *data, int64_t n, Group group, Reduction op,
                              int slot) {
    (void)slot;
    allReduce(data, n, group, op);
  }
  virtual void waitAllReduce(int slot) { (void)slot; }
  /// A non-blocking all-gather in place (rank i's part is data[i n, (i+1) n),
  /// already there), complete after waitAllReduce(slot) (the same slots).
  virtual void startAllGather(float *data, int64_t n, Group group, int slot) {
    (void)slot;
    allGather(data, n, group);
  }
  /// A non-blocking reduce-scatter (as reduceScatter), complete after
  /// waitAllReduce(slot) (the same slots); neither buffer may be touched in
  /// between.
  virtual void startReduceScatter(const float *src, float *dst, int64_t n,
                                  Group group, Reduction op, int slot) {
    (void)slot;
    reduceScatter(src, dst, n, group, op);
  }
  virtual void progress() {}
  /// Whether a started all-reduce or a send is outstanding.
  virtual bool pending() const { return false; }
  virtual void allReduce(double *data, int64_t n, Group group,
                         Reduction op) = 0;
  /// `dst` (n elements) = this rank's share of reduce(src) (n x size).
  virtual void reduceScatter(const float *src, float *dst, int64_t n,
                             Group group, Reduction op) = 0;
  /// In place: rank i's part is data[i * n, (i + 1) * n).
  virtual void allGather(float *data, int64_t n, Group group) = 0;
  /// Gathers each rank's `n` floats to `dst` (size n * world) on rank 0.
  virtual void gatherToRoot(const float *src, float *dst, int64_t n,
                            Group group) = 0;
  virtual void barrier() = 0;
  /// Copies `bytes` bytes of host memory from the rank of `group` whose
  /// group rank is `root` to every other rank of the group (how the NCCL
  /// communicators' unique ids travel). A group of one: nothing to do.
  virtual void broadcast(void *data, int64_t bytes, Group group, int root) = 0;
  /// This rank's index among the ranks on its node, and their number: the
  /// GPU a rank drives.
  virtual int localRank() const { return 0; }
  virtual int localSize() const { return 1; }

  /// Point-to-point between pipeline stages (Group::PP): `peer` is the
  /// other stage's offset from this one (+1 the next, -1 the previous);
  /// `tag` pairs a send with its recv, in order among equal tags.
  /// send is non-blocking: it copies `data` before it returns, and
  /// waitSends() completes every send started. recv blocks until `data`
  /// holds the n values. A one-rank communicator has no peers: both end the
  /// job with an error.
  virtual void send(const float *data, int64_t n, int peer, int tag) = 0;
  virtual void recv(float *data, int64_t n, int peer, int tag) = 0;
  virtual void waitSends() {}
  /// A receive posted early (non-blocking): `data` holds the n values after
  /// waitRecv(slot) (the slots of the collectives; the program keeps `data`
  /// untouched in between). The base class receives at once.
  virtual void startRecv(float *data, int64_t n, int peer, int tag, int slot) {
    (void)slot;
    recv(data, n, peer, tag);
  }
  virtual void waitRecv(int slot) { (void)slot; }

  /// Ends every rank of the job now (after a fatal error on this one).
  [[noreturn]] virtual void abort(int code) = 0;

protected:
  int worldSize_ = 1, rank_ = 0, tp_ = 1, dp_ = 1, pp_ = 1;
};

/// The communicator of a single-rank run.
std::unique_ptr<Communicator> createLocalCommunicator();

/// The shape of rank `rank` in a world of tp x dp x pp ranks, for plans
/// made without running (llmrt-memory): its sizes and ranks answer, and any
/// message it is asked to pass is an error that exits.
std::unique_ptr<Communicator> createShapeCommunicator(int rank, int tp, int dp, int pp);

/// The MPI communicator (defined only in the multi-rank runner); nullptr if
/// this binary was built without MPI.
std::unique_ptr<Communicator> createMpiCommunicator(int *argc, char ***argv);

} // namespace llmrt

#endif // LLMRT_COMM_H
