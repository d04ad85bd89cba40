//===- EmitCpp.cpp - The C++ emitter --------------------------------------===//
//
// Prints fused kernels as C++ in the style of llm.c: one static function per stage, named after
// what it computes, with the spec's equations quoted above it and the spec's names for its buffers;
// the forward and backward step functions calling them in order; the network's description and a
// dopa::GeneratedSpec. Scalar expressions are computed in `T` (float for training, double for
// gradient checks). Nests are serial loops whose inner loop carries `#pragma omp simd` with its
// reductions declared, so it vectorizes; dense products of stored operands are Eigen products. The
// file includes dopa/runtime/GeneratedSupport.h (the Eigen views) and nothing else.
//
//===----------------------------------------------------------------------===//
#include "EmitCommon.h"

#include <algorithm>

using namespace dopa;
using namespace dopa::emit;
using ir::Graph;

namespace {

class CppEmitter : public NetworkEmitter {
public:
  using NetworkEmitter::NetworkEmitter;

private:
  bool elideUnitLoops() const override { return true; }

  /// exp and tanh (sigmoid is written with exp) from SimdMath.h, which vectorize; the rest std::.
  std::string mathFn(const char *name) const override {
    std::string n = name;
    if (n == "exp")
      return "simdExp";
    if (n == "tanh")
      return "simdTanh";
    return "std::" + n;
  }

  std::string roundBf16Fn() const override { return "roundBf16"; }

  std::string accumulate(const std::string &outBuf, const std::string &index,
                         const std::string &v) const override {
    return cat({outBuf, "[", index, "] += ", v, ";\n"});
  }

  bool sharedDotOutputs() const override { return false; }
  bool gradsInPlace() const override { return true; }
  bool hoistRowLoads() const override { return true; }
  bool statesInPlace() const override { return true; }
  bool emitsReplay() const override { return true; }

  std::string forEachElement(int64_t count, const ElementStmt &stmt) const override {
    return serialLoop("e", 0, count, [&](const std::string &e) { return stmt(e) + "\n"; });
  }

  std::string denseLabel() const override { return "dense product (Eigen)"; }
  std::string stageQualifiers() const override { return "static "; }

  void emitNestLoops(std::ostringstream &out, const std::vector<Accumulator> &partials,
                     bool zeroed) override;
  void emitDenseProduct(std::ostringstream &out, const DenseProduct &p) override;
  void emitStepFunction(const std::string &kind, const std::vector<std::string> &stages) override;
  void emitSpec() override;
  int emitCopyTable(const char *name, const std::vector<char> &inPlace, bool listMarked = false);
  void emitPrologue() override;
  std::string emitStageTables();
  std::string emitSlotTables();
  void emitInfo();
  std::string infoTensor(const std::string &name, const ir::Shape &shape, bool isInt,
                         double dropout, const sema::Init *init) const;
};

/// The vector width, in floats, the inner loops are split for (AVX-512; a multiple of AVX2's 8).
constexpr int64_t kTailWidth = 16;

/// Serial loops: i over rows, j over the inner axis (a loop of extent 1 is left out, its index is
/// 0). Partial sums are declared before the inner loop and stored or added after it.
void CppEmitter::emitNestLoops(std::ostringstream &out, const std::vector<Accumulator> &partials,
                               bool zeroed) {
  (void)zeroed; // the zeroing loops ran just before, on this thread
  const ir::Shape &space = stage->space;
  size_t rank = space.size();
  std::string decls, finish, clause;
  for (const Accumulator &p : partials) {
    decls += "T " + p.var + " = T(0);\n";
    finish += cat({p.out, "[", p.index, p.assign ? "] = " : "] += ", p.var, ";\n"});
    clause += (clause.empty() ? "" : ", ") + p.var;
  }
  decls += rowLoads.str(); // read once per row, before the inner loop
  if (rank == 0) {
    out << decls << body.str() << finish;
    return;
  }
  // Vectorize loops long enough to gain from it whose bodies have no scalar libm calls (log:
  // those would only vectorize with a vector math library, and compilers warn when a requested
  // vectorization fails; exp, tanh and sigmoid are SimdMath.h's, which vectorize).
  std::string pragma;
  if (space.back() >= 16 && !bodyCallsLibm)
    pragma =
        clause.empty() ? "#pragma omp simd\n" : "#pragma omp simd reduction(+ : " + clause + ")\n";
  // A row whose length is not a multiple of 16 (the floats of an AVX-512 vector) ends in a second
  // vectorized loop over the rest: left to the compiler, those last columns run one at a time,
  // which cost a quarter of the H x H passes at H = 200 (docs/benchmarks.md "Loop tails").
  int64_t n = space.back(), tail = pragma.empty() ? 0 : n % kTailWidth;
  auto loop = [&](int64_t from, int64_t to) {
    return "for (int j = " + std::to_string(from) + "; j < " + std::to_string(to) + "; ++j) {\n" +
           body.str() + "}\n";
  };
  std::string inner = n == 1      ? body.str()
                      : tail == 0 ? loop(0, n)
                                  : loop(0, n - tail) + pragma + loop(n - tail, n);
  if (rank == 1 || space[0] == 1)
    out << decls << pragma << inner << finish;
  else
    out << "for (int i = 0; i < " << space[0] << "; ++i) {\n"
        << decls << pragma << inner << finish << "}\n";
}

void CppEmitter::emitDenseProduct(std::ostringstream &out, const DenseProduct &p) {
  const ir::Shape &a = p.aShape, &b = p.bShape;
  if (a.size() == 2 && b.size() == 1)
    out << "Vec<T>(" << p.c << ", " << a[0] << ").noalias() = ConstRowMat<T>(" << p.a << ", "
        << a[0] << ", " << a[1] << ") * ConstVec<T>(" << p.b << ", " << b[0] << ");\n";
  else if (a.size() == 1 && b.size() == 2)
    out << "RowVec<T>(" << p.c << ", " << b[1] << ").noalias() = ConstRowVec<T>(" << p.a << ", "
        << a[0] << ") * ConstRowMat<T>(" << p.b << ", " << b[0] << ", " << b[1] << ");\n";
  else
    out << "RowMat<T>(" << p.c << ", " << a[0] << ", " << b[1] << ").noalias() = ConstRowMat<T>("
        << p.a << ", " << a[0] << ", " << a[1] << ") * ConstRowMat<T>(" << p.b << ", " << b[0]
        << ", " << b[1] << ");\n";
}

void CppEmitter::emitStepFunction(const std::string &kind, const std::vector<std::string> &stages) {
  os << "/// One " << kind << " step of " << net.forward.name << " for one batch element.\n";
  os << "template <class T> void " << kind << "_step(const dopa::StepArgs<T> &a) {\n";
  for (const std::string &s : stages)
    os << s << "(a);\n";
  os << "}\n\n";
}

/// The stage tables and batched products of both steps (GeneratedExecutor's stage-major order),
/// for networks with batched products; returns the GeneratedSpec fields naming them.
std::string CppEmitter::emitStageTables() {
  if (forwardTable.products.empty() && backwardTable.products.empty())
    return "";
  std::ostringstream fields;
  for (const auto &[kind, table] :
       {std::pair<std::string, const StageTable *>{"forward", &forwardTable},
        {"backward", &backwardTable}}) {
    if (table->names.empty())
      continue;
    os << "/// The " << kind << " step's stages in order (the executor's stage-major order).\n"
       << "template <class T> constexpr dopa::StepFn<T> " << kind << "_stages[] = {";
    for (const std::string &s : table->names)
      os << s << "<T>, ";
    os << "};\n\n";
    if (table->products.empty())
      continue;
    os << "/// Stages of the " << kind
       << " step the executor runs as one GEMM for the batch (stage-major order).\n"
       << "static const dopa::BatchedProduct " << kind << "_products[] = {\n";
    for (const std::string &p : table->products)
      os << p << ",\n";
    os << "};\n\n";
  }
  auto stages = [&](const std::string &kind, const StageTable &t, const char *type) {
    return t.names.empty() ? std::string("nullptr") : kind + "_stages<" + type + ">";
  };
  auto products = [&](const std::string &kind, const StageTable &t) {
    return t.products.empty() ? std::string("nullptr") : kind + "_products";
  };
  fields << ".numForwardStages = " << forwardTable.names.size() << ",\n"
         << ".numBackwardStages = " << backwardTable.names.size() << ",\n"
         << ".forwardStagesFloat = " << stages("forward", forwardTable, "float") << ",\n"
         << ".backwardStagesFloat = " << stages("backward", backwardTable, "float") << ",\n"
         << ".forwardStagesDouble = " << stages("forward", forwardTable, "double") << ",\n"
         << ".backwardStagesDouble = " << stages("backward", backwardTable, "double") << ",\n"
         << ".numForwardProducts = " << forwardTable.products.size() << ",\n"
         << ".numBackwardProducts = " << backwardTable.products.size() << ",\n"
         << ".forwardProducts = " << products("forward", forwardTable) << ",\n"
         << ".backwardProducts = " << products("backward", backwardTable) << ",\n";
  return fields.str();
}

std::string CppEmitter::infoTensor(const std::string &name, const ir::Shape &shape, bool isInt,
                                   double dropout, const sema::Init *init) const {
  std::ostringstream s;
  s << "{" << quoted(name) << ", {";
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
  if (dropout >= 0)
    s << ", " << num(dropout);
  s << "}";
  return s.str();
}

/// The network's description: names, shapes and initializers of its tensors.
void CppEmitter::emitInfo() {
  const Graph &fwd = net.forward;
  os << "static dopa::NetworkInfo info() {\n  dopa::NetworkInfo n;\n  n.name = " << quoted(fwd.name)
     << ";\n";
  for (const ir::Variable &p : fwd.params)
    os << "n.params.push_back(" << infoTensor(p.name, p.shape, false, p.dropout, &p.init) << ");\n";
  for (const ir::Variable &in : fwd.inputs)
    os << "n.inputs.push_back("
       << infoTensor(in.name, in.shape, in.isInt, in.dropout, in.isMask() ? &in.init : nullptr)
       << ");\n";
  for (size_t k = 0; k < fwd.outputs.size(); ++k)
    os << "n.outputs.push_back("
       << infoTensor(fwd.outputs[k].name, ir::outputShape(fwd, k), false, -1, nullptr) << ");\n";
  for (const ir::Variable &s : fwd.states)
    if (!s.carried) // the runtime's, not the network's
      os << "n.states.push_back(" << infoTensor(s.name, s.shape, false, -1, &s.init) << ");\n";
  os << "dopa::finalizeInfo(n);\nreturn n;\n}\n\n";
}

/// The description, the layout tables and the GeneratedSpec (designated initializers, in the
/// struct's order).
/// The prologue's step functions (carried products), printed by an emitter of its own kernels.
void CppEmitter::emitPrologue() {
  CompiledNetwork pro;
  pro.forward = net.prologue;
  pro.backward = net.prologueBackward;
  CppEmitter sibling(pro, f.prologue.front(), sm, opts);
  emitSiblingKernels(sibling);
}

/// With state gradients written in place (kern::Kernel::inPlaceGrads) or states updated in place
/// (inPlaceStates): the table `name` of the other states' slots, [offset, numel] pairs, which the
/// executor copies after each step (from gradPrev to gradNext; from next to the state block).
/// Returns their number, or -1 (no table) when nothing is in place. `listMarked`: the table of
/// the marked states' slots instead (the replay's recorded states).
int CppEmitter::emitCopyTable(const char *name, const std::vector<char> &inPlace, bool listMarked) {
  const Graph &fwd = net.forward;
  bool any = false;
  for (char c : inPlace)
    any = any || c;
  if (!any)
    return -1;
  int count = 0;
  os << "static const int64_t " << name << "[] = {";
  for (size_t i = 0; i < fwd.states.size(); ++i)
    if (bool(inPlace[i]) == listMarked)
      os << (count++ ? ", " : "") << stateOffset(int(i)) << ", "
         << ir::numElements(fwd.states[i].shape);
  os << (count ? "" : "0") << "};\n";
  return count;
}

void CppEmitter::emitSpec() {
  const Graph &fwd = net.forward;
  emitInfo();
  os << "static const int64_t stateOffsets[] = {";
  for (size_t i = 0; i < f.stateOffsets.size(); ++i)
    os << (i ? ", " : "") << stateOffset(int(i));
  if (f.stateOffsets.empty())
    os << "0";
  os << "};\n";
  // The states the float build keeps in bfloat16 (--trace-precision=bf16; Bf16.h).
  bool anyBf16 = false;
  for (const ir::Variable &v : fwd.states)
    anyBf16 = anyBf16 || v.bf16;
  if (anyBf16) {
    os << "static const bool bf16States[] = {";
    for (size_t i = 0; i < fwd.states.size(); ++i)
      os << (i ? ", " : "") << (fwd.states[i].bf16 ? "true" : "false");
    os << "};\n";
  }
  std::string slotFields = emitSlotTables();
  // Rows of the table each integer input indexes (checked before the parallel region).
  std::vector<int64_t> rows = ir::gatherTableRows(fwd);
  os << "static const int64_t inputRows[] = {";
  for (size_t i = 0; i < rows.size(); ++i)
    os << (i ? ", " : "") << rows[i];
  if (rows.empty())
    os << "0";
  os << "};\n\n";
  auto deferredTable = [&](const char *name, const std::vector<kern::DeferredOuter> &list) {
    os << "static const dopa::DeferredOuter " << name << "[] = {\n";
    for (const kern::DeferredOuter &d : list)
      os << "{.paramOffset = " << paramOffset(d.param) << ", .rows = " << d.rows
         << ", .cols = " << d.cols << ", .offsetA = " << d.offsetA << ", .offsetB = " << d.offsetB
         << "},\n";
    if (list.empty())
      os << "{0, 0, 0, 0, 0},\n";
    os << "};\n\n";
  };
  deferredTable("deferred", f.deferred);
  const kern::FusedNetwork *pro = f.prologue.empty() ? nullptr : &f.prologue.front();
  if (pro)
    deferredTable("prologueDeferred", pro->deferred);
  // Outputs the runtime computes for the whole batch (batchReadouts): one GEMM per step.
  if (!fwd.readouts.empty()) {
    os << "static const dopa::BatchedReadout readouts[] = {\n";
    for (const ir::Readout &r : fwd.readouts) {
      const ir::Shape &w = fwd.params[size_t(r.weight)].shape;
      os << "// " << fwd.outputs[size_t(r.output)].name << " = "
         << fwd.params[size_t(r.weight)].name << " @ x"
         << (r.bias >= 0 ? " + " + fwd.params[size_t(r.bias)].name : "") << "\n"
         << "{.output = " << r.output << ", .weightOffset = " << paramOffset(r.weight)
         << ", .biasOffset = " << (r.bias >= 0 ? paramOffset(r.bias) : "-1") << ", .rows = " << w[0]
         << ", .cols = " << w[1] << "},\n";
    }
    os << "};\n\n";
  }
  std::string stageFields = emitStageTables();
  ir::FlopCount forwardFlops = ir::countFlops(net.forward);
  ir::FlopCount backwardFlops = ir::countFlops(net.backward);
  for (const ir::Readout &r : fwd.readouts) { // dX = dY W and dW += dY^T X; db += dY
    const ir::Shape &w = fwd.params[size_t(r.weight)].shape;
    backwardFlops.perElement += 4 * w[0] * w[1] + (r.bias >= 0 ? w[0] : 0);
  }
  os << "const dopa::GeneratedSpec &spec() {\n"
     << "static const dopa::GeneratedSpec s = {\n"
     << ".name = " << quoted(fwd.name) << ",\n"
     << ".specPath = " << quoted(opts.specPath) << ",\n"
     << ".info = info,\n"
     << ".stateNumel = " << f.stateNumel << ",\n"
     << ".stateOffsets = stateOffsets,\n"
     << ".savedNumel = " << f.savedNumel << ",\n"
     << ".scratchNumel = "
     << std::max({f.forward.scratchNumel, f.backward.scratchNumel,
                  pro ? pro->forward.scratchNumel : 0, pro ? pro->backward.scratchNumel : 0})
     << ",\n"
     << ".inputRows = inputRows,\n"
     << ".forwardFloat = forward_step<float>,\n"
     << ".backwardFloat = backward_step<float>,\n"
     << ".forwardDouble = forward_step<double>,\n"
     << ".backwardDouble = backward_step<double>,\n"
     << ".checkpointEvery = " << opts.checkpointEvery << ",\n"
     << ".memoryBudget = " << opts.memoryBudget << ",\n"
     << ".numDeferred = " << f.deferred.size() << ",\n"
     << ".deferred = deferred,\n"
     << ".recordNumel = " << f.recordNumel << ",\n"
     << ".forwardFlops = " << forwardFlops.perElement << ",\n"
     << ".forwardSharedFlops = " << forwardFlops.shared << ",\n"
     << ".backwardFlops = " << backwardFlops.perElement << ",\n"
     << ".backwardSharedFlops = " << backwardFlops.shared << ",\n"
     << (f.inputGradients ? ".inputGradients = true,\n" : "");
  if (!fwd.readouts.empty())
    os << ".numReadouts = " << fwd.readouts.size() << ",\n.readouts = readouts,\n";
  os << stageFields;
  if (pro)
    os << ".prologueForwardFloat = prologue_forward_step<float>,\n"
       << ".prologueBackwardFloat = prologue_backward_step<float>,\n"
       << ".prologueForwardDouble = prologue_forward_step<double>,\n"
       << ".prologueBackwardDouble = prologue_backward_step<double>,\n"
       << ".prologueSavedNumel = " << pro->savedNumel << ",\n"
       << ".prologueRecordNumel = " << pro->recordNumel << ",\n"
       << ".numPrologueDeferred = " << pro->deferred.size() << ",\n"
       << ".prologueDeferred = prologueDeferred,\n";
  if (anyBf16)
    os << ".bf16States = bf16States,\n";
  os << slotFields << "};\nreturn s;\n}\n\n";
}

/// The state-slot tables (in-place copies, the replay's recorded states); returns the
/// GeneratedSpec fields naming them and the replay step.
std::string CppEmitter::emitSlotTables() {
  std::ostringstream fields;
  int copies = emitCopyTable("gradCopies", f.backward.inPlaceGrads);
  int forwardCopies = emitCopyTable("forwardCopies", f.forward.inPlaceStates);
  bool replay = !f.replay.stages.empty();
  int recorded = replay ? emitCopyTable("replayRecorded", f.replayRecorded, true) : -1;
  int proCopies = f.prologue.empty() ? -1
                                     : emitCopyTable("prologueGradCopies",
                                                     f.prologue.front().backward.inPlaceGrads);
  if (copies >= 0)
    fields << ".numGradCopies = " << copies << ",\n.gradCopies = gradCopies,\n";
  if (proCopies >= 0)
    fields << ".numPrologueGradCopies = " << proCopies
           << ",\n.prologueGradCopies = prologueGradCopies,\n";
  if (forwardCopies >= 0)
    fields << ".numForwardCopies = " << forwardCopies << ",\n.forwardCopies = forwardCopies,\n";
  if (replay)
    fields << ".replayFloat = replay_step<float>,\n.replayDouble = replay_step<double>,\n";
  if (recorded > 0)
    fields << ".numReplayRecorded = " << recorded << ",\n.replayRecorded = replayRecorded,\n";
  return fields.str();
}

} // namespace

std::string dopa::emitCppNetwork(const CompiledNetwork &net, const kern::FusedNetwork &fused,
                                 const llvm::SourceMgr &sources, const EmitOptions &options) {
  return CppEmitter(net, fused, sources, options).run();
}

std::string dopa::emitCppFile(const std::vector<std::string> &bodies, const EmitOptions &o) {
  std::string code = banner(o, "generated network kernels");
  code += "#include \"dopa/runtime/GeneratedSupport.h\"\n\n";
  for (const std::string &b : bodies)
    code += b + "\n";
  if (o.formatter)
    code = o.formatter(code);
  return restoreLines(code, o.outputName.empty() ? "generated.cpp" : o.outputName);
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
  return o.formatter ? o.formatter(code) : code;
}
