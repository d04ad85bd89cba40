//===- SemaTest.cpp - Unit tests of semantic analysis ---------------------===//
//
// Shapes, broadcasting, initializers, flattened names of layers, parameter counts of the paper's
// networks, and that one run reports every semantic error.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include <doctest/doctest.h>

#include <cmath>

using namespace dopa;
using namespace dopa::sema;

namespace {
Shape shapeOf(std::initializer_list<int64_t> dims) {
  Shape s;
  s.dims.assign(dims.begin(), dims.end());
  return s;
}

/// Shape of output `y` of `network N { <decls> step { output y = <expr> } }`.
std::optional<Shape> outputShape(const std::string &decls, const std::string &expr) {
  auto r = test::compile("network N {\n" + decls + "\n step {\n  output y = " + expr + "\n }\n}\n");
  if (!r.program)
    return std::nullopt;
  return r.program->networks[0]->root->outputs[0].second;
}
} // namespace

TEST_CASE("expression shapes follow broadcasting and matrix rules") {
  const std::string decls = " dims H = 5, I = 3\n input x : [I]\n param w : [H, H] = 0\n"
                            " param a : [H, 1] = 0\n param v : [H] = 0\n param m : [H, I] = 0";
  CHECK(outputShape(decls, "w @ v") == shapeOf({5}));
  CHECK(outputShape(decls, "m @ x") == shapeOf({5}));
  CHECK(outputShape(decls, "v @ m") == shapeOf({3}));
  CHECK(outputShape(decls, "w @ m") == shapeOf({5, 3}));
  CHECK(outputShape(decls, "v @ v") == Shape::scalar());
  CHECK(outputShape(decls, "a * w") == shapeOf({5, 5}));
  CHECK(outputShape(decls, "a + v") == shapeOf({5, 5})); // [5,1] + [5] -> [5,5], as numpy
  CHECK(outputShape(decls, "outer(v, x)") == shapeOf({5, 3}));
  CHECK(outputShape(decls, "col(v)") == shapeOf({5, 1}));
  CHECK(outputShape(decls, "row(v)") == shapeOf({1, 5}));
  CHECK(outputShape(decls, "transpose(m)") == shapeOf({3, 5}));
  CHECK(outputShape(decls, "concat(v, x, x)") == shapeOf({11}));
  CHECK(outputShape(decls, "sum(m, 0)") == shapeOf({3}));
  CHECK(outputShape(decls, "mean(w)") == Shape::scalar());
  CHECK(outputShape(decls, "m[1:4, :]") == shapeOf({3, 3}));
  CHECK(outputShape(decls, "m[2, 0:2]") == shapeOf({2}));
  CHECK(outputShape(decls, "softmax(v) * H") == shapeOf({5}));
  CHECK(outputShape(decls, "clip(w, -1, 1)") == shapeOf({5, 5}));
  CHECK_FALSE(outputShape(decls, "w @ x").has_value());
  CHECK_FALSE(outputShape(decls, "v + x").has_value());
}

TEST_CASE("initializers resolve to concrete distributions") {
  auto r = test::compile("network N {\n dims F = 16\n param a : [2] ~ fan_in_uniform(F)\n"
                         " param b : [2] ~ normal(0, 0.5)\n param c : [] = -F / 4\n"
                         " linear l : 4 -> 2\n input x : [4]\n"
                         " step { output y = a + b + c + l(x) }\n}\n");
  REQUIRE(r.program);
  const Network &net = *r.program->networks[0];
  REQUIRE(net.params.size() == 5);
  CHECK(net.params[0]->init.kind == Init::Uniform);
  CHECK(net.params[0]->init.a == doctest::Approx(-0.25));
  CHECK(net.params[0]->init.b == doctest::Approx(0.25));
  CHECK(net.params[1]->init.kind == Init::Normal);
  CHECK(net.params[2]->init.kind == Init::Constant);
  CHECK(net.params[2]->init.a == doctest::Approx(-4));
  // nn.Linear default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
  CHECK(net.params[3]->name == "l.weight");
  CHECK(net.params[3]->shape == shapeOf({2, 4}));
  CHECK(net.params[3]->init.b == doctest::Approx(0.5));
  CHECK(net.params[4]->name == "l.bias");
}

TEST_CASE("the paper's networks have the reference code's parameter counts") {
  struct Case {
    const char *path;
    int64_t params;
  };
  // Counts from the reference code (shared/reference/backpropamine.md). The cue-reward modplast and
  // modul reference modules also hold an unused `eta` (+1), which the specs leave out.
  const Case cases[] = {
      {"examples/cue_reward/rnn.dopa", 46203},
      {"examples/cue_reward/plastic.dopa", 86204},
      {"examples/cue_reward/modplast.dopa", 86404},
      {"examples/cue_reward/modul.dopa", 86405},
      {"examples/maze/rnn.dopa", 22523},
      {"examples/maze/plastic.dopa", 22731},
      {"examples/maze/modplast.dopa", 22406},
      {"examples/maze/modul.dopa", 22407},
      {"examples/lm/lstm.dopa", 24221600},
      {"examples/lm/modplast_lstm.dopa", 24198893},
  };
  for (const Case &c : cases) {
    CAPTURE(c.path);
    auto r = test::compile(test::readSourceFile(c.path), true, c.path);
    REQUIRE(r.program);
    CHECK(r.warnings.empty());
    CHECK(r.program->networks[0]->numParams() == c.params);
  }
}

TEST_CASE("layers flatten into qualified names and keep their equations in dependency order") {
  auto r = test::compile(test::readSourceFile("examples/lm/modplast_lstm.dopa"), true,
                         DOPA_SOURCE_DIR "/examples/lm/modplast_lstm.dopa");
  REQUIRE(r.program);
  const Network &net = *r.program->networks[0];
  std::vector<std::string> states;
  for (const Variable *v : net.states)
    states.push_back(v->name);
  CHECK(states == std::vector<std::string>{"l1.h", "l1.c", "l1.hebb", "l2.h", "l2.c", "l2.hebb",
                                           "l3.h", "l3.c", "l3.hebb"});
  const Instance &l1 = *net.root->layers[0];
  CHECK(l1.prefix == "l1.");
  // `eta` uses `M`, which uses `hn`, which uses `cn`, which uses `g`: each comes after its inputs.
  std::vector<std::string> order;
  for (const ast::Equation *eq : l1.order)
    order.push_back(eq->target.name.str());
  auto pos = [&](const char *n) {
    return std::find(order.begin(), order.end(), n) - order.begin();
  };
  CHECK(pos("g") < pos("cn"));
  CHECK(pos("cn") < pos("hn"));
  CHECK(pos("hn") < pos("M"));
  CHECK(pos("M") < pos("eta"));
  CHECK(pos("eta") < pos("hebb"));
}

TEST_CASE("equations may be written in any order") {
  auto r = test::compile("network N {\n state h : [2] = 0\n step {\n  output y = b\n  h' = a\n"
                         "  b = a * 2\n  a = tanh(h)\n }\n}\n");
  REQUIRE(r.program);
  CHECK(r.errors.empty());
}

TEST_CASE("semantic analysis reports every error in one run") {
  auto r = test::compile("network N {\n"
                         " dims H = 4, I = 3\n"
                         " input x : [I]\n"
                         " state h : [H] = 0\n"
                         " state c : [H] = 0\n" // never updated
                         " step {\n"
                         "  h' = tanh(h + x)\n"  // broadcast error
                         "  z = unknown + 1\n"   // unknown name
                         "  output y = foo(h)\n" // unknown function
                         " }\n"
                         "}\n");
  CHECK_FALSE(r.program);
  CHECK(r.errors.size() == 4);
  CHECK(r.hasError("state 'c' is never updated"));
  CHECK(r.hasError("cannot be broadcast"));
  CHECK(r.hasError("unknown name 'unknown'"));
  CHECK(r.hasError("unknown function 'foo'"));
}

TEST_CASE("an error inside a cell used by two identical layers is reported once") {
  auto r = test::compile("cell C(H) {\n input x : [H]\n step { output y = x @ 2 }\n}\n"
                         "network N {\n input x : [3]\n layer a : C(3)\n layer b : C(3)\n"
                         " step { output y = b(a(x)) }\n}\n");
  CHECK(r.errors.size() == 1);
}

TEST_CASE("a spec that declares nothing is an error") {
  CHECK(test::compile("").hasError("declares no network or cell"));
  CHECK(test::compile("# only a comment\n").hasError("declares no network or cell"));
}
