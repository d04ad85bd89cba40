//===- IR.h - The step-graph IR ---------------------------------------------===//
//
// One time step of a network as a dataflow graph over per-batch-element tensors. Nodes are kept in
// topological order (every operand precedes its user) and are never mutated after creation, so a
// Graph is a value that passes transform into new Graphs. Layers are inlined; names are qualified.
//
// A forward graph reads parameters (shared by the batch), inputs (per step) and states (the value
// at the start of the step) and defines outputs and the next value of every state. A backward graph
// (from Autodiff.h) reads forward values by reference (FwdValue), the gradients of the step's
// outputs (GradOutput) and of the next states (GradState), and defines the gradients of the states
// at the start of the step and each parameter's gradient contribution.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/dsl/Sema.h"

#include "llvm/Support/SMLoc.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <string>
#include <vector>

namespace dopa::ir {

using Shape = std::vector<int64_t>;

int64_t numElements(const Shape &shape);
std::string shapeStr(const Shape &shape);

enum class Op {
  // Leaves.
  Const,      // value, filled to `shape`
  Param,      // index into Graph::params
  Input,      // index into Graph::inputs
  State,      // index into Graph::states (value at the start of the step)
  FwdValue,   // backward only: the value of forward node `index` at this step
  GradOutput, // backward only: dLoss/d output `index` at this step
  GradState,  // backward only: dLoss/d (next value of state `index`)
  // Element-wise, with NumPy broadcasting over operands.
  Neg,
  Tanh,
  Sigmoid,
  Relu,
  Exp,
  Log,
  Abs,
  Sqrt,
  Step, // 1 where x > 0, else 0 (relu')
  Sign, // -1, 0, 1 (abs')
  Add,
  Sub,
  Mul,
  Div,
  Min,
  Max,
  LessEq,  // 1 where a <= b, else 0
  Clip,    // (x, lo, hi) -> min(max(x, lo), hi)
  InRange, // (x, lo, hi) -> 1 where lo <= x <= hi (clip'; PyTorch clamp passes the gradient there)
  // Structure.
  MatMul,      // [M,K]@[K] [M,K]@[K,N] [K]@[K,N] [K]@[K]
  Outer,       // [M], [N] -> [M, N]
  Transpose,   // [M, N] -> [N, M]
  Reshape,     // same elements, new shape
  SumAll,      // -> []
  SumAxis,     // drop axis `index`
  ReduceTo,    // sum a broadcast value back down to `shape` (backward of broadcasting)
  BroadcastTo, // expand to `shape` (backward of sums)
  Concat,      // vectors
  Slice,       // attrs: lo[r], hi[r], keep[r] (keep 0 drops the axis)
  SliceGrad,   // embed a sliced gradient into zeros of `shape` (same attrs as the Slice)
  Softmax,
  LogSoftmax, // over a vector
  Gather,     // (table [V, D], index) -> row [D]; index is an int input
  Detach,     // identity forward, no gradient
};

const char *opName(Op op);
bool isElementwise(Op op);
/// Ops without operands (values from outside the step: constants, parameters, inputs, states, and
/// in backward graphs forward values and incoming gradients).
bool isLeaf(Op op);

struct Node {
  Node() = default;
  explicit Node(Op op) : op(op) {}

  Op op = Op::Const;
  std::vector<int> operands;
  Shape shape;
  bool batched = false; // depends on inputs or states (else identical across the batch)
  double value = 0;     // Const
  int index = -1;       // Param/Input/State/FwdValue/GradOutput/GradState: which; SumAxis: axis
  std::vector<int64_t> attrs; // Slice/SliceGrad: lo..., hi..., keep...
  llvm::SMLoc loc;            // where in the spec it comes from
  std::string name;           // the spec's name for it, when it has one
};

struct Variable {
  std::string name;
  Shape shape;
  bool isInt = false;
  sema::Init init;
  llvm::SMLoc loc;
};

struct Output {
  std::string name;
  int node;
};

/// A contribution to a parameter's gradient: dense, or one row of an embedding table.
struct ParamGrad {
  int param;
  int node;          // dense: shaped like the param; row: shaped like one row
  int rowIndex = -1; // the Input node holding the row index, or -1 for dense
};

struct Graph {
  std::string name; // the network's name
  bool isBackward = false;
  std::vector<Node> nodes;
  std::vector<Variable> params, inputs, states;
  // Forward graphs:
  std::vector<int> stateUpdates; // per state: the node holding its next value
  std::vector<Output> outputs;
  // Backward graphs:
  std::vector<int> stateGrads; // per state: the node holding dLoss/d state, or -1 for zero
  std::vector<ParamGrad> paramGrads;

  int add(Node node);
  const Node &node(int id) const { return nodes[size_t(id)]; }
};

/// The shape node `n` has given its operands (or its own shape, for leaves and shape-carrying ops).
/// Returns an error message, empty when the node is consistent.
std::string inferShape(const Graph &graph, const Node &n, Shape &shape);

/// Append `proto` to the graph with its shape and batched flag derived from its operands. The
/// caller guarantees validity (Sema checked the spec); a violation is an internal error.
int append(Graph &graph, Node proto);

/// Check the invariants of a graph; report violations (as text) to `os`. True when it is valid.
bool verify(const Graph &graph, llvm::raw_ostream &os);

/// Floating-point operations of one step: `perElement` for each batch element, `shared` once for
/// the batch (values that do not vary across it). Conventions: a multiply-add counts 2, every other
/// arithmetic or transcendental element-wise operation 1, data movement (reshape, slice, gather,
/// broadcast) 0.
struct FlopCount {
  int64_t perElement = 0;
  int64_t shared = 0;
  int64_t forBatch(int64_t batch) const { return perElement * batch + shared; }
};
FlopCount countFlops(const Graph &graph);

/// For each input of a forward graph: the rows of the table it indexes when it feeds a gather
/// (token ids into an embedding), else 0. Index inputs are checked against it before a run.
std::vector<int64_t> gatherTableRows(const Graph &graph);

/// Print a graph as text (dopac --emit=ir / ir-grad).
void print(const Graph &graph, const llvm::SourceMgr *sourceMgr, llvm::raw_ostream &os);

/// Print the forward and backward graphs as one Graphviz digraph (dopac --emit=dot).
void printDot(const Graph &forward, const Graph &backward, llvm::raw_ostream &os);

} // namespace dopa::ir
