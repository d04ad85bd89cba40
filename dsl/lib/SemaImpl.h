//===- SemaImpl.h - Private declarations shared by the Sema files ---------===//
//
// The Checker class and the tables it shares across the translation units of semantic analysis:
// Sema.cpp (the driver: units, networks, instantiation, reporting), SemaDecls.cpp (declarations,
// dims and consts, variables and layers), SemaStep.cpp (the step block: equations, their order,
// state completeness) and SemaExpr.cpp (shape inference of expressions). Not a public header.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/dsl/Sema.h"

#include "llvm/ADT/StringSet.h"

#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace dopa::sema::detail {

/// A symbol of the given kind with everything else defaulted.
inline Symbol makeSymbol(SymbolKind kind) {
  Symbol sym;
  sym.kind = kind;
  return sym;
}

/// Largest size of one dimension, and of one tensor per batch element.
inline constexpr int64_t maxDim = int64_t(1) << 24;
inline constexpr int64_t maxElements = int64_t(1) << 31;
/// Most cell instances in one network. Each layer instantiates its cell, and the cell's layers
/// their cells: nested layers multiply (two per level over 30 levels are about 2^31 instances).
inline constexpr int64_t maxCellInstances = 4096;

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

inline constexpr BuiltinInfo builtins[] = {
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

/// The built-in function called `name`, or null.
inline const BuiltinInfo *findBuiltin(llvm::StringRef name) {
  for (const BuiltinInfo &b : builtins)
    if (name == b.name)
      return &b;
  return nullptr;
}

/// A number as printf's %g writes it (initializers in messages and summaries).
std::string fmtNum(double v);

/// A frame of the instantiation stack: which layer of which unit is being checked.
struct InstFrame {
  const ast::Unit *unit;
  llvm::SMRange layerRange; // empty for the network itself
  std::string description;
};

/// What the first pass over a step block records about state updates.
struct StepUpdates {
  llvm::StringMap<const ast::Equation *> updates; // each state's (first) update
  llvm::StringSet<> misassigned; // states assigned without a prime: already reported
};

class Checker {
public:
  Checker(DiagnosticEngine &diags, const DimOverrides *overrides)
      : diags(diags), overrides(overrides) {}

  std::unique_ptr<Program> run(llvm::ArrayRef<const ast::File *> files);

private:
  // Reporting (Sema.cpp).
  void error(llvm::SMLoc loc, const llvm::Twine &msg, llvm::ArrayRef<llvm::SMRange> ranges = {},
             llvm::ArrayRef<llvm::SMFixIt> fixIts = {});
  void note(llvm::SMLoc loc, const llvm::Twine &msg, llvm::ArrayRef<llvm::SMRange> ranges = {});
  void warning(llvm::SMLoc loc, const llvm::Twine &msg, llvm::ArrayRef<llvm::SMRange> ranges = {});
  /// After an error about the unknown `name`: suggest a symbol of `inst` (and, with `functions`, a
  /// built-in function) with a similar name.
  void suggest(llvm::StringRef name, llvm::SMRange range, const Instance *inst, bool functions,
               llvm::ArrayRef<SymbolKind> kinds = {});
  /// After an error about the unknown cell `cell`: suggest a cell with a similar name.
  void suggestCell(const ast::Ident &cell);
  /// Whether one more "did you mean" search may run: at most kMaxSuggestions per run (as Clang
  /// bounds its typo corrections), so that thousands of unknown names cost linear time even with
  /// --error-limit=0.
  bool takeSuggestion() {
    if (suggestionsLeft == 0)
      return false;
    --suggestionsLeft;
    return true;
  }
  static constexpr int kMaxSuggestions = 100;
  int suggestionsLeft = kMaxSuggestions;

  // Instances (Sema.cpp).
  std::unique_ptr<Instance> instantiate(const ast::Unit &unit, llvm::ArrayRef<int64_t> dimArgs,
                                        std::string prefix, llvm::SMRange layerRange);
  /// Count one more cell instance of the network being checked; false (reported once, at the
  /// network's layer that leads to it) past maxCellInstances, and from then on.
  bool countCellInstance(llvm::SMRange layerRange);

  // Phase 1, declarations (SemaDecls.cpp).
  void declare(Instance &inst, const ast::Ident &name, Symbol sym);
  void declareMembers(Instance &inst, llvm::ArrayRef<int64_t> dimArgs);

  // Phase 2, constant evaluation (SemaDecls.cpp).
  void evalConstants(Instance &inst);
  std::optional<int64_t> evalDim(Instance &inst, const ast::Expr *expr);
  std::optional<double> evalConst(Instance &inst, const ast::Expr *expr);
  std::optional<int64_t> resolveDimSymbol(Instance &inst, llvm::StringRef name, llvm::SMRange use);
  std::optional<double> resolveConstSymbol(Instance &inst, llvm::StringRef name, llvm::SMRange use);
  /// Evaluate a dim or const once, with cycle detection; `slot` caches the value in its Symbol.
  template <class V, class Compute>
  std::optional<V> resolveSymbol(Instance &inst, llvm::StringRef name, llvm::SMRange use,
                                 const char *what, V Symbol::*slot, Compute compute);

  // Phase 3, variables and layers (SemaDecls.cpp).
  std::optional<Shape> evalShape(Instance &inst, const ast::TypeSpec &type);
  Symbol *intInputIndex(Instance &inst, const ast::Slice &s);
  std::optional<double> evalDropout(Instance &inst, const ast::VarDecl &var);
  std::optional<Init> evalInit(Instance &inst, const ast::InitSpec &init, bool allowDistribution,
                               llvm::StringRef what);
  void checkVariables(Instance &inst);
  /// An input, state or param declaration: shape, initializer, one Variable per name.
  void checkVarDecl(Instance &inst, const ast::VarDecl &var);
  /// A linear layer: its sizes, initializer, weight and bias params.
  /// The two sizes of a linear layer or embedding in range, and their product within 2^31.
  bool checkLayerSizes(const ast::Ident &name, const char *what, const char *elements, int64_t a,
                       const ast::Expr *aExpr, int64_t b, const ast::Expr *bExpr);
  void checkLinearDecl(Instance &inst, const ast::LinearDecl &lin);
  /// An embedding: its sizes, initializer and weight param.
  void checkEmbeddingDecl(Instance &inst, const ast::EmbeddingDecl &emb);
  /// A cell layer: the cell, its dimension arguments, and the instantiation itself.
  void checkLayerDecl(Instance &inst, const ast::LayerDecl &layer);

  // Phase 4, the step block (SemaStep.cpp).
  void checkStep(Instance &inst);
  /// Declare the step's locals and outputs; record and check its state updates.
  StepUpdates declareStepTargets(Instance &inst);
  /// Every state is updated exactly once.
  void checkStatesUpdated(Instance &inst, const StepUpdates &step);
  /// Order the equations by their dependencies (locals and outputs) into inst.order; report
  /// cycles.
  void orderEquations(Instance &inst, const StepUpdates &step);
  /// Infer the shape of every equation, in dependency order, and check state updates against
  /// their states.
  void inferEquationShapes(Instance &inst);
  /// A unit must declare at least one output.
  void checkHasOutputs(Instance &inst);
  /// Warn about layers never called and about locals, params, inputs, linear layers and
  /// embeddings never used.
  void warnUnused(Instance &inst);
  void collectRefs(const Instance &inst, const ast::Expr *expr,
                   llvm::SmallVectorImpl<const ast::NameExpr *> &out);

  // Shape inference (SemaExpr.cpp).
  std::optional<Shape> infer(Instance &inst, const ast::Expr *expr);
  /// A name used as a value.
  std::optional<Shape> inferName(Instance &inst, const ast::NameExpr *name);
  /// Arithmetic with broadcasting, and '@'.
  std::optional<Shape> inferBinary(Instance &inst, const ast::BinaryExpr *bin);
  /// `lin.weight`, `emb.weight`, `layer(...).output`.
  std::optional<Shape> inferMember(Instance &inst, const ast::MemberExpr *mem);
  std::optional<Shape> inferCall(Instance &inst, const ast::CallExpr *call, llvm::StringRef member,
                                 llvm::SMRange memberRange);
  /// A call of the linear layer or embedding `sym`, named `name`.
  /// Infer every argument of a call already found wrong, so errors inside them are reported too.
  void inferForErrors(Instance &inst, const ast::CallExpr *call);
  std::optional<Shape> inferLinearCall(Instance &inst, const ast::CallExpr *call, const Symbol &sym,
                                       llvm::StringRef name);
  /// A call of the cell layer `sym`, named `name`, optionally picking the output `member`.
  std::optional<Shape> inferLayerCall(Instance &inst, const ast::CallExpr *call, Symbol &sym,
                                      llvm::StringRef name, llvm::StringRef member,
                                      llvm::SMRange memberRange);
  std::optional<Shape> inferBuiltin(Instance &inst, const ast::CallExpr *call,
                                    const BuiltinInfo &info);
  /// The argument count of a built-in call, and the shapes of its tensor arguments.
  std::optional<llvm::SmallVector<Shape, 4>>
  inferBuiltinArgs(Instance &inst, const ast::CallExpr *call, const BuiltinInfo &info);
  std::optional<Shape> inferIndex(Instance &inst, const ast::IndexExpr *index);
  std::optional<Shape> requireReal(Instance &inst, const ast::Expr *expr,
                                   const llvm::Twine &context);

  DiagnosticEngine &diags;
  const DimOverrides *overrides;
  llvm::StringSet<> overridesUsed;
  llvm::StringMap<const ast::Unit *> units;
  std::vector<InstFrame> stack;
  /// Instantiations already checked, keyed by unit and dims: repeats are checked quietly.
  std::set<std::pair<const ast::Unit *, std::vector<int64_t>>> seenInstantiations;
  std::set<const ast::Unit *> usedUnits;
  /// Cell instances of the network being checked, and whether they passed maxCellInstances.
  int64_t cellInstances = 0;
  bool tooManyCellInstances = false;
  unsigned quiet = 0;
  bool failed = false;
  /// Warnings given, by place and text: a cell checked for several layers warns once.
  std::set<std::pair<const char *, std::string>> warned;
  /// Whether the last error was shown: not while quiet, and not once the engine drops errors past
  /// its limit (with their notes). Suggestions for a hidden error are not searched for.
  bool lastErrorShown = false;

  // Per-instance evaluation state for cycle detection in dims and consts.
  enum class EvalState { Pending, Visiting, Done, Failed };
  llvm::StringMap<EvalState> evalState;
  llvm::SmallVector<std::pair<llvm::StringRef, llvm::SMRange>, 8> evalStack;
  llvm::StringMap<const ast::Expr *> pendingDefs;
};

} // namespace dopa::sema::detail
