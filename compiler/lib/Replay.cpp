//===- Replay.cpp - The replay kernel: the forward as the backward's replays need it ---===//
//
// The backward pass recomputes each segment's states from an outer checkpoint (BPTT with
// recomputation), running the forward kernel a second time. Part of that work only the first
// forward needs: the outputs (the loss has read them already), and the carried products'
// reductions in the traces' loop nest, (w + alpha * pw') @ h' for a plastic network, which read
// two H x H parameters and add a multiply-add per trace element to a pass that otherwise only
// updates the traces. deriveReplay builds the forward kernel less that work: the carried products'
// next values (a vector per step and element) are recorded by the first forward instead, and the
// runtime writes them into the replay's next block before each replayed step. What the replay
// still computes, it computes with the forward's own code (the stages' items are the forward's),
// so its states and saved values are bit-identical to the first forward's.
//
// The kernel keeps every item that writes a next state (but the recorded ones) or a saved value,
// and every item that produces a stored value one of those reads (through the values inlined into
// it), item by item from the last; stages left with nothing are dropped, and a stage that keeps
// something keeps everything but its recorded reductions (so only the traces' nest is printed
// again, and every other stage of the replay is the forward's own function).
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Kernel.h"

#include <functional>
#include <stdexcept>
#include <vector>

using namespace dopa;
using namespace dopa::kern;

namespace {

/// Whether item `it` of a nest over `space` is a carried product's reduction the first forward can
/// record: a row or column dot product into a vector-shaped next state, in a nest over a matrix
/// (the traces' pass), of a state kept in T (not a bfloat16 trace).
bool recordable(const Kernel &k, const Stage &st, const Item &it) {
  if (st.kind != Stage::Nest || st.space.size() < 2)
    return false;
  if (it.kind != Item::RowDot && it.kind != Item::ColDot)
    return false;
  if (k.home[size_t(it.node)] != Buf::NextState)
    return false;
  const ir::Variable &s = k.graph.states[size_t(k.homeIndex[size_t(it.node)])];
  return s.shape.size() == 1 && !s.bf16;
}

} // namespace

void kern::deriveReplay(FusedNetwork &f) {
  const Kernel &fk = f.forward;
  const ir::Graph &g = fk.graph;
  f.replay = Kernel();
  f.replayFrom.clear();
  f.replayTrimmed.clear();
  f.replayRecorded.assign(g.states.size(), 0);

  // The stored values the kept items read: walk each item's value through the inlined nodes.
  std::vector<char> needed(g.nodes.size(), 0);
  std::vector<char> seen(g.nodes.size(), 0);
  std::function<void(int)> readsOf = [&](int id) {
    for (int o : g.node(id).operands) {
      if (seen[size_t(o)])
        continue;
      seen[size_t(o)] = 1;
      if (fk.home[size_t(o)] == Buf::Inline)
        readsOf(o);
      else
        needed[size_t(o)] = 1;
    }
  };
  auto keep = [&](const Item &it) {
    // A copy (store) of a stored value reads that value; anything else computes its node.
    if (it.kind == Item::Store && fk.home[size_t(it.node)] != Buf::Inline &&
        !ir::isLeaf(g.node(it.node).op))
      needed[size_t(it.node)] = 1;
    else if (!ir::isLeaf(g.node(it.node).op))
      readsOf(it.node);
  };

  std::vector<std::vector<char>> kept(fk.stages.size());
  bool changed = false;
  for (size_t s = fk.stages.size(); s-- > 0;) {
    const Stage &st = fk.stages[s];
    kept[s].assign(st.items.size(), 0);
    std::fill(seen.begin(), seen.end(), 0);
    bool recorded = false, anyKept = false;
    for (size_t i = st.items.size(); i-- > 0;) { // (a nest's copies come after the value)
      const Item &it = st.items[i];
      if (it.node < 0) // a zeroing: only backward kernels have them (fuseSteps' sinks)
        throw std::logic_error("deriveReplay: a forward stage has an item without a node");
      Buf home = fk.home[size_t(it.node)];
      bool produces = it.kind != Item::Store && it.kind != Item::Accumulate;
      bool sink =
          (it.kind == Item::Store && (it.target == Buf::NextState || it.target == Buf::Saved)) ||
          (produces && (home == Buf::NextState || home == Buf::Saved));
      if (produces && recordable(fk, st, it)) {
        f.replayRecorded[size_t(fk.homeIndex[size_t(it.node)])] = 1;
        recorded = true;
        continue;
      }
      if (sink || (produces && needed[size_t(it.node)])) {
        kept[s][i] = 1;
        anyKept = true;
        keep(it);
      }
    }
    // Only a recorded reduction trims a stage: one that would lose nothing but copies into
    // outputs keeps them (a second function of the same loops would cost more than the stores).
    if (anyKept && !recorded)
      for (size_t i = 0; i < st.items.size(); ++i)
        if (!kept[s][i]) {
          kept[s][i] = 1;
          keep(st.items[i]);
        }
    changed = changed || recorded || !anyKept;
  }
  if (!changed) {
    f.replayRecorded.assign(g.states.size(), 0);
    return;
  }

  f.replay = fk; // the graph, the homes and offsets, the scratch size, the in-place states
  f.replay.stages.clear();
  for (size_t s = 0; s < fk.stages.size(); ++s) {
    Stage st = fk.stages[s];
    st.items.clear();
    for (size_t i = 0; i < fk.stages[s].items.size(); ++i)
      if (kept[s][i])
        st.items.push_back(fk.stages[s].items[i]);
    if (st.items.empty())
      continue;
    f.replayTrimmed.push_back(st.items.size() != fk.stages[s].items.size());
    f.replayFrom.push_back(int(s));
    f.replay.stages.push_back(std::move(st));
  }
}
