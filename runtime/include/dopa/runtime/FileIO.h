//===- FileIO.h - Write outputs without destroying anything ---------------===//
//
// Every file dopa and dopac write (safetensors, checkpoints, log.csv, bench JSON, generated code)
// goes through writeFileAtomically, and what is at the path decides how: a regular file (or
// nothing) is replaced atomically by a hidden temporary in the same folder, keeping the old file's
// permission bits; a symbolic link is followed, so the link stays a link; a character device or a
// FIFO is written through, never replaced or removed; a directory, a block device or a socket is
// refused. checkOutputIsNotInput refuses an output that names one of the run's inputs before
// anything runs.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace dopa {

/// Bad or unreadable data files, checkpoints and the like; the message names the file and field.
struct DataError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// A write that failed: what() is "<path>: <what went wrong>" ("x.st: cannot write: No space left
/// on device", "out: is a directory"); `reason` is the part after the path and "cannot write: "
/// ("No space left on device", "is a directory"), for messages that name the path themselves.
struct FileWriteError : DataError {
  FileWriteError(const std::string &message, std::string reason)
      : DataError(message), reason(std::move(reason)) {}
  std::string reason;
};

/// Write `bytes` to `path`, by what is there:
///   - nothing or a regular file: the bytes go to `<dir>/.<name>.tmp-<pid>-<n>`, are flushed
///     (fsync), get the old file's permission bits (and owner, where allowed; a new file gets 0644
///     less the umask), and the temporary is renamed over `path`: an interrupted or failed write
///     never leaves a truncated file, and the previous file stays as it was;
///   - a symbolic link: the rule applies to the file it points to (created if the link dangles);
///     the link stays a link;
///   - a character device or a FIFO: written through as it is (`--out /dev/null` stays a device),
///     never replaced or removed; a FIFO without a reader (after a second's wait) is an error, not
///     a hang;
///   - /dev/stdout, /dev/stderr, /dev/fd/N, /proc/self/fd/N (or a link to one): written to that
///     open descriptor, as a shell's redirection is (after fflush of stdio);
///   - a directory, a block device or a socket: refused.
/// Before the temporary is made, the temporaries of runs that were killed (`.<name>.tmp-<pid>-*`
/// whose process is gone) are removed. Throws FileWriteError naming `path`.
void writeFileAtomically(const std::string &path, const std::string &bytes);

/// Why writeFileAtomically(path, ...) could not write `path`, found before anything is written
/// ("is a directory", "the folder out does not exist", "the folder out is not writable"); "" when
/// it could. It follows the path as the writer does: /dev/stdout and the other descriptors, devices
/// and FIFOs pass; a link is judged by where it points. Lets a long run check its outputs first.
std::string writeProblem(const std::string &path);

/// Throws DataError "<path>: is a directory" or "<path>: is not a regular file" when `path` exists
/// and is not a regular file (reading a FIFO would wait for a writer, a device might never end);
/// nothing when it is one or does not exist (the open that follows says so). Readers of
/// checkpoints, parameters and corpora call it before they open.
void requireRegularFile(const std::string &path);

/// Whether `a` and `b` name the same file: std::filesystem::equivalent when both exist, else their
/// absolute paths with the links of the existing part resolved and "." and ".." removed.
bool isSameFile(const std::string &a, const std::string &b);

/// An output that names one of the run's inputs.
struct OutputIsInputError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// Throws OutputIsInputError "<outputFlag> names an input file (<input>)" when `output` (given with
/// `outputFlag`, e.g. "-o" or "--out") is the same file as one of `inputs` (isSameFile). An empty
/// output and "-" (stdout) name no file and always pass. Callers report it as a usage error.
void checkOutputIsNotInput(const std::string &output, const std::vector<std::string> &inputs,
                           const std::string &outputFlag);

} // namespace dopa
