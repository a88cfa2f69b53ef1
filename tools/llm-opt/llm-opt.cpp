//===- llm-opt.cpp - MlirOptMain with the llm dialect and passes ----------===//
//
// Runs any llm pass (and upstream's shard passes) on a file, as mlir-opt
// does: `llm-opt FILE --llm-annotate-stats`. `--help` lists them.
//
//===----------------------------------------------------------------------===//
#include "llm/InitAll.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::llm::registerAllDialects(registry);
  mlir::llm::registerAllPasses();
  return mlir::asMainReturnCode(mlir::MlirOptMain(
      argc, argv, "llm optimizer driver: llm dialect and passes\n", registry));
}
