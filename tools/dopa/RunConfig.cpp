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

using namespace dopa;

void tool::writeRunConfig(const std::string &outDir, const std::vector<std::string> &commandLine,
                          const std::map<std::string, std::string> &settings,
                          int64_t startIteration) {
  nlohmann::ordered_json config;
  config["dopa_version"] = DOPA_VERSION;
  config["command"] = commandLine;
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  config["started"] = stamp;
  config["start_iteration"] = startIteration;
  config["settings"] = settings;
  writeFileAtomically((std::filesystem::path(outDir) / "config.json").string(),
                      config.dump(2) + "\n");
}
