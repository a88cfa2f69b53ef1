//===- LLMGradOps.td - llm backward and optimizer ops -------*- tablegen -*-===//
//
// Ops that llm-autodiff and llm-optimizer emit. Each computes the gradient
// of one forward op (or the parameter update) and lowers to one runtime
// kernel.
//
//===----------------------------------------------------------------------===//
#ifndef LLM_GRAD_OPS_TD
#define LLM_GRAD_OPS_TD

include "llm/LLMBase.td"
include "llm/LLMInterfaces.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def LLM_EmbeddingGradOp : LLM_Op<"embedding_grad", [Pure]> {
  let summary = "gradient of the embedding table (scatter-add of rows)";
  let description = [{
    `result = 0; result[ids[t], :] += dout[t, :]` for every token `t`; repeated
    ids accumulate.

    Constraints:
    - `result` has rank 2; `dout` has the shape of `ids` followed by the
      result's hidden size; element types of `dout` and `result` agree.

    Example:
    ```mlir
    %dwte = llm.embedding_grad %ids, %dx : tensor<8x256xi32>, tensor<8x256x384xf32> -> tensor<256x384xf32>
    ```
  }];
  let arguments = (ins LLM_IndexTensor:$ids, LLM_FloatTensor:$dout,
                       OptionalAttr<StrAttr>:$vocab_group);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = [{
    $ids `,` $dout attr-dict `:` type($ids) `,` type($dout) `->` type($result)
  }];
  let hasVerifier = 1;
}

def LLM_PositionEmbeddingGradOp : LLM_Op<"position_embedding_grad", [Pure]> {
  let summary = "gradient of the position table (first rows, zeros after)";
  let description = [{
    `result[s, :] = dout[s, :]` for `s < seq`, zero for the remaining rows
    up to `max_positions`.

    Constraints:
    - `dout` and `result` have rank 2 and the same hidden size;
    - `seq` is at most `max_positions`; element types agree.

    Example:
    ```mlir
    %dwpe = llm.position_embedding_grad %dp : tensor<256x384xf32> -> tensor<1024x384xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$dout);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$dout attr-dict `:` type($dout) `->` type($result)";
  let hasVerifier = 1;
}

def LLM_LayerNormGradOp : LLM_Op<"layer_norm_grad", [Pure]> {
  let summary = "gradients of layer_norm with respect to input, weight, bias";
  let description = [{
    Recomputes the mean and variance of `input` and returns `(d_input,
    d_weight, d_bias)`, the weight and bias gradients summed over all rows.

    Constraints: as `llm.layer_norm` for `input` and `weight`; `dy` and
    `d_input` have the type of `input`; `d_weight` and `d_bias` the type of
    `weight`.

    Example:
    ```mlir
    %dx, %dw, %db = llm.layer_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
        : tensor<8x256x384xf32>, tensor<384xf32>, tensor<8x256x384xf32>
        -> tensor<8x256x384xf32>, tensor<384xf32>, tensor<384xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, LLM_FloatTensor:$weight,
                       LLM_FloatTensor:$dy, F64Attr:$epsilon);
  let results = (outs LLM_FloatTensor:$d_input, LLM_FloatTensor:$d_weight,
                      LLM_FloatTensor:$d_bias);
  let assemblyFormat = [{
    $input `,` $weight `,` $dy attr-dict `:` type($input) `,` type($weight) `,`
    type($dy) `->` type($d_input) `,` type($d_weight) `,` type($d_bias)
  }];
  let hasVerifier = 1;
}

def LLM_RMSNormGradOp : LLM_Op<"rms_norm_grad", [Pure]> {
  let summary = "gradients of rms_norm with respect to input and weight";
  let description = [{
    Returns `(d_input, d_weight)`, the weight gradient summed over rows.

    Constraints: as `llm.rms_norm`; `dy` and `d_input` have the type of
    `input`, `d_weight` the type of `weight`.

    Example:
    ```mlir
    %dx, %dw = llm.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
        : tensor<1x8x64xf32>, tensor<64xf32>, tensor<1x8x64xf32> -> tensor<1x8x64xf32>, tensor<64xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, LLM_FloatTensor:$weight,
                       LLM_FloatTensor:$dy, F64Attr:$epsilon);
  let results = (outs LLM_FloatTensor:$d_input, LLM_FloatTensor:$d_weight);
  let assemblyFormat = [{
    $input `,` $weight `,` $dy attr-dict `:` type($input) `,` type($weight) `,`
    type($dy) `->` type($d_input) `,` type($d_weight)
  }];
  let hasVerifier = 1;
}

def LLM_LinearWeightGradOp : LLM_Op<"linear_weight_grad", [Pure,
    DeclareOpInterfaceMethods<LLM_FlopCountOpInterface,
                              ["getMatmulFlops", "getBackwardFlopsFactor"]>]> {
  let summary = "gradient of a linear layer's weight, in the weight's layout";
  let description = [{
    `result = inputᵀ · dy` summed over all leading axes: `[in, out]`, or
    `[out, in]` (`dyᵀ · input`) with `transpose_weight`, matching the
    forward `llm.linear`. (The input gradient is itself an `llm.linear` of
    `dy` with the opposite layout flag; the bias gradient is
    `llm.sum_leading` of `dy`.)

    Constraints:
    - `input` and `dy` agree on every axis but the last;
    - `result` is `[in, out]` (or `[out, in]`), `in` and `out` being the last
      axes of `input` and `dy`; element types agree.

    Example:
    ```mlir
    %dw = llm.linear_weight_grad %x, %dy : tensor<8x256x384xf32>, tensor<8x256x1152xf32> -> tensor<384x1152xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, LLM_FloatTensor:$dy,
                       UnitAttr:$transpose_weight);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $dy attr-dict `:` type($input) `,` type($dy) `->` type($result)
  }];
  let hasVerifier = 1;
}

def LLM_SumLeadingOp : LLM_Op<"sum_leading", [Pure]> {
  let summary = "sum over leading axes (gradient of a broadcast operand)";
  let description = [{
    Sums `input` over its leading axes down to the shape of `result`, a
    suffix of the input's shape: the bias gradient of `llm.linear` and the
    gradient of the broadcast `rhs` of `llm.add` / `llm.mul`.

    Constraints:
    - the shape of `result` is a suffix of the shape of `input`;
    - element types agree.

    Example:
    ```mlir
    %db = llm.sum_leading %dy : tensor<8x256x1152xf32> -> tensor<1152xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def LLM_ConcatOp : LLM_Op<"concat", [Pure]> {
  let summary = "concatenate along one axis (the gradient of llm.split)";
  let description = [{
    Joins `inputs` along `axis`, in order.

    Constraints:
    - at least one input; `axis` in `[0, rank)`;
    - every input has the rank and element type of `result` and its shape
      outside `axis`; the sizes along `axis` add up to the result's.

    Example:
    ```mlir
    %dqkv = llm.concat %dq, %dk, %dv {axis = 2 : i64}
        : tensor<8x256x384xf32>, tensor<8x256x384xf32>, tensor<8x256x384xf32> -> tensor<8x256x1152xf32>
    ```
  }];
  let arguments = (ins Variadic<LLM_FloatTensor>:$inputs, I64Attr:$axis);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$inputs attr-dict `:` type($inputs) `->` type($result)";
  let hasVerifier = 1;
}

def LLM_AttentionGradOp : LLM_Op<"attention_grad", [Pure,
    DeclareOpInterfaceMethods<LLM_FlopCountOpInterface,
                              ["getMatmulFlops", "getBackwardFlopsFactor"]>]> {
  let summary = "gradients of attention with respect to q, k and v";
  let description = [{
    Recomputes the attention probabilities from `q` and `k` (nothing is saved
    by the forward) and returns `(dq, dk, dv)`; with grouped-query attention
    the key/value gradients sum over the query heads of each group.
    Attributes as `llm.attention`.

    Constraints: as `llm.attention` for `q`, `k`, `v`; `dout` and `dq` have
    the type of `q`, `dk` of `k`, `dv` of `v`.

    Example:
    ```mlir
    %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 2 : i64, causal}
        : tensor<8x64x128xf32>, tensor<8x64x64xf32>, tensor<8x64x64xf32>, tensor<8x64x128xf32>
        -> tensor<8x64x128xf32>, tensor<8x64x64xf32>, tensor<8x64x64xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$q, LLM_FloatTensor:$k,
                       LLM_FloatTensor:$v, LLM_FloatTensor:$dout,
                       I64Attr:$num_heads, I64Attr:$num_kv_heads,
                       UnitAttr:$causal, OptionalAttr<F64Attr>:$scale);
  let results = (outs LLM_FloatTensor:$dq, LLM_FloatTensor:$dk,
                      LLM_FloatTensor:$dv);
  let assemblyFormat = [{
    $q `,` $k `,` $v `,` $dout attr-dict `:` type($q) `,` type($k) `,` type($v)
    `,` type($dout) `->` type($dq) `,` type($dk) `,` type($dv)
  }];
  let hasVerifier = 1;
}

def LLM_AttentionLseOp : LLM_Op<"attention_lse", [Pure,
    DeclareOpInterfaceMethods<LLM_FlopCountOpInterface, ["getMatmulFlops"]>]> {
  let summary = "llm.attention that also returns each row's log-sum-exp";
  let description = [{
    `llm.attention`, and `lse[b, h, i] = log sum_j exp(scale q_i · k_j +
    mask)` (f32, `[batch, num_heads, seq]`): the softmax statistics the
    backward needs (FlashAttention's L), kept instead of recomputed.
    llm-keep-attention-lse makes it, with `llm.attention_grad_lse`, from an
    `llm.attention` and its `llm.attention_grad`; nothing before it in the
    pipeline sees it.

    Example:
    ```mlir
    %o, %lse = llm.attention_lse %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, causal}
        : tensor<8x64x128xf32>, tensor<8x64x64xf32>, tensor<8x64x64xf32>
        -> tensor<8x64x128xf32>, tensor<8x4x64xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$q, LLM_FloatTensor:$k,
                       LLM_FloatTensor:$v, I64Attr:$num_heads,
                       I64Attr:$num_kv_heads, UnitAttr:$causal,
                       OptionalAttr<F64Attr>:$scale);
  let results = (outs LLM_FloatTensor:$result, RankedTensorOf<[F32]>:$lse);
  let assemblyFormat = [{
    $q `,` $k `,` $v attr-dict `:` type($q) `,` type($k) `,` type($v) `->`
    type($result) `,` type($lse)
  }];
  let hasVerifier = 1;
}

def LLM_AttentionGradLseOp : LLM_Op<"attention_grad_lse", [Pure,
    DeclareOpInterfaceMethods<LLM_FlopCountOpInterface,
                              ["getMatmulFlops", "getBackwardFlopsFactor"]>]> {
  let summary = "llm.attention_grad from the forward's output and log-sum-exp";
  let description = [{
    `llm.attention_grad` given the forward's `out` and `lse`
    (`llm.attention_lse`): the probabilities are `exp(scale q k^T + mask -
    lse)` and `D = rowsum(dout ∘ out)`, so no pass over the keys is needed
    for the softmax statistics.

    Example:
    ```mlir
    %dq, %dk, %dv = llm.attention_grad_lse %q, %k, %v, %do, %o, %lse {num_heads = 4 : i64, num_kv_heads = 2 : i64, causal}
        : tensor<8x64x128xf32>, tensor<8x64x64xf32>, tensor<8x64x64xf32>, tensor<8x64x128xf32>,
          tensor<8x64x128xf32>, tensor<8x4x64xf32>
        -> tensor<8x64x128xf32>, tensor<8x64x64xf32>, tensor<8x64x64xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$q, LLM_FloatTensor:$k,
                       LLM_FloatTensor:$v, LLM_FloatTensor:$dout,
                       LLM_FloatTensor:$out, RankedTensorOf<[F32]>:$lse,
                       I64Attr:$num_heads, I64Attr:$num_kv_heads,
                       UnitAttr:$causal, OptionalAttr<F64Attr>:$scale);
  let results = (outs LLM_FloatTensor:$dq, LLM_FloatTensor:$dk,
                      LLM_FloatTensor:$dv);
  let assemblyFormat = [{
    $q `,` $k `,` $v `,` $dout `,` $out `,` $lse attr-dict `:` type($q) `,`
    type($k) `,` type($v) `,` type($dout) `,` type($out) `,` type($lse) `->`
    type($dq) `,` type($dk) `,` type($dv)
  }];
  let hasVerifier = 1;
}

class LLM_ActivationGradOp<string mnemonic, string fwd>
    : LLM_Op<mnemonic, [Pure, AllTypesMatch<["input", "dy", "result"]>]> {
  let summary = "gradient of llm." # fwd;
  let description = [{
    `result = dy * }] # fwd # [{'(input)`, elementwise.

    Example:
    ```mlir
    %dx = llm.}] # mnemonic # [{ %x, %dy : tensor<8x256x1536xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, LLM_FloatTensor:$dy);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$input `,` $dy attr-dict `:` type($input)";
}

def LLM_GeluGradOp : LLM_ActivationGradOp<"gelu_grad", "gelu">;
def LLM_SiluGradOp : LLM_ActivationGradOp<"silu_grad", "silu">;

def LLM_CrossEntropyGradOp : LLM_Op<"cross_entropy_grad", [Pure,
    AllTypesMatch<["logits", "result"]>]> {
  let summary = "gradient of the mean cross-entropy loss for its logits";
  let description = [{
    `result = (softmax(logits) - onehot(targets)) / tokens`: the gradient of
    `llm.cross_entropy` (a mean over tokens) with a unit output gradient.

    Constraints: as `llm.cross_entropy`; `result` has the type of `logits`.

    Example:
    ```mlir
    %dl = llm.cross_entropy_grad %logits, %targets : tensor<8x256x256xf32>, tensor<8x256xi32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$logits, LLM_IndexTensor:$targets,
                       OptionalAttr<StrAttr>:$vocab_group,
                       OptionalAttr<I64Attr>:$vocab);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = [{
    $logits `,` $targets attr-dict `:` type($logits) `,` type($targets)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Optimizer
//===----------------------------------------------------------------------===//

def LLM_GlobalNormOp : LLM_Op<"global_norm", [Pure]> {
  let summary = "L2 norm of all the given tensors together";
  let description = [{
    `sqrt(sum over tensors of sum(x^2))`, accumulated in double precision,
    returned as `tensor<f32>`: the gradient norm that clipping reads. When
    operands are this rank's part of a gradient, `split` gives per operand
    the groups its parts are spread over (a bit mask: 1 dp, a ZeRO share;
    2 tp, a tensor-parallel shard): those squares are summed over the
    groups, the others (replicated) counted once.

    Constraints: at least one operand; `split`, when present, has one entry
    per operand, each in [0, 3].

    Example:
    ```mlir
    %n = llm.global_norm %g0, %g1 : tensor<384x1152xf32>, tensor<1152xf32>
    ```
  }];
  let arguments = (ins Variadic<LLM_FloatTensor>:$inputs,
                       OptionalAttr<DenseI64ArrayAttr>:$split);
  let results = (outs LLM_F32Scalar:$result);
  let assemblyFormat = "$inputs attr-dict `:` type($inputs)";
  let hasVerifier = 1;
}

def LLM_ClipScaleOp : LLM_Op<"clip_scale", [Pure]> {
  let summary = "gradient-clipping coefficient from a norm and a limit";
  let description = [{
    `min(1, max_norm / (norm + 1e-6))`, or 1 when `max_norm <= 0` (clipping
    off): PyTorch's `clip_grad_norm_` coefficient.

    Example:
    ```mlir
    %c = llm.clip_scale %norm, %max
    ```
  }];
  let arguments = (ins LLM_F32Scalar:$norm, LLM_F32Scalar:$max_norm);
  let results = (outs LLM_F32Scalar:$result);
  let assemblyFormat = "$norm `,` $max_norm attr-dict";
}

def LLM_AdamWOp : LLM_Op<"adamw", [Pure,
    AllTypesMatch<["param", "grad", "m", "v", "new_param", "new_m", "new_v"]>]> {
  let summary = "one AdamW update of a parameter and its moments";
  let description = [{
    PyTorch's `torch.optim.AdamW` arithmetic on the gradient scaled by
    `grad_scale` (the clipping coefficient):
    ```
    g = grad * grad_scale
    p = p * (1 - lr * weight_decay)          (only when `decay` is set)
    m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
    p = p - lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
    ```
    `step` counts updates from 1. Weight decay applies to matrices only
    (`decay` set by llm-optimizer for rank >= 2), not to biases or norm
    gains.

    Constraints: `param`, `grad`, `m`, `v` and the three results share one
    type; `0 <= beta1, beta2 < 1`; `eps > 0`.

    Example:
    ```mlir
    %p2, %m2, %v2 = llm.adamw %p, %g, %m, %v, %lr, %step, %wd, %scale
        {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, decay}
        : tensor<384x384xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$param, LLM_FloatTensor:$grad,
                       LLM_FloatTensor:$m, LLM_FloatTensor:$v,
                       LLM_F32Scalar:$lr, LLM_I64Scalar:$step,
                       LLM_F32Scalar:$weight_decay,
                       LLM_F32Scalar:$grad_scale,
                       F64Attr:$beta1, F64Attr:$beta2, F64Attr:$eps,
                       UnitAttr:$decay);
  let results = (outs LLM_FloatTensor:$new_param, LLM_FloatTensor:$new_m,
                      LLM_FloatTensor:$new_v);
  let assemblyFormat = [{
    $param `,` $grad `,` $m `,` $v `,` $lr `,` $step `,` $weight_decay `,`
    $grad_scale attr-dict `:` type($param)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Collectives
//===----------------------------------------------------------------------===//

def LLM_AllReduceOp : LLM_Op<"all_reduce", [AllTypesMatch<["input", "result"]>]> {
  let summary = "reduce a tensor over a communicator group, result everywhere";
  let description = [{
    Every rank of `group` (`dp` or `tp`, the groups of the module's
    `#llm.plan`, or `tied`: the first and last pipeline stages, which both
    hold tied embeddings; rank order in docs/design.md) contributes `input` and
    receives the elementwise `reduction` (`sum` or `mean`) of all
    contributions. Its gradient is the identity (Megatron's "g" operator):
    used on the loss and on tensors whose later uses are replicated.

    Constraints: `group` is `dp`, `tp` or `tied`; `reduction` is `sum` or
    `mean`.

    Example:
    ```mlir
    %g = llm.all_reduce %dw {group = "dp", reduction = "mean"} : tensor<384x1152xf32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, StrAttr:$group,
                       StrAttr:$reduction);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def LLM_SendOp : LLM_Op<"send"> {
  let summary = "send a tensor to a neighbouring pipeline stage";
  let description = [{
    Sends `input` to the rank `peer` places along the pipeline group (`pp`:
    +1 the next stage, -1 the previous one, wrapping around for the
    interleaved schedule's chunks). `tag` tells the streams of one pair of
    ranks apart: 2 c for the activations crossing the boundary after chunk
    c, 2 c + 1 for their gradients. Non-blocking: the runtime owns a copy
    until it is delivered. The gradient of a send is the matching
    `llm.recv` of the gradient from the same peer (llm-autodiff).

    Constraints: `peer` is 1 or -1; `tag` >= 0.

    Example:
    ```mlir
    llm.send %h {peer = 1 : i64, tag = 0 : i64} : tensor<2x8x384xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, I64Attr:$peer, I64Attr:$tag);
  let assemblyFormat = "$input attr-dict `:` type($input)";
  let hasVerifier = 1;
}

def LLM_RecvOp : LLM_Op<"recv"> {
  let summary = "receive a tensor from a neighbouring pipeline stage";
  let description = [{
    The counterpart of `llm.send`: the tensor the rank `peer` places along
    the pipeline group sent with the same `tag`, in the order sent. Its
    gradient is an `llm.send` back to the same `peer` with tag + 1.

    Constraints: `peer` is 1 or -1; `tag` >= 0.

    Example:
    ```mlir
    %h = llm.recv {peer = -1 : i64, tag = 0 : i64} : tensor<2x8x384xf32>
    ```
  }];
  let arguments = (ins I64Attr:$peer, I64Attr:$tag);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "attr-dict `:` type($result)";
  let hasVerifier = 1;
}

def LLM_PhaseOp : LLM_Op<"phase"> {
  let summary = "marks where a micro-batch's forward, backward or recomputation starts";
  let description = [{
    No computation: the ops after it, up to the next `llm.phase`, are the
    `kind` (`forward`, `backward` or `recompute`) of micro-batch
    `microbatch` through the rank's model chunk `chunk`. llm-microbatch
    places them as it unrolls the schedule (llm-rematerialize around the
    recomputed forward ops); the runtime's `--trace` draws each phase as one
    span above the kernels, so a pipeline's schedule and its bubbles can be
    read in Perfetto.

    Constraints: `kind` is forward, backward or recompute; `microbatch` and
    `chunk` >= 0.

    Example:
    ```mlir
    llm.phase {kind = "backward", microbatch = 2 : i64, chunk = 0 : i64}
    ```
  }];
  let arguments = (ins StrAttr:$kind, I64Attr:$microbatch, I64Attr:$chunk);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def LLM_ShardSliceOp : LLM_Op<"shard_slice", [Pure]> {
  let summary = "this rank's contiguous share of a tensor (ZeRO)";
  let description = [{
    Flattens `input` and returns the part of `result`'s size at this rank's
    index in `group`: part i of a tensor of n elements on g ranks is
    elements [i n/g, (i+1) n/g). No data moves: the runtime reads it in
    place. With `llm.all_gather` it makes ZeRO's sharded optimizer step.

    Constraints: `result` is 1-D; its size divides the input's element
    count; element types agree.

    Example:
    ```mlir
    %ps = llm.shard_slice %p {group = "dp"} : tensor<384x1152xf32> -> tensor<110592xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, StrAttr:$group);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def LLM_BatchSliceOp : LLM_Op<"batch_slice", [Pure]> {
  let summary = "micro-batch `index` of `count` along the leading axis";
  let description = [{
    Rows [index n/count, (index + 1) n/count) of the leading (batch) axis of
    `input`: one micro-batch of a step that accumulates gradients over
    `count` of them (llm-microbatch). No data moves: the runtime reads it in
    place.

    Constraints: `count` >= 1 divides the leading dimension; 0 <= `index` <
    `count`; `result` is `input` with the leading dimension divided by
    `count`.

    Example:
    ```mlir
    %t1 = llm.batch_slice %tokens {index = 1 : i64, count = 4 : i64} : tensor<8x256xi32> -> tensor<2x256xi32>
    ```
  }];
  let arguments = (ins AnyRankedTensor:$input, I64Attr:$index, I64Attr:$count);
  let results = (outs AnyRankedTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def LLM_ScaleOp : LLM_Op<"scale", [Pure, SameOperandsAndResultType]> {
  let summary = "elementwise product with a constant factor";
  let description = [{
    `result = input * factor`: the mean over micro-batches of the losses and
    gradients they sum (llm-microbatch).

    Constraints: `result` has the type of `input`.

    Example:
    ```mlir
    %g = llm.scale %sum {factor = 2.500000e-01 : f64} : tensor<384x1152xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, F64Attr:$factor);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def LLM_AllGatherOp : LLM_Op<"all_gather"> {
  let summary = "join every rank's share of a tensor (ZeRO)";
  let description = [{
    The inverse of `llm.shard_slice` across `group`: every rank receives the
    concatenation of all ranks' 1-D `input`, shaped as `result`.

    Constraints: `input` is 1-D and its size divides the result's element
    count; element types agree.

    Example:
    ```mlir
    %p = llm.all_gather %ps {group = "dp"} : tensor<110592xf32> -> tensor<384x1152xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, StrAttr:$group);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def LLM_ReduceScatterOp : LLM_Op<"reduce_scatter"> {
  let summary = "reduce over a group and keep this rank's share (ZeRO-2/3)";
  let description = [{
    Every rank of `group` contributes `input`; each receives its 1-D share
    (as `llm.shard_slice` cuts it) of the elementwise `reduction` (`sum` or
    `mean`).

    Constraints: as `llm.shard_slice`; `reduction` is sum or mean.

    Example:
    ```mlir
    %gs = llm.reduce_scatter %g {group = "dp", reduction = "mean"} : tensor<384x1152xf32> -> tensor<110592xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, StrAttr:$group,
                       StrAttr:$reduction);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def LLM_TPCopyOp : LLM_Op<"tp_copy", [AllTypesMatch<["input", "result"]>]> {
  let summary = "enter a tensor-parallel region (Megatron's \"f\")";
  let description = [{
    The identity in the forward; in the backward the gradient is summed over
    the tensor-parallel group (each rank's column-parallel linears
    contribute a partial input gradient). llm-partition puts it on the
    replicated input of column-parallel linears.

    Example:
    ```mlir
    %h = llm.tp_copy %x : tensor<8x256x384xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

#endif // LLM_GRAD_OPS_TD
