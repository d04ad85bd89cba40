//===- FuzzSafeTensors.cpp - libFuzzer target for the safetensors reader --===//
//
// Checkpoints, parameters and data arrive as safetensors files from users and other tools. Any
// byte string must either load or raise DataError: never crash, hang, over-allocate or read out of
// bounds; the same holds for the metadata-only reader. Loaded files are also checked against a
// parameter list, as `dopa grad` does.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/Network.h"
#include "dopa/runtime/SafeTensors.h"

#include <cstdint>
#include <fstream>
#include <string>
#include <unistd.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const std::string path = "/tmp/dopa-fuzz-safetensors." + std::to_string(getpid()) + ".st";
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(data), std::streamsize(size));
  }
  try {
    (void)dopa::readSafeTensorsMetadata(path);
  } catch (const dopa::DataError &) {
    // Likewise for the metadata-only reader.
  }
  try {
    dopa::TensorFile file = dopa::readSafeTensors(path);
    for (const dopa::StoredTensor &t : file.tensors)
      (void)t.toDouble();
    std::vector<dopa::TensorInfo> expected(1);
    expected[0].name = "w";
    expected[0].shape = {2, 3};
    dopa::checkTensorSet(file, path, expected, {}, true, "param");
  } catch (const dopa::DataError &) {
    // The expected outcome for malformed input.
  }
  return 0;
}
