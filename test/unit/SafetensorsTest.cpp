//===- SafetensorsTest.cpp - safetensors reader and writer ----------------===//
//
// Expected bit patterns come from the IEEE 754 binary16 and bfloat16 formats
// (sign, exponent, mantissa worked out by hand, or a brute-force nearest
// search over every representable value), never from the code under test.
// Malformed files are assembled byte by byte.
//
//===----------------------------------------------------------------------===//
#include "llmrt/Safetensors.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <unistd.h>

namespace {

using llmrt::DType;

std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "/llmrt_" + std::to_string(::getpid()) + "_" +
         name;
}

float bitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint32_t floatToBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

std::string readFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool exists(const std::string &path) {
  return ::access(path.c_str(), F_OK) == 0;
}

/// Little-endian u64 header length, then `header`, then `data`. `len`
/// overrides the header length.
std::string assemble(const std::string &header, const std::string &data,
                     std::optional<uint64_t> len = std::nullopt) {
  uint64_t n = len ? *len : header.size();
  std::string out;
  for (int i = 0; i < 8; ++i)
    out.push_back(static_cast<char>(n >> (8 * i)));
  return out + header + data;
}

void writeBytes(const std::string &path, const std::string &bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

/// Little-endian bytes of f32 values / 16-bit patterns.
std::string f32Bytes(std::initializer_list<float> values) {
  std::string out;
  for (float v : values) {
    uint32_t u = floatToBits(v);
    for (int i = 0; i < 4; ++i)
      out.push_back(static_cast<char>(u >> (8 * i)));
  }
  return out;
}

std::string u16Bytes(std::initializer_list<uint16_t> values) {
  std::string out;
  for (uint16_t v : values) {
    out.push_back(static_cast<char>(v & 0xff));
    out.push_back(static_cast<char>(v >> 8));
  }
  return out;
}

/// Writes the file, reads it, and checks that reading fails with `code` and a
/// message that names the file and contains every one of `facts`.
void expectReadError(const std::string &name, const std::string &bytes,
                     absl::StatusCode code,
                     std::initializer_list<std::string> facts) {
  std::string p = tempPath(name);
  writeBytes(p, bytes);
  auto f = llmrt::SafetensorsFile::read(p);
  ASSERT_FALSE(f.ok()) << name << " was accepted";
  EXPECT_EQ(f.status().code(), code) << f.status();
  std::string msg(f.status().message());
  EXPECT_EQ(msg.rfind(p + ": ", 0), 0u) << msg;
  for (const std::string &fact : facts)
    EXPECT_NE(msg.find(fact), std::string::npos)
        << "missing \"" << fact << "\" in: " << msg;
  std::remove(p.c_str());
}

void expectInvalid(const std::string &name, const std::string &header,
                   const std::string &data,
                   std::initializer_list<std::string> facts) {
  expectReadError(name, assemble(header, data),
                  absl::StatusCode::kInvalidArgument, facts);
}

/// The value of binary16 pattern `h` (positive, finite), from the format's
/// definition.
double halfValue(uint16_t h) {
  int exp = (h >> 10) & 0x1F;
  int mant = h & 0x3FF;
  return exp == 0 ? std::ldexp(double(mant), -24)
                  : std::ldexp(double(1024 + mant), exp - 25);
}

/// The binary16 nearest to finite `x` (ties to even mantissa), by search over
/// the representable values; overflow to infinity from 65520 (halfway from
/// 65504 to 2^16) up, as IEEE 754 specifies.
uint16_t nearestHalf(float x) {
  uint16_t sign = std::signbit(x) ? 0x8000 : 0;
  double a = std::fabs(double(x));
  if (a >= 65520.0)
    return sign | 0x7C00;
  uint16_t lo = 0, hi = 0x7BFF; // Largest pattern with value <= a.
  while (lo < hi) {
    uint16_t mid = static_cast<uint16_t>((lo + hi + 1) / 2);
    if (halfValue(mid) <= a)
      lo = mid;
    else
      hi = mid - 1;
  }
  double below = halfValue(lo);
  double above = lo == 0x7BFF ? 65536.0 : halfValue(lo + 1);
  double dBelow = a - below, dAbove = above - a;
  if (dBelow < dAbove || (dBelow == dAbove && (lo & 1) == 0))
    return sign | lo;
  return sign | static_cast<uint16_t>(lo + 1);
}

} // namespace

//===----------------------------------------------------------------------===//
// bfloat16
//===----------------------------------------------------------------------===//

TEST(SafetensorsBf16, KnownBitPatterns) {
  // bfloat16 is the top half of binary32: sign, 8-bit exponent (bias 127),
  // 7-bit mantissa.
  EXPECT_EQ(llmrt::f32ToBf16(1.0f), 0x3F80);
  EXPECT_EQ(llmrt::f32ToBf16(-2.0f), 0xC000);
  EXPECT_EQ(llmrt::f32ToBf16(0.5f), 0x3F00);
  EXPECT_EQ(llmrt::f32ToBf16(0.0f), 0x0000);
  EXPECT_EQ(llmrt::f32ToBf16(-0.0f), 0x8000);
  EXPECT_EQ(llmrt::f32ToBf16(3.0f), 0x4040);
  // pi = 0x40490FDB: the dropped half 0x0FDB is below 0x8000, round down.
  EXPECT_EQ(llmrt::f32ToBf16(3.14159265f), 0x4049);
  // 1/3 = 0x3EAAAAAB: dropped 0xAAAB is above 0x8000, round up.
  EXPECT_EQ(llmrt::f32ToBf16(1.0f / 3.0f), 0x3EAB);
  // The smallest binary32 subnormal keeps only zeros: 0.
  EXPECT_EQ(llmrt::f32ToBf16(bitsToFloat(0x00000001)), 0x0000);
  // A bfloat16 subnormal: 0x00010000.
  EXPECT_EQ(llmrt::f32ToBf16(bitsToFloat(0x00010000)), 0x0001);

  EXPECT_EQ(llmrt::bf16ToF32(0x3F80), 1.0f);
  EXPECT_EQ(llmrt::bf16ToF32(0xC040), -3.0f);
  EXPECT_EQ(llmrt::bf16ToF32(0x4049), 3.140625f);
  EXPECT_EQ(floatToBits(llmrt::bf16ToF32(0x8000)), 0x80000000u);
  EXPECT_EQ(floatToBits(llmrt::bf16ToF32(0x0001)), 0x00010000u);
  EXPECT_EQ(llmrt::bf16ToF32(0x7F7F), bitsToFloat(0x7F7F0000)); // Max finite.
}

TEST(SafetensorsBf16, RoundsToNearestEven) {
  // 0x3F808000 is exactly halfway between 0x3F80 and 0x3F81: even 0x3F80.
  EXPECT_EQ(llmrt::f32ToBf16(bitsToFloat(0x3F808000)), 0x3F80);
  // Halfway between 0x3F81 and 0x3F82: even 0x3F82.
  EXPECT_EQ(llmrt::f32ToBf16(bitsToFloat(0x3F818000)), 0x3F82);
  // Just above / below halfway.
  EXPECT_EQ(llmrt::f32ToBf16(bitsToFloat(0x3F808001)), 0x3F81);
  EXPECT_EQ(llmrt::f32ToBf16(bitsToFloat(0x3F807FFF)), 0x3F80);
  // A carry out of the mantissa into the exponent: 0x3FFF8000 -> 2.0.
  EXPECT_EQ(llmrt::f32ToBf16(bitsToFloat(0x3FFF8000)), 0x4000);
  // Negative ties behave the same on the magnitude.
  EXPECT_EQ(llmrt::f32ToBf16(bitsToFloat(0xBF808000)), 0xBF80);
  EXPECT_EQ(llmrt::f32ToBf16(bitsToFloat(0xBF818000)), 0xBF82);
  // Every tie, exhaustively: the even neighbour wins.
  for (uint32_t h = 0; h < 0x7F7F; ++h) {
    uint16_t even =
        (h & 1) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
    ASSERT_EQ(llmrt::f32ToBf16(bitsToFloat(h << 16 | 0x8000)), even)
        << std::hex << h;
  }
}

TEST(SafetensorsBf16, InfinityAndNaN) {
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(llmrt::f32ToBf16(inf), 0x7F80);
  EXPECT_EQ(llmrt::f32ToBf16(-inf), 0xFF80);
  // FLT_MAX = 0x7F7FFFFF is past halfway from 0x7F7F to 2^128: infinity.
  EXPECT_EQ(llmrt::f32ToBf16(std::numeric_limits<float>::max()), 0x7F80);
  EXPECT_TRUE(std::isinf(llmrt::bf16ToF32(0x7F80)));
  EXPECT_TRUE(std::isinf(llmrt::bf16ToF32(0xFF80)));
  EXPECT_LT(llmrt::bf16ToF32(0xFF80), 0.0f);
  EXPECT_TRUE(std::isnan(llmrt::bf16ToF32(0x7FC0)));
  // NaNs must stay NaN (exponent all ones, mantissa not zero), even one
  // whose payload lies only in the dropped low half, which plain rounding
  // would turn into infinity.
  for (uint32_t bits : {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7FFFFFFFu,
                        0xFF800001u, 0x7F80FFFFu}) {
    uint16_t h = llmrt::f32ToBf16(bitsToFloat(bits));
    EXPECT_EQ(h & 0x7F80, 0x7F80) << std::hex << bits;
    EXPECT_NE(h & 0x007F, 0) << std::hex << bits;
    EXPECT_EQ(h & 0x8000, (bits >> 16) & 0x8000) << std::hex << bits;
  }
}

TEST(SafetensorsBf16, EveryPatternRoundTrips) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    float f = llmrt::bf16ToF32(static_cast<uint16_t>(h));
    EXPECT_EQ(floatToBits(f), h << 16);
    if (std::isnan(f))
      continue;
    ASSERT_EQ(llmrt::f32ToBf16(f), h) << std::hex << h;
  }
}

//===----------------------------------------------------------------------===//
// binary16
//===----------------------------------------------------------------------===//

TEST(SafetensorsF16, KnownBitPatterns) {
  // binary16: sign, 5-bit exponent (bias 15), 10-bit mantissa.
  EXPECT_EQ(llmrt::f32ToF16(1.0f), 0x3C00);
  EXPECT_EQ(llmrt::f32ToF16(-2.0f), 0xC000);
  EXPECT_EQ(llmrt::f32ToF16(0.5f), 0x3800);
  EXPECT_EQ(llmrt::f32ToF16(0.0f), 0x0000);
  EXPECT_EQ(llmrt::f32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(llmrt::f32ToF16(65504.0f), 0x7BFF); // Largest finite.
  EXPECT_EQ(llmrt::f32ToF16(-65504.0f), 0xFBFF);
  EXPECT_EQ(llmrt::f32ToF16(0.1f), 0x2E66);
  EXPECT_EQ(llmrt::f32ToF16(1.0f / 3.0f), 0x3555);
  EXPECT_EQ(llmrt::f32ToF16(std::ldexp(1.0f, -14)), 0x0400); // Min normal.
  EXPECT_EQ(llmrt::f32ToF16(std::ldexp(1.0f, -24)), 0x0001); // Min subnormal.
  EXPECT_EQ(llmrt::f32ToF16(std::ldexp(1023.0f, -24)), 0x03FF); // Max subn.
  EXPECT_EQ(llmrt::f32ToF16(std::ldexp(1.0f, -15)), 0x0200);

  EXPECT_EQ(llmrt::f16ToF32(0x3C00), 1.0f);
  EXPECT_EQ(llmrt::f16ToF32(0xC000), -2.0f);
  EXPECT_EQ(llmrt::f16ToF32(0x7BFF), 65504.0f);
  EXPECT_EQ(llmrt::f16ToF32(0x3555), 0.333251953125f);
  EXPECT_EQ(llmrt::f16ToF32(0x0400), std::ldexp(1.0f, -14));
  EXPECT_EQ(llmrt::f16ToF32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(llmrt::f16ToF32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(llmrt::f16ToF32(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(floatToBits(llmrt::f16ToF32(0x8000)), 0x80000000u);
}

TEST(SafetensorsF16, RoundsToNearestEven) {
  // 1 + 2^-11 is halfway between 0x3C00 and 0x3C01: even 0x3C00.
  EXPECT_EQ(llmrt::f32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);
  // 1 + 3 * 2^-11 is halfway between 0x3C01 and 0x3C02: even 0x3C02.
  EXPECT_EQ(llmrt::f32ToF16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3C02);
  EXPECT_EQ(llmrt::f32ToF16(bitsToFloat(0x3F801001)), 0x3C01); // Above half.
  // Mantissa carry into the exponent: 2 - 2^-12 -> 2.0.
  EXPECT_EQ(llmrt::f32ToF16(2.0f - std::ldexp(1.0f, -12)), 0x4000);
  // Subnormal ties, in units of 2^-24: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2.
  EXPECT_EQ(llmrt::f32ToF16(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(llmrt::f32ToF16(std::ldexp(3.0f, -25)), 0x0002);
  EXPECT_EQ(llmrt::f32ToF16(std::ldexp(5.0f, -25)), 0x0002);
  EXPECT_EQ(llmrt::f32ToF16(-std::ldexp(1.0f, -25)), 0x8000);
  // Just above half a unit: the smallest subnormal.
  EXPECT_EQ(llmrt::f32ToF16(bitsToFloat(0x33000001)), 0x0001);
  // Rounding up from the largest subnormal to the smallest normal.
  EXPECT_EQ(llmrt::f32ToF16(std::ldexp(2047.0f, -25)), 0x0400);
  // Overflow: 65519 rounds down to 65504; 65520 (halfway to 2^16) is Inf.
  EXPECT_EQ(llmrt::f32ToF16(65519.0f), 0x7BFF);
  EXPECT_EQ(llmrt::f32ToF16(65520.0f), 0x7C00);
  EXPECT_EQ(llmrt::f32ToF16(-65520.0f), 0xFC00);
  EXPECT_EQ(llmrt::f32ToF16(1e5f), 0x7C00);
  EXPECT_EQ(llmrt::f32ToF16(std::numeric_limits<float>::max()), 0x7C00);
  // Below the subnormal range altogether.
  EXPECT_EQ(llmrt::f32ToF16(1e-10f), 0x0000);
  EXPECT_EQ(llmrt::f32ToF16(bitsToFloat(0x00000001)), 0x0000);
}

TEST(SafetensorsF16, InfinityAndNaN) {
  float inf = std::numeric_limits<float>::infinity();
  EXPECT_EQ(llmrt::f32ToF16(inf), 0x7C00);
  EXPECT_EQ(llmrt::f32ToF16(-inf), 0xFC00);
  EXPECT_TRUE(std::isinf(llmrt::f16ToF32(0x7C00)));
  EXPECT_LT(llmrt::f16ToF32(0xFC00), 0.0f);
  EXPECT_TRUE(std::isinf(llmrt::f16ToF32(0xFC00)));
  EXPECT_TRUE(std::isnan(llmrt::f16ToF32(0x7E00)));
  EXPECT_TRUE(std::isnan(llmrt::f16ToF32(0x7C01)));
  EXPECT_TRUE(std::isnan(llmrt::f16ToF32(0xFE00)));
  for (uint32_t bits :
       {0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0x7FFFFFFFu, 0xFF800001u}) {
    uint16_t h = llmrt::f32ToF16(bitsToFloat(bits));
    EXPECT_EQ(h & 0x7C00, 0x7C00) << std::hex << bits;
    EXPECT_NE(h & 0x03FF, 0) << std::hex << bits;
    EXPECT_EQ(h & 0x8000, (bits >> 16) & 0x8000) << std::hex << bits;
  }
}

TEST(SafetensorsF16, EveryPatternRoundTrips) {
  for (uint32_t h = 0; h <= 0xFFFF; ++h) {
    float f = llmrt::f16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f))
      continue;
    if (!std::isinf(f)) {
      ASSERT_EQ(std::fabs(double(f)), halfValue(h & 0x7FFF)) << std::hex << h;
    }
    ASSERT_EQ(llmrt::f32ToF16(f), h) << std::hex << h;
  }
}

TEST(SafetensorsF16, MatchesBruteForceNearest) {
  // Every tie between neighbouring halves, and one binary32 ulp each side.
  for (uint16_t h = 0; h < 0x7BFF; ++h) {
    float mid = static_cast<float>((halfValue(h) + halfValue(h + 1)) / 2);
    for (float x :
         {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1e9f), -mid}) {
      ASSERT_EQ(llmrt::f32ToF16(x), nearestHalf(x))
          << "x = " << x << " (0x" << std::hex << floatToBits(x) << ")";
    }
  }
  // Random binary32 values from the subnormal range up past the overflow.
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> bits(0x30000000u, 0x47900000u);
  for (int i = 0; i < 200000; ++i) {
    uint32_t u = bits(rng) | ((i & 1) ? 0x80000000u : 0u);
    float x = bitsToFloat(u);
    ASSERT_EQ(llmrt::f32ToF16(x), nearestHalf(x))
        << "x = " << x << " (0x" << std::hex << u << ")";
  }
}

//===----------------------------------------------------------------------===//
// Writing and reading files
//===----------------------------------------------------------------------===//

TEST(SafetensorsFile, DTypeNamesAndSizes) {
  EXPECT_STREQ(llmrt::dtypeName(DType::F32), "F32");
  EXPECT_STREQ(llmrt::dtypeName(DType::BF16), "BF16");
  EXPECT_STREQ(llmrt::dtypeName(DType::F16), "F16");
  EXPECT_EQ(llmrt::dtypeBytes(DType::F32), 4);
  EXPECT_EQ(llmrt::dtypeBytes(DType::BF16), 2);
  EXPECT_EQ(llmrt::dtypeBytes(DType::F16), 2);
  EXPECT_EQ(llmrt::parseDType("BF16"), DType::BF16);
  EXPECT_EQ(llmrt::parseDType("F64"), std::nullopt);
  EXPECT_EQ(llmrt::parseDType("f32"), std::nullopt);
}

TEST(SafetensorsFile, RoundTripWithMetadata) {
  std::string p = tempPath("rt.safetensors");
  std::vector<float> w = {1.5f, -2.25f, 0.0f, 1e-8f, 3.4e38f, -7.0f};
  // Exactly representable in bfloat16 and binary16, then one that rounds.
  std::vector<float> b = {1.0f, -3.0f, 0.5f, 3.14159265f};
  std::vector<float> h = {1.0f, -2.0f, 65504.0f, 0.1f, std::ldexp(1.0f, -24)};
  float scalar = 42.0f;
  std::vector<llmrt::TensorToWrite> tensors = {
      {"model.w", DType::F32, {2, 3}, w.data()},
      {"model.b", DType::BF16, {4}, b.data()},
      {"empty", DType::F32, {0, 5}, nullptr},
      {"model.h", DType::F16, {5, 1}, h.data()},
      {"scalar", DType::F32, {}, &scalar},
  };
  std::map<std::string, std::string> meta = {{"format", "pt"},
                                             {"step", "1000"}};
  absl::Status s = llmrt::writeSafetensors(p, tensors, meta);
  ASSERT_TRUE(s.ok()) << s;
  EXPECT_FALSE(exists(p + ".tmp"));

  auto f = llmrt::SafetensorsFile::read(p);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->path(), p);
  EXPECT_EQ(f->metadata(), meta);
  // Laid out in the given order; the empty tensor takes no bytes.
  ASSERT_EQ(f->tensors().size(), 5u);
  const std::vector<
      std::tuple<std::string, DType, std::vector<int64_t>, int64_t, int64_t>>
      expected = {{"model.w", DType::F32, {2, 3}, 0, 24},
                  {"model.b", DType::BF16, {4}, 24, 32},
                  {"empty", DType::F32, {0, 5}, 32, 32},
                  {"model.h", DType::F16, {5, 1}, 32, 42},
                  {"scalar", DType::F32, {}, 42, 46}};
  for (size_t i = 0; i < expected.size(); ++i) {
    const llmrt::TensorInfo &t = f->tensors()[i];
    auto [name, dtype, shape, begin, end] = expected[i];
    EXPECT_EQ(t.name, name);
    EXPECT_EQ(t.dtype, dtype) << name;
    EXPECT_EQ(t.shape, shape) << name;
    EXPECT_EQ(t.begin, begin) << name;
    EXPECT_EQ(t.end, end) << name;
    EXPECT_EQ(f->find(name), &t);
  }
  EXPECT_EQ(f->find("missing"), nullptr);
  EXPECT_EQ(f->find("empty")->numElements(), 0);
  EXPECT_EQ(f->find("scalar")->numElements(), 1);

  // The header is padded to 8 bytes, so the data section is aligned.
  EXPECT_EQ(f->dataOffset() % 8, 0);
  std::string raw = readFile(p);
  EXPECT_EQ(static_cast<int64_t>(raw.size()), f->dataOffset() + 46);

  std::vector<float> got(6);
  ASSERT_TRUE(f->readF32("model.w", got.data(), 6).ok());
  EXPECT_EQ(got, w);
  got.assign(4, 0);
  ASSERT_TRUE(f->readF32("model.b", got.data(), 4).ok());
  EXPECT_EQ(got, (std::vector<float>{1.0f, -3.0f, 0.5f, 3.140625f}));
  got.assign(5, 0);
  ASSERT_TRUE(f->readF32("model.h", got.data(), 5).ok());
  EXPECT_EQ(got, (std::vector<float>{1.0f, -2.0f, 65504.0f, 0.0999755859375f,
                                     std::ldexp(1.0f, -24)}));
  ASSERT_TRUE(f->readF32("empty", nullptr, 0).ok());
  float one = 0;
  ASSERT_TRUE(f->readF32("scalar", &one, 1).ok());
  EXPECT_EQ(one, 42.0f);

  // Raw bytes are little-endian: bf16 1.0 = 0x3F80, -3.0 = 0xC040.
  absl::Span<const uint8_t> bb = f->bytes(*f->find("model.b"));
  ASSERT_EQ(bb.size(), 8u);
  EXPECT_EQ(std::vector<uint8_t>(bb.begin(), bb.begin() + 4),
            (std::vector<uint8_t>{0x80, 0x3F, 0x40, 0xC0}));
  absl::Span<const uint8_t> hb = f->bytes(*f->find("model.h"));
  ASSERT_EQ(hb.size(), 10u);
  EXPECT_EQ(std::vector<uint8_t>(hb.begin(), hb.begin() + 6),
            (std::vector<uint8_t>{0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B}));
  std::remove(p.c_str());
}

TEST(SafetensorsFile, WriterLayoutIsTheReferenceOne) {
  std::string p = tempPath("layout.safetensors");
  std::vector<float> a = {1.0f, 2.0f};
  std::vector<float> b = {1.0f};
  ASSERT_TRUE(llmrt::writeSafetensors(p,
                                      {{"b", DType::F32, {2}, a.data()},
                                       {"a", DType::BF16, {1}, b.data()}},
                                      {{"format", "pt"}})
                  .ok());
  // Compact JSON, metadata first, tensors in the given order, spaces up to a
  // multiple of 8.
  std::string json = "{\"__metadata__\":{\"format\":\"pt\"},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
                     "\"data_offsets\":[0,8]},"
                     "\"a\":{\"dtype\":\"BF16\",\"shape\":[1],"
                     "\"data_offsets\":[8,10]}}";
  std::string padded = json + std::string((8 - json.size() % 8) % 8, ' ');
  ASSERT_EQ(padded.size() % 8, 0u);
  std::string expected =
      assemble(padded, f32Bytes({1.0f, 2.0f}) + u16Bytes({0x3F80}));
  EXPECT_EQ(readFile(p), expected);

  // No metadata: no "__metadata__" key; no tensors: "{}" padded to 8.
  ASSERT_TRUE(llmrt::writeSafetensors(p, {}).ok());
  EXPECT_EQ(readFile(p), assemble("{}      ", ""));
  auto f = llmrt::SafetensorsFile::read(p);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_TRUE(f->tensors().empty());
  EXPECT_TRUE(f->metadata().empty());
  std::remove(p.c_str());
}

TEST(SafetensorsFile, OverwritesAtomically) {
  std::string p = tempPath("overwrite.safetensors");
  std::vector<float> x = {1, 2, 3};
  ASSERT_TRUE(
      llmrt::writeSafetensors(p, {{"x", DType::F32, {3}, x.data()}}).ok());
  x = {4, 5, 6};
  ASSERT_TRUE(
      llmrt::writeSafetensors(p, {{"x", DType::F16, {3}, x.data()}}).ok());
  EXPECT_FALSE(exists(p + ".tmp"));
  auto f = llmrt::SafetensorsFile::read(p);
  ASSERT_TRUE(f.ok()) << f.status();
  std::vector<float> got(3);
  ASSERT_TRUE(f->readF32("x", got.data(), 3).ok());
  EXPECT_EQ(got, x);
  EXPECT_EQ(f->find("x")->dtype, DType::F16);
  std::remove(p.c_str());
}

TEST(SafetensorsFile, WriterRejectsBadInput) {
  std::string p = tempPath("bad-write.safetensors");
  std::vector<float> x = {1, 2};
  auto expectFail = [&](const std::vector<llmrt::TensorToWrite> &tensors,
                        const std::string &fact) {
    absl::Status s = llmrt::writeSafetensors(p, tensors);
    ASSERT_FALSE(s.ok()) << fact;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.message().find(fact), std::string::npos) << s;
    EXPECT_FALSE(exists(p));
    EXPECT_FALSE(exists(p + ".tmp"));
  };
  expectFail(
      {{"x", DType::F32, {2}, x.data()}, {"x", DType::F32, {2}, x.data()}},
      "tensor \"x\": duplicate name");
  expectFail({{"__metadata__", DType::F32, {2}, x.data()}},
             "tensor \"__metadata__\": the name is reserved");
  expectFail({{"neg", DType::F32, {2, -1}, x.data()}},
             "tensor \"neg\": shape [2, -1] has a negative dimension");
  expectFail({{"null", DType::F32, {2}, nullptr}},
             "tensor \"null\": no data for 2 elements");
  expectFail({{"bad\xff", DType::F32, {2}, x.data()}}, "not valid UTF-8");
  absl::Status s = llmrt::writeSafetensors(p, {}, {{"k", "\xc0\x80"}});
  EXPECT_NE(s.message().find("metadata key or value of \"k\" is not valid"),
            std::string::npos)
      << s;

  std::string noDir = tempPath("no-such-dir/x.safetensors");
  s = llmrt::writeSafetensors(noDir, {{"x", DType::F32, {2}, x.data()}});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find(noDir + ".tmp: cannot create"), std::string::npos)
      << s;
}

TEST(SafetensorsFile, ReadsHandBuiltFile) {
  // As PyTorch's save_file writes it: metadata first, keys not in offset
  // order, the header padded with spaces.
  std::string header =
      "{\"__metadata__\":{\"format\":\"pt\"},"
      "\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[8,12]},"
      "\"h\":{\"dtype\":\"F16\",\"shape\":[1,1],\"data_offsets\":[12,14]},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
  header.append((8 - header.size() % 8) % 8 + 8, ' ');
  std::string data =
      f32Bytes({1.5f, -2.0f}) + u16Bytes({0x3F80, 0xC040}) + u16Bytes({0xBC00});
  std::string p = tempPath("hand.safetensors");
  writeBytes(p, assemble(header, data));
  auto f = llmrt::SafetensorsFile::read(p);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->dataOffset(), 8 + static_cast<int64_t>(header.size()));
  ASSERT_EQ(f->tensors().size(), 3u);
  EXPECT_EQ(f->tensors()[0].name, "w"); // In the order of the offsets.
  EXPECT_EQ(f->tensors()[1].name, "b");
  EXPECT_EQ(f->tensors()[2].name, "h");
  EXPECT_EQ(f->metadata().at("format"), "pt");
  float v[2];
  ASSERT_TRUE(f->readF32("w", v, 2).ok());
  EXPECT_EQ(v[0], 1.5f);
  EXPECT_EQ(v[1], -2.0f);
  ASSERT_TRUE(f->readF32("b", v, 2).ok());
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -3.0f);
  ASSERT_TRUE(f->readF32("h", v, 1).ok());
  EXPECT_EQ(v[0], -1.0f);

  // Unpadded header, no metadata, null metadata, extra fields are ignored.
  writeBytes(p, assemble("{\"__metadata__\":null,\"w\":{\"dtype\":\"F32\","
                         "\"shape\":[],\"data_offsets\":[0,4],\"x\":1}}",
                         f32Bytes({7.0f})));
  f = llmrt::SafetensorsFile::read(p);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_TRUE(f->readF32("w", v, 1).ok());
  EXPECT_EQ(v[0], 7.0f);
  std::remove(p.c_str());
}

TEST(SafetensorsFile, EmptyTensorsAreLegal) {
  std::string p = tempPath("empty.safetensors");
  // Empty tensors at the start, between two tensors, and at the end.
  writeBytes(p, assemble("{\"e0\":{\"dtype\":\"F32\",\"shape\":[0],"
                         "\"data_offsets\":[0,0]},"
                         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],"
                         "\"data_offsets\":[0,4]},"
                         "\"e1\":{\"dtype\":\"BF16\",\"shape\":[3,0],"
                         "\"data_offsets\":[4,4]},"
                         "\"b\":{\"dtype\":\"F16\",\"shape\":[1],"
                         "\"data_offsets\":[4,6]},"
                         "\"e2\":{\"dtype\":\"F16\",\"shape\":[0,2],"
                         "\"data_offsets\":[6,6]}}",
                         f32Bytes({1.0f}) + u16Bytes({0x3C00})));
  auto f = llmrt::SafetensorsFile::read(p);
  ASSERT_TRUE(f.ok()) << f.status();
  std::vector<std::string> names;
  for (const llmrt::TensorInfo &t : f->tensors())
    names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"e0", "a", "e1", "b", "e2"}));
  EXPECT_TRUE(f->bytes(*f->find("e1")).empty());

  // Only an empty tensor, and no data section at all.
  writeBytes(p, assemble("{\"e\":{\"dtype\":\"F32\",\"shape\":[0],"
                         "\"data_offsets\":[0,0]}}",
                         ""));
  f = llmrt::SafetensorsFile::read(p);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->tensors().size(), 1u);
  std::remove(p.c_str());
}

TEST(SafetensorsFile, ReadF32Errors) {
  std::string p = tempPath("readf32.safetensors");
  std::vector<float> x = {1, 2, 3, 4, 5, 6};
  ASSERT_TRUE(
      llmrt::writeSafetensors(p, {{"x", DType::BF16, {2, 3}, x.data()}}).ok());
  auto f = llmrt::SafetensorsFile::read(p);
  ASSERT_TRUE(f.ok()) << f.status();
  std::vector<float> dst(6);
  absl::Status s = f->readF32("y", dst.data(), 6);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), p + ": no tensor \"y\"");
  s = f->readF32("x", dst.data(), 5);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), p + ": tensor \"x\" of shape [2, 3] has 6 elements, "
                             "but 5 were asked for");
  std::remove(p.c_str());

  auto missing = llmrt::SafetensorsFile::read(p);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(p + ": cannot open"),
            std::string::npos);
}

//===----------------------------------------------------------------------===//
// Malformed files
//===----------------------------------------------------------------------===//

namespace {

/// A one-tensor header entry.
std::string entry(const std::string &name, const std::string &dtype,
                  const std::string &shape, int64_t begin, int64_t end) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":[" + std::to_string(begin) + "," +
         std::to_string(end) + "]}";
}

} // namespace

TEST(SafetensorsMalformed, ShortFileAndHeaderLength) {
  expectReadError("short", std::string("\x10\x00\x00\x00\x00", 5),
                  absl::StatusCode::kDataLoss,
                  {"file is 5 bytes, shorter than the 8-byte header length"});
  expectReadError("empty", "", absl::StatusCode::kDataLoss,
                  {"file is 0 bytes"});
  expectReadError("past-end", assemble("{}", "0123456789", 1000),
                  absl::StatusCode::kDataLoss,
                  {"offset 0: header length 1000 runs past the end of the "
                   "file (20 bytes)"});
  expectReadError("huge", assemble("{}", "", uint64_t(1) << 40),
                  absl::StatusCode::kInvalidArgument,
                  {"offset 0: header length 1099511627776 exceeds the limit "
                   "of 100000000 bytes"});
  // A text file read as safetensors: its first 8 bytes are the "length".
  expectReadError("text", "hello world, not a tensor file",
                  absl::StatusCode::kInvalidArgument,
                  {"offset 0: header length", "exceeds the limit"});
}

TEST(SafetensorsMalformed, HeaderNotJsonObject) {
  // The '}' at header byte 5 is file offset 13.
  expectInvalid("syntax", "{\"a\":}", "",
                {"offset 13: header is not valid JSON", "unexpected '}'"});
  expectInvalid("truncated-json", "{\"a\":{\"dtype\"", "",
                {"header is not valid JSON"});
  expectInvalid("empty-header", "", "", {"header is not valid JSON"});
  expectInvalid("trailing", "{} x", "", {"header is not valid JSON"});
  expectInvalid("nul-padding", std::string("{}\0\0", 4), "",
                {"offset 10: header is not valid JSON: NUL byte"});
  expectInvalid("nul-in-string", std::string("{\"a\0\":1}", 8), "",
                {"offset 11: header is not valid JSON: NUL byte"});
  expectInvalid("bad-utf8", "{\"\xff\":1}", "", {"header is not valid JSON"});
  expectInvalid("array", "[1,2]", "",
                {"header is a JSON array, not an object"});
  expectInvalid("number", "42      ", "",
                {"header is a JSON number, not an object"});
}

TEST(SafetensorsMalformed, DuplicateKeys) {
  std::string w = entry("w", "F32", "[1]", 0, 4);
  expectInvalid("dup-tensor", "{" + w + "," + w + "}", f32Bytes({1.0f}),
                {"duplicate key \"w\" in the header"});
  expectInvalid("dup-field",
                "{\"w\":{\"dtype\":\"F32\",\"dtype\":\"F16\",\"shape\":[1],"
                "\"data_offsets\":[0,4]}}",
                f32Bytes({1.0f}), {"duplicate key \"dtype\" in \"w\""});
  expectInvalid("dup-meta",
                "{\"__metadata__\":{\"a\":\"1\",\"b\":\"2\",\"a\":\"3\"}}", "",
                {"duplicate key \"a\" in \"__metadata__\""});
  // The same key in different objects is fine.
  std::string p = tempPath("same-key.safetensors");
  writeBytes(p, assemble("{\"__metadata__\":{\"dtype\":\"x\"}," + w + "}",
                         f32Bytes({1.0f})));
  auto f = llmrt::SafetensorsFile::read(p);
  EXPECT_TRUE(f.ok()) << f.status();
  std::remove(p.c_str());
}

TEST(SafetensorsMalformed, EntryFieldsMissingOrMistyped) {
  std::string data = f32Bytes({1.0f});
  expectInvalid("no-dtype", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}",
                data, {"tensor \"w\": missing \"dtype\""});
  expectInvalid("no-shape",
                "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", data,
                {"tensor \"w\": missing \"shape\""});
  expectInvalid("no-offsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", data,
                {"tensor \"w\": missing \"data_offsets\""});
  expectInvalid("entry-not-object", "{\"w\":[1,2]}", "",
                {"tensor \"w\": entry is array, not an object"});
  expectInvalid("dtype-number",
                "{\"w\":{\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]}}",
                data, {"tensor \"w\": \"dtype\" is number, not a string"});
  expectInvalid("shape-string",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":\"1\","
                "\"data_offsets\":[0,4]}}",
                data, {"tensor \"w\": \"shape\" is string, not an array"});
  expectInvalid("shape-float",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],"
                "\"data_offsets\":[0,4]}}",
                data, {"tensor \"w\": shape[0] is number 1.5, not an integer"});
  expectInvalid("offsets-one",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
                "\"data_offsets\":[4]}}",
                data,
                {"tensor \"w\": \"data_offsets\" is an array of 1, not an "
                 "array of 2 integers"});
  expectInvalid("offsets-object",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
                "\"data_offsets\":{}}}",
                data, {"tensor \"w\": \"data_offsets\" is object"});
  expectInvalid("offsets-string",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
                "\"data_offsets\":[\"0\",4]}}",
                data,
                {"tensor \"w\": data_offsets[0] is string \"0\", not an "
                 "integer"});
  expectInvalid("offsets-negative",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
                "\"data_offsets\":[0,-4]}}",
                data, {"tensor \"w\": data_offsets[1] is -4, negative"});
  expectInvalid("offsets-huge",
                "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],"
                "\"data_offsets\":[0,18446744073709551615]}}",
                data,
                {"tensor \"w\": data_offsets[1] is 18446744073709551615, too "
                 "large"});
}

TEST(SafetensorsMalformed, DtypesAndShapes) {
  expectInvalid("f64", "{" + entry("w", "F64", "[1]", 0, 8) + "}",
                std::string(8, '\0'),
                {"tensor \"w\": unsupported dtype \"F64\" (supported: F32, "
                 "BF16, F16)"});
  expectInvalid("unknown", "{" + entry("w", "Q7", "[1]", 0, 1) + "}",
                std::string(1, '\0'), {"unsupported dtype \"Q7\""});
  expectInvalid("negative-dim", "{" + entry("w", "F32", "[2,-3]", 0, 4) + "}",
                f32Bytes({1.0f}), {"tensor \"w\": shape[1] is -3, negative"});
  expectInvalid("overflowing-shape",
                "{" + entry("w", "F32", "[4294967296,4294967296]", 0, 4) + "}",
                f32Bytes({1.0f}),
                {"tensor \"w\": shape [4294967296, 4294967296] has too many "
                 "elements"});
}

TEST(SafetensorsMalformed, OffsetsAndSizes) {
  expectInvalid("begin-past-end", "{" + entry("w", "F32", "[1]", 8, 4) + "}",
                std::string(8, '\0'),
                {"tensor \"w\": data_offsets [8, 4]: begin is past end"});
  expectReadError("end-past-data",
                  assemble("{" + entry("w", "F32", "[4]", 0, 16) + "}",
                           f32Bytes({1.0f, 2.0f})),
                  absl::StatusCode::kDataLoss,
                  {"tensor \"w\": data_offsets [0, 16] end past the data "
                   "section of 8 bytes"});
  expectInvalid("size-mismatch", "{" + entry("w", "F32", "[2,2]", 0, 12) + "}",
                std::string(12, '\0'),
                {"tensor \"w\": size mismatch: data_offsets [0, 12] hold 12 "
                 "bytes but shape [2, 2] of F32 needs 16"});
  expectInvalid("size-mismatch-bf16",
                "{" + entry("w", "BF16", "[3]", 0, 12) + "}",
                std::string(12, '\0'),
                {"tensor \"w\": size mismatch", "shape [3] of BF16 needs 6"});
}

TEST(SafetensorsMalformed, OverlapsAndGaps) {
  expectInvalid("overlap",
                "{" + entry("a", "F32", "[2]", 0, 8) + "," +
                    entry("b", "F32", "[2]", 4, 12) + "}",
                std::string(12, '\0'),
                {"tensors \"a\" [0, 8] and \"b\" [4, 12] overlap"});
  expectInvalid("same-range",
                "{" + entry("a", "F32", "[1]", 0, 4) + "," +
                    entry("b", "F32", "[1]", 0, 4) + "}",
                std::string(4, '\0'),
                {"tensors \"a\" [0, 4] and \"b\" [0, 4] overlap"});
  expectInvalid("empty-inside",
                "{" + entry("a", "F32", "[2]", 0, 8) + "," +
                    entry("e", "F32", "[0]", 4, 4) + "}",
                std::string(8, '\0'),
                {"tensors \"a\" [0, 8] and \"e\" [4, 4] overlap"});
  expectInvalid("gap",
                "{" + entry("a", "F32", "[2]", 0, 8) + "," +
                    entry("b", "F32", "[2]", 12, 20) + "}",
                std::string(20, '\0'),
                {"gap between offsets 8 and 12", "after tensor \"a\"",
                 "before tensor \"b\""});
  expectInvalid("gap-at-start", "{" + entry("a", "F32", "[2]", 4, 12) + "}",
                std::string(12, '\0'),
                {"gap between offsets 0 and 4", "before tensor \"a\""});
  expectInvalid("trailing", "{" + entry("a", "F32", "[2]", 0, 8) + "}",
                std::string(12, '\0'),
                {"gap between offsets 8 and 12", "4 trailing bytes after "
                                                 "tensor \"a\""});
  expectInvalid("no-tensors-but-data", "{}", std::string(4, '\0'),
                {"gap between offsets 0 and 4", "(no tensors)"});
}

TEST(SafetensorsMalformed, Metadata) {
  expectInvalid("meta-number", "{\"__metadata__\":{\"n\":3}}", "",
                {"\"__metadata__\" value of \"n\" is number, not a string"});
  expectInvalid("meta-nested", "{\"__metadata__\":{\"n\":{}}}", "",
                {"\"__metadata__\" value of \"n\" is object, not a string"});
  expectInvalid("meta-array", "{\"__metadata__\":[\"a\"]}", "",
                {"\"__metadata__\" is array, not an object"});
}
