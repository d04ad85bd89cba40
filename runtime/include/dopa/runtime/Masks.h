//===- Masks.h - Drawing a network's dropout masks -------------------------===//
//
// A spec's `mask m : [H] ~ dropout(p)` is a random tensor the network reads like any other value:
// 0 with probability p, else 1 / (1 - p) (inverted dropout), drawn afresh for every training
// sequence and held for all its steps (awd-lstm-lm's locked dropout; with `shared`, one draw for
// the whole batch, as its weight drop and embedding dropout). The compiler makes a per-element
// mask a network input and a shared one a parameter (initialized to 1) that gets no gradient;
// DropoutMasks knows which they are (TensorInfo::dropout) and fills them: drawn for training,
// all ones for evaluation. Whoever steps the network passes input(k) for each mask input k.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Network.h"
#include "dopa/runtime/Random.h"

#include <vector>

namespace dopa {

class DropoutMasks {
public:
  explicit DropoutMasks(const NetworkInfo &info);

  /// True when the network declares no mask.
  bool empty() const { return inputMasks.empty() && paramMasks.empty(); }
  /// Whether a mask is shared by the batch (a parameter, written by draw() and setOff()).
  bool hasShared() const { return !paramMasks.empty(); }
  /// Whether input k is a mask (its values come from input(k), not from data).
  bool isMaskInput(int k) const;

  /// Draw every mask for a training sequence of `totalBatch` elements from `rng`, keeping the
  /// elements [first, first + count) (a rank's slice; 0 and totalBatch for a whole batch): mask by
  /// mask in the network's order, element by element, so a slice holds the same numbers as the
  /// whole batch. Shared masks are drawn once and written into `params` (the network's flat
  /// parameter buffer).
  void draw(Rng &rng, int totalBatch, int first, int count, float *params);
  /// Dropout off (evaluation): every mask 1, for `batch` elements.
  void setOff(int batch, float *params);
  /// Only the shared masks of `params` to 1 (a copy of the parameters to save as the model).
  void setSharedOff(float *params) const;

  /// The values of mask input k for the elements of the last draw() or setOff() (batch * numel
  /// floats, the same at every step of the sequence).
  const float *input(int k) const;

private:
  struct Entry {
    int index;                 // input or parameter index
    int64_t numel;             // per element (inputs) or in all (parameters)
    size_t offset;             // parameters: offset in the flat buffer
    double dropout;            // the probability of a zero
    std::vector<float> values; // inputs: batch * numel
  };
  std::vector<Entry> inputMasks, paramMasks;
  std::vector<int> inputSlot; // per input: its entry in inputMasks, or -1
};

} // namespace dopa
