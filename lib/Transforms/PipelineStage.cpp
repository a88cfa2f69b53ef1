//===- PipelineStage.cpp - one pipeline stage's share of the model --------===//
//
// Cuts the model function to the chunks one pipeline rank computes, joined
// to its neighbours by llm.send / llm.recv of the residual stream. The
// backward (llm-autodiff), the micro-batch schedule (llm-microbatch) and
// the tied-embedding reduction (llm-optimizer) follow from the cut.
//
//===----------------------------------------------------------------------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/LLMOps.h"
#include "llm/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "llvm/ADT/BitVector.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/SetVector.h"

namespace mlir::llm {
#define GEN_PASS_DEF_PIPELINESTAGE
#include "llm/Transforms/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
using namespace mlir::llm;

namespace {

struct PipelineStagePass
    : public llm::impl::PipelineStageBase<PipelineStagePass> {
  using PipelineStageBase::PipelineStageBase;
  void runOnOperation() override;
};

} // namespace

void PipelineStagePass::runOnOperation() {
  ModuleOp module = getOperation();
  auto plan = module->getAttrOfType<PlanAttr>("llm.plan");
  if (!plan) {
    module.emitError() << "llm-pipeline-stage: the module has no llm.plan";
    return signalPassFailure();
  }
  const int64_t pp = plan.getPp(), vpp = std::max<int64_t>(1, plan.getVpp());
  if (pp <= 1)
    return;
  if (stage < 0 || stage >= pp) {
    module.emitError() << "llm-pipeline-stage: stage " << int64_t(stage)
                       << " is not in [0, " << pp << ")";
    return signalPassFailure();
  }
  ArrayRef<int64_t> bounds = plan.getStages().asArrayRef();
  const int64_t chunks = pp * vpp;
  if (static_cast<int64_t>(bounds.size()) != chunks + 1) {
    module.emitError() << "llm-pipeline-stage: the plan has "
                       << bounds.size() << " chunk bounds for pp " << pp
                       << " x vpp " << vpp << " = " << chunks << " chunks";
    return signalPassFailure();
  }
  // The bounds cover the model's layers exactly.
  int64_t modelLayers = -1;
  if (auto cfg = module->getAttrOfType<DictionaryAttr>("llm.config"))
    if (auto n = cfg.getAs<IntegerAttr>("num_layers"))
      modelLayers = n.getInt();
  if (bounds.front() != 0 ||
      (modelLayers >= 0 && bounds.back() != modelLayers)) {
    module.emitError() << "llm-pipeline-stage: the plan's chunk bounds run "
                       << "from layer " << bounds.front() << " to "
                       << bounds.back() << ", not over the model's "
                       << modelLayers << " layers from 0";
    return signalPassFailure();
  }
  for (int64_t c = 0; c < chunks; ++c)
    if (bounds[c + 1] <= bounds[c]) {
      module.emitError() << "llm-pipeline-stage: chunk " << c
                         << " holds no layer (bounds " << bounds[c] << ", "
                         << bounds[c + 1] << ")";
      return signalPassFailure();
    }
  FailureOr<func::FuncOp> fnOr = getModelFunction(module);
  if (failed(fnOr) || failed(recordWholeModelStats(module, *fnOr)))
    return signalPassFailure();
  func::FuncOp fn = *fnOr;
  Block &body = fn.getBody().front();
  const int64_t layers = bounds.back();

  // The chunk of every op: the highest layer among what it reads (the
  // planner's rule, lib/Planner/Profile.cpp), the embedding (-1) with
  // chunk 0, everything after the last layer with the last chunk.
  auto chunkOfLayer = [&](int64_t layer) -> int64_t {
    if (layer < 0)
      return 0;
    if (layer >= layers)
      return chunks - 1;
    return static_cast<int64_t>(
               std::upper_bound(bounds.begin(), bounds.end(), layer) -
               bounds.begin()) -
           1;
  };
  DenseMap<Value, int64_t> layerOf;
  DenseMap<Operation *, int64_t> chunkOf;
  for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i) {
    auto name = fn.getArgAttrOfType<StringAttr>(i, kParamAttr);
    layerOf[fn.getArgument(i)] =
        name ? layerOfParam(name.getValue(), layers) : -1;
  }
  for (Operation &op : body.without_terminator()) {
    int64_t layer = -1;
    for (Value v : op.getOperands())
      layer = std::max(layer, layerOf.lookup(v));
    if (layer > layers)
      layer = layers;
    for (Value r : op.getResults())
      layerOf[r] = layer;
    chunkOf[&op] = chunkOfLayer(layer);
  }
  for (Operation &op : body.without_terminator())
    for (Value v : op.getOperands())
      if (Operation *def = v.getDefiningOp(); def && chunkOf[def] > chunkOf[&op]) {
        op.emitOpError() << "llm-pipeline-stage: reads a value of a later "
                            "chunk (" << chunkOf[def] << " > " << chunkOf[&op]
                         << ")";
        return signalPassFailure();
      }

  // The one value crossing each boundary c | c+1: made in chunks <= c,
  // read in chunks > c.
  SmallVector<Value> crossing(chunks, Value());
  for (int64_t c = 0; c + 1 < chunks; ++c) {
    llvm::SetVector<Value> values;
    for (Operation &op : body.without_terminator())
      if (chunkOf[&op] > c)
        for (Value v : op.getOperands())
          if (Operation *def = v.getDefiningOp(); def && chunkOf[def] <= c)
            values.insert(v);
    if (values.size() != 1) {
      InFlightDiagnostic d = fn.emitError()
                             << "llm-pipeline-stage: the boundary after chunk "
                             << c << " (layer " << bounds[c + 1] << ") is crossed by "
                             << values.size() << " values, not one";
      for (Value v : values)
        d.attachNote(v.getLoc()) << "crossing value of type " << v.getType();
      return signalPassFailure();
    }
    crossing[c] = values.front();
    if (Operation *def = crossing[c].getDefiningOp(); chunkOf[def] != c) {
      def->emitOpError() << "llm-pipeline-stage: its result crosses from chunk "
                         << chunkOf[def] << " past chunk " << c
                         << "; only neighbouring chunks exchange values";
      return signalPassFailure();
    }
  }

  DenseSet<Value> tied;
  for (BlockArgument a : fn.getArguments()) {
    bool first = false, lastChunk = false;
    for (Operation *user : a.getUsers()) {
      first |= chunkOf.lookup(user) == 0;
      lastChunk |= chunkOf.lookup(user) == chunks - 1;
    }
    if (first && lastChunk && fn.getArgAttr(a.getArgNumber(), kParamAttr))
      tied.insert(a);
  }

  // Sends after the boundary values this rank makes, receives before the
  // first op of each of its chunks but chunk 0; tag 2 c for the boundary
  // after chunk c.
  auto mine = [&](int64_t c) { return c % pp == stage; };
  OpBuilder b(&getContext());
  for (int64_t c = 0; c + 1 < chunks; ++c) {
    Value v = crossing[c];
    auto tag = b.getI64IntegerAttr(2 * c);
    if (mine(c)) {
      b.setInsertionPointAfterValue(v);
      auto send = SendOp::create(b, v.getLoc(), v, b.getI64IntegerAttr(1), tag);
      chunkOf[send] = c;
    }
    if (mine(c + 1)) {
      Operation *first = nullptr;
      for (Operation &op : body.without_terminator())
        if (chunkOf.lookup(&op) == c + 1 && !isa<SendOp>(op)) {
          first = &op;
          break;
        }
      b.setInsertionPoint(first);
      auto recv = RecvOp::create(b, v.getLoc(), v.getType(),
                                 b.getI64IntegerAttr(-1), tag);
      chunkOf[recv] = c + 1;
      v.replaceUsesWithIf(recv.getResult(), [&](OpOperand &use) {
        Operation *user = use.getOwner();
        return !isa<SendOp>(user) && chunkOf.lookup(user) > c;
      });
    }
  }

  // Drop the other ranks' ops (last first, so that uses go before defs),
  // and the loss where it is not this rank's.
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  const bool last = mine(chunks - 1);
  if (!last) {
    ret->setOperands({});
    fn.setFunctionType(FunctionType::get(&getContext(),
                                         fn.getArgumentTypes(), {}));
  }
  SmallVector<Operation *> drop;
  for (Operation &op : body.without_terminator())
    if (!mine(chunkOf.lookup(&op)))
      drop.push_back(&op);
  for (Operation *op : llvm::reverse(drop)) {
    if (!op->use_empty()) {
      op->emitOpError() << "llm-pipeline-stage: stage " << int64_t(stage)
                        << " still reads this op of chunk " << chunkOf[op];
      return signalPassFailure();
    }
    op->erase();
  }

  // Parameters: the stage's own; tied ones (read in chunk 0 and in the last
  // chunk, so on both end stages) marked for llm-optimizer.
  llvm::BitVector unused(fn.getNumArguments());
  for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i) {
    if (!fn.getArgAttr(i, kParamAttr))
      continue;
    if (fn.getArgument(i).use_empty()) {
      unused.set(i);
      continue;
    }
    if (!tied.contains(fn.getArgument(i)))
      continue;
    fn.setArgAttr(i, "llm.tied", b.getUnitAttr());
    if (stage != 0)
      fn.setArgAttr(i, "llm.tied_copy", b.getUnitAttr());
  }
  if (failed(fn.eraseArguments(unused)))
    return signalPassFailure();
  module->setAttr("llm.stage", b.getI64IntegerAttr(stage));
}
