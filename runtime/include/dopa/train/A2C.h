//===- A2C.h - The advantage actor-critic loss of the reference code ------===//
//
// The loss of sr/srbatch.py and maze/batch.py (Backpropamine §2.1), computed from a recorded
// episode, with its gradients with respect to the network's per-step outputs (logits and value),
// which is what the network's backward() takes:
//   loss = ( sum_t bent * sum_b sum_a p_tba^2 / B                      (the "Simpson" penalty)
//          - sum_t sum_b log p_tb(a_tb) * stopgrad(A_tb) / B           (policy gradient)
//          + blossv * sum_t sum_b A_tb^2 / B ) / T                     (value loss)
//   R_t = gamma R_{t+1} + r_t (no bootstrap), A_tb = R_tb - V_t(baseline)
// The reference uses batch element 0's value as every element's baseline (vs[t][0]); the option
// Baseline::PerElement uses each element's own value instead (an unbiased, lower-variance fix).
//
//===----------------------------------------------------------------------===//
#pragma once

#include <vector>

namespace dopa {

struct A2CConfig {
  enum class Baseline { FirstElement, PerElement };
  float gamma = 0.9f;         // --gr
  float entropyWeight = 0.1f; // --bent (weight of the sum-of-squared-probabilities penalty)
  float valueWeight = 0.1f;   // --blossv
  Baseline baseline = Baseline::FirstElement; // the reference's vs[t][0]
};

struct A2CResult {
  double loss = 0;
  double meanReward = 0;      // mean over the batch of the episode's total reward
  std::vector<float> dLogits; // [T, B, A]
  std::vector<float> dValue;  // [T, B, 1]
};

/// `logits` [T, B, A], `values` [T, B] (the value head), `actions` [T, B], `rewards` [T, B].
A2CResult a2cLoss(const A2CConfig &config, int T, int B, int A, const std::vector<float> &logits,
                  const std::vector<float> &values, const std::vector<int> &actions,
                  const std::vector<float> &rewards);

/// Softmax of one row of logits into `probs`.
void softmax(const float *logits, int n, double *probs);

} // namespace dopa
