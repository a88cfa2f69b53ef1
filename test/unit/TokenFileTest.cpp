//===- TokenFileTest.cpp - llm.c token file reader and writer -------------===//
#include "llmrt/TokenFile.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <unistd.h>

namespace {

std::string tempPath(const std::string &name) {
  return ::testing::TempDir() + "/llmrt_" + std::to_string(::getpid()) + "_" +
         name;
}

/// Writes raw bytes: a header of int32 then the given payload.
void writeRaw(const std::string &path, std::vector<int32_t> header,
              const std::vector<uint16_t> &tokens, size_t headerInts = 256) {
  header.resize(headerInts, 0);
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char *>(header.data()), header.size() * 4);
  f.write(reinterpret_cast<const char *>(tokens.data()), tokens.size() * 2);
}

} // namespace

TEST(TokenFile, RoundTrip) {
  std::string p = tempPath("rt.bin");
  std::vector<uint16_t> tokens = {0, 1, 255, 72, 105, 65535};
  ASSERT_TRUE(llmrt::writeTokenFile(p, tokens).ok());
  auto f = llmrt::TokenFile::read(p, 0);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(std::vector<uint16_t>(f->tokens().begin(), f->tokens().end()),
            tokens);
  // The layout is llm.c's: 1024-byte header then 2 bytes a token.
  std::ifstream in(p, std::ios::binary | std::ios::ate);
  EXPECT_EQ(static_cast<int64_t>(in.tellg()), 1024 + 2 * 6);
  std::remove(p.c_str());
}

TEST(TokenFile, BadMagicNamesFileAndOffset) {
  std::string p = tempPath("magic.bin");
  writeRaw(p, {12345, 1, 2}, {1, 2});
  auto f = llmrt::TokenFile::read(p, 256);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(),
            p + ": offset 0: bad magic 12345 (expected 20240520, an llm.c "
                "token file)");
  std::remove(p.c_str());
}

TEST(TokenFile, BadVersion) {
  std::string p = tempPath("version.bin");
  writeRaw(p, {20240520, 7, 2}, {1, 2});
  auto f = llmrt::TokenFile::read(p, 256);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("offset 4: unsupported version 7"),
            std::string::npos);
  std::remove(p.c_str());
}

TEST(TokenFile, ShortFiles) {
  std::string p = tempPath("short.bin");
  writeRaw(p, {20240520, 1, 2}, {}, 10);
  auto f = llmrt::TokenFile::read(p, 256);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("40 bytes, shorter than the 1024-byte "
                                      "header"),
            std::string::npos);
  writeRaw(p, {20240520, 1, 5}, {1, 2});
  f = llmrt::TokenFile::read(p, 256);
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("header declares 5 tokens (1034 bytes) "
                                      "but the file is 1028 bytes (truncated)"),
            std::string::npos);
  std::remove(p.c_str());
}

TEST(TokenFile, TokenOutsideVocabulary) {
  std::string p = tempPath("vocab.bin");
  writeRaw(p, {20240520, 1, 3}, {10, 300, 20});
  auto f = llmrt::TokenFile::read(p, 256);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().message(),
            p + ": offset 1026: token 300 (index 1) is outside the "
                "vocabulary of 256");
  EXPECT_TRUE(llmrt::TokenFile::read(p, 301).ok());
  std::remove(p.c_str());
}

TEST(TokenFile, MissingFile) {
  auto f = llmrt::TokenFile::read(tempPath("does-not-exist.bin"), 256);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
}
