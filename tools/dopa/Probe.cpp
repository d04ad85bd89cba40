//===- Probe.cpp - Machine ceilings: memory bandwidth and FMA throughput -----===//
//
// `dopa bench --probe` measures what the machine can do at most, with the threads the benchmark
// uses, so that every benchmark result can also be read as a fraction of a ceiling:
//   - a STREAM-style triad a[i] = b[i] + s * c[i] over arrays far larger than the caches, counted
//     as STREAM does (24 bytes per element of float64: two reads, one write);
//   - float32 fused multiply-adds on independent register accumulators (no memory traffic),
//     counted as 2 FLOPs each.
// This file is compiled with the generated networks' architecture flags (-O3 -march=native), so
// the probe uses the same vector instructions the generated code may use. Best of several runs.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <memory>

using namespace dopa;

namespace {

double seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

/// Triad bandwidth in bytes per second, best of `repeats`.
double triadBandwidth(size_t n, int repeats) {
  std::unique_ptr<double[]> a(new double[n]), b(new double[n]), c(new double[n]);
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; ++i) { // first touch by the thread that uses the page
    a[i] = 0;
    b[i] = 1;
    c[i] = 2;
  }
  double best = 1e30;
  const double s = 3;
  for (int r = 0; r < repeats; ++r) {
    double t0 = seconds();
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; ++i)
      a[i] = b[i] + s * c[i];
    best = std::min(best, seconds() - t0);
  }
  if (a[n / 2] != 7) // the loop must not be optimized away, and must be right
    return 0;
  return 24.0 * double(n) / best;
}

using Vec = float __attribute__((vector_size(64)));

/// float32 FMA throughput in FLOP per second (all threads), best of `repeats`.
double fmaThroughput(int64_t iterations, int repeats) {
  double best = 1e30;
  float sink = 0;
  for (int r = 0; r < repeats; ++r) {
    double t0 = seconds();
#pragma omp parallel reduction(+ : sink)
    {
      // 12 independent accumulators hide the FMA latency (4-5 cycles, 2 ports).
      // x comes through a volatile, so the compiler cannot fold the loop (no -ffast-math).
      volatile float factor = 0.999999f;
      Vec acc[12];
      Vec x, y;
      for (int k = 0; k < 16; ++k) {
        x[k] = factor;
        y[k] = 1e-7f * float(omp_get_thread_num() + 1);
      }
      for (Vec &v : acc)
        v = y;
      for (int64_t i = 0; i < iterations; ++i) {
        for (Vec &v : acc)
          v = v * x + y;
      }
      float s = 0;
      for (Vec &v : acc)
        for (int k = 0; k < 16; ++k)
          s += v[k];
      sink += s;
    }
    best = std::min(best, seconds() - t0);
  }
  if (!(sink > 0))
    return 0;
  int threads = omp_get_max_threads();
  return 2.0 * 12 * 16 * double(iterations) * threads / best;
}

} // namespace

tool::MachineCeiling tool::probeMachine() {
  MachineCeiling c;
  c.threads = omp_get_max_threads();
  c.triadBytesPerSecond = triadBandwidth(size_t(1) << 24, 8); // 3 x 128 MiB
  c.fmaFlopsPerSecond = fmaThroughput(int64_t(20) << 20, 5);
  return c;
}
