//===- TrainCommand.cpp - `dopa train`: options, checks, the task ---------===//
//
// Parses `dopa train <task>`: loads task plug-ins (--task-library), finds the task in the registry,
// configures it from --task-opt KEY=VALUE and the shortcuts (--eplen, --cues, --cues-per-trial),
// takes the optimizer and A2C settings from the task's reference defaults unless given, checks
// every number, and hands the run to runTrain (Train.cpp). A task option the task does not read is
// an error, not a silent no-op.
//
//===----------------------------------------------------------------------===//
#include "TrainCommand.h"

#include "Cli.h"
#include "Console.h"

#include "dopa/train/Task.h"

#include <omp.h>

#include <charconv>
#include <filesystem>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>

using namespace dopa;
using namespace dopa::tool;

namespace {

/// `dopa train lm`'s own options.
void addLanguageModelOptions(CLI::App *cmd, LMArgs &lm, std::vector<CLI::Option *> &lmOnly) {
  const char *group = "Language model (dopa train lm)";
  size_t before = cmd->get_options().size();
  cmd->add_option("--model", lm.model,
                  "lm: basic_lstm | basic_plastic_lstm | basic_modplast_lstm | basic_modul_lstm "
                  "(Table 1's basic models), or lstm | plastic_lstm | modplast_lstm | modul_lstm "
                  "(the large ones, with their dropout masks) (examples/lm/<model>.dopa)")
      ->group(group);
  cmd->add_option("--data", lm.data, "lm: the PTB folder (ptb.{train,valid,test}.txt, MD5SUMS)")
      ->type_name("DIR")
      ->group(group);
  cmd->add_flag("--no-verify", lm.noVerify, "lm: do not check the data against MD5SUMS")
      ->group(group);
  cmd->add_option("--epochs", lm.epochs, "lm: epochs (default 13; --recipe awd 500)")->group(group);
  cmd->add_option("--bptt", lm.bptt, "lm: steps per window (default 20; --recipe awd 70)")
      ->group(group);
  cmd->add_option("--limit-batches", lm.limitBatches,
                  "lm: windows per epoch and per evaluation (default 0: all; smoke runs)")
      ->group(group);
  cmd->add_option("--stop-after", lm.stopAfter,
                  "lm: train this many windows, write a checkpoint and exit (--resume continues; "
                  "for jobs with a time limit)")
      ->group(group);
  cmd->add_option("--lr-decay", lm.lrDecay,
                  "lm: learning-rate factor per epoch (default 0.35; --recipe awd 1)")
      ->group(group);
  cmd->add_option("--decay-start", lm.decayStart,
                  "lm: the last epoch at the full learning rate (default 5)")
      ->group(group);
  cmd->add_option("--l2", lm.l2,
                  "lm: L2 penalty, as SGD weight decay (default 1e-6; --recipe awd 1.2e-6)")
      ->group(group);
  cmd->add_option("--init-scale", lm.initScale,
                  "lm: uniform(-s, s) for the parameters the spec initializes uniform(-0.1, 0.1) "
                  "(default 0.1)")
      ->group(group);
  cmd->add_option("--eval-batch", lm.evalBatch, "lm: streams for validation (default 10)")
      ->group(group);
  cmd->add_option("--test-batch", lm.testBatch, "lm: streams for the test (default 1)")
      ->group(group);
  lm.cmd = cmd;
  cmd->add_option(
         "--recipe", lm.recipe,
         "lm: zaremba (Table 1's basic models: summed loss, fixed BPTT 20, lr 1, clip 5, "
         "13 epochs) or awd (the large ones, awd-lstm-lm as the reference ran it: batch 6, "
         "BPTT 70 variable, mean loss, lr 30, clip 0.25, AR 2, TAR 1, alpha gradient / "
         "1149, ASGD after 126 of 500 epochs, L2 1.2e-6); default: awd for lstm, "
         "plastic_lstm, modplast_lstm, modul_lstm, else zaremba. Options given override it")
      ->check(CLI::IsMember({"zaremba", "awd"}))
      ->group(group);
  cmd->add_option("--loss", lm.loss,
                  "lm: sum (over the window's steps, Zaremba) or mean (per token, awd-lstm-lm)")
      ->check(CLI::IsMember({"sum", "mean"}))
      ->group(group);
  cmd->add_option("--bptt-mode", lm.bpttMode,
                  "lm: fixed, or variable (awd-lstm-lm: lengths ~ N(bptt, 5), bptt/2 one time in "
                  "20, the learning rate scaled by length / bptt)")
      ->check(CLI::IsMember({"fixed", "variable"}))
      ->group(group);
  cmd->add_option("--ar", lm.ar,
                  "lm: activation regularization: ar * mean(ar_h^2), ar_h an output of the spec")
      ->group(group);
  cmd->add_option("--tar", lm.tar,
                  "lm: temporal activation regularization: tar * mean((tar_h_t - tar_h_t-1)^2)")
      ->group(group);
  cmd->add_option("--alpha-grad-div", lm.alphaGradDiv,
                  "lm: divide the gradients of parameters named alpha by this before clipping "
                  "(awd-lstm-lm's --agdiv)")
      ->group(group);
  cmd->add_option("--asgd-after", lm.asgdAfter,
                  "lm: averaged SGD after this many epochs (0: never); validation and test use the "
                  "average")
      ->group(group);
  cmd->add_option("--asgd-nonmono", lm.asgdNonmono,
                  "lm: averaged SGD once validation is worse than the best before the last N "
                  "epochs (0: off)")
      ->group(group);
  cmd->add_option("--save-init", lm.saveInit, "lm: write the initial parameters (spec names)")
      ->type_name("FILE")
      ->group(group);
  cmd->add_option("--save-params", lm.saveParams, "lm: write the final parameters (spec names)")
      ->type_name("FILE")
      ->group(group);
  std::vector<CLI::Option *> all = cmd->get_options();
  lmOnly.insert(lmOnly.end(), all.begin() + long(before), all.end());
}

/// The first numeric option out of its range, as a message; "" when all are fine.
std::string numbersProblem(const TrainArgs &a) {
  const TrainOptions &o = a.opt;
  for (const std::string &problem :
       {positiveFinite("--lr", o.config.adam.lr), positiveFinite("--clip", o.config.clipNorm),
        positiveFinite("--adam-eps", o.config.adam.eps), notNegative("--burn-in", o.config.burnIn),
        notNegative("--memory-budget", o.memoryBudget),
        notNegative("--bptt-segment", o.bpttSegment),
        notNegative("--checkpoint-every", o.config.checkpointEvery)})
    if (!problem.empty())
      return problem;
  for (auto [flag, v] : {std::pair{"--bent", o.config.a2c.entropyWeight},
                         std::pair{"--blossv", o.config.a2c.valueWeight}})
    if (!std::isfinite(v) || v < 0)
      return std::string(flag) + " must be a finite number >= 0 (got " + format("%g", double(v)) +
             ")";
  double g = o.config.a2c.gamma;
  if (!std::isfinite(g) || g < 0 || g > 1)
    return "--gamma must be in [0, 1] (got " + format("%g", g) + ")";
  return "";
}

/// The task's options: --task-opt KEY=VALUE, then the shortcuts; false after a usage message. A
/// key given twice must have one value (as -D): the last one silently winning would hide a typo.
bool collectTaskOptions(const TrainArgs &a, TaskOptions &options) {
  std::map<std::string, std::pair<std::string, std::string>> given; // key -> (value, as given)
  auto set = [&](const std::string &key, const std::string &value, const std::string &spelling) {
    auto [it, inserted] = given.try_emplace(key, value, spelling);
    if (!inserted && it->second.first != value) {
      usage("the task option '" + key + "' is given two values: " + it->second.second + " and " +
            spelling);
      return false;
    }
    options.set(key, value);
    return true;
  };
  for (const std::string &entry : a.taskOpts) {
    size_t eq = entry.find('=');
    if (eq == std::string::npos || eq == 0) {
      usage("--task-opt takes KEY=VALUE (got '" + entry + "')");
      return false;
    }
    if (!set(entry.substr(0, eq), entry.substr(eq + 1), "--task-opt " + entry))
      return false;
  }
  auto shortcut = [&](const CLI::Option *opt, const char *key, int value) {
    return !opt->count() ||
           set(key, std::to_string(value), opt->get_name() + " " + std::to_string(value));
  };
  return shortcut(a.eplenOpt, "eplen", a.eplen) && shortcut(a.cuesOpt, "cues", a.cues) &&
         shortcut(a.cuesPerTrialOpt, "cues-per-trial", a.cuesPerTrial);
}

/// The optimizer and A2C settings: what was given, else the task's reference values.
void applyDefaults(TrainArgs &a, const TaskDefaults &d) {
  TrainConfig &c = a.opt.config;
  c.adam.lr = a.lrOpt->count() ? a.lr : d.lr;
  c.clipNorm = a.clipOpt->count() ? a.clip : d.clipNorm;
  c.adam.eps = a.adamEpsOpt->count() ? a.adamEps : d.adamEps;
  c.a2c.entropyWeight = float(a.bentOpt->count() ? a.bent : d.entropyWeight);
  c.a2c.valueWeight = float(a.blossvOpt->count() ? a.blossv : d.valueWeight);
  c.a2c.gamma = float(a.gammaOpt->count() ? a.gamma : d.gamma);
}

int listTasks() {
  printStdout("lm: word-level language modelling on Penn Treebank (Table 1): --model, --data "
              "and the lm options of dopa train --help\n");
  for (const std::string &name : taskRegistry().names()) {
    const TaskInfo &info = *taskRegistry().find(name);
    // What a network for it (--spec) must look like, from a task made with the default options.
    std::string shape;
    try {
      TaskOptions defaults;
      std::unique_ptr<EpisodicTask> task = info.make(1, defaults);
      shape = "  a network for it: one real input of " + std::to_string(task->observationSize()) +
              " values; outputs 'logits' [" + std::to_string(task->numActions()) +
              "] and 'value' [1]\n";
    } catch (const std::exception &) {
      shape = ""; // a task that needs options to be made: its summary says what it takes
    }
    std::string text = name + ": " + info.summary + "\n  options: ";
    text += info.optionsHelp.empty() ? "none" : info.optionsHelp;
    text += "\n" + shape;
    if (!info.examplesDir.empty())
      text += "  example networks: examples/" + info.examplesDir + "/<variant>.dopa\n";
    printStdout(text);
  }
  return 0;
}

/// The task `a.task`'s options, checked by making a task of one episode with them; false after a
/// message (exit code in `code`).
bool checkTaskOptions(const TrainArgs &a, const TaskInfo &info, TaskOptions &options, int &code) {
  code = 2;
  if (!collectTaskOptions(a, options))
    return false;
  std::unique_ptr<EpisodicTask> task;
  try {
    task = info.make(1, options);
  } catch (const std::exception &e) {
    std::string what = e.what();
    usage(what.rfind(a.task + ":", 0) == 0 ? what : a.task + ": " + what);
    return false;
  }
  if (std::vector<std::string> unread = options.unread(); !unread.empty()) {
    usage("the " + a.task + " task has no option '" + unread.front() +
          "' (its options: " + (info.optionsHelp.empty() ? "none" : info.optionsHelp) + ")");
    return false;
  }
  if (!task) {
    printError("dopa train", "the " + a.task + " task's factory returned no task");
    code = 1;
    return false;
  }
  return true;
}

} // namespace

bool tool::parseSeedList(const std::string &text, std::vector<uint64_t> &seeds,
                         std::string &error) {
  seeds.clear();
  auto number = [](std::string_view t, uint64_t &v) {
    auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    return !t.empty() && ec == std::errc() && end == t.data() + t.size();
  };
  constexpr uint64_t kMaxSeeds = 10000; // a typo (0-99999999) is not run
  std::set<uint64_t> seen;
  size_t at = 0;
  while (at <= text.size()) {
    size_t comma = text.find(',', at);
    std::string_view item(text.data() + at,
                          (comma == std::string::npos ? text.size() : comma) - at);
    size_t dash = item.find('-');
    uint64_t lo = 0, hi = 0;
    bool ok = dash == std::string_view::npos
                  ? number(item, lo) && (hi = lo, true)
                  : number(item.substr(0, dash), lo) && number(item.substr(dash + 1), hi);
    if (!ok || hi < lo) {
      error = "'" + std::string(item) + "' in '" + text +
              "' is not a seed or a range FIRST-LAST of seeds (e.g. 0-9,12)";
      return false;
    }
    if (hi - lo >= kMaxSeeds || seeds.size() + (hi - lo + 1) > kMaxSeeds) {
      error = "more than " + std::to_string(kMaxSeeds) + " seeds in '" + text + "'";
      return false;
    }
    for (uint64_t k = 0; k <= hi - lo; ++k) { // (not s <= hi: hi may be the largest uint64_t)
      const uint64_t s = lo + k;
      if (!seen.insert(s).second) {
        error = "seed " + std::to_string(s) + " is given twice in '" + text + "'";
        return false;
      }
      seeds.push_back(s);
    }
    if (comma == std::string::npos)
      break;
    at = comma + 1;
  }
  return true;
}

CLI::App *tool::addTrainOptions(CLI::App &app, TrainArgs &a) {
  TrainOptions &o = a.opt;
  CLI::App *cmd = app.add_subcommand(
      "train", "Meta-train a network on an episodic task (cue-reward, maze, a plug-in) with A2C");
  cmd->add_option("task", a.task, "<task: cue-reward | maze | a plug-in's; --list-tasks>");
  cmd->add_flag("--list-tasks", a.listTasks, "List the tasks with their options, then exit");
  addRepeated(cmd, "--task-library", a.taskLibraries,
              "Load a task plug-in (a shared library built with dopa_add_task)", "FILE");
  a.rlOnly.push_back(addRepeated(cmd, "--task-opt", a.taskOpts,
                                 "A task option: --task-opt size=9 (--list-tasks)", "KEY=VALUE"));
  a.rlOnly.push_back(
      cmd->add_option("--variant", o.variant,
                      "The example network examples/<task>/<variant>.dopa (default modul)"));
  cmd->add_option("--spec", o.spec.path, "A spec to train instead of the variant's example")
      ->type_name("FILE");
  a.networkOpt = cmd->add_option("--network", o.spec.network,
                                 "With --spec: the network to train (when the spec has several)")
                     ->type_name("NAME");
  addRepeated(cmd, "-D", o.dims, "Override a network dimension: -D H=50", "NAME=VALUE");
  cmd->add_option("--trace-precision", a.tracePrecision, kTracePrecisionHelp)
      ->check(CLI::IsMember({"float", "bf16"}));
  a.rlOnly.push_back(cmd->add_option("--iters", o.config.iterations,
                                     "Training iterations (batches of episodes; default 1000)"));
  a.seedOpt = cmd->add_option("--seed", o.config.seed,
                              "Random seed (parameters, tasks, actions; default 0)")
                  ->check(kNotNegative);
  a.seedsOpt = cmd->add_option("--seeds", a.seeds,
                               "Train one run per seed in this process, --runs-at-once of them at "
                               "a time, each in --out/seed-<seed>: --seeds 0-9 or 1,4,7 (a "
                               "figure's seeds; on one GPU, each on its own CUDA stream)")
                   ->type_name("LIST");
  a.rlOnly.push_back(a.seedsOpt);
  a.rlOnly.push_back(
      cmd->add_option("--runs-at-once", o.runsAtOnce,
                      "With --seeds: runs at a time, the threads shared among them (default: "
                      "one per thread)"));
  a.lm.batchOpt = cmd->add_option("--batch", o.config.batch,
                                  "Episodes per iteration (--bs; default 30), or the language "
                                  "model's parallel streams (default 20)");
  a.eplenOpt = cmd->add_option("--eplen", a.eplen, "Steps per episode (--task-opt eplen=N)");
  a.cuesOpt = cmd->add_option("--cues", a.cues,
                              "cue-reward: cues per episode (--ni); with 2, both show in every "
                              "trial and 'always respond' is optimal: a sanity check");
  a.cuesPerTrialOpt = cmd->add_option("--cues-per-trial", a.cuesPerTrial,
                                      "cue-reward: cues shown per trial: 2 (the reference) or 1 "
                                      "(a simpler association, used by the demo)");
  a.lrOpt = cmd->add_option("--lr", a.lr,
                            "Learning rate (default: the task's; Adam 1e-4 for cue-reward and "
                            "maze, SGD 1.0 for lm)");
  a.adamEpsOpt = cmd->add_option(
      "--adam-eps", a.adamEps, "Adam's epsilon (default: the task's; cue-reward 1e-6, maze 1e-4)");
  a.clipOpt = cmd->add_option(
      "--clip", a.clip, "Global gradient-norm clip (--gc; default: cue-reward 2, maze 4, lm 5)");
  a.bentOpt = cmd->add_option("--bent", a.bent,
                              "Weight of the squared-probability penalty (default: cue-reward "
                              "0.1, maze 0.03)");
  a.blossvOpt = cmd->add_option("--blossv", a.blossv, "Weight of the value loss (default 0.1)");
  a.gammaOpt = cmd->add_option("--gamma", a.gamma, "Discount (--gr; default 0.9)");
  a.rlOnly.push_back(cmd->add_option("--burn-in", o.config.burnIn,
                                     "Iterations without an optimizer step (reference: 101)"));
  a.rlOnly.push_back(
      cmd->add_option("--baseline", a.baseline,
                      "A2C baseline: first-element (the reference code's vs[t][0]) or "
                      "per-element (each episode's own value)"));
  a.rlOnly.push_back(
      cmd->add_option("--episode-rng", a.episodeRng,
                      "Where episodes draw their random numbers: auto (new runs: per-element "
                      "where the task steps single elements, else batch; --resume: the "
                      "checkpoint's), batch (one task and one policy generator for the batch, "
                      "as runs before per-element episodes), per-element (two per element, so "
                      "each episode runs start to end on one thread: faster). Given with "
                      "--resume, the run switches to it from the checkpoint's iteration on")
          ->check(CLI::IsMember({"auto", "batch", "per-element"})));
  cmd->add_option("--engine", o.engine,
                  "generated (the default: the example's C++ compiled at build time, or "
                  "compiled on demand for --spec and other -D sizes) | generic (the IR "
                  "interpreter) | cuda (the example's CUDA kernels, compiled at build time)");
  cmd->add_option("--memory-budget", o.memoryBudget,
                  "Generated engine: bytes the BPTT checkpoints may use (default 64 MiB)");
  cmd->add_option("--max-memory", o.maxMemory,
                  "Bytes the run may use (default 0: the memory available); a run estimated to "
                  "need more is refused before it allocates")
      ->type_name("BYTES")
      ->check(kNotNegative);
  cmd->add_option("--bptt-segment", o.bpttSegment,
                  "Generated engine: keep states every <k> steps and recompute in between "
                  "(default: planned from --memory-budget)");
  cmd->add_option("--stage-order", o.stageOrder, kStageOrderHelp)
      ->check(CLI::IsMember({"auto", "element", "stage"}));
  cmd->add_option("--out", o.config.outDir,
                  "Output folder: checkpoint.st, log.csv, learning_curve.png")
      ->type_name("DIR");
  cmd->add_flag("--resume", o.resume, "Continue the checkpoint in --out");
  a.lm.checkpointOpt = cmd->add_option("--checkpoint-every", o.config.checkpointEvery,
                                       "Iterations (LM: windows) between checkpoints (default "
                                       "100, LM 500; 0: only at the end)");
  addLanguageModelOptions(cmd, a.lm, a.lmOnly);
  a.rlOnly.insert(a.rlOnly.end(), {a.eplenOpt, a.cuesOpt, a.cuesPerTrialOpt, a.adamEpsOpt,
                                   a.bentOpt, a.blossvOpt, a.gammaOpt});
  cmd->add_option("--threads", a.threads, "Threads for the batch (default: all cores)");
  return cmd;
}

int tool::trainCommand(TrainArgs &a) {
  TrainOptions &o = a.opt;
  for (const std::string &library : a.taskLibraries) {
    try {
      loadTaskLibrary(library);
    } catch (const std::exception &e) {
      printError("dopa train", e.what());
      return 1;
    }
  }
  if (a.listTasks)
    return listTasks();
  if (a.task.empty())
    return usage("missing the task, e.g. dopa train maze (dopa train --list-tasks)");
  const std::vector<CLI::Option *> &foreign = a.task == "lm" ? a.rlOnly : a.lmOnly;
  for (const CLI::Option *opt : foreign)
    if (opt->count())
      return usage(opt->get_name() + (a.task == "lm" ? " is for the RL tasks, not dopa train lm"
                                                     : " is for dopa train lm, not the RL tasks"));
  if (a.task == "lm")
    return trainLanguageModel(a);
  const TaskInfo *info = taskRegistry().find(a.task);
  if (!info) {
    std::string names;
    for (const std::string &name : taskRegistry().names())
      names += (names.empty() ? "" : ", ") + name;
    return usage("unknown task '" + a.task + "' (tasks: " + names +
                 "; a plug-in's tasks need --task-library)");
  }
  if (o.config.outDir.empty())
    return usage("--out DIR is required");
  if (a.baseline != "first-element" && a.baseline != "per-element")
    return usage("--baseline is first-element or per-element");
  if (o.variant.empty() || o.variant.find_first_of("/.") != std::string::npos)
    return usage("--variant names an example network of the task, e.g. modul");
  if (o.config.batch < 1 || o.config.iterations < 1 || (a.eplenOpt->count() && a.eplen < 1))
    return usage("--batch, --eplen and --iters must be positive");
  if (!setThreads(a.threads))
    return usage(threadsMessage);
  if (a.seedsOpt->count()) {
    std::string error;
    if (!parseSeedList(a.seeds, o.seeds, error))
      return usage("--seeds: " + error);
    if (a.seedOpt->count())
      return usage("--seed and --seeds: give one of them");
    if (o.comm)
      return usage("--seeds runs its seeds in one process; under mpirun, run one seed per job");
  }
  if (o.runsAtOnce < 0 || (o.runsAtOnce > 0 && o.seeds.empty()))
    return usage("--runs-at-once takes a positive count, with --seeds");
  applyDefaults(a, info->defaults);
  if (std::string problem = numbersProblem(a); !problem.empty())
    return usage(problem);
  if (!isTrainingEngine(o.engine))
    return usage("--engine is generated, generic or cuda");
  o.spec.traceBf16 = isBf16Precision(a.tracePrecision);
  if (std::string problem = tracePrecisionProblem(o.spec.traceBf16, o.engine); !problem.empty())
    return usage(problem);
  if (o.engine == "cuda" && !o.spec.path.empty())
    return usage("--spec runs on --engine generated (compiled on demand into the cache) or "
                 "generic; the cuda engine runs the examples compiled at build time");
  o.specGiven = !o.spec.path.empty();
  if (a.networkOpt->count() && !o.specGiven)
    return usage("--network picks a network of --spec FILE (an example has one)");
  int code = 0;
  TaskOptions taskOptions;
  if (!checkTaskOptions(a, *info, taskOptions, code))
    return code;
  std::string givenSpec = o.spec.path;
  // The spec: --spec, or the variant's example (the generic engine reads it; the generated engine
  // runs the example compiled into this build, or compiles the spec on demand at a size the build
  // lacks; the cuda engine goes on without it).
  o.task = info->examplesDir;
  if (o.spec.path.empty()) {
    try {
      o.spec.path = exampleSpecPath(info->examplesDir, o.variant);
      o.spec.includeDirs = {exampleDir(info->examplesDir)};
      if (o.engine == "generic" && !std::filesystem::exists(o.spec.path))
        throw std::runtime_error("no example network '" + o.variant + "' for the " + a.task +
                                 " task: " + o.spec.path + " does not exist");
    } catch (const std::exception &e) {
      if (o.engine == "generic") // a --variant this build has no example of: the argument's fault
        return usage(e.what());
    }
  }
  o.spec.dimOverrides = o.dims;
  o.config.a2c.baseline = a.baseline == "first-element" ? A2CConfig::Baseline::FirstElement
                                                        : A2CConfig::Baseline::PerElement;
  o.config.episodeRng = a.episodeRng == "batch"         ? TrainConfig::EpisodeRng::Batch
                        : a.episodeRng == "per-element" ? TrainConfig::EpisodeRng::PerElement
                                                        : TrainConfig::EpisodeRng::Auto;
  o.config.threads = omp_get_max_threads(); // --threads, or all cores: recorded in checkpoints
  o.config.task = a.task;
  std::string dimsText;
  for (const std::string &d : o.dims)
    dimsText += " -D" + d;
  o.config.description = a.task + " " + (givenSpec.empty() ? o.variant : givenSpec) + dimsText +
                         tracePrecisionSuffix(o.spec.traceBf16);
  return runTrain(o, *info, taskOptions);
}
