//===- FuzzCheckpoint.cpp - libFuzzer target for checkpoint validation ---===//
//
// A checkpoint passes the safetensors reader (fuzzed on its own) and then Trainer's checks of what
// needs no network: format, version, checksum, counts, generator states and the log's shape. Any
// byte string must either pass or raise DataError. Files of the current version get their checksum
// recomputed first, so the fuzzer reaches the checks behind it.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/SafeTensors.h"
#include "dopa/train/Trainer.h"

#include <cstdint>
#include <fstream>
#include <string>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string path = "/tmp/dopa-fuzz-checkpoint." + std::to_string(getpid()) + ".st";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(data), std::streamsize(size));
  }
  try {
    dopa::TensorFile file = dopa::readSafeTensors(path);
    auto version = file.metadata.find("version");
    if (version != file.metadata.end() &&
        version->second == std::to_string(dopa::Trainer::checkpointVersion))
      file.metadata["checksum"] = dopa::Trainer::checkpointChecksum(file);
    (void)dopa::Trainer::readCheckpointState(file, path);
  } catch (const dopa::DataError &) {
    // The expected outcome for malformed input.
  }
  return 0;
}
