//===- dopac.cpp - The dopa compiler driver -------------------------------===//
//
// dopac reads a spec (*.dopa), runs the front end, and prints the stage asked for with --emit.
// It only parses options and calls the libraries. Exit codes: 0 success, 1 errors in the spec,
// 2 usage or I/O errors.
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Emit.h"
#include "dopa/compiler/Kernel.h"
#include "dopa/compiler/Passes.h"
#include "dopa/dsl/Frontend.h"
#include "dopa/dsl/Lexer.h"
#include "dopa/dsl/Verifier.h"
#include "dopa/runtime/Generated.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

using namespace dopa;
namespace cl = llvm::cl;

namespace {
enum class Emit { Tokens, AST, Summary, IR, IRGrad, Dot, Kernels, Plan, Cpp, Header, Cuda };

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
cl::opt<bool> verifyEach("verify-each", cl::desc("Run the IR verifier after every pass"),
                         cl::init(true), cl::cat(category));

/// Parse the -D options; false (with a message) on a malformed one.
bool parseOverrides(sema::DimOverrides &out) {
  for (const std::string &item : dimOverrides) {
    auto [name, value] = llvm::StringRef(item).split('=');
    int64_t v = 0;
    if (name.empty() || value.empty() || value.getAsInteger(10, v)) {
      llvm::WithColor::error(llvm::errs(), "dopac")
          << "-D expects NAME=INTEGER, got '" << item << "'\n";
      return false;
    }
    out[name] = v;
  }
  return true;
}

std::string humanBytes(int64_t b) {
  char buf[64];
  if (b >= (int64_t(1) << 20))
    snprintf(buf, sizeof buf, "%.1f MiB", double(b) / double(1 << 20));
  else
    snprintf(buf, sizeof buf, "%.1f KiB", double(b) / 1024.0);
  return buf;
}

/// dopac --emit=plan: the runtime's plan for the given batch, steps and threads.
void printPlan(const CompiledNetwork &net, const kern::FusedNetwork &f, llvm::raw_ostream &os) {
  PlanInputs in;
  int64_t inputs = 0, params = 0;
  for (const ir::Variable &v : net.forward.inputs)
    inputs += ir::numElements(v.shape);
  for (const ir::Variable &v : net.forward.params)
    params += ir::numElements(v.shape);
  in.stateBytes = f.stateNumel * 4;
  in.savedBytes = f.savedNumel * 4;
  in.scratchBytes = std::max(f.forward.scratchNumel, f.backward.scratchNumel) * 4;
  in.inputBytes = inputs * 4;
  in.paramBytes = params * 4;
  in.recordBytes = f.recordNumel * 4;
  int64_t outputs = 0;
  for (const ir::Output &o : net.forward.outputs)
    outputs += ir::numElements(net.forward.node(o.node).shape);
  in.outputBytes = outputs * 4;
  in.batch = planBatch;
  in.steps = planSteps;
  in.threads = planThreads;
  in.memoryBudget = memoryBudget;
  in.checkpointEvery = checkpointEvery;
  CheckpointPlan p = planCheckpoints(in);
  os << "memory plan " << net.forward.name << " (float, batch " << in.batch << ", " << in.steps
     << " steps, " << in.threads << " threads)\n";
  os << "  per element: state block " << humanBytes(in.stateBytes) << ", saved per step "
     << humanBytes(in.savedBytes) << ", inputs per step " << humanBytes(in.inputBytes) << "\n";
  os << "  store everything: "
     << humanBytes(int64_t(in.batch) * in.steps * (in.stateBytes + in.savedBytes))
     << " (states and saved values of every step and element)\n";
  os << "  choice: " << (checkpointEvery > 0 ? "forced" : "planned") << ", outer checkpoints every "
     << p.outer << " steps, replay segments of at most " << p.inner << " steps, " << p.replays
     << " forward replay" << (p.replays == 1 ? "" : "s") << " per step in the backward\n";
  os << "  outer checkpoints: " << humanBytes(p.checkpointBytes) << "\n";
  os << "  per thread: " << humanBytes(p.perThreadBytes) << "\n";
  os << "  predicted total: " << humanBytes(p.totalBytes) << " (" << p.totalBytes
     << " bytes, with the current and next states and the input tape)\n";
}

void printVersion(llvm::raw_ostream &os) { os << "dopac " << DOPA_VERSION << " (dopa)\n"; }

void dumpTokens(DiagnosticEngine &diags, unsigned bufferId, llvm::raw_ostream &os) {
  Lexer lexer(diags, bufferId);
  for (const Token &tok : lexer.lexAll()) {
    auto [line, col] = diags.getSourceMgr().getLineAndColumn(tok.getLoc());
    os << line << ":" << col << " " << tokenKindName(tok.kind);
    if (!tok.is(tok_eof))
      os << " '" << tok.text << "'";
    os << "\n";
  }
}
} // namespace

int main(int argc, char **argv) {
  llvm::InitLLVM initLLVM(argc, argv);
  cl::HideUnrelatedOptions(category);
  cl::SetVersionPrinter(printVersion);
  if (!cl::ParseCommandLineOptions(
          argc, argv,
          "dopac: compile dopa plasticity specs\n\n"
          "  Checks a spec and prints the stage chosen with --emit.\n"
          "  Exit codes: 0 ok, 1 errors in the spec, 2 usage or I/O error.\n",
          &llvm::errs()))
    return 2;

  sema::DimOverrides overrides;
  if (!parseOverrides(overrides))
    return 2;
  Frontend frontend(std::vector<std::string>(includeDirs.begin(), includeDirs.end()));
  DiagnosticEngine &diags = frontend.getDiagnostics();
  diags.setErrorLimit(errorLimit);
  diags.setWarningsAsErrors(warningsAsErrors);
  std::unique_ptr<DiagnosticVerifier> verifier;
  if (verifyDiagnostics)
    verifier = std::make_unique<DiagnosticVerifier>(diags);

  if (llvm::sys::fs::is_directory(inputFile)) {
    llvm::WithColor::error(llvm::errs(), "dopac") << "'" << inputFile << "' is a directory\n";
    return 2;
  }
  // The output file is removed again unless the run succeeds (ToolOutputFile::keep).
  std::error_code ec;
  llvm::ToolOutputFile out(outputFile, ec, llvm::sys::fs::OF_TextWithCRLF);
  if (ec) {
    llvm::WithColor::error(llvm::errs(), "dopac")
        << "cannot open '" << outputFile << "': " << ec.message() << "\n";
    return 2;
  }

  if (Emit(emit) == Emit::Tokens) {
    // Tokens need no parse: lex the file alone, so even a spec with syntax errors can be inspected.
    auto buf =
        llvm::MemoryBuffer::getFile(inputFile, /*IsText=*/false, /*RequiresNullTerminator=*/false);
    if (!buf) {
      llvm::WithColor::error(llvm::errs(), "dopac")
          << "cannot read '" << inputFile << "': " << buf.getError().message() << "\n";
      return 2;
    }
    unsigned id = frontend.getSourceMgr().AddNewSourceBuffer(std::move(*buf), llvm::SMLoc());
    dumpTokens(diags, id, out.os());
    if (verifier)
      return verifier->finish(llvm::errs()) ? 0 : 1;
    if (diags.hasErrors())
      return 1;
    out.keep();
    return 0;
  }
  if (!frontend.parseFile(inputFile)) {
    if (verifier)
      verifier->finish(llvm::errs());
    return 2;
  }

  bool ok = !diags.hasErrors();
  Emit action = emit;
  switch (action) {
  case Emit::Tokens: break; // handled above
  case Emit::AST:
    if (ok)
      for (const ast::File *file : frontend.getFiles())
        ast::dumpFile(*file, frontend.getSourceMgr(), out.os());
    break;
  case Emit::Summary:
  case Emit::IR:
  case Emit::IRGrad:
  case Emit::Kernels:
  case Emit::Plan:
  case Emit::Cpp:
  case Emit::Header:
  case Emit::Cuda:
  case Emit::Dot: {
    auto program = frontend.check(overrides.empty() ? nullptr : &overrides);
    ok = program != nullptr && !diags.hasErrors();
    if (!ok)
      break;
    if (!networkName.empty() && !program->find(networkName)) {
      diags.errorNoLoc("no network named '" + networkName + "' in " + inputFile);
      ok = false;
      break;
    }
    EmitOptions emitOpts;
    emitOpts.specPath = specName.empty() ? std::string(inputFile) : std::string(specName);
    emitOpts.outputName = outputFile == "-" ? "" : llvm::sys::path::filename(outputFile).str();
    emitOpts.lineDirectives = !noLineDirectives;
    emitOpts.checkpointEvery = checkpointEvery;
    emitOpts.memoryBudget = memoryBudget;
    emitOpts.cppNamespace = cppNamespace;
    std::vector<std::string> bodies, names;
    for (const auto &net : program->networks) {
      if (!networkName.empty() && net->name != networkName)
        continue;
      if (action == Emit::Summary)
        continue;
      auto compiled = compileNetwork(*net, diags, verifyEach);
      if (!compiled) {
        ok = false;
        continue;
      }
      if (action == Emit::Kernels || action == Emit::Plan || action == Emit::Cpp ||
          action == Emit::Header || action == Emit::Cuda) {
        try {
          kern::FusedNetwork fused = kern::fuse(*compiled);
          if (action == Emit::Kernels)
            kern::print(fused, out.os());
          else if (action == Emit::Plan)
            printPlan(*compiled, fused, out.os());
          else if (action == Emit::Cpp)
            bodies.push_back(emitCppNetwork(*compiled, fused, frontend.getSourceMgr(), emitOpts));
          else if (action == Emit::Cuda)
            bodies.push_back(emitCudaNetwork(*compiled, fused, frontend.getSourceMgr(), emitOpts));
          names.push_back(net->name);
        } catch (const std::exception &e) {
          diags.errorNoLoc(std::string("cannot generate code for network '") + net->name +
                           "': " + e.what());
          ok = false;
        }
        continue;
      }
      if (action == Emit::IR)
        ir::print(compiled->forward, &frontend.getSourceMgr(), out.os());
      else if (action == Emit::IRGrad)
        ir::print(compiled->backward, &frontend.getSourceMgr(), out.os());
      else
        ir::printDot(compiled->forward, compiled->backward, out.os());
    }
    if (ok && action == Emit::Cpp)
      out.os() << emitCppFile(bodies, emitOpts);
    if (ok && action == Emit::Cuda)
      out.os() << emitCudaFile(bodies, emitOpts);
    if (ok && action == Emit::Header)
      out.os() << emitCppHeader(names, emitOpts);
    if (ok && action == Emit::Summary) {
      // The summary also proves each network differentiates: compile them all.
      std::vector<std::pair<ir::FlopCount, ir::FlopCount>> flops;
      for (const auto &net : program->networks) {
        auto compiled = compileNetwork(*net, diags, verifyEach);
        ok &= compiled.has_value();
        if (compiled)
          flops.push_back({ir::countFlops(compiled->forward), ir::countFlops(compiled->backward)});
      }
      if (ok) {
        std::string text;
        llvm::raw_string_ostream summary(text);
        sema::printSummary(*program, summary);
        // Add each network's FLOPs per step after its summary block.
        size_t k = 0;
        llvm::StringRef rest(text);
        while (!rest.empty()) {
          auto [line, tail] = rest.split('\n');
          out.os() << line << "\n";
          rest = tail;
          if (line.starts_with("  state per batch element:") && k < flops.size()) {
            const auto &[f, b] = flops[k++];
            out.os() << "  FLOPs per step: forward " << f.perElement << " per batch element + "
                     << f.shared << " shared, backward " << b.perElement << " per batch element + "
                     << b.shared << " shared\n";
          }
        }
      }
    }
    break;
  }
  }

  if (verifier)
    return verifier->finish(llvm::errs()) ? 0 : 1;
  if (!ok) {
    llvm::errs() << diags.errorCount() << " error" << (diags.errorCount() == 1 ? "" : "s")
                 << " generated.\n";
    return 1;
  }
  out.keep();
  return 0;
}
