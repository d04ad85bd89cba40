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
  void backward(const T *const *const *outputGrads, const T *const *finalStateGrads);
  void truncate();
  int recordedSteps() const;
  const T *state(int s) const;
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

/// The generic executor behind the Network interface (float32). Owns its compiled graphs.
class GenericNetwork : public Network {
public:
  explicit GenericNetwork(CompiledNetwork compiled);
  ~GenericNetwork() override;

  const NetworkInfo &info() const override { return exec->info(); }
  float *params() override { return exec->params().data(); }
  float *grads() override { return exec->grads().data(); }
  void beginEpisode(int batch) override { exec->beginEpisode(batch); }
  int batch() const override { return exec->batch(); }
  void step(const float *const *inputs, float *const *outputs) override {
    exec->step(inputs, outputs);
  }
  void backward(const float *const *const *outputGrads,
                const float *const *finalStateGrads = nullptr) override {
    exec->backward(outputGrads, finalStateGrads);
  }
  void truncate() override { exec->truncate(); }
  int recordedSteps() const override { return exec->recordedSteps(); }
  const float *state(int s) const override { return exec->state(s); }
  size_t tapeBytes() const { return exec->tapeBytes(); }

private:
  std::unique_ptr<CompiledNetwork> compiled;
  std::unique_ptr<Executor<float>> exec;
};

} // namespace dopa
