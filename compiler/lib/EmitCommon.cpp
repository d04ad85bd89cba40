//===- EmitCommon.cpp - The emitters' shared core -------------------------===//
//
// Everything the C++ and the CUDA emitter print alike: the scalar code of fused loop nests, stage
// names and comments, offset constants; and the file-level pieces (banner, #line restoration).
// Buffer names, declarations and loads are in EmitBuffers.cpp, the items of a nest and the
// data-movement stages in EmitStages.cpp. Backend differences go through the hooks of
// NetworkEmitter (EmitCommon.h); nothing here tests which backend it is printing for.
//
//===----------------------------------------------------------------------===//
#include "EmitCommon.h"

#include "llvm/Support/MemoryBuffer.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <stdexcept>

using namespace dopa;
using namespace dopa::emit;
using ir::Graph;
using ir::Node;
using ir::Op;
using kern::Buf;
using kern::Item;
using kern::Stage;

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

std::string dopa::cppNamespaceOf(const std::string &name, const EmitOptions &o) {
  return o.cppNamespace.empty() ? snakeCase(name) : o.cppNamespace;
}

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

namespace {

/// Names a spec name must not take: C++ keywords, and the names of the generated code's own
/// locals, loop variables and support types.
const std::set<std::string> &reservedNames() {
  static const std::set<std::string> k = {
      "alignas",  "alignof",     "and",       "asm",       "auto",     "bool",     "break",
      "case",     "catch",       "char",      "class",     "const",    "continue", "default",
      "delete",   "do",          "double",    "else",      "enum",     "explicit", "extern",
      "false",    "float",       "for",       "friend",    "goto",     "if",       "inline",
      "int",      "long",        "mutable",   "namespace", "new",      "not",      "operator",
      "or",       "private",     "protected", "public",    "register", "return",   "short",
      "signed",   "sizeof",      "static",    "struct",    "switch",   "template", "this",
      "throw",    "true",        "try",       "typedef",   "typename", "union",    "unsigned",
      "using",    "virtual",     "void",      "volatile",  "while",    "xor",      "a",
      "i",        "j",           "T",         "std",       "e",        "k",        "r",
      "c",        "acc",         "row",       "mx",        "sum",      "logZ",     "tid",
      "nthreads", "dopa",        "int64_t",   "Vec",       "ConstVec", "RowVec",   "ConstRowVec",
      "RowMat",   "ConstRowMat", "kThreads"};
  return k;
}

/// Whether `s` has the form of a name the emitter makes up (v12, t3_hn, acc7, record2, saved_t4,
/// d_x, out_y, x_next), so that a spec name of that form could collide with one.
bool looksGenerated(const std::string &s) {
  for (const char *prefix : {"v", "t", "acc", "record", "saved_t"}) {
    size_t n = std::strlen(prefix);
    if (s.size() > n && s.compare(0, n, prefix) == 0 &&
        std::isdigit(static_cast<unsigned char>(s[n])))
      return true;
  }
  auto endsWith = [&](const std::string &suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return s.compare(0, 2, "d_") == 0 || s.compare(0, 4, "out_") == 0 || endsWith("_next");
}

/// A spec name as part of a snake_case identifier ("i2h.weight" -> "i2h_weight", "h2DA" ->
/// "h2_da", "d hebb'" -> "d_hebb"): no leading, trailing or doubled underscores.
std::string snakePart(const std::string &name) {
  std::string out;
  for (char c : snakeCase(name)) {
    char d = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    if (d == '_' && (out.empty() || out.back() == '_'))
      continue;
    out += d;
  }
  while (!out.empty() && out.back() == '_')
    out.pop_back();
  return out;
}

/// A spec name in CamelCase, for constants ("i2h.weight" -> "I2hWeight").
std::string camelPart(const std::string &name) {
  std::string out;
  bool upper = true;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) {
      upper = true;
      continue;
    }
    out += upper ? char(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  return out;
}

/// At most this many spec names make up a stage function's name.
constexpr size_t kMaxNameFragments = 4;

} // namespace

std::string dopa::emit::num(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, end);
  if (s.find_first_of(".eEn") == std::string::npos)
    s += ".0";
  return s;
}

std::string dopa::emit::cat(std::initializer_list<std::string_view> parts) {
  std::string out;
  for (std::string_view p : parts)
    out += p;
  return out;
}

std::string dopa::emit::ident(const std::string &name) {
  std::string s;
  for (char c : name)
    s += (std::isalnum(static_cast<unsigned char>(c)) || c == '_') ? c : '_';
  if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0])))
    s = "v_" + s;
  if (reservedNames().count(s) || looksGenerated(s))
    s += "_";
  return s;
}

std::string dopa::emit::quoted(const std::string &text) {
  std::string s = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\')
      s += '\\';
    s += c;
  }
  return s + "\"";
}

std::vector<int64_t> dopa::emit::broadcastStrides(const ir::Shape &buf, const ir::Shape &space) {
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

std::string dopa::emit::linear(std::initializer_list<std::pair<std::string, int64_t>> terms) {
  std::string e;
  for (const auto &[var, stride] : terms) {
    if (var == "0" || stride == 0)
      continue;
    if (!e.empty())
      e += " + ";
    e += stride == 1 ? var : var + " * " + std::to_string(stride);
  }
  return e.empty() ? "0" : e;
}

std::string dopa::emit::banner(const EmitOptions &o, const std::string &what) {
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
         "// accumulate (+=) into the parameter gradients. Each stage function is named after the\n"
         "// values it stores, and the comment above it quotes their spec lines; `#line` "
         "directives\n"
         "// point at the spec.\n"
         "//\n"
         "//===------------------------------------------------------------------------------"
         "===//\n";
}

std::string dopa::emit::restoreLines(const std::string &code, const std::string &outputName) {
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

//===----------------------------------------------------------------------===//
// NetworkEmitter: the network, names and constants
//===----------------------------------------------------------------------===//

NetworkEmitter::NetworkEmitter(const CompiledNetwork &net, const kern::FusedNetwork &fused,
                               const llvm::SourceMgr &sm, const EmitOptions &opts)
    : net(net), f(fused), sm(sm), opts(opts), snake(cppNamespaceOf(net.forward.name, opts)) {
  int64_t offset = 0;
  for (const ir::Variable &p : net.forward.params) {
    paramOffsets.push_back(offset);
    offset += ir::numElements(p.shape);
  }
  nameOffsetConstants();
  // The step functions, kernels and launchers share the stage functions' namespace.
  for (const char *kind : {"forward", "backward", "replay", "segment"})
    for (const char *what : {"step", "kernel", "launch", "element"})
      usedStageNames.insert(std::string(kind) + "_" + what);
}

std::string NetworkEmitter::run() {
  emitKernel(f.forward, "forward");
  if (emitsReplay() && !f.replay.stages.empty())
    emitReplay();
  emitKernel(f.backward, "backward");
  if (!f.prologue.empty())
    emitPrologue();
  emitSpec();
  // The constants go first, but only those the code uses (known now) are printed.
  std::ostringstream out;
  out << "namespace dopa::generated::" << snake << " {\n\n";
  emitPreamble(out);
  emitOffsetConstants(out);
  out << os.str() << "} // namespace dopa::generated::" << snake << "\n";
  return out.str();
}

void NetworkEmitter::emitReplay() {
  // A stage the replay takes over whole is the forward's stage function; a trimmed one is printed
  // again, with the replay's items.
  k = &f.replay;
  std::vector<std::string> names;
  names.reserve(f.replay.stages.size());
  for (size_t s = 0; s < f.replay.stages.size(); ++s)
    names.push_back(f.replayTrimmed[s] ? emitStage(f.replay, s, "replay")
                                       : forwardTable.names[size_t(f.replayFrom[s])]);
  emitStepFunction("replay", names);
}

void NetworkEmitter::emitPrologue() {
  throw std::runtime_error("carried products are not supported by this backend");
}

void NetworkEmitter::emitSiblingKernels(NetworkEmitter &sibling) {
  sibling.usedStageNames = usedStageNames;
  sibling.usedStageNames.insert({"prologue_forward_step", "prologue_backward_step"});
  sibling.emitKernel(sibling.f.forward, "prologue_forward");
  sibling.emitKernel(sibling.f.backward, "prologue_backward");
  os << sibling.os.str();
  for (size_t p = 0; p < paramConstUsed.size() && p < sibling.paramConstUsed.size(); ++p)
    paramConstUsed[p] = paramConstUsed[p] || sibling.paramConstUsed[p];
  for (size_t s = 0; s < stateConstUsed.size() && s < sibling.stateConstUsed.size(); ++s)
    stateConstUsed[s] = stateConstUsed[s] || sibling.stateConstUsed[s];
}

void NetworkEmitter::nameOffsetConstants() {
  const Graph &fwd = net.forward;
  std::set<std::string> used;
  auto unique = [&](const std::string &base, size_t index) {
    std::string name = base;
    while (!used.insert(name).second)
      name += "_" + std::to_string(index);
    return name;
  };
  for (size_t p = 0; p < fwd.params.size(); ++p)
    paramConst.push_back(unique("kParam" + camelPart(fwd.params[p].name), p));
  for (size_t s = 0; s < fwd.states.size(); ++s)
    stateConst.push_back(unique("kState" + camelPart(fwd.states[s].name), s));
  paramConstUsed.assign(paramConst.size(), 0);
  stateConstUsed.assign(stateConst.size(), 0);
}

std::string NetworkEmitter::paramOffset(int p) {
  paramConstUsed[size_t(p)] = 1;
  return paramConst[size_t(p)];
}

std::string NetworkEmitter::stateOffset(int s) {
  stateConstUsed[size_t(s)] = 1;
  return stateConst[size_t(s)];
}

void NetworkEmitter::emitOffsetConstants(std::ostream &out) const {
  const Graph &fwd = net.forward;
  bool any = false;
  for (size_t p = 0; p < fwd.params.size(); ++p) {
    if (!paramConstUsed[p])
      continue;
    if (!any)
      out << "// Where each parameter starts in the parameter (and gradient) buffer.\n";
    any = true;
    out << "constexpr int64_t " << paramConst[p] << " = " << paramOffsets[p] << "; // "
        << fwd.params[p].name << " " << ir::shapeStr(fwd.params[p].shape) << "\n";
  }
  if (any)
    out << "\n";
  any = false;
  for (size_t s = 0; s < fwd.states.size(); ++s) {
    if (!stateConstUsed[s])
      continue;
    if (!any)
      out << "// Where each state starts in a state block (and in the next-state and "
             "state-gradient blocks).\n";
    any = true;
    out << "constexpr int64_t " << stateConst[s] << " = " << f.stateOffsets[s] << "; // "
        << fwd.states[s].name << " " << ir::shapeStr(fwd.states[s].shape) << "\n";
  }
  if (any)
    out << "\n";
}

//===----------------------------------------------------------------------===//
// Spec text
//===----------------------------------------------------------------------===//

std::string NetworkEmitter::lineDirective(llvm::SMLoc loc) {
  if (!opts.lineDirectives || !loc.isValid())
    return "";
  unsigned line = sm.getLineAndColumn(loc).first;
  if (line == lastLine)
    return "";
  lastLine = line;
  return "#line " + std::to_string(line) + " \"" + opts.specPath + "\"\n";
}

NetworkEmitter::SpecLine NetworkEmitter::specLine(llvm::SMLoc loc) const {
  SpecLine line;
  if (!loc.isValid())
    return line;
  unsigned buffer = sm.FindBufferContainingLoc(loc);
  if (buffer == 0)
    return line;
  llvm::StringRef text = sm.getMemoryBuffer(buffer)->getBuffer();
  size_t at = size_t(loc.getPointer() - text.data());
  size_t begin = text.rfind('\n', at);
  begin = begin == llvm::StringRef::npos ? 0 : begin + 1;
  llvm::StringRef s = text.slice(begin, text.find('\n', at));
  s = s.split('#').first.trim();         // without the spec's comment
  while (!s.empty() && s.back() == '\\') // would continue the generated comment
    s = s.drop_back().rtrim();
  line.buffer = buffer;
  line.number = sm.getLineAndColumn(loc, buffer).first;
  line.text = s.str();
  return line;
}

std::string NetworkEmitter::tokenAt(llvm::SMLoc loc) const {
  if (!loc.isValid())
    return "";
  unsigned buffer = sm.FindBufferContainingLoc(loc);
  if (buffer == 0)
    return "";
  llvm::StringRef text = sm.getMemoryBuffer(buffer)->getBuffer();
  const char *p = loc.getPointer(), *end = text.end();
  std::string token;
  if (p < end && (std::isalpha(static_cast<unsigned char>(*p)) || *p == '_'))
    while (p < end && (std::isalnum(static_cast<unsigned char>(*p)) || *p == '_' || *p == '.'))
      token += *p++;
  return token;
}

//===----------------------------------------------------------------------===//
// Scalar code
//===----------------------------------------------------------------------===//

std::string NetworkEmitter::loopVar(size_t axis) const {
  const ir::Shape &space = stage->space;
  if (elideUnitLoops() && space[axis] == 1)
    return "0";
  // The innermost loop variable is j; a rank-1 space loops over j alone.
  return space.size() == 1 ? "j" : kIndexVars[axis];
}

std::string NetworkEmitter::indexExpr(const std::vector<int64_t> &strides) const {
  std::string e;
  for (size_t a = 0; a < strides.size(); ++a) {
    if (strides[a] == 0)
      continue;
    std::string var = loopVar(a);
    if (var == "0")
      continue;
    if (!e.empty())
      e += " + ";
    e += strides[a] == 1 ? var : var + " * " + std::to_string(strides[a]);
  }
  return e.empty() ? "0" : e;
}

std::string NetworkEmitter::serialLoop(const std::string &var, int64_t from, int64_t to,
                                       const ElementStmt &stmt, const char *type) {
  if (to - from <= 0)
    return "";
  if (to - from == 1)
    return stmt(std::to_string(from));
  return cat({"for (", type, " ", var, " = ", std::to_string(from), "; ", var, " < ",
              std::to_string(to), "; ++", var, ")\n", stmt(var)});
}

/// The value of node `id` at the current index of the nest.
std::string NetworkEmitter::val(int id) {
  auto it = locals.find(id);
  if (it != locals.end())
    return it->second;
  if (stored(id))
    return readBuffer(id, g().node(id).shape);
  return compute(id);
}

/// An operand that is a local or stored (never computed here), its buffer viewed as `view`.
std::string NetworkEmitter::operandAs(int id, const ir::Shape &view) {
  auto it = locals.find(id);
  return it != locals.end() ? it->second : readBuffer(id, view);
}

/// Emit `const T v = <expression>;` for node `id` from its operands; returns the local.
std::string NetworkEmitter::compute(int id) {
  const Node &n = g().node(id);
  // Operands first, in order (an expression's evaluation order would make the declarations'
  // order, and so the output, depend on the compiler that built dopac).
  std::vector<std::string> args;
  if (n.op == Op::Outer) {
    // a[i] * b[j]: view a as a column and b as a row.
    const Node &a = g().node(n.operands[0]), &b = g().node(n.operands[1]);
    args.push_back(operandAs(n.operands[0], {ir::numElements(a.shape), 1}));
    args.push_back(operandAs(n.operands[1], {1, ir::numElements(b.shape)}));
  } else {
    // The computed operands first, then the loads (readBuffer), so that an element is loaded
    // just before the statement that first uses it, as when loads were part of the expression:
    // loaded earlier, GCC rewrote alpha * clip(x) as a select of -alpha, alpha * x and alpha
    // (three loads and a mask more per vector: cue_reward/plastic's forward 20% slower).
    args.resize(n.operands.size());
    for (int pass = 0; pass < 2; ++pass)
      for (size_t o = 0; o < n.operands.size(); ++o) {
        int id2 = n.operands[o];
        bool load = !locals.count(id2) && stored(id2);
        if (load == (pass == 1))
          args[o] = val(id2);
      }
  }
  std::string e = expression(n, args);
  if (n.op == Op::Log) // the one activation without a vectorizing form (SimdMath.h)
    bodyCallsLibm = true;
  std::string name = "v" + std::to_string(id);
  body << lineDirective(n.loc) << "const T " << name << " = " << e << ";\n";
  locals[id] = name;
  return name;
}

/// The scalar expression of element-wise node `n` over its operands' values `args`.
std::string NetworkEmitter::expression(const Node &n, const std::vector<std::string> &args) {
  switch (n.op) {
  case Op::Neg: return "-" + args[0];
  case Op::Tanh: return mathFn("tanh") + "(" + args[0] + ")";
  case Op::Sigmoid: return "T(1) / (T(1) + " + mathFn("exp") + "(-" + args[0] + "))";
  case Op::Relu: return args[0] + " > T(0) ? " + args[0] + " : T(0)";
  case Op::Exp: return mathFn("exp") + "(" + args[0] + ")";
  case Op::Log: return mathFn("log") + "(" + args[0] + ")";
  case Op::Abs: return mathFn("abs") + "(" + args[0] + ")";
  case Op::Sqrt: return mathFn("sqrt") + "(" + args[0] + ")";
  case Op::Step: return args[0] + " > T(0) ? T(1) : T(0)";
  case Op::Sign: return "T((" + args[0] + " > T(0)) - (" + args[0] + " < T(0)))";
  case Op::Detach: return args[0];
  case Op::RoundBf16: return roundBf16Fn() + "(" + args[0] + ")";
  case Op::Add: return args[0] + " + " + args[1];
  case Op::Sub: return args[0] + " - " + args[1];
  case Op::Mul: return args[0] + " * " + args[1];
  case Op::Div: return args[0] + " / " + args[1];
  case Op::Min: return args[0] + " <= " + args[1] + " ? " + args[0] + " : " + args[1];
  case Op::Max: return args[1] + " <= " + args[0] + " ? " + args[0] + " : " + args[1];
  case Op::LessEq: return args[0] + " <= " + args[1] + " ? T(1) : T(0)";
  case Op::Clip: {
    const std::string &x = args[0], &lo = args[1], &hi = args[2];
    return x + " < " + lo + " ? " + lo + " : (" + x + " > " + hi + " ? " + hi + " : " + x + ")";
  }
  case Op::InRange: {
    const std::string &x = args[0], &lo = args[1], &hi = args[2];
    return lo + " <= " + x + " && " + x + " <= " + hi + " ? T(1) : T(0)";
  }
  case Op::Outer: return args[0] + " * " + args[1];
  case Op::BroadcastTo: return args[0];
  default:
    throw std::logic_error(std::string("emit: op '") + ir::opName(n.op) +
                           "' cannot be computed inline");
  }
}

//===----------------------------------------------------------------------===//
// Stages
//===----------------------------------------------------------------------===//

void NetworkEmitter::emitKernel(const kern::Kernel &kernel, const std::string &kind) {
  k = &kernel;
  std::vector<std::string> names;
  names.reserve(kernel.stages.size());
  StageTable &table = kernel.isBackward ? backwardTable : forwardTable;
  for (size_t s = 0; s < kernel.stages.size(); ++s) {
    names.push_back(emitStage(kernel, s, kind));
    if (kern::BatchedProductShape p = kern::batchedProduct(kernel, s); p.weight >= 0)
      table.products.push_back(productInitializer(s, p));
  }
  table.names = names;
  emitStepFunction(kind, names);
}

/// Stage s as a dopa::BatchedProduct initializer: the weight's offset, the blocks of x and y.
std::string NetworkEmitter::productInitializer(size_t s, const kern::BatchedProductShape &p) {
  auto block = [&](int id, const char *field) {
    int hi = k->homeIndex[size_t(id)];
    int64_t off = k->offset[size_t(id)];
    const char *buf = "";
    switch (homeOf(id)) {
    case Buf::Input: buf = "Input", off = 0; break;
    case Buf::State: buf = "State"; break;
    case Buf::NextState: buf = "Next"; break;
    case Buf::Output: buf = "Output", off = 0; break;
    case Buf::Saved: buf = "Saved"; break;
    case Buf::Scratch: buf = "Scratch"; break;
    case Buf::GradOutput: buf = "GradOutput", off = 0; break;
    case Buf::GradNext: buf = "GradNext"; break;
    case Buf::GradPrev: buf = "GradPrev"; break;
    case Buf::Record: buf = "Record"; break;
    default: throw std::logic_error("emit: a batched product's operand has no per-element block");
    }
    bool indexed =
        homeOf(id) == Buf::Input || homeOf(id) == Buf::Output || homeOf(id) == Buf::GradOutput;
    return cat({".", field, "Buf = dopa::StepBuffer::", buf, ", .", field, "Index = ",
                std::to_string(indexed ? hi : 0), ", .", field, "Offset = ", std::to_string(off)});
  };
  const ir::Shape &w = g().node(p.weight).shape;
  int hi = k->homeIndex[size_t(p.weight)];
  int64_t off = k->offset[size_t(p.weight)];
  std::string weight = off == paramOffsets[size_t(hi)] ? paramOffset(hi) : std::to_string(off);
  int y = k->stages[s].items[0].node;
  return cat({"{.stage = ", std::to_string(s), ", .weightOffset = ", weight,
              ", .rows = ", std::to_string(w[0]), ", .cols = ", std::to_string(w[1]),
              ", .transposed = ", p.transposed ? "true" : "false", ", ", block(p.x, "x"), ", ",
              block(y, "y"), "}"});
}

/// One stage function; returns its name.
std::string NetworkEmitter::emitStage(const kern::Kernel &kernel, size_t s,
                                      const std::string &kind) {
  stage = &kernel.stages[s];
  body.str("");
  rowLoads.str("");
  bodyCallsLibm = false;
  locals.clear();
  loads.clear();
  loadViews.clear();
  nestWrites.clear();
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
  emitStageComment(s, kind);
  os << "template <class T> " << stageQualifiers() << "void " << name
     << "(const dopa::StepArgs<T> &a) {\n";
  for (const std::string &p : pointerOrder)
    os << pointers[p] << "\n";
  os << stagePrologue() << code.str();
  if (lastLine)
    os << "//@@RESTORE_LINE@@\n";
  os << "}\n\n";
  return name;
}

/// The spec lines of the values the stage computes (copies of leaves have none), in spec order,
/// then what the stage is and its items.
void NetworkEmitter::emitStageComment(size_t s, const std::string &kind) {
  std::map<std::pair<unsigned, unsigned>, std::string> lines; // (buffer, line) -> text
  for (const Item &it : stage->items) {
    if (it.node < 0 || ir::isLeaf(g().node(it.node).op))
      continue;
    SpecLine line = specLine(g().node(it.node).loc);
    if (!line.text.empty())
      lines.emplace(std::make_pair(line.buffer, line.number), line.text);
  }
  for (const auto &entry : lines)
    os << "// " << entry.second << "\n";
  if (!lines.empty())
    os << "//\n";
  os << "// " << kind << " stage " << s << ": "
     << (stage->kind == Stage::Nest    ? "fused loop nest over "
         : stage->kind == Stage::Dense ? denseLabel() + ", "
                                       : "")
     << (stage->kind == Stage::Opaque ? "" : ir::shapeStr(stage->space)) << "\n";
  for (const Item &it : stage->items)
    os << "//   " << describe(it) << "\n";
}

/// A name for what the value of node `n` is in the spec: its own name, a leaf's variable, the
/// identifier at its location (a layer or function call), or its op.
std::string NetworkEmitter::valueName(const Node &n) const {
  if (!n.name.empty())
    return n.name;
  const Graph &fwd = net.forward;
  switch (n.op) {
  case Op::Param: return fwd.params[size_t(n.index)].name;
  case Op::Input: return fwd.inputs[size_t(n.index)].name;
  case Op::State: return fwd.states[size_t(n.index)].name;
  default: break;
  }
  std::string token = tokenAt(n.loc);
  return token.empty() ? ir::opName(n.op) : token;
}

/// The spec names item `it` contributes to its stage's name at naming tier `tier`: 1, the values
/// the spec names (named values, states, outputs, gradients of states and parameters); 2, unnamed
/// values; 3, what goes to the saved and record blocks (mostly copies of values named elsewhere).
std::vector<NetworkEmitter::Fragment> NetworkEmitter::nameFragments(const Item &it,
                                                                    int tier) const {
  const Graph &fwd = net.forward;
  std::vector<Fragment> out;
  auto add = [&](int t, const char *prefix, const std::string &name) {
    if (t == tier && !name.empty())
      out.push_back({prefix, name});
  };
  if (it.kind == Item::Zero) {
    if (it.target == Buf::GradInput)
      add(1, "d_", fwd.inputs[size_t(it.targetIndex)].name);
    else
      add(1, "d_", fwd.states[size_t(it.targetIndex)].name);
    return out;
  }
  const Node &n = g().node(it.node);
  bool sink = it.kind == Item::Store || it.kind == Item::Accumulate;
  if (!sink && !n.name.empty()) {
    add(1, "", n.name);
    return out;
  }
  Buf where = sink ? it.target : homeOf(it.node);
  size_t index = size_t(sink ? it.targetIndex : k->homeIndex[size_t(it.node)]);
  switch (where) {
  case Buf::NextState: add(1, "", fwd.states[index].name); break;
  case Buf::GradPrev: add(1, "d_", fwd.states[index].name); break;
  case Buf::GradInput: add(1, "d_", fwd.inputs[index].name); break;
  case Buf::Output: add(1, "", fwd.outputs[index].name); break;
  case Buf::Grad: add(1, "grad_", fwd.params[index].name); break;
  case Buf::Saved: add(3, "saved_", valueName(n)); break;
  case Buf::Record: add(3, "record_", valueName(n)); break;
  default: add(2, "", valueName(n)); break;
  }
  return out;
}

/// `<kind>_<names>`: the spec names of what the stage stores (the best tier that has any), those
/// with a common prefix grouped (grad_w, grad_alpha -> grad_w_alpha), unique in the network.
std::string NetworkEmitter::stageName(size_t s, const std::string &kind) {
  std::vector<Fragment> frags;
  for (int tier = 1; tier <= 3 && frags.empty(); ++tier)
    for (const Item &it : stage->items)
      for (Fragment &fr : nameFragments(it, tier)) {
        fr.name = snakePart(fr.name);
        bool seen = std::any_of(frags.begin(), frags.end(), [&](const Fragment &o) {
          return o.prefix == fr.prefix && o.name == fr.name;
        });
        if (!fr.name.empty() && !seen && frags.size() < kMaxNameFragments)
          frags.push_back(fr);
      }
  std::string base;
  std::vector<char> grouped(frags.size(), 0);
  for (size_t i = 0; i < frags.size(); ++i) {
    if (grouped[i])
      continue;
    std::string part = frags[i].prefix + frags[i].name;
    for (size_t j = i + 1; j < frags.size(); ++j)
      if (!grouped[j] && frags[j].prefix == frags[i].prefix) {
        part += "_" + frags[j].name;
        grouped[j] = 1;
      }
    base += (base.empty() ? "" : "_") + part;
  }
  std::string name = kind + "_" + (base.empty() ? "stage" + std::to_string(s) : base);
  while (!usedStageNames.insert(name).second)
    name += "_" + std::to_string(s);
  return name;
}

std::string NetworkEmitter::describe(const Item &it) const {
  std::ostringstream d;
  if (it.kind == Item::Zero)
    return "zero d" + (it.target == Buf::GradInput
                           ? net.forward.inputs[size_t(it.targetIndex)].name
                           : net.forward.states[size_t(it.targetIndex)].name);
  const Node &n = g().node(it.node);
  d << "%" << it.node << " " << ir::opName(n.op);
  if (!n.name.empty())
    d << " " << n.name;
  if (it.kind == Item::Store || it.kind == Item::Accumulate) {
    d << (it.kind == Item::Store ? " -> " : " += ") << kern::bufName(it.target);
    if (it.target == Buf::NextState || it.target == Buf::GradPrev)
      d << " " << net.forward.states[size_t(it.targetIndex)].name;
    if (it.target == Buf::Grad)
      d << " " << net.forward.params[size_t(it.targetIndex)].name;
    if (it.target == Buf::Output)
      d << " " << net.forward.outputs[size_t(it.targetIndex)].name;
    if (it.target == Buf::GradInput)
      d << " " << net.forward.inputs[size_t(it.targetIndex)].name;
    if (it.target == Buf::Record)
      d << " (a factor of deferred outer-product gradients)";
  }
  return d.str();
}
