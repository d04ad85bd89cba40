//===- GeneratedDetail.h - Helpers of the generated-code executor ---------===//
//
// Private to runtime/src: the aligned buffers, the Eigen views and the small helpers that
// Generated.cpp (the executor), LaneBackward.h (its backward driver) and Plan.cpp (the memory
// plan) share. Not installed.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Generated.h"

// Deferred gradients and batched products are summed with Eigen's GEMM inside OpenMP regions or
// in fixed chunks over the threads: Eigen itself runs one thread each.
#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace dopa::detail {

inline int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
/// Allocations are whole 64-byte lines (at least one).
inline int64_t round64(int64_t bytes) { return std::max<int64_t>(ceilDiv(bytes, 64) * 64, 64); }

inline int maxThreads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

inline int threadId() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/// Threads in the current team (1 outside a parallel region).
inline int teamSize() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

/// Bytes of one plan (the model the executor's allocations follow): Plan.cpp.
CheckpointPlan evaluatePlan(const PlanInputs &in, int outer, int inner);

/// The arguments of one forward step of one element (the backward's fields stay null).
template <class T>
StepArgs<T> forwardArgs(const T *params, const T *const *inputs, const T *state, T *next,
                        T *const *outputs, T *saved, T *scratch) {
  StepArgs<T> a;
  a.params = params;
  a.inputs = inputs;
  a.state = state;
  a.next = next;
  a.outputs = outputs;
  a.saved = saved;
  a.scratch = scratch;
  return a;
}

/// Copy the state-block slots of a GeneratedSpec copy table (`n` pairs [offset, numel]:
/// gradCopies, forwardCopies) from block `from` to block `to`.
template <class T> void copySlots(const T *from, T *to, int n, const int64_t *table) {
  for (int c = 0; c < n; ++c)
    std::copy(from + table[2 * c], from + table[2 * c] + table[2 * c + 1], to + table[2 * c]);
}

/// The slots of `table` (n pairs [offset, numel]) of state block `block`, one after the other in
/// `packed` (the replay's recorded slots on the tape), and back.
template <class T> void packSlots(const T *block, T *packed, int n, const int64_t *table) {
  for (int c = 0; c < n; ++c)
    packed = std::copy(block + table[2 * c], block + table[2 * c] + table[2 * c + 1], packed);
}
template <class T> void unpackSlots(const T *packed, T *block, int n, const int64_t *table) {
  for (int c = 0; c < n; ++c) {
    std::copy(packed, packed + table[2 * c + 1], block + table[2 * c]);
    packed += table[2 * c + 1];
  }
}

/// A 64-byte aligned buffer of T.
template <class T> class AlignedBuf {
public:
  AlignedBuf() = default;
  explicit AlignedBuf(size_t n) { resize(n); }
  void resize(size_t n) {
    if (n == count)
      return;
    std::free(ptr);
    ptr = nullptr;
    count = 0; // until the new block exists: a failed allocation leaves an empty buffer
    if (n) {
      ptr = static_cast<T *>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64));
      if (!ptr)
        throw std::bad_alloc();
    }
    count = n;
  }
  ~AlignedBuf() { std::free(ptr); }
  AlignedBuf(const AlignedBuf &) = delete;
  AlignedBuf &operator=(const AlignedBuf &) = delete;
  AlignedBuf(AlignedBuf &&o) noexcept : ptr(o.ptr), count(o.count) {
    o.ptr = nullptr;
    o.count = 0;
  }
  AlignedBuf &operator=(AlignedBuf &&o) noexcept {
    std::swap(ptr, o.ptr);
    std::swap(count, o.count);
    return *this;
  }
  T *data() { return ptr; }
  const T *data() const { return ptr; }
  size_t size() const { return count; }
  size_t bytes() const { return count ? (count * sizeof(T) + 63) / 64 * 64 : 0; }

private:
  T *ptr = nullptr;
  size_t count = 0;
};

template <class T>
using RowMajorMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T> using ConstMatMap = Eigen::Map<const RowMajorMat<T>>;
template <class T> using StridedMatMap = Eigen::Map<RowMajorMat<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ConstStridedMatMap = Eigen::Map<const RowMajorMat<T>, 0, Eigen::OuterStride<>>;

/// M = W^T, row-major: W is rows x cols, M is cols x rows (Eigen's blocked transpose: a plain loop
/// nest's strided stores take ten times as long).
template <class T> void layOutTranspose(const T *w, int64_t rows, int64_t cols, T *m) {
  Eigen::Map<RowMajorMat<T>>(m, cols, rows) = ConstMatMap<T>(w, rows, cols).transpose();
}

} // namespace dopa::detail
