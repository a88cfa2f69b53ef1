// RUN: llm-opt %s --llm-partition -split-input-file | FileCheck %s
// RUN: llm-opt %s --llm-partition --llm-autodiff --llm-optimizer -split-input-file | FileCheck %s --check-prefix=STEP

// Data parallelism over 2 ranks: every batch-carrying tensor keeps 4 / 2 = 2
// sequences; the loss is this rank's mean, averaged over the dp group.
module attributes {llm.plan = #llm.plan<world = 2, dp = 2, tp = 1, sp = 0, pp = 1, vpp = 1, zero = 0, remat = "none", mbs = 2, microbatches = 1, schedule = "1f1b", stages = [0, 1], step_time_s = 1.0 : f64, memory_bytes_per_device = 1024>} {
// CHECK-LABEL: func.func @forward
// CHECK-SAME: tensor<2x8xi32> {llm.input = "tokens"}
// CHECK-SAME: tensor<2x8xi32> {llm.input = "targets"}
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte.weight"},
                   %wpe: tensor<8x8xf32> {llm.param = "wpe.weight"},
                   %w: tensor<8x8xf32> {llm.param = "w.weight"},
                   %ids: tensor<4x8xi32> {llm.input = "tokens"},
                   %tgt: tensor<4x8xi32> {llm.input = "targets"}) -> tensor<f32> {
  // CHECK: llm.embedding %{{.*}}, %{{.*}} : tensor<2x8xi32>, tensor<16x8xf32> -> tensor<2x8x8xf32>
  %x = llm.embedding %ids, %wte : tensor<4x8xi32>, tensor<16x8xf32> -> tensor<4x8x8xf32>
  // The position table is not batch-carrying.
  // CHECK: llm.position_embedding %{{.*}} : tensor<8x8xf32> -> tensor<8x8xf32>
  %p = llm.position_embedding %wpe : tensor<8x8xf32> -> tensor<8x8xf32>
  // CHECK: llm.add %{{.*}}, %{{.*}} : tensor<2x8x8xf32>, tensor<8x8xf32>
  %h = llm.add %x, %p : tensor<4x8x8xf32>, tensor<8x8xf32>
  // CHECK: llm.linear %{{.*}}, %{{.*}} : tensor<2x8x8xf32>, tensor<8x8xf32> -> tensor<2x8x8xf32>
  %y = llm.linear %h, %w : tensor<4x8x8xf32>, tensor<8x8xf32> -> tensor<4x8x8xf32>
  %l = llm.linear %y, %wte {transpose_weight} : tensor<4x8x8xf32>, tensor<16x8xf32> -> tensor<4x8x16xf32>
  // CHECK: %[[CE:.*]] = llm.cross_entropy %{{.*}}, %{{.*}} : tensor<2x8x16xf32>, tensor<2x8xi32> -> tensor<f32>
  // CHECK: %[[MEAN:.*]] = llm.all_reduce %[[CE]] {group = "dp", reduction = "mean"} : tensor<f32>
  // CHECK: return %[[MEAN]]
  %loss = llm.cross_entropy %l, %tgt : tensor<4x8x16xf32>, tensor<4x8xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
}

// The training step differentiates this rank's loss (seeded at the
// cross-entropy, not through the all-reduce) and averages every gradient
// over dp as soon as it is final (the last layer's first), before clipping
// and AdamW.
// STEP-LABEL: func.func @train_step
// STEP: %[[CE:.*]] = llm.cross_entropy
// STEP: %[[LOSS:.*]] = llm.all_reduce %[[CE]] {group = "dp", reduction = "mean"} : tensor<f32>
// STEP: llm.cross_entropy_grad
// STEP: %[[G2:.*]] = llm.all_reduce %{{.*}} {group = "dp", reduction = "mean"} : tensor<8x8xf32>
// STEP: %[[G1:.*]] = llm.all_reduce %{{.*}} {group = "dp", reduction = "mean"} : tensor<8x8xf32>
// STEP: %[[G0:.*]] = llm.all_reduce %{{.*}} {group = "dp", reduction = "mean"} : tensor<16x8xf32>
// STEP: llm.global_norm %[[G0]], %[[G1]], %[[G2]] : tensor<16x8xf32>, tensor<8x8xf32>, tensor<8x8xf32>
// STEP: llm.adamw %{{.*}}, %[[G0]],
// STEP: return %[[LOSS]],

// -----

// One rank: nothing to do.
module attributes {llm.plan = #llm.plan<world = 1, dp = 1, tp = 1, sp = 0, pp = 1, vpp = 1, zero = 0, remat = "none", mbs = 2, microbatches = 1, schedule = "1f1b", stages = [0, 1], step_time_s = 1.0 : f64, memory_bytes_per_device = 1024>} {
// CHECK-LABEL: func.func @one
// CHECK-NOT: llm.all_reduce
func.func @one(%w: tensor<16x8xf32> {llm.param = "wte.weight"},
               %ids: tensor<2x8xi32> {llm.input = "tokens"},
               %tgt: tensor<2x8xi32> {llm.input = "targets"}) -> tensor<f32> {
  %x = llm.embedding %ids, %w : tensor<2x8xi32>, tensor<16x8xf32> -> tensor<2x8x8xf32>
  %l = llm.linear %x, %w {transpose_weight} : tensor<2x8x8xf32>, tensor<16x8xf32> -> tensor<2x8x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x8x16xf32>, tensor<2x8xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
}
