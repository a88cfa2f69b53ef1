//===- Store16.cpp - 16-bit storage, fusions, side stream: GPU plans ------===//
#include "llmrt/Store16.h"

#include "llmrt/Comm.h"
#include "llmrt/Executor.h"

#include <algorithm>

namespace llmrt {

uint32_t store16Writers(const Instruction &inst, bool wholeLoss, bool activations,
                        bool attention) {
  const auto n = static_cast<uint32_t>(inst.operands.size());
  auto slot = [](uint32_t k) { return 1u << k; };
  switch (static_cast<Opcode>(inst.opcode)) {
  case Opcode::AttentionFwd: // [q, k, v, out] or [q, k, v, out, lse]
    return activations && attention ? slot(3) : 0;
  case Opcode::AttentionBwd: // [.., dq, dk, dv]
    return activations && attention && n >= 7 ? slot(n - 1) | slot(n - 2) | slot(n - 3)
                                              : 0;
  case Opcode::LinearFwd: // [x, w, y] or [x, w, bias, y]
    return activations && n ? slot(n - 1) : 0;
  case Opcode::LayerNormFwd: return slot(3);    // [x, w, b, y]
  case Opcode::RMSNormFwd: return slot(2);      // [x, w, y]
  case Opcode::GeluFwd:
  case Opcode::SiluFwd: return slot(1);         // [x, y]
  case Opcode::GeluBwd:
  case Opcode::SiluBwd: return slot(2);         // [x, dy, dx]
  case Opcode::CrossEntropyBwd: return slot(2); // [logits, targets, dlogits]
  case Opcode::VocabCrossEntropyBwd: return wholeLoss ? slot(2) : 0;
  case Opcode::FusedNorm: return n >= 1 && n <= 32 ? slot(n - 1) : 0; // [.., y]
  default: return 0;
  }
}

namespace {
/// A fused_norm's inputs (its first I operands) read element by element
/// (not broadcast), as a mask; 0 if it does not decode.
uint32_t fusedNormRowInputs(const Instruction &inst) {
  FusedNormProgram fn;
  if (!fn.decode(inst.ints, inst.operands.size()).empty())
    return 0;
  uint32_t mask = 0;
  for (size_t i = 0; i < fn.pro.nb.size() && i < 32; ++i)
    if (fn.pro.nb[i] == fn.pro.n)
      mask |= 1u << i;
  return mask;
}
} // namespace

bool store16Reader(const Instruction &inst, size_t slot, bool wholeLoss,
                   bool activations, bool attention) {
  switch (static_cast<Opcode>(inst.opcode)) {
  case Opcode::LinearFwd: // [x, w, y] or [x, w, bias, y]
  case Opcode::LinearBwdWeight: // [x, dy, dw]
    return slot < 2;
  case Opcode::SumRows: // [dy, db]
    return slot == 0;
  default:
    break;
  }
  if (!activations)
    return false;
  switch (static_cast<Opcode>(inst.opcode)) {
  case Opcode::CopyColumns:  // [src, dst]
  case Opcode::GeluFwd:      // [x, y]
  case Opcode::SiluFwd:
  case Opcode::CrossEntropyFwd: // [logits, targets, loss]
  case Opcode::CrossEntropyBwd: // [logits, targets, dlogits]
    return slot == 0;
  case Opcode::GeluBwd: // [x, dy, dx]
  case Opcode::SiluBwd:
    return slot < 2;
  case Opcode::Add: // [a, b, y] {n, nb}: without broadcast
    return slot < 2 && inst.ints.size() == 2 && inst.ints[0] == inst.ints[1];
  case Opcode::LayerNormBwd: // [x, w, dy, dx, dw, db]
    return slot == 2;
  case Opcode::VocabCrossEntropyFwd:
  case Opcode::VocabCrossEntropyBwd:
    return slot == 0 && wholeLoss;
  case Opcode::AttentionFwd: // q, k, v
    return attention && slot < 3;
  case Opcode::AttentionBwd: // q, k, v, dout (and out, with the lse)
    return attention && (slot < 4 || (slot == 4 && inst.operands.size() == 9));
  case Opcode::FusedNorm: // its inputs but the broadcast ones (w, b)
    return slot < 32 && (fusedNormRowInputs(inst) >> slot & 1u);
  default:
    return false;
  }
}

uint32_t overwrittenSlots(const Instruction &inst, const ProgramDesc &p) {
  const uint32_t n = static_cast<uint32_t>(inst.operands.size());
  auto slot = [](uint32_t k) { return 1u << k; };
  switch (static_cast<Opcode>(inst.opcode)) {
  case Opcode::AttentionBwd: { // dq, dk, dv
    if (n < 7 || n > 9)
      return 0;
    const AttentionLayout l = attentionLayout(inst);
    if (!l.valid)
      return 0;
    // Column slices overwrite their buffer where the slices naming it
    // tile its rows (the q/k/v gradient written in place): [0, ld) and
    // exactly B S rows.
    uint32_t mask = 0;
    for (uint32_t t = 3; t < 6; ++t) {
      const uint32_t b = inst.operands[n - 6 + t];
      std::vector<std::pair<int64_t, int64_t>> spans;
      bool sameLd = true;
      for (uint32_t u = 3; u < 6; ++u)
        if (inst.operands[n - 6 + u] == b) {
          spans.push_back({l.off[u], l.off[u] + l.width[u]});
          sameLd &= l.ld[u] == l.ld[t];
        }
      std::sort(spans.begin(), spans.end());
      int64_t at = 0;
      for (auto [s0, s1] : spans)
        at = s0 == at ? s1 : -1;
      const int64_t rows = inst.ints[0] * inst.ints[1];
      if (sameLd && at == l.ld[t] && b < p.buffers.size() &&
          static_cast<int64_t>(p.buffers[b].bytes) == rows * l.ld[t] * 4)
        mask |= slot(n - 6 + t);
    }
    return mask;
  }
  default:
    break;
  }
  switch (static_cast<Opcode>(inst.opcode)) {
  case Opcode::EmbeddingFwd:
  case Opcode::EmbeddingBwd:
  case Opcode::VocabEmbeddingFwd:
  case Opcode::VocabEmbeddingBwd:
  case Opcode::RMSNormFwd:
  case Opcode::GeluBwd:
  case Opcode::SiluBwd:
  case Opcode::Add:
  case Opcode::Mul:
  case Opcode::CrossEntropyFwd:
  case Opcode::CrossEntropyBwd:
  case Opcode::VocabCrossEntropyFwd:
  case Opcode::VocabCrossEntropyBwd:
  case Opcode::LinearBwdWeight:
    return slot(2);
  case Opcode::PositionEmbeddingFwd:
  case Opcode::PositionEmbeddingBwd:
  case Opcode::SumRows:
  case Opcode::Rope:
  case Opcode::GeluFwd:
  case Opcode::SiluFwd:
  case Opcode::Scale:
    return slot(1);
  case Opcode::LayerNormFwd:
    return slot(3);
  case Opcode::LayerNormBwd:
    return slot(3) | slot(4) | slot(5);
  case Opcode::RMSNormBwd:
    return slot(3) | slot(4);
  case Opcode::LinearFwd:
    return n ? slot(n - 1) : 0;
  case Opcode::FusedNorm: { // the prologue's outputs and y
    FusedNormProgram fn;
    if (!fn.decode(inst.ints, n).empty() || n > 32)
      return 0;
    const auto I = static_cast<uint32_t>(fn.pro.nb.size());
    return (n == 32 ? ~0u : (1u << n) - 1u) & ~((1u << I) - 1u);
  }
  case Opcode::AttentionFwd: // out (and lse)
    return n == 5 ? slot(3) | slot(4) : slot(3);
  default:
    return 0;
  }
}

namespace {
/// Bit k of an operand mask (0 past 32 operands: global_norm and fused
/// kernels may have more; their operands past the 32nd stay fp32, as a
/// read of a slot without a bit keeps its value fp32).
bool bit(uint32_t mask, size_t k) { return k < 32 && (mask >> k & 1u); }

bool isGemm(const Instruction &inst) {
  auto op = static_cast<Opcode>(inst.opcode);
  return op == Opcode::LinearFwd || op == Opcode::LinearBwdWeight;
}

/// Runs of consecutive copy_columns into one buffer whose column ranges
/// tile all of it (attention's dq, dk, dv into the qkv gradient): together
/// they overwrite it. Per instruction: 1 the first of such a run, 2 the
/// others, 0 none.
std::vector<int8_t> copyRuns(const ProgramDesc &p, const FunctionDesc &fn) {
  const auto &insts = fn.instructions;
  std::vector<int8_t> role(insts.size(), 0);
  auto isCopy = [&](size_t i) {
    return insts[i].opcode == static_cast<uint16_t>(Opcode::CopyColumns) &&
           insts[i].operands.size() == 2 && insts[i].ints.size() == 6 &&
           insts[i].operands[1] < p.buffers.size();
  };
  for (size_t i = 0; i < insts.size();) {
    if (!isCopy(i)) {
      ++i;
      continue;
    }
    // {srcCols, srcOff, dstCols, dstOff, width, rows}
    const uint32_t dst = insts[i].operands[1];
    const int64_t cols = insts[i].ints[2], rows = insts[i].ints[5];
    size_t j = i;
    std::vector<std::pair<int64_t, int64_t>> spans;
    while (j < insts.size() && isCopy(j) && insts[j].operands[1] == dst &&
           insts[j].ints[2] == cols && insts[j].ints[5] == rows) {
      spans.push_back({insts[j].ints[3], insts[j].ints[3] + insts[j].ints[4]});
      ++j;
    }
    std::sort(spans.begin(), spans.end());
    int64_t at = 0;
    for (auto [b, e] : spans)
      at = b == at && e > b ? e : -1;
    if (at == cols && rows * cols * 4 == static_cast<int64_t>(p.buffers[dst].bytes)) {
      role[i] = 1;
      for (size_t k = i + 1; k < j; ++k)
        role[k] = 2;
    }
    i = j;
  }
  return role;
}
} // namespace

Store16Plan planStore16(
    const ProgramDesc &p,
    const std::function<std::pair<uint64_t, uint64_t>(uint32_t)> &range,
    const std::function<bool(const Instruction &)> &wholeLoss, bool activations,
    const std::function<bool(const Instruction &)> &attention16) {
  const size_t nb = p.buffers.size();
  Store16Plan plan;
  plan.slots.resize(p.functions.size());
  for (size_t f = 0; f < p.functions.size(); ++f)
    plan.slots[f].assign(p.functions[f].instructions.size(), 0);
  // Buffers some function reads before it writes them: what any function
  // (or an earlier run) left there may be read, so the last value of such
  // a buffer in each function stays fp32.
  std::vector<char> readFirst(nb, 0);
  std::vector<std::vector<int8_t>> runs;
  for (const FunctionDesc &fn : p.functions)
    runs.push_back(copyRuns(p, fn));
  // The slots an instruction overwrites, a run of column copies counted
  // as overwriting its buffer where it starts; the rest of the run writes
  // into that value (`cont`: the continuing slot).
  auto overOf = [&](size_t f, size_t i, uint32_t *cont) {
    const Instruction &inst = p.functions[f].instructions[i];
    *cont = runs[f][i] == 2 ? 2u : 0u;
    return overwrittenSlots(inst, p) | (runs[f][i] == 1 ? 2u : 0u);
  };
  for (size_t f = 0; f < p.functions.size(); ++f) {
    std::vector<char> written(nb, 0);
    for (size_t i = 0; i < p.functions[f].instructions.size(); ++i) {
      const Instruction &inst = p.functions[f].instructions[i];
      uint32_t cont = 0;
      const uint32_t over = overOf(f, i, &cont);
      for (uint32_t k = 0; k < inst.operands.size(); ++k)
        if (inst.operands[k] < nb && !bit(over | cont, k) && !written[inst.operands[k]])
          readFirst[inst.operands[k]] = 1;
      for (uint32_t k = 0; k < inst.operands.size(); ++k)
        if (inst.operands[k] < nb && bit(over, k))
          written[inst.operands[k]] = 1;
    }
  }
  auto overlaps = [&](uint32_t a, uint32_t b) {
    auto [ab, ae] = range(a);
    auto [bb, be] = range(b);
    return ab < be && bb < ae;
  };
  // Buffers whose bytes a view (a rank's share, another buffer id) also
  // names: a read through the view is not a read of the value here.
  std::vector<char> viewed(nb, 0);
  for (uint32_t v = 0; v < nb; ++v)
    if (p.buffers[v].rankGroup != 0)
      for (uint32_t b = 0; b < nb; ++b)
        if (b != v && p.buffers[b].rankGroup == 0 && overlaps(b, v))
          viewed[b] = 1;

  // A value: where it is written, whether it can be 16-bit, in place, the
  // GEMMs that read it and its last read.
  struct Value {
    uint32_t fn = 0, buffer = 0;
    size_t inst = 0, lastRead = 0;
    bool ok = false, inPlace = false;
    int gemmReads = 0;
    std::vector<std::pair<size_t, uint32_t>> writes, reads; // (instruction, slot)
  };
  std::vector<Value> values;
  for (size_t f = 0; f < p.functions.size(); ++f) {
    const auto &insts = p.functions[f].instructions;
    std::vector<int> current(nb, -1); // the value a buffer holds now
    for (size_t i = 0; i < insts.size(); ++i) {
      const Instruction &inst = insts[i];
      uint32_t cont = 0;
      const uint32_t over = overOf(f, i, &cont);
      const bool whole = wholeLoss(inst);
      const bool attn = attention16 && attention16(inst);
      const uint32_t w =
          runs[f][i] == 1 ? 2u : store16Writers(inst, whole, activations, attn);
      // Reads first: they see the values before this instruction's writes.
      for (uint32_t k = 0; k < inst.operands.size(); ++k) {
        const uint32_t b = inst.operands[k];
        if (b >= nb || bit(over | cont, k))
          continue;
        if (current[b] < 0)
          continue;
        Value &v = values[current[b]];
        if (!store16Reader(inst, k, whole, activations, attn)) {
          v.ok = false;
          continue;
        }
        // A reader that writes over the value's bytes (in place, with
        // elements of another size) reads it from beside them.
        for (uint32_t j = 0; j < inst.operands.size(); ++j)
          if (bit(over | cont, j) && inst.operands[j] < nb && overlaps(b, inst.operands[j]))
            v.inPlace = true;
        v.gemmReads += isGemm(inst);
        v.lastRead = i;
        v.reads.push_back({i, k});
      }
      // A column copy continuing a run writes into the run's value.
      for (uint32_t k = 0; k < inst.operands.size(); ++k) {
        const uint32_t b = inst.operands[k];
        if (b >= nb || !bit(cont, k) || current[b] < 0)
          continue;
        Value &v = values[current[b]];
        v.writes.push_back({i, k});
        v.lastRead = i;
        for (uint32_t j = 0; j < inst.operands.size(); ++j)
          if (j != k && inst.operands[j] < nb && overlaps(b, inst.operands[j]))
            v.inPlace = true;
      }
      for (uint32_t k = 0; k < inst.operands.size(); ++k) {
        const uint32_t b = inst.operands[k];
        if (b >= nb || !bit(over, k))
          continue;
        // The same buffer in several slots this instruction overwrites:
        // one value written in parts (attention's dq, dk, dv into the
        // columns of the q/k/v gradient).
        bool part = false;
        for (uint32_t j = 0; j < k; ++j)
          part |= bit(over, j) && inst.operands[j] == b;
        if (part) {
          Value &v = values[current[b]];
          v.writes.push_back({i, k});
          v.ok = v.ok && bit(w, k);
          continue;
        }
        const BufferDesc &d = p.buffers[b];
        Value v;
        v.fn = static_cast<uint32_t>(f);
        v.buffer = b;
        v.inst = v.lastRead = i;
        v.writes.push_back({i, k});
        v.ok = bit(w, k) && d.role == BufferRole::Temp && d.elem == ElemType::F32 &&
               d.rankGroup == 0 && !viewed[b] && d.bytes > 0 && k < 32;
        for (uint32_t j = 0; j < inst.operands.size(); ++j)
          if (j != k && !(bit(over, j) && inst.operands[j] == b) &&
              inst.operands[j] < nb && overlaps(b, inst.operands[j]))
            v.inPlace = true;
        current[b] = static_cast<int>(values.size());
        values.push_back(std::move(v));
      }
    }
    for (uint32_t b = 0; b < nb; ++b)
      if (readFirst[b] && current[b] >= 0)
        values[current[b]].ok = false;
  }

  // First fit, in order of writing: a side value may share bytes with one
  // of the same function whose uses it does not overlap.
  struct Placed {
    uint32_t fn;
    size_t first, last;
    uint64_t begin, end;
  };
  std::vector<Placed> placed;
  for (const Value &v : values) {
    // Without 16-bit activations only values that GEMMs would round anyway.
    if (!v.ok || v.reads.empty() || (!activations && v.gemmReads == 0))
      continue;
    ++plan.count;
    plan.fp32Bytes += p.buffers[v.buffer].bytes;
    for (const auto *uses : {&v.writes, &v.reads})
      for (auto [i, k] : *uses)
        plan.slots[v.fn][i] |= 1u << k;
    if (!v.inPlace)
      continue;
    const uint64_t size = (p.buffers[v.buffer].bytes / 2 + 255) / 256 * 256;
    std::vector<std::pair<uint64_t, uint64_t>> taken;
    for (const Placed &q : placed)
      if (q.fn != v.fn || !(q.last < v.inst || v.lastRead < q.first))
        taken.push_back({q.begin, q.end});
    std::sort(taken.begin(), taken.end());
    uint64_t at = 0;
    for (auto [tb, te] : taken) {
      if (at + size <= tb)
        break;
      at = std::max(at, te);
    }
    placed.push_back({v.fn, v.inst, v.lastRead, at, at + size});
    for (const auto *uses : {&v.writes, &v.reads})
      for (auto [i, k] : *uses)
        plan.side[{v.fn, static_cast<uint32_t>(i), k}] = at;
    plan.sideBytes = std::max(plan.sideBytes, at + size);
  }
  return plan;
}

bool lastReadOf(const ProgramDesc &p, size_t f, size_t j, uint32_t b) {
  if (b >= p.buffers.size() || p.buffers[b].role != BufferRole::Temp)
    return false;
  // What an instruction does to b: 1 reads it, 2 overwrites it, 0 neither.
  auto use = [&](const Instruction &inst) {
    const uint32_t over = overwrittenSlots(inst, p);
    int u = 0;
    for (uint32_t k = 0; k < inst.operands.size(); ++k)
      if (inst.operands[k] == b) {
        if (!bit(over, k))
          return 1;
        u = 2;
      }
    return u;
  };
  const auto &insts = p.functions[f].instructions;
  // Instruction j itself may overwrite b (in place): then it is dead.
  const uint32_t overJ = overwrittenSlots(insts[j], p);
  for (uint32_t k = 0; k < insts[j].operands.size(); ++k)
    if (insts[j].operands[k] == b && bit(overJ, k))
      return true;
  for (size_t i = j + 1; i < insts.size(); ++i)
    if (int u = use(insts[i]))
      return u == 2;
  // Alive at the function's end: dead if no function reads b first.
  for (const FunctionDesc &fn : p.functions)
    for (const Instruction &inst : fn.instructions)
      if (int u = use(inst)) {
        if (u == 1)
          return false;
        break;
      }
  return true;
}

namespace {
using Range = std::pair<uint64_t, uint64_t>;
bool overlap(Range a, Range b) { return a.first < b.second && b.first < a.second; }
/// The last instruction before j with buffer b among its operands (j
/// where none).
size_t lastToucher(const std::vector<Instruction> &insts, size_t j, uint32_t b) {
  for (size_t i = j; i-- > 0;)
    if (std::find(insts[i].operands.begin(), insts[i].operands.end(), b) !=
        insts[i].operands.end())
      return i;
  return j;
}
/// Whether no instruction strictly between i and j touches the ranges.
bool untouchedBetween(const std::vector<Instruction> &insts, size_t i, size_t j,
                      const std::function<Range(size_t, size_t)> &range,
                      std::initializer_list<Range> ranges) {
  for (size_t k = i + 1; k < j; ++k)
    for (size_t q = 0; q < insts[k].operands.size(); ++q)
      for (Range r : ranges)
        if (overlap(range(k, q), r))
          return false;
  return true;
}
} // namespace

std::vector<AddFusion> planResidualAdds(
    const ProgramDesc &p, size_t f, const OperandBytes &range,
    const std::vector<uint32_t> &half16, const std::vector<char> &skip) {
  const auto &insts = p.functions[f].instructions;
  std::vector<AddFusion> fused;
  std::vector<char> writes(insts.size(), 0); // already fused into
  for (size_t j = 0; j < insts.size(); ++j) {
    const Instruction &add = insts[j];
    if (add.opcode != static_cast<uint16_t>(Opcode::Add) || skip[j] ||
        add.operands.size() != 3 || add.ints.size() != 2 || add.ints[0] != add.ints[1] ||
        (half16[j] & 4u))
      continue;
    for (uint32_t s = 0; s < 2; ++s) {
      const uint32_t rk = 1 - s, y = add.operands[s];
      if (add.operands[rk] == y || (half16[j] >> rk & 1u))
        continue;
      // The instruction that wrote y: the last one to touch it.
      const size_t i = lastToucher(insts, j, y);
      if (i >= j || writes[i] || skip[i])
        continue;
      const Instruction &in = insts[i];
      auto op = static_cast<Opcode>(in.opcode);
      if (op != Opcode::LinearFwd && op != Opcode::LayerNormBwd && op != Opcode::EmbeddingBwd &&
          op != Opcode::VocabEmbeddingBwd)
        continue;
      const uint32_t out = op == Opcode::LinearFwd      ? static_cast<uint32_t>(in.operands.size()) - 1
                           : op == Opcode::LayerNormBwd ? 3
                                                        : 2; // the table's gradient
      // A table's gradient is written whole (V C elements): the add must
      // be of all of it.
      if ((op == Opcode::EmbeddingBwd || op == Opcode::VocabEmbeddingBwd) &&
          (in.ints.size() < 3 || in.ints[1] * in.ints[2] != add.ints[0]))
        continue;
      if (in.operands[out] != y || std::count(in.operands.begin(), in.operands.end(), y) != 1 ||
          !lastReadOf(p, f, j, y))
        continue;
      const Range r = range(j, rk), z = range(j, 2);
      bool ok = (!overlap(r, z) || r == z) && untouchedBetween(insts, i, j, range, {r, z});
      for (uint32_t q = 0; q < in.operands.size() && ok; ++q) {
        if (q == out)
          continue;
        const Range o = range(i, q);
        const bool whole = o == z && op == Opcode::LayerNormBwd && (q == 0 || q == 2) &&
                           !(half16[i] >> q & 1u);
        ok = !overlap(o, z) || whole;
      }
      if (!ok)
        continue;
      fused.push_back({i, j, rk, out});
      writes[i] = 1;
      break;
    }
  }
  return fused;
}

std::vector<EmbeddingAddFusion> planEmbeddingAdds(
    const ProgramDesc &p, size_t f, const OperandBytes &range,
    const std::vector<uint32_t> &half16, const std::vector<char> &skip) {
  const auto &insts = p.functions[f].instructions;
  std::vector<EmbeddingAddFusion> fused;
  for (size_t j = 0; j < insts.size(); ++j) {
    const Instruction &add = insts[j];
    if (add.opcode != static_cast<uint16_t>(Opcode::Add) || skip[j] ||
        add.operands.size() != 3 || add.ints.size() != 2 || add.ints[1] <= 0 ||
        add.ints[0] % add.ints[1] != 0 || (half16[j] & 7u))
      continue;
    const bool broadcast = add.ints[0] != add.ints[1];
    for (uint32_t s = 0; s < (broadcast ? 1u : 2u); ++s) { // the broadcast one is 1
      const uint32_t y = add.operands[s], k = 1 - s;
      if (add.operands[k] == y)
        continue;
      const size_t i = lastToucher(insts, j, y);
      if (i >= j || skip[i] || insts[i].opcode != static_cast<uint16_t>(Opcode::EmbeddingFwd))
        continue;
      const Instruction &e = insts[i];
      if (e.operands.size() != 3 || e.ints.size() != 2 || e.operands[2] != y ||
          std::count(e.operands.begin(), e.operands.end(), y) != 1 ||
          e.ints[0] * e.ints[1] != add.ints[0] || (half16[i] & 7u) || !lastReadOf(p, f, j, y))
        continue;
      const Range ids = range(i, 0), table = range(i, 1), out = range(i, 2), a = range(j, k),
                  z = range(j, 2);
      if (!untouchedBetween(insts, i, j, range, {ids, table, out}) || overlap(z, ids) ||
          overlap(z, table) || (overlap(z, a) && (broadcast || z != a)) ||
          overlap(a, out)) // an addend over the lookup's bytes would read them
        continue;
      fused.push_back({i, j, k});
      break;
    }
  }
  return fused;
}

std::vector<AddNormFusion> planAddNorms(
    const ProgramDesc &p, size_t f, const OperandBytes &range,
    const std::vector<uint32_t> &half16, const std::vector<char> &skip) {
  const auto &insts = p.functions[f].instructions;
  std::vector<AddNormFusion> fused;
  for (size_t i = 0; i + 1 < insts.size(); ++i) {
    const Instruction &add = insts[i], &ln = insts[i + 1];
    if (add.opcode != static_cast<uint16_t>(Opcode::Add) || skip[i] || skip[i + 1] ||
        add.operands.size() != 3 || add.ints.size() != 2 || add.ints[0] != add.ints[1] ||
        (half16[i] & 4u) || ln.opcode != static_cast<uint16_t>(Opcode::LayerNormFwd) ||
        ln.operands.size() != 4 || ln.ints.size() != 2 || ln.operands[0] != add.operands[2] ||
        ln.ints[0] * ln.ints[1] != add.ints[0])
      continue;
    const Range a = range(i, 0), b = range(i, 1), x = range(i, 2), y = range(i + 1, 3);
    auto inPlace = [&](Range in, uint32_t k) { return in == x && !(half16[i] >> k & 1u); };
    bool ok = !overlap(y, a) && !overlap(y, b) && !overlap(y, x) &&
              (!overlap(x, a) || inPlace(a, 0)) && (!overlap(x, b) || inPlace(b, 1));
    for (uint32_t k = 1; k < 3 && ok; ++k) // the norm's gain and bias
      ok = !overlap(range(i + 1, k), x) && !overlap(range(i + 1, k), y);
    if (ok)
      fused.push_back({i, i + 1});
  }
  return fused;
}

std::vector<GeluFusion> planGeluFusions(
    const ProgramDesc &p, size_t f, const OperandBytes &range,
    const std::vector<uint32_t> &half16, const std::vector<char> &skip) {
  const auto &insts = p.functions[f].instructions;
  std::vector<GeluFusion> fused;
  std::vector<char> taken(insts.size(), 0);
  for (size_t j = 0; j < insts.size(); ++j) {
    const Instruction &g = insts[j];
    const auto op = static_cast<Opcode>(g.opcode);
    if ((op != Opcode::GeluFwd && op != Opcode::GeluBwd) || skip[j])
      continue;
    const bool backward = op == Opcode::GeluBwd;
    // The GEMM's product: the forward's x, the backward's dy.
    const uint32_t in = g.operands[backward ? 1 : 0], outSlot = backward ? 2 : 1;
    const size_t i = lastToucher(insts, j, in);
    if (i >= j || taken[i] || skip[i])
      continue;
    const Instruction &m = insts[i];
    if (m.opcode != static_cast<uint16_t>(Opcode::LinearFwd) || m.operands.back() != in ||
        std::count(m.operands.begin(), m.operands.end(), in) != 1 ||
        (backward && m.operands.size() != 3))
      continue;
    const size_t mOut = m.operands.size() - 1;
    // The epilogue's tensors: the GELU's output (or input gradient) and the
    // pre-activation (the forward's x, the GEMM's own output; the
    // backward's x, an input of the GELU).
    const Range out = range(j, outSlot), pre = range(j, 0);
    const bool outH16 = half16[j] >> outSlot & 1u;
    const bool preH16 = backward ? (half16[j] & 1u) : (half16[i] >> mOut & 1u);
    if (outH16 != preH16)
      continue;
    if (backward && (!lastReadOf(p, f, j, in) || g.operands[0] == in))
      continue;
    bool ok = !overlap(out, pre) && untouchedBetween(insts, i, j, range, {out, pre});
    for (size_t q = 0; q < mOut && ok; ++q)
      ok = !overlap(range(i, q), out) && !overlap(range(i, q), pre);
    if (!ok)
      continue;
    fused.push_back({i, j, backward});
    taken[i] = 1;
  }
  return fused;
}

uint32_t writtenSlots(const Instruction &inst, const ProgramDesc &p) {
  const auto n = static_cast<uint32_t>(inst.operands.size());
  const uint32_t all = n >= 32 ? ~0u : (1u << n) - 1u;
  switch (static_cast<Opcode>(inst.opcode)) {
  case Opcode::CopyColumns: // [src, dst]: some columns of dst
    return 2u;
  case Opcode::AttentionBwd: // dq, dk, dv, whole or column slices
    return n >= 3 ? 7u << (n - 3) : all;
  case Opcode::AdamW: // [p, g, m, v, ...]
    return 1u | 4u | 8u;
  case Opcode::GlobalNorm: // [out, g...]
    return 1u;
  case Opcode::ClipScale: // [norm, max, out]
    return 4u;
  case Opcode::Phase:
  case Opcode::Send:
    return 0;
  default:
    break;
  }
  const uint32_t over = overwrittenSlots(inst, p);
  return over ? over : all;
}

SideStreamPlan planSideStream(const ProgramDesc &p, size_t f,
                              const std::function<std::vector<Touch>(size_t)> &touches,
                              const std::vector<char> &skip,
                              const std::vector<char> &withNext) {
  const auto &insts = p.functions[f].instructions;
  const size_t n = insts.size();
  SideStreamPlan plan;
  plan.unitOf.assign(n, -1);
  plan.waitBefore.assign(n, -1);
  struct Pending {
    int unit;
    std::vector<Touch> touched;
  };
  std::vector<Pending> pending;
  auto conflict = [](const Touch &a, const Touch &b) {
    return (a.writes || b.writes) && a.begin < b.end && b.begin < a.end;
  };
  for (size_t i = 0; i < n; ++i) {
    const auto op = static_cast<Opcode>(insts[i].opcode);
    if (op == Opcode::LinearBwdWeight && !skip[i]) {
      Pending u{plan.units++, touches(i)};
      plan.unitOf[i] = u.unit;
      if (withNext[i] && i + 1 < n) {
        plan.unitOf[++i] = u.unit;
        for (const Touch &t : touches(i))
          u.touched.push_back(t);
      }
      pending.push_back(std::move(u));
      continue;
    }
    if (pending.empty())
      continue;
    // The last pending unit this instruction must wait for (all of them
    // for the optimizer's instructions and collectives).
    size_t last = 0;
    bool wait = op == Opcode::GlobalNorm || op == Opcode::AdamW ||
                op == Opcode::ClipScale || communicationBytes(insts[i]) >= 0;
    if (wait)
      last = pending.size() - 1;
    const std::vector<Touch> mine = touches(i);
    for (size_t k = wait ? pending.size() : 0; k < pending.size(); ++k)
      for (const Touch &a : pending[k].touched)
        for (const Touch &b : mine)
          if (conflict(a, b)) {
            wait = true;
            last = k;
          }
    if (!wait)
      continue;
    plan.waitBefore[i] = pending[last].unit;
    pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(last) + 1);
  }
  if (!pending.empty())
    plan.atEnd = pending.back().unit;
  return plan;
}

bool flashAttentionRuns(const Instruction &inst) {
  if (inst.ints.size() < 5 || inst.ints[4] != kFlashAttentionHeadDim)
    return false;
  const AttentionLayout l = attentionLayout(inst);
  for (int t = 0; t < 6; ++t)
    if (l.ld[t] % 4 != 0 || l.off[t] % 4 != 0)
      return false;
  return true;
}

Store16Plan planDeviceStore16(const ProgramDesc &p, const Communicator &comm, bool activations,
                              const std::function<bool(const Instruction &)> &attention16) {
  const bool multi = comm.worldSize() > 1;
  return planStore16(
      p,
      [&](uint32_t b) {
        const BufferDesc &d = p.buffers[b];
        uint64_t at = d.offset;
        if (d.rankGroup)
          at += d.rankStride * comm.groupRank(static_cast<Group>(d.rankGroup));
        return std::pair<uint64_t, uint64_t>{at, at + d.bytes};
      },
      [&](const Instruction &inst) {
        auto op = static_cast<Opcode>(inst.opcode);
        return (op != Opcode::VocabCrossEntropyFwd && op != Opcode::VocabCrossEntropyBwd) ||
               !multi || comm.groupSize(static_cast<Group>(inst.ints[2])) == 1;
      },
      activations, attention16);
}

std::vector<uint32_t> gemmWeights(const ProgramDesc &p) {
  std::vector<char> is(p.buffers.size(), 0);
  for (const FunctionDesc &f : p.functions)
    for (const Instruction &inst : f.instructions)
      if (inst.opcode == static_cast<uint16_t>(Opcode::LinearFwd) && inst.operands.size() > 1 &&
          inst.operands[1] < p.buffers.size()) {
        const BufferDesc &w = p.buffers[inst.operands[1]];
        if (w.role == BufferRole::Param && w.elem == ElemType::F32 && w.bytes > 0)
          is[inst.operands[1]] = 1;
      }
  std::vector<uint32_t> out;
  for (uint32_t b = 0; b < is.size(); ++b)
    if (is[b])
      out.push_back(b);
  return out;
}

namespace {
int64_t align256(int64_t n) { return (n + 255) / 256 * 256; }
} // namespace

DeviceWorkspace deviceWorkspace(const ProgramDesc &p, bool multi) {
  int64_t attn = 0, rows = 0;
  for (const FunctionDesc &f : p.functions)
    for (const Instruction &inst : f.instructions) {
      auto op = static_cast<Opcode>(inst.opcode);
      if ((op == Opcode::AttentionFwd || op == Opcode::AttentionBwd) && inst.ints.size() >= 3)
        attn = std::max(attn, attentionStatsBytes(inst.ints[0], inst.ints[1], inst.ints[2]));
      if ((op == Opcode::CrossEntropyFwd || op == Opcode::VocabCrossEntropyFwd ||
           op == Opcode::CrossEntropyBwd || op == Opcode::VocabCrossEntropyBwd) &&
          !inst.ints.empty())
        rows = std::max(rows, inst.ints[0]);
    }
  DeviceWorkspace w;
  w.attention = align256(attn);
  w.rows = align256(rows * 4);
  w.stats = multi ? align256(rows * 3 * 8) : 0;
  w.pairs = align256(rows * 2 * 4);
  return w;
}

int64_t attentionScratchBytes(const ProgramDesc &p, const Store16Plan &plan16,
                              const std::function<bool(const Instruction &)> &flash) {
  int64_t bytes = 0;
  for (size_t fi = 0; fi < p.functions.size(); ++fi)
    for (size_t ii = 0; ii < p.functions[fi].instructions.size(); ++ii) {
      const Instruction &inst = p.functions[fi].instructions[ii];
      auto op = static_cast<Opcode>(inst.opcode);
      if (op != Opcode::AttentionFwd && op != Opcode::AttentionBwd)
        continue;
      const AttentionLayout l = attentionLayout(inst);
      const int64_t rows = inst.ints[0] * inst.ints[1];
      const int64_t qkv = rows * (l.width[0] + l.width[1] + l.width[2]);
      if (!flash(inst)) {
        if (l.strided)
          bytes = std::max(bytes, (op == Opcode::AttentionBwd ? 2 : 1) * qkv * 4);
      } else if (op == Opcode::AttentionBwd && fi < plan16.slots.size() &&
                 ii < plan16.slots[fi].size() &&
                 (plan16.slots[fi][ii] >> (inst.operands.size() - 3) & 1u)) {
        bytes = std::max(bytes, rows * l.width[3] * 4);
      }
    }
  return bytes;
}

int64_t gemmScratchElems(const ProgramDesc &p, const Store16Plan &plan16) {
  int64_t elems = 0;
  for (size_t fi = 0; fi < p.functions.size(); ++fi)
    for (size_t ii = 0; ii < p.functions[fi].instructions.size(); ++ii) {
      const Instruction &inst = p.functions[fi].instructions[ii];
      auto op = static_cast<Opcode>(inst.opcode);
      if (op != Opcode::LinearFwd && op != Opcode::LinearBwdWeight)
        continue;
      const uint32_t h16 = fi < plan16.slots.size() && ii < plan16.slots[fi].size()
                               ? plan16.slots[fi][ii]
                               : 0u;
      // linear_fwd [x, w, ..]: x rows x in, w in x out; linear_bwd_weight
      // [x, dy, dw]: x rows x in, dy rows x out.
      const int64_t a = inst.ints[0] * inst.ints[1],
                    b = (op == Opcode::LinearFwd ? inst.ints[1] : inst.ints[0]) * inst.ints[2];
      elems = std::max(elems,
                       std::max<int64_t>(1, ((h16 & 1u) ? 0 : a + 128) + ((h16 & 2u) ? 0 : b)));
    }
  return elems;
}

} // namespace llmrt
