//===- Communicator.h - The ranks of a data-parallel training run ----------===//
//
// A data-parallel A2C run (Trainer) splits each iteration's batch of episodes across ranks: every
// rank runs the whole task and samples every action (the same generators, so the same episodes on
// every rank), but steps its network only for its slice of the batch; the slices' policy outputs
// are gathered every step, and the parameter gradients summed once per iteration, so every rank
// applies the same optimizer step to the same parameters. This interface is what the trainer needs
// from the transport; dopa_mpi implements it over MPI (runtime/mpi), and a null Communicator is one
// process.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace dopa {

class Communicator {
public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// This rank's index among the ranks on its own machine (the CUDA engine runs on GPU
  /// localRank() modulo the machine's GPU count); rank() unless the transport knows better.
  virtual int localRank() const { return rank(); }
  /// Every rank's `counts[r]` floats (this rank's are `mine`), concatenated in rank order into
  /// `all`, on every rank.
  virtual void allgather(const float *mine, float *all, const std::vector<int> &counts) = 0;
  /// The sum over the ranks of `n` floats, in place, the same values on every rank.
  virtual void sum(float *data, int64_t n) = 0;
  virtual void sum(double *data, int64_t n) = 0;
  /// "" when every rank passed the same `text`; otherwise which rank differs from rank 0 and the
  /// first line where (on every rank).
  virtual std::string firstDifference(const std::string &text) = 0;
};

/// How many ranks the launcher (mpirun, srun) started this process among, from its environment:
/// OMPI_COMM_WORLD_SIZE (Open MPI), PMI_SIZE (Hydra, PMI-2), SLURM_STEP_NUM_TASKS inside a Slurm
/// job step; 0 when the environment says this is a rank without saying of how many (PMIx alone);
/// 1 outside a launcher, and always with DOPA_MPI=0 (the reproduction scripts set it for the
/// single-process runs of a sweep, which inherit their rank's environment).
inline int launcherRanks() {
  auto env = [](const char *name) -> const char * {
    const char *v = std::getenv(name);
    return v && *v ? v : nullptr;
  };
  if (const char *mpi = env("DOPA_MPI"); mpi && std::string(mpi) == "0")
    return 1;
  for (const char *name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"})
    if (const char *v = env(name))
      return std::max(1, std::atoi(v));
  if (env("SLURM_STEP_ID") && env("SLURM_STEP_NUM_TASKS"))
    return std::max(1, std::atoi(env("SLURM_STEP_NUM_TASKS")));
  if (env("PMIX_RANK") || env("MPI_LOCALNRANKS"))
    return 0;
  return 1;
}

/// The elements [first, second) of a batch of `batch` that rank `rank` of `size` runs: contiguous
/// slices whose sizes differ by at most one, in rank order.
inline std::pair<int, int> batchSlice(int batch, int rank, int size) {
  int base = batch / size, extra = batch % size;
  int begin = rank * base + std::min(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
}

} // namespace dopa
