//===- llm-tokenize.cpp - text to byte-level llm.c token files ------------===//
//
//   llm-tokenize INPUT.txt -o TRAIN.bin [--val VAL.bin] [--val-fraction F]
//
// Byte-level tokens (vocabulary 256): every byte of the text is one token.
// With --val, the last F of the text (default 0.1) goes to the validation
// file and the rest to the training file, as nanoGPT splits Shakespeare.
//
//===----------------------------------------------------------------------===//
#include "llmrt/TokenFile.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

static int usage(const char *msg) {
  std::fprintf(stderr,
               "llm-tokenize: error: %s\n"
               "usage: llm-tokenize INPUT.txt -o TRAIN.bin [--val VAL.bin] "
               "[--val-fraction F]\n",
               msg);
  return 2;
}

int main(int argc, char **argv) {
  std::string input, out, val;
  double fraction = 0.1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&](const char *flag) -> const char * {
      if (i + 1 >= argc)
        return nullptr;
      (void)flag;
      return argv[++i];
    };
    if (a == "-o" || a == "--val" || a == "--val-fraction") {
      const char *v = next(a.c_str());
      if (!v)
        return usage((a + " needs a value").c_str());
      if (a == "-o")
        out = v;
      else if (a == "--val")
        val = v;
      else {
        char *end = nullptr;
        fraction = std::strtod(v, &end);
        if (!end || *end || !(fraction > 0 && fraction < 1))
          return usage(("--val-fraction must be in (0, 1), got '" +
                        std::string(v) + "'")
                           .c_str());
      }
    } else if (!a.empty() && a[0] == '-') {
      return usage(("unknown flag '" + a + "'").c_str());
    } else if (input.empty()) {
      input = a;
    } else {
      return usage(("unexpected argument '" + a + "'").c_str());
    }
  }
  if (input.empty() || out.empty())
    return usage("an input file and -o are required");

  FILE *f = std::fopen(input.c_str(), "rb");
  if (!f) {
    std::fprintf(stderr, "llm-tokenize: error: %s: cannot open: %s\n",
                 input.c_str(), std::strerror(errno));
    return 1;
  }
  std::vector<uint16_t> tokens;
  int c;
  while ((c = std::fgetc(f)) != EOF)
    tokens.push_back(static_cast<uint16_t>(c));
  std::fclose(f);
  if (tokens.empty()) {
    std::fprintf(stderr, "llm-tokenize: error: %s: empty input\n",
                 input.c_str());
    return 1;
  }

  size_t split = tokens.size();
  if (!val.empty())
    split = tokens.size() - static_cast<size_t>(fraction * tokens.size());
  absl::Span<const uint16_t> all(tokens);
  if (absl::Status s = llmrt::writeTokenFile(out, all.subspan(0, split));
      !s.ok()) {
    std::fprintf(stderr, "llm-tokenize: error: %s\n",
                 std::string(s.message()).c_str());
    return 1;
  }
  std::fprintf(stderr, "llm-tokenize: %s: %zu tokens\n", out.c_str(), split);
  if (!val.empty()) {
    if (absl::Status s = llmrt::writeTokenFile(val, all.subspan(split));
        !s.ok()) {
      std::fprintf(stderr, "llm-tokenize: error: %s\n",
                   std::string(s.message()).c_str());
      return 1;
    }
    std::fprintf(stderr, "llm-tokenize: %s: %zu tokens\n", val.c_str(),
                 tokens.size() - split);
  }
  return 0;
}
