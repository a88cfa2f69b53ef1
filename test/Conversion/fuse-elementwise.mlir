// RUN: llm-opt %s --llm-fuse-elementwise -split-input-file | FileCheck %s
// RUN: llm-opt %s --llm-fuse-elementwise=gpu=true -split-input-file | FileCheck %s --check-prefix=GPU
//
// Fusion groups of elementwise kernels on arena views. The ints of a
// fused_elementwise are [n, kernel, inputs I, outputs O, nb x I, micro-ops M,
// M x (op, a, b), O x value] with ops 1 add, 2 mul, 3 gelu, 4 gelu_bwd,
// 5 silu, 6 silu_bwd; values 0..I-1 are the inputs, I + k micro-op k.

// SwiGLU forward and a consumer of both its values: silu moves past the
// unrelated linear to its mul, and gelu_bwd (which reads s and h) joins the
// group, reading both as values, not from memory; s and h, read by nothing
// else, are never written.
// CHECK-LABEL: func.func @swiglu
// CHECK: %[[G:.*]] = llmrt.buffer "" {offset = 256
// CHECK-NEXT: %[[S:.*]] = llmrt.buffer "" {offset = 512
// CHECK-NEXT: %[[U:.*]] = llmrt.buffer "" {offset = 768
// CHECK: %[[D:.*]] = llmrt.buffer "" {offset = 1280
// CHECK-NEXT: llmrt.kernel "linear_fwd"
// CHECK-NEXT: llmrt.kernel "fused_elementwise"(%[[G]], %[[U]], %[[D]]) {floats = array<f64>, ints = array<i64: 64, -1, 2, 1, 64, 64, 3, 5, 0, -1, 2, 2, 1, 4, 2, 3, 4>}
// CHECK-NEXT: return
// GPU-LABEL: gpu.module @llm_kernels
// GPU: gpu.func @fused_0(%{{.*}}: memref<64xf32>, %{{.*}}: memref<64xf32>, %{{.*}}: memref<64xf32>) kernel
// GPU: scf.for
// GPU-COUNT-2: memref.load
// GPU: math.exp
// GPU: arith.mulf
// GPU: memref.store
// GPU-NEXT: }
// GPU: llm.gpu_entries = ["fused_0"]
// GPU: ints = array<i64: 64, 0, 2, 1,
module attributes {llmrt.arena_bytes = 32768 : i64} {
  func.func @swiglu() {
    %x = llmrt.buffer "" {offset = 0 : i64, role = "temp"} : memref<64xf32>
    %w = llmrt.buffer "w" {offset = 4096 : i64, role = "param"} : memref<64x64xf32>
    %g = llmrt.buffer "" {offset = 256 : i64, role = "temp"} : memref<64xf32>
    %s = llmrt.buffer "" {offset = 512 : i64, role = "temp"} : memref<64xf32>
    %u = llmrt.buffer "" {offset = 768 : i64, role = "temp"} : memref<64xf32>
    %h = llmrt.buffer "" {offset = 1024 : i64, role = "temp"} : memref<64xf32>
    %d = llmrt.buffer "" {offset = 1280 : i64, role = "temp"} : memref<64xf32>
    llmrt.kernel "silu_fwd"(%g, %s) {ints = array<i64: 64>, floats = array<f64>} : memref<64xf32>, memref<64xf32>
    llmrt.kernel "linear_fwd"(%x, %w, %u) {ints = array<i64: 1, 64, 64, 0>, floats = array<f64>} : memref<64xf32>, memref<64x64xf32>, memref<64xf32>
    llmrt.kernel "mul"(%s, %u, %h) {ints = array<i64: 64, 64>, floats = array<f64>} : memref<64xf32>, memref<64xf32>, memref<64xf32>
    llmrt.kernel "gelu_bwd"(%s, %h, %d) {ints = array<i64: 64>, floats = array<f64>} : memref<64xf32>, memref<64xf32>, memref<64xf32>
    return
  }
}

// -----

// A chain whose intermediates nothing else reads: add -> gelu -> mul is one
// kernel writing only the last output (the bias is read at e % 16).
// CHECK-LABEL: func.func @chain
// CHECK-NEXT: llmrt.buffer
// CHECK: llmrt.kernel "fused_elementwise"(%[[A:.*]], %[[B:.*]], %[[C:.*]], %[[Y:.*]]) {floats = array<f64>, ints = array<i64: 64, -1, 3, 1, 64, 16, 64, 3, 1, 0, 1, 3, 3, -1, 2, 4, 2, 5>}
// CHECK-NEXT: return
module attributes {llmrt.arena_bytes = 4096 : i64} {
  func.func @chain() {
    %a = llmrt.buffer "" {offset = 0 : i64, role = "temp"} : memref<64xf32>
    %b = llmrt.buffer "bias" {offset = 256 : i64, role = "param"} : memref<16xf32>
    %t1 = llmrt.buffer "" {offset = 320 : i64, role = "temp"} : memref<64xf32>
    %t2 = llmrt.buffer "" {offset = 576 : i64, role = "temp"} : memref<64xf32>
    %c = llmrt.buffer "" {offset = 832 : i64, role = "temp"} : memref<64xf32>
    %y = llmrt.buffer "" {offset = 1088 : i64, role = "temp"} : memref<64xf32>
    llmrt.kernel "add"(%a, %b, %t1) {ints = array<i64: 64, 16>, floats = array<f64>} : memref<64xf32>, memref<16xf32>, memref<64xf32>
    llmrt.kernel "gelu_fwd"(%t1, %t2) {ints = array<i64: 64>, floats = array<f64>} : memref<64xf32>, memref<64xf32>
    llmrt.kernel "mul"(%t2, %c, %y) {ints = array<i64: 64, 64>, floats = array<f64>} : memref<64xf32>, memref<64xf32>, memref<64xf32>
    return
  }
}

// -----

// Not fused: the kernel between them overwrites the producer's input (the
// arena bytes of %g), so silu cannot move down; a producer read through a
// broadcast (mul reads %t at e % 16) computes another size; and gelu may
// not join a group that writes %x, its output being %x's bytes shifted by
// 16 elements (mul and add still fuse: %q dies there).
// CHECK-LABEL: func.func @illegal
// CHECK: "silu_fwd"
// CHECK-NEXT: "linear_fwd"
// CHECK-NEXT: "mul"
// CHECK-NEXT: "add"
// CHECK-NEXT: "fused_elementwise"(%{{.*}}, %{{.*}}, %{{.*}}) {floats = array<f64>, ints = array<i64: 64, -1, 2, 1, 64, 16, 2, 2, 0, 1, 1, 2, 2, 3>}
// CHECK-NEXT: "gelu_fwd"
module attributes {llmrt.arena_bytes = 32768 : i64} {
  func.func @illegal() {
    %x = llmrt.buffer "" {offset = 0 : i64, role = "temp"} : memref<64xf32>
    %w = llmrt.buffer "w" {offset = 4096 : i64, role = "param"} : memref<64x64xf32>
    %g = llmrt.buffer "" {offset = 2048 : i64, role = "temp"} : memref<64xf32>
    %s = llmrt.buffer "" {offset = 2304 : i64, role = "temp"} : memref<64xf32>
    %u = llmrt.buffer "" {offset = 2048 : i64, role = "temp"} : memref<64xf32>
    %h = llmrt.buffer "" {offset = 2816 : i64, role = "temp"} : memref<64xf32>
    %t = llmrt.buffer "" {offset = 3072 : i64, role = "temp"} : memref<16xf32>
    %q = llmrt.buffer "" {offset = 3136 : i64, role = "temp"} : memref<64xf32>
    %v = llmrt.buffer "" {offset = 64 : i64, role = "temp"} : memref<64xf32>
    llmrt.kernel "silu_fwd"(%g, %s) {ints = array<i64: 64>, floats = array<f64>} : memref<64xf32>, memref<64xf32>
    llmrt.kernel "linear_fwd"(%x, %w, %u) {ints = array<i64: 1, 64, 64, 0>, floats = array<f64>} : memref<64xf32>, memref<64x64xf32>, memref<64xf32>
    llmrt.kernel "mul"(%s, %u, %h) {ints = array<i64: 64, 64>, floats = array<f64>} : memref<64xf32>, memref<64xf32>, memref<64xf32>
    llmrt.kernel "add"(%x, %x, %t) {ints = array<i64: 16, 16>, floats = array<f64>} : memref<64xf32>, memref<64xf32>, memref<16xf32>
    llmrt.kernel "mul"(%u, %t, %q) {ints = array<i64: 64, 16>, floats = array<f64>} : memref<64xf32>, memref<16xf32>, memref<64xf32>
    llmrt.kernel "add"(%q, %q, %x) {ints = array<i64: 64, 64>, floats = array<f64>} : memref<64xf32>, memref<64xf32>, memref<64xf32>
    llmrt.kernel "gelu_fwd"(%x, %v) {ints = array<i64: 64>, floats = array<f64>} : memref<64xf32>, memref<64xf32>
    return
  }
}
