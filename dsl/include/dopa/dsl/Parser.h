//===- Parser.h - Recursive-descent parser for dopa spec files ------------===//
//
// The parser builds a well-formed AST from tokens. It performs no semantic checks and no name
// resolution (that is Sema's job). On a syntax error it reports a diagnostic, skips to the next
// declaration or equation, and keeps going, so one run reports every syntax error it can.
// The grammar is in dsl/LangRef.md; each parse function carries its production.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/dsl/AST.h"
#include "dopa/dsl/Diagnostics.h"
#include "dopa/dsl/Lexer.h"

namespace dopa {

class Parser {
public:
  Parser(DiagnosticEngine &diags, unsigned bufferId);

  /// file ::= (include | unit)* EOF
  std::unique_ptr<ast::File> parseFile();

  /// Largest expression tree height and parser recursion depth accepted.
  static constexpr unsigned maxDepth = 256;

private:
  // Token handling.
  void consume();
  bool consumeIf(TokenKind kind);
  /// The token after `tok`, lexed ahead once (error recovery's one token of lookahead).
  const Token &peek();
  bool expect(TokenKind kind, const char *context);
  bool expectIdent(ast::Ident &out, const char *what);
  void errorExpected(const llvm::Twine &what);

  // Recovery: skip to a token that can start a member (or '}') / an equation.
  void skipToMember();
  void skipToEquation(llvm::SMLoc start);

  bool parseInclude(ast::File &file);
  std::unique_ptr<ast::Unit> parseUnit();
  ast::MemberPtr parseMember(ast::Unit &unit);
  ast::MemberPtr parseDims();
  ast::MemberPtr parseConst();
  ast::MemberPtr parseVarDecl();
  ast::MemberPtr parseLinear();
  ast::MemberPtr parseEmbedding();
  ast::MemberPtr parseLayer();
  bool parseStep(ast::Unit &unit);
  bool parseEquation(ast::Unit &unit);
  bool parseType(ast::TypeSpec &type);
  bool parseInit(std::optional<ast::InitSpec> &init);

  ast::ExprPtr parseExpr();
  ast::ExprPtr parseAdditive();
  ast::ExprPtr parseMultiplicative();
  ast::ExprPtr parseUnary();
  ast::ExprPtr parsePostfix();
  ast::ExprPtr parsePrimary();
  ast::ExprPtr parseNumber();
  bool parseSlice(ast::Slice &slice);
  /// Set the depth of a new node from its children; report and return null when too deep.
  ast::ExprPtr checkDepth(ast::ExprPtr expr, unsigned childDepth);

  llvm::SMLoc prevEnd() const { return prevTokEnd; }

  DiagnosticEngine &diags;
  Lexer lexer;
  unsigned bufferId;
  Token tok;
  Token peeked;
  bool hasPeeked = false;
  llvm::SMLoc prevTokEnd;
  unsigned recursion = 0;
};

} // namespace dopa
