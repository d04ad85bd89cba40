//===- Random.h - Seeded, portable random numbers -------------------------===//
//
// A small deterministic generator (SplitMix64 seeding a xoshiro256**, Blackman and Vigna) with
// uniform and normal draws implemented here, so the same seed gives the same numbers on every
// platform and standard library (std::uniform_real_distribution and friends are
// implementation-defined). Header-only, so that a task plug-in (dopa/train/Task.h) needs no symbol
// of the dopa binary that loads it.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cmath>
#include <cstdint>

namespace dopa {

class Rng {
public:
  explicit Rng(uint64_t seed) {
    for (uint64_t &word : s)
      word = splitMix(seed);
  }

  uint64_t next() {
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
  }
  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Standard normal (Box-Muller, caching the second draw).
  double normal() {
    if (haveSpare) {
      haveSpare = false;
      return spare;
    }
    double u1 = 0;
    while (u1 <= 0)
      u1 = uniform();
    double u2 = uniform();
    double r = std::sqrt(-2.0 * std::log(u1));
    spare = r * std::sin(2 * M_PI * u2);
    haveSpare = true;
    return r * std::cos(2 * M_PI * u2);
  }
  /// Uniform integer in [0, n), n > 0 (rejection sampling: unbiased).
  uint64_t below(uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do
      x = next();
    while (x >= limit);
    return x % n;
  }

  /// The full state (for checkpoints): four words, then the cached normal draw.
  struct State {
    uint64_t words[4];
    bool haveSpare;
    double spare;
  };
  State state() const { return {{s[0], s[1], s[2], s[3]}, haveSpare, spare}; }
  void setState(const State &st) {
    for (int i = 0; i < 4; ++i)
      s[i] = st.words[i];
    haveSpare = st.haveSpare;
    spare = st.spare;
  }

private:
  static uint64_t splitMix(uint64_t &x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

  uint64_t s[4];
  bool haveSpare = false;
  double spare = 0;
};

} // namespace dopa
