//===- Verifier.h - Check diagnostics against expected-* comments ---------===//
//
// The verify mode of dopac (--verify-diagnostics), modelled on clang -verify and MLIR's
// SourceMgrDiagnosticVerifierHandler. A spec states the diagnostics it expects in comments:
//
//   x = y   # expected-error {{unknown name 'y'}}        same line, any column
//   # expected-error@+1:9 {{cannot be broadcast}}         next line, column 9
//   # expected-warning@-2 {{never used}}                  two lines up; @7 is absolute line 7
//
// Every emitted error and warning must be expected, and every expectation must be met. Notes are
// checked the same way in files that contain at least one expected-note, and ignored elsewhere.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/dsl/Diagnostics.h"

#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace dopa {

class DiagnosticVerifier {
public:
  /// Installs itself as the consumer of `diags`.
  explicit DiagnosticVerifier(DiagnosticEngine &diags);

  /// Compare what was emitted with what every loaded buffer expects; report mismatches to `os`.
  /// Returns true when they agree.
  bool finish(llvm::raw_ostream &os);

private:
  struct Emitted {
    Severity severity;
    std::string file;
    unsigned line, column;
    std::string message;
    bool matched = false;
  };
  DiagnosticEngine &diags;
  std::vector<Emitted> emitted;
};

} // namespace dopa
