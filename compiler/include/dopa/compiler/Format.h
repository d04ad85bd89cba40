//===- Format.h - Generated code in the house style -----------------------===//
//
// The style dopac prints generated code in (Clang's libFormat, LLVM style, 100 columns). A library
// of its own (dopa::format), so that linking the compiler does not link libFormat.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <string>

namespace dopa {

/// Format C++ with the fixed generated-code style. Returns the input unchanged on failure.
std::string formatCpp(const std::string &code);

} // namespace dopa
