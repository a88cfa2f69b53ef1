//===- ModelStatsTest.cpp - stats against published counts and formulas ---===//
//
// Expected numbers come from outside the code under test: the published
// parameter counts of GPT-2, GPT-2 medium and Llama 2 7B, and the FLOPs
// formula of Narayanan et al. 2021 (eq. 3, without its recompute term).
//
//===----------------------------------------------------------------------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/Import/HFConfig.h"
#include "llm/LLMDialect.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

using namespace mlir;

namespace {

llm::ModelStats statsFor(const std::string &file, int64_t batch, int64_t seq,
                         std::optional<int64_t> layers = {}) {
  auto cfg = llm::loadHFConfig(std::string(LLM_MODELS_DIR) + "/" + file);
  EXPECT_TRUE(static_cast<bool>(cfg)) << llvm::toString(cfg.takeError());
  MLIRContext ctx;
  llm::ImportOptions opts;
  opts.batch = batch;
  opts.seq = seq;
  opts.layers = layers;
  auto module = llm::buildModel(ctx, *cfg, opts);
  EXPECT_TRUE(static_cast<bool>(module)) << llvm::toString(module.takeError());
  auto fn = llm::getModelFunction(**module);
  EXPECT_TRUE(succeeded(fn));
  auto stats = llm::computeModelStats(*fn);
  EXPECT_TRUE(succeeded(stats));
  return *stats;
}

/// Narayanan et al. 2021, eq. 3 without recompute: 72 B s l h^2 (1 + s/(6h)
/// + V/(12 l h)), evaluated as written in long double.
long double narayanan(long double B, long double s, long double l,
                      long double h, long double V) {
  return 72.0L * B * s * l * h * h *
         (1.0L + s / (6.0L * h) + V / (12.0L * l * h));
}

} // namespace

TEST(ModelStats, PublishedParameterCounts) {
  EXPECT_EQ(statsFor("gpt2.json", 1, 1024).params, 124439808);
  EXPECT_EQ(statsFor("gpt2-medium.json", 1, 1024).params, 354823168);
  EXPECT_EQ(statsFor("llama-2-7b.json", 1, 128).params, 6738415616);
}

TEST(ModelStats, ParamsMatchNarayananEq2ForGPT2) {
  // P = 12 l h^2 (1 + 13/(12h) + (V+s)/(12 l h)), with s the position table
  // size; exact for GPT-2 with tied embeddings and its final layer norm.
  auto p = [](long double l, long double h, long double V, long double s) {
    return 12.0L * l * h * h * (1 + 13.0L / (12 * h) + (V + s) / (12 * l * h)) +
           2 * h; // ln_f weight and bias, which eq. 2 leaves out
  };
  EXPECT_EQ(statsFor("gpt2.json", 1, 64).params,
            static_cast<int64_t>(p(12, 768, 50257, 1024) + 0.5L));
  EXPECT_EQ(statsFor("gpt2-medium.json", 1, 64).params,
            static_cast<int64_t>(p(24, 1024, 50257, 1024) + 0.5L));
}

TEST(ModelStats, FlopsMatchNarayananEq3) {
  struct Case {
    const char *file;
    int64_t B, s, l, h, V;
  } cases[] = {
      {"gpt2.json", 8, 1024, 12, 768, 50257},
      {"gpt2.json", 3, 100, 12, 768, 50257},
      {"gpt2-medium.json", 4, 512, 24, 1024, 50257},
      {"shakespeare-char-gpt.json", 8, 256, 6, 384, 256},
      {"shakespeare-char-gpt.json", 2, 17, 2, 384, 256},
  };
  for (const Case &c : cases) {
    llm::ModelStats s = statsFor(c.file, c.B, c.s, c.l);
    long double expected = narayanan(c.B, c.s, c.l, c.h, c.V);
    EXPECT_EQ(s.flopsPerStep, static_cast<int64_t>(expected + 0.5L))
        << c.file << " B=" << c.B << " s=" << c.s;
    EXPECT_EQ(s.tokensPerStep, c.B * c.s);
    EXPECT_EQ(s.flopsPerStep, 3 * s.forwardMatmulFlops);
  }
}

TEST(ModelStats, LlamaFlopsFollowGeneralFormula) {
  // 6 B s [ l (h (2h + 2 kv d) + 3 h f) + h V ] + 12 B s^2 l h, where kv d is
  // the key/value width under grouped-query attention (docs/design.md).
  auto general = [](int64_t B, int64_t s, int64_t l, int64_t h, int64_t kvw,
                    int64_t f, int64_t V) {
    return 6 * B * s * (l * (h * (2 * h + 2 * kvw) + 3 * h * f) + h * V) +
           12 * B * s * s * l * h;
  };
  // tiny-llama-gqa: h 128, 4 heads of 32, 2 kv heads -> kv width 64.
  EXPECT_EQ(statsFor("tiny-llama-gqa.json", 2, 64).flopsPerStep,
            general(2, 64, 4, 128, 64, 352, 256));
  EXPECT_EQ(statsFor("llama-2-7b.json", 1, 4096).flopsPerStep,
            general(1, 4096, 32, 4096, 4096, 11008, 32000));
}
