//===- HFConfig.h - Hugging Face config.json to model graph -------*- C++ -*-===//
//
// Reads a Hugging Face `config.json` (model_type gpt2, llama, mistral) into a
// validated ModelConfig, and builds the llm forward + loss graph from it.
//
//===----------------------------------------------------------------------===//
#ifndef LLM_IMPORT_HFCONFIG_H
#define LLM_IMPORT_HFCONFIG_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"

#include <cstdint>
#include <optional>
#include <string>

namespace mlir::llm {

enum class ModelFamily { GPT2, Llama };

/// A decoder-only transformer, as far as the graph is concerned.
struct ModelConfig {
  ModelFamily family = ModelFamily::GPT2;
  std::string modelType;  ///< as written in the file (gpt2, llama, mistral)
  int64_t vocabSize = 0;
  int64_t hidden = 0;
  int64_t numLayers = 0;
  int64_t numHeads = 0;
  int64_t numKvHeads = 0;  ///< == numHeads for multi-head attention
  int64_t ffnHidden = 0;   ///< n_inner / intermediate_size
  int64_t maxPositions = 0;
  double normEps = 1e-5;
  double ropeTheta = 10000.0; ///< llama only
  std::string activation; ///< gelu_new (tanh) or silu
  double initializerRange = 0.02; ///< std of the default normal init
  bool tieWordEmbeddings = false;
  /// Mistral's sliding-window attention span; the graph is exact only while
  /// the sequence fits in the window.
  std::optional<int64_t> slidingWindow;

  int64_t headDim() const { return hidden / numHeads; }
};

/// Parses and validates `text`; `fileName` only names the source in errors.
/// Every error names the key and value at fault.
llvm::Expected<ModelConfig> parseHFConfig(llvm::StringRef text,
                                          llvm::StringRef fileName);

/// Reads `path` and parses it.
llvm::Expected<ModelConfig> loadHFConfig(llvm::StringRef path);

struct ImportOptions {
  int64_t batch = 8;
  std::optional<int64_t> seq;    ///< default: the config's max positions
  std::optional<int64_t> layers; ///< default: the config's layer count
  std::string dtype = "f32";     ///< f32, bf16 or f16
};

/// Builds the forward + loss graph: a module with one `func.func @forward`
/// whose arguments are the parameters (`llm.param`, Hugging Face names and
/// layouts) then the inputs `tokens` and `targets` (`llm.input`), returning
/// the mean loss. Fails with a message for options the config cannot take.
llvm::Expected<OwningOpRef<ModuleOp>>
buildModel(MLIRContext &context, const ModelConfig &config,
           const ImportOptions &options);

} // namespace mlir::llm

#endif // LLM_IMPORT_HFCONFIG_H
