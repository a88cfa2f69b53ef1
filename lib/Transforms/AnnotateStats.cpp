//===- AnnotateStats.cpp - attach llm.stats to the module -----------------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/Transforms/Passes.h"

#include "mlir/IR/Builders.h"

namespace mlir::llm {
#define GEN_PASS_DEF_ANNOTATESTATS
#include "llm/Transforms/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
using namespace mlir::llm;

namespace {
struct AnnotateStatsPass
    : public llm::impl::AnnotateStatsBase<AnnotateStatsPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    FailureOr<func::FuncOp> fn = getModelFunction(module);
    if (failed(fn))
      return signalPassFailure();
    FailureOr<ModelStats> stats = computeModelStats(*fn);
    if (failed(stats))
      return signalPassFailure();
    Builder b(&getContext());
    NamedAttribute entries[] = {
        b.getNamedAttr("flops_per_step", b.getI64IntegerAttr(stats->flopsPerStep)),
        b.getNamedAttr("params", b.getI64IntegerAttr(stats->params)),
        b.getNamedAttr("tokens_per_step",
                       b.getI64IntegerAttr(stats->tokensPerStep))};
    module->setAttr("llm.stats", b.getDictionaryAttr(entries));
  }
};
} // namespace
