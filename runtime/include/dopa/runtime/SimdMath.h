//===- SimdMath.h - exp, tanh and sigmoid that vectorize ------------------===//
//
// The activations the generated C++ calls in its element-wise loops. A call of std::exp or
// std::tanh is a call into libm, which keeps the loop around it scalar (about 8 ns per element,
// 16% of an LSTM language model's training time); these are inline, branch-free (selects, integer
// bit operations, no conversions a vector unit lacks), so the compiler vectorizes the loop with
// them under `#pragma omp simd`, in float and in double, with AVX2 or AVX-512.
//
// Method: exp(x) = 2^k (1 + expm1(r)), k = round(x / ln 2), r = x - k ln 2 (Cody-Waite, two
// constants), expm1(r) on |r| <= ln(2)/2 by its Taylor series cut where the rest is a small
// fraction of an ulp (degree 8 in float, 13 in double); 2^k built from exponent bits, in two
// factors so that results near the overflow and underflow thresholds round as IEEE arithmetic does.
// tanh(x) = sign(x) e / (e + 2) with e = expm1(2|x|), accurate near 0. Errors: a few ulp against
// the correctly rounded value (tested: unit test "simd math"); NaN in, NaN out; +-inf and the
// saturated ranges give the IEEE limits (sigmoid: 1 / (1 + exp(-x)), so 0 once exp(-x) overflows,
// below x = -88.7 in float). No errno, no floating-point exceptions relied on. Needs IEEE
// arithmetic: (x + shifter) - shifter must round x, which -ffast-math (-fassociative-math) folds
// away, so a -ffast-math build stops here.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <bit>
#include <cstdint>

#if defined(__FAST_MATH__)
#error "SimdMath.h needs IEEE arithmetic: do not compile generated networks with -ffast-math"
#endif

namespace dopa::generated {

namespace simd_detail {

template <class T> struct Consts;

template <> struct Consts<float> {
  using Bits = uint32_t;
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float ln2hi = 0.693359375f;    // few bits: k * ln2hi is exact
  static constexpr float ln2lo = -2.12194440e-4f; // ln 2 - ln2hi
  static constexpr float shifter = 12582912.0f;   // 1.5 * 2^23: x + shifter rounds x to an integer
  static constexpr float expLo = -104.0f, expHi = 89.0f; // beyond: 0 and inf
  static constexpr float tanhCap = 40.0f; // tanh(20) == 1 in float; expm1(40) is finite
  static constexpr int mantissaBits = 23, bias = 127;
  static constexpr int degree = 8;
};

template <> struct Consts<double> {
  using Bits = uint64_t;
  static constexpr double log2e = 1.4426950408889634074;
  static constexpr double ln2hi = 6.93147180369123816490e-01; // 32 bits: k * ln2hi is exact
  static constexpr double ln2lo = 1.90821492927058770002e-10;
  static constexpr double shifter = 6755399441055744.0; // 1.5 * 2^52
  static constexpr double expLo = -746.0, expHi = 710.0;
  static constexpr double tanhCap = 80.0;
  static constexpr int mantissaBits = 52, bias = 1023;
  static constexpr int degree = 13;
};

/// 2^k for an integer-valued k in the normal exponent range, from its bits.
template <class T> [[gnu::always_inline]] inline T pow2(T k) {
  using C = Consts<T>;
  using Bits = typename C::Bits;
  // k + shifter holds k in its low mantissa bits: its bit pattern is the shifter's plus k.
  Bits n = std::bit_cast<Bits>(T(k + C::shifter)) - std::bit_cast<Bits>(C::shifter);
  return std::bit_cast<T>(Bits((n + Bits(C::bias)) << C::mantissaBits));
}

/// k = round(x / ln 2) and r = x - k ln 2.
template <class T> [[gnu::always_inline]] inline void reduce(T x, T &k, T &r) {
  using C = Consts<T>;
  k = (x * C::log2e + C::shifter) - C::shifter;
  r = (x - k * C::ln2hi) - k * C::ln2lo;
}

/// expm1(r) for |r| <= ln(2)/2: r (1 + r/2 (1 + r/3 (1 + ...))), the Taylor series to `degree`.
template <class T> [[gnu::always_inline]] inline T expm1Reduced(T r) {
  T p = T(1);
  for (int n = Consts<T>::degree; n >= 2; --n)
    p = T(1) + p * r * (T(1) / T(n));
  return r * p;
}

} // namespace simd_detail

/// e^x; vectorizes in `omp simd` loops.
template <class T> [[gnu::always_inline]] inline T simdExp(T x) {
  using C = simd_detail::Consts<T>;
  x = x < C::expLo ? C::expLo : (x > C::expHi ? C::expHi : x); // NaN stays NaN
  T k, r;
  simd_detail::reduce(x, k, r);
  T p = simd_detail::expm1Reduced(r);
  // Two factors: 2^k alone leaves the exponent range near the thresholds.
  T k1 = T(k * T(0.5)), k1r = (k1 + C::shifter) - C::shifter; // round(k / 2)
  return ((T(1) + p) * simd_detail::pow2(k1r)) * simd_detail::pow2(T(k - k1r));
}

/// tanh(x); vectorizes in `omp simd` loops.
template <class T> [[gnu::always_inline]] inline T simdTanh(T x) {
  using C = simd_detail::Consts<T>;
  using Bits = typename C::Bits;
  constexpr Bits sign = Bits(1) << (sizeof(T) * 8 - 1);
  T a = std::bit_cast<T>(Bits(std::bit_cast<Bits>(x) & ~sign)); // |x|
  T a2 = T(2) * a;
  a2 = a2 > C::tanhCap ? C::tanhCap : a2; // NaN stays NaN
  T k, r;
  simd_detail::reduce(a2, k, r);
  T s = simd_detail::pow2(k);
  T e = s * simd_detail::expm1Reduced(r) + (s - T(1)); // expm1(2|x|)
  T t = e / (e + T(2));
  return std::bit_cast<T>(Bits(std::bit_cast<Bits>(t) | (std::bit_cast<Bits>(x) & sign)));
}

/// 1 / (1 + e^-x); vectorizes in `omp simd` loops.
template <class T> [[gnu::always_inline]] inline T simdSigmoid(T x) {
  return T(1) / (T(1) + simdExp(T(-x)));
}

} // namespace dopa::generated
