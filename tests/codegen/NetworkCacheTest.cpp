//===- NetworkCacheTest.cpp - On-demand compilation and its cache ---------===//
//
// jit::compileNetwork's cache: keys follow the dimensions and the spec, an entry is reused in the
// process, listed and cleared; a corrupt library is reported as invalid; a spec with errors gives
// its diagnostics with their places; a compiler that is missing or fails gives an error naming it
// and its log, and leaves no entry behind. (Reuse across processes, concurrent builds and the
// rebuild of a corrupt entry are in tests/lit/on_demand.dopa.)
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include "dopa/jit/NetworkCache.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace dopa;
namespace fs = std::filesystem;

namespace {

const char *const kTinySpec = R"(network Tiny {
  dims H = 3
  input x : [2]
  state h : [H] = 0
  param w : [H, 2] ~ uniform(-0.5, 0.5)
  param u : [H, H] ~ uniform(-0.5, 0.5)
  step {
    hn = tanh(w @ x + u @ h)
    h' = hn
    output y = hn
  }
}
)";
std::string writeSpec(const std::string &dir, const std::string &name, const std::string &text) {
  std::string path = (fs::path(dir) / name).string();
  std::ofstream(path) << text;
  return path;
}

/// The message of the `Error` that compiling `request` throws ("" when none is thrown).
template <class Error>
std::string errorOf(const jit::CompileRequest &request, const jit::CacheOptions &options) {
  try {
    jit::compileNetwork(request, options);
  } catch (const Error &e) {
    return e.what();
  }
  return "";
}

} // namespace

TEST_CASE("the cache keys entries by spec and dimensions, lists and clears them") {
  std::string dir = test::scratchDir("network-cache");
  std::string spec = writeSpec(dir, "tiny.dopa", kTinySpec);
  jit::CacheOptions options;
  options.cacheDir = dir + "/cache";
  std::vector<std::string> progress;
  options.progress = [&](const std::string &line) { progress.push_back(line); };

  jit::LoadedNetwork a = jit::compileNetwork({spec, {}, {{"H", 5}}, ""}, options);
  REQUIRE(a.spec != nullptr);
  CHECK(std::string(a.spec->name) == "Tiny");
  CHECK(a.spec->info().numParams == 5 * 2 + 5 * 5);
  CHECK(!a.fromCache);
  REQUIRE(progress.size() == 1);
  CHECK(progress[0].find("compiling Tiny from") != std::string::npos);
  CHECK(fs::exists(fs::path(a.entryDir) / "libnetwork.so"));
  CHECK(fs::exists(fs::path(a.entryDir) / "build.log"));

  jit::LoadedNetwork b = jit::compileNetwork({spec, {}, {{"H", 5}}, ""}, options);
  CHECK(b.fromCache);
  CHECK(b.key == a.key);
  CHECK(progress.size() == 1); // nothing compiled

  jit::LoadedNetwork c = jit::compileNetwork({spec, {}, {}, ""}, options);
  CHECK(c.key != a.key);
  CHECK(c.spec->info().numParams == 3 * 2 + 3 * 3);

  std::vector<jit::CacheEntry> entries = jit::listCache(options.cacheDir);
  REQUIRE(entries.size() == 2);
  for (const jit::CacheEntry &e : entries) {
    CHECK(e.valid);
    CHECK(e.network == "Tiny");
    CHECK(e.bytes > 0);
  }
  CHECK((entries[0].dims == "H=5" || entries[1].dims == "H=5"));

  // A library that no longer matches its manifest's SHA-256 is listed as invalid.
  std::ofstream(fs::path(a.entryDir) / "libnetwork.so", std::ios::app) << "x";
  entries = jit::listCache(options.cacheDir);
  int invalid = 0;
  for (const jit::CacheEntry &e : entries)
    if (!e.valid) {
      ++invalid;
      CHECK(e.problem.find("SHA-256") != std::string::npos);
    }
  CHECK(invalid == 1);

  CHECK(jit::clearCache(options.cacheDir) == 2);
  CHECK(jit::listCache(options.cacheDir).empty());
  CHECK(jit::listCache(dir + "/no-such-cache").empty());
}

TEST_CASE("a spec with errors gives its diagnostics with their places") {
  std::string dir = test::scratchDir("network-cache-errors");
  std::string spec = writeSpec(dir, "bad.dopa", "network Bad {\n  input x : [Q]\n}\n");
  jit::CacheOptions options;
  options.cacheDir = dir + "/cache";
  std::string what = errorOf<jit::SpecError>({spec, {}, {}, ""}, options);
  INFO(what);
  CHECK(what.find("bad.dopa:2:") != std::string::npos);
  CHECK(what.find("error:") != std::string::npos);
  CHECK(jit::listCache(options.cacheDir).empty());
}

TEST_CASE("a missing or failing C++ compiler is an error naming it and its log") {
  std::string dir = test::scratchDir("network-cache-compiler");
  std::string spec = writeSpec(dir, "tiny.dopa", kTinySpec);
  jit::CacheOptions options;
  options.cacheDir = dir + "/cache";
  options.compiler = dir + "/no-such-c++";
  std::string missing = errorOf<jit::BuildError>({spec, {}, {{"H", 7}}, ""}, options);
  INFO(missing);
  CHECK(missing.find("cannot run the C++ compiler '" + options.compiler + "'") !=
        std::string::npos);
  CHECK(missing.find("build.log") != std::string::npos);
  // A compiler that runs and fails: its exit status, and the log kept under failed/.
  std::string fake =
      writeSpec(dir, "fake-c++", "#!/bin/sh\necho 'fake compiler: no' >&2\nexit 3\n");
  fs::permissions(fake, fs::perms::owner_all);
  options.compiler = fake;
  std::string failed = errorOf<jit::BuildError>({spec, {}, {{"H", 7}}, ""}, options);
  INFO(failed);
  CHECK(failed.find("failed (exit 3)") != std::string::npos);
  std::string::size_type at = failed.find("its log: ");
  REQUIRE(at != std::string::npos);
  std::string log = failed.substr(at + 9, failed.find(' ', at + 9) - (at + 9));
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.find("fake compiler: no") != std::string::npos);
  CHECK(jit::listCache(options.cacheDir).empty());
}
