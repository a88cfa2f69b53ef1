//===- Comm.cpp - the group arithmetic and the single-rank communicator ---===//
#include "llmrt/Comm.h"

#include <cstdio>
#include <cstdlib>

namespace llmrt {

int Communicator::groupSize(Group g) const {
  switch (g) {
  case Group::World: return worldSize_;
  case Group::DP: return dp_;
  case Group::TP: return tp_;
  case Group::PP: return pp_;
  case Group::Tied: {
    int stage = rank_ / (tp_ * dp_);
    return pp_ > 1 && (stage == 0 || stage == pp_ - 1) ? 2 : 1;
  }
  }
  return 1;
}

int Communicator::groupRank(Group g) const {
  switch (g) {
  case Group::World: return rank_;
  case Group::DP: return (rank_ / tp_) % dp_;
  case Group::TP: return rank_ % tp_;
  case Group::PP: return rank_ / (tp_ * dp_);
  case Group::Tied: return pp_ > 1 && rank_ / (tp_ * dp_) == pp_ - 1 ? 1 : 0;
  }
  return 0;
}

namespace {
class LocalCommunicator final : public Communicator {
public:
  absl::Status setupGroups(int tp, int dp, int pp) override {
    if (tp * dp * pp != 1)
      return absl::FailedPreconditionError(
          "a plan of more than one rank needs the MPI runner");
    return absl::OkStatus();
  }
  void allReduce(float *, int64_t, Group, Reduction) override {}
  void allReduce(double *, int64_t, Group, Reduction) override {}
  void allGather(float *, int64_t, Group) override {}
  void reduceScatter(const float *src, float *dst, int64_t n, Group,
                     Reduction) override {
    if (src != dst)
      for (int64_t i = 0; i < n; ++i)
        dst[i] = src[i];
  }
  void gatherToRoot(const float *src, float *dst, int64_t n, Group) override {
    for (int64_t i = 0; i < n; ++i)
      dst[i] = src[i];
  }
  void barrier() override {}
  void broadcast(void *, int64_t, Group, int) override {}
  // A one-rank program never holds send or recv (the executor refuses a
  // peer outside the pipeline): reaching one is a bug, never a hang.
  void send(const float *, int64_t, int peer, int) override { noPeer("send", peer); }
  void recv(float *, int64_t, int peer, int) override { noPeer("recv", peer); }
  [[noreturn]] void abort(int code) override { std::exit(code); }

private:
  [[noreturn]] void noPeer(const char *op, int peer) {
    std::fprintf(stderr, "error: %s to pipeline peer %+d: a one-rank run has "
                         "no other stage (pipelines need the MPI runner)\n",
                 op, peer);
    std::fflush(stderr);
    abort(1);
  }
};
/// A rank's place in a world, passing no message (plans made offline).
class ShapeCommunicator final : public Communicator {
public:
  ShapeCommunicator(int rank, int tp, int dp, int pp) {
    rank_ = rank;
    tp_ = tp;
    dp_ = dp;
    pp_ = pp;
    worldSize_ = tp * dp * pp;
  }
  absl::Status setupGroups(int, int, int) override { return absl::OkStatus(); }
  void allReduce(float *, int64_t, Group, Reduction) override { none("all_reduce"); }
  void allReduce(double *, int64_t, Group, Reduction) override { none("all_reduce"); }
  void allGather(float *, int64_t, Group) override { none("all_gather"); }
  void reduceScatter(const float *, float *, int64_t, Group, Reduction) override {
    none("reduce_scatter");
  }
  void gatherToRoot(const float *, float *, int64_t, Group) override { none("gather"); }
  void barrier() override { none("barrier"); }
  void broadcast(void *, int64_t, Group, int) override { none("broadcast"); }
  void send(const float *, int64_t, int, int) override { none("send"); }
  void recv(float *, int64_t, int, int) override { none("recv"); }
  [[noreturn]] void abort(int code) override { std::exit(code); }

private:
  [[noreturn]] void none(const char *op) {
    std::fprintf(stderr, "error: %s on a communicator that only describes rank %d's place "
                         "(no message passes)\n",
                 op, rank_);
    std::fflush(stderr);
    abort(1);
  }
};
} // namespace

std::unique_ptr<Communicator> createLocalCommunicator() {
  return std::make_unique<LocalCommunicator>();
}

std::unique_ptr<Communicator> createShapeCommunicator(int rank, int tp, int dp, int pp) {
  return std::make_unique<ShapeCommunicator>(rank, tp, dp, pp);
}

} // namespace llmrt
