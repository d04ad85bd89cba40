//===- Executor.h - The generic executor: the IR interpreted op by op ------===//
//
// The generic executor runs a network's forward and backward step graphs one op at a time,
// materializing every intermediate for the whole batch at every step and keeping on a tape the
// forward values the backward graph reads (store-everything BPTT), the way a framework with
// autograd does. It is the correctness oracle for generated code and the "generic code" that
// generated code is benchmarked against. Executor<double> is used for finite-difference checks.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/compiler/Passes.h"
#include "dopa/runtime/Network.h"

#include <memory>
#include <vector>

namespace dopa {

/// Build the runtime's description of a compiled network (names, shapes, initializers).
NetworkInfo makeNetworkInfo(const ir::Graph &forward);

/// What an Executor over these graphs holds for an episode of `steps` steps of `batch` elements, in
/// bytes of float, from the graphs alone (before it allocates; saturating at kUnboundedBytes): the
/// tape (every step's inputs and the forward values the backward graph reads), one step's values
/// of both graphs (every op allocates its result) and the index tables of broadcasts, reductions
/// and slices. Parameters, gradients and the caller's buffers are not included.
int64_t estimateEpisodeBytes(const ir::Graph &forward, const ir::Graph &backward, int64_t batch,
                             int64_t steps);

template <class T> class Executor {
public:
  /// The graphs must outlive the executor.
  Executor(const ir::Graph &forward, const ir::Graph &backward);
  ~Executor();

  const NetworkInfo &info() const { return netInfo; }
  std::vector<T> &params() { return paramBuf; }
  std::vector<T> &grads() { return gradBuf; }

  void beginEpisode(int batch);
  int batch() const { return B; }
  void step(const T *const *inputs, T *const *outputs);
  /// `inputGrads[t][k]` (optional; graphs differentiated with input gradients) receives dLoss/d
  /// input k at step t (B * numel values, overwritten).
  void backward(const T *const *const *outputGrads, const T *const *finalStateGrads,
                T *const *const *inputGrads = nullptr);
  void truncate();
  int recordedSteps() const;
  const T *state(int s) const;
  /// Replace state s (B * numel values); only while no step is recorded (std::logic_error else).
  void setState(int s, const T *values);
  /// Bytes held by the tape (the forward values kept for the backward pass).
  size_t tapeBytes() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl;
  NetworkInfo netInfo;
  std::vector<T> paramBuf, gradBuf;
  int B = 0;
};

extern template class Executor<float>;
extern template class Executor<double>;

namespace detail {
/// The compiled graphs a GenericNetwork owns, constructed before its executor (a base class).
struct OwnedGraphs {
  explicit OwnedGraphs(CompiledNetwork c)
      : compiled(std::make_unique<CompiledNetwork>(std::move(c))) {}
  std::unique_ptr<CompiledNetwork> compiled;
};
} // namespace detail

/// The generic executor behind the Network interface (float32). Owns its compiled graphs.
class GenericNetwork : private detail::OwnedGraphs, public ExecutorNetwork<Executor<float>> {
public:
  explicit GenericNetwork(CompiledNetwork c)
      : OwnedGraphs(std::move(c)), ExecutorNetwork(compiled->forward, compiled->backward) {}
  size_t tapeBytes() const { return executor().tapeBytes(); }
};

} // namespace dopa
