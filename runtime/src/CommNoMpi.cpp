//===- CommNoMpi.cpp - the single-rank runner has no MPI ------------------===//
#include "llmrt/Comm.h"

namespace llmrt {
std::unique_ptr<Communicator> createMpiCommunicator(int *, char ***) {
  return nullptr;
}
} // namespace llmrt
