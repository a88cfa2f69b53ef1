//===- Store16.h - tensors a GPU stores as 16-bit GEMM operands --*- C++ -*-===//
//
// On a GPU whose GEMMs multiply 16-bit copies of fp32 operands (the CUDA
// backend's bf16 and fp16 modes), a tensor that only GEMMs read need not
// exist in fp32 at all: the kernel that writes it can write the copy the
// GEMM would have made (the same rounding), and the GEMM reads that. Half
// the bytes written, no conversion pass, and the products are bit for bit
// the same. planStore16 picks those tensors from a program's instructions;
// it reads no device state, so the CPU tests it.
//
// The CUDA executor's other plans over a program's instructions live here
// too, for the same reason: which residual adds and GELUs fuse into the
// kernels beside them (planResidualAdds, planAddNorms, planGeluFusions),
// and which weight gradients run on a second stream, with their waits
// (planSideStream).
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_STORE16_H
#define LLMRT_STORE16_H

#include "llmrt/ProgramFormat.h"

#include <cstdint>
#include <functional>
#include <map>
#include <tuple>
#include <vector>

namespace llmrt {

struct Store16Plan {
  /// Per function and instruction: the operand slots (bit k: operand k)
  /// that are 16-bit.
  std::vector<std::vector<uint32_t>> slots;
  /// The 16-bit operands that live in a separate region of sideBytes, by
  /// (function, instruction, slot): their offset there. (Their writer reads
  /// the same bytes: a kernel that rounded in place would overwrite
  /// elements other threads have yet to read.) The others live in the
  /// first half of their buffer's own bytes.
  std::map<std::tuple<uint32_t, uint32_t, uint32_t>, uint64_t> side;
  uint64_t sideBytes = 0;
  /// How many tensors (values) are stored 16-bit, and their fp32 bytes.
  int64_t count = 0;
  uint64_t fp32Bytes = 0;
};

/// The slots of `inst` (bit k: operand k) that write a tensor the GPU can
/// write as 16-bit (layer and RMS norm outputs, GELU and SiLU and their
/// gradients, the loss gradient; with `activations`, a linear_fwd's output
/// too).
/// `wholeLoss`: whether a vocab loss holds its whole vocabulary (a
/// tensor-parallel group of one rank: one kernel, no statistics
/// exchanged).
/// `attention`: this attention instruction's kernel takes and writes
/// 16-bit tensors (its output, or its dq, dk, dv, are then writers).
uint32_t store16Writers(const Instruction &inst, bool wholeLoss,
                        bool activations = false, bool attention = false);
/// Whether operand `slot` of `inst` may be read as 16-bit: a GEMM's x, w
/// or dy (linear_fwd, linear_bwd_weight; not the bias) or sum_rows' dy;
/// with `activations` also the inputs of GELU, SiLU and their gradients,
/// an add without broadcast, a layer norm backward's dy, the loss's logits
/// and a column copy's source; with `attention` (this instruction's kernel
/// takes them) attention's q, k, v, dout and out.
bool store16Reader(const Instruction &inst, size_t slot, bool wholeLoss = true,
                   bool activations = false, bool attention = false);
/// The operand slots `inst` overwrites whole (bit k: operand k): a new
/// value of that buffer starts there. Partial writes (copy_columns; an
/// attention gradient's column slices unless together they tile their
/// buffer), collectives and opcodes not listed count as reads only.
uint32_t overwrittenSlots(const Instruction &inst, const ProgramDesc &p);

/// The tensors of `p` stored 16-bit. A buffer holds a sequence of values,
/// each from an instruction that overwrites it to the next; a value is
/// stored 16-bit where store16Writers slots write it, nothing but
/// store16Reader slots reads it, and (without `activations`: the GEMMs'
/// own rounding, nothing else) a GEMM reads it. Only temporaries (not
/// views); where some function reads a buffer before it writes it (what
/// another function or an earlier run left), that buffer's last value in
/// each function stays fp32. `range(b)`: buffer b's bytes in
/// the arena [begin, end) as the device resolves them (the in-place test:
/// a value whose writer reads, or whose reader writes, bytes it overlaps
/// lives beside them). Side values share bytes where their uses do not
/// overlap in time.
Store16Plan planStore16(
    const ProgramDesc &p,
    const std::function<std::pair<uint64_t, uint64_t>(uint32_t)> &range,
    const std::function<bool(const Instruction &)> &wholeLoss,
    bool activations = false,
    const std::function<bool(const Instruction &)> &attention16 = nullptr);

class Communicator;

/// The head dimension of the CUDA runtime's FlashAttention-2 kernels (bf16
/// tiles in registers; others run the WMMA or fp32 kernels).
inline constexpr int64_t kFlashAttentionHeadDim = 64;
/// Whether the CUDA runtime's FlashAttention-2 kernels can run attention
/// instruction `inst` (with bf16 tensor cores, its defaults): its head
/// dimension, and q, k, v and their gradients at column offsets and row
/// strides that are multiples of 4 elements.
bool flashAttentionRuns(const Instruction &inst);

/// planStore16 as the CUDA executor calls it on rank `comm.rank()`: each
/// buffer where that rank's view of it lies, the vocabulary loss whole in
/// a tensor-parallel group of one rank, 16-bit activations where
/// `activations`, attention's tensors 16-bit where `attention16(inst)`.
Store16Plan planDeviceStore16(const ProgramDesc &p, const Communicator &comm, bool activations,
                              const std::function<bool(const Instruction &)> &attention16);

/// The CUDA executor's device workspace beside its arena, as it sizes it
/// (CudaExecutor.cpp), each part 256-byte aligned: attention's row
/// statistics (the largest attention's 2 B Hq S floats), the per-row losses
/// (a float a row), 256 bytes of norm accumulators, several ranks' row
/// statistics (3 doubles a row), the loss's row pairs (2 floats a row);
/// then the 16-bit values kept beside their buffers (Store16Plan's
/// sideBytes) and attention's scratch (attentionScratchBytes). Its GEMMs'
/// scratch is cuBLAS's (gemmScratchElems), the weights' 16-bit copies last.
struct DeviceWorkspace {
  int64_t attention = 0, rows = 0, stats = 0, pairs = 0;
  int64_t fixedBytes() const { return attention + rows + 256 + stats + pairs; }
};
DeviceWorkspace deviceWorkspace(const ProgramDesc &p, bool multi);
/// Attention's row statistics for B x S queries of Hq heads (bytes).
inline int64_t attentionStatsBytes(int64_t B, int64_t S, int64_t Hq) { return 2 * B * Hq * S * 4; }
/// The bytes of attention's scratch: dense copies of q, k, v (and dq, dk,
/// dv) where the kernel cannot read column slices in place (`flash(inst)`
/// false: not FlashAttention-2), the fp32 dq under a 16-bit one.
int64_t attentionScratchBytes(const ProgramDesc &p, const Store16Plan &plan16,
                              const std::function<bool(const Instruction &)> &flash);
/// The elements of the 16-bit GEMMs' scratch: the copies of the fp32
/// operands a GEMM converts (A at 0, B after it on a 256-byte boundary:
/// CudaBlas.cpp), the largest any GEMM takes, at least 1 where a GEMM is
/// (a 16-bit output's bias lives there too). An operand stored 16-bit takes
/// none; a weight is counted even where LLMRT_CUDA_WEIGHT16 keeps a copy
/// (without room for the copies, the GEMMs convert them).
int64_t gemmScratchElems(const ProgramDesc &p, const Store16Plan &plan16);
/// cuBLAS's device memory beside the scratch (CudaBlas.cpp): the
/// scratch's padding (its operands start on 256-byte boundaries), a 16-bit
/// bias of up to this many elements, and cuBLASLt's workspace.
inline constexpr int64_t kGemmScratchPadElems = 256;
inline constexpr int64_t kGemmBias16Elems = 1 << 16;
inline constexpr int64_t kGemmLtWorkspaceBytes = 32 << 20;
/// The bytes cuBLAS holds for a 16-bit GEMM scratch of `elems`
/// (gemmScratchElems; none where no GEMM is) and cuBLASLt's workspace.
inline int64_t gemmDeviceBytes(int64_t elems) {
  return (elems > 0 ? (elems + kGemmScratchPadElems + kGemmBias16Elems) * 2 : 0) +
         kGemmLtWorkspaceBytes;
}

/// The parameters a linear_fwd reads as its weight (operand 1), f32 and
/// not empty: those the CUDA executor keeps 16-bit copies of
/// (LLMRT_CUDA_WEIGHT16, one rank).
std::vector<uint32_t> gemmWeights(const ProgramDesc &p);

/// Whether instruction j of function f is the last to read the value that
/// buffer b holds there: j overwrites b itself (in place), or no later
/// instruction of f reads b before one overwrites it whole and no function
/// reads b before writing it (what one run leaves, the next does not
/// read). Partial writes count as reads.
bool lastReadOf(const ProgramDesc &p, size_t f, size_t j, uint32_t b);

/// The bytes [begin, end) operand k of instruction i is at (the fusion
/// planners' view of an executor's operands).
using OperandBytes = std::function<std::pair<uint64_t, uint64_t>(size_t i, size_t k)>;

/// A residual add fused into the instruction that wrote one of its
/// operands: that linear_fwd (cuBLASLt's C, beta = 1), layer_norm_bwd or
/// (vocab_)embedding_bwd (its table gradient starting from the addend
/// instead of zeros: a tied embedding's two gradients) writes operand
/// `addend` of the add plus its own result into the add's output, slot
/// `out` of the writer, and the add does nothing.
struct AddFusion {
  size_t writer, add;
  uint32_t addend, out;
};
/// The adds of function f (no broadcast, fp32 addend and sum) of a value
/// a linear_fwd, a layer_norm_bwd or an embedding_bwd wrote that nothing
/// else reads (the attention projection's and the MLP's outputs; the
/// layer norm's input gradient; the token embedding's gradient, added to
/// the tied output layer's), where nothing between the two touches the addend's or the
/// sum's bytes and the sum overlaps none of the writer's inputs but the
/// layer norm's x or fp32 dy exactly (its threads hold their rows).
/// `range(i, k)`: the bytes operand k of instruction i is at; `half16`
/// and `skip` per instruction: its 16-bit operands (Store16Plan), and
/// whether the executor already leaves it out.
std::vector<AddFusion> planResidualAdds(
    const ProgramDesc &p, size_t f, const OperandBytes &range,
    const std::vector<uint32_t> &half16, const std::vector<char> &skip);

/// The token embedding's lookup done by the add of its output (to the
/// position embedding, broadcast over the batch): the embedding_fwd does
/// nothing, and in the add's place one kernel gathers the table's rows
/// and adds operand `addend` of the add (its element e % period) into the
/// add's output.
struct EmbeddingAddFusion {
  size_t embedding, add;
  uint32_t addend;
};
/// The adds of function f (fp32 operands and sum; broadcast or not) of a
/// value an embedding_fwd wrote whole that nothing else reads, where
/// nothing between the two touches the lookup's ids, table or output, and
/// the sum overlaps neither the ids, the table nor the addend (but is the
/// addend itself, without broadcast: an element is read before it is
/// written). Arguments as planResidualAdds'.
std::vector<EmbeddingAddFusion> planEmbeddingAdds(
    const ProgramDesc &p, size_t f, const OperandBytes &range,
    const std::vector<uint32_t> &half16, const std::vector<char> &skip);

/// A residual add done by the layer norm after it (LLMRT_CUDA_FUSE_ADD_NORM):
/// the norm reads the add's two operands, writes their sum (the add's
/// output, which later instructions read) and normalizes it from
/// registers; the add does nothing.
struct AddNormFusion {
  size_t add, norm;
};
/// The adds of function f (no broadcast, an fp32 sum) that the next
/// instruction, a layer_norm_fwd of that sum, can do: its output overlaps
/// none of the add's tensors, and the sum either overlaps neither operand
/// or is an fp32 operand exactly (in place: a row is read whole before it
/// is written). Arguments as planResidualAdds'.
std::vector<AddNormFusion> planAddNorms(
    const ProgramDesc &p, size_t f, const OperandBytes &range,
    const std::vector<uint32_t> &half16, const std::vector<char> &skip);

/// A GELU (forward or backward) done in the epilogue of the linear_fwd
/// before it (cuBLASLt GELU_AUX(_BIAS), DGELU): forward, the GEMM writes
/// the GELU's output and keeps its input (the pre-activation it wrote
/// before); backward, it writes the GELU's input gradient from the
/// pre-activation, and the product (dy of the GELU) is never stored.
struct GeluFusion {
  size_t gemm, gelu;
  bool backward;
};
/// The GELUs of function f that the GEMM writing their input (forward: x;
/// backward: dy, which nothing else reads) can compute: nothing between
/// the two touches the tensors involved, the GEMM's output does not
/// overlap its inputs, and the epilogue's two tensors (GELU output or
/// input gradient, and the pre-activation) are stored alike (both 16-bit
/// or both fp32; `half16` per instruction as planStore16 left it). The
/// backward's GEMM has no bias. Arguments as planResidualAdds'.
std::vector<GeluFusion> planGeluFusions(
    const ProgramDesc &p, size_t f, const OperandBytes &range,
    const std::vector<uint32_t> &half16, const std::vector<char> &skip);

/// Where `inst` writes (bit k: operand k), for the hazards of running
/// instructions side by side: the slots it overwrites whole and its
/// partial writes (column copies, attention's column slices, AdamW's
/// parameter and moments, the norm and clip results); an opcode not known
/// here counts as writing every operand.
uint32_t writtenSlots(const Instruction &inst, const ProgramDesc &p);

/// Bytes [begin, end) an instruction touches, and whether it writes them.
struct Touch {
  uint64_t begin, end;
  bool writes;
};

/// Weight gradients on a second stream (the CUDA executor's
/// LLMRT_CUDA_WGRAD_STREAM=1): each linear_bwd_weight not skipped (with the
/// instruction after it where `withNext`: its bias gradient, a sum_rows of
/// its dy) is a unit the side stream runs once the main stream has queued
/// everything before it, while the main stream goes on. An instruction
/// that writes a byte a pending unit reads, or touches a byte it writes,
/// waits for that unit, and so (the side stream runs its units in order)
/// for every unit before it; the global norm, AdamW, the clip and every
/// collective wait for all (an AdamW batch updates gradients it does not
/// name). `touches(i)`: what instruction i touches, with what another
/// instruction does in its place (a fused add or GELU).
struct SideStreamPlan {
  std::vector<int> unitOf;     ///< per instruction: its unit, or -1 (main)
  std::vector<int> waitBefore; ///< per instruction: the unit to wait for, or -1
  int units = 0;
  int atEnd = -1; ///< the unit to wait for after the last instruction, or -1
};
SideStreamPlan planSideStream(const ProgramDesc &p, size_t f,
                              const std::function<std::vector<Touch>(size_t)> &touches,
                              const std::vector<char> &skip,
                              const std::vector<char> &withNext);

} // namespace llmrt

#endif // LLMRT_STORE16_H
