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
  using PartitionBase::PartitionBase;
  void runOnOperation() override;
};
} // namespace

/// `type` with its leading (batch) dimension divided by `dp`.
static RankedTensorType rebatch(RankedTensorType type, int64_t dp) {
  SmallVector<int64_t> shape(type.getShape());
  shape[0] /= dp;
  return RankedTensorType::get(shape, type.getElementType());
}

/// `type` with axis `axis` divided by `tp` (rounded up).
static RankedTensorType shrink(Type type, int64_t axis, int64_t tp) {
  auto t = cast<RankedTensorType>(type);
  SmallVector<int64_t> shape(t.getShape());
  shape[axis] = (shape[axis] + tp - 1) / tp;
  return RankedTensorType::get(shape, t.getElementType());
}

/// `type` with `size` entries along axis `axis`.
static RankedTensorType resize(Type type, int64_t axis, int64_t size) {
  auto t = cast<RankedTensorType>(type);
  SmallVector<int64_t> shape(t.getShape());
  shape[axis] = size;
  return RankedTensorType::get(shape, t.getElementType());
}

/// Megatron tensor parallelism on the model function: column-parallel
/// linears (replicated input) keep out/tp output features, row-parallel ones
/// (split input) in/tp input features followed by an all-reduce and their
/// bias; attention, rotary embeddings and activations run on this rank's
/// heads and features. The embedding, norms and LM head stay replicated.
/// Each split parameter gets its local shape and `llm.tp_shard = [axis,
/// blocks]`: along `axis` the global tensor is `blocks` equal blocks (GPT-2's
/// fused q|k|v is 3), each cut into tp parts, and this rank holds part
/// `tp_rank` of every block.
///
/// With tp = 1 only the vocabulary is rewritten, and only when `align` does
/// not divide it: the table and the head are padded to a multiple of
/// `align` rows as one rank's "shard" (nothing else is split, no
/// collective is added).
static LogicalResult partitionTensorParallel(func::FuncOp fn, int64_t tp,
                                             int64_t align) {
  MLIRContext *ctx = fn.getContext();
  Block &body = fn.getBody().front();
  OpBuilder b(ctx);
  DenseMap<Value, bool> split;
  DenseMap<Value, Value> copies; // replicated value -> its tp_copy
  DenseSet<Value> sharded;

  auto paramIndex = [&](Value v) -> std::optional<unsigned> {
    auto arg = dyn_cast<BlockArgument>(v);
    if (!arg || !fn.getArgAttr(arg.getArgNumber(), kParamAttr))
      return std::nullopt;
    return arg.getArgNumber();
  };
  auto shardParam = [&](Operation *op, Value v, int64_t axis,
                        int64_t blocks) -> LogicalResult {
    std::optional<unsigned> idx = paramIndex(v);
    if (!idx)
      return op->emitOpError() << "llm-partition: the weight of a "
                                  "tensor-parallel op must be a parameter";
    if (!v.hasOneUse() || sharded.contains(v))
      return op->emitOpError() << "llm-partition: a tensor-parallel weight "
                                  "must have one use";
    auto type = cast<RankedTensorType>(v.getType());
    if (type.getDimSize(axis) % (blocks * tp) != 0)
      return op->emitOpError()
             << "llm-partition: axis " << axis << " of size "
             << type.getDimSize(axis) << " does not split into " << blocks
             << " x tp=" << tp << " parts";
    v.setType(shrink(type, axis, tp));
    fn.setArgAttr(*idx, "llm.tp_shard",
                  DenseI64ArrayAttr::get(ctx, {axis, blocks}));
    fn.setArgAttr(*idx, "llm.global_shape",
                  DenseI64ArrayAttr::get(ctx, type.getShape()));
    sharded.insert(v);
    return success();
  };

  // Vocabulary parallelism (Megatron): the embedding table, and the LM head
  // that reads it or its own [V, h] matrix, keep V/tp rows each; the lookup
  // is completed by an all-reduce, the head's logits stay split and the
  // cross-entropy reduces over the group. When tp x align does not divide V
  // the vocabulary is padded (as Megatron pads it) to
  // vocabRowsPerRank(V, tp, align) rows a rank: the padding rows are zeros
  // that no token reads, and the cross-entropy (given the model's V) leaves
  // their logits out of the softmax, so they get no gradient and stay zero.
  // `llm.tp_shard = [0, 1, V]` records the padding; `llm.global_shape` is
  // the padded tensor.
  auto splitVocab = [&](Value v, unsigned idx, int64_t rows) {
    auto type = cast<RankedTensorType>(v.getType());
    int64_t vocab = type.getDimSize(0);
    RankedTensorType local = resize(type, 0, rows);
    SmallVector<int64_t> global(type.getShape());
    global[0] = rows * tp;
    v.setType(local);
    SmallVector<int64_t> shard = {0, 1};
    if (global[0] != vocab)
      shard.push_back(vocab);
    fn.setArgAttr(idx, "llm.tp_shard", DenseI64ArrayAttr::get(ctx, shard));
    fn.setArgAttr(idx, "llm.global_shape", DenseI64ArrayAttr::get(ctx, global));
    sharded.insert(v);
  };
  EmbeddingOp emb;
  LinearOp head;
  for (Operation &op : body.without_terminator()) {
    if (auto e = dyn_cast<EmbeddingOp>(op); e && !emb)
      emb = e;
    if (auto l = dyn_cast<LinearOp>(op))
      if (llvm::any_of(l->getUsers(), [](Operation *u) {
            return isa<CrossEntropyOp>(u);
          }))
        head = l;
  }
  DenseSet<Operation *> handled;
  // The table: the embedding's, or on the last pipeline stage (which has no
  // embedding) the tied copy the head reads. That stage's head splits as
  // the first stage's table does (the same vocabRowsPerRank).
  Value table;
  if (emb && paramIndex(emb.getTable()))
    table = emb.getTable();
  else if (!emb && head && head.getTransposeWeight() && !head.getBias())
    if (std::optional<unsigned> idx = paramIndex(head.getWeight());
        idx && fn.getArgAttr(*idx, "llm.tied"))
      table = head.getWeight();
  bool tableSplit = false;
  if (table) {
    auto ttype = cast<RankedTensorType>(table.getType());
    bool headReadsTable = head && head.getWeight() == table &&
                          head.getTransposeWeight() && !head.getBias();
    bool onlyThese = llvm::all_of(table.getUsers(), [&](Operation *u) {
      return (emb && u == emb.getOperation()) ||
             (headReadsTable && u == head.getOperation());
    });
    // A padding shard must leave every rank some of the vocabulary; one
    // rank pads only to align.
    int64_t rows = vocabRowsPerRank(ttype.getDimSize(0), tp, align);
    if (onlyThese && rows > 0 && (tp > 1 || rows != ttype.getDimSize(0))) {
      splitVocab(table, *paramIndex(table), rows);
      tableSplit = true;
      // One rank holds every row: its lookup is the plain one.
      if (emb && tp > 1) {
        emb.setVocabGroupAttr(b.getStringAttr("tp"));
        b.setInsertionPointAfter(emb);
        auto full = AllReduceOp::create(b, emb.getLoc(), emb.getResult(),
                                        b.getStringAttr("tp"),
                                        b.getStringAttr("sum"));
        emb.getResult().replaceAllUsesExcept(full.getResult(), full);
        handled.insert(emb);
      }
    }
  }
  // The head: the table itself, or its own [V, h] matrix (when the table
  // splits, or on a last pipeline stage without one).
  if (head && (tableSplit || !emb)) {
    bool headSplit = tableSplit && head.getWeight() == table;
    if (!headSplit && head.getTransposeWeight() && !head.getBias() &&
        paramIndex(head.getWeight()) && head.getWeight().hasOneUse() &&
        !sharded.contains(head.getWeight())) {
      auto wtype = cast<RankedTensorType>(head.getWeight().getType());
      int64_t perRank = vocabRowsPerRank(wtype.getDimSize(0), tp, align);
      bool matchesTable =
          !table || cast<RankedTensorType>(table.getType()).getDimSize(0) == perRank;
      if (matchesTable && perRank > 0 &&
          (tp > 1 || perRank != wtype.getDimSize(0))) {
        splitVocab(head.getWeight(), *paramIndex(head.getWeight()), perRank);
        headSplit = true;
      }
    }
    if (headSplit) {
      // The head's input is replicated (column-parallel over the
      // vocabulary); one rank needs no copy.
      if (tp > 1) {
        Value in = head.getInput();
        b.setInsertionPointAfterValue(in);
        Value copy = TPCopyOp::create(b, head.getLoc(), in);
        head->setOperand(0, copy);
      }
      Value r = head.getResult();
      auto rtype = cast<RankedTensorType>(r.getType());
      r.setType(resize(rtype, rtype.getRank() - 1,
                       cast<RankedTensorType>(head.getWeight().getType()).getDimSize(0)));
      split[r] = true;
      handled.insert(head);
      // A padded vocabulary: the loss needs the model's.
      auto shard = fn.getArgAttrOfType<DenseI64ArrayAttr>(
          *paramIndex(head.getWeight()), "llm.tp_shard");
      for (Operation *u : r.getUsers())
        if (auto ce = dyn_cast<CrossEntropyOp>(u)) {
          ce.setVocabGroupAttr(b.getStringAttr("tp"));
          if (shard && shard.size() == 3)
            ce.setVocabAttr(b.getI64IntegerAttr(shard[2]));
          handled.insert(ce);
        }
    }
  }
  if (tp == 1) {
    SmallVector<Type> argTypes(body.getArgumentTypes());
    fn.setFunctionType(FunctionType::get(ctx, argTypes, fn.getResultTypes()));
    return success();
  }

  SmallVector<Operation *> ops;
  for (Operation &op : body.without_terminator())
    ops.push_back(&op);
  for (Operation *op : ops) {
    if (handled.contains(op))
      continue;
    bool inSplit = llvm::any_of(op->getOperands(), [&](Value v) {
      return split.lookup(v);
    });
    auto lin = dyn_cast<LinearOp>(op);
    // The LM head (its output feeds the loss) stays replicated.
    bool isHead = lin && llvm::any_of(lin->getUsers(), [](Operation *u) {
      return isa<CrossEntropyOp>(u);
    });
    if (lin && !isHead && !inSplit) {
      // Column-parallel.
      int64_t blocks = 1;
      if (lin->hasOneUse())
        if (auto sp = dyn_cast<SplitOp>(*lin->getUsers().begin())) {
          // The shard layout cuts every block alike: the parts must be equal.
          int64_t width = cast<ShapedType>(sp.getResult(0).getType()).getShape().back();
          for (Value part : sp.getResults())
            if (cast<ShapedType>(part.getType()).getShape().back() != width)
              return sp.emitOpError()
                     << "llm-partition: tensor parallelism needs the parts of "
                        "a split projection to be equal";
          blocks = sp.getNumResults();
        }
      int64_t outAxis = lin.getTransposeWeight() ? 0 : 1;
      if (failed(shardParam(op, lin.getWeight(), outAxis, blocks)))
        return failure();
      if (Value bias = lin.getBias())
        if (failed(shardParam(op, bias, 0, blocks)))
          return failure();
      Value in = lin.getInput();
      Value &copy = copies[in];
      if (!copy) {
        b.setInsertionPointAfterValue(in);
        copy = TPCopyOp::create(b, lin.getLoc(), in);
      }
      lin->setOperand(0, copy);
      Value r = lin.getResult();
      r.setType(shrink(r.getType(), cast<ShapedType>(r.getType()).getRank() - 1, tp));
      split[r] = true;
      continue;
    }
    if (lin && !isHead && inSplit) {
      // Row-parallel: partial sums, all-reduced, then the bias.
      int64_t inAxis = lin.getTransposeWeight() ? 1 : 0;
      if (failed(shardParam(op, lin.getWeight(), inAxis, 1)))
        return failure();
      Value bias = lin.getBias();
      b.setInsertionPointAfter(op);
      auto partial = LinearOp::create(b, lin.getLoc(), lin.getType(),
                                      lin.getInput(), lin.getWeight(), Value(),
                                      lin.getTransposeWeightAttr());
      Value sum = AllReduceOp::create(b, lin.getLoc(), partial,
                                      b.getStringAttr("tp"),
                                      b.getStringAttr("sum"));
      if (bias)
        sum = AddOp::create(b, lin.getLoc(), sum, bias);
      lin.getResult().replaceAllUsesWith(sum);
      op->erase();
      continue;
    }
    if (!inSplit)
      continue;
    // Ops inside the tensor-parallel region work on this rank's share.
    if (auto att = dyn_cast<AttentionOp>(op)) {
      if (att.getNumHeads() % tp || att.getNumKvHeads() % tp)
        return att.emitOpError() << "llm-partition: tp=" << tp
                                 << " does not divide the heads";
      att.setNumHeads(att.getNumHeads() / tp);
      att.setNumKvHeads(att.getNumKvHeads() / tp);
    } else if (auto rope = dyn_cast<RoPEOp>(op)) {
      rope.setNumHeads(rope.getNumHeads() / tp);
    } else if (!isa<SplitOp, GeluOp, SiluOp, MulOp>(op)) {
      return op->emitOpError()
             << "llm-partition: no tensor-parallel rule for this op on "
                "split operands";
    }
    for (Value r : op->getResults()) {
      r.setType(shrink(r.getType(), cast<ShapedType>(r.getType()).getRank() - 1, tp));
      split[r] = true;
    }
  }
  SmallVector<Type> argTypes(body.getArgumentTypes());
  fn.setFunctionType(FunctionType::get(ctx, argTypes, fn.getResultTypes()));
  return success();
}

/// Sequence parallelism (Korthikanti et al.), after the tensor-parallel
/// rewrite: between the tensor-parallel regions (norms, residual and bias
/// adds) each rank keeps 1/tp of the tokens instead of all of them. A rank's
/// tokens are its contiguous 1/tp of the flattened batch x sequence (what
/// Megatron's [s, b, h] layout gives), so the values there are [B s / tp, h]
/// and the collectives are the flat ones: the residual stream is cut after
/// the embedding (`llm.shard_slice`, no data moves), each `llm.tp_copy`
/// becomes an all-gather of the tokens (its gradient a reduce-scatter) and
/// each row-parallel all-reduce a reduce-scatter (its gradient an
/// all-gather). Replicated parameters read on this rank's tokens get
/// `llm.sp_partial_grad`: llm-optimizer sums their gradients over tp.
static LogicalResult partitionSequenceParallel(func::FuncOp fn, int64_t tp) {
  MLIRContext *ctx = fn.getContext();
  Block &body = fn.getBody().front();
  OpBuilder b(ctx);
  auto tpAttr = b.getStringAttr("tp");
  // The parameter a value is (through ZeRO-3's all-gather), or null.
  auto paramOf = [&](Value v) -> BlockArgument {
    if (auto gather = v.getDefiningOp<AllGatherOp>();
        gather && gather.getGroup() == "dp")
      v = gather.getInput();
    auto arg = dyn_cast<BlockArgument>(v);
    return arg && fn.getArgAttr(arg.getArgNumber(), kParamAttr)
               ? arg
               : BlockArgument();
  };
  // The residual stream enters the first layer at the input of the norm
  // whose output the first tp_copy carries.
  TPCopyOp first;
  for (Operation &op : body)
    if ((first = dyn_cast<TPCopyOp>(op)))
      break;
  Operation *norm = first ? first.getInput().getDefiningOp() : nullptr;
  if (!norm || !isa<LayerNormOp, RMSNormOp>(norm))
    return fn.emitError() << "llm-partition: sequence parallelism needs the "
                             "first tensor-parallel region to start at a norm";
  Value stream = norm->getOperand(0);
  auto streamType = cast<RankedTensorType>(stream.getType());
  int64_t h = streamType.getShape().back();
  int64_t tokens = streamType.getNumElements() / h;
  if (tokens % tp != 0)
    return fn.emitError() << "llm-partition: sequence parallelism: tp=" << tp
                          << " does not divide the " << tokens
                          << " tokens of the batch";
  auto local = RankedTensorType::get({tokens / tp, h},
                                     streamType.getElementType());
  // On a later pipeline stage the stream arrives already cut: each
  // tensor-parallel rank receives its own tokens from its peer.
  Operation *start;
  Value cutStream;
  if (auto recv = stream.getDefiningOp<RecvOp>()) {
    recv.getResult().setType(local);
    start = recv;
    cutStream = recv.getResult();
  } else {
    b.setInsertionPointAfterValue(stream);
    auto cut = ShardSliceOp::create(b, norm->getLoc(), local, stream, tpAttr);
    stream.replaceAllUsesExcept(cut.getResult(), cut);
    start = cut;
    cutStream = cut.getResult();
  }

  DenseSet<Value> mine{cutStream}; // values on this rank's tokens
  SmallVector<Operation *> ops;
  for (Operation *op = start->getNextNode(); op && op != body.getTerminator();
       op = op->getNextNode())
    ops.push_back(op);
  for (Operation *op : ops) {
    // The stream leaves for the next pipeline stage as this rank's tokens,
    // and comes back for this rank's next chunk (interleaved) the same way.
    if (isa<SendOp>(op))
      continue;
    if (auto recv = dyn_cast<RecvOp>(op)) {
      recv.getResult().setType(local);
      mine.insert(recv.getResult());
      continue;
    }
    if (auto copy = dyn_cast<TPCopyOp>(op)) {
      if (!mine.contains(copy.getInput()))
        return copy.emitOpError() << "llm-partition: sequence parallelism: "
                                     "the input of a tensor-parallel region "
                                     "is not on this rank's tokens";
      b.setInsertionPoint(copy);
      auto gather = AllGatherOp::create(b, copy.getLoc(), copy.getType(),
                                        copy.getInput(), tpAttr);
      copy.getResult().replaceAllUsesWith(gather.getResult());
      copy->erase();
      continue;
    }
    if (auto reduce = dyn_cast<AllReduceOp>(op);
        reduce && reduce.getGroup() == "tp" &&
        reduce.getInput().getDefiningOp<LinearOp>()) {
      auto type = cast<RankedTensorType>(reduce.getType());
      if (type.getNumElements() != streamType.getNumElements())
        return reduce.emitOpError() << "llm-partition: sequence parallelism: "
                                       "a row-parallel output of another shape "
                                       "than the residual stream";
      b.setInsertionPoint(reduce);
      auto scatter = ReduceScatterOp::create(b, reduce.getLoc(), local,
                                             reduce.getInput(), tpAttr,
                                             reduce.getReductionAttr());
      reduce.getResult().replaceAllUsesWith(scatter.getResult());
      reduce->erase();
      mine.insert(scatter.getResult());
      continue;
    }
    if (llvm::none_of(op->getOperands(),
                      [&](Value v) { return mine.contains(v); }))
      continue;
    if (auto lin = dyn_cast<LinearOp>(op);
        lin && llvm::any_of(lin->getUsers(), [](Operation *u) {
          return isa<CrossEntropyOp>(u);
        }))
      return op->emitOpError()
             << "llm-partition: sequence parallelism needs the "
                "vocabulary-parallel LM head (a linear without bias whose "
                "[vocabulary, hidden] weight is used once), and a "
                "vocabulary of "
             << cast<ShapedType>(lin.getType()).getShape().back()
             << " does not pad into tp=" << tp
             << " slices that each hold some of it";
    if (!isa<AddOp, LayerNormOp, RMSNormOp>(op))
      return op->emitOpError() << "llm-partition: no sequence-parallel rule "
                                  "for this op on this rank's tokens";
    for (Value v : op->getOperands()) {
      if (mine.contains(v))
        continue;
      BlockArgument param = paramOf(v);
      if (!param)
        return op->emitOpError()
               << "llm-partition: sequence parallelism: an operand is on all "
                  "tokens, the other on this rank's";
      fn.setArgAttr(param.getArgNumber(), "llm.sp_partial_grad",
                    UnitAttr::get(ctx));
    }
    for (Value r : op->getResults()) {
      r.setType(local);
      mine.insert(r);
    }
  }
  return success();
}

/// ZeRO-3: every parameter whose size dp divides is kept as this rank's
/// flattened 1/dp share (`llm.zero_shard`, and `llm.zero_of` = the shape it
/// is a share of) and all-gathered where it is used. Its gradient (the
/// adjoint of the all-gather) is reduce-scattered by llm-autodiff.
static void shardParametersZero3(func::FuncOp fn, int64_t dp) {
  MLIRContext *ctx = fn.getContext();
  OpBuilder b(ctx);
  Block &body = fn.getBody().front();
  for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i) {
    if (!fn.getArgAttr(i, kParamAttr))
      continue;
    BlockArgument arg = fn.getArgument(i);
    auto type = cast<RankedTensorType>(arg.getType());
    int64_t n = type.getNumElements();
    if (n % dp != 0 || arg.use_empty())
      continue;
    Operation *first = nullptr;
    for (Operation *user : arg.getUsers())
      if (!first || user->isBeforeInBlock(first))
        first = user;
    auto flat = RankedTensorType::get({n / dp}, type.getElementType());
    b.setInsertionPoint(first);
    // Made with a placeholder operand, then pointed at the argument once its
    // other uses have moved to the gathered value.
    auto gather = AllGatherOp::create(b, first->getLoc(), type, arg,
                                      b.getStringAttr("dp"));
    arg.replaceAllUsesExcept(gather.getResult(), gather);
    arg.setType(flat);
    fn.setArgAttr(i, "llm.zero_shard", b.getI64IntegerAttr(dp));
    fn.setArgAttr(i, "llm.zero_of", DenseI64ArrayAttr::get(ctx, type.getShape()));
  }
  SmallVector<Type> argTypes(body.getArgumentTypes());
  fn.setFunctionType(FunctionType::get(ctx, argTypes, fn.getResultTypes()));
}

void PartitionPass::runOnOperation() {
  ModuleOp module = getOperation();
  auto plan = module->getAttrOfType<PlanAttr>("llm.plan");
  if (!plan) {
    module.emitError() << "llm-partition: the module has no llm.plan (run "
                          "llm-auto-plan, or llm-compile --plan)";
    return signalPassFailure();
  }
  // Pipeline parallelism: llm-pipeline-stage has cut the function to this
  // stage's chunks already.
  if (plan.getPp() > 1 && !module->hasAttr("llm.stage")) {
    module.emitError() << "llm-partition: pp=" << plan.getPp()
                       << " needs llm-pipeline-stage first";
    return signalPassFailure();
  }
  if (plan.getSp() != 0 && plan.getTp() < 2) {
    module.emitError() << "llm-partition: sequence parallelism needs tp > 1";
    return signalPassFailure();
  }
  const int64_t micro = plan.getMicrobatches();
  if (micro < 1) {
    module.emitError() << "llm-partition: " << micro << " micro-batches";
    return signalPassFailure();
  }

  FailureOr<func::FuncOp> fnOr = getModelFunction(module);
  if (failed(fnOr))
    return signalPassFailure();
  func::FuncOp fn = *fnOr;
  // The whole model's stats, before this rank's share replaces it.
  if (failed(recordWholeModelStats(module, fn)))
    return signalPassFailure();
  if (vocabAlign < 1) {
    module.emitError() << "llm-partition: vocab-align must be >= 1, got "
                       << static_cast<int64_t>(vocabAlign);
    return signalPassFailure();
  }
  if ((plan.getTp() > 1 || vocabAlign > 1) &&
      failed(partitionTensorParallel(fn, plan.getTp(), vocabAlign)))
    return signalPassFailure();
  int64_t dp = plan.getDp();
  if (dp > 1 && plan.getZero() >= 3)
    shardParametersZero3(fn, dp);
  // Sequence parallelism cuts each data-parallel rank's tokens.
  auto sequenceParallel = [&] {
    return plan.getSp() == 0 ||
           succeeded(partitionSequenceParallel(fn, plan.getTp()));
  };
  // Gradient accumulation: the model function computes one micro-batch
  // (llm-microbatch unrolls the step over all of them).
  const int64_t cut = dp * micro;
  if (cut == 1) {
    if (!sequenceParallel() || failed(verify(fn)))
      return signalPassFailure();
    return;
  }

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
    if (batch % cut != 0) {
      fn.emitError() << "llm-partition: the batch of " << batch
                     << " sequences does not divide among dp=" << dp
                     << " ranks x " << micro << " micro-batches";
      return signalPassFailure();
    }
    arg.setType(rebatch(type, cut));
    batched.insert(arg);
  }
  for (Operation &op : body.without_terminator()) {
    // A pipeline stage's received activations carry the batch too.
    if (!isa<RecvOp>(op) &&
        llvm::none_of(op.getOperands(),
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
      r.setType(rebatch(type, cut));
      batched.insert(r);
    }
  }
  SmallVector<Type> argTypes(body.getArgumentTypes());
  fn.setFunctionType(FunctionType::get(&getContext(), argTypes,
                                       fn.getResultTypes()));

  // The loss: this rank's mean, averaged over the replicas.
  if (dp > 1 && body.getTerminator()->getNumOperands() == 1) {
    auto ret = cast<func::ReturnOp>(body.getTerminator());
    OpBuilder b(ret);
    Value loss = ret.getOperand(0);
    auto mean = AllReduceOp::create(b, ret.getLoc(), loss,
                                    b.getStringAttr("dp"),
                                    b.getStringAttr("mean"));
    ret->setOperand(0, mean);
  }
  if (!sequenceParallel() || failed(verify(fn)))
    return signalPassFailure();
}
