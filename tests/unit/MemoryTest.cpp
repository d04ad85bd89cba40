//===- MemoryTest.cpp - The memory check runs pass before they allocate ---===//
//
// availableMemoryBytes() reads a positive size on this machine; the saturating arithmetic of the
// estimates never wraps (--batch 2147483647 times a 40000 x 40000 state overflows int64_t);
// checkMemoryFits() accepts what fits, refuses what does not or what overflowed, and its message
// names both sizes and the way out (--max-memory).
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/Memory.h"
#include "dopa/runtime/SafeTensors.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>

using namespace dopa;

namespace {
/// checkMemoryFits's message, or "" when the bytes fit.
std::string refusal(int64_t needed, int64_t limitOverride) {
  try {
    checkMemoryFits(needed, "what", limitOverride);
  } catch (const DataError &e) {
    return e.what();
  }
  return "";
}
} // namespace

TEST_CASE("the memory available is read and positive") {
  int64_t available = availableMemoryBytes();
  CHECK(available > 0);
  MESSAGE("available: " << formatBytes(available));
}

TEST_CASE("sizes saturate instead of wrapping") {
  CHECK(saturatingMul(3, 4) == 12);
  CHECK(saturatingMul(0, kUnboundedBytes) == 0);
  CHECK(saturatingMul(-5, 7) == 0);
  CHECK(saturatingMul(2147483647, 2147483647) == int64_t(2147483647) * int64_t(2147483647));
  CHECK(saturatingMul(int64_t(1) << 32, int64_t(1) << 31) == kUnboundedBytes);
  CHECK(saturatingMul(kUnboundedBytes, 2) == kUnboundedBytes);
  CHECK(saturatingAdd(2, 3) == 5);
  CHECK(saturatingAdd(5, -3) == 5);
  CHECK(saturatingAdd(kUnboundedBytes, 1) == kUnboundedBytes);
  CHECK(saturatingAdd(kUnboundedBytes - 1, kUnboundedBytes - 1) == kUnboundedBytes);
  // --batch 2147483647, a [40000, 40000] state, 4 bytes each: past int64_t.
  int64_t state = saturatingMul(saturatingMul(2147483647, saturatingMul(40000, 40000)), 4);
  CHECK(state == kUnboundedBytes);
}

TEST_CASE("bytes are written as people read them") {
  CHECK(formatBytes(0) == "0 bytes");
  CHECK(formatBytes(1) == "1 byte");
  CHECK(formatBytes(812) == "812 bytes");
  CHECK(formatBytes(1000) == "1.0 KB");
  CHECK(formatBytes(999960) == "1.0 MB");
  CHECK(formatBytes(41'200'000'000) == "41.2 GB");
  CHECK(formatBytes(kUnboundedBytes) == "9.2 EB");
}

TEST_CASE("checkMemoryFits: the limit, the override and overflow") {
  CHECK(refusal(1000, 1000).empty());
  CHECK(refusal(0, 0).empty()); // nothing always fits in what is available
  CHECK(refusal(41'200'000'000, 18'300'000'000) ==
        "this run needs 41.2 GB (what) but --max-memory allows 18.3 GB; reduce the sizes or raise "
        "--max-memory");
  CHECK(refusal(2, 1) ==
        "this run needs 2 bytes (what) but --max-memory allows 1 byte; reduce the sizes or raise "
        "--max-memory");
  // Without an override: the memory available, and the option that overrides it.
  std::string message = refusal(kUnboundedBytes, 0);
  CHECK(message.find("this run needs more than 9.2 EB (what) but ") == 0);
  CHECK(message.find(" are available; reduce the sizes or pass --max-memory BYTES to try anyway") !=
        std::string::npos);
  // An estimate that overflowed never fits, whatever the override.
  CHECK(!refusal(kUnboundedBytes, kUnboundedBytes).empty());
}
