//===- LaneBackward.h - The generated executor's backward driver ----------===//
//
// Private to runtime/src: BPTT over a group of batch elements ("lanes") for GeneratedExecutor,
// written once for both orders: one lane per thread (element-major) or one thread's group of
// elements in lockstep (stage-major). Templated on the executor's Impl, whose buffers and stage
// runner it uses.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "GeneratedDetail.h"

#include <vector>

namespace dopa::detail {

/// The backward pass of a group of batch elements ("lanes"): replays their segments from the
/// outer checkpoints (with inner checkpoints when a segment is longer than the replay buffer),
/// runs the backward steps in reverse, then adds the deferred outer-product gradients. Element-
/// major: one lane, the calling thread's buffers, the step functions whole. Stage-major: a group
/// of consecutive elements (one thread's share of the batch) in lockstep, each in its own
/// buffers, each step's stages run for all of them at once on the calling thread
/// (Impl::runStages: batched products as GEMMs, the other stages element after element).
template <class T, class Impl, class Thread> class LaneBackward {
public:
  LaneBackward(Impl &m, const GeneratedSpec &spec, const T *params, int batch, int innerCap,
               T *const *const *inputGrads)
      : m(m), spec(spec), params(params), batch(batch), innerCap(innerCap), S(m.S),
        inputGrads(inputGrads) {}

  /// The forward kept every step's state and saved values in the lanes' replay buffers (a plan
  /// without replay): segment() runs the backward steps from them directly.
  void useKeptForward() { kept = true; }

  /// Add element b, working in buffers t.
  void addLane(int b, Thread &t) {
    Lane &l = lanes.emplace_back();
    l.b = b;
    l.t = &t;
    l.inPtr.resize(m.inputNumel.size());
    l.gOut.resize(m.outputNumel.size());
    l.outPtr.resize(m.outputNumel.size());
    l.gIn.resize(m.inputNumel.size());
    l.gNext = t.gradA.data();
    l.gPrev = t.gradB.data();
    int64_t at = 0;
    for (size_t k = 0; k < l.outPtr.size(); ++k) {
      l.outPtr[k] = t.outputs.data() + at;
      at += m.kernelNumel[k];
    }
    // Input gradients the caller does not want are written here and dropped.
    if (spec.inputGradients && !m.inputNumel.empty())
      l.discard.resize(size_t(*std::max_element(m.inputNumel.begin(), m.inputNumel.end()) + 1));
    args.resize(lanes.size());
  }

  /// dLoss/d final state: zero, or each lane's part of `finalStateGrads` (per state).
  void seedFinalStateGrads(const NetworkInfo &info, const T *const *finalStateGrads) {
    for (Lane &l : lanes) {
      std::fill(l.gNext, l.gNext + S, T(0));
      if (!finalStateGrads)
        continue;
      for (size_t s = 0; s < info.states.size(); ++s)
        if (finalStateGrads[s]) {
          int64_t n = info.states[s].numel();
          std::copy(finalStateGrads[s] + l.b * n, finalStateGrads[s] + (l.b + 1) * n,
                    l.gNext + spec.stateOffsets[s]);
        }
    }
  }

  /// Backward through one outer segment [from, to) that starts at the states in `block` (every
  /// element's, B * S values).
  void segment(const T *block, int from, int to, const T *const *const *outputGrads) {
    int L = to - from;
    // One segment, [0, steps), whose states and saved values the forward kept (the executor
    // plans it so; any other segment is replayed as usual).
    if (kept && from == 0 && L <= innerCap) {
      backwardSteps(from, to, outputGrads);
      return;
    }
    if (L <= innerCap) {
      for (Lane &l : lanes)
        std::copy(block + l.b * S, block + (l.b + 1) * S, l.t->replay.data());
      forwardFrom(from, to);
      backwardSteps(from, to, outputGrads);
      return;
    }
    // Two levels: keep the state every innerCap steps of this segment, then replay each
    // sub-segment storing everything.
    keepInnerCheckpoints(block, from, to);
    for (int sub = int(ceilDiv(L, innerCap)) - 1; sub >= 0; --sub) {
      int f2 = from + sub * innerCap, t2 = std::min(to, f2 + innerCap);
      for (Lane &l : lanes)
        std::copy(l.t->inner.data() + sub * S, l.t->inner.data() + (sub + 1) * S,
                  l.t->replay.data());
      forwardFrom(f2, t2);
      backwardSteps(f2, t2, outputGrads);
    }
  }

  /// Deferred outer-product gradients: dW += A^T B over each lane's steps, into the lane's
  /// gradients (element-major) or the running thread's (stage-major).
  void deferredGradients(int steps) {
    int n = int(lanes.size());
    bool stageMajor = m.stageMajor;
    for (int i = 0; i < n; ++i) {
      const Thread &t = *lanes[size_t(i)].t;
      T *grads = stageMajor ? m.thread().grads.data() : lanes[size_t(i)].t->grads.data();
      for (int d = 0; d < spec.numDeferred; ++d) {
        const DeferredOuter &o = spec.deferred[d];
        ConstStridedMatMap<T> A(t.record.data() + o.offsetA, steps, o.rows,
                                Eigen::OuterStride<>(spec.recordNumel));
        ConstStridedMatMap<T> Bm(t.record.data() + o.offsetB, steps, o.cols,
                                 Eigen::OuterStride<>(spec.recordNumel));
        Eigen::Map<RowMajorMat<T>> G(grads + o.paramOffset, o.rows, o.cols);
        G.noalias() += A.transpose() * Bm;
      }
    }
  }

  /// Carried products: the prologue's backward for every lane, after the first step's (the
  /// gradient of the carried states at the start to the parameters and the other states), from
  /// the states at the start in `block` (every element's); then its deferred outer products.
  void prologueBackward(const T *block) {
    if (!m.proBwd)
      return;
    for (Lane &l : lanes) {
      Thread &t = *l.t;
      T *saved = t.prologue.data(), *record = saved + spec.prologueSavedNumel;
      const T *state = block + l.b * S;
      if (spec.prologueSavedNumel > 0) // the values its backward reads (none in the examples)
        m.proFwd(
            forwardArgs<T>(params, nullptr, state, t.tmp.data(), nullptr, saved, t.scratch.data()));
      T *grads = m.stageMajor ? m.thread().grads.data() : t.grads.data();
      StepArgs<T> a;
      a.params = params;
      a.state = state;
      a.saved = saved;
      a.scratch = t.scratch.data();
      a.gradOutputs = l.gOut.data(); // (the prologue has no outputs)
      a.gradNext = l.gNext;
      a.gradPrev = l.gPrev;
      a.grads = grads;
      a.record = record;
      m.proBwd(a);
      finishStep(l, spec.numPrologueGradCopies, spec.prologueGradCopies);
      for (int d = 0; d < spec.numPrologueDeferred; ++d) {
        const DeferredOuter &o = spec.prologueDeferred[d];
        Eigen::Map<RowMajorMat<T>> G(grads + o.paramOffset, o.rows, o.cols);
        G.noalias() +=
            Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>(record + o.offsetA, o.rows) *
            Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>(record + o.offsetB, o.cols);
      }
    }
  }

private:
  struct Lane {
    int b = 0;
    Thread *t = nullptr;
    std::vector<const T *> inPtr, gOut;
    std::vector<T *> outPtr, gIn;
    std::vector<T> discard;
    T *gNext = nullptr, *gPrev = nullptr;
    T *a0 = nullptr, *a1 = nullptr; // keepInnerCheckpoints' state pair
  };

  /// After a backward step: dLoss/d the states at its start into l.gNext. A step that wrote some
  /// states' gradients over dLoss/d state' (the traces', in place) left the others in l.gPrev:
  /// their slots (GeneratedSpec::gradCopies) are copied over. Otherwise the blocks swap.
  void finishStep(Lane &l, int numCopies, const int64_t *copies) {
    if (numCopies < 0) {
      std::swap(l.gNext, l.gPrev);
      return;
    }
    copySlots(l.gPrev, l.gNext, numCopies, copies);
  }

  /// One step for every lane with args[i]: the forward (the replay step, where the executor has
  /// one) or the backward step.
  void run(bool backward) {
    if (m.stageMajor) // the lanes are consecutive elements (Impl::groupRange)
      m.runStages(backward, args.data(), int(args.size()), lanes.front().b);
    else
      for (const StepArgs<T> &a : args)
        (backward ? m.bwd : m.useReplay ? m.rep : m.fwd)(a);
  }

  /// Before the replay step of `step` writes the lane's next states into `next`: the slots it
  /// leaves out, as the forward recorded them (GeneratedSpec::replayRecorded).
  void restoreRecorded(const Lane &l, int step, T *next) const {
    if (m.useReplay)
      unpackSlots(m.tape[size_t(step)].data() + batch * m.inputTotal + l.b * m.recordedNumel, next,
                  spec.numReplayRecorded, spec.replayRecorded);
  }

  /// Point the lane's inPtr at its element's inputs of `step` (on the tape).
  void stepInputs(Lane &l, int step) {
    const T *tapeIn = m.tape[size_t(step)].data();
    int64_t at = 0;
    for (size_t k = 0; k < l.inPtr.size(); ++k) {
      l.inPtr[k] = tapeIn + at + l.b * m.inputNumel[k];
      at += batch * m.inputNumel[k];
    }
  }

  /// Forward over [from, to) from the state in each lane's replay[0], writing the state before
  /// each step into replay[step - from] and its saved values into replaySaved; the state after
  /// the last step goes to `tmp`.
  void forwardFrom(int from, int to) {
    for (int step = from; step < to; ++step) {
      int r = step - from;
      for (size_t i = 0; i < lanes.size(); ++i) {
        Lane &l = lanes[i];
        stepInputs(l, step);
        T *states = l.t->replay.data();
        T *next = step + 1 < to ? states + (r + 1) * S : l.t->tmp.data();
        restoreRecorded(l, step, next);
        args[i] = forwardArgs<T>(params, l.inPtr.data(), states + r * S, next, l.outPtr.data(),
                                 l.t->replaySaved.data() + r * m.saved, l.t->scratch.data());
      }
      run(false);
    }
  }

  /// Step once through [from, to - 1), one state buffer pair per lane, keeping the state every
  /// innerCap steps in the lane's `inner`.
  void keepInnerCheckpoints(const T *block, int from, int to) {
    for (Lane &l : lanes) {
      const T *start = block + l.b * S;
      std::copy(start, start + S, l.t->inner.data());
      l.a0 = l.t->replay.data();
      l.a1 = l.t->tmp.data();
      std::copy(start, start + S, l.a0);
    }
    for (int step = from; step < to - 1; ++step) {
      for (size_t i = 0; i < lanes.size(); ++i) {
        Lane &l = lanes[i];
        stepInputs(l, step);
        restoreRecorded(l, step, l.a1);
        args[i] = forwardArgs<T>(params, l.inPtr.data(), l.a0, l.a1, l.outPtr.data(),
                                 l.t->saved.data(), l.t->scratch.data());
      }
      run(false);
      int r = step + 1 - from;
      for (Lane &l : lanes) {
        std::swap(l.a0, l.a1);
        if (r % innerCap == 0)
          std::copy(l.a0, l.a0 + S, l.t->inner.data() + (r / innerCap) * S);
      }
    }
  }

  /// The backward steps of [from, to), in reverse, from the replayed states and saved values.
  void backwardSteps(int from, int to, const T *const *const *outputGrads) {
    for (int step = to - 1; step >= from; --step) {
      int r = step - from;
      for (size_t i = 0; i < lanes.size(); ++i) {
        Lane &l = lanes[i];
        stepInputs(l, step);
        for (size_t k = 0; k < l.gOut.size(); ++k) {
          if (int ro = m.readoutOf[k]; ro >= 0) { // dLoss/d the readout's input (readoutBackward)
            l.gOut[k] = m.readoutGrads[size_t(ro)].data() +
                        (int64_t(step) * batch + l.b) * spec.readouts[ro].cols;
            continue;
          }
          const T *g = outputGrads && outputGrads[step] ? outputGrads[step][k] : nullptr;
          l.gOut[k] = g ? g + l.b * m.outputNumel[k] : m.zeros.data();
        }
        StepArgs<T> &a = args[i];
        a = StepArgs<T>();
        a.params = params;
        a.inputs = l.inPtr.data();
        a.state = l.t->replay.data() + r * S;
        a.saved = l.t->replaySaved.data() + r * m.saved;
        a.scratch = l.t->scratch.data();
        a.gradOutputs = l.gOut.data();
        a.gradNext = l.gNext;
        a.gradPrev = l.gPrev;
        a.grads = l.t->grads.data(); // stage-major: the running thread's (runStages)
        a.record = l.t->record.data() + int64_t(step) * spec.recordNumel;
        if (spec.inputGradients) {
          for (size_t k = 0; k < l.gIn.size(); ++k) {
            T *g = inputGrads && inputGrads[step] ? inputGrads[step][k] : nullptr;
            l.gIn[k] = g ? g + l.b * m.inputNumel[k] : l.discard.data();
          }
          a.gradInputs = l.gIn.data();
        }
      }
      run(true);
      for (Lane &l : lanes)
        finishStep(l, spec.numGradCopies, spec.gradCopies);
    }
  }

  Impl &m;
  const GeneratedSpec &spec;
  const T *params;
  int batch, innerCap;
  bool kept = false;
  int64_t S;
  T *const *const *inputGrads;
  std::vector<Lane> lanes;
  std::vector<StepArgs<T>> args; // per lane: the step being run
};

} // namespace dopa::detail
