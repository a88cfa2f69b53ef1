//===- llm-compile.cpp - the compiler driver ------------------------------===//
//
//   llm-compile FILE [--cluster FILE] [--devices N] [--plan auto|SPEC]
//               [--target cpu|cuda] [--emit=exe|plan|stats|mlir] [-o FILE]
//
//===----------------------------------------------------------------------===//
#include "llm/Analysis/ModelStats.h"
#include "llm/InitAll.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace mlir;
namespace cl = llvm::cl;

namespace {
enum class Emit { Exe, Plan, Stats, Mlir };
} // namespace

static cl::OptionCategory category("llm-compile options");
static cl::opt<std::string> inputPath(cl::Positional, cl::Required,
                                      cl::desc("<model.mlir>"),
                                      cl::cat(category));
static cl::opt<std::string> clusterPath("cluster",
                                        cl::desc("cluster description (JSON)"),
                                        cl::value_desc("file"), cl::cat(category));
static cl::opt<int64_t> devices("devices", cl::init(1),
                                cl::desc("number of ranks to compile for"),
                                cl::cat(category));
static cl::opt<std::string> plan("plan", cl::init("auto"),
                                 cl::desc("auto, or key=value pairs: dp, tp, pp, "
                                          "vpp, sp, zero, remat, mbs, mb, "
                                          "schedule"),
                                 cl::cat(category));
static cl::opt<std::string> target("target", cl::init("cpu"),
                                   cl::desc("cpu or cuda"), cl::cat(category));
static cl::opt<Emit> emit(
    "emit", cl::init(Emit::Exe), cl::desc("what to produce"),
    cl::values(clEnumValN(Emit::Exe, "exe", "the training executable"),
               clEnumValN(Emit::Plan, "plan", "the chosen plan as JSON"),
               clEnumValN(Emit::Stats, "stats",
                          "params, flops_per_step, tokens_per_step as JSON"),
               clEnumValN(Emit::Mlir, "mlir", "the compiled IR")),
    cl::cat(category));
static cl::opt<std::string> output("o", cl::init("-"),
                                   cl::desc("output file"),
                                   cl::value_desc("file"), cl::cat(category));

static int fail(const llvm::Twine &msg) {
  llvm::WithColor::error(llvm::errs(), "llm-compile") << msg << "\n";
  return 1;
}

static void printStats(const llm::ModelStats &s, llvm::raw_ostream &os) {
  llvm::json::OStream j(os, /*IndentSize=*/2);
  j.object([&] {
    j.attribute("params", s.params);
    j.attribute("flops_per_step", s.flopsPerStep);
    j.attribute("tokens_per_step", s.tokensPerStep);
  });
  os << "\n";
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  if (!cl::ParseCommandLineOptions(argc, argv, "llm compiler driver\n",
                                   &llvm::errs()))
    return 1;
  if (devices <= 0)
    return fail("--devices must be positive, got " + llvm::Twine(devices));
  if (target != "cpu" && target != "cuda")
    return fail("--target '" + target + "' is not one of cpu, cuda");

  DialectRegistry registry;
  llm::registerAllDialects(registry);
  MLIRContext context(registry);
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler diagHandler(sourceMgr, &context);
  std::string err;
  auto file = openInputFile(inputPath, &err);
  if (!file)
    return fail(err);
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  OwningOpRef<ModuleOp> module = parseSourceFile<ModuleOp>(sourceMgr, &context);
  if (!module)
    return 1; // the parser or verifier has reported the error

  FailureOr<func::FuncOp> fn = llm::getModelFunction(*module);
  if (failed(fn))
    return 1;

  auto out = openOutputFile(output, &err);
  if (!out)
    return fail(err);
  switch (emit) {
  case Emit::Stats: {
    FailureOr<llm::ModelStats> stats = llm::computeModelStats(*fn);
    if (failed(stats))
      return 1;
    printStats(*stats, out->os());
    break;
  }
  case Emit::Mlir:
    (*module)->print(out->os());
    out->os() << "\n";
    break;
  case Emit::Plan:
    return fail("--emit=plan: the planner (llm-auto-plan) is not built yet");
  case Emit::Exe:
    return fail("--emit=exe: lowering to a runtime program (llm-lower-to-rt) "
                "is not built yet; use --emit=stats or --emit=mlir");
  }
  out->keep();
  return 0;
}
