// RUN: llm-opt %s --llm-autodiff --llm-optimizer --llm-lower-to-rt="attention-column-views=false" -split-input-file | FileCheck %s
// (The column copies of the split and concat; attention-column-views.mlir
// has attention reading and writing the columns in place, the default.)

// One attention block and a tied LM head, B=2 s=4 h=8 heads=2 (D=4) V=16,
// max positions 8, f32 (4 bytes an element). Every size below is computed
// from the shapes.
//
// Persistent region, each buffer rounded up to 64 bytes, in the order
// @train's arguments and results are met:
//   params   wte 16*8*4 = 512 @0,  wpe 8*8*4 = 256 @512, ln.weight 32->64 @768,
//            ln.bias 32->64 @832, qkv.weight 8*24*4 = 768 @896,
//            qkv.bias 24*4 = 96->128 @1664, proj.weight 8*8*4 = 256 @1792
//            sum 512+256+64+64+768+128+256 = 2048
//   adam_m   the same sizes from 2048: 2048, 2560, 2816, 2880, 2944, 3712, 3840
//   adam_v   from 4096: 4096, 4608, 4864, 4928, 4992, 5760, 5888
//   inputs   tokens 2*4*4 = 32->64 @6144, targets @6208, lr 4->64 @6272,
//            step 8->64 @6336, weight_decay @6400, grad_clip @6464
//   outputs  loss 4->64 @6528, grad_norm @6592, eval_loss (@eval) @6656
//   persistent = 3*2048 + 6*64 + 3*64 = 6144 + 384 + 192 = 6720
// Temporaries start at 6720.
//
// Metadata: params = 128 + 64 + 8 + 8 + 192 + 24 + 64 = 488 elements (wte once);
// forward matmul FLOPs: qkv 2*8*8*24 = 3072, attention 4*B*s^2*h = 4*2*16*8
// = 1024, proj 2*8*8*8 = 1024, head 2*8*8*16 = 2048, total 7168, times 3 for
// a step = 21504; tokens 2*4 = 8.

// CHECK: module attributes {llm.config = {hidden_size = 8 : i64, model_type = "test"},
// CHECK-SAME: llmrt.arena_bytes = {{[0-9]+}} : i64,
// CHECK-SAME: llmrt.metadata = {config = {hidden_size = 8 : i64, model_type = "test"}, dp = 1 : i64, flops_per_step = 2.150400e+04 : f64, params = 488 : i64, tokens_per_step = 8 : i64, tp = 1 : i64, world = 1 : i64},
// CHECK-SAME: llmrt.persistent_bytes = 6720 : i64}
// CHECK-NOT: func.func @forward
// CHECK-NOT: func.func @train_step
// CHECK-LABEL: func.func @train() {
// CHECK-DAG: %[[WTE:.*]] = llmrt.buffer "wte.weight" {init = "normal", init_std = 2.000000e-02 : f64, offset = [[$WTE:0]] : i64, role = "param"} : memref<16x8xf32>
// CHECK-DAG: %[[WPE:.*]] = llmrt.buffer "wpe.weight" {init = "normal", init_std = 1.000000e-02 : f64, offset = [[$WPE:512]] : i64, role = "param"} : memref<8x8xf32>
// CHECK-DAG: %[[LNW:.*]] = llmrt.buffer "ln.weight" {init = "ones", offset = [[$LNW:768]] : i64, role = "param"} : memref<8xf32>
// CHECK-DAG: %[[LNB:.*]] = llmrt.buffer "ln.bias" {init = "zeros", offset = [[$LNB:832]] : i64, role = "param"} : memref<8xf32>
// CHECK-DAG: %[[WQKV:.*]] = llmrt.buffer "qkv.weight" {init = "normal", init_std = 2.000000e-02 : f64, offset = [[$WQKV:896]] : i64, role = "param"} : memref<8x24xf32>
// CHECK-DAG: %[[BQKV:.*]] = llmrt.buffer "qkv.bias" {init = "zeros", offset = [[$BQKV:1664]] : i64, role = "param"} : memref<24xf32>
// A parameter without llm.init has no init.
// CHECK-DAG: %[[WO:.*]] = llmrt.buffer "proj.weight" {offset = [[$WO:1792]] : i64, role = "param"} : memref<8x8xf32>
// CHECK-DAG: %[[M_WTE:.*]] = llmrt.buffer "wte.weight" {offset = 2048 : i64, role = "adam_m"} : memref<16x8xf32>
// CHECK-DAG: %[[M_WPE:.*]] = llmrt.buffer "wpe.weight" {offset = 2560 : i64, role = "adam_m"} : memref<8x8xf32>
// CHECK-DAG: %[[M_LNW:.*]] = llmrt.buffer "ln.weight" {offset = 2816 : i64, role = "adam_m"} : memref<8xf32>
// CHECK-DAG: %[[M_LNB:.*]] = llmrt.buffer "ln.bias" {offset = 2880 : i64, role = "adam_m"} : memref<8xf32>
// CHECK-DAG: %[[M_WQKV:.*]] = llmrt.buffer "qkv.weight" {offset = 2944 : i64, role = "adam_m"} : memref<8x24xf32>
// CHECK-DAG: %[[M_BQKV:.*]] = llmrt.buffer "qkv.bias" {offset = 3712 : i64, role = "adam_m"} : memref<24xf32>
// CHECK-DAG: %[[M_WO:.*]] = llmrt.buffer "proj.weight" {offset = 3840 : i64, role = "adam_m"} : memref<8x8xf32>
// CHECK-DAG: %[[V_WTE:.*]] = llmrt.buffer "wte.weight" {offset = 4096 : i64, role = "adam_v"} : memref<16x8xf32>
// CHECK-DAG: %[[V_WPE:.*]] = llmrt.buffer "wpe.weight" {offset = 4608 : i64, role = "adam_v"} : memref<8x8xf32>
// CHECK-DAG: %[[V_LNW:.*]] = llmrt.buffer "ln.weight" {offset = 4864 : i64, role = "adam_v"} : memref<8xf32>
// CHECK-DAG: %[[V_LNB:.*]] = llmrt.buffer "ln.bias" {offset = 4928 : i64, role = "adam_v"} : memref<8xf32>
// CHECK-DAG: %[[V_WQKV:.*]] = llmrt.buffer "qkv.weight" {offset = 4992 : i64, role = "adam_v"} : memref<8x24xf32>
// CHECK-DAG: %[[V_BQKV:.*]] = llmrt.buffer "qkv.bias" {offset = 5760 : i64, role = "adam_v"} : memref<24xf32>
// CHECK-DAG: %[[V_WO:.*]] = llmrt.buffer "proj.weight" {offset = 5888 : i64, role = "adam_v"} : memref<8x8xf32>
// CHECK-DAG: %[[TOK:.*]] = llmrt.buffer "tokens" {offset = [[$TOK:6144]] : i64, role = "input"} : memref<2x4xi32>
// CHECK-DAG: %[[TGT:.*]] = llmrt.buffer "targets" {offset = [[$TGT:6208]] : i64, role = "input"} : memref<2x4xi32>
// CHECK-DAG: %[[LR:.*]] = llmrt.buffer "lr" {offset = 6272 : i64, role = "input"} : memref<f32>
// CHECK-DAG: %[[STEP:.*]] = llmrt.buffer "step" {offset = 6336 : i64, role = "input"} : memref<i64>
// CHECK-DAG: %[[WD:.*]] = llmrt.buffer "weight_decay" {offset = 6400 : i64, role = "input"} : memref<f32>
// CHECK-DAG: %[[CLIP:.*]] = llmrt.buffer "grad_clip" {offset = 6464 : i64, role = "input"} : memref<f32>
// CHECK-DAG: %[[LOSS:.*]] = llmrt.buffer "loss" {offset = 6528 : i64, role = "output"} : memref<f32>
// CHECK-DAG: %[[NORM:.*]] = llmrt.buffer "grad_norm" {offset = 6592 : i64, role = "output"} : memref<f32>
//
// Forward. rows = B*s = 8.
// CHECK: %[[E:.*]] = llmrt.buffer "" {offset = [[E_OFF:[0-9]+]] : i64, role = "temp"} : memref<2x4x8xf32>
// CHECK-NEXT: llmrt.kernel "embedding_fwd"(%[[TOK]], %[[WTE]], %[[E]]) {floats = array<f64>, ints = array<i64: 8, 8>}
// CHECK-NEXT: %[[P:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<4x8xf32>
// CHECK-NEXT: llmrt.kernel "position_embedding_fwd"(%[[WPE]], %[[P]]) {floats = array<f64>, ints = array<i64: 4, 8>}
// x = e + p: e dies here, so x is written in place (same offset); n = 64, nb = 32.
// CHECK-NEXT: %[[X:.*]] = llmrt.buffer "" {offset = [[E_OFF]] : i64, role = "temp"} : memref<2x4x8xf32>
// CHECK-NEXT: llmrt.kernel "add"(%[[E]], %[[P]], %[[X]]) {floats = array<f64>, ints = array<i64: 64, 32>}
// CHECK-NEXT: %[[N:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<2x4x8xf32>
// CHECK-NEXT: llmrt.kernel "layer_norm_fwd"(%[[X]], %[[LNW]], %[[LNB]], %[[N]]) {floats = array<f64: 1.000000e-05>, ints = array<i64: 8, 8>}
// CHECK-NEXT: %[[QKV:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<2x4x24xf32>
// linear_fwd {rows, in, out, transW} = {8, 8, 24, 0}.
// CHECK-NEXT: llmrt.kernel "linear_fwd"(%[[N]], %[[WQKV]], %[[BQKV]], %[[QKV]]) {floats = array<f64>, ints = array<i64: 8, 8, 24, 0>}
// split along the last axis: copy_columns {srcCols, srcOff, dstCols, dstOff, width, rows}.
// CHECK-NEXT: %[[Q:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "copy_columns"(%[[QKV]], %[[Q]]) {floats = array<f64>, ints = array<i64: 24, 0, 8, 0, 8, 8>}
// CHECK-NEXT: %[[K:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "copy_columns"(%[[QKV]], %[[K]]) {floats = array<f64>, ints = array<i64: 24, 8, 8, 0, 8, 8>}
// CHECK-NEXT: %[[V:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "copy_columns"(%[[QKV]], %[[V]]) {floats = array<f64>, ints = array<i64: 24, 16, 8, 0, 8, 8>}
// attention_fwd {B, S, Hq, Hkv, D, causal} = {2, 4, 2, 2, 4, 1}, scale 1/sqrt(4) = 0.5.
// CHECK-NEXT: %[[A:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "attention_fwd"(%[[Q]], %[[K]], %[[V]], %[[A]]) {floats = array<f64: 5.000000e-01>, ints = array<i64: 2, 4, 2, 2, 4, 1>}
// CHECK-NEXT: %[[O:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "linear_fwd"(%[[A]], %[[WO]], %[[O]]) {floats = array<f64>, ints = array<i64: 8, 8, 8, 0>}
// The residual add: x is still needed by layer_norm_grad, so no in-place.
// CHECK-NEXT: %[[R:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "add"(%[[X]], %[[O]], %[[R]]) {floats = array<f64>, ints = array<i64: 64, 64>}
// CHECK-NEXT: %[[G:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "gelu_fwd"(%[[R]], %[[G]]) {floats = array<f64>, ints = array<i64: 64>}
// The tied head reads wte as [out, in]: {8, 8, 16, 1}.
// CHECK-NEXT: %[[L:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<2x4x16xf32>
// CHECK-NEXT: llmrt.kernel "linear_fwd"(%[[G]], %[[WTE]], %[[L]]) {floats = array<f64>, ints = array<i64: 8, 8, 16, 1>}
// CHECK-NEXT: llmrt.kernel "cross_entropy_fwd"(%[[L]], %[[TGT]], %[[LOSS]]) {floats = array<f64>, ints = array<i64: 8, 16>}
//
// Backward.
// CHECK-NEXT: %[[DL:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "cross_entropy_bwd"(%[[L]], %[[TGT]], %[[DL]]) {floats = array<f64>, ints = array<i64: 8, 16>}
// The input gradient reads the [16, 8] table as [in, out]: {8, 16, 8, 0}.
// CHECK-NEXT: %[[DG:.*]] = llmrt.buffer "" {offset = [[DG_OFF:[0-9]+]] : i64, role = "temp"} : memref<2x4x8xf32>
// CHECK-NEXT: llmrt.kernel "linear_fwd"(%[[DL]], %[[WTE]], %[[DG]]) {floats = array<f64>, ints = array<i64: 8, 16, 8, 0>}
// CHECK-NEXT: %[[DWTE1:.*]] = llmrt.buffer "" {offset = [[DWTE_OFF:[0-9]+]] : i64, role = "temp"} : memref<16x8xf32>
// CHECK-NEXT: llmrt.kernel "linear_bwd_weight"(%[[G]], %[[DL]], %[[DWTE1]]) {floats = array<f64>, ints = array<i64: 8, 8, 16, 1>}
// gelu_bwd writes over dy, which dies here.
// CHECK-NEXT: %[[DR:.*]] = llmrt.buffer "" {offset = [[DG_OFF]] : i64, role = "temp"} : memref<2x4x8xf32>
// CHECK-NEXT: llmrt.kernel "gelu_bwd"(%[[R]], %[[DG]], %[[DR]]) {floats = array<f64>, ints = array<i64: 64>}
// CHECK-NEXT: %[[DA:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "linear_fwd"(%[[DR]], %[[WO]], %[[DA]]) {floats = array<f64>, ints = array<i64: 8, 8, 8, 1>}
// CHECK-NEXT: %[[DWO:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<8x8xf32>
// CHECK-NEXT: llmrt.kernel "linear_bwd_weight"(%[[A]], %[[DR]], %[[DWO]]) {floats = array<f64>, ints = array<i64: 8, 8, 8, 0>}
// CHECK-NEXT: %[[DQ:.*]] = llmrt.buffer
// CHECK-NEXT: %[[DK:.*]] = llmrt.buffer
// CHECK-NEXT: %[[DV:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "attention_bwd"(%[[Q]], %[[K]], %[[V]], %[[DA]], %[[DQ]], %[[DK]], %[[DV]]) {floats = array<f64: 5.000000e-01>, ints = array<i64: 2, 4, 2, 2, 4, 1>}
// concat: copy_columns into offsets 0, 8, 16 of 24 columns.
// CHECK-NEXT: %[[DQKV:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<2x4x24xf32>
// CHECK-NEXT: llmrt.kernel "copy_columns"(%[[DQ]], %[[DQKV]]) {floats = array<f64>, ints = array<i64: 8, 0, 24, 0, 8, 8>}
// CHECK-NEXT: llmrt.kernel "copy_columns"(%[[DK]], %[[DQKV]]) {floats = array<f64>, ints = array<i64: 8, 0, 24, 8, 8, 8>}
// CHECK-NEXT: llmrt.kernel "copy_columns"(%[[DV]], %[[DQKV]]) {floats = array<f64>, ints = array<i64: 8, 0, 24, 16, 8, 8>}
// CHECK-NEXT: %[[DN:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "linear_fwd"(%[[DQKV]], %[[WQKV]], %[[DN]]) {floats = array<f64>, ints = array<i64: 8, 24, 8, 1>}
// CHECK-NEXT: %[[DWQKV:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<8x24xf32>
// CHECK-NEXT: llmrt.kernel "linear_bwd_weight"(%[[N]], %[[DQKV]], %[[DWQKV]]) {floats = array<f64>, ints = array<i64: 8, 8, 24, 0>}
// sum_rows {rows, C} = {8*24/24, 24}.
// CHECK-NEXT: %[[DBQKV:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<24xf32>
// CHECK-NEXT: llmrt.kernel "sum_rows"(%[[DQKV]], %[[DBQKV]]) {floats = array<f64>, ints = array<i64: 8, 24>}
// CHECK-NEXT: %[[DXN:.*]] = llmrt.buffer
// CHECK-NEXT: %[[DLNW:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<8xf32>
// CHECK-NEXT: %[[DLNB:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<8xf32>
// CHECK-NEXT: llmrt.kernel "layer_norm_bwd"(%[[X]], %[[LNW]], %[[DN]], %[[DXN]], %[[DLNW]], %[[DLNB]]) {floats = array<f64: 1.000000e-05>, ints = array<i64: 8, 8>}
// The two gradients of x summed, in place over the first (dies here).
// CHECK-NEXT: %[[DX:.*]] = llmrt.buffer "" {offset = [[DG_OFF]] : i64, role = "temp"} : memref<2x4x8xf32>
// CHECK-NEXT: llmrt.kernel "add"(%[[DR]], %[[DXN]], %[[DX]]) {floats = array<f64>, ints = array<i64: 64, 64>}
// sum_leading to [4, 8]: {64/32, 32} = {2, 32}.
// CHECK-NEXT: %[[DP:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<4x8xf32>
// CHECK-NEXT: llmrt.kernel "sum_rows"(%[[DX]], %[[DP]]) {floats = array<f64>, ints = array<i64: 2, 32>}
// position_embedding_bwd {S, P, C} = {4, 8, 8}.
// CHECK-NEXT: %[[DWPE:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<8x8xf32>
// CHECK-NEXT: llmrt.kernel "position_embedding_bwd"(%[[DP]], %[[DWPE]]) {floats = array<f64>, ints = array<i64: 4, 8, 8>}
// embedding_bwd {n, V, C} = {8, 16, 8}.
// CHECK-NEXT: %[[DWTE2:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<16x8xf32>
// CHECK-NEXT: llmrt.kernel "embedding_bwd"(%[[TOK]], %[[DX]], %[[DWTE2]]) {floats = array<f64>, ints = array<i64: 8, 16, 8>}
// The tied table's gradients summed in place over the head's: n = nb = 128.
// CHECK-NEXT: %[[DWTE:.*]] = llmrt.buffer "" {offset = [[DWTE_OFF]] : i64, role = "temp"} : memref<16x8xf32>
// CHECK-NEXT: llmrt.kernel "add"(%[[DWTE1]], %[[DWTE2]], %[[DWTE]]) {floats = array<f64>, ints = array<i64: 128, 128>}
//
// Optimizer: the norm is written to the grad_norm output; AdamW updates the
// param, adam_m and adam_v buffers themselves. {n, decay}: decay on the
// matrices only.
// CHECK-NEXT: llmrt.kernel "global_norm"(%[[NORM]], %[[DWTE]], %[[DWPE]], %[[DLNW]], %[[DLNB]], %[[DWQKV]], %[[DBQKV]], %[[DWO]]) {floats = array<f64>, ints = array<i64>}
// CHECK-NEXT: %[[SCALE:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<f32>
// CHECK-NEXT: llmrt.kernel "clip_scale"(%[[NORM]], %[[CLIP]], %[[SCALE]]) {floats = array<f64>, ints = array<i64>}
// CHECK-NEXT: llmrt.kernel "adamw"(%[[WTE]], %[[DWTE]], %[[M_WTE]], %[[V_WTE]], %[[LR]], %[[STEP]], %[[WD]], %[[SCALE]]) {floats = array<f64: 9.000000e-01, 0.94999999999999996, 1.000000e-08>, ints = array<i64: 128, 1>}
// CHECK-NEXT: llmrt.kernel "adamw"(%[[WPE]], %[[DWPE]], %[[M_WPE]], %[[V_WPE]], %[[LR]], %[[STEP]], %[[WD]], %[[SCALE]]) {floats = array<f64: 9.000000e-01, 0.94999999999999996, 1.000000e-08>, ints = array<i64: 64, 1>}
// CHECK-NEXT: llmrt.kernel "adamw"(%[[LNW]], %[[DLNW]], %[[M_LNW]], %[[V_LNW]], %[[LR]], %[[STEP]], %[[WD]], %[[SCALE]]) {floats = array<f64: 9.000000e-01, 0.94999999999999996, 1.000000e-08>, ints = array<i64: 8, 0>}
// CHECK-NEXT: llmrt.kernel "adamw"(%[[LNB]], %[[DLNB]], %[[M_LNB]], %[[V_LNB]], %[[LR]], %[[STEP]], %[[WD]], %[[SCALE]]) {floats = array<f64: 9.000000e-01, 0.94999999999999996, 1.000000e-08>, ints = array<i64: 8, 0>}
// CHECK-NEXT: llmrt.kernel "adamw"(%[[WQKV]], %[[DWQKV]], %[[M_WQKV]], %[[V_WQKV]], %[[LR]], %[[STEP]], %[[WD]], %[[SCALE]]) {floats = array<f64: 9.000000e-01, 0.94999999999999996, 1.000000e-08>, ints = array<i64: 192, 1>}
// CHECK-NEXT: llmrt.kernel "adamw"(%[[BQKV]], %[[DBQKV]], %[[M_BQKV]], %[[V_BQKV]], %[[LR]], %[[STEP]], %[[WD]], %[[SCALE]]) {floats = array<f64: 9.000000e-01, 0.94999999999999996, 1.000000e-08>, ints = array<i64: 24, 0>}
// CHECK-NEXT: llmrt.kernel "adamw"(%[[WO]], %[[DWO]], %[[M_WO]], %[[V_WO]], %[[LR]], %[[STEP]], %[[WD]], %[[SCALE]]) {floats = array<f64: 9.000000e-01, 0.94999999999999996, 1.000000e-08>, ints = array<i64: 64, 1>}
// CHECK-NEXT: return
//
// @eval: the forward and the loss, on the same persistent buffers.
// CHECK-LABEL: func.func @eval() {
// CHECK-DAG: %[[WTE:.*]] = llmrt.buffer "wte.weight" {init = "normal", init_std = 2.000000e-02 : f64, offset = [[$WTE]] : i64, role = "param"} : memref<16x8xf32>
// CHECK-DAG: %[[WPE:.*]] = llmrt.buffer "wpe.weight" {init = "normal", init_std = 1.000000e-02 : f64, offset = [[$WPE]] : i64, role = "param"}
// CHECK-DAG: %[[LNW:.*]] = llmrt.buffer "ln.weight" {init = "ones", offset = [[$LNW]] : i64, role = "param"}
// CHECK-DAG: %[[LNB:.*]] = llmrt.buffer "ln.bias" {init = "zeros", offset = [[$LNB]] : i64, role = "param"}
// CHECK-DAG: %[[WQKV:.*]] = llmrt.buffer "qkv.weight" {init = "normal", init_std = 2.000000e-02 : f64, offset = [[$WQKV]] : i64, role = "param"}
// CHECK-DAG: %[[BQKV:.*]] = llmrt.buffer "qkv.bias" {init = "zeros", offset = [[$BQKV]] : i64, role = "param"}
// CHECK-DAG: %[[WO:.*]] = llmrt.buffer "proj.weight" {offset = [[$WO]] : i64, role = "param"}
// CHECK-DAG: %[[TOK:.*]] = llmrt.buffer "tokens" {offset = [[$TOK]] : i64, role = "input"}
// CHECK-DAG: %[[TGT:.*]] = llmrt.buffer "targets" {offset = [[$TGT]] : i64, role = "input"}
// The model function's loss is the "eval_loss" output, after grad_norm.
// CHECK-DAG: %[[ELOSS:.*]] = llmrt.buffer "eval_loss" {offset = 6656 : i64, role = "output"} : memref<f32>
// CHECK: %[[E:.*]] = llmrt.buffer "" {offset = [[E_OFF:[0-9]+]] : i64, role = "temp"} : memref<2x4x8xf32>
// CHECK-NEXT: llmrt.kernel "embedding_fwd"(%[[TOK]], %[[WTE]], %[[E]]) {floats = array<f64>, ints = array<i64: 8, 8>}
// CHECK-NEXT: %[[P:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "position_embedding_fwd"(%[[WPE]], %[[P]])
// CHECK-NEXT: %[[X:.*]] = llmrt.buffer "" {offset = [[E_OFF]] : i64, role = "temp"} : memref<2x4x8xf32>
// CHECK-NEXT: llmrt.kernel "add"(%[[E]], %[[P]], %[[X]]) {floats = array<f64>, ints = array<i64: 64, 32>}
// CHECK-NEXT: %[[N:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "layer_norm_fwd"(%[[X]], %[[LNW]], %[[LNB]], %[[N]])
// CHECK-NEXT: %[[QKV:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "linear_fwd"(%[[N]], %[[WQKV]], %[[BQKV]], %[[QKV]]) {floats = array<f64>, ints = array<i64: 8, 8, 24, 0>}
// CHECK-COUNT-3: llmrt.kernel "copy_columns"(%[[QKV]]
// CHECK: llmrt.kernel "attention_fwd"({{.*}}) {floats = array<f64: 5.000000e-01>, ints = array<i64: 2, 4, 2, 2, 4, 1>}
// CHECK-NEXT: %[[O:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "linear_fwd"(%{{.*}}, %[[WO]], %[[O]])
// Without the backward, x dies at the residual add: in place again.
// CHECK-NEXT: %[[R:.*]] = llmrt.buffer "" {offset = [[E_OFF]] : i64, role = "temp"} : memref<2x4x8xf32>
// CHECK-NEXT: llmrt.kernel "add"(%[[X]], %[[O]], %[[R]]) {floats = array<f64>, ints = array<i64: 64, 64>}
// CHECK-NEXT: %[[G:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "gelu_fwd"(%[[R]], %[[G]])
// CHECK-NEXT: %[[L:.*]] = llmrt.buffer
// CHECK-NEXT: llmrt.kernel "linear_fwd"(%[[G]], %[[WTE]], %[[L]]) {floats = array<f64>, ints = array<i64: 8, 8, 16, 1>}
// CHECK-NEXT: llmrt.kernel "cross_entropy_fwd"(%[[L]], %[[TGT]], %[[ELOSS]]) {floats = array<f64>, ints = array<i64: 8, 16>}
// CHECK-NEXT: return
// The llm functions are gone.
// CHECK-NOT: func.func
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

// The smallest model, to pin the whole arena by hand: wte [8, 4] tied with
// the head, B=1 s=2 V=8, no llm.config (so no config in the metadata).
//
// Persistent: wte 8*4*4 = 128, adam_m 128, adam_v 128 (0, 128, 256);
// tokens, targets, lr, step, weight_decay, grad_clip 64 each (384..704);
// loss, grad_norm, eval_loss 64 each (768, 832, 896): 3*128 + 9*64 = 960.
//
// @train ops, numbered, with the live range [def, last use] of each
// temporary (bytes rounded up to 64):
//   0 e   = embedding            [0, 5]  1x2x4 -> 64
//   1 l   = linear e, wte^T      [1, 3]  1x2x8 -> 64
//   2 loss = cross_entropy                 (output)
//   3 dl  = cross_entropy_grad   [3, 5]  64
//   4 de  = linear dl, wte       [4, 6]  64
//   5 dw1 = linear_weight_grad   [5, 7]  8x4 -> 128
//   6 dw2 = embedding_grad       [6, 7]  128
//   7 dw  = add dw1, dw2         in place over dw1 (dies at 7): dw1 now [5, 10]
//   8 grad_norm = global_norm               (output)
//   9 s   = clip_scale           [9, 10] 64
//  10 adamw (updates in place)
// Packing, largest first then in order, lowest free offset among overlapping
// ranges: dw1 0; dw2 128 (overlaps dw1); e 128 (overlaps dw1 only);
// l 0 (overlaps e only); dl 192 (dw1 0-128, e 128-192, l 0-64);
// de 256 (dw1, dw2 128-256, e, dl 192-256); s 128 (overlaps dw1 only).
// Train temporaries: 320 bytes. @eval: e [0, 1] at 0, l [1, 2] at 64: 128.
// Arena = 960 + max(320, 128) = 1280. Temporaries are at 960 + offset.

// CHECK: module attributes {llmrt.arena_bytes = 1280 : i64, llmrt.metadata = {dp = 1 : i64, flops_per_step = 3.840000e+02 : f64, params = 32 : i64, tokens_per_step = 2 : i64, tp = 1 : i64, world = 1 : i64}, llmrt.persistent_bytes = 960 : i64}
// CHECK-LABEL: func.func @train() {
// CHECK-DAG: llmrt.buffer "wte" {init = "normal", init_std = 5.000000e-01 : f64, offset = 0 : i64, role = "param"} : memref<8x4xf32>
// CHECK-DAG: llmrt.buffer "wte" {offset = 128 : i64, role = "adam_m"} : memref<8x4xf32>
// CHECK-DAG: llmrt.buffer "wte" {offset = 256 : i64, role = "adam_v"} : memref<8x4xf32>
// CHECK-DAG: llmrt.buffer "tokens" {offset = 384 : i64, role = "input"} : memref<1x2xi32>
// CHECK-DAG: llmrt.buffer "targets" {offset = 448 : i64, role = "input"} : memref<1x2xi32>
// CHECK-DAG: llmrt.buffer "lr" {offset = 512 : i64, role = "input"} : memref<f32>
// CHECK-DAG: llmrt.buffer "step" {offset = 576 : i64, role = "input"} : memref<i64>
// CHECK-DAG: llmrt.buffer "weight_decay" {offset = 640 : i64, role = "input"} : memref<f32>
// CHECK-DAG: llmrt.buffer "grad_clip" {offset = 704 : i64, role = "input"} : memref<f32>
// CHECK-DAG: llmrt.buffer "loss" {offset = 768 : i64, role = "output"} : memref<f32>
// CHECK-DAG: llmrt.buffer "grad_norm" {offset = 832 : i64, role = "output"} : memref<f32>
// e at 960 + 128.
// CHECK: llmrt.buffer "" {offset = 1088 : i64, role = "temp"} : memref<1x2x4xf32>
// CHECK-NEXT: llmrt.kernel "embedding_fwd"({{.*}}) {floats = array<f64>, ints = array<i64: 2, 4>}
// CHECK-NEXT: llmrt.buffer "" {offset = 960 : i64, role = "temp"} : memref<1x2x8xf32>
// CHECK-NEXT: llmrt.kernel "linear_fwd"({{.*}}) {floats = array<f64>, ints = array<i64: 2, 4, 8, 1>}
// CHECK-NEXT: llmrt.kernel "cross_entropy_fwd"({{.*}}) {floats = array<f64>, ints = array<i64: 2, 8>}
// CHECK-NEXT: llmrt.buffer "" {offset = 1152 : i64, role = "temp"} : memref<1x2x8xf32>
// CHECK-NEXT: llmrt.kernel "cross_entropy_bwd"
// CHECK-NEXT: llmrt.buffer "" {offset = 1216 : i64, role = "temp"} : memref<1x2x4xf32>
// CHECK-NEXT: llmrt.kernel "linear_fwd"({{.*}}) {floats = array<f64>, ints = array<i64: 2, 8, 4, 0>}
// CHECK-NEXT: llmrt.buffer "" {offset = 960 : i64, role = "temp"} : memref<8x4xf32>
// CHECK-NEXT: llmrt.kernel "linear_bwd_weight"({{.*}}) {floats = array<f64>, ints = array<i64: 2, 4, 8, 1>}
// CHECK-NEXT: llmrt.buffer "" {offset = 1088 : i64, role = "temp"} : memref<8x4xf32>
// CHECK-NEXT: llmrt.kernel "embedding_bwd"({{.*}}) {floats = array<f64>, ints = array<i64: 2, 8, 4>}
// CHECK-NEXT: llmrt.buffer "" {offset = 960 : i64, role = "temp"} : memref<8x4xf32>
// CHECK-NEXT: llmrt.kernel "add"({{.*}}) {floats = array<f64>, ints = array<i64: 32, 32>}
// CHECK-NEXT: llmrt.kernel "global_norm"
// CHECK-NEXT: llmrt.buffer "" {offset = 1088 : i64, role = "temp"} : memref<f32>
// CHECK-NEXT: llmrt.kernel "clip_scale"
// CHECK-NEXT: llmrt.kernel "adamw"({{.*}}) {floats = array<f64: 9.000000e-01, 0.94999999999999996, 1.000000e-08>, ints = array<i64: 32, 1>}
// CHECK-NEXT: return
// CHECK-LABEL: func.func @eval() {
// CHECK-DAG: llmrt.buffer "eval_loss" {offset = 896 : i64, role = "output"} : memref<f32>
// CHECK-DAG: llmrt.buffer "wte" {init = "normal", init_std = 5.000000e-01 : f64, offset = 0 : i64, role = "param"}
// CHECK: llmrt.buffer "" {offset = 960 : i64, role = "temp"} : memref<1x2x4xf32>
// CHECK-NEXT: llmrt.kernel "embedding_fwd"
// CHECK-NEXT: llmrt.buffer "" {offset = 1024 : i64, role = "temp"} : memref<1x2x8xf32>
// CHECK-NEXT: llmrt.kernel "linear_fwd"
// CHECK-NEXT: llmrt.kernel "cross_entropy_fwd"
// CHECK-NEXT: return
func.func @forward(%wte: tensor<8x4xf32> {llm.param = "wte", llm.init = "normal", llm.init_std = 0.5 : f64},
                   %ids: tensor<1x2xi32> {llm.input = "tokens"},
                   %tgt: tensor<1x2xi32> {llm.input = "targets"}) -> tensor<f32> {
  %e = llm.embedding %ids, %wte : tensor<1x2xi32>, tensor<8x4xf32> -> tensor<1x2x4xf32>
  %l = llm.linear %e, %wte {transpose_weight} : tensor<1x2x4xf32>, tensor<8x4xf32> -> tensor<1x2x8xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<1x2x8xf32>, tensor<1x2xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Llama-style kernels: rms_norm, rope, grouped-query attention, SwiGLU and a
// broadcast mul. B=1 s=4 h=8, 2 query heads and 1 key/value head (D=4),
// ffn 16, V=16, untied head, rms eps 1e-6 (printed as the nearest double).
//
// Persistent: params embed 512, norm 32->64, q 8*8*4 = 256, k 4*8*4 = 128,
// v 128, gate 16*8*4 = 512, up 512, down 512, gain 64, head 512: 3200;
// times 3 with the moments = 9600; 6 inputs * 64 = 384 (tokens 1*4*4 = 16
// -> 64); 3 outputs * 64 = 192: 9600 + 384 + 192 = 10176.
// Metadata: params 128+8+64+32+32+128+128+128+8+128 = 784; forward matmul
// FLOPs q 2*4*8*8 = 512, k 2*4*8*4 = 256, v 256, attention 4*1*16*8 = 512,
// gate, up, down, head 2*4*8*16 = 1024 each: 5632, times 3 = 16896; 4 tokens.

// CHECK: module attributes {llmrt.arena_bytes = {{[0-9]+}} : i64, llmrt.metadata = {dp = 1 : i64, flops_per_step = 1.689600e+04 : f64, params = 784 : i64, tokens_per_step = 4 : i64, tp = 1 : i64, world = 1 : i64}, llmrt.persistent_bytes = 10176 : i64}
// CHECK-LABEL: func.func @train() {
// rms_norm_fwd {rows, C} (eps).
// CHECK: llmrt.kernel "rms_norm_fwd"({{.*}}) {floats = array<f64: 9.9999999999999995E-7>, ints = array<i64: 4, 8>}
// CHECK: llmrt.kernel "linear_fwd"({{.*}}) {floats = array<f64>, ints = array<i64: 4, 8, 8, 1>}
// CHECK: llmrt.kernel "linear_fwd"({{.*}}) {floats = array<f64>, ints = array<i64: 4, 8, 4, 1>}
// CHECK: llmrt.kernel "linear_fwd"({{.*}}) {floats = array<f64>, ints = array<i64: 4, 8, 4, 1>}
// rope {B, S, H, D, inverse} (theta).
// CHECK: llmrt.kernel "rope"({{.*}}) {floats = array<f64: 1.000000e+04>, ints = array<i64: 1, 4, 2, 4, 0>}
// CHECK: llmrt.kernel "rope"({{.*}}) {floats = array<f64: 1.000000e+04>, ints = array<i64: 1, 4, 1, 4, 0>}
// GQA: Hq = 2, Hkv = 1, scale 1/sqrt(4).
// CHECK: llmrt.kernel "attention_fwd"({{.*}}) {floats = array<f64: 5.000000e-01>, ints = array<i64: 1, 4, 2, 1, 4, 1>}
// CHECK: llmrt.kernel "add"({{.*}}) {floats = array<f64>, ints = array<i64: 32, 32>}
// CHECK: llmrt.kernel "silu_fwd"({{.*}}) {floats = array<f64>, ints = array<i64: 64>}
// CHECK: llmrt.kernel "mul"({{.*}}) {floats = array<f64>, ints = array<i64: 64, 64>}
// CHECK: llmrt.kernel "linear_fwd"({{.*}}) {floats = array<f64>, ints = array<i64: 4, 16, 8, 1>}
// The gain broadcast: n = 32, nb = 8.
// CHECK: llmrt.kernel "mul"({{.*}}) {floats = array<f64>, ints = array<i64: 32, 8>}
// CHECK: llmrt.kernel "cross_entropy_fwd"({{.*}}) {floats = array<f64>, ints = array<i64: 4, 16>}
// CHECK: llmrt.kernel "cross_entropy_bwd"
// The gain's gradient: mul by the broadcast gain, mul by d, then sum_rows
// {32/8, 8} = {4, 8}.
// CHECK: llmrt.kernel "mul"({{.*}}) {floats = array<f64>, ints = array<i64: 32, 8>}
// CHECK-NEXT: %[[DG:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<1x4x8xf32>
// CHECK-NEXT: llmrt.kernel "mul"({{.*}}, %[[DG]]) {floats = array<f64>, ints = array<i64: 32, 32>}
// CHECK-NEXT: %[[DGAIN:.*]] = llmrt.buffer "" {offset = {{[0-9]+}} : i64, role = "temp"} : memref<8xf32>
// CHECK-NEXT: llmrt.kernel "sum_rows"(%[[DG]], %[[DGAIN]]) {floats = array<f64>, ints = array<i64: 4, 8>}
// silu_bwd writes over dy (the product's gradient, dead after it).
// CHECK: llmrt.kernel "linear_bwd_weight"({{.*}}) {floats = array<f64>, ints = array<i64: 4, 16, 8, 1>}
// CHECK-NEXT: %[[DS:.*]] = llmrt.buffer "" {offset = [[DS_OFF:[0-9]+]] : i64, role = "temp"} : memref<1x4x16xf32>
// CHECK-NEXT: llmrt.kernel "mul"({{.*}}, %[[DS]]) {floats = array<f64>, ints = array<i64: 64, 64>}
// CHECK: %[[DGATE:.*]] = llmrt.buffer "" {offset = [[DS_OFF]] : i64, role = "temp"} : memref<1x4x16xf32>
// CHECK-NEXT: llmrt.kernel "silu_bwd"(%{{.*}}, %[[DS]], %[[DGATE]]) {floats = array<f64>, ints = array<i64: 64>}
// CHECK: llmrt.kernel "attention_bwd"({{.*}}) {floats = array<f64: 5.000000e-01>, ints = array<i64: 1, 4, 2, 1, 4, 1>}
// The inverse rotations, k then q.
// CHECK-NEXT: llmrt.buffer
// CHECK-NEXT: llmrt.kernel "rope"({{.*}}) {floats = array<f64: 1.000000e+04>, ints = array<i64: 1, 4, 1, 4, 1>}
// CHECK-NEXT: llmrt.buffer
// CHECK-NEXT: llmrt.kernel "rope"({{.*}}) {floats = array<f64: 1.000000e+04>, ints = array<i64: 1, 4, 2, 4, 1>}
// The k and v input gradients read [4, 8] weights as [in, out]: {4, 4, 8, 0}.
// CHECK-NEXT: llmrt.buffer
// CHECK-NEXT: llmrt.kernel "linear_fwd"({{.*}}) {floats = array<f64>, ints = array<i64: 4, 4, 8, 0>}
// CHECK: llmrt.kernel "rms_norm_bwd"({{.*}}) {floats = array<f64: 9.9999999999999995E-7>, ints = array<i64: 4, 8>}
// CHECK: llmrt.kernel "embedding_bwd"({{.*}}) {floats = array<f64>, ints = array<i64: 4, 16, 8>}
// Ten parameters, ten updates.
// CHECK-COUNT-10: llmrt.kernel "adamw"
// CHECK-NEXT: return
// CHECK-LABEL: func.func @eval() {
// CHECK-NOT: _bwd
// CHECK-NOT: adamw
// CHECK: llmrt.kernel "attention_fwd"({{.*}}) {floats = array<f64: 5.000000e-01>, ints = array<i64: 1, 4, 2, 1, 4, 1>}
// CHECK-NOT: _bwd
// CHECK: llmrt.kernel "cross_entropy_fwd"
// CHECK-NEXT: return
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "embed.weight"},
                   %nw: tensor<8xf32> {llm.param = "norm.weight"},
                   %wq: tensor<8x8xf32> {llm.param = "q.weight"},
                   %wk: tensor<4x8xf32> {llm.param = "k.weight"},
                   %wv: tensor<4x8xf32> {llm.param = "v.weight"},
                   %wg: tensor<16x8xf32> {llm.param = "gate.weight"},
                   %wu: tensor<16x8xf32> {llm.param = "up.weight"},
                   %wd: tensor<8x16xf32> {llm.param = "down.weight"},
                   %gain: tensor<8xf32> {llm.param = "gain"},
                   %wh: tensor<16x8xf32> {llm.param = "lm_head.weight"},
                   %ids: tensor<1x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<1x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %x = llm.embedding %ids, %wte : tensor<1x4xi32>, tensor<16x8xf32> -> tensor<1x4x8xf32>
  %h = llm.rms_norm %x, %nw {epsilon = 1.0e-06 : f64} : tensor<1x4x8xf32>, tensor<8xf32> -> tensor<1x4x8xf32>
  %q = llm.linear %h, %wq {transpose_weight} : tensor<1x4x8xf32>, tensor<8x8xf32> -> tensor<1x4x8xf32>
  %k = llm.linear %h, %wk {transpose_weight} : tensor<1x4x8xf32>, tensor<4x8xf32> -> tensor<1x4x4xf32>
  %v = llm.linear %h, %wv {transpose_weight} : tensor<1x4x8xf32>, tensor<4x8xf32> -> tensor<1x4x4xf32>
  %qr = llm.rope %q {num_heads = 2 : i64, theta = 1.0e+04 : f64} : tensor<1x4x8xf32> -> tensor<1x4x8xf32>
  %kr = llm.rope %k {num_heads = 1 : i64, theta = 1.0e+04 : f64} : tensor<1x4x4xf32> -> tensor<1x4x4xf32>
  %a = llm.attention %qr, %kr, %v {num_heads = 2 : i64, num_kv_heads = 1 : i64, causal} : tensor<1x4x8xf32>, tensor<1x4x4xf32>, tensor<1x4x4xf32> -> tensor<1x4x8xf32>
  %r = llm.add %x, %a : tensor<1x4x8xf32>, tensor<1x4x8xf32>
  %gt = llm.linear %r, %wg {transpose_weight} : tensor<1x4x8xf32>, tensor<16x8xf32> -> tensor<1x4x16xf32>
  %s = llm.silu %gt : tensor<1x4x16xf32>
  %up = llm.linear %r, %wu {transpose_weight} : tensor<1x4x8xf32>, tensor<16x8xf32> -> tensor<1x4x16xf32>
  %m = llm.mul %s, %up : tensor<1x4x16xf32>, tensor<1x4x16xf32>
  %d = llm.linear %m, %wd {transpose_weight} : tensor<1x4x16xf32>, tensor<8x16xf32> -> tensor<1x4x8xf32>
  %sc = llm.mul %d, %gain : tensor<1x4x8xf32>, tensor<8xf32>
  %l = llm.linear %sc, %wh {transpose_weight} : tensor<1x4x8xf32>, tensor<16x8xf32> -> tensor<1x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<1x4x16xf32>, tensor<1x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
