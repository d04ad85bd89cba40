//===- Network.cpp - Initializers and Network helpers ---------------------===//
//
// The parameter initializer that fills a flat buffer from each InitSpec (with Random.h's
// generator), and the Network helpers.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/Network.h"
#include "dopa/runtime/Random.h"

#include <cmath>
#include <stdexcept>

using namespace dopa;

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

size_t NetworkInfo::numLearned() const {
  size_t n = 0;
  for (const TensorInfo &p : params)
    if (!p.isMask())
      n += size_t(p.numel());
  return n;
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
