//===- Grad.cpp - `dopa grad`: one forward and one BPTT pass from files ----===//
//
// Reads parameters (or initializes them from a seed), per-step inputs and per-step output
// gradients from safetensors files, runs the network forward over the T steps and back through
// time, and writes every parameter's gradient and the per-step outputs. This is what a user runs to
// check a spec against their own PyTorch code. `--engine generic` (the default; full build)
// interprets any spec; `--engine generated` runs the example compiled into this build that the spec
// names (<task>/<variant>.dopa, at the -D sizes), in float or double (GradRun.h).
//
//===----------------------------------------------------------------------===//
#include "Commands.h"
#include "Console.h"
#include "Engines.h"
#include "GradRun.h"

#include "dopa/examples/ExampleNetworks.h"

using namespace dopa;
using namespace dopa::tool;

namespace {

int runGenerated(const GradOptions &opt) {
  std::string task, variant;
  if (!splitExampleName(opt.spec.path, task, variant)) {
    printError("dopa grad", "--engine generated takes an example, <task>/<variant> or its spec "
                            "path (e.g. cue_reward/modul); got '" +
                                opt.spec.path + "'");
    return 2;
  }
  std::string dims = canonicalDims(opt.spec.dimOverrides);
  const ExampleNetwork *e = findExample(task, variant, dims);
  if (!e) {
    printError("dopa grad", "no generated network for " + task + " " + variant +
                                (dims.empty() ? "" : " at " + dims) +
                                " in this build (compiled: " + compiledDims(task, variant) + ")");
    return 2;
  }
  if (opt.doublePrecision) {
    GeneratedExecutor<double> exec(e->spec());
    return grad::runWith(opt, exec);
  }
  GeneratedExecutor<float> exec(e->spec());
  return grad::runWith(opt, exec);
}

} // namespace

int tool::runGrad(const GradOptions &opt) {
  if (opt.engine != "generated")
    return runGenericGrad(opt);
  try {
    return runGenerated(opt);
  } catch (const std::exception &e) {
    printError("dopa grad", e.what());
    return 1;
  }
}
