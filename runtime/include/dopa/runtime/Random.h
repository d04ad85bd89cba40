//===- Random.h - Seeded, portable random numbers -------------------------===//
//
// A small deterministic generator (SplitMix64 seeding a xoshiro256**) with uniform and normal
// draws implemented here, so the same seed gives the same numbers on every platform and standard
// library (std::uniform_real_distribution and friends are implementation-defined).
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>

namespace dopa {

class Rng {
public:
  explicit Rng(uint64_t seed);

  uint64_t next();
  /// Uniform in [0, 1) with 53 random bits.
  double uniform();
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Standard normal (Box-Muller, caching the second draw).
  double normal();
  /// Uniform integer in [0, n).
  uint64_t below(uint64_t n);

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
  uint64_t s[4];
  bool haveSpare = false;
  double spare = 0;
};

} // namespace dopa
