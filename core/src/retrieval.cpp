// SPDX-License-Identifier: Apache-2.0
#include "densa/core/retrieval.hpp"

#include "densa/core/error.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

namespace densa::core {

namespace {

void requireSameLength(std::size_t a, std::size_t b, const char* what) {
  if (a != b) {
    throw InvalidArgument(std::string(what) + ": the two labelings differ in length (" +
                          std::to_string(a) + " and " + std::to_string(b) + ")");
  }
}

// Shannon entropy (natural log) of a labeling, as sklearn's entropy().
double entropy(const std::map<int, std::int64_t>& counts, double n) {
  double h = 0;
  for (const auto& [label, count] : counts) {
    const double p = static_cast<double>(count) / n;
    h -= p * std::log(p);
  }
  return h;
}

} // namespace

std::vector<int> linearSumAssignment(const std::vector<double>& cost, int rows, int cols) {
  if (rows < 0 || cols < 0) {
    throw InvalidArgument("linearSumAssignment: negative matrix size");
  }
  if (rows > cols) {
    throw InvalidArgument("linearSumAssignment: more rows (" + std::to_string(rows) +
                          ") than columns (" + std::to_string(cols) +
                          "); transpose the cost matrix");
  }
  if (cost.size() != static_cast<std::size_t>(rows) * static_cast<std::size_t>(cols)) {
    throw InvalidArgument("linearSumAssignment: " + std::to_string(cost.size()) + " costs for a " +
                          std::to_string(rows) + " x " + std::to_string(cols) + " matrix");
  }
  for (const double c : cost) {
    if (!std::isfinite(c)) {
      throw InvalidArgument("linearSumAssignment: the cost matrix holds a non-finite value");
    }
  }
  if (rows == 0) {
    return {};
  }

  // Shortest augmenting paths with dual potentials u (rows) and v (columns); 1-based, with column
  // 0 a virtual column holding the row being inserted. colRow[j] is the row assigned to column j.
  const auto n = static_cast<std::size_t>(rows);
  const auto m = static_cast<std::size_t>(cols);
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> u(n + 1, 0.0);
  std::vector<double> v(m + 1, 0.0);
  std::vector<std::size_t> colRow(m + 1, 0);
  std::vector<std::size_t> way(m + 1, 0);
  std::vector<double> minReduced(m + 1);
  std::vector<char> used(m + 1);
  for (std::size_t i = 1; i <= n; ++i) {
    colRow[0] = i;
    std::size_t j0 = 0;
    std::fill(minReduced.begin(), minReduced.end(), inf);
    std::fill(used.begin(), used.end(), 0);
    do {
      used[j0] = 1;
      const std::size_t i0 = colRow[j0];
      double delta = inf;
      std::size_t j1 = 0;
      for (std::size_t j = 1; j <= m; ++j) {
        if (used[j] != 0) {
          continue;
        }
        const double reduced = cost[(i0 - 1) * m + (j - 1)] - u[i0] - v[j];
        if (reduced < minReduced[j]) {
          minReduced[j] = reduced;
          way[j] = j0;
        }
        if (minReduced[j] < delta) {
          delta = minReduced[j];
          j1 = j;
        }
      }
      if (j1 == 0) {
        throw InternalError("linearSumAssignment: no augmenting path (non-finite reduced cost)");
      }
      for (std::size_t j = 0; j <= m; ++j) {
        if (used[j] != 0) {
          u[colRow[j]] += delta;
          v[j] -= delta;
        } else {
          minReduced[j] -= delta;
        }
      }
      j0 = j1;
    } while (colRow[j0] != 0);
    // Flip the augmenting path.
    do {
      const std::size_t j1 = way[j0];
      colRow[j0] = colRow[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int> assignment(n, -1);
  for (std::size_t j = 1; j <= m; ++j) {
    if (colRow[j] != 0) {
      assignment[colRow[j] - 1] = static_cast<int>(j - 1);
    }
  }
  return assignment;
}

std::vector<int> matchClusterIds(const std::vector<int>& previous,
                                 const std::vector<int>& current,
                                 int k) {
  requireSameLength(previous.size(), current.size(), "matchClusterIds");
  if (k < 1) {
    throw InvalidArgument("matchClusterIds: k must be at least 1, got " + std::to_string(k));
  }
  const auto kk = static_cast<std::size_t>(k);
  std::vector<std::int64_t> sizePrev(kk, 0);
  std::vector<std::int64_t> sizeCurr(kk, 0);
  std::vector<std::int64_t> both(kk * kk, 0); // both[i * k + j]: in new cluster i and old j
  for (std::size_t s = 0; s < previous.size(); ++s) {
    const int p = previous[s];
    const int c = current[s];
    if (p < 0 || p >= k || c < 0 || c >= k) {
      throw InvalidArgument("matchClusterIds: sample " + std::to_string(s) + " has cluster id " +
                            std::to_string(p < 0 || p >= k ? p : c) + " outside 0.." +
                            std::to_string(k - 1));
    }
    ++sizePrev[static_cast<std::size_t>(p)];
    ++sizeCurr[static_cast<std::size_t>(c)];
    ++both[static_cast<std::size_t>(c) * kk + static_cast<std::size_t>(p)];
  }
  // |A xor B| = |A| + |B| − 2|A ∩ B|.
  std::vector<double> cost(kk * kk);
  for (std::size_t i = 0; i < kk; ++i) {
    for (std::size_t j = 0; j < kk; ++j) {
      cost[i * kk + j] = static_cast<double>(sizeCurr[i] + sizePrev[j] - 2 * both[i * kk + j]);
    }
  }
  return linearSumAssignment(cost, k, k);
}

std::vector<int> relabelClusters(const std::vector<int>& previous,
                                 const std::vector<int>& current,
                                 int k) {
  const std::vector<int> map = matchClusterIds(previous, current, k);
  std::vector<int> relabelled(current.size());
  std::transform(current.begin(), current.end(), relabelled.begin(), [&](int c) {
    return map[static_cast<std::size_t>(c)];
  });
  return relabelled;
}

std::vector<int> dropSingletonClasses(const std::vector<int>& labels,
                                      const std::vector<int>& clusters) {
  requireSameLength(labels.size(), clusters.size(), "dropSingletonClasses");
  std::map<std::pair<int, int>, int> counts;
  for (std::size_t s = 0; s < labels.size(); ++s) {
    ++counts[{clusters[s], labels[s]}];
  }
  std::vector<int> kept = labels;
  for (std::size_t s = 0; s < labels.size(); ++s) {
    if (counts[{clusters[s], labels[s]}] == 1) {
      kept[s] = -1;
    }
  }
  return kept;
}

double normalizedMutualInformation(const std::vector<int>& labels,
                                   const std::vector<int>& clusters) {
  requireSameLength(labels.size(), clusters.size(), "normalizedMutualInformation");
  std::map<int, std::int64_t> labelCount;
  std::map<int, std::int64_t> clusterCount;
  std::map<std::pair<int, int>, std::int64_t> joint;
  for (std::size_t s = 0; s < labels.size(); ++s) {
    ++labelCount[labels[s]];
    ++clusterCount[clusters[s]];
    ++joint[{labels[s], clusters[s]}];
  }
  // sklearn: no split on either side (or no samples) is a perfect match.
  if (labelCount.size() == clusterCount.size() && labelCount.size() <= 1) {
    return 1.0;
  }
  const double n = static_cast<double>(labels.size());
  double mi = 0;
  for (const auto& [pair, count] : joint) {
    const double nij = static_cast<double>(count);
    const double ai = static_cast<double>(labelCount[pair.first]);
    const double bj = static_cast<double>(clusterCount[pair.second]);
    mi += nij / n * (std::log(nij) + std::log(n) - std::log(ai) - std::log(bj));
  }
  mi = std::max(mi, 0.0);
  if (mi == 0.0) {
    return 0.0;
  }
  const double normaliser = (entropy(labelCount, n) + entropy(clusterCount, n)) / 2.0;
  return mi / normaliser;
}

RecallReport recallAtK(const std::vector<std::vector<std::int64_t>>& neighbours,
                       const std::vector<int>& labels,
                       const std::vector<int>& ks) {
  if (neighbours.size() != labels.size()) {
    throw InvalidArgument("recallAtK: " + std::to_string(neighbours.size()) +
                          " neighbour lists for " + std::to_string(labels.size()) + " labels");
  }
  for (const int k : ks) {
    if (k < 1) {
      throw InvalidArgument("recallAtK: K must be at least 1, got " + std::to_string(k));
    }
  }
  RecallReport report;
  report.ks = ks;
  report.overall.assign(ks.size(), 0.0);
  std::map<int, std::vector<std::int64_t>> hitsPerClass;
  std::vector<std::int64_t> hits(ks.size(), 0);
  const auto count = static_cast<std::int64_t>(labels.size());
  for (std::size_t q = 0; q < labels.size(); ++q) {
    const int label = labels[q];
    ++report.classCount[label];
    auto& classHits = hitsPerClass[label];
    classHits.resize(ks.size(), 0);
    // Rank (1-based) of the first neighbour with the query's label; 0 when none.
    std::size_t firstMatch = 0;
    std::size_t rank = 0;
    for (const std::int64_t id : neighbours[q]) {
      if (id < 0) {
        continue;
      }
      if (id >= count) {
        throw InvalidArgument("recallAtK: neighbour id " + std::to_string(id) + " of query " +
                              std::to_string(q) + " is not below " + std::to_string(count));
      }
      ++rank;
      if (firstMatch == 0 && labels[static_cast<std::size_t>(id)] == label) {
        firstMatch = rank;
      }
    }
    for (std::size_t i = 0; i < ks.size(); ++i) {
      if (firstMatch != 0 && firstMatch <= static_cast<std::size_t>(ks[i])) {
        ++hits[i];
        ++classHits[i];
      }
    }
  }
  if (count > 0) {
    for (std::size_t i = 0; i < ks.size(); ++i) {
      report.overall[i] = static_cast<double>(hits[i]) / static_cast<double>(count);
    }
  }
  for (const auto& [label, classHits] : hitsPerClass) {
    std::vector<double> recall(ks.size());
    const double n = static_cast<double>(report.classCount[label]);
    for (std::size_t i = 0; i < ks.size(); ++i) {
      recall[i] = static_cast<double>(classHits[i]) / n;
    }
    report.perClass[label] = std::move(recall);
  }
  return report;
}

} // namespace densa::core
