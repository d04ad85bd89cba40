//===- Memory.cpp - The memory a run may use, checked before it allocates -===//
//
// Reads what the kernel says this process can still allocate: MemAvailable in /proc/meminfo (free
// memory plus the page cache it can reclaim), and for a process in a cgroup with a memory limit,
// that limit less the cgroup's usage (its inactive page cache counted as free), on every level up
// to the root (cgroup v2), or the memory controller's own limit (cgroup v1). Without /proc, the
// physical memory.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/Memory.h"
#include "dopa/runtime/SafeTensors.h"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <iomanip>
#include <iterator>
#include <sstream>
#include <string_view>
#include <system_error>

#include <unistd.h>

using namespace dopa;

int64_t dopa::saturatingMul(int64_t a, int64_t b) {
  if (a <= 0 || b <= 0)
    return 0;
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r))
    return kUnboundedBytes;
  return r;
}

int64_t dopa::saturatingAdd(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(std::max<int64_t>(a, 0), std::max<int64_t>(b, 0), &r))
    return kUnboundedBytes;
  return r;
}

std::string dopa::formatBytes(int64_t bytes) {
  if (bytes < 1000)
    return std::to_string(std::max<int64_t>(bytes, 0)) + (bytes == 1 ? " byte" : " bytes");
  static const char *const units[] = {"KB", "MB", "GB", "TB", "PB", "EB"};
  double value = double(bytes) / 1000;
  size_t unit = 0;
  while (value >= 999.95 && unit + 1 < std::size(units)) {
    value /= 1000;
    ++unit;
  }
  std::ostringstream text;
  text << std::fixed << std::setprecision(1) << value << " " << units[unit];
  return text.str();
}

namespace {

/// The non-negative integer at the start of `text` (after blanks); -1 when there is none,
/// kUnboundedBytes when it does not fit.
int64_t parseCount(std::string_view text) {
  size_t start = text.find_first_not_of(" \t");
  if (start == std::string_view::npos)
    return -1;
  text.remove_prefix(start);
  int64_t value = 0;
  std::from_chars_result parsed = std::from_chars(text.data(), text.data() + text.size(), value);
  if (parsed.ec == std::errc::result_out_of_range)
    return kUnboundedBytes;
  if (parsed.ec != std::errc() || value < 0)
    return -1;
  return value;
}

/// The number after `key` on the line of `path` that starts with it ("MemAvailable:" in
/// /proc/meminfo, "inactive_file " in a cgroup's memory.stat); -1 when there is none.
int64_t readField(const std::string &path, const std::string &key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, key.size(), key) == 0)
      return parseCount(std::string_view(line).substr(key.size()));
  return -1;
}

/// The number a one-value file holds (a cgroup's memory.max, memory.current); -1 when it is
/// absent, unreadable or not a number ("max": no limit).
int64_t readNumber(const std::string &path) {
  std::ifstream in(path);
  std::string token;
  if (!(in >> token))
    return -1;
  return parseCount(token);
}

/// What the cgroup in `dir` still allows: its limit less its usage, its inactive page cache
/// counted as free (the kernel reclaims it first); -1 when it has no limit.
int64_t cgroupAvailable(const std::string &dir, const char *limitFile, const char *usageFile,
                        const char *inactiveKey) {
  int64_t limit = readNumber(dir + limitFile);
  if (limit < 0)
    return -1;
  int64_t usage = std::max<int64_t>(readNumber(dir + usageFile), 0);
  int64_t inactive = std::max<int64_t>(readField(dir + "memory.stat", inactiveKey), 0);
  usage -= std::min(usage, inactive);
  return limit > usage ? limit - usage : 0;
}

/// The tightest cgroup v2 limit on this process: its own cgroup's and every ancestor's (a parent's
/// limit binds its children); -1 when none has one.
int64_t cgroupV2Available() {
  std::ifstream in("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(in, line))
    if (line.compare(0, 3, "0::") == 0)
      path = line.substr(3);
  if (path.empty() || path.front() != '/')
    path = "/";
  int64_t best = -1;
  while (true) {
    std::string dir = "/sys/fs/cgroup" + path + (path.back() == '/' ? "" : "/");
    int64_t here = cgroupAvailable(dir, "memory.max", "memory.current", "inactive_file ");
    if (here >= 0 && (best < 0 || here < best))
      best = here;
    if (path == "/")
      return best;
    size_t slash = path.find_last_of('/');
    path = slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
  }
}

} // namespace

int64_t dopa::availableMemoryBytes() {
  int64_t available = saturatingMul(readField("/proc/meminfo", "MemAvailable:"), 1024);
  if (available <= 0) {
    long pages = sysconf(_SC_PHYS_PAGES), pageSize = sysconf(_SC_PAGESIZE);
    available = pages > 0 && pageSize > 0 ? saturatingMul(pages, pageSize) : kUnboundedBytes;
  }
  int64_t v1 = cgroupAvailable("/sys/fs/cgroup/memory/", "memory.limit_in_bytes",
                               "memory.usage_in_bytes", "total_inactive_file ");
  for (int64_t cgroup : {cgroupV2Available(), v1})
    if (cgroup >= 0)
      available = std::min(available, cgroup);
  return std::max<int64_t>(available, 1);
}

void dopa::checkMemoryFits(int64_t neededBytes, const std::string &what, int64_t limitOverride) {
  int64_t limit = limitOverride > 0 ? limitOverride : availableMemoryBytes();
  // A saturated estimate overflowed: it never fits, whatever the limit.
  if (neededBytes < kUnboundedBytes && neededBytes <= limit)
    return;
  std::string message = "this run needs " +
                        std::string(neededBytes == kUnboundedBytes ? "more than " : "") +
                        formatBytes(neededBytes) + " (" + what + ") but ";
  if (limitOverride > 0)
    message +=
        "--max-memory allows " + formatBytes(limit) + "; reduce the sizes or raise --max-memory";
  else
    message += formatBytes(limit) +
               " are available; reduce the sizes or pass --max-memory BYTES to try anyway";
  throw DataError(message);
}
