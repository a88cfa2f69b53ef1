// RUN: llm-opt %s | llm-opt | FileCheck %s
// RUN: llm-opt %s --mlir-print-op-generic | llm-opt | FileCheck %s
// Round trip of every backward and optimizer op (dialects/llm/LLMGradOps.td)
// and of llm.rope with `inverse`, in custom and generic form.

// CHECK-LABEL: func.func @embedding_grad(
// CHECK-SAME: %[[IDS:.*]]: tensor<2x4xi32>, %[[DX:.*]]: tensor<2x4x8xf32>)
// CHECK: %[[R:.*]] = llm.embedding_grad %[[IDS]], %[[DX]] : tensor<2x4xi32>, tensor<2x4x8xf32> -> tensor<16x8xf32>
// CHECK: return %[[R]]
func.func @embedding_grad(%ids: tensor<2x4xi32>, %dx: tensor<2x4x8xf32>) -> tensor<16x8xf32> {
  %0 = llm.embedding_grad %ids, %dx : tensor<2x4xi32>, tensor<2x4x8xf32> -> tensor<16x8xf32>
  return %0 : tensor<16x8xf32>
}

// CHECK-LABEL: func.func @embedding_grad_i64(
// CHECK: llm.embedding_grad %{{.*}}, %{{.*}} : tensor<3xi64>, tensor<3x8xbf16> -> tensor<16x8xbf16>
func.func @embedding_grad_i64(%ids: tensor<3xi64>, %dx: tensor<3x8xbf16>) -> tensor<16x8xbf16> {
  %0 = llm.embedding_grad %ids, %dx : tensor<3xi64>, tensor<3x8xbf16> -> tensor<16x8xbf16>
  return %0 : tensor<16x8xbf16>
}

// CHECK-LABEL: func.func @position_embedding_grad(
// CHECK-SAME: %[[DP:.*]]: tensor<4x8xf32>)
// CHECK: llm.position_embedding_grad %[[DP]] : tensor<4x8xf32> -> tensor<32x8xf32>
func.func @position_embedding_grad(%dp: tensor<4x8xf32>) -> tensor<32x8xf32> {
  %0 = llm.position_embedding_grad %dp : tensor<4x8xf32> -> tensor<32x8xf32>
  return %0 : tensor<32x8xf32>
}

// CHECK-LABEL: func.func @layer_norm_grad(
// CHECK-SAME: %[[X:.*]]: tensor<2x4x8xf32>, %[[W:.*]]: tensor<8xf32>, %[[DY:.*]]: tensor<2x4x8xf32>)
// CHECK: %[[DX:[a-z0-9_]+]], %[[DW:[a-z0-9_]+]], %[[DB:[a-z0-9_]+]] = llm.layer_norm_grad %[[X]], %[[W]], %[[DY]] {epsilon = 1.000000e-05 : f64} : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>
// CHECK: return %[[DX]], %[[DW]], %[[DB]]
func.func @layer_norm_grad(%x: tensor<2x4x8xf32>, %w: tensor<8xf32>, %dy: tensor<2x4x8xf32>)
    -> (tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>) {
  %dx, %dw, %db = llm.layer_norm_grad %x, %w, %dy {epsilon = 1.0e-05 : f64}
      : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>
  return %dx, %dw, %db : tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>
}

// CHECK-LABEL: func.func @rms_norm_grad(
// CHECK-SAME: %[[X:.*]]: tensor<1x4x8xf16>, %[[W:.*]]: tensor<8xf16>, %[[DY:.*]]: tensor<1x4x8xf16>)
// CHECK: %[[DX:[a-z0-9_]+]], %[[DW:[a-z0-9_]+]] = llm.rms_norm_grad %[[X]], %[[W]], %[[DY]] {epsilon = 9.9999999999999995E-7 : f64} : tensor<1x4x8xf16>, tensor<8xf16>, tensor<1x4x8xf16> -> tensor<1x4x8xf16>, tensor<8xf16>
// CHECK: return %[[DX]], %[[DW]]
func.func @rms_norm_grad(%x: tensor<1x4x8xf16>, %w: tensor<8xf16>, %dy: tensor<1x4x8xf16>)
    -> (tensor<1x4x8xf16>, tensor<8xf16>) {
  %dx, %dw = llm.rms_norm_grad %x, %w, %dy {epsilon = 1.0e-06 : f64}
      : tensor<1x4x8xf16>, tensor<8xf16>, tensor<1x4x8xf16> -> tensor<1x4x8xf16>, tensor<8xf16>
  return %dx, %dw : tensor<1x4x8xf16>, tensor<8xf16>
}

// CHECK-LABEL: func.func @linear_weight_grad(
// CHECK-SAME: %[[X:.*]]: tensor<2x4x8xf32>, %[[DY:.*]]: tensor<2x4x24xf32>)
// CHECK: %[[A:.*]] = llm.linear_weight_grad %[[X]], %[[DY]] : tensor<2x4x8xf32>, tensor<2x4x24xf32> -> tensor<8x24xf32>
// CHECK: %[[B:.*]] = llm.linear_weight_grad %[[X]], %[[DY]] {transpose_weight} : tensor<2x4x8xf32>, tensor<2x4x24xf32> -> tensor<24x8xf32>
// CHECK: return %[[A]], %[[B]]
func.func @linear_weight_grad(%x: tensor<2x4x8xf32>, %dy: tensor<2x4x24xf32>)
    -> (tensor<8x24xf32>, tensor<24x8xf32>) {
  %0 = llm.linear_weight_grad %x, %dy : tensor<2x4x8xf32>, tensor<2x4x24xf32> -> tensor<8x24xf32>
  %1 = llm.linear_weight_grad %x, %dy {transpose_weight} : tensor<2x4x8xf32>, tensor<2x4x24xf32> -> tensor<24x8xf32>
  return %0, %1 : tensor<8x24xf32>, tensor<24x8xf32>
}

// CHECK-LABEL: func.func @sum_leading(
// CHECK-SAME: %[[DY:.*]]: tensor<2x4x8xf32>)
// CHECK: %[[A:.*]] = llm.sum_leading %[[DY]] : tensor<2x4x8xf32> -> tensor<8xf32>
// CHECK: %[[B:.*]] = llm.sum_leading %[[DY]] : tensor<2x4x8xf32> -> tensor<4x8xf32>
// CHECK: %[[C:.*]] = llm.sum_leading %[[DY]] : tensor<2x4x8xf32> -> tensor<f32>
// CHECK: return %[[A]], %[[B]], %[[C]]
func.func @sum_leading(%dy: tensor<2x4x8xf32>) -> (tensor<8xf32>, tensor<4x8xf32>, tensor<f32>) {
  %0 = llm.sum_leading %dy : tensor<2x4x8xf32> -> tensor<8xf32>
  %1 = llm.sum_leading %dy : tensor<2x4x8xf32> -> tensor<4x8xf32>
  %2 = llm.sum_leading %dy : tensor<2x4x8xf32> -> tensor<f32>
  return %0, %1, %2 : tensor<8xf32>, tensor<4x8xf32>, tensor<f32>
}

// CHECK-LABEL: func.func @concat(
// CHECK-SAME: %[[Q:.*]]: tensor<2x4x8xf32>, %[[K:.*]]: tensor<2x4x4xf32>, %[[V:.*]]: tensor<2x4x4xf32>)
// CHECK: %[[R:.*]] = llm.concat %[[Q]], %[[K]], %[[V]] {axis = 2 : i64} : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32> -> tensor<2x4x16xf32>
// CHECK: %[[S:.*]] = llm.concat %[[Q]], %[[Q]] {axis = 0 : i64} : tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<4x4x8xf32>
func.func @concat(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>, %v: tensor<2x4x4xf32>)
    -> (tensor<2x4x16xf32>, tensor<4x4x8xf32>) {
  %0 = llm.concat %q, %k, %v {axis = 2 : i64}
      : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32> -> tensor<2x4x16xf32>
  %1 = llm.concat %q, %q {axis = 0 : i64} : tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<4x4x8xf32>
  return %0, %1 : tensor<2x4x16xf32>, tensor<4x4x8xf32>
}

// CHECK-LABEL: func.func @attention_grad(
// CHECK-SAME: %[[Q:.*]]: tensor<2x4x8xf32>, %[[K:.*]]: tensor<2x4x4xf32>, %[[V:.*]]: tensor<2x4x4xf32>, %[[DO:.*]]: tensor<2x4x8xf32>)
// CHECK: %[[DQ:[a-z0-9_]+]], %[[DK:[a-z0-9_]+]], %[[DV:[a-z0-9_]+]] = llm.attention_grad %[[Q]], %[[K]], %[[V]], %[[DO]] {causal, num_heads = 4 : i64, num_kv_heads = 2 : i64} : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>
// CHECK: %[[DQ2:[a-z0-9_]+]], %{{.*}} = llm.attention_grad %[[Q]], %[[K]], %[[V]], %[[DO]] {num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f64}
// CHECK: return %[[DQ]], %[[DK]], %[[DV]], %[[DQ2]]
func.func @attention_grad(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>, %v: tensor<2x4x4xf32>, %do: tensor<2x4x8xf32>)
    -> (tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32>) {
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 2 : i64, causal}
      : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32>
      -> tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>
  %dq2, %dk2, %dv2 = llm.attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 0.125 : f64}
      : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32>
      -> tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>
  return %dq, %dk, %dv, %dq2 : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32>
}

// CHECK-LABEL: func.func @activation_grads(
// CHECK-SAME: %[[X:.*]]: tensor<2x4x32xf32>, %[[DY:.*]]: tensor<2x4x32xf32>)
// CHECK: %[[G:.*]] = llm.gelu_grad %[[X]], %[[DY]] : tensor<2x4x32xf32>
// CHECK: %[[S:.*]] = llm.silu_grad %[[X]], %[[DY]] : tensor<2x4x32xf32>
// CHECK: return %[[G]], %[[S]]
func.func @activation_grads(%x: tensor<2x4x32xf32>, %dy: tensor<2x4x32xf32>)
    -> (tensor<2x4x32xf32>, tensor<2x4x32xf32>) {
  %0 = llm.gelu_grad %x, %dy : tensor<2x4x32xf32>
  %1 = llm.silu_grad %x, %dy : tensor<2x4x32xf32>
  return %0, %1 : tensor<2x4x32xf32>, tensor<2x4x32xf32>
}

// CHECK-LABEL: func.func @cross_entropy_grad(
// CHECK-SAME: %[[L:.*]]: tensor<2x4x16xf32>, %[[T:.*]]: tensor<2x4xi32>)
// CHECK: %[[R:.*]] = llm.cross_entropy_grad %[[L]], %[[T]] : tensor<2x4x16xf32>, tensor<2x4xi32>
// CHECK: return %[[R]] : tensor<2x4x16xf32>
func.func @cross_entropy_grad(%l: tensor<2x4x16xf32>, %t: tensor<2x4xi32>) -> tensor<2x4x16xf32> {
  %0 = llm.cross_entropy_grad %l, %t : tensor<2x4x16xf32>, tensor<2x4xi32>
  return %0 : tensor<2x4x16xf32>
}

// CHECK-LABEL: func.func @optimizer(
// CHECK-SAME: %[[P:.*]]: tensor<8x24xf32>, %[[G:.*]]: tensor<8x24xf32>, %[[M:.*]]: tensor<8x24xf32>, %[[V:.*]]: tensor<8x24xf32>, %[[B:.*]]: tensor<24xf32>, %[[LR:.*]]: tensor<f32>, %[[STEP:.*]]: tensor<i64>, %[[WD:.*]]: tensor<f32>, %[[CLIP:.*]]: tensor<f32>)
// CHECK: %[[N:.*]] = llm.global_norm %[[G]], %[[B]] : tensor<8x24xf32>, tensor<24xf32>
// CHECK: %[[C:.*]] = llm.clip_scale %[[N]], %[[CLIP]]{{$}}
// CHECK: %[[P2:[a-z0-9_]+]], %[[M2:[a-z0-9_]+]], %[[V2:[a-z0-9_]+]] = llm.adamw %[[P]], %[[G]], %[[M]], %[[V]], %[[LR]], %[[STEP]], %[[WD]], %[[C]] {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, decay, eps = 1.000000e-08 : f64} : tensor<8x24xf32>
// CHECK: %[[B2:[a-z0-9_]+]], %{{.*}} = llm.adamw %[[B]], %[[B]], %[[B]], %[[B]], %[[LR]], %[[STEP]], %[[WD]], %[[C]] {beta1 = 0.000000e+00 : f64, beta2 = 0.000000e+00 : f64, eps = 1.000000e+00 : f64} : tensor<24xf32>
// CHECK: return %[[N]], %[[P2]], %[[M2]], %[[V2]], %[[B2]]
func.func @optimizer(%p: tensor<8x24xf32>, %g: tensor<8x24xf32>, %m: tensor<8x24xf32>, %v: tensor<8x24xf32>,
                     %b: tensor<24xf32>, %lr: tensor<f32>, %step: tensor<i64>, %wd: tensor<f32>, %clip: tensor<f32>)
    -> (tensor<f32>, tensor<8x24xf32>, tensor<8x24xf32>, tensor<8x24xf32>, tensor<24xf32>) {
  %n = llm.global_norm %g, %b : tensor<8x24xf32>, tensor<24xf32>
  %c = llm.clip_scale %n, %clip
  %p2, %m2, %v2 = llm.adamw %p, %g, %m, %v, %lr, %step, %wd, %c
      {beta1 = 0.9 : f64, beta2 = 0.95 : f64, eps = 1.0e-08 : f64, decay} : tensor<8x24xf32>
  %b2, %bm, %bv = llm.adamw %b, %b, %b, %b, %lr, %step, %wd, %c
      {beta1 = 0.0 : f64, beta2 = 0.0 : f64, eps = 1.0 : f64} : tensor<24xf32>
  return %n, %p2, %m2, %v2, %b2 : tensor<f32>, tensor<8x24xf32>, tensor<8x24xf32>, tensor<8x24xf32>, tensor<24xf32>
}

// CHECK-LABEL: func.func @rope(
// CHECK-SAME: %[[X:.*]]: tensor<2x4x8xf32>)
// CHECK: %[[F:.*]] = llm.rope %[[X]] {num_heads = 2 : i64, theta = 1.000000e+04 : f64} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
// CHECK: %[[I:.*]] = llm.rope %[[F]] {inverse, num_heads = 2 : i64, theta = 1.000000e+04 : f64} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
// CHECK: return %[[I]]
func.func @rope(%x: tensor<2x4x8xf32>) -> tensor<2x4x8xf32> {
  %0 = llm.rope %x {num_heads = 2 : i64, theta = 1.0e+04 : f64} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %1 = llm.rope %0 {num_heads = 2 : i64, theta = 1.0e+04 : f64, inverse} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  return %1 : tensor<2x4x8xf32>
}

// CHECK-LABEL: func.func @microbatch_ops
// CHECK: llm.batch_slice %{{.*}} {count = 4 : i64, index = 1 : i64} : tensor<8x4xi32> -> tensor<2x4xi32>
// CHECK: llm.scale %{{.*}} {factor = 2.500000e-01 : f64} : tensor<4x4xf32>
func.func @microbatch_ops(%t: tensor<8x4xi32>, %g: tensor<4x4xf32>) -> (tensor<2x4xi32>, tensor<4x4xf32>) {
  %0 = llm.batch_slice %t {index = 1 : i64, count = 4 : i64} : tensor<8x4xi32> -> tensor<2x4xi32>
  %1 = llm.scale %g {factor = 0.25 : f64} : tensor<4x4xf32>
  return %0, %1 : tensor<2x4xi32>, tensor<4x4xf32>
}

// CHECK-LABEL: func.func @pipeline_ops
// CHECK: %[[H:.*]] = llm.recv {peer = -1 : i64, tag = 0 : i64} : tensor<2x8xf32>
// CHECK: llm.send %[[H]] {peer = 1 : i64, tag = 2 : i64} : tensor<2x8xf32>
// CHECK: llm.phase {chunk = 1 : i64, kind = "recompute", microbatch = 3 : i64}
func.func @pipeline_ops() {
  %0 = llm.recv {peer = -1 : i64, tag = 0 : i64} : tensor<2x8xf32>
  llm.send %0 {peer = 1 : i64, tag = 2 : i64} : tensor<2x8xf32>
  llm.phase {kind = "recompute", microbatch = 3 : i64, chunk = 1 : i64}
  return
}
