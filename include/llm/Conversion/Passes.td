//===- Passes.td - llm conversion passes --------------------*- tablegen -*-===//
#ifndef LLM_CONVERSION_PASSES_TD
#define LLM_CONVERSION_PASSES_TD

include "mlir/Pass/PassBase.td"

def LowerToRT : Pass<"llm-lower-to-rt", "mlir::ModuleOp"> {
  let summary = "Lower the training step and the model to llmrt programs";
  let description = [{
    Replaces `@train_step` (after llm-autodiff and llm-optimizer) and the
    model function with two llmrt functions, `@train` and `@eval`, of kernel
    calls on views of one arena:

    - Buffer assignment: parameters, AdamW moments, inputs and outputs get a
      persistent region (the same offsets in both functions); every other
      tensor is a temporary whose offset is packed from its live range
      (definition to last use), largest first, lowest free offset, 64-byte
      aligned. The two functions share the temporary region. Elementwise
      kernels whose operand dies at the op write in place. Updated
      parameters and moments (`llm.update`) are written in place by AdamW.
    - Kernel selection: one kernel per llm op (a split or concat of n parts
      is n column copies), with the sizes and attributes the kernel needs.

    The module gets `llmrt.arena_bytes` (the compile-time peak) and
    `llmrt.metadata` (the model's config and stats, for the runtime's logs).

    Fails for element types other than f32 (the CPU runtime computes in f32),
    splits and concats along an axis other than the last, and updates that
    are not legal in place.

    Data-parallel gradient buckets (`bucket-bytes` > 0): the gradient
    all-reduces of `@train` whose results only the optimizer reads are cut,
    in the order the backward finishes them, into buckets of at least
    min(`bucket-bytes`, max(1 MiB, 1/8 of the gradients)) (several buckets
    overlap the backward, and a bucket's storage, live from its first
    gradient, costs little extra memory); a bucket's gradients are one
    contiguous storage, reduced
    by one `all_reduce_start` after its last gradient (the backward goes on
    while it is in flight) and one `all_reduce_wait` before the first read
    of any of them (the global norm).

    Attention's column views (`attention-column-views`, on by default): a
    split whose results only attention ops read (as q, k or v) is not
    copied out; the attention reads its columns in place from the split's input
    (whose storage lives on to the last such read), and an attention
    gradient whose dq, dk and dv only one concat takes writes them in place
    into the concat's result (live from the gradient on). The kernel gets
    each such tensor's row stride and first column as six more ints
    (forward) or twelve (backward); the runtime's AttentionLayout reads
    them.

    Overlapped weight gradients (`overlap-weight-grads`, llm-compile's
    default for `--target cuda`; one rank): the operands of each
    `linear_weight_grad` stay alive (no other tensor packed into their
    bytes) until the next weight gradient, so that the CUDA runtime can run
    a weight gradient on a second stream while the instructions up to the
    next one run (LLMRT_CUDA_WGRAD_STREAM=1). Only where the arena's peak
    does not grow: all of them if that packs into the same peak, else one
    weight gradient's operands at a time, in order (up to 64 tries).
  }];
  let options = [
    Option<"bucketBytes", "bucket-bytes", "int64_t", "0",
           "data-parallel gradient bucket size in bytes (0: one synchronous "
           "all-reduce per gradient)">,
    Option<"overlapWeightGrads", "overlap-weight-grads", "bool", "false",
           "keep each weight gradient's operands alive until the next "
           "weight gradient starts (a GPU runs weight gradients on a second "
           "stream beside the instructions between)">,
    Option<"attentionColumnViews", "attention-column-views", "bool", "true",
           "attention reads q, k, v in place from the fused projection's "
           "output and writes dq, dk, dv in place into its gradient (no "
           "column copies)">,
  ];
  let dependentDialects = ["mlir::func::FuncDialect",
                           "mlir::llmrt::LLMRTDialect"];
}

def FuseElementwise : Pass<"llm-fuse-elementwise", "mlir::ModuleOp"> {
  let summary = "Merge chains of elementwise kernels into fusion groups";
  let description = [{
    Finds, in the llmrt functions, elementwise kernels (`add`, `mul`,
    `gelu_fwd`, `gelu_bwd`, `silu_fwd`, `silu_bwd`, or groups already
    formed) whose input is the output of an earlier elementwise kernel over
    the same number of elements, and merges the producer into its consumer:
    one `fused_elementwise` kernel that reads the group's inputs once,
    computes every micro-op in registers and writes the group's outputs.

    A producer moves down to its consumer only when no kernel in between
    touches (reads or writes) any arena byte of the producer's operands.
    The intermediate is not written at all when nothing reads it afterwards
    (no other use of its buffer, and the next kernel that touches its bytes
    writes them first); otherwise it stays an output of the group.

    With `gpu`, each group also becomes a `gpu.func` of the
    `gpu.module @llm_kernels` (a grid-stride loop over the elements, bare
    pointers to static memrefs), the kernel the runtime launches;
    llm-gpu-to-ptx lowers that module to PTX. The module lists the entry
    names in `llm.gpu_entries` (the order of the kernels' `kernel` index).

    With `norms`, a `layer_norm_fwd` or `rms_norm_fwd` whose input is an
    output of such a group (a residual add) takes the group in as its
    prologue: one `fused_norm` kernel that computes the group row by row,
    stores its outputs and normalizes the row into y. Legal where nothing in
    between touches the group's operands, no output shares bytes with
    another, and an output overwrites an input only byte for byte and only
    where the group stores x (the GPU kernel's loop form, for C not a
    multiple of 32 or over 1024, reads a row again after it stores it: x
    from its output, of the inputs only w and b; its unrolled form keeps x
    in registers, and the rule holds for both, which the loader cannot tell
    apart). Its GPU
    kernel takes each operand as bytes and a storage code (fp32, bf16 or
    fp16: the CUDA runtime's 16-bit storage decides).

    Example (Llama's SwiGLU forward):
    ```mlir
    llmrt.kernel "silu_fwd"(%g, %s)
    llmrt.kernel "linear_fwd"(%x, %w_up, %u)
    llmrt.kernel "mul"(%s, %u, %h)
    // becomes
    llmrt.kernel "linear_fwd"(%x, %w_up, %u)
    llmrt.kernel "fused_elementwise"(%g, %u, %s, %h)  // s kept: the backward reads it
    ```
  }];
  let options = [
    Option<"gpu", "gpu", "bool", "false",
           "also build each group's GPU kernel (gpu and arith/math dialects)">,
    Option<"norms", "norms", "bool", "false",
           "also end a group in the layer or RMS norm forward that reads its "
           "value (fused_norm)">,
  ];
  let dependentDialects = ["mlir::llmrt::LLMRTDialect", "mlir::gpu::GPUDialect",
                           "mlir::arith::ArithDialect", "mlir::math::MathDialect",
                           "mlir::memref::MemRefDialect", "mlir::scf::SCFDialect"];
}

def GPUToPTX : Pass<"llm-gpu-to-ptx", "mlir::ModuleOp"> {
  let summary = "Lower the module's GPU kernels to PTX with LLVM's NVPTX backend";
  let description = [{
    Runs upstream's pipeline on the `gpu.module`s of the module:
    nvvm-attach-target (`chip`, -O3), then inside each module scf to cf and
    convert-gpu-to-nvvm (bare-pointer calling convention), then
    gpu-module-to-binary with format `isa`: each `gpu.module` becomes a
    `gpu.binary` whose object is PTX text (libdevice is linked for the math
    functions). The runtime loads it with cuModuleLoadData.
  }];
  let options = [
    Option<"chip", "chip", "std::string", "\"sm_90\"", "the target GPU (sm_XY)">,
  ];
  let dependentDialects = ["mlir::gpu::GPUDialect", "mlir::NVVM::NVVMDialect",
                           "mlir::LLVM::LLVMDialect", "mlir::cf::ControlFlowDialect"];
}

#endif // LLM_CONVERSION_PASSES_TD
