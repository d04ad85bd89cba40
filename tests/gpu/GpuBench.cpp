//===- GpuBench.cpp - One training-shaped iteration on the GPU ------------===//
//
// For a cue-reward network at the paper's sizes (B=30, H=200, T=120): an episode of T steps with
// the inputs uploaded and the outputs downloaded at every step (as a trainer with the environment
// on the host does), then BPTT with output gradients for every step. Times the generated CUDA
// network and, for reference, the generated C++ on this machine's cores. Prints one line per
// engine: "engine variant median_s min_s" (the CUDA engine's name tagged with the launch policy
// when DOPA_CUDA_BARRIER, DOPA_CUDA_SPLITS or DOPA_CUDA_THREADS sets one, e.g. "cuda/cluster4" or
// "cuda/block/t256", and "/stepwise" when DOPA_CUDA_STEPWISE=1 launches the backward per step
// instead of per segment).
//
//   dopa_gpu_bench [variant] [iterations] [cuda]    # cuda: time only the CUDA engine
//
//===----------------------------------------------------------------------===//
#include "dopa/cuda/CudaExecutor.h"
#include "dopa/examples/ExampleNetworks.h"
#include "dopa/runtime/Random.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

using namespace dopa;

struct Timing {
  double median, min, forward, backward; // seconds; forward/backward: medians of the parts
};

template <class Exec> Timing timeIt(Exec &exec, int iters) {
  const NetworkInfo &info = exec.info();
  const int B = 30, T = 120;
  std::vector<float> init(info.numParams);
  initParams(info, init.data(), 1);
  std::copy(init.begin(), init.end(), exec.params().begin());
  Rng rng(2);
  std::vector<float> x(size_t(B * info.inputs[0].numel()));
  std::vector<std::vector<float>> out(info.outputs.size());
  std::vector<float *> op;
  for (size_t k = 0; k < out.size(); ++k) {
    out[k].resize(size_t(B * info.outputs[k].numel()));
    op.push_back(out[k].data());
  }
  std::vector<std::vector<float>> g(out.size());
  std::vector<const float *> gp;
  for (size_t k = 0; k < out.size(); ++k) {
    g[k].assign(out[k].size(), 0.01f);
    gp.push_back(g[k].data());
  }
  std::vector<const float *const *> grads(size_t(T), gp.data());
  std::vector<double> times, fwd, bwd;
  auto sync = [&]() {
    if constexpr (requires { exec.synchronize(); })
      exec.synchronize();
  };
  for (int it = 0; it < iters + 1; ++it) {
    auto t0 = std::chrono::steady_clock::now();
    exec.beginEpisode(B);
    for (int t = 0; t < T; ++t) {
      for (float &v : x)
        v = float(rng.uniform(-1, 1));
      const float *ip[] = {x.data()};
      exec.step(ip, op.data());
    }
    sync();
    auto t1 = std::chrono::steady_clock::now();
    exec.backward(grads.data(), nullptr);
    sync();
    auto t2 = std::chrono::steady_clock::now();
    if (it > 0) { // the first iteration allocates
      times.push_back(std::chrono::duration<double>(t2 - t0).count());
      fwd.push_back(std::chrono::duration<double>(t1 - t0).count());
      bwd.push_back(std::chrono::duration<double>(t2 - t1).count());
    }
  }
  for (auto *v : {&times, &fwd, &bwd})
    std::sort(v->begin(), v->end());
  return {times[times.size() / 2], times.front(), fwd[fwd.size() / 2], bwd[bwd.size() / 2]};
}

int main(int argc, char **argv) {
  std::string variant = argc > 1 ? argv[1] : "modul";
  int iters = argc > 2 ? std::stoi(argv[2]) : 10;
  bool cudaOnly = argc > 3 && std::string(argv[3]) == "cuda";
  std::string engine = "cuda";
  const char *barrier = std::getenv("DOPA_CUDA_BARRIER"), *splits = std::getenv("DOPA_CUDA_SPLITS");
  if ((barrier && *barrier) || (splits && *splits))
    engine += "/" + std::string(barrier && *barrier ? barrier : "default") +
              (splits && *splits ? splits : "");
  if (const char *v = std::getenv("DOPA_CUDA_THREADS"); v && *v)
    engine += "/t" + std::string(v);
  if (const char *v = std::getenv("DOPA_CUDA_STEPWISE"); v && std::string(v) == "1")
    engine += "/stepwise";
  const ExampleNetwork *ex = findExample("cue_reward", variant);
  const GeneratedSpec *cpuSpec = ex ? &ex->spec() : nullptr;
  if (!cpuSpec || !ex->cuda) {
    std::fprintf(stderr, "no cue_reward %s network with a CUDA backend in this build\n",
                 variant.c_str());
    return 2;
  }
  if (std::string problem = cudaDeviceProblem(); !problem.empty()) {
    std::printf("SKIP: no usable CUDA device (%s)\n", problem.c_str());
    return 77;
  }
  std::fprintf(stderr, "device: %s\n", cudaDeviceDescription().c_str());
  CudaExecutor<float> gpu(ex->cuda());
  Timing g = timeIt(gpu, iters);
  std::printf("%s %s %.5f %.5f\n", engine.c_str(), variant.c_str(), g.median, g.min);
  std::fprintf(stderr, "%s %s: forward %.5f s, backward %.5f s\n", engine.c_str(), variant.c_str(),
               g.forward, g.backward);
  if (cudaOnly)
    return 0;
  GeneratedExecutor<float> cpu(*cpuSpec);
  Timing c = timeIt(cpu, std::max(2, iters / 4));
  std::printf("cpp %s %.5f %.5f\n", variant.c_str(), c.median, c.min);
  std::fprintf(stderr, "cpp %s: forward %.5f s, backward %.5f s\n", variant.c_str(), c.forward,
               c.backward);
  return 0;
}
