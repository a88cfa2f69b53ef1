//===- CommMpi.cpp - the MPI communicator ---------------------------------===//
//
// The only translation unit that includes mpi.h. Errors in MPI calls abort
// the whole job (MPI_ERRORS_ARE_FATAL, the default): a failing rank never
// leaves the others waiting.
//
//===----------------------------------------------------------------------===//
#include "llmrt/Comm.h"

#include "absl/strings/str_cat.h"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <vector>

namespace llmrt {

namespace {

/// MPI counts are int: a larger message is a fatal error of the plan.
int count(int64_t n) {
  if (n > INT32_MAX) {
    std::fprintf(stderr, "error: a collective of %lld elements exceeds MPI's "
                         "int count\n", static_cast<long long>(n));
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return static_cast<int>(n);
}

MPI_Op opOf(Reduction r) {
  return r == Reduction::Max ? MPI_MAX : MPI_SUM;
}

class MpiCommunicator final : public Communicator {
public:
  MpiCommunicator() {
    MPI_Comm_size(MPI_COMM_WORLD, &worldSize_);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    // The ranks that share this node's memory (and its GPUs).
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_,
                        MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &localRank_);
    MPI_Comm_size(node, &localSize_);
    MPI_Comm_free(&node);
  }
  int localRank() const override { return localRank_; }
  int localSize() const override { return localSize_; }
  ~MpiCommunicator() override {
    for (MPI_Comm *c : {&dpComm, &tpComm, &ppComm, &tiedComm})
      if (*c != MPI_COMM_NULL)
        MPI_Comm_free(c);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized)
      MPI_Finalize();
  }

  absl::Status setupGroups(int tp, int dp, int pp) override {
    if (tp < 1 || dp < 1 || pp < 1 ||
        static_cast<int64_t>(tp) * dp * pp != worldSize_)
      return absl::FailedPreconditionError(
          absl::StrCat("plan tp ", tp, " x dp ", dp, " x pp ", pp,
                       " is not the world of ", worldSize_));
    tp_ = tp;
    dp_ = dp;
    pp_ = pp;
    // rank = tp_rank + tp dp_rank + tp dp pp_rank. Every split is called by
    // every rank (MPI_Comm_split is collective over the world).
    int tpRank = rank_ % tp, dpRank = (rank_ / tp) % dp, stage = rank_ / (tp * dp);
    MPI_Comm_split(MPI_COMM_WORLD, dpRank + dp * stage, tpRank, &tpComm);
    MPI_Comm_split(MPI_COMM_WORLD, tpRank + tp * stage, dpRank, &dpComm);
    MPI_Comm_split(MPI_COMM_WORLD, tpRank + tp * dpRank, stage, &ppComm);
    // The tied group joins the two ends of each pipeline; the middle
    // stages (and a pipeline of one stage) take no part.
    bool end = pp > 1 && (stage == 0 || stage == pp - 1);
    MPI_Comm_split(MPI_COMM_WORLD, end ? tpRank + tp * dpRank : MPI_UNDEFINED,
                   stage, &tiedComm);
    return absl::OkStatus();
  }

  MPI_Comm comm(Group g) const {
    switch (g) {
    case Group::World: return MPI_COMM_WORLD;
    case Group::DP: return dpComm;
    case Group::TP: return tpComm;
    case Group::PP: return ppComm;
    case Group::Tied: return tiedComm;
    }
    return MPI_COMM_WORLD;
  }

  void allReduce(float *data, int64_t n, Group g, Reduction op) override {
    int size = groupSize(g);
    if (size == 1)
      return;
    MPI_Allreduce(MPI_IN_PLACE, data, count(n), MPI_FLOAT, opOf(op),
                  comm(g));
    if (op == Reduction::Mean)
      for (int64_t i = 0; i < n; ++i)
        data[i] /= static_cast<float>(size);
  }
  void startAllReduce(float *data, int64_t n, Group g, Reduction op,
                      int slot) override {
    int size = groupSize(g);
    if (size == 1)
      return;
    Pending &p = reserve(slot);
    p = {MPI_REQUEST_NULL, data, n, op == Reduction::Mean ? size : 1};
    MPI_Iallreduce(MPI_IN_PLACE, data, count(n), MPI_FLOAT, opOf(op), comm(g),
                   &p.request);
    ++outstanding_;
  }
  void startAllGather(float *data, int64_t n, Group g, int slot) override {
    if (groupSize(g) == 1)
      return;
    Pending &p = reserve(slot);
    p = {MPI_REQUEST_NULL, data, n, 1};
    MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data, count(n), MPI_FLOAT,
                   comm(g), &p.request);
    ++outstanding_;
  }
  void startReduceScatter(const float *src, float *dst, int64_t n, Group g,
                          Reduction op, int slot) override {
    int size = groupSize(g);
    if (size == 1) {
      if (src != dst)
        std::copy(src, src + n, dst);
      return;
    }
    Pending &p = reserve(slot);
    p = {MPI_REQUEST_NULL, dst, n, op == Reduction::Mean ? size : 1};
    MPI_Ireduce_scatter_block(src, dst, count(n), MPI_FLOAT, opOf(op), comm(g),
                              &p.request);
    ++outstanding_;
  }
  void waitAllReduce(int slot) override {
    if (slot < 0 || static_cast<size_t>(slot) >= pending_.size())
      return; // a group of one: nothing was started
    Pending &p = pending_[slot];
    if (p.data == nullptr)
      return;
    if (p.request != MPI_REQUEST_NULL)
      MPI_Wait(&p.request, MPI_STATUS_IGNORE);
    if (p.divide > 1)
      for (int64_t i = 0; i < p.n; ++i)
        p.data[i] /= static_cast<float>(p.divide);
    p.data = nullptr;
    --outstanding_;
  }
  void progress() override {
    for (Pending &p : pending_)
      if (p.request != MPI_REQUEST_NULL) {
        int done = 0;
        MPI_Test(&p.request, &done, &p.status);
      }
    // Completed sends free their staging buffers.
    for (Staged &s : sends_)
      if (s.request != MPI_REQUEST_NULL) {
        int done = 0;
        MPI_Test(&s.request, &done, MPI_STATUS_IGNORE);
        if (done)
          --sending_;
      }
  }
  bool pending() const override { return outstanding_ > 0 || sending_ > 0; }

  void send(const float *data, int64_t n, int peer, int tag) override {
    int to = peerRank("send", peer);
    // A free staging buffer (grown once to the largest message, kept for
    // the next steps), else a new one.
    Staged *s = nullptr;
    for (Staged &c : sends_)
      if (c.request == MPI_REQUEST_NULL && (!s || c.data.size() > s->data.size()))
        s = &c;
    if (!s) {
      sends_.emplace_back();
      s = &sends_.back();
    }
    if (s->data.size() < static_cast<size_t>(n))
      s->data.resize(n);
    std::copy(data, data + n, s->data.data());
    MPI_Isend(s->data.data(), count(n), MPI_FLOAT, to, tag, ppComm, &s->request);
    ++sending_;
  }
  void recv(float *data, int64_t n, int peer, int tag) override {
    int from = peerRank("recv", peer);
    MPI_Status status;
    MPI_Recv(data, count(n), MPI_FLOAT, from, tag, ppComm, &status);
    int got = 0;
    MPI_Get_count(&status, MPI_FLOAT, &got);
    if (got != n) {
      std::fprintf(stderr, "error: rank %d: recv from pipeline peer %+d (tag %d) "
                           "got %d floats, expected %lld (the stages' programs "
                           "disagree)\n",
                   rank_, peer, tag, got, static_cast<long long>(n));
      abort(1);
    }
  }
  void startRecv(float *data, int64_t n, int peer, int tag, int slot) override {
    int from = peerRank("recv", peer);
    Pending &p = reserve(slot);
    p = {MPI_REQUEST_NULL, data, n, 1, peer, tag, MPI_Status{}};
    MPI_Irecv(data, count(n), MPI_FLOAT, from, tag, ppComm, &p.request);
    ++outstanding_;
  }
  void waitRecv(int slot) override {
    if (slot < 0 || static_cast<size_t>(slot) >= pending_.size() ||
        pending_[slot].data == nullptr || pending_[slot].tag < 0) {
      std::fprintf(stderr, "error: rank %d: recv slot %d waited for but not "
                           "started\n", rank_, slot);
      abort(1);
    }
    Pending &p = pending_[slot];
    if (p.request != MPI_REQUEST_NULL)
      MPI_Wait(&p.request, &p.status);
    int got = 0;
    MPI_Get_count(&p.status, MPI_FLOAT, &got);
    if (got != p.n) {
      std::fprintf(stderr, "error: rank %d: recv from pipeline peer %+d (tag %d) "
                           "got %d floats, expected %lld (the stages' programs "
                           "disagree)\n",
                   rank_, p.peer, p.tag, got, static_cast<long long>(p.n));
      abort(1);
    }
    p.data = nullptr;
    p.tag = -1;
    --outstanding_;
  }
  void waitSends() override {
    for (Staged &s : sends_)
      if (s.request != MPI_REQUEST_NULL)
        MPI_Wait(&s.request, MPI_STATUS_IGNORE);
    sending_ = 0;
  }

  void allReduce(double *data, int64_t n, Group g, Reduction op) override {
    int size = groupSize(g);
    if (size == 1)
      return;
    MPI_Allreduce(MPI_IN_PLACE, data, count(n), MPI_DOUBLE,
                  opOf(op), comm(g));
    if (op == Reduction::Mean)
      for (int64_t i = 0; i < n; ++i)
        data[i] /= size;
  }
  void reduceScatter(const float *src, float *dst, int64_t n, Group g,
                     Reduction op) override {
    int size = groupSize(g);
    if (size == 1) {
      if (src != dst)
        std::copy(src, src + n, dst);
      return;
    }
    MPI_Reduce_scatter_block(src, dst, count(n), MPI_FLOAT,
                             opOf(op), comm(g));
    if (op == Reduction::Mean)
      for (int64_t i = 0; i < n; ++i)
        dst[i] /= static_cast<float>(size);
  }
  void allGather(float *data, int64_t n, Group g) override {
    if (groupSize(g) == 1)
      return;
    MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, data,
                  count(n), MPI_FLOAT, comm(g));
  }
  void gatherToRoot(const float *src, float *dst, int64_t n,
                    Group g) override {
    if (groupSize(g) == 1) {
      std::copy(src, src + n, dst);
      return;
    }
    MPI_Gather(src, count(n), MPI_FLOAT, dst, count(n),
               MPI_FLOAT, 0, comm(g));
  }
  void barrier() override { MPI_Barrier(MPI_COMM_WORLD); }
  void broadcast(void *data, int64_t bytes, Group g, int root) override {
    if (groupSize(g) == 1)
      return;
    MPI_Bcast(data, count(bytes), MPI_BYTE, root, comm(g));
  }
  [[noreturn]] void abort(int code) override {
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, code);
    std::_Exit(code);
  }

private:
  int localRank_ = 0, localSize_ = 1;
  MPI_Comm dpComm = MPI_COMM_NULL, tpComm = MPI_COMM_NULL,
           ppComm = MPI_COMM_NULL, tiedComm = MPI_COMM_NULL;
  /// Sends in flight, each from its own copy of the data (the arena may be
  /// overwritten as soon as the instruction returns). A deque: the
  /// buffers never move while MPI holds them.
  struct Staged {
    std::vector<float> data;
    MPI_Request request = MPI_REQUEST_NULL;
  };
  std::deque<Staged> sends_;
  int sending_ = 0;

  /// The rank in the pipeline group of the stage `peer` away from this one
  /// (a program error outside the pipeline ends the job).
  int peerRank(const char *op, int peer) {
    int stage = groupRank(Group::PP), to = stage + peer;
    if (peer == 0 || to < 0 || to >= pp_) {
      std::fprintf(stderr, "error: rank %d: %s to pipeline peer %+d from stage "
                           "%d is outside the %d stage(s)\n",
                   rank_, op, peer, stage, pp_);
      abort(1);
    }
    return to;
  }
  /// Started all-reduces, gathers and receives by slot (the division of a
  /// mean waits for the end; a receive checks its count then).
  struct Pending {
    MPI_Request request = MPI_REQUEST_NULL;
    float *data = nullptr;
    int64_t n = 0;
    int divide = 1;
    int peer = 0, tag = -1; ///< a receive: tag >= 0
    MPI_Status status{};
  };
  std::vector<Pending> pending_;
  int outstanding_ = 0;

  /// The free record of `slot` (a program error ends the job).
  Pending &reserve(int slot) {
    if (slot < 0 || slot >= (1 << 16)) {
      std::fprintf(stderr, "error: rank %d: collective slot %d out of range\n", rank_, slot);
      abort(1);
    }
    if (static_cast<size_t>(slot) >= pending_.size())
      pending_.resize(slot + 1);
    Pending &p = pending_[slot];
    if (p.data != nullptr) {
      std::fprintf(stderr, "error: rank %d: collective slot %d started twice\n", rank_, slot);
      abort(1);
    }
    return p;
  }
};

} // namespace

std::unique_ptr<Communicator> createMpiCommunicator(int *argc, char ***argv) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized)
    MPI_Init(argc, argv);
  return std::make_unique<MpiCommunicator>();
}

} // namespace llmrt
