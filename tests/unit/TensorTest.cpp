//===- TensorTest.cpp - Tensors, named parameter views, the Network API ---===//
//
// Aligned owning storage, views, Eigen maps; Network's named views into the flat buffers and its
// whole-sequence forward, on the generic executor.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include "dopa/compiler/Pipeline.h"
#include "dopa/generic/Executor.h"
#include "dopa/runtime/Tensor.h"

#include <doctest/doctest.h>

#include <cstdint>

using namespace dopa;

TEST_CASE("tensors own aligned storage, share it between handles, and map to Eigen") {
  Tensor<float> t({2, 3}, 1.5f);
  CHECK(t.numel() == 6);
  CHECK(reinterpret_cast<uintptr_t>(t.data()) % Tensor<float>::alignment == 0);
  Tensor<float> alias = t;
  alias[4] = 7;
  CHECK(t[4] == 7); // handles share storage
  Tensor<float> copy = t.clone();
  copy[4] = 0;
  CHECK(t[4] == 7);
  CHECK(t.matrix().rows() == 2);
  CHECK(t.matrix()(1, 1) == 7); // row-major: element 4 is (1, 1)
  CHECK(t.reshaped({3, 2}).matrix()(2, 0) == 7);
  CHECK_THROWS(t.reshaped({4}));
  std::vector<float> external = {1, 2, 3};
  Tensor<float> v = Tensor<float>::view(external.data(), {3});
  CHECK_FALSE(v.owning());
  CHECK(v.vector().sum() == 6);
}

TEST_CASE("a network's parameters have named views and forward() runs whole sequences") {
  Frontend frontend;
  auto compiled =
      compileSpec(frontend, DOPA_SOURCE_DIR "/examples/cue_reward/rnn.dopa", {{"H", 3}}, "");
  REQUIRE(compiled);
  GenericNetwork net(std::move(compiled->graphs));
  initParams(net.info(), net.params(), 1);
  Tensor<float> w = net.param("w");
  CHECK(w.shape() == std::vector<int64_t>{3, 3});
  CHECK(w.data() == net.params() + net.info().paramOffsets[size_t(net.info().findParam("w"))]);
  CHECK(net.param("i2h.weight").shape() == std::vector<int64_t>{3, 27});
  CHECK_THROWS_AS(net.param("nope"), std::invalid_argument);

  net.beginEpisode(2);
  std::vector<float> x(2 * 27, 0.25f), logits0(4), value0(2), logits1(4), value1(2);
  const float *in0[] = {x.data()}, *in1[] = {x.data()};
  const float *const *inputs[] = {in0, in1};
  float *out0[] = {logits0.data(), value0.data()}, *out1[] = {logits1.data(), value1.data()};
  float *const *outputs[] = {out0, out1};
  net.forward(2, inputs, outputs);
  CHECK(net.recordedSteps() == 2);
  CHECK(logits0 != logits1);       // the hidden state carried over
  CHECK(logits0[0] == logits0[2]); // identical inputs give identical batch elements
}
