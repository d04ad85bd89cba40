//===- Carry.cpp - Carried products: a step's state-only product computed by the step before ===//
//
// The carryProducts pass. A plastic network's recurrent input, (w + alpha * pw) @ h, reads only
// parameters and states: everything it needs is known at the end of the previous step, when that
// step updates pw in a pass over the same H x H matrices. The pass turns each such product into a
// state of its own (a "carried" state, invisible to the network's users) whose next value the step
// computes from the next values of the states it reads; fusion then puts the product in the same
// loop nest as the trace updates, and the backward's gradient of the product arrives with the
// next step's state gradients instead of after this step's, so the backward needs one pass over
// the traces instead of two. Per element-step the modulated network goes from four H x H passes to
// two (docs/design-notes.md "Carried products").
//
// The step then needs the carried state's value at the start of an episode (or of a recorded
// window): the prologue graph computes every carried state from the user states (and copies the
// user states unchanged), and its gradient returns the carried states' gradients at the start to
// the user states and the parameters. The runtime runs it before the first recorded step and its
// backward after the first step's backward. Both graphs are pure functions of the forward graph.
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Passes.h"

#include <algorithm>
#include <functional>
#include <vector>

using namespace dopa;
using namespace dopa::ir;

namespace {

/// For every node: whether its value depends only on parameters, constants and states (no input),
/// and whether it reads a state of rank 2 or more.
struct Cone {
  std::vector<char> stateOnly, readsMatrixState;
};

Cone analyze(const Graph &g) {
  Cone c;
  c.stateOnly.assign(g.nodes.size(), 0);
  c.readsMatrixState.assign(g.nodes.size(), 0);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node &n = g.nodes[i];
    if (isLeaf(n.op)) {
      c.stateOnly[i] = n.op == Op::Param || n.op == Op::Const || n.op == Op::State;
      c.readsMatrixState[i] = n.op == Op::State && g.states[size_t(n.index)].shape.size() >= 2;
      continue;
    }
    bool only = true, matrix = false;
    for (int o : n.operands) {
      only = only && c.stateOnly[size_t(o)];
      matrix = matrix || c.readsMatrixState[size_t(o)];
    }
    c.stateOnly[i] = only;
    c.readsMatrixState[i] = matrix;
  }
  return c;
}

/// The products to carry: matrix products that vary across the batch, depend on nothing but
/// parameters and states, and read a matrix-shaped state (where a pass over that state happens
/// anyway at the end of the step): `(w + alpha * pw) @ h`, and a bare `hebb @ h` as well. Products
/// that feed another carried product are carried as a whole with it (only the outermost is taken).
std::vector<int> carriedProducts(const Graph &g) {
  Cone c = analyze(g);
  std::vector<char> inCarried(g.nodes.size(), 0);
  std::vector<int> out;
  for (int i = int(g.nodes.size()) - 1; i >= 0; --i) {
    const Node &n = g.nodes[size_t(i)];
    bool take = n.op == Op::MatMul && n.batched && c.stateOnly[size_t(i)] &&
                c.readsMatrixState[size_t(i)] && !inCarried[size_t(i)];
    if (take)
      out.push_back(i);
    if (take || inCarried[size_t(i)])
      for (int o : n.operands)
        inCarried[size_t(o)] = 1;
  }
  std::reverse(out.begin(), out.end());
  return out;
}

/// Copy the cone of `root` in `from` into `to`, with each state leaf s replaced by `stateValue(s)`
/// (a node of `to`) and every other leaf by `leafOf(id)`. Memoized in `done` (ids of `from`).
int cloneCone(const Graph &from, int root, Graph &to, std::vector<int> &done,
              const std::function<int(int)> &stateValue, const std::function<int(int)> &leafOf) {
  std::function<int(int)> clone = [&](int id) -> int {
    if (done[size_t(id)] >= 0)
      return done[size_t(id)];
    const Node &n = from.node(id);
    int made;
    if (n.op == Op::State)
      made = stateValue(n.index);
    else if (isLeaf(n.op))
      made = leafOf(id);
    else {
      Node copy = n;
      for (int &o : copy.operands)
        o = clone(o);
      copy.batched = false;
      made = append(to, std::move(copy));
    }
    done[size_t(id)] = made;
    return made;
  };
  return clone(root);
}

} // namespace

CarriedProducts dopa::carryProducts(const Graph &fwd) {
  CarriedProducts out;
  std::vector<int> carried = fwd.isBackward ? std::vector<int>() : carriedProducts(fwd);
  if (carried.empty()) {
    out.step = fwd;
    return out;
  }
  const size_t numUser = fwd.states.size();

  // The step: each carried product becomes a state leaf; the other nodes are copied in order.
  Graph &step = out.step;
  step = fwd;
  step.nodes.clear();
  for (size_t m = 0; m < carried.size(); ++m) {
    const Node &p = fwd.node(carried[m]);
    Variable v;
    v.name = "carried." + (p.name.empty() ? std::to_string(m) : p.name);
    v.shape = p.shape;
    v.loc = p.loc;
    v.carried = true;
    step.states.push_back(v);
  }
  std::vector<int> remap(fwd.nodes.size(), -1);
  for (size_t i = 0; i < fwd.nodes.size(); ++i) {
    auto at = std::find(carried.begin(), carried.end(), int(i));
    if (at != carried.end()) {
      Node leaf(Op::State);
      leaf.index = int(numUser + size_t(at - carried.begin()));
      leaf.shape = fwd.nodes[i].shape;
      leaf.loc = fwd.nodes[i].loc;
      leaf.name = fwd.nodes[i].name;
      remap[i] = append(step, std::move(leaf));
      continue;
    }
    Node n = fwd.nodes[i];
    for (int &o : n.operands)
      o = remap[size_t(o)];
    remap[i] = step.add(std::move(n));
  }
  for (int &u : step.stateUpdates)
    u = remap[size_t(u)];
  for (Output &o : step.outputs)
    o.node = remap[size_t(o.node)];
  // Their next values, from the next values of the user states.
  std::vector<int> done(fwd.nodes.size(), -1);
  for (int p : carried)
    step.stateUpdates.push_back(cloneCone(
        fwd, p, step, done, [&](int s) { return step.stateUpdates[size_t(s)]; },
        [&](int id) { return remap[size_t(id)]; }));
  step = withoutDeadNodes(step); // the products' old operands

  // The prologue: user states unchanged, carried states from them.
  Graph &pro = out.prologue;
  pro.name = fwd.name;
  pro.params = fwd.params;
  pro.states = step.states;
  std::vector<int> stateLeaf(step.states.size(), -1);
  for (size_t s = 0; s < numUser; ++s) {
    Node leaf(Op::State);
    leaf.index = int(s);
    leaf.shape = fwd.states[s].shape;
    leaf.loc = fwd.states[s].loc;
    stateLeaf[s] = append(pro, std::move(leaf));
    pro.stateUpdates.push_back(stateLeaf[s]);
  }
  std::vector<int> proDone(fwd.nodes.size(), -1);
  for (int p : carried)
    pro.stateUpdates.push_back(cloneCone(
        fwd, p, pro, proDone, [&](int s) { return stateLeaf[size_t(s)]; },
        [&](int id) {
          Node n = fwd.node(id);
          n.operands.clear();
          return append(pro, std::move(n));
        }));
  return out;
}
