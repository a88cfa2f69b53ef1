//===- Microbatch.cpp - gradient accumulation over micro-batches ----------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/LLMOps.h"
#include "llm/Planner/Schedule.h"
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

/// The forward and backward of each of a pipeline stage's chunks in one
/// micro-batch of `@train_step`: the forwards in chunk order, then the
/// backwards in reverse. Each starts where a value arrives from another
/// stage (llm.recv) or where the loss gradient is seeded; the first forward
/// also takes what comes before.
FailureOr<SmallVector<SmallVector<Operation *>>>
pipelineSegments(func::FuncOp fn, ArrayRef<Operation *> ops, int64_t chunks) {
  SmallVector<SmallVector<Operation *>> segments(1);
  bool first = true;
  for (Operation *op : ops) {
    if (isa<RecvOp, CrossEntropyGradOp>(op)) {
      if (!first || !segments.back().empty())
        segments.emplace_back();
      first = false;
    }
    segments.back().push_back(op);
  }
  if (static_cast<int64_t>(segments.size()) != 2 * chunks)
    return fn.emitError() << "llm-microbatch: a pipeline stage of " << chunks
                          << " chunk(s) should split into " << 2 * chunks
                          << " forward and backward parts, got "
                          << segments.size();
  return segments;
}

/// Makes `fn` (one micro-batch) take `m` micro-batches of tokens and
/// targets and return the mean of its results over them. On a pipeline
/// stage, `schedule` orders the forwards and backwards of the micro-batches
/// (lib/Planner/Schedule.cpp); otherwise each runs whole in turn.
LogicalResult unroll(func::FuncOp fn, int64_t m,
                     ArrayRef<PipelineAction> schedule = {},
                     int64_t chunks = 1) {
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
  SmallVector<Value> sums(ret.getNumOperands(), Value());
  // The whole micro-batch in turn, or the schedule's parts of it.
  SmallVector<SmallVector<Operation *>> segments = {ops};
  SmallVector<PipelineAction> actions;
  if (schedule.empty()) {
    // Each micro-batch whole in turn: its forward, then (in @train_step)
    // its backward from the loss gradient on.
    auto seed = llvm::find_if(ops, [](Operation *op) {
      return isa<CrossEntropyGradOp>(op);
    });
    if (seed != ops.end())
      segments = {SmallVector<Operation *>(ops.begin(), seed),
                  SmallVector<Operation *>(seed, ops.end())};
    for (int64_t k = 0; k < m; ++k) {
      actions.push_back({PipelineAction::Forward, k, 0});
      if (segments.size() == 2)
        actions.push_back({PipelineAction::Backward, k, 0});
    }
  } else {
    FailureOr<SmallVector<SmallVector<Operation *>>> parts =
        pipelineSegments(fn, ops, chunks);
    if (failed(parts))
      return failure();
    segments = std::move(*parts);
    actions.assign(schedule.begin(), schedule.end());
  }
  DenseMap<Operation *, int64_t> segmentOf;
  for (auto [i, seg] : llvm::enumerate(segments))
    for (Operation *op : seg)
      segmentOf[op] = static_cast<int64_t>(i);
  SmallVector<IRMapping> maps(m);
  SmallVector<bool> sliced(m, false);
  SmallVector<Operation *> actionStarts;
  for (const PipelineAction &a : actions) {
    int64_t k = a.microbatch;
    IRMapping &map = maps[k];
    if (!sliced[k]) {
      for (auto [arg, t] : llvm::zip(inputs, microTypes))
        map.map(arg, BatchSliceOp::create(b, fn.getLoc(), t, arg,
                                          b.getI64IntegerAttr(k),
                                          b.getI64IntegerAttr(m)));
      sliced[k] = true;
    }
    int64_t seg = a.kind == PipelineAction::Forward ? a.chunk
                                                     : 2 * chunks - 1 - a.chunk;
    // Where this part starts, for --trace; the recomputation inside a
    // backward (llm-rematerialize's phases) gets this micro-batch and chunk.
    auto mb = b.getI64IntegerAttr(k), chunk = b.getI64IntegerAttr(a.chunk);
    actionStarts.push_back(PhaseOp::create(
        b, fn.getLoc(),
        b.getStringAttr(a.kind == PipelineAction::Forward ? "forward" : "backward"),
        mb, chunk));
    for (Operation *op : segments[seg]) {
      Operation *copy = b.clone(*op, map);
      if (auto phase = dyn_cast<PhaseOp>(copy)) {
        phase.setMicrobatchAttr(mb);
        phase.setChunkAttr(chunk);
      }
    }
    // Add each result of this micro-batch to its running sum as soon as it
    // is computed (in place over the sum), so that no gradient of it lives
    // on through the rest of its backward.
    for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
      Operation *def = v.getDefiningOp();
      if (!def || segmentOf.lookup(def) != seg)
        continue;
      Value r = map.lookup(v);
      if (!sums[i]) {
        sums[i] = r;
        continue;
      }
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointAfterValue(r);
      sums[i] = AddOp::create(b, fn.getLoc(), sums[i].getType(), sums[i], r);
    }
  }
  for (auto [i, v] : llvm::enumerate(ret.getOperands()))
    if (!sums[i])
      return fn.emitError() << "llm-microbatch: result #" << i
                            << " is not computed by the step's ops";
  // Pipeline receives are posted an action early (the runtime starts them
  // non-blocking and waits where the value is read): the neighbour's data
  // can land while this rank computes. Their order among themselves stays
  // (MPI matches a peer's messages of one tag in posting order).
  if (!schedule.empty()) {
    Operation *lastPlaced = nullptr;
    size_t action = 0;
    SmallVector<RecvOp> recvs;
    for (Operation &op : body)
      if (auto r = dyn_cast<RecvOp>(op))
        recvs.push_back(r);
    for (RecvOp r : recvs) {
      while (action + 1 < actionStarts.size() &&
             actionStarts[action + 1]->isBeforeInBlock(r))
        ++action;
      if (action > 0) {
        Operation *target = actionStarts[action - 1];
        if (lastPlaced && target->isBeforeInBlock(lastPlaced))
          r->moveAfter(lastPlaced);
        else
          r->moveBefore(target);
      }
      lastPlaced = r;
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
    // Pipeline stages: the compiler's schedule orders the micro-batches'
    // forwards and backwards (the model function, forward only, runs them
    // in turn).
    SmallVector<PipelineAction> order;
    int64_t chunks = 1;
    if (auto stage = module->getAttrOfType<IntegerAttr>("llm.stage")) {
      Schedule kind = plan.getSchedule() == "gpipe" ? Schedule::GPipe
                      : plan.getSchedule() == "interleaved"
                          ? Schedule::Interleaved
                          : Schedule::OneFOneB;
      chunks = std::max<int64_t>(1, plan.getVpp());
      std::string error;
      auto lists = buildPipelineSchedule(kind, plan.getPp(), chunks, m, error);
      if (lists.empty()) {
        module.emitError() << "llm-microbatch: schedule '"
                           << plan.getSchedule().getValue() << "': " << error;
        return signalPassFailure();
      }
      order.assign(lists[stage.getInt()].begin(), lists[stage.getInt()].end());
    }
    if (failed(unroll(step, m, order, chunks)) || failed(unroll(*model, m)))
      return signalPassFailure();
  }
};

} // namespace
