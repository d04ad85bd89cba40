//===- Autodiff.cpp - Reverse-mode differentiation of a step graph ---------===//
//
// Builds the backward step graph of a forward step graph. Adjoints are seeded with the gradients of
// the step's outputs and of the next values of the states, and propagated in reverse topological
// order with one vector-Jacobian product per op. Forward values the backward needs are read
// through FwdValue nodes (the executor or the memory plan decides how to provide them); constants,
// parameters and inputs are re-read directly. Gradients are only propagated into values that
// depend on a parameter or a state. Subgradients follow PyTorch: clip passes the gradient where
// lo <= x <= hi, relu'(0) = 0, abs'(0) = 0.
//
// checkLearnable reports parameters whose gradient is zero at every step.
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Passes.h"

#include "llvm/Support/raw_ostream.h"

#include <array>
#include <cstdlib>
#include <map>

using namespace dopa;
using namespace dopa::ir;

namespace {

[[noreturn]] void unexpectedOp(const char *where, Op op) {
  llvm::errs() << "internal error: " << where << ": unexpected op " << opName(op) << "\n";
  std::abort();
}

class Differentiator {
public:
  Differentiator(const Graph &fwd, bool inputGradients)
      : fwd(fwd), inputGradients(inputGradients) {}
  Graph run();

private:
  // Values of the forward graph as seen from the backward graph.
  int ref(int fwdNode);
  int constant(double value, const Shape &shape = {});
  int make(Op op, std::vector<int> operands, llvm::SMLoc loc, int index = -1);
  int make(Node n);
  /// Sum `grad` down to `shape` when broadcasting expanded it.
  int reduceTo(int grad, const Shape &shape, llvm::SMLoc loc);
  void accumulate(int fwdNode, int grad);
  /// Propagate the adjoint `grad` of forward node `id` to its operands: one helper per op kind.
  void backprop(int id, int grad);
  void backpropElementwise(int id, int grad);
  void backpropProduct(int id, int grad);
  void backpropReduction(int id, int grad);
  void backpropMovement(int id, int grad);
  void backpropNormalization(int id, int grad);

  const Graph &fwd;
  bool inputGradients;
  Graph bwd;
  std::vector<int> adjoint;
  std::vector<bool> needsGrad;
  std::map<int, int> refs;
  std::map<double, int> scalars;
};

int Differentiator::make(Node n) { return append(bwd, std::move(n)); }

int Differentiator::make(Op op, std::vector<int> operands, llvm::SMLoc loc, int index) {
  Node n{op};
  n.operands = std::move(operands);
  n.index = index;
  n.loc = loc;
  return make(std::move(n));
}

int Differentiator::constant(double value, const Shape &shape) {
  if (shape.empty()) {
    auto it = scalars.find(value);
    if (it != scalars.end())
      return it->second;
  }
  Node n{Op::Const};
  n.value = value;
  n.shape = shape;
  int id = make(std::move(n));
  if (shape.empty())
    scalars[value] = id;
  return id;
}

int Differentiator::ref(int fwdNode) {
  auto it = refs.find(fwdNode);
  if (it != refs.end())
    return it->second;
  // States at the start of the step and intermediate values come from the forward pass.
  Node n = forwardReference(fwd, fwdNode);
  int id = make(std::move(n));
  refs[fwdNode] = id;
  return id;
}

int Differentiator::reduceTo(int grad, const Shape &shape, llvm::SMLoc loc) {
  if (bwd.node(grad).shape == shape)
    return grad;
  Node n{Op::ReduceTo};
  n.operands = {grad};
  n.shape = shape;
  n.loc = loc;
  return make(std::move(n));
}

void Differentiator::accumulate(int fwdNode, int grad) {
  if (!needsGrad[size_t(fwdNode)])
    return;
  grad = reduceTo(grad, fwd.node(fwdNode).shape, fwd.node(fwdNode).loc);
  int &slot = adjoint[size_t(fwdNode)];
  slot = slot < 0 ? grad : make(Op::Add, {slot, grad}, fwd.node(fwdNode).loc);
}

Graph Differentiator::run() {
  bwd.name = fwd.name;
  bwd.isBackward = true;
  bwd.params = fwd.params;
  bwd.inputs = fwd.inputs;
  bwd.states = fwd.states;
  size_t n = fwd.nodes.size();
  adjoint.assign(n, -1);
  // A value needs a gradient when it depends on a parameter or a state (Detach cuts the path), or
  // on a real input when input gradients are asked for.
  needsGrad.assign(n, false);
  for (size_t i = 0; i < n; ++i) {
    const Node &node = fwd.nodes[i];
    // Masks are random constants of the sequence: no gradient to them (nor through them).
    if ((node.op == Op::Param && !fwd.params[size_t(node.index)].isMask()) ||
        node.op == Op::State ||
        (inputGradients && node.op == Op::Input && !fwd.inputs[size_t(node.index)].isInt &&
         !fwd.inputs[size_t(node.index)].isMask()))
      needsGrad[i] = true;
    else if (node.op != Op::Detach)
      for (int o : node.operands)
        needsGrad[i] = needsGrad[i] || needsGrad[size_t(o)];
  }
  for (size_t k = 0; k < fwd.outputs.size(); ++k) {
    Node g{Op::GradOutput};
    g.index = int(k);
    g.shape = fwd.node(fwd.outputs[k].node).shape;
    g.name = "d " + fwd.outputs[k].name;
    accumulate(fwd.outputs[k].node, make(std::move(g)));
  }
  for (size_t s = 0; s < fwd.states.size(); ++s) {
    Node g{Op::GradState};
    g.index = int(s);
    g.name = "d " + fwd.states[s].name + "'";
    accumulate(fwd.stateUpdates[s], make(std::move(g)));
  }
  for (int id = int(n) - 1; id >= 0; --id)
    if (adjoint[size_t(id)] >= 0)
      backprop(id, adjoint[size_t(id)]);

  bwd.stateGrads.assign(fwd.states.size(), -1);
  for (size_t i = 0; i < n; ++i) {
    const Node &node = fwd.nodes[i];
    if (node.op == Op::State && adjoint[i] >= 0)
      bwd.stateGrads[size_t(node.index)] = adjoint[i];
    if (node.op == Op::Param && adjoint[i] >= 0)
      bwd.paramGrads.push_back({node.index, adjoint[i], -1});
  }
  if (inputGradients) {
    // An input read by several nodes gets the sum of their adjoints.
    bwd.inputGrads.assign(fwd.inputs.size(), -1);
    for (size_t i = 0; i < n; ++i) {
      const Node &node = fwd.nodes[i];
      if (node.op != Op::Input || adjoint[i] < 0)
        continue;
      int &slot = bwd.inputGrads[size_t(node.index)];
      slot = slot < 0 ? adjoint[i] : make(Op::Add, {slot, adjoint[i]}, node.loc);
    }
  }
  return std::move(bwd);
}

void Differentiator::backprop(int id, int g) {
  Op op = fwd.node(id).op;
  if (!passesGradient(op))
    return; // leaves, detach, and piecewise-constant ops with a zero gradient
  switch (opKind(op)) {
  case OpKind::Leaf: return;
  case OpKind::Unary:
  case OpKind::Binary:
  case OpKind::Ternary: backpropElementwise(id, g); return;
  case OpKind::Product: backpropProduct(id, g); return;
  case OpKind::Reduction: backpropReduction(id, g); return;
  case OpKind::Movement: backpropMovement(id, g); return;
  case OpKind::Normalization: backpropNormalization(id, g); return;
  }
}

// The helpers put operands in braces: a braced list is evaluated left to right, so node numbers do
// not depend on the compiler (function arguments are evaluated in an unspecified order).

void Differentiator::backpropElementwise(int id, int g) {
  const Node &node = fwd.node(id);
  llvm::SMLoc loc = node.loc;
  auto operand = [&](size_t k) { return node.operands[k]; };
  auto x = [&](size_t k) { return ref(operand(k)); };
  auto y = [&]() { return ref(id); };
  auto mul = [&](std::array<int, 2> ab) { return make(Op::Mul, {ab[0], ab[1]}, loc); };
  auto sub = [&](std::array<int, 2> ab) { return make(Op::Sub, {ab[0], ab[1]}, loc); };
  auto needs = [&](size_t k) { return needsGrad[size_t(operand(k))]; };
  switch (node.op) {
  case Op::Neg: accumulate(operand(0), make(Op::Neg, {g}, loc)); return;
  case Op::RoundBf16: accumulate(operand(0), g); return; // straight-through (Bf16.h)
  case Op::Tanh:                                         // g * (1 - y^2)
    accumulate(operand(0), mul({g, sub({constant(1), mul({y(), y()})})}));
    return;
  case Op::Sigmoid: // g * y * (1 - y)
    accumulate(operand(0), mul({g, mul({y(), sub({constant(1), y()})})}));
    return;
  case Op::Relu: accumulate(operand(0), mul({g, make(Op::Step, {x(0)}, loc)})); return;
  case Op::Exp: accumulate(operand(0), mul({g, y()})); return;
  case Op::Log: accumulate(operand(0), make(Op::Div, {g, x(0)}, loc)); return;
  case Op::Abs: accumulate(operand(0), mul({g, make(Op::Sign, {x(0)}, loc)})); return;
  case Op::Sqrt: // g / (2 y)
    accumulate(operand(0), make(Op::Div, {g, mul({constant(2), y()})}, loc));
    return;
  case Op::Add:
    accumulate(operand(0), g);
    accumulate(operand(1), g);
    return;
  case Op::Sub:
    accumulate(operand(0), g);
    if (needs(1))
      accumulate(operand(1), make(Op::Neg, {g}, loc));
    return;
  case Op::Mul:
    if (needs(0))
      accumulate(operand(0), mul({g, x(1)}));
    if (needs(1))
      accumulate(operand(1), mul({g, x(0)}));
    return;
  case Op::Div: // d/da = g / b;  d/db = -g * y / b
    if (needs(0))
      accumulate(operand(0), make(Op::Div, {g, x(1)}, loc));
    if (needs(1))
      accumulate(operand(1), make(Op::Neg, {make(Op::Div, {mul({g, y()}), x(1)}, loc)}, loc));
    return;
  case Op::Min:
  case Op::Max: {
    // The gradient goes to a where a wins (ties included), to b elsewhere.
    int aWins = node.op == Op::Min ? make(Op::LessEq, {x(0), x(1)}, loc)
                                   : make(Op::LessEq, {x(1), x(0)}, loc);
    if (needs(0))
      accumulate(operand(0), mul({g, aWins}));
    if (needs(1))
      accumulate(operand(1), mul({g, sub({constant(1), aWins})}));
    return;
  }
  case Op::Clip:
    if (needs(0))
      accumulate(operand(0), mul({g, make(Op::InRange, {x(0), x(1), x(2)}, loc)}));
    if (needs(1)) // below the lower bound: the output is lo
      accumulate(operand(1), mul({g, sub({constant(1), make(Op::LessEq, {x(1), x(0)}, loc)})}));
    if (needs(2)) // above the upper bound: the output is hi
      accumulate(operand(2), mul({g, sub({constant(1), make(Op::LessEq, {x(0), x(2)}, loc)})}));
    return;
  default: unexpectedOp("autodiff", node.op);
  }
}

void Differentiator::backpropProduct(int id, int g) {
  const Node &node = fwd.node(id);
  llvm::SMLoc loc = node.loc;
  auto operand = [&](size_t k) { return node.operands[k]; };
  auto x = [&](size_t k) { return ref(operand(k)); };
  auto mul = [&](std::array<int, 2> ab) { return make(Op::Mul, {ab[0], ab[1]}, loc); };
  auto needs = [&](size_t k) { return needsGrad[size_t(operand(k))]; };
  if (node.op == Op::Outer) {
    if (needs(0))
      accumulate(operand(0), make(Op::MatMul, {g, x(1)}, loc));
    if (needs(1))
      accumulate(operand(1), make(Op::MatMul, {x(0), g}, loc));
    return;
  }
  const Shape &a = fwd.node(operand(0)).shape, &b = fwd.node(operand(1)).shape;
  if (a.size() == 2 && b.size() == 1) { // [M,K]@[K]
    if (needs(0))
      accumulate(operand(0), make(Op::Outer, {g, x(1)}, loc));
    if (needs(1))
      accumulate(operand(1), make(Op::MatMul, {g, x(0)}, loc));
  } else if (a.size() == 2 && b.size() == 2) { // [M,K]@[K,N]
    if (needs(0))
      accumulate(operand(0), make(Op::MatMul, {g, make(Op::Transpose, {x(1)}, loc)}, loc));
    if (needs(1))
      accumulate(operand(1), make(Op::MatMul, {make(Op::Transpose, {x(0)}, loc), g}, loc));
  } else if (a.size() == 1 && b.size() == 2) { // [K]@[K,N]
    if (needs(0))
      accumulate(operand(0), make(Op::MatMul, {x(1), g}, loc));
    if (needs(1))
      accumulate(operand(1), make(Op::Outer, {x(0), g}, loc));
  } else { // [K]@[K]
    if (needs(0))
      accumulate(operand(0), mul({g, x(1)}));
    if (needs(1))
      accumulate(operand(1), mul({g, x(0)}));
  }
}

void Differentiator::backpropReduction(int id, int g) {
  const Node &node = fwd.node(id);
  llvm::SMLoc loc = node.loc;
  int operand = node.operands[0];
  switch (node.op) {
  case Op::SumAll:
  case Op::ReduceTo: {
    Node b{Op::BroadcastTo};
    b.operands = {g};
    b.shape = fwd.node(operand).shape;
    b.loc = loc;
    accumulate(operand, make(std::move(b)));
    return;
  }
  case Op::SumAxis: {
    Shape kept = fwd.node(operand).shape;
    kept[size_t(node.index)] = 1;
    Node r{Op::Reshape};
    r.operands = {g};
    r.shape = kept;
    r.loc = loc;
    Node b{Op::BroadcastTo};
    b.operands = {make(std::move(r))};
    b.shape = fwd.node(operand).shape;
    b.loc = loc;
    accumulate(operand, make(std::move(b)));
    return;
  }
  default: unexpectedOp("autodiff", node.op);
  }
}

void Differentiator::backpropMovement(int id, int g) {
  const Node &node = fwd.node(id);
  llvm::SMLoc loc = node.loc;
  auto operand = [&](size_t k) { return node.operands[k]; };
  auto needs = [&](size_t k) { return needsGrad[size_t(operand(k))]; };
  switch (node.op) {
  case Op::Transpose: accumulate(operand(0), make(Op::Transpose, {g}, loc)); return;
  case Op::Reshape: {
    Node r{Op::Reshape};
    r.operands = {g};
    r.shape = fwd.node(operand(0)).shape;
    r.loc = loc;
    accumulate(operand(0), make(std::move(r)));
    return;
  }
  case Op::BroadcastTo: accumulate(operand(0), g); return; // accumulate() reduces
  case Op::Concat: {
    int64_t offset = 0;
    for (size_t k = 0; k < node.operands.size(); ++k) {
      int64_t len = fwd.node(operand(k)).shape[0];
      if (needs(k)) {
        Node s{Op::Slice};
        s.operands = {g};
        s.attrs = {offset, offset + len, 1};
        s.loc = loc;
        accumulate(operand(k), make(std::move(s)));
      }
      offset += len;
    }
    return;
  }
  case Op::Slice: {
    Node s{Op::SliceGrad};
    s.operands = {g};
    s.attrs = node.attrs;
    s.shape = fwd.node(operand(0)).shape;
    s.loc = loc;
    accumulate(operand(0), make(std::move(s)));
    return;
  }
  case Op::SliceGrad: {
    Node s{Op::Slice};
    s.operands = {g};
    s.attrs = node.attrs;
    s.loc = loc;
    accumulate(operand(0), make(std::move(s)));
    return;
  }
  case Op::Gather: {
    // The table is always an embedding's weight (a param): add the gradient to one row.
    const Node &table = fwd.node(operand(0));
    if (table.op == Op::Param)
      bwd.paramGrads.push_back({table.index, g, ref(operand(1))});
    return;
  }
  default: unexpectedOp("autodiff", node.op);
  }
}

void Differentiator::backpropNormalization(int id, int g) {
  const Node &node = fwd.node(id);
  llvm::SMLoc loc = node.loc;
  auto y = [&]() { return ref(id); };
  auto mul = [&](std::array<int, 2> ab) { return make(Op::Mul, {ab[0], ab[1]}, loc); };
  auto sub = [&](std::array<int, 2> ab) { return make(Op::Sub, {ab[0], ab[1]}, loc); };
  if (node.op == Op::Softmax) { // y * (g - sum(g * y))
    int dot = make(Op::SumAll, {mul({g, y()})}, loc);
    accumulate(node.operands[0], mul({y(), sub({g, dot})}));
  } else { // log-softmax: g - exp(y) * sum(g)
    int total = make(Op::SumAll, {g}, loc);
    accumulate(node.operands[0], sub({g, mul({make(Op::Exp, {y()}, loc), total})}));
  }
}

} // namespace

Graph dopa::differentiate(const Graph &forward, bool inputGradients) {
  return Differentiator(forward, inputGradients).run();
}

bool dopa::checkLearnable(const Graph &fwd, DiagnosticEngine &diags) {
  // Liveness backwards from the outputs; a live state makes its update live (the next step reads
  // it), until nothing changes. Detach passes no gradient, so it does not propagate liveness.
  size_t n = fwd.nodes.size();
  std::vector<bool> live(n, false);
  std::vector<int> work;
  auto mark = [&](int id) {
    if (!live[size_t(id)]) {
      live[size_t(id)] = true;
      work.push_back(id);
    }
  };
  for (const Output &o : fwd.outputs)
    mark(o.node);
  while (!work.empty()) {
    int id = work.back();
    work.pop_back();
    const Node &node = fwd.node(id);
    if (node.op == Op::State)
      mark(fwd.stateUpdates[size_t(node.index)]);
    if (!passesGradient(node.op))
      continue;
    for (size_t k = 0; k < node.operands.size(); ++k)
      if (!(node.op == Op::Gather && k == 1))
        mark(node.operands[k]);
  }
  bool ok = true;
  std::vector<bool> reported(fwd.params.size(), false);
  for (size_t i = 0; i < n; ++i) {
    const Node &node = fwd.nodes[i];
    if (node.op != Op::Param || live[i] || reported[size_t(node.index)] ||
        fwd.params[size_t(node.index)].isMask())
      continue;
    reported[size_t(node.index)] = true;
    const Variable &p = fwd.params[size_t(node.index)];
    diags.error(p.loc,
                "param '" + p.name +
                    "' can never receive a gradient: no output depends on it at any step "
                    "(it only reaches outputs through 'detach', or not at all); make it a const "
                    "or use it");
    ok = false;
  }
  return ok;
}
