//===- Profile.cpp - the planner's view of the model graph ----------------===//
//
// Walks the model function once: assigns every op to a block (embedding,
// layer N, head) by the Hugging Face names of the parameters it reads,
// classifies each tensor as split or replicated under Megatron tensor
// parallelism (a linear whose input is replicated is column-parallel, one
// whose input is split is row-parallel and ends in an all-reduce), and
// records per op its FLOPs and bytes and per block the activations the
// backward reads (the llm-autodiff rules).
//
//===----------------------------------------------------------------------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/LLMOps.h"
#include "llm/Planner/Planner.h"
#include "llmrt/Store16.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/ADT/TypeSwitch.h"

#include <functional>

using namespace mlir;
using namespace mlir::llm;

namespace {

double bytesOf(Value v) {
  auto t = dyn_cast<ShapedType>(v.getType());
  if (!t || !t.hasStaticShape())
    return 0;
  return static_cast<double>(t.getNumElements()) *
         t.getElementTypeBitWidth() / 8;
}

/// Operands whose forward values the backward reads (the llm-autodiff
/// rules): what stays alive between the forward and the backward.
SmallVector<Value> savedOperands(Operation *op) {
  return llvm::TypeSwitch<Operation *, SmallVector<Value>>(op)
      .Case([](LayerNormOp o) { return SmallVector<Value>{o.getInput()}; })
      .Case([](RMSNormOp o) { return SmallVector<Value>{o.getInput()}; })
      .Case([](LinearOp o) { return SmallVector<Value>{o.getInput()}; })
      .Case([](AttentionOp o) {
        return SmallVector<Value>{o.getQ(), o.getK(), o.getV()};
      })
      .Case([](GeluOp o) { return SmallVector<Value>{o.getInput()}; })
      .Case([](SiluOp o) { return SmallVector<Value>{o.getInput()}; })
      .Case([](MulOp o) { return SmallVector<Value>{o.getLhs(), o.getRhs()}; })
      .Case([](CrossEntropyOp o) { return SmallVector<Value>{o.getLogits()}; })
      .Default([](Operation *) { return SmallVector<Value>{}; });
}

/// Whether the CUDA runtime stores `v` 16-bit with 16-bit activations
/// (runtime Store16.h: store16Writers and store16Reader over the lowered
/// program): an op that can write 16 bits wrote it (a layer or RMS norm's
/// output, a linear's, a GELU's or SiLU's; attention's where its kernel
/// takes 16 bits, `attention16`) and every op that reads it can read 16
/// bits (a linear's input, GELU, SiLU, an add without broadcast, the
/// loss's logits, attention's q, k, v; a split whose parts all go to such
/// readers, the column views of q, k, v). The backward's readers of these
/// (the GEMMs, the GELU's and SiLU's gradients, attention's backward, the
/// loss's gradient) read 16 bits too; a mul's (SwiGLU) does not, and a mul
/// reads no 16-bit operand.
bool stored16(Value v, bool attention16) {
  if (auto sp = v.getDefiningOp<SplitOp>())
    return stored16(sp.getInput(), attention16);
  Operation *def = v.getDefiningOp();
  if (!def)
    return false;
  bool writes = isa<LayerNormOp, RMSNormOp>(def) ? v == def->getResult(0)
                : isa<AttentionOp>(def)         ? attention16
                                                : isa<LinearOp, GeluOp, SiluOp>(def);
  if (!writes)
    return false;
  std::function<bool(OpOperand &)> reads16 = [&](OpOperand &use) -> bool {
    Operation *user = use.getOwner();
    if (auto lin = dyn_cast<LinearOp>(user))
      return use.get() == lin.getInput();
    if (isa<GeluOp, SiluOp>(user))
      return true;
    if (auto add = dyn_cast<AddOp>(user))
      return add.getLhs().getType() == add.getRhs().getType();
    if (auto ce = dyn_cast<CrossEntropyOp>(user))
      return use.get() == ce.getLogits();
    if (isa<AttentionOp>(user))
      return attention16 && use.getOperandNumber() < 3;
    if (auto sp = dyn_cast<SplitOp>(user))
      return llvm::all_of(sp->getResults(), [&](Value r) {
        return llvm::all_of(r.getUses(), [&](OpOperand &u) { return reads16(u); });
      });
    return false;
  };
  return llvm::all_of(v.getUses(), [&](OpOperand &u) { return reads16(u); });
}

} // namespace

FailureOr<ModelProfile> mlir::llm::profileModel(ModuleOp module) {
  FailureOr<func::FuncOp> fnOr = getModelFunction(module);
  if (failed(fnOr))
    return failure();
  func::FuncOp fn = *fnOr;
  FailureOr<ModelStats> stats = computeModelStats(fn);
  if (failed(stats))
    return failure();
  auto cfg = module->getAttrOfType<DictionaryAttr>("llm.config");
  if (!cfg)
    return module.emitError() << "planner: the module has no llm.config "
                                 "(import it with llm-import)";
  ModelProfile m;
  auto geti = [&](StringRef key) -> int64_t {
    if (auto a = cfg.getAs<IntegerAttr>(key))
      return a.getInt();
    return 0;
  };
  m.layers = geti("num_layers");
  m.hidden = geti("hidden_size");
  m.heads = geti("num_heads");
  m.kvHeads = geti("num_kv_heads");
  m.ffn = geti("ffn_hidden_size");
  m.vocab = geti("vocab_size");
  m.seq = geti("seq");
  m.batch = geti("batch");
  if (auto t = cfg.getAs<BoolAttr>("tie_word_embeddings"))
    m.tiedEmbeddings = t.getValue();
  if (auto s = cfg.getAs<StringAttr>("model_type"))
    m.modelType = s.getValue().str();
  if (m.layers <= 0 || m.hidden <= 0 || m.batch <= 0 || m.seq <= 0)
    return module.emitError() << "planner: llm.config lacks layers, hidden "
                                 "size, batch or seq";
  m.flopsPerStep = stats->flopsPerStepF;
  m.params = static_cast<double>(stats->params);

  const int64_t post = m.layers;
  DenseMap<Value, int64_t> layerOf;
  DenseMap<Value, bool> split;
  DenseSet<Value> params;
  for (unsigned i = 0, e = fn.getNumArguments(); i < e; ++i) {
    Value a = fn.getArgument(i);
    if (auto name = fn.getArgAttrOfType<StringAttr>(i, kParamAttr)) {
      params.insert(a);
      layerOf[a] = layerOfParam(name.getValue(), post);
      auto t = cast<ShapedType>(a.getType());
      unsigned bits = t.getElementTypeBitWidth();
      m.elemBytes = bits / 8;
      m.precision = t.getElementType().isF32()    ? "fp32"
                    : t.getElementType().isBF16() ? "bf16"
                                                  : "fp16";
    } else {
      layerOf[a] = -1;
    }
    split[a] = false;
  }

  // The CUDA runtime's attention takes 16-bit q, k, v and writes a 16-bit
  // output with bf16 products (an fp16 model's 16-bit tensors are fp16,
  // which its bf16 tiles are not), where its FlashAttention-2 kernels run:
  // one head dimension (runtime Store16.h).
  // Its FlashAttention-2 kernels take one head dimension.
  const auto compute = module->getAttrOfType<StringAttr>("llm.compute_precision");
  const bool attention16 = compute && compute.getValue() == "bf16" && m.heads > 0 &&
                           m.hidden % m.heads == 0 &&
                           m.hidden / m.heads == ::llmrt::kFlashAttentionHeadDim;

  m.flashAttention16 = attention16;

  // Per layer sums, to check that the layers are identical.
  std::vector<double> layerFlops(m.layers, 0), layerParams(m.layers, 0);
  DenseSet<Value> savedSeen;
  DenseSet<Value> countedParams;
  double B = static_cast<double>(m.batch);
  for (Operation &op : fn.getBody().front().without_terminator()) {
    int64_t layer = -1;
    for (Value v : op.getOperands())
      layer = std::max(layer, layerOf.lookup(v));
    bool inSplit = llvm::any_of(op.getOperands(), [&](Value v) {
      return !params.contains(v) && split.lookup(v);
    });
    bool outSplit = inSplit;
    bool opSplit = inSplit;
    bool rowParallel = false;
    if (auto lin = dyn_cast<LinearOp>(op)) {
      outSplit = !split.lookup(lin.getInput());
      rowParallel = !outSplit;
      opSplit = true;
    } else if (isa<EmbeddingOp>(op)) {
      outSplit = false; // vocabulary-parallel lookup + all-reduce
      opSplit = true;
    } else if (isa<LayerNormOp, RMSNormOp, AddOp, PositionEmbeddingOp>(op)) {
      outSplit = false;
      opSplit = false;
    }
    for (Value r : op.getResults()) {
      layerOf[r] = layer;
      split[r] = outSplit;
    }

    BlockProfile &blk = layer < 0 ? m.pre : layer >= post ? m.post : m.layer;
    bool layerZero = layer == 0;
    bool inProfile = layer < 0 || layer >= post || layerZero;

    OpProfile p;
    p.name = op.getName().stripDialect().str();
    if (auto f = dyn_cast<FlopCountOpInterface>(op))
      p.flops = static_cast<double>(f.getMatmulFlops()) / B;
    for (Value v : op.getOperands()) {
      if (params.contains(v)) {
        p.weightBytes += bytesOf(v);
        if (!countedParams.contains(v)) {
          countedParams.insert(v);
          double n = static_cast<double>(
              cast<ShapedType>(v.getType()).getNumElements());
          if (layer >= 0 && layer < post)
            layerParams[layer] += n;
          if (inProfile) {
            // Matrices and the biases of column-parallel linears are split;
            // norm gains and row-parallel biases are replicated.
            auto t = cast<ShapedType>(v.getType());
            bool s = opSplit && (t.getRank() == 2 || !rowParallel);
            if (isa<LayerNormOp, RMSNormOp, PositionEmbeddingOp>(op))
              s = false;
            (s ? blk.paramsSplit : blk.paramsReplicated) += n;
          }
        }
      } else {
        p.actBytes += bytesOf(v) / B;
      }
    }
    for (Value r : op.getResults())
      p.actBytes += bytesOf(r) / B;
    p.tpSplit = opSplit;
    p.attentionCore = isa<AttentionOp>(op);
    if (auto sp = dyn_cast<SplitOp>(op))
      p.columnView = llvm::all_of(sp.getResults(), [](Value r) {
        return !r.use_empty() && llvm::all_of(r.getUses(), [](OpOperand &u) {
          return isa<AttentionOp>(u.getOwner()) && u.getOperandNumber() < 3;
        });
      });
    if (layer >= 0 && layer < post)
      layerFlops[layer] += p.flops;
    if (!inProfile)
      continue;

    for (Value v : savedOperands(&op)) {
      if (params.contains(v) || savedSeen.contains(v))
        continue;
      savedSeen.insert(v);
      (split.lookup(v) ? blk.savedSplit : blk.savedReplicated) +=
          bytesOf(v) / B;
      if (stored16(v, attention16))
        (split.lookup(v) ? blk.saved16Split : blk.saved16Replicated) +=
            bytesOf(v) / B;
    }
    if (rowParallel || isa<EmbeddingOp>(op)) {
      blk.tpBoundaries += 1;
      blk.tpBoundaryBytes = bytesOf(op.getResult(0)) / B;
    }
    if (layerZero && blk.inputBytes == 0)
      for (Value v : op.getOperands())
        if (!params.contains(v) && layerOf.lookup(v) < 0 &&
            !isa<BlockArgument>(v))
          blk.inputBytes = bytesOf(v) / B;
    blk.ops.push_back(std::move(p));
  }
  for (int64_t l = 1; l < m.layers; ++l)
    if (layerFlops[l] != layerFlops[0] || layerParams[l] != layerParams[0])
      return fn.emitError() << "planner: layer " << l
                            << " differs from layer 0; the planner assumes "
                               "identical layers";
  if (auto compute = module->getAttrOfType<StringAttr>("llm.compute_precision"))
    m.computePrecision = compute.getValue().str();
  return m;
}
