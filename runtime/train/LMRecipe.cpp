//===- LMRecipe.cpp - awd-lstm-lm's training regularizers and schedule ----===//
//
// Variable BPTT windows, AR/TAR with their gradients, and the iterate average of ASGD, written
// from awd-lstm-lm's main.py (the paper's reference code): see LMRecipe.h.
//
//===----------------------------------------------------------------------===//
#include "dopa/train/LMRecipe.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

using namespace dopa;

std::vector<Window> dopa::variableBpttWindows(int64_t rows, int bptt, Rng &rng) {
  if (bptt < 1)
    throw std::invalid_argument("variableBpttWindows: bptt must be at least 1 (got " +
                                std::to_string(bptt) + ")");
  std::vector<Window> windows;
  for (int64_t i = 0; i < rows - 2;) {
    double base = rng.uniform() < 0.95 ? double(bptt) : double(bptt) / 2;
    // int() truncates toward zero, as Python's does.
    int64_t seq = std::max<int64_t>(5, int64_t(base + 5 * rng.normal()));
    seq = std::min<int64_t>(seq, bptt + 10);
    windows.push_back({i, int(std::min<int64_t>(seq, rows - 1 - i))});
    i += seq;
  }
  return windows;
}

double dopa::activationPenalties(const std::vector<const float *> &a,
                                 const std::vector<const float *> &h, int count, int totalStreams,
                                 int64_t width, double ar, double tar, double scale,
                                 const std::vector<float *> &dA, const std::vector<float *> &dH) {
  const size_t steps = std::max(a.size(), h.size());
  const int64_t n = int64_t(count) * width; // values per step on this rank
  double penalty = 0;
  if (ar > 0 && !a.empty()) {
    double coef = ar * scale / (double(steps) * double(totalStreams) * double(width));
    for (size_t t = 0; t < a.size(); ++t)
      for (int64_t i = 0; i < n; ++i) {
        double v = a[t][i];
        penalty += coef * v * v;
        dA[t][i] += float(2 * coef * v);
      }
  }
  if (tar > 0 && h.size() > 1) {
    double coef = tar * scale / (double(h.size() - 1) * double(totalStreams) * double(width));
    for (size_t t = 1; t < h.size(); ++t)
      for (int64_t i = 0; i < n; ++i) {
        double d = double(h[t][i]) - double(h[t - 1][i]);
        penalty += coef * d * d;
        dH[t][i] += float(2 * coef * d);
        dH[t - 1][i] -= float(2 * coef * d);
      }
  }
  return penalty;
}

void IterateAverage::start(size_t numParams) {
  started = true;
  steps = 0;
  meanOf = -1;
  mean.assign(numParams, 0.f);
  sum.assign(numParams, 0.0);
}

void IterateAverage::add(const float *params) {
  ++steps;
  for (size_t i = 0; i < sum.size(); ++i)
    sum[i] += params[i];
}

const std::vector<float> &IterateAverage::values() {
  if (meanOf != steps) {
    for (size_t i = 0; i < sum.size(); ++i)
      mean[i] = float(sum[i] / double(std::max<int64_t>(steps, 1)));
    meanOf = steps;
  }
  return mean;
}

void IterateAverage::restore(std::vector<double> sums, int64_t count) {
  started = true;
  steps = count;
  sum = std::move(sums);
  mean.assign(sum.size(), 0.f);
  meanOf = -1;
}
