//===- ExampleNetworks.h - The example networks compiled into this build ---===//
//
// Every spec under examples/ is compiled to C++ by dopa_add_network() at build time; this table
// names them by task and variant ("cue_reward", "modul") for the tools and tests. The RL examples
// may also be compiled at other hidden sizes (CMake's DOPA_EXAMPLE_SIZES); those entries carry
// their dims ("H=100") and have no CUDA backend.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/DimOverrides.h"
#include "dopa/runtime/Generated.h"

#include <algorithm>
#include <string>
#include <vector>

namespace dopa {

struct CudaSpec;

struct ExampleNetwork {
  const char *task;
  const char *variant;
  const char *dims; // "" at the spec's own dims, else the overrides, e.g. "H=100"
  const GeneratedSpec &(*spec)();
  const CudaSpec &(*cuda)(); // null when this build has no CUDA backend
};

const std::vector<ExampleNetwork> &exampleNetworks();

/// Dimension overrides ({"H=100", "I=27"}) as the table writes them: sorted, comma-separated
/// (dopa::canonicalDims of DimOverrides.h). Items that do not parse are joined as given, so they
/// match no entry; the -D parser reports them.
inline std::string canonicalDims(const std::vector<std::string> &overrides) {
  DimParse parsed = parseDimOverrides(overrides);
  if (parsed.ok())
    return canonicalDims(parsed.dims);
  std::string out;
  for (const std::string &d : overrides)
    out += (out.empty() ? "" : ",") + d;
  return out;
}

/// The example for `task` and `variant` at `dims` (canonicalDims; "" for the spec's own), or
/// nullptr when this build did not compile it.
inline const ExampleNetwork *findExample(const std::string &task, const std::string &variant,
                                         const std::string &dims = "") {
  for (const ExampleNetwork &e : exampleNetworks())
    if (task == e.task && variant == e.variant && dims == e.dims)
      return &e;
  return nullptr;
}

/// The generated network of findExample(), or nullptr.
inline const GeneratedSpec *findExampleNetwork(const std::string &task, const std::string &variant,
                                               const std::string &dims = "") {
  const ExampleNetwork *e = findExample(task, variant, dims);
  return e ? &e->spec() : nullptr;
}

/// The dims this build compiled `task`/`variant` at, for error messages ("default, H=50, ...").
inline std::string compiledDims(const std::string &task, const std::string &variant) {
  std::string out;
  for (const ExampleNetwork &e : exampleNetworks())
    if (task == e.task && variant == e.variant)
      out += (out.empty() ? "" : ", ") + std::string(*e.dims ? e.dims : "the spec's own");
  return out;
}

} // namespace dopa
