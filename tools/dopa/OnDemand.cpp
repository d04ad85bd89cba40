//===- OnDemand.cpp - The generated engine for specs this build did not compile ===//
//
// A spec given with --spec, or an example at a size CMake did not compile, runs on the generated
// engine through jit::compileNetwork (compiler/jit): compiled once into the cache, loaded from it
// afterwards. Also `dopa cache list|clear`. The runtime-only build has NoGenericEngine.cpp's
// versions instead, which say what is missing.
//
//===----------------------------------------------------------------------===//
#include "Console.h"
#include "Engines.h"

#include "dopa/dsl/Diagnostics.h"
#include "dopa/jit/NetworkCache.h"
#include "dopa/runtime/DimOverrides.h"
#include "dopa/runtime/Memory.h"

#include <cstdio>

using namespace dopa;
using namespace dopa::tool;

namespace {
std::string seconds(double s) {
  char text[32];
  std::snprintf(text, sizeof text, "%.2f s", s);
  return text;
}
} // namespace

bool tool::onDemandAvailable() { return true; }

const GeneratedSpec *tool::compileOnDemand(const SpecOptions &spec, const std::string &tool,
                                           int &exitCode) {
  DimParse dims = parseDimOverrides(spec.dimOverrides);
  if (!dims.ok()) {
    printError(tool, dims.error);
    exitCode = 2;
    return nullptr;
  }
  DiagnosticEngine::setProgramName("dopa"); // for the errors without a place in the spec
  jit::CompileRequest request{spec.path, spec.includeDirs, dims.dims, spec.network};
  request.traceBf16 = spec.traceBf16;
  jit::CacheOptions options;
  options.progress = [&](const std::string &line) { printNote(tool, line); };
  try {
    jit::LoadedNetwork net = jit::compileNetwork(request, options);
    if (!net.warnings.empty())
      printStderr(net.warnings); // the spec's warnings, as dopac (and the generic engine) show
    printNote(tool, net.fromCache
                        ? "loaded " + std::string(net.spec->name) + " from the cache in " +
                              seconds(net.seconds) + " (" + net.entryDir + ")"
                        : "compiled " + std::string(net.spec->name) + " in " +
                              seconds(net.seconds) + " into the cache (" + net.entryDir + ")");
    return net.spec;
  } catch (const jit::SpecError &e) {
    printStderr(e.what()); // the diagnostics, file:line:col, as dopac prints them
    exitCode = 1;
  } catch (const std::exception &e) {
    printError(tool, e.what());
    exitCode = 1;
  }
  return nullptr;
}

int tool::runCache(const std::string &action) {
  std::string dir = jit::defaultCacheDir();
  if (action == "dir") {
    printStdout(dir + "\n");
    return 0;
  }
  if (action == "clear") {
    int removed = jit::clearCache(dir);
    printStdout("removed " + std::to_string(removed) + " entr" + (removed == 1 ? "y" : "ies") +
                " from " + dir + "\n");
    return 0;
  }
  std::vector<jit::CacheEntry> entries = jit::listCache(dir);
  int64_t total = 0;
  std::string out;
  for (const jit::CacheEntry &e : entries) {
    total += e.bytes;
    out += e.key.substr(0, 12) + "  " + formatBytes(e.bytes) + "  ";
    out += e.valid ? e.network + (e.dims.empty() ? "" : " (" + e.dims + ")") + "  " + e.spec
                   : "invalid: " + e.problem + " (rebuilt on next use)";
    out += "\n";
  }
  out += std::to_string(entries.size()) + " entr" + (entries.size() == 1 ? "y" : "ies") + ", " +
         formatBytes(total) + " in " + dir + "\n";
  printStdout(out);
  return 0;
}
