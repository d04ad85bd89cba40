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
#include "dopa/runtime/FileIO.h"
#include "dopa/runtime/Memory.h"

#include <algorithm>
#include <filesystem>

using namespace dopa;
using namespace dopa::tool;

namespace {

/// Whether the files the run reads (--params, --inputs, --output-grads) fit in memory; reported
/// otherwise, before any is read. Reading a safetensors file holds its bytes and then the tensors
/// copied out of them: at least twice its size. Only regular files are read: a device would be
/// read forever (/dev/zero) and a FIFO blocks.
bool inputFilesFit(const GradOptions &opt) {
  namespace fs = std::filesystem;
  int64_t total = 0;
  for (const std::string *path : {&opt.paramsPath, &opt.inputsPath, &opt.outputGradsPath}) {
    if (path->empty())
      continue;
    std::error_code ec;
    fs::file_status status = fs::status(*path, ec);
    if (ec || !fs::exists(status))
      continue; // reading it says what is wrong, naming it
    if (!fs::is_regular_file(status)) {
      printError("dopa grad", *path + (fs::is_directory(status)
                                           ? ": is a directory"
                                           : ": is not a regular file (a device, FIFO or socket)"));
      return false;
    }
    uintmax_t size = fs::file_size(*path, ec);
    if (!ec)
      total = saturatingAdd(total, int64_t(std::min<uintmax_t>(size, uintmax_t(kUnboundedBytes))));
  }
  try {
    checkMemoryFits(saturatingMul(total, 2),
                    "reading --params, --inputs and --output-grads: twice their " +
                        formatBytes(total),
                    opt.maxMemory);
  } catch (const DataError &e) {
    printError("dopa grad", e.what());
    return false;
  }
  return true;
}

/// The generated network --spec names: an example compiled into this build, else the spec file
/// (or the example's) compiled on demand; null after an error (exitCode set).
const GeneratedSpec *generatedSpec(const GradOptions &opt, int &exitCode) {
  std::string task, variant;
  bool isExample = splitExampleName(opt.spec.path, task, variant);
  if (isExample)
    if (const ExampleNetwork *e = findExample(task, variant, canonicalDims(opt.spec.dimOverrides)))
      return &e->spec();
  std::error_code ec;
  if (onDemandAvailable() && std::filesystem::is_regular_file(opt.spec.path, ec))
    return compileOnDemand(opt.spec, "dopa grad", exitCode);
  if (onDemandAvailable() && isExample) {
    SpecOptions spec = opt.spec;
    spec.path = exampleSpecPath(task, variant);
    spec.includeDirs.push_back(exampleDir(task));
    if (std::filesystem::is_regular_file(spec.path, ec))
      return compileOnDemand(spec, "dopa grad", exitCode);
  }
  exitCode = 2;
  if (!isExample)
    printError("dopa grad", "--engine generated takes a spec file or an example, <task>/<variant> "
                            "(e.g. cue_reward/modul); got '" +
                                opt.spec.path + "'");
  else
    findCompiledExample(task, variant, opt.spec.dimOverrides, "dopa grad"); // says what it has
  return nullptr;
}

int runGenerated(const GradOptions &opt) {
  int exitCode = 0;
  const GeneratedSpec *spec = generatedSpec(opt, exitCode);
  if (!spec)
    return exitCode;
  if (opt.doublePrecision) {
    GeneratedExecutor<double> exec(*spec);
    return grad::runWith(opt, exec);
  }
  GeneratedExecutor<float> exec(*spec);
  return grad::runWith(opt, exec);
}

/// A file the command line names, with the flag that names it.
struct NamedFile {
  const char *flag;
  const std::string &path;
};

/// Whether --out or --save-params names a file the run reads (--params, --inputs, --output-grads,
/// the spec) or each other; reported, naming both flags.
bool outputClobbersInput(const GradOptions &opt) {
  const NamedFile inputs[] = {{"--params", opt.paramsPath},
                              {"--inputs", opt.inputsPath},
                              {"--output-grads", opt.outputGradsPath},
                              {"the spec", opt.spec.path},
                              {"--save-params", opt.saveParamsPath}};
  const NamedFile outputs[] = {{"--out", opt.outPath}, {"--save-params", opt.saveParamsPath}};
  for (const NamedFile &out : outputs)
    for (const NamedFile &in : inputs)
      if (&in.path != &out.path && !out.path.empty() && isSameFile(out.path, in.path)) {
        printError("dopa grad", std::string(out.flag) + " names the same file as " + in.flag +
                                    " (" + in.path + ")");
        return true;
      }
  return false;
}

} // namespace

int tool::runGrad(const GradOptions &opt) {
  if (outputClobbersInput(opt)) // before anything is read or written
    return 2;
  if (!inputFilesFit(opt)) // before any of them is read
    return 1;
  if (opt.engine != "generated")
    return runGenericGrad(opt);
  try {
    return runGenerated(opt);
  } catch (const std::exception &e) {
    printError("dopa grad", e.what());
    return 1;
  }
}
