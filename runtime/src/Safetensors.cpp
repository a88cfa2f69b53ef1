//===- Safetensors.cpp - safetensors reader and writer --------------------===//
#include "llmrt/Safetensors.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <set>
#include <sys/mman.h>
#include <sys/stat.h>
#include <tuple>
#include <unistd.h>

namespace llmrt {

namespace {

using Json = nlohmann::json;

constexpr const char *kMetadataKey = "__metadata__";

//===----------------------------------------------------------------------===//
// Bytes and files
//===----------------------------------------------------------------------===//

/// Little-endian loads and stores, independent of the host's byte order.
uint64_t loadU64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = v << 8 | p[i];
  return v;
}

void storeU64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<uint8_t>(v >> (8 * i));
}

uint32_t floatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float bitsFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

/// Reads the rest of open file `fd` (`hint` bytes expected) into `out`.
absl::Status readFd(int fd, const std::string &path, size_t hint,
                    std::vector<uint8_t> &out) {
  out.resize(hint);
  size_t done = 0;
  while (true) {
    if (done == out.size())
      out.resize(out.size() + (1 << 16)); // The file may have grown.
    ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return absl::DataLossError(
          absl::StrCat(path, ": read error: ", std::strerror(errno)));
    if (n == 0)
      break;
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return absl::OkStatus();
}

/// Maps `path` read-only (a private mapping: the kernel loads pages on
/// demand and may drop them again); files that cannot be mapped (pipes,
/// empty files) are read into the heap instead.
absl::Status mapFile(const std::string &path,
                     std::shared_ptr<const uint8_t> &out, size_t &size) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0)
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0)
    return absl::DataLossError(
        absl::StrCat(path, ": cannot stat: ", std::strerror(errno)));
  size_t n = st.st_size > 0 ? static_cast<size_t>(st.st_size) : 0;
  if (S_ISREG(st.st_mode) && n > 0) {
    void *p = ::mmap(nullptr, n, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      out = std::shared_ptr<const uint8_t>(
          static_cast<const uint8_t *>(p),
          [n](const uint8_t *q) { ::munmap(const_cast<uint8_t *>(q), n); });
      size = n;
      return absl::OkStatus();
    }
  }
  auto heap = std::make_shared<std::vector<uint8_t>>();
  if (absl::Status s = readFd(fd, path, n, *heap); !s.ok())
    return s;
  size = heap->size();
  out = std::shared_ptr<const uint8_t>(heap, heap->data());
  return absl::OkStatus();
}

/// Whether `s` is well-formed UTF-8 (no overlong forms, no surrogates,
/// nothing past U+10FFFF), as JSON strings must be.
bool isValidUtf8(std::string_view s) {
  size_t i = 0, n = s.size();
  while (i < n) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    int len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n)
      return false;
    for (int k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80)
        return false;
      cp = cp << 6 | (cc & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    i += len;
  }
  return true;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

std::string rangeString(int64_t begin, int64_t end) {
  return absl::StrCat("[", begin, ", ", end, "]");
}

/// The element count of `shape`, or std::nullopt if some dimension is
/// negative or the count (times 8 bytes, the widest element) overflows int64.
std::optional<int64_t> countElements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || __builtin_mul_overflow(n, d, &n))
      return std::nullopt;
  }
  if (n > std::numeric_limits<int64_t>::max() / 8)
    return std::nullopt;
  return n;
}

//===----------------------------------------------------------------------===//
// Header syntax: a SAX pass for the error position and duplicate keys
//===----------------------------------------------------------------------===//

/// Checks the header's JSON syntax and rejects duplicate keys in any object
/// (the DOM parser would silently keep one of them). Stops at the first
/// problem and describes it in `error`.
class HeaderChecker : public nlohmann::json_sax<Json> {
public:
  explicit HeaderChecker(int64_t headerStart) : headerStart_(headerStart) {}

  std::string error;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t &) override { return true; }
  bool string(string_t &) override { return true; }
  bool binary(binary_t &) override { return true; }

  bool start_object(std::size_t) override {
    frames_.push_back({true, ownerOfNext(), {}});
    return true;
  }
  bool key(string_t &k) override {
    Frame &f = frames_.back();
    if (!f.keys.insert(k).second) {
      error =
          f.owner.empty()
              ? absl::StrCat("duplicate key \"", k, "\" in the header")
              : absl::StrCat("duplicate key \"", k, "\" in \"", f.owner, "\"");
      return false;
    }
    lastKey_ = k;
    return true;
  }
  bool end_object() override {
    frames_.pop_back();
    return true;
  }
  bool start_array(std::size_t) override {
    frames_.push_back({false, ownerOfNext(), {}});
    return true;
  }
  bool end_array() override {
    frames_.pop_back();
    return true;
  }

  bool parse_error(std::size_t position, const std::string &,
                   const nlohmann::detail::exception &ex) override {
    // `position` counts the characters read, the offending one included.
    int64_t offset = headerStart_ + (position > 0 ? int64_t(position) - 1 : 0);
    std::string what = ex.what();
    // Drop "[json.exception.parse_error.101] parse error at line 1, column
    // 7: ", which the file offset replaces.
    if (size_t col = what.find("column "); col != std::string::npos)
      if (size_t colon = what.find(": ", col); colon != std::string::npos)
        what = what.substr(colon + 2);
    error =
        absl::StrCat("offset ", offset, ": header is not valid JSON: ", what);
    return false;
  }

private:
  struct Frame {
    bool isObject;
    std::string owner; // The key that holds this value ("" at the top).
    std::set<std::string> keys;
  };

  std::string ownerOfNext() const {
    if (frames_.empty())
      return "";
    return frames_.back().isObject ? lastKey_ : frames_.back().owner;
  }

  int64_t headerStart_;
  std::vector<Frame> frames_;
  std::string lastKey_;
};

//===----------------------------------------------------------------------===//
// Header fields
//===----------------------------------------------------------------------===//

/// Reads `v` as a non-negative integer that fits int64; `what` names it in
/// the error ("shape[1]").
absl::StatusOr<int64_t> getIndex(const Json &v, const std::string &what) {
  if (v.is_number_unsigned()) {
    uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is ", u, ", too large"));
    return static_cast<int64_t>(u);
  }
  if (v.is_number_integer()) {
    int64_t i = v.get<int64_t>();
    if (i < 0)
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is ", i, ", negative"));
    return i;
  }
  return absl::InvalidArgumentError(
      absl::StrCat(what, " is ", v.type_name(), " ",
                   v.dump(-1, ' ', false, Json::error_handler_t::replace),
                   ", not an integer"));
}

/// Parses one tensor entry of the header (everything but the checks that
/// involve the data section or the other tensors).
absl::StatusOr<TensorInfo> parseTensorEntry(const std::string &name,
                                            const Json &entry) {
  TensorInfo t;
  t.name = name;
  if (!entry.is_object())
    return absl::InvalidArgumentError(
        absl::StrCat("entry is ", entry.type_name(), ", not an object"));

  auto dtypeIt = entry.find("dtype");
  if (dtypeIt == entry.end())
    return absl::InvalidArgumentError("missing \"dtype\"");
  if (!dtypeIt->is_string())
    return absl::InvalidArgumentError(
        absl::StrCat("\"dtype\" is ", dtypeIt->type_name(), ", not a string"));
  const std::string &dtypeStr = dtypeIt->get_ref<const std::string &>();
  std::optional<DType> dtype = parseDType(dtypeStr);
  if (!dtype)
    return absl::InvalidArgumentError(absl::StrCat(
        "unsupported dtype \"", dtypeStr, "\" (supported: F32, BF16, F16)"));
  t.dtype = *dtype;

  auto shapeIt = entry.find("shape");
  if (shapeIt == entry.end())
    return absl::InvalidArgumentError("missing \"shape\"");
  if (!shapeIt->is_array())
    return absl::InvalidArgumentError(
        absl::StrCat("\"shape\" is ", shapeIt->type_name(), ", not an array"));
  for (size_t i = 0; i < shapeIt->size(); ++i) {
    absl::StatusOr<int64_t> d =
        getIndex((*shapeIt)[i], absl::StrCat("shape[", i, "]"));
    if (!d.ok())
      return d.status();
    t.shape.push_back(*d);
  }

  auto offIt = entry.find("data_offsets");
  if (offIt == entry.end())
    return absl::InvalidArgumentError("missing \"data_offsets\"");
  if (!offIt->is_array() || offIt->size() != 2)
    return absl::InvalidArgumentError(absl::StrCat(
        "\"data_offsets\" is ",
        offIt->is_array() ? absl::StrCat("an array of ", offIt->size())
                          : std::string(offIt->type_name()),
        ", not an array of 2 integers"));
  absl::StatusOr<int64_t> begin = getIndex((*offIt)[0], "data_offsets[0]");
  if (!begin.ok())
    return begin.status();
  absl::StatusOr<int64_t> end = getIndex((*offIt)[1], "data_offsets[1]");
  if (!end.ok())
    return end.status();
  t.begin = *begin;
  t.end = *end;
  if (t.begin > t.end)
    return absl::InvalidArgumentError(absl::StrCat(
        "data_offsets ", rangeString(t.begin, t.end), ": begin is past end"));

  std::optional<int64_t> n = countElements(t.shape);
  if (!n)
    return absl::InvalidArgumentError(
        absl::StrCat("shape ", shapeString(t.shape), " has too many elements"));
  int64_t need = *n * dtypeBytes(t.dtype);
  if (t.numBytes() != need)
    return absl::InvalidArgumentError(absl::StrCat(
        "size mismatch: data_offsets ", rangeString(t.begin, t.end), " hold ",
        t.numBytes(), " bytes but shape ", shapeString(t.shape), " of ",
        dtypeName(t.dtype), " needs ", need));
  return t;
}

//===----------------------------------------------------------------------===//
// Conversion of a run of elements to f32 and back
//===----------------------------------------------------------------------===//

void toF32(DType dtype, const uint8_t *src, float *dst, int64_t n) {
  switch (dtype) {
  case DType::F32:
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
#else
    for (int64_t i = 0; i < n; ++i, src += 4)
      dst[i] = bitsFloat(uint32_t(src[0]) | uint32_t(src[1]) << 8 |
                         uint32_t(src[2]) << 16 | uint32_t(src[3]) << 24);
#endif
    return;
  case DType::BF16:
    for (int64_t i = 0; i < n; ++i, src += 2)
      dst[i] = bf16ToF32(static_cast<uint16_t>(src[0] | src[1] << 8));
    return;
  case DType::F16:
    for (int64_t i = 0; i < n; ++i, src += 2)
      dst[i] = f16ToF32(static_cast<uint16_t>(src[0] | src[1] << 8));
    return;
  }
}

void fromF32(DType dtype, const float *src, uint8_t *dst, int64_t n) {
  switch (dtype) {
  case DType::F32:
    for (int64_t i = 0; i < n; ++i, dst += 4) {
      uint32_t u = floatBits(src[i]);
      for (int k = 0; k < 4; ++k)
        dst[k] = static_cast<uint8_t>(u >> (8 * k));
    }
    return;
  case DType::BF16:
  case DType::F16:
    for (int64_t i = 0; i < n; ++i, dst += 2) {
      uint16_t h = dtype == DType::BF16 ? f32ToBf16(src[i]) : f32ToF16(src[i]);
      dst[0] = static_cast<uint8_t>(h);
      dst[1] = static_cast<uint8_t>(h >> 8);
    }
    return;
  }
}

//===----------------------------------------------------------------------===//
// Atomic writes
//===----------------------------------------------------------------------===//

/// A temporary file that is removed unless commit() renames it into place.
class AtomicFile {
public:
  explicit AtomicFile(std::string path)
      : path_(std::move(path)), tmp_(path_ + ".tmp") {}
  AtomicFile(const AtomicFile &) = delete;
  AtomicFile &operator=(const AtomicFile &) = delete;
  ~AtomicFile() {
    if (fd_ >= 0)
      ::close(fd_);
    if (!committed_)
      ::unlink(tmp_.c_str());
  }

  absl::Status open() {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd_ < 0)
      return absl::PermissionDeniedError(
          absl::StrCat(tmp_, ": cannot create: ", std::strerror(errno)));
    return absl::OkStatus();
  }

  absl::Status write(const uint8_t *p, size_t size) {
    size_t done = 0;
    while (done < size) {
      ssize_t n = ::write(fd_, p + done, size - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return absl::DataLossError(absl::StrCat(
            tmp_,
            ": write failed: ", n < 0 ? std::strerror(errno) : "no progress"));
      done += static_cast<size_t>(n);
    }
    return absl::OkStatus();
  }

  /// fsync, close, rename over the destination, then fsync the directory so
  /// that the rename itself is durable.
  absl::Status commit() {
    if (::fsync(fd_) != 0) {
      std::string why = std::strerror(errno);
      return absl::DataLossError(absl::StrCat(tmp_, ": fsync failed: ", why));
    }
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) {
      std::string why = std::strerror(errno);
      return absl::DataLossError(absl::StrCat(tmp_, ": close failed: ", why));
    }
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
      std::string why = std::strerror(errno);
      return absl::DataLossError(
          absl::StrCat(path_, ": rename from ", tmp_, " failed: ", why));
    }
    committed_ = true;
    size_t slash = path_.rfind('/');
    std::string dir = slash == std::string::npos ? "."
                      : slash == 0               ? "/"
                                                 : path_.substr(0, slash);
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      ::fsync(dfd); // Best effort: some file systems refuse it.
      ::close(dfd);
    }
    return absl::OkStatus();
  }

private:
  std::string path_;
  std::string tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

} // namespace

//===----------------------------------------------------------------------===//
// DType
//===----------------------------------------------------------------------===//

const char *dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return "F32";
  case DType::BF16:
    return "BF16";
  case DType::F16:
    return "F16";
  }
  return "?";
}

int dtypeBytes(DType dtype) {
  switch (dtype) {
  case DType::F32:
    return 4;
  case DType::BF16:
  case DType::F16:
    return 2;
  }
  return 0;
}

std::optional<DType> parseDType(std::string_view name) {
  if (name == "F32")
    return DType::F32;
  if (name == "BF16")
    return DType::BF16;
  if (name == "F16")
    return DType::F16;
  return std::nullopt;
}

int64_t TensorInfo::numElements() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

//===----------------------------------------------------------------------===//
// Half-precision conversions
//===----------------------------------------------------------------------===//

float bf16ToF32(uint16_t bits) { return bitsFloat(uint32_t(bits) << 16); }

uint16_t f32ToBf16(float value) {
  uint32_t u = floatBits(value);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) // NaN: keep it one, and quiet.
    return static_cast<uint16_t>((u >> 16) | 0x0040);
  // Round to nearest even; a carry out of the mantissa bumps the exponent
  // (to infinity past the largest finite bfloat16), as it should.
  u += 0x7FFFu + ((u >> 16) & 1);
  return static_cast<uint16_t>(u >> 16);
}

float f16ToF32(uint16_t bits) {
  uint32_t sign = uint32_t(bits & 0x8000) << 16;
  uint32_t exp = (bits >> 10) & 0x1F;
  uint32_t mant = bits & 0x3FF;
  if (exp == 0) {
    if (mant == 0)
      return bitsFloat(sign);                            // +-0
    float v = std::ldexp(static_cast<float>(mant), -24); // Subnormal, exact.
    return sign ? -v : v;
  }
  if (exp == 0x1F)
    return bitsFloat(sign | 0x7F800000u | mant << 13); // Inf or NaN.
  return bitsFloat(sign | (exp + 127 - 15) << 23 | mant << 13);
}

uint16_t f32ToF16(float value) {
  uint32_t u = floatBits(value);
  uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) // NaN: quiet, with the top of the payload.
    return static_cast<uint16_t>(sign | 0x7E00 | ((a >> 13) & 0x3FF));
  // 65520 is halfway between 65504 (the largest half) and 65536, which is
  // odd-to-even upwards: from there on, and for infinity, the result is Inf.
  if (a >= 0x477FF000u)
    return static_cast<uint16_t>(sign | 0x7C00);
  if (a >= 0x38800000u) { // Normal in half: 2^-14 and up.
    uint32_t h = ((a >> 23) - 127 + 15) << 10 | ((a >> 13) & 0x3FF);
    uint32_t rest = a & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1)))
      ++h; // A carry into the exponent is right.
    return static_cast<uint16_t>(sign | h);
  }
  // Subnormal in half: units of 2^-24. 2^-25 (halfway to the smallest
  // subnormal) and below round to zero.
  if (a <= 0x33000000u)
    return sign;
  uint32_t exp = a >> 23; // 102 .. 112
  uint32_t mant = (a & 0x7FFFFF) | 0x800000;
  uint32_t shift = 126 - exp; // 14 .. 24
  uint32_t h = mant >> shift;
  uint32_t rest = mant & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (h & 1)))
    ++h; // May become 0x400, the smallest normal: right.
  return static_cast<uint16_t>(sign | h);
}

//===----------------------------------------------------------------------===//
// Reading
//===----------------------------------------------------------------------===//

absl::StatusOr<SafetensorsFile> SafetensorsFile::read(const std::string &path) {
  SafetensorsFile file;
  file.path_ = path;
  if (absl::Status s = mapFile(path, file.contents_, file.size_); !s.ok())
    return s;
  absl::Span<const uint8_t> bytes(file.contents_.get(), file.size_);
  const int64_t fileSize = static_cast<int64_t>(bytes.size());
  if (fileSize < 8)
    return absl::DataLossError(
        absl::StrCat(path, ": file is ", fileSize,
                     " bytes, shorter than the 8-byte header length"));
  uint64_t headerLen = loadU64(bytes.data());
  if (headerLen > kSafetensorsMaxHeaderBytes)
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": offset 0: header length ", headerLen, " exceeds the limit of ",
        kSafetensorsMaxHeaderBytes, " bytes (not a safetensors file?)"));
  if (headerLen > static_cast<uint64_t>(fileSize - 8))
    return absl::DataLossError(
        absl::StrCat(path, ": offset 0: header length ", headerLen,
                     " runs past the end of the file (", fileSize, " bytes)"));
  file.dataOffset_ = 8 + static_cast<int64_t>(headerLen);
  const int64_t dataSize = fileSize - file.dataOffset_;
  const uint8_t *headerBegin = bytes.data() + 8;
  const uint8_t *headerEnd = bytes.data() + file.dataOffset_;

  // nlohmann's lexer takes a NUL byte for the end of the input, which would
  // let "{}\0garbage" through; JSON has no place for one anywhere.
  if (const void *nul = std::memchr(headerBegin, 0, headerLen))
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": offset ", static_cast<const uint8_t *>(nul) - bytes.data(),
        ": header is not valid JSON: NUL byte"));
  // Syntax and duplicate keys first (the DOM parse below reports neither).
  HeaderChecker checker(8);
  Json::sax_parse(headerBegin, headerEnd, &checker);
  if (!checker.error.empty())
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", checker.error));
  Json header = Json::parse(headerBegin, headerEnd, nullptr,
                            /*allow_exceptions=*/false);
  if (header.is_discarded())
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": header is not valid JSON"));
  if (!header.is_object())
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": header is a JSON ", header.type_name(), ", not an object"));

  for (const auto &[name, value] : header.items()) {
    if (name == kMetadataKey) {
      if (value.is_null())
        continue;
      if (!value.is_object())
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": \"", kMetadataKey, "\" is ",
                         value.type_name(), ", not an object"));
      for (const auto &[key, v] : value.items()) {
        if (!v.is_string())
          return absl::InvalidArgumentError(
              absl::StrCat(path, ": \"", kMetadataKey, "\" value of \"", key,
                           "\" is ", v.type_name(), ", not a string"));
        file.metadata_[key] = v.get<std::string>();
      }
      continue;
    }
    absl::StatusOr<TensorInfo> t = parseTensorEntry(name, value);
    if (!t.ok())
      return absl::Status(t.status().code(),
                          absl::StrCat(path, ": tensor \"", name,
                                       "\": ", t.status().message()));
    if (t->end > dataSize)
      return absl::DataLossError(absl::StrCat(
          path, ": tensor \"", name, "\": data_offsets ",
          rangeString(t->begin, t->end), " end past the data section of ",
          dataSize, " bytes (file offset ", file.dataOffset_, " to ", fileSize,
          ")"));
    file.tensors_.push_back(std::move(*t));
  }

  // The tensors, in the order of their offsets, must tile the data section.
  std::sort(file.tensors_.begin(), file.tensors_.end(),
            [](const TensorInfo &a, const TensorInfo &b) {
              return std::tie(a.begin, a.end, a.name) <
                     std::tie(b.begin, b.end, b.name);
            });
  int64_t covered = 0;              // End of the bytes covered so far.
  const TensorInfo *last = nullptr; // The tensor that ends at `covered`.
  for (const TensorInfo &t : file.tensors_) {
    if (t.begin < covered)
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensors \"", last->name, "\" ",
                       rangeString(last->begin, last->end), " and \"", t.name,
                       "\" ", rangeString(t.begin, t.end), " overlap"));
    if (t.begin > covered)
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": gap between offsets ", covered, " and ", t.begin,
          " of the data section, ",
          last ? absl::StrCat("after tensor \"", last->name, "\" and ")
               : std::string(),
          "before tensor \"", t.name, "\""));
    if (t.end > covered || !last) {
      covered = t.end;
      last = &t;
    }
  }
  if (covered != dataSize)
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": gap between offsets ", covered, " and ", dataSize,
        " of the data section: ", dataSize - covered, " trailing bytes after ",
        last ? absl::StrCat("tensor \"", last->name, "\"")
             : std::string("the header (no tensors)")));

  for (size_t i = 0; i < file.tensors_.size(); ++i)
    file.index_.emplace(file.tensors_[i].name, i);
  return file;
}

const TensorInfo *SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

absl::Span<const uint8_t>
SafetensorsFile::bytes(const TensorInfo &tensor) const {
  if (tensor.begin < 0 || tensor.begin > tensor.end ||
      dataOffset_ + tensor.end > static_cast<int64_t>(size_))
    return {};
  return absl::Span<const uint8_t>(contents_.get() + dataOffset_ +
                                       tensor.begin,
                                   static_cast<size_t>(tensor.numBytes()));
}

absl::Status SafetensorsFile::readF32(std::string_view name, float *dst,
                                      int64_t numElements) const {
  const TensorInfo *t = find(name);
  if (!t)
    return absl::NotFoundError(
        absl::StrCat(path_, ": no tensor \"", std::string(name), "\""));
  if (t->numElements() != numElements)
    return absl::InvalidArgumentError(
        absl::StrCat(path_, ": tensor \"", std::string(name), "\" of shape ",
                     shapeString(t->shape), " has ", t->numElements(),
                     " elements, but ", numElements, " were asked for"));
  toF32(t->dtype, bytes(*t).data(), dst, numElements);
  return absl::OkStatus();
}

//===----------------------------------------------------------------------===//
// Writing
//===----------------------------------------------------------------------===//

absl::Status
writeSafetensors(const std::string &path,
                 const std::vector<TensorToWrite> &tensors,
                 const std::map<std::string, std::string> &metadata) {
  // Validate everything before creating a file.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) {
    nlohmann::ordered_json meta = nlohmann::ordered_json::object();
    for (const auto &[key, value] : metadata) {
      if (!isValidUtf8(key) || !isValidUtf8(value))
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": metadata key or value of \"", key,
                         "\" is not valid UTF-8"));
      meta[key] = value;
    }
    header[kMetadataKey] = std::move(meta);
  }
  std::vector<int64_t> counts;
  std::set<std::string_view> names;
  int64_t offset = 0;
  for (const TensorToWrite &t : tensors) {
    auto fail = [&](const std::string &why) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": tensor \"", t.name, "\": ", why));
    };
    if (t.name == kMetadataKey)
      return fail("the name is reserved for the metadata");
    if (!isValidUtf8(t.name))
      return fail("the name is not valid UTF-8");
    if (!names.insert(t.name).second)
      return fail("duplicate name");
    std::optional<int64_t> n = countElements(t.shape);
    if (!n)
      return fail(absl::StrCat("shape ", shapeString(t.shape),
                               " has a negative dimension or too many "
                               "elements"));
    if (*n > 0 && !t.data)
      return fail(absl::StrCat("no data for ", *n, " elements"));
    int64_t size = *n * dtypeBytes(t.dtype);
    if (__builtin_add_overflow(offset, size, &offset))
      return fail("the data section overflows int64");
    header[t.name] = {{"dtype", dtypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset - size, offset}}};
    counts.push_back(*n);
  }

  std::string text = header.dump(
      -1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
  text.append((8 - text.size() % 8) % 8, ' ');
  uint8_t lenBytes[8];
  storeU64(lenBytes, text.size());

  AtomicFile out(path);
  if (absl::Status s = out.open(); !s.ok())
    return s;
  if (absl::Status s = out.write(lenBytes, 8); !s.ok())
    return s;
  if (absl::Status s = out.write(reinterpret_cast<const uint8_t *>(text.data()),
                                 text.size());
      !s.ok())
    return s;
  constexpr int64_t kChunk = 1 << 16; // Elements converted at a time.
  std::vector<uint8_t> buf(kChunk * 4);
  for (size_t i = 0; i < tensors.size(); ++i) {
    const TensorToWrite &t = tensors[i];
    int width = dtypeBytes(t.dtype);
    for (int64_t at = 0; at < counts[i]; at += kChunk) {
      int64_t n = std::min(kChunk, counts[i] - at);
      fromF32(t.dtype, t.data + at, buf.data(), n);
      if (absl::Status s =
              out.write(buf.data(), static_cast<size_t>(n * width));
          !s.ok())
        return s;
    }
  }
  return out.commit();
}

} // namespace llmrt
