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
#include "dopa/runtime/Workload.h"

#include <benchmark/benchmark.h>
#include <omp.h>

#include <string>

using namespace dopa;

namespace {

int64_t hiddenSize(const NetworkInfo &info) {
  int w = info.findParam("w");
  return w >= 0 ? info.params[size_t(w)].shape[0] : 0;
}

void forwardStep(benchmark::State &state, const GeneratedSpec *spec) {
  GeneratedNetwork net(*spec);
  initParams(net.info(), net.params(), 1);
  Workload data(net.info(), spec->inputRows, 1, 64, 5);
  net.beginEpisode(1);
  int t = 0;
  for (auto _ : state) {
    net.step(data.inputs[size_t(t)], data.outputs[size_t(t)]);
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
  Workload data(net.info(), spec->inputRows, 1, steps, 5);
  for (auto _ : state) {
    state.PauseTiming();
    net.beginEpisode(1);
    net.forward(steps, data.inputs.data(), data.outputs.data());
    state.ResumeTiming();
    net.backward(data.outputGrads.data());
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
