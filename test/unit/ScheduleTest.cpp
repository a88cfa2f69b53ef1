//===- ScheduleTest.cpp - pipeline schedules against the formulas ---------===//
//
// The bubble fraction of each schedule, simulated from its action lists,
// equals shared/reference/formulas.md: GPipe and 1F1B (p-1)/m, interleaved
// 1F1B (p-1)/(v m); 1F1B holds at most p micro-batches on the first stage,
// GPipe m.
//
//===----------------------------------------------------------------------===//
#include "llm/Planner/Schedule.h"

#include <gtest/gtest.h>

using namespace mlir::llm;

namespace {
PipelineTimeline run(Schedule s, int64_t p, int64_t v, int64_t m,
                     double f = 1.0, double b = 2.0) {
  std::string err;
  auto lists = buildPipelineSchedule(s, p, v, m, err);
  EXPECT_TRUE(err.empty()) << err;
  auto t = simulatePipeline(lists, p, v, m, f / v, b / v, 0.0, err);
  EXPECT_TRUE(err.empty()) << err;
  return t;
}
} // namespace

TEST(PipelineSchedule, GPipeAndOneFOneBBubble) {
  for (int64_t p : {2, 4, 8})
    for (int64_t m : {p, 2 * p, 4 * p, 3 * p + 1}) {
      for (Schedule s : {Schedule::GPipe, Schedule::OneFOneB}) {
        PipelineTimeline t = run(s, p, 1, m);
        EXPECT_NEAR(t.bubbleFraction, double(p - 1) / m, 1e-12)
            << scheduleName(s) << " p=" << p << " m=" << m;
      }
      // Activations in flight: 1F1B at most p - r micro-batches on rank r,
      // GPipe all m.
      PipelineTimeline one = run(Schedule::OneFOneB, p, 1, m);
      PipelineTimeline gp = run(Schedule::GPipe, p, 1, m);
      for (int64_t r = 0; r < p; ++r)
        EXPECT_EQ(one.maxInFlight[r], std::min(p - r, m)) << "rank " << r;
      EXPECT_EQ(gp.maxInFlight[0], m);
    }
}

TEST(PipelineSchedule, InterleavedBubble) {
  for (int64_t p : {2, 4})
    for (int64_t v : {2, 3, 4})
      for (int64_t m : {p, 2 * p, 4 * p}) {
        PipelineTimeline t = run(Schedule::Interleaved, p, v, m);
        EXPECT_NEAR(t.bubbleFraction, double(p - 1) / (v * m), 1e-12)
            << "p=" << p << " v=" << v << " m=" << m;
      }
}

TEST(PipelineSchedule, EveryActionOnceAndErrors) {
  std::string err;
  auto lists = buildPipelineSchedule(Schedule::Interleaved, 4, 2, 8, err);
  ASSERT_TRUE(err.empty());
  for (const auto &l : lists)
    EXPECT_EQ(l.size(), 2u * 8 * 2);
  buildPipelineSchedule(Schedule::Interleaved, 4, 2, 6, err);
  EXPECT_EQ(err, "interleaved needs vpp > 1 and micro-batches (6) divisible "
                 "by pp (4)");
  // A list that waits for a backward that never comes: reported, not hung.
  err.clear();
  std::vector<std::vector<PipelineAction>> bad = {
      {{PipelineAction::Backward, 0, 0}, {PipelineAction::Forward, 0, 0}},
      {{PipelineAction::Backward, 0, 0}, {PipelineAction::Forward, 0, 0}}};
  simulatePipeline(bad, 2, 1, 1, 1, 2, 0, err);
  EXPECT_EQ(err, "the schedule deadlocks: no rank can run its next action");
}
