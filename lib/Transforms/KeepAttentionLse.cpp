//===- KeepAttentionLse.cpp - keep attention's log-sum-exp ----------------===//
#include "llm/LLMOps.h"
#include "llm/Transforms/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"

namespace mlir::llm {
#define GEN_PASS_DEF_KEEPATTENTIONLSE
#include "llm/Transforms/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
using namespace mlir::llm;

namespace {

struct KeepAttentionLsePass
    : public llm::impl::KeepAttentionLseBase<KeepAttentionLsePass> {
  void runOnOperation() override {
    getOperation().walk([&](Block *block) { rewriteBlock(*block); });
  }

  /// In program order: the latest forward reading each (q, k, v), then
  /// every gradient that finds one.
  static void rewriteBlock(Block &block) {
    using Key = std::tuple<Value, Value, Value>;
    DenseMap<Key, Operation *> latest; // llm.attention or llm.attention_lse
    for (Operation &op : llvm::make_early_inc_range(block)) {
      if (auto f = dyn_cast<AttentionOp>(op)) {
        latest[{f.getQ(), f.getK(), f.getV()}] = f;
        continue;
      }
      auto g = dyn_cast<AttentionGradOp>(op);
      if (!g)
        continue;
      auto it = latest.find({g.getQ(), g.getK(), g.getV()});
      if (it == latest.end() ||
          it->second->getAttrDictionary() != g->getAttrDictionary())
        continue;
      AttentionLseOp fwd = dyn_cast<AttentionLseOp>(it->second);
      if (!fwd) {
        auto f = cast<AttentionOp>(it->second);
        OpBuilder b(f);
        auto q = cast<RankedTensorType>(f.getQ().getType());
        auto lseType = RankedTensorType::get(
            {q.getDimSize(0), static_cast<int64_t>(f.getNumHeads()), q.getDimSize(1)},
            b.getF32Type());
        fwd = AttentionLseOp::create(
            b, f.getLoc(), TypeRange{f.getResult().getType(), lseType},
            ValueRange{f.getQ(), f.getK(), f.getV()}, f->getAttrs());
        f.getResult().replaceAllUsesWith(fwd.getResult());
        f.erase();
        it->second = fwd;
      }
      OpBuilder b(g);
      auto grad = AttentionGradLseOp::create(
          b, g.getLoc(), g->getResultTypes(),
          ValueRange{g.getQ(), g.getK(), g.getV(), g.getDout(), fwd.getResult(),
                     fwd.getLse()},
          g->getAttrs());
      g->replaceAllUsesWith(grad->getResults());
      g.erase();
    }
  }
};

} // namespace
