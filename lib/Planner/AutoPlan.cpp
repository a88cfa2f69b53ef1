//===- AutoPlan.cpp - the llm-auto-plan pass ------------------------------===//
#include "llm/LLMOps.h"
#include "llm/Planner/Passes.h"
#include "llm/Planner/Planner.h"

#include "mlir/IR/Builders.h"

namespace mlir::llm {
#define GEN_PASS_DEF_AUTOPLAN
#include "llm/Planner/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
using namespace mlir::llm;

namespace {
struct AutoPlanPass : public llm::impl::AutoPlanBase<AutoPlanPass> {
  using AutoPlanBase::AutoPlanBase;
  void runOnOperation() override;
};
} // namespace

void AutoPlanPass::runOnOperation() {
  ModuleOp module = getOperation();
  if (clusterFile.empty()) {
    module.emitError() << "llm-auto-plan: needs cluster=FILE";
    return signalPassFailure();
  }
  auto cluster = loadCluster(clusterFile);
  if (!cluster) {
    module.emitError() << "llm-auto-plan: " << llvm::toString(cluster.takeError());
    return signalPassFailure();
  }
  auto spec = parsePlanSpec(planSpec);
  if (!spec) {
    module.emitError() << "llm-auto-plan: " << llvm::toString(spec.takeError());
    return signalPassFailure();
  }
  FailureOr<ModelProfile> profile = profileModel(module);
  if (failed(profile))
    return signalPassFailure();
  if (vocabAlign < 1) {
    module.emitError() << "llm-auto-plan: vocab-align must be >= 1, got "
                       << static_cast<int64_t>(vocabAlign);
    return signalPassFailure();
  }
  profile->vocabAlign = vocabAlign;
  int64_t world = devices > 0 ? static_cast<int64_t>(devices) : cluster->devices();
  SearchResult r = searchPlans(*profile, *cluster, world, *spec);
  if (!r.found) {
    module.emitError() << "llm-auto-plan: no plan for " << world
                       << " devices: " << r.whyNone;
    return signalPassFailure();
  }
  module->setAttr("llm.plan", planAttribute(&getContext(), world, r.best));
}

Attribute mlir::llm::planAttribute(MLIRContext *ctx, int64_t world,
                                   const PlanCandidate &plan) {
  Builder b(ctx);
  const PlanConfig &c = plan.config;
  const Prediction &p = plan.prediction;
  SmallVector<int64_t> bounds = {0};
  for (auto [begin, end] : p.stages)
    bounds.push_back(end);
  return PlanAttr::get(ctx, world, c.dp, c.tp, c.sp ? 1 : 0, c.pp, c.vpp,
                       c.zero, b.getStringAttr(rematLabel(c.remat, c.rematLayers)), c.mbs,
                       p.microbatches, b.getStringAttr(scheduleName(c.schedule)),
                       b.getDenseI64ArrayAttr(bounds),
                       b.getF64FloatAttr(p.stepTime),
                       static_cast<int64_t>(p.memory()));
}
