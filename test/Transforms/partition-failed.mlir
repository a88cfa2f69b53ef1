// RUN: llm-opt %s --llm-partition -split-input-file -verify-diagnostics

// expected-error@+1 {{llm-partition: the module has no llm.plan (run llm-auto-plan, or llm-compile --plan)}}
module {
  func.func @f(%w: tensor<4xf32> {llm.param = "w"}) {
    return
  }
}

// -----

// expected-error@+1 {{llm-partition: sequence parallelism needs tp > 1}}
module attributes {llm.plan = #llm.plan<world = 2, dp = 2, tp = 1, sp = 1, pp = 1, vpp = 1, zero = 0, remat = "none", mbs = 1, microbatches = 1, schedule = "1f1b", stages = [0, 1], step_time_s = 1.0 : f64, memory_bytes_per_device = 1>} {
  func.func @f(%w: tensor<4xf32> {llm.param = "w"}) {
    return
  }
}

// -----

module attributes {llm.plan = #llm.plan<world = 2, dp = 1, tp = 2, sp = 1, pp = 1, vpp = 1, zero = 0, remat = "none", mbs = 1, microbatches = 1, schedule = "1f1b", stages = [0, 1], step_time_s = 1.0 : f64, memory_bytes_per_device = 1>} {
  // No norm before the first column-parallel linear.
  // expected-error@+1 {{llm-partition: sequence parallelism needs the first tensor-parallel region to start at a norm}}
  func.func @f(%w: tensor<8x8xf32> {llm.param = "w"}, %ids: tensor<2x4xi32> {llm.input = "tokens"}, %t: tensor<2x4xi32> {llm.input = "targets"}) -> tensor<f32> {
    %e = llm.embedding %ids, %w : tensor<2x4xi32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
    %h = llm.linear %e, %w : tensor<2x4x8xf32>, tensor<8x8xf32> -> tensor<2x4x8xf32>
    %l = llm.cross_entropy %h, %t : tensor<2x4x8xf32>, tensor<2x4xi32> -> tensor<f32>
    return %l : tensor<f32>
  }
}

// -----

// expected-error@+1 {{llm-partition: pp=2 needs llm-pipeline-stage first}}
module attributes {llm.plan = #llm.plan<world = 2, dp = 1, tp = 1, sp = 0, pp = 2, vpp = 1, zero = 0, remat = "none", mbs = 1, microbatches = 1, schedule = "1f1b", stages = [0, 1], step_time_s = 1.0 : f64, memory_bytes_per_device = 1>} {
  func.func @f(%w: tensor<4xf32> {llm.param = "w"}) {
    return
  }
}

// -----

// Gradient accumulation: each rank's share must split into the micro-batches.
module attributes {llm.plan = #llm.plan<world = 2, dp = 2, tp = 1, sp = 0, pp = 1, vpp = 1, zero = 0, remat = "full", mbs = 1, microbatches = 2, schedule = "1f1b", stages = [0, 1], step_time_s = 1.0 : f64, memory_bytes_per_device = 1>} {
  // expected-error@+1 {{llm-partition: the batch of 6 sequences does not divide among dp=2 ranks x 2 micro-batches}}
  func.func @f(%w: tensor<16x8xf32> {llm.param = "wte.weight"},
               %ids: tensor<6x8xi32> {llm.input = "tokens"}) -> tensor<6x8x8xf32> {
    %x = llm.embedding %ids, %w : tensor<6x8xi32>, tensor<16x8xf32> -> tensor<6x8x8xf32>
    return %x : tensor<6x8x8xf32>
  }
}

// -----

module attributes {llm.plan = #llm.plan<world = 3, dp = 3, tp = 1, sp = 0, pp = 1, vpp = 1, zero = 0, remat = "none", mbs = 1, microbatches = 1, schedule = "1f1b", stages = [0, 1], step_time_s = 1.0 : f64, memory_bytes_per_device = 1>} {
  // expected-error@+1 {{llm-partition: the batch of 4 sequences does not divide among dp=3 ranks x 1 micro-batches}}
  func.func @f(%w: tensor<16x8xf32> {llm.param = "wte.weight"},
               %ids: tensor<4x8xi32> {llm.input = "tokens"}) -> tensor<4x8x8xf32> {
    %x = llm.embedding %ids, %w : tensor<4x8xi32>, tensor<16x8xf32> -> tensor<4x8x8xf32>
    return %x : tensor<4x8x8xf32>
  }
}
