//===- F32Storage.cpp - store a 16-bit model in f32 -----------------------===//
#include "llm/Transforms/Passes.h"

#include "mlir/IR/BuiltinTypes.h"

namespace mlir::llm {
#define GEN_PASS_DEF_F32STORAGE
#include "llm/Transforms/Passes.h.inc"
} // namespace mlir::llm

using namespace mlir;
using namespace mlir::llm;

namespace {

/// `t` with f32 elements when they are bf16 or f16; else `t`.
Type widen(Type t) {
  auto r = dyn_cast<RankedTensorType>(t);
  if (!r || !(r.getElementType().isBF16() || r.getElementType().isF16()))
    return t;
  return RankedTensorType::get(r.getShape(), Float32Type::get(t.getContext()),
                               r.getEncoding());
}

struct F32StoragePass : public llm::impl::F32StorageBase<F32StoragePass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    // The model's precision: the first 16-bit tensor found.
    StringRef precision;
    auto note = [&](Type t) {
      if (auto r = dyn_cast<RankedTensorType>(t); r && precision.empty()) {
        if (r.getElementType().isBF16())
          precision = "bf16";
        else if (r.getElementType().isF16())
          precision = "fp16";
      }
    };
    module.walk([&](Operation *op) {
      for (Region &region : op->getRegions())
        for (Block &block : region)
          for (BlockArgument a : block.getArguments()) {
            note(a.getType());
            a.setType(widen(a.getType()));
          }
      for (OpResult r : op->getResults()) {
        note(r.getType());
        r.setType(widen(r.getType()));
      }
      if (auto fn = dyn_cast<func::FuncOp>(op)) {
        FunctionType ft = fn.getFunctionType();
        SmallVector<Type> ins, outs;
        for (Type t : ft.getInputs()) {
          note(t);
          ins.push_back(widen(t));
        }
        for (Type t : ft.getResults()) {
          note(t);
          outs.push_back(widen(t));
        }
        fn.setFunctionType(FunctionType::get(op->getContext(), ins, outs));
      }
    });
    if (!precision.empty())
      module->setAttr("llm.compute_precision",
                      StringAttr::get(module.getContext(), precision));
  }
};

} // namespace
