//===- Generated.h - What generated networks export, and how they run ------===//
//
// dopac's C++ emitter produces, per network, a forward and a backward step function for one batch
// element (and, for networks with batched products, the tables of their stages) and a
// GeneratedSpec describing the network. GeneratedExecutor runs them for a batch, in one of two
// orders (StageOrder): element-major (batch elements in parallel, one element per thread at a time,
// each step function whole) or stage-major (one group of elements per thread, each stage for the
// whole group, the shared-matrix products as GEMMs over the group); and backpropagation through
// time with checkpoints: the forward keeps only the inputs and the states every `outer` steps; the
// backward replays the segments from those checkpoints (with a second level of checkpoints every
// `inner` steps when a segment is long), storing what the backward step reads for at most `inner`
// steps per thread (element-major) or per element (stage-major). In stage-major order, when every
// step fits the budget, the forward stores that itself and nothing is replayed. Replays run the
// same code on the same values, so gradients are bit-identical whatever the plan. GeneratedNetwork
// is the float Network over it.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Network.h"
#include "dopa/runtime/StepArgs.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dopa {

/// The version of GeneratedSpec's layout and of the step functions' calling convention (StepArgs):
/// a library compiled on demand (jit::NetworkCache) is refused when it was built for another.
/// Bump it whenever either changes.
constexpr int kGeneratedAbi = 10;

/// An output the executor computes for the whole batch instead of the step kernels (dopac's
/// batched readouts, compiler/lib/Readouts.cpp): Y[b] = W X[b] (+ bias) with W [rows, cols] in
/// the parameters; the step kernels write X (cols values per element) where the output would go.
struct BatchedReadout {
  int output;           // which output
  int64_t weightOffset; // W, row-major [rows, cols]
  int64_t biasOffset;   // bias [rows], or -1
  int64_t rows, cols;
};

/// What a generated network exports.
struct GeneratedSpec {
  const char *name;     // the network's name in the spec
  const char *specPath; // the spec it was generated from
  NetworkInfo (*info)();
  int64_t stateNumel; // per element: all states, each at a 16-element aligned offset
  const int64_t *stateOffsets;
  int64_t savedNumel;       // per element and step
  int64_t scratchNumel;     // per thread
  const int64_t *inputRows; // per input: rows of the table it indexes (int inputs), else 0
  StepFn<float> forwardFloat, backwardFloat;
  StepFn<double> forwardDouble, backwardDouble;
  int checkpointEvery;    // compiler's choice, 0: plan at run time
  long long memoryBudget; // bytes, 0: the runtime default
  int numDeferred;
  const DeferredOuter *deferred;
  int64_t recordNumel; // per step
  // Floating-point operations of one step (the compiler's ir::countFlops): per batch element, and
  // once per step for the batch (values that do not vary across it). For reports (dopa bench).
  int64_t forwardFlops = 0, forwardSharedFlops = 0;
  int64_t backwardFlops = 0, backwardSharedFlops = 0;
  // The backward step also writes dLoss/d each input (StepArgs::gradInputs; dopac
  // --input-gradients). GeneratedExecutor::backward returns them when asked.
  bool inputGradients = false;
  // Outputs computed for the batch by the executor (GEMMs), not by the step functions.
  int numReadouts = 0;
  const BatchedReadout *readouts = nullptr;
  // The step functions' stages, in the order the step functions call them, and the stages among
  // them that are batched products (stage-major order: GeneratedExecutor::setStageOrder).
  int numForwardStages = 0, numBackwardStages = 0;
  const StepFn<float> *forwardStagesFloat = nullptr, *backwardStagesFloat = nullptr;
  const StepFn<double> *forwardStagesDouble = nullptr, *backwardStagesDouble = nullptr;
  int numForwardProducts = 0, numBackwardProducts = 0;
  const BatchedProduct *forwardProducts = nullptr, *backwardProducts = nullptr;
  // Carried products (dopac --carry-products; docs/design-notes.md "Carried products"): states
  // after the network's own in the state block that each step computes for the next. The
  // prologue computes them from the network's states before the first recorded step (writing the
  // whole next block: the network's states unchanged); its backward, after the first step's
  // backward, adds their gradient's share to the parameter gradients (and to the states'). Null
  // without carried products. Its scratch fits in scratchNumel; its deferred outer products are
  // applied once per element.
  StepFn<float> prologueForwardFloat = nullptr, prologueBackwardFloat = nullptr;
  StepFn<double> prologueForwardDouble = nullptr, prologueBackwardDouble = nullptr;
  int64_t prologueSavedNumel = 0, prologueRecordNumel = 0;
  int numPrologueDeferred = 0;
  const DeferredOuter *prologueDeferred = nullptr;
  // Per state of the state block (the network's, then the carried): whether the float build
  // stores it in bfloat16 (dopac --trace-precision=bf16; Bf16.h: the first half of its slot holds
  // the 16-bit values). Null: every state in T. The double build stores every state in double.
  const bool *bf16States = nullptr;
  // The backward step writes some states' gradients over dLoss/d state' in the gradNext block, in
  // place (kern::Kernel::inPlaceGrads: the traces', which one loop nest reads and writes element by
  // element), and every other state's into gradPrev; the executor then copies those slots,
  // numGradCopies pairs [offset, numel] in gradCopies, from gradPrev to gradNext instead of
  // swapping the blocks.
  // numGradCopies < 0: nothing in place (swap). The same for the prologue's backward.
  int numGradCopies = -1;
  const int64_t *gradCopies = nullptr;
  int numPrologueGradCopies = -1;
  const int64_t *prologueGradCopies = nullptr;
  // The forward step may update some states in place (kern::Kernel::inPlaceStates: the traces):
  // given StepArgs::inPlace (the state block, writable), it writes their next values there and
  // every other state's into next; the executor then copies those slots, numForwardCopies pairs
  // [offset, numel] in forwardCopies, from next into the state block. The element-major forward
  // does (one state block per element instead of two). numForwardCopies < 0: nothing in place.
  int numForwardCopies = -1;
  const int64_t *forwardCopies = nullptr;
  // The backward's replays of the forward (element-major order; kern::FusedNetwork::replay): the
  // forward step less its outputs and less the reductions that compute the states listed in
  // replayRecorded, numReplayRecorded pairs [offset, numel] (the carried products). The forward
  // records those slots of every next state; the executor writes them into the replay's next
  // block before each replayed step. Its states and saved values are the forward's, bit for bit.
  // Null: the replays run the forward step.
  StepFn<float> replayFloat = nullptr;
  StepFn<double> replayDouble = nullptr;
  int numReplayRecorded = 0;
  const int64_t *replayRecorded = nullptr;
};

/// How GeneratedExecutor orders a step's work over the batch.
///  - ElementMajor: each element's step function whole, the elements in parallel; the backward
///    takes one element at a time through all its steps (its buffers stay in one core's cache).
///  - StageMajor: the batch in one group of consecutive elements per thread; each thread runs one
///    stage at a time for every element of its group, the batched products (a shared matrix
///    times a vector per element: an LSTM's gate products) as one GEMM for the group, forward,
///    in the replays and in the backward (which then runs every element's step t before step t-1;
///    its buffers are per element instead of per thread).
///  - Auto: StageMajor for networks with batched products and no matrix-shaped state (a plastic
///    network's traces: its per-element H x H work dominates, and stage-major would stream every
///    element's traces through the cache once per stage), ElementMajor otherwise, on any number
///    of threads (2 threads: cue_reward/rnn 0.0117 s stage-major against 0.0157 s; one thread
///    0.0146 against 0.0285; docs/benchmarks.md "Stage-major in groups").
/// Both orders compute the same values up to the GEMM's rounding. The groups are fixed at
/// beginEpisode, so within an episode the forward and its replays compute alike and replays stay
/// bit-identical to the forward; stage-major results depend on the thread count in the last bits
/// (a group's GEMM has as many rows as the group).
enum class StageOrder { Auto, ElementMajor, StageMajor };

/// The rule of StageOrder: whether `order` runs a network stage-major, given whether it has
/// batched products and whether any of its states has rank 2 or more (runsStageMajor; dopac
/// --emit=plan). The same on any number of threads: stage-major splits the batch into one group
/// of elements per thread (docs/design-notes.md "Stage-major in groups").
inline bool choosesStageMajor(StageOrder order, bool hasProducts, bool hasMatrixState) {
  return hasProducts &&
         (order == StageOrder::StageMajor || (order == StageOrder::Auto && !hasMatrixState));
}

/// Whether an executor of `spec` (whose description is `info`) runs stage-major under `order`
/// (StageMajor: when the spec has batched products; Auto: also no state of rank 2 or more).
bool runsStageMajor(const GeneratedSpec &spec, const NetworkInfo &info, StageOrder order);
/// "auto" | "element" | "stage" (the CLI's --stage-order, DOPA_STAGE_ORDER); throws
/// std::invalid_argument naming `what` otherwise.
StageOrder parseStageOrder(const std::string &name, const std::string &what);
/// DOPA_STAGE_ORDER's order, or Auto when it is unset: every executor's initial order.
StageOrder defaultStageOrder();

/// The checkpointing plan for one episode and its predicted memory.
struct CheckpointPlan {
  int outer = 0; // states of every element kept every `outer` steps during the forward
  int inner = 0; // segment replays store at most `inner` steps per thread
  // Forward replays per step in the backward (1 or 2), or 0: none, the forward keeps every step's
  // states and saved values in the elements' replay buffers (stage-major order, when they fit
  // the budget: outer = inner = the steps).
  int replays = 1;
  int64_t checkpointBytes = 0; // outer checkpoints, all elements
  int64_t perThreadBytes = 0;  // replay buffers, inner checkpoints, gradient accumulators
  // Stage-major (StageOrder): the replay buffers and inner checkpoints are per element (the
  // threads keep only their gradient accumulators), and the batched products' operands.
  int64_t perElementBytes = 0;
  int64_t totalBytes = 0; // everything the executor holds (states, inputs, the above)
};

struct PlanInputs {
  int64_t stateBytes = 0, savedBytes = 0, scratchBytes = 0, inputBytes = 0, outputBytes = 0,
          paramBytes = 0, recordBytes = 0, readoutBytes = 0, prologueBytes = 0;
  // Per element and step, kept with the inputs: the next-state slots the forward records for the
  // replays (element-major order with a replay step; BlockLayout::replayRecordedNumel).
  int64_t replayRecordedBytes = 0;
  // Per element: the largest operand and result of a batched product (stage-major order).
  int64_t productXBytes = 0, productYBytes = 0;
  bool stageMajor = false;
  bool forwardInPlace = false; // element-major with states updated in place: one state block
                               // per element, not two (the spare is a thread's)
  int batch = 1, steps = 1, threads = 1;
  long long memoryBudget = 0; // 0: kDefaultMemoryBudget
  int checkpointEvery = 0;    // > 0 forces outer = inner = it
};
constexpr long long kDefaultMemoryBudget = 64ll << 20;

/// A network's memory layout in elements, whatever the precision: the block sizes the compiler's
/// fusion pass decides and the totals of its inputs, outputs and parameters. GeneratedExecutor,
/// CudaExecutor and `dopac --emit=plan` turn it into bytes with planInputs().
struct BlockLayout {
  int64_t stateNumel = 0;   // per element: all states, each at an aligned offset
  int64_t savedNumel = 0;   // per element and step: forward values the backward reads
  int64_t scratchNumel = 0; // per thread
  int64_t recordNumel = 0;  // per element and step: factors of deferred outer products
  int64_t inputNumel = 0;   // per element and step: all inputs
  int64_t outputNumel = 0;  // per element and step: all outputs the step kernels write
  int64_t readoutNumel = 0; // per element and step: the inputs of batched readouts (kept)
  int64_t productXNumel = 0, productYNumel = 0; // per element: largest batched-product operands
  int64_t paramNumel = 0;
  int64_t prologueNumel = 0;       // per thread or element: the prologue's saved and record blocks
  int64_t replayRecordedNumel = 0; // per element and step: next-state slots the forward records
                                   // for the replays (GeneratedSpec::replayRecorded)
  bool forwardInPlace = false;     // some states updated in place (GeneratedSpec::numForwardCopies)
};

/// The planner's inputs for a layout whose elements take `elementBytes` bytes (4 float, 8 double).
PlanInputs planInputs(const BlockLayout &layout, int64_t elementBytes, int batch, int steps,
                      int threads, long long memoryBudget = 0, int checkpointEvery = 0,
                      bool stageMajor = false);

/// The plan the executor uses: forced by checkpointEvery; else, stage-major, no replay (every step
/// kept by the forward) when that fits the budget; else the single-replay plan with the shortest
/// segment whose checkpoint and replay bytes are within 20% of the fewest, when it fits; else two
/// levels (outer = steps, inner = ceil(sqrt)).
CheckpointPlan planCheckpoints(const PlanInputs &in);

template <class T> class GeneratedExecutor {
public:
  explicit GeneratedExecutor(const GeneratedSpec &spec);
  ~GeneratedExecutor();

  const NetworkInfo &info() const { return netInfo; }
  const GeneratedSpec &spec() const { return genSpec; }
  /// The parameters. Change them only between recorded windows (after backward(), truncate() or
  /// beginEpisode()): a network with carried products (GeneratedSpec::prologueForwardFloat)
  /// computes each step's product in the step before, with the parameters of that step; in
  /// stage-major order the batched products read W^T laid out at the window's first step (and
  /// at backward()), and the backward's replays recompute the forward with the parameters it finds.
  std::vector<T> &params() { return paramBuf; }
  std::vector<T> &grads() { return gradBuf; }

  void beginEpisode(int batch);
  int batch() const { return B; }
  void step(const T *const *inputs, T *const *outputs);
  /// `steps` steps (Network::forward): the batched readouts of all of them as one GEMM each, with
  /// the steps stacked (one read of the weight instead of one per step); in element-major order,
  /// each thread runs one element's whole window before its next element's, so that the element's
  /// traces stay in the thread's cache from step to step. The same values as as many step() calls,
  /// up to the readouts' GEMM's rounding (states and gradients: the same bits).
  void forward(int steps, const T *const *const *inputs, T *const *const *outputs);
  /// Closed-loop episodes one element at a time (Network::runElements): for each element, on one
  /// thread, observe(b, t, x) writes the element's inputs into the step's record, its step runs,
  /// react(b, t, y) reads its outputs. The same kernels on the same blocks as step() by step():
  /// the same values. Returns false, doing nothing, for a network with batched readouts or integer
  /// inputs, or one that runs stage-major. After an exception (a callback's, or an allocation's
  /// while recording) no episode is left: beginEpisode() starts the next.
  using ElementObserve = std::function<void(int b, int t, T *const *inputs)>;
  using ElementReact = std::function<void(int b, int t, const T *const *outputs)>;
  bool runElements(int steps, const ElementObserve &observe, const ElementReact &react);
  /// BPTT over the recorded steps. `inputGrads[t][k]` (optional; networks compiled with input
  /// gradients only, std::logic_error otherwise) receives dLoss/d input k at step t, B * numel
  /// values, overwritten; a null step or input is skipped.
  void backward(const T *const *const *outputGrads, const T *const *finalStateGrads,
                T *const *const *inputGrads = nullptr);
  void truncate();
  int recordedSteps() const { return numSteps; }
  const T *state(int s) const;
  /// Replace state s (B * numel values); only while no step is recorded (std::logic_error else).
  void setState(int s, const T *values);

  /// Force the checkpoint interval (0: plan from the memory budget).
  void setCheckpointEvery(int k) { checkpointEvery = k; }
  void setMemoryBudget(long long bytes) { memoryBudget = bytes; }
  /// The order of the next episodes' work (from the next beginEpisode()). The default is Auto, or
  /// what the environment variable DOPA_STAGE_ORDER says.
  void setStageOrder(StageOrder order) { stageOrder = order; }
  /// Whether the current episode runs stage-major.
  bool stageMajor() const;
  /// Steps per episode to plan the outer checkpoints for (default: the previous backward's
  /// length; unknown before the first backward, when only the episode's start is kept).
  void setExpectedSteps(int steps) { expectedSteps = steps; }
  /// The plan for the next episode (planned at the end of the last backward from its length, or
  /// from setExpectedSteps), and the bytes the executor holds now.
  const CheckpointPlan &lastPlan() const { return plan; }
  int64_t heldBytes() const;
  /// The bytes held during the last backward, after its buffers were allocated (its peak).
  int64_t lastPeakBytes() const { return peakBytes; }

private:
  /// One step's kernels for every element: all outputs but the batched readouts' (whose inputs
  /// are kept in readoutX); records the step.
  void stepKernels(const T *const *inputs, T *const *outputs);
  /// `steps` steps in element-major order: recordStep() for each, then each element's whole window
  /// on one thread (runElementStep); the index inputs are checked by the caller.
  void runElementMajor(int steps, const T *const *const *inputs, T *const *const *outputs);
  /// A step recorded and not yet run: where its elements read their states (from) and write them
  /// (cur, in place; next otherwise), its tape (the batch's inputs, then the replay's records),
  /// its index.
  struct RecordedStep {
    const T *from = nullptr;
    T *cur = nullptr, *next = nullptr;
    T *tape = nullptr;
    int step = 0;
  };
  /// Record the next step for every element: the prologue at the start, its outer checkpoint
  /// (the state buffer swapped in), its tape entry with a copy of `inputs`, room in the readouts'
  /// inputs. Every allocation comes before the swap.
  RecordedStep recordStep(const T *const *inputs);
  /// The same, with the tape's inputs left zero (runElements writes them).
  RecordedStep recordStep() { return recordStep(nullptr); }
  /// Element b's input and output pointers for step s (a batched readout's output: its input X).
  void elementPointers(const RecordedStep &s, int b, T *const *outputs, const T **in, T **out);
  /// Element b's kernels of recorded step s (element-major order), on the calling thread.
  void runElementStep(const RecordedStep &s, int b, T *const *outputs);
  /// Choose the replay capacity for `steps` (the plan) and size every thread's buffers; returns
  /// the capacity (steps per replay).
  int planBackward(int steps);
  /// Write state `s` (numel values) into its slot of state block `block` (bf16 states rounded).
  void writeState(int s, const T *values, T *block) const;
  /// Read state `s` (numel values) from its slot of state block `block` (bf16 states widened).
  void readState(int s, const T *block, T *values) const;

  struct Impl;
  std::unique_ptr<Impl> impl;
  const GeneratedSpec &genSpec;
  NetworkInfo netInfo;
  std::vector<T> paramBuf, gradBuf;
  int B = 0, numSteps = 0;
  int checkpointEvery = 0, expectedSteps = 0, lastSteps = 0;
  long long memoryBudget = 0;
  StageOrder stageOrder = StageOrder::Auto;
  int64_t peakBytes = 0;
  CheckpointPlan plan;
};

extern template class GeneratedExecutor<float>;
extern template class GeneratedExecutor<double>;

/// The float Network over generated C++ (executor() exposes the checkpointing controls).
using GeneratedNetwork = ExecutorNetwork<GeneratedExecutor<float>>;

/// Check that every integer input holds an index into the table it gathers from (inputRows[k]
/// rows; 0 for other inputs); throws naming the input and the batch element otherwise.
template <class T>
void checkIndexInputs(const NetworkInfo &info, const int64_t *inputRows, const T *const *inputs,
                      int batch);

/// The layout of a generated network (its spec's block sizes and its tensors' totals).
BlockLayout layoutOf(const GeneratedSpec &spec, const NetworkInfo &info);

/// The sizes and member offsets of the types a generated network shares with its host, as one
/// number: a library compiled on demand against other headers than the host's is refused even when
/// kGeneratedAbi was not bumped.
inline uint64_t layoutSignature() {
  uint64_t h = 1469598103934665603ull; // FNV-1a over the numbers
  for (uint64_t v : {uint64_t(sizeof(GeneratedSpec)),
                     uint64_t(offsetof(GeneratedSpec, inputGradients)),
                     uint64_t(offsetof(GeneratedSpec, deferred)),
                     uint64_t(offsetof(GeneratedSpec, readouts)),
                     uint64_t(offsetof(GeneratedSpec, backwardProducts)),
                     uint64_t(offsetof(GeneratedSpec, prologueDeferred)),
                     uint64_t(offsetof(GeneratedSpec, bf16States)),
                     uint64_t(offsetof(GeneratedSpec, prologueGradCopies)),
                     uint64_t(offsetof(GeneratedSpec, forwardCopies)),
                     uint64_t(offsetof(GeneratedSpec, replayRecorded)),
                     uint64_t(sizeof(BatchedProduct)),
                     uint64_t(sizeof(BatchedReadout)),
                     uint64_t(sizeof(NetworkInfo)),
                     uint64_t(sizeof(TensorInfo)),
                     uint64_t(sizeof(InitSpec)),
                     uint64_t(sizeof(StepArgs<float>)),
                     uint64_t(offsetof(StepArgs<float>, gradInputs)),
                     uint64_t(sizeof(DeferredOuter)),
                     uint64_t(sizeof(std::string)),
                     uint64_t(sizeof(std::vector<int64_t>))}) {
    h ^= v;
    h *= 1099511628211ull;
  }
  return h;
}

/// Finish a NetworkInfo built by generated code (parameter offsets and count). Inline, so that a
/// generated network's object code needs nothing of the runtime's libraries (NetworkCache loads it
/// as a shared library into any process that has these headers' types).
inline void finalizeInfo(NetworkInfo &info) {
  info.paramOffsets.clear();
  info.numParams = 0;
  for (const TensorInfo &p : info.params) {
    info.paramOffsets.push_back(info.numParams);
    info.numParams += size_t(p.numel());
  }
}

} // namespace dopa
