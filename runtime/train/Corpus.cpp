//===- Corpus.cpp - The Penn Treebank corpus for language modelling ------===//
//
// Implements loadPtb, batchify and bpttWindows as PyTorch's word_language_model / awd-lstm-lm
// data.py and main.py do (see Corpus.h), and md5Hex with OpenSSL's EVP API. Each file is read once:
// its MD5 is taken from the bytes that are then tokenized, so the checked copy is the parsed copy.
//
//===----------------------------------------------------------------------===//
#include "dopa/train/Corpus.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>
#include <string_view>
#include <system_error>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace dopa;
namespace fs = std::filesystem;

namespace {

constexpr int64_t maxFileBytes = int64_t(1) << 31; // 2 GiB
constexpr int maxVocabulary = 1000000;
constexpr size_t chunkBytes = size_t(1) << 20; // 1 MiB
const char *const splitNames[3] = {"ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"};
const char *const dataHint =
    "(the PTB split needs ptb.train.txt, ptb.valid.txt and ptb.test.txt; pass --data DIR)";

[[noreturn]] void cannotRead(const std::string &path, int error) {
  throw DataError(path + ": cannot read: " + std::strerror(error));
}

/// A file descriptor closed on scope exit.
struct Fd {
  int fd;
  explicit Fd(int fd) : fd(fd) {}
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  ~Fd() {
    if (fd >= 0)
      ::close(fd);
  }
};

int openForReading(const std::string &path) {
  int fd;
  do
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  while (fd < 0 && errno == EINTR);
  if (fd < 0)
    cannotRead(path, errno);
  return fd;
}

/// Read up to `size` bytes; 0 at the end of the file. Throws DataError on errors.
size_t readSome(const std::string &path, int fd, char *buffer, size_t size) {
  for (;;) {
    ssize_t n = ::read(fd, buffer, size);
    if (n >= 0)
      return size_t(n);
    if (errno != EINTR)
      cannotRead(path, errno);
  }
}

[[noreturn]] void throwTooLarge(const std::string &path, int64_t limit) {
  throw DataError(path + ": larger than 2 GiB (" + std::to_string(limit) +
                  " bytes), the most a corpus file may hold");
}

/// The whole file, refusing one over `limit` bytes.
std::string readFile(const std::string &path, int64_t limit) {
  requireRegularFile(path);
  Fd file(openForReading(path));
  struct stat st{};
  if (::fstat(file.fd, &st) == 0 && S_ISREG(st.st_mode) && int64_t(st.st_size) > limit)
    throwTooLarge(path, limit);
  std::string bytes;
  size_t used = 0;
  for (;;) {
    if (bytes.size() - used < chunkBytes)
      bytes.resize(used + chunkBytes);
    size_t n = readSome(path, file.fd, bytes.data() + used, chunkBytes);
    if (n == 0)
      break;
    used += n;
    if (int64_t(used) > limit)
      throwTooLarge(path, limit);
  }
  bytes.resize(used);
  return bytes;
}

struct EvpMdCtxFree {
  void operator()(EVP_MD_CTX *ctx) const { EVP_MD_CTX_free(ctx); }
};
using EvpMdCtx = std::unique_ptr<EVP_MD_CTX, EvpMdCtxFree>;

/// MD5 as the file at `path` is read, chunk by chunk (`path` only names it in messages).
class Md5 {
public:
  explicit Md5(const std::string &path) : path(path), ctx(EVP_MD_CTX_new()) {
    if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_md5(), nullptr) != 1)
      fail();
  }
  void update(const char *data, size_t size) {
    if (size > 0 && EVP_DigestUpdate(ctx.get(), data, size) != 1)
      fail();
  }
  std::string hex() {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1)
      fail();
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned i = 0; i < length; ++i) {
      out += digits[digest[i] >> 4];
      out += digits[digest[i] & 15];
    }
    return out;
  }

private:
  [[noreturn]] void fail() {
    throw DataError(path + ": cannot compute its MD5 (OpenSSL refused; is MD5 disabled, as in "
                           "FIPS mode? pass --no-verify to skip the check)");
  }
  std::string path;
  EvpMdCtx ctx;
};

std::string md5OfBytes(const std::string &path, const std::string &bytes) {
  Md5 md5(path);
  for (size_t at = 0; at < bytes.size(); at += chunkBytes)
    md5.update(bytes.data() + at, std::min(chunkBytes, bytes.size() - at));
  return md5.hex();
}

/// How many bytes of whitespace (as Python's str.split() sees it) start at `s[i]`: 0 for none.
/// ASCII \t \n \v \f \r, \x1c-\x1f and space; in UTF-8, U+0085, U+00A0, U+1680, U+2000-U+200A,
/// U+2028, U+2029, U+202F, U+205F and U+3000.
size_t whitespaceAt(std::string_view s, size_t i) {
  auto at = [&](size_t k) { return k < s.size() ? (unsigned char)s[k] : 0u; };
  unsigned c = at(i);
  if ((c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20))
    return 1;
  if (c == 0xc2)
    return at(i + 1) == 0x85 || at(i + 1) == 0xa0 ? 2 : 0;
  if (c == 0xe1)
    return at(i + 1) == 0x9a && at(i + 2) == 0x80 ? 3 : 0;
  if (c == 0xe2) {
    unsigned c1 = at(i + 1), c2 = at(i + 2);
    if (c1 == 0x80)
      return (c2 >= 0x80 && c2 <= 0x8a) || c2 == 0xa8 || c2 == 0xa9 || c2 == 0xaf ? 3 : 0;
    return c1 == 0x81 && c2 == 0x9f ? 3 : 0;
  }
  if (c == 0xe3)
    return at(i + 1) == 0x80 && at(i + 2) == 0x80 ? 3 : 0;
  return 0;
}

/// The length of the UTF-8 sequence at `s[i]` (Python's strict decoder: no overlong forms, no
/// surrogates, nothing past U+10FFFF), or 0 when it is not valid UTF-8.
size_t utf8SequenceAt(std::string_view s, size_t i) {
  unsigned c = (unsigned char)s[i];
  if (c < 0x80)
    return 1;
  size_t length;
  unsigned low = 0x80, high = 0xbf; // the range of the second byte
  if (c >= 0xc2 && c <= 0xdf)
    length = 2;
  else if (c >= 0xe0 && c <= 0xef) {
    length = 3;
    if (c == 0xe0)
      low = 0xa0; // overlong
    else if (c == 0xed)
      high = 0x9f; // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    length = 4;
    if (c == 0xf0)
      low = 0x90; // overlong
    else if (c == 0xf4)
      high = 0x8f; // past U+10FFFF
  } else
    return 0;
  if (i + length > s.size())
    return 0;
  unsigned c1 = (unsigned char)s[i + 1];
  if (c1 < low || c1 > high)
    return 0;
  for (size_t k = 2; k < length; ++k) {
    unsigned ck = (unsigned char)s[i + k];
    if (ck < 0x80 || ck > 0xbf)
      return 0;
  }
  return length;
}

std::string hexByte(unsigned char c) {
  static const char digits[] = "0123456789abcdef";
  return std::string("0x") + digits[c >> 4] + digits[c & 15];
}

/// Check that `bytes` (read from `path`) is text: UTF-8 without NUL bytes. Messages give the line
/// (counted as tokenize counts them).
void checkText(const std::string &path, std::string_view bytes) {
  int64_t line = 1;
  for (size_t i = 0; i < bytes.size();) {
    char c = bytes[i];
    if (c == '\0')
      throw DataError(path + ":" + std::to_string(line) + ": binary data (NUL byte)");
    if (c == '\n' || c == '\r') {
      ++line;
      i += c == '\r' && i + 1 < bytes.size() && bytes[i + 1] == '\n' ? 2 : 1;
      continue;
    }
    size_t length = utf8SequenceAt(bytes, i);
    if (length == 0)
      throw DataError(path + ":" + std::to_string(line) + ": not UTF-8 text (byte " +
                      hexByte((unsigned char)c) + ")");
    i += length;
  }
}

/// Call `onWord(word, line)` for every token of `bytes` as data.py makes them: each line (ended by
/// \n, \r\n or \r, or by the end of a file that does not end with a newline) gives its words, then
/// "<eos>". Lines are numbered from 1.
template <typename OnWord> void tokenize(std::string_view bytes, OnWord onWord) {
  static const std::string eos = "<eos>";
  int64_t line = 1;
  size_t i = 0;
  while (i < bytes.size()) {
    // One line: [i, end), then its terminator.
    size_t end = i;
    while (end < bytes.size() && bytes[end] != '\n' && bytes[end] != '\r')
      ++end;
    size_t at = i;
    while (at < end) {
      if (size_t ws = whitespaceAt(bytes, at)) {
        at += ws;
        continue;
      }
      size_t start = at;
      while (at < end && whitespaceAt(bytes, at) == 0)
        ++at;
      onWord(std::string(bytes.substr(start, at - start)), line);
    }
    onWord(eos, line);
    ++line;
    i = end;
    if (i < bytes.size())
      i += bytes[i] == '\r' && i + 1 < bytes.size() && bytes[i + 1] == '\n' ? 2 : 1;
  }
}

std::string joinPath(const std::string &dir, const std::string &name) {
  return (fs::path(dir) / name).string();
}

/// The checksums MD5SUMS lists, by file name: GNU lines "<md5>  <name>" or "<md5> *<name>" (as
/// md5sum writes them) and BSD lines "MD5 (<name>) = <md5>"; blank lines are skipped.
std::map<std::string, std::string> readMd5Sums(const std::string &path) {
  std::string text = readFile(path, maxFileBytes);
  std::map<std::string, std::string> sums;
  auto isHex = [](std::string_view s) {
    return s.size() == 32 && std::all_of(s.begin(), s.end(), [](char c) {
             return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
           });
  };
  auto lower = [](std::string s) {
    for (char &c : s)
      if (c >= 'A' && c <= 'F')
        c = char(c - 'A' + 'a');
    return s;
  };
  auto normalName = [](std::string name) {
    while (name.size() > 2 && name.compare(0, 2, "./") == 0)
      name.erase(0, 2);
    return name;
  };
  int64_t lineNo = 0;
  size_t i = 0;
  while (i < text.size()) {
    size_t end = text.find('\n', i);
    if (end == std::string::npos)
      end = text.size();
    std::string_view line(text.data() + i, end - i);
    i = end + 1;
    ++lineNo;
    if (!line.empty() && line.back() == '\r')
      line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos)
      continue;
    if (line.front() == '\\') // md5sum's mark of an escaped name (none of ours needs one)
      line.remove_prefix(1);
    if (line.size() > 34 && isHex(line.substr(0, 32)) && line[32] == ' ' &&
        (line[33] == ' ' || line[33] == '*')) {
      sums[normalName(std::string(line.substr(34)))] = lower(std::string(line.substr(0, 32)));
      continue;
    }
    constexpr std::string_view bsdOpen = "MD5 (", bsdClose = ") = ";
    if (line.size() > bsdOpen.size() + bsdClose.size() + 32 && line.substr(0, 5) == bsdOpen &&
        line.substr(line.size() - 32 - bsdClose.size(), bsdClose.size()) == bsdClose &&
        isHex(line.substr(line.size() - 32))) {
      std::string name(line.substr(5, line.size() - 32 - bsdClose.size() - 5));
      sums[normalName(name)] = lower(std::string(line.substr(line.size() - 32)));
      continue;
    }
    throw DataError(path + ":" + std::to_string(lineNo) +
                    ": not a checksum line (expected '<md5>  <file name>', as md5sum writes)");
  }
  return sums;
}

} // namespace

std::string dopa::md5Hex(const std::string &path) {
  Fd file(openForReading(path));
  Md5 md5(path);
  std::vector<char> buffer(chunkBytes);
  while (size_t n = readSome(path, file.fd, buffer.data(), buffer.size()))
    md5.update(buffer.data(), n);
  return md5.hex();
}

int Vocabulary::id(const std::string &word) const {
  auto it = ids.find(word);
  return it == ids.end() ? -1 : it->second;
}

int Vocabulary::add(const std::string &word) {
  auto [it, inserted] = ids.emplace(word, size());
  if (inserted)
    words.push_back(word);
  return it->second;
}

Corpus dopa::loadPtb(const std::string &dir, bool verifyChecksums) {
  if (dir.empty())
    throw DataError(std::string("the PTB folder is an empty path ") + dataHint);
  std::error_code ec;
  fs::file_status dirStatus = fs::status(dir, ec);
  if (dirStatus.type() == fs::file_type::not_found)
    throw DataError(dir + ": no such directory " + dataHint);
  if (ec)
    throw DataError(dir + ": cannot read: " + ec.message());
  if (!fs::is_directory(dirStatus))
    throw DataError(dir + ": not a directory " + dataHint);

  std::string paths[3], bytes[3];
  for (int s = 0; s < 3; ++s) {
    paths[s] = joinPath(dir, splitNames[s]);
    if (fs::status(paths[s], ec).type() == fs::file_type::not_found)
      throw DataError(paths[s] + ": missing " + dataHint);
  }
  for (int s = 0; s < 3; ++s)
    bytes[s] = readFile(paths[s], maxFileBytes);

  if (verifyChecksums) {
    std::string sumsPath = joinPath(dir, "MD5SUMS");
    if (fs::status(sumsPath, ec).type() == fs::file_type::not_found)
      throw DataError(sumsPath + ": missing, so the data cannot be verified (write it with "
                                 "'md5sum ptb.train.txt ptb.valid.txt ptb.test.txt > MD5SUMS' "
                                 "from a trusted copy, or pass --no-verify to skip the check)");
    std::map<std::string, std::string> sums = readMd5Sums(sumsPath);
    for (int s = 0; s < 3; ++s) {
      auto it = sums.find(splitNames[s]);
      if (it == sums.end())
        throw DataError(sumsPath + ": lists no checksum for " + splitNames[s] +
                        " (pass --no-verify to skip the check)");
      std::string actual = md5OfBytes(paths[s], bytes[s]);
      if (actual != it->second)
        throw DataError(paths[s] + ": MD5 " + actual + " but MD5SUMS says " + it->second +
                        ": a different or damaged copy of the data");
    }
  }

  Corpus corpus;
  corpus.dir = dir;
  for (int s = 0; s < 3; ++s)
    checkText(paths[s], bytes[s]);

  const std::string &trainPath = paths[0];
  tokenize(bytes[0], [&](const std::string &word, int64_t line) {
    if (corpus.vocab.size() >= maxVocabulary && corpus.vocab.id(word) < 0)
      throw DataError(trainPath + ":" + std::to_string(line) + ": more than " +
                      std::to_string(maxVocabulary) +
                      " distinct words, too many for a word-level vocabulary");
    corpus.train.push_back(corpus.vocab.add(word));
  });
  if (corpus.train.empty())
    throw DataError(trainPath + ": no words: the training text is empty");
  std::vector<int32_t> *heldOut[2] = {&corpus.valid, &corpus.test};
  for (int s = 1; s < 3; ++s) {
    const std::string &path = paths[s];
    std::vector<int32_t> &out = *heldOut[s - 1];
    tokenize(bytes[s], [&](const std::string &word, int64_t line) {
      int id = corpus.vocab.id(word);
      if (id < 0) {
        std::string msg = path;
        msg += ":" + std::to_string(line) + ": word '";
        msg += word;
        msg += "' is not in the training vocabulary";
        throw DataError(msg);
      }
      out.push_back(id);
    });
  }
  return corpus;
}

std::vector<int32_t> dopa::batchify(const std::vector<int32_t> &tokens, int batch) {
  if (batch < 1)
    throw std::invalid_argument("batchify: the batch must be at least 1 (got " +
                                std::to_string(batch) + ")");
  int64_t n = int64_t(tokens.size());
  int64_t rows = n / batch;
  if (rows < 2)
    throw std::invalid_argument("too little data for batch " + std::to_string(batch) + ": " +
                                std::to_string(n) + " tokens");
  std::vector<int32_t> out(size_t(rows * batch));
  for (int64_t t = 0; t < rows; ++t)
    for (int b = 0; b < batch; ++b)
      out[size_t(t * batch + b)] = tokens[size_t(b * rows + t)];
  return out;
}

std::vector<Window> dopa::bpttWindows(int64_t rows, int bptt) {
  if (bptt < 1)
    throw std::invalid_argument("bpttWindows: bptt must be at least 1 (got " +
                                std::to_string(bptt) + ")");
  std::vector<Window> windows;
  for (int64_t i = 0; i < rows - 1; i += bptt)
    windows.push_back({i, int(std::min<int64_t>(bptt, rows - 1 - i))});
  return windows;
}
