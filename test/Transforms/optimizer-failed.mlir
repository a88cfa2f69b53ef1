// RUN: llm-opt %s --llm-optimizer -split-input-file -verify-diagnostics
// Bad options are checked once a @train_step is found (the last case):
// RUN: not llm-opt %s --llm-optimizer="beta1=1.0" -split-input-file 2>&1 | FileCheck %s --check-prefix=BETA1
// RUN: not llm-opt %s --llm-optimizer="beta2=-0.5" -split-input-file 2>&1 | FileCheck %s --check-prefix=BETA2
// RUN: not llm-opt %s --llm-optimizer="eps=0" -split-input-file 2>&1 | FileCheck %s --check-prefix=EPS
// One case per error of llm-optimizer (lib/Transforms/Optimizer.cpp).

// Only the model function: llm-autodiff has not run.
// expected-error@+1 {{llm-optimizer: no @train_step; run llm-autodiff first}}
module {
  func.func @forward(%w: tensor<16x8xf32> {llm.param = "w"},
                     %ids: tensor<2x4xi32> {llm.input = "tokens"},
                     %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
    %x = llm.embedding %ids, %w : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
    %l = llm.linear %x, %w {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
    %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
    return %loss : tensor<f32>
  }
}

// -----

// A @train_step without the llm.train_step marker is not llm-autodiff's.
// expected-error@+1 {{llm-optimizer: no @train_step; run llm-autodiff first}}
module {
  func.func @train_step(%w: tensor<8xf32> {llm.param = "w"}) -> (tensor<f32>, tensor<8xf32>) {
    %n = llm.global_norm %w : tensor<8xf32>
    return %n, %w : tensor<f32>, tensor<8xf32>
  }
}

// -----

module {
  // expected-error@+1 {{llm-optimizer: expected the loss and 2 gradients, got 2 results}}
  func.func @train_step(%a: tensor<8xf32> {llm.param = "a"},
                        %b: tensor<8xf32> {llm.param = "b"}) -> (tensor<f32>, tensor<8xf32>)
      attributes {llm.train_step} {
    %n = llm.global_norm %a : tensor<8xf32>
    return %n, %a : tensor<f32>, tensor<8xf32>
  }
}

// -----

module {
  // expected-error@+1 {{llm-optimizer: parameters must be the leading arguments}}
  func.func @train_step(%ids: tensor<2x4xi32> {llm.input = "tokens"},
                        %a: tensor<8xf32> {llm.param = "a"}) -> (tensor<f32>, tensor<8xf32>)
      attributes {llm.train_step} {
    %n = llm.global_norm %a : tensor<8xf32>
    return %n, %a : tensor<f32>, tensor<8xf32>
  }
}

// -----

// A well-formed (hand-written) step: accepted with the default options.
// BETA1: error: llm-optimizer: expects 0 <= beta1, beta2 < 1 and eps > 0, got beta1=1.000000e+00 beta2=9.500000e-01 eps=1.000000e-08
// BETA2: error: llm-optimizer: expects 0 <= beta1, beta2 < 1 and eps > 0, got beta1=9.000000e-01 beta2=-5.000000e-01 eps=1.000000e-08
// EPS: error: llm-optimizer: expects 0 <= beta1, beta2 < 1 and eps > 0, got beta1=9.000000e-01 beta2=9.500000e-01 eps=0.000000e+00
module {
  func.func @train_step(%a: tensor<8xf32> {llm.param = "a"},
                        %ids: tensor<2x4xi32> {llm.input = "tokens"}) -> (tensor<f32>, tensor<8xf32>)
      attributes {llm.train_step} {
    %n = llm.global_norm %a : tensor<8xf32>
    return %n, %a : tensor<f32>, tensor<8xf32>
  }
}
