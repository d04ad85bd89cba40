//===- CodegenRun.h - Episodes, parameters and runs for the codegen tests ---===//
//
// What the codegen tests share: a random episode (inputs and output gradients), parameters from a
// network's initializers (scaled, plasticity coefficients O(1)), one run of an executor-like object
// (forward, final states, backward of sum <dY, Y>), and the relative difference of two runs.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "TestUtil.h"

#include "dopa/runtime/Network.h"
#include "dopa/runtime/Random.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace dopa::test {

/// An episode's data: inputs[k][t * B * numel], output gradients alike.
template <class T> struct Episode {
  int steps = 0, batch = 0;
  std::vector<std::vector<T>> inputs, dY;
};

template <class T>
Episode<T> makeEpisode(const NetworkInfo &info, int steps, int batch, uint64_t seed) {
  Rng rng(seed);
  Episode<T> ep;
  ep.steps = steps;
  ep.batch = batch;
  for (const TensorInfo &in : info.inputs) {
    std::vector<T> v(size_t(steps) * size_t(batch) * size_t(in.numel()));
    for (T &x : v)
      x = in.isInt ? T(rng.below(7)) : T(rng.uniform(-1, 1));
    if (in.isMask()) // a dropout mask: 0 or 1 / (1 - p), the same at every step
      for (size_t i = 0; i < v.size(); ++i)
        v[i] = i < size_t(batch) * size_t(in.numel())
                   ? T(rng.uniform() < in.dropout ? 0.0 : 1.0 / (1.0 - in.dropout))
                   : v[i % (size_t(batch) * size_t(in.numel()))];
    ep.inputs.push_back(std::move(v));
  }
  for (const TensorInfo &out : info.outputs) {
    std::vector<T> v(size_t(steps) * size_t(batch) * size_t(out.numel()));
    for (T &x : v)
      x = T(rng.normal());
    ep.dY.push_back(std::move(v));
  }
  return ep;
}

/// Parameters from the initializers, scaled, with O(1) plasticity coefficients (see
/// GradcheckTest.cpp: the paper's start near 0 and would hide the plastic paths).
template <class T>
std::vector<T> makeParams(const NetworkInfo &info, uint64_t seed, double scale, bool perturb) {
  std::vector<float> init(info.numParams);
  initParams(info, init.data(), seed);
  std::vector<T> p(info.numParams);
  Rng rng(seed + 1);
  for (size_t i = 0; i < init.size(); ++i)
    p[i] = T(double(init[i]) * scale);
  for (size_t k = 0; k < info.params.size(); ++k) // shared dropout masks: 0 or 1 / (1 - p)
    if (info.params[k].isMask())
      for (int64_t e = 0; e < info.params[k].numel(); ++e)
        p[info.paramOffsets[k] + size_t(e)] =
            T(rng.uniform() < info.params[k].dropout ? 0.0 : 1.0 / (1.0 - info.params[k].dropout));
  if (perturb)
    for (size_t k = 0; k < info.params.size(); ++k) {
      std::string leaf = info.params[k].name.substr(info.params[k].name.rfind('.') + 1);
      for (int64_t e = 0; e < info.params[k].numel(); ++e) {
        T &v = p[info.paramOffsets[k] + size_t(e)];
        if (leaf == "alpha")
          v = T(rng.uniform(-1, 1));
        else if (leaf == "eta" || leaf == "etaet")
          v = T(rng.uniform(0.3, 0.6));
      }
    }
  return p;
}

/// What one run produces.
template <class T> struct RunResult {
  std::vector<std::vector<T>> outputs; // per output: all steps
  std::vector<std::vector<T>> states;  // final states
  std::vector<T> grads;
  std::vector<std::vector<T>> inputGrads; // per input: all steps (when asked for)
  double loss = 0;
};

/// The final states of the B elements, per state, into r.states.
template <class T, class Exec>
void collectStates(const Exec &exec, const NetworkInfo &info, int B, RunResult<T> &r) {
  for (size_t s = 0; s < info.states.size(); ++s) {
    const T *p = exec.state(int(s));
    r.states.emplace_back(p, p + size_t(B) * size_t(info.states[s].numel()));
  }
}

/// The episode's output gradients as backward() takes them: one pointer per step and output
/// (`storage` holds the per-step arrays; the returned pointers point into it).
template <class T>
std::vector<const T *const *> outputGradPointers(const NetworkInfo &info, const Episode<T> &ep,
                                                 std::vector<std::vector<const T *>> &storage) {
  storage.assign(size_t(ep.steps), std::vector<const T *>(ep.dY.size()));
  std::vector<const T *const *> ptr;
  for (int t = 0; t < ep.steps; ++t) {
    for (size_t k = 0; k < ep.dY.size(); ++k)
      storage[size_t(t)][k] =
          ep.dY[k].data() + size_t(t) * size_t(ep.batch) * size_t(info.outputs[k].numel());
    ptr.push_back(storage[size_t(t)].data());
  }
  return ptr;
}

/// Run an episode (forward, then backward of sum <dY, Y>) on an executor-like object.
template <class T, class Exec>
RunResult<T> run(Exec &exec, const NetworkInfo &info, const Episode<T> &ep, bool backward = true,
                 bool inputGrads = false) {
  RunResult<T> r;
  int B = ep.batch;
  exec.beginEpisode(B);
  std::vector<std::vector<T>> outBuf;
  for (const TensorInfo &o : info.outputs) {
    outBuf.emplace_back(size_t(B) * size_t(o.numel()));
    r.outputs.emplace_back();
  }
  std::vector<T *> out;
  for (auto &b : outBuf)
    out.push_back(b.data());
  std::vector<const T *> in(info.inputs.size());
  for (int t = 0; t < ep.steps; ++t) {
    for (size_t k = 0; k < in.size(); ++k)
      in[k] = ep.inputs[k].data() + size_t(t) * size_t(B) * size_t(info.inputs[k].numel());
    exec.step(in.data(), out.data());
    for (size_t k = 0; k < out.size(); ++k) {
      r.outputs[k].insert(r.outputs[k].end(), outBuf[k].begin(), outBuf[k].end());
      const T *g = ep.dY[k].data() + size_t(t) * outBuf[k].size();
      for (size_t e = 0; e < outBuf[k].size(); ++e)
        r.loss += double(g[e]) * double(outBuf[k][e]);
    }
  }
  collectStates(exec, info, B, r);
  if (!backward)
    return r;
  std::vector<std::vector<const T *>> gSteps;
  std::vector<const T *const *> gPtr = outputGradPointers(info, ep, gSteps);
  std::fill(exec.grads().begin(), exec.grads().end(), T(0));
  std::vector<std::vector<T *>> dxSteps(size_t(ep.steps), std::vector<T *>(info.inputs.size()));
  std::vector<T *const *> dxPtr;
  if (inputGrads) {
    for (const TensorInfo &in : info.inputs)
      r.inputGrads.emplace_back(size_t(ep.steps) * size_t(B) * size_t(in.numel()), T(-7));
    for (int t = 0; t < ep.steps; ++t) {
      for (size_t k = 0; k < info.inputs.size(); ++k)
        dxSteps[size_t(t)][k] =
            r.inputGrads[k].data() + size_t(t) * size_t(B) * size_t(info.inputs[k].numel());
      dxPtr.push_back(dxSteps[size_t(t)].data());
    }
  }
  exec.backward(gPtr.data(), nullptr, inputGrads ? dxPtr.data() : nullptr);
  r.grads = exec.grads();
  return r;
}

/// max |a - b| / max(max |b|, floor) over a range.
template <class T> double relErr(const T *a, const T *b, size_t n, double floor = 1e-6) {
  double diff = 0, ref = floor;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    ref = std::max(ref, std::abs(double(b[i])));
  }
  return diff / ref;
}

/// Compare two runs tensor by tensor; returns the worst relative error and names it.
template <class T>
double compareRuns(const NetworkInfo &info, const RunResult<T> &gen, const RunResult<T> &ref,
                   std::string &worstName) {
  double worst = 0;
  auto note = [&](double e, const std::string &name) {
    if (e > worst) {
      worst = e;
      worstName = name;
    }
  };
  for (size_t k = 0; k < info.outputs.size(); ++k)
    note(relErr(gen.outputs[k].data(), ref.outputs[k].data(), ref.outputs[k].size()),
         "output " + info.outputs[k].name);
  for (size_t s = 0; s < info.states.size(); ++s)
    note(relErr(gen.states[s].data(), ref.states[s].data(), ref.states[s].size()),
         "state " + info.states[s].name);
  for (size_t p = 0; p < info.params.size(); ++p)
    note(relErr(gen.grads.data() + info.paramOffsets[p], ref.grads.data() + info.paramOffsets[p],
                size_t(info.params[p].numel())),
         "grad " + info.params[p].name);
  return worst;
}

} // namespace dopa::test
