//===- RobustnessTest.cpp - Malformed input never crashes the front end ---===//
//
// Truncations of every example at every byte, random garbage, deep nesting, long chains, huge
// files: the front end must report errors and return, never crash, hang or overflow the stack.
// These complement the libFuzzer target (tests/fuzz), which CI runs for a bounded time.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include "dopa/dsl/Lexer.h"

#include <doctest/doctest.h>

#include <random>

using namespace dopa;

TEST_CASE("every truncation of every example spec is diagnosed, never crashes") {
  const char *examples[] = {"examples/cue_reward/modul.dopa", "examples/maze/plastic.dopa",
                            "examples/lm/modplast_lstm.dopa", "examples/lm/cells.dopa"};
  for (const char *path : examples) {
    CAPTURE(path);
    std::string text = test::readSourceFile(path);
    size_t lastBrace = text.rfind('}');
    // A cut inside the last unit must be an error; a cut elsewhere may leave a valid file (a
    // library with fewer cells, a file that only includes one). Every cut must return normally.
    size_t lastNetwork = text.rfind("\nnetwork "), lastCell = text.rfind("\ncell ");
    size_t lastUnit = lastNetwork == std::string::npos ? lastCell
                      : lastCell == std::string::npos  ? lastNetwork
                                                       : std::max(lastNetwork, lastCell);
    REQUIRE(lastUnit != std::string::npos);
    size_t accepted = 0;
    for (size_t n = 0; n <= lastBrace; ++n) {
      auto r = test::compile(llvm::StringRef(text).take_front(n), true,
                             std::string(DOPA_SOURCE_DIR "/") + path, 20);
      if (n >= lastUnit + 2 && r.errors.empty() && accepted++ == 0) {
        INFO("prefix of " << n << " bytes was accepted");
        CHECK_FALSE(r.errors.empty());
      }
    }
    CHECK(accepted == 0);
  }
}

TEST_CASE("random bytes and random token soup are diagnosed, never crash") {
  std::mt19937 rng(1234);
  const char *pieces[] = {"network", "cell",    "N",     "{",     "}",     "(",        ")",
                          "[",       "]",       ",",     ":",     "=",     "~",        "->",
                          "'",       "+",       "-",     "*",     "/",     "@",        ".",
                          "step",    "output",  "dims",  "param", "state", "input",    "linear",
                          "layer",   "x",       "1",     "2.5",   "\n",    "tanh",     "outer",
                          "clip",    "include", "\"a\"", "#",     "int",   "embedding"};
  for (int trial = 0; trial < 400; ++trial) {
    std::string text;
    int len = std::uniform_int_distribution<int>(0, 200)(rng);
    if (trial % 2 == 0) {
      for (int i = 0; i < len; ++i)
        text.push_back(char(std::uniform_int_distribution<int>(0, 255)(rng)));
    } else {
      for (int i = 0; i < len; ++i) {
        text += pieces[std::uniform_int_distribution<size_t>(0, std::size(pieces) - 1)(rng)];
        text += ' ';
      }
    }
    auto r = test::compile(text, true, "soup.dopa", 20);
    CHECK((r.program != nullptr || !r.errors.empty()));
  }
}

TEST_CASE("deep nesting and long chains are bounded") {
  auto wrap = [](const std::string &expr) {
    return "network N {\n input x : [2]\n step {\n  output y = " + expr + "\n }\n}\n";
  };
  SUBCASE("parentheses") {
    auto r = test::compile(wrap(std::string(100000, '(') + "x" + std::string(100000, ')')));
    CHECK(r.hasError("nested too deeply"));
  }
  SUBCASE("unary minus") {
    auto r = test::compile(wrap(std::string(100000, '-') + "x"));
    CHECK(r.hasError("nested too deeply"));
  }
  SUBCASE("a long left-associative chain") {
    std::string expr = "x";
    for (int i = 0; i < 100000; ++i)
      expr += " + x";
    auto r = test::compile(wrap(expr));
    CHECK(r.hasError("nested too deeply"));
  }
  SUBCASE("nested calls") {
    std::string expr;
    for (int i = 0; i < 50000; ++i)
      expr += "tanh(";
    expr += "x" + std::string(50000, ')');
    auto r = test::compile(wrap(expr));
    CHECK(r.hasError("nested too deeply"));
  }
  SUBCASE("a chain within the limit is fine") {
    std::string expr = "x";
    for (int i = 0; i < 200; ++i)
      expr += " + x";
    auto r = test::compile(wrap(expr));
    CHECK(r.errors.empty());
    CHECK(r.program);
  }
}

TEST_CASE("large specs: many equations are fine, oversized files are refused") {
  SUBCASE("20000 equations") {
    std::string text = "network N {\n input x : [4]\n step {\n  a0 = x\n";
    for (int i = 1; i < 20000; ++i)
      text += "  a" + std::to_string(i) + " = tanh(a" + std::to_string(i - 1) + ")\n";
    text += "  output y = a19999\n }\n}\n";
    auto r = test::compile(text);
    CHECK(r.errors.empty());
    CHECK(r.program);
  }
  SUBCASE("a long dependency chain written backwards still orders (no recursion blow-up)") {
    std::string text = "network N {\n input x : [4]\n step {\n  output y = a0\n";
    for (int i = 0; i < 20000; ++i)
      text += "  a" + std::to_string(i) + " = tanh(a" + std::to_string(i + 1) + ")\n";
    text += "  a20000 = x\n }\n}\n";
    auto r = test::compile(text);
    CHECK(r.errors.empty());
  }
  SUBCASE("more than 16 MiB") {
    std::string text(Lexer::maxFileSize + 1, ' ');
    auto r = test::compile(text);
    CHECK_FALSE(r.parsed);
    CHECK(r.frontend->getDiagnostics().hasErrors());
  }
}
