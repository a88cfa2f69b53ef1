//===- Program.cpp - loading and validating a runtime program -------------===//
#include "llmrt/Program.h"

#include "absl/strings/str_cat.h"
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace llmrt {

namespace {

/// Bounds-checked little-endian reader over the payload.
class Reader {
public:
  Reader(absl::Span<const uint8_t> data, const std::string &source,
         size_t base)
      : data(data), source(source), base(base) {}

  bool ok() const { return error.empty(); }
  const std::string &message() const { return error; }

  uint64_t le(int bytes) {
    if (!need(bytes))
      return 0;
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i)
      v |= uint64_t(data[pos + i]) << (8 * i);
    pos += bytes;
    return v;
  }
  double f64() {
    uint64_t u = le(8);
    double d;
    std::memcpy(&d, &u, 8);
    return d;
  }
  std::string str() {
    uint64_t n = le(4);
    if (!need(n))
      return {};
    std::string s(reinterpret_cast<const char *>(data.data() + pos), n);
    pos += n;
    return s;
  }
  size_t offset() const { return base + pos; }
  bool atEnd() const { return pos == data.size(); }

private:
  bool need(uint64_t n) {
    if (!error.empty())
      return false;
    if (n > data.size() - pos) {
      error = absl::StrCat(source, ": offset ", base + pos,
                           ": program truncated (needs ", n, " more bytes)");
      return false;
    }
    return true;
  }

  absl::Span<const uint8_t> data;
  const std::string &source;
  size_t base, pos = 0;
  std::string error;
};

/// Collective groups an instruction may name (Comm.h's Group: dp, tp, pp,
/// tied).
constexpr int64_t kMaxGroup = 4;

absl::Status invalid(const std::string &source, const std::string &what) {
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", what));
}

/// Product of `a` and `b` (non-negative), or -1 on overflow.
int64_t mul(int64_t a, int64_t b) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
    return -1;
  return r;
}

/// The elements every operand of `inst` must hold, from its ints (the
/// kernels trust them): an empty string when they fit, else what does not.
/// Sizes that depend on a group's size are checked by the executor.
std::string checkSizes(const Instruction &inst, const ProgramDesc &p) {
  const std::vector<int64_t> &n = inst.ints;
  // A fusion group encodes "none" as -1 (FusedProgram::decode checks it).
  if (inst.opcode == static_cast<uint16_t>(Opcode::FusedElementwise) ||
      inst.opcode == static_cast<uint16_t>(Opcode::FusedNorm))
    return "";
  // A pipeline peer is an offset (-1: the previous stage).
  bool p2p = isPointToPoint(inst.opcode);
  for (size_t i = 0; i < n.size(); ++i)
    if (n[i] < 0 && !(p2p && i == 1))
      return absl::StrCat("negative parameter ", n[i]);
  auto elems = [&](size_t k) -> int64_t {
    const BufferDesc &b = p.buffers[inst.operands[k]];
    return static_cast<int64_t>(b.bytes) / elemBytes(b.elem);
  };
  auto type = [&](size_t k) { return p.buffers[inst.operands[k]].elem; };
  std::string err;
  // Operand k holds at least `need` elements of type `t`.
  auto need = [&](size_t k, int64_t count, ElemType t = ElemType::F32) {
    if (!err.empty() || k >= inst.operands.size())
      return;
    if (count < 0)
      err = absl::StrCat("operand ", k, ": size overflows");
    else if (type(k) != t)
      err = absl::StrCat("operand ", k, " ('", p.buffers[inst.operands[k]].name,
                         "') has the wrong element type");
    else if (elems(k) < count)
      err = absl::StrCat("operand ", k, " ('", p.buffers[inst.operands[k]].name,
                         "') holds ", elems(k), " elements, needs ", count);
  };
  auto positive = [&](std::initializer_list<int64_t> vals) {
    for (int64_t v : vals)
      if (v <= 0 && err.empty())
        err = "a size parameter is zero";
  };
  switch (static_cast<Opcode>(inst.opcode)) {
  case Opcode::EmbeddingFwd:
    positive({n[1]});
    need(0, n[0], ElemType::I32), need(1, n[1]), need(2, mul(n[0], n[1]));
    break;
  case Opcode::EmbeddingBwd:
    need(0, n[0], ElemType::I32), need(1, mul(n[0], n[2])),
        need(2, mul(n[1], n[2]));
    break;
  case Opcode::VocabEmbeddingFwd:
    need(0, n[0], ElemType::I32), need(1, mul(n[2], n[1])),
        need(2, mul(n[0], n[1]));
    break;
  case Opcode::VocabEmbeddingBwd:
    need(0, n[0], ElemType::I32), need(1, mul(n[0], n[2])),
        need(2, mul(n[1], n[2]));
    break;
  case Opcode::PositionEmbeddingFwd:
    need(0, mul(n[0], n[1])), need(1, mul(n[0], n[1]));
    break;
  case Opcode::PositionEmbeddingBwd:
    if (n[0] > n[1])
      err = "sequence longer than the position table";
    need(0, mul(n[0], n[2])), need(1, mul(n[1], n[2]));
    break;
  case Opcode::LayerNormFwd:
  case Opcode::RMSNormFwd: {
    positive({n[1]});
    bool ln = inst.opcode == static_cast<uint16_t>(Opcode::LayerNormFwd);
    need(0, mul(n[0], n[1])), need(1, n[1]);
    if (ln)
      need(2, n[1]);
    need(ln ? 3 : 2, mul(n[0], n[1]));
    break;
  }
  case Opcode::LayerNormBwd:
  case Opcode::RMSNormBwd: {
    positive({n[1]});
    bool ln = inst.opcode == static_cast<uint16_t>(Opcode::LayerNormBwd);
    int64_t rc = mul(n[0], n[1]);
    need(0, rc), need(1, n[1]), need(2, rc), need(3, rc), need(4, n[1]);
    if (ln)
      need(5, n[1]);
    break;
  }
  case Opcode::LinearFwd: {
    bool bias = inst.operands.size() == 4;
    need(0, mul(n[0], n[1])), need(1, mul(n[1], n[2]));
    if (bias)
      need(2, n[2]);
    need(bias ? 3 : 2, mul(n[0], n[2]));
    break;
  }
  case Opcode::LinearBwdWeight:
    need(0, mul(n[0], n[1])), need(1, mul(n[0], n[2])), need(2, mul(n[1], n[2]));
    break;
  case Opcode::SumRows:
    need(0, mul(n[0], n[1])), need(1, n[1]);
    break;
  case Opcode::CopyColumns:
    if (n[1] + n[4] > n[0] || n[3] + n[4] > n[2])
      err = "column slice outside its rows";
    need(0, mul(n[5], n[0])), need(1, mul(n[5], n[2]));
    break;
  case Opcode::Rope: {
    if (n[3] % 2)
      err = "odd head dimension";
    int64_t all = mul(mul(n[0], n[1]), mul(n[2], n[3]));
    need(0, all), need(1, all);
    break;
  }
  case Opcode::AttentionFwd:
  case Opcode::AttentionBwd: {
    const AttentionLayout lay = attentionLayout(inst);
    if (!lay.valid) {
      err = inst.opcode == static_cast<uint16_t>(Opcode::AttentionFwd)
                ? "attention_fwd takes 6 ints, or 12 with its q, k, v layouts"
                : "attention_bwd takes 6 ints, or 18 with its q, k, v, dq, dk, "
                  "dv layouts";
      break;
    }
    if (n[3] == 0 || n[2] % n[3])
      err = "query heads do not group over key/value heads";
    int64_t bs = mul(n[0], n[1]);
    int64_t qn = mul(bs, mul(n[2], n[4])), kn = mul(bs, mul(n[3], n[4]));
    int64_t ln = mul(bs, n[2]); // the log-sum-exp: [B, Hq, S]
    // Tensor t's elements: the last row ends off + width past its start.
    auto span = [&](int t) -> int64_t {
      const int64_t w = lay.width[t], ld = lay.ld[t], off = lay.off[t];
      if (w <= 0 || off < 0 || ld < w || off + w > ld) {
        err = "an attention tensor's columns lie outside its rows";
        return 0;
      }
      return bs > 0 ? mul(bs - 1, ld) + off + w : 0;
    };
    need(0, span(0)), need(1, span(1)), need(2, span(2)), need(3, qn);
    const size_t ops = inst.operands.size();
    if (inst.opcode == static_cast<uint16_t>(Opcode::AttentionFwd)) {
      if (ops == 5)
        need(4, ln);
    } else if (ops == 7) {
      need(4, span(3)), need(5, span(4)), need(6, span(5));
    } else if (ops == 9) { // dout, out, lse, dq, dk, dv
      need(4, qn), need(5, ln), need(6, span(3)), need(7, span(4)), need(8, span(5));
    } else {
      err = "attention_bwd takes 7 operands, or 9 with the forward's output "
            "and log-sum-exp";
    }
    if (err.empty() && inst.opcode == static_cast<uint16_t>(Opcode::AttentionBwd)) {
      // dq, dk, dv: no buffer it reads, and slices of one buffer apart
      // (the same rows, disjoint columns).
      for (size_t a = ops - 3; a < ops && err.empty(); ++a) {
        for (size_t r = 0; r < ops - 3; ++r)
          if (inst.operands[r] == inst.operands[a])
            err = absl::StrCat("operand ", a, " is written and also read (operand ", r, ")");
        for (size_t o = a + 1; o < ops; ++o) {
          const int ta = static_cast<int>(a - (ops - 6)), to = static_cast<int>(o - (ops - 6));
          if (inst.operands[o] == inst.operands[a] &&
              (lay.ld[ta] != lay.ld[to] ||
               (lay.off[ta] < lay.off[to] + lay.width[to] &&
                lay.off[to] < lay.off[ta] + lay.width[ta])))
            err = absl::StrCat("operands ", a, " and ", o, " write the same columns");
        }
      }
    }
    break;
  }
  case Opcode::GeluFwd:
  case Opcode::SiluFwd:
    need(0, n[0]), need(1, n[0]);
    break;
  case Opcode::GeluBwd:
  case Opcode::SiluBwd:
    need(0, n[0]), need(1, n[0]), need(2, n[0]);
    break;
  case Opcode::Add:
  case Opcode::Mul:
    if (n[1] == 0 || n[0] % n[1])
      err = "the broadcast operand does not divide the other";
    need(0, n[0]), need(1, n[1]), need(2, n[0]);
    break;
  case Opcode::VocabCrossEntropyFwd:
  case Opcode::VocabCrossEntropyBwd:
    if (n[3] < 0)
      err = "negative vocabulary";
    positive({n[0], n[1]});
    need(0, mul(n[0], n[1])), need(1, n[0], ElemType::I32);
    need(2, inst.opcode == static_cast<uint16_t>(Opcode::VocabCrossEntropyFwd)
                ? 1
                : mul(n[0], n[1]));
    break;
  case Opcode::CrossEntropyFwd:
    positive({n[0], n[1]});
    need(0, mul(n[0], n[1])), need(1, n[0], ElemType::I32), need(2, 1);
    break;
  case Opcode::CrossEntropyBwd:
    positive({n[0], n[1]});
    need(0, mul(n[0], n[1])), need(1, n[0], ElemType::I32),
        need(2, mul(n[0], n[1]));
    break;
  case Opcode::GlobalNorm:
    if (!n.empty() && n.size() != inst.operands.size() - 1)
      err = "one split mask per gradient expected";
    for (int64_t m : n)
      if (m > 3)
        err = "bad split mask";
    need(0, 1);
    break;
  case Opcode::ClipScale:
    need(0, 1), need(1, 1), need(2, 1);
    break;
  case Opcode::AdamW:
    need(0, n[0]), need(1, n[0]), need(2, n[0]), need(3, n[0]), need(4, 1),
        need(5, 1, ElemType::I64), need(6, 1), need(7, 1);
    break;
  case Opcode::FusedElementwise:
  case Opcode::FusedNorm:
    break; // checked once the GPU kernel table is read (parseProgram)
  case Opcode::Scale:
    need(0, n[0]), need(1, n[0]);
    break;
  case Opcode::AllGatherStart:
    if (n[1] < 1 || n[1] > kMaxGroup || n[2] >= 4096)
      err = "bad group or slot";
    need(0, n[0]);
    break;
  case Opcode::AllGatherWait:
    if (n[1] < 1 || n[1] > kMaxGroup || n[2] >= 4096)
      err = "bad group or slot";
    break;
  case Opcode::AllReduceStart:
  case Opcode::AllReduceWait:
    if (n[1] < 1 || n[1] > kMaxGroup || n[2] > 2 || n[3] >= 4096)
      err = "bad group, reduction or slot";
    need(0, n[0]);
    break;
  case Opcode::AllReduce:
  case Opcode::ReduceScatter:
  case Opcode::AllGather:
    if (n[1] < 1 || n[1] > kMaxGroup || (n.size() > 2 && n[2] > 2))
      err = "bad group or reduction";
    need(0, n[0]), need(1, n[0]);
    break;
  case Opcode::RecvStart:
  case Opcode::RecvWait:
    if (n[3] >= 4096)
      err = absl::StrCat("slot ", n[3], " is not below 4096");
    [[fallthrough]];
  case Opcode::Send:
  case Opcode::Recv:
    // The peer's stage is checked by the executor (it knows pp).
    if (n[1] == 0)
      err = "peer 0 (a stage sends to itself)";
    else if (n[2] > kMaxP2PTag)
      err = absl::StrCat("tag ", n[2], " exceeds ", kMaxP2PTag);
    need(0, n[0]);
    break;
  case Opcode::Phase:
    if (n[0] > 2)
      err = absl::StrCat("phase kind ", n[0], " is not 0 (forward), 1 "
                         "(backward) or 2 (recompute)");
    break;
  }
  return err;
}

} // namespace

absl::StatusOr<ProgramDesc> parseProgram(absl::Span<const uint8_t> bytes,
                                         const std::string &source) {
  constexpr size_t kHeader = 8 + 4 + 4 + 8 + 8;
  if (bytes.size() < kHeader)
    return absl::DataLossError(absl::StrCat(
        source, ": program is ", bytes.size(), " bytes, shorter than its ",
        kHeader, "-byte header"));
  if (std::memcmp(bytes.data(), kProgramMagic, 8) != 0)
    return invalid(source, "offset 0: bad magic (not an llm program)");
  Reader h(bytes.subspan(8, kHeader - 8), source, 8);
  uint32_t version = h.le(4);
  (void)h.le(4);
  uint64_t size = h.le(8), checksum = h.le(8);
  if (version < kOldestProgramVersion || version > kProgramVersion)
    return invalid(source, absl::StrCat("offset 8: program version ", version,
                                        ", this runtime reads versions ",
                                        kOldestProgramVersion, " to ",
                                        kProgramVersion));
  if (size != bytes.size() - kHeader)
    return absl::DataLossError(absl::StrCat(
        source, ": header declares a ", size, "-byte payload, found ",
        bytes.size() - kHeader));
  absl::Span<const uint8_t> payload = bytes.subspan(kHeader);
  if (fnv1a64(payload.data(), payload.size()) != checksum)
    return absl::DataLossError(
        absl::StrCat(source, ": checksum mismatch (corrupt program)"));

  Reader r(payload, source, kHeader);
  ProgramDesc p;
  p.metadata = r.str();
  p.arenaBytes = r.le(8);
  uint64_t nbuf = r.le(4);
  for (uint64_t i = 0; i < nbuf && r.ok(); ++i) {
    BufferDesc b;
    size_t at = r.offset();
    b.name = r.str();
    b.role = static_cast<BufferRole>(r.le(1));
    b.elem = static_cast<ElemType>(r.le(1));
    uint64_t rank = r.le(1);
    for (uint64_t d = 0; d < rank; ++d)
      b.dims.push_back(static_cast<int64_t>(r.le(8)));
    b.offset = r.le(8);
    b.bytes = r.le(8);
    b.init = static_cast<InitKind>(r.le(1));
    b.initStd = r.f64();
    b.shardAxis = static_cast<int8_t>(r.le(1));
    b.shardBlocks = static_cast<int64_t>(r.le(8));
    uint64_t grank = r.le(1);
    for (uint64_t d = 0; d < grank; ++d)
      b.globalDims.push_back(static_cast<int64_t>(r.le(8)));
    b.rankGroup = static_cast<uint8_t>(r.le(1));
    b.rankStride = r.le(8);
    uint64_t zrank = r.le(1);
    for (uint64_t d = 0; d < zrank; ++d)
      b.zeroDims.push_back(static_cast<int64_t>(r.le(8)));
    if (version >= 4)
      b.shardValid = static_cast<int64_t>(r.le(8));
    if (!r.ok())
      break;
    if (static_cast<int>(b.role) > static_cast<int>(BufferRole::Temp) ||
        static_cast<int>(b.elem) > static_cast<int>(ElemType::I64) ||
        static_cast<int>(b.init) > static_cast<int>(InitKind::Ones))
      return invalid(source, absl::StrCat("offset ", at, ": buffer #", i, " '",
                                          b.name, "' has a bad role, type or "
                                                  "init code"));
    // A shard's local shape is `dims`, or for a ZeRO share `zeroDims`.
    const std::vector<int64_t> &localDims = b.zeroDims.empty() ? b.dims : b.zeroDims;
    if (b.shardAxis >= 0 &&
        (b.shardAxis >= static_cast<int>(localDims.size()) ||
         b.globalDims.size() != localDims.size() || b.shardBlocks <= 0))
      return invalid(source, absl::StrCat("buffer '", b.name,
                                          "' has an inconsistent shard"));
    // Padding: a tensor-parallel shard of one block, padded by less than
    // one rank's part.
    if (b.shardValid != 0 &&
        (b.shardAxis < 0 || b.shardBlocks != 1 || b.shardValid < 0 ||
         b.shardValid > b.globalDims[b.shardAxis] ||
         b.globalDims[b.shardAxis] - b.shardValid >= localDims[b.shardAxis]))
      return invalid(source, absl::StrCat("buffer '", b.name,
                                          "' has an inconsistent padding (",
                                          b.shardValid, " valid)"));
    auto product = [](const std::vector<int64_t> &dims) -> int64_t {
      int64_t e = 1;
      for (int64_t d : dims) {
        e = mul(e, d);
        if (e < 0)
          return -1;
      }
      return e;
    };
    int64_t elems = product(b.dims);
    if (elems < 0 || mul(elems, elemBytes(b.elem)) < 0)
      return invalid(source, absl::StrCat("buffer '", b.name,
                                          "' has a negative or overflowing "
                                          "shape"));
    // A ZeRO share is a whole number of pieces of its tensor; a tensor-
    // parallel shard's global shape differs only along its axis, by whole
    // blocks.
    if (!b.zeroDims.empty()) {
      int64_t whole = product(b.zeroDims);
      if (whole <= 0 || elems == 0 || whole % elems != 0)
        return invalid(source, absl::StrCat("buffer '", b.name,
                                            "' is not a share of its tensor"));
    }
    if (b.shardAxis >= 0) {
      const std::vector<int64_t> &local = b.zeroDims.empty() ? b.dims : b.zeroDims;
      for (size_t d = 0; d < local.size(); ++d) {
        bool axis = static_cast<int>(d) == b.shardAxis;
        int64_t g = b.globalDims[d];
        if (g <= 0 || (!axis && g != local[d]) ||
            (axis && (local[d] == 0 || g % local[d] != 0 ||
                      local[d] % b.shardBlocks != 0 ||
                      g % b.shardBlocks != 0)))
          return invalid(source, absl::StrCat("buffer '", b.name,
                                              "' has an inconsistent shard"));
      }
    }
    if (static_cast<uint64_t>(elems * elemBytes(b.elem)) != b.bytes)
      return invalid(source, absl::StrCat("buffer '", b.name, "' is ", b.bytes,
                                          " bytes but its shape needs ",
                                          elems * elemBytes(b.elem)));
    // A rank-dependent view must fit for the largest rank index; its base
    // is checked here, the extent by the executor once the group is known.
    if (b.rankGroup > 2)
      return invalid(source, absl::StrCat("buffer '", b.name,
                                          "' has a bad rank group"));
    if (b.offset % kArenaAlignment != 0 || b.offset > p.arenaBytes ||
        b.bytes > p.arenaBytes - b.offset)
      return invalid(source,
                     absl::StrCat("buffer '", b.name, "' [", b.offset, ", ",
                                  b.offset + b.bytes,
                                  ") is misaligned or outside the arena of ",
                                  p.arenaBytes, " bytes"));
    p.buffers.push_back(std::move(b));
  }
  uint64_t nfn = r.le(4);
  for (uint64_t i = 0; i < nfn && r.ok(); ++i) {
    FunctionDesc f;
    f.name = r.str();
    uint64_t ninst = r.le(4);
    for (uint64_t j = 0; j < ninst && r.ok(); ++j) {
      Instruction inst;
      size_t at = r.offset();
      inst.opcode = r.le(2);
      uint64_t nops = r.le(2);
      for (uint64_t k = 0; k < nops && r.ok(); ++k)
        inst.operands.push_back(r.le(4));
      uint64_t nints = r.le(2);
      for (uint64_t k = 0; k < nints && r.ok(); ++k)
        inst.ints.push_back(static_cast<int64_t>(r.le(8)));
      uint64_t nfl = r.le(2);
      for (uint64_t k = 0; k < nfl && r.ok(); ++k)
        inst.floats.push_back(r.f64());
      if (!r.ok())
        break;
      // Before version 4 the vocabulary-parallel loss had no padding.
      if (version < 4 &&
          (inst.opcode == static_cast<uint16_t>(Opcode::VocabCrossEntropyFwd) ||
           inst.opcode == static_cast<uint16_t>(Opcode::VocabCrossEntropyBwd)) &&
          inst.ints.size() == 3)
        inst.ints.push_back(0);
      const OpcodeInfo *info = opcodeInfo(inst.opcode);
      std::string where = absl::StrCat("offset ", at, ": function '", f.name,
                                       "' instruction #", j);
      if (!info)
        return invalid(source, absl::StrCat(where, ": unknown opcode ",
                                            inst.opcode));
      int n = static_cast<int>(inst.operands.size());
      if (n < info->minOperands ||
          (info->maxOperands >= 0 && n > info->maxOperands) ||
          (info->ints >= 0 && static_cast<int>(inst.ints.size()) != info->ints) ||
          static_cast<int>(inst.floats.size()) != info->floats)
        return invalid(source, absl::StrCat(where, " (", info->name,
                                            "): wrong number of operands or "
                                            "parameters"));
      for (uint32_t o : inst.operands)
        if (o >= p.buffers.size())
          return invalid(source, absl::StrCat(where, " (", info->name,
                                              "): operand ", o,
                                              " is not a buffer"));
      if (std::string why = checkSizes(inst, p); !why.empty())
        return invalid(source, absl::StrCat(where, " (", info->name, "): ", why));
      f.instructions.push_back(std::move(inst));
    }
    p.functions.push_back(std::move(f));
  }
  if (version >= 3 && r.ok()) {
    p.gpuPtx = r.str();
    uint64_t nent = r.le(4);
    for (uint64_t i = 0; i < nent && r.ok(); ++i)
      p.gpuEntries.push_back(r.str());
  }
  if (!r.ok())
    return absl::DataLossError(r.message());
  for (const FunctionDesc &f : p.functions)
    for (const Instruction &inst : f.instructions) {
      if (!isFusedGroup(inst.opcode))
        continue;
      const bool norm = inst.opcode == static_cast<uint16_t>(Opcode::FusedNorm);
      FusedNormProgram fn;
      const FusedProgram &fp = fn.pro;
      std::string why = decodeFusedGroup(inst.opcode, inst.ints, inst.operands.size(), fn);
      if (why.empty() && (fp.kernel < -1 || fp.kernel >= static_cast<int64_t>(p.gpuEntries.size())))
        why = absl::StrCat("kernel ", fp.kernel, " is not among the program's ",
                           p.gpuEntries.size(), " GPU entries");
      for (size_t k = 0; why.empty() && k < inst.operands.size(); ++k) {
        const BufferDesc &b = p.buffers[inst.operands[k]];
        int64_t need = k < fp.nb.size() ? fp.nb[k] : fp.n;
        if (b.elem != ElemType::F32 || static_cast<int64_t>(b.bytes / 4) < need)
          why = absl::StrCat("operand '", b.name, "' is not ", need, " f32 elements");
      }
      // What the GPU kernel needs (llm-fuse-elementwise keeps to it): an
      // output shares no bytes with other outputs, and with an input only
      // its very bytes, an input of the same element, where x is stored
      // (the kernel's loop form reads x back, and of the inputs only w and
      // b; its unrolled form keeps x in registers, and cannot be told apart
      // here). Rank-dependent views are the compiler's to check
      // (llm-fuse-elementwise refuses any overlap with one).
      if (norm && why.empty()) {
        const size_t I = fp.nb.size(), K = inst.operands.size();
        const bool xStored = std::find(fp.outputs.begin(), fp.outputs.end(), fn.x) !=
                             fp.outputs.end();
        for (size_t o = I; why.empty() && o < K; ++o)
          for (size_t k = 0; why.empty() && k < K; ++k) {
            if (k == o || (k > o && k >= I))
              continue; // each pair of outputs once
            const BufferDesc &a = p.buffers[inst.operands[o]];
            const BufferDesc &b = p.buffers[inst.operands[k]];
            if (a.rankGroup || b.rankGroup || a.offset >= b.offset + b.bytes ||
                b.offset >= a.offset + a.bytes)
              continue;
            const bool inPlace = k < I && xStored && fp.nb[k] == fp.n &&
                                 a.offset == b.offset && a.bytes == b.bytes;
            if (!inPlace)
              why = absl::StrCat("output '", a.name, "' shares bytes with '", b.name, "'");
          }
      }
      if (!why.empty())
        return invalid(source, absl::StrCat("function '", f.name, "': ",
                                            norm ? "fused_norm: " : "fused_elementwise: ",
                                            why));
    }
  if (!r.atEnd())
    return invalid(source, absl::StrCat("offset ", r.offset(),
                                        ": trailing bytes after the program"));
  return p;
}

absl::StatusOr<std::vector<uint8_t>> readEmbedded(const std::string &exePath) {
  std::ifstream f(exePath, std::ios::binary | std::ios::ate);
  if (!f)
    return absl::NotFoundError(
        absl::StrCat(exePath, ": cannot open: ", std::strerror(errno)));
  int64_t size = f.tellg();
  constexpr int64_t kTrailer = 24;
  if (size < kTrailer)
    return absl::DataLossError(
        absl::StrCat(exePath, ": no embedded program (file too short)"));
  uint8_t trailer[kTrailer];
  f.seekg(size - kTrailer);
  f.read(reinterpret_cast<char *>(trailer), kTrailer);
  if (std::memcmp(trailer + 16, kExeTrailerMagic, 8) != 0)
    return absl::NotFoundError(absl::StrCat(
        exePath, ": no embedded program (build executables with "
                 "`llm-compile MODEL.mlir -o MODEL.exe`)"));
  uint64_t offset = 0, length = 0;
  for (int i = 0; i < 8; ++i) {
    offset |= uint64_t(trailer[i]) << (8 * i);
    length |= uint64_t(trailer[8 + i]) << (8 * i);
  }
  if (offset > static_cast<uint64_t>(size - kTrailer) ||
      length != static_cast<uint64_t>(size - kTrailer) - offset)
    return absl::DataLossError(absl::StrCat(
        exePath, ": embedded program trailer is inconsistent (offset ",
        offset, ", length ", length, ", file ", size, " bytes)"));
  std::vector<uint8_t> bytes(length);
  f.seekg(offset);
  f.read(reinterpret_cast<char *>(bytes.data()), length);
  if (!f)
    return absl::DataLossError(absl::StrCat(exePath, ": read error"));
  return bytes;
}

bool isBundle(absl::Span<const uint8_t> bytes) {
  return bytes.size() >= 8 && std::memcmp(bytes.data(), kBundleMagic, 8) == 0;
}

absl::StatusOr<std::vector<absl::Span<const uint8_t>>>
splitBundle(absl::Span<const uint8_t> bytes, const std::string &source) {
  if (!isBundle(bytes))
    return invalid(source, "offset 0: bad magic (not a pipeline bundle)");
  Reader r(bytes.subspan(8), source, 8);
  uint64_t count = r.le(4);
  if (!r.ok())
    return absl::DataLossError(
        absl::StrCat(source, ": pipeline bundle truncated in its header"));
  if (count < 2)
    return invalid(source, absl::StrCat("offset 8: a pipeline bundle of ",
                                        count, " stage program(s), needs at "
                                               "least 2"));
  std::vector<absl::Span<const uint8_t>> stages;
  size_t at = 12;
  for (uint64_t s = 0; s < count; ++s) {
    if (bytes.size() - at < 8)
      return absl::DataLossError(absl::StrCat(
          source, ": offset ", at, ": pipeline bundle truncated before stage ",
          s, "'s length (", count, " stages declared)"));
    uint64_t length = 0;
    for (int i = 0; i < 8; ++i)
      length |= uint64_t(bytes[at + i]) << (8 * i);
    at += 8;
    if (length > bytes.size() - at)
      return absl::DataLossError(absl::StrCat(
          source, ": offset ", at - 8, ": stage ", s, "'s program is ", length,
          " bytes, only ", bytes.size() - at, " remain (truncated bundle)"));
    stages.push_back(bytes.subspan(at, length));
    at += length;
  }
  if (at != bytes.size())
    return invalid(source, absl::StrCat("offset ", at, ": ", bytes.size() - at,
                                        " trailing bytes after the last stage "
                                        "program"));
  return stages;
}

namespace {

/// The metadata JSON of a serialized program (its header and the string
/// bounds checked; parseProgram checks the rest).
absl::StatusOr<nlohmann::json> metadataOf(absl::Span<const uint8_t> program,
                                          const std::string &source) {
  constexpr size_t kHeader = 32;
  if (program.size() < kHeader + 4 ||
      std::memcmp(program.data(), kProgramMagic, 8) != 0)
    return invalid(source, "not an llm program (bad magic or too short)");
  Reader r(program.subspan(kHeader), source, kHeader);
  std::string text = r.str();
  if (!r.ok())
    return absl::DataLossError(r.message());
  nlohmann::json meta = nlohmann::json::parse(text, nullptr, false);
  if (meta.is_discarded() || !meta.is_object())
    return invalid(source, "the program's metadata is not a JSON object");
  return meta;
}

/// meta[key] as an integer, `fallback` when absent; an error when it is
/// not an integer.
absl::StatusOr<int64_t> intField(const nlohmann::json &meta, const char *key,
                                 int64_t fallback, const std::string &where) {
  if (!meta.contains(key))
    return fallback;
  if (!meta[key].is_number_integer())
    return invalid(where, absl::StrCat("metadata \"", key,
                                       "\" is not an integer"));
  return meta[key].get<int64_t>();
}

} // namespace

absl::StatusOr<int> stageOfRank(absl::Span<const uint8_t> bytes,
                                const std::string &source, int rank, int world) {
  if (!isBundle(bytes)) {
    // One program: every rank runs it (the trainer checks the world; a
    // malformed program is parseProgram's to report). A pipeline plan
    // needs a bundle.
    if (auto meta = metadataOf(bytes, source); meta.ok()) {
      auto pp = intField(*meta, "pp", 1, source);
      if (!pp.ok())
        return pp.status();
      if (*pp != 1)
        return invalid(source, absl::StrCat("the program's metadata says pp ",
                                            *pp, " but the executable holds "
                                                 "one program, not a pipeline "
                                                 "bundle"));
    }
    return 0;
  }
  auto stages = splitBundle(bytes, source);
  if (!stages.ok())
    return stages.status();
  std::string where = absl::StrCat(source, ": stage 0");
  auto meta = metadataOf((*stages)[0], where);
  if (!meta.ok())
    return meta.status();
  int64_t v[4];
  const char *keys[4] = {"world", "tp", "dp", "pp"};
  for (int k = 0; k < 4; ++k) {
    auto x = intField(*meta, keys[k], 1, where);
    if (!x.ok())
      return x.status();
    if (*x < 1)
      return invalid(where, absl::StrCat("metadata \"", keys[k], "\" is ", *x));
    v[k] = *x;
  }
  int64_t compiled = v[0], tp = v[1], dp = v[2], pp = v[3];
  int64_t P = static_cast<int64_t>(stages->size());
  if (pp != P)
    return invalid(where, absl::StrCat("metadata says pp ", pp,
                                       " but the bundle holds ", P,
                                       " stage programs"));
  if (tp * dp * pp != compiled)
    return invalid(where, absl::StrCat("metadata's plan tp ", tp, " x dp ", dp,
                                       " x pp ", pp, " is not its world of ",
                                       compiled));
  if (world != compiled)
    return absl::FailedPreconditionError(absl::StrCat(
        "this executable was compiled for ", compiled,
        " rank(s) but is running in a world of ", world,
        "; recompile with --devices ", world));
  if (rank < 0 || rank >= compiled)
    return invalid(source, absl::StrCat("rank ", rank, " is outside the world of ",
                                        compiled));
  return static_cast<int>(rank / (tp * dp));
}

absl::StatusOr<ProgramDesc> parseEmbedded(absl::Span<const uint8_t> bytes,
                                          const std::string &source, int stage) {
  if (!isBundle(bytes)) {
    if (stage != 0)
      return invalid(source, absl::StrCat("stage ", stage, " requested, but the "
                                          "executable holds one program, not a "
                                          "pipeline bundle"));
    return parseProgram(bytes, source);
  }
  auto stages = splitBundle(bytes, source);
  if (!stages.ok())
    return stages.status();
  int64_t P = static_cast<int64_t>(stages->size());
  if (stage < 0 || stage >= P)
    return invalid(source, absl::StrCat("stage ", stage, " requested, but the "
                                        "pipeline bundle holds ", P,
                                        " stage programs"));
  std::string where = absl::StrCat(source, ": stage ", stage);
  auto program = parseProgram((*stages)[stage], where);
  if (!program.ok())
    return program.status();
  nlohmann::json meta = nlohmann::json::parse(program->metadata, nullptr, false);
  if (meta.is_discarded() || !meta.is_object())
    return invalid(where, "the program's metadata is not a JSON object");
  auto s = intField(meta, "stage", -1, where);
  if (!s.ok())
    return s.status();
  auto pp = intField(meta, "pp", -1, where);
  if (!pp.ok())
    return pp.status();
  if (*s != stage || *pp != P)
    return invalid(where, absl::StrCat(
        "the program's metadata says stage ",
        *s < 0 ? std::string("(none)") : std::to_string(*s), " of pp ",
        *pp < 0 ? std::string("(none)") : std::to_string(*pp),
        ", expected stage ", stage, " of pp ", P));
  return program;
}

absl::StatusOr<std::vector<ProgramDesc>>
parseEmbeddedAll(absl::Span<const uint8_t> bytes, const std::string &source) {
  size_t count = 1;
  if (isBundle(bytes)) {
    auto stages = splitBundle(bytes, source);
    if (!stages.ok())
      return stages.status();
    count = stages->size();
  }
  std::vector<ProgramDesc> programs;
  for (size_t s = 0; s < count; ++s) {
    auto p = parseEmbedded(bytes, source, static_cast<int>(s));
    if (!p.ok())
      return p.status();
    programs.push_back(std::move(*p));
  }
  return programs;
}

absl::StatusOr<ProgramDesc> loadEmbeddedProgram(const std::string &exePath,
                                                int stage) {
  auto bytes = readEmbedded(exePath);
  if (!bytes.ok())
    return bytes.status();
  return parseEmbedded(*bytes, exePath, stage);
}

std::vector<std::pair<uint64_t, uint64_t>> roleRanges(const ProgramDesc &p, BufferRole role,
                                                      uint64_t maxGap) {
  using Range = std::pair<uint64_t, uint64_t>;
  std::vector<Range> mine, all;
  for (const BufferDesc &b : p.buffers) {
    if (b.bytes == 0)
      continue;
    all.push_back({b.offset, b.offset + b.bytes});
    if (b.role == role)
      mine.push_back(all.back());
  }
  std::sort(mine.begin(), mine.end());
  // Whether some buffer has a byte in [lo, hi) (once a merge, at load).
  auto occupied = [&](uint64_t lo, uint64_t hi) {
    return std::any_of(all.begin(), all.end(),
                       [&](const Range &r) { return r.first < hi && lo < r.second; });
  };
  std::vector<Range> merged;
  for (const Range &r : mine) {
    if (!merged.empty() &&
        (r.first <= merged.back().second ||
         (r.first - merged.back().second <= maxGap && !occupied(merged.back().second, r.first)))) {
      merged.back().second = std::max(merged.back().second, r.second);
      continue;
    }
    merged.push_back(r);
  }
  return merged;
}

} // namespace llmrt
