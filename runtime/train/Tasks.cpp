//===- Tasks.cpp - The task registry: built-in tasks and plug-ins ---------===//
//
// The registry that `dopa train <task>` looks tasks up in: cue-reward and maze with the options
// and A2C settings of the reference code (sr/srbatch.py, maze/batch.py), and plug-ins loaded with
// dlopen that add their own (Task.h).
//
//===----------------------------------------------------------------------===//
#include "dopa/train/CueReward.h"
#include "dopa/train/Maze.h"
#include "dopa/train/Task.h"

#include <dlfcn.h>

#include <stdexcept>
#include <string>

using namespace dopa;

namespace {

TaskInfo cueRewardInfo() {
  TaskInfo info;
  info.name = "cue-reward";
  info.summary = "the stimulus-response task of Backpropamine §2.1 (sr/srbatch.py)";
  info.examplesDir = "cue_reward";
  info.optionsHelp = "eplen=120 (steps per episode), cues=4 (cues per episode, --ni), "
                     "cues-per-trial=2 (1: the demo's simpler association)";
  info.defaults = {.episodeLength = 120,
                   .lr = 1e-4,
                   .adamEps = 1e-6,
                   .clipNorm = 2.0,
                   .entropyWeight = 0.1,
                   .valueWeight = 0.1,
                   .gamma = 0.9};
  info.make = [](int batch, const TaskOptions &options) -> std::unique_ptr<EpisodicTask> {
    CueRewardConfig config;
    config.episodeLength = options.getInt("eplen", config.episodeLength, 1);
    config.numCues = options.getInt("cues", config.numCues, 2, 1 << 20);
    config.cuesPerTrial = options.getInt("cues-per-trial", config.cuesPerTrial, 1, 2);
    return std::make_unique<CueRewardTask>(config, batch);
  };
  return info;
}

TaskInfo mazeInfo() {
  TaskInfo info;
  info.name = "maze";
  info.summary = "grid-maze navigation of Backpropamine §2.2 (maze/batch.py)";
  info.examplesDir = "maze";
  info.optionsHelp = "eplen=200 (steps per episode), size=13 (odd, >= 5; the reference's msize), "
                     "reward=10 (--rew), wall-penalty=0 (--wp)";
  // --lr 1e-4, Adam eps 1e-4 (hard-coded, batch.py L301), --gc 4.0, --bent 0.03, --blossv 0.1.
  info.defaults = {.episodeLength = 200,
                   .lr = 1e-4,
                   .adamEps = 1e-4,
                   .clipNorm = 4.0,
                   .entropyWeight = 0.03,
                   .valueWeight = 0.1,
                   .gamma = 0.9};
  info.make = [](int batch, const TaskOptions &options) -> std::unique_ptr<EpisodicTask> {
    MazeConfig config;
    config.episodeLength = options.getInt("eplen", config.episodeLength, 1);
    config.size = options.getInt("size", config.size, 5, 1001);
    config.reward = float(options.getReal("reward", config.reward, -1e6, 1e6));
    config.wallPenalty = float(options.getReal("wall-penalty", config.wallPenalty, -1e6, 1e6));
    return std::make_unique<MazeTask>(config, batch);
  };
  return info;
}

} // namespace

TaskRegistry &dopa::taskRegistry() {
  static TaskRegistry registry = [] {
    TaskRegistry r;
    r.add(cueRewardInfo());
    r.add(mazeInfo());
    return r;
  }();
  return registry;
}

void dopa::loadTaskLibrary(const std::string &path) {
  // A path without a slash would be searched for in the library path; a task library is a file.
  std::string file = path.find('/') == std::string::npos ? "./" + path : path;
  void *handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *why = dlerror();
    throw std::runtime_error(path +
                             ": cannot load the task library: " + (why ? why : "unknown error"));
  }
  // Kept loaded for the life of the process: the tasks it registered point into it.
  auto registerTasks = reinterpret_cast<RegisterTasksFn>(dlsym(handle, registerTasksSymbol));
  if (!registerTasks)
    throw std::runtime_error(path + ": not a dopa task library: it has no extern \"C\" function " +
                             registerTasksSymbol);
  registerTasks(taskRegistry());
}
