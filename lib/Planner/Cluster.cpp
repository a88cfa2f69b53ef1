//===- Cluster.cpp - cluster descriptions ---------------------------------===//
#include "llm/Planner/Cluster.h"

#include <algorithm>

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace mlir;
using namespace mlir::llm;

namespace {
class Reader {
public:
  explicit Reader(llvm::StringRef file) : file(file) {}

  llvm::Error error(const llvm::Twine &msg) const {
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   (file + ": " + msg).str());
  }

  llvm::Expected<const llvm::json::Object *>
  object(const llvm::json::Object &o, llvm::StringRef key,
         llvm::StringRef path) const {
    const llvm::json::Value *v = o.get(key);
    if (!v)
      return error("missing key '" + path + key + "'");
    if (!v->getAsObject())
      return error("key '" + path + key + "' must be an object");
    return v->getAsObject();
  }

  llvm::Expected<double> number(const llvm::json::Object &o,
                                llvm::StringRef key, llvm::StringRef path,
                                bool positive = true) const {
    const llvm::json::Value *v = o.get(key);
    if (!v)
      return error("missing key '" + path + key + "'");
    std::optional<double> d = v->getAsNumber();
    if (!d || (positive && !(*d > 0)) || (!positive && *d < 0))
      return error(llvm::formatv("key '{0}{1}' must be a {2} number", path,
                                 key, positive ? "positive" : "non-negative")
                       .str());
    return *d;
  }

  llvm::StringRef file;
};
} // namespace

#define TRY_ASSIGN(lhs, expr)                                                  \
  do {                                                                         \
    auto _v = (expr);                                                          \
    if (!_v)                                                                   \
      return _v.takeError();                                                   \
    lhs = *_v;                                                                 \
  } while (0)

llvm::Expected<double> Cluster::peak(llvm::StringRef precision) const {
  auto it = peakTflops.find(precision.str());
  if (it == peakTflops.end())
    return llvm::createStringError(
        llvm::inconvertibleErrorCode(),
        ("cluster '" + name + "' gives no device.peak_tflops." + precision)
            .str());
  return it->second;
}

llvm::Expected<Cluster> mlir::llm::parseCluster(llvm::StringRef text,
                                                llvm::StringRef fileName) {
  Reader r(fileName);
  llvm::Expected<llvm::json::Value> json = llvm::json::parse(text);
  if (!json)
    return r.error("invalid JSON: " + llvm::toString(json.takeError()));
  const llvm::json::Object *root = json->getAsObject();
  if (!root)
    return r.error("expected a JSON object at the top level");
  Cluster c;
  if (auto n = root->getString("name"))
    c.name = n->str();
  else
    return r.error("missing key 'name'");
  double nodes, perNode;
  TRY_ASSIGN(nodes, r.number(*root, "nodes", ""));
  TRY_ASSIGN(perNode, r.number(*root, "devices_per_node", ""));
  if (nodes != std::floor(nodes) || perNode != std::floor(perNode))
    return r.error("keys 'nodes' and 'devices_per_node' must be integers");
  c.nodes = static_cast<int64_t>(nodes);
  c.devicesPerNode = static_cast<int64_t>(perNode);

  const llvm::json::Object *dev;
  TRY_ASSIGN(dev, r.object(*root, "device", ""));
  if (auto k = dev->getString("kind"))
    c.deviceKind = k->str();
  const llvm::json::Object *peak;
  TRY_ASSIGN(peak, r.object(*dev, "peak_tflops", "device."));
  for (const auto &kv : *peak) {
    std::optional<double> d = kv.second.getAsNumber();
    if (!d || !(*d > 0))
      return r.error("key 'device.peak_tflops." + kv.first.str() +
                     "' must be a positive number");
    c.peakTflops[kv.first.str()] = *d;
  }
  if (c.peakTflops.empty())
    return r.error("key 'device.peak_tflops' has no precision");
  TRY_ASSIGN(c.memoryGiB, r.number(*dev, "memory_gib", "device."));
  TRY_ASSIGN(c.memoryBwGBps, r.number(*dev, "memory_bw_gbps", "device."));

  const llvm::json::Object *links;
  TRY_ASSIGN(links, r.object(*root, "links", ""));
  for (auto [key, link] : {std::pair<llvm::StringRef, Link *>{"intra_node", &c.intraNode},
                           {"inter_node", &c.interNode}}) {
    const llvm::json::Object *l;
    TRY_ASSIGN(l, r.object(*links, key, "links."));
    std::string path = ("links." + key + ".").str();
    TRY_ASSIGN(link->bwGBps, r.number(*l, "bw_gbps", path));
    TRY_ASSIGN(link->latencyUs, r.number(*l, "latency_us", path, false));
  }

  if (const llvm::json::Value *v = root->get("ranks_share_node")) {
    std::optional<bool> b = v->getAsBoolean();
    if (!b)
      return r.error("key 'ranks_share_node' must be true or false");
    c.ranksShareNode = *b;
  }

  if (const llvm::json::Value *e = root->get("efficiency")) {
    const llvm::json::Object *eff = e->getAsObject();
    if (!eff)
      return r.error("key 'efficiency' must be an object");
    for (const auto &kv : *eff) {
      std::optional<double> d = kv.second.getAsNumber();
      llvm::StringRef k = kv.first;
      double *slot = llvm::StringSwitch<double *>(k)
                         .Case("compute", &c.efficiency.compute)
                         .Case("memory", &c.efficiency.memory)
                         .Case("intra_node", &c.efficiency.intraNode)
                         .Case("inter_node", &c.efficiency.interNode)
                         .Case("dp_overlap", &c.efficiency.dpOverlap)
                         .Case("gemm_flops_half", &c.efficiency.gemmFlopsHalf)
                         .Case("attention", &c.efficiency.attention)
                         .Default(nullptr);
      if (!slot)
        return r.error("unknown key 'efficiency." + k +
                       "' (known: compute, attention, memory, intra_node, "
                       "inter_node, dp_overlap, gemm_flops_half)");
      if (k == "gemm_flops_half") {
        if (!d || *d < 0)
          return r.error("key 'efficiency.gemm_flops_half' must be a number >= 0");
      } else if (!d || *d < 0 || *d > 1 || (k != "dp_overlap" && *d == 0)) {
        return r.error("key 'efficiency." + k + "' must be a number in (0, 1]");
      }
      *slot = *d;
    }
  }
  return c;
}

Cluster Cluster::sharedBy(int64_t ranks) const {
  if (!ranksShareNode || nodes != 1 || ranks <= 0 || ranks == devicesPerNode)
    return *this;
  Cluster c = *this;
  double share = static_cast<double>(devicesPerNode) / static_cast<double>(ranks);
  for (auto &[precision, tflops] : c.peakTflops)
    tflops *= share;
  c.memoryGiB *= share;
  c.memoryBwGBps *= share;
  c.threadsPerRank = std::max(1.0, share);
  c.devicesPerNode = ranks;
  return c;
}

llvm::Expected<Cluster> mlir::llm::loadCluster(llvm::StringRef path) {
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/true);
  if (!buf)
    return llvm::createStringError(buf.getError(),
                                   (path + ": cannot read: " +
                                    buf.getError().message())
                                       .str());
  return parseCluster((*buf)->getBuffer(), path);
}
