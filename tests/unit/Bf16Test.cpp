//===- Bf16Test.cpp - bfloat16 trace storage (Bf16.h) -----------------------===//
//
// roundBf16 against the definition (the nearest of the two bfloat16 neighbours, ties away from
// zero) over a sweep of bit patterns, computed in an omp simd loop as the generated code calls it;
// idempotence, the special values, the storage round trip (writeTrace / readTrace, traceStore of
// a rounded value), and the double build's identity.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/Bf16.h"

#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

using namespace dopa;

namespace {
/// The nearest bfloat16 by the definition: compare the distances to the two neighbours.
float nearestBf16(float x) {
  uint32_t u = std::bit_cast<uint32_t>(x);
  float down = std::bit_cast<float>(u & 0xffff0000u); // towards zero
  float up = std::bit_cast<float>((u & 0xffff0000u) + 0x10000u);
  // Above the largest bfloat16 the next one up is infinity, at 2^128 for the distance.
  double upValue = std::isinf(up) ? std::copysign(std::ldexp(1.0, 128), double(x)) : double(up);
  double dd = std::abs(double(x) - double(down)), du = std::abs(upValue - double(x));
  return dd < du ? down : up; // a tie goes away from zero (up)
}
} // namespace

TEST_CASE("roundBf16 is the nearest bfloat16, ties away from zero") {
  std::vector<float> xs, ys;
  // Every 997th bit pattern of the finite floats, both signs, plus the ties and their neighbours.
  for (uint64_t u = 0; u < 0x7f800000u; u += 997)
    for (uint32_t sign : {0u, 0x80000000u}) {
      xs.push_back(std::bit_cast<float>(uint32_t(u) | sign));
      uint32_t tie = (uint32_t(u) & 0xffff0000u) | 0x8000u | sign;
      for (uint32_t t : {tie - 1, tie, tie + 1})
        if ((t & 0x7fffffffu) < 0x7f800000u)
          xs.push_back(std::bit_cast<float>(t));
    }
  ys.resize(xs.size());
  const float *x = xs.data();
  float *y = ys.data();
  const int64_t n = int64_t(xs.size());
#pragma omp simd
  for (int64_t i = 0; i < n; ++i)
    y[i] = roundBf16(x[i]);
  int64_t wrong = 0;
  for (int64_t i = 0; i < n; ++i) {
    float want = nearestBf16(xs[size_t(i)]);
    if (std::bit_cast<uint32_t>(ys[size_t(i)]) != std::bit_cast<uint32_t>(want) && ++wrong <= 5)
      FAIL_CHECK("roundBf16(" << xs[size_t(i)] << ") = " << ys[size_t(i)] << ", want " << want);
  }
  CHECK(wrong == 0);
  CHECK(n > 1000000);
}

TEST_CASE("roundBf16: exact values, special values, idempotence") {
  for (float v : {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 3.0f, 1.0f / 256, -65536.0f})
    CHECK(std::bit_cast<uint32_t>(roundBf16(v)) == std::bit_cast<uint32_t>(v));
  float inf = std::numeric_limits<float>::infinity();
  CHECK(roundBf16(inf) == inf);
  CHECK(roundBf16(-inf) == -inf);
  CHECK(std::isnan(roundBf16(std::numeric_limits<float>::quiet_NaN())));
  CHECK(roundBf16(std::numeric_limits<float>::max()) == inf); // beyond bfloat16's largest
  CHECK(roundBf16(1.0f + 1.0f / 256) == 1.0f + 1.0f / 128);   // a tie: away from zero
  CHECK(roundBf16(-1.0f - 1.0f / 256) == -1.0f - 1.0f / 128);
  CHECK(roundBf16(1.0f + 1.0f / 512) == 1.0f);
  CHECK(roundBf16(0.1f) == 0.10009765625f);
  for (float v : {0.1f, -0.3f, 1e-30f, 12345.678f})
    CHECK(roundBf16(roundBf16(v)) == roundBf16(v));
  CHECK(roundBf16(0.1) == 0.1); // the double build is exact
}

TEST_CASE("trace storage: 16 bits per value, round trips, NaN kept") {
  std::vector<float> values = {0.1f, -0.25f, 1.0f, -3.5e-3f, 7.0f};
  std::vector<float> slot(values.size(), -1.0f), back(values.size());
  writeTrace(slot.data(), values.data(), int64_t(values.size()));
  // The first half of the slot holds the values; the rest is untouched.
  CHECK(slot.back() == -1.0f);
  readTrace(slot.data(), back.data(), int64_t(values.size()));
  for (size_t i = 0; i < values.size(); ++i) {
    CHECK(back[i] == roundBf16(values[i]));
    CHECK(traceLoad(traceStore(roundBf16(values[i]))) == roundBf16(values[i]));
  }
  CHECK(std::isnan(bf16ToFloat(floatToBf16(std::bit_cast<float>(0x7f800001u)))));
  CHECK(std::isnan(bf16ToFloat(floatToBf16(std::numeric_limits<float>::quiet_NaN()))));
  std::vector<double> dslot(3), dback(3), dvalues = {0.1, -0.2, 0.3};
  writeTrace(dslot.data(), dvalues.data(), 3);
  readTrace(dslot.data(), dback.data(), 3);
  CHECK(dback == dvalues);
}
