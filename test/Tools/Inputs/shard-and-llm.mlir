shard.grid @grid(shape = 2x2)
func.func @f(%x: tensor<8x4x16xf32>, %w: tensor<16x32xf32>) -> tensor<8x4x32xf32> {
  %s = shard.sharding @grid split_axes = [[], [1]] : !shard.sharding
  %ws = shard.shard %w to %s : tensor<16x32xf32>
  %y = llm.linear %x, %ws : tensor<8x4x16xf32>, tensor<16x32xf32> -> tensor<8x4x32xf32>
  return %y : tensor<8x4x32xf32>
}
