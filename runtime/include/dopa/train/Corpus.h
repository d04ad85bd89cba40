//===- Corpus.h - The Penn Treebank corpus for language modelling --------===//
//
// The word-level corpus of the paper's language-modelling experiment (Backpropamine §4.3, Table 1):
// Mikolov's Penn Treebank split, read from a folder that holds ptb.train.txt, ptb.valid.txt and
// ptb.test.txt (and, to check that it is the standard copy, MD5SUMS as md5sum writes it). Words
// become ids exactly as PyTorch's word_language_model and awd-lstm-lm (data.py) make them: each
// line is line.split() + ['<eos>'], the vocabulary is the training file's words in order of first
// occurrence, and batchify / bpttWindows cut the id streams as those scripts do, so a model trained
// here sees the same batches as the reference. Every problem with the data (a missing or damaged
// file, a word of valid/test that training never saw, binary data) is a DataError that names the
// file, and the line where there is one. See docs/lm-data.md.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/FileIO.h" // DataError

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace dopa {

/// The MD5 of a file's bytes as 32 lowercase hex digits (OpenSSL's EVP API). Throws DataError
/// "<path>: cannot read: <strerror>" when the file cannot be opened or read.
std::string md5Hex(const std::string &path);

/// Words and their ids: words[id] is the word, ids[word] its id.
struct Vocabulary {
  std::vector<std::string> words;
  std::unordered_map<std::string, int> ids;

  int size() const { return int(words.size()); }
  /// The word's id, or -1 when it is not in the vocabulary.
  int id(const std::string &word) const;
  /// The word's id, giving it the next id (size()) when it is new.
  int add(const std::string &word);
};

/// A language-modelling corpus: the vocabulary (of the training split) and the three splits as ids.
struct Corpus {
  Vocabulary vocab;
  std::vector<int32_t> train, valid, test;
  std::string dir; // the folder it was read from
};

/// Read the PTB split from `dir` (ptb.train.txt, ptb.valid.txt, ptb.test.txt). With
/// `verifyChecksums`, `dir`/MD5SUMS must exist and list the three files with their MD5s, and each
/// file must match (the CLI's --no-verify turns the check off). Tokenization is data.py's: per line
/// (ended by \n, \r\n or \r, as Python's text mode reads; a last line without a newline counts),
/// the words split on whitespace (as str.split() does) and then '<eos>'; an empty file has no
/// tokens. The vocabulary is built from the training file only, ids in order of first occurrence.
/// Throws DataError naming the file (and line) when a file or the folder is missing, a checksum
/// does not match, a file is not UTF-8 text or holds a NUL byte, is over 2 GiB, the vocabulary
/// grows past 1,000,000 words, or valid/test holds a word that is not in the training vocabulary.
Corpus loadPtb(const std::string &dir, bool verifyChecksums = true);

/// Lay `tokens` out as `batch` parallel streams, as PyTorch's batchify does: nbatch = n / batch
/// (the remainder is dropped), stream b is tokens[b*nbatch, (b+1)*nbatch), and the result is
/// [nbatch][batch] row-major (element t*batch + b is stream b's token t). Throws
/// std::invalid_argument when batch < 1 or nbatch < 2.
std::vector<int32_t> batchify(const std::vector<int32_t> &tokens, int batch);

/// One truncated-BPTT window over batchified rows: the input is rows [start, start + length), the
/// target rows [start + 1, start + 1 + length).
struct Window {
  int64_t start;
  int length;
};

/// The windows of the reference's training and evaluation loops over `rows` rows:
/// start = 0, bptt, 2*bptt, ... while start < rows - 1, length = min(bptt, rows - 1 - start).
/// No windows when rows < 2. Throws std::invalid_argument when bptt < 1.
std::vector<Window> bpttWindows(int64_t rows, int bptt);

} // namespace dopa
