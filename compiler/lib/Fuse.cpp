//===- Fuse.cpp - Fusion: step graphs to per-element kernels ---------------===//
//
// Decides, for the forward and the backward step graph, which values are stored and which are
// recomputed inline, groups the stored work into loop nests over the same iteration space, and
// lays out the per-element state, saved and scratch blocks. Pure: the result is a new value.
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Kernel.h"

#include <algorithm>
#include <functional>
#include <map>
#include <set>
#include <stdexcept>

using namespace dopa;
using namespace dopa::kern;
using ir::Graph;
using ir::Node;
using ir::Op;

const char *kern::bufName(Buf buf) {
  switch (buf) {
  case Buf::Inline: return "inline";
  case Buf::Const: return "const";
  case Buf::Param: return "param";
  case Buf::Input: return "input";
  case Buf::State: return "state";
  case Buf::NextState: return "next_state";
  case Buf::Saved: return "saved";
  case Buf::Scratch: return "scratch";
  case Buf::Output: return "output";
  case Buf::GradOutput: return "grad_output";
  case Buf::GradNext: return "grad_next";
  case Buf::GradPrev: return "grad_prev";
  case Buf::GradInput: return "grad_input";
  case Buf::Grad: return "grad";
  case Buf::Record: return "record";
  }
  return "?";
}

namespace {

int64_t alignUp(int64_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

/// A sink: a value the kernel must deliver.
struct Sink {
  Item::Kind kind; // Store, Accumulate or Zero
  int node;        // -1 for Zero
  Buf target;
  int targetIndex;
  int rowIndexNode = -1;
  ir::Shape shape; // Zero: the state's shape
};

class KernelBuilder {
public:
  KernelBuilder(Kernel &k, const std::vector<int64_t> &stateOffsets,
                const std::vector<int64_t> &paramOffsets)
      : k(k), g(k.graph), stateOffsets(stateOffsets), paramOffsets(paramOffsets) {
    size_t n = g.nodes.size();
    k.live.assign(n, 0);
    k.home.assign(n, Buf::Inline);
    k.homeIndex.assign(n, -1);
    k.offset.assign(n, 0);
    stageOf.assign(n, -1);
    itemKind.assign(n, Item::Opaque);
    isSavedLeaf.assign(n, 0);
  }

  /// Forward nodes the backward kernel reads from the saved block (treated as leaves).
  std::vector<char> isSavedLeaf;
  /// Offsets of the saved slots (forward kernel: where saved roots live) and of the record slots
  /// (backward kernel).
  std::vector<int64_t> savedOffsets, recordOffsets;
  std::vector<Sink> sinks;

  /// Liveness, leaf homes and roots.
  void analyze() {
    markLive();
    assignLeaves();
    findRoots();
  }

  /// Give each root its first Store sink's buffer as its home (no copy needed), then build the
  /// stages.
  void build() {
    for (Sink &s : sinks)
      if (s.kind == Item::Store && adoptHome(s.node, s.target, s.targetIndex)) {
        s.kind = Item::Zero; // marks it done
        s.node = -2;
      }
    for (size_t id = 0; id < g.nodes.size(); ++id)
      if (k.live[id] && root[id])
        place(makeItem(int(id)));
    for (const Sink &s : sinks)
      if (s.node != -2)
        placeSink(s);
  }

  bool isRoot(int id) const { return root[size_t(id)] != 0; }

private:
  Kernel &k;
  const Graph &g;
  const std::vector<int64_t> &stateOffsets, &paramOffsets;
  std::vector<char> root;
  std::vector<int> stageOf;
  std::vector<Item::Kind> itemKind;

  bool leafLike(int id) const { return ir::isLeaf(g.node(id).op) || isSavedLeaf[size_t(id)]; }

  void markLive() {
    std::vector<int> work;
    for (const Sink &s : sinks) {
      if (s.node >= 0)
        work.push_back(s.node);
      if (s.rowIndexNode >= 0)
        work.push_back(s.rowIndexNode);
    }
    while (!work.empty()) {
      int id = work.back();
      work.pop_back();
      if (k.live[size_t(id)])
        continue;
      k.live[size_t(id)] = 1;
      if (isSavedLeaf[size_t(id)])
        continue;
      for (int op : g.node(id).operands)
        work.push_back(op);
    }
  }

  void assignLeaves() {
    for (size_t id = 0; id < g.nodes.size(); ++id) {
      const Node &n = g.nodes[id];
      if (!k.live[id] || isSavedLeaf[id])
        continue;
      switch (n.op) {
      case Op::Const: k.home[id] = Buf::Const; break;
      case Op::Param:
        k.home[id] = Buf::Param;
        k.homeIndex[id] = n.index;
        k.offset[id] = paramOffsets[size_t(n.index)];
        break;
      case Op::Input:
        k.home[id] = Buf::Input;
        k.homeIndex[id] = n.index;
        break;
      case Op::State:
        k.home[id] = Buf::State;
        k.homeIndex[id] = n.index;
        k.offset[id] = stateOffsets[size_t(n.index)];
        break;
      case Op::GradOutput:
        k.home[id] = Buf::GradOutput;
        k.homeIndex[id] = n.index;
        break;
      case Op::GradState:
        k.home[id] = Buf::GradNext;
        k.homeIndex[id] = n.index;
        k.offset[id] = stateOffsets[size_t(n.index)];
        break;
      case Op::FwdValue: throw std::logic_error("fuse: unresolved fwd reference");
      default: break;
      }
    }
  }

  /// Whether matmul `id` runs as a loop nest: one that computes its matrix operand inline, or
  /// reads it from a per-element matrix (a trace, or a trace's gradient), which the step's nest
  /// over the traces streams anyway (a trace stored in bfloat16, --trace-precision=bf16, only a
  /// loop nest reads). Shared matrices (parameters) go to a dense product.
  bool isNestMatMul(int id) const {
    const Node &n = g.node(id);
    const Node &a = g.node(n.operands[0]), &b = g.node(n.operands[1]);
    if (a.shape.size() == 1 && b.shape.size() == 1)
      return true;
    int m = a.shape.size() == 2 && b.shape.size() == 1   ? n.operands[0]
            : a.shape.size() == 1 && b.shape.size() == 2 ? n.operands[1]
                                                         : -1;
    if (m >= 0 && (g.node(m).op == Op::State || g.node(m).op == Op::GradState))
      return true;
    return m >= 0 && !leafLike(m) && ir::isInlinable(g.node(m).op);
  }

  /// Whether consumer `c` can compute its operand number `pos` inline.
  bool canInline(int c, size_t pos) const {
    const Node &cn = g.node(c);
    const Node &on = g.node(cn.operands[pos]);
    // Element-wise consumers inline operands of their own shape (outer and broadcast_to: none).
    if (ir::isInlinable(cn.op))
      return ir::isElementwise(cn.op) && on.shape == cn.shape;
    if (cn.op == Op::MatMul) {
      if (!isNestMatMul(c))
        return false;
      const Node &a = g.node(cn.operands[0]), &b = g.node(cn.operands[1]);
      if (a.shape.size() == 1 && b.shape.size() == 1)
        return true;
      return on.shape.size() == 2; // the matrix operand
    }
    return ir::isReduction(cn.op);
  }

  void findRoots() {
    root.assign(g.nodes.size(), 0);
    for (size_t c = 0; c < g.nodes.size(); ++c) {
      if (!k.live[c] || leafLike(int(c)))
        continue;
      const Node &n = g.nodes[c];
      if (!ir::isInlinable(n.op))
        root[c] = 1;
      for (size_t pos = 0; pos < n.operands.size(); ++pos) {
        int o = n.operands[pos];
        if (!leafLike(o) && !canInline(int(c), pos))
          root[size_t(o)] = 1;
      }
    }
    for (size_t id = 0; id < g.nodes.size(); ++id)
      if (root[id])
        k.home[id] = Buf::Scratch;
  }

  Item makeItem(int id) {
    const Node &n = g.node(id);
    Item item;
    item.node = id;
    if (ir::isInlinable(n.op))
      item.kind = Item::Pointwise;
    else if (n.op == Op::MatMul) {
      const Node &a = g.node(n.operands[0]), &b = g.node(n.operands[1]);
      if (!isNestMatMul(id))
        item.kind = Item::Dense;
      else if (a.shape.size() == 1 && b.shape.size() == 1)
        item.kind = Item::VecDot;
      else
        item.kind = a.shape.size() == 2 ? Item::RowDot : Item::ColDot;
    } else if (ir::isReduction(n.op))
      item.kind = Item::Reduce;
    else
      item.kind = Item::Opaque;
    return item;
  }

  ir::Shape spaceOf(const Item &item) const {
    const Node &n = g.node(item.node);
    switch (item.kind) {
    case Item::RowDot: return g.node(n.operands[0]).shape;
    case Item::ColDot: return g.node(n.operands[1]).shape;
    case Item::VecDot:
    case Item::Reduce: return g.node(n.operands[0]).shape;
    default: return n.shape;
    }
  }

  /// The roots an expression over `id` reads (through inlined nodes).
  void rootDeps(int id, std::set<int> &out) const {
    if (leafLike(id))
      return;
    if (root[size_t(id)]) {
      out.insert(id);
      return;
    }
    for (int o : g.node(id).operands)
      rootDeps(o, out);
  }

  int minStage(const std::set<int> &deps, const ir::Shape &space, Stage::Kind kind) const {
    int m = 0;
    for (int q : deps) {
      int s = stageOf[size_t(q)];
      if (s < 0)
        throw std::logic_error("fuse: a root is used before it is placed");
      bool local = kind == Stage::Nest && itemKind[size_t(q)] == Item::Pointwise &&
                   k.stages[size_t(s)].kind == Stage::Nest && k.stages[size_t(s)].space == space &&
                   g.node(q).shape == space;
      m = std::max(m, local ? s : s + 1);
    }
    return m;
  }

  int addToStage(const Item &item, Stage::Kind kind, const ir::Shape &space, int from) {
    if (kind == Stage::Nest)
      for (size_t s = size_t(from); s < k.stages.size(); ++s)
        if (k.stages[s].kind == Stage::Nest && k.stages[s].space == space) {
          k.stages[s].items.push_back(item);
          return int(s);
        }
    Stage st;
    st.kind = kind;
    st.space = space;
    st.items.push_back(item);
    k.stages.push_back(std::move(st));
    return int(k.stages.size()) - 1;
  }

  void place(const Item &item) {
    const Node &n = g.node(item.node);
    std::set<int> deps;
    Stage::Kind kind = item.kind == Item::Dense    ? Stage::Dense
                       : item.kind == Item::Opaque ? Stage::Opaque
                                                   : Stage::Nest;
    for (int o : n.operands)
      rootDeps(o, deps);
    ir::Shape space = spaceOf(item);
    itemKind[size_t(item.node)] = item.kind;
    int s = addToStage(item, kind, space, minStage(deps, space, kind));
    stageOf[size_t(item.node)] = s;
  }

  void placeSink(const Sink &s) {
    Item item;
    item.kind = s.kind;
    item.node = s.node;
    item.target = s.target;
    item.targetIndex = s.targetIndex;
    item.rowIndexNode = s.rowIndexNode;
    if (s.kind == Item::Zero) {
      Stage st;
      st.kind = Stage::Opaque;
      st.space = s.shape;
      st.items.push_back(item);
      k.stages.push_back(std::move(st));
      return;
    }
    std::set<int> deps;
    rootDeps(s.node, deps);
    const ir::Shape &space = g.node(s.node).shape;
    addToStage(item, Stage::Nest, space, minStage(deps, space, Stage::Nest));
  }

  /// Give root `id` the sink's buffer as its home when it has none yet (no copy needed).
  bool adoptHome(int id, Buf target, int index) {
    if (leafLike(id) || !root[size_t(id)] || k.home[size_t(id)] != Buf::Scratch)
      return false;
    k.home[size_t(id)] = target;
    k.homeIndex[size_t(id)] = index;
    if (target == Buf::NextState || target == Buf::GradPrev)
      k.offset[size_t(id)] = stateOffsets[size_t(index)];
    if (target == Buf::Saved)
      k.offset[size_t(id)] = savedOffsets[size_t(index)];
    if (target == Buf::Record)
      k.offset[size_t(id)] = recordOffsets[size_t(index)];
    return true;
  }
};

std::vector<int64_t> layout(const std::vector<ir::Variable> &vars, int64_t &total, bool align) {
  std::vector<int64_t> offsets;
  total = 0;
  for (const ir::Variable &v : vars) {
    offsets.push_back(total);
    total += align ? alignUp(ir::numElements(v.shape)) : ir::numElements(v.shape);
  }
  return offsets;
}

/// The merged backward graph: forward nodes 0..F-1, then the backward nodes with `fwd %n`
/// replaced by forward node n.
Graph mergeBackward(const Graph &fwd, const Graph &bwd) {
  Graph m = fwd;
  m.isBackward = true;
  m.stateUpdates.clear();
  m.outputs.clear();
  m.readouts.clear();
  std::vector<int> remap(bwd.nodes.size(), -1);
  for (size_t i = 0; i < bwd.nodes.size(); ++i) {
    const Node &n = bwd.nodes[i];
    if (n.op == Op::FwdValue) {
      remap[i] = n.index;
      continue;
    }
    Node c = n;
    for (int &o : c.operands)
      o = remap[size_t(o)];
    remap[i] = m.add(std::move(c));
  }
  m.stateGrads.clear();
  for (int s : bwd.stateGrads)
    m.stateGrads.push_back(s < 0 ? -1 : remap[size_t(s)]);
  m.inputGrads.clear();
  for (int k : bwd.inputGrads)
    m.inputGrads.push_back(k < 0 ? -1 : remap[size_t(k)]);
  m.paramGrads.clear();
  for (ir::ParamGrad pg : bwd.paramGrads) {
    pg.node = remap[size_t(pg.node)];
    if (pg.rowIndex >= 0)
      pg.rowIndex = remap[size_t(pg.rowIndex)];
    m.paramGrads.push_back(pg);
  }
  return m;
}

void assignScratch(Kernel &k) {
  k.scratchNumel = 0;
  for (size_t id = 0; id < k.graph.nodes.size(); ++id)
    if (k.home[id] == Buf::Scratch) {
      k.offset[id] = k.scratchNumel;
      k.scratchNumel += alignUp(ir::numElements(k.graph.nodes[id].shape));
    }
}

/// Per matrix-shaped state s, whether the kernel may write its `target` block (GradPrev: d s;
/// NextState: s') over the block `reader` reads (GradState: d s'; State: s): one loop nest over s's
/// shape stores it element by element (a Store item, or with `homed` also a value computed into
/// that block), and nothing after the store loads the old block. The emitters compute an inlined
/// value once per loop body and keep it (NetworkEmitter::locals), and load a stored element at
/// its first use in the body (readBuffer); so after the store, a later item of its nest may use
/// values computed from the old block before the store, but must not load it again, and no later
/// stage may read it. (The nest's loads all index [i, j] of its space, the store's own element.)
std::vector<char> inPlaceStores(const Kernel &k, const std::vector<ir::Variable> &states,
                                Buf target, Op reader, bool homed) {
  const Graph &g = k.graph;
  auto inlined = [&](int id) { return k.home[size_t(id)] == Buf::Inline; };
  // The values item `it` computes or reads: its node for a store or accumulate, else its operands.
  auto itemValues = [&](const Item &it) {
    std::vector<int> values;
    if (it.node < 0)
      return values;
    if (it.kind == Item::Store || it.kind == Item::Accumulate)
      values.push_back(it.node);
    else
      values = g.node(it.node).operands;
    return values;
  };
  std::vector<char> out(states.size(), 0);
  for (size_t s = 0; s < states.size(); ++s) {
    if (states[s].shape.size() < 2)
      continue;
    int storeStage = -1, storeItem = -1;
    for (size_t t = 0; t < k.stages.size(); ++t)
      for (size_t i = 0; i < k.stages[t].items.size(); ++i) {
        const Item &it = k.stages[t].items[i];
        bool stores = (it.kind == Item::Store || it.kind == Item::Zero) && it.target == target &&
                      it.targetIndex == int(s);
        bool computes = homed && it.kind == Item::Pointwise && k.home[size_t(it.node)] == target &&
                        k.homeIndex[size_t(it.node)] == int(s);
        if (stores || computes) {
          storeStage = int(t);
          storeItem = int(i);
        }
      }
    if (storeStage < 0 || k.stages[size_t(storeStage)].kind != Stage::Nest ||
        k.stages[size_t(storeStage)].space != states[s].shape)
      continue;
    // The inlined values the nest has computed up to the store.
    std::set<int> computed;
    std::function<void(int)> compute = [&](int id) {
      if (!inlined(id) || !computed.insert(id).second)
        return;
      for (int o : g.node(id).operands)
        compute(o);
    };
    const std::vector<Item> &nest = k.stages[size_t(storeStage)].items;
    for (int i = 0; i <= storeItem; ++i)
      for (int v : itemValues(nest[size_t(i)]))
        compute(v);
    // Whether using value `id` loads d s' (`known`: inlined values computed before, not reloaded).
    std::function<bool(int, const std::set<int> &)> loads = [&](int id,
                                                                const std::set<int> &known) {
      const Node &n = g.node(id);
      if (n.op == reader)
        return n.index == int(s);
      if (!inlined(id) || known.count(id))
        return false;
      for (int o : n.operands)
        if (loads(o, known))
          return true;
      return false;
    };
    bool loadsAfter = false;
    const std::set<int> none;
    for (size_t t = size_t(storeStage); t < k.stages.size() && !loadsAfter; ++t) {
      bool sameNest = t == size_t(storeStage);
      for (size_t i = sameNest ? size_t(storeItem) + 1 : 0;
           i < k.stages[t].items.size() && !loadsAfter; ++i)
        for (int v : itemValues(k.stages[t].items[i]))
          loadsAfter = loadsAfter || loads(v, sameNest ? computed : none);
    }
    out[s] = !loadsAfter;
  }
  return out;
}
} // namespace

/// The forward and backward kernels of `net` (and its prologue's): fuse without the replay.
static FusedNetwork fuseSteps(const CompiledNetwork &net) {
  FusedNetwork f;
  const Graph &fwd = net.forward;
  f.stateOffsets = layout(fwd.states, f.stateNumel, /*align=*/true);
  int64_t numParams = 0;
  std::vector<int64_t> paramOffsets = layout(fwd.params, numParams, /*align=*/false);

  // Forward: its roots decide what the backward may read from the saved block.
  f.forward.graph = fwd;
  f.forward.numForwardNodes = int(fwd.nodes.size());
  KernelBuilder fb(f.forward, f.stateOffsets, paramOffsets);
  for (size_t s = 0; s < fwd.states.size(); ++s)
    fb.sinks.push_back({Item::Store, fwd.stateUpdates[s], Buf::NextState, int(s), -1, {}});
  for (size_t o = 0; o < fwd.outputs.size(); ++o)
    fb.sinks.push_back({Item::Store, fwd.outputs[o].node, Buf::Output, int(o), -1, {}});
  // Dry run to learn the forward roots.
  Kernel probe;
  probe.graph = fwd;
  KernelBuilder pb(probe, f.stateOffsets, paramOffsets);
  pb.sinks = fb.sinks;
  pb.analyze();

  // Backward on the merged graph: forward roots are read from the saved block.
  f.backward.isBackward = true;
  f.backward.graph = mergeBackward(fwd, net.backward);
  f.backward.numForwardNodes = int(fwd.nodes.size());
  KernelBuilder bb(f.backward, f.stateOffsets, paramOffsets);
  for (size_t id = 0; id < fwd.nodes.size(); ++id)
    bb.isSavedLeaf[id] = !ir::isLeaf(fwd.nodes[id].op) && pb.isRoot(int(id));
  const Graph &m = f.backward.graph;
  for (size_t s = 0; s < m.stateGrads.size(); ++s) {
    if (m.stateGrads[s] < 0)
      bb.sinks.push_back({Item::Zero, -1, Buf::GradPrev, int(s), -1, fwd.states[s].shape});
    else
      bb.sinks.push_back({Item::Store, m.stateGrads[s], Buf::GradPrev, int(s), -1, {}});
  }
  f.inputGradients = !m.inputGrads.empty();
  for (size_t k = 0; k < m.inputGrads.size(); ++k) {
    if (m.inputGrads[k] < 0)
      bb.sinks.push_back({Item::Zero, -1, Buf::GradInput, int(k), -1, fwd.inputs[k].shape});
    else
      bb.sinks.push_back({Item::Store, m.inputGrads[k], Buf::GradInput, int(k), -1, {}});
  }
  std::map<int, int> recordSlotOf;
  for (const ir::ParamGrad &pg : m.paramGrads) {
    const Node &n = m.node(pg.node);
    bool deferrable =
        n.op == Op::Outer && pg.rowIndex < 0 && m.node(n.operands[0]).shape.size() == 1 &&
        m.node(n.operands[1]).shape.size() == 1 && n.shape == fwd.params[size_t(pg.param)].shape;
    if (!deferrable) {
      bb.sinks.push_back({Item::Accumulate, pg.node, Buf::Grad, pg.param, pg.rowIndex, {}});
      continue;
    }
    DeferredOuter d;
    d.param = pg.param;
    d.rows = n.shape[0];
    d.cols = n.shape[1];
    // One record slot per distinct factor (a readout's input feeds several gradients).
    auto slotFor = [&](int node, int64_t len) {
      auto it = recordSlotOf.find(node);
      if (it != recordSlotOf.end())
        return it->second;
      int slot = int(bb.recordOffsets.size());
      bb.recordOffsets.push_back(f.recordNumel);
      f.recordNumel += alignUp(len);
      bb.sinks.push_back({Item::Store, node, Buf::Record, slot, -1, {}});
      recordSlotOf[node] = slot;
      return slot;
    };
    d.offsetA = bb.recordOffsets[size_t(slotFor(n.operands[0], d.rows))];
    d.offsetB = bb.recordOffsets[size_t(slotFor(n.operands[1], d.cols))];
    f.deferred.push_back(d);
  }
  f.recordOffsets = bb.recordOffsets;
  bb.analyze();

  // The saved block: forward roots the backward reads.
  for (size_t id = 0; id < fwd.nodes.size(); ++id)
    if (bb.isSavedLeaf[id] && f.backward.live[id]) {
      f.savedNodes.push_back(int(id));
      f.savedOffsets.push_back(f.savedNumel);
      f.savedNumel += alignUp(ir::numElements(fwd.nodes[id].shape));
    }
  for (size_t i = 0; i < f.savedNodes.size(); ++i) {
    size_t id = size_t(f.savedNodes[i]);
    f.backward.home[id] = Buf::Saved;
    f.backward.homeIndex[id] = int(i);
    f.backward.offset[id] = f.savedOffsets[i];
  }
  bb.build();

  // Forward again, now with its saved sinks.
  for (size_t i = 0; i < f.savedNodes.size(); ++i)
    fb.sinks.push_back({Item::Store, f.savedNodes[i], Buf::Saved, int(i), -1, {}});
  fb.analyze();
  fb.savedOffsets = f.savedOffsets;
  fb.build();
  assignScratch(f.forward);
  assignScratch(f.backward);
  f.backward.inPlaceGrads =
      inPlaceStores(f.backward, fwd.states, Buf::GradPrev, Op::GradState, /*homed=*/false);
  f.forward.inPlaceStates =
      inPlaceStores(f.forward, fwd.states, Buf::NextState, Op::State, /*homed=*/true);
  if (net.hasPrologue()) { // the same state layout: the prologue's states are the step's
    CompiledNetwork pro;
    pro.forward = net.prologue;
    pro.backward = net.prologueBackward;
    f.prologue.push_back(fuseSteps(pro)); // (never replayed)
  }
  return f;
}

FusedNetwork kern::fuse(const CompiledNetwork &net) {
  FusedNetwork f = fuseSteps(net);
  deriveReplay(f);
  return f;
}

//===----------------------------------------------------------------------===//
// Batched products
//===----------------------------------------------------------------------===//

kern::BatchedProductShape kern::batchedProduct(const Kernel &k, size_t s) {
  const Stage &st = k.stages[s];
  if (st.kind != Stage::Dense || st.items.empty() || st.items[0].kind != Item::Dense)
    return {};
  int id = st.items[0].node;
  const Node &n = k.graph.node(id);
  const Node &a = k.graph.node(n.operands[0]), &b = k.graph.node(n.operands[1]);
  BatchedProductShape p;
  if (a.shape.size() == 2 && b.shape.size() == 1)
    p = {n.operands[0], n.operands[1], false};
  else if (a.shape.size() == 1 && b.shape.size() == 2)
    p = {n.operands[1], n.operands[0], true};
  else
    return {};
  auto home = [&](int node) { return k.home[size_t(node)]; };
  auto perElement = [](Buf h) {
    return h == Buf::Input || h == Buf::State || h == Buf::NextState || h == Buf::Saved ||
           h == Buf::Scratch || h == Buf::Output || h == Buf::GradOutput || h == Buf::GradNext ||
           h == Buf::GradPrev || h == Buf::Record;
  };
  auto writable = [](Buf h) {
    return h == Buf::NextState || h == Buf::Saved || h == Buf::Scratch || h == Buf::Output ||
           h == Buf::GradPrev || h == Buf::Record;
  };
  if (home(p.weight) != Buf::Param || !perElement(home(p.x)) || !writable(home(id)))
    return {};
  return p;
}

//===----------------------------------------------------------------------===//
// Printer
//===----------------------------------------------------------------------===//

static const char *itemKindName(Item::Kind kind) {
  switch (kind) {
  case Item::Pointwise: return "pointwise";
  case Item::RowDot: return "row_dot";
  case Item::ColDot: return "col_dot";
  case Item::VecDot: return "vec_dot";
  case Item::Reduce: return "reduce";
  case Item::Store: return "store";
  case Item::Accumulate: return "accumulate";
  case Item::Dense: return "dense";
  case Item::Opaque: return "opaque";
  case Item::Zero: return "zero";
  }
  return "?";
}

static void printKernel(const Kernel &k, llvm::raw_ostream &os, const char *kind = nullptr) {
  const Graph &g = k.graph;
  os << (kind           ? kind
         : k.isBackward ? "backward"
                        : "forward")
     << " kernel " << g.name << " (scratch " << k.scratchNumel << " elements)\n";
  for (size_t s = 0; s < k.stages.size(); ++s) {
    const Stage &st = k.stages[s];
    os << "  stage " << s << ": "
       << (st.kind == Stage::Nest    ? "nest"
           : st.kind == Stage::Dense ? "dense"
                                     : "opaque")
       << " " << ir::shapeStr(st.space);
    if (BatchedProductShape p = batchedProduct(k, s); p.weight >= 0)
      os << " batched over elements (GEMM: Y = X " << (p.transposed ? "W" : "W^T") << ")";
    os << "\n";
    for (const Item &it : st.items) {
      os << "    " << itemKindName(it.kind);
      if (it.node >= 0) {
        const Node &n = g.node(it.node);
        os << " %" << it.node << " " << ir::opName(n.op);
        if (!n.name.empty())
          os << " (" << n.name << ")";
        os << " : " << ir::shapeStr(n.shape);
      }
      if (it.kind == Item::Store || it.kind == Item::Accumulate || it.kind == Item::Zero)
        os << " -> " << bufName(it.target) << " #" << it.targetIndex;
      else
        os << " -> " << bufName(k.home[size_t(it.node)]);
      os << "\n";
    }
  }
}

void kern::print(const FusedNetwork &f, llvm::raw_ostream &os) {
  printKernel(f.forward, os);
  os << "  saved per step:";
  for (size_t i = 0; i < f.savedNodes.size(); ++i) {
    const Node &n = f.forward.graph.node(f.savedNodes[i]);
    os << " %" << f.savedNodes[i] << (n.name.empty() ? "" : "(" + n.name + ")")
       << ir::shapeStr(n.shape);
  }
  os << " = " << f.savedNumel << " elements; state block " << f.stateNumel << " elements\n";
  const Graph &fwd = f.forward.graph;
  for (const ir::Readout &r : fwd.readouts) {
    const ir::Output &o = fwd.outputs[size_t(r.output)];
    os << "  batched readout " << o.name << " = " << fwd.params[size_t(r.weight)].name
       << ir::shapeStr(fwd.params[size_t(r.weight)].shape) << " @ %" << o.node;
    if (r.bias >= 0)
      os << " + " << fwd.params[size_t(r.bias)].name;
    os << ": the kernels store %" << o.node << "; per step for the batch Y = X W^T"
       << (r.bias >= 0 ? " + b" : "") << " (GEMM); backward dX = dY W, dW += dY^T X"
       << (r.bias >= 0 ? ", db += sum dY" : "") << " over the batch and the steps\n";
  }
  if (!f.replay.stages.empty()) {
    os << "replay (the backward's recomputation of the forward; stages from forward stages";
    for (size_t s = 0; s < f.replayFrom.size(); ++s)
      os << (s ? ", " : " ") << f.replayFrom[s] << (f.replayTrimmed[s] ? " (trimmed)" : "");
    os << "; recorded by the forward:";
    bool any = false;
    for (size_t s = 0; s < f.replayRecorded.size(); ++s)
      if (f.replayRecorded[s]) {
        os << " " << f.forward.graph.states[s].name << "'";
        any = true;
      }
    if (!any)
      os << " nothing";
    os << "):\n";
    printKernel(f.replay, os, "replay");
  }
  printKernel(f.backward, os);
  for (const FusedNetwork &p : f.prologue) {
    os << "prologue (the carried states from the user states, before the first step):\n";
    printKernel(p.forward, os);
    os << "prologue backward (after the first step's backward):\n";
    printKernel(p.backward, os);
  }
}
