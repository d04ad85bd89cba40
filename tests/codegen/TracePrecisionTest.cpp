//===- TracePrecisionTest.cpp - Traces stored in bfloat16, against float32 ---===//
//
// dopac --trace-precision=bf16 (dopa_add_network TRACE_PRECISION bf16): the double build equals
// the float32 network's bit for bit, the float build keeps its traces in bfloat16 and computes
// what the generic executor computes on the same rounding graph, and differs from float32 by
// about bfloat16's precision. (Every double test of CodegenTest.cpp also runs on the bf16 cases.)
//
//===----------------------------------------------------------------------===//
#include "CodegenCases.h"
#include "CodegenRun.h"

#include "dopa/compiler/Pipeline.h"
#include "dopa/generic/Executor.h"
#include "dopa/runtime/DimOverrides.h"
#include "dopa/runtime/Generated.h"

#include <doctest/doctest.h>

#include <bit>

using namespace dopa;
using namespace dopa::test;

TEST_CASE("bf16 traces: the double build exact, the float build rounds its traces only") {
  // dopac --trace-precision=bf16 stores the matrix-shaped states in bfloat16 in the float build
  // and changes nothing in the double build (round_bf16 is the identity there, so the gradient
  // checks above run on it unchanged). Each bf16 case against the float32 case of the same spec,
  // and the float build against the generic executor on the same (rounding) graph.
  auto find = [](const std::string &name) -> const test::CodegenCase * {
    for (const test::CodegenCase &c : test::codegenCases())
      if (c.name == name)
        return &c;
    return nullptr;
  };
  for (std::string name : {"cue_reward_modul", "lm_modplast_lstm"}) {
    INFO("case " << name);
    const test::CodegenCase *plain = find(name + "_tiny"), *bf16 = find(name + "_bf16");
    REQUIRE(plain);
    REQUIRE(bf16);
    const GeneratedSpec &sa = plain->generated(), &sb = bf16->generated();
    CHECK(sa.bf16States == nullptr);
    REQUIRE(sb.bf16States != nullptr);
    const NetworkInfo info = sb.info();
    int traces = 0;
    for (size_t s = 0; s < info.states.size(); ++s) {
      CHECK(sb.bf16States[s] == (info.states[s].shape.size() == 2));
      traces += sb.bf16States[s];
    }
    CHECK(traces >= 1);

    // Double: the float32 network's results, to the last bits.
    {
      GeneratedExecutor<double> ga(sa), gb(sb);
      ga.params() = makeParams<double>(info, 5, 3.0, true);
      gb.params() = ga.params();
      Episode<double> ep = makeEpisode<double>(info, 7, 3, 19);
      RunResult<double> ra = run(ga, info, ep), rb = run(gb, info, ep);
      CHECK(ra.outputs == rb.outputs);
      CHECK(ra.states == rb.states);
      CHECK(ra.grads == rb.grads);
    }

    // Float: the traces hold bfloat16 values; the generic executor on the bf16 graph computes
    // alike; against float32 the results differ, by about bfloat16's precision.
    Frontend frontend({DOPA_SOURCE_DIR "/examples/lm"});
    DimParse dims = parseCanonicalDims(bf16->dims);
    REQUIRE(dims.ok());
    PipelineOptions options;
    options.fuse = false;
    options.traceBf16 = true;
    auto graphs = dopa::compileSpec(frontend, DOPA_SOURCE_DIR "/" + std::string(bf16->spec),
                                    dims.dims, "", options);
    REQUIRE(graphs);
    Executor<float> ref(graphs->graphs.forward, graphs->graphs.backward);
    GeneratedExecutor<float> ga(sa), gb(sb);
    gb.params() = makeParams<float>(info, 5, 3.0, true);
    ga.params() = gb.params();
    ref.params() = gb.params();
    Episode<float> ep = makeEpisode<float>(info, 7, 3, 19);
    RunResult<float> ra = run(ga, info, ep), rb = run(gb, info, ep), rr = run(ref, info, ep);
    for (size_t s = 0; s < info.states.size(); ++s)
      if (sb.bf16States[s])
        for (float x : rb.states[s])
          REQUIRE((std::bit_cast<uint32_t>(x) & 0xffffu) == 0u);
    std::string worstName;
    double againstGeneric = compareRuns(info, rb, rr, worstName);
    INFO("against the generic executor: " << againstGeneric << " (" << worstName << ")");
    CHECK(againstGeneric <= 1e-3);
    double againstFloat = compareRuns(info, rb, ra, worstName);
    INFO("against float32 traces: " << againstFloat << " (" << worstName << ")");
    CHECK(againstFloat > 1e-5); // the traces are rounded
    CHECK(againstFloat <= 0.1);
  }
}
