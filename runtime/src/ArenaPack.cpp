//===- ArenaPack.cpp - a program's temporaries packed anew ----------------===//
#include "llmrt/ArenaPack.h"

#include "llmrt/Store16.h"

#include <algorithm>
#include <numeric>

namespace llmrt {

namespace {

uint64_t alignUp(uint64_t v) {
  return (v + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment;
}

/// A closed interval of instructions, or none (first > last).
struct Span {
  int64_t first = INT64_MAX, last = -1;
  bool empty() const { return first > last; }
  void add(int64_t i) {
    first = std::min(first, i);
    last = std::max(last, i);
  }
  void add(const Span &o) {
    if (!o.empty()) {
      add(o.first);
      add(o.last);
    }
  }
  bool meets(const Span &o) const {
    return !empty() && !o.empty() && first <= o.last && o.first <= last;
  }
};

struct UnionFind {
  std::vector<uint32_t> up;
  explicit UnionFind(size_t n) : up(n) { std::iota(up.begin(), up.end(), 0u); }
  uint32_t find(uint32_t a) {
    while (up[a] != a)
      a = up[a] = up[up[a]];
    return a;
  }
  void join(uint32_t a, uint32_t b) { up[find(a)] = find(b); }
};

/// The slots of `inst` whose bytes it writes without reading them first
/// (bit k: operand k): those it overwrites whole, a column copy's
/// destination and attention's gradient slices (a value the compiler
/// assembles from column runs starts at the first), a fused group's
/// outputs, the global norm and the clip factor. Any other slot reads: where it is the first to name a
/// temporary, what an earlier run left is read.
uint32_t startsValues(const Instruction &inst, const ProgramDesc &p) {
  uint32_t w = overwrittenSlots(inst, p);
  const auto n = static_cast<uint32_t>(inst.operands.size());
  switch (static_cast<Opcode>(inst.opcode)) {
  case Opcode::CopyColumns: // [src, dst]
    w |= 2u;
    break;
  case Opcode::GlobalNorm: // [out, g...]
    w |= 1u;
    break;
  case Opcode::ClipScale: // [norm, max, out]
    w |= 4u;
    break;
  case Opcode::AttentionBwd: // [.., dq, dk, dv]
    if (n >= 3 && n <= 32)
      w |= 7u << (n - 3);
    break;
  case Opcode::FusedElementwise: { // [inputs.., outputs..]
    FusedNormProgram fn;
    if (n <= 32 && decodeFusedGroup(inst.opcode, inst.ints, n, fn).empty() &&
        fn.pro.nb.size() <= n)
      w |= static_cast<uint32_t>(((uint64_t{1} << n) - 1) &
                                 ~((uint64_t{1} << fn.pro.nb.size()) - 1));
    break;
  }
  default:
    break;
  }
  return w;
}

} // namespace

ArenaLayout packArena(const ProgramDesc &p, const std::vector<uint64_t> &need,
                      const PackOptions &options) {
  ArenaLayout out;
  const auto nb = static_cast<uint32_t>(p.buffers.size());
  out.offset.resize(nb);
  for (uint32_t b = 0; b < nb; ++b)
    out.offset[b] = p.buffers[b].offset;
  out.peakBytes = out.arenaBytes = p.arenaBytes;

  for (const BufferDesc &d : p.buffers)
    if (d.rankGroup != 0) {
      out.unused = "rank-dependent views (several ranks)";
      return out;
    }
  for (const FunctionDesc &f : p.functions)
    for (const Instruction &inst : f.instructions)
      switch (static_cast<Opcode>(inst.opcode)) {
      case Opcode::Send:
      case Opcode::Recv:
      case Opcode::RecvStart:
      case Opcode::RecvWait:
        out.unused = "pipeline sends and receives (several ranks)";
        return out;
      default:
        break;
      }

  // The persistent region ends where the first temporary may start.
  uint64_t persistentEnd = 0;
  for (const BufferDesc &d : p.buffers)
    if (d.role != BufferRole::Temp)
      persistentEnd = std::max(persistentEnd, d.offset + d.bytes);
  const uint64_t base = alignUp(persistentEnd);
  std::vector<char> movable(nb, 0);
  std::vector<uint32_t> temps;
  for (uint32_t b = 0; b < nb; ++b) {
    const BufferDesc &d = p.buffers[b];
    if (d.role == BufferRole::Temp && d.offset < base && d.offset + d.bytes > base) {
      out.unused = "temporary '" + d.name + "' starts in the persistent region and ends past it";
      return out;
    }
    if (d.role == BufferRole::Temp && d.offset >= base && d.bytes > 0) {
      movable[b] = 1;
      temps.push_back(b);
    }
  }

  // Live spans per function; a buffer whose first instruction reads it
  // (in any slot naming it there: an in-place update reads too) lives on
  // from an earlier run.
  const size_t nf = p.functions.size();
  std::vector<std::vector<Span>> live(nf, std::vector<Span>(nb));
  std::vector<char> carried(nb, 0);
  for (size_t f = 0; f < nf; ++f) {
    const auto &insts = p.functions[f].instructions;
    for (size_t i = 0; i < insts.size(); ++i) {
      const Instruction &inst = insts[i];
      const uint32_t writes = startsValues(inst, p);
      for (size_t k = 0; k < inst.operands.size(); ++k) {
        const uint32_t b = inst.operands[k];
        if (b >= nb || !movable[b])
          continue;
        // A slot past 32 or one that reads: the value came from before.
        if ((live[f][b].empty() || live[f][b].first == static_cast<int64_t>(i)) &&
            (k >= 32 || !(writes >> k & 1u)))
          carried[b] = 1;
        live[f][b].add(static_cast<int64_t>(i));
      }
    }
    // Each weight gradient's operands to the next weight gradient.
    if (options.keepWeightGradOperands) {
      const Instruction *prev = nullptr;
      for (size_t i = 0; i < insts.size(); ++i)
        if (insts[i].opcode == static_cast<uint16_t>(Opcode::LinearBwdWeight)) {
          if (prev)
            for (uint32_t b : prev->operands)
              if (b < nb && movable[b])
                live[f][b].add(static_cast<int64_t>(i));
          prev = &insts[i];
        }
    }
  }

  // Groups: buffers whose bytes overlap while both are live (sorted by
  // offset, each against those that start before it ends).
  UnionFind uf(nb);
  std::vector<uint32_t> byOffset = temps;
  std::sort(byOffset.begin(), byOffset.end(), [&](uint32_t a, uint32_t b) {
    return p.buffers[a].offset < p.buffers[b].offset;
  });
  auto liveTogether = [&](uint32_t a, uint32_t b) {
    if (carried[a] || carried[b])
      return true;
    for (size_t f = 0; f < nf; ++f)
      if (live[f][a].meets(live[f][b]))
        return true;
    return false;
  };
  for (size_t x = 0; x < byOffset.size(); ++x) {
    const BufferDesc &a = p.buffers[byOffset[x]];
    for (size_t y = x + 1; y < byOffset.size(); ++y) {
      const BufferDesc &c = p.buffers[byOffset[y]];
      if (c.offset >= a.offset + a.bytes)
        break;
      if (liveTogether(byOffset[x], byOffset[y]))
        uf.join(byOffset[x], byOffset[y]);
    }
  }

  struct Group {
    uint64_t lo = UINT64_MAX, hi = 0, bytes = 0, at = 0;
    bool sameRange = true, carried = false;
    uint64_t needBytes = 0;
    std::vector<Span> live;
    std::vector<uint32_t> members;
  };
  std::vector<int> groupOf(nb, -1);
  std::vector<Group> groups;
  for (uint32_t b : temps) {
    const uint32_t r = uf.find(b);
    if (groupOf[r] < 0) {
      groupOf[r] = static_cast<int>(groups.size());
      groups.emplace_back();
      groups.back().live.resize(nf);
    }
    Group &g = groups[groupOf[r]];
    const BufferDesc &d = p.buffers[b];
    if (!g.members.empty() &&
        (d.offset != g.lo || d.offset + d.bytes != g.hi))
      g.sameRange = false;
    g.lo = std::min(g.lo, d.offset);
    g.hi = std::max(g.hi, d.offset + d.bytes);
    g.needBytes = std::max(g.needBytes, std::min<uint64_t>(
                                            b < need.size() ? need[b] : d.bytes, d.bytes));
    g.carried = g.carried || carried[b];
    for (size_t f = 0; f < nf; ++f)
      g.live[f].add(live[f][b]);
    g.members.push_back(b);
  }
  for (Group &g : groups) {
    g.bytes = alignUp(g.sameRange ? g.needBytes : g.hi - g.lo);
    if (g.sameRange && g.bytes < alignUp(g.hi - g.lo))
      ++out.shrunk;
  }
  out.groups = static_cast<int>(groups.size());

  // Pack: largest first (the compiler's order), each at the lowest offset
  // free of every placed group live at one of its instructions.
  std::vector<size_t> order(groups.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return groups[a].bytes > groups[b].bytes;
  });
  auto conflict = [&](const Group &a, const Group &b) {
    if (a.carried || b.carried)
      return true;
    for (size_t f = 0; f < nf; ++f)
      if (a.live[f].meets(b.live[f]))
        return true;
    return false;
  };
  std::vector<size_t> placed;
  uint64_t peak = 0;
  for (size_t gi : order) {
    Group &g = groups[gi];
    std::vector<std::pair<uint64_t, uint64_t>> busy;
    for (size_t q : placed)
      if (conflict(g, groups[q]))
        busy.push_back({groups[q].at, groups[q].at + groups[q].bytes});
    std::sort(busy.begin(), busy.end());
    uint64_t at = 0;
    for (auto [lo, hi] : busy) {
      if (at + g.bytes <= lo)
        break;
      at = std::max(at, hi);
    }
    g.at = at;
    peak = std::max(peak, at + g.bytes);
    placed.push_back(gi);
  }

  ArenaLayout layout = out;
  layout.peakBytes = base + peak;
  layout.arenaBytes = layout.peakBytes;
  for (const Group &g : groups)
    for (uint32_t b : g.members) {
      layout.offset[b] = base + g.at + (p.buffers[b].offset - g.lo);
      layout.arenaBytes =
          std::max(layout.arenaBytes, alignUp(layout.offset[b] + p.buffers[b].bytes));
    }
  // Empty temporaries: at the region's start (their old offset may lie
  // past the new arena).
  for (uint32_t b = 0; b < nb; ++b)
    if (p.buffers[b].role == BufferRole::Temp && p.buffers[b].bytes == 0 &&
        p.buffers[b].offset >= base)
      layout.offset[b] = base;
  layout.arenaBytes = std::max<uint64_t>(layout.arenaBytes, kArenaAlignment);
  if (layout.arenaBytes >= p.arenaBytes && !options.evenIfLarger) {
    out.groups = layout.groups;
    out.shrunk = layout.shrunk;
    out.unused = "no smaller than the compiler's arena";
    return out;
  }
  return layout;
}

ProgramDesc withLayout(const ProgramDesc &p, const ArenaLayout &layout) {
  ProgramDesc q = p;
  for (size_t b = 0; b < q.buffers.size() && b < layout.offset.size(); ++b)
    q.buffers[b].offset = layout.offset[b];
  q.arenaBytes = layout.arenaBytes;
  return q;
}

} // namespace llmrt
