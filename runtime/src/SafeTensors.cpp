//===- SafeTensors.cpp - Read and write the safetensors format ------------===//
//
// Implements the validated reader, a reader of the header's metadata alone, and the writer (which
// writes through writeFileAtomically, FileIO.cpp). The JSON header is parsed with nlohmann::json;
// every field is checked before any data is used.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/SafeTensors.h"
#include "dopa/runtime/Network.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

using namespace dopa;

const char *dopa::dtypeName(DType dtype) {
  switch (dtype) {
  case DType::F32: return "F32";
  case DType::F64: return "F64";
  case DType::I32: return "I32";
  case DType::I64: return "I64";
  }
  return "?";
}

size_t dopa::dtypeSize(DType dtype) { return dtype == DType::F32 || dtype == DType::I32 ? 4 : 8; }

int64_t StoredTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

template <class T> static T load(const uint8_t *p) {
  T v;
  std::memcpy(&v, p, sizeof(T)); // the machines are little-endian, as the format
  return v;
}

std::vector<double> StoredTensor::toDouble() const {
  std::vector<double> out(static_cast<size_t>(numel()));
  for (size_t i = 0; i < out.size(); ++i) {
    const uint8_t *p = bytes.data() + i * dtypeSize(dtype);
    switch (dtype) {
    case DType::F32: out[i] = load<float>(p); break;
    case DType::F64: out[i] = load<double>(p); break;
    case DType::I32: out[i] = load<int32_t>(p); break;
    case DType::I64: out[i] = double(load<int64_t>(p)); break;
    }
  }
  return out;
}

std::vector<float> StoredTensor::toFloat() const {
  std::vector<double> d = toDouble();
  return std::vector<float>(d.begin(), d.end());
}

StoredTensor StoredTensor::fromFloat(std::string name, std::vector<int64_t> shape,
                                     const float *data) {
  StoredTensor t{std::move(name), DType::F32, std::move(shape), {}};
  t.bytes.resize(size_t(t.numel()) * 4);
  if (!t.bytes.empty()) // an empty tensor may come with no data at all (memcpy of null is UB)
    std::memcpy(t.bytes.data(), data, t.bytes.size());
  return t;
}

StoredTensor StoredTensor::fromDouble(std::string name, std::vector<int64_t> shape,
                                      const double *data) {
  StoredTensor t{std::move(name), DType::F64, std::move(shape), {}};
  t.bytes.resize(size_t(t.numel()) * 8);
  if (!t.bytes.empty())
    std::memcpy(t.bytes.data(), data, t.bytes.size());
  return t;
}

const StoredTensor *TensorFile::find(const std::string &name) const {
  for (const StoredTensor &t : tensors)
    if (t.name == name)
      return &t;
  return nullptr;
}

/// Throws unless a header of `headerLen` bytes fits in a file of `fileSize` bytes (and is sane).
static void checkHeaderLength(uint64_t headerLen, size_t fileSize, const std::string &path) {
  if (headerLen > fileSize - 8 || headerLen > (uint64_t(100) << 20))
    throw DataError(path + ": header: header length " + std::to_string(headerLen) +
                    " does not fit in the file (truncated or not a safetensors file)");
}

/// The header's JSON object; throws naming the file when it is not one.
static nlohmann::json parseHeader(const std::string &text, const std::string &path) {
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception &e) {
    throw DataError(path + ": header: invalid JSON: " + e.what());
  }
  if (!header.is_object())
    throw DataError(path + ": header: is not a JSON object");
  return header;
}

/// The "__metadata__" entry as a map of strings; throws naming the field when it is not one.
static std::map<std::string, std::string> metadataOf(const nlohmann::json &entry,
                                                     const std::string &path) {
  if (!entry.is_object())
    throw DataError(path + ": __metadata__: must be an object of strings");
  std::map<std::string, std::string> metadata;
  for (auto m = entry.begin(); m != entry.end(); ++m) {
    if (!m->is_string())
      throw DataError(path + ": __metadata__." + m.key() + ": must be a string");
    metadata[m.key()] = m->get<std::string>();
  }
  return metadata;
}

std::map<std::string, std::string> dopa::readSafeTensorsMetadata(const std::string &path) {
  requireRegularFile(path);
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in)
    throw DataError(path + ": cannot open: " + std::strerror(errno));
  const std::streamoff end = in.tellg();
  if (end < 0)
    throw DataError(path + ": cannot read: not a regular file");
  const auto fileSize = size_t(end);
  if (fileSize < 8)
    throw DataError(path + ": header: file is " + std::to_string(fileSize) +
                    " bytes, too short for the 8-byte header length");
  uint8_t len[8] = {};
  in.seekg(0);
  if (!in.read(reinterpret_cast<char *>(len), 8))
    throw DataError(path + ": header: cannot read the 8-byte header length");
  uint64_t headerLen = load<uint64_t>(len);
  checkHeaderLength(headerLen, fileSize, path);
  std::string text(headerLen, '\0');
  if (!in.read(text.data(), std::streamsize(headerLen)))
    throw DataError(path + ": header: cannot read " + std::to_string(headerLen) + " bytes");
  nlohmann::json header = parseHeader(text, path);
  auto it = header.find("__metadata__");
  return it == header.end() ? std::map<std::string, std::string>{} : metadataOf(*it, path);
}

TensorFile dopa::readSafeTensors(const std::string &path) {
  auto fail = [&](const std::string &where, const std::string &msg) -> DataError {
    return DataError(path + (where.empty() ? "" : ": " + where) + ": " + msg);
  };
  requireRegularFile(path);
  std::ifstream in(path, std::ios::binary);
  if (!in)
    throw fail("", std::string("cannot open: ") + std::strerror(errno));
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (data.size() < 8)
    throw fail("header", "file is " + std::to_string(data.size()) +
                             " bytes, too short for the 8-byte header length");
  uint64_t headerLen = load<uint64_t>(reinterpret_cast<const uint8_t *>(data.data()));
  checkHeaderLength(headerLen, data.size(), path);
  nlohmann::json header = parseHeader(data.substr(8, headerLen), path);
  size_t dataStart = 8 + headerLen, dataSize = data.size() - dataStart;
  TensorFile file;
  std::vector<std::pair<uint64_t, uint64_t>> extents;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string &name = it.key();
    if (name == "__metadata__") {
      file.metadata = metadataOf(*it, path);
      continue;
    }
    const nlohmann::json &entry = *it;
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      throw fail(name, "needs 'dtype', 'shape' and 'data_offsets'");
    StoredTensor t;
    t.name = name;
    if (!entry["dtype"].is_string())
      throw fail(name + ".dtype", "must be a string");
    std::string dtype = entry["dtype"].get<std::string>();
    if (dtype == "F32")
      t.dtype = DType::F32;
    else if (dtype == "F64")
      t.dtype = DType::F64;
    else if (dtype == "I32")
      t.dtype = DType::I32;
    else if (dtype == "I64")
      t.dtype = DType::I64;
    else
      throw fail(name + ".dtype",
                 "unsupported dtype '" + dtype + "' (dopa reads F32, F64, I32, I64)");
    if (!entry["shape"].is_array())
      throw fail(name + ".shape", "must be an array of sizes");
    uint64_t count = 1;
    for (const auto &d : entry["shape"]) {
      if (!d.is_number_integer() || d.get<int64_t>() < 0)
        throw fail(name + ".shape", "sizes must be non-negative integers");
      uint64_t v = d.get<uint64_t>();
      if (v != 0 && count > (uint64_t(1) << 40) / v)
        throw fail(name + ".shape", "is too large");
      count *= v;
      t.shape.push_back(int64_t(v));
    }
    const auto &off = entry["data_offsets"];
    if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() ||
        !off[1].is_number_unsigned())
      throw fail(name + ".data_offsets", "must be [begin, end]");
    uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    if (begin > end || end > dataSize)
      throw fail(name + ".data_offsets", "[" + std::to_string(begin) + ", " + std::to_string(end) +
                                             "] is outside the " + std::to_string(dataSize) +
                                             "-byte data section (truncated file?)");
    if (end - begin != count * dtypeSize(t.dtype))
      throw fail(name + ".data_offsets", "holds " + std::to_string(end - begin) +
                                             " bytes but shape and dtype need " +
                                             std::to_string(count * dtypeSize(t.dtype)));
    t.bytes.assign(data.begin() + long(dataStart + begin), data.begin() + long(dataStart + end));
    extents.push_back({begin, end});
    file.tensors.push_back(std::move(t));
  }
  std::sort(extents.begin(), extents.end());
  uint64_t covered = 0;
  for (auto [b, e] : extents) {
    if (b < covered)
      throw fail("data_offsets", "tensors overlap");
    if (b > covered)
      throw fail("data_offsets", "the data section has a hole at byte " + std::to_string(covered));
    covered = e;
  }
  if (covered != dataSize)
    throw fail("data", std::to_string(dataSize - covered) + " trailing bytes belong to no tensor");
  return file;
}

void dopa::writeSafeTensors(const std::string &path, const TensorFile &file) {
  nlohmann::json header = nlohmann::json::object();
  uint64_t offset = 0;
  for (const StoredTensor &t : file.tensors) {
    if (header.contains(t.name) || t.name == "__metadata__") // the file could not be read back
      throw DataError(path + ": cannot write a tensor named '" + t.name + "' (the name is taken)");
    header[t.name] = {{"dtype", dtypeName(t.dtype)},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  if (!file.metadata.empty())
    header["__metadata__"] = file.metadata;
  // Metadata may hold paths, which need not be UTF-8: their bad bytes become U+FFFD.
  std::string json = header.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  json.append((8 - json.size() % 8) % 8, ' '); // align the data section to 8 bytes
  std::string out(8, '\0');
  uint64_t len = json.size();
  std::memcpy(out.data(), &len, 8);
  out += json;
  for (const StoredTensor &t : file.tensors)
    out.append(reinterpret_cast<const char *>(t.bytes.data()), t.bytes.size());
  writeFileAtomically(path, out);
}

static std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

void dopa::checkTensorSet(const TensorFile &file, const std::string &path,
                          const std::vector<TensorInfo> &expected,
                          const std::vector<int64_t> &prefix, bool optional, const char *what) {
  std::set<std::string> names;
  for (const TensorInfo &info : expected) {
    names.insert(info.name);
    const StoredTensor *t = file.find(info.name);
    if (!t) {
      if (optional)
        continue;
      throw DataError(path + ": missing tensor '" + info.name + "' (the spec's " + what + ")");
    }
    std::vector<int64_t> want = prefix;
    want.insert(want.end(), info.shape.begin(), info.shape.end());
    if (t->shape != want)
      throw DataError(path + ": tensor '" + info.name + "' has shape " + shapeString(t->shape) +
                      ", expected " + shapeString(want));
  }
  for (const StoredTensor &t : file.tensors)
    if (!names.count(t.name))
      throw DataError(path + ": tensor '" + t.name + "' is not a " + what + " of the network");
}
