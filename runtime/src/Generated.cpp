//===- Generated.cpp - Running generated step functions over a batch ------===//
//
// GeneratedExecutor: the batch loop (OpenMP over batch elements, or one group of elements per
// thread, stage by stage, with the batched products over the group: smallGemm), the input tape, the
// outer checkpoints taken during the forward, the batched readouts, and the backward (its driver:
// LaneBackward.h; its memory plan: Plan.cpp; its state: GeneratedImpl.h; see Generated.h). In
// element-major order a forward() window runs each element's steps on one thread, one element after
// another. Buffers are allocated once and reused; every block is 64-byte aligned so that generated
// loops see the same alignment in the forward and in its replays.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/Generated.h"

#include "GeneratedDetail.h"
#include "GeneratedImpl.h"
#include "LaneBackward.h"
#include "Readouts.h"
#include "dopa/runtime/Bf16.h"
#include "dopa/runtime/SmallGemm.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace dopa;
using namespace dopa::detail;

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
  }
  impl->readoutX.resize(size_t(spec.numReadouts));
  impl->readoutGrads.resize(size_t(spec.numReadouts));
  for (int64_t n : impl->kernelNumel) {
    impl->outputTotal += n;
    impl->maxOutput = std::max(impl->maxOutput, n);
  }
  impl->zeros.assign(size_t(impl->maxOutput), T(0));
  impl->layout = layoutOf(spec, netInfo);
  stageOrder = defaultStageOrder();
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
  b += int64_t(impl->productX.bytes() + impl->productY.bytes());
  for (const auto *group : {&impl->threads, &impl->elements})
    for (const auto &t : *group)
      b += int64_t(t.scratch.bytes() + t.saved.bytes() + t.outputs.bytes() + t.grads.bytes() +
                   t.gradA.bytes() + t.gradB.bytes() + t.replay.bytes() + t.replaySaved.bytes() +
                   t.inner.bytes() + t.tmp.bytes() + t.record.bytes() + t.prologue.bytes());
  return b;
}

template <class T> void GeneratedExecutor<T>::beginEpisode(int batch) {
  if (batch < 1)
    throw std::invalid_argument("batch size must be at least 1");
  Impl &m = *impl;
  B = 0; // no episode until its buffers exist (a failed allocation leaves none)
  m.stageMajor = runsStageMajor(genSpec, netInfo, stageOrder);
  m.inPlace = !m.stageMajor && genSpec.numForwardCopies >= 0;
  m.useReplay = !m.stageMajor && m.rep;
  m.recordedNumel = m.useReplay ? m.layout.replayRecordedNumel : 0;
  m.cur.resize(size_t(batch * m.S));
  m.next.resize(m.inPlace ? 0 : size_t(batch * m.S));
  B = batch;
  // The start state, each element's block written by the thread that steps it (the forward's
  // static schedule), in parallel.
  std::vector<std::vector<T>> init(netInfo.states.size());
  for (size_t s = 0; s < netInfo.states.size(); ++s)
    init[s].assign(size_t(netInfo.states[s].numel()), T(netInfo.states[s].init.a));
#pragma omp parallel for schedule(static) if (batch > 1)
  for (int b = 0; b < batch; ++b) {
    std::fill(m.cur.data() + b * m.S, m.cur.data() + (b + 1) * m.S, T(0));
    for (size_t s = 0; s < init.size(); ++s)
      writeState(int(s), init[s].data(), m.cur.data() + b * m.S);
  }
  if (int(m.threads.size()) < maxThreads())
    m.threads.resize(size_t(maxThreads()));
  m.groups = std::max(1, std::min(batch, maxThreads()));
  // Stage-major: every element's buffers, the batched products' operands for this batch (the
  // plan counts exactly these), the threads keep only their gradient accumulators.
  m.productX.resize(m.stageMajor ? size_t(batch * m.layout.productXNumel) : 0);
  m.productY.resize(m.stageMajor ? size_t(batch * m.layout.productYNumel) : 0);
  if (!m.stageMajor)
    m.elements.clear();
  else
    for (auto &t : m.threads) {
      typename Impl::Thread kept;
      kept.grads = std::move(t.grads);
      t = std::move(kept);
    }
  truncate();
}

template <class T> bool GeneratedExecutor<T>::stageMajor() const { return impl->stageMajor; }

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
    PlanInputs in = m.planInputs(B, expectedSteps > 0 ? expectedSteps : lastSteps, memoryBudget);
    plan = planCheckpoints(in);
    m.outer = plan.outer;
    m.plannedInner = plan.inner;
  }
  // A plan without replay: the buffers the forward fills (planBackward keeps them as they are),
  // allocated before keepSteps says they exist.
  m.keepSteps = 0;
  if (checkpointEvery <= 0 && m.stageMajor && m.plannedInner > 0 && plan.replays == 0) {
    m.prepareElements(B);
    for (auto &t : m.elements) {
      t.replay.resize(size_t(int64_t(m.plannedInner) * m.S));
      t.replaySaved.resize(size_t(std::max<int64_t>(int64_t(m.plannedInner) * m.saved, 1)));
    }
    m.keepSteps = m.plannedInner;
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
  // The start is kept by the first step, which swaps the state buffer into checkpoints[0]
  // (stepKernels); nothing reads it before (backward() of no steps returns at once).
}

/// Where operand block `buf` of a batched product starts in one element's step arguments (the
/// blocks are checked when the executor is built: the throws below are never reached).
template <class T> static const T *readBlock(const StepArgs<T> &a, StepBuffer buf, int k) {
  switch (buf) {
  case StepBuffer::Input: return a.inputs[k];
  case StepBuffer::State: return a.state;
  case StepBuffer::Next: return a.next;
  case StepBuffer::Output: return a.outputs[k];
  case StepBuffer::Saved: return a.saved;
  case StepBuffer::Scratch: return a.scratch;
  case StepBuffer::GradOutput: return a.gradOutputs[k];
  case StepBuffer::GradNext: return a.gradNext;
  case StepBuffer::GradPrev: return a.gradPrev;
  case StepBuffer::Record: return a.record;
  }
  throw std::logic_error("a batched product names an unknown block");
}
template <class T> static T *writeBlock(const StepArgs<T> &a, StepBuffer buf, int k) {
  switch (buf) {
  case StepBuffer::Next: return a.next;
  case StepBuffer::Output: return a.outputs[k];
  case StepBuffer::Saved: return a.saved;
  case StepBuffer::Scratch: return a.scratch;
  case StepBuffer::GradPrev: return a.gradPrev;
  case StepBuffer::Record: return a.record;
  default: throw std::logic_error("a batched product writes into a read-only block");
  }
}

template <class T>
void GeneratedExecutor<T>::Impl::runStages(bool backward, const StepArgs<T> *args, int n,
                                           int first) {
  const StepFn<T> *stages = backward ? bwdStages : fwdStages;
  const std::vector<int> &product = backward ? bwdProduct : fwdProduct;
  const BatchedProduct *products = backward ? spec.backwardProducts : spec.forwardProducts;
  const std::vector<AlignedBuf<T>> &packed = backward ? packedBwd : packedFwd;
  T *grads = backward ? thread().grads.data() : nullptr;
  for (size_t s = 0; s < product.size(); ++s) {
    if (product[s] >= 0) {
      const auto i = size_t(product[s]);
      batchedProduct(products[i], packed[i].size() ? packed[i].data() : nullptr, args, n, first);
      continue;
    }
    StepFn<T> fn = stages[s];
    for (int b = 0; b < n; ++b) {
      StepArgs<T> a = args[b];
      if (backward)
        a.grads = grads;
      fn(a);
    }
  }
}

/// y_b = W x_b (or x_b W) for the n elements b: the x_b gathered into the rows of X (the
/// elements' own rows of productX), Y = X W^T (or X W) on the calling thread, the rows of Y
/// scattered into the y_b. smallGemm runs the product where it fits (M: `packed`, W^T, or W in
/// place), Eigen's GEMM the others.
template <class T>
void GeneratedExecutor<T>::Impl::batchedProduct(const BatchedProduct &p, const T *packed,
                                                const StepArgs<T> *args, int n, int first) {
  int64_t xn = p.transposed ? p.rows : p.cols, yn = p.transposed ? p.cols : p.rows;
  // productX and productY hold every element's rows (beginEpisode sizes them before any region).
  T *px = productX.data() + first * layout.productXNumel,
    *py = productY.data() + first * layout.productYNumel;
  for (int b = 0; b < n; ++b) {
    const T *x = readBlock(args[b], p.xBuf, p.xIndex) + p.xOffset;
    std::copy(x, x + xn, px + b * xn);
  }
  const T *w = args[0].params + p.weightOffset;
  if (p.transposed && fitsSmallGemm<T>(xn, yn))
    smallGemm<T>(n, xn, yn, px, xn, w, yn, py, yn);
  else if (packed)
    smallGemm<T>(n, xn, yn, px, xn, packed, yn, py, yn);
  else {
    ConstMatMap<T> X(px, n, xn);
    ConstMatMap<T> W(w, p.rows, p.cols);
    Eigen::Map<RowMajorMat<T>> Y(py, n, yn);
    // A head of a few outputs (fewer than a vector): dot products, no GEMM blocking.
    const bool narrow = yn < smallGemmLanes<T>();
    if (p.transposed && narrow)
      Y.noalias() = X.lazyProduct(W);
    else if (p.transposed)
      Y.noalias() = X * W;
    else if (narrow)
      Y.noalias() = X.lazyProduct(W.transpose());
    else
      Y.noalias() = X * W.transpose();
  }
  for (int b = 0; b < n; ++b) {
    T *y = writeBlock(args[b], p.yBuf, p.yIndex) + p.yOffset;
    std::copy(py + b * yn, py + (b + 1) * yn, y);
  }
}

template <class T> void GeneratedExecutor<T>::step(const T *const *inputs, T *const *outputs) {
  stepKernels(inputs, outputs);
  for (int r = 0; r < genSpec.numReadouts; ++r)
    readoutForward(genSpec.readouts[r], paramBuf.data(),
                   impl->readoutX[size_t(r)].data() +
                       int64_t(numSteps - 1) * B * genSpec.readouts[r].cols,
                   outputs[size_t(genSpec.readouts[r].output)], B, impl->readoutPanels);
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
  if (impl->stageMajor)
    for (int t = 0; t < steps; ++t)
      stepKernels(inputs[t], outputs[t]);
  else
    runElementMajor(steps, inputs, outputs);
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
      readoutForward(ro, paramBuf.data(), x, outputs[0][k], steps * B, impl->readoutPanels);
      continue;
    }
    AlignedBuf<T> y(size_t(steps * per));
    readoutForward(ro, paramBuf.data(), x, y.data(), steps * B, impl->readoutPanels);
    for (int t = 0; t < steps; ++t)
      std::copy(y.data() + t * per, y.data() + (t + 1) * per, outputs[t][k]);
  }
}

template <class T>
void GeneratedExecutor<T>::runElementMajor(int steps, const T *const *const *inputs,
                                           T *const *const *outputs) {
  // Every step is recorded first (its buffers fixed, the checkpoints swapped in as the steps
  // would), then each thread runs its elements' whole window, element after element, so that an
  // element's traces stay in the thread's cache from step to step instead of leaving it while the
  // other elements step. The same kernels on the same blocks as step after step: the same values.
  Impl &m = *impl;
  m.prepareThreads();
  m.reserveReadouts(int64_t(numSteps) + steps, numSteps, B);
  std::vector<RecordedStep> window;
  window.reserve(size_t(steps));
  auto run = [&] {
    const int n = int(window.size()), batch = B;
#pragma omp parallel for schedule(static) if (batch > 1)
    for (int b = 0; b < batch; ++b)
      for (int t = 0; t < n; ++t)
        runElementStep(window[size_t(t)], b, outputs[t]);
  };
  try {
    for (int t = 0; t < steps; ++t)
      window.push_back(recordStep(inputs[t]));
  } catch (...) {
    run(); // the steps recorded before the failure are complete, as step() calls would leave them
    throw;
  }
  run();
}

template <class T>
bool GeneratedExecutor<T>::runElements(int steps, const ElementObserve &observe,
                                       const ElementReact &react) {
  if (B == 0)
    throw std::logic_error("runElements() before beginEpisode()");
  Impl &m = *impl;
  bool intInputs = false;
  for (const TensorInfo &in : netInfo.inputs)
    intInputs |= in.isInt;
  if (m.stageMajor || genSpec.numReadouts > 0 || intInputs)
    return false;
  if (steps <= 0)
    return true;
  // As runElementMajor: every step recorded first (the inputs are written into the tape by
  // observe, just before the element's step), then each thread runs its elements' episodes.
  m.prepareThreads();
  std::vector<RecordedStep> window;
  window.reserve(size_t(steps));
  try {
    for (int t = 0; t < steps; ++t)
      window.push_back(recordStep());
  } catch (...) { // recorded steps without inputs cannot run: no episode, as after a callback's
    truncate();
    B = 0;
    throw;
  }
  const size_t nIn = m.inputNumel.size(), nOut = m.outputNumel.size();
  std::vector<AlignedBuf<T>> outBuf(nOut);
  std::vector<T *> outAll(std::max<size_t>(nOut, 1));
  for (size_t k = 0; k < nOut; ++k) { // one step's outputs for the batch, reused every step
    outBuf[k].resize(size_t(std::max<int64_t>(B * m.outputNumel[k], 1)));
    outAll[k] = outBuf[k].data();
  }
  const int batch = B;
  // Each element's input and output pointers (nothing allocates in the region).
  std::vector<T *> xAll(std::max<size_t>(size_t(batch) * nIn, 1));
  std::vector<const T *> yAll(std::max<size_t>(size_t(batch) * nOut, 1));
  for (int b = 0; b < batch; ++b)
    for (size_t k = 0; k < nOut; ++k)
      yAll[size_t(b) * nOut + k] = outAll[k] + b * m.outputNumel[k];
  std::exception_ptr failed;
  std::atomic<bool> stop{false};
#pragma omp parallel for schedule(static) if (batch > 1)
  for (int b = 0; b < batch; ++b) {
    T *const *x = xAll.data() + size_t(b) * nIn;
    const T *const *y = yAll.data() + size_t(b) * nOut;
    for (int t = 0; t < steps && !stop.load(std::memory_order_relaxed); ++t) {
      const RecordedStep &s = window[size_t(t)];
      int64_t at = 0;
      for (size_t k = 0; k < nIn; ++k) {
        xAll[size_t(b) * nIn + k] = s.tape + at + b * m.inputNumel[k];
        at += batch * m.inputNumel[k];
      }
      try {
        observe(b, t, x);
        runElementStep(s, b, outAll.data());
        react(b, t, y);
      } catch (...) {
#pragma omp critical(dopa_run_elements)
        if (!failed)
          failed = std::current_exception();
        stop = true;
      }
    }
  }
  if (failed) {
    // The elements stopped at different steps: nothing consistent is recorded. Leave no episode,
    // so that step() and backward() cannot run on it (beginEpisode() starts the next one).
    truncate();
    B = 0;
    std::rethrow_exception(failed);
  }
  return true;
}

template <class T>
typename GeneratedExecutor<T>::RecordedStep
GeneratedExecutor<T>::recordStep(const T *const *inputs) {
  Impl &m = *impl;
  if (numSteps == 0 && m.proFwd) // the carried states of the start, kept with it
    m.runPrologue(m.cur.data(), paramBuf.data(), B);
  // An outer checkpoint (the start is one) is not copied: the state buffer becomes the
  // checkpoint, the checkpoint's old buffer becomes the state buffer, and this step runs out of
  // place, from the one into the other. (A copy of B blocks is 9.7 MB for cue_reward at H = 200.)
  // The checkpoint's buffer is sized here; the swap comes after every allocation of the step, so
  // a failed one leaves the states where they were.
  AlignedBuf<T> *checkpoint = nullptr;
  if (numSteps == 0 || (m.outer != INT_MAX && numSteps % m.outer == 0)) {
    if (numSteps > 0 && m.numCheckpoints == m.checkpoints.size())
      m.checkpoints.emplace_back();
    checkpoint = &m.checkpoints[numSteps == 0 ? 0 : m.numCheckpoints];
    checkpoint->resize(size_t(B * m.S));
  }
  AlignedBuf<T> rec(size_t(std::max<int64_t>(B * (m.inputTotal + m.recordedNumel), 1)));
  if (!inputs)
    std::fill(rec.data(), rec.data() + B * m.inputTotal, T(0));
  else {
    int64_t at = 0;
    for (size_t k = 0; k < m.inputNumel.size(); ++k) {
      std::copy(inputs[k], inputs[k] + B * m.inputNumel[k], rec.data() + at);
      at += B * m.inputNumel[k];
    }
  }
  m.reserveReadouts(numSteps + 1, numSteps, B);
  m.tape.push_back(std::move(rec));
  // Nothing allocates after this point: the state buffer becomes the checkpoint.
  RecordedStep s;
  s.from = m.cur.data();
  if (checkpoint) {
    std::swap(*checkpoint, m.cur);
    if (numSteps > 0)
      ++m.numCheckpoints;
    s.from = checkpoint->data();
  }
  s.cur = m.cur.data();
  s.next = m.next.data();
  s.tape = m.tape.back().data();
  s.step = numSteps;
  if (!m.inPlace)
    std::swap(m.cur, m.next);
  ++numSteps;
  return s;
}

template <class T>
void GeneratedExecutor<T>::elementPointers(const RecordedStep &s, int b, T *const *outputs,
                                           const T **in, T **out) {
  Impl &m = *impl;
  int64_t at = 0;
  for (size_t k = 0; k < m.inputNumel.size(); ++k) {
    in[k] = s.tape + at + b * m.inputNumel[k];
    at += B * m.inputNumel[k];
  }
  for (size_t k = 0; k < m.outputNumel.size(); ++k)
    out[k] = outputs[k] + b * m.outputNumel[k];
  for (int r = 0; r < genSpec.numReadouts; ++r) // the readout's input X, kept for the backward
    out[size_t(genSpec.readouts[r].output)] =
        m.readoutX[size_t(r)].data() + (int64_t(s.step) * B + b) * genSpec.readouts[r].cols;
}

template <class T>
void GeneratedExecutor<T>::runElementStep(const RecordedStep &s, int b, T *const *outputs) {
  Impl &m = *impl;
  typename Impl::Thread &t = m.thread();
  // The thread's pointer arrays (prepareThreads sized them: nothing allocates in a region).
  const T **in = t.inPointers.data();
  T **out = t.outPointers.data();
  elementPointers(s, b, outputs, in, out);
  T *state = s.cur + b * m.S; // the next states (in place, unless from differs)
  T *next = m.inPlace ? t.tmp.data() : s.next + b * m.S;
  StepArgs<T> a = forwardArgs<T>(paramBuf.data(), in, s.from + b * m.S, next, out, t.saved.data(),
                                 t.scratch.data());
  if (m.inPlace)
    a.inPlace = state;
  m.fwd(a);
  if (m.inPlace) // the states not updated in place, from the spare block
    copySlots(t.tmp.data(), state, genSpec.numForwardCopies, genSpec.forwardCopies);
  if (m.useReplay) // what the replay step leaves out, for the backward's replays
    packSlots(m.inPlace ? state : next, s.tape + B * m.inputTotal + b * m.recordedNumel,
              genSpec.numReplayRecorded, genSpec.replayRecorded);
}

template <class T>
void GeneratedExecutor<T>::stepKernels(const T *const *inputs, T *const *outputs) {
  if (B == 0)
    throw std::logic_error("step() before beginEpisode()");
  Impl &m = *impl;
  // Integer inputs index tables: check them here, outside the parallel region.
  checkIndexInputs(netInfo, genSpec.inputRows, inputs, B);
  if (!m.stageMajor) {
    runElementMajor(1, &inputs, &outputs);
    return;
  }
  int batch = B;
  // Stage-major: every element's buffers and (at a recording's start: the parameters are fixed
  // until it ends) the batched products' packed weights, before the step is recorded.
  m.prepareElements(batch);
  if (numSteps == 0)
    m.packProducts(false, paramBuf.data());
  // A plan without replay keeps this step's state (copied by the group's thread) and saved
  // values for the backward.
  const bool keep = numSteps < m.keepSteps;
  const size_t nIn = m.inputNumel.size(), nOut = m.outputNumel.size();
  std::vector<const T *> in(std::max<size_t>(size_t(batch) * nIn, 1));
  std::vector<T *> out(std::max<size_t>(size_t(batch) * nOut, 1));
  std::vector<StepArgs<T>> args(static_cast<size_t>(batch));
  const RecordedStep s = recordStep(inputs);
  const int64_t at = int64_t(s.step);
  for (int b = 0; b < batch; ++b) {
    elementPointers(s, b, outputs, in.data() + b * nIn, out.data() + b * nOut);
    typename Impl::Thread &e = m.elements[size_t(b)];
    T *saved = keep ? e.replaySaved.data() + at * m.saved : e.saved.data();
    args[size_t(b)] =
        forwardArgs<T>(paramBuf.data(), in.data() + b * nIn, s.from + b * m.S, s.next + b * m.S,
                       out.data() + b * nOut, saved, e.scratch.data());
  }
  int groups = m.groups;
#pragma omp parallel num_threads(groups) if (groups > 1)
  {
    // The team may be smaller than asked (nested or limited OpenMP): every group runs anyway.
    for (int g = threadId(); g < groups; g += teamSize()) {
      auto [lo, hi] = m.groupRange(batch, g);
      for (int b = lo; b < hi && keep; ++b)
        std::copy(s.from + b * m.S, s.from + (b + 1) * m.S,
                  m.elements[size_t(b)].replay.data() + at * m.S);
      m.runStages(false, args.data() + lo, hi - lo, lo);
    }
  }
}

template <class T> int GeneratedExecutor<T>::planBackward(int steps) {
  Impl &m = *impl;
  // Every step kept by the forward (a plan without replay, an episode no longer than planned):
  // one segment, and the buffers the forward filled stay as they are.
  const bool kept = m.keptAll(steps);
  int outer = m.segmentLength(steps);
  // The replay capacity per thread: the plan's inner interval for these steps.
  PlanInputs in = m.planInputs(B, steps, memoryBudget);
  in.checkpointEvery = checkpointEvery;
  int innerCap;
  if (checkpointEvery > 0)
    innerCap = checkpointEvery;
  else if (m.plannedInner > 0)
    innerCap = m.plannedInner;
  else
    innerCap = planCheckpoints(in).inner;
  if (kept)
    innerCap = m.keepSteps;
  else if (innerCap >= outer)
    innerCap = outer;
  else
    innerCap = std::max(innerCap, int(std::ceil(std::sqrt(double(outer)))));
  plan = evaluatePlan(in, outer, innerCap);
  if (!m.stageMajor)
    m.prepareThreads();
  // Gradient accumulators per thread; the replay buffers per thread (element-major) or per
  // element (stage-major: every element is in flight at once).
  if (int(m.threads.size()) < maxThreads()) // the thread count may have grown since beginEpisode
    m.threads.resize(size_t(maxThreads()));
  for (auto &t : m.threads) {
    t.grads.resize(size_t(std::max<size_t>(netInfo.numParams, 1)));
    std::fill(t.grads.data(), t.grads.data() + t.grads.size(), T(0));
  }
  if (m.stageMajor)
    m.prepareElements(B);
  for (auto &t : m.stageMajor ? m.elements : m.threads) {
    t.gradA.resize(size_t(m.S));
    t.gradB.resize(size_t(m.S));
    t.tmp.resize(size_t(m.S));
    t.replay.resize(size_t(innerCap * m.S));
    t.replaySaved.resize(size_t(std::max<int64_t>(innerCap * m.saved, 1)));
    if (innerCap < outer)
      t.inner.resize(size_t(ceilDiv(outer, innerCap) * m.S));
    t.record.resize(size_t(int64_t(steps) * genSpec.recordNumel));
    t.prologue.resize(size_t(m.proNumel));
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
  const bool kept = m.keptAll(steps);
  int outer = m.segmentLength(steps);
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

  using Backward = LaneBackward<T, Impl, typename Impl::Thread>;
  auto run = [&](Backward &lanes) {
    lanes.seedFinalStateGrads(netInfo, finalStateGrads);
    for (int seg = numSegments - 1; seg >= 0; --seg) {
      int from = seg * outer, to = std::min(steps, from + outer);
      lanes.segment(m.checkpoints[size_t(seg)].data(), from, to, outputGrads);
    }
    lanes.deferredGradients(steps);
    lanes.prologueBackward(m.checkpoints[0].data());
  };
  if (m.stageMajor) { // per thread, a group of elements at once, each step stage by stage
    m.packProducts(true, paramBuf.data());
    int groups = m.groups;
    std::vector<Backward> perGroup; // built here: nothing allocates inside the region
    perGroup.reserve(size_t(groups));
    for (int g = 0; g < groups; ++g) {
      Backward &lanes =
          perGroup.emplace_back(m, genSpec, paramBuf.data(), batch, innerCap, inputGrads);
      if (kept) // the forward kept every step: nothing to replay
        lanes.useKeptForward();
      auto [lo, hi] = m.groupRange(batch, g);
      for (int b = lo; b < hi; ++b)
        lanes.addLane(b, m.elements[size_t(b)]);
    }
#pragma omp parallel num_threads(groups) if (groups > 1)
    {
      used[size_t(threadId())] = 1;
      for (int g = threadId(); g < groups; g += teamSize())
        run(perGroup[size_t(g)]);
    }
  } else {
#pragma omp parallel for schedule(static, 1) if (batch > 1)
    for (int b = 0; b < batch; ++b) {
      used[size_t(threadId())] = 1;
      Backward lanes(m, genSpec, paramBuf.data(), batch, innerCap, inputGrads);
      lanes.addLane(b, m.thread());
      run(lanes);
    }
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
  for (int b = 0; b < B; ++b) // the first step keeps the start (stepKernels)
    writeState(s, values + b * n, m.cur.data() + b * m.S);
}

template <class T> void GeneratedExecutor<T>::writeState(int s, const T *values, T *block) const {
  T *slot = block + genSpec.stateOffsets[s];
  int64_t n = netInfo.states[size_t(s)].numel();
  if (genSpec.bf16States && genSpec.bf16States[s])
    writeTrace(slot, values, n); // rounded to bfloat16 in float (Bf16.h)
  else
    std::copy(values, values + n, slot);
}

template <class T> const T *GeneratedExecutor<T>::state(int s) const {
  Impl &m = *impl;
  if (m.stateViews.size() != netInfo.states.size())
    m.stateViews.resize(netInfo.states.size());
  int64_t n = netInfo.states[size_t(s)].numel();
  std::vector<T> &v = m.stateViews[size_t(s)];
  v.resize(size_t(B * n));
  for (int b = 0; b < B; ++b)
    readState(s, m.cur.data() + b * m.S, v.data() + b * n);
  return v.data();
}

template <class T> void GeneratedExecutor<T>::readState(int s, const T *block, T *values) const {
  const T *slot = block + genSpec.stateOffsets[s];
  int64_t n = netInfo.states[size_t(s)].numel();
  if (genSpec.bf16States && genSpec.bf16States[s])
    readTrace(slot, values, n); // widened from bfloat16 in float (Bf16.h)
  else
    std::copy(slot, slot + n, values);
}

template class dopa::GeneratedExecutor<float>;
template class dopa::GeneratedExecutor<double>;
