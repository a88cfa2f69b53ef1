//===- ArenaPack.cpp - a program's temporaries packed anew ----------------===//
#include "llmrt/ArenaPack.h"

#include "llmrt/Comm.h"
#include "llmrt/Executor.h"
#include "llmrt/Store16.h"

#include <algorithm>
#include <map>
#include <string>
#include <tuple>
#include <functional>
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
/// outputs, the global norm and the clip factor, a collective's result,
/// a receive's buffer. Any other slot reads: where it is the first to
/// name a temporary, what an earlier run left is read.
uint32_t startsValues(const Instruction &inst, const ProgramDesc &p) {
  uint32_t w = overwrittenSlots(inst, p);
  const auto n = static_cast<uint32_t>(inst.operands.size());
  switch (static_cast<Opcode>(inst.opcode)) {
  case Opcode::CopyColumns: // [src, dst]
    w |= 2u;
    break;
  case Opcode::GlobalNorm: // [out, g...]
  case Opcode::Recv:       // [y]
  case Opcode::RecvStart:  // [y]
    w |= 1u;
    break;
  case Opcode::AllReduce:      // [x, y] (y may be x: in place)
  case Opcode::AllGather:      // [x, y]
  case Opcode::AllGatherStart: // [x, y]
  case Opcode::ReduceScatter:  // [x, y]
    w |= 2u;
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

  // The bytes a buffer covers on any rank.
  std::vector<uint64_t> extent(nb);
  for (uint32_t b = 0; b < nb; ++b) {
    const BufferDesc &d = p.buffers[b];
    if (d.rankGroup != 0 && !options.allRanks) {
      out.unused = "rank-dependent views (several ranks)";
      return out;
    }
    extent[b] = d.rankGroup != 0 ? std::max(d.bytes, options.allRanks(d)) : d.bytes;
  }

  // The persistent region ends where the first temporary may start.
  uint64_t persistentEnd = 0;
  for (uint32_t b = 0; b < nb; ++b)
    if (p.buffers[b].role != BufferRole::Temp)
      persistentEnd = std::max(persistentEnd, p.buffers[b].offset + extent[b]);
  const uint64_t base = alignUp(persistentEnd);
  std::vector<char> movable(nb, 0);
  std::vector<uint32_t> temps;
  for (uint32_t b = 0; b < nb; ++b) {
    const BufferDesc &d = p.buffers[b];
    if (d.role == BufferRole::Temp && d.offset < base && d.offset + extent[b] > base) {
      out.unused = "temporary '" + d.name + "' starts in the persistent region and ends past it";
      return out;
    }
    if (d.role == BufferRole::Temp && d.offset >= base && d.bytes > 0) {
      movable[b] = 1;
      temps.push_back(b);
    }
  }

  // Live spans per function, and where the first instruction naming a
  // buffer reads it (in any slot naming it there: an in-place update reads
  // too), that instruction.
  const size_t nf = p.functions.size();
  std::vector<std::vector<Span>> live(nf, std::vector<Span>(nb));
  std::vector<std::vector<std::pair<uint32_t, int64_t>>> readFirst(nf);
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
            (k >= 32 || !(writes >> k & 1u)) &&
            (readFirst[f].empty() || readFirst[f].back().first != b))
          readFirst[f].push_back({b, static_cast<int64_t>(i)});
        live[f][b].add(static_cast<int64_t>(i));
        if (f < options.livesTo.size() && i < options.livesTo[f].size())
          live[f][b].add(static_cast<int64_t>(
              std::min(options.livesTo[f][i], insts.size() - 1)));
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

  // A buffer read first holds what other buffer ids left on its bytes
  // before (a ZeRO share of a gradient, a bucket of gradients): the
  // buffers overlapping it that this function named before, the latest
  // first, until they cover it, join its group. What none covers is what
  // an earlier run left: then it lives throughout.
  UnionFind uf(nb);
  std::vector<char> carried(nb, 0);
  for (size_t f = 0; f < nf; ++f)
    for (auto [b, at] : readFirst[f]) {
      const uint64_t lo = p.buffers[b].offset, hi = lo + extent[b];
      std::vector<std::pair<int64_t, uint32_t>> before; // (last named, buffer)
      for (uint32_t c : temps) {
        const Span &s = live[f][c];
        if (c != b && !s.empty() && s.first < at && p.buffers[c].offset < hi &&
            lo < p.buffers[c].offset + extent[c])
          before.push_back({std::min<int64_t>(s.last, at), c});
      }
      std::sort(before.begin(), before.end(), std::greater<>());
      std::vector<std::pair<uint64_t, uint64_t>> covered;
      auto coversAll = [&] {
        std::sort(covered.begin(), covered.end());
        uint64_t upTo = lo;
        for (auto [c0, c1] : covered)
          if (c0 <= upTo)
            upTo = std::max(upTo, c1);
        return upTo >= hi;
      };
      bool whole = false;
      for (auto [last, c] : before) {
        uf.join(b, c);
        // (To the alignment: nothing lives in a buffer's padding, e.g.
        // between a bucket's gradients.)
        covered.push_back({p.buffers[c].offset, alignUp(p.buffers[c].offset + extent[c])});
        if ((whole = coversAll()))
          break;
      }
      if (!whole)
        carried[b] = 1;
    }

  // Groups: buffers whose bytes overlap while both are live (sorted by
  // offset, each against those that start before it ends).
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
  // (Sorted by offset, a buffer can overlap a later one only where that
  // one starts before the furthest end so far.)
  for (size_t x = 0; x < byOffset.size(); ++x) {
    const BufferDesc &a = p.buffers[byOffset[x]];
    for (size_t y = x + 1; y < byOffset.size(); ++y) {
      const BufferDesc &c = p.buffers[byOffset[y]];
      if (c.offset >= a.offset + extent[byOffset[x]])
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
        (d.offset != g.lo || d.offset + extent[b] != g.hi))
      g.sameRange = false;
    if (d.rankGroup != 0) // a rank's view of its part: not all of the range
      g.sameRange = false;
    g.lo = std::min(g.lo, d.offset);
    g.hi = std::max(g.hi, d.offset + extent[b]);
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
          std::max(layout.arenaBytes, alignUp(layout.offset[b] + extent[b]));
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

ArenaLayout packDeviceArena(const ProgramDesc &p, const Communicator &comm,
                            const Store16Plan &plan16, bool keepWeightGradOperands) {
  std::vector<char> all16(p.buffers.size(), 1);
  for (size_t fi = 0; fi < p.functions.size() && fi < plan16.slots.size(); ++fi)
    for (size_t ii = 0; ii < p.functions[fi].instructions.size(); ++ii) {
      const Instruction &inst = p.functions[fi].instructions[ii];
      const uint32_t slots = ii < plan16.slots[fi].size() ? plan16.slots[fi][ii] : 0;
      for (uint32_t k = 0; k < inst.operands.size(); ++k)
        if (inst.operands[k] < all16.size() &&
            (k >= 32 || !(slots >> k & 1u) ||
             plan16.side.count({static_cast<uint32_t>(fi), static_cast<uint32_t>(ii), k})))
          all16[inst.operands[k]] = 0;
    }
  std::vector<uint64_t> need;
  for (size_t b = 0; b < p.buffers.size(); ++b)
    need.push_back(all16[b] && p.buffers[b].role == BufferRole::Temp ? p.buffers[b].bytes / 2
                                                                     : p.buffers[b].bytes);
  PackOptions options;
  options.keepWeightGradOperands = keepWeightGradOperands;
  options.allRanks = [&comm](const BufferDesc &b) { return allRanksBytes(b, comm); };
  ArenaLayout layout = packArena(p, need, options);
  // Several ranks: the collectives left running keep their operands to
  // where the compiler's layout let them run, where that packs into no
  // larger an arena (else the executor waits for them where the new
  // layout reuses their bytes: less overlap, less memory).
  if (comm.worldSize() > 1 && layout.unused.empty()) {
    options.livesTo = deferredLives(p, comm, /*fence=*/false);
    ArenaLayout kept = packArena(p, need, options);
    if (kept.unused.empty() && kept.arenaBytes <= layout.arenaBytes)
      return kept;
  }
  return layout;
}

namespace {
/// Which write a byte holds: (run, function, instruction, slot), and the
/// byte's place in what that slot wrote.
struct Write {
  int64_t run = -1, f = 0, i = 0, k = 0;
  uint64_t at = 0;
};
/// Memory as segments [start, end) that one write filled, by start.
class Bytes {
public:
  /// Segments of [a, b) as (offset from a, length, the write, or run -1).
  std::vector<std::tuple<uint64_t, uint64_t, Write>> read(uint64_t a, uint64_t b) const {
    std::vector<std::tuple<uint64_t, uint64_t, Write>> out;
    auto it = segs_.upper_bound(a);
    if (it != segs_.begin())
      --it;
    for (; it != segs_.end() && it->first < b; ++it) {
      const uint64_t s0 = std::max(a, it->first), s1 = std::min(b, it->second.first);
      if (s0 >= s1)
        continue;
      Write w = it->second.second;
      w.at += s0 - it->first;
      out.push_back({s0 - a, s1 - s0, w});
    }
    return out;
  }
  void write(uint64_t a, uint64_t b, const Write &w) {
    // Split the segments across a and b, then replace what lies inside.
    split(a);
    split(b);
    segs_.erase(segs_.lower_bound(a), segs_.lower_bound(b));
    segs_[a] = {b, w};
  }

private:
  void split(uint64_t x) {
    auto it = segs_.upper_bound(x);
    if (it == segs_.begin())
      return;
    --it;
    if (it->first < x && x < it->second.first) {
      const uint64_t end = it->second.first;
      Write w = it->second.second;
      it->second.first = x;
      w.at += x - it->first;
      segs_[x] = {end, w};
    }
  }
  std::map<uint64_t, std::pair<uint64_t, Write>> segs_;
};
} // namespace

/// The slots `inst` reads and those it writes, for verifyLayout. A
/// collective reads its input and writes its result; one left running
/// (a bucket's all-reduce, a ZeRO-3 gather, a posted receive) writes at its
/// start and reads and writes again at its wait, so that a layout placing
/// anything on its bytes in between shows; a send reads; a fused group
/// reads its inputs and writes its outputs; AdamW updates its parameter
/// and moments in place; an opcode known to overwrite whole (or in part:
/// column copies, attention's gradients, the norm) writes those and reads
/// the rest. An opcode not known here reads and writes every slot.
std::pair<uint32_t, uint32_t> readsAndWrites(const Instruction &inst, const ProgramDesc &p) {
  const uint32_t all = inst.operands.size() >= 32
                           ? ~0u
                           : (1u << static_cast<uint32_t>(inst.operands.size())) - 1u;
  switch (static_cast<Opcode>(inst.opcode)) {
  case Opcode::AllReduce:     // [x, y]
  case Opcode::AllGather:     // [x, y]
  case Opcode::ReduceScatter: // [x, y]
    return {1u, 2u};
  case Opcode::AllReduceStart: // [bucket]
  case Opcode::RecvStart:      // [y]
    return {0u, 1u};
  case Opcode::AllReduceWait: // [bucket]
  case Opcode::AllGatherWait: // [y]
  case Opcode::RecvWait:      // [y]
    return {1u, 1u};
  case Opcode::AllGatherStart: // [x, y]
    return {1u, 2u};
  case Opcode::Send: // [x]
    return {1u, 0u};
  case Opcode::Recv: // [y]
    return {0u, 1u};
  case Opcode::Phase:
    return {0u, 0u};
  case Opcode::FusedElementwise: {
    const uint32_t out = startsValues(inst, p);
    return {all & ~out, out};
  }
  case Opcode::AdamW: // [p, g, m, v, ...]
    return {all, writtenSlots(inst, p)};
  default:
    break;
  }
  const uint32_t over = overwrittenSlots(inst, p), writes = writtenSlots(inst, p);
  if (!over && writes == all) // not known to overwrite: reads and writes all
    return {all, all};
  return {all & ~writes, writes};
}

std::string verifyLayout(const ProgramDesc &p, const Communicator &comm,
                         const Store16Plan &plan16, const ArenaLayout &layout) {
  auto runOn = [&](const std::vector<uint64_t> &offset,
                   std::vector<std::vector<std::tuple<uint64_t, uint64_t, Write>>> &seen) {
    Bytes mem;
    for (int64_t r = 0; r < 2; ++r)
      for (size_t f = 0; f < p.functions.size(); ++f)
        for (size_t i = 0; i < p.functions[f].instructions.size(); ++i) {
          const Instruction &inst = p.functions[f].instructions[i];
          const auto [reads, writes] = readsAndWrites(inst, p);
          const uint32_t half = f < plan16.slots.size() && i < plan16.slots[f].size()
                                    ? plan16.slots[f][i]
                                    : 0;
          auto extent = [&](uint32_t k) -> std::pair<uint64_t, uint64_t> {
            const BufferDesc &d = p.buffers[inst.operands[k]];
            uint64_t at = offset[inst.operands[k]];
            if (d.rankGroup)
              at += d.rankStride * comm.groupRank(static_cast<Group>(d.rankGroup));
            return {at, at + (k < 32 && (half >> k & 1u) ? d.bytes / 2 : d.bytes)};
          };
          auto beside = [&](uint32_t k) {
            return plan16.side.count({static_cast<uint32_t>(f), static_cast<uint32_t>(i), k}) > 0;
          };
          for (uint32_t k = 0; k < inst.operands.size(); ++k) {
            if (inst.operands[k] >= p.buffers.size() || beside(k) || (k < 32 && !(reads >> k & 1u)))
              continue;
            auto [a, b] = extent(k);
            seen.push_back(mem.read(a, b));
          }
          for (uint32_t k = 0; k < inst.operands.size(); ++k)
            if (k < 32 && (writes >> k & 1u) && inst.operands[k] < p.buffers.size() &&
                !beside(k)) {
              auto [a, b] = extent(k);
              mem.write(a, b, Write{r, static_cast<int64_t>(f), static_cast<int64_t>(i), k, 0});
            }
        }
  };
  std::vector<uint64_t> old;
  for (const BufferDesc &d : p.buffers)
    old.push_back(d.offset);
  std::vector<std::vector<std::tuple<uint64_t, uint64_t, Write>>> before, after;
  runOn(old, before);
  runOn(layout.offset, after);
  if (before.size() != after.size())
    return "the two runs read a different number of times";
  // Per read: each byte the compiler's layout gave a write must hold the
  // same write at the same place in the new one.
  for (size_t e = 0; e < before.size(); ++e) {
    Bytes got;
    for (const auto &[off, len, w] : after[e])
      got.write(off, off + len, w);
    for (const auto &[off, len, w] : before[e]) {
      if (w.run < 0)
        continue;
      for (const auto &[o2, l2, w2] : got.read(off, off + len)) {
        const uint64_t expect = w.at + o2;
        if (w2.run != w.run || w2.f != w.f || w2.i != w.i || w2.k != w.k || w2.at != expect)
          return "read " + std::to_string(e) + ": bytes from " + std::to_string(off + o2) +
                 " held function " + std::to_string(w.f) + " instruction " +
                 std::to_string(w.i) + "'s write, now " +
                 (w2.run < 0 ? std::string("nothing")
                             : "function " + std::to_string(w2.f) + " instruction " +
                                   std::to_string(w2.i) + "'s");
      }
      // Bytes the new layout's read left out entirely.
      uint64_t covered = 0;
      for (const auto &[o2, l2, w2] : got.read(off, off + len))
        covered += l2;
      if (covered < len)
        return "read " + std::to_string(e) + ": fewer bytes in the new layout";
    }
  }
  return "";
}

} // namespace llmrt
