//===- LLMOps.cpp - llm op definitions and interface methods --------------===//
//
// Generated op definitions plus the small accessors and FLOP counts. The
// verifiers live in LLMVerifiers.cpp.
//
//===----------------------------------------------------------------------===//
#include "llm/LLMOps.h"

#include <cmath>

using namespace mlir;
using namespace mlir::llm;

#include "llm/LLMInterfaces.cpp.inc"

#define GET_OP_CLASSES
#include "llm/LLMOps.cpp.inc"

/// Product of all but the last dimension: the number of rows a last-axis op
/// processes.
static int64_t leadingElements(ShapedType type) {
  int64_t n = 1;
  for (int64_t d : type.getShape().drop_back())
    n *= d;
  return n;
}

//===----------------------------------------------------------------------===//
// LinearOp
//===----------------------------------------------------------------------===//

int64_t LinearOp::getInFeatures() {
  auto shape = getWeight().getType().getShape();
  return getTransposeWeight() ? shape[1] : shape[0];
}

int64_t LinearOp::getOutFeatures() {
  auto shape = getWeight().getType().getShape();
  return getTransposeWeight() ? shape[0] : shape[1];
}

int64_t LinearOp::getMatmulFlops() {
  return 2 * leadingElements(getInput().getType()) * getInFeatures() *
         getOutFeatures();
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

int64_t AttentionOp::getHeadDim() {
  return getQ().getType().getShape()[2] / getNumHeads();
}

double AttentionOp::getEffectiveScale() {
  if (FloatAttr s = getScaleAttr())
    return s.getValueAsDouble();
  return 1.0 / std::sqrt(static_cast<double>(getHeadDim()));
}

int64_t AttentionOp::getMatmulFlops() {
  // q·kᵀ and p·v, each 2·seq·seq·head_dim per head, counted in full even when
  // causal (the convention of Narayanan et al. 2021, eq. 3).
  auto shape = getQ().getType().getShape();
  int64_t batch = shape[0], seq = shape[1], hidden = shape[2];
  return 2 * 2 * batch * seq * seq * hidden;
}

//===----------------------------------------------------------------------===//
// Backward ops: FLOPs of the backward pass itself (no further backward).
//===----------------------------------------------------------------------===//

int64_t LinearWeightGradOp::getMatmulFlops() {
  auto in = getInput().getType();
  return 2 * leadingElements(in) * in.getShape().back() *
         getDy().getType().getShape().back();
}
int64_t LinearWeightGradOp::getBackwardFlopsFactor() { return 0; }

int64_t AttentionGradOp::getMatmulFlops() {
  // Four products (dV, dP, dQ, dK) plus the recomputed q·kᵀ.
  auto shape = getQ().getType().getShape();
  return 5 * 2 * shape[0] * shape[1] * shape[1] * shape[2];
}
int64_t AttentionGradOp::getBackwardFlopsFactor() { return 0; }

// After llm-keep-attention-lse: the same FLOPs as the ops they replace (the
// backward still forms q·kᵀ for the probabilities).
int64_t AttentionLseOp::getMatmulFlops() {
  auto shape = getQ().getType().getShape();
  return 2 * 2 * shape[0] * shape[1] * shape[1] * shape[2];
}
int64_t AttentionGradLseOp::getMatmulFlops() {
  auto shape = getQ().getType().getShape();
  return 5 * 2 * shape[0] * shape[1] * shape[1] * shape[2];
}
int64_t AttentionGradLseOp::getBackwardFlopsFactor() { return 0; }
