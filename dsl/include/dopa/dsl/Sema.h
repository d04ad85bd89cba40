//===- Sema.h - Semantic analysis of dopa specs ---------------------------===//
//
// Sema takes the parsed files of a spec (the main file and everything it includes) and checks them:
// names, dimensions (evaluated, overflow-checked), constants, initializers, shapes of every
// expression with broadcasting and the W[post, pre] layout, state-update completeness, cycles,
// layer instantiation. It reports every error it finds. Its output, a Program, is a fully resolved
// description of each network: concrete dims, every variable with its qualified name, shape and
// initializer, each unit's equations in dependency order and the shape of every expression. Later
// stages lower from it.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/dsl/AST.h"
#include "dopa/dsl/Diagnostics.h"

#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"

#include <memory>
#include <string>
#include <vector>

namespace dopa::sema {

/// The type of a value per batch element: a real tensor of some shape, or an integer scalar.
struct Shape {
  bool isInt = false;
  llvm::SmallVector<int64_t, 2> dims;

  static Shape scalar() { return {}; }
  static Shape integer() {
    Shape s;
    s.isInt = true;
    return s;
  }
  size_t rank() const { return dims.size(); }
  int64_t numElements() const;
  std::string str() const; // "[200, 200]", "[]", "int"
  bool operator==(const Shape &other) const { return isInt == other.isInt && dims == other.dims; }
  bool operator!=(const Shape &other) const { return !(*this == other); }
};

/// The language's broadcasting rule (NumPy's), the one definition Sema and the IR verifier use: the
/// dims of an element-wise result of operands with dims `a` and `b`, trailing axes aligned, an axis
/// of 1 or a missing axis repeated; false when they do not broadcast.
bool broadcastDims(llvm::ArrayRef<int64_t> a, llvm::ArrayRef<int64_t> b,
                   llvm::SmallVectorImpl<int64_t> &out);

/// How a variable is initialized. Distributions are resolved to concrete numbers.
struct Init {
  enum Kind { Constant, Uniform, Normal };
  Kind kind = Constant;
  double a = 0; // constant value, uniform low, normal mean
  double b = 0; // uniform high, normal standard deviation
  std::string str() const;
};

enum class VarKind { Input, State, Param, Mask };

/// An input, state, parameter or mask with its qualified name ("w", "i2h.weight", "l1.hebb").
struct Variable {
  VarKind kind;
  std::string name;
  Shape shape;
  Init init;
  llvm::SMRange range; // where it is declared
  // Masks: each value is 0 with probability `dropout`, else 1 / (1 - dropout), drawn for every
  // training sequence; `shared`: one draw for the whole batch, else one per batch element.
  double dropout = 0;
  bool shared = false;
};

enum class SymbolKind {
  Dim,
  Const,
  Input,
  State,
  Param,
  Mask,
  Linear,
  Embedding,
  Layer,
  Local,
  Output
};
const char *symbolKindName(SymbolKind kind);
/// "an input", "a param": the kind's name with its article, for "'x' is an input".
std::string symbolKindWithArticle(SymbolKind kind);

struct Instance;

/// A name visible in a unit's scope.
struct Symbol {
  SymbolKind kind = SymbolKind::Local;
  llvm::SMRange range;
  int64_t dimValue = 0;      // Dim
  double constValue = 0;     // Const
  Shape shape;               // Input, State, Param, Mask, Local, Output
  int varIndex = -1;         // Input/State/Param/Mask: index into the unit's list of that kind
  int64_t inDim = 0;         // Linear: in size; Embedding: count
  int64_t outDim = 0;        // Linear: out size; Embedding: width
  bool hasBias = false;      // Linear
  Instance *layer = nullptr; // Layer
  const ast::Equation *equation = nullptr; // Local, Output
  const ast::Expr *firstCall = nullptr;    // Layer: its call in the step block
  const ast::Member *decl = nullptr;
  bool used = false;
  bool biasUsed = false; // Linear: called, or its bias read
};

/// A network, or one instantiation of a cell as a layer, with concrete dims.
struct Instance {
  const ast::Unit *unit = nullptr;
  std::string prefix; // "" for a network, "l1." for its layer l1, "l1.inner." below it
  llvm::SmallVector<std::pair<std::string, int64_t>, 4> dimValues; // in declaration order
  llvm::StringMap<Symbol> symbols;
  std::vector<Variable> inputs, states, params, masks; // this unit's own (qualified names)
  std::vector<std::pair<std::string, Shape>> outputs;
  std::vector<const ast::Equation *> order; // equations in dependency order
  llvm::DenseMap<const ast::Expr *, Shape> exprShapes;
  std::vector<std::unique_ptr<Instance>> layers; // in declaration order
};

/// A checked network with every variable of it and its layers flattened.
struct Network {
  std::string name;
  std::unique_ptr<Instance> root;
  std::vector<const Variable *> params, states, masks; // all, including layers' (qualified names)
  int64_t numParams() const;
};

struct Program {
  std::vector<std::unique_ptr<Network>> networks;
  const Network *find(llvm::StringRef name) const;
};

/// Values for a network's `dims` given on the command line (-D H=4), replacing their definitions.
using DimOverrides = llvm::StringMap<int64_t>;

/// Check the files (the main file first). Returns a Program only when there were no errors.
std::unique_ptr<Program> check(llvm::ArrayRef<const ast::File *> files, DiagnosticEngine &diags,
                               const DimOverrides *overrides = nullptr);

/// Human-readable summary of a checked program (dopac's default output), network by network.
void printSummary(const Program &program, llvm::raw_ostream &os);
void printSummary(const Network &network, llvm::raw_ostream &os);

} // namespace dopa::sema
