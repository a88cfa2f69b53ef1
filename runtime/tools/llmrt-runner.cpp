//===- llmrt-runner.cpp - the runtime half of every compiled executable ---===//
//
// `llm-compile MODEL.mlir -o MODEL.exe` copies this binary and appends the
// compiled program; at start it reads the program from its own file. Built
// three times: llmrt-runner (CPU, one rank), llmrt-runner-mpi (CPU, MPI) and
// llmrt-runner-cuda (LLMRT_CUDA: the CUDA backend, one rank, neither MPI
// nor OpenBLAS needed where it runs).
//
//===----------------------------------------------------------------------===//
#include "llmrt/Comm.h"
#include "llmrt/Program.h"
#include "llmrt/Trainer.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

int main(int argc, char **argv) {
  // Two thread pools share the cores: OpenMP's (our loops) and OpenBLAS's
  // (GEMMs). By default both spin after their work (OpenBLAS for 2^28
  // cycles, about 0.1 s), each starving the other on small machines; make
  // both wait passively. Both libraries read these settings when they load,
  // so set them and start again once (users' own settings are kept).
  if (!std::getenv("LLMRT_ENV_SET")) {
    ::setenv("LLMRT_ENV_SET", "1", 1);
    ::setenv("OMP_WAIT_POLICY", "passive", 0);
    ::setenv("OPENBLAS_THREAD_TIMEOUT", "10", 0);
    ::execv("/proc/self/exe", argv);
    // If re-exec fails, go on with the defaults.
  }
  std::unique_ptr<llmrt::Communicator> comm = llmrt::createMpiCommunicator(&argc, &argv);
  if (!comm)
    comm = llmrt::createLocalCommunicator();
  int rank = comm->rank();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    if (rank == 0)
      std::fputs(llmrt::trainUsage(argv[0]).c_str(), stdout);
    return 0;
  }
  // Errors found identically on every rank (flags, program, world size)
  // end every rank cleanly; an error on one rank alone aborts the job.
  auto opts = llmrt::parseTrainOptions(args);
  if (!opts.ok()) {
    if (rank == 0)
      std::fprintf(stderr, "error: %s\n%s",
                   std::string(opts.status().message()).c_str(),
                   llmrt::trainUsage(argv[0]).c_str());
    return 2;
  }
  auto program = llmrt::loadEmbeddedProgram("/proc/self/exe");
  if (!program.ok()) {
    std::fprintf(stderr, "error: rank %d: %s\n", rank,
                 std::string(program.status().message()).c_str());
    if (comm->worldSize() > 1)
      comm->abort(1);
    return 1;
  }
#ifdef LLMRT_CUDA
  llmrt::ExecutorFactory backend = llmrt::createCudaExecutor;
#else
  llmrt::ExecutorFactory backend = llmrt::createCpuExecutor;
#endif
  if (absl::Status s = llmrt::train(*program, *opts, *comm, backend); !s.ok()) {
    std::fprintf(stderr, "error: rank %d: %s\n", rank,
                 std::string(s.message()).c_str());
    // Only the world-size check (FailedPrecondition) fails on every rank
    // alike; any other error may be this rank's alone, and the others would
    // wait for it in a collective: end the job.
    if (s.code() == absl::StatusCode::kFailedPrecondition || comm->worldSize() == 1)
      return 1;
    comm->abort(1);
  }
  return 0;
}
