//===- CudaExecutor.h - Running generated CUDA networks over a batch -------===//
//
// CudaExecutor runs a network's generated CUDA kernels: one launch per step for the whole batch
// (a thread block per batch element), parameters and states in device memory, inputs and outputs
// copied per step because the trainer's environment runs on the host. BPTT uses the CPU runtime's
// checkpoint scheme batch-wide: the forward keeps the states every `checkpointEvery` steps
// (default: only the episode's start), the backward replays each segment on the device storing its
// states and saved values, then runs the backward kernels in reverse: the whole segment in one
// launch where the kernels have a segment kernel, else a launch per step. Deferred outer-product
// gradients are summed with one cuBLAS GEMM over all steps and batch elements. CudaNetwork is the
// float Network.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/cuda/CudaSpec.h"
#include "dopa/runtime/Generated.h"

#include <memory>
#include <vector>

namespace dopa {

/// Whether a CUDA device is usable (false without a driver or a GPU).
bool cudaDeviceAvailable();
/// Why no CUDA device is usable ("" when one is): "no CUDA device", or CUDA's error (e.g. a driver
/// older than this build's CUDA runtime).
std::string cudaDeviceProblem();
/// How many CUDA devices this process sees (0 without a driver or a GPU).
int cudaDeviceCount();
/// The current device's name and its limits, for reports ("NVIDIA H100 ..., 132 SMs, ...").
std::string cudaDeviceDescription();
/// Make GPU `localRank` modulo the number of GPUs this process's current device (so that the ranks
/// of a data-parallel job on one machine spread over its GPUs); returns the device's ordinal.
/// Call it before creating a CudaExecutor (its memory lives on the device current at creation).
int cudaUseDeviceFor(int localRank);

template <class T> class CudaExecutor {
public:
  explicit CudaExecutor(const CudaSpec &spec);
  ~CudaExecutor();

  const NetworkInfo &info() const { return netInfo; }
  std::vector<T> &params() { return paramBuf; }
  std::vector<T> &grads() { return gradBuf; }

  void beginEpisode(int batch);
  int batch() const { return B; }
  void step(const T *const *inputs, T *const *outputs);
  void backward(const T *const *const *outputGrads, const T *const *finalStateGrads);
  void truncate();
  int recordedSteps() const { return numSteps; }
  const T *state(int s) const;
  /// Replace state s (B * numel values); only while no step is recorded (std::logic_error else).
  void setState(int s, const T *values);

  /// Keep the states every k steps (0: only the episode's start; the backward replays the
  /// whole episode, storing everything, which fits a GPU at the paper's sizes).
  void setCheckpointEvery(int k) { checkpointEvery = k; }
  /// Run each backward segment (its replays and its backward steps) in one launch (the default,
  /// where the generated kernels have a segment kernel; DOPA_CUDA_STEPWISE=1 turns it off), or
  /// launch every step on its own. Both give the same gradients, up to the order of atomic adds.
  void setSegmentLaunch(bool on) { segmentLaunch = on; }
  /// Wait for this executor's work and report the first error (kernel launches are asynchronous).
  /// The work goes to the calling thread's default stream: drive an executor from one thread.
  void synchronize();

private:
  struct Impl;
  std::unique_ptr<Impl> impl;
  const CudaSpec &cudaSpec;
  const GeneratedSpec &genSpec;
  NetworkInfo netInfo;
  std::vector<T> paramBuf, gradBuf;
  int B = 0, numSteps = 0, checkpointEvery = 0;
  bool segmentLaunch = true;
};

extern template class CudaExecutor<float>;
extern template class CudaExecutor<double>;

/// The float Network over generated CUDA.
using CudaNetwork = ExecutorNetwork<CudaExecutor<float>>;

} // namespace dopa
