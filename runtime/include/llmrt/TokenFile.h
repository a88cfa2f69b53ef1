//===- TokenFile.h - llm.c token files -----------------------------*- C++ -*-===//
//
// The data format of llm.c (Karpathy): a header of 256 little-endian int32,
//   header[0] = 20240520 (magic), header[1] = 1 (version),
//   header[2] = number of tokens,
// then that many uint16 tokens. Byte-level text (vocabulary 256) is written
// by `llm-tokenize`.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_TOKENFILE_H
#define LLMRT_TOKENFILE_H

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

#include <cstdint>
#include <string>
#include <vector>

namespace llmrt {

inline constexpr int32_t kTokenFileMagic = 20240520;
inline constexpr int32_t kTokenFileVersion = 1;
inline constexpr int64_t kTokenFileHeaderInts = 256;
inline constexpr int64_t kTokenFileHeaderBytes = kTokenFileHeaderInts * 4;

/// A token file read whole into memory and validated.
class TokenFile {
public:
  /// Reads and validates `path`: magic, version, a size that matches the
  /// declared count, and every token below `vocabSize` (0 skips that check).
  /// Errors name the file and the byte offset at fault.
  static absl::StatusOr<TokenFile> read(const std::string &path,
                                        int64_t vocabSize);

  const std::string &path() const { return path_; }
  absl::Span<const uint16_t> tokens() const { return tokens_; }
  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }

private:
  std::string path_;
  std::vector<uint16_t> tokens_;
};

/// Writes `tokens` to `path` atomically (a temporary file beside it, fsync,
/// rename).
absl::Status writeTokenFile(const std::string &path,
                            absl::Span<const uint16_t> tokens);

} // namespace llmrt

#endif // LLMRT_TOKENFILE_H
