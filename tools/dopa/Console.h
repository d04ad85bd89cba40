//===- Console.h - What the dopa tool prints, without LLVM ----------------===//
//
// The tool's messages: `dopa train: error: message` on stderr (the form of llvm::WithColor::error,
// with "error:" in bold red only when stderr is a terminal), notes, plain lines on stderr (status,
// progress) and on stdout (results), and a printf-style format for numbers. Everything goes through
// stdio, as llvm::errs() and llvm::outs() did: stderr is unbuffered and stdout is flushed at exit,
// so the lines come out in the same order.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdarg>
#include <cstdio>
#include <string>
#include <string_view>
#include <unistd.h>

namespace dopa::tool {

/// printf into a std::string.
[[gnu::format(printf, 1, 2)]] inline std::string format(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  va_list sizing;
  va_copy(sizing, args);
  int n = std::vsnprintf(nullptr, 0, fmt, sizing);
  va_end(sizing);
  std::string text;
  if (n > 0) {
    text.resize(size_t(n));
    std::vsnprintf(text.data(), size_t(n) + 1, fmt, args);
  }
  va_end(args);
  return text;
}

/// Write `text` to stderr as it is.
inline void printStderr(std::string_view text) { std::fwrite(text.data(), 1, text.size(), stderr); }

/// Write `text` to stdout as it is.
inline void printStdout(std::string_view text) { std::fwrite(text.data(), 1, text.size(), stdout); }

/// Whether stderr is a terminal (colors are for terminals only).
inline bool stderrIsTerminal() {
  static const bool tty = isatty(2) != 0;
  return tty;
}

/// `prefix: error: msg` and a newline on stderr; the prefix names the tool ("dopa train").
inline void printError(std::string_view prefix, std::string_view msg) {
  std::string line(prefix);
  line += ": ";
  line += stderrIsTerminal() ? "\033[1;31merror: \033[0m" : "error: ";
  line += msg;
  line += '\n';
  printStderr(line);
}

/// `prefix: note: msg` and a newline on stderr.
inline void printNote(std::string_view prefix, std::string_view msg) {
  std::string line(prefix);
  line += ": note: ";
  line += msg;
  line += '\n';
  printStderr(line);
}

} // namespace dopa::tool
