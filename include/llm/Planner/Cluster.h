//===- Cluster.h - cluster descriptions ---------------------------*- C++ -*-===//
//
// The cluster file of DESIGN.md section 5: nodes, devices per node, the
// device (peak TFLOP/s per precision, memory, memory bandwidth) and the two
// link levels (bandwidth per device per direction, latency). An optional
// "efficiency" object holds the cost model's calibrated factors (see
// docs/planner.md); absent keys take the values fitted on the Megatron-LM
// 2021 calibration rows.
//
//===----------------------------------------------------------------------===//
#ifndef LLM_PLANNER_CLUSTER_H
#define LLM_PLANNER_CLUSTER_H

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Error.h"

#include <map>
#include <string>

namespace mlir::llm {

struct Link {
  double bwGBps = 0;     ///< GB/s per device per direction
  double latencyUs = 0;
};

/// Efficiency factors of the cost model (fractions of the vendor figures).
/// The defaults are the fit on the four Megatron-LM 2021 calibration rows
/// (bench/calibrate_planner.py, docs/planner.md); `memory` is not
/// identifiable from those rows and is an assumption.
struct Efficiency {
  double compute = 0.625; ///< matmul throughput / peak
  double memory = 0.7;    ///< achieved / peak memory bandwidth
  double intraNode = 1.0; ///< achieved / vendor bandwidth inside a node
  double interNode = 0.5; ///< achieved / vendor bandwidth across nodes
  /// Fraction of the backward pass that data-parallel gradient reduction
  /// can hide behind.
  double dpOverlap = 0.0;
  /// Small GEMMs: a matrix product of f FLOPs per thread runs at
  /// f / (f + gemmFlopsHalf) of the large-GEMM rate (0: no such loss). A
  /// CPU's micro-batches and tensor-parallel slices feel it; GPU clusters
  /// leave it at 0 (their calibration has no such term).
  double gemmFlopsHalf = 0.0;
  /// The attention core's throughput / peak, in the model's FLOPs (full
  /// s x s products, as Megatron counts them even when causal); 0: the
  /// compute efficiency. A runtime whose attention kernels lag its GEMMs
  /// (ours on an H200: 0.16 against 0.45) says so here.
  double attention = 0.0;
};

struct Cluster {
  std::string name;
  int64_t nodes = 1, devicesPerNode = 1;
  std::string deviceKind;
  std::map<std::string, double> peakTflops; ///< by precision: bf16, fp16, fp32
  double memoryGiB = 0, memoryBwGBps = 0;
  Link intraNode, interNode;
  Efficiency efficiency;
  /// "ranks_share_node": the node's devices are cores that the ranks on it
  /// divide among themselves (a CPU machine: each rank runs cores / ranks
  /// threads), rather than one device per rank.
  bool ranksShareNode = false;
  /// Threads (cores) each rank runs on (sharedBy: cores / ranks, at least 1).
  double threadsPerRank = 1.0;

  int64_t devices() const { return nodes * devicesPerNode; }
  /// The cluster as a world of `ranks` ranks sees it: on a one-node cluster
  /// whose ranks share the node, each rank gets devices_per_node / ranks of
  /// the device's peak, memory and memory bandwidth (more ranks than cores
  /// time-share them; fewer use several each); otherwise this cluster.
  Cluster sharedBy(int64_t ranks) const;
  /// Peak TFLOP/s for `precision`, or an error naming it.
  llvm::Expected<double> peak(llvm::StringRef precision) const;
};

/// Parses a cluster file; errors name the file and the key.
llvm::Expected<Cluster> parseCluster(llvm::StringRef text,
                                     llvm::StringRef fileName);
llvm::Expected<Cluster> loadCluster(llvm::StringRef path);

} // namespace mlir::llm

#endif // LLM_PLANNER_CLUSTER_H
