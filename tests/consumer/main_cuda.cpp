// main_cuda.cpp - the consumer's network compiled for the GPU: build-tested everywhere, run where a
// device is present (the same steps as main.cpp on the CUDA executor), SKIP said visibly elsewhere.
#include "hebbian_gpu.h"

#include "dopa/cuda/CudaExecutor.h"

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  const dopa::CudaSpec &spec = dopa::generated::hebbian_gpu::cuda_spec();
  std::printf("CUDA network %s compiled\n", spec.name);
  if (!dopa::cudaDeviceAvailable()) {
    std::printf("SKIP: no CUDA device here; the GPU network was built, not run\n");
    return 0;
  }
  dopa::CudaNetwork net(spec);
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
  std::printf("%s on the GPU: y = %.6f, |grad| = %.6f\n", net.info().name.c_str(), y[0],
              std::sqrt(norm));
  return std::isfinite(norm) && norm > 0 ? 0 : 1;
}
