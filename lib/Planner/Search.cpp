//===- Search.cpp - the plan search ---------------------------------------===//
//
// Enumerates dp x tp x pp factorizations of the world (tp inside a node),
// virtual stages, schedules, sequence parallelism, ZeRO stages, remat modes
// and micro-batch sizes, evaluates each with the cost model, and keeps the
// fastest that fits. Pruning: for a fixed configuration memory grows with
// the micro-batch size, so the first size that does not fit ends that loop;
// a lower bound on the step time (compute at full efficiency on every
// device) skips families that cannot beat the best plan found.
//
//===----------------------------------------------------------------------===//
#include "llm/Planner/Planner.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <chrono>
#include <map>

using namespace mlir;
using namespace mlir::llm;

llvm::Expected<PlanSpec> mlir::llm::parsePlanSpec(llvm::StringRef spec) {
  PlanSpec s;
  auto err = [&](const llvm::Twine &msg) {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   ("--plan: " + msg).str());
  };
  if (spec == "auto" || spec.empty())
    return s;
  llvm::SmallVector<llvm::StringRef> parts;
  spec.split(parts, ',', -1, false);
  for (llvm::StringRef part : parts) {
    auto [key, value] = part.split('=');
    key = key.trim();
    value = value.trim();
    if (value.empty())
      return err("'" + part + "' is not key=value");
    int64_t n = 0;
    bool isInt = !value.getAsInteger(10, n);
    auto needInt = [&](std::optional<int64_t> &slot,
                       int64_t min) -> llvm::Error {
      if (!isInt || n < min)
        return err(llvm::formatv("{0}={1}: expected an integer >= {2}", key,
                                 value, min)
                       .str());
      slot = n;
      return llvm::Error::success();
    };
    llvm::Error e = llvm::Error::success();
    if (key == "dp") e = needInt(s.dp, 1);
    else if (key == "tp") e = needInt(s.tp, 1);
    else if (key == "pp") e = needInt(s.pp, 1);
    else if (key == "vpp") e = needInt(s.vpp, 1);
    else if (key == "zero") e = needInt(s.zero, 0);
    else if (key == "mbs") e = needInt(s.mbs, 1);
    else if (key == "mb") e = needInt(s.microbatches, 1);
    else if (key == "sp") {
      if (!isInt || (n != 0 && n != 1))
        return err("sp=" + value + ": expected 0 or 1");
      s.sp = n == 1;
    } else if (key == "remat") {
      if (value == "none") s.remat = Remat::None;
      else if (value == "selective") s.remat = Remat::Selective;
      else if (value == "full") s.remat = Remat::Full;
      else if (value == "budget") s.remat = Remat::Budget;
      else if (value.starts_with("budget:")) {
        int64_t k;
        if (value.drop_front(7).getAsInteger(10, k) || k < 1)
          return err("remat=" + value + ": expected budget:K with K >= 1 layers");
        s.remat = Remat::Budget;
        s.rematLayers = k;
      } else
        return err("remat=" + value +
                   ": expected none, selective, full, budget or budget:K");
    } else if (key == "schedule") {
      if (value == "gpipe") s.schedule = Schedule::GPipe;
      else if (value == "1f1b") s.schedule = Schedule::OneFOneB;
      else if (value == "interleaved") s.schedule = Schedule::Interleaved;
      else return err("schedule=" + value + ": expected gpipe, 1f1b or interleaved");
    } else {
      return err("unknown key '" + key +
                 "' (keys: dp, tp, pp, vpp, sp, zero, remat, mbs, mb, schedule)");
    }
    if (e)
      return std::move(e);
  }
  if (s.zero && *s.zero > 3)
    return err(llvm::formatv("zero={0}: expected 0-3", *s.zero).str());
  if (s.mbs && s.microbatches)
    return err("give mbs or mb, not both");
  return s;
}

namespace {

std::vector<int64_t> divisors(int64_t n) {
  std::vector<int64_t> d;
  for (int64_t i = 1; i * i <= n; ++i)
    if (n % i == 0) {
      d.push_back(i);
      if (i != n / i)
        d.push_back(n / i);
    }
  std::sort(d.begin(), d.end());
  return d;
}

template <typename T>
std::vector<T> choices(const std::optional<T> &fixed, std::vector<T> all) {
  if (fixed)
    return {*fixed};
  return all;
}

/// The component of `a` that grew most against `best`, as a reason.
std::string slowerReason(const Prediction &a, const Prediction &best) {
  struct Part {
    const char *name;
    double delta;
  } parts[] = {
      {"compute", a.compute - best.compute},
      {"recompute", a.recompute - best.recompute},
      {"tensor-parallel communication", a.tpComm - best.tpComm},
      {"pipeline communication", a.ppComm - best.ppComm},
      {"data-parallel communication", a.dpComm - best.dpComm},
      {"pipeline bubble", a.bubble - best.bubble},
      {"optimizer step", a.optimizer - best.optimizer},
  };
  const Part *worst = &parts[0];
  for (const Part &p : parts)
    if (p.delta > worst->delta)
      worst = &p;
  double pct = (a.stepTime / best.stepTime - 1.0) * 100.0;
  return llvm::formatv("{0:f0}% slower: {1}", pct, worst->name).str();
}

std::string familyKey(const PlanConfig &c) {
  return llvm::formatv("dp={0} tp={1} pp={2}", c.dp, c.tp, c.pp).str();
}

} // namespace

SearchResult mlir::llm::searchPlans(const ModelProfile &m, const Cluster &cl,
                                    int64_t world, const PlanSpec &spec,
                                    bool exhaustive) {
  auto start = std::chrono::steady_clock::now();
  SearchResult res;
  // Best feasible and best infeasible (memory) plan per dp x tp x pp family,
  // and structural rejections, for the alternatives.
  std::map<std::string, PlanCandidate> bestOfFamily, memoryOfFamily;
  std::map<std::string, std::string> rejected;
  std::string firstReason;
  // The memory-infeasible plan with the smallest footprint: what to name
  // when nothing fits.
  double leastMemory = 0;
  std::string leastReason;

  auto peak = cl.peak(m.peakPrecision());
  double peakRate = peak ? *peak * 1e12 : 0;
  if (!peak) {
    res.whyNone = llvm::toString(peak.takeError());
    return res;
  }
  // Lower bound of any plan's step time: the model FLOPs at full peak.
  double lowerBoundAll = m.flopsPerStep / (peakRate * world);

  for (int64_t tp : divisors(world)) {
    if (spec.tp && tp != *spec.tp)
      continue;
    for (int64_t pp : divisors(world / tp)) {
      if (spec.pp && pp != *spec.pp)
        continue;
      int64_t dp = world / (tp * pp);
      if (spec.dp && dp != *spec.dp)
        continue;
      PlanConfig base;
      base.dp = dp;
      base.tp = tp;
      base.pp = pp;
      // Structural checks that do not depend on the inner choices.
      PlanConfig probe = base;
      probe.vpp = 1;
      probe.schedule = Schedule::OneFOneB;
      probe.mbs = 1;
      if (std::string why = checkPlan(m, cl, world, probe);
          !why.empty() && why.find("micro-batch") == std::string::npos &&
          why.find("layers") == std::string::npos) {
        rejected[familyKey(base)] = why;
        if (firstReason.empty())
          firstReason = why;
        continue;
      }
      if (!exhaustive && res.found && lowerBoundAll > res.best.prediction.stepTime)
        continue;
      std::vector<int64_t> vpps;
      for (int64_t v = 1; v <= m.layers; ++v)
        // One chunk per rank may hold any share of the layers; interleaved
        // chunks split them evenly (Megatron).
        if ((v == 1 ? pp <= m.layers : m.layers % (pp * v) == 0) &&
            (!spec.vpp || *spec.vpp == v))
          vpps.push_back(v);
      if (vpps.empty()) {
        std::string why =
            spec.vpp && *spec.vpp > 1
                ? llvm::formatv("pp={0} x vpp={1} does not divide {2} layers",
                                pp, *spec.vpp, m.layers).str()
                : llvm::formatv("pp={0} stages for {1} layers (at least one each)",
                                pp, m.layers).str();
        rejected[familyKey(base)] = why;
        if (firstReason.empty())
          firstReason = why;
        continue;
      }
      for (int64_t vpp : vpps)
        for (Schedule sched : choices<Schedule>(spec.schedule,
                                                {Schedule::GPipe,
                                                 Schedule::OneFOneB,
                                                 Schedule::Interleaved})) {
          if ((vpp > 1) != (sched == Schedule::Interleaved)) {
            if (spec.schedule && spec.vpp && firstReason.empty())
              firstReason = vpp > 1 ? "vpp > 1 needs schedule=interleaved"
                                    : "schedule=interleaved needs vpp > 1";
            continue;
          }
          if (pp == 1 && sched != Schedule::OneFOneB && !spec.schedule)
            continue; // no pipeline: the schedules coincide
          for (bool sp : choices<bool>(spec.sp, {false, true})) {
            if (sp && tp < 2)
              continue;
            for (int64_t zero : choices<int64_t>(spec.zero, {0, 1, 2, 3})) {
              if (!spec.zero && ((zero > 0 && dp < 2) || (zero >= 2 && pp > 1)))
                continue;
              for (Remat remat : choices<Remat>(spec.remat,
                                                {Remat::None, Remat::Selective,
                                                 Remat::Full, Remat::Budget})) {
                // A budget is a subset of each pipeline rank's layers (at
                // least two of them, else it is none or full).
                if (remat == Remat::Budget && m.layers / pp < 2)
                  continue;
                std::vector<int64_t> sizes;
                if (spec.microbatches) {
                  if (m.batch % (dp * *spec.microbatches) == 0)
                    sizes.push_back(m.batch / (dp * *spec.microbatches));
                  else if (firstReason.empty())
                    firstReason = llvm::formatv(
                        "the batch of {0} does not divide into dp={1} x {2} "
                        "micro-batches",
                        m.batch, dp, *spec.microbatches);
                } else {
                  for (int64_t s : divisors(m.batch % dp == 0 ? m.batch / dp : 1))
                    if (!spec.mbs || *spec.mbs == s)
                      sizes.push_back(s);
                  if (spec.mbs && sizes.empty())
                    sizes.push_back(*spec.mbs);
                }
                for (int64_t mbs : sizes) {
                  PlanConfig c = base;
                  c.vpp = vpp;
                  c.schedule = sched;
                  c.sp = sp;
                  c.zero = zero;
                  c.remat = remat;
                  c.mbs = mbs;
                  if (remat == Remat::Budget) {
                    // The fewest recomputed layers per pipeline rank that
                    // fit (memory falls with each one): fixed, or a
                    // bisection of [1, L/pp - 1].
                    if (spec.rematLayers) {
                      c.rematLayers = *spec.rematLayers;
                    } else {
                      int64_t lo = 1, hi = m.layers / pp - 1;
                      while (lo < hi) {
                        int64_t mid = (lo + hi) / 2;
                        c.rematLayers = mid;
                        ++res.evaluated;
                        if (evaluatePlan(m, cl, world, c).feasible)
                          hi = mid;
                        else
                          lo = mid + 1;
                      }
                      c.rematLayers = lo;
                    }
                  }
                  Prediction p = evaluatePlan(m, cl, world, c);
                  ++res.evaluated;
                  std::string key = familyKey(c);
                  if (!p.feasible) {
                    if (p.infeasibleReason.find("GiB") != std::string::npos) {
                      auto it = memoryOfFamily.find(key);
                      if (it == memoryOfFamily.end() ||
                          p.memory() < it->second.prediction.memory()) {
                        // Keep the memory-infeasible plan closest to fitting.
                        memoryOfFamily[key] = {c, p, p.infeasibleReason};
                      }
                      if (leastReason.empty() || p.memory() < leastMemory) {
                        leastMemory = p.memory();
                        leastReason = p.infeasibleReason +
                                      " even with the smallest plan (" +
                                      describePlan(c) + ")";
                      }
                      // Memory grows with the micro-batch size.
                      if (!exhaustive)
                        break;
                      continue;
                    }
                    if (firstReason.empty())
                      firstReason = p.infeasibleReason;
                    continue;
                  }
                  auto it = bestOfFamily.find(key);
                  if (it == bestOfFamily.end() ||
                      p.stepTime < it->second.prediction.stepTime)
                    bestOfFamily[key] = {c, p, ""};
                  if (!res.found || p.stepTime < res.best.prediction.stepTime) {
                    res.found = true;
                    res.best = {c, p, ""};
                  }
                }
              }
            }
          }
        }
    }
  }

  if (res.found) {
    std::string bestKey = familyKey(res.best.config);
    std::vector<PlanCandidate> alts;
    for (auto &[key, cand] : bestOfFamily)
      if (key != bestKey) {
        cand.reason = slowerReason(cand.prediction, res.best.prediction);
        alts.push_back(cand);
      }
    std::sort(alts.begin(), alts.end(), [](const auto &a, const auto &b) {
      return a.prediction.stepTime < b.prediction.stepTime;
    });
    if (alts.size() > 5)
      alts.resize(5);
    // Families that only run out of memory: the nearest miss.
    std::vector<PlanCandidate> mem;
    for (auto &[key, cand] : memoryOfFamily)
      if (!bestOfFamily.count(key))
        mem.push_back(cand);
    std::sort(mem.begin(), mem.end(), [](const auto &a, const auto &b) {
      return a.prediction.memory() < b.prediction.memory();
    });
    for (size_t i = 0; i < mem.size() && i < 3; ++i)
      alts.push_back(mem[i]);
    for (auto &[key, why] : rejected) {
      if (alts.size() >= 10)
        break;
      PlanCandidate c;
      int64_t dp = 0, tp = 0, pp = 0;
      (void)std::sscanf(key.c_str(), "dp=%ld tp=%ld pp=%ld", &dp, &tp, &pp);
      c.config.dp = dp;
      c.config.tp = tp;
      c.config.pp = pp;
      c.prediction.feasible = false;
      c.prediction.infeasibleReason = why;
      c.reason = why;
      alts.push_back(c);
    }
    res.alternatives = std::move(alts);
  } else {
    res.whyNone = !leastReason.empty() ? leastReason
                  : firstReason.empty()
                      ? std::string("no plan satisfies the given keys")
                      : firstReason;
  }
  res.searchTimeS =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  return res;
}
