//===- LLMBase.td - llm dialect definition ------------------*- tablegen -*-===//
//
// The `llm` dialect: a transformer's training graph on ranked tensors.
//
//===----------------------------------------------------------------------===//
#ifndef LLM_BASE_TD
#define LLM_BASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"

def LLM_Dialect : Dialect {
  let name = "llm";
  let cppNamespace = "::mlir::llm";
  let summary = "Transformer training graphs: coarse ops, one kernel family each";
  let description = [{
    The `llm` dialect describes a decoder-only transformer (GPT-2 or Llama
    style) and its loss as a graph of coarse operations on ranked tensors:
    embedding, normalization, linear layers, attention, rotary embedding,
    activations, residual arithmetic and the softmax cross-entropy loss.

    One op is one kernel family and one sharding rule. Activations keep the
    `[batch, seq, features]` layout throughout; attention heads live inside the
    feature axis (`features = heads * head_dim`), so no reshape or transpose is
    ever needed in the graph.

    A model is a `func.func` whose arguments are its parameters, in Hugging Face
    names (`llm.param`) and layouts, followed by its inputs (`llm.input`:
    `tokens` and `targets`). It returns the mean loss as `tensor<f32>`.
  }];
  let dependentDialects = [];
  let useDefaultAttributePrinterParser = 1;
}

// Floating-point element types the dialect computes in.
def LLM_Float : AnyTypeOf<[F32, BF16, F16]>;
def LLM_FloatTensor : RankedTensorOf<[F32, BF16, F16]>;
def LLM_IndexTensor : RankedTensorOf<[I32, I64]>;
// Scalars of the optimizer (learning rate, step, norms) as 0-d tensors.
def LLM_F32Scalar : 0DTensorOf<[F32]>,
    BuildableType<"::mlir::RankedTensorType::get({}, $_builder.getF32Type())">;
def LLM_I64Scalar : 0DTensorOf<[I64]>,
    BuildableType<"::mlir::RankedTensorType::get({}, $_builder.getI64Type())">;

class LLM_Op<string mnemonic, list<Trait> traits = []>
    : Op<LLM_Dialect, mnemonic, traits>;

#endif // LLM_BASE_TD
