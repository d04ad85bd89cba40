//===- Generated.cpp - Running generated step functions over a batch ------===//
//
// GeneratedExecutor: the batch loop (OpenMP over batch elements), the input tape, the outer
// checkpoints taken during the forward, and the backward's per-element segment replays (see
// Generated.h). Per-thread buffers are allocated once and reused; every block is 64-byte aligned
// so that generated loops see the same alignment in the forward and in its replays.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/Generated.h"

// Deferred gradients are summed with Eigen's GEMM inside an OpenMP region: one thread each.
#define EIGEN_DONT_PARALLELIZE
#include <Eigen/Core>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace dopa;

template <class T>
void dopa::checkIndexInputs(const NetworkInfo &info, const int64_t *inputRows,
                            const T *const *inputs, int batch) {
  for (size_t k = 0; k < info.inputs.size(); ++k) {
    int64_t rows = inputRows[k];
    if (!info.inputs[k].isInt || rows == 0)
      continue;
    for (int b = 0; b < batch; ++b) {
      T x = inputs[k][b];
      if (!(x >= 0) || x >= T(rows) || x != std::floor(x))
        throw std::runtime_error("input '" + info.inputs[k].name + "' of batch element " +
                                 std::to_string(b) + " is " + std::to_string(double(x)) +
                                 ", not an integer index in [0, " + std::to_string(rows) + ")");
    }
  }
}
template void dopa::checkIndexInputs<float>(const NetworkInfo &, const int64_t *,
                                            const float *const *, int);
template void dopa::checkIndexInputs<double>(const NetworkInfo &, const int64_t *,
                                             const double *const *, int);

static int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
/// Allocations are whole 64-byte lines (at least one).
static int64_t round64(int64_t bytes) { return std::max<int64_t>(ceilDiv(bytes, 64) * 64, 64); }

static int maxThreads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

static int threadId() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

/// Bytes of one plan (the model the executor's allocations follow).
static CheckpointPlan evaluate(const PlanInputs &in, int outer, int inner) {
  CheckpointPlan p;
  p.outer = outer;
  p.inner = inner;
  int64_t T = std::max(in.steps, 1);
  int64_t L = std::min<int64_t>(outer, T); // longest segment
  p.replays = L > inner ? 2 : 1;
  p.checkpointBytes = ceilDiv(T, outer) * in.batch * in.stateBytes;
  int64_t replay = std::min<int64_t>(inner, L);
  // Per thread: the replayed states and saved values, the inner checkpoints, the state gradients
  // (next, previous) and a spare state, scratch, one step's saved values and outputs, and the
  // parameter-gradient accumulator.
  p.perThreadBytes = replay * in.stateBytes + round64(replay * in.savedBytes) +
                     (p.replays == 2 ? ceilDiv(L, inner) * in.stateBytes : 0) + 3 * in.stateBytes +
                     round64(in.scratchBytes) + round64(in.savedBytes) + round64(in.outputBytes) +
                     round64(in.paramBytes) + round64(T * in.recordBytes);
  // Batched readouts: their inputs for every step (the forward), their gradients (the backward).
  // (One block per readout in fact; the plan counts one for all.)
  p.totalBytes = 2 * in.batch * in.stateBytes + p.checkpointBytes +
                 T * round64(in.batch * in.inputBytes) + in.threads * p.perThreadBytes +
                 (in.readoutBytes ? 2 * round64(T * in.batch * in.readoutBytes) : 0);
  return p;
}

PlanInputs dopa::planInputs(const BlockLayout &layout, int64_t elementBytes, int batch, int steps,
                            int threads, long long memoryBudget, int checkpointEvery) {
  PlanInputs in;
  in.stateBytes = layout.stateNumel * elementBytes;
  in.savedBytes = layout.savedNumel * elementBytes;
  in.scratchBytes = layout.scratchNumel * elementBytes;
  in.inputBytes = layout.inputNumel * elementBytes;
  in.outputBytes = layout.outputNumel * elementBytes;
  in.recordBytes = layout.recordNumel * elementBytes;
  in.paramBytes = layout.paramNumel * elementBytes;
  in.readoutBytes = layout.readoutNumel * elementBytes;
  in.batch = batch;
  in.steps = steps;
  in.threads = threads;
  in.memoryBudget = memoryBudget;
  in.checkpointEvery = checkpointEvery;
  return in;
}

BlockLayout dopa::layoutOf(const GeneratedSpec &spec, const NetworkInfo &info) {
  BlockLayout layout{.stateNumel = spec.stateNumel,
                     .savedNumel = spec.savedNumel,
                     .scratchNumel = spec.scratchNumel,
                     .recordNumel = spec.recordNumel,
                     .paramNumel = int64_t(info.numParams)};
  for (const TensorInfo &in : info.inputs)
    layout.inputNumel += in.numel();
  for (const TensorInfo &o : info.outputs)
    layout.outputNumel += o.numel();
  // The kernels write a batched readout's input (cols) where its output (rows) would go.
  for (int r = 0; r < spec.numReadouts; ++r) {
    layout.outputNumel += spec.readouts[r].cols - spec.readouts[r].rows;
    layout.readoutNumel += spec.readouts[r].cols;
  }
  return layout;
}

CheckpointPlan dopa::planCheckpoints(const PlanInputs &in) {
  int T = std::max(in.steps, 1);
  if (in.checkpointEvery > 0)
    return evaluate(in, in.checkpointEvery, in.checkpointEvery);
  long long budget = in.memoryBudget > 0 ? in.memoryBudget : kDefaultMemoryBudget;
  // Single replay: outer = inner = k; the checkpoints and the replay buffers trade off.
  CheckpointPlan best;
  best.totalBytes = -1;
  for (int k = 1; k <= T; ++k) {
    CheckpointPlan p = evaluate(in, k, k);
    if (best.totalBytes < 0 || p.totalBytes < best.totalBytes)
      best = p;
  }
  int64_t fixed = 2 * int64_t(in.batch) * in.stateBytes +
                  int64_t(T) * round64(in.batch * in.inputBytes) +
                  (in.readoutBytes ? 2 * round64(int64_t(T) * in.batch * in.readoutBytes) : 0);
  if (best.totalBytes - fixed <= budget)
    return best;
  int inner = int(std::ceil(std::sqrt(double(T))));
  return evaluate(in, T, inner);
}

namespace {

/// A 64-byte aligned buffer of T.
/// The arguments of one forward step of one element (the backward's fields stay null).
template <class T>
StepArgs<T> forwardArgs(const T *params, const T *const *inputs, const T *state, T *next,
                        T *const *outputs, T *saved, T *scratch) {
  StepArgs<T> a;
  a.params = params;
  a.inputs = inputs;
  a.state = state;
  a.next = next;
  a.outputs = outputs;
  a.saved = saved;
  a.scratch = scratch;
  return a;
}

template <class T> class AlignedBuf {
public:
  AlignedBuf() = default;
  explicit AlignedBuf(size_t n) { resize(n); }
  void resize(size_t n) {
    if (n == count)
      return;
    std::free(ptr);
    ptr = nullptr;
    count = 0; // until the new block exists: a failed allocation leaves an empty buffer
    if (n) {
      ptr = static_cast<T *>(std::aligned_alloc(64, (n * sizeof(T) + 63) / 64 * 64));
      if (!ptr)
        throw std::bad_alloc();
    }
    count = n;
  }
  ~AlignedBuf() { std::free(ptr); }
  AlignedBuf(const AlignedBuf &) = delete;
  AlignedBuf &operator=(const AlignedBuf &) = delete;
  AlignedBuf(AlignedBuf &&o) noexcept : ptr(o.ptr), count(o.count) {
    o.ptr = nullptr;
    o.count = 0;
  }
  AlignedBuf &operator=(AlignedBuf &&o) noexcept {
    std::swap(ptr, o.ptr);
    std::swap(count, o.count);
    return *this;
  }
  T *data() { return ptr; }
  const T *data() const { return ptr; }
  size_t size() const { return count; }
  size_t bytes() const { return count ? (count * sizeof(T) + 63) / 64 * 64 : 0; }

private:
  T *ptr = nullptr;
  size_t count = 0;
};

} // namespace

template <class T> struct GeneratedExecutor<T>::Impl {
  const GeneratedSpec &spec;
  StepFn<T> fwd, bwd;
  int64_t S, saved, scratch;
  std::vector<int64_t> inputNumel, outputNumel;
  // What the step kernels write per output: the output, or a batched readout's input (cols).
  std::vector<int64_t> kernelNumel;
  int64_t inputTotal = 0, outputTotal = 0, maxOutput = 1; // outputTotal: of kernelNumel
  // Batched readouts, per readout: its inputs X of every recorded step, [steps][B][cols] (the
  // capacity is kept from episode to episode), and in the backward dLoss/dX likewise; dY gathered
  // into one block when the caller's output gradients are not one. readoutTotal: all their cols.
  std::vector<AlignedBuf<T>> readoutX, readoutGrads;
  std::vector<int> readoutOf; // per output: its batched readout, or -1
  AlignedBuf<T> readoutDy;
  int64_t readoutTotal = 0;

  /// Room in every readout's X for `steps` steps of `batch` elements, keeping the recorded ones
  /// (`kept` steps); grows to at least twice the old size, so that steps are added in O(1).
  void reserveReadouts(int64_t steps, int64_t kept, int batch) {
    for (int r = 0; r < spec.numReadouts; ++r) {
      int64_t per = batch * spec.readouts[r].cols;
      AlignedBuf<T> &x = readoutX[size_t(r)];
      if (int64_t(x.size()) >= steps * per)
        continue;
      AlignedBuf<T> grown(
          size_t(std::max<int64_t>(steps * per, kept > 0 ? 2 * int64_t(x.size()) : 0)));
      std::copy(x.data(), x.data() + kept * per, grown.data());
      x = std::move(grown);
    }
  }
  AlignedBuf<T> cur, next;
  std::vector<AlignedBuf<T>> checkpoints; // outer checkpoints: B * S each (kept for reuse)
  size_t numCheckpoints = 0;              // in use this episode
  std::vector<AlignedBuf<T>> tape;        // per step: inputs of all elements, input-major
  int outer = INT_MAX;
  int plannedInner = 0; // the plan's replay length, when the outer interval was planned
  struct Thread {
    AlignedBuf<T> scratch, saved, outputs, grads, gradA, gradB, replay, replaySaved, inner, tmp,
        record;
  };
  std::vector<Thread> threads;
  std::vector<T> zeros;
  mutable std::vector<std::vector<T>> stateViews;

  explicit Impl(const GeneratedSpec &s)
      : spec(s), S(s.stateNumel), saved(s.savedNumel), scratch(s.scratchNumel) {
    if constexpr (std::is_same_v<T, float>) {
      fwd = s.forwardFloat;
      bwd = s.backwardFloat;
    } else {
      fwd = s.forwardDouble;
      bwd = s.backwardDouble;
    }
  }

  /// Allocate every thread's forward buffers (before a parallel region: allocation is serial).
  void prepareThreads() {
    if (int(threads.size()) < maxThreads())
      threads.resize(size_t(maxThreads()));
    for (Thread &t : threads) {
      t.scratch.resize(size_t(std::max<int64_t>(scratch, 1)));
      t.saved.resize(size_t(std::max<int64_t>(saved, 1)));
      t.outputs.resize(size_t(std::max<int64_t>(outputTotal, 1)));
    }
  }
  Thread &thread() { return threads[size_t(threadId())]; }

  /// The planner's view of this network (sizes in bytes of T).
  PlanInputs planInputs(int batch, int steps, int64_t numParams, long long budget) const {
    BlockLayout layout{.stateNumel = S,
                       .savedNumel = saved,
                       .scratchNumel = scratch,
                       .recordNumel = spec.recordNumel,
                       .inputNumel = inputTotal,
                       .outputNumel = outputTotal,
                       .readoutNumel = readoutTotal,
                       .paramNumel = numParams};
    return dopa::planInputs(layout, int64_t(sizeof(T)), batch, steps, maxThreads(), budget);
  }
};

template <class T>
GeneratedExecutor<T>::GeneratedExecutor(const GeneratedSpec &spec)
    : impl(std::make_unique<Impl>(spec)), genSpec(spec), netInfo(spec.info()),
      paramBuf(netInfo.numParams, T(0)), gradBuf(netInfo.numParams, T(0)),
      checkpointEvery(spec.checkpointEvery), memoryBudget(spec.memoryBudget) {
  for (const TensorInfo &in : netInfo.inputs) {
    impl->inputNumel.push_back(in.numel());
    impl->inputTotal += in.numel();
  }
  for (const TensorInfo &o : netInfo.outputs)
    impl->outputNumel.push_back(o.numel());
  impl->kernelNumel = impl->outputNumel;
  impl->readoutOf.assign(impl->outputNumel.size(), -1);
  for (int r = 0; r < spec.numReadouts; ++r) {
    const BatchedReadout &ro = spec.readouts[r];
    if (ro.output < 0 || size_t(ro.output) >= impl->outputNumel.size() ||
        ro.rows != impl->outputNumel[size_t(ro.output)])
      throw std::logic_error(std::string("network '") + spec.name +
                             "': a batched readout does not match its output");
    impl->kernelNumel[size_t(ro.output)] = ro.cols;
    impl->readoutOf[size_t(ro.output)] = r;
    impl->readoutTotal += ro.cols;
  }
  impl->readoutX.resize(size_t(spec.numReadouts));
  impl->readoutGrads.resize(size_t(spec.numReadouts));
  for (int64_t n : impl->kernelNumel) {
    impl->outputTotal += n;
    impl->maxOutput = std::max(impl->maxOutput, n);
  }
  impl->zeros.assign(size_t(impl->maxOutput), T(0));
}

template <class T> GeneratedExecutor<T>::~GeneratedExecutor() = default;

template <class T> int64_t GeneratedExecutor<T>::heldBytes() const {
  int64_t b = int64_t(impl->cur.bytes() + impl->next.bytes() + impl->readoutDy.bytes());
  for (const auto &r : impl->readoutX)
    b += int64_t(r.bytes());
  for (const auto &r : impl->readoutGrads)
    b += int64_t(r.bytes());
  for (const auto &c : impl->checkpoints)
    b += int64_t(c.bytes());
  for (const auto &t : impl->tape)
    b += int64_t(t.bytes());
  for (const auto &t : impl->threads)
    b += int64_t(t.scratch.bytes() + t.saved.bytes() + t.outputs.bytes() + t.grads.bytes() +
                 t.gradA.bytes() + t.gradB.bytes() + t.replay.bytes() + t.replaySaved.bytes() +
                 t.inner.bytes() + t.tmp.bytes() + t.record.bytes());
  return b;
}

template <class T> void GeneratedExecutor<T>::beginEpisode(int batch) {
  if (batch < 1)
    throw std::invalid_argument("batch size must be at least 1");
  Impl &m = *impl;
  B = 0; // no episode until its buffers exist (a failed allocation leaves none)
  m.cur.resize(size_t(batch * m.S));
  m.next.resize(size_t(batch * m.S));
  B = batch;
  std::fill(m.cur.data(), m.cur.data() + B * m.S, T(0));
  for (int b = 0; b < B; ++b)
    for (size_t s = 0; s < netInfo.states.size(); ++s) {
      T *p = m.cur.data() + b * m.S + genSpec.stateOffsets[s];
      std::fill(p, p + netInfo.states[s].numel(), T(netInfo.states[s].init.a));
    }
  if (int(m.threads.size()) < maxThreads())
    m.threads.resize(size_t(maxThreads()));
  truncate();
}

template <class T> void GeneratedExecutor<T>::truncate() {
  Impl &m = *impl;
  numSteps = 0;
  m.tape.clear();
  // Plan the outer checkpoints for the steps expected (unknown: only the start is kept).
  m.outer = INT_MAX;
  m.plannedInner = 0;
  if (checkpointEvery > 0)
    m.outer = checkpointEvery;
  else if (expectedSteps > 0 || lastSteps > 0) {
    PlanInputs in = m.planInputs(B, expectedSteps > 0 ? expectedSteps : lastSteps,
                                 int64_t(netInfo.numParams), memoryBudget);
    plan = planCheckpoints(in);
    m.outer = plan.outer;
    m.plannedInner = plan.inner;
  }
  // Buffers are reused from episode to episode (fresh pages would fault in every iteration);
  // those the planned episode will not need are released.
  size_t want = 1;
  if (m.outer != INT_MAX) {
    int steps = expectedSteps > 0 ? expectedSteps : lastSteps;
    want = steps > 0 ? size_t(ceilDiv(steps, m.outer)) : 1;
  }
  if (m.checkpoints.size() > want)
    m.checkpoints.resize(want);
  if (m.checkpoints.empty())
    m.checkpoints.emplace_back();
  m.numCheckpoints = 1;
  m.checkpoints[0].resize(size_t(B * m.S));
  // The readouts' inputs: room for the planned steps (no more: a longer episode's growth is
  // released here, as the outer checkpoints are).
  if (int steps = expectedSteps > 0 ? expectedSteps : lastSteps; steps > 0)
    for (int r = 0; r < genSpec.numReadouts; ++r)
      m.readoutX[size_t(r)].resize(size_t(int64_t(steps) * B * genSpec.readouts[r].cols));
  std::copy(m.cur.data(), m.cur.data() + B * m.S, m.checkpoints[0].data());
}

namespace {

/// Rows of a batched readout's weight one thread takes at a time: the chunks are fixed, so the
/// results do not depend on the number of threads.
constexpr int64_t kReadoutChunk = 256;

template <class T>
using RowMajorMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T> using ConstMatMap = Eigen::Map<const RowMajorMat<T>>;
template <class T> using StridedMatMap = Eigen::Map<RowMajorMat<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ConstStridedMatMap = Eigen::Map<const RowMajorMat<T>, 0, Eigen::OuterStride<>>;

/// A batched readout's forward for one step: Y[batch, rows] = X[batch, cols] W^T (+ bias), the
/// rows of W in chunks over the threads (W is read once per step for the whole batch).
template <class T>
void readoutForward(const BatchedReadout &r, const T *params, const T *x, T *y, int batch) {
  int64_t chunks = ceilDiv(r.rows, kReadoutChunk);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t r0 = c * kReadoutChunk, n = std::min(kReadoutChunk, r.rows - r0);
    ConstMatMap<T> W(params + r.weightOffset + r0 * r.cols, n, r.cols);
    ConstMatMap<T> X(x, batch, r.cols);
    StridedMatMap<T> Y(y + r0, batch, n, Eigen::OuterStride<>(r.rows));
    Y.noalias() = X * W.transpose();
    if (r.biasOffset >= 0)
      Y.rowwise() +=
          Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(params + r.biasOffset + r0, n);
  }
}

/// A batched readout's backward over all recorded steps at once (n = steps * batch rows):
/// dX = dY W, dW += dY^T X and db += the column sums of dY, as GEMMs with the steps stacked (the
/// inner dimension of dW's product is n, not the batch). Rows of dX and rows of W are split in
/// fixed chunks over the threads (results independent of their number).
template <class T>
void readoutBackward(const BatchedReadout &r, const T *params, T *grads, const T *x, const T *dy,
                     T *dx, int64_t n) {
  ConstMatMap<T> W(params + r.weightOffset, r.rows, r.cols);
  constexpr int64_t kRows = 64; // rows of dX per chunk
  int64_t rowChunks = ceilDiv(n, kRows);
#pragma omp parallel for schedule(static) if (rowChunks > 1)
  for (int64_t c = 0; c < rowChunks; ++c) {
    int64_t i0 = c * kRows, m = std::min(kRows, n - i0);
    Eigen::Map<RowMajorMat<T>>(dx + i0 * r.cols, m, r.cols).noalias() =
        ConstMatMap<T>(dy + i0 * r.rows, m, r.rows) * W;
  }
  ConstMatMap<T> X(x, n, r.cols);
  int64_t chunks = ceilDiv(r.rows, kReadoutChunk);
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    int64_t r0 = c * kReadoutChunk, m = std::min(kReadoutChunk, r.rows - r0);
    ConstStridedMatMap<T> dY(dy + r0, n, m, Eigen::OuterStride<>(r.rows));
    Eigen::Map<RowMajorMat<T>>(grads + r.weightOffset + r0 * r.cols, m, r.cols).noalias() +=
        dY.transpose() * X;
    if (r.biasOffset >= 0)
      Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>(grads + r.biasOffset + r0, m) +=
          dY.colwise().sum();
  }
}

} // namespace

template <class T> void GeneratedExecutor<T>::step(const T *const *inputs, T *const *outputs) {
  stepKernels(inputs, outputs);
  for (int r = 0; r < genSpec.numReadouts; ++r)
    readoutForward(genSpec.readouts[r], paramBuf.data(),
                   impl->readoutX[size_t(r)].data() +
                       int64_t(numSteps - 1) * B * genSpec.readouts[r].cols,
                   outputs[size_t(genSpec.readouts[r].output)], B);
}

template <class T>
void GeneratedExecutor<T>::forward(int steps, const T *const *const *inputs,
                                   T *const *const *outputs) {
  if (B == 0)
    throw std::logic_error("forward() before beginEpisode()");
  // Every step's index inputs first: a bad one records nothing (as the step() calls would leave
  // complete steps, a throw after some kernels would leave their readouts unwritten).
  for (int t = 0; t < steps; ++t)
    checkIndexInputs(netInfo, genSpec.inputRows, inputs[t], B);
  int first = numSteps;
  for (int t = 0; t < steps; ++t)
    stepKernels(inputs[t], outputs[t]);
  // The batched readouts of all the steps at once: W is read once, not once per step.
  for (int r = 0; r < genSpec.numReadouts && steps > 0; ++r) {
    const BatchedReadout &ro = genSpec.readouts[r];
    const size_t k = size_t(ro.output);
    const int64_t per = int64_t(B) * ro.rows; // one step's output
    bool contiguous = true;
    for (int t = 1; t < steps && contiguous; ++t)
      contiguous = outputs[t][k] == outputs[0][k] + t * per;
    const T *x = impl->readoutX[size_t(r)].data() + int64_t(first) * B * ro.cols;
    if (contiguous) {
      readoutForward(ro, paramBuf.data(), x, outputs[0][k], steps * B);
      continue;
    }
    AlignedBuf<T> y(size_t(steps * per));
    readoutForward(ro, paramBuf.data(), x, y.data(), steps * B);
    for (int t = 0; t < steps; ++t)
      std::copy(y.data() + t * per, y.data() + (t + 1) * per, outputs[t][k]);
  }
}

template <class T>
void GeneratedExecutor<T>::stepKernels(const T *const *inputs, T *const *outputs) {
  if (B == 0)
    throw std::logic_error("step() before beginEpisode()");
  Impl &m = *impl;
  // Integer inputs index tables: check them here, outside the parallel region.
  checkIndexInputs(netInfo, genSpec.inputRows, inputs, B);
  if (numSteps > 0 && m.outer != INT_MAX && numSteps % m.outer == 0) {
    if (m.numCheckpoints == m.checkpoints.size())
      m.checkpoints.emplace_back();
    AlignedBuf<T> &cp = m.checkpoints[m.numCheckpoints++];
    cp.resize(size_t(B * m.S));
    std::copy(m.cur.data(), m.cur.data() + B * m.S, cp.data());
  }
  AlignedBuf<T> rec(size_t(std::max<int64_t>(B * m.inputTotal, 1)));
  {
    int64_t at = 0;
    for (size_t k = 0; k < m.inputNumel.size(); ++k) {
      std::copy(inputs[k], inputs[k] + B * m.inputNumel[k], rec.data() + at);
      at += B * m.inputNumel[k];
    }
  }
  m.tape.push_back(std::move(rec));
  const T *tapeIn = m.tape.back().data();
  m.reserveReadouts(numSteps + 1, numSteps, B);
  m.prepareThreads();
  size_t nIn = m.inputNumel.size(), nOut = m.outputNumel.size();
  int batch = B;
#pragma omp parallel for schedule(static) if (batch > 1)
  for (int b = 0; b < batch; ++b) {
    typename Impl::Thread &t = m.thread();
    std::vector<const T *> in(nIn);
    std::vector<T *> out(nOut);
    int64_t at = 0;
    for (size_t k = 0; k < nIn; ++k) {
      in[k] = tapeIn + at + b * m.inputNumel[k];
      at += batch * m.inputNumel[k];
    }
    for (size_t k = 0; k < nOut; ++k)
      out[k] = outputs[k] + b * m.outputNumel[k];
    for (int r = 0; r < genSpec.numReadouts; ++r) // the readout's input X, kept for the backward
      out[size_t(genSpec.readouts[r].output)] =
          m.readoutX[size_t(r)].data() + (int64_t(numSteps) * batch + b) * genSpec.readouts[r].cols;
    m.fwd(forwardArgs<T>(paramBuf.data(), in.data(), m.cur.data() + b * m.S,
                         m.next.data() + b * m.S, out.data(), t.saved.data(), t.scratch.data()));
  }
  std::swap(m.cur, m.next);
  ++numSteps;
}

namespace {

/// The backward pass of one batch element: replays its segments from the outer checkpoints (with
/// inner checkpoints when a segment is longer than the replay buffer), runs the backward steps in
/// reverse, then adds the deferred outer-product gradients. Works in the calling thread's buffers.
template <class T, class Impl, class Thread> class ElementBackward {
public:
  ElementBackward(Impl &m, Thread &t, const GeneratedSpec &spec, const T *params, int b, int batch,
                  int innerCap, T *const *const *inputGrads)
      : m(m), t(t), spec(spec), params(params), b(b), batch(batch), innerCap(innerCap), S(m.S),
        inPtr(m.inputNumel.size()), gOut(m.outputNumel.size()), outPtr(m.outputNumel.size()),
        gIn(m.inputNumel.size()), inputGrads(inputGrads), gNext(t.gradA.data()),
        gPrev(t.gradB.data()) {
    int64_t at = 0;
    for (size_t k = 0; k < outPtr.size(); ++k) {
      outPtr[k] = t.outputs.data() + at;
      at += m.kernelNumel[k];
    }
    // Input gradients the caller does not want are written here and dropped.
    if (spec.inputGradients && !m.inputNumel.empty())
      discard.resize(size_t(*std::max_element(m.inputNumel.begin(), m.inputNumel.end()) + 1));
  }

  /// dLoss/d final state: zero, or this element's part of `finalStateGrads` (per state).
  void seedFinalStateGrads(const NetworkInfo &info, const T *const *finalStateGrads) {
    std::fill(gNext, gNext + S, T(0));
    if (!finalStateGrads)
      return;
    for (size_t s = 0; s < info.states.size(); ++s)
      if (finalStateGrads[s]) {
        int64_t n = info.states[s].numel();
        std::copy(finalStateGrads[s] + b * n, finalStateGrads[s] + (b + 1) * n,
                  gNext + spec.stateOffsets[s]);
      }
  }

  /// Backward through one outer segment [from, to) that starts at state `start`.
  void segment(const T *start, int from, int to, const T *const *const *outputGrads) {
    int L = to - from;
    if (L <= innerCap) {
      forwardFrom(start, from, to);
      backwardSteps(from, to, outputGrads);
      return;
    }
    // Two levels: keep the state every innerCap steps of this segment, then replay each
    // sub-segment storing everything.
    keepInnerCheckpoints(start, from, to);
    for (int sub = int(ceilDiv(L, innerCap)) - 1; sub >= 0; --sub) {
      int f2 = from + sub * innerCap, t2 = std::min(to, f2 + innerCap);
      forwardFrom(t.inner.data() + sub * S, f2, t2);
      backwardSteps(f2, t2, outputGrads);
    }
  }

  /// Deferred outer-product gradients: dW += A^T B over this element's steps.
  void deferredGradients(int steps) {
    for (int d = 0; d < spec.numDeferred; ++d) {
      const DeferredOuter &o = spec.deferred[d];
      ConstStridedMatMap<T> A(t.record.data() + o.offsetA, steps, o.rows,
                              Eigen::OuterStride<>(spec.recordNumel));
      ConstStridedMatMap<T> Bm(t.record.data() + o.offsetB, steps, o.cols,
                               Eigen::OuterStride<>(spec.recordNumel));
      Eigen::Map<RowMajorMat<T>> G(t.grads.data() + o.paramOffset, o.rows, o.cols);
      G.noalias() += A.transpose() * Bm;
    }
  }

private:
  /// Point inPtr at this element's inputs of `step` (on the tape).
  void stepInputs(int step) {
    const T *tapeIn = m.tape[size_t(step)].data();
    int64_t at = 0;
    for (size_t k = 0; k < inPtr.size(); ++k) {
      inPtr[k] = tapeIn + at + b * m.inputNumel[k];
      at += batch * m.inputNumel[k];
    }
  }

  /// Forward from `state` over [from, to), writing the state before each step into
  /// replay[step - from] and its saved values into replaySaved; the state after the last step
  /// goes to `tmp`.
  void forwardFrom(const T *state, int from, int to) {
    T *states = t.replay.data(), *savedOut = t.replaySaved.data();
    std::copy(state, state + S, states);
    for (int step = from; step < to; ++step) {
      int r = step - from;
      stepInputs(step);
      T *next = step + 1 < to ? states + (r + 1) * S : t.tmp.data();
      m.fwd(forwardArgs<T>(params, inPtr.data(), states + r * S, next, outPtr.data(),
                           savedOut + r * m.saved, t.scratch.data()));
    }
  }

  /// Step once through [from, to - 1), one state buffer pair at a time, keeping the state every
  /// innerCap steps in t.inner.
  void keepInnerCheckpoints(const T *start, int from, int to) {
    std::copy(start, start + S, t.inner.data());
    T *a0 = t.replay.data(), *a1 = t.tmp.data();
    std::copy(start, start + S, a0);
    for (int step = from; step < to - 1; ++step) {
      stepInputs(step);
      m.fwd(forwardArgs<T>(params, inPtr.data(), a0, a1, outPtr.data(), t.saved.data(),
                           t.scratch.data()));
      std::swap(a0, a1);
      int r = step + 1 - from;
      if (r % innerCap == 0)
        std::copy(a0, a0 + S, t.inner.data() + (r / innerCap) * S);
    }
  }

  /// The backward steps of [from, to), in reverse, from the replayed states and saved values.
  void backwardSteps(int from, int to, const T *const *const *outputGrads) {
    for (int step = to - 1; step >= from; --step) {
      int r = step - from;
      stepInputs(step);
      for (size_t k = 0; k < gOut.size(); ++k) {
        if (int r = m.readoutOf[k]; r >= 0) { // dLoss/d the readout's input (readoutBackward)
          gOut[k] = m.readoutGrads[size_t(r)].data() +
                    (int64_t(step) * batch + b) * spec.readouts[r].cols;
          continue;
        }
        const T *g = outputGrads && outputGrads[step] ? outputGrads[step][k] : nullptr;
        gOut[k] = g ? g + b * m.outputNumel[k] : m.zeros.data();
      }
      StepArgs<T> a;
      a.params = params;
      a.inputs = inPtr.data();
      a.state = t.replay.data() + r * S;
      a.saved = t.replaySaved.data() + r * m.saved;
      a.scratch = t.scratch.data();
      a.gradOutputs = gOut.data();
      a.gradNext = gNext;
      a.gradPrev = gPrev;
      a.grads = t.grads.data();
      a.record = t.record.data() + int64_t(step) * spec.recordNumel;
      if (spec.inputGradients) {
        for (size_t k = 0; k < gIn.size(); ++k) {
          T *g = inputGrads && inputGrads[step] ? inputGrads[step][k] : nullptr;
          gIn[k] = g ? g + b * m.inputNumel[k] : discard.data();
        }
        a.gradInputs = gIn.data();
      }
      m.bwd(a);
      std::swap(gNext, gPrev);
    }
  }

  Impl &m;
  Thread &t;
  const GeneratedSpec &spec;
  const T *params;
  int b, batch, innerCap;
  int64_t S;
  std::vector<const T *> inPtr, gOut;
  std::vector<T *> outPtr, gIn;
  T *const *const *inputGrads;
  std::vector<T> discard;
  T *gNext, *gPrev;
};

} // namespace

template <class T> int GeneratedExecutor<T>::planBackward(int steps) {
  Impl &m = *impl;
  int outer = std::min(m.outer, steps);
  // The replay capacity per thread: the plan's inner interval for these steps.
  PlanInputs in = m.planInputs(B, steps, int64_t(netInfo.numParams), memoryBudget);
  in.checkpointEvery = checkpointEvery;
  int innerCap;
  if (checkpointEvery > 0)
    innerCap = checkpointEvery;
  else if (m.plannedInner > 0)
    innerCap = m.plannedInner;
  else
    innerCap = planCheckpoints(in).inner;
  if (innerCap >= outer)
    innerCap = outer;
  else
    innerCap = std::max(innerCap, int(std::ceil(std::sqrt(double(outer)))));
  plan = evaluate(in, outer, innerCap);
  m.prepareThreads();
  for (auto &t : m.threads) {
    t.grads.resize(size_t(std::max<size_t>(netInfo.numParams, 1)));
    std::fill(t.grads.data(), t.grads.data() + t.grads.size(), T(0));
    t.gradA.resize(size_t(m.S));
    t.gradB.resize(size_t(m.S));
    t.tmp.resize(size_t(m.S));
    t.replay.resize(size_t(innerCap * m.S));
    t.replaySaved.resize(size_t(std::max<int64_t>(innerCap * m.saved, 1)));
    if (innerCap < outer)
      t.inner.resize(size_t(ceilDiv(outer, innerCap) * m.S));
    t.record.resize(size_t(int64_t(steps) * genSpec.recordNumel));
  }
  for (int r = 0; r < genSpec.numReadouts; ++r)
    m.readoutGrads[size_t(r)].resize(size_t(int64_t(steps) * B * genSpec.readouts[r].cols));
  return innerCap;
}

template <class T>
void GeneratedExecutor<T>::backward(const T *const *const *outputGrads,
                                    const T *const *finalStateGrads, T *const *const *inputGrads) {
  if (inputGrads && !genSpec.inputGradients)
    throw std::logic_error(std::string("network '") + genSpec.name +
                           "' was compiled without input gradients (dopac --input-gradients)");
  Impl &m = *impl;
  int steps = numSteps;
  if (steps == 0)
    return;
  int outer = std::min(m.outer, steps);
  int innerCap = planBackward(steps);
  int numSegments = int(ceilDiv(steps, outer));
  int batch = B;
  std::vector<char> used(m.threads.size(), 0);
  for (int r = 0; r < genSpec.numReadouts; ++r) {
    const BatchedReadout &ro = genSpec.readouts[r];
    // dY of all steps as one [steps * B, rows] block: the caller's when it is one (the LM
    // trainer's), else gathered (zero where a step has none).
    int64_t per = int64_t(batch) * ro.rows;
    T *dx = m.readoutGrads[size_t(r)].data();
    bool any = false;
    for (int t = 0; t < steps && !any; ++t)
      any = outputGrads && outputGrads[t] && outputGrads[t][ro.output];
    if (!any) { // no gradient reaches this output: dX = 0, nothing to add to W and b
      std::fill(dx, dx + int64_t(steps) * batch * ro.cols, T(0));
      continue;
    }
    const T *dy0 = outputGrads[0] ? outputGrads[0][ro.output] : nullptr;
    bool oneBlock = dy0 != nullptr;
    for (int t = 1; t < steps && oneBlock; ++t)
      oneBlock = outputGrads[t] && outputGrads[t][ro.output] == dy0 + t * per;
    if (!oneBlock) {
      m.readoutDy.resize(size_t(steps * per));
      for (int t = 0; t < steps; ++t) {
        const T *g = outputGrads && outputGrads[t] ? outputGrads[t][ro.output] : nullptr;
        T *to = m.readoutDy.data() + t * per;
        if (g)
          std::copy(g, g + per, to);
        else
          std::fill(to, to + per, T(0));
      }
      dy0 = m.readoutDy.data();
    }
    readoutBackward(ro, paramBuf.data(), gradBuf.data(), m.readoutX[size_t(r)].data(), dy0, dx,
                    int64_t(steps) * batch);
  }
  peakBytes = heldBytes(); // every buffer of this backward exists now

#pragma omp parallel for schedule(static, 1) if (batch > 1)
  for (int b = 0; b < batch; ++b) {
    typename Impl::Thread &t = m.thread();
    used[size_t(threadId())] = 1;
    ElementBackward<T, Impl, typename Impl::Thread> element(m, t, genSpec, paramBuf.data(), b,
                                                            batch, innerCap, inputGrads);
    element.seedFinalStateGrads(netInfo, finalStateGrads);
    for (int seg = numSegments - 1; seg >= 0; --seg) {
      int from = seg * outer, to = std::min(steps, from + outer);
      element.segment(m.checkpoints[size_t(seg)].data() + b * m.S, from, to, outputGrads);
    }
    element.deferredGradients(steps);
  }
  lastSteps = steps;
  // Reduce the per-thread gradients in thread order (deterministic for a fixed thread count).
  int numParams = int(netInfo.numParams);
  for (size_t th = 0; th < m.threads.size(); ++th) {
    if (!used[th])
      continue;
    const T *g = m.threads[th].grads.data();
    T *out = gradBuf.data();
#pragma omp parallel for schedule(static) if (numParams > 65536)
    for (int i = 0; i < numParams; ++i)
      out[i] += g[i];
  }
  truncate();
}

template <class T> void GeneratedExecutor<T>::setState(int s, const T *values) {
  if (s < 0 || size_t(s) >= netInfo.states.size())
    throw std::out_of_range("setState: no state " + std::to_string(s));
  if (numSteps != 0 || B == 0)
    throw std::logic_error("setState: only right after beginEpisode() or truncate()");
  Impl &m = *impl;
  int64_t n = netInfo.states[size_t(s)].numel();
  for (int b = 0; b < B; ++b) {
    std::copy(values + b * n, values + (b + 1) * n,
              m.cur.data() + b * m.S + genSpec.stateOffsets[s]);
    // The episode's start, kept for the backward (truncate() took it before this change).
    std::copy(values + b * n, values + (b + 1) * n,
              m.checkpoints[0].data() + b * m.S + genSpec.stateOffsets[s]);
  }
}

template <class T> const T *GeneratedExecutor<T>::state(int s) const {
  Impl &m = *impl;
  if (m.stateViews.size() != netInfo.states.size())
    m.stateViews.resize(netInfo.states.size());
  int64_t n = netInfo.states[size_t(s)].numel();
  std::vector<T> &v = m.stateViews[size_t(s)];
  v.resize(size_t(B * n));
  for (int b = 0; b < B; ++b) {
    const T *p = m.cur.data() + b * m.S + genSpec.stateOffsets[s];
    std::copy(p, p + n, v.data() + b * n);
  }
  return v.data();
}

template class dopa::GeneratedExecutor<float>;
template class dopa::GeneratedExecutor<double>;
