// RUN: llm-opt %s -split-input-file -verify-diagnostics
// One case per verifier message of the llm dialect (dialects/llm/LLMVerifiers.cpp).

func.func @embedding_table_rank(%ids: tensor<2x4xi32>, %t: tensor<8x4x2xf32>) {
  // expected-error@+1 {{'llm.embedding' op expects table to have rank 2, got rank 3}}
  %0 = llm.embedding %ids, %t : tensor<2x4xi32>, tensor<8x4x2xf32> -> tensor<2x4x4xf32>
  return
}

// -----

func.func @embedding_result_shape(%ids: tensor<2x4xi32>, %t: tensor<8x16xf32>) {
  // expected-error@+1 {{'llm.embedding' op expects result shape 2x4x8 to be 2x4x16 (ids shape followed by the table's hidden size 16)}}
  %0 = llm.embedding %ids, %t : tensor<2x4xi32>, tensor<8x16xf32> -> tensor<2x4x8xf32>
  return
}

// -----

func.func @embedding_element_type(%ids: tensor<2x4xi32>, %t: tensor<8x16xf32>) {
  // expected-error@+1 {{'llm.embedding' op expects result element type (bf16) to match table element type (f32)}}
  %0 = llm.embedding %ids, %t : tensor<2x4xi32>, tensor<8x16xf32> -> tensor<2x4x16xbf16>
  return
}

// -----

func.func @embedding_float_ids(%ids: tensor<2x4xf32>, %t: tensor<8x16xf32>) {
  // expected-error@+1 {{'llm.embedding' op operand #0 must be ranked tensor of 32-bit signless integer or 64-bit signless integer values}}
  %0 = llm.embedding %ids, %t : tensor<2x4xf32>, tensor<8x16xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @embedding_f64(%ids: tensor<2x4xi32>, %t: tensor<8x16xf64>) {
  // expected-error@+1 {{'llm.embedding' op operand #1 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values}}
  %0 = llm.embedding %ids, %t : tensor<2x4xi32>, tensor<8x16xf64> -> tensor<2x4x16xf64>
  return
}

// -----

func.func @position_table_rank(%t: tensor<16xf32>) {
  // expected-error@+1 {{'llm.position_embedding' op expects table to have rank 2, got rank 1}}
  %0 = llm.position_embedding %t : tensor<16xf32> -> tensor<4x16xf32>
  return
}

// -----

func.func @position_result_rank(%t: tensor<8x16xf32>) {
  // expected-error@+1 {{'llm.position_embedding' op expects result to have rank 2, got rank 3}}
  %0 = llm.position_embedding %t : tensor<8x16xf32> -> tensor<1x4x16xf32>
  return
}

// -----

func.func @position_hidden(%t: tensor<8x16xf32>) {
  // expected-error@+1 {{'llm.position_embedding' op expects result hidden size (32) to equal the table's hidden size (16)}}
  %0 = llm.position_embedding %t : tensor<8x16xf32> -> tensor<4x32xf32>
  return
}

// -----

func.func @position_too_long(%t: tensor<8x16xf32>) {
  // expected-error@+1 {{'llm.position_embedding' op expects sequence length (9) to be at most the table's max positions (8)}}
  %0 = llm.position_embedding %t : tensor<8x16xf32> -> tensor<9x16xf32>
  return
}

// -----

func.func @position_element_type(%t: tensor<8x16xf32>) {
  // expected-error@+1 {{'llm.position_embedding' op expects result element type (f16) to match table element type (f32)}}
  %0 = llm.position_embedding %t : tensor<8x16xf32> -> tensor<4x16xf16>
  return
}

// -----

func.func @layer_norm_epsilon(%x: tensor<2x4x16xf32>, %g: tensor<16xf32>, %b: tensor<16xf32>) {
  // expected-error@+1 {{'llm.layer_norm' op expects epsilon > 0, got 0}}
  %0 = llm.layer_norm %x, %g, %b {epsilon = 0.0 : f64} : tensor<2x4x16xf32>, tensor<16xf32>, tensor<16xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @layer_norm_scalar(%x: tensor<f32>, %g: tensor<16xf32>, %b: tensor<16xf32>) {
  // expected-error@+1 {{'llm.layer_norm' op expects input to have rank >= 1}}
  %0 = llm.layer_norm %x, %g, %b {epsilon = 1.0e-5 : f64} : tensor<f32>, tensor<16xf32>, tensor<16xf32> -> tensor<f32>
  return
}

// -----

func.func @layer_norm_weight(%x: tensor<2x4x16xf32>, %g: tensor<8xf32>, %b: tensor<16xf32>) {
  // expected-error@+1 {{'llm.layer_norm' op expects weight shape 8 to be [16], the size of the input's last axis}}
  %0 = llm.layer_norm %x, %g, %b {epsilon = 1.0e-5 : f64} : tensor<2x4x16xf32>, tensor<8xf32>, tensor<16xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @layer_norm_bias(%x: tensor<2x4x16xf32>, %g: tensor<16xf32>, %b: tensor<1x16xf32>) {
  // expected-error@+1 {{'llm.layer_norm' op expects bias shape 1x16 to be [16], the size of the input's last axis}}
  %0 = llm.layer_norm %x, %g, %b {epsilon = 1.0e-5 : f64} : tensor<2x4x16xf32>, tensor<16xf32>, tensor<1x16xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @layer_norm_types(%x: tensor<2x4x16xf32>, %g: tensor<16xbf16>, %b: tensor<16xf32>) {
  // expected-error@+1 {{'llm.layer_norm' op expects weight element type (bf16) to match input element type (f32)}}
  %0 = llm.layer_norm %x, %g, %b {epsilon = 1.0e-5 : f64} : tensor<2x4x16xf32>, tensor<16xbf16>, tensor<16xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @layer_norm_result(%x: tensor<2x4x16xf32>, %g: tensor<16xf32>, %b: tensor<16xf32>) {
  // expected-error@+1 {{'llm.layer_norm' op expects result type tensor<8x16xf32> to equal the input type tensor<2x4x16xf32>}}
  %0 = llm.layer_norm %x, %g, %b {epsilon = 1.0e-5 : f64} : tensor<2x4x16xf32>, tensor<16xf32>, tensor<16xf32> -> tensor<8x16xf32>
  return
}

// -----

func.func @rms_norm_epsilon(%x: tensor<2x4x16xf32>, %g: tensor<16xf32>) {
  // expected-error@+1 {{'llm.rms_norm' op expects epsilon > 0, got -1}}
  %0 = llm.rms_norm %x, %g {epsilon = -1.0 : f64} : tensor<2x4x16xf32>, tensor<16xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @rms_norm_scalar(%x: tensor<f32>, %g: tensor<16xf32>) {
  // expected-error@+1 {{'llm.rms_norm' op expects input to have rank >= 1}}
  %0 = llm.rms_norm %x, %g {epsilon = 1.0e-5 : f64} : tensor<f32>, tensor<16xf32> -> tensor<f32>
  return
}

// -----

func.func @rms_norm_weight(%x: tensor<2x4x16xf32>, %g: tensor<32xf32>) {
  // expected-error@+1 {{'llm.rms_norm' op expects weight shape 32 to be [16], the size of the input's last axis}}
  %0 = llm.rms_norm %x, %g {epsilon = 1.0e-5 : f64} : tensor<2x4x16xf32>, tensor<32xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @rms_norm_types(%x: tensor<2x4x16xbf16>, %g: tensor<16xf32>) {
  // expected-error@+1 {{'llm.rms_norm' op expects weight element type (f32) to match input element type (bf16)}}
  %0 = llm.rms_norm %x, %g {epsilon = 1.0e-5 : f64} : tensor<2x4x16xbf16>, tensor<16xf32> -> tensor<2x4x16xbf16>
  return
}

// -----

func.func @rms_norm_result(%x: tensor<2x4x16xbf16>, %g: tensor<16xbf16>) {
  // expected-error@+1 {{'llm.rms_norm' op expects result type tensor<2x4x16xf32> to equal the input type tensor<2x4x16xbf16>}}
  %0 = llm.rms_norm %x, %g {epsilon = 1.0e-5 : f64} : tensor<2x4x16xbf16>, tensor<16xbf16> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @linear_weight_rank(%x: tensor<2x4x16xf32>, %w: tensor<16xf32>) {
  // expected-error@+1 {{'llm.linear' op expects weight to have rank 2, got rank 1}}
  %0 = llm.linear %x, %w : tensor<2x4x16xf32>, tensor<16xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @linear_scalar(%x: tensor<f32>, %w: tensor<16x8xf32>) {
  // expected-error@+1 {{'llm.linear' op expects input to have rank >= 1}}
  %0 = llm.linear %x, %w : tensor<f32>, tensor<16x8xf32> -> tensor<8xf32>
  return
}

// -----

func.func @linear_in_features(%x: tensor<2x4x768xf32>, %w: tensor<770x2304xf32>) {
  // expected-error@+1 {{'llm.linear' op expects input features (768) to equal the in size (770) of weight 770x2304 in [in, out] layout}}
  %0 = llm.linear %x, %w : tensor<2x4x768xf32>, tensor<770x2304xf32> -> tensor<2x4x2304xf32>
  return
}

// -----

func.func @linear_in_features_transposed(%x: tensor<2x4x16xf32>, %w: tensor<16x32xf32>) {
  // expected-error@+1 {{'llm.linear' op expects input features (16) to equal the in size (32) of weight 16x32 in [out, in] layout}}
  %0 = llm.linear %x, %w {transpose_weight} : tensor<2x4x16xf32>, tensor<16x32xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @linear_bias(%x: tensor<2x4x16xf32>, %w: tensor<16x32xf32>, %b: tensor<16xf32>) {
  // expected-error@+1 {{'llm.linear' op expects bias shape 16 to be [32], the out size of the weight}}
  %0 = llm.linear %x, %w bias %b : tensor<2x4x16xf32>, tensor<16x32xf32>, tensor<16xf32> -> tensor<2x4x32xf32>
  return
}

// -----

func.func @linear_result(%x: tensor<2x4x16xf32>, %w: tensor<16x32xf32>) {
  // expected-error@+1 {{'llm.linear' op expects result shape 2x4x16 to be 2x4x32}}
  %0 = llm.linear %x, %w : tensor<2x4x16xf32>, tensor<16x32xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @linear_types(%x: tensor<2x4x16xf32>, %w: tensor<16x32xf16>) {
  // expected-error@+1 {{'llm.linear' op expects weight element type (f16) to match input element type (f32)}}
  %0 = llm.linear %x, %w : tensor<2x4x16xf32>, tensor<16x32xf16> -> tensor<2x4x32xf32>
  return
}

// -----

func.func @split_axis(%x: tensor<2x4x48xf32>) {
  // expected-error@+1 {{'llm.split' op expects axis (3) to be in [0, 3)}}
  %0:3 = llm.split %x {axis = 3 : i64} : tensor<2x4x48xf32> -> tensor<2x4x16xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32>
  return
}

// -----

func.func @split_no_results(%x: tensor<2x4x48xf32>) {
  // expected-error@+1 {{'llm.split' op expects at least one result}}
  "llm.split"(%x) {axis = 2 : i64} : (tensor<2x4x48xf32>) -> ()
  return
}

// -----

func.func @split_rank(%x: tensor<2x4x48xf32>) {
  // expected-error@+1 {{'llm.split' op expects result #1 to have rank 3, got rank 2}}
  %0:2 = llm.split %x {axis = 2 : i64} : tensor<2x4x48xf32> -> tensor<2x4x16xf32>, tensor<4x32xf32>
  return
}

// -----

func.func @split_type(%x: tensor<2x4x48xf32>) {
  // expected-error@+1 {{'llm.split' op expects result #0 element type (bf16) to match input element type (f32)}}
  %0:2 = llm.split %x {axis = 2 : i64} : tensor<2x4x48xf32> -> tensor<2x4x16xbf16>, tensor<2x4x32xf32>
  return
}

// -----

func.func @split_other_axis(%x: tensor<2x4x48xf32>) {
  // expected-error@+1 {{'llm.split' op expects result #1 shape 2x5x32 to match input shape 2x4x48 outside axis 2}}
  %0:2 = llm.split %x {axis = 2 : i64} : tensor<2x4x48xf32> -> tensor<2x4x16xf32>, tensor<2x5x32xf32>
  return
}

// -----

func.func @split_sum(%x: tensor<2x4x48xf32>) {
  // expected-error@+1 {{'llm.split' op expects result sizes along axis 2 to add up to 48, got 40}}
  %0:3 = llm.split %x {axis = 2 : i64} : tensor<2x4x48xf32> -> tensor<2x4x16xf32>, tensor<2x4x16xf32>, tensor<2x4x8xf32>
  return
}

// -----

func.func @rope_rank(%x: tensor<4x64xf32>) {
  // expected-error@+1 {{'llm.rope' op expects input to have rank 3, got rank 2}}
  %0 = llm.rope %x {num_heads = 2 : i64, theta = 1.0e4 : f64} : tensor<4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @rope_heads_positive(%x: tensor<2x4x64xf32>) {
  // expected-error@+1 {{'llm.rope' op expects num_heads > 0, got 0}}
  %0 = llm.rope %x {num_heads = 0 : i64, theta = 1.0e4 : f64} : tensor<2x4x64xf32> -> tensor<2x4x64xf32>
  return
}

// -----

func.func @rope_heads_divide(%x: tensor<2x4x770xf32>) {
  // expected-error@+1 {{'llm.rope' op expects num_heads (12) to divide hidden size (770)}}
  %0 = llm.rope %x {num_heads = 12 : i64, theta = 1.0e4 : f64} : tensor<2x4x770xf32> -> tensor<2x4x770xf32>
  return
}

// -----

func.func @rope_theta(%x: tensor<2x4x64xf32>) {
  // expected-error@+1 {{'llm.rope' op expects theta > 0, got 0}}
  %0 = llm.rope %x {num_heads = 2 : i64, theta = 0.0 : f64} : tensor<2x4x64xf32> -> tensor<2x4x64xf32>
  return
}

// -----

func.func @rope_odd_head_dim(%x: tensor<2x4x42xf32>) {
  // expected-error@+1 {{'llm.rope' op expects an even head_dim for rotary pairs, got 7}}
  %0 = llm.rope %x {num_heads = 6 : i64, theta = 1.0e4 : f64} : tensor<2x4x42xf32> -> tensor<2x4x42xf32>
  return
}

// -----

func.func @rope_result(%x: tensor<2x4x64xf32>) {
  // expected-error@+1 {{'llm.rope' op failed to verify that all of {input, result} have same type}}
  %0 = llm.rope %x {num_heads = 2 : i64, theta = 1.0e4 : f64} : tensor<2x4x64xf32> -> tensor<2x4x64xbf16>
  return
}

// -----

func.func @attention_rank(%q: tensor<4x64xf32>, %k: tensor<2x4x64xf32>, %v: tensor<2x4x64xf32>) {
  // expected-error@+1 {{'llm.attention' op expects q to have rank 3, got rank 2}}
  %0 = llm.attention %q, %k, %v {num_heads = 2 : i64, num_kv_heads = 2 : i64, causal} : tensor<4x64xf32>, tensor<2x4x64xf32>, tensor<2x4x64xf32> -> tensor<4x64xf32>
  return
}

// -----

func.func @attention_k_rank(%q: tensor<2x4x64xf32>, %k: tensor<8x64xf32>, %v: tensor<2x4x64xf32>) {
  // expected-error@+1 {{'llm.attention' op expects k to have rank 3, got rank 2}}
  %0 = llm.attention %q, %k, %v {num_heads = 2 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x64xf32>, tensor<8x64xf32>, tensor<2x4x64xf32> -> tensor<2x4x64xf32>
  return
}

// -----

func.func @attention_v_rank(%q: tensor<2x4x64xf32>, %k: tensor<2x4x64xf32>, %v: tensor<8x64xf32>) {
  // expected-error@+1 {{'llm.attention' op expects v to have rank 3, got rank 2}}
  %0 = llm.attention %q, %k, %v {num_heads = 2 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x64xf32>, tensor<2x4x64xf32>, tensor<8x64xf32> -> tensor<2x4x64xf32>
  return
}

// -----

func.func @attention_heads_positive(%q: tensor<2x4x64xf32>, %k: tensor<2x4x64xf32>, %v: tensor<2x4x64xf32>) {
  // expected-error@+1 {{'llm.attention' op expects num_heads > 0, got -2}}
  %0 = llm.attention %q, %k, %v {num_heads = -2 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x64xf32>, tensor<2x4x64xf32>, tensor<2x4x64xf32> -> tensor<2x4x64xf32>
  return
}

// -----

func.func @attention_heads_divide(%q: tensor<2x4x770xf32>, %k: tensor<2x4x770xf32>, %v: tensor<2x4x770xf32>) {
  // expected-error@+1 {{'llm.attention' op expects num_heads (12) to divide hidden size (770)}}
  %0 = llm.attention %q, %k, %v {num_heads = 12 : i64, num_kv_heads = 12 : i64, causal} : tensor<2x4x770xf32>, tensor<2x4x770xf32>, tensor<2x4x770xf32> -> tensor<2x4x770xf32>
  return
}

// -----

func.func @attention_kv_positive(%q: tensor<2x4x64xf32>, %k: tensor<2x4x64xf32>, %v: tensor<2x4x64xf32>) {
  // expected-error@+1 {{'llm.attention' op expects num_kv_heads > 0, got 0}}
  %0 = llm.attention %q, %k, %v {num_heads = 2 : i64, num_kv_heads = 0 : i64, causal} : tensor<2x4x64xf32>, tensor<2x4x64xf32>, tensor<2x4x64xf32> -> tensor<2x4x64xf32>
  return
}

// -----

func.func @attention_kv_divide(%q: tensor<2x4x64xf32>, %k: tensor<2x4x48xf32>, %v: tensor<2x4x48xf32>) {
  // expected-error@+1 {{'llm.attention' op expects num_kv_heads (3) to divide num_heads (4)}}
  %0 = llm.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 3 : i64, causal} : tensor<2x4x64xf32>, tensor<2x4x48xf32>, tensor<2x4x48xf32> -> tensor<2x4x64xf32>
  return
}

// -----

func.func @attention_kv_batch(%q: tensor<2x4x64xf32>, %k: tensor<2x8x32xf32>, %v: tensor<2x4x32xf32>) {
  // expected-error@+1 {{'llm.attention' op expects k batch and sequence (2x8) to equal those of q (2x4)}}
  %0 = llm.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x64xf32>, tensor<2x8x32xf32>, tensor<2x4x32xf32> -> tensor<2x4x64xf32>
  return
}

// -----

func.func @attention_kv_features(%q: tensor<2x4x64xf32>, %k: tensor<2x4x32xf32>, %v: tensor<2x4x64xf32>) {
  // expected-error@+1 {{'llm.attention' op expects v to have num_kv_heads * head_dim = 2 * 16 = 32 features, got 64}}
  %0 = llm.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x64xf32>, tensor<2x4x32xf32>, tensor<2x4x64xf32> -> tensor<2x4x64xf32>
  return
}

// -----

func.func @attention_scale(%q: tensor<2x4x64xf32>, %k: tensor<2x4x64xf32>, %v: tensor<2x4x64xf32>) {
  // expected-error@+1 {{'llm.attention' op expects scale > 0, got -0.125}}
  %0 = llm.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 4 : i64, scale = -0.125 : f64} : tensor<2x4x64xf32>, tensor<2x4x64xf32>, tensor<2x4x64xf32> -> tensor<2x4x64xf32>
  return
}

// -----

func.func @attention_types(%q: tensor<2x4x64xf32>, %k: tensor<2x4x64xbf16>, %v: tensor<2x4x64xf32>) {
  // expected-error@+1 {{'llm.attention' op expects k element type (bf16) to match q element type (f32)}}
  %0 = llm.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 4 : i64} : tensor<2x4x64xf32>, tensor<2x4x64xbf16>, tensor<2x4x64xf32> -> tensor<2x4x64xf32>
  return
}

// -----

func.func @attention_result(%q: tensor<2x4x64xf32>, %k: tensor<2x4x64xf32>, %v: tensor<2x4x64xf32>) {
  // expected-error@+1 {{'llm.attention' op expects result type tensor<2x4x32xf32> to equal the q type tensor<2x4x64xf32>}}
  %0 = llm.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 4 : i64} : tensor<2x4x64xf32>, tensor<2x4x64xf32>, tensor<2x4x64xf32> -> tensor<2x4x32xf32>
  return
}

// -----

func.func @gelu_type(%x: tensor<2x4xf32>) {
  // expected-error@+1 {{'llm.gelu' op requires the same type for all operands and results}}
  %0 = "llm.gelu"(%x) : (tensor<2x4xf32>) -> tensor<2x4xbf16>
  return
}

// -----

func.func @silu_type(%x: tensor<2x4xi32>) {
  // expected-error@+1 {{'llm.silu' op operand #0 must be ranked tensor of 32-bit float or bfloat16 type or 16-bit float values}}
  %0 = llm.silu %x : tensor<2x4xi32>
  return
}

// -----

func.func @add_broadcast(%a: tensor<2x4x16xf32>, %b: tensor<8x16xf32>) {
  // expected-error@+1 {{'llm.add' op expects rhs shape 8x16 to equal the trailing axes of lhs shape 2x4x16}}
  %0 = llm.add %a, %b : tensor<2x4x16xf32>, tensor<8x16xf32>
  return
}

// -----

func.func @mul_rank(%a: tensor<4x16xf32>, %b: tensor<2x4x16xf32>) {
  // expected-error@+1 {{'llm.mul' op expects rhs shape 2x4x16 to equal the trailing axes of lhs shape 4x16}}
  %0 = llm.mul %a, %b : tensor<4x16xf32>, tensor<2x4x16xf32>
  return
}

// -----

func.func @add_types(%a: tensor<4x16xf32>, %b: tensor<4x16xf16>) {
  // expected-error@+1 {{'llm.add' op expects rhs element type (f16) to match lhs element type (f32)}}
  %0 = llm.add %a, %b : tensor<4x16xf32>, tensor<4x16xf16>
  return
}

// -----

func.func @cross_entropy_rank(%l: tensor<16xf32>, %t: tensor<i32>) {
  // expected-error@+1 {{'llm.cross_entropy' op expects logits to have rank >= 2, got rank 1}}
  %0 = llm.cross_entropy %l, %t : tensor<16xf32>, tensor<i32> -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_targets(%l: tensor<2x4x16xf32>, %t: tensor<2x8xi32>) {
  // expected-error@+1 {{'llm.cross_entropy' op expects targets shape 2x8 to be 2x4 (logits shape without the vocabulary axis)}}
  %0 = llm.cross_entropy %l, %t : tensor<2x4x16xf32>, tensor<2x8xi32> -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_result(%l: tensor<2x4x16xbf16>, %t: tensor<2x4xi32>) {
  // expected-error@+1 {{'llm.cross_entropy' op result #0 must be 0D tensor of 32-bit float values}}
  %0 = llm.cross_entropy %l, %t : tensor<2x4x16xbf16>, tensor<2x4xi32> -> tensor<bf16>
  return
}

// -----

func.func @cross_entropy_vocab_without_group(%l: tensor<2x4x16xf32>, %t: tensor<2x4xi32>) {
  // expected-error@+1 {{'llm.cross_entropy' op expects `vocab` only with `vocab_group`}}
  %0 = llm.cross_entropy %l, %t {vocab = 30 : i64} : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return
}

// -----

func.func @cross_entropy_vocab_positive(%l: tensor<2x4x16xf32>, %t: tensor<2x4xi32>) {
  // expected-error@+1 {{'llm.cross_entropy' op expects a positive `vocab`, got -3}}
  %0 = llm.cross_entropy %l, %t {vocab = -3 : i64, vocab_group = "tp"} : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return
}
