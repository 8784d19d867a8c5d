// SPDX-License-Identifier: Apache-2.0
#pragma once

// Exact k-means and nearest-neighbour search over dense float vectors, on Faiss (CPU). Used by ADSL
// re-clustering (methods-spec §3.3) and evaluation (§3.7); the metrics that consume the results
// are in densa/core/retrieval.hpp. Faiss runs its loops with OpenMP; the thread count is
// OpenMP's global setting (omp_set_num_threads, OMP_NUM_THREADS), which `--threads` already sets
// for the process — these functions leave it as it is.

#include <cstdint>
#include <vector>

namespace densa::app {

/// Faiss k-means of `n` row-major vectors of dimension `dim` into `k` clusters, as the reference's
/// do_clustering: faiss::Clustering with `iterations` iterations, one redo (nredo), no sub-sampling
/// of the data (max_points_per_centroid ≥ n/k), seed `seed`, an exact L2 index (IndexFlatL2) for
/// the assignments. Returns each vector's cluster (0..k−1, its nearest final centroid). When
/// `centroidsOut` is set it receives the k × dim centroids. Deterministic for a given seed and
/// thread count. Throws core::InvalidArgument when n < k, k < 1, dim < 1 or data is null, and
/// core::InternalError when Faiss fails.
[[nodiscard]] std::vector<int> kmeansAssign(const float* data,
                                            std::int64_t n,
                                            int dim,
                                            int k,
                                            int iterations = 100,
                                            int seed = 0,
                                            std::vector<float>* centroidsOut = nullptr);

/// The `k` nearest neighbours (exact Euclidean distance, Faiss IndexFlatL2) of each of the `n`
/// row-major vectors among the same `n` vectors, nearest first. With `excludeSelf`, k + 1 are
/// searched and the query's own index is dropped — by index, so a duplicate of the query is kept
/// as a neighbour (at distance 0); when the query's own index is not among the k + 1 results (it
/// ties with more than k duplicates) the last result is dropped instead. Lists are shorter than k
/// only when there are too few vectors. Ties are in Faiss's order. Throws core::InvalidArgument on
/// bad sizes and core::InternalError when Faiss fails.
[[nodiscard]] std::vector<std::vector<std::int64_t>> nearestNeighbours(
    const float* data, std::int64_t n, int dim, int k, bool excludeSelf);

} // namespace densa::app
