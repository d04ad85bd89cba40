//===- Maze.h - The grid-maze navigation task -----------------------------===//
//
// The grid maze of Backpropamine (Fig. 2), exactly as the reference code (maze/batch.py, run with
// --msize 13) defines it. The maze is a size x size grid: walls on the border, a pillar on every
// interior cell whose row and column are both even, the centre cell kept free (97 free cells at
// size 13). Per episode and batch element a hidden reward cell is drawn uniformly over the free
// cells other than the centre, and the agent starts at the centre. Each step the agent moves Up,
// Down, Left or Right (actions 0-3); a move into a wall leaves it in place and costs wallPenalty.
// Stepping onto the reward cell earns `reward` and teleports the agent to a uniformly random free
// cell other than the reward cell. The agent sees only its 3x3 neighbourhood, so it has to find the
// reward cell and then remember where it is. Inputs (17 per step):
//   [0:9] the 3x3 patch around the agent, row-major, 1 = wall [9] unused 0 [10] bias 1
//   [11] step/episodeLength [12] previous reward [13:17] one-hot previous action
//
// Quirks of the reference reproduced here, one line each:
// - At step 0 the previous action is one-hot action 0 (Up), not all-zero (batch.py L385, L402).
// - Input 9 is never written, so it is always 0 (batch.py L49, L399).
// - The reward cell is never the centre (batch.py L360), but a teleport may land on the centre.
// - The reference run uses msize 13 (11x11 interior, 24 pillars); the paper's "9x9 squares, 16
//   wall squares" is msize 11. Both, and every odd size >= 5, are available here.
// - The A2C baseline is batch element 0's value for every element (batch.py L479): that is in
//   A2C, not in this task.
// - Rejection sampling, drawing row then column on each try: the reward cell in reset, one batch
//   element after the other, and each teleport, in act, in batch order. The generator is ours, not
//   NumPy's, so the cells drawn match the reference in distribution, not draw for draw.
// - The reference's --rsp option is parsed but never read: the agent always starts at the centre.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Random.h"
#include "dopa/train/Task.h"

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace dopa {

struct MazeConfig {
  int size = 13;           // --msize: odd, at least 5
  int episodeLength = 200; // --eplen
  float reward = 10;       // --rew: earned on stepping onto the reward cell
  float wallPenalty = 0;   // --wp: cost of a move into a wall
  static constexpr int observationSize = 17;
  static constexpr int numActions = 4; // 0 Up (row-1), 1 Down (row+1), 2 Left (col-1), 3 Right
};

class MazeTask final : public ElementTask {
public:
  /// Throws std::invalid_argument unless size is odd and >= 5, episodeLength >= 1, batch >= 1 and
  /// the reward and wall penalty are finite.
  MazeTask(MazeConfig config, int batch);

  const MazeConfig &config() const { return cfg; }

  int batch() const override { return B; }
  int observationSize() const override { return MazeConfig::observationSize; }
  int numActions() const override { return MazeConfig::numActions; }
  int episodeLength() const override { return cfg.episodeLength; }

  /// One element at a time (ElementSteps; ElementTask steps the batch with them, in element
  /// order): resetElement draws a new reward cell and puts the agent at the centre;
  /// observeElement writes 17 floats; actElement throws std::out_of_range on an action outside
  /// [0, 4) and std::logic_error for a step t outside the episode.
  void resetElement(int b, Rng &rng) override;
  void observeElement(int b, int t, float *x) const override;
  float actElement(int b, int t, int action, Rng &rng) override;
  /// maze_size, episode_length, reward, wall_penalty.
  std::vector<std::pair<std::string, std::string>> settings() const override;

  // Introspection for tests.
  int size() const { return cfg.size; }
  int centre() const { return cfg.size / 2; }
  /// Whether (row, col) is a wall or pillar; cells outside the grid count as walls.
  bool isWall(int row, int col) const;

  struct Element {
    int row = 0, col = 0;               // the agent
    int rewardRow = -1, rewardCol = -1; // the reward cell (-1 before the first reset)
    float prevReward = 0;
    int prevAction = 0; // one-hot in the next observation; 0 at step 0, as in the reference
  };
  /// Batch element b; throws std::out_of_range when b is not in [0, batch()).
  const Element &element(int b) const { return elems.at(size_t(b)); }

  /// For tests only: put element b's agent at (row, col) and its reward cell at (rewardRow,
  /// rewardCol), leaving the step index and the previous reward and action as they are. Both
  /// cells must be free (std::invalid_argument otherwise); b must be in [0, batch())
  /// (std::out_of_range otherwise).
  void placeForTest(int b, int row, int col, int rewardRow, int rewardCol);

private:
  /// A uniform free cell other than (avoidRow, avoidCol), by the reference's rejection sampling.
  void drawFreeCell(Rng &rng, int avoidRow, int avoidCol, int &row, int &col) const;

  MazeConfig cfg;
  int B;
  std::vector<unsigned char> lab; // size * size, row-major, 1 = wall
  std::vector<Element> elems;
};

} // namespace dopa
