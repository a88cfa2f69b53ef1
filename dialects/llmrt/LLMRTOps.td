//===- LLMRTOps.td - the per-rank runtime program dialect ----*- tablegen -*-===//
//
// The last IR before serialization: arena views and kernel calls, one op per
// runtime instruction (see runtime/include/llmrt/ProgramFormat.h).
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_OPS_TD
#define LLMRT_OPS_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/CommonAttrConstraints.td"

def LLMRT_Dialect : Dialect {
  let name = "llmrt";
  let cppNamespace = "::mlir::llmrt";
  let summary = "Runtime programs: arena buffers and kernel calls";
  let description = [{
    A function of this dialect is a straight-line list of kernel calls on
    views of one memory arena whose layout the compiler fixed from liveness.
    It maps one-to-one onto the serialized program the runtime executes:
    `llmrt.buffer` is an entry of the program's buffer table, `llmrt.kernel`
    one instruction.
  }];
}

class LLMRT_Op<string mnemonic, list<Trait> traits = []>
    : Op<LLMRT_Dialect, mnemonic, traits>;

def LLMRT_BufferOp : LLMRT_Op<"buffer"> {
  let summary = "a view of the arena at a fixed byte offset";
  let description = [{
    Names a region of the arena: `bytes = elements * element size` at
    `offset`. `role` says what it holds: `param`, `adam_m`, `adam_v` (keyed by
    the parameter's Hugging Face name), `input`, `output` (keyed by their
    names) or `temp`. Parameters carry their default initialization
    (`init` = `normal`, `zeros` or `ones`, and `init_std`). A tensor-parallel
    shard of a parameter or moment carries `tp_shard = [axis, blocks]` and
    the `global_shape` it is cut from (see llm-partition). A view that
    depends on the rank (a ZeRO share) adds `rank_stride` bytes times the
    rank's index in `rank_group` (1: dp, 2: tp) to `offset`; ZeRO-sharded
    moments give the shape of the tensor they are 1/dp of as `zero_of`.

    Constraints:
    - `role` is one of the six above; `offset` >= 0 and a multiple of 64;
    - `init` only on parameters, `init_std` > 0 with `normal`.

    Example:
    ```mlir
    %w = llmrt.buffer "h.0.attn.c_attn.weight" {role = "param", offset = 0 : i64,
                       init = "normal", init_std = 2.0e-02 : f64} : memref<384x1152xf32>
    ```
  }];
  let arguments = (ins StrAttr:$name, StrAttr:$role, I64Attr:$offset,
                       OptionalAttr<StrAttr>:$init,
                       OptionalAttr<F64Attr>:$init_std,
                       OptionalAttr<DenseI64ArrayAttr>:$tp_shard,
                       OptionalAttr<DenseI64ArrayAttr>:$global_shape,
                       OptionalAttr<I64Attr>:$rank_group,
                       OptionalAttr<I64Attr>:$rank_stride,
                       OptionalAttr<DenseI64ArrayAttr>:$zero_of);
  let results = (outs AnyStaticShapeMemRef:$result);
  let assemblyFormat = "$name attr-dict `:` type($result)";
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Bytes of the view (elements times element size).
    int64_t getBytes();
  }];
}

def LLMRT_KernelOp : LLMRT_Op<"kernel"> {
  let summary = "one runtime instruction: a kernel on arena buffers";
  let description = [{
    Calls the runtime kernel `kernel` (an opcode name of the program format)
    with `operands` (inputs then outputs, in the order the format lists for
    that opcode) and its integer and floating-point parameters.

    Constraints:
    - `kernel` is an opcode name of runtime/include/llmrt/ProgramFormat.h;
    - the numbers of operands, `ints` and `floats` are those of the opcode.

    Example:
    ```mlir
    llmrt.kernel "linear_fwd"(%x, %w, %b, %y) {ints = array<i64: 2048, 384, 1152, 0>, floats = array<f64>}
        : memref<8x256x384xf32>, memref<384x1152xf32>, memref<1152xf32>, memref<8x256x1152xf32>
    ```
  }];
  let arguments = (ins StrAttr:$kernel, Variadic<AnyMemRef>:$operands,
                       DenseI64ArrayAttr:$ints, DenseF64ArrayAttr:$floats);
  let assemblyFormat = [{
    $kernel `(` $operands `)` attr-dict `:` type($operands)
  }];
  let hasVerifier = 1;
}

#endif // LLMRT_OPS_TD
