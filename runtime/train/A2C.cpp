//===- A2C.cpp - The advantage actor-critic loss and its output gradients ===//
//
// Implements a2cLoss (see A2C.h) in double precision and the gradients with respect to the logits
// (through the softmax) and the value outputs.
//
//===----------------------------------------------------------------------===//
#include "dopa/train/A2C.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

using namespace dopa;

void dopa::softmax(const float *logits, int n, double *probs) {
  double mx = logits[0];
  for (int i = 1; i < n; ++i)
    mx = std::max(mx, double(logits[i]));
  double sum = 0;
  for (int i = 0; i < n; ++i)
    sum += probs[i] = std::exp(double(logits[i]) - mx);
  for (int i = 0; i < n; ++i)
    probs[i] /= sum;
}

A2CResult dopa::a2cLoss(const A2CConfig &cfg, int T, int B, int A, const std::vector<float> &logits,
                        const std::vector<float> &values, const std::vector<int> &actions,
                        const std::vector<float> &rewards) {
  if (logits.size() != size_t(T) * B * A || values.size() != size_t(T) * B ||
      actions.size() != size_t(T) * B || rewards.size() != size_t(T) * B)
    throw std::invalid_argument("a2cLoss: buffer sizes do not match T, B, A");
  A2CResult r;
  r.dLogits.assign(size_t(T) * B * A, 0.f);
  r.dValue.assign(size_t(T) * B, 0.f);
  double invT = 1.0 / T, invB = 1.0 / B;
  std::vector<double> ret(static_cast<size_t>(B), 0.0);
  std::vector<double> probs(static_cast<size_t>(A));
  double loss = 0, totalReward = 0;
  for (int t = T - 1; t >= 0; --t) {
    for (int b = 0; b < B; ++b) {
      size_t tb = size_t(t) * B + size_t(b);
      ret[size_t(b)] = cfg.gamma * ret[size_t(b)] + rewards[tb];
      totalReward += rewards[tb];
      int baselineIndex = cfg.baseline == A2CConfig::Baseline::FirstElement ? 0 : b;
      size_t tv = size_t(t) * B + size_t(baselineIndex);
      double adv = ret[size_t(b)] - values[tv];
      // Value loss: blossv * A^2 / B; its gradient goes to the baseline's value output.
      loss += cfg.valueWeight * adv * adv * invB;
      r.dValue[tv] += float(cfg.valueWeight * -2.0 * adv * invB * invT);
      // Policy gradient and the sum-of-squares penalty, through the softmax.
      const float *z = logits.data() + tb * A;
      softmax(z, A, probs.data());
      int a = actions[tb];
      double s2 = 0;
      for (int k = 0; k < A; ++k)
        s2 += probs[size_t(k)] * probs[size_t(k)];
      loss += -std::log(probs[size_t(a)]) * adv * invB + cfg.entropyWeight * s2 * invB;
      float *dz = r.dLogits.data() + tb * A;
      for (int k = 0; k < A; ++k) {
        double p = probs[size_t(k)];
        double policy = -adv * invB * ((k == a ? 1.0 : 0.0) - p);
        double penalty = cfg.entropyWeight * invB * 2.0 * p * (p - s2);
        dz[k] = float((policy + penalty) * invT);
      }
    }
  }
  r.loss = loss * invT;
  r.meanReward = totalReward * invB;
  return r;
}
