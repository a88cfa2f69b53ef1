//===- llm-compile.cpp - the compiler driver ------------------------------===//
//
//   llm-compile FILE [--cluster FILE] [--devices N] [--plan auto|SPEC]
//               [--target cpu|cuda] [--vocab-align N]
//               [--emit=exe|plan|stats|mlir|ptx] [-o FILE]
//
//===----------------------------------------------------------------------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/Conversion/Passes.h"
#include "llm/InitAll.h"
#include "llm/LLMOps.h"
#include "llm/Planner/Planner.h"
#include "DefaultCluster.h"
#include "llm/Target/Serialize.h"
#include "llm/Transforms/Passes.h"
#include "llmrt/ProgramFormat.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

#include <optional>

using namespace mlir;
namespace cl = llvm::cl;

namespace {
enum class Emit { Exe, Plan, Stats, Mlir, Ptx };
} // namespace

static cl::OptionCategory category("llm-compile options");
static cl::opt<std::string> inputPath(cl::Positional, cl::Required,
                                      cl::desc("<model.mlir>"),
                                      cl::cat(category));
static cl::opt<std::string> clusterPath("cluster",
                                        cl::desc("cluster description (JSON)"),
                                        cl::value_desc("file"), cl::cat(category));
static cl::opt<int64_t> devices("devices", cl::init(1),
                                cl::desc("number of ranks to compile for"),
                                cl::cat(category));
static cl::opt<std::string> plan("plan", cl::init("auto"),
                                 cl::desc("auto, or key=value pairs: dp, tp, pp, "
                                          "vpp, sp, zero, remat, mbs, mb, "
                                          "schedule"),
                                 cl::cat(category));
static cl::opt<std::string> target("target", cl::init("cpu"),
                                   cl::desc("cpu or cuda"), cl::cat(category));
static cl::opt<Emit> emit(
    "emit", cl::init(Emit::Exe), cl::desc("what to produce"),
    cl::values(clEnumValN(Emit::Exe, "exe", "the training executable"),
               clEnumValN(Emit::Plan, "plan", "the chosen plan as JSON"),
               clEnumValN(Emit::Ptx, "ptx", "the GPU kernels the compiler generated (--target cuda), as PTX"),
               clEnumValN(Emit::Stats, "stats",
                          "params, flops_per_step, tokens_per_step as JSON"),
               clEnumValN(Emit::Mlir, "mlir", "the compiled IR")),
    cl::cat(category));
static cl::opt<bool> fuseElementwise(
    "fuse-elementwise",
    cl::desc("merge chains of elementwise kernels (always with --target cuda, "
             "where each group is a generated GPU kernel; on the CPU the "
             "runtime interprets the groups)"),
    cl::init(false), cl::cat(category));
static cl::opt<bool> fuseNorms(
    "fuse-norms",
    cl::desc("end fusion groups in the layer or RMS norm that reads them "
             "(a residual add and the next norm: one fused_norm kernel, "
             "a generated GPU kernel with --target cuda). Implies "
             "--fuse-elementwise. Default: off (on an H100 as fast as the "
             "runtime's own add fusions, not faster)"),
    cl::init(false), cl::cat(category));
static cl::opt<bool> keepAttentionLse(
    "keep-attention-lse",
    cl::desc("keep each attention's log-sum-exp for its backward "
             "(llm-keep-attention-lse: the backward skips its row-statistics "
             "pass). Default: on for --target cuda (checked on H100 and "
             "H200), off for the CPU"),
    cl::init(false), cl::cat(category));
static cl::opt<bool> attentionColumnViews(
    "attention-column-views",
    cl::desc("attention reads q, k, v in place from the fused q/k/v "
             "projection's output and writes dq, dk, dv in place into its "
             "gradient, without column copies (llm-lower-to-rt). Default: on"),
    cl::init(true), cl::cat(category));
static cl::opt<bool> overlapWeightGrads(
    "overlap-weight-grads",
    cl::desc("keep each weight gradient's operands alive until the next weight "
             "gradient, so that the CUDA runtime may run weight gradients on a "
             "second stream (LLMRT_CUDA_WGRAD_STREAM=1), where the arena's peak "
             "does not grow; one rank. Default: on for --target cuda"),
    cl::init(false), cl::cat(category));
static cl::opt<int64_t> vocabAlign(
    "vocab-align",
    cl::desc("pad the vocabulary (embedding table, LM head, logits) so that "
             "each tensor-parallel rank holds a multiple of N rows, as "
             "Megatron-LM's --make-vocab-size-divisible-by (the padding is "
             "outside the softmax, gets no gradient and stays zero; "
             "checkpoints keep the model's shape). Default: 128 for --target "
             "cuda (odd GEMM dimensions defeat the tensor cores), 1 for the "
             "CPU"),
    cl::value_desc("N"), cl::cat(category));
static cl::opt<std::string> gpuChip("gpu-chip", cl::init("sm_90"),
                                    cl::desc("the GPU the kernels are built for (--target cuda)"),
                                    cl::cat(category));
static cl::opt<double> dpBucketMB(
    "dp-bucket-mb", cl::init(25.0),
    cl::desc("data-parallel gradient buckets of at most this many MiB (and "
             "at most 1/8 of the gradients, at least 1 MiB), each reduced by "
             "one non-blocking all-reduce overlapped with the rest of the "
             "backward (0: one synchronous all-reduce per gradient)"),
    cl::cat(category));
static cl::opt<bool> explain("explain",
                             cl::desc("print a readable report of the plan, "
                                      "its cost breakdown and the "
                                      "alternatives"),
                             cl::cat(category));
static cl::opt<std::string> output("o", cl::init("-"),
                                   cl::desc("output file"),
                                   cl::value_desc("file"), cl::cat(category));

static int fail(const llvm::Twine &msg) {
  llvm::WithColor::error(llvm::errs(), "llm-compile") << msg << "\n";
  return 1;
}

static void printStats(const llm::ModelStats &s, llvm::raw_ostream &os) {
  llvm::json::OStream j(os, /*IndentSize=*/2);
  j.object([&] {
    j.attribute("params", s.params);
    // Exact while it fits 63 bits (every model below ~100B parameters at
    // usual batch sizes); beyond that, a double.
    if (s.flopsOverflow)
      j.attribute("flops_per_step", s.flopsPerStepF);
    else
      j.attribute("flops_per_step", s.flopsPerStep);
    j.attribute("tokens_per_step", s.tokensPerStep);
  });
  os << "\n";
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  if (!cl::ParseCommandLineOptions(argc, argv, "llm compiler driver\n",
                                   &llvm::errs()))
    return 1;
  if (devices <= 0)
    return fail("--devices must be positive, got " + llvm::Twine(devices));
  if (target != "cpu" && target != "cuda")
    return fail("--target '" + target + "' is not one of cpu, cuda");
  if (vocabAlign.getNumOccurrences() && vocabAlign < 1)
    return fail("--vocab-align must be at least 1, got " +
                llvm::Twine(vocabAlign.getValue()));
  // The planner costs the vocabulary as llm-partition pads it.
  const int64_t align = vocabAlign.getNumOccurrences() ? vocabAlign.getValue()
                        : target == "cuda"             ? 128
                                                       : 1;
  // The kept log-sum-exp: the CUDA runtime's FlashAttention-2 takes it.
  const bool keepLse = keepAttentionLse.getNumOccurrences()
                           ? keepAttentionLse.getValue()
                           : target == "cuda";

  DialectRegistry registry;
  llm::registerAllDialects(registry);
  MLIRContext context(registry);
  // Diagnostics name the op and its location; the whole op is noise to users.
  context.printOpOnDiagnostic(false);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagHandler(sourceMgr, &context);
  std::string err;
  auto file = openInputFile(inputPath, &err);
  if (!file)
    return fail(err);
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return 1; // the parser or verifier has reported the error

  FailureOr<func::FuncOp> fn = llm::getModelFunction(*module);
  if (failed(fn))
    return 1;

  if (emit == Emit::Stats) {
    FailureOr<llm::ModelStats> stats = llm::computeModelStats(*fn);
    if (failed(stats))
      return 1;
    auto out = openOutputFile(output, &err);
    if (!out)
      return fail(err);
    printStats(*stats, out->os());
    out->keep();
    return 0;
  }
  // The cluster: --cluster, or for the CPU target this machine's measured
  // description (examples/clusters/local-cpu.json), for CUDA a DGX H100
  // (examples/clusters/dgx-h100-80g.json); both built in.
  auto loadClusterOpt = [&]() -> llvm::Expected<llm::Cluster> {
    llvm::Expected<llm::Cluster> c =
        !clusterPath.empty() ? llm::loadCluster(clusterPath)
        : target == "cuda"
            ? llm::parseCluster(kDefaultGpuCluster, "<built-in dgx-h100-80g cluster>")
            : llm::parseCluster(kDefaultCpuCluster, "<built-in local-cpu cluster>");
    // A CPU machine's ranks share its cores (more ranks than cores: mpirun
    // --oversubscribe; fewer: several threads each).
    if (!c)
      return c;
    bool wholeCluster = !devices.getNumOccurrences() && (emit == Emit::Plan || explain);
    return c->sharedBy(wholeCluster ? c->devices() : devices.getValue());
  };
  // What planning reads: the cluster, the --plan keys, the model's profile.
  std::optional<llm::Cluster> cluster;
  std::optional<llm::PlanSpec> spec;
  std::optional<llm::ModelProfile> profile;
  auto loadPlanInputs = [&]() -> int {
    auto c = loadClusterOpt();
    if (!c)
      return fail(llvm::toString(c.takeError()));
    auto s = llm::parsePlanSpec(plan);
    if (!s)
      return fail(llvm::toString(s.takeError()));
    FailureOr<llm::ModelProfile> p = llm::profileModel(*module);
    if (failed(p))
      return 1;
    cluster = std::move(*c);
    spec = *s;
    profile = std::move(*p);
    profile->vocabAlign = align;
    profile->keepAttentionLse = keepLse;
    profile->attentionColumnViews = attentionColumnViews;
    // The CUDA runtime's 16-bit storage of activations (the default with
    // 16-bit products): its memory-bound kernels move fewer bytes.
    profile->storage16 = target == "cuda" && (profile->computePrecision == "bf16" ||
                                              profile->computePrecision == "fp16");
    // ... and its arena packed with their 16-bit sizes (one rank).
    profile->arena16 = profile->storage16;
    // ... and its GEMM weights' 16-bit copies (one rank).
    profile->weightCopies16 = profile->storage16;
    // Its residual adds in the GEMMs before them (one rank).
    profile->fusedResidualAdds = target == "cuda";
    return 0;
  };
  // The runtime stores every tensor in f32 (master weights, activations,
  // gradients, moments): a bf16 or f16 model becomes mixed-precision
  // training with its matrix products in that precision on GPUs, and the
  // CPU computes in f32. The CUDA backend's GEMMs are bf16 for an f32 model
  // too. The planner takes the device's peak for the products' precision.
  // An executable is planned that way; --emit=plan for the CPU target keeps
  // the model's declared storage (how Megatron-LM would run it: what the
  // planner's calibration compares with), for --target cuda it plans the
  // executable.
  auto storeF32 = [&]() -> int {
    PassManager pm(&context);
    pm.addPass(llm::createF32Storage());
    if (failed(pm.run(*module)))
      return 1;
    auto declared = (*module)->getAttrOfType<StringAttr>("llm.compute_precision");
    std::string compute =
        target == "cuda" ? (declared ? declared.getValue().str() : "bf16") : "fp32";
    (*module)->setAttr("llm.compute_precision", StringAttr::get(&context, compute));
    return 0;
  };
  if (target == "cuda" || (emit != Emit::Plan && !explain))
    if (int rc = storeF32())
      return rc;

  if (emit == Emit::Plan || explain) {
    if (clusterPath.empty())
      return fail("--emit=plan and --explain need --cluster FILE");
    if (int rc = loadPlanInputs())
      return rc;
    int64_t world = devices.getNumOccurrences() ? devices.getValue()
                                                : cluster->devices();
    llm::SearchResult r = llm::searchPlans(*profile, *cluster, world, *spec);
    if (explain)
      llvm::outs() << llm::planReport(*profile, *cluster, world, r);
    if (!r.found)
      return fail("no plan for " + llvm::Twine(world) + " devices: " +
                  r.whyNone);
    if (emit == Emit::Plan) {
      auto out = openOutputFile(output, &err);
      if (!out)
        return fail(err);
      out->os() << llm::planJSON(*profile, world, r);
      out->keep();
    }
    return 0;
  }
  // The plan decides what each rank computes, on one rank too (where it
  // chooses recomputation when the device's memory needs it, and refuses a
  // model that fits in no way instead of failing at launch). The
  // partitioner and llm-pipeline-stage implement everything the planner
  // searches: data, tensor, sequence and pipeline parallelism (GPipe, 1F1B,
  // interleaved), ZeRO 1-3, recomputation and gradient accumulation.
  {
    if (int rc = loadPlanInputs())
      return rc;
    const llm::SearchResult r = llm::searchPlans(*profile, *cluster, devices, *spec);
    if (!r.found)
      return fail("no plan for " + llvm::Twine(devices) + " devices: " +
                  r.whyNone);
    (*module)->setAttr("llm.plan",
                       llm::planAttribute(&context, devices, r.best));
  }

  // The training pipeline: backward, optimizer, lowering to the runtime.
  if (dpBucketMB < 0)
    return fail("--dp-bucket-mb must be >= 0, got " + std::to_string(dpBucketMB.getValue()));
  // One program per pipeline stage (one in all without pipelining): the
  // same passes on a copy of the module cut to each stage's chunks.
  auto chosen = (*module)->getAttrOfType<llm::PlanAttr>("llm.plan");
  const int64_t stages = std::max<int64_t>(1, chosen.getPp());
  if (stages > 1 && emit == Emit::Ptx)
    return fail("--emit=ptx prints one program's kernels: the plan has " +
                llvm::Twine(stages) + " pipeline stages (compile with --plan pp=1 "
                "to see them)");
  std::vector<OwningOpRef<ModuleOp>> programs;
  for (int64_t s = 0; s < stages; ++s) {
    OwningOpRef<ModuleOp> m =
        stages > 1 ? OwningOpRef<ModuleOp>(module->clone()) : std::move(module);
    PassManager pm(&context);
    if (stages > 1) {
      llm::PipelineStageOptions cut;
      cut.stage = s;
      pm.addPass(llm::createPipelineStage(cut));
    }
    llm::PartitionOptions partition;
    partition.vocabAlign = align;
    pm.addPass(llm::createPartition(partition));
    pm.addPass(llm::createAutodiff());
    pm.addPass(llm::createRematerialize());
    pm.addPass(llm::createMicrobatch());
    pm.addPass(llm::createOptimizer());
    if (keepLse)
      pm.addPass(llm::createKeepAttentionLse());
    llm::LowerToRTOptions lowering;
    lowering.bucketBytes = static_cast<int64_t>(dpBucketMB * 1048576.0);
    lowering.attentionColumnViews = attentionColumnViews;
    // Room for the CUDA runtime's weight gradients on a second stream.
    lowering.overlapWeightGrads = overlapWeightGrads.getNumOccurrences()
                                      ? overlapWeightGrads.getValue()
                                      : target == "cuda";
    pm.addPass(llm::createLowerToRT(lowering));
    if (target == "cuda" || fuseElementwise || fuseNorms) {
      llm::FuseElementwiseOptions fuse;
      fuse.gpu = target == "cuda";
      fuse.norms = fuseNorms;
      pm.addPass(llm::createFuseElementwise(fuse));
    }
    if (target == "cuda") {
      llm::GPUToPTXOptions ptx;
      ptx.chip = gpuChip;
      pm.addPass(llm::createGPUToPTX(ptx));
    }
    if (failed(pm.run(*m)))
      return 1;
    programs.push_back(std::move(m));
  }
  ModuleOp first = *programs.front();

  if (emit == Emit::Ptx) {
    if (target != "cuda")
      return fail("--emit=ptx needs --target cuda");
    FailureOr<std::string> ptxText = llm::getKernelPTX(first);
    if (failed(ptxText))
      return 1;
    auto out = openOutputFile(output, &err);
    if (!out)
      return fail(err);
    out->os() << *ptxText;
    out->keep();
    return 0;
  }

  if (emit == Emit::Mlir) {
    auto out = openOutputFile(output, &err);
    if (!out)
      return fail(err);
    for (auto [s, m] : llvm::enumerate(programs)) {
      if (stages > 1)
        out->os() << "// pipeline stage " << s << "\n";
      (*m)->print(out->os());
      out->os() << "\n";
    }
    out->keep();
    return 0;
  }

  std::vector<std::vector<uint8_t>> blobs;
  for (OwningOpRef<ModuleOp> &m : programs) {
    // The runtime the executable embeds ("cpu" or "cuda"), for tools that
    // read the program alone (llmrt-memory).
    if (auto meta = (*m)->getAttrOfType<DictionaryAttr>("llmrt.metadata")) {
      NamedAttrList entries(meta);
      entries.set("target", StringAttr::get(&context, target));
      (*m)->setAttr("llmrt.metadata", entries.getDictionary(&context));
    }
    FailureOr<std::vector<uint8_t>> one = llm::serializeProgram(*m);
    if (failed(one))
      return 1;
    blobs.push_back(std::move(*one));
  }
  FailureOr<std::vector<uint8_t>> blob =
      stages > 1 ? ::llmrt::writeBundle(blobs) : std::move(blobs.front());
  if (output == "-")
    return fail("--emit=exe needs -o FILE");
  std::string runner;
  if (const char *env = std::getenv("LLM_RUNNER")) {
    runner = env;
  } else {
    std::string self = llvm::sys::fs::getMainExecutable(
        argv[0], reinterpret_cast<void *>(&printStats));
    llvm::SmallString<256> path(llvm::sys::path::parent_path(self));
    // One GPU needs neither MPI nor NCCL where it runs; several take the
    // runner with both.
    llvm::sys::path::append(path, target == "cuda"
                                      ? (devices > 1 ? "llmrt-runner-cuda-mpi"
                                                     : "llmrt-runner-cuda")
                                  : devices > 1 ? "llmrt-runner-mpi"
                                                : "llmrt-runner");
    runner = std::string(path);
    if (target == "cuda" && !llvm::sys::fs::exists(runner))
      return fail("--target cuda: " + runner + " is missing: this build has " +
                  (devices > 1 ? "no multi-GPU runner (configure with a CUDA "
                                 "toolkit, NCCL and MPI and -DLLM_ENABLE_CUDA=ON)"
                               : "no CUDA backend (configure with a CUDA "
                                 "toolkit and -DLLM_ENABLE_CUDA=ON)"));
  }
  if (failed(llm::writeExecutable(runner, *blob, output, err)))
    return fail(err);
  return 0;
}
