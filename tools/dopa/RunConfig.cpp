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

std::string tool::writeRunConfig(const std::string &outDir,
                                 const std::vector<std::string> &commandLine,
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
  std::string note;
  nlohmann::ordered_json config;
  std::error_code ec;
  if (startIteration > 0 && std::filesystem::exists(path, ec)) {
    // A resume: keep how the run began, add this start. One that cannot be read is not dropped:
    // it is kept aside under config.json.unreadable, and the run says so.
    requireRegularFile(path); // a FIFO would block the read
    std::ifstream in(path);
    config = nlohmann::ordered_json::parse(in, nullptr, /*allow_exceptions=*/false);
    const char *problem = config.is_discarded()         ? "it is not valid JSON"
                          : !config.is_object()         ? "it is not a JSON object"
                          : !config.contains("command") ? "it has no \"command\""
                          : config.contains("resumed") && !config["resumed"].is_array()
                              ? "its \"resumed\" is not a list"
                              : nullptr;
    if (problem) {
      // A name not taken yet: an earlier unreadable copy is kept too.
      std::string aside = path + ".unreadable";
      for (int n = 1; std::filesystem::exists(aside, ec) && n < 1000; ++n)
        aside = path + ".unreadable." + std::to_string(n);
      std::filesystem::rename(path, aside, ec);
      note = path + ": " + problem + "; " +
             (ec ? "it is replaced (it could not be kept aside: " + ec.message() + ")"
                 : "kept aside as " + aside + ", and a new one started");
      config = nlohmann::ordered_json();
    }
  }
  if (config.empty()) {
    config["dopa_version"] = DOPA_VERSION;
    config.update(start);
  } else {
    config["resumed"].push_back(start);
  }
  config["settings"] = settings;
  // Paths and command lines need not be UTF-8; their bad bytes become U+FFFD here.
  writeFileAtomically(
      path, config.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n");
  return note;
}
