//===- FileIOTest.cpp - Outputs never destroy anything --------------------===//
//
// writeFileAtomically by what is at the path: a regular file replaced with its mode kept, a link
// kept a link, a FIFO written through and still a FIFO, /dev/fd/N written to the descriptor, a
// directory refused, the temporaries of dead runs swept away; and checkOutputIsNotInput, which
// refuses an output naming an input.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/FileIO.h"

#include "TestUtil.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace dopa;
namespace fs = std::filesystem;

namespace {
/// An empty folder of its own for one test case (the cases may run in parallel).
fs::path freshDir(const std::string &name) { return test::scratchDir("fileio-" + name); }

std::string readAll(const fs::path &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream contents;
  contents << in.rdbuf();
  return contents.str();
}

void writeRaw(const fs::path &path, const std::string &text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

/// The permission bits of `path` (0 when it cannot be read).
unsigned modeOf(const fs::path &path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0)
    return 0;
  return st.st_mode & 07777;
}

/// What writeFileAtomically throws; "" when it succeeds.
std::string writeError(const fs::path &path, const std::string &bytes) {
  try {
    writeFileAtomically(path.string(), bytes);
  } catch (const FileWriteError &e) {
    return e.what();
  }
  return "";
}

/// The names in `dir` that look like temporaries.
std::vector<std::string> temporaries(const fs::path &dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry &entry : fs::directory_iterator(dir))
    if (entry.path().filename().string().find(".tmp-") != std::string::npos)
      names.push_back(entry.path().filename().string());
  return names;
}

/// The message checkOutputIsNotInput throws; "" when it passes.
std::string clobberError(const fs::path &output, const std::vector<std::string> &inputs) {
  try {
    checkOutputIsNotInput(output.string(), inputs, "--out");
  } catch (const OutputIsInputError &e) {
    return e.what();
  }
  return "";
}
} // namespace

TEST_CASE("a regular file is replaced and keeps its mode") {
  fs::path dir = freshDir("regular");
  fs::path file = dir / "out.st";
  writeRaw(file, "old");
  REQUIRE(::chmod(file.c_str(), 0600) == 0);
  CHECK(writeError(file, "new contents") == "");
  CHECK(readAll(file) == "new contents");
  CHECK(modeOf(file) == 0600u);
  REQUIRE(::chmod(file.c_str(), 0640) == 0);
  CHECK(writeError(file, "again") == "");
  CHECK(readAll(file) == "again");
  CHECK(modeOf(file) == 0640u);
  CHECK(temporaries(dir).empty());
}

TEST_CASE("a new file gets 0644 less the umask") {
  fs::path dir = freshDir("new");
  mode_t mask = ::umask(0);
  ::umask(mask);
  CHECK(writeError(dir / "new.st", "x") == "");
  CHECK(readAll(dir / "new.st") == "x");
  CHECK(modeOf(dir / "new.st") == (0644u & ~unsigned(mask)));
}

TEST_CASE("a failed write names the path and leaves nothing behind") {
  fs::path dir = freshDir("failed");
  std::string error = writeError(dir / "missing" / "x.st", "x");
  CHECK(error.find("x.st: cannot write: No such file or directory") != std::string::npos);
  CHECK_THROWS_AS(writeFileAtomically((dir / "missing" / "x.st").string(), "x"), DataError);
  CHECK(temporaries(dir).empty());
}

TEST_CASE("a symbolic link stays a link; the file it points to is written") {
  fs::path dir = freshDir("symlink");
  writeRaw(dir / "target.st", "old");
  fs::create_symlink("target.st", dir / "link.st");
  CHECK(writeError(dir / "link.st", "new") == "");
  CHECK(fs::is_symlink(dir / "link.st"));
  CHECK(readAll(dir / "target.st") == "new");
  // A link to a link.
  fs::create_symlink("link.st", dir / "link2.st");
  CHECK(writeError(dir / "link2.st", "two") == "");
  CHECK(fs::is_symlink(dir / "link2.st"));
  CHECK(fs::is_symlink(dir / "link.st"));
  CHECK(readAll(dir / "target.st") == "two");
  // A dangling link: the file it names is created.
  fs::create_symlink("created.st", dir / "dangling.st");
  CHECK(writeError(dir / "dangling.st", "made") == "");
  CHECK(fs::is_symlink(dir / "dangling.st"));
  CHECK(readAll(dir / "created.st") == "made");
  CHECK(temporaries(dir).empty());
}

TEST_CASE("a FIFO is written through and stays a FIFO") {
  fs::path dir = freshDir("fifo");
  fs::path fifo = dir / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  SUBCASE("with a reader") {
    // The reader's end is opened first, without blocking, and read after the write returns: the
    // bytes fit in the pipe's buffer, so no thread is needed and nothing can hang.
    int readFd = ::open(fifo.c_str(), O_RDONLY | O_NONBLOCK);
    REQUIRE(readFd >= 0);
    CHECK(writeError(fifo, "through the pipe") == "");
    std::string got;
    char buf[256];
    for (ssize_t n = ::read(readFd, buf, sizeof buf); n > 0; n = ::read(readFd, buf, sizeof buf))
      got.append(buf, size_t(n));
    ::close(readFd);
    CHECK(got == "through the pipe");
  }
  SUBCASE("without a reader: an error, not a hang") {
    CHECK(writeError(fifo, "x").find(": a FIFO with no reader") != std::string::npos);
  }
  CHECK(fs::is_fifo(fifo));
  CHECK(temporaries(dir).empty());
}

TEST_CASE("/dev/fd/N is written to the open descriptor, as a redirection") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  CHECK(writeError("/dev/fd/" + std::to_string(fds[1]), "to the descriptor") == "");
  ::close(fds[1]);
  std::string got;
  char buf[64];
  for (ssize_t n = ::read(fds[0], buf, sizeof buf); n > 0; n = ::read(fds[0], buf, sizeof buf))
    got.append(buf, size_t(n));
  ::close(fds[0]);
  CHECK(got == "to the descriptor");
}

TEST_CASE("a directory is refused") {
  fs::path dir = freshDir("directory");
  fs::create_directories(dir / "sub" / "child");
  CHECK(writeError(dir / "sub", "x").find("sub: is a directory") != std::string::npos);
  CHECK(fs::is_directory(dir / "sub" / "child"));
  CHECK(temporaries(dir).empty());
}

TEST_CASE("the temporaries of dead runs are removed, no others") {
  fs::path dir = freshDir("stale");
  writeRaw(dir / ".x.st.tmp-999999999-0", "stale: no process has that id");
  writeRaw(dir / ".x.st.tmp-1-0", "pid 1 always runs");
  writeRaw(dir / ".x.st.tmp-notapid", "not a temporary");
  writeRaw(dir / ".y.st.tmp-999999999-0", "another file's");
  CHECK(writeError(dir / "x.st", "x") == "");
  CHECK(!fs::exists(dir / ".x.st.tmp-999999999-0"));
  CHECK(fs::exists(dir / ".x.st.tmp-1-0"));
  CHECK(fs::exists(dir / ".x.st.tmp-notapid"));
  CHECK(fs::exists(dir / ".y.st.tmp-999999999-0"));
  CHECK(readAll(dir / "x.st") == "x");
}

TEST_CASE("checkOutputIsNotInput refuses an output that names an input") {
  fs::path dir = freshDir("clobber");
  writeRaw(dir / "spec.dopa", "network N {}");
  fs::create_symlink("spec.dopa", dir / "alias.dopa");
  std::vector<std::string> inputs = {(dir / "spec.dopa").string(), (dir / "p.st").string()};
  CHECK(clobberError(dir / "out.st", inputs) == "");
  CHECK(clobberError("-", inputs) == "");
  CHECK(clobberError("", inputs) == "");
  CHECK(clobberError(dir / "spec.dopa", inputs) == "--out names an input file (" + inputs[0] + ")");
  CHECK(clobberError(dir / "." / "spec.dopa", inputs) != "");
  CHECK(clobberError(dir / "alias.dopa", inputs) != ""); // a link to the spec
  // Neither exists: the same path, spelled differently.
  CHECK(clobberError(dir / "sub" / ".." / "p.st", inputs) ==
        "--out names an input file (" + inputs[1] + ")");
  CHECK(isSameFile((dir / "spec.dopa").string(), (dir / "alias.dopa").string()));
  CHECK(!isSameFile((dir / "spec.dopa").string(), (dir / "p.st").string()));
}

TEST_CASE("writeProblem says in advance what writeFileAtomically would refuse, and only that") {
  fs::path dir = freshDir("write-problem");
  CHECK(writeProblem((dir / "new.st").string()).empty());
  CHECK(writeProblem((dir / "no-folder" / "x.st").string()) ==
        "the folder " + (dir / "no-folder").string() + " does not exist");
  CHECK(writeProblem(dir.string()) == "is a directory");
  CHECK(writeProblem("/dev/stdout").empty());
  CHECK(writeProblem("/dev/null").empty());
  CHECK(writeProblem("/proc/self/fd/2").empty());
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
  CHECK(writeProblem((dir / "fifo").string()).empty());
  // A link is judged by where it points: the folder of its target, not its own.
  fs::create_directories(dir / "links");
  fs::create_symlink(dir / "gone" / "x.st", dir / "links" / "to-gone");
  CHECK(writeProblem((dir / "links" / "to-gone").string()) ==
        "the folder " + (dir / "gone").string() + " does not exist");
  fs::create_symlink(dir / "new.st", dir / "links" / "to-new");
  CHECK(writeProblem((dir / "links" / "to-new").string()).empty());
  CHECK(writeProblem("").size() > 0);
}
