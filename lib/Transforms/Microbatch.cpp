//===- Microbatch.cpp - gradient accumulation over micro-batches ----------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/LLMOps.h"
#include "llm/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::llm {
#define GEN_PASS_DEF_MICROBATCH
#include "llm/Transforms/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
using namespace mlir::llm;

namespace {

/// Makes `fn` (one micro-batch) take `m` micro-batches of tokens and
/// targets and return the mean of its results over them.
LogicalResult unroll(func::FuncOp fn, int64_t m) {
  Block &body = fn.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  SmallVector<Operation *> ops;
  for (Operation &op : body.without_terminator())
    ops.push_back(&op);
  SmallVector<BlockArgument> inputs;
  for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i)
    if (auto in = fn.getArgAttrOfType<StringAttr>(i, kInputAttr);
        in && (in.getValue() == "tokens" || in.getValue() == "targets"))
      inputs.push_back(fn.getArgument(i));
  if (inputs.empty())
    return fn.emitError() << "llm-microbatch: no tokens or targets argument";

  // The micro-batch types, then the whole batch's on the arguments.
  SmallVector<Type> microTypes;
  for (BlockArgument a : inputs) {
    auto t = cast<RankedTensorType>(a.getType());
    microTypes.push_back(t);
    SmallVector<int64_t> shape(t.getShape());
    shape[0] *= m;
    a.setType(RankedTensorType::get(shape, t.getElementType()));
  }
  OpBuilder b(ret);
  SmallVector<Value> sums;
  for (int64_t k = 0; k < m; ++k) {
    IRMapping map;
    for (auto [a, t] : llvm::zip(inputs, microTypes))
      map.map(a, BatchSliceOp::create(b, fn.getLoc(), t, a,
                                      b.getI64IntegerAttr(k),
                                      b.getI64IntegerAttr(m)));
    for (Operation *op : ops)
      b.clone(*op, map);
    // Add each result of this micro-batch to its running sum as soon as it
    // is computed (in place over the sum), so that no gradient of it lives
    // on through the rest of its backward.
    for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
      Value r = map.lookupOrDefault(v);
      if (k == 0) {
        sums.push_back(r);
        continue;
      }
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointAfterValue(r);
      sums[i] = AddOp::create(b, fn.getLoc(), sums[i].getType(), sums[i], r);
    }
  }
  SmallVector<Value> means;
  for (Value s : sums)
    means.push_back(ScaleOp::create(b, fn.getLoc(), s,
                                    b.getF64FloatAttr(1.0 / static_cast<double>(m))));
  ret->setOperands(means);
  for (Operation *op : llvm::reverse(ops))
    op->erase();
  fn.setFunctionType(FunctionType::get(fn.getContext(),
                                       body.getArgumentTypes(),
                                       fn.getResultTypes()));
  return success();
}

struct MicrobatchPass : public llm::impl::MicrobatchBase<MicrobatchPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto plan = module->getAttrOfType<PlanAttr>("llm.plan");
    int64_t m = plan ? plan.getMicrobatches() : 1;
    if (m <= 1)
      return;
    FailureOr<func::FuncOp> model = getModelFunction(module);
    if (failed(model))
      return signalPassFailure();
    auto step = dyn_cast_or_null<func::FuncOp>(
        SymbolTable::lookupSymbolIn(module, "train_step"));
    if (!step || !step->hasAttr(kTrainStepAttr)) {
      module.emitError() << "llm-microbatch: no @train_step; run llm-autodiff first";
      return signalPassFailure();
    }
    if (failed(unroll(step, m)) || failed(unroll(*model, m)))
      return signalPassFailure();
  }
};

} // namespace
