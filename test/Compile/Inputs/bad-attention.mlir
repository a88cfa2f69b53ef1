func.func @f(%x: tensor<2x4x770xf32>) {
  %0 = llm.attention %x, %x, %x {num_heads = 12 : i64, num_kv_heads = 12 : i64} : tensor<2x4x770xf32>, tensor<2x4x770xf32>, tensor<2x4x770xf32> -> tensor<2x4x770xf32>
  return
}
