//===- Suggest.h - "Did you mean" suggestions by edit distance ------------===//
//
// One implementation of the "did you mean 'x'?" search used by every diagnostic about an unknown
// name. Its cost is bounded: a candidate whose length alone puts it too far away is skipped, and
// each edit-distance computation stops once it exceeds the best distance found so far.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"

#include <optional>

namespace dopa {

/// Finds the candidate closest to a misspelled name by edit distance. Candidates are offered one
/// at a time with consider(); of equally close ones, the first offered wins.
class ClosestName {
public:
  /// Look for names at most `maxDistance` edits away from `name`.
  ClosestName(llvm::StringRef name, unsigned maxDistance) : name(name), bestDist(maxDistance + 1) {}

  /// Offer one candidate; it replaces the best so far only if it is strictly closer.
  void consider(llvm::StringRef candidate) {
    size_t lengthDiff = name.size() > candidate.size() ? name.size() - candidate.size()
                                                       : candidate.size() - name.size();
    // The distance is at least the length difference: such a candidate cannot be closer.
    if (lengthDiff >= bestDist)
      return;
    unsigned dist = name.edit_distance(candidate, /*AllowReplacements=*/true, bestDist);
    if (dist < bestDist) {
      bestDist = dist;
      best = candidate;
    }
  }

  /// The closest candidate offered, or nullopt when none was close enough.
  std::optional<llvm::StringRef> result() const {
    if (best.empty())
      return std::nullopt;
    return best;
  }

private:
  llvm::StringRef name;
  llvm::StringRef best;
  unsigned bestDist; // a candidate must be strictly closer than this
};

} // namespace dopa
