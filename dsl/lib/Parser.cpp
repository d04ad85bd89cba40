//===- Parser.cpp - Recursive-descent parser for dopa spec files ----------===//
//
// Implements the parser. Each parse function states its grammar production (the same grammar as
// dsl/LangRef.md). Errors are reported once per construct; recovery skips to the next member
// keyword or the next equation, which starts on a new line.
//
//===----------------------------------------------------------------------===//
#include "dopa/dsl/Parser.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

using namespace dopa;
using namespace dopa::ast;

namespace {
/// Increments the parser's recursion counter for the lifetime of a parse call.
struct RecursionGuard {
  unsigned &count;
  explicit RecursionGuard(unsigned &count) : count(count) { ++count; }
  ~RecursionGuard() { --count; }
};

llvm::SMRange rangeFrom(llvm::SMLoc start, llvm::SMLoc end) { return {start, end}; }
} // namespace

Parser::Parser(DiagnosticEngine &diags, unsigned bufferId)
    : diags(diags), lexer(diags, bufferId), bufferId(bufferId) {
  tok = lexer.lex();
  prevTokEnd = tok.getLoc();
}

void Parser::consume() {
  prevTokEnd = tok.getEndLoc();
  if (hasPeeked) {
    tok = peeked;
    hasPeeked = false;
  } else {
    tok = lexer.lex();
  }
}

const Token &Parser::peek() {
  if (!hasPeeked) {
    peeked = lexer.lex();
    hasPeeked = true;
  }
  return peeked;
}

bool Parser::consumeIf(TokenKind kind) {
  if (!tok.is(kind))
    return false;
  consume();
  return true;
}

void Parser::errorExpected(const llvm::Twine &what) {
  // The lexer already reported an invalid token; a second error at the same place is noise.
  if (tok.is(tok_error))
    return;
  std::string found = tok.is(tok_eof)                             ? std::string("end of file")
                      : tok.is(tok_identifier) || tok.isKeyword() ? ("'" + tok.text + "'").str()
                                                                  : tokenKindName(tok.kind);
  diags.error(tok.getLoc(), "expected " + what + ", found " + found, {tok.getRange()});
}

bool Parser::expect(TokenKind kind, const char *context) {
  // Invalid tokens were reported by the lexer; step over them rather than failing again.
  while (tok.is(tok_error))
    consume();
  if (consumeIf(kind))
    return true;
  errorExpected(llvm::Twine(tokenKindName(kind)) + " " + context);
  return false;
}

bool Parser::expectIdent(Ident &out, const char *what) {
  if (tok.is(tok_error)) {
    consume(); // reported by the lexer
    return false;
  }
  if (!tok.is(tok_identifier)) {
    if (!tok.isKeyword()) {
      errorExpected(what);
      return false;
    }
    // Report, then read on as if the keyword were the name: the rest of the line is likely fine.
    diags.error(tok.getLoc(),
                llvm::Twine("'") + tok.text + "' is a keyword and cannot be used as " + what,
                {tok.getRange()});
  }
  out = Ident{tok.text, tok.getRange()};
  consume();
  return true;
}

static bool startsMember(TokenKind kind) {
  switch (kind) {
  case kw_dims:
  case kw_const:
  case kw_input:
  case kw_state:
  case kw_param:
  case kw_mask:
  case kw_linear:
  case kw_embedding:
  case kw_layer:
  case kw_step: return true;
  default: return false;
  }
}

void Parser::skipToMember() {
  while (!tok.is(tok_eof) && !tok.is(tok_rbrace) && !startsMember(tok.kind) &&
         !tok.is(kw_network) && !tok.is(kw_cell))
    consume();
}

void Parser::skipToEquation(llvm::SMLoc start) {
  // An equation starts on a new line with an identifier or `output`; `}` ends the block. The
  // token the failed equation started at is skipped (progress); any later one may start the next.
  if (tok.getLoc() == start && !tok.is(tok_rbrace) && !tok.is(tok_eof))
    consume();
  // An identifier that starts a line starts an equation only when '=' or '\'' follows it (else it
  // is the continuation of the broken one, as in `max(x,` / `z` / `x)`).
  auto startsEquation = [&] {
    return tok.atStartOfLine &&
           (tok.is(kw_output) ||
            (tok.is(tok_identifier) && (peek().is(tok_equal) || peek().is(tok_prime))));
  };
  while (!tok.is(tok_eof) && !tok.is(tok_rbrace) && !startsEquation() && !tok.is(tok_semicolon))
    consume();
  consumeIf(tok_semicolon);
}

/// file ::= (include | unit)* EOF
std::unique_ptr<File> Parser::parseFile() {
  auto file = std::make_unique<File>();
  file->bufferId = bufferId;
  while (!tok.is(tok_eof) && !diags.limitReached()) {
    if (tok.is(kw_include)) {
      if (!parseInclude(*file))
        consume();
      continue;
    }
    if (tok.is(kw_network) || tok.is(kw_cell)) {
      if (auto unit = parseUnit())
        file->units.push_back(std::move(unit));
      continue;
    }
    errorExpected("'network', 'cell' or 'include' at top level");
    // Skip to the next top-level keyword.
    consume();
    while (!tok.is(tok_eof) && !tok.is(kw_network) && !tok.is(kw_cell) && !tok.is(kw_include))
      consume();
  }
  return file;
}

/// include ::= 'include' string
bool Parser::parseInclude(File &file) {
  llvm::SMLoc start = tok.getLoc();
  consume();
  if (!tok.is(tok_string)) {
    errorExpected("a file name in double quotes after 'include'");
    return false;
  }
  Include inc;
  inc.pathRange = tok.getRange();
  llvm::StringRef raw = tok.text.drop_front().drop_back();
  for (size_t i = 0; i < raw.size(); ++i) { // the lexer let only \" and \\ through as escapes
    if (raw[i] == '\\' && i + 1 < raw.size() && (raw[i + 1] == '"' || raw[i + 1] == '\\'))
      ++i;
    inc.path += raw[i];
  }
  consume();
  inc.range = rangeFrom(start, prevEnd());
  file.includes.push_back(inc);
  return true;
}

/// unit ::= 'network' ident '{' member* '}'
///        | 'cell' ident '(' (ident (',' ident)*)? ')' '{' member* '}'
std::unique_ptr<Unit> Parser::parseUnit() {
  auto unit = std::make_unique<Unit>();
  llvm::SMLoc start = tok.getLoc();
  unit->isCell = tok.is(kw_cell);
  consume();
  if (!expectIdent(unit->name, unit->isCell ? "a cell name" : "a network name")) {
    while (!tok.is(tok_eof) && !tok.is(tok_lbrace) && !tok.is(tok_rbrace) &&
           !startsMember(tok.kind))
      consume();
  } else if (unit->isCell) {
    if (expect(tok_lparen, "after the cell name (cells take dimension parameters)")) {
      if (!tok.is(tok_rparen)) {
        do {
          Ident param;
          if (!expectIdent(param, "a dimension parameter name"))
            break;
          unit->dimParams.push_back(param);
        } while (consumeIf(tok_comma));
      }
      expect(tok_rparen, "after the cell's dimension parameters");
    }
  }
  if (!expect(tok_lbrace, unit->isCell ? "to open the cell body" : "to open the network body")) {
    skipToMember();
    if (!tok.is(tok_lbrace) && !startsMember(tok.kind))
      return nullptr;
    consumeIf(tok_lbrace);
  }
  while (!tok.is(tok_rbrace) && !tok.is(tok_eof) && !diags.limitReached()) {
    if (tok.is(kw_step)) {
      if (!parseStep(*unit))
        skipToMember();
      continue;
    }
    if (tok.is(kw_network) || tok.is(kw_cell)) {
      diags.error(tok.getLoc(),
                  "missing '}' before the next " + tok.text + "; '" + unit->name.name +
                      "' is still open",
                  {tok.getRange()});
      diags.note(unit->name.getLoc(), "'" + unit->name.name + "' starts here");
      unit->range = rangeFrom(start, prevEnd());
      return unit;
    }
    if (auto member = parseMember(*unit)) {
      unit->members.push_back(std::move(member));
      continue;
    }
    if (!startsMember(tok.kind) && !tok.is(tok_rbrace))
      consume();
    skipToMember();
  }
  if (tok.is(tok_eof)) {
    diags.error(tok.getLoc(), "expected '}' to close '" + unit->name.name + "', found end of file");
    diags.note(unit->name.getLoc(), "'" + unit->name.name + "' starts here");
  } else {
    consume();
  }
  unit->range = rangeFrom(start, prevEnd());
  return unit;
}

/// member ::= dimsDecl | constDecl | varDecl | linearDecl | embeddingDecl | layerDecl | stepBlock
MemberPtr Parser::parseMember(Unit &unit) {
  switch (tok.kind) {
  case kw_dims: return parseDims();
  case kw_const: return parseConst();
  case kw_input:
  case kw_state:
  case kw_param:
  case kw_mask: return parseVarDecl();
  case kw_linear: return parseLinear();
  case kw_embedding: return parseEmbedding();
  case kw_layer: return parseLayer();
  default:
    if (tok.is(tok_identifier) && tok.atStartOfLine && !unit.hasStep) {
      // A common slip: an equation outside the step block.
      diags.error(tok.getLoc(), "equations must be inside a 'step { ... }' block",
                  {tok.getRange()});
      return nullptr;
    }
    errorExpected(
        "a declaration (dims, const, input, state, param, mask, linear, embedding, layer, step)");
    return nullptr;
  }
}

/// dimsDecl ::= 'dims' dimDef (',' dimDef)*
/// dimDef   ::= ident '=' expr
MemberPtr Parser::parseDims() {
  llvm::SMLoc start = tok.getLoc();
  consume();
  auto decl = std::make_unique<DimsDecl>(rangeFrom(start, start));
  do {
    DimDef def;
    if (!expectIdent(def.name, "a dimension name"))
      return nullptr;
    if (!expect(tok_equal, "after the dimension name"))
      return nullptr;
    def.value = parseExpr();
    if (!def.value)
      return nullptr;
    decl->defs.push_back(std::move(def));
  } while (consumeIf(tok_comma));
  return decl;
}

/// constDecl ::= 'const' ident '=' expr
MemberPtr Parser::parseConst() {
  llvm::SMLoc start = tok.getLoc();
  consume();
  auto decl = std::make_unique<ConstDecl>(rangeFrom(start, start));
  if (!expectIdent(decl->name, "a constant name") || !expect(tok_equal, "after the constant name"))
    return nullptr;
  decl->value = parseExpr();
  if (!decl->value)
    return nullptr;
  return decl;
}

/// varDecl ::= ('input' | 'state' | 'param' | 'mask') ident (',' ident)* ':' type init? 'shared'?
///
/// `shared` is not a keyword: an identifier spelled so, on the declaration's line.
MemberPtr Parser::parseVarDecl() {
  llvm::SMLoc start = tok.getLoc();
  Member::Kind kind = tok.is(kw_input)   ? Member::Member_Input
                      : tok.is(kw_state) ? Member::Member_State
                      : tok.is(kw_mask)  ? Member::Member_Mask
                                         : Member::Member_Param;
  consume();
  auto decl = std::make_unique<VarDecl>(kind, rangeFrom(start, start));
  do {
    Ident name;
    if (!expectIdent(name, "a name"))
      return nullptr;
    decl->names.push_back(name);
  } while (consumeIf(tok_comma));
  if (!expect(tok_colon, "and a type after the name"))
    return nullptr;
  if (!parseType(decl->type))
    return nullptr;
  if (tok.is(tok_equal) || tok.is(tok_tilde)) {
    if (!parseInit(decl->init))
      return nullptr;
  }
  if (tok.is(tok_identifier) && tok.text == "shared" && !tok.atStartOfLine) {
    decl->shared = tok.getRange();
    consume();
  }
  return decl;
}

/// type ::= 'int' | '[' (expr (',' expr)*)? ']'
bool Parser::parseType(TypeSpec &type) {
  llvm::SMLoc start = tok.getLoc();
  if (consumeIf(kw_int)) {
    type.isInt = true;
    type.range = rangeFrom(start, prevEnd());
    return true;
  }
  if (!tok.is(tok_lbracket)) {
    errorExpected("a type: '[dims...]' or 'int'");
    return false;
  }
  consume();
  if (!tok.is(tok_rbracket)) {
    do {
      ExprPtr dim = parseExpr();
      if (!dim)
        return false;
      type.dims.push_back(std::move(dim));
    } while (consumeIf(tok_comma));
  }
  if (!expect(tok_rbracket, "to close the shape"))
    return false;
  type.range = rangeFrom(start, prevEnd());
  return true;
}

/// init ::= '=' expr | '~' expr
bool Parser::parseInit(std::optional<InitSpec> &init) {
  llvm::SMLoc start = tok.getLoc();
  InitSpec spec;
  spec.isDistribution = tok.is(tok_tilde);
  consume();
  spec.value = parseExpr();
  if (!spec.value)
    return false;
  spec.range = rangeFrom(start, prevEnd());
  init = std::move(spec);
  return true;
}

/// linearDecl ::= 'linear' ident ':' expr '->' expr 'nobias'? init?
MemberPtr Parser::parseLinear() {
  llvm::SMLoc start = tok.getLoc();
  consume();
  auto decl = std::make_unique<LinearDecl>(rangeFrom(start, start));
  if (!expectIdent(decl->name, "a layer name") || !expect(tok_colon, "after the layer name"))
    return nullptr;
  decl->inDim = parseExpr();
  if (!decl->inDim || !expect(tok_arrow, "between the input and output sizes"))
    return nullptr;
  decl->outDim = parseExpr();
  if (!decl->outDim)
    return nullptr;
  if (consumeIf(kw_nobias))
    decl->hasBias = false;
  if ((tok.is(tok_equal) || tok.is(tok_tilde)) && !parseInit(decl->init))
    return nullptr;
  return decl;
}

/// embeddingDecl ::= 'embedding' ident ':' expr '->' expr init?
MemberPtr Parser::parseEmbedding() {
  llvm::SMLoc start = tok.getLoc();
  consume();
  auto decl = std::make_unique<EmbeddingDecl>(rangeFrom(start, start));
  if (!expectIdent(decl->name, "an embedding name") ||
      !expect(tok_colon, "after the embedding name"))
    return nullptr;
  decl->count = parseExpr();
  if (!decl->count || !expect(tok_arrow, "between the vocabulary size and the width"))
    return nullptr;
  decl->width = parseExpr();
  if (!decl->width)
    return nullptr;
  if ((tok.is(tok_equal) || tok.is(tok_tilde)) && !parseInit(decl->init))
    return nullptr;
  return decl;
}

/// layerDecl ::= 'layer' ident ':' ident '(' (expr (',' expr)*)? ')'
MemberPtr Parser::parseLayer() {
  llvm::SMLoc start = tok.getLoc();
  consume();
  auto decl = std::make_unique<LayerDecl>(rangeFrom(start, start));
  if (!expectIdent(decl->name, "a layer name") || !expect(tok_colon, "after the layer name") ||
      !expectIdent(decl->cell, "a cell name") ||
      !expect(tok_lparen, "after the cell name (pass the cell's dimensions)"))
    return nullptr;
  if (!tok.is(tok_rparen)) {
    do {
      ExprPtr arg = parseExpr();
      if (!arg)
        return nullptr;
      decl->dimArgs.push_back(std::move(arg));
    } while (consumeIf(tok_comma));
  }
  if (!expect(tok_rparen, "to close the cell's dimension arguments"))
    return nullptr;
  return decl;
}

/// stepBlock ::= 'step' '{' equation* '}'
bool Parser::parseStep(Unit &unit) {
  llvm::SMLoc stepLoc = tok.getLoc();
  if (unit.hasStep) {
    diags.error(stepLoc, "'" + unit.name.name + "' has more than one step block", {tok.getRange()});
    diags.note(unit.stepLoc, "the first step block is here");
  }
  unit.hasStep = true;
  unit.stepLoc = stepLoc;
  consume();
  if (!expect(tok_lbrace, "after 'step'"))
    return false;
  while (!tok.is(tok_rbrace) && !tok.is(tok_eof) && !diags.limitReached()) {
    if (tok.is(kw_network) || tok.is(kw_cell)) {
      errorExpected("'}' to close the step block");
      return false;
    }
    if (startsMember(tok.kind)) {
      diags.error(tok.getLoc(),
                  "declarations cannot appear inside a step block; move it above 'step'",
                  {tok.getRange()});
      skipToEquation(tok.getLoc());
      continue;
    }
    llvm::SMLoc start = tok.getLoc();
    if (!parseEquation(unit))
      skipToEquation(start);
  }
  return expect(tok_rbrace, "to close the step block");
}

/// equation ::= ('output' ident | ident '\''?) '=' expr ';'?
bool Parser::parseEquation(Unit &unit) {
  Equation eq;
  llvm::SMLoc start = tok.getLoc();
  if (consumeIf(kw_output))
    eq.kind = Equation::Output;
  if (!expectIdent(eq.target,
                   eq.kind == Equation::Output ? "an output name" : "an equation ('name = expr')"))
    return false;
  if (tok.is(tok_prime)) {
    if (eq.kind == Equation::Output) {
      diags.error(tok.getLoc(), "an output cannot be a state update", {tok.getRange()});
      return false;
    }
    eq.kind = Equation::StateUpdate;
    consume();
  }
  if (!expect(tok_equal, "in the equation"))
    return false;
  eq.value = parseExpr();
  if (!eq.value)
    return false;
  eq.range = rangeFrom(start, prevEnd());
  if (!consumeIf(tok_semicolon) && !tok.atStartOfLine && !tok.is(tok_rbrace)) {
    errorExpected("a new line or ';' after the equation");
    return false;
  }
  unit.step.push_back(std::move(eq));
  return true;
}

ExprPtr Parser::checkDepth(ExprPtr expr, unsigned childDepth) {
  if (!expr)
    return nullptr;
  expr->setDepth(childDepth + 1);
  if (childDepth + 1 > maxDepth) {
    diags.error(expr->getLoc(), "expression is nested too deeply (more than " +
                                    llvm::Twine(maxDepth) +
                                    " levels; each operator of a chain such as a + b + c is one)");
    return nullptr;
  }
  return expr;
}

/// expr ::= additive
ExprPtr Parser::parseExpr() {
  RecursionGuard guard(recursion);
  if (recursion > maxDepth) {
    diags.error(tok.getLoc(),
                "expression is nested too deeply (more than " + llvm::Twine(maxDepth) + " levels)");
    return nullptr;
  }
  return parseAdditive();
}

/// additive ::= multiplicative (('+' | '-') multiplicative)*
ExprPtr Parser::parseAdditive() {
  ExprPtr lhs = parseMultiplicative();
  while (lhs && (tok.is(tok_plus) || tok.is(tok_minus))) {
    char op = tok.text[0];
    llvm::SMLoc opLoc = tok.getLoc();
    consume();
    ExprPtr rhs = parseMultiplicative();
    if (!rhs)
      return nullptr;
    unsigned depth = std::max(lhs->getDepth(), rhs->getDepth());
    llvm::SMRange range(lhs->getRange().Start, rhs->getRange().End);
    lhs = checkDepth(std::make_unique<BinaryExpr>(range, op, opLoc, std::move(lhs), std::move(rhs)),
                     depth);
  }
  return lhs;
}

/// multiplicative ::= unary (('*' | '/' | '@') unary)*
ExprPtr Parser::parseMultiplicative() {
  ExprPtr lhs = parseUnary();
  while (lhs && (tok.is(tok_star) || tok.is(tok_slash) || tok.is(tok_at))) {
    char op = tok.text[0];
    llvm::SMLoc opLoc = tok.getLoc();
    consume();
    ExprPtr rhs = parseUnary();
    if (!rhs)
      return nullptr;
    unsigned depth = std::max(lhs->getDepth(), rhs->getDepth());
    llvm::SMRange range(lhs->getRange().Start, rhs->getRange().End);
    lhs = checkDepth(std::make_unique<BinaryExpr>(range, op, opLoc, std::move(lhs), std::move(rhs)),
                     depth);
  }
  return lhs;
}

/// unary ::= '-' unary | postfix
ExprPtr Parser::parseUnary() {
  if (!tok.is(tok_minus))
    return parsePostfix();
  RecursionGuard guard(recursion);
  if (recursion > maxDepth) {
    diags.error(tok.getLoc(),
                "expression is nested too deeply (more than " + llvm::Twine(maxDepth) + " levels)");
    return nullptr;
  }
  llvm::SMLoc start = tok.getLoc();
  consume();
  ExprPtr operand = parseUnary();
  if (!operand)
    return nullptr;
  unsigned depth = operand->getDepth();
  llvm::SMRange range(start, operand->getRange().End);
  return checkDepth(std::make_unique<UnaryExpr>(range, '-', std::move(operand)), depth);
}

/// postfix ::= primary ('(' (expr (',' expr)*)? ')' | '[' slice (',' slice)* ']' | '.' ident)*
/// A '(' or '[' that starts a new line does not continue the expression.
ExprPtr Parser::parsePostfix() {
  ExprPtr expr = parsePrimary();
  while (expr) {
    llvm::SMLoc start = expr->getRange().Start;
    if (tok.is(tok_lparen) && !tok.atStartOfLine) {
      llvm::SMLoc open = tok.getLoc();
      consume();
      std::vector<ExprPtr> args;
      unsigned depth = expr->getDepth();
      if (!tok.is(tok_rparen)) {
        do {
          ExprPtr arg = parseExpr();
          if (!arg)
            return nullptr;
          depth = std::max(depth, arg->getDepth());
          args.push_back(std::move(arg));
        } while (consumeIf(tok_comma));
      }
      if (!expect(tok_rparen, "to close the argument list")) {
        diags.note(open, "to match this '('");
        return nullptr;
      }
      expr = checkDepth(
          std::make_unique<CallExpr>(rangeFrom(start, prevEnd()), std::move(expr), std::move(args)),
          depth);
    } else if (tok.is(tok_lbracket) && !tok.atStartOfLine) {
      llvm::SMLoc open = tok.getLoc();
      consume();
      std::vector<Slice> slices;
      unsigned depth = expr->getDepth();
      do {
        Slice slice;
        if (!parseSlice(slice))
          return nullptr;
        if (slice.lo)
          depth = std::max(depth, slice.lo->getDepth());
        if (slice.hi)
          depth = std::max(depth, slice.hi->getDepth());
        slices.push_back(std::move(slice));
      } while (consumeIf(tok_comma));
      if (!expect(tok_rbracket, "to close the index")) {
        diags.note(open, "to match this '['");
        return nullptr;
      }
      expr = checkDepth(std::make_unique<IndexExpr>(rangeFrom(start, prevEnd()), std::move(expr),
                                                    std::move(slices)),
                        depth);
    } else if (tok.is(tok_prime)) {
      diags.error(tok.getLoc(),
                  "the new value of a state cannot be read in an expression; give it a name "
                  "(hn = ...; h' = hn) and use that",
                  {tok.getRange()});
      return nullptr;
    } else if (tok.is(tok_dot)) {
      consume();
      Ident member;
      if (!expectIdent(member, "a member name after '.'"))
        return nullptr;
      unsigned depth = expr->getDepth();
      expr = checkDepth(std::make_unique<MemberExpr>(rangeFrom(start, prevEnd()), std::move(expr),
                                                     member.name, member.range),
                        depth);
    } else {
      break;
    }
  }
  return expr;
}

/// slice ::= expr | expr? ':' expr?
bool Parser::parseSlice(Slice &slice) {
  llvm::SMLoc start = tok.getLoc();
  if (!tok.is(tok_colon)) {
    slice.lo = parseExpr();
    if (!slice.lo)
      return false;
  }
  if (consumeIf(tok_colon)) {
    slice.isRange = true;
    if (!tok.is(tok_comma) && !tok.is(tok_rbracket)) {
      slice.hi = parseExpr();
      if (!slice.hi)
        return false;
    }
  } else {
    slice.isRange = false;
  }
  slice.range = rangeFrom(start, prevEnd());
  return true;
}

/// primary ::= number | ident | '(' expr ')'
ExprPtr Parser::parsePrimary() {
  switch (tok.kind) {
  case tok_integer:
  case tok_real: return parseNumber();
  case tok_identifier: {
    auto expr = std::make_unique<NameExpr>(tok.getRange(), tok.text);
    consume();
    return expr;
  }
  case tok_lparen: {
    llvm::SMLoc open = tok.getLoc();
    consume();
    ExprPtr inner = parseExpr();
    if (!inner)
      return nullptr;
    if (!tok.is(tok_rparen)) {
      errorExpected("')' to close the parenthesis");
      diags.note(open, "to match this '('");
      return nullptr;
    }
    consume();
    return inner;
  }
  default:
    if (tok.isKeyword() && !tok.is(tok_error))
      diags.error(tok.getLoc(),
                  llvm::Twine("expected an expression, found keyword '") + tok.text + "'",
                  {tok.getRange()});
    else
      errorExpected("an expression");
    return nullptr;
  }
}

/// number ::= integer | real   (see the lexer for the spelling)
ExprPtr Parser::parseNumber() {
  Token numTok = tok;
  consume();
  std::string text = numTok.text.str();
  if (numTok.is(tok_integer)) {
    int64_t value = 0;
    if (numTok.text.getAsInteger(10, value)) {
      diags.error(numTok.getLoc(), "integer literal is too large (the limit is 2^63-1)",
                  {numTok.getRange()});
      return nullptr;
    }
    return std::make_unique<NumberExpr>(numTok.getRange(), static_cast<double>(value), value);
  }
  errno = 0;
  double value = std::strtod(text.c_str(), nullptr);
  // ERANGE also flags subnormal results, which are finite doubles and fine; only infinity and a
  // nonzero literal that rounds to 0 are refused.
  if (std::isinf(value)) {
    diags.error(numTok.getLoc(), "number is out of range for a 64-bit float", {numTok.getRange()});
    return nullptr;
  }
  if (errno == ERANGE && value == 0.0) {
    diags.error(numTok.getLoc(), "number is too small for a 64-bit float (it would round to 0)",
                {numTok.getRange()});
    return nullptr;
  }
  return std::make_unique<NumberExpr>(numTok.getRange(), value, std::nullopt);
}
