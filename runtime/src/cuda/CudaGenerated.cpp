//===- CudaGenerated.cpp - the compiler's GPU kernels, loaded -------------===//
#include "llmrt/CudaGenerated.h"

#include "llmrt/ProgramFormat.h"

#include <cuda.h> // the driver API's types; its functions come from the runtime

#include <algorithm>

namespace llmrt::cuda {

namespace {
/// The driver functions that load and launch PTX, found through the
/// runtime (cudaGetDriverEntryPointByVersion): an executable links no
/// libcuda, so it starts, and says what is missing, where no driver is
/// installed.
struct Driver {
  CUresult (*moduleLoadDataEx)(CUmodule *, const void *, unsigned, CUjit_option *,
                               void **) = nullptr;
  CUresult (*moduleGetFunction)(CUfunction *, CUmodule, const char *) = nullptr;
  CUresult (*launchKernel)(CUfunction, unsigned, unsigned, unsigned, unsigned,
                           unsigned, unsigned, unsigned, CUstream, void **,
                           void **) = nullptr;
  CUresult (*moduleUnload)(CUmodule) = nullptr;

  std::string load() {
    auto get = [](const char *name, void **fn) -> std::string {
      cudaDriverEntryPointQueryResult q;
      if (cudaGetDriverEntryPointByVersion(name, fn, 12000, cudaEnableDefault, &q) !=
              cudaSuccess ||
          q != cudaDriverEntryPointSuccess || !*fn)
        return std::string("the CUDA driver has no ") + name;
      return "";
    };
    for (auto [name, fn] : {std::pair<const char *, void **>{
                                "cuModuleLoadDataEx", reinterpret_cast<void **>(&moduleLoadDataEx)},
                            {"cuModuleGetFunction", reinterpret_cast<void **>(&moduleGetFunction)},
                            {"cuLaunchKernel", reinterpret_cast<void **>(&launchKernel)},
                            {"cuModuleUnload", reinterpret_cast<void **>(&moduleUnload)}})
      if (std::string e = get(name, fn); !e.empty())
        return e;
    return "";
  }
};
} // namespace

struct GeneratedKernels::Impl {
  Driver driver;
  CUmodule module = nullptr;
  std::vector<CUfunction> fns;

  std::string launch(int64_t kernel, unsigned blocks, unsigned threads,
                     std::vector<void *> &args, cudaStream_t s) const {
    if (kernel < 0 || kernel >= static_cast<int64_t>(fns.size()))
      return "no generated kernel " + std::to_string(kernel);
    if (CUresult rc = driver.launchKernel(fns[kernel], blocks, 1, 1, threads, 1, 1, 0,
                                          reinterpret_cast<CUstream>(s), args.data(),
                                          nullptr);
        rc != CUDA_SUCCESS)
      return "cuLaunchKernel: CUresult " + std::to_string(rc);
    return "";
  }
};

GeneratedKernels::GeneratedKernels() : impl_(std::make_unique<Impl>()) {}

GeneratedKernels::~GeneratedKernels() {
  if (impl_->module)
    impl_->driver.moduleUnload(impl_->module);
}

size_t GeneratedKernels::size() const { return impl_->fns.size(); }

std::string GeneratedKernels::load(const std::string &ptx,
                                   const std::vector<std::string> &entries, bool *noDriver) {
  if (std::string e = impl_->driver.load(); !e.empty()) {
    if (noDriver)
      *noDriver = true;
    return e;
  }
  // The driver loads into the current context: the runtime's primary one,
  // which no runtime call may have created yet.
  if (cudaError_t e = cudaFree(nullptr); e != cudaSuccess)
    return std::string("no CUDA context for the program's PTX: ") + cudaGetErrorString(e);
  std::string log(8192, '\0');
  CUjit_option opts[] = {CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *vals[] = {log.data(), reinterpret_cast<void *>(log.size())};
  if (CUresult rc = impl_->driver.moduleLoadDataEx(&impl_->module, ptx.c_str(), 2, opts, vals);
      rc != CUDA_SUCCESS)
    return "cuModuleLoadData of the program's PTX failed (CUresult " + std::to_string(rc) +
           "): " + log.c_str();
  for (const std::string &name : entries) {
    CUfunction fn;
    if (impl_->driver.moduleGetFunction(&fn, impl_->module, name.c_str()) != CUDA_SUCCESS)
      return "the program's PTX has no kernel '" + name + "'";
    impl_->fns.push_back(fn);
  }
  return "";
}

std::string GeneratedKernels::launchElementwise(int64_t kernel, int64_t n,
                                                void *const *operands, size_t count,
                                                cudaStream_t s) const {
  std::vector<void *> args(count);
  for (size_t a = 0; a < count; ++a)
    args[a] = const_cast<void **>(&operands[a]);
  const auto blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 65535));
  return impl_->launch(kernel, blocks, 256, args, s);
}

std::string GeneratedKernels::launchNorm(int64_t kernel, int64_t rows, void *const *operands,
                                         const int32_t *codes, size_t count,
                                         cudaStream_t s) const {
  std::vector<void *> args(2 * count);
  for (size_t a = 0; a < count; ++a) {
    args[a] = const_cast<void **>(&operands[a]);
    args[count + a] = const_cast<int32_t *>(&codes[a]);
  }
  const auto blocks = static_cast<unsigned>((rows + kFusedNormWarps - 1) / kFusedNormWarps);
  return impl_->launch(kernel, blocks, static_cast<unsigned>(32 * kFusedNormWarps), args, s);
}

} // namespace llmrt::cuda
