//===- FileIO.cpp - Write outputs without destroying anything -------------===//
//
// The one writer of every output file. What is at the path decides how: a regular file is replaced
// atomically with its mode kept, a link is followed, a device or a FIFO is written through, a
// directory is refused; and the temporaries that killed runs left next to the target are removed.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/FileIO.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace dopa;
namespace fs = std::filesystem;

namespace {

/// Distinguishes the temporaries of one process (threads may write at the same time).
std::atomic<unsigned> tempCounter{0};

FileWriteError ioError(const std::string &path, int err) {
  std::string reason = std::strerror(err);
  return FileWriteError(path + ": cannot write: " + reason, reason);
}

FileWriteError kindError(const std::string &path, const std::string &reason) {
  return FileWriteError(path + ": " + reason, reason);
}

/// Write all of `bytes` to `fd`: 0, or the errno of the failure (ENOSPC, EIO, EPIPE, ...).
int writeAll(int fd, const std::string &bytes) {
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return errno;
    if (n == 0)
      return EIO;
    done += size_t(n);
  }
  return 0;
}

/// The descriptor that `path` names by itself: /dev/stdout 1, /dev/stderr 2, /dev/fd/N and
/// /proc/self/fd/N (or /proc/<our pid>/fd/N) N; -1 for any other path. These are written to the
/// descriptor already open, as a shell's redirection is: following the link would replace the file
/// behind it (`--out /dev/stdout >> log`), or fail for a pipe.
int descriptorOf(const std::string &path) {
  if (path == "/dev/stdout")
    return 1;
  if (path == "/dev/stderr")
    return 2;
  const std::string prefixes[] = {"/dev/fd/", "/proc/self/fd/",
                                  "/proc/" + std::to_string(::getpid()) + "/fd/"};
  for (const std::string &prefix : prefixes) {
    if (!path.starts_with(prefix) || path.size() == prefix.size() ||
        path.size() > prefix.size() + 6)
      continue;
    int fd = 0;
    for (size_t i = prefix.size(); i < path.size(); ++i) {
      if (path[i] < '0' || path[i] > '9')
        return -1;
      fd = fd * 10 + (path[i] - '0');
    }
    return fd;
  }
  return -1;
}

/// `path` with the symbolic links at its end followed, relative targets taken from the link's
/// folder; a dangling link gives the file it points to (which the write then creates). Stops at a
/// path that names a descriptor (descriptorOf), which it sets in `descriptor` (else -1).
std::string followLinks(const std::string &path, int &descriptor) {
  std::string current = path;
  for (int hops = 0; hops < 40; ++hops) {
    descriptor = descriptorOf(current);
    if (descriptor >= 0)
      return current;
    struct stat st{};
    if (::lstat(current.c_str(), &st) != 0 || !S_ISLNK(st.st_mode))
      return current;
    std::error_code ec;
    fs::path target = fs::read_symlink(current, ec);
    if (ec)
      throw FileWriteError(path + ": cannot read the link: " + ec.message(), ec.message());
    current = target.is_absolute() ? target.string()
                                   : (fs::path(current).parent_path() / target).string();
  }
  throw ioError(path, ELOOP);
}

/// The process id in a temporary's name: `name` is `prefix` (".x.st.tmp-"), digits, "-", digits;
/// -1 for any other name.
long temporaryOwner(const std::string &name, const std::string &prefix) {
  if (!name.starts_with(prefix))
    return -1;
  size_t i = prefix.size();
  long pid = 0;
  size_t digits = 0;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9' && digits < 9; ++i, ++digits)
    pid = pid * 10 + (name[i] - '0');
  if (digits == 0 || i + 1 >= name.size() || name[i] != '-')
    return -1;
  for (size_t j = i + 1; j < name.size(); ++j)
    if (name[j] < '0' || name[j] > '9')
      return -1;
  return pid;
}

/// Remove the temporaries in `dir` named `prefix<pid>-<n>` whose process no longer exists (a run
/// killed mid-write). Best effort: what cannot be listed or removed stays.
void removeStaleTemporaries(const fs::path &dir, const std::string &prefix) {
  std::error_code ec;
  fs::directory_iterator it(dir.empty() ? fs::path(".") : dir, ec);
  for (const fs::directory_iterator end{}; !ec && it != end; it.increment(ec)) {
    long pid = temporaryOwner(it->path().filename().string(), prefix);
    if (pid <= 0 || pid == long(::getpid()))
      continue;
    if (::kill(pid_t(pid), 0) == -1 && errno == ESRCH) {
      std::error_code removeError;
      fs::remove(it->path(), removeError);
    }
  }
}

/// Create the hidden temporary for `target` in its folder, `.<name>.tmp-<pid>-<n>`; its descriptor,
/// and its path in `tmp`.
int createTemporary(const std::string &path, const fs::path &target, std::string &tmp) {
  std::string prefix =
      "." + target.filename().string() + ".tmp-" + std::to_string(::getpid()) + "-";
  for (int attempt = 0; attempt < 100; ++attempt) {
    tmp = (target.parent_path() / (prefix + std::to_string(tempCounter++))).string();
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0)
      return fd;
    if (errno != EEXIST)
      throw ioError(path, errno);
  }
  throw ioError(path, EEXIST);
}

/// Flush the folder's entry of a renamed file (best effort: not every file system allows it).
void syncFolder(const fs::path &dir) {
  std::string name = dir.empty() ? std::string(".") : dir.string();
  int fd = ::open(name.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return;
  ::fsync(fd);
  ::close(fd);
}

/// Replace the regular file `target` (nothing there when `old` is null) by `bytes`: a temporary
/// with the old file's mode and owner, flushed, renamed over it. On any failure the temporary is
/// removed and `target` stays as it was.
void replaceRegular(const std::string &path, const std::string &target, const struct stat *old,
                    const std::string &bytes) {
  fs::path targetPath(target);
  removeStaleTemporaries(targetPath.parent_path(), "." + targetPath.filename().string() + ".tmp-");
  std::string tmp;
  int fd = createTemporary(path, targetPath, tmp);
  int err = 0;
  if (old) {
    if (old->st_uid != ::geteuid() || old->st_gid != ::getegid()) {
      if (::fchown(fd, old->st_uid, old->st_gid) != 0) {
        // Only root may give a file away: the replacement belongs to whoever writes it.
      }
    }
    if (::fchmod(fd, old->st_mode & 07777) != 0)
      err = errno;
  }
  if (err == 0)
    err = writeAll(fd, bytes);
  if (err == 0 && ::fsync(fd) != 0)
    err = errno;
  if (::close(fd) != 0 && err == 0)
    err = errno;
  if (err == 0 && std::rename(tmp.c_str(), target.c_str()) != 0)
    err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    throw ioError(path, err);
  }
  syncFolder(targetPath.parent_path());
}

/// Open the FIFO `target` for writing without blocking forever: with O_NONBLOCK the open fails
/// (ENXIO) while no reader has it open. A reader started just before (`cat fifo &`) gets a second.
int openFifo(const std::string &path, const std::string &target) {
  for (int attempt = 0;; ++attempt) {
    int fd = ::open(target.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd >= 0) {
      int flags = ::fcntl(fd, F_GETFL);
      if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int err = errno;
        ::close(fd);
        throw ioError(path, err);
      }
      return fd;
    }
    if (errno != ENXIO)
      throw ioError(path, errno);
    if (attempt == 100)
      throw kindError(path, "a FIFO with no reader");
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

/// Write `bytes` into the character device or FIFO `target` as it is: never replaced or removed.
void writeThrough(const std::string &path, const std::string &target, bool fifo,
                  const std::string &bytes) {
  int fd = fifo ? openFifo(path, target) : ::open(target.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd < 0)
    throw ioError(path, errno);
  int err = writeAll(fd, bytes);
  if (::close(fd) != 0 && err == 0)
    err = errno;
  if (err != 0)
    throw ioError(path, err);
}

/// Write `bytes` to the open descriptor `fd` (named by `path`), after what stdio holds.
void writeDescriptor(const std::string &path, int fd, const std::string &bytes) {
  std::fflush(nullptr);
  if (int err = writeAll(fd, bytes))
    throw ioError(path, err);
}

/// A path made comparable: absolute, the links of its existing part resolved, "." and ".." gone.
fs::path comparablePath(const std::string &path) {
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(path, ec);
  if (!ec)
    return canonical.lexically_normal();
  fs::path absolute = fs::absolute(path, ec);
  return (ec ? fs::path(path) : absolute).lexically_normal();
}

} // namespace

void dopa::writeFileAtomically(const std::string &path, const std::string &bytes) {
  if (path.empty())
    throw kindError("''", "no file name given");
  int descriptor = -1;
  std::string target = followLinks(path, descriptor);
  if (descriptor >= 0) {
    writeDescriptor(path, descriptor, bytes);
    return;
  }
  struct stat st{};
  if (::stat(target.c_str(), &st) != 0) {
    if (errno != ENOENT)
      throw ioError(path, errno);
    if (fs::path(target).filename().empty())
      throw kindError(path, "is a directory");
    replaceRegular(path, target, nullptr, bytes);
    return;
  }
  if (S_ISREG(st.st_mode))
    replaceRegular(path, target, &st, bytes);
  else if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))
    writeThrough(path, target, S_ISFIFO(st.st_mode), bytes);
  else if (S_ISDIR(st.st_mode))
    throw kindError(path, "is a directory");
  else if (S_ISBLK(st.st_mode))
    throw kindError(path, "is a block device (dopa writes no disks)");
  else if (S_ISSOCK(st.st_mode))
    throw kindError(path, "is a socket");
  else
    throw kindError(path, "is not a regular file");
}

std::string dopa::writeProblem(const std::string &path) {
  if (path.empty())
    return "no file name given";
  int descriptor = -1;
  std::string target;
  try {
    target = followLinks(path, descriptor);
  } catch (const FileWriteError &e) {
    return e.reason;
  }
  if (descriptor >= 0)
    return "";
  struct stat st{};
  if (::stat(target.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode))
      return "is a directory";
    if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))
      return ""; // written through
    if (!S_ISREG(st.st_mode))
      return "is not a regular file";
  } else if (errno != ENOENT) {
    return std::strerror(errno);
  } else if (fs::path(target).filename().empty()) {
    return "is a directory";
  }
  // A regular file, new or replaced: the temporary beside it needs a writable folder.
  fs::path folder = fs::path(target).parent_path();
  if (folder.empty())
    folder = ".";
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    return "the folder " + folder.string() + " does not exist";
  if (::access(folder.c_str(), W_OK) != 0)
    return "the folder " + folder.string() + " is not writable";
  return "";
}

void dopa::requireRegularFile(const std::string &path) {
  std::error_code ec;
  fs::file_status status = fs::status(path, ec);
  if (ec || !fs::exists(status) || fs::is_regular_file(status))
    return;
  throw DataError(path +
                  (fs::is_directory(status) ? ": is a directory" : ": is not a regular file"));
}

bool dopa::isSameFile(const std::string &a, const std::string &b) {
  if (a.empty() || b.empty())
    return false;
  std::error_code existsA, existsB;
  if (fs::exists(a, existsA) && fs::exists(b, existsB)) {
    std::error_code ec;
    bool same = fs::equivalent(a, b, ec);
    if (!ec)
      return same;
  }
  return comparablePath(a) == comparablePath(b);
}

void dopa::checkOutputIsNotInput(const std::string &output, const std::vector<std::string> &inputs,
                                 const std::string &outputFlag) {
  if (output.empty() || output == "-")
    return;
  auto clobbered = std::find_if(inputs.begin(), inputs.end(), [&](const std::string &input) {
    return isSameFile(output, input);
  });
  if (clobbered != inputs.end())
    throw OutputIsInputError(outputFlag + " names an input file (" + *clobbered + ")");
}
