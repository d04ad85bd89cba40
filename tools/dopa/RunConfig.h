//===- RunConfig.h - config.json: every setting of a run, in its folder ---===//
//
// `dopa train` writes <out>/config.json when a run starts or resumes (atomically): the dopa
// version, the command line, the time, the iteration it started from, and every setting that shapes
// the run by name (what the checkpoint's fingerprint holds: task and its settings, network,
// optimizer, A2C or language-model settings, seed, threads, engine), so a run folder says how it
// was made.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace dopa::tool {

/// Returns a note for the user when a resumed run's config.json could not be read (it is kept
/// aside as config.json.unreadable and a new one is started), else "".
std::string writeRunConfig(const std::string &outDir, const std::vector<std::string> &commandLine,
                           const std::map<std::string, std::string> &settings,
                           int64_t startIteration);

} // namespace dopa::tool
