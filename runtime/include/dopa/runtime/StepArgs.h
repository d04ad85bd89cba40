//===- StepArgs.h - The calling convention of generated step functions -----===//
//
// What a generated forward or backward step (C++ or CUDA) receives for one batch element, and the
// description of deferred outer-product gradients. Plain structs with no dependencies, so that CUDA
// device code includes them too.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>

namespace dopa {

/// The arguments of one generated step function (one batch element, one step).
template <class T> struct StepArgs {
  const T *params = nullptr;
  const T *const *inputs = nullptr;      // per input: this element's values
  const T *state = nullptr;              // the state block at the start of the step
  T *next = nullptr;                     // forward: the next state block (with inPlace: the
                                         // states updated in place are not written here)
  T *const *outputs = nullptr;           // forward: per output
  T *saved = nullptr;                    // forward writes, backward reads
  T *scratch = nullptr;                  // per thread, 64-byte aligned
  const T *const *gradOutputs = nullptr; // backward: per output (never null)
  T *gradNext = nullptr;                 // backward: dLoss/d next state block (the traces'
                                         // gradients are written over it: inPlaceGrads)
  T *gradPrev = nullptr;                 // backward: dLoss/d state block (written)
  T *grads = nullptr;                    // backward: parameter gradients (accumulated)
  T *record = nullptr;                   // backward: factors of deferred outer products
  T *const *gradInputs = nullptr;        // backward: per input, dLoss/d input (written; only for
                                         // networks compiled with input gradients)
  T *inPlace = nullptr;                  // forward: the state block (== state), when the states
                                         // GeneratedSpec::forwardCopies leaves out are updated
                                         // there in place; null: every next value goes to next
  int split = 0, splits = 1;             // CUDA: this block's share of the element's work
};

/// A parameter gradient the runtime sums as a product over time: dW[rows, cols] +=
/// A^T B with A[t] = record_t[offsetA .. offsetA + rows), B[t] = record_t[offsetB .. + cols).
struct DeferredOuter {
  int64_t paramOffset, rows, cols, offsetA, offsetB;
};
template <class T> using StepFn = void (*)(const StepArgs<T> &);

/// Which of a StepArgs' blocks holds an operand of a batched product (index: the input, output
/// or output gradient; unused for the others).
enum class StepBuffer : int {
  Input,
  State,
  Next,
  Output,
  Saved,
  Scratch,
  GradOutput,
  GradNext,
  GradPrev,
  Record
};

/// A stage of a step function that multiplies a shared parameter matrix W [rows, cols] by one
/// per-element vector: y = W x (x has cols values, y rows) or, transposed, y = x W (x rows, y
/// cols). In stage-major order the executor runs it for the whole batch as one GEMM instead of
/// calling the stage function once per element (dopac --emit=kernels marks these stages).
struct BatchedProduct {
  int stage; // index in the step's stage table
  int64_t weightOffset, rows, cols;
  bool transposed;
  StepBuffer xBuf;
  int xIndex;
  int64_t xOffset;
  StepBuffer yBuf;
  int yIndex;
  int64_t yOffset;
};

} // namespace dopa
