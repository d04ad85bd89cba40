//===- GradcheckTest.cpp - Backward passes against finite differences ----===//
//
// For every op type and every example network (at tiny dims), the generic executor's BPTT
// gradients (float64) are compared with central finite differences of the same loss,
// L = sum_t sum_k <dY_k[t], Y_k[t]> with random dY, over a whole episode of T steps.
// The IR verifier runs after every pass. Tolerance: max relative error per tensor <= 1e-6.
// The simplified backward graphs (simplifyBackward, on by default) are also compared with the
// unsimplified ones, which must give the same gradients up to rounding.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include "dopa/compiler/Pipeline.h"
#include "dopa/generic/Executor.h"
#include "dopa/runtime/Random.h"

#include <doctest/doctest.h>

#include <cmath>

using namespace dopa;

namespace {

struct GradcheckReport {
  double worst = 0;
  std::string worstTensor;
  int64_t checked = 0;
};

/// Compile the only network of `source` (with dim overrides); FAIL the test on errors.
std::optional<CompiledNetwork> compileSource(const std::string &source, const std::string &name,
                                             const sema::DimOverrides &overrides = {},
                                             bool simplify = true) {
  Frontend frontend({DOPA_SOURCE_DIR "/examples/lm"});
  std::vector<std::string> errors;
  frontend.getDiagnostics().setConsumer([&](Severity s, const llvm::SMDiagnostic &d) {
    if (s == Severity::Error)
      errors.push_back(std::to_string(d.getLineNo()) + ":" + std::to_string(d.getColumnNo() + 1) +
                       ": " + d.getMessage().str());
  });
  frontend.parseBuffer(source, name);
  auto program = frontend.check(overrides.empty() ? nullptr : &overrides);
  for (const auto &e : errors)
    INFO(e);
  if (!program || program->networks.size() != 1) {
    FAIL_CHECK("spec does not compile: " << (errors.empty() ? std::string("?") : errors.front()));
    return std::nullopt;
  }
  PipelineOptions graphsOnly; // the generic executor runs the graphs
  graphsOnly.fuse = false;
  graphsOnly.simplify = simplify;
  auto compiled = runPipeline(*program->networks[0], frontend.getDiagnostics(), graphsOnly);
  if (!compiled) {
    FAIL_CHECK(
        "network does not compile: " << (errors.empty() ? std::string("?") : errors.front()));
    return std::nullopt;
  }
  return std::move(compiled->graphs);
}

/// One episode of the generic executor (float64) on random inputs: the loss
/// L = sum_t sum_k <dY_k[t], Y_k[t]> and its BPTT gradient. Parameters start from their
/// initializers times `paramScale`, the plasticity rates and alpha at O(1) values.
class Episode {
public:
  Episode(const CompiledNetwork &net, int steps, int batch, uint64_t seed, double paramScale)
      : exec(net.forward, net.backward), info(exec.info()), steps(steps), batch(batch) {
    Rng rng(seed);
    std::vector<float> init(info.numParams);
    initParams(info, init.data(), seed);
    for (size_t i = 0; i < init.size(); ++i)
      exec.params()[i] = double(init[i]) * paramScale;
    // The paper's alpha and trace rates start near 0 (1e-4 and 1e-2 in the language model), which
    // makes the gradients of the plasticity parameters vanish below finite-difference resolution;
    // give them O(1) values.
    for (size_t p = 0; p < info.params.size(); ++p) {
      std::string leaf = info.params[p].name.substr(info.params[p].name.rfind('.') + 1);
      for (int64_t e = 0; e < info.params[p].numel(); ++e) {
        double &v = exec.params()[info.paramOffsets[p] + size_t(e)];
        if (info.params[p].isMask()) // a shared dropout mask: 0 or 1 / (1 - p)
          v = rng.uniform() < info.params[p].dropout ? 0.0 : 1.0 / (1.0 - info.params[p].dropout);
        else if (leaf == "alpha")
          v = rng.uniform(-1, 1);
        else if (leaf == "eta" || leaf == "etaet")
          v = rng.uniform(0.3, 0.6);
      }
    }
    // Inputs (int inputs index a table of at least 7 rows in these tests) and output gradients.
    for (const TensorInfo &in : info.inputs) {
      std::vector<double> v(size_t(steps) * size_t(batch) * size_t(in.numel()));
      for (double &x : v)
        x = in.isInt      ? double(rng.below(7))
            : in.isMask() ? (rng.uniform() < in.dropout ? 0.0 : 1.0 / (1.0 - in.dropout))
                          : rng.uniform(-1, 1);
      inputs.push_back(std::move(v));
    }
    for (const TensorInfo &out : info.outputs) {
      std::vector<double> v(size_t(steps) * size_t(batch) * size_t(out.numel()));
      for (double &x : v)
        x = rng.normal();
      dY.push_back(std::move(v));
    }
  }

  /// Run the episode forward; returns L.
  double loss() {
    exec.beginEpisode(batch);
    double loss = 0;
    std::vector<const double *> in(info.inputs.size());
    std::vector<std::vector<double>> outBuf;
    for (const TensorInfo &o : info.outputs)
      outBuf.emplace_back(size_t(batch) * size_t(o.numel()));
    std::vector<double *> out;
    for (auto &b : outBuf)
      out.push_back(b.data());
    for (int t = 0; t < steps; ++t) {
      for (size_t k = 0; k < in.size(); ++k)
        in[k] = inputs[k].data() + size_t(t) * size_t(batch) * size_t(info.inputs[k].numel());
      exec.step(in.data(), out.data());
      for (size_t k = 0; k < out.size(); ++k) {
        const double *g = dY[k].data() + size_t(t) * outBuf[k].size();
        for (size_t e = 0; e < outBuf[k].size(); ++e)
          loss += g[e] * outBuf[k][e];
      }
    }
    return loss;
  }

  /// dL/d parameters by BPTT, laid out as the executor's parameters.
  std::vector<double> gradient() {
    loss();
    std::fill(exec.grads().begin(), exec.grads().end(), 0.0);
    std::vector<std::vector<const double *>> gSteps(size_t(steps),
                                                    std::vector<const double *>(dY.size()));
    std::vector<const double *const *> gPtr;
    for (int t = 0; t < steps; ++t) {
      for (size_t k = 0; k < dY.size(); ++k)
        gSteps[size_t(t)][k] =
            dY[k].data() + size_t(t) * size_t(batch) * size_t(info.outputs[k].numel());
      gPtr.push_back(gSteps[size_t(t)].data());
    }
    exec.backward(gPtr.data(), nullptr);
    std::vector<double> analytic = exec.grads();
    exec.truncate();
    return analytic;
  }

  Executor<double> exec;
  const NetworkInfo &info;

private:
  int steps, batch;
  std::vector<std::vector<double>> inputs, dY;
};

GradcheckReport gradcheck(const CompiledNetwork &net, int steps, int batch, uint64_t seed,
                          double paramScale = 1.0, double numericScale = 1.0) {
  Episode episode(net, steps, batch, seed, paramScale);
  Executor<double> &exec = episode.exec;
  const NetworkInfo &info = episode.info;
  std::vector<double> analytic = episode.gradient();
  // Central differences, tensor by tensor.
  GradcheckReport report;
  const double eps = 1e-5;
  for (size_t p = 0; p < info.params.size(); ++p) {
    double maxDiff = 0, maxRef = 0;
    if (info.params[p].isMask()) { // not learned: no gradient is computed for it
      for (int64_t e = 0; e < info.params[p].numel(); ++e)
        if (analytic[info.paramOffsets[p] + size_t(e)] != 0.0) {
          report.worst = std::max(report.worst, 1.0); // fails the check
          report.worstTensor = info.params[p].name;
        }
      continue;
    }
    for (int64_t e = 0; e < info.params[p].numel(); ++e) {
      size_t i = info.paramOffsets[p] + size_t(e);
      double saved = exec.params()[i];
      exec.params()[i] = saved + eps;
      double up = episode.loss();
      exec.params()[i] = saved - eps;
      double down = episode.loss();
      exec.params()[i] = saved;
      double numeric = numericScale * (up - down) / (2 * eps);
      maxDiff = std::max(maxDiff, std::abs(numeric - analytic[i]));
      maxRef = std::max({maxRef, std::abs(numeric), std::abs(analytic[i])});
      ++report.checked;
    }
    // Relative to the tensor's largest gradient, but not below the central differences' own
    // rounding floor (about 1e-16 x loss / eps, ~1e-11 here, seen as the absolute error of every
    // tensor): a tensor whose gradient is tiny (h2mod behind dropout masks, ~1e-7) would else read
    // noise as a relative error. 1e-6 x 1e-4 still allows no more than 1e-10.
    double rel = maxDiff / std::max(maxRef, 1e-4);
    if (rel > report.worst) {
      report.worst = rel;
      report.worstTensor = info.params[p].name;
    }
  }
  return report;
}

const char *opTemplate = R"(
network OpTest {
  dims N = 3, M = 4
  input x : [N]
  state s : [N] = 0.5
  param a : [N] ~ uniform(-1, 1)
  param b : [N] ~ uniform(0.5, 1.5)
  param m : [M, N] ~ uniform(-1, 1)
  param q : [N, N] ~ uniform(-1, 1)
  param c : [] = 0.7
  step {
    v = a * x + s + c * sum(m, 0) * 0.1
    s' = tanh(q @ s + v * b)
    output o = EXPR
  }
}
)";

} // namespace

TEST_CASE("every op's backward matches finite differences (float64, through time)") {
  const char *exprs[] = {
      "tanh(v) + sigmoid(v)",
      "relu(v)",
      "exp(v) - log(b) + sqrt(b)",
      "abs(v) * 2",
      "v / b - -v * c",
      "min(v, a) + max(v, b)",
      "clip(v, -0.3, 0.4)",
      "clip(v, c - 1, c)",
      "m @ v",
      "v @ q",
      "q @ transpose(q) * sum(v)",
      "v @ v",
      "m @ q + sum(v)",
      "outer(v, b)",
      "transpose(outer(v, a))",
      "sum(outer(v, b))",
      "sum(m, 0) + mean(m * m, 1)[0:3] + v",
      "concat(v, b, v)",
      "outer(v, b)[1:3, 0]",
      "softmax(v)",
      "log_softmax(m @ v)",
      "col(v) * q + row(b)",
      "mean(v) - sum(v * v)",
  };
  for (const char *expr : exprs) {
    INFO("expr: " << std::string(expr));
    std::string spec = opTemplate;
    spec.replace(spec.find("EXPR"), 4, expr);
    auto net = compileSource(spec, "optest.dopa");
    if (!net)
      continue;
    GradcheckReport r = gradcheck(*net, 4, 2, 11);
    INFO("worst tensor: " << r.worstTensor);
    CHECK(r.checked > 0);
    CHECK(r.worst <= 1e-6);
  }
}

TEST_CASE("a layer called again with the same arguments is the same call: two of its outputs") {
  // l(x).a + l( x ).b reads both outputs of one call (one state update per step): the same
  // values as the flat network, and gradients that match finite differences.
  const char *twoOutputs = R"(
cell Two(N) {
  input x : [N]
  state s : [N] = 0.5
  param q : [N, N] ~ uniform(-1, 1)
  step {
    sn = tanh(q @ s + x)
    s' = sn
    output a = sn
    output b = sn * x
  }
}
network TwoOut {
  dims N = 3
  input x : [N]
  layer l : Two(N)
  step { output o = l(x).a + l( x ).b * 2 }
}
)";
  const char *flat = R"(
network Flat {
  dims N = 3
  input x : [N]
  state s : [N] = 0.5
  param q : [N, N] ~ uniform(-1, 1)
  step {
    sn = tanh(q @ s + x)
    s' = sn
    output o = sn + sn * x * 2
  }
}
)";
  auto layered = compileSource(twoOutputs, "two.dopa");
  auto plain = compileSource(flat, "flat.dopa");
  REQUIRE(layered);
  REQUIRE(plain);
  // Inlined once: one tanh (Lower makes no common subexpressions, so a second inlining would
  // show as a second tanh and a second state update).
  int tanhs = 0;
  for (const ir::Node &n : layered->forward.nodes)
    tanhs += n.op == ir::Op::Tanh;
  CHECK(tanhs == 1);
  Episode a(*layered, 4, 2, 5, 1.0), b(*plain, 4, 2, 5, 1.0);
  CHECK(a.loss() == doctest::Approx(b.loss()).epsilon(1e-12));
  GradcheckReport r = gradcheck(*layered, 4, 2, 11);
  INFO("worst tensor: " << r.worstTensor);
  CHECK(r.checked > 0);
  CHECK(r.worst <= 1e-6);
}

TEST_CASE("detach passes values forward and no gradient back") {
  // o = v + detach(v): finite differences see both terms, the gradient only the first, so the
  // analytic gradient is exactly half the numeric one.
  std::string spec = opTemplate;
  spec.replace(spec.find("EXPR"), 4, "v + detach(v)");
  // Keep the state out of it: with s' depending on v the detached copy is still differentiated
  // through the next step, so compare on one step.
  auto net = compileSource(spec, "detach.dopa");
  REQUIRE(net);
  GradcheckReport r = gradcheck(*net, 1, 2, 11, 1.0, 0.5);
  INFO("worst tensor: " << r.worstTensor);
  CHECK(r.worst <= 1e-6);
}

TEST_CASE("every example network's BPTT gradient matches finite differences at tiny dims") {
  struct Case {
    std::string path;
    sema::DimOverrides dims;
    double scale;
  };
  std::vector<Case> cases;
  for (const char *task : {"cue_reward", "maze"})
    for (const char *v : {"rnn", "plastic", "modplast", "modul"}) {
      sema::DimOverrides d;
      d["H"] = 4;
      d["I"] = 5;
      // Scaled-up parameters make the plastic traces matter (still away from the clip bounds).
      cases.push_back({std::string("examples/") + task + "/" + v + ".dopa", d, 5.0});
    }
  for (const char *v : {"lstm", "plastic_lstm", "modplast_lstm", "modul_lstm"}) {
    sema::DimOverrides d;
    d["V"] = 7;
    d["E"] = 3;
    d["H"] = 4;
    cases.push_back({std::string("examples/lm/") + v + ".dopa", d, 2.0});
  }
  for (const Case &c : cases) {
    INFO("spec: " << c.path);
    auto net = compileSource(test::readSourceFile(c.path), DOPA_SOURCE_DIR "/" + c.path, c.dims);
    if (!net)
      continue;
    GradcheckReport r = gradcheck(*net, 5, 2, 3, c.scale);
    INFO("worst tensor: " << r.worstTensor << ", " << r.checked << " parameters checked");
    CHECK(r.worst <= 1e-6);
  }
}

TEST_CASE("truncated BPTT: gradients of the final state flow into the parameters") {
  auto net = compileSource(test::readSourceFile("examples/cue_reward/plastic.dopa"), "plastic.dopa",
                           sema::DimOverrides{{"H", 3}, {"I", 2}});
  REQUIRE(net);
  Executor<double> exec(net->forward, net->backward);
  std::vector<float> init(exec.info().numParams);
  initParams(exec.info(), init.data(), 5);
  std::copy(init.begin(), init.end(), exec.params().begin());
  exec.beginEpisode(2);
  std::vector<double> x(4, 0.5), logits(4), value(2);
  const double *in[] = {x.data()};
  double *out[] = {logits.data(), value.data()};
  exec.step(in, out);
  exec.step(in, out);
  CHECK(exec.recordedSteps() == 2);
  // No output gradients; only dLoss/d h at the end: the gradient must still reach i2h and w.
  std::vector<double> dh(6, 1.0), dhebb(18, 0.0);
  const double *finals[] = {dh.data(), dhebb.data()};
  exec.backward(nullptr, finals);
  CHECK(exec.recordedSteps() == 0);
  const NetworkInfo &info = exec.info();
  int w = info.findParam("w");
  int i2h = info.findParam("i2h.weight");
  int h2o = info.findParam("h2o.weight");
  auto norm = [&](int p) {
    double s = 0;
    for (int64_t e = 0; e < info.params[size_t(p)].numel(); ++e)
      s += std::abs(exec.grads()[info.paramOffsets[size_t(p)] + size_t(e)]);
    return s;
  };
  CHECK(norm(i2h) > 0);
  CHECK(norm(w) > 0);
  CHECK(norm(h2o) == 0); // the readout does not affect the state
  // truncate() keeps the state and drops the record.
  exec.step(in, out);
  exec.truncate();
  CHECK(exec.recordedSteps() == 0);
}

TEST_CASE("simplifyBackward: the same gradients as autodiff's graph, with fewer operations") {
  for (const char *path : {"examples/cue_reward/modul.dopa", "examples/cue_reward/plastic.dopa",
                           "examples/maze/modplast.dopa", "examples/lm/modul_lstm.dopa"}) {
    INFO("spec: " << std::string(path));
    sema::DimOverrides dims{{"H", 5}};
    if (std::string(path).find("/lm/") != std::string::npos) {
      dims["V"] = 7;
      dims["E"] = 3;
    } else {
      dims["I"] = 5;
    }
    std::string source = test::readSourceFile(path);
    auto simplified = compileSource(source, DOPA_SOURCE_DIR "/" + std::string(path), dims);
    auto plain = compileSource(source, DOPA_SOURCE_DIR "/" + std::string(path), dims, false);
    REQUIRE(simplified);
    REQUIRE(plain);
    // Every network here has a learned trace rate, whose gradient the pass rewrites.
    CHECK(ir::countFlops(simplified->backward).perElement <
          ir::countFlops(plain->backward).perElement);
    std::vector<double> a = Episode(*simplified, 6, 2, 7, 5.0).gradient();
    std::vector<double> b = Episode(*plain, 6, 2, 7, 5.0).gradient();
    REQUIRE(a.size() == b.size());
    double worst = 0, largest = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      worst = std::max(worst, std::abs(a[i] - b[i]));
      largest = std::max(largest, std::abs(b[i]));
    }
    CHECK(largest > 0);
    CHECK(worst <= 1e-12 * largest);
  }
}
