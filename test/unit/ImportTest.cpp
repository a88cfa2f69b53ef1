//===- ImportTest.cpp - config.json parsing and validation ----------------===//
#include "llm/Import/HFConfig.h"

#include <gtest/gtest.h>

using namespace mlir::llm;

namespace {

/// The error text of a config that must be rejected.
std::string errorOf(const std::string &json) {
  auto cfg = parseHFConfig(json, "config.json");
  if (cfg)
    return "<accepted>";
  return llvm::toString(cfg.takeError());
}

ModelConfig parsed(const std::string &json) {
  auto cfg = parseHFConfig(json, "config.json");
  EXPECT_TRUE(static_cast<bool>(cfg)) << llvm::toString(cfg.takeError());
  return cfg ? *cfg : ModelConfig();
}

const char *kGPT2 = R"({"model_type": "gpt2", "n_embd": 64, "n_head": 4,
  "n_layer": 2, "n_positions": 32, "vocab_size": 100})";

} // namespace

TEST(HFConfig, GPT2Defaults) {
  ModelConfig c = parsed(kGPT2);
  EXPECT_EQ(c.family, ModelFamily::GPT2);
  EXPECT_EQ(c.ffnHidden, 4 * 64); // n_inner absent
  EXPECT_EQ(c.numKvHeads, 4);
  EXPECT_TRUE(c.tieWordEmbeddings);
  EXPECT_DOUBLE_EQ(c.normEps, 1e-5);
}

TEST(HFConfig, GPT2Aliases) {
  ModelConfig c = parsed(R"({"model_type": "gpt2", "hidden_size": 64,
    "num_attention_heads": 4, "num_hidden_layers": 3,
    "max_position_embeddings": 16, "vocab_size": 10, "n_inner": null,
    "layer_norm_epsilon": 1e-6, "tie_word_embeddings": false})");
  EXPECT_EQ(c.hidden, 64);
  EXPECT_EQ(c.numHeads, 4);
  EXPECT_EQ(c.numLayers, 3);
  EXPECT_EQ(c.maxPositions, 16);
  EXPECT_EQ(c.ffnHidden, 256);
  EXPECT_FALSE(c.tieWordEmbeddings);
  EXPECT_DOUBLE_EQ(c.normEps, 1e-6);
  EXPECT_EQ(parsed(R"({"model_type": "gpt2", "n_embd": 64, "n_head": 4,
    "n_layer": 2, "n_positions": 32, "vocab_size": 100, "n_inner": 100})")
                .ffnHidden,
            100);
}

TEST(HFConfig, LlamaAndMistral) {
  ModelConfig c = parsed(R"({"model_type": "llama", "hidden_size": 128,
    "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
    "intermediate_size": 352, "max_position_embeddings": 64,
    "vocab_size": 256, "rms_norm_eps": 1e-6, "rope_theta": 500000.0,
    "hidden_act": "silu", "rope_scaling": null})");
  EXPECT_EQ(c.family, ModelFamily::Llama);
  EXPECT_EQ(c.numKvHeads, 2);
  EXPECT_EQ(c.headDim(), 32);
  EXPECT_DOUBLE_EQ(c.ropeTheta, 500000.0);
  EXPECT_FALSE(c.tieWordEmbeddings);

  ModelConfig m = parsed(R"({"model_type": "mistral", "hidden_size": 128,
    "num_attention_heads": 4, "num_key_value_heads": 1, "num_hidden_layers": 2,
    "intermediate_size": 352, "max_position_embeddings": 64,
    "vocab_size": 256, "sliding_window": 16})");
  EXPECT_EQ(m.family, ModelFamily::Llama);
  ASSERT_TRUE(m.slidingWindow.has_value());
  EXPECT_EQ(*m.slidingWindow, 16);
  EXPECT_DOUBLE_EQ(m.ropeTheta, 10000.0);
}

TEST(HFConfig, ErrorsNameKeyAndValue) {
  EXPECT_EQ(errorOf("{"), errorOf("{")); // deterministic
  EXPECT_NE(errorOf("{").find("config.json: invalid JSON"), std::string::npos);
  EXPECT_NE(errorOf("[1]").find("expected a JSON object"), std::string::npos);
  EXPECT_NE(errorOf(R"({"n_embd": 64})").find("missing key 'model_type'"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"model_type": "bert", "vocab_size": 3})")
                .find("unknown model_type \"bert\""),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"model_type": "gpt2", "n_embd": 770, "n_head": 12,
    "n_layer": 2, "n_positions": 32, "vocab_size": 100})")
                .find("'n_embd' (770) is not divisible by 'n_head' (12)"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"model_type": "gpt2", "n_embd": 64, "n_head": 4,
    "n_layer": 2, "vocab_size": 100})")
                .find("missing key 'n_positions', 'max_position_embeddings' or "
                      "'n_ctx'"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"model_type": "gpt2", "n_embd": -64, "n_head": 4,
    "n_layer": 2, "n_positions": 32, "vocab_size": 100})")
                .find("key 'n_embd' must be a positive integer, got -64"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"model_type": "gpt2", "n_embd": 64, "n_head": 4.5,
    "n_layer": 2, "n_positions": 32, "vocab_size": 100})")
                .find("key 'n_head' must be a positive integer, got 4.5"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"model_type": "gpt2", "n_embd": 64, "hidden_size": 32,
    "n_head": 4, "n_layer": 2, "n_positions": 32, "vocab_size": 100})")
                .find("keys 'n_embd' (64) and 'hidden_size' (32) disagree"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"model_type": "gpt2", "n_embd": 64, "n_head": 4,
    "n_layer": 2, "n_positions": 32, "vocab_size": 100,
    "activation_function": "relu"})")
                .find("key 'activation_function' = \"relu\" is not supported"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"model_type": "llama", "hidden_size": 128,
    "num_attention_heads": 4, "num_key_value_heads": 3, "num_hidden_layers": 2,
    "intermediate_size": 352, "max_position_embeddings": 64,
    "vocab_size": 256})")
                .find("'num_attention_heads' (4) is not divisible by "
                      "'num_key_value_heads' (3)"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"model_type": "llama", "hidden_size": 128,
    "num_attention_heads": 4, "num_hidden_layers": 2,
    "intermediate_size": 352, "max_position_embeddings": 64,
    "vocab_size": 256, "rope_scaling": {"type": "linear", "factor": 2.0}})")
                .find("key 'rope_scaling' = {\"factor\":2,\"type\":\"linear\"} "
                      "is not supported"),
            std::string::npos);
  EXPECT_NE(errorOf(R"({"model_type": "llama", "hidden_size": 128,
    "num_attention_heads": 4, "num_hidden_layers": 2,
    "intermediate_size": 352, "max_position_embeddings": 64,
    "vocab_size": 256, "tie_word_embeddings": "yes"})")
                .find("key 'tie_word_embeddings' must be true or false"),
            std::string::npos);
}

TEST(HFConfig, BuildRejectsBadOptions) {
  mlir::MLIRContext ctx;
  ModelConfig c = parsed(kGPT2);
  auto errorOfBuild = [&](ImportOptions o) {
    auto m = buildModel(ctx, c, o);
    return m ? std::string("<accepted>") : llvm::toString(m.takeError());
  };
  ImportOptions o;
  o.seq = 33;
  EXPECT_EQ(errorOfBuild(o), "--seq 33 exceeds the model's max positions (32)");
  o = {};
  o.batch = 0;
  EXPECT_EQ(errorOfBuild(o), "--batch must be positive, got 0");
  o = {};
  o.dtype = "f64";
  EXPECT_EQ(errorOfBuild(o), "--dtype 'f64' is not one of f32, bf16, f16");
  o = {};
  o.layers = -1;
  EXPECT_EQ(errorOfBuild(o), "--layers must be positive, got -1");
}
