// RUN: llm-opt %s --llm-autodiff -split-input-file -verify-diagnostics
// One case per error of llm-autodiff (lib/Transforms/Autodiff.cpp).

// expected-error@+1 {{no model function: expected a func.func with 'llm.param' arguments}}
module {
  func.func @f(%x: tensor<4xf32>) -> tensor<4xf32> {
    return %x : tensor<4xf32>
  }
}

// -----

// expected-error@+1 {{expected one model function, found 2}}
module {
  // expected-note@+1 {{model function @a}}
  func.func @a(%w: tensor<4xf32> {llm.param = "w"}) {
    return
  }
  // expected-note@+1 {{model function @b}}
  func.func @b(%w: tensor<4xf32> {llm.param = "w"}) {
    return
  }
}

// -----

// expected-error@+1 {{llm-autodiff: the module already has @train_step}}
module {
  func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte"},
                     %ids: tensor<2x4xi32> {llm.input = "tokens"},
                     %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
    %x = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
    %l = llm.linear %x, %wte {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
    %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
    return %loss : tensor<f32>
  }
  func.func @train_step() attributes {llm.train_step} {
    return
  }
}

// -----

// expected-error@+1 {{llm-autodiff: the model function must return only the loss, got 2 results}}
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> (tensor<f32>, tensor<2x4x16xf32>) {
  %x = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  %l = llm.linear %x, %wte {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss, %l : tensor<f32>, tensor<2x4x16xf32>
}

// -----

// expected-error@+1 {{llm-autodiff: the model function must return only the loss, got 0 results}}
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"}) {
  return
}

// -----

// The "loss" is a sum of the logits, not a cross-entropy.
// expected-error@+1 {{llm-autodiff: the loss must be produced by llm.cross_entropy}}
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"}) -> tensor<f32> {
  %x = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  %s = llm.sum_leading %x : tensor<2x4x8xf32> -> tensor<f32>
  return %s : tensor<f32>
}

// -----

// The loss is an argument.
// expected-error@+1 {{llm-autodiff: the loss must be produced by llm.cross_entropy}}
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte"},
                   %loss: tensor<f32> {llm.input = "tokens"}) -> tensor<f32> {
  return %loss : tensor<f32>
}

// -----

// expected-error@+1 {{llm-autodiff: parameter 'unused.weight' does not influence the loss}}
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte"},
                   %w: tensor<8x8xf32> {llm.param = "unused.weight"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %x = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  %l = llm.linear %x, %wte {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// A parameter read only by an op whose result does not reach the loss.
// expected-error@+1 {{llm-autodiff: parameter 'dead.weight' does not influence the loss}}
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte"},
                   %w: tensor<8x8xf32> {llm.param = "dead.weight"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %x = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  %dead = llm.linear %x, %w : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
  %l = llm.linear %x, %wte {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// A backward op used in the forward has no gradient rule itself.
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %x = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  // expected-error@+1 {{'llm.gelu_grad' op llm-autodiff: no gradient rule for this op}}
  %g = llm.gelu_grad %x, %x : tensor<2x4x8xf32>
  %l = llm.linear %g, %wte {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// A concat (the gradient of split) has no rule either.
func.func @forward(%wte: tensor<16x4xf32> {llm.param = "wte"},
                   %w: tensor<8x16xf32> {llm.param = "head"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %x = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x4xf32> -> tensor<2x4x4xf32>
  // expected-error@+1 {{'llm.concat' op llm-autodiff: no gradient rule for this op}}
  %c = llm.concat %x, %x {axis = 2 : i64} : tensor<2x4x4xf32>, tensor<2x4x4xf32> -> tensor<2x4x8xf32>
  %l = llm.linear %c, %w : tensor<2x4x8xf32>, tensor<8x16xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}

// -----

// Only q and v of the split reach the loss.
func.func @forward(%wte: tensor<16x8xf32> {llm.param = "wte"},
                   %wqkv: tensor<8x24xf32> {llm.param = "qkv.weight"},
                   %ids: tensor<2x4xi32> {llm.input = "tokens"},
                   %tgt: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
  %x = llm.embedding %ids, %wte : tensor<2x4xi32>, tensor<16x8xf32> -> tensor<2x4x8xf32>
  %qkv = llm.linear %x, %wqkv : tensor<2x4x8xf32>, tensor<8x24xf32> -> tensor<2x4x24xf32>
  // expected-error@+1 {{'llm.split' op llm-autodiff: result #1 does not reach the loss while others do; partial split gradients are not supported}}
  %q, %k, %v = llm.split %qkv {axis = 2 : i64} : tensor<2x4x24xf32> -> tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32>
  %a = llm.attention %q, %q, %v {num_heads = 2 : i64, num_kv_heads = 2 : i64, causal} : tensor<2x4x8xf32>, tensor<2x4x8xf32>, tensor<2x4x8xf32> -> tensor<2x4x8xf32>
  %l = llm.linear %a, %wte {transpose_weight} : tensor<2x4x8xf32>, tensor<16x8xf32> -> tensor<2x4x16xf32>
  %loss = llm.cross_entropy %l, %tgt : tensor<2x4x16xf32>, tensor<2x4xi32> -> tensor<f32>
  return %loss : tensor<f32>
}
