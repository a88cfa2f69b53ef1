//===- Autodiff.cpp - reverse-mode differentiation of llm graphs ----------===//
//
// Builds @train_step = forward + backward from the model function. One rule
// per forward op; gradients of values with several uses are summed.
//
//===----------------------------------------------------------------------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/LLMOps.h"
#include "llm/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/TypeSwitch.h"

namespace mlir::llm {
#define GEN_PASS_DEF_AUTODIFF
#include "llm/Transforms/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
using namespace mlir::llm;

namespace {

/// Gradients of the values of one function, built backwards.
class GradientBuilder {
public:
  explicit GradientBuilder(OpBuilder &b) : b(b) {}

  /// Adds `g` to the gradient of `v`.
  void accumulate(Value v, Value g) {
    auto it = grads.find(v);
    if (it == grads.end()) {
      grads[v] = g;
      return;
    }
    it->second = AddOp::create(b, g.getLoc(), it->second, g);
  }

  Value grad(Value v) const { return grads.lookup(v); }

  /// Emits the backward of `op` given the gradients of its results. Fails
  /// with an error on `op` if it has no rule.
  LogicalResult backward(Operation *op);

private:
  /// The gradient for a broadcast operand of `full` type: summed over the
  /// leading axes when `operandType` is a proper suffix.
  Value reduceTo(Value g, Type operandType) {
    if (g.getType() == operandType)
      return g;
    return SumLeadingOp::create(b, g.getLoc(), operandType, g);
  }

  OpBuilder &b;
  DenseMap<Value, Value> grads;
};

} // namespace

LogicalResult GradientBuilder::backward(Operation *op) {
  Location loc = op->getLoc();
  // Pipeline stages: the gradient of a sent activation comes back from the
  // stage it went to (the seed of every stage but the last).
  if (auto send = dyn_cast<SendOp>(op)) {
    accumulate(send.getInput(),
               RecvOp::create(b, loc, send.getInput().getType(),
                              b.getI64IntegerAttr(send.getPeer()),
                              b.getI64IntegerAttr(send.getTag() + 1)));
    return success();
  }
  // Ops none of whose results reach the loss need no backward.
  if (llvm::none_of(op->getResults(), [&](Value r) { return grad(r); })) {
    // A received activation always sends a gradient back: its sender waits.
    if (isa<RecvOp>(op))
      return op->emitOpError() << "llm-autodiff: the received activation "
                                  "does not reach the loss or a send";
    return success();
  }
  Value dy = op->getNumResults() == 1 ? grad(op->getResult(0)) : Value();

  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](EmbeddingOp e) {
        accumulate(e.getTable(),
                   EmbeddingGradOp::create(b, loc, e.getTable().getType(),
                                           e.getIds(), dy,
                                           e.getVocabGroupAttr()));
        return success();
      })
      .Case([&](PositionEmbeddingOp e) {
        accumulate(e.getTable(), PositionEmbeddingGradOp::create(
                                     b, loc, e.getTable().getType(), dy));
        return success();
      })
      .Case([&](AddOp a) {
        accumulate(a.getLhs(), dy);
        accumulate(a.getRhs(), reduceTo(dy, a.getRhs().getType()));
        return success();
      })
      .Case([&](MulOp m) {
        accumulate(m.getLhs(), MulOp::create(b, loc, dy, m.getRhs()));
        Value dr = MulOp::create(b, loc, dy, m.getLhs());
        accumulate(m.getRhs(), reduceTo(dr, m.getRhs().getType()));
        return success();
      })
      .Case([&](LayerNormOp n) {
        auto g = LayerNormGradOp::create(
            b, loc, n.getInput().getType(), n.getWeight().getType(),
            n.getBias().getType(), n.getInput(), n.getWeight(), dy,
            n.getEpsilonAttr());
        accumulate(n.getInput(), g.getDInput());
        accumulate(n.getWeight(), g.getDWeight());
        accumulate(n.getBias(), g.getDBias());
        return success();
      })
      .Case([&](RMSNormOp n) {
        auto g = RMSNormGradOp::create(b, loc, n.getInput().getType(),
                                       n.getWeight().getType(), n.getInput(),
                                       n.getWeight(), dy, n.getEpsilonAttr());
        accumulate(n.getInput(), g.getDInput());
        accumulate(n.getWeight(), g.getDWeight());
        return success();
      })
      .Case([&](LinearOp l) {
        bool t = l.getTransposeWeight();
        // dx = dy · Wᵀ: a linear of dy through the same matrix read in the
        // opposite layout.
        accumulate(l.getInput(),
                   LinearOp::create(b, loc, l.getInput().getType(), dy,
                                    l.getWeight(), Value(), !t));
        auto dw = LinearWeightGradOp::create(b, loc, l.getWeight().getType(),
                                             l.getInput(), dy, t);
        accumulate(l.getWeight(), dw);
        if (Value bias = l.getBias())
          accumulate(bias, SumLeadingOp::create(b, loc, bias.getType(), dy));
        return success();
      })
      .Case([&](SplitOp s) -> LogicalResult {
        SmallVector<Value> parts;
        for (Value r : s.getResults()) {
          Value g = grad(r);
          if (!g)
            return s.emitOpError()
                   << "llm-autodiff: result #"
                   << cast<OpResult>(r).getResultNumber()
                   << " does not reach the loss while others do; partial "
                      "split gradients are not supported";
          parts.push_back(g);
        }
        accumulate(s.getInput(),
                   ConcatOp::create(b, loc, s.getInput().getType(), parts,
                                    s.getAxis()));
        return success();
      })
      .Case([&](RoPEOp r) {
        accumulate(r.getInput(),
                   RoPEOp::create(b, loc, r.getInput().getType(), dy,
                                  r.getNumHeadsAttr(), r.getThetaAttr(),
                                  r.getInverse() ? UnitAttr() : b.getUnitAttr()));
        return success();
      })
      .Case([&](AttentionOp a) {
        auto g = AttentionGradOp::create(
            b, loc, a.getQ().getType(), a.getK().getType(),
            a.getV().getType(), a.getQ(), a.getK(), a.getV(), dy,
            a.getNumHeadsAttr(), a.getNumKvHeadsAttr(), a.getCausalAttr(),
            a.getScaleAttr());
        accumulate(a.getQ(), g.getDq());
        accumulate(a.getK(), g.getDk());
        accumulate(a.getV(), g.getDv());
        return success();
      })
      .Case([&](GeluOp g) {
        accumulate(g.getInput(), GeluGradOp::create(b, loc, g.getInput(), dy));
        return success();
      })
      .Case([&](SiluOp s) {
        accumulate(s.getInput(), SiluGradOp::create(b, loc, s.getInput(), dy));
        return success();
      })
      .Case([&](TPCopyOp c) {
        // Megatron's "f": partial input gradients meet across the group.
        accumulate(c.getInput(),
                   AllReduceOp::create(b, loc, dy, b.getStringAttr("tp"),
                                       b.getStringAttr("sum")));
        return success();
      })
      .Case([&](AllGatherOp g) {
        // ZeRO-3 (dp): the parameter share's gradient is this rank's share
        // of the replicas' mean gradient. Sequence parallelism (tp): the
        // gathered tokens feed column-parallel linears whose partial input
        // gradients are summed, each rank keeping its tokens.
        bool tp = g.getGroup() == "tp";
        accumulate(g.getInput(),
                   ReduceScatterOp::create(b, loc, g.getInput().getType(), dy,
                                           g.getGroupAttr(),
                                           b.getStringAttr(tp ? "sum" : "mean")));
        return success();
      })
      .Case([&](ReduceScatterOp r) -> LogicalResult {
        // Sequence parallelism: every rank's input reached every share, so
        // its gradient is all the shares' gradients.
        if (r.getReduction() != "sum")
          return r.emitOpError()
                 << "llm-autodiff: no gradient rule for a mean reduce-scatter";
        accumulate(r.getInput(),
                   AllGatherOp::create(b, loc, r.getInput().getType(), dy,
                                       r.getGroupAttr()));
        return success();
      })
      .Case([&](ShardSliceOp s) {
        // A replicated value cut into the ranks' tokens: its gradient joins
        // every rank's part (the same on all ranks).
        accumulate(s.getInput(),
                   AllGatherOp::create(b, loc, s.getInput().getType(), dy,
                                       s.getGroupAttr()));
        return success();
      })
      .Case([&](RecvOp r) {
        SendOp::create(b, loc, dy, b.getI64IntegerAttr(r.getPeer()),
                       b.getI64IntegerAttr(r.getTag() + 1));
        return success();
      })
      .Case([&](AllReduceOp a) {
        // Megatron's "g": the reduced value is replicated, its gradient
        // flows back unchanged.
        accumulate(a.getInput(), dy);
        return success();
      })
      .Default([&](Operation *other) {
        return other->emitOpError()
               << "llm-autodiff: no gradient rule for this op";
      });
}

namespace {
struct AutodiffPass : public llm::impl::AutodiffBase<AutodiffPass> {
  void runOnOperation() override;
};
} // namespace

void AutodiffPass::runOnOperation() {
  ModuleOp module = getOperation();
  FailureOr<func::FuncOp> model = getModelFunction(module);
  if (failed(model))
    return signalPassFailure();
  if (SymbolTable::lookupSymbolIn(module, "train_step")) {
    module.emitError() << "llm-autodiff: the module already has @train_step";
    return signalPassFailure();
  }

  auto fwd = *model;
  auto ret = cast<func::ReturnOp>(fwd.getBody().front().getTerminator());
  // A pipeline stage without the loss (llm-pipeline-stage) returns nothing;
  // its backward starts from the gradients its sends get back.
  const bool lossless = ret.getNumOperands() == 0 && module->hasAttr("llm.stage");
  if (ret.getNumOperands() != 1 && !lossless) {
    fwd.emitError() << "llm-autodiff: the model function must return only "
                       "the loss, got "
                    << ret.getNumOperands() << " results";
    return signalPassFailure();
  }

  // Clone the forward as the start of @train_step.
  OpBuilder b(module.getContext());
  b.setInsertionPointAfter(fwd);
  auto step = cast<func::FuncOp>(b.clone(*fwd));
  step.setSymName("train_step");
  step->setAttr(kTrainStepAttr, b.getUnitAttr());
  Block &body = step.getBody().front();
  auto stepRet = cast<func::ReturnOp>(body.getTerminator());
  Value loss = lossless ? Value() : stepRet.getOperand(0);
  // The loss may be averaged over data-parallel replicas (llm-partition);
  // each replica differentiates its own share, and llm-optimizer averages
  // the gradients.
  Value local = loss;
  if (auto ar = loss ? loss.getDefiningOp<AllReduceOp>() : AllReduceOp())
    local = ar.getInput();
  auto ce = local ? local.getDefiningOp<CrossEntropyOp>() : CrossEntropyOp();
  if (!ce && !lossless) {
    fwd.emitError() << "llm-autodiff: the loss must be produced by "
                       "llm.cross_entropy";
    step.erase();
    return signalPassFailure();
  }

  b.setInsertionPoint(stepRet);
  GradientBuilder grads(b);
  if (ce)
    grads.accumulate(ce.getLogits(),
                     CrossEntropyGradOp::create(b, ce.getLoc(), ce.getLogits(),
                                                ce.getTargets(),
                                                ce.getVocabGroupAttr(),
                                                ce.getVocabAttr()));
  // Walk the forward ops in reverse (the backward ops are being appended
  // after them and must not be visited).
  SmallVector<Operation *> forwardOps;
  for (Operation &op : body.without_terminator())
    if (&op != ce.getOperation() &&
        (op.getNumResults() == 0 || op.getResult(0) != loss))
      forwardOps.push_back(&op);
  for (Operation *op : llvm::reverse(forwardOps)) {
    if (failed(grads.backward(op))) {
      step.erase();
      return signalPassFailure();
    }
  }

  SmallVector<Value> results;
  SmallVector<Attribute> resultAttrs;
  if (loss) {
    results.push_back(loss);
    resultAttrs.push_back(b.getDictionaryAttr(
        b.getNamedAttr(kResultAttr, b.getStringAttr("loss"))));
  }
  for (unsigned i = 0, e = step.getNumArguments(); i < e; ++i) {
    auto name = step.getArgAttrOfType<StringAttr>(i, kParamAttr);
    if (!name)
      continue;
    Value g = grads.grad(step.getArgument(i));
    if (!g) {
      fwd.emitError() << "llm-autodiff: parameter '" << name.getValue()
                      << "' does not influence the loss";
      step.erase();
      return signalPassFailure();
    }
    results.push_back(g);
    resultAttrs.push_back(
        b.getDictionaryAttr(b.getNamedAttr(kGradAttr, name)));
  }
  func::ReturnOp::create(b, stepRet.getLoc(), results);
  stepRet.erase();
  step.setFunctionType(b.getFunctionType(step.getArgumentTypes(),
                                         TypeRange(ValueRange(results))));
  step.setAllResultAttrs(resultAttrs);
}
