//===- Plan.cpp - The generated executor's memory plan and order ----------===//
//
// The checkpointing plan of GeneratedExecutor (how many states the forward keeps, how long the
// backward's replays are, and the bytes that takes: the model the executor's allocations follow
// exactly, tested in tests/codegen), the layout it reads from a GeneratedSpec, and the choice of
// element-major or stage-major order (Generated.h: StageOrder).
//
//===----------------------------------------------------------------------===//
#include "GeneratedDetail.h"

#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

using namespace dopa;
using namespace dopa::detail;

/// The batch's state blocks: one per element with the forward in place, else two (cur, next).
static int64_t stateBlockBytes(const PlanInputs &in) {
  return (in.forwardInPlace ? 1 : 2) * int64_t(in.batch) * in.stateBytes;
}

/// The tape: per step, every element's inputs and the next-state slots recorded for the replays.
static int64_t tapeBytes(const PlanInputs &in) {
  return int64_t(std::max(in.steps, 1)) *
         round64(in.batch * (in.inputBytes + in.replayRecordedBytes));
}

/// Bytes of one plan (the model the executor's allocations follow).
CheckpointPlan dopa::detail::evaluatePlan(const PlanInputs &in, int outer, int inner) {
  CheckpointPlan p;
  p.outer = outer;
  p.inner = inner;
  int64_t T = std::max(in.steps, 1);
  int64_t L = std::min<int64_t>(outer, T); // longest segment
  p.replays = L > inner ? 2 : 1;
  p.checkpointBytes = ceilDiv(T, outer) * in.batch * in.stateBytes;
  int64_t replay = std::min<int64_t>(inner, L);
  // Per thread (element-major) or per element (stage-major): the replayed states and saved
  // values, the inner checkpoints, the state gradients (next, previous) and a spare state,
  // scratch, one step's saved values and outputs, the record, the prologue's saved values and
  // record (carried products); per thread also the
  // parameter-gradient accumulator.
  int64_t lane = replay * in.stateBytes + round64(replay * in.savedBytes) +
                 (p.replays == 2 ? ceilDiv(L, inner) * in.stateBytes : 0) + 3 * in.stateBytes +
                 round64(in.scratchBytes) + round64(in.savedBytes) + round64(in.outputBytes) +
                 round64(T * in.recordBytes) + (in.prologueBytes ? round64(in.prologueBytes) : 0);
  int64_t elements = 0;
  if (in.stageMajor) {
    p.perThreadBytes = round64(in.paramBytes);
    p.perElementBytes = lane;
    elements = in.batch * lane + round64(in.batch * in.productXBytes) +
               round64(in.batch * in.productYBytes);
  } else
    p.perThreadBytes = lane + round64(in.paramBytes);
  // Batched readouts: their inputs for every step (the forward), their gradients (the backward).
  // (One block per readout in fact; the plan counts one for all.)
  p.totalBytes = stateBlockBytes(in) + p.checkpointBytes + tapeBytes(in) +
                 in.threads * p.perThreadBytes + elements +
                 (in.readoutBytes ? 2 * round64(T * in.batch * in.readoutBytes) : 0);
  return p;
}

PlanInputs dopa::planInputs(const BlockLayout &layout, int64_t elementBytes, int batch, int steps,
                            int threads, long long memoryBudget, int checkpointEvery,
                            bool stageMajor) {
  PlanInputs in;
  in.stateBytes = layout.stateNumel * elementBytes;
  in.savedBytes = layout.savedNumel * elementBytes;
  in.scratchBytes = layout.scratchNumel * elementBytes;
  in.inputBytes = layout.inputNumel * elementBytes;
  in.outputBytes = layout.outputNumel * elementBytes;
  in.recordBytes = layout.recordNumel * elementBytes;
  in.paramBytes = layout.paramNumel * elementBytes;
  in.prologueBytes = layout.prologueNumel * elementBytes;
  in.readoutBytes = layout.readoutNumel * elementBytes;
  in.productXBytes = layout.productXNumel * elementBytes;
  in.productYBytes = layout.productYNumel * elementBytes;
  in.stageMajor = stageMajor;
  in.forwardInPlace = layout.forwardInPlace && !stageMajor;
  in.replayRecordedBytes = stageMajor ? 0 : layout.replayRecordedNumel * elementBytes;
  in.batch = batch;
  in.steps = steps;
  in.threads = threads;
  in.memoryBudget = memoryBudget;
  in.checkpointEvery = checkpointEvery;
  return in;
}

BlockLayout dopa::layoutOf(const GeneratedSpec &spec, const NetworkInfo &info) {
  BlockLayout layout{.stateNumel = spec.stateNumel,
                     .savedNumel = spec.savedNumel,
                     .scratchNumel = spec.scratchNumel,
                     .recordNumel = spec.recordNumel,
                     .paramNumel = int64_t(info.numParams),
                     .prologueNumel = spec.prologueForwardFloat || spec.prologueForwardDouble
                                          ? spec.prologueSavedNumel + spec.prologueRecordNumel
                                          : 0,
                     .forwardInPlace = spec.numForwardCopies >= 0};
  if (spec.replayFloat && spec.replayDouble) // (the executor runs the replay step only then)
    for (int i = 0; i < spec.numReplayRecorded; ++i)
      layout.replayRecordedNumel += spec.replayRecorded[2 * i + 1];
  for (const TensorInfo &in : info.inputs)
    layout.inputNumel += in.numel();
  for (const TensorInfo &o : info.outputs)
    layout.outputNumel += o.numel();
  // The kernels write a batched readout's input (cols) where its output (rows) would go.
  for (int r = 0; r < spec.numReadouts; ++r) {
    layout.outputNumel += spec.readouts[r].cols - spec.readouts[r].rows;
    layout.readoutNumel += spec.readouts[r].cols;
  }
  for (const auto &[n, products] : {std::pair{spec.numForwardProducts, spec.forwardProducts},
                                    std::pair{spec.numBackwardProducts, spec.backwardProducts}})
    for (int p = 0; p < n; ++p) {
      const BatchedProduct &bp = products[p];
      layout.productXNumel = std::max(layout.productXNumel, bp.transposed ? bp.rows : bp.cols);
      layout.productYNumel = std::max(layout.productYNumel, bp.transposed ? bp.cols : bp.rows);
    }
  return layout;
}

CheckpointPlan dopa::planCheckpoints(const PlanInputs &in) {
  int T = std::max(in.steps, 1);
  if (in.checkpointEvery > 0)
    return evaluatePlan(in, in.checkpointEvery, in.checkpointEvery);
  long long budget = in.memoryBudget > 0 ? in.memoryBudget : kDefaultMemoryBudget;
  int64_t fixed = stateBlockBytes(in) + tapeBytes(in) +
                  (in.readoutBytes ? 2 * round64(int64_t(T) * in.batch * in.readoutBytes) : 0);
  // Stage-major, the replay buffers are per element: when every step fits, the forward fills
  // them and the backward replays nothing (the same bytes as outer = inner = T, no forward
  // replay: about a sixth less time for cue_reward/rnn).
  if (in.stageMajor) {
    CheckpointPlan all = evaluatePlan(in, T, T);
    if (all.totalBytes - fixed <= budget) {
      all.replays = 0;
      return all;
    }
  }
  // Single replay: outer = inner = k; the checkpoints and the replay buffers trade off. The
  // fewest bytes balance them (k near sqrt(T * batch / threads)); but a replay buffer is written
  // and read back once per step, and once it outgrows the cache every replayed state goes to
  // memory and back, while a checkpoint is written and read once per k steps. So the plan takes
  // the shortest segment whose checkpoints and replay buffers (the bytes k changes) stay within
  // kReplaySlack of the fewest (cue_reward/modul on 2 threads: with 1.2, k 40 -> 24, 68 -> 77
  // MB, 8-10% less time; docs/benchmarks.md "Memory traffic at H = 200"). Since the replay step
  // records the carried products, 1.15: k 30, 86 MB peak RSS, where 24 would pass the 90 MB the
  // paper's settings are held to for 4% less time ("The replay kernel").
  constexpr double kReplaySlack = 1.15;
  std::vector<CheckpointPlan> plans;
  CheckpointPlan best;
  best.totalBytes = -1;
  for (int k = 1; k <= T; ++k) {
    plans.push_back(evaluatePlan(in, k, k));
    if (best.totalBytes < 0 || plans.back().totalBytes < best.totalBytes)
      best = plans.back();
  }
  for (const CheckpointPlan &p : plans)
    if (double(p.totalBytes - fixed) <= kReplaySlack * double(best.totalBytes - fixed) &&
        p.totalBytes - fixed <= budget) {
      best = p;
      break;
    }
  if (best.totalBytes - fixed <= budget)
    return best;
  int inner = int(std::ceil(std::sqrt(double(T))));
  return evaluatePlan(in, T, inner);
}

StageOrder dopa::defaultStageOrder() {
  const char *order = std::getenv("DOPA_STAGE_ORDER");
  return order && *order ? parseStageOrder(order, "DOPA_STAGE_ORDER") : StageOrder::Auto;
}

bool dopa::runsStageMajor(const GeneratedSpec &spec, const NetworkInfo &info, StageOrder order) {
  bool products = (spec.forwardStagesFloat || spec.numForwardStages == 0) &&
                  (spec.backwardStagesFloat || spec.numBackwardStages == 0) &&
                  spec.numForwardProducts + spec.numBackwardProducts > 0;
  return choosesStageMajor(order, products,
                           std::any_of(info.states.begin(), info.states.end(),
                                       [](const TensorInfo &s) { return s.shape.size() >= 2; }));
}

StageOrder dopa::parseStageOrder(const std::string &name, const std::string &what) {
  if (name == "auto")
    return StageOrder::Auto;
  if (name == "element")
    return StageOrder::ElementMajor;
  if (name == "stage")
    return StageOrder::StageMajor;
  throw std::invalid_argument(what + " is '" + name + "'; expected auto, element or stage");
}
