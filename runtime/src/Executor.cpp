//===- Executor.cpp - the CPU backend of the executor ---------------------===//
#include "llmrt/Executor.h"
#include "llmrt/ArenaPack.h"
#include "llmrt/Comm.h"
#include "llmrt/CpuKernels.h"
#include "llmrt/FusedKernels.h"

#include "absl/strings/str_cat.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace llmrt {

namespace {
class CpuExecutor final : public Executor {
public:
  ~CpuExecutor() override {
    std::free(arena_);
    std::free(workspace_);
  }
  void run(int fn, std::vector<TraceEvent> *trace,
           std::chrono::steady_clock::time_point origin) override;
  int64_t allocatedBytes() const override {
    return program_.arenaBytes + workspaceBytes_;
  }
  std::string backend() const override { return "cpu"; }

private:
  friend absl::StatusOr<std::unique_ptr<Executor>>
  llmrt::createCpuExecutor(ProgramDesc, Communicator &, int);
  uint8_t *hostView(const BufferDesc &b) override { return arena_ + b.offset; }

public:
  struct Resolved {
    const Instruction *inst;
    std::vector<void *> ptrs;
    int fused = -1; ///< index into fused_ (fused_elementwise, fused_norm)
  };
  uint8_t *arena_ = nullptr;
  /// The fusion groups (a fused_elementwise's is the program's `pro`).
  std::vector<FusedNormProgram> fused_;
  void *workspace_ = nullptr;
  int64_t workspaceBytes_ = 0;
  /// Per-row scratch of the vocabulary-parallel loss (sized at load).
  std::vector<double> rowScratch_;
  std::vector<std::vector<Resolved>> functions_;
  /// Per function: the collectives left running while later instructions
  /// run (several ranks only).
  std::vector<DeferredCollectives> deferred_;
};
} // namespace

absl::StatusOr<std::unique_ptr<Executor>>
createCpuExecutor(ProgramDesc program, Communicator &comm, int threads) {
  cpu::setThreads(threads);
  std::unique_ptr<CpuExecutor> ex(new CpuExecutor());
  ex->comm_ = &comm;
  ex->program_ = std::move(program);
  // LLMRT_ARENA_REPACK=1: the temporaries packed anew by the runtime
  // (ArenaPack.h, each at its whole size), over an arena of NaNs: the
  // end-to-end check of the layouts the CUDA executor packs.
  bool poison = false;
  if (const char *r = std::getenv("LLMRT_ARENA_REPACK"); r && std::strcmp(r, "0") != 0) {
    if (std::strcmp(r, "1") != 0)
      return absl::InvalidArgumentError(
          absl::StrCat("LLMRT_ARENA_REPACK='", r, "' is not 0 or 1"));
    std::vector<uint64_t> need;
    for (const BufferDesc &b : ex->program_.buffers)
      need.push_back(b.bytes);
    PackOptions options;
    options.evenIfLarger = true;
    // Several ranks: views move with what they view, and the collectives
    // the executor lets run on keep their operands to their waits.
    options.allRanks = [&comm](const BufferDesc &b) { return allRanksBytes(b, comm); };
    if (comm.worldSize() > 1)
      options.livesTo = deferredLives(ex->program_, comm, /*fence=*/true);
    ArenaLayout l = packArena(ex->program_, need, options);
    if (!l.unused.empty())
      return absl::FailedPreconditionError(absl::StrCat("LLMRT_ARENA_REPACK: ", l.unused));
    // (Checked offline too, as the CUDA executor checks its layouts; the
    // run then checks it for real.)
    Store16Plan f32;
    f32.slots.resize(ex->program_.functions.size());
    for (size_t fi = 0; fi < f32.slots.size(); ++fi)
      f32.slots[fi].assign(ex->program_.functions[fi].instructions.size(), 0);
    if (std::string why = verifyLayout(ex->program_, comm, f32, l); !why.empty())
      return absl::InternalError(
          absl::StrCat("LLMRT_ARENA_REPACK: the layout fails its check: ", why));
    ex->program_ = withLayout(ex->program_, l);
    poison = true;
  }
  const ProgramDesc &p = ex->program_;
  for (const BufferDesc &b : p.buffers)
    if (b.elem != ElemType::F32 && b.elem != ElemType::I32 &&
        b.elem != ElemType::I64)
      return absl::UnimplementedError(absl::StrCat(
          "buffer '", b.name, "': the CPU runtime computes in f32"));
  size_t arenaBytes = std::max<uint64_t>(p.arenaBytes, kArenaAlignment);
  arenaBytes = (arenaBytes + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
  ex->arena_ = static_cast<uint8_t *>(std::aligned_alloc(kArenaAlignment, arenaBytes));
  if (!ex->arena_)
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate the ", p.arenaBytes, "-byte arena"));
  std::memset(ex->arena_, 0, arenaBytes);
  if (poison) { // the temporaries' region: past every persistent buffer
    uint64_t persistentEnd = 0;
    for (const BufferDesc &b : p.buffers)
      if (b.role != BufferRole::Temp)
        persistentEnd = std::max(persistentEnd, b.offset + b.bytes);
    if (persistentEnd < arenaBytes)
      std::memset(ex->arena_ + persistentEnd, 0xff, arenaBytes - persistentEnd);
  }

  // The attention workspace: the largest any attention instruction needs.
  for (const FunctionDesc &f : p.functions)
    for (const Instruction &inst : f.instructions)
      if (inst.opcode == static_cast<uint16_t>(Opcode::AttentionFwd) ||
          inst.opcode == static_cast<uint16_t>(Opcode::AttentionBwd))
        ex->workspaceBytes_ = std::max(
            ex->workspaceBytes_,
            cpu::attentionWorkspaceBytes(inst.ints[0], inst.ints[1],
                                         inst.ints[2], inst.ints[4], 4));
  if (ex->workspaceBytes_ > 0) {
    size_t ws = (ex->workspaceBytes_ + 63) / 64 * 64;
    ex->workspace_ = std::aligned_alloc(64, ws);
    if (!ex->workspace_)
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot allocate the ", ws, "-byte attention workspace"));
  }

  for (const FunctionDesc &f : p.functions)
    for (const Instruction &inst : f.instructions)
      if (inst.opcode == static_cast<uint16_t>(Opcode::VocabCrossEntropyFwd) ||
          inst.opcode == static_cast<uint16_t>(Opcode::VocabCrossEntropyBwd))
        ex->rowScratch_.resize(
            std::max<size_t>(ex->rowScratch_.size(), 3 * inst.ints[0]));

  if (absl::Status s = checkPipelinePeers(p, comm.groupRank(Group::PP),
                                         comm.groupSize(Group::PP));
      !s.ok())
    return s;
  for (const FunctionDesc &f : p.functions) {
    std::vector<CpuExecutor::Resolved> resolved;
    for (const Instruction &inst : f.instructions) {
      CpuExecutor::Resolved r{&inst, {}};
      if (isFusedGroup(inst.opcode)) {
        FusedNormProgram fn;
        if (std::string why = decodeFusedGroup(inst.opcode, inst.ints, inst.operands.size(), fn);
            !why.empty())
          return absl::InvalidArgumentError(absl::StrCat(
              opcodeInfo(inst.opcode)->name, " in '", f.name, "': ", why));
        r.fused = static_cast<int>(ex->fused_.size());
        ex->fused_.push_back(std::move(fn));
      }
      if (absl::Status s = CpuExecutor::resolveOperands(p, inst, ex->arena_, comm, r.ptrs);
          !s.ok())
        return s;
      resolved.push_back(std::move(r));
    }
    std::vector<const std::vector<void *> *> ptrs;
    for (const CpuExecutor::Resolved &r : resolved)
      ptrs.push_back(&r.ptrs);
    ex->deferred_.push_back(comm.worldSize() > 1 ? Executor::deferFunction(p, f, ptrs, /*fence=*/true)
                                                 : DeferredCollectives{});
    ex->functions_.push_back(std::move(resolved));
  }
  return std::unique_ptr<Executor>(std::move(ex));
}

namespace {
float *F(void *p) { return static_cast<float *>(p); }
const int32_t *I(void *p) { return static_cast<const int32_t *>(p); }


/// The columns of this rank's vocabulary slice [start, start + V) that are
/// the model's (the rest pads the vocabulary: to a multiple of the group,
/// or of the compiler's vocab-align, also in a group of one rank):
/// `vocab` the model's vocabulary, 0 for no padding.
int64_t validColumns(int64_t V, int64_t start, int64_t vocab) {
  return vocab > 0 ? std::clamp<int64_t>(vocab - start, 0, V) : V;
}

/// Per row of this rank's logits slice [start, start + V) (of which the
/// first `valid` columns count): the global max and sum of exp(x - max)
/// over the whole vocabulary, and the target's logit (all-reduced over
/// `group`). scratch: 3 x rows doubles.
void vocabRowStats(const float *logits, const int32_t *targets, int64_t rows,
                   int64_t V, int64_t valid, int64_t start, Communicator &comm,
                   Group group, double *scratch) {
  double *mx = scratch, *sum = scratch + rows, *tgt = scratch + 2 * rows;
  for (int64_t r = 0; r < rows; ++r) {
    const float *x = logits + r * V;
    double m = -INFINITY;
    for (int64_t j = 0; j < valid; ++j)
      m = std::max(m, static_cast<double>(x[j]));
    mx[r] = m;
  }
  comm.allReduce(mx, rows, group, Reduction::Max);
  for (int64_t r = 0; r < rows; ++r) {
    const float *x = logits + r * V;
    double s = 0;
    for (int64_t j = 0; j < valid; ++j)
      s += std::exp(static_cast<double>(x[j]) - mx[r]);
    sum[r] = s;
    int64_t t = targets[r] - start;
    tgt[r] = (t >= 0 && t < valid) ? static_cast<double>(x[t]) : 0.0;
  }
  comm.allReduce(sum, 2 * rows, group, Reduction::Sum); // sum and tgt
}
} // namespace

void CpuExecutor::run(int fn, std::vector<TraceEvent> *trace,
                   std::chrono::steady_clock::time_point origin) {
  using clock = std::chrono::steady_clock;
  overflowed_ = false;
  // Fault injection for the tests: the gradient norm of this run is
  // infinite (LLMRT_TEST_OVERFLOW_RUN counts the train runs from 1).
  static int64_t runs = 0;
  bool injectOverflow = false;
  if (const char *at = std::getenv("LLMRT_TEST_OVERFLOW_RUN"))
    injectOverflow = program_.functions[fn].name == "train" && ++runs == std::atoll(at);
  bool phaseOpen = false;
  double phaseBegin = 0;
  TraceEvent phase{"phase", 0, 0};
  const DeferredCollectives &deferred = deferred_[fn];
  // Completes deferred collectives (the time they keep this rank waiting
  // is communication in the trace).
  auto complete = [&](const std::vector<int> &slots) {
    if (slots.empty())
      return;
    clock::time_point begin = trace ? clock::now() : clock::time_point();
    for (int slot : slots) {
      // The watchdog names the collective this rank waits for.
      current.store(opcodeInfo(deferred.opcodeOf[slot - kDeferredSlotBase])->name,
                    std::memory_order_relaxed);
      comm_->waitAllReduce(slot);
    }
    if (trace)
      trace->push_back(
          {"collective_wait",
           std::chrono::duration<double, std::micro>(begin - origin).count(),
           std::chrono::duration<double, std::micro>(clock::now() - begin).count(), 0});
  };
  for (size_t idx = 0; idx < functions_[fn].size(); ++idx) {
    const Resolved &r = functions_[fn][idx];
    const Instruction &in = *r.inst;
    const std::vector<int64_t> &n = in.ints;
    const std::vector<double> &fl = in.floats;
    void *const *p = r.ptrs.data();
    if (!deferred.waitBefore.empty())
      complete(deferred.waitBefore[idx]);
    // A deferred collective starts here and completes where its bytes are
    // next touched.
    const int slot = deferred.slotOf.empty() ? -1 : deferred.slotOf[idx];
    clock::time_point begin;
    if (trace)
      begin = clock::now();
    progress.fetch_add(1, std::memory_order_relaxed);
    if (const OpcodeInfo *info = opcodeInfo(in.opcode))
      current.store(info->name, std::memory_order_relaxed);
    switch (static_cast<Opcode>(in.opcode)) {
    case Opcode::EmbeddingFwd:
      cpu::embeddingFwd(I(p[0]), F(p[1]), F(p[2]), n[0], n[1]);
      break;
    case Opcode::EmbeddingBwd:
      cpu::embeddingBwd(I(p[0]), F(p[1]), F(p[2]), n[0], n[1], n[2]);
      break;
    case Opcode::PositionEmbeddingFwd:
      cpu::positionEmbeddingFwd(F(p[0]), F(p[1]), n[0], n[1]);
      break;
    case Opcode::PositionEmbeddingBwd:
      cpu::positionEmbeddingBwd(F(p[0]), F(p[1]), n[0], n[1], n[2]);
      break;
    case Opcode::LayerNormFwd:
      cpu::layerNormFwd(F(p[0]), F(p[1]), F(p[2]), F(p[3]), n[0], n[1], fl[0]);
      break;
    case Opcode::LayerNormBwd:
      cpu::layerNormBwd(F(p[0]), F(p[1]), F(p[2]), F(p[3]), F(p[4]), F(p[5]),
                        n[0], n[1], fl[0]);
      break;
    case Opcode::RMSNormFwd:
      cpu::rmsNormFwd(F(p[0]), F(p[1]), F(p[2]), n[0], n[1], fl[0]);
      break;
    case Opcode::RMSNormBwd:
      cpu::rmsNormBwd(F(p[0]), F(p[1]), F(p[2]), F(p[3]), F(p[4]), n[0], n[1],
                      fl[0]);
      break;
    case Opcode::LinearFwd:
      if (r.ptrs.size() == 4)
        cpu::linearFwd(F(p[0]), F(p[1]), F(p[2]), F(p[3]), n[0], n[1], n[2],
                       n[3] != 0);
      else
        cpu::linearFwd<float>(F(p[0]), F(p[1]), nullptr, F(p[2]), n[0], n[1],
                              n[2], n[3] != 0);
      break;
    case Opcode::LinearBwdWeight:
      cpu::linearBwdWeight(F(p[0]), F(p[1]), F(p[2]), n[0], n[1], n[2],
                           n[3] != 0);
      break;
    case Opcode::SumRows:
      cpu::sumRows(F(p[0]), F(p[1]), n[0], n[1]);
      break;
    case Opcode::CopyColumns:
      cpu::copyColumns(F(p[0]), n[0], n[1], F(p[1]), n[2], n[3], n[4], n[5]);
      break;
    case Opcode::Rope:
      cpu::rope(F(p[0]), F(p[1]), n[0], n[1], n[2], n[3], fl[0], n[4] != 0);
      break;
    case Opcode::AttentionFwd: {
      // q, k, v may be column slices of wider rows (AttentionLayout).
      const AttentionLayout l = attentionLayout(*r.inst);
      cpu::attentionFwd(F(p[0]) + l.off[0], F(p[1]) + l.off[1], F(p[2]) + l.off[2],
                        F(p[3]), n[0], n[1], n[2], n[3], n[4], fl[0], n[5] != 0,
                        workspace_, r.ptrs.size() == 5 ? F(p[4]) : nullptr, l.ld);
      break;
    }
    case Opcode::AttentionBwd: {
      // With the forward's output and log-sum-exp (9 operands) the CPU
      // still recomputes the probabilities: it forms them whole per head.
      const int o = r.ptrs.size() == 9 ? 2 : 0;
      const AttentionLayout l = attentionLayout(*r.inst);
      cpu::attentionBwd(F(p[0]) + l.off[0], F(p[1]) + l.off[1], F(p[2]) + l.off[2],
                        F(p[3]), F(p[4 + o]) + l.off[3], F(p[5 + o]) + l.off[4],
                        F(p[6 + o]) + l.off[5], n[0], n[1], n[2], n[3], n[4],
                        fl[0], n[5] != 0, workspace_, l.ld);
      break;
    }
    case Opcode::GeluFwd:
      cpu::geluFwd(F(p[0]), F(p[1]), n[0]);
      break;
    case Opcode::GeluBwd:
      cpu::geluBwd(F(p[0]), F(p[1]), F(p[2]), n[0]);
      break;
    case Opcode::SiluFwd:
      cpu::siluFwd(F(p[0]), F(p[1]), n[0]);
      break;
    case Opcode::SiluBwd:
      cpu::siluBwd(F(p[0]), F(p[1]), F(p[2]), n[0]);
      break;
    case Opcode::Add:
      cpu::add(F(p[0]), F(p[1]), F(p[2]), n[0], n[1]);
      break;
    case Opcode::Mul:
      cpu::mul(F(p[0]), F(p[1]), F(p[2]), n[0], n[1]);
      break;
    case Opcode::CrossEntropyFwd:
      cpu::crossEntropyFwd(F(p[0]), I(p[1]), F(p[2]), n[0], n[1]);
      break;
    case Opcode::CrossEntropyBwd:
      cpu::crossEntropyBwd(F(p[0]), I(p[1]), static_cast<float>(lossScale_),
                           F(p[2]), n[0], n[1]);
      break;
    case Opcode::GlobalNorm: {
      // Replicated gradients count once; the squares of parts are summed
      // over the groups they are spread over (mask: 1 dp, 2 tp).
      double sums[4] = {0, 0, 0, 0};
      for (size_t k = 1; k < r.ptrs.size(); ++k) {
        const BufferDesc &b = program_.buffers[in.operands[k]];
        double s = cpu::sumSquares(F(p[k]), static_cast<int64_t>(b.bytes / 4));
        sums[k - 1 < n.size() ? (n[k - 1] & 3) : 0] += s;
      }
      if (!n.empty()) {
        double overDp[2] = {sums[1], sums[3]};
        comm_->allReduce(overDp, 2, Group::DP, Reduction::Sum);
        double overTp[2] = {sums[2], overDp[1]};
        comm_->allReduce(overTp, 2, Group::TP, Reduction::Sum);
        sums[1] = overDp[0];
        sums[2] = overTp[0];
        sums[3] = overTp[1];
      }
      // Each stage holds its own layers' gradients (the tied embedding's
      // counted on one stage only): the squares add over the pipeline.
      double total = sums[0] + sums[1] + sums[2] + sums[3];
      if (comm_->groupSize(Group::PP) > 1)
        comm_->allReduce(&total, 1, Group::PP, Reduction::Sum);
      // The norm of the true gradients (the loss scale divided out).
      double norm = std::sqrt(total) / lossScale_;
      if (injectOverflow)
        norm = INFINITY;
      overflowed_ = !std::isfinite(norm);
      *F(p[0]) = static_cast<float>(norm);
      break;
    }
    case Opcode::ClipScale: {
      // torch.nn.utils.clip_grad_norm_: coef = max / (norm + 1e-6), at most 1.
      float norm = *F(p[0]), maxNorm = *F(p[1]);
      float coef = maxNorm > 0 ? maxNorm / (norm + 1e-6f) : 1.0f;
      *F(p[2]) = std::min(coef, 1.0f);
      break;
    }
    case Opcode::AllReduce: {
      if (p[0] != p[1])
        std::memcpy(p[1], p[0], static_cast<size_t>(n[0]) * 4);
      if (slot >= 0)
        comm_->startAllReduce(F(p[1]), n[0], static_cast<Group>(n[1]),
                              static_cast<Reduction>(n[2]), slot);
      else
        comm_->allReduce(F(p[1]), n[0], static_cast<Group>(n[1]),
                         static_cast<Reduction>(n[2]));
      break;
    }
    case Opcode::Scale:
      cpu::scale(F(p[0]), static_cast<float>(fl[0]), F(p[1]), n[0]);
      break;
    case Opcode::Phase:
      // Only --trace reads it: the previous phase ends here.
      if (trace) {
        double now = std::chrono::duration<double, std::micro>(clock::now() - origin).count();
        if (phaseOpen)
          trace->push_back({"phase", phaseBegin, now - phaseBegin, -1, 0,
                            phase.phase, phase.microbatch, phase.chunk});
        phaseOpen = true;
        phaseBegin = now;
        phase.phase = static_cast<int>(n[0]);
        phase.microbatch = n[1];
        phase.chunk = n[2];
      }
      continue;
    case Opcode::Send:
      comm_->send(F(p[0]), n[0], static_cast<int>(n[1]), static_cast<int>(n[2]));
      break;
    case Opcode::Recv:
      comm_->recv(F(p[0]), n[0], static_cast<int>(n[1]), static_cast<int>(n[2]));
      break;
    case Opcode::RecvStart:
      comm_->startRecv(F(p[0]), n[0], static_cast<int>(n[1]), static_cast<int>(n[2]),
                       static_cast<int>(n[3]));
      break;
    case Opcode::RecvWait:
      comm_->waitRecv(static_cast<int>(n[3]));
      break;
    case Opcode::AllReduceStart:
      comm_->startAllReduce(F(p[0]), n[0], static_cast<Group>(n[1]),
                            static_cast<Reduction>(n[2]), static_cast<int>(n[3]));
      break;
    case Opcode::AllReduceWait:
      comm_->waitAllReduce(static_cast<int>(n[3]));
      break;
    case Opcode::AllGatherStart: {
      Group g = static_cast<Group>(n[1]);
      float *mine = F(p[1]) + comm_->groupRank(g) * n[0];
      if (mine != F(p[0]))
        std::memcpy(mine, p[0], static_cast<size_t>(n[0]) * 4);
      comm_->startAllGather(F(p[1]), n[0], g, static_cast<int>(n[2]));
      break;
    }
    case Opcode::AllGatherWait:
      comm_->waitAllReduce(static_cast<int>(n[2]));
      break;
    case Opcode::ReduceScatter:
      if (slot >= 0)
        comm_->startReduceScatter(F(p[0]), F(p[1]), n[0], static_cast<Group>(n[1]),
                                  static_cast<Reduction>(n[2]), slot);
      else
        comm_->reduceScatter(F(p[0]), F(p[1]), n[0], static_cast<Group>(n[1]),
                             static_cast<Reduction>(n[2]));
      break;
    case Opcode::AllGather: {
      // In place: this rank's part goes to its slot first (ZeRO-1/2 update
      // it there already; ZeRO-3 gathers from the parameter's share).
      Group g = static_cast<Group>(n[1]);
      float *mine = F(p[1]) + comm_->groupRank(g) * n[0];
      if (mine != F(p[0]))
        std::memcpy(mine, p[0], static_cast<size_t>(n[0]) * 4);
      if (slot >= 0)
        comm_->startAllGather(F(p[1]), n[0], g, slot);
      else
        comm_->allGather(F(p[1]), n[0], g);
      break;
    }
    case Opcode::VocabEmbeddingFwd: {
      // This rank's rows; ids elsewhere give zeros (the all-reduce that
      // follows completes the lookup).
      int64_t C = n[1], V = n[2];
      int64_t start = comm_->groupRank(static_cast<Group>(n[3])) * V;
      const int32_t *ids = I(p[0]);
      const float *table = F(p[1]);
      float *out = F(p[2]);
      for (int64_t t = 0; t < n[0]; ++t) {
        int64_t row = ids[t] - start;
        if (row >= 0 && row < V)
          std::memcpy(out + t * C, table + row * C, C * 4);
        else
          std::memset(out + t * C, 0, C * 4);
      }
      break;
    }
    case Opcode::VocabEmbeddingBwd: {
      int64_t V = n[1], C = n[2];
      int64_t start = comm_->groupRank(static_cast<Group>(n[3])) * V;
      const int32_t *ids = I(p[0]);
      const float *dout = F(p[1]);
      float *dtable = F(p[2]);
      std::memset(dtable, 0, V * C * 4);
      for (int64_t t = 0; t < n[0]; ++t) {
        int64_t row = ids[t] - start;
        if (row >= 0 && row < V)
          for (int64_t c = 0; c < C; ++c)
            dtable[row * C + c] += dout[t * C + c];
      }
      break;
    }
    case Opcode::VocabCrossEntropyFwd: {
      int64_t rows = n[0], V = n[1];
      Group g = static_cast<Group>(n[2]);
      double *st = rowScratch_.data();
      int64_t start = comm_->groupRank(g) * V;
      vocabRowStats(F(p[0]), I(p[1]), rows, V, validColumns(V, start, n[3]),
                    start, *comm_, g, st);
      double loss = 0;
      for (int64_t r = 0; r < rows; ++r)
        loss += std::log(st[rows + r]) + st[r] - st[2 * rows + r];
      *F(p[2]) = static_cast<float>(loss / rows);
      break;
    }
    case Opcode::VocabCrossEntropyBwd: {
      int64_t rows = n[0], V = n[1];
      Group g = static_cast<Group>(n[2]);
      int64_t start = comm_->groupRank(g) * V;
      double *st = rowScratch_.data();
      int64_t valid = validColumns(V, start, n[3]);
      vocabRowStats(F(p[0]), I(p[1]), rows, V, valid, start, *comm_, g, st);
      const float *x = F(p[0]);
      const int32_t *tg = I(p[1]);
      float *dx = F(p[2]);
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < valid; ++j)
          dx[r * V + j] = static_cast<float>(
              std::exp(static_cast<double>(x[r * V + j]) - st[r]) /
              st[rows + r] / rows);
        // Padding: outside the softmax, no gradient.
        std::fill(dx + r * V + valid, dx + (r + 1) * V, 0.0f);
        int64_t t = tg[r] - start;
        if (t >= 0 && t < V)
          dx[r * V + t] -= static_cast<float>(1.0 / rows);
        if (lossScale_ != 1.0)
          for (int64_t j = 0; j < V; ++j)
            dx[r * V + j] *= static_cast<float>(lossScale_);
      }
      break;
    }
    case Opcode::FusedElementwise: {
      // The micro-ops, element by element (the GPU runs the compiler's
      // kernel for the same group).
      cpu::fusedElementwise(fused_[r.fused].pro, p);
      break;
    }
    case Opcode::FusedNorm: {
      // Row by row: the prologue's micro-ops, then the norm of value x by
      // the norm's own kernel on that row (the same bits as the unfused
      // kernels).
      cpu::fusedNorm(fused_[r.fused], p, fl[0]);
      break;
    }
    case Opcode::AdamW: {
      if (overflowed_)
        break; // an overflow: this step updates nothing
      double lr = *F(p[4]);
      int64_t step = *static_cast<const int64_t *>(p[5]);
      double wd = n[1] ? static_cast<double>(*F(p[6])) : 0.0;
      cpu::adamw(F(p[0]), F(p[1]), F(p[2]), F(p[3]), n[0], lr, fl[0], fl[1],
                 fl[2], wd, step, static_cast<double>(*F(p[7])) / lossScale_);
      break;
    }
    }
    // Buckets in flight advance between instructions (MPI progresses only
    // inside its calls).
    if (comm_->pending())
      comm_->progress();
    if (trace) {
      clock::time_point end = clock::now();
      const OpcodeInfo *info = opcodeInfo(in.opcode);
      bool p2p = isPointToPoint(in.opcode);
      trace->push_back(
          {info ? info->name : "?",
           std::chrono::duration<double, std::micro>(begin - origin).count(),
           std::chrono::duration<double, std::micro>(end - begin).count(),
           communicationBytes(in), p2p ? static_cast<int>(n[1]) : 0, -1, 0, 0,
           &in});
    }
  }
  // Nothing crosses a run: the deferred collectives and the sends of this
  // one complete here (their receivers are running the same function).
  complete(deferred.atEnd);
  comm_->waitSends();
  if (trace && phaseOpen) {
    double now = std::chrono::duration<double, std::micro>(clock::now() - origin).count();
    trace->push_back({"phase", phaseBegin, now - phaseBegin, -1, 0, phase.phase,
                      phase.microbatch, phase.chunk});
  }
}

} // namespace llmrt
