//===- Diagnostics.h - One diagnostic engine over llvm::SourceMgr --------===//
//
// Every stage of dopa (lexer, parser, sema, later passes) reports problems through
// DiagnosticEngine: `file:line:col: error: message`, the source line, a caret, ranges, notes and
// fix-its, rendered by llvm::SourceMgr. The engine counts errors, stops after a limit, and can
// route diagnostics to a consumer instead of printing (tests, the --verify-diagnostics mode).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/ArrayRef.h"
#include "llvm/ADT/Twine.h"
#include "llvm/Support/SMLoc.h"
#include "llvm/Support/SourceMgr.h"

#include <functional>

namespace dopa {

/// Severity of a diagnostic, mirroring llvm::SourceMgr::DiagKind.
enum class Severity { Error, Warning, Note };

class DiagnosticEngine {
public:
  using Consumer = std::function<void(Severity, const llvm::SMDiagnostic &)>;

  explicit DiagnosticEngine(llvm::SourceMgr &sourceMgr);

  /// Report an error at `loc`; `ranges` are underlined, `fixIts` suggested.
  void error(llvm::SMLoc loc, const llvm::Twine &message, llvm::ArrayRef<llvm::SMRange> ranges = {},
             llvm::ArrayRef<llvm::SMFixIt> fixIts = {});
  void warning(llvm::SMLoc loc, const llvm::Twine &message,
               llvm::ArrayRef<llvm::SMRange> ranges = {});
  /// A note belongs to the error or warning just before it and is dropped with it.
  void note(llvm::SMLoc loc, const llvm::Twine &message, llvm::ArrayRef<llvm::SMRange> ranges = {});

  /// An error that is not tied to a place in a spec (I/O, usage).
  void errorNoLoc(const llvm::Twine &message);

  unsigned errorCount() const { return numErrors; }
  unsigned warningCount() const { return numWarnings; }
  bool hasErrors() const { return numErrors > 0; }
  /// True once the error limit was reached; stages should stop soon after.
  bool limitReached() const { return errorLimit != 0 && numErrors >= errorLimit; }

  /// 0 means no limit. The default is 20, as in clang.
  void setErrorLimit(unsigned limit) { errorLimit = limit; }
  void setWarningsAsErrors(bool value) { warningsAsErrors = value; }
  /// Route diagnostics to `consumer` instead of printing them.
  void setConsumer(Consumer consumer) { this->consumer = std::move(consumer); }
  /// Print to this stream (default llvm::errs()), with colors when it supports them.
  void setOutput(llvm::raw_ostream &os) { out = &os; }
  /// The program an error without a place is printed as ("dopac: error: ..."); a process sets it
  /// once, before any engine prints (dopa's main sets "dopa").
  static void setProgramName(const char *name) { programName = name; }

  llvm::SourceMgr &getSourceMgr() { return sourceMgr; }

private:
  void emit(Severity severity, llvm::SMLoc loc, const llvm::Twine &message,
            llvm::ArrayRef<llvm::SMRange> ranges, llvm::ArrayRef<llvm::SMFixIt> fixIts);

  llvm::SourceMgr &sourceMgr;
  llvm::raw_ostream *out;
  Consumer consumer;
  unsigned numErrors = 0;
  unsigned numWarnings = 0;
  unsigned errorLimit = 20;
  bool warningsAsErrors = false;
  bool dropNotes = false;
  bool limitAnnounced = false;
  static inline const char *programName = "dopac";
};

} // namespace dopa
