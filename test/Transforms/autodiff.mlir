// RUN: llm-opt %s --llm-autodiff -split-input-file | FileCheck %s
// RUN: llm-import --hf-config %models/tiny-llama-gqa.json --batch 1 --seq 4 --layers 1 | llm-opt --llm-autodiff | FileCheck %s --check-prefix=LLAMA

// GPT-2 style, B=2 s=4 h=8 V=16 heads=2: a tied embedding (read by
// llm.embedding and by the LM head with transpose_weight), learned positions
// added with a broadcast rhs, layer_norm, a fused qkv linear with bias and its
// split, attention and gelu. The backward ops come in reverse forward order.

// The model function is kept as it was.
// CHECK-LABEL: func.func @forward(
// CHECK-SAME: -> tensor<f32> {
// CHECK-NOT: _grad
// CHECK-NOT: llm.train_step
// CHECK: %[[FLOSS:.*]] = llm.cross_entropy
// CHECK-NEXT: return %[[FLOSS]] : tensor<f32>

// Same arguments; the loss then one gradient per parameter, in order.
// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[WTE:[a-z0-9]+]]: tensor<16x8xf32> {llm.param = "wte.weight"}
// CHECK-SAME: %[[WPE:[a-z0-9]+]]: tensor<8x8xf32> {llm.param = "wpe.weight"}
// CHECK-SAME: %[[LNW:[a-z0-9]+]]: tensor<8xf32> {llm.param = "ln.weight"}
// CHECK-SAME: %[[LNB:[a-z0-9]+]]: tensor<8xf32> {llm.param = "ln.bias"}
// CHECK-SAME: %[[WQKV:[a-z0-9]+]]: tensor<8x24xf32> {llm.param = "qkv.weight"}
// CHECK-SAME: %[[BQKV:[a-z0-9]+]]: tensor<24xf32> {llm.param = "qkv.bias"}
// CHECK-SAME: %[[IDS:[a-z0-9]+]]: tensor<2x4xi32> {llm.input = "tokens"}
// CHECK-SAME: %[[TGT:[a-z0-9]+]]: tensor<2x4xi32> {llm.input = "targets"})
// CHECK-SAME: -> (tensor<f32> {llm.result = "loss"}, tensor<16x8xf32> {llm.grad = "wte.weight"}, tensor<8x8xf32> {llm.grad = "wpe.weight"}, tensor<8xf32> {llm.grad = "ln.weight"}, tensor<8xf32> {llm.grad = "ln.bias"}, tensor<8x24xf32> {llm.grad = "qkv.weight"}, tensor<24xf32> {llm.grad = "qkv.bias"})
// CHECK-SAME: attributes {llm.train_step}
// The forward, cloned.
// CHECK: %[[E:.*]] = llm.embedding %[[IDS]], %[[WTE]]
// CHECK: %[[X:.*]] = llm.add %[[E]], %{{.*}} : tensor<2x4x8xf32>, tensor<4x8xf32>
// CHECK: %[[N:.*]] = llm.layer_norm %[[X]], %[[LNW]], %[[LNB]]
// CHECK: %[[S:.*]]:3 = llm.split
// CHECK: %[[A:.*]] = llm.attention %[[S]]#0, %[[S]]#1, %[[S]]#2
// CHECK: %[[G:.*]] = llm.gelu %[[A]]
// CHECK: %[[L:.*]] = llm.linear %[[G]], %[[WTE]] {transpose_weight}
// CHECK: %[[LOSS:.*]] = llm.cross_entropy %[[L]], %[[TGT]]
// Seed: the gradient of the mean cross-entropy for its logits.
// CHECK-NEXT: %[[DL:.*]] = llm.cross_entropy_grad %[[L]], %[[TGT]] : tensor<2x4x16xf32>, tensor<2x4xi32>
// Tied LM head (transpose_weight): the input gradient is a linear through
// the same [16, 8] table read as [in, out] (no flag), the weight gradient
// keeps the [out, in] layout.
// CHECK-NEXT: %[[DG:.*]] = llm.linear %[[DL]], %[[WTE]] : tensor<2x4x16xf32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
// CHECK-NEXT: %[[DWTE_HEAD:.*]] = llm.linear_weight_grad %[[G]], %[[DL]] {transpose_weight} : tensor<2x4x8xf32>, tensor<2x4x16xf32> -> tensor<16x8xf32>
// CHECK-NEXT: %[[DA:.*]] = llm.gelu_grad %[[A]], %[[DG]] : tensor<2x4x8xf32>
// CHECK-NEXT: %[[DQ:[a-z0-9_]+]], %[[DK:[a-z0-9_]+]], %[[DV:[a-z0-9_]+]] = llm.attention_grad %[[S]]#0, %[[S]]#1, %[[S]]#2, %[[DA]] {causal, num_heads = 2 : i64, num_kv_heads = 2 : i64}
// Split -> concat along the same axis, in result order.
// CHECK-NEXT: %[[DQKV:.*]] = llm.concat %[[DQ]], %[[DK]], %[[DV]] {axis = 2 : i64} : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x24xf32>
// Linear [in, out] with bias: input gradient with transpose_weight, weight
// gradient without, bias gradient summed over the leading axes.
// CHECK-NEXT: %[[DN:.*]] = llm.linear %[[DQKV]], %[[WQKV]] {transpose_weight} : tensor<2x4x24xf32>, tensor<8x24xf32> -> tensor<2x4x8xf32>
// CHECK-NEXT: %[[DWQKV:.*]] = llm.linear_weight_grad %[[N]], %[[DQKV]] : tensor<2x4x8xf32>, tensor<2x4x24xf32> -> tensor<8x24xf32>
// CHECK-NEXT: %[[DBQKV:.*]] = llm.sum_leading %[[DQKV]] : tensor<2x4x24xf32> -> tensor<24xf32>
// CHECK-NEXT: %[[DX:[a-z0-9_]+]], %[[DLNW:[a-z0-9_]+]], %[[DLNB:[a-z0-9_]+]] = llm.layer_norm_grad %[[X]], %[[LNW]], %[[DN]] {epsilon = 1.000000e-05 : f64}
// The add's lhs takes the gradient as is; its broadcast rhs sums it.
// CHECK-NEXT: %[[DP:.*]] = llm.sum_leading %[[DX]] : tensor<2x4x8xf32> -> tensor<4x8xf32>
// CHECK-NEXT: %[[DWPE:.*]] = llm.position_embedding_grad %[[DP]] : tensor<4x8xf32> -> tensor<8x8xf32>
// CHECK-NEXT: %[[DWTE_EMB:.*]] = llm.embedding_grad %[[IDS]], %[[DX]] : tensor<2x4xi32>, tensor<2x4x8xf32> -> tensor<16x8xf32>
// The tied table's two gradients, summed (first one found + later one).
// CHECK-NEXT: %[[DWTE:.*]] = llm.add %[[DWTE_HEAD]], %[[DWTE_EMB]] : tensor<16x8xf32>, tensor<16x8xf32>
// CHECK-NEXT: return %[[LOSS]], %[[DWTE]], %[[DWPE]], %[[DLNW]], %[[DLNB]], %[[DWQKV]], %[[DBQKV]] :
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte.weight"},
                   %wpe: tensor<8x8xf32> {llm.param = "wpe.weight"},
                   %lnw: tensor<8xf32> {llm.param = "ln.weight"},
                   %lnb: tensor<8xf32> {llm.param = "ln.bias"},
                   %wqkv: tensor<8x24xf32> {llm.param = "qkv.weight"},
                   %bqkv: tensor<24xf32> {llm.param = "qkv.bias"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %e = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  %p = llm.position_embedding %wpe : tensor<8x8xf32> -> tensor<4x8xf32>
  %x = llm.add %e, %p : tensor<2x4x8xf32>, tensor<4x8xf32>
  %n = llm.layer_norm %x, %lnw, %lnb {epsilon = 1.0e-05 : f64} : tensor<2x4x8xf32>, tensor<8xf32>, tensor<8xf32> -> tensor<2x4x8xf32>
  %qkv = llm.linear %n, %wqkv bias %bqkv : tensor<2x4x8xf32>, tensor<8x24xf32>, tensor<24xf32> -> tensor<2x4x24xf32>
  %q, %k, %v = llm.split %qkv {axis = 2 : i64} : tensor<2x4x24xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  %a = llm.attention %q, %k, %v {num_heads = 2 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %g = llm.gelu %a : tensor<2x4x8xf32>
  %l = llm.linear %g, %wte {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Llama style, B=2 s=4 h=8 V=16, 2 query heads and 1 key/value head
// (head_dim 4): rms_norm, [out, in] projections, rope on q and k, GQA
// attention with an explicit scale, a residual add, a SwiGLU MLP (silu and a
// same-shape mul), a mul by a broadcast gain vector, an untied LM head.

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[WTE:[a-z0-9]+]]: tensor<16x8xf32> {llm.param = "embed.weight"}
// CHECK-SAME: %[[NW:[a-z0-9]+]]: tensor<8xf32> {llm.param = "norm.weight"}
// CHECK-SAME: %[[WQ:[a-z0-9]+]]: tensor<8x8xf32> {llm.param = "q.weight"}
// CHECK-SAME: %[[WK:[a-z0-9]+]]: tensor<4x8xf32> {llm.param = "k.weight"}
// CHECK-SAME: %[[WV:[a-z0-9]+]]: tensor<4x8xf32> {llm.param = "v.weight"}
// CHECK-SAME: %[[WG:[a-z0-9]+]]: tensor<32x8xf32> {llm.param = "gate.weight"}
// CHECK-SAME: %[[WU:[a-z0-9]+]]: tensor<32x8xf32> {llm.param = "up.weight"}
// CHECK-SAME: %[[WD:[a-z0-9]+]]: tensor<8x32xf32> {llm.param = "down.weight"}
// CHECK-SAME: %[[GAIN:[a-z0-9]+]]: tensor<8xf32> {llm.param = "final.gain"}
// CHECK-SAME: %[[WH:[a-z0-9]+]]: tensor<16x8xf32> {llm.param = "lm_head.weight"}
// CHECK-SAME: %[[IDS:[a-z0-9]+]]: tensor<2x4xi32> {llm.input = "tokens"}
// CHECK-SAME: %[[TGT:[a-z0-9]+]]: tensor<2x4xi32> {llm.input = "targets"})
// CHECK-SAME: -> (tensor<f32> {llm.result = "loss"}, tensor<16x8xf32> {llm.grad = "embed.weight"}, tensor<8xf32> {llm.grad = "norm.weight"}, tensor<8x8xf32> {llm.grad = "q.weight"}, tensor<4x8xf32> {llm.grad = "k.weight"}, tensor<4x8xf32> {llm.grad = "v.weight"}, tensor<32x8xf32> {llm.grad = "gate.weight"}, tensor<32x8xf32> {llm.grad = "up.weight"}, tensor<8x32xf32> {llm.grad = "down.weight"}, tensor<8xf32> {llm.grad = "final.gain"}, tensor<16x8xf32> {llm.grad = "lm_head.weight"})
// CHECK: %[[X:.*]] = llm.embedding %[[IDS]], %[[WTE]]
// CHECK: %[[H:.*]] = llm.rms_norm %[[X]], %[[NW]]
// CHECK: %[[Q:.*]] = llm.linear %[[H]], %[[WQ]] {transpose_weight}
// CHECK: %[[K:.*]] = llm.linear %[[H]], %[[WK]] {transpose_weight}
// CHECK: %[[V:.*]] = llm.linear %[[H]], %[[WV]] {transpose_weight}
// CHECK: %[[QR:.*]] = llm.rope %[[Q]] {num_heads = 2 : i64
// CHECK: %[[KR:.*]] = llm.rope %[[K]] {num_heads = 1 : i64
// CHECK: %[[A:.*]] = llm.attention %[[QR]], %[[KR]], %[[V]]
// CHECK: %[[R:.*]] = llm.add %[[X]], %[[A]]
// CHECK: %[[GATE:.*]] = llm.linear %[[R]], %[[WG]]
// CHECK: %[[SG:.*]] = llm.silu %[[GATE]]
// CHECK: %[[UP:.*]] = llm.linear %[[R]], %[[WU]]
// CHECK: %[[M:.*]] = llm.mul %[[SG]], %[[UP]]
// CHECK: %[[D:.*]] = llm.linear %[[M]], %[[WD]]
// CHECK: %[[SC:.*]] = llm.mul %[[D]], %[[GAIN]]
// CHECK: %[[L:.*]] = llm.linear %[[SC]], %[[WH]]
// CHECK: %[[LOSS:.*]] = llm.cross_entropy %[[L]], %[[TGT]]
// CHECK-NEXT: %[[DL:.*]] = llm.cross_entropy_grad %[[L]], %[[TGT]]
// CHECK-NEXT: %[[DSC:.*]] = llm.linear %[[DL]], %[[WH]] : tensor<2x4x16xf32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
// CHECK-NEXT: %[[DWH:.*]] = llm.linear_weight_grad %[[SC]], %[[DL]] {transpose_weight} : tensor<2x4x8xf32>, tensor<2x4x16xf32> -> tensor<16x8xf32>
// mul by a broadcast rhs: d lhs = dy * rhs; d rhs = sum_leading(dy * lhs).
// CHECK-NEXT: %[[DD:.*]] = llm.mul %[[DSC]], %[[GAIN]] : tensor<2x4x8xf32>, tensor<8xf32>
// CHECK-NEXT: %[[DGAIN_FULL:.*]] = llm.mul %[[DSC]], %[[D]] : tensor<2x4x8xf32>, tensor<2x4x8xf32>
// CHECK-NEXT: %[[DGAIN:.*]] = llm.sum_leading %[[DGAIN_FULL]] : tensor<2x4x8xf32> -> tensor<8xf32>
// CHECK-NEXT: %[[DM:.*]] = llm.linear %[[DD]], %[[WD]] : tensor<2x4x8xf32>, tensor<8x32xf32> -> tensor<2x4x32xf32>
// CHECK-NEXT: %[[DWD:.*]] = llm.linear_weight_grad %[[M]], %[[DD]] {transpose_weight} : tensor<2x4x32xf32>, tensor<2x4x8xf32> -> tensor<8x32xf32>
// Same-shape mul: two muls, no reduction.
// CHECK-NEXT: %[[DSG:.*]] = llm.mul %[[DM]], %[[UP]] : tensor<2x4x32xf32>, tensor<2x4x32xf32>
// CHECK-NEXT: %[[DUP:.*]] = llm.mul %[[DM]], %[[SG]] : tensor<2x4x32xf32>, tensor<2x4x32xf32>
// CHECK-NEXT: %[[DR1:.*]] = llm.linear %[[DUP]], %[[WU]] : tensor<2x4x32xf32>, tensor<32x8xf32> -> tensor<2x4x8xf32>
// CHECK-NEXT: %[[DWU:.*]] = llm.linear_weight_grad %[[R]], %[[DUP]] {transpose_weight}
// CHECK-NEXT: %[[DGATE:.*]] = llm.silu_grad %[[GATE]], %[[DSG]] : tensor<2x4x32xf32>
// CHECK-NEXT: %[[DR2:.*]] = llm.linear %[[DGATE]], %[[WG]] : tensor<2x4x32xf32>, tensor<32x8xf32> -> tensor<2x4x8xf32>
// %r feeds two linears: its gradients are summed.
// CHECK-NEXT: %[[DR:.*]] = llm.add %[[DR1]], %[[DR2]] : tensor<2x4x8xf32>, tensor<2x4x8xf32>
// CHECK-NEXT: %[[DWG:.*]] = llm.linear_weight_grad %[[R]], %[[DGATE]] {transpose_weight}
// Residual add of equal shapes: no op of its own; both sides read %DR.
// CHECK-NEXT: %[[DQR:[a-z0-9_]+]], %[[DKR:[a-z0-9_]+]], %[[DV:[a-z0-9_]+]] = llm.attention_grad %[[QR]], %[[KR]], %[[V]], %[[DR]] {causal, num_heads = 2 : i64, num_kv_heads = 1 : i64, scale = 5.000000e-01 : f64} : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32>
// rope -> rope {inverse} with the same heads and theta.
// CHECK-NEXT: %[[DK:.*]] = llm.rope %[[DKR]] {inverse, num_heads = 1 : i64, theta = 1.000000e+04 : f64} : tensor<2x4x4xf32> -> tensor<2x4x4xf32>
// CHECK-NEXT: %[[DQ:.*]] = llm.rope %[[DQR]] {inverse, num_heads = 2 : i64, theta = 1.000000e+04 : f64} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
// CHECK-NEXT: %[[DH1:.*]] = llm.linear %[[DV]], %[[WV]] : tensor<2x4x4xf32>, tensor<4x8xf32> -> tensor<2x4x8xf32>
// CHECK-NEXT: %[[DWV:.*]] = llm.linear_weight_grad %[[H]], %[[DV]] {transpose_weight} : tensor<2x4x8xf32>, tensor<2x4x4xf32> -> tensor<4x8xf32>
// CHECK-NEXT: %[[DH2:.*]] = llm.linear %[[DK]], %[[WK]]
// CHECK-NEXT: %[[DH12:.*]] = llm.add %[[DH1]], %[[DH2]]
// CHECK-NEXT: %[[DWK:.*]] = llm.linear_weight_grad %[[H]], %[[DK]] {transpose_weight}
// CHECK-NEXT: %[[DH3:.*]] = llm.linear %[[DQ]], %[[WQ]]
// CHECK-NEXT: %[[DH:.*]] = llm.add %[[DH12]], %[[DH3]]
// CHECK-NEXT: %[[DWQ:.*]] = llm.linear_weight_grad %[[H]], %[[DQ]] {transpose_weight}
// CHECK-NEXT: %[[DXN:[a-z0-9_]+]], %[[DNW:[a-z0-9_]+]] = llm.rms_norm_grad %[[X]], %[[NW]], %[[DH]] {epsilon = 1.000000e-05 : f64} : tensor<2x4x8xf32>, tensor<8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>, tensor<8xf32>
// %x feeds the residual add and rms_norm.
// CHECK-NEXT: %[[DX:.*]] = llm.add %[[DR]], %[[DXN]]
// CHECK-NEXT: %[[DWTE:.*]] = llm.embedding_grad %[[IDS]], %[[DX]]
// CHECK-NEXT: return %[[LOSS]], %[[DWTE]], %[[DNW]], %[[DWQ]], %[[DWK]], %[[DWV]], %[[DWG]], %[[DWU]], %[[DWD]], %[[DGAIN]], %[[DWH]] :
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "embed.weight"},
                   %nw: tensor<8xf32> {llm.param = "norm.weight"},
                   %wq: tensor<8x8xf32> {llm.param = "q.weight"},
                   %wk: tensor<4x8xf32> {llm.param = "k.weight"},
                   %wv: tensor<4x8xf32> {llm.param = "v.weight"},
                   %wg: tensor<32x8xf32> {llm.param = "gate.weight"},
                   %wu: tensor<32x8xf32> {llm.param = "up.weight"},
                   %wd: tensor<8x32xf32> {llm.param = "down.weight"},
                   %gain: tensor<8xf32> {llm.param = "final.gain"},
                   %whead: tensor<16x8xf32> {llm.param = "lm_head.weight"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %x = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  %h = llm.rms_norm %x, %nw {epsilon = 1.0e-05 : f64} : tensor<2x4x8xf32>, tensor<8xf32> -> tensor<2x4x8xf32>
  %q = llm.linear %h, %wq {transpose_weight} : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
  %k = llm.linear %h, %wk {transpose_weight} : tensor<2x4x8xf32>, tensor<4x8xf32> -> tensor<2x4x4xf32>
  %v = llm.linear %h, %wv {transpose_weight} : tensor<2x4x8xf32>, tensor<4x8xf32> -> tensor<2x4x4xf32>
  %qr = llm.rope %q {num_heads = 2 : i64, theta = 1.0e+04 : f64} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %kr = llm.rope %k {num_heads = 1 : i64, theta = 1.0e+04 : f64} : tensor<2x4x4xf32> -> tensor<2x4x4xf32>
  %a = llm.attention %qr, %kr, %v {num_heads = 2 : i64, num_kv_heads = 1 : i64, causal, scale = 0.5 : f64} : tensor<2x4x8xf32>, tensor<2x4x4xf32>, tensor<2x4x4xf32> -> tensor<2x4x8xf32>
  %r = llm.add %x, %a : tensor<2x4x8xf32>, tensor<2x4x8xf32>
  %gate = llm.linear %r, %wg {transpose_weight} : tensor<2x4x8xf32>, tensor<32x8xf32> -> tensor<2x4x32xf32>
  %s = llm.silu %gate : tensor<2x4x32xf32>
  %up = llm.linear %r, %wu {transpose_weight} : tensor<2x4x8xf32>, tensor<32x8xf32> -> tensor<2x4x32xf32>
  %m = llm.mul %s, %up : tensor<2x4x32xf32>, tensor<2x4x32xf32>
  %d = llm.linear %m, %wd {transpose_weight} : tensor<2x4x32xf32>, tensor<8x32xf32> -> tensor<2x4x8xf32>
  %sc = llm.mul %d, %gain : tensor<2x4x8xf32>, tensor<8xf32>
  %l = llm.linear %sc, %whead {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Small rules on their own: a bias added with the broadcasting llm.add gets
// sum_leading straight into its gradient; an llm.rope with `inverse` in the
// forward is differentiated by the plain rotation; an op whose result does
// not reach the loss (the gelu) gets no backward.

// CHECK-LABEL: func.func @train_step(
// CHECK-SAME: %[[WTE:[a-z0-9]+]]: tensor<16x8xf32> {llm.param = "wte"}
// CHECK-SAME: %[[B:[a-z0-9]+]]: tensor<4x8xf32> {llm.param = "bias"}
// CHECK-SAME: -> (tensor<f32> {llm.result = "loss"}, tensor<16x8xf32> {llm.grad = "wte"}, tensor<4x8xf32> {llm.grad = "bias"})
// CHECK: %[[E:.*]] = llm.embedding
// CHECK: %[[X:.*]] = llm.add %[[E]], %[[B]]
// CHECK: %[[R:.*]] = llm.rope %[[X]] {inverse, num_heads = 2 : i64, theta = 5.000000e+05 : f64}
// CHECK: llm.gelu %[[X]]
// CHECK: %[[L:.*]] = llm.linear %[[R]], %[[WTE]] {transpose_weight}
// CHECK: %[[LOSS:.*]] = llm.cross_entropy
// CHECK-NEXT: %[[DL:.*]] = llm.cross_entropy_grad
// CHECK-NEXT: %[[DR:.*]] = llm.linear %[[DL]], %[[WTE]] :
// CHECK-NEXT: %[[DW1:.*]] = llm.linear_weight_grad %[[R]], %[[DL]] {transpose_weight}
// (The CHECK-NEXT chain down to the return leaves no room for a gelu_grad.)
// CHECK-NEXT: %[[DX:.*]] = llm.rope %[[DR]] {num_heads = 2 : i64, theta = 5.000000e+05 : f64} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
// CHECK-NEXT: %[[DB:.*]] = llm.sum_leading %[[DX]] : tensor<2x4x8xf32> -> tensor<4x8xf32>
// CHECK-NEXT: %[[DW2:.*]] = llm.embedding_grad %{{.*}}, %[[DX]]
// CHECK-NEXT: %[[DW:.*]] = llm.add %[[DW1]], %[[DW2]]
// CHECK-NEXT: return %[[LOSS]], %[[DW]], %[[DB]] :
func.func @model(%wte: tensor<16x8xf32> {llm.param = "wte"},
                 %b: tensor<4x8xf32> {llm.param = "bias"},
                 %ids: tensor<2x4xi32> {llm.input = "tokens"},
                 %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %e = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  %x = llm.add %e, %b : tensor<2x4x8xf32>, tensor<4x8xf32>
  %r = llm.rope %x {num_heads = 2 : i64, theta = 5.0e+05 : f64, inverse} : tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %unused = llm.gelu %x : tensor<2x4x8xf32>
  %l = llm.linear %r, %wte {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// A real import: tiny-llama-gqa (h=128, 4 heads, 2 kv heads, head_dim 32,
// ffn 352, V=256), one layer, B=1 s=4, untied LM head.
// LLAMA-LABEL: func.func @forward(
// LLAMA-LABEL: func.func @train_step(
// LLAMA-SAME: %[[EMB:[a-z0-9]+]]: tensor<256x128xf32> {{{[^}]*}}llm.param = "model.embed_tokens.weight"}
// LLAMA-SAME: -> (tensor<f32> {llm.result = "loss"}, tensor<256x128xf32> {llm.grad = "model.embed_tokens.weight"}, tensor<128xf32> {llm.grad = "model.layers.0.input_layernorm.weight"}, tensor<128x128xf32> {llm.grad = "model.layers.0.self_attn.q_proj.weight"}, tensor<64x128xf32> {llm.grad = "model.layers.0.self_attn.k_proj.weight"}, tensor<64x128xf32> {llm.grad = "model.layers.0.self_attn.v_proj.weight"}, tensor<128x128xf32> {llm.grad = "model.layers.0.self_attn.o_proj.weight"}, tensor<128xf32> {llm.grad = "model.layers.0.post_attention_layernorm.weight"}, tensor<352x128xf32> {llm.grad = "model.layers.0.mlp.gate_proj.weight"}, tensor<352x128xf32> {llm.grad = "model.layers.0.mlp.up_proj.weight"}, tensor<128x352xf32> {llm.grad = "model.layers.0.mlp.down_proj.weight"}, tensor<128xf32> {llm.grad = "model.norm.weight"}, tensor<256x128xf32> {llm.grad = "lm_head.weight"})
// LLAMA-SAME: attributes {llm.train_step}
// LLAMA: %[[LOGITS:.*]] = llm.linear %{{.*}}, %{{.*}} {transpose_weight} : tensor<1x4x128xf32>, tensor<256x128xf32> -> tensor<1x4x256xf32>
// LLAMA-NEXT: %[[LOSS:.*]] = llm.cross_entropy %[[LOGITS]]
// LLAMA-NEXT: llm.cross_entropy_grad %[[LOGITS]], %{{.*}} : tensor<1x4x256xf32>, tensor<1x4xi32>
// LLAMA: llm.linear_weight_grad %{{.*}}, %{{.*}} {transpose_weight} : tensor<1x4x128xf32>, tensor<1x4x256xf32> -> tensor<256x128xf32>
// LLAMA: llm.rms_norm_grad
// LLAMA: llm.silu_grad %{{.*}}, %{{.*}} : tensor<1x4x352xf32>
// LLAMA: llm.attention_grad {{.*}} {causal, num_heads = 4 : i64, num_kv_heads = 2 : i64} : tensor<1x4x128xf32>, tensor<1x4x64xf32>, tensor<1x4x64xf32>, tensor<1x4x128xf32> -> tensor<1x4x128xf32>, tensor<1x4x64xf32>, tensor<1x4x64xf32>
// LLAMA: llm.rope %{{.*}} {inverse, num_heads = 2 : i64, theta = 1.000000e+04 : f64} : tensor<1x4x64xf32>
// LLAMA: llm.rope %{{.*}} {inverse, num_heads = 4 : i64, theta = 1.000000e+04 : f64} : tensor<1x4x128xf32>
// LLAMA: %[[DEMB:.*]] = llm.embedding_grad %{{.*}}, %{{.*}} : tensor<1x4xi32>, tensor<1x4x128xf32> -> tensor<256x128xf32>
// LLAMA-NEXT: return %[[LOSS]], %[[DEMB]], {{.*}} : tensor<f32>, tensor<256x128xf32>, tensor<128xf32>,
