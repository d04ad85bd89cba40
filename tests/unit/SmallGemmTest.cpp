//===- SmallGemmTest.cpp - smallGemm against a plain triple loop ----------===//
//
// smallGemm (SmallGemm.h), the product kernel of stage-major batched products, against a triple
// loop in long double over every shape class its tiling has: row counts around its row block
// (1 to 2 blocks and a remainder), column counts around its vector width (less than one vector,
// whole vectors, whole tiles, each narrower tail width), a shared dimension of 1 and of a few
// hundred, row strides wider than the rows (the columns past the product stay untouched), Y = X M
// and Y += X M, in float and in double. Also fitsSmallGemm's two limits.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/SmallGemm.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

using namespace dopa;

namespace {

/// The largest error of smallGemm on one shape, relative to sum_i |x_i| |m_i| (the scale of a
/// rounding error of the dot product); -1 when a value outside the product changed.
template <class T>
double productError(int64_t rows, int64_t k, int64_t n, int64_t pad, bool accumulate) {
  std::mt19937 rng(uint32_t(rows * 7919 + k * 104729 + n * 31 + pad));
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  const int64_t ldx = k + pad, ldm = n + pad, ldy = n + pad;
  std::vector<T> x(size_t(rows * ldx)), m(size_t(k * ldm)), y(size_t(rows * ldy), T(7));
  for (T &v : x)
    v = T(dist(rng));
  for (T &v : m)
    v = T(dist(rng));
  smallGemm<T>(rows, k, n, x.data(), ldx, m.data(), ldm, y.data(), ldy, accumulate);
  double worst = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < ldy; ++j) {
      T got = y[size_t(r * ldy + j)];
      if (j >= n) { // past the product's columns: untouched
        if (got != T(7))
          return -1;
        continue;
      }
      long double want = accumulate ? 7 : 0, scale = accumulate ? 7 : 0;
      for (int64_t i = 0; i < k; ++i) {
        long double a = x[size_t(r * ldx + i)], b = m[size_t(i * ldm + j)];
        want += a * b;
        scale += std::fabs(a * b);
      }
      double e = double(std::fabs(got - want) / (scale + 1e-30L));
      if (!(e <= worst)) // a NaN counts as the worst error
        worst = std::isnan(e) ? std::numeric_limits<double>::infinity() : e;
    }
  }
  return worst;
}

template <class T> void sweep(double tolerance) {
  const int lanes = smallGemmLanes<T>();
  std::vector<int64_t> cols = {1, 2, 3, 5, 7};
  for (int64_t base : {int64_t(lanes), int64_t(2 * lanes), int64_t(4 * lanes), int64_t(200)})
    for (int64_t d : {-1, 0, 1, 3})
      if (base + d > 0)
        cols.push_back(base + d);
  for (int64_t rows : {1, 2, 3, 4, 5, 6, 9, 11, 15})
    for (int64_t k : {1, 3, 27, 200})
      for (int64_t n : cols)
        for (int64_t pad : {0, 5})
          for (bool accumulate : {false, true}) {
            double e = productError<T>(rows, k, n, pad, accumulate);
            INFO("rows " << rows << ", k " << k << ", n " << n << ", pad " << pad << ", accumulate "
                         << accumulate);
            REQUIRE(e >= 0); // nothing outside the product was written
            CHECK(e < tolerance);
          }
}

} // namespace

TEST_CASE("smallGemm: Y = X M equals a plain triple loop for every tile shape (float), = and +=") {
  sweep<float>(1e-6);
}

TEST_CASE("smallGemm: Y = X M equals a plain triple loop for every tile shape (double), = and +=") {
  sweep<double>(1e-14);
}

TEST_CASE("smallGemm: fitsSmallGemm needs a whole vector of columns and M's tile in L2") {
  const int lanes = smallGemmLanes<float>();
  CHECK(fitsSmallGemm<float>(200, 200));
  CHECK(fitsSmallGemm<float>(27, lanes));
  CHECK_FALSE(fitsSmallGemm<float>(200, lanes - 1)); // fewer columns than one vector
  CHECK_FALSE(fitsSmallGemm<float>(10000, 200));     // the 10,000-row decoder: Eigen's GEMM
}
