// SPDX-License-Identifier: Apache-2.0
#pragma once

// Retrieval building blocks of ADSL (methods-spec §3.3 and §3.7): exact minimum-cost assignment
// (scipy's linear_sum_assignment), matching of cluster ids between two re-clusterings, NMI as
// sklearn's normalized_mutual_info_score (arithmetic averaging) and Recall@K from neighbour lists.
// Pure C++; the k-means and nearest-neighbour searches that feed them live in app/
// (densa/app/vector_search.hpp).

#include <cstdint>
#include <map>
#include <vector>

namespace densa::core {

/// Exact minimum-cost assignment of `rows` rows to distinct columns (rows ≤ cols), as scipy's
/// linear_sum_assignment: shortest augmenting paths with potentials (Jonker–Volgenant),
/// O(rows²·cols). `cost` is row-major, rows × cols. Returns, for each row, its column. Among
/// several optimal assignments any one may be returned. Throws InvalidArgument when rows > cols, a
/// size is negative, cost.size() ≠ rows·cols, or a cost is not finite.
[[nodiscard]] std::vector<int> linearSumAssignment(const std::vector<double>& cost,
                                                   int rows,
                                                   int cols);

/// §3.3 step 3: maps the ids of a new clustering onto those of the previous one. `previous` and
/// `current` give the cluster (0..k−1) of the same samples, in the same order. The cost of pairing
/// new cluster i with old cluster j is the L1 distance between their membership indicator vectors
/// (the number of samples in exactly one of the two); the pairing of least total cost is found
/// with linearSumAssignment. Returns `map` with map[i] = the previous id that new cluster i takes.
/// Throws InvalidArgument on different lengths, k < 1 or an id outside 0..k−1.
[[nodiscard]] std::vector<int> matchClusterIds(const std::vector<int>& previous,
                                               const std::vector<int>& current,
                                               int k);

/// `current` relabelled with matchClusterIds(previous, current, k): cluster identity is kept
/// across re-clusterings (the reference's reassign_clusters).
[[nodiscard]] std::vector<int> relabelClusters(const std::vector<int>& previous,
                                               const std::vector<int>& current,
                                               int k);

/// §3.3 step 4: a copy of `labels` where every sample whose class has a single sample within its
/// cluster becomes −1 (excluded from that cluster's class-balanced sampling). Throws
/// InvalidArgument on different lengths.
[[nodiscard]] std::vector<int> dropSingletonClasses(const std::vector<int>& labels,
                                                    const std::vector<int>& clusters);

/// Normalised mutual information I(Y;C) / ((H(Y)+H(C))/2), natural logarithms — sklearn's
/// normalized_mutual_info_score with average_method="arithmetic" (its default since 0.22; pinned
/// here, §3.7). Any int is a label (−1 included). As sklearn: 1 when both labelings have a single
/// value (or are empty), 0 when the mutual information is 0. Throws InvalidArgument on different
/// lengths.
[[nodiscard]] double normalizedMutualInformation(const std::vector<int>& labels,
                                                 const std::vector<int>& clusters);

/// Recall@K overall and per class.
struct RecallReport {
  std::vector<int> ks;                         ///< the K values, as requested
  std::vector<double> overall;                 ///< R@K for each of ks
  std::map<int, std::vector<double>> perClass; ///< class → R@K (queries of that class) per ks
  std::map<int, int> classCount;               ///< class → number of queries
};

/// §3.7: R@K = (1/N) Σ_i 1[∃ j among the first K neighbours of i with labels[j] = labels[i]].
/// `neighbours[i]` are the ids (indices into `labels`) of query i's neighbours, nearest first,
/// the query itself excluded (see app::nearestNeighbours); ids < 0 (Faiss's "no result") are
/// ignored, and a list shorter than K counts with what it has. Every sample is a query, so
/// neighbours.size() must equal labels.size(). Throws InvalidArgument on different sizes, an id ≥
/// labels.size(), or a K < 1. Empty input gives zeros.
[[nodiscard]] RecallReport recallAtK(const std::vector<std::vector<std::int64_t>>& neighbours,
                                     const std::vector<int>& labels,
                                     const std::vector<int>& ks = {1, 2, 4, 8});

} // namespace densa::core
