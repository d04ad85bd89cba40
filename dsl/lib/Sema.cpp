//===- Sema.cpp - Semantic analysis of dopa specs -------------------------===//
//
// Implements the checks described in Sema.h. The checker walks each network, instantiates the cells
// its layers name with concrete dims, and checks every unit instance in four phases: declarations
// (names, duplicates), constants (dims and consts, with cycle detection and overflow checks),
// variables (shapes, initializers, layers), and the step block (dependency order, shapes, state
// completeness). Errors inside a cell instance carry notes that name the layer chain.
//
//===----------------------------------------------------------------------===//
#include "dopa/dsl/Sema.h"

#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <optional>
#include <set>

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

static std::string fmtNum(double v) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << llvm::format("%g", v);
  return s;
}

std::string Init::str() const {
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
  case SymbolKind::Linear: return "linear layer";
  case SymbolKind::Embedding: return "embedding";
  case SymbolKind::Layer: return "layer";
  case SymbolKind::Local: return "local value";
  case SymbolKind::Output: return "output";
  }
  return "name";
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

namespace {

Symbol makeSymbol(SymbolKind kind) {
  Symbol sym;
  sym.kind = kind;
  return sym;
}

/// Largest size of one dimension, and of one tensor per batch element.
constexpr int64_t maxDim = int64_t(1) << 24;
constexpr int64_t maxElements = int64_t(1) << 31;

enum class Builtin {
  None,
  Tanh,
  Sigmoid,
  Relu,
  Exp,
  Log,
  Abs,
  Sqrt,
  Detach,
  Softmax,
  LogSoftmax,
  Clip,
  Outer,
  Sum,
  Mean,
  Transpose,
  Concat,
  Col,
  Row,
  Min,
  Max
};

struct BuiltinInfo {
  const char *name;
  Builtin id;
  unsigned minArgs, maxArgs;
};

constexpr BuiltinInfo builtins[] = {
    {"tanh", Builtin::Tanh, 1, 1},
    {"sigmoid", Builtin::Sigmoid, 1, 1},
    {"relu", Builtin::Relu, 1, 1},
    {"exp", Builtin::Exp, 1, 1},
    {"log", Builtin::Log, 1, 1},
    {"abs", Builtin::Abs, 1, 1},
    {"sqrt", Builtin::Sqrt, 1, 1},
    {"softmax", Builtin::Softmax, 1, 1},
    {"log_softmax", Builtin::LogSoftmax, 1, 1},
    {"clip", Builtin::Clip, 3, 3},
    {"outer", Builtin::Outer, 2, 2},
    {"sum", Builtin::Sum, 1, 2},
    {"mean", Builtin::Mean, 1, 2},
    {"transpose", Builtin::Transpose, 1, 1},
    {"concat", Builtin::Concat, 1, 64},
    {"col", Builtin::Col, 1, 1},
    {"row", Builtin::Row, 1, 1},
    {"min", Builtin::Min, 2, 2},
    {"max", Builtin::Max, 2, 2},
    {"detach", Builtin::Detach, 1, 1},
};

const BuiltinInfo *findBuiltin(llvm::StringRef name) {
  for (const BuiltinInfo &b : builtins)
    if (name == b.name)
      return &b;
  return nullptr;
}

constexpr const char *distributions[] = {"uniform", "normal", "fan_in_uniform"};

/// A frame of the instantiation stack: which layer of which unit is being checked.
struct InstFrame {
  const Unit *unit;
  llvm::SMRange layerRange; // empty for the network itself
  std::string description;
};

class Checker {
public:
  Checker(DiagnosticEngine &diags, const DimOverrides *overrides)
      : diags(diags), overrides(overrides) {}

  std::unique_ptr<Program> run(llvm::ArrayRef<const File *> files);

private:
  // Reporting.
  void error(llvm::SMLoc loc, const llvm::Twine &msg, llvm::ArrayRef<llvm::SMRange> ranges = {},
             llvm::ArrayRef<llvm::SMFixIt> fixIts = {});
  void note(llvm::SMLoc loc, const llvm::Twine &msg, llvm::ArrayRef<llvm::SMRange> ranges = {});
  void warning(llvm::SMLoc loc, const llvm::Twine &msg, llvm::ArrayRef<llvm::SMRange> ranges = {});
  void suggest(llvm::StringRef name, llvm::SMRange range, const Instance *inst, bool functions);

  // Instances.
  std::unique_ptr<Instance> instantiate(const Unit &unit, llvm::ArrayRef<int64_t> dimArgs,
                                        std::string prefix, llvm::SMRange layerRange);
  void declare(Instance &inst, const Ident &name, Symbol sym);
  void declareMembers(Instance &inst, llvm::ArrayRef<int64_t> dimArgs);
  void evalConstants(Instance &inst);
  void checkVariables(Instance &inst);
  void checkStep(Instance &inst);

  // Constant evaluation.
  std::optional<int64_t> evalDim(Instance &inst, const Expr *expr);
  std::optional<double> evalConst(Instance &inst, const Expr *expr);
  std::optional<int64_t> resolveDimSymbol(Instance &inst, llvm::StringRef name, llvm::SMRange use);
  std::optional<double> resolveConstSymbol(Instance &inst, llvm::StringRef name, llvm::SMRange use);
  /// Evaluate a dim or const once, with cycle detection; `slot` caches the value in its Symbol.
  template <class V, class Compute>
  std::optional<V> resolveSymbol(Instance &inst, llvm::StringRef name, llvm::SMRange use,
                                 const char *what, V Symbol::*slot, Compute compute);
  std::optional<Shape> evalShape(Instance &inst, const TypeSpec &type);
  std::optional<Init> evalInit(Instance &inst, const InitSpec &init, bool allowDistribution,
                               llvm::StringRef what);

  // Step checking.
  void collectRefs(const Instance &inst, const Expr *expr,
                   llvm::SmallVectorImpl<const NameExpr *> &out);
  std::optional<Shape> infer(Instance &inst, const Expr *expr);
  std::optional<Shape> inferCall(Instance &inst, const CallExpr *call, llvm::StringRef member,
                                 llvm::SMRange memberRange);
  std::optional<Shape> inferBuiltin(Instance &inst, const CallExpr *call, const BuiltinInfo &info);
  std::optional<Shape> inferIndex(Instance &inst, const IndexExpr *index);
  std::optional<Shape> requireReal(Instance &inst, const Expr *expr, const llvm::Twine &context);

  DiagnosticEngine &diags;
  const DimOverrides *overrides;
  llvm::StringSet<> overridesUsed;
  llvm::StringMap<const Unit *> units;
  std::vector<InstFrame> stack;
  /// Instantiations already checked, keyed by unit and dims: repeats are checked quietly.
  std::set<std::pair<const Unit *, std::vector<int64_t>>> seenInstantiations;
  std::set<const Unit *> usedUnits;
  unsigned quiet = 0;
  bool failed = false;

  // Per-instance evaluation state for cycle detection in dims and consts.
  enum class EvalState { Pending, Visiting, Done, Failed };
  llvm::StringMap<EvalState> evalState;
  llvm::SmallVector<std::pair<llvm::StringRef, llvm::SMRange>, 8> evalStack;
  llvm::StringMap<const Expr *> pendingDefs;
};

void Checker::error(llvm::SMLoc loc, const llvm::Twine &msg, llvm::ArrayRef<llvm::SMRange> ranges,
                    llvm::ArrayRef<llvm::SMFixIt> fixIts) {
  failed = true;
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
  if (!quiet)
    diags.warning(loc, msg, ranges);
}

void Checker::suggest(llvm::StringRef name, llvm::SMRange range, const Instance *inst,
                      bool functions) {
  llvm::StringRef best;
  unsigned bestDist = 3;
  auto consider = [&](llvm::StringRef candidate) {
    unsigned d = name.edit_distance(candidate, true, bestDist);
    if (d < bestDist && d <= (name.size() >= 4 ? 2u : 1u)) {
      bestDist = d;
      best = candidate;
    }
  };
  if (functions)
    for (const BuiltinInfo &b : builtins)
      consider(b.name);
  if (inst)
    for (const auto &entry : inst->symbols)
      consider(entry.getKey());
  if (!best.empty() && !quiet) {
    llvm::SMFixIt fix(range, best);
    diags.note(range.Start, "did you mean '" + best + "'?", {range});
  }
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

std::unique_ptr<Instance> Checker::instantiate(const Unit &unit, llvm::ArrayRef<int64_t> dimArgs,
                                               std::string prefix, llvm::SMRange layerRange) {
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

//===----------------------------------------------------------------------===//
// Phase 1: declarations
//===----------------------------------------------------------------------===//

void Checker::declare(Instance &inst, const Ident &name, Symbol sym) {
  sym.range = name.range;
  auto [it, inserted] = inst.symbols.try_emplace(name.name, sym);
  if (!inserted) {
    error(name.getLoc(), "redefinition of '" + name.name + "'", {name.range});
    note(it->second.range.Start,
         llvm::Twine("previous definition (as a ") + symbolKindName(it->second.kind) + ") is here",
         {it->second.range});
  }
  if (findBuiltin(name.name) && inserted)
    warning(name.getLoc(), "'" + name.name + "' hides the built-in function of the same name",
            {name.range});
}

void Checker::declareMembers(Instance &inst, llvm::ArrayRef<int64_t> dimArgs) {
  const Unit &unit = *inst.unit;
  evalState.clear();
  pendingDefs.clear();
  for (size_t i = 0; i < unit.dimParams.size(); ++i) {
    Symbol sym = makeSymbol(SymbolKind::Dim);
    sym.dimValue = i < dimArgs.size() ? dimArgs[i] : 1;
    declare(inst, unit.dimParams[i], sym);
    evalState[unit.dimParams[i].name] = EvalState::Done;
  }
  for (const auto &memberPtr : unit.members) {
    const Member *m = memberPtr.get();
    if (const auto *dims = llvm::dyn_cast<DimsDecl>(m)) {
      for (const DimDef &def : dims->defs) {
        Symbol sym = makeSymbol(SymbolKind::Dim);
        sym.decl = m;
        declare(inst, def.name, sym);
        if (!pendingDefs.count(def.name.name)) {
          pendingDefs[def.name.name] = def.value.get();
          evalState[def.name.name] = EvalState::Pending;
        }
      }
    } else if (const auto *c = llvm::dyn_cast<ConstDecl>(m)) {
      Symbol sym = makeSymbol(SymbolKind::Const);
      sym.decl = m;
      declare(inst, c->name, sym);
      if (!pendingDefs.count(c->name.name)) {
        pendingDefs[c->name.name] = c->value.get();
        evalState[c->name.name] = EvalState::Pending;
      }
    } else if (const auto *var = llvm::dyn_cast<VarDecl>(m)) {
      SymbolKind kind = m->getKind() == Member::Member_Input   ? SymbolKind::Input
                        : m->getKind() == Member::Member_State ? SymbolKind::State
                                                               : SymbolKind::Param;
      for (const Ident &name : var->names) {
        Symbol sym = makeSymbol(kind);
        sym.decl = m;
        declare(inst, name, sym);
      }
    } else if (const auto *lin = llvm::dyn_cast<LinearDecl>(m)) {
      Symbol sym = makeSymbol(SymbolKind::Linear);
      sym.decl = m;
      declare(inst, lin->name, sym);
    } else if (const auto *emb = llvm::dyn_cast<EmbeddingDecl>(m)) {
      Symbol sym = makeSymbol(SymbolKind::Embedding);
      sym.decl = m;
      declare(inst, emb->name, sym);
    } else if (const auto *layer = llvm::dyn_cast<LayerDecl>(m)) {
      Symbol sym = makeSymbol(SymbolKind::Layer);
      sym.decl = m;
      declare(inst, layer->name, sym);
    }
  }
}

//===----------------------------------------------------------------------===//
// Phase 2: constants
//===----------------------------------------------------------------------===//

void Checker::evalConstants(Instance &inst) {
  for (const auto &memberPtr : inst.unit->members) {
    if (const auto *dims = llvm::dyn_cast<DimsDecl>(memberPtr.get())) {
      for (const DimDef &def : dims->defs) {
        if (auto v = resolveDimSymbol(inst, def.name.name, def.name.range))
          inst.dimValues.push_back({def.name.name.str(), *v});
      }
    } else if (const auto *c = llvm::dyn_cast<ConstDecl>(memberPtr.get())) {
      resolveConstSymbol(inst, c->name.name, c->name.range);
    }
  }
  for (const Ident &p : inst.unit->dimParams)
    inst.dimValues.insert(inst.dimValues.begin() + (&p - inst.unit->dimParams.data()),
                          {p.name.str(), inst.symbols[p.name].dimValue});
}

template <class V, class Compute>
std::optional<V> Checker::resolveSymbol(Instance &inst, llvm::StringRef name, llvm::SMRange use,
                                        const char *what, V Symbol::*slot, Compute compute) {
  switch (evalState[name]) {
  case EvalState::Done: return inst.symbols[name].*slot;
  case EvalState::Failed: return std::nullopt;
  case EvalState::Visiting: {
    llvm::SMRange range = inst.symbols[name].range;
    error(range.Start, llvm::Twine(what) + " '" + name + "' is defined in terms of itself",
          {range});
    bool inCycle = false;
    for (auto &[n, r] : evalStack) {
      inCycle |= n == name;
      if (inCycle) {
        note(r.Start, "'" + n + "' is used here", {r});
        evalState[n] = EvalState::Failed;
      }
    }
    return std::nullopt;
  }
  case EvalState::Pending: break;
  }
  evalState[name] = EvalState::Visiting;
  evalStack.push_back({name, use});
  std::optional<V> v = compute();
  evalStack.pop_back();
  // Re-read the state: the evaluation may have marked this name as part of a cycle.
  EvalState &after = evalState[name];
  if (after == EvalState::Failed)
    return std::nullopt;
  after = v ? EvalState::Done : EvalState::Failed;
  if (v)
    inst.symbols[name].*slot = *v;
  return v;
}

std::optional<int64_t> Checker::resolveDimSymbol(Instance &inst, llvm::StringRef name,
                                                 llvm::SMRange use) {
  return resolveSymbol<int64_t>(
      inst, name, use, "dimension", &Symbol::dimValue, [&]() -> std::optional<int64_t> {
        std::optional<int64_t> v;
        if (!inst.unit->isCell && overrides && overrides->count(name)) {
          v = overrides->lookup(name); // -D NAME=VALUE on the command line
          overridesUsed.insert(name);
        } else {
          v = evalDim(inst, pendingDefs.lookup(name));
        }
        if (v && (*v < 1 || *v > maxDim)) {
          const Expr *def = pendingDefs.lookup(name);
          error(def->getLoc(),
                "dimension '" + name + "' is " + llvm::Twine(*v) +
                    "; dimensions must be between 1 and " + llvm::Twine(maxDim),
                {def->getRange()});
          return std::nullopt;
        }
        return v;
      });
}

std::optional<double> Checker::resolveConstSymbol(Instance &inst, llvm::StringRef name,
                                                  llvm::SMRange use) {
  return resolveSymbol<double>(inst, name, use, "constant", &Symbol::constValue,
                               [&] { return evalConst(inst, pendingDefs.lookup(name)); });
}

/// dims are integer expressions over integer literals and other dims: + - * / (exact), unary -.
std::optional<int64_t> Checker::evalDim(Instance &inst, const Expr *expr) {
  if (const auto *num = llvm::dyn_cast<NumberExpr>(expr)) {
    if (!num->isInteger()) {
      error(expr->getLoc(), "a dimension must be an integer", {expr->getRange()});
      return std::nullopt;
    }
    return num->getIntValue();
  }
  if (const auto *name = llvm::dyn_cast<NameExpr>(expr)) {
    auto it = inst.symbols.find(name->getName());
    if (it == inst.symbols.end()) {
      error(expr->getLoc(), "unknown dimension '" + name->getName() + "'", {expr->getRange()});
      suggest(name->getName(), expr->getRange(), &inst, false);
      return std::nullopt;
    }
    it->second.used = true;
    if (it->second.kind != SymbolKind::Dim) {
      error(expr->getLoc(),
            "'" + name->getName() + "' is a " + symbolKindName(it->second.kind) +
                ", not a dimension; sizes are built from integers and 'dims'",
            {expr->getRange()});
      note(it->second.range.Start, "declared here", {it->second.range});
      return std::nullopt;
    }
    return resolveDimSymbol(inst, name->getName(), expr->getRange());
  }
  if (const auto *un = llvm::dyn_cast<UnaryExpr>(expr)) {
    auto v = evalDim(inst, un->getOperand());
    if (!v)
      return std::nullopt;
    return -*v;
  }
  if (const auto *bin = llvm::dyn_cast<BinaryExpr>(expr)) {
    auto l = evalDim(inst, bin->getLHS());
    auto r = evalDim(inst, bin->getRHS());
    if (!l || !r)
      return std::nullopt;
    int64_t out = 0;
    bool overflow = false;
    switch (bin->getOp()) {
    case '+': overflow = __builtin_add_overflow(*l, *r, &out); break;
    case '-': overflow = __builtin_sub_overflow(*l, *r, &out); break;
    case '*': overflow = __builtin_mul_overflow(*l, *r, &out); break;
    case '/':
      if (*r == 0 || *l % *r != 0) {
        error(bin->getOpLoc(),
              "dimension division " + llvm::Twine(*l) + " / " + llvm::Twine(*r) + " is not exact",
              {expr->getRange()});
        return std::nullopt;
      }
      out = *l / *r;
      break;
    default:
      error(bin->getOpLoc(), "'@' cannot be used in a dimension", {expr->getRange()});
      return std::nullopt;
    }
    if (overflow) {
      error(bin->getOpLoc(), "dimension arithmetic overflows 64 bits", {expr->getRange()});
      return std::nullopt;
    }
    return out;
  }
  error(expr->getLoc(), "a dimension must be an integer expression of integers and dims",
        {expr->getRange()});
  return std::nullopt;
}

/// consts are real expressions over numbers, dims and other consts: + - * /, unary -.
std::optional<double> Checker::evalConst(Instance &inst, const Expr *expr) {
  if (const auto *num = llvm::dyn_cast<NumberExpr>(expr))
    return num->getValue();
  if (const auto *name = llvm::dyn_cast<NameExpr>(expr)) {
    auto it = inst.symbols.find(name->getName());
    if (it == inst.symbols.end()) {
      error(expr->getLoc(), "unknown constant '" + name->getName() + "'", {expr->getRange()});
      suggest(name->getName(), expr->getRange(), &inst, false);
      return std::nullopt;
    }
    it->second.used = true;
    if (it->second.kind == SymbolKind::Dim) {
      auto v = resolveDimSymbol(inst, name->getName(), expr->getRange());
      return v ? std::optional<double>(double(*v)) : std::nullopt;
    }
    if (it->second.kind == SymbolKind::Const)
      return resolveConstSymbol(inst, name->getName(), expr->getRange());
    error(expr->getLoc(),
          "'" + name->getName() + "' is a " + symbolKindName(it->second.kind) +
              ", not a constant; initializers and consts are built from numbers, dims and consts",
          {expr->getRange()});
    return std::nullopt;
  }
  if (const auto *un = llvm::dyn_cast<UnaryExpr>(expr)) {
    auto v = evalConst(inst, un->getOperand());
    return v ? std::optional<double>(-*v) : std::nullopt;
  }
  if (const auto *bin = llvm::dyn_cast<BinaryExpr>(expr)) {
    auto l = evalConst(inst, bin->getLHS());
    auto r = evalConst(inst, bin->getRHS());
    if (!l || !r)
      return std::nullopt;
    double out = 0;
    switch (bin->getOp()) {
    case '+': out = *l + *r; break;
    case '-': out = *l - *r; break;
    case '*': out = *l * *r; break;
    case '/': out = *l / *r; break;
    default:
      error(bin->getOpLoc(), "'@' cannot be used in a constant", {expr->getRange()});
      return std::nullopt;
    }
    if (!std::isfinite(out)) {
      error(bin->getOpLoc(), "constant expression is not finite", {expr->getRange()});
      return std::nullopt;
    }
    return out;
  }
  error(expr->getLoc(), "expected a constant expression (numbers, dims and consts)",
        {expr->getRange()});
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// Phase 3: variables, linear/embedding layers, cell layers
//===----------------------------------------------------------------------===//

std::optional<Shape> Checker::evalShape(Instance &inst, const TypeSpec &type) {
  if (type.isInt)
    return Shape::integer();
  Shape shape;
  bool ok = true;
  for (const auto &dim : type.dims) {
    auto v = evalDim(inst, dim.get());
    if (!v) {
      ok = false;
      continue;
    }
    if (*v < 1 || *v > maxDim) {
      error(dim->getLoc(),
            "size " + llvm::Twine(*v) + " is out of range; sizes must be between 1 and " +
                llvm::Twine(maxDim),
            {dim->getRange()});
      ok = false;
      continue;
    }
    shape.dims.push_back(*v);
  }
  if (!ok)
    return std::nullopt;
  int64_t n = 1;
  for (int64_t d : shape.dims) {
    if (__builtin_mul_overflow(n, d, &n) || n > maxElements) {
      error(type.range.Start,
            "shape " + shape.str() + " has more than 2^31 elements per batch element",
            {type.range});
      return std::nullopt;
    }
  }
  return shape;
}

std::optional<Init> Checker::evalInit(Instance &inst, const InitSpec &spec, bool allowDistribution,
                                      llvm::StringRef what) {
  if (!spec.isDistribution) {
    auto v = evalConst(inst, spec.value.get());
    if (!v)
      return std::nullopt;
    return Init{Init::Constant, *v, 0};
  }
  if (!allowDistribution) {
    error(spec.range.Start,
          what + " starts from a constant ('= value'), not a random draw ('~ ...')", {spec.range});
    return std::nullopt;
  }
  const auto *call = llvm::dyn_cast<CallExpr>(spec.value.get());
  const auto *callee = call ? llvm::dyn_cast<NameExpr>(call->getCallee()) : nullptr;
  if (!callee) {
    error(spec.value->getLoc(),
          "expected a distribution after '~': uniform(low, high), normal(mean, std) or "
          "fan_in_uniform(n)",
          {spec.value->getRange()});
    return std::nullopt;
  }
  llvm::StringRef dist = callee->getName();
  unsigned want = dist == "fan_in_uniform" ? 1 : 2;
  if (!llvm::is_contained(distributions, dist)) {
    error(callee->getLoc(),
          "unknown distribution '" + dist +
              "'; expected uniform(low, high), normal(mean, std) or fan_in_uniform(n)",
          {callee->getRange()});
    return std::nullopt;
  }
  if (call->getArgs().size() != want) {
    error(call->getLoc(),
          "'" + dist + "' takes " + llvm::Twine(want) + " argument" + (want == 1 ? "" : "s") +
              ", got " + llvm::Twine(call->getArgs().size()),
          {call->getRange()});
    return std::nullopt;
  }
  llvm::SmallVector<double, 2> args;
  for (const auto &arg : call->getArgs()) {
    auto v = evalConst(inst, arg.get());
    if (!v)
      return std::nullopt;
    args.push_back(*v);
  }
  if (dist == "uniform") {
    if (!(args[0] < args[1])) {
      error(call->getLoc(),
            "uniform(" + fmtNum(args[0]) + ", " + fmtNum(args[1]) +
                ") is empty: low must be below high",
            {call->getRange()});
      return std::nullopt;
    }
    return Init{Init::Uniform, args[0], args[1]};
  }
  if (dist == "normal") {
    if (args[1] < 0) {
      error(call->getLoc(), "normal(mean, std) needs std >= 0", {call->getRange()});
      return std::nullopt;
    }
    return Init{Init::Normal, args[0], args[1]};
  }
  if (!(args[0] >= 1)) {
    error(call->getLoc(), "fan_in_uniform(n) needs n >= 1", {call->getRange()});
    return std::nullopt;
  }
  double bound = 1.0 / std::sqrt(args[0]);
  return Init{Init::Uniform, -bound, bound};
}

void Checker::checkVariables(Instance &inst) {
  for (const auto &memberPtr : inst.unit->members) {
    const Member *m = memberPtr.get();
    if (const auto *var = llvm::dyn_cast<VarDecl>(m)) {
      auto shape = evalShape(inst, var->type);
      VarKind kind = m->getKind() == Member::Member_Input   ? VarKind::Input
                     : m->getKind() == Member::Member_State ? VarKind::State
                                                            : VarKind::Param;
      const char *kindName = kind == VarKind::Input   ? "an input"
                             : kind == VarKind::State ? "a state"
                                                      : "a param";
      if (shape && shape->isInt && kind != VarKind::Input) {
        error(var->type.range.Start,
              llvm::Twine("only inputs can be integers ('int'); ") + kindName + " is real-valued",
              {var->type.range});
        shape = std::nullopt;
      }
      std::optional<Init> init = Init{};
      if (kind == VarKind::Input && var->init) {
        error(var->init->range.Start, "an input has no initializer; its values come from the data",
              {var->init->range});
        init = std::nullopt;
      } else if (kind == VarKind::Param && !var->init) {
        error(var->names.front().getLoc(),
              "param '" + var->names.front().name +
                  "' needs an initializer: '= value' or '~ uniform(low, high)' and the like",
              {var->names.front().range});
        init = std::nullopt;
      } else if (var->init) {
        init = evalInit(inst, *var->init, kind == VarKind::Param,
                        kind == VarKind::State ? "a state" : "a param");
      }
      for (const Ident &name : var->names) {
        Symbol &sym = inst.symbols[name.name];
        if (sym.decl != m)
          continue; // a duplicate, already reported
        if (!shape || !init)
          continue;
        sym.shape = *shape;
        Variable v{kind, inst.prefix + name.name.str(), *shape, *init, name.range};
        auto &list = kind == VarKind::Input   ? inst.inputs
                     : kind == VarKind::State ? inst.states
                                              : inst.params;
        sym.varIndex = int(list.size());
        list.push_back(v);
      }
    } else if (const auto *lin = llvm::dyn_cast<LinearDecl>(m)) {
      auto in = evalDim(inst, lin->inDim.get());
      auto out = evalDim(inst, lin->outDim.get());
      if (!in || !out)
        continue;
      for (auto [v, e] : {std::pair{*in, lin->inDim.get()}, std::pair{*out, lin->outDim.get()}})
        if (v < 1 || v > maxDim)
          error(e->getLoc(), "size " + llvm::Twine(v) + " is out of range", {e->getRange()});
      if (*in < 1 || *out < 1 || *in > maxDim || *out > maxDim)
        continue;
      if (*in * *out > maxElements) {
        error(lin->name.getLoc(), "linear layer '" + lin->name.name + "' is too large",
              {lin->name.range});
        continue;
      }
      // PyTorch nn.Linear default: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
      double bound = 1.0 / std::sqrt(double(*in));
      Init weightInit{Init::Uniform, -bound, bound};
      if (lin->init) {
        auto init = evalInit(inst, *lin->init, true, "a linear layer");
        if (!init)
          continue;
        weightInit = *init;
      }
      Symbol &sym = inst.symbols[lin->name.name];
      if (sym.decl != m)
        continue;
      sym.inDim = *in;
      sym.outDim = *out;
      sym.hasBias = lin->hasBias;
      Shape w;
      w.dims = {*out, *in};
      inst.params.push_back({VarKind::Param, inst.prefix + lin->name.name.str() + ".weight", w,
                             weightInit, lin->name.range});
      if (lin->hasBias) {
        Shape b;
        b.dims = {*out};
        inst.params.push_back({VarKind::Param, inst.prefix + lin->name.name.str() + ".bias", b,
                               Init{Init::Uniform, -bound, bound}, lin->name.range});
      }
    } else if (const auto *emb = llvm::dyn_cast<EmbeddingDecl>(m)) {
      auto count = evalDim(inst, emb->count.get());
      auto width = evalDim(inst, emb->width.get());
      if (!count || !width)
        continue;
      if (*count < 1 || *width < 1 || *count > maxDim || *width > maxDim ||
          *count * *width > maxElements) {
        error(emb->name.getLoc(), "embedding '" + emb->name.name + "' has an invalid size",
              {emb->name.range});
        continue;
      }
      Init init{Init::Normal, 0, 1}; // PyTorch nn.Embedding default
      if (emb->init) {
        auto i = evalInit(inst, *emb->init, true, "an embedding");
        if (!i)
          continue;
        init = *i;
      }
      Symbol &sym = inst.symbols[emb->name.name];
      if (sym.decl != m)
        continue;
      sym.inDim = *count;
      sym.outDim = *width;
      Shape w;
      w.dims = {*count, *width};
      inst.params.push_back({VarKind::Param, inst.prefix + emb->name.name.str() + ".weight", w,
                             init, emb->name.range});
    } else if (const auto *layer = llvm::dyn_cast<LayerDecl>(m)) {
      const Unit *cell = units.lookup(layer->cell.name);
      if (cell)
        usedUnits.insert(cell);
      if (!cell) {
        error(layer->cell.getLoc(), "unknown cell '" + layer->cell.name + "'", {layer->cell.range});
        llvm::StringRef best;
        unsigned bestDist = 3;
        for (const auto &u : units)
          if (u.second->isCell) {
            unsigned d = layer->cell.name.edit_distance(u.getKey(), true, bestDist);
            if (d < bestDist)
              bestDist = d, best = u.getKey();
          }
        if (!best.empty())
          note(layer->cell.getLoc(), "did you mean '" + best + "'?", {layer->cell.range});
        continue;
      }
      if (!cell->isCell) {
        error(layer->cell.getLoc(),
              "'" + layer->cell.name + "' is a network; only cells can be used as layers",
              {layer->cell.range});
        note(cell->name.getLoc(), "'" + cell->name.name + "' is declared here");
        continue;
      }
      if (layer->dimArgs.size() != cell->dimParams.size()) {
        error(layer->cell.getLoc(),
              "cell '" + cell->name.name + "' takes " + llvm::Twine(cell->dimParams.size()) +
                  " dimension argument" + (cell->dimParams.size() == 1 ? "" : "s") + ", got " +
                  llvm::Twine(layer->dimArgs.size()),
              {layer->getRange()});
        note(cell->name.getLoc(), "'" + cell->name.name + "' is declared here");
        continue;
      }
      llvm::SmallVector<int64_t, 4> args;
      bool ok = true;
      for (const auto &arg : layer->dimArgs) {
        auto v = evalDim(inst, arg.get());
        if (!v || *v < 1 || *v > maxDim) {
          if (v)
            error(arg->getLoc(), "dimension argument " + llvm::Twine(*v) + " is out of range",
                  {arg->getRange()});
          ok = false;
          continue;
        }
        args.push_back(*v);
      }
      if (!ok)
        continue;
      // The child's evaluation state must not clobber ours.
      auto savedState = std::move(evalState);
      auto savedDefs = std::move(pendingDefs);
      llvm::SMRange layerRange(layer->name.range.Start, layer->cell.range.End);
      auto child = instantiate(*cell, args, inst.prefix + layer->name.name.str() + ".", layerRange);
      evalState = std::move(savedState);
      pendingDefs = std::move(savedDefs);
      Symbol &sym = inst.symbols[layer->name.name];
      if (child && sym.decl == m) {
        sym.layer = child.get();
        inst.layers.push_back(std::move(child));
      }
    }
  }
}

//===----------------------------------------------------------------------===//
// Phase 4: the step block
//===----------------------------------------------------------------------===//

void Checker::collectRefs(const Instance &inst, const Expr *expr,
                          llvm::SmallVectorImpl<const NameExpr *> &out) {
  if (const auto *name = llvm::dyn_cast<NameExpr>(expr)) {
    auto it = inst.symbols.find(name->getName());
    if (it != inst.symbols.end() &&
        (it->second.kind == SymbolKind::Local || it->second.kind == SymbolKind::Output))
      out.push_back(name);
  } else if (const auto *un = llvm::dyn_cast<UnaryExpr>(expr)) {
    collectRefs(inst, un->getOperand(), out);
  } else if (const auto *bin = llvm::dyn_cast<BinaryExpr>(expr)) {
    collectRefs(inst, bin->getLHS(), out);
    collectRefs(inst, bin->getRHS(), out);
  } else if (const auto *call = llvm::dyn_cast<CallExpr>(expr)) {
    collectRefs(inst, call->getCallee(), out);
    for (const auto &arg : call->getArgs())
      collectRefs(inst, arg.get(), out);
  } else if (const auto *mem = llvm::dyn_cast<MemberExpr>(expr)) {
    collectRefs(inst, mem->getBase(), out);
  } else if (const auto *idx = llvm::dyn_cast<IndexExpr>(expr)) {
    collectRefs(inst, idx->getBase(), out);
  }
}

void Checker::checkStep(Instance &inst) {
  const Unit &unit = *inst.unit;
  if (!unit.hasStep) {
    error(unit.name.getLoc(),
          llvm::Twine(unit.isCell ? "cell '" : "network '") + unit.name.name +
              "' has no step block; add 'step { ... }' with its equations",
          {unit.name.range});
    return;
  }
  // Declare locals and outputs; record state updates.
  llvm::StringMap<const Equation *> updates;
  llvm::StringSet<> misassigned; // states assigned without a prime: already reported
  for (const Equation &eq : unit.step) {
    if (eq.kind == Equation::StateUpdate) {
      auto it = inst.symbols.find(eq.target.name);
      if (it == inst.symbols.end()) {
        error(eq.target.getLoc(), "no state named '" + eq.target.name + "' to update",
              {eq.target.range});
        suggest(eq.target.name, eq.target.range, &inst, false);
        continue;
      }
      if (it->second.kind != SymbolKind::State) {
        error(eq.target.getLoc(),
              "'" + eq.target.name + "' is a " + symbolKindName(it->second.kind) +
                  "; only states can be updated with " + eq.target.name + "'",
              {eq.target.range});
        note(it->second.range.Start, "declared here", {it->second.range});
        continue;
      }
      auto [prev, inserted] = updates.try_emplace(eq.target.name, &eq);
      if (!inserted) {
        error(eq.target.getLoc(), "state '" + eq.target.name + "' is updated twice in one step",
              {eq.range});
        note(prev->second->target.getLoc(), "the first update is here", {prev->second->range});
      }
      continue;
    }
    auto existing = inst.symbols.find(eq.target.name);
    if (existing != inst.symbols.end()) {
      const Symbol &prev = existing->second;
      if (prev.kind == SymbolKind::State && eq.kind == Equation::Local) {
        misassigned.insert(eq.target.name);
        error(eq.target.getLoc(),
              "'" + eq.target.name + "' is a state; write " + eq.target.name +
                  "' = ... to give it its next value",
              {eq.target.range},
              {llvm::SMFixIt(llvm::SMRange(eq.target.range.End, eq.target.range.End), "'")});
      } else {
        error(eq.target.getLoc(),
              "redefinition of '" + eq.target.name + "'; every name is defined once per step",
              {eq.target.range});
      }
      note(prev.range.Start,
           llvm::Twine("previous definition (as a ") + symbolKindName(prev.kind) + ") is here",
           {prev.range});
      continue;
    }
    Symbol sym = makeSymbol(eq.kind == Equation::Output ? SymbolKind::Output : SymbolKind::Local);
    sym.range = eq.target.range;
    sym.equation = &eq;
    inst.symbols.try_emplace(eq.target.name, sym);
  }

  // Every state is updated exactly once.
  for (const Variable &state : inst.states) {
    llvm::StringRef local = llvm::StringRef(state.name).drop_front(inst.prefix.size());
    if (!updates.count(local) && !misassigned.count(local)) {
      error(state.range.Start, "state '" + local + "' is never updated in the step block",
            {state.range});
      note(unit.stepLoc, "add '" + local + "' = " + local +
                             "' to keep it unchanged, or an equation for its next value");
    }
  }

  // Order equations by their dependencies (locals and outputs); report cycles.
  std::vector<const Equation *> eqs;
  for (const Equation &eq : unit.step) {
    if (eq.kind == Equation::StateUpdate) {
      if (updates.lookup(eq.target.name) == &eq)
        eqs.push_back(&eq);
      continue;
    }
    auto it = inst.symbols.find(eq.target.name);
    if (it != inst.symbols.end() && it->second.equation == &eq)
      eqs.push_back(&eq);
  }
  // Iterative depth-first search, so a long chain of equations cannot overflow the stack.
  enum Mark { New, Visiting, Done, Failed };
  llvm::DenseMap<const Equation *, Mark> mark;
  struct Frame {
    const Equation *eq;
    llvm::SmallVector<const NameExpr *, 8> refs;
    size_t next = 0;
    bool failed = false;
  };
  std::vector<Frame> dfs;
  auto push = [&](const Equation *eq) {
    mark[eq] = Visiting;
    dfs.push_back({eq, {}, 0, false});
    collectRefs(inst, eq->value.get(), dfs.back().refs);
  };
  for (const Equation *root : eqs) {
    if (mark.lookup(root) != New)
      continue;
    push(root);
    while (!dfs.empty()) {
      Frame &top = dfs.back();
      if (top.next < top.refs.size()) {
        const NameExpr *ref = top.refs[top.next++];
        const Equation *dep = inst.symbols.find(ref->getName())->second.equation;
        Mark m = mark.lookup(dep);
        if (m == New) {
          push(dep);
        } else if (m == Failed) {
          top.failed = true;
        } else if (m == Visiting) {
          error(dep->target.getLoc(),
                "cyclic definition: '" + dep->target.name + "' depends on itself",
                {dep->target.range});
          auto first =
              std::find_if(dfs.begin(), dfs.end(), [&](const Frame &f) { return f.eq == dep; });
          for (auto it = first; it != dfs.end(); ++it) {
            const NameExpr *use = it->refs[it->next - 1];
            note(use->getLoc(), "'" + it->eq->target.name + "' uses '" + use->getName() + "' here",
                 {use->getRange()});
            mark[it->eq] = Failed;
          }
          top.failed = true;
        }
        continue;
      }
      const Equation *eq = top.eq;
      bool failedHere = top.failed || mark[eq] == Failed;
      dfs.pop_back();
      mark[eq] = failedHere ? Failed : Done;
      if (failedHere) {
        if (!dfs.empty())
          dfs.back().failed = true;
      } else {
        inst.order.push_back(eq);
      }
    }
  }

  // Shapes, in dependency order.
  for (const Equation *eq : inst.order) {
    auto shape = infer(inst, eq->value.get());
    if (!shape)
      continue;
    if (shape->isInt) {
      error(eq->value->getLoc(), "an integer input cannot be stored, updated or output",
            {eq->value->getRange()});
      continue;
    }
    if (eq->kind == Equation::StateUpdate) {
      const Symbol &sym = inst.symbols.find(eq->target.name)->second;
      if (*shape != sym.shape && !sym.shape.isInt) {
        error(eq->value->getLoc(),
              "state '" + eq->target.name + "' has shape " + sym.shape.str() +
                  " but its update has shape " + shape->str(),
              {eq->value->getRange()});
        note(sym.range.Start, "declared here", {sym.range});
      }
      continue;
    }
    Symbol &sym = inst.symbols.find(eq->target.name)->second;
    sym.shape = *shape;
    if (eq->kind == Equation::Output)
      inst.outputs.push_back({eq->target.name.str(), *shape});
  }
  if (inst.outputs.empty() && !failed) {
    bool declaresOutput =
        llvm::any_of(unit.step, [](const Equation &eq) { return eq.kind == Equation::Output; });
    if (!declaresOutput)
      error(unit.stepLoc, llvm::Twine(unit.isCell ? "cell '" : "network '") + unit.name.name +
                              "' has no outputs; add 'output name = ...' to its step block");
  }

  // Layers are called exactly once per step; unused names are warned about.
  for (auto &entry : inst.symbols) {
    Symbol &sym = entry.second;
    if (failed)
      break;
    if (sym.kind == SymbolKind::Layer && sym.layer && !sym.used)
      warning(sym.range.Start,
              "layer '" + entry.getKey() + "' is never called; its state never advances",
              {sym.range});
    if (sym.kind == SymbolKind::Local && !sym.used)
      warning(sym.range.Start, "local '" + entry.getKey() + "' is never used", {sym.range});
    if ((sym.kind == SymbolKind::Param || sym.kind == SymbolKind::Input ||
         sym.kind == SymbolKind::Linear || sym.kind == SymbolKind::Embedding) &&
        !sym.used)
      warning(sym.range.Start,
              llvm::Twine(symbolKindName(sym.kind)) + " '" + entry.getKey() +
                  "' is never used in the step block",
              {sym.range});
  }
}

std::optional<Shape> Checker::requireReal(Instance &inst, const Expr *expr,
                                          const llvm::Twine &context) {
  auto shape = infer(inst, expr);
  if (shape && shape->isInt) {
    error(expr->getLoc(),
          "an integer input cannot be used " + context + "; integers only index embeddings",
          {expr->getRange()});
    return std::nullopt;
  }
  return shape;
}

/// The value of a literal number, possibly negated; nullopt for anything else.
static std::optional<double> literalValue(const Expr *e) {
  if (const auto *num = llvm::dyn_cast<NumberExpr>(e))
    return num->getValue();
  if (const auto *un = llvm::dyn_cast<UnaryExpr>(e))
    if (auto v = literalValue(un->getOperand()))
      return -*v;
  return std::nullopt;
}

static std::optional<Shape> broadcast(const Shape &a, const Shape &b) {
  Shape out;
  size_t rank = std::max(a.rank(), b.rank());
  out.dims.resize(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.rank() ? 1 : a.dims[i - (rank - a.rank())];
    int64_t db = i < rank - b.rank() ? 1 : b.dims[i - (rank - b.rank())];
    if (da != db && da != 1 && db != 1)
      return std::nullopt;
    out.dims[i] = std::max(da, db);
  }
  return out;
}

std::optional<Shape> Checker::infer(Instance &inst, const Expr *expr) {
  std::optional<Shape> result;
  if (const auto *num = llvm::dyn_cast<NumberExpr>(expr)) {
    (void)num;
    result = Shape::scalar();
  } else if (const auto *name = llvm::dyn_cast<NameExpr>(expr)) {
    auto it = inst.symbols.find(name->getName());
    if (it == inst.symbols.end()) {
      if (findBuiltin(name->getName()))
        error(expr->getLoc(),
              "'" + name->getName() + "' is a built-in function; call it with arguments",
              {expr->getRange()});
      else {
        error(expr->getLoc(), "unknown name '" + name->getName() + "'", {expr->getRange()});
        suggest(name->getName(), expr->getRange(), &inst, false);
      }
      return std::nullopt;
    }
    Symbol &sym = it->second;
    sym.used = true;
    switch (sym.kind) {
    case SymbolKind::Dim:
    case SymbolKind::Const: result = Shape::scalar(); break;
    case SymbolKind::Input:
    case SymbolKind::State:
    case SymbolKind::Param:
    case SymbolKind::Local:
    case SymbolKind::Output:
      if (sym.varIndex < 0 && (sym.kind == SymbolKind::Input || sym.kind == SymbolKind::State ||
                               sym.kind == SymbolKind::Param))
        return std::nullopt; // its declaration had an error
      if ((sym.kind == SymbolKind::Local || sym.kind == SymbolKind::Output) &&
          !inst.exprShapes.count(sym.equation->value.get()))
        return std::nullopt; // its definition had an error
      result = sym.shape;
      break;
    case SymbolKind::Linear:
    case SymbolKind::Embedding:
      error(expr->getLoc(),
            llvm::Twine("'") + name->getName() + "' is a " + symbolKindName(sym.kind) +
                "; call it (" + name->getName() + "(x)) or use its parameters (" + name->getName() +
                ".weight)",
            {expr->getRange()});
      return std::nullopt;
    case SymbolKind::Layer:
      error(expr->getLoc(), "'" + name->getName() + "' is a layer; call it with its inputs",
            {expr->getRange()});
      return std::nullopt;
    }
  } else if (const auto *un = llvm::dyn_cast<UnaryExpr>(expr)) {
    result = requireReal(inst, un->getOperand(), "in arithmetic");
  } else if (const auto *bin = llvm::dyn_cast<BinaryExpr>(expr)) {
    auto l = requireReal(inst, bin->getLHS(), "in arithmetic");
    auto r = requireReal(inst, bin->getRHS(), "in arithmetic");
    if (!l || !r)
      return std::nullopt;
    llvm::SMRange ranges[] = {bin->getLHS()->getRange(), bin->getRHS()->getRange()};
    if (bin->getOp() == '@') {
      const Shape &a = *l, &b = *r;
      if (a.rank() == 0 || b.rank() == 0 || a.rank() > 2 || b.rank() > 2) {
        error(bin->getOpLoc(),
              "'@' multiplies matrices and vectors; got " + a.str() + " @ " + b.str() +
                  " (use '*' to scale by a scalar)",
              ranges);
        return std::nullopt;
      }
      int64_t ka = a.dims.back();
      int64_t kb = b.dims.front();
      if (ka != kb) {
        error(bin->getOpLoc(),
              "inner sizes of '@' do not match: " + a.str() + " @ " + b.str() + " (" +
                  llvm::Twine(ka) + " vs " + llvm::Twine(kb) +
                  "); weights are laid out W[post, pre]",
              ranges);
        return std::nullopt;
      }
      Shape out;
      if (a.rank() == 2)
        out.dims.push_back(a.dims[0]);
      if (b.rank() == 2)
        out.dims.push_back(b.dims[1]);
      result = out;
    } else {
      result = broadcast(*l, *r);
      if (!result) {
        error(bin->getOpLoc(),
              "shapes " + l->str() + " and " + r->str() + " cannot be broadcast together for '" +
                  llvm::Twine(bin->getOp()) + "'",
              ranges);
        return std::nullopt;
      }
    }
  } else if (const auto *call = llvm::dyn_cast<CallExpr>(expr)) {
    result = inferCall(inst, call, {}, {});
  } else if (const auto *mem = llvm::dyn_cast<MemberExpr>(expr)) {
    if (const auto *call = llvm::dyn_cast<CallExpr>(mem->getBase())) {
      result = inferCall(inst, call, mem->getMember(), mem->getMemberRange());
    } else if (const auto *base = llvm::dyn_cast<NameExpr>(mem->getBase())) {
      auto it = inst.symbols.find(base->getName());
      if (it == inst.symbols.end()) {
        error(base->getLoc(), "unknown name '" + base->getName() + "'", {base->getRange()});
        suggest(base->getName(), base->getRange(), &inst, false);
        return std::nullopt;
      }
      Symbol &sym = it->second;
      sym.used = true;
      llvm::StringRef m = mem->getMember();
      if (sym.kind == SymbolKind::Linear) {
        if (sym.outDim == 0)
          return std::nullopt;
        if (m == "weight") {
          Shape s;
          s.dims = {sym.outDim, sym.inDim};
          result = s;
        } else if (m == "bias" && sym.hasBias) {
          Shape s;
          s.dims = {sym.outDim};
          result = s;
        } else {
          error(mem->getMemberRange().Start,
                "linear layer '" + base->getName() + "' has no member '" + m +
                    "'; it has 'weight'" + (sym.hasBias ? " and 'bias'" : " (declared 'nobias')"),
                {mem->getMemberRange()});
          return std::nullopt;
        }
      } else if (sym.kind == SymbolKind::Embedding) {
        if (sym.outDim == 0)
          return std::nullopt;
        if (m != "weight") {
          error(mem->getMemberRange().Start,
                "embedding '" + base->getName() + "' has no member '" + m + "'; it has 'weight'",
                {mem->getMemberRange()});
          return std::nullopt;
        }
        Shape s;
        s.dims = {sym.inDim, sym.outDim};
        result = s;
      } else if (sym.kind == SymbolKind::Layer) {
        error(mem->getMemberRange().Start,
              "a layer's outputs are read from a call: " + base->getName() + "(...)." + m,
              {mem->getRange()});
        return std::nullopt;
      } else {
        error(mem->getLoc(),
              llvm::Twine("'.") + m + "' needs a linear layer, an embedding or a layer call; '" +
                  base->getName() + "' is a " + symbolKindName(sym.kind),
              {mem->getRange()});
        return std::nullopt;
      }
    } else {
      error(mem->getLoc(), "'.' needs a linear layer, an embedding or a layer call on its left",
            {mem->getBase()->getRange()});
      return std::nullopt;
    }
  } else if (const auto *idx = llvm::dyn_cast<IndexExpr>(expr)) {
    result = inferIndex(inst, idx);
  }
  if (result)
    inst.exprShapes[expr] = *result;
  return result;
}

std::optional<Shape> Checker::inferCall(Instance &inst, const CallExpr *call,
                                        llvm::StringRef member, llvm::SMRange memberRange) {
  const auto *callee = llvm::dyn_cast<NameExpr>(call->getCallee());
  if (!callee) {
    error(call->getCallee()->getLoc(),
          "only functions, linear layers, embeddings and layers can be called",
          {call->getCallee()->getRange()});
    return std::nullopt;
  }
  llvm::StringRef name = callee->getName();
  auto it = inst.symbols.find(name);
  if (it == inst.symbols.end()) {
    const BuiltinInfo *info = findBuiltin(name);
    if (!info) {
      error(callee->getLoc(), "unknown function '" + name + "'", {callee->getRange()});
      suggest(name, callee->getRange(), &inst, true);
      return std::nullopt;
    }
    if (!member.empty()) {
      error(memberRange.Start, "the result of '" + name + "' has no members", {memberRange});
      return std::nullopt;
    }
    return inferBuiltin(inst, call, *info);
  }
  Symbol &sym = it->second;
  sym.used = true;
  const auto &args = call->getArgs();
  if (sym.kind == SymbolKind::Linear || sym.kind == SymbolKind::Embedding) {
    if (!member.empty()) {
      error(memberRange.Start, "the result of '" + name + "(...)' has no members", {memberRange});
      return std::nullopt;
    }
    if (args.size() != 1) {
      error(call->getLoc(),
            llvm::Twine(symbolKindName(sym.kind)) + " '" + name + "' takes one argument, got " +
                llvm::Twine(args.size()),
            {call->getRange()});
      return std::nullopt;
    }
    auto arg = infer(inst, args[0].get());
    if (!arg || sym.outDim == 0)
      return std::nullopt;
    if (sym.kind == SymbolKind::Embedding) {
      if (!arg->isInt) {
        error(args[0]->getLoc(),
              "embedding '" + name + "' is indexed by an integer input, got " + arg->str(),
              {args[0]->getRange()});
        return std::nullopt;
      }
      Shape out;
      out.dims = {sym.outDim};
      return out;
    }
    if (arg->isInt || arg->rank() != 1 || arg->dims[0] != sym.inDim) {
      error(args[0]->getLoc(),
            "linear layer '" + name + "' maps [" + llvm::Twine(sym.inDim) + "] to [" +
                llvm::Twine(sym.outDim) + "], got an argument of shape " + arg->str(),
            {args[0]->getRange()});
      note(sym.range.Start, "declared here", {sym.range});
      return std::nullopt;
    }
    Shape out;
    out.dims = {sym.outDim};
    return out;
  }
  if (sym.kind == SymbolKind::Layer) {
    if (sym.layer == nullptr)
      return std::nullopt; // the layer itself had errors
    if (sym.firstCall) {
      error(call->getLoc(),
            "layer '" + name + "' is called twice in one step; each call advances its state",
            {call->getRange()});
      note(sym.firstCall->getLoc(), "first called here", {sym.firstCall->getRange()});
      return std::nullopt;
    }
    sym.firstCall = call;
    const Instance &cell = *sym.layer;
    if (args.size() != cell.inputs.size()) {
      error(call->getLoc(),
            "layer '" + name + "' takes " + llvm::Twine(cell.inputs.size()) + " input" +
                (cell.inputs.size() == 1 ? "" : "s") + ", got " + llvm::Twine(args.size()),
            {call->getRange()});
      return std::nullopt;
    }
    bool ok = true;
    for (size_t i = 0; i < args.size(); ++i) {
      auto arg = infer(inst, args[i].get());
      if (!arg) {
        ok = false;
        continue;
      }
      if (*arg != cell.inputs[i].shape) {
        llvm::StringRef inputName =
            llvm::StringRef(cell.inputs[i].name).drop_front(cell.prefix.size());
        error(args[i]->getLoc(),
              "input '" + inputName + "' of layer '" + name + "' has shape " +
                  cell.inputs[i].shape.str() + ", got " + arg->str(),
              {args[i]->getRange()});
        ok = false;
      }
    }
    if (!ok)
      return std::nullopt;
    if (member.empty()) {
      if (cell.outputs.size() == 1)
        return cell.outputs.front().second;
      std::string names;
      for (const auto &[n, s] : cell.outputs)
        names += (names.empty() ? "'" : ", '") + n + "'";
      error(call->getLoc(),
            "layer '" + name + "' has " + llvm::Twine(cell.outputs.size()) +
                " outputs; pick one with " + name + "(...).name (" + names + ")",
            {call->getRange()});
      return std::nullopt;
    }
    for (const auto &[n, s] : cell.outputs)
      if (n == member)
        return s;
    error(memberRange.Start, "layer '" + name + "' has no output named '" + member + "'",
          {memberRange});
    return std::nullopt;
  }
  error(callee->getLoc(),
        llvm::Twine("'") + name + "' is a " + symbolKindName(sym.kind) + " and cannot be called",
        {callee->getRange()});
  note(sym.range.Start, "declared here", {sym.range});
  return std::nullopt;
}

std::optional<Shape> Checker::inferBuiltin(Instance &inst, const CallExpr *call,
                                           const BuiltinInfo &info) {
  const auto &args = call->getArgs();
  if (args.size() < info.minArgs || args.size() > info.maxArgs) {
    std::string want = info.minArgs == info.maxArgs
                           ? std::to_string(info.minArgs)
                           : std::to_string(info.minArgs) + " to " + std::to_string(info.maxArgs);
    error(call->getLoc(),
          llvm::Twine("'") + info.name + "' takes " + want + " argument" +
              (info.maxArgs == 1 ? "" : "s") + ", got " + llvm::Twine(args.size()),
          {call->getRange()});
    return std::nullopt;
  }
  // `sum(x, axis)` and `mean(x, axis)`: the axis is an integer literal, not a tensor.
  size_t tensorArgs = args.size();
  if ((info.id == Builtin::Sum || info.id == Builtin::Mean) && args.size() == 2)
    tensorArgs = 1;
  llvm::SmallVector<Shape, 4> shapes;
  for (size_t i = 0; i < tensorArgs; ++i) {
    auto s = requireReal(inst, args[i].get(), llvm::Twine("as an argument of '") + info.name + "'");
    if (!s)
      return std::nullopt;
    shapes.push_back(*s);
  }
  auto rankError = [&](size_t i, const char *what) {
    error(args[i]->getLoc(),
          llvm::Twine("'") + info.name + "' needs " + what + ", got " + shapes[i].str(),
          {args[i]->getRange()});
    return std::nullopt;
  };
  switch (info.id) {
  case Builtin::Tanh:
  case Builtin::Sigmoid:
  case Builtin::Relu:
  case Builtin::Exp:
  case Builtin::Log:
  case Builtin::Abs:
  case Builtin::Sqrt:
  case Builtin::Detach: return shapes[0];
  case Builtin::Softmax:
  case Builtin::LogSoftmax:
    if (shapes[0].rank() != 1)
      return rankError(0, "a vector");
    return shapes[0];
  case Builtin::Clip:
    for (size_t i = 1; i < 3; ++i)
      if (shapes[i].rank() != 0)
        return rankError(i, "scalar bounds");
    if (auto lo = literalValue(args[1].get()))
      if (auto hi = literalValue(args[2].get()))
        if (*lo > *hi) {
          error(args[1]->getLoc(), "clip bounds are reversed: the lower bound is above the upper",
                {args[1]->getRange(), args[2]->getRange()});
          return std::nullopt;
        }
    return shapes[0];
  case Builtin::Min:
  case Builtin::Max: {
    auto s = broadcast(shapes[0], shapes[1]);
    if (!s) {
      error(call->getLoc(),
            "shapes " + shapes[0].str() + " and " + shapes[1].str() +
                " cannot be broadcast together",
            {args[0]->getRange(), args[1]->getRange()});
      return std::nullopt;
    }
    return s;
  }
  case Builtin::Outer:
    for (size_t i = 0; i < 2; ++i)
      if (shapes[i].rank() != 1)
        return rankError(i, "vectors");
    {
      Shape out;
      out.dims = {shapes[0].dims[0], shapes[1].dims[0]};
      return out;
    }
  case Builtin::Sum:
  case Builtin::Mean: {
    if (args.size() == 1)
      return Shape::scalar();
    const auto *axis = llvm::dyn_cast<NumberExpr>(args[1].get());
    if (!axis || !axis->isInteger() || axis->getIntValue() < 0 ||
        axis->getIntValue() >= int64_t(shapes[0].rank())) {
      error(args[1]->getLoc(),
            llvm::Twine("the axis of '") + info.name + "' must be an integer from 0 to " +
                llvm::Twine(int64_t(shapes[0].rank()) - 1) + " for a tensor of shape " +
                shapes[0].str(),
            {args[1]->getRange()});
      return std::nullopt;
    }
    Shape out = shapes[0];
    out.dims.erase(out.dims.begin() + axis->getIntValue());
    return out;
  }
  case Builtin::Transpose:
    if (shapes[0].rank() != 2)
      return rankError(0, "a matrix");
    {
      Shape out;
      out.dims = {shapes[0].dims[1], shapes[0].dims[0]};
      return out;
    }
  case Builtin::Concat: {
    Shape out;
    int64_t total = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
      if (shapes[i].rank() != 1)
        return rankError(i, "vectors");
      total += shapes[i].dims[0];
    }
    if (total > maxDim) {
      error(call->getLoc(), "concatenation is too long", {call->getRange()});
      return std::nullopt;
    }
    out.dims = {total};
    return out;
  }
  case Builtin::Col:
  case Builtin::Row:
    if (shapes[0].rank() != 1)
      return rankError(0, "a vector");
    {
      Shape out;
      out.dims = info.id == Builtin::Col ? llvm::SmallVector<int64_t, 2>{shapes[0].dims[0], 1}
                                         : llvm::SmallVector<int64_t, 2>{1, shapes[0].dims[0]};
      return out;
    }
  case Builtin::None: break;
  }
  return std::nullopt;
}

std::optional<Shape> Checker::inferIndex(Instance &inst, const IndexExpr *index) {
  auto base = requireReal(inst, index->getBase(), "with an index");
  if (!base)
    return std::nullopt;
  const auto &slices = index->getSlices();
  if (slices.size() != base->rank()) {
    error(index->getLoc(),
          "a value of shape " + base->str() + " needs " + llvm::Twine(base->rank()) + " index" +
              (base->rank() == 1 ? "" : "es") + ", got " + llvm::Twine(slices.size()),
          {index->getRange()});
    return std::nullopt;
  }
  Shape out;
  for (size_t axis = 0; axis < slices.size(); ++axis) {
    const Slice &s = slices[axis];
    int64_t size = base->dims[axis];
    std::optional<int64_t> lo = s.lo ? evalDim(inst, s.lo.get()) : std::optional<int64_t>(0);
    if (!lo)
      return std::nullopt;
    if (!s.isRange) {
      if (*lo < 0 || *lo >= size) {
        error(s.range.Start,
              "index " + llvm::Twine(*lo) + " is out of bounds for axis " + llvm::Twine(axis) +
                  " of size " + llvm::Twine(size),
              {s.range});
        return std::nullopt;
      }
      continue;
    }
    std::optional<int64_t> hi = s.hi ? evalDim(inst, s.hi.get()) : std::optional<int64_t>(size);
    if (!hi)
      return std::nullopt;
    if (*lo < 0 || *hi > size || *lo >= *hi) {
      error(s.range.Start,
            "slice " + llvm::Twine(*lo) + ":" + llvm::Twine(*hi) +
                " is empty or out of bounds for axis " + llvm::Twine(axis) + " of size " +
                llvm::Twine(size),
            {s.range});
      return std::nullopt;
    }
    out.dims.push_back(*hi - *lo);
  }
  return out;
}

} // namespace

std::unique_ptr<Program> dopa::sema::check(llvm::ArrayRef<const File *> files,
                                           DiagnosticEngine &diags, const DimOverrides *overrides) {
  return Checker(diags, overrides).run(files);
}

//===----------------------------------------------------------------------===//
// Summary
//===----------------------------------------------------------------------===//

void dopa::sema::printSummary(const Program &program, llvm::raw_ostream &os) {
  for (const auto &net : program.networks) {
    const Instance &root = *net->root;
    os << "network " << net->name << "\n";
    os << "  dims:";
    for (const auto &[n, v] : root.dimValues)
      os << " " << n << "=" << v;
    os << "\n";
    for (const Variable &in : root.inputs)
      os << "  input  " << in.name << " : " << in.shape.str() << "\n";
    for (const auto &[n, s] : root.outputs)
      os << "  output " << n << " : " << s.str() << "\n";
    int64_t stateFloats = 0;
    for (const Variable *st : net->states) {
      os << "  state  " << st->name << " : " << st->shape.str() << " " << st->init.str() << "\n";
      stateFloats += st->shape.numElements();
    }
    for (const Variable *p : net->params)
      os << "  param  " << p->name << " : " << p->shape.str() << " " << p->init.str() << "\n";
    os << "  parameters: " << net->numParams() << " in " << net->params.size() << " tensors\n";
    os << "  state per batch element: " << stateFloats << " floats\n";
  }
}
