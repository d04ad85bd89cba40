//===- DimOverrides.h - The -D NAME=INTEGER dimension overrides -----------===//
//
// dopac and dopa take a network's dimensions on the command line (-D H=4); the example table names
// the sizes it was compiled at the same way ("H=100,I=27"). This is the one parser of that syntax
// and the one renderer of its canonical form. No LLVM: the dopa tool uses it too.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dopa {

/// Dimension values by name, in name order.
using DimMap = std::map<std::string, int64_t>;

/// The result of parsing overrides: the values, or a message naming the first bad item.
struct DimParse {
  DimMap dims;
  std::string error; // empty on success
  bool ok() const { return error.empty(); }
};

/// The largest dimension the language allows (dsl/LangRef.md; the front end checks it too).
inline constexpr int64_t kMaxDimension = int64_t(1) << 24;

/// Parse "NAME=INTEGER" items (-D H=4 -D I=3). Errors: a malformed item ("-D expects NAME=INTEGER,
/// got 'x'"), a value out of [1, kMaxDimension] ("-D H=0: a dimension must be an integer from 1 to
/// 16777216") and a name given twice with different values ("-D H given twice (4 and 8)").
DimParse parseDimOverrides(const std::vector<std::string> &items);

/// Parse the canonical comma-separated form ("H=4,I=3"; "" for none) with the same checks.
DimParse parseCanonicalDims(const std::string &text);

/// The canonical form: the items "NAME=VALUE" sorted as strings and joined with commas ("H=4,I=3"),
/// as the example table writes them; "" for none.
std::string canonicalDims(const DimMap &dims);

} // namespace dopa
