//===- NetworkCache.cpp - Specs compiled on demand, cached as shared libraries ===//
//
// The pipeline and the C++ emitter run in-process (as dopac --emit=cpp would), the system compiler
// builds the source into <cache>/<key>/libnetwork.so, dlopen loads it. The build's compiler, flags
// and include folders come from CMake (DOPA_JIT_* definitions); the installed layout is found
// next to the library that holds this code, the source tree's otherwise. See NetworkCache.h for
// the key, the entry's files and the locking.
//
//===----------------------------------------------------------------------===//
#include "dopa/jit/NetworkCache.h"

#include "dopa/compiler/Emit.h"
#include "dopa/compiler/Pipeline.h"
#include "dopa/runtime/FileIO.h"

#include "llvm/Support/raw_ostream.h"

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dlfcn.h>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <spawn.h>
#include <sstream>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

using namespace dopa;
using namespace dopa::jit;
namespace fs = std::filesystem;

#ifndef DOPA_JIT_CXX
#define DOPA_JIT_CXX "c++"
#endif
#ifndef DOPA_JIT_FLAGS
#define DOPA_JIT_FLAGS "-O3"
#endif
#ifndef DOPA_JIT_RUNTIME_INCLUDE
#define DOPA_JIT_RUNTIME_INCLUDE ""
#endif
#ifndef DOPA_JIT_EIGEN_INCLUDE
#define DOPA_JIT_EIGEN_INCLUDE "/usr/include/eigen3"
#endif
#ifndef DOPA_VERSION
#define DOPA_VERSION "unknown"
#endif

namespace {

constexpr const char *kLibrary = "libnetwork.so";
constexpr const char *kManifest = "entry.json";
constexpr const char *kNamespace = "jit_network";
constexpr int kManifestFormat = 1;

std::string sha256Hex(const std::string &bytes) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed (OpenSSL)");
  static const char *hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out += hex[digest[i] >> 4];
    out += hex[digest[i] & 15];
  }
  return out;
}

std::string readFile(const fs::path &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw std::runtime_error("cannot read " + path.string() + ": " + std::strerror(errno));
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

/// Split a flags string at spaces (the build's flags have no quoted arguments).
std::vector<std::string> splitFlags(const std::string &flags) {
  std::vector<std::string> out;
  std::istringstream in(flags);
  for (std::string f; in >> f;)
    out.push_back(f);
  return out;
}

/// The folder that holds dopa/runtime/Generated.h: $DOPA_INCLUDE_DIR, else an installed layout
/// around the binary that holds this code (<prefix>/bin/dopa, or the Python module in
/// <prefix>/lib/python3/dist-packages/dopa: <prefix>/include within four levels up), else the
/// source tree this build came from.
std::string runtimeIncludeDir() {
  if (const char *env = std::getenv("DOPA_INCLUDE_DIR"); env && *env)
    return env;
  Dl_info self{};
  if (dladdr(reinterpret_cast<void *>(&runtimeIncludeDir), &self) && self.dli_fname) {
    std::error_code ec;
    fs::path dir = fs::canonical(self.dli_fname, ec).parent_path();
    for (int up = 0; !ec && up < 4 && dir.has_relative_path(); ++up, dir = dir.parent_path())
      if (fs::exists(dir.parent_path() / "include/dopa/runtime/GeneratedSupport.h", ec))
        return (dir.parent_path() / "include").string();
  }
  return DOPA_JIT_RUNTIME_INCLUDE;
}

/// The compiler the cache builds with: the option, $DOPA_CXX, or the one this build used.
std::string compilerOf(const CacheOptions &options) {
  if (!options.compiler.empty())
    return options.compiler;
  if (const char *env = std::getenv("DOPA_CXX"); env && *env)
    return env;
  return DOPA_JIT_CXX;
}

/// Run argv with stdout and stderr into `logPath`; returns the exit status (127: could not run).
int runLogged(const std::vector<std::string> &argv, const std::string &logPath) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, logPath.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  std::vector<char *> args;
  args.reserve(argv.size() + 1);
  for (const std::string &a : argv)
    args.push_back(const_cast<char *>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = 0;
  int rc = posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    std::ofstream(logPath, std::ios::app)
        << "cannot run " << argv[0] << ": " << std::strerror(rc) << "\n";
    return 127;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno == ECHILD)
      return 0; // a host that ignores SIGCHLD reaps it: the outputs' checks decide
    if (errno != EINTR)
      return 127;
  }
  if (WIFEXITED(status))
    return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/// `compiler --version`'s first line ("" when it does not run), once per compiler and process.
std::string compilerVersion(const std::string &compiler, const fs::path &scratch) {
  static std::mutex mutex;
  static std::map<std::string, std::string> known;
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = known.find(compiler); it != known.end())
    return it->second;
  fs::path log = scratch / ("version." + std::to_string(getpid()) + "." +
                            std::to_string(std::random_device{}()) + ".txt");
  std::error_code ignored;
  fs::remove(log, ignored);
  std::string version;
  if (runLogged({compiler, "--version"}, log.string()) == 0) {
    std::istringstream in(readFile(log));
    std::getline(in, version);
  }
  std::error_code ec;
  fs::remove(log, ec);
  known[compiler] = version;
  return version;
}

/// Every file of the runtime headers the generated code is compiled against, names and contents.
std::string runtimeHeaders(const std::string &includeDir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto &e : fs::directory_iterator(fs::path(includeDir) / "dopa/runtime", ec))
    if (e.is_regular_file())
      files.push_back(e.path());
  if (ec || files.empty())
    throw BuildError("the dopa runtime headers are not in " + includeDir +
                     "/dopa/runtime (set DOPA_INCLUDE_DIR to the folder that holds them)");
  std::sort(files.begin(), files.end());
  std::string all;
  for (const fs::path &f : files)
    all += f.filename().string() + "\n" + readFile(f) + "\n";
  return all;
}

/// The CPU the flags' -march=native resolves to: /proc/cpuinfo's model name and feature flags (a
/// cache shared by machines of different CPUs, e.g. a home folder on NFS, keeps one entry each).
std::string machineIdentity() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model, flags;
  while (std::getline(in, line) && (model.empty() || flags.empty())) {
    if (model.empty() && line.rfind("model name", 0) == 0)
      model = line;
    if (flags.empty() && (line.rfind("flags", 0) == 0 || line.rfind("Features", 0) == 0))
      flags = line;
  }
  return "cpu " + model + "\n" + flags;
}

/// Eigen's version (its headers are compiled into the library).
std::string eigenVersion() {
  std::ifstream in(fs::path(DOPA_JIT_EIGEN_INCLUDE) / "Eigen/src/Core/util/Macros.h");
  std::string line, out = "eigen";
  while (std::getline(in, line))
    if (line.rfind("#define EIGEN_WORLD_VERSION", 0) == 0 ||
        line.rfind("#define EIGEN_MAJOR_VERSION", 0) == 0 ||
        line.rfind("#define EIGEN_MINOR_VERSION", 0) == 0)
      out += " " + line.substr(line.rfind(' ') + 1);
  return out;
}

std::string dimsText(const std::map<std::string, int64_t> &dims) {
  std::string out;
  for (const auto &[name, value] : dims)
    out += (out.empty() ? "" : ",") + name + "=" + std::to_string(value);
  return out;
}

/// What the cache needs from the pipeline: the generated translation unit and its network's name.
struct Source {
  std::string code, network;
  std::string warnings; // the front end's, as dopac prints them (empty: none)
};

/// The spec through the pipeline and the C++ emitter, plus the entry points the loader looks up.
Source generate(const CompileRequest &request) {
  Frontend frontend(request.includeDirs);
  std::string diagnostics;
  llvm::raw_string_ostream diagOut(diagnostics);
  frontend.getDiagnostics().setOutput(diagOut);
  PipelineOptions pipeline;
  pipeline.inputGradients = request.inputGradients;
  pipeline.batchedReadoutMin = request.batchedReadoutMin.value_or(kAutoReadoutMinNumel);
  pipeline.carryProducts = request.carryProducts;
  pipeline.traceBf16 = request.traceBf16;
  std::optional<PipelineResult> result =
      compileSpec(frontend, request.specPath, request.dims, request.network, pipeline);
  if (!result || frontend.getDiagnostics().hasErrors()) {
    diagOut.flush();
    throw SpecError(diagnostics.empty() ? "errors in " + request.specPath : diagnostics);
  }
  EmitOptions options;
  // The spec's path as the generated code names it (#line, banner) is part of the cache key: the
  // same file named two ways (./a.dopa, /abs/a.dopa) is one entry, not two compiles.
  std::error_code ec;
  std::filesystem::path canonical = std::filesystem::weakly_canonical(request.specPath, ec);
  options.specPath = ec ? request.specPath : canonical.string();
  options.outputName = "network.cpp";
  options.cppNamespace = kNamespace;
  std::string body =
      emitCppNetwork(result->graphs, *result->fused, frontend.getSourceMgr(), options);
  Source s;
  diagOut.flush();
  s.warnings = diagnostics;
  s.network = result->graphs.forward.name;
  s.code = emitCppFile({body}, options);
  s.code +=
      std::string("\n// Entry points of the on-demand compiled library (NetworkCache.cpp).\n") +
      "#define DOPA_JIT_EXPORT extern \"C\" __attribute__((visibility(\"default\")))\n" +
      "DOPA_JIT_EXPORT int dopa_jit_abi() { return dopa::kGeneratedAbi; }\n" +
      "DOPA_JIT_EXPORT uint64_t dopa_jit_layout() { return dopa::layoutSignature(); }\n" +
      "DOPA_JIT_EXPORT const dopa::GeneratedSpec *dopa_jit_spec() {\n" +
      "  return &dopa::generated::" + kNamespace + "::spec();\n}\n";
  return s;
}

/// Everything the library depends on besides the source: compiler, flags, headers, ABI.
struct Toolchain {
  std::string compiler, version, includeDir;
  std::vector<std::string> flags;
};

std::vector<std::string> compileCommand(const Toolchain &t, const fs::path &dir) {
  std::vector<std::string> argv{t.compiler};
  argv.insert(argv.end(), t.flags.begin(), t.flags.end());
  argv.insert(argv.end(), {"-fPIC", "-shared", "-fvisibility=hidden", "-DEIGEN_DONT_PARALLELIZE",
                           "-I", t.includeDir, "-isystem", DOPA_JIT_EIGEN_INCLUDE,
                           (dir / "network.cpp").string(), "-o", (dir / kLibrary).string()});
  return argv;
}

std::string commandText(const std::vector<std::string> &argv) {
  std::string out;
  for (const std::string &a : argv)
    out += (out.empty() ? "" : " ") + a;
  return out;
}

/// An exclusive lock on <cache>/locks/<key>.lock for the life of the object.
class KeyLock {
public:
  KeyLock(const fs::path &cache, const std::string &key) {
    fs::path dir = cache / "locks";
    std::error_code ec;
    fs::create_directories(dir, ec);
    path = (dir / (key + ".lock")).string();
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
      throw std::runtime_error("cannot create the cache lock " + path + ": " +
                               std::strerror(errno));
    while (::flock(fd, LOCK_EX) != 0)
      if (errno != EINTR) {
        int error = errno;
        ::close(fd);
        throw std::runtime_error("cannot lock " + path + ": " + std::strerror(error));
      }
  }
  KeyLock(const KeyLock &) = delete;
  KeyLock &operator=(const KeyLock &) = delete;
  ~KeyLock() { ::close(fd); }

private:
  std::string path;
  int fd = -1;
};

/// Why the entry in `dir` cannot be used ("" when it can): its manifest, key and library hash.
std::string entryProblem(const fs::path &dir, const std::string &key, nlohmann::json *manifest) {
  std::error_code ec;
  if (!fs::exists(dir / kManifest, ec))
    return "no " + std::string(kManifest) + " (an interrupted build)";
  nlohmann::json m;
  try {
    m = nlohmann::json::parse(readFile(dir / kManifest));
    if (m.at("format").get<int>() != kManifestFormat)
      return "manifest format " + m.at("format").dump();
    if (!key.empty() && m.at("key").get<std::string>() != key)
      return "its manifest names another key";
    std::string library = readFile(dir / kLibrary);
    if (sha256Hex(library) != m.at("library_sha256").get<std::string>())
      return std::string(kLibrary) + " does not match its SHA-256 in the manifest";
  } catch (const std::exception &e) {
    return std::string("unreadable: ") + e.what();
  }
  if (manifest)
    *manifest = std::move(m);
  return "";
}

void removeAll(const fs::path &dir) {
  std::error_code ec;
  fs::remove_all(dir, ec);
}

/// A fresh private folder under <cache>/tmp for one build.
fs::path makeTempDir(const fs::path &cache, const std::string &key) {
  std::random_device rd;
  for (int attempt = 0; attempt < 16; ++attempt) {
    fs::path dir =
        cache / "tmp" /
        (key.substr(0, 16) + "." + std::to_string(getpid()) + "." + std::to_string(rd()));
    std::error_code ec;
    fs::create_directories(dir.parent_path(), ec);
    if (fs::create_directory(dir, ec) && !ec)
      return dir;
    if (ec)
      throw std::runtime_error("cannot create " + dir.string() + ": " + ec.message());
  }
  throw std::runtime_error("cannot create a temporary folder under " + (cache / "tmp").string());
}

/// Build the library for `source` in a temporary folder and rename it into <cache>/<key>.
void build(const fs::path &cache, const std::string &key, const Source &source,
           const CompileRequest &request, const Toolchain &tools, const CacheOptions &options) {
  fs::path tmp = makeTempDir(cache, key);
  fs::path entry = cache / key;
  try {
    {
      std::ofstream out(tmp / "network.cpp", std::ios::binary);
      out << source.code;
      if (!out.flush())
        throw std::runtime_error("cannot write " + (tmp / "network.cpp").string());
    }
    std::vector<std::string> argv = compileCommand(tools, tmp);
    std::string log = (tmp / "build.log").string();
    std::ofstream(log) << commandText(argv) << "\n";
    if (options.progress)
      options.progress("compiling " + source.network + " from " + request.specPath +
                       (request.dims.empty() ? "" : " at " + dimsText(request.dims)) + " with " +
                       tools.compiler + " (first use of this spec and size)");
    auto start = std::chrono::steady_clock::now();
    int rc = runLogged(argv, log);
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (rc != 0) {
      // Keep the log where the user can read it: the entry's folder is not made.
      fs::path failed = cache / "failed" / key;
      removeAll(failed);
      std::error_code ec;
      fs::create_directories(failed.parent_path(), ec);
      fs::rename(tmp, failed, ec);
      std::string where = ec ? log : (failed / "build.log").string();
      throw BuildError((rc == 127 ? "cannot run the C++ compiler '" + tools.compiler + "'"
                                  : "the C++ compiler '" + tools.compiler + "' failed (exit " +
                                        std::to_string(rc) + ")") +
                       " building " + request.specPath + "; its log: " + where +
                       " (set DOPA_CXX to choose another compiler)");
    }
    nlohmann::json m;
    m["format"] = kManifestFormat;
    m["key"] = key;
    m["spec"] = fs::absolute(request.specPath).string();
    m["network"] = source.network;
    m["dims"] = dimsText(request.dims);
    m["compiler"] = tools.compiler;
    m["compiler_version"] = tools.version;
    m["command"] = commandText(argv);
    m["compile_seconds"] = seconds;
    m["created"] = std::time(nullptr);
    m["dopa_version"] = DOPA_VERSION;
    m["library_sha256"] = sha256Hex(readFile(tmp / kLibrary));
    writeFileAtomically((tmp / kManifest).string(), m.dump(2) + "\n");
    std::error_code ec;
    fs::rename(tmp, entry, ec);
    if (ec) {
      // Another process put a valid entry there first (or a broken one is in the way).
      if (entryProblem(entry, key, nullptr).empty()) {
        removeAll(tmp);
        return;
      }
      removeAll(entry);
      fs::rename(tmp, entry, ec);
      if (ec)
        throw std::runtime_error("cannot move " + tmp.string() + " to " + entry.string() + ": " +
                                 ec.message());
    }
  } catch (...) {
    removeAll(tmp);
    throw;
  }
}

/// Load <entry>/libnetwork.so and check its ABI; the spec, or an error message.
const GeneratedSpec *load(const fs::path &entry, std::string &error) {
  std::string path = (entry / kLibrary).string();
  void *handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *e = dlerror();
    error = e ? e : "dlopen failed";
    return nullptr;
  }
  using AbiFn = int (*)();
  using SpecFn = const GeneratedSpec *(*)();
  using LayoutFn = uint64_t (*)();
  auto abi = reinterpret_cast<AbiFn>(dlsym(handle, "dopa_jit_abi"));
  auto layout = reinterpret_cast<LayoutFn>(dlsym(handle, "dopa_jit_layout"));
  auto spec = reinterpret_cast<SpecFn>(dlsym(handle, "dopa_jit_spec"));
  // Nothing points into the library yet: a refused one is unloaded, so a rebuild loads afresh.
  auto refuse = [&](std::string why) {
    error = std::move(why);
    dlclose(handle);
    return nullptr;
  };
  if (!abi || !layout || !spec)
    return refuse(path + " has no dopa entry points");
  if (abi() != kGeneratedAbi)
    return refuse(path + " was built for generated-network ABI " + std::to_string(abi()) +
                  ", this dopa has " + std::to_string(kGeneratedAbi));
  if (layout() != layoutSignature())
    return refuse(path + " was compiled against runtime headers whose types differ from this "
                         "dopa's (set DOPA_INCLUDE_DIR to the headers dopa was built with)");
  // Never dlclose: the networks made from this spec call into the library.
  return spec();
}

} // namespace

std::string jit::defaultCacheDir() {
  if (const char *dir = std::getenv("DOPA_CACHE_DIR"); dir && *dir)
    return dir;
  if (const char *xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return (fs::path(xdg) / "dopa").string();
  if (const char *home = std::getenv("HOME"); home && *home)
    return (fs::path(home) / ".cache" / "dopa").string();
  return (fs::temp_directory_path() / "dopa-cache").string();
}

LoadedNetwork jit::compileNetwork(const CompileRequest &request, const CacheOptions &options) {
  auto start = std::chrono::steady_clock::now();
  fs::path cache = options.cacheDir.empty() ? defaultCacheDir() : options.cacheDir;
  std::error_code ec;
  fs::create_directories(cache, ec);
  if (ec || !fs::is_directory(cache, ec))
    throw std::runtime_error("cannot use the cache folder " + cache.string() + ": " +
                             (ec ? ec.message() : "not a folder"));

  Source source = generate(request);
  Toolchain tools;
  tools.compiler = compilerOf(options);
  tools.version = compilerVersion(tools.compiler, cache);
  tools.includeDir = runtimeIncludeDir();
  tools.flags = splitFlags(DOPA_JIT_FLAGS);
  std::string material = "dopa-jit " + std::to_string(kManifestFormat) + " abi " +
                         std::to_string(kGeneratedAbi) + "\ncompiler " + tools.compiler + "\n" +
                         tools.version + "\nflags " + DOPA_JIT_FLAGS + "\n" + machineIdentity() +
                         "\n" + eigenVersion() + "\n" + runtimeHeaders(tools.includeDir) +
                         "\nsource\n" + source.code;
  std::string key = sha256Hex(material);

  // One process per key at a time: the in-process table, then the folder under a file lock.
  static std::mutex mutex;
  static std::map<std::string, const GeneratedSpec *> loaded; // by entry folder
  std::lock_guard<std::mutex> guard(mutex);
  LoadedNetwork out;
  out.key = key;
  out.warnings = source.warnings;
  out.entryDir = (cache / key).string();
  auto finish = [&](const GeneratedSpec *spec, bool fromCache) {
    out.spec = spec;
    out.fromCache = fromCache;
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
  };
  if (auto it = loaded.find(out.entryDir); it != loaded.end()) {
    std::error_code ec;
    if (fs::exists(cache / key / kLibrary, ec))
      return finish(it->second, true);
    // The folder was cleared (dopa cache clear) while this process kept the network loaded:
    // build it again, so that the cache holds it for other processes, and keep the loaded one
    // (which goes on working if the build fails: only the cache misses it then).
    KeyLock lock(cache, key);
    bool rebuilt = false;
    if (!entryProblem(cache / key, key, nullptr).empty()) {
      try {
        removeAll(cache / key);
        build(cache, key, source, request, tools, options);
        rebuilt = true;
      } catch (const std::exception &e) {
        if (options.progress)
          options.progress(std::string("could not put the network back into the cache (") +
                           e.what() + "); the one loaded in this process goes on");
      }
    }
    return finish(it->second, !rebuilt);
  }

  KeyLock lock(cache, key);
  fs::path entry = cache / key;
  bool built = false;
  if (!entryProblem(entry, key, nullptr).empty()) {
    removeAll(entry);
    build(cache, key, source, request, tools, options);
    built = true;
  }
  std::string error;
  const GeneratedSpec *spec = load(entry, error);
  if (!spec && !built) {
    // A valid-looking entry that does not load (a changed system library): build it again.
    removeAll(entry);
    build(cache, key, source, request, tools, options);
    built = true;
    spec = load(entry, error);
  }
  if (!spec)
    throw BuildError("cannot load the compiled network " + (entry / kLibrary).string() + ": " +
                     error);
  loaded[out.entryDir] = spec;
  return finish(spec, !built);
}

std::vector<CacheEntry> jit::listCache(const std::string &cacheDir) {
  // Error-code iteration throughout: entries come and go while other processes build.
  std::vector<std::pair<fs::file_time_type, CacheEntry>> found;
  std::error_code ec;
  for (fs::directory_iterator it(cacheDir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path path = it->path();
    std::string name = path.filename().string();
    std::error_code fe;
    if (!it->is_directory(fe) || name.size() != 64 ||
        name.find_first_not_of("0123456789abcdef") != std::string::npos)
      continue;
    CacheEntry c;
    c.key = name;
    c.dir = path.string();
    nlohmann::json m;
    c.problem = entryProblem(path, name, &m);
    c.valid = c.problem.empty();
    if (c.valid) {
      c.spec = m.value("spec", "");
      c.network = m.value("network", "");
      c.dims = m.value("dims", "");
    }
    for (fs::recursive_directory_iterator f(path, fe), fend; !fe && f != fend; f.increment(fe)) {
      std::error_code se;
      if (f->is_regular_file(se))
        c.bytes += int64_t(f->file_size(se));
    }
    found.emplace_back(fs::last_write_time(path, fe), std::move(c));
  }
  std::sort(found.begin(), found.end(),
            [](const auto &a, const auto &b) { return a.first > b.first; });
  std::vector<CacheEntry> out;
  out.reserve(found.size());
  for (auto &f : found)
    out.push_back(std::move(f.second));
  return out;
}

int jit::clearCache(const std::string &cacheDir) {
  // Each entry under its key's lock (a process building or loading it finishes first); the lock
  // files stay (another process may hold one); temporary folders of live processes stay.
  int removed = 0;
  for (const CacheEntry &e : listCache(cacheDir)) {
    KeyLock lock(cacheDir, e.key);
    removeAll(e.dir);
    ++removed;
  }
  // Only what dopa made: failed/<key>, and tmp/<16 hex>.<pid>.<number> of a process that is gone.
  // Anything else there (a mistaken --cache-dir pointing at a user's folder) is left alone.
  auto isHex = [](const std::string &text, size_t size) {
    return text.size() == size && text.find_first_not_of("0123456789abcdef") == std::string::npos;
  };
  std::error_code ec;
  for (fs::directory_iterator it(fs::path(cacheDir) / "failed", ec), end; !ec && it != end;
       it.increment(ec))
    if (isHex(it->path().filename().string(), 64)) {
      KeyLock lock(cacheDir, it->path().filename().string());
      removeAll(it->path());
    }
  for (fs::directory_iterator it(fs::path(cacheDir) / "tmp", ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    size_t first = name.find('.'), second = name.find('.', first + 1);
    if (first == std::string::npos || second == std::string::npos ||
        !isHex(name.substr(0, first), 16) ||
        name.find_first_not_of("0123456789.", first) != std::string::npos)
      continue;
    long pid = std::atol(name.c_str() + first + 1);
    if (pid > 0 && ::kill(pid_t(pid), 0) != 0 && errno == ESRCH)
      removeAll(it->path());
  }
  return removed;
}
