//===- Planner.h - cost model and plan search ---------------------*- C++ -*-===//
//
// The auto-planner: a profile of the model read off its graph, a cost model
// of time and memory per device under a parallel plan on a cluster, and the
// search for the fastest plan that fits. docs/planner.md explains the model
// and how its efficiency factors were fitted.
//
//===----------------------------------------------------------------------===//
#ifndef LLM_PLANNER_PLANNER_H
#define LLM_PLANNER_PLANNER_H

#include "llm/Planner/Cluster.h"

#include "mlir/IR/BuiltinOps.h"

#include <optional>
#include <string>
#include <vector>

namespace mlir::llm {

//===----------------------------------------------------------------------===//
// Model profile (from the graph)
//===----------------------------------------------------------------------===//

/// One op of the profile, per sequence of the batch.
struct OpProfile {
  std::string name;       ///< op name, for reports
  double flops = 0;       ///< forward matmul FLOPs per sequence
  double actBytes = 0;    ///< activation bytes read + written per sequence
  double weightBytes = 0; ///< parameter bytes read (once per micro-batch)
  bool tpSplit = false;   ///< split by tensor parallelism (Megatron rules)
  bool attentionCore = false; ///< recomputed under selective remat
  /// A split whose results only attention reads (as q, k or v): no kernel
  /// where the compiler's attention column views are on (nor its
  /// gradient's concat).
  bool columnView = false;
};

/// A group of ops: one transformer layer, or the embedding (pre) / final
/// norm, LM head and loss (post).
struct BlockProfile {
  std::vector<OpProfile> ops;
  double paramsSplit = 0;      ///< parameters split by TP
  double paramsReplicated = 0; ///< parameters every TP rank holds
  /// Bytes per sequence of the forward values the backward reads
  /// (what the llm-autodiff rules keep alive), by TP layout.
  double savedSplit = 0, savedReplicated = 0;
  /// Of those, the bytes (at the IR's f32 size) of the values the CUDA
  /// runtime stores 16-bit (Profile.cpp's stored16: with 16-bit products).
  double saved16Split = 0, saved16Replicated = 0;
  /// Bytes per sequence of the block's input (kept under full remat).
  double inputBytes = 0;
  /// Bytes per sequence at each TP boundary (all-reduce payload), and the
  /// number of such boundaries in the forward.
  double tpBoundaryBytes = 0;
  int tpBoundaries = 0;
};

struct ModelProfile {
  std::string modelType;
  int64_t layers = 0, hidden = 0, heads = 0, kvHeads = 0, ffn = 0,
          vocab = 0, seq = 0, batch = 0;
  bool tiedEmbeddings = false;
  /// llm-partition's vocab-align for the executable planned (128 for GPUs,
  /// 1 for the CPU): the vocabulary is costed as it pads it. Not read off
  /// the graph; the caller sets it (llm-compile --vocab-align,
  /// llm-auto-plan's vocab-align).
  int64_t vocabAlign = 1;
  int elemBytes = 4;            ///< activation/weight element size in the IR
  std::string precision;        ///< "fp32", "bf16" or "fp16"
  /// The matrix products' precision where it is not the storage's (a
  /// 16-bit model stored in f32, llm-f32-storage; the CUDA backend's bf16
  /// GEMMs): the device's peak for it is the one the time model takes.
  std::string computePrecision;
  const std::string &peakPrecision() const {
    return computePrecision.empty() ? precision : computePrecision;
  }
  BlockProfile pre, layer, post;
  double flopsPerStep = 0;      ///< model FLOPs (no recompute), whole batch
  double params = 0;
  /// Activation accounting of an implementation other than ours, to compare
  /// with published memory figures: dropout keeps a one-byte mask after the
  /// attention and MLP blocks, and a non-fused attention keeps its softmax
  /// output, the dropout mask and the dropped-out probabilities
  /// (heads x s^2 x (2 elem + 1) bytes per sequence). Our graph has neither.
  bool dropout = false, materializedSoftmax = false;
  /// Each attention's log-sum-exp kept for its backward (llm-compile
  /// --keep-attention-lse, the default for --target cuda): heads x s fp32
  /// values per sequence, split by TP, kept unless the attention is
  /// recomputed. Not read off the graph; the caller sets it.
  bool keepAttentionLse = false;
  /// The CUDA runtime's 16-bit storage (runtime Store16.h): with 16-bit
  /// matrix products it keeps the activations whose readers allow it in 16
  /// bits, so its memory-bound kernels move fewer bytes than the f32 types
  /// of the IR say (storageBytesFactor). Not read off the graph; llm-compile
  /// sets it for --target cuda with bf16 or fp16 products.
  bool storage16 = false;
  /// Whether the CUDA runtime's FlashAttention-2 kernels run this model's
  /// attention with 16-bit tensors (bf16 products, their head dimension;
  /// Profile.cpp): its fp32 dq accumulator is then workspace.
  bool flashAttention16 = false;
  /// With storage16, the CUDA runtime's arena packed anew with the 16-bit
  /// tensors at half their size (runtime ArenaPack.h, LLMRT_CUDA_ARENA16):
  /// the saved16 bytes, and the logits and their gradient, take half the
  /// memory on a plan of one device (arena16Saving). Not read off the
  /// graph; llm-compile sets it with storage16.
  bool arena16 = false;
  /// With storage16, the CUDA runtime's 16-bit copies of the GEMMs'
  /// weights (LLMRT_CUDA_WEIGHT16: one rank only), 2 bytes a parameter on
  /// a plan of one device (counted for every parameter: the position
  /// embedding's, the one that is no GEMM's weight, is a small part). Not
  /// read off the graph; llm-compile sets it with storage16.
  bool weightCopies16 = false;
  /// llm-lower-to-rt's attention column views (the default): the splits
  /// marked columnView cost nothing. Not read off the graph; llm-compile
  /// sets it.
  bool attentionColumnViews = false;
  /// The CUDA runtime's residual adds done by the GEMM before them (its C
  /// with beta = 1; LLMRT_CUDA_FUSE_ADD, the default on one rank): with
  /// storage16, a layer's add on a one-rank plan costs what the GEMM then
  /// moves beyond its own 16-bit output (storageBytesFactor's addInGemm).
  /// Not read off the graph; llm-compile sets it for --target cuda (with
  /// --fuse-norms the forward adds are in the norms instead, about the
  /// same bytes).
  bool fusedResidualAdds = false;
};

/// The bytes an op of the profile moves on the target, relative to its
/// f32 IR types: 1 unless `storage16` (and f32 storage in the IR). Then, by
/// op, what the CUDA runtime stores 16-bit: a layer or RMS norm reads the
/// f32 residual stream and writes 16 bits (6 of 8 bytes an element); GELU
/// runs in the GEMM's epilogue (its 16-bit write left: 1/4); SiLU, the
/// loss's logits and the linears' activations are 16-bit (1/2);
/// a residual add reads f32 and 16 bits and writes f32 (10 of 12);
/// attention's tensors are 16-bit with bf16 products (1/2; fp16 models'
/// attention stays f32); embeddings and the rest stay f32.
/// `addInGemm`: op is a layer's residual add on a one-rank plan, which the
/// runtime does in the GEMM before it where m.fusedResidualAdds.
double storageBytesFactor(const ModelProfile &m, const OpProfile &op, bool addInGemm = false);

/// Reads the profile off the module's model function: ops are assigned to
/// layers by the Hugging Face names of the parameters they read; layer 0
/// stands for all (the importer's layers are identical, which is checked).
FailureOr<ModelProfile> profileModel(ModuleOp module);

//===----------------------------------------------------------------------===//
// Plans
//===----------------------------------------------------------------------===//

/// Budget: full recomputation of the first `rematLayers` layers only, the
/// fewest that make the plan fit (each layer costs the same to recompute
/// and frees the same memory at the peak).
enum class Remat { None, Selective, Full, Budget };
enum class Schedule { GPipe, OneFOneB, Interleaved };

const char *rematName(Remat r);
/// The plan's remat as the plan attribute and reports write it:
/// "none", "selective", "full", or "budget:K".
std::string rematLabel(Remat r, int64_t rematLayers);
const char *scheduleName(Schedule s);

/// A fully specified plan.
struct PlanConfig {
  int64_t dp = 1, tp = 1, pp = 1, vpp = 1, zero = 0, mbs = 1;
  bool sp = false;
  Remat remat = Remat::None;
  int64_t rematLayers = 0; ///< Remat::Budget: layers recomputed
  Schedule schedule = Schedule::OneFOneB;
};

/// "dp=2 tp=4 sp pp=1 zero=1 remat=full mbs=4 schedule=1f1b".
std::string describePlan(const PlanConfig &c);

/// Keys fixed by --plan SPEC; the rest are searched.
struct PlanSpec {
  std::optional<int64_t> dp, tp, pp, vpp, zero, mbs, microbatches;
  std::optional<bool> sp;
  std::optional<Remat> remat;
  std::optional<int64_t> rematLayers; ///< remat=budget:K
  std::optional<Schedule> schedule;
};

/// Parses "dp=2,tp=4,remat=full,..." (DESIGN.md section 5).
llvm::Expected<PlanSpec> parsePlanSpec(llvm::StringRef spec);

/// Time and memory of one plan, per device of the busiest stage.
struct Prediction {
  bool feasible = true;
  std::string infeasibleReason; ///< why not, when !feasible
  double stepTime = 0;
  // Step-time breakdown (seconds on the critical path).
  double compute = 0, recompute = 0, tpComm = 0, ppComm = 0, dpComm = 0,
         bubble = 0, optimizer = 0;
  // Memory (bytes, busiest device).
  double weights = 0, grads = 0, optimizerState = 0, activations = 0,
         temporaries = 0;
  /// The peak: weights and optimizer state stay; gradients are made during
  /// the backward in the memory the activations it consumes free, so the
  /// peak is the larger of (activations + temporaries) at the start of the
  /// backward and (gradients + one layer's working set) at its end.
  double peak = 0;
  double memory() const {
    return peak > 0 ? peak
                    : weights + grads + optimizerState + activations +
                          temporaries;
  }
  double bubbleFraction = 0;
  double tflopsPerDevice = 0; ///< model FLOPs (no recompute) / time / world
  /// Bytes one rank contributes to collectives per step, before the ring
  /// factors: tensor-parallel all-reduces, data-parallel gradient reduction
  /// (and ZeRO's gathers).
  double tpBytes = 0, dpBytes = 0;
  int64_t microbatches = 0;
  /// Layer ranges [begin, end) of each pipeline chunk (pp * vpp of them),
  /// chunk c on rank c % pp.
  std::vector<std::pair<int64_t, int64_t>> stages;

  /// Per pipeline rank: layers held, per-step time components and memory.
  struct Stage {
    int64_t layers = 0;
    double compute = 0, recompute = 0, tpComm = 0, ppComm = 0;
    double weights = 0, grads = 0, optimizerState = 0, activations = 0,
           temporaries = 0, peak = 0;
    double memory() const { return peak; }
  };
  std::vector<Stage> perStage;
};

struct PlanCandidate {
  PlanConfig config;
  Prediction prediction;
  std::string reason; ///< for alternatives: why it lost
};

struct SearchResult {
  bool found = false;
  PlanCandidate best;
  std::vector<PlanCandidate> alternatives;
  double searchTimeS = 0;
  int64_t evaluated = 0;
  std::string whyNone; ///< when nothing fits
};

/// The fraction of the saved16 bytes (and of the logits) that the CUDA
/// runtime's 16-bit arena saves under plan c: one half with m.arena16 on
/// one device, else none (an upper bound: CostModel.cpp says why).
double arena16Saving(const ModelProfile &m, const PlanConfig &c);

/// Activation bytes one layer keeps for the backward, for one micro-batch,
/// under the plan's TP, SP and remat (what Korthikanti et al. tabulate).
double activationBytesPerLayer(const ModelProfile &m, const PlanConfig &c);

/// Structural validity (divisibility, cluster shape) of `c` for `world`
/// devices; returns an empty string when valid, else the reason.
std::string checkPlan(const ModelProfile &m, const Cluster &cl, int64_t world,
                      const PlanConfig &c);

/// The cost model: predicted time and memory of `c`.
Prediction evaluatePlan(const ModelProfile &m, const Cluster &cl,
                        int64_t world, const PlanConfig &c);

/// Searches the plans that satisfy `spec` for the fastest that fits.
/// `exhaustive` disables pruning (for tests).
SearchResult searchPlans(const ModelProfile &m, const Cluster &cl,
                         int64_t world, const PlanSpec &spec,
                         bool exhaustive = false);

/// The plan as the `#llm.plan` attribute (llm.plan on the module).
Attribute planAttribute(MLIRContext *ctx, int64_t world,
                        const PlanCandidate &plan);

/// --emit=plan JSON and the --explain report.
std::string planJSON(const ModelProfile &m, int64_t world,
                     const SearchResult &r);
std::string planReport(const ModelProfile &m, const Cluster &cl,
                       int64_t world, const SearchResult &r);

} // namespace mlir::llm

#endif // LLM_PLANNER_PLANNER_H
