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

/// The slot of `inst` that writes a tensor the GPU can write as 16-bit
/// (layer and RMS norm outputs, GELU and SiLU and their gradients, the
/// loss gradient; with `activations`, a linear_fwd's output too), or -1.
/// `wholeLoss`: whether a vocab loss holds its whole vocabulary (a
/// tensor-parallel group of one rank: one kernel, no statistics
/// exchanged).
int store16Writer(const Instruction &inst, bool wholeLoss, bool activations = false);
/// Whether operand `slot` of `inst` may be read as 16-bit: a GEMM's x, w
/// or dy (linear_fwd, linear_bwd_weight; not the bias) or sum_rows' dy;
/// with `activations` also the inputs of GELU, SiLU and their gradients,
/// an add without broadcast, a layer norm backward's dy, the loss's logits
/// and a column copy's source.
bool store16Reader(const Instruction &inst, size_t slot, bool wholeLoss = true,
                   bool activations = false);
/// The operand slots `inst` overwrites whole (bit k: operand k): a new
/// value of that buffer starts there. Partial writes (copy_columns),
/// collectives and opcodes not listed count as reads only.
uint32_t overwrittenSlots(const Instruction &inst);

/// The tensors of `p` stored 16-bit. A buffer holds a sequence of values,
/// each from an instruction that overwrites it to the next; a value is
/// stored 16-bit where a store16Writer slot writes it, nothing but
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
    bool activations = false);

} // namespace llmrt

#endif // LLMRT_STORE16_H
