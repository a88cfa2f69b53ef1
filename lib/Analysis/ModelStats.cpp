//===- ModelStats.cpp - parameter, FLOP and token counts ------------------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/LLMOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

using namespace mlir;
using namespace mlir::llm;

FailureOr<func::FuncOp> mlir::llm::getModelFunction(ModuleOp module) {
  SmallVector<func::FuncOp> models;
  for (auto fn : module.getOps<func::FuncOp>()) {
    if (fn.isExternal() || fn->hasAttr(kTrainStepAttr))
      continue;
    for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i)
      if (fn.getArgAttr(i, kParamAttr)) {
        models.push_back(fn);
        break;
      }
  }
  if (models.size() == 1)
    return models.front();
  if (models.empty())
    return module.emitError()
           << "no model function: expected a func.func with '" << kParamAttr
           << "' arguments";
  InFlightDiagnostic diag = module.emitError()
                            << "expected one model function, found "
                            << models.size();
  for (auto fn : models)
    diag.attachNote(fn.getLoc()) << "model function @" << fn.getSymName();
  return diag;
}

FailureOr<ModelStats> mlir::llm::computeModelStats(func::FuncOp fn) {
  ModelStats stats;
  bool haveTokens = false;
  for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i) {
    auto type = dyn_cast<ShapedType>(fn.getArgument(i).getType());
    if (!type || !type.hasStaticShape())
      continue;
    if (fn.getArgAttr(i, kParamAttr))
      stats.params += type.getNumElements();
    auto input = fn.getArgAttrOfType<StringAttr>(i, kInputAttr);
    if (input && input.getValue() == "tokens") {
      stats.tokensPerStep = type.getNumElements();
      haveTokens = true;
    }
  }
  if (!haveTokens)
    return fn.emitError() << "model function @" << fn.getSymName()
                          << " has no argument with " << kInputAttr
                          << " = \"tokens\"";
  fn.walk([&](FlopCountOpInterface op) {
    int64_t fwd = op.getMatmulFlops();
    int64_t step = 0;
    stats.flopsOverflow |=
        __builtin_mul_overflow(fwd, 1 + op.getBackwardFlopsFactor(), &step) ||
        __builtin_add_overflow(stats.forwardMatmulFlops, fwd,
                               &stats.forwardMatmulFlops) ||
        __builtin_add_overflow(stats.flopsPerStep, step, &stats.flopsPerStep);
    stats.flopsPerStepF += static_cast<double>(fwd) *
                           static_cast<double>(1 + op.getBackwardFlopsFactor());
  });
  return stats;
}
