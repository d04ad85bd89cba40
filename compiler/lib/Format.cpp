//===- Format.cpp - Generated code through Clang's libFormat --------------===//
//
// formatCpp, on its own so that only what formats code (dopac) links libFormat and with it the
// shared libLLVM: `dopa`, whose on-demand compiler emits the same code unformatted, loads neither
// (43 MB of resident memory, docs/benchmarks.md "Memory traffic at H = 200").
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Format.h"

#include "clang/Format/Format.h"
#include "clang/Tooling/Core/Replacement.h"

std::string dopa::formatCpp(const std::string &code) {
  clang::format::FormatStyle style = clang::format::getLLVMStyle();
  style.ColumnLimit = 100;
  style.SortIncludes = clang::format::FormatStyle::SI_Never;
  clang::tooling::Range all(0, unsigned(code.size()));
  clang::tooling::Replacements repl = clang::format::reformat(style, code, {all}, "generated.cpp");
  auto result = clang::tooling::applyAllReplacements(code, repl);
  if (!result) {
    llvm::consumeError(result.takeError());
    return code;
  }
  return *result;
}
