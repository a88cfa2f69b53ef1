// RUN: llm-opt %s --llm-annotate-stats | FileCheck %s

// One layer of attention and MLP by hand, B=2 s=4 h=8 heads=2 f=32 V=16.
// Forward matmul FLOPs (2 per multiply-add):
//   qkv 2*8*8*24 = 3072, attention 4*B*s^2*h = 4*2*16*8 = 1024,
//   proj 2*8*8*8 = 1024, fc 2*8*8*32 = 4096, down 2*8*32*8 = 4096,
//   head 2*8*8*16 = 2048; total 15360, times 3 for the step = 46080.
// Params: 16*8 + 8*24 + 24 + 8*8 + 8*32 + 32*8 = 920 (wte once, although
// the head reads it too).
// CHECK: module attributes {llm.stats = {flops_per_step = 46080 : i64, params = 920 : i64, tokens_per_step = 8 : i64}}
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte.weight"},
                   %wqkv: tensor<8x24xf32> {llm.param = "qkv.weight"},
                   %bqkv: tensor<24xf32> {llm.param = "qkv.bias"},
                   %wo: tensor<8x8xf32> {llm.param = "o.weight"},
                   %wfc: tensor<8x32xf32> {llm.param = "fc.weight"},
                   %wdown: tensor<32x8xf32> {llm.param = "down.weight"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %x = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  %qkv = llm.linear %x, %wqkv bias %bqkv : tensor<2x4x8xf32>, tensor<8x24xf32>, tensor<24xf32> -> tensor<2x4x24xf32>
  %q, %k, %v = llm.split %qkv {axis = 2 : i64} : tensor<2x4x24xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  %a = llm.attention %q, %k, %v {num_heads = 2 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %o = llm.linear %a, %wo : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
  %fc = llm.linear %o, %wfc : tensor<2x4x8xf32>, tensor<8x32xf32> -> tensor<2x4x32xf32>
  %g = llm.gelu %fc : tensor<2x4x32xf32>
  %d = llm.linear %g, %wdown : tensor<2x4x32xf32>, tensor<32x8xf32> -> tensor<2x4x8xf32>
  %l = llm.linear %d, %wte {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
