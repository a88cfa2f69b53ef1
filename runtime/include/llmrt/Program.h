//===- Program.h - loading and validating a runtime program ------*- C++ -*-===//
#ifndef LLMRT_PROGRAM_H
#define LLMRT_PROGRAM_H

#include "llmrt/ProgramFormat.h"

#include "absl/status/statusor.h"
#include "absl/types/span.h"

#include <string>
#include <vector>

namespace llmrt {

/// A program read from its serialized form and fully validated: magic,
/// version, checksum, every buffer inside the arena with the size its shape
/// implies, every instruction a known opcode with the operand, int and float
/// counts of ProgramFormat.h and operand ids in range. `source` names the
/// file in errors.
absl::StatusOr<ProgramDesc> parseProgram(absl::Span<const uint8_t> bytes,
                                         const std::string &source);

/// The bytes embedded in the executable `exePath` (normally
/// /proc/self/exe) after its trailer: one program or a pipeline bundle.
absl::StatusOr<std::vector<uint8_t>> readEmbedded(const std::string &exePath);

/// Whether `bytes` is a pipeline bundle (ProgramFormat.h), by its magic.
bool isBundle(absl::Span<const uint8_t> bytes);

/// The serialized stage programs of the pipeline bundle `bytes` (views
/// into it, stage 0 first), its framing checked: the magic, at least two
/// stages, every length inside the bundle and nothing after the last.
absl::StatusOr<std::vector<absl::Span<const uint8_t>>>
splitBundle(absl::Span<const uint8_t> bytes, const std::string &source);

/// The pipeline stage of `rank` in a world of `world` ranks for the
/// embedded `bytes`: 0 for one program; for a bundle, rank / (tp dp) from
/// program 0's metadata ("world", "tp", "dp", "pp"), which must agree with
/// each other and with the bundle's stage count. A world other than the
/// compiled one is a FailedPrecondition (every rank finds it alike).
absl::StatusOr<int> stageOfRank(absl::Span<const uint8_t> bytes,
                                const std::string &source, int rank, int world);

/// The program of pipeline stage `stage` in the embedded `bytes`, fully
/// validated: the one program (stage 0 only), or the bundle's stage program
/// whose metadata must say "stage": stage and "pp": the stage count.
absl::StatusOr<ProgramDesc> parseEmbedded(absl::Span<const uint8_t> bytes,
                                          const std::string &source, int stage);

/// Every program of the embedded `bytes`, stage order (one for a single
/// program), each as parseEmbedded checks it.
absl::StatusOr<std::vector<ProgramDesc>>
parseEmbeddedAll(absl::Span<const uint8_t> bytes, const std::string &source);

/// The program of pipeline stage `stage` embedded in `exePath`
/// (readEmbedded, then parseEmbedded).
absl::StatusOr<ProgramDesc> loadEmbeddedProgram(const std::string &exePath,
                                                int stage = 0);

/// The arena's byte ranges [begin, end) that hold the buffers of `role`
/// (every function's: the same bytes once), sorted, as few as can be: two
/// ranges become one where they touch or overlap, or where the gap between
/// them (at most `maxGap` bytes) holds no byte of any buffer, so that
/// copying it as well changes nothing. A host backend's inputs (or
/// outputs) then take one copy a step where they took one a buffer.
std::vector<std::pair<uint64_t, uint64_t>> roleRanges(const ProgramDesc &p, BufferRole role,
                                                      uint64_t maxGap = 4096);

} // namespace llmrt

#endif // LLMRT_PROGRAM_H
