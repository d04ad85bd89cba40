//===- SafeTensors.h - Read and write the safetensors format --------------===//
//
// safetensors (https://huggingface.co/docs/safetensors) is an 8-byte little-endian header length, a
// JSON header {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
// and the raw little-endian data. PyTorch and NumPy read it. Reading validates everything (header
// size, JSON, dtypes, shapes, offsets in range, no overlaps or holes) and reports the file and
// field on any problem; writing goes through writeFileAtomically (FileIO.h).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/FileIO.h" // DataError, writeFileAtomically

#include <cmath>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace dopa {

enum class DType { F32, F64, I32, I64 };
const char *dtypeName(DType dtype);
size_t dtypeSize(DType dtype);

struct StoredTensor {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes; // little-endian, row-major

  int64_t numel() const;
  /// The values converted to double / float (integers converted exactly where representable).
  std::vector<double> toDouble() const;
  std::vector<float> toFloat() const;

  static StoredTensor fromFloat(std::string name, std::vector<int64_t> shape, const float *data);
  static StoredTensor fromDouble(std::string name, std::vector<int64_t> shape, const double *data);
};

struct TensorFile {
  std::vector<StoredTensor> tensors;
  std::map<std::string, std::string> metadata;

  const StoredTensor *find(const std::string &name) const;
};

/// Read and validate a safetensors file. Throws DataError naming the file and the offending field.
TensorFile readSafeTensors(const std::string &path);

/// Only the header's "__metadata__" (empty when there is none), read without the tensors' data:
/// the header is validated as JSON and the metadata as strings; the tensors are not checked.
std::map<std::string, std::string> readSafeTensorsMetadata(const std::string &path);

/// Write with writeFileAtomically (FileIO.h): a regular file is replaced through a flushed
/// temporary renamed over it, so an interrupted write never leaves a truncated file behind; a link,
/// device or FIFO is never replaced. Throws DataError (FileWriteError) on I/O errors.
void writeSafeTensors(const std::string &path, const TensorFile &file);

/// Whether a value stored as a float is a count (an iteration, an epoch): a whole number in
/// [0, 1e15] (NaN is not).
inline bool isCountValue(double v) { return v >= 0 && v <= 1e15 && v == std::floor(v); }

/// Throws DataError "<path>: <name>: element 17 is nan; ..." unless every value is finite (and,
/// with `nonNegative`, >= 0): what a checkpoint's parameters, optimizer moments and logs hold.
template <class T>
void requireFiniteValues(const std::vector<T> &values, const std::string &path,
                         const std::string &name, bool nonNegative = false) {
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]) || (nonNegative && values[i] < 0)) {
      std::string message = path;
      message += ": " + name + ": element " + std::to_string(i) + " is ";
      message += std::to_string(values[i]);
      message += nonNegative ? "; it must be finite and not negative" : "; it must be finite";
      message += " (a damaged or hand-edited checkpoint)";
      throw DataError(message);
    }
}

struct TensorInfo;

/// Check that `file` (read from `path`) holds exactly the tensors `expected` names, each with shape
/// `prefix` followed by its own shape (e.g. prefix [T, B] for per-step data). With `optional`,
/// missing tensors are allowed. `what` names the kind in messages ("param", "input"). Throws
/// DataError naming the file and the tensor.
void checkTensorSet(const TensorFile &file, const std::string &path,
                    const std::vector<TensorInfo> &expected, const std::vector<int64_t> &prefix,
                    bool optional, const char *what);

} // namespace dopa
