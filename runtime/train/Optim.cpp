//===- Optim.cpp - Adam and gradient-norm clipping with PyTorch's semantics ===//
//
// Follows torch/optim/adam.py (single-tensor path) and torch.nn.utils.clip_grad_norm_.
//
//===----------------------------------------------------------------------===//
#include "dopa/train/Optim.h"

#include <cmath>

using namespace dopa;

Adam::Adam(AdamConfig config, size_t numParams)
    : cfg(config), m(numParams, 0.f), v(numParams, 0.f) {}

void Adam::step(float *params, const float *grads) {
  ++t;
  double bc1 = 1 - std::pow(cfg.beta1, double(t));
  double bc2 = 1 - std::pow(cfg.beta2, double(t));
  double stepSize = cfg.lr / bc1;
  double sqrtBc2 = std::sqrt(bc2);
  for (size_t i = 0; i < m.size(); ++i) {
    float g = grads[i];
    if (cfg.weightDecay != 0)
      g += float(cfg.weightDecay) * params[i];
    m[i] = float(cfg.beta1) * m[i] + float(1 - cfg.beta1) * g;
    v[i] = float(cfg.beta2) * v[i] + float(1 - cfg.beta2) * g * g;
    float denom = std::sqrt(v[i]) / float(sqrtBc2) + float(cfg.eps);
    params[i] -= float(stepSize) * m[i] / denom;
  }
}

double dopa::clipGradNorm(float *grads, size_t n, double maxNorm) {
  double sq = 0;
  for (size_t i = 0; i < n; ++i)
    sq += double(grads[i]) * grads[i];
  double norm = std::sqrt(sq);
  double coef = maxNorm / (norm + 1e-6);
  if (coef < 1)
    for (size_t i = 0; i < n; ++i)
      grads[i] = float(grads[i] * coef);
  return norm;
}
