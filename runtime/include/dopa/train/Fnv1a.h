//===- Fnv1a.h - A 64-bit FNV-1a hash for checksums and rank checks ---------===//
//
// The hash behind checkpoint checksums and the ranks' agreement checks of data-parallel training
// (Trainer, LanguageModelTrainer): not cryptographic, fast, and the same on every machine.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <cstdlib>
#include <string>

namespace dopa {

/// FNV-1a, 64 bits.
struct Fnv1a {
  uint64_t h = 0xcbf29ce484222325ULL;
  void byte(uint8_t b) { h = (h ^ b) * 0x100000001b3ULL; }
  void bytes(const uint8_t *data, size_t n) {
    for (size_t i = 0; i < n; ++i)
      byte(data[i]);
  }
  template <class T> void values(const T *data, size_t n) {
    bytes(reinterpret_cast<const uint8_t *>(data), n * sizeof(T));
  }
  /// A field with its length first (8 bytes, little-endian), so no two splits hash alike.
  void field(const std::string &s) {
    for (int i = 0; i < 8; ++i)
      byte(uint8_t(uint64_t(s.size()) >> (8 * i)));
    bytes(reinterpret_cast<const uint8_t *>(s.data()), s.size());
  }
};

} // namespace dopa
