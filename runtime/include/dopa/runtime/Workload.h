//===- Workload.h - Fixed random inputs and output gradients for timing ----===//
//
// A benchmark's episode: for `steps` steps of `batch` elements, random inputs (uniform in [-1, 1);
// token ids uniform over the rows of the table they index), random output gradients scaled by
// 1/(batch*steps) as a trainer's averaged loss would give, and room for the outputs, with the
// pointer tables Network::forward and Network::backward take. `dopa bench` and the
// microbenchmarks (bench/micro) time networks on it.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Network.h"
#include "dopa/runtime/Random.h"

#include <cstdint>
#include <vector>

namespace dopa {

struct Workload {
  /// `inputRows[k]`: rows of the table integer input k indexes (null or 0: a single row).
  Workload(const NetworkInfo &info, const int64_t *inputRows, int batch, int steps, uint64_t seed) {
    Rng rng(seed);
    float scale = 1.0f / float(batch * steps);
    data.resize(size_t(steps));
    for (int t = 0; t < steps; ++t) {
      Step &s = data[size_t(t)];
      for (size_t k = 0; k < info.inputs.size(); ++k) {
        std::vector<float> v(size_t(batch * info.inputs[k].numel()));
        int64_t rows = inputRows && inputRows[k] > 0 ? inputRows[k] : 1;
        for (float &x : v)
          x = info.inputs[k].isInt ? float(rng.below(uint64_t(rows)))
                                   : float(rng.uniform() * 2 - 1);
        s.in.push_back(std::move(v));
      }
      for (const TensorInfo &o : info.outputs) {
        std::vector<float> v(size_t(batch * o.numel()));
        for (float &x : v)
          x = float(rng.uniform() * 2 - 1) * scale;
        s.dy.push_back(std::move(v));
        s.out.emplace_back(size_t(batch * o.numel()));
      }
      // The buffers above no longer move: take their addresses.
      for (auto &v : s.in)
        s.inPtr.push_back(v.data());
      for (auto &v : s.dy)
        s.dyPtr.push_back(v.data());
      for (auto &v : s.out)
        s.outPtr.push_back(v.data());
    }
    for (Step &s : data) { // the vectors of `data` no longer move either
      inputs.push_back(s.inPtr.data());
      outputs.push_back(s.outPtr.data());
      outputGrads.push_back(s.dyPtr.data());
    }
  }

  Workload(const Workload &) = delete; // the pointer tables point into this object
  Workload &operator=(const Workload &) = delete;

  /// Per step t: inputs[t][k], outputs[t][k], outputGrads[t][k] (batch * numel floats each).
  std::vector<const float *const *> inputs;
  std::vector<float *const *> outputs;
  std::vector<const float *const *> outputGrads;

private:
  struct Step {
    std::vector<std::vector<float>> in, out, dy;
    std::vector<const float *> inPtr, dyPtr;
    std::vector<float *> outPtr;
  };
  std::vector<Step> data;
};

} // namespace dopa
