// RUN: llm-opt %s | FileCheck %s
// Round trip: print, parse, print again gives the same text.
// RUN: llm-opt %s | llm-opt | FileCheck %s
// The generic form parses back to the same custom form.
// RUN: llm-opt %s --mlir-print-op-generic | llm-opt | FileCheck %s

// CHECK-LABEL: func.func @gpt2_block
func.func @gpt2_block(%ids: tensor<2x8xi32>, %wte: tensor<64x32xf32>, %wpe: tensor<16x32xf32>,
                      %g: tensor<32xf32>, %b: tensor<32xf32>, %w: tensor<32x96xf32>, %bw: tensor<96xf32>,
                      %tgt: tensor<2x8xi32>) -> tensor<f32> {
  // CHECK: %[[E:.*]] = llm.embedding %{{.*}}, %[[WTE:.*]] : tensor<2x8xi32>, tensor<64x32xf32> -> tensor<2x8x32xf32>
  %e = llm.embedding %ids, %wte : tensor<2x8xi32>, tensor<64x32xf32> -> tensor<2x8x32xf32>
  // CHECK: %[[P:.*]] = llm.position_embedding %{{.*}} : tensor<16x32xf32> -> tensor<8x32xf32>
  %p = llm.position_embedding %wpe : tensor<16x32xf32> -> tensor<8x32xf32>
  // CHECK: %[[X:.*]] = llm.add %[[E]], %[[P]] : tensor<2x8x32xf32>, tensor<8x32xf32>
  %x = llm.add %e, %p : tensor<2x8x32xf32>, tensor<8x32xf32>
  // CHECK: %[[N:.*]] = llm.layer_norm %[[X]], %{{.*}}, %{{.*}} {epsilon = 1.000000e-05 : f64} : tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32> -> tensor<2x8x32xf32>
  %n = llm.layer_norm %x, %g, %b {epsilon = 1.0e-5 : f64} : tensor<2x8x32xf32>, tensor<32xf32>, tensor<32xf32> -> tensor<2x8x32xf32>
  // CHECK: %[[QKV:.*]] = llm.linear %[[N]], %{{.*}} bias %{{.*}} : tensor<2x8x32xf32>, tensor<32x96xf32>, tensor<96xf32> -> tensor<2x8x96xf32>
  %qkv = llm.linear %n, %w bias %bw : tensor<2x8x32xf32>, tensor<32x96xf32>, tensor<96xf32> -> tensor<2x8x96xf32>
  // CHECK: %[[S:.*]]:3 = llm.split %[[QKV]] {axis = 2 : i64} : tensor<2x8x96xf32> -> tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>
  %q, %k, %v = llm.split %qkv {axis = 2 : i64} : tensor<2x8x96xf32> -> tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32>
  // CHECK: %[[A:.*]] = llm.attention %[[S]]#0, %[[S]]#1, %[[S]]#2 {causal, num_heads = 4 : i64, num_kv_heads = 4 : i64} : tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32> -> tensor<2x8x32xf32>
  %a = llm.attention %q, %k, %v {num_heads = 4 : i64, num_kv_heads = 4 : i64, causal} : tensor<2x8x32xf32>, tensor<2x8x32xf32>, tensor<2x8x32xf32> -> tensor<2x8x32xf32>
  // CHECK: %[[G:.*]] = llm.gelu %[[A]] : tensor<2x8x32xf32>
  %gl = llm.gelu %a : tensor<2x8x32xf32>
  // CHECK: %[[L:.*]] = llm.linear %[[G]], %[[WTE]] {transpose_weight} : tensor<2x8x32xf32>, tensor<64x32xf32> -> tensor<2x8x64xf32>
  %logits = llm.linear %gl, %wte {transpose_weight} : tensor<2x8x32xf32>, tensor<64x32xf32> -> tensor<2x8x64xf32>
  // CHECK: %[[LOSS:.*]] = llm.cross_entropy %[[L]], %{{.*}} : tensor<2x8x64xf32>, tensor<2x8xi32> -> tensor<f32>
  %loss = llm.cross_entropy %logits, %tgt : tensor<2x8x64xf32>, tensor<2x8xi32> -> tensor<f32>
  // CHECK: return %[[LOSS]]
  return %loss : tensor<f32>
}

// CHECK-LABEL: func.func @llama_block_bf16
func.func @llama_block_bf16(%x: tensor<1x4x64xbf16>, %g: tensor<64xbf16>, %wq: tensor<64x64xbf16>,
                            %wk: tensor<32x64xbf16>, %wu: tensor<128x64xbf16>) -> tensor<1x4x128xbf16> {
  // CHECK: llm.rms_norm %{{.*}}, %{{.*}} {epsilon = 9.9999999999999995E-7 : f64} : tensor<1x4x64xbf16>, tensor<64xbf16> -> tensor<1x4x64xbf16>
  %n = llm.rms_norm %x, %g {epsilon = 1.0e-6 : f64} : tensor<1x4x64xbf16>, tensor<64xbf16> -> tensor<1x4x64xbf16>
  %q = llm.linear %n, %wq {transpose_weight} : tensor<1x4x64xbf16>, tensor<64x64xbf16> -> tensor<1x4x64xbf16>
  %k = llm.linear %n, %wk {transpose_weight} : tensor<1x4x64xbf16>, tensor<32x64xbf16> -> tensor<1x4x32xbf16>
  // CHECK: llm.rope %{{.*}} {num_heads = 4 : i64, theta = 5.000000e+05 : f64} : tensor<1x4x64xbf16> -> tensor<1x4x64xbf16>
  %qr = llm.rope %q {num_heads = 4 : i64, theta = 5.0e5 : f64} : tensor<1x4x64xbf16> -> tensor<1x4x64xbf16>
  %kr = llm.rope %k {num_heads = 2 : i64, theta = 5.0e5 : f64} : tensor<1x4x32xbf16> -> tensor<1x4x32xbf16>
  // Grouped-query attention: 4 query heads share 2 key/value heads; explicit scale, not causal.
  // CHECK: llm.attention %{{.*}}, %{{.*}}, %{{.*}} {num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 1.250000e-01 : f64} : tensor<1x4x64xbf16>, tensor<1x4x32xbf16>, tensor<1x4x32xbf16> -> tensor<1x4x64xbf16>
  %a = llm.attention %qr, %kr, %k {num_heads = 4 : i64, num_kv_heads = 2 : i64, scale = 0.125 : f64} : tensor<1x4x64xbf16>, tensor<1x4x32xbf16>, tensor<1x4x32xbf16> -> tensor<1x4x64xbf16>
  %up = llm.linear %a, %wu {transpose_weight} : tensor<1x4x64xbf16>, tensor<128x64xbf16> -> tensor<1x4x128xbf16>
  // CHECK: %[[S:.*]] = llm.silu %{{.*}} : tensor<1x4x128xbf16>
  %s = llm.silu %up : tensor<1x4x128xbf16>
  // CHECK: llm.mul %[[S]], %{{.*}} : tensor<1x4x128xbf16>, tensor<1x4x128xbf16>
  %m = llm.mul %s, %up : tensor<1x4x128xbf16>, tensor<1x4x128xbf16>
  return %m : tensor<1x4x128xbf16>
}

// CHECK-LABEL: func.func @f16_and_i64_ids
func.func @f16_and_i64_ids(%ids: tensor<3xi64>, %t: tensor<10x4xf16>) -> tensor<3x4xf16> {
  // CHECK: llm.embedding %{{.*}}, %{{.*}} : tensor<3xi64>, tensor<10x4xf16> -> tensor<3x4xf16>
  %e = llm.embedding %ids, %t : tensor<3xi64>, tensor<10x4xf16> -> tensor<3x4xf16>
  return %e : tensor<3x4xf16>
}
