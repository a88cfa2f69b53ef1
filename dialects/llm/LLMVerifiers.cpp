//===- LLMVerifiers.cpp - llm op verifiers --------------------------------===//
//
// One verifier per op. Messages follow LLVM style (lowercase, no final
// period) and name the offending values; each has an `expected-error` case in
// test/Dialect/LLM/invalid.mlir.
//
//===----------------------------------------------------------------------===//
#include "llm/LLMOps.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/Support/FormatVariadic.h"

#include <cstdio>

using namespace mlir;
using namespace mlir::llm;

/// `8x256x384`, or `scalar` for rank 0.
static std::string shapeStr(ArrayRef<int64_t> shape) {
  if (shape.empty())
    return "scalar";
  std::string s;
  llvm::raw_string_ostream os(s);
  llvm::interleave(shape, os, "x");
  return s;
}

/// Shortest readable form of a double: 1e-05, -0.125, 0.
static std::string numberStr(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

static std::string typeStr(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  t.print(os);
  return s;
}

/// Every (name, type) pair has the element type of the first one.
static LogicalResult
verifyElementTypes(Operation *op,
                   ArrayRef<std::pair<StringRef, ShapedType>> values) {
  Type first = values.front().second.getElementType();
  for (auto [name, type] : values.drop_front())
    if (type.getElementType() != first)
      return op->emitOpError()
             << "expects " << name << " element type (" << typeStr(type.getElementType())
             << ") to match " << values.front().first << " element type ("
             << typeStr(first) << ")";
  return success();
}

static LogicalResult verifyRank(Operation *op, StringRef name,
                                ShapedType type, int64_t rank) {
  if (type.getRank() != rank)
    return op->emitOpError() << "expects " << name << " to have rank " << rank
                             << ", got rank " << type.getRank();
  return success();
}

static LogicalResult verifyPositive(Operation *op, StringRef name,
                                    double value) {
  if (!(value > 0.0))
    return op->emitOpError() << "expects " << name << " > 0, got "
                             << numberStr(value);
  return success();
}

/// `vec` is a rank-1 tensor of `size` elements (a norm gain or a bias).
static LogicalResult verifyVector(Operation *op, StringRef name,
                                  ShapedType vec, int64_t size,
                                  StringRef sizeWhat) {
  if (vec.getRank() != 1 || vec.getDimSize(0) != size)
    return op->emitOpError()
           << "expects " << name << " shape " << shapeStr(vec.getShape())
           << " to be [" << size << "], the " << sizeWhat;
  return success();
}

static LogicalResult verifyResultType(Operation *op, ShapedType expected,
                                      ShapedType result, StringRef from,
                                      StringRef what = "result") {
  if (expected != result)
    return op->emitOpError() << "expects " << what << " type " << typeStr(result)
                             << " to equal the " << from << " type "
                             << typeStr(expected);
  return success();
}

//===----------------------------------------------------------------------===//

LogicalResult EmbeddingOp::verify() {
  auto ids = getIds().getType();
  auto table = getTable().getType();
  auto result = getResult().getType();
  if (failed(verifyRank(*this, "table", table, 2)))
    return failure();
  SmallVector<int64_t> expected(ids.getShape());
  expected.push_back(table.getDimSize(1));
  if (result.getShape() != ArrayRef<int64_t>(expected))
    return emitOpError() << "expects result shape " << shapeStr(result.getShape())
                         << " to be " << shapeStr(expected)
                         << " (ids shape followed by the table's hidden size "
                         << table.getDimSize(1) << ")";
  return verifyElementTypes(*this, {{"table", table}, {"result", result}});
}

LogicalResult PositionEmbeddingOp::verify() {
  auto table = getTable().getType();
  auto result = getResult().getType();
  if (failed(verifyRank(*this, "table", table, 2)) ||
      failed(verifyRank(*this, "result", result, 2)))
    return failure();
  if (result.getDimSize(1) != table.getDimSize(1))
    return emitOpError() << "expects result hidden size (" << result.getDimSize(1)
                         << ") to equal the table's hidden size ("
                         << table.getDimSize(1) << ")";
  if (result.getDimSize(0) > table.getDimSize(0))
    return emitOpError() << "expects sequence length (" << result.getDimSize(0)
                         << ") to be at most the table's max positions ("
                         << table.getDimSize(0) << ")";
  return verifyElementTypes(*this, {{"table", table}, {"result", result}});
}

LogicalResult LayerNormOp::verify() {
  auto in = getInput().getType();
  if (failed(verifyPositive(*this, "epsilon", getEpsilon().convertToDouble())))
    return failure();
  if (in.getRank() < 1)
    return emitOpError() << "expects input to have rank >= 1";
  int64_t hidden = in.getShape().back();
  if (failed(verifyVector(*this, "weight", getWeight().getType(), hidden,
                          "size of the input's last axis")) ||
      failed(verifyVector(*this, "bias", getBias().getType(), hidden,
                          "size of the input's last axis")) ||
      failed(verifyElementTypes(*this, {{"input", in},
                                        {"weight", getWeight().getType()},
                                        {"bias", getBias().getType()}})))
    return failure();
  return verifyResultType(*this, in, getResult().getType(), "input");
}

LogicalResult RMSNormOp::verify() {
  auto in = getInput().getType();
  if (failed(verifyPositive(*this, "epsilon", getEpsilon().convertToDouble())))
    return failure();
  if (in.getRank() < 1)
    return emitOpError() << "expects input to have rank >= 1";
  if (failed(verifyVector(*this, "weight", getWeight().getType(),
                          in.getShape().back(),
                          "size of the input's last axis")) ||
      failed(verifyElementTypes(
          *this, {{"input", in}, {"weight", getWeight().getType()}})))
    return failure();
  return verifyResultType(*this, in, getResult().getType(), "input");
}

LogicalResult LinearOp::verify() {
  auto in = getInput().getType();
  auto w = getWeight().getType();
  auto result = getResult().getType();
  if (failed(verifyRank(*this, "weight", w, 2)))
    return failure();
  if (in.getRank() < 1)
    return emitOpError() << "expects input to have rank >= 1";
  StringRef layout = getTransposeWeight() ? "[out, in]" : "[in, out]";
  if (in.getShape().back() != getInFeatures())
    return emitOpError() << "expects input features (" << in.getShape().back()
                         << ") to equal the in size (" << getInFeatures()
                         << ") of weight " << shapeStr(w.getShape())
                         << " in " << layout << " layout";
  SmallVector<std::pair<StringRef, ShapedType>> types = {
      {"input", in}, {"weight", w}, {"result", result}};
  if (Value bias = getBias()) {
    auto b = cast<ShapedType>(bias.getType());
    if (failed(verifyVector(*this, "bias", b, getOutFeatures(),
                            "out size of the weight")))
      return failure();
    types.push_back({"bias", b});
  }
  SmallVector<int64_t> expected(in.getShape().drop_back());
  expected.push_back(getOutFeatures());
  if (result.getShape() != ArrayRef<int64_t>(expected))
    return emitOpError() << "expects result shape " << shapeStr(result.getShape())
                         << " to be " << shapeStr(expected);
  return verifyElementTypes(*this, types);
}

/// The pieces of split (its results) and concat (its inputs) against the
/// whole tensor: the same rank and element type, the same sizes outside
/// `axis`, and sizes along it that add up to the whole's.
static LogicalResult verifyPieces(Operation *op, ShapedType whole,
                                  StringRef wholeName, ValueRange pieces,
                                  StringRef pieceKind, int64_t axis) {
  int64_t sum = 0;
  for (auto [i, v] : llvm::enumerate(pieces)) {
    auto t = cast<ShapedType>(v.getType());
    std::string name = llvm::formatv("{0} #{1}", pieceKind, i).str();
    if (failed(verifyRank(op, name, t, whole.getRank())) ||
        failed(verifyElementTypes(op, {{wholeName, whole}, {name, t}})))
      return failure();
    for (int64_t d = 0; d < whole.getRank(); ++d)
      if (d != axis && t.getDimSize(d) != whole.getDimSize(d))
        return op->emitOpError()
               << "expects " << name << " shape " << shapeStr(t.getShape())
               << " to match " << wholeName << " shape "
               << shapeStr(whole.getShape()) << " outside axis " << axis;
    sum += t.getDimSize(axis);
  }
  if (sum != whole.getDimSize(axis))
    return op->emitOpError() << "expects " << pieceKind << " sizes along axis "
                             << axis << " to add up to "
                             << whole.getDimSize(axis) << ", got " << sum;
  return success();
}

LogicalResult SplitOp::verify() {
  auto in = getInput().getType();
  int64_t axis = getAxis();
  if (axis < 0 || axis >= in.getRank())
    return emitOpError() << "expects axis (" << axis << ") to be in [0, "
                         << in.getRank() << ")";
  if (getResults().empty())
    return emitOpError() << "expects at least one result";
  return verifyPieces(*this, in, "input", getResults(), "result", axis);
}

/// Checks `num_heads` against a [batch, seq, heads * head_dim] tensor.
static LogicalResult verifyHeads(Operation *op, int64_t numHeads,
                                 int64_t features) {
  if (numHeads <= 0)
    return op->emitOpError() << "expects num_heads > 0, got " << numHeads;
  if (features % numHeads != 0)
    return op->emitOpError() << "expects num_heads (" << numHeads
                             << ") to divide hidden size (" << features << ")";
  return success();
}

LogicalResult RoPEOp::verify() {
  auto in = getInput().getType();
  if (failed(verifyRank(*this, "input", in, 3)) ||
      failed(verifyHeads(*this, getNumHeads(), in.getDimSize(2))) ||
      failed(verifyPositive(*this, "theta", getTheta().convertToDouble())))
    return failure();
  int64_t headDim = in.getDimSize(2) / getNumHeads();
  if (headDim % 2 != 0)
    return emitOpError() << "expects an even head_dim for rotary pairs, got "
                         << headDim;
  return success();
}

template <typename BinOp>
static LogicalResult verifyBinary(BinOp op) {
  auto lhs = op.getLhs().getType();
  auto rhs = op.getRhs().getType();
  ArrayRef<int64_t> l = lhs.getShape(), r = rhs.getShape();
  if (r.size() > l.size() || l.take_back(r.size()) != r)
    return op.emitOpError() << "expects rhs shape " << shapeStr(r)
                            << " to equal the trailing axes of lhs shape "
                            << shapeStr(l);
  return verifyElementTypes(op, {{"lhs", lhs}, {"rhs", rhs}});
}

LogicalResult AddOp::verify() { return verifyBinary(*this); }
LogicalResult MulOp::verify() { return verifyBinary(*this); }

/// `vocab` (the padded vocabulary-parallel loss): with `vocab_group`, and
/// positive.
template <typename Op> static LogicalResult verifyPaddedVocab(Op op) {
  std::optional<uint64_t> vocab = op.getVocab();
  if (!vocab)
    return success();
  if (!op.getVocabGroup())
    return op.emitOpError() << "expects `vocab` only with `vocab_group`";
  if (static_cast<int64_t>(*vocab) <= 0)
    return op.emitOpError() << "expects a positive `vocab`, got "
                            << static_cast<int64_t>(*vocab);
  return success();
}

LogicalResult CrossEntropyOp::verify() {
  if (failed(verifyPaddedVocab(*this)))
    return failure();
  auto logits = getLogits().getType();
  auto targets = getTargets().getType();
  if (logits.getRank() < 2)
    return emitOpError() << "expects logits to have rank >= 2, got rank "
                         << logits.getRank();
  if (targets.getShape() != logits.getShape().drop_back())
    return emitOpError() << "expects targets shape "
                         << shapeStr(targets.getShape()) << " to be "
                         << shapeStr(logits.getShape().drop_back())
                         << " (logits shape without the vocabulary axis)";
  return success();
}

//===----------------------------------------------------------------------===//
// Backward and optimizer ops
//===----------------------------------------------------------------------===//

LogicalResult EmbeddingGradOp::verify() {
  auto ids = getIds().getType();
  auto dout = getDout().getType();
  auto result = getResult().getType();
  if (failed(verifyRank(*this, "result", result, 2)))
    return failure();
  SmallVector<int64_t> expected(ids.getShape());
  expected.push_back(result.getDimSize(1));
  if (dout.getShape() != ArrayRef<int64_t>(expected))
    return emitOpError() << "expects dout shape " << shapeStr(dout.getShape())
                         << " to be " << shapeStr(expected)
                         << " (ids shape followed by the table's hidden size)";
  return verifyElementTypes(*this, {{"dout", dout}, {"result", result}});
}

LogicalResult PositionEmbeddingGradOp::verify() {
  auto dout = getDout().getType();
  auto result = getResult().getType();
  if (failed(verifyRank(*this, "dout", dout, 2)) ||
      failed(verifyRank(*this, "result", result, 2)))
    return failure();
  if (result.getDimSize(1) != dout.getDimSize(1))
    return emitOpError() << "expects result hidden size (" << result.getDimSize(1)
                         << ") to equal dout hidden size (" << dout.getDimSize(1)
                         << ")";
  if (dout.getDimSize(0) > result.getDimSize(0))
    return emitOpError() << "expects sequence length (" << dout.getDimSize(0)
                         << ") to be at most the table's max positions ("
                         << result.getDimSize(0) << ")";
  return verifyElementTypes(*this, {{"dout", dout}, {"result", result}});
}

/// Common checks of the norm gradients: epsilon, weight size, dy and d_input
/// typed as the input, d_weight as the weight.
static LogicalResult verifyNormGrad(Operation *op, ShapedType in,
                                    ShapedType w, ShapedType dy,
                                    ShapedType dIn, double eps,
                                    ArrayRef<Value> weightGrads) {
  if (failed(verifyPositive(op, "epsilon", eps)))
    return failure();
  if (in.getRank() < 1)
    return op->emitOpError() << "expects input to have rank >= 1";
  if (failed(verifyVector(op, "weight", w, in.getShape().back(),
                          "size of the input's last axis")) ||
      failed(verifyElementTypes(op, {{"input", in}, {"weight", w}})) ||
      failed(verifyResultType(op, in, dy, "input", "dy")) ||
      failed(verifyResultType(op, in, dIn, "input", "d_input")))
    return failure();
  for (auto [i, g] : llvm::enumerate(weightGrads))
    if (failed(verifyResultType(op, w, cast<ShapedType>(g.getType()), "weight",
                                i == 0 ? "d_weight" : "d_bias")))
      return failure();
  return success();
}

LogicalResult LayerNormGradOp::verify() {
  return verifyNormGrad(*this, getInput().getType(), getWeight().getType(),
                        getDy().getType(), getDInput().getType(),
                        getEpsilon().convertToDouble(),
                        {getDWeight(), getDBias()});
}

LogicalResult RMSNormGradOp::verify() {
  return verifyNormGrad(*this, getInput().getType(), getWeight().getType(),
                        getDy().getType(), getDInput().getType(),
                        getEpsilon().convertToDouble(), {getDWeight()});
}

LogicalResult LinearWeightGradOp::verify() {
  auto in = getInput().getType();
  auto dy = getDy().getType();
  auto result = getResult().getType();
  if (in.getRank() < 1 || in.getRank() != dy.getRank() ||
      in.getShape().drop_back() != dy.getShape().drop_back())
    return emitOpError() << "expects input " << shapeStr(in.getShape())
                         << " and dy " << shapeStr(dy.getShape())
                         << " to agree on every axis but the last";
  int64_t inF = in.getShape().back(), outF = dy.getShape().back();
  SmallVector<int64_t> expected = getTransposeWeight()
                                      ? SmallVector<int64_t>{outF, inF}
                                      : SmallVector<int64_t>{inF, outF};
  if (result.getShape() != ArrayRef<int64_t>(expected))
    return emitOpError() << "expects result shape " << shapeStr(result.getShape())
                         << " to be " << shapeStr(expected);
  return verifyElementTypes(*this,
                            {{"input", in}, {"dy", dy}, {"result", result}});
}

LogicalResult SumLeadingOp::verify() {
  auto in = getInput().getType();
  auto result = getResult().getType();
  ArrayRef<int64_t> i = in.getShape(), r = result.getShape();
  if (r.size() > i.size() || i.take_back(r.size()) != r)
    return emitOpError() << "expects result shape " << shapeStr(r)
                         << " to equal the trailing axes of input shape "
                         << shapeStr(i);
  return verifyElementTypes(*this, {{"input", in}, {"result", result}});
}

LogicalResult ConcatOp::verify() {
  auto result = getResult().getType();
  int64_t axis = getAxis();
  if (getInputs().empty())
    return emitOpError() << "expects at least one input";
  if (axis < 0 || axis >= result.getRank())
    return emitOpError() << "expects axis (" << axis << ") to be in [0, "
                         << result.getRank() << ")";
  return verifyPieces(*this, result, "result", getInputs(), "input",
                      axis);
}

/// The shape rules of attention, shared by the forward and the gradient.
static LogicalResult verifyAttentionOperands(Operation *op, ShapedType q,
                                             ShapedType k, ShapedType v,
                                             int64_t numHeads, int64_t kv,
                                             FloatAttr scale) {
  if (failed(verifyRank(op, "q", q, 3)) || failed(verifyRank(op, "k", k, 3)) ||
      failed(verifyRank(op, "v", v, 3)) ||
      failed(verifyHeads(op, numHeads, q.getDimSize(2))))
    return failure();
  if (kv <= 0)
    return op->emitOpError() << "expects num_kv_heads > 0, got " << kv;
  if (numHeads % kv != 0)
    return op->emitOpError() << "expects num_kv_heads (" << kv
                             << ") to divide num_heads (" << numHeads << ")";
  int64_t headDim = q.getDimSize(2) / numHeads;
  for (auto [name, t] : {std::pair<StringRef, ShapedType>{"k", k}, {"v", v}}) {
    if (t.getDimSize(0) != q.getDimSize(0) || t.getDimSize(1) != q.getDimSize(1))
      return op->emitOpError()
             << "expects " << name << " batch and sequence (" << t.getDimSize(0)
             << "x" << t.getDimSize(1) << ") to equal those of q ("
             << q.getDimSize(0) << "x" << q.getDimSize(1) << ")";
    if (t.getDimSize(2) != kv * headDim)
      return op->emitOpError()
             << "expects " << name << " to have num_kv_heads * head_dim = "
             << kv << " * " << headDim << " = " << kv * headDim
             << " features, got " << t.getDimSize(2);
  }
  if (scale && failed(verifyPositive(op, "scale", scale.getValueAsDouble())))
    return failure();
  return verifyElementTypes(op, {{"q", q}, {"k", k}, {"v", v}});
}

LogicalResult AttentionOp::verify() {
  auto q = getQ().getType();
  if (failed(verifyAttentionOperands(*this, q, getK().getType(),
                                     getV().getType(), getNumHeads(),
                                     getNumKvHeads(), getScaleAttr())))
    return failure();
  return verifyResultType(*this, q, getResult().getType(), "q");
}

LogicalResult AttentionGradOp::verify() {
  auto q = getQ().getType(), k = getK().getType(), v = getV().getType();
  if (failed(verifyAttentionOperands(*this, q, k, v, getNumHeads(),
                                     getNumKvHeads(), getScaleAttr())))
    return failure();
  if (failed(verifyResultType(*this, q, getDout().getType(), "q", "dout")) ||
      failed(verifyResultType(*this, q, getDq().getType(), "q", "dq")) ||
      failed(verifyResultType(*this, k, getDk().getType(), "k", "dk")) ||
      failed(verifyResultType(*this, v, getDv().getType(), "v", "dv")))
    return failure();
  return success();
}

/// lse: f32 [batch, num_heads, seq] of q [batch, seq, hidden].
static LogicalResult verifyLse(Operation *op, RankedTensorType q,
                               RankedTensorType lse, int64_t heads) {
  SmallVector<int64_t> want = {q.getDimSize(0), heads, q.getDimSize(1)};
  if (lse.getShape() != ArrayRef<int64_t>(want))
    return op->emitOpError() << "expects lse of shape " << shapeStr(want)
                             << " ([batch, num_heads, seq]), got "
                             << shapeStr(lse.getShape());
  return success();
}

LogicalResult AttentionLseOp::verify() {
  auto q = getQ().getType();
  if (failed(verifyAttentionOperands(*this, q, getK().getType(),
                                     getV().getType(), getNumHeads(),
                                     getNumKvHeads(), getScaleAttr())) ||
      failed(verifyResultType(*this, q, getResult().getType(), "q")))
    return failure();
  return verifyLse(*this, q, getLse().getType(), getNumHeads());
}

LogicalResult AttentionGradLseOp::verify() {
  auto q = getQ().getType(), k = getK().getType(), v = getV().getType();
  if (failed(verifyAttentionOperands(*this, q, k, v, getNumHeads(),
                                     getNumKvHeads(), getScaleAttr())))
    return failure();
  if (failed(verifyResultType(*this, q, getDout().getType(), "q", "dout")) ||
      failed(verifyResultType(*this, q, getOut().getType(), "q", "out")) ||
      failed(verifyResultType(*this, q, getDq().getType(), "q", "dq")) ||
      failed(verifyResultType(*this, k, getDk().getType(), "k", "dk")) ||
      failed(verifyResultType(*this, v, getDv().getType(), "v", "dv")))
    return failure();
  return verifyLse(*this, q, getLse().getType(), getNumHeads());
}

LogicalResult CrossEntropyGradOp::verify() {
  if (failed(verifyPaddedVocab(*this)))
    return failure();
  auto logits = getLogits().getType();
  auto targets = getTargets().getType();
  if (logits.getRank() < 2)
    return emitOpError() << "expects logits to have rank >= 2, got rank "
                         << logits.getRank();
  if (targets.getShape() != logits.getShape().drop_back())
    return emitOpError() << "expects targets shape "
                         << shapeStr(targets.getShape()) << " to be "
                         << shapeStr(logits.getShape().drop_back())
                         << " (logits shape without the vocabulary axis)";
  return success();
}

LogicalResult GlobalNormOp::verify() {
  if (getInputs().empty())
    return emitOpError() << "expects at least one operand";
  if (auto split = getSplit()) {
    if (split->size() != getInputs().size())
      return emitOpError() << "expects one split entry per operand, got "
                           << split->size() << " for " << getInputs().size();
    for (int64_t m : *split)
      if (m < 0 || m > 3)
        return emitOpError() << "expects split masks in [0, 3], got " << m;
  }
  return success();
}

LogicalResult AdamWOp::verify() {
  for (auto [name, value] :
       {std::pair<StringRef, double>{"beta1", getBeta1().convertToDouble()},
        {"beta2", getBeta2().convertToDouble()}})
    if (!(value >= 0.0 && value < 1.0))
      return emitOpError() << "expects " << name << " in [0, 1), got "
                           << numberStr(value);
  return verifyPositive(*this, "eps", getEps().convertToDouble());
}

LogicalResult AllReduceOp::verify() {
  if (getGroup() != "dp" && getGroup() != "tp" && getGroup() != "tied")
    return emitOpError() << "expects group to be dp, tp or tied, got '"
                         << getGroup() << "'";
  if (getReduction() != "sum" && getReduction() != "mean")
    return emitOpError() << "expects reduction to be sum or mean, got '"
                         << getReduction() << "'";
  return success();
}

/// The pipeline neighbour and stream of a send or receive.
static LogicalResult verifyPeer(Operation *op, int64_t peer, int64_t tag) {
  if (peer != 1 && peer != -1)
    return op->emitOpError() << "expects peer to be 1 or -1, got " << peer;
  if (tag < 0)
    return op->emitOpError() << "expects a tag >= 0, got " << tag;
  return success();
}

LogicalResult SendOp::verify() { return verifyPeer(*this, getPeer(), getTag()); }
LogicalResult RecvOp::verify() { return verifyPeer(*this, getPeer(), getTag()); }

LogicalResult PhaseOp::verify() {
  if (getKind() != "forward" && getKind() != "backward" &&
      getKind() != "recompute")
    return emitOpError() << "expects kind to be forward, backward or "
                            "recompute, got '"
                         << getKind() << "'";
  if (static_cast<int64_t>(getMicrobatch()) < 0 ||
      static_cast<int64_t>(getChunk()) < 0)
    return emitOpError() << "expects microbatch and chunk >= 0";
  return success();
}

/// A `part` whose size divides the element count of `whole`: 1-D (a ZeRO
/// share), or [tokens, h] (this rank's tokens under sequence parallelism).
static LogicalResult verifyShard(Operation *op, ShapedType whole,
                                 ShapedType part, StringRef group) {
  if (group != "dp" && group != "tp")
    return op->emitOpError() << "expects group to be dp or tp, got '" << group
                             << "'";
  if (part.getRank() < 1 || part.getRank() > 2 || part.getNumElements() == 0 ||
      whole.getNumElements() % part.getNumElements() != 0 ||
      (part.getRank() == 2 &&
       part.getShape().back() != whole.getShape().back()))
    return op->emitOpError() << "expects a 1-D part, or a 2-D one with the "
                                "same last dimension, whose size divides the "
                             << whole.getNumElements() << " elements, got "
                             << shapeStr(part.getShape());
  return verifyElementTypes(op, {{"whole", whole}, {"part", part}});
}

LogicalResult BatchSliceOp::verify() {
  auto in = cast<RankedTensorType>(getInput().getType());
  auto out = cast<RankedTensorType>(getResult().getType());
  int64_t count = getCount(), index = getIndex();
  if (count < 1 || index < 0 || index >= count)
    return emitOpError() << "expects 0 <= index < count, got index " << index
                         << " of " << count;
  if (in.getRank() < 1 || in.getDimSize(0) % count != 0)
    return emitOpError() << "expects count (" << count
                         << ") to divide the leading dimension of "
                         << shapeStr(in.getShape());
  SmallVector<int64_t> want(in.getShape());
  want[0] /= count;
  if (out.getShape() != ArrayRef<int64_t>(want) ||
      out.getElementType() != in.getElementType())
    return emitOpError() << "expects result " << shapeStr(want) << ", got "
                         << shapeStr(out.getShape());
  return success();
}

LogicalResult ShardSliceOp::verify() {
  return verifyShard(*this, getInput().getType(), getResult().getType(),
                     getGroup());
}

LogicalResult AllGatherOp::verify() {
  return verifyShard(*this, getResult().getType(), getInput().getType(),
                     getGroup());
}

LogicalResult ReduceScatterOp::verify() {
  if (getReduction() != "sum" && getReduction() != "mean")
    return emitOpError() << "expects reduction to be sum or mean, got '"
                         << getReduction() << "'";
  return verifyShard(*this, getInput().getType(), getResult().getType(),
                     getGroup());
}
