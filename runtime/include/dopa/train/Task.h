//===- Task.h - Episodic RL tasks: the interface the A2C trainer drives ----===//
//
// An episodic task runs a batch of independent episodes of a fixed length in lock step: reset
// starts a new episode in every batch element from a seeded generator, observe writes the current
// step's observations, act applies the sampled actions, writes the rewards and advances one step.
// A task may also step one element at a time (ElementSteps: resetElement, observeElement,
// actElement), which lets the trainer run each element's whole episode on one thread. The trainer
// (Trainer.h) owns the generators, so a checkpoint holds everything needed to continue a task
// bit-exactly; a task keeps no randomness of its own.
//
// Tasks are found by name in a TaskRegistry: the built-in ones (cue-reward, maze) and those a
// plug-in adds. A plug-in is a shared library built from a researcher's own C++ file (see
// examples/bandit/Bandit.cpp and dopa_add_task() in cmake/) that defines
//   extern "C" void dopa_register_tasks(dopa::TaskRegistry &registry);
// and is loaded with `dopa train <task> --task-library lib.so`. Everything here and in Random.h is
// header-only, so a plug-in needs no symbol of the dopa binary that loads it.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Random.h"

#include <charconv>
#include <climits>
#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace dopa {

/// A batch of independent episodes of episodeLength() steps.
class EpisodicTask {
public:
  virtual ~EpisodicTask() = default;

  virtual int batch() const = 0;
  virtual int observationSize() const = 0;
  virtual int numActions() const = 0;
  virtual int episodeLength() const = 0;

  /// Start a new episode in every batch element.
  virtual void reset(Rng &rng) = 0;
  /// The current step's observations: batch() * observationSize() floats.
  virtual void observe(float *x) const = 0;
  /// Apply one action in [0, numActions()) per batch element; write batch() rewards and advance.
  virtual void act(const int *actions, float *rewards, Rng &rng) = 0;

  /// Every setting that shapes the episodes, as (key, value) text: recorded in checkpoints and
  /// compared on resume, so keep the keys stable once runs depend on them.
  virtual std::vector<std::pair<std::string, std::string>> settings() const = 0;
};

/// Per-element stepping, optional for a task (the built-in ones have it): a task that also derives
/// from ElementSteps can be stepped one element at a time. Its three functions touch only element
/// b (and the task's constant settings), so the trainer may call them for different elements from
/// different threads at once, and it runs each element's whole episode with a generator of the
/// element's own, one element after another on each thread (the element's network state stays in
/// the core's cache). A task without it is stepped in lock step with reset, observe and act. It is
/// a separate base, found with dynamic_cast (elementSteps), so that EpisodicTask's layout, and with
/// it the plug-ins built before it, stay as they were.
class ElementSteps {
public:
  virtual ~ElementSteps() = default;
  /// Start a new episode in element b.
  virtual void resetElement(int b, Rng &rng) = 0;
  /// Element b's observation at step t of its episode: observationSize() floats.
  virtual void observeElement(int b, int t, float *x) const = 0;
  /// Apply element b's action at step t of its episode, advance the element; returns its reward.
  virtual float actElement(int b, int t, int action, Rng &rng) = 0;
};

/// The task's per-element stepping, or null when it has none.
inline ElementSteps *elementSteps(EpisodicTask &task) {
  return dynamic_cast<ElementSteps *>(&task);
}

/// A setting's value as settings() records it: 17 significant digits, so it round-trips.
inline std::string settingText(double v) {
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

/// A task option's value is malformed, out of range or unknown.
struct TaskOptionError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// The options given to a task (`--task-opt key=value`, and the shortcuts --eplen, --cues...), read
/// by the task's factory with its defaults. Keys the factory never reads are reported by unread().
class TaskOptions {
public:
  TaskOptions() = default;
  explicit TaskOptions(std::map<std::string, std::string> values) : values(std::move(values)) {}

  void set(const std::string &key, const std::string &value) { values[key] = value; }
  bool has(const std::string &key) const { return values.count(key) != 0; }

  /// The integer option `key`, or `fallback` when it is not given; throws TaskOptionError when it
  /// is not an integer in [lo, hi].
  int getInt(const std::string &key, int fallback, int lo = INT_MIN, int hi = INT_MAX) const {
    read.insert(key);
    auto it = values.find(key);
    if (it == values.end())
      return fallback;
    const std::string &text = it->second;
    long long v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || v < lo || v > hi)
      throw TaskOptionError("task option '" + key + "': '" + text + "' is not an integer in [" +
                            std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return int(v);
  }
  /// The real option `key`, or `fallback`; throws TaskOptionError when it is not a finite number
  /// in [lo, hi].
  double getReal(const std::string &key, double fallback, double lo = -HUGE_VAL,
                 double hi = HUGE_VAL) const {
    read.insert(key);
    auto it = values.find(key);
    if (it == values.end())
      return fallback;
    const std::string &text = it->second;
    double v = 0;
    size_t used = 0;
    bool ok = !text.empty();
    try {
      v = std::stod(text, &used);
    } catch (const std::exception &) {
      ok = false;
    }
    if (!ok || used != text.size() || !std::isfinite(v) || v < lo || v > hi)
      throw TaskOptionError("task option '" + key + "': '" + text + "' is not a number in [" +
                            std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
  }

  /// The keys given that were never read, in order.
  std::vector<std::string> unread() const {
    std::vector<std::string> out;
    for (const auto &entry : values)
      if (!read.count(entry.first))
        out.push_back(entry.first);
    return out;
  }

private:
  std::map<std::string, std::string> values;
  mutable std::set<std::string> read;
};

/// The A2C and optimizer settings the reference uses for a task; `dopa train` options override.
struct TaskDefaults {
  int episodeLength = 100;
  double lr = 1e-4;
  double adamEps = 1e-6;
  double clipNorm = 2.0;
  double entropyWeight = 0.1; // bent
  double valueWeight = 0.1;   // blossv
  double gamma = 0.9;
};

/// A task as the registry knows it.
struct TaskInfo {
  std::string name;        // what `dopa train <name>` takes: "maze"
  std::string summary;     // one line for listings
  std::string examplesDir; // its example specs: examples/<examplesDir>/<variant>.dopa; "" if none
  std::string optionsHelp; // the options make() reads, with their defaults, for --help
  TaskDefaults defaults;
  /// A task of `batch` episodes configured by `options`; throws TaskOptionError (or
  /// std::invalid_argument) on bad options.
  std::function<std::unique_ptr<EpisodicTask>(int batch, const TaskOptions &options)> make;
};

/// Tasks by name.
class TaskRegistry {
public:
  /// Add `info`; throws std::invalid_argument when the name is taken or empty, or make is empty.
  void add(TaskInfo info) {
    if (info.name.empty() || !info.make)
      throw std::invalid_argument("a task needs a name and a factory");
    std::string name = info.name;
    if (!tasks.emplace(name, std::move(info)).second)
      throw std::invalid_argument("task '" + name + "' is registered twice");
  }
  const TaskInfo *find(const std::string &name) const {
    auto it = tasks.find(name);
    return it == tasks.end() ? nullptr : &it->second;
  }
  std::vector<std::string> names() const {
    std::vector<std::string> out;
    out.reserve(tasks.size());
    for (const auto &entry : tasks)
      out.push_back(entry.first);
    return out;
  }

private:
  std::map<std::string, TaskInfo> tasks;
};

/// The registry with the built-in tasks (cue-reward, maze) registered.
TaskRegistry &taskRegistry();

/// Load a task plug-in: dlopen `path` and call its dopa_register_tasks with taskRegistry(). Throws
/// std::runtime_error with the loader's message, or when the library has no such function.
void loadTaskLibrary(const std::string &path);

/// The entry point a plug-in defines.
using RegisterTasksFn = void (*)(TaskRegistry &registry);
inline constexpr const char *registerTasksSymbol = "dopa_register_tasks";

} // namespace dopa
