//===- LLMAttrs.td - llm attributes -------------------------*- tablegen -*-===//
#ifndef LLM_ATTRS_TD
#define LLM_ATTRS_TD

include "llm/LLMBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/BuiltinAttributes.td"

def LLM_PlanAttr : AttrDef<LLM_Dialect, "Plan"> {
  let mnemonic = "plan";
  let summary = "a parallel training plan and its predicted cost";
  let description = [{
    What `llm-auto-plan` chose: data, tensor (with sequence parallelism
    `sp` = 0/1) and pipeline parallel degrees, virtual pipeline stages, ZeRO
    stage, recomputation, micro-batch size and count, pipeline schedule, the
    layer boundaries of the pipeline chunks (`stages`: chunk c holds layers
    [stages[c], stages[c+1])), and the cost model's predicted step time and
    per-device memory.

    Example:
    ```mlir
    module attributes {llm.plan = #llm.plan<world = 8, dp = 2, tp = 2, sp = 1,
        pp = 2, vpp = 1, zero = 1, remat = "selective", mbs = 1,
        microbatches = 4, schedule = "1f1b", stages = array<i64: 0, 6, 12>,
        step_time_s = 1.5e-01 : f64, memory_bytes_per_device = 2147483648>}
    ```
  }];
  let parameters = (ins "int64_t":$world, "int64_t":$dp, "int64_t":$tp,
                        "int64_t":$sp, "int64_t":$pp, "int64_t":$vpp,
                        "int64_t":$zero, "StringAttr":$remat, "int64_t":$mbs,
                        "int64_t":$microbatches, "StringAttr":$schedule,
                        "DenseI64ArrayAttr":$stages,
                        "FloatAttr":$step_time_s,
                        "int64_t":$memory_bytes_per_device);
  let assemblyFormat = "`<` struct(params) `>`";
}

#endif // LLM_ATTRS_TD
