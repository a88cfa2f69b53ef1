//===- Rematerialize.cpp - recompute forward values in the backward -------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/LLMOps.h"
#include "llm/Transforms/Passes.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "llvm/ADT/DenseSet.h"

#include <algorithm>
#include <functional>
#include <limits>

namespace mlir::llm {
#define GEN_PASS_DEF_REMATERIALIZE
#include "llm/Transforms/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
using namespace mlir::llm;

namespace {

/// Layer index of a parameter name (h.N. / model.layers.N.), or -1.
int64_t layerOfName(StringRef name) {
  for (StringRef prefix : {"h.", "model.layers."}) {
    if (!name.starts_with(prefix))
      continue;
    int64_t n;
    if (!name.drop_front(prefix.size())
             .take_until([](char c) { return c == '.'; })
             .getAsInteger(10, n))
      return n;
  }
  return -1;
}

struct RematerializePass
    : public llm::impl::RematerializeBase<RematerializePass> {
  using RematerializeBase::RematerializeBase;
  void runOnOperation() override;
};

} // namespace

void RematerializePass::runOnOperation() {
  ModuleOp module = getOperation();
  std::string m = mode;
  if (m.empty()) {
    auto plan = module->getAttrOfType<PlanAttr>("llm.plan");
    m = plan ? plan.getRemat().getValue().str() : "none";
  }
  // budget:K: full recomputation of the first K layers only (the planner's
  // fewest that fit; the first layers, whose activations wait longest).
  int64_t budget = -1;
  if (StringRef(m).starts_with("budget:") &&
      (StringRef(m).drop_front(7).getAsInteger(10, budget) || budget < 1)) {
    module.emitError() << "llm-rematerialize: mode '" << m
                       << "' is not budget:K with K >= 1 layers";
    return signalPassFailure();
  }
  if (m != "full" && m != "selective" && m != "none" && budget < 1) {
    module.emitError() << "llm-rematerialize: mode '" << m
                       << "' is not full, selective, none or budget:K";
    return signalPassFailure();
  }
  if (m != "full" && budget < 1)
    return;
  auto step = dyn_cast_or_null<func::FuncOp>(
      SymbolTable::lookupSymbolIn(module, "train_step"));
  if (!step) {
    module.emitError() << "llm-rematerialize: no @train_step; run "
                          "llm-autodiff first";
    return signalPassFailure();
  }
  Block &body = step.getBody().front();
  Operation *seed = nullptr;
  // The backward starts at the loss gradient, or on a pipeline stage
  // without the loss at the first gradient received (odd tags).
  for (Operation &op : body) {
    auto recv = dyn_cast<RecvOp>(op);
    if (isa<CrossEntropyGradOp>(op) || (recv && recv.getTag() % 2 == 1)) {
      seed = &op;
      break;
    }
  }
  if (!seed) {
    step.emitError() << "llm-rematerialize: no backward in @train_step";
    return signalPassFailure();
  }

  // Layer of every forward value: an op that reads parameters belongs to
  // the (largest) layer of those parameters, -1 for the embedding, the final
  // norm and the head; an op that reads none (residual adds, splits,
  // attention, activations, collectives) to the largest layer of its
  // operands.
  DenseMap<Value, int64_t> layer;
  DenseMap<Value, int64_t> paramLayer;
  for (unsigned i = 0, e = step.getNumArguments(); i < e; ++i) {
    layer[step.getArgument(i)] = -1;
    if (auto name = step.getArgAttrOfType<StringAttr>(i, kParamAttr))
      paramLayer[step.getArgument(i)] = layerOfName(name.getValue());
  }
  // budget:K covers the first K layers this program holds: layers [0, K)
  // on one rank, the first K of its own on a pipeline stage.
  int64_t cutoff = budget;
  if (budget > 0) {
    SmallVector<int64_t> held;
    for (auto &[v, l] : paramLayer)
      if (l >= 0)
        held.push_back(l);
    llvm::sort(held);
    held.erase(std::unique(held.begin(), held.end()), held.end());
    cutoff = budget < static_cast<int64_t>(held.size())
                 ? held[budget]
                 : std::numeric_limits<int64_t>::max();
  }
  DenseSet<Operation *> forward;
  for (Operation &op : body) {
    if (&op == seed)
      break;
    forward.insert(&op);
    // ZeRO-3: a parameter is read through its all-gather over dp.
    if (auto gather = dyn_cast<AllGatherOp>(op);
        gather && gather.getGroup() == "dp") {
      auto it = paramLayer.find(gather.getInput());
      if (it != paramLayer.end()) {
        paramLayer[gather.getResult()] = it->second;
        layer[gather.getResult()] = -1;
        continue;
      }
    }
    int64_t fromParams = -1, fromValues = -1;
    bool readsParam = false;
    for (Value v : op.getOperands()) {
      auto it = paramLayer.find(v);
      if (it != paramLayer.end()) {
        readsParam = true;
        fromParams = std::max(fromParams, it->second);
      } else {
        fromValues = std::max(fromValues, layer.lookup(v));
      }
    }
    for (Value r : op.getResults())
      layer[r] = readsParam ? fromParams : fromValues;
  }
  // Kept from the forward: arguments, values outside the layers (embedding,
  // head), and each layer's input: an operand of a layer-l op made outside
  // layer l.
  DenseSet<Value> kept;
  for (Operation *op : forward) {
    for (Value r : op->getResults())
      if (layer.lookup(r) < 0 || (budget > 0 && layer.lookup(r) >= cutoff))
        kept.insert(r);
    int64_t l = -1;
    for (Value r : op->getResults())
      l = std::max(l, layer.lookup(r));
    if (l < 0)
      continue;
    for (Value v : op->getOperands())
      if (v.getDefiningOp() && forward.contains(v.getDefiningOp()) &&
          layer.lookup(v) != l)
        kept.insert(v);
  }

  // Recompute the rest at its first backward use.
  OpBuilder b(&getContext());
  DenseMap<Value, Value> recomputed;
  std::function<Value(Value)> rec = [&](Value v) -> Value {
    Operation *def = v.getDefiningOp();
    if (!def || !forward.contains(def) || kept.contains(v))
      return v;
    if (Value r = recomputed.lookup(v))
      return r;
    IRMapping map;
    for (Value operand : def->getOperands())
      map.map(operand, rec(operand));
    Operation *clone = b.clone(*def, map);
    for (auto [orig, copy] : llvm::zip(def->getResults(), clone->getResults()))
      recomputed[orig] = copy;
    return recomputed.lookup(v);
  };
  // The backward ops (the results returned, the loss among them, are left
  // as they are).
  SmallVector<Operation *> backward;
  for (Operation *op = seed; op && op != body.getTerminator();
       op = op->getNextNode())
    backward.push_back(op);
  // Each run of recomputed ops is a phase of its own for --trace
  // (llm-microbatch numbers the micro-batch and chunk).
  for (Operation *op : backward) {
    b.setInsertionPoint(op);
    Operation *before = op->getPrevNode();
    for (OpOperand &use : op->getOpOperands())
      use.set(rec(use.get()));
    if (op->getPrevNode() == before)
      continue;
    auto zero = b.getI64IntegerAttr(0);
    PhaseOp::create(b, op->getLoc(), b.getStringAttr("backward"), zero, zero);
    OpBuilder::InsertionGuard guard(b);
    if (before)
      b.setInsertionPointAfter(before);
    else
      b.setInsertionPointToStart(op->getBlock());
    PhaseOp::create(b, op->getLoc(), b.getStringAttr("recompute"), zero, zero);
  }
}
