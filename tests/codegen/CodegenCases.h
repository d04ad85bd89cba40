//===- CodegenCases.h - The networks the codegen tests compile at tiny dims -===//
//
// tests/codegen/CMakeLists.txt compiles each case with dopa_add_network() and writes the table.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Generated.h"

#include <vector>

namespace dopa::test {

struct CodegenCase {
  const char *name;
  const char *spec; // relative to the source tree
  const char *dims; // "H=4,I=5"
  const GeneratedSpec &(*generated)();
};

const std::vector<CodegenCase> &codegenCases();

} // namespace dopa::test
