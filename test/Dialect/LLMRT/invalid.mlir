// RUN: llm-opt %s -split-input-file -verify-diagnostics
// One case per verifier message of the llmrt dialect
// (dialects/llmrt/LLMRTDialect.cpp); kernel names and the operand, int and
// float counts come from runtime/include/llmrt/ProgramFormat.h.

func.func @buffer_bad_role() {
  // expected-error@+1 {{'llmrt.buffer' op expects role to be one of param, adam_m, adam_v, input, output, temp; got 'weight'}}
  %0 = llmrt.buffer "w" {role = "weight", offset = 0 : i64} : memref<8xf32>
  return
}

// -----

func.func @buffer_misaligned_offset() {
  // expected-error@+1 {{'llmrt.buffer' op expects offset (32) to be a non-negative multiple of 64}}
  %0 = llmrt.buffer "w" {role = "param", offset = 32 : i64} : memref<8xf32>
  return
}

// -----

// A negative offset is covered by invalid-negative-offset.mlir (XFAIL: the
// verifier reads the offset as uint64_t, so -64 passes and -32 is printed
// as 18446744073709551584).

func.func @buffer_init_on_non_param() {
  // expected-error@+1 {{'llmrt.buffer' op expects init only on a param buffer}}
  %0 = llmrt.buffer "w" {role = "adam_m", offset = 0 : i64, init = "zeros"} : memref<8xf32>
  return
}

// -----

func.func @buffer_unknown_init() {
  // expected-error@+1 {{'llmrt.buffer' op expects init to be normal, zeros or ones; got 'uniform'}}
  %0 = llmrt.buffer "w" {role = "param", offset = 0 : i64, init = "uniform"} : memref<8xf32>
  return
}

// -----

func.func @buffer_normal_without_std() {
  // expected-error@+1 {{'llmrt.buffer' op expects init_std > 0 with init = normal}}
  %0 = llmrt.buffer "w" {role = "param", offset = 0 : i64, init = "normal"} : memref<8xf32>
  return
}

// -----

func.func @buffer_normal_zero_std() {
  // expected-error@+1 {{'llmrt.buffer' op expects init_std > 0 with init = normal}}
  %0 = llmrt.buffer "w" {role = "param", offset = 0 : i64, init = "normal", init_std = 0.0 : f64} : memref<8xf32>
  return
}

// -----

func.func @buffer_dynamic_shape() {
  // expected-error@+1 {{'llmrt.buffer' op result #0 must be statically shaped memref of any type values}}
  %0 = llmrt.buffer "" {role = "temp", offset = 0 : i64} : memref<?xf32>
  return
}

// -----

func.func @kernel_unknown(%x: memref<8xf32>) {
  // expected-error@+1 {{'llmrt.kernel' op unknown kernel 'matmul'}}
  llmrt.kernel "matmul"(%x, %x, %x) {ints = array<i64>, floats = array<f64>} : memref<8xf32>, memref<8xf32>, memref<8xf32>
  return
}

// -----

// gelu_fwd: [x, y], exactly 2 operands.
func.func @kernel_operand_count_exact(%x: memref<8xf32>) {
  // expected-error@+1 {{'llmrt.kernel' op kernel 'gelu_fwd' expects 2 operands, got 3}}
  llmrt.kernel "gelu_fwd"(%x, %x, %x) {ints = array<i64: 8>, floats = array<f64>} : memref<8xf32>, memref<8xf32>, memref<8xf32>
  return
}

// -----

// linear_fwd: [x, w, y] or [x, w, bias, y].
func.func @kernel_operand_count_range(%x: memref<8xf32>) {
  // expected-error@+1 {{'llmrt.kernel' op kernel 'linear_fwd' expects 3 to 4 operands, got 2}}
  llmrt.kernel "linear_fwd"(%x, %x) {ints = array<i64: 1, 8, 8, 0>, floats = array<f64>} : memref<8xf32>, memref<8xf32>
  return
}

// -----

func.func @kernel_operand_count_range_above(%x: memref<8xf32>) {
  // expected-error@+1 {{'llmrt.kernel' op kernel 'linear_fwd' expects 3 to 4 operands, got 5}}
  llmrt.kernel "linear_fwd"(%x, %x, %x, %x, %x) {ints = array<i64: 1, 8, 8, 0>, floats = array<f64>}
      : memref<8xf32>, memref<8xf32>, memref<8xf32>, memref<8xf32>, memref<8xf32>
  return
}

// -----

// global_norm: [out, g0, g1, ...], at least one gradient.
func.func @kernel_operand_count_unbounded(%n: memref<f32>) {
  // expected-error@+1 {{'llmrt.kernel' op kernel 'global_norm' expects 2 or more operands, got 1}}
  llmrt.kernel "global_norm"(%n) {ints = array<i64>, floats = array<f64>} : memref<f32>
  return
}

// -----

// linear_fwd: {rows, in, out, transW}.
func.func @kernel_ints_count(%x: memref<2x8xf32>, %w: memref<8x8xf32>) {
  // expected-error@+1 {{'llmrt.kernel' op kernel 'linear_fwd' expects 4 ints, got 3}}
  llmrt.kernel "linear_fwd"(%x, %w, %x) {ints = array<i64: 2, 8, 8>, floats = array<f64>} : memref<2x8xf32>, memref<8x8xf32>, memref<2x8xf32>
  return
}

// -----

// clip_scale: no ints.
func.func @kernel_ints_count_zero(%n: memref<f32>) {
  // expected-error@+1 {{'llmrt.kernel' op kernel 'clip_scale' expects 0 ints, got 1}}
  llmrt.kernel "clip_scale"(%n, %n, %n) {ints = array<i64: 1>, floats = array<f64>} : memref<f32>, memref<f32>, memref<f32>
  return
}

// -----

// layer_norm_fwd: (eps).
func.func @kernel_floats_count(%x: memref<2x8xf32>, %w: memref<8xf32>) {
  // expected-error@+1 {{'llmrt.kernel' op kernel 'layer_norm_fwd' expects 1 floats, got 0}}
  llmrt.kernel "layer_norm_fwd"(%x, %w, %w, %x) {ints = array<i64: 2, 8>, floats = array<f64>}
      : memref<2x8xf32>, memref<8xf32>, memref<8xf32>, memref<2x8xf32>
  return
}

// -----

// adamw: (beta1, beta2, eps).
func.func @kernel_floats_count_adamw(%p: memref<8xf32>, %s: memref<f32>) {
  // expected-error@+1 {{'llmrt.kernel' op kernel 'adamw' expects 3 floats, got 2}}
  llmrt.kernel "adamw"(%p, %p, %p, %p, %s, %s, %s, %s) {ints = array<i64: 8, 0>, floats = array<f64: 0.9, 0.95>}
      : memref<8xf32>, memref<8xf32>, memref<8xf32>, memref<8xf32>, memref<f32>, memref<f32>, memref<f32>, memref<f32>
  return
}

// -----

func.func @kernel_tensor_operand(%x: tensor<8xf32>) {
  // expected-error@+1 {{'llmrt.kernel' op operand #0 must be variadic of memref of any type values}}
  llmrt.kernel "gelu_fwd"(%x, %x) {ints = array<i64: 8>, floats = array<f64>} : tensor<8xf32>, tensor<8xf32>
  return
}
