//===- FusedKernels.h - the compiler's fusion groups on the CPU ---*- C++ -*-===//
//
// What a fused_elementwise or fused_norm instruction computes (ProgramFormat.h),
// interpreted on the host: the CPU executor runs these, and llmrt-cuda-check
// compares the compiler's generated GPU kernels with them.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_FUSEDKERNELS_H
#define LLMRT_FUSEDKERNELS_H

#include "llmrt/ProgramFormat.h"

namespace llmrt::cpu {

/// A fused_elementwise group: `operands` its inputs, then its outputs (fp32).
/// An output may be an input's very buffer (read before it is written).
void fusedElementwise(const FusedProgram &fp, void *const *operands);

/// A fused_norm: `operands` the prologue's inputs, its outputs, then y
/// (fp32). Row by row: the prologue, then the norm's own CPU kernel on the
/// row (the same bits as the unfused add and norm).
void fusedNorm(const FusedNormProgram &fn, void *const *operands, double eps);

} // namespace llmrt::cpu

#endif // LLMRT_FUSEDKERNELS_H
