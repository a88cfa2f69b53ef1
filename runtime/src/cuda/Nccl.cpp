//===- Nccl.cpp - collectives between GPUs with NCCL ----------------------===//
//
// The only translation unit that includes nccl.h (linked into the
// multi-GPU runner, llmrt-runner-cuda-mpi).
//
// Communicators: one per group of more than one rank (DP, TP, PP, Tied),
// each bootstrapped by the group's first rank drawing an id
// (ncclGetUniqueId) that the host communicator broadcasts (MPI_Bcast), and
// one per pipeline link (PipeLinks.h), whose id the sending stage draws.
// They are created one after another in the same order on every rank, so
// that no rank waits in one creation for a peer that waits in another.
//
// Streams: each communicator has a stream of its own, so that its
// operations run in program order (the same on every rank of the group)
// and never queue behind another group's (a tensor-parallel all-reduce
// behind the data-parallel buckets) or a link's (a receive posted early).
// The first operation of each communicator (NCCL connects lazily) happens
// at creation, in the same order on every rank, not inside the first step. An operation starts after an event
// recorded on the compute stream; the compute stream waits for its end with
// another event, at once (blocking instructions) or at the wait instruction
// (buckets, prefetched gathers, receives): the host never waits.
//
// Sends copy their data to a staging buffer on the compute stream first
// (the arena may be reused by the next instruction); a link's staging slots
// are reused in turn, the compute stream waiting for the slot's previous
// send to complete.
//
// Every operation is recorded with its completion event: the watchdog asks
// stalled() for the oldest one still running, and abort() aborts every
// communicator so that kernels waiting for a failed peer return. NCCL calls
// hold a mutex that abort() waits for a bounded time only: a call stuck in
// a connection to a dead peer does not keep the process alive.
//
//===----------------------------------------------------------------------===//
#include "DeviceComm.h"

#include "llmrt/PipeLinks.h"

#include "absl/strings/str_cat.h"

#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <atomic>
#include <mutex>
#include <vector>

namespace llmrt::cuda {

namespace {

const char *groupName(Group g) {
  switch (g) {
  case Group::World: return "world";
  case Group::DP: return "dp";
  case Group::TP: return "tp";
  case Group::PP: return "pp";
  case Group::Tied: return "tied";
  }
  return "?";
}

ncclRedOp_t opOf(Reduction r) {
  switch (r) {
  case Reduction::Sum: return ncclSum;
  case Reduction::Mean: return ncclAvg;
  case Reduction::Max: return ncclMax;
  }
  return ncclSum;
}

class NcclComm final : public DeviceComm {
public:
  NcclComm(int rank, int device) : rank_(rank), device_(device) {}
  ~NcclComm() override;

  absl::Status init(Communicator &host);

  void allReduce(void *data, int64_t n, DType type, Group g, Reduction op,
                 cudaStream_t compute, const char *what) override {
    allReduceThen(data, n, type, g, op, -1, compute, what);
  }
  void reduceScatter(const float *src, float *dst, int64_t n, Group g,
                     Reduction op, cudaStream_t compute,
                     const char *what) override {
    reduceScatterThen(src, dst, n, g, op, -1, compute, what);
  }
  void allGather(float *data, int64_t n, Group g, cudaStream_t compute,
                 const char *what) override {
    allGatherThen(data, n, g, -1, compute, what);
  }
  void startAllReduce(float *data, int64_t n, Group g, Reduction op, int slot,
                      cudaStream_t compute, const char *what) override {
    allReduceThen(data, n, DType::F32, g, op, slot, compute, what);
  }
  void startAllGather(float *data, int64_t n, Group g, int slot,
                      cudaStream_t compute, const char *what) override {
    allGatherThen(data, n, g, slot, compute, what);
  }
  void startReduceScatter(const float *src, float *dst, int64_t n, Group g,
                          Reduction op, int slot, cudaStream_t compute,
                          const char *what) override {
    reduceScatterThen(src, dst, n, g, op, slot, compute, what);
  }
  void wait(int slot, cudaStream_t compute) override {
    if (slot >= 0 && static_cast<size_t>(slot) < slots_.size() && slots_[slot].armed) {
      cudaStreamWaitEvent(compute, slots_[slot].event, 0);
      slots_[slot].armed = false;
    }
  }
  void groupStart() override {
    if (grouped_)
      return;
    Calls calls(this);
    grouped_ = true;
    check(ncclGroupStart(), "ncclGroupStart", nullptr);
  }
  void groupEnd() override {
    if (!grouped_)
      return;
    Calls calls(this);
    grouped_ = false;
    check(ncclGroupEnd(), "ncclGroupEnd", nullptr);
    // The group's operations are queued only now: their events follow.
    for (const Deferred &d : deferred_) {
      recordSlot(d.slot, *d.channel);
      track(d.what, *d.channel, d.bytes);
    }
    deferred_.clear();
  }

  absl::Status reserveLink(int link, int64_t maxFloats, int slots) override {
    if (link < 0 || static_cast<size_t>(link) >= links_.size() || !links_[link].comm)
      return absl::InvalidArgumentError(
          absl::StrCat("rank ", rank_, ": no pipeline link ", link));
    Link &l = links_[link];
    if (!l.staging.empty())
      return absl::InternalError(absl::StrCat("rank ", rank_, ": ", l.name,
                                              " reserved twice"));
    l.staging.assign(static_cast<size_t>(std::max(1, slots)), Staging{});
    l.maxFloats = maxFloats;
    for (Staging &s : l.staging) {
      if (cudaMalloc(reinterpret_cast<void **>(&s.data),
                     static_cast<size_t>(std::max<int64_t>(maxFloats, 1)) * 4) !=
          cudaSuccess) {
        cudaGetLastError();
        return absl::ResourceExhaustedError(absl::StrCat(
            "rank ", rank_, ": cannot allocate ", maxFloats * 4,
            " bytes of staging for ", l.name));
      }
      cudaEventCreateWithFlags(&s.done, cudaEventDisableTiming);
      stagingBytes_ += std::max<int64_t>(maxFloats, 1) * 4;
    }
    return absl::OkStatus();
  }
  int64_t stagingBytes() const override { return stagingBytes_; }

  void send(const float *data, int64_t n, int link, cudaStream_t compute,
            const char *what) override {
    Link &l = links_[link];
    if (l.staging.empty() || n > l.maxFloats)
      fail(absl::StrCat("send of ", n, " floats on ", l.name,
                        " exceeds its staging (", l.maxFloats, ")"));
    Staging &s = l.staging[l.next];
    l.next = (l.next + 1) % l.staging.size();
    // The slot's previous send must have left it.
    if (s.used)
      cudaStreamWaitEvent(compute, s.done, 0);
    cudaMemcpyAsync(s.data, data, static_cast<size_t>(n) * 4,
                    cudaMemcpyDeviceToDevice, compute);
    Calls calls(this);
    begin(compute, l.stream);
    check(ncclSend(s.data, static_cast<size_t>(n), ncclFloat, 1, l.comm, l.stream),
          "ncclSend", l);
    cudaEventRecord(s.done, l.stream);
    s.used = true;
    track(what, l, n * 4);
  }
  void startRecv(float *data, int64_t n, int link, int slot,
                 cudaStream_t compute, const char *what) override {
    Link &l = links_[link];
    Calls calls(this);
    if (slotAt(slot).armed)
      fail(absl::StrCat("communication slot ", slot, " started twice (", what,
                        " on ", l.name, ")"));
    begin(compute, l.stream);
    check(ncclRecv(data, static_cast<size_t>(n), ncclFloat, 0, l.comm, l.stream),
          "ncclRecv", l);
    recordSlot(slot, l);
    track(what, l, n * 4);
  }
  void waitRecv(int slot, cudaStream_t compute) override { wait(slot, compute); }

  std::string stalled() override {
    std::lock_guard<std::mutex> lock(mu_);
    cudaSetDevice(device_);
    auto now = std::chrono::steady_clock::now();
    // A receive posted early waits by design: name the oldest other
    // operation still running, else the oldest receive.
    const Op *oldest = nullptr;
    for (const Op &op : ops_)
      if (cudaEventQuery(op.done) == cudaErrorNotReady) {
        bool receive = std::string(op.what).rfind("recv", 0) == 0;
        if (!oldest || (!receive && std::string(oldest->what).rfind("recv", 0) == 0))
          oldest = &op;
        if (!receive)
          break;
      }
    if (!oldest)
      return "";
    return absl::StrCat(
        oldest->what, " of ", oldest->bytes, " bytes on ", oldest->on, ", queued ",
        std::chrono::duration_cast<std::chrono::seconds>(now - oldest->queued).count(),
        " s ago, has not completed");
  }
  std::string asyncError() override {
    if (aborted_.load())
      return "";
    for (Channel *c : channels()) {
      ncclResult_t r = ncclSuccess;
      if (c->comm && ncclCommGetAsyncError(c->comm, &r) == ncclSuccess &&
          r != ncclSuccess && r != ncclInProgress)
        return absl::StrCat("NCCL reports '", ncclGetErrorString(r), "' on ",
                            c->name, ": ", ncclGetLastError(c->comm));
    }
    return "";
  }
  void abort() override {
    // Once, and only when no NCCL call is running on the main thread
    // (waiting for one at most 5 s: one stuck on a dead peer never returns,
    // and the process is about to end anyway).
    if (aborted_.exchange(true))
      return;
    std::unique_lock<std::timed_mutex> lock(calls_, std::chrono::seconds(5));
    if (!lock.owns_lock())
      return;
    for (Channel *c : channels())
      if (c->comm)
        ncclCommAbort(c->comm);
  }

private:
  struct Channel {
    ncclComm_t comm = nullptr;
    cudaStream_t stream = nullptr; ///< where its operations run, in order
    std::string name;
    int rank = 0, size = 1;
  };
  /// Holds the NCCL call mutex for one operation (abort() waits for it).
  struct Calls {
    explicit Calls(NcclComm *c) : lock(c->calls_) {
      if (c->aborted_.load())
        c->fail("the communicators were aborted");
    }
    std::lock_guard<std::timed_mutex> lock;
  };
  struct Staging {
    float *data = nullptr;
    cudaEvent_t done = nullptr;
    bool used = false;
  };
  struct Link : Channel {
    std::vector<Staging> staging;
    size_t next = 0;
    int64_t maxFloats = 0;
  };
  struct Slot {
    cudaEvent_t event = nullptr;
    bool armed = false;
  };
  /// An operation queued and not known to be complete.
  struct Op {
    cudaEvent_t done;
    const char *what;
    std::string on;
    int64_t bytes;
    std::chrono::steady_clock::time_point queued;
  };
  struct Deferred {
    int slot;
    const char *what;
    const Channel *channel;
    int64_t bytes;
  };

  /// A reduce-scatter on the group's stream: `compute` waits for it at
  /// once (slot < 0) or at wait(slot).
  void reduceScatterThen(const float *src, float *dst, int64_t n, Group g,
                         Reduction op, int slot, cudaStream_t compute,
                         const char *what) {
    Channel &c = group(g);
    if (!c.comm) {
      if (src != dst)
        cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * 4,
                        cudaMemcpyDeviceToDevice, compute);
      return;
    }
    Calls calls(this);
    begin(compute, c.stream);
    check(ncclReduceScatter(src, dst, static_cast<size_t>(n), ncclFloat,
                            opOf(op), c.comm, c.stream),
          "ncclReduceScatter", c);
    finish(slot, compute, what, c, n * 4 * c.size);
  }
  /// An all-reduce in place on the group's stream (likewise).
  void allReduceThen(void *data, int64_t n, DType type, Group g, Reduction op,
                     int slot, cudaStream_t compute, const char *what) {
    Channel &c = group(g);
    if (!c.comm)
      return; // a group of one: the data is the result
    Calls calls(this);
    // Each operation waits for the compute stream's work queued before it
    // (an all-gather's own part is copied into place just before); in an
    // NCCL group the waits precede ncclGroupEnd, which queues the group.
    begin(compute, c.stream);
    check(ncclAllReduce(data, data, static_cast<size_t>(n),
                        type == DType::F64 ? ncclDouble : ncclFloat, opOf(op),
                        c.comm, c.stream),
          "ncclAllReduce", c);
    finish(slot, compute, what, c, n * (type == DType::F64 ? 8 : 4));
  }
  /// An all-gather in place (this rank's part already at its offset).
  void allGatherThen(float *data, int64_t n, Group g, int slot,
                     cudaStream_t compute, const char *what) {
    Channel &c = group(g);
    if (!c.comm)
      return;
    Calls calls(this);
    begin(compute, c.stream);
    check(ncclAllGather(data + c.rank * n, data, static_cast<size_t>(n),
                        ncclFloat, c.comm, c.stream),
          "ncclAllGather", c);
    finish(slot, compute, what, c, n * 4 * c.size);
  }
  /// `compute` waits for the operation just queued at once (slot < 0) or
  /// at wait(slot).
  void finish(int slot, cudaStream_t compute, const char *what,
              const Channel &c, int64_t bytes) {
    if (slot < 0)
      end(compute, what, c, bytes);
    else
      started(slot, what, c, bytes);
  }

  Channel &group(Group g) {
    if (g == Group::World)
      fail("a collective over the whole world has no NCCL communicator "
           "(the program's collectives name dp, tp, pp or tied)");
    return groups_[static_cast<int>(g)];
  }
  std::vector<Channel *> channels() {
    std::vector<Channel *> all;
    for (Channel &c : groups_)
      all.push_back(&c);
    for (Link &l : links_)
      all.push_back(&l);
    return all;
  }

  /// Ends the process (the CUDA context with it: kernels waiting for this
  /// rank's peers end too); mpirun then ends the other ranks.
  [[noreturn]] void fail(const std::string &what) {
    std::fprintf(stderr, "error: rank %d: %s\n", rank_, what.c_str());
    std::fflush(stderr);
    std::_Exit(1);
  }
  void check(ncclResult_t r, const char *call, const Channel *c) {
    if (r == ncclSuccess || r == ncclInProgress)
      return;
    fail(absl::StrCat(call, c ? absl::StrCat(" on ", c->name) : std::string(),
                      ": ", ncclGetErrorString(r),
                      c && c->comm ? absl::StrCat(" (", ncclGetLastError(c->comm), ")")
                                   : std::string()));
  }
  void check(ncclResult_t r, const char *call, const Channel &c) { check(r, call, &c); }

  /// `stream` starts after the work queued so far on `compute`.
  void begin(cudaStream_t compute, cudaStream_t stream) {
    cudaEventRecord(ready_, compute);
    cudaStreamWaitEvent(stream, ready_, 0);
  }
  /// `compute` waits for the operation just queued on `c`'s stream.
  void end(cudaStream_t compute, const char *what, const Channel &c,
           int64_t bytes) {
    cudaEventRecord(finished_, c.stream);
    cudaStreamWaitEvent(compute, finished_, 0);
    track(what, c, bytes);
  }
  void started(int slot, const char *what, const Channel &c, int64_t bytes) {
    Slot &s = slotAt(slot);
    if (s.armed)
      fail(absl::StrCat("communication slot ", slot, " started twice (", what,
                        " on ", c.name, ")"));
    if (grouped_) {
      s.armed = true; // recorded at groupEnd
      deferred_.push_back({slot, what, &c, bytes});
      return;
    }
    recordSlot(slot, c);
    track(what, c, bytes);
  }
  Slot &slotAt(int slot) {
    if (slot < 0 || slot >= 1 << 16)
      fail(absl::StrCat("communication slot ", slot, " out of range"));
    if (static_cast<size_t>(slot) >= slots_.size())
      slots_.resize(slot + 1);
    Slot &s = slots_[slot];
    if (!s.event)
      cudaEventCreateWithFlags(&s.event, cudaEventDisableTiming);
    return s;
  }
  void recordSlot(int slot, const Channel &c) {
    Slot &s = slotAt(slot);
    cudaEventRecord(s.event, c.stream);
    s.armed = true;
  }
  /// Records the operation just queued on `c`'s stream for the watchdog,
  /// forgetting those that completed.
  void track(const char *what, const Channel &c, int64_t bytes) {
    cudaStream_t stream = c.stream;
    std::lock_guard<std::mutex> lock(mu_);
    while (!ops_.empty() && cudaEventQuery(ops_.front().done) == cudaSuccess) {
      freeEvents_.push_back(ops_.front().done);
      ops_.pop_front();
    }
    cudaEvent_t e = nullptr;
    if (!freeEvents_.empty()) {
      e = freeEvents_.back();
      freeEvents_.pop_back();
    } else {
      cudaEventCreateWithFlags(&e, cudaEventDisableTiming);
    }
    cudaEventRecord(e, stream);
    ops_.push_back({e, what, c.name, bytes, std::chrono::steady_clock::now()});
  }

  int rank_, device_;
  Channel groups_[5];
  std::vector<Link> links_;
  cudaEvent_t ready_ = nullptr, finished_ = nullptr;
  std::vector<Slot> slots_;
  bool grouped_ = false;
  std::timed_mutex calls_;
  std::atomic<bool> aborted_{false};
  double *warm_ = nullptr; ///< the connecting operations' one value
  std::vector<Deferred> deferred_;
  int64_t stagingBytes_ = 0;
  std::mutex mu_;
  std::deque<Op> ops_;
  std::vector<cudaEvent_t> freeEvents_;
};

NcclComm::~NcclComm() {
  if (aborted_.load())
    return; // the communicators are gone; the process is ending
  for (Channel *c : channels())
    if (c->stream)
      cudaStreamSynchronize(c->stream);
  for (Link &l : links_)
    for (Staging &s : l.staging) {
      cudaFree(s.data);
      if (s.done)
        cudaEventDestroy(s.done);
    }
  for (Channel *c : channels()) {
    if (c->comm)
      ncclCommDestroy(c->comm);
    if (c->stream)
      cudaStreamDestroy(c->stream);
  }
  for (Slot &s : slots_)
    if (s.event)
      cudaEventDestroy(s.event);
  for (const Op &op : ops_)
    cudaEventDestroy(op.done);
  for (cudaEvent_t e : freeEvents_)
    cudaEventDestroy(e);
  for (cudaEvent_t e : {ready_, finished_})
    if (e)
      cudaEventDestroy(e);
  cudaFree(warm_);
}

absl::Status NcclComm::init(Communicator &host) {
  // Communication streams at the highest priority: a collective's few
  // blocks start as soon as SMs free up, ahead of queued compute.
  int least = 0, greatest = 0;
  cudaDeviceGetStreamPriorityRange(&least, &greatest);
  auto stream = [&](Channel &c) -> absl::Status {
    if (cudaStreamCreateWithPriority(&c.stream, cudaStreamNonBlocking, greatest) !=
        cudaSuccess)
      return absl::InternalError(absl::StrCat(
          "rank ", rank_, ": cannot create a stream for ", c.name, ": ",
          cudaGetErrorString(cudaGetLastError())));
    return absl::OkStatus();
  };
  if (cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming) != cudaSuccess ||
      cudaEventCreateWithFlags(&finished_, cudaEventDisableTiming) != cudaSuccess ||
      cudaMalloc(reinterpret_cast<void **>(&warm_), sizeof(double)) != cudaSuccess)
    return absl::InternalError(absl::StrCat(
        "rank ", rank_, ": cannot create the communication events: ",
        cudaGetErrorString(cudaGetLastError())));

  // Every id first (each a broadcast over the host communicator), then the
  // communicators in one order on every rank.
  struct Pending {
    Channel *channel;
    ncclUniqueId id;
    bool link;
  };
  std::vector<Pending> pending;
  auto draw = [&](ncclUniqueId &id, bool drawer, const std::string &name) -> absl::Status {
    if (drawer)
      if (ncclResult_t r = ncclGetUniqueId(&id); r != ncclSuccess)
        return absl::InternalError(absl::StrCat(
            "rank ", rank_, ": ncclGetUniqueId for ", name, ": ",
            ncclGetErrorString(r)));
    return absl::OkStatus();
  };
  for (Group g : {Group::DP, Group::TP, Group::PP, Group::Tied}) {
    int size = host.groupSize(g);
    if (size < 2)
      continue;
    Channel &c = groups_[static_cast<int>(g)];
    c.name = absl::StrCat("group ", groupName(g));
    c.rank = host.groupRank(g);
    c.size = size;
    ncclUniqueId id{};
    if (absl::Status s = draw(id, c.rank == 0, c.name); !s.ok())
      return s;
    host.broadcast(&id, sizeof(id), g, 0);
    if (absl::Status s = stream(c); !s.ok())
      return s;
    pending.push_back({&c, id, false});
  }
  const int stages = host.groupSize(Group::PP), stage = host.groupRank(Group::PP);
  std::vector<PipeLink> links = pipelineLinks(stages);
  links_.resize(links.size());
  for (size_t i = 0; i < links.size(); ++i) {
    const PipeLink &k = links[i];
    Link &l = links_[i];
    l.name = absl::StrCat(k.gradient ? "the gradient" : "the activation",
                          " link from stage ", k.from, " to stage ", k.to);
    ncclUniqueId id{};
    if (absl::Status s = draw(id, stage == k.from, l.name); !s.ok())
      return s;
    host.broadcast(&id, sizeof(id), Group::PP, k.from);
    if (stage != k.from && stage != k.to)
      continue;
    l.rank = stage == k.from ? 0 : 1; // the sender is rank 0, the receiver 1
    l.size = 2;
    if (absl::Status s = stream(l); !s.ok())
      return s;
    pending.push_back({&l, id, true});
  }
  for (Pending &p : pending)
    if (ncclResult_t r = ncclCommInitRank(&p.channel->comm, p.channel->size,
                                          p.id, p.channel->rank);
        r != ncclSuccess)
      return absl::UnavailableError(absl::StrCat(
          "rank ", rank_, ": creating the NCCL communicator of ",
          p.channel->name, " (", p.channel->size, " ranks) failed: ",
          ncclGetErrorString(r), " (", ncclGetLastError(nullptr), ")"));
  // NCCL connects peers at a communicator's first operation: one small
  // operation each, in the same order on every rank, connects them all
  // now (a blocking meeting that no step should hold).
  for (Pending &p : pending) {
    Channel &c = *p.channel;
    ncclResult_t r =
        !p.link       ? ncclAllReduce(warm_, warm_, 1, ncclDouble, ncclSum, c.comm, c.stream)
        : c.rank == 0 ? ncclSend(warm_, 1, ncclDouble, 1, c.comm, c.stream)
                      : ncclRecv(warm_, 1, ncclDouble, 0, c.comm, c.stream);
    if (r == ncclSuccess)
      r = cudaStreamSynchronize(c.stream) == cudaSuccess ? ncclSuccess : ncclUnhandledCudaError;
    if (r != ncclSuccess)
      return absl::UnavailableError(absl::StrCat(
          "rank ", rank_, ": the first operation on ", c.name, " failed: ",
          ncclGetErrorString(r), " (", ncclGetLastError(c.comm), ")"));
  }
  return absl::OkStatus();
}

} // namespace

absl::StatusOr<std::unique_ptr<DeviceComm>> createDeviceComm(Communicator &host) {
  int device = 0;
  cudaGetDevice(&device);
  auto comm = std::make_unique<NcclComm>(host.rank(), device);
  if (absl::Status s = comm->init(host); !s.ok())
    return s;
  return std::unique_ptr<DeviceComm>(std::move(comm));
}

} // namespace llmrt::cuda
