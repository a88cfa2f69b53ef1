//===- Comm.cpp - the group arithmetic and the single-rank communicator ---===//
#include "llmrt/Comm.h"

#include <cstdlib>

namespace llmrt {

int Communicator::groupSize(Group g) const {
  switch (g) {
  case Group::World: return worldSize_;
  case Group::DP: return dp_;
  case Group::TP: return tp_;
  }
  return 1;
}

int Communicator::groupRank(Group g) const {
  switch (g) {
  case Group::World: return rank_;
  case Group::DP: return rank_ / tp_;
  case Group::TP: return rank_ % tp_;
  }
  return 0;
}

namespace {
class LocalCommunicator final : public Communicator {
public:
  absl::Status setupGroups(int tp, int dp) override {
    if (tp * dp != 1)
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
  [[noreturn]] void abort(int code) override { std::exit(code); }
};
} // namespace

std::unique_ptr<Communicator> createLocalCommunicator() {
  return std::make_unique<LocalCommunicator>();
}

} // namespace llmrt
