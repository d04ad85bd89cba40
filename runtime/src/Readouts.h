//===- Readouts.h - The batched readouts' products ------------------------===//
//
// Private to runtime/src (Generated.cpp): a batched readout (GeneratedSpec::readouts, a shared
// weight applied to a state after the recurrence, such as a language model's decoder) runs as
// products over the batch, or over every step of a window at once. The forward's chunks of W's
// rows go through smallGemm (W^T of the chunk laid out per chunk, an L2-sized copy) where the
// shape fits, else Eigen's GEMM. In the backward, dX = dY W sums smallGemm's products over chunks
// of W's rows (its shared dimension, a vocabulary: each chunk's rows of W stay in L2); dW += dY^T X
// stays with Eigen's GEMM (measured: smallGemm reading dY^T in place was no faster). Rows and
// columns are split in fixed chunks over the threads, so results do not depend on their number.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "GeneratedDetail.h"
#include "dopa/runtime/SmallGemm.h"

#include <omp.h>

namespace dopa::detail {

/// Rows of a batched readout's weight one thread takes at a time: the chunks are fixed, so the
/// results do not depend on the number of threads.
constexpr int64_t kReadoutChunk = 256;

/// A batched readout's forward for one step: Y[batch, rows] = X[batch, cols] W^T (+ bias), the
/// rows of W in chunks over the threads (W is read once per step for the whole batch).
/// `panels` holds the chunks' W^T, one per thread (sized here, before the parallel region).
template <class T>
void readoutForward(const BatchedReadout &r, const T *params, const T *x, T *y, int batch,
                    AlignedBuf<T> &panels) {
  int64_t chunks = ceilDiv(r.rows, kReadoutChunk);
  const bool small = fitsSmallGemm<T>(r.cols, std::min(kReadoutChunk, r.rows));
  const int64_t panel = r.cols * kReadoutChunk;
  if (small && panels.size() < size_t(panel * omp_get_max_threads()))
    panels.resize(size_t(panel * omp_get_max_threads()));
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t r0 = c * kReadoutChunk, n = std::min(kReadoutChunk, r.rows - r0);
    const T *w = params + r.weightOffset + r0 * r.cols;
    StridedMatMap<T> Y(y + r0, batch, n, Eigen::OuterStride<>(r.rows));
    if (small && fitsSmallGemm<T>(r.cols, n)) {
      // M = the chunk's W^T (cols x n): 200 KiB for a 256-row chunk of a 200-column decoder.
      T *m = panels.data() + omp_get_thread_num() * panel;
      layOutTranspose(w, n, r.cols, m);
      smallGemm<T>(batch, r.cols, n, x, r.cols, m, n, y + r0, r.rows);
    } else {
      ConstMatMap<T> W(w, n, r.cols);
      ConstMatMap<T> X(x, batch, r.cols);
      Y.noalias() = X * W.transpose();
    }
    if (r.biasOffset >= 0)
      Y.rowwise() +=
          Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(params + r.biasOffset + r0, n);
  }
}

/// A batched readout's backward over all recorded steps at once (n = steps * batch rows):
/// dX = dY W, dW += dY^T X and db += the column sums of dY, as GEMMs with the steps stacked (the
/// inner dimension of dW's product is n, not the batch). Rows of dX and rows of W are split in
/// fixed chunks over the threads (results independent of their number).
template <class T>
void readoutBackward(const BatchedReadout &r, const T *params, T *grads, const T *x, const T *dy,
                     T *dx, int64_t n) {
  ConstMatMap<T> W(params + r.weightOffset, r.rows, r.cols);
  // Rows of dX per chunk: each chunk streams all of W (a language model's 8 MB decoder) once, so
  // few and large (a window of batch 20 x 20 steps is two chunks: one per core here).
  constexpr int64_t kRows = 200;
  int64_t rowChunks = ceilDiv(n, kRows);
#pragma omp parallel for schedule(static) if (rowChunks > 1)
  for (int64_t c = 0; c < rowChunks; ++c) {
    int64_t i0 = c * kRows, m = std::min(kRows, n - i0);
    if (fitsSmallGemm<T>(kReadoutChunk, r.cols)) {
      // The shared dimension (the readout's rows: a vocabulary) in chunks whose rows of W stay
      // in L2 while the chunk's rows of dY go by, their products summed into dX in order.
      for (int64_t k0 = 0; k0 < r.rows; k0 += kReadoutChunk)
        smallGemm<T>(m, std::min(kReadoutChunk, r.rows - k0), r.cols, dy + i0 * r.rows + k0, r.rows,
                     params + r.weightOffset + k0 * r.cols, r.cols, dx + i0 * r.cols, r.cols,
                     k0 > 0);
      continue;
    }
    Eigen::Map<RowMajorMat<T>>(dx + i0 * r.cols, m, r.cols).noalias() =
        ConstMatMap<T>(dy + i0 * r.rows, m, r.rows) * W;
  }
  ConstMatMap<T> X(x, n, r.cols);
  int64_t chunks = ceilDiv(r.rows, kReadoutChunk);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t r0 = c * kReadoutChunk, m = std::min(kReadoutChunk, r.rows - r0);
    ConstStridedMatMap<T> dY(dy + r0, n, m, Eigen::OuterStride<>(r.rows));
    Eigen::Map<RowMajorMat<T>>(grads + r.weightOffset + r0 * r.cols, m, r.cols).noalias() +=
        dY.transpose() * X;
    if (r.biasOffset >= 0)
      Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(grads + r.biasOffset + r0, m) +=
          dY.colwise().sum();
  }
}

} // namespace dopa::detail
