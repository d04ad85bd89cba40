//===- ExampleNetworks.h - The example networks compiled into this build ---===//
//
// Every spec under examples/ is compiled to C++ by dopa_add_network() at build time; this table
// names them by task and variant ("cue_reward", "modul") for the tools and tests.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Generated.h"

#include <string>
#include <vector>

namespace dopa {

struct CudaSpec;

struct ExampleNetwork {
  const char *task;
  const char *variant;
  const GeneratedSpec &(*spec)();
  const CudaSpec &(*cuda)(); // null when this build has no CUDA backend
};

const std::vector<ExampleNetwork> &exampleNetworks();

/// The example for `task` and `variant`, or nullptr.
inline const GeneratedSpec *findExampleNetwork(const std::string &task,
                                               const std::string &variant) {
  for (const ExampleNetwork &e : exampleNetworks())
    if (task == e.task && variant == e.variant)
      return &e.spec();
  return nullptr;
}

} // namespace dopa
