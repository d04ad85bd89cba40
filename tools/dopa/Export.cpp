//===- Export.cpp - `dopa export`: a run's parameters under their names ----===//
//
// Reads a training checkpoint (of `dopa train <task>` or `dopa train lm`; a run folder means its
// checkpoint.st), validates it as resume does (format, version, checksum), and writes its
// parameters as a safetensors file with one tensor per parameter under the spec's names: what
// `dopa grad --params`, PyTorch (safetensors, or bench/reference/safetensors_np.py) and the
// Python module read. The names and shapes come from the checkpoint's `param_layout`; checkpoints
// written before it was recorded are split with the compiled example network of the same name
// and size.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"
#include "Console.h"

#include "dopa/examples/ExampleNetworks.h"
#include "dopa/runtime/FileIO.h"
#include "dopa/runtime/Generated.h"
#include "dopa/runtime/SafeTensors.h"
#include "dopa/train/Trainer.h"

#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace dopa;
using namespace dopa::tool;
namespace fs = std::filesystem;

namespace {

struct ParamEntry {
  std::string name;
  std::vector<int64_t> shape;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
};

/// "name:d0xd1,name:d0,scalar:" (paramLayoutText) into entries; DataError on anything else.
std::vector<ParamEntry> parseLayout(const std::string &text, const std::string &path) {
  std::vector<ParamEntry> out;
  std::stringstream items(text);
  std::string item;
  auto bad = [&](const std::string &why) {
    return DataError(path + ": __metadata__.param_layout: " + why);
  };
  constexpr int64_t kMaxElements = int64_t(1) << 40; // far above any network, far below overflow
  std::set<std::string> names;
  int64_t total = 0;
  while (std::getline(items, item, ',')) {
    size_t colon = item.find(':');
    if (colon == std::string::npos || colon == 0)
      throw bad("'" + item + "' is not name:shape");
    ParamEntry e{item.substr(0, colon), {}};
    if (!names.insert(e.name).second)
      throw bad("'" + e.name + "' is listed twice");
    std::stringstream dims(item.substr(colon + 1));
    std::string dim;
    int64_t numel = 1;
    while (std::getline(dims, dim, 'x')) {
      if (dim.empty() || dim.size() > 12 ||
          dim.find_first_not_of("0123456789") != std::string::npos)
        throw bad("'" + item + "' has a malformed shape");
      e.shape.push_back(std::stoll(dim));
      if (__builtin_mul_overflow(numel, e.shape.back(), &numel) || numel > kMaxElements)
        throw bad("'" + item + "' is larger than any checkpoint");
    }
    total += numel; // both at most 2^40: no overflow
    if (total > kMaxElements)
      throw bad("the parameters add up to more than any checkpoint holds");
    out.push_back(std::move(e));
  }
  return out;
}

/// The layout of the compiled example whose network has this name and parameter count.
std::vector<ParamEntry> exampleLayout(const std::string &network, int64_t numParams) {
  for (const ExampleNetwork &e : exampleNetworks()) {
    NetworkInfo info = e.spec().info();
    if (info.name != network || int64_t(info.numParams) != numParams)
      continue;
    std::vector<ParamEntry> out;
    out.reserve(info.params.size());
    for (const TensorInfo &p : info.params)
      out.push_back({p.name, p.shape});
    return out;
  }
  return {};
}

/// The checkpoint's format, checked with its checksum as resume checks it.
void validate(const TensorFile &f, const std::string &path) {
  auto it = f.metadata.find("format");
  std::string format = it == f.metadata.end() ? "" : it->second;
  if (format == "dopa-checkpoint") {
    Trainer::readCheckpointState(f, path); // version, checksum (v1 or v2), counts, log
    return;
  }
  if (format == "dopa-lm-checkpoint") {
    auto sum = f.metadata.find("checksum");
    if (sum == f.metadata.end() || sum->second != Trainer::checkpointChecksum(f))
      throw DataError(path + ": __metadata__.checksum: the checkpoint's data or metadata does not "
                             "match its checksum (corrupt file)");
    return;
  }
  throw DataError(path + ": __metadata__.format: '" + format + "' is not a dopa checkpoint");
}

} // namespace

int tool::runExport(const std::string &source, const std::string &outPath) {
  try {
    std::string path = source;
    if (fs::is_directory(source))
      path = (fs::path(source) / "checkpoint.st").string();
    if (!fs::exists(path))
      throw DataError(path + ": no such checkpoint" +
                      (path == source ? "" : " (is " + source + " a run folder?)"));
    if (!fs::is_regular_file(path))
      throw DataError(path + ": is not a regular file");
    checkOutputIsNotInput(outPath, {path}, "--out");
    TensorFile f = readSafeTensors(path);
    validate(f, path);
    const StoredTensor *params = f.find("params");
    if (!params || params->dtype != DType::F32 || params->shape.size() != 1)
      throw DataError(path + ": params: missing or not a F32 vector");
    int64_t n = params->shape[0];
    std::string network = f.metadata.count("network") ? f.metadata.at("network") : "";
    std::vector<ParamEntry> layout;
    if (auto it = f.metadata.find("param_layout"); it != f.metadata.end())
      layout = parseLayout(it->second, path);
    else if (layout = exampleLayout(network, n); layout.empty())
      throw DataError(path +
                      ": __metadata__.param_layout: missing (a checkpoint written before "
                      "dopa recorded it), and its network '" +
                      network + "' with " + std::to_string(n) +
                      " parameters is not an example compiled into this dopa; resume it once "
                      "with this dopa to record the layout");
    int64_t total = 0;
    for (const ParamEntry &e : layout)
      total += e.numel();
    if (total != n)
      throw DataError(path + ": __metadata__.param_layout: " + std::to_string(total) +
                      " values, but params holds " + std::to_string(n));
    std::vector<float> values = params->toFloat();
    TensorFile out;
    int64_t at = 0;
    for (const ParamEntry &e : layout) {
      out.tensors.push_back(StoredTensor::fromFloat(e.name, e.shape, values.data() + at));
      at += e.numel();
    }
    out.metadata["format"] = "dopa-params";
    out.metadata["network"] = network;
    out.metadata["source"] = path;
    for (const char *key : {"iteration", "epoch", "description", "task", "model"})
      if (auto it = f.metadata.find(key); it != f.metadata.end())
        out.metadata[key] = it->second;
    writeSafeTensors(outPath, out);
    printStdout(format("wrote %zu parameters of %s (%lld values) to %s\n", layout.size(),
                       network.c_str(), static_cast<long long>(n), outPath.c_str()));
    return 0;
  } catch (const OutputIsInputError &e) {
    printError("dopa export", e.what());
    return 2;
  } catch (const std::exception &e) {
    printError("dopa export", e.what());
    return 1;
  }
}
