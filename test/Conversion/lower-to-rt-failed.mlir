// RUN: llm-opt %s --llm-autodiff --llm-optimizer --llm-lower-to-rt -split-input-file -verify-diagnostics
// The pass's preconditions, on a real import (tiny-llama-gqa, one layer):
// RUN: llm-import --hf-config %models/tiny-llama-gqa.json --batch 1 --seq 4 --layers 1 | not llm-opt --llm-lower-to-rt 2>&1 | FileCheck %s --check-prefix=NO-STEP
// RUN: llm-import --hf-config %models/tiny-llama-gqa.json --batch 1 --seq 4 --layers 1 | not llm-opt --llm-autodiff --llm-lower-to-rt 2>&1 | FileCheck %s --check-prefix=NO-OPT
// RUN: llm-import --hf-config %models/tiny-llama-gqa.json --batch 1 --seq 4 --layers 1 --dtype bf16 | not llm-opt --llm-autodiff --llm-optimizer --llm-lower-to-rt 2>&1 | FileCheck %s --check-prefix=BF16
// One case per error path of llm-lower-to-rt that the pipeline can reach
// (lib/Conversion/LowerToRT.cpp).

// Only the model function (reported on the module, line 1 of the import).
// NO-STEP: <stdin>:1:1: error: llm-lower-to-rt: no @train_step; run llm-autodiff and llm-optimizer first
// NO-STEP-NOT: error:

// A @train_step straight from llm-autodiff: gradients but no update
// (reported on @train_step, the clone of @forward on line 2).
// NO-OPT: <stdin>:2:3: error: llm-lower-to-rt: @train_step updates no parameter; run llm-optimizer first
// NO-OPT-NOT: error:

// bf16 parameters and activations: the first bf16 temporary of @train
// (the embedding, 1x4x128) is rejected.
// BF16: error: 'llm.embedding' op llm-lower-to-rt: the CPU runtime computes in f32, got 'tensor<1x4x128xbf16>'
// BF16-NOT: error:

// The same in a hand-written bf16 model; the error points at the forward op
// (@train_step's ops are clones with the same locations).
func.func @forward(%wte: tensor<16x8xbf16> {llm.param = "wte"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  // expected-error@+1 {{'llm.embedding' op llm-lower-to-rt: the CPU runtime computes in f32, got 'tensor<2x4x8xbf16>'}}
  %e = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xbf16> -> tensor<2x4x8xbf16>
  %l = llm.linear %e, %wte {transpose_weight} : tensor<2x4x8xbf16>, tensor<16x8xbf16> -> tensor<2x4x16xbf16>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xbf16>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// f16 is rejected the same way.
func.func @forward(%wte: tensor<16x8xf16> {llm.param = "wte"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  // expected-error@+1 {{'llm.embedding' op llm-lower-to-rt: the CPU runtime computes in f32, got 'tensor<2x4x8xf16>'}}
  %e = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf16> -> tensor<2x4x8xf16>
  %l = llm.linear %e, %wte {transpose_weight} : tensor<2x4x8xf16>, tensor<16x8xf16> -> tensor<2x4x16xf16>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf16>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// A split along the sequence axis (1 of [2, 4, 8]): copy_columns only
// splits the last axis. The split comes before its concat in @train.
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x2xi32> {llm.input = "targets"}) -> tensor<f32> {
  %e = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  // expected-error@+1 {{'llm.split' op llm-lower-to-rt: only splits and concats along the last axis are supported, got axis 1}}
  %a, %b = llm.split %e {axis = 1 : i64} : tensor<2x4x8xf32> -> tensor<2x2x8xf32>, tensor<2x2x8xf32>
  %c = llm.add %a, %b : tensor<2x2x8xf32>, tensor<2x2x8xf32>
  %l = llm.linear %c, %wte {transpose_weight} : tensor<2x2x8xf32>, tensor<16x8xf32> -> tensor<2x2x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x2x16xf32>, tensor<2x2xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
