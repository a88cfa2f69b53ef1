//===- llmrt-runner.cpp - the runtime half of every compiled executable ---===//
//
// `llm-compile MODEL.mlir -o MODEL.exe` copies this binary and appends the
// compiled program; at start it reads the program from its own file.
//
//===----------------------------------------------------------------------===//
#include "llmrt/Program.h"
#include "llmrt/Trainer.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

int main(int argc, char **argv) {
  // OpenMP's idle threads spin by default and starve OpenBLAS's threads on
  // small machines; they must wait passively. libgomp reads the policy when
  // it loads, so set it and start again once.
  if (!std::getenv("OMP_WAIT_POLICY")) {
    ::setenv("OMP_WAIT_POLICY", "passive", 1);
    ::execv("/proc/self/exe", argv);
    // If re-exec fails, go on with the default policy.
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::fputs(llmrt::trainUsage(argv[0]).c_str(), stdout);
    return 0;
  }
  auto opts = llmrt::parseTrainOptions(args);
  if (!opts.ok()) {
    std::fprintf(stderr, "error: %s\n%s", std::string(opts.status().message()).c_str(),
                 llmrt::trainUsage(argv[0]).c_str());
    return 2;
  }
  auto program = llmrt::loadEmbeddedProgram("/proc/self/exe");
  if (!program.ok()) {
    std::fprintf(stderr, "error: rank 0: %s\n",
                 std::string(program.status().message()).c_str());
    return 1;
  }
  if (absl::Status s = llmrt::train(*program, *opts); !s.ok()) {
    std::fprintf(stderr, "error: rank 0: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}
