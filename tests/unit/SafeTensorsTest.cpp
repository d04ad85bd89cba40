//===- SafeTensorsTest.cpp - The safetensors reader and writer -----------===//
//
// Round trips, and every kind of corrupt file rejected with a message naming the file and field;
// an interrupted or failed write never damages the previous file.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/SafeTensors.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <unistd.h>

using namespace dopa;

namespace {
std::string tempPath(const std::string &name) {
  // This process's own folder: test runs on one machine at once do not share files.
  auto dir = std::filesystem::temp_directory_path() / "dopa-unit-tests" /
             ("safetensors-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

void writeRaw(const std::string &path, const std::string &header, const std::string &data) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  out.write(reinterpret_cast<const char *>(&n), 8);
  out << header << data;
}

/// A file whose header length (1 MiB) runs past its end.
void writeHeaderLengthBeyondFile(const std::string &path) {
  writeRaw(path, "{}", "");
  std::fstream out(path, std::ios::binary | std::ios::in | std::ios::out);
  uint64_t huge = 1 << 20;
  out.write(reinterpret_cast<const char *>(&huge), 8);
}

std::string errorOf(const std::string &path) {
  try {
    readSafeTensors(path);
  } catch (const DataError &e) {
    return e.what();
  }
  return "";
}
} // namespace

TEST_CASE("safetensors round trip keeps names, dtypes, shapes, values and metadata") {
  std::string path = tempPath("roundtrip.st");
  float f[6] = {1, 2, 3, 4, 5, 6};
  double d[2] = {0.25, -1e300};
  TensorFile file;
  file.tensors.push_back(StoredTensor::fromFloat("w", {2, 3}, f));
  file.tensors.push_back(StoredTensor::fromDouble("b.x", {2}, d));
  file.tensors.push_back(StoredTensor::fromDouble("scalar", {}, d));
  file.metadata["network"] = "N";
  writeSafeTensors(path, file);
  TensorFile back = readSafeTensors(path);
  REQUIRE(back.tensors.size() == 3);
  const StoredTensor *w = back.find("w");
  REQUIRE(w);
  CHECK(w->dtype == DType::F32);
  CHECK(w->shape == std::vector<int64_t>{2, 3});
  CHECK(w->toFloat() == std::vector<float>(f, f + 6));
  CHECK(back.find("b.x")->toDouble() == std::vector<double>(d, d + 2));
  CHECK(back.find("scalar")->shape.empty());
  CHECK(back.find("scalar")->toDouble() == std::vector<double>{0.25});
  CHECK(back.metadata.at("network") == "N");
}

TEST_CASE("a file that could not be read back is not written") {
  std::string path = tempPath("twice.st");
  float f[1] = {1};
  TensorFile file;
  file.tensors.push_back(StoredTensor::fromFloat("w", {1}, f));
  file.tensors.push_back(StoredTensor::fromFloat("w", {1}, f));
  CHECK_THROWS_WITH_AS(writeSafeTensors(path, file),
                       doctest::Contains("twice.st: cannot write a tensor named 'w'"), DataError);
  CHECK_FALSE(std::filesystem::exists(path));
  // Metadata that is not UTF-8 (a path, say) is written with U+FFFD in place of the bad bytes.
  file.tensors.pop_back();
  file.metadata["source"] = "caf\xe9";
  writeSafeTensors(path, file);
  CHECK(readSafeTensors(path).metadata.at("source") == "caf\xef\xbf\xbd");
}

TEST_CASE("corrupt safetensors files are rejected with the file and field named") {
  std::string path = tempPath("bad.st");
  SUBCASE("too short") {
    std::ofstream(path, std::ios::binary) << "abc";
    CHECK(errorOf(path).find("too short") != std::string::npos);
  }
  SUBCASE("header length beyond the file") {
    writeHeaderLengthBeyondFile(path);
    CHECK(errorOf(path).find("does not fit in the file") != std::string::npos);
  }
  SUBCASE("invalid JSON") {
    writeRaw(path, "{\"w\": ", "");
    CHECK(errorOf(path).find("invalid JSON") != std::string::npos);
  }
  SUBCASE("missing fields") {
    writeRaw(path, R"({"w": {"dtype": "F32"}})", "");
    CHECK(errorOf(path).find("w: needs 'dtype', 'shape' and 'data_offsets'") != std::string::npos);
  }
  SUBCASE("unsupported dtype") {
    writeRaw(path, R"({"w": {"dtype": "BF16", "shape": [1], "data_offsets": [0, 2]}})", "ab");
    CHECK(errorOf(path).find("w.dtype: unsupported dtype 'BF16'") != std::string::npos);
  }
  SUBCASE("offsets past the end (a truncated file)") {
    writeRaw(path, R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", "12345678");
    std::string e = errorOf(path);
    CHECK(e.find(path) != std::string::npos);
    CHECK(e.find("w.data_offsets") != std::string::npos);
  }
  SUBCASE("size disagrees with shape and dtype") {
    writeRaw(path, R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", "12345678");
    CHECK(errorOf(path).find("holds 8 bytes but shape and dtype need 12") != std::string::npos);
  }
  SUBCASE("overlapping tensors") {
    writeRaw(path,
             R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                 "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
             "12345678");
    CHECK(errorOf(path).find("overlap") != std::string::npos);
  }
  SUBCASE("trailing bytes") {
    writeRaw(path, R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", "12345678");
    CHECK(errorOf(path).find("trailing bytes") != std::string::npos);
  }
  SUBCASE("negative size") {
    writeRaw(path, R"({"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})", "1234");
    CHECK(errorOf(path).find("a.shape") != std::string::npos);
  }
  SUBCASE("missing file") {
    CHECK(errorOf(tempPath("does-not-exist.st")).find("cannot open") != std::string::npos);
  }
}

TEST_CASE("the metadata alone is read from the header, with the header's errors") {
  std::string path = tempPath("meta.st");
  float f[2] = {1, 2};
  TensorFile file;
  file.tensors.push_back(StoredTensor::fromFloat("w", {2}, f));
  file.metadata["threads"] = "3";
  writeSafeTensors(path, file);
  CHECK(readSafeTensorsMetadata(path) == std::map<std::string, std::string>{{"threads", "3"}});
  auto metadataError = [&] {
    try {
      readSafeTensorsMetadata(path);
    } catch (const DataError &e) {
      return std::string(e.what());
    }
    return std::string();
  };
  SUBCASE("no metadata") {
    writeRaw(path, R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", "1234");
    CHECK(readSafeTensorsMetadata(path).empty());
  }
  SUBCASE("too short") {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << "abc";
    CHECK(metadataError().find("too short") != std::string::npos);
  }
  SUBCASE("header length beyond the file") {
    writeHeaderLengthBeyondFile(path);
    CHECK(metadataError().find("does not fit in the file") != std::string::npos);
  }
  SUBCASE("invalid JSON") {
    writeRaw(path, "{\"w\": ", "");
    CHECK(metadataError().find("invalid JSON") != std::string::npos);
  }
  SUBCASE("a metadata value that is not a string") {
    writeRaw(path, R"({"__metadata__": {"threads": 3}})", "");
    CHECK(metadataError().find("__metadata__.threads: must be a string") != std::string::npos);
  }
  SUBCASE("missing file") {
    path = tempPath("does-not-exist.st");
    CHECK(metadataError().find("cannot open") != std::string::npos);
  }
  SUBCASE("a directory") {
    path = tempPath("a-directory.st");
    std::filesystem::create_directories(path);
    std::string e = metadataError();
    std::filesystem::remove(path);
    CHECK(e.find(path) != std::string::npos);
    CHECK(!e.empty());
  }
}

TEST_CASE("a failed write leaves the previous file intact and no temporary behind") {
  std::string path = tempPath("keep.st");
  float one = 1;
  TensorFile file;
  file.tensors.push_back(StoredTensor::fromFloat("w", {1}, &one));
  writeSafeTensors(path, file);
  // Renaming a file over a non-empty directory fails: the write must report it and clean up.
  std::string dirPath = tempPath("a-directory");
  std::filesystem::create_directories(dirPath + "/child");
  CHECK_THROWS_AS(writeSafeTensors(dirPath, file), DataError);
  for (const auto &entry :
       std::filesystem::directory_iterator(std::filesystem::path(path).parent_path()))
    CHECK(entry.path().filename().string().find(".tmp.") == std::string::npos);
  CHECK(readSafeTensors(path).find("w")->toFloat() == std::vector<float>{1});
}
