// RUN: llm-opt %s --pass-pipeline="builtin.module(func.func(sharding-propagation))" | FileCheck %s
// The backward ops' ShardingInterface models under upstream's
// sharding-propagation, with the batch split over a 2-rank grid: what is
// computed row by row keeps the batch split; the weight and table
// gradients, sums over the rows, are not split (upstream's sharding no
// longer marks them partial: the reduction is the partitioner's).

shard.grid @grid(shape = 2)

// CHECK-LABEL: func.func @norm_and_embedding_grads
func.func @norm_and_embedding_grads(%x: tensor<2x4x8xf32>, %w: tensor<8xf32>,
    %dy: tensor<2x4x8xf32>, %ids: tensor<2x4xi32>) -> (tensor<2x4x8xf32>, tensor<8xf32>, tensor<16x8xf32>) {
  %s = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %xs = shard.shard %x to %s : tensor<2x4x8xf32>
  // CHECK: %d_input, %d_weight, %d_bias = llm.layer_norm_grad
  // CHECK-NEXT: %[[SDW:.*]] = shard.sharding @grid split_axes = {{\[\[}}]] :
  // CHECK-NEXT: shard.shard %d_weight to %[[SDW]] :
  // CHECK-NEXT: %[[SDX:.*]] = shard.sharding @grid split_axes = {{\[\[}}0]] :
  // CHECK-NEXT: shard.shard %d_input to %[[SDX]] :
  %dx, %dw, %db = llm.layer_norm_grad %xs, %w, %dy {epsilon = 1.0e-05 : f64} : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32>
  // CHECK: %[[DT:.*]] = llm.embedding_grad
  // CHECK-NEXT: %[[SDT:.*]] = shard.sharding @grid split_axes = {{\[\[}}]] :
  // CHECK-NEXT: shard.shard %[[DT]] to %[[SDT]] :
  %dt = llm.embedding_grad %ids, %dx : tensor<2x4xi32>, tensor<2x4x8xf32> -> tensor<16x8xf32>
  return %dx, %dw, %dt : tensor<2x4x8xf32>, tensor<8xf32>, tensor<16x8xf32>
}

// CHECK-LABEL: func.func @attention_and_loss_grads
func.func @attention_and_loss_grads(%q: tensor<2x4x16xf32>, %d: tensor<2x4x16xf32>,
    %logits: tensor<2x4x32xf32>, %t: tensor<2x4xi32>) -> (tensor<2x4x16xf32>, tensor<2x4x32xf32>) {
  %s = shard.sharding @grid split_axes = [[0]] : !shard.sharding
  %qs = shard.shard %q to %s : tensor<2x4x16xf32>
  %ls = shard.shard %logits to %s : tensor<2x4x32xf32>
  // CHECK: %dq, %dk, %dv = llm.attention_grad
  // CHECK-NEXT: %[[SDQ:.*]] = shard.sharding @grid split_axes = {{\[\[}}0]] :
  // CHECK-NEXT: shard.shard %dq to %[[SDQ]] :
  %dq, %dk, %dv = llm.attention_grad %qs, %qs, %qs, %d {causal, num_heads = 2 : i64, num_kv_heads = 2 : i64} : tensor<2x4x16xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32> -> tensor<2x4x16xf32>, tensor<2x4x16xf32>, tensor<2x4x16xf32>
  // CHECK: %[[DL:.*]] = llm.cross_entropy_grad
  // CHECK-NEXT: %[[SDL:.*]] = shard.sharding @grid split_axes = {{\[\[}}0]] :
  // CHECK-NEXT: shard.shard %[[DL]] to %[[SDL]] :
  %dl = llm.cross_entropy_grad %ls, %t : tensor<2x4x32xf32>, tensor<2x4xi32>
  return %dq, %dl : tensor<2x4x16xf32>, tensor<2x4x32xf32>
}
