//===- CudaExecutor.cpp - the CUDA backend of the executor ----------------===//
//
// The program's arena lives in one cudaMalloc; every instruction is a kernel
// (CudaKernels.cu) or a cuBLAS GEMM (CudaBlas.cpp) queued on one stream, so
// a step is one stream of launches that the host never waits for until the
// outputs are read. The host keeps a copy of the persistent region
// (parameters, optimizer state, inputs, outputs) for the trainer.
//
// Several ranks (one GPU each, the node's ranks in order): collectives and
// the pipeline's sends and receives go through DeviceComm (NCCL, on
// communication streams ordered by events, Nccl.cpp); consecutive started
// collectives (gradient buckets that complete at one instruction) are one
// NCCL group call.
//
// LLMRT_CUDA_GEMM = bf16 (default) | bf16-fast | tf32 | fp32 picks the GEMMs'
// precision (CudaKernels.h)
// (and attention's: bf16 tensor cores with bf16 GEMMs, for head dimensions
// 64 (FlashAttention-2 in registers; LLMRT_CUDA_ATTN=wmma for the WMMA
// kernels) and 128 (WMMA), unless LLMRT_CUDA_ATTN=fp32; the fp32 kernels
// otherwise);
// LLMRT_CUDA_SYNC=1 waits after every instruction, so that an asynchronous
// error names the instruction that caused it.
//
// With 16-bit GEMMs (bf16, fp16) tensors are stored in 16 bits where their
// readers allow (Store16.h): those only GEMMs read, as the GEMMs' own
// operand copies (LLMRT_CUDA_STORE16=0: none), and GEMM outputs that
// elementwise kernels, the loss and the layer norm's backward read
// (LLMRT_CUDA_ACT16=0: none). cuBLASLt times its candidates once per shape
// (LLMRT_CUDA_GEMM_TUNE=0: its first choice; =2: also each with k split;
// =3: 32 candidates instead of 8).
// Residual adds run in the GEMM, layer-norm backward or embedding scatter
// before them, the position embedding's add in the token lookup (one
// rank; LLMRT_CUDA_FUSE_ADD=0: apart); GELUs run in the epilogue of the GEMM before them
// (LLMRT_CUDA_FUSE_GELU=0: apart);
// FlashAttention-2 reads and writes 16-bit tensors (q, k, v, dout, out,
// dk, dv; dq rounded from its fp32 sum) where the other readers allow
// (LLMRT_CUDA_ATTN16=0: fp32), reads q, k, v and writes their gradients as
// column slices in place (the compiler's AttentionLayout; the other
// attention kernels through dense copies). LLMRT_CUDA_ATTN_FWD8=1 and
// LLMRT_CUDA_ATTN_BWD8=1 run its forward and backward in blocks of 8
// warps; LLMRT_CUDA_ATTN_ASYNC=3 (the default; 1, 2; 0 off) its forward
// with cp.async tiles, 3 (4) blocks an SM (3: 32 queries a warp),
// LLMRT_CUDA_ATTN_BWD_ASYNC=1 (the default; 0 off) its backward's query
// tiles;
// LLMRT_CUDA_LOSS_FUSED=1 (the default) does the loss's forward in its
// backward's pass; LLMRT_CUDA_LOSS_ROW=2 (the default; 1, 0 generic) runs
// it there, for 16-bit logits, a row a block in base 2 (one instruction an
// exponential) with the row held in shared memory (read once; 1: read
// twice). LLMRT_CUDA_FUSE_ADD_NORM=1 does
// the forward's residual adds in the layer norms after them;
// LLMRT_CUDA_ADAMW_VEC=1 (the default; 0 an element a thread)
// the batched AdamW by 16-byte vectors;
// LLMRT_CUDA_LN_BWD_ASYNC=1 stages the layer norm backward's rows in shared
// memory by cp.async;
// LLMRT_CUDA_WGRAD_STREAM=1 the weight gradients on a second stream (one
// rank); LLMRT_CUDA_GRAPH=1 (the default; 0 off) launches each step as one
// CUDA graph from the second on (one rank, bf16 GEMMs, no --trace, no
// side stream, no LLMRT_CUDA_SYNC); LLMRT_CUDA_WEIGHT16=1 (the default;
// 0 off) keeps a 16-bit copy of each GEMM weight, which AdamW writes, so
// that no GEMM converts its weight (one rank, 16-bit GEMMs).
// LLMRT_CUDA_ARENA16=1 (the default on one rank; 0 off; several ranks
// only when set) packs the temporaries anew with the 16-bit tensors at half
// their size (ArenaPack.h);
// LLMRT_CUDA_POISON=1 fills the temporaries with NaNs at the start (a
// check of reads before writes).
// LLMRT_CUDA_ATTN_LSE=0 recomputes attention's row statistics in the
// backward instead of taking the forward's; LLMRT_CUDA_ATTN_STAGED=1
// stages the backward's fp32 query tiles by cp.async (no faster on an
// H100).
//
//===----------------------------------------------------------------------===//
#include "DeviceComm.h"

#include "llmrt/Comm.h"
#include "llmrt/CudaGenerated.h"
#include "llmrt/CudaKernels.h"
#include "llmrt/Executor.h"
#include "llmrt/PipeLinks.h"
#include "llmrt/Program.h"
#include "llmrt/ArenaPack.h"
#include "llmrt/Store16.h"

#include "absl/strings/str_cat.h"

#include <nlohmann/json.hpp>

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <string_view>
#include <unordered_map>

namespace llmrt {

namespace {

class CudaExecutor final : public Executor {
public:
  ~CudaExecutor() override;
  void run(int fn, std::vector<TraceEvent> *trace,
           std::chrono::steady_clock::time_point origin) override;
  /// Queues function fn's instructions on the stream (run's body; also
  /// what a CUDA graph's capture records).
  void enqueue(int fn, std::vector<TraceEvent> *trace,
               std::chrono::steady_clock::time_point origin);
  int64_t allocatedBytes() const override {
    return program_.arenaBytes + workspaceBytes_ + cuda::blasDeviceBytes(blas_) +
           cuda::blasDeviceBytes(sideBlas_) +
           (dcomm_ ? dcomm_->stagingBytes() : 0);
  }
  std::string stallReport() override { return dcomm_ ? dcomm_->stalled() : ""; }
  std::string asyncError() override { return dcomm_ ? dcomm_->asyncError() : ""; }
  void abortCommunication() override {
    if (dcomm_)
      dcomm_->abort();
  }
  std::string backend() const override { return "cuda"; }
  std::string deviceName() const override { return device_; }
  bool needsLossScaling() const override { return fp16_; }

  void uploadState() override {
    copy(true, [](BufferRole r) {
      return r == BufferRole::Param || r == BufferRole::AdamM ||
             r == BufferRole::AdamV;
    });
    refreshWeights16();
  }
  void downloadState() override {
    copy(false, [](BufferRole r) {
      return r == BufferRole::Param || r == BufferRole::AdamM ||
             r == BufferRole::AdamV;
    });
  }
  /// The inputs in as few copies as their bytes allow (roleRanges: the
  /// functions' tokens and targets are the same bytes), queued before the
  /// run that reads them and not waited for: the host writes the next
  /// inputs only after downloadOutputs has waited for the run (Executor.h).
  void uploadInputs() override { copyRanges(true, inputRanges_); }
  /// The outputs likewise, waited for; then the overflow check of a CUDA
  /// graph's run, from the gradient norm just copied.
  void downloadOutputs() override {
    copyRanges(false, outputRanges_);
    if (const float *norm = pendingNorm_) {
      pendingNorm_ = nullptr;
      const auto *byte = reinterpret_cast<const uint8_t *>(norm);
      const uint64_t at = byte >= arena_ ? static_cast<uint64_t>(byte - arena_) : ~0ull;
      float value = 0;
      if (at < host_.size() &&
          std::any_of(outputRanges_.begin(), outputRanges_.end(),
                      [&](auto r) { return r.first <= at && at + 4 <= r.second; }))
        std::memcpy(&value, host_.data() + at, 4);
      else if (cudaError_t e = cudaMemcpy(&value, norm, 4, cudaMemcpyDeviceToHost);
               e != cudaSuccess)
        fatal("the step's CUDA graph", cudaGetErrorString(e));
      overflowed_ = !std::isfinite(value);
    }
  }

  friend absl::StatusOr<std::unique_ptr<Executor>>
  llmrt::createCudaExecutor(ProgramDesc, Communicator &, int);

  struct Resolved {
    const Instruction *inst;
    std::vector<void *> ptrs;
    int fused = -1; ///< index into fusedFns_ (fused_elementwise)
    int link = -1;  ///< send, recv, recv_start: the pipeline link
    /// AdamW: the batch this instruction launches (adamwBatches_), or
    /// skip: a later member of a batch launched before it.
    int adamwBatch = -1;
    bool skip = false;
    /// linear_bwd_weight: the next instruction's output, a sum_rows of its
    /// dy (the bias gradient), which the GEMM's epilogue may compute; that
    /// sum_rows then runs only where it did not (sumRowsFused).
    float *biasGrad = nullptr;
    bool sumRowsFused = false;
    /// The operands stored as 16-bit GEMM operands (bit k: ptrs[k];
    /// Store16.h): the writer writes them so, the GEMMs read them so.
    uint32_t half16 = 0;
    /// A loss forward that keeps its rows' statistics for the backward of
    /// the same logits, or that backward (pairLossStats).
    bool lossStats = false;
    /// LLMRT_CUDA_LOSS_FUSED=1: a loss forward its backward does (skipped
    /// here), or that backward, which writes the forward's loss here too.
    bool lossSkip = false;
    float *lossOut = nullptr;
    /// A linear_fwd, layer_norm_bwd or (vocab_)embedding_bwd that adds
    /// this to its output: the residual add after it, fused
    /// (fuseResidualAdds; that add skips).
    const float *addTo = nullptr;
    uint64_t addToBytes = 0;
    /// A layer_norm_fwd that does the residual add before it (its index;
    /// fuseAddNorms), which then skips.
    int addNorm = -1;
    /// A linear_fwd that computes the GELU (forward or backward) at this
    /// index in its epilogue, or that GELU, which runs only where the GEMM
    /// could not (planGeluFusions; the GEMM's geluDone).
    int gelu = -1;
    mutable bool geluDone = false;
    /// An add that does the token embedding's lookup at this index too
    /// (planEmbeddingAdds: that embedding_fwd skips), adding its operand
    /// embedAddend.
    int embedAt = -1;
    uint32_t embedAddend = 0;
  };
  /// A fused_elementwise or fused_norm instruction's generated kernel.
  struct FusedKernel {
    int64_t kernel; ///< index into generated_
    int64_t n;
    int64_t normRows = 0; ///< > 0: a fused_norm over so many rows
  };

  /// Runs of AdamW instructions with the same scalars (lr, step, decay,
  /// gradient scale, betas, eps) become one launch each (up to
  /// cuda::kAdamWBatch tensors), where no deferred collective separates
  /// them.
  void batchAdamW(std::vector<Resolved> &fn, const DeferredCollectives &deferred);
  /// Marks each linear_bwd_weight followed by the sum_rows of its dy (the
  /// bias gradient) where no deferred collective starts or waits between.
  void pairBiasGrads(std::vector<Resolved> &fn, const DeferredCollectives &deferred);
  /// Marks each loss backward whose logits a loss forward of the same
  /// function read last, with nothing touching them between, and that
  /// forward: the forward keeps its rows' max and sum (lossStats_), the
  /// backward reads the logits once instead of twice.
  void pairLossStats(std::vector<Resolved> &fn);
  /// LLMRT_CUDA_FUSE_ADD_NORM=1: residual adds into the layer norm after
  /// them (planAddNorms), where an operand of the add is fp32.
  int fuseAddNorms(std::vector<Resolved> &fn, size_t function);
  bool fuseAddNorm_ = false;
  int fusedAddNorms_ = 0;
  /// Attention's tensors as dense fp32 in attnScratch_, for the kernels
  /// that cannot read column slices: t[k] (k < count; q, k, v, then the
  /// backward's dq, dk, dv) points there, q, k, v copied in.
  void denseCopies(const AttentionLayout &l, int64_t rows, void *const *p, uint32_t h16,
                   int count, float **t, cudaStream_t s) {
    float *at = attnScratch_;
    for (int k = 0; k < count; ++k) {
      if (k < 3)
        cuda::copyColumnsT(cuda::In{p[k], (h16 >> k & 1u) != 0}, l.ld[k], l.off[k],
                           cuda::Out{at, false}, l.width[k], 0, l.width[k], rows, half_, s);
      t[k] = at;
      at += rows * l.width[k];
    }
  }
  /// The bytes operand k of an instruction covers as resolved (a 16-bit
  /// value's side pointer included; a 16-bit value takes the first half of
  /// its buffer), [begin, end): what the pairings and fusions test for
  /// overlap.
  std::pair<uint64_t, uint64_t> operandBytes(const Resolved &r, size_t k) const {
    const auto a = reinterpret_cast<uint64_t>(r.ptrs[k]);
    const uint64_t bytes = program_.buffers[r.inst->operands[k]].bytes;
    return {a, a + (k < 32 && (r.half16 >> k & 1u) ? bytes / 2 : bytes)};
  }
  /// The planners' views of a function: a range function, each
  /// instruction's 16-bit operands, and whether it is left out already.
  struct PlannerView {
    std::function<std::pair<uint64_t, uint64_t>(size_t, size_t)> range;
    std::vector<uint32_t> half16;
    std::vector<char> skip;
  };
  PlannerView plannerView(const std::vector<Resolved> &fn) const;
  /// Each add (no broadcast) of a value that a linear_fwd (the attention
  /// projection, the MLP's second linear), a layer_norm_bwd or an
  /// embedding_bwd wrote and nothing else reads, to another value: that
  /// instruction writes the sum instead (cuBLASLt's C with beta = 1; the
  /// backward kernel adds the residual gradient; the scatter starts from
  /// the tied output layer's gradient, in place: no zeros, no add), where
  /// nothing between touches the addend or the sum's bytes and the sum
  /// overlaps no input but as a whole (in place).
  /// One rank only (no deferred collectives to order). Returns the count.
  int fuseResidualAdds(std::vector<Resolved> &fn, size_t function);
  /// The token embedding's lookup done by the add of its output to the
  /// position embedding (planEmbeddingAdds): one pass over the activations
  /// instead of two. Returns the count.
  int fuseEmbeddingAdds(std::vector<Resolved> &fn, size_t function);
  bool fuseAdds_ = true; ///< LLMRT_CUDA_FUSE_ADD (default 1)
  int fusedAdds_ = 0;
  /// GELUs in the epilogue of the GEMM before them (LLMRT_CUDA_FUSE_GELU=0:
  /// apart; on an H100, GPT-2 124M: 42.6 against 43.9 ms a step).
  void fuseGelus(std::vector<Resolved> &fn, size_t function);
  bool fuseGelu_ = true;
  int fusedGelus_ = 0;
  float *lossStats_ = nullptr; ///< 2 x rows: a loss forward's row statistics
  bool lossFused_ = true;      ///< LLMRT_CUDA_LOSS_FUSED (default 1)
  /// LLMRT_CUDA_LOSS_ROW (default 2; session 9 on an H200: the loss 1.78
  /// -> 1.16 ms, the step 36.9 -> 36.1 ms): the fused loss of 16-bit
  /// logits in the row kernel (softmax in base 2 by the special function
  /// unit), each row held in shared memory (read from memory once); 1:
  /// read twice; 0: the generic kernel.
  int lossRow_ = 2;
  /// LLMRT_CUDA_ADAMW_VEC=1 (the default): the batched AdamW by 16-byte
  /// vectors.
  bool adamwVec_ = true;
  /// LLMRT_CUDA_LN_BWD_ASYNC=1 (session 10, off until measured): the layer
  /// norm's backward with each warp's rows staged in shared memory by
  /// cp.async, 24 rows an SM in flight instead of 8.
  bool lnBwdAsync_ = false;
  bool biasGradDone_ = false; ///< the last GEMM computed its sum_rows

  uint8_t *hostView(const BufferDesc &b) override { return host_.data() + b.offset; }

  /// Copies the buffers whose role satisfies `pick` to the device (or
  /// back), then waits for the stream.
  template <typename Pick> void copy(bool toDevice, Pick pick);
  /// LLMRT_CUDA_WEIGHT16=1 (the default; one rank, 16-bit GEMMs): each
  /// parameter a linear_fwd reads as its weight has a 16-bit copy in the
  /// workspace, which the GEMMs read (stored 16-bit: no conversion a GEMM)
  /// and AdamW writes with the parameter, rounded alike; uploadState
  /// makes them. Buffer id -> the copy.
  std::unordered_map<uint32_t, void *> weight16_;
  void refreshWeights16();
  void *weight16Of(uint32_t buffer) const {
    auto it = weight16_.find(buffer);
    return it == weight16_.end() ? nullptr : it->second;
  }
  /// Copies the arena's byte ranges to the device (not waited for) or
  /// from it (waited for).
  void copyRanges(bool toDevice, const std::vector<std::pair<uint64_t, uint64_t>> &ranges);
  std::vector<std::pair<uint64_t, uint64_t>> inputRanges_, outputRanges_;
  /// A CUDA graph's gradient norm, read once downloadOutputs has waited
  /// for the run (not in a wait of its own).
  const float *pendingNorm_ = nullptr;
  /// Ends the process with a message naming the instruction (a CUDA error
  /// leaves the device's state unknown: nothing can be resumed).
  [[noreturn]] void fatal(const char *where, const std::string &what);
  void checkLaunch(const char *where) {
    if (cudaError_t e = cudaGetLastError(); e != cudaSuccess)
      failed(where, cudaGetErrorString(e));
  }
  /// An instruction that could not be queued: while a CUDA graph is being
  /// captured the capture fails (its first error kept; true: the caller
  /// may stop queueing, what it queues after is discarded with the
  /// capture, and run falls back to the kernels one by one); otherwise the
  /// process ends (fatal).
  bool failed(const char *where, const std::string &what) {
    if (!capturing_)
      fatal(where, what);
    if (captureError_.empty())
      captureError_ = absl::StrCat(where, ": ", what);
    return true;
  }

  /// LLMRT_CUDA_GRAPH=1 (the default; one rank, bf16 GEMMs, no trace, no
  /// side stream):
  /// a function's instructions are captured into a CUDA graph at its
  /// second run (the first times cuBLASLt's candidates, which a capture
  /// cannot) and the graph is launched from then on: one launch a step
  /// instead of one a kernel. The gradient norm is then read after the
  /// step, not in its middle; an overflow skips the update on the device
  /// (clip_scale marks it, AdamW reads the mark), as the host's check
  /// does kernel by kernel.
  struct Graph {
    cudaGraphExec_t exec = nullptr;
    int runs = 0;
    bool failed = false;
    double lossScale = 1.0;  ///< the loss scale its kernels were given
    const float *norm = nullptr; ///< the gradient norm it computes (or none)
  };
  bool graphs_ = false;
  bool graphable_ = false; ///< bf16 GEMMs (cuBLASLt with its own workspace)
  std::vector<Graph> graphOf_;
  bool capturing_ = false;
  std::string captureError_;
  const float *capturedNorm_ = nullptr;
  /// Captures function fn into g.exec; false (with a warning, once) where
  /// the capture fails.
  bool capture(int fn, Graph &g);

  cudaStream_t stream_ = nullptr;
  cuda::Blas *blas_ = nullptr;
  uint8_t *arena_ = nullptr;
  uint8_t *workspace_ = nullptr;
  int64_t workspaceBytes_ = 0;
  float *attnWs_ = nullptr, *rowScratch_ = nullptr;
  /// Dense fp32 copies of attention tensors that are column slices
  /// (AttentionLayout) where the kernel cannot read them in place (WMMA,
  /// fp32), and the fp32 dq FlashAttention-2 adds into before it is
  /// rounded to a 16-bit dq.
  float *attnScratch_ = nullptr;
  double *normAcc_ = nullptr;  ///< 4: by split mask (GlobalNorm)
  double *rowStats_ = nullptr; ///< 3 x rows: vocabulary-parallel loss
  std::unique_ptr<cuda::DeviceComm> dcomm_;
  bool grouped_ = false; ///< an NCCL group of started collectives is open
  std::vector<uint8_t> host_;
  std::string device_;
  bool syncEach_ = false;
  bool attnTensorCores_ = false;
  /// With tensor cores: FlashAttention-2 (AttentionMMA.cu) where it has the
  /// head dimension, else (or LLMRT_CUDA_ATTN=wmma) the WMMA kernels.
  bool attnMMA_ = true;
  /// LLMRT_CUDA_ATTN_STAGED=1: FlashAttention-2's backward with cp.async
  /// staging (fp32 inputs; no faster on an H100, so off by default).
  bool attnStaged_ = false;
  /// FlashAttention-2's forward keeps the log-sum-exp the compiler gives
  /// it a buffer for (llm-compile --keep-attention-lse, the default for
  /// --target cuda), and the backward takes it with the output instead of
  /// recomputing the row statistics; LLMRT_CUDA_ATTN_LSE=0 recomputes them.
  bool attnLse_ = true;
  /// FlashAttention-2 reads and writes 16-bit tensors where the other
  /// readers allow (Store16.h; LLMRT_CUDA_ATTN16=0: fp32).
  bool attn16_ = true;
  /// Whether FlashAttention-2 (mma.sync) runs this attention instruction:
  /// the bf16 attention, head dimension 64, and any column slices'
  /// strides and first columns multiples of 4 (16-byte vectors).
  bool attentionMMA(const Instruction &inst) const {
    return attnTensorCores_ && attnMMA_ && cuda::attentionMMASupport(inst.ints[4]) &&
           flashAttentionRuns(inst);
  }
  /// LLMRT_CUDA_ATTN_FWD8=1: FlashAttention-2's forward in blocks of 8
  /// warps (128 queries a key tile).
  bool attnWide_ = false;
  /// LLMRT_CUDA_ATTN_ASYNC=1 (2, 3; 3 the default, 0 off): its forward
  /// with bf16 q, k, v takes its tiles by cp.async, 3 (4) blocks an SM (3:
  /// 32 queries a warp).
  int attnAsync_ = 3;
  /// LLMRT_CUDA_ATTN_BWD8=1: its backward in blocks of 8 warps (128 keys a
  /// query tile).
  bool attnWideBwd_ = false;
  /// LLMRT_CUDA_ATTN_BWD_ASYNC (default 1): its backward with bf16 q and
  /// dout takes each query tile by cp.async while the one before runs.
  bool attnAsyncBwd_ = true;
  /// LLMRT_CUDA_WGRAD_STREAM=1 (one rank): weight gradients run on a second
  /// stream beside the instructions after them (planSideStream), with
  /// their own cuBLAS handle and operand scratch; per function its plan.
  cudaStream_t side_ = nullptr;
  cuda::Blas *sideBlas_ = nullptr;
  cudaEvent_t mainMark_ = nullptr;
  /// --trace: events around each instruction on its stream, so that its
  /// duration is the GPU's time, without the launch and the host's wait
  /// for it (created at the first traced run; before each begin event the
  /// stream is held 50 us, cuda::holdStream, while the launches are queued).
  cudaEvent_t traceBegin_ = nullptr, traceEnd_ = nullptr;
  std::vector<cudaEvent_t> sideDone_;
  std::vector<SideStreamPlan> sidePlans_;
  /// Per function: whether a run has tuned the side's GEMMs (the first
  /// runs each unit alone, so that neither stream's cuBLASLt candidates
  /// are timed beside the other's kernels).
  std::vector<char> sideSettled_;
  /// The side stream's plan of a function's resolved instructions.
  SideStreamPlan planSide(const std::vector<Resolved> &fn, size_t function) const;
  bool fp16_ = false;
  /// The 16-bit type of GEMM operands (gemmTakes16 modes), in which the
  /// tensors only GEMMs read are stored (LLMRT_CUDA_STORE16=0: in fp32).
  cuda::Half half_ = cuda::Half::Bf16;
  cuda::GeneratedKernels generated_;
  std::vector<FusedKernel> fusedFns_;
  struct AdamWBatch {
    std::vector<cuda::AdamWTensor> tensors;
    void *decay; ///< the decaying members' weight decay (device scalar)
  };
  std::vector<AdamWBatch> adamwBatches_;
  std::vector<std::vector<Resolved>> functions_;
  /// Per function: collectives left running on their streams while later
  /// instructions run (several ranks only).
  std::vector<DeferredCollectives> deferred_;
};

CudaExecutor::~CudaExecutor() {
  // Communication first: a receive in flight writes into the arena.
  dcomm_.reset();
  if (stream_)
    cudaStreamSynchronize(stream_);
  cuda::destroyBlas(blas_);
  if (side_) {
    cudaStreamSynchronize(side_);
    cuda::destroyBlas(sideBlas_);
    for (cudaEvent_t e : sideDone_)
      cudaEventDestroy(e);
    cudaEventDestroy(mainMark_);
    cudaStreamDestroy(side_);
  }
  for (Graph &g : graphOf_)
    if (g.exec)
      cudaGraphExecDestroy(g.exec);
  if (traceBegin_)
    cudaEventDestroy(traceBegin_);
  if (traceEnd_)
    cudaEventDestroy(traceEnd_);
  cudaFree(arena_);
  cudaFree(workspace_);
  if (stream_)
    cudaStreamDestroy(stream_);
}

void CudaExecutor::fatal(const char *where, const std::string &what) {
  std::fprintf(stderr,
               "error: rank %d: CUDA error in '%s' on %s: %s%s\n",
               comm_ ? comm_->rank() : 0, where, device_.c_str(), what.c_str(),
               syncEach_ ? "" : " (errors are reported late; rerun with "
                                "LLMRT_CUDA_SYNC=1 to name the instruction)");
  std::fflush(stderr);
  std::_Exit(1);
}

template <typename Pick> void CudaExecutor::copy(bool toDevice, Pick pick) {
  for (const BufferDesc &b : program_.buffers) {
    if (b.role == BufferRole::Temp || !pick(b.role) || b.bytes == 0)
      continue;
    cudaError_t e =
        toDevice ? cudaMemcpyAsync(arena_ + b.offset, host_.data() + b.offset,
                                   b.bytes, cudaMemcpyHostToDevice, stream_)
                 : cudaMemcpyAsync(host_.data() + b.offset, arena_ + b.offset,
                                   b.bytes, cudaMemcpyDeviceToHost, stream_);
    if (e != cudaSuccess)
      fatal(toDevice ? "upload" : "download", cudaGetErrorString(e));
  }
  if (cudaError_t e = cudaStreamSynchronize(stream_); e != cudaSuccess)
    fatal(toDevice ? "upload" : "download", cudaGetErrorString(e));
}

void CudaExecutor::refreshWeights16() {
  for (auto [b, copy16] : weight16_) {
    const BufferDesc &d = program_.buffers[b];
    (half_ == cuda::Half::Fp16 ? cuda::toFp16 : cuda::toBf16)(
        reinterpret_cast<const float *>(arena_ + d.offset), copy16,
        static_cast<int64_t>(d.bytes / 4), stream_);
  }
  if (weight16_.empty())
    return;
  if (cudaError_t e = cudaStreamSynchronize(stream_); e != cudaSuccess)
    fatal("the weights' 16-bit copies", cudaGetErrorString(e));
}

void CudaExecutor::copyRanges(bool toDevice,
                              const std::vector<std::pair<uint64_t, uint64_t>> &ranges) {
  for (auto [begin, end] : ranges) {
    cudaError_t e = toDevice ? cudaMemcpyAsync(arena_ + begin, host_.data() + begin,
                                               end - begin, cudaMemcpyHostToDevice, stream_)
                             : cudaMemcpyAsync(host_.data() + begin, arena_ + begin,
                                               end - begin, cudaMemcpyDeviceToHost, stream_);
    if (e != cudaSuccess)
      fatal(toDevice ? "upload" : "download", cudaGetErrorString(e));
  }
  if (toDevice)
    return;
  if (cudaError_t e = cudaStreamSynchronize(stream_); e != cudaSuccess)
    fatal("download", cudaGetErrorString(e));
}

} // namespace

namespace {
/// A 0/1 switch from the environment (its value checked at the start of
/// createCudaExecutor), or `unset` where it is not set.
bool switchOn(const char *name, bool unset) {
  const char *v = std::getenv(name);
  return v ? v[0] != '0' : unset;
}
} // namespace

absl::StatusOr<std::unique_ptr<Executor>>
createCudaExecutor(ProgramDesc program, Communicator &comm, int /*threads*/) {
  // The switches take 0 or 1 (the loss's row kernel 0, 1 or 2; the
  // tuning and the cp.async forward 0 to 3):
  // anything else is a mistake to name, not a silent 0.
  static constexpr std::pair<const char *, char> kSwitches[] = {
      {"LLMRT_CUDA_SYNC", '1'},       {"LLMRT_CUDA_ATTN_FWD8", '1'},
      {"LLMRT_CUDA_ATTN_BWD8", '1'},   {"LLMRT_CUDA_ATTN_BWD_ASYNC", '1'},
      {"LLMRT_CUDA_WGRAD_STREAM", '1'}, {"LLMRT_CUDA_FUSE_ADD_NORM", '1'},
      {"LLMRT_CUDA_ATTN_STAGED", '1'}, {"LLMRT_CUDA_ATTN_LSE", '1'},
      {"LLMRT_CUDA_STORE16", '1'},     {"LLMRT_CUDA_ACT16", '1'},
      {"LLMRT_CUDA_ATTN16", '1'},      {"LLMRT_CUDA_FUSE_ADD", '1'},
      {"LLMRT_CUDA_FUSE_GELU", '1'},   {"LLMRT_CUDA_LOSS_FUSED", '1'},
      {"LLMRT_CUDA_GEMM_TUNE", '3'},   {"LLMRT_CUDA_ATTN_ASYNC", '3'},
      {"LLMRT_CUDA_LOSS_ROW", '2'},    {"LLMRT_CUDA_ADAMW_VEC", '1'},
      {"LLMRT_CUDA_GRAPH", '1'},       {"LLMRT_CUDA_WEIGHT16", '1'},
      {"LLMRT_CUDA_LN_BWD_ASYNC", '1'}, {"LLMRT_CUDA_ARENA16", '1'},
      {"LLMRT_CUDA_POISON", '1'}};
  for (auto [name, max] : kSwitches)
    if (const char *v = std::getenv(name);
        v && !(v[0] >= '0' && v[0] <= max && v[1] == '\0'))
      return absl::InvalidArgumentError(absl::StrCat(
          name, "='", v, "' is not ", max == '1' ? "0 or 1" : max == '2' ? "0, 1 or 2" : "0 to 3"));
  // Switches that were renamed or retired: an error that says so, not a
  // setting silently ignored (but =0 of a retired kernel's switch: off is
  // what remains).
  static constexpr std::pair<const char *, const char *> kRetired[] = {
      {"LLMRT_CUDA_LOSS_SMEM", "its successor is LLMRT_CUDA_LOSS_ROW=2 (the row in shared memory)"},
      {"LLMRT_CUDA_LN_BWD_LEAN", "the layer-norm backward has one kernel (a warp a row)"},
      {"LLMRT_CUDA_LN_BWD", "the layer-norm backward has one kernel (a warp a row; the "
                            "vector kernel was no faster on an H200)"}};
  if (std::getenv("LLMRT_ARENA_REPACK"))
    return absl::InvalidArgumentError(
        "LLMRT_ARENA_REPACK is the CPU runtime's check of packed arenas; the CUDA runtime "
        "packs its arena by LLMRT_CUDA_ARENA16 (and checks each layout itself)");
  for (auto [old, why] : kRetired)
    if (const char *v = std::getenv(old);
        v && !(std::string_view(v) == "0" && std::string_view(old) != "LLMRT_CUDA_LOSS_SMEM"))
      return absl::InvalidArgumentError(absl::StrCat(old, " is no longer a switch: ", why));
  int count = 0;
  if (cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess || count == 0)
    return absl::FailedPreconditionError(absl::StrCat(
        "no CUDA device is visible (",
        e != cudaSuccess ? cudaGetErrorString(e) : "0 devices",
        "); this executable was compiled with --target cuda"));
  const bool multi = comm.worldSize() > 1;
  if (multi) {
    // One rank drives one GPU: the node's ranks take its GPUs in order. A
    // rank that sees one GPU (the launcher gave each its own) takes it.
    if (count > 1 && comm.localSize() > count)
      return absl::UnavailableError(absl::StrCat(
          "rank ", comm.rank(), ": ", comm.localSize(),
          " ranks run on this node but only ", count,
          " CUDA devices are visible: one rank drives one GPU"));
    if (cudaError_t e = cudaSetDevice(comm.localRank() % count); e != cudaSuccess)
      return absl::UnavailableError(absl::StrCat(
          "rank ", comm.rank(), ": cudaSetDevice(", comm.localRank() % count,
          "): ", cudaGetErrorString(e)));
  }
  std::unique_ptr<CudaExecutor> ex(new CudaExecutor());
  ex->comm_ = &comm;
  ex->program_ = std::move(program);
  const ProgramDesc &p = ex->program_;
  const int stages = comm.groupSize(Group::PP), stage = comm.groupRank(Group::PP);
  if (absl::Status s = checkPipelinePeers(p, stage, stages); !s.ok())
    return s;
  // Each send and receive takes the link of its kind and direction; a link's
  // staging holds its largest message, in as many slots as messages one run
  // keeps in flight (at most the sends of a run; 2 x stages x chunks + 2
  // bounds the micro-batches a schedule has in flight on a stage).
  std::vector<int64_t> linkMax(pipelineLinks(stages).size(), 0);
  std::vector<int> linkSends(linkMax.size(), 0);
  int64_t chunks = 1;
  for (const FunctionDesc &f : p.functions) {
    std::vector<int> sends(linkMax.size(), 0);
    for (size_t i = 0; i < f.instructions.size(); ++i) {
      const Instruction &inst = f.instructions[i];
      auto op = static_cast<Opcode>(inst.opcode);
      if (op != Opcode::Send && op != Opcode::Recv && op != Opcode::RecvStart)
        continue;
      absl::StatusOr<int> link = linkOf(inst, stage, stages, f.name, i);
      if (!link.ok())
        return link.status();
      chunks = std::max<int64_t>(chunks, inst.ints[2] / 2 + 1);
      if (op == Opcode::Send) {
        linkMax[*link] = std::max(linkMax[*link], inst.ints[0]);
        linkSends[*link] = std::max(linkSends[*link], ++sends[*link]);
      }
    }
  }

  // The GEMMs: LLMRT_CUDA_GEMM, else the model's precision (an fp16 model
  // computes in fp16, with dynamic loss scaling), else bf16.
  cuda::GemmMode mode = cuda::GemmMode::Bf16;
  {
    nlohmann::json meta = nlohmann::json::parse(p.metadata, nullptr, false);
    if (meta.is_object() && meta.contains("compute_precision") &&
        meta["compute_precision"].is_string() &&
        meta["compute_precision"].get<std::string>() == "fp16")
      mode = cuda::GemmMode::Fp16;
  }
  if (const char *g = std::getenv("LLMRT_CUDA_GEMM"))
    if (!cuda::parseGemmMode(g, mode))
      return absl::InvalidArgumentError(absl::StrCat(
          "LLMRT_CUDA_GEMM='", g, "' is not one of bf16, bf16-fast, tf32, fp32, fp16"));
  ex->syncEach_ = switchOn("LLMRT_CUDA_SYNC", false);
  ex->attnTensorCores_ =
      mode == cuda::GemmMode::Bf16 || mode == cuda::GemmMode::Bf16Fast;
  if (const char *a = std::getenv("LLMRT_CUDA_ATTN")) {
    std::string kind = a;
    if (kind != "fp32" && kind != "bf16" && kind != "wmma")
      return absl::InvalidArgumentError(absl::StrCat(
          "LLMRT_CUDA_ATTN='", a, "' is not one of bf16, wmma, fp32"));
    ex->attnTensorCores_ = kind != "fp32";
    ex->attnMMA_ = kind == "bf16";
  }
  ex->attnWide_ = switchOn("LLMRT_CUDA_ATTN_FWD8", false);
  // The cp.async forward at 32 queries a warp (attnAsync_'s default) and
  // the backward's cp.async query tiles are the default (H100, session 8:
  // 39.6 and 39.9 ms against 41.1 each alone; run.sh's variants).
  if (const char *a = std::getenv("LLMRT_CUDA_ATTN_ASYNC"))
    ex->attnAsync_ = a[0] - '0'; // 0 to 3: checked above
  ex->attnWideBwd_ = switchOn("LLMRT_CUDA_ATTN_BWD8", false);
  ex->attnAsyncBwd_ = switchOn("LLMRT_CUDA_ATTN_BWD_ASYNC", true);
  ex->attnStaged_ = switchOn("LLMRT_CUDA_ATTN_STAGED", false);
  ex->attnLse_ = switchOn("LLMRT_CUDA_ATTN_LSE", true);

  int dev = 0;
  cudaGetDevice(&dev);
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, dev) == cudaSuccess)
    ex->device_ = absl::StrCat("cuda:", dev, " (", prop.name, ", gemm ",
                               cuda::gemmModeName(mode), ", attention ",
                               !ex->attnTensorCores_ ? "fp32"
                               : ex->attnMMA_        ? "bf16"
                                                     : "bf16 wmma",
                               ")");
  else
    ex->device_ = absl::StrCat("cuda:", dev);

  uint64_t persistentEnd = 0;
  for (const BufferDesc &b : p.buffers) {
    if (b.elem != ElemType::F32 && b.elem != ElemType::I32 &&
        b.elem != ElemType::I64)
      return absl::UnimplementedError(absl::StrCat(
          "buffer '", b.name, "': the CUDA runtime stores f32, i32 and i64"));
    if (b.role != BufferRole::Temp)
      persistentEnd = std::max(persistentEnd, b.offset + b.bytes);
  }

  // Workspace: attention statistics, per-row losses, the norm accumulator.
  for (const FunctionDesc &f : p.functions)
    for (const Instruction &inst : f.instructions) {
      auto op = static_cast<Opcode>(inst.opcode);
      if (op == Opcode::AttentionFwd || op == Opcode::AttentionBwd) {
        if (!cuda::attentionSupportsHeadDim(inst.ints[4]))
          return absl::UnimplementedError(absl::StrCat(
              "function '", f.name, "': ", opcodeInfo(inst.opcode)->name,
              " has head dimension ", inst.ints[4],
              "; the CUDA kernels support 16, 32, 64 and 128"));
        if (inst.ints[3] <= 0 || inst.ints[2] % inst.ints[3] != 0)
          return absl::InvalidArgumentError(absl::StrCat(
              "function '", f.name, "': attention with ", inst.ints[2],
              " query heads and ", inst.ints[3], " kv heads"));
      }
    }
  auto align = [](int64_t n) { return (n + 255) / 256 * 256; };
  // (Sized by Store16.h's deviceWorkspace, as llmrt-memory sizes it.)
  const DeviceWorkspace fixed = deviceWorkspace(p, multi);
  ex->workspaceBytes_ = fixed.fixedBytes();

  if (cudaError_t e = cudaStreamCreateWithFlags(&ex->stream_, cudaStreamNonBlocking);
      e != cudaSuccess)
    return absl::InternalError(absl::StrCat("cudaStreamCreate: ", cudaGetErrorString(e)));
  std::string err;
  ex->fp16_ = mode == cuda::GemmMode::Fp16;
  ex->half_ = ex->fp16_ ? cuda::Half::Fp16 : cuda::Half::Bf16;
  // Tensors that only GEMMs read, stored as their 16-bit operands (the
  // GEMMs' modes that convert to 16 bits; LLMRT_CUDA_STORE16=0: never);
  // and 16-bit activations: GEMM outputs too, where every reader takes
  // them (LLMRT_CUDA_ACT16=0: not).
  const bool store16 = cuda::gemmTakes16(mode) && switchOn("LLMRT_CUDA_STORE16", true);
  const bool act16 = store16 && switchOn("LLMRT_CUDA_ACT16", true);
  // Attention's q, k, v, dout, out, dq, dk, dv too, where
  // FlashAttention-2 runs (with 16-bit activations; LLMRT_CUDA_ATTN16=0:
  // not; on since an H100 measured it, 0.2 ms a GPT-2 step).
  // (bf16 only: an fp16 model's 16-bit tensors are fp16, which the
  // kernel's bf16 tiles are not.)
  ex->attn16_ = act16 && switchOn("LLMRT_CUDA_ATTN16", true) && ex->attnTensorCores_ &&
                ex->attnMMA_ && ex->half_ == cuda::Half::Bf16;
  Store16Plan plan16;
  if (store16)
    plan16 = planDeviceStore16(p, comm, act16, [&](const Instruction &inst) {
      auto op = static_cast<Opcode>(inst.opcode);
      return ex->attn16_ && (op == Opcode::AttentionFwd || op == Opcode::AttentionBwd) &&
             ex->attentionMMA(inst);
    });
  // The 16-bit GEMMs' scratch (only the operands they convert).
  const int64_t gemmElems = gemmScratchElems(p, plan16);
  ex->blas_ = cuda::createBlas(ex->stream_, mode, gemmElems, &err);
  if (!ex->blas_)
    return absl::ResourceExhaustedError(absl::StrCat(err, " on ", ex->device_));

  // The temporaries packed anew with the bytes 16-bit storage leaves them
  // (ArenaPack.h; LLMRT_CUDA_ARENA16=0: the compiler's layout,
  // which sizes every tensor in fp32): a buffer whose every value lives
  // 16-bit in its own bytes takes the first half of them. The plan above
  // holds in the new layout: operands of one instruction are live
  // together, so they overlap there only as the compiler laid them out.
  const uint64_t compiledArena = p.arenaBytes;
  const bool wgradStream = !multi && switchOn("LLMRT_CUDA_WGRAD_STREAM", false);
  // (Default on for one rank; several ranks only with LLMRT_CUDA_ARENA16=1,
  // until a run on several GPUs has checked it: NCCL has not run on GPUs
  // yet.)
  if (plan16.count > 0 && switchOn("LLMRT_CUDA_ARENA16", !multi)) {
    // (The side stream's weight gradients keep their operands to the next
    // one, as the compiler left them. Several ranks: views move with what
    // they view, and the collectives left running keep their operands to
    // their waits as deferFunction places them below over the compiler's
    // layout; the waits it places over the new one follow its bytes, so
    // they are safe either way.)
    ArenaLayout layout = packDeviceArena(p, comm, plan16, wgradStream);
    // The new layout, run offline against the program (milliseconds):
    // where a read would see other writes than in the compiler's layout,
    // that layout stays (a packing bug costs memory, never results).
    if (layout.unused.empty())
      if (std::string why = verifyLayout(p, comm, plan16, layout); !why.empty()) {
        std::fprintf(stderr,
                     "warning: rank %d: LLMRT_CUDA_ARENA16: the packed arena fails its check "
                     "(%s): the compiler's layout stays\n",
                     comm.rank(), why.c_str());
        layout.unused = "its check failed";
      }
    if (layout.unused.empty()) {
      ex->program_ = withLayout(p, layout); // `p` names it
      ex->device_ += absl::StrCat(", arena ", layout.arenaBytes >> 20,
                                  " MiB packed with 16-bit sizes (compiled ",
                                  compiledArena >> 20, " MiB; ", layout.shrunk, " halved)");
    } else {
      ex->device_ += absl::StrCat(", arena as compiled (", layout.unused, ")");
    }
  }
  const int64_t sideAt = ex->workspaceBytes_;
  ex->workspaceBytes_ += align(static_cast<int64_t>(plan16.sideBytes));
  // Attention's scratch: dense copies of column slices for the kernels
  // that cannot read them in place (q, k, v, and backward dq, dk, dv), the
  // fp32 dq under a 16-bit one.
  const int64_t attnScratch = attentionScratchBytes(
      p, plan16, [&](const Instruction &inst) { return ex->attentionMMA(inst); });
  const int64_t scratchAt = ex->workspaceBytes_;
  ex->workspaceBytes_ += align(attnScratch);
  // The weights' 16-bit copies (LLMRT_CUDA_WEIGHT16): the fp32 parameters
  // linear_fwd reads as its weight (operand 1), in any function.
  std::vector<std::pair<uint32_t, int64_t>> weight16At;
  const int64_t weight16From = ex->workspaceBytes_; // the copies: last in the workspace
  if (switchOn("LLMRT_CUDA_WEIGHT16", true) && !multi && cuda::gemmTakes16(mode)) {
    for (uint32_t b : gemmWeights(p)) {
      weight16At.push_back({b, ex->workspaceBytes_});
      ex->workspaceBytes_ += align(static_cast<int64_t>(p.buffers[b].bytes / 2));
    }
  }
  if (plan16.count > 0)
    ex->device_ += absl::StrCat(", ", plan16.count, " tensors stored 16-bit (",
                                plan16.fp32Bytes >> 20, " MiB in fp32",
                                act16 ? ", activations" : ", GEMM operands only", ")");
  size_t arenaBytes = std::max<uint64_t>(p.arenaBytes, kArenaAlignment);
  for (auto [ptr, bytes, what] :
       {std::tuple<uint8_t **, size_t, const char *>{&ex->arena_, arenaBytes, "arena"},
        {&ex->workspace_, static_cast<size_t>(ex->workspaceBytes_), "workspace"}}) {
    cudaError_t e = cudaMalloc(reinterpret_cast<void **>(ptr), bytes);
    if (e != cudaSuccess && ptr == &ex->workspace_ && !weight16At.empty()) {
      // No room for the weights' 16-bit copies: the GEMMs convert their
      // weights instead (as with LLMRT_CUDA_WEIGHT16=0).
      cudaGetLastError();
      std::fprintf(stderr,
                   "warning: rank %d: LLMRT_CUDA_WEIGHT16: no room for the GEMM weights' "
                   "16-bit copies (%lld MiB): each GEMM converts its weight\n",
                   comm.rank(),
                   static_cast<long long>((ex->workspaceBytes_ - weight16From) >> 20));
      weight16At.clear();
      ex->workspaceBytes_ = weight16From;
      bytes = static_cast<size_t>(weight16From);
      e = cudaMalloc(reinterpret_cast<void **>(ptr), bytes);
    }
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t freeB = 0, totalB = 0;
      cudaMemGetInfo(&freeB, &totalB);
      return absl::ResourceExhaustedError(absl::StrCat(
          "cannot allocate the ", bytes, "-byte ", what, " on ", ex->device_,
          " (", freeB >> 20, " MiB free of ", totalB >> 20, " MiB)"));
    }
    cudaMemsetAsync(*ptr, 0, bytes, ex->stream_);
  }
  // LLMRT_CUDA_POISON=1: the temporaries' bytes start as NaNs (0xff), so
  // that a kernel reading one before anything wrote it shows (run.sh's
  // parity runs; a check, off by default).
  if (switchOn("LLMRT_CUDA_POISON", false) && p.arenaBytes > persistentEnd)
    cudaMemsetAsync(ex->arena_ + persistentEnd, 0xff, p.arenaBytes - persistentEnd, ex->stream_);
  ex->attnWs_ = reinterpret_cast<float *>(ex->workspace_);
  ex->attnScratch_ = reinterpret_cast<float *>(ex->workspace_ + scratchAt);
  ex->rowScratch_ = reinterpret_cast<float *>(ex->workspace_ + fixed.attention);
  ex->normAcc_ = reinterpret_cast<double *>(ex->workspace_ + fixed.attention + fixed.rows);
  ex->rowStats_ = reinterpret_cast<double *>(ex->workspace_ + fixed.attention + fixed.rows + 256);
  ex->lossStats_ = reinterpret_cast<float *>(ex->workspace_ + fixed.attention + fixed.rows + 256 +
                                             fixed.stats);
  for (auto [b, at] : weight16At)
    ex->weight16_[b] = ex->workspace_ + at;
  ex->host_.assign(persistentEnd, 0);
  ex->inputRanges_ = roleRanges(p, BufferRole::Input);
  ex->outputRanges_ = roleRanges(p, BufferRole::Output);
  if (multi) {
    absl::StatusOr<std::unique_ptr<cuda::DeviceComm>> dc = cuda::createDeviceComm(comm);
    if (!dc.ok())
      return dc.status();
    ex->dcomm_ = std::move(*dc);
    for (size_t l = 0; l < linkMax.size(); ++l)
      if (linkSends[l] > 0)
        if (absl::Status s = ex->dcomm_->reserveLink(
                static_cast<int>(l), linkMax[l],
                std::min<int64_t>(linkSends[l], 2 * stages * chunks + 2));
            !s.ok())
          return s;
    ex->device_ += absl::StrCat(", NCCL over ", comm.worldSize(), " ranks");
  }

  // Default on (H100, session 8: 40.1 against 41.1 ms alone).
  ex->fuseAdds_ = switchOn("LLMRT_CUDA_FUSE_ADD", true);
  ex->fuseAddNorm_ = switchOn("LLMRT_CUDA_FUSE_ADD_NORM", false);
  ex->fuseGelu_ = switchOn("LLMRT_CUDA_FUSE_GELU", true);
  ex->lossFused_ = switchOn("LLMRT_CUDA_LOSS_FUSED", true); // 40.7 against 41.1
  if (const char *a = std::getenv("LLMRT_CUDA_LOSS_ROW"))
    ex->lossRow_ = a[0] - '0'; // 0 to 2: checked above
  // Default on (H200, session 10: AdamW 0.90 against 1.13 ms a step in
  // the traces; 34.9 against 35.3 ms a step, 12 steps each).
  ex->adamwVec_ = switchOn("LLMRT_CUDA_ADAMW_VEC", true);
  ex->lnBwdAsync_ = switchOn("LLMRT_CUDA_LN_BWD_ASYNC", false);
  // Default on (H200, session 10: 35.4 against 35.6 ms, 12 steps each).
  ex->graphs_ = switchOn("LLMRT_CUDA_GRAPH", true);
  ex->graphable_ = mode == cuda::GemmMode::Bf16 || mode == cuda::GemmMode::Bf16Fast;
  if (ex->graphs_ && !ex->graphable_ && std::getenv("LLMRT_CUDA_GRAPH"))
    std::fprintf(stderr, "warning: rank %d: LLMRT_CUDA_GRAPH: GEMMs in %s: the steps run "
                         "kernel by kernel (graphs take bf16 GEMMs)\n",
                 comm.rank(), cuda::gemmModeName(mode));
  if (wgradStream) {
    // The lowest priority: the main stream's kernels go first where both
    // wait for SMs.
    int least = 0, greatest = 0;
    cudaDeviceGetStreamPriorityRange(&least, &greatest);
    if (cudaError_t e =
            cudaStreamCreateWithPriority(&ex->side_, cudaStreamNonBlocking, least);
        e != cudaSuccess)
      return absl::InternalError(absl::StrCat("cudaStreamCreate: ", cudaGetErrorString(e)));
    ex->sideBlas_ = cuda::createBlas(ex->side_, mode, gemmElems, &err);
    if (!ex->sideBlas_)
      return absl::ResourceExhaustedError(absl::StrCat(err, " on ", ex->device_));
    if (cudaEventCreateWithFlags(&ex->mainMark_, cudaEventDisableTiming) != cudaSuccess)
      return absl::InternalError("cudaEventCreate failed for the side stream");
  }

  // The compiler's kernels: one PTX module, JIT-compiled by the driver.
  if (!p.gpuPtx.empty()) {
    bool noDriver = false;
    if (std::string e = ex->generated_.load(p.gpuPtx, p.gpuEntries, &noDriver); !e.empty())
      return noDriver ? absl::FailedPreconditionError(e) : absl::InternalError(e);
    ex->device_ += absl::StrCat(", ", p.gpuEntries.size(), " generated kernel",
                                p.gpuEntries.size() == 1 ? "" : "s");
  }

  for (const FunctionDesc &f : p.functions) {
    std::vector<CudaExecutor::Resolved> resolved;
    for (const Instruction &inst : f.instructions) {
      CudaExecutor::Resolved r{&inst, {}};
      if (isFusedGroup(inst.opcode)) {
        const bool norm = inst.opcode == static_cast<uint16_t>(Opcode::FusedNorm);
        FusedNormProgram fn;
        const FusedProgram &fp = fn.pro;
        std::string why = decodeFusedGroup(inst.opcode, inst.ints, inst.operands.size(), fn);
        if (why.empty() &&
            (fp.kernel < 0 || fp.kernel >= static_cast<int64_t>(ex->generated_.size())))
          why = "no generated GPU kernel (compile the program with --target cuda)";
        if (!why.empty())
          return absl::InvalidArgumentError(absl::StrCat(
              norm ? "fused_norm" : "fused_elementwise", " in '", f.name, "': ", why));
        r.fused = static_cast<int>(ex->fusedFns_.size());
        ex->fusedFns_.push_back({fp.kernel, fp.n, norm ? fn.rows : 0});
      }
      auto op = static_cast<Opcode>(inst.opcode);
      if (op == Opcode::Send || op == Opcode::Recv || op == Opcode::RecvStart)
        r.link = *linkOf(inst, stage, stages, f.name, resolved.size());
      if (absl::Status s = CudaExecutor::resolveOperands(p, inst, ex->arena_, comm, r.ptrs);
          !s.ok())
        return s;
      if (!plan16.slots.empty()) {
        const auto fi = static_cast<uint32_t>(ex->functions_.size()),
                   ii = static_cast<uint32_t>(resolved.size());
        r.half16 = plan16.slots[fi][ii];
        for (uint32_t k = 0; k < r.ptrs.size(); ++k)
          if (auto it = plan16.side.find({fi, ii, k}); it != plan16.side.end())
            r.ptrs[k] = ex->workspace_ + sideAt + it->second;
      }
      resolved.push_back(std::move(r));
    }
    std::vector<const std::vector<void *> *> ptrs;
    for (const CudaExecutor::Resolved &r : resolved)
      ptrs.push_back(&r.ptrs);
    ex->deferred_.push_back(multi ? Executor::deferFunction(p, f, ptrs, /*fence=*/false)
                                  : DeferredCollectives{});
    ex->batchAdamW(resolved, ex->deferred_.back());
    ex->pairBiasGrads(resolved, ex->deferred_.back());
    ex->pairLossStats(resolved);
    if (ex->fuseAddNorm_ && !multi)
      ex->fusedAddNorms_ += ex->fuseAddNorms(resolved, ex->functions_.size());
    if (ex->fuseAdds_ && !multi)
      ex->fusedAdds_ += ex->fuseResidualAdds(resolved, ex->functions_.size()) +
                        ex->fuseEmbeddingAdds(resolved, ex->functions_.size());
    if (ex->fuseGelu_ && !multi && cuda::gemmTakes16(mode))
      ex->fuseGelus(resolved, ex->functions_.size());
    ex->sidePlans_.push_back(ex->side_ ? ex->planSide(resolved, ex->functions_.size())
                                       : SideStreamPlan{});
    // The GEMMs read the weights' 16-bit copies (after the planners, which
    // reason about the arena's bytes).
    for (CudaExecutor::Resolved &r : resolved)
      if (r.inst->opcode == static_cast<uint16_t>(Opcode::LinearFwd))
        if (auto it = ex->weight16_.find(r.inst->operands[1]); it != ex->weight16_.end()) {
          r.ptrs[1] = it->second;
          r.half16 |= 2u;
        }
    while (static_cast<int>(ex->sideDone_.size()) < ex->sidePlans_.back().units) {
      cudaEvent_t e;
      if (cudaEventCreateWithFlags(&e, cudaEventDisableTiming) != cudaSuccess)
        return absl::InternalError("cudaEventCreate failed for the side stream");
      ex->sideDone_.push_back(e);
    }
    ex->functions_.push_back(std::move(resolved));
  }
  if (ex->fusedAdds_ > 0)
    ex->device_ += absl::StrCat(", ", ex->fusedAdds_, " adds fused");
  if (!ex->weight16_.empty()) {
    int64_t bytes = 0;
    for (auto [b, copy16] : ex->weight16_)
      bytes += static_cast<int64_t>(p.buffers[b].bytes / 2);
    ex->device_ += absl::StrCat(", ", ex->weight16_.size(), " GEMM weights kept 16-bit (",
                                bytes >> 20, " MiB)");
  }
  if (ex->fusedAddNorms_ > 0)
    ex->device_ += absl::StrCat(", ", ex->fusedAddNorms_, " adds in layer norms");
  if (ex->fusedGelus_ > 0)
    ex->device_ += absl::StrCat(", ", ex->fusedGelus_, " GELUs in GEMM epilogues");
  if (cudaError_t e = cudaStreamSynchronize(ex->stream_); e != cudaSuccess)
    return absl::InternalError(absl::StrCat("CUDA: ", cudaGetErrorString(e)));
  return std::unique_ptr<Executor>(std::move(ex));
}

namespace {
/// The slot of a blocking receive (the program's slots are below 4096).
constexpr int kRecvSlot = 65535;
float *F(void *p) { return static_cast<float *>(p); }
const int32_t *I(void *p) { return static_cast<const int32_t *>(p); }
} // namespace

void CudaExecutor::batchAdamW(std::vector<Resolved> &fn,
                              const DeferredCollectives &deferred) {
  auto isAdamW = [&](size_t i) {
    return fn[i].inst->opcode == static_cast<uint16_t>(Opcode::AdamW);
  };
  auto free = [&](size_t i) { // no deferred collective starts or waits here
    return (deferred.slotOf.empty() || deferred.slotOf[i] < 0) &&
           (deferred.waitBefore.empty() || deferred.waitBefore[i].empty());
  };
  // The same scalars; decaying members the same weight decay.
  void *decay = nullptr;
  auto sameScalars = [&](size_t a, size_t b) {
    const Instruction &x = *fn[a].inst, &y = *fn[b].inst;
    const std::vector<void *> &px = fn[a].ptrs, &py = fn[b].ptrs;
    if (y.ints[1] && decay && py[6] != decay)
      return false;
    return x.floats == y.floats && px[4] == py[4] && px[5] == py[5] &&
           px[7] == py[7];
  };
  for (size_t i = 0; i < fn.size();) {
    if (!isAdamW(i)) {
      ++i;
      continue;
    }
    decay = fn[i].inst->ints[1] ? fn[i].ptrs[6] : nullptr;
    size_t j = i + 1;
    while (j < fn.size() && j - i < static_cast<size_t>(cuda::kAdamWBatch) &&
           isAdamW(j) && free(j) && sameScalars(i, j)) {
      if (fn[j].inst->ints[1])
        decay = fn[j].ptrs[6];
      ++j;
    }
    if (j - i > 1) {
      std::vector<cuda::AdamWTensor> batch;
      for (size_t k = i; k < j; ++k) {
        const std::vector<void *> &q = fn[k].ptrs;
        batch.push_back({static_cast<float *>(q[0]), static_cast<const float *>(q[1]),
                         static_cast<float *>(q[2]), static_cast<float *>(q[3]),
                         fn[k].inst->ints[0], fn[k].inst->ints[1] != 0,
                         weight16Of(fn[k].inst->operands[0])});
        fn[k].skip = k > i;
      }
      fn[i].adamwBatch = static_cast<int>(adamwBatches_.size());
      adamwBatches_.push_back({std::move(batch), decay});
    }
    i = j;
  }
}

void CudaExecutor::pairBiasGrads(std::vector<Resolved> &fn,
                                 const DeferredCollectives &deferred) {
  for (size_t i = 0; i + 1 < fn.size(); ++i) {
    const Instruction &w = *fn[i].inst, &sr = *fn[i + 1].inst;
    if (w.opcode != static_cast<uint16_t>(Opcode::LinearBwdWeight) ||
        sr.opcode != static_cast<uint16_t>(Opcode::SumRows))
      continue;
    const bool free = (deferred.slotOf.empty() || deferred.slotOf[i + 1] < 0) &&
                      (deferred.waitBefore.empty() || deferred.waitBefore[i + 1].empty());
    // The epilogue writes db while the GEMM reads its operands, which may
    // be stored 16-bit in their own buffers (no copy between): db's bytes
    // (the packer may give it those of x, whose last read this is) must
    // be apart from them.
    bool apart = true;
    const auto [b0, b1] = operandBytes(fn[i + 1], 1);
    for (size_t k = 0; k < fn[i].ptrs.size(); ++k) {
      const auto [a0, a1] = operandBytes(fn[i], k);
      apart = apart && (a1 <= b0 || b1 <= a0);
    }
    // sum_rows(dy [rows, out]) with linear_bwd_weight(x, dy) ints
    // [rows, in, out, transW].
    if (free && apart && fn[i + 1].ptrs[0] == fn[i].ptrs[1] && sr.ints[0] == w.ints[0] &&
        sr.ints[1] == w.ints[2]) {
      fn[i].biasGrad = static_cast<float *>(fn[i + 1].ptrs[1]);
      fn[i + 1].sumRowsFused = true;
    }
  }
}

void CudaExecutor::pairLossStats(std::vector<Resolved> &fn) {
  auto kind = [&](size_t i) { // 1 forward, 2 backward, of a one-kernel loss
    auto op = static_cast<Opcode>(fn[i].inst->opcode);
    const Instruction &in = *fn[i].inst;
    const bool whole =
        (op != Opcode::VocabCrossEntropyFwd && op != Opcode::VocabCrossEntropyBwd) ||
        !dcomm_ || comm_->groupSize(static_cast<Group>(in.ints[2])) == 1;
    if (!whole)
      return 0;
    if (op == Opcode::CrossEntropyFwd || op == Opcode::VocabCrossEntropyFwd)
      return 1;
    if (op == Opcode::CrossEntropyBwd || op == Opcode::VocabCrossEntropyBwd)
      return 2;
    return 0;
  };
  for (size_t j = 0; j < fn.size(); ++j) {
    if (kind(j) != 2)
      continue;
    const uint32_t logits = fn[j].inst->operands[0];
    for (size_t i = j; i-- > 0;) {
      const Instruction &in = *fn[i].inst;
      if (kind(i) == 1) {
        // The same logits (buffer, shape, storage) and targets.
        if (in.opcode + 1 == fn[j].inst->opcode && in.operands[0] == logits &&
            in.operands[1] == fn[j].inst->operands[1] && in.ints == fn[j].inst->ints &&
            fn[i].ptrs[0] == fn[j].ptrs[0] &&
            (fn[i].half16 & 1u) == (fn[j].half16 & 1u)) {
          fn[i].lossStats = fn[j].lossStats = true;
          // Both in one kernel where nothing between reads or writes the
          // loss's bytes, and they are apart from the backward's operands.
          const auto [l0, l1] = operandBytes(fn[i], 2);
          auto touches = [&](size_t k) {
            for (size_t q = 0; q < fn[k].ptrs.size(); ++q) {
              const auto [a0, a1] = operandBytes(fn[k], q);
              if (a0 < l1 && l0 < a1)
                return true;
            }
            return false;
          };
          bool apart = !dcomm_ && !touches(j);
          for (size_t k = i + 1; k < j && apart; ++k)
            apart = !touches(k);
          if (lossFused_ && apart) {
            fn[i].lossSkip = true;
            fn[j].lossOut = static_cast<float *>(fn[i].ptrs[2]);
          }
        }
        break; // another forward's statistics: no pair
      }
      if (std::find(in.operands.begin(), in.operands.end(), logits) != in.operands.end())
        break; // the logits may have changed
    }
  }
}

CudaExecutor::PlannerView CudaExecutor::plannerView(const std::vector<Resolved> &fn) const {
  PlannerView v;
  v.range = [this, &fn](size_t i, size_t k) { return operandBytes(fn[i], k); };
  for (const Resolved &r : fn) {
    v.half16.push_back(r.half16);
    // Left out, or already fused into (an add's writer).
    v.skip.push_back(r.skip || r.addTo != nullptr);
  }
  return v;
}

int CudaExecutor::fuseResidualAdds(std::vector<Resolved> &fn, size_t function) {
  const PlannerView view = plannerView(fn);
  const std::vector<AddFusion> plan =
      planResidualAdds(program_, function, view.range, view.half16, view.skip);
  for (const AddFusion &f : plan) {
    Resolved &w = fn[f.writer], &add = fn[f.add];
    w.addTo = static_cast<const float *>(add.ptrs[f.addend]);
    w.addToBytes = program_.buffers[add.inst->operands[f.addend]].bytes;
    w.ptrs[f.out] = add.ptrs[2];
    w.half16 &= ~(1u << f.out);
    add.skip = true;
  }
  return static_cast<int>(plan.size());
}

int CudaExecutor::fuseEmbeddingAdds(std::vector<Resolved> &fn, size_t function) {
  const PlannerView view = plannerView(fn);
  const std::vector<EmbeddingAddFusion> plan =
      planEmbeddingAdds(program_, function, view.range, view.half16, view.skip);
  for (const EmbeddingAddFusion &f : plan) {
    fn[f.add].embedAt = static_cast<int>(f.embedding);
    fn[f.add].embedAddend = f.addend;
    fn[f.embedding].skip = true;
  }
  return static_cast<int>(plan.size());
}

int CudaExecutor::fuseAddNorms(std::vector<Resolved> &fn, size_t function) {
  const PlannerView view = plannerView(fn);
  int fused = 0;
  for (const AddNormFusion &f :
       planAddNorms(program_, function, view.range, view.half16, view.skip)) {
    if ((fn[f.add].half16 & 3u) == 3u) // the kernel adds to an fp32 operand
      continue;
    fn[f.norm].addNorm = static_cast<int>(f.add);
    fn[f.add].skip = true;
    ++fused;
  }
  return fused;
}

void CudaExecutor::fuseGelus(std::vector<Resolved> &fn, size_t function) {
  const PlannerView view = plannerView(fn);
  for (const GeluFusion &g :
       planGeluFusions(program_, function, view.range, view.half16, view.skip)) {
    fn[g.gemm].gelu = static_cast<int>(g.gelu);
    fn[g.gelu].gelu = static_cast<int>(g.gemm);
    ++fusedGelus_;
  }
}

SideStreamPlan CudaExecutor::planSide(const std::vector<Resolved> &fn,
                                      size_t function) const {
  std::vector<char> skip(fn.size()), withNext(fn.size());
  for (size_t i = 0; i < fn.size(); ++i) {
    skip[i] = fn[i].skip;
    withNext[i] = fn[i].biasGrad != nullptr; // its sum_rows, after it
  }
  return planSideStream(
      program_, function,
      [&](size_t i) {
        std::vector<Touch> t;
        // A fused GELU's GEMM reads and writes the GELU's operands too.
        auto add = [&](const Resolved &r, bool allWritten) {
          const uint32_t w = writtenSlots(*r.inst, program_);
          for (size_t k = 0; k < r.ptrs.size(); ++k) {
            const auto [b, e] = operandBytes(r, k);
            t.push_back({b, e, allWritten || k >= 32 || (w >> k & 1u) != 0});
          }
        };
        add(fn[i], false);
        // What the GEMM of a fused GELU does in the GELU's place (the GELU
        // itself, should it run, touches its own operands).
        if (fn[i].gelu >= 0 && fn[i].inst->opcode == static_cast<uint16_t>(Opcode::LinearFwd))
          add(fn[fn[i].gelu], false);
        if (fn[i].addNorm >= 0)
          add(fn[fn[i].addNorm], true);
        if (fn[i].embedAt >= 0) // the lookup an add does: its ids and table
          add(fn[fn[i].embedAt], false);
        if (fn[i].addTo) { // a fused residual add's addend, read
          const auto b = reinterpret_cast<uint64_t>(fn[i].addTo);
          t.push_back({b, b + fn[i].addToBytes, false});
        }
        if (fn[i].lossOut) { // the loss a fused loss backward writes
          const auto b = reinterpret_cast<uint64_t>(fn[i].lossOut);
          t.push_back({b, b + sizeof(float), true});
        }
        return t;
      },
      skip, withNext);
}

void CudaExecutor::run(int fn, std::vector<TraceEvent> *trace,
                       std::chrono::steady_clock::time_point origin) {
  overflowed_ = false;
  pendingNorm_ = nullptr;
  if (graphs_ && graphable_ && !trace && !side_ && !dcomm_ && !syncEach_) {
    if (graphOf_.size() < functions_.size())
      graphOf_.resize(functions_.size());
    Graph &g = graphOf_[fn];
    if (g.exec && g.lossScale != lossScale_) { // its kernels' arguments changed
      cudaGraphExecDestroy(g.exec);
      g.exec = nullptr;
    }
    if (!g.exec && !g.failed && g.runs++ >= 1 && !capture(fn, g))
      g.failed = true;
    if (g.exec) {
      progress.fetch_add(1, std::memory_order_relaxed); // for the watchdog
      current.store("the step's CUDA graph", std::memory_order_relaxed);
      if (cudaError_t e = cudaGraphLaunch(g.exec, stream_); e != cudaSuccess)
        fatal("the step's CUDA graph", cudaGetErrorString(e));
      pendingNorm_ = g.norm; // the overflow check, once downloadOutputs has waited
      return;
    }
  }
  enqueue(fn, trace, origin);
}

bool CudaExecutor::capture(int fn, Graph &g) {
  capturing_ = true;
  captureError_.clear();
  capturedNorm_ = nullptr;
  cudaError_t e = cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed);
  if (e == cudaSuccess) {
    enqueue(fn, nullptr, {});
    cudaGraph_t graph = nullptr;
    e = cudaStreamEndCapture(stream_, &graph);
    if (e == cudaSuccess && captureError_.empty() && graph)
      e = cudaGraphInstantiate(&g.exec, graph, 0);
    if (graph)
      cudaGraphDestroy(graph);
  }
  capturing_ = false;
  if (e == cudaSuccess && captureError_.empty() && g.exec) {
    g.lossScale = lossScale_;
    g.norm = capturedNorm_;
    std::fprintf(stderr, "cuda: function %d runs as one CUDA graph from its run %d on (%zu "
                         "instructions)\n",
                 fn, g.runs, functions_[fn].size());
    return true;
  }
  cudaGetLastError(); // the capture's error is not the device's
  if (g.exec)
    cudaGraphExecDestroy(g.exec);
  g.exec = nullptr;
  std::fprintf(stderr,
               "warning: rank %d: LLMRT_CUDA_GRAPH: function %d could not be captured (%s); "
               "it runs kernel by kernel\n",
               comm_ ? comm_->rank() : 0, fn,
               captureError_.empty() ? cudaGetErrorString(e) : captureError_.c_str());
  return false;
}

void CudaExecutor::enqueue(int fn, std::vector<TraceEvent> *trace,
                           std::chrono::steady_clock::time_point origin) {
  using clock = std::chrono::steady_clock;
  std::string err;
  cuda::gemmForget(blas_); // the host may have written inputs since
  const DeferredCollectives &deferred = deferred_[fn];
  // Weight gradients on the side stream (not while tracing: each
  // instruction is timed alone).
  const SideStreamPlan *side =
      side_ && !trace && sidePlans_[fn].units > 0 ? &sidePlans_[fn] : nullptr;
  if (side && sideSettled_.size() < functions_.size())
    sideSettled_.resize(functions_.size(), 0);
  // Where the events cannot be made, the host's times (launch and wait
  // included).
  if (trace && !traceBegin_ &&
      (cudaEventCreate(&traceBegin_) != cudaSuccess ||
       cudaEventCreate(&traceEnd_) != cudaSuccess)) {
    cudaGetLastError();
    if (traceBegin_)
      cudaEventDestroy(traceBegin_);
    traceBegin_ = traceEnd_ = nullptr;
  }
  const bool settle = side && !sideSettled_[fn];
  const size_t count = functions_[fn].size();
  for (size_t idx = 0; idx < count; ++idx) {
    const Resolved &r = functions_[fn][idx];
    const Instruction &in = *r.inst;
    if (side && side->waitBefore[idx] >= 0)
      cudaStreamWaitEvent(stream_, sideDone_[side->waitBefore[idx]], 0);
    // A side unit starts once the main stream has queued what comes
    // before it.
    const int unit = side ? side->unitOf[idx] : -1;
    if (unit >= 0 && (idx == 0 || side->unitOf[idx - 1] != unit)) {
      if (settle)
        cudaStreamSynchronize(stream_);
      cudaEventRecord(mainMark_, stream_);
      cudaStreamWaitEvent(side_, mainMark_, 0);
      cuda::gemmForget(sideBlas_);
    }
    cudaStream_t s = unit >= 0 ? side_ : stream_;
    cuda::Blas *blas = unit >= 0 ? sideBlas_ : blas_;
    // Deferred collectives whose bytes this instruction touches: the
    // compute stream waits for them here (an event, not the host).
    if (dcomm_ && !deferred.waitBefore.empty() && !deferred.waitBefore[idx].empty()) {
      // --trace: the time this rank waits for them is communication.
      clock::time_point waitBegin;
      if (trace) {
        cudaStreamSynchronize(stream_);
        waitBegin = clock::now();
      }
      for (int slot : deferred.waitBefore[idx])
        dcomm_->wait(slot, stream_);
      if (trace) {
        cudaStreamSynchronize(stream_);
        clock::time_point waitEnd = clock::now();
        trace->push_back(
            {"collective_wait",
             std::chrono::duration<double, std::micro>(waitBegin - origin).count(),
             std::chrono::duration<double, std::micro>(waitEnd - waitBegin).count(), 0});
      }
    }
    // An instruction another one does (an AdamW its batch's first
    // instruction launched, an add fused into its operand's writer): after
    // its waits (the planners leave none there, nor starts).
    if (r.skip)
      continue;
    const int slot = deferred.slotOf.empty() ? -1 : deferred.slotOf[idx];
    const std::vector<int64_t> &n = in.ints;
    const std::vector<double> &fl = in.floats;
    void *const *p = r.ptrs.data();
    const uint32_t h16 = r.half16; // operands stored 16-bit
    auto arg = [&](int k) { return cuda::In{p[k], (h16 >> k & 1u) != 0}; };
    auto res = [&](int k) { return cuda::Out{p[k], (h16 >> k & 1u) != 0}; };
    // Operand k from element `off` on (2 or 4 bytes an element).
    auto slice = [&](int k, int64_t off) {
      return static_cast<void *>(static_cast<char *>(p[k]) + off * ((h16 >> k & 1u) ? 2 : 4));
    };
    const OpcodeInfo *info = opcodeInfo(in.opcode);
    const char *name = info ? info->name : "?";
    clock::time_point begin;
    if (trace) {
      cudaStreamSynchronize(s);
      begin = clock::now();
      if (traceBegin_) {
        // The stream held while this instruction's launches are queued,
        // so that the begin event fires when its first kernel can start.
        cuda::holdStream(s, 50);
        cudaEventRecord(traceBegin_, s);
      }
    }
    progress.fetch_add(1, std::memory_order_relaxed);
    current.store(name, std::memory_order_relaxed);
    auto op = static_cast<Opcode>(in.opcode);
    // Only GEMMs in a row may share their operands' 16-bit copies.
    if (op != Opcode::LinearFwd && op != Opcode::LinearBwdWeight)
      cuda::gemmForget(blas_);
    // Started collectives in a row form one NCCL group, closed before
    // anything else is queued.
    bool starts = op == Opcode::AllReduceStart || op == Opcode::AllGatherStart;
    if (dcomm_ && grouped_ && !starts) {
      dcomm_->groupEnd();
      grouped_ = false;
    }
    switch (op) {
    case Opcode::EmbeddingFwd:
      cuda::embeddingFwd(I(p[0]), F(p[1]), F(p[2]), n[0], n[1], s);
      break;
    case Opcode::EmbeddingBwd:
      cuda::embeddingBwd(I(p[0]), F(p[1]), F(p[2]), n[0], n[1], n[2], s, r.addTo);
      break;
    case Opcode::VocabEmbeddingFwd: // this rank's rows of the vocabulary
      cuda::vocabEmbeddingFwd(I(p[0]), F(p[1]), F(p[2]), n[0], n[1],
                              comm_->groupRank(static_cast<Group>(n[3])) * n[2],
                              n[2], s);
      break;
    case Opcode::VocabEmbeddingBwd:
      cuda::vocabEmbeddingBwd(I(p[0]), F(p[1]), F(p[2]), n[0], n[1], n[2],
                              comm_->groupRank(static_cast<Group>(n[3])) * n[1],
                              s, r.addTo);
      break;
    case Opcode::PositionEmbeddingFwd:
      cuda::positionEmbeddingFwd(F(p[0]), F(p[1]), n[0], n[1], s);
      break;
    case Opcode::PositionEmbeddingBwd:
      cuda::positionEmbeddingBwd(F(p[0]), F(p[1]), n[0], n[1], n[2], s);
      break;
    case Opcode::LayerNormFwd:
      if (r.addNorm >= 0) {
        // sum = x + addend (the fp32 operand as x), then the norm of it.
        const Resolved &a = functions_[fn][r.addNorm];
        const int xk = (a.half16 & 1u) ? 1 : 0;
        const cuda::In addend{a.ptrs[1 - xk], (a.half16 >> (1 - xk) & 1u) != 0};
        cuda::layerNormFwdAdd(F(a.ptrs[xk]), addend, F(a.ptrs[2]), F(p[1]), F(p[2]), res(3),
                              n[0], n[1], fl[0], half_, s);
        break;
      }
      if (h16 & 8u)
        cuda::layerNormFwd16(F(p[0]), F(p[1]), F(p[2]), p[3], n[0], n[1], fl[0], half_, s);
      else
        cuda::layerNormFwd(F(p[0]), F(p[1]), F(p[2]), F(p[3]), n[0], n[1], fl[0], s);
      break;
    case Opcode::LayerNormBwd:
      cuda::layerNormBwdT(F(p[0]), F(p[1]), arg(2), F(p[3]), F(p[4]), F(p[5]),
                          n[0], n[1], fl[0], half_, s, r.addTo, lnBwdAsync_);
      break;
    case Opcode::RMSNormFwd:
      if (h16 & 4u)
        cuda::rmsNormFwd16(F(p[0]), F(p[1]), p[2], n[0], n[1], fl[0], half_, s);
      else
        cuda::rmsNormFwd(F(p[0]), F(p[1]), F(p[2]), n[0], n[1], fl[0], s);
      break;
    case Opcode::RMSNormBwd:
      cuda::rmsNormBwd(F(p[0]), F(p[1]), F(p[2]), F(p[3]), F(p[4]), n[0], n[1],
                       fl[0], s);
      break;
    case Opcode::LinearFwd: {
      bool bias = r.ptrs.size() == 4;
      const int y = bias ? 3 : 2;
      cuda::GeluEpilogue gelu{};
      if (r.gelu >= 0) {
        // Forward: the GELU's output, and its input (this GEMM's output)
        // kept; backward: the GELU's input gradient from its input.
        const Resolved &g = functions_[fn][r.gelu];
        const bool back = g.inst->opcode == static_cast<uint16_t>(Opcode::GeluBwd);
        const int out = back ? 2 : 1;
        gelu = {back ? cuda::GeluEpilogue::Backward : cuda::GeluEpilogue::Forward,
                g.ptrs[out], back ? g.ptrs[0] : p[y], (g.half16 >> out & 1u) != 0,
                &r.geluDone};
      }
      if (!cuda::linearFwd(blas_, p[0], p[1], bias ? F(p[2]) : nullptr, p[y], n[0],
                           n[1], n[2], n[3] != 0, &err,
                           (h16 & 3u) | ((h16 >> y & 1u) << 2), r.addTo,
                           r.gelu >= 0 ? &gelu : nullptr))
        if (failed(name, err))
          return; // a capture that fails (run falls back)
      break;
    }
    case Opcode::LinearBwdWeight:
      if (!cuda::linearBwdWeight(blas, p[0], p[1], F(p[2]), n[0], n[1],
                                 n[2], n[3] != 0, &err, r.biasGrad, &biasGradDone_,
                                 h16 & 3u))
        if (failed(name, err))
          return; // a capture that fails (run falls back)
      break;
    case Opcode::SumRows:
      if (r.sumRowsFused && biasGradDone_) // the GEMM before computed it
        break;
      if (h16 & 1u)
        cuda::sumRows16(p[0], F(p[1]), n[0], n[1], half_, s);
      else
        cuda::sumRows(F(p[0]), F(p[1]), n[0], n[1], s);
      break;
    case Opcode::CopyColumns:
      cuda::copyColumnsT(arg(0), n[0], n[1], res(1), n[2], n[3], n[4], n[5], half_, s);
      break;
    case Opcode::Rope:
      cuda::rope(F(p[0]), F(p[1]), n[0], n[1], n[2], n[3], fl[0], n[4] != 0, s);
      break;
    case Opcode::AttentionFwd: {
      // [q, k, v, out] or [.., out, lse]: the log-sum-exp is written where
      // the backward takes it (FlashAttention-2 unless LLMRT_CUDA_ATTN_LSE=0);
      // the other kernels recompute it in the backward. q, k, v may be
      // column slices of wider rows (AttentionLayout): FlashAttention-2
      // reads them in place, the others from dense copies.
      const AttentionLayout l = attentionLayout(in);
      if (attentionMMA(in)) {
        // Bits of the 16-bit operands: q, k, v, (dout), out.
        cuda::attentionFwdMMA(slice(0, l.off[0]), slice(1, l.off[1]), slice(2, l.off[2]),
                              p[3], n[0], n[1], n[2], n[3], n[4], fl[0], n[5] != 0, s,
                              attnLse_ && r.ptrs.size() == 5 ? F(p[4]) : nullptr,
                              (h16 & 7u) | ((h16 >> 3 & 1u) << 4), attnWide_,
                              l.strided ? l.ld : nullptr, attnAsync_);
        break;
      }
      float *qkv[3] = {F(p[0]), F(p[1]), F(p[2])};
      if (l.strided)
        denseCopies(l, n[0] * n[1], p, h16, 3, qkv, s);
      (attnTensorCores_ && cuda::attentionTensorCoresSupport(n[4])
           ? cuda::attentionFwdTC
           : cuda::attentionFwd)(qkv[0], qkv[1], qkv[2], F(p[3]), n[0],
                                 n[1], n[2], n[3], n[4], fl[0], n[5] != 0, s);
      break;
    }
    case Opcode::AttentionBwd: {
      // [q, k, v, dout, dq, dk, dv] or [q, k, v, dout, out, lse, dq, dk, dv].
      const int o = r.ptrs.size() == 9 ? 2 : 0;
      const AttentionLayout l = attentionLayout(in);
      const int64_t rows = n[0] * n[1];
      if (attentionMMA(in)) {
        const bool kept = attnLse_ && o == 2;
        // dq is added in fp32: a 16-bit dq is added in the scratch, then
        // rounded into place.
        const bool dq16 = (h16 >> (4 + o) & 1u) != 0;
        int64_t ld[6];
        std::copy(l.ld, l.ld + 6, ld);
        if (dq16)
          ld[3] = l.width[3];
        float *dq = dq16 ? attnScratch_ : static_cast<float *>(slice(4 + o, l.off[3]));
        const unsigned bits = (h16 & 15u) | (o == 2 ? (h16 >> 4 & 1u) << 4 : 0u) |
                              ((h16 >> (5 + o) & 1u) << 6) | ((h16 >> (6 + o) & 1u) << 7);
        cuda::attentionBwdMMA(slice(0, l.off[0]), slice(1, l.off[1]), slice(2, l.off[2]),
                              p[3], dq, slice(5 + o, l.off[4]), slice(6 + o, l.off[5]),
                              n[0], n[1], n[2], n[3], n[4], fl[0], n[5] != 0, attnWs_, s,
                              attnStaged_, kept ? p[4] : nullptr, kept ? F(p[5]) : nullptr,
                              bits, attnWideBwd_, l.strided || dq16 ? ld : nullptr,
                              attnAsyncBwd_);
        if (dq16)
          cuda::copyColumnsT(cuda::In{attnScratch_, false}, l.width[3], 0,
                             cuda::Out{p[4 + o], true}, l.ld[3], l.off[3], l.width[3],
                             rows, half_, s);
        break;
      }
      float *t[6] = {F(p[0]), F(p[1]), F(p[2]), F(p[4 + o]), F(p[5 + o]), F(p[6 + o])};
      if (l.strided)
        denseCopies(l, rows, p, h16, 6, t, s);
      (attnTensorCores_ && cuda::attentionTensorCoresSupport(n[4])
           ? cuda::attentionBwdTC
           : cuda::attentionBwd)(t[0], t[1], t[2], F(p[3]), t[3], t[4], t[5], n[0],
                                 n[1], n[2], n[3], n[4], fl[0], n[5] != 0,
                                 attnWs_, s);
      // The gradients into their columns.
      for (int k = 3; l.strided && k < 6; ++k)
        cuda::copyColumnsT(cuda::In{t[k], false}, l.width[k], 0,
                           cuda::Out{p[k + 1 + o], (h16 >> (k + 1 + o) & 1u) != 0},
                           l.ld[k], l.off[k], l.width[k], rows, half_, s);
      break;
    }
    case Opcode::GeluFwd:
      if (r.gelu >= 0 && functions_[fn][r.gelu].geluDone) // in the GEMM's epilogue
        break;
      cuda::geluFwdT(arg(0), res(1), n[0], half_, s);
      break;
    case Opcode::GeluBwd:
      if (r.gelu >= 0 && functions_[fn][r.gelu].geluDone)
        break;
      cuda::geluBwdT(arg(0), arg(1), res(2), n[0], half_, s);
      break;
    case Opcode::SiluFwd:
      cuda::siluFwdT(arg(0), res(1), n[0], half_, s);
      break;
    case Opcode::SiluBwd:
      cuda::siluBwdT(arg(0), arg(1), res(2), n[0], half_, s);
      break;
    case Opcode::Add:
      if (r.embedAt >= 0) { // the token embedding's lookup too
        const Resolved &e = functions_[fn][r.embedAt];
        cuda::embeddingFwd(I(e.ptrs[0]), F(e.ptrs[1]), F(p[2]), e.inst->ints[0],
                           e.inst->ints[1], s, F(p[r.embedAddend]), n[r.embedAddend]);
      } else if (n[0] == n[1])
        cuda::addT(arg(0), arg(1), res(2), n[0], half_, s);
      else
        cuda::add(F(p[0]), F(p[1]), F(p[2]), n[0], n[1], s);
      break;
    case Opcode::Mul:
      cuda::mul(F(p[0]), F(p[1]), F(p[2]), n[0], n[1], s);
      break;
    case Opcode::Scale:
      cuda::scale(F(p[0]), static_cast<float>(fl[0]), F(p[1]), n[0], s);
      break;
    case Opcode::CrossEntropyFwd:
      if (r.lossSkip) // its backward computes the loss too
        break;
      cuda::crossEntropyFwdT(arg(0), I(p[1]), F(p[2]), n[0], n[1], n[1],
                             rowScratch_, half_, s, r.lossStats ? lossStats_ : nullptr);
      break;
    case Opcode::CrossEntropyBwd:
      if (r.lossOut)
        cuda::crossEntropyFusedT(arg(0), I(p[1]), r.lossOut, res(2), n[0], n[1], n[1],
                                 static_cast<float>(lossScale_), rowScratch_, half_, s,
                                 lossRow_);
      else
        cuda::crossEntropyBwdT(arg(0), I(p[1]), res(2), n[0], n[1], n[1],
                               static_cast<float>(lossScale_), half_, s,
                               r.lossStats ? lossStats_ : nullptr);
      break;
    case Opcode::VocabCrossEntropyFwd:
    case Opcode::VocabCrossEntropyBwd: {
      Group g = static_cast<Group>(n[2]);
      if (!dcomm_ || comm_->groupSize(g) == 1) {
        // A group of one rank holds the whole vocabulary, padded past the
        // model's n[3] columns (--vocab-align): one kernel, no statistics
        // to reduce.
        const int64_t valid = n[3] > 0 ? std::min(n[3], n[1]) : n[1];
        if (op == Opcode::VocabCrossEntropyFwd && r.lossSkip)
          break; // its backward computes the loss too
        if (op == Opcode::VocabCrossEntropyFwd)
          cuda::crossEntropyFwdT(arg(0), I(p[1]), F(p[2]), n[0], n[1], valid,
                                 rowScratch_, half_, s, r.lossStats ? lossStats_ : nullptr);
        else if (r.lossOut)
          cuda::crossEntropyFusedT(arg(0), I(p[1]), r.lossOut, res(2), n[0], n[1], valid,
                                   static_cast<float>(lossScale_), rowScratch_, half_, s,
                                 lossRow_);
        else
          cuda::crossEntropyBwdT(arg(0), I(p[1]), res(2), n[0], n[1], valid,
                                 static_cast<float>(lossScale_), half_, s,
                                 r.lossStats ? lossStats_ : nullptr);
        break;
      }
      // Per row: the max over the group's slices, then the sums of
      // exp(x - max) and the target's logit (on the rank that holds it).
      const int64_t rows = n[0], V = n[1], start = comm_->groupRank(g) * V;
      // Columns past the model's vocabulary pad it to the group's multiple.
      const int64_t valid = n[3] > 0 ? std::clamp<int64_t>(n[3] - start, 0, V) : V;
      cuda::vocabRowMax(F(p[0]), rows, V, valid, rowStats_, s);
      dcomm_->allReduce(rowStats_, rows, cuda::DType::F64, g, Reduction::Max, s, name);
      cuda::vocabRowSums(F(p[0]), I(p[1]), rows, V, valid, start, rowStats_, s);
      dcomm_->allReduce(rowStats_ + rows, 2 * rows, cuda::DType::F64, g,
                        Reduction::Sum, s, name);
      if (op == Opcode::VocabCrossEntropyFwd)
        cuda::vocabLoss(rowStats_, rows, F(p[2]), s);
      else
        cuda::vocabCrossEntropyBwd(F(p[0]), I(p[1]), rows, V, valid, start,
                                   rowStats_, F(p[2]),
                                   static_cast<float>(lossScale_), s);
      break;
    }
    case Opcode::GlobalNorm: {
      // Replicated gradients count once; the squares of parts are summed
      // over the groups they are spread over (mask: 1 dp, 2 tp), then over
      // the pipeline's stages. Accumulators by mask: [0] replicated,
      // [1] dp, [2] dp and tp, [3] tp (so that dp sums [1, 2] and tp
      // [2, 3]). One rank: every gradient is whole.
      static constexpr int kSlotOfMask[4] = {0, 1, 3, 2};
      cudaMemsetAsync(normAcc_, 0, 4 * sizeof(double), s);
      std::vector<cuda::SquaresTensor> parts;
      for (size_t k = 1; k < r.ptrs.size(); ++k) {
        const BufferDesc &b = program_.buffers[in.operands[k]];
        int mask = k - 1 < n.size() ? static_cast<int>(n[k - 1] & 3) : 0;
        parts.push_back({F(p[k]), static_cast<int64_t>(b.bytes / 4),
                         dcomm_ ? kSlotOfMask[mask] : 0});
      }
      cuda::sumSquaresBatch(parts.data(), static_cast<int>(parts.size()), normAcc_, s);
      if (dcomm_) {
        dcomm_->allReduce(normAcc_ + 1, 2, cuda::DType::F64, Group::DP,
                          Reduction::Sum, s, name);
        dcomm_->allReduce(normAcc_ + 2, 2, cuda::DType::F64, Group::TP,
                          Reduction::Sum, s, name);
        dcomm_->allReduce(normAcc_, 4, cuda::DType::F64, Group::PP,
                          Reduction::Sum, s, name);
      }
      cuda::finishNorm(normAcc_, 4, F(p[0]), 1.0 / lossScale_, s);
      // The update is skipped on an overflow: the host needs the norm now
      // (4 bytes, once a step); a captured step reads it after (run).
      if (capturing_) {
        capturedNorm_ = F(p[0]);
        break;
      }
      float norm = 0;
      if (cudaError_t e = cudaMemcpyAsync(&norm, F(p[0]), 4, cudaMemcpyDeviceToHost, s);
          e != cudaSuccess || (e = cudaStreamSynchronize(s)) != cudaSuccess)
        fatal(name, cudaGetErrorString(e));
      overflowed_ = !std::isfinite(norm);
      break;
    }
    case Opcode::ClipScale:
      cuda::clipScale(F(p[0]), F(p[1]), F(p[2]), s);
      break;
    case Opcode::AllReduce:
      if (p[0] != p[1])
        cudaMemcpyAsync(p[1], p[0], static_cast<size_t>(n[0]) * 4,
                        cudaMemcpyDeviceToDevice, s);
      if (dcomm_ && slot >= 0)
        dcomm_->startAllReduce(F(p[1]), n[0], static_cast<Group>(n[1]),
                               static_cast<Reduction>(n[2]), slot, s, name);
      else if (dcomm_)
        dcomm_->allReduce(p[1], n[0], cuda::DType::F32, static_cast<Group>(n[1]),
                          static_cast<Reduction>(n[2]), s, name);
      break;
    case Opcode::AllReduceStart:
      if (dcomm_) {
        if (!grouped_)
          dcomm_->groupStart();
        grouped_ = true;
        dcomm_->startAllReduce(F(p[0]), n[0], static_cast<Group>(n[1]),
                               static_cast<Reduction>(n[2]),
                               static_cast<int>(n[3]), s, name);
      }
      break;
    case Opcode::AllReduceWait:
      if (dcomm_)
        dcomm_->wait(static_cast<int>(n[3]), s);
      break;
    case Opcode::AllGatherWait:
      if (dcomm_)
        dcomm_->wait(static_cast<int>(n[2]), s);
      break;
    case Opcode::AllGatherStart:
    case Opcode::AllGather: {
      // In place: this rank's part goes to its slot first.
      Group g = static_cast<Group>(n[1]);
      float *mine = F(p[1]) + comm_->groupRank(g) * n[0];
      if (mine != F(p[0]))
        cudaMemcpyAsync(mine, p[0], static_cast<size_t>(n[0]) * 4,
                        cudaMemcpyDeviceToDevice, s);
      if (!dcomm_)
        break;
      if (op == Opcode::AllGather && slot >= 0) {
        dcomm_->startAllGather(F(p[1]), n[0], g, slot, s, name);
      } else if (op == Opcode::AllGather) {
        dcomm_->allGather(F(p[1]), n[0], g, s, name);
      } else {
        if (!grouped_)
          dcomm_->groupStart();
        grouped_ = true;
        dcomm_->startAllGather(F(p[1]), n[0], g, static_cast<int>(n[2]), s, name);
      }
      break;
    }
    case Opcode::ReduceScatter:
      if (dcomm_ && slot >= 0)
        dcomm_->startReduceScatter(F(p[0]), F(p[1]), n[0], static_cast<Group>(n[1]),
                                   static_cast<Reduction>(n[2]), slot, s, name);
      else if (dcomm_)
        dcomm_->reduceScatter(F(p[0]), F(p[1]), n[0], static_cast<Group>(n[1]),
                              static_cast<Reduction>(n[2]), s, name);
      else if (p[0] != p[1])
        cudaMemcpyAsync(p[1], p[0], static_cast<size_t>(n[0]) * 4,
                        cudaMemcpyDeviceToDevice, s);
      break;
    case Opcode::Phase: // a --trace marker; the GPU trace has kernels only
      break;
    case Opcode::Send:
      dcomm_->send(F(p[0]), n[0], r.link, s, name);
      break;
    case Opcode::Recv:
      dcomm_->startRecv(F(p[0]), n[0], r.link, kRecvSlot, s, name);
      dcomm_->waitRecv(kRecvSlot, s);
      break;
    case Opcode::RecvStart:
      dcomm_->startRecv(F(p[0]), n[0], r.link, static_cast<int>(n[3]), s, name);
      break;
    case Opcode::RecvWait:
      dcomm_->waitRecv(static_cast<int>(n[3]), s);
      break;
    case Opcode::FusedElementwise: {
      // The compiler's kernel: a grid-stride loop, one pointer per operand.
      const FusedKernel &k = fusedFns_[r.fused];
      if (std::string e = generated_.launchElementwise(k.kernel, k.n, r.ptrs.data(),
                                                       r.ptrs.size(), s);
          !e.empty())
        if (failed(name, e))
          return; // a capture that fails (run falls back)
      break;
    }
    case Opcode::FusedNorm: {
      // The compiler's kernel: every operand's pointer, then its storage
      // (0 fp32, 1 bf16, 2 fp16: the 16-bit plan's slots).
      const FusedKernel &k = fusedFns_[r.fused];
      const size_t K = r.ptrs.size();
      int32_t codes[64 + 64 + 1] = {};
      for (size_t a = 0; a < K && a < 32; ++a)
        if (r.half16 >> a & 1u)
          codes[a] = half_ == cuda::Half::Bf16 ? 1 : 2;
      if (std::string e = generated_.launchNorm(k.kernel, k.normRows, r.ptrs.data(), codes, K, s);
          !e.empty())
        if (failed(name, e))
          return; // a capture that fails (run falls back)
      break;
    }
    case Opcode::AdamW:
      if (overflowed_)
        break; // an overflow: this step updates nothing
      if (r.adamwBatch >= 0) {
        const AdamWBatch &b = adamwBatches_[r.adamwBatch];
        cuda::adamwBatch(b.tensors.data(), static_cast<int>(b.tensors.size()), F(p[4]),
                         static_cast<const int64_t *>(p[5]), F(b.decay),
                         F(p[7]), fl[0], fl[1], fl[2],
                         static_cast<float>(1.0 / lossScale_), s, adamwVec_, half_);
        break;
      }
      cuda::adamw(F(p[0]), F(p[1]), F(p[2]), F(p[3]), n[0], F(p[4]),
                  static_cast<const int64_t *>(p[5]), n[1] ? F(p[6]) : nullptr,
                  F(p[7]), fl[0], fl[1], fl[2],
                  static_cast<float>(1.0 / lossScale_), s, weight16Of(in.operands[0]), half_);
      break;
    }
    checkLaunch(name);
    if (unit >= 0 && (idx + 1 == count || side->unitOf[idx + 1] != unit)) {
      cudaEventRecord(sideDone_[unit], side_);
      if (settle)
        cudaStreamSynchronize(side_);
    }
    if (syncEach_ || trace) {
      if (grouped_) { // the group's collectives must be queued to complete
        dcomm_->groupEnd();
        grouped_ = false;
      }
      if (trace && traceEnd_)
        cudaEventRecord(traceEnd_, s);
      if (cudaError_t e = cudaStreamSynchronize(s); e != cudaSuccess)
        fatal(name, cudaGetErrorString(e));
    }
    if (trace) {
      clock::time_point end = clock::now();
      double us = std::chrono::duration<double, std::micro>(end - begin).count();
      if (float ms = 0;
          traceEnd_ && cudaEventElapsedTime(&ms, traceBegin_, traceEnd_) == cudaSuccess)
        us = 1e3 * ms;
      trace->push_back(
          {name, std::chrono::duration<double, std::micro>(begin - origin).count(), us,
           communicationBytes(in),
           isPointToPoint(in.opcode) ? static_cast<int>(n[1]) : 0, -1, 0, 0, &in});
    }
  }
  if (grouped_) {
    dcomm_->groupEnd();
    grouped_ = false;
  }
  if (dcomm_)
    for (int slot : deferred.atEnd)
      dcomm_->wait(slot, stream_);
  if (side && side->atEnd >= 0)
    cudaStreamWaitEvent(stream_, sideDone_[side->atEnd], 0);
  if (settle)
    sideSettled_[fn] = 1;
}

} // namespace llmrt
