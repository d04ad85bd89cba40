//===- Network.cpp - Random numbers, initializers, Network helpers ---------===//
//
// xoshiro256** (Blackman and Vigna), seeded through SplitMix64; Box-Muller normals; and the
// parameter initializer that fills a flat buffer from each InitSpec; the Network helpers.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/Network.h"
#include "dopa/runtime/Random.h"

#include <cmath>
#include <stdexcept>

using namespace dopa;

static uint64_t splitMix(uint64_t &x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ULL);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

Rng::Rng(uint64_t seed) {
  for (uint64_t &word : s)
    word = splitMix(seed);
}

uint64_t Rng::next() {
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

double Rng::uniform() { return double(next() >> 11) * 0x1.0p-53; }

double Rng::normal() {
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

uint64_t Rng::below(uint64_t n) {
  // Rejection sampling for an unbiased result.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do
    x = next();
  while (x >= limit);
  return x % n;
}

void dopa::initParams(const NetworkInfo &info, float *params, uint64_t seed) {
  Rng rng(seed);
  for (size_t p = 0; p < info.params.size(); ++p) {
    const TensorInfo &t = info.params[p];
    float *out = params + info.paramOffsets[p];
    int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) {
      switch (t.init.kind) {
      case InitSpec::Constant: out[i] = float(t.init.a); break;
      case InitSpec::Uniform: out[i] = float(rng.uniform(t.init.a, t.init.b)); break;
      case InitSpec::Normal: out[i] = float(t.init.a + t.init.b * rng.normal()); break;
      }
    }
  }
}

int NetworkInfo::findParam(const std::string &n) const {
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].name == n)
      return int(i);
  return -1;
}
int NetworkInfo::findInput(const std::string &n) const {
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i].name == n)
      return int(i);
  return -1;
}
int NetworkInfo::findOutput(const std::string &n) const {
  for (size_t i = 0; i < outputs.size(); ++i)
    if (outputs[i].name == n)
      return int(i);
  return -1;
}

Tensor<float> Network::viewOf(float *base, const std::string &name) {
  int p = info().findParam(name);
  if (p < 0)
    throw std::invalid_argument("network '" + info().name + "' has no parameter '" + name + "'");
  return Tensor<float>::view(base + info().paramOffsets[size_t(p)], info().params[size_t(p)].shape);
}

Tensor<float> Network::param(const std::string &name) { return viewOf(params(), name); }
Tensor<float> Network::grad(const std::string &name) { return viewOf(grads(), name); }

void Network::forward(int steps, const float *const *const *inputs, float *const *const *outputs) {
  for (int t = 0; t < steps; ++t)
    step(inputs[t], outputs[t]);
}

void Network::zeroGrads() {
  float *g = grads();
  size_t n = info().numParams;
  for (size_t i = 0; i < n; ++i)
    g[i] = 0;
}
