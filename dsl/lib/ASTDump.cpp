//===- ASTDump.cpp - Text dump of the dopa AST ----------------------------===//
//
// Prints the AST as an indented tree, one node per line with its @line:col location, for
// `dopac --emit=ast` and the golden tests. The output depends only on the source text.
//
//===----------------------------------------------------------------------===//
#include "dopa/dsl/AST.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/Path.h"

using namespace dopa;
using namespace dopa::ast;

namespace {
class Dumper {
public:
  Dumper(const llvm::SourceMgr &sm, llvm::raw_ostream &os) : sm(sm), os(os) {}

  void dump(const File &file);

private:
  void dumpUnit(const Unit &unit);
  void dumpMember(const Member &member);
  void dumpExpr(const Expr *expr);
  void dumpType(const TypeSpec &type);
  void dumpInit(const std::optional<InitSpec> &init);

  llvm::raw_ostream &line() { return os.indent(indent * 2); }
  void loc(llvm::SMLoc l) {
    auto [ln, col] = sm.getLineAndColumn(l);
    os << " @" << ln << ":" << col << "\n";
  }
  struct Indent {
    unsigned &level;
    explicit Indent(unsigned &level) : level(level) { ++level; }
    ~Indent() { --level; }
  };

  const llvm::SourceMgr &sm;
  llvm::raw_ostream &os;
  unsigned indent = 0;
};
} // namespace

void Dumper::dump(const File &file) {
  llvm::StringRef path = sm.getMemoryBuffer(file.bufferId)->getBufferIdentifier();
  os << "File " << llvm::sys::path::filename(path) << "\n";
  Indent in(indent);
  for (const Include &inc : file.includes) {
    line() << "Include \"";
    for (char c : inc.path)
      os << (c == '"' || c == '\\' ? "\\" : "") << c;
    os << "\"";
    loc(inc.range.Start);
  }
  for (const auto &unit : file.units)
    dumpUnit(*unit);
}

void Dumper::dumpUnit(const Unit &unit) {
  line() << (unit.isCell ? "Cell " : "Network ") << unit.name.name;
  if (unit.isCell) {
    os << "(";
    for (size_t i = 0; i < unit.dimParams.size(); ++i)
      os << (i ? ", " : "") << unit.dimParams[i].name;
    os << ")";
  }
  loc(unit.name.getLoc());
  Indent in(indent);
  for (const auto &member : unit.members)
    dumpMember(*member);
  if (!unit.hasStep)
    return;
  line() << "Step";
  loc(unit.stepLoc);
  Indent stepIn(indent);
  for (const Equation &eq : unit.step) {
    const char *kind = eq.kind == Equation::Output        ? "Output "
                       : eq.kind == Equation::StateUpdate ? "Update "
                                                          : "Let ";
    line() << kind << eq.target.name << (eq.kind == Equation::StateUpdate ? "'" : "");
    loc(eq.target.getLoc());
    Indent eqIn(indent);
    dumpExpr(eq.value.get());
  }
}

void Dumper::dumpType(const TypeSpec &type) {
  if (type.isInt) {
    line() << "Type int";
    loc(type.range.Start);
    return;
  }
  line() << "Shape rank " << type.dims.size();
  loc(type.range.Start);
  Indent in(indent);
  for (const auto &dim : type.dims)
    dumpExpr(dim.get());
}

void Dumper::dumpInit(const std::optional<InitSpec> &init) {
  if (!init)
    return;
  line() << (init->isDistribution ? "InitSample" : "InitValue");
  loc(init->range.Start);
  Indent in(indent);
  dumpExpr(init->value.get());
}

void Dumper::dumpMember(const Member &member) {
  if (const auto *dims = llvm::dyn_cast<DimsDecl>(&member)) {
    for (const DimDef &def : dims->defs) {
      line() << "Dim " << def.name.name;
      loc(def.name.getLoc());
      Indent in(indent);
      dumpExpr(def.value.get());
    }
  } else if (const auto *c = llvm::dyn_cast<ConstDecl>(&member)) {
    line() << "Const " << c->name.name;
    loc(c->name.getLoc());
    Indent in(indent);
    dumpExpr(c->value.get());
  } else if (const auto *var = llvm::dyn_cast<VarDecl>(&member)) {
    const char *kind = member.getKind() == Member::Member_Input   ? "Input"
                       : member.getKind() == Member::Member_State ? "State"
                       : member.getKind() == Member::Member_Mask  ? "Mask"
                                                                  : "Param";
    line() << kind;
    for (const Ident &name : var->names)
      os << " " << name.name;
    if (var->shared)
      os << " shared";
    loc(var->names.front().getLoc());
    Indent in(indent);
    dumpType(var->type);
    dumpInit(var->init);
  } else if (const auto *lin = llvm::dyn_cast<LinearDecl>(&member)) {
    line() << "Linear " << lin->name.name << (lin->hasBias ? "" : " nobias");
    loc(lin->name.getLoc());
    Indent in(indent);
    dumpExpr(lin->inDim.get());
    dumpExpr(lin->outDim.get());
    dumpInit(lin->init);
  } else if (const auto *emb = llvm::dyn_cast<EmbeddingDecl>(&member)) {
    line() << "Embedding " << emb->name.name;
    loc(emb->name.getLoc());
    Indent in(indent);
    dumpExpr(emb->count.get());
    dumpExpr(emb->width.get());
    dumpInit(emb->init);
  } else if (const auto *layer = llvm::dyn_cast<LayerDecl>(&member)) {
    line() << "Layer " << layer->name.name << " : " << layer->cell.name;
    loc(layer->name.getLoc());
    Indent in(indent);
    for (const auto &arg : layer->dimArgs)
      dumpExpr(arg.get());
  }
}

void Dumper::dumpExpr(const Expr *expr) {
  if (const auto *num = llvm::dyn_cast<NumberExpr>(expr)) {
    line() << "Number ";
    if (num->isInteger())
      os << num->getIntValue();
    else
      os << llvm::format("%.17g", num->getValue());
    loc(expr->getLoc());
  } else if (const auto *name = llvm::dyn_cast<NameExpr>(expr)) {
    line() << "Name " << name->getName();
    loc(expr->getLoc());
  } else if (const auto *un = llvm::dyn_cast<UnaryExpr>(expr)) {
    line() << "Unary " << un->getOp();
    loc(expr->getLoc());
    Indent in(indent);
    dumpExpr(un->getOperand());
  } else if (const auto *bin = llvm::dyn_cast<BinaryExpr>(expr)) {
    line() << "Binary " << bin->getOp();
    loc(bin->getOpLoc());
    Indent in(indent);
    dumpExpr(bin->getLHS());
    dumpExpr(bin->getRHS());
  } else if (const auto *call = llvm::dyn_cast<CallExpr>(expr)) {
    line() << "Call";
    loc(expr->getLoc());
    Indent in(indent);
    dumpExpr(call->getCallee());
    for (const auto &arg : call->getArgs())
      dumpExpr(arg.get());
  } else if (const auto *mem = llvm::dyn_cast<MemberExpr>(expr)) {
    line() << "Member ." << mem->getMember();
    loc(mem->getMemberRange().Start);
    Indent in(indent);
    dumpExpr(mem->getBase());
  } else if (const auto *idx = llvm::dyn_cast<IndexExpr>(expr)) {
    line() << "Index";
    loc(expr->getLoc());
    Indent in(indent);
    dumpExpr(idx->getBase());
    for (const Slice &slice : idx->getSlices()) {
      line() << (slice.isRange ? "Slice" : "At");
      loc(slice.range.Start);
      Indent sin(indent);
      if (slice.lo)
        dumpExpr(slice.lo.get());
      else if (slice.isRange)
        line() << "<begin>\n";
      if (slice.hi)
        dumpExpr(slice.hi.get());
      else if (slice.isRange)
        line() << "<end>\n";
    }
  }
}

void dopa::ast::dumpFile(const File &file, const llvm::SourceMgr &sourceMgr,
                         llvm::raw_ostream &os) {
  Dumper(sourceMgr, os).dump(file);
}
