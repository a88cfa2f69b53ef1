func.func @f(%w: tensor<4x4xf32> {llm.param = "w"}) {
  return
}
