//===- EmitCommon.h - The emitters' shared core ---------------------------===//
//
// What the C++ and the CUDA emitter share (private to compiler/lib): NetworkEmitter prints one
// network's kernels stage by stage. It names buffers after the spec, builds the scalar code of a
// fused loop nest (`compute`: one SSA local per node, operands in a fixed order), collects what a
// nest stores, accumulates and zeroes, names each stage function after the values it stores and
// quotes their spec lines above it, and emits the parameter and state offsets as named constants.
// The backends derive from it and fill in the hooks: how a nest's loops, a dense product, an
// element loop and an accumulation look on their target, the stage and step function wrappers,
// and the spec object the runtime reads.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/compiler/Emit.h"

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace dopa::emit {

/// A double as a C++ literal that reads back exactly ("0.1", "1.0", "-2.5e-07").
std::string num(double v);

/// Concatenate pieces of code (one allocation).
std::string cat(std::initializer_list<std::string_view> parts);

/// A spec name as a C++ identifier that cannot collide with the generated code's own names.
std::string ident(const std::string &name);

/// A C++ string literal holding `text`.
std::string quoted(const std::string &text);

/// Per-axis strides of a buffer of shape `buf` read at the indices of `space` under NumPy
/// broadcasting (trailing axes aligned; size-1 and missing axes repeat).
std::vector<int64_t> broadcastStrides(const ir::Shape &buf, const ir::Shape &space);

/// `var0 * stride0 + var1 * stride1 + ...`, leaving out terms whose variable is the literal "0"
/// (an elided unit loop) or whose stride is 0; "0" when nothing is left.
std::string linear(std::initializer_list<std::pair<std::string, int64_t>> terms);

/// The banner of a generated file (name, origin, conventions).
std::string banner(const EmitOptions &options, const std::string &what);

/// Replace each restore marker with a #line directive naming the generated file's next line.
std::string restoreLines(const std::string &code, const std::string &outputName);

/// The loop variables of a nest's axes (rank 2: i, j; rank 1: j).
inline constexpr const char *kIndexVars[] = {"i", "j"};

/// The statement of an element loop for index expression `e` (no trailing newline).
using ElementStmt = std::function<std::string(const std::string &e)>;

/// A buffer a nest zeroes before its loops (it accumulates into it).
struct ZeroFill {
  std::string target; // the buffer's variable
  int64_t count;      // elements
};

/// A partial sum declared outside the inner loop and added to (or stored in) out[index] after it.
struct Accumulator {
  std::string var;
  std::string out, index;
  bool assign; // out[index] = var (a row the loop owns) instead of +=
};

/// One network's kernels as source. Derived classes are the backends; run() prints the network's
/// namespace: its constants, both kernels and the spec object.
class NetworkEmitter {
public:
  NetworkEmitter(const CompiledNetwork &net, const kern::FusedNetwork &fused,
                 const llvm::SourceMgr &sm, const EmitOptions &opts);
  virtual ~NetworkEmitter() = default;
  NetworkEmitter(const NetworkEmitter &) = delete;
  NetworkEmitter &operator=(const NetworkEmitter &) = delete;

  std::string run();

protected:
  // --- backend hooks ---------------------------------------------------------

  /// Declarations at the top of the network's namespace, before the offset constants.
  virtual void emitPreamble(std::ostream &out) { (void)out; }
  /// Whether nest loops of extent 1 are dropped (their index is then the literal 0).
  virtual bool elideUnitLoops() const = 0;
  /// A math function's name for the target ("simdTanh", "std::log" in C++; "tanh" in CUDA).
  virtual std::string mathFn(const char *name) const = 0;
  /// The function that rounds to a stored bfloat16 trace (round_bf16; Bf16.h), or a throw where
  /// the target stores traces in float only.
  virtual std::string roundBf16Fn() const = 0;
  /// out[index] += v (atomic where threads share the accumulator).
  virtual std::string accumulate(const std::string &outBuf, const std::string &index,
                                 const std::string &v) const = 0;
  /// Whether vector dot products sum partial sums of several threads into their output (which
  /// is then zeroed first) instead of storing one thread's sum.
  virtual bool sharedDotOutputs() const = 0;
  /// A loop running `stmt` for every e < count (serial, or over the threads of an element).
  virtual std::string forEachElement(int64_t count, const ElementStmt &stmt) const = 0;
  /// The loops of a nest around `body` (its partial sums declared, reduced and stored);
  /// `zeroed`: outputs were zeroed just before.
  virtual void emitNestLoops(std::ostringstream &out, const std::vector<Accumulator> &partials,
                             bool zeroed) = 0;
  /// C = A @ B for stored operands.
  struct DenseProduct {
    std::string a, b, c; // buffer variables
    ir::Shape aShape, bShape;
  };
  virtual void emitDenseProduct(std::ostringstream &out, const DenseProduct &p) = 0;
  /// An opaque stage (data movement, softmax, a zeroed state gradient); CUDA wraps serial ones.
  virtual void emitOpaque(std::ostringstream &out) { emitOpaqueOp(out); }
  /// How a dense stage is described in its comment.
  virtual std::string denseLabel() const = 0;
  /// What precedes `void` in a stage function's declaration ("static ").
  virtual std::string stageQualifiers() const = 0;
  /// Statements at the top of every stage function, after the buffer declarations.
  virtual std::string stagePrologue() const { return ""; }
  /// Whether the backend's runtime takes state gradients written in place
  /// (kern::Kernel::inPlaceGrads; GeneratedSpec::inPlaceGrads): the C++ one does.
  virtual bool gradsInPlace() const { return false; }
  /// The function(s) running one step: the stages named `stages`, in order.
  virtual void emitStepFunction(const std::string &kind,
                                const std::vector<std::string> &stages) = 0;
  /// The object describing the network to the runtime.
  virtual void emitSpec() = 0;
  /// Whether the backend's runtime replays the forward with the replay kernel
  /// (kern::FusedNetwork::replay; GeneratedSpec::replayFloat): the C++ one does.
  virtual bool emitsReplay() const { return false; }
  /// The prologue's kernels (carried products; FusedNetwork::prologue), before the spec. Backends
  /// without carried products throw.
  virtual void emitPrologue();

  // --- shared state and helpers ----------------------------------------------

  /// A kernel's stage functions' names and its batched products (kern::batchedProduct) as
  /// dopa::BatchedProduct initializers, for the runtime's stage-major order (filled by run()).
  struct StageTable {
    std::vector<std::string> names, products;
  };
  StageTable forwardTable, backwardTable;

  const CompiledNetwork &net;
  const kern::FusedNetwork &f;
  const llvm::SourceMgr &sm;
  const EmitOptions &opts;
  std::string snake;
  std::ostringstream os; // the network's code after its constants

  // Per stage function.
  const kern::Kernel *k = nullptr;
  const kern::Stage *stage = nullptr;
  std::ostringstream body;    // a nest's loop body
  bool bodyCallsLibm = false; // the nest's body calls a scalar math function
  /// A nest's loads that do not depend on the inner loop index, where the backend reads them
  /// once per row before the inner loop (hoistRowLoads); the backend prints them there.
  std::ostringstream rowLoads;
  /// Whether loads that do not depend on the inner index go to rowLoads instead of the body.
  virtual bool hoistRowLoads() const { return false; }
  /// Whether the backend's runtime may run the forward with the states of
  /// kern::Kernel::inPlaceStates updated in place (StepArgs::inPlace): the C++ one does.
  virtual bool statesInPlace() const { return false; }

  const ir::Graph &g() const { return k->graph; }

  /// Offsets of the parameters in the parameter (and gradient) buffer.
  std::vector<int64_t> paramOffsets;
  /// The constant naming parameter p's / state s's offset (marked as used).
  std::string paramOffset(int p);
  std::string stateOffset(int s);

  /// `#line N "spec"` before code from `loc` (when the line changes).
  std::string lineDirective(llvm::SMLoc loc);

  /// The index variable of `axis` of the current nest ("i", "j"; "0" where the loop is elided).
  std::string loopVar(size_t axis) const;
  /// An index expression over the current nest's loop variables.
  std::string indexExpr(const std::vector<int64_t> &strides) const;
  /// A serial loop over var in [from, to): nothing for an empty range, `stmt(from)` alone for a
  /// range of one (no degenerate loop). `stmt` ends with a newline.
  static std::string serialLoop(const std::string &var, int64_t from, int64_t to,
                                const ElementStmt &stmt, const char *type = "int");

  /// The opaque stage's code (shared by both backends).
  void emitOpaqueOp(std::ostringstream &out);

  /// Print the kernels of `sibling` (an emitter of this network's prologue, over the same
  /// parameters and states) as step functions named `prologue_forward_step` and
  /// `prologue_backward_step`, into this network's code; the offset constants they use are
  /// printed with this network's.
  void emitSiblingKernels(NetworkEmitter &sibling);

private:
  struct SpecLine {
    unsigned buffer = 0, number = 0;
    std::string text;
  };
  struct NestParts {
    std::vector<Accumulator> partials;
    std::vector<ZeroFill> zeros;
  };
  struct Fragment {
    std::string prefix, name;
  };

  // Per stage function.
  std::map<int, std::string> locals;
  /// The locals holding elements read from buffers ("et[i * 200 + j]" -> "v17"): each element
  /// a nest reads is loaded once per iteration (readBuffer), until the nest writes its buffer.
  std::map<std::string, std::string> loads;
  std::map<int, int> loadViews;                // node -> how many views of it the nest has loaded
  std::set<std::string> nestWrites;            // the buffers the current nest writes
  std::map<std::string, std::string> pointers; // name -> declaration
  std::vector<std::string> pointerOrder;
  unsigned lastLine = 0;

  // Per network.
  std::set<std::string> usedStageNames;
  std::vector<std::string> paramConst, stateConst;
  std::vector<char> paramConstUsed, stateConstUsed;

  void nameOffsetConstants();
  void emitOffsetConstants(std::ostream &out) const;

  // Spec text.
  SpecLine specLine(llvm::SMLoc loc) const;
  std::string tokenAt(llvm::SMLoc loc) const;

  // Buffers.
  std::string leafName(kern::Buf home, int homeIndex) const;
  std::string homeBase(int id);
  /// The name bufferOf gives node `id`'s buffer (nothing declared).
  std::string bufferName(int id) const;
  /// The buffer a nest item writes (its target, or its node's own buffer).
  std::string writtenBuffer(const kern::Item &it) const;
  /// The variable naming sink `target` `index` (targetBuffer's, nothing declared).
  std::string targetName(kern::Buf target, int index) const;
  /// The buffer's variable. A trace stored in bfloat16 (isTrace) is declared as its storage and
  /// may only be read by readBuffer or written by storeTo (`traceAccess`); other uses throw.
  std::string bufferOf(int id, bool traceAccess = false);
  /// Whether buffer `home` of index `homeIndex` is a state slot holding a bf16 trace (Bf16.h).
  bool isTrace(kern::Buf home, int homeIndex) const;
  bool isTraceNode(int id) const { return isTrace(homeOf(id), k->homeIndex[size_t(id)]); }
  /// Whether the current kernel writes state `s`'s gradient over dLoss/d s' (one buffer, named
  /// as the gradient, for both).
  bool isInPlaceGrad(int s) const {
    return gradsInPlace() && size_t(s) < k->inPlaceGrads.size() && k->inPlaceGrads[size_t(s)];
  }
  /// Whether the current (forward) kernel may write state `s`'s next value over the state: its
  /// pointers then come without __restrict, and s' goes to StepArgs::inPlace when it is set.
  bool isInPlaceState(int s) const {
    return statesInPlace() && !k->isBackward && size_t(s) < k->inPlaceStates.size() &&
           k->inPlaceStates[size_t(s)];
  }
  /// The block state `s`'s next value is written to.
  std::string nextBlock(int s) const {
    return isInPlaceState(s) ? "(a.inPlace ? a.inPlace : a.next)" : "a.next";
  }
  /// `buffer[index] = v;`, through traceStore for a trace.
  std::string storeTo(const std::string &buffer, bool trace, const std::string &index,
                      const std::string &v) const;
  std::string productInitializer(size_t s, const kern::BatchedProductShape &p);
  /// A sink's buffer; a bf16 trace only for a store (`traceAccess`, written through storeTo).
  std::string targetBuffer(kern::Buf target, int index, bool traceAccess = false);
  void declare(const std::string &name, const std::string &decl);
  std::string readBuffer(int id, const ir::Shape &view);
  bool stored(int id) const { return k->home[size_t(id)] != kern::Buf::Inline; }
  kern::Buf homeOf(int id) const { return k->home[size_t(id)]; }

  // Scalar code.
  std::string val(int id);
  std::string compute(int id);
  std::string expression(const ir::Node &n, const std::vector<std::string> &args);
  std::string operandAs(int id, const ir::Shape &view);

  // Stages.
  void emitKernel(const kern::Kernel &kernel, const std::string &kind);
  /// The replay step (after the forward's stages, whose functions it calls where it takes a
  /// stage over whole).
  void emitReplay();
  std::string emitStage(const kern::Kernel &kernel, size_t s, const std::string &kind);
  void emitStageComment(size_t s, const std::string &kind);
  std::string stageName(size_t s, const std::string &kind);
  std::vector<Fragment> nameFragments(const kern::Item &it, int tier) const;
  std::string valueName(const ir::Node &n) const;
  std::string describe(const kern::Item &it) const;
  void emitNest(std::ostringstream &out);
  void emitNestItem(const kern::Item &it, NestParts &parts);
  void emitDotItem(const kern::Item &it, NestParts &parts);
  void emitReduceItem(const kern::Item &it, NestParts &parts);
  void emitDense(std::ostringstream &out);
  void emitSlice(std::ostringstream &out, const ir::Node &n, const std::string &o,
                 const std::string &src);
  void emitSoftmax(std::ostringstream &out, const ir::Node &n, const std::string &o,
                   const std::string &x);
};

} // namespace dopa::emit
