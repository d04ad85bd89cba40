//===- GpuTest.cpp - Generated CUDA against generated C++ ------------------===//
//
// For every example network (at the paper's dims), the CUDA kernels' outputs, final states and
// BPTT gradients agree with the C++ kernels' on the same parameters, inputs and output gradients:
// float32 with per-tensor tolerances (the GPU sums in another order, with atomics), float64
// tightly. Also: device-side checkpoint replays give the same gradients as one replay of the whole
// episode, and a backward segment run in one launch the same as a launch per step. Without a CUDA
// device the program prints SKIP and exits with 77, which CTest reports as skipped.
//
//===----------------------------------------------------------------------===//
#define DOCTEST_CONFIG_IMPLEMENT
#include "dopa/cuda/CudaExecutor.h"
#include "dopa/examples/ExampleNetworks.h"
#include "dopa/runtime/Random.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

using namespace dopa;

namespace {

template <class T> struct Run {
  std::vector<std::vector<T>> outputs, states;
  std::vector<T> grads;
};

template <class T, class Exec>
Run<T> run(Exec &exec, const NetworkInfo &info, int steps, int batch, uint64_t seed) {
  Rng rng(seed);
  Run<T> r;
  exec.beginEpisode(batch);
  std::vector<std::vector<T>> in(info.inputs.size()), out(info.outputs.size());
  std::vector<std::vector<std::vector<T>>> dY(static_cast<size_t>(steps));
  std::vector<std::vector<const T *>> gPtr(static_cast<size_t>(steps));
  std::vector<const T *const *> gSteps;
  for (int t = 0; t < steps; ++t) {
    std::vector<const T *> ip;
    std::vector<T *> op;
    for (size_t k = 0; k < info.inputs.size(); ++k) {
      in[k].resize(size_t(batch * info.inputs[k].numel()));
      for (T &x : in[k])
        x = info.inputs[k].isInt ? T(rng.below(7)) : T(rng.uniform(-1, 1));
      ip.push_back(in[k].data());
    }
    for (size_t k = 0; k < info.outputs.size(); ++k) {
      out[k].resize(size_t(batch * info.outputs[k].numel()));
      op.push_back(out[k].data());
    }
    exec.step(ip.data(), op.data());
    for (size_t k = 0; k < out.size(); ++k) {
      r.outputs.push_back(out[k]);
      std::vector<T> g(out[k].size());
      for (T &x : g)
        x = T(rng.normal());
      dY[size_t(t)].push_back(std::move(g));
    }
  }
  for (size_t s = 0; s < info.states.size(); ++s) {
    const T *p = exec.state(int(s));
    r.states.emplace_back(p, p + size_t(batch * info.states[s].numel()));
  }
  for (int t = 0; t < steps; ++t) {
    for (auto &g : dY[size_t(t)])
      gPtr[size_t(t)].push_back(g.data());
    gSteps.push_back(gPtr[size_t(t)].data());
  }
  std::fill(exec.grads().begin(), exec.grads().end(), T(0));
  exec.backward(gSteps.data(), nullptr);
  r.grads = exec.grads();
  return r;
}

template <class T> double relErr(const T *a, const T *b, size_t n) {
  double diff = 0, ref = 1e-6;
  for (size_t i = 0; i < n; ++i) {
    diff = std::max(diff, std::abs(double(a[i]) - double(b[i])));
    ref = std::max(ref, std::abs(double(b[i])));
  }
  return diff / ref;
}

template <class T>
double compare(const NetworkInfo &info, const Run<T> &gpu, const Run<T> &cpu, std::string &worst) {
  double w = 0;
  auto note = [&](double e, const std::string &name) {
    if (e > w || std::isnan(e)) {
      w = std::isnan(e) ? 1e30 : e;
      worst = name;
    }
  };
  for (size_t k = 0; k < cpu.outputs.size(); ++k)
    note(relErr(gpu.outputs[k].data(), cpu.outputs[k].data(), cpu.outputs[k].size()),
         "output " + std::to_string(k));
  for (size_t s = 0; s < cpu.states.size(); ++s)
    note(relErr(gpu.states[s].data(), cpu.states[s].data(), cpu.states[s].size()),
         "state " + info.states[s].name);
  for (size_t p = 0; p < info.params.size(); ++p)
    note(relErr(gpu.grads.data() + info.paramOffsets[p], cpu.grads.data() + info.paramOffsets[p],
                size_t(info.params[p].numel())),
         "grad " + info.params[p].name);
  return w;
}

template <class T> void agree(double tolerance, bool lmShort) {
  for (const ExampleNetwork &e : exampleNetworks()) {
    if (*e.dims) // the benchmark sizes are compiled for the CPU only
      continue;
    INFO(e.task << " " << e.variant);
    REQUIRE(bool(e.cuda));
    bool lm = std::string(e.task) == "lm";
    GeneratedExecutor<T> cpu(e.spec());
    CudaExecutor<T> gpu(e.cuda());
    const NetworkInfo &info = cpu.info();
    std::vector<float> init(info.numParams);
    initParams(info, init.data(), 3);
    for (size_t i = 0; i < init.size(); ++i)
      cpu.params()[i] = gpu.params()[i] = T(init[i]);
    int steps = lm && lmShort ? 3 : 6;
    Run<T> a = run<T>(gpu, info, steps, 3, 7), b = run<T>(cpu, info, steps, 3, 7);
    std::string worst;
    double err = compare(info, a, b, worst);
    INFO("worst: " << worst << " " << err);
    CHECK(err <= tolerance);
  }
}

} // namespace

TEST_CASE("CUDA equals C++ for every example at the paper's dims (float32)") {
  agree<float>(2e-3, true);
}

TEST_CASE("CUDA equals C++ for every example at the paper's dims (float64)") {
  agree<double>(1e-9, true);
}

TEST_CASE("device checkpoint replays give the gradients of one whole-episode replay (float64)") {
  const ExampleNetwork *modul = findExample("cue_reward", "modul");
  REQUIRE(modul != nullptr);
  CudaExecutor<double> gpu(modul->cuda());
  std::vector<float> init(gpu.info().numParams);
  initParams(gpu.info(), init.data(), 5);
  std::copy(init.begin(), init.end(), gpu.params().begin());
  Run<double> whole = run<double>(gpu, gpu.info(), 10, 2, 9);
  for (int k : {1, 3, 4}) {
    INFO("checkpoint every " << k);
    gpu.setCheckpointEvery(k);
    Run<double> r = run<double>(gpu, gpu.info(), 10, 2, 9);
    std::string worst;
    CHECK(compare(gpu.info(), r, whole, worst) <= 1e-12);
  }
}

TEST_CASE("a backward segment in one launch gives the per-step launches' gradients (float64)") {
  for (const ExampleNetwork &e : exampleNetworks()) {
    if (*e.dims)
      continue;
    REQUIRE(bool(e.cuda));
    REQUIRE(bool(e.cuda().segmentDouble)); // else both runs would launch per step
    CudaExecutor<double> gpu(e.cuda());
    std::vector<float> init(gpu.info().numParams);
    initParams(gpu.info(), init.data(), 4);
    std::copy(init.begin(), init.end(), gpu.params().begin());
    int steps = std::string(e.task) == "lm" ? 3 : 7;
    for (int k : {0, 3}) {
      INFO(e.task << " " << e.variant << ", checkpoint every " << k);
      gpu.setCheckpointEvery(k);
      gpu.setSegmentLaunch(false);
      Run<double> stepwise = run<double>(gpu, gpu.info(), steps, 3, 11);
      gpu.setSegmentLaunch(true);
      Run<double> segments = run<double>(gpu, gpu.info(), steps, 3, 11);
      std::string worst;
      double err = compare(gpu.info(), segments, stepwise, worst);
      INFO("worst: " << worst << " " << err);
      CHECK(err <= 1e-12);
    }
  }
}

int main(int argc, char **argv) {
  if (std::string problem = cudaDeviceProblem(); !problem.empty()) {
    std::printf("SKIP: no usable CUDA device on this machine (%s); the gpu tests did not run\n",
                problem.c_str());
    return 77;
  }
  std::printf("device: %s\n", cudaDeviceDescription().c_str());
  doctest::Context context(argc, argv);
  return context.run();
}
