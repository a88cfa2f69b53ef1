//===- Serialize.cpp - llmrt module to the runtime's program format -------===//
#include "llm/Target/Serialize.h"

#include "llmrt/LLMRTDialect.h"
#include "llmrt/ProgramFormat.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <map>
#include <tuple>

using namespace mlir;

/// Attribute to JSON, for the program's metadata.
static llvm::json::Value toJSON(Attribute attr) {
  if (auto d = dyn_cast<DictionaryAttr>(attr)) {
    llvm::json::Object obj;
    for (NamedAttribute na : d)
      obj[na.getName().getValue()] = toJSON(na.getValue());
    return obj;
  }
  if (auto i = dyn_cast<IntegerAttr>(attr)) {
    if (i.getType().isInteger(1))
      return i.getValue().getBoolValue();
    return i.getInt();
  }
  if (auto f = dyn_cast<FloatAttr>(attr))
    return f.getValueAsDouble();
  if (auto b = dyn_cast<BoolAttr>(attr))
    return b.getValue();
  if (auto s = dyn_cast<StringAttr>(attr))
    return s.getValue();
  if (auto a = dyn_cast<ArrayAttr>(attr)) {
    llvm::json::Array arr;
    for (Attribute e : a)
      arr.push_back(toJSON(e));
    return arr;
  }
  std::string s;
  llvm::raw_string_ostream os(s);
  attr.print(os);
  return s;
}

static FailureOr<::llmrt::ElemType> elemTypeOf(Operation *op, Type t) {
  if (t.isF32())
    return ::llmrt::ElemType::F32;
  if (t.isBF16())
    return ::llmrt::ElemType::BF16;
  if (t.isF16())
    return ::llmrt::ElemType::F16;
  if (t.isInteger(32))
    return ::llmrt::ElemType::I32;
  if (t.isInteger(64))
    return ::llmrt::ElemType::I64;
  return op->emitOpError() << "unsupported element type " << t;
}

static ::llmrt::BufferRole roleOf(StringRef role) {
  return llvm::StringSwitch<::llmrt::BufferRole>(role)
      .Case("param", ::llmrt::BufferRole::Param)
      .Case("adam_m", ::llmrt::BufferRole::AdamM)
      .Case("adam_v", ::llmrt::BufferRole::AdamV)
      .Case("input", ::llmrt::BufferRole::Input)
      .Case("output", ::llmrt::BufferRole::Output)
      .Default(::llmrt::BufferRole::Temp);
}

FailureOr<std::string> mlir::llm::getKernelPTX(ModuleOp module) {
  auto binaries = module.getOps<gpu::BinaryOp>();
  if (binaries.empty()) {
    if (module->hasAttr("llm.gpu_entries"))
      return module.emitError() << "the module has GPU kernels but no "
                                   "gpu.binary (run llm-gpu-to-ptx)";
    return std::string();
  }
  if (std::next(binaries.begin()) != binaries.end())
    return module.emitError() << "expects one gpu.binary of GPU kernels";
  gpu::BinaryOp binary = *binaries.begin();
  auto objects = binary.getObjects().getAsRange<gpu::ObjectAttr>();
  if (std::distance(objects.begin(), objects.end()) != 1 ||
      (*objects.begin()).getFormat() != gpu::CompilationTarget::Assembly)
    return binary.emitOpError() << "expects one PTX object (format isa)";
  return (*objects.begin()).getObject().getValue().str();
}

FailureOr<std::vector<uint8_t>> mlir::llm::serializeProgram(ModuleOp module) {
  ::llmrt::ProgramDesc program;
  auto arena = module->getAttrOfType<IntegerAttr>("llmrt.arena_bytes");
  if (!arena)
    return module.emitError()
           << "serialize: no llmrt.arena_bytes; run llm-lower-to-rt first";
  program.arenaBytes = arena.getInt();
  if (auto meta = module->getAttrOfType<DictionaryAttr>("llmrt.metadata")) {
    std::string s;
    llvm::raw_string_ostream os(s);
    os << toJSON(meta);
    program.metadata = s;
  } else {
    program.metadata = "{}";
  }

  // Buffers shared by the functions are one table entry.
  std::map<std::tuple<std::string, std::string, int64_t, std::string>, uint32_t>
      ids;
  for (StringRef name : {"train", "eval"}) {
    auto fn = dyn_cast_or_null<func::FuncOp>(
        SymbolTable::lookupSymbolIn(module, name));
    if (!fn)
      return module.emitError() << "serialize: no @" << name << " function";
    ::llmrt::FunctionDesc f;
    f.name = name.str();
    DenseMap<Value, uint32_t> bufferId;
    for (Operation &op : fn.getBody().front()) {
      if (auto buf = dyn_cast<llmrt::BufferOp>(op)) {
        auto type = buf.getResult().getType();
        std::string typeStr;
        llvm::raw_string_ostream os(typeStr);
        os << type;
        auto key = std::make_tuple(buf.getName().str(), buf.getRole().str(),
                                   buf.getOffset(), typeStr);
        auto it = ids.find(key);
        if (it == ids.end()) {
          FailureOr<::llmrt::ElemType> elem =
              elemTypeOf(buf, type.getElementType());
          if (failed(elem))
            return failure();
          ::llmrt::BufferDesc d;
          d.name = buf.getName().str();
          d.role = roleOf(buf.getRole());
          d.elem = *elem;
          d.dims.assign(type.getShape().begin(), type.getShape().end());
          d.offset = buf.getOffset();
          d.bytes = buf.getBytes();
          if (d.offset + d.bytes > program.arenaBytes)
            return buf.emitOpError() << "serialize: buffer ends at byte "
                                     << d.offset + d.bytes
                                     << ", past the arena ("
                                     << program.arenaBytes << " bytes)";
          if (std::optional<StringRef> init = buf.getInit()) {
            d.init = llvm::StringSwitch<::llmrt::InitKind>(*init)
                         .Case("normal", ::llmrt::InitKind::Normal)
                         .Case("zeros", ::llmrt::InitKind::Zeros)
                         .Case("ones", ::llmrt::InitKind::Ones)
                         .Default(::llmrt::InitKind::None);
            if (auto std = buf.getInitStd())
              d.initStd = std->convertToDouble();
          }
          if (auto g = buf.getRankGroup()) {
            d.rankGroup = static_cast<uint8_t>(*g);
            d.rankStride = static_cast<uint64_t>(*buf.getRankStride());
          }
          if (auto z = buf.getZeroOf())
            d.zeroDims.assign(z->begin(), z->end());
          if (auto shard = buf.getTpShard()) {
            d.shardAxis = static_cast<int>((*shard)[0]);
            d.shardBlocks = (*shard)[1];
            // [axis, blocks, valid]: the vocabulary padded (llm-partition).
            if (shard->size() == 3)
              d.shardValid = (*shard)[2];
            if (auto g = buf.getGlobalShape())
              d.globalDims.assign(g->begin(), g->end());
          }
          it = ids.emplace(key, program.buffers.size()).first;
          program.buffers.push_back(d);
        }
        bufferId[buf.getResult()] = it->second;
        continue;
      }
      if (auto k = dyn_cast<llmrt::KernelOp>(op)) {
        const ::llmrt::OpcodeInfo *info =
            ::llmrt::opcodeInfoByName(k.getKernel().str());
        if (!info)
          return k.emitOpError() << "serialize: unknown kernel";
        ::llmrt::Instruction inst;
        inst.opcode = static_cast<uint16_t>(info->opcode);
        for (Value v : k.getOperands()) {
          auto it = bufferId.find(v);
          if (it == bufferId.end())
            return k.emitOpError()
                   << "serialize: operand is not an llmrt.buffer";
          inst.operands.push_back(it->second);
        }
        inst.ints.assign(k.getInts().begin(), k.getInts().end());
        inst.floats.assign(k.getFloats().begin(), k.getFloats().end());
        f.instructions.push_back(std::move(inst));
        continue;
      }
      if (isa<func::ReturnOp>(op))
        continue;
      return op.emitOpError() << "serialize: not an llmrt op";
    }
    program.functions.push_back(std::move(f));
  }
  // The GPU kernels (llm-fuse-elementwise, llm-gpu-to-ptx): the PTX of the
  // one gpu.binary and the entries in kernel-index order.
  if (auto entries = module->getAttrOfType<ArrayAttr>("llm.gpu_entries")) {
    FailureOr<std::string> ptx = mlir::llm::getKernelPTX(module);
    if (failed(ptx))
      return failure();
    program.gpuPtx = std::move(*ptx);
    for (Attribute e : entries)
      program.gpuEntries.push_back(cast<StringAttr>(e).getValue().str());
  }
  return ::llmrt::writeProgram(program);
}

LogicalResult mlir::llm::writeExecutable(StringRef runner,
                                         ArrayRef<uint8_t> program,
                                         StringRef exe, std::string &error) {
  auto base = llvm::MemoryBuffer::getFile(runner, /*IsText=*/false,
                                          /*RequiresNullTerminator=*/false);
  if (!base) {
    error = (runner + ": cannot read the runtime: " + base.getError().message())
                .str();
    return failure();
  }
  std::string tmp = (exe + ".tmp").str();
  {
    std::error_code ec;
    llvm::raw_fd_ostream out(tmp, ec, llvm::sys::fs::OF_None);
    if (ec) {
      error = tmp + ": cannot create: " + ec.message();
      return failure();
    }
    StringRef bytes = (*base)->getBuffer();
    out << bytes;
    out.write(reinterpret_cast<const char *>(program.data()), program.size());
    uint8_t trailer[24];
    uint64_t offset = bytes.size(), length = program.size();
    for (int i = 0; i < 8; ++i) {
      trailer[i] = static_cast<uint8_t>(offset >> (8 * i));
      trailer[8 + i] = static_cast<uint8_t>(length >> (8 * i));
    }
    std::memcpy(trailer + 16, ::llmrt::kExeTrailerMagic, 8);
    out.write(reinterpret_cast<const char *>(trailer), 24);
    out.close();
    if (out.has_error()) {
      error = tmp + ": write failed: " + out.error().message();
      out.clear_error();
      return failure();
    }
  }
  llvm::sys::fs::setPermissions(tmp, llvm::sys::fs::perms(0755));
  if (std::error_code ec = llvm::sys::fs::rename(tmp, exe)) {
    llvm::sys::fs::remove(tmp);
    error = (exe + ": cannot write the executable: " + ec.message()).str();
    return failure();
  }
  return success();
}
