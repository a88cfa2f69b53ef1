//===- Passes.td - planner passes ---------------------------*- tablegen -*-===//
#ifndef LLM_PLANNER_PASSES_TD
#define LLM_PLANNER_PASSES_TD

include "mlir/Pass/PassBase.td"

def AutoPlan : Pass<"llm-auto-plan", "mlir::ModuleOp"> {
  let summary = "Choose the fastest parallel plan that fits and attach #llm.plan";
  let description = [{
    Profiles the model function (FLOPs, bytes and saved activations per op,
    split or replicated under tensor parallelism), searches dp x tp x pp,
    virtual stages, schedules, sequence parallelism, ZeRO stages, remat and
    micro-batch sizes on the cluster with the cost model of docs/planner.md,
    and writes the fastest plan that fits device memory as
    `llm.plan = #llm.plan<...>` on the module. `plan` fixes keys
    (`tp=8,pp=4,...`); the search fills the rest. Fails, saying why, when no
    plan fits or the fixed keys are infeasible.
  }];
  let options = [
    Option<"clusterFile", "cluster", "std::string", "", "cluster description (JSON)">,
    Option<"devices", "devices", "int64_t", "0", "ranks (0: every device of the cluster)">,
    Option<"planSpec", "plan", "std::string", "\"auto\"", "auto, or keys to fix">,
    Option<"vocabAlign", "vocab-align", "int64_t", "1",
           "llm-partition's vocab-align of the executable planned for">,
  ];
  let dependentDialects = ["mlir::llm::LLMDialect"];
}

#endif // LLM_PLANNER_PASSES_TD
