//===- LLMRTDialect.cpp - llmrt dialect and verifiers ---------------------===//
#include "llmrt/LLMRTDialect.h"

#include "llmrt/ProgramFormat.h"

using namespace mlir;
using namespace mlir::llmrt;

#include "llmrt/LLMRTDialect.cpp.inc"

#define GET_OP_CLASSES
#include "llmrt/LLMRTOps.cpp.inc"

void LLMRTDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "llmrt/LLMRTOps.cpp.inc"
      >();
}

int64_t BufferOp::getBytes() {
  auto type = getResult().getType();
  return type.getNumElements() * type.getElementTypeBitWidth() / 8;
}

LogicalResult BufferOp::verify() {
  static const char *roles[] = {"param", "adam_m", "adam_v",
                                "input", "output", "temp"};
  if (!llvm::is_contained(roles, getRole()))
    return emitOpError() << "expects role to be one of param, adam_m, adam_v, "
                            "input, output, temp; got '"
                         << getRole() << "'";
  int64_t offset = getOffsetAttr().getInt();
  if (offset < 0 || offset % static_cast<int64_t>(::llmrt::kArenaAlignment) != 0)
    return emitOpError() << "expects offset (" << offset
                         << ") to be a non-negative multiple of "
                         << ::llmrt::kArenaAlignment;
  if (std::optional<StringRef> init = getInit()) {
    if (getRole() != "param")
      return emitOpError() << "expects init only on a param buffer";
    if (*init != "normal" && *init != "zeros" && *init != "ones")
      return emitOpError() << "expects init to be normal, zeros or ones; got '"
                           << *init << "'";
    if (*init == "normal" &&
        !(getInitStd().has_value() && getInitStd()->convertToDouble() > 0))
      return emitOpError() << "expects init_std > 0 with init = normal";
  }
  return success();
}

LogicalResult KernelOp::verify() {
  const ::llmrt::OpcodeInfo *info =
      ::llmrt::opcodeInfoByName(getKernel().str());
  if (!info)
    return emitOpError() << "unknown kernel '" << getKernel() << "'";
  int n = static_cast<int>(getOperands().size());
  if (n < info->minOperands || (info->maxOperands >= 0 && n > info->maxOperands))
    return emitOpError() << "kernel '" << getKernel() << "' expects "
                         << info->minOperands
                         << (info->maxOperands == info->minOperands
                                 ? std::string()
                                 : (info->maxOperands < 0
                                        ? std::string(" or more")
                                        : " to " + std::to_string(
                                                       info->maxOperands)))
                         << " operands, got " << n;
  if (info->ints >= 0 && static_cast<int>(getInts().size()) != info->ints)
    return emitOpError() << "kernel '" << getKernel() << "' expects "
                         << info->ints << " ints, got " << getInts().size();
  if (static_cast<int>(getFloats().size()) != info->floats)
    return emitOpError() << "kernel '" << getKernel() << "' expects "
                         << info->floats << " floats, got "
                         << getFloats().size();
  return success();
}
