//===- Store16Test.cpp - which tensors a GPU stores as 16-bit operands ----===//
#include "llmrt/Store16.h"

#include <gtest/gtest.h>

#include <array>

using namespace llmrt;

namespace {

Instruction inst(Opcode op, std::vector<uint32_t> operands,
                 std::vector<int64_t> ints = {}) {
  Instruction i;
  i.opcode = static_cast<uint16_t>(op);
  i.operands = std::move(operands);
  i.ints = std::move(ints);
  return i;
}

/// An MLP block's forward and backward as the compiler lowers it:
/// h = layer_norm(x); y1 = h W1; g = gelu(y1); y2 = g W2; then
/// dg = dy2 W2ᵀ; dW2 = gᵀ dy2; dy1 = gelu'(y1) dg, written over dg (the
/// compiler's packing puts it there); dh = dy1 W1ᵀ; dW1 = hᵀ dy1;
/// db1 = sum_rows(dy1).
enum : uint32_t { X, LnW, LnB, H, W1, Y1, G, W2, Y2, Dy2, Dg, Dy1, Dh, DW1, DW2, Db1, N };

struct Mlp {
  ProgramDesc p;
  Mlp() {
    p.arenaBytes = 1 << 20;
    p.buffers.resize(N);
    uint64_t at = 0;
    for (uint32_t b = 0; b < N; ++b) {
      BufferDesc &d = p.buffers[b];
      d.role = (b == LnW || b == LnB || b == W1 || b == W2) ? BufferRole::Param
                                                              : BufferRole::Temp;
      d.bytes = 4096;
      d.offset = at;
      at += 4096;
    }
    p.buffers[Dy1].offset = p.buffers[Dg].offset; // in place
    p.functions = {{"train",
                    {inst(Opcode::LayerNormFwd, {X, LnW, LnB, H}),
                     inst(Opcode::LinearFwd, {H, W1, Y1}),
                     inst(Opcode::GeluFwd, {Y1, G}),
                     inst(Opcode::LinearFwd, {G, W2, Y2}),
                     inst(Opcode::LinearFwd, {Dy2, W2, Dg}),
                     inst(Opcode::LinearBwdWeight, {G, Dy2, DW2}),
                     inst(Opcode::GeluBwd, {Y1, Dg, Dy1}),
                     inst(Opcode::LinearFwd, {Dy1, W1, Dh}),
                     inst(Opcode::LinearBwdWeight, {H, Dy1, DW1}),
                     inst(Opcode::SumRows, {Dy1, Db1})}}};
  }
  Store16Plan plan(bool wholeLoss = true, bool activations = false) const {
    return planStore16(
        p,
        [&](uint32_t b) {
          return std::pair<uint64_t, uint64_t>{p.buffers[b].offset,
                                               p.buffers[b].offset + p.buffers[b].bytes};
        },
        [&](const Instruction &) { return wholeLoss; }, activations);
  }
};

/// The plan with 16-bit activations, attention's kernel taking 16 bits
/// or not, each buffer at its own offset.
Store16Plan planActivations(const ProgramDesc &p, bool attention) {
  return planStore16(
      p,
      [&](uint32_t b) {
        return std::pair<uint64_t, uint64_t>{p.buffers[b].offset,
                                             p.buffers[b].offset + p.buffers[b].bytes};
      },
      [](const Instruction &) { return true; }, true,
      [&](const Instruction &) { return attention; });
}

/// A fusion planner (planResidualAdds' arguments) run over function 0 of
/// p, each operand at its buffer's bytes, operands 16-bit as `half16`
/// says (per instruction; missing ones none), nothing skipped.
template <typename Planner>
auto planOn(const ProgramDesc &p, Planner plan, std::vector<uint32_t> half16 = {}) {
  const size_t n = p.functions[0].instructions.size();
  half16.resize(n, 0);
  return plan(
      p, 0,
      [&](size_t i, size_t k) {
        const BufferDesc &b = p.buffers[p.functions[0].instructions[i].operands[k]];
        return std::pair<uint64_t, uint64_t>{b.offset, b.offset + b.bytes};
      },
      half16, std::vector<char>(n, 0));
}

enum Where { No, Own, Side };
/// Where operand `slot` of instruction `i` of function `f` is 16-bit.
Where at(const Store16Plan &s, uint32_t f, uint32_t i, uint32_t slot) {
  if (!(s.slots[f][i] >> slot & 1u))
    return No;
  return s.side.count({f, i, slot}) ? Side : Own;
}

} // namespace

TEST(Store16, TheTensorsOnlyGemmsRead) {
  Mlp m;
  Store16Plan s = m.plan();
  // The layer norm's and GELU's outputs are stored 16-bit in their own
  // bytes, where they are written and where GEMMs read them; GELU's
  // gradient too, but beside them (its writer reads dg, which shares its
  // bytes).
  EXPECT_EQ(at(s, 0, 0, 3), Own); // h = layer_norm
  EXPECT_EQ(at(s, 0, 1, 0), Own); // y1 = h W1
  EXPECT_EQ(at(s, 0, 8, 0), Own); // dW1 = hᵀ dy1
  EXPECT_EQ(at(s, 0, 2, 1), Own); // g = gelu(y1)
  EXPECT_EQ(at(s, 0, 3, 0), Own); // y2 = g W2
  EXPECT_EQ(at(s, 0, 5, 0), Own); // dW2 = gᵀ dy2
  EXPECT_EQ(at(s, 0, 6, 2), Side); // dy1 = gelu'(y1) dg
  EXPECT_EQ(at(s, 0, 7, 0), Side);
  EXPECT_EQ(at(s, 0, 8, 1), Side);
  EXPECT_EQ(at(s, 0, 9, 0), Side); // db1 = sum_rows(dy1)
  EXPECT_EQ(s.side.at({0, 6, 2}), 0u);
  EXPECT_EQ(s.sideBytes, 2048u); // 1024 elements of 2 bytes
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.fp32Bytes, 3u * 4096);
  // Nothing else: not what GELU reads (y1, dg: GEMM outputs), what
  // nothing here writes (dy2), parameters, GEMM outputs.
  std::vector<uint32_t> want = {1u << 3, 1u, 1u << 1, 1u, 0u, 1u, 1u << 2, 1u, 3u, 1u};
  ASSERT_EQ(s.slots.size(), 1u);
  EXPECT_EQ(s.slots[0], want);
}

TEST(Store16, ValuesOfOneBuffer) {
  // The compiler names dy1 as the buffer dg it overwrites: gelu_bwd(y1,
  // dg, dg). The GEMM's output dg stays fp32 (GELU reads it); the value
  // GELU writes over it is 16-bit, beside it.
  Mlp m;
  for (Instruction &i : m.p.functions[0].instructions)
    for (uint32_t &o : i.operands)
      if (o == Dy1)
        o = Dg;
  Store16Plan s = m.plan();
  EXPECT_EQ(at(s, 0, 4, 2), No);   // dg = dy2 W2ᵀ
  EXPECT_EQ(at(s, 0, 6, 1), No);   // gelu_bwd reads dg
  EXPECT_EQ(at(s, 0, 6, 2), Side); // and writes dy1 over it
  EXPECT_EQ(at(s, 0, 9, 0), Side);
  EXPECT_EQ(s.count, 3);
  // A buffer the function reads before it writes it (the last run's
  // value) keeps its last value in fp32.
  m.p.functions[0].instructions.insert(m.p.functions[0].instructions.begin(),
                                       inst(Opcode::LinearFwd, {G, W2, Y2}));
  Store16Plan t = m.plan();
  EXPECT_EQ(at(t, 0, 3, 1), No); // g = gelu(y1), now instruction 3
  EXPECT_EQ(at(t, 0, 1, 3), Own);
}

TEST(Store16, AnyOtherReaderKeepsFp32) {
  // A residual add reading GELU's output: it stays fp32.
  Mlp m;
  m.p.functions[0].instructions.push_back(inst(Opcode::Add, {G, Y2, Y2}, {1024, 1024}));
  Store16Plan s = m.plan();
  EXPECT_EQ(at(s, 0, 2, 1), No);
  EXPECT_EQ(at(s, 0, 0, 3), Own);
  // So does a linear's bias operand; a copy's partial write is a read.
  Mlp b;
  b.p.functions[0].instructions[3] = inst(Opcode::LinearFwd, {Y1, W2, H, Y2});
  b.p.functions[0].instructions.push_back(inst(Opcode::CopyColumns, {X, Dy1}));
  Store16Plan t = b.plan();
  EXPECT_EQ(at(t, 0, 0, 3), No);
  EXPECT_EQ(at(t, 0, 6, 2), No);
  EXPECT_EQ(t.sideBytes, 0u);
  // A view (a rank-dependent address) is never stored 16-bit. Nor is a
  // value another function may read: one that reads h before writing it
  // (functions run in an order the trainer picks) keeps h's last value
  // in fp32. A function that writes the buffer first shares it freely.
  Mlp v;
  v.p.buffers[G].rankGroup = 2;
  v.p.buffers[G].rankStride = 4096;
  v.p.functions.push_back({"eval", {inst(Opcode::LinearFwd, {H, W1, Y1})}});
  v.p.functions.push_back({"again", {inst(Opcode::GeluFwd, {Y1, Dy1}),
                                     inst(Opcode::LinearFwd, {Dy1, W1, Dh})}});
  Store16Plan u = v.plan();
  EXPECT_EQ(at(u, 0, 2, 1), No);
  EXPECT_EQ(at(u, 0, 0, 3), No);
  EXPECT_EQ(at(u, 1, 0, 0), No);
  EXPECT_EQ(at(u, 0, 6, 2), Side);
  EXPECT_EQ(at(u, 2, 0, 1), Own);
  EXPECT_EQ(at(u, 2, 1, 0), Own);
}

TEST(Store16, TheLossGradient) {
  // dlogits = cross_entropy_bwd(logits): stored 16-bit for the head's
  // GEMMs when this rank holds the whole vocabulary; a vocabulary split
  // over a group writes it with the group's statistics, in fp32.
  ProgramDesc p;
  p.arenaBytes = 1 << 16;
  for (uint64_t b = 0; b < 6; ++b)
    p.buffers.push_back({"", b == 3 ? BufferRole::Param : BufferRole::Temp,
                         b == 1 ? ElemType::I32 : ElemType::F32, {}, b * 4096, 4096});
  // logits 0, targets 1, dlogits 2, W 3, dx 4, dW 5
  p.functions = {{"train",
                  {inst(Opcode::LinearFwd, {4, 3, 0}),
                   inst(Opcode::VocabCrossEntropyBwd, {0, 1, 2}, {16, 64, 2, 64}),
                   inst(Opcode::LinearFwd, {2, 3, 4}),
                   inst(Opcode::LinearBwdWeight, {0, 2, 5})}}};
  auto range = [&](uint32_t b) {
    return std::pair<uint64_t, uint64_t>{p.buffers[b].offset,
                                         p.buffers[b].offset + p.buffers[b].bytes};
  };
  Store16Plan whole = planStore16(p, range, [](const Instruction &) { return true; });
  EXPECT_EQ(at(whole, 0, 1, 2), Own);
  EXPECT_EQ(at(whole, 0, 2, 0), Own);
  EXPECT_EQ(at(whole, 0, 3, 1), Own);
  EXPECT_EQ(planStore16(p, range, [](const Instruction &) { return false; }).count, 0);
}

TEST(Store16, SideValuesShareOnlyWhatTimeSeparates) {
  // Two in-place GELU gradients in one function, each read by the GEMMs
  // right after it: their uses do not overlap, so they share side bytes.
  Mlp m;
  auto &insts = m.p.functions[0].instructions;
  const size_t n = insts.size();
  for (size_t i = 4; i < n; ++i)
    insts.push_back(insts[i]);
  Store16Plan s = m.plan();
  EXPECT_EQ(at(s, 0, 6, 2), Side);
  EXPECT_EQ(at(s, 0, 12, 2), Side);
  EXPECT_EQ(s.side.at({0, 12, 2}), s.side.at({0, 6, 2}));
  EXPECT_EQ(s.sideBytes, 2048u);
  // Read later, the first overlaps the second: bytes of its own.
  insts.push_back(inst(Opcode::SumRows, {Dy1, Db1}));
  m.p.buffers.push_back(m.p.buffers[Dy1]); // the second dy1 (id N), over dg
  for (size_t i = n; i + 1 < insts.size(); ++i)
    for (uint32_t &o : insts[i].operands)
      if (o == Dy1)
        o = N;
  Store16Plan t = m.plan();
  EXPECT_NE(t.side.at({0, 12, 2}), t.side.at({0, 6, 2}));
  EXPECT_EQ(t.sideBytes, 4096u);
}

TEST(Store16, Activations) {
  // With 16-bit activations GEMM outputs are stored 16-bit too where every
  // reader takes them: y1 (GELU's input, kept for its backward) in its own
  // bytes; dg beside them, as GELU's backward writes dy1 over it.
  Mlp m;
  Store16Plan s = m.plan(true, /*activations=*/true);
  EXPECT_EQ(at(s, 0, 1, 2), Own);  // y1 = h W1
  EXPECT_EQ(at(s, 0, 2, 0), Own);  // gelu(y1)
  EXPECT_EQ(at(s, 0, 6, 0), Own);  // gelu'(y1) ...
  EXPECT_EQ(at(s, 0, 4, 2), Side); // dg = dy2 W2ᵀ
  EXPECT_EQ(at(s, 0, 6, 1), Side); // ... dg, read beside dy1 written over it
  EXPECT_EQ(at(s, 0, 6, 2), Side);
  EXPECT_NE(s.side.at({0, 6, 1}), s.side.at({0, 6, 2}));
  EXPECT_EQ(s.sideBytes, 4096u);
  // Outputs nothing reads (y2, dh here) stay as they are.
  EXPECT_EQ(at(s, 0, 3, 2), No);
  EXPECT_EQ(at(s, 0, 7, 2), No);
  EXPECT_EQ(s.count, 5);
  // Without 16-bit activations, none of the GEMM outputs.
  EXPECT_EQ(at(m.plan(), 0, 1, 2), No);
  // A broadcast add is not a 16-bit reader; a layer norm's backward dy is.
  Mlp b;
  b.p.functions[0].instructions.push_back(inst(Opcode::Add, {Y2, Db1, X}, {1024, 256}));
  b.p.functions[0].instructions.push_back(
      inst(Opcode::LayerNormBwd, {X, LnW, Dh, Dy2, DW1, DW2}));
  Store16Plan t = b.plan(true, true);
  EXPECT_EQ(at(t, 0, 3, 2), No);  // y2: read by the broadcast add
  EXPECT_EQ(at(t, 0, 7, 2), Own); // dh: read by the layer norm's backward
  EXPECT_EQ(at(t, 0, 11, 2), Own);
}

TEST(Store16, ColumnCopiesThatAssembleATensor) {
  // Attention's dq, dk, dv copied into the columns of the qkv gradient,
  // which only GEMMs read: the copies together write it whole, so they
  // write it 16-bit.
  auto program = [](std::vector<std::array<int64_t, 2>> spans, bool interleave) {
    ProgramDesc p;
    p.arenaBytes = 1 << 16;
    // q k v dout dq dk dv dqkv W dx dW db: 16 rows; dqkv 12 columns.
    for (uint64_t b = 0; b < 12; ++b)
      p.buffers.push_back({"", b == 8 ? BufferRole::Param : BufferRole::Temp,
                           ElemType::F32, {}, b * 1024, b == 7 ? 768u : 256u});
    std::vector<Instruction> insts = {
        inst(Opcode::AttentionBwd, {0, 1, 2, 3, 4, 5, 6}, {1, 16, 1, 1, 4, 1})};
    uint32_t src = 4;
    for (auto [off, width] : spans) {
      insts.push_back(inst(Opcode::CopyColumns, {src++, 7}, {4, 0, 12, off, width, 16}));
      if (interleave)
        insts.push_back(inst(Opcode::GeluFwd, {0, 3}, {64}));
    }
    insts.push_back(inst(Opcode::LinearFwd, {7, 8, 9}));
    insts.push_back(inst(Opcode::LinearBwdWeight, {0, 7, 10}));
    insts.push_back(inst(Opcode::SumRows, {7, 11}));
    p.functions = {{"train", insts}};
    return p;
  };
  auto plan = [](const ProgramDesc &p) {
    return planStore16(
        p,
        [&](uint32_t b) {
          return std::pair<uint64_t, uint64_t>{p.buffers[b].offset,
                                               p.buffers[b].offset + p.buffers[b].bytes};
        },
        [](const Instruction &) { return true; });
  };
  Store16Plan s = plan(program({{8, 4}, {0, 4}, {4, 4}}, false));
  for (uint32_t i : {1u, 2u, 3u})
    EXPECT_EQ(at(s, 0, i, 1), Own) << "copy " << i;
  EXPECT_EQ(at(s, 0, 4, 0), Own);
  EXPECT_EQ(at(s, 0, 5, 1), Own);
  EXPECT_EQ(at(s, 0, 6, 0), Own);
  EXPECT_EQ(s.count, 1);
  // Copies that leave columns out, overlap, or are not one run: no.
  EXPECT_EQ(plan(program({{0, 4}, {4, 4}}, false)).count, 0);
  EXPECT_EQ(plan(program({{0, 4}, {2, 6}, {8, 4}}, false)).count, 0);
  EXPECT_EQ(plan(program({{0, 4}, {4, 4}, {8, 4}}, true)).count, 0);
}

namespace {
/// y = h W + b; z = r + y; then the layer norm's backward dx and the
/// residual gradient g += dx (in place).
enum : uint32_t { RH, RW, RB, RY, RR, RZ, LX, LW, LDY, LDX, LDW, LDB, RG, RN };
ProgramDesc residualProgram() {
  ProgramDesc p;
  p.arenaBytes = 1 << 20;
  for (uint32_t b = 0; b < RN; ++b)
    p.buffers.push_back({"", (b == RW || b == RB || b == LW) ? BufferRole::Param : BufferRole::Temp,
                         ElemType::F32, {}, uint64_t(b) * 4096, 4096});
  p.functions = {{"train",
                  {inst(Opcode::LinearFwd, {RH, RW, RB, RY}, {16, 64, 64, 0}),
                   inst(Opcode::Add, {RR, RY, RZ}, {1024, 1024}),
                   inst(Opcode::LayerNormBwd, {LX, LW, LDY, LDX, LDW, LDB}, {16, 64}),
                   inst(Opcode::Add, {RG, LDX, RG}, {1024, 1024})}}};
  return p;
}
std::vector<AddFusion> fuse(const ProgramDesc &p, std::vector<uint32_t> half16 = {}) {
  return planOn(p, planResidualAdds, std::move(half16));
}
} // namespace

TEST(ResidualAdds, IntoTheGemmAndTheLayerNormBackward) {
  ProgramDesc p = residualProgram();
  std::vector<AddFusion> f = fuse(p);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].writer, 0u);
  EXPECT_EQ(f[0].add, 1u);
  EXPECT_EQ(f[0].addend, 0u); // r
  EXPECT_EQ(f[0].out, 3u);
  EXPECT_EQ(f[1].writer, 2u);
  EXPECT_EQ(f[1].add, 3u);
  EXPECT_EQ(f[1].addend, 0u); // g, also the sum (in place)
  EXPECT_EQ(f[1].out, 3u);
  EXPECT_TRUE(lastReadOf(p, 0, 1, RY));
}

TEST(ResidualAdds, OnlyWhereNothingElseSeesTheDifference) {
  // y read again later: the GEMM must still write it.
  ProgramDesc a = residualProgram();
  a.functions[0].instructions.push_back(inst(Opcode::GeluFwd, {RY, RH}, {1024}));
  EXPECT_FALSE(lastReadOf(a, 0, 1, RY));
  EXPECT_EQ(fuse(a).size(), 1u);
  // Something between the GEMM and the add reads the sum's bytes.
  ProgramDesc b = residualProgram();
  b.functions[0].instructions.insert(b.functions[0].instructions.begin() + 1,
                                     inst(Opcode::GeluFwd, {RZ, RH}, {1024}));
  EXPECT_EQ(fuse(b).size(), 1u);
  // The sum over the GEMM's input (written while it is read).
  ProgramDesc c = residualProgram();
  c.functions[0].instructions[1].operands[2] = RH;
  EXPECT_EQ(fuse(c).size(), 1u);
  // A broadcast add (a bias) is not a residual add.
  ProgramDesc d = residualProgram();
  d.functions[0].instructions[1].ints = {1024, 64};
  EXPECT_EQ(fuse(d).size(), 1u);
  // The layer norm's dx written over its dy: fine for fp32 dy (a thread
  // holds its rows), not for a 16-bit dy (rows of another size).
  ProgramDesc e = residualProgram();
  e.functions[0].instructions[3] = inst(Opcode::Add, {RG, LDX, LDY}, {1024, 1024});
  EXPECT_EQ(fuse(e).size(), 2u);
  EXPECT_EQ(fuse(e, {0, 0, 1u << 2, 0}).size(), 1u);
  // A buffer some function reads before writing it is not dead.
  ProgramDesc g = residualProgram();
  g.functions.push_back({"eval", {inst(Opcode::GeluFwd, {RY, RH}, {1024})}});
  EXPECT_FALSE(lastReadOf(g, 0, 1, RY));
  EXPECT_EQ(fuse(g).size(), 1u);
}

TEST(Store16, AttentionOperands) {
  // q, k, v copied out of qkv (each copy writes its tensor whole), the
  // attention's output read by the projection and the backward, dout from
  // the projection's input gradient: 16-bit where the attention kernel
  // takes them (and with 16-bit activations), fp32 otherwise.
  enum : uint32_t { QKV, Q, K, V, O, LSE, W, Y, DY, DO, DQ, DK, DV, N };
  ProgramDesc p;
  p.arenaBytes = 1 << 20;
  for (uint32_t b = 0; b < N; ++b)
    p.buffers.push_back({"", b == W ? BufferRole::Param : BufferRole::Temp, ElemType::F32,
                         {}, uint64_t(b) * 4096, b == QKV ? 3072u : 1024u});
  p.functions = {{"train",
                  {inst(Opcode::CopyColumns, {QKV, Q}, {12, 0, 4, 0, 4, 64}),
                   inst(Opcode::CopyColumns, {QKV, K}, {12, 4, 4, 0, 4, 64}),
                   inst(Opcode::CopyColumns, {QKV, V}, {12, 8, 4, 0, 4, 64}),
                   inst(Opcode::AttentionFwd, {Q, K, V, O, LSE}, {1, 64, 1, 1, 4, 1}),
                   inst(Opcode::LinearFwd, {O, W, Y}),
                   inst(Opcode::LinearFwd, {DY, W, DO}),
                   inst(Opcode::AttentionBwd, {Q, K, V, DO, O, LSE, DQ, DK, DV},
                        {1, 64, 1, 1, 4, 1})}}};
  auto plan = [&](bool attention) { return planActivations(p, attention); };
  Store16Plan s = plan(true);
  for (uint32_t i : {0u, 1u, 2u})
    EXPECT_EQ(at(s, 0, i, 1), Own) << "copy " << i;
  EXPECT_EQ(s.slots[0][3], 0xfu);           // q, k, v, out (not the lse)
  EXPECT_EQ(at(s, 0, 4, 0), Own);           // the projection reads out
  EXPECT_EQ(at(s, 0, 5, 2), Own);           // dout
  EXPECT_EQ(s.slots[0][6], 0x1fu);          // q, k, v, dout, out
  Store16Plan t = plan(false);
  EXPECT_EQ(t.slots[0][3], 0u);
  EXPECT_EQ(t.slots[0][6], 0u);
  EXPECT_EQ(at(t, 0, 0, 1), No);
}

TEST(Store16, AttentionColumnViews) {
  // q, k, v read in place from the fused projection's output and dq, dk,
  // dv written in place into its gradient (12 and 18 ints: row stride 12,
  // first columns 0, 4, 8): the gradient is one value written in three
  // parts, 16-bit where the attention kernel takes and writes 16 bits; a
  // gradient the parts do not tile is not overwritten by them.
  enum : uint32_t { X, WQ, QKV, O, LSE, W, Y, DY, DO, DQKV, DX, DWQ, N };
  auto program = [](std::vector<int64_t> gradLayout, uint64_t gradBytes) {
    ProgramDesc p;
    p.arenaBytes = 1 << 20;
    for (uint32_t b = 0; b < N; ++b)
      p.buffers.push_back({"", b == W || b == WQ ? BufferRole::Param : BufferRole::Temp,
                           ElemType::F32, {}, uint64_t(b) * 4096,
                           b == QKV ? 3072u : b == DQKV ? gradBytes : 1024u});
    std::vector<int64_t> fwd = {1, 64, 1, 1, 4, 1, 12, 0, 12, 4, 12, 8};
    std::vector<int64_t> bwd = fwd;
    bwd.insert(bwd.end(), gradLayout.begin(), gradLayout.end());
    p.functions = {{"train",
                    {inst(Opcode::LinearFwd, {X, WQ, QKV}),
                     inst(Opcode::AttentionFwd, {QKV, QKV, QKV, O, LSE}, fwd),
                     inst(Opcode::LinearFwd, {O, W, Y}),
                     inst(Opcode::LinearFwd, {DY, W, DO}),
                     inst(Opcode::AttentionBwd, {QKV, QKV, QKV, DO, O, LSE, DQKV, DQKV, DQKV},
                          bwd),
                     inst(Opcode::LinearFwd, {DQKV, WQ, DX}),
                     inst(Opcode::LinearBwdWeight, {X, DQKV, DWQ})}}};
    return p;
  };
  auto plan = planActivations;
  const std::vector<int64_t> tiled = {12, 0, 12, 4, 12, 8};
  ProgramDesc p = program(tiled, 3072);
  EXPECT_EQ(overwrittenSlots(p.functions[0].instructions[4], p), 0x1c0u);
  Store16Plan s = plan(p, true);
  EXPECT_EQ(at(s, 0, 0, 2), Own);            // the projection writes qkv
  EXPECT_EQ(s.slots[0][1], 0xfu);            // q, k, v (one value), out
  EXPECT_EQ(s.slots[0][4], 0x1dfu);          // q, k, v, dout, out; dq, dk, dv
  EXPECT_EQ(at(s, 0, 5, 0), Own);            // the GEMMs read the gradient
  EXPECT_EQ(at(s, 0, 6, 1), Own);
  // A kernel that takes fp32: the gradient stays fp32, and qkv too (the
  // attention reads it).
  Store16Plan t = plan(p, false);
  EXPECT_EQ(t.slots[0][4], 0u);
  EXPECT_EQ(at(t, 0, 5, 0), No);
  EXPECT_EQ(at(t, 0, 0, 2), No);
  // Parts that leave columns out, or a buffer with more rows than the
  // parts write: not overwritten there, so the value before is read.
  for (auto [layout, bytes] :
       {std::pair<std::vector<int64_t>, uint64_t>{{12, 0, 12, 4, 16, 8}, 3072},
        {tiled, 4096}}) {
    ProgramDesc q = program(layout, bytes);
    EXPECT_EQ(overwrittenSlots(q.functions[0].instructions[4], q) & 0x1c0u, 0u);
    EXPECT_EQ(plan(q, true).slots[0][4] & 0x1c0u, 0u);
  }
}

TEST(GeluFusions, ForwardAndBackward) {
  // In the MLP: gelu(y1) after y1 = h W1 + b1, and gelu'(y1) dg after
  // dg = dy2 W2ᵀ (dg read by nothing else; dy1 written over it).
  Mlp m;
  const ProgramDesc &p = m.p;
  auto plan = [](const ProgramDesc &q, std::vector<uint32_t> half16) {
    return planOn(q, planGeluFusions, std::move(half16));
  };
  std::vector<GeluFusion> f = plan(p, {});
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f[0].gemm, 1u);
  EXPECT_EQ(f[0].gelu, 2u);
  EXPECT_FALSE(f[0].backward);
  EXPECT_EQ(f[1].gemm, 4u);
  EXPECT_EQ(f[1].gelu, 6u);
  EXPECT_TRUE(f[1].backward);
  // The epilogue's two tensors stored differently: no.
  EXPECT_EQ(plan(p, {0, 0, 1u << 1}).size(), 1u);
  // dg read again after the GELU's backward: the GEMM must write it.
  Mlp b;
  for (Instruction &i : b.p.functions[0].instructions)
    for (uint32_t &o : i.operands)
      if (o == Dy1)
        o = X; // dy1 apart from dg, in x's bytes (x is dead by then)
  b.p.functions[0].instructions.push_back(inst(Opcode::SumRows, {Dg, Db1}));
  std::vector<GeluFusion> g = plan(b.p, {});
  ASSERT_EQ(g.size(), 1u);
  EXPECT_FALSE(g[0].backward);
  // Something between the GEMM and the GELU writes the output's bytes.
  Mlp c;
  c.p.functions[0].instructions.insert(c.p.functions[0].instructions.begin() + 2,
                                       inst(Opcode::GeluFwd, {X, G}, {1024}));
  EXPECT_EQ(plan(c.p, {}).size(), 1u);
}

TEST(Store16, ViewsAndWideInstructions) {
  // A rank's share (a view: another buffer id over g's bytes) read by an
  // all-reduce: g's value is not 16-bit, since that read is not seen as
  // one of g.
  Mlp m;
  BufferDesc share = m.p.buffers[G];
  share.rankGroup = 2;
  share.rankStride = 0;
  m.p.buffers.push_back(share);
  m.p.functions[0].instructions.push_back(
      inst(Opcode::AllReduce, {uint32_t(N), uint32_t(N)}, {1024, 2, 0}));
  EXPECT_EQ(at(m.plan(), 0, 2, 1), No);
  EXPECT_EQ(at(m.plan(), 0, 0, 3), Own);
  // An instruction with more than 32 operands (a global norm over many
  // gradients) reading h: h stays fp32, and nothing past bit 31 is set.
  Mlp w;
  Instruction norm = inst(Opcode::GlobalNorm, {Db1});
  for (int k = 0; k < 40; ++k)
    norm.operands.push_back(k == 35 ? H : DW1);
  w.p.functions[0].instructions.push_back(norm);
  Store16Plan s = w.plan();
  EXPECT_EQ(at(s, 0, 0, 3), No);
  EXPECT_EQ(s.slots[0].back(), 0u);
}

TEST(GeluFusions, TheCompilersInPlaceFormAndBiases) {
  auto plan = [](const ProgramDesc &q) { return planOn(q, planGeluFusions); };
  // gelu_bwd(y1, dg, dg): dy1 written over dg under dg's name.
  Mlp m;
  for (Instruction &i : m.p.functions[0].instructions)
    for (uint32_t &o : i.operands)
      if (o == Dy1)
        o = Dg;
  std::vector<GeluFusion> f = plan(m.p);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_TRUE(f[1].backward);
  EXPECT_EQ(f[1].gemm, 4u);
  // A GEMM with a bias before the backward: its epilogue cannot add one.
  Mlp b;
  b.p.functions[0].instructions[4] = inst(Opcode::LinearFwd, {Dy2, W2, Db1, Dg});
  std::vector<GeluFusion> g = plan(b.p);
  ASSERT_EQ(g.size(), 1u);
  EXPECT_FALSE(g[0].backward);
  // The forward with a bias (GELU_AUX_BIAS) is fused.
  Mlp c;
  c.p.functions[0].instructions[1] = inst(Opcode::LinearFwd, {H, W1, Db1, Y1});
  EXPECT_EQ(plan(c.p).size(), 2u);
}

TEST(ResidualAdds, OverlapsTheWriterMustNotHave) {
  // The layer norm's dx + g written over its own x: its threads hold x's
  // rows, so that is fine; over its dw (read by nothing yet, written
  // by the kernel's atomics): not.
  ProgramDesc a = residualProgram();
  a.functions[0].instructions[3] = inst(Opcode::Add, {RG, LDX, LX}, {1024, 1024});
  EXPECT_EQ(fuse(a).size(), 2u);
  ProgramDesc b = residualProgram();
  b.functions[0].instructions[3] = inst(Opcode::Add, {RG, LDX, LDW}, {1024, 1024});
  EXPECT_EQ(fuse(b).size(), 1u);
  // Two fusions whose windows interleave: the second writer's add comes
  // after the first's, and the second window touches the first's sum.
  ProgramDesc c = residualProgram();
  auto &insts = c.functions[0].instructions;
  insts = {inst(Opcode::LinearFwd, {RH, RW, RB, RY}, {16, 64, 64, 0}),
           inst(Opcode::LayerNormBwd, {LX, LW, LDY, LDX, LDW, LDB}, {16, 64}),
           inst(Opcode::Add, {RR, RY, RZ}, {1024, 1024}),
           inst(Opcode::Add, {RZ, LDX, RG}, {1024, 1024})};
  std::vector<AddFusion> f = fuse(c);
  ASSERT_EQ(f.size(), 1u); // the layer norm's window holds the first add,
  EXPECT_EQ(f[0].writer, 0u); // which touches its addend z: only the GEMM's
}

TEST(SideStream, WeightGradientsRunBesideUntilTheirBytesAreTouched) {
  // Two weight gradients (the first with its bias gradient) on the side
  // stream; main waits where it writes a byte a unit reads (X1's bytes
  // reused), reads what a unit writes (DW2), and at the global norm.
  enum : uint32_t { X1, DY1, DW1, DB1, W, OUT, Y, Z, X1B, X2, DY2, DW2, T, DW3, NORM, N };
  ProgramDesc p;
  p.arenaBytes = 1 << 20;
  for (uint32_t b = 0; b < N; ++b)
    p.buffers.push_back({"", b == W ? BufferRole::Param : BufferRole::Temp, ElemType::F32, {},
                         uint64_t(b) * 1024, 1024});
  p.buffers[X1B].offset = p.buffers[X1].offset + 512; // the packer reused X1's bytes
  p.functions = {{"train",
                  {inst(Opcode::LinearFwd, {DY1, W, OUT}),
                   inst(Opcode::LinearBwdWeight, {X1, DY1, DW1}),
                   inst(Opcode::SumRows, {DY1, DB1}),
                   inst(Opcode::LinearFwd, {X1, W, Y}), // reads what a unit reads: runs on
                   inst(Opcode::GeluFwd, {Y, Z}),
                   inst(Opcode::Add, {Z, Z, X1B}, {256, 256}), // writes X1's bytes: waits
                   inst(Opcode::LinearBwdWeight, {X2, DY2, DW2}),
                   inst(Opcode::Scale, {DW2, T}, {256}), // reads DW2: waits
                   inst(Opcode::LinearBwdWeight, {X2, DY2, DW3}),
                   inst(Opcode::GlobalNorm, {NORM, DW1, DW3})}}};
  const auto &insts = p.functions[0].instructions;
  auto touches = [&](size_t i) {
    std::vector<Touch> t;
    const uint32_t w = writtenSlots(insts[i], p);
    for (uint32_t k = 0; k < insts[i].operands.size(); ++k) {
      const BufferDesc &b = p.buffers[insts[i].operands[k]];
      t.push_back({b.offset, b.offset + b.bytes, (w >> k & 1u) != 0});
    }
    return t;
  };
  std::vector<char> skip(insts.size(), 0), withNext(insts.size(), 0);
  withNext[1] = 1;
  SideStreamPlan s = planSideStream(p, 0, touches, skip, withNext);
  EXPECT_EQ(s.units, 3);
  EXPECT_EQ(s.unitOf, (std::vector<int>{-1, 0, 0, -1, -1, -1, 1, -1, 2, -1}));
  EXPECT_EQ(s.waitBefore, (std::vector<int>{-1, -1, -1, -1, -1, 0, -1, 1, -1, 2}));
  EXPECT_EQ(s.atEnd, -1);
  // Without the norm the last unit is still running at the end; a
  // skipped weight gradient (done elsewhere) is no unit.
  p.functions[0].instructions.pop_back();
  skip.pop_back();
  withNext.pop_back();
  skip[6] = 1;
  s = planSideStream(p, 0, touches, skip, withNext);
  EXPECT_EQ(s.units, 2);
  EXPECT_EQ(s.unitOf[6], -1);
  EXPECT_EQ(s.waitBefore[7], -1); // DW2 is main's own now
  EXPECT_EQ(s.atEnd, 1);
  // What each instruction writes: the column copy its destination, the
  // optimizer its parameter and moments; an unknown opcode everything.
  EXPECT_EQ(writtenSlots(inst(Opcode::CopyColumns, {X1, Y}, {4, 0, 4, 0, 4, 64}), p), 2u);
  EXPECT_EQ(writtenSlots(inst(Opcode::AdamW, {0, 1, 2, 3, 4, 5, 6, 7}, {256, 1}), p), 13u);
  EXPECT_EQ(writtenSlots(inst(Opcode::AllReduce, {X1, Y}, {256, 1, 1}), p), 3u);
}

TEST(AddNorms, TheLayerNormAddsItsInput) {
  // x = a + b; y = layer_norm(x): the norm reads a and b, writes x and y.
  enum : uint32_t { A, B, X, W, BI, Y, N };
  auto program = [](uint64_t xAt, uint64_t yAt, std::vector<int64_t> addInts) {
    ProgramDesc p;
    p.arenaBytes = 1 << 20;
    for (uint32_t b = 0; b < N; ++b)
      p.buffers.push_back({"", b == W || b == BI ? BufferRole::Param : BufferRole::Temp,
                           ElemType::F32, {}, uint64_t(b) * 4096, b == W || b == BI ? 256u : 4096u});
    p.buffers[X].offset = xAt;
    p.buffers[Y].offset = yAt;
    p.functions = {{"train",
                    {inst(Opcode::Add, {A, B, X}, addInts),
                     inst(Opcode::LayerNormFwd, {X, W, BI, Y}, {16, 64})}}};
    return p;
  };
  auto plan = [](const ProgramDesc &p, std::vector<uint32_t> half16 = {0, 0}) {
    return planOn(p, planAddNorms, std::move(half16));
  };
  const std::vector<int64_t> whole = {1024, 1024};
  ASSERT_EQ(plan(program(X * 4096, Y * 4096, whole)).size(), 1u);
  EXPECT_EQ(plan(program(X * 4096, Y * 4096, whole))[0].norm, 1u);
  // In place over the fp32 a: a row is read before it is written.
  EXPECT_EQ(plan(program(A * 4096, Y * 4096, whole)).size(), 1u);
  // Over a 16-bit b (2-byte elements: rows at other offsets), or y over a
  // tensor the norm still reads: no.
  EXPECT_EQ(plan(program(B * 4096, Y * 4096, whole), {2u, 0u}).size(), 0u);
  EXPECT_EQ(plan(program(X * 4096, A * 4096 + 1024, whole)).size(), 0u);
  // A broadcast add (a bias): no.
  EXPECT_EQ(plan(program(X * 4096, Y * 4096, {1024, 64})).size(), 0u);
  // A norm of something else: no.
  ProgramDesc other = program(X * 4096, Y * 4096, whole);
  other.functions[0].instructions[1].operands[0] = A;
  EXPECT_EQ(plan(other).size(), 0u);
}

TEST(Store16, FusedNorms) {
  // The compiler's residual add and layer norm as one fused_norm:
  // y = proj(a); [x1, h] = fused_norm(x, y, w, b); z = h W; and the norm's
  // backward reads x1. h, read only by the GEMM, is 16-bit; so is y with
  // 16-bit activations (the kernel reads its row inputs at any storage);
  // x1, which the backward reads, and the broadcast w and b never.
  enum : uint32_t { A, Wp, Y, Xr, Wn, Bn, X1, H, W, Z, Dy, Dx, Dw, Db, M };
  ProgramDesc p;
  p.arenaBytes = 1 << 20;
  p.buffers.resize(M);
  for (uint32_t b = 0; b < M; ++b) {
    const bool param = b == Wp || b == Wn || b == Bn || b == W;
    p.buffers[b].role = param ? BufferRole::Param : BufferRole::Temp;
    p.buffers[b].bytes = 4096;
    p.buffers[b].offset = 4096u * b;
  }
  FusedNormProgram fn;
  fn.kind = FusedNormProgram::Layer;
  fn.rows = 4, fn.C = 256, fn.x = 4, fn.w = 2, fn.b = 3;
  fn.pro.n = 1024;
  fn.pro.nb = {1024, 1024, 256, 256};
  fn.pro.ops = {{MicroOp::Add, 0, 1}};
  fn.pro.outputs = {4};
  p.functions = {{"train",
                  {inst(Opcode::LinearFwd, {A, Wp, Y}),
                   inst(Opcode::FusedNorm, {Xr, Y, Wn, Bn, X1, H}, fn.encode()),
                   inst(Opcode::LinearFwd, {H, W, Z}),
                   inst(Opcode::LayerNormBwd, {X1, Wn, Dy, Dx, Dw, Db})}}};
  Store16Plan s = planActivations(p, false);
  EXPECT_EQ(at(s, 0, 0, 2), Own); // y = proj(a)
  EXPECT_EQ(at(s, 0, 1, 1), Own); // ... read by the fused norm
  EXPECT_EQ(at(s, 0, 1, 5), Own); // h
  EXPECT_EQ(at(s, 0, 2, 0), Own);
  EXPECT_EQ(at(s, 0, 1, 4), No);  // x1: the backward's x
  EXPECT_EQ(at(s, 0, 1, 2), No);  // w
  EXPECT_EQ(store16Writers(p.functions[0].instructions[1], true), 1u << 5);
  EXPECT_EQ(overwrittenSlots(p.functions[0].instructions[1], p), (1u << 4) | (1u << 5));
  // Without 16-bit activations only h, which only a GEMM reads.
  Store16Plan t = planStore16(
      p,
      [&](uint32_t b) {
        return std::pair<uint64_t, uint64_t>{p.buffers[b].offset,
                                             p.buffers[b].offset + p.buffers[b].bytes};
      },
      [](const Instruction &) { return true; }, false);
  EXPECT_EQ(at(t, 0, 0, 2), No);
  EXPECT_EQ(at(t, 0, 1, 5), Own);
}

namespace {
/// A tied embedding's backward: the output layer's weight gradient (a
/// GEMM into A), then the token embedding's (a scatter into T), then A + T
/// into A (in place), the table's whole gradient.
enum : uint32_t { EH, EDY, EA, EIDS, EDX, ET, EN };
ProgramDesc tiedProgram(Opcode embedding = Opcode::EmbeddingBwd) {
  ProgramDesc p;
  p.arenaBytes = 1 << 20;
  for (uint32_t b = 0; b < EN; ++b)
    p.buffers.push_back({"", BufferRole::Temp, b == EIDS ? ElemType::I32 : ElemType::F32, {},
                         uint64_t(b) * 4096, 4096});
  std::vector<int64_t> ints = {16, 16, 64};
  if (embedding == Opcode::VocabEmbeddingBwd)
    ints.push_back(1);
  p.functions = {{"train",
                  {inst(Opcode::LinearBwdWeight, {EH, EDY, EA}, {16, 64, 16, 0}),
                   inst(embedding, {EIDS, EDX, ET}, ints),
                   inst(Opcode::Add, {EA, ET, EA}, {1024, 1024})}}};
  return p;
}
} // namespace

TEST(ResidualAdds, TheTiedEmbeddingsGradientStartsFromTheOutputLayers) {
  for (Opcode op : {Opcode::EmbeddingBwd, Opcode::VocabEmbeddingBwd}) {
    ProgramDesc p = tiedProgram(op);
    std::vector<AddFusion> f = fuse(p);
    ASSERT_EQ(f.size(), 1u);
    EXPECT_EQ(f[0].writer, 1u);
    EXPECT_EQ(f[0].add, 2u);
    EXPECT_EQ(f[0].addend, 0u); // A, also the sum: no copy, no zeros
    EXPECT_EQ(f[0].out, 2u);
  }
  // Into a sum of its own: the scatter starts from a copy of A.
  ProgramDesc a = tiedProgram();
  a.functions[0].instructions[2].operands[2] = EH;
  ASSERT_EQ(fuse(a).size(), 1u);
  // T read again after the add: the scatter must still write it alone.
  ProgramDesc b = tiedProgram();
  b.functions[0].instructions.push_back(inst(Opcode::GeluFwd, {ET, EH}, {1024}));
  EXPECT_EQ(fuse(b).size(), 0u);
  // The sum over the scatter's own input (written while it is read).
  ProgramDesc c = tiedProgram();
  c.functions[0].instructions[2].operands[2] = EDX;
  EXPECT_EQ(fuse(c).size(), 0u);
  // Something between the scatter and the add writes A: the scatter
  // would start from the wrong values.
  ProgramDesc d = tiedProgram();
  auto &insts = d.functions[0].instructions;
  std::swap(insts[0], insts[1]);
  EXPECT_EQ(fuse(d).size(), 0u);
  // An add of part of the table's gradient: the scatter writes all of it.
  ProgramDesc e = tiedProgram();
  e.functions[0].instructions[2].ints = {512, 512};
  EXPECT_EQ(fuse(e).size(), 0u);
}

namespace {
/// GPT-2's first instructions: the token embedding's lookup into E, the
/// position embedding's rows into P, E + P (P broadcast over the batch)
/// into E's bytes, the first layer norm of it.
enum : uint32_t { FIDS, FWTE, FE, FWPE, FP, FX, FW, FB, FH, FN };
ProgramDesc embeddingProgram() {
  ProgramDesc p;
  p.arenaBytes = 1 << 20;
  for (uint32_t b = 0; b < FN; ++b)
    p.buffers.push_back({"", (b == FWTE || b == FWPE || b == FW || b == FB) ? BufferRole::Param
                             : b == FIDS ? BufferRole::Input : BufferRole::Temp,
                         b == FIDS ? ElemType::I32 : ElemType::F32, {}, uint64_t(b) * 4096, 4096});
  p.buffers[FX].offset = p.buffers[FE].offset; // the sum over E (in place)
  p.functions = {{"train",
                  {inst(Opcode::EmbeddingFwd, {FIDS, FWTE, FE}, {64, 16}),
                   inst(Opcode::PositionEmbeddingFwd, {FWPE, FP}, {16, 16}),
                   inst(Opcode::Add, {FE, FP, FX}, {1024, 256}),
                   inst(Opcode::LayerNormFwd, {FX, FW, FB, FH}, {64, 16})}}};
  return p;
}
std::vector<EmbeddingAddFusion> fuseEmbedding(const ProgramDesc &p) {
  return planOn(p, planEmbeddingAdds);
}
} // namespace

TEST(EmbeddingAdds, TheLookupAddsThePositionsInTheAddsPlace) {
  std::vector<EmbeddingAddFusion> f = fuseEmbedding(embeddingProgram());
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].embedding, 0u);
  EXPECT_EQ(f[0].add, 2u);
  EXPECT_EQ(f[0].addend, 1u);
  // E read again later: the lookup must still write it.
  ProgramDesc a = embeddingProgram();
  a.buffers[FX].offset = 9 * 4096;
  a.functions[0].instructions.push_back(inst(Opcode::GeluFwd, {FE, FH}, {1024}));
  EXPECT_TRUE(fuseEmbedding(a).empty());
  // The ids rewritten between the lookup and the add.
  ProgramDesc b = embeddingProgram();
  b.functions[0].instructions[1] = inst(Opcode::PositionEmbeddingFwd, {FWPE, FIDS}, {16, 16});
  EXPECT_TRUE(fuseEmbedding(b).empty());
  // The sum over the position rows it adds (broadcast: other elements
  // read them after they are written).
  ProgramDesc c = embeddingProgram();
  c.functions[0].instructions[2].operands[2] = FP;
  EXPECT_TRUE(fuseEmbedding(c).empty());
  // The embedding as the add's broadcast operand: not a lookup's rows.
  ProgramDesc d = embeddingProgram();
  d.functions[0].instructions[2] = inst(Opcode::Add, {FP, FE, FX}, {1024, 256});
  EXPECT_TRUE(fuseEmbedding(d).empty());
  // Without broadcast, either operand; in place over the addend too.
  ProgramDesc e = embeddingProgram();
  e.functions[0].instructions[1] = inst(Opcode::EmbeddingFwd, {FIDS, FWPE, FP}, {64, 16});
  e.functions[0].instructions[2] = inst(Opcode::Add, {FP, FE, FP}, {1024, 1024});
  f = fuseEmbedding(e);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f[0].embedding, 1u); // the last writer of operand 0 comes first
  EXPECT_EQ(f[0].addend, 1u);
}
