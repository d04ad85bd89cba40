//===- Task.h - Episodic RL tasks: the interface the A2C trainer drives ----===//
//
// An episodic task runs a batch of independent episodes of a fixed length in lock step: reset
// starts a new episode in every batch element from a seeded generator, observe writes the current
// step's observations, act applies the sampled actions, writes the rewards and advances one step.
// A task may also step one element at a time (ElementSteps: resetElement, observeElement,
// actElement), which lets the trainer run each element's whole episode on one thread; a task
// written that way derives from ElementTask, which implements the lock-step three with them. The
// trainer (Trainer.h) owns the generators, so a checkpoint holds everything needed to continue a
// task bit-exactly; a task keeps no randomness of its own.
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
#include <cstdint>
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

/// A task written one element at a time: implement batch(), observationSize(), numActions(),
/// episodeLength(), settings() and ElementSteps' three functions; the lock-step reset, observe and
/// act come from here. They step the elements in order with the one generator, so a batch run draws
/// element 0's numbers, then element 1's, and so on. act() checks the step and every action before
/// it steps any element, so a bad call leaves the task and the generator as they were; actElement
/// implementations check their arguments with checkStep().
class ElementTask : public EpisodicTask, public ElementSteps {
public:
  /// Start a new episode in every element, in order.
  void reset(Rng &rng) override {
    t = 0;
    for (int b = 0; b < batch(); ++b)
      resetElement(b, rng);
  }
  /// The current step's observations: element b's at x + b * observationSize().
  void observe(float *x) const override {
    for (int b = 0; b < batch(); ++b)
      observeElement(b, t, x + int64_t(b) * observationSize());
  }
  /// One action per element; throws std::logic_error after the episode's last step and
  /// std::out_of_range for an action outside [0, numActions()), before anything changes.
  void act(const int *actions, float *rewards, Rng &rng) override {
    for (int b = 0; b < batch(); ++b)
      checkStep(b, t, actions[b]);
    for (int b = 0; b < batch(); ++b)
      rewards[b] = actElement(b, t, actions[b], rng);
    ++t;
  }
  /// The lock-step episode's current step: how many times act() ran since reset().
  int stepIndex() const { return t; }

protected:
  /// `name` prefixes the errors: "maze: action 7 of batch element 2 is not in [0, 4)".
  explicit ElementTask(std::string name) : taskName(std::move(name)) {}

  /// Throws std::logic_error unless step is in [0, episodeLength()) and std::out_of_range unless
  /// action is in [0, numActions()).
  void checkStep(int b, int step, int action) const {
    if (step < 0 || step >= episodeLength())
      throw std::logic_error(taskName + ": step " + std::to_string(step) +
                             " is outside the episode of " + std::to_string(episodeLength()) +
                             " steps (call reset)");
    if (action < 0 || action >= numActions())
      throw std::out_of_range(taskName + ": action " + std::to_string(action) +
                              " of batch element " + std::to_string(b) + " is not in [0, " +
                              std::to_string(numActions()) + ")");
  }

private:
  std::string taskName;
  int t = 0;
};

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
    auto shortest = [](double x) {
      std::ostringstream out;
      out << x; // 0.5, not 0.500000
      return out.str();
    };
    if (!ok || used != text.size() || !std::isfinite(v))
      throw TaskOptionError("task option '" + key + "': '" + text + "' is not a number");
    if (v < lo || v > hi)
      throw TaskOptionError("task option '" + key + "': " + text + " is out of its range [" +
                            shortest(lo) + ", " + shortest(hi) + "]");
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
