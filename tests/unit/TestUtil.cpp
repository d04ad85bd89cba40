//===- TestUtil.cpp - Helpers shared by the front-end unit tests ----------===//
//
// Reading files of the source tree, and scratch folders, for tests.
//
//===----------------------------------------------------------------------===//
#include "TestUtil.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unistd.h>

std::string dopa::test::readSourceFile(const std::string &relativePath) {
  std::ifstream in(std::string(DOPA_SOURCE_DIR) + "/" + relativePath, std::ios::binary);
  if (!in)
    throw std::runtime_error("cannot read " + relativePath);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string dopa::test::scratchDir(const std::string &name) {
  namespace fs = std::filesystem;
  fs::path dir =
      fs::temp_directory_path() / "dopa-unit-tests" / (name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}
