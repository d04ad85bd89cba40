//===- ElementPairs.cpp - One element per pass over the traces, or two ----===//
//
// An experiment kept so that it can be rerun: does a pass over the H x H matrices that serves two
// batch elements at once (the shared w and alpha read once, the thread's d_alpha updated once)
// beat two passes of one element each? The plan (issue 15, item 2) counted on it to cut
// the bytes per element-step. The kernels are written out by hand after the generated nests of
// cue_reward/modul and maze/modul (generated/*/..._modul.cpp: forward_carried_0_pw_et and
// backward_d_pw_et_grad_alpha), in their loop form (`omp simd`, row sums as reductions), so that
// GCC vectorizes the pair as it does the single. Each benchmark runs a thread's 14 elements for a
// window of steps, element after element (single) or pair after pair, and reports the time per
// element-step. Before timing, each checks that the pair computes what two singles compute.
//
//   build/bench/dopa_element_pairs
//
// docs/benchmarks.md "Two more ideas for the CPU iteration" has the numbers: the pair is slower.
//
//===----------------------------------------------------------------------===//
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

using T = float;

T clip(T v) { return v < T(-1) ? T(-1) : (v > T(1) ? T(1) : v); }

/// One element's state and gradients, and its step's vectors.
struct Element {
  std::vector<T> et, pw, dEt, dPw, h, hn, dCarried, carried, dH, dHn, dRow;
  T da;
  Element(int n, int seed)
      : et(size_t(n) * n), pw(size_t(n) * n), dEt(size_t(n) * n), dPw(size_t(n) * n), h(n), hn(n),
        dCarried(n), carried(n), dH(n), dHn(n), dRow(n), da(0.1f + 0.01f * T(seed)) {
    std::srand(unsigned(seed) + 1);
    for (auto *v : {&et, &pw, &dEt, &dPw, &h, &hn, &dCarried})
      for (T &x : *v)
        x = T(std::rand() % 2001 - 1000) * 1e-3f;
  }
};

/// The shared parameters and the thread's d_alpha.
struct Shared {
  std::vector<T> w, alpha, dAlpha;
  T eta = 0.01f;
  explicit Shared(int n) : w(size_t(n) * n), alpha(size_t(n) * n), dAlpha(size_t(n) * n) {
    for (size_t i = 0; i < w.size(); ++i) {
      w[i] = T(int(i % 97) - 48) * 1e-4f;
      alpha[i] = T(int(i % 89) - 44) * 1e-4f;
    }
  }
};

/// forward_carried_0_pw_et for one element: the carried product and the trace update, in place.
template <int H> __attribute__((noinline)) void forwardOne(Shared &s, Element &e) {
  const T *__restrict w = s.w.data(), *__restrict alpha = s.alpha.data();
  T *__restrict pw = e.pw.data(), *__restrict et = e.et.data();
  const T *__restrict h = e.h.data(), *__restrict hn = e.hn.data();
  const T da = e.da, eta = s.eta, keep = 1 - s.eta;
  for (int i = 0; i < H; ++i) {
    T acc = 0;
    const T hi = hn[i];
#pragma omp simd reduction(+ : acc)
    for (int j = 0; j < H; ++j) {
      const T v17 = et[i * H + j];
      const T v22 = clip(pw[i * H + j] + da * v17);
      acc += (w[i * H + j] + alpha[i * H + j] * v22) * hn[j];
      pw[i * H + j] = v22;
      et[i * H + j] = keep * v17 + eta * (hi * h[j]);
    }
    e.carried[size_t(i)] = acc;
  }
}

/// The same for two elements in one pass over w and alpha.
template <int H> __attribute__((noinline)) void forwardTwo(Shared &s, Element &a, Element &b) {
  const T *__restrict w = s.w.data(), *__restrict alpha = s.alpha.data();
  T *__restrict pwA = a.pw.data(), *__restrict etA = a.et.data();
  T *__restrict pwB = b.pw.data(), *__restrict etB = b.et.data();
  const T *__restrict hA = a.h.data(), *__restrict hnA = a.hn.data();
  const T *__restrict hB = b.h.data(), *__restrict hnB = b.hn.data();
  const T daA = a.da, daB = b.da, eta = s.eta, keep = 1 - s.eta;
  for (int i = 0; i < H; ++i) {
    T accA = 0, accB = 0;
    const T hiA = hnA[i], hiB = hnB[i];
#pragma omp simd reduction(+ : accA, accB)
    for (int j = 0; j < H; ++j) {
      const T wij = w[i * H + j], aij = alpha[i * H + j];
      const T eA = etA[i * H + j], eB = etB[i * H + j];
      const T pA = clip(pwA[i * H + j] + daA * eA), pB = clip(pwB[i * H + j] + daB * eB);
      accA += (wij + aij * pA) * hnA[j];
      accB += (wij + aij * pB) * hnB[j];
      pwA[i * H + j] = pA;
      pwB[i * H + j] = pB;
      etA[i * H + j] = keep * eA + eta * (hiA * hA[j]);
      etB[i * H + j] = keep * eB + eta * (hiB * hB[j]);
    }
    a.carried[size_t(i)] = accA;
    b.carried[size_t(i)] = accB;
  }
}

/// backward_d_pw_et_grad_alpha for one element: column sums into dHn (t48) and dH (t68), row sums
/// into dRow (t62), two whole-matrix sums, the state gradients in place, d_alpha accumulated.
template <int H> __attribute__((noinline)) void backwardOne(Shared &s, Element &e, T *sums) {
  const T *__restrict w = s.w.data(), *__restrict alpha = s.alpha.data();
  T *__restrict dAlpha = s.dAlpha.data();
  const T *__restrict et = e.et.data(), *__restrict pw = e.pw.data();
  T *__restrict dEt = e.dEt.data(), *__restrict dPw = e.dPw.data();
  const T *__restrict h = e.h.data(), *__restrict hn = e.hn.data(),
                      *__restrict dc = e.dCarried.data();
  T *__restrict dHn = e.dHn.data(), *__restrict dH = e.dH.data();
  const T da = e.da, keep = 1 - s.eta;
  for (int j = 0; j < H; ++j)
    dHn[j] = dH[j] = 0;
  T s71 = 0, s80 = 0;
  for (int i = 0; i < H; ++i) {
    T a62 = 0, a71 = 0, a80 = 0;
    const T v46 = dc[i], v11 = hn[i];
#pragma omp simd reduction(+ : a62, a71, a80)
    for (int j = 0; j < H; ++j) {
      const T v17 = et[i * H + j];
      const T v19 = pw[i * H + j] + da * v17;
      const T v22 = clip(v19);
      const T v6 = alpha[i * H + j];
      dHn[j] += v46 * (w[i * H + j] + v6 * v22);
      const T v45 = dEt[i * H + j];
      a62 += v45 * h[j];
      dH[j] += v11 * v45;
      a71 += v45 * v17;
      const T v47 = v46 * hn[j];
      const T v78 = (dPw[i * H + j] + v47 * v6) * (T(-1) <= v19 && v19 <= T(1) ? T(1) : T(0));
      a80 += v78 * v17;
      dPw[i * H + j] = v78;
      dEt[i * H + j] = v45 * keep + v78 * da;
      dAlpha[i * H + j] += v47 * v22;
    }
    e.dRow[size_t(i)] = a62;
    s71 += a71;
    s80 += a80;
  }
  sums[0] += s71;
  sums[1] += s80;
}

/// The same for two elements in one pass over w, alpha and d_alpha.
template <int H>
__attribute__((noinline)) void backwardTwo(Shared &s, Element &a, Element &b, T *sums) {
  const T *__restrict w = s.w.data(), *__restrict alpha = s.alpha.data();
  T *__restrict dAlpha = s.dAlpha.data();
  const T *__restrict etA = a.et.data(), *__restrict pwA = a.pw.data();
  const T *__restrict etB = b.et.data(), *__restrict pwB = b.pw.data();
  T *__restrict dEtA = a.dEt.data(), *__restrict dPwA = a.dPw.data();
  T *__restrict dEtB = b.dEt.data(), *__restrict dPwB = b.dPw.data();
  const T *__restrict hA = a.h.data(), *__restrict hnA = a.hn.data(),
                      *__restrict dcA = a.dCarried.data();
  const T *__restrict hB = b.h.data(), *__restrict hnB = b.hn.data(),
                      *__restrict dcB = b.dCarried.data();
  T *__restrict dHnA = a.dHn.data(), *__restrict dHA = a.dH.data();
  T *__restrict dHnB = b.dHn.data(), *__restrict dHB = b.dH.data();
  const T daA = a.da, daB = b.da, keep = 1 - s.eta;
  for (int j = 0; j < H; ++j)
    dHnA[j] = dHA[j] = dHnB[j] = dHB[j] = 0;
  T s71 = 0, s80 = 0;
  for (int i = 0; i < H; ++i) {
    T a62 = 0, a71 = 0, a80 = 0, b62 = 0, b71 = 0, b80 = 0;
    const T v46A = dcA[i], v11A = hnA[i], v46B = dcB[i], v11B = hnB[i];
#pragma omp simd reduction(+ : a62, a71, a80, b62, b71, b80)
    for (int j = 0; j < H; ++j) {
      const T wij = w[i * H + j], v6 = alpha[i * H + j];
      const T eA = etA[i * H + j], eB = etB[i * H + j];
      const T v19A = pwA[i * H + j] + daA * eA, v19B = pwB[i * H + j] + daB * eB;
      const T v22A = clip(v19A), v22B = clip(v19B);
      dHnA[j] += v46A * (wij + v6 * v22A);
      dHnB[j] += v46B * (wij + v6 * v22B);
      const T v45A = dEtA[i * H + j], v45B = dEtB[i * H + j];
      a62 += v45A * hA[j];
      b62 += v45B * hB[j];
      dHA[j] += v11A * v45A;
      dHB[j] += v11B * v45B;
      a71 += v45A * eA;
      b71 += v45B * eB;
      const T v47A = v46A * hnA[j], v47B = v46B * hnB[j];
      const T v78A = (dPwA[i * H + j] + v47A * v6) * (T(-1) <= v19A && v19A <= T(1) ? T(1) : T(0));
      const T v78B = (dPwB[i * H + j] + v47B * v6) * (T(-1) <= v19B && v19B <= T(1) ? T(1) : T(0));
      a80 += v78A * eA;
      b80 += v78B * eB;
      dPwA[i * H + j] = v78A;
      dPwB[i * H + j] = v78B;
      dEtA[i * H + j] = v45A * keep + v78A * daA;
      dEtB[i * H + j] = v45B * keep + v78B * daB;
      dAlpha[i * H + j] += v47A * v22A + v47B * v22B;
    }
    a.dRow[size_t(i)] = a62;
    b.dRow[size_t(i)] = b62;
    s71 += a71 + b71;
    s80 += a80 + b80;
  }
  sums[0] += s71;
  sums[1] += s80;
}

constexpr int kElements = 14; // a thread's share of B = 30 on 2 threads, even

/// The largest difference between two vectors, relative to the largest magnitude in the first
/// (the pair sums in other orders than the single, so single entries may cancel differently).
double maxRelDiff(const std::vector<T> &x, const std::vector<T> &y) {
  double worst = 0, scale = 1e-30;
  for (size_t i = 0; i < x.size(); ++i) {
    worst = std::max(worst, std::fabs(double(x[i]) - y[i]));
    scale = std::max(scale, std::fabs(double(x[i])));
  }
  return worst / scale;
}

/// Whether forwardTwo and backwardTwo compute what forwardOne and backwardOne compute.
template <int H> bool pairAgrees() {
  Shared one(H), two(H);
  Element a1(H, 1), b1(H, 2), a2(H, 1), b2(H, 2);
  T sums1[2] = {0, 0}, sums2[2] = {0, 0};
  forwardOne<H>(one, a1);
  forwardOne<H>(one, b1);
  forwardTwo<H>(two, a2, b2);
  backwardOne<H>(one, a1, sums1);
  backwardOne<H>(one, b1, sums1);
  backwardTwo<H>(two, a2, b2, sums2);
  double worst = 0;
  for (auto member : {&Element::pw, &Element::et, &Element::carried, &Element::dPw, &Element::dEt,
                      &Element::dHn, &Element::dH, &Element::dRow})
    worst =
        std::max({worst, maxRelDiff(a1.*member, a2.*member), maxRelDiff(b1.*member, b2.*member)});
  worst = std::max(worst, maxRelDiff(one.dAlpha, two.dAlpha));
  worst = std::max(worst, maxRelDiff({sums1[0], sums1[1]}, {sums2[0], sums2[1]}));
  return worst < 1e-4;
}

template <int H, bool Two, bool Backward> void elementSteps(benchmark::State &state) {
  if (!pairAgrees<H>()) {
    state.SkipWithError("the pair kernels do not compute what the single ones compute");
    return;
  }
  const int steps = int(state.range(0));
  Shared shared(H);
  std::vector<Element> elements;
  for (int e = 0; e < kElements; ++e)
    elements.emplace_back(H, e);
  T sums[2] = {0, 0};
  for (auto _ : state) {
    for (int e = 0; e < kElements; e += Two ? 2 : 1)
      for (int t = 0; t < steps; ++t) {
        if constexpr (Two) {
          if constexpr (Backward)
            backwardTwo<H>(shared, elements[size_t(e)], elements[size_t(e) + 1], sums);
          else
            forwardTwo<H>(shared, elements[size_t(e)], elements[size_t(e) + 1]);
        } else {
          if constexpr (Backward)
            backwardOne<H>(shared, elements[size_t(e)], sums);
          else
            forwardOne<H>(shared, elements[size_t(e)]);
        }
      }
    benchmark::ClobberMemory();
  }
  benchmark::DoNotOptimize(sums);
  state.counters["element_steps"] =
      benchmark::Counter(double(kElements) * steps, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["us_per_element_step"] = benchmark::Counter(
      double(kElements) * steps * 1e-6,
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

} // namespace

BENCHMARK(elementSteps<100, false, false>)->Name("forward/one/H=100")->Arg(20);
BENCHMARK(elementSteps<100, true, false>)->Name("forward/two/H=100")->Arg(20);
BENCHMARK(elementSteps<200, false, false>)->Name("forward/one/H=200")->Arg(12);
BENCHMARK(elementSteps<200, true, false>)->Name("forward/two/H=200")->Arg(12);
BENCHMARK(elementSteps<100, false, true>)->Name("backward/one/H=100")->Arg(20);
BENCHMARK(elementSteps<100, true, true>)->Name("backward/two/H=100")->Arg(20);
BENCHMARK(elementSteps<200, false, true>)->Name("backward/one/H=200")->Arg(12);
BENCHMARK(elementSteps<200, true, true>)->Name("backward/two/H=200")->Arg(12);

BENCHMARK_MAIN();
