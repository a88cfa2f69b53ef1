//===- HFConfig.cpp - parse and validate a Hugging Face config.json -------===//
#include "llm/Import/HFConfig.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>

using namespace mlir;
using namespace mlir::llm;
using llvm::Expected;
using llvm::StringRef;

namespace {

/// Typed access to the keys of one config object; every error names the
/// file, the key and the value.
class ConfigReader {
public:
  ConfigReader(const llvm::json::Object &obj, StringRef file)
      : obj(obj), file(file) {}

  template <typename... Ts>
  llvm::Error error(const char *fmt, Ts &&...vals) const {
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        (file + ": " + llvm::formatv(fmt, std::forward<Ts>(vals)...).str())
            .str());
  }

  /// The first of `keys` that is present and not null, with its name.
  const llvm::json::Value *find(ArrayRef<StringRef> keys,
                                StringRef &found) const {
    for (StringRef k : keys) {
      const llvm::json::Value *v = obj.get(k);
      if (v && v->kind() != llvm::json::Value::Null) {
        found = k;
        return v;
      }
    }
    return nullptr;
  }

  static std::string show(const llvm::json::Value &v) {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << v;
    return s;
  }

  static std::string names(ArrayRef<StringRef> keys) {
    std::string s;
    for (auto [i, k] : llvm::enumerate(keys))
      s += (i ? (i + 1 == keys.size() ? "' or '" : "', '") : "") + k.str();
    return "'" + s + "'";
  }

  /// A positive integer under one of the alias `keys`. Aliases that are all
  /// present must agree. Absent: `fallback`, or an error when there is none.
  Expected<int64_t> positiveInt(ArrayRef<StringRef> keys,
                                std::optional<int64_t> fallback = {}) const {
    std::optional<int64_t> result;
    StringRef resultKey;
    for (StringRef k : keys) {
      const llvm::json::Value *v = obj.get(k);
      if (!v || v->kind() == llvm::json::Value::Null)
        continue;
      std::optional<int64_t> i = v->getAsInteger();
      if (!i || *i <= 0)
        return error("key '{0}' must be a positive integer, got {1}", k,
                     show(*v));
      if (result && *result != *i)
        return error("keys '{0}' ({1}) and '{2}' ({3}) disagree", resultKey,
                     *result, k, *i);
      result = i;
      resultKey = k;
    }
    if (result)
      return *result;
    if (fallback)
      return *fallback;
    return error("missing key {0}", names(keys));
  }

  Expected<double> positiveNumber(ArrayRef<StringRef> keys,
                                  double fallback) const {
    StringRef k;
    const llvm::json::Value *v = find(keys, k);
    if (!v)
      return fallback;
    std::optional<double> d = v->getAsNumber();
    if (!d || !(*d > 0) || !std::isfinite(*d))
      return error("key '{0}' must be a positive number, got {1}", k, show(*v));
    return *d;
  }

  Expected<bool> boolean(StringRef key, bool fallback) const {
    const llvm::json::Value *v = obj.get(key);
    if (!v || v->kind() == llvm::json::Value::Null)
      return fallback;
    std::optional<bool> b = v->getAsBoolean();
    if (!b)
      return error("key '{0}' must be true or false, got {1}", key, show(*v));
    return *b;
  }

  Expected<std::optional<std::string>> string(StringRef key) const {
    const llvm::json::Value *v = obj.get(key);
    if (!v || v->kind() == llvm::json::Value::Null)
      return std::optional<std::string>();
    std::optional<StringRef> s = v->getAsString();
    if (!s)
      return error("key '{0}' must be a string, got {1}", key, show(*v));
    return std::optional<std::string>(s->str());
  }

  /// `key` is absent, null or false: a feature of the architecture that the
  /// graph does not model yet must not be dropped silently.
  llvm::Error unsupportedIfSet(StringRef key, StringRef why) const {
    const llvm::json::Value *v = obj.get(key);
    if (!v || v->kind() == llvm::json::Value::Null)
      return llvm::Error::success();
    if (std::optional<bool> b = v->getAsBoolean(); b && !*b)
      return llvm::Error::success();
    return error("key '{0}' = {1} is not supported: {2}", key, show(*v), why);
  }

  const llvm::json::Object &obj;
  StringRef file;
};

} // namespace

#define TRY_ASSIGN(lhs, expr)                                                  \
  do {                                                                         \
    auto _v = (expr);                                                          \
    if (!_v)                                                                   \
      return _v.takeError();                                                   \
    lhs = *_v;                                                                 \
  } while (0)

#define TRY(expr)                                                              \
  do {                                                                         \
    if (llvm::Error _e = (expr))                                               \
      return std::move(_e);                                                    \
  } while (0)

static Expected<ModelConfig> parseGPT2(const ConfigReader &r,
                                       ModelConfig c) {
  c.family = ModelFamily::GPT2;
  TRY_ASSIGN(c.hidden, r.positiveInt({"n_embd", "hidden_size"}));
  TRY_ASSIGN(c.numHeads, r.positiveInt({"n_head", "num_attention_heads"}));
  TRY_ASSIGN(c.numLayers, r.positiveInt({"n_layer", "num_hidden_layers"}));
  TRY_ASSIGN(c.maxPositions,
             r.positiveInt({"n_positions", "max_position_embeddings", "n_ctx"}));
  TRY_ASSIGN(c.ffnHidden, r.positiveInt({"n_inner"}, 4 * c.hidden));
  c.numKvHeads = c.numHeads;
  TRY_ASSIGN(c.normEps, r.positiveNumber({"layer_norm_epsilon"}, 1e-5));
  TRY_ASSIGN(c.tieWordEmbeddings, r.boolean("tie_word_embeddings", true));
  std::optional<std::string> act;
  TRY_ASSIGN(act, r.string("activation_function"));
  std::string a = act.value_or("gelu_new");
  if (a != "gelu_new" && a != "gelu_pytorch_tanh" && a != "gelu_fast")
    return r.error("key 'activation_function' = \"{0}\" is not supported "
                   "(supported: gelu_new, gelu_pytorch_tanh, gelu_fast, all "
                   "the tanh approximation of GELU)",
                   a);
  c.activation = "gelu_new";
  TRY(r.unsupportedIfSet("scale_attn_by_inverse_layer_idx",
                         "attention scaled by 1/layer is not modelled"));
  TRY(r.unsupportedIfSet("add_cross_attention",
                         "only decoder-only models are imported"));
  std::optional<bool> scale;
  TRY_ASSIGN(scale, r.boolean("scale_attn_weights", true));
  if (!*scale)
    return r.error("key 'scale_attn_weights' = false is not supported: "
                   "attention is scaled by 1/sqrt(head_dim)");
  return c;
}

static Expected<ModelConfig> parseLlama(const ConfigReader &r,
                                        ModelConfig c) {
  c.family = ModelFamily::Llama;
  TRY_ASSIGN(c.hidden, r.positiveInt({"hidden_size"}));
  TRY_ASSIGN(c.numHeads, r.positiveInt({"num_attention_heads"}));
  TRY_ASSIGN(c.numLayers, r.positiveInt({"num_hidden_layers"}));
  TRY_ASSIGN(c.maxPositions, r.positiveInt({"max_position_embeddings"}));
  TRY_ASSIGN(c.ffnHidden, r.positiveInt({"intermediate_size"}));
  TRY_ASSIGN(c.numKvHeads,
             r.positiveInt({"num_key_value_heads"}, c.numHeads));
  TRY_ASSIGN(c.normEps, r.positiveNumber({"rms_norm_eps"}, 1e-6));
  TRY_ASSIGN(c.ropeTheta, r.positiveNumber({"rope_theta"}, 10000.0));
  TRY_ASSIGN(c.tieWordEmbeddings, r.boolean("tie_word_embeddings", false));
  std::optional<std::string> act;
  TRY_ASSIGN(act, r.string("hidden_act"));
  if (act.value_or("silu") != "silu")
    return r.error("key 'hidden_act' = \"{0}\" is not supported (supported: "
                   "silu)",
                   *act);
  c.activation = "silu";
  TRY(r.unsupportedIfSet("rope_scaling",
                         "only unscaled rotary embeddings are modelled"));
  TRY(r.unsupportedIfSet("attention_bias",
                         "q/k/v/o projections are imported without bias"));
  TRY(r.unsupportedIfSet("mlp_bias", "MLP projections are imported without "
                                     "bias"));
  if (const llvm::json::Value *v = r.obj.get("sliding_window");
      v && v->kind() != llvm::json::Value::Null) {
    int64_t window;
    TRY_ASSIGN(window, r.positiveInt({"sliding_window"}));
    c.slidingWindow = window;
  }
  if (const llvm::json::Value *v = r.obj.get("head_dim");
      v && v->kind() != llvm::json::Value::Null) {
    int64_t headDim;
    TRY_ASSIGN(headDim, r.positiveInt({"head_dim"}));
    if (c.numHeads > 0 && headDim * c.numHeads != c.hidden)
      return r.error("key 'head_dim' ({0}) times 'num_attention_heads' ({1}) "
                     "must equal 'hidden_size' ({2})",
                     headDim, c.numHeads, c.hidden);
  }
  return c;
}

Expected<ModelConfig> mlir::llm::parseHFConfig(StringRef text,
                                               StringRef fileName) {
  Expected<llvm::json::Value> json = llvm::json::parse(text);
  if (!json)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        (fileName + ": invalid JSON: " + llvm::toString(json.takeError()))
            .str());
  const llvm::json::Object *obj = json->getAsObject();
  if (!obj)
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        (fileName + ": expected a JSON object at the top level").str());
  ConfigReader r(*obj, fileName);

  std::optional<std::string> modelType;
  TRY_ASSIGN(modelType, r.string("model_type"));
  if (!modelType)
    return r.error("missing key 'model_type' (supported: gpt2, llama, "
                   "mistral)");
  ModelConfig c;
  c.modelType = *modelType;
  TRY_ASSIGN(c.initializerRange, r.positiveNumber({"initializer_range"}, 0.02));
  TRY_ASSIGN(c.vocabSize, r.positiveInt({"vocab_size"}));

  Expected<ModelConfig> parsed = [&]() -> Expected<ModelConfig> {
    if (*modelType == "gpt2")
      return parseGPT2(r, c);
    if (*modelType == "llama" || *modelType == "mistral")
      return parseLlama(r, c);
    return r.error("unknown model_type \"{0}\" (supported: gpt2, llama, "
                   "mistral)",
                   *modelType);
  }();
  if (!parsed)
    return parsed.takeError();
  c = *parsed;

  // Cross-key consistency.
  StringRef hiddenKey = c.family == ModelFamily::GPT2 ? "n_embd" : "hidden_size";
  StringRef headsKey =
      c.family == ModelFamily::GPT2 ? "n_head" : "num_attention_heads";
  if (c.hidden % c.numHeads != 0)
    return r.error("'{0}' ({1}) is not divisible by '{2}' ({3})", hiddenKey,
                   c.hidden, headsKey, c.numHeads);
  if (c.numHeads % c.numKvHeads != 0)
    return r.error("'num_attention_heads' ({0}) is not divisible by "
                   "'num_key_value_heads' ({1})",
                   c.numHeads, c.numKvHeads);
  if (c.family == ModelFamily::Llama && c.headDim() % 2 != 0)
    return r.error("head dimension '{0}' / '{1}' = {2} must be even for "
                   "rotary embeddings",
                   hiddenKey, headsKey, c.headDim());
  return c;
}

Expected<ModelConfig> mlir::llm::loadHFConfig(StringRef path) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> buf =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf)
    return llvm::createStringError(buf.getError(),
                                   (path + ": cannot read: " +
                                    buf.getError().message())
                                       .str());
  return parseHFConfig((*buf)->getBuffer(), path);
}
