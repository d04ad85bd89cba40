//===- TestUtil.cpp - Helpers shared by the front-end unit tests ----------===//
//
// Reading files of the source tree for tests.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

std::string dopa::test::readSourceFile(const std::string &relativePath) {
  std::ifstream in(std::string(DOPA_SOURCE_DIR) + "/" + relativePath, std::ios::binary);
  if (!in)
    throw std::runtime_error("cannot read " + relativePath);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
