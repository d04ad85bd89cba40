//===- CodegenTest.cpp - Generated C++ against the generic executor -------===//
//
// Differential tests: for each network compiled by dopa_add_network() (every example at tiny dims
// in float64 and at the paper's dims in float32, and a network using every op), the generated
// forward outputs, final states and BPTT gradients equal the generic executor's on the same
// parameters, inputs and output gradients. Also: every checkpointing plan gives bit-identical
// gradients, the generated float64 backward matches central finite differences, and the memory
// plan predicts the executor's allocations. A network compiled on demand (jit::compileNetwork)
// equals the same network compiled by the build.
//
//===----------------------------------------------------------------------===//
#include "CodegenCases.h"
#include "CodegenRun.h"
#include "TestUtil.h"

#include "dopa/compiler/Pipeline.h"
#include "dopa/examples/ExampleNetworks.h"
#include "dopa/generic/Executor.h"
#include "dopa/jit/NetworkCache.h"
#include "dopa/runtime/DimOverrides.h"
#include "dopa/runtime/Generated.h"
#include "dopa/runtime/Random.h"

#include <doctest/doctest.h>

#include <cmath>
#include <optional>

#ifdef _OPENMP
#include <omp.h>
#endif

using namespace dopa;
using namespace dopa::test;

namespace {

/// Run `gen` in the order Auto picks: stage-major where the network has batched products and no
/// matrix-shaped state, element-major otherwise, whatever DOPA_STAGE_ORDER says (the orders are
/// compared with each other in "stage-major order equals element-major order").
template <class T> void useAutoOrder(GeneratedExecutor<T> &gen, const GeneratedSpec &spec) {
  gen.setStageOrder(runsStageMajor(spec, gen.info(), StageOrder::Auto) ? StageOrder::StageMajor
                                                                       : StageOrder::ElementMajor);
}

/// Compile the only network of a spec of the source tree with "H=4,I=5"-style overrides.
std::optional<CompiledNetwork> compileSpec(const std::string &path, const std::string &dims) {
  DimParse overrides = parseCanonicalDims(dims);
  if (!overrides.ok()) {
    FAIL_CHECK(overrides.error);
    return std::nullopt;
  }
  Frontend frontend({DOPA_SOURCE_DIR "/examples/lm"});
  PipelineOptions graphsOnly; // the generic executor runs the graphs
  graphsOnly.fuse = false;
  auto compiled =
      dopa::compileSpec(frontend, DOPA_SOURCE_DIR "/" + path, overrides.dims, "", graphsOnly);
  if (!compiled) {
    FAIL_CHECK("spec does not compile: " << path);
    return std::nullopt;
  }
  return std::move(compiled->graphs);
}

/// The same episode through forward(): the steps in two calls (4, then the rest), every step's
/// outputs in one block per output (consecutive steps consecutive: the batched readouts' one-GEMM
/// path) or in a buffer of their own per step (their copy path); then the backward as run() does.
template <class T, class Exec>
RunResult<T> runForward(Exec &exec, const NetworkInfo &info, const Episode<T> &ep,
                        bool contiguous) {
  RunResult<T> r;
  const int B = ep.batch, S = ep.steps;
  exec.beginEpisode(B);
  std::vector<std::vector<T>> blocks; // contiguous: per output, all steps
  auto perStep = std::vector<std::vector<std::vector<T>>>(size_t(S)); // else: per step, per output
  auto out = std::vector<std::vector<T *>>(size_t(S));
  auto in = std::vector<std::vector<const T *>>(size_t(S));
  for (const TensorInfo &o : info.outputs)
    blocks.emplace_back(contiguous ? size_t(S) * size_t(B) * size_t(o.numel()) : 0);
  for (int t = 0; t < S; ++t) {
    for (size_t k = 0; k < info.outputs.size(); ++k) {
      size_t n = size_t(B) * size_t(info.outputs[k].numel());
      if (contiguous) {
        out[size_t(t)].push_back(blocks[k].data() + size_t(t) * n);
      } else {
        perStep[size_t(t)].emplace_back(n);
        out[size_t(t)].push_back(perStep[size_t(t)].back().data());
      }
    }
    for (size_t k = 0; k < info.inputs.size(); ++k)
      in[size_t(t)].push_back(ep.inputs[k].data() +
                              size_t(t) * size_t(B) * size_t(info.inputs[k].numel()));
  }
  std::vector<const T *const *> inPtr;
  std::vector<T *const *> outPtr;
  for (int t = 0; t < S; ++t) {
    inPtr.push_back(in[size_t(t)].data());
    outPtr.push_back(out[size_t(t)].data());
  }
  const int firstCall = std::min(4, S);
  exec.forward(firstCall, inPtr.data(), outPtr.data());
  exec.forward(S - firstCall, inPtr.data() + firstCall, outPtr.data() + firstCall);
  for (size_t k = 0; k < info.outputs.size(); ++k) {
    size_t n = size_t(B) * size_t(info.outputs[k].numel());
    r.outputs.emplace_back();
    for (int t = 0; t < S; ++t)
      r.outputs[k].insert(r.outputs[k].end(), out[size_t(t)][k], out[size_t(t)][k] + n);
  }
  for (size_t s = 0; s < info.states.size(); ++s) {
    const T *p = exec.state(int(s));
    r.states.emplace_back(p, p + size_t(B) * size_t(info.states[s].numel()));
  }
  std::vector<std::vector<const T *>> gSteps(size_t(S), std::vector<const T *>(ep.dY.size()));
  std::vector<const T *const *> gPtr;
  for (int t = 0; t < S; ++t) {
    for (size_t k = 0; k < ep.dY.size(); ++k)
      gSteps[size_t(t)][k] =
          ep.dY[k].data() + size_t(t) * size_t(B) * size_t(info.outputs[k].numel());
    gPtr.push_back(gSteps[size_t(t)].data());
  }
  std::fill(exec.grads().begin(), exec.grads().end(), T(0));
  exec.backward(gPtr.data(), nullptr);
  r.grads = exec.grads();
  return r;
}

bool sameInfo(const NetworkInfo &a, const NetworkInfo &b) {
  if (a.numParams != b.numParams || a.params.size() != b.params.size() ||
      a.inputs.size() != b.inputs.size() || a.outputs.size() != b.outputs.size() ||
      a.states.size() != b.states.size())
    return false;
  for (size_t i = 0; i < a.params.size(); ++i)
    if (a.params[i].name != b.params[i].name || a.params[i].shape != b.params[i].shape ||
        a.params[i].init.kind != b.params[i].init.kind ||
        a.params[i].init.a != b.params[i].init.a || a.params[i].init.b != b.params[i].init.b)
      return false;
  for (size_t i = 0; i < a.outputs.size(); ++i)
    if (a.outputs[i].name != b.outputs[i].name || a.outputs[i].shape != b.outputs[i].shape)
      return false;
  return true;
}

/// Run `a` and `b` on the same parameters (from the initializers, perturbed) and the same episode;
/// the worst relative difference of their outputs, final states and gradients (compareRuns).
template <class ExecA, class ExecB>
double differential(ExecA &a, ExecB &b, std::string &worstName) {
  REQUIRE(sameInfo(a.info(), b.info()));
  const NetworkInfo &info = b.info();
  b.params() = makeParams<double>(info, 5, 3.0, true);
  a.params() = b.params();
  Episode<double> ep = makeEpisode<double>(info, 9, 3, 17);
  RunResult<double> ra = run(a, info, ep), rb = run(b, info, ep);
  return compareRuns(info, ra, rb, worstName);
}

} // namespace

TEST_CASE("generated code equals the generic executor at tiny dims (float64)") {
  for (const test::CodegenCase &c : test::codegenCases()) {
    INFO("case " << c.name << " (" << c.spec << " " << c.dims << ")");
    auto net = compileSpec(c.spec, c.dims);
    if (!net)
      continue;
    Executor<double> ref(net->forward, net->backward);
    GeneratedExecutor<double> gen(c.generated());
    useAutoOrder(gen, c.generated());
    // The *_readout cases exist to test batched readouts: they must have them.
    if (std::string(c.name).ends_with("_readout"))
      CHECK(c.generated().numReadouts >= 1);
    std::string worstName;
    double worst = differential(gen, ref, worstName);
    INFO("worst: " << worstName << " " << worst);
    CHECK(worst <= 1e-11);
  }
}

TEST_CASE("carried products: from set states, over windows, every plan, both orders (float64)") {
  // A carried product (dopac --carry-products) reads a state the previous step computed; the
  // prologue computes it at the start of each recorded window, and its backward returns its
  // gradient to the parameters. From zero states that gradient is zero, so the states are set
  // here (random, pw and h included), and a second window continues from the first's states (the
  // language models' truncated BPTT). Against the generic executor, which runs the spec's graph.
  int withPrologue = 0;
  for (const test::CodegenCase &c : test::codegenCases()) {
    const GeneratedSpec &spec = c.generated();
    if (!spec.prologueForwardDouble)
      continue;
    ++withPrologue;
    auto net = compileSpec(c.spec, c.dims);
    REQUIRE(net);
    for (auto [order, every] : {std::pair{StageOrder::ElementMajor, 0},
                                {StageOrder::ElementMajor, 2},
                                {StageOrder::StageMajor, 0},
                                {StageOrder::StageMajor, 3}}) {
      INFO("case " << c.name << ", stage-major " << (order == StageOrder::StageMajor)
                   << ", checkpoint every " << every);
      Executor<double> ref(net->forward, net->backward);
      GeneratedExecutor<double> gen(spec);
      gen.setStageOrder(order);
      gen.setCheckpointEvery(every);
      const NetworkInfo &info = ref.info();
      REQUIRE(sameInfo(gen.info(), info)); // the carried states are not the network's
      ref.params() = makeParams<double>(info, 5, 3.0, true);
      gen.params() = ref.params();
      const int B = 3;
      ref.beginEpisode(B);
      gen.beginEpisode(B);
      Rng rng(41);
      for (size_t s = 0; s < info.states.size(); ++s) {
        std::vector<double> v(size_t(B * info.states[s].numel()));
        for (double &x : v)
          x = rng.uniform(-0.5, 0.5);
        ref.setState(int(s), v.data());
        gen.setState(int(s), v.data());
      }
      for (int window = 0; window < 2; ++window) {
        Episode<double> ep = makeEpisode<double>(info, window == 0 ? 5 : 4, B, 60 + window);
        std::vector<std::vector<double>> outA(info.outputs.size()), outB(info.outputs.size());
        std::vector<std::vector<const double *>> gSteps(size_t(ep.steps));
        for (int t = 0; t < ep.steps; ++t) {
          std::vector<const double *> in;
          for (size_t k = 0; k < info.inputs.size(); ++k)
            in.push_back(ep.inputs[k].data() + size_t(t * B * info.inputs[k].numel()));
          std::vector<std::vector<double>> ya(info.outputs.size()), yb(info.outputs.size());
          std::vector<double *> pa, pb;
          for (size_t k = 0; k < info.outputs.size(); ++k) {
            ya[k].resize(size_t(B * info.outputs[k].numel()));
            yb[k].resize(ya[k].size());
            pa.push_back(ya[k].data());
            pb.push_back(yb[k].data());
            gSteps[size_t(t)].push_back(ep.dY[k].data() + size_t(t) * ya[k].size());
          }
          ref.step(in.data(), pa.data());
          gen.step(in.data(), pb.data());
          for (size_t k = 0; k < info.outputs.size(); ++k)
            CHECK(relErr(yb[k].data(), ya[k].data(), ya[k].size()) <= 1e-12);
        }
        std::vector<const double *const *> gPtr;
        for (auto &g : gSteps)
          gPtr.push_back(g.data());
        std::fill(ref.grads().begin(), ref.grads().end(), 0.0);
        std::fill(gen.grads().begin(), gen.grads().end(), 0.0);
        ref.backward(gPtr.data(), nullptr);
        gen.backward(gPtr.data(), nullptr);
        // Relative to each tensor's largest element, but not below 1e-2: with these saturated
        // units (parameters x 3) tanh'(x) = 1 - y^2 carries an absolute rounding error of 1e-16
        // whatever its size, so gradients through saturated units (a whole window of the bare
        // Hebbian case: 1e-9) carry an absolute error of 1e-15 from any change of summation order
        // (the carried product is summed in the nest over the traces, the executor's by Eigen).
        for (size_t p = 0; p < info.params.size(); ++p) {
          INFO("window " << window << ", grad " << info.params[p].name);
          CHECK(relErr(gen.grads().data() + info.paramOffsets[p],
                       ref.grads().data() + info.paramOffsets[p], size_t(info.params[p].numel()),
                       1e-2) <= 1e-11);
        }
        for (size_t s = 0; s < info.states.size(); ++s)
          CHECK(relErr(gen.state(int(s)), ref.state(int(s)), size_t(B * info.states[s].numel())) <=
                1e-12);
      }
    }
  }
  CHECK(withPrologue >= 3); // the plastic cases carry their recurrent products
}

TEST_CASE("every checkpointing plan gives bit-identical gradients") {
  for (const test::CodegenCase &c : test::codegenCases()) {
    INFO("case " << c.name);
    GeneratedExecutor<float> gen(c.generated());
    useAutoOrder(gen, c.generated());
    const NetworkInfo &info = gen.info();
    gen.params() = makeParams<float>(info, 7, 3.0, true);
    Episode<float> ep = makeEpisode<float>(info, 11, 3, 23);
    gen.setCheckpointEvery(11);
    RunResult<float> base = run(gen, info, ep);
    struct Plan {
      int every;
      long long budget;
    };
    // Forced intervals, then the planner: first episode (only the start kept, two levels), a
    // second episode planned from the first's length, and a budget too small for one level.
    for (Plan p : {Plan{1, 0}, Plan{2, 0}, Plan{3, 0}, Plan{4, 0}, Plan{10, 0}, Plan{64, 0},
                   Plan{0, 0}, Plan{0, 0}, Plan{0, 1}}) {
      INFO("checkpoint every " << p.every << ", budget " << p.budget);
      gen.setCheckpointEvery(p.every);
      gen.setMemoryBudget(p.budget);
      RunResult<float> r = run(gen, info, ep);
      CHECK(r.grads == base.grads);
      CHECK(r.outputs == base.outputs);
    }
    CHECK(gen.lastPlan().replays == 2); // the 1-byte budget forces two levels
  }
}

TEST_CASE("the replay step's replays equal the forward step's, bit for bit") {
  // The backward's replays run the replay step (GeneratedSpec::replayFloat: the forward less its
  // outputs and the carried products' reductions, which the forward records on the tape). The
  // same spec without it replays with the forward step: every plan must give the same bits, in
  // both precisions. Element-major order (the one that runs it).
  int recorded = 0;
  for (const test::CodegenCase &c : test::codegenCases()) {
    const GeneratedSpec &spec = c.generated();
    if (!spec.replayFloat)
      continue;
    REQUIRE(bool(spec.replayDouble));
    recorded += spec.numReplayRecorded > 0;
    GeneratedSpec plain = spec; // (the executors keep a reference: it outlives them)
    plain.replayFloat = nullptr;
    plain.replayDouble = nullptr;
    auto check = [&](auto zero) {
      using T = decltype(zero);
      GeneratedExecutor<T> withReplay(spec), without(plain);
      const NetworkInfo &info = withReplay.info();
      Episode<T> ep = makeEpisode<T>(info, 9, 3, 29);
      for (GeneratedExecutor<T> *e : {&withReplay, &without}) {
        e->setStageOrder(StageOrder::ElementMajor);
        e->params() = makeParams<T>(info, 17, 3.0, true);
      }
      // One replay of the whole episode, segments of 2 and 4 steps, two levels.
      for (auto [every, budget] : {std::pair{9, 0ll}, {2, 0ll}, {4, 0ll}, {0, 1ll}}) {
        INFO("case " << std::string(c.name) << ", " << sizeof(T) << "-byte T, checkpoint every "
                     << every << ", budget " << budget);
        for (GeneratedExecutor<T> *e : {&withReplay, &without}) {
          e->setCheckpointEvery(every);
          e->setMemoryBudget(budget);
        }
        RunResult<T> a = run(withReplay, info, ep, true, spec.inputGradients);
        RunResult<T> b = run(without, info, ep, true, spec.inputGradients);
        std::string worstName;
        double worst = compareRuns(info, a, b, worstName);
        INFO("worst: " << worstName << " " << worst);
        CHECK(a.grads == b.grads);
        CHECK(a.inputGrads == b.inputGrads);
        CHECK(a.outputs == b.outputs);
        if (budget == 1)
          CHECK(withReplay.lastPlan().replays == 2);
      }
    };
    check(double(0));
    check(float(0));
  }
  CHECK(recorded >= 2); // the plastic RL networks' carried products
}

TEST_CASE("forward() over several steps equals step() step by step") {
  // The batched readouts run as one GEMM for all the steps of a forward() call (or per step, then
  // copied, when the caller's outputs are not consecutive); the same values as step() either way.
  // In element-major order forward() runs each element's whole window before the next element's
  // (the steps recorded first, their outer checkpoints swapped in as step() would): the same
  // kernels on the same blocks, so the final states and the gradients are the same bits, whatever
  // the checkpoint interval (2 and 3 put checkpoints inside both calls' windows).
  int withReadouts = 0;
  for (const test::CodegenCase &c : test::codegenCases()) {
    withReadouts += c.generated().numReadouts > 0;
    for (auto [order, every] : {std::pair{StageOrder::Auto, 0},
                                {StageOrder::ElementMajor, 0},
                                {StageOrder::ElementMajor, 2},
                                {StageOrder::ElementMajor, 3}}) {
      INFO("case " << c.name << ", order " << int(order) << ", checkpoint every " << every);
      GeneratedExecutor<double> gen(c.generated());
      if (order == StageOrder::Auto)
        useAutoOrder(gen, c.generated());
      else
        gen.setStageOrder(order);
      gen.setCheckpointEvery(every);
      const NetworkInfo &info = gen.info();
      gen.params() = makeParams<double>(info, 5, 3.0, true);
      Episode<double> ep = makeEpisode<double>(info, 9, 3, 31);
      RunResult<double> stepwise = run(gen, info, ep);
      for (bool contiguous : {true, false}) {
        INFO("consecutive outputs: " << contiguous);
        GeneratedExecutor<double> fresh(c.generated()); // its buffers grow inside forward()
        if (order == StageOrder::Auto)
          useAutoOrder(fresh, c.generated());
        else
          fresh.setStageOrder(order);
        fresh.setCheckpointEvery(every);
        fresh.params() = gen.params();
        RunResult<double> r = runForward(fresh, info, ep, contiguous);
        std::string worstName;
        double worst = compareRuns(info, r, stepwise, worstName);
        INFO("worst: " << worstName << " " << worst);
        CHECK(worst <= 1e-13);
        if (!fresh.stageMajor()) {
          CHECK(r.states == stepwise.states);
          CHECK(r.grads == stepwise.grads);
        }
      }
    }
  }
  CHECK(withReadouts >= 2); // the *_readout cases
}

TEST_CASE("generated float64 gradients match central finite differences") {
  for (const test::CodegenCase &c : test::codegenCases()) {
    INFO("case " << c.name);
    GeneratedExecutor<double> gen(c.generated());
    useAutoOrder(gen, c.generated());
    const NetworkInfo &info = gen.info();
    gen.params() = makeParams<double>(info, 3, 3.0, true);
    Episode<double> ep = makeEpisode<double>(info, 5, 2, 29);
    RunResult<double> r = run(gen, info, ep);
    // Up to 4 coordinates per tensor, spread over it.
    const double eps = 1e-5;
    double worst = 0;
    std::string worstName;
    for (size_t p = 0; p < info.params.size(); ++p) {
      int64_t n = info.params[p].numel();
      if (info.params[p].isMask()) {
        // A shared dropout mask is not learned: its gradient is not computed (stays zero).
        for (int64_t e = 0; e < n; ++e)
          REQUIRE(r.grads[info.paramOffsets[p] + size_t(e)] == 0.0);
        continue;
      }
      double maxDiff = 0, maxRef = 1e-8;
      for (int64_t e : {int64_t(0), n / 3, (2 * n) / 3, n - 1}) {
        size_t i = info.paramOffsets[p] + size_t(e);
        double saved = gen.params()[i];
        gen.params()[i] = saved + eps;
        double up = run(gen, info, ep, false).loss;
        gen.params()[i] = saved - eps;
        double down = run(gen, info, ep, false).loss;
        gen.params()[i] = saved;
        double numeric = (up - down) / (2 * eps);
        maxDiff = std::max(maxDiff, std::abs(numeric - r.grads[i]));
        maxRef = std::max({maxRef, std::abs(numeric), std::abs(r.grads[i])});
      }
      if (maxDiff / maxRef > worst) {
        worst = maxDiff / maxRef;
        worstName = info.params[p].name;
      }
    }
    INFO("worst tensor: " << worstName << " " << worst);
    CHECK(worst <= 1e-6);
  }
}

TEST_CASE("generated code equals the generic executor at the paper's dims (float32)") {
  // Also the examples compiled at the benchmark sizes (DOPA_EXAMPLE_SIZES, e.g. H=400).
  for (const ExampleNetwork &e : exampleNetworks()) {
    std::string path = std::string("examples/") + e.task + "/" + e.variant + ".dopa";
    INFO("example " << path << " " << e.dims);
    auto net = compileSpec(path, e.dims);
    if (!net)
      continue;
    Executor<float> ref(net->forward, net->backward);
    GeneratedExecutor<float> gen(e.spec());
    useAutoOrder(gen, e.spec());
    REQUIRE(sameInfo(gen.info(), ref.info()));
    const NetworkInfo &info = ref.info();
    ref.params() = makeParams<float>(info, 11, 1.0, false);
    gen.params() = ref.params();
    bool lm = std::string(e.task) == "lm";
    Episode<float> ep = makeEpisode<float>(info, lm ? 3 : 6, 2, 31);
    gen.setCheckpointEvery(lm ? 0 : 4);
    RunResult<float> a = run(gen, info, ep), b = run(ref, info, ep);
    std::string worstName;
    double worst = compareRuns(info, a, b, worstName);
    INFO("worst: " << worstName << " " << worst);
    CHECK(worst <= 2e-4);
  }
}

TEST_CASE("the memory plan predicts the executor's allocations") {
  // The plastic cue-reward network, and the same with its two outputs as batched readouts (their
  // inputs kept for every step and their gradients, in blocks of whole 64-byte lines here).
  std::vector<const test::CodegenCase *> cases;
  for (const test::CodegenCase &c : test::codegenCases())
    if (std::string(c.name) == "cue_reward_modul_tiny" ||
        std::string(c.name) == "cue_reward_modul_readout")
      cases.push_back(&c);
  REQUIRE(cases.size() == 2);
  for (auto [modul, every] :
       {std::pair{cases[0], 0}, std::pair{cases[0], 3}, std::pair{cases[0], 20},
        std::pair{cases[1], 0}, std::pair{cases[1], 3}}) {
    for (StageOrder order : {StageOrder::ElementMajor, StageOrder::StageMajor}) {
      INFO("case " << modul->name << ", checkpoint every " << every << ", stage-major "
                   << (order == StageOrder::StageMajor));
      GeneratedExecutor<float> gen(modul->generated());
      const NetworkInfo &info = gen.info();
      gen.params() = makeParams<float>(info, 7, 1.0, false);
      // First an episode in the other order at a larger batch: nothing of it may stay held.
      gen.setStageOrder(order == StageOrder::StageMajor ? StageOrder::ElementMajor
                                                        : StageOrder::StageMajor);
      run(gen, info, makeEpisode<float>(info, 20, 5, 9));
      gen.setStageOrder(order);
      Episode<float> ep = makeEpisode<float>(info, 20, 3, 5);
      gen.setCheckpointEvery(every);
      gen.setExpectedSteps(20);
      run(gen, info, ep); // plans the next episode from this one's length
      run(gen, info, ep);
      PlanInputs in;
      const GeneratedSpec &s = gen.spec();
      in.stateBytes = s.stateNumel * 4;
      in.savedBytes = s.savedNumel * 4;
      in.scratchBytes = s.scratchNumel * 4;
      int64_t inputs = 0, outputs = 0;
      for (const TensorInfo &t : info.inputs)
        inputs += t.numel();
      for (const TensorInfo &t : info.outputs)
        outputs += t.numel();
      for (int r = 0; r < s.numReadouts; ++r) { // the kernels write a readout's input instead
        outputs += s.readouts[r].cols - s.readouts[r].rows;
        in.readoutBytes += s.readouts[r].cols * 4;
      }
      in.inputBytes = inputs * 4;
      in.outputBytes = outputs * 4;
      in.paramBytes = int64_t(info.numParams) * 4;
      in.recordBytes = s.recordNumel * 4;
      in.stageMajor = gen.stageMajor(); // then the replay buffers are per element
      in.forwardInPlace = !gen.stageMajor() && s.numForwardCopies >= 0; // one state block
      in.productXBytes = layoutOf(s, info).productXNumel * 4;
      in.productYBytes = layoutOf(s, info).productYNumel * 4;
      in.prologueBytes = layoutOf(s, info).prologueNumel * 4; // carried products
      // The replay step's recorded slots, on the tape (element-major order).
      in.replayRecordedBytes = gen.stageMajor() ? 0 : layoutOf(s, info).replayRecordedNumel * 4;
      in.batch = 3;
      in.steps = 20;
#ifdef _OPENMP
      in.threads = omp_get_max_threads();
#endif
      in.checkpointEvery = every;
      CheckpointPlan p = planCheckpoints(in);
      CHECK(gen.lastPlan().outer == p.outer);
      CHECK(gen.lastPlan().inner == p.inner);
      // What the executor held during the backward: the plan's prediction.
      INFO("held " << gen.lastPeakBytes() << " predicted " << p.totalBytes << " (checkpoints "
                   << p.checkpointBytes << ", per thread " << p.perThreadBytes << ")");
      CHECK(gen.lastPeakBytes() == p.totalBytes);
      CHECK(gen.stageMajor() == (order == StageOrder::StageMajor)); // the modul net has products
    }
  }
}

TEST_CASE("stage-major order equals element-major order") {
  // The batched products (a shared matrix times a vector per element) run as GEMMs over the batch
  // and the backward runs every element's step t before step t-1, each element in its own
  // buffers: the same outputs, states and gradients as the step functions element by element, with
  // single and two-level replays.
  int withProducts = 0;
  for (const test::CodegenCase &c : test::codegenCases()) {
    const GeneratedSpec &spec = c.generated();
    if (spec.numForwardProducts + spec.numBackwardProducts == 0)
      continue;
    ++withProducts;
    struct Plan {
      int every;
      long long budget;
    };
    std::optional<RunResult<double>> keptRun; // the plan without replay (the first)
    for (Plan p : {Plan{0, 0}, Plan{2, 0}, Plan{0, 1}}) {
      INFO("case " << c.name << ", checkpoint every " << p.every << ", budget " << p.budget);
      GeneratedExecutor<double> element(spec), stage(spec);
      element.setStageOrder(StageOrder::ElementMajor);
      stage.setStageOrder(StageOrder::StageMajor);
      const NetworkInfo &info = element.info();
      element.params() = makeParams<double>(info, 11, 3.0, true);
      stage.params() = element.params();
      for (GeneratedExecutor<double> *e : {&element, &stage}) {
        e->setCheckpointEvery(p.every);
        e->setMemoryBudget(p.budget);
        e->setExpectedSteps(7); // planned from the first episode on
      }
      Episode<double> ep = makeEpisode<double>(info, 7, 3, 43);
      RunResult<double> a = run(element, info, ep, true, spec.inputGradients);
      RunResult<double> b = run(stage, info, ep, true, spec.inputGradients);
      REQUIRE_FALSE(element.stageMajor());
      REQUIRE(stage.stageMajor());
      std::string worstName;
      double worst = compareRuns(info, b, a, worstName);
      INFO("worst: " << worstName << " " << worst);
      CHECK(worst <= 1e-12);
      for (size_t k = 0; k < a.inputGrads.size(); ++k)
        for (size_t i = 0; i < a.inputGrads[k].size(); ++i)
          CHECK(b.inputGrads[k][i] == doctest::Approx(a.inputGrads[k][i]).epsilon(1e-12));
      if (p.budget == 1)
        CHECK(stage.lastPlan().replays == 2); // two levels: inner checkpoints per element
      // The default budget holds every step of these tiny networks: the forward keeps them and
      // nothing is replayed; the replaying plans give the same bits.
      if (p.every == 0 && p.budget == 0) {
        CHECK(stage.lastPlan().replays == 0);
        keptRun = b;
        // Episodes shorter than planned (every step kept) and longer (the first 7 kept, then
        // the replaying fallback) equal element-major order too.
        for (int steps : {5, 9}) {
          INFO("episode of " << steps << " steps, 7 planned");
          Episode<double> other = makeEpisode<double>(info, steps, 3, 44);
          RunResult<double> a2 = run(element, info, other, true, spec.inputGradients);
          RunResult<double> b2 = run(stage, info, other, true, spec.inputGradients);
          std::string name;
          CHECK(compareRuns(info, b2, a2, name) <= 1e-12);
          for (size_t k = 0; k < a2.inputGrads.size(); ++k)
            for (size_t i = 0; i < a2.inputGrads[k].size(); ++i)
              CHECK(b2.inputGrads[k][i] == doctest::Approx(a2.inputGrads[k][i]).epsilon(1e-12));
        }
      } else {
        REQUIRE(keptRun);
        std::string name;
        CHECK(compareRuns(info, b, *keptRun, name) == 0.0);
      }
    }
  }
  CHECK(withProducts >= 3); // the ops case, the tiny plastic RL networks, the LM cases
}

TEST_CASE("stage-major groups: uneven groups, and a team smaller than the groups") {
  // Stage-major order gives each thread a group of consecutive elements. With 3 threads and a
  // batch of 5 the groups are uneven (1, 2, 2 elements); called from inside an active parallel
  // region (nested regions off) OpenMP gives a team of one thread, smaller than the 3 groups the
  // executor planned, and that thread must run them all. Both equal element-major order.
#ifndef _OPENMP
  MESSAGE("SKIP: built without OpenMP, stage-major runs one group");
#else
  const test::CodegenCase *c = nullptr;
  for (const test::CodegenCase &k : test::codegenCases())
    if (std::string(k.name) == "cue_reward_modul_tiny")
      c = &k;
  REQUIRE(c != nullptr);
  const GeneratedSpec &spec = c->generated();
  REQUIRE(spec.numForwardProducts + spec.numBackwardProducts > 0);
  int saved = omp_get_max_threads();
  int savedLevels = omp_get_max_active_levels();
  omp_set_num_threads(3);
  omp_set_max_active_levels(1);
  for (bool nested : {false, true}) {
    INFO("called from inside a parallel region: " << nested);
    GeneratedExecutor<double> element(spec), stage(spec);
    element.setStageOrder(StageOrder::ElementMajor);
    stage.setStageOrder(StageOrder::StageMajor);
    const NetworkInfo &info = element.info();
    element.params() = makeParams<double>(info, 13, 3.0, true);
    stage.params() = element.params();
    stage.setCheckpointEvery(2); // replays from checkpoints, grouped as the forward
    Episode<double> ep = makeEpisode<double>(info, 6, 5, 47);
    RunResult<double> a = run(element, info, ep);
    RunResult<double> b;
    if (nested) {
      int team = 0;
#pragma omp parallel num_threads(2)
#pragma omp single
      {
        team = omp_get_num_threads();
        b = run(stage, info, ep);
      }
      CHECK(team == 2); // the outer region is active: the executor's regions get one thread
    } else {
      b = run(stage, info, ep);
    }
    REQUIRE(stage.stageMajor());
    std::string worstName;
    double worst = compareRuns(info, b, a, worstName);
    INFO("worst: " << worstName << " " << worst);
    CHECK(worst <= 1e-12);
  }
  omp_set_max_active_levels(savedLevels);
  omp_set_num_threads(saved);
#endif
}

TEST_CASE("a network compiled on demand equals the one dopa_add_network compiled (float64)") {
  // The network-using-every-op case and one plastic example: the library jit::compileNetwork builds
  // runs the same generated code as the build's, so outputs and gradients agree to rounding.
  std::string cache = test::scratchDir("codegen-on-demand");
  for (const test::CodegenCase &c : test::codegenCases()) {
    std::string name = c.name;
    if (name != "ops" && name != "cue_reward_modul_tiny")
      continue;
    INFO("case " << c.name);
    DimParse dims = parseCanonicalDims(c.dims);
    REQUIRE(dims.ok());
    jit::CompileRequest request{
        DOPA_SOURCE_DIR "/" + std::string(c.spec), {DOPA_SOURCE_DIR "/examples/lm"}, dims.dims, ""};
    jit::CacheOptions options;
    options.cacheDir = cache;
    jit::LoadedNetwork loaded = jit::compileNetwork(request, options);
    REQUIRE(loaded.spec != nullptr);
    CHECK(!loaded.fromCache);
    GeneratedExecutor<double> onDemand(*loaded.spec), built(c.generated());
    useAutoOrder(onDemand, *loaded.spec);
    useAutoOrder(built, c.generated());
    std::string worstName;
    double worst = differential(onDemand, built, worstName);
    INFO("worst: " << worstName << " " << worst);
    CHECK(worst <= 1e-12);
    // The same request again in this process: the loaded library, at once.
    jit::LoadedNetwork again = jit::compileNetwork(request, options);
    CHECK(again.fromCache);
    CHECK(again.spec == loaded.spec);
    CHECK(again.key == loaded.key);
  }
}

TEST_CASE("input gradients: generated (compiled on demand) = generic = finite differences") {
  // --input-gradients networks: dLoss/d every real input at every step (integer inputs: zero),
  // from the generated backward against the generic executor's, and against central differences
  // of the loss in a few input coordinates.
  std::string cache = test::scratchDir("codegen-input-gradients");
  for (const test::CodegenCase &c : test::codegenCases()) {
    std::string name = c.name;
    if (name != "ops" && name != "cue_reward_modul_tiny" && name != "lm_modul_lstm_tiny" &&
        name != "cue_reward_modul_readout")
      continue;
    INFO("case " << c.name);
    DimParse dims = parseCanonicalDims(c.dims);
    REQUIRE(dims.ok());
    std::string spec = DOPA_SOURCE_DIR "/" + std::string(c.spec);
    jit::CompileRequest request{spec, {DOPA_SOURCE_DIR "/examples/lm"}, dims.dims, ""};
    request.inputGradients = true;
    if (name == "cue_reward_modul_readout")
      request.batchedReadoutMin = 0; // input gradients through batched readouts
    jit::CacheOptions options;
    options.cacheDir = cache;
    jit::LoadedNetwork loaded = jit::compileNetwork(request, options);
    REQUIRE(loaded.spec->inputGradients);
    Frontend frontend({DOPA_SOURCE_DIR "/examples/lm"});
    PipelineOptions graphsOnly;
    graphsOnly.fuse = false;
    graphsOnly.inputGradients = true;
    auto graphs = dopa::compileSpec(frontend, spec, dims.dims, "", graphsOnly);
    REQUIRE(graphs);
    Executor<double> ref(graphs->graphs.forward, graphs->graphs.backward);
    GeneratedExecutor<double> gen(*loaded.spec);
    useAutoOrder(gen, *loaded.spec);
    const NetworkInfo &info = ref.info();
    ref.params() = makeParams<double>(info, 5, 3.0, true);
    gen.params() = ref.params();
    Episode<double> ep = makeEpisode<double>(info, 6, 3, 31);
    RunResult<double> a = run(gen, info, ep, true, true), b = run(ref, info, ep, true, true);
    for (size_t k = 0; k < info.inputs.size(); ++k) {
      INFO("input " << info.inputs[k].name);
      CHECK(relErr(a.inputGrads[k].data(), b.inputGrads[k].data(), a.inputGrads[k].size()) <=
            1e-11);
      if (info.inputs[k].isInt || info.inputs[k].isMask()) {
        // No gradient to token ids, nor to dropout masks (random constants of the sequence).
        for (double g : a.inputGrads[k])
          REQUIRE(g == 0.0);
        continue;
      }
      // Central differences at the first, a middle and the last coordinate of the episode.
      size_t n = ep.inputs[k].size();
      for (size_t i : {size_t(0), n / 2, n - 1}) {
        const double eps = 1e-6;
        Episode<double> up = ep, down = ep;
        up.inputs[k][i] += eps;
        down.inputs[k][i] -= eps;
        double numeric =
            (run(gen, info, up, false).loss - run(gen, info, down, false).loss) / (2 * eps);
        CHECK(std::abs(numeric - a.inputGrads[k][i]) <= 1e-6 * std::max(1.0, std::abs(numeric)));
      }
    }
    // Parameter gradients are unchanged by asking for input gradients.
    RunResult<double> plain = run(gen, info, ep);
    CHECK(relErr(plain.grads.data(), a.grads.data(), a.grads.size()) <= 1e-13);
  }
}

TEST_CASE(
    "smallGemm products: stage-major at sizes it tiles, new parameters per episode (float64)") {
  // The codegen cases are tiny (H = 4): only the LSTM's gates reach smallGemm. Here the
  // non-plastic RNN at H = 37 (37 columns: whole vectors and every narrower tail) and an LSTM
  // language model with batched readouts over a vocabulary of 300 (a 256-row chunk and a
  // 44-row one, in the forward's panels and in dX's sum over chunks), with a batch of 7 on 2
  // threads (groups of 4 and 3 rows), against element-major order, which multiplies inside its
  // nests. Between episodes the parameters change: W^T is laid out again at each recording.
  std::string cache = test::scratchDir("codegen-small-gemm");
  struct Net {
    const char *spec, *dims;
  };
  for (Net n : {Net{"examples/cue_reward/rnn.dopa", "I=5,H=37,A=2"},
                Net{"examples/lm/basic_lstm.dopa", "V=300,E=19,H=21"}}) {
    INFO("spec " << n.spec << " " << n.dims);
    DimParse dims = parseCanonicalDims(n.dims);
    REQUIRE(dims.ok());
    jit::CompileRequest request{
        DOPA_SOURCE_DIR "/" + std::string(n.spec), {DOPA_SOURCE_DIR "/examples/lm"}, dims.dims, ""};
    request.batchedReadoutMin = 0; // the LM's decoder as a batched readout
    jit::CacheOptions options;
    options.cacheDir = cache;
    jit::LoadedNetwork loaded = jit::compileNetwork(request, options);
    REQUIRE(loaded.spec != nullptr);
    REQUIRE(loaded.spec->numForwardProducts > 0);
#ifdef _OPENMP
    int saved = omp_get_max_threads();
    omp_set_num_threads(2);
#endif
    GeneratedExecutor<double> element(*loaded.spec), stage(*loaded.spec);
    element.setStageOrder(StageOrder::ElementMajor);
    stage.setStageOrder(StageOrder::StageMajor);
    const NetworkInfo &info = element.info();
    element.params() = makeParams<double>(info, 17, 3.0, true);
    for (int episode = 0; episode < 3; ++episode) {
      INFO("episode " << episode);
      if (episode > 0) // new parameters, as an optimizer step would leave them
        for (double &p : element.params())
          p = p * 0.9 + 0.01;
      stage.params() = element.params();
      Episode<double> ep = makeEpisode<double>(info, 6, 7, 50 + uint64_t(episode));
      RunResult<double> a = run(element, info, ep);
      RunResult<double> b = run(stage, info, ep);
      REQUIRE(stage.stageMajor());
      std::string worstName;
      double worst = compareRuns(info, b, a, worstName);
      INFO("worst: " << worstName << " " << worst);
      CHECK(worst <= 1e-12);
    }
#ifdef _OPENMP
    omp_set_num_threads(saved);
#endif
  }
}
