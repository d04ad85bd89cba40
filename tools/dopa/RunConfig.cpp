//===- RunConfig.cpp - config.json: every setting of a run, in its folder -===//
//
// Implements writeRunConfig (RunConfig.h) with nlohmann-json and writeFileAtomically.
//
//===----------------------------------------------------------------------===//
#include "RunConfig.h"

#include "dopa/runtime/FileIO.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>

using namespace dopa;

void tool::writeRunConfig(const std::string &outDir, const std::vector<std::string> &commandLine,
                          const std::map<std::string, std::string> &settings,
                          int64_t startIteration) {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char stamp[32];
  std::tm utc{};
  gmtime_r(&now, &utc); // (not std::gmtime: the seeds of --seeds write theirs at once)
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", &utc);
  nlohmann::ordered_json start;
  start["command"] = commandLine;
  start["started"] = stamp;
  start["start_iteration"] = startIteration;
  std::string path = (std::filesystem::path(outDir) / "config.json").string();
  nlohmann::ordered_json config;
  if (startIteration > 0) { // a resume: keep how the run began, add this start
    std::ifstream in(path);
    config = nlohmann::ordered_json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (config.is_discarded() || !config.is_object() || !config.contains("command"))
      config = nlohmann::ordered_json(); // unreadable: start it afresh
  }
  if (config.empty()) {
    config["dopa_version"] = DOPA_VERSION;
    config.update(start);
  } else {
    config["resumed"].push_back(start);
  }
  config["settings"] = settings;
  writeFileAtomically(path, config.dump(2) + "\n");
}
