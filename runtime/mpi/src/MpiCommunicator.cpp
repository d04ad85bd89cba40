//===- MpiCommunicator.cpp - Data-parallel training over MPI ---------------===//
//
// MPI_COMM_WORLD behind the Communicator interface. Every call checks MPI's return code (the
// default error handler aborts anyway; an error returned is reported, then the job aborted).
//
//===----------------------------------------------------------------------===//
#include "dopa/mpi/MpiCommunicator.h"

#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <stdexcept>
#include <vector>

using namespace dopa;
using namespace dopa::mpi;

namespace {

void check(int rc, const char *what) {
  if (rc == MPI_SUCCESS)
    return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(rc, text, &length);
  std::fprintf(stderr, "dopa: %s failed: %.*s\n", what, length, text);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();
}

class WorldCommunicator : public Communicator {
public:
  WorldCommunicator() {
    check(MPI_Comm_rank(MPI_COMM_WORLD, &myRank), "MPI_Comm_rank");
    check(MPI_Comm_size(MPI_COMM_WORLD, &mySize), "MPI_Comm_size");
    // The ranks that share this machine's memory (and its GPUs), numbered in world order.
    MPI_Comm node = MPI_COMM_NULL;
    check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, myRank, MPI_INFO_NULL, &node),
          "MPI_Comm_split_type");
    check(MPI_Comm_rank(node, &myLocalRank), "MPI_Comm_rank");
    check(MPI_Comm_free(&node), "MPI_Comm_free");
  }
  int rank() const override { return myRank; }
  int size() const override { return mySize; }
  int localRank() const override { return myLocalRank; }

  void allgather(const float *mine, float *all, const std::vector<int> &counts) override {
    std::vector<int> displs(counts.size());
    for (size_t r = 1; r < counts.size(); ++r)
      displs[r] = displs[r - 1] + counts[r - 1];
    check(MPI_Allgatherv(mine, counts[size_t(myRank)], MPI_FLOAT, all, counts.data(), displs.data(),
                         MPI_FLOAT, MPI_COMM_WORLD),
          "MPI_Allgatherv");
  }

  void sum(float *data, int64_t n) override { sumAs(data, n, MPI_FLOAT); }
  void sum(double *data, int64_t n) override { sumAs(data, n, MPI_DOUBLE); }

  std::string firstDifference(const std::string &text) override {
    int length = int(text.size());
    std::vector<int> lengths(static_cast<size_t>(mySize));
    check(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, MPI_COMM_WORLD),
          "MPI_Allgather");
    std::vector<int> displs(static_cast<size_t>(mySize));
    for (size_t r = 1; r < displs.size(); ++r)
      displs[r] = displs[r - 1] + lengths[r - 1];
    std::string all(size_t(displs.back() + lengths.back()), '\0');
    check(MPI_Allgatherv(text.data(), length, MPI_CHAR, all.data(), lengths.data(), displs.data(),
                         MPI_CHAR, MPI_COMM_WORLD),
          "MPI_Allgatherv");
    std::string root = all.substr(0, size_t(lengths[0]));
    for (int r = 1; r < mySize; ++r) {
      std::string other = all.substr(size_t(displs[size_t(r)]), size_t(lengths[size_t(r)]));
      if (other == root)
        continue;
      std::istringstream a(root), b(other);
      std::string la, lb;
      bool moreA = false, moreB = false;
      do {
        moreA = bool(std::getline(a, la));
        moreB = bool(std::getline(b, lb));
      } while (moreA && moreB && la == lb);
      std::string why = "rank " + std::to_string(r) + " differs from rank 0: '";
      why += moreB ? lb : "(nothing)";
      why += "' against '";
      why += moreA ? la : "(nothing)";
      return why + "'";
    }
    return "";
  }

private:
  /// The sum over the ranks in place: MPI_Reduce to rank 0 (a fixed order there) and MPI_Bcast,
  /// in chunks below INT_MAX elements (MPI counts are int).
  template <class T> void sumAs(T *data, int64_t n, MPI_Datatype type) {
    const int64_t chunk = int64_t(1) << 30;
    for (int64_t at = 0; at < n; at += chunk) {
      int count = int(std::min(chunk, n - at));
      if (myRank == 0)
        check(MPI_Reduce(MPI_IN_PLACE, data + at, count, type, MPI_SUM, 0, MPI_COMM_WORLD),
              "MPI_Reduce");
      else
        check(MPI_Reduce(data + at, nullptr, count, type, MPI_SUM, 0, MPI_COMM_WORLD),
              "MPI_Reduce");
      check(MPI_Bcast(data + at, count, type, 0, MPI_COMM_WORLD), "MPI_Bcast");
    }
  }

  int myRank = 0, mySize = 1, myLocalRank = 0;
};

} // namespace

MpiSession::MpiSession(int &argc, char **&argv) {
  int provided = 0;
  check(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
  initialized = true;
  auto world = std::make_unique<WorldCommunicator>();
  size = world->size();
  if (size > 1)
    comm = std::move(world);
}

MpiSession::~MpiSession() {
  if (initialized)
    MPI_Finalize();
}

void MpiSession::abortAll(int code) {
  if (initialized)
    MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}
