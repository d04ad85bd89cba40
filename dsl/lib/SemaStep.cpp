//===- SemaStep.cpp - Semantic checks of step equations -------------------===//
//
// The fourth phase of checking a unit instance: its step block. Each step of checkStep() is one
// function: declare the locals and outputs and check the state updates, check that every state is
// updated, order the equations by their dependencies (reporting cycles), infer their shapes in
// that order (SemaExpr.cpp), require an output, and warn about what is never used.
//
//===----------------------------------------------------------------------===//
#include "SemaImpl.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/STLExtras.h"

#include <algorithm>

using namespace dopa;
using namespace dopa::ast;
using namespace dopa::sema;

namespace dopa::sema::detail {

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
  StepUpdates step = declareStepTargets(inst);
  checkStatesUpdated(inst, step);
  orderEquations(inst, step);
  inferEquationShapes(inst);
  checkHasOutputs(inst);
  warnUnused(inst);
}

StepUpdates Checker::declareStepTargets(Instance &inst) {
  StepUpdates step;
  for (const Equation &eq : inst.unit->step) {
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
              "'" + eq.target.name + "' is " + symbolKindWithArticle(it->second.kind) +
                  "; only states can be updated with " + eq.target.name + "'",
              {eq.target.range});
        note(it->second.range.Start, "declared here", {it->second.range});
        continue;
      }
      auto [prev, inserted] = step.updates.try_emplace(eq.target.name, &eq);
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
        step.misassigned.insert(eq.target.name);
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
  return step;
}

void Checker::checkStatesUpdated(Instance &inst, const StepUpdates &step) {
  for (const Variable &state : inst.states) {
    llvm::StringRef local = llvm::StringRef(state.name).drop_front(inst.prefix.size());
    if (!step.updates.count(local) && !step.misassigned.count(local)) {
      error(state.range.Start, "state '" + local + "' is never updated in the step block",
            {state.range});
      note(inst.unit->stepLoc, "add '" + local + "' = " + local +
                                   "' to keep it unchanged, or an equation for its next value");
    }
  }
}

void Checker::orderEquations(Instance &inst, const StepUpdates &step) {
  std::vector<const Equation *> eqs;
  for (const Equation &eq : inst.unit->step) {
    if (eq.kind == Equation::StateUpdate) {
      if (step.updates.lookup(eq.target.name) == &eq)
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
}

void Checker::inferEquationShapes(Instance &inst) {
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
      if (sym.varIndex < 0)
        continue; // its declaration had an error, reported there
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
}

void Checker::checkHasOutputs(Instance &inst) {
  const Unit &unit = *inst.unit;
  if (inst.outputs.empty() && !failed) {
    bool declaresOutput =
        llvm::any_of(unit.step, [](const Equation &eq) { return eq.kind == Equation::Output; });
    if (!declaresOutput)
      error(unit.stepLoc, llvm::Twine(unit.isCell ? "cell '" : "network '") + unit.name.name +
                              "' has no outputs; add 'output name = ...' to its step block");
  }
}

void Checker::warnUnused(Instance &inst) {
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
         sym.kind == SymbolKind::Mask || sym.kind == SymbolKind::Linear ||
         sym.kind == SymbolKind::Embedding) &&
        !sym.used)
      warning(sym.range.Start,
              llvm::Twine(symbolKindName(sym.kind)) + " '" + entry.getKey() +
                  "' is never used in the step block",
              {sym.range});
    if (sym.kind == SymbolKind::Linear && sym.used && sym.hasBias && !sym.biasUsed)
      warning(sym.range.Start,
              "the bias of linear layer '" + entry.getKey() + "' is never used (the step reads '" +
                  entry.getKey() + ".weight' only); declare the layer 'nobias'",
              {sym.range});
  }
}

} // namespace dopa::sema::detail
