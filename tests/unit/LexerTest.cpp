//===- LexerTest.cpp - Unit tests of the lexer ----------------------------===//
//
// Token kinds and spellings, numbers, line starts, and the byte-level checks of the lexer.
//
//===----------------------------------------------------------------------===//
#include "dopa/dsl/Lexer.h"

#include "llvm/Support/MemoryBuffer.h"

#include <doctest/doctest.h>

using namespace dopa;

namespace {
struct Lexed {
  llvm::SourceMgr sm;
  DiagnosticEngine diags{sm};
  std::vector<Token> tokens;
  unsigned errors = 0;

  explicit Lexed(llvm::StringRef text) {
    diags.setConsumer(
        [this](Severity s, const llvm::SMDiagnostic &) { errors += s == Severity::Error; });
    unsigned id = sm.AddNewSourceBuffer(llvm::MemoryBuffer::getMemBufferCopy(text, "t.dopa"), {});
    Lexer lexer(diags, id);
    tokens = lexer.lexAll();
  }
  std::vector<TokenKind> kinds() const {
    std::vector<TokenKind> k;
    for (const Token &t : tokens)
      k.push_back(t.kind);
    return k;
  }
};
} // namespace

TEST_CASE("the lexer splits punctuation, keywords and identifiers") {
  Lexed l("network N { h' = (w + alpha*pw) @ h -> x.y ~ ; }");
  std::vector<TokenKind> expected = {kw_network,     tok_identifier, tok_lbrace,     tok_identifier,
                                     tok_prime,      tok_equal,      tok_lparen,     tok_identifier,
                                     tok_plus,       tok_identifier, tok_star,       tok_identifier,
                                     tok_rparen,     tok_at,         tok_identifier, tok_arrow,
                                     tok_identifier, tok_dot,        tok_identifier, tok_tilde,
                                     tok_semicolon,  tok_rbrace,     tok_eof};
  CHECK(l.kinds() == expected);
  CHECK(l.errors == 0);
  CHECK(l.tokens[1].text == "N");
}

TEST_CASE("numbers are integers or reals and keep their spelling") {
  Lexed l("12 0.5 .25 1e-4 3E+2 7.");
  REQUIRE(l.tokens.size() == 7);
  CHECK(l.tokens[0].kind == tok_integer);
  for (int i = 1; i < 6; ++i)
    CHECK(l.tokens[i].kind == tok_real);
  CHECK(l.tokens[3].text == "1e-4");
  CHECK(l.errors == 0);
}

TEST_CASE("a minus sign is a separate token, so 1-2 is three tokens") {
  Lexed l("1-2");
  CHECK(l.kinds() == std::vector<TokenKind>{tok_integer, tok_minus, tok_integer, tok_eof});
}

TEST_CASE("comments run to the end of the line and tokens know when they start a line") {
  Lexed l("a # comment ( ]\n  b c\n");
  REQUIRE(l.tokens.size() == 4);
  CHECK(l.tokens[0].atStartOfLine);
  CHECK(l.tokens[1].atStartOfLine);
  CHECK_FALSE(l.tokens[2].atStartOfLine);
  CHECK(l.errors == 0);
}

TEST_CASE("a UTF-8 byte order mark is skipped, UTF-8 in comments is accepted") {
  Lexed l("\xEF\xBB\xBFnetwork # \xce\xb1 and \xe2\x86\x92\n");
  CHECK(l.kinds() == std::vector<TokenKind>{kw_network, tok_eof});
  CHECK(l.errors == 0);
}

TEST_CASE("bad bytes are diagnosed and lexing continues to the end") {
  SUBCASE("NUL") {
    Lexed l(llvm::StringRef("a \0 b", 5));
    CHECK(l.errors == 1);
    CHECK(l.tokens.back().kind == tok_eof);
  }
  SUBCASE("truncated UTF-8 sequence at the end of the file") {
    Lexed l("a \xe2\x86");
    CHECK(l.errors >= 1);
  }
  SUBCASE("overlong encoding") {
    Lexed l("# \xc0\xaf\n");
    CHECK(l.errors == 1);
  }
  SUBCASE("surrogate code point") {
    Lexed l("# \xed\xa0\x80\n");
    CHECK(l.errors == 1);
  }
  SUBCASE("control character") {
    Lexed l("a \x01 b");
    CHECK(l.errors == 1);
  }
}

TEST_CASE("control characters are errors in comments and strings too; tab and CR are white space") {
  SUBCASE("in a comment") {
    Lexed l("a # x\x01y\x1b[31m\n");
    CHECK(l.errors == 2);
    CHECK(l.kinds() == std::vector<TokenKind>{tok_identifier, tok_eof});
  }
  SUBCASE("in a string, which then is no string token") {
    Lexed l("include \"a\x01"
            "b\"\n");
    CHECK(l.errors == 1);
    CHECK(l.kinds() == std::vector<TokenKind>{kw_include, tok_error, tok_eof});
  }
  SUBCASE("tab and CR") {
    Lexed l("a\t# tab\there\r\nb\r\n");
    CHECK(l.errors == 0);
    CHECK(l.kinds() == std::vector<TokenKind>{tok_identifier, tok_identifier, tok_eof});
  }
}
