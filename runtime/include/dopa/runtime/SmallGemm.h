//===- SmallGemm.h - Y = X M for a few rows, without packing --------------===//
//
// The product a stage-major step runs for each batched product (GeneratedSpec::forwardProducts):
// a group's few rows (B / threads, 10-30) times a shared weight of a few hundred columns. At
// these shapes a general GEMM spends as long packing the weight into its panel layout, on every
// call, as multiplying (Eigen: 13-15 µs for 15 x 200 x 200 on this project's machine, half of it
// packing). This kernel reads M in place, row by row, and keeps an R x C block of Y in vector
// registers while it walks the shared dimension: one vector load of M and R broadcasts of X per
// C·R fused multiply-adds (6 µs for the same product, 190 GFLOP/s on one core).
//
// Vectors are GCC/Clang vector extensions (`vector_size`), sized for the target: 64 bytes with
// AVX-512, 32 with AVX, else 16, so the same source builds everywhere and the compiler picks the
// instructions. Loads and stores go through memcpy (any alignment, no aliasing questions).
// Columns past the last whole vector run with narrower vectors (half, quarter, ... one lane), so
// nothing is read or written outside the rows given.
//
// Each block of rows walks all of M, which the next block finds in L2 when M fits there (the
// examples' weights do); fitsSmallGemm says when to prefer this kernel over a blocked GEMM (AVX or
// AVX-512: with 128-bit vectors Eigen's GEMM is faster, 35 against 40 µs for 15 x 200 x 200).
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <cstring>

// What this header compiles to depends on the target's vector width: an inline namespace per
// width keeps translation units built with different flags from sharing (ODR-violating) symbols.
#if defined(__AVX512F__)
#define DOPA_SMALL_GEMM_ISA avx512
#elif defined(__AVX__)
#define DOPA_SMALL_GEMM_ISA avx
#else
#define DOPA_SMALL_GEMM_ISA sse
#endif

namespace dopa {
inline namespace DOPA_SMALL_GEMM_ISA {

namespace small_gemm_detail {

#if defined(__AVX512F__)
inline constexpr int kVectorBytes = 64;
inline constexpr int kRows = 5, kVecs = 4; // 20 accumulators of 32 registers
inline constexpr bool kWide = true;
#elif defined(__AVX__)
inline constexpr int kVectorBytes = 32;
inline constexpr int kRows = 4, kVecs = 2; // 8 accumulators of 16 registers
inline constexpr bool kWide = true;
#else
inline constexpr int kVectorBytes = 16;
inline constexpr int kRows = 4, kVecs = 2;
inline constexpr bool kWide = false; // 128-bit vectors: slower than Eigen's GEMM (measured)
#endif

/// A vector of W elements of T.
template <class T, int W> struct Vec {
  typedef T Type __attribute__((vector_size(W * sizeof(T))));
};

/// The shapes and strides of one product (smallGemm's arguments).
struct Operands {
  int64_t k, n, ldx, ldm, ldy;
  bool accumulate;
};

template <class T, int W> inline typename Vec<T, W>::Type load(const T *p) {
  typename Vec<T, W>::Type v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

/// Rows [0, R) x columns [0, C * W) of Y = X M (or Y += X M): R rows of X, C vectors of W lanes
/// of M.
template <class T, int R, int C, int W>
inline void tile(const Operands &o, const T *x, const T *m, T *y) {
  using V = typename Vec<T, W>::Type;
  V acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      acc[r][c] = V{};
  for (int64_t i = 0; i < o.k; ++i) {
    V row[C];
    for (int c = 0; c < C; ++c)
      row[c] = load<T, W>(m + i * o.ldm + c * W);
    for (int r = 0; r < R; ++r) {
      const T xi = x[r * o.ldx + i];
      for (int c = 0; c < C; ++c)
        acc[r][c] += xi * row[c];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) {
      T *to = y + r * o.ldy + c * W;
      if (o.accumulate)
        acc[r][c] += load<T, W>(to);
      std::memcpy(to, &acc[r][c], sizeof(V));
    }
}

/// R rows of Y, every column: whole tiles of C full vectors, then the rest with fewer vectors,
/// then narrower ones.
template <class T, int R> inline void rowBlock(const Operands &o, const T *x, const T *m, T *y) {
  constexpr int L = kVectorBytes / int(sizeof(T));
  const int64_t n = o.n;
  int64_t j = 0;
  for (; j + kVecs * L <= n; j += kVecs * L)
    tile<T, R, kVecs, L>(o, x, m + j, y + j);
  // Fewer than kVecs whole vectors left (kVecs is 2 or 4).
  for (; j + L <= n; j += L)
    tile<T, R, 1, L>(o, x, m + j, y + j);
  // Fewer than L columns: one vector of each width the remainder's binary digits name.
  if constexpr (L >= 16)
    if (n - j >= 8) {
      tile<T, R, 1, 8>(o, x, m + j, y + j);
      j += 8;
    }
  if constexpr (L >= 8)
    if (n - j >= 4) {
      tile<T, R, 1, 4>(o, x, m + j, y + j);
      j += 4;
    }
  if constexpr (L >= 4)
    if (n - j >= 2) {
      tile<T, R, 1, 2>(o, x, m + j, y + j);
      j += 2;
    }
  if (n - j >= 1)
    tile<T, R, 1, 1>(o, x, m + j, y + j);
}

} // namespace small_gemm_detail

/// Lanes of one vector of T in this build.
template <class T> constexpr int smallGemmLanes() {
  return small_gemm_detail::kVectorBytes / int(sizeof(T));
}

/// Whether smallGemm suits a product with a shared dimension `k` and `n` columns: a build with
/// AVX or AVX-512, at least one whole vector of columns, and a tile's k rows of M (kVecs vectors
/// wide) within 256 KiB (k up to 1,024 floats with AVX-512). Each block of rows reads all of M,
/// from L2 where M fits there (the examples' weights: 160-660 KiB).
template <class T> constexpr bool fitsSmallGemm(int64_t k, int64_t n) {
  return small_gemm_detail::kWide && n >= smallGemmLanes<T>() &&
         k * small_gemm_detail::kVecs * small_gemm_detail::kVectorBytes <= int64_t(256) << 10;
}

/// Y = X M (accumulate: Y += X M), row-major: X is rows x k (row stride ldx), M is k x n (ldm),
/// Y is rows x n (ldy). Y must not overlap X or M.
template <class T>
void smallGemm(int64_t rows, int64_t k, int64_t n, const T *x, int64_t ldx, const T *m, int64_t ldm,
               T *y, int64_t ldy, bool accumulate = false) {
  using namespace small_gemm_detail;
  constexpr int R = kRows;
  const Operands o{k, n, ldx, ldm, ldy, accumulate};
  int64_t b = 0;
  for (; b + R <= rows; b += R)
    rowBlock<T, R>(o, x + b * ldx, m, y + b * ldy);
  const T *xb = x + b * ldx;
  T *yb = y + b * ldy;
  switch (rows - b) { // kRows is 4 or 5
  case 4:
    if constexpr (R > 4)
      rowBlock<T, 4>(o, xb, m, yb);
    break;
  case 3: rowBlock<T, 3>(o, xb, m, yb); break;
  case 2: rowBlock<T, 2>(o, xb, m, yb); break;
  case 1: rowBlock<T, 1>(o, xb, m, yb); break;
  default: break;
  }
}

} // namespace DOPA_SMALL_GEMM_ISA
} // namespace dopa

#undef DOPA_SMALL_GEMM_ISA
