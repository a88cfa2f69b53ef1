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

#include <climits>

namespace mlir::llm {
#define GEN_PASS_DEF_FUSEELEMENTWISE
#include "llm/Conversion/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
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
  auto inputIndex = [&](Value v, int64_t nb) -> int64_t {
    for (size_t i = 0; i < g.inputs.size(); ++i)
      if (g.inputs[i] == v && g.nb[i] == nb)
        return static_cast<int64_t>(i);
    g.inputs.push_back(v);
    g.nb.push_back(nb);
    return static_cast<int64_t>(g.inputs.size()) - 1;
  };
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
      Range rt = rangeOf(t);
      // The nearest earlier kernel that touches t's bytes must be its
      // elementwise producer, and nothing between may touch its operands.
      rtir::KernelOp p;
      for (Operation *prev = c->getPrevNode(); prev; prev = prev->getPrevNode())
        if (auto k = dyn_cast<rtir::KernelOp>(prev); k && touches(k, {rt})) {
          p = k;
          break;
        }
      if (!p)
        continue;
      std::optional<Group> pg = groupOf(p);
      if (!pg || pg->n != cg->n || !llvm::is_contained(pg->outputs, t))
        continue;
      if (pg->ops.size() + cg->ops.size() > 256 ||
          pg->outputs.size() + cg->outputs.size() > 64 ||
          pg->inputs.size() + cg->inputs.size() > 64)
        continue;
      SmallVector<Range> pRanges;
      for (Value v : p.getOperands())
        pRanges.push_back(rangeOf(v));
      bool legal = true;
      for (Operation *mid = p->getNextNode(); mid != c.getOperation();
           mid = mid->getNextNode())
        if (auto k = dyn_cast<rtir::KernelOp>(mid); k && touches(k, pRanges))
          legal = false;
      // The group reads every input at each element before it writes that
      // element's outputs: an output may overwrite an input of the same
      // element (the same bytes), never a broadcast input or shifted bytes
      // that other elements still read.
      SmallVector<Value> dropped;
      for (Value out : pg->outputs)
        if (llvm::is_contained(cg->inputs, out) && deadAfter(out, p, c))
          dropped.push_back(out);
      Group g = merge(*pg, *cg, dropped);
      auto same = [](Range a, Range b) { return a.lo == b.lo && a.hi == b.hi; };
      for (size_t i = 0; i < g.inputs.size() && legal; ++i)
        for (Value out : g.outputs) {
          Range ro = rangeOf(out), ri = rangeOf(g.inputs[i]);
          if (ro.overlaps(ri) && (g.nb[i] != g.n || !same(ro, ri)))
            legal = false;
        }
      // Two outputs on the same bytes: the later store is the later op's,
      // as in sequence; on shifted bytes, elements would race.
      for (size_t i = 0; i < g.outputs.size() && legal; ++i)
        for (size_t j = i + 1; j < g.outputs.size(); ++j) {
          Range a = rangeOf(g.outputs[i]), b = rangeOf(g.outputs[j]);
          if (a.overlaps(b) && !same(a, b))
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
  auto f = [&](double v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(static_cast<float>(v)));
  };
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
  for (const FusedProgram::Op &o : fp.ops) {
    Value a = vals[o.a], bv = o.b >= 0 ? vals[o.b] : Value();
    Value r;
    switch (o.op) {
    case MicroOp::Add: r = add(a, bv); break;
    case MicroOp::Mul: r = mul(a, bv); break;
    case MicroOp::GeluFwd: r = mul(a, sigmoid(twoZ(a))); break;
    case MicroOp::GeluBwd: {
      Value s = sigmoid(twoZ(a));
      Value dz = mul(f(::llmrt::kGeluBeta),
                     add(one, mul(f(3.0 * ::llmrt::kGeluKappa), mul(a, a))));
      Value t = mul(mul(mul(f(2.0), a), mul(s, sub(one, s))), dz);
      r = mul(bv, add(s, t));
      break;
    }
    case MicroOp::SiluFwd: r = mul(a, sigmoid(a)); break;
    case MicroOp::SiluBwd: {
      Value s = sigmoid(a);
      r = mul(mul(bv, s), add(one, mul(a, sub(one, s))));
      break;
    }
    }
    vals.push_back(r);
  }
  for (size_t o = 0; o < fp.outputs.size(); ++o)
    memref::StoreOp::create(b, loc, vals[fp.outputs[o]], body.getArgument(I + o),
                            ValueRange{e});
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
    for (Block &block : fn.getBody())
      while (fuseOnce(block)) {
      }
  if (!gpu)
    return;
  // One kernel per group; the entries' order is the kernels' index.
  OpBuilder b(module.getContext());
  gpu::GPUModuleOp kernels;
  SmallVector<Attribute> entries;
  module.walk([&](rtir::KernelOp k) {
    if (k.getKernel() != "fused_elementwise")
      return;
    FusedProgram fp;
    ArrayRef<int64_t> ints = k.getInts();
    if (!fp.decode(std::vector<int64_t>(ints.begin(), ints.end()),
                   k.getOperands().size())
             .empty())
      return;
    if (!kernels) {
      b.setInsertionPointToEnd(module.getBody());
      kernels = gpu::GPUModuleOp::create(b, module.getLoc(), "llm_kernels");
      module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), b.getUnitAttr());
    }
    std::string name = "fused_" + std::to_string(entries.size());
    fp.kernel = static_cast<int64_t>(entries.size());
    entries.push_back(b.getStringAttr(name));
    buildKernel(b, k.getLoc(), kernels, name, fp);
    k.setIntsAttr(b.getDenseI64ArrayAttr(fp.encode()));
  });
  if (!entries.empty())
    module->setAttr("llm.gpu_entries", b.getArrayAttr(entries));
}
