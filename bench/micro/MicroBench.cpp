//===- MicroBench.cpp - Google Benchmark microbenchmarks of the fused kernels -===//
//
// The generated step functions alone, one batch element on one thread (no OpenMP over the batch,
// no task, no optimizer): for every cue-reward example compiled into this build (the paper's H=200
// and the DOPA_EXAMPLE_SIZES), the forward step and the backward pass of a short episode. Counters:
// steps per second and synapses per second (H*H entries times steps), which should stay flat
// across H while the traces fit the caches and fall when they stream from memory.
//
//   build/bench/micro/dopa_microbench --benchmark_filter=modul
//
//===----------------------------------------------------------------------===//
#include "dopa/examples/ExampleNetworks.h"
#include "dopa/runtime/Random.h"

#include <benchmark/benchmark.h>
#include <omp.h>

#include <string>
#include <vector>

using namespace dopa;

namespace {

/// Random inputs for `steps` steps of one element, and room for the outputs.
struct OneElement {
  std::vector<std::vector<float>> in, out, dy;
  std::vector<std::vector<const float *>> inPtr, dyPtr;
  std::vector<std::vector<float *>> outPtr;
  std::vector<const float *const *> dyRows;

  OneElement(const GeneratedSpec &spec, const NetworkInfo &info, int steps) {
    Rng rng(5);
    for (int t = 0; t < steps; ++t) {
      for (size_t k = 0; k < info.inputs.size(); ++k) {
        std::vector<float> v(size_t(info.inputs[k].numel()));
        for (float &x : v)
          x = info.inputs[k].isInt ? float(rng.below(uint64_t(spec.inputRows[k])))
                                   : float(rng.uniform(-1, 1));
        in.push_back(std::move(v));
      }
      for (const TensorInfo &o : info.outputs) {
        out.emplace_back(size_t(o.numel()));
        std::vector<float> v(size_t(o.numel()));
        for (float &x : v)
          x = float(rng.uniform(-1, 1)) * 1e-3f;
        dy.push_back(std::move(v));
      }
    }
    size_t ni = info.inputs.size(), no = info.outputs.size();
    for (int t = 0; t < steps; ++t) {
      std::vector<const float *> ip, dp;
      std::vector<float *> op;
      for (size_t k = 0; k < ni; ++k)
        ip.push_back(in[size_t(t) * ni + k].data());
      for (size_t k = 0; k < no; ++k) {
        op.push_back(out[size_t(t) * no + k].data());
        dp.push_back(dy[size_t(t) * no + k].data());
      }
      inPtr.push_back(std::move(ip));
      outPtr.push_back(std::move(op));
      dyPtr.push_back(std::move(dp));
    }
    for (auto &d : dyPtr)
      dyRows.push_back(d.data());
  }
};

int64_t hiddenSize(const NetworkInfo &info) {
  int w = info.findParam("w");
  return w >= 0 ? info.params[size_t(w)].shape[0] : 0;
}

void forwardStep(benchmark::State &state, const GeneratedSpec *spec) {
  GeneratedNetwork net(*spec);
  initParams(net.info(), net.params(), 1);
  OneElement data(*spec, net.info(), 64);
  net.beginEpisode(1);
  int t = 0;
  for (auto _ : state) {
    net.step(data.inPtr[size_t(t)].data(), data.outPtr[size_t(t)].data());
    if (++t == 64) { // forget the record, keep the state: the next 64 steps continue the episode
      state.PauseTiming();
      net.truncate();
      t = 0;
      state.ResumeTiming();
    }
  }
  int64_t h = hiddenSize(net.info());
  state.counters["steps/s"] =
      benchmark::Counter(double(state.iterations()), benchmark::Counter::kIsRate);
  state.counters["synapses/s"] =
      benchmark::Counter(double(h * h), benchmark::Counter::kIsIterationInvariantRate);
}

void backwardEpisode(benchmark::State &state, const GeneratedSpec *spec) {
  constexpr int steps = 20;
  GeneratedNetwork net(*spec);
  initParams(net.info(), net.params(), 1);
  OneElement data(*spec, net.info(), steps);
  for (auto _ : state) {
    state.PauseTiming();
    net.beginEpisode(1);
    for (int t = 0; t < steps; ++t)
      net.step(data.inPtr[size_t(t)].data(), data.outPtr[size_t(t)].data());
    state.ResumeTiming();
    net.backward(data.dyRows.data());
  }
  int64_t h = hiddenSize(net.info());
  state.counters["steps/s"] =
      benchmark::Counter(double(state.iterations()) * steps, benchmark::Counter::kIsRate);
  state.counters["synapses/s"] = benchmark::Counter(double(steps) * double(h * h),
                                                    benchmark::Counter::kIsIterationInvariantRate);
}

} // namespace

int main(int argc, char **argv) {
  omp_set_num_threads(1);
  for (const ExampleNetwork &e : exampleNetworks()) {
    if (std::string(e.task) != "cue_reward")
      continue;
    const GeneratedSpec *spec = &e.spec();
    std::string name = std::string(e.variant) + "/" + (*e.dims ? e.dims : "H=200");
    benchmark::RegisterBenchmark(("forward_step/" + name).c_str(), forwardStep, spec)
        ->Unit(benchmark::kMicrosecond);
    benchmark::RegisterBenchmark(("backward_20_steps/" + name).c_str(), backwardEpisode, spec)
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv))
    return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
