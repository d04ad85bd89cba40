//===- EmitCpp.cpp - The C++ emitter ---------------------------------------===//
//
// Prints fused kernels as C++ in the style of llm.c: a banner with the conventions, one static
// function per stage (a fused loop nest, an Eigen product or a small data-movement loop) with the
// spec's names for its buffers and a shape comment, the forward and backward step functions
// calling them in order, and `#line` directives that map each statement back to the spec. Scalar
// expressions are computed in `T` (float for training, double for gradient checks); the inner loop
// of every nest carries `#pragma omp simd` with its reductions declared, so it vectorizes.
//
//===----------------------------------------------------------------------===//
#include "dopa/compiler/Emit.h"

#include "clang/Format/Format.h"
#include "clang/Tooling/Core/Replacement.h"

#include <charconv>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string_view>

using namespace dopa;
using namespace dopa::kern;
using ir::Graph;
using ir::Node;
using ir::Op;

std::string dopa::snakeCase(const std::string &name) {
  std::string out;
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool upper = c >= 'A' && c <= 'Z';
    if (upper && i > 0) {
      char p = name[i - 1];
      bool prevLowerOrDigit = (p >= 'a' && p <= 'z') || (p >= '0' && p <= '9');
      bool nextLower = i + 1 < name.size() && name[i + 1] >= 'a' && name[i + 1] <= 'z';
      bool prevUpper = p >= 'A' && p <= 'Z';
      if (prevLowerOrDigit || (prevUpper && nextLower))
        out += '_';
    }
    out += upper ? char(c - 'A' + 'a') : c;
  }
  return out;
}

namespace {

std::string num(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, end);
  if (s.find_first_of(".eEn") == std::string::npos)
    s += ".0";
  return s;
}

/// Concatenate pieces of code (one allocation).
std::string cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts)
    out += p;
  return out;
}

const std::set<std::string> &cxxKeywords() {
  static const std::set<std::string> k = {
      "alignas", "alignof", "and",      "asm",      "auto",     "bool",      "break",   "case",
      "catch",   "char",    "class",    "const",    "continue", "default",   "delete",  "do",
      "double",  "else",    "enum",     "explicit", "extern",   "false",     "float",   "for",
      "friend",  "goto",    "if",       "inline",   "int",      "long",      "mutable", "namespace",
      "new",     "not",     "operator", "or",       "private",  "protected", "public",  "register",
      "return",  "short",   "signed",   "sizeof",   "static",   "struct",    "switch",  "template",
      "this",    "throw",   "true",     "try",      "typedef",  "typename",  "union",   "unsigned",
      "using",   "virtual", "void",     "volatile", "while",    "xor",       "a",       "i",
      "j",       "T",       "std"};
  return k;
}

std::string ident(const std::string &name) {
  std::string s;
  for (char c : name)
    s += (std::isalnum(static_cast<unsigned char>(c)) || c == '_') ? c : '_';
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0])))
    s = "v_" + s;
  if (cxxKeywords().count(s))
    s += "_";
  return s;
}

/// Per-axis strides of a buffer of shape `buf` read at the indices of `space` under NumPy
/// broadcasting (trailing axes aligned; size-1 and missing axes repeat).
std::vector<int64_t> broadcastStrides(const ir::Shape &buf, const ir::Shape &space) {
  size_t r = space.size();
  std::vector<int64_t> strides(r, 0);
  int64_t stride = 1;
  for (size_t k = 0; k < buf.size() && k < r; ++k) {
    size_t bj = buf.size() - 1 - k, si = r - 1 - k;
    strides[si] = buf[bj] == 1 ? 0 : stride;
    stride *= buf[bj];
  }
  return strides;
}

const char *kIndexVars[] = {"i", "j"};

std::string indexExpr(const std::vector<int64_t> &strides) {
  std::string e;
  size_t r = strides.size();
  for (size_t a = 0; a < r; ++a) {
    if (strides[a] == 0)
      continue;
    // The innermost loop variable is j; a rank-1 space loops over j alone.
    std::string var = r == 1 ? "j" : kIndexVars[a];
    if (!e.empty())
      e += " + ";
    e += strides[a] == 1 ? var : var + " * " + std::to_string(strides[a]);
  }
  return e.empty() ? "0" : e;
}

class NetworkEmitter {
public:
  NetworkEmitter(const CompiledNetwork &net, const FusedNetwork &f, const llvm::SourceMgr &sm,
                 const EmitOptions &opts, bool cuda)
      : net(net), f(f), sm(sm), opts(opts), snake(cppNamespaceOf(net.forward.name, opts)),
        cuda(cuda), cudaMath(cuda) {}

  std::string run() {
    os << "namespace dopa::generated::" << snake << " {\n\n";
    if (cuda)
      os << "const dopa::GeneratedSpec &spec(); // the C++ network: description and layout\n\n"
         << "constexpr int kThreads = 1024;\n\n";
    emitKernel(f.forward, "forward");
    emitKernel(f.backward, "backward");
    emitSpec();
    os << "} // namespace dopa::generated::" << snake << "\n";
    return os.str();
  }

private:
  const CompiledNetwork &net;
  const FusedNetwork &f;
  const llvm::SourceMgr &sm;
  const EmitOptions &opts;
  std::string snake;
  bool cuda;             // emit CUDA (device stages, a kernel per step) instead of C++
  bool cudaMath = false; // math functions for device code (stays set inside thread-0 sections)
  std::ostringstream os;

  // Per stage function.
  const Kernel *k = nullptr;
  std::ostringstream body;
  std::map<int, std::string> locals;
  std::map<std::string, std::string> pointers; // name -> declaration
  std::vector<std::string> pointerOrder;
  unsigned lastLine = 0;
  const Stage *stage = nullptr;
  bool bodyCallsLibm = false; // the nest's body calls a scalar math function

  const Graph &g() const { return k->graph; }

  std::string lineDirective(llvm::SMLoc loc) {
    if (!opts.lineDirectives || !loc.isValid())
      return "";
    unsigned line = sm.getLineAndColumn(loc).first;
    if (line == lastLine)
      return "";
    lastLine = line;
    return "#line " + std::to_string(line) + " \"" + opts.specPath + "\"\n";
  }

  std::string leafName(const Node &n, Buf home, int homeIndex) const {
    const Graph &fwd = net.forward;
    switch (home) {
    case Buf::Param: return ident(fwd.params[size_t(homeIndex)].name);
    case Buf::Input: return ident(fwd.inputs[size_t(homeIndex)].name);
    case Buf::State: return ident(fwd.states[size_t(homeIndex)].name);
    case Buf::NextState: return ident(fwd.states[size_t(homeIndex)].name) + "_next";
    case Buf::GradNext: return "d_" + ident(fwd.states[size_t(homeIndex)].name) + "_next";
    case Buf::GradPrev: return "d_" + ident(fwd.states[size_t(homeIndex)].name);
    case Buf::Output: return "out_" + ident(fwd.outputs[size_t(homeIndex)].name);
    case Buf::GradOutput: return "d_out_" + ident(fwd.outputs[size_t(homeIndex)].name);
    case Buf::Grad: return "d_" + ident(fwd.params[size_t(homeIndex)].name);
    default: break;
    }
    (void)n;
    return "";
  }

  /// The variable holding node `id`'s buffer, declared at the top of the stage function.
  std::string bufferOf(int id) {
    const Node &n = g().node(id);
    Buf home = k->home[size_t(id)];
    int hi = k->homeIndex[size_t(id)];
    std::string name = leafName(n, home, hi);
    if (name.empty()) {
      name = "t" + std::to_string(id);
      if (!n.name.empty())
        name += "_" + ident(n.name);
    }
    bool isConst = home == Buf::Param || home == Buf::Input || home == Buf::State ||
                   home == Buf::GradOutput || home == Buf::GradNext ||
                   (home == Buf::Saved && k->isBackward);
    std::string base;
    switch (home) {
    case Buf::Param: base = "a.params + " + std::to_string(k->offset[size_t(id)]); break;
    case Buf::Input: base = "a.inputs[" + std::to_string(hi) + "]"; break;
    case Buf::State: base = "a.state + " + std::to_string(k->offset[size_t(id)]); break;
    case Buf::NextState: base = "a.next + " + std::to_string(k->offset[size_t(id)]); break;
    case Buf::Saved: base = "a.saved + " + std::to_string(k->offset[size_t(id)]); break;
    case Buf::Scratch: base = "a.scratch + " + std::to_string(k->offset[size_t(id)]); break;
    case Buf::Output: base = "a.outputs[" + std::to_string(hi) + "]"; break;
    case Buf::GradOutput: base = "a.gradOutputs[" + std::to_string(hi) + "]"; break;
    case Buf::GradNext: base = "a.gradNext + " + std::to_string(k->offset[size_t(id)]); break;
    case Buf::GradPrev: base = "a.gradPrev + " + std::to_string(k->offset[size_t(id)]); break;
    case Buf::Record: base = "a.record + " + std::to_string(k->offset[size_t(id)]); break;
    default: throw std::logic_error("emit: node has no buffer");
    }
    declare(name, std::string(isConst ? "const T *__restrict " : "T *__restrict ") + name + " = " +
                      base + "; // " + ir::shapeStr(n.shape) +
                      (n.name.empty() ? "" : " " + n.name));
    return name;
  }

  std::string targetBuffer(Buf target, int index) {
    const Graph &fwd = net.forward;
    std::string name = leafName(Node(), target, index);
    std::string base;
    ir::Shape shape;
    switch (target) {
    case Buf::NextState:
      base = "a.next + " + std::to_string(f.stateOffsets[size_t(index)]);
      shape = fwd.states[size_t(index)].shape;
      break;
    case Buf::GradPrev:
      base = "a.gradPrev + " + std::to_string(f.stateOffsets[size_t(index)]);
      shape = fwd.states[size_t(index)].shape;
      break;
    case Buf::Output:
      base = "a.outputs[" + std::to_string(index) + "]";
      shape = fwd.node(fwd.outputs[size_t(index)].node).shape;
      break;
    case Buf::Saved: {
      int node = f.savedNodes[size_t(index)];
      name = "saved_t" + std::to_string(node);
      base = "a.saved + " + std::to_string(f.savedOffsets[size_t(index)]);
      shape = fwd.node(node).shape;
      break;
    }
    case Buf::Record: {
      name = "record" + std::to_string(index);
      base = "a.record + " + std::to_string(f.recordOffsets[size_t(index)]);
      shape = {};
      for (const DeferredOuter &d : f.deferred) {
        if (d.offsetA == f.recordOffsets[size_t(index)])
          shape = {d.rows};
        if (d.offsetB == f.recordOffsets[size_t(index)])
          shape = {d.cols};
      }
      break;
    }
    case Buf::Grad: {
      int64_t off = 0;
      for (int p = 0; p < index; ++p)
        off += ir::numElements(fwd.params[size_t(p)].shape);
      base = "a.grads + " + std::to_string(off);
      shape = fwd.params[size_t(index)].shape;
      break;
    }
    default: throw std::logic_error("emit: bad sink target");
    }
    declare(name, "T *__restrict " + name + " = " + base + "; // " + ir::shapeStr(shape));
    return name;
  }

  void declare(const std::string &name, const std::string &decl) {
    if (pointers.emplace(name, decl).second)
      pointerOrder.push_back(name);
  }

  /// Read node `id` (stored somewhere) at the current index, viewing its buffer as `view`.
  std::string readBuffer(int id, const ir::Shape &view) {
    const Node &n = g().node(id);
    if (k->home[size_t(id)] == Buf::Const)
      return "T(" + num(n.value) + ")";
    return bufferOf(id) + "[" + indexExpr(broadcastStrides(view, stage->space)) + "]";
  }

  bool stored(int id) const { return k->home[size_t(id)] != Buf::Inline; }

  /// The value of node `id` at the current index of the nest.
  std::string val(int id) {
    auto it = locals.find(id);
    if (it != locals.end())
      return it->second;
    if (stored(id))
      return readBuffer(id, g().node(id).shape);
    return compute(id);
  }

  /// Emit `const T v = <expression>;` for node `id` from its operands; returns the local.
  std::string compute(int id) {
    const Node &n = g().node(id);
    // Operands first, in order (an expression's evaluation order would make the declarations'
    // order, and so the output, depend on the compiler that built dopac).
    std::vector<std::string> args;
    if (n.op != Op::Outer)
      for (int o : n.operands)
        args.push_back(val(o));
    auto arg = [&](size_t k) { return args[k]; };
    std::string e;
    switch (n.op) {
    case Op::Neg: e = "-" + arg(0); break;
    case Op::Tanh: e = fn("tanh") + "(" + arg(0) + ")"; break;
    case Op::Sigmoid: e = "T(1) / (T(1) + " + fn("exp") + "(-" + arg(0) + "))"; break;
    case Op::Relu: {
      std::string x = arg(0);
      e = x + " > T(0) ? " + x + " : T(0)";
      break;
    }
    case Op::Exp: e = fn("exp") + "(" + arg(0) + ")"; break;
    case Op::Log: e = fn("log") + "(" + arg(0) + ")"; break;
    case Op::Abs: e = fn("abs") + "(" + arg(0) + ")"; break;
    case Op::Sqrt: e = fn("sqrt") + "(" + arg(0) + ")"; break;
    case Op::Step: e = arg(0) + " > T(0) ? T(1) : T(0)"; break;
    case Op::Sign: {
      std::string x = arg(0);
      e = "T((" + x + " > T(0)) - (" + x + " < T(0)))";
      break;
    }
    case Op::Detach: e = arg(0); break;
    case Op::Add: e = arg(0) + " + " + arg(1); break;
    case Op::Sub: e = arg(0) + " - " + arg(1); break;
    case Op::Mul: e = arg(0) + " * " + arg(1); break;
    case Op::Div: e = arg(0) + " / " + arg(1); break;
    case Op::Min: {
      std::string x = arg(0), y = arg(1);
      e = x + " <= " + y + " ? " + x + " : " + y;
      break;
    }
    case Op::Max: {
      std::string x = arg(0), y = arg(1);
      e = y + " <= " + x + " ? " + x + " : " + y;
      break;
    }
    case Op::LessEq: e = arg(0) + " <= " + arg(1) + " ? T(1) : T(0)"; break;
    case Op::Clip: {
      std::string x = arg(0), lo = arg(1), hi = arg(2);
      e = x + " < " + lo + " ? " + lo + " : (" + x + " > " + hi + " ? " + hi + " : " + x + ")";
      break;
    }
    case Op::InRange: {
      std::string x = arg(0), lo = arg(1), hi = arg(2);
      e = lo + " <= " + x + " && " + x + " <= " + hi + " ? T(1) : T(0)";
      break;
    }
    case Op::Outer: {
      // a[i] * b[j]: view a as a column and b as a row.
      const Node &a = g().node(n.operands[0]), &b = g().node(n.operands[1]);
      std::string x = locals.count(n.operands[0])
                          ? locals[n.operands[0]]
                          : readBuffer(n.operands[0], {ir::numElements(a.shape), 1});
      std::string y = locals.count(n.operands[1])
                          ? locals[n.operands[1]]
                          : readBuffer(n.operands[1], {1, ir::numElements(b.shape)});
      e = x + " * " + y;
      break;
    }
    case Op::BroadcastTo: e = arg(0); break;
    default:
      throw std::logic_error(std::string("emit: op '") + ir::opName(n.op) +
                             "' cannot be computed inline");
    }
    if (n.op == Op::Tanh || n.op == Op::Sigmoid || n.op == Op::Exp || n.op == Op::Log)
      bodyCallsLibm = true;
    std::string name = "v" + std::to_string(id);
    body << lineDirective(n.loc) << "const T " << name << " = " << e << ";\n";
    locals[id] = name;
    return name;
  }

  // --- stages ----------------------------------------------------------------

  /// A partial sum declared outside the inner loop and added to (or stored in) out[index] after it.
  struct Accumulator {
    std::string var;
    std::string out, index;
    bool assign; // out[index] = var (a row the loop owns) instead of +=
  };

  /// out[index] += v: an atomic add on the GPU, where blocks and warps share accumulators.
  std::string accumulate(const std::string &outBuf, const std::string &index,
                         const std::string &v) {
    if (cuda)
      return cat({"atomicAdd(&", outBuf, "[", index, "], ", v, ");\n"});
    return cat({outBuf, "[", index, "] += ", v, ";\n"});
  }

  /// A math function's name: std:: on the CPU, CUDA's overloads on the GPU.
  std::string fn(const char *name) const {
    if (!cudaMath)
      return std::string("std::") + name;
    return std::string(name) == "abs" ? "fabs" : name;
  }

  std::string stageName(size_t s, const std::string &kind) {
    const Stage &st = k->stages[s];
    std::string name = snake + "_" + kind + "_" + std::to_string(s);
    for (const Item &it : st.items)
      if (it.node >= 0 && !g().node(it.node).name.empty()) {
        name += "_" + ident(g().node(it.node).name);
        break;
      }
    return name;
  }

  std::string describe(const Item &it) {
    std::ostringstream d;
    if (it.kind == Item::Zero)
      return "zero d" + net.forward.states[size_t(it.targetIndex)].name;
    const Node &n = g().node(it.node);
    d << "%" << it.node << " " << ir::opName(n.op);
    if (!n.name.empty())
      d << " " << n.name;
    if (it.kind == Item::Store || it.kind == Item::Accumulate) {
      d << (it.kind == Item::Store ? " -> " : " += ") << bufName(it.target);
      if (it.target == Buf::NextState || it.target == Buf::GradPrev)
        d << " " << net.forward.states[size_t(it.targetIndex)].name;
      if (it.target == Buf::Grad)
        d << " " << net.forward.params[size_t(it.targetIndex)].name;
      if (it.target == Buf::Output)
        d << " " << net.forward.outputs[size_t(it.targetIndex)].name;
      if (it.target == Buf::Record)
        d << " (a factor of deferred outer-product gradients)";
    }
    return d.str();
  }

  void emitNest(std::ostringstream &out) {
    const ir::Shape &space = stage->space;
    size_t rank = space.size();
    if (rank > 2)
      throw std::runtime_error("the C++ emitter handles tensors of rank <= 2; " + g().name +
                               " has a value of shape " + ir::shapeStr(space));
    std::vector<Accumulator> partials;
    std::vector<std::string> zeroFirst;
    auto dependsOnInner = [&](const std::vector<int64_t> &strides) {
      return rank > 0 && strides.back() != 0;
    };
    for (const Item &it : stage->items) {
      const Node &n = it.node >= 0 ? g().node(it.node) : Node();
      switch (it.kind) {
      case Item::Pointwise: {
        std::string v = compute(it.node);
        body << bufferOf(it.node) << "[" << indexExpr(broadcastStrides(n.shape, space))
             << "] = " << v << ";\n";
        break;
      }
      case Item::Store: {
        std::string v = val(it.node);
        body << targetBuffer(it.target, it.targetIndex) << "["
             << indexExpr(broadcastStrides(n.shape, space)) << "] = " << v << ";\n";
        break;
      }
      case Item::Accumulate: {
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
      case Item::VecDot: {
        const Node &a = g().node(n.operands[0]), &b = g().node(n.operands[1]);
        std::string out = bufferOf(it.node);
        std::string acc = "acc" + std::to_string(it.node);
        if (it.kind == Item::RowDot) {
          std::string m = val(n.operands[0]);
          std::string v = locals.count(n.operands[1])
                              ? locals[n.operands[1]]
                              : readBuffer(n.operands[1], {1, ir::numElements(b.shape)});
          body << lineDirective(n.loc) << acc << " += " << m << " * " << v << ";\n";
          partials.push_back({acc, out, "i", true});
        } else if (it.kind == Item::ColDot) {
          std::string v = locals.count(n.operands[0])
                              ? locals[n.operands[0]]
                              : readBuffer(n.operands[0], {ir::numElements(a.shape), 1});
          std::string m = val(n.operands[1]);
          zeroFirst.push_back(cat({out, "[e] = T(0);", std::to_string(ir::numElements(n.shape))}));
          body << lineDirective(n.loc) << accumulate(out, "j", cat({v, " * ", m}));
        } else {
          std::string x = val(n.operands[0]), y = val(n.operands[1]);
          body << lineDirective(n.loc) << acc << " += " << x << " * " << y << ";\n";
          if (cuda)
            zeroFirst.push_back(cat({out, "[e] = T(0);", "1"}));
          partials.push_back({acc, out, "0", !cuda});
        }
        break;
      }
      case Item::Reduce: {
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
        zeroFirst.push_back(cat({out, "[e] = T(0);", std::to_string(ir::numElements(n.shape))}));
        if (dependsOnInner(strides)) {
          body << lineDirective(n.loc) << accumulate(out, indexExpr(strides), v);
        } else {
          std::string acc = "acc" + std::to_string(it.node);
          body << lineDirective(n.loc) << acc << " += " << v << ";\n";
          if (rank > 0)
            strides.back() = 0;
          partials.push_back({acc, out, indexExpr(strides), false});
        }
        break;
      }
      default: throw std::logic_error("emit: item kind not allowed in a nest");
      }
    }
    // Zero the accumulated outputs, then the loops.
    for (const std::string &z : zeroFirst) {
      size_t semi = z.find(';');
      std::string stmt = z.substr(0, semi + 1), count = z.substr(semi + 1);
      out << loopE(count) << stmt << "\n";
    }
    if (cuda) {
      emitNestCuda(out, partials, !zeroFirst.empty());
      return;
    }
    std::string decls, finish, clause;
    for (const Accumulator &p : partials) {
      decls += "T " + p.var + " = T(0);\n";
      finish += cat({p.out, "[", p.index, p.assign ? "] = " : "] += ", p.var, ";\n"});
      clause += (clause.empty() ? "" : ", ") + p.var;
    }
    if (rank == 0) {
      out << decls << body.str() << finish;
      return;
    }
    // Vectorize loops long enough to gain from it whose bodies have no scalar libm calls (those
    // would only vectorize with a vector math library, and compilers warn when a requested
    // vectorization fails).
    std::string pragma;
    if (space.back() >= 16 && !bodyCallsLibm)
      pragma = clause.empty() ? "#pragma omp simd\n"
                              : "#pragma omp simd reduction(+ : " + clause + ")\n";
    std::string inner =
        "for (int j = 0; j < " + std::to_string(space.back()) + "; ++j) {\n" + body.str() + "}\n";
    if (rank == 1) {
      out << decls << pragma << inner << finish;
    } else {
      out << "for (int i = 0; i < " << space[0] << "; ++i) {\n"
          << decls << pragma << inner << finish << "}\n";
    }
  }

  /// A loop over e < count: serial on the CPU, strided over the block's threads on the GPU.
  std::string loopE(const std::string &count) const {
    if (cuda)
      return "for (int e = tid; e < " + count + "; e += nthreads)\n";
    return "for (int e = 0; e < " + count + "; ++e)\n";
  }

  /// The GPU mapping of a nest: rank 2, a warp per row i, its lanes over j; rank 1, the block's
  /// threads over j; rank 0, thread 0. Partial sums are reduced over the warp, then added
  /// atomically (a row the warp owns is stored).
  void emitNestCuda(std::ostringstream &out, const std::vector<Accumulator> &partials,
                    bool zeroed) {
    const ir::Shape &space = stage->space;
    size_t rank = space.size();
    if (zeroed)
      out << "dopa_grid_sync();\n";
    std::string decls, finish;
    for (const Accumulator &p : partials) {
      decls += "T " + p.var + " = T(0);\n";
      if (rank == 0)
        finish += cat({p.out, "[", p.index, p.assign ? "] = " : "] += ", p.var, ";\n"});
      else {
        finish += cat({p.var, " = dopa_warp_sum(", p.var, ");\n"});
      }
    }
    std::string laneFinish;
    for (const Accumulator &p : partials)
      if (rank > 0)
        laneFinish += p.assign ? cat({p.out, "[", p.index, "] = ", p.var, ";\n"})
                               : cat({"atomicAdd(&", p.out, "[", p.index, "], ", p.var, ");\n"});
    if (rank == 0) {
      out << "if (tid == 0) {\n" << decls << body.str() << finish << "}\n";
      return;
    }
    std::string lane0 =
        laneFinish.empty() ? "" : "if ((threadIdx.x & 31) == 0) {\n" + laneFinish + "}\n";
    if (rank == 1) {
      // Every thread of the block runs the loop and the warp reductions (full warps).
      out << "{\n"
          << decls << "for (int j = tid; j < " << space[0] << "; j += nthreads) {\n"
          << body.str() << "}\n"
          << finish << lane0 << "}\n";
    } else {
      out << "for (int i = tid >> 5; i < " << space[0] << "; i += nthreads >> 5) {\n"
          << decls << "for (int j = threadIdx.x & 31; j < " << space[1] << "; j += 32) {\n"
          << body.str() << "}\n"
          << finish << lane0 << "}\n";
    }
  }

  void emitDense(std::ostringstream &out) {
    const Item &it = stage->items[0];
    const Node &n = g().node(it.node);
    const Node &a = g().node(n.operands[0]), &b = g().node(n.operands[1]);
    for (int o : n.operands)
      if (k->home[size_t(o)] == Buf::Const)
        throw std::runtime_error("the C++ emitter does not multiply constant matrices");
    std::string A = bufferOf(n.operands[0]), B = bufferOf(n.operands[1]), C = bufferOf(it.node);
    out << lineDirective(n.loc);
    if (cuda) {
      // A warp per output row for matrix @ vector; a thread per output otherwise.
      if (a.shape.size() == 2 && b.shape.size() == 1)
        out << "for (int r = tid >> 5; r < " << a.shape[0]
            << "; r += nthreads >> 5) {\nT acc = T(0);\nfor (int k = threadIdx.x & 31; k < "
            << a.shape[1] << "; k += 32)\nacc += " << A << "[r * " << a.shape[1] << " + k] * " << B
            << "[k];\nacc = dopa_warp_sum(acc);\nif ((threadIdx.x & 31) == 0)\n"
            << C << "[r] = acc;\n}\n";
      else if (a.shape.size() == 1 && b.shape.size() == 2)
        out << "for (int c = tid; c < " << b.shape[1]
            << "; c += nthreads) {\nT acc = T(0);\nfor (int k = 0; k < " << b.shape[0]
            << "; ++k)\nacc += " << A << "[k] * " << B << "[k * " << b.shape[1] << " + c];\n"
            << C << "[c] = acc;\n}\n";
      else
        out << "for (int e = tid; e < " << a.shape[0] * b.shape[1]
            << "; e += nthreads) {\nconst int r = e / " << b.shape[1] << ", c = e % " << b.shape[1]
            << ";\nT acc = T(0);\nfor (int k = 0; k < " << a.shape[1] << "; ++k)\nacc += " << A
            << "[r * " << a.shape[1] << " + k] * " << B << "[k * " << b.shape[1] << " + c];\n"
            << C << "[e] = acc;\n}\n";
      return;
    }
    if (a.shape.size() == 2 && b.shape.size() == 1)
      out << "Vec<T>(" << C << ", " << a.shape[0] << ").noalias() = ConstRowMat<T>(" << A << ", "
          << a.shape[0] << ", " << a.shape[1] << ") * ConstVec<T>(" << B << ", " << b.shape[0]
          << ");\n";
    else if (a.shape.size() == 1 && b.shape.size() == 2)
      out << "RowVec<T>(" << C << ", " << b.shape[1] << ").noalias() = ConstRowVec<T>(" << A << ", "
          << a.shape[0] << ") * ConstRowMat<T>(" << B << ", " << b.shape[0] << ", " << b.shape[1]
          << ");\n";
    else
      out << "RowMat<T>(" << C << ", " << a.shape[0] << ", " << b.shape[1]
          << ").noalias() = ConstRowMat<T>(" << A << ", " << a.shape[0] << ", " << a.shape[1]
          << ") * ConstRowMat<T>(" << B << ", " << b.shape[0] << ", " << b.shape[1] << ");\n";
  }

  void emitOpaque(std::ostringstream &out) {
    const Item &it = stage->items[0];
    if (it.kind == Item::Zero) {
      std::string t = targetBuffer(it.target, it.targetIndex);
      out << loopE(
                 std::to_string(ir::numElements(net.forward.states[size_t(it.targetIndex)].shape)))
          << t << "[e] = T(0);\n";
      return;
    }
    // On the GPU, copies run over the block's threads; the rest runs on thread 0.
    const Node &n0 = g().node(it.node);
    bool strided = n0.op == Op::Reshape || n0.op == Op::Gather || n0.op == Op::Concat;
    if (cuda && !strided) {
      out << "if (tid == 0) {\n";
      cuda = false;
      emitOpaque(out);
      cuda = true;
      out << "}\n";
      return;
    }
    const Node &n = g().node(it.node);
    std::string o = bufferOf(it.node);
    auto in = [&](size_t k) {
      int id = n.operands[k];
      if (homeOf(id) == Buf::Const)
        throw std::runtime_error(std::string("the C++ emitter does not apply '") +
                                 ir::opName(n.op) + "' to a constant");
      return bufferOf(id);
    };
    int64_t N = ir::numElements(n.shape);
    out << lineDirective(n.loc);
    switch (n.op) {
    case Op::Reshape: {
      int id = n.operands[0];
      if (homeOf(id) == Buf::Const)
        out << loopE(std::to_string(N)) << o << "[e] = T(" << num(g().node(id).value) << ");\n";
      else
        out << loopE(std::to_string(N)) << o << "[e] = " << in(0) << "[e];\n";
      break;
    }
    case Op::Transpose: {
      const ir::Shape &s = g().node(n.operands[0]).shape;
      out << "for (int i = 0; i < " << s[0] << "; ++i)\nfor (int j = 0; j < " << s[1] << "; ++j)\n"
          << o << "[j * " << s[0] << " + i] = " << in(0) << "[i * " << s[1] << " + j];\n";
      break;
    }
    case Op::Gather: {
      const ir::Shape &s = g().node(n.operands[0]).shape;
      std::string idx = in(1);
      out << "{\nconst int64_t row = int64_t(" << idx << "[0]); // checked by the runtime\n"
          << loopE(std::to_string(s[1])) << o << "[e] = " << in(0) << "[row * " << s[1]
          << " + e];\n}\n";
      break;
    }
    case Op::Concat: {
      int64_t at = 0;
      for (size_t k = 0; k < n.operands.size(); ++k) {
        int64_t len = ir::numElements(g().node(n.operands[k]).shape);
        out << loopE(std::to_string(len)) << o << "[" << at << " + e] = " << in(k) << "[e];\n";
        at += len;
      }
      break;
    }
    case Op::Slice:
    case Op::SliceGrad: {
      const ir::Shape &full = n.op == Op::Slice ? g().node(n.operands[0]).shape : n.shape;
      size_t r = full.size();
      if (r > 2)
        throw std::runtime_error("the C++ emitter slices tensors of rank <= 2");
      const auto &at = n.attrs;
      std::string src = in(0);
      if (n.op == Op::SliceGrad)
        out << "for (int e = 0; e < " << N << "; ++e)\n" << o << "[e] = T(0);\n";
      out << "{\nint64_t k = 0;\n";
      std::string fullIdx;
      for (size_t d = 0; d < r; ++d) {
        std::string v = kIndexVars[d];
        out << "for (int64_t " << v << " = " << at[d] << "; " << v << " < " << at[r + d] << "; ++"
            << v << ")\n";
        int64_t stride = 1;
        for (size_t e = d + 1; e < r; ++e)
          stride *= full[e];
        fullIdx += (fullIdx.empty() ? "" : " + ") + v + " * " + std::to_string(stride);
      }
      if (fullIdx.empty())
        fullIdx = "0";
      if (n.op == Op::Slice)
        out << o << "[k++] = " << src << "[" << fullIdx << "];\n}\n";
      else
        out << o << "[" << fullIdx << "] = " << src << "[k++];\n}\n";
      break;
    }
    case Op::Softmax:
    case Op::LogSoftmax: {
      std::string x = in(0);
      std::string ex = fn("exp"), lg = fn("log");
      out << "{\nT mx = " << x << "[0];\nfor (int e = 1; e < " << N << "; ++e)\nmx = mx < " << x
          << "[e] ? " << x << "[e] : mx;\nT sum = 0;\nfor (int e = 0; e < " << N
          << "; ++e)\nsum += " << ex << "(" << x << "[e] - mx);\nconst T logZ = mx + " << lg
          << "(sum);\n"
          << "for (int e = 0; e < " << N << "; ++e)\n"
          << o
          << "[e] = " << (n.op == Op::Softmax ? ex + "(" + x + "[e] - logZ)" : x + "[e] - logZ")
          << ";\n}\n";
      break;
    }
    default:
      throw std::runtime_error(std::string("the C++ emitter does not support op '") +
                               ir::opName(n.op) + "'");
    }
  }

  Buf homeOf(int id) const { return k->home[size_t(id)]; }

  void emitKernel(const Kernel &kernel, const std::string &kind) {
    k = &kernel;
    std::vector<std::string> names;
    for (size_t s = 0; s < kernel.stages.size(); ++s) {
      stage = &kernel.stages[s];
      body.str("");
      bodyCallsLibm = false;
      locals.clear();
      pointers.clear();
      pointerOrder.clear();
      lastLine = 0;
      std::ostringstream code;
      if (stage->kind == Stage::Nest)
        emitNest(code);
      else if (stage->kind == Stage::Dense)
        emitDense(code);
      else
        emitOpaque(code);
      std::string name = stageName(s, kind);
      names.push_back(name);
      os << "// " << kind << " stage " << s << ": "
         << (stage->kind == Stage::Nest    ? "fused loop nest over "
             : stage->kind == Stage::Dense ? "dense product (Eigen), "
                                           : "")
         << (stage->kind == Stage::Opaque ? "" : ir::shapeStr(stage->space)) << "\n";
      for (const Item &it : stage->items)
        os << "//   " << describe(it) << "\n";
      os << "template <class T> " << (cuda ? "__device__ __forceinline__ " : "static ") << "void "
         << name << "(const dopa::StepArgs<T> &a) {\n";
      for (const std::string &p : pointerOrder)
        os << pointers[p] << "\n";
      if (cuda) // this thread's index among all threads working on the element, and their count
        os << "const int tid = a.split * blockDim.x + threadIdx.x, nthreads = a.splits * "
              "blockDim.x;\n(void)tid;\n(void)nthreads;\n";
      os << code.str();
      if (lastLine)
        os << "//@@RESTORE_LINE@@\n";
      os << "}\n\n";
    }
    if (cuda) {
      emitCudaKernel(kind, names);
      return;
    }
    os << "/// One " << kind << " step of " << net.forward.name << " for one batch element.\n";
    os << "template <class T> void " << kind << "_step(const dopa::StepArgs<T> &a) {\n";
    for (const std::string &n : names)
      os << n << "(a);\n";
    os << "}\n\n";
  }

  /// The kernel (a block per batch element, the stages in order with a barrier between them)
  /// and its host launcher.
  void emitCudaKernel(const std::string &kind, const std::vector<std::string> &names) {
    os << "/// One " << kind << " step of " << net.forward.name
       << " for the whole batch: block b runs batch element b.\n"
       << "template <class T>\n__global__ void __launch_bounds__(kThreads) " << kind
       << "_kernel(const dopa::BatchArgs<T> ba) {\n"
       << "const int64_t b = ba.firstElement + blockIdx.x / ba.splits;\n"
       << "const T *in[dopa::kMaxIO];\nT *out[dopa::kMaxIO];\nconst T *gout[dopa::kMaxIO];\n"
       << "for (int k = 0; k < ba.numInputs; ++k)\nin[k] = ba.inputs[k] + b * ba.inputNumel[k];\n"
       << "for (int k = 0; k < ba.numOutputs; ++k) {\nout[k] = ba.outputs[k] ? ba.outputs[k] + b "
          "* ba.outputNumel[k] : nullptr;\ngout[k] = ba.gradOutputs[k] ? ba.gradOutputs[k] + b * "
          "ba.outputNumel[k] : nullptr;\n}\n"
       << "dopa::StepArgs<T> a;\na.split = blockIdx.x % ba.splits;\na.splits = ba.splits;\n"
       << "a.params = ba.params;\na.inputs = in;\n"
       << "a.state = ba.state + b * ba.stateStride;\n"
       << "a.next = ba.next ? ba.next + b * ba.stateStride : nullptr;\na.outputs = out;\n"
       << "a.saved = ba.saved + b * ba.savedStride;\na.scratch = ba.scratch + b * "
          "ba.scratchStride;\n"
       << "a.gradOutputs = gout;\na.gradNext = ba.gradNext ? ba.gradNext + b * ba.stateStride : "
          "nullptr;\n"
       << "a.gradPrev = ba.gradPrev ? ba.gradPrev + b * ba.stateStride : nullptr;\n"
       << "a.grads = ba.grads;\na.record = ba.record ? ba.record + b * ba.recordStride : "
          "nullptr;\n";
    for (size_t i = 0; i < names.size(); ++i)
      os << (i ? "dopa_grid_sync();\n" : "") << names[i] << "(a);\n";
    os << "}\n\n";
    os << "template <class T> void " << kind
       << "_launch(const dopa::BatchArgs<T> &ba, void *stream) {\n"
       << "dopa_launch_cooperative(" << kind << "_kernel<T>, ba, kThreads, stream);\n"
       << "}\n\n";
  }

  std::string infoTensor(const std::string &name, const ir::Shape &shape, bool isInt,
                         const sema::Init *init) {
    std::ostringstream s;
    s << "{\"" << name << "\", {";
    for (size_t i = 0; i < shape.size(); ++i)
      s << (i ? ", " : "") << shape[i];
    s << "}, " << (isInt ? "true" : "false") << ", ";
    if (!init)
      s << "{}";
    else {
      const char *kind = init->kind == sema::Init::Constant  ? "Constant"
                         : init->kind == sema::Init::Uniform ? "Uniform"
                                                             : "Normal";
      s << "{dopa::InitSpec::" << kind << ", " << num(init->a) << ", " << num(init->b) << "}";
    }
    s << "}";
    return s.str();
  }

  void emitSpec() {
    const Graph &fwd = net.forward;
    if (cuda) {
      os << "const dopa::CudaSpec &cuda_spec() {\n"
         << "static const dopa::CudaSpec s = {\"" << fwd.name
         << "\", &spec, forward_launch<float>, backward_launch<float>, forward_launch<double>, "
            "backward_launch<double>, kThreads};\nreturn s;\n}\n\n";
      return;
    }
    os << "static dopa::NetworkInfo info() {\n  dopa::NetworkInfo n;\n  n.name = \"" << fwd.name
       << "\";\n";
    for (const ir::Variable &p : fwd.params)
      os << "n.params.push_back(" << infoTensor(p.name, p.shape, false, &p.init) << ");\n";
    for (const ir::Variable &in : fwd.inputs)
      os << "n.inputs.push_back(" << infoTensor(in.name, in.shape, in.isInt, nullptr) << ");\n";
    for (const ir::Output &o : fwd.outputs)
      os << "n.outputs.push_back(" << infoTensor(o.name, fwd.node(o.node).shape, false, nullptr)
         << ");\n";
    for (const ir::Variable &s : fwd.states)
      os << "n.states.push_back(" << infoTensor(s.name, s.shape, false, &s.init) << ");\n";
    os << "dopa::finalizeInfo(n);\nreturn n;\n}\n\n";
    os << "static const int64_t stateOffsets[] = {";
    for (size_t i = 0; i < f.stateOffsets.size(); ++i)
      os << (i ? ", " : "") << f.stateOffsets[i];
    if (f.stateOffsets.empty())
      os << "0";
    os << "};\n";
    // Rows of the table each integer input indexes (checked before the parallel region).
    std::vector<int64_t> rows = ir::gatherTableRows(fwd);
    os << "static const int64_t inputRows[] = {";
    for (size_t i = 0; i < rows.size(); ++i)
      os << (i ? ", " : "") << rows[i];
    if (rows.empty())
      os << "0";
    os << "};\n\n";
    os << "static const dopa::DeferredOuter deferred[] = {";
    for (const DeferredOuter &d : f.deferred) {
      int64_t off = 0;
      for (int p = 0; p < d.param; ++p)
        off += ir::numElements(fwd.params[size_t(p)].shape);
      os << "{" << off << ", " << d.rows << ", " << d.cols << ", " << d.offsetA << ", " << d.offsetB
         << "}, ";
    }
    if (f.deferred.empty())
      os << "{0, 0, 0, 0, 0}";
    os << "};\n\n";
    os << "const dopa::GeneratedSpec &spec() {\n"
       << "static const dopa::GeneratedSpec s = {\"" << fwd.name << "\", \"" << opts.specPath
       << "\", info, " << f.stateNumel << ", stateOffsets, " << f.savedNumel << ", "
       << std::max(f.forward.scratchNumel, f.backward.scratchNumel) << ", inputRows, "
       << "forward_step<float>, backward_step<float>, forward_step<double>, "
          "backward_step<double>, "
       << opts.checkpointEvery << ", " << opts.memoryBudget << ", " << f.deferred.size()
       << ", deferred, " << f.recordNumel << "};\nreturn s;\n}\n\n";
  }
};

} // namespace

std::string dopa::emitCppNetwork(const CompiledNetwork &net, const FusedNetwork &fused,
                                 const llvm::SourceMgr &sources, const EmitOptions &options) {
  return NetworkEmitter(net, fused, sources, options, /*cuda=*/false).run();
}

std::string dopa::emitCudaNetwork(const CompiledNetwork &net, const FusedNetwork &fused,
                                  const llvm::SourceMgr &sources, const EmitOptions &options) {
  return NetworkEmitter(net, fused, sources, options, /*cuda=*/true).run();
}

std::string dopa::formatCpp(const std::string &code) {
  clang::format::FormatStyle style = clang::format::getLLVMStyle();
  style.ColumnLimit = 100;
  style.SortIncludes = clang::format::FormatStyle::SI_Never;
  clang::tooling::Range all(0, unsigned(code.size()));
  clang::tooling::Replacements repl = clang::format::reformat(style, code, {all}, "generated.cpp");
  auto result = clang::tooling::applyAllReplacements(code, repl);
  if (!result) {
    llvm::consumeError(result.takeError());
    return code;
  }
  return *result;
}

/// Replace each restore marker with a #line directive naming the generated file's next line.
static std::string restoreLines(const std::string &code, const std::string &outputName) {
  std::istringstream in(code);
  std::ostringstream out;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find("//@@RESTORE_LINE@@") != std::string::npos)
      out << "#line " << n + 1 << " \"" << outputName << "\"\n";
    else
      out << line << "\n";
  }
  return out.str();
}

static std::string banner(const EmitOptions &o, const std::string &what) {
  std::string name = o.outputName.empty() ? "generated" : o.outputName;
  std::string head = "//===- " + name + " - " + what + " ";
  while (head.size() < 95)
    head += '-';
  head += "===//\n";
  return head +
         "//\n"
         "// Generated by dopac from " +
         o.specPath +
         ". Do not edit: change the spec and rebuild.\n"
         "//\n"
         "// Conventions: one call of a step function computes one time step for one batch "
         "element.\n"
         "// Tensors are row-major float (T = float) or double (T = double, for gradient "
         "checks);\n"
         "// weights are W[post, pre]; per-postsynaptic quantities are [H, 1] columns. A state, "
         "saved\n"
         "// or scratch block holds its tensors at 16-element aligned offsets. Backward steps\n"
         "// accumulate (+=) into the parameter gradients. `#line` directives point at the spec.\n"
         "//\n"
         "//===------------------------------------------------------------------------------"
         "===//\n";
}

std::string dopa::emitCppFile(const std::vector<std::string> &bodies, const EmitOptions &o) {
  std::string code = banner(o, "generated network kernels");
  code += "#include \"dopa/runtime/Generated.h\"\n\n#include <Eigen/Core>\n\n#include "
          "<algorithm>\n#include <cmath>\n#include <cstdint>\n\n";
  code += "namespace {\n"
          "// Eigen views of the generated code's buffers (row-major).\n"
          "template <class T> using Vec = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>;\n"
          "template <class T> using ConstVec = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, "
          "1>>;\n"
          "template <class T> using RowVec = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;\n"
          "template <class T> using ConstRowVec = Eigen::Map<const Eigen::Matrix<T, 1, "
          "Eigen::Dynamic>>;\n"
          "template <class T>\nusing RowMat = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, "
          "Eigen::Dynamic, Eigen::RowMajor>>;\n"
          "template <class T>\nusing ConstRowMat = Eigen::Map<const Eigen::Matrix<T, "
          "Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;\n"
          "} // namespace\n\n";
  for (const std::string &b : bodies)
    code += b + "\n";
  if (o.format)
    code = formatCpp(code);
  return restoreLines(code, o.outputName.empty() ? "generated.cpp" : o.outputName);
}

std::string dopa::cppNamespaceOf(const std::string &name, const EmitOptions &o) {
  return o.cppNamespace.empty() ? snakeCase(name) : o.cppNamespace;
}

std::string dopa::emitCudaFile(const std::vector<std::string> &bodies, const EmitOptions &o) {
  std::string code = banner(o, "generated CUDA kernels");
  code += "#include \"dopa/cuda/CudaSpec.h\"\n\n#include <cooperative_groups.h>\n#include "
          "<cstdint>\n#include <cuda_runtime.h>\n#include <stdexcept>\n#include <string>\n\n";
  code +=
      "namespace {\n"
      "/// The sum of v over the 32 lanes of a warp (every lane gets it).\n"
      "template <class T> __device__ __forceinline__ T dopa_warp_sum(T v) {\n"
      "  for (int o = 16; o > 0; o >>= 1)\n"
      "    v += __shfl_xor_sync(0xffffffffu, v, o);\n"
      "  return v;\n"
      "}\n\n"
      "/// Wait for every block of the grid: the blocks of an element share its stages.\n"
      "__device__ __forceinline__ void dopa_grid_sync() { cooperative_groups::this_grid().sync(); "
      "}\n\n"
      "/// Launch `kernel` cooperatively: `splits` blocks per batch element, as many as fit on\n"
      "/// the device at once (at most 8); batches larger than the device runs in chunks.\n"
      "template <class T>\n"
      "void dopa_launch_cooperative(void (*kernel)(const dopa::BatchArgs<T>), "
      "dopa::BatchArgs<T> ba, int threads, void *stream) {\n"
      "  int device = 0, sms = 0, perSM = 0;\n"
      "  cudaGetDevice(&device);\n"
      "  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);\n"
      "  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSM, kernel, threads, 0);\n"
      "  const int capacity = sms * perSM;\n"
      "  if (capacity < 1)\n"
      "    throw std::runtime_error(\"CUDA kernel does not fit on the device\");\n"
      "  const int batch = ba.batch;\n"
      "  for (int first = 0; first < batch; first += capacity) {\n"
      "    const int n = batch - first < capacity ? batch - first : capacity;\n"
      "    ba.firstElement = first;\n"
      "    ba.splits = capacity / n < 8 ? capacity / n : 8;\n"
      "    void *args[] = {&ba};\n"
      "    cudaError_t e = cudaLaunchCooperativeKernel(reinterpret_cast<void *>(kernel), "
      "dim3(unsigned(n * ba.splits)), dim3(unsigned(threads)), args, 0, "
      "static_cast<cudaStream_t>(stream));\n"
      "    if (e != cudaSuccess)\n"
      "      throw std::runtime_error(std::string(\"cooperative launch: \") + "
      "cudaGetErrorString(e));\n"
      "  }\n"
      "}\n"
      "} // namespace\n\n";
  for (const std::string &b : bodies)
    code += b + "\n";
  if (o.format)
    code = formatCpp(code);
  return restoreLines(code, o.outputName.empty() ? "generated.cu" : o.outputName);
}

std::string dopa::emitCppHeader(const std::vector<std::string> &names, const EmitOptions &o) {
  std::string code = banner(o, "generated network accessors");
  code += "#pragma once\n\n#include \"dopa/runtime/Generated.h\"\n\nnamespace dopa {\nstruct "
          "CudaSpec;\n}\n\n";
  for (const std::string &n : names) {
    std::string ns = cppNamespaceOf(n, o);
    code += "namespace dopa::generated::" + ns;
    code += " {\n/// " + n;
    code += ": its description and step functions.\nconst dopa::GeneratedSpec &spec();\n";
    code += "/// Its CUDA kernels (defined where the cuda backend is built).\n";
    code += "const dopa::CudaSpec &cuda_spec();\n";
    code += "} // namespace dopa::generated::" + ns + "\n\n";
  }
  return o.format ? formatCpp(code) : code;
}
