// RUN: llm-opt %s --llm-autodiff --llm-optimizer | FileCheck %s
// RUN: llm-opt %s --llm-autodiff --llm-optimizer="beta1=0.8 beta2=0.99 eps=1e-6" | FileCheck %s --check-prefix=OPTS

// Five parameters, two of them matrices: wte [16, 8] (tied with the LM
// head), ln.weight [8], ln.bias [8], fc.weight [8, 8], fc.bias [8].
// Arguments after llm-optimizer (N = 5):
//   0..4 params, 5..9 exp_avg {llm.adam_m}, 10..14 exp_avg_sq {llm.adam_v},
//   15 tokens, 16 targets, 17 lr, 18 step, 19 weight_decay, 20 grad_clip.
// Results: loss, grad_norm, then new params (llm.update = 0..4), new m
// (5..9), new v (10..14).

// The model function is not touched.
// CHECK-LABEL: func.func @forward(
// CHECK-NOT: llm.adam
// CHECK-NOT: llm.update
// CHECK: return

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[P0:[a-z0-9]+]]: tensor<16x8xf32> {llm.init = "normal", llm.init_std = 2.000000e-02 : f64, llm.param = "wte.weight"},
// CHECK-SAME: %[[P1:[a-z0-9]+]]: tensor<8xf32> {llm.init = "ones", llm.param = "ln.weight"},
// CHECK-SAME: %[[P2:[a-z0-9]+]]: tensor<8xf32> {llm.param = "ln.bias"},
// CHECK-SAME: %[[P3:[a-z0-9]+]]: tensor<8x8xf32> {llm.param = "fc.weight"},
// CHECK-SAME: %[[P4:[a-z0-9]+]]: tensor<8xf32> {llm.param = "fc.bias"},
// The moments carry only their key (no init attributes).
// CHECK-SAME: %[[M0:[a-z0-9]+]]: tensor<16x8xf32> {llm.adam_m = "wte.weight"},
// CHECK-SAME: %[[M1:[a-z0-9]+]]: tensor<8xf32> {llm.adam_m = "ln.weight"},
// CHECK-SAME: %[[M2:[a-z0-9]+]]: tensor<8xf32> {llm.adam_m = "ln.bias"},
// CHECK-SAME: %[[M3:[a-z0-9]+]]: tensor<8x8xf32> {llm.adam_m = "fc.weight"},
// CHECK-SAME: %[[M4:[a-z0-9]+]]: tensor<8xf32> {llm.adam_m = "fc.bias"},
// CHECK-SAME: %[[V0:[a-z0-9]+]]: tensor<16x8xf32> {llm.adam_v = "wte.weight"},
// CHECK-SAME: %[[V1:[a-z0-9]+]]: tensor<8xf32> {llm.adam_v = "ln.weight"},
// CHECK-SAME: %[[V2:[a-z0-9]+]]: tensor<8xf32> {llm.adam_v = "ln.bias"},
// CHECK-SAME: %[[V3:[a-z0-9]+]]: tensor<8x8xf32> {llm.adam_v = "fc.weight"},
// CHECK-SAME: %[[V4:[a-z0-9]+]]: tensor<8xf32> {llm.adam_v = "fc.bias"},
// CHECK-SAME: %[[IDS:[a-z0-9]+]]: tensor<2x4xi32> {llm.input = "tokens"},
// CHECK-SAME: %[[TGT:[a-z0-9]+]]: tensor<2x4xi32> {llm.input = "targets"},
// CHECK-SAME: %[[LR:[a-z0-9]+]]: tensor<f32> {llm.input = "lr"},
// CHECK-SAME: %[[STEP:[a-z0-9]+]]: tensor<i64> {llm.input = "step"},
// CHECK-SAME: %[[WD:[a-z0-9]+]]: tensor<f32> {llm.input = "weight_decay"},
// CHECK-SAME: %[[CLIP:[a-z0-9]+]]: tensor<f32> {llm.input = "grad_clip"})
// CHECK-SAME: -> (tensor<f32> {llm.result = "loss"}, tensor<f32> {llm.result = "grad_norm"},
// CHECK-SAME: tensor<16x8xf32> {llm.update = 0 : i64}, tensor<8xf32> {llm.update = 1 : i64}, tensor<8xf32> {llm.update = 2 : i64}, tensor<8x8xf32> {llm.update = 3 : i64}, tensor<8xf32> {llm.update = 4 : i64},
// CHECK-SAME: tensor<16x8xf32> {llm.update = 5 : i64}, tensor<8xf32> {llm.update = 6 : i64}, tensor<8xf32> {llm.update = 7 : i64}, tensor<8x8xf32> {llm.update = 8 : i64}, tensor<8xf32> {llm.update = 9 : i64},
// CHECK-SAME: tensor<16x8xf32> {llm.update = 10 : i64}, tensor<8xf32> {llm.update = 11 : i64}, tensor<8xf32> {llm.update = 12 : i64}, tensor<8x8xf32> {llm.update = 13 : i64}, tensor<8xf32> {llm.update = 14 : i64})
// CHECK-SAME: attributes {llm.train_step}
// CHECK: llm.embedding %[[IDS]], %[[P0]]
// CHECK: %[[LOSS:.*]] = llm.cross_entropy %{{.*}}, %[[TGT]]
// Gradients, as llm-autodiff made them.
// CHECK: %[[G3:.*]] = llm.linear_weight_grad %{{.*}}, %{{.*}} : tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<8x8xf32>
// CHECK-NEXT: %[[G4:.*]] = llm.sum_leading
// CHECK-NEXT: %{{.*}}, %[[G1:[a-z0-9_]+]], %[[G2:[a-z0-9_]+]] = llm.layer_norm_grad
// CHECK-NEXT: llm.embedding_grad
// CHECK-NEXT: %[[G0:.*]] = llm.add
// The norm of all gradients in parameter order, then the clipping coefficient.
// CHECK-NEXT: %[[NORM:.*]] = llm.global_norm %[[G0]], %[[G1]], %[[G2]], %[[G3]], %[[G4]] : tensor<16x8xf32>, tensor<8xf32>, tensor<8xf32>, tensor<8x8xf32>, tensor<8xf32>
// CHECK-NEXT: %[[SCALE:.*]] = llm.clip_scale %[[NORM]], %[[CLIP]]
// One AdamW per parameter, with the defaults beta1 0.9, beta2 0.95, eps 1e-8;
// decay on the rank-2 tensors only.
// CHECK-NEXT: %[[NP0:[a-z0-9_]+]], %[[NM0:[a-z0-9_]+]], %[[NV0:[a-z0-9_]+]] = llm.adamw %[[P0]], %[[G0]], %[[M0]], %[[V0]], %[[LR]], %[[STEP]], %[[WD]], %[[SCALE]] {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, decay, eps = 1.000000e-08 : f64} : tensor<16x8xf32>
// CHECK-NEXT: %[[NP1:[a-z0-9_]+]], %[[NM1:[a-z0-9_]+]], %[[NV1:[a-z0-9_]+]] = llm.adamw %[[P1]], %[[G1]], %[[M1]], %[[V1]], %[[LR]], %[[STEP]], %[[WD]], %[[SCALE]] {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64} : tensor<8xf32>
// CHECK-NEXT: %[[NP2:[a-z0-9_]+]], %[[NM2:[a-z0-9_]+]], %[[NV2:[a-z0-9_]+]] = llm.adamw %[[P2]], %[[G2]], %[[M2]], %[[V2]], %[[LR]], %[[STEP]], %[[WD]], %[[SCALE]] {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64} : tensor<8xf32>
// CHECK-NEXT: %[[NP3:[a-z0-9_]+]], %[[NM3:[a-z0-9_]+]], %[[NV3:[a-z0-9_]+]] = llm.adamw %[[P3]], %[[G3]], %[[M3]], %[[V3]], %[[LR]], %[[STEP]], %[[WD]], %[[SCALE]] {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, decay, eps = 1.000000e-08 : f64} : tensor<8x8xf32>
// CHECK-NEXT: %[[NP4:[a-z0-9_]+]], %[[NM4:[a-z0-9_]+]], %[[NV4:[a-z0-9_]+]] = llm.adamw %[[P4]], %[[G4]], %[[M4]], %[[V4]], %[[LR]], %[[STEP]], %[[WD]], %[[SCALE]] {beta1 = 9.000000e-01 : f64, beta2 = 0.94999999999999996 : f64, eps = 1.000000e-08 : f64} : tensor<8xf32>
// CHECK-NEXT: return %[[LOSS]], %[[NORM]], %[[NP0]], %[[NP1]], %[[NP2]], %[[NP3]], %[[NP4]], %[[NM0]], %[[NM1]], %[[NM2]], %[[NM3]], %[[NM4]], %[[NV0]], %[[NV1]], %[[NV2]], %[[NV3]], %[[NV4]] :

// Options reach every llm.adamw: 0.99 and 1e-6 print as the nearest doubles.
// OPTS-LABEL: func.func @train_step(
// OPTS: llm.adamw {{.*}} {beta1 = 8.000000e-01 : f64, beta2 = 0.98999999999999999 : f64, decay, eps = 9.9999999999999995E-7 : f64} : tensor<16x8xf32>
// OPTS-NEXT: llm.adamw {{.*}} {beta1 = 8.000000e-01 : f64, beta2 = 0.98999999999999999 : f64, eps = 9.9999999999999995E-7 : f64} : tensor<8xf32>
// OPTS-NEXT: llm.adamw {{.*}} {beta1 = 8.000000e-01 : f64, beta2 = 0.98999999999999999 : f64, eps = 9.9999999999999995E-7 : f64} : tensor<8xf32>
// OPTS-NEXT: llm.adamw {{.*}} {beta1 = 8.000000e-01 : f64, beta2 = 0.98999999999999999 : f64, decay, eps = 9.9999999999999995E-7 : f64} : tensor<8x8xf32>
// OPTS-NEXT: llm.adamw {{.*}} {beta1 = 8.000000e-01 : f64, beta2 = 0.98999999999999999 : f64, eps = 9.9999999999999995E-7 : f64} : tensor<8xf32>
// OPTS-NEXT: return
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte.weight", llm.init = "normal", llm.init_std = 0.02 : f64},
                   %lnw: tensor<8xf32> {llm.param = "ln.weight", llm.init = "ones"},
                   %lnb: tensor<8xf32> {llm.param = "ln.bias"},
                   %wfc: tensor<8x8xf32> {llm.param = "fc.weight"},
                   %bfc: tensor<8xf32> {llm.param = "fc.bias"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %x = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  %n = llm.layer_norm %x, %lnw, %lnb {epsilon = 1.0e-05 : f64} : tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32> -> tensor<2x4x8xf32>
  %h = llm.linear %n, %wfc bias %bfc : tensor<2x4x8xf32>, tensor<8x8xf32>, tensor<8xf32> -> tensor<2x4x8xf32>
  %g = llm.gelu %h : tensor<2x4x8xf32>
  %l = llm.linear %g, %wte {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
