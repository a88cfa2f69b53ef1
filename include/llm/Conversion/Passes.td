//===- Passes.td - llm conversion passes --------------------*- tablegen -*-===//
#ifndef LLM_CONVERSION_PASSES_TD
#define LLM_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def LowerToRT : Pass<"llm-lower-to-rt", "mlir::ModuleOp"> {
  let summary = "Lower the training step and the model to llmrt programs";
  let description = [{
    Replaces `@train_step` (after llm-autodiff and llm-optimizer) and the
    model function with two llmrt functions, `@train` and `@eval`, of kernel
    calls on views of one arena:

    - Buffer assignment: parameters, AdamW moments, inputs and outputs get a
      persistent region (the same offsets in both functions); every other
      tensor is a temporary whose offset is packed from its live range
      (definition to last use), largest first, lowest free offset, 64-byte
      aligned. The two functions share the temporary region. Elementwise
      kernels whose operand dies at the op write in place. Updated
      parameters and moments (`llm.update`) are written in place by AdamW.
    - Kernel selection: one kernel per llm op (a split or concat of n parts
      is n column copies), with the sizes and attributes the kernel needs.

    The module gets `llmrt.arena_bytes` (the compile-time peak) and
    `llmrt.metadata` (the model's config and stats, for the runtime's logs).

    Fails for element types other than f32 (the CPU runtime computes in f32),
    splits and concats along an axis other than the last, and updates that
    are not legal in place.
  }];
  let dependentDialects = ["mlir::func::FuncDialect",
                           "mlir::llmrt::LLMRTDialect"];
}

#endif // LLM_CONVERSION_PASSES_TD
