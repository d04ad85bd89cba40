//===- ParserTest.cpp - Unit tests of the parser --------------------------===//
//
// Precedence and associativity, postfix forms, declarations, and error recovery (several syntax
// errors reported in one run).
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include <doctest/doctest.h>

#include <fstream>

using namespace dopa;
using namespace dopa::ast;

namespace {
/// Parse `network N { step { output y = <expr> } }` and return the expression.
struct ParsedExpr {
  test::CompileResult result;
  const Expr *expr = nullptr;
  explicit ParsedExpr(const std::string &text) {
    result = test::compile("network N {\n step {\n output y = " + text + "\n }\n}\n", false);
    const File *file = result.frontend->getMainFile();
    if (file && !file->units.empty() && !file->units[0]->step.empty())
      expr = file->units[0]->step[0].value.get();
  }
};

std::string show(const Expr *e) {
  if (const auto *n = llvm::dyn_cast<NameExpr>(e))
    return n->getName().str();
  if (const auto *n = llvm::dyn_cast<NumberExpr>(e))
    return n->isInteger() ? std::to_string(n->getIntValue()) : "real";
  if (const auto *u = llvm::dyn_cast<UnaryExpr>(e))
    return std::string("(") + u->getOp() + show(u->getOperand()) + ")";
  if (const auto *b = llvm::dyn_cast<BinaryExpr>(e))
    return "(" + show(b->getLHS()) + " " + b->getOp() + " " + show(b->getRHS()) + ")";
  if (const auto *c = llvm::dyn_cast<CallExpr>(e)) {
    std::string s = show(c->getCallee()) + "(";
    for (size_t i = 0; i < c->getArgs().size(); ++i)
      s += (i ? ", " : "") + show(c->getArgs()[i].get());
    return s + ")";
  }
  if (const auto *m = llvm::dyn_cast<MemberExpr>(e))
    return show(m->getBase()) + "." + m->getMember().str();
  if (const auto *i = llvm::dyn_cast<IndexExpr>(e))
    return show(i->getBase()) + "[" + std::to_string(i->getSlices().size()) + "]";
  return "?";
}
} // namespace

TEST_CASE("binary operators: * / @ bind tighter than + -, all left-associative") {
  CHECK(show(ParsedExpr("a + b * c").expr) == "(a + (b * c))");
  CHECK(show(ParsedExpr("a - b - c").expr) == "((a - b) - c)");
  CHECK(show(ParsedExpr("(w + alpha * p) @ h").expr) == "((w + (alpha * p)) @ h)");
  CHECK(show(ParsedExpr("a * b @ c").expr) == "((a * b) @ c)");
  CHECK(show(ParsedExpr("-a * b").expr) == "((-a) * b)");
  CHECK(show(ParsedExpr("1 - -2").expr) == "(1 - (-2))");
}

TEST_CASE("postfix forms: calls, members and indexing chain") {
  CHECK(show(ParsedExpr("tanh(i2h(x) + w @ h)").expr) == "tanh((i2h(x) + (w @ h)))");
  CHECK(show(ParsedExpr("l1(x).h").expr) == "l1(x).h");
  CHECK(show(ParsedExpr("enc.weight @ y").expr) == "(enc.weight @ y)");
  CHECK(show(ParsedExpr("z[0:4, 2]").expr) == "z[2]");
}

TEST_CASE("a '(' at the start of a line does not continue the previous expression") {
  auto r = test::compile("network N {\n step {\n a = b\n (c)\n }\n}\n", false);
  // `(c)` cannot start an equation, so it is a syntax error, not a call b(c).
  CHECK(r.hasError("expected an equation"));
}

TEST_CASE("declarations parse into members with their names and shapes") {
  auto r =
      test::compile("network N {\n dims H = 3, I = 2\n param w, alpha : [H, H] ~ uniform(0, 0.01)\n"
                    " linear i2h : I -> H nobias\n step { output y = 1 }\n}\n",
                    false);
  REQUIRE(r.errors.empty());
  const Unit &unit = *r.frontend->getMainFile()->units[0];
  REQUIRE(unit.members.size() == 3);
  const auto *dims = llvm::dyn_cast<DimsDecl>(unit.members[0].get());
  REQUIRE(dims);
  CHECK(dims->defs.size() == 2);
  const auto *param = llvm::dyn_cast<VarDecl>(unit.members[1].get());
  REQUIRE(param);
  CHECK(param->names.size() == 2);
  CHECK(param->type.dims.size() == 2);
  REQUIRE(param->init);
  CHECK(param->init->isDistribution);
  const auto *lin = llvm::dyn_cast<LinearDecl>(unit.members[2].get());
  REQUIRE(lin);
  CHECK_FALSE(lin->hasBias);
}

TEST_CASE("the parser recovers and reports every syntax error in one run") {
  auto r = test::compile("network N {\n"
                         " dims H = \n"        // missing value (error 1, at 'param')
                         " param w : [H ~ 0\n" // missing ']' (error 2)
                         " step {\n"
                         "  a = (1 + )\n" // missing operand (error 3)
                         "  b = 2 2\n"    // two expressions (error 4)
                         "  output y = b\n"
                         " }\n"
                         "}\n",
                         false);
  CHECK(r.errors.size() == 4);
}

TEST_CASE("the error limit stops the front end") {
  std::string text = "network N {\n step {\n";
  for (int i = 0; i < 100; ++i)
    text += "  a = )\n";
  text += " }\n}\n";
  auto r = test::compile(text, false, "t.dopa", 20);
  CHECK(r.errors.size() == 20);
  CHECK(r.frontend->getDiagnostics().limitReached());
}

TEST_CASE("an include path's escapes are resolved: \\\" and \\\\ name a quote and a backslash") {
  std::string dir = test::scratchDir("include-escapes");
  {
    std::ofstream cell(dir + "/q\"x\\y.dopa");
    cell << "cell C(H) {\n input x : [H]\n step { output y = tanh(x) }\n}\n";
  }
  auto r = test::compile("include \"q\\\"x\\\\y.dopa\"\n"
                         "network N {\n dims H = 3\n input x : [H]\n layer c : C(H)\n"
                         " step { output y = sum(c(x)) }\n}\n",
                         true, dir + "/main.dopa");
  CHECK(r.errors.empty());
  REQUIRE(r.frontend->getMainFile());
  REQUIRE(r.frontend->getMainFile()->includes.size() == 1);
  CHECK(r.frontend->getMainFile()->includes[0].path == "q\"x\\y.dopa");
  CHECK(r.program);
}
