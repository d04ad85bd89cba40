//===- Frontend.cpp - Load, parse and check a spec with its includes ------===//
//
// Implements file loading (size limit, readable errors), include resolution and cycle detection,
// and hands the parsed files to Sema.
//
//===----------------------------------------------------------------------===//
#include "dopa/dsl/Frontend.h"

#include "dopa/dsl/Lexer.h"
#include "dopa/dsl/Parser.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

using namespace dopa;

Frontend::Frontend(std::vector<std::string> includeDirs)
    : diags(sourceMgr), includeDirs(std::move(includeDirs)) {}

bool Frontend::addBuffer(std::unique_ptr<llvm::MemoryBuffer> buffer, llvm::SMLoc includeLoc) {
  unsigned id = sourceMgr.AddNewSourceBuffer(std::move(buffer), includeLoc);
  parseBufferAndIncludes(id);
  return true;
}

static std::string realPathOf(llvm::StringRef path) {
  llvm::SmallString<256> real;
  if (llvm::sys::fs::real_path(path, real))
    return path.str();
  return std::string(real);
}

bool Frontend::parseFile(llvm::StringRef path) {
  uint64_t size = 0;
  if (std::error_code ec = llvm::sys::fs::file_size(path, size)) {
    diags.errorNoLoc("cannot read '" + path + "': " + ec.message());
    return false;
  }
  if (size > Lexer::maxFileSize) {
    diags.errorNoLoc("'" + path + "' is " + llvm::Twine(size) +
                     " bytes; spec files are limited to " + llvm::Twine(Lexer::maxFileSize) +
                     " bytes");
    return false;
  }
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/false, /*RequiresNullTerminator=*/false);
  if (!buf) {
    diags.errorNoLoc("cannot read '" + path + "': " + buf.getError().message());
    return false;
  }
  std::string real = realPathOf(path);
  loaded[real] = 0;
  openStack.push_back(real);
  addBuffer(std::move(*buf), llvm::SMLoc());
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
    uint64_t size = 0;
    if (!llvm::sys::fs::file_size(resolved, size) && size > Lexer::maxFileSize) {
      diags.error(inc.pathRange.Start,
                  "included file '" + inc.path + "' is larger than the spec file limit",
                  {inc.pathRange});
      continue;
    }
    auto buf = llvm::MemoryBuffer::getFile(resolved, false, false);
    if (!buf) {
      diags.error(inc.pathRange.Start,
                  "cannot read included file '" + inc.path + "': " + buf.getError().message(),
                  {inc.pathRange});
      continue;
    }
    loaded[real] = 0;
    openStack.push_back(real);
    addBuffer(std::move(*buf), inc.range.Start);
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
