//===- ModelBuilder.cpp - ModelConfig to llm forward + loss graph ---------===//
//
// Emits the model exactly as Hugging Face's GPT2LMHeadModel and
// LlamaForCausalLM compute it (dropout aside), with parameters in their
// Hugging Face names and layouts:
//
//   GPT-2 (Conv1D weights are [in, out]):
//     wte.weight [V, h], wpe.weight [P, h],
//     h.N.ln_1.{weight,bias}, h.N.attn.c_attn.{weight [h, 3h], bias},
//     h.N.attn.c_proj.{weight [h, h], bias}, h.N.ln_2.{weight,bias},
//     h.N.mlp.c_fc.{weight [h, f], bias}, h.N.mlp.c_proj.{weight [f, h], bias},
//     ln_f.{weight,bias}; the LM head reads wte.weight (tied) or
//     lm_head.weight [V, h].
//   Llama / Mistral (nn.Linear weights are [out, in]):
//     model.embed_tokens.weight [V, h],
//     model.layers.N.input_layernorm.weight,
//     model.layers.N.self_attn.{q,k,v,o}_proj.weight,
//     model.layers.N.post_attention_layernorm.weight,
//     model.layers.N.mlp.{gate,up,down}_proj.weight,
//     model.norm.weight, lm_head.weight [V, h] unless tied.
//
//===----------------------------------------------------------------------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/Import/HFConfig.h"
#include "llm/LLMOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/Support/FormatVariadic.h"

#include <cmath>

using namespace mlir;
using namespace mlir::llm;

namespace {

/// Collects function arguments while the body is being built: parameters
/// first (in the order the model first uses them), inputs last. Inputs are
/// made up front; each new parameter goes in before them.
class GraphBuilder {
public:
  GraphBuilder(MLIRContext &ctx, Type floatType, Location loc)
      : b(&ctx), floatType(floatType), loc(loc) {
    block = new Block();
    b.setInsertionPointToStart(block);
  }

  /// A new parameter argument of `shape` named `name`, with its default
  /// initialization (GPT-2's scheme): rank-1 tensors are zeros, or ones for
  /// norm gains; matrices normal(0, initStd), with the residual output
  /// projections scaled by 1/sqrt(2 * layers).
  Value param(StringRef name, ArrayRef<int64_t> shape) {
    Value v = block->insertArgument(numParams, RankedTensorType::get(shape, floatType), loc);
    SmallVector<NamedAttribute> attrs = {
        b.getNamedAttr(kParamAttr, b.getStringAttr(name))};
    if (shape.size() == 1) {
      bool gain = name.ends_with("norm.weight") || name.ends_with("ln_1.weight") ||
                  name.ends_with("ln_2.weight") || name.ends_with("ln_f.weight") ||
                  name.ends_with("layernorm.weight");
      attrs.push_back(b.getNamedAttr(kInitAttr, b.getStringAttr(gain ? "ones" : "zeros")));
    } else {
      bool residual = name.ends_with("c_proj.weight") || name.ends_with("o_proj.weight") ||
                      name.ends_with("down_proj.weight");
      double std = residual ? initStd / std::sqrt(2.0 * numLayers) : initStd;
      attrs.push_back(b.getNamedAttr(kInitAttr, b.getStringAttr("normal")));
      attrs.push_back(b.getNamedAttr(kInitStdAttr, b.getF64FloatAttr(std)));
    }
    argAttrs.insert(argAttrs.begin() + numParams, b.getDictionaryAttr(attrs));
    ++numParams;
    return v;
  }

  Value input(StringRef name, RankedTensorType type) {
    Value v = block->addArgument(type, loc);
    argAttrs.push_back(
        b.getDictionaryAttr(b.getNamedAttr(kInputAttr, b.getStringAttr(name))));
    return v;
  }

  RankedTensorType act(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, floatType);
  }

  OpBuilder b;
  Type floatType;
  Location loc;
  Block *block;
  SmallVector<Attribute> argAttrs;
  unsigned numParams = 0;
  double initStd = 0.02;
  int64_t numLayers = 1;
};

} // namespace

static std::string layerName(const ModelConfig &c, int64_t layer,
                             StringRef suffix) {
  if (c.family == ModelFamily::GPT2)
    return llvm::formatv("h.{0}.{1}", layer, suffix).str();
  return llvm::formatv("model.layers.{0}.{1}", layer, suffix).str();
}

/// One GPT-2 block: pre-norm attention and MLP, both with residuals.
static Value buildGPT2Block(GraphBuilder &g, const ModelConfig &c,
                            int64_t layer, Value x, int64_t batch,
                            int64_t seq) {
  OpBuilder &b = g.b;
  Location loc = g.loc;
  int64_t h = c.hidden, f = c.ffnHidden;
  auto name = [&](StringRef s) { return layerName(c, layer, s); };
  FloatAttr eps = b.getF64FloatAttr(c.normEps);
  RankedTensorType hT = g.act({batch, seq, h});

  // Parameters are made in a fixed order (not as call arguments, whose
  // evaluation order C++ leaves open).
  auto affine = [&](StringRef w, ArrayRef<int64_t> wShape, StringRef bias,
                    int64_t bSize) {
    Value wv = g.param(name(w), wShape);
    Value bv = g.param(name(bias), {bSize});
    return std::make_pair(wv, bv);
  };
  auto layerNorm = [&](Value in, StringRef prefix) -> Value {
    auto [w, bias] = affine((prefix + ".weight").str(), {h},
                            (prefix + ".bias").str(), h);
    return LayerNormOp::create(b, loc, hT, in, w, bias, eps);
  };
  auto linear = [&](Value in, StringRef prefix, int64_t inF,
                    int64_t outF) -> Value {
    auto [w, bias] = affine((prefix + ".weight").str(), {inF, outF},
                            (prefix + ".bias").str(), outF);
    return LinearOp::create(b, loc, g.act({batch, seq, outF}), in, w, bias,
                            /*transpose_weight=*/false);
  };

  Value qkv = linear(layerNorm(x, "ln_1"), "attn.c_attn", h, 3 * h);
  auto split = SplitOp::create(b, loc, TypeRange{hT, hT, hT}, qkv,
                               /*axis=*/2);
  Value attn = AttentionOp::create(b, loc, hT, split.getResult(0),
                                   split.getResult(1), split.getResult(2),
                                   c.numHeads, c.numKvHeads, /*causal=*/true,
                                   /*scale=*/nullptr);
  x = AddOp::create(b, loc, x, linear(attn, "attn.c_proj", h, h));

  Value fc = linear(layerNorm(x, "ln_2"), "mlp.c_fc", h, f);
  Value down = linear(GeluOp::create(b, loc, fc), "mlp.c_proj", f, h);
  return AddOp::create(b, loc, x, down);
}

/// One Llama block: RMSNorm, grouped-query attention with rotary
/// embeddings, SwiGLU MLP.
static Value buildLlamaBlock(GraphBuilder &g, const ModelConfig &c,
                             int64_t layer, Value x, int64_t batch,
                             int64_t seq) {
  OpBuilder &b = g.b;
  Location loc = g.loc;
  int64_t h = c.hidden, f = c.ffnHidden, kv = c.numKvHeads * c.headDim();
  auto name = [&](StringRef s) { return layerName(c, layer, s); };
  FloatAttr eps = b.getF64FloatAttr(c.normEps);
  FloatAttr theta = b.getF64FloatAttr(c.ropeTheta);
  RankedTensorType hT = g.act({batch, seq, h}), kvT = g.act({batch, seq, kv});
  auto linear = [&](Value in, StringRef n, int64_t out, int64_t inF) -> Value {
    return LinearOp::create(b, loc, g.act({batch, seq, out}), in,
                            g.param(name(n), {out, inF}), Value(),
                            /*transpose_weight=*/true);
  };

  Value n1 = RMSNormOp::create(b, loc, hT, x,
                               g.param(name("input_layernorm.weight"), {h}), eps);
  Value q = linear(n1, "self_attn.q_proj.weight", h, h);
  Value k = linear(n1, "self_attn.k_proj.weight", kv, h);
  Value v = linear(n1, "self_attn.v_proj.weight", kv, h);
  q = RoPEOp::create(b, loc, hT, q, b.getI64IntegerAttr(c.numHeads), theta);
  k = RoPEOp::create(b, loc, kvT, k, b.getI64IntegerAttr(c.numKvHeads), theta);
  Value attn = AttentionOp::create(b, loc, hT, q, k, v, c.numHeads,
                                   c.numKvHeads, /*causal=*/true,
                                   /*scale=*/nullptr);
  x = AddOp::create(b, loc, x, linear(attn, "self_attn.o_proj.weight", h, h));

  Value n2 = RMSNormOp::create(
      b, loc, hT, x, g.param(name("post_attention_layernorm.weight"), {h}), eps);
  Value gate = SiluOp::create(b, loc, linear(n2, "mlp.gate_proj.weight", f, h));
  Value up = linear(n2, "mlp.up_proj.weight", f, h);
  Value prod = MulOp::create(b, loc, gate, up);
  return AddOp::create(b, loc, x, linear(prod, "mlp.down_proj.weight", h, f));
}

static llvm::Error optionError(const llvm::Twine &msg) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), msg.str());
}

llvm::Expected<OwningOpRef<ModuleOp>>
mlir::llm::buildModel(MLIRContext &ctx, const ModelConfig &c,
                      const ImportOptions &opts) {
  ctx.loadDialect<LLMDialect, func::FuncDialect>();
  Type floatType;
  if (opts.dtype == "f32")
    floatType = Float32Type::get(&ctx);
  else if (opts.dtype == "bf16")
    floatType = BFloat16Type::get(&ctx);
  else if (opts.dtype == "f16")
    floatType = Float16Type::get(&ctx);
  else
    return optionError("--dtype '" + opts.dtype +
                       "' is not one of f32, bf16, f16");
  int64_t batch = opts.batch;
  int64_t seq = opts.seq.value_or(c.maxPositions);
  int64_t layers = opts.layers.value_or(c.numLayers);
  if (batch <= 0)
    return optionError("--batch must be positive, got " + llvm::Twine(batch));
  if (seq <= 0)
    return optionError("--seq must be positive, got " + llvm::Twine(seq));
  if (layers <= 0)
    return optionError("--layers must be positive, got " + llvm::Twine(layers));
  if (seq > c.maxPositions)
    return optionError("--seq " + llvm::Twine(seq) +
                       " exceeds the model's max positions (" +
                       llvm::Twine(c.maxPositions) + ")");
  if (c.slidingWindow && seq > *c.slidingWindow)
    return optionError("--seq " + llvm::Twine(seq) +
                       " exceeds 'sliding_window' (" +
                       llvm::Twine(*c.slidingWindow) +
                       "): sliding-window attention is not modelled");

  Location loc = NameLoc::get(StringAttr::get(&ctx, c.modelType));
  OwningOpRef<ModuleOp> module = ModuleOp::create(loc);
  GraphBuilder g(ctx, floatType, loc);
  g.initStd = c.initializerRange;
  g.numLayers = layers;
  OpBuilder &b = g.b;
  int64_t h = c.hidden, V = c.vocabSize;
  bool gpt2 = c.family == ModelFamily::GPT2;

  auto idsType = RankedTensorType::get({batch, seq}, b.getI32Type());
  Value ids = g.input("tokens", idsType);
  Value targets = g.input("targets", idsType);
  StringRef embedName = gpt2 ? "wte.weight" : "model.embed_tokens.weight";
  Value wte = g.param(embedName, {V, h});
  Value wpe = gpt2 ? g.param("wpe.weight", {c.maxPositions, h}) : Value();

  Value x = EmbeddingOp::create(b, loc, g.act({batch, seq, h}), ids, wte,
                                StringAttr());
  if (gpt2) {
    Value pos = PositionEmbeddingOp::create(b, loc, g.act({seq, h}), wpe);
    x = AddOp::create(b, loc, x, pos);
  }
  for (int64_t l = 0; l < layers; ++l)
    x = gpt2 ? buildGPT2Block(g, c, l, x, batch, seq)
             : buildLlamaBlock(g, c, l, x, batch, seq);

  RankedTensorType hT = g.act({batch, seq, h});
  FloatAttr eps = b.getF64FloatAttr(c.normEps);
  if (gpt2) {
    Value w = g.param("ln_f.weight", {h});
    Value bias = g.param("ln_f.bias", {h});
    x = LayerNormOp::create(b, loc, hT, x, w, bias, eps);
  } else
    x = RMSNormOp::create(b, loc, hT, x, g.param("model.norm.weight", {h}), eps);
  Value head = c.tieWordEmbeddings ? wte : g.param("lm_head.weight", {V, h});
  Value logits = LinearOp::create(b, loc, g.act({batch, seq, V}), x, head,
                                  Value(), /*transpose_weight=*/true);
  Value loss = CrossEntropyOp::create(
      b, loc, RankedTensorType::get({}, b.getF32Type()), logits, targets,
      StringAttr(), IntegerAttr());
  func::ReturnOp::create(b, loc, loss);

  Block *block = g.block;
  auto fnType = FunctionType::get(&ctx, block->getArgumentTypes(),
                                  {loss.getType()});
  b.setInsertionPointToEnd(module->getBody());
  auto fn = func::FuncOp::create(b, loc, "forward", fnType);
  fn.getBody().push_back(block);
  fn.setAllArgAttrs(g.argAttrs);

  // The model's hyper-parameters, for the planner and later passes.
  SmallVector<NamedAttribute> cfg = {
      b.getNamedAttr("model_type", b.getStringAttr(c.modelType)),
      b.getNamedAttr("vocab_size", b.getI64IntegerAttr(V)),
      b.getNamedAttr("hidden_size", b.getI64IntegerAttr(h)),
      b.getNamedAttr("num_layers", b.getI64IntegerAttr(layers)),
      b.getNamedAttr("num_heads", b.getI64IntegerAttr(c.numHeads)),
      b.getNamedAttr("num_kv_heads", b.getI64IntegerAttr(c.numKvHeads)),
      b.getNamedAttr("ffn_hidden_size", b.getI64IntegerAttr(c.ffnHidden)),
      b.getNamedAttr("max_positions", b.getI64IntegerAttr(c.maxPositions)),
      b.getNamedAttr("batch", b.getI64IntegerAttr(batch)),
      b.getNamedAttr("seq", b.getI64IntegerAttr(seq)),
      b.getNamedAttr("tie_word_embeddings", b.getBoolAttr(c.tieWordEmbeddings)),
  };
  (*module)->setAttr("llm.config", b.getDictionaryAttr(cfg));
  return std::move(module);
}
