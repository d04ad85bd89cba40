//===- IR.cpp - The step-graph IR: shapes, verifier, printers ---------------===//
//
// Implements the shape rules of every op (shared by the verifier), the verifier itself, and the
// text and Graphviz printers.
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/IR.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/SourceMgr.h"

#include <algorithm>
#include <cstdlib>

using namespace dopa;
using namespace dopa::ir;

int64_t ir::numElements(const Shape &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::string ir::shapeStr(const Shape &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

int Graph::add(Node node) {
  nodes.push_back(std::move(node));
  return int(nodes.size()) - 1;
}

namespace {
/// The language's broadcast of two shapes (sema::broadcastDims); false when they do not broadcast.
bool broadcastShapes(const Shape &a, const Shape &b, Shape &out) {
  llvm::SmallVector<int64_t, 4> dims;
  if (!dopa::sema::broadcastDims(a, b, dims))
    return false;
  out.assign(dims.begin(), dims.end());
  return true;
}

/// The columns of Ops.def agree with each other (checked when this file compiles).
constexpr bool opTableIsConsistent() {
  for (const OpInfo &info : kOpInfo) {
    bool leaf = info.kind == OpKind::Leaf;
    int elementwiseArity = info.kind == OpKind::Unary     ? 1
                           : info.kind == OpKind::Binary  ? 2
                           : info.kind == OpKind::Ternary ? 3
                                                          : -2;
    if (leaf != (info.arity == 0) || (info.batchedLeaf && !leaf))
      return false;
    if (leaf && (info.flops != 0 || info.passesGradient || info.inlinable))
      return false;
    if (elementwiseArity != -2 && (info.arity != elementwiseArity || !info.inlinable))
      return false;
  }
  return true;
}
static_assert(opTableIsConsistent(), "Ops.def: inconsistent columns");

/// Leaves carry their shape, or take it from the variable they read.
std::string inferLeafShape(const Graph &g, const Node &n, Shape &want) {
  switch (n.op) {
  case Op::Const:
  case Op::FwdValue:
  case Op::GradOutput:
    want = n.shape;
    return n.op == Op::Const || n.index >= 0 ? "" : "missing index";
  case Op::Param:
    if (n.index < 0 || size_t(n.index) >= g.params.size())
      return "param index out of range";
    want = g.params[n.index].shape;
    return {};
  case Op::Input:
    if (n.index < 0 || size_t(n.index) >= g.inputs.size())
      return "input index out of range";
    want = g.inputs[n.index].shape;
    return {};
  case Op::State:
  case Op::GradState:
    if (n.index < 0 || size_t(n.index) >= g.states.size())
      return "state index out of range";
    want = g.states[n.index].shape;
    return {};
  default: return "not a leaf";
  }
}

std::string inferElementwiseShape(const Graph &g, const Node &n, Shape &want) {
  auto sh = [&](size_t i) -> const Shape & { return g.node(n.operands[i]).shape; };
  switch (opKind(n.op)) {
  case OpKind::Ternary:
    if (!sh(1).empty() || !sh(2).empty())
      return "clip bounds must be scalars";
    want = sh(0);
    return {};
  case OpKind::Binary:
    if (!broadcastShapes(sh(0), sh(1), want))
      return "operands do not broadcast";
    return {};
  default: // unary
    want = sh(0);
    return {};
  }
}

std::string inferProductShape(const Graph &g, const Node &n, Shape &want) {
  auto sh = [&](size_t i) -> const Shape & { return g.node(n.operands[i]).shape; };
  if (n.op == Op::Outer) {
    if (sh(0).size() != 1 || sh(1).size() != 1)
      return "outer needs vectors";
    want = {sh(0)[0], sh(1)[0]};
    return {};
  }
  const Shape &a = sh(0), &b = sh(1);
  if (a.empty() || b.empty() || a.size() > 2 || b.size() > 2 || a.back() != b.front())
    return "matmul shapes do not agree";
  if (a.size() == 2)
    want.push_back(a[0]);
  if (b.size() == 2)
    want.push_back(b[1]);
  return {};
}

std::string inferReductionShape(const Graph &g, const Node &n, Shape &want) {
  auto sh = [&](size_t i) -> const Shape & { return g.node(n.operands[i]).shape; };
  switch (n.op) {
  case Op::SumAll: return {};
  case Op::SumAxis:
    if (n.index < 0 || size_t(n.index) >= sh(0).size())
      return "axis out of range";
    want = sh(0);
    want.erase(want.begin() + n.index);
    return {};
  case Op::ReduceTo: {
    Shape b;
    want = n.shape;
    return broadcastShapes(n.shape, sh(0), b) && b == sh(0)
               ? ""
               : "reduce_to target does not broadcast to the operand";
  }
  default: return "not a reduction";
  }
}

/// Slice and SliceGrad: the part of the full shape that `attrs` select.
std::string inferSliceShape(const Graph &g, const Node &n, Shape &want) {
  auto sh = [&](size_t i) -> const Shape & { return g.node(n.operands[i]).shape; };
  const Shape &full = n.op == Op::Slice ? sh(0) : n.shape;
  size_t r = full.size();
  if (n.attrs.size() != 3 * r)
    return "slice attributes do not match the rank";
  Shape part;
  for (size_t i = 0; i < r; ++i) {
    int64_t lo = n.attrs[i], hi = n.attrs[r + i];
    if (lo < 0 || hi > full[i] || lo >= hi)
      return "slice bounds out of range";
    if (n.attrs[2 * r + i])
      part.push_back(hi - lo);
    else if (hi != lo + 1)
      return "a dropped axis must have extent 1";
  }
  if (n.op == Op::Slice) {
    want = part;
    return {};
  }
  want = n.shape;
  return part == sh(0) ? "" : "slice_grad operand does not match the slice";
}

std::string inferMovementShape(const Graph &g, const Node &n, Shape &want) {
  auto sh = [&](size_t i) -> const Shape & { return g.node(n.operands[i]).shape; };
  switch (n.op) {
  case Op::Transpose:
    if (sh(0).size() != 2)
      return "transpose needs a matrix";
    want = {sh(0)[1], sh(0)[0]};
    return {};
  case Op::Reshape:
    want = n.shape;
    return numElements(n.shape) == numElements(sh(0)) ? "" : "reshape changes the element count";
  case Op::BroadcastTo: {
    Shape b;
    want = n.shape;
    return broadcastShapes(n.shape, sh(0), b) && b == n.shape
               ? ""
               : "operand does not broadcast to the target";
  }
  case Op::Concat: {
    int64_t total = 0;
    for (size_t i = 0; i < n.operands.size(); ++i) {
      if (sh(i).size() != 1)
        return "concat needs vectors";
      total += sh(i)[0];
    }
    want = {total};
    return {};
  }
  case Op::Slice:
  case Op::SliceGrad: return inferSliceShape(g, n, want);
  case Op::Gather:
    if (sh(0).size() != 2 || !sh(1).empty())
      return "gather needs a table and a scalar index";
    if (g.node(n.operands[1]).op != Op::Input || !g.inputs[g.node(n.operands[1]).index].isInt)
      return "gather's index must be an int input";
    want = {sh(0)[1]};
    return {};
  default: return "not a data movement op";
  }
}

} // namespace

std::string ir::inferShape(const Graph &g, const Node &n, Shape &want) {
  want.clear();
  switch (opKind(n.op)) {
  case OpKind::Leaf: return inferLeafShape(g, n, want);
  case OpKind::Unary:
  case OpKind::Binary:
  case OpKind::Ternary: return inferElementwiseShape(g, n, want);
  case OpKind::Product: return inferProductShape(g, n, want);
  case OpKind::Reduction: return inferReductionShape(g, n, want);
  case OpKind::Movement: return inferMovementShape(g, n, want);
  case OpKind::Normalization: // softmax, log-softmax
    if (g.node(n.operands[0]).shape.size() != 1)
      return "softmax needs a vector";
    want = g.node(n.operands[0]).shape;
    return {};
  }
  return "unknown op";
}

void ir::deriveNode(const Graph &g, Node &proto) {
  for (int o : proto.operands)
    proto.batched |= g.node(o).batched;
  if (isBatchedLeaf(proto.op))
    proto.batched = true;
  Shape shape;
  std::string err = inferShape(g, proto, shape);
  if (!err.empty()) {
    llvm::errs() << "internal error: building " << opName(proto.op) << ": " << err << "\n";
    std::abort();
  }
  proto.shape = std::move(shape);
}

int ir::append(Graph &g, Node proto) {
  deriveNode(g, proto);
  return g.add(std::move(proto));
}

Graph ir::withoutDeadNodes(const Graph &g) {
  std::vector<char> live(g.nodes.size(), 0);
  for (int u : g.stateUpdates)
    live[size_t(u)] = 1;
  for (const Output &o : g.outputs)
    live[size_t(o.node)] = 1;
  for (int grad : g.stateGrads)
    if (grad >= 0)
      live[size_t(grad)] = 1;
  for (const ParamGrad &grad : g.paramGrads) {
    live[size_t(grad.node)] = 1;
    if (grad.rowIndex >= 0)
      live[size_t(grad.rowIndex)] = 1;
  }
  for (int grad : g.inputGrads)
    if (grad >= 0)
      live[size_t(grad)] = 1;
  for (size_t i = g.nodes.size(); i-- > 0;) // operands precede their users
    if (live[i])
      for (int o : g.nodes[i].operands)
        live[size_t(o)] = 1;
  Graph out = g;
  out.nodes.clear();
  std::vector<int> remap(g.nodes.size(), -1);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!live[i])
      continue;
    Node n = g.nodes[i];
    for (int &o : n.operands)
      o = remap[size_t(o)];
    remap[i] = out.add(std::move(n));
  }
  remapRoots(out, remap);
  return out;
}

void ir::remapRoots(Graph &g, const std::vector<int> &remap) {
  auto to = [&](int id) { return id < 0 ? id : remap[size_t(id)]; };
  for (int &u : g.stateUpdates)
    u = to(u);
  for (Output &o : g.outputs)
    o.node = to(o.node);
  for (int &grad : g.stateGrads)
    grad = to(grad);
  for (ParamGrad &grad : g.paramGrads) {
    grad.node = to(grad.node);
    grad.rowIndex = to(grad.rowIndex);
  }
  for (int &grad : g.inputGrads)
    grad = to(grad);
}

Node ir::forwardReference(const Graph &forward, int id) {
  const Node &f = forward.node(id);
  Node n{f.op};
  n.loc = f.loc;
  n.name = f.name;
  n.shape = f.shape;
  switch (f.op) {
  case Op::Const: n.value = f.value; break;
  case Op::Param:
  case Op::Input: n.index = f.index; break;
  default:
    n.op = Op::FwdValue;
    n.index = id;
    n.batched = f.batched;
    break;
  }
  return n;
}

const Readout *ir::readoutOf(const Graph &g, size_t k) {
  for (const Readout &r : g.readouts)
    if (size_t(r.output) == k)
      return &r;
  return nullptr;
}

Shape ir::outputShape(const Graph &g, size_t k) {
  if (const Readout *r = readoutOf(g, k))
    return {g.params[size_t(r->weight)].shape[0]};
  return g.node(g.outputs[k].node).shape;
}

bool ir::verify(const Graph &g, llvm::raw_ostream &os) {
  bool ok = true;
  auto fail = [&](int id, const llvm::Twine &msg) {
    os << "ir verifier: " << g.name << (g.isBackward ? " (backward)" : "") << ": %" << id << ": "
       << msg << "\n";
    ok = false;
  };
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &n = g.nodes[i];
    int expected = opArity(n.op);
    if ((expected >= 0 && int(n.operands.size()) != expected) ||
        (expected < 0 && n.operands.empty())) {
      fail(int(i), llvm::Twine(opName(n.op)) + " has the wrong number of operands");
      continue;
    }
    bool operandsOk = true, batched = false;
    for (int o : n.operands) {
      if (o < 0 || size_t(o) >= i) {
        fail(int(i), "operand %" + llvm::Twine(o) + " is not defined before its use");
        operandsOk = false;
      } else {
        batched |= g.nodes[size_t(o)].batched;
      }
    }
    if (!operandsOk)
      continue;
    bool backwardOnly = n.op == Op::FwdValue || n.op == Op::GradOutput || n.op == Op::GradState;
    if (backwardOnly && !g.isBackward)
      fail(int(i), llvm::Twine(opName(n.op)) + " in a forward graph");
    if (g.isBackward && n.op == Op::State)
      fail(int(i), "a backward graph reads states through fwd values");
    Shape want;
    std::string err = inferShape(g, n, want);
    if (err.empty() && want != n.shape)
      err = "shape " + shapeStr(n.shape) + " should be " + shapeStr(want);
    if (!err.empty())
      fail(int(i), llvm::Twine(opName(n.op)) + ": " + err);
    bool leafBatched = isBatchedLeaf(n.op);
    if (n.operands.empty() && n.op != Op::FwdValue && n.batched != leafBatched)
      fail(int(i), "wrong batched flag on a leaf");
    if (!n.operands.empty() && n.batched != batched)
      fail(int(i), "batched flag does not follow the operands");
  }
  auto checkRef = [&](int node, const Shape &shape, const llvm::Twine &what) {
    if (node < 0 || size_t(node) >= g.nodes.size())
      fail(node, what + " refers to a missing node");
    else if (g.nodes[size_t(node)].shape != shape)
      fail(node, what + " has shape " + shapeStr(g.nodes[size_t(node)].shape) + ", expected " +
                     shapeStr(shape));
  };
  if (!g.isBackward) {
    if (g.stateUpdates.size() != g.states.size())
      fail(-1, "every state needs exactly one update");
    for (size_t s = 0; s < g.stateUpdates.size() && s < g.states.size(); ++s)
      checkRef(g.stateUpdates[s], g.states[s].shape, "update of state '" + g.states[s].name + "'");
    for (const Output &o : g.outputs)
      if (o.node < 0 || size_t(o.node) >= g.nodes.size())
        fail(o.node, "output '" + o.name + "' refers to a missing node");
    std::vector<char> seen(g.outputs.size(), 0);
    for (const Readout &r : g.readouts) {
      if (r.output < 0 || size_t(r.output) >= g.outputs.size() || seen[size_t(r.output)]++) {
        fail(-1, "a readout refers to a missing output or repeats one");
        continue;
      }
      const Output &o = g.outputs[size_t(r.output)];
      if (r.weight < 0 || size_t(r.weight) >= g.params.size() ||
          g.params[size_t(r.weight)].shape.size() != 2) {
        fail(o.node, "readout of '" + o.name + "' needs a matrix parameter as its weight");
        continue;
      }
      const Shape &w = g.params[size_t(r.weight)].shape;
      if (o.node >= 0 && size_t(o.node) < g.nodes.size())
        checkRef(o.node, Shape{w[1]}, "the input of the readout of '" + o.name + "'");
      if (r.bias >= 0 &&
          (size_t(r.bias) >= g.params.size() || g.params[size_t(r.bias)].shape != Shape{w[0]}))
        fail(o.node, "readout of '" + o.name + "' has a bias of the wrong shape");
    }
  } else {
    if (g.stateGrads.size() != g.states.size())
      fail(-1, "every state needs a gradient slot");
    for (size_t s = 0; s < g.stateGrads.size() && s < g.states.size(); ++s)
      if (g.stateGrads[s] >= 0)
        checkRef(g.stateGrads[s], g.states[s].shape,
                 "gradient of state '" + g.states[s].name + "'");
    if (!g.inputGrads.empty() && g.inputGrads.size() != g.inputs.size())
      fail(-1, "input gradients need one slot per input");
    for (size_t k = 0; k < g.inputGrads.size() && k < g.inputs.size(); ++k)
      if (g.inputGrads[k] >= 0)
        checkRef(g.inputGrads[k], g.inputs[k].shape,
                 "gradient of input '" + g.inputs[k].name + "'");
    for (const ParamGrad &pg : g.paramGrads) {
      if (pg.param < 0 || size_t(pg.param) >= g.params.size()) {
        fail(pg.node, "gradient of a missing param");
        continue;
      }
      Shape shape = g.params[pg.param].shape;
      if (pg.rowIndex >= 0)
        shape.erase(shape.begin());
      checkRef(pg.node, shape, "gradient of param '" + g.params[pg.param].name + "'");
    }
  }
  return ok;
}

std::vector<int64_t> ir::gatherTableRows(const Graph &g) {
  // An input that indexes several tables (an embedding and a mask over the vocabulary) is
  // checked against the smallest.
  std::vector<int64_t> rows(g.inputs.size(), 0);
  for (const Node &n : g.nodes)
    if (n.op == Op::Gather && g.node(n.operands[1]).op == Op::Input) {
      int64_t &r = rows[size_t(g.node(n.operands[1]).index)];
      int64_t table = g.node(n.operands[0]).shape[0];
      r = r == 0 ? table : std::min(r, table);
    }
  return rows;
}

FlopCount ir::countFlops(const Graph &g) {
  FlopCount count;
  for (const Node &n : g.nodes) {
    auto in = [&](size_t k) -> const Shape & { return g.node(n.operands[k]).shape; };
    // Ops.def's Flops column counts per output element, but per multiply-add for matmul and per
    // operand element for reductions.
    int64_t units = numElements(n.shape);
    if (n.op == Op::MatMul)
      units *= in(0).back();
    else if (isReduction(n.op))
      units = numElements(in(0));
    (n.batched ? count.perElement : count.shared) += opFlops(n.op) * units;
  }
  // Readouts, done by the runtime: a multiply-add per weight, an add per bias entry.
  for (const Readout &r : g.readouts) {
    const Shape &w = g.params[size_t(r.weight)].shape;
    count.perElement += 2 * w[0] * w[1] + (r.bias >= 0 ? w[0] : 0);
  }
  return count;
}

//===----------------------------------------------------------------------===//
// Printers
//===----------------------------------------------------------------------===//

static std::string initStr(const sema::Init &init) { return init.str(); }

static std::string maskStr(const Variable &v) {
  if (!v.isMask())
    return "";
  std::string s;
  llvm::raw_string_ostream(s) << " mask dropout(" << llvm::format("%g", v.dropout) << ")";
  return s;
}

void ir::print(const Graph &g, const llvm::SourceMgr *sm, llvm::raw_ostream &os) {
  os << (g.isBackward ? "backward step " : "forward step ") << g.name << "\n";
  for (size_t i = 0; i < g.params.size(); ++i)
    os << "  param  $" << i << " " << g.params[i].name << " : " << shapeStr(g.params[i].shape)
       << " " << initStr(g.params[i].init) << maskStr(g.params[i]) << "\n";
  for (size_t i = 0; i < g.inputs.size(); ++i)
    os << "  input  $" << i << " " << g.inputs[i].name << " : "
       << (g.inputs[i].isInt ? "int" : shapeStr(g.inputs[i].shape)) << maskStr(g.inputs[i]) << "\n";
  for (size_t i = 0; i < g.states.size(); ++i)
    os << "  state  $" << i << " " << g.states[i].name << " : " << shapeStr(g.states[i].shape)
       << " " << initStr(g.states[i].init) << (g.states[i].bf16 ? " (stored in bf16)" : "") << "\n";
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &n = g.nodes[i];
    os << "  %" << i << " = " << opName(n.op);
    switch (n.op) {
    case Op::Const: os << " " << llvm::format("%g", n.value); break;
    case Op::Param: os << " " << g.params[n.index].name; break;
    case Op::Input: os << " " << g.inputs[n.index].name; break;
    case Op::State:
    case Op::GradState: os << " " << g.states[n.index].name; break;
    case Op::FwdValue: os << " %" << n.index; break;
    case Op::GradOutput: os << " #" << n.index; break;
    case Op::SumAxis: os << " axis " << n.index; break;
    default: break;
    }
    for (size_t k = 0; k < n.operands.size(); ++k)
      os << (k ? ", %" : " %") << n.operands[k];
    if (n.op == Op::Slice || n.op == Op::SliceGrad) {
      size_t r = n.attrs.size() / 3;
      os << " [";
      for (size_t a = 0; a < r; ++a)
        os << (a ? ", " : "") << n.attrs[a] << ":" << n.attrs[r + a]
           << (n.attrs[2 * r + a] ? "" : "!");
      os << "]";
    }
    os << " : " << shapeStr(n.shape) << (n.batched ? "" : " shared");
    if (!n.name.empty() || (sm && n.loc.isValid())) {
      os << "  //";
      if (!n.name.empty())
        os << " " << n.name;
      if (sm && n.loc.isValid()) {
        auto [line, col] = sm->getLineAndColumn(n.loc);
        os << " @" << line << ":" << col;
      }
    }
    os << "\n";
  }
  if (!g.isBackward) {
    for (size_t s = 0; s < g.stateUpdates.size(); ++s)
      os << "  update " << g.states[s].name << "' = %" << g.stateUpdates[s] << "\n";
    for (size_t k = 0; k < g.outputs.size(); ++k) {
      os << "  output #" << k << " " << g.outputs[k].name << " = ";
      if (const Readout *r = readoutOf(g, k)) {
        os << "batched " << g.params[size_t(r->weight)].name << " @ %" << g.outputs[k].node;
        if (r->bias >= 0)
          os << " + " << g.params[size_t(r->bias)].name;
        os << " : " << shapeStr(outputShape(g, k)) << "\n";
      } else {
        os << "%" << g.outputs[k].node << "\n";
      }
    }
  } else {
    for (size_t s = 0; s < g.stateGrads.size(); ++s) {
      os << "  grad state " << g.states[s].name << " = ";
      if (g.stateGrads[s] < 0)
        os << "0\n";
      else
        os << "%" << g.stateGrads[s] << "\n";
    }
    for (size_t k = 0; k < g.inputGrads.size(); ++k) {
      os << "  grad input " << g.inputs[k].name << " = ";
      if (g.inputGrads[k] < 0)
        os << "0\n";
      else
        os << "%" << g.inputGrads[k] << "\n";
    }
    for (const ParamGrad &pg : g.paramGrads) {
      os << "  grad param " << g.params[pg.param].name << " += %" << pg.node;
      if (pg.rowIndex >= 0)
        os << " at row %" << pg.rowIndex;
      os << "\n";
    }
  }
}

void ir::printDot(const Graph &fwd, const Graph &bwd, llvm::raw_ostream &os) {
  os << "digraph \"" << fwd.name
     << "\" {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n";
  auto label = [](const Graph &g, const Node &n) {
    std::string l = opName(n.op);
    if (n.op == Op::Param)
      l += "\\n" + g.params[n.index].name;
    else if (n.op == Op::Input)
      l += "\\n" + g.inputs[n.index].name;
    else if (n.op == Op::State || n.op == Op::GradState)
      l += "\\n" + g.states[n.index].name;
    else if (n.op == Op::FwdValue)
      l += " %" + std::to_string(n.index) + (n.name.empty() ? "" : "\\n" + n.name);
    else if (n.op == Op::Const) {
      std::string v;
      llvm::raw_string_ostream vs(v);
      vs << llvm::format("%g", n.value);
      l += " " + v;
    } else if (!n.name.empty())
      l += "\\n" + n.name;
    return l + "\\n" + shapeStr(n.shape);
  };
  auto style = [](const Node &n) -> const char * {
    switch (n.op) {
    case Op::Param: return ", shape=box, style=filled, fillcolor=\"#ffe9a8\"";
    case Op::Input: return ", shape=box, style=filled, fillcolor=\"#c9e7ff\"";
    case Op::State:
    case Op::GradState: return ", shape=box, style=filled, fillcolor=\"#d5f5d0\"";
    case Op::FwdValue:
    case Op::GradOutput: return ", shape=box, style=dashed";
    default: return "";
    }
  };
  for (const Graph *g : {&fwd, &bwd}) {
    const char *prefix = g->isBackward ? "b" : "f";
    os << "  subgraph cluster_" << prefix << " {\n    label=\""
       << (g->isBackward ? "backward step" : "forward step") << "\";\n";
    for (size_t i = 0; i < g->nodes.size(); ++i)
      os << "    " << prefix << i << " [label=\""
         << (g->isBackward ? "" : "%" + std::to_string(i) + " ") << label(*g, g->nodes[i]) << "\""
         << style(g->nodes[i]) << "];\n";
    for (size_t i = 0; i < g->nodes.size(); ++i)
      for (int o : g->nodes[i].operands)
        os << "    " << prefix << o << " -> " << prefix << i << ";\n";
    if (!g->isBackward) {
      for (size_t s = 0; s < g->stateUpdates.size(); ++s) {
        os << "    upd" << s << " [label=\"" << g->states[s].name
           << "'\", shape=box, style=filled, fillcolor=\"#d5f5d0\"];\n";
        os << "    f" << g->stateUpdates[s] << " -> upd" << s << ";\n";
      }
      for (size_t k = 0; k < g->outputs.size(); ++k) {
        os << "    out" << k << " [label=\"output\\n"
           << g->outputs[k].name << "\", shape=oval, style=filled, fillcolor=\"#f8c8c8\"];\n";
        os << "    f" << g->outputs[k].node << " -> out" << k << ";\n";
      }
    } else {
      for (size_t st = 0; st < g->stateGrads.size(); ++st) {
        if (g->stateGrads[st] < 0)
          continue;
        os << "    sg" << st << " [label=\"d " << g->states[st].name
           << "\\n(to the step before)\", shape=box, style=filled, fillcolor=\"#d5f5d0\"];\n";
        os << "    b" << g->stateGrads[st] << " -> sg" << st << ";\n";
      }
      for (size_t p = 0; p < g->paramGrads.size(); ++p) {
        os << "    pg" << p << " [label=\"d " << g->params[g->paramGrads[p].param].name
           << "\", shape=box, style=filled, fillcolor=\"#ffe9a8\"];\n";
        os << "    b" << g->paramGrads[p].node << " -> pg" << p << ";\n";
      }
    }
    os << "  }\n";
  }
  os << "}\n";
}
