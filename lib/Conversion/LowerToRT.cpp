//===- LowerToRT.cpp - llm training step to llmrt programs ----------------===//
//
// Buffer assignment (persistent region + liveness-packed temporaries) and
// kernel selection. See the pass description in Passes.td.
//
//===----------------------------------------------------------------------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/Conversion/Passes.h"
#include "llm/LLMOps.h"

#include "llmrt/ProgramFormat.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/ADT/TypeSwitch.h"

#include <functional>

namespace mlir::llm {
#define GEN_PASS_DEF_LOWERTORT
#include "llm/Conversion/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
using namespace mlir::llm;

/// A pipeline neighbour as the runtime's stage offset: the next stage of
/// the last one is stage 0 (the interleaved schedule's chunks wrap).
static int64_t pipelinePeer(ModuleOp module, int64_t peer) {
  auto stage = module->getAttrOfType<IntegerAttr>("llm.stage");
  auto plan = module->getAttrOfType<PlanAttr>("llm.plan");
  if (!stage || !plan)
    return peer;
  int64_t pp = plan.getPp(), s = stage.getInt();
  return ((s + peer) % pp + pp) % pp - s;
}

/// The runtime's id of a communicator group (llmrt::Group).
static int64_t groupId(StringRef group) {
  return llvm::StringSwitch<int64_t>(group)
      .Case("dp", 1)
      .Case("tp", 2)
      .Case("pp", 3)
      .Case("tied", 4)
      .Default(0);
}

namespace {

constexpr int64_t kAlign = static_cast<int64_t>(::llmrt::kArenaAlignment);

int64_t alignUp(int64_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

int64_t bytesOf(ShapedType t) {
  return t.getNumElements() * t.getElementTypeBitWidth() / 8;
}

int64_t numElements(Value v) {
  return cast<ShapedType>(v.getType()).getNumElements();
}

int64_t lastDim(Value v) {
  return cast<ShapedType>(v.getType()).getShape().back();
}

/// A buffer of the persistent region.
struct FixedBuffer {
  std::string name, role;
  ShapedType type;
  int64_t offset = 0;
  StringAttr init;
  FloatAttr initStd;
  DenseI64ArrayAttr tpShard, globalShape;
  DenseI64ArrayAttr zeroOf; ///< ZeRO-sharded moment: shape of the whole
};

/// A temporary's storage: a byte range live over [start, end] (op indices).
/// A gradient in a data-parallel bucket lives inside its bucket's storage
/// (`parent`), `sub` bytes from its start.
struct Storage {
  int64_t bytes = 0, start = 0, end = 0, offset = -1;
  int parent = -1;
  int64_t sub = 0;
};

/// A data-parallel gradient bucket: consecutive gradient all-reduces whose
/// results are one contiguous storage, reduced by one non-blocking
/// collective started after the last of them.
struct Bucket {
  SmallVector<AllReduceOp> members;
  int storage = -1;
  int64_t bytes = 0;
  bool mean = true;
};

/// One kernel call to emit: operand values (inputs then outputs, each
/// resolved to a buffer later), ints and floats.
struct Call {
  StringRef kernel;
  SmallVector<Value> operands;
  SmallVector<int64_t> ints;
  SmallVector<double> floats;
};

class Lowering {
public:
  Lowering(ModuleOp module, int64_t bucketBytes, bool columnViews,
           bool overlapWeightGrads)
      : module(module), b(module.getContext()), bucketBytes(bucketBytes),
        columnViews(columnViews), overlapWeightGrads(overlapWeightGrads) {}

  LogicalResult run();

private:
  LogicalResult collectPersistent(func::FuncOp train, func::FuncOp eval);
  /// A moment that llm-optimizer sharded for ZeRO records the shape of its
  /// parameter (this rank's tensor-parallel share), which it is 1/dp of.
  void markZero(func::FuncOp fn, unsigned arg, StringRef param, int index) {
    if (!fn.getArgAttr(arg, "llm.zero_shard"))
      return;
    for (const FixedBuffer &f : fixed)
      if (f.role == "param" && f.name == param)
        fixed[index].zeroOf =
            f.zeroOf ? f.zeroOf
                     : DenseI64ArrayAttr::get(module.getContext(),
                                              f.type.getShape());
  }
  int fixedIndex(StringRef role, StringRef name, ShapedType type,
                 Location loc, StringAttr init = {}, FloatAttr initStd = {},
                 DenseI64ArrayAttr tpShard = {},
                 DenseI64ArrayAttr globalShape = {});
  LogicalResult lowerFunction(func::FuncOp fn, StringRef newName,
                              int64_t &tempBytes);
  LogicalResult selectKernels(Operation *op, SmallVectorImpl<Call> &calls);

  ModuleOp module;
  OpBuilder b;
  /// Data-parallel gradient buckets of @train (0: one synchronous
  /// all-reduce per gradient).
  int64_t bucketBytes = 0;
  /// Attention reads q, k, v and writes dq, dk, dv as column slices in
  /// place (no column copies).
  bool columnViews = true;
  /// A weight gradient's operands live until the next weight gradient
  /// starts, so that a GPU may run it beside the instructions between.
  bool overlapWeightGrads = false;
  /// Per function: a column view (split result or attention gradient) ->
  /// the tensor it is a slice of and its first column there.
  DenseMap<Value, std::pair<Value, int64_t>> columnOf;
  std::vector<FixedBuffer> fixed;
  int64_t persistentBytes = 0;
  bool failedFixed = false;
  /// Per function: value -> persistent buffer index.
  DenseMap<Value, int> fixedOf;
};

} // namespace

int Lowering::fixedIndex(StringRef role, StringRef name, ShapedType type,
                         Location loc, StringAttr init, FloatAttr initStd,
                         DenseI64ArrayAttr tpShard,
                         DenseI64ArrayAttr globalShape) {
  for (auto [i, f] : llvm::enumerate(fixed))
    if (f.role == role && f.name == name) {
      if (f.type != type) {
        emitError(loc) << "llm-lower-to-rt: " << role << " '" << name
                       << "' has type " << type << " here but " << f.type
                       << " elsewhere";
        failedFixed = true;
      }
      return static_cast<int>(i);
    }
  FixedBuffer f{name.str(), role.str(), type, persistentBytes, init, initStd,
                tpShard, globalShape};
  persistentBytes = alignUp(persistentBytes + bytesOf(type));
  fixed.push_back(f);
  return static_cast<int>(fixed.size() - 1);
}

LogicalResult Lowering::collectPersistent(func::FuncOp train,
                                          func::FuncOp eval) {
  for (func::FuncOp fn : {train, eval}) {
    for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i) {
      Value arg = fn.getArgument(i);
      auto type = dyn_cast<RankedTensorType>(arg.getType());
      if (!type || !type.hasStaticShape())
        return fn.emitError() << "llm-lower-to-rt: argument #" << i
                              << " is not a statically shaped tensor";
      Location loc = fn.getLoc();
      // Moments are sharded as their parameter is.
      auto shardOf = [&](StringRef param) {
        for (const FixedBuffer &f : fixed)
          if (f.role == "param" && f.name == param)
            return std::make_pair(f.tpShard, f.globalShape);
        return std::make_pair(DenseI64ArrayAttr(), DenseI64ArrayAttr());
      };
      if (auto n = fn.getArgAttrOfType<StringAttr>(i, kParamAttr)) {
        fixedOf[arg] = fixedIndex(
            "param", n.getValue(), type, loc,
            fn.getArgAttrOfType<StringAttr>(i, kInitAttr),
            fn.getArgAttrOfType<FloatAttr>(i, kInitStdAttr),
            fn.getArgAttrOfType<DenseI64ArrayAttr>(i, "llm.tp_shard"),
            fn.getArgAttrOfType<DenseI64ArrayAttr>(i, "llm.global_shape"));
        // ZeRO-3: the parameter itself is a share.
        if (auto of = fn.getArgAttrOfType<DenseI64ArrayAttr>(i, "llm.zero_of"))
          fixed[fixedOf[arg]].zeroOf = of;
      }
      else if (auto n = fn.getArgAttrOfType<StringAttr>(i, kAdamMAttr)) {
        auto [sh, gs] = shardOf(n.getValue());
        fixedOf[arg] = fixedIndex("adam_m", n.getValue(), type, loc, {}, {}, sh, gs);
        markZero(fn, i, n.getValue(), fixedOf[arg]);
      } else if (auto n = fn.getArgAttrOfType<StringAttr>(i, kAdamVAttr)) {
        auto [sh, gs] = shardOf(n.getValue());
        fixedOf[arg] = fixedIndex("adam_v", n.getValue(), type, loc, {}, {}, sh, gs);
        markZero(fn, i, n.getValue(), fixedOf[arg]);
      }
      else if (auto n = fn.getArgAttrOfType<StringAttr>(i, kInputAttr)) {
        if ((n.getValue() == "tokens" || n.getValue() == "targets") &&
            !type.getElementType().isInteger(32))
          return fn.emitError() << "llm-lower-to-rt: the runtime reads token "
                                   "ids as i32, got "
                                << type << " for '" << n.getValue() << "'";
        fixedOf[arg] = fixedIndex("input", n.getValue(), type, loc);
      }
      else
        return fn.emitError() << "llm-lower-to-rt: argument #" << i
                              << " is neither a parameter, optimizer state "
                                 "nor an input";
    }
    auto ret = cast<func::ReturnOp>(fn.getBody().front().getTerminator());
    for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
      auto type = cast<ShapedType>(v.getType());
      auto named = fn.getResultAttrOfType<StringAttr>(i, kResultAttr);
      if (fn == eval || named) {
        // The model function returns only the loss: the eval loss.
        std::string name =
            fn == eval ? "eval_loss" : named.getValue().str();
        if (fixedOf.count(v))
          return fn.emitError() << "llm-lower-to-rt: result #" << i
                                << " is an argument";
        fixedOf[v] = fixedIndex("output", name, type, fn.getLoc());
      } else if (auto idx = fn.getResultAttrOfType<IntegerAttr>(i, kUpdateAttr)) {
        int64_t a = idx.getInt();
        if (a < 0 || a >= fn.getNumArguments())
          return fn.emitError() << "llm-lower-to-rt: result #" << i
                                << " updates argument #" << a
                                << ", which does not exist";
        if (!v.getDefiningOp<AdamWOp>() && !v.getDefiningOp<AllGatherOp>())
          return fn.emitError() << "llm-lower-to-rt: result #" << i
                                << " updates argument #" << a
                                << " but is not produced by llm.adamw or "
                                   "llm.all_gather";
        fixedOf[v] = fixedOf.lookup(fn.getArgument(a));
      } else {
        return fn.emitError() << "llm-lower-to-rt: result #" << i
                              << " is neither a named result nor an update";
      }
    }
  }
  return failure(failedFixed);
}

/// Kernel selection: one or more kernel calls per op.
LogicalResult Lowering::selectKernels(Operation *op,
                                      SmallVectorImpl<Call> &calls) {
  auto rows = [](Value v) { return numElements(v) / lastDim(v); };
  auto shape = [](Value v) { return cast<ShapedType>(v.getType()).getShape(); };
  auto one = [&](StringRef k, SmallVector<Value> operands,
                 SmallVector<int64_t> ints, SmallVector<double> floats = {}) {
    calls.push_back(Call{k, std::move(operands), std::move(ints),
                         std::move(floats)});
    return success();
  };
  // Attention ops (forward or backward, with or without the kept
  // log-sum-exp): ints {B, S, Hq, Hkv, D, causal}, floats {scale}.
  // Where q, k, v (and dq, dk, dv: `placed`) are column views, each
  // tensor's row stride and first column follow.
  auto attention = [&](StringRef k, auto o, SmallVector<Value> operands,
                       SmallVector<Value> placed) {
    auto s = shape(o.getQ());
    int64_t heads = o.getNumHeads(), d = s[2] / heads;
    double scale = o.getScaleAttr() ? o.getScaleAttr().getValueAsDouble()
                                    : 1.0 / std::sqrt(static_cast<double>(d));
    SmallVector<int64_t> ints = {s[0], s[1], heads,
                                 static_cast<int64_t>(o.getNumKvHeads()), d,
                                 o.getCausal() ? 1 : 0};
    if (llvm::any_of(placed, [&](Value v) { return columnOf.count(v); }))
      for (Value v : placed) {
        auto it = columnOf.find(v);
        if (it == columnOf.end())
          ints.append({lastDim(v), 0});
        else
          ints.append({lastDim(it->second.first), it->second.second});
      }
    return one(k, std::move(operands), std::move(ints), {scale});
  };
  auto lastAxisOnly = [&](int64_t axis, Value v) -> LogicalResult {
    if (axis != static_cast<int64_t>(shape(v).size()) - 1)
      return op->emitOpError() << "llm-lower-to-rt: only splits and concats "
                                  "along the last axis are supported, got axis "
                               << axis;
    return success();
  };
  return llvm::TypeSwitch<Operation *, LogicalResult>(op)
      .Case([&](EmbeddingOp o) {
        if (o.getVocabGroup())
          return one("vocab_embedding_fwd",
                     {o.getIds(), o.getTable(), o.getResult()},
                     {numElements(o.getIds()), lastDim(o.getTable()),
                      shape(o.getTable())[0], 2});
        return one("embedding_fwd", {o.getIds(), o.getTable(), o.getResult()},
                   {numElements(o.getIds()), lastDim(o.getTable())});
      })
      .Case([&](PositionEmbeddingOp o) {
        return one("position_embedding_fwd", {o.getTable(), o.getResult()},
                   {shape(o.getResult())[0], lastDim(o.getTable())});
      })
      .Case([&](AddOp o) {
        return one("add", {o.getLhs(), o.getRhs(), o.getResult()},
                   {numElements(o.getLhs()), numElements(o.getRhs())});
      })
      .Case([&](MulOp o) {
        return one("mul", {o.getLhs(), o.getRhs(), o.getResult()},
                   {numElements(o.getLhs()), numElements(o.getRhs())});
      })
      .Case([&](LayerNormOp o) {
        return one("layer_norm_fwd",
                   {o.getInput(), o.getWeight(), o.getBias(), o.getResult()},
                   {rows(o.getInput()), lastDim(o.getInput())},
                   {o.getEpsilon().convertToDouble()});
      })
      .Case([&](RMSNormOp o) {
        return one("rms_norm_fwd", {o.getInput(), o.getWeight(), o.getResult()},
                   {rows(o.getInput()), lastDim(o.getInput())},
                   {o.getEpsilon().convertToDouble()});
      })
      .Case([&](LinearOp o) {
        SmallVector<Value> operands = {o.getInput(), o.getWeight()};
        if (o.getBias())
          operands.push_back(o.getBias());
        operands.push_back(o.getResult());
        return one("linear_fwd", operands,
                   {rows(o.getInput()), o.getInFeatures(), o.getOutFeatures(),
                    o.getTransposeWeight() ? 1 : 0});
      })
      .Case([&](SplitOp o) -> LogicalResult {
        if (failed(lastAxisOnly(o.getAxis(), o.getInput())))
          return failure();
        int64_t off = 0, cols = lastDim(o.getInput());
        for (Value r : o.getResults()) {
          int64_t w = lastDim(r);
          if (!columnOf.count(r)) // else attention reads it in place
            (void)one("copy_columns", {o.getInput(), r},
                      {cols, off, w, 0, w, rows(o.getInput())});
          off += w;
        }
        return success();
      })
      .Case([&](ConcatOp o) -> LogicalResult {
        if (failed(lastAxisOnly(o.getAxis(), o.getResult())))
          return failure();
        int64_t off = 0, cols = lastDim(o.getResult());
        for (Value in : o.getInputs()) {
          int64_t w = lastDim(in);
          if (!columnOf.count(in)) // else attention wrote it in place
            (void)one("copy_columns", {in, o.getResult()},
                      {w, 0, cols, off, w, rows(o.getResult())});
          off += w;
        }
        return success();
      })
      .Case([&](RoPEOp o) {
        auto s = shape(o.getInput());
        int64_t h = o.getNumHeads();
        return one("rope", {o.getInput(), o.getResult()},
                   {s[0], s[1], h, s[2] / h, o.getInverse() ? 1 : 0},
                   {o.getTheta().convertToDouble()});
      })
      .Case([&](AttentionOp o) {
        return attention("attention_fwd", o,
                         {o.getQ(), o.getK(), o.getV(), o.getResult()},
                         {o.getQ(), o.getK(), o.getV()});
      })
      .Case([&](AttentionLseOp o) {
        // The forward with its log-sum-exp: one more output.
        return attention("attention_fwd", o,
                         {o.getQ(), o.getK(), o.getV(), o.getResult(), o.getLse()},
                         {o.getQ(), o.getK(), o.getV()});
      })
      .Case([&](AttentionGradOp o) {
        return attention("attention_bwd", o,
                         {o.getQ(), o.getK(), o.getV(), o.getDout(), o.getDq(),
                          o.getDk(), o.getDv()},
                         {o.getQ(), o.getK(), o.getV(), o.getDq(), o.getDk(),
                          o.getDv()});
      })
      .Case([&](AttentionGradLseOp o) {
        // From the forward's output and log-sum-exp: two more inputs.
        return attention("attention_bwd", o,
                         {o.getQ(), o.getK(), o.getV(), o.getDout(), o.getOut(),
                          o.getLse(), o.getDq(), o.getDk(), o.getDv()},
                         {o.getQ(), o.getK(), o.getV(), o.getDq(), o.getDk(),
                          o.getDv()});
      })
      .Case([&](GeluOp o) {
        return one("gelu_fwd", {o.getInput(), o.getResult()},
                   {numElements(o.getInput())});
      })
      .Case([&](SiluOp o) {
        return one("silu_fwd", {o.getInput(), o.getResult()},
                   {numElements(o.getInput())});
      })
      .Case([&](GeluGradOp o) {
        return one("gelu_bwd", {o.getInput(), o.getDy(), o.getResult()},
                   {numElements(o.getInput())});
      })
      .Case([&](SiluGradOp o) {
        return one("silu_bwd", {o.getInput(), o.getDy(), o.getResult()},
                   {numElements(o.getInput())});
      })
      .Case([&](CrossEntropyOp o) {
        if (o.getVocabGroup())
          return one("vocab_cross_entropy_fwd",
                     {o.getLogits(), o.getTargets(), o.getResult()},
                     {rows(o.getLogits()), lastDim(o.getLogits()), 2,
                      static_cast<int64_t>(o.getVocab().value_or(0))});
        return one("cross_entropy_fwd",
                   {o.getLogits(), o.getTargets(), o.getResult()},
                   {rows(o.getLogits()), lastDim(o.getLogits())});
      })
      .Case([&](CrossEntropyGradOp o) {
        if (o.getVocabGroup())
          return one("vocab_cross_entropy_bwd",
                     {o.getLogits(), o.getTargets(), o.getResult()},
                     {rows(o.getLogits()), lastDim(o.getLogits()), 2,
                      static_cast<int64_t>(o.getVocab().value_or(0))});
        return one("cross_entropy_bwd",
                   {o.getLogits(), o.getTargets(), o.getResult()},
                   {rows(o.getLogits()), lastDim(o.getLogits())});
      })
      .Case([&](EmbeddingGradOp o) {
        auto t = shape(o.getResult());
        if (o.getVocabGroup())
          return one("vocab_embedding_bwd",
                     {o.getIds(), o.getDout(), o.getResult()},
                     {numElements(o.getIds()), t[0], t[1], 2});
        return one("embedding_bwd", {o.getIds(), o.getDout(), o.getResult()},
                   {numElements(o.getIds()), t[0], t[1]});
      })
      .Case([&](PositionEmbeddingGradOp o) {
        auto t = shape(o.getResult());
        return one("position_embedding_bwd", {o.getDout(), o.getResult()},
                   {shape(o.getDout())[0], t[0], t[1]});
      })
      .Case([&](LayerNormGradOp o) {
        return one("layer_norm_bwd",
                   {o.getInput(), o.getWeight(), o.getDy(), o.getDInput(),
                    o.getDWeight(), o.getDBias()},
                   {rows(o.getInput()), lastDim(o.getInput())},
                   {o.getEpsilon().convertToDouble()});
      })
      .Case([&](RMSNormGradOp o) {
        return one("rms_norm_bwd",
                   {o.getInput(), o.getWeight(), o.getDy(), o.getDInput(),
                    o.getDWeight()},
                   {rows(o.getInput()), lastDim(o.getInput())},
                   {o.getEpsilon().convertToDouble()});
      })
      .Case([&](LinearWeightGradOp o) {
        return one("linear_bwd_weight", {o.getInput(), o.getDy(), o.getResult()},
                   {rows(o.getInput()), lastDim(o.getInput()),
                    lastDim(o.getDy()), o.getTransposeWeight() ? 1 : 0});
      })
      .Case([&](SumLeadingOp o) {
        int64_t out = numElements(o.getResult());
        return one("sum_rows", {o.getInput(), o.getResult()},
                   {numElements(o.getInput()) / out, out});
      })
      .Case([&](GlobalNormOp o) {
        SmallVector<Value> operands = {o.getResult()};
        llvm::append_range(operands, o.getInputs());
        SmallVector<int64_t> flags;
        if (auto split = o.getSplit())
          flags.assign(split->begin(), split->end());
        return one("global_norm", operands, flags);
      })
      .Case([&](AllGatherOp o) {
        return one("all_gather", {o.getInput(), o.getResult()},
                   {numElements(o.getInput()), groupId(o.getGroup())});
      })
      .Case([&](ShardSliceOp) { return success(); }) // a view, no kernel
      .Case([&](BatchSliceOp) { return success(); }) // a view, no kernel
      .Case([&](ScaleOp o) {
        return one("scale", {o.getInput(), o.getResult()},
                   {numElements(o.getInput())},
                   {o.getFactor().convertToDouble()});
      })
      .Case([&](ReduceScatterOp o) {
        return one("reduce_scatter", {o.getInput(), o.getResult()},
                   {numElements(o.getResult()), groupId(o.getGroup()),
                    o.getReduction() == "mean" ? 1 : 0});
      })
      .Case([&](TPCopyOp o) {
        int64_t cols = lastDim(o.getInput());
        return one("copy_columns", {o.getInput(), o.getResult()},
                   {cols, 0, cols, 0, cols, rows(o.getInput())});
      })
      .Case([&](ClipScaleOp o) {
        return one("clip_scale", {o.getNorm(), o.getMaxNorm(), o.getResult()},
                   {});
      })
      .Case([&](AllReduceOp o) {
        int64_t group = groupId(o.getGroup());
        int64_t reduction = o.getReduction() == "mean" ? 1 : 0;
        return one("all_reduce", {o.getInput(), o.getResult()},
                   {numElements(o.getInput()), group, reduction});
      })
      .Case([&](SendOp o) {
        return one("send", {o.getInput()},
                   {numElements(o.getInput()),
                    pipelinePeer(module, static_cast<int64_t>(o.getPeer())),
                    static_cast<int64_t>(o.getTag())});
      })
      .Case([&](PhaseOp o) {
        int64_t kind = o.getKind() == "forward" ? 0 : o.getKind() == "backward" ? 1 : 2;
        return one("phase", {},
                   {kind, static_cast<int64_t>(o.getMicrobatch()),
                    static_cast<int64_t>(o.getChunk())});
      })
      .Case([&](RecvOp o) {
        return one("recv", {o.getResult()},
                   {numElements(o.getResult()),
                    pipelinePeer(module, static_cast<int64_t>(o.getPeer())),
                    static_cast<int64_t>(o.getTag())});
      })
      .Case([&](AdamWOp o) {
        return one("adamw",
                   {o.getParam(), o.getGrad(), o.getM(), o.getV(), o.getLr(),
                    o.getStep(), o.getWeightDecay(), o.getGradScale()},
                   {numElements(o.getParam()), o.getDecay() ? 1 : 0},
                   {o.getBeta1().convertToDouble(),
                    o.getBeta2().convertToDouble(),
                    o.getEps().convertToDouble()});
      })
      .Default([&](Operation *other) {
        return other->emitOpError() << "llm-lower-to-rt: no kernel for this op";
      });
}

/// Kernels that may write their result over an operand that dies at the op
/// (operand index), elementwise with the same index mapping.
static std::optional<unsigned> inPlaceOperand(Operation *op) {
  if (isa<AddOp, MulOp>(op))
    return 0; // lhs (full shape; rhs may be broadcast)
  if (isa<GeluGradOp, SiluGradOp>(op))
    return 1; // dy
  if (isa<AllReduceOp>(op))
    return 0; // MPI reduces in place
  if (isa<ScaleOp>(op))
    return 0;
  return std::nullopt;
}

LogicalResult Lowering::lowerFunction(func::FuncOp fn, StringRef newName,
                                      int64_t &tempBytes) {
  Block &body = fn.getBody().front();
  // Op indices and live ranges.
  DenseMap<Operation *, int64_t> index;
  int64_t n = 0;
  for (Operation &op : body)
    index[&op] = n++;
  auto lastUse = [&](Value v) {
    int64_t last = -1;
    for (Operation *user : v.getUsers())
      last = std::max(last, index.lookup(user));
    return last;
  };

  // ZeRO-3 prefetch: the gathers of parameter shares (persistent inputs)
  // in order; gather j starts where gather j - 1 does (its storage is live
  // from there), so it is in flight while the previous parameter is used.
  SmallVector<AllGatherOp> gathers;
  DenseMap<Operation *, int> gatherIndex;
  for (Operation &op : body.without_terminator())
    if (auto g = dyn_cast<AllGatherOp>(op);
        g && g.getGroup() == "dp" && fixedOf.count(g.getInput())) {
      gatherIndex[g] = static_cast<int>(gathers.size());
      gathers.push_back(g);
    }

  // Attention's column views: a split's results, where attention alone
  // reads each of them (as q, k or v), stay in the split's input; dq, dk,
  // dv that only one concat takes are written into its result, whose
  // storage then starts at the gradient (`startsAt`).
  columnOf.clear();
  DenseMap<Value, int64_t> startsAt;
  auto lastAxis = [](Value v, int64_t axis) {
    return axis == cast<ShapedType>(v.getType()).getRank() - 1;
  };
  for (Operation &op : body.without_terminator()) {
    if (!columnViews)
      break;
    if (auto sp = dyn_cast<SplitOp>(op)) {
      Operation *def = sp.getInput().getDefiningOp();
      if (!lastAxis(sp.getInput(), sp.getAxis()) ||
          (def && isa<ShardSliceOp, BatchSliceOp, AdamWOp>(def)))
        continue;
      // All results or none: views of some would keep the whole input
      // alive beside the others' copies.
      auto onlyAttention = [&](Value r) {
        return !r.use_empty() && !fixedOf.count(r) &&
               llvm::all_of(r.getUses(), [](OpOperand &u) {
                 return isa<AttentionOp, AttentionLseOp, AttentionGradOp,
                            AttentionGradLseOp>(u.getOwner()) &&
                        u.getOperandNumber() < 3; // q, k, v
               });
      };
      if (!llvm::all_of(sp.getResults(), onlyAttention))
        continue;
      int64_t off = 0;
      for (Value r : sp.getResults()) {
        columnOf[r] = {sp.getInput(), off};
        off += lastDim(r);
      }
    } else if (auto cat = dyn_cast<ConcatOp>(op)) {
      Operation *grad = nullptr;
      bool ok = lastAxis(cat.getResult(), cat.getAxis()) &&
                !fixedOf.count(cat.getResult());
      for (Value in : cat.getInputs()) {
        Operation *def = in.getDefiningOp();
        if (!ok || !def || !isa<AttentionGradOp, AttentionGradLseOp>(def) ||
            !in.hasOneUse() || (grad && def != grad) || fixedOf.count(in)) {
          ok = false;
          break;
        }
        grad = def;
      }
      if (!ok || !grad)
        continue;
      int64_t off = 0;
      for (Value in : cat.getInputs()) {
        columnOf[in] = {cat.getResult(), off};
        off += lastDim(in);
      }
      startsAt[cat.getResult()] = index[grad];
    }
  }

  // Each weight gradient's successor (overlapWeightGrads): the next one,
  // up to which its operands stay alive.
  DenseMap<Operation *, int64_t> nextWeightGrad;
  // One rank only: the runtime runs no second stream beside collectives.
  auto plan = module->getAttrOfType<PlanAttr>("llm.plan");
  if (overlapWeightGrads && (!plan || plan.getWorld() == 1)) {
    Operation *prev = nullptr;
    for (Operation &op : body.without_terminator())
      if (isa<LinearWeightGradOp>(op)) {
        if (prev)
          nextWeightGrad[prev] = index[&op];
        prev = &op;
      }
  }

  // Storage of every temporary; in-place results share their operand's.
  std::vector<Storage> storages;
  // The weight gradients' operands: the storage and the end it would have
  // (overlapWeightGrads; applied at the packing where the peak allows).
  SmallVector<std::pair<int, int64_t>> extensions;
  DenseMap<Value, int> storageOf;
  /// Values that are views of another: (base, rank share?).
  DenseMap<Value, std::pair<Value, bool>> aliases;
  DenseMap<Value, int64_t> shareGroup; // rank share: 1 dp, 2 tp
  /// Micro-batch views of a persistent input: the byte offset in it.
  DenseMap<Value, int64_t> sliceOffset;
  for (Operation &op : body.without_terminator()) {
    int64_t i = index[&op];
    if (auto it = nextWeightGrad.find(&op); it != nextWeightGrad.end())
      for (Value v : op.getOperands())
        if (auto st = storageOf.find(v); st != storageOf.end())
          extensions.push_back({st->second, it->second});
    if (auto bs = dyn_cast<BatchSliceOp>(op)) {
      if (!fixedOf.count(bs.getInput()))
        return bs.emitOpError() << "llm-lower-to-rt: a micro-batch slice of a "
                                   "temporary is not supported";
      sliceOffset[bs.getResult()] =
          bs.getIndex() * bytesOf(cast<ShapedType>(bs.getResult().getType()));
      continue;
    }
    // Views: a ZeRO share reads its operand in place; AdamW updates its
    // parameter, moments (or their shares) in place.
    if (auto slice = dyn_cast<ShardSliceOp>(op)) {
      if (aliases.count(slice.getInput()) && aliases.lookup(slice.getInput()).second)
        return slice.emitOpError()
               << "llm-lower-to-rt: a share of a share is not supported";
      aliases[slice.getResult()] = {slice.getInput(), true};
      shareGroup[slice.getResult()] = groupId(slice.getGroup());
      if (auto it = storageOf.find(slice.getInput()); it != storageOf.end()) {
        int shared = it->second;
        storageOf[slice.getResult()] = shared;
        storages[shared].end =
            std::max(storages[shared].end, lastUse(slice.getResult()));
      }
      continue;
    }
    if (auto adam = dyn_cast<AdamWOp>(op)) {
      for (auto [res, src] : {std::pair<Value, Value>{adam.getNewParam(), adam.getParam()},
                              {adam.getNewM(), adam.getM()},
                              {adam.getNewV(), adam.getV()}}) {
        // In place: nothing may read the old value after the update.
        Value base = src;
        while (aliases.count(base))
          base = aliases.lookup(base).first;
        if (lastUse(src) > i || lastUse(base) > i)
          return adam.emitOpError()
                 << "llm-lower-to-rt: a value AdamW updates in place is read "
                    "after the update";
        if (!fixedOf.count(res))
          aliases[res] = {src, false};
      }
      continue;
    }
    for (Value r : op.getResults()) {
      if (fixedOf.count(r))
        continue;
      if (auto c = columnOf.find(r); c != columnOf.end()) {
        // A column view has its base's storage: a split's input lives on
        // to the view's last read (a concat's result starts at the
        // gradient, below).
        if (auto it = storageOf.find(c->second.first); it != storageOf.end())
          storages[it->second].end =
              std::max(storages[it->second].end, lastUse(r));
        continue;
      }
      auto type = dyn_cast<RankedTensorType>(r.getType());
      if (!type || !type.hasStaticShape())
        return op.emitOpError() << "llm-lower-to-rt: result is not a "
                                   "statically shaped tensor";
      if (!type.getElementType().isF32() && !type.getElementType().isInteger(32))
        return op.emitOpError()
               << "llm-lower-to-rt: the CPU runtime computes in f32, got "
               << type;
      int64_t end = std::max(lastUse(r), i);
      // A received value nothing reads is still being received until the
      // recv_wait at the function's end. (Defensive: llm-autodiff refuses
      // a received activation that reaches neither the loss nor a send, so
      // the compiler's own pipelines read every value they receive.)
      if (isa<RecvOp>(op) && r.use_empty())
        end = n - 1;
      if (auto k = inPlaceOperand(&op); k && op.getNumResults() == 1) {
        Value src = op.getOperand(*k);
        auto it = storageOf.find(src);
        // Not over a tensor another view still reads (a ZeRO share), nor
        // when the storage lives on past this op.
        if (it != storageOf.end() && lastUse(src) == i &&
            src.getType() == r.getType() && !aliases.count(src) &&
            storages[it->second].end == i) {
          int shared = it->second; // `it` dies with the next insertion
          storageOf[r] = shared;
          storages[shared].end = std::max(storages[shared].end, end);
          continue;
        }
      }
      int64_t start = i;
      if (auto it = startsAt.find(r); it != startsAt.end())
        start = std::min(start, it->second);
      if (auto g = dyn_cast<AllGatherOp>(op); g && gatherIndex.count(g) &&
                                              gatherIndex.lookup(g) > 0)
        start = index[gathers[gatherIndex.lookup(g) - 1]];
      storageOf[r] = storages.size();
      storages.push_back(Storage{alignUp(bytesOf(type)), start, end, -1});
    }
  }

  // Data-parallel gradient buckets (@train): the gradients' all-reduces, in
  // the order the backward finishes them, cut every bucketBytes; each
  // bucket's gradients get one contiguous storage. A gradient qualifies
  // when only the optimizer reads its reduced value (directly or through a
  // ZeRO share) and its storage is its own.
  std::vector<Bucket> buckets;
  DenseMap<Operation *, int> bucketOf;
  if (bucketBytes > 0 && newName == "train") {
    // Values per storage, other than ZeRO shares (views of the gradient).
    DenseMap<int, SmallVector<Value>> valuesOf;
    for (auto &[v, st] : storageOf)
      if (!v.getDefiningOp<ShardSliceOp>())
        valuesOf[st].push_back(v);
    auto optimizerOnly = [&](Value r) {
      for (Operation *user : r.getUsers()) {
        if (isa<GlobalNormOp, AdamWOp>(user))
          continue;
        auto slice = dyn_cast<ShardSliceOp>(user);
        if (!slice)
          return false;
        for (Operation *u : slice.getResult().getUsers())
          if (!isa<GlobalNormOp, AdamWOp>(u))
            return false;
      }
      return !r.use_empty();
    };
    // The bucket size: at most bucketBytes, and at most 1/8 of the
    // gradients (at least 1 MiB), so that several buckets overlap the
    // backward and each one's early start (its storage is live from its
    // first gradient) costs little memory.
    int64_t gradBytes = 0;
    for (Operation &op : body.without_terminator())
      if (auto ar = dyn_cast<AllReduceOp>(op); ar && ar.getGroup() == "dp")
        gradBytes += alignUp(bytesOf(cast<ShapedType>(ar.getResult().getType())));
    const int64_t cap =
        std::min(bucketBytes, std::max<int64_t>(int64_t(1) << 20, gradBytes / 8));
    for (Operation &op : body.without_terminator()) {
      auto ar = dyn_cast<AllReduceOp>(op);
      if (!ar || ar.getGroup() != "dp" || !optimizerOnly(ar.getResult()))
        continue;
      auto it = storageOf.find(ar.getResult());
      if (it == storageOf.end() || aliases.count(ar.getResult()))
        continue;
      // The storage may have held earlier values of an in-place chain (the
      // tied embedding's gradient is summed over the head's), all dead by
      // the all-reduce; nothing else.
      int st = it->second;
      bool exclusive = true;
      for (Value v : valuesOf.lookup(st))
        if (v != ar.getResult() && lastUse(v) > index[ar])
          exclusive = false;
      if (!exclusive)
        continue;
      bool mean = ar.getReduction() == "mean";
      if (buckets.empty() || buckets.back().bytes >= cap ||
          buckets.back().mean != mean)
        buckets.push_back(Bucket{{}, -1, 0, mean});
      Bucket &bk = buckets.back();
      storages[st].parent = -2; // placed inside the bucket, below
      storages[st].sub = bk.bytes;
      bk.bytes += storages[st].bytes;
      bk.members.push_back(ar);
      bucketOf[ar] = static_cast<int>(buckets.size()) - 1;
    }
    // Request slots: buckets take 0 .. 2047, the ZeRO-3 prefetch 2048 and
    // 2049 (the runtime's limit is 4096).
    if (buckets.size() > 2048)
      return fn.emitError() << "llm-lower-to-rt: " << buckets.size()
                            << " data-parallel gradient buckets (at most 2048); "
                               "raise --dp-bucket-mb";
    for (Bucket &bk : buckets) {
      Storage whole{bk.bytes, INT64_MAX, 0, -1};
      for (AllReduceOp m : bk.members) {
        Storage &st = storages[storageOf.lookup(m.getResult())];
        whole.start = std::min(whole.start, st.start);
        whole.end = std::max(whole.end, st.end);
      }
      bk.storage = static_cast<int>(storages.size());
      for (AllReduceOp m : bk.members)
        storages[storageOf.lookup(m.getResult())].parent = bk.storage;
      storages.push_back(whole);
    }
  }

  // Pack: largest first, lowest offset free of every placed storage whose
  // live range overlaps (bucket members go with their bucket). The peak.
  auto pack = [](std::vector<Storage> &sts) {
    std::vector<int> order;
    for (size_t i = 0; i < sts.size(); ++i)
      if (sts[i].parent < 0)
        order.push_back(i);
    llvm::stable_sort(order, [&](int a, int c) { return sts[a].bytes > sts[c].bytes; });
    std::vector<int> placed;
    int64_t peak = 0;
    for (int s : order) {
      Storage &st = sts[s];
      SmallVector<std::pair<int64_t, int64_t>> busy;
      for (int p : placed) {
        const Storage &o = sts[p];
        if (o.start <= st.end && st.start <= o.end)
          busy.push_back({o.offset, o.offset + o.bytes});
      }
      llvm::sort(busy);
      int64_t offset = 0;
      for (auto [lo, hi] : busy) {
        if (offset + st.bytes <= lo)
          break;
        offset = std::max(offset, hi);
      }
      st.offset = offset;
      peak = std::max(peak, offset + st.bytes);
      placed.push_back(s);
    }
    for (Storage &st : sts)
      if (st.parent >= 0)
        st.offset = sts[st.parent].offset + st.sub;
    return peak;
  };
  tempBytes = pack(storages);
  // The weight gradients' operands kept to the next weight gradient where
  // that packs into no larger a peak: all of them, else (up to 64 tries)
  // one weight gradient's at a time, in order.
  if (!extensions.empty()) {
    auto extend = [&](std::vector<Storage> &sts, size_t from, size_t to) {
      for (size_t e = from; e < to; ++e)
        sts[extensions[e].first].end =
            std::max(sts[extensions[e].first].end, extensions[e].second);
    };
    std::vector<Storage> kept = storages;
    extend(kept, 0, extensions.size());
    if (pack(kept) <= tempBytes) {
      storages = std::move(kept);
    } else {
      kept = storages;
      int tries = 0;
      for (size_t e = 0; e < extensions.size() && tries < 64; ++tries) {
        size_t next = e + 1; // the same weight gradient's operands together
        while (next < extensions.size() && extensions[next].second == extensions[e].second)
          ++next;
        std::vector<Storage> trial = kept;
        extend(trial, e, next);
        if (pack(trial) <= tempBytes)
          kept = std::move(trial);
        e = next;
      }
      pack(kept);
      storages = std::move(kept);
    }
  }

  // Emit the llmrt function.
  b.setInsertionPointToEnd(module.getBody());
  auto newFn = func::FuncOp::create(b, fn.getLoc(), newName,
                                    b.getFunctionType({}, {}));
  Block *entry = newFn.addEntryBlock();
  b.setInsertionPointToStart(entry);
  DenseMap<Value, Value> views;
  DenseMap<int, Value> fixedViews;
  auto memrefOf = [](Value v) {
    auto t = cast<ShapedType>(v.getType());
    return MemRefType::get(t.getShape(), t.getElementType());
  };
  std::function<Value(Value)> viewOf = [&](Value v) -> Value {
    if (auto c = columnOf.find(v); c != columnOf.end())
      return viewOf(c->second.first); // the kernel's ints place the columns
    if (Value existing = views.lookup(v))
      return existing;
    Value view;
    if (auto it = sliceOffset.find(v); it != sliceOffset.end()) {
      auto bs = v.getDefiningOp<BatchSliceOp>();
      auto baseOp = viewOf(bs.getInput()).getDefiningOp<mlir::llmrt::BufferOp>();
      view = mlir::llmrt::BufferOp::create(
          b, fn.getLoc(), memrefOf(v),
          (baseOp.getName() + "@micro" + Twine(bs.getIndex())).str(),
          baseOp.getRole(), baseOp.getOffset() + it->second, StringAttr(),
          FloatAttr(), DenseI64ArrayAttr(), DenseI64ArrayAttr(), IntegerAttr(),
          IntegerAttr(), DenseI64ArrayAttr());
      views[v] = view;
      return view;
    }
    if (auto al = aliases.find(v); al != aliases.end()) {
      Value base = viewOf(al->second.first);
      if (!al->second.second) {
        view = base; // the same bytes
      } else {
        // This rank's share: the base's offset plus rank x share size.
        auto baseOp = base.getDefiningOp<mlir::llmrt::BufferOp>();
        auto type = memrefOf(v);
        int64_t share = type.getNumElements() * type.getElementTypeBitWidth() / 8;
        auto op = mlir::llmrt::BufferOp::create(
            b, fn.getLoc(), type,
            (baseOp.getName() + (shareGroup.lookup(v) == 2 ? "@tp-share"
                                                          : "@dp-share"))
                .str(),
            "temp", baseOp.getOffset(), StringAttr(), FloatAttr(),
            DenseI64ArrayAttr(), DenseI64ArrayAttr(), IntegerAttr(),
            IntegerAttr(), DenseI64ArrayAttr());
        op.setRankGroupAttr(b.getI64IntegerAttr(shareGroup.lookup(v)));
        op.setRankStrideAttr(b.getI64IntegerAttr(share));
        view = op.getResult();
      }
      views[v] = view;
      return view;
    }
    if (auto it = fixedOf.find(v); it != fixedOf.end()) {
      const FixedBuffer &f = fixed[it->second];
      Value &slot = fixedViews[it->second];
      if (!slot) {
        OpBuilder::InsertionGuard guard(b);
        b.setInsertionPointToStart(entry);
        auto op = mlir::llmrt::BufferOp::create(
            b, fn.getLoc(), MemRefType::get(f.type.getShape(), f.type.getElementType()),
            f.name, f.role, f.offset, f.init, f.initStd, f.tpShard,
            f.globalShape, IntegerAttr(), IntegerAttr(), DenseI64ArrayAttr());
        if (f.zeroOf)
          op.setZeroOfAttr(f.zeroOf);
        slot = op.getResult();
      }
      view = slot;
    } else {
      const Storage &st = storages[storageOf.lookup(v)];
      view = mlir::llmrt::BufferOp::create(b, fn.getLoc(), memrefOf(v), "", "temp",
                                     persistentBytes + st.offset, StringAttr(),
                                     FloatAttr(), DenseI64ArrayAttr(),
                                     DenseI64ArrayAttr(), IntegerAttr(),
                                     IntegerAttr(), DenseI64ArrayAttr());
    }
    views[v] = view;
    return view;
  };
  // A bucket's whole range, as one view.
  auto bucketView = [&](const Bucket &bk) {
    const Storage &st = storages[bk.storage];
    return mlir::llmrt::BufferOp::create(
               b, fn.getLoc(),
               MemRefType::get({bk.bytes / 4}, b.getF32Type()), "", "temp",
               persistentBytes + st.offset, StringAttr(), FloatAttr(),
               DenseI64ArrayAttr(), DenseI64ArrayAttr(), IntegerAttr(),
               IntegerAttr(), DenseI64ArrayAttr())
        .getResult();
  };
  auto bucketInts = [&](int i) {
    const Bucket &bk = buckets[i];
    return b.getDenseI64ArrayAttr({bk.bytes / 4, 1, bk.mean ? 1 : 0, i});
  };
  // The bucket a value belongs to (a reduced gradient or its share).
  DenseMap<Value, int> bucketOfValue;
  for (auto [i, bk] : llvm::enumerate(buckets))
    for (AllReduceOp m : bk.members)
      bucketOfValue[m.getResult()] = static_cast<int>(i);
  SmallVector<int> state(buckets.size(), 0); // 1 started, 2 waited
  DenseMap<int, Value> bucketViews;
  // Pipeline receives: posted (recv_start) where llm.recv stands, waited
  // for (recv_wait) before the first read of the value. Slots 2050 ... 4095
  // (the buckets and gathers take the ones below), in turn.
  DenseMap<Value, SmallVector<int64_t>> receiving;
  int64_t recvSlot = 0;
  for (Operation &op : body.without_terminator()) {
    for (Value v : op.getOperands()) {
      auto it = receiving.find(v);
      if (it == receiving.end())
        continue;
      mlir::llmrt::KernelOp::create(b, op.getLoc(), "recv_wait", ValueRange{viewOf(v)},
                                    b.getDenseI64ArrayAttr(it->second),
                                    b.getDenseF64ArrayAttr({}));
      receiving.erase(it);
    }
    if (auto recv = dyn_cast<RecvOp>(op)) {
      SmallVector<int64_t> ints = {numElements(recv.getResult()),
                                   pipelinePeer(module, static_cast<int64_t>(recv.getPeer())),
                                   static_cast<int64_t>(recv.getTag()),
                                   2050 + recvSlot++ % 2046};
      mlir::llmrt::KernelOp::create(b, op.getLoc(), "recv_start",
                                    ValueRange{viewOf(recv.getResult())},
                                    b.getDenseI64ArrayAttr(ints),
                                    b.getDenseF64ArrayAttr({}));
      receiving[recv.getResult()] = ints;
      continue;
    }
    // Wait for a bucket before the first read of any of its gradients.
    for (Value v : op.getOperands()) {
      Value base = v;
      if (auto slice = base.getDefiningOp<ShardSliceOp>())
        base = slice.getInput();
      auto it = bucketOfValue.find(base);
      if (it == bucketOfValue.end())
        continue;
      int i = it->second;
      if (state[i] == 0)
        return op.emitOpError() << "llm-lower-to-rt: reads a gradient of a "
                                   "data-parallel bucket before the bucket is "
                                   "complete";
      if (state[i] == 1) {
        mlir::llmrt::KernelOp::create(b, op.getLoc(), "all_reduce_wait",
                                      ValueRange{bucketViews[i]}, bucketInts(i),
                                      b.getDenseF64ArrayAttr({}));
        state[i] = 2;
      }
    }
    if (auto g = dyn_cast<AllGatherOp>(op); g && gatherIndex.count(g)) {
      // Start this gather if its predecessor did not, wait for it, and
      // start the next one (two slots, alternating).
      int j = gatherIndex.lookup(g);
      auto start = [&](int k) {
        AllGatherOp gk = gathers[k];
        mlir::llmrt::KernelOp::create(
            b, gk.getLoc(), "all_gather_start",
            ValueRange{viewOf(gk.getInput()), viewOf(gk.getResult())},
            b.getDenseI64ArrayAttr({numElements(gk.getInput()), 1, 2048 + k % 2}),
            b.getDenseF64ArrayAttr({}));
      };
      if (j == 0)
        start(0);
      mlir::llmrt::KernelOp::create(
          b, op.getLoc(), "all_gather_wait", ValueRange{viewOf(g.getResult())},
          b.getDenseI64ArrayAttr({numElements(g.getInput()), 1, 2048 + j % 2}),
          b.getDenseF64ArrayAttr({}));
      if (j + 1 < static_cast<int>(gathers.size()))
        start(j + 1);
      continue;
    }
    if (auto ar = dyn_cast<AllReduceOp>(op); ar && bucketOf.count(ar)) {
      int i = bucketOf.lookup(ar);
      // Not in place: the gradient moves into its slot of the bucket.
      if (storageOf.lookup(ar.getInput()) != storageOf.lookup(ar.getResult()) ||
          !storageOf.count(ar.getInput())) {
        int64_t n = numElements(ar.getInput());
        mlir::llmrt::KernelOp::create(
            b, op.getLoc(), "copy_columns",
            ValueRange{viewOf(ar.getInput()), viewOf(ar.getResult())},
            b.getDenseI64ArrayAttr({n, 0, n, 0, n, 1}), b.getDenseF64ArrayAttr({}));
      } else {
        viewOf(ar.getResult());
      }
      if (ar == buckets[i].members.back()) {
        bucketViews[i] = bucketView(buckets[i]);
        mlir::llmrt::KernelOp::create(b, op.getLoc(), "all_reduce_start",
                                      ValueRange{bucketViews[i]}, bucketInts(i),
                                      b.getDenseF64ArrayAttr({}));
        state[i] = 1;
      }
      continue;
    }
    SmallVector<Call> calls;
    if (failed(selectKernels(&op, calls)))
      return failure();
    for (Call &c : calls) {
      SmallVector<Value> operands;
      for (Value v : c.operands)
        operands.push_back(viewOf(v));
      mlir::llmrt::KernelOp::create(b, op.getLoc(), c.kernel, operands,
                              b.getDenseI64ArrayAttr(c.ints),
                              b.getDenseF64ArrayAttr(c.floats));
    }
  }
  for (auto &[v, ints] : receiving) // received, never read: still completed
    mlir::llmrt::KernelOp::create(b, fn.getLoc(), "recv_wait", ValueRange{viewOf(v)},
                                  b.getDenseI64ArrayAttr(ints),
                                  b.getDenseF64ArrayAttr({}));
  for (auto [i, st] : llvm::enumerate(state))
    if (st == 1)
      mlir::llmrt::KernelOp::create(b, fn.getLoc(), "all_reduce_wait",
                                    ValueRange{bucketViews[i]},
                                    bucketInts(static_cast<int>(i)),
                                    b.getDenseF64ArrayAttr({}));
  func::ReturnOp::create(b, fn.getLoc());
  return success();
}

/// The model's config and stats, for the runtime's logs and checkpoints.
static DictionaryAttr buildMetadata(ModuleOp module, func::FuncOp model,
                                    const ModelStats &stats, Builder &b) {
  SmallVector<NamedAttribute> entries;
  if (auto cfg = module->getAttrOfType<DictionaryAttr>("llm.config"))
    entries.push_back(b.getNamedAttr("config", cfg));
  // The world the program was built for, and its groups.
  int64_t world = 1, dp = 1, tp = 1;
  if (auto plan = module->getAttrOfType<PlanAttr>("llm.plan")) {
    world = plan.getWorld();
    dp = plan.getDp();
    tp = plan.getTp();
  }
  entries.push_back(b.getNamedAttr("world", b.getI64IntegerAttr(world)));
  entries.push_back(b.getNamedAttr("dp", b.getI64IntegerAttr(dp)));
  entries.push_back(b.getNamedAttr("tp", b.getI64IntegerAttr(tp)));
  // Pipeline stages: one program each, the runtime picks by rank.
  if (auto stage = module->getAttrOfType<IntegerAttr>("llm.stage")) {
    auto plan = module->getAttrOfType<PlanAttr>("llm.plan");
    entries.push_back(b.getNamedAttr("pp", b.getI64IntegerAttr(plan.getPp())));
    entries.push_back(b.getNamedAttr("vpp", b.getI64IntegerAttr(plan.getVpp())));
    entries.push_back(b.getNamedAttr("stage", stage));
  }
  // The whole model's figures (llm-partition records them before it cuts
  // the model function down to one rank's share).
  double flops = stats.flopsPerStepF;
  int64_t params = stats.params, tokens = stats.tokensPerStep;
  if (auto whole = module->getAttrOfType<DictionaryAttr>("llm.stats")) {
    if (auto f = whole.getAs<FloatAttr>("flops_per_step"))
      flops = f.getValueAsDouble();
    else if (auto i = whole.getAs<IntegerAttr>("flops_per_step"))
      flops = static_cast<double>(i.getInt());
    if (auto p = whole.getAs<IntegerAttr>("params"))
      params = p.getInt();
    if (auto t = whole.getAs<IntegerAttr>("tokens_per_step"))
      tokens = t.getInt();
    if (auto d = whole.getAs<DictionaryAttr>("init_draws"))
      entries.push_back(b.getNamedAttr("init_draws", d));
  }
  // The matrix products' precision (llm-f32-storage, llm-compile): the
  // CUDA backend's GEMM mode unless LLMRT_CUDA_GEMM says otherwise.
  if (auto compute = module->getAttrOfType<StringAttr>("llm.compute_precision"))
    entries.push_back(b.getNamedAttr("compute_precision", compute));
  entries.push_back(b.getNamedAttr("params", b.getI64IntegerAttr(params)));
  entries.push_back(b.getNamedAttr("flops_per_step", b.getF64FloatAttr(flops)));
  entries.push_back(b.getNamedAttr("tokens_per_step", b.getI64IntegerAttr(tokens)));
  return b.getDictionaryAttr(entries);
}

LogicalResult Lowering::run() {
  FailureOr<func::FuncOp> model = getModelFunction(module);
  if (failed(model))
    return failure();
  auto train = dyn_cast_or_null<func::FuncOp>(
      SymbolTable::lookupSymbolIn(module, "train_step"));
  if (!train || !train->hasAttr(kTrainStepAttr))
    return module.emitError() << "llm-lower-to-rt: no @train_step; run "
                                 "llm-autodiff and llm-optimizer first";
  bool hasUpdates = false;
  for (unsigned i = 0, e = train.getNumResults(); i < e; ++i)
    hasUpdates |= static_cast<bool>(train.getResultAttr(i, kUpdateAttr));
  if (!hasUpdates)
    return train.emitError() << "llm-lower-to-rt: @train_step updates no "
                                "parameter; run llm-optimizer first";
  FailureOr<ModelStats> stats = computeModelStats(*model);
  if (failed(stats))
    return failure();
  if (failed(collectPersistent(train, *model)))
    return failure();

  int64_t trainTemps = 0, evalTemps = 0;
  if (failed(lowerFunction(train, "train", trainTemps)) ||
      failed(lowerFunction(*model, "eval", evalTemps)))
    return failure();
  int64_t arena = persistentBytes + std::max(trainTemps, evalTemps);
  Builder attrs(module.getContext());
  module->setAttr("llmrt.metadata",
                  buildMetadata(module, *model, *stats, attrs));
  module->setAttr("llmrt.arena_bytes", attrs.getI64IntegerAttr(arena));
  module->setAttr("llmrt.persistent_bytes",
                  attrs.getI64IntegerAttr(persistentBytes));
  train.erase();
  model->erase();
  return success();
}

namespace {
struct LowerToRTPass : public llm::impl::LowerToRTBase<LowerToRTPass> {
  using LowerToRTBase::LowerToRTBase;
  void runOnOperation() override {
    Lowering lowering(getOperation(), bucketBytes, attentionColumnViews,
                      overlapWeightGrads);
    if (failed(lowering.run()))
      signalPassFailure();
  }
};
} // namespace
