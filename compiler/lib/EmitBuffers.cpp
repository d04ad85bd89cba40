//===- EmitBuffers.cpp - How stage functions reach their buffers ----------===//
//
// The emitters' buffers: the names a stage function gives them (after the spec), the pointer
// declarations at its top (where each block starts; `__restrict` unless a state is updated in
// place), and the loads of a nest's body: each element read once per iteration into a local, an
// element that does not depend on the inner index once per row where the backend asks.
//
//===----------------------------------------------------------------------===//
#include "EmitCommon.h"

#include <stdexcept>

using namespace dopa;
using namespace dopa::emit;
using ir::Graph;
using ir::Node;
using kern::Buf;

//===----------------------------------------------------------------------===//
// Buffers
//===----------------------------------------------------------------------===//

std::string NetworkEmitter::leafName(Buf home, int homeIndex) const {
  const Graph &fwd = net.forward;
  size_t hi = size_t(homeIndex);
  switch (home) {
  case Buf::Param: return ident(fwd.params[hi].name);
  case Buf::Input: return ident(fwd.inputs[hi].name);
  case Buf::State: return ident(fwd.states[hi].name);
  case Buf::NextState: return ident(fwd.states[hi].name) + "_next";
  case Buf::GradNext: return "d_" + ident(fwd.states[hi].name) + "_next";
  case Buf::GradPrev: return "d_" + ident(fwd.states[hi].name);
  case Buf::GradInput: return "d_in_" + ident(fwd.inputs[hi].name);
  // A batched readout's buffer holds its input (the runtime computes the output from it).
  case Buf::Output:
    return (ir::readoutOf(fwd, hi) ? "readout_in_" : "out_") + ident(fwd.outputs[hi].name);
  case Buf::GradOutput:
    return (ir::readoutOf(fwd, hi) ? "d_readout_in_" : "d_out_") + ident(fwd.outputs[hi].name);
  case Buf::Grad: return "d_" + ident(fwd.params[hi].name);
  default: return "";
  }
}

/// Where node `id`'s buffer starts: a block pointer plus its offset, named where it is a
/// parameter's or a state's.
std::string NetworkEmitter::homeBase(int id) {
  int hi = k->homeIndex[size_t(id)];
  int64_t off = k->offset[size_t(id)];
  auto param = [&] {
    return off == paramOffsets[size_t(hi)] ? paramOffset(hi) : std::to_string(off);
  };
  auto state = [&] {
    return off == f.stateOffsets[size_t(hi)] ? stateOffset(hi) : std::to_string(off);
  };
  std::string offset = std::to_string(off);
  switch (homeOf(id)) {
  case Buf::Param: return "a.params + " + param();
  case Buf::Input: return "a.inputs[" + std::to_string(hi) + "]";
  case Buf::State: return "a.state + " + state();
  case Buf::NextState: return nextBlock(hi) + " + " + state();
  case Buf::Saved: return "a.saved + " + offset;
  case Buf::Scratch: return "a.scratch + " + offset;
  case Buf::Output: return "a.outputs[" + std::to_string(hi) + "]";
  case Buf::GradOutput: return "a.gradOutputs[" + std::to_string(hi) + "]";
  case Buf::GradNext: return "a.gradNext + " + state();
  case Buf::GradPrev: return (isInPlaceGrad(hi) ? "a.gradNext + " : "a.gradPrev + ") + state();
  case Buf::GradInput: return "a.gradInputs[" + std::to_string(hi) + "]";
  case Buf::Record: return "a.record + " + offset;
  default: throw std::logic_error("emit: node has no buffer");
  }
}

std::string NetworkEmitter::bufferName(int id) const {
  const Node &n = g().node(id);
  Buf home = homeOf(id);
  int hi = k->homeIndex[size_t(id)];
  // A gradient written in place: dLoss/d s' is read through the gradient's own pointer.
  bool inPlace = home == Buf::GradNext && isInPlaceGrad(hi);
  std::string name = leafName(inPlace ? Buf::GradPrev : home, hi);
  if (name.empty()) {
    name = "t" + std::to_string(id);
    if (!n.name.empty())
      name += "_" + ident(n.name);
  }
  return name;
}

std::string NetworkEmitter::targetName(Buf target, int index) const {
  if (target == Buf::Saved)
    return "saved_t" + std::to_string(f.savedNodes[size_t(index)]);
  if (target == Buf::Record)
    return "record" + std::to_string(index);
  return leafName(target, index);
}

std::string NetworkEmitter::writtenBuffer(const kern::Item &it) const {
  if (it.kind == kern::Item::Store || it.kind == kern::Item::Accumulate)
    return targetName(it.target, it.targetIndex);
  return bufferName(it.node);
}

/// The variable holding node `id`'s buffer, declared at the top of the stage function.
std::string NetworkEmitter::bufferOf(int id, bool traceAccess) {
  const Node &n = g().node(id);
  Buf home = homeOf(id);
  int hi = k->homeIndex[size_t(id)];
  bool inPlace = home == Buf::GradNext && isInPlaceGrad(hi);
  std::string name = bufferName(id);
  bool isConst = home == Buf::Param || home == Buf::Input || home == Buf::State ||
                 home == Buf::GradOutput || (home == Buf::GradNext && !inPlace) ||
                 (home == Buf::Saved && k->isBackward);
  std::string base = homeBase(id);
  std::string comment = "; // " + ir::shapeStr(n.shape) + (n.name.empty() ? "" : " " + n.name);
  // A state updated in place is read and written through two pointers to one block.
  std::string qualifier =
      (home == Buf::State || home == Buf::NextState) && isInPlaceState(hi) ? "" : "__restrict ";
  if (isTrace(home, hi)) {
    const ir::Variable &v = net.forward.states[size_t(hi)];
    if (!traceAccess || k->offset[size_t(id)] != f.stateOffsets[size_t(hi)])
      throw std::runtime_error("state '" + v.name + "' is stored in bfloat16 (--trace-precision=" +
                               "bf16), and a dense product or data movement in " + g().name +
                               " reads it as a float matrix; only element-wise loops read bf16 " +
                               "traces (compile with --trace-precision=float)");
    declare(name, std::string(isConst ? "const Trace<T> *" : "Trace<T> *") + qualifier + name +
                      " = traceView(" + base + ")" + comment + " bf16");
    return name;
  }
  declare(name,
          std::string(isConst ? "const T *" : "T *") + qualifier + name + " = " + base + comment);
  return name;
}

std::string NetworkEmitter::targetBuffer(Buf target, int index, bool traceAccess) {
  const Graph &fwd = net.forward;
  std::string name = targetName(target, index);
  std::string base;
  ir::Shape shape;
  switch (target) {
  case Buf::NextState:
    base = nextBlock(index) + " + " + stateOffset(index);
    shape = fwd.states[size_t(index)].shape;
    break;
  case Buf::GradPrev: // in place: over dLoss/d s' (kern::Kernel::inPlaceGrads)
    base = (isInPlaceGrad(index) ? "a.gradNext + " : "a.gradPrev + ") + stateOffset(index);
    shape = fwd.states[size_t(index)].shape;
    break;
  case Buf::GradInput:
    base = "a.gradInputs[" + std::to_string(index) + "]";
    shape = fwd.inputs[size_t(index)].shape;
    break;
  case Buf::Output:
    base = "a.outputs[" + std::to_string(index) + "]";
    shape = fwd.node(fwd.outputs[size_t(index)].node).shape;
    break;
  case Buf::Saved: {
    int node = f.savedNodes[size_t(index)];
    base = "a.saved + " + std::to_string(f.savedOffsets[size_t(index)]);
    shape = fwd.node(node).shape;
    break;
  }
  case Buf::Record: {
    base = "a.record + " + std::to_string(f.recordOffsets[size_t(index)]);
    shape = {};
    for (const kern::DeferredOuter &d : f.deferred) {
      if (d.offsetA == f.recordOffsets[size_t(index)])
        shape = {d.rows};
      if (d.offsetB == f.recordOffsets[size_t(index)])
        shape = {d.cols};
    }
    break;
  }
  case Buf::Grad:
    base = "a.grads + " + paramOffset(index);
    shape = fwd.params[size_t(index)].shape;
    break;
  default: throw std::logic_error("emit: bad sink target");
  }
  if (isTrace(target, index) && !traceAccess)
    throw std::logic_error("emit: state '" + fwd.states[size_t(index)].name +
                           "' is stored in bfloat16 and only a store may write it");
  std::string qualifier =
      target == Buf::NextState && isInPlaceState(index) ? "" : "__restrict "; // (bufferOf)
  if (isTrace(target, index))
    declare(name, "Trace<T> *" + qualifier + name + " = traceView(" + base + "); // " +
                      ir::shapeStr(shape) + " bf16");
  else
    declare(name, "T *" + qualifier + name + " = " + base + "; // " + ir::shapeStr(shape));
  return name;
}

void NetworkEmitter::declare(const std::string &name, const std::string &decl) {
  if (pointers.emplace(name, decl).second)
    pointerOrder.push_back(name);
}

/// Read node `id` (stored somewhere) at the current index, viewing its buffer as `view`: a local
/// loaded at the first read (`const T v12 = et[i * 200 + j];`), reused by the later ones. Left
/// to the compiler, every use was a load of its own: the buffers' pointers are `__restrict`
/// locals, which GCC does not take as a promise that a store leaves the other buffers alone, so it
/// read an element again after each store (a quarter of the backward's time at H = 200). An
/// element that does not depend on the inner index is read once per row where the backend asks
/// (hoistRowLoads), unless the nest writes that buffer.
std::string NetworkEmitter::readBuffer(int id, const ir::Shape &view) {
  const Node &n = g().node(id);
  if (homeOf(id) == Buf::Const)
    return "T(" + num(n.value) + ")";
  const ir::Shape &space = stage->space;
  std::vector<int64_t> strides = broadcastStrides(view, space);
  // A state this nest updates in place is read only at the element it writes (the premise of
  // Kernel::inPlaceStates: no other element of it may have been overwritten yet).
  int hi = k->homeIndex[size_t(id)];
  if (homeOf(id) == Buf::State && isInPlaceState(hi) &&
      nestWrites.count(leafName(Buf::NextState, hi)) && view != space)
    throw std::logic_error("emit: state '" + net.forward.states[size_t(hi)].name +
                           "' is updated in place but read at another element of its nest");
  std::string buffer = bufferOf(id, true);
  std::string element = buffer + "[" + indexExpr(strides) + "]";
  auto [at, fresh] = loads.try_emplace(element);
  if (!fresh)
    return at->second;
  int views = ++loadViews[id];
  std::string name = "v" + std::to_string(id) + (views > 1 ? "_" + std::to_string(views) : "");
  at->second = name;
  bool rowInvariant = hoistRowLoads() && !space.empty() &&
                      (strides.back() == 0 || loopVar(space.size() - 1) == "0") &&
                      !nestWrites.count(buffer);
  (rowInvariant ? rowLoads : body)
      << "const T " << name << " = " << (isTraceNode(id) ? "traceLoad(" + element + ")" : element)
      << ";\n";
  return name;
}
