//===- AST.h - Abstract syntax tree of dopa spec files --------------------===//
//
// The AST is what the parser builds and nothing more: no names are resolved and no shapes are
// known. Every node carries its source range. Expressions use LLVM-style RTTI (classof). Nodes own
// their children through unique_ptr; strings are StringRefs into the SourceMgr's buffers, which
// outlive the AST.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/Casting.h"
#include "llvm/Support/SMLoc.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace dopa::ast {

//===----------------------------------------------------------------------===//
// Expressions
//===----------------------------------------------------------------------===//

class Expr {
public:
  enum Kind { Expr_Number, Expr_Name, Expr_Unary, Expr_Binary, Expr_Call, Expr_Member, Expr_Index };

  Expr(Kind kind, llvm::SMRange range) : kind(kind), range(range) {}
  virtual ~Expr() = default;

  Kind getKind() const { return kind; }
  llvm::SMRange getRange() const { return range; }
  llvm::SMLoc getLoc() const { return range.Start; }
  /// Height of this expression tree (a leaf is 1). The parser bounds it, so every recursive walk
  /// over expressions has bounded depth.
  unsigned getDepth() const { return depth; }
  void setDepth(unsigned d) { depth = d; }

private:
  const Kind kind;
  llvm::SMRange range;
  unsigned depth = 1;
};
using ExprPtr = std::unique_ptr<Expr>;

/// A numeric literal. Integers keep their exact value as well.
class NumberExpr : public Expr {
public:
  NumberExpr(llvm::SMRange range, double value, std::optional<int64_t> intValue)
      : Expr(Expr_Number, range), value(value), intValue(intValue) {}
  double getValue() const { return value; }
  bool isInteger() const { return intValue.has_value(); }
  int64_t getIntValue() const { return *intValue; }
  static bool classof(const Expr *e) { return e->getKind() == Expr_Number; }

private:
  double value;
  std::optional<int64_t> intValue;
};

class NameExpr : public Expr {
public:
  NameExpr(llvm::SMRange range, llvm::StringRef name) : Expr(Expr_Name, range), name(name) {}
  llvm::StringRef getName() const { return name; }
  static bool classof(const Expr *e) { return e->getKind() == Expr_Name; }

private:
  llvm::StringRef name;
};

class UnaryExpr : public Expr {
public:
  UnaryExpr(llvm::SMRange range, char op, ExprPtr operand)
      : Expr(Expr_Unary, range), op(op), operand(std::move(operand)) {}
  char getOp() const { return op; }
  const Expr *getOperand() const { return operand.get(); }
  static bool classof(const Expr *e) { return e->getKind() == Expr_Unary; }

private:
  char op;
  ExprPtr operand;
};

/// lhs op rhs, op one of + - * / @
class BinaryExpr : public Expr {
public:
  BinaryExpr(llvm::SMRange range, char op, llvm::SMLoc opLoc, ExprPtr lhs, ExprPtr rhs)
      : Expr(Expr_Binary, range), op(op), opLoc(opLoc), lhs(std::move(lhs)), rhs(std::move(rhs)) {}
  char getOp() const { return op; }
  llvm::SMLoc getOpLoc() const { return opLoc; }
  const Expr *getLHS() const { return lhs.get(); }
  const Expr *getRHS() const { return rhs.get(); }
  static bool classof(const Expr *e) { return e->getKind() == Expr_Binary; }

private:
  char op;
  llvm::SMLoc opLoc;
  ExprPtr lhs, rhs;
};

/// callee(args): a built-in function, a linear or embedding layer, or a cell instance.
class CallExpr : public Expr {
public:
  CallExpr(llvm::SMRange range, ExprPtr callee, std::vector<ExprPtr> args)
      : Expr(Expr_Call, range), callee(std::move(callee)), args(std::move(args)) {}
  const Expr *getCallee() const { return callee.get(); }
  const std::vector<ExprPtr> &getArgs() const { return args; }
  static bool classof(const Expr *e) { return e->getKind() == Expr_Call; }

private:
  ExprPtr callee;
  std::vector<ExprPtr> args;
};

/// base.member: a parameter of a linear/embedding layer or an output of a cell instance call.
class MemberExpr : public Expr {
public:
  MemberExpr(llvm::SMRange range, ExprPtr base, llvm::StringRef member, llvm::SMRange memberRange)
      : Expr(Expr_Member, range), base(std::move(base)), member(member), memberRange(memberRange) {}
  const Expr *getBase() const { return base.get(); }
  llvm::StringRef getMember() const { return member; }
  llvm::SMRange getMemberRange() const { return memberRange; }
  static bool classof(const Expr *e) { return e->getKind() == Expr_Member; }

private:
  ExprPtr base;
  llvm::StringRef member;
  llvm::SMRange memberRange;
};

/// One axis of an index expression: `lo:hi`, `lo:`, `:hi`, `:` or a single index `i`.
struct Slice {
  llvm::SMRange range;
  ExprPtr lo, hi;      // null when omitted
  bool isRange = true; // false for a single index (which drops the axis)
};

/// base[slice, slice, ...]
class IndexExpr : public Expr {
public:
  IndexExpr(llvm::SMRange range, ExprPtr base, std::vector<Slice> slices)
      : Expr(Expr_Index, range), base(std::move(base)), slices(std::move(slices)) {}
  const Expr *getBase() const { return base.get(); }
  const std::vector<Slice> &getSlices() const { return slices; }
  static bool classof(const Expr *e) { return e->getKind() == Expr_Index; }

private:
  ExprPtr base;
  std::vector<Slice> slices;
};

//===----------------------------------------------------------------------===//
// Declarations
//===----------------------------------------------------------------------===//

/// A name with its location, as written in a declaration.
struct Ident {
  llvm::StringRef name;
  llvm::SMRange range;
  llvm::SMLoc getLoc() const { return range.Start; }
};

/// `int` or `[d0, d1, ...]` (per batch element; the batch axis is implicit).
struct TypeSpec {
  llvm::SMRange range;
  bool isInt = false;
  std::vector<ExprPtr> dims;
};

/// dims A = 3, B = A * 2
struct DimDef {
  Ident name;
  ExprPtr value;
};

/// How a parameter, embedding or state starts: `= expr` (a constant) or `~ dist(args)`.
struct InitSpec {
  llvm::SMRange range;
  bool isDistribution = false;
  ExprPtr value; // NumberExpr/UnaryExpr for constants, CallExpr for distributions
};

class Member {
public:
  enum Kind {
    Member_Dims,
    Member_Const,
    Member_Input,
    Member_State,
    Member_Param,
    Member_Mask,
    Member_Linear,
    Member_Embedding,
    Member_Layer
  };
  Member(Kind kind, llvm::SMRange range) : kind(kind), range(range) {}
  virtual ~Member() = default;
  Kind getKind() const { return kind; }
  llvm::SMRange getRange() const { return range; }

private:
  const Kind kind;
  llvm::SMRange range;
};
using MemberPtr = std::unique_ptr<Member>;

struct DimsDecl : Member {
  explicit DimsDecl(llvm::SMRange range) : Member(Member_Dims, range) {}
  std::vector<DimDef> defs;
  static bool classof(const Member *m) { return m->getKind() == Member_Dims; }
};

struct ConstDecl : Member {
  explicit ConstDecl(llvm::SMRange range) : Member(Member_Const, range) {}
  Ident name;
  ExprPtr value;
  static bool classof(const Member *m) { return m->getKind() == Member_Const; }
};

/// input / state / param / mask share one shape: names, a type, an optional initializer and an
/// optional trailing `shared` (meaningful for masks only; Sema says so for the others).
struct VarDecl : Member {
  VarDecl(Kind kind, llvm::SMRange range) : Member(kind, range) {}
  std::vector<Ident> names;
  TypeSpec type;
  std::optional<InitSpec> init;
  std::optional<llvm::SMRange> shared; // where `shared` was written
  static bool classof(const Member *m) {
    return m->getKind() == Member_Input || m->getKind() == Member_State ||
           m->getKind() == Member_Param || m->getKind() == Member_Mask;
  }
};

/// linear name : In -> Out [nobias] [~ init]
struct LinearDecl : Member {
  explicit LinearDecl(llvm::SMRange range) : Member(Member_Linear, range) {}
  Ident name;
  ExprPtr inDim, outDim;
  bool hasBias = true;
  std::optional<InitSpec> init;
  static bool classof(const Member *m) { return m->getKind() == Member_Linear; }
};

/// embedding name : Count -> Width [~ init]
struct EmbeddingDecl : Member {
  explicit EmbeddingDecl(llvm::SMRange range) : Member(Member_Embedding, range) {}
  Ident name;
  ExprPtr count, width;
  std::optional<InitSpec> init;
  static bool classof(const Member *m) { return m->getKind() == Member_Embedding; }
};

/// layer name : Cell(dimArgs)
struct LayerDecl : Member {
  explicit LayerDecl(llvm::SMRange range) : Member(Member_Layer, range) {}
  Ident name;
  Ident cell;
  std::vector<ExprPtr> dimArgs;
  static bool classof(const Member *m) { return m->getKind() == Member_Layer; }
};

/// One equation of a step block: `x = e`, `s' = e` or `output y = e`.
struct Equation {
  enum Kind { Local, StateUpdate, Output };
  Kind kind = Local;
  Ident target;
  llvm::SMRange range;
  ExprPtr value;
};

/// A network or a cell: a named unit with members and one step block.
struct Unit {
  bool isCell = false;
  Ident name;
  llvm::SMRange range;
  std::vector<Ident> dimParams; // cells only
  std::vector<MemberPtr> members;
  bool hasStep = false;
  llvm::SMLoc stepLoc;
  std::vector<Equation> step;
};

struct Include {
  llvm::SMRange range;
  std::string path; // without the quotes, the escapes \" and \\ resolved
  llvm::SMRange pathRange;
};

/// One parsed file.
struct File {
  unsigned bufferId = 0;
  std::vector<Include> includes;
  std::vector<std::unique_ptr<Unit>> units;
};

/// Print the AST as an indented tree with @file:line:col locations (for --emit=ast and golden
/// tests).
void dumpFile(const File &file, const llvm::SourceMgr &sourceMgr, llvm::raw_ostream &os);

} // namespace dopa::ast
