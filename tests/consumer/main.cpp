// main.cpp - run the consumer's generated network: 5 steps, backward, print what came out.
#include "hebbian.h"

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  dopa::GeneratedNetwork net(dopa::generated::hebbian::spec());
  dopa::initParams(net.info(), net.params(), 1);
  net.zeroGrads();
  net.beginEpisode(2);
  std::vector<float> x(2 * 3, 0.5f), y(2), dy(2, 1.0f);
  const float *in[] = {x.data()};
  float *out[] = {y.data()};
  for (int t = 0; t < 5; ++t)
    net.step(in, out);
  const float *g[] = {dy.data()};
  std::vector<const float *const *> grads(5, g);
  net.backward(grads.data());
  double norm = 0;
  for (size_t i = 0; i < net.info().numParams; ++i)
    norm += double(net.grads()[i]) * net.grads()[i];
  std::printf("%s: %zu parameters (H=%lld), y = %.6f, |grad| = %.6f\n", net.info().name.c_str(),
              net.info().numParams, static_cast<long long>(net.info().states[0].shape[0]), y[0],
              std::sqrt(norm));
  return std::isfinite(norm) && norm > 0 ? 0 : 1;
}
