// RUN: llm-opt %s -split-input-file -verify-diagnostics
// Negative offsets (the verifier reads the attribute as a signed integer;
// the generated accessor is unsigned).

func.func @buffer_negative_aligned_offset() {
  // expected-error@+1 {{'llmrt.buffer' op expects offset (-64) to be a non-negative multiple of 64}}
  %0 = llmrt.buffer "" {role = "temp", offset = -64 : i64} : memref<8xf32>
  return
}

// -----

func.func @buffer_negative_misaligned_offset() {
  // expected-error@+1 {{'llmrt.buffer' op expects offset (-32) to be a non-negative multiple of 64}}
  %0 = llmrt.buffer "" {role = "temp", offset = -32 : i64} : memref<8xf32>
  return
}
