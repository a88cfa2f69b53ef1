//===- PlannerTest.cpp - cost model and search against published figures -===//
//
// Expected numbers come from outside the code under test: the ZeRO paper's
// model-state formulas and Korthikanti et al.'s activation table
// (shared/reference/formulas.md), the Megatron-LM 2021 calibration rows,
// and a brute-force enumeration of the same cost model.
//
//===----------------------------------------------------------------------===//
#include "llm/Import/HFConfig.h"
#include "llm/LLMDialect.h"
#include "llm/Analysis/ModelStats.h"
#include "llm/Planner/Planner.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace mlir;
using namespace mlir::llm;

namespace {

/// A GPT of the given shape imported as the compiler would.
ModelProfile gpt(int64_t h, int64_t heads, int64_t layers, int64_t batch,
                 int64_t seq, const char *dtype = "bf16",
                 int64_t vocab = 51200, const char *compute = nullptr) {
  std::string json = "{\"model_type\": \"gpt2\", \"n_embd\": " +
                     std::to_string(h) + ", \"n_head\": " +
                     std::to_string(heads) + ", \"n_layer\": " +
                     std::to_string(layers) + ", \"n_positions\": " +
                     std::to_string(seq) + ", \"vocab_size\": " +
                     std::to_string(vocab) + "}";
  auto cfg = parseHFConfig(json, "test.json");
  EXPECT_TRUE(static_cast<bool>(cfg));
  MLIRContext ctx;
  ImportOptions o;
  o.batch = batch;
  o.seq = seq;
  o.dtype = dtype;
  auto module = buildModel(ctx, *cfg, o);
  EXPECT_TRUE(static_cast<bool>(module));
  // The products' precision of an f32-stored model (llm-f32-storage's).
  if (compute)
    (**module)->setAttr("llm.compute_precision", StringAttr::get(&ctx, compute));
  auto prof = profileModel(**module);
  EXPECT_TRUE(succeeded(prof));
  return *prof;
}

Cluster cluster(const std::string &name) {
  auto c = loadCluster(std::string(LLM_CLUSTERS_DIR) + "/" + name);
  EXPECT_TRUE(static_cast<bool>(c)) << llvm::toString(c.takeError());
  return *c;
}

/// An H100 cluster starved of memory bandwidth (every op memory-bound) and
/// one rank's plan with micro-batches of `batch`.
std::pair<Cluster, PlanConfig> starved(int64_t batch) {
  Cluster cl = cluster("dgx-h100-80g.json");
  cl.memoryBwGBps = 1e-3;
  PlanConfig c;
  c.mbs = batch;
  return {cl, c};
}

} // namespace

TEST(PlannerMemory, ZeroStagesMatchRajbhandari) {
  // Mixed precision: 16 bytes per parameter (2 + 2 + 12). With dp = N_d and
  // no model parallelism every device holds all P parameters:
  // ZeRO-0 16P, ZeRO-1 4P + 12P/Nd, ZeRO-2 2P + 14P/Nd, ZeRO-3 16P/Nd.
  ModelProfile m = gpt(1024, 16, 4, 64, 256);
  Cluster cl = cluster("dgx-a100-80g.json");
  double P = m.params;
  double Nd = 8;
  double expected[] = {16 * P, 4 * P + 12 * P / Nd, 2 * P + 14 * P / Nd,
                       16 * P / Nd};
  for (int zero = 0; zero <= 3; ++zero) {
    PlanConfig c;
    c.dp = 8;
    c.zero = zero;
    Prediction p = evaluatePlan(m, cl, 8, c);
    ASSERT_TRUE(p.feasible) << p.infeasibleReason;
    EXPECT_NEAR(p.weights + p.grads + p.optimizerState, expected[zero],
                1e-9 * expected[zero])
        << "ZeRO-" << zero;
  }
}

TEST(PlannerMemory, ActivationsMatchKorthikanti) {
  // Table 2 of Korthikanti et al. 2022, bytes per layer for s, b, h, a, t,
  // with Megatron's dropout and materialized softmax accounted for.
  const double s = 2048, b = 2, h = 4096, a = 32;
  ModelProfile m = gpt(4096, 32, 2, 4, 2048);
  m.dropout = true;
  m.materializedSoftmax = true;
  auto acts = [&](int64_t tp, bool sp, Remat remat) {
    PlanConfig c;
    c.tp = tp;
    c.sp = sp;
    c.remat = remat;
    c.mbs = static_cast<int64_t>(b);
    return activationBytesPerLayer(m, c);
  };
  double sbh = s * b * h;
  EXPECT_DOUBLE_EQ(acts(1, false, Remat::None), sbh * (34 + 5 * a * s / h));
  for (double t : {2.0, 4.0, 8.0}) {
    int64_t tp = static_cast<int64_t>(t);
    EXPECT_DOUBLE_EQ(acts(tp, false, Remat::None),
                     sbh * (10 + 24 / t + 5 * a * s / (h * t)))
        << "TP " << t;
    EXPECT_DOUBLE_EQ(acts(tp, true, Remat::None),
                     sbh * (34 / t + 5 * a * s / (h * t)))
        << "TP+SP " << t;
    EXPECT_DOUBLE_EQ(acts(tp, true, Remat::Selective), 34 * sbh / t)
        << "TP+SP+selective " << t;
  }
  EXPECT_DOUBLE_EQ(acts(1, false, Remat::Full), 2 * sbh);

  // Our own graph (fused attention, no dropout): 32 sbh without TP.
  m.dropout = m.materializedSoftmax = false;
  EXPECT_DOUBLE_EQ(acts(1, false, Remat::None), 32 * sbh);

  // The kept log-sum-exp (--keep-attention-lse): one fp32 value per head
  // and position, split by TP; none where the attention is recomputed.
  m.keepAttentionLse = true;
  EXPECT_DOUBLE_EQ(acts(1, false, Remat::None), 32 * sbh + 4 * a * s * b);
  EXPECT_DOUBLE_EQ(acts(4, true, Remat::None), 32 * sbh / 4 + a * s * b);
  EXPECT_DOUBLE_EQ(acts(4, true, Remat::Selective), 32 * sbh / 4);
  EXPECT_DOUBLE_EQ(acts(1, false, Remat::Full), 2 * sbh);
}

TEST(PlannerMemory, SixteenBitArenaOnOneDevice) {
  // The CUDA runtime's arena with 16-bit tensors at half their size (one
  // device, bf16 products, f32 storage). A GPT-2 layer keeps 16 s h
  // values for its backward (the table's 32 sbh bytes at 2 bytes): the
  // residual stream before each norm (2, f32: adds write it) and 14 the
  // runtime stores 16-bit: both norms' outputs, q, k, v, attention's
  // output, the first MLP linear's and GELU's outputs (1 + 1 + 3 + 1 + 4 +
  // 4). At 4 bytes: 64 sbh, and 2 x 4 + 14 x 2 = 36 sbh with the arena.
  const double s = 256, b = 2, h = 256;
  ModelProfile m = gpt(256, 4, 2, 2, 256, "f32", 51200, "bf16");
  m.storage16 = true;
  PlanConfig one;
  one.mbs = static_cast<int64_t>(b);
  const double sbh = s * b * h;
  EXPECT_DOUBLE_EQ(activationBytesPerLayer(m, one), 64 * sbh);
  m.arena16 = true;
  EXPECT_DOUBLE_EQ(activationBytesPerLayer(m, one), 36 * sbh);
  // Several devices are counted at f32 sizes (an upper bound: the
  // runtime saves less there, and not by op kind).
  PlanConfig two = one;
  two.dp = 2;
  EXPECT_DOUBLE_EQ(activationBytesPerLayer(m, two), 64 * sbh);
  PlanConfig tp2 = one;
  tp2.tp = 2;
  EXPECT_DOUBLE_EQ(activationBytesPerLayer(m, tp2), activationBytesPerLayer(
      [&] { ModelProfile f = m; f.arena16 = false; return f; }(), tp2));
  // The head: the final norm's output and the logits (16-bit, 4 of 8
  // bytes an element) and their gradient, s x vocab each, half as well.
  Cluster cl = cluster("dgx-h100-80g.json");
  const Prediction whole = [&] {
    ModelProfile f = m;
    f.arena16 = false;
    return evaluatePlan(f, cl, 1, one);
  }();
  const Prediction half = evaluatePlan(m, cl, 1, one);
  ASSERT_TRUE(whole.feasible && half.feasible);
  const double V = 51200;
  EXPECT_DOUBLE_EQ(whole.activations - half.activations,
                   2 * 28 * sbh + 0.5 * 4 * (s * b * h + s * b * V));
  EXPECT_DOUBLE_EQ(whole.temporaries - half.temporaries, 0.5 * 2 * s * b * V * 4);
  // The GEMM weights' 16-bit copies: 2 bytes a parameter, one device.
  ModelProfile w = m;
  w.weightCopies16 = true;
  EXPECT_DOUBLE_EQ(evaluatePlan(w, cl, 1, one).weights - half.weights, 2 * m.params);
  two.mbs = 1;
  EXPECT_DOUBLE_EQ(evaluatePlan(w, cl, 2, two).weights, evaluatePlan(m, cl, 2, two).weights);
  // fp16 products: attention keeps f32 q, k, v and output (4 s h values).
  ModelProfile f16 = gpt(256, 4, 2, 2, 256, "f32", 51200, "fp16");
  f16.storage16 = f16.arena16 = true;
  EXPECT_DOUBLE_EQ(activationBytesPerLayer(f16, one), 44 * sbh);
  // A 16-bit IR (the arena's sizes are already the values'): unchanged.
  ModelProfile b16 = gpt(256, 4, 2, 2, 256, "bf16");
  b16.storage16 = b16.arena16 = true;
  EXPECT_DOUBLE_EQ(activationBytesPerLayer(b16, one), 32 * sbh);
}

TEST(PlannerSearch, PrunedSearchEqualsBruteForce) {
  Cluster cl = cluster("dgx-a100-80g.json");
  struct Case {
    int64_t h, heads, layers, batch, world;
  } cases[] = {{1024, 16, 8, 32, 8}, {2048, 16, 12, 64, 16},
               {4096, 32, 16, 64, 32}, {768, 12, 6, 16, 4}};
  for (const Case &k : cases) {
    ModelProfile m = gpt(k.h, k.heads, k.layers, k.batch, 1024);
    SearchResult fast = searchPlans(m, cl, k.world, PlanSpec());
    SearchResult brute = searchPlans(m, cl, k.world, PlanSpec(), true);
    ASSERT_TRUE(fast.found);
    ASSERT_TRUE(brute.found);
    EXPECT_DOUBLE_EQ(fast.best.prediction.stepTime,
                     brute.best.prediction.stepTime)
        << "h=" << k.h << " world=" << k.world;
    EXPECT_LE(fast.evaluated, brute.evaluated);
  }
}

TEST(PlannerCalibration, MegatronRowsWithinTenPercent) {
  // shared/reference/megatron-2021-calibration.json: published plan forced
  // (tp, pp, dp; full recompute, interleaved 1F1B when pipelined), the
  // planner fills micro-batch size and virtual stages. TFLOP/s per GPU with
  // the paper's eq. 3: F = 96 B s l h^2 (1 + s/(6h) + V/(16 l h)).
  struct Row {
    int64_t h, heads, layers, tp, pp, dp, gpus, batch;
    double tflops;
  } rows[] = {{2304, 24, 24, 1, 1, 32, 32, 512, 137},
              {4096, 32, 36, 4, 1, 32, 128, 512, 142},
              {8192, 64, 48, 8, 2, 32, 512, 1536, 138},
              {12288, 96, 80, 8, 8, 24, 1536, 2304, 148}};
  Cluster cl = cluster("dgx-a100-80g.json");
  for (const Row &r : rows) {
    ModelProfile m = gpt(r.h, r.heads, r.layers, r.batch, 2048);
    PlanSpec spec;
    spec.tp = r.tp;
    spec.pp = r.pp;
    spec.dp = r.dp;
    spec.remat = Remat::Full;
    spec.zero = 0;
    spec.sp = false;
    spec.schedule = r.pp > 1 ? Schedule::Interleaved : Schedule::OneFOneB;
    SearchResult published = searchPlans(m, cl, r.gpus, spec);
    ASSERT_TRUE(published.found) << published.whyNone;
    double s = 2048, h = r.h, l = r.layers, V = 51200, B = r.batch;
    double F = 96 * B * s * l * h * h * (1 + s / (6 * h) + V / (16 * l * h));
    double tflops =
        F / (published.best.prediction.stepTime * r.gpus) / 1e12;
    EXPECT_NEAR(tflops / r.tflops, 1.0, 0.10)
        << r.layers << " layers: predicted " << tflops << " TFLOP/s, "
        << "published " << r.tflops;

    // The automatic plan is predicted at least as fast.
    SearchResult autoPlan = searchPlans(m, cl, r.gpus, PlanSpec());
    ASSERT_TRUE(autoPlan.found);
    EXPECT_LE(autoPlan.best.prediction.stepTime,
              published.best.prediction.stepTime);
  }
}

TEST(PlannerSearch, ExplainsRejections) {
  Cluster cl = cluster("dgx-a100-80g.json");
  // 32 heads: tp=3 cannot split them.
  ModelProfile m = gpt(4096, 32, 8, 24, 1024);
  PlanSpec spec;
  spec.tp = 3;
  SearchResult r = searchPlans(m, cl, 24, spec);
  EXPECT_FALSE(r.found);
  EXPECT_EQ(r.whyNone, "tp=3 does not divide 32 heads");

  // 48 heads split 6 ways, but 6 ranks of 8-GPU nodes: the second group
  // would span two nodes.
  ModelProfile m48 = gpt(6144, 48, 8, 24, 1024);
  PlanSpec six;
  six.tp = 6;
  SearchResult r6 = searchPlans(m48, cl, 48, six);
  EXPECT_FALSE(r6.found);
  EXPECT_EQ(r6.whyNone, "tp=6 does not divide the 8 devices of a node (a "
                        "tensor-parallel group would span two nodes)");

  // A model that does not fit one device: the reason names both sizes.
  ModelProfile big = gpt(8192, 64, 48, 8, 2048);
  PlanSpec one;
  one.tp = 1;
  one.pp = 1;
  SearchResult r2 = searchPlans(big, cl, 1, one);
  EXPECT_FALSE(r2.found);
  EXPECT_NE(r2.whyNone.find("GiB per device, has 80"), std::string::npos)
      << r2.whyNone;

  // Alternatives carry their reasons.
  SearchResult r3 = searchPlans(m, cl, 8, PlanSpec());
  ASSERT_TRUE(r3.found);
  ASSERT_FALSE(r3.alternatives.empty());
  for (const PlanCandidate &a : r3.alternatives)
    EXPECT_FALSE(a.reason.empty());
}

TEST(PlannerInput, ClusterAndSpecErrors) {
  auto err = [](const char *json) {
    auto c = parseCluster(json, "c.json");
    return c ? std::string("<ok>") : llvm::toString(c.takeError());
  };
  EXPECT_EQ(err("{\"name\": \"x\", \"nodes\": 1}"),
            "c.json: missing key 'devices_per_node'");
  EXPECT_EQ(err("{\"name\": \"x\", \"nodes\": 1, \"devices_per_node\": 8, "
                "\"device\": {\"peak_tflops\": {\"bf16\": 312}, "
                "\"memory_gib\": -80, \"memory_bw_gbps\": 2039}}"),
            "c.json: key 'device.memory_gib' must be a positive number");
  EXPECT_EQ(err("{\"name\": \"x\", \"nodes\": 1, \"devices_per_node\": 8, "
                "\"device\": {\"peak_tflops\": {\"bf16\": 312}, "
                "\"memory_gib\": 80, \"memory_bw_gbps\": 2039}, \"links\": "
                "{\"intra_node\": {\"bw_gbps\": 300, \"latency_us\": 3}}}"),
            "c.json: missing key 'links.inter_node'");
  auto spec = [](const char *s) {
    auto p = parsePlanSpec(s);
    return p ? std::string("<ok>") : llvm::toString(p.takeError());
  };
  EXPECT_EQ(spec("tp=2,pp=4,remat=full,schedule=interleaved,vpp=2,sp=1"), "<ok>");
  EXPECT_EQ(spec("tp=two"), "--plan: tp=two: expected an integer >= 1");
  EXPECT_EQ(spec("zero=5"), "--plan: zero=5: expected 0-3");
  EXPECT_EQ(spec("remat=some"),
            "--plan: remat=some: expected none, selective, full, budget or budget:K");
  EXPECT_EQ(spec("fsdp=1"), "--plan: unknown key 'fsdp' (keys: dp, tp, pp, "
                            "vpp, sp, zero, remat, mbs, mb, schedule)");
}

TEST(PlannerInput, VocabularySplitsAsThePartitionerPadsIt) {
  // ceil(V / tp) rows a rank, unless a rank would hold none of the model's.
  EXPECT_EQ(vocabRowsPerRank(256, 4), 64);
  EXPECT_EQ(vocabRowsPerRank(251, 2), 126);
  EXPECT_EQ(vocabRowsPerRank(50257, 8), 6283);
  EXPECT_EQ(vocabRowsPerRank(7, 4), 2);
  EXPECT_EQ(vocabRowsPerRank(5, 4), 0);
  EXPECT_EQ(vocabRowsPerRank(4, 3), 0);
  EXPECT_EQ(vocabRowsPerRank(4, 1), 4);
}

TEST(PlannerInput, VocabularyPadsToTheAlignment) {
  // roundUp(ceil(V / tp), align) rows a rank = roundUp(V, align x tp) / tp
  // (Megatron's --make-vocab-size-divisible-by): GPT-2's 50257 pads to
  // 50304 on one rank (128 x 393) and to 8 x 6400 = 51200 on eight.
  EXPECT_EQ(vocabRowsPerRank(50257, 1, 128), 50304);
  EXPECT_EQ(vocabRowsPerRank(50257, 2, 128), 25216);
  EXPECT_EQ(vocabRowsPerRank(50257, 8, 128), 6400);
  EXPECT_EQ(vocabRowsPerRank(251, 1, 64), 256);
  EXPECT_EQ(vocabRowsPerRank(251, 2, 64), 128);
  EXPECT_EQ(vocabRowsPerRank(251, 3, 64), 0); // 3 x 128: the third holds none
  // Already a multiple: unchanged, as without an alignment.
  EXPECT_EQ(vocabRowsPerRank(51200, 8, 128), 6400);
  EXPECT_EQ(vocabRowsPerRank(256, 2, 128), 128);
  EXPECT_EQ(vocabRowsPerRank(256, 1, 128), 256);
  EXPECT_EQ(vocabRowsPerRank(251, 2, 1), vocabRowsPerRank(251, 2));
  // One rank always holds the model's vocabulary, padded; several ranks
  // need each to hold some of it: 251 in 3 or 4 x 128 leaves the last
  // none.
  EXPECT_EQ(vocabRowsPerRank(4, 1, 128), 128);
  EXPECT_EQ(vocabRowsPerRank(251, 4, 64), 64);
  EXPECT_EQ(vocabRowsPerRank(251, 4, 128), 0);
  EXPECT_EQ(vocabRowsPerRank(4, 2, 128), 0);
  EXPECT_EQ(vocabRowsPerRank(251, 1, 0), 0);
}

TEST(PlannerInput, PlansTheVocabularyAsTheExecutablePadsIt) {
  // --vocab-align 128 on one rank: GPT-2's table is [50304, 768], 47 x 768
  // weights more than the model's (each costed at the bytes a weight
  // costs without padding).
  ModelProfile m = gpt(768, 12, 2, 8, 1024, "bf16", 50257);
  Cluster cl = cluster("dgx-h100-80g.json");
  PlanConfig c;
  Prediction plain = evaluatePlan(m, cl, 1, c);
  m.vocabAlign = 128;
  Prediction padded = evaluatePlan(m, cl, 1, c);
  ASSERT_TRUE(plain.feasible && padded.feasible);
  EXPECT_NEAR(padded.weights - plain.weights, 47.0 * 768 * plain.weights / m.params,
              1e-6 * plain.weights);
  // Sequence parallelism needs every rank to hold some of the vocabulary:
  // 251 on tp=4 in slices of 64 rows pads to 256; in slices of 128 (4 x
  // 128) the last would hold none.
  ModelProfile v = gpt(512, 8, 2, 8, 256, "bf16", 251);
  PlanConfig sp;
  sp.tp = 4;
  sp.sp = true;
  v.vocabAlign = 64;
  EXPECT_EQ(checkPlan(v, cl, 4, sp), "");
  v.vocabAlign = 128;
  EXPECT_EQ(checkPlan(v, cl, 4, sp),
            "sp needs the vocabulary-parallel LM head, and a vocabulary of 251 "
            "does not pad into tp=4 slices of a multiple of 128 rows that "
            "each hold some of it");
}

TEST(PlannerInput, RanksShareACpuNode) {
  // Two cores, shared by the ranks: one rank runs two threads at both
  // cores' rate and memory; four time-share them.
  const char *json =
      "{\"name\": \"cpu\", \"nodes\": 1, \"devices_per_node\": 2, "
      "\"ranks_share_node\": true, \"device\": {\"peak_tflops\": {\"fp32\": 0.2}, "
      "\"memory_gib\": 12, \"memory_bw_gbps\": 14}, \"links\": {\"intra_node\": "
      "{\"bw_gbps\": 8, \"latency_us\": 1}, \"inter_node\": {\"bw_gbps\": 8, \"latency_us\": 1}}, "
      "\"efficiency\": {\"compute\": 0.64, \"gemm_flops_half\": 32}}";
  auto c = parseCluster(json, "cpu.json");
  ASSERT_TRUE(static_cast<bool>(c)) << llvm::toString(c.takeError());
  EXPECT_TRUE(c->ranksShareNode);
  EXPECT_DOUBLE_EQ(c->efficiency.gemmFlopsHalf, 32);
  Cluster one = c->sharedBy(1), four = c->sharedBy(4);
  EXPECT_EQ(one.devices(), 1);
  EXPECT_DOUBLE_EQ(*one.peak("fp32"), 0.4);
  EXPECT_DOUBLE_EQ(one.memoryGiB, 24);
  EXPECT_DOUBLE_EQ(one.memoryBwGBps, 28);
  EXPECT_DOUBLE_EQ(one.threadsPerRank, 2);
  EXPECT_EQ(four.devices(), 4);
  EXPECT_DOUBLE_EQ(*four.peak("fp32"), 0.1);
  EXPECT_DOUBLE_EQ(four.threadsPerRank, 1);
  // A cluster of GPUs (one rank a device) is what it says at any world.
  Cluster gpus = cluster("dgx-a100-80g.json");
  EXPECT_DOUBLE_EQ(*gpus.sharedBy(4).peak("bf16"), *gpus.peak("bf16"));
  auto bad = parseCluster(
      "{\"name\": \"x\", \"nodes\": 1, \"devices_per_node\": 2, "
      "\"ranks_share_node\": 1, \"device\": {\"peak_tflops\": {\"fp32\": 1}, "
      "\"memory_gib\": 1, \"memory_bw_gbps\": 1}, \"links\": {\"intra_node\": "
      "{\"bw_gbps\": 1, \"latency_us\": 1}, \"inter_node\": {\"bw_gbps\": 1, \"latency_us\": 1}}}",
      "x.json");
  ASSERT_FALSE(static_cast<bool>(bad));
  EXPECT_EQ(llvm::toString(bad.takeError()),
            "x.json: key 'ranks_share_node' must be true or false");
}

TEST(PlannerCost, AttentionEfficiency) {
  // efficiency.attention prices the attention core alone: at half the
  // compute efficiency each layer's core costs once more its time at the
  // compute rate, forward and backward (2x): 3 x 4 b s^2 h FLOPs a layer
  // (Megatron's count: the full s x s products).
  const int64_t h = 768, heads = 12, layers = 2, batch = 8, seq = 1024;
  ModelProfile m = gpt(h, heads, layers, batch, seq);
  Cluster cl = cluster("dgx-h100-80g.json");
  PlanConfig c;
  c.mbs = batch;
  Prediction base = evaluatePlan(m, cl, 1, c);
  ASSERT_TRUE(base.feasible) << base.infeasibleReason;
  cl.efficiency.attention = cl.efficiency.compute;
  EXPECT_NEAR(evaluatePlan(m, cl, 1, c).stepTime, base.stepTime, 1e-12);
  cl.efficiency.attention = cl.efficiency.compute / 2;
  double rate = *cl.peak("bf16") * 1e12 * cl.efficiency.compute;
  double core = 3.0 * layers * 4.0 * batch * seq * seq * h / rate;
  EXPECT_NEAR(evaluatePlan(m, cl, 1, c).stepTime, base.stepTime + core,
              1e-9 * base.stepTime);
  auto bad = parseCluster(
      "{\"name\": \"x\", \"nodes\": 1, \"devices_per_node\": 1, "
      "\"device\": {\"peak_tflops\": {\"bf16\": 1}, \"memory_gib\": 1, "
      "\"memory_bw_gbps\": 1}, \"links\": {\"intra_node\": {\"bw_gbps\": 1, "
      "\"latency_us\": 1}, \"inter_node\": {\"bw_gbps\": 1, \"latency_us\": 1}}, "
      "\"efficiency\": {\"attention\": 0}}",
      "x.json");
  ASSERT_FALSE(static_cast<bool>(bad));
  EXPECT_EQ(llvm::toString(bad.takeError()),
            "x.json: key 'efficiency.attention' must be a number in (0, 1]");
}

TEST(PlannerSearch, StageBoundariesWeighTheHead) {
  Cluster cl = cluster("dgx-a100-80g.json");
  PlanConfig c;
  c.pp = 4;
  c.dp = 2;
  c.mbs = 1;
  // A small vocabulary: 16 layers in four equal stages.
  ModelProfile small = gpt(2048, 16, 16, 16, 1024, "bf16", 256);
  Prediction p = evaluatePlan(small, cl, 8, c);
  ASSERT_TRUE(p.feasible) << p.infeasibleReason;
  std::vector<std::pair<int64_t, int64_t>> even = {{0, 4}, {4, 8}, {8, 12}, {12, 16}};
  EXPECT_EQ(p.stages, even);
  // A 256k vocabulary: the LM head costs several layers, so the last stage
  // takes fewer layers, and every stage keeps at least one.
  ModelProfile big = gpt(2048, 16, 16, 16, 1024, "bf16", 256000);
  Prediction q = evaluatePlan(big, cl, 8, c);
  ASSERT_TRUE(q.feasible) << q.infeasibleReason;
  ASSERT_EQ(q.stages.size(), 4u);
  EXPECT_EQ(q.stages.front().first, 0);
  EXPECT_EQ(q.stages.back().second, 16);
  int64_t last = q.stages.back().second - q.stages.back().first;
  int64_t middle = q.stages[1].second - q.stages[1].first;
  EXPECT_LT(last, middle);
  for (auto [b, e] : q.stages)
    EXPECT_GE(e - b, 1);
}

TEST(PlannerCost, SixteenBitStorageOfTheCudaRuntime) {
  // With the CUDA runtime's 16-bit storage the memory-bound kernels move
  // fewer bytes than the f32 IR says: per op kind, norms 6 of 8 bytes an
  // element, GELU (in the GEMM's epilogue) a quarter, the loss, the
  // linears' activations and (bf16 products) attention half, residual adds
  // 10 of 12, the rest all. On a cluster so
  // starved of bandwidth that every op is memory-bound, the step shrinks
  // by 3 x (forward and backward) the bytes saved over the bandwidth.
  const int64_t layers = 2, batch = 4;
  ModelProfile m = gpt(256, 4, layers, batch, 128, "f32");
  ASSERT_EQ(m.elemBytes, 4);
  m.computePrecision = "bf16";
  auto [cl, c] = starved(batch);
  Prediction base = evaluatePlan(m, cl, 1, c);
  ASSERT_TRUE(base.feasible) << base.infeasibleReason;
  auto factor = [](const std::string &op) {
    if (op == "layer_norm" || op == "rms_norm")
      return 0.75;
    if (op == "gelu") // in the GEMM's epilogue: its 16-bit write left
      return 0.25;
    if (op == "silu" || op == "cross_entropy" || op == "linear")
      return 0.5;
    if (op == "attention") // q, k, v and the output: bf16 products only
      return 0.5;
    return op == "add" ? 10.0 / 12.0 : 1.0;
  };
  double saved = 0; // bytes a step, per sequence
  for (const OpProfile &op : m.pre.ops)
    saved += (1 - factor(op.name)) * op.actBytes;
  for (const OpProfile &op : m.layer.ops)
    saved += layers * (1 - factor(op.name)) * op.actBytes;
  for (const OpProfile &op : m.post.ops)
    saved += (1 - factor(op.name)) * op.actBytes;
  ASSERT_GT(saved, 0);
  m.storage16 = true;
  Prediction s16 = evaluatePlan(m, cl, 1, c);
  const double memRate = cl.memoryBwGBps * 1e9 * cl.efficiency.memory;
  EXPECT_NEAR(base.stepTime - s16.stepTime, 3.0 * saved * batch / memRate,
              1e-9 * base.stepTime);
  // fp16 products: attention keeps f32 (its kernel's tiles are bf16).
  double attention = 0;
  for (const OpProfile &op : m.layer.ops)
    attention += op.name == "attention" ? layers * 0.5 * op.actBytes : 0.0;
  ASSERT_GT(attention, 0);
  m.computePrecision = "fp16";
  EXPECT_NEAR(evaluatePlan(m, cl, 1, c).stepTime - s16.stepTime,
              3.0 * attention * batch / memRate, 1e-9 * base.stepTime);
  // A 16-bit IR (elemBytes 2) is priced as it is.
  ModelProfile b16 = gpt(256, 4, layers, batch, 128, "bf16");
  Prediction a = evaluatePlan(b16, cl, 1, c);
  b16.storage16 = true;
  EXPECT_DOUBLE_EQ(evaluatePlan(b16, cl, 1, c).stepTime, a.stepTime);
  // The residual adds done by the GEMMs before them (one rank): 6 of 12
  // bytes where they were 10, forward and backward; on two ranks as before.
  double adds = 0;
  for (const OpProfile &op : m.layer.ops)
    adds += op.name == "add" ? layers * op.actBytes : 0.0;
  ASSERT_GT(adds, 0);
  m.computePrecision = "bf16";
  m.fusedResidualAdds = true;
  EXPECT_NEAR(s16.stepTime - evaluatePlan(m, cl, 1, c).stepTime,
              3.0 * (4.0 / 12.0) * adds * batch / memRate, 1e-9 * base.stepTime);
  PlanConfig dp2 = c;
  dp2.dp = 2;
  dp2.mbs = batch / 2;
  m.fusedResidualAdds = false;
  const Prediction two = evaluatePlan(m, cl, 2, dp2);
  ASSERT_TRUE(two.feasible) << two.infeasibleReason;
  const double unfused = two.stepTime;
  m.fusedResidualAdds = true;
  EXPECT_DOUBLE_EQ(evaluatePlan(m, cl, 2, dp2).stepTime, unfused);
}

TEST(PlannerCost, AttentionColumnViewsDropTheSplit) {
  // With the compiler's attention column views the q/k/v split (and its
  // gradient's concat) is no kernel: on a bandwidth-starved cluster the
  // step shrinks by 3 x (forward and backward) the split's bytes per layer
  // (read [s, 3h] and write three [s, h]: 6 s h elements of 4 bytes) over
  // the bandwidth.
  const int64_t layers = 2, batch = 4, s = 128, h = 256;
  ModelProfile m = gpt(h, 4, layers, batch, s, "f32");
  int splits = 0;
  for (const OpProfile &op : m.layer.ops)
    splits += op.columnView;
  ASSERT_EQ(splits, 1);
  auto [cl, c] = starved(batch);
  Prediction base = evaluatePlan(m, cl, 1, c);
  ASSERT_TRUE(base.feasible) << base.infeasibleReason;
  m.attentionColumnViews = true;
  const double memRate = cl.memoryBwGBps * 1e9 * cl.efficiency.memory;
  const double splitBytes = 6.0 * s * h * 4;
  EXPECT_NEAR(base.stepTime - evaluatePlan(m, cl, 1, c).stepTime,
              3.0 * layers * splitBytes * batch / memRate, 1e-9 * base.stepTime);
}
