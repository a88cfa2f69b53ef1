//===- ProgramTest.cpp - program format writer and loader -----------------===//
#include "llmrt/Program.h"
#include "llmrt/Trainer.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace llmrt;

namespace {

/// A valid two-buffer program: y = gelu(x).
ProgramDesc tinyProgram() {
  ProgramDesc p;
  p.metadata = R"({"config": {"batch": 1}})";
  p.arenaBytes = 128;
  p.buffers = {{"x", BufferRole::Temp, ElemType::F32, {4}, 0, 16},
               {"y", BufferRole::Temp, ElemType::F32, {2, 2}, 64, 16}};
  Instruction gelu;
  gelu.opcode = static_cast<uint16_t>(Opcode::GeluFwd);
  gelu.operands = {0, 1};
  gelu.ints = {4};
  p.functions = {{"eval", {gelu}}};
  return p;
}

std::string errorOf(const std::vector<uint8_t> &bytes) {
  auto p = parseProgram(bytes, "prog");
  return p.ok() ? "<ok>" : std::string(p.status().message());
}

/// Rewrites the checksum after editing the payload, so that the structural
/// checks behind it are reached.
void reseal(std::vector<uint8_t> &bytes) {
  uint64_t sum = fnv1a64(bytes.data() + 32, bytes.size() - 32);
  for (int i = 0; i < 8; ++i)
    bytes[24 + i] = static_cast<uint8_t>(sum >> (8 * i));
}

} // namespace

TEST(Program, RoundTrip) {
  ProgramDesc p = tinyProgram();
  auto q = parseProgram(writeProgram(p), "prog");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->metadata, p.metadata);
  EXPECT_EQ(q->arenaBytes, 128u);
  ASSERT_EQ(q->buffers.size(), 2u);
  EXPECT_EQ(q->buffers[1].name, "y");
  EXPECT_EQ(q->buffers[1].dims, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(q->buffers[1].offset, 64u);
  ASSERT_EQ(q->functions.size(), 1u);
  EXPECT_EQ(q->functions[0].instructions[0].ints, std::vector<int64_t>{4});
}

TEST(Program, HeaderErrors) {
  std::vector<uint8_t> good = writeProgram(tinyProgram());
  EXPECT_NE(errorOf({1, 2, 3}).find("shorter than its 32-byte header"),
            std::string::npos);
  auto bad = good;
  bad[0] = 'X';
  EXPECT_EQ(errorOf(bad), "prog: offset 0: bad magic (not an llm program)");
  bad = good;
  bad[8] = 9;
  EXPECT_EQ(errorOf(bad), "prog: offset 8: program version 9, this runtime "
                          "reads versions 2 to 4");
  bad = good;
  bad.back() ^= 1;
  EXPECT_EQ(errorOf(bad), "prog: checksum mismatch (corrupt program)");
  bad = good;
  bad.pop_back();
  EXPECT_NE(errorOf(bad).find("header declares a"), std::string::npos);
}

TEST(Program, StructuralErrors) {
  ProgramDesc p = tinyProgram();
  p.buffers[1].offset = 96; // [96, 112) fits, but misaligned
  EXPECT_NE(errorOf(writeProgram(p)).find("buffer 'y' [96, 112) is "
                                          "misaligned or outside the arena"),
            std::string::npos);
  p = tinyProgram();
  p.buffers[1].offset = 128;
  EXPECT_NE(errorOf(writeProgram(p)).find("outside the arena of 128 bytes"),
            std::string::npos);
  p = tinyProgram();
  p.buffers[0].bytes = 12;
  EXPECT_NE(errorOf(writeProgram(p)).find("buffer 'x' is 12 bytes but its "
                                          "shape needs 16"),
            std::string::npos);
  p = tinyProgram();
  p.functions[0].instructions[0].opcode = 999;
  EXPECT_NE(errorOf(writeProgram(p)).find("unknown opcode 999"),
            std::string::npos);
  p = tinyProgram();
  p.functions[0].instructions[0].operands = {0};
  EXPECT_NE(errorOf(writeProgram(p)).find("(gelu_fwd): wrong number of "
                                          "operands or parameters"),
            std::string::npos);
  p = tinyProgram();
  p.functions[0].instructions[0].operands = {0, 7};
  EXPECT_NE(errorOf(writeProgram(p)).find("operand 7 is not a buffer"),
            std::string::npos);

  // A truncated payload with a valid checksum: the reader stops at the end.
  std::vector<uint8_t> bytes = writeProgram(tinyProgram());
  bytes.resize(bytes.size() - 6);
  for (int i = 0; i < 8; ++i)
    bytes[16 + i] = static_cast<uint8_t>((bytes.size() - 32) >> (8 * i));
  reseal(bytes);
  EXPECT_NE(errorOf(bytes).find("program truncated"), std::string::npos);
}

TEST(Program, MissingEmbeddedProgram) {
  auto p = loadEmbeddedProgram("/proc/self/exe");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(std::string(p.status().message()).find("no embedded program"),
            std::string::npos);
}

TEST(Trainer, LearningRateSchedule) {
  TrainOptions o;
  o.lr = 1e-3;
  o.minLr = 1e-4;
  o.warmup = 2;
  o.steps = 6;
  // Warm-up: lr (t+1)/warmup; then min + (lr-min)/2 (1 + cos(pi (t-2)/4)).
  EXPECT_DOUBLE_EQ(learningRate(o, 0), 5e-4);
  EXPECT_DOUBLE_EQ(learningRate(o, 1), 1e-3);
  EXPECT_DOUBLE_EQ(learningRate(o, 2), 1e-3);
  EXPECT_NEAR(learningRate(o, 3), 1e-4 + 0.45e-3 * (1 + std::sqrt(0.5)), 1e-15);
  EXPECT_NEAR(learningRate(o, 4), 5.5e-4, 1e-15);
}

TEST(Trainer, SplitMix64ReferenceValues) {
  // Published outputs of splitmix64 seeded with 0.
  SplitMix64 r{0};
  EXPECT_EQ(r.next(), 0xE220A8397B1DCDAFull);
  EXPECT_EQ(r.next(), 0x6E789E6AA1B965F4ull);
  EXPECT_EQ(r.next(), 0x06C45D188009454Full);
}

TEST(Trainer, FlagErrors) {
  auto err = [](std::vector<std::string> args) {
    auto o = parseTrainOptions(args);
    return o.ok() ? std::string("<ok>") : std::string(o.status().message());
  };
  EXPECT_EQ(err({"--data", "x", "--steps", "0"}),
            "flag --steps: '0' must be at least 1");
  EXPECT_EQ(err({"--data", "x", "--lr", "-1"}),
            "flag --lr: '-1' must be at least 0");
  EXPECT_EQ(err({"--data", "x", "--lr", "1e-3", "--min-lr", "1e-2"}),
            "flag --min-lr: 0.01 exceeds --lr 0.001");
  EXPECT_EQ(err({"--data", "x", "--data", "y"}), "flag --data is given twice");
  EXPECT_EQ(err({"--data"}), "flag --data needs a value");
  EXPECT_EQ(err({"data"}), "unexpected argument 'data'");
  EXPECT_EQ(err({"--data=x", "--seed=7"}), "<ok>");
}

TEST(Program, InstructionSizesAgainstBuffers) {
  // gelu over 4 elements of 4-element buffers is fine; over 5, or with a
  // negative count, the kernel would run past the buffers.
  ProgramDesc p = tinyProgram();
  p.functions[0].instructions[0].ints = {5};
  EXPECT_NE(errorOf(writeProgram(p)).find("(gelu_fwd): operand 0 ('x') holds 4 "
                                          "elements, needs 5"),
            std::string::npos);
  p.functions[0].instructions[0].ints = {-1};
  EXPECT_NE(errorOf(writeProgram(p)).find("negative parameter -1"),
            std::string::npos);
  // A shape whose element count overflows.
  p = tinyProgram();
  p.buffers[0].dims = {int64_t(1) << 62, 4};
  EXPECT_NE(errorOf(writeProgram(p)).find("negative or overflowing shape"),
            std::string::npos);
  // A ZeRO share that is not a whole piece of its tensor.
  p = tinyProgram();
  p.buffers[0].zeroDims = {3};
  EXPECT_NE(errorOf(writeProgram(p)).find("is not a share of its tensor"),
            std::string::npos);
  // A tensor-parallel shard whose global shape differs off its axis.
  p = tinyProgram();
  p.buffers[1].shardAxis = 0;
  p.buffers[1].globalDims = {4, 3};
  EXPECT_NE(errorOf(writeProgram(p)).find("has an inconsistent shard"),
            std::string::npos);
}

TEST(Program, AttentionWithKeptLogSumExp) {
  // B 1, S 4, 2 heads of 2 (q, k, v, out: 16 floats; lse [1, 2, 4]: 8).
  ProgramDesc p;
  p.metadata = "{}";
  p.arenaBytes = 64 * 12;
  const char *names[] = {"q", "k", "v", "o", "lse", "do", "dq", "dk", "dv"};
  for (int i = 0; i < 9; ++i)
    p.buffers.push_back({names[i], BufferRole::Temp, ElemType::F32,
                         {i == 4 ? int64_t(8) : int64_t(16)},
                         static_cast<uint64_t>(64 * i), i == 4 ? 32u : 64u});
  Instruction fwd, bwd;
  fwd.opcode = static_cast<uint16_t>(Opcode::AttentionFwd);
  fwd.operands = {0, 1, 2, 3, 4};
  fwd.ints = {1, 4, 2, 2, 2, 1};
  fwd.floats = {0.5};
  bwd.opcode = static_cast<uint16_t>(Opcode::AttentionBwd);
  bwd.operands = {0, 1, 2, 5, 3, 4, 6, 7, 8};
  bwd.ints = fwd.ints;
  bwd.floats = fwd.floats;
  p.functions = {{"train", {fwd, bwd}}};
  EXPECT_EQ(errorOf(writeProgram(p)), "<ok>");
  // The statistics must hold [B, Hq, S] floats.
  p.buffers[4].dims = {7};
  p.buffers[4].bytes = 28;
  EXPECT_NE(errorOf(writeProgram(p)).find("operand 4 ('lse') holds 7 elements, needs 8"),
            std::string::npos);
  p.buffers[4].dims = {8};
  p.buffers[4].bytes = 32;
  // Eight operands are neither form of the backward.
  p.functions[0].instructions[1].operands = {0, 1, 2, 5, 3, 6, 7, 8};
  EXPECT_NE(errorOf(writeProgram(p)).find("attention_bwd takes 7 operands, or 9"),
            std::string::npos);
}

TEST(Program, AttentionColumnSlices) {
  // B 1, S 4, 2 heads of 2: q, k, v as the columns 0-3, 4-7, 8-11 of a
  // [4, 12] buffer, dq, dk, dv into those of another (AttentionLayout).
  ProgramDesc p;
  p.metadata = "{}";
  p.arenaBytes = 64 * 12;
  const char *names[] = {"qkv", "o", "do", "dqkv"};
  for (int i = 0; i < 4; ++i) {
    const bool wide = i == 0 || i == 3;
    p.buffers.push_back({names[i], BufferRole::Temp, ElemType::F32,
                         {wide ? int64_t(48) : int64_t(16)},
                         static_cast<uint64_t>(192 * i), wide ? 192u : 64u});
  }
  Instruction fwd, bwd;
  fwd.opcode = static_cast<uint16_t>(Opcode::AttentionFwd);
  fwd.operands = {0, 0, 0, 1};
  fwd.ints = {1, 4, 2, 2, 2, 1, 12, 0, 12, 4, 12, 8};
  fwd.floats = {0.5};
  bwd.opcode = static_cast<uint16_t>(Opcode::AttentionBwd);
  bwd.operands = {0, 0, 0, 2, 3, 3, 3};
  bwd.ints = fwd.ints;
  bwd.ints.insert(bwd.ints.end(), {12, 0, 12, 4, 12, 8});
  bwd.floats = fwd.floats;
  p.functions = {{"train", {fwd, bwd}}};
  EXPECT_EQ(errorOf(writeProgram(p)), "<ok>");
  auto err = [&](int inst, std::vector<int64_t> ints, std::vector<uint32_t> ops = {}) {
    ProgramDesc q = p;
    q.functions[0].instructions[inst].ints = std::move(ints);
    if (!ops.empty())
      q.functions[0].instructions[inst].operands = std::move(ops);
    return errorOf(writeProgram(q));
  };
  auto has = [](const std::string &e, const char *what) {
    return e.find(what) != std::string::npos;
  };
  // A layout per tensor or none: 9 ints fit neither form.
  EXPECT_TRUE(has(err(0, {1, 4, 2, 2, 2, 1, 12, 0, 12}), "attention_fwd takes 6 ints, or 12"));
  // v's columns 10-13 past a row of 12.
  EXPECT_TRUE(has(err(0, {1, 4, 2, 2, 2, 1, 12, 0, 12, 4, 12, 10}),
                  "columns lie outside its rows"));
  // A row stride of 16: q's fourth row ends at 3 x 16 + 4 = 52, past the
  // buffer's 48 floats.
  EXPECT_TRUE(has(err(0, {1, 4, 2, 2, 2, 1, 16, 0, 16, 4, 16, 8}),
                  "operand 0 ('qkv') holds 48 elements, needs 52"));
  // dk over dq's columns.
  std::vector<int64_t> over = bwd.ints;
  over[15] = 2;
  EXPECT_TRUE(has(err(1, over), "operands 4 and 5 write the same columns"));
  // dq written over q's buffer.
  EXPECT_TRUE(has(err(1, bwd.ints, {0, 0, 0, 2, 0, 3, 3}), "operand 4 is written and also read"));
}

namespace {
/// A program of one function with one instruction, whose GPU kernel (an
/// empty PTX module for sm_90) is `entry`.
ProgramDesc oneKernelProgram(int64_t arenaBytes, std::vector<BufferDesc> buffers,
                             Opcode opcode, std::vector<uint32_t> operands,
                             std::vector<int64_t> ints, std::vector<double> floats,
                             const char *function, const char *entry) {
  ProgramDesc p;
  p.metadata = "{}";
  p.arenaBytes = arenaBytes;
  p.buffers = std::move(buffers);
  Instruction k;
  k.opcode = static_cast<uint16_t>(opcode);
  k.operands = std::move(operands);
  k.ints = std::move(ints);
  k.floats = std::move(floats);
  p.functions = {{function, {k}}};
  p.gpuPtx = ".version 7.8\n.target sm_90\n";
  p.gpuEntries = {entry};
  return p;
}

/// y = silu(x) * u as one fusion group with a GPU kernel entry.
ProgramDesc fusedProgram() {
  FusedProgram fp;
  fp.n = 4;
  fp.kernel = 0;
  fp.nb = {4, 4};
  fp.ops = {{MicroOp::SiluFwd, 0, -1}, {MicroOp::Mul, 2, 1}};
  fp.outputs = {3};
  return oneKernelProgram(256,
                          {{"x", BufferRole::Temp, ElemType::F32, {4}, 0, 16},
                           {"u", BufferRole::Temp, ElemType::F32, {4}, 64, 16},
                           {"y", BufferRole::Temp, ElemType::F32, {4}, 128, 16}},
                          Opcode::FusedElementwise, {0, 1, 2}, fp.encode(), {}, "eval",
                          "fused_0");
}
} // namespace

TEST(Program, FusedGroupAndGpuKernelsRoundTrip) {
  ProgramDesc p = fusedProgram();
  auto q = parseProgram(writeProgram(p), "prog");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->gpuPtx, p.gpuPtx);
  EXPECT_EQ(q->gpuEntries, std::vector<std::string>{"fused_0"});
  FusedProgram fp;
  ASSERT_EQ(fp.decode(q->functions[0].instructions[0].ints, 3), "");
  EXPECT_EQ(fp.ops.size(), 2u);
  EXPECT_EQ(fp.ops[1].op, MicroOp::Mul);
  EXPECT_EQ(fp.outputs, std::vector<int64_t>{3});
}

TEST(Program, OlderVersionsStillLoad) {
  // Version 2 has no GPU kernel section, version 3 no vocabulary padding
  // (per buffer, and in the vocabulary-parallel loss's ints, which load as
  // unpadded).
  ProgramDesc p = tinyProgram();
  for (uint32_t version : {2u, 3u}) {
    auto q = parseProgram(writeProgram(p, version), "prog");
    ASSERT_TRUE(q.ok()) << version << ": " << q.status();
    EXPECT_TRUE(q->gpuEntries.empty());
    EXPECT_EQ(q->buffers.size(), p.buffers.size());
  }
}

TEST(Program, PaddedVocabulary) {
  // A vocabulary of 251 on tp=2: each rank holds 126 rows of a [252, 4]
  // table (one padding row); the loss is told the model's 251.
  ProgramDesc p;
  p.metadata = "{}";
  p.arenaBytes = 8192;
  BufferDesc table{"wte.weight", BufferRole::Param, ElemType::F32, {126, 4}, 0, 2016};
  table.shardAxis = 0;
  table.globalDims = {252, 4};
  table.shardValid = 251;
  p.buffers = {table,
               {"logits", BufferRole::Temp, ElemType::F32, {2, 126}, 2048, 1008},
               {"targets", BufferRole::Input, ElemType::I32, {2}, 3072, 8},
               {"loss", BufferRole::Output, ElemType::F32, {}, 3136, 4}};
  Instruction ce;
  ce.opcode = static_cast<uint16_t>(Opcode::VocabCrossEntropyFwd);
  ce.operands = {1, 2, 3};
  ce.ints = {2, 126, 2, 251};
  p.functions = {{"eval", {ce}}};
  auto q = parseProgram(writeProgram(p), "prog");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->buffers[0].shardValid, 251);
  EXPECT_EQ(modelDims(q->buffers[0]), (std::vector<int64_t>{251, 4}));
  EXPECT_EQ(q->functions[0].instructions[0].ints, (std::vector<int64_t>{2, 126, 2, 251}));
  // Version 3 had neither: the loss loads unpadded (0).
  p.buffers[0].shardValid = 0;
  auto old = parseProgram(writeProgram(p, 3), "prog");
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->functions[0].instructions[0].ints, (std::vector<int64_t>{2, 126, 2, 0}));
  // Padding of a whole rank's part, or on a tensor that is not sharded.
  p.buffers[0].shardValid = 126;
  EXPECT_EQ(errorOf(writeProgram(p)),
            "prog: buffer 'wte.weight' has an inconsistent padding (126 valid)");
  p.buffers[0].shardValid = 251;
  p.buffers[0].shardAxis = -1;
  p.buffers[0].globalDims.clear();
  EXPECT_EQ(errorOf(writeProgram(p)),
            "prog: buffer 'wte.weight' has an inconsistent padding (251 valid)");
}

TEST(Program, FusedGroupErrors) {
  auto errorWith = [](auto edit) {
    ProgramDesc p = fusedProgram();
    edit(p);
    return errorOf(writeProgram(p));
  };
  // Micro-op 0 reads value 2, its own result.
  EXPECT_EQ(errorWith([](ProgramDesc &p) {
              p.functions[0].instructions[0].ints[8] = 2;
            }),
            "prog: function 'eval': fused_elementwise: bad micro-op");
  EXPECT_EQ(errorWith([](ProgramDesc &p) { p.gpuEntries.clear(); }),
            "prog: function 'eval': fused_elementwise: kernel 0 is not among "
            "the program's 0 GPU entries");
  EXPECT_EQ(errorWith([](ProgramDesc &p) {
              p.buffers[2].dims = {2};
              p.buffers[2].bytes = 8;
            }),
            "prog: function 'eval': fused_elementwise: operand 'y' is not 4 "
            "f32 elements");
  EXPECT_EQ(errorWith([](ProgramDesc &p) {
              p.functions[0].instructions[0].ints[5] = 3; // nb 3 of n 4
            }),
            "prog: function 'eval': fused_elementwise: a broadcast size does "
            "not divide n");
}

namespace {
/// x1 = x + a stored, y = layer_norm(x1) over 2 rows of 4: operands
/// [x, a, w, b, x1, y].
ProgramDesc fusedNormProgram() {
  FusedNormProgram fn;
  fn.kind = FusedNormProgram::Layer;
  fn.rows = 2, fn.C = 4, fn.x = 4, fn.w = 2, fn.b = 3;
  fn.pro.n = 8;
  fn.pro.kernel = 0;
  fn.pro.nb = {8, 8, 4, 4};
  fn.pro.ops = {{MicroOp::Add, 0, 1}};
  fn.pro.outputs = {4};
  return oneKernelProgram(512,
                          {{"x", BufferRole::Temp, ElemType::F32, {8}, 0, 32},
                           {"a", BufferRole::Temp, ElemType::F32, {8}, 64, 32},
                           {"w", BufferRole::Param, ElemType::F32, {4}, 128, 16},
                           {"b", BufferRole::Param, ElemType::F32, {4}, 192, 16},
                           {"x1", BufferRole::Temp, ElemType::F32, {8}, 256, 32},
                           {"y", BufferRole::Temp, ElemType::F32, {8}, 320, 32}},
                          Opcode::FusedNorm, {0, 1, 2, 3, 4, 5}, fn.encode(), {1e-5}, "train",
                          "fused_norm_0");
}
} // namespace

TEST(Program, FusedNormRoundTrip) {
  ProgramDesc p = fusedNormProgram();
  auto q = parseProgram(writeProgram(p), "prog");
  ASSERT_TRUE(q.ok()) << q.status();
  FusedNormProgram fn;
  ASSERT_EQ(fn.decode(q->functions[0].instructions[0].ints, 6), "");
  EXPECT_EQ(fn.kind, FusedNormProgram::Layer);
  EXPECT_EQ(fn.rows, 2);
  EXPECT_EQ(fn.C, 4);
  EXPECT_EQ(fn.x, 4);
  EXPECT_EQ(fn.pro.outputs, std::vector<int64_t>{4});
  EXPECT_EQ(fn.encode(), q->functions[0].instructions[0].ints);
  // x1 written over x, element for element (an in-place residual add): the
  // kernel reads x1 back after its first pass, so that is allowed.
  p.buffers[4].offset = 0;
  EXPECT_TRUE(parseProgram(writeProgram(p), "prog").ok());
}

TEST(Program, FusedNormErrors) {
  auto errorWith = [](auto edit) {
    ProgramDesc p = fusedNormProgram();
    edit(p);
    return errorOf(writeProgram(p));
  };
  auto ints = [](ProgramDesc &p) -> std::vector<int64_t> & {
    return p.functions[0].instructions[0].ints;
  };
  EXPECT_EQ(errorWith([&](ProgramDesc &p) { ints(p)[0] = 3; }),
            "prog: function 'train': fused_norm: bad kind (1 layer norm, 2 RMS norm)");
  EXPECT_EQ(errorWith([&](ProgramDesc &p) { ints(p)[1] = 3; }),
            "prog: function 'train': fused_norm: the prologue's n is not rows x C");
  EXPECT_EQ(errorWith([&](ProgramDesc &p) { ints(p)[4] = 0; }), // w = x, 8 elements
            "prog: function 'train': fused_norm: the weight is not a C-element input");
  EXPECT_EQ(errorWith([&](ProgramDesc &p) { ints(p)[0] = 2; }), // RMS with a bias
            "prog: function 'train': fused_norm: an RMS norm has no bias");
  EXPECT_EQ(errorWith([&](ProgramDesc &p) { ints(p)[3] = 9; }),
            "prog: function 'train': fused_norm: bad normalized value 9 (of 5 values, a "
            "full-size one)");
  // Sizes past what the kernel's grid and 64-bit offsets take.
  EXPECT_EQ(errorWith([&](ProgramDesc &p) { ints(p)[1] = int64_t(1) << 31; }),
            "prog: function 'train': fused_norm: rows (2147483648) x C (4) out of range "
            "(rows below 2^31, rows x C at most 2^40)");
  EXPECT_EQ(errorWith([&](ProgramDesc &p) {
              ints(p)[1] = int64_t(1) << 30;
              ints(p)[2] = int64_t(1) << 11;
            }),
            "prog: function 'train': fused_norm: rows (1073741824) x C (2048) out of range "
            "(rows below 2^31, rows x C at most 2^40)");
  EXPECT_EQ(errorWith([&](ProgramDesc &p) { ints(p)[7] = -2; }), // kernel index
            "prog: function 'train': fused_norm: kernel -2 is not among the program's 1 GPU "
            "entries");
  EXPECT_EQ(errorWith([&](ProgramDesc &p) { ints(p)[8] = 7; }), // I = 7, O = 1, 6 operands
            "prog: function 'train': fused_norm: prologue: bad header (n, inputs, outputs)");
  // y over part of a wider input; x1 over y.
  EXPECT_EQ(errorWith([](ProgramDesc &p) {
              p.buffers[1].dims = {16};
              p.buffers[1].bytes = 64;
              p.buffers[5].offset = 64;
            }),
            "prog: function 'train': fused_norm: output 'y' shares bytes with 'a'");
  EXPECT_EQ(errorWith([](ProgramDesc &p) { p.buffers[5].offset = 256; }),
            "prog: function 'train': fused_norm: output 'y' shares bytes with 'x1'");
  // In place, but x is not stored: the kernel would read the overwritten x.
  EXPECT_EQ(errorWith([](ProgramDesc &p) {
              FusedNormProgram fn;
              ASSERT_EQ(fn.decode(p.functions[0].instructions[0].ints, 6), "");
              fn.pro.outputs = {0}; // stores x (an input) instead of x + a
              p.functions[0].instructions[0].ints = fn.encode();
              p.buffers[5].offset = 64; // y over a
            }),
            "prog: function 'train': fused_norm: output 'y' shares bytes with 'a'");
}

TEST(Program, RoleRangesCopyEachByteOnce) {
  // Two functions' tokens and targets (the same bytes twice), two scalars
  // apart by padding no buffer holds, one apart by a parameter's bytes,
  // and outputs beside them.
  ProgramDesc p;
  auto buffer = [&](BufferRole role, uint64_t offset, uint64_t bytes) {
    BufferDesc b;
    b.role = role;
    b.offset = offset;
    b.bytes = bytes;
    p.buffers.push_back(b);
  };
  buffer(BufferRole::Input, 0, 64);     // tokens
  buffer(BufferRole::Input, 64, 64);    // targets
  buffer(BufferRole::Input, 0, 64);     // eval's tokens
  buffer(BufferRole::Input, 64, 64);    // eval's targets
  buffer(BufferRole::Input, 128, 4);    // lr
  buffer(BufferRole::Input, 192, 8);    // step, past 60 bytes of padding
  buffer(BufferRole::Param, 256, 64);   // a parameter between
  buffer(BufferRole::Input, 320, 4);    // weight decay
  buffer(BufferRole::Output, 384, 4);   // loss
  buffer(BufferRole::Output, 448, 4);   // grad_norm
  buffer(BufferRole::Temp, 512, 0);     // empty
  buffer(BufferRole::Input, 9000, 4);   // past maxGap
  using R = std::vector<std::pair<uint64_t, uint64_t>>;
  EXPECT_EQ(roleRanges(p, BufferRole::Input, 4096), (R{{0, 200}, {320, 324}, {9000, 9004}}));
  EXPECT_EQ(roleRanges(p, BufferRole::Input, 0), (R{{0, 132}, {192, 200}, {320, 324}, {9000, 9004}}));
  EXPECT_EQ(roleRanges(p, BufferRole::Output), (R{{384, 452}}));
  EXPECT_TRUE(roleRanges(p, BufferRole::AdamM).empty());
}
