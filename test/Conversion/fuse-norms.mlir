// RUN: llm-opt %s --llm-fuse-elementwise=norms=true -split-input-file | FileCheck %s
// RUN: llm-opt %s "--llm-fuse-elementwise=norms=true gpu=true" -split-input-file | FileCheck %s --check-prefix=GPU
// RUN: llm-opt %s --llm-fuse-elementwise -split-input-file | FileCheck %s --check-prefix=OFF
//
// Fusion groups that end in a norm (fused_norm): a residual add and the
// layer or RMS norm after it. The ints are [kind (1 layer, 2 RMS), rows, C,
// x (the value normalized), w, b (input indices), then the prologue's
// fused_elementwise encoding: n, kernel, I, O, nb x I, M, M x (op, a, b),
// O x value]; the operands are the inputs, the prologue's outputs, then y.

// GPT-2's block: x1 = x + proj, h = layer_norm(x1); x1 stays (the next
// residual add reads it), the norm's weight and bias join as C-element
// inputs. The second add and the final norm are the same program: one
// generated kernel for both. C = 32: the kernel's passes are unrolled (x
// in registers), no loop.
// CHECK-LABEL: func.func @residual
// CHECK: %[[X:.*]] = llmrt.buffer "" {offset = 0
// CHECK-NEXT: %[[P:.*]] = llmrt.buffer "" {offset = 512
// CHECK-NEXT: %[[W:.*]] = llmrt.buffer "ln.w"
// CHECK-NEXT: %[[B:.*]] = llmrt.buffer "ln.b"
// CHECK-NEXT: %[[X1:.*]] = llmrt.buffer "" {offset = 1024
// CHECK-NEXT: %[[H:.*]] = llmrt.buffer "" {offset = 1536
// CHECK: llmrt.kernel "fused_norm"(%[[X]], %[[P]], %[[W]], %[[B]], %[[X1]], %[[H]]) {floats = array<f64: 1.000000e-05>, ints = array<i64: 1, 4, 32, 4, 2, 3, 128, -1, 4, 1, 128, 128, 32, 32, 1, 1, 0, 1, 4>}
// CHECK-NEXT: llmrt.kernel "linear_fwd"
// CHECK-NEXT: llmrt.kernel "fused_norm"
// CHECK-NEXT: return
// OFF-LABEL: func.func @residual
// OFF: llmrt.kernel "add"
// OFF-NEXT: llmrt.kernel "layer_norm_fwd"
// GPU: llm.gpu_entries = ["fused_norm_0"]
// GPU-LABEL: func.func @residual
// GPU: ints = array<i64: 1, 4, 32, 4, 2, 3, 128, 0,
// GPU: ints = array<i64: 1, 4, 32, 4, 2, 3, 128, 0,
// GPU: gpu.module @llm_kernels
// GPU: gpu.func @fused_norm_0(%{{.*}}: memref<512xi8>, %{{.*}}: memref<512xi8>, %{{.*}}: memref<128xi8>, %{{.*}}: memref<128xi8>, %{{.*}}: memref<512xi8>, %{{.*}}: memref<512xi8>, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: i32, %{{.*}}: i32) kernel attributes {known_block_size = array<i32: 128, 1, 1>}
// GPU: memref.view %{{.*}} : memref<512xi8> to memref<128xbf16>
// GPU-NOT: scf.for
// GPU: arith.extf %{{.*}} : bf16 to f32
// GPU: arith.addf
// GPU: arith.truncf %{{.*}} : f32 to f16
// GPU-COUNT-5: gpu.shuffle  xor
// GPU-COUNT-5: gpu.shuffle  xor
// GPU: math.rsqrt
// GPU-NOT: scf.for
// GPU-NOT: gpu.func
// GPU: // -----
module attributes {llmrt.arena_bytes = 8192 : i64} {
  func.func @residual() {
    %x = llmrt.buffer "" {offset = 0 : i64, role = "temp"} : memref<4x32xf32>
    %p = llmrt.buffer "" {offset = 512 : i64, role = "temp"} : memref<4x32xf32>
    %w = llmrt.buffer "ln.w" {offset = 4096 : i64, role = "param"} : memref<32xf32>
    %b = llmrt.buffer "ln.b" {offset = 4224 : i64, role = "param"} : memref<32xf32>
    %x1 = llmrt.buffer "" {offset = 1024 : i64, role = "temp"} : memref<4x32xf32>
    %h = llmrt.buffer "" {offset = 1536 : i64, role = "temp"} : memref<4x32xf32>
    %m = llmrt.buffer "" {offset = 2048 : i64, role = "temp"} : memref<4x32xf32>
    %fw = llmrt.buffer "fc.w" {offset = 4352 : i64, role = "param"} : memref<32x32xf32>
    %x2 = llmrt.buffer "" {offset = 2560 : i64, role = "temp"} : memref<4x32xf32>
    %o = llmrt.buffer "" {offset = 3072 : i64, role = "temp"} : memref<4x32xf32>
    llmrt.kernel "add"(%x, %p, %x1) {ints = array<i64: 128, 128>, floats = array<f64>} : memref<4x32xf32>, memref<4x32xf32>, memref<4x32xf32>
    llmrt.kernel "layer_norm_fwd"(%x1, %w, %b, %h) {ints = array<i64: 4, 32>, floats = array<f64: 1.0e-05>} : memref<4x32xf32>, memref<32xf32>, memref<32xf32>, memref<4x32xf32>
    llmrt.kernel "linear_fwd"(%h, %fw, %m) {ints = array<i64: 4, 32, 32, 0>, floats = array<f64>} : memref<4x32xf32>, memref<32x32xf32>, memref<4x32xf32>
    llmrt.kernel "add"(%x1, %m, %x2) {ints = array<i64: 128, 128>, floats = array<f64>} : memref<4x32xf32>, memref<4x32xf32>, memref<4x32xf32>
    llmrt.kernel "layer_norm_fwd"(%x2, %w, %b, %o) {ints = array<i64: 4, 32>, floats = array<f64: 1.0e-05>} : memref<4x32xf32>, memref<32xf32>, memref<32xf32>, memref<4x32xf32>
    return
  }
}

// -----

// In place: the add writes x1 over x (x dead after it), and y over the
// projection. Legal because x1 is stored (here as the group's only
// output, though nothing reads it after the norm): the kernel's loop form
// reads x1 back in its later passes, and of the inputs only w (this C, 32,
// takes the unrolled form, x in registers: the rule holds for both). An
// RMS norm has no bias.
// CHECK-LABEL: func.func @in_place
// CHECK: llmrt.kernel "fused_norm"(%[[X:.*]], %[[P:.*]], %[[W:.*]], %[[X]], %[[P]]) {floats = array<f64: 9.9999999999999995E-7>, ints = array<i64: 2, 4, 32, 3, 2, -1, 128, -1, 3, 1, 128, 128, 32, 1, 1, 0, 1, 3>}
// CHECK-NEXT: return
module attributes {llmrt.arena_bytes = 8192 : i64} {
  func.func @in_place() {
    %x = llmrt.buffer "" {offset = 0 : i64, role = "temp"} : memref<4x32xf32>
    %p = llmrt.buffer "" {offset = 512 : i64, role = "temp"} : memref<4x32xf32>
    %w = llmrt.buffer "norm.w" {offset = 4096 : i64, role = "param"} : memref<32xf32>
    llmrt.kernel "add"(%x, %p, %x) {ints = array<i64: 128, 128>, floats = array<f64>} : memref<4x32xf32>, memref<4x32xf32>, memref<4x32xf32>
    llmrt.kernel "rms_norm_fwd"(%x, %w, %p) {ints = array<i64: 4, 32>, floats = array<f64: 1.0e-06>} : memref<4x32xf32>, memref<32xf32>, memref<4x32xf32>
    return
  }
}

// -----

// Not fused: y over part of an input (rows of other warps would read
// overwritten bytes); a kernel between the add and the norm that reads the
// add's input; a norm whose input no elementwise kernel wrote.
// CHECK-LABEL: func.func @illegal
// CHECK: llmrt.kernel "add"
// CHECK-NEXT: llmrt.kernel "layer_norm_fwd"
// CHECK-NEXT: llmrt.kernel "add"
// CHECK-NEXT: llmrt.kernel "linear_fwd"
// CHECK-NEXT: llmrt.kernel "layer_norm_fwd"
// CHECK-NEXT: llmrt.kernel "linear_fwd"
// CHECK-NEXT: llmrt.kernel "layer_norm_fwd"
// CHECK-NEXT: return
module attributes {llmrt.arena_bytes = 8192 : i64} {
  func.func @illegal() {
    %x = llmrt.buffer "" {offset = 0 : i64, role = "temp"} : memref<4x32xf32>
    %p = llmrt.buffer "" {offset = 512 : i64, role = "temp"} : memref<4x32xf32>
    %w = llmrt.buffer "ln.w" {offset = 4096 : i64, role = "param"} : memref<32xf32>
    %b = llmrt.buffer "ln.b" {offset = 4224 : i64, role = "param"} : memref<32xf32>
    %x1 = llmrt.buffer "" {offset = 3584 : i64, role = "temp"} : memref<4x32xf32>
    %shifted = llmrt.buffer "" {offset = 576 : i64, role = "temp"} : memref<4x32xf32>
    %h = llmrt.buffer "" {offset = 1536 : i64, role = "temp"} : memref<4x32xf32>
    %fw = llmrt.buffer "fc.w" {offset = 4352 : i64, role = "param"} : memref<32x32xf32>
    %m = llmrt.buffer "" {offset = 2048 : i64, role = "temp"} : memref<4x32xf32>
    %o = llmrt.buffer "" {offset = 2560 : i64, role = "temp"} : memref<4x32xf32>
    llmrt.kernel "add"(%x, %p, %x1) {ints = array<i64: 128, 128>, floats = array<f64>} : memref<4x32xf32>, memref<4x32xf32>, memref<4x32xf32>
    llmrt.kernel "layer_norm_fwd"(%x1, %w, %b, %shifted) {ints = array<i64: 4, 32>, floats = array<f64: 1.0e-05>} : memref<4x32xf32>, memref<32xf32>, memref<32xf32>, memref<4x32xf32>
    llmrt.kernel "add"(%x, %x1, %h) {ints = array<i64: 128, 128>, floats = array<f64>} : memref<4x32xf32>, memref<4x32xf32>, memref<4x32xf32>
    llmrt.kernel "linear_fwd"(%x, %fw, %m) {ints = array<i64: 4, 32, 32, 0>, floats = array<f64>} : memref<4x32xf32>, memref<32x32xf32>, memref<4x32xf32>
    llmrt.kernel "layer_norm_fwd"(%h, %w, %b, %o) {ints = array<i64: 4, 32>, floats = array<f64: 1.0e-05>} : memref<4x32xf32>, memref<32xf32>, memref<32xf32>, memref<4x32xf32>
    llmrt.kernel "linear_fwd"(%x, %fw, %p) {ints = array<i64: 4, 32, 32, 0>, floats = array<f64>} : memref<4x32xf32>, memref<32x32xf32>, memref<4x32xf32>
    llmrt.kernel "layer_norm_fwd"(%p, %w, %b, %h) {ints = array<i64: 4, 32>, floats = array<f64: 1.0e-05>} : memref<4x32xf32>, memref<32xf32>, memref<32xf32>, memref<4x32xf32>
    return
  }
}

// -----

// A row of 40 (not a multiple of 32): the kernel's passes loop over the
// lane's columns, and the last reads x back from the group's output.
// CHECK-LABEL: func.func @loop
// CHECK: llmrt.kernel "fused_norm"
// CHECK-NEXT: llmrt.kernel "linear_fwd"
// CHECK-NEXT: return
// GPU-LABEL: func.func @loop
// GPU: gpu.func @fused_norm_0
// GPU: %[[X1V:.*]] = memref.view %arg3[%{{.*}}][] : memref<320xi8> to memref<80xf32>
// GPU: scf.for
// GPU: memref.store
// GPU-COUNT-5: gpu.shuffle  xor
// GPU: math.rsqrt
// GPU: scf.for
// GPU-NOT: arith.addf
// GPU: memref.load %[[X1V]]
// GPU-NOT: gpu.func
module attributes {llmrt.arena_bytes = 8192 : i64} {
  func.func @loop() {
    %x = llmrt.buffer "" {offset = 0 : i64, role = "temp"} : memref<2x40xf32>
    %p = llmrt.buffer "" {offset = 512 : i64, role = "temp"} : memref<2x40xf32>
    %w = llmrt.buffer "norm.w" {offset = 4096 : i64, role = "param"} : memref<40xf32>
    %x1 = llmrt.buffer "" {offset = 1024 : i64, role = "temp"} : memref<2x40xf32>
    %y = llmrt.buffer "" {offset = 1536 : i64, role = "temp"} : memref<2x40xf32>
    llmrt.kernel "add"(%x, %p, %x1) {ints = array<i64: 80, 80>, floats = array<f64>} : memref<2x40xf32>, memref<2x40xf32>, memref<2x40xf32>
    llmrt.kernel "rms_norm_fwd"(%x1, %w, %y) {ints = array<i64: 2, 40>, floats = array<f64: 1.0e-06>} : memref<2x40xf32>, memref<40xf32>, memref<2x40xf32>
    llmrt.kernel "linear_fwd"(%x1, %w, %p) {ints = array<i64: 1, 80, 1, 0>, floats = array<f64>} : memref<2x40xf32>, memref<40xf32>, memref<2x40xf32>
    return
  }
}

// -----

// A rank-dependent view (a ZeRO share: its bytes depend on the rank) is
// never "the same bytes" as another operand: an add written in place over
// one does not fuse into the norm after it, though its offset matches (it
// lies past every other operand, so nothing else overlaps it).
// CHECK-LABEL: func.func @rank_view
// CHECK: llmrt.kernel "add"
// CHECK-NEXT: llmrt.kernel "rms_norm_fwd"
// CHECK-NEXT: return
module attributes {llmrt.arena_bytes = 8192 : i64} {
  func.func @rank_view() {
    %x = llmrt.buffer "" {offset = 6144 : i64, rank_group = 1 : i64, rank_stride = 512 : i64, role = "temp"} : memref<4x32xf32>
    %p = llmrt.buffer "" {offset = 1024 : i64, role = "temp"} : memref<4x32xf32>
    %w = llmrt.buffer "norm.w" {offset = 4096 : i64, role = "param"} : memref<32xf32>
    %y = llmrt.buffer "" {offset = 2048 : i64, role = "temp"} : memref<4x32xf32>
    llmrt.kernel "add"(%x, %p, %x) {ints = array<i64: 128, 128>, floats = array<f64>} : memref<4x32xf32>, memref<4x32xf32>, memref<4x32xf32>
    llmrt.kernel "rms_norm_fwd"(%x, %w, %y) {ints = array<i64: 4, 32>, floats = array<f64: 1.0e-06>} : memref<4x32xf32>, memref<32xf32>, memref<4x32xf32>
    return
  }
}
