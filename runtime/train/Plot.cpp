//===- Plot.cpp - Drawing a PNG with gnuplot -------------------------------===//
//
// runGnuplot writes the script beside the PNG, runs gnuplot with its messages in a file beside it
// (shown only when gnuplot fails: its warnings about a flat curve would interrupt progress lines),
// and removes both files. Paths are quoted for the shell and for gnuplot, since a run folder's
// name may hold a quote.
//
//===----------------------------------------------------------------------===//
#include "dopa/train/Plot.h"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace {

/// `text` in single quotes, a quote inside written as `escaped`.
std::string singleQuoted(const std::string &text, const char *escaped) {
  std::string q = "'";
  for (char c : text)
    q += c == '\'' ? std::string(escaped) : std::string(1, c);
  return q + "'";
}

} // namespace

std::string dopa::gnuplotQuoted(const std::string &text) { return singleQuoted(text, "''"); }

bool dopa::runGnuplot(const std::string &script, const std::string &pngPath,
                      const std::string &dataHint) {
  namespace fs = std::filesystem;
  if (std::system("command -v gnuplot > /dev/null 2>&1") != 0) {
    std::fprintf(stderr, "dopa: gnuplot not found; no plot written (%s has the data)\n",
                 dataHint.c_str());
    return false;
  }
  fs::path png(pngPath);
  std::string base = (png.parent_path() / ("." + png.filename().string())).string();
  std::string scriptPath = base + ".gp", errPath = base + ".err";
  std::ofstream(scriptPath)
      << "set terminal pngcairo noenhanced size 960,540 font 'DejaVu Sans,11'\n"
      << "set output " << gnuplotQuoted(pngPath) << "\n"
      << script;
  auto shell = [](const std::string &text) { return singleQuoted(text, "'\\''"); };
  bool ok = std::system(("gnuplot " + shell(scriptPath) + " 2> " + shell(errPath)).c_str()) == 0;
  if (!ok) {
    std::ifstream err(errPath);
    std::ostringstream text;
    for (std::string line; std::getline(err, line);)
      text << "  " << line << "\n";
    std::fprintf(stderr, "dopa: gnuplot could not draw %s:\n%s", pngPath.c_str(),
                 text.str().c_str());
  }
  std::error_code ec;
  fs::remove(scriptPath, ec);
  fs::remove(errPath, ec);
  return ok;
}
