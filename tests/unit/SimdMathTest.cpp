//===- SimdMathTest.cpp - The generated code's vectorizing exp, tanh, sigmoid ---===//
//
// SimdMath.h against long-double references: the error in ulp over dense sweeps of each
// function's whole range (and the small arguments where tanh's relative error matters), computed
// in omp simd loops as the generated code calls them, in float and double; the special values
// (signed zeros, infinities, NaN, the overflow and underflow thresholds).
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/SimdMath.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <initializer_list>
#include <limits>
#include <vector>

using namespace dopa::generated;

namespace {

/// |got - want| in units of the last place of `want` rounded to T: the smaller of the gaps on
/// either side of it (a power of two has a gap below half the one above), so never under-counted;
/// 0 when `got` is that rounding, infinite for a wrong infinity or NaN.
template <class T> double ulpError(T got, long double want) {
  T w = T(want);
  if (std::isnan(w) || std::isnan(got))
    return std::isnan(w) && std::isnan(got) ? 0 : std::numeric_limits<double>::infinity();
  if (got == w)
    return 0;
  if (std::isinf(w) || std::isinf(got))
    return std::numeric_limits<double>::infinity();
  T a = std::fabs(w);
  long double up = std::nextafter(a, std::numeric_limits<T>::infinity()) - a;
  long double down = a - std::nextafter(a, T(0));
  long double ulp = a == T(0) ? up : std::min(up, down);
  return double(std::fabs((long double)got - want) / ulp);
}

/// The three functions over `x` in `omp simd` loops, as the generated code calls them (so the
/// vectorized code is what is checked, where the compiler vectorizes).
template <class T> struct Results {
  std::vector<T> exp, tanh, sigmoid;
  explicit Results(const std::vector<T> &x) : exp(x.size()), tanh(x.size()), sigmoid(x.size()) {
    const T *__restrict in = x.data();
    T *__restrict e = exp.data();
    T *__restrict t = tanh.data();
    T *__restrict s = sigmoid.data();
    const int n = int(x.size());
#pragma omp simd
    for (int j = 0; j < n; ++j)
      e[j] = simdExp(in[j]);
#pragma omp simd
    for (int j = 0; j < n; ++j)
      t[j] = simdTanh(in[j]);
    // Sigmoid as the C++ emitter writes it (EmitCommon.cpp, expression()), and as simdSigmoid.
#pragma omp simd
    for (int j = 0; j < n; ++j)
      s[j] = T(1) / (T(1) + simdExp(-in[j]));
    int differ = 0;
    for (int j = 0; j < n; ++j)
      differ += !(s[j] == simdSigmoid(in[j])) && !(std::isnan(s[j]) && std::isnan(in[j]));
    CHECK(differ == 0);
  }
};

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
  std::vector<T> xs;
  const int n = 400000;
  for (int i = 0; i <= n; ++i)
    xs.push_back(T(lo + (hi - lo) * i / n));
  // Small arguments, both signs, mantissas 1.000 .. 1.999 at every scale 2^-40 .. 2^2.
  for (int p = -40; p <= 2; ++p)
    for (int m = 0; m < 1000; ++m)
      for (T sign : {T(1), T(-1)})
        xs.push_back(sign * T(std::ldexp(1.0L + m / 1000.0L, p)));
  Results<T> r(xs);
  Worst e, t, s;
  for (size_t i = 0; i < xs.size(); ++i) {
    long double X = xs[i];
    double x = double(xs[i]);
    e.add(ulpError(r.exp[i], std::exp(X)), x);
    t.add(ulpError(r.tanh[i], std::tanh(X)), x);
    if (X > -hi + 1) // 1 / (1 + e^-x) is normal
      s.add(ulpError(r.sigmoid[i], 1.0L / (1.0L + std::exp(-X))), x);
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
  checkSweeps<float>(2, 3, 3);
  checkSpecials<float>();
}

TEST_CASE("simd math: exp, tanh and sigmoid in double within a few ulp, special values exact") {
  checkSweeps<double>(2, 3, 3);
  checkSpecials<double>();
}
