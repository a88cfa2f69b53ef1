//===- Optimizer.cpp - clipping and AdamW inside the training step --------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/LLMOps.h"
#include "llm/Transforms/Passes.h"

#include "mlir/IR/Builders.h"

#include <algorithm>

namespace mlir::llm {
#define GEN_PASS_DEF_OPTIMIZER
#include "llm/Transforms/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;

namespace {
/// ZeRO-2 with gradient accumulation: `grad` is llm-microbatch's mean
/// scale(g0 + g1 + ... + g(m-1)) of the micro-batches' gradients.
/// Reduce-scatters each micro-batch's gradient right after it is computed
/// and accumulates the shares instead (the sum is linear), so that no
/// whole gradient outlives its micro-batch. Returns the mean of the shares,
/// or nothing when `grad` is not such a sum.
Value reduceScatterMicrobatches(OpBuilder &b, Location loc, Value grad,
                                RankedTensorType flat, int64_t micro,
                                StringAttr dpAttr, StringAttr meanAttr) {
  auto sc = grad.getDefiningOp<llm::ScaleOp>();
  if (micro < 2 || !sc)
    return {};
  SmallVector<Value> leaves;
  SmallVector<llm::AddOp> adds;
  Value v = sc.getInput();
  for (int64_t j = 0; j < micro - 1; ++j) {
    auto add = v.getDefiningOp<llm::AddOp>();
    if (!add || !add->hasOneUse())
      return {};
    adds.push_back(add);
    leaves.push_back(add.getRhs());
    v = add.getLhs();
  }
  leaves.push_back(v);
  std::reverse(leaves.begin(), leaves.end()); // micro-batch order
  OpBuilder::InsertionGuard guard(b);
  Value acc;
  for (Value leaf : leaves) {
    b.setInsertionPointAfterValue(leaf);
    Value share = llm::ReduceScatterOp::create(b, loc, flat, leaf, dpAttr, meanAttr);
    if (acc) {
      b.setInsertionPointAfterValue(share);
      share = llm::AddOp::create(b, loc, flat, acc, share);
    }
    acc = share;
  }
  b.setInsertionPointAfterValue(acc);
  Value mean = llm::ScaleOp::create(b, loc, acc, sc.getFactorAttr());
  if (sc->use_empty()) {
    sc->erase();
    for (llm::AddOp add : adds)
      if (add->use_empty())
        add->erase();
  }
  return mean;
}
} // namespace
using namespace mlir::llm;

namespace {
struct OptimizerPass : public llm::impl::OptimizerBase<OptimizerPass> {
  using OptimizerBase::OptimizerBase;
  void runOnOperation() override;
};
} // namespace

void OptimizerPass::runOnOperation() {
  ModuleOp module = getOperation();
  auto step = dyn_cast_or_null<func::FuncOp>(
      SymbolTable::lookupSymbolIn(module, "train_step"));
  if (!step || !step->hasAttr(kTrainStepAttr)) {
    module.emitError() << "llm-optimizer: no @train_step; run llm-autodiff "
                          "first";
    return signalPassFailure();
  }
  if (beta1 < 0 || beta1 >= 1 || beta2 < 0 || beta2 >= 1 || !(eps > 0)) {
    module.emitError() << "llm-optimizer: expects 0 <= beta1, beta2 < 1 and "
                          "eps > 0, got beta1="
                       << beta1 << " beta2=" << beta2 << " eps=" << eps;
    return signalPassFailure();
  }
  MLIRContext *ctx = &getContext();
  OpBuilder b(ctx);
  Block &body = step.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());

  // Parameters and their gradients (results 1.. in parameter order).
  SmallVector<unsigned> paramArgs;
  for (unsigned i = 0, e = step.getNumArguments(); i < e; ++i)
    if (step.getArgAttr(i, kParamAttr))
      paramArgs.push_back(i);
  // A pipeline stage without the loss returns the gradients only.
  const bool hasLoss =
      !module->hasAttr("llm.stage") ||
      (step.getNumResults() > 0 && step.getResultAttr(0, kResultAttr));
  const unsigned lead = hasLoss ? 1 : 0;
  if (ret.getNumOperands() != paramArgs.size() + lead) {
    step.emitError() << "llm-optimizer: expected " << (hasLoss ? "the loss and " : "")
                     << paramArgs.size() << " gradients, got "
                     << ret.getNumOperands() << " results";
    return signalPassFailure();
  }
  unsigned numParams = paramArgs.size();
  for (auto [k, i] : llvm::enumerate(paramArgs))
    if (i != k) {
      step.emitError() << "llm-optimizer: parameters must be the leading "
                          "arguments";
      return signalPassFailure();
    }

  // New arguments: the two moments after the parameters, scalars at the end.
  Location loc = step.getLoc();
  SmallVector<Value> ms, vs;
  auto argAttr = [&](StringRef key, Attribute value) {
    return b.getDictionaryAttr(b.getNamedAttr(key, value));
  };
  for (unsigned k = 0; k < numParams; ++k) {
    auto name = step.getArgAttrOfType<StringAttr>(k, kParamAttr);
    (void)step.insertArgument(numParams + k, step.getArgument(k).getType(),
                              argAttr(kAdamMAttr, name), loc);
    ms.push_back(step.getArgument(numParams + k));
  }
  for (unsigned k = 0; k < numParams; ++k) {
    auto name = step.getArgAttrOfType<StringAttr>(k, kParamAttr);
    (void)step.insertArgument(2 * numParams + k, step.getArgument(k).getType(),
                              argAttr(kAdamVAttr, name), loc);
    vs.push_back(step.getArgument(2 * numParams + k));
  }
  auto f32 = RankedTensorType::get({}, b.getF32Type());
  auto i64 = RankedTensorType::get({}, b.getI64Type());
  auto scalar = [&](StringRef name, Type type) {
    unsigned idx = step.getNumArguments();
    (void)step.insertArgument(idx, type,
                              argAttr(kInputAttr, b.getStringAttr(name)), loc);
    return step.getArgument(idx);
  };
  Value lr = scalar("lr", f32), stepNo = scalar("step", i64);
  Value wd = scalar("weight_decay", f32), clip = scalar("grad_clip", f32);

  b.setInsertionPoint(ret);
  SmallVector<Value> gradients(ret.getOperands().drop_front(lead));
  auto plan = module->getAttrOfType<PlanAttr>("llm.plan");
  int64_t dp = plan ? plan.getDp() : 1, zero = plan ? plan.getZero() : 0;
  bool tpPlan = plan && plan.getTp() > 1;
  auto dpAttr = b.getStringAttr("dp"), meanAttr = b.getStringAttr("mean");
  const int64_t micro = plan ? plan.getMicrobatches() : 1;

  // Data parallelism: every gradient is averaged over dp as soon as it is
  // final (right after the op that produces it, so that it dies early):
  // all-reduced, or under ZeRO-2 reduce-scattered into this rank's share.
  // ZeRO-1/2 shard the parameters whose size dp divides: each rank keeps
  // the moments of, and updates, its 1/dp share, then the shares are
  // all-gathered.
  SmallVector<bool> sharded(numParams, false), atRest(numParams, false);
  SmallVector<int64_t> masks(numParams, 0);
  for (unsigned k = 0; k < numParams; ++k) {
    auto ptype = cast<RankedTensorType>(step.getArgument(k).getType());
    int64_t n = ptype.getNumElements();
    sharded[k] = dp > 1 && zero >= 1 && n % dp == 0;
    if (tpPlan && step.getArgAttr(k, "llm.tp_shard"))
      masks[k] |= 2;
    // Sequence parallelism: a replicated parameter read by per-token ops on
    // this rank's tokens (norms, biases after reduce-scatter) has a partial
    // gradient; the tensor-parallel ranks' parts are summed.
    if (tpPlan && step.getArgAttr(k, "llm.sp_partial_grad")) {
      OpBuilder::InsertionGuard guard(b);
      if (Operation *def = gradients[k].getDefiningOp())
        b.setInsertionPointAfter(def);
      gradients[k] = AllReduceOp::create(b, loc, gradients[k],
                                         b.getStringAttr("tp"),
                                         b.getStringAttr("sum"));
    }
    // Tied embeddings across pipeline stages (llm-pipeline-stage): the
    // first stage's lookup and the last stage's head each hold part of the
    // gradient; both copies take the sum, and so stay equal (Megatron).
    // At the end of the backward: the last stage's head gradient is final
    // before it sends the first stage the gradient that stage needs for its
    // own part, so an all-reduce any earlier would wait for itself.
    if (step.getArgAttr(k, "llm.tied")) {
      gradients[k] = AllReduceOp::create(b, loc, gradients[k],
                                         b.getStringAttr("tied"),
                                         b.getStringAttr("sum"));
    }
    // ZeRO-3 (llm-partition): the parameter is a share at rest and its
    // gradient already this rank's share of the mean (llm-autodiff).
    atRest[k] = static_cast<bool>(step.getArgAttr(k, "llm.zero_shard"));
    if (atRest[k]) {
      masks[k] |= 1;
      continue;
    }
    if (dp == 1)
      continue;
    OpBuilder::InsertionGuard guard(b);
    if (Operation *def = gradients[k].getDefiningOp())
      b.setInsertionPointAfter(def);
    if (sharded[k] && zero >= 2) {
      auto flat = RankedTensorType::get({n / dp}, ptype.getElementType());
      if (Value shares = reduceScatterMicrobatches(b, loc, gradients[k], flat,
                                                   micro, dpAttr, meanAttr))
        gradients[k] = shares;
      else
        gradients[k] = ReduceScatterOp::create(b, loc, flat, gradients[k],
                                               dpAttr, meanAttr);
      masks[k] |= 1;
    } else {
      gradients[k] = AllReduceOp::create(b, loc, gradients[k], dpAttr,
                                         meanAttr);
    }
  }
  // ZeRO-3: a gathered parameter is gathered again for the backward, so that
  // the forward's copy dies after its last forward use. A gather's backward
  // starts at the first loss gradient after it (one per micro-batch when
  // llm-microbatch has unrolled the step).
  SmallVector<AllGatherOp> gathers;
  for (Operation &op : body)
    if (auto g = dyn_cast<AllGatherOp>(op))
      gathers.push_back(g);
  for (AllGatherOp g : gathers) {
    Operation *boundary = nullptr;
    for (Operation *op = g->getNextNode(); op; op = op->getNextNode())
      if (isa<CrossEntropyGradOp>(op)) {
        boundary = op;
        break;
      }
    if (!boundary)
      continue;
    auto inBackward = [&](Operation *u) {
      return u == boundary || boundary->isBeforeInBlock(u);
    };
    Operation *firstUse = nullptr;
    for (Operation *user : g->getUsers())
      if (inBackward(user) && (!firstUse || user->isBeforeInBlock(firstUse)))
        firstUse = user;
    if (!firstUse)
      continue;
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(firstUse);
    auto again = cast<AllGatherOp>(b.clone(*g));
    g.getResult().replaceUsesWithIf(again.getResult(), [&](OpOperand &use) {
      return inBackward(use.getOwner());
    });
  }

  // The global norm: shares and shards summed over their groups (and by
  // the runtime over the pipeline stages), the last stage's copy of a tied
  // embedding counted out.
  SmallVector<Value> counted;
  SmallVector<int64_t> countedMasks;
  for (unsigned k = 0; k < numParams; ++k)
    if (!step.getArgAttr(k, "llm.tied_copy")) {
      counted.push_back(gradients[k]);
      countedMasks.push_back(masks[k]);
    }
  DenseI64ArrayAttr split;
  if (llvm::any_of(countedMasks, [](int64_t m) { return m != 0; }))
    split = b.getDenseI64ArrayAttr(countedMasks);
  Value norm = GlobalNormOp::create(b, loc, counted, split);
  Value scale = ClipScaleOp::create(b, loc, norm, clip);
  SmallVector<Value> newP, newM, newV;
  for (unsigned k = 0; k < numParams; ++k) {
    Value p = step.getArgument(k);
    auto ptype = cast<RankedTensorType>(p.getType());
    // Weight decay goes by the rank of the whole parameter.
    int64_t rank = ptype.getRank();
    if (auto of = step.getArgAttrOfType<DenseI64ArrayAttr>(k, "llm.zero_of"))
      rank = of.size();
    UnitAttr decayAttr = rank >= 2 ? b.getUnitAttr() : UnitAttr();
    int64_t n = ptype.getNumElements();
    if (atRest[k]) {
      for (Value mv : {ms[k], vs[k]})
        step.setArgAttr(cast<BlockArgument>(mv).getArgNumber(),
                        "llm.zero_shard", b.getI64IntegerAttr(dp));
      auto upd = AdamWOp::create(b, loc, ptype, ptype, ptype, p, gradients[k],
                                 ms[k], vs[k], lr, stepNo, wd, scale,
                                 b.getF64FloatAttr(beta1),
                                 b.getF64FloatAttr(beta2),
                                 b.getF64FloatAttr(eps), decayAttr);
      newP.push_back(upd.getNewParam());
      newM.push_back(upd.getNewM());
      newV.push_back(upd.getNewV());
      continue;
    }
    if (sharded[k]) {
      auto flat = RankedTensorType::get({n / dp}, ptype.getElementType());
      for (Value mv : {ms[k], vs[k]}) {
        mv.setType(flat);
        step.setArgAttr(cast<BlockArgument>(mv).getArgNumber(),
                        "llm.zero_shard", b.getI64IntegerAttr(dp));
      }
      Value ps = ShardSliceOp::create(b, loc, flat, p, dpAttr);
      Value gs = zero >= 2 ? gradients[k]
                           : ShardSliceOp::create(b, loc, flat, gradients[k],
                                                  dpAttr);
      auto upd = AdamWOp::create(b, loc, flat, flat, flat, ps, gs, ms[k], vs[k],
                                 lr, stepNo, wd, scale, b.getF64FloatAttr(beta1),
                                 b.getF64FloatAttr(beta2),
                                 b.getF64FloatAttr(eps), decayAttr);
      newP.push_back(
          AllGatherOp::create(b, loc, ptype, upd.getNewParam(), dpAttr));
      newM.push_back(upd.getNewM());
      newV.push_back(upd.getNewV());
      continue;
    }
    auto upd = AdamWOp::create(b, loc, p.getType(), p.getType(), p.getType(), p,
                               gradients[k], ms[k], vs[k], lr, stepNo, wd,
                               scale, b.getF64FloatAttr(beta1),
                               b.getF64FloatAttr(beta2), b.getF64FloatAttr(eps),
                               decayAttr);
    newP.push_back(upd.getNewParam());
    newM.push_back(upd.getNewM());
    newV.push_back(upd.getNewV());
  }

  SmallVector<Value> results;
  SmallVector<Attribute> attrs;
  if (hasLoss) {
    results.push_back(ret.getOperand(0));
    attrs.push_back(argAttr(kResultAttr, b.getStringAttr("loss")));
  }
  results.push_back(norm);
  attrs.push_back(argAttr(kResultAttr, b.getStringAttr("grad_norm")));
  auto addUpdates = [&](ArrayRef<Value> values, unsigned firstArg) {
    for (auto [k, v] : llvm::enumerate(values)) {
      results.push_back(v);
      attrs.push_back(argAttr(kUpdateAttr, b.getI64IntegerAttr(firstArg + k)));
    }
  };
  addUpdates(newP, 0);
  addUpdates(newM, numParams);
  addUpdates(newV, 2 * numParams);
  func::ReturnOp::create(b, ret.getLoc(), results);
  ret.erase();
  // What the old results alone read is dead now (under ZeRO-2 with
  // micro-batches, the whole-gradient sums that the shares replaced).
  // (Users first: each op is checked when it is reached, after the ops
  // after it.)
  SmallVector<Operation *> candidates;
  for (Operation &op : body.without_terminator())
    if (isa<llm::AddOp, llm::ScaleOp>(op))
      candidates.push_back(&op);
  for (Operation *op : llvm::reverse(candidates))
    if (op->use_empty())
      op->erase();
  step.setFunctionType(b.getFunctionType(body.getArgumentTypes(),
                                         TypeRange(ValueRange(results))));
  step.setAllResultAttrs(attrs);
}
