//===- FusedKernels.cpp - the compiler's fusion groups on the CPU ---------===//
#include "llmrt/FusedKernels.h"

#include "llmrt/CpuKernels.h"
#include "llmrt/MicroOps.h"

#include <vector>

namespace llmrt::cpu {

namespace {
float *F(void *p) { return static_cast<float *>(p); }

/// A fusion group at element e: v gets its inputs, then its micro-ops'
/// results (the value ids); the outputs are stored.
void runElement(const FusedProgram &fp, void *const *p, int64_t e, float *v) {
  const int64_t I = fp.numInputs(), M = static_cast<int64_t>(fp.ops.size());
  for (int64_t i = 0; i < I; ++i)
    v[i] = F(p[i])[fp.nb[i] == fp.n ? e : e % fp.nb[i]];
  for (int64_t k = 0; k < M; ++k) {
    const FusedProgram::Op &o = fp.ops[k];
    v[I + k] = applyMicroOp(o.op, v[o.a], o.b >= 0 ? v[o.b] : 0.0f);
  }
  for (size_t o = 0; o < fp.outputs.size(); ++o)
    F(p[I + o])[e] = v[fp.outputs[o]];
}
} // namespace

void fusedElementwise(const FusedProgram &fp, void *const *p) {
#pragma omp parallel for schedule(static) if (fp.n >= (1 << 15))
  for (int64_t e = 0; e < fp.n; ++e) {
    float v[64 + 256];
    runElement(fp, p, e, v);
  }
}

void fusedNorm(const FusedNormProgram &fn, void *const *p, double eps) {
  const FusedProgram &fp = fn.pro;
  const int64_t C = fn.C;
  float *y = F(p[fp.nb.size() + fp.outputs.size()]);
#pragma omp parallel for schedule(static) if (fp.n >= (1 << 15))
  for (int64_t row = 0; row < fn.rows; ++row) {
    static thread_local std::vector<float> xs;
    xs.resize(C);
    for (int64_t c = 0; c < C; ++c) {
      float v[64 + 256];
      runElement(fp, p, row * C + c, v);
      xs[c] = v[fn.x];
    }
    if (fn.kind == FusedNormProgram::Layer)
      layerNormFwd(xs.data(), F(p[fn.w]), F(p[fn.b]), y + row * C, 1, C, eps);
    else
      rmsNormFwd(xs.data(), F(p[fn.w]), y + row * C, 1, C, eps);
  }
}

} // namespace llmrt::cpu
