// RUN: llm-opt %s -split-input-file -verify-diagnostics
// One case per verifier message of the llm backward and optimizer ops
// (dialects/llm/LLMVerifiers.cpp, after the "Backward and optimizer ops"
// banner), plus the ODS type constraints of the ops without a verifier.

//===----------------------------------------------------------------------===//
// llm.embedding_grad
//===----------------------------------------------------------------------===//

func.func @embedding_grad_result_rank(%ids: tensor<2x4xi32>, %dx: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.embedding_grad' op expects result to have rank 2, got rank 3}}
  %0 = llm.embedding_grad %ids, %dx : tensor<2x4xi32>, tensor<2x4x8xf32> -> tensor<16x8x1xf32>
  return
}

// -----

func.func @embedding_grad_dout_hidden(%ids: tensor<2x4xi32>, %dx: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.embedding_grad' op expects dout shape 2x4x8 to be 2x4x16 (ids shape followed by the table's hidden size)}}
  %0 = llm.embedding_grad %ids, %dx : tensor<2x4xi32>, tensor<2x4x8xf32> -> tensor<32x16xf32>
  return
}

// -----

func.func @embedding_grad_dout_tokens(%ids: tensor<2x4xi32>, %dx: tensor<2x3x8xf32>) {
  // expected-error@+1 {{'llm.embedding_grad' op expects dout shape 2x3x8 to be 2x4x8 (ids shape followed by the table's hidden size)}}
  %0 = llm.embedding_grad %ids, %dx : tensor<2x4xi32>, tensor<2x3x8xf32> -> tensor<16x8xf32>
  return
}

// -----

func.func @embedding_grad_element_type(%ids: tensor<2x4xi32>, %dx: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.embedding_grad' op expects result element type (bf16) to match dout element type (f32)}}
  %0 = llm.embedding_grad %ids, %dx : tensor<2x4xi32>, tensor<2x4x8xf32> -> tensor<16x8xbf16>
  return
}

// -----

func.func @embedding_grad_float_ids(%ids: tensor<2x4xf32>, %dx: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.embedding_grad' op operand #0 must be ranked tensor of 32-bit signless integer or 64-bit signless integer values}}
  %0 = llm.embedding_grad %ids, %dx : tensor<2x4xf32>, tensor<2x4x8xf32> -> tensor<16x8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.position_embedding_grad
//===----------------------------------------------------------------------===//

func.func @position_grad_dout_rank(%dp: tensor<1x4x8xf32>) {
  // expected-error@+1 {{'llm.position_embedding_grad' op expects dout to have rank 2, got rank 3}}
  %0 = llm.position_embedding_grad %dp : tensor<1x4x8xf32> -> tensor<32x8xf32>
  return
}

// -----

func.func @position_grad_result_rank(%dp: tensor<4x8xf32>) {
  // expected-error@+1 {{'llm.position_embedding_grad' op expects result to have rank 2, got rank 1}}
  %0 = llm.position_embedding_grad %dp : tensor<4x8xf32> -> tensor<256xf32>
  return
}

// -----

func.func @position_grad_hidden(%dp: tensor<4x8xf32>) {
  // expected-error@+1 {{'llm.position_embedding_grad' op expects result hidden size (16) to equal dout hidden size (8)}}
  %0 = llm.position_embedding_grad %dp : tensor<4x8xf32> -> tensor<32x16xf32>
  return
}

// -----

func.func @position_grad_too_long(%dp: tensor<9x8xf32>) {
  // expected-error@+1 {{'llm.position_embedding_grad' op expects sequence length (9) to be at most the table's max positions (8)}}
  %0 = llm.position_embedding_grad %dp : tensor<9x8xf32> -> tensor<8x8xf32>
  return
}

// -----

func.func @position_grad_element_type(%dp: tensor<4x8xf32>) {
  // expected-error@+1 {{'llm.position_embedding_grad' op expects result element type (f16) to match dout element type (f32)}}
  %0 = llm.position_embedding_grad %dp : tensor<4x8xf32> -> tensor<32x8xf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.layer_norm_grad
//===----------------------------------------------------------------------===//

func.func @layer_norm_grad_epsilon_zero(%x: tensor<2x4x8xf32>, %w: tensor<8xf32>, %dy: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.layer_norm_grad' op expects epsilon > 0, got 0}}
  %dx, %dw, %db = llm.layer_norm_grad %x, %w, %dy {epsilon = 0.0 : f64}
      : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>
  return
}

// -----

func.func @layer_norm_grad_epsilon_negative(%x: tensor<2x4x8xf32>, %w: tensor<8xf32>, %dy: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.layer_norm_grad' op expects epsilon > 0, got -1e-05}}
  %dx, %dw, %db = llm.layer_norm_grad %x, %w, %dy {epsilon = -1.0e-05 : f64}
      : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>
  return
}

// -----

func.func @layer_norm_grad_scalar_input(%x: tensor<f32>, %w: tensor<8xf32>, %dy: tensor<f32>) {
  // expected-error@+1 {{'llm.layer_norm_grad' op expects input to have rank >= 1}}
  %dx, %dw, %db = llm.layer_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<f32>, tensor<8xf32>, tensor<f32> -> tensor<f32>, tensor<8xf32>, tensor<8xf32>
  return
}

// -----

func.func @layer_norm_grad_weight_size(%x: tensor<2x4x8xf32>, %w: tensor<4xf32>, %dy: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.layer_norm_grad' op expects weight shape 4 to be [8], the size of the input's last axis}}
  %dx, %dw, %db = llm.layer_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<2x4x8xf32>, tensor<4xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<4xf32>, tensor<4xf32>
  return
}

// -----

func.func @layer_norm_grad_weight_rank(%x: tensor<2x4x8xf32>, %w: tensor<1x8xf32>, %dy: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.layer_norm_grad' op expects weight shape 1x8 to be [8], the size of the input's last axis}}
  %dx, %dw, %db = llm.layer_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<2x4x8xf32>, tensor<1x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<1x8xf32>, tensor<1x8xf32>
  return
}

// -----

func.func @layer_norm_grad_weight_element_type(%x: tensor<2x4x8xf32>, %w: tensor<8xbf16>, %dy: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.layer_norm_grad' op expects weight element type (bf16) to match input element type (f32)}}
  %dx, %dw, %db = llm.layer_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<2x4x8xf32>, tensor<8xbf16>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<8xbf16>, tensor<8xbf16>
  return
}

// -----

// dy must have the input's type (the shared helper words it "result type").
func.func @layer_norm_grad_dy_type(%x: tensor<2x4x8xf32>, %w: tensor<8xf32>, %dy: tensor<2x8x8xf32>) {
  // expected-error@+1 {{'llm.layer_norm_grad' op expects dy type tensor<2x8x8xf32> to equal the input type tensor<2x4x8xf32>}}
  %dx, %dw, %db = llm.layer_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x8x8xf32> -> tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>
  return
}

// -----

func.func @layer_norm_grad_d_input_type(%x: tensor<2x4x8xf32>, %w: tensor<8xf32>, %dy: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.layer_norm_grad' op expects d_input type tensor<2x4x8xbf16> to equal the input type tensor<2x4x8xf32>}}
  %dx, %dw, %db = llm.layer_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xbf16>, tensor<8xf32>, tensor<8xf32>
  return
}

// -----

func.func @layer_norm_grad_d_weight_type(%x: tensor<2x4x8xf32>, %w: tensor<8xf32>, %dy: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.layer_norm_grad' op expects d_weight type tensor<4xf32> to equal the weight type tensor<8xf32>}}
  %dx, %dw, %db = llm.layer_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<4xf32>, tensor<8xf32>
  return
}

// -----

func.func @layer_norm_grad_d_bias_type(%x: tensor<2x4x8xf32>, %w: tensor<8xf32>, %dy: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.layer_norm_grad' op expects d_bias type tensor<8xf16> to equal the weight type tensor<8xf32>}}
  %dx, %dw, %db = llm.layer_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.rms_norm_grad
//===----------------------------------------------------------------------===//

func.func @rms_norm_grad_epsilon(%x: tensor<1x4x8xf32>, %w: tensor<8xf32>, %dy: tensor<1x4x8xf32>) {
  // expected-error@+1 {{'llm.rms_norm_grad' op expects epsilon > 0, got 0}}
  %dx, %dw = llm.rms_norm_grad %x, %w, %dy {epsilon = 0.0 : f64}
      : tensor<1x4x8xf32>, tensor<8xf32>, tensor<1x4x8xf32> -> tensor<1x4x8xf32>, tensor<8xf32>
  return
}

// -----

func.func @rms_norm_grad_scalar_input(%x: tensor<f32>, %w: tensor<8xf32>, %dy: tensor<f32>) {
  // expected-error@+1 {{'llm.rms_norm_grad' op expects input to have rank >= 1}}
  %dx, %dw = llm.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<f32>, tensor<8xf32>, tensor<f32> -> tensor<f32>, tensor<8xf32>
  return
}

// -----

func.func @rms_norm_grad_weight_size(%x: tensor<1x4x8xf32>, %w: tensor<16xf32>, %dy: tensor<1x4x8xf32>) {
  // expected-error@+1 {{'llm.rms_norm_grad' op expects weight shape 16 to be [8], the size of the input's last axis}}
  %dx, %dw = llm.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<1x4x8xf32>, tensor<16xf32>, tensor<1x4x8xf32> -> tensor<1x4x8xf32>, tensor<16xf32>
  return
}

// -----

func.func @rms_norm_grad_weight_element_type(%x: tensor<1x4x8xbf16>, %w: tensor<8xf32>, %dy: tensor<1x4x8xbf16>) {
  // expected-error@+1 {{'llm.rms_norm_grad' op expects weight element type (f32) to match input element type (bf16)}}
  %dx, %dw = llm.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<1x4x8xbf16>, tensor<8xf32>, tensor<1x4x8xbf16> -> tensor<1x4x8xbf16>, tensor<8xf32>
  return
}

// -----

func.func @rms_norm_grad_dy_type(%x: tensor<1x4x8xf32>, %w: tensor<8xf32>, %dy: tensor<4x8xf32>) {
  // expected-error@+1 {{'llm.rms_norm_grad' op expects dy type tensor<4x8xf32> to equal the input type tensor<1x4x8xf32>}}
  %dx, %dw = llm.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<1x4x8xf32>, tensor<8xf32>, tensor<4x8xf32> -> tensor<1x4x8xf32>, tensor<8xf32>
  return
}

// -----

func.func @rms_norm_grad_d_input_type(%x: tensor<1x4x8xf32>, %w: tensor<8xf32>, %dy: tensor<1x4x8xf32>) {
  // expected-error@+1 {{'llm.rms_norm_grad' op expects d_input type tensor<1x2x8xf32> to equal the input type tensor<1x4x8xf32>}}
  %dx, %dw = llm.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<1x4x8xf32>, tensor<8xf32>, tensor<1x4x8xf32> -> tensor<1x2x8xf32>, tensor<8xf32>
  return
}

// -----

func.func @rms_norm_grad_d_weight_type(%x: tensor<1x4x8xf32>, %w: tensor<8xf32>, %dy: tensor<1x4x8xf32>) {
  // expected-error@+1 {{'llm.rms_norm_grad' op expects d_weight type tensor<1x8xf32> to equal the weight type tensor<8xf32>}}
  %dx, %dw = llm.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<1x4x8xf32>, tensor<8xf32>, tensor<1x4x8xf32> -> tensor<1x4x8xf32>, tensor<1x8xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.linear_weight_grad
//===----------------------------------------------------------------------===//

func.func @linear_weight_grad_leading(%x: tensor<2x4x8xf32>, %dy: tensor<2x3x24xf32>) {
  // expected-error@+1 {{'llm.linear_weight_grad' op expects input 2x4x8 and dy 2x3x24 to agree on every axis but the last}}
  %0 = llm.linear_weight_grad %x, %dy : tensor<2x4x8xf32>, tensor<2x3x24xf32> -> tensor<8x24xf32>
  return
}

// -----

func.func @linear_weight_grad_rank(%x: tensor<2x4x8xf32>, %dy: tensor<8x24xf32>) {
  // expected-error@+1 {{'llm.linear_weight_grad' op expects input 2x4x8 and dy 8x24 to agree on every axis but the last}}
  %0 = llm.linear_weight_grad %x, %dy : tensor<2x4x8xf32>, tensor<8x24xf32> -> tensor<8x24xf32>
  return
}

// -----

func.func @linear_weight_grad_scalar(%x: tensor<f32>, %dy: tensor<f32>) {
  // expected-error@+1 {{'llm.linear_weight_grad' op expects input scalar and dy scalar to agree on every axis but the last}}
  %0 = llm.linear_weight_grad %x, %dy : tensor<f32>, tensor<f32> -> tensor<1x1xf32>
  return
}

// -----

func.func @linear_weight_grad_result_shape(%x: tensor<2x4x8xf32>, %dy: tensor<2x4x24xf32>) {
  // expected-error@+1 {{'llm.linear_weight_grad' op expects result shape 24x8 to be 8x24}}
  %0 = llm.linear_weight_grad %x, %dy : tensor<2x4x8xf32>, tensor<2x4x24xf32> -> tensor<24x8xf32>
  return
}

// -----

func.func @linear_weight_grad_result_shape_transposed(%x: tensor<2x4x8xf32>, %dy: tensor<2x4x24xf32>) {
  // expected-error@+1 {{'llm.linear_weight_grad' op expects result shape 8x24 to be 24x8}}
  %0 = llm.linear_weight_grad %x, %dy {transpose_weight} : tensor<2x4x8xf32>, tensor<2x4x24xf32> -> tensor<8x24xf32>
  return
}

// -----

func.func @linear_weight_grad_dy_element_type(%x: tensor<2x4x8xf32>, %dy: tensor<2x4x24xbf16>) {
  // expected-error@+1 {{'llm.linear_weight_grad' op expects dy element type (bf16) to match input element type (f32)}}
  %0 = llm.linear_weight_grad %x, %dy : tensor<2x4x8xf32>, tensor<2x4x24xbf16> -> tensor<8x24xf32>
  return
}

// -----

func.func @linear_weight_grad_result_element_type(%x: tensor<2x4x8xf32>, %dy: tensor<2x4x24xf32>) {
  // expected-error@+1 {{'llm.linear_weight_grad' op expects result element type (f16) to match input element type (f32)}}
  %0 = llm.linear_weight_grad %x, %dy : tensor<2x4x8xf32>, tensor<2x4x24xf32> -> tensor<8x24xf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.sum_leading
//===----------------------------------------------------------------------===//

func.func @sum_leading_not_suffix(%dy: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.sum_leading' op expects result shape 4 to equal the trailing axes of input shape 2x4x8}}
  %0 = llm.sum_leading %dy : tensor<2x4x8xf32> -> tensor<4xf32>
  return
}

// -----

func.func @sum_leading_longer(%dy: tensor<4x8xf32>) {
  // expected-error@+1 {{'llm.sum_leading' op expects result shape 1x4x8 to equal the trailing axes of input shape 4x8}}
  %0 = llm.sum_leading %dy : tensor<4x8xf32> -> tensor<1x4x8xf32>
  return
}

// -----

func.func @sum_leading_element_type(%dy: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.sum_leading' op expects result element type (bf16) to match input element type (f32)}}
  %0 = llm.sum_leading %dy : tensor<2x4x8xf32> -> tensor<8xbf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.concat
//===----------------------------------------------------------------------===//

func.func @concat_no_inputs() {
  // expected-error@+1 {{'llm.concat' op expects at least one input}}
  %0 = "llm.concat"() <{axis = 0 : i64}> : () -> tensor<4xf32>
  return
}

// -----

func.func @concat_axis_too_large(%a: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.concat' op expects axis (3) to be in [0, 3)}}
  %0 = llm.concat %a, %a {axis = 3 : i64} : tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @concat_axis_negative(%a: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.concat' op expects axis (-1) to be in [0, 3)}}
  %0 = llm.concat %a, %a {axis = -1 : i64} : tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @concat_input_rank(%a: tensor<2x4x8xf32>, %b: tensor<8x8xf32>) {
  // expected-error@+1 {{'llm.concat' op expects input #1 to have rank 3, got rank 2}}
  %0 = llm.concat %a, %b {axis = 2 : i64} : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @concat_input_element_type(%a: tensor<2x4x8xf32>, %b: tensor<2x4x8xbf16>) {
  // expected-error@+1 {{'llm.concat' op expects input #1 element type (bf16) to match result element type (f32)}}
  %0 = llm.concat %a, %b {axis = 2 : i64} : tensor<2x4x8xf32>, tensor<2x4x8xbf16> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @concat_shape_outside_axis(%a: tensor<2x4x8xf32>, %b: tensor<2x3x8xf32>) {
  // expected-error@+1 {{'llm.concat' op expects input #1 shape 2x3x8 to match result shape 2x4x16 outside axis 2}}
  %0 = llm.concat %a, %b {axis = 2 : i64} : tensor<2x4x8xf32>, tensor<2x3x8xf32> -> tensor<2x4x16xf32>
  return
}

// -----

func.func @concat_sum(%a: tensor<2x4x8xf32>, %b: tensor<2x4x4xf32>) {
  // expected-error@+1 {{'llm.concat' op expects input sizes along axis 2 to add up to 16, got 12}}
  %0 = llm.concat %a, %b {axis = 2 : i64} : tensor<2x4x8xf32>, tensor<2x4x4xf32> -> tensor<2x4x16xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.attention_grad (the shape rules are shared with llm.attention)
//===----------------------------------------------------------------------===//

func.func @attention_grad_q_rank(%q: tensor<4x8xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x4x8xf32>, %do: tensor<4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects q to have rank 3, got rank 2}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 2 : i64, num_kv_heads = 2 : i64}
      : tensor<4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<4x8xf32> -> tensor<4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  return
}

// -----

func.func @attention_grad_v_rank(%q: tensor<2x4x8xf32>, %k: tensor<2x4x8xf32>, %v: tensor<8x8xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects v to have rank 3, got rank 2}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 2 : i64, num_kv_heads = 2 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<8x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<8x8xf32>
  return
}

// -----

func.func @attention_grad_zero_heads(%q: tensor<2x4x8xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x4x8xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects num_heads > 0, got 0}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 0 : i64, num_kv_heads = 2 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  return
}

// -----

func.func @attention_grad_heads_divide_hidden(%q: tensor<2x4x8xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x4x8xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects num_heads (3) to divide hidden size (8)}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 3 : i64, num_kv_heads = 3 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  return
}

// -----

func.func @attention_grad_zero_kv_heads(%q: tensor<2x4x8xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x4x8xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects num_kv_heads > 0, got 0}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 0 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  return
}

// -----

func.func @attention_grad_kv_divide(%q: tensor<2x4x8xf32>, %k: tensor<2x4x6xf32>, %v: tensor<2x4x6xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects num_kv_heads (3) to divide num_heads (4)}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 3 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x6xf32>, tensor<2x4x6xf32>
  return
}

// -----

func.func @attention_grad_k_batch_seq(%q: tensor<2x4x8xf32>, %k: tensor<2x3x4xf32>, %v: tensor<2x4x4xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects k batch and sequence (2x3) to equal those of q (2x4)}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : tensor<2x4x8xf32>, tensor<2x3x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x3x4xf32>, tensor<2x4x4xf32>
  return
}

// -----

func.func @attention_grad_v_batch_seq(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>, %v: tensor<1x4x4xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects v batch and sequence (1x4) to equal those of q (2x4)}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<1x4x4xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<1x4x4xf32>
  return
}

// -----

// head_dim = 8 / 4 = 2, so k and v need 2 * 2 = 4 features.
func.func @attention_grad_k_features(%q: tensor<2x4x8xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x4x4xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects k to have num_kv_heads * head_dim = 2 * 2 = 4 features, got 8}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x4xf32>
  return
}

// -----

func.func @attention_grad_v_features(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>, %v: tensor<2x4x6xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects v to have num_kv_heads * head_dim = 2 * 2 = 4 features, got 6}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x6xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x6xf32>
  return
}

// -----

func.func @attention_grad_scale(%q: tensor<2x4x8xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x4x8xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects scale > 0, got -0.5}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 2 : i64, num_kv_heads = 2 : i64, scale = -0.5 : f64}
      : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  return
}

// -----

func.func @attention_grad_element_types(%q: tensor<2x4x8xf32>, %k: tensor<2x4x8xbf16>, %v: tensor<2x4x8xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects k element type (bf16) to match q element type (f32)}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 2 : i64, num_kv_heads = 2 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x8xbf16>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xbf16>, tensor<2x4x8xf32>
  return
}

// -----

// dout must have the type of q (the shared helper words it "result type").
func.func @attention_grad_dout_type(%q: tensor<2x4x8xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x4x8xf32>, %do: tensor<2x4x16xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects dout type tensor<2x4x16xf32> to equal the q type tensor<2x4x8xf32>}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 2 : i64, num_kv_heads = 2 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x16xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  return
}

// -----

func.func @attention_grad_dq_type(%q: tensor<2x4x8xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x4x8xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects dq type tensor<2x4x8xf16> to equal the q type tensor<2x4x8xf32>}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 2 : i64, num_kv_heads = 2 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf16>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  return
}

// -----

func.func @attention_grad_dk_type(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>, %v: tensor<2x4x4xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects dk type tensor<2x4x8xf32> to equal the k type tensor<2x4x4xf32>}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x4xf32>
  return
}

// -----

func.func @attention_grad_dv_type(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>, %v: tensor<2x4x4xf32>, %do: tensor<2x4x8xf32>) {
  // expected-error@+1 {{'llm.attention_grad' op expects dv type tensor<2x4x2xf32> to equal the v type tensor<2x4x4xf32>}}
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 2 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x2xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.gelu_grad, llm.silu_grad (AllTypesMatch, visible in the generic form)
//===----------------------------------------------------------------------===//

func.func @gelu_grad_types(%x: tensor<2x4xf32>, %dy: tensor<2x8xf32>) {
  // expected-error@+1 {{'llm.gelu_grad' op failed to verify that all of {input, dy, result} have same type}}
  %0 = "llm.gelu_grad"(%x, %dy) : (tensor<2x4xf32>, tensor<2x8xf32>) -> tensor<2x4xf32>
  return
}

// -----

func.func @silu_grad_types(%x: tensor<2x4xf32>, %dy: tensor<2x4xf32>) {
  // expected-error@+1 {{'llm.silu_grad' op failed to verify that all of {input, dy, result} have same type}}
  %0 = "llm.silu_grad"(%x, %dy) : (tensor<2x4xf32>, tensor<2x4xf32>) -> tensor<2x4xbf16>
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.cross_entropy_grad
//===----------------------------------------------------------------------===//

func.func @cross_entropy_grad_rank(%l: tensor<16xf32>, %t: tensor<i32>) {
  // expected-error@+1 {{'llm.cross_entropy_grad' op expects logits to have rank >= 2, got rank 1}}
  %0 = llm.cross_entropy_grad %l, %t : tensor<16xf32>, tensor<i32>
  return
}

// -----

func.func @cross_entropy_grad_targets(%l: tensor<2x4x16xf32>, %t: tensor<2x3xi32>) {
  // expected-error@+1 {{'llm.cross_entropy_grad' op expects targets shape 2x3 to be 2x4 (logits shape without the vocabulary axis)}}
  %0 = llm.cross_entropy_grad %l, %t : tensor<2x4x16xf32>, tensor<2x3xi32>
  return
}

// -----

func.func @cross_entropy_grad_vocab(%l: tensor<2x4x16xf32>, %t: tensor<2x4xi32>) {
  // expected-error@+1 {{'llm.cross_entropy_grad' op expects `vocab` only with `vocab_group`}}
  %0 = llm.cross_entropy_grad %l, %t {vocab = 30 : i64} : tensor<2x4x16xf32>, tensor<2x4xi32>
  return
}

// -----

func.func @cross_entropy_grad_targets_with_vocab(%l: tensor<2x4x16xf32>, %t: tensor<2x4x16xi32>) {
  // expected-error@+1 {{'llm.cross_entropy_grad' op expects targets shape 2x4x16 to be 2x4 (logits shape without the vocabulary axis)}}
  %0 = llm.cross_entropy_grad %l, %t : tensor<2x4x16xf32>, tensor<2x4x16xi32>
  return
}

// -----

func.func @cross_entropy_grad_result_type(%l: tensor<2x4x16xf32>, %t: tensor<2x4xi32>) {
  // expected-error@+1 {{'llm.cross_entropy_grad' op failed to verify that all of {logits, result} have same type}}
  %0 = "llm.cross_entropy_grad"(%l, %t) : (tensor<2x4x16xf32>, tensor<2x4xi32>) -> tensor<8x16xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.global_norm, llm.clip_scale
//===----------------------------------------------------------------------===//

func.func @global_norm_no_operands() {
  // expected-error@+1 {{'llm.global_norm' op expects at least one operand}}
  %0 = "llm.global_norm"() : () -> tensor<f32>
  return
}

// -----

func.func @global_norm_result_type(%g: tensor<4xf32>) {
  // expected-error@+1 {{'llm.global_norm' op result #0 must be 0D tensor of 32-bit float values}}
  %0 = "llm.global_norm"(%g) : (tensor<4xf32>) -> tensor<1xf32>
  return
}

// -----

func.func @clip_scale_operand_type(%n: tensor<f32>, %m: tensor<f64>) {
  // expected-error@+1 {{'llm.clip_scale' op operand #1 must be 0D tensor of 32-bit float values}}
  %0 = "llm.clip_scale"(%n, %m) : (tensor<f32>, tensor<f64>) -> tensor<f32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.adamw
//===----------------------------------------------------------------------===//

func.func @adamw_beta1_one(%p: tensor<8xf32>, %lr: tensor<f32>, %step: tensor<i64>, %wd: tensor<f32>, %c: tensor<f32>) {
  // expected-error@+1 {{'llm.adamw' op expects beta1 in [0, 1), got 1}}
  %p2, %m2, %v2 = llm.adamw %p, %p, %p, %p, %lr, %step, %wd, %c
      {beta1 = 1.0 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64} : tensor<8xf32>
  return
}

// -----

func.func @adamw_beta1_negative(%p: tensor<8xf32>, %lr: tensor<f32>, %step: tensor<i64>, %wd: tensor<f32>, %c: tensor<f32>) {
  // expected-error@+1 {{'llm.adamw' op expects beta1 in [0, 1), got -0.1}}
  %p2, %m2, %v2 = llm.adamw %p, %p, %p, %p, %lr, %step, %wd, %c
      {beta1 = -0.1 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64} : tensor<8xf32>
  return
}

// -----

func.func @adamw_beta2_one(%p: tensor<8xf32>, %lr: tensor<f32>, %step: tensor<i64>, %wd: tensor<f32>, %c: tensor<f32>) {
  // expected-error@+1 {{'llm.adamw' op expects beta2 in [0, 1), got 1}}
  %p2, %m2, %v2 = llm.adamw %p, %p, %p, %p, %lr, %step, %wd, %c
      {beta1 = 0.9 : f64, beta2 = 1.0 : f64, eps = 1.0e-08 : f64} : tensor<8xf32>
  return
}

// -----

func.func @adamw_beta2_above_one(%p: tensor<8xf32>, %lr: tensor<f32>, %step: tensor<i64>, %wd: tensor<f32>, %c: tensor<f32>) {
  // expected-error@+1 {{'llm.adamw' op expects beta2 in [0, 1), got 1.5}}
  %p2, %m2, %v2 = llm.adamw %p, %p, %p, %p, %lr, %step, %wd, %c
      {beta1 = 0.9 : f64, beta2 = 1.5 : f64, eps = 1.0e-08 : f64} : tensor<8xf32>
  return
}

// -----

func.func @adamw_eps_zero(%p: tensor<8xf32>, %lr: tensor<f32>, %step: tensor<i64>, %wd: tensor<f32>, %c: tensor<f32>) {
  // expected-error@+1 {{'llm.adamw' op expects eps > 0, got 0}}
  %p2, %m2, %v2 = llm.adamw %p, %p, %p, %p, %lr, %step, %wd, %c
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 0.0 : f64} : tensor<8xf32>
  return
}

// -----

func.func @adamw_eps_negative(%p: tensor<8xf32>, %lr: tensor<f32>, %step: tensor<i64>, %wd: tensor<f32>, %c: tensor<f32>) {
  // expected-error@+1 {{'llm.adamw' op expects eps > 0, got -1e-08}}
  %p2, %m2, %v2 = llm.adamw %p, %p, %p, %p, %lr, %step, %wd, %c
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = -1.0e-08 : f64} : tensor<8xf32>
  return
}

// -----

func.func @adamw_types(%p: tensor<8xf32>, %g: tensor<4xf32>, %lr: tensor<f32>, %step: tensor<i64>, %wd: tensor<f32>, %c: tensor<f32>) {
  // expected-error@+1 {{'llm.adamw' op failed to verify that all of {param, grad, m, v, new_param, new_m, new_v} have same type}}
  %0:3 = "llm.adamw"(%p, %g, %p, %p, %lr, %step, %wd, %c) <{beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64}>
      : (tensor<8xf32>, tensor<4xf32>, tensor<8xf32>, tensor<8xf32>, tensor<f32>, tensor<i64>, tensor<f32>, tensor<f32>)
      -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

func.func @adamw_step_type(%p: tensor<8xf32>, %lr: tensor<f32>, %step: tensor<f32>, %wd: tensor<f32>, %c: tensor<f32>) {
  // expected-error@+1 {{'llm.adamw' op operand #5 must be 0D tensor of 64-bit signless integer values}}
  %0:3 = "llm.adamw"(%p, %p, %p, %p, %lr, %step, %wd, %c) <{beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64}>
      : (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<f32>, tensor<f32>, tensor<f32>, tensor<f32>)
      -> (tensor<8xf32>, tensor<8xf32>, tensor<8xf32>)
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.rope with inverse: the forward's rules apply unchanged
//===----------------------------------------------------------------------===//

func.func @rope_inverse_odd_head_dim(%x: tensor<2x4x6xf32>) {
  // expected-error@+1 {{'llm.rope' op expects an even head_dim for rotary pairs, got 3}}
  %0 = llm.rope %x {num_heads = 2 : i64, theta = 1.0e+04 : f64, inverse} : tensor<2x4x6xf32> -> tensor<2x4x6xf32>
  return
}

// -----

func.func @all_reduce_group(%x: tensor<4xf32>) {
  // expected-error@+1 {{'llm.all_reduce' op expects group to be dp, tp or tied, got 'pp'}}
  %0 = llm.all_reduce %x {group = "pp", reduction = "sum"} : tensor<4xf32>
  return
}

// -----

func.func @all_reduce_reduction(%x: tensor<4xf32>) {
  // expected-error@+1 {{'llm.all_reduce' op expects reduction to be sum or mean, got 'max'}}
  %0 = llm.all_reduce %x {group = "dp", reduction = "max"} : tensor<4xf32>
  return
}

// -----

//===----------------------------------------------------------------------===//
// llm.batch_slice
//===----------------------------------------------------------------------===//

func.func @batch_slice_index(%t: tensor<8x4xi32>) {
  // expected-error@+1 {{'llm.batch_slice' op expects 0 <= index < count, got index 4 of 4}}
  %0 = llm.batch_slice %t {index = 4 : i64, count = 4 : i64} : tensor<8x4xi32> -> tensor<2x4xi32>
  return
}

// -----

func.func @batch_slice_count(%t: tensor<8x4xi32>) {
  // expected-error@+1 {{'llm.batch_slice' op expects count (3) to divide the leading dimension of 8x4}}
  %0 = llm.batch_slice %t {index = 0 : i64, count = 3 : i64} : tensor<8x4xi32> -> tensor<2x4xi32>
  return
}

// -----

func.func @batch_slice_result(%t: tensor<8x4xi32>) {
  // expected-error@+1 {{'llm.batch_slice' op expects result 2x4, got 4x4}}
  %0 = llm.batch_slice %t {index = 0 : i64, count = 4 : i64} : tensor<8x4xi32> -> tensor<4x4xi32>
  return
}

// -----

func.func @send_peer(%x: tensor<4xf32>) {
  // expected-error@+1 {{'llm.send' op expects peer to be 1 or -1, got 2}}
  llm.send %x {peer = 2 : i64, tag = 0 : i64} : tensor<4xf32>
  return
}

// -----

func.func @recv_tag() -> tensor<4xf32> {
  // expected-error@+1 {{'llm.recv' op expects a tag >= 0, got -1}}
  %0 = llm.recv {peer = -1 : i64, tag = -1 : i64} : tensor<4xf32>
  return %0 : tensor<4xf32>
}

// -----

func.func @phase_kind() {
  // expected-error@+1 {{'llm.phase' op expects kind to be forward, backward or recompute, got 'warmup'}}
  llm.phase {kind = "warmup", microbatch = 0 : i64, chunk = 0 : i64}
  return
}

// -----

func.func @phase_microbatch() {
  // expected-error@+1 {{'llm.phase' op expects microbatch and chunk >= 0}}
  llm.phase {kind = "forward", microbatch = -1 : i64, chunk = 0 : i64}
  return
}
