//===- Sema.cpp - Semantic analysis of dopa specs -------------------------===//
//
// Implements the checks described in Sema.h. The checker walks each network, instantiates the cells
// its layers name with concrete dims, and checks every unit instance in four phases: declarations
// (names, duplicates), constants (dims and consts, with cycle detection and overflow checks),
// variables (shapes, initializers, layers), and the step block (dependency order, shapes, state
// completeness). Errors inside a cell instance carry notes that name the layer chain.
//
// This file is the driver: shapes and names of the public interface, reporting, units, networks
// and instantiation. The phases live in SemaDecls.cpp (declarations, constants, variables and
// layers), SemaStep.cpp (the step block) and SemaExpr.cpp (shape inference of expressions); the
// Checker they share is declared in SemaImpl.h.
//
//===----------------------------------------------------------------------===//
#include "dopa/dsl/Sema.h"

#include "SemaImpl.h"
#include "Suggest.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"

using namespace dopa;
using namespace dopa::ast;
using namespace dopa::sema;

//===----------------------------------------------------------------------===//
// Shapes, inits, names
//===----------------------------------------------------------------------===//

int64_t Shape::numElements() const {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

std::string Shape::str() const {
  if (isInt)
    return "int";
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i)
    s += (i ? ", " : "") + std::to_string(dims[i]);
  return s + "]";
}

std::string dopa::sema::detail::fmtNum(double v) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << llvm::format("%g", v);
  return s;
}

std::string Init::str() const {
  using detail::fmtNum;
  switch (kind) {
  case Constant: return "= " + fmtNum(a);
  case Uniform: return "~ uniform(" + fmtNum(a) + ", " + fmtNum(b) + ")";
  case Normal: return "~ normal(" + fmtNum(a) + ", " + fmtNum(b) + ")";
  }
  return "";
}

const char *dopa::sema::symbolKindName(SymbolKind kind) {
  switch (kind) {
  case SymbolKind::Dim: return "dimension";
  case SymbolKind::Const: return "constant";
  case SymbolKind::Input: return "input";
  case SymbolKind::State: return "state";
  case SymbolKind::Param: return "param";
  case SymbolKind::Mask: return "mask";
  case SymbolKind::Linear: return "linear layer";
  case SymbolKind::Embedding: return "embedding";
  case SymbolKind::Layer: return "layer";
  case SymbolKind::Local: return "local value";
  case SymbolKind::Output: return "output";
  }
  return "name";
}

std::string dopa::sema::symbolKindWithArticle(SymbolKind kind) {
  std::string name = symbolKindName(kind);
  bool vowel = name.find_first_of("aeiou") == 0;
  return (vowel ? "an " : "a ") + name;
}

int64_t Network::numParams() const {
  int64_t n = 0;
  for (const Variable *v : params)
    n += v->shape.numElements();
  return n;
}

const Network *Program::find(llvm::StringRef name) const {
  for (const auto &net : networks)
    if (net->name == name)
      return net.get();
  return nullptr;
}

namespace dopa::sema::detail {

//===----------------------------------------------------------------------===//
// Reporting
//===----------------------------------------------------------------------===//

void Checker::error(llvm::SMLoc loc, const llvm::Twine &msg, llvm::ArrayRef<llvm::SMRange> ranges,
                    llvm::ArrayRef<llvm::SMFixIt> fixIts) {
  failed = true;
  // Past its limit the engine drops the error and its notes.
  lastErrorShown = !quiet && !diags.limitReached();
  if (quiet)
    return;
  diags.error(loc, msg, ranges, fixIts);
  for (auto it = stack.rbegin(); it != stack.rend(); ++it)
    if (it->layerRange.isValid())
      diags.note(it->layerRange.Start, it->description, {it->layerRange});
}

void Checker::note(llvm::SMLoc loc, const llvm::Twine &msg, llvm::ArrayRef<llvm::SMRange> ranges) {
  if (!quiet)
    diags.note(loc, msg, ranges);
}

void Checker::warning(llvm::SMLoc loc, const llvm::Twine &msg,
                      llvm::ArrayRef<llvm::SMRange> ranges) {
  // A cell used by several layers is checked once per layer; say each warning once.
  if (!quiet && warned.insert({loc.getPointer(), msg.str()}).second)
    diags.warning(loc, msg, ranges);
}

void Checker::suggest(llvm::StringRef name, llvm::SMRange range, const Instance *inst,
                      bool functions, llvm::ArrayRef<SymbolKind> kinds) {
  if (!lastErrorShown || !takeSuggestion())
    return; // the note would not be shown either, or the search budget is spent
  ClosestName closest(name, name.size() >= 4 ? 2u : 1u);
  if (functions)
    for (const BuiltinInfo &b : builtins)
      closest.consider(b.name);
  if (inst) {
    // In name order, so that of equally close names the same one is suggested on every run.
    std::vector<llvm::StringRef> names;
    for (const auto &entry : inst->symbols)
      if (kinds.empty() || llvm::is_contained(kinds, entry.second.kind))
        names.push_back(entry.getKey());
    llvm::sort(names);
    for (llvm::StringRef n : names)
      closest.consider(n);
  }
  if (auto best = closest.result())
    note(range.Start, "did you mean '" + *best + "'?", {range});
}

void Checker::suggestCell(const Ident &cell) {
  if (!lastErrorShown || !takeSuggestion())
    return; // the note would not be shown either, or the search budget is spent
  ClosestName closest(cell.name, 2);
  for (const auto &u : units)
    if (u.second->isCell)
      closest.consider(u.getKey());
  if (auto best = closest.result())
    note(cell.getLoc(), "did you mean '" + *best + "'?", {cell.range});
}

//===----------------------------------------------------------------------===//
// Driver
//===----------------------------------------------------------------------===//

std::unique_ptr<Program> Checker::run(llvm::ArrayRef<const File *> files) {
  // Collect units across all files; names are global.
  for (const File *file : files) {
    for (const auto &unit : file->units) {
      auto [it, inserted] = units.try_emplace(unit->name.name, unit.get());
      if (!inserted) {
        error(unit->name.getLoc(),
              "redefinition of " + llvm::Twine(unit->isCell ? "cell" : "network") + " '" +
                  unit->name.name + "'",
              {unit->name.range});
        note(it->second->name.getLoc(), "previous definition is here");
      }
    }
  }

  auto program = std::make_unique<Program>();
  const File *mainFile = files.empty() ? nullptr : files.front();
  if (mainFile && mainFile->units.empty() && mainFile->includes.empty()) {
    const llvm::MemoryBuffer *buf = diags.getSourceMgr().getMemoryBuffer(mainFile->bufferId);
    error(llvm::SMLoc::getFromPointer(buf->getBufferStart()),
          "the spec declares no network or cell");
  }
  for (const File *file : files) {
    for (const auto &unitPtr : file->units) {
      const Unit &unit = *unitPtr;
      if (unit.isCell || units.lookup(unit.name.name) != &unit || diags.limitReached())
        continue;
      auto net = std::make_unique<Network>();
      net->name = unit.name.name.str();
      cellInstances = 0;
      tooManyCellInstances = false;
      net->root = instantiate(unit, {}, "", {});
      if (!net->root)
        continue;
      // Flatten variables.
      std::vector<const Instance *> work{net->root.get()};
      while (!work.empty()) {
        const Instance *inst = work.back();
        work.pop_back();
        for (const Variable &v : inst->params)
          net->params.push_back(&v);
        for (const Variable &v : inst->states)
          net->states.push_back(&v);
        for (const Variable &v : inst->masks)
          net->masks.push_back(&v);
        for (auto it = inst->layers.rbegin(); it != inst->layers.rend(); ++it)
          work.push_back(it->get());
      }
      program->networks.push_back(std::move(net));
    }
  }
  // Cells in the main file that no network uses are not checked beyond parsing: say so.
  if (mainFile)
    for (const auto &unit : mainFile->units)
      if (unit->isCell && !usedUnits.count(unit.get()) &&
          units.lookup(unit->name.name) == unit.get())
        warning(unit->name.getLoc(),
                "cell '" + unit->name.name +
                    "' is not used by any network in this file; it is only parsed, not checked",
                {unit->name.range});

  if (overrides)
    for (const auto &entry : *overrides)
      if (!overridesUsed.count(entry.getKey()))
        diags.errorNoLoc("no network declares a dimension '" + entry.getKey() + "' to override");

  if (failed || diags.hasErrors())
    return nullptr;
  return program;
}

bool Checker::countCellInstance(llvm::SMRange layerRange) {
  if (!tooManyCellInstances) {
    ++cellInstances;
    if (cellInstances <= maxCellInstances)
      return true;
  }
  failed = true;
  if (tooManyCellInstances)
    return false; // reported
  tooManyCellInstances = true;
  lastErrorShown = !diags.limitReached();
  // Shown even while quiet (a repeated instantiation): nothing else reports it. At the network's
  // own layer that leads here; stack[0] is the network.
  llvm::SMRange at = stack.size() >= 2 ? stack[1].layerRange : layerRange;
  std::string network = stack.empty() ? std::string("the network")
                                      : "network '" + stack.front().unit->name.name.str() + "'";
  diags.error(at.Start,
              network + " instantiates more than " + std::to_string(maxCellInstances) +
                  " cells (nested layers: each layer is an instance of its cell, and the cell's "
                  "own layers are instances too); use fewer layers per cell or fewer levels",
              {at});
  return false;
}

std::unique_ptr<Instance> Checker::instantiate(const Unit &unit, llvm::ArrayRef<int64_t> dimArgs,
                                               std::string prefix, llvm::SMRange layerRange) {
  if (layerRange.isValid() && !countCellInstance(layerRange))
    return nullptr; // past the limit: reported once, nothing more is instantiated
  for (const InstFrame &frame : stack) {
    if (frame.unit == &unit) {
      error(layerRange.Start,
            "cell '" + unit.name.name +
                "' contains itself (through this layer); layers cannot be recursive",
            {layerRange});
      return nullptr;
    }
  }
  std::string desc;
  if (layerRange.isValid()) {
    desc = "in layer '" + prefix.substr(0, prefix.size() - 1) + "' (cell '" + unit.name.name.str() +
           "'";
    for (size_t i = 0; i < unit.dimParams.size() && i < dimArgs.size(); ++i)
      desc +=
          (i ? ", " : " with ") + unit.dimParams[i].name.str() + "=" + std::to_string(dimArgs[i]);
    desc += ")";
  }
  usedUnits.insert(&unit);
  std::vector<int64_t> key(dimArgs.begin(), dimArgs.end());
  bool repeat = layerRange.isValid() && !seenInstantiations.insert({&unit, key}).second;
  if (repeat)
    ++quiet;
  stack.push_back({&unit, layerRange, desc});

  auto inst = std::make_unique<Instance>();
  inst->unit = &unit;
  inst->prefix = std::move(prefix);
  bool failedBefore = failed;
  failed = false;

  declareMembers(*inst, dimArgs);
  evalConstants(*inst);
  checkVariables(*inst);
  checkStep(*inst);

  stack.pop_back();
  if (repeat)
    --quiet;
  bool instFailed = failed;
  failed = failedBefore || instFailed;
  return instFailed ? nullptr : std::move(inst);
}

} // namespace dopa::sema::detail

std::unique_ptr<Program> dopa::sema::check(llvm::ArrayRef<const File *> files,
                                           DiagnosticEngine &diags, const DimOverrides *overrides) {
  return detail::Checker(diags, overrides).run(files);
}

//===----------------------------------------------------------------------===//
// Summary
//===----------------------------------------------------------------------===//

bool dopa::sema::broadcastDims(llvm::ArrayRef<int64_t> a, llvm::ArrayRef<int64_t> b,
                               llvm::SmallVectorImpl<int64_t> &out) {
  size_t rank = std::max(a.size(), b.size());
  out.assign(rank, 1);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      return false;
    out[i] = std::max(da, db);
  }
  return true;
}

void dopa::sema::printSummary(const Network &net, llvm::raw_ostream &os) {
  const Instance &root = *net.root;
  os << "network " << net.name << "\n";
  os << "  dims:";
  for (const auto &[n, v] : root.dimValues)
    os << " " << n << "=" << v;
  os << "\n";
  for (const Variable &in : root.inputs)
    os << "  input  " << in.name << " : " << in.shape.str() << "\n";
  for (const auto &[n, s] : root.outputs)
    os << "  output " << n << " : " << s.str() << "\n";
  int64_t stateFloats = 0;
  for (const Variable *st : net.states) {
    os << "  state  " << st->name << " : " << st->shape.str() << " " << st->init.str() << "\n";
    stateFloats += st->shape.numElements();
  }
  for (const Variable *p : net.params)
    os << "  param  " << p->name << " : " << p->shape.str() << " " << p->init.str() << "\n";
  for (const Variable *m : net.masks)
    os << "  mask   " << m->name << " : " << m->shape.str() << " dropout("
       << llvm::format("%g", m->dropout) << ")" << (m->shared ? " shared" : "") << "\n";
  os << "  parameters: " << net.numParams() << " in " << net.params.size() << " tensors\n";
  os << "  state per batch element: " << stateFloats << " floats\n";
}

void dopa::sema::printSummary(const Program &program, llvm::raw_ostream &os) {
  for (const auto &net : program.networks)
    printSummary(*net, os);
}
