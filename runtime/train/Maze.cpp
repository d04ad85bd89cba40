//===- Maze.cpp - The grid-maze navigation task ---------------------------===//
//
// Implements MazeTask as maze/batch.py does (see Maze.h); the batch.py line of each rule is named
// where it is implemented.
//
//===----------------------------------------------------------------------===//
#include "dopa/train/Maze.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>

using namespace dopa;

MazeTask::MazeTask(MazeConfig config, int batch) : ElementTask("maze"), cfg(config), B(batch) {
  if (cfg.size < 5 || cfg.size % 2 == 0)
    throw std::invalid_argument("maze: the size must be odd and at least 5 (got " +
                                std::to_string(cfg.size) + ")");
  if (cfg.episodeLength < 1)
    throw std::invalid_argument("maze: the episode length must be at least 1 (got " +
                                std::to_string(cfg.episodeLength) + ")");
  if (batch < 1)
    throw std::invalid_argument("maze: the batch must be at least 1 (got " + std::to_string(batch) +
                                ")");
  if (!std::isfinite(cfg.reward) || !std::isfinite(cfg.wallPenalty))
    throw std::invalid_argument("maze: the reward and the wall penalty must be finite");

  // batch.py L305-320: border walls, a pillar on every (even, even) interior cell, centre free.
  int n = cfg.size;
  lab.assign(size_t(n) * size_t(n), 1);
  for (int row = 1; row < n - 1; ++row)
    for (int col = 1; col < n - 1; ++col)
      lab[size_t(row) * size_t(n) + size_t(col)] = (row % 2 == 0 && col % 2 == 0) ? 1 : 0;
  lab[size_t(centre()) * size_t(n) + size_t(centre())] = 0;

  // Before the first reset every agent is at the centre and there is no reward cell.
  elems.resize(size_t(B));
  for (Element &e : elems)
    e.row = e.col = centre();
}

bool MazeTask::isWall(int row, int col) const {
  int n = cfg.size;
  if (row < 0 || col < 0 || row >= n || col >= n)
    return true;
  return lab[size_t(row) * size_t(n) + size_t(col)] != 0;
}

void MazeTask::drawFreeCell(Rng &rng, int avoidRow, int avoidCol, int &row, int &col) const {
  // np.random.randint(1, LABSIZE - 1) for the row, then for the column, both redrawn until the
  // cell is free and not the one to avoid (batch.py L359-362 and L447-451).
  uint64_t span = uint64_t(cfg.size - 2);
  do {
    row = 1 + int(rng.below(span));
    col = 1 + int(rng.below(span));
  } while (isWall(row, col) || (row == avoidRow && col == avoidCol));
}

void MazeTask::resetElement(int b, Rng &rng) {
  // batch.py L352-385: per element in order (ElementTask::reset), the reward cell (never a wall,
  // never the centre), the agent at the centre; reward 0 and numactionschosen 0 for the first
  // observation.
  Element &e = elems.at(size_t(b));
  drawFreeCell(rng, centre(), centre(), e.rewardRow, e.rewardCol);
  e.row = e.col = centre();
  e.prevReward = 0;
  e.prevAction = 0;
}

void MazeTask::observeElement(int b, int step, float *obs) const {
  // batch.py L392-402.
  const Element &e = elems.at(size_t(b));
  const int n = MazeConfig::observationSize;
  std::fill(obs, obs + n, 0.f);
  for (int dr = -1; dr <= 1; ++dr)
    for (int dc = -1; dc <= 1; ++dc)
      obs[(dr + 1) * 3 + (dc + 1)] = isWall(e.row + dr, e.col + dc) ? 1.f : 0.f;
  // obs[9] is never written by the reference: it stays 0.
  obs[10] = 1.f;                                             // bias
  obs[11] = float(double(step) / double(cfg.episodeLength)); // numstep / eplen
  obs[12] = e.prevReward;                                    // reward of the last step
  obs[13 + e.prevAction] = 1.f;                              // numactionschosen
}

float MazeTask::actElement(int b, int step, int a, Rng &rng) {
  // batch.py L418-451 (ElementTask::act steps the elements in order).
  checkStep(b, step, a);
  Element &e = elems.at(size_t(b));
  int row = e.row, col = e.col;
  switch (a) {
  case 0: --row; break; // Up
  case 1: ++row; break; // Down
  case 2: --col; break; // Left
  case 3: ++col; break; // Right
  default: break;       // not reached: checked above
  }
  float r = 0;
  if (isWall(row, col)) {
    r -= cfg.wallPenalty; // no move
  } else {
    e.row = row;
    e.col = col;
  }
  // The reward is checked after the (possibly blocked) move; then teleport anywhere free but
  // onto the reward cell (the centre included).
  if (e.row == e.rewardRow && e.col == e.rewardCol) {
    r += cfg.reward;
    drawFreeCell(rng, e.rewardRow, e.rewardCol, e.row, e.col);
  }
  e.prevReward = r;
  e.prevAction = a;
  return r;
}

std::vector<std::pair<std::string, std::string>> MazeTask::settings() const {
  return {{"maze_size", std::to_string(cfg.size)},
          {"episode_length", std::to_string(cfg.episodeLength)},
          {"reward", settingText(double(cfg.reward))},
          {"wall_penalty", settingText(double(cfg.wallPenalty))}};
}

void MazeTask::placeForTest(int b, int row, int col, int rewardRow, int rewardCol) {
  if (b < 0 || b >= B)
    throw std::out_of_range("maze: batch element " + std::to_string(b) + " is not in [0, " +
                            std::to_string(B) + ")");
  if (isWall(row, col) || isWall(rewardRow, rewardCol))
    throw std::invalid_argument("maze: the agent and the reward cell must be on free cells");
  Element &e = elems[size_t(b)];
  e.row = row;
  e.col = col;
  e.rewardRow = rewardRow;
  e.rewardCol = rewardCol;
}
