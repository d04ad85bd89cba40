//===- SemaExpr.cpp - Shape inference of step expressions -----------------===//
//
// Infers the shape of every expression of a step block and records it in Instance::exprShapes:
// names, arithmetic with broadcasting, '@' with the W[post, pre] layout, calls of built-in
// functions, linear layers, embeddings and cell layers, members and indexing. infer() dispatches
// on the kind of expression to one function per kind.
//
//===----------------------------------------------------------------------===//
#include "SemaImpl.h"

#include <algorithm>

using namespace dopa;
using namespace dopa::ast;
using namespace dopa::sema;

namespace dopa::sema::detail {

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
  if (!broadcastDims(a.dims, b.dims, out.dims))
    return std::nullopt;
  return out;
}

std::optional<Shape> Checker::infer(Instance &inst, const Expr *expr) {
  std::optional<Shape> result;
  if (llvm::isa<NumberExpr>(expr))
    result = Shape::scalar();
  else if (const auto *name = llvm::dyn_cast<NameExpr>(expr))
    result = inferName(inst, name);
  else if (const auto *un = llvm::dyn_cast<UnaryExpr>(expr))
    result = requireReal(inst, un->getOperand(), "in arithmetic");
  else if (const auto *bin = llvm::dyn_cast<BinaryExpr>(expr))
    result = inferBinary(inst, bin);
  else if (const auto *call = llvm::dyn_cast<CallExpr>(expr))
    result = inferCall(inst, call, {}, {});
  else if (const auto *mem = llvm::dyn_cast<MemberExpr>(expr))
    result = inferMember(inst, mem);
  else if (const auto *idx = llvm::dyn_cast<IndexExpr>(expr))
    result = inferIndex(inst, idx);
  if (!result)
    return result;
  // The declarations are limited to 2^31 elements; so is every value computed from them (an
  // outer product or a broadcast can grow past it; the generated code indexes with int).
  int64_t n = 1;
  for (int64_t d : result->dims) {
    if (__builtin_mul_overflow(n, d, &n) || n > maxElements) {
      error(expr->getLoc(),
            "this value's shape " + result->str() +
                " has more than 2^31 elements per batch element",
            {expr->getRange()});
      return std::nullopt;
    }
  }
  inst.exprShapes[expr] = *result;
  return result;
}

std::optional<Shape> Checker::inferName(Instance &inst, const NameExpr *name) {
  auto it = inst.symbols.find(name->getName());
  if (it == inst.symbols.end()) {
    if (findBuiltin(name->getName()))
      error(name->getLoc(),
            "'" + name->getName() + "' is a built-in function; call it with arguments",
            {name->getRange()});
    else {
      error(name->getLoc(), "unknown name '" + name->getName() + "'", {name->getRange()});
      suggest(name->getName(), name->getRange(), &inst, false);
    }
    return std::nullopt;
  }
  Symbol &sym = it->second;
  sym.used = true;
  switch (sym.kind) {
  case SymbolKind::Dim:
  case SymbolKind::Const: return Shape::scalar();
  case SymbolKind::Input:
  case SymbolKind::State:
  case SymbolKind::Param:
  case SymbolKind::Mask:
  case SymbolKind::Local:
  case SymbolKind::Output:
    if (sym.varIndex < 0 && (sym.kind == SymbolKind::Input || sym.kind == SymbolKind::State ||
                             sym.kind == SymbolKind::Param || sym.kind == SymbolKind::Mask))
      return std::nullopt; // its declaration had an error
    if ((sym.kind == SymbolKind::Local || sym.kind == SymbolKind::Output) &&
        !inst.exprShapes.count(sym.equation->value.get()))
      return std::nullopt; // its definition had an error
    return sym.shape;
  case SymbolKind::Linear:
  case SymbolKind::Embedding:
    error(name->getLoc(),
          llvm::Twine("'") + name->getName() + "' is " + symbolKindWithArticle(sym.kind) +
              "; call it (" + name->getName() + "(x)) or use its parameters (" + name->getName() +
              ".weight)",
          {name->getRange()});
    return std::nullopt;
  case SymbolKind::Layer:
    error(name->getLoc(), "'" + name->getName() + "' is a layer; call it with its inputs",
          {name->getRange()});
    return std::nullopt;
  }
  return std::nullopt;
}

std::optional<Shape> Checker::inferBinary(Instance &inst, const BinaryExpr *bin) {
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
                llvm::Twine(ka) + " vs " + llvm::Twine(kb) + "); weights are laid out W[post, pre]",
            ranges);
      return std::nullopt;
    }
    Shape out;
    if (a.rank() == 2)
      out.dims.push_back(a.dims[0]);
    if (b.rank() == 2)
      out.dims.push_back(b.dims[1]);
    return out;
  }
  std::optional<Shape> result = broadcast(*l, *r);
  if (!result) {
    error(bin->getOpLoc(),
          "shapes " + l->str() + " and " + r->str() + " cannot be broadcast together for '" +
              llvm::Twine(bin->getOp()) + "'",
          ranges);
    return std::nullopt;
  }
  return result;
}

std::optional<Shape> Checker::inferMember(Instance &inst, const MemberExpr *mem) {
  if (const auto *call = llvm::dyn_cast<CallExpr>(mem->getBase()))
    return inferCall(inst, call, mem->getMember(), mem->getMemberRange());
  const auto *base = llvm::dyn_cast<NameExpr>(mem->getBase());
  if (!base) {
    error(mem->getLoc(), "'.' needs a linear layer, an embedding or a layer call on its left",
          {mem->getBase()->getRange()});
    return std::nullopt;
  }
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
      return s;
    }
    if (m == "bias" && sym.hasBias) {
      sym.biasUsed = true;
      Shape s;
      s.dims = {sym.outDim};
      return s;
    }
    error(mem->getMemberRange().Start,
          "linear layer '" + base->getName() + "' has no member '" + m + "'; it has 'weight'" +
              (sym.hasBias ? " and 'bias'" : " (declared 'nobias')"),
          {mem->getMemberRange()});
    return std::nullopt;
  }
  if (sym.kind == SymbolKind::Embedding) {
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
    return s;
  }
  if (sym.kind == SymbolKind::Layer) {
    error(mem->getMemberRange().Start,
          "a layer's outputs are read from a call: " + base->getName() + "(...)." + m,
          {mem->getRange()});
    return std::nullopt;
  }
  error(mem->getLoc(),
        llvm::Twine("'.") + m + "' needs a linear layer, an embedding or a layer call; '" +
            base->getName() + "' is " + symbolKindWithArticle(sym.kind),
        {mem->getRange()});
  return std::nullopt;
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
  if (sym.kind == SymbolKind::Linear || sym.kind == SymbolKind::Embedding) {
    if (!member.empty()) {
      error(memberRange.Start, "the result of '" + name + "(...)' has no members", {memberRange});
      return std::nullopt;
    }
    sym.biasUsed = true;
    return inferLinearCall(inst, call, sym, name);
  }
  if (sym.kind == SymbolKind::Layer)
    return inferLayerCall(inst, call, sym, name, member, memberRange);
  error(callee->getLoc(),
        llvm::Twine("'") + name + "' is " + symbolKindWithArticle(sym.kind) +
            " and cannot be called",
        {callee->getRange()});
  note(sym.range.Start, "declared here", {sym.range});
  return std::nullopt;
}

static bool sameArgs(const CallExpr *a, const CallExpr *b);

/// The same expression, written again (white space and spelling of numbers aside).
static bool sameExpr(const Expr *a, const Expr *b) {
  if (!a || !b)
    return a == b;
  if (a->getKind() != b->getKind())
    return false;
  if (const auto *x = llvm::dyn_cast<NumberExpr>(a))
    return x->getValue() == llvm::cast<NumberExpr>(b)->getValue();
  if (const auto *x = llvm::dyn_cast<NameExpr>(a))
    return x->getName() == llvm::cast<NameExpr>(b)->getName();
  if (const auto *x = llvm::dyn_cast<UnaryExpr>(a)) {
    const auto *y = llvm::cast<UnaryExpr>(b);
    return x->getOp() == y->getOp() && sameExpr(x->getOperand(), y->getOperand());
  }
  if (const auto *x = llvm::dyn_cast<BinaryExpr>(a)) {
    const auto *y = llvm::cast<BinaryExpr>(b);
    return x->getOp() == y->getOp() && sameExpr(x->getLHS(), y->getLHS()) &&
           sameExpr(x->getRHS(), y->getRHS());
  }
  if (const auto *x = llvm::dyn_cast<CallExpr>(a))
    return sameArgs(x, llvm::cast<CallExpr>(b)) &&
           sameExpr(x->getCallee(), llvm::cast<CallExpr>(b)->getCallee());
  if (const auto *x = llvm::dyn_cast<MemberExpr>(a)) {
    const auto *y = llvm::cast<MemberExpr>(b);
    return x->getMember() == y->getMember() && sameExpr(x->getBase(), y->getBase());
  }
  if (const auto *x = llvm::dyn_cast<IndexExpr>(a)) {
    const auto *y = llvm::cast<IndexExpr>(b);
    if (!sameExpr(x->getBase(), y->getBase()) || x->getSlices().size() != y->getSlices().size())
      return false;
    for (size_t i = 0; i < x->getSlices().size(); ++i) {
      const Slice &p = x->getSlices()[i], &q = y->getSlices()[i];
      if (p.isRange != q.isRange || !sameExpr(p.lo.get(), q.lo.get()) ||
          !sameExpr(p.hi.get(), q.hi.get()))
        return false;
    }
    return true;
  }
  return false;
}

/// Whether two calls have the same arguments, written the same way (so they are one call).
static bool sameArgs(const CallExpr *a, const CallExpr *b) {
  if (a->getArgs().size() != b->getArgs().size())
    return false;
  for (size_t i = 0; i < a->getArgs().size(); ++i)
    if (!sameExpr(a->getArgs()[i].get(), b->getArgs()[i].get()))
      return false;
  return true;
}

void Checker::inferForErrors(Instance &inst, const CallExpr *call) {
  for (const ExprPtr &arg : call->getArgs())
    (void)infer(inst, arg.get());
}

std::optional<Shape> Checker::inferLinearCall(Instance &inst, const CallExpr *call,
                                              const Symbol &sym, llvm::StringRef name) {
  const auto &args = call->getArgs();
  if (args.size() != 1) {
    error(call->getLoc(),
          llvm::Twine(symbolKindName(sym.kind)) + " '" + name + "' takes one argument, got " +
              llvm::Twine(args.size()),
          {call->getRange()});
    inferForErrors(inst, call);
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

std::optional<Shape> Checker::inferLayerCall(Instance &inst, const CallExpr *call, Symbol &sym,
                                             llvm::StringRef name, llvm::StringRef member,
                                             llvm::SMRange memberRange) {
  const auto &args = call->getArgs();
  if (sym.layer == nullptr)
    return std::nullopt; // the layer itself had errors
  if (sym.firstCall && !sameArgs(llvm::cast<CallExpr>(sym.firstCall), call)) {
    error(call->getLoc(),
          "layer '" + name +
              "' is called twice in one step with different arguments; each call advances its "
              "state (calling it again with the same arguments reads another of its outputs)",
          {call->getRange()});
    note(sym.firstCall->getLoc(), "first called here", {sym.firstCall->getRange()});
    inferForErrors(inst, call);
    return std::nullopt;
  }
  if (!sym.firstCall)
    sym.firstCall = call;
  const Instance &cell = *sym.layer;
  if (args.size() != cell.inputs.size()) {
    error(call->getLoc(),
          "layer '" + name + "' takes " + llvm::Twine(cell.inputs.size()) + " input" +
              (cell.inputs.size() == 1 ? "" : "s") + ", got " + llvm::Twine(args.size()),
          {call->getRange()});
    inferForErrors(inst, call);
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

std::optional<llvm::SmallVector<Shape, 4>>
Checker::inferBuiltinArgs(Instance &inst, const CallExpr *call, const BuiltinInfo &info) {
  const auto &args = call->getArgs();
  if (args.size() < info.minArgs || args.size() > info.maxArgs) {
    std::string want = info.minArgs == info.maxArgs
                           ? std::to_string(info.minArgs)
                           : std::to_string(info.minArgs) + " to " + std::to_string(info.maxArgs);
    error(call->getLoc(),
          llvm::Twine("'") + info.name + "' takes " + want + " argument" +
              (info.maxArgs == 1 ? "" : "s") + ", got " + llvm::Twine(args.size()),
          {call->getRange()});
    inferForErrors(inst, call);
    return std::nullopt;
  }
  // `sum(x, axis)` and `mean(x, axis)`: the axis is an integer literal, not a tensor.
  size_t tensorArgs = args.size();
  if ((info.id == Builtin::Sum || info.id == Builtin::Mean) && args.size() == 2)
    tensorArgs = 1;
  llvm::SmallVector<Shape, 4> shapes;
  bool ok = true; // every argument is checked, so each bad one is reported
  for (size_t i = 0; i < tensorArgs; ++i) {
    auto s = requireReal(inst, args[i].get(), llvm::Twine("as an argument of '") + info.name + "'");
    if (s)
      shapes.push_back(*s);
    ok &= s.has_value();
  }
  if (!ok)
    return std::nullopt;
  return shapes;
}

std::optional<Shape> Checker::inferBuiltin(Instance &inst, const CallExpr *call,
                                           const BuiltinInfo &info) {
  auto argShapes = inferBuiltinArgs(inst, call, info);
  if (!argShapes)
    return std::nullopt;
  const llvm::SmallVector<Shape, 4> &shapes = *argShapes;
  const auto &args = call->getArgs();
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
    if (shapes[0].rank() == 0) {
      error(args[1]->getLoc(),
            llvm::Twine("'") + info.name + "' of a scalar has no axis to reduce; drop the axis",
            {args[1]->getRange()});
      return std::nullopt;
    }
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

/// The int input named by an index expression (`tok` in `table[tok, :]`), or null.
Symbol *Checker::intInputIndex(Instance &inst, const Slice &s) {
  const auto *name = s.isRange ? nullptr : llvm::dyn_cast<NameExpr>(s.lo.get());
  if (!name)
    return nullptr;
  auto it = inst.symbols.find(name->getName());
  if (it == inst.symbols.end() || it->second.kind != SymbolKind::Input || !it->second.shape.isInt)
    return nullptr;
  return &it->second;
}

std::optional<Shape> Checker::inferIndex(Instance &inst, const IndexExpr *index) {
  auto base = requireReal(inst, index->getBase(), "with an index");
  if (!base)
    return std::nullopt;
  const auto &slices = index->getSlices();
  // table[tok, :]: the row of a table picked by an int input (a gather, like an embedding's call).
  if (!slices.empty() && intInputIndex(inst, slices.front())) {
    intInputIndex(inst, slices.front())->used = true;
    const auto *tableName = llvm::dyn_cast<NameExpr>(index->getBase());
    auto it = tableName ? inst.symbols.find(tableName->getName()) : inst.symbols.end();
    bool isTable = it != inst.symbols.end() &&
                   (it->second.kind == SymbolKind::Param ||
                    (it->second.kind == SymbolKind::Mask && it->second.varIndex >= 0 &&
                     inst.masks[size_t(it->second.varIndex)].shared));
    if (!isTable || base->rank() != 2) {
      error(index->getLoc(),
            "a row picked by an int input needs a table: a [rows, width] param or shared mask, "
            "got " +
                base->str(),
            {index->getBase()->getRange()});
      return std::nullopt;
    }
    if (slices.size() != 2 || !slices[1].isRange || slices[1].lo || slices[1].hi) {
      error(index->getLoc(), "write the row as 'table[index, :]'", {index->getRange()});
      return std::nullopt;
    }
    return Shape{false, {base->dims[1]}};
  }
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

} // namespace dopa::sema::detail
