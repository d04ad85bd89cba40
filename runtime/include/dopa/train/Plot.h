//===- Plot.h - Drawing a PNG with gnuplot ---------------------------------===//
//
// The training plots (learning curves, the language models' perplexity) are gnuplot scripts over
// data files written beside the PNG. runGnuplot is the one place that runs gnuplot: it adds the
// terminal, quotes the output's path, keeps gnuplot's messages back unless it fails and removes
// its own temporary files; gnuplotQuoted quotes the text a script names (paths, titles, legends).
//
//===----------------------------------------------------------------------===//
#pragma once

#include <string>

namespace dopa {

/// `text` as a gnuplot string in single quotes (a quote inside is doubled).
std::string gnuplotQuoted(const std::string &text);

/// Draw `pngPath` (pngcairo, 960 x 540, text taken literally) with the gnuplot commands `script`.
/// False, with a message on stderr, when gnuplot is not installed (`dataHint` says where the data
/// is) or fails (its messages follow).
bool runGnuplot(const std::string &script, const std::string &pngPath, const std::string &dataHint);

} // namespace dopa
