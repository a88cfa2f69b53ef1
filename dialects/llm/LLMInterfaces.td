//===- LLMInterfaces.td - llm op interfaces ---------------*- tablegen -*-===//
#ifndef LLM_INTERFACES_TD
#define LLM_INTERFACES_TD

include "mlir/IR/OpBase.td"

def LLM_FlopCountOpInterface : OpInterface<"FlopCountOpInterface"> {
  let cppNamespace = "::mlir::llm";
  let description = [{
    Counts the floating-point operations of one execution of an op from its
    static shapes. Matrix-multiply FLOPs (2 per multiply-add) are what the
    model-FLOPs figures of Narayanan et al. 2021 count; other FLOPs
    (normalization, activations, softmax) are reported apart so that cost
    models can charge them against memory bandwidth instead.
  }];
  let methods = [
    InterfaceMethod<
      "Matrix-multiply FLOPs of the forward computation (2 per multiply-add).",
      "int64_t", "getMatmulFlops", (ins), [{}],
      [{ return 0; }]>,
    InterfaceMethod<
      "Multiplier from the forward to the backward FLOPs of this op: 2 for a "
      "matrix multiply (gradient of input and of weight), 0 when the op is "
      "itself part of the backward pass.",
      "int64_t", "getBackwardFlopsFactor", (ins), [{}],
      [{ return 2; }]>,
  ];
}

#endif // LLM_INTERFACES_TD
