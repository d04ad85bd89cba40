//===- Memory.h - The memory a run may use, checked before it allocates ---===//
//
// A run whose buffers cannot fit must be refused with a message before it allocates, not end in
// std::bad_alloc or the kernel's OOM killer. availableMemoryBytes() is what this process can still
// allocate (the kernel's MemAvailable, or the cgroup's limit when that is smaller);
// checkMemoryFits() compares a run's estimate with it, or with the user's override (--max-memory).
// Estimates multiply sizes the user chose (batch, steps, -D), so they are computed with the
// saturating arithmetic here: an overflow is "more than can ever fit", never a wrapped small value.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <limits>
#include <string>

namespace dopa {

/// What saturating arithmetic returns for a size that does not fit in int64_t.
inline constexpr int64_t kUnboundedBytes = std::numeric_limits<int64_t>::max();

/// a × b for sizes (negative operands count as 0), kUnboundedBytes when it overflows.
int64_t saturatingMul(int64_t a, int64_t b);
/// a + b for sizes (negative operands count as 0), kUnboundedBytes when it overflows.
int64_t saturatingAdd(int64_t a, int64_t b);

/// Bytes as people read them: "812 bytes", "41.2 GB" (powers of 1000).
std::string formatBytes(int64_t bytes);

/// The memory this process can still allocate: /proc/meminfo's MemAvailable, or what the cgroup
/// allows (memory.max less memory.current) when that is smaller; without /proc, the physical
/// memory. Always positive; kUnboundedBytes when nothing can be read.
int64_t availableMemoryBytes();

/// Throw DataError when `neededBytes` exceeds the limit: `limitOverride` when positive (the user's
/// --max-memory), else availableMemoryBytes(). `what` says what the bytes are for, e.g.
/// "generated engine, B=30, T=120: parameters 1.2 MB, ...". The message names both sizes and the
/// way out: "this run needs 41.2 GB (...) but 18.3 GB are available; reduce the sizes or pass
/// --max-memory BYTES to try anyway".
void checkMemoryFits(int64_t neededBytes, const std::string &what, int64_t limitOverride = 0);

} // namespace dopa
