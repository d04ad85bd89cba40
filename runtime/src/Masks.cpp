//===- Masks.cpp - Drawing a network's dropout masks -----------------------===//
//
// DropoutMasks: Bernoulli(1 - p) / (1 - p) values for the masks a network declares, from the
// caller's generator in a fixed order (so runs resume and ranks agree), or all ones.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/Masks.h"

#include <algorithm>
#include <stdexcept>
#include <string>

using namespace dopa;

DropoutMasks::DropoutMasks(const NetworkInfo &info) : inputSlot(info.inputs.size(), -1) {
  for (size_t k = 0; k < info.inputs.size(); ++k)
    if (info.inputs[k].isMask()) {
      inputSlot[k] = int(inputMasks.size());
      inputMasks.push_back({int(k), info.inputs[k].numel(), 0, info.inputs[k].dropout, {}});
    }
  for (size_t p = 0; p < info.params.size(); ++p)
    if (info.params[p].isMask())
      paramMasks.push_back(
          {int(p), info.params[p].numel(), info.paramOffsets[p], info.params[p].dropout, {}});
}

bool DropoutMasks::isMaskInput(int k) const {
  return k >= 0 && size_t(k) < inputSlot.size() && inputSlot[size_t(k)] >= 0;
}

namespace {
/// One mask value: 0 with probability p, else 1 / (1 - p).
float drawOne(Rng &rng, double p) { return rng.uniform() < p ? 0.0f : float(1.0 / (1.0 - p)); }
} // namespace

void DropoutMasks::draw(Rng &rng, int totalBatch, int first, int count, float *params) {
  if (first < 0 || count < 0 || first + count > totalBatch)
    throw std::invalid_argument("DropoutMasks::draw: elements [" + std::to_string(first) + ", " +
                                std::to_string(first + count) + ") outside a batch of " +
                                std::to_string(totalBatch));
  for (Entry &e : inputMasks) {
    e.values.resize(size_t(count) * size_t(e.numel));
    for (int b = 0; b < totalBatch; ++b) {
      bool kept = b >= first && b < first + count;
      float *out = kept ? e.values.data() + size_t(b - first) * size_t(e.numel) : nullptr;
      for (int64_t i = 0; i < e.numel; ++i) {
        float v = drawOne(rng, e.dropout);
        if (out)
          out[i] = v;
      }
    }
  }
  for (Entry &e : paramMasks)
    for (int64_t i = 0; i < e.numel; ++i)
      params[e.offset + size_t(i)] = drawOne(rng, e.dropout);
}

void DropoutMasks::setOff(int batch, float *params) {
  for (Entry &e : inputMasks)
    e.values.assign(size_t(batch) * size_t(e.numel), 1.0f);
  setSharedOff(params);
}

void DropoutMasks::setSharedOff(float *params) const {
  for (const Entry &e : paramMasks)
    std::fill_n(params + e.offset, e.numel, 1.0f);
}

const float *DropoutMasks::input(int k) const {
  if (!isMaskInput(k))
    throw std::invalid_argument("DropoutMasks::input: input " + std::to_string(k) +
                                " is not a mask");
  return inputMasks[size_t(inputSlot[size_t(k)])].values.data();
}
