//===- Lexer.h - Tokens and lexer for dopa spec files ---------------------===//
//
// The lexer turns one source buffer of a SourceMgr into tokens. Tokens are StringRef slices of the
// buffer, so a token's location is free (SMLoc::getFromPointer). The lexer also validates the bytes
// of the file: NUL bytes, invalid UTF-8, non-ASCII outside comments and strings, malformed or
// out-of-range numbers are all diagnosed here, and lexing always reaches the end of the buffer.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/dsl/Diagnostics.h"

#include "llvm/ADT/StringRef.h"
#include "llvm/Support/SMLoc.h"

#include <vector>

namespace dopa {

enum TokenKind : int {
  tok_eof,
  tok_error, // a byte sequence that could not be lexed; already diagnosed
  tok_identifier,
  tok_integer,
  tok_real,
  tok_string,
  // Keywords.
  kw_network,
  kw_cell,
  kw_include,
  kw_dims,
  kw_const,
  kw_input,
  kw_state,
  kw_param,
  kw_mask,
  kw_linear,
  kw_embedding,
  kw_layer,
  kw_step,
  kw_output,
  kw_nobias,
  kw_int,
  // Punctuation.
  tok_lbrace,    // {
  tok_rbrace,    // }
  tok_lparen,    // (
  tok_rparen,    // )
  tok_lbracket,  // [
  tok_rbracket,  // ]
  tok_comma,     // ,
  tok_colon,     // :
  tok_semicolon, // ;
  tok_equal,     // =
  tok_tilde,     // ~
  tok_arrow,     // ->
  tok_prime,     // '
  tok_plus,      // +
  tok_minus,     // -
  tok_star,      // *
  tok_slash,     // /
  tok_at,        // @
  tok_dot,       // .
};

/// The spelling used in diagnostics and the token dump ("'->'", "identifier", ...).
const char *tokenKindName(TokenKind kind);

struct Token {
  TokenKind kind = tok_eof;
  llvm::StringRef text;
  /// True when this token is the first one on its line (used to keep `f\n(x)` two statements).
  bool atStartOfLine = false;

  llvm::SMLoc getLoc() const { return llvm::SMLoc::getFromPointer(text.data()); }
  llvm::SMLoc getEndLoc() const { return llvm::SMLoc::getFromPointer(text.data() + text.size()); }
  llvm::SMRange getRange() const { return {getLoc(), getEndLoc()}; }
  bool is(TokenKind k) const { return kind == k; }
  bool isKeyword() const { return kind >= kw_network && kind <= kw_int; }
};

class Lexer {
public:
  /// Lex buffer `bufferId` of `diags`'s SourceMgr.
  Lexer(DiagnosticEngine &diags, unsigned bufferId);

  /// Return the next token; tok_eof forever at the end.
  Token lex();

  /// Lex the whole buffer (for --emit=tokens and tests).
  std::vector<Token> lexAll();

  /// Largest file the front end accepts.
  static constexpr size_t maxFileSize = size_t(16) << 20;

private:
  Token makeToken(TokenKind kind, const char *start);
  Token lexIdentifier(const char *start);
  Token lexNumber(const char *start);
  Token lexString(const char *start);
  void skipComment();
  /// Validate one non-ASCII UTF-8 sequence at cur; advance past it. False if invalid.
  bool skipUtf8();
  /// After an invalid byte at `start`, skip the rest of the run of invalid non-ASCII bytes.
  void skipBadRun(const char *start);

  DiagnosticEngine &diags;
  const char *bufStart;
  const char *bufEnd;
  const char *cur;
  bool sawNewline = true;
};

} // namespace dopa
