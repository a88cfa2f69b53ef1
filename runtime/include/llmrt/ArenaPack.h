//===- ArenaPack.h - a program's temporaries packed anew --------*- C++ -*-===//
//
// The compiler packs a program's temporaries by their fp32 size. A GPU
// executor that stores some of them in 16 bits (Store16.h) needs only the
// first half of those buffers: packing the temporaries again with the
// bytes each really takes gives the arena back what 16-bit storage saves.
// The new layout keeps every alias the compiler made (buffers that share
// bytes while both are live, an in-place result and its operand) and
// moves each such group as one piece (the compiler's longer lives for a
// second stream only where asked: PackOptions); it reads no device state, so the CPU
// tests it, and the CPU executor can run under it (LLMRT_ARENA_REPACK=1)
// to check it end to end.
//
// Several ranks: rank-dependent views move with what they view, and a
// collective an executor lets run on keeps its operands live to the
// instruction that waits for it (PackOptions). Pipeline sends copy out at
// their instruction and receives complete at theirs (or at the wait that
// names the buffer again).
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_ARENAPACK_H
#define LLMRT_ARENAPACK_H

#include "llmrt/ProgramFormat.h"
#include "llmrt/Store16.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace llmrt {

class Communicator;

/// A packing of a program's temporaries (packArena).
struct ArenaLayout {
  /// Per buffer: its offset in the new layout (buffers not moved keep
  /// theirs).
  std::vector<uint64_t> offset;
  /// The bytes the temporaries need at their peak, from the arena's start
  /// (what the layout saves is the program's arenaBytes minus this).
  uint64_t peakBytes = 0;
  /// The arena to allocate: peakBytes, or more where a buffer that needs
  /// less than its size (`need` below) is placed near the end, so that
  /// every buffer's whole size still lies inside the arena.
  uint64_t arenaBytes = 0;
  /// Groups of temporaries moved as one piece, and those of them that
  /// take less than their size.
  int groups = 0, shrunk = 0;
  /// Why the layout is not used (empty: it is), e.g. no smaller than the
  /// compiler's.
  std::string unused;
};

/// What packArena keeps besides each buffer's own life.
struct PackOptions {
  /// Pack even where the peak is no smaller than the compiler's (a check).
  bool evenIfLarger = false;
  /// Keep each linear_bwd_weight's operands live to the next one, as the
  /// compiler does for --target cuda (overlapWeightGrads): the room a
  /// second stream needs to run weight gradients beside the main one.
  bool keepWeightGradOperands = false;
  /// Several ranks: the bytes from a buffer's offset that its views on all
  /// ranks cover (a rank-dependent view: its rank stride times the group's
  /// size less one, plus its size), which move with what they view. Null:
  /// a program with rank-dependent views keeps the compiler's layout.
  std::function<uint64_t(const BufferDesc &)> allRanks;
  /// Per function and instruction (where given): the last instruction up
  /// to which its operands stay live (a collective an executor lets run on
  /// until a later instruction waits for it: deferCollectives).
  std::vector<std::vector<size_t>> livesTo;
};

/// The temporaries of `p` packed anew (largest first, each at the lowest
/// offset free over its live instructions), buffer b taking `need[b]`
/// bytes (at most its size; rounded up to the arena's alignment) where
/// every buffer sharing its bytes and life has the same range, its size
/// otherwise. A temporary is a Temp buffer past the persistent region
/// (params, optimizer state, inputs, outputs); it is live in a function
/// from the first instruction that names it to the last. Buffers whose
/// ranges overlap while both are live stay together, at the same distance;
/// a temporary that the first instruction naming it in some function reads
/// (what an earlier run left; any slot not written whole or as a column
/// slice counts as a read) is live throughout. `unused` says why not where
/// the peak is no smaller than the compiler's, or the program has
/// rank-dependent views and no `allRanks`, or a temporary that starts
/// inside the persistent region and ends past it.
ArenaLayout packArena(const ProgramDesc &p, const std::vector<uint64_t> &need,
                      const PackOptions &options = {});

/// The CUDA executor's packing of `p` on rank `comm.rank()` with the
/// 16-bit plan `plan16` (planDeviceStore16): a temporary every operand
/// slot of which is 16-bit in its own bytes (no side value) needs half its
/// bytes; rank views cover their extent on all ranks (allRanksBytes); on
/// several ranks, the collectives left running keep their operands to
/// their waits over the compiler's layout (deferredLives, unfenced as
/// NCCL's) where that packs into no larger an arena; with
/// `keepWeightGradOperands`, as PackOptions says.
ArenaLayout packDeviceArena(const ProgramDesc &p, const Communicator &comm,
                            const Store16Plan &plan16, bool keepWeightGradOperands);

/// Runs `p`'s functions in order, twice, on rank `comm.rank()`'s view of
/// two layouts (the compiler's, and `layout`'s offsets), tracking which
/// instruction wrote each byte, and compares what every read sees: ""
/// where each sees the same writes (what nothing wrote aside), else the
/// first read that differs. Each operand slot touches its buffer's bytes
/// on this rank, half of them where `plan16` stores it 16-bit, none where
/// it lives beside (a side value); slots written whole or in part
/// (writtenSlots; a fused group's outputs) are writes, the others reads,
/// and AdamW's updates in place read too. A check of a packing against the
/// program, independent of how it was packed.
std::string verifyLayout(const ProgramDesc &p, const Communicator &comm,
                         const Store16Plan &plan16, const ArenaLayout &layout);

/// `p` with its buffers at `layout`'s offsets and arena (a copy).
ProgramDesc withLayout(const ProgramDesc &p, const ArenaLayout &layout);

} // namespace llmrt

#endif // LLMRT_ARENAPACK_H
