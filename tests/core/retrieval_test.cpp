// SPDX-License-Identifier: Apache-2.0
#include "densa/core/retrieval.hpp"

#include "densa/core/error.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace densa::core {
namespace {

double assignmentCost(const std::vector<double>& cost, int cols, const std::vector<int>& rowToCol) {
  double total = 0;
  for (std::size_t r = 0; r < rowToCol.size(); ++r) {
    total += cost[r * static_cast<std::size_t>(cols) + static_cast<std::size_t>(rowToCol[r])];
  }
  return total;
}

// Minimum over every injective row → column map, by enumerating the permutations of the columns
// and taking the first `rows` of each.
double bruteForceMinimum(const std::vector<double>& cost, int rows, int cols) {
  std::vector<int> perm(static_cast<std::size_t>(cols));
  std::iota(perm.begin(), perm.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {
    const std::vector<int> head(perm.begin(), perm.begin() + rows);
    best = std::min(best, assignmentCost(cost, cols, head));
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

void expectOptimal(int rows, int cols, unsigned seed, bool integerCosts) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> real(-5.0, 20.0);
  std::uniform_int_distribution<int> small(0, 4); // many ties
  std::vector<double> cost(static_cast<std::size_t>(rows * cols));
  for (double& c : cost) {
    c = integerCosts ? small(rng) : real(rng);
  }
  const std::vector<int> assignment = linearSumAssignment(cost, rows, cols);
  ASSERT_EQ(assignment.size(), static_cast<std::size_t>(rows));
  std::vector<int> sorted = assignment;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << "seed " << seed;
  for (const int c : assignment) {
    ASSERT_GE(c, 0);
    ASSERT_LT(c, cols);
  }
  EXPECT_NEAR(assignmentCost(cost, cols, assignment), bruteForceMinimum(cost, rows, cols), 1e-9)
      << rows << "x" << cols << " seed " << seed;
}

TEST(LinearSumAssignment, MatchesBruteForceOnRandomSquareMatrices) {
  for (unsigned seed = 0; seed < 200; ++seed) {
    expectOptimal(5, 5, seed, seed % 2 == 0);
  }
}

TEST(LinearSumAssignment, MatchesBruteForceOnRandomRectangularMatrices) {
  for (unsigned seed = 0; seed < 200; ++seed) {
    expectOptimal(4, 6, 1000 + seed, seed % 2 == 0);
  }
}

TEST(LinearSumAssignment, HandlesTrivialSizes) {
  EXPECT_TRUE(linearSumAssignment({}, 0, 0).empty());
  EXPECT_TRUE(linearSumAssignment({}, 0, 3).empty());
  EXPECT_EQ(linearSumAssignment({7.0}, 1, 1), std::vector<int>{0});
  EXPECT_EQ(linearSumAssignment({3.0, 1.0, 2.0}, 1, 3), std::vector<int>{1});
}

TEST(LinearSumAssignment, RejectsBadInput) {
  EXPECT_THROW((void)linearSumAssignment({1, 2, 3}, 2, 2), InvalidArgument);
  EXPECT_THROW((void)linearSumAssignment(std::vector<double>(6, 1.0), 3, 2), InvalidArgument);
  EXPECT_THROW((void)linearSumAssignment({1, std::nan(""), 3, 4}, 2, 2), InvalidArgument);
  EXPECT_THROW((void)linearSumAssignment({1, std::numeric_limits<double>::infinity(), 3, 4}, 2, 2),
               InvalidArgument);
  EXPECT_THROW((void)linearSumAssignment({}, -1, 2), InvalidArgument);
}

TEST(MatchClusterIds, KeepsClusterIdentityUnderAPermutation) {
  std::mt19937 rng(7);
  const int k = 6;
  std::vector<int> previous(300);
  std::uniform_int_distribution<int> cluster(0, k - 1);
  for (int& c : previous) {
    c = cluster(rng);
  }
  std::vector<int> perm(k);
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), rng);
  std::vector<int> current(previous.size());
  for (std::size_t s = 0; s < previous.size(); ++s) {
    current[s] = perm[static_cast<std::size_t>(previous[s])];
  }
  const std::vector<int> map = matchClusterIds(previous, current, k);
  for (int old = 0; old < k; ++old) {
    EXPECT_EQ(map[static_cast<std::size_t>(perm[static_cast<std::size_t>(old)])], old);
  }
  EXPECT_EQ(relabelClusters(previous, current, k), previous);
}

TEST(MatchClusterIds, FollowsTheLargestOverlapWhenSamplesMove) {
  // Old clusters {0,1,2,3}, {4,5,6}, {7,8}; the new clustering swaps ids 0/2 and moves sample 3.
  const std::vector<int> previous{0, 0, 0, 0, 1, 1, 1, 2, 2};
  const std::vector<int> current{2, 2, 2, 1, 1, 1, 1, 0, 0};
  EXPECT_EQ(matchClusterIds(previous, current, 3), (std::vector<int>{2, 1, 0}));
  EXPECT_EQ(relabelClusters(previous, current, 3), (std::vector<int>{0, 0, 0, 1, 1, 1, 1, 2, 2}));
}

TEST(MatchClusterIds, RejectsBadInput) {
  EXPECT_THROW((void)matchClusterIds({0, 1}, {0}, 2), InvalidArgument);
  EXPECT_THROW((void)matchClusterIds({0, 2}, {0, 1}, 2), InvalidArgument);
  EXPECT_THROW((void)matchClusterIds({0, 1}, {0, -1}, 2), InvalidArgument);
  EXPECT_THROW((void)matchClusterIds({}, {}, 0), InvalidArgument);
}

TEST(DropSingletonClasses, DropsClassesWithOneSampleInTheirCluster) {
  const std::vector<int> labels{5, 5, 7, 5, 7, 7, 9};
  const std::vector<int> clusters{0, 0, 0, 1, 1, 1, 1};
  // Cluster 0: class 5 ×2, class 7 ×1 → drop 7. Cluster 1: 5 ×1, 7 ×2, 9 ×1 → drop 5 and 9.
  EXPECT_EQ(dropSingletonClasses(labels, clusters), (std::vector<int>{5, 5, -1, -1, 7, 7, -1}));
  EXPECT_THROW((void)dropSingletonClasses({1}, {}), InvalidArgument);
}

TEST(NormalizedMutualInformation, IdenticalPartitionsGiveOne) {
  EXPECT_DOUBLE_EQ(normalizedMutualInformation({0, 0, 1, 1}, {0, 0, 1, 1}), 1.0);
  // Renaming clusters changes nothing.
  EXPECT_DOUBLE_EQ(normalizedMutualInformation({0, 0, 1, 1, 2}, {7, 7, -1, -1, 3}), 1.0);
}

TEST(NormalizedMutualInformation, IndependentPartitionsGiveZero) {
  EXPECT_NEAR(normalizedMutualInformation({0, 0, 1, 1}, {0, 1, 0, 1}), 0.0, 1e-12);
}

TEST(NormalizedMutualInformation, FollowsSklearnEdgeCases) {
  EXPECT_DOUBLE_EQ(normalizedMutualInformation({3, 3, 3}, {1, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(normalizedMutualInformation({}, {}), 1.0);
  // One side split, the other not: no information.
  EXPECT_DOUBLE_EQ(normalizedMutualInformation({0, 0, 1, 1}, {4, 4, 4, 4}), 0.0);
  EXPECT_THROW((void)normalizedMutualInformation({0}, {0, 1}), InvalidArgument);
}

TEST(NormalizedMutualInformation, MatchesAHandComputedExample) {
  // Y = {0,0,0,1,1,1}, C = {0,0,1,1,2,2}. Contingency (rows Y, columns C):
  //   Y=0: 2 1 0      Y=1: 0 1 2
  // I = Σ n_ij/N log(N n_ij / (a_i b_j)) = 2·(2/6) log(6·2/(3·2)) + 2·(1/6) log(6·1/(3·2))
  //   = (2/3) log 2.  H(Y) = log 2, H(C) = log 3. Arithmetic NMI = I / ((H(Y)+H(C))/2).
  const double mi = (2.0 / 3.0) * std::log(2.0);
  const double expected = mi / ((std::log(2.0) + std::log(3.0)) / 2.0);
  EXPECT_NEAR(normalizedMutualInformation({0, 0, 0, 1, 1, 1}, {0, 0, 1, 1, 2, 2}), expected, 1e-12);
  // The same formula evaluated in Python (math.log): 0.5158037429793888.
  EXPECT_NEAR(expected, 0.5158037429793888, 1e-12);
  // Symmetric in its arguments.
  EXPECT_NEAR(normalizedMutualInformation({0, 0, 1, 1, 2, 2}, {0, 0, 0, 1, 1, 1}), expected, 1e-12);
}

TEST(RecallAtK, CountsQueriesWithASameLabelNeighbourInTheFirstK) {
  // Labels: 0 0 1 1 2. Ranked neighbours (query excluded):
  //   q0: 2 1 ...      → same label at rank 2
  //   q1: 0            → rank 1
  //   q2: 0 1 4 3      → rank 4
  //   q3: 2            → rank 1
  //   q4: 0 1 2 3      → never (only sample of class 2)
  const std::vector<std::vector<std::int64_t>> neighbours{
      {2, 1, 3, 4}, {0, 2, 3, 4}, {0, 1, 4, 3}, {2, -1, 0, 1}, {0, 1, 2, 3}};
  const std::vector<int> labels{0, 0, 1, 1, 2};
  const RecallReport r = recallAtK(neighbours, labels, {1, 2, 4, 8});
  EXPECT_EQ(r.ks, (std::vector<int>{1, 2, 4, 8}));
  EXPECT_EQ(r.overall, (std::vector<double>{2.0 / 5, 3.0 / 5, 4.0 / 5, 4.0 / 5}));
  EXPECT_EQ(r.perClass.at(0), (std::vector<double>{0.5, 1.0, 1.0, 1.0}));
  EXPECT_EQ(r.perClass.at(1), (std::vector<double>{0.5, 0.5, 1.0, 1.0}));
  EXPECT_EQ(r.perClass.at(2), (std::vector<double>{0.0, 0.0, 0.0, 0.0}));
  EXPECT_EQ(r.classCount, (std::map<int, int>{{0, 2}, {1, 2}, {2, 1}}));
}

TEST(RecallAtK, RejectsBadInput) {
  EXPECT_THROW((void)recallAtK({{1}}, {0, 0}), InvalidArgument);
  EXPECT_THROW((void)recallAtK({{5}, {0}}, {0, 0}), InvalidArgument);
  EXPECT_THROW((void)recallAtK({{1}, {0}}, {0, 0}, {0}), InvalidArgument);
  const RecallReport empty = recallAtK({}, {});
  EXPECT_EQ(empty.overall, (std::vector<double>(4, 0.0)));
}

} // namespace
} // namespace densa::core
