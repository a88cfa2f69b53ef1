//===- Program.h - loading and validating a runtime program ------*- C++ -*-===//
#ifndef LLMRT_PROGRAM_H
#define LLMRT_PROGRAM_H

#include "llmrt/ProgramFormat.h"

#include "absl/status/statusor.h"
#include "absl/types/span.h"

#include <string>

namespace llmrt {

/// A program read from its serialized form and fully validated: magic,
/// version, checksum, every buffer inside the arena with the size its shape
/// implies, every instruction a known opcode with the operand, int and float
/// counts of ProgramFormat.h and operand ids in range. `source` names the
/// file in errors.
absl::StatusOr<ProgramDesc> parseProgram(absl::Span<const uint8_t> bytes,
                                         const std::string &source);

/// The program embedded in the executable `exePath` (normally
/// /proc/self/exe) after its trailer.
absl::StatusOr<ProgramDesc> loadEmbeddedProgram(const std::string &exePath);

} // namespace llmrt

#endif // LLMRT_PROGRAM_H
