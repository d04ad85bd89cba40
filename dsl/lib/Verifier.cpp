//===- Verifier.cpp - Check diagnostics against expected-* comments -------===//
//
// Implements DiagnosticVerifier: collects emitted diagnostics through the engine's consumer, scans
// every buffer of the SourceMgr for expected-* comments, and matches the two sets.
//
//===----------------------------------------------------------------------===//
#include "dopa/dsl/Verifier.h"

#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Regex.h"

using namespace dopa;

DiagnosticVerifier::DiagnosticVerifier(DiagnosticEngine &diags) : diags(diags) {
  diags.setErrorLimit(0);
  diags.setConsumer([this](Severity severity, const llvm::SMDiagnostic &d) {
    emitted.push_back({severity, d.getFilename().str(), unsigned(d.getLineNo()),
                       unsigned(d.getColumnNo() + 1), d.getMessage().str()});
  });
}

namespace {
struct Expected {
  Severity severity;
  std::string file;
  unsigned line;
  unsigned column; // 0: any
  std::string text;
  unsigned specLine; // where the expectation is written
  bool matched = false;
};

const char *severityName(Severity s) {
  return s == Severity::Error ? "error" : s == Severity::Warning ? "warning" : "note";
}
} // namespace

bool DiagnosticVerifier::finish(llvm::raw_ostream &os) {
  llvm::SourceMgr &sm = diags.getSourceMgr();
  std::vector<Expected> expected;
  std::vector<std::string> filesWithNotes;
  bool ok = true;
  llvm::Regex re("expected-(error|warning|note)(@([+-]?[0-9]+)?(:([0-9]+))?)?[ \t]*\\{\\{(.*)\\}\\}");
  for (unsigned id = 1; id <= sm.getNumBuffers(); ++id) {
    const llvm::MemoryBuffer *buf = sm.getMemoryBuffer(id);
    std::string file = buf->getBufferIdentifier().str();
    llvm::StringRef text = buf->getBuffer();
    unsigned lineNo = 0;
    while (!text.empty()) {
      auto [line, rest] = text.split('\n');
      text = rest;
      ++lineNo;
      size_t pos = line.find("expected-");
      while (pos != llvm::StringRef::npos) {
        llvm::SmallVector<llvm::StringRef, 8> m;
        llvm::StringRef tail = line.substr(pos);
        // Stop the match at the first "}}" so two expectations on a line both count.
        size_t close = tail.find("}}");
        llvm::StringRef candidate = close == llvm::StringRef::npos ? tail : tail.take_front(close + 2);
        if (re.match(candidate, &m)) {
          Expected e;
          e.severity = m[1] == "error" ? Severity::Error : m[1] == "warning" ? Severity::Warning : Severity::Note;
          e.file = file;
          e.specLine = lineNo;
          int64_t target = lineNo;
          if (!m[3].empty()) {
            int64_t value = 0;
            m[3].getAsInteger(10, value);
            target = (m[3][0] == '+' || m[3][0] == '-') ? int64_t(lineNo) + value : value;
          }
          e.line = unsigned(std::max<int64_t>(target, 0));
          e.column = 0;
          if (!m[5].empty())
            m[5].getAsInteger(10, e.column);
          e.text = m[6].str();
          if (e.severity == Severity::Note)
            filesWithNotes.push_back(file);
          expected.push_back(e);
        }
        pos = line.find("expected-", pos + 1);
      }
    }
  }
  auto checksNotes = [&](const std::string &file) {
    return std::find(filesWithNotes.begin(), filesWithNotes.end(), file) != filesWithNotes.end();
  };
  for (Expected &e : expected) {
    for (Emitted &d : emitted) {
      if (d.matched || d.severity != e.severity || d.file != e.file || d.line != e.line)
        continue;
      if (e.column && d.column != e.column)
        continue;
      if (d.message.find(e.text) == std::string::npos)
        continue;
      d.matched = e.matched = true;
      break;
    }
    if (!e.matched) {
      ok = false;
      os << e.file << ":" << e.specLine << ": expected " << severityName(e.severity) << " at line "
         << e.line;
      if (e.column)
        os << ", column " << e.column;
      os << " was not produced: {{" << e.text << "}}\n";
    }
  }
  for (const Emitted &d : emitted) {
    if (d.matched || (d.severity == Severity::Note && !checksNotes(d.file)))
      continue;
    ok = false;
    os << d.file << ":" << d.line << ":" << d.column << ": unexpected " << severityName(d.severity)
       << ": " << d.message << "\n";
  }
  if (expected.empty()) {
    ok = false;
    os << "no expected-* comments found; a verify test must state what it expects\n";
  }
  return ok;
}
