//===- Passes.td - llm compiler passes ----------------------*- tablegen -*-===//
#ifndef LLM_TRANSFORMS_PASSES_TD
#define LLM_TRANSFORMS_PASSES_TD

include "mlir/Pass/PassBase.td"

def AnnotateStats : Pass<"llm-annotate-stats", "mlir::ModuleOp"> {
  let summary = "Attach the model's parameter count, FLOPs and tokens per step";
  let description = [{
    Finds the module's model function (the one `func.func` whose arguments
    carry `llm.param`) and attaches

      llm.stats = {params, flops_per_step, tokens_per_step}

    to the module, as `llm-compile --emit=stats` prints them:
    - `params`: elements of all `llm.param` arguments (a tied weight is one
      argument, so it counts once);
    - `flops_per_step`: matrix-multiply FLOPs of one training step without
      recomputation: every op's forward FLOPs (FlopCountOpInterface) times
      (1 + its backward factor, 2 for a matmul);
    - `tokens_per_step`: elements of the `llm.input = "tokens"` argument.

    Fails with an error naming what is missing when the module holds no model
    function, more than one, or no `tokens` input.
  }];
  let dependentDialects = ["mlir::func::FuncDialect"];
}

#endif // LLM_TRANSFORMS_PASSES_TD
