//===- Examples.cpp - Where the tool finds the example specs ---------------===//
//
// The example specs live in <prefix>/share/dopa/examples, beside the tool's bin/ folder, in an
// install and in the build tree alike (examples/CMakeLists.txt copies them there), so the tool
// never depends on the path of the machine it was built on. DOPA_EXAMPLES_DIR overrides the
// location.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

using namespace dopa;
namespace fs = std::filesystem;

namespace {

/// The folder holding <task>/<variant>.dopa; throws naming the places looked at.
fs::path examplesRoot() {
  if (const char *env = std::getenv("DOPA_EXAMPLES_DIR"); env && *env) {
    if (!fs::is_directory(env))
      throw std::runtime_error(std::string("DOPA_EXAMPLES_DIR=") + env + " is not a folder");
    return env;
  }
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  fs::path root = exe.parent_path().parent_path() / "share" / "dopa" / "examples";
  if (ec || !fs::is_directory(root))
    throw std::runtime_error("cannot find the example specs (looked in " + root.string() +
                             "); set DOPA_EXAMPLES_DIR or pass --spec FILE");
  return root;
}

} // namespace

std::string tool::exampleDir(const std::string &task) { return (examplesRoot() / task).string(); }

std::string tool::exampleSpecPath(const std::string &task, const std::string &variant) {
  return (examplesRoot() / task / (variant + ".dopa")).string();
}
