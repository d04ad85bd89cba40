//===- SimdMathTest.cpp - The generated code's vectorizing exp, tanh, sigmoid ---===//
//
// SimdMath.h against long-double references: the error in ulp over dense sweeps of each
// function's whole range (and the small arguments where tanh's relative error matters), in float
// and double; the special values (signed zeros, infinities, NaN, the overflow and underflow
// thresholds).
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/SimdMath.h"

#include <doctest/doctest.h>

#include <cmath>
#include <initializer_list>
#include <limits>

using namespace dopa::generated;

namespace {

/// |got - want| in units of the last place of `want` rounded to T (denormal spacing below the
/// normal range); 0 when `got` is that rounding, and infinite for a wrong infinity or NaN.
template <class T> double ulpError(T got, long double want) {
  T w = T(want);
  if (std::isnan(w) || std::isnan(got))
    return std::isnan(w) && std::isnan(got) ? 0 : std::numeric_limits<double>::infinity();
  if (got == w)
    return 0;
  if (std::isinf(w) || std::isinf(got))
    return std::numeric_limits<double>::infinity();
  T a = std::fabs(w);
  long double ulp = std::nextafter(a, std::numeric_limits<T>::infinity()) - a;
  return double(std::fabs((long double)got - want) / ulp);
}

struct Worst {
  double ulps = 0, at = 0;
  void add(double e, double x) {
    if (e > ulps) {
      ulps = e;
      at = x;
    }
  }
};

template <class T> void checkSweeps(double expBound, double tanhBound, double sigmoidBound) {
  // Where exp's result is normal (no denormal spacing to measure it in) and a bit past it.
  const long double lo = sizeof(T) == 4 ? -87.0L : -708.0L, hi = sizeof(T) == 4 ? 88.7L : 709.7L;
  Worst e, t, s;
  const int n = 400000;
  for (int i = 0; i <= n; ++i) {
    T x = T(lo + (hi - lo) * i / n);
    long double X = x;
    e.add(ulpError(simdExp(x), std::exp(X)), double(x));
    t.add(ulpError(simdTanh(x), std::tanh(X)), double(x));
    if (x > -hi + 1) // 1 / (1 + e^-x) is normal
      s.add(ulpError(simdSigmoid(x), 1.0L / (1.0L + std::exp(-X))), double(x));
  }
  // Small arguments, both signs, mantissas 1.000 .. 1.999 at every scale 2^-40 .. 2^2.
  for (int p = -40; p <= 2; ++p)
    for (int m = 0; m < 1000; ++m)
      for (T sign : {T(1), T(-1)}) {
        T x = sign * T(std::ldexp(1.0L + m / 1000.0L, p));
        long double X = x;
        e.add(ulpError(simdExp(x), std::exp(X)), double(x));
        t.add(ulpError(simdTanh(x), std::tanh(X)), double(x));
        s.add(ulpError(simdSigmoid(x), 1.0L / (1.0L + std::exp(-X))), double(x));
      }
  INFO("exp ", e.ulps, " ulp at ", e.at, "; tanh ", t.ulps, " at ", t.at, "; sigmoid ", s.ulps,
       " at ", s.at);
  CHECK(e.ulps <= expBound);
  CHECK(t.ulps <= tanhBound);
  CHECK(s.ulps <= sigmoidBound);
}

template <class T> void checkSpecials() {
  const T inf = std::numeric_limits<T>::infinity(), nan = std::numeric_limits<T>::quiet_NaN();
  CHECK(simdExp(T(0)) == T(1));
  CHECK(simdExp(inf) == inf);
  CHECK(simdExp(-inf) == T(0));
  CHECK(std::isnan(simdExp(nan)));
  CHECK(simdTanh(T(0)) == T(0));
  CHECK(!std::signbit(simdTanh(T(0))));
  CHECK(std::signbit(simdTanh(T(-0.0)))); // tanh(-0) = -0
  CHECK(simdTanh(inf) == T(1));
  CHECK(simdTanh(-inf) == T(-1));
  CHECK(std::isnan(simdTanh(nan)));
  CHECK(simdSigmoid(T(0)) == T(0.5));
  CHECK(simdSigmoid(inf) == T(1));
  CHECK(simdSigmoid(-inf) == T(0));
  CHECK(std::isnan(simdSigmoid(nan)));
  // Past the thresholds: IEEE overflow and underflow, not garbage from the exponent bits.
  const T big = sizeof(T) == 4 ? T(88.8) : T(709.9), small = sizeof(T) == 4 ? T(-104) : T(-746);
  CHECK(simdExp(big) == inf);
  CHECK(simdExp(T(1e30)) == inf);
  CHECK(simdExp(small) == T(0));
  CHECK(simdExp(T(-1e30)) == T(0));
  CHECK(simdTanh(T(1e30)) == T(1));
  CHECK(simdTanh(T(-30)) == T(-1));
  // Denormal results: within a few denormal steps of the exact value.
  const T sub = sizeof(T) == 4 ? T(-95) : T(-720);
  CHECK(std::fabs(double(simdExp(sub)) - double(std::exp((long double)sub))) <=
        4 * double(std::numeric_limits<T>::denorm_min()));
}

} // namespace

TEST_CASE("simd math: exp, tanh and sigmoid in float within a few ulp, special values exact") {
  checkSweeps<float>(1, 3, 3);
  checkSpecials<float>();
}

TEST_CASE("simd math: exp, tanh and sigmoid in double within a few ulp, special values exact") {
  checkSweeps<double>(1, 3, 3);
  checkSpecials<double>();
}
