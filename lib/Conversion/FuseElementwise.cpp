//===- FuseElementwise.cpp - fusion groups of elementwise kernels ---------===//
//
// Works on the llmrt functions (after llm-lower-to-rt), where every tensor is
// a view of the arena at a fixed offset: the legality of moving a kernel is
// a question of which arena bytes the kernels in between touch.
//
//===----------------------------------------------------------------------===//
#include "llm/Conversion/Passes.h"
#include "llmrt/LLMRTDialect.h"
#include "llmrt/MicroOps.h"
#include "llmrt/ProgramFormat.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/IR/Builders.h"

#include <array>
#include <climits>
#include <cstring>
#include <map>
#include <functional>

namespace mlir::llm {
#define GEN_PASS_DEF_FUSEELEMENTWISE
#include "llm/Conversion/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
using ::llmrt::FusedNormProgram;
using ::llmrt::FusedProgram;
using ::llmrt::MicroOp;
/// The runtime's names live in ::llmrt, the dialect's in mlir::llmrt.
namespace rtir = ::mlir::llmrt;

namespace {

/// The arena bytes a buffer value occupies ([lo, hi)); a rank-dependent view
/// (a ZeRO share) could be anywhere past its base: [lo, max).
struct Range {
  int64_t lo = 0, hi = 0;
  bool overlaps(const Range &o) const { return lo < o.hi && o.lo < hi; }
  /// The very same bytes, known (never a rank-dependent view's [lo, max)).
  bool same(const Range &o) const { return lo == o.lo && hi == o.hi && hi != INT64_MAX; }
};

Range rangeOf(Value v) {
  auto b = v.getDefiningOp<rtir::BufferOp>();
  if (!b)
    return {0, INT64_MAX};
  int64_t lo = b.getOffset();
  if (b.getRankStride())
    return {lo, INT64_MAX};
  return {lo, lo + b.getBytes()};
}

bool isTemp(Value v) {
  auto b = v.getDefiningOp<rtir::BufferOp>();
  return b && b.getRole() == "temp" && !b.getRankStride();
}

/// A fusion group with its operands as values (FusedProgram's shape).
struct Group {
  int64_t n = 0;
  SmallVector<Value> inputs;
  SmallVector<int64_t> nb;
  SmallVector<FusedProgram::Op> ops;
  SmallVector<Value> outputs;
  SmallVector<int64_t> outVals;

  /// The index of input v read with period nb, added if it is new.
  int64_t inputIndex(Value v, int64_t period) {
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i] == v && nb[i] == period)
        return static_cast<int64_t>(i);
    inputs.push_back(v);
    nb.push_back(period);
    return static_cast<int64_t>(inputs.size()) - 1;
  }
};

/// The group of an elementwise kernel, or nothing.
std::optional<Group> groupOf(rtir::KernelOp k) {
  StringRef name = k.getKernel();
  ArrayRef<int64_t> ints = k.getInts();
  auto operands = k.getOperands();
  Group g;
  if (name == "fused_elementwise") {
    FusedProgram fp;
    if (!fp.decode(std::vector<int64_t>(ints.begin(), ints.end()), operands.size())
             .empty())
      return std::nullopt;
    g.n = fp.n;
    int64_t I = fp.numInputs();
    g.inputs.assign(operands.begin(), operands.begin() + I);
    g.nb.assign(fp.nb.begin(), fp.nb.end());
    g.ops.assign(fp.ops.begin(), fp.ops.end());
    g.outputs.assign(operands.begin() + I, operands.end());
    g.outVals.assign(fp.outputs.begin(), fp.outputs.end());
    return g;
  }
  auto binary = [&](MicroOp op, int64_t nb) {
    g.n = ints[0];
    g.inputs = {operands[0], operands[1]};
    g.nb = {ints[0], nb};
    g.ops = {{op, 0, 1}};
    g.outputs = {operands[2]};
    g.outVals = {2};
  };
  if (name == "add" || name == "mul") {
    binary(name == "add" ? MicroOp::Add : MicroOp::Mul, ints[1]);
    return g;
  }
  if (name == "gelu_bwd" || name == "silu_bwd") {
    binary(name == "gelu_bwd" ? MicroOp::GeluBwd : MicroOp::SiluBwd, ints[0]);
    return g;
  }
  if (name == "gelu_fwd" || name == "silu_fwd") {
    g.n = ints[0];
    g.inputs = {operands[0]};
    g.nb = {ints[0]};
    g.ops = {{name == "gelu_fwd" ? MicroOp::GeluFwd : MicroOp::SiluFwd, 0, -1}};
    g.outputs = {operands[1]};
    g.outVals = {1};
    return g;
  }
  return std::nullopt;
}

/// The group that computes producer `p` then consumer `c`, where c reads
/// p's output `t`: every read by c of an output of p becomes p's value (the
/// group loads its inputs before it stores), and the outputs of p in
/// `dropped` (read by c and by nothing after it) are not written.
Group merge(const Group &p, const Group &c, ArrayRef<Value> dropped) {
  Group g;
  g.n = c.n;
  auto inputIndex = [&](Value v, int64_t nb) { return g.inputIndex(v, nb); };
  auto producedBy = [&](Value v) -> int64_t {
    for (size_t o = 0; o < p.outputs.size(); ++o)
      if (p.outputs[o] == v)
        return static_cast<int64_t>(o);
    return -1;
  };
  SmallVector<int64_t> pIn, cIn;
  for (size_t i = 0; i < p.inputs.size(); ++i)
    pIn.push_back(inputIndex(p.inputs[i], p.nb[i]));
  for (size_t i = 0; i < c.inputs.size(); ++i)
    cIn.push_back(producedBy(c.inputs[i]) >= 0 ? -1
                                                : inputIndex(c.inputs[i], c.nb[i]));
  const int64_t I = static_cast<int64_t>(g.inputs.size());
  const int64_t pI = static_cast<int64_t>(p.inputs.size());
  const int64_t cI = static_cast<int64_t>(c.inputs.size());
  const int64_t pBase = I, cBase = I + static_cast<int64_t>(p.ops.size());
  // Value ids of p and of c in the merged group.
  auto pValue = [&](int64_t v) { return v < pI ? pIn[v] : pBase + (v - pI); };
  auto cValue = [&](int64_t v) {
    if (v < cI)
      return cIn[v] < 0 ? pValue(p.outVals[producedBy(c.inputs[v])]) : cIn[v];
    return cBase + (v - cI);
  };
  for (const FusedProgram::Op &o : p.ops)
    g.ops.push_back({o.op, pValue(o.a), o.b < 0 ? -1 : pValue(o.b)});
  for (const FusedProgram::Op &o : c.ops)
    g.ops.push_back({o.op, cValue(o.a), o.b < 0 ? -1 : cValue(o.b)});
  for (size_t o = 0; o < p.outputs.size(); ++o)
    if (!llvm::is_contained(dropped, p.outputs[o])) {
      g.outputs.push_back(p.outputs[o]);
      g.outVals.push_back(pValue(p.outVals[o]));
    }
  for (size_t o = 0; o < c.outputs.size(); ++o) {
    g.outputs.push_back(c.outputs[o]);
    g.outVals.push_back(cValue(c.outVals[o]));
  }
  return g;
}

bool touches(rtir::KernelOp k, const SmallVector<Range> &ranges) {
  for (Value v : k.getOperands()) {
    Range r = rangeOf(v);
    for (const Range &q : ranges)
      if (r.overlaps(q))
        return true;
  }
  return false;
}

/// Whether the bytes of `t` are dead after `c`: no other use of the value,
/// and the next kernel that touches them (if any) only writes them (an
/// elementwise kernel with `t`'s bytes among its outputs, not its inputs).
bool deadAfter(Value t, rtir::KernelOp p, rtir::KernelOp c) {
  if (!isTemp(t))
    return false;
  for (Operation *user : t.getUsers())
    if (user != p.getOperation() && user != c.getOperation())
      return false;
  Range rt = rangeOf(t);
  for (Operation *op = c->getNextNode(); op; op = op->getNextNode()) {
    auto k = dyn_cast<rtir::KernelOp>(op);
    if (!k || !touches(k, {rt}))
      continue;
    std::optional<Group> g = groupOf(k);
    if (!g)
      return false;
    for (Value in : g->inputs)
      if (rangeOf(in).overlaps(rt))
        return false;
    return true;
  }
  return true;
}

/// The nearest kernel before `c` that touches the bytes `r`, or null.
rtir::KernelOp lastToucher(rtir::KernelOp c, Range r) {
  for (Operation *prev = c->getPrevNode(); prev; prev = prev->getPrevNode())
    if (auto k = dyn_cast<rtir::KernelOp>(prev); k && touches(k, {r}))
      return k;
  return {};
}

/// Whether no kernel strictly between `p` and `c` touches p's operands.
bool untouchedBetween(rtir::KernelOp p, rtir::KernelOp c) {
  SmallVector<Range> pRanges;
  for (Value v : p.getOperands())
    pRanges.push_back(rangeOf(v));
  for (Operation *mid = p->getNextNode(); mid != c.getOperation(); mid = mid->getNextNode())
    if (auto k = dyn_cast<rtir::KernelOp>(mid); k && touches(k, pRanges))
      return false;
  return true;
}

/// One fusion in `block`, if any is legal; true when the IR changed.
bool fuseOnce(Block &block) {
  for (Operation &op : block) {
    auto c = dyn_cast<rtir::KernelOp>(&op);
    if (!c)
      continue;
    std::optional<Group> cg = groupOf(c);
    if (!cg)
      continue;
    for (size_t ci = 0; ci < cg->inputs.size(); ++ci) {
      Value t = cg->inputs[ci];
      if (cg->nb[ci] != cg->n)
        continue; // a broadcast read of t: its producer computes other sizes
      // The nearest earlier kernel that touches t's bytes must be its
      // elementwise producer, and nothing between may touch its operands.
      rtir::KernelOp p = lastToucher(c, rangeOf(t));
      if (!p)
        continue;
      std::optional<Group> pg = groupOf(p);
      if (!pg || pg->n != cg->n || !llvm::is_contained(pg->outputs, t))
        continue;
      if (pg->ops.size() + cg->ops.size() > 256 ||
          pg->outputs.size() + cg->outputs.size() > 64 ||
          pg->inputs.size() + cg->inputs.size() > 64)
        continue;
      bool legal = untouchedBetween(p, c);
      // The group reads every input at each element before it writes that
      // element's outputs: an output may overwrite an input of the same
      // element (the same bytes), never a broadcast input or shifted bytes
      // that other elements still read.
      SmallVector<Value> dropped;
      for (Value out : pg->outputs)
        if (llvm::is_contained(cg->inputs, out) && deadAfter(out, p, c))
          dropped.push_back(out);
      Group g = merge(*pg, *cg, dropped);
      for (size_t i = 0; i < g.inputs.size() && legal; ++i)
        for (Value out : g.outputs) {
          Range ro = rangeOf(out), ri = rangeOf(g.inputs[i]);
          if (ro.overlaps(ri) && (g.nb[i] != g.n || !ro.same(ri)))
            legal = false;
        }
      // Two outputs on the same bytes: the later store is the later op's,
      // as in sequence; on shifted bytes, elements would race.
      for (size_t i = 0; i < g.outputs.size() && legal; ++i)
        for (size_t j = i + 1; j < g.outputs.size(); ++j) {
          Range a = rangeOf(g.outputs[i]), b = rangeOf(g.outputs[j]);
          if (a.overlaps(b) && !a.same(b))
            legal = false;
        }
      if (!legal)
        continue;
      FusedProgram fp;
      fp.n = g.n;
      fp.nb.assign(g.nb.begin(), g.nb.end());
      fp.ops.assign(g.ops.begin(), g.ops.end());
      fp.outputs.assign(g.outVals.begin(), g.outVals.end());
      SmallVector<Value> operands(g.inputs);
      operands.append(g.outputs.begin(), g.outputs.end());
      OpBuilder b(c);
      std::vector<int64_t> ints = fp.encode();
      rtir::KernelOp::create(b, c.getLoc(), "fused_elementwise", operands,
                              b.getDenseI64ArrayAttr(ints),
                              b.getDenseF64ArrayAttr({}));
      c.erase();
      p.erase();
      return true;
    }
  }
  return false;
}

/// One layer or RMS norm forward merged with the elementwise group that
/// produces its input (a fused_norm), if any is legal; true when the IR
/// changed.
bool fuseNormOnce(Block &block) {
  for (Operation &op : block) {
    auto c = dyn_cast<rtir::KernelOp>(&op);
    if (!c)
      continue;
    const bool layer = c.getKernel() == "layer_norm_fwd";
    if (!layer && c.getKernel() != "rms_norm_fwd")
      continue;
    // layer_norm_fwd [x, w, b, y], rms_norm_fwd [x, w, y] {rows, C} (eps)
    auto operands = c.getOperands();
    ArrayRef<int64_t> ints = c.getInts();
    ArrayRef<double> floats = c.getFloats();
    if (ints.size() != 2 || floats.size() != 1 || operands.size() != (layer ? 4u : 3u))
      continue;
    const int64_t rows = ints[0], C = ints[1];
    Value x = operands[0], w = operands[1], y = operands.back();
    Value bias = layer ? operands[2] : Value();
    rtir::KernelOp p = lastToucher(c, rangeOf(x));
    if (!p)
      continue;
    std::optional<Group> pg = groupOf(p);
    if (!pg || pg->n != rows * C || !llvm::is_contained(pg->outputs, x) ||
        pg->inputs.size() + 2 > 64 || !untouchedBetween(p, c))
      continue;
    // The group: p's, with x's value normalized, w and b read by column.
    Group g = *pg;
    const auto xo = static_cast<size_t>(llvm::find(g.outputs, x) - g.outputs.begin());
    int64_t xv = g.outVals[xo];
    if (g.outputs.size() > 1 && deadAfter(x, p, c)) {
      g.outputs.erase(g.outputs.begin() + xo);
      g.outVals.erase(g.outVals.begin() + xo);
    }
    const auto I0 = static_cast<int64_t>(g.inputs.size());
    const int64_t wi = g.inputIndex(w, C), bi = layer ? g.inputIndex(bias, C) : -1;
    // New inputs shift the micro-ops' value ids.
    const int64_t shift = static_cast<int64_t>(g.inputs.size()) - I0;
    auto moved = [&](int64_t v) { return v >= I0 ? v + shift : v; };
    for (FusedProgram::Op &o : g.ops) {
      o.a = moved(o.a);
      o.b = o.b < 0 ? -1 : moved(o.b);
    }
    for (int64_t &v : g.outVals)
      v = moved(v);
    xv = moved(xv);
    // Outputs never share bytes with each other. An output (y too) may
    // overwrite an input of the same element (an in-place residual add)
    // only where the group stores x: the kernel's loop form (C not a
    // multiple of 32, or over 1024) then reads x back in the passes after
    // the first, and of the inputs only w and b; otherwise it recomputes x
    // from inputs that must still hold their values. The unrolled form
    // keeps x in registers; the rule holds for both.
    SmallVector<Value> outs(g.outputs);
    outs.push_back(y);
    const bool xStored = llvm::is_contained(g.outVals, xv);
    bool legal = true;
    for (size_t o = 0; o < outs.size() && legal; ++o) {
      Range ro = rangeOf(outs[o]);
      for (size_t i = 0; i < g.inputs.size(); ++i) {
        Range ri = rangeOf(g.inputs[i]);
        if (ro.overlaps(ri) && (!xStored || g.nb[i] != g.n || !ro.same(ri)))
          legal = false;
      }
      for (size_t q = o + 1; q < outs.size(); ++q)
        legal &= !ro.overlaps(rangeOf(outs[q]));
    }
    if (!legal)
      continue;
    FusedNormProgram fn;
    fn.kind = layer ? FusedNormProgram::Layer : FusedNormProgram::RMS;
    fn.rows = rows, fn.C = C, fn.x = xv, fn.w = wi, fn.b = bi;
    fn.pro.n = g.n;
    fn.pro.nb.assign(g.nb.begin(), g.nb.end());
    fn.pro.ops.assign(g.ops.begin(), g.ops.end());
    fn.pro.outputs.assign(g.outVals.begin(), g.outVals.end());
    SmallVector<Value> all(g.inputs);
    all.append(outs.begin(), outs.end());
    OpBuilder b(c);
    rtir::KernelOp::create(b, c.getLoc(), "fused_norm", all,
                            b.getDenseI64ArrayAttr(fn.encode()),
                            b.getDenseF64ArrayAttr(floats));
    c.erase();
    p.erase();
    return true;
  }
  return false;
}

/// Micro-op `op` of a and b (b unused by unary ops), in arith and math ops:
/// MicroOps.h's formulas.
Value microOp(OpBuilder &b, Location loc, MicroOp op, Value a, Value bv) {
  auto f = [&](double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(static_cast<float>(v)));
  };
  Value one = f(1.0);
  // sigmoid(k x) = 1 / (1 + exp(-k x)).
  auto sigmoid = [&](Value x) {
    Value ex = math::ExpOp::create(b, loc, arith::NegFOp::create(b, loc, x));
    return arith::DivFOp::create(b, loc, one, arith::AddFOp::create(b, loc, one, ex));
  };
  auto mul = [&](Value x, Value y) { return arith::MulFOp::create(b, loc, x, y); };
  auto add = [&](Value x, Value y) { return arith::AddFOp::create(b, loc, x, y); };
  auto sub = [&](Value x, Value y) { return arith::SubFOp::create(b, loc, x, y); };
  // 2 z for GELU's tanh form: 2 beta (x + kappa x^3).
  auto twoZ = [&](Value x) {
    Value x3 = mul(mul(x, x), x);
    return mul(f(2.0 * ::llmrt::kGeluBeta), add(x, mul(f(::llmrt::kGeluKappa), x3)));
  };
  switch (op) {
  case MicroOp::Add: return add(a, bv);
  case MicroOp::Mul: return mul(a, bv);
  case MicroOp::GeluFwd: return mul(a, sigmoid(twoZ(a)));
  case MicroOp::GeluBwd: {
    Value s = sigmoid(twoZ(a));
    Value dz = mul(f(::llmrt::kGeluBeta),
                   add(one, mul(f(3.0 * ::llmrt::kGeluKappa), mul(a, a))));
    Value t = mul(mul(mul(f(2.0), a), mul(s, sub(one, s))), dz);
    return mul(bv, add(s, t));
  }
  case MicroOp::SiluFwd: return mul(a, sigmoid(a));
  case MicroOp::SiluBwd: {
    Value s = sigmoid(a);
    return mul(mul(bv, s), add(one, mul(a, sub(one, s))));
  }
  }
  return {};
}

/// The gpu.func of a group: a grid-stride loop over its n elements.
void buildKernel(OpBuilder &b, Location loc, gpu::GPUModuleOp module,
                 StringRef name, const FusedProgram &fp) {
  Type f32 = b.getF32Type();
  SmallVector<Type> args;
  for (int64_t nb : fp.nb)
    args.push_back(MemRefType::get({nb}, f32));
  for (size_t o = 0; o < fp.outputs.size(); ++o)
    args.push_back(MemRefType::get({fp.n}, f32));
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  auto fn = gpu::GPUFuncOp::create(b, loc, name, b.getFunctionType(args, {}));
  fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  Block &body = fn.getBody().front();
  b.setInsertionPointToStart(&body);
  auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); };
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value bid = gpu::BlockIdOp::create(b, loc, gpu::Dimension::x);
  Value bdim = gpu::BlockDimOp::create(b, loc, gpu::Dimension::x);
  Value gdim = gpu::GridDimOp::create(b, loc, gpu::Dimension::x);
  Value start = arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, bid, bdim), tid);
  Value step = arith::MulIOp::create(b, loc, gdim, bdim);
  auto loop = scf::ForOp::create(b, loc, start, cst(fp.n), step);
  b.setInsertionPointToStart(loop.getBody());
  Value e = loop.getInductionVar();
  const int64_t I = fp.numInputs();
  SmallVector<Value> vals;
  for (int64_t i = 0; i < I; ++i) {
    Value idx = fp.nb[i] == fp.n ? e : arith::RemUIOp::create(b, loc, e, cst(fp.nb[i]));
    vals.push_back(memref::LoadOp::create(b, loc, body.getArgument(i), ValueRange{idx}));
  }
  for (const FusedProgram::Op &o : fp.ops)
    vals.push_back(microOp(b, loc, o.op, vals[o.a], o.b >= 0 ? vals[o.b] : Value()));
  for (size_t o = 0; o < fp.outputs.size(); ++o)
    memref::StoreOp::create(b, loc, vals[fp.outputs[o]], body.getArgument(I + o),
                            ValueRange{e});
  b.setInsertionPointToEnd(&body);
  gpu::ReturnOp::create(b, loc);
}

/// The gpu.func of a fused_norm: one warp a row, kFusedNormWarps rows a
/// block. Operand k is its bytes (fp32 size) and a storage code (0 fp32,
/// 1 bf16, 2 fp16: the runtime's 16-bit storage) after all the pointers.
/// Per row: pass 1 computes the prologue, stores its outputs and sums x (or
/// x^2); a layer norm's pass 2 sums (x - mean)^2; the last pass writes y.
/// Where C is a multiple of 32 up to 1024 the passes are unrolled and x
/// stays in registers; otherwise the passes after the first read x back
/// from its output where the group stores it (this thread's own store),
/// else recompute it from the inputs.
void buildNormKernel(OpBuilder &b, Location loc, gpu::GPUModuleOp module,
                     StringRef name, const FusedNormProgram &fn, double eps) {
  const FusedProgram &fp = fn.pro;
  const int64_t I = fp.numInputs(), O = static_cast<int64_t>(fp.outputs.size());
  const int64_t K = I + O + 1;
  Type f32 = b.getF32Type(), i32 = b.getI32Type();
  SmallVector<int64_t> elems;
  for (int64_t k = 0; k < K; ++k)
    elems.push_back(k < I ? fp.nb[k] : fp.n);
  SmallVector<Type> args;
  for (int64_t k = 0; k < K; ++k)
    args.push_back(MemRefType::get({elems[k] * 4}, b.getI8Type()));
  for (int64_t k = 0; k < K; ++k)
    args.push_back(i32);
  OpBuilder::InsertionGuard guard(b);
  b.setInsertionPointToEnd(module.getBody());
  auto func = gpu::GPUFuncOp::create(b, loc, name, b.getFunctionType(args, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), b.getUnitAttr());
  const int32_t threads = static_cast<int32_t>(32 * ::llmrt::kFusedNormWarps);
  func.setKnownBlockSizeAttr(b.getDenseI32ArrayAttr({threads, 1, 1}));
  Block &body = func.getBody().front();
  b.setInsertionPointToStart(&body);
  auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); };
  auto f = [&](double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(static_cast<float>(v)));
  };
  auto mul = [&](Value x, Value y) { return arith::MulFOp::create(b, loc, x, y); };
  auto add = [&](Value x, Value y) { return arith::AddFOp::create(b, loc, x, y); };
  auto sub = [&](Value x, Value y) { return arith::SubFOp::create(b, loc, x, y); };
  // Typed views of each operand's bytes.
  Value zero = cst(0);
  SmallVector<std::array<Value, 3>> views;
  for (int64_t k = 0; k < K; ++k) {
    std::array<Value, 3> v;
    Type types[3] = {f32, b.getBF16Type(), b.getF16Type()};
    for (int t = 0; t < 3; ++t)
      v[t] = memref::ViewOp::create(b, loc, MemRefType::get({elems[k]}, types[t]),
                                    body.getArgument(k), zero, ValueRange{});
    views.push_back(v);
  }
  auto code = [&](int64_t k) { return body.getArgument(K + k); };
  auto isCode = [&](int64_t k, int32_t c) {
    Value cv = arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(c));
    return arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, code(k), cv);
  };
  // Each operand's storage where a body knows it (0 fp32, 1 bf16, 2 fp16),
  // or -1: by its code at run time.
  SmallVector<int> known(K, -1);
  // A load or store by the operand's storage: fp32, else bf16, else fp16.
  auto load = [&](int64_t k, Value idx) -> Value {
    if (known[k] >= 0) {
      Value v = memref::LoadOp::create(b, loc, views[k][known[k]], ValueRange{idx});
      return known[k] ? arith::ExtFOp::create(b, loc, f32, v).getResult() : v;
    }
    auto outer = scf::IfOp::create(b, loc, TypeRange{f32}, isCode(k, 0), true);
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(outer.thenBlock());
      scf::YieldOp::create(b, loc, memref::LoadOp::create(b, loc, views[k][0], ValueRange{idx}).getResult());
      b.setInsertionPointToStart(outer.elseBlock());
      auto inner = scf::IfOp::create(b, loc, TypeRange{f32}, isCode(k, 1), true);
      for (int t = 1; t < 3; ++t) {
        b.setInsertionPointToStart(t == 1 ? inner.thenBlock() : inner.elseBlock());
        Value h = memref::LoadOp::create(b, loc, views[k][t], ValueRange{idx});
        scf::YieldOp::create(b, loc, arith::ExtFOp::create(b, loc, f32, h).getResult());
      }
      b.setInsertionPointAfter(inner);
      scf::YieldOp::create(b, loc, inner.getResult(0));
    }
    return outer.getResult(0);
  };
  auto store = [&](int64_t k, Value idx, Value v) {
    if (known[k] >= 0) {
      Type ht = known[k] == 1 ? Type(b.getBF16Type()) : Type(b.getF16Type());
      memref::StoreOp::create(b, loc, known[k] ? arith::TruncFOp::create(b, loc, ht, v) : v,
                              views[k][known[k]], ValueRange{idx});
      return;
    }
    auto outer = scf::IfOp::create(b, loc, TypeRange{}, isCode(k, 0), true);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(outer.thenBlock());
    memref::StoreOp::create(b, loc, v, views[k][0], ValueRange{idx});
    b.setInsertionPointToStart(outer.elseBlock());
    auto inner = scf::IfOp::create(b, loc, TypeRange{}, isCode(k, 1), true);
    for (int t = 1; t < 3; ++t) {
      b.setInsertionPointToStart(t == 1 ? inner.thenBlock() : inner.elseBlock());
      Type ht = t == 1 ? Type(b.getBF16Type()) : Type(b.getF16Type());
      memref::StoreOp::create(b, loc, arith::TruncFOp::create(b, loc, ht, v), views[k][t],
                              ValueRange{idx});
    }
  };
  // The prologue's values at element e (stores its outputs when `stores`).
  auto prologue = [&](Value e, bool stores) {
    SmallVector<Value> vals;
    for (int64_t i = 0; i < I; ++i) {
      Value idx = fp.nb[i] == fp.n ? e : arith::RemUIOp::create(b, loc, e, cst(fp.nb[i]));
      vals.push_back(load(i, idx));
    }
    for (const FusedProgram::Op &o : fp.ops)
      vals.push_back(microOp(b, loc, o.op, vals[o.a], o.b >= 0 ? vals[o.b] : Value()));
    if (stores)
      for (int64_t o = 0; o < O; ++o)
        store(I + o, e, vals[fp.outputs[o]]);
    return vals[fn.x];
  };
  const int64_t xOut = llvm::find(fp.outputs, fn.x) - fp.outputs.begin();
  auto xAt = [&](Value e) { return xOut < O ? load(I + xOut, e) : prologue(e, false); };
  // A sum over the warp's 32 lanes, in every lane.
  auto warpSum = [&](Value v) {
    for (int32_t off = 16; off >= 1; off /= 2)
      v = add(v, gpu::ShuffleOp::create(b, loc, v, off, 32, gpu::ShuffleMode::XOR)
                     .getShuffleResult());
    return v;
  };
  Value tid = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x);
  Value lane = arith::RemUIOp::create(b, loc, tid, cst(32));
  Value row = arith::AddIOp::create(
      b, loc,
      arith::MulIOp::create(b, loc, gpu::BlockIdOp::create(b, loc, gpu::Dimension::x),
                            cst(::llmrt::kFusedNormWarps)),
      arith::DivUIOp::create(b, loc, tid, cst(32)));
  Value inRange = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, row, cst(fn.rows));
  auto guardIf = scf::IfOp::create(b, loc, TypeRange{}, inRange, false);
  b.setInsertionPointToStart(guardIf.thenBlock());
  Value base = arith::MulIOp::create(b, loc, row, cst(fn.C));
  auto emitRow = [&]() {
  // The row's columns lane, lane + 32, ...: body(e, c, j, acc), j the
  // column's index among the lane's where they are unrolled (C a multiple
  // of 32, at most kMaxUnrolled a lane: x stays in registers between the
  // passes), else -1 in an scf.for.
  constexpr int64_t kMaxUnrolled = 32;
  const int64_t J = fn.C % 32 == 0 && fn.C / 32 <= kMaxUnrolled ? fn.C / 32 : 0;
  using Body = std::function<Value(Value, Value, int64_t, Value)>;
  auto columns = [&](Value init, const Body &fnBody) -> Value {
    if (J) {
      Value acc = init;
      for (int64_t j = 0; j < J; ++j) {
        Value c = arith::AddIOp::create(b, loc, lane, cst(32 * j));
        Value next = fnBody(arith::AddIOp::create(b, loc, base, c), c, j, acc);
        if (init)
          acc = next;
      }
      return acc;
    }
    auto loop = scf::ForOp::create(b, loc, lane, cst(fn.C), cst(32),
                                   init ? ValueRange{init} : ValueRange{});
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(loop.getBody());
    Value c = loop.getInductionVar();
    Value e = arith::AddIOp::create(b, loc, base, c);
    Value next = fnBody(e, c, -1, init ? loop.getRegionIterArgs()[0] : Value());
    if (init)
      scf::YieldOp::create(b, loc, next);
    return init ? loop.getResult(0) : Value();
  };
  SmallVector<Value> xs; // unrolled: x at the lane's column j
  auto xOf = [&](Value e, int64_t j) { return j >= 0 ? xs[j] : xAt(e); };
  const bool layer = fn.kind == FusedNormProgram::Layer;
  // Divided by C, as the runtime's norm kernels do (not times 1/C).
  Value cf = f(static_cast<double>(fn.C));
  auto div = [&](Value x, Value y) { return arith::DivFOp::create(b, loc, x, y); };
  Value s1 = warpSum(columns(f(0.0), [&](Value e, Value, int64_t j, Value acc) {
    Value x = prologue(e, true);
    if (j >= 0)
      xs.push_back(x);
    return add(acc, layer ? x : mul(x, x));
  }));
  Value mean, rstd;
  if (layer) {
    mean = div(s1, cf);
    Value s2 = warpSum(columns(f(0.0), [&](Value e, Value, int64_t j, Value acc) {
      Value d = sub(xOf(e, j), mean);
      return add(acc, mul(d, d));
    }));
    rstd = math::RsqrtOp::create(b, loc, add(div(s2, cf), f(eps)));
  } else {
    rstd = math::RsqrtOp::create(b, loc, add(div(s1, cf), f(eps)));
  }
  columns(Value(), [&](Value e, Value c, int64_t j, Value) {
    Value x = xOf(e, j);
    Value t = mul(layer ? sub(x, mean) : x, rstd);
    Value yv = mul(t, load(fn.w, c));
    if (layer)
      yv = add(yv, load(fn.b, c));
    store(K - 1, e, yv);
    return Value();
  });
  };
  // The storage of the operands the runtime may store 16-bit (the row
  // inputs and y, Store16's slots) is known per body: a body per bf16
  // subset of them (up to 3 of them: 8 bodies), chosen once by the codes;
  // any other combination (fp16, more operands) takes the body that
  // branches on each operand's code.
  SmallVector<int64_t> eligible;
  for (int64_t i = 0; i < I; ++i)
    if (fp.nb[i] == fp.n)
      eligible.push_back(i);
  eligible.push_back(K - 1);
  if (eligible.size() > 3) {
    emitRow();
  } else {
    const int64_t cases = int64_t(1) << eligible.size();
    auto i32c = [&](int32_t v) {
      return arith::ConstantOp::create(b, loc, b.getI32IntegerAttr(v)).getResult();
    };
    // sel: bit i for eligible operand i in bf16; `cases` where a code is
    // anything else (an fp16 operand, a 16-bit operand not eligible).
    Value sel = i32c(0), other = arith::ConstantOp::create(b, loc, b.getBoolAttr(false));
    for (int64_t k = 0; k < K; ++k) {
      auto pos = llvm::find(eligible, k);
      if (pos == eligible.end()) {
        other = arith::OrIOp::create(
            b, loc, other,
            arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ne, code(k), i32c(0)));
        continue;
      }
      const int32_t bit = int32_t(1) << (pos - eligible.begin());
      sel = arith::OrIOp::create(
          b, loc, sel, arith::SelectOp::create(b, loc, isCode(k, 1), i32c(bit), i32c(0)));
      other = arith::OrIOp::create(
          b, loc, other, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ugt, code(k), i32c(1)));
    }
    sel = arith::SelectOp::create(b, loc, other, i32c(static_cast<int32_t>(cases)), sel);
    Value idx = arith::IndexCastOp::create(b, loc, b.getIndexType(), sel);
    SmallVector<int64_t> caseValues;
    for (int64_t c = 0; c < cases; ++c)
      caseValues.push_back(c);
    auto sw = scf::IndexSwitchOp::create(b, loc, TypeRange{}, idx, caseValues,
                                         static_cast<unsigned>(cases));
    for (int64_t c = 0; c <= cases; ++c) {
      Region &region = c < cases ? sw.getCaseRegions()[c] : sw.getDefaultRegion();
      OpBuilder::InsertionGuard g(b);
      b.createBlock(&region);
      for (int64_t k = 0; k < K; ++k)
        known[k] = c < cases ? 0 : -1;
      for (size_t i = 0; c < cases && i < eligible.size(); ++i)
        known[eligible[i]] = (c >> i & 1) ? 1 : 0;
      emitRow();
      scf::YieldOp::create(b, loc);
    }
  }
  b.setInsertionPointToEnd(&body);
  gpu::ReturnOp::create(b, loc);
}

struct FuseElementwisePass
    : public llm::impl::FuseElementwiseBase<FuseElementwisePass> {
  using FuseElementwiseBase::FuseElementwiseBase;
  void runOnOperation() override;
};

} // namespace

void FuseElementwisePass::runOnOperation() {
  ModuleOp module = getOperation();
  for (auto fn : module.getOps<func::FuncOp>())
    for (Block &block : fn.getBody()) {
      while (fuseOnce(block)) {
      }
      while (norms && fuseNormOnce(block)) {
      }
    }
  if (!gpu)
    return;
  // One kernel per group; the entries' order is the kernels' index.
  OpBuilder b(module.getContext());
  gpu::GPUModuleOp kernels;
  SmallVector<Attribute> entries;
  std::map<std::vector<int64_t>, int64_t> kernelOf;
  module.walk([&](rtir::KernelOp k) {
    const bool norm = k.getKernel() == "fused_norm";
    if (!norm && k.getKernel() != "fused_elementwise")
      return;
    std::vector<int64_t> ints(k.getInts().begin(), k.getInts().end());
    FusedNormProgram fn;
    FusedProgram &fp = fn.pro;
    if (!(norm ? fn.decode(ints, k.getOperands().size())
               : fp.decode(ints, k.getOperands().size()))
             .empty())
      return;
    if (!kernels) {
      b.setInsertionPointToEnd(module.getBody());
      kernels = gpu::GPUModuleOp::create(b, module.getLoc(), "llm_kernels");
      module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), b.getUnitAttr());
    }
    // Groups of the same program (each layer's) share one kernel.
    fp.kernel = -1;
    std::vector<int64_t> key = norm ? fn.encode() : fp.encode();
    key.push_back(norm);
    if (norm) {
      double eps = k.getFloats()[0];
      int64_t bits;
      std::memcpy(&bits, &eps, sizeof bits);
      key.push_back(bits);
    }
    auto [it, added] = kernelOf.try_emplace(key, static_cast<int64_t>(entries.size()));
    fp.kernel = it->second;
    if (added) {
      std::string name = (norm ? "fused_norm_" : "fused_") + std::to_string(entries.size());
      entries.push_back(b.getStringAttr(name));
      if (norm)
        buildNormKernel(b, k.getLoc(), kernels, name, fn, k.getFloats()[0]);
      else
        buildKernel(b, k.getLoc(), kernels, name, fp);
    }
    k.setIntsAttr(b.getDenseI64ArrayAttr(norm ? fn.encode() : fp.encode()));
  });
  if (!entries.empty())
    module->setAttr("llm.gpu_entries", b.getArrayAttr(entries));
}
