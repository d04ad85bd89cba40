//===- EmitCuda.cpp - The CUDA emitter ------------------------------------===//
//
// Prints the same stages and the same scalar code as the C++ emitter, mapped onto the GPU: a stage
// is a __device__ function run by all the threads working on one batch element (`splits` blocks of
// kThreads); in an [M, N] nest a warp takes a row and its lanes the columns, in a rank-1 nest the
// threads share the elements; partial sums are reduced over the warp and added atomically where
// warps or blocks share an accumulator. A forward and a backward __global__ kernel run the stages
// with dopa::elementSync between them (the barrier of the element's blocks: a block's, a
// cluster's or the grid's, as the launch chose); a segment kernel runs a backward segment (its
// replayed forward steps, then its backward steps) in one launch; host launchers call
// dopa::launchStep. The file includes dopa/cuda/DeviceSupport.cuh (warp sums, the barrier, the
// launcher) and nothing else.
//
//===----------------------------------------------------------------------===//
#include "EmitCommon.h"

using namespace dopa;
using namespace dopa::emit;
using ir::Op;

namespace {

class CudaEmitter : public NetworkEmitter {
public:
  using NetworkEmitter::NetworkEmitter;

private:
  void emitPreamble(std::ostream &out) override {
    out << "const dopa::GeneratedSpec &spec(); // the C++ network: description and layout\n\n"
        << "constexpr int kThreads = 1024;\n\n";
  }

  // Nest loops are strided over threads, so a loop of extent 1 still picks the thread that runs it.
  bool elideUnitLoops() const override { return false; }

  /// CUDA's overloads (float and double) of the math functions.
  std::string mathFn(const char *name) const override {
    return std::string(name) == "abs" ? "fabs" : name;
  }

  std::string roundBf16Fn() const override {
    throw std::runtime_error("the CUDA backend stores traces in float: --trace-precision=bf16 is "
                             "for the C++ target");
  }

  /// Blocks and warps share accumulators: atomic adds.
  std::string accumulate(const std::string &outBuf, const std::string &index,
                         const std::string &v) const override {
    return cat({"atomicAdd(&", outBuf, "[", index, "], ", v, ");\n"});
  }

  bool sharedDotOutputs() const override { return true; }

  std::string forEachElement(int64_t count, const ElementStmt &stmt) const override {
    return "for (int e = tid; e < " + std::to_string(count) + "; e += nthreads)\n" + stmt("e") +
           "\n";
  }

  std::string denseLabel() const override { return "dense product (a warp or thread per output)"; }
  std::string stageQualifiers() const override { return "__device__ __forceinline__ "; }

  /// This thread's index among all threads working on the element, and their count.
  std::string stagePrologue() const override {
    return "const int tid = a.split * blockDim.x + threadIdx.x, nthreads = a.splits * "
           "blockDim.x;\n(void)tid;\n(void)nthreads;\n";
  }

  void emitNestLoops(std::ostringstream &out, const std::vector<Accumulator> &partials,
                     bool zeroed) override;
  void emitDenseProduct(std::ostringstream &out, const DenseProduct &p) override;
  void emitOpaque(std::ostringstream &out) override;
  void emitStepFunction(const std::string &kind, const std::vector<std::string> &stages) override;
  void emitSpec() override;
  void emitSegmentFunction();
};

/// The GPU mapping of a nest: rank 2, a warp per row i, its lanes over j; rank 1, the threads over
/// j; rank 0, thread 0. Partial sums are reduced over the warp, then added atomically (a row the
/// warp owns is stored).
void CudaEmitter::emitNestLoops(std::ostringstream &out, const std::vector<Accumulator> &partials,
                                bool zeroed) {
  const ir::Shape &space = stage->space;
  size_t rank = space.size();
  if (zeroed)
    out << "dopa::elementSync(a.splits);\n";
  std::string decls, finish;
  for (const Accumulator &p : partials) {
    decls += "T " + p.var + " = T(0);\n";
    if (rank == 0)
      finish += cat({p.out, "[", p.index, p.assign ? "] = " : "] += ", p.var, ";\n"});
    else
      finish += cat({p.var, " = dopa::warpSum(", p.var, ");\n"});
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

/// A warp per output row for matrix @ vector; a thread per output otherwise.
void CudaEmitter::emitDenseProduct(std::ostringstream &out, const DenseProduct &p) {
  const ir::Shape &a = p.aShape, &b = p.bShape;
  if (a.size() == 2 && b.size() == 1) {
    out << "for (int r = tid >> 5; r < " << a[0]
        << "; r += nthreads >> 5) {\nT acc = T(0);\nfor (int k = threadIdx.x & 31; k < " << a[1]
        << "; k += 32)\nacc += " << p.a << "[r * " << a[1] << " + k] * " << p.b
        << "[k];\nacc = dopa::warpSum(acc);\nif ((threadIdx.x & 31) == 0)\n"
        << p.c << "[r] = acc;\n}\n";
  } else if (a.size() == 1 && b.size() == 2) {
    out << "for (int c = tid; c < " << b[1] << "; c += nthreads) {\nT acc = T(0);\n"
        << serialLoop("k", 0, b[0],
                      [&](const std::string &k) {
                        return cat({"acc += ", p.a, "[", k, "] * ", p.b, "[",
                                    linear({{k, b[1]}, {"c", 1}}), "];\n"});
                      })
        << p.c << "[c] = acc;\n}\n";
  } else {
    out << "for (int e = tid; e < " << a[0] * b[1] << "; e += nthreads) {\nconst int r = e / "
        << b[1] << ", c = e % " << b[1] << ";\nT acc = T(0);\n"
        << serialLoop("k", 0, a[1],
                      [&](const std::string &k) {
                        return cat({"acc += ", p.a, "[", linear({{"r", a[1]}, {k, 1}}), "] * ", p.b,
                                    "[", linear({{k, b[1]}, {"c", 1}}), "];\n"});
                      })
        << p.c << "[e] = acc;\n}\n";
  }
}

/// Copies (reshape, gather, concat) and zeroing run over the element's threads; the other opaque
/// ops run on thread 0.
void CudaEmitter::emitOpaque(std::ostringstream &out) {
  const kern::Item &it = stage->items[0];
  if (it.kind != kern::Item::Zero) {
    Op op = g().node(it.node).op;
    bool strided = op == Op::Reshape || op == Op::Gather || op == Op::Concat;
    if (!strided) {
      out << "if (tid == 0) {\n";
      emitOpaqueOp(out);
      out << "}\n";
      return;
    }
  }
  emitOpaqueOp(out);
}

/// The step's body for one batch element (blockIdx.x / splits counted from firstElement;
/// blockIdx.x % splits is the block's share of it: the stages in order with elementSync between
/// them), the kernel that runs it for the whole batch, and the kernel's host launcher.
void CudaEmitter::emitStepFunction(const std::string &kind,
                                   const std::vector<std::string> &stages) {
  os << "/// One " << kind << " step of " << net.forward.name
     << " for one batch element: `splits` consecutive blocks run each element, from "
        "`firstElement`.\n"
     << "template <class T>\n__device__ __forceinline__ void " << kind
     << "_element(const dopa::BatchArgs<T> &ba, int firstElement, int splits) {\n"
     << "const int64_t b = firstElement + blockIdx.x / splits;\n"
     << "const T *in[dopa::kMaxIO];\nT *out[dopa::kMaxIO];\nconst T *gout[dopa::kMaxIO];\n"
     << "for (int k = 0; k < ba.numInputs; ++k)\nin[k] = ba.inputs[k] + b * ba.inputNumel[k];\n"
     << "for (int k = 0; k < ba.numOutputs; ++k) {\nout[k] = ba.outputs[k] ? ba.outputs[k] + b "
        "* ba.outputNumel[k] : nullptr;\ngout[k] = ba.gradOutputs[k] ? ba.gradOutputs[k] + b * "
        "ba.outputNumel[k] : nullptr;\n}\n"
     << "dopa::StepArgs<T> a;\na.split = blockIdx.x % splits;\na.splits = splits;\n"
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
  for (size_t i = 0; i < stages.size(); ++i)
    os << (i ? "dopa::elementSync(splits);\n" : "") << stages[i] << "(a);\n";
  os << "}\n\n";
  os << "/// One " << kind << " step of " << net.forward.name
     << " for the whole batch: ba.splits consecutive blocks run each batch element.\n"
     << "template <class T>\n__global__ void __launch_bounds__(kThreads) " << kind
     << "_kernel(const dopa::BatchArgs<T> ba) {\n"
     << kind << "_element(ba, ba.firstElement, ba.splits);\n}\n\n";
  os << "template <class T> void " << kind
     << "_launch(const dopa::BatchArgs<T> &ba, void *stream) {\n"
     << "dopa::launchStep(" << kind << "_kernel<T>, ba, kThreads, stream);\n"
     << "}\n\n";
}

/// A segment of the backward in one launch: the replayed forward steps, then the backward steps,
/// each element's blocks waiting for each other between steps (a step reads only its own
/// element's states and gradients from the step before), and its host launcher.
void CudaEmitter::emitSegmentFunction() {
  os << "/// A backward segment of " << net.forward.name
     << " in one launch: sa.replays forward steps replayed from the segment's checkpoint, then "
        "sa.backwards backward steps, their arguments in sa.steps (device memory).\n"
     << "template <class T>\n__global__ void __launch_bounds__(kThreads) "
        "segment_kernel(const dopa::SegmentArgs<T> sa) {\n"
     << "for (int r = 0; r < sa.replays; ++r) {\n"
     << "forward_element(sa.steps[r], sa.firstElement, sa.splits);\n"
     << "dopa::elementSync(sa.splits);\n}\n"
     << "for (int r = 0; r < sa.backwards; ++r) {\n"
     << "if (r > 0)\ndopa::elementSync(sa.splits);\n"
     << "backward_element(sa.steps[sa.replays + r], sa.firstElement, sa.splits);\n}\n}\n\n"
     << "template <class T> void segment_launch(const dopa::SegmentArgs<T> &sa, void *stream) {\n"
     << "dopa::launchStep(segment_kernel<T>, sa, kThreads, stream);\n}\n\n";
}

/// The CudaSpec, its fields named in comments (CUDA is compiled as C++17, which has no designated
/// initializers; nvcc and CMake 3.25 do not agree on a C++20 dialect flag).
void CudaEmitter::emitSpec() {
  emitSegmentFunction();
  // The deferred gradients of these kernels (the C++ ones may differ: batched readouts).
  os << "static const dopa::DeferredOuter cudaDeferred[] = {\n";
  for (const kern::DeferredOuter &d : f.deferred)
    os << "{/*paramOffset=*/" << paramOffset(d.param) << ", /*rows=*/" << d.rows << ", /*cols=*/"
       << d.cols << ", /*offsetA=*/" << d.offsetA << ", /*offsetB=*/" << d.offsetB << "},\n";
  if (f.deferred.empty())
    os << "{0, 0, 0, 0, 0},\n";
  os << "};\n\n";
  os << "const dopa::CudaSpec &cuda_spec() {\n"
     << "static const dopa::CudaSpec s = {\n"
     << "/*name=*/" << quoted(net.forward.name) << ",\n"
     << "/*cpu=*/&spec,\n"
     << "/*forwardFloat=*/forward_launch<float>,\n"
     << "/*backwardFloat=*/backward_launch<float>,\n"
     << "/*forwardDouble=*/forward_launch<double>,\n"
     << "/*backwardDouble=*/backward_launch<double>,\n"
     << "/*threadsPerBlock=*/kThreads,\n"
     << "/*stateNumel=*/" << f.stateNumel << ",\n"
     << "/*savedNumel=*/" << f.savedNumel << ",\n"
     << "/*scratchNumel=*/" << std::max(f.forward.scratchNumel, f.backward.scratchNumel) << ",\n"
     << "/*recordNumel=*/" << f.recordNumel << ",\n"
     << "/*numDeferred=*/" << f.deferred.size() << ",\n"
     << "/*deferred=*/cudaDeferred,\n"
     << "/*segmentFloat=*/segment_launch<float>,\n"
     << "/*segmentDouble=*/segment_launch<double>,\n"
     << "};\nreturn s;\n}\n\n";
}

} // namespace

std::string dopa::emitCudaNetwork(const CompiledNetwork &net, const kern::FusedNetwork &fused,
                                  const llvm::SourceMgr &sources, const EmitOptions &options) {
  return CudaEmitter(net, fused, sources, options).run();
}

std::string dopa::emitCudaFile(const std::vector<std::string> &bodies, const EmitOptions &o) {
  std::string code = banner(o, "generated CUDA kernels");
  code += "#include \"dopa/cuda/DeviceSupport.cuh\"\n\n#include <cstdint>\n\n";
  for (const std::string &b : bodies)
    code += b + "\n";
  if (o.formatter)
    code = o.formatter(code);
  return restoreLines(code, o.outputName.empty() ? "generated.cu" : o.outputName);
}
