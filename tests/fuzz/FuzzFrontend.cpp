//===- FuzzFrontend.cpp - libFuzzer target for the whole front end -------===//
//
// Feeds arbitrary bytes to the front end (lexer, parser, sema) as a spec file. Any crash, hang,
// sanitizer report or leak is a bug: bad input must only ever produce diagnostics.
//
//===----------------------------------------------------------------------===//
#include "dopa/dsl/Frontend.h"

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  dopa::Frontend frontend;
  dopa::DiagnosticEngine &diags = frontend.getDiagnostics();
  diags.setErrorLimit(20);
  // Render every diagnostic (exercises SourceMgr ranges and fix-its) but print nothing.
  diags.setConsumer([](dopa::Severity, const llvm::SMDiagnostic &d) {
    std::string text;
    llvm::raw_string_ostream os(text);
    d.print("fuzz", os, false);
  });
  frontend.parseBuffer(llvm::StringRef(reinterpret_cast<const char *>(data), size), "fuzz.dopa");
  (void)frontend.check();
  return 0;
}
