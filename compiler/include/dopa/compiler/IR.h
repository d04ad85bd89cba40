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

/// What an op computes, as shape inference and autodiff dispatch on it (Ops.def's Kind column).
enum class OpKind {
  Leaf,          // no operands: a value from outside the step
  Unary,         // element-wise, one operand
  Binary,        // element-wise, two operands with NumPy broadcasting
  Ternary,       // element-wise (x, lo, hi) with scalar bounds
  Product,       // matmul, outer
  Reduction,     // sums
  Movement,      // data movement, no arithmetic
  Normalization, // softmax and log-softmax over a vector
};

/// The ops, one per line of Ops.def (which says what each computes), in its order.
enum class Op {
#define DOPA_OP(Name, ...) Name,
#include "dopa/compiler/Ops.def"
};

/// The properties of an op: one row of Ops.def (see there for the columns).
struct OpInfo {
  const char *name;
  int arity;
  OpKind kind;
  int flops;
  bool passesGradient;
  bool inlinable;
  bool batchedLeaf;
};

inline constexpr OpInfo kOpInfo[] = {
#define DOPA_OP(Name, Spelling, Arity, Kind, Flops, Grad, Inline, Batched)                         \
  {Spelling, Arity, OpKind::Kind, Flops, (Grad) != 0, (Inline) != 0, (Batched) != 0},
#include "dopa/compiler/Ops.def"
};

constexpr const OpInfo &opInfo(Op op) { return kOpInfo[static_cast<size_t>(op)]; }
/// The op's name in printed IR.
constexpr const char *opName(Op op) { return opInfo(op).name; }
/// Number of operands (-1: variadic, at least one).
constexpr int opArity(Op op) { return opInfo(op).arity; }
constexpr OpKind opKind(Op op) { return opInfo(op).kind; }
/// FLOPs per output element (matmul: per multiply-add; reductions: per operand element).
constexpr int opFlops(Op op) { return opInfo(op).flops; }
/// Whether a gradient flows to the operands (not for leaves, detach and piecewise-constant ops).
constexpr bool passesGradient(Op op) { return opInfo(op).passesGradient; }
/// Whether fusion computes it as a scalar expression at each index of its own shape.
constexpr bool isInlinable(Op op) { return opInfo(op).inlinable; }
/// Leaves whose value differs across the batch (inputs, states, incoming gradients).
constexpr bool isBatchedLeaf(Op op) { return opInfo(op).batchedLeaf; }
constexpr bool isElementwise(Op op) {
  OpKind kind = opKind(op);
  return kind == OpKind::Unary || kind == OpKind::Binary || kind == OpKind::Ternary;
}
constexpr bool isReduction(Op op) { return opKind(op) == OpKind::Reduction; }
/// Ops without operands (values from outside the step: constants, parameters, inputs, states, and
/// in backward graphs forward values and incoming gradients).
constexpr bool isLeaf(Op op) { return opKind(op) == OpKind::Leaf; }

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
  /// A dropout mask (the spec's `mask`) when >= 0: the probability of a zero. A mask drawn per
  /// batch element is an input, one shared by the batch a parameter (initialized to 1, dropout
  /// off); neither gets a gradient. The runtime draws them for every training sequence.
  double dropout = -1;
  bool isMask() const { return dropout >= 0; }
  /// A carried product (carryProducts): a state the step reads that the previous step computed,
  /// not one of the network's; the runtime's prologue computes it at the start.
  bool carried = false;
  /// Stored in bfloat16 by the float build (storeTracesInBf16; dopac --trace-precision=bf16,
  /// runtime/include/dopa/runtime/Bf16.h): its next value is rounded by round_bf16.
  bool bf16 = false;
};

struct Output {
  std::string name;
  int node;
};

/// An output computed for the whole batch by the runtime instead of per element (batchReadouts):
/// output `output` is W @ x (+ b), where x is the graph's output node (per element, shape
/// [cols]), W the parameter `weight` ([rows, cols]) and b the parameter `bias` ([rows]; -1 for
/// none). The output the network's users see has shape [rows]; the step kernels write x.
struct Readout {
  int output;
  int weight;
  int bias = -1;
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
  std::vector<Readout> readouts; // outputs the runtime computes for the batch (batchReadouts)
  // Backward graphs:
  std::vector<int> stateGrads; // per state: the node holding dLoss/d state, or -1 for zero
  std::vector<ParamGrad> paramGrads;
  // Only when differentiated with input gradients: per input, the node holding dLoss/d input, or
  // -1 for zero (integer inputs, inputs no output depends on). Empty otherwise.
  std::vector<int> inputGrads;

  int add(Node node);
  const Node &node(int id) const { return nodes[size_t(id)]; }
};

/// The shape node `n` has given its operands (or its own shape, for leaves and shape-carrying ops).
/// Returns an error message, empty when the node is consistent.
std::string inferShape(const Graph &graph, const Node &n, Shape &shape);

/// Give `proto` the shape and batched flag its operands in `graph` imply (as append does, without
/// appending). The caller guarantees validity; a violation is an internal error.
void deriveNode(const Graph &graph, Node &proto);

/// Append `proto` to the graph with its shape and batched flag derived from its operands. The
/// caller guarantees validity (Sema checked the spec); a violation is an internal error.
int append(Graph &graph, Node proto);

/// A graph without the nodes that nothing it gives reads (transitively): state updates and outputs
/// of a forward graph, state, parameter and input gradients of a backward graph. The others keep
/// their order (passes that replace nodes use it to drop what they left behind).
Graph withoutDeadNodes(const Graph &graph);

/// Point a graph's roots (state updates and outputs; state, parameter and input gradients, row
/// indices included) at their nodes' new ids; `remap` maps old ids to new ones.
void remapRoots(Graph &graph, const std::vector<int> &remap);

/// How a graph built from forward graph `forward` (its backward) reads forward node `id`:
/// constants, parameters and inputs as themselves, every other value (a state at the start of
/// the step, an intermediate value) as a FwdValue node. Returns the node, to be appended.
Node forwardReference(const Graph &forward, int id);

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

/// The shape of output `k` as the network's users see it: its node's shape, or [rows] of its
/// readout's weight.
Shape outputShape(const Graph &graph, size_t k);
/// The readout of output `k`, or null when the step kernels compute it.
const Readout *readoutOf(const Graph &graph, size_t k);

/// For each input of a forward graph: the rows of the table it indexes when it feeds a gather
/// (token ids into an embedding), else 0. Index inputs are checked against it before a run.
std::vector<int64_t> gatherTableRows(const Graph &graph);

/// Print a graph as text (dopac --emit=ir / ir-grad).
void print(const Graph &graph, const llvm::SourceMgr *sourceMgr, llvm::raw_ostream &os);

/// Print the forward and backward graphs as one Graphviz digraph (dopac --emit=dot).
void printDot(const Graph &forward, const Graph &backward, llvm::raw_ostream &os);

} // namespace dopa::ir
