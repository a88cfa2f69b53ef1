//===- LLMOps.td - llm forward ops --------------------------*- tablegen -*-===//
//
// Forward ops of the llm dialect. Every rule a verifier checks is listed under
// "Constraints" in the op's description (Shardy style).
//
//===----------------------------------------------------------------------===//
#ifndef LLM_OPS_TD
#define LLM_OPS_TD

include "llm/LLMBase.td"
include "llm/LLMInterfaces.td"
include "llm/LLMAttrs.td"
include "mlir/Interfaces/InferTypeOpInterface.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/IR/CommonAttrConstraints.td"

//===----------------------------------------------------------------------===//
// Embeddings
//===----------------------------------------------------------------------===//

def LLM_EmbeddingOp : LLM_Op<"embedding", [Pure]> {
  let summary = "token embedding lookup";
  let description = [{
    Gathers one row of `table` (`[vocab, hidden]`) per token id:
    `result[b, s, :] = table[ids[b, s], :]`. Ids outside `[0, vocab)` are a
    run-time error of the data, not of the graph. With `vocab_group` (tensor
    parallelism, Megatron's vocabulary-parallel embedding) `table` holds this
    rank's rows `[r V_local, (r+1) V_local)` of the vocabulary (r its index in
    the group) and ids outside them give zero rows; an all-reduce over the
    group then completes the lookup.

    Constraints:
    - `table` has rank 2;
    - `result` has the shape of `ids` followed by `hidden`;
    - `result` has the element type of `table`.

    Example:
    ```mlir
    %x = llm.embedding %ids, %wte : tensor<8x256xi32>, tensor<256x384xf32> -> tensor<8x256x384xf32>
    ```
  }];
  let arguments = (ins LLM_IndexTensor:$ids, LLM_FloatTensor:$table,
                       OptionalAttr<StrAttr>:$vocab_group);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = [{
    $ids `,` $table attr-dict `:` type($ids) `,` type($table) `->` type($result)
  }];
  let hasVerifier = 1;
}

def LLM_PositionEmbeddingOp : LLM_Op<"position_embedding", [Pure]> {
  let summary = "learned absolute position embedding (GPT-2 `wpe`)";
  let description = [{
    Takes the first `seq` rows of the position table (`[max_positions,
    hidden]`): `result[s, :] = table[s, :]` for `s` in `[0, seq)`. Added to the
    token embedding with the broadcasting `llm.add`.

    Constraints:
    - `table` and `result` have rank 2 and the same `hidden`;
    - `seq` (rows of `result`) is at most `max_positions`;
    - `result` has the element type of `table`.

    Example:
    ```mlir
    %p = llm.position_embedding %wpe : tensor<1024x768xf32> -> tensor<256x768xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$table);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$table attr-dict `:` type($table) `->` type($result)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Normalization
//===----------------------------------------------------------------------===//

def LLM_LayerNormOp : LLM_Op<"layer_norm", [Pure]> {
  let summary = "layer normalization over the last axis";
  let description = [{
    `result = (x - mean(x)) / sqrt(var(x) + epsilon) * weight + bias`, with the
    mean and the biased variance taken over the last axis.

    Constraints:
    - `weight` and `bias` have rank 1 and the size of the last axis of `input`;
    - all operands and the result have one element type;
    - `result` has the type of `input`;
    - `epsilon` > 0.

    Example:
    ```mlir
    %y = llm.layer_norm %x, %g, %b {epsilon = 1.0e-05 : f64}
        : tensor<8x256x384xf32>, tensor<384xf32>, tensor<384xf32> -> tensor<8x256x384xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, LLM_FloatTensor:$weight,
                       LLM_FloatTensor:$bias, F64Attr:$epsilon);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight `,` $bias attr-dict `:` type($input) `,` type($weight) `,`
    type($bias) `->` type($result)
  }];
  let hasVerifier = 1;
}

def LLM_RMSNormOp : LLM_Op<"rms_norm", [Pure]> {
  let summary = "root-mean-square normalization over the last axis";
  let description = [{
    `result = x / sqrt(mean(x^2) + epsilon) * weight` over the last axis
    (Zhang and Sennrich 2019; Llama's `LlamaRMSNorm`).

    Constraints:
    - `weight` has rank 1 and the size of the last axis of `input`;
    - operands and result have one element type; `result` has the type of
      `input`;
    - `epsilon` > 0.

    Example:
    ```mlir
    %y = llm.rms_norm %x, %g {epsilon = 1.0e-05 : f64}
        : tensor<1x128x4096xbf16>, tensor<4096xbf16> -> tensor<1x128x4096xbf16>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, LLM_FloatTensor:$weight,
                       F64Attr:$epsilon);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight attr-dict `:` type($input) `,` type($weight) `->` type($result)
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Linear layers
//===----------------------------------------------------------------------===//

def LLM_LinearOp : LLM_Op<"linear", [Pure,
    DeclareOpInterfaceMethods<LLM_FlopCountOpInterface, ["getMatmulFlops"]>]> {
  let summary = "affine map of the last axis: x · W (+ b)";
  let description = [{
    Multiplies the last axis of `input` by a weight matrix and adds an optional
    bias. The weight keeps its Hugging Face layout:
    - without `transpose_weight`, `weight` is `[in, out]` (GPT-2's `Conv1D`)
      and `result = input · weight`;
    - with `transpose_weight`, `weight` is `[out, in]` (`torch.nn.Linear`,
      Llama, a tied LM head reading the embedding table) and
      `result = input · weightᵀ`.

    Constraints:
    - `weight` has rank 2, and its `in` size equals the last axis of `input`;
    - `bias`, when present, has rank 1 and size `out`;
    - `result` has the shape of `input` with the last axis replaced by `out`;
    - operands and result have one element type.

    Example:
    ```mlir
    %qkv = llm.linear %h, %w bias %b
        : tensor<8x256x384xf32>, tensor<384x1152xf32>, tensor<1152xf32> -> tensor<8x256x1152xf32>
    %logits = llm.linear %h, %wte {transpose_weight}
        : tensor<8x256x384xf32>, tensor<256x384xf32> -> tensor<8x256x256xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, LLM_FloatTensor:$weight,
                       Optional<LLM_FloatTensor>:$bias,
                       UnitAttr:$transpose_weight);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = [{
    $input `,` $weight (`bias` $bias^)? attr-dict `:` type($input) `,` type($weight)
    (`,` type($bias)^)? `->` type($result)
  }];
  let extraClassDeclaration = [{
    /// Size of the contracted (input feature) axis.
    int64_t getInFeatures();
    /// Size of the produced (output feature) axis.
    int64_t getOutFeatures();
  }];
  let hasVerifier = 1;
}

def LLM_SplitOp : LLM_Op<"split", [Pure]> {
  let summary = "split a tensor into consecutive slices along one axis";
  let description = [{
    Cuts `input` along `axis` into as many results as are declared, in order;
    each result's size along `axis` is read from its type. Used to separate
    GPT-2's fused `c_attn` projection into query, key and value.

    Constraints:
    - `axis` is in `[0, rank)`;
    - every result has the rank and element type of `input`, and its shape on
      every other axis;
    - the results' sizes along `axis` add up to the input's.

    Example:
    ```mlir
    %q, %k, %v = llm.split %qkv {axis = 2 : i64}
        : tensor<8x256x1152xf32> -> tensor<8x256x384xf32>, tensor<8x256x384xf32>, tensor<8x256x384xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, I64Attr:$axis);
  let results = (outs Variadic<LLM_FloatTensor>:$results);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($results)";
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Attention
//===----------------------------------------------------------------------===//

def LLM_RoPEOp : LLM_Op<"rope", [Pure, AllTypesMatch<["input", "result"]>]> {
  let summary = "rotary position embedding (Su et al. 2021, Hugging Face layout)";
  let description = [{
    Rotates each head of `input` (`[batch, seq, num_heads * head_dim]`) by its
    position `p` in `[0, seq)`: with `d = head_dim / 2`,
    `inv_freq[i] = theta^(-2i / head_dim)` for `i` in `[0, d)`, and the
    Hugging Face "rotate half" pairing of element `i` with `i + d`:
    `y[i] = x[i] cos(p f_i) - x[i + d] sin(p f_i)`,
    `y[i + d] = x[i + d] cos(p f_i) + x[i] sin(p f_i)`.
    With `inverse` the rotation is by `-p f_i`: the gradient of the forward
    rotation, which llm-autodiff emits.

    Constraints:
    - `input` has rank 3;
    - `num_heads` > 0 and divides the last axis;
    - `head_dim` is even;
    - `theta` > 0.

    Example:
    ```mlir
    %qr = llm.rope %q {num_heads = 32 : i64, theta = 1.0e+04 : f64}
        : tensor<1x128x4096xf32> -> tensor<1x128x4096xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input, I64Attr:$num_heads,
                       F64Attr:$theta, UnitAttr:$inverse);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input) `->` type($result)";
  let hasVerifier = 1;
}

def LLM_AttentionOp : LLM_Op<"attention", [Pure,
    DeclareOpInterfaceMethods<LLM_FlopCountOpInterface, ["getMatmulFlops"]>]> {
  let summary = "scaled dot-product attention, multi-head or grouped-query";
  let description = [{
    `softmax(q kᵀ · scale + mask) v` for every head, on `[batch, seq,
    heads * head_dim]` tensors. With `causal`, position `i` attends to
    positions `<= i`. Query head `h` reads key/value head
    `h / (num_heads / num_kv_heads)` (grouped-query attention; multi-head when
    the two counts are equal). `scale` defaults to `1 / sqrt(head_dim)`.

    Constraints:
    - `q`, `k`, `v` and `result` have rank 3 and the same batch and sequence;
    - `num_heads` > 0 divides the hidden size (last axis of `q`);
    - `num_kv_heads` > 0 divides `num_heads`;
    - `k` and `v` have `num_kv_heads * head_dim` features;
    - `result` has the type of `q`; all element types agree;
    - `scale`, when given, is > 0.

    Example:
    ```mlir
    %a = llm.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, causal}
        : tensor<8x64x128xf32>, tensor<8x64x64xf32>, tensor<8x64x64xf32> -> tensor<8x64x128xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$q, LLM_FloatTensor:$k,
                       LLM_FloatTensor:$v, I64Attr:$num_heads,
                       I64Attr:$num_kv_heads, UnitAttr:$causal,
                       OptionalAttr<F64Attr>:$scale);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = [{
    $q `,` $k `,` $v attr-dict `:` type($q) `,` type($k) `,` type($v) `->` type($result)
  }];
  let extraClassDeclaration = [{
    int64_t getHeadDim();
    /// The softmax scale: `scale` if set, else 1 / sqrt(head_dim).
    double getEffectiveScale();
  }];
  let hasVerifier = 1;
}

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

def LLM_GeluOp : LLM_Op<"gelu", [Pure, SameOperandsAndResultType]> {
  let summary = "GELU, tanh approximation (GPT-2's `gelu_new`)";
  let description = [{
    `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`, elementwise.

    Example:
    ```mlir
    %y = llm.gelu %x : tensor<8x256x1536xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

def LLM_SiluOp : LLM_Op<"silu", [Pure, SameOperandsAndResultType]> {
  let summary = "SiLU (swish), `x * sigmoid(x)`";
  let description = [{
    `x / (1 + exp(-x))`, elementwise (Llama's gate activation).

    Example:
    ```mlir
    %y = llm.silu %x : tensor<1x128x11008xbf16>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$input);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$input attr-dict `:` type($input)";
}

class LLM_BinaryOp<string mnemonic, string expr> : LLM_Op<mnemonic, [Pure,
    AllTypesMatch<["lhs", "result"]>]> {
  let description = [{
    `result = }] # expr # [{`, elementwise. `rhs` either has the shape of
    `lhs`, or the shape of a suffix of it and is broadcast over the leading
    axes (numpy rules restricted to missing leading axes), as in adding the
    `[seq, hidden]` position embedding to `[batch, seq, hidden]` activations.

    Constraints:
    - the shape of `rhs` equals the trailing axes of the shape of `lhs`;
    - `rhs` has the element type of `lhs`; `result` has the type of `lhs`.

    Example:
    ```mlir
    %y = llm.}] # mnemonic # [{ %a, %b : tensor<8x256x384xf32>, tensor<256x384xf32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$lhs, LLM_FloatTensor:$rhs);
  let results = (outs LLM_FloatTensor:$result);
  let assemblyFormat = "$lhs `,` $rhs attr-dict `:` type($lhs) `,` type($rhs)";
  let hasVerifier = 1;
}

def LLM_AddOp : LLM_BinaryOp<"add", "lhs + rhs"> {
  let summary = "elementwise addition with trailing-axis broadcast";
}

def LLM_MulOp : LLM_BinaryOp<"mul", "lhs * rhs"> {
  let summary = "elementwise multiplication with trailing-axis broadcast";
}

//===----------------------------------------------------------------------===//
// Loss
//===----------------------------------------------------------------------===//

def LLM_CrossEntropyOp : LLM_Op<"cross_entropy", [Pure]> {
  let summary = "mean softmax cross-entropy of logits against target ids";
  let description = [{
    `mean over tokens of (logsumexp(logits[t, :]) - logits[t, targets[t]])`,
    computed in f32 whatever the element type of `logits`. A target id outside
    `[0, vocab)` is a run-time error of the data. With `vocab_group` the
    logits are this rank's slice of the vocabulary (as the vocabulary-parallel
    embedding cuts it) and the log-sum-exp and the target's logit are
    reduced over the group: every rank gets the whole loss. `vocab` (with
    `vocab_group`) is the model's vocabulary when the slices pad it to a
    multiple of the group or of an alignment (Megatron's padding; a group
    of one rank holds a whole padded vocabulary): logits at or past it are
    outside the softmax.

    Constraints:
    - `logits` has rank >= 2; `targets` has its shape without the last axis;
    - the result is `tensor<f32>`.

    Example:
    ```mlir
    %loss = llm.cross_entropy %logits, %targets
        : tensor<8x256x256xf32>, tensor<8x256xi32> -> tensor<f32>
    ```
  }];
  let arguments = (ins LLM_FloatTensor:$logits, LLM_IndexTensor:$targets,
                       OptionalAttr<StrAttr>:$vocab_group,
                       OptionalAttr<I64Attr>:$vocab);
  let results = (outs 0DTensorOf<[F32]>:$result);
  let assemblyFormat = [{
    $logits `,` $targets attr-dict `:` type($logits) `,` type($targets) `->` type($result)
  }];
  let hasVerifier = 1;
}

include "llm/LLMGradOps.td"

#endif // LLM_OPS_TD
