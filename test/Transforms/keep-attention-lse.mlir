// RUN: llm-opt %s --llm-keep-attention-lse -split-input-file | FileCheck %s
// RUN: llm-import --hf-config %models/tiny-llama-gqa.json --batch 2 --seq 4 --layers 1 | llm-opt --llm-autodiff --llm-keep-attention-lse | FileCheck %s --check-prefix=LLAMA

// A forward and its gradient (same q, k, v and attributes): the forward
// also returns the log-sum-exp ([batch, heads, seq] = [2, 4, 4]), the
// gradient takes the forward's output and it.
// CHECK-LABEL: func.func @pair(
// CHECK-SAME: %[[Q:[a-z0-9]+]]: tensor<2x4x8xf32>, %[[K:[a-z0-9]+]]: tensor<2x4x4xf32>, %[[V:[a-z0-9]+]]: tensor<2x4x4xf32>, %[[DO:[a-z0-9]+]]: tensor<2x4x8xf32>
// CHECK: %[[O:[a-z0-9_]+]], %[[L:[a-z0-9_]+]] = llm.attention_lse %[[Q]], %[[K]], %[[V]] {causal, num_heads = 4 : i64, num_kv_heads = 2 : i64} : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32> -> tensor<2x4x8xf32>, tensor<2x4x4xf32>
// CHECK: %[[Y:[a-z0-9_]+]] = llm.add %[[O]], %[[O]]
// CHECK: %[[DQ:[a-z0-9_]+]], %[[DK:[a-z0-9_]+]], %[[DV:[a-z0-9_]+]] = llm.attention_grad_lse %[[Q]], %[[K]], %[[V]], %[[DO]], %[[O]], %[[L]] {causal, num_heads = 4 : i64, num_kv_heads = 2 : i64} : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x4xf32> -> tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>
// A second gradient of the same forward shares its statistics.
// CHECK: llm.attention_grad_lse %[[Q]], %[[K]], %[[V]], %[[Y]], %[[O]], %[[L]]
// CHECK: return %[[Y]], %[[DQ]], %[[DK]], %[[DV]]
// CHECK-NOT: llm.attention_grad %
func.func @pair(%q: tensor<2x4x8xf32>, %k: tensor<2x4x4xf32>, %v: tensor<2x4x4xf32>, %do: tensor<2x4x8xf32>)
    -> (tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>) {
  %o = llm.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32> -> tensor<2x4x8xf32>
  %y = llm.add %o, %o : tensor<2x4x8xf32>, tensor<2x4x8xf32>
  %dq, %dk, %dv = llm.attention_grad %q, %k, %v, %do {num_heads = 4 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>
  %dq2, %dk2, %dv2 = llm.attention_grad %q, %k, %v, %y {num_heads = 4 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>
  return %y, %dq, %dk, %dv : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>
}

// -----

// No forward to pair with: a gradient before its forward, one of other
// operands, one with other attributes (not causal) stay as they are, and
// so do their forwards.
// CHECK-LABEL: func.func @unpaired(
// CHECK: llm.attention_grad %
// CHECK: llm.attention %
// CHECK: llm.attention_grad %
// CHECK: llm.attention_grad %
// CHECK-NOT: _lse
func.func @unpaired(%q: tensor<2x4x8xf32>, %k: tensor<2x4x8xf32>, %v: tensor<2x4x8xf32>, %do: tensor<2x4x8xf32>)
    -> (tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>) {
  %a, %b, %c = llm.attention_grad %q, %k, %v, %do {num_heads = 2 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  %o = llm.attention %q, %k, %v {num_heads = 2 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %d, %e, %f = llm.attention_grad %k, %q, %v, %do {num_heads = 2 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  %g, %h, %i = llm.attention_grad %q, %k, %v, %do {num_heads = 2 : i64, num_kv_heads = 2 : i64} : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  return %o, %a, %d, %g : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
}

// The tiny Llama's layer after llm-autodiff: its one attention pairs with
// its gradient (grouped-query: 4 heads over 2; lse [2, 4, 4]).
// LLAMA: llm.attention_lse {{.*}} -> tensor<2x4x{{[0-9]+}}xf32>, tensor<2x4x4xf32>
// LLAMA: llm.attention_grad_lse
// LLAMA-NOT: llm.attention_grad %
