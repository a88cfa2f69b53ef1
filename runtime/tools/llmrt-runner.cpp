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

#include <algorithm>
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
  // The embedded program, or this rank's stage of a pipeline bundle (every
  // stage's program is read: the checkpoint index and the initialization
  // span the whole pipeline).
  auto fail = [&](const absl::Status &s) {
    std::fprintf(stderr, "error: rank %d: %s\n", rank,
                 std::string(s.message()).c_str());
    // A wrong world is found by every rank alike: end cleanly.
    if (comm->worldSize() > 1 && s.code() != absl::StatusCode::kFailedPrecondition)
      comm->abort(1);
    return 1;
  };
  const std::string exe = "/proc/self/exe";
  auto embedded = llmrt::readEmbedded(exe);
  if (!embedded.ok())
    return fail(embedded.status());
  // The world this process was launched in: a one-rank runner under mpirun
  // sees one rank, the launcher's environment says how many there are.
  int world = comm->worldSize();
  if (world == 1)
    for (const char *var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
      if (const char *v = std::getenv(var))
        world = std::max(world, std::atoi(v));
  auto stage = llmrt::stageOfRank(*embedded, exe, rank, world);
  if (!stage.ok())
    return fail(stage.status());
  auto programs = llmrt::parseEmbeddedAll(*embedded, exe);
  if (!programs.ok())
    return fail(programs.status());
  embedded->clear();
  embedded->shrink_to_fit();
  // One program: the trainer needs no stage list.
  std::vector<llmrt::ProgramDesc> stages;
  if (programs->size() > 1)
    stages = *programs;
  const llmrt::ProgramDesc &program = (*programs)[*stage];
#ifdef LLMRT_CUDA
  llmrt::ExecutorFactory backend = llmrt::createCudaExecutor;
#else
  llmrt::ExecutorFactory backend = llmrt::createCpuExecutor;
#endif
  if (absl::Status s = llmrt::train(program, *opts, *comm, backend, stages);
      !s.ok()) {
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
