//===- MazeTest.cpp - The grid-maze task's layout, rules and statistics --===//
//
// Layout (border, pillars, free centre; cell counts at sizes 5-15 against a formula), input layout
// after reset and after a step, moves and wall bumps, the reward and the teleport, the statistics
// of reward cells and teleports (every allowed cell, roughly uniform), determinism for a seed, a
// random-policy episode checked step by step against the rules, and bad configurations.
//
//===----------------------------------------------------------------------===//
#include "dopa/train/Maze.h"

#include <doctest/doctest.h>

#include <cmath>
#include <cstddef>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace dopa;

namespace {
constexpr int obsSize = MazeConfig::observationSize;

/// The reference's layout, written independently of MazeTask: walls on the border (and outside
/// it), a pillar on every interior (even, even) cell except the centre.
bool expectedWall(int n, int row, int col) {
  if (row <= 0 || col <= 0 || row >= n - 1 || col >= n - 1)
    return true;
  int ctr = n / 2;
  return row % 2 == 0 && col % 2 == 0 && !(row == ctr && col == ctr);
}

/// ((n-3)/2)^2 (even, even) interior cells, less one when the centre would be one of them.
int expectedPillars(int n) {
  int perSide = (n - 3) / 2;
  return perSide * perSide - ((n / 2) % 2 == 0 ? 1 : 0);
}
int expectedFreeCells(int n) { return (n - 2) * (n - 2) - expectedPillars(n); }

using CellCounts = std::map<std::pair<int, int>, int>;

/// Every count within 50% of the mean, and a chi-square statistic far below what a biased draw
/// gives (df + 8 sd of the chi-square distribution).
void checkRoughlyUniform(const CellCounts &counts, int draws) {
  REQUIRE(!counts.empty());
  double cells = double(counts.size());
  double mean = draws / cells;
  double chi2 = 0;
  for (const auto &entry : counts) {
    int row = entry.first.first, col = entry.first.second, count = entry.second;
    CAPTURE(row);
    CAPTURE(col);
    CHECK(count > 0.5 * mean);
    CHECK(count < 1.5 * mean);
    chi2 += (count - mean) * (count - mean) / mean;
  }
  double df = cells - 1;
  CHECK(chi2 < df + 8 * std::sqrt(2 * df));
}

/// The 9 patch inputs of batch element b.
std::vector<float> patch(const std::vector<float> &x, int b) {
  auto begin = x.begin() + std::ptrdiff_t(b) * obsSize;
  return std::vector<float>(begin, begin + 9);
}
} // namespace

TEST_CASE("the maze layout: border walls, (even, even) pillars, a free centre") {
  // The counts of the formula, by hand: 13 is the reference run, 11 the paper's 9x9 text.
  CHECK(expectedFreeCells(13) == 97);
  CHECK(expectedPillars(13) == 24);
  CHECK(expectedFreeCells(11) == 65);
  CHECK(expectedPillars(11) == 16);
  CHECK(expectedFreeCells(9) == 41);
  CHECK(expectedPillars(9) == 8);
  CHECK(expectedFreeCells(5) == 9);

  for (int n : {5, 7, 9, 11, 13, 15}) {
    CAPTURE(n);
    MazeConfig cfg;
    cfg.size = n;
    MazeTask task(cfg, 1);
    CHECK(task.size() == n);
    CHECK(task.centre() == n / 2);
    int freeCells = 0, pillars = 0;
    for (int row = -1; row <= n; ++row)
      for (int col = -1; col <= n; ++col) {
        CAPTURE(row);
        CAPTURE(col);
        CHECK(task.isWall(row, col) == expectedWall(n, row, col));
        bool interior = row >= 1 && col >= 1 && row <= n - 2 && col <= n - 2;
        freeCells += !task.isWall(row, col);
        pillars += interior && task.isWall(row, col);
      }
    CHECK(freeCells == expectedFreeCells(n));
    CHECK(pillars == expectedPillars(n));
    CHECK_FALSE(task.isWall(n / 2, n / 2));
    for (int i = 0; i < n; ++i) {
      CHECK(task.isWall(0, i));
      CHECK(task.isWall(n - 1, i));
      CHECK(task.isWall(i, 0));
      CHECK(task.isWall(i, n - 1));
    }
  }

  // The reference's 13x13 maze, drawn.
  const char *picture[13] = {"#############", "#...........#", "#.#.#.#.#.#.#", "#...........#",
                             "#.#.#.#.#.#.#", "#...........#", "#.#.#...#.#.#", "#...........#",
                             "#.#.#.#.#.#.#", "#...........#", "#.#.#.#.#.#.#", "#...........#",
                             "#############"};
  MazeTask task(MazeConfig(), 1);
  for (int row = 0; row < 13; ++row)
    for (int col = 0; col < 13; ++col) {
      CAPTURE(row);
      CAPTURE(col);
      CHECK(task.isWall(row, col) == (picture[row][col] == '#'));
    }
}

TEST_CASE("the maze implements the episodic task interface") {
  std::unique_ptr<EpisodicTask> task = std::make_unique<MazeTask>(MazeConfig(), 30);
  CHECK(task->batch() == 30);
  CHECK(task->observationSize() == 17);
  CHECK(task->numActions() == 4);
  CHECK(task->episodeLength() == 200);
}

TEST_CASE("the observation after reset: the patch around the centre, bias, time 0, action 0") {
  MazeConfig cfg;
  MazeTask task(cfg, 3);
  Rng rng(1);
  task.reset(rng);
  CHECK(task.stepIndex() == 0);
  std::vector<float> x(size_t(3 * obsSize), -1.f);
  task.observe(x.data());
  for (int b = 0; b < 3; ++b) {
    CAPTURE(b);
    const MazeTask::Element &e = task.element(b);
    CHECK(e.row == 6);
    CHECK(e.col == 6);
    CHECK(e.prevReward == 0.f);
    CHECK(e.prevAction == 0);
    const float *obs = &x[size_t(b * obsSize)];
    CHECK(patch(x, b) == std::vector<float>(9, 0.f)); // at 13 the centre's neighbours are free
    CHECK(obs[9] == 0.f);                             // unused
    CHECK(obs[10] == 1.f);                            // bias
    CHECK(obs[11] == 0.f);                            // time 0
    CHECK(obs[12] == 0.f);                            // no reward yet
    CHECK(obs[13] == 1.f);                            // one-hot action 0 at step 0 (the quirk)
    CHECK(obs[14] == 0.f);
    CHECK(obs[15] == 0.f);
    CHECK(obs[16] == 0.f);
  }

  // Patches by hand, row-major: the top-left corner, and beside two pillars.
  task.placeForTest(0, 1, 1, 11, 11);
  task.placeForTest(1, 3, 2, 11, 11);
  task.placeForTest(2, 6, 7, 11, 11);
  task.observe(x.data());
  CHECK(patch(x, 0) == std::vector<float>{1, 1, 1, 1, 0, 0, 1, 0, 1});
  CHECK(patch(x, 1) == std::vector<float>{0, 1, 0, 0, 0, 0, 0, 1, 0});
  CHECK(patch(x, 2) == std::vector<float>{0, 0, 0, 0, 0, 1, 0, 0, 0});
}

TEST_CASE("the observation after a step: time 1/200, the previous action and reward") {
  MazeConfig cfg;
  cfg.wallPenalty = 0.5f;
  MazeTask task(cfg, 2);
  Rng rng(2);
  task.reset(rng);
  task.placeForTest(0, 6, 6, 1, 1);
  task.placeForTest(1, 1, 1, 11, 11);
  int actions[2] = {3, 0}; // element 0 moves right, element 1 bumps into the top wall
  float rewards[2] = {7, 7};
  task.act(actions, rewards, rng);
  CHECK(rewards[0] == 0.f);
  CHECK(rewards[1] == -0.5f);
  CHECK(task.stepIndex() == 1);
  CHECK(task.element(0).row == 6);
  CHECK(task.element(0).col == 7);

  std::vector<float> x(size_t(2 * obsSize), -1.f);
  task.observe(x.data());
  const float *obs0 = x.data(), *obs1 = x.data() + obsSize;
  CHECK(patch(x, 0) == std::vector<float>{0, 0, 0, 0, 0, 1, 0, 0, 0});
  CHECK(obs0[9] == 0.f);
  CHECK(obs0[10] == 1.f);
  CHECK(obs0[11] == float(1.0 / 200));
  CHECK(obs0[12] == 0.f);
  CHECK(std::vector<float>(obs0 + 13, obs0 + 17) == std::vector<float>{0, 0, 0, 1});

  CHECK(patch(x, 1) == std::vector<float>{1, 1, 1, 1, 0, 0, 1, 0, 1});
  CHECK(obs1[9] == 0.f);
  CHECK(obs1[10] == 1.f);
  CHECK(obs1[11] == float(1.0 / 200));
  CHECK(obs1[12] == -0.5f);
  CHECK(std::vector<float>(obs1 + 13, obs1 + 17) == std::vector<float>{1, 0, 0, 0});
}

TEST_CASE("each action moves one cell; a move into a wall stays put and costs the penalty") {
  MazeConfig cfg;
  cfg.wallPenalty = 0.5f;
  MazeTask task(cfg, 1);
  Rng rng(3);
  task.reset(rng);

  struct Move {
    int action, dRow, dCol;
  };
  for (Move m : {Move{0, -1, 0}, Move{1, 1, 0}, Move{2, 0, -1}, Move{3, 0, 1}}) {
    CAPTURE(m.action);
    task.placeForTest(0, 5, 5, 1, 1);
    float r = 7;
    task.act(&m.action, &r, rng);
    CHECK(r == 0.f);
    CHECK(task.element(0).row == 5 + m.dRow);
    CHECK(task.element(0).col == 5 + m.dCol);
    CHECK(task.element(0).prevAction == m.action);
    CHECK(task.element(0).prevReward == 0.f);
  }

  struct Bump {
    int row, col, action;
  };
  // Border walls from (1, 1) and (11, 11); the pillars (2, 2), (4, 2), (2, 4) from beside them.
  for (Bump bump : {Bump{1, 1, 0}, Bump{1, 1, 2}, Bump{11, 11, 1}, Bump{11, 11, 3}, Bump{3, 2, 0},
                    Bump{3, 2, 1}, Bump{2, 3, 2}, Bump{2, 3, 3}}) {
    CAPTURE(bump.row);
    CAPTURE(bump.col);
    CAPTURE(bump.action);
    task.placeForTest(0, bump.row, bump.col, 5, 5);
    float r = 7;
    task.act(&bump.action, &r, rng);
    CHECK(r == -0.5f);
    CHECK(task.element(0).row == bump.row);
    CHECK(task.element(0).col == bump.col);
    CHECK(task.element(0).prevAction == bump.action);
    CHECK(task.element(0).prevReward == -0.5f);
  }
  CHECK(task.stepIndex() == 12);
}

TEST_CASE("stepping onto the reward cell earns the reward and teleports to another free cell") {
  MazeConfig cfg;
  cfg.episodeLength = 100000;
  MazeTask task(cfg, 1);
  Rng rng(4);
  task.reset(rng);
  const int rewardRow = 5, rewardCol = 5;

  // One hit, looked at closely.
  task.placeForTest(0, 6, 5, rewardRow, rewardCol);
  int up = 0;
  float r = 0;
  task.act(&up, &r, rng);
  CHECK(r == 10.f);
  const MazeTask::Element &e = task.element(0);
  CHECK_FALSE(task.isWall(e.row, e.col));
  CHECK_FALSE((e.row == rewardRow && e.col == rewardCol));
  CHECK(e.rewardRow == rewardRow);
  CHECK(e.rewardCol == rewardCol);
  std::vector<float> x(static_cast<size_t>(obsSize));
  task.observe(x.data());
  CHECK(x[12] == 10.f);
  CHECK(x[13] == 1.f);

  // Many hits, from each side in turn: every free cell but the reward cell (the centre included),
  // never a wall, roughly uniform.
  const int fromRow[4] = {1, -1, 0, 0}, fromCol[4] = {0, 0, 1, -1}; // below, above, right, left
  CellCounts landed;
  const int draws = 20000;
  for (int i = 0; i < draws; ++i) {
    int action = i % 4;
    task.placeForTest(0, rewardRow + fromRow[action], rewardCol + fromCol[action], rewardRow,
                      rewardCol);
    r = 0;
    task.act(&action, &r, rng);
    REQUIRE(r == 10.f);
    REQUIRE_FALSE(task.isWall(e.row, e.col));
    REQUIRE_FALSE((e.row == rewardRow && e.col == rewardCol));
    ++landed[{e.row, e.col}];
  }
  CHECK(landed.size() == size_t(expectedFreeCells(13) - 1));
  CHECK(landed.count({6, 6}) == 1);
  checkRoughlyUniform(landed, draws);
}

TEST_CASE("reset draws the reward cell uniformly over the free cells but the centre") {
  MazeConfig cfg;
  const int batch = 30, resets = 500;
  MazeTask task(cfg, batch);
  Rng rng(5);
  CellCounts cells;
  for (int i = 0; i < resets; ++i) {
    task.reset(rng);
    for (int b = 0; b < batch; ++b) {
      const MazeTask::Element &e = task.element(b);
      REQUIRE_FALSE(task.isWall(e.rewardRow, e.rewardCol));
      REQUIRE_FALSE((e.rewardRow == 6 && e.rewardCol == 6));
      REQUIRE(e.row == 6);
      REQUIRE(e.col == 6);
      ++cells[{e.rewardRow, e.rewardCol}];
    }
  }
  CHECK(cells.size() == size_t(expectedFreeCells(13) - 1));
  checkRoughlyUniform(cells, batch * resets);
}

TEST_CASE("reset starts a fresh episode") {
  MazeConfig cfg;
  MazeTask task(cfg, 1);
  Rng rng(8);
  task.reset(rng);
  task.placeForTest(0, 4, 5, 5, 5);
  int down = 1;
  float r = 0;
  task.act(&down, &r, rng);
  REQUIRE(r == 10.f);
  REQUIRE(task.element(0).prevAction == 1);
  task.reset(rng);
  CHECK(task.stepIndex() == 0);
  CHECK(task.element(0).row == 6);
  CHECK(task.element(0).col == 6);
  CHECK(task.element(0).prevReward == 0.f);
  CHECK(task.element(0).prevAction == 0);
  std::vector<float> x(static_cast<size_t>(obsSize));
  task.observe(x.data());
  CHECK(x[11] == 0.f);
  CHECK(x[12] == 0.f);
  CHECK(std::vector<float>(x.begin() + 13, x.end()) == std::vector<float>{1, 0, 0, 0});
}

TEST_CASE("the same seed and actions give the same episodes") {
  auto run = [](uint64_t seed) {
    MazeConfig cfg;
    const int batch = 4;
    MazeTask task(cfg, batch);
    Rng rng(seed), policy(99);
    std::vector<float> trace;
    std::vector<int> actions(batch);
    std::vector<float> rewards(batch), x(size_t(batch * obsSize));
    for (int episode = 0; episode < 3; ++episode) {
      task.reset(rng);
      for (int t = 0; t < cfg.episodeLength; ++t) {
        task.observe(x.data());
        trace.insert(trace.end(), x.begin(), x.end());
        for (int &a : actions)
          a = int(policy.below(4));
        task.act(actions.data(), rewards.data(), rng);
        trace.insert(trace.end(), rewards.begin(), rewards.end());
      }
    }
    return trace;
  };
  std::vector<float> first = run(11);
  CHECK(first == run(11));
  CHECK(first != run(12));
}

TEST_CASE("a random policy's episode follows the rules at every step") {
  MazeConfig cfg; // wall penalty 0: rewards are 0 or 10
  const int batch = 8, n = cfg.size;
  MazeTask task(cfg, batch);
  Rng rng(6), policy(7);
  task.reset(rng);
  const int dRow[4] = {-1, 1, 0, 0}, dCol[4] = {0, 0, -1, 1};
  std::vector<int> actions(batch);
  std::vector<float> rewards(batch), x(size_t(batch * obsSize));
  double total = 0;
  int hits = 0;
  for (int t = 0; t < cfg.episodeLength; ++t) {
    CAPTURE(t);
    task.observe(x.data());
    std::vector<MazeTask::Element> before;
    for (int b = 0; b < batch; ++b) {
      const MazeTask::Element &e = task.element(b);
      const float *obs = &x[size_t(b * obsSize)];
      for (int i = 0; i < 9; ++i)
        CHECK(obs[i] == (expectedWall(n, e.row - 1 + i / 3, e.col - 1 + i % 3) ? 1.f : 0.f));
      CHECK(obs[11] == float(double(t) / cfg.episodeLength));
      CHECK(obs[12] == e.prevReward);
      CHECK(obs[13 + e.prevAction] == 1.f);
      before.push_back(e);
      actions[size_t(b)] = int(policy.below(4));
    }
    task.act(actions.data(), rewards.data(), rng);
    for (int b = 0; b < batch; ++b) {
      CAPTURE(b);
      const MazeTask::Element &was = before[size_t(b)], &is = task.element(b);
      int a = actions[size_t(b)];
      int row = was.row + dRow[a], col = was.col + dCol[a];
      if (expectedWall(n, row, col)) {
        row = was.row;
        col = was.col;
      }
      CHECK(is.rewardRow == was.rewardRow);
      CHECK(is.rewardCol == was.rewardCol);
      if (row == was.rewardRow && col == was.rewardCol) {
        CHECK(rewards[size_t(b)] == 10.f);
        ++hits;
      } else {
        CHECK(rewards[size_t(b)] == 0.f);
        CHECK(is.row == row);
        CHECK(is.col == col);
      }
      CHECK_FALSE(expectedWall(n, is.row, is.col));
      CHECK_FALSE((is.row == is.rewardRow && is.col == is.rewardCol));
      CHECK(is.prevAction == a);
      CHECK(is.prevReward == rewards[size_t(b)]);
      total += rewards[size_t(b)];
    }
  }
  CHECK(task.stepIndex() == 200);
  CHECK(hits > 0);
  CHECK(total == 10.0 * hits);
  CHECK(std::fmod(total, 10.0) == 0.0);
  // The episode is over: another step is an error until the next reset.
  CHECK_THROWS_AS(task.act(actions.data(), rewards.data(), rng), std::logic_error);
  task.reset(rng);
  CHECK_NOTHROW(task.act(actions.data(), rewards.data(), rng));
}

TEST_CASE("bad configurations and actions are rejected") {
  for (int size : {-1, 0, 1, 2, 3, 4, 6, 12, 14}) {
    CAPTURE(size);
    MazeConfig cfg;
    cfg.size = size;
    CHECK_THROWS_WITH_AS(MazeTask(cfg, 1), doctest::Contains("odd and at least 5"),
                         std::invalid_argument);
  }
  MazeConfig cfg;
  CHECK_NOTHROW(MazeTask(cfg, 1));
  CHECK_THROWS_AS(MazeTask(cfg, 0), std::invalid_argument);
  cfg.episodeLength = 0;
  CHECK_THROWS_AS(MazeTask(cfg, 1), std::invalid_argument);
  cfg.episodeLength = 200;
  cfg.reward = NAN;
  CHECK_THROWS_AS(MazeTask(cfg, 1), std::invalid_argument);

  // An action outside [0, 4) throws before any element moves.
  MazeTask task(MazeConfig(), 2);
  Rng rng(9);
  task.reset(rng);
  task.placeForTest(0, 5, 5, 1, 1);
  for (int bad : {-1, 4, 100}) {
    CAPTURE(bad);
    int actions[2] = {3, bad};
    float rewards[2] = {0, 0};
    CHECK_THROWS_AS(task.act(actions, rewards, rng), std::out_of_range);
    CHECK(task.element(0).col == 5);
    CHECK(task.stepIndex() == 0);
  }
  // placeForTest refuses walls and unknown elements.
  CHECK_THROWS_AS(task.placeForTest(0, 2, 2, 1, 1), std::invalid_argument);
  CHECK_THROWS_AS(task.placeForTest(0, 1, 1, 0, 1), std::invalid_argument);
  CHECK_THROWS_AS(task.placeForTest(2, 1, 1, 5, 5), std::out_of_range);
  CHECK_THROWS_AS(task.element(2), std::out_of_range);
}

TEST_CASE("settings name the maze size, episode length, reward and wall penalty") {
  MazeConfig cfg;
  auto settingsOf = [](const MazeTask &task) {
    auto s = task.settings();
    CHECK(s.size() == 4);
    return std::map<std::string, std::string>(s.begin(), s.end());
  };
  auto s = settingsOf(MazeTask(cfg, 1));
  CHECK(s["maze_size"] == "13");
  CHECK(s["episode_length"] == "200");
  CHECK(s["reward"] == "10");
  CHECK(s["wall_penalty"] == "0");
  cfg.size = 11;
  cfg.episodeLength = 150;
  cfg.reward = 2.5f;
  cfg.wallPenalty = 0.1f;
  s = settingsOf(MazeTask(cfg, 1));
  CHECK(s["maze_size"] == "11");
  CHECK(s["episode_length"] == "150");
  CHECK(s["reward"] == "2.5");
  CHECK(s["wall_penalty"] == "0.10000000149011612"); // the float's double value, 17 digits
}
