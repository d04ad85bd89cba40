//===- GeneratedImpl.h - The generated-code executor's state --------------===//
//
// Private to runtime/src: GeneratedExecutor<T>::Impl, everything the executor holds between calls
// (the step functions, the state and checkpoint buffers, the tape, the readouts' inputs, the
// per-thread and per-element buffers, the stage-major groups) and the small member functions that
// size them. Generated.cpp defines the executor's functions over it. Not installed.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "GeneratedDetail.h"
#include "dopa/runtime/SmallGemm.h"

#include <climits>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace dopa {

namespace detail {

/// Whether a batched product may write block `buf` of the step arguments.
inline bool isWritableBlock(StepBuffer buf) {
  switch (buf) {
  case StepBuffer::Next:
  case StepBuffer::Output:
  case StepBuffer::Saved:
  case StepBuffer::Scratch:
  case StepBuffer::GradPrev:
  case StepBuffer::Record: return true;
  default: return false;
  }
}
/// Whether `buf` names a block of the step arguments.
inline bool isBlock(StepBuffer buf) {
  switch (buf) {
  case StepBuffer::Input:
  case StepBuffer::State:
  case StepBuffer::GradOutput:
  case StepBuffer::GradNext: return true;
  default: return isWritableBlock(buf);
  }
}
} // namespace detail

template <class T> struct GeneratedExecutor<T>::Impl {
  const GeneratedSpec &spec;
  StepFn<T> fwd, bwd;
  // The replay step (GeneratedSpec::replayFloat), or null; whether this episode's replays run it
  // (element-major order), and then the slots per element the forward records with each step's
  // inputs on the tape (after the batch's inputs).
  StepFn<T> rep = nullptr;
  bool useReplay = false;
  int64_t recordedNumel = 0;
  int64_t S, saved, scratch;
  std::vector<int64_t> inputNumel, outputNumel;
  // What the step kernels write per output: the output, or a batched readout's input (cols).
  std::vector<int64_t> kernelNumel;
  int64_t inputTotal = 0, outputTotal = 0, maxOutput = 1; // outputTotal: of kernelNumel
  // Batched readouts, per readout: its inputs X of every recorded step, [steps][B][cols] (the
  // capacity is kept from episode to episode), and in the backward dLoss/dX likewise; dY gathered
  // into one block when the caller's output gradients are not one.
  std::vector<detail::AlignedBuf<T>> readoutX, readoutGrads;
  std::vector<int> readoutOf; // per output: its batched readout, or -1
  detail::AlignedBuf<T> readoutDy;

  /// Room in every readout's X for `steps` steps of `batch` elements, keeping the recorded ones
  /// (`kept` steps); grows to at least twice the old size, so that steps are added in O(1).
  void reserveReadouts(int64_t steps, int64_t kept, int batch) {
    for (int r = 0; r < spec.numReadouts; ++r) {
      int64_t per = batch * spec.readouts[r].cols;
      detail::AlignedBuf<T> &x = readoutX[size_t(r)];
      if (int64_t(x.size()) >= steps * per)
        continue;
      detail::AlignedBuf<T> grown(
          size_t(std::max<int64_t>(steps * per, kept > 0 ? 2 * int64_t(x.size()) : 0)));
      std::copy(x.data(), x.data() + kept * per, grown.data());
      x = std::move(grown);
    }
  }
  detail::AlignedBuf<T> cur, next;
  std::vector<detail::AlignedBuf<T>> checkpoints; // outer checkpoints: B * S each (kept for reuse)
  size_t numCheckpoints = 0;                      // in use this episode
  // Per step: inputs of all elements, input-major; then (useReplay) each element's recorded
  // next-state slots.
  std::vector<detail::AlignedBuf<T>> tape;
  int outer = INT_MAX;
  int plannedInner = 0; // the plan's replay length, when the outer interval was planned
  // Stage-major plans without replay (CheckpointPlan::replays == 0): the forward writes the
  // state before each of its first keepSteps steps and their saved values into the elements'
  // replay buffers, and the backward reads them there (0: off).
  int keepSteps = 0;
  /// Whether the forward kept every step of an episode of `steps` steps (then the backward is one
  /// segment and replays nothing), and the backward's outer segment length.
  bool keptAll(int steps) const { return stageMajor && steps <= keepSteps; }
  int segmentLength(int steps) const { return keptAll(steps) ? steps : std::min(outer, steps); }
  struct Thread {
    detail::AlignedBuf<T> scratch, saved, outputs, grads, gradA, gradB, replay, replaySaved, inner,
        tmp, record;
    detail::AlignedBuf<T>
        prologue; // carried products: the prologue's saved values, then its record
    // An element's input and output pointers for one step (runElementStep).
    std::vector<const T *> inPointers;
    std::vector<T *> outPointers;
  };
  // Carried products (GeneratedSpec::prologueForwardFloat): the prologue's step functions, or null.
  StepFn<T> proFwd = nullptr, proBwd = nullptr;
  int64_t proNumel = 0; // its saved and record blocks, one after the other

  /// The carried states of elements [0, batch) of `block` (B * S values) from their other states:
  /// the prologue, before the first recorded step, its next block in `next` (stage-major) or the
  /// thread's spare state.
  void runPrologue(T *block, const T *params, int batch) {
    if (stageMajor)
      prepareElements(batch);
    else
      prepareThreads();
#pragma omp parallel for schedule(static) if (batch > 1)
    for (int b = 0; b < batch; ++b) {
      Thread &t = stageMajor ? elements[size_t(b)] : thread();
      T *spare = stageMajor ? next.data() + b * S : t.tmp.data();
      proFwd(detail::forwardArgs<T>(params, nullptr, block + b * S, spare, nullptr,
                                    t.prologue.data(), t.scratch.data()));
      std::copy(spare, spare + S, block + b * S);
    }
  }
  /// Element-major with states updated in place (GeneratedSpec::forwardCopies): the forward
  /// writes the traces over `cur` and the other states into the thread's spare state (tmp), from
  /// which they are copied back; `next` is not allocated.
  bool inPlace = false;
  std::vector<Thread> threads;
  // Stage-major order (StageOrder): the step functions' stages, per stage its batched product
  // or -1, this episode's order, every element's buffers (the gradient accumulators stay per
  // thread), and a batched product's gathered operand and result.
  const StepFn<T> *fwdStages = nullptr, *bwdStages = nullptr;
  std::vector<int> fwdProduct, bwdProduct;
  bool stageMajor = false;
  std::vector<Thread> elements;
  detail::AlignedBuf<T> productX, productY;
  std::vector<T> zeros;
  mutable std::vector<std::vector<T>> stateViews;

  explicit Impl(const GeneratedSpec &s)
      : spec(s), S(s.stateNumel), saved(s.savedNumel), scratch(s.scratchNumel) {
    // The spec's function of this precision: `f` for float, `d` for double.
    auto pick = [](auto f, auto d) {
      if constexpr (std::is_same_v<T, float>)
        return f;
      else
        return d;
    };
    fwd = pick(s.forwardFloat, s.forwardDouble);
    bwd = pick(s.backwardFloat, s.backwardDouble);
    rep = pick(s.replayFloat, s.replayDouble);
    fwdStages = pick(s.forwardStagesFloat, s.forwardStagesDouble);
    bwdStages = pick(s.backwardStagesFloat, s.backwardStagesDouble);
    proFwd = pick(s.prologueForwardFloat, s.prologueForwardDouble);
    proBwd = pick(s.prologueBackwardFloat, s.prologueBackwardDouble);
    if (!s.replayFloat || !s.replayDouble) // both or neither (the plan's layoutOf counts so)
      rep = nullptr;
    if (!proFwd != !proBwd)
      throw std::logic_error(std::string("network '") + s.name +
                             "': a prologue needs both its forward and its backward");
    if (proFwd)
      proNumel = s.prologueSavedNumel + s.prologueRecordNumel;
    auto index = [&s](std::vector<int> &of, int stages, const BatchedProduct *products, int n) {
      of.assign(size_t(stages), -1);
      for (int p = 0; p < n; ++p) {
        if (products[p].stage < 0 || products[p].stage >= stages)
          throw std::logic_error(std::string("network '") + s.name +
                                 "': a batched product's stage is not in its step's stage table");
        // Checked here, not where the products run (inside parallel regions, where a throw
        // would end the process).
        if (!detail::isBlock(products[p].xBuf) || !detail::isWritableBlock(products[p].yBuf))
          throw std::logic_error(std::string("network '") + s.name +
                                 "': a batched product names an unknown or read-only block");
        of[size_t(products[p].stage)] = p;
      }
    };
    index(fwdProduct, s.numForwardStages, s.forwardProducts, s.numForwardProducts);
    index(bwdProduct, s.numBackwardStages, s.backwardProducts, s.numBackwardProducts);
  }

  /// Every element's forward buffers (stage-major).
  void prepareElements(int batch) {
    elements.resize(size_t(batch)); // (a larger batch's extra elements are released)
    for (Thread &t : elements) {
      t.scratch.resize(size_t(std::max<int64_t>(scratch, 1)));
      t.saved.resize(size_t(std::max<int64_t>(saved, 1)));
      t.outputs.resize(size_t(std::max<int64_t>(outputTotal, 1)));
      t.prologue.resize(size_t(proNumel));
    }
  }

  /// One forward or backward step for the `n` consecutive elements first, first + 1, ... with
  /// args[0..n), stage by stage on the calling thread: a batched product as one GEMM over the n
  /// elements (its operands in the elements' rows of productX and productY), any other stage
  /// element after element (a backward stage accumulates into the calling thread's gradients).
  void runStages(bool backward, const StepArgs<T> *args, int n, int first);
  void batchedProduct(const BatchedProduct &p, const T *packed, const StepArgs<T> *args, int n,
                      int first);
  /// smallGemm's M for each forward and backward batched product: W^T, laid out once per
  /// recording (the parameters do not change within one), for a product Y = X W^T; W itself (an
  /// empty buffer) for Y = X W; none (an empty buffer) for shapes Eigen's GEMM runs.
  // Not in heldBytes() nor in the memory plan (Plan.cpp): copies of parameters, like the
  // parameters themselves (160 KiB for a 200 x 200 weight), and one decoder panel per thread.
  std::vector<detail::AlignedBuf<T>> packedFwd, packedBwd;
  detail::AlignedBuf<T> readoutPanels; // readoutForward's W^T of a chunk, one per thread
  void packProducts(bool backward, const T *params) {
    const BatchedProduct *products = backward ? spec.backwardProducts : spec.forwardProducts;
    std::vector<detail::AlignedBuf<T>> &packed = backward ? packedBwd : packedFwd;
    packed.resize(size_t(backward ? spec.numBackwardProducts : spec.numForwardProducts));
    for (size_t i = 0; i < packed.size(); ++i) {
      const BatchedProduct &p = products[i];
      if (p.transposed || !fitsSmallGemm<T>(p.cols, p.rows)) {
        packed[i].resize(0);
        continue;
      }
      packed[i].resize(size_t(p.rows * p.cols));
      detail::layOutTranspose(params + p.weightOffset, p.rows, p.cols, packed[i].data());
    }
  }

  /// Stage-major on several threads: the batch in `groups` = min(threads, batch) contiguous
  /// groups, fixed at beginEpisode (the forward and its replays group alike), each run by one
  /// thread on its own: no fork or join per stage. Element range of group g.
  int groups = 1;
  std::pair<int, int> groupRange(int batch, int g) const {
    return {int(int64_t(batch) * g / groups), int(int64_t(batch) * (g + 1) / groups)};
  }

  /// Allocate every thread's forward buffers (before a parallel region: allocation is serial).
  void prepareThreads() {
    if (int(threads.size()) < detail::maxThreads())
      threads.resize(size_t(detail::maxThreads()));
    for (Thread &t : threads) {
      t.scratch.resize(size_t(std::max<int64_t>(scratch, 1)));
      t.saved.resize(size_t(std::max<int64_t>(saved, 1)));
      t.outputs.resize(size_t(std::max<int64_t>(outputTotal, 1)));
      t.prologue.resize(size_t(proNumel));
      t.tmp.resize(size_t(S)); // the spare state (runPrologue, an in-place forward)
      t.inPointers.resize(std::max<size_t>(inputNumel.size(), 1));
      t.outPointers.resize(std::max<size_t>(outputNumel.size(), 1));
    }
  }
  Thread &thread() { return threads[size_t(detail::threadId())]; }

  /// The blocks' sizes as the planner sees them: layoutOf(), the function dopac --emit=plan and
  /// `dopa` use, so the executor's plan is theirs (set by the executor's constructor).
  BlockLayout layout;
  /// The planner's view of this network (sizes in bytes of T).
  PlanInputs planInputs(int batch, int steps, long long budget) const {
    return dopa::planInputs(layout, int64_t(sizeof(T)), batch, steps, detail::maxThreads(), budget,
                            0, stageMajor);
  }
};

} // namespace dopa
