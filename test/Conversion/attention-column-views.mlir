// RUN: llm-opt %s --llm-autodiff --llm-optimizer --llm-lower-to-rt -split-input-file | FileCheck %s

// The block of lower-to-rt.mlir (B=2 s=4 h=8, 2 heads of D=4; q, k, v
// split from one [2, 4, 24] projection) with attention's column views, the
// default: no column copies. attention_fwd reads q, k, v in place from the
// projection's output, rows of 24 columns, at columns 0, 8 and 16: six more
// ints {ld, first column} per tensor. attention_bwd writes dq, dk, dv in
// place into the qkv gradient's columns: twelve more ints, and the
// gradient's storage is live from attention_bwd on.

// CHECK-LABEL: func.func @train() {
// CHECK: %[[QKV:.*]] = llmrt.buffer "" {offset = [[QKV_OFF:[0-9]+]] : i64, role = "temp"} : memref<2x4x24xf32>
// CHECK-NEXT: llmrt.kernel "linear_fwd"(%{{.*}}, %{{.*}}, %{{.*}}, %[[QKV]]) {floats = array<f64>, ints = array<i64: 8, 8, 24, 0>}
// CHECK-NOT: copy_columns
// CHECK: %[[A:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<2x4x8xf32>
// CHECK-NEXT: llmrt.kernel "attention_fwd"(%[[QKV]], %[[QKV]], %[[QKV]], %[[A]]) {floats = array<f64: 5.000000e-01>, ints = array<i64: 2, 4, 2, 2, 4, 1, 24, 0, 24, 8, 24, 16>}
// CHECK-NOT: copy_columns
// CHECK: %[[DQKV:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<2x4x24xf32>
// CHECK-NEXT: llmrt.kernel "attention_bwd"(%[[QKV]], %[[QKV]], %[[QKV]], %{{.*}}, %[[DQKV]], %[[DQKV]], %[[DQKV]]) {floats = array<f64: 5.000000e-01>, ints = array<i64: 2, 4, 2, 2, 4, 1, 24, 0, 24, 8, 24, 16, 24, 0, 24, 8, 24, 16>}
// CHECK-NEXT: %[[DN:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "linear_fwd"(%[[DQKV]], %{{.*}}, %[[DN]]) {floats = array<f64>, ints = array<i64: 8, 24, 8, 1>}
// CHECK-NEXT: %[[DW:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "linear_bwd_weight"(%{{.*}}, %[[DQKV]], %[[DW]])
// CHECK-NOT: copy_columns
// CHECK-LABEL: func.func @eval() {
// CHECK: %[[EQKV:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<2x4x24xf32>
// CHECK-NEXT: llmrt.kernel "linear_fwd"(%{{.*}}, %{{.*}}, %{{.*}}, %[[EQKV]])
// CHECK-NEXT: %[[EA:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "attention_fwd"(%[[EQKV]], %[[EQKV]], %[[EQKV]], %[[EA]]) {floats = array<f64: 5.000000e-01>, ints = array<i64: 2, 4, 2, 2, 4, 1, 24, 0, 24, 8, 24, 16>}
// CHECK-NOT: copy_columns

module attributes {llm.config = {model_type = "test", hidden_size = 8 : i64}} {
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte.weight", llm.init = "normal", llm.init_std = 0.02 : f64},
                   %wpe: tensor<8x8xf32> {llm.param = "wpe.weight", llm.init = "normal", llm.init_std = 0.01 : f64},
                   %lnw: tensor<8xf32> {llm.param = "ln.weight", llm.init = "ones"},
                   %lnb: tensor<8xf32> {llm.param = "ln.bias", llm.init = "zeros"},
                   %wqkv: tensor<8x24xf32> {llm.param = "qkv.weight", llm.init = "normal", llm.init_std = 0.02 : f64},
                   %bqkv: tensor<24xf32> {llm.param = "qkv.bias", llm.init = "zeros"},
                   %wo: tensor<8x8xf32> {llm.param = "proj.weight"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %e = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  %p = llm.position_embedding %wpe : tensor<8x8xf32> -> tensor<4x8xf32>
  %x = llm.add %e, %p : tensor<2x4x8xf32>, tensor<4x8xf32>
  %n = llm.layer_norm %x, %lnw, %lnb {epsilon = 1.0e-05 : f64} : tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32> -> tensor<2x4x8xf32>
  %qkv = llm.linear %n, %wqkv bias %bqkv : tensor<2x4x8xf32>, tensor<8x24xf32>, tensor<24xf32> -> tensor<2x4x24xf32>
  %q, %k, %v = llm.split %qkv {axis = 2 : i64} : tensor<2x4x24xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  %a = llm.attention %q, %k, %v {num_heads = 2 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %o = llm.linear %a, %wo : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
  %r = llm.add %x, %o : tensor<2x4x8xf32>, tensor<2x4x8xf32>
  %g = llm.gelu %r : tensor<2x4x8xf32>
  %l = llm.linear %g, %wte {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
}

// -----

// q has another reader (a GELU): the split is copied out whole (views of k
// and v alone would keep all 24 columns alive beside q's copy), and the
// attention takes the dense form (6 ints). The gradient's concat takes the
// GELU's gradient, not only the attention's: copies too.
// CHECK-LABEL: func.func @train() {
// CHECK-COUNT-3: llmrt.kernel "copy_columns"
// CHECK: llmrt.kernel "attention_fwd"({{.*}}) {floats = array<f64: 5.000000e-01>, ints = array<i64: 2, 4, 2, 2, 4, 1>}
// CHECK: llmrt.kernel "attention_bwd"({{.*}}) {floats = array<f64: 5.000000e-01>, ints = array<i64: 2, 4, 2, 2, 4, 1>}
// CHECK-COUNT-3: llmrt.kernel "copy_columns"
// CHECK-LABEL: func.func @eval() {

module attributes {llm.config = {model_type = "test", hidden_size = 8 : i64}} {
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte.weight", llm.init = "normal", llm.init_std = 0.02 : f64},
                   %wpe: tensor<8x8xf32> {llm.param = "wpe.weight", llm.init = "normal", llm.init_std = 0.01 : f64},
                   %lnw: tensor<8xf32> {llm.param = "ln.weight", llm.init = "ones"},
                   %lnb: tensor<8xf32> {llm.param = "ln.bias", llm.init = "zeros"},
                   %wqkv: tensor<8x24xf32> {llm.param = "qkv.weight", llm.init = "normal", llm.init_std = 0.02 : f64},
                   %bqkv: tensor<24xf32> {llm.param = "qkv.bias", llm.init = "zeros"},
                   %wo: tensor<8x8xf32> {llm.param = "proj.weight"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %e = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  %p = llm.position_embedding %wpe : tensor<8x8xf32> -> tensor<4x8xf32>
  %x = llm.add %e, %p : tensor<2x4x8xf32>, tensor<4x8xf32>
  %n = llm.layer_norm %x, %lnw, %lnb {epsilon = 1.0e-05 : f64} : tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32> -> tensor<2x4x8xf32>
  %qkv = llm.linear %n, %wqkv bias %bqkv : tensor<2x4x8xf32>, tensor<8x24xf32>, tensor<24xf32> -> tensor<2x4x24xf32>
  %q, %k, %v = llm.split %qkv {axis = 2 : i64} : tensor<2x4x24xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  %qg = llm.gelu %q : tensor<2x4x8xf32>
  %a = llm.attention %qg, %k, %v {num_heads = 2 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %o = llm.linear %a, %wo : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
  %r = llm.add %x, %o : tensor<2x4x8xf32>, tensor<2x4x8xf32>
  %g = llm.gelu %r : tensor<2x4x8xf32>
  %l = llm.linear %g, %wte {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
}
