//===- Frontend.h - Load, parse and check a spec with its includes --------===//
//
// The Frontend owns the SourceMgr and the parsed files of one compilation: the main spec and every
// file it includes, transitively. Includes are resolved relative to the including file, then along
// the include path; each file is parsed once (by real path) and include cycles are diagnosed.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/dsl/AST.h"
#include "dopa/dsl/Diagnostics.h"
#include "dopa/dsl/Sema.h"

#include "llvm/ADT/StringMap.h"
#include "llvm/Support/SourceMgr.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dopa {

class Frontend {
public:
  explicit Frontend(std::vector<std::string> includeDirs = {});

  DiagnosticEngine &getDiagnostics() { return diags; }
  llvm::SourceMgr &getSourceMgr() { return sourceMgr; }

  /// Load and parse `path` and its includes. False when the main file cannot be read (diagnosed).
  bool parseFile(llvm::StringRef path);
  /// Read `path` into the source manager without parsing it (dopac --emit=tokens): the buffer id,
  /// or nullopt when it is not a readable regular file of at most Lexer::maxFileSize bytes
  /// (diagnosed). Special files are refused before they are opened.
  std::optional<unsigned> loadFile(llvm::StringRef path);
  /// Parse a spec held in memory (tests, the fuzzer). Includes resolve along the include path.
  bool parseBuffer(llvm::StringRef contents, llvm::StringRef name);

  /// The parsed files, the main file first.
  std::vector<const ast::File *> getFiles() const;
  const ast::File *getMainFile() const { return files.empty() ? nullptr : files.front().get(); }

  /// Run semantic analysis over everything parsed; null when there were errors.
  std::unique_ptr<sema::Program> check(const sema::DimOverrides *overrides = nullptr);

private:
  bool addBuffer(std::unique_ptr<llvm::MemoryBuffer> buffer, llvm::SMLoc includeLoc);
  void parseBufferAndIncludes(unsigned bufferId);
  std::string resolveInclude(llvm::StringRef path, unsigned fromBuffer);

  llvm::SourceMgr sourceMgr;
  DiagnosticEngine diags;
  std::vector<std::string> includeDirs;
  std::vector<std::unique_ptr<ast::File>> files;
  llvm::StringMap<unsigned> loaded;   // real path -> buffer id
  std::vector<std::string> openStack; // real paths of files being parsed (cycle detection)
};

} // namespace dopa
