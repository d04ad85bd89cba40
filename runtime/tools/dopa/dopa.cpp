//===- dopa.cpp - The dopa tool: train, grad, bench --------------------------===//
//
// Option parsing and dispatch only (llvm::cl subcommands); each subcommand lives in its own file.
// Exit codes: 0 success, 1 errors in the spec or the data, 2 usage errors.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/WithColor.h"

using namespace dopa;
namespace cl = llvm::cl;

namespace {
cl::SubCommand gradCmd("grad", "One forward pass over T steps and one BPTT pass: write the "
                               "gradients of every parameter");

cl::opt<std::string> spec(cl::Positional, cl::desc("<spec.dopa>"), cl::sub(gradCmd));
cl::list<std::string> includeDirs("I", cl::desc("Add <dir> to the include path"),
                                  cl::value_desc("dir"), cl::Prefix, cl::sub(gradCmd));
cl::list<std::string> dims("D", cl::desc("Override a network dimension: -D H=4"),
                           cl::value_desc("name=value"), cl::Prefix, cl::sub(gradCmd));
cl::opt<std::string> network("network", cl::desc("The network to use (when the spec has several)"),
                             cl::sub(gradCmd));
cl::opt<std::string> paramsPath("params",
                                cl::desc("Parameters (safetensors, the spec's param names)"),
                                cl::value_desc("file"), cl::sub(gradCmd));
cl::opt<uint64_t> initSeed("init-seed",
                           cl::desc("Initialize the parameters from their initializers"),
                           cl::value_desc("seed"), cl::sub(gradCmd));
cl::opt<std::string> saveParams("save-params", cl::desc("Also write the parameters used"),
                                cl::value_desc("file"), cl::sub(gradCmd));
cl::opt<std::string> inputsPath("inputs", cl::desc("Inputs: one [T, B, ...] tensor per spec input"),
                                cl::value_desc("file"), cl::sub(gradCmd));
cl::opt<std::string> outputGradsPath("output-grads",
                                     cl::desc("dLoss/d outputs: one [T, B, ...] tensor per output "
                                              "(missing outputs get zeros)"),
                                     cl::value_desc("file"), cl::sub(gradCmd));
cl::opt<std::string> outPath("out", cl::desc("Where to write the gradients and the outputs"),
                             cl::value_desc("file"), cl::sub(gradCmd));
cl::opt<bool> f64("f64", cl::desc("Compute in double precision (default: float32)"),
                  cl::sub(gradCmd));

void printVersion(llvm::raw_ostream &os) { os << "dopa " << DOPA_VERSION << "\n"; }

int usage(const char *msg) {
  llvm::WithColor::error(llvm::errs(), "dopa") << msg << " (see dopa grad --help)\n";
  return 2;
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  cl::SetVersionPrinter(printVersion);
  if (!cl::ParseCommandLineOptions(
          argc, argv, "dopa: train, check and benchmark plastic networks\n", &llvm::errs()))
    return 2;
  if (gradCmd) {
    if (spec.empty())
      return usage("missing the spec file");
    if (paramsPath.empty() == (initSeed.getNumOccurrences() == 0))
      return usage("give exactly one of --params FILE and --init-seed N");
    if (inputsPath.empty() || outputGradsPath.empty() || outPath.empty())
      return usage("--inputs, --output-grads and --out are required");
    tool::GradOptions opt;
    opt.spec = {
        spec, {includeDirs.begin(), includeDirs.end()}, {dims.begin(), dims.end()}, network};
    opt.paramsPath = paramsPath;
    if (initSeed.getNumOccurrences())
      opt.initSeed = initSeed;
    opt.saveParamsPath = saveParams;
    opt.inputsPath = inputsPath;
    opt.outputGradsPath = outputGradsPath;
    opt.outPath = outPath;
    opt.doublePrecision = f64;
    return tool::runGrad(opt);
  }
  cl::PrintHelpMessage(false, true);
  return 2;
}
