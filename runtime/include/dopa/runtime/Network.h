//===- Network.h - The interface every network implements ------------------===//
//
// Generated networks and the generic executor implement Network, so trainers, tests and benchmarks
// take any of them. Conventions:
//   - every tensor is float32; the batch is the leading axis: an input or output buffer for one
//     step holds B * numel floats, batch element after batch element;
//   - parameters and their gradients are one flat allocation each, laid out in info().params order;
//   - integer inputs (token ids) are passed as floats holding exact integers;
//   - backward() accumulates (+=) into grads(); zeroGrads() clears them.
// The runtime depends on the C++ standard library and Eigen only: deployed networks do not need the
// compiler.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Tensor.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace dopa {

/// How a parameter or state starts (the spec's initializer, resolved to numbers).
struct InitSpec {
  enum Kind { Constant, Uniform, Normal };
  Kind kind = Constant;
  double a = 0; // constant value, uniform low, normal mean
  double b = 0; // uniform high, normal std
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape; // per batch element
  bool isInt = false;         // inputs only
  InitSpec init;              // params and states
  /// A dropout mask (the spec's `mask`) when >= 0: the probability of a zero. Masks drawn per
  /// batch element are inputs, masks shared by the batch parameters (initialized to 1); neither
  /// is learned. DropoutMasks (dopa/runtime/Masks.h) draws them.
  double dropout = -1;
  bool isMask() const { return dropout >= 0; }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
};

struct NetworkInfo {
  std::string name;
  std::vector<TensorInfo> params, inputs, outputs, states;
  /// Offset of each parameter in the flat buffer.
  std::vector<size_t> paramOffsets;
  size_t numParams = 0;
  /// The learned parameters' elements: numParams without the shared dropout masks.
  size_t numLearned() const;

  int findParam(const std::string &name) const;
  int findInput(const std::string &name) const;
  int findOutput(const std::string &name) const;
};

class Network {
public:
  virtual ~Network() = default;

  virtual const NetworkInfo &info() const = 0;

  /// The flat parameter and gradient buffers (info().numParams floats each). Change the
  /// parameters only between recorded windows (after backward(), truncate() or beginEpisode()):
  /// the steps of one window and its backward must see the same values.
  virtual float *params() = 0;
  virtual float *grads() = 0;
  void zeroGrads();

  /// Named views into the flat buffers ("w", "i2h.weight", "l1.alpha"); throws for unknown names.
  Tensor<float> param(const std::string &name);
  Tensor<float> grad(const std::string &name);

  /// Start episodes for `batch` elements: states take their initial values, the history is cleared.
  virtual void beginEpisode(int batch) = 0;
  virtual int batch() const = 0;

  /// One forward step. `inputs[k]` holds B * numel floats for input k; `outputs[k]` receives
  /// B * numel floats for output k. The step is recorded for backward().
  virtual void step(const float *const *inputs, float *const *outputs) = 0;

  /// A whole sequence: `inputs[t][k]` and `outputs[t][k]` for t < steps, recorded for backward().
  /// The same as `steps` step() calls (by default it is them); an executor may batch work across
  /// the steps (generated code: the batched readouts as one GEMM over all steps, faster when the
  /// outputs of consecutive steps are consecutive in memory).
  virtual void forward(int steps, const float *const *const *inputs, float *const *const *outputs);

  /// Closed-loop episodes one element at a time: for each batch element b (the elements spread
  /// over the engine's threads, an element's steps in order on one thread), for t < steps,
  /// observe(b, t, x) writes element b's inputs of step t (x[k]: input k's numel floats), the step
  /// runs, and react(b, t, y) reads its outputs (y[k]: output k's numel floats, valid during the
  /// call) before step t + 1 is observed. Recorded for backward() as `steps` step() calls would
  /// be, with the same values. The callbacks run concurrently for different elements, so they
  /// must touch only element b's data. Returns false, having done nothing, where the engine cannot
  /// run this way (the default; the generated engine can, for networks that run element-major and
  /// have no batched readouts or integer inputs); step() then does the work in lock step. When a
  /// callback throws, the first exception is rethrown once every thread has stopped, and the
  /// episode is gone: nothing is recorded and step() refuses until the next beginEpisode().
  using ElementObserveFn = std::function<void(int b, int t, float *const *inputs)>;
  using ElementReactFn = std::function<void(int b, int t, const float *const *outputs)>;
  virtual bool runElements(int steps, const ElementObserveFn &observe,
                           const ElementReactFn &react) {
    (void)steps, (void)observe, (void)react;
    return false;
  }

  /// Backpropagation through every step recorded since beginEpisode() or truncate().
  /// `outputGrads[t][k]` is dLoss/d output k at recorded step t (B * numel floats, or null for
  /// zero); `finalStateGrads[s]` (optional, may be null) is dLoss/d state s after the last step.
  /// Accumulates parameter gradients into grads(), then clears the record.
  virtual void backward(const float *const *const *outputGrads,
                        const float *const *finalStateGrads = nullptr) = 0;

  /// Truncated BPTT: keep the current state values but forget the recorded steps.
  virtual void truncate() = 0;

  /// Number of steps recorded for backward().
  virtual int recordedSteps() const = 0;

  /// The current value of state s (B * numel floats).
  virtual const float *state(int s) const = 0;
  /// Replace the value of state s (B * numel floats), e.g. to continue a checkpointed run; only
  /// while nothing is recorded (right after beginEpisode() or truncate()): std::logic_error else.
  virtual void setState(int s, const float *values) = 0;

private:
  Tensor<float> viewOf(float *base, const std::string &name);
};

/// The float Network over an executor: GeneratedExecutor<float>, CudaExecutor<float> and the
/// generic Executor<float> have the same member functions, and this one adapter forwards to them
/// (forward() to the executor's when it has one: GeneratedExecutor; else to step() per step).
template <class Exec> class ExecutorNetwork : public Network {
public:
  template <class... Args>
  explicit ExecutorNetwork(Args &&...args) : exec(std::forward<Args>(args)...) {}

  const NetworkInfo &info() const override { return exec.info(); }
  float *params() override { return exec.params().data(); }
  float *grads() override { return exec.grads().data(); }
  void beginEpisode(int batch) override { exec.beginEpisode(batch); }
  int batch() const override { return exec.batch(); }
  void step(const float *const *inputs, float *const *outputs) override {
    exec.step(inputs, outputs);
  }
  void forward(int steps, const float *const *const *inputs,
               float *const *const *outputs) override {
    if constexpr (requires { exec.forward(steps, inputs, outputs); })
      exec.forward(steps, inputs, outputs);
    else
      Network::forward(steps, inputs, outputs);
  }
  bool runElements(int steps, const ElementObserveFn &observe,
                   const ElementReactFn &react) override {
    if constexpr (requires { exec.runElements(steps, observe, react); })
      return exec.runElements(steps, observe, react);
    else
      return Network::runElements(steps, observe, react);
  }
  void backward(const float *const *const *outputGrads,
                const float *const *finalStateGrads = nullptr) override {
    exec.backward(outputGrads, finalStateGrads);
  }
  void truncate() override { exec.truncate(); }
  int recordedSteps() const override { return exec.recordedSteps(); }
  const float *state(int s) const override { return exec.state(s); }
  void setState(int s, const float *values) override { exec.setState(s, values); }
  Exec &executor() { return exec; }
  const Exec &executor() const { return exec; }

private:
  Exec exec;
};

/// Fill `params` (laid out as info.params) from each parameter's initializer, deterministically
/// from `seed`. Uniform and normal draws follow the distributions PyTorch's initializers use.
void initParams(const NetworkInfo &info, float *params, uint64_t seed);

} // namespace dopa
