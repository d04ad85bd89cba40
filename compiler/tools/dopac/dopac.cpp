//===- dopac.cpp - The dopa compiler driver -------------------------------===//
//
// dopac reads a spec (*.dopa), runs the front end, and prints the stage asked for with --emit.
// It only parses options and calls the libraries. Exit codes: 0 success, 1 errors in the spec,
// 2 usage or I/O errors.
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Passes.h"
#include "dopa/dsl/Frontend.h"
#include "dopa/dsl/Lexer.h"
#include "dopa/dsl/Verifier.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

using namespace dopa;
namespace cl = llvm::cl;

namespace {
enum class Emit { Tokens, AST, Summary, IR, IRGrad, Dot };

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
                    clEnumValN(Emit::Dot, "dot", "forward and backward step graphs as Graphviz")),
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
      if (action == Emit::IR)
        ir::print(compiled->forward, &frontend.getSourceMgr(), out.os());
      else if (action == Emit::IRGrad)
        ir::print(compiled->backward, &frontend.getSourceMgr(), out.os());
      else
        ir::printDot(compiled->forward, compiled->backward, out.os());
    }
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
