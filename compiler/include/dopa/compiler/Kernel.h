//===- Kernel.h - The fused kernel description shared by the emitters -----===//
//
// The fusion pass turns a network's forward and backward step graphs into two per-batch-element
// kernels: straight-line sequences of stages over static shapes, which the C++ (and CUDA) emitters
// print. It decides three things:
//
//   - which values are materialized ("roots") and which are inlined as scalar expressions into
//     the loops that read them (element-wise ops, outer products, broadcasts: recomputed, never
//     stored, when the reader iterates over the same shape);
//   - which roots share one loop nest (horizontal fusion: all work over the same [M, N] space,
//     e.g. for the modulated RNN one pass over w, alpha, pw, et computes pw', et' and the
//     recurrent input (w + alpha * pw) @ h as a row reduction);
//   - what the backward kernel reads from the forward (the "saved" values: the forward roots it
//     needs; element-wise forward values are recomputed from states and saved roots instead).
//
// The backward kernel works on a merged graph: the forward nodes followed by the backward nodes,
// with each `fwd %n` reference replaced by forward node n itself.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/compiler/Passes.h"

#include "llvm/Support/raw_ostream.h"

#include <string>
#include <vector>

namespace dopa::kern {

/// Where a value lives, from the point of view of one per-element kernel call.
enum class Buf {
  Inline,     // not stored: recomputed by each reader
  Const,      // a literal
  Param,      // the shared parameter buffer
  Input,      // this step's input k
  State,      // the state at the start of the step (all states: one block per element)
  NextState,  // forward: the next state block
  Saved,      // forward writes, backward reads: one block per step and element
  Scratch,    // per-thread scratch
  Output,     // forward: output k
  GradOutput, // backward: dLoss/d output k (zeros when absent)
  GradNext,   // backward: dLoss/d next state block
  GradPrev,   // backward: dLoss/d state block at the start of the step
  GradInput,  // backward: dLoss/d input k (networks compiled with input gradients)
  Grad,       // backward: the parameter-gradient accumulator
  Record,     // backward: this step's factors of deferred outer-product gradients
};
const char *bufName(Buf buf);

struct Item {
  enum Kind {
    Pointwise,  // compute `node` at every index of the space and store it in its home
    RowDot,     // matmul [M,K]@[K]: out[i] = sum_k A(i,k) v[k], A inlined (space [M,K])
    ColDot,     // matmul [K]@[K,N]: out[n] = sum_k v[k] A(k,n), A inlined (space [K,N])
    VecDot,     // matmul [K]@[K]: out = sum_k a[k] b[k] (space [K])
    Reduce,     // reduce_to / sum_all / sum_axis of an inlined operand (space: operand shape)
    Store,      // target[idx] = node (an output, a saved value or a state/state-gradient copy)
    Accumulate, // target[idx] += node (a parameter gradient; a row of it for an embedding)
    Dense,      // matmul with materialized operands: Eigen
    Opaque,     // reshape, gather, concat, slice, transpose, softmax, ...: its own loop
    Zero,       // target = 0 (a state or input gradient that is identically zero)
  };
  Kind kind = Pointwise;
  int node = -1;
  Buf target = Buf::Scratch; // Store/Accumulate/Zero
  int targetIndex = -1;      // output / state / param / saved slot
  int rowIndexNode = -1;     // Accumulate of an embedding row: the index input's node
};

struct Stage {
  enum Kind { Nest, Dense, Opaque };
  Kind kind = Nest;
  ir::Shape space;
  std::vector<Item> items;
};

struct Kernel {
  bool isBackward = false;
  ir::Graph graph; // forward graph, or the merged graph for the backward kernel
  int numForwardNodes = 0;
  std::vector<char> live;      // per node: needed by a sink
  std::vector<Buf> home;       // per node
  std::vector<int> homeIndex;  // per node: input/state/output/param index, or -1
  std::vector<int64_t> offset; // per node: offset in its home block (state, saved, scratch)
  std::vector<Stage> stages;
  int64_t scratchNumel = 0;
  /// Backward: per state, whether its gradient may be written over dLoss/d state' in place (the
  /// C++ target does; GeneratedSpec::inPlaceGrads): a matrix-shaped state whose gradient one loop
  /// nest stores element by element, after every read of dLoss/d state' in the step. Saves the
  /// read-for-ownership of the written block and a block of working set per element.
  std::vector<char> inPlaceGrads;
  /// Forward: per state, whether its next value may be written over the state itself (the C++
  /// target's element-major forward does: GeneratedSpec::forwardCopies): a matrix-shaped state
  /// one loop nest updates element by element, after every read of the state in the step. Saves
  /// the read-for-ownership of a second block and the batch's second state block.
  std::vector<char> inPlaceStates;
};

/// A parameter gradient that is a sum of outer products over steps, dW += sum_t a_t b_t^T: the
/// backward kernel records a_t and b_t, and the runtime adds them up with one matrix product per
/// batch element (a GEMM over time) instead of a rank-1 update of W's gradient at every step.
struct DeferredOuter {
  int param = -1;
  int64_t rows = 0, cols = 0;
  int64_t offsetA = 0, offsetB = 0; // in the record block
};

struct FusedNetwork {
  Kernel forward, backward;
  /// Per state: offset in the per-element state block; the block's size.
  std::vector<int64_t> stateOffsets;
  int64_t stateNumel = 0;
  /// Forward nodes the backward reads, their offsets in the saved block, the block's size.
  std::vector<int> savedNodes;
  std::vector<int64_t> savedOffsets;
  int64_t savedNumel = 0;
  /// Deferred outer-product gradients and the per-step record block they read.
  std::vector<DeferredOuter> deferred;
  std::vector<int64_t> recordOffsets; // per record slot (a distinct factor)
  int64_t recordNumel = 0;
  bool inputGradients = false; // the backward writes dLoss/d input (Buf::GradInput)
  /// With carried products: the prologue's kernels (one entry; CompiledNetwork::prologue), over
  /// the same state layout. Empty otherwise.
  std::vector<FusedNetwork> prologue;
  /// The forward as the backward's replays need it (deriveReplay; the C++ target's element-major
  /// order runs it): the forward kernel less the stages that only compute outputs and less the
  /// carried products' reductions in the traces' nest, whose next values the first forward
  /// records instead (replayRecorded, per state). Its stages are the forward's stages
  /// replayFrom[s], with items left out where replayTrimmed[s]. No stages: nothing to leave out
  /// (the replays run the forward kernel).
  Kernel replay;
  std::vector<int> replayFrom;
  std::vector<char> replayTrimmed;
  std::vector<char> replayRecorded;
};

/// Fill f.replay, replayFrom, replayTrimmed and replayRecorded from f.forward (called by fuse).
void deriveReplay(FusedNetwork &f);

/// Buffers inside a block start at multiples of this many elements (64 bytes for float), so that
/// every call sees the same alignment and vectorized loops sum in the same order.
constexpr int64_t kAlign = 16;

/// A dense stage the runtime may run for the whole batch as one GEMM (stage-major order): a
/// parameter matrix W times one vector per element, y = W x, or y = x W (`transposed`, as the
/// backward's dx = dy W), with x and y in per-element blocks.
struct BatchedProductShape {
  int weight = -1, x = -1; // nodes
  bool transposed = false;
};
/// Stage s of kernel k as a batched product, or weight -1 when it is not one.
BatchedProductShape batchedProduct(const Kernel &k, size_t s);

/// Fuse a compiled network into its forward and backward kernels. Throws std::runtime_error for
/// an op the kernels cannot express (none of the language's ops today).
FusedNetwork fuse(const CompiledNetwork &net);

/// Print the kernels (dopac --emit=kernels).
void print(const FusedNetwork &fused, llvm::raw_ostream &os);

} // namespace dopa::kern
