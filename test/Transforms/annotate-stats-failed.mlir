// RUN: llm-opt %s --llm-annotate-stats -split-input-file -verify-diagnostics

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

module {
  // expected-error@+1 {{model function @f has no argument with llm.input = "tokens"}}
  func.func @f(%w: tensor<4xf32> {llm.param = "w"}) {
    return
  }
}
