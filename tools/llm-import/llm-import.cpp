//===- llm-import.cpp - Hugging Face config.json to llm IR ----------------===//
//
//   llm-import --hf-config FILE [--batch B] [--seq S] [--layers L]
//              [--dtype f32|bf16|f16] [-o FILE]
//
//===----------------------------------------------------------------------===//
#include "llm/Import/HFConfig.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"

using namespace mlir;
namespace cl = llvm::cl;

static cl::OptionCategory category("llm-import options");
static cl::opt<std::string> configPath("hf-config", cl::Required,
                                       cl::desc("Hugging Face config.json"),
                                       cl::value_desc("file"), cl::cat(category));
static cl::opt<int64_t> batch("batch", cl::init(8),
                              cl::desc("global batch size (sequences per step)"),
                              cl::cat(category));
static cl::opt<int64_t> seq("seq", cl::init(0),
                            cl::desc("sequence length (default: the config's "
                                     "max positions)"),
                            cl::cat(category));
static cl::opt<int64_t> layers("layers", cl::init(0),
                               cl::desc("number of layers (default: the "
                                        "config's)"),
                               cl::cat(category));
static cl::opt<std::string> dtype("dtype", cl::init("f32"),
                                  cl::desc("element type: f32, bf16 or f16"),
                                  cl::cat(category));
static cl::opt<std::string> output("o", cl::init("-"),
                                   cl::desc("output file ('-' for stdout)"),
                                   cl::value_desc("file"), cl::cat(category));

static int fail(const llvm::Twine &msg) {
  llvm::WithColor::error(llvm::errs(), "llm-import") << msg << "\n";
  return 1;
}

int main(int argc, char **argv) {
  llvm::InitLLVM init(argc, argv);
  cl::HideUnrelatedOptions(category);
  if (!cl::ParseCommandLineOptions(argc, argv,
                                   "Imports a Hugging Face config.json as an "
                                   "llm forward + loss graph\n",
                                   &llvm::errs()))
    return 1;

  llvm::Expected<llm::ModelConfig> config = llm::loadHFConfig(configPath);
  if (!config)
    return fail(llvm::toString(config.takeError()));

  llm::ImportOptions opts;
  opts.batch = batch;
  if (seq.getNumOccurrences())
    opts.seq = seq;
  if (layers.getNumOccurrences())
    opts.layers = layers;
  opts.dtype = dtype;

  MLIRContext context;
  auto module = llm::buildModel(context, *config, opts);
  if (!module)
    return fail(llvm::toString(module.takeError()));
  if (failed(verify(**module)))
    return fail("internal error: the imported graph does not verify");

  std::string err;
  auto out = openOutputFile(output, &err);
  if (!out)
    return fail(err);
  (*module)->print(out->os());
  out->os() << "\n";
  out->keep();
  return 0;
}
