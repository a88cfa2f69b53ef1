//===- Report.cpp - --emit=plan JSON and the --explain report -------------===//
#include "llm/Planner/Planner.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace mlir::llm;

namespace {

llvm::json::Object predictedJSON(const Prediction &p) {
  return llvm::json::Object{
      {"step_time_s", p.stepTime},
      {"memory_bytes_per_device", static_cast<int64_t>(p.memory())},
      {"model_tflops_per_device", p.tflopsPerDevice},
      {"bubble_fraction", p.bubbleFraction},
      {"comm_time_s", p.tpComm + p.ppComm + p.dpComm},
      {"tp_bytes_per_step", p.tpBytes},
      {"dp_bytes_per_step", p.dpBytes}};
}

void configJSON(llvm::json::Object &o, const PlanConfig &c, int64_t world,
                int64_t micro) {
  o["world"] = world;
  o["dp"] = c.dp;
  o["tp"] = c.tp;
  o["sp"] = c.sp ? 1 : 0;
  o["pp"] = c.pp;
  o["vpp"] = c.vpp;
  o["zero"] = c.zero;
  o["remat"] = rematLabel(c.remat, c.rematLayers);
  o["mbs"] = c.mbs;
  o["microbatches"] = micro;
  o["schedule"] = scheduleName(c.schedule);
}

std::string gib(double bytes) {
  return llvm::formatv("{0:f2} GiB", bytes / 1073741824.0).str();
}

std::string ms(double s) { return llvm::formatv("{0,9:f1} ms", s * 1e3).str(); }

std::string configLine(const PlanConfig &c) {
  return llvm::formatv("dp={0} tp={1}{2} pp={3}{4} zero={5} remat={6} mbs={7} "
                       "schedule={8}",
                       c.dp, c.tp, c.sp ? " sp" : "", c.pp,
                       c.vpp > 1 ? llvm::formatv(" vpp={0}", c.vpp).str() : "",
                       c.zero, rematLabel(c.remat, c.rematLayers), c.mbs,
                       scheduleName(c.schedule))
      .str();
}

} // namespace

std::string mlir::llm::describePlan(const PlanConfig &c) { return configLine(c); }

std::string mlir::llm::planJSON(const ModelProfile &m, int64_t world,
                                const SearchResult &r) {
  llvm::json::Object o;
  const PlanConfig &c = r.best.config;
  const Prediction &p = r.best.prediction;
  configJSON(o, c, world, p.microbatches);
  llvm::json::Array stages;
  for (auto [b, e] : p.stages)
    stages.push_back(llvm::json::Array{b, e});
  o["stages"] = std::move(stages);
  o["predicted"] = predictedJSON(p);
  // Per pipeline rank: what each stage's program should hold.
  llvm::json::Array perStage;
  for (const Prediction::Stage &st : p.perStage)
    perStage.push_back(llvm::json::Object{
        {"layers", st.layers},
        {"memory_bytes", static_cast<int64_t>(st.memory())},
        {"activation_bytes", static_cast<int64_t>(st.activations)}});
  o["per_stage"] = std::move(perStage);
  o["search_time_s"] = r.searchTimeS;
  llvm::json::Array alts;
  for (const PlanCandidate &a : r.alternatives) {
    llvm::json::Object ao;
    configJSON(ao, a.config, world, a.prediction.microbatches);
    if (a.prediction.stepTime > 0)
      ao["predicted"] = predictedJSON(a.prediction);
    ao["reason"] = a.reason;
    alts.push_back(std::move(ao));
  }
  o["alternatives"] = std::move(alts);
  std::string s;
  llvm::raw_string_ostream os(s);
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(o))) << "\n";
  return s;
}

std::string mlir::llm::planReport(const ModelProfile &m, const Cluster &cl,
                                  int64_t world, const SearchResult &r) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << llvm::formatv("Model: {0}, {1:f2}B parameters, {2} layers, hidden {3}, "
                      "{4} heads ({5} kv), FFN {6}, vocabulary {7}\n",
                      m.modelType, m.params / 1e9, m.layers, m.hidden, m.heads,
                      m.kvHeads, m.ffn, m.vocab);
  std::string precision = m.precision;
  if (!m.computePrecision.empty() && m.computePrecision != m.precision)
    precision = m.computePrecision + " matrix products on " + m.precision + " storage";
  // PFLOP from 1 PFLOP a step up, TFLOP below (GPT-2 124M at B 16 x 1024:
  // 14.0 TFLOP, which one decimal of PFLOP showed as 0.0).
  const bool peta = m.flopsPerStep >= 1e15;
  os << llvm::formatv("Batch: {0} sequences of {1} tokens, {2} precision, "
                      "{3:f1} {4}FLOP per step (no recompute)\n",
                      m.batch, m.seq, precision, m.flopsPerStep / (peta ? 1e15 : 1e12),
                      peta ? "P" : "T");
  std::string attention =
      cl.efficiency.attention > 0
          ? llvm::formatv(", attention {0}", cl.efficiency.attention).str()
          : std::string();
  os << llvm::formatv("Cluster: {0}, {1} of {2} devices ({3} x {4}), {5} GiB "
                      "each; efficiencies: compute {6}{10}, memory {7}, NVLink {8}, "
                      "network {9}\n\n",
                      cl.name, world, cl.devices(), cl.nodes, cl.devicesPerNode,
                      cl.memoryGiB, cl.efficiency.compute, cl.efficiency.memory,
                      cl.efficiency.intraNode, cl.efficiency.interNode, attention);
  if (!r.found) {
    os << "No plan fits: " << r.whyNone << "\n";
    return s;
  }
  const PlanConfig &c = r.best.config;
  const Prediction &p = r.best.prediction;
  os << "Plan: " << configLine(c) << "\n";
  os << llvm::formatv("  {0} micro-batches per step; ranks: tp innermost "
                      "(inside a node), then dp, then pp\n",
                      p.microbatches);
  os << "  stages (layers per pipeline chunk, chunk c on pipeline rank c % pp):";
  for (size_t i = 0; i < p.stages.size(); ++i)
    os << (i % 8 == 0 ? "\n    " : " ") << "[" << p.stages[i].first << ", "
       << p.stages[i].second << ")";
  os << "\n\n";
  os << llvm::formatv("Predicted step: {0:f3} s, {1:f1} TFLOP/s per device "
                      "(model FLOPs), {2:f0} tokens/s\n",
                      p.stepTime, p.tflopsPerDevice,
                      m.batch * m.seq / p.stepTime);
  os << "  time on the busiest pipeline rank:\n";
  auto line = [&](const char *what, double v, const char *note) {
    os << llvm::formatv("    {0,-32}{1}  {2,5:f1}%  {3}\n", what, ms(v),
                        100.0 * v / p.stepTime, note);
  };
  line("compute (forward + backward)", p.compute, "");
  line("recompute", p.recompute, rematLabel(c.remat, c.rematLayers).c_str());
  line("tensor-parallel communication", p.tpComm,
       c.tp > 1 ? (c.sp ? "all-gather/reduce-scatter, NVLink"
                        : "all-reduce, NVLink")
                : "");
  line("pipeline communication", p.ppComm, c.pp > 1 ? "send/recv" : "");
  line("pipeline bubble", p.bubble,
       llvm::formatv("{0:f1}% of the pipeline", p.bubbleFraction * 100)
           .str()
           .c_str());
  line("data-parallel communication", p.dpComm,
       c.zero == 3 ? "exposed ZeRO-3 gathers" : "exposed after overlap");
  line("optimizer step", p.optimizer, "");
  os << "  memory on the busiest device:\n";
  auto mem = [&](const char *what, double v, const char *note = "") {
    os << llvm::formatv("    {0,-32}{1,12}", what, gib(v)) << (*note ? "  " : "") << note
       << "\n";
  };
  const bool world1 = c.dp * c.tp * c.pp == 1;
  mem("weights", p.weights,
      m.storage16 && m.weightCopies16 && world1 ? "with the GEMMs' 16-bit copies" : "");
  mem("gradients", p.grads);
  mem("optimizer state", p.optimizerState);
  const bool half = arena16Saving(m, c) > 0;
  mem("activations", p.activations, half ? "those stored 16-bit at half size" : "");
  mem("temporaries", p.temporaries, half ? "the logits and their gradient 16-bit" : "");
  os << llvm::formatv("    {0,-32}{1,12} of {2} GiB\n\n", "total",
                      gib(p.memory()), cl.memoryGiB);
  if (p.perStage.size() > 1) {
    os << "  per pipeline rank (per step; memory per device):\n";
    os << llvm::formatv("    {0,-5}{1,7}{2,12}{3,12}{4,12}{5,12}{6,11}{7,11}{8,11}{9,11}{10,11}\n",
                        "rank", "layers", "compute", "recompute", "TP comm",
                        "PP comm", "weights", "grads", "optim", "activ",
                        "total");
    for (size_t r = 0; r < p.perStage.size(); ++r) {
      const Prediction::Stage &st = p.perStage[r];
      auto g = [](double b) {
        return llvm::formatv("{0:f2}G", b / 1073741824.0).str();
      };
      auto t = [](double sec) {
        return llvm::formatv("{0:f0} ms", sec * 1e3).str();
      };
      os << llvm::formatv("    {0,-5}{1,7}{2,12}{3,12}{4,12}{5,12}{6,11}{7,11}{8,11}{9,11}{10,11}\n",
                          r, st.layers, t(st.compute), t(st.recompute),
                          t(st.tpComm), t(st.ppComm), g(st.weights),
                          g(st.grads), g(st.optimizerState),
                          g(st.activations), g(st.memory()));
    }
    os << "\n";
  }
  os << "Alternatives:\n";
  for (const PlanCandidate &a : r.alternatives) {
    if (a.prediction.stepTime > 0)
      os << llvm::formatv("  {0,-62} {1:f3} s  {2}\n", configLine(a.config),
                          a.prediction.stepTime, a.reason);
    else
      os << llvm::formatv("  dp={0} tp={1} pp={2}{3,-45} {4}\n", a.config.dp,
                          a.config.tp, a.config.pp, "", a.reason);
  }
  os << llvm::formatv("\nSearched {0} plans in {1:f3} s.\n", r.evaluated,
                      r.searchTimeS);
  return s;
}
