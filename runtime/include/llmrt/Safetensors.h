//===- Safetensors.h - safetensors reader and writer ------------*- C++ -*-===//
//
// The safetensors format (Hugging Face):
//   - 8 bytes: little-endian uint64 N, the length of the header;
//   - N bytes: a UTF-8 JSON object mapping each tensor name to
//       {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}
//     with byte offsets relative to the start of the data section, plus an
//     optional "__metadata__" object of string to string. The header may be
//     padded with trailing spaces (writers pad it to a multiple of 8 bytes);
//   - the data section: the tensors' little-endian, row-major bytes, which
//     must cover it exactly (no holes, no overlaps, no trailing bytes).
//
// Only the floating-point dtypes the compiler uses are supported: F32, BF16
// and F16. Reading converts any of them to f32; writing converts from f32
// with round-to-nearest-even.
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_SAFETENSORS_H
#define LLMRT_SAFETENSORS_H

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmrt {

/// The largest header accepted on read, as in the reference implementation.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;

/// Element types supported by the reader and the writer.
enum class DType { F32, BF16, F16 };

/// The safetensors spelling of `dtype`: "F32", "BF16" or "F16".
const char *dtypeName(DType dtype);

/// The size in bytes of one element of `dtype`.
int dtypeBytes(DType dtype);

/// Parses a safetensors dtype name; std::nullopt for any name not supported
/// (including valid safetensors dtypes such as "F64" or "I32").
std::optional<DType> parseDType(std::string_view name);

/// One tensor of a safetensors file, as its header describes it.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  /// Byte offsets [begin, end) relative to the start of the data section.
  int64_t begin = 0;
  int64_t end = 0;

  /// The product of `shape` (1 for a scalar, 0 if any dimension is 0).
  int64_t numElements() const;
  /// end - begin.
  int64_t numBytes() const { return end - begin; }
};

/// A safetensors file, mapped into memory and validated.
class SafetensorsFile {
public:
  /// Reads and validates `path`: the header length, the JSON header (syntax,
  /// duplicate keys, the types of every field), the supported dtypes, the
  /// shapes, and that the tensors' byte ranges match their shapes and cover
  /// the data section exactly. Errors name the file and the tensor, offset or
  /// key at fault.
  static absl::StatusOr<SafetensorsFile> read(const std::string &path);

  /// The path the file was read from.
  const std::string &path() const { return path_; }
  /// Every tensor, in the order of their offsets in the data section.
  const std::vector<TensorInfo> &tensors() const { return tensors_; }
  /// The tensor called `name`, or nullptr if there is none.
  const TensorInfo *find(std::string_view name) const;
  /// The "__metadata__" of the header (empty if it has none).
  const std::map<std::string, std::string> &metadata() const {
    return metadata_;
  }
  /// The file offset at which the data section starts (8 + header length).
  int64_t dataOffset() const { return dataOffset_; }

  /// The raw little-endian bytes of `tensor`, which must be one of
  /// tensors().
  absl::Span<const uint8_t> bytes(const TensorInfo &tensor) const;

  /// Copies tensor `name`, converted to f32, into `dst`, which holds
  /// `numElements` floats. Errors if there is no such tensor or if
  /// `numElements` differs from the tensor's element count.
  absl::Status readF32(std::string_view name, float *dst,
                       int64_t numElements) const;

private:
  std::string path_;
  /// The file's bytes: a read-only private mapping of it (pages load on
  /// demand and stay reclaimable), or a heap copy where it cannot be mapped.
  std::shared_ptr<const uint8_t> contents_;
  size_t size_ = 0;
  int64_t dataOffset_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;
  std::map<std::string, std::string> metadata_;
};

/// A tensor to write: `data` holds numElements() f32 values, converted to
/// `dtype` on write.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const float *data = nullptr;
};

/// Writes `tensors` and `metadata` to `path` atomically (a temporary file
/// beside it, fsync, rename). The tensors are laid out in the given order;
/// the header is padded with spaces to a multiple of 8 bytes, as the
/// reference implementation does. BF16 and F16 are rounded to nearest even.
/// Errors on duplicate or reserved names, negative dimensions, missing data,
/// and names or metadata that are not valid UTF-8.
absl::Status
writeSafetensors(const std::string &path,
                 const std::vector<TensorToWrite> &tensors,
                 const std::map<std::string, std::string> &metadata = {});

/// bfloat16 bits to f32 (exact).
float bf16ToF32(uint16_t bits);
/// f32 to bfloat16 bits, rounding to nearest even; NaN stays a (quiet) NaN.
uint16_t f32ToBf16(float value);
/// IEEE binary16 bits to f32 (exact, subnormals included).
float f16ToF32(uint16_t bits);
/// f32 to IEEE binary16 bits, rounding to nearest even; magnitudes from 65520
/// up become infinity, NaN stays a (quiet) NaN.
uint16_t f32ToF16(float value);

} // namespace llmrt

#endif // LLMRT_SAFETENSORS_H
