//===- Diagnostics.cpp - One diagnostic engine over llvm::SourceMgr ------===//
//
// Implements DiagnosticEngine: counting, the error limit, warnings-as-errors, and rendering through
// llvm::SourceMgr (or handing SMDiagnostics to a consumer).
//
//===----------------------------------------------------------------------===//
#include "dopa/dsl/Diagnostics.h"

#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

using namespace dopa;

DiagnosticEngine::DiagnosticEngine(llvm::SourceMgr &sourceMgr)
    : sourceMgr(sourceMgr), out(&llvm::errs()) {}

void DiagnosticEngine::emit(Severity severity, llvm::SMLoc loc, const llvm::Twine &message,
                            llvm::ArrayRef<llvm::SMRange> ranges,
                            llvm::ArrayRef<llvm::SMFixIt> fixIts) {
  llvm::SourceMgr::DiagKind kind = severity == Severity::Error     ? llvm::SourceMgr::DK_Error
                                   : severity == Severity::Warning ? llvm::SourceMgr::DK_Warning
                                                                   : llvm::SourceMgr::DK_Note;
  llvm::SMDiagnostic diag = sourceMgr.GetMessage(loc, kind, message, ranges, fixIts);
  if (consumer) {
    consumer(severity, diag);
    return;
  }
  diag.print(nullptr, *out, out->has_colors());
}

void DiagnosticEngine::error(llvm::SMLoc loc, const llvm::Twine &message,
                             llvm::ArrayRef<llvm::SMRange> ranges,
                             llvm::ArrayRef<llvm::SMFixIt> fixIts) {
  if (limitReached()) {
    dropNotes = true;
    if (!limitAnnounced && !consumer) {
      limitAnnounced = true;
      llvm::WithColor::error(*out)
          << "too many errors emitted (limit " << errorLimit << "), stopping now\n";
    }
    return;
  }
  ++numErrors;
  dropNotes = false;
  emit(Severity::Error, loc, message, ranges, fixIts);
}

void DiagnosticEngine::warning(llvm::SMLoc loc, const llvm::Twine &message,
                               llvm::ArrayRef<llvm::SMRange> ranges) {
  if (warningsAsErrors) {
    error(loc, message + " [-Werror]", ranges);
    return;
  }
  if (limitReached()) {
    dropNotes = true;
    return;
  }
  ++numWarnings;
  dropNotes = false;
  emit(Severity::Warning, loc, message, ranges, {});
}

void DiagnosticEngine::note(llvm::SMLoc loc, const llvm::Twine &message,
                            llvm::ArrayRef<llvm::SMRange> ranges) {
  if (dropNotes)
    return;
  emit(Severity::Note, loc, message, ranges, {});
}

void DiagnosticEngine::errorNoLoc(const llvm::Twine &message) {
  ++numErrors;
  if (consumer) {
    consumer(Severity::Error, llvm::SMDiagnostic("", llvm::SourceMgr::DK_Error, message.str()));
    return;
  }
  llvm::WithColor::error(*out, programName) << message << "\n";
}
