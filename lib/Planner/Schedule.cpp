//===- Schedule.cpp - pipeline schedules and their simulator --------------===//
#include "llm/Planner/Schedule.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <limits>
#include <map>

using namespace mlir;
using namespace mlir::llm;

std::vector<std::vector<PipelineAction>>
mlir::llm::buildPipelineSchedule(Schedule schedule, int64_t pp, int64_t vpp,
                                 int64_t micro, std::string &error) {
  std::vector<std::vector<PipelineAction>> lists(pp);
  if (pp < 1 || vpp < 1 || micro < 1) {
    error = "pp, vpp and micro-batches must be positive";
    return {};
  }
  using A = PipelineAction;
  switch (schedule) {
  case Schedule::GPipe:
    // All forwards, then all backwards (in reverse micro-batch order).
    for (int64_t r = 0; r < pp; ++r) {
      for (int64_t m = 0; m < micro; ++m)
        for (int64_t c = 0; c < vpp; ++c)
          lists[r].push_back({A::Forward, m, c});
      for (int64_t m = micro - 1; m >= 0; --m)
        for (int64_t c = vpp - 1; c >= 0; --c)
          lists[r].push_back({A::Backward, m, c});
    }
    return lists;
  case Schedule::OneFOneB:
    if (vpp != 1) {
      error = "1f1b takes one chunk per rank (vpp=1)";
      return {};
    }
    // Warm-up: pp - rank - 1 forwards; steady state one forward, one
    // backward; cool-down the remaining backwards.
    for (int64_t r = 0; r < pp; ++r) {
      int64_t warm = std::min(pp - r - 1, micro);
      int64_t f = 0, b = 0;
      for (; f < warm; ++f)
        lists[r].push_back({A::Forward, f, 0});
      while (f < micro) {
        lists[r].push_back({A::Forward, f++, 0});
        lists[r].push_back({A::Backward, b++, 0});
      }
      while (b < micro)
        lists[r].push_back({A::Backward, b++, 0});
    }
    return lists;
  case Schedule::Interleaved: {
    if (vpp < 2 || micro % pp != 0) {
      error = llvm::formatv("interleaved needs vpp > 1 and micro-batches "
                            "({0}) divisible by pp ({1})",
                            micro, pp)
                  .str();
      return {};
    }
    // Megatron-LM's interleaved 1F1B: the k-th forward of a rank runs chunk
    // (k / pp) % vpp on micro-batch (k / (pp vpp)) pp + k % pp; backwards
    // walk the chunks in reverse. Warm-up (pp - rank - 1) * 2 + (vpp - 1) pp
    // forwards.
    int64_t total = micro * vpp;
    auto fwd = [&](int64_t k) {
      return A{A::Forward, (k / (pp * vpp)) * pp + k % pp, (k / pp) % vpp};
    };
    auto bwd = [&](int64_t k) {
      return A{A::Backward, (k / (pp * vpp)) * pp + k % pp,
               vpp - 1 - (k / pp) % vpp};
    };
    for (int64_t r = 0; r < pp; ++r) {
      int64_t warm = std::min((pp - r - 1) * 2 + (vpp - 1) * pp, total);
      int64_t f = 0, b = 0;
      for (; f < warm; ++f)
        lists[r].push_back(fwd(f));
      while (f < total) {
        lists[r].push_back(fwd(f++));
        lists[r].push_back(bwd(b++));
      }
      while (b < total)
        lists[r].push_back(bwd(b++));
    }
    return lists;
  }
  }
  return lists;
}

PipelineTimeline mlir::llm::simulatePipeline(
    const std::vector<std::vector<PipelineAction>> &lists, int64_t pp,
    int64_t vpp, int64_t micro, double forward, double backward, double p2p,
    std::string &error) {
  PipelineTimeline t;
  const int64_t stages = pp * vpp;
  // Completion time of each (kind, micro-batch, stage); stage = chunk pp + r.
  const double none = -1;
  std::vector<double> fDone(micro * stages, none), bDone(micro * stages, none);
  auto at = [&](int64_t m, int64_t s) { return m * stages + s; };
  std::vector<size_t> next(pp, 0);
  std::vector<double> free(pp, 0);
  std::vector<int64_t> inFlight(pp, 0);
  t.maxInFlight.assign(pp, 0);
  t.times.assign(pp, {});
  size_t remaining = 0;
  for (const auto &l : lists)
    remaining += l.size();
  if (static_cast<int64_t>(remaining) != 2 * micro * stages) {
    error = "the lists do not hold every forward and backward once";
    return t;
  }
  // Repeatedly start the ready action that can start earliest.
  while (remaining > 0) {
    int64_t best = -1;
    double bestStart = std::numeric_limits<double>::infinity();
    for (int64_t r = 0; r < pp; ++r) {
      if (next[r] >= lists[r].size())
        continue;
      const PipelineAction &a = lists[r][next[r]];
      int64_t s = a.chunk * pp + r;
      double ready = free[r];
      bool ok = true;
      if (a.kind == PipelineAction::Forward) {
        if (s > 0) {
          double d = fDone[at(a.microbatch, s - 1)];
          ok = d >= 0;
          ready = std::max(ready, d + p2p);
        }
      } else {
        double own = fDone[at(a.microbatch, s)];
        ok = own >= 0;
        ready = std::max(ready, own);
        if (s + 1 < stages) {
          double d = bDone[at(a.microbatch, s + 1)];
          ok = ok && d >= 0;
          ready = std::max(ready, d + p2p);
        }
      }
      if (ok && ready < bestStart) {
        bestStart = ready;
        best = r;
      }
    }
    if (best < 0) {
      error = "the schedule deadlocks: no rank can run its next action";
      return t;
    }
    const PipelineAction &a = lists[best][next[best]++];
    int64_t s = a.chunk * pp + best;
    double end = bestStart + (a.kind == PipelineAction::Forward ? forward : backward);
    (a.kind == PipelineAction::Forward ? fDone : bDone)[at(a.microbatch, s)] = end;
    free[best] = end;
    t.times[best].push_back({bestStart, end});
    inFlight[best] += a.kind == PipelineAction::Forward ? 1 : -1;
    t.maxInFlight[best] = std::max(t.maxInFlight[best], inFlight[best]);
    t.makespan = std::max(t.makespan, end);
    --remaining;
  }
  double ideal = micro * vpp * (forward + backward);
  t.bubbleFraction = (t.makespan - ideal) / ideal;
  return t;
}
