//===- TestUtil.h - Helpers shared by the front-end unit tests ------------===//
//
// CompileResult runs the front end on a string and collects the diagnostics as text, so a test can
// say which messages (and how many) a spec produces without printing anything.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/dsl/Frontend.h"

#include <string>
#include <vector>

namespace dopa::test {

struct CompileResult {
  std::unique_ptr<Frontend> frontend;
  std::unique_ptr<sema::Program> program;
  std::vector<std::string> errors, warnings, notes; // "line:col: message"
  bool parsed = false;

  bool hasError(const std::string &fragment) const {
    for (const auto &e : errors)
      if (e.find(fragment) != std::string::npos)
        return true;
    return false;
  }
};

/// Parse (and, with `check`, analyse) `source` held in memory under the name `name`.
inline CompileResult compile(llvm::StringRef source, bool check = true,
                             llvm::StringRef name = "test.dopa", unsigned errorLimit = 0) {
  CompileResult r;
  r.frontend = std::make_unique<Frontend>(std::vector<std::string>{DOPA_SOURCE_DIR "/examples/lm"});
  DiagnosticEngine &diags = r.frontend->getDiagnostics();
  diags.setErrorLimit(errorLimit);
  diags.setConsumer([&r](Severity s, const llvm::SMDiagnostic &d) {
    std::string text = std::to_string(d.getLineNo()) + ":" + std::to_string(d.getColumnNo() + 1) +
                       ": " + d.getMessage().str();
    (s == Severity::Error     ? r.errors
     : s == Severity::Warning ? r.warnings
                              : r.notes)
        .push_back(text);
  });
  r.parsed = r.frontend->parseBuffer(source, name);
  if (check && r.parsed)
    r.program = r.frontend->check();
  return r;
}

/// Read a file of the source tree.
std::string readSourceFile(const std::string &relativePath);

/// A fresh, empty folder for one test: <tmp>/dopa-unit-tests/<name>-<pid>.
std::string scratchDir(const std::string &name);

} // namespace dopa::test
