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

LogicalResult mlir::llm::recordWholeModelStats(ModuleOp module,
                                               func::FuncOp fn) {
  if (module->hasAttr("llm.stats"))
    return success();
  FailureOr<ModelStats> stats = computeModelStats(fn);
  if (failed(stats))
    return failure();
  Builder b(module.getContext());
  // Where each parameter's draws start in the runtime's one random stream
  // (a normal init draws two numbers per pair of elements), in one order
  // for every plan (the last parameter first), so that every rank of every
  // plan initializes the whole model's values.
  SmallVector<NamedAttribute> draws;
  int64_t next = 0;
  for (unsigned i = fn.getNumArguments(); i-- > 0;) {
    auto name = fn.getArgAttrOfType<StringAttr>(i, kParamAttr);
    if (!name)
      continue;
    draws.push_back(b.getNamedAttr(name, b.getI64IntegerAttr(next)));
    auto init = fn.getArgAttrOfType<StringAttr>(i, "llm.init");
    if (init && init.getValue() == "normal")
      next += 2 * ((cast<ShapedType>(fn.getArgument(i).getType()).getNumElements() + 1) / 2);
  }
  NamedAttribute entries[] = {
      b.getNamedAttr("flops_per_step", b.getF64FloatAttr(stats->flopsPerStepF)),
      b.getNamedAttr("init_draws", b.getDictionaryAttr(draws)),
      b.getNamedAttr("params", b.getI64IntegerAttr(stats->params)),
      b.getNamedAttr("tokens_per_step",
                     b.getI64IntegerAttr(stats->tokensPerStep))};
  module->setAttr("llm.stats", b.getDictionaryAttr(entries));
  return success();
}

/// Layer index of a parameter name: "h.N." / "model.layers.N." -> N,
/// embeddings -> -1, anything else (final norm, LM head) -> `post`.
int64_t mlir::llm::layerOfParam(StringRef name, int64_t post) {
  for (StringRef prefix : {"h.", "model.layers."}) {
    if (!name.starts_with(prefix))
      continue;
    StringRef rest = name.drop_front(prefix.size());
    int64_t n;
    if (!rest.take_until([](char c) { return c == '.'; }).getAsInteger(10, n))
      return n;
  }
  if (name.contains("wte") || name.contains("wpe") ||
      name.contains("embed_tokens"))
    return -1;
  return post;
}

