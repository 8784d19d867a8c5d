// SPDX-License-Identifier: Apache-2.0
#include "densa/app/vector_search.hpp"

#include "densa/core/error.hpp"

#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <faiss/impl/FaissException.h>

#include <algorithm>
#include <limits>
#include <string>

namespace densa::app {

namespace {

using FaissId = faiss::Index::idx_t;

void requireShape(const float* data, std::int64_t n, int dim, const char* what) {
  if (data == nullptr && n > 0) {
    throw core::InvalidArgument(std::string(what) + ": no data");
  }
  if (n < 0 || dim < 1) {
    throw core::InvalidArgument(std::string(what) + ": bad shape " + std::to_string(n) + " x " +
                                std::to_string(dim));
  }
}

} // namespace

std::vector<int> kmeansAssign(const float* data,
                              std::int64_t n,
                              int dim,
                              int k,
                              int iterations,
                              int seed,
                              std::vector<float>* centroidsOut) {
  requireShape(data, n, dim, "kmeansAssign");
  if (k < 1 || n < k) {
    throw core::InvalidArgument("kmeansAssign: cannot make " + std::to_string(k) + " clusters of " +
                                std::to_string(n) + " vectors");
  }
  if (iterations < 1) {
    throw core::InvalidArgument("kmeansAssign: iterations must be at least 1");
  }
  try {
    faiss::ClusteringParameters params;
    params.niter = iterations;
    params.nredo = 1;
    params.verbose = false;
    params.seed = seed;
    // No sub-sampling (Faiss keeps at most k · max_points_per_centroid points) and no warning
    // about too few points per centroid.
    params.max_points_per_centroid =
        static_cast<int>(std::min<std::int64_t>(n / k + 1, std::numeric_limits<int>::max()));
    params.min_points_per_centroid = 1;
    faiss::Clustering clustering(dim, k, params);
    faiss::IndexFlatL2 index(dim);
    clustering.train(n, data, index);

    // Assign every vector to its nearest final centroid.
    faiss::IndexFlatL2 centroids(dim);
    centroids.add(k, clustering.centroids.data());
    std::vector<float> distances(static_cast<std::size_t>(n));
    std::vector<FaissId> labels(static_cast<std::size_t>(n));
    centroids.search(n, data, 1, distances.data(), labels.data());
    std::vector<int> assignment(static_cast<std::size_t>(n));
    std::transform(labels.begin(), labels.end(), assignment.begin(), [](FaissId l) {
      return static_cast<int>(l);
    });
    if (centroidsOut != nullptr) {
      *centroidsOut = clustering.centroids;
    }
    return assignment;
  } catch (const faiss::FaissException& e) {
    throw core::InternalError(std::string("kmeansAssign: Faiss failed: ") + e.what());
  }
}

std::vector<std::vector<std::int64_t>> nearestNeighbours(
    const float* data, std::int64_t n, int dim, int k, bool excludeSelf) {
  requireShape(data, n, dim, "nearestNeighbours");
  if (k < 1) {
    throw core::InvalidArgument("nearestNeighbours: k must be at least 1");
  }
  std::vector<std::vector<std::int64_t>> result(static_cast<std::size_t>(n));
  if (n == 0) {
    return result;
  }
  const std::int64_t searched = std::min<std::int64_t>(n, k + (excludeSelf ? 1 : 0));
  try {
    faiss::IndexFlatL2 index(dim);
    index.add(n, data);
    const auto cells = static_cast<std::size_t>(n) * static_cast<std::size_t>(searched);
    std::vector<float> distances(cells);
    std::vector<FaissId> labels(cells);
    index.search(n, data, searched, distances.data(), labels.data());
    for (std::int64_t q = 0; q < n; ++q) {
      auto& list = result[static_cast<std::size_t>(q)];
      list.reserve(static_cast<std::size_t>(k));
      const FaissId* row = labels.data() + static_cast<std::size_t>(q * searched);
      const bool selfFound = excludeSelf && std::find(row, row + searched, q) != row + searched;
      for (std::int64_t r = 0; r < searched; ++r) {
        if (row[r] < 0 || (selfFound && row[r] == q)) {
          continue;
        }
        list.push_back(row[r]);
      }
      if (list.size() > static_cast<std::size_t>(k)) {
        list.resize(static_cast<std::size_t>(k));
      }
    }
  } catch (const faiss::FaissException& e) {
    throw core::InternalError(std::string("nearestNeighbours: Faiss failed: ") + e.what());
  }
  return result;
}

} // namespace densa::app
