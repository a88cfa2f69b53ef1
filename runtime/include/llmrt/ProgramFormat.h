//===- ProgramFormat.h - the serialized runtime program -----------*- C++ -*-===//
//
// The one interface between the compiler and the runtime (IREE style): a
// versioned binary program. The compiler writes it (lib/Target) with
// ProgramWriter below; the runtime reads and validates it (Program.h). This
// header is plain C++17 with no dependency, so both sides include it.
//
// Layout (little-endian):
//   header  : magic "LLMRTPG\0" (8 bytes), u32 version, u32 reserved (0),
//             u64 payload size, u64 FNV-1a-64 checksum of the payload
//   payload : str metadata (JSON: model config, stats, optimizer settings)
//             u64 arena bytes
//             u32 #buffers, each:
//               str name, u8 role (BufferRole), u8 element (ElemType),
//               u8 rank, i64 dims[rank], u64 arena offset, u64 bytes,
//               u8 init (InitKind), f64 init std,
//               i8 shard axis (-1: whole), i64 shard blocks, u8 global rank,
//               i64 global dims[global rank], u8 rank group, u64 rank
//               stride, u8 zero rank, i64 zero dims[zero rank],
//               (version 4) i64 shard valid (0: the global tensor is the
//               model's; else its length along the shard axis, the rest
//               padding)
//             u32 #functions, each:
//               str name, u32 #instructions, each:
//                 u16 opcode, u16 #operands, u32 operands[] (buffer ids),
//                 u16 #ints, i64 ints[], u16 #floats, f64 floats[]
//             (version 3) str gpu_ptx (the compiler's GPU kernels as PTX,
//               empty when there are none), u32 #entries, each: str name
//   str = u32 length + bytes. The runtime reads versions 2 to 4.
//
// Pipeline bundle (a plan with pp > 1: one program per stage, writeBundle):
//   magic "LLMPIPE\0" (8 bytes), u32 stage count P (>= 2), then P times:
//   u64 length + that many bytes of one program as above (stage 0 first).
//   Every stage's metadata holds "stage" (its index) and "pp" (P); program
//   0's also "world", "dp", "tp" and "pp", from which a rank picks its
//   stage: rank = tp_rank + tp dp_rank + tp dp pp_rank, stage = pp_rank =
//   rank / (tp dp) (Comm.h). An executable embeds either one program or
//   one bundle after its trailer (kExeTrailerMagic).
//
// Functions: "train" (forward, backward, optimizer) and "eval" (forward and
// loss). Buffers are arena views; params, optimizer state, inputs and outputs
// live in a persistent region, temporaries in a region the compiler packed
// from liveness. The arena size is the compile-time peak, every tensor at
// its f32 size; a runtime that stores some in 16 bits may pack the
// temporaries anew (ArenaPack.h).
//
//===----------------------------------------------------------------------===//
#ifndef LLMRT_PROGRAMFORMAT_H
#define LLMRT_PROGRAMFORMAT_H

#include <cstdint>
#include <algorithm>
#include <climits>
#include <cstring>
#include <string>
#include <vector>

namespace llmrt {

inline constexpr char kProgramMagic[8] = {'L', 'L', 'M', 'R', 'T', 'P', 'G', '\0'};
inline constexpr uint32_t kProgramVersion = 4;
inline constexpr uint32_t kOldestProgramVersion = 2;
inline constexpr uint64_t kArenaAlignment = 64;

/// The magic of a pipeline bundle (the layout above).
inline constexpr char kBundleMagic[8] = {'L', 'L', 'M', 'P', 'I', 'P', 'E', '\0'};

/// Trailer appended to an executable that embeds a program:
/// [program bytes][u64 program offset][u64 program size]["LLMRTEXE"].
inline constexpr char kExeTrailerMagic[8] = {'L', 'L', 'M', 'R', 'T', 'E', 'X', 'E'};

enum class BufferRole : uint8_t {
  Param = 0,  ///< a model parameter (name: Hugging Face name)
  AdamM = 1,  ///< AdamW first moment of the parameter `name`
  AdamV = 2,  ///< AdamW second moment of the parameter `name`
  Input = 3,  ///< tokens, targets, lr, step, weight_decay, grad_clip
  Output = 4, ///< loss, grad_norm, eval_loss
  Temp = 5,   ///< an intermediate of one function
};

enum class ElemType : uint8_t { F32 = 0, BF16 = 1, F16 = 2, I32 = 3, I64 = 4 };

inline int elemBytes(ElemType t) {
  switch (t) {
  case ElemType::F32: return 4;
  case ElemType::BF16: return 2;
  case ElemType::F16: return 2;
  case ElemType::I32: return 4;
  case ElemType::I64: return 8;
  }
  return 0;
}

/// Default initialization of a parameter (GPT-2's scheme, chosen by the
/// importer): normal(0, std), zeros or ones.
enum class InitKind : uint8_t { None = 0, Normal = 1, Zeros = 2, Ones = 3 };

/// Instructions. Operands are buffer ids; the operand, int and float lists
/// of each opcode are given as [operands] {ints} (floats), and every kernel is
/// the function of the same name in CpuKernels.h.
enum class Opcode : uint16_t {
  EmbeddingFwd = 1,         ///< [ids, table, out] {n, C}
  EmbeddingBwd = 2,         ///< [ids, dout, dtable] {n, V, C}
  PositionEmbeddingFwd = 3, ///< [table, out] {S, C}
  PositionEmbeddingBwd = 4, ///< [dout, dtable] {S, P, C}
  LayerNormFwd = 5,         ///< [x, w, b, y] {rows, C} (eps)
  LayerNormBwd = 6,         ///< [x, w, dy, dx, dw, db] {rows, C} (eps)
  RMSNormFwd = 7,           ///< [x, w, y] {rows, C} (eps)
  RMSNormBwd = 8,           ///< [x, w, dy, dx, dw] {rows, C} (eps)
  LinearFwd = 9,            ///< [x, w, y] or [x, w, bias, y] {rows, in, out, transW}
  LinearBwdWeight = 10,     ///< [x, dy, dw] {rows, in, out, transW}
  SumRows = 11,             ///< [dy, db] {rows, C}
  CopyColumns = 12,         ///< [src, dst] {srcCols, srcOff, dstCols, dstOff, width, rows}
  Rope = 13,                ///< [x, y] {B, S, H, D, inverse} (theta)
  /// [q, k, v, out] or [q, k, v, out, lse] {B, S, Hq, Hkv, D, causal}
  /// (scale); lse [B, Hq, S]: each row's log-sum-exp, for the backward.
  /// Six more ints place q, k, v in wider rows (attentionLayout).
  AttentionFwd = 14,
  /// [q, k, v, dout, dq, dk, dv] or [q, k, v, dout, out, lse, dq, dk, dv]
  /// (the forward's output and log-sum-exp) {B, S, Hq, Hkv, D, causal} (scale)
  /// Twelve more ints place q, k, v, dq, dk, dv (attentionLayout).
  AttentionBwd = 15,
  GeluFwd = 16,             ///< [x, y] {n}
  GeluBwd = 17,             ///< [x, dy, dx] {n}
  SiluFwd = 18,             ///< [x, y] {n}
  SiluBwd = 19,             ///< [x, dy, dx] {n}
  Add = 20,                 ///< [a, b, y] {n, nb}
  Mul = 21,                 ///< [a, b, y] {n, nb}
  CrossEntropyFwd = 22,     ///< [logits, targets, loss] {rows, V}
  CrossEntropyBwd = 23,     ///< [logits, targets, dlogits] {rows, V}
  GlobalNorm = 24,          ///< [out, g0, g1, ...] {split mask per g (1 dp, 2 tp), or none}: out = sqrt(sum of squares), summed over the pipeline's stages too
  ClipScale = 25,           ///< [norm, max_norm, out] {}
  AdamW = 26,               ///< [p, g, m, v, lr, step, wd, scale] {n, decay} (beta1, beta2, eps)
  // Collectives' groups are Comm.h's Group: 1 dp, 2 tp, 3 pp, 4 tied (the
  // first and last stage's ranks of the same tp and dp index).
  AllReduce = 27,           ///< [x, y] {n, group, reduction}: y = reduce(x) over the group
  AllGather = 28,           ///< [x, y] {n, group}: y = every rank's x (x is this rank's part of y)
  ReduceScatter = 29,       ///< [x, y] {n, group, reduction}: y = this rank's n-element share of reduce(x)
  // Vocabulary parallel (Megatron): the table / logits hold this rank's
  // V_local rows of the vocabulary, [rank V_local, (rank + 1) V_local).
  VocabEmbeddingFwd = 30,     ///< [ids, table, out] {n, C, V_local, group}: rows outside are zero
  VocabEmbeddingBwd = 31,     ///< [ids, dout, dtable] {n, V_local, C, group}
  /// {rows, V_local, group, V}: V the model's vocabulary (0: V_local x the
  /// group's size); columns at or past it on the last ranks are padding,
  /// outside the softmax.
  VocabCrossEntropyFwd = 32,  ///< [logits, targets, loss] {rows, V_local, group, V}
  VocabCrossEntropyBwd = 33,  ///< [logits, targets, dlogits] {rows, V_local, group, V}
  /// A fusion group of elementwise ops (llm-fuse-elementwise): [inputs...,
  /// outputs...] {the FusedProgram encoding below}. On a GPU it runs the
  /// compiler's kernel `gpu_entries[kernel]`; elsewhere the runtime
  /// interprets the micro-ops.
  FusedElementwise = 34,
  /// A gradient bucket's all-reduce, non-blocking: started when the
  /// bucket's last gradient is final, waited for before the first read of
  /// any of them (llm-lower-to-rt's bucket-bytes).
  AllReduceStart = 35, ///< [bucket] {n, group, reduction, slot}
  AllReduceWait = 36,  ///< [bucket] {n, group, reduction, slot}
  /// A ZeRO-3 parameter gather, non-blocking: started one gather ahead
  /// (while the previous parameter is in use), waited for where it is
  /// needed. x is this rank's part of y, as for all_gather.
  AllGatherStart = 37, ///< [x, y] {n, group, slot}
  AllGatherWait = 38,  ///< [y] {n, group, slot}
  Scale = 39,          ///< [x, y] {n} (factor): y = x * factor
  /// Pipeline point-to-point (group pp): `peer` is the other stage's
  /// offset from this one (+1 the next stage, -1 the previous; a stage
  /// outside the pipeline is an error), `tag` pairs a send with its recv
  /// (in order among equal tags). A send is non-blocking: x is copied out
  /// before it returns, and every send completes by the end of the
  /// function's run. A recv blocks until y holds the n values.
  Send = 40, ///< [x] {n, peer, tag}
  Recv = 41, ///< [y] {n, peer, tag}
  /// No computation: the instructions up to the next phase are the forward
  /// (kind 0), backward (1) or recomputation (2) of micro-batch `microbatch`
  /// through the rank's model chunk `chunk`; --trace draws each as a span.
  Phase = 42, ///< [] {kind, microbatch, chunk}
  /// A recv posted early: started (non-blocking) an action ahead of its
  /// use, waited for right before it; `slot` as for the collectives.
  RecvStart = 43, ///< [y] {n, peer, tag, slot}
  RecvWait = 44,  ///< [y] {n, peer, tag, slot}
  /// A fusion group that ends in a row normalization (llm-fuse-elementwise):
  /// an elementwise prologue over rows x C elements, then layer or RMS norm
  /// of one of its values, row by row, into y. [inputs..., outputs..., y]
  /// {the FusedNormProgram encoding below} (eps). Outputs share no bytes
  /// with each other, and with an input only its very bytes where the group
  /// stores x (the GPU kernel's loop form reads a row again after it stores
  /// it, x from its output).
  FusedNorm = 45,
};

/// Send, recv, recv_start, recv_wait: the pipeline's point-to-point
/// instructions ({n, peer, tag, ...}).
inline bool isPointToPoint(uint16_t opcode) {
  switch (static_cast<Opcode>(opcode)) {
  case Opcode::Send:
  case Opcode::Recv:
  case Opcode::RecvStart:
  case Opcode::RecvWait:
    return true;
  default:
    return false;
  }
}

/// The largest tag of send and recv (MPI guarantees at least 32767).
inline constexpr int64_t kMaxP2PTag = 32767;

/// The elementwise operations a fusion group is made of, with the
/// semantics of the kernels of the same names (CpuKernels.h).
enum class MicroOp : int64_t {
  Add = 1,     ///< a + b
  Mul = 2,     ///< a * b
  GeluFwd = 3, ///< gelu(a)
  GeluBwd = 4, ///< gelu'(a) * b (a: x, b: dy)
  SiluFwd = 5, ///< silu(a)
  SiluBwd = 6, ///< silu'(a) * b
};

/// A fusion group as its instruction's ints:
///   n, kernel (index into gpu_entries, -1: none), I (inputs), O (outputs),
///   nb[I] (input i is read at index e % nb[i]: nb = n, or a broadcast
///   operand that repeats), M (micro-ops), M x {op, a, b} (operands are
///   value ids: 0..I-1 the inputs, I + k the result of micro-op k; b = -1
///   for a unary op), O x {value id stored to output o}.
/// Operands of the instruction: the I inputs, then the O outputs.
struct FusedProgram {
  int64_t n = 0, kernel = -1;
  std::vector<int64_t> nb;
  struct Op {
    MicroOp op;
    int64_t a, b;
  };
  std::vector<Op> ops;
  std::vector<int64_t> outputs;

  int64_t numInputs() const { return static_cast<int64_t>(nb.size()); }

  std::vector<int64_t> encode() const {
    std::vector<int64_t> v{n, kernel, numInputs(),
                           static_cast<int64_t>(outputs.size())};
    v.insert(v.end(), nb.begin(), nb.end());
    v.push_back(static_cast<int64_t>(ops.size()));
    for (const Op &o : ops) {
      v.push_back(static_cast<int64_t>(o.op));
      v.push_back(o.a);
      v.push_back(o.b);
    }
    v.insert(v.end(), outputs.begin(), outputs.end());
    return v;
  }

  /// Decodes and validates `v` for an instruction with `operands`
  /// operands; returns "" or what is wrong.
  std::string decode(const std::vector<int64_t> &v, size_t operands) {
    auto at = [&](size_t i) { return i < v.size() ? v[i] : INT64_MIN; };
    n = at(0), kernel = at(1);
    int64_t I = at(2), O = at(3);
    if (n <= 0 || I < 1 || O < 1 || I > 64 || O > 64 ||
        static_cast<size_t>(I + O) != operands)
      return "bad header (n, inputs, outputs)";
    nb.assign(v.begin() + std::min<size_t>(4, v.size()),
              v.begin() + std::min<size_t>(4 + I, v.size()));
    if (static_cast<int64_t>(nb.size()) != I)
      return "truncated";
    for (int64_t b : nb)
      if (b <= 0 || n % b != 0)
        return "a broadcast size does not divide n";
    int64_t M = at(4 + I);
    if (M < 1 || M > 256 || v.size() != static_cast<size_t>(5 + I + 3 * M + O))
      return "bad micro-op count";
    ops.clear();
    for (int64_t k = 0; k < M; ++k) {
      int64_t code = v[5 + I + 3 * k], a = v[6 + I + 3 * k], b = v[7 + I + 3 * k];
      bool unary = code == int64_t(MicroOp::GeluFwd) || code == int64_t(MicroOp::SiluFwd);
      if (code < 1 || code > 6 || a < 0 || a >= I + k ||
          (unary ? b != -1 : (b < 0 || b >= I + k)))
        return "bad micro-op";
      ops.push_back({static_cast<MicroOp>(code), a, b});
    }
    outputs.assign(v.end() - O, v.end());
    for (int64_t o : outputs)
      if (o < 0 || o >= I + M)
        return "bad output value";
    return "";
  }
};

/// The rows a block of a fused_norm's GPU kernel normalizes (a warp each).
inline constexpr int64_t kFusedNormWarps = 4;

/// A fused_norm instruction's ints: {kind (1 layer norm, 2 RMS norm), rows,
/// C, x (the value id normalized), w, b (input indices of the weight and,
/// for layer norm, the bias: read at column c, nb = C; b = -1 for RMS), then
/// the prologue's FusedProgram (n = rows C)}. Operands: the prologue's
/// inputs and outputs, then y. Per row: the prologue's values at each of
/// its C elements, its outputs stored, then
///   layer: y = (x - mean) rstd w + b, rstd = 1 / sqrt(var + eps)
///   RMS:   y = x rstd w,              rstd = 1 / sqrt(mean(x^2) + eps)
/// (var the biased variance), as layer_norm_fwd and rms_norm_fwd of x.
struct FusedNormProgram {
  enum Kind : int64_t { Layer = 1, RMS = 2 };
  int64_t kind = 0, rows = 0, C = 0, x = -1, w = -1, b = -1;
  FusedProgram pro;

  std::vector<int64_t> encode() const {
    std::vector<int64_t> v{kind, rows, C, x, w, b};
    std::vector<int64_t> p = pro.encode();
    v.insert(v.end(), p.begin(), p.end());
    return v;
  }

  /// Decodes and validates `v` for an instruction with `operands`
  /// operands; returns "" or what is wrong.
  std::string decode(const std::vector<int64_t> &v, size_t operands) {
    if (v.size() < 6)
      return "truncated: " + std::to_string(v.size()) + " ints";
    if (operands < 3)
      return std::to_string(operands) + " operands (at least an input, an output and y)";
    kind = v[0], rows = v[1], C = v[2], x = v[3], w = v[4], b = v[5];
    if (kind != Layer && kind != RMS)
      return "bad kind (1 layer norm, 2 RMS norm)";
    // The GPU kernel's grid: a block per kFusedNormWarps rows, block
    // indices of 32 bits; rows x C (with its 4-byte elements) within 2^42
    // bytes, far past any device, and no overflow in 64 bits.
    if (rows <= 0 || C <= 0 || rows >= (int64_t(1) << 31) || rows > (int64_t(1) << 40) / C)
      return "rows (" + std::to_string(rows) + ") x C (" + std::to_string(C) +
             ") out of range (rows below 2^31, rows x C at most 2^40)";
    if (std::string why =
            pro.decode(std::vector<int64_t>(v.begin() + 6, v.end()), operands - 1);
        !why.empty())
      return "prologue: " + why;
    if (pro.n != rows * C)
      return "the prologue's n is not rows x C";
    const int64_t I = pro.numInputs(), M = static_cast<int64_t>(pro.ops.size());
    if (x < 0 || x >= I + M || (x < I && pro.nb[x] != pro.n))
      return "bad normalized value " + std::to_string(x) + " (of " + std::to_string(I + M) +
             " values, a full-size one)";
    auto column = [&](int64_t i) { return i >= 0 && i < I && pro.nb[i] == C; };
    if (!column(w))
      return "the weight is not a C-element input";
    if (kind == Layer ? !column(b) : b != -1)
      return kind == Layer ? "the bias is not a C-element input"
                           : "an RMS norm has no bias";
    return "";
  }
};

/// Whether `opcode` is a fusion group's (fused_elementwise or fused_norm).
inline bool isFusedGroup(uint16_t opcode) {
  return opcode == static_cast<uint16_t>(Opcode::FusedElementwise) ||
         opcode == static_cast<uint16_t>(Opcode::FusedNorm);
}

/// A fusion group's ints decoded for an instruction of `operands` operands:
/// into `fn` for fused_norm, into `fn.pro` (the group either way) for
/// fused_elementwise. "" or what is wrong.
inline std::string decodeFusedGroup(uint16_t opcode, const std::vector<int64_t> &ints,
                                    size_t operands, FusedNormProgram &fn) {
  if (opcode == static_cast<uint16_t>(Opcode::FusedNorm))
    return fn.decode(ints, operands);
  fn.kind = 0;
  return fn.pro.decode(ints, operands);
}

struct OpcodeInfo {
  Opcode opcode;
  const char *name;
  int minOperands, maxOperands; ///< maxOperands < 0: unbounded
  int ints, floats;             ///< ints < 0: any number
};

/// The table both sides validate against.
inline const OpcodeInfo *opcodeInfo(uint16_t op) {
  static const OpcodeInfo table[] = {
      {Opcode::EmbeddingFwd, "embedding_fwd", 3, 3, 2, 0},
      {Opcode::EmbeddingBwd, "embedding_bwd", 3, 3, 3, 0},
      {Opcode::PositionEmbeddingFwd, "position_embedding_fwd", 2, 2, 2, 0},
      {Opcode::PositionEmbeddingBwd, "position_embedding_bwd", 2, 2, 3, 0},
      {Opcode::LayerNormFwd, "layer_norm_fwd", 4, 4, 2, 1},
      {Opcode::LayerNormBwd, "layer_norm_bwd", 6, 6, 2, 1},
      {Opcode::RMSNormFwd, "rms_norm_fwd", 3, 3, 2, 1},
      {Opcode::RMSNormBwd, "rms_norm_bwd", 5, 5, 2, 1},
      {Opcode::LinearFwd, "linear_fwd", 3, 4, 4, 0},
      {Opcode::LinearBwdWeight, "linear_bwd_weight", 3, 3, 4, 0},
      {Opcode::SumRows, "sum_rows", 2, 2, 2, 0},
      {Opcode::CopyColumns, "copy_columns", 2, 2, 6, 0},
      {Opcode::Rope, "rope", 2, 2, 5, 1},
      {Opcode::AttentionFwd, "attention_fwd", 4, 5, -1, 1}, // 6 or 12
      {Opcode::AttentionBwd, "attention_bwd", 7, 9, -1, 1}, // 6 or 18
      {Opcode::GeluFwd, "gelu_fwd", 2, 2, 1, 0},
      {Opcode::GeluBwd, "gelu_bwd", 3, 3, 1, 0},
      {Opcode::SiluFwd, "silu_fwd", 2, 2, 1, 0},
      {Opcode::SiluBwd, "silu_bwd", 3, 3, 1, 0},
      {Opcode::Add, "add", 3, 3, 2, 0},
      {Opcode::Mul, "mul", 3, 3, 2, 0},
      {Opcode::CrossEntropyFwd, "cross_entropy_fwd", 3, 3, 2, 0},
      {Opcode::CrossEntropyBwd, "cross_entropy_bwd", 3, 3, 2, 0},
      {Opcode::GlobalNorm, "global_norm", 2, -1, -1, 0},
      {Opcode::ClipScale, "clip_scale", 3, 3, 0, 0},
      {Opcode::AdamW, "adamw", 8, 8, 2, 3},
      {Opcode::AllReduce, "all_reduce", 2, 2, 3, 0},
      {Opcode::AllGather, "all_gather", 2, 2, 2, 0},
      {Opcode::ReduceScatter, "reduce_scatter", 2, 2, 3, 0},
      {Opcode::VocabEmbeddingFwd, "vocab_embedding_fwd", 3, 3, 4, 0},
      {Opcode::VocabEmbeddingBwd, "vocab_embedding_bwd", 3, 3, 4, 0},
      {Opcode::VocabCrossEntropyFwd, "vocab_cross_entropy_fwd", 3, 3, 4, 0},
      {Opcode::VocabCrossEntropyBwd, "vocab_cross_entropy_bwd", 3, 3, 4, 0},
      {Opcode::FusedElementwise, "fused_elementwise", 2, -1, -1, 0},
      {Opcode::AllReduceStart, "all_reduce_start", 1, 1, 4, 0},
      {Opcode::AllReduceWait, "all_reduce_wait", 1, 1, 4, 0},
      {Opcode::AllGatherStart, "all_gather_start", 2, 2, 3, 0},
      {Opcode::AllGatherWait, "all_gather_wait", 1, 1, 3, 0},
      {Opcode::Scale, "scale", 2, 2, 1, 1},
      {Opcode::Send, "send", 1, 1, 3, 0},
      {Opcode::Recv, "recv", 1, 1, 3, 0},
      {Opcode::Phase, "phase", 0, 0, 3, 0},
      {Opcode::RecvStart, "recv_start", 1, 1, 4, 0},
      {Opcode::RecvWait, "recv_wait", 1, 1, 4, 0},
      {Opcode::FusedNorm, "fused_norm", 3, -1, -1, 1},
  };
  for (const OpcodeInfo &info : table)
    if (static_cast<uint16_t>(info.opcode) == op)
      return &info;
  return nullptr;
}

inline const OpcodeInfo *opcodeInfoByName(const std::string &name) {
  for (uint16_t op = 1; op < 64; ++op)
    if (const OpcodeInfo *info = opcodeInfo(op))
      if (name == info->name)
        return info;
  return nullptr;
}

/// FNV-1a, 64 bit.
inline uint64_t fnv1a64(const uint8_t *data, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= data[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

struct BufferDesc {
  std::string name;
  BufferRole role = BufferRole::Temp;
  ElemType elem = ElemType::F32;
  std::vector<int64_t> dims;
  uint64_t offset = 0, bytes = 0;
  InitKind init = InitKind::None;
  double initStd = 0;
  /// Tensor-parallel shard: along `shardAxis` the global tensor (globalDims)
  /// is `shardBlocks` equal blocks, each cut into tp parts; this rank holds
  /// part tp_rank of each. shardAxis < 0: the whole tensor.
  int shardAxis = -1;
  int64_t shardBlocks = 1;
  std::vector<int64_t> globalDims;
  /// A rank-dependent view: the address adds rankStride bytes times the
  /// rank's index in rankGroup (0: none, 1: dp, 2: tp).
  uint8_t rankGroup = 0;
  uint64_t rankStride = 0;
  /// A ZeRO share: this buffer is 1/dp (flattened) of a tensor of zeroDims.
  std::vector<int64_t> zeroDims;
  /// Padding (Megatron's vocabulary padding, when tp x the compiler's
  /// vocab-align does not divide the vocabulary; with one rank too): > 0,
  /// the model's tensor has this many entries along shardAxis and
  /// globalDims pads it with zeros to a multiple of tp (one block); 0,
  /// globalDims is the model's tensor.
  int64_t shardValid = 0;
};

/// The model's shape of a sharded buffer's tensor: globalDims without the
/// padding (the shape outside the runtime: initialization, --init,
/// checkpoints).
inline std::vector<int64_t> modelDims(const BufferDesc &b) {
  std::vector<int64_t> d = b.globalDims;
  if (b.shardValid > 0 && b.shardAxis >= 0)
    d[b.shardAxis] = b.shardValid;
  return d;
}

struct Instruction {
  uint16_t opcode = 0;
  std::vector<uint32_t> operands;
  std::vector<int64_t> ints;
  std::vector<double> floats;
};

/// Where an attention instruction's q, k, v (and backward dq, dk, dv: index
/// 3, 4, 5) lie in their buffers: row r (of B x S) of head h of tensor t
/// starts at element r * ld[t] + off[t] + h * D. With only {B, S, Hq, Hkv,
/// D, causal} each is dense (ld = heads x D, off = 0); the compiler adds
/// (ld, off) per tensor (6 ints forward, 12 backward) where a tensor is a
/// column slice of a wider one: the fused q/k/v projection's output read in
/// place, its gradient written in place, no column copies between.
struct AttentionLayout {
  int64_t ld[6] = {0, 0, 0, 0, 0, 0}, off[6] = {0, 0, 0, 0, 0, 0};
  /// The columns each tensor's rows hold: Hq x D (q, dq) or Hkv x D.
  int64_t width[6] = {0, 0, 0, 0, 0, 0};
  bool strided = false; ///< some tensor is not dense
  bool valid = true;    ///< the ints' count fits the opcode
};
inline AttentionLayout attentionLayout(const Instruction &inst) {
  AttentionLayout l;
  const auto &n = inst.ints;
  const bool fwd = inst.opcode == static_cast<uint16_t>(Opcode::AttentionFwd);
  const size_t extra = fwd ? 6 : 12;
  if (n.size() != 6 && n.size() != 6 + extra) {
    l.valid = false;
    return l;
  }
  for (int t = 0; t < 6; ++t) {
    l.width[t] = (t % 3 == 0 ? n[2] : n[3]) * n[4];
    l.ld[t] = l.width[t];
  }
  if (n.size() > 6)
    for (size_t t = 0; t < extra / 2; ++t) {
      l.ld[t] = n[6 + 2 * t];
      l.off[t] = n[7 + 2 * t];
      l.strided |= l.ld[t] != l.width[t] || l.off[t] != 0;
    }
  return l;
}

struct FunctionDesc {
  std::string name;
  std::vector<Instruction> instructions;
};

struct ProgramDesc {
  std::string metadata; ///< JSON
  uint64_t arenaBytes = 0;
  std::vector<BufferDesc> buffers;
  std::vector<FunctionDesc> functions;
  /// The compiler's GPU kernels (one PTX module) and their entry names.
  std::string gpuPtx;
  std::vector<std::string> gpuEntries;
};

/// Serializes `program` (header + payload), in the layout of `version`
/// (older ones for the tests that the runtime still reads them: they drop
/// what their layout lacks).
inline std::vector<uint8_t> writeProgram(const ProgramDesc &program,
                                         uint32_t version = kProgramVersion) {
  std::vector<uint8_t> p;
  auto raw = [&](const void *data, size_t n) {
    const uint8_t *b = static_cast<const uint8_t *>(data);
    size_t at = p.size();
    p.resize(at + n);
    if (n)
      std::memcpy(p.data() + at, b, n);
  };
  auto u8 = [&](uint8_t v) { p.push_back(v); };
  auto le = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
      p.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  auto f64 = [&](double d) {
    uint64_t u;
    std::memcpy(&u, &d, 8);
    le(u, 8);
  };
  auto str = [&](const std::string &s) {
    le(s.size(), 4);
    raw(s.data(), s.size());
  };
  str(program.metadata);
  le(program.arenaBytes, 8);
  le(program.buffers.size(), 4);
  for (const BufferDesc &b : program.buffers) {
    str(b.name);
    u8(static_cast<uint8_t>(b.role));
    u8(static_cast<uint8_t>(b.elem));
    u8(static_cast<uint8_t>(b.dims.size()));
    for (int64_t d : b.dims)
      le(static_cast<uint64_t>(d), 8);
    le(b.offset, 8);
    le(b.bytes, 8);
    u8(static_cast<uint8_t>(b.init));
    f64(b.initStd);
    u8(static_cast<uint8_t>(static_cast<int8_t>(b.shardAxis)));
    le(static_cast<uint64_t>(b.shardBlocks), 8);
    u8(static_cast<uint8_t>(b.globalDims.size()));
    for (int64_t d : b.globalDims)
      le(static_cast<uint64_t>(d), 8);
    u8(b.rankGroup);
    le(b.rankStride, 8);
    u8(static_cast<uint8_t>(b.zeroDims.size()));
    for (int64_t d : b.zeroDims)
      le(static_cast<uint64_t>(d), 8);
    if (version >= 4)
      le(static_cast<uint64_t>(b.shardValid), 8);
  }
  le(program.functions.size(), 4);
  for (const FunctionDesc &f : program.functions) {
    str(f.name);
    le(f.instructions.size(), 4);
    for (const Instruction &inst : f.instructions) {
      le(inst.opcode, 2);
      le(inst.operands.size(), 2);
      // Before version 4 the vocabulary-parallel loss had no padding int.
      size_t ints = inst.ints.size();
      if (version < 4 && ints == 4 &&
          (inst.opcode == static_cast<uint16_t>(Opcode::VocabCrossEntropyFwd) ||
           inst.opcode == static_cast<uint16_t>(Opcode::VocabCrossEntropyBwd)))
        ints = 3;
      for (uint32_t o : inst.operands)
        le(o, 4);
      le(ints, 2);
      for (size_t i = 0; i < ints; ++i)
        le(static_cast<uint64_t>(inst.ints[i]), 8);
      le(inst.floats.size(), 2);
      for (double d : inst.floats)
        f64(d);
    }
  }
  if (version >= 3) {
    str(program.gpuPtx);
    le(program.gpuEntries.size(), 4);
    for (const std::string &e : program.gpuEntries)
      str(e);
  }
  std::vector<uint8_t> out(kProgramMagic, kProgramMagic + 8);
  auto put = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
      out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put(version, 4);
  put(0, 4);
  put(p.size(), 8);
  put(fnv1a64(p.data(), p.size()), 8);
  out.insert(out.end(), p.begin(), p.end());
  return out;
}

/// Serializes a pipeline bundle of the serialized stage programs
/// `stages` (writeProgram's output, stage 0 first; at least two).
inline std::vector<uint8_t> writeBundle(const std::vector<std::vector<uint8_t>> &stages) {
  std::vector<uint8_t> out(kBundleMagic, kBundleMagic + 8);
  auto put = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i)
      out.push_back(static_cast<uint8_t>(v >> (8 * i)));
  };
  put(stages.size(), 4);
  for (const std::vector<uint8_t> &s : stages) {
    put(s.size(), 8);
    out.insert(out.end(), s.begin(), s.end());
  }
  return out;
}

} // namespace llmrt

#endif // LLMRT_PROGRAMFORMAT_H
