//===- AnnotateSharding.cpp - the plan in upstream's shard dialect --------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/LLMOps.h"
#include "llm/Transforms/Passes.h"

#include "mlir/Dialect/Shard/IR/ShardOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/DenseSet.h"

namespace mlir::llm {
#define GEN_PASS_DEF_ANNOTATESHARDING
#include "llm/Transforms/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
using namespace mlir::llm;

namespace {

struct AnnotateShardingPass
    : public llm::impl::AnnotateShardingBase<AnnotateShardingPass> {
  using AnnotateShardingBase::AnnotateShardingBase;
  void runOnOperation() override;
};

} // namespace

void AnnotateShardingPass::runOnOperation() {
  ModuleOp module = getOperation();
  auto plan = module->getAttrOfType<PlanAttr>("llm.plan");
  if (!plan) {
    module.emitError() << "llm-annotate-sharding: the module has no llm.plan";
    return signalPassFailure();
  }
  FailureOr<func::FuncOp> fnOr = getModelFunction(module);
  if (failed(fnOr))
    return signalPassFailure();
  func::FuncOp fn = *fnOr;
  const int64_t dp = plan.getDp(), tp = plan.getTp();
  OpBuilder b(module.getContext());
  b.setInsertionPointToStart(module.getBody());
  shard::GridOp::create(b, module.getLoc(), "llm_grid", ArrayRef<int64_t>{dp, tp});

  // axis -> grid axis of each argument to annotate.
  DenseMap<unsigned, std::pair<int64_t, int16_t>> splits;
  // Uneven splits (a padded vocabulary): the shards' offsets along the axis.
  DenseMap<unsigned, SmallVector<int64_t>> offsets;
  auto argOf = [&](Value v) -> std::optional<unsigned> {
    auto arg = dyn_cast<BlockArgument>(v);
    if (!arg || arg.getOwner()->getParentOp() != fn)
      return std::nullopt;
    return arg.getArgNumber();
  };
  if (dp > 1)
    for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i)
      if (auto in = fn.getArgAttrOfType<StringAttr>(i, kInputAttr);
          in && (in.getValue() == "tokens" || in.getValue() == "targets"))
        splits[i] = {0, 0};

  if (tp > 1) {
    // Which values have their feature axis split over tp (llm-partition's
    // rule): a column-parallel linear's output, and what attention, rotary
    // embeddings, splits and elementwise ops compute from split values.
    Block &body = fn.getBody().front();
    DenseSet<Value> split;
    auto param = [&](Value v, int64_t axis) {
      if (auto i = argOf(v); i && fn.getArgAttr(*i, kParamAttr))
        splits[*i] = {axis, 1};
    };
    for (Operation &op : body.without_terminator()) {
      if (auto e = dyn_cast<EmbeddingOp>(op)) {
        // The vocabulary split as llm-partition splits it:
        // vocabRowsPerRank rows a rank, the last ones short when those do
        // not add up to V (upstream's uneven shards, `sharded_dims_offsets`,
        // where llm-partition pads).
        auto t = cast<ShapedType>(e.getTable().getType());
        int64_t V = t.getDimSize(0),
                perRank = vocabRowsPerRank(V, tp, vocabAlign);
        if (perRank > 0) {
          param(e.getTable(), 0);
          if (perRank * tp != V)
            if (auto i = argOf(e.getTable())) {
              SmallVector<int64_t> at;
              for (int64_t r = 0; r <= tp; ++r)
                at.push_back(std::min(V, r * perRank));
              offsets[*i] = at;
            }
        }
        continue;
      }
      if (auto lin = dyn_cast<LinearOp>(op)) {
        bool head = llvm::any_of(lin->getUsers(),
                                 [](Operation *u) { return isa<CrossEntropyOp>(u); });
        if (head)
          continue; // its weight, when it is the table, is already split
        bool trans = lin.getTransposeWeight();
        if (split.contains(lin.getInput())) {
          param(lin.getWeight(), trans ? 1 : 0); // row-parallel: input features
        } else {
          param(lin.getWeight(), trans ? 0 : 1); // column-parallel: outputs
          if (lin.getBias())
            param(lin.getBias(), 0);
          split.insert(lin.getResult());
        }
        continue;
      }
      if (isa<AttentionOp, RoPEOp, SplitOp, GeluOp, SiluOp, MulOp, AddOp>(op) &&
          llvm::any_of(op.getOperands(), [&](Value v) { return split.contains(v); }))
        for (Value r : op.getResults())
          split.insert(r);
    }
  }

  b.setInsertionPointToStart(&fn.getBody().front());
  auto grid = FlatSymbolRefAttr::get(module.getContext(), "llm_grid");
  SmallVector<unsigned> order;
  for (auto &entry : splits)
    order.push_back(entry.first);
  llvm::sort(order);
  for (unsigned i : order) {
    std::pair<int64_t, int16_t> s = splits.lookup(i);
    BlockArgument arg = fn.getArgument(i);
    auto type = cast<RankedTensorType>(arg.getType());
    SmallVector<shard::GridAxesAttr> axes;
    for (int64_t d = 0; d < type.getRank(); ++d)
      axes.push_back(b.getDenseI16ArrayAttr(
          d == s.first ? ArrayRef<int16_t>{s.second} : ArrayRef<int16_t>{}));
    auto sharding = shard::ShardingOp::create(b, fn.getLoc(), grid, axes);
    if (offsets.count(i))
      sharding.setStaticShardedDimsOffsetsAttr(b.getDenseI64ArrayAttr(offsets[i]));
    auto annotated = shard::ShardOp::create(b, fn.getLoc(), arg, sharding.getResult(),
                                            b.getUnitAttr());
    arg.replaceAllUsesExcept(annotated.getResult(), annotated);
  }
}
