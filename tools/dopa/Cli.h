//===- Cli.h - Option checks shared by the dopa subcommands ---------------===//
//
// The usage error (exit code 2), the thread count, the numeric range checks and the repeated
// options (-D, --task-opt) that every subcommand's parser uses (dopa.cpp, TrainCommand.cpp).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "Console.h"

#include "dopa/runtime/FileIO.h"

#include <CLI/CLI.hpp>

#include <omp.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace dopa::tool {

/// A usage error: the message and a pointer to --help; exit code 2.
inline int usage(const std::string &msg) {
  printError("dopa", msg + " (see dopa <command> --help)");
  return 2;
}

/// --threads: 0 keeps OpenMP's default (all cores); false for a negative count.
inline bool setThreads(int n) {
  if (n < 0)
    return false;
  if (n > 0)
    omp_set_num_threads(n);
  return true;
}

inline const char *const threadsMessage = "--threads must be positive (0: all cores)";

/// The help of --stage-order (dopa bench, dopa train).
inline const char *const kStageOrderHelp =
    "Generated engine: auto (stage-major for networks with batched products and no matrix-sized "
    "state) | element (each element's step whole, elements in parallel) | stage (one group of "
    "elements per thread, each stage for the whole group, shared-matrix products as GEMMs); "
    "default: DOPA_STAGE_ORDER or auto";

/// The help of --trace-precision (dopa bench, dopa train).
inline const char *const kTracePrecisionHelp =
    "Generated engine: how the float build stores the traces (matrix-shaped states): float "
    "(default) | bf16 (bfloat16, half the bytes; arithmetic stays float; the network is compiled "
    "on demand)";

/// "--lr must be a positive finite number (got nan)" when `v` is not one; else "".
inline std::string positiveFinite(const char *flag, double v) {
  if (std::isfinite(v) && v > 0)
    return "";
  return std::string(flag) + " must be a positive finite number (got " + format("%g", v) + ")";
}

/// "--burn-in must not be negative (got -3)" when `v` is negative; else "".
inline std::string notNegative(const char *flag, long long v) {
  if (v >= 0)
    return "";
  return std::string(flag) + " must not be negative (got " + std::to_string(v) + ")";
}

/// For counts, byte sizes and seeds: a leading '-' is refused as the option's usage error (CLI11
/// 2.1 would read "-1" into an unsigned option as 2^64 - 1).
inline const CLI::Validator kNotNegative(
    [](std::string &text) -> std::string {
      return text.find('-') == 0 ? "must not be negative (got " + text + ")" : std::string();
    },
    "", "not negative");

/// "<flag> <path>: <why>" when an output the run writes at its end could not be written there
/// (writeProblem); "" when it can, or for "" and "-". Checked before the work, so that a long run's
/// result is not lost for a typo. `willCreate`: a folder the run makes first (its --out), which
/// need not exist yet.
inline std::string unwritableOutput(const std::string &flag, const std::string &path,
                                    const std::string &willCreate = "") {
  namespace fs = std::filesystem;
  if (path.empty() || path == "-")
    return "";
  auto normal = [](const fs::path &p) { // absolute, "." and ".." gone, no trailing separator
    std::error_code ec;
    fs::path out = fs::absolute(p, ec).lexically_normal();
    return out.has_filename() ? out : out.parent_path();
  };
  std::error_code ec;
  if (!willCreate.empty() && !fs::exists(willCreate, ec) &&
      normal(fs::path(path).parent_path()) == normal(willCreate))
    return "";
  std::string why = writeProblem(path);
  return why.empty() ? "" : flag + " " + path + ": " + why;
}

/// The engines that train a network (train and bench).
inline bool isTrainingEngine(const std::string &engine) {
  return engine == "generated" || engine == "generic" || engine == "cuda";
}

/// One value per occurrence: `-D H=4 -D W=2` (and `-DH=4`), never the arguments after it.
inline CLI::Option *addRepeated(CLI::App *cmd, const std::string &name,
                                std::vector<std::string> &values, const std::string &help,
                                const std::string &valueName) {
  return cmd->add_option(name, values, help)->type_name(valueName)->allow_extra_args(false);
}

} // namespace dopa::tool
