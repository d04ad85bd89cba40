//===- Frontend.cpp - Load, parse and check a spec with its includes ------===//
//
// Implements file loading (regular files only, read to their end within the size limit, readable
// errors), include resolution and cycle detection, and hands the parsed files to Sema.
//
//===----------------------------------------------------------------------===//
#include "dopa/dsl/Frontend.h"

#include "dopa/dsl/Lexer.h"
#include "dopa/dsl/Parser.h"

#include "llvm/Support/Error.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <string>
#include <vector>

using namespace dopa;

Frontend::Frontend(std::vector<std::string> includeDirs)
    : diags(sourceMgr), includeDirs(std::move(includeDirs)) {}

bool Frontend::addBuffer(std::unique_ptr<llvm::MemoryBuffer> buffer, llvm::SMLoc includeLoc) {
  unsigned id = sourceMgr.AddNewSourceBuffer(std::move(buffer), includeLoc);
  parseBufferAndIncludes(id);
  return true;
}

namespace {

/// A spec file read into memory, or why not.
struct SpecRead {
  enum Problem { None, NotRegular, TooLarge, Unreadable };
  std::unique_ptr<llvm::MemoryBuffer> buffer;
  Problem problem = None;
  /// NotRegular: what the file is ("a FIFO"); TooLarge: its size in bytes, or "more than N";
  /// Unreadable: the system's reason.
  std::string detail;
};

/// What a file that is not a regular file is, for messages.
const char *fileKindName(llvm::sys::fs::file_type type) {
  using llvm::sys::fs::file_type;
  switch (type) {
  case file_type::directory_file: return "a directory";
  case file_type::character_file: return "a character device";
  case file_type::block_file: return "a block device";
  case file_type::fifo_file: return "a FIFO";
  case file_type::socket_file: return "a socket";
  default: return "of an unknown type";
  }
}

SpecRead unreadable(std::string reason) {
  SpecRead r;
  r.problem = SpecRead::Unreadable;
  r.detail = std::move(reason);
  return r;
}

/// Close a file that was only read: a failure to close cannot lose anything.
void closeQuietly(llvm::sys::fs::file_t file) {
  std::error_code closed = llvm::sys::fs::closeFile(file);
  static_cast<void>(closed);
}

/// Read a spec file. Only a regular file is read, and its type is checked before it is opened: a
/// device would never end (/dev/zero) and opening a FIFO blocks. The contents are read to the end
/// of the file, at most Lexer::maxFileSize bytes, rather than trusting the size the file system
/// reports: files under /proc report 0 bytes and have contents.
SpecRead readSpecFile(llvm::StringRef path) {
  namespace fs = llvm::sys::fs;
  fs::file_status status;
  if (std::error_code ec = fs::status(path, status))
    return unreadable(ec.message());
  SpecRead r;
  if (status.type() != fs::file_type::regular_file) {
    r.problem = SpecRead::NotRegular;
    r.detail = fileKindName(status.type());
    return r;
  }
  if (status.getSize() > Lexer::maxFileSize) {
    r.problem = SpecRead::TooLarge;
    r.detail = std::to_string(status.getSize());
    return r;
  }
  llvm::Expected<fs::file_t> file = fs::openNativeFileForRead(path);
  if (!file)
    return unreadable(llvm::toString(file.takeError()));
  constexpr size_t chunkSize = size_t(64) << 10;
  std::vector<char> data;
  size_t used = 0;
  while (used <= Lexer::maxFileSize) {
    data.resize(used + chunkSize);
    llvm::Expected<size_t> n =
        fs::readNativeFile(*file, llvm::MutableArrayRef<char>(data).drop_front(used));
    if (!n) {
      closeQuietly(*file);
      return unreadable(llvm::toString(n.takeError()));
    }
    if (*n == 0)
      break;
    used += *n;
  }
  closeQuietly(*file);
  if (used > Lexer::maxFileSize) {
    r.problem = SpecRead::TooLarge;
    r.detail = "more than " + std::to_string(Lexer::maxFileSize);
    return r;
  }
  r.buffer = llvm::MemoryBuffer::getMemBufferCopy(llvm::StringRef(data.data(), used), path);
  return r;
}

} // namespace

static std::string realPathOf(llvm::StringRef path) {
  llvm::SmallString<256> real;
  if (llvm::sys::fs::real_path(path, real))
    return path.str();
  return std::string(real);
}

std::optional<unsigned> Frontend::loadFile(llvm::StringRef path) {
  SpecRead contents = readSpecFile(path);
  switch (contents.problem) {
  case SpecRead::None: break;
  case SpecRead::NotRegular:
    diags.errorNoLoc("'" + path + "' is not a regular file (" + contents.detail + ")");
    return std::nullopt;
  case SpecRead::TooLarge:
    diags.errorNoLoc("'" + path + "' is " + contents.detail + " bytes; spec files are limited to " +
                     llvm::Twine(Lexer::maxFileSize) + " bytes");
    return std::nullopt;
  case SpecRead::Unreadable:
    diags.errorNoLoc("cannot read '" + path + "': " + contents.detail);
    return std::nullopt;
  }
  return sourceMgr.AddNewSourceBuffer(std::move(contents.buffer), llvm::SMLoc());
}

bool Frontend::parseFile(llvm::StringRef path) {
  std::optional<unsigned> id = loadFile(path);
  if (!id)
    return false;
  std::string real = realPathOf(path);
  loaded[real] = 0;
  openStack.push_back(real);
  parseBufferAndIncludes(*id);
  openStack.pop_back();
  return true;
}

bool Frontend::parseBuffer(llvm::StringRef contents, llvm::StringRef name) {
  if (contents.size() > Lexer::maxFileSize) {
    diags.errorNoLoc("'" + name + "' is larger than the spec file limit");
    return false;
  }
  openStack.push_back(name.str());
  addBuffer(llvm::MemoryBuffer::getMemBufferCopy(contents, name), llvm::SMLoc());
  openStack.pop_back();
  return true;
}

std::string Frontend::resolveInclude(llvm::StringRef path, unsigned fromBuffer) {
  if (llvm::sys::path::is_absolute(path))
    return llvm::sys::fs::exists(path) ? path.str() : std::string();
  llvm::SmallString<256> candidate(
      llvm::sys::path::parent_path(sourceMgr.getMemoryBuffer(fromBuffer)->getBufferIdentifier()));
  llvm::sys::path::append(candidate, path);
  if (llvm::sys::fs::exists(candidate) && !llvm::sys::fs::is_directory(candidate))
    return std::string(candidate);
  for (const std::string &dir : includeDirs) {
    candidate = dir;
    llvm::sys::path::append(candidate, path);
    if (llvm::sys::fs::exists(candidate) && !llvm::sys::fs::is_directory(candidate))
      return std::string(candidate);
  }
  return {};
}

void Frontend::parseBufferAndIncludes(unsigned bufferId) {
  Parser parser(diags, bufferId);
  std::unique_ptr<ast::File> file = parser.parseFile();
  const ast::File *filePtr = file.get();
  files.push_back(std::move(file));

  for (const ast::Include &inc : filePtr->includes) {
    if (diags.limitReached())
      return;
    if (inc.path.empty()) {
      diags.error(inc.pathRange.Start, "empty include path", {inc.pathRange});
      continue;
    }
    std::string resolved = resolveInclude(inc.path, bufferId);
    if (resolved.empty()) {
      diags.error(inc.pathRange.Start,
                  "cannot find included file '" + inc.path + "'" +
                      (includeDirs.empty() ? " (no include path given; use -I DIR)" : ""),
                  {inc.pathRange});
      continue;
    }
    std::string real = realPathOf(resolved);
    auto cycle = std::find(openStack.begin(), openStack.end(), real);
    if (cycle != openStack.end()) {
      std::string chain;
      for (auto it = cycle; it != openStack.end(); ++it)
        chain += llvm::sys::path::filename(*it).str() + " -> ";
      chain += llvm::sys::path::filename(real).str();
      diags.error(inc.range.Start, "include cycle: " + chain, {inc.pathRange});
      continue;
    }
    if (loaded.count(real))
      continue; // already parsed through another include
    SpecRead contents = readSpecFile(resolved);
    if (contents.problem == SpecRead::NotRegular)
      diags.error(inc.pathRange.Start,
                  "included file '" + inc.path + "' is not a regular file (" + contents.detail +
                      ")",
                  {inc.pathRange});
    else if (contents.problem == SpecRead::TooLarge)
      diags.error(inc.pathRange.Start,
                  "included file '" + inc.path + "' is larger than the spec file limit",
                  {inc.pathRange});
    else if (contents.problem == SpecRead::Unreadable)
      diags.error(inc.pathRange.Start,
                  "cannot read included file '" + inc.path + "': " + contents.detail,
                  {inc.pathRange});
    if (contents.problem != SpecRead::None)
      continue;
    loaded[real] = 0;
    openStack.push_back(real);
    addBuffer(std::move(contents.buffer), inc.range.Start);
    openStack.pop_back();
  }
}

std::vector<const ast::File *> Frontend::getFiles() const {
  std::vector<const ast::File *> out;
  out.reserve(files.size());
  for (const auto &f : files)
    out.push_back(f.get());
  return out;
}

std::unique_ptr<sema::Program> Frontend::check(const sema::DimOverrides *overrides) {
  if (diags.hasErrors())
    return nullptr; // never check a spec that did not parse
  return sema::check(getFiles(), diags, overrides);
}
