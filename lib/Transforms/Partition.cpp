//===- Partition.cpp - one rank's share of the model function -------------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/LLMOps.h"
#include "llm/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/DenseSet.h"

namespace mlir::llm {
#define GEN_PASS_DEF_PARTITION
#include "llm/Transforms/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
using namespace mlir::llm;

namespace {
struct PartitionPass : public llm::impl::PartitionBase<PartitionPass> {
  void runOnOperation() override;
};
} // namespace

/// `type` with its leading (batch) dimension divided by `dp`.
static RankedTensorType rebatch(RankedTensorType type, int64_t dp) {
  SmallVector<int64_t> shape(type.getShape());
  shape[0] /= dp;
  return RankedTensorType::get(shape, type.getElementType());
}

void PartitionPass::runOnOperation() {
  ModuleOp module = getOperation();
  auto plan = module->getAttrOfType<PlanAttr>("llm.plan");
  if (!plan) {
    module.emitError() << "llm-partition: the module has no llm.plan (run "
                          "llm-auto-plan, or llm-compile --plan)";
    return signalPassFailure();
  }
  auto unsupported = [&](const Twine &what) {
    module.emitError() << "llm-partition: " << what
                       << " is not implemented yet (data parallelism is)";
    signalPassFailure();
  };
  if (plan.getTp() != 1)
    return unsupported("tensor parallelism (tp=" + Twine(plan.getTp()) + ")");
  if (plan.getPp() != 1)
    return unsupported("pipeline parallelism (pp=" + Twine(plan.getPp()) + ")");
  if (plan.getSp() != 0)
    return unsupported("sequence parallelism");
  if (plan.getZero() != 0)
    return unsupported("ZeRO (zero=" + Twine(plan.getZero()) + ")");
  if (plan.getRemat().getValue() != "none")
    return unsupported("recomputation (remat=" + plan.getRemat().getValue() +
                       ")");
  if (plan.getMicrobatches() != 1)
    return unsupported("gradient accumulation over micro-batches (" +
                       Twine(plan.getMicrobatches()) + ")");

  FailureOr<func::FuncOp> fnOr = getModelFunction(module);
  if (failed(fnOr))
    return signalPassFailure();
  func::FuncOp fn = *fnOr;
  int64_t dp = plan.getDp();
  if (dp == 1)
    return;

  // Batch-carrying values: the token inputs and every result computed from
  // one of them (except the scalar loss).
  Block &body = fn.getBody().front();
  DenseSet<Value> batched;
  int64_t batch = -1;
  for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i) {
    auto input = fn.getArgAttrOfType<StringAttr>(i, kInputAttr);
    if (!input || (input.getValue() != "tokens" && input.getValue() != "targets"))
      continue;
    BlockArgument arg = fn.getArgument(i);
    auto type = cast<RankedTensorType>(arg.getType());
    batch = type.getDimSize(0);
    if (batch % dp != 0) {
      fn.emitError() << "llm-partition: the batch of " << batch
                     << " sequences does not divide among dp=" << dp
                     << " ranks";
      return signalPassFailure();
    }
    arg.setType(rebatch(type, dp));
    batched.insert(arg);
  }
  for (Operation &op : body.without_terminator()) {
    if (llvm::none_of(op.getOperands(),
                      [&](Value v) { return batched.contains(v); }))
      continue;
    for (Value r : op.getResults()) {
      auto type = cast<RankedTensorType>(r.getType());
      if (type.getRank() == 0)
        continue;
      if (type.getDimSize(0) != batch) {
        op.emitOpError() << "llm-partition: result does not lead with the "
                            "batch dimension "
                         << batch;
        return signalPassFailure();
      }
      r.setType(rebatch(type, dp));
      batched.insert(r);
    }
  }
  SmallVector<Type> argTypes(body.getArgumentTypes());
  fn.setFunctionType(FunctionType::get(&getContext(), argTypes,
                                       fn.getResultTypes()));

  // The loss: this rank's mean, averaged over the replicas.
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  OpBuilder b(ret);
  Value loss = ret.getOperand(0);
  auto mean = AllReduceOp::create(b, ret.getLoc(), loss,
                                  b.getStringAttr("dp"),
                                  b.getStringAttr("mean"));
  ret->setOperand(0, mean);
  if (failed(verify(fn)))
    return signalPassFailure();
}
