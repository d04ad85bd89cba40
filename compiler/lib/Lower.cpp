//===- Lower.cpp - Lower a checked network to its forward step graph -------===//
//
// Walks each unit instance's equations in dependency order and builds IR nodes. Layer calls are
// inlined: the cell's equations are lowered with its inputs bound to the call's arguments. Leaves
// (params, inputs, states, constants) are created once each. `mean` lowers to a sum and a scale,
// `col`/`row` to reshapes, `linear` calls to a matmul plus the bias.
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Passes.h"

#include "llvm/ADT/StringMap.h"

#include <map>

using namespace dopa;
using namespace dopa::ast;
using namespace dopa::sema;
using dopa::ir::Node;
using dopa::ir::Op;

namespace {

class Lowerer {
public:
  explicit Lowerer(const Network &net) : net(net) {}

  ir::Graph run();

private:
  /// Lower an instance's step with its inputs bound to `args`; returns its outputs by name.
  std::vector<std::pair<std::string, int>> lowerInstance(const Instance &inst,
                                                         const std::vector<int> &args);
  int lowerExpr(const Instance &inst, const Expr *expr);
  int lowerCall(const Instance &inst, const CallExpr *call, llvm::StringRef member);

  int leaf(Op op, int index, llvm::SMLoc loc);
  /// Slice bounds are dims expressions that Sema has checked; evaluate them the same way.
  int64_t evalDim(const Instance &inst, const Expr *expr);
  int constant(double value, llvm::SMLoc loc);
  int make(Op op, std::vector<int> operands, const Expr *expr, int index = -1);

  const Network &net;
  ir::Graph g;
  llvm::StringMap<int> paramIndex, stateIndex;
  llvm::StringMap<std::pair<Op, int>> maskLeaves; // qualified name -> its input or parameter
  llvm::StringMap<int> maskNodes;                 // qualified name -> its leaf, once read
  std::map<std::pair<int, int>, int> leaves;      // (op, index) -> node
  std::map<double, int> constants;
  /// Each layer's outputs, once it is called: Sema lets a step call a layer again only with the
  /// same arguments (to read another of its outputs), which is the same call.
  std::map<const Instance *, std::vector<std::pair<std::string, int>>> layerOutputs;

  // The instance being lowered: its locals and its bound inputs.
  struct Scope {
    llvm::StringMap<int> values;
    std::vector<int> inputs;
  };
  std::vector<Scope> scopes;
};

int Lowerer::leaf(Op op, int index, llvm::SMLoc loc) {
  auto key = std::make_pair(int(op), index);
  auto it = leaves.find(key);
  if (it != leaves.end())
    return it->second;
  Node n{op};
  n.index = index;
  n.loc = loc;
  int id = ir::append(g, std::move(n));
  leaves[key] = id;
  return id;
}

int Lowerer::constant(double value, llvm::SMLoc loc) {
  auto it = constants.find(value);
  if (it != constants.end())
    return it->second;
  Node n{Op::Const};
  n.value = value;
  n.loc = loc;
  int id = ir::append(g, std::move(n));
  constants[value] = id;
  return id;
}

int Lowerer::make(Op op, std::vector<int> operands, const Expr *expr, int index) {
  Node n{op};
  n.operands = std::move(operands);
  n.index = index;
  if (expr)
    n.loc = expr->getLoc();
  return ir::append(g, std::move(n));
}

int64_t Lowerer::evalDim(const Instance &inst, const Expr *expr) {
  if (const auto *num = llvm::dyn_cast<NumberExpr>(expr))
    return num->getIntValue();
  if (const auto *name = llvm::dyn_cast<NameExpr>(expr))
    return inst.symbols.find(name->getName())->second.dimValue;
  if (const auto *un = llvm::dyn_cast<UnaryExpr>(expr))
    return -evalDim(inst, un->getOperand());
  const auto *bin = llvm::cast<BinaryExpr>(expr);
  int64_t l = evalDim(inst, bin->getLHS()), r = evalDim(inst, bin->getRHS());
  switch (bin->getOp()) {
  case '+': return l + r;
  case '-': return l - r;
  case '*': return l * r;
  default: return l / r;
  }
}

ir::Graph Lowerer::run() {
  const Instance &root = *net.root;
  g.name = net.name;
  for (const Variable *v : net.params) {
    paramIndex[v->name] = int(g.params.size());
    g.params.push_back({v->name, ir::Shape(v->shape.dims.begin(), v->shape.dims.end()), false,
                        v->init, v->range.Start});
  }
  for (const Variable *v : net.states) {
    stateIndex[v->name] = int(g.states.size());
    g.states.push_back({v->name, ir::Shape(v->shape.dims.begin(), v->shape.dims.end()), false,
                        v->init, v->range.Start});
  }
  g.stateUpdates.assign(g.states.size(), -1);
  std::vector<int> inputs;
  for (const Variable &v : root.inputs) {
    g.inputs.push_back({v.name, ir::Shape(v.shape.dims.begin(), v.shape.dims.end()), v.shape.isInt,
                        v.init, v.range.Start});
    inputs.push_back(leaf(Op::Input, int(g.inputs.size()) - 1, v.range.Start));
  }
  // Masks after the spec's inputs and parameters: per element as inputs, shared as parameters.
  for (const Variable *v : net.masks) {
    std::vector<ir::Variable> &list = v->shared ? g.params : g.inputs;
    maskLeaves[v->name] = {v->shared ? Op::Param : Op::Input, int(list.size())};
    list.push_back({v->name, ir::Shape(v->shape.dims.begin(), v->shape.dims.end()), false, v->init,
                    v->range.Start, v->dropout});
  }
  auto outputs = lowerInstance(root, inputs);
  for (auto &[name, node] : outputs)
    g.outputs.push_back({name, node});
  return std::move(g);
}

std::vector<std::pair<std::string, int>> Lowerer::lowerInstance(const Instance &inst,
                                                                const std::vector<int> &args) {
  scopes.push_back({});
  scopes.back().inputs = args;
  std::vector<std::pair<std::string, int>> outputs;
  for (const Equation *eq : inst.order) {
    int value = lowerExpr(inst, eq->value.get());
    if (eq->kind == Equation::StateUpdate) {
      g.stateUpdates[size_t(stateIndex.lookup(inst.prefix + eq->target.name.str()))] = value;
      continue;
    }
    if (g.nodes[size_t(value)].name.empty())
      g.nodes[size_t(value)].name = inst.prefix + eq->target.name.str();
    scopes.back().values[eq->target.name] = value;
  }
  // Outputs in declaration order (Sema lists them in dependency order).
  for (const Equation &eq : inst.unit->step)
    if (eq.kind == Equation::Output)
      outputs.push_back({eq.target.name.str(), scopes.back().values.lookup(eq.target.name)});
  scopes.pop_back();
  return outputs;
}

int Lowerer::lowerExpr(const Instance &inst, const Expr *expr) {
  if (const auto *num = llvm::dyn_cast<NumberExpr>(expr))
    return constant(num->getValue(), expr->getLoc());
  if (const auto *name = llvm::dyn_cast<NameExpr>(expr)) {
    const Symbol &sym = inst.symbols.find(name->getName())->second;
    switch (sym.kind) {
    case SymbolKind::Dim: return constant(double(sym.dimValue), expr->getLoc());
    case SymbolKind::Const: return constant(sym.constValue, expr->getLoc());
    case SymbolKind::Input: return scopes.back().inputs[size_t(sym.varIndex)];
    case SymbolKind::State:
      return leaf(Op::State, stateIndex.lookup(inst.prefix + name->getName().str()),
                  sym.range.Start);
    case SymbolKind::Param:
      return leaf(Op::Param, paramIndex.lookup(inst.prefix + name->getName().str()),
                  sym.range.Start);
    case SymbolKind::Mask: {
      std::string qualified = inst.prefix + name->getName().str();
      auto [it, fresh] = maskNodes.try_emplace(qualified, -1);
      if (fresh) {
        auto [op, index] = maskLeaves.lookup(qualified);
        it->second = leaf(op, index, sym.range.Start);
      }
      return it->second;
    }
    case SymbolKind::Local:
    case SymbolKind::Output: return scopes.back().values.lookup(name->getName());
    default: break;
    }
    llvm_unreachable("Sema admits no other names as values");
  }
  if (const auto *un = llvm::dyn_cast<UnaryExpr>(expr)) {
    if (const auto *num = llvm::dyn_cast<NumberExpr>(un->getOperand()))
      return constant(-num->getValue(), expr->getLoc()); // a negative literal
    return make(Op::Neg, {lowerExpr(inst, un->getOperand())}, expr);
  }
  if (const auto *bin = llvm::dyn_cast<BinaryExpr>(expr)) {
    int l = lowerExpr(inst, bin->getLHS());
    int r = lowerExpr(inst, bin->getRHS());
    Op op = bin->getOp() == '+'   ? Op::Add
            : bin->getOp() == '-' ? Op::Sub
            : bin->getOp() == '*' ? Op::Mul
            : bin->getOp() == '/' ? Op::Div
                                  : Op::MatMul;
    Node n{op};
    n.operands = {l, r};
    n.loc = bin->getOpLoc();
    return ir::append(g, std::move(n));
  }
  if (const auto *call = llvm::dyn_cast<CallExpr>(expr))
    return lowerCall(inst, call, {});
  if (const auto *mem = llvm::dyn_cast<MemberExpr>(expr)) {
    if (const auto *call = llvm::dyn_cast<CallExpr>(mem->getBase()))
      return lowerCall(inst, call, mem->getMember());
    const auto *base = llvm::cast<NameExpr>(mem->getBase());
    std::string qualified = inst.prefix + base->getName().str() + "." + mem->getMember().str();
    return leaf(Op::Param, paramIndex.lookup(qualified), expr->getLoc());
  }
  const auto *idx = llvm::cast<IndexExpr>(expr);
  int base = lowerExpr(inst, idx->getBase());
  if (!idx->getSlices().empty() && !idx->getSlices().front().isRange) {
    // table[tok, :] (Sema checked the table and the int input): a gather.
    const auto *index = llvm::dyn_cast<NameExpr>(idx->getSlices().front().lo.get());
    auto it = index ? inst.symbols.find(index->getName()) : inst.symbols.end();
    if (it != inst.symbols.end() && it->second.kind == SymbolKind::Input && it->second.shape.isInt)
      return make(Op::Gather, {base, lowerExpr(inst, index)}, expr);
  }
  const ir::Shape &shape = g.nodes[size_t(base)].shape;
  size_t r = shape.size();
  Node n{Op::Slice};
  n.operands = {base};
  n.attrs.assign(3 * r, 0);
  for (size_t a = 0; a < r; ++a) {
    const Slice &s = idx->getSlices()[a];
    auto dimValue = [&](const Expr *e) { return evalDim(inst, e); };
    int64_t lo = s.lo ? dimValue(s.lo.get()) : 0;
    int64_t hi = s.isRange ? (s.hi ? dimValue(s.hi.get()) : shape[a]) : lo + 1;
    n.attrs[a] = lo;
    n.attrs[r + a] = hi;
    n.attrs[2 * r + a] = s.isRange ? 1 : 0;
  }
  n.loc = expr->getLoc();
  return ir::append(g, std::move(n));
}

int Lowerer::lowerCall(const Instance &inst, const CallExpr *call, llvm::StringRef member) {
  llvm::StringRef name = llvm::cast<NameExpr>(call->getCallee())->getName();
  const auto &args = call->getArgs();
  auto it = inst.symbols.find(name);
  if (it != inst.symbols.end()) {
    const Symbol &sym = it->second;
    std::string prefix = inst.prefix + name.str() + ".";
    if (sym.kind == SymbolKind::Linear) {
      int x = lowerExpr(inst, args[0].get());
      int w = leaf(Op::Param, paramIndex.lookup(prefix + "weight"), sym.range.Start);
      int y = make(Op::MatMul, {w, x}, call);
      if (sym.hasBias)
        y = make(Op::Add, {y, leaf(Op::Param, paramIndex.lookup(prefix + "bias"), sym.range.Start)},
                 call);
      return y;
    }
    if (sym.kind == SymbolKind::Embedding) {
      int idx = lowerExpr(inst, args[0].get());
      int table = leaf(Op::Param, paramIndex.lookup(prefix + "weight"), sym.range.Start);
      return make(Op::Gather, {table, idx}, call);
    }
    // A layer: inline the cell with its inputs bound to the arguments, once per step.
    auto [found, first] = layerOutputs.try_emplace(sym.layer);
    if (first) {
      std::vector<int> bound;
      bound.reserve(args.size());
      for (const auto &arg : args)
        bound.push_back(lowerExpr(inst, arg.get()));
      found->second = lowerInstance(*sym.layer, bound);
    }
    const auto &outputs = found->second;
    if (member.empty())
      return outputs.front().second;
    for (auto &[n, v] : outputs)
      if (n == member)
        return v;
    llvm_unreachable("Sema checked the output name");
  }
  std::vector<int> ops;
  ops.reserve(args.size());
  for (const auto &arg : args)
    ops.push_back(lowerExpr(inst, arg.get()));
  auto unary = [&](Op op) { return make(op, {ops[0]}, call); };
  if (name == "tanh")
    return unary(Op::Tanh);
  if (name == "sigmoid")
    return unary(Op::Sigmoid);
  if (name == "relu")
    return unary(Op::Relu);
  if (name == "exp")
    return unary(Op::Exp);
  if (name == "log")
    return unary(Op::Log);
  if (name == "abs")
    return unary(Op::Abs);
  if (name == "sqrt")
    return unary(Op::Sqrt);
  if (name == "softmax")
    return unary(Op::Softmax);
  if (name == "log_softmax")
    return unary(Op::LogSoftmax);
  if (name == "transpose")
    return unary(Op::Transpose);
  if (name == "detach")
    return unary(Op::Detach);
  if (name == "clip")
    return make(Op::Clip, ops, call);
  if (name == "outer")
    return make(Op::Outer, ops, call);
  if (name == "min")
    return make(Op::Min, ops, call);
  if (name == "max")
    return make(Op::Max, ops, call);
  if (name == "concat")
    return make(Op::Concat, ops, call);
  if (name == "col" || name == "row") {
    Node n{Op::Reshape};
    n.operands = {ops[0]};
    int64_t len = g.nodes[size_t(ops[0])].shape[0];
    n.shape = name == "col" ? ir::Shape{len, 1} : ir::Shape{1, len};
    n.loc = call->getLoc();
    return ir::append(g, std::move(n));
  }
  if (name == "sum" || name == "mean") {
    const ir::Shape shape = g.nodes[size_t(ops[0])].shape; // a copy: make() grows the node list
    int sum;
    int64_t count;
    if (args.size() == 1) {
      sum = make(Op::SumAll, {ops[0]}, call);
      count = ir::numElements(shape);
    } else {
      int axis = int(llvm::cast<NumberExpr>(args[1].get())->getIntValue());
      sum = make(Op::SumAxis, {ops[0]}, call, axis);
      count = shape[size_t(axis)];
    }
    if (name == "sum")
      return sum;
    return make(Op::Mul, {sum, constant(1.0 / double(count), call->getLoc())}, call);
  }
  llvm_unreachable("Sema admits no other functions");
}

} // namespace

ir::Graph dopa::lower(const Network &network) { return Lowerer(network).run(); }
