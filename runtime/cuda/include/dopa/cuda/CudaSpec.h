//===- CudaSpec.h - What generated CUDA networks export --------------------===//
//
// The CUDA emitter prints, per network, a forward and a backward kernel (`splits` thread blocks per
// batch element, the fused stages of the C++ kernels mapped onto their threads) and host launchers
// taking a BatchArgs: the same buffers as StepArgs for the whole batch, with per-element strides;
// and a segment kernel that runs a backward segment's replays and backward steps in one launch.
// The description and the state layout are the C++ network's, which CudaSpec points to; the saved,
// scratch and record blocks and the deferred gradients are the CUDA kernels' own (the C++ kernels
// may differ: batched readouts are C++ only). No dependencies beyond StepArgs.h: device code
// includes this header.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/StepArgs.h"

#include <cstdint>

namespace dopa {

struct GeneratedSpec;

/// Inputs and outputs a CUDA kernel takes at most.
constexpr int kMaxIO = 16;

/// One step for the whole batch on the device. Per-element pointers are base + b * stride.
template <class T> struct BatchArgs {
  int batch = 0;
  int firstElement = 0, splits = 1; // set by the launcher: blocks per element
  int numInputs = 0, numOutputs = 0;
  const T *params = nullptr;
  T *grads = nullptr;
  const T *inputs[kMaxIO] = {};
  int64_t inputNumel[kMaxIO] = {};
  T *outputs[kMaxIO] = {};
  const T *gradOutputs[kMaxIO] = {}; // never null (zeros)
  int64_t outputNumel[kMaxIO] = {};
  const T *state = nullptr;
  T *next = nullptr;
  T *gradNext = nullptr; // (StepArgs::gradNext is writable: the C++ target updates in place)
  T *gradPrev = nullptr;
  int64_t stateStride = 0;
  T *saved = nullptr;
  int64_t savedStride = 0;
  T *scratch = nullptr;
  int64_t scratchStride = 0;
  T *record = nullptr;
  int64_t recordStride = 0;
};

template <class T> using BatchFn = void (*)(const BatchArgs<T> &, void *stream);

/// A backward segment in one launch: `replays` forward steps replayed from the segment's
/// checkpoint, then `backwards` backward steps, newest first. `steps` (device memory) holds their
/// arguments, the replays' first; the launcher sets firstElement and splits, as for a step.
template <class T> struct SegmentArgs {
  int batch = 0;
  int firstElement = 0, splits = 1;
  const BatchArgs<T> *steps = nullptr;
  int replays = 0, backwards = 0;
};

template <class T> using SegmentFn = void (*)(const SegmentArgs<T> &, void *stream);

struct CudaSpec {
  const char *name;
  const GeneratedSpec &(*cpu)(); // the C++ network: description and layout
  BatchFn<float> forwardFloat, backwardFloat;
  BatchFn<double> forwardDouble, backwardDouble;
  int threadsPerBlock;
  // The CUDA kernels' layout: per element and step, saved and record values; scratch per element;
  // the deferred outer-product gradients over the record block. The network's states sit at the
  // C++ network's offsets (stateOffsets); the C++ block may be longer (its carried products).
  int64_t stateNumel, savedNumel, scratchNumel, recordNumel;
  int numDeferred;
  const DeferredOuter *deferred;
  // The backward segment in one launch (null in kernels generated before it: a launch per step).
  SegmentFn<float> segmentFloat = nullptr;
  SegmentFn<double> segmentDouble = nullptr;
};

} // namespace dopa
