//===- TrainCommand.h - `dopa train`: its options and their checks --------===//
//
// The options of `dopa train` bound to TrainOptions where they map one to one, the task's own
// (--task-opt and the shortcuts), the optimizer settings whose defaults come from the task, and the
// checks that turn them into a task and a run (TrainCommand.cpp).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "Commands.h"

#include <CLI/CLI.hpp>

#include <string>
#include <vector>

namespace dopa::tool {

/// `dopa train lm`'s own options (TrainLM.cpp).
struct LMArgs {
  std::string model = "basic_lstm", data;
  int epochs = 13, bptt = 20, decayStart = 5, evalBatch = 10, testBatch = 1;
  long long limitBatches = 0, stopAfter = 0;
  double lrDecay = 0.35, l2 = 1e-6, initScale = 0.1;
  bool noVerify = false;
  std::string saveInit, saveParams;
  CLI::Option *batchOpt = nullptr, *checkpointOpt = nullptr;
  // The large model's recipe (LMRecipe.h); the recipe sets the defaults of the options not given.
  std::string recipe;       // zaremba | awd; empty: awd for the large models, else zaremba
  std::string loss = "sum"; // sum | mean (over the window's steps)
  std::string bpttMode = "fixed";
  double ar = 0, tar = 0, alphaGradDiv = 1;
  int asgdAfter = 0, asgdNonmono = 0;
  CLI::App *cmd = nullptr; // to ask which options were given
  bool given(const char *name) const { return cmd && cmd->get_option(name)->count() > 0; }
};

/// `dopa train` as parsed, before the checks.
struct TrainArgs {
  TrainOptions opt;
  std::string task, baseline = "first-element", episodeRng = "auto";
  std::vector<std::string> taskOpts, taskLibraries;
  std::string tracePrecision = "float";
  CLI::Option *networkOpt = nullptr;         // --network: only with --spec
  int eplen = 0, cues = 0, cuesPerTrial = 0; // shortcuts for --task-opt
  double lr = 0, clip = 0, bent = 0, blossv = 0, gamma = 0, adamEps = 0; // defaults: the task's
  CLI::Option *eplenOpt = nullptr, *cuesOpt = nullptr, *cuesPerTrialOpt = nullptr;
  CLI::Option *lrOpt = nullptr, *clipOpt = nullptr, *bentOpt = nullptr, *blossvOpt = nullptr;
  CLI::Option *gammaOpt = nullptr, *adamEpsOpt = nullptr;
  int threads = 0;
  std::string seeds; // --seeds 0-9,12
  CLI::Option *seedOpt = nullptr, *seedsOpt = nullptr;
  bool listTasks = false;
  LMArgs lm;
  // Options of one kind of training only: given to the other, they are usage errors.
  std::vector<CLI::Option *> rlOnly, lmOnly;
};

CLI::App *addTrainOptions(CLI::App &app, TrainArgs &args);
/// The checks, then runTrain. Exit codes as in Commands.h.
int trainCommand(TrainArgs &args);
/// The seeds of `--seeds`: "0-9", "1,4,7", "0-4,10-14"; each seed once, in the order given. False,
/// with the problem in `error`, when the text is not such a list.
bool parseSeedList(const std::string &text, std::vector<uint64_t> &seeds, std::string &error);
/// `dopa train lm`: the language model on a corpus (TrainLM.cpp).
int trainLanguageModel(TrainArgs &args);

} // namespace dopa::tool
