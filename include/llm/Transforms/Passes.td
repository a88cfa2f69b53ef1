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

def Autodiff : Pass<"llm-autodiff", "mlir::ModuleOp"> {
  let summary = "Build the training step's backward pass from the model function";
  let description = [{
    From the model function (forward graph + mean loss), builds
    `func.func @train_step` with the same arguments returning the loss and
    one gradient per parameter, in parameter order:

      (loss {llm.result = "loss"}, d_param0 {llm.grad = "name0"}, ...)

    Reverse-mode differentiation over the llm ops: every forward op has a
    rule that emits its backward ops (`llm.*_grad`, `llm.linear` with the
    opposite weight layout for input gradients, `llm.sum_leading` for
    broadcast operands, `llm.concat` for `llm.split`, `llm.rope` with
    `inverse`). Gradients of a value used several times, such as a residual
    stream or a tied embedding, are summed with `llm.add`. The model function
    is kept (it is the evaluation program).

    Fails when the loss is not an `llm.cross_entropy`, an op has no gradient
    rule, or a parameter does not influence the loss.
  }];
  let dependentDialects = ["mlir::func::FuncDialect", "mlir::llm::LLMDialect"];
}

def Optimizer : Pass<"llm-optimizer", "mlir::ModuleOp"> {
  let summary = "Append global-norm clipping and AdamW to the training step";
  let description = [{
    Rewrites `@train_step` (from llm-autodiff) into the whole training step:
    arguments become

      params..., exp_avg... {llm.adam_m}, exp_avg_sq... {llm.adam_v},
      tokens, targets, lr, step, weight_decay, grad_clip {llm.input}

    and the body computes the global gradient norm, PyTorch's clipping
    coefficient, and one `llm.adamw` per parameter (weight decay on tensors
    of rank >= 2 only). It returns

      (loss, grad_norm, new params..., new exp_avg..., new exp_avg_sq...)

    where every updated tensor carries `llm.update = N`, the index of the
    argument it replaces, so that lowering updates it in place.

    Under a `#llm.plan` with dp > 1 (see llm-partition) every gradient is
    first averaged over the data-parallel group (`llm.all_reduce`), so all
    replicas apply the same update. With zero = 1 (ZeRO-1) each rank keeps
    the moments of its 1/dp share of every parameter whose size dp divides
    (`llm.zero_shard`), updates that share (`llm.shard_slice`, in place) and
    all-gathers the updated parameter (`llm.all_gather`). Under tensor
    parallelism the global norm sums the squares of split gradients over tp.
  }];
  let options = [
    Option<"beta1", "beta1", "double", "0.9", "AdamW beta1">,
    Option<"beta2", "beta2", "double", "0.95", "AdamW beta2">,
    Option<"eps", "eps", "double", "1e-8", "AdamW epsilon">,
  ];
  let dependentDialects = ["mlir::func::FuncDialect", "mlir::llm::LLMDialect"];
}

def Rematerialize : Pass<"llm-rematerialize", "mlir::ModuleOp"> {
  let summary = "Recompute forward values in the backward instead of keeping them";
  let description = [{
    On `@train_step` (after llm-autodiff). `mode` (default: the module's
    `#llm.plan` remat, else none):

    - `full`: only each transformer layer's input (the residual stream
      entering it), the parameters and inputs, and the values of the
      embedding and the head stay alive from the forward to the backward;
      every other forward value a backward op reads is recomputed from them
      right before its first backward use (the recomputation is shared by
      that layer's later backward ops). Layers are told apart by the Hugging
      Face names of the parameters their ops read.
    - `selective`: nothing to do: the attention backward already recomputes
      the attention probabilities from q and k and no s x s tensor is ever
      kept, which is what Korthikanti et al.'s selective recomputation
      achieves.
    - `budget:K`: `full` for layers 0 .. K-1 only, the others keep their
      activations: the planner's `remat=budget` picks the fewest K that fit
      the device's memory (every layer costs the same to recompute and
      frees the same memory at the start of the backward, so the cheapest
      set that fits is the smallest; the first layers, whose activations
      wait longest, are the ones recomputed).
    - `none`: nothing.

    The losses are those of `none` (the same ops on the same values); the
    static memory plan then keeps one layer's activations at a time.
  }];
  let options = [
    Option<"mode", "mode", "std::string", "\"\"",
           "full, selective, none or budget:K (default: the plan's)">,
  ];
  let dependentDialects = ["mlir::llm::LLMDialect"];
}

def Partition : Pass<"llm-partition", "mlir::ModuleOp"> {
  let summary = "Rewrite the model function for one rank of the module's #llm.plan";
  let description = [{
    Reads `llm.plan = #llm.plan<...>` (from llm-auto-plan or --plan) and
    rewrites the model function into what one rank computes. Data
    parallelism: every tensor that carries the batch (token ids, targets and
    everything computed from them) keeps batch / dp sequences, and the loss,
    a mean over this rank's tokens, is averaged over the dp group
    (`llm.all_reduce`), which makes it the global mean. llm-optimizer then
    averages the gradients over dp the same way.

    Tensor parallelism (Megatron): column-parallel linears keep out/tp
    features behind `llm.tp_copy`, row-parallel ones in/tp features followed
    by an all-reduce and their bias; attention and rotary embeddings run on
    this rank's heads; with vocabulary parallelism for the embedding, the
    LM head and the cross-entropy when tp divides V. Sequence parallelism
    (`sp`): between those regions each rank keeps its contiguous 1/tp of
    the tokens (`llm.shard_slice` of the residual stream; `llm.all_gather`
    in place of `llm.tp_copy`, `llm.reduce_scatter` in place of the
    row-parallel all-reduce). ZeRO-3 keeps parameters as dp shares,
    gathered where used; ZeRO-1/2 are llm-optimizer's. Recomputation is
    llm-rematerialize's. Pipeline parallelism and micro-batching are not
    implemented yet: a plan that asks for them is an error that says so.

    The vocabulary (embedding table, LM head, logits) is padded as Megatron
    pads it, to `vocabRowsPerRank(V, tp, vocab-align)` rows a rank:
    ceil(V/tp) rounded up to a multiple of `vocab-align` (128 for GPUs,
    whose GEMMs slow down several-fold on odd leading dimensions). With one
    rank and `vocab-align` > 1 only the vocabulary is rewritten: the table
    (and an untied head's own matrix) becomes [Vpad, h] with
    `llm.tp_shard = [0, 1, V]` and the cross-entropy gets `vocab = V` on a
    tensor-parallel group of one rank.
  }];
  let options = [
    Option<"vocabAlign", "vocab-align", "int64_t", "1",
           "pad each rank's rows of the vocabulary to a multiple of this">,
  ];
  let dependentDialects = ["mlir::func::FuncDialect", "mlir::llm::LLMDialect"];
}

def PipelineStage : Pass<"llm-pipeline-stage", "mlir::ModuleOp"> {
  let summary = "Cut the model function to one pipeline stage's chunks";
  let description = [{
    With `#llm.plan`'s `pp` = p > 1, keeps in the model function only what
    pipeline rank `stage` computes: the chunks `stage`, `stage` + p, ... of
    the plan's `stages` (chunk c holds layers [stages[c], stages[c+1]); the
    embedding goes with chunk 0, the final norm, LM head and loss with the
    last chunk; an op belongs to the highest layer among the parameters and
    values it reads, as the planner counts). The one value that crosses each
    chunk boundary (the residual stream) leaves its chunk by `llm.send` and
    enters the next by `llm.recv`; parameters the stage does not use are
    dropped from the signature. A stage without the loss returns nothing:
    llm-autodiff seeds its backward from the gradient the next stage sends
    back. Tied embeddings (the same parameter read by the embedding and the
    LM head) get `llm.tied` on both end stages, and `llm.tied_copy` on the
    last one: llm-optimizer sums their gradients over the `tied` group and
    counts the copy out of the global norm. Records the whole model's stats
    (`llm.stats`) and the stage (`llm.stage`) on the module. Runs first,
    before llm-partition.

    Errors name what does not cut: a boundary crossed by no value or by
    more than one, or a stage left without layers.
  }];
  let options = [
    Option<"stage", "stage", "int64_t", "0",
           "the pipeline rank whose chunks to keep">
  ];
  let dependentDialects = ["mlir::llm::LLMDialect"];
}

def Microbatch : Pass<"llm-microbatch", "mlir::ModuleOp"> {
  let summary = "Accumulate gradients over the plan's micro-batches";
  let description = [{
    With `#llm.plan`'s `microbatches` = m > 1, llm-partition has cut the
    model function to one micro-batch (the batch / (dp m)). This pass makes
    `@train_step` and the model function take the whole batch again and
    unrolls them: micro-batch k reads rows [k b/m, (k+1) b/m) of the tokens
    and targets (`llm.batch_slice`, a view), runs its forward and backward,
    and its gradients are added to the running sums at once (so each
    micro-batch's activations die before the next one starts); the loss and
    gradients are the sums times 1/m (`llm.scale`), the mean over the
    micro-batches, which is the whole batch's. Runs after llm-autodiff and
    llm-rematerialize and before llm-optimizer, whose data-parallel
    reduction then acts once, on the accumulated gradients.
  }];
  let dependentDialects = ["mlir::llm::LLMDialect"];
}

def F32Storage : Pass<"llm-f32-storage", "mlir::ModuleOp"> {
  let summary = "Store a 16-bit model in f32 (the runtime's storage)";
  let description = [{
    The runtime stores every tensor in f32: parameters (the master
    weights), activations, gradients and optimizer state; a bf16 or f16
    model (`llm-import --dtype`) is mixed-precision training whose matrix
    products run in that precision where the hardware has it (the CUDA
    backend's bf16 or fp16 GEMMs with f32 accumulation). This pass rewrites
    every bf16 and f16 tensor type of the module's functions (arguments,
    results, op results) to f32 and records the model's precision as
    `llm.compute_precision` on the module ("bf16" or "fp16"; the planner
    takes the device's peak for it, the program's metadata carries it to
    the runtime). An f32 model is left as it is.
  }];
}

def KeepAttentionLse : Pass<"llm-keep-attention-lse", "mlir::ModuleOp"> {
  let summary = "Keep each attention's log-sum-exp for its backward";
  let description = [{
    Pairs every `llm.attention_grad` with the `llm.attention` before it in
    the same block that reads the same `q`, `k`, `v` with the same
    attributes (the forward it differentiates, or its recomputation), and
    rewrites the pair into `llm.attention_lse` (which also returns the
    rows' log-sum-exp, f32 `[batch, num_heads, seq]`) and
    `llm.attention_grad_lse` (which takes the forward's output and that
    log-sum-exp): the backward then needs no pass over the keys for the
    softmax statistics (FlashAttention-2's L, and D = rowsum(dO ∘ O)). The
    price is the statistics' memory from the forward to the backward
    (4 bytes per head and token) and the forward's output kept until the
    backward. A gradient without such a forward (another function: a
    pipeline's backward) is left as it is. `llm-compile
    --keep-attention-lse` runs it after llm-optimizer, before
    llm-lower-to-rt; no pass before it sees the new ops.
  }];
  let dependentDialects = ["mlir::llm::LLMDialect"];
}

def AnnotateSharding : Pass<"llm-annotate-sharding", "mlir::ModuleOp"> {
  let summary = "Annotate the model function with the #llm.plan's shardings (shard dialect)";
  let description = [{
    Expresses the plan in upstream's shard dialect, for
    `sharding-propagation` (with the llm ops' ShardingInterface models) to
    carry through the model: a `shard.grid @llm_grid(shape = dp x tp)`
    (axis 0 data parallel, axis 1 tensor parallel), and `shard.shard`
    annotations (for the users) on the function's arguments:

    - tokens and targets split along the batch over axis 0 (dp > 1);
    - Megatron tensor parallelism (tp > 1), the parameters llm-partition
      splits: a linear whose input is replicated is column-parallel (its
      weight and bias split along the output features over axis 1), one
      whose input is split row-parallel (its weight split along the input
      features); attention, rotary embeddings and elementwise ops keep
      their inputs' split; the embedding table (and the LM head reading
      it) split along the vocabulary as llm-partition splits it (with the
      same `vocab-align`): uneven shards where it pads.

    The annotated module is for analysis and tests: llm-partition does the
    partitioning itself (docs/design.md says why).
  }];
  let options = [
    Option<"vocabAlign", "vocab-align", "int64_t", "1",
           "llm-partition's vocab-align: each rank's rows of the vocabulary "
           "a multiple of this">,
  ];
  let dependentDialects = ["mlir::shard::ShardDialect", "mlir::llm::LLMDialect"];
}

#endif // LLM_TRANSFORMS_PASSES_TD
