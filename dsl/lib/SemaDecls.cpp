//===- SemaDecls.cpp - Semantic checks of declarations --------------------===//
//
// The first three phases of checking a unit instance: declarations (every member's name in the
// instance's scope, duplicates), constants (dims and consts evaluated once each, with cycle
// detection and overflow checks) and variables (shapes and initializers of inputs, states and
// params; linear layers, embeddings and cell layers, which instantiate their cell).
//
//===----------------------------------------------------------------------===//
#include "SemaImpl.h"

#include "llvm/ADT/STLExtras.h"

#include <cmath>
#include <limits>

using namespace dopa;
using namespace dopa::ast;
using namespace dopa::sema;

namespace dopa::sema::detail {

static constexpr const char *distributions[] = {"uniform", "normal", "fan_in_uniform"};

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
                        : m->getKind() == Member::Member_Mask  ? SymbolKind::Mask
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
    // The stack holds each name with the place it was reached from; the cycle starts at this
    // name, whose own entry was reached from outside the cycle, and closes at `use`.
    bool inCycle = false;
    for (auto &[n, r] : evalStack) {
      if (n == name) {
        inCycle = true;
      } else if (inCycle) {
        note(r.Start, "'" + n + "' is used here", {r});
      }
      if (inCycle)
        evalState[n] = EvalState::Failed;
    }
    note(use.Start, "'" + name + "' is used here", {use});
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
          if (*v < 1 || *v > maxDim) { // the command line's value: not the spec's fault
            diags.errorNoLoc("-D " + name + "=" + llvm::Twine(*v) +
                             ": dimensions must be between 1 and " + llvm::Twine(maxDim));
            return std::nullopt;
          }
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
      suggest(name->getName(), expr->getRange(), &inst, false, {SymbolKind::Dim});
      return std::nullopt;
    }
    it->second.used = true;
    if (it->second.kind != SymbolKind::Dim) {
      error(expr->getLoc(),
            "'" + name->getName() + "' is " + symbolKindWithArticle(it->second.kind) +
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
    if (*v == std::numeric_limits<int64_t>::min()) {
      error(expr->getLoc(), "dimension arithmetic overflows 64 bits", {expr->getRange()});
      return std::nullopt;
    }
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
      if (*r == 0) {
        error(bin->getOpLoc(), "dimension division by zero", {expr->getRange()});
        return std::nullopt;
      }
      if (*r == -1) { // INT64_MIN / -1 overflows, and % would trap
        overflow = __builtin_sub_overflow(int64_t(0), *l, &out);
        break;
      }
      if (*l % *r != 0) {
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
      suggest(name->getName(), expr->getRange(), &inst, false,
              {SymbolKind::Dim, SymbolKind::Const});
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
          "'" + name->getName() + "' is " + symbolKindWithArticle(it->second.kind) +
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
    if (const auto *var = llvm::dyn_cast<VarDecl>(m))
      checkVarDecl(inst, *var);
    else if (const auto *lin = llvm::dyn_cast<LinearDecl>(m))
      checkLinearDecl(inst, *lin);
    else if (const auto *emb = llvm::dyn_cast<EmbeddingDecl>(m))
      checkEmbeddingDecl(inst, *emb);
    else if (const auto *layer = llvm::dyn_cast<LayerDecl>(m))
      checkLayerDecl(inst, *layer);
  }
}

void Checker::checkVarDecl(Instance &inst, const VarDecl &var) {
  auto shape = evalShape(inst, var.type);
  VarKind kind = var.getKind() == Member::Member_Input   ? VarKind::Input
                 : var.getKind() == Member::Member_State ? VarKind::State
                 : var.getKind() == Member::Member_Mask  ? VarKind::Mask
                                                         : VarKind::Param;
  const char *kindName = kind == VarKind::Input   ? "an input"
                         : kind == VarKind::State ? "a state"
                         : kind == VarKind::Mask  ? "a mask"
                                                  : "a param";
  if (var.shared && kind != VarKind::Mask)
    error(var.shared->Start,
          llvm::Twine("'shared' applies to masks only; ") + kindName +
              " is per batch element or shared by its kind",
          {*var.shared});
  if (shape && shape->isInt && kind != VarKind::Input) {
    error(var.type.range.Start,
          llvm::Twine("only inputs can be integers ('int'); ") + kindName + " is real-valued",
          {var.type.range});
    shape = std::nullopt;
  }
  std::optional<Init> init = Init{};
  double dropout = 0;
  if (kind == VarKind::Mask) {
    auto rate = evalDropout(inst, var);
    init = Init{Init::Constant, 1, 0};
    if (rate)
      dropout = *rate;
    else
      init = std::nullopt;
  } else if (kind == VarKind::Input && var.init) {
    error(var.init->range.Start, "an input has no initializer; its values come from the data",
          {var.init->range});
    init = std::nullopt;
  } else if (kind == VarKind::Param && !var.init) {
    error(var.names.front().getLoc(),
          "param '" + var.names.front().name +
              "' needs an initializer: '= value' or '~ uniform(low, high)' and the like",
          {var.names.front().range});
    init = std::nullopt;
  } else if (var.init) {
    init = evalInit(inst, *var.init, kind == VarKind::Param,
                    kind == VarKind::State ? "a state" : "a param");
  }
  for (const Ident &name : var.names) {
    Symbol &sym = inst.symbols[name.name];
    if (sym.decl != &var)
      continue; // a duplicate, already reported
    if (!shape || !init)
      continue;
    sym.shape = *shape;
    Variable v{kind, inst.prefix + name.name.str(), *shape, *init, name.range};
    v.dropout = dropout;
    v.shared = var.shared.has_value();
    auto &list = kind == VarKind::Input   ? inst.inputs
                 : kind == VarKind::State ? inst.states
                 : kind == VarKind::Mask  ? inst.masks
                                          : inst.params;
    sym.varIndex = int(list.size());
    list.push_back(v);
  }
}

/// A mask's initializer: `~ dropout(p)` with a constant 0 <= p < 1. Its values are drawn by the
/// runtime; the Init of the variable stays the constant 1 (dropout off: evaluation).
std::optional<double> Checker::evalDropout(Instance &inst, const VarDecl &var) {
  llvm::SMLoc at = var.init ? var.init->range.Start : var.names.front().getLoc();
  const auto *call = var.init && var.init->isDistribution
                         ? llvm::dyn_cast<CallExpr>(var.init->value.get())
                         : nullptr;
  const auto *callee = call ? llvm::dyn_cast<NameExpr>(call->getCallee()) : nullptr;
  if (!callee || callee->getName() != "dropout" || call->getArgs().size() != 1) {
    llvm::SMRange range = var.init ? var.init->range : var.names.front().range;
    error(at,
          "mask '" + var.names.front().name +
              "' needs its distribution: '~ dropout(p)', p the probability of a zero",
          {range});
    return std::nullopt;
  }
  auto p = evalConst(inst, call->getArgs().front().get());
  if (!p)
    return std::nullopt;
  if (!(*p >= 0 && *p < 1)) {
    error(call->getArgs().front()->getLoc(),
          "dropout(" + fmtNum(*p) + ") is out of range: the probability of a zero is in [0, 1)",
          {call->getArgs().front()->getRange()});
    return std::nullopt;
  }
  return p;
}

bool Checker::checkLayerSizes(const Ident &name, const char *what, const char *elements, int64_t a,
                              const Expr *aExpr, int64_t b, const Expr *bExpr) {
  bool ok = true;
  for (auto [v, e] : {std::pair{a, aExpr}, std::pair{b, bExpr}})
    if (v < 1 || v > maxDim) {
      error(e->getLoc(),
            "size " + llvm::Twine(v) + " is out of range; sizes must be between 1 and " +
                llvm::Twine(maxDim),
            {e->getRange()});
      ok = false;
    }
  if (ok && a * b > maxElements) {
    error(name.getLoc(),
          llvm::Twine(what) + " '" + name.name + "' is too large: " + llvm::Twine(a) + " x " +
              llvm::Twine(b) + " " + elements + " are more than 2^31",
          {name.range});
    ok = false;
  }
  return ok;
}

void Checker::checkLinearDecl(Instance &inst, const LinearDecl &lin) {
  auto in = evalDim(inst, lin.inDim.get());
  auto out = evalDim(inst, lin.outDim.get());
  if (!in || !out)
    return;
  if (!checkLayerSizes(lin.name, "linear layer", "weights", *in, lin.inDim.get(), *out,
                       lin.outDim.get()))
    return;
  // PyTorch nn.Linear default: weight and bias ~ U(-1/sqrt(in), 1/sqrt(in)).
  double bound = 1.0 / std::sqrt(double(*in));
  Init weightInit{Init::Uniform, -bound, bound};
  if (lin.init) {
    auto init = evalInit(inst, *lin.init, true, "a linear layer");
    if (!init)
      return;
    weightInit = *init;
  }
  Symbol &sym = inst.symbols[lin.name.name];
  if (sym.decl != &lin)
    return;
  sym.inDim = *in;
  sym.outDim = *out;
  sym.hasBias = lin.hasBias;
  Shape w;
  w.dims = {*out, *in};
  inst.params.push_back({VarKind::Param, inst.prefix + lin.name.name.str() + ".weight", w,
                         weightInit, lin.name.range});
  if (lin.hasBias) {
    Shape b;
    b.dims = {*out};
    inst.params.push_back({VarKind::Param, inst.prefix + lin.name.name.str() + ".bias", b,
                           Init{Init::Uniform, -bound, bound}, lin.name.range});
  }
}

void Checker::checkEmbeddingDecl(Instance &inst, const EmbeddingDecl &emb) {
  auto count = evalDim(inst, emb.count.get());
  auto width = evalDim(inst, emb.width.get());
  if (!count || !width)
    return;
  if (!checkLayerSizes(emb.name, "embedding", "entries", *count, emb.count.get(), *width,
                       emb.width.get()))
    return;
  Init init{Init::Normal, 0, 1}; // PyTorch nn.Embedding default
  if (emb.init) {
    auto i = evalInit(inst, *emb.init, true, "an embedding");
    if (!i)
      return;
    init = *i;
  }
  Symbol &sym = inst.symbols[emb.name.name];
  if (sym.decl != &emb)
    return;
  sym.inDim = *count;
  sym.outDim = *width;
  Shape w;
  w.dims = {*count, *width};
  inst.params.push_back(
      {VarKind::Param, inst.prefix + emb.name.name.str() + ".weight", w, init, emb.name.range});
}

void Checker::checkLayerDecl(Instance &inst, const LayerDecl &layer) {
  const Unit *cell = units.lookup(layer.cell.name);
  if (cell)
    usedUnits.insert(cell);
  if (!cell) {
    error(layer.cell.getLoc(), "unknown cell '" + layer.cell.name + "'", {layer.cell.range});
    suggestCell(layer.cell);
    return;
  }
  if (!cell->isCell) {
    error(layer.cell.getLoc(),
          "'" + layer.cell.name + "' is a network; only cells can be used as layers",
          {layer.cell.range});
    note(cell->name.getLoc(), "'" + cell->name.name + "' is declared here");
    return;
  }
  if (layer.dimArgs.size() != cell->dimParams.size()) {
    error(layer.cell.getLoc(),
          "cell '" + cell->name.name + "' takes " + llvm::Twine(cell->dimParams.size()) +
              " dimension argument" + (cell->dimParams.size() == 1 ? "" : "s") + ", got " +
              llvm::Twine(layer.dimArgs.size()),
          {layer.getRange()});
    note(cell->name.getLoc(), "'" + cell->name.name + "' is declared here");
    return;
  }
  llvm::SmallVector<int64_t, 4> args;
  bool ok = true;
  for (const auto &arg : layer.dimArgs) {
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
    return;
  // The child's evaluation state must not clobber ours.
  auto savedState = std::move(evalState);
  auto savedDefs = std::move(pendingDefs);
  llvm::SMRange layerRange(layer.name.range.Start, layer.cell.range.End);
  auto child = instantiate(*cell, args, inst.prefix + layer.name.name.str() + ".", layerRange);
  evalState = std::move(savedState);
  pendingDefs = std::move(savedDefs);
  Symbol &sym = inst.symbols[layer.name.name];
  if (child && sym.decl == &layer) {
    sym.layer = child.get();
    inst.layers.push_back(std::move(child));
  }
}

} // namespace dopa::sema::detail
