//===- TokenFile.cpp - llm.c token files ----------------------------------===//
#include "llmrt/TokenFile.h"

#include "absl/strings/str_cat.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace llmrt {

namespace {

/// Little-endian reads, independent of the host's byte order.
int32_t loadI32(const unsigned char *p) {
  return static_cast<int32_t>(uint32_t(p[0]) | uint32_t(p[1]) << 8 |
                              uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
}

void storeI32(unsigned char *p, int32_t v) {
  uint32_t u = static_cast<uint32_t>(v);
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<unsigned char>(u >> (8 * i));
}

absl::Status readAll(const std::string &path, std::vector<unsigned char> &out) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f)
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  unsigned char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0)
    out.insert(out.end(), buf, buf + n);
  bool bad = std::ferror(f);
  std::fclose(f);
  if (bad)
    return absl::DataLossError(absl::StrCat(path, ": read error"));
  return absl::OkStatus();
}

} // namespace

absl::StatusOr<TokenFile> TokenFile::read(const std::string &path,
                                          int64_t vocabSize) {
  std::vector<unsigned char> bytes;
  if (absl::Status s = readAll(path, bytes); !s.ok())
    return s;
  if (static_cast<int64_t>(bytes.size()) < kTokenFileHeaderBytes)
    return absl::DataLossError(absl::StrCat(
        path, ": file is ", bytes.size(), " bytes, shorter than the ",
        kTokenFileHeaderBytes, "-byte header"));
  int32_t magic = loadI32(bytes.data());
  if (magic != kTokenFileMagic)
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": offset 0: bad magic ", magic, " (expected ",
                     kTokenFileMagic, ", an llm.c token file)"));
  int32_t version = loadI32(bytes.data() + 4);
  if (version != kTokenFileVersion)
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": offset 4: unsupported version ", version,
                     " (expected ", kTokenFileVersion, ")"));
  int32_t count = loadI32(bytes.data() + 8);
  if (count < 0)
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": offset 8: negative token count ", count));
  int64_t expected = kTokenFileHeaderBytes + 2 * int64_t(count);
  if (static_cast<int64_t>(bytes.size()) != expected)
    return absl::DataLossError(absl::StrCat(
        path, ": header declares ", count, " tokens (", expected,
        " bytes) but the file is ", bytes.size(), " bytes",
        static_cast<int64_t>(bytes.size()) < expected ? " (truncated)"
                                                      : " (trailing data)"));
  TokenFile file;
  file.path_ = path;
  file.tokens_.resize(count);
  const unsigned char *p = bytes.data() + kTokenFileHeaderBytes;
  for (int64_t i = 0; i < count; ++i) {
    uint16_t t = static_cast<uint16_t>(p[2 * i] | p[2 * i + 1] << 8);
    if (vocabSize > 0 && t >= vocabSize)
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": offset ", kTokenFileHeaderBytes + 2 * i, ": token ", t,
          " (index ", i, ") is outside the vocabulary of ", vocabSize));
    file.tokens_[i] = t;
  }
  return file;
}

absl::Status writeTokenFile(const std::string &path,
                            absl::Span<const uint16_t> tokens) {
  if (tokens.size() > static_cast<size_t>(INT32_MAX))
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": ", tokens.size(),
                     " tokens do not fit the int32 count of the header"));
  std::vector<unsigned char> bytes(kTokenFileHeaderBytes + 2 * tokens.size());
  storeI32(bytes.data(), kTokenFileMagic);
  storeI32(bytes.data() + 4, kTokenFileVersion);
  storeI32(bytes.data() + 8, static_cast<int32_t>(tokens.size()));
  for (size_t i = 0; i < tokens.size(); ++i) {
    bytes[kTokenFileHeaderBytes + 2 * i] = tokens[i] & 0xff;
    bytes[kTokenFileHeaderBytes + 2 * i + 1] = tokens[i] >> 8;
  }
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0)
    return absl::PermissionDeniedError(
        absl::StrCat(tmp, ": cannot create: ", std::strerror(errno)));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(tmp.c_str());
      return absl::DataLossError(absl::StrCat(tmp, ": write failed: ", why));
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return absl::DataLossError(absl::StrCat(tmp, ": fsync failed: ", why));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = std::strerror(errno);
    ::unlink(tmp.c_str());
    return absl::DataLossError(
        absl::StrCat(path, ": rename from ", tmp, " failed: ", why));
  }
  return absl::OkStatus();
}

} // namespace llmrt
