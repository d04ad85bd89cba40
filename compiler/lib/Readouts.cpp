//===- Readouts.cpp - Batched readouts: shared-weight output layers as GEMMs ---===//
//
// The batchReadouts pass. A forward output of the form W @ x (+ b) with W and b parameters and x
// a per-element vector, read by nothing but the output, is taken out of the step kernels: the
// kernels write x and the runtime computes the output for the whole batch at once (a GEMM that
// reads W once per step instead of once per element), and in the backward dx = dy W and
// dW += dy^T x, db += sum dy over the batch and the steps. For a language model's decoder (a
// 10,000 x 200 matrix) this is the difference between streaming 8 MB per token and per batch.
// The pass is a pure function from a forward graph to a new one: the dead product, bias and
// parameter reads are dropped and the rest is copied in order; Graph::readouts records what went.
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Passes.h"

#include <vector>

using namespace dopa;
using namespace dopa::ir;

namespace {

/// The readout output `k` of `g` would become under `minWeightNumel`, or nullopt: the output node
/// is matmul(param W, x) or add(matmul(param W, x), param b) (either operand order), W [R, C] is
/// a parameter of at least minWeightNumel elements, x a per-element [C] vector, and nothing else
/// reads the product or the sum (`uses` counts readers, outputs and state updates included).
std::optional<std::pair<Readout, std::vector<int>>>
matchReadout(const Graph &g, size_t k, const std::vector<int> &uses, int64_t minWeightNumel) {
  int top = g.outputs[k].node;
  const Node &n = g.node(top);
  int product = top, bias = -1;
  std::vector<int> dropped{top};
  if (n.op == Op::Add) {
    for (int side = 0; side < 2; ++side) {
      const Node &p = g.node(n.operands[size_t(side)]);
      const Node &b = g.node(n.operands[size_t(1 - side)]);
      if (p.op == Op::MatMul && b.op == Op::Param && !g.params[size_t(b.index)].isMask()) {
        product = n.operands[size_t(side)];
        bias = n.operands[size_t(1 - side)];
        break;
      }
    }
    if (bias < 0)
      return std::nullopt;
    dropped.push_back(product);
  }
  const Node &mm = g.node(product);
  if (mm.op != Op::MatMul || uses[size_t(product)] != 1 || uses[size_t(top)] != 1)
    return std::nullopt;
  const Node &w = g.node(mm.operands[0]);
  const Node &x = g.node(mm.operands[1]);
  if (w.op != Op::Param || g.params[size_t(w.index)].isMask() || w.shape.size() != 2 ||
      x.shape.size() != 1 || !x.batched || w.batched || numElements(w.shape) < minWeightNumel)
    return std::nullopt;
  if (bias >= 0 && g.node(bias).shape != Shape{w.shape[0]})
    return std::nullopt;
  Readout r{int(k), w.index, bias >= 0 ? g.node(bias).index : -1};
  dropped.push_back(mm.operands[1]); // the new output node (kept: see batchReadouts)
  return std::make_pair(r, dropped);
}

} // namespace

Graph dopa::batchReadouts(const Graph &fwd, int64_t minWeightNumel) {
  if (minWeightNumel < 0 || fwd.isBackward || !fwd.readouts.empty()) // none asked, or done
    return fwd;
  // Readers of every node: operands, outputs and state updates.
  std::vector<int> uses(fwd.nodes.size(), 0);
  for (const Node &n : fwd.nodes)
    for (int o : n.operands)
      ++uses[size_t(o)];
  for (const Output &o : fwd.outputs)
    ++uses[size_t(o.node)];
  for (int u : fwd.stateUpdates)
    ++uses[size_t(u)];

  Graph out = fwd;
  out.readouts.clear();
  std::vector<int> newOutputNode(fwd.outputs.size(), -1);
  for (size_t k = 0; k < fwd.outputs.size(); ++k) {
    auto match = matchReadout(fwd, k, uses, minWeightNumel);
    if (!match)
      continue;
    auto &[readout, nodes] = *match;
    newOutputNode[k] = nodes.back();
    out.readouts.push_back(readout);
  }
  if (out.readouts.empty())
    return out;

  // The outputs now end at the readouts' inputs; the products, biases and weights they read go.
  for (size_t k = 0; k < out.outputs.size(); ++k)
    if (newOutputNode[k] >= 0)
      out.outputs[k].node = newOutputNode[k];
  return withoutDeadNodes(out);
}
