//===- Lexer.cpp - Lexer for dopa spec files ------------------------------===//
//
// Implements the lexer: identifiers and keywords, integer and real literals (with range checks),
// strings (for `include`), punctuation, `#` line comments, and byte-level validation of the file.
//
//===----------------------------------------------------------------------===//
#include "dopa/dsl/Lexer.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringSwitch.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

using namespace dopa;

const char *dopa::tokenKindName(TokenKind kind) {
  switch (kind) {
  case tok_eof: return "end of file";
  case tok_error: return "invalid token";
  case tok_identifier: return "identifier";
  case tok_integer: return "integer";
  case tok_real: return "number";
  case tok_string: return "string";
  case kw_network: return "'network'";
  case kw_cell: return "'cell'";
  case kw_include: return "'include'";
  case kw_dims: return "'dims'";
  case kw_const: return "'const'";
  case kw_input: return "'input'";
  case kw_state: return "'state'";
  case kw_param: return "'param'";
  case kw_mask: return "'mask'";
  case kw_linear: return "'linear'";
  case kw_embedding: return "'embedding'";
  case kw_layer: return "'layer'";
  case kw_step: return "'step'";
  case kw_output: return "'output'";
  case kw_nobias: return "'nobias'";
  case kw_int: return "'int'";
  case tok_lbrace: return "'{'";
  case tok_rbrace: return "'}'";
  case tok_lparen: return "'('";
  case tok_rparen: return "')'";
  case tok_lbracket: return "'['";
  case tok_rbracket: return "']'";
  case tok_comma: return "','";
  case tok_colon: return "':'";
  case tok_semicolon: return "';'";
  case tok_equal: return "'='";
  case tok_tilde: return "'~'";
  case tok_arrow: return "'->'";
  case tok_prime: return "'''";
  case tok_plus: return "'+'";
  case tok_minus: return "'-'";
  case tok_star: return "'*'";
  case tok_slash: return "'/'";
  case tok_at: return "'@'";
  case tok_dot: return "'.'";
  }
  return "token";
}

Lexer::Lexer(DiagnosticEngine &diags, unsigned bufferId) : diags(diags) {
  const llvm::MemoryBuffer *buf = diags.getSourceMgr().getMemoryBuffer(bufferId);
  bufStart = buf->getBufferStart();
  bufEnd = buf->getBufferEnd();
  cur = bufStart;
  // Skip a UTF-8 byte order mark.
  if (bufEnd - cur >= 3 && llvm::StringRef(cur, 3) == "\xEF\xBB\xBF")
    cur += 3;
}

Token Lexer::makeToken(TokenKind kind, const char *start) {
  Token tok;
  tok.kind = kind;
  tok.text = llvm::StringRef(start, cur - start);
  tok.atStartOfLine = sawNewline;
  sawNewline = false;
  return tok;
}

static bool isIdentStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
static bool isDigit(char c) { return c >= '0' && c <= '9'; }
static bool isIdentChar(char c) { return isIdentStart(c) || isDigit(c); }

bool Lexer::skipUtf8() {
  auto byte = [&](const char *p) { return static_cast<unsigned char>(*p); };
  unsigned char c = byte(cur);
  int len = 0;
  uint32_t min = 0;
  uint32_t cp = 0;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return false;
  }
  if (bufEnd - cur < len)
    return false;
  for (int i = 1; i < len; ++i) {
    if ((byte(cur + i) & 0xC0) != 0x80)
      return false;
    cp = (cp << 6) | (byte(cur + i) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
    return false;
  cur += len;
  return true;
}

void Lexer::skipBadRun(const char *start) {
  // One diagnostic for a run of bad bytes: skip to the next ASCII byte or valid sequence.
  cur = start + 1;
  while (cur < bufEnd && static_cast<unsigned char>(*cur) >= 0x80) {
    const char *at = cur;
    if (skipUtf8()) {
      cur = at;
      return;
    }
    cur = at + 1;
  }
}

/// A control character that is not white space (tab, CR, form feed, vertical tab, newline).
static bool isBadControl(char c) {
  auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t' && c != '\r' && c != '\n' && c != '\f' && c != '\v') || u == 0x7F;
}

static std::string controlByteText(char c) {
  return "(byte 0x" + llvm::utohexstr(static_cast<unsigned char>(c)) + ")";
}

void Lexer::skipComment() {
  // `#` to the end of the line; any valid UTF-8 is allowed inside, but no control character.
  while (cur < bufEnd && *cur != '\n') {
    if (*cur == '\0') {
      diags.error(llvm::SMLoc::getFromPointer(cur), "null character in file");
      ++cur;
    } else if (isBadControl(*cur)) {
      diags.error(llvm::SMLoc::getFromPointer(cur),
                  "control character in comment " + controlByteText(*cur));
      ++cur;
    } else if (static_cast<unsigned char>(*cur) >= 0x80) {
      const char *start = cur;
      if (!skipUtf8()) {
        diags.error(llvm::SMLoc::getFromPointer(start), "invalid UTF-8 in comment");
        skipBadRun(start);
      }
    } else {
      ++cur;
    }
  }
}

Token Lexer::lex() {
  while (true) {
    if (cur >= bufEnd) {
      Token tok = makeToken(tok_eof, bufEnd);
      tok.atStartOfLine = true;
      return tok;
    }
    char c = *cur;
    if (c == '\n') {
      sawNewline = true;
      ++cur;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
      ++cur;
      continue;
    }
    if (c == '#') {
      skipComment();
      continue;
    }
    const char *start = cur;
    if (isIdentStart(c))
      return lexIdentifier(start);
    if (isDigit(c) || (c == '.' && cur + 1 < bufEnd && isDigit(cur[1])))
      return lexNumber(start);
    if (c == '"')
      return lexString(start);
    ++cur;
    switch (c) {
    case '{': return makeToken(tok_lbrace, start);
    case '}': return makeToken(tok_rbrace, start);
    case '(': return makeToken(tok_lparen, start);
    case ')': return makeToken(tok_rparen, start);
    case '[': return makeToken(tok_lbracket, start);
    case ']': return makeToken(tok_rbracket, start);
    case ',': return makeToken(tok_comma, start);
    case ':': return makeToken(tok_colon, start);
    case ';': return makeToken(tok_semicolon, start);
    case '=': return makeToken(tok_equal, start);
    case '~': return makeToken(tok_tilde, start);
    case '\'': return makeToken(tok_prime, start);
    case '+': return makeToken(tok_plus, start);
    case '*': return makeToken(tok_star, start);
    case '/': return makeToken(tok_slash, start);
    case '@': return makeToken(tok_at, start);
    case '.': return makeToken(tok_dot, start);
    case '-':
      if (cur < bufEnd && *cur == '>') {
        ++cur;
        return makeToken(tok_arrow, start);
      }
      return makeToken(tok_minus, start);
    default: break;
    }
    // Invalid byte(s): diagnose once per run of bad bytes and carry on.
    llvm::SMLoc loc = llvm::SMLoc::getFromPointer(start);
    if (c == '\0') {
      diags.error(loc, "null character in file");
    } else if (static_cast<unsigned char>(c) >= 0x80) {
      cur = start;
      if (skipUtf8())
        diags.error(loc, "non-ASCII character outside a comment or string",
                    {llvm::SMRange(loc, llvm::SMLoc::getFromPointer(cur))});
      else {
        diags.error(loc, "invalid UTF-8 byte sequence");
        skipBadRun(start);
      }
    } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) {
      diags.error(loc, "unexpected control character (byte 0x" +
                           llvm::utohexstr(static_cast<unsigned char>(c)) + ")");
    } else {
      diags.error(loc, llvm::Twine("unexpected character '") + llvm::StringRef(start, 1) + "'");
    }
    return makeToken(tok_error, start);
  }
}

Token Lexer::lexIdentifier(const char *start) {
  while (cur < bufEnd && isIdentChar(*cur))
    ++cur;
  llvm::StringRef text(start, cur - start);
  TokenKind kind = llvm::StringSwitch<TokenKind>(text)
                       .Case("network", kw_network)
                       .Case("cell", kw_cell)
                       .Case("include", kw_include)
                       .Case("dims", kw_dims)
                       .Case("const", kw_const)
                       .Case("input", kw_input)
                       .Case("state", kw_state)
                       .Case("param", kw_param)
                       .Case("mask", kw_mask)
                       .Case("linear", kw_linear)
                       .Case("embedding", kw_embedding)
                       .Case("layer", kw_layer)
                       .Case("step", kw_step)
                       .Case("output", kw_output)
                       .Case("nobias", kw_nobias)
                       .Case("int", kw_int)
                       .Default(tok_identifier);
  return makeToken(kind, start);
}

/// number ::= digits ('.' digits?)? exponent? | '.' digits exponent?
/// exponent ::= ('e'|'E') ('+'|'-')? digits
Token Lexer::lexNumber(const char *start) {
  bool isReal = false;
  while (cur < bufEnd && isDigit(*cur))
    ++cur;
  if (cur < bufEnd && *cur == '.') {
    isReal = true;
    ++cur;
    while (cur < bufEnd && isDigit(*cur))
      ++cur;
  }
  if (cur < bufEnd && (*cur == 'e' || *cur == 'E')) {
    isReal = true;
    ++cur;
    if (cur < bufEnd && (*cur == '+' || *cur == '-'))
      ++cur;
    if (cur >= bufEnd || !isDigit(*cur)) {
      while (cur < bufEnd && isIdentChar(*cur))
        ++cur;
      diags.error(
          llvm::SMLoc::getFromPointer(start), "malformed number: exponent has no digits",
          {llvm::SMRange(llvm::SMLoc::getFromPointer(start), llvm::SMLoc::getFromPointer(cur))});
      return makeToken(tok_error, start);
    }
    while (cur < bufEnd && isDigit(*cur))
      ++cur;
  }
  if (cur < bufEnd && isIdentStart(*cur)) {
    while (cur < bufEnd && isIdentChar(*cur))
      ++cur;
    diags.error(
        llvm::SMLoc::getFromPointer(start), "malformed number: letters after the digits",
        {llvm::SMRange(llvm::SMLoc::getFromPointer(start), llvm::SMLoc::getFromPointer(cur))});
    return makeToken(tok_error, start);
  }
  return makeToken(isReal ? tok_real : tok_integer, start);
}

/// string ::= '"' (any byte but '"', '\\', newline | '\\' ('"' | '\\'))* '"'
Token Lexer::lexString(const char *start) {
  ++cur;            // opening quote
  bool bad = false; // reported here; the token becomes tok_error so nothing echoes the bytes
  while (cur < bufEnd && *cur != '"' && *cur != '\n') {
    if (*cur == '\\' && cur + 1 < bufEnd && (cur[1] == '"' || cur[1] == '\\')) {
      cur += 2;
    } else if (*cur == '\0') {
      diags.error(llvm::SMLoc::getFromPointer(cur), "null character in string");
      bad = true;
      ++cur;
    } else if (isBadControl(*cur) || *cur == '\r') {
      diags.error(llvm::SMLoc::getFromPointer(cur),
                  "control character in string " + controlByteText(*cur));
      bad = true;
      ++cur;
    } else if (static_cast<unsigned char>(*cur) >= 0x80) {
      const char *at = cur;
      if (!skipUtf8()) {
        diags.error(llvm::SMLoc::getFromPointer(at), "invalid UTF-8 in string");
        bad = true;
        cur = at + 1;
      }
    } else {
      ++cur;
    }
  }
  if (cur >= bufEnd || *cur != '"') {
    diags.error(llvm::SMLoc::getFromPointer(start), "unterminated string");
    return makeToken(tok_error, start);
  }
  ++cur;
  return makeToken(bad ? tok_error : tok_string, start);
}

std::vector<Token> Lexer::lexAll() {
  std::vector<Token> tokens;
  while (true) {
    tokens.push_back(lex());
    if (tokens.back().is(tok_eof))
      return tokens;
  }
}
