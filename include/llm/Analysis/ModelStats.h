//===- ModelStats.h - parameter, FLOP and token counts ------------*- C++ -*-===//
//
// Counts read off the model graph itself (never off a model name): what
// `llm-compile --emit=stats` prints and what the planner's cost model starts
// from.
//
//===----------------------------------------------------------------------===//
#ifndef LLM_ANALYSIS_MODELSTATS_H
#define LLM_ANALYSIS_MODELSTATS_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

#include <cstdint>

namespace mlir {
namespace func {
class FuncOp;
} // namespace func

namespace llm {

/// Attribute names that the importer writes and every later stage reads.
inline constexpr llvm::StringLiteral kParamAttr = "llm.param";
inline constexpr llvm::StringLiteral kInputAttr = "llm.input";
/// Default initialization of a parameter: "normal" (with llm.init_std),
/// "zeros" or "ones".
inline constexpr llvm::StringLiteral kInitAttr = "llm.init";
inline constexpr llvm::StringLiteral kInitStdAttr = "llm.init_std";
/// Marks the training step that llm-autodiff builds next to the model.
inline constexpr llvm::StringLiteral kTrainStepAttr = "llm.train_step";
inline constexpr llvm::StringLiteral kResultAttr = "llm.result";
inline constexpr llvm::StringLiteral kGradAttr = "llm.grad";
inline constexpr llvm::StringLiteral kAdamMAttr = "llm.adam_m";
inline constexpr llvm::StringLiteral kAdamVAttr = "llm.adam_v";
inline constexpr llvm::StringLiteral kUpdateAttr = "llm.update";

struct ModelStats {
  /// Elements of all parameters (tied weights once).
  int64_t params = 0;
  /// Matmul FLOPs of one forward pass.
  int64_t forwardMatmulFlops = 0;
  /// Matmul FLOPs of forward + backward, without recomputation (exact while
  /// it fits 63 bits; `flopsOverflow` says when it does not).
  int64_t flopsPerStep = 0;
  /// The same in floating point, for models beyond 2^63 FLOPs per step.
  double flopsPerStepF = 0;
  bool flopsOverflow = false;
  /// Tokens consumed by one step (elements of the `tokens` input).
  int64_t tokensPerStep = 0;
};

/// The module's model function: the one `func.func` with `llm.param`
/// arguments that is not a training step (`llm.train_step`). Emits an error on `module` and fails if there is none or more
/// than one.
FailureOr<func::FuncOp> getModelFunction(ModuleOp module);

/// Computes the stats of the model function `fn`; emits an error on `fn` and
/// fails when it has no `tokens` input.
FailureOr<ModelStats> computeModelStats(func::FuncOp fn);

/// Layer index of a parameter name: "h.N." / "model.layers.N." -> N,
/// embeddings -> -1, anything else (final norm, LM head) -> `post`.
int64_t layerOfParam(StringRef name, int64_t post);

/// Rows of the vocabulary each of `tp` ranks holds under vocabulary
/// parallelism: ceil(vocab / tp) rounded up to a multiple of `align`, i.e.
/// roundUp(vocab, align x tp) / tp (Megatron pads the vocabulary so, with
/// align = 128 for its GPUs' tiles; the last ranks' shards are padded), or
/// 0 when that would leave a rank none of the model's vocabulary
/// (llm-partition then keeps it whole). With tp = 1 it is the padded
/// vocabulary itself. One rule for the partitioner, the sharding annotation
/// and the planner.
inline int64_t vocabRowsPerRank(int64_t vocab, int64_t tp, int64_t align = 1) {
  if (tp < 1 || vocab < 1 || align < 1)
    return 0;
  int64_t rows = (vocab + tp - 1) / tp;
  rows = (rows + align - 1) / align * align;
  return (tp - 1) * rows < vocab ? rows : 0;
}

/// Records the whole model's stats as `llm.stats` on `module`, once: the
/// passes that cut the model function to one rank's share (llm-pipeline-stage,
/// llm-partition) call it first, so that the runtime reports the whole
/// model's FLOPs and parameters.
LogicalResult recordWholeModelStats(ModuleOp module, func::FuncOp fn);

} // namespace llm
} // namespace mlir

#endif // LLM_ANALYSIS_MODELSTATS_H
