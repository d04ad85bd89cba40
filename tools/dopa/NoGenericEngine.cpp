//===- NoGenericEngine.cpp - The runtime-only build has no generic engine --===//
//
// The runtime-only build of dopa (-DDOPA_RUNTIME_ONLY=ON) links no compiler, so it cannot interpret
// a spec; it runs the generated engines on the networks compiled into it. Asking for the generic
// engine, or for a spec or size that would have to be compiled on demand, is an error that says so.
//
//===----------------------------------------------------------------------===//
#include "Console.h"
#include "Engines.h"

using namespace dopa;
using namespace dopa::tool;

namespace {
const char *const kWhy = "--engine generic needs the full build of dopa (this one is runtime-only: "
                         "no compiler); use --engine generated or cuda";
} // namespace

EngineNetwork tool::makeGenericNetwork(const EngineRequest &, const std::string &tool) {
  printError(tool, kWhy);
  EngineNetwork out;
  out.exitCode = 2;
  return out;
}

int tool::runGenericGrad(const GradOptions &) {
  printError("dopa grad", kWhy);
  return 2;
}

bool tool::onDemandAvailable() { return false; }

const GeneratedSpec *tool::compileOnDemand(const SpecOptions &spec, const std::string &tool,
                                           int &exitCode) {
  printError(tool, "compiling " + spec.path +
                       " on demand needs the full build of dopa (this one is runtime-only: no "
                       "compiler); use a network compiled into it");
  exitCode = 2;
  return nullptr;
}

int tool::runCache(const std::string &) {
  printError("dopa cache", "the runtime-only build compiles nothing on demand, so it has no cache");
  return 2;
}
