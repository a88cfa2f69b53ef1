//===- CostModel.cpp - time and memory of a plan --------------------------===//
//
// See docs/planner.md for the model. Rank order (Megatron's): tensor
// parallel ranks are adjacent (inside a node), then data parallel, then
// pipeline stages: global rank = tp_rank + tp * (dp_rank + dp * pp_rank).
//
//===----------------------------------------------------------------------===//
#include "llm/Planner/Planner.h"
#include "llmrt/Store16.h"
#include "llm/Analysis/ModelStats.h"

#include "llvm/Support/FormatVariadic.h"

#include <algorithm>
#include <map>
#include <tuple>
#include <cmath>
#include <limits>

using namespace mlir;
using namespace mlir::llm;

const char *mlir::llm::rematName(Remat r) {
  switch (r) {
  case Remat::None: return "none";
  case Remat::Selective: return "selective";
  case Remat::Full: return "full";
  case Remat::Budget: return "budget";
  }
  return "?";
}

const char *mlir::llm::scheduleName(Schedule s) {
  switch (s) {
  case Schedule::GPipe: return "gpipe";
  case Schedule::OneFOneB: return "1f1b";
  case Schedule::Interleaved: return "interleaved";
  }
  return "?";
}

std::string mlir::llm::checkPlan(const ModelProfile &m, const Cluster &cl,
                                 int64_t world, const PlanConfig &c) {
  auto f = [](auto &&...args) { return llvm::formatv(args...).str(); };
  if (world > cl.devices())
    return f("needs {0} devices, the cluster has {1}", world, cl.devices());
  if (c.dp * c.tp * c.pp != world)
    return f("dp x tp x pp = {0} x {1} x {2} is not the {3} devices", c.dp,
             c.tp, c.pp, world);
  if (c.tp > cl.devicesPerNode)
    return f("tp={0} exceeds the {1} devices of a node", c.tp,
             cl.devicesPerNode);
  if (m.heads % c.tp)
    return f("tp={0} does not divide {1} heads", c.tp, m.heads);
  if (m.kvHeads % c.tp)
    return f("tp={0} does not divide {1} key/value heads", c.tp, m.kvHeads);
  if (m.ffn % c.tp)
    return f("tp={0} does not divide the FFN size {1}", c.tp, m.ffn);
  // Tensor-parallel ranks are adjacent: a group must not straddle nodes.
  if (cl.devicesPerNode % c.tp)
    return f("tp={0} does not divide the {1} devices of a node (a tensor-"
             "parallel group would span two nodes)", c.tp, cl.devicesPerNode);
  // Chunks may hold different numbers of layers (balanceChunks evens out
  // their time, the embedding and head included), at least one each.
  if (m.layers < c.pp * c.vpp)
    return f("pp x vpp = {0} chunks for {1} layers (at least one each)",
             c.pp * c.vpp, m.layers);
  if (c.vpp > 1 && m.layers % (c.pp * c.vpp))
    return f("pp x vpp = {0} does not divide {1} layers (interleaved chunks "
             "are even)", c.pp * c.vpp, m.layers);
  if ((c.vpp > 1) != (c.schedule == Schedule::Interleaved))
    return c.vpp > 1 ? f("vpp={0} needs the interleaved schedule", c.vpp)
                     : std::string("the interleaved schedule needs vpp > 1");
  if (c.schedule == Schedule::Interleaved && c.pp < 2)
    return "the interleaved schedule needs pp > 1";
  if (m.batch % (c.dp * c.mbs))
    return f("micro-batch {0} x dp {1} does not divide the batch of {2}",
             c.mbs, c.dp, m.batch);
  int64_t micro = m.batch / (c.dp * c.mbs);
  if (c.schedule == Schedule::Interleaved && micro % c.pp)
    return f("interleaved needs micro-batches ({0}) divisible by pp ({1})",
             micro, c.pp);
  if (c.sp && c.tp < 2)
    return "sp needs tp > 1";
  // Sequence parallelism runs the LM head vocabulary-parallel.
  if (c.sp && vocabRowsPerRank(m.vocab, c.tp, m.vocabAlign) == 0)
    return f("sp needs the vocabulary-parallel LM head, and a vocabulary of "
             "{0} does not pad into tp={1} slices{2} that each hold some of it",
             m.vocab, c.tp,
             m.vocabAlign > 1 ? f(" of a multiple of {0} rows", m.vocabAlign)
                              : std::string());
  if (c.zero < 0 || c.zero > 3)
    return f("zero={0} is not 0-3", c.zero);
  if (c.zero > 0 && c.dp < 2)
    return f("zero={0} needs dp > 1", c.zero);
  if (c.zero >= 2 && c.pp > 1)
    return f("zero={0} with pp > 1: gradients would be reduced every "
             "micro-batch",
             c.zero);
  return "";
}

namespace {

/// Bandwidth (bytes/s) and latency (s) of the link a group of `size` ranks
/// at rank stride `stride` crosses.
struct LinkModel {
  double bw, alpha;
};

LinkModel linkFor(const Cluster &cl, int64_t stride, int64_t size) {
  bool inside = stride * size <= cl.devicesPerNode;
  const Link &l = inside ? cl.intraNode : cl.interNode;
  double eff = inside ? cl.efficiency.intraNode : cl.efficiency.interNode;
  return {l.bwGBps * 1e9 * eff, l.latencyUs * 1e-6};
}

/// Ring all-reduce of `bytes` on `n` ranks: 2 (n-1)/n of the buffer and
/// 2 (n-1) latency steps. All-gather and reduce-scatter move half of that.
double allReduce(double bytes, int64_t n, LinkModel l) {
  if (n <= 1)
    return 0;
  return 2.0 * (n - 1) / n * bytes / l.bw + 2.0 * (n - 1) * l.alpha;
}
double allGather(double bytes, int64_t n, LinkModel l) {
  if (n <= 1)
    return 0;
  return 1.0 * (n - 1) / n * bytes / l.bw + 1.0 * (n - 1) * l.alpha;
}

/// The vocabulary as llm-partition splits it, times tp: ceil(V/tp) rows a
/// rank rounded up to a multiple of `align` (Megatron pads to 128 x tp for
/// its GPUs' tiles; the published configurations' vocabularies, 51200, are
/// multiples of both); where no such split exists every rank keeps all V
/// rows (V x tp, so that a rank's 1/tp of it is the whole).
int64_t paddedVocab(int64_t v, int64_t tp, int64_t align) {
  int64_t rows = vocabRowsPerRank(v, tp, align);
  return (rows > 0 ? rows : v) * tp;
}

/// Cuts `layers` identical layers into `k` contiguous chunks, every chunk at
/// least one layer, the embedding's cost `pre` (in layers) on the first and
/// the head's `post` on the last, minimizing the largest chunk load. The
/// optimal largest load is one of n, n + pre, n + post (n layers); those
/// candidates are tried in increasing order, each checked by the capacity
/// it allows (first chunk floor(M - pre) layers, last floor(M - post),
/// others floor(M)). The excess capacity is then taken back from the
/// fullest chunks, which keeps the cut as even as the bound allows. O(L log L
/// + k^2), memoized: the search asks for the same few cuts again and again.
std::vector<std::pair<int64_t, int64_t>>
balanceChunks(int64_t layers, int64_t k, double pre, double post) {
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t>;
  static thread_local std::map<Key, std::vector<std::pair<int64_t, int64_t>>>
      memo;
  Key key{layers, k, std::llround(pre * 1e6), std::llround(post * 1e6)};
  if (auto it = memo.find(key); it != memo.end())
    return it->second;

  std::vector<int64_t> counts(k, 1);
  if (k == 1) {
    counts[0] = layers;
  } else {
    std::vector<double> candidates;
    for (int64_t n = 1; n <= layers; ++n)
      for (double extra : {0.0, pre, post})
        candidates.push_back(static_cast<double>(n) + extra);
    std::sort(candidates.begin(), candidates.end());
    const double eps = 1e-9;
    std::vector<int64_t> caps(k);
    for (double m : candidates) {
      caps[0] = static_cast<int64_t>(std::floor(m - pre + eps));
      caps[k - 1] = static_cast<int64_t>(std::floor(m - post + eps));
      for (int64_t i = 1; i + 1 < k; ++i)
        caps[i] = static_cast<int64_t>(std::floor(m + eps));
      if (*std::min_element(caps.begin(), caps.end()) < 1)
        continue;
      int64_t total = 0;
      for (int64_t c : caps)
        total += c;
      if (total >= layers)
        break;
    }
    counts = caps;
    int64_t excess = -layers;
    for (int64_t c : counts)
      excess += c;
    while (excess > 0) {
      auto fullest = std::max_element(counts.begin(), counts.end());
      --*fullest;
      --excess;
    }
  }
  std::vector<std::pair<int64_t, int64_t>> ranges(k);
  int64_t begin = 0;
  for (int64_t i = 0; i < k; ++i) {
    ranges[i] = {begin, begin + counts[i]};
    begin += counts[i];
  }
  memo[key] = ranges;
  return ranges;
}

} // namespace

std::string mlir::llm::rematLabel(Remat r, int64_t rematLayers) {
  if (r == Remat::Budget)
    return "budget:" + std::to_string(rematLayers);
  return rematName(r);
}

double mlir::llm::storageBytesFactor(const ModelProfile &m, const OpProfile &op,
                                     bool addInGemm) {
  if (!m.storage16 || m.elemBytes != 4)
    return 1.0;
  if (op.name == "layer_norm" || op.name == "rms_norm")
    return 6.0 / 8.0;
  // GELU in the GEMMs' epilogues (the CUDA default with 16-bit products):
  // the GEMM before it writes its output beside the pre-activation, so of
  // its read and write only the 16-bit write is left (2 of 8 bytes); the
  // backward (twice the forward here) likewise.
  if (op.name == "gelu")
    return 0.25;
  if (op.name == "silu" || op.name == "cross_entropy" || op.name == "linear")
    return 0.5;
  // A residual add: reads f32 and 16 bits, writes f32 (10 of 12 bytes).
  // Done by the GEMM before it (a layer's adds, one rank: `addInGemm`): the
  // GEMM reads the f32 addend as C and writes the f32 sum where it would
  // have written 16 bits, 6 bytes more. The embeddings' sum stays an add.
  if (op.name == "add")
    return m.fusedResidualAdds && addInGemm ? 6.0 / 12.0 : 10.0 / 12.0;
  // FlashAttention-2's q, k, v and output, 16-bit where they are bf16.
  if (op.name == "attention" && m.computePrecision == "bf16")
    return 0.5;
  return 1.0;
}

double mlir::llm::arena16Saving(const ModelProfile &m, const PlanConfig &c) {
  // One device only; several are counted at f32 sizes, an upper bound
  // (the compiler's arena, which the runtime packs only where smaller).
  // There the runtime saves less, and not by op kind: tensor parallelism's
  // vocabulary-parallel loss keeps f32 logits and its gathers and column
  // copies f32 norm outputs; a buffer that shares bytes with a ZeRO share
  // at any time stays f32 (Store16's views); collectives left running
  // keep their operands (llmrt-memory on GPT-2, 4 layers, B 8 x 512:
  // the arena 1,700 -> 1,531 MiB under ZeRO-1 on 2 ranks, 3,140 -> 2,018 on
  // one; several ranks pack only with LLMRT_CUDA_ARENA16=1).
  return m.storage16 && m.arena16 && m.elemBytes == 4 && c.dp * c.tp * c.pp == 1 ? 0.5 : 0.0;
}

double mlir::llm::activationBytesPerLayer(const ModelProfile &m,
                                         const PlanConfig &c) {
  if (c.remat == Remat::Budget && m.layers > 0) {
    // The average over a pipeline rank's layers: k recomputed, the rest
    // kept.
    PlanConfig full = c, none = c;
    full.remat = Remat::Full;
    none.remat = Remat::None;
    int64_t onRank = std::max<int64_t>(1, m.layers / std::max<int64_t>(1, c.pp));
    double k = static_cast<double>(std::clamp<int64_t>(c.rematLayers, 0, onRank));
    double L = static_cast<double>(onRank);
    return (k * activationBytesPerLayer(m, full) +
            (L - k) * activationBytesPerLayer(m, none)) / L;
  }
  const double t = static_cast<double>(c.tp), b = static_cast<double>(c.mbs);
  // Split tensors are divided by TP; replicated ones too under SP (they are
  // split along the sequence).
  double replDiv = c.sp ? t : 1.0;
  if (c.remat == Remat::Full)
    return m.layer.inputBytes * b / replDiv;
  double perSeq = m.layer.savedSplit / t + m.layer.savedReplicated / replDiv;
  perSeq -= arena16Saving(m, c) * (m.layer.saved16Split / t + m.layer.saved16Replicated / replDiv);
  if (m.dropout) // two one-byte masks of the [s, h] block outputs
    perSeq += 2.0 * m.layer.inputBytes / m.elemBytes / replDiv;
  if (m.materializedSoftmax && c.remat != Remat::Selective)
    perSeq += static_cast<double>(m.heads) * m.seq * m.seq *
              (2.0 * m.elemBytes + 1.0) / t;
  if (m.keepAttentionLse && c.remat == Remat::None)
    perSeq += 4.0 * static_cast<double>(m.heads) * m.seq / t;
  return perSeq * b;
}

Prediction mlir::llm::evaluatePlan(const ModelProfile &m, const Cluster &cl,
                                   int64_t world, const PlanConfig &c) {
  Prediction p;
  if (std::string why = checkPlan(m, cl, world, c); !why.empty()) {
    p.feasible = false;
    p.infeasibleReason = why;
    return p;
  }
  const double t = static_cast<double>(c.tp), b = static_cast<double>(c.mbs);
  const int64_t micro = m.batch / (c.dp * c.mbs);
  p.microbatches = micro;
  auto peakOr = cl.peak(m.peakPrecision());
  double peakTf = peakOr ? *peakOr : 0;
  if (!peakOr)
    llvm::consumeError(peakOr.takeError());
  const double flopRate = peakTf * 1e12 * cl.efficiency.compute;
  const double memRate = cl.memoryBwGBps * 1e9 * cl.efficiency.memory;
  const double vocabScale =
      static_cast<double>(paddedVocab(m.vocab, c.tp, m.vocabAlign)) / m.vocab;
  const bool oneRank = c.dp * c.tp * c.pp == 1;

  // Small GEMMs (a CPU's micro-batches and tensor-parallel slices): a
  // product of f FLOPs per thread reaches f / (f + gemm_flops_half) of the
  // large-GEMM rate.
  auto gemmRate = [&](double flopsPerRank) {
    double f = flopsPerRank / cl.threadsPerRank;
    double half = cl.efficiency.gemmFlopsHalf;
    return half > 0 && f > 0 ? flopRate * f / (f + half) : flopRate;
  };
  // Forward time of a block for one micro-batch: per op, the larger of its
  // compute and memory time (a roofline), split ops divided by tp and, under
  // sequence parallelism, replicated ones too.
  auto forward = [&](const BlockProfile &blk, double scale, bool coreOnly) {
    double s = 0;
    for (const OpProfile &op : blk.ops) {
      if ((coreOnly && !op.attentionCore) || (op.columnView && m.attentionColumnViews))
        continue;
      double div = (op.tpSplit || c.sp) ? t : 1.0;
      double flops = op.flops * b * scale / div;
      double bytes =
          (op.actBytes * storageBytesFactor(m, op, oneRank && &blk == &m.layer) * b * scale +
           op.weightBytes * scale) / div;
      double rate = op.attentionCore && cl.efficiency.attention > 0
                        ? peakTf * 1e12 * cl.efficiency.attention
                        : gemmRate(flops);
      s += std::max(flops > 0 ? flops / rate : 0.0, bytes / memRate);
    }
    return s;
  };
  LinkModel tpLink = linkFor(cl, 1, c.tp);
  auto tpComm = [&](const BlockProfile &blk, double collectivesPerBoundary) {
    if (c.tp < 2)
      return 0.0;
    return collectivesPerBoundary * blk.tpBoundaries *
           allReduce(blk.tpBoundaryBytes * b, c.tp, tpLink);
  };

  // One layer, one micro-batch.
  double layerFwd = forward(m.layer, 1.0, false);
  // Under a budget, the recomputed share of the layers (per layer, on
  // average).
  double budgetShare =
      c.remat == Remat::Budget && m.layers > 0
          ? std::min(1.0, static_cast<double>(c.rematLayers) /
                              std::max<int64_t>(1, m.layers / std::max<int64_t>(1, c.pp)))
          : 0.0;
  double layerRecompute = c.remat == Remat::Full        ? layerFwd
                          : c.remat == Remat::Selective ? forward(m.layer, 1.0, true)
                          : c.remat == Remat::Budget    ? budgetShare * layerFwd
                                                        : 0.0;
  // Collectives per TP boundary, in all-reduce payloads (an all-gather or a
  // reduce-scatter moves half an all-reduce): forward and backward, the
  // recomputed forward under full remat; under SP without full remat the
  // backward gathers each column-parallel input again (half more). Before
  // and after the layers SP adds the head's re-gather and the gradient
  // gather of the cut residual stream: one more.
  double perBoundary = c.remat == Remat::Full ? 3.0 : c.sp ? 2.5 : 2.0;
  if (c.remat == Remat::Budget)
    perBoundary += budgetShare * (3.0 - perBoundary);
  double prePerBoundary = c.sp ? 3.0 : 2.0;
  double layerTp = tpComm(m.layer, perBoundary);
  double preFwd = forward(m.pre, vocabScale, false);
  double postFwd = forward(m.post, vocabScale, false);
  double preTp = tpComm(m.pre, prePerBoundary), postTp = tpComm(m.post, 2.0);

  // Chunks: balanced by forward time, pre and post weighing on the ends.
  int64_t chunks = c.pp * c.vpp;
  double layerWeight = std::max(layerFwd, 1e-30);
  p.stages = balanceChunks(m.layers, chunks, preFwd / layerWeight,
                           postFwd / layerWeight);

  // Per rank, per micro-batch: forward, backward (2x forward), recompute, TP.
  std::vector<double> rankCompute(c.pp, 0), rankRecompute(c.pp, 0),
      rankTp(c.pp, 0), rankBwd(c.pp, 0);
  for (int64_t ch = 0; ch < chunks; ++ch) {
    int64_t r = ch % c.pp;
    double n = static_cast<double>(p.stages[ch].second - p.stages[ch].first);
    double fwd = n * layerFwd + (ch == 0 ? preFwd : 0) +
                 (ch == chunks - 1 ? postFwd : 0);
    rankCompute[r] += 3.0 * fwd;
    rankBwd[r] += 2.0 * fwd + n * layerRecompute;
    rankRecompute[r] += n * layerRecompute;
    rankTp[r] += n * layerTp + (ch == 0 ? preTp : 0) +
                 (ch == chunks - 1 ? postTp : 0);
  }
  int64_t slow = 0;
  for (int64_t r = 0; r < c.pp; ++r)
    if (rankCompute[r] + rankRecompute[r] + rankTp[r] >
        rankCompute[slow] + rankRecompute[slow] + rankTp[slow])
      slow = r;

  // Pipeline point-to-point: each chunk sends its output forward and its
  // input gradient backward, split across TP ranks (Megatron's scatter/
  // gather).
  double ppP2p = 0;
  if (c.pp > 1) {
    LinkModel ppLink = linkFor(cl, c.tp * c.dp, 2);
    double bytes = m.layer.inputBytes * b / t;
    ppP2p = 2.0 * c.vpp * (ppLink.alpha + bytes / ppLink.bw);
  }
  double perMicro = rankCompute[slow] + rankRecompute[slow] + rankTp[slow] + ppP2p;
  double bubbleSlots = static_cast<double>(c.pp - 1) / c.vpp;
  p.bubbleFraction = bubbleSlots / micro;
  double pipeline = (micro + bubbleSlots) * perMicro;

  // Parameters per device (busiest rank), by TP layout.
  double embedParams = m.pre.paramsSplit * vocabScale / t + m.pre.paramsReplicated;
  double headParams = m.post.paramsSplit * vocabScale / t + m.post.paramsReplicated +
                      (m.tiedEmbeddings && c.pp > 1 ? m.pre.paramsSplit * vocabScale / t : 0);
  double layerParams = m.layer.paramsSplit / t + m.layer.paramsReplicated;
  std::vector<double> rankParams(c.pp, 0);
  for (int64_t ch = 0; ch < chunks; ++ch) {
    int64_t r = ch % c.pp;
    rankParams[r] += (p.stages[ch].second - p.stages[ch].first) * layerParams +
                     (ch == 0 ? embedParams : 0) +
                     (ch == chunks - 1 ? headParams : 0);
  }
  if (c.pp == 1)
    rankParams[0] = embedParams + headParams -
                    (m.tiedEmbeddings ? 0 : 0) + m.layers * layerParams;

  // Bytes per parameter: mixed precision keeps 16-bit weights and gradients
  // and fp32 master weights plus moments (2 + 2 + 12); fp32 training 4 + 4 + 8.
  bool mixed = m.precision != "fp32";
  double wB = mixed ? 2 : 4, gB = mixed ? 2 : 4, oB = mixed ? 12 : 8;
  const double d = static_cast<double>(c.dp);

  // Data parallelism: gradient reduction (overlapped with the backward of
  // the last micro-batch), ZeRO's parameter gathers.
  LinkModel dpLink = linkFor(cl, c.tp, c.dp);
  double maxParams = *std::max_element(rankParams.begin(), rankParams.end());
  double gradBytes = maxParams * gB, weightBytes = maxParams * wB;
  double hide = cl.efficiency.dpOverlap * rankBwd[slow];
  double dpExposed = 0;
  if (c.dp > 1) {
    switch (c.zero) {
    case 0:
      dpExposed = std::max(0.0, allReduce(gradBytes, c.dp, dpLink) - hide);
      break;
    case 1:
    case 2:
      // Reduce-scatter of gradients (overlappable), all-gather of the
      // updated weights after the step.
      dpExposed = std::max(0.0, allGather(gradBytes, c.dp, dpLink) - hide) +
                  allGather(weightBytes, c.dp, dpLink);
      break;
    case 3: {
      // Weights gathered before the forward and again before the backward
      // of every micro-batch, gradients reduce-scattered: prefetched behind
      // the compute of the micro-batch.
      double perMb = 2 * allGather(weightBytes, c.dp, dpLink) +
                     allGather(gradBytes, c.dp, dpLink);
      dpExposed = micro * std::max(0.0, perMb - perMicro);
      break;
    }
    }
  }

  // Optimizer: one pass over weights, gradients and (the ZeRO share of) the
  // optimizer state, read and written.
  double shardOpt = c.zero >= 1 ? d : 1.0;
  double optBytes = maxParams * (wB + gB + oB / shardOpt) * 2;
  p.optimizer = optBytes / memRate;

  p.compute = micro * rankCompute[slow];
  p.recompute = micro * rankRecompute[slow];
  p.tpComm = micro * rankTp[slow];
  if (c.tp > 1) {
    // Payloads: every TP boundary in the forward and the backward (and the
    // recomputed forward).
    double perLayer =
        perBoundary * m.layer.tpBoundaries * m.layer.tpBoundaryBytes * b;
    double pre = prePerBoundary * m.pre.tpBoundaries * m.pre.tpBoundaryBytes * b;
    double post = 2.0 * m.post.tpBoundaries * m.post.tpBoundaryBytes * b;
    double layersOnSlow = 0;
    for (int64_t ch = 0; ch < chunks; ++ch)
      if (ch % c.pp == slow)
        layersOnSlow += p.stages[ch].second - p.stages[ch].first;
    p.tpBytes = micro * (layersOnSlow * perLayer + (slow == 0 ? pre : 0) +
                         (slow == (chunks - 1) % c.pp ? post : 0));
  }
  if (c.dp > 1)
    p.dpBytes = c.zero == 3 ? micro * (2 * weightBytes + gradBytes)
                : c.zero >= 1 ? gradBytes + weightBytes
                              : gradBytes;
  p.ppComm = micro * ppP2p;
  p.bubble = bubbleSlots * perMicro;
  p.dpComm = dpExposed;
  p.stepTime = pipeline + dpExposed + p.optimizer;
  p.tflopsPerDevice = m.flopsPerStep / p.stepTime / world / 1e12;

  // Memory of the busiest device.
  double zeroW = c.zero >= 3 ? d : 1, zeroG = c.zero >= 2 ? d : 1,
         zeroO = c.zero >= 1 ? d : 1;
  double replDiv = c.sp ? t : 1.0;
  double layerActs = activationBytesPerLayer(m, c);
  PlanConfig noRemat = c;
  noRemat.remat = Remat::None;
  double kept = layerActs;
  layerActs = activationBytesPerLayer(m, noRemat); // the working set
  // Layer-micro-batches of activations pipeline rank r holds at its peak,
  // as the schedules of lib/Planner/Schedule.cpp run: GPipe all m; 1F1B
  // min(m, p - r) micro-batches of its L/p layers; interleaved (Megatron's
  // order) its warm-up forwards plus one, of chunks of L/(p v) layers
  // (Korthikanti's L (1 + (p-1)/(p v)) on the first rank).
  const int64_t v = std::max<int64_t>(1, c.vpp);
  // Chunk-micro-batches rank r holds at its peak (of micro v in all).
  auto chunksHeld = [&](int64_t r) -> int64_t {
    switch (c.schedule) {
    case Schedule::GPipe:
      return micro * v;
    case Schedule::OneFOneB:
      return std::min<int64_t>(micro, c.pp - r);
    case Schedule::Interleaved:
      return std::min<int64_t>(micro * v, (c.pp - r - 1) * 2 + (v - 1) * c.pp + 1);
    }
    return micro * v;
  };
  auto layerMicro = [&](int64_t r) {
    // The rank's chunks may differ in size: their mean.
    int64_t held = 0;
    for (int64_t ch = r; ch < chunks; ch += c.pp)
      held += p.stages[ch].second - p.stages[ch].first;
    return static_cast<double>(chunksHeld(r)) * static_cast<double>(held) / v;
  };
  // (One device's arena packed with 16-bit sizes: the head's 16-bit
  // values, the logits and their gradient, take half.)
  const double half16 = arena16Saving(m, c);
  double postActs = ((m.post.savedSplit - half16 * m.post.saved16Split) * vocabScale / t +
                     (m.post.savedReplicated - half16 * m.post.saved16Replicated) / replDiv) *
                    b;
  double logits =
      (1.0 - half16) * 2.0 * b * m.seq * paddedVocab(m.vocab, c.tp, m.vocabAlign) / t * 4;
  double maxMem = 0;
  p.perStage.assign(c.pp, {});
  for (int64_t r = 0; r < c.pp; ++r) {
    double acts = layerMicro(r) * kept;
    bool last = r == (chunks - 1) % c.pp;
    // The head's saved values, for each micro-batch in flight through the
    // last chunk.
    if (last)
      acts += postActs * std::ceil(static_cast<double>(chunksHeld(r)) / v);
    // Working memory beyond the kept activations: the logits and their
    // gradient on the last stage, and under recomputation one layer's
    // activations rebuilt for its backward.
    // (Under a budget the rebuilt layers come after the kept ones have been
    // freed: the start of the backward holds no rebuilt layer.)
    // (Selective recomputation rebuilds only the attention core, inside the
    // attention backward's own tiles: nothing at the peak.)
    bool rebuildsAtPeak = c.remat == Remat::Full;
    double temps = (rebuildsAtPeak ? layerActs : 0) + (last ? logits : 0);
    // The CUDA runtime's device memory beside the arena with 16-bit GEMMs
    // for the whole run (runtime Store16.h; llmrt-memory counts it from the
    // program): cuBLAS's, with the GEMM scratch for the largest weight it
    // converts (the output layer's on the last stage; a layer's widest
    // elsewhere, which an activation operand may exceed), and with
    // FlashAttention-2's 16-bit dq its fp32 accumulator. Not counted: the
    // 16-bit values kept beside their buffers, the row statistics.
    double workspace = 0;
    if (m.storage16) {
      const double widestWeight =
          last ? static_cast<double>(paddedVocab(m.vocab, c.tp, m.vocabAlign)) / t * m.hidden
               : static_cast<double>(std::max(m.ffn, 3 * m.hidden)) / t * m.hidden;
      workspace = static_cast<double>(
          ::llmrt::gemmDeviceBytes(static_cast<int64_t>(widestWeight)));
      if (m.flashAttention16)
        workspace += 4.0 * b * m.seq * static_cast<double>(m.hidden) / t;
    }
    // A stage without the head peaks in a layer's backward, with the
    // gradient of the widest activation ([b, s, ffn / tp]) on top of what
    // it holds (on the last stage the logits' gradient is larger).
    // On a last stage the larger of that and the logits' gradient.
    double widest = b * m.seq * static_cast<double>(m.ffn) / t * 4;
    if (!last)
      temps += widest;
    else if (c.pp > 1 && widest > logits)
      temps += widest - logits;
    // A pipeline receive is posted an action before its value is read: one
    // more activation of the residual stream's size.
    if (c.pp > 1)
      temps += b * m.seq * static_cast<double>(m.hidden) / replDiv * 4;
    double weights = rankParams[r] * wB / zeroW +
                     (m.storage16 && m.weightCopies16 && oneRank ? 2 * rankParams[r] : 0);
    double grads = rankParams[r] * gB / zeroG;
    double opt = rankParams[r] * oB / zeroO;
    // Gradients fill what the backward frees of the activations (our
    // static memory plan does exactly that): the peak is the larger of the
    // start of the backward and its end. Data-parallel gradient buckets
    // (all-reduced, ZeRO 0-1) are live from their first gradient: at the
    // start of the backward, one bucket (llm-lower-to-rt's default: 25 MiB,
    // at most 1/8 of the gradients, at least 1 MiB) is already there.
    double bucket = 0;
    if (c.dp > 1 && c.zero < 2)
      bucket = std::min(grads, std::min(25.0 * 1048576.0,
                                        std::max(1048576.0, grads / 8)));
    // Gradient accumulation over micro-batches: the running sums live
    // through every micro-batch after the first (llm-microbatch). Under
    // ZeRO-2 and 3 they are this rank's shares: each micro-batch's
    // gradients are reduce-scattered as they are computed (llm-optimizer),
    // with one whole gradient at a time on top.
    double gradsEnd = grads;
    if (micro > 1) {
      bucket = grads;
      gradsEnd = bucket;
    }
    // A rank whose peak comes before its first backward (GPipe; 1F1B or
    // interleaved when the warm-up covers every micro-batch) holds no sum
    // at the peak: they grow as the backwards free activations, one
    // micro-batch's chunk first.
    double afterFirst = 0;
    if (c.pp > 1 && micro > 1 && chunksHeld(r) >= micro * v) {
      double n = static_cast<double>(chunksHeld(r));
      afterFirst = acts * (n - 1) / n + temps + bucket;
      bucket = c.dp > 1 && c.zero < 2 ? std::min(bucket, std::min(25.0 * 1048576.0,
                                        std::max(1048576.0, grads / 8))) : 0;
    }
    // ZeRO-3 prefetch: the next parameter's gather is in flight while the
    // current one is used, at most the largest weight (the MLP's) extra.
    if (c.zero == 3 && c.dp > 1)
      temps += static_cast<double>(m.hidden) * m.ffn * wB / t;
    double total = weights + opt + workspace +
                   std::max({acts + temps + bucket, afterFirst, gradsEnd + layerActs});
    temps += workspace; // (reported with the temporaries)
    Prediction::Stage &st = p.perStage[r];
    st.peak = total;
    st.weights = weights;
    st.grads = grads;
    st.optimizerState = opt;
    st.activations = acts;
    st.temporaries = temps;
    if (total > maxMem) {
      maxMem = total;
      p.peak = total;
      p.weights = weights;
      p.grads = grads;
      p.optimizerState = opt;
      p.activations = acts;
      p.temporaries = temps;
    }
  }
  for (int64_t ch = 0; ch < chunks; ++ch)
    p.perStage[ch % c.pp].layers += p.stages[ch].second - p.stages[ch].first;
  for (int64_t r = 0; r < c.pp; ++r) {
    Prediction::Stage &st = p.perStage[r];
    st.compute = micro * rankCompute[r];
    st.recompute = micro * rankRecompute[r];
    st.tpComm = micro * rankTp[r];
    st.ppComm = micro * ppP2p;
  }
  double capacity = cl.memoryGiB * 1073741824.0;
  if (maxMem > capacity) {
    p.feasible = false;
    p.infeasibleReason = llvm::formatv("needs {0:f1} GiB per device, has {1}",
                                       maxMem / 1073741824.0, cl.memoryGiB)
                             .str();
  }
  return p;
}
