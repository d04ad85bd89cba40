//===- NetworkCache.h - Specs compiled on demand, cached as shared libraries ===//
//
// compileNetwork() turns a spec at any dimensions into a loaded generated network without CMake:
// the dopac pipeline runs in-process, the C++ it emits is compiled by the system compiler with the
// build's flags into a shared library in a cache folder, and the library is loaded with dlopen.
// The entry's key is a SHA-256 over everything the library depends on: the generated source itself
// (so the spec, its includes, the dimensions and the compiler version that produced it), the
// runtime headers it is compiled against, the C++ compiler, its version and flags, and the ABI
// number of GeneratedSpec. A second request with the same key loads the cached library at once.
//
// An entry is a folder <cache>/<key>/ holding the sources, the library, the compiler's log and
// entry.json (written last: the key material and the library's SHA-256). Builds happen in a
// private temporary folder renamed into place, under an exclusive lock per key, so concurrent
// processes build a key once; an entry whose manifest or library does not check out is removed and
// rebuilt. Loaded libraries stay loaded for the life of the process (networks point into them).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Generated.h"

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace dopa::jit {

/// What to compile: a spec, one of its networks, at some dimensions.
struct CompileRequest {
  std::string specPath;
  std::vector<std::string> includeDirs;
  std::map<std::string, int64_t> dims; // overrides; empty: the spec's own
  std::string network;                 // empty: the spec's only network
  bool inputGradients = false;         // the backward also gives dLoss/d inputs (dopac
                                       // --input-gradients; the Python module asks for them)
  /// Outputs W @ x (+ b) with at least this many weight elements become batched readouts (0: all,
  /// negative: none); unset: dopac's default (--batched-readouts=auto).
  std::optional<int64_t> batchedReadoutMin = std::nullopt;
  /// Carry state-only matrix products over the step boundary (dopac --carry-products, default on).
  bool carryProducts = true;
  /// Store the traces in bfloat16 in the float build (dopac --trace-precision=bf16).
  bool traceBf16 = false;
};

/// How to compile and where to cache.
struct CacheOptions {
  std::string cacheDir; // empty: defaultCacheDir()
  std::string compiler; // empty: $DOPA_CXX, else the compiler this build used
  /// Called with one line of progress ("compiling ... (first use, about 20 s)"); may be empty.
  std::function<void(const std::string &)> progress;
};

/// A compiled network, loaded.
struct LoadedNetwork {
  const GeneratedSpec *spec = nullptr;
  std::string key;        // the entry's SHA-256 (hex)
  std::string entryDir;   // <cache>/<key>
  bool fromCache = false; // loaded without compiling
  double seconds = 0;     // the whole request: pipeline, (compile,) load
  std::string warnings;   // the spec's warnings, as dopac prints them (empty: none)
};

/// A spec with errors: `what()` holds the diagnostics as dopac prints them (file:line:col).
struct SpecError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// The C++ compiler failed or could not run: `what()` names it and the log's path.
struct BuildError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Compile (or load from the cache) the network `request` names. Throws SpecError, BuildError,
/// or std::runtime_error for I/O problems with the cache folder (naming the path).
LoadedNetwork compileNetwork(const CompileRequest &request, const CacheOptions &options = {});

/// $DOPA_CACHE_DIR, else $XDG_CACHE_HOME/dopa, else $HOME/.cache/dopa.
std::string defaultCacheDir();

/// One entry of a cache folder, as `dopa cache list` shows it.
struct CacheEntry {
  std::string key, dir;
  std::string spec, network, dims; // from the manifest ("" when it is unreadable)
  int64_t bytes = 0;               // the folder's files
  bool valid = false;              // manifest and library check out
  std::string problem;             // why not
};

/// The entries under `cacheDir`, newest first. A missing folder is an empty cache.
std::vector<CacheEntry> listCache(const std::string &cacheDir);

/// Remove every entry (and leftover temporary folder) under `cacheDir`; returns how many entries.
int clearCache(const std::string &cacheDir);

} // namespace dopa::jit
