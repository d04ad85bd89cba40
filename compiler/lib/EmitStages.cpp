//===- EmitStages.cpp - The bodies of the emitters' stage functions -------===//
//
// The shared part of a stage function's body: a fused loop nest's items (stores, accumulations,
// row and column products, reductions) around the scalar code, the operands of a dense product,
// and the data-movement stages (reshape, transpose, gather, concat, slices, softmax, zeroing).
// Loops are written through NetworkEmitter's hooks (a nest's loops, element loops, dense
// products), so the same code serves the C++ and the CUDA emitter.
//
//===----------------------------------------------------------------------===//
#include "EmitCommon.h"

#include <iterator>
#include <stdexcept>

using namespace dopa;
using namespace dopa::emit;
using ir::Node;
using ir::Op;
using kern::Buf;
using kern::Item;

//===----------------------------------------------------------------------===//
// Nests
//===----------------------------------------------------------------------===//

/// Traces stored in bfloat16 (--trace-precision=bf16; runtime Bf16.h).
bool NetworkEmitter::isTrace(Buf home, int homeIndex) const {
  return (home == Buf::State || home == Buf::NextState) &&
         net.forward.states[size_t(homeIndex)].bf16;
}

std::string NetworkEmitter::storeTo(const std::string &buffer, bool trace, const std::string &index,
                                    const std::string &v) const {
  return cat({buffer, "[", index, "] = ", trace ? "traceStore(" + v + ")" : v, ";\n"});
}

void NetworkEmitter::emitNest(std::ostringstream &out) {
  const ir::Shape &space = stage->space;
  if (space.size() > 2)
    throw EmitUnsupported(
        "the C++ emitter handles tensors of rank <= 2; " + g().name + " has a value of shape " +
            ir::shapeStr(space) + " (run it with the generic executor: dopa --engine generic)",
        stage->items.empty() ? llvm::SMLoc() : g().node(stage->items.front().node).loc);
  // The buffers this nest writes (its loads from them stay in the body: readBuffer).
  for (const Item &it : stage->items)
    nestWrites.insert(writtenBuffer(it));
  NestParts parts;
  for (const Item &it : stage->items) {
    emitNestItem(it, parts);
    // Reads after a write of the buffer load again (an element written in place).
    std::string written = writtenBuffer(it) + "[";
    for (auto at = loads.begin(); at != loads.end();)
      at = at->first.compare(0, written.size(), written) == 0 ? loads.erase(at) : std::next(at);
  }
  // Zero the accumulated outputs, then the loops.
  for (const ZeroFill &z : parts.zeros)
    out << forEachElement(
        z.count, [&](const std::string &e) { return cat({z.target, "[", e, "] = T(0);"}); });
  emitNestLoops(out, parts.partials, !parts.zeros.empty());
}

void NetworkEmitter::emitNestItem(const Item &it, NestParts &parts) {
  const ir::Shape &space = stage->space;
  switch (it.kind) {
  case Item::Pointwise: {
    const Node &n = g().node(it.node);
    std::string v = compute(it.node);
    body << storeTo(bufferOf(it.node, true), isTraceNode(it.node),
                    indexExpr(broadcastStrides(n.shape, space)), v);
    break;
  }
  case Item::Store: {
    const Node &n = g().node(it.node);
    // A state passed through unchanged (s' = s: the prologue's traces) whose gradient is written
    // in place: d s is d s' already.
    if (it.target == Buf::GradPrev && isInPlaceGrad(it.targetIndex) && n.op == Op::GradState &&
        n.index == it.targetIndex)
      break;
    std::string v = val(it.node);
    body << storeTo(targetBuffer(it.target, it.targetIndex, true),
                    isTrace(it.target, it.targetIndex), indexExpr(broadcastStrides(n.shape, space)),
                    v);
    break;
  }
  case Item::Accumulate: {
    const Node &n = g().node(it.node);
    std::string v = val(it.node);
    std::string tgt = targetBuffer(it.target, it.targetIndex);
    std::string idx = indexExpr(broadcastStrides(n.shape, space));
    if (it.rowIndexNode >= 0) {
      std::string row = bufferOf(it.rowIndexNode);
      std::string rowIdx = "int64_t(" + row + "[0]) * ";
      rowIdx += std::to_string(ir::numElements(n.shape));
      if (idx != "0")
        rowIdx += " + " + idx;
      idx = rowIdx;
    }
    body << lineDirective(n.loc) << accumulate(tgt, idx, v);
    break;
  }
  case Item::RowDot:
  case Item::ColDot:
  case Item::VecDot: emitDotItem(it, parts); break;
  case Item::Reduce: emitReduceItem(it, parts); break;
  default: throw std::logic_error("emit: item kind not allowed in a nest");
  }
}

void NetworkEmitter::emitDotItem(const Item &it, NestParts &parts) {
  const Node &n = g().node(it.node);
  const Node &a = g().node(n.operands[0]), &b = g().node(n.operands[1]);
  std::string out = bufferOf(it.node);
  std::string acc = "acc" + std::to_string(it.node);
  if (it.kind == Item::RowDot) {
    std::string m = val(n.operands[0]);
    std::string v = operandAs(n.operands[1], {1, ir::numElements(b.shape)});
    body << lineDirective(n.loc) << acc << " += " << m << " * " << v << ";\n";
    parts.partials.push_back({acc, out, loopVar(0), true});
  } else if (it.kind == Item::ColDot) {
    std::string v = operandAs(n.operands[0], {ir::numElements(a.shape), 1});
    std::string m = val(n.operands[1]);
    parts.zeros.push_back({out, ir::numElements(n.shape)});
    body << lineDirective(n.loc) << accumulate(out, loopVar(1), cat({v, " * ", m}));
  } else {
    std::string x = val(n.operands[0]), y = val(n.operands[1]);
    body << lineDirective(n.loc) << acc << " += " << x << " * " << y << ";\n";
    if (sharedDotOutputs())
      parts.zeros.push_back({out, 1});
    parts.partials.push_back({acc, out, "0", !sharedDotOutputs()});
  }
}

void NetworkEmitter::emitReduceItem(const Item &it, NestParts &parts) {
  const ir::Shape &space = stage->space;
  size_t rank = space.size();
  const Node &n = g().node(it.node);
  std::string v = val(n.operands[0]);
  std::string out = bufferOf(it.node);
  ir::Shape view = n.shape;
  if (n.op == Op::SumAll)
    view = {};
  else if (n.op == Op::SumAxis) {
    view = space;
    view[size_t(n.index)] = 1;
  }
  std::vector<int64_t> strides = broadcastStrides(view, space);
  parts.zeros.push_back({out, ir::numElements(n.shape)});
  if (rank > 0 && strides.back() != 0) { // depends on the inner index: accumulate in place
    body << lineDirective(n.loc) << accumulate(out, indexExpr(strides), v);
  } else {
    std::string acc = "acc" + std::to_string(it.node);
    body << lineDirective(n.loc) << acc << " += " << v << ";\n";
    if (rank > 0)
      strides.back() = 0;
    parts.partials.push_back({acc, out, indexExpr(strides), false});
  }
}

//===----------------------------------------------------------------------===//
// Dense and opaque stages
//===----------------------------------------------------------------------===//

void NetworkEmitter::emitDense(std::ostringstream &out) {
  const Item &it = stage->items[0];
  const Node &n = g().node(it.node);
  const Node &a = g().node(n.operands[0]), &b = g().node(n.operands[1]);
  for (int o : n.operands)
    if (homeOf(o) == Buf::Const)
      throw std::runtime_error("the C++ emitter does not multiply constant matrices");
  std::string A = bufferOf(n.operands[0]), B = bufferOf(n.operands[1]), C = bufferOf(it.node);
  out << lineDirective(n.loc);
  emitDenseProduct(out, {A, B, C, a.shape, b.shape});
}

void NetworkEmitter::emitOpaqueOp(std::ostringstream &out) {
  const Item &it = stage->items[0];
  if (it.kind == Item::Zero) {
    std::string t = targetBuffer(it.target, it.targetIndex);
    const ir::Graph &fwd = net.forward;
    int64_t count =
        ir::numElements(it.target == Buf::GradInput ? fwd.inputs[size_t(it.targetIndex)].shape
                                                    : fwd.states[size_t(it.targetIndex)].shape);
    out << forEachElement(count,
                          [&](const std::string &e) { return cat({t, "[", e, "] = T(0);"}); });
    return;
  }
  const Node &n = g().node(it.node);
  std::string o = bufferOf(it.node);
  auto in = [&](size_t k) {
    int id = n.operands[k];
    if (homeOf(id) == Buf::Const)
      throw std::runtime_error(std::string("the C++ emitter does not apply '") + ir::opName(n.op) +
                               "' to a constant");
    return bufferOf(id);
  };
  int64_t N = ir::numElements(n.shape);
  out << lineDirective(n.loc);
  switch (n.op) {
  case Op::Reshape: {
    int id = n.operands[0];
    std::string src = homeOf(id) == Buf::Const ? "" : in(0);
    std::string value = "T(" + num(g().node(id).value) + ")";
    out << forEachElement(N, [&](const std::string &e) {
      return cat({o, "[", e, "] = ", src.empty() ? value : cat({src, "[", e, "]"}), ";"});
    });
    break;
  }
  case Op::Transpose: {
    const ir::Shape &s = g().node(n.operands[0]).shape;
    std::string x = in(0);
    out << serialLoop("i", 0, s[0], [&](const std::string &i) {
      return serialLoop("j", 0, s[1], [&](const std::string &j) {
        return cat({o, "[", linear({{j, s[0]}, {i, 1}}), "] = ", x, "[",
                    linear({{i, s[1]}, {j, 1}}), "];\n"});
      });
    });
    break;
  }
  case Op::Gather: {
    const ir::Shape &s = g().node(n.operands[0]).shape;
    std::string idx = in(1);
    std::string table = in(0);
    std::string rowStart = "row * " + std::to_string(s[1]);
    out << "{\nconst int64_t row = int64_t(" << idx << "[0]); // checked by the runtime\n"
        << forEachElement(s[1],
                          [&](const std::string &e) {
                            std::string at = e == "0" ? rowStart : cat({rowStart, " + ", e});
                            return cat({o, "[", e, "] = ", table, "[", at, "];"});
                          })
        << "}\n";
    break;
  }
  case Op::Concat: {
    int64_t at = 0;
    for (size_t k = 0; k < n.operands.size(); ++k) {
      int64_t len = ir::numElements(g().node(n.operands[k]).shape);
      std::string src = in(k), start = std::to_string(at);
      out << forEachElement(len, [&](const std::string &e) {
        return cat({o, "[", e == "0" ? start : cat({start, " + ", e}), "] = ", src, "[", e, "];"});
      });
      at += len;
    }
    break;
  }
  case Op::Slice:
  case Op::SliceGrad: emitSlice(out, n, o, in(0)); break;
  case Op::Softmax:
  case Op::LogSoftmax: emitSoftmax(out, n, o, in(0)); break;
  default:
    throw std::runtime_error(std::string("the C++ emitter does not support op '") +
                             ir::opName(n.op) + "'");
  }
}

void NetworkEmitter::emitSlice(std::ostringstream &out, const Node &n, const std::string &o,
                               const std::string &src) {
  const ir::Shape &full = n.op == Op::Slice ? g().node(n.operands[0]).shape : n.shape;
  size_t r = full.size();
  if (r > 2)
    throw EmitUnsupported("the C++ emitter slices tensors of rank <= 2, and this one has shape " +
                              ir::shapeStr(full) +
                              " (run it with the generic executor: dopa --engine generic)",
                          n.loc);
  const std::vector<int64_t> &at = n.attrs;
  if (n.op == Op::SliceGrad)
    out << serialLoop("e", 0, ir::numElements(n.shape),
                      [&](const std::string &e) { return cat({o, "[", e, "] = T(0);\n"}); });
  std::vector<int64_t> strides(r, 1);
  for (size_t d = 0; d + 1 < r; ++d)
    for (size_t e = d + 1; e < r; ++e)
      strides[d] *= full[e];
  // The index into the full tensor: `v * stride` per looping axis, the elided axes' constant last.
  std::vector<std::string> vars(r);
  auto statement = [&]() {
    std::string fullIdx;
    int64_t fixed = 0;
    for (size_t d = 0; d < r; ++d) {
      if (vars[d] != kIndexVars[d]) {
        fixed += std::stoll(vars[d]) * strides[d];
        continue;
      }
      fullIdx += (fullIdx.empty() ? "" : " + ") + vars[d] + " * " + std::to_string(strides[d]);
    }
    if (fixed != 0 || fullIdx.empty())
      fullIdx += (fullIdx.empty() ? "" : " + ") + std::to_string(fixed);
    return n.op == Op::Slice ? cat({o, "[k++] = ", src, "[", fullIdx, "];\n"})
                             : cat({o, "[", fullIdx, "] = ", src, "[k++];\n"});
  };
  std::function<std::string(size_t)> loops = [&](size_t d) -> std::string {
    if (d == r)
      return statement();
    return serialLoop(
        kIndexVars[d], at[d], at[r + d],
        [&, d](const std::string &v) {
          vars[d] = v;
          return loops(d + 1);
        },
        "int64_t");
  };
  out << "{\nint64_t k = 0;\n" << loops(0) << "}\n";
}

void NetworkEmitter::emitSoftmax(std::ostringstream &out, const Node &n, const std::string &o,
                                 const std::string &x) {
  int64_t N = ir::numElements(n.shape);
  std::string ex = mathFn("exp"), lg = mathFn("log");
  out << "{\nT mx = " << x << "[0];\n"
      << serialLoop("e", 1, N,
                    [&](const std::string &e) {
                      return cat({"mx = mx < ", x, "[", e, "] ? ", x, "[", e, "] : mx;\n"});
                    })
      << "T sum = 0;\n"
      << serialLoop("e", 0, N,
                    [&](const std::string &e) {
                      return cat({"sum += ", ex, "(", x, "[", e, "] - mx);\n"});
                    })
      << "const T logZ = mx + " << lg << "(sum);\n"
      << serialLoop("e", 0, N,
                    [&](const std::string &e) {
                      std::string v = cat({x, "[", e, "] - logZ"});
                      return cat({o, "[", e,
                                  "] = ", n.op == Op::Softmax ? cat({ex, "(", v, ")"}) : v, ";\n"});
                    })
      << "}\n";
}
