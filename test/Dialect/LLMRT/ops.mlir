// RUN: llm-opt %s | llm-opt | FileCheck %s
// RUN: llm-opt %s --mlir-print-op-generic | llm-opt | FileCheck %s
// Round trip of llmrt.buffer and llmrt.kernel (dialects/llmrt/LLMRTOps.td).

// CHECK-LABEL: func.func @buffers()
// CHECK: %[[W:.*]] = llmrt.buffer "h.0.attn.c_attn.weight" {init = "normal", init_std = 2.000000e-02 : f64, offset = 0 : i64, role = "param"} : memref<8x24xf32>
// CHECK: %[[G:.*]] = llmrt.buffer "ln.weight" {init = "ones", offset = 768 : i64, role = "param"} : memref<8xf32>
// CHECK: %[[B:.*]] = llmrt.buffer "ln.bias" {init = "zeros", offset = 832 : i64, role = "param"} : memref<8xf32>
// CHECK: %[[NI:.*]] = llmrt.buffer "no.init" {offset = 896 : i64, role = "param"} : memref<8xf32>
// CHECK: %[[M:.*]] = llmrt.buffer "h.0.attn.c_attn.weight" {offset = 960 : i64, role = "adam_m"} : memref<8x24xf32>
// CHECK: %[[V:.*]] = llmrt.buffer "h.0.attn.c_attn.weight" {offset = 1728 : i64, role = "adam_v"} : memref<8x24xf32>
// CHECK: %[[T:.*]] = llmrt.buffer "tokens" {offset = 2496 : i64, role = "input"} : memref<2x4xi32>
// CHECK: %[[S:.*]] = llmrt.buffer "step" {offset = 2560 : i64, role = "input"} : memref<i64>
// CHECK: %[[L:.*]] = llmrt.buffer "loss" {offset = 2624 : i64, role = "output"} : memref<f32>
// CHECK: %[[X:.*]] = llmrt.buffer "" {offset = 2688 : i64, role = "temp"} : memref<2x4x8xbf16>
// CHECK: return
func.func @buffers() {
  %w = llmrt.buffer "h.0.attn.c_attn.weight" {role = "param", offset = 0 : i64, init = "normal", init_std = 2.0e-02 : f64} : memref<8x24xf32>
  %g = llmrt.buffer "ln.weight" {role = "param", offset = 768 : i64, init = "ones"} : memref<8xf32>
  %b = llmrt.buffer "ln.bias" {role = "param", offset = 832 : i64, init = "zeros"} : memref<8xf32>
  %n = llmrt.buffer "no.init" {role = "param", offset = 896 : i64} : memref<8xf32>
  %m = llmrt.buffer "h.0.attn.c_attn.weight" {role = "adam_m", offset = 960 : i64} : memref<8x24xf32>
  %v = llmrt.buffer "h.0.attn.c_attn.weight" {role = "adam_v", offset = 1728 : i64} : memref<8x24xf32>
  %t = llmrt.buffer "tokens" {role = "input", offset = 2496 : i64} : memref<2x4xi32>
  %s = llmrt.buffer "step" {role = "input", offset = 2560 : i64} : memref<i64>
  %l = llmrt.buffer "loss" {role = "output", offset = 2624 : i64} : memref<f32>
  %x = llmrt.buffer "" {role = "temp", offset = 2688 : i64} : memref<2x4x8xbf16>
  return
}

// CHECK-LABEL: func.func @kernels()
// CHECK: %[[X:.*]] = llmrt.buffer "x"
// CHECK: %[[W:.*]] = llmrt.buffer "w"
// CHECK: %[[B:.*]] = llmrt.buffer "b"
// CHECK: %[[Y:.*]] = llmrt.buffer "y"
// CHECK: %[[N:.*]] = llmrt.buffer "n"
// CHECK: llmrt.kernel "linear_fwd"(%[[X]], %[[W]], %[[Y]]) {floats = array<f64>, ints = array<i64: 8, 8, 24, 0>} : memref<2x4x8xf32>, memref<8x24xf32>, memref<2x4x24xf32>
// CHECK: llmrt.kernel "linear_fwd"(%[[X]], %[[W]], %[[B]], %[[Y]]) {floats = array<f64>, ints = array<i64: 8, 8, 24, 0>} : memref<2x4x8xf32>, memref<8x24xf32>, memref<24xf32>, memref<2x4x24xf32>
// CHECK: llmrt.kernel "layer_norm_fwd"(%[[X]], %[[B]], %[[B]], %[[X]]) {floats = array<f64: 1.000000e-05>, ints = array<i64: 8, 8>}
// CHECK: llmrt.kernel "global_norm"(%[[N]], %[[W]]) {floats = array<f64>, ints = array<i64>} : memref<f32>, memref<8x24xf32>
// CHECK: llmrt.kernel "global_norm"(%[[N]], %[[W]], %[[B]], %[[X]]) {floats = array<f64>, ints = array<i64>} : memref<f32>, memref<8x24xf32>, memref<24xf32>, memref<2x4x8xf32>
// CHECK: llmrt.kernel "adamw"(%[[W]], %[[W]], %[[W]], %[[W]], %[[N]], %[[N]], %[[N]], %[[N]]) {floats = array<f64: 9.000000e-01, 0.94999999999999996, 1.000000e-08>, ints = array<i64: 192, 1>}
// CHECK: return
func.func @kernels() {
  %x = llmrt.buffer "x" {role = "temp", offset = 0 : i64} : memref<2x4x8xf32>
  %w = llmrt.buffer "w" {role = "param", offset = 128 : i64} : memref<8x24xf32>
  %b = llmrt.buffer "b" {role = "param", offset = 896 : i64} : memref<24xf32>
  %y = llmrt.buffer "y" {role = "temp", offset = 1024 : i64} : memref<2x4x24xf32>
  %n = llmrt.buffer "n" {role = "temp", offset = 1792 : i64} : memref<f32>
  llmrt.kernel "linear_fwd"(%x, %w, %y) {ints = array<i64: 8, 8, 24, 0>, floats = array<f64>}
      : memref<2x4x8xf32>, memref<8x24xf32>, memref<2x4x24xf32>
  llmrt.kernel "linear_fwd"(%x, %w, %b, %y) {ints = array<i64: 8, 8, 24, 0>, floats = array<f64>}
      : memref<2x4x8xf32>, memref<8x24xf32>, memref<24xf32>, memref<2x4x24xf32>
  llmrt.kernel "layer_norm_fwd"(%x, %b, %b, %x) {ints = array<i64: 8, 8>, floats = array<f64: 1.0e-05>}
      : memref<2x4x8xf32>, memref<24xf32>, memref<24xf32>, memref<2x4x8xf32>
  llmrt.kernel "global_norm"(%n, %w) {ints = array<i64>, floats = array<f64>} : memref<f32>, memref<8x24xf32>
  llmrt.kernel "global_norm"(%n, %w, %b, %x) {ints = array<i64>, floats = array<f64>}
      : memref<f32>, memref<8x24xf32>, memref<24xf32>, memref<2x4x8xf32>
  llmrt.kernel "adamw"(%w, %w, %w, %w, %n, %n, %n, %n) {ints = array<i64: 192, 1>, floats = array<f64: 0.9, 0.95, 1.0e-08>}
      : memref<8x24xf32>, memref<8x24xf32>, memref<8x24xf32>, memref<8x24xf32>, memref<f32>, memref<f32>, memref<f32>, memref<f32>
  return
}
