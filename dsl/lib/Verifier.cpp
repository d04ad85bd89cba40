//===- Verifier.cpp - Check diagnostics against expected-* comments -------===//
//
// Implements DiagnosticVerifier: collects emitted diagnostics through the engine's consumer, scans
// every buffer of the SourceMgr for expected-* comments, and matches the two sets.
//
//===----------------------------------------------------------------------===//
#include "dopa/dsl/Verifier.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/MemoryBuffer.h"

#include <optional>

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

/// kind ('@' ('+'|'-')? line)? (':' column)? ws* '{{' text '}}'   (after "expected-")
std::optional<Expected> parseExpectation(llvm::StringRef s, unsigned lineNo) {
  Expected e;
  if (s.consume_front("error"))
    e.severity = Severity::Error;
  else if (s.consume_front("warning"))
    e.severity = Severity::Warning;
  else if (s.consume_front("note"))
    e.severity = Severity::Note;
  else
    return std::nullopt;
  e.specLine = lineNo;
  e.line = lineNo;
  e.column = 0;
  auto number = [&](unsigned &out) {
    size_t n = 0;
    while (n < s.size() && llvm::isDigit(s[n]))
      ++n;
    if (n == 0 || s.take_front(n).getAsInteger(10, out))
      return false;
    s = s.drop_front(n);
    return true;
  };
  if (s.consume_front("@")) {
    int sign = s.consume_front("+") ? 1 : s.consume_front("-") ? -1 : 0;
    unsigned value = 0;
    if (!s.starts_with(":")) {
      if (!number(value))
        return std::nullopt;
      e.line = sign == 0 ? value
                         : unsigned(std::max<int64_t>(int64_t(lineNo) + sign * int64_t(value), 0));
    }
  }
  if (s.consume_front(":") && !number(e.column))
    return std::nullopt;
  s = s.ltrim();
  if (!s.consume_front("{{"))
    return std::nullopt;
  size_t close = s.find("}}");
  if (close == llvm::StringRef::npos)
    return std::nullopt;
  e.text = s.take_front(close).str();
  return e;
}

const char *severityName(Severity s) {
  return s == Severity::Error ? "error" : s == Severity::Warning ? "warning" : "note";
}
} // namespace

bool DiagnosticVerifier::finish(llvm::raw_ostream &os) {
  llvm::SourceMgr &sm = diags.getSourceMgr();
  std::vector<Expected> expected;
  std::vector<std::string> filesWithNotes;
  bool ok = true;
  for (unsigned id = 1; id <= sm.getNumBuffers(); ++id) {
    const llvm::MemoryBuffer *buf = sm.getMemoryBuffer(id);
    std::string file = buf->getBufferIdentifier().str();
    llvm::StringRef text = buf->getBuffer();
    unsigned lineNo = 0;
    while (!text.empty()) {
      auto [line, rest] = text.split('\n');
      text = rest;
      ++lineNo;
      for (size_t pos = line.find("expected-"); pos != llvm::StringRef::npos;
           pos = line.find("expected-", pos + 1)) {
        if (auto e = parseExpectation(line.substr(pos + 9), lineNo)) {
          e->file = file;
          if (e->severity == Severity::Note)
            filesWithNotes.push_back(file);
          expected.push_back(*e);
        }
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
