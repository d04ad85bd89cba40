//===- dopac.cpp - The dopa compiler driver -------------------------------===//
//
// dopac reads a spec (*.dopa), runs the front end, and prints the stage asked for with --emit.
// It only parses options and calls the libraries. Exit codes: 0 success, 1 errors in the spec,
// 2 usage or I/O errors. The output is built in memory and written only once the run succeeded
// (writeFileAtomically: an existing -o file stays as it was otherwise), never over an input.
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Emit.h"
#include "dopa/compiler/Format.h"
#include "dopa/compiler/Kernel.h"
#include "dopa/compiler/Passes.h"
#include "dopa/compiler/Pipeline.h"
#include "dopa/dsl/Frontend.h"
#include "dopa/dsl/Lexer.h"
#include "dopa/dsl/Verifier.h"
#include "dopa/runtime/DimOverrides.h"
#include "dopa/runtime/FileIO.h"
#include "dopa/runtime/Generated.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>

using namespace dopa;
namespace cl = llvm::cl;

namespace {
enum class Emit { Tokens, AST, Summary, IR, IRGrad, Dot, Kernels, Plan, Cpp, Header, Cuda };
enum class Precision { Float, Double };
enum class Readouts { Auto, All, None };

cl::OptionCategory category("dopac options");

cl::opt<std::string> inputFile(cl::Positional, cl::desc("<spec.dopa>"), cl::Required,
                               cl::cat(category));
cl::opt<Emit>
    emit("emit", cl::desc("What to print"), cl::init(Emit::Summary),
         cl::values(clEnumValN(Emit::Tokens, "tokens", "the token stream"),
                    clEnumValN(Emit::AST, "ast", "the syntax tree (parse only)"),
                    clEnumValN(Emit::Summary, "summary",
                               "check the spec and summarize each network (default)"),
                    clEnumValN(Emit::IR, "ir", "the forward step graph of each network"),
                    clEnumValN(Emit::IRGrad, "ir-grad",
                               "the backward step graph (reverse-mode autodiff)"),
                    clEnumValN(Emit::Dot, "dot", "forward and backward step graphs as Graphviz"),
                    clEnumValN(Emit::Kernels, "kernels",
                               "the fused per-element kernels (stages, homes, saved values)"),
                    clEnumValN(Emit::Plan, "plan",
                               "the checkpointing plan and its predicted bytes (see --plan-*)"),
                    clEnumValN(Emit::Cpp, "cpp", "C++ for the forward and backward steps"),
                    clEnumValN(Emit::Cuda, "cuda",
                               "CUDA kernels for the forward and backward steps (with the C++)"),
                    clEnumValN(Emit::Header, "header", "the header declaring the C++ accessors")),
         cl::cat(category));
cl::opt<std::string> outputFile("o", cl::desc("Write the output to <file> (default: stdout)"),
                                cl::value_desc("file"), cl::init("-"), cl::cat(category));
cl::list<std::string> includeDirs("I", cl::desc("Add <dir> to the include path"),
                                  cl::value_desc("dir"), cl::Prefix, cl::cat(category));
cl::opt<bool> verifyDiagnostics(
    "verify-diagnostics",
    cl::desc("Check emitted diagnostics against expected-* comments in the spec (tests)"),
    cl::cat(category));
cl::opt<unsigned> errorLimit("error-limit", cl::desc("Stop after <n> errors (0: no limit)"),
                             cl::init(20), cl::cat(category));
cl::opt<bool> warningsAsErrors("Werror", cl::desc("Treat warnings as errors"), cl::cat(category));
cl::list<std::string> dimOverrides("D", cl::desc("Override a network dimension: -D H=4"),
                                   cl::value_desc("name=value"), cl::Prefix, cl::cat(category));
cl::opt<std::string> networkName("network", cl::desc("Only this network (default: all)"),
                                 cl::value_desc("name"), cl::cat(category));
cl::opt<int> checkpointEvery(
    "checkpoint-every",
    cl::desc("Keep the states every <k> steps (0: plan from the memory budget at run time)"),
    cl::init(0), cl::cat(category));
cl::opt<long long>
    memoryBudget("memory-budget",
                 cl::desc("Bytes the checkpointing plan may use (0: the runtime default, 64 MiB)"),
                 cl::init(0), cl::cat(category));
cl::opt<int> planBatch("plan-batch", cl::desc("--emit=plan: batch size"), cl::init(30),
                       cl::cat(category));
cl::opt<int> planSteps("plan-steps", cl::desc("--emit=plan: steps per episode"), cl::init(120),
                       cl::cat(category));
cl::opt<int> planThreads("plan-threads", cl::desc("--emit=plan: threads"), cl::init(2),
                         cl::cat(category));
cl::opt<Precision>
    precision("precision", cl::desc("--emit=plan: the element type"), cl::init(Precision::Float),
              cl::values(clEnumValN(Precision::Float, "float", "4-byte floats (default)"),
                         clEnumValN(Precision::Double, "double", "8-byte doubles")),
              cl::cat(category));
cl::opt<std::string>
    specName("spec-name",
             cl::desc("The spec's path as generated code names it (default: as given)"),
             cl::value_desc("path"), cl::cat(category));
cl::opt<std::string> cppNamespace(
    "namespace",
    cl::desc("--emit=cpp/header: the generated namespace dopa::generated::<id> (default: the "
             "network's name in snake_case; one network only)"),
    cl::value_desc("id"), cl::cat(category));
cl::opt<bool> noLineDirectives("no-line-directives",
                               cl::desc("Do not map generated code back to the spec"),
                               cl::cat(category));
cl::opt<bool> inputGradients(
    "input-gradients",
    cl::desc("Differentiate with respect to the real inputs too: --emit=ir-grad shows them, the "
             "generated C++ backward writes them (StepArgs::gradInputs); not for --emit=cuda"),
    cl::cat(category));
cl::opt<Readouts> batchedReadouts(
    "batched-readouts",
    cl::desc("Outputs W @ x (+ b) the runtime computes for the whole batch (a GEMM per step) "
             "instead of the per-element step kernels; the C++ target only"),
    cl::init(Readouts::Auto),
    cl::values(clEnumValN(Readouts::Auto, "auto", "weights of at least 65536 elements (default)"),
               clEnumValN(Readouts::All, "all", "every such output"),
               clEnumValN(Readouts::None, "none", "none: the kernels compute every output")),
    cl::cat(category));
cl::opt<bool> carryProductsOpt(
    "carry-products",
    cl::desc("Compute each step's state-only matrix products (a plastic network's recurrent input) "
             "in the previous step's pass over the traces (default on; the C++ target only)"),
    cl::init(true), cl::cat(category));
cl::opt<bool> simplifyOpt(
    "simplify",
    cl::desc("Simplify the backward step: scalar factors out of matrix-vector products, sums of "
             "outer-product terms as dot products, equal nodes merged (default on)"),
    cl::init(true), cl::cat(category));
enum class TracePrecision { Float, Bf16 };
cl::opt<TracePrecision> tracePrecision(
    "trace-precision",
    cl::desc("How the float build stores the matrix-shaped states (the traces); arithmetic stays "
             "float, the double build stays exact; the C++ target only"),
    cl::init(TracePrecision::Float),
    cl::values(clEnumValN(TracePrecision::Float, "float", "float32 (default)"),
               clEnumValN(TracePrecision::Bf16, "bf16",
                          "bfloat16 (nearest, ties away from zero): half the bytes per step")),
    cl::cat(category));
cl::opt<bool> verifyEach("verify-each", cl::desc("Run the IR verifier after every pass"),
                         cl::init(true), cl::cat(category));
cl::opt<bool> printAfterEach("print-after-each",
                             cl::desc("Print what each pass built, to stderr (debugging)"),
                             cl::cat(category));

/// What every emit kind works with: the front end, its diagnostics, the output and the -D values.
struct Session {
  Frontend &frontend;
  DiagnosticEngine &diags;
  llvm::raw_ostream &os;
  sema::DimOverrides overrides;
};

/// A usage or I/O error: reported, exit status 2.
int usageError(const std::string &message) {
  llvm::WithColor::error(llvm::errs(), "dopac") << message << "\n";
  return 2;
}

/// C++ keywords and alternative tokens, each between spaces: none of them can name a namespace.
constexpr llvm::StringLiteral kCppKeywords(
    " alignas alignof and and_eq asm auto bitand bitor bool break case catch char char8_t char16_t"
    " char32_t class compl concept const consteval constexpr constinit const_cast continue"
    " co_await co_return co_yield decltype default delete do double dynamic_cast else enum"
    " explicit export extern false float for friend goto if inline int long mutable namespace new"
    " noexcept not not_eq nullptr operator or or_eq private protected public register"
    " reinterpret_cast requires return short signed sizeof static static_assert static_cast"
    " struct switch template this thread_local throw true try typedef typeid typename union"
    " unsigned using virtual void volatile wchar_t while xor xor_eq ");

/// Why `ns` cannot name the generated namespace dopa::generated::<ns>, as the end of a sentence
/// ("is not a C++ identifier"); empty when it can. It must be identifiers ([A-Za-z_][A-Za-z0-9_]*)
/// joined by "::", none of them a keyword.
std::string namespaceProblem(const std::string &ns) {
  auto isStart = [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
  };
  llvm::SmallVector<llvm::StringRef, 4> parts;
  llvm::StringRef(ns).split(parts, "::", /*MaxSplit=*/-1, /*KeepEmpty=*/true);
  for (llvm::StringRef part : parts) {
    bool identifier = !part.empty() && isStart(part.front());
    for (char c : part)
      identifier = identifier && (isStart(c) || (c >= '0' && c <= '9'));
    if (!identifier)
      return "is not a C++ identifier";
    if (kCppKeywords.contains(" " + part.str() + " "))
      return parts.size() == 1 ? std::string("is a C++ keyword")
                               : "uses the C++ keyword '" + part.str() + "'";
  }
  return "";
}

std::string humanBytes(int64_t b) {
  char buf[64];
  if (b >= (int64_t(1) << 20))
    snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(1 << 20));
  else if (b < 1024)
    snprintf(buf, sizeof buf, "%lld bytes", static_cast<long long>(b));
  else
    snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024.0);
  return buf;
}

/// dopac --emit=plan: the runtime's plan for the given batch, steps, threads and precision.
void printPlan(const CompiledNetwork &net, const kern::FusedNetwork &f, llvm::raw_ostream &os) {
  BlockLayout layout;
  layout.stateNumel = f.stateNumel;
  layout.savedNumel = f.savedNumel;
  layout.scratchNumel = std::max(f.forward.scratchNumel, f.backward.scratchNumel);
  layout.recordNumel = f.recordNumel;
  for (const kern::FusedNetwork &p : f.prologue) { // carried products
    layout.scratchNumel =
        std::max({layout.scratchNumel, p.forward.scratchNumel, p.backward.scratchNumel});
    layout.prologueNumel = p.savedNumel + p.recordNumel;
  }
  for (size_t s = 0; s < f.replayRecorded.size(); ++s) // the replay step's recorded states
    if (f.replayRecorded[s] && !f.replay.stages.empty())
      layout.replayRecordedNumel += ir::numElements(net.forward.states[s].shape);
  for (const ir::Variable &v : net.forward.inputs)
    layout.inputNumel += ir::numElements(v.shape);
  for (const ir::Output &o : net.forward.outputs)
    layout.outputNumel += ir::numElements(net.forward.node(o.node).shape);
  for (const ir::Readout &r : net.forward.readouts)
    layout.readoutNumel += net.forward.params[size_t(r.weight)].shape[1];
  for (const ir::Variable &v : net.forward.params)
    layout.paramNumel += ir::numElements(v.shape);
  layout.forwardInPlace = std::any_of(f.forward.inPlaceStates.begin(),
                                      f.forward.inPlaceStates.end(), [](char c) { return c; });
  // The batched products' largest operands, and the order the executor picks by default.
  bool products = false;
  for (const kern::Kernel *k : {&f.forward, &f.backward})
    for (size_t st = 0; st < k->stages.size(); ++st)
      if (kern::BatchedProductShape bp = kern::batchedProduct(*k, st); bp.weight >= 0) {
        const ir::Shape &w = k->graph.node(bp.weight).shape;
        products = true;
        layout.productXNumel = std::max(layout.productXNumel, bp.transposed ? w[0] : w[1]);
        layout.productYNumel = std::max(layout.productYNumel, bp.transposed ? w[1] : w[0]);
      }
  // The executor's choice (Generated.h, StageOrder): DOPA_STAGE_ORDER, else auto.
  StageOrder order = defaultStageOrder();
  bool matrixState = std::any_of(net.forward.states.begin(), net.forward.states.end(),
                                 [](const ir::Variable &s) { return s.shape.size() >= 2; });
  bool stageMajor = choosesStageMajor(order, products, matrixState);
  bool isDouble = Precision(precision) == Precision::Double;
  PlanInputs in = planInputs(layout, isDouble ? 8 : 4, planBatch, planSteps, planThreads,
                             memoryBudget, checkpointEvery, stageMajor);
  CheckpointPlan p = planCheckpoints(in);
  os << "memory plan " << net.forward.name << " (" << (isDouble ? "double" : "float") << ", batch "
     << in.batch << ", " << in.steps << " steps, " << in.threads << " threads, "
     << (stageMajor ? "stage-major" : "element-major") << " order)\n";
  os << "  per element: state block " << humanBytes(in.stateBytes) << ", saved per step "
     << humanBytes(in.savedBytes) << ", inputs per step " << humanBytes(in.inputBytes);
  if (in.replayRecordedBytes)
    os << ", recorded for the replays per step " << humanBytes(in.replayRecordedBytes);
  os << "\n";
  os << "  store everything: "
     << humanBytes(int64_t(in.batch) * in.steps * (in.stateBytes + in.savedBytes))
     << " (states and saved values of every step and element)\n";
  if (p.replays == 0)
    os << "  choice: planned, no replay: the forward keeps the states and saved values of every "
          "step (stage-major, within the budget)\n";
  else
    os << "  choice: " << (checkpointEvery > 0 ? "forced" : "planned")
       << ", outer checkpoints every " << p.outer << " steps, replay segments of at most "
       << p.inner << " steps, " << p.replays << " forward replay" << (p.replays == 1 ? "" : "s")
       << " per step in the backward\n";
  os << "  outer checkpoints: " << humanBytes(p.checkpointBytes) << "\n";
  os << "  per thread: " << humanBytes(p.perThreadBytes) << "\n";
  if (stageMajor)
    os << "  per element (replay buffers, stage-major): " << humanBytes(p.perElementBytes) << "\n";
  os << "  predicted total: " << humanBytes(p.totalBytes) << " (" << p.totalBytes
     << " bytes, with the current and next states and the input tape)\n";
}

const char *const kOverview = "dopac: compile dopa plasticity specs\n\n"
                              "  Checks a spec and prints the stage chosen with --emit.\n"
                              "  Exit codes: 0 ok, 1 errors in the spec, 2 usage or I/O error.\n";

void printVersion(llvm::raw_ostream &os) { os << "dopac " << DOPA_VERSION << " (dopa)\n"; }

/// --print-after-each: what `pass` built for `net`, to stderr.
void printAfterPass(const Session &s, const sema::Network &net, llvm::StringRef pass,
                    const PipelineResult &built) {
  llvm::raw_ostream &os = llvm::errs();
  os << "*** " << net.name << " after " << pass << " ***\n";
  if (pass == "lower" || pass == "batch-readouts" || pass == "trace-precision")
    ir::print(built.graphs.forward, &s.frontend.getSourceMgr(), os);
  else if (pass == "carry-products") {
    ir::print(built.graphs.forward, &s.frontend.getSourceMgr(), os);
    if (built.graphs.hasPrologue()) {
      os << "*** " << net.name << " prologue ***\n";
      ir::print(built.graphs.prologue, &s.frontend.getSourceMgr(), os);
    }
  } else if (pass == "autodiff" || pass == "simplify") {
    ir::print(built.graphs.backward, &s.frontend.getSourceMgr(), os);
    if (built.graphs.hasPrologue()) {
      os << "*** " << net.name << " prologue backward ***\n";
      ir::print(built.graphs.prologueBackward, &s.frontend.getSourceMgr(), os);
    }
  } else if (pass == "fuse" && built.fused)
    kern::print(*built.fused, os);
}

/// Run the pipeline on one network with the command line's options.
std::optional<PipelineResult> compileOne(const Session &s, const sema::Network &net, bool fuse) {
  PipelineOptions options;
  options.verifyEach = verifyEach;
  options.fuse = fuse;
  options.inputGradients = inputGradients;
  // The CUDA backend and its executor run whole graphs.
  options.carryProducts = emit != Emit::Cuda && carryProductsOpt;
  options.traceBf16 = tracePrecision == TracePrecision::Bf16;
  options.simplify = simplifyOpt;
  if (emit != Emit::Cuda)
    options.batchedReadoutMin = batchedReadouts == Readouts::All    ? 0
                                : batchedReadouts == Readouts::Auto ? kAutoReadoutMinNumel
                                                                    : -1;
  if (printAfterEach)
    options.afterPass = [&s, &net](llvm::StringRef pass, const PipelineResult &built) {
      printAfterPass(s, net, pass, built);
    };
  return runPipeline(net, s.diags, options);
}

using NetworkEmitter = std::function<void(const sema::Network &, const PipelineResult &)>;

/// Compile each network --network selects (all by default) and print it with `emitOne`. False
/// when one did not compile or could not be printed (diagnosed).
bool forEachNetwork(const Session &s, const sema::Program &program, bool fuse,
                    const NetworkEmitter &emitOne) {
  bool ok = true;
  for (const auto &net : program.networks) {
    if (!networkName.empty() && net->name != networkName)
      continue;
    auto compiled = compileOne(s, *net, fuse);
    if (!compiled) {
      ok = false;
      continue;
    }
    try {
      emitOne(*net, *compiled);
    } catch (const EmitUnsupported &e) {
      std::string msg =
          std::string("cannot generate code for network '") + net->name + "': " + e.what();
      if (e.loc.isValid())
        s.diags.error(e.loc, msg);
      else
        s.diags.errorNoLoc(msg);
      ok = false;
    } catch (const std::exception &e) {
      s.diags.errorNoLoc(std::string("cannot generate code for network '") + net->name +
                         "': " + e.what());
      ok = false;
    }
  }
  return ok;
}

/// The emitters' options from the command line.
EmitOptions emitOptions() {
  EmitOptions options;
  options.specPath = specName.empty() ? std::string(inputFile) : std::string(specName);
  options.outputName = outputFile == "-" ? "" : llvm::sys::path::filename(outputFile).str();
  options.lineDirectives = !noLineDirectives;
  options.checkpointEvery = checkpointEvery;
  options.memoryBudget = memoryBudget;
  options.cppNamespace = cppNamespace;
  options.formatter = formatCpp;
  return options;
}

//===----------------------------------------------------------------------===//
// One function per --emit kind
//===----------------------------------------------------------------------===//

/// --emit=tokens: the file lexed alone, without a parse, so that even a spec with syntax errors
/// can be inspected. Returns the exit status (no error count is printed).
int emitTokens(const Session &s, DiagnosticVerifier *verifier) {
  std::optional<unsigned> id = s.frontend.loadFile(inputFile); // special files refused (diagnosed)
  if (!id)
    return 2;
  Lexer lexer(s.diags, *id);
  for (const Token &tok : lexer.lexAll()) {
    auto [line, col] = s.diags.getSourceMgr().getLineAndColumn(tok.getLoc());
    s.os << line << ":" << col << " " << tokenKindName(tok.kind);
    if (!tok.is(tok_eof))
      s.os << " '" << tok.text << "'";
    s.os << "\n";
  }
  if (verifier)
    return verifier->finish(llvm::errs()) ? 0 : 1;
  return s.diags.hasErrors() ? 1 : 0;
}

/// --emit=ast: the syntax trees of the parsed files (no semantic checks).
bool emitAST(const Session &s) {
  if (s.diags.hasErrors())
    return false;
  for (const ast::File *file : s.frontend.getFiles())
    ast::dumpFile(*file, s.frontend.getSourceMgr(), s.os);
  return true;
}

/// The default: each network's summary and its FLOPs per step. Every network is compiled, whatever
/// --network says: the summary also proves that each one differentiates.
bool emitSummary(const Session &s, sema::Program &program) {
  std::vector<std::pair<ir::FlopCount, ir::FlopCount>> flops;
  bool ok = true;
  for (const auto &net : program.networks) {
    auto compiled = compileOne(s, *net, /*fuse=*/false);
    ok &= compiled.has_value();
    if (compiled)
      flops.push_back(
          {ir::countFlops(compiled->graphs.forward), ir::countFlops(compiled->graphs.backward)});
  }
  if (!ok)
    return false;
  for (size_t k = 0; k < program.networks.size(); ++k) {
    sema::printSummary(*program.networks[k], s.os);
    const auto &[f, b] = flops[k];
    s.os << "  FLOPs per step: forward " << f.perElement << " per batch element + " << f.shared
         << " shared, backward " << b.perElement << " per batch element + " << b.shared
         << " shared\n";
  }
  return true;
}

bool emitIR(const Session &s, sema::Program &program) {
  return forEachNetwork(s, program, /*fuse=*/false,
                        [&](const sema::Network &, const PipelineResult &r) {
                          ir::print(r.graphs.forward, &s.frontend.getSourceMgr(), s.os);
                        });
}

bool emitIRGrad(const Session &s, sema::Program &program) {
  return forEachNetwork(s, program, /*fuse=*/false,
                        [&](const sema::Network &, const PipelineResult &r) {
                          ir::print(r.graphs.backward, &s.frontend.getSourceMgr(), s.os);
                        });
}

bool emitDot(const Session &s, sema::Program &program) {
  return forEachNetwork(s, program, /*fuse=*/false,
                        [&](const sema::Network &, const PipelineResult &r) {
                          ir::printDot(r.graphs.forward, r.graphs.backward, s.os);
                        });
}

bool emitKernels(const Session &s, sema::Program &program) {
  return forEachNetwork(
      s, program, /*fuse=*/true,
      [&](const sema::Network &, const PipelineResult &r) { kern::print(*r.fused, s.os); });
}

bool emitPlan(const Session &s, sema::Program &program) {
  return forEachNetwork(
      s, program, /*fuse=*/true,
      [&](const sema::Network &, const PipelineResult &r) { printPlan(r.graphs, *r.fused, s.os); });
}

/// Whether `net`'s own namespace (its name in snake_case) is valid C++; diagnosed when not.
bool derivedNamespaceIsValid(const Session &s, const sema::Network &net) {
  std::string ns = snakeCase(net.name);
  std::string problem = namespaceProblem(ns);
  if (problem.empty())
    return true;
  s.diags.errorNoLoc("network '" + net.name + "' gives the C++ namespace '" + ns + "', which " +
                     problem + "; choose one with --namespace");
  return false;
}

/// Without --namespace (checked up front), each emitted network's namespace is its name in
/// snake_case, which must be valid C++ too. False, diagnosed, when one is not.
bool checkDerivedNamespaces(const Session &s, const sema::Program &program) {
  if (!cppNamespace.empty())
    return true;
  bool ok = true;
  for (const auto &net : program.networks)
    if (networkName.empty() || net->name == networkName)
      ok &= derivedNamespaceIsValid(s, *net);
  return ok;
}

/// The networks' code through one emitter (C++ or CUDA) as one translation unit.
template <class EmitNetwork, class EmitFile>
bool emitSource(const Session &s, sema::Program &program, EmitNetwork emitNetwork,
                EmitFile emitFile) {
  if (!checkDerivedNamespaces(s, program))
    return false;
  EmitOptions options = emitOptions();
  std::vector<std::string> bodies;
  bool ok = forEachNetwork(
      s, program, /*fuse=*/true, [&](const sema::Network &, const PipelineResult &r) {
        bodies.push_back(emitNetwork(r.graphs, *r.fused, s.frontend.getSourceMgr(), options));
      });
  if (ok)
    s.os << emitFile(bodies, options);
  return ok;
}

bool emitCpp(const Session &s, sema::Program &program) {
  return emitSource(s, program, emitCppNetwork, emitCppFile);
}

bool emitCuda(const Session &s, sema::Program &program) {
  return emitSource(s, program, emitCudaNetwork, emitCudaFile);
}

/// --emit=header: the accessors' declarations (each network still goes through fusion, so that
/// the header is only written for networks the C++ can be generated for).
bool emitHeader(const Session &s, sema::Program &program) {
  if (!checkDerivedNamespaces(s, program))
    return false;
  std::vector<std::string> names;
  bool ok = forEachNetwork(
      s, program, /*fuse=*/true,
      [&](const sema::Network &net, const PipelineResult &) { names.push_back(net.name); });
  if (ok)
    s.os << emitCppHeader(names, emitOptions());
  return ok;
}

using ProgramEmitter = bool (*)(const Session &, sema::Program &);

/// The kinds past the parse: check the spec with the -D values, make sure --network names one of
/// its networks, and print with `emitProgram`.
bool emitChecked(const Session &s, ProgramEmitter emitProgram) {
  auto program = s.frontend.check(s.overrides.empty() ? nullptr : &s.overrides);
  if (!program || s.diags.hasErrors())
    return false;
  if (!networkName.empty() && !program->find(networkName)) {
    s.diags.errorNoLoc("no network named '" + networkName + "' in " + inputFile);
    return false;
  }
  return emitProgram(s, *program);
}

//===----------------------------------------------------------------------===//
// The driver
//===----------------------------------------------------------------------===//

/// Apply the diagnostic options; with --verify-diagnostics, the verifier (which consumes them).
std::unique_ptr<DiagnosticVerifier> setUpDiagnostics(DiagnosticEngine &diags) {
  diags.setErrorLimit(errorLimit);
  diags.setWarningsAsErrors(warningsAsErrors);
  if (!verifyDiagnostics)
    return nullptr;
  return std::make_unique<DiagnosticVerifier>(diags);
}

/// The exit status once the output is built: the verifier's verdict with --verify-diagnostics;
/// else 1 with the error count on errors; else 0.
int finish(bool ok, const Session &s, DiagnosticVerifier *verifier) {
  if (verifier)
    return verifier->finish(llvm::errs()) ? 0 : 1;
  if (!ok) {
    llvm::errs() << s.diags.errorCount() << " error" << (s.diags.errorCount() == 1 ? "" : "s")
                 << " generated.\n";
    return 1;
  }
  return 0;
}

/// Run the --emit kind, its output into `s.os`; the exit status.
int runEmit(const Session &s, DiagnosticVerifier *verifier) {
  if (Emit(emit) == Emit::Tokens)
    return emitTokens(s, verifier);
  if (!s.frontend.parseFile(inputFile)) { // diagnosed; the verifier still reports what it expected
    if (verifier)
      verifier->finish(llvm::errs());
    return 2;
  }
  bool ok = false;
  switch (Emit(emit)) {
  case Emit::Tokens: break; // above: tokens need no parse
  case Emit::AST: ok = emitAST(s); break;
  case Emit::Summary: ok = emitChecked(s, emitSummary); break;
  case Emit::IR: ok = emitChecked(s, emitIR); break;
  case Emit::IRGrad: ok = emitChecked(s, emitIRGrad); break;
  case Emit::Dot: ok = emitChecked(s, emitDot); break;
  case Emit::Kernels: ok = emitChecked(s, emitKernels); break;
  case Emit::Plan: ok = emitChecked(s, emitPlan); break;
  case Emit::Cpp: ok = emitChecked(s, emitCpp); break;
  case Emit::Header: ok = emitChecked(s, emitHeader); break;
  case Emit::Cuda:
    ok = emitChecked(s, emitCuda); // (its option conflicts are usage errors, checked in main)
    break;
  }
  return finish(ok, s, verifier);
}

/// 2, reported, when -o names one of `inputs` (the spec, a file it includes); else 0.
int refuseInputAsOutput(const std::vector<std::string> &inputs) {
  try {
    checkOutputIsNotInput(outputFile, inputs, "-o");
  } catch (const OutputIsInputError &e) {
    return usageError(e.what());
  }
  return 0;
}

/// Deliver the output of a run that ended with `status`. Stdout gets it as it is, whatever the
/// status (as when it was printed as it came). The -o file is written only after a clean run
/// without --verify-diagnostics, never over a file the run read, and with writeFileAtomically's
/// rules; otherwise an existing file stays as it was.
int writeOutput(int status, const std::string &text, Frontend &frontend, bool verifying) {
  if (outputFile == "-") {
    llvm::raw_fd_ostream &out = llvm::outs();
    out << text;
    out.flush();
    if (std::error_code ec = out.error()) {
      out.clear_error();
      return usageError("cannot write to stdout: " + ec.message());
    }
    return status;
  }
  if (status != 0 || verifying)
    return status;
  const llvm::SourceMgr &sourceMgr = frontend.getSourceMgr();
  std::vector<std::string> inputs;
  inputs.reserve(sourceMgr.getNumBuffers());
  for (unsigned id = 1; id <= sourceMgr.getNumBuffers(); ++id)
    inputs.push_back(sourceMgr.getMemoryBuffer(id)->getBufferIdentifier().str());
  if (int refused = refuseInputAsOutput(inputs))
    return refused;
  try {
    writeFileAtomically(outputFile, text);
  } catch (const FileWriteError &e) {
    return usageError("cannot write '" + outputFile + "': " + e.reason);
  }
  return 0;
}

/// The options that conflict or are out of range, as one message; "" when they are fine.
std::string optionProblem() {
  if (emit == Emit::Cuda && inputGradients)
    return "--input-gradients is for the C++ backend; the CUDA kernels do not write input "
           "gradients yet";
  if (emit == Emit::Cuda && tracePrecision == TracePrecision::Bf16)
    return "--trace-precision=bf16 is for the C++ backend; the CUDA kernels store traces in float";
  if (checkpointEvery < 0)
    return "--checkpoint-every must not be negative (0: planned at run time)";
  if (memoryBudget < 0)
    return "--memory-budget must not be negative (0: the runtime default)";
  // The planner keeps a plan per interval: a million steps is about 0.5 s and 100 MB.
  constexpr int kMaxPlanSteps = 1000000;
  if (planBatch < 1 || planThreads < 1 || planSteps < 1 || planSteps > kMaxPlanSteps)
    return "--plan-batch and --plan-threads must be positive, --plan-steps from 1 to " +
           std::to_string(kMaxPlanSteps);
  return "";
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::SetVersionPrinter(printVersion);
  if (!cl::ParseCommandLineOptions(argc, argv, kOverview, &llvm::errs()))
    return 2;
  DimParse dims = parseDimOverrides({dimOverrides.begin(), dimOverrides.end()});
  if (!dims.ok())
    return usageError(dims.error);
  if (std::string problem = namespaceProblem(cppNamespace);
      !cppNamespace.empty() && !problem.empty())
    return usageError("--namespace '" + cppNamespace + "' " + problem);
  Frontend frontend(std::vector<std::string>(includeDirs.begin(), includeDirs.end()));
  std::unique_ptr<DiagnosticVerifier> verifier = setUpDiagnostics(frontend.getDiagnostics());
  if (llvm::sys::fs::is_directory(inputFile))
    return usageError("'" + inputFile + "' is a directory");
  if (std::string problem = optionProblem(); !problem.empty())
    return usageError(problem);
  if (int refused = refuseInputAsOutput({std::string(inputFile)}))
    return refused; // before anything is read; the included files are checked before the write
  std::string text; // the output, delivered once the run is over
  llvm::raw_string_ostream os(text);
  Session s{frontend, frontend.getDiagnostics(), os, toDimOverrides(dims.dims)};
  int status = runEmit(s, verifier.get());
  os.flush();
  return writeOutput(status, text, frontend, verifier != nullptr);
}
