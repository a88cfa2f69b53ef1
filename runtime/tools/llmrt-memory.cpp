//===- llmrt-memory.cpp - a compiled executable's device memory, offline ---===//
//
// What the CUDA runtime will allocate for a compiled executable's arena,
// computed on any machine (no GPU, no MPI) by the runtime's own planning
// code: per pipeline stage, the arena as the compiler sized it (every
// tensor f32), the tensors the runtime stores 16-bit with its defaults
// (16-bit GEMMs: bf16, or fp16 for an fp16 model), the arena packed anew
// with their sizes (ArenaPack.h) and, on one rank, the GEMM weights'
// 16-bit copies. Before a launch: whether it fits, and why.
//
//   llmrt-memory gpt2.exe [--json] [--verify]
//
// --verify also runs each stage's program in both layouts, offline, and
// checks that every read sees the same writes (verifyLayout).
//
//===----------------------------------------------------------------------===//
#include "llmrt/ArenaPack.h"
#include "llmrt/Comm.h"
#include "llmrt/Program.h"
#include "llmrt/Store16.h"

#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

using namespace llmrt;

namespace {

double mib(uint64_t b) { return static_cast<double>(b) / 1048576.0; }

int64_t metaInt(const nlohmann::json &m, const char *key) {
  return m.is_object() && m.contains(key) && m[key].is_number_integer() ? m[key].get<int64_t>()
                                                                         : 1;
}

} // namespace

int main(int argc, char **argv) {
  std::string exe;
  bool json = false, verify = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--json") {
      json = true;
    } else if (a == "--verify") {
      verify = true;
    } else if (a == "--help" || a == "-h") {
      std::printf("usage: llmrt-memory EXECUTABLE [--json] [--verify]\n"
                  "The CUDA runtime's device arena for a compiled executable, per pipeline "
                  "stage\n(for the stage's first rank), with its default 16-bit storage; computed "
                  "here, without a GPU.\n"
                  "--verify: run each program in both layouts and check that every read sees "
                  "the same writes.\n");
      return 0;
    } else if (!a.empty() && a[0] == '-') {
      std::fprintf(stderr, "llmrt-memory: unknown flag '%s' (try --help)\n", a.c_str());
      return 2;
    } else if (exe.empty()) {
      exe = a;
    } else {
      std::fprintf(stderr, "llmrt-memory: one executable, got '%s' and '%s'\n", exe.c_str(),
                   a.c_str());
      return 2;
    }
  }
  if (exe.empty()) {
    std::fprintf(stderr, "llmrt-memory: no executable given (try --help)\n");
    return 2;
  }
  absl::StatusOr<std::vector<uint8_t>> bytes = readEmbedded(exe);
  if (!bytes.ok()) {
    std::fprintf(stderr, "llmrt-memory: %s\n", std::string(bytes.status().message()).c_str());
    return 1;
  }
  absl::StatusOr<std::vector<ProgramDesc>> programs = parseEmbeddedAll(*bytes, exe);
  if (!programs.ok()) {
    std::fprintf(stderr, "llmrt-memory: %s\n", std::string(programs.status().message()).c_str());
    return 1;
  }
  const nlohmann::json meta0 = nlohmann::json::parse((*programs)[0].metadata, nullptr, false);
  const int tp = static_cast<int>(metaInt(meta0, "tp")),
            dp = static_cast<int>(metaInt(meta0, "dp")),
            pp = static_cast<int>(programs->size());
  const bool fp16 = meta0.is_object() && meta0.contains("compute_precision") &&
                    meta0["compute_precision"] == "fp16";
  // An executable for the CPU allocates its compiled arena, nothing more.
  const bool cpu = meta0.is_object() && meta0.contains("target") && meta0["target"] == "cpu";
  for (size_t stage = 0; stage < programs->size(); ++stage) {
    const ProgramDesc &p = (*programs)[stage];
    // The stage's first rank (ranks: tp innermost, then dp, then pp).
    std::unique_ptr<Communicator> comm =
        createShapeCommunicator(static_cast<int>(stage) * tp * dp, tp, dp, pp);
    uint64_t persistent = 0;
    for (const BufferDesc &b : p.buffers)
      if (b.role != BufferRole::Temp)
        persistent = std::max(persistent, b.offset + b.bytes);
    if (cpu) {
      if (json)
        std::printf("%s\n", nlohmann::json({{"stage", stage},
                                             {"target", "cpu"},
                                             {"compiled_arena_bytes", p.arenaBytes},
                                             {"persistent_bytes", persistent},
                                             {"arena_bytes", p.arenaBytes}})
                                 .dump()
                                 .c_str());
      else
        std::printf("stage %zu of %d: arena %.1f MiB (persistent %.1f MiB), the CPU runtime's "
                    "(compiled for the CPU: --target cuda for a GPU)\n",
                    stage, pp, mib(p.arenaBytes), mib(persistent));
      continue;
    }
    // The executor's defaults: 16-bit activations; attention's tensors
    // 16-bit where FlashAttention-2 runs (bf16 only).
    const Store16Plan plan16 = planDeviceStore16(p, *comm, true, [&](const Instruction &inst) {
      auto op = static_cast<Opcode>(inst.opcode);
      return !fp16 && (op == Opcode::AttentionFwd || op == Opcode::AttentionBwd) &&
             flashAttentionRuns(inst);
    });
    ArenaLayout layout; // (nothing 16-bit: as compiled, as the executor keeps it)
    layout.unused = "no tensor stored 16-bit";
    if (plan16.count > 0)
      layout = packDeviceArena(p, *comm, plan16, false);
    // Several ranks pack only with LLMRT_CUDA_ARENA16=1 (CudaExecutor.cpp).
    const bool byDefault = comm->worldSize() == 1;
    const uint64_t packed = layout.unused.empty() ? layout.arenaBytes : p.arenaBytes;
    const uint64_t arena = byDefault ? packed : p.arenaBytes;
    std::string verified; // "" unchecked, "yes", or the first read that differs
    if (verify && layout.unused.empty()) {
      verified = verifyLayout(p, *comm, plan16, layout);
      if (!verified.empty()) {
        std::fprintf(stderr,
                     "llmrt-memory: stage %zu: the packed layout changes what a read sees: %s\n",
                     stage, verified.c_str());
        return 1;
      }
      verified = "yes";
    }
    auto align = [](uint64_t n) { return (n + 255) / 256 * 256; };
    uint64_t copies = 0; // (256-byte aligned, as the executor places them)
    if (comm->worldSize() == 1)
      for (uint32_t b : gemmWeights(p))
        copies += align(p.buffers[b].bytes / 2);
    // The rest of what the executor allocates (its allocatedBytes, one
    // rank, no side stream): the workspace beside the arena, cuBLAS's
    // scratch and cuBLASLt's workspace.
    const uint64_t workspace =
        static_cast<uint64_t>(deviceWorkspace(p, comm->worldSize() > 1).fixedBytes()) +
        align(plan16.sideBytes) +
        align(static_cast<uint64_t>(attentionScratchBytes(p, plan16, [&](const Instruction &inst) {
          return !fp16 && flashAttentionRuns(inst);
        }))) +
        copies;
    const uint64_t blas = static_cast<uint64_t>(gemmDeviceBytes(gemmScratchElems(p, plan16)));
    const uint64_t device = std::max<uint64_t>(arena, kArenaAlignment) + workspace + blas;
    if (json) {
      nlohmann::json j = {{"stage", stage},
                          {"compiled_arena_bytes", p.arenaBytes},
                          {"persistent_bytes", persistent},
                          {"tensors_16bit", plan16.count},
                          {"side_bytes", plan16.sideBytes},
                          {"arena_bytes", arena},
                          {"packed_arena_bytes", packed},
                          {"packed_by_default", byDefault},
                          {"halved", layout.shrunk},
                          {"packed", layout.unused.empty()},
                          {"why_not_packed", layout.unused},
                          {"weight_copy_bytes", copies},
                          {"workspace_bytes", workspace},
                          {"blas_bytes", blas},
                          {"device_bytes", device},
                          {"verified", verified == "yes"}};
      std::printf("%s\n", j.dump().c_str());
      continue;
    }
    std::printf("stage %zu of %d (rank %d of %d): compiled arena %.1f MiB (persistent %.1f MiB, "
                "every tensor f32)\n",
                stage, pp, comm->rank(), comm->worldSize(), mib(p.arenaBytes), mib(persistent));
    std::printf("  CUDA runtime, %s GEMMs: %lld tensors stored 16-bit (%.1f MiB of them beside "
                "their buffers)\n",
                fp16 ? "fp16" : "bf16", static_cast<long long>(plan16.count),
                mib(plan16.sideBytes));
    if (layout.unused.empty() && byDefault)
      std::printf("  arena %.1f MiB packed with 16-bit sizes (%d buffers halved)\n", mib(arena),
                  layout.shrunk);
    else if (layout.unused.empty())
      std::printf("  arena %.1f MiB as compiled; %.1f MiB packed with 16-bit sizes (%d buffers "
                  "halved) with LLMRT_CUDA_ARENA16=1 (several ranks: off by default)\n",
                  mib(arena), mib(packed), layout.shrunk);
    else
      std::printf("  arena %.1f MiB as compiled (%s)\n", mib(arena), layout.unused.c_str());
    if (verified == "yes")
      std::printf("  verified: every read sees the same writes as in the compiler's layout\n");
    std::printf("  workspace %.1f MiB (the GEMM weights' 16-bit copies %.1f, the 16-bit values "
                "beside their buffers %.1f), cuBLAS %.1f MiB\n",
                mib(workspace), mib(copies), mib(plan16.sideBytes), mib(blas));
    std::printf("  device total %.1f MiB (the executor's allocation, one rank's; %s)\n",
                mib(device),
                comm->worldSize() > 1 ? "and NCCL's staging for pipeline sends" : "no side stream");
  }
  return 0;
}
