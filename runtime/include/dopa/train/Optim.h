//===- Optim.h - Adam and gradient-norm clipping with PyTorch's semantics --===//
//
// Adam as torch.optim.Adam computes it (bias correction; eps added to sqrt(v)/sqrt(1-beta2^t);
// L2 weight decay added to the gradient), and clip_grad_norm_ (total L2 norm over all parameters,
// scale by max_norm / (norm + 1e-6) when that is below 1).
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace dopa {

struct AdamConfig {
  double lr = 1e-4;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-6; // the reference's --eps for the cue-reward task
  double weightDecay = 0;
};

class Adam {
public:
  Adam(AdamConfig config, size_t numParams);
  void step(float *params, const float *grads);

  const AdamConfig &config() const { return cfg; }
  int64_t steps() const { return t; }
  // State, for checkpoints.
  std::vector<float> &firstMoment() { return m; }
  std::vector<float> &secondMoment() { return v; }
  const std::vector<float> &firstMoment() const { return m; }
  const std::vector<float> &secondMoment() const { return v; }
  void setSteps(int64_t steps) { t = steps; }

private:
  AdamConfig cfg;
  std::vector<float> m, v;
  int64_t t = 0;
};

/// Scale `grads` so their global L2 norm is at most `maxNorm`; returns the norm before clipping.
double clipGradNorm(float *grads, size_t n, double maxNorm);

} // namespace dopa
