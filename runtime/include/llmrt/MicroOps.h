//===- MicroOps.h - one element of a fusion group, on the host ----*- C++ -*-===//
//
// The scalar semantics of the micro-ops of a fused_elementwise instruction
// (ProgramFormat.h): what the CPU executor interprets, and the formulas the
// compiler's GPU kernels implement (lib/Conversion/FuseElementwise.cpp).
// They are those of the kernels of the same names in CpuKernels.h.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_MICROOPS_H
#define LLMRT_MICROOPS_H

#include "llmrt/ProgramFormat.h"

#include <cmath>

namespace llmrt {

inline constexpr float kGeluBeta = 0.7978845608028654f; // sqrt(2 / pi)
inline constexpr float kGeluKappa = 0.044715f;

/// The value of micro-op `op` on a and b (b unused by unary ops).
inline float applyMicroOp(MicroOp op, float a, float b) {
  switch (op) {
  case MicroOp::Add:
    return a + b;
  case MicroOp::Mul:
    return a * b;
  case MicroOp::GeluFwd: {
    // x sigmoid(2 z), z = beta (x + kappa x^3).
    float z = kGeluBeta * (a + kGeluKappa * a * a * a);
    return a / (1.0f + std::exp(-2.0f * z));
  }
  case MicroOp::GeluBwd: {
    float z = kGeluBeta * (a + kGeluKappa * a * a * a);
    float s = 1.0f / (1.0f + std::exp(-2.0f * z));
    float dz = kGeluBeta * (1.0f + 3.0f * kGeluKappa * a * a);
    return b * (s + 2.0f * a * s * (1.0f - s) * dz);
  }
  case MicroOp::SiluFwd:
    return a / (1.0f + std::exp(-a));
  case MicroOp::SiluBwd: {
    float s = 1.0f / (1.0f + std::exp(-a));
    return b * s * (1.0f + a * (1.0f - s));
  }
  }
  return 0.0f;
}

} // namespace llmrt

#endif // LLMRT_MICROOPS_H
