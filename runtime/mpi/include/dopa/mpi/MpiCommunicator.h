//===- MpiCommunicator.h - Data-parallel training over MPI -----------------===//
//
// The Communicator (dopa/train/Communicator.h) over MPI_COMM_WORLD: the per-step policy outputs
// with MPI_Allgatherv, the gradient sum as MPI_Reduce to rank 0 in place and MPI_Bcast of the
// result (an allreduce whose result is rank 0's on every rank, so ranks can never drift apart by a
// rounding difference), the start-up check with MPI_Gather of every rank's settings. MpiSession
// initializes MPI when the process was started by mpirun/srun and finalizes it; a rank that fails
// calls abortAll() so the others do not wait in a collective forever.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/train/Communicator.h"

#include <memory>
#include <string>

namespace dopa::mpi {

/// MPI for the life of the object (construct it only when launcherRanks() says this process is a
/// rank). communicator() is null when MPI's world has one rank.
class MpiSession {
public:
  MpiSession(int &argc, char **&argv);
  ~MpiSession();
  MpiSession(const MpiSession &) = delete;
  MpiSession &operator=(const MpiSession &) = delete;
  /// The world's communicator; null for a single process.
  Communicator *communicator() { return comm.get(); }
  /// The number of ranks in MPI's world.
  int worldSize() const { return size; }
  /// End every rank with `code` (after this rank's message was printed).
  [[noreturn]] void abortAll(int code);

private:
  bool initialized = false;
  int size = 1;
  std::unique_ptr<Communicator> comm;
};

} // namespace dopa::mpi
