//===- Simplify.cpp - Fewer operations per trace element in the backward step ===//
//
// The simplifyBackward pass. Autodiff builds a backward step from one vector-Jacobian product per
// forward op, and for a plastic network several of them land in the loop over the H x H traces as
// work that a vector-sized computation could do instead. Two rewrites, both exact in real
// arithmetic (float results change by rounding only), move that work out of the matrix loop:
//
//   matmul(X * s, y)  ->  matmul(X, y) * s      (s a scalar, X a matrix, y a vector; and
//   matmul(y, X * s)  ->  matmul(y, X) * s       the same with the factors swapped)
//
//   sum(D * outer(a, b))  ->  sum(a * matmul(D, b))    (D and outer(a, b) of one shape, the
//                                                        sum down to one element)
//
// The first is the gradient of a scaled outer product (`eta * outer(hn, h)`) reaching its vectors;
// the second is the gradient of the learned rate `eta` itself. Together they remove four of the
// roughly twenty operations per trace element of the Backpropamine networks' backward pass (the
// sums share one matmul(D, b), merged by common-subexpression elimination, which the pass does for
// the whole graph). The outer product may be a forward value (read through FwdValue): its vectors
// are then read from the forward pass instead. Nodes the rewrites leave unused are dropped.
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Passes.h"

#include <cstring>
#include <map>
#include <tuple>

using namespace dopa;
using namespace dopa::ir;

namespace {

/// What makes two nodes compute the same value (everything but the location and the name).
struct NodeKey {
  Op op;
  std::vector<int> operands;
  Shape shape;
  bool batched;
  uint64_t valueBits;
  int index;
  std::vector<int64_t> attrs;
  bool operator<(const NodeKey &o) const {
    return std::tie(op, operands, shape, batched, valueBits, index, attrs) <
           std::tie(o.op, o.operands, o.shape, o.batched, o.valueBits, o.index, o.attrs);
  }
};

class Simplifier {
public:
  Simplifier(const Graph &forward, const Graph &backward) : fwd(forward), bwd(backward) {}
  Graph run();

private:
  /// Append `n` to the output graph, or return the node already there that computes the same.
  int emit(Node n);
  int emit(Op op, std::vector<int> operands, llvm::SMLoc loc);
  /// The backward graph's view of forward node `id` (as Differentiator::ref reads it).
  int forwardRef(int id);
  /// `n` (operands already in the output graph), rewritten; returns its node in the output graph.
  int rewrite(Node n);
  int scalarOutOfProduct(const Node &n);
  int sumOfOuterProduct(const Node &n);
  /// The operands (a, b) of the outer product node `id` of the output graph is, directly or as a
  /// forward value; false when it is neither.
  bool outerOperands(int id, int &a, int &b);

  const Node &at(int id) const { return out.node(id); }
  static bool isScalar(const Shape &s) { return numElements(s) == 1 && s.size() <= 1; }

  const Graph &fwd, &bwd;
  Graph out;
  std::map<NodeKey, int> known;
};

int Simplifier::emit(Node n) {
  // As ir::append derives them, so that a node and its rewritten twin get one key.
  deriveNode(out, n);
  uint64_t bits = 0;
  static_assert(sizeof(bits) == sizeof(n.value));
  std::memcpy(&bits, &n.value, sizeof(bits));
  NodeKey key{n.op, n.operands, n.shape, n.batched, bits, n.index, n.attrs};
  auto it = known.find(key);
  if (it != known.end())
    return it->second;
  int id = out.add(std::move(n));
  known.emplace(std::move(key), id);
  return id;
}

int Simplifier::emit(Op op, std::vector<int> operands, llvm::SMLoc loc) {
  Node n{op};
  n.operands = std::move(operands);
  n.loc = loc;
  return emit(std::move(n));
}

int Simplifier::forwardRef(int id) { return emit(forwardReference(fwd, id)); }

bool Simplifier::outerOperands(int id, int &a, int &b) {
  const Node &n = at(id);
  if (n.op == Op::Outer) {
    a = n.operands[0];
    b = n.operands[1];
    return true;
  }
  if (n.op != Op::FwdValue || fwd.node(n.index).op != Op::Outer)
    return false;
  const Node &f = fwd.node(n.index);
  a = forwardRef(f.operands[0]);
  b = forwardRef(f.operands[1]);
  return true;
}

// matmul(X * s, y) -> matmul(X, y) * s, and matmul(y, X * s) -> matmul(y, X) * s.
int Simplifier::scalarOutOfProduct(const Node &n) {
  for (size_t k = 0; k < 2; ++k) {
    const Node &scaled = at(n.operands[k]);
    if (scaled.op != Op::Mul || scaled.shape.size() != 2 || at(n.operands[1 - k]).shape.size() != 1)
      continue;
    for (size_t s = 0; s < 2; ++s) {
      int matrix = scaled.operands[1 - s], scalar = scaled.operands[s];
      if (!isScalar(at(scalar).shape) || at(matrix).shape != scaled.shape)
        continue;
      std::vector<int> operands = n.operands;
      operands[k] = matrix;
      int product = emit(Op::MatMul, std::move(operands), n.loc);
      return emit(Op::Mul, {product, scalar}, n.loc);
    }
  }
  return -1;
}

// sum(D * outer(a, b)) -> sum(a * matmul(D, b)), the sum down to one element.
int Simplifier::sumOfOuterProduct(const Node &n) {
  if (!isScalar(n.shape))
    return -1;
  const Node &product = at(n.operands[0]);
  if (product.op != Op::Mul || product.shape.size() != 2)
    return -1;
  for (size_t k = 0; k < 2; ++k) {
    int weights = product.operands[1 - k], a = -1, b = -1;
    if (at(weights).shape != product.shape || at(product.operands[k]).shape != product.shape ||
        !outerOperands(product.operands[k], a, b))
      continue;
    int rows = emit(Op::MatMul, {weights, b}, n.loc);
    int terms = emit(Op::Mul, {a, rows}, n.loc);
    Node sum{n.op};
    sum.operands = {terms};
    sum.loc = n.loc;
    sum.shape = n.shape;
    return emit(std::move(sum));
  }
  return -1;
}

int Simplifier::rewrite(Node n) {
  int id = -1;
  if (n.op == Op::MatMul)
    id = scalarOutOfProduct(n);
  else if (n.op == Op::ReduceTo || n.op == Op::SumAll)
    id = sumOfOuterProduct(n);
  return id >= 0 ? id : emit(std::move(n));
}

Graph Simplifier::run() {
  out = bwd;
  out.nodes.clear();
  std::vector<int> remap(bwd.nodes.size(), -1);
  for (size_t i = 0; i < bwd.nodes.size(); ++i) {
    Node n = bwd.nodes[i];
    for (int &o : n.operands)
      o = remap[size_t(o)];
    remap[i] = rewrite(std::move(n));
  }
  remapRoots(out, remap);
  return withoutDeadNodes(out);
}

} // namespace

Graph dopa::simplifyBackward(const Graph &forward, const Graph &backward) {
  return Simplifier(forward, backward).run();
}
