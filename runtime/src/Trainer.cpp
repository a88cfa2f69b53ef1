//===- Trainer.cpp - the training executable's driver ---------------------===//
#include "llmrt/Trainer.h"
#include "llmrt/Comm.h"
#include "llmrt/Executor.h"
#include "llmrt/PipeLinks.h"
#include "llmrt/Safetensors.h"
#include "llmrt/TokenFile.h"

#include "absl/strings/str_cat.h"
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>

namespace llmrt {

//===----------------------------------------------------------------------===//
// Flags
//===----------------------------------------------------------------------===//

std::string trainUsage(const std::string &argv0) {
  return absl::StrCat(
      "usage: ", argv0,
      " --data FILE [--val FILE] [--steps S] [--lr LR] [--warmup W]\n"
      "       [--min-lr LR] [--weight-decay WD] [--grad-clip C] [--seed S]\n"
      "       [--init FILE.safetensors] [--save DIR] [--save-every K]\n"
      "       [--resume DIR] [--log FILE.jsonl] [--trace FILE.json]\n"
      "       [--eval-every K] [--eval-batches N] [--threads T]\n"
      "       [--loss-scale dynamic|S]\n");
}

namespace {

absl::Status flagError(const std::string &flag, const std::string &value,
                       const std::string &what) {
  return absl::InvalidArgumentError(
      absl::StrCat("flag ", flag, ": '", value, "' ", what));
}

absl::Status parseInt(const std::string &flag, const std::string &v,
                      int64_t min, int64_t &out) {
  char *end = nullptr;
  errno = 0;
  long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end || errno)
    return flagError(flag, v, "is not an integer");
  if (x < min)
    return flagError(flag, v, absl::StrCat("must be at least ", min));
  out = x;
  return absl::OkStatus();
}

absl::Status parseDouble(const std::string &flag, const std::string &v,
                         double min, double &out) {
  char *end = nullptr;
  errno = 0;
  double x = std::strtod(v.c_str(), &end);
  if (v.empty() || *end || errno || !std::isfinite(x))
    return flagError(flag, v, "is not a number");
  if (x < min)
    return flagError(flag, v, absl::StrCat("must be at least ", min));
  out = x;
  return absl::OkStatus();
}

} // namespace

absl::StatusOr<TrainOptions>
parseTrainOptions(const std::vector<std::string> &args) {
  TrainOptions o;
  std::map<std::string, std::string> seen;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string flag = args[i], value;
    if (flag.rfind("--", 0) != 0)
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", flag, "'"));
    if (size_t eq = flag.find('='); eq != std::string::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
    } else {
      if (i + 1 >= args.size())
        return absl::InvalidArgumentError(
            absl::StrCat("flag ", flag, " needs a value"));
      value = args[++i];
    }
    if (seen.count(flag))
      return absl::InvalidArgumentError(
          absl::StrCat("flag ", flag, " is given twice"));
    seen[flag] = value;
    absl::Status s;
    int64_t n = 0;
    if (flag == "--data") o.data = value;
    else if (flag == "--val") o.val = value;
    else if (flag == "--init") o.init = value;
    else if (flag == "--save") o.save = value;
    else if (flag == "--resume") o.resume = value;
    else if (flag == "--log") o.log = value;
    else if (flag == "--trace") o.trace = value;
    else if (flag == "--steps") s = parseInt(flag, value, 1, o.steps);
    else if (flag == "--warmup") s = parseInt(flag, value, 0, o.warmup);
    else if (flag == "--save-every") s = parseInt(flag, value, 0, o.saveEvery);
    else if (flag == "--eval-every") s = parseInt(flag, value, 0, o.evalEvery);
    else if (flag == "--eval-batches") s = parseInt(flag, value, 1, o.evalBatches);
    else if (flag == "--threads") {
      s = parseInt(flag, value, 0, n);
      o.threads = static_cast<int>(n);
    } else if (flag == "--seed") {
      s = parseInt(flag, value, 0, n);
      o.seed = static_cast<uint64_t>(n);
    } else if (flag == "--lr") s = parseDouble(flag, value, 0, o.lr);
    else if (flag == "--min-lr") s = parseDouble(flag, value, 0, o.minLr);
    else if (flag == "--weight-decay") s = parseDouble(flag, value, 0, o.weightDecay);
    else if (flag == "--grad-clip") s = parseDouble(flag, value, 0, o.gradClip);
    else if (flag == "--loss-scale") {
      if (value == "dynamic")
        o.lossScale = -1;
      else if (!(s = parseDouble(flag, value, 0, o.lossScale)).ok() ||
               !(o.lossScale > 0 && o.lossScale <= 3.0e38))
        return absl::InvalidArgumentError(absl::StrCat(
            "flag --loss-scale: '", value,
            "' is not 'dynamic' or a positive scale a float holds"));
    } else
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", flag));
    if (!s.ok())
      return s;
  }
  if (o.data.empty())
    return absl::InvalidArgumentError("flag --data is required");
  if (o.minLr > o.lr)
    return absl::InvalidArgumentError(absl::StrCat(
        "flag --min-lr: ", o.minLr, " exceeds --lr ", o.lr));
  return o;
}

double learningRate(const TrainOptions &o, int64_t t) {
  if (t < o.warmup)
    return o.lr * static_cast<double>(t + 1) / static_cast<double>(o.warmup);
  double progress = static_cast<double>(t - o.warmup) /
                    static_cast<double>(std::max<int64_t>(1, o.steps - o.warmup));
  return o.minLr + 0.5 * (o.lr - o.minLr) * (1.0 + std::cos(M_PI * progress));
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

namespace {

absl::Status fsyncPath(const std::string &path, bool directory) {
  int fd = ::open(path.c_str(), directory ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
  if (fd < 0)
    return absl::DataLossError(
        absl::StrCat(path, ": cannot open to sync: ", std::strerror(errno)));
  int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0)
    return absl::DataLossError(
        absl::StrCat(path, ": fsync failed: ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::Status writeTextFile(const std::string &path, const std::string &text) {
  {
    std::ofstream f(path, std::ios::trunc);
    if (!f)
      return absl::PermissionDeniedError(
          absl::StrCat(path, ": cannot create: ", std::strerror(errno)));
    f << text;
    if (!f)
      return absl::DataLossError(absl::StrCat(path, ": write failed"));
  }
  return fsyncPath(path, false);
}

absl::StatusOr<std::string> readTextFile(const std::string &path) {
  std::ifstream f(path);
  if (!f)
    return absl::NotFoundError(
        absl::StrCat(path, ": cannot open: ", std::strerror(errno)));
  return std::string((std::istreambuf_iterator<char>(f)),
                     std::istreambuf_iterator<char>());
}

bool exists(const std::string &path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

absl::Status makeDir(const std::string &path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST)
    return absl::PermissionDeniedError(
        absl::StrCat(path, ": cannot create directory: ", std::strerror(errno)));
  return absl::OkStatus();
}

absl::Status removeTree(const std::string &path) {
  DIR *d = ::opendir(path.c_str());
  if (!d)
    return absl::OkStatus();
  while (dirent *e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..")
      continue;
    std::string child = path + "/" + name;
    struct stat st;
    if (::lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode))
      (void)removeTree(child);
    else
      ::unlink(child.c_str());
  }
  ::closedir(d);
  ::rmdir(path.c_str());
  return absl::OkStatus();
}

} // namespace

//===----------------------------------------------------------------------===//
// The training run
//===----------------------------------------------------------------------===//

namespace {

constexpr const char *kCompleteMarker = "COMPLETE";

/// Shape of the whole tensor a buffer is (a part of), as the model has it
/// (initialization, --init, checkpoints): the global shape of a
/// tensor-parallel shard without its padding, the shape a ZeRO share is
/// cut from, or its own.
std::vector<int64_t> wholeDims(const BufferDesc &b) {
  if (b.shardAxis >= 0)
    return modelDims(b);
  return b.zeroDims.empty() ? b.dims : b.zeroDims;
}

/// Copies a tensor of shape `dims` to one whose axis `axis` has `to`
/// entries instead (zeros past the source's, or the source cut short).
std::vector<float> resizeAxis(const std::vector<int64_t> &dims, int axis,
                              int64_t to, const float *src) {
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i)
    outer *= dims[i];
  for (size_t i = axis + 1; i < dims.size(); ++i)
    inner *= dims[i];
  int64_t from = dims[axis], keep = std::min(from, to);
  std::vector<float> out(static_cast<size_t>(outer * to * inner), 0.0f);
  for (int64_t o = 0; o < outer; ++o)
    std::copy(src + o * from * inner, src + (o * from + keep) * inner,
              out.data() + o * to * inner);
  return out;
}

int64_t product(const std::vector<int64_t> &dims) {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

/// Elements of the whole tensor a (possibly sharded) buffer belongs to.
int64_t globalElements(const BufferDesc &b) {
  int64_t n = 1;
  for (int64_t d : wholeDims(b))
    n *= d;
  return n;
}

/// Copies between a whole tensor of shape `g` and tensor-parallel rank
/// `part`'s shard: along `axis` the whole tensor is `blocks` blocks, each
/// cut into `parts` pieces; the shard is piece `part` of every block.
/// `toShard` copies whole -> shard, else shard -> whole.
void copyShard(const std::vector<int64_t> &g, int axis, int64_t blocks,
               int part, int parts, float *whole, float *shard, bool toShard) {
  int a = axis;
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < a; ++i)
    outer *= g[i];
  for (size_t i = a + 1; i < g.size(); ++i)
    inner *= g[i];
  int64_t block = g[a] / blocks, piece = block / parts;
  int64_t local = blocks * piece;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < blocks; ++k)
      for (int64_t j = 0; j < piece; ++j) {
        float *w = whole + ((o * g[a]) + k * block + part * piece + j) * inner;
        float *s = shard + ((o * local) + k * piece + j) * inner;
        if (toShard)
          std::copy(w, w + inner, s);
        else
          std::copy(s, s + inner, w);
      }
}

void copyShard(const BufferDesc &b, int part, int parts, float *whole,
               float *shard, bool toShard) {
  copyShard(b.globalDims, b.shardAxis, b.shardBlocks, part, parts, whole,
            shard, toShard);
}

/// This rank's part of a whole tensor (of wholeDims(b)): its tensor-
/// parallel shard (of the tensor padded as the plan pads it), then its
/// ZeRO share of that.
void fromWhole(const BufferDesc &b, Communicator &comm, const float *whole,
               float *dst) {
  std::vector<float> tpLocal, padded;
  const float *src = whole;
  if (b.shardValid > 0) {
    padded = resizeAxis(modelDims(b), b.shardAxis, b.globalDims[b.shardAxis], whole);
    whole = padded.data();
  }
  if (b.shardAxis >= 0) {
    tpLocal.resize(product(b.globalDims) / comm.groupSize(Group::TP));
    copyShard(b, comm.groupRank(Group::TP), comm.groupSize(Group::TP),
              const_cast<float *>(whole), tpLocal.data(), /*toShard=*/true);
    src = tpLocal.data();
  }
  int64_t n = static_cast<int64_t>(b.bytes / 4);
  int64_t from = b.zeroDims.empty() ? 0 : comm.groupRank(Group::DP) * n;
  std::copy(src + from, src + from + n, dst);
}


class Run {
public:
  Run(const ProgramDesc &program, const TrainOptions &opts, Communicator &comm,
      ExecutorFactory makeExecutor, const std::vector<ProgramDesc> &stages)
      : program(program), opts(opts), comm(comm), makeExecutor(makeExecutor),
        stages(stages) {}
  absl::Status execute();

private:
  absl::Status setup();
  absl::Status initDefault();
  absl::Status loadInit(const std::string &path);
  absl::Status loadParams(const SafetensorsFile &file, BufferRole role,
                          const std::string &prefix, bool strict);
  absl::Status saveCheckpoint(int64_t step);
  absl::Status writeTrace();
  absl::Status resume(const std::string &dir);
  absl::Status loadSharded(const std::string &ckpt);
  absl::Status loadConsolidated(const std::string &ckpt);
  void sampleBatch();
  absl::StatusOr<double> evaluate();
  void logStep(int64_t step, double loss, double lr, double norm, double secs,
               double scale, bool skipped);
  /// The buffers of every pipeline stage, stage order (this program's
  /// alone when pp = 1).
  std::vector<const std::vector<BufferDesc> *> stageBuffers() const;
  /// The loss of the last run: the last stage's output, summed over the
  /// pipeline (the other stages have none and add 0).
  double pipelineLoss(const BufferDesc *out);

  const ProgramDesc &program;
  const TrainOptions &opts;
  Communicator &comm;
  ExecutorFactory makeExecutor;
  const std::vector<ProgramDesc> &stages;
  /// Pipeline stages and this rank's.
  int64_t pp = 1, stage = 0, vpp = 1;
  std::unique_ptr<Executor> ex;
  nlohmann::json meta;
  /// Global batch (sequences per step), this rank's share, and its first
  /// sequence in the global batch.
  int64_t batch = 0, localBatch = 0, firstSeq = 0, seq = 0, vocab = 0;
  bool root = true;
  double flopsPerStep = 0;
  TokenFile trainData, valData;
  SplitMix64 dataRng{0};
  int64_t startStep = 0;
  /// Loss scaling: the scale, the updates taken (a skipped step takes
  /// none, as PyTorch's GradScaler) and the steps since the last overflow.
  double lossScale = 1;
  double lossScaling = 0; ///< opts.lossScale, or dynamic (-1) for fp16
  int64_t optimizerStep = 0, goodSteps = 0;
  static constexpr int64_t kGrowthInterval = 2000;
  int trainFn = -1, evalFn = -1;
  const BufferDesc *tokens = nullptr, *targets = nullptr, *lrBuf = nullptr,
                   *stepBuf = nullptr, *wdBuf = nullptr, *clipBuf = nullptr,
                   *lossBuf = nullptr, *normBuf = nullptr, *evalLossBuf = nullptr;
  std::FILE *logFile = nullptr;
  std::vector<TraceEvent> trace;
  std::vector<std::pair<int64_t, double>> stepMarks; // for --trace
  std::chrono::steady_clock::time_point origin = std::chrono::steady_clock::now();
};

absl::Status requireBuffer(const Executor &ex, BufferRole role,
                           const std::string &name, const BufferDesc *&out) {
  out = ex.find(role, name);
  if (!out)
    return absl::InvalidArgumentError(
        absl::StrCat("the program has no '", name, "' buffer"));
  return absl::OkStatus();
}

absl::Status Run::setup() {
  meta = nlohmann::json::parse(program.metadata, nullptr, false);
  if (meta.is_discarded() || !meta.is_object() || !meta.contains("config"))
    return absl::InvalidArgumentError("the program's metadata is not valid");
  const nlohmann::json &cfg = meta["config"];
  batch = cfg.value("batch", 0);
  seq = cfg.value("seq", 0);
  vocab = cfg.value("vocab_size", 0);
  flopsPerStep = meta.value("flops_per_step", 0.0);
  if (batch <= 0 || seq <= 0 || vocab <= 0)
    return absl::InvalidArgumentError(
        "the program's metadata lacks batch, seq or vocab_size");

  // World size: the executable runs only in the world it was compiled for.
  int64_t compiled = meta.value("world", 1);
  int64_t dp = meta.value("dp", 1), tp = meta.value("tp", 1);
  pp = meta.value("pp", 1);
  stage = meta.value("stage", 0);
  vpp = meta.value("vpp", 1);
  if (tp < 1 || dp < 1 || pp < 1 || tp * dp * pp != compiled)
    return absl::FailedPreconditionError(absl::StrCat(
        "the program's plan tp ", tp, " x dp ", dp, " x pp ", pp,
        " is not its world of ", compiled));
  int64_t world = comm.worldSize();
  if (world == 1)
    for (const char *var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"})
      if (const char *v = std::getenv(var))
        world = std::max<int64_t>(world, std::atoll(v));
  if (world != compiled)
    return absl::FailedPreconditionError(absl::StrCat(
        "this executable was compiled for ", compiled,
        " rank(s) but is running in a world of ", world,
        "; recompile with --devices ", world));
  if (absl::Status s = comm.setupGroups(static_cast<int>(tp), static_cast<int>(dp),
                                        static_cast<int>(pp));
      !s.ok())
    return s;
  root = comm.rank() == 0;
  if (stage != comm.groupRank(Group::PP))
    return absl::InvalidArgumentError(absl::StrCat(
        "rank ", comm.rank(), " runs the program of pipeline stage ", stage,
        " but its stage is ", comm.groupRank(Group::PP)));
  if (pp > 1 && (static_cast<int64_t>(stages.size()) != pp ||
                 stages[stage].buffers.size() != program.buffers.size()))
    return absl::InvalidArgumentError(absl::StrCat(
        "stage ", stage, " of a ", pp, "-stage pipeline needs every stage's "
        "program (got ", stages.size(), ")"));
  // Each pair of neighbouring stages exchanges its messages in one order
  // (what NCCL, which pairs by order, needs; MPI's tags would forgive
  // less): found identically by every rank.
  if (pp > 1)
    if (absl::Status s = checkLinkOrder(stages); !s.ok())
      return absl::FailedPreconditionError(s.message());

  // Threads: --threads, else the cores shared among the ranks on this node.
  int threads = opts.threads;
  if (threads == 0)
    if (const char *local = std::getenv("OMPI_COMM_WORLD_LOCAL_SIZE")) {
      int ranksHere = std::max(1, std::atoi(local));
      int cores = static_cast<int>(::sysconf(_SC_NPROCESSORS_ONLN));
      if (ranksHere > 1)
        threads = std::max(1, cores / ranksHere);
    }
  auto executor = makeExecutor(program, comm, threads);
  if (!executor.ok())
    return executor.status();
  ex = std::move(*executor);
  // Loss scaling: as asked, or dynamic where the backend computes in fp16.
  lossScaling = opts.lossScale;
  if (lossScaling == 0 && ex->needsLossScaling())
    lossScaling = -1;
  lossScale = lossScaling < 0 ? 65536.0 : lossScaling > 0 ? lossScaling : 1.0;
  auto t = ex->function("train");
  if (!t.ok())
    return t.status();
  trainFn = *t;
  auto e = ex->function("eval");
  if (!e.ok())
    return e.status();
  evalFn = *e;
  for (auto [role, name, ptr] :
       std::vector<std::tuple<BufferRole, const char *, const BufferDesc **>>{
           {BufferRole::Input, "tokens", &tokens},
           {BufferRole::Input, "targets", &targets},
           {BufferRole::Input, "lr", &lrBuf},
           {BufferRole::Input, "step", &stepBuf},
           {BufferRole::Input, "weight_decay", &wdBuf},
           {BufferRole::Input, "grad_clip", &clipBuf},
           {BufferRole::Output, "loss", &lossBuf},
           {BufferRole::Output, "grad_norm", &normBuf},
           {BufferRole::Output, "eval_loss", &evalLossBuf}}) {
    // The loss is computed by the last pipeline stage only; the tokens are
    // read by the first, the targets by the last (a middle stage reads
    // neither).
    std::string n = name;
    if (pp > 1 && ((stage != pp - 1 && (n == "loss" || n == "eval_loss" ||
                                         n == "targets")) ||
                   (stage != 0 && n == "tokens"))) {
      *ptr = ex->find(role, name);
      continue;
    }
    if (absl::Status s = requireBuffer(*ex, role, name, *ptr); !s.ok())
      return s;
  }

  // The named buffers are what the trainer writes and reads.
  auto shaped = [&](const BufferDesc *b, ElemType t,
                    std::vector<int64_t> dims) -> absl::Status {
    if (b->elem != t || b->dims != dims)
      return absl::InvalidArgumentError(absl::StrCat(
          "the program's '", b->name, "' buffer has the wrong type or shape"));
    return absl::OkStatus();
  };
  const BufferDesc *ids = tokens ? tokens : targets;
  if (ids && ids->dims.size() != 2)
    return absl::InvalidArgumentError("the program's token buffer is not 2-D");
  for (const BufferDesc *b : {tokens, targets})
    if (b)
      if (absl::Status s = shaped(b, ElemType::I32, {ids->dims[0], seq}); !s.ok())
        return s;
  for (const BufferDesc *b : {lrBuf, wdBuf, clipBuf, lossBuf, normBuf, evalLossBuf})
    if (b)
      if (absl::Status s = shaped(b, ElemType::F32, {}); !s.ok())
        return s;
  if (absl::Status s = shaped(stepBuf, ElemType::I64, {}); !s.ok())
    return s;
  // Every token id must have a row in the embedding table.
  for (const FunctionDesc &f : program.functions)
    for (const Instruction &inst : f.instructions) {
      int64_t rows = -1;
      if (inst.opcode == static_cast<uint16_t>(Opcode::EmbeddingFwd))
        rows = static_cast<int64_t>(program.buffers[inst.operands[1]].bytes / 4) /
               inst.ints[1];
      else if (inst.opcode == static_cast<uint16_t>(Opcode::VocabEmbeddingFwd))
        rows = inst.ints[2] * comm.groupSize(static_cast<Group>(inst.ints[3]));
      if (rows >= 0 && rows < vocab)
        return absl::InvalidArgumentError(absl::StrCat(
            "the program's embedding has ", rows, " rows for a vocabulary of ",
            vocab));
    }
  localBatch = ids ? ids->dims[0] : batch / std::max<int64_t>(1, dp);
  if (localBatch * dp != batch)
    return absl::InvalidArgumentError(absl::StrCat(
        "the program's token buffer holds ", localBatch,
        " sequences, not batch ", batch, " / dp ", dp));
  firstSeq = comm.groupRank(Group::DP) * localBatch;

  auto data = TokenFile::read(opts.data, vocab);
  if (!data.ok())
    return data.status();
  trainData = std::move(*data);
  if (trainData.size() < seq + 1)
    return absl::InvalidArgumentError(absl::StrCat(
        opts.data, ": ", trainData.size(), " tokens, fewer than seq + 1 = ",
        seq + 1));
  if (!opts.val.empty()) {
    auto v = TokenFile::read(opts.val, vocab);
    if (!v.ok())
      return v.status();
    valData = std::move(*v);
    if (valData.size() < seq + 1)
      return absl::InvalidArgumentError(absl::StrCat(
          opts.val, ": ", valData.size(), " tokens, fewer than seq + 1 = ",
          seq + 1));
  }
  dataRng.state = opts.seed;
  return absl::OkStatus();
}

std::vector<const std::vector<BufferDesc> *> Run::stageBuffers() const {
  std::vector<const std::vector<BufferDesc> *> all;
  if (pp > 1)
    for (const ProgramDesc &p : stages)
      all.push_back(&p.buffers);
  else
    all.push_back(&program.buffers);
  return all;
}

double Run::pipelineLoss(const BufferDesc *out) {
  double loss = out ? *ex->data<float>(*out) : 0.0;
  if (pp > 1)
    comm.allReduce(&loss, 1, Group::PP, Reduction::Sum);
  return loss;
}

absl::Status Run::initDefault() {
  const uint64_t seed = opts.seed ^ 0x5eed5eed5eed5eedull;
  SplitMix64 rng{seed};
  auto uniform = [&] {
    // 53 random bits in (0, 1].
    return (static_cast<double>(rng.next() >> 11) + 1.0) * 0x1.0p-53;
  };
  // Where each parameter's draws start in the one-rank stream: a normal
  // init takes two draws per pair of elements, zeros and ones none, in the
  // order of the stages' parameters. A pipeline stage jumps there
  // (splitmix64's state advances by a constant per draw).
  std::map<std::string, uint64_t> firstDraw;
  uint64_t draws = 0;
  // The compiler's order, the whole model's (metadata "init_draws"), where
  // it gives one; else the order of the stages' buffers.
  if (meta.contains("init_draws") && meta["init_draws"].is_object())
    for (auto &[name, at] : meta["init_draws"].items())
      if (at.is_number_integer())
        firstDraw[name] = at.get<uint64_t>();
  for (const std::vector<BufferDesc> *buffers : stageBuffers())
    for (const BufferDesc &b : *buffers)
      if (b.role == BufferRole::Param && !firstDraw.count(b.name)) {
        firstDraw[b.name] = draws;
        if (b.init == InitKind::Normal)
          draws += 2 * ((static_cast<uint64_t>(globalElements(b)) + 1) / 2);
      }
  std::vector<float> whole;
  for (const BufferDesc &b : program.buffers) {
    if (b.role != BufferRole::Param)
      continue;
    rng.state = seed + firstDraw[b.name] * 0x9E3779B97F4A7C15ull;
    // A shard draws the whole tensor's values (the same stream as one rank)
    // and keeps its piece.
    bool sharded = b.shardAxis >= 0 || !b.zeroDims.empty();
    int64_t n = sharded ? globalElements(b) : static_cast<int64_t>(b.bytes / 4);
    if (sharded)
      whole.assign(n, 0.0f);
    float *p = sharded ? whole.data() : ex->data<float>(b);
    switch (b.init) {
    case InitKind::Zeros:
    case InitKind::None:
      std::fill(p, p + n, 0.0f);
      break;
    case InitKind::Ones:
      std::fill(p, p + n, 1.0f);
      break;
    case InitKind::Normal:
      for (int64_t i = 0; i < n; i += 2) {
        double r = std::sqrt(-2.0 * std::log(uniform()));
        double a = 2.0 * M_PI * uniform();
        p[i] = static_cast<float>(b.initStd * r * std::cos(a));
        if (i + 1 < n)
          p[i + 1] = static_cast<float>(b.initStd * r * std::sin(a));
      }
      break;
    }
    if (sharded)
      fromWhole(b, comm, whole.data(), ex->data<float>(b));
  }
  return absl::OkStatus();
}

/// Loads every buffer of `role` from `file` (tensor name = prefix + name).
/// With `strict`, tensors of the file that are not buffers are errors,
/// except GPT-2's attention-mask buffers and a tied LM head.
absl::Status Run::loadParams(const SafetensorsFile &file, BufferRole role,
                             const std::string &prefix, bool strict) {
  bool tied = meta["config"].value("tie_word_embeddings", false);
  std::string filePrefix;
  // Hugging Face GPT-2 checkpoints name tensors "transformer.wte.weight".
  if (role == BufferRole::Param && !file.find("wte.weight") &&
      file.find("transformer.wte.weight"))
    filePrefix = "transformer.";
  std::map<std::string, bool> used;
  std::vector<std::string> missing;
  for (const BufferDesc &b : program.buffers) {
    if (b.role != role)
      continue;
    std::string name = filePrefix + prefix + b.name;
    const TensorInfo *t = file.find(name);
    if (!t) {
      missing.push_back(name);
      continue;
    }
    const std::vector<int64_t> want = wholeDims(b);
    if (t->shape != want) {
      std::string have, need;
      for (int64_t d : t->shape) absl::StrAppend(&have, have.empty() ? "" : "x", d);
      for (int64_t d : want) absl::StrAppend(&need, need.empty() ? "" : "x", d);
      return absl::InvalidArgumentError(absl::StrCat(
          file.path(), ": tensor '", name, "' has shape [", have,
          "], the model needs [", need, "]"));
    }
    if (b.shardAxis < 0 && b.zeroDims.empty()) {
      if (absl::Status s = file.readF32(name, ex->data<float>(b),
                                        static_cast<int64_t>(b.bytes / 4));
          !s.ok())
        return s;
    } else {
      // Whole tensor -> this rank's tensor-parallel shard -> its ZeRO share.
      int64_t total = 1;
      for (int64_t d : want)
        total *= d;
      std::vector<float> whole(total);
      if (absl::Status s = file.readF32(name, whole.data(), total); !s.ok())
        return s;
      fromWhole(b, comm, whole.data(), ex->data<float>(b));
    }
    used[name] = true;
  }
  if (!missing.empty()) {
    std::sort(missing.begin(), missing.end());
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 8; ++i)
      absl::StrAppend(&list, i ? ", " : "", "'", missing[i], "'");
    if (missing.size() > 8)
      absl::StrAppend(&list, " and ", missing.size() - 8, " more");
    return absl::NotFoundError(absl::StrCat(
        file.path(), ": missing tensor", missing.size() > 1 ? "s " : " ", list));
  }
  // A pipeline stage leaves the other stages' parameters to them.
  if (strict && pp > 1)
    for (const std::vector<BufferDesc> *buffers : stageBuffers())
      for (const BufferDesc &b : *buffers)
        if (b.role == role)
          used[filePrefix + prefix + b.name] = true;
  if (strict)
    for (const TensorInfo &t : file.tensors()) {
      if (used.count(t.name))
        continue;
      bool maskBuffer = t.name.size() > 9 &&
                        (t.name.rfind(".attn.bias") == t.name.size() - 10 ||
                         t.name.find(".attn.masked_bias") != std::string::npos);
      bool tiedHead = tied && t.name == "lm_head.weight";
      if (!maskBuffer && !tiedHead)
        return absl::InvalidArgumentError(absl::StrCat(
            file.path(), ": unexpected tensor '", t.name,
            "' (not a parameter of this model)"));
    }
  return absl::OkStatus();
}

absl::Status Run::loadInit(const std::string &path) {
  auto file = SafetensorsFile::read(path);
  if (!file.ok())
    return file.status();
  return loadParams(*file, BufferRole::Param, "", /*strict=*/true);
}

/// The checkpoint tensors: parameters under their Hugging Face names, AdamW
/// moments under exp_avg.<name> and exp_avg_sq.<name>.
constexpr std::pair<BufferRole, const char *> kCheckpointRoles[] = {
    {BufferRole::Param, ""},
    {BufferRole::AdamM, "exp_avg."},
    {BufferRole::AdamV, "exp_avg_sq."}};

std::string shardFileName(int rank) {
  char name[40];
  std::snprintf(name, sizeof(name), "rank-%05d.safetensors", rank);
  return name;
}

/// Shape of a buffer's tensor-parallel-local tensor (what its ZeRO shares
/// are cut from).
std::vector<int64_t> tpLocalDims(const BufferDesc &b) {
  if (!b.zeroDims.empty())
    return b.zeroDims;
  return b.dims;
}


/// True when every rank's `s` is OK (a collective: every rank calls it).
bool allOk(Communicator &comm, const absl::Status &s) {
  double failed = s.ok() ? 0.0 : 1.0;
  comm.allReduce(&failed, 1, Group::World, Reduction::Max);
  return failed == 0.0;
}

/// Saves a sharded checkpoint (docs/design.md): every rank writes the parts
/// of tensors that it alone holds to DIR/.step-N.partial/rank-R.safetensors;
/// once all have, the first rank writes index.json (the plan, and for every
/// tensor its global shape, how it is cut and which file holds each piece),
/// state.json and the COMPLETE marker, and renames the directory into place.
absl::Status Run::saveCheckpoint(int64_t step) {
  ex->downloadState();
  const std::string &dir = opts.save;
  char name[32];
  std::snprintf(name, sizeof(name), "step-%08lld", static_cast<long long>(step));
  std::string final = dir + "/" + name, tmp = dir + "/." + name + ".partial";
  absl::Status prepared = absl::OkStatus();
  if (root) {
    prepared = makeDir(dir);
    if (prepared.ok()) {
      (void)removeTree(tmp);
      prepared = makeDir(tmp);
    }
  }
  if (!allOk(comm, prepared))
    return root ? prepared
                : absl::DataLossError(absl::StrCat(
                      tmp, ": the first rank could not create the checkpoint "
                           "directory"));

  int tp = comm.groupSize(Group::TP), dp = comm.groupSize(Group::DP);
  int tpRank = comm.groupRank(Group::TP), dpRank = comm.groupRank(Group::DP);
  std::vector<TensorToWrite> mine;
  // Every rank knows every stage's buffers, so every rank derives the same
  // index. A tensor belongs to the first stage that holds it (the tied
  // embedding to stage 0, not to the last stage's copy).
  nlohmann::json tensors = nlohmann::json::object();
  std::vector<const std::vector<BufferDesc> *> all = stageBuffers();
  for (auto [role, prefix] : kCheckpointRoles)
    for (size_t owner = 0; owner < all.size(); ++owner)
      for (size_t i = 0; i < all[owner]->size(); ++i) {
        const BufferDesc &b = (*all[owner])[i];
        std::string key = prefix + b.name;
        if (b.role != role || tensors.contains(key))
          continue;
        bool split = b.shardAxis >= 0, zero = !b.zeroDims.empty();
        int first = tp * dp * static_cast<int>(owner);
        nlohmann::json pieces = nlohmann::json::array();
        for (int d = 0; d < (zero ? dp : 1); ++d)
          for (int t = 0; t < (split ? tp : 1); ++t)
            pieces.push_back({{"file", shardFileName(first + t + tp * d)},
                              {"tp_rank", t},
                              {"dp_rank", d}});
        tensors[key] = {{"shape", wholeDims(b)},
                        {"tp_axis", b.shardAxis},
                        {"tp_blocks", b.shardBlocks},
                        {"tp_local_shape", split ? tpLocalDims(b) : wholeDims(b)},
                        {"zero", zero},
                        {"pp_stage", owner},
                        {"pieces", pieces}};
        // The vocabulary padded (to tp x vocab-align): the pieces cut the
        // padded tensor (zeros past `shape` along tp_axis).
        if (b.shardValid > 0)
          tensors[key]["tp_padded"] = b.globalDims[b.shardAxis];
        // Replicated parts are written once: by the group's first rank of
        // the owning stage.
        if (static_cast<int64_t>(owner) == stage && (split || tpRank == 0) &&
            (zero || dpRank == 0))
          mine.push_back({key, DType::F32, b.dims,
                          ex->data<float>(program.buffers[i])});
      }
  std::map<std::string, std::string> md = {{"format", "llm-checkpoint-shard"},
                                           {"step", std::to_string(step)},
                                           {"rank", std::to_string(comm.rank())}};
  absl::Status wrote = absl::OkStatus();
  if (!mine.empty())
    wrote = writeSafetensors(tmp + "/" + shardFileName(comm.rank()), mine, md);
  if (!allOk(comm, wrote))
    return !wrote.ok() ? wrote
                       : absl::DataLossError(absl::StrCat(
                             tmp, ": another rank failed to write its shard; "
                                  "the checkpoint was not committed"));
  if (!root)
    return absl::OkStatus();

  nlohmann::json index = {
      {"format", "llm-sharded-checkpoint"},
      {"version", 1},
      {"plan",
       {{"world", comm.worldSize()}, {"tp", tp}, {"dp", dp}, {"pp", pp},
        {"rank_order", "rank = tp_rank + tp * dp_rank + tp * dp * pp_rank"}}},
      {"tensors", tensors}};
  if (absl::Status s = writeTextFile(tmp + "/index.json", index.dump(1) + "\n");
      !s.ok())
    return s;
  nlohmann::json state = {
      {"step", step},
      {"data_rng_state", std::to_string(dataRng.state)},
      {"optimizer_step", optimizerStep},
      {"loss_scale", lossScale},
      {"loss_scaling", lossScaling < 0 ? "dynamic" : lossScaling > 0 ? "static" : "none"},
      {"good_steps", goodSteps},
      {"seed", std::to_string(opts.seed)},
      {"program_checksum",
       std::to_string(fnv1a64(reinterpret_cast<const uint8_t *>(
                                  program.metadata.data()),
                              program.metadata.size()))},
      {"metadata", meta}};
  if (absl::Status s = writeTextFile(tmp + "/state.json", state.dump(2) + "\n");
      !s.ok())
    return s;
  // The marker last: a checkpoint without it is never loaded.
  if (absl::Status s = writeTextFile(tmp + "/" + kCompleteMarker, "ok\n"); !s.ok())
    return s;
  if (absl::Status s = fsyncPath(tmp, true); !s.ok())
    return s;
  (void)removeTree(final);
  if (std::rename(tmp.c_str(), final.c_str()) != 0)
    return absl::DataLossError(absl::StrCat(final, ": rename from ", tmp,
                                            " failed: ", std::strerror(errno)));
  if (absl::Status s = writeTextFile(dir + "/LATEST.tmp", std::string(name) + "\n");
      !s.ok())
    return s;
  if (std::rename((dir + "/LATEST.tmp").c_str(), (dir + "/LATEST").c_str()) != 0)
    return absl::DataLossError(
        absl::StrCat(dir, "/LATEST: rename failed: ", std::strerror(errno)));
  return fsyncPath(dir, true);
}

/// Loads this rank's parameters and moments from a sharded checkpoint saved
/// under any plan: each whole tensor is assembled from its pieces (ZeRO
/// shares, then tensor-parallel shards), then cut for this rank's plan.
absl::Status Run::loadSharded(const std::string &ckpt) {
  std::string where = ckpt + "/index.json";
  auto text = readTextFile(where);
  if (!text.ok())
    return text.status();
  nlohmann::json index = nlohmann::json::parse(*text, nullptr, false);
  if (index.is_discarded() || !index.is_object() ||
      index.value("format", std::string()) != "llm-sharded-checkpoint" ||
      !index.contains("plan") || !index.contains("tensors") ||
      !index["tensors"].is_object())
    return absl::DataLossError(
        absl::StrCat(where, ": not an llm sharded checkpoint index"));
  int64_t savedTp = index["plan"].value("tp", int64_t(0));
  int64_t savedDp = index["plan"].value("dp", int64_t(0));
  // Pipeline stages need nothing more: each tensor's pieces name the files
  // (of its stage's ranks) that hold them, so any stage of any plan finds
  // its tensors by name.
  int64_t savedPp = index["plan"].value("pp", int64_t(1));
  if (savedTp < 1 || savedDp < 1)
    return absl::DataLossError(
        absl::StrCat(where, ": the plan's tp and dp must be positive"));
  if (savedPp < 1)
    return absl::DataLossError(
        absl::StrCat(where, ": the plan's pp must be positive"));
  std::map<std::string, SafetensorsFile> files;
  for (auto [role, prefix] : kCheckpointRoles)
    for (const BufferDesc &b : program.buffers) {
      if (b.role != role)
        continue;
      std::string key = prefix + b.name;
      auto bad = [&](const std::string &why) {
        return absl::DataLossError(
            absl::StrCat(where, ": tensor '", key, "': ", why));
      };
      if (!index["tensors"].contains(key))
        return absl::NotFoundError(
            absl::StrCat(where, ": missing tensor '", key, "'"));
      const nlohmann::json &t = index["tensors"][key];
      auto shape = t.value("shape", std::vector<int64_t>());
      auto local = t.value("tp_local_shape", std::vector<int64_t>());
      int64_t axis = t.value("tp_axis", int64_t(-1));
      int64_t blocks = t.value("tp_blocks", int64_t(1));
      bool zero = t.value("zero", false);
      if (shape != wholeDims(b)) {
        std::string have, need;
        for (int64_t d : shape) absl::StrAppend(&have, have.empty() ? "" : "x", d);
        for (int64_t d : wholeDims(b)) absl::StrAppend(&need, need.empty() ? "" : "x", d);
        return bad(absl::StrCat("has shape [", have, "], the model needs [",
                                need, "]"));
      }
      int64_t parts = axis >= 0 ? savedTp : 1;
      int64_t dparts = zero ? savedDp : 1;
      // The saved plan's padding of the vocabulary: its pieces cut the
      // padded tensor, which is then cut back to the model's.
      std::vector<int64_t> cut = shape;
      int64_t padded = t.value("tp_padded", int64_t(0));
      if (padded != 0) {
        if (axis < 0 || axis >= static_cast<int64_t>(shape.size()) || blocks != 1 ||
            padded < shape[axis] || padded - shape[axis] >= padded / std::max<int64_t>(parts, 1))
          return bad(absl::StrCat("its padding tp_padded=", padded,
                                  " does not fit its shape and the plan"));
        cut[axis] = padded;
      }
      int64_t total = product(cut), localN = product(local);
      if (axis >= static_cast<int64_t>(shape.size()) || blocks < 1 ||
          (axis >= 0 && (blocks > cut[axis] || parts > cut[axis] ||
                         cut[axis] % (blocks * parts) != 0)) ||
          localN < 1 || localN > total ||
          localN * parts != total || localN % dparts != 0)
        return bad("its slicing (tp_axis, tp_blocks, tp_local_shape, zero) "
                   "does not fit its shape and the plan");
      std::vector<float> whole(total), tpLocal(localN);
      int64_t n = localN / dparts;
      for (int64_t tr = 0; tr < parts; ++tr) {
        for (int64_t dr = 0; dr < dparts; ++dr) {
          std::string file;
          for (const nlohmann::json &p : t.value("pieces", nlohmann::json::array()))
            if (p.value("tp_rank", int64_t(-1)) == tr &&
                p.value("dp_rank", int64_t(-1)) == dr)
              file = p.value("file", std::string());
          if (file.empty())
            return bad(absl::StrCat("no piece for tp rank ", tr, ", dp rank ", dr));
          if (file.find('/') != std::string::npos || file.rfind("rank-", 0) != 0)
            return bad(absl::StrCat("piece file '", file, "' is not a rank-R.safetensors name"));
          auto it = files.find(file);
          if (it == files.end()) {
            auto f = SafetensorsFile::read(ckpt + "/" + file);
            if (!f.ok())
              return f.status();
            it = files.emplace(file, std::move(*f)).first;
          }
          if (absl::Status s = it->second.readF32(key, tpLocal.data() + dr * n, n);
              !s.ok())
            return s;
        }
        if (axis >= 0)
          copyShard(cut, static_cast<int>(axis), blocks, static_cast<int>(tr),
                    static_cast<int>(parts), whole.data(), tpLocal.data(),
                    /*toShard=*/false);
        else
          whole = tpLocal;
      }
      if (padded != 0)
        whole = resizeAxis(cut, static_cast<int>(axis), shape[axis], whole.data());
      fromWhole(b, comm, whole.data(), ex->data<float>(b));
    }
  return absl::OkStatus();
}

absl::Status Run::resume(const std::string &dir) {
  std::string name;
  if (auto latest = readTextFile(dir + "/LATEST"); latest.ok()) {
    name = *latest;
    while (!name.empty() && (name.back() == '\n' || name.back() == ' '))
      name.pop_back();
    // A pointer to a directory that is gone (a crash while a step's
    // checkpoint was being replaced): fall back to the scan below.
    if (!exists(dir + "/" + name))
      name.clear();
  }
  if (name.empty()) {
    // No pointer (crash between rename and pointer update): the newest
    // complete checkpoint.
    DIR *d = ::opendir(dir.c_str());
    if (!d)
      return absl::NotFoundError(
          absl::StrCat(dir, ": cannot open checkpoint directory: ",
                       std::strerror(errno)));
    while (dirent *e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n.rfind("step-", 0) == 0 && exists(dir + "/" + n + "/" + kCompleteMarker))
        name = std::max(name, n);
    }
    ::closedir(d);
    if (name.empty())
      return absl::NotFoundError(
          absl::StrCat(dir, ": no complete checkpoint to resume from"));
  }
  std::string ckpt = dir + "/" + name;
  if (!exists(ckpt + "/" + kCompleteMarker))
    return absl::DataLossError(absl::StrCat(
        ckpt, ": incomplete checkpoint (no ", kCompleteMarker, " marker)"));
  auto stateText = readTextFile(ckpt + "/state.json");
  if (!stateText.ok())
    return stateText.status();
  nlohmann::json state = nlohmann::json::parse(*stateText, nullptr, false);
  if (state.is_discarded() || !state.contains("step") ||
      !state.contains("data_rng_state"))
    return absl::DataLossError(
        absl::StrCat(ckpt, "/state.json: not a valid checkpoint state"));
  // The model and the global batch must match; the plan (world, dp, tp,
  // pp) may differ: the checkpoint is resharded on load. The state holds
  // the first rank's (stage 0's) metadata.
  nlohmann::json first =
      pp > 1 ? nlohmann::json::parse(stages[0].metadata, nullptr, false) : meta;
  if (state.contains("metadata") &&
      (state["metadata"].value("config", nlohmann::json()) != meta["config"] ||
       !first.is_object() ||
       state["metadata"].value("params", int64_t(0)) !=
           first.value("params", int64_t(0))))
    return absl::InvalidArgumentError(absl::StrCat(
        ckpt, ": saved by a program for another model or batch shape"));
  if (exists(ckpt + "/index.json")) {
    if (absl::Status s = loadSharded(ckpt); !s.ok())
      return s;
  } else if (absl::Status s = loadConsolidated(ckpt); !s.ok()) {
    return s;
  }
  startStep = state["step"].get<int64_t>();
  optimizerStep = state.value("optimizer_step", startStep);
  goodSteps = state.value("good_steps", int64_t(0));
  // A dynamic scale resumes where it was; a run saved with another policy
  // starts the dynamic one afresh.
  if (lossScaling < 0 && state.value("loss_scaling", std::string()) == "dynamic" &&
      state.contains("loss_scale"))
    lossScale = state["loss_scale"].get<double>();
  else
    goodSteps = 0;
  dataRng.state = std::stoull(state["data_rng_state"].get<std::string>());
  if (root)
    std::fprintf(stderr, "resumed from %s at step %lld\n", ckpt.c_str(),
               static_cast<long long>(startStep));
  return absl::OkStatus();
}

/// A consolidated checkpoint (whole tensors in model.safetensors and
/// optimizer.safetensors), as written before sharded checkpoints.
absl::Status Run::loadConsolidated(const std::string &ckpt) {
  auto model = SafetensorsFile::read(ckpt + "/model.safetensors");
  if (!model.ok())
    return model.status();
  if (absl::Status s = loadParams(*model, BufferRole::Param, "", true); !s.ok())
    return s;
  auto opt = SafetensorsFile::read(ckpt + "/optimizer.safetensors");
  if (!opt.ok())
    return opt.status();
  if (absl::Status s = loadParams(*opt, BufferRole::AdamM, "exp_avg.", false);
      !s.ok())
    return s;
  return loadParams(*opt, BufferRole::AdamV, "exp_avg_sq.", false);
}

void Run::sampleBatch() {
  // A pipeline stage fills what it reads (and draws the same batch).
  int32_t *x = tokens ? ex->data<int32_t>(*tokens) : nullptr;
  int32_t *y = targets ? ex->data<int32_t>(*targets) : nullptr;
  auto toks = trainData.tokens();
  uint64_t range = static_cast<uint64_t>(trainData.size() - seq);
  // Every rank draws the whole global batch (the same generator everywhere)
  // and keeps its data-parallel share: together they see exactly the batch
  // one rank would.
  for (int64_t g = 0; g < batch; ++g) {
    uint64_t off = dataRng.next() % range;
    int64_t b = g - firstSeq;
    if (b < 0 || b >= localBatch)
      continue;
    for (int64_t s = 0; s < seq; ++s) {
      if (x)
        x[b * seq + s] = toks[off + s];
      if (y)
        y[b * seq + s] = toks[off + s + 1];
    }
  }
}

absl::StatusOr<double> Run::evaluate() {
  // Consecutive windows from the start of the validation file, the same
  // every time, so that evaluations are comparable.
  int32_t *x = tokens ? ex->data<int32_t>(*tokens) : nullptr;
  int32_t *y = targets ? ex->data<int32_t>(*targets) : nullptr;
  auto toks = valData.tokens();
  int64_t range = valData.size() - seq;
  double sum = 0;
  for (int64_t k = 0; k < opts.evalBatches; ++k) {
    for (int64_t b = 0; b < localBatch; ++b) {
      int64_t off = ((k * batch + firstSeq + b) * seq) % range;
      for (int64_t s = 0; s < seq; ++s) {
        if (x)
          x[b * seq + s] = toks[off + s];
        if (y)
          y[b * seq + s] = toks[off + s + 1];
      }
    }
    ex->uploadInputs();
    ex->run(evalFn);
    ex->downloadOutputs();
    sum += evalLossBuf ? *ex->data<float>(*evalLossBuf) : 0.0;
  }
  // The last pipeline stage computed it; the others add 0.
  if (pp > 1)
    comm.allReduce(&sum, 1, Group::PP, Reduction::Sum);
  return sum / opts.evalBatches;
}

int64_t peakRssBytes() {
  struct rusage u;
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<int64_t>(u.ru_maxrss) * 1024;
}

void Run::logStep(int64_t step, double loss, double lr, double norm,
                  double secs, double scale, bool skipped) {
  if (!root)
    return;
  double tokensPerS = batch * seq / secs;
  double tflops = flopsPerStep / secs / 1e12 / comm.worldSize();
  std::fprintf(stderr,
               "step %5lld/%lld | loss %.6f | lr %.3e | norm %.4f | %.1f ms | "
               "%.0f tok/s | %.3f TFLOP/s\n",
               static_cast<long long>(step), static_cast<long long>(opts.steps),
               loss, lr, norm, secs * 1e3, tokensPerS, tflops);
  if (logFile) {
    nlohmann::json j = {{"step", step},
                        {"loss", loss},
                        {"lr", lr},
                        {"grad_norm", norm},
                        {"step_time_s", secs},
                        {"tokens_per_s", tokensPerS},
                        {"model_tflops_per_device", tflops},
                        {"peak_mem_bytes", ex->allocatedBytes()},
                        {"peak_rss_bytes", peakRssBytes()}};
    if (lossScaling != 0) {
      j["loss_scale"] = scale;
      j["skipped"] = skipped;
      j["optimizer_step"] = optimizerStep;
    }
    std::fprintf(logFile, "%s\n", j.dump().c_str());
    std::fflush(logFile);
  }
}

/// Ends the job when this rank makes no progress for `seconds` (a peer died
/// or a collective never completes): names the rank and the instruction, then
/// exits, which makes mpirun end every rank. Never a silent hang.
class Watchdog {
public:
  Watchdog(Executor &ex, int rank, int seconds)
      : ex(ex), rank(rank), seconds(seconds) {
    if (seconds > 0)
      thread = std::thread([this] { loop(); });
  }
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu);
      done = true;
    }
    cv.notify_all();
    if (thread.joinable())
      thread.join();
  }

private:
  void loop() {
    uint64_t last = ex.progress.load(std::memory_order_relaxed);
    auto since = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(mu);
    while (!cv.wait_for(lock, std::chrono::milliseconds(200), [this] { return done; })) {
      // A communicator that reports a failed peer ends the job at once.
      if (std::string error = ex.asyncError(); !error.empty())
        end(error);
      uint64_t now = ex.progress.load(std::memory_order_relaxed);
      auto t = std::chrono::steady_clock::now();
      if (now != last) {
        last = now;
        since = t;
        continue;
      }
      if (t - since > std::chrono::seconds(seconds)) {
        // On a GPU the host waits behind queued work: name the oldest
        // communication still running there.
        std::string stalled = ex.stallReport();
        end(absl::StrCat("no progress for ", seconds, " s in '",
                         ex.current.load(), "'",
                         stalled.empty() ? "" : absl::StrCat(" (", stalled, ")"),
                         "; a peer failed or a collective does not complete"));
      }
    }
  }
  /// Aborts the communicators (so that no kernel keeps waiting for a peer)
  /// and ends the process; mpirun then ends the other ranks.
  [[noreturn]] void end(const std::string &why) {
    std::fprintf(stderr, "error: rank %d: %s; ending the job\n", rank, why.c_str());
    std::fflush(stderr);
    ex.abortCommunication();
    std::_Exit(1);
  }

  Executor &ex;
  int rank, seconds;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread thread;
};

/// The Chrome trace of every rank, one row (process) each: every rank writes
/// its events next to FILE (FILE.rank-R), then the first rank merges them
/// into FILE and removes the parts (ranks of one node share the
/// filesystem). Collectives are in category "collective", kernels in
/// "compute"; instant events mark the steps.
absl::Status Run::writeTrace() {
  const int rank = comm.rank();
  nlohmann::json events = nlohmann::json::array();
  std::string label = absl::StrCat("rank ", rank);
  if (comm.worldSize() > 1)
    label += absl::StrCat(" (dp ", comm.groupRank(Group::DP), ", tp ",
                          comm.groupRank(Group::TP),
                          pp > 1 ? absl::StrCat(", pp ", comm.groupRank(Group::PP))
                                 : std::string(),
                          ")");
  events.push_back({{"name", "process_name"}, {"ph", "M"}, {"pid", rank},
                    {"args", {{"name", label}}}});
  events.push_back({{"name", "process_sort_index"}, {"ph", "M"}, {"pid", rank},
                    {"args", {{"sort_index", rank}}}});
  events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", rank}, {"tid", 0},
                    {"args", {{"name", "kernels"}}}});
  events.push_back({{"name", "thread_name"}, {"ph", "M"}, {"pid", rank}, {"tid", 1},
                    {"args", {{"name", "schedule"}}}});
  for (const TraceEvent &e : trace) {
    // Phases: a track of their own above the kernels (tid 1), named as
    // Megatron's schedules are drawn: F3 = forward of micro-batch 3, B3
    // backward, R3 recomputation, with the chunk under interleaving.
    if (e.phase >= 0) {
      static const char *const kKind[] = {"F", "B", "R"};
      std::string label = absl::StrCat(kKind[std::clamp(e.phase, 0, 2)], e.microbatch,
                                       vpp > 1 ? absl::StrCat(".", e.chunk) : "");
      events.push_back({{"name", label}, {"cat", "phase"}, {"ph", "X"},
                        {"ts", e.beginUs}, {"dur", e.durationUs}, {"pid", rank},
                        {"tid", 1},
                        {"args", {{"microbatch", e.microbatch}, {"chunk", e.chunk}}}});
      continue;
    }
    std::string name = e.name;
    // Communication (collectives, the pipeline's send and recv) with the
    // bytes this rank moves; kernels are "compute".
    bool collective = e.bytes >= 0 || name.rfind("all_", 0) == 0 ||
                      name.rfind("reduce_scatter", 0) == 0;
    nlohmann::json ev = {{"name", name}, {"cat", collective ? "collective" : "compute"},
                         {"ph", "X"}, {"ts", e.beginUs}, {"dur", e.durationUs},
                         {"pid", rank}, {"tid", 0}};
    if (e.bytes >= 0) {
      ev["args"] = {{"bytes", e.bytes}};
      if (e.peer != 0)
        ev["args"]["peer"] = e.peer;
    }
    // The integer operands (shapes, groups): which GEMM or attention it was.
    if (e.inst && !e.inst->ints.empty())
      ev["args"]["ints"] = e.inst->ints;
    events.push_back(std::move(ev));
  }
  for (auto [step, ts] : stepMarks)
    events.push_back({{"name", absl::StrCat("step ", step)}, {"ph", "i"},
                      {"s", "p"}, {"ts", ts}, {"pid", rank}, {"tid", 0}});
  if (comm.worldSize() == 1) {
    std::ofstream f(opts.trace);
    f << nlohmann::json({{"traceEvents", events}}).dump() << "\n";
    if (!f)
      return absl::DataLossError(absl::StrCat(opts.trace, ": write failed"));
    return absl::OkStatus();
  }
  // Parts are named by this run (the first rank's clock, shared), so that a
  // stale part of an earlier run is never merged.
  double runId[1] = {root ? static_cast<double>(
                                std::chrono::system_clock::now().time_since_epoch().count() % 1000000007)
                          : 0.0};
  comm.allReduce(runId, 1, Group::World, Reduction::Max);
  auto partOf = [&](int r) {
    return absl::StrCat(opts.trace, ".", static_cast<int64_t>(runId[0]), ".rank-", r);
  };
  double failed = 0;
  {
    std::ofstream f(partOf(rank));
    f << events.dump() << "\n";
    failed = f ? 0 : 1;
  }
  // Every rank learns whether all parts are there before the merge.
  comm.allReduce(&failed, 1, Group::World, Reduction::Max);
  if (failed != 0)
    return absl::DataLossError(absl::StrCat(
        opts.trace, ": a rank could not write its part of the trace"));
  // A part rank 0 cannot read (ranks on other nodes without a shared
  // filesystem) is left out with a warning: the trace holds the others.
  bool written = true;
  if (root) {
    nlohmann::json all = nlohmann::json::array();
    for (int r = 0; r < comm.worldSize(); ++r) {
      std::ifstream in(partOf(r));
      nlohmann::json part = nlohmann::json::parse(in, nullptr, false);
      if (part.is_discarded() || !part.is_array()) {
        std::fprintf(stderr, "warning: %s: cannot read rank %d's part of the "
                             "trace (not on a shared filesystem?); left out\n",
                     partOf(r).c_str(), r);
        continue;
      }
      for (auto &e : part)
        all.push_back(std::move(e));
      std::remove(partOf(r).c_str());
    }
    std::ofstream f(opts.trace);
    f << nlohmann::json({{"traceEvents", all}}).dump() << "\n";
    written = static_cast<bool>(f);
  }
  comm.barrier();
  if (!written)
    return absl::DataLossError(absl::StrCat(opts.trace, ": write failed"));
  return absl::OkStatus();
}

absl::Status Run::execute() {
  if (absl::Status s = setup(); !s.ok())
    return s;
  // One instruction running longer than this is a hang, not work:
  // LLMRT_WATCHDOG_S (default 600; 0 turns it off), multi-rank runs only.
  int watchdogS = 600;
  if (const char *w = std::getenv("LLMRT_WATCHDOG_S"))
    watchdogS = std::atoi(w);
  Watchdog watchdog(*ex, comm.rank(), comm.worldSize() > 1 ? watchdogS : 0);
  // Fault injection for the tests: this rank stalls before its first step.
  if (const char *stall = std::getenv("LLMRT_TEST_STALL_RANK"))
    if (std::atoi(stall) == comm.rank())
      std::this_thread::sleep_for(std::chrono::hours(1));
  absl::Status s = !opts.resume.empty() ? resume(opts.resume)
                   : !opts.init.empty() ? loadInit(opts.init)
                                        : initDefault();
  if (!s.ok())
    return s;
  ex->uploadState();
  if (opts.lossScale == 0 && lossScaling < 0 && root)
    std::fprintf(stderr, "fp16 GEMMs: dynamic loss scaling from %g\n", lossScale);
  if (!opts.log.empty() && root) {
    logFile = std::fopen(opts.log.c_str(), startStep > 0 ? "a" : "w");
    if (!logFile)
      return absl::PermissionDeniedError(
          absl::StrCat(opts.log, ": cannot open: ", std::strerror(errno)));
  }
  if (root)
    std::fprintf(stderr,
               "model: %s, %lld parameters | batch %lld x seq %lld | arena %.1f "
               "MiB + workspace %.1f MiB | %s\n",
               meta["config"].value("model_type", std::string("?")).c_str(),
               static_cast<long long>(meta.value("params", int64_t(0))),
               static_cast<long long>(batch), static_cast<long long>(seq),
               ex->program().arenaBytes / 1048576.0,
               (ex->allocatedBytes() - ex->program().arenaBytes) / 1048576.0,
               ex->deviceName().c_str());

  using clock = std::chrono::steady_clock;
  // One clock for every rank's trace: the ranks leave this barrier
  // together (to within its latency).
  if (!opts.trace.empty()) {
    comm.barrier();
    origin = std::chrono::steady_clock::now();
  }
  for (int64_t t = startStep; t < opts.steps; ++t) {
    clock::time_point begin = clock::now();
    sampleBatch();
    double lr = learningRate(opts, t);
    *ex->data<float>(*lrBuf) = static_cast<float>(lr);
    *ex->data<int64_t>(*stepBuf) = optimizerStep + 1;
    ex->setLossScale(lossScale);
    *ex->data<float>(*wdBuf) = static_cast<float>(opts.weightDecay);
    *ex->data<float>(*clipBuf) = static_cast<float>(opts.gradClip);
    if (!opts.trace.empty())
      stepMarks.push_back(
          {t + 1, std::chrono::duration<double, std::micro>(begin - origin).count()});
    ex->uploadInputs();
    ex->run(trainFn, opts.trace.empty() ? nullptr : &trace, origin);
    ex->downloadOutputs();
    double secs = std::chrono::duration<double>(clock::now() - begin).count();
    double loss = pipelineLoss(lossBuf);
    double norm = *ex->data<float>(*normBuf);
    if (!std::isfinite(loss))
      return absl::InternalError(absl::StrCat(
          "loss is ", loss, " at step ", t + 1,
          " (diverged; lower --lr or set --grad-clip)"));
    bool skipped = ex->lastRunOverflowed();
    if (skipped && lossScaling >= 0)
      return absl::InternalError(absl::StrCat(
          "the gradient norm is not finite at step ", t + 1,
          lossScaling > 0 ? absl::StrCat(" under the static loss scale ", lossScaling,
                                         " (use --loss-scale dynamic or a smaller one)")
                          : std::string(" (diverged; lower --lr, set --grad-clip or "
                                        "--loss-scale dynamic)")));
    double scaleUsed = lossScale;
    if (skipped) {
      goodSteps = 0;
      if (lossScaling < 0)
        lossScale = std::max(lossScale / 2, 1.0 / 16777216.0);
      if (root)
        std::fprintf(stderr, "step %5lld: gradient overflow at loss scale %g: "
                             "update skipped%s\n",
                     static_cast<long long>(t + 1), scaleUsed,
                     lossScaling < 0 ? ", scale halved" : "");
    } else {
      ++optimizerStep;
      if (lossScaling < 0 && ++goodSteps == kGrowthInterval) {
        lossScale *= 2;
        goodSteps = 0;
      }
    }
    logStep(t + 1, loss, lr, norm, secs, scaleUsed, skipped);

    bool last = t + 1 == opts.steps;
    if (!opts.val.empty() &&
        (last || (opts.evalEvery > 0 && (t + 1) % opts.evalEvery == 0))) {
      auto v = evaluate();
      if (!v.ok())
        return v.status();
      if (root)
        std::fprintf(stderr, "step %5lld/%lld | val loss %.6f\n",
                   static_cast<long long>(t + 1),
                   static_cast<long long>(opts.steps), *v);
      if (logFile) {
        std::fprintf(logFile, "%s\n",
                     nlohmann::json({{"step", t + 1}, {"val_loss", *v}})
                         .dump()
                         .c_str());
        std::fflush(logFile);
      }
    }
    if (!opts.save.empty() &&
        (last || (opts.saveEvery > 0 && (t + 1) % opts.saveEvery == 0))) {
      // Every rank writes its own shards (a collective: all ranks call it).
      if (absl::Status c = saveCheckpoint(t + 1); !c.ok())
        return c;
      if (root)
        std::fprintf(stderr, "saved checkpoint %s/step-%08lld\n",
                     opts.save.c_str(), static_cast<long long>(t + 1));
      comm.barrier();
    }
  }
  if (logFile)
    std::fclose(logFile);

  if (!opts.trace.empty())
    if (absl::Status t = writeTrace(); !t.ok())
      return t;
  return absl::OkStatus();
}

} // namespace

absl::Status train(const ProgramDesc &program, const TrainOptions &opts,
                   Communicator &comm, ExecutorFactory makeExecutor,
                   const std::vector<ProgramDesc> &stages) {
  Run run(program, opts, comm, makeExecutor, stages);
  // Malformed JSON (program metadata, a checkpoint's state) surfaces as an
  // exception of the JSON library: report it, never terminate.
  try {
    return run.execute();
  } catch (const std::exception &e) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed metadata or checkpoint state: ", e.what()));
  }
}

} // namespace llmrt
