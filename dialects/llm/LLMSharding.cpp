//===- LLMSharding.cpp - ShardingInterface models of the llm ops ----------===//
//
// Each op describes its iteration space (loops, their kinds, and the affine
// map from the loops to every operand and result), which is what upstream's
// sharding-propagation reasons about; its default partition (replication)
// is not used: llm-partition rewrites the ops (docs/design.md).
//
// - Elementwise ops (add, mul, gelu, silu and their gradients, rope, the
//   tensor-parallel copy): one parallel loop per result axis; a broadcast
//   operand maps to the trailing loops.
// - linear: leading axes and out parallel, in a sum reduction (a
//   row-parallel linear's result is a partial sum); the weight grad the
//   transpose (rows summed); sum_leading sums the leading axes.
// - Norms: rows parallel; the normalized axis may not be split (its
//   statistics would need a reduction across shards), so a sharding of it
//   is dropped from the option.
// - embedding: a gather over the vocabulary, modeled as a sum over V (a
//   vocabulary-parallel table gives a partial sum, completed by Megatron's
//   all-reduce); cross_entropy averages its rows and reduces V generically.
// - attention: batch, query positions and features (whole heads) parallel;
//   key positions a generic reduction.
// - split: parallel, every result mapped like the input (the fused q|k|v
//   split keeps per-block shards: llm-partition's tp_shard blocks).
//
// - Backward: the norm gradients sum the rows into dw, db (a row split makes
//   them partial) and keep the normalized axis whole; the embedding
//   gradient sums rows into [V, C]; the loss and attention gradients keep
//   the vocabulary and the positions whole; concat as split.
//
// - adamw, clip_scale and all_reduce are elementwise (their scalars map to
//   no loop).
//
// global_norm (operands of every shape into one scalar), all_gather,
// reduce_scatter and shard_slice (a rank's share in, the whole out, or the
// reverse) have no model: they exist only in partitioned programs, whose
// shapes are one rank's, and the shard dialect has its own collectives.
//
//===----------------------------------------------------------------------===//
#include "llm/LLMDialect.h"
#include "llm/LLMOps.h"

#include "mlir/Dialect/Shard/Interfaces/ShardingInterface.h"
#include "mlir/Dialect/Shard/Interfaces/ShardingInterfaceImpl.h"
#include "mlir/IR/AffineMap.h"
#include "mlir/IR/DialectRegistry.h"

using namespace mlir;
using namespace mlir::llm;
using mlir::shard::ReductionKind;
using mlir::utils::IteratorType;

namespace {

/// An op's iteration space.
struct Space {
  SmallVector<IteratorType> iterators;
  SmallVector<ReductionKind> reductions; ///< one per reduction loop
  SmallVector<AffineMap> maps;           ///< operands, then results
  int unsplittable = -1;                 ///< a loop no sharding may use
};

int64_t rankOf(Value v) {
  auto t = dyn_cast<ShapedType>(v.getType());
  return t ? t.getRank() : 0;
}

/// (d0 .. d{n-1}) -> the listed loops.
AffineMap mapOf(MLIRContext *ctx, unsigned loops, ArrayRef<unsigned> dims) {
  SmallVector<AffineExpr> exprs;
  for (unsigned d : dims)
    exprs.push_back(getAffineDimExpr(d, ctx));
  return AffineMap::get(loops, 0, exprs, ctx);
}

/// Loops [from, from + count).
SmallVector<unsigned> range(unsigned from, unsigned count) {
  SmallVector<unsigned> r;
  for (unsigned i = 0; i < count; ++i)
    r.push_back(from + i);
  return r;
}

Space elementwise(Operation *op) {
  MLIRContext *ctx = op->getContext();
  unsigned n = static_cast<unsigned>(rankOf(op->getResult(0)));
  Space s;
  s.iterators.assign(n, IteratorType::parallel);
  for (Value v : op->getOperands()) {
    unsigned k = static_cast<unsigned>(rankOf(v));
    s.maps.push_back(mapOf(ctx, n, range(n - std::min(k, n), std::min(k, n))));
  }
  for (Value r : op->getResults())
    s.maps.push_back(mapOf(ctx, n, range(0, static_cast<unsigned>(rankOf(r)))));
  return s;
}

Space describe(Operation *op) {
  MLIRContext *ctx = op->getContext();
  if (auto lin = dyn_cast<LinearOp>(op)) {
    // Loops: lead..., out, in.
    unsigned lead = static_cast<unsigned>(rankOf(lin.getInput())) - 1;
    unsigned n = lead + 2, out = lead, in = lead + 1;
    Space s;
    s.iterators.assign(lead + 1, IteratorType::parallel);
    s.iterators.push_back(IteratorType::reduction);
    s.reductions = {ReductionKind::Sum};
    SmallVector<unsigned> x = range(0, lead);
    x.push_back(in);
    s.maps.push_back(mapOf(ctx, n, x));
    s.maps.push_back(lin.getTransposeWeight() ? mapOf(ctx, n, {out, in})
                                              : mapOf(ctx, n, {in, out}));
    if (lin.getBias())
      s.maps.push_back(mapOf(ctx, n, {out}));
    SmallVector<unsigned> y = range(0, lead);
    y.push_back(out);
    s.maps.push_back(mapOf(ctx, n, y));
    return s;
  }
  if (auto g = dyn_cast<LinearWeightGradOp>(op)) {
    // Loops: in, out, lead... (the rows are summed).
    unsigned lead = static_cast<unsigned>(rankOf(g.getInput())) - 1;
    unsigned n = lead + 2;
    Space s;
    s.iterators = {IteratorType::parallel, IteratorType::parallel};
    s.iterators.append(lead, IteratorType::reduction);
    s.reductions.assign(lead, ReductionKind::Sum);
    SmallVector<unsigned> x = range(2, lead), dy = range(2, lead);
    x.push_back(0);
    dy.push_back(1);
    s.maps = {mapOf(ctx, n, x), mapOf(ctx, n, dy),
              g.getTransposeWeight() ? mapOf(ctx, n, {1, 0}) : mapOf(ctx, n, {0, 1})};
    return s;
  }
  if (auto sl = dyn_cast<SumLeadingOp>(op)) {
    unsigned r = static_cast<unsigned>(rankOf(sl.getInput()));
    unsigned kept = static_cast<unsigned>(rankOf(sl.getResult()));
    Space s;
    s.iterators.assign(kept, IteratorType::parallel);
    s.iterators.append(r - kept, IteratorType::reduction);
    s.reductions.assign(r - kept, ReductionKind::Sum);
    SmallVector<unsigned> in = range(kept, r - kept);
    in.append(range(0, kept));
    s.maps = {mapOf(ctx, r, in), mapOf(ctx, r, range(0, kept))};
    return s;
  }
  if (isa<LayerNormOp, RMSNormOp>(op)) {
    unsigned n = static_cast<unsigned>(rankOf(op->getOperand(0)));
    Space s;
    s.iterators.assign(n, IteratorType::parallel);
    s.maps.push_back(mapOf(ctx, n, range(0, n)));
    for (unsigned i = 1; i < op->getNumOperands(); ++i)
      s.maps.push_back(mapOf(ctx, n, {n - 1}));
    s.maps.push_back(mapOf(ctx, n, range(0, n)));
    s.unsplittable = static_cast<int>(n - 1);
    return s;
  }
  if (auto emb = dyn_cast<EmbeddingOp>(op)) {
    // Loops: ids axes..., c, v (a sum over the vocabulary).
    unsigned k = static_cast<unsigned>(rankOf(emb.getIds()));
    unsigned n = k + 2, c = k, v = k + 1;
    Space s;
    s.iterators.assign(k + 1, IteratorType::parallel);
    s.iterators.push_back(IteratorType::reduction);
    s.reductions = {ReductionKind::Sum};
    SmallVector<unsigned> out = range(0, k);
    out.push_back(c);
    s.maps = {mapOf(ctx, n, range(0, k)), mapOf(ctx, n, {v, c}), mapOf(ctx, n, out)};
    return s;
  }
  if (auto ce = dyn_cast<CrossEntropyOp>(op)) {
    // Loops: rows..., v; the loss averages the rows.
    unsigned k = static_cast<unsigned>(rankOf(ce.getTargets()));
    unsigned n = k + 1;
    Space s;
    s.iterators.assign(n, IteratorType::reduction);
    s.reductions.assign(k, ReductionKind::Average);
    s.reductions.push_back(ReductionKind::Generic);
    s.maps = {mapOf(ctx, n, range(0, n)), mapOf(ctx, n, range(0, k)),
              AffineMap::get(n, 0, {}, ctx)};
    return s;
  }
  if (auto at = dyn_cast<AttentionOp>(op)) {
    // Loops: b, query s, features (whole heads), key s.
    Space s;
    s.iterators = {IteratorType::parallel, IteratorType::parallel,
                   IteratorType::parallel, IteratorType::reduction};
    s.reductions = {ReductionKind::Generic};
    AffineMap q = mapOf(ctx, 4, {0, 1, 2}), kv = mapOf(ctx, 4, {0, 3, 2});
    s.maps = {q, kv, kv, q};
    return s;
  }
  if (isa<LayerNormGradOp, RMSNormGradOp>(op)) {
    // Loops: rows... (summed into the weight and bias gradients), C (not
    // split: dx needs each row's statistics).
    unsigned n = static_cast<unsigned>(rankOf(op->getOperand(0)));
    Space s;
    s.iterators.assign(n - 1, IteratorType::reduction);
    s.iterators.push_back(IteratorType::parallel);
    s.reductions.assign(n - 1, ReductionKind::Sum);
    AffineMap full = mapOf(ctx, n, range(0, n)), feat = mapOf(ctx, n, {n - 1});
    s.maps = {full, feat, full, full}; // x, w, dy -> dx
    for (unsigned i = 1; i < op->getNumResults(); ++i)
      s.maps.push_back(feat); // dw (, db)
    s.unsplittable = static_cast<int>(n - 1);
    return s;
  }
  if (auto g = dyn_cast<EmbeddingGradOp>(op)) {
    // Loops: rows... (summed), c, v: dtable[v, c] gathers the rows of v.
    unsigned k = static_cast<unsigned>(rankOf(g.getIds()));
    unsigned n = k + 2, c = k, v = k + 1;
    Space s;
    s.iterators.assign(k, IteratorType::reduction);
    s.iterators.append({IteratorType::parallel, IteratorType::parallel});
    s.reductions.assign(k, ReductionKind::Sum);
    SmallVector<unsigned> dout = range(0, k);
    dout.push_back(c);
    s.maps = {mapOf(ctx, n, range(0, k)), mapOf(ctx, n, dout), mapOf(ctx, n, {v, c})};
    return s;
  }
  if (isa<PositionEmbeddingGradOp>(op))
    return elementwise(op); // [S, C] -> [P, C], row for row
  if (auto g = dyn_cast<CrossEntropyGradOp>(op)) {
    // Rows parallel; the vocabulary not split (each row's softmax).
    unsigned n = static_cast<unsigned>(rankOf(g.getLogits()));
    Space s;
    s.iterators.assign(n, IteratorType::parallel);
    s.maps = {mapOf(ctx, n, range(0, n)), mapOf(ctx, n, range(0, n - 1)),
              mapOf(ctx, n, range(0, n))};
    s.unsplittable = static_cast<int>(n - 1);
    return s;
  }
  if (isa<AttentionGradOp>(op)) {
    // Batch and features (whole heads) parallel; positions not split
    // (every query meets every key).
    Space s;
    s.iterators.assign(3, IteratorType::parallel);
    AffineMap full = mapOf(ctx, 3, {0, 1, 2});
    s.maps.assign(op->getNumOperands() + op->getNumResults(), full);
    s.unsplittable = 1;
    return s;
  }
  if (isa<SplitOp, ConcatOp>(op)) {
    unsigned n = static_cast<unsigned>(rankOf(op->getOperand(0)));
    Space s;
    s.iterators.assign(n, IteratorType::parallel);
    for (unsigned i = 0; i < op->getNumOperands() + op->getNumResults(); ++i)
      s.maps.push_back(mapOf(ctx, n, range(0, n)));
    return s;
  }
  return elementwise(op);
}

template <typename OpT>
struct LLMShardingModel
    : public shard::ShardingInterface::ExternalModel<LLMShardingModel<OpT>, OpT> {
  SmallVector<IteratorType> getLoopIteratorTypes(Operation *op) const {
    return describe(op).iterators;
  }
  SmallVector<ReductionKind> getReductionLoopIteratorKinds(Operation *op) const {
    return describe(op).reductions;
  }
  SmallVector<AffineMap> getIndexingMaps(Operation *op) const {
    return describe(op).maps;
  }
  FailureOr<shard::ShardingOption>
  getShardingOption(Operation *op, ArrayRef<shard::Sharding> operandShardings,
                    ArrayRef<shard::Sharding> resultShardings) const {
    FailureOr<shard::ShardingOption> opt = shard::detail::defaultGetShardingOption(
        op, operandShardings, resultShardings);
    int loop = describe(op).unsplittable;
    if (succeeded(opt) && !opt->empty && loop >= 0 &&
        loop < static_cast<int>(opt->shardingArray.size()))
      opt->shardingArray[loop].clear();
    return opt;
  }
};

template <typename... OpTs>
void attach(MLIRContext *ctx) {
  (OpTs::template attachInterface<LLMShardingModel<OpTs>>(*ctx), ...);
}

} // namespace

void mlir::llm::registerShardingInterfaceExternalModels(DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, LLMDialect *) {
    attach<LinearOp, LinearWeightGradOp, SumLeadingOp, LayerNormOp, RMSNormOp,
           EmbeddingOp, CrossEntropyOp, AttentionOp, SplitOp, AddOp, MulOp,
           GeluOp, SiluOp, GeluGradOp, SiluGradOp, RoPEOp, TPCopyOp,
           PositionEmbeddingOp, LayerNormGradOp, RMSNormGradOp, EmbeddingGradOp,
           PositionEmbeddingGradOp, CrossEntropyGradOp, AttentionGradOp,
           ConcatOp, AdamWOp, ClipScaleOp, AllReduceOp>(ctx);
  });
}
