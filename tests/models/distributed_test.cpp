// SPDX-License-Identifier: Apache-2.0
// Data-parallel equivalence (issue 5 item 7): two processes on loopback, each with half of a
// batch, reach the weights of one process trained on the whole batch. The test re-executes its
// own binary as the two ranks (DistributedWorker.*, skipped unless DENSA_TEST_DISTRIBUTED_DIR is
// set).
#include "densa/models/error.hpp"
#include "densa/models/torch/checkpoint.hpp"
#include "densa/models/torch/training.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <torch/serialize.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ; // NOLINT(readability-redundant-declaration): POSIX, for posix_spawn

namespace densa::models {
namespace {

namespace fs = std::filesystem;

constexpr int kSteps = 5;
constexpr std::int64_t kBatch = 4;
constexpr double kTolerance = 1e-5; // max |w_2 ranks - w_1 process|, float32 after kSteps steps

// The tiny 2D DenseUNet without dropout (masks would differ between the runs by construction).
AnyNet equivalenceNet(std::uint64_t seed) {
  auto options = std::get<DenseUNet2dOptions>(modelPreset("dense-unet-2d", "tiny"));
  options.decoderDropout = 0.0;
  torch::manual_seed(seed);
  return makeNet(options);
}

// BatchNorm in inference mode: per-rank batch statistics would make the split run differ from
// the combined one (as in PyTorch DDP without SyncBatchNorm).
TrainerOptions equivalenceOptions() {
  TrainerOptions o;
  o.stage = "2d";
  o.learningRate = 0.05;
  o.batchNormInference = true;
  return o;
}

std::pair<torch::Tensor, torch::Tensor> fullBatch() {
  torch::manual_seed(99);
  auto input = torch::randn({kBatch, 3, 32, 32});
  auto target = torch::randint(0, 3, {kBatch, 32, 32}, torch::kLong);
  return {input, target};
}

std::map<std::string, torch::Tensor> weightsOf(const AnyNet& net) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : stateDict(*moduleOf(net))) {
    out.emplace(name, t.detach().clone());
  }
  return out;
}

void writeWeights(const AnyNet& net, const fs::path& path) {
  c10::Dict<std::string, torch::Tensor> dict;
  for (const auto& [name, t] : weightsOf(net)) {
    dict.insert(name, t);
  }
  const auto bytes = torch::pickle_save(dict);
  std::ofstream(path, std::ios::binary)
      .write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::map<std::string, torch::Tensor> readWeights(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::vector<char> bytes{std::istreambuf_iterator<char>(in),
                                std::istreambuf_iterator<char>()};
  std::map<std::string, torch::Tensor> out;
  for (const auto& e : torch::pickle_load(bytes).toGenericDict()) {
    out.emplace(e.key().toStringRef(), e.value().toTensor());
  }
  return out;
}

int freePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error("no free port");
  }
  ::close(fd);
  return ntohs(address.sin_port);
}

std::string readText(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// One rank of the equivalence run (started by the test below).
TEST(DistributedWorker, TrainsItsHalfOfTheBatch) {
  const char* dir = std::getenv("DENSA_TEST_DISTRIBUTED_DIR");
  if (dir == nullptr) {
    GTEST_SKIP() << "runs only as a rank of DistributedTraining.TwoRanksEqualOneProcess";
  }
  auto context = DistributedContext::fromEnvironment(torch::kCPU);
  ASSERT_NE(context, nullptr);
  EXPECT_EQ(context->backend(), "gloo");
  // Different initial weights per rank: the trainer must broadcast rank 0's.
  auto net = equivalenceNet(context->rank() == 0 ? 7 : 8);
  Trainer trainer(
      net, makeModelCard("dense-unet-2d", "tiny"), equivalenceOptions(), torch::kCPU, context);
  const auto [input, target] = fullBatch();
  const std::int64_t half = kBatch / 2;
  const auto mine = [&](const torch::Tensor& t) {
    return t.narrow(0, context->rank() * half, half);
  };
  std::ofstream losses(fs::path(dir) / ("losses" + std::to_string(context->rank()) + ".txt"));
  for (int i = 0; i < kSteps; ++i) {
    losses << trainer.step(mine(input), mine(target)).loss << "\n";
  }
  trainer.exportCheckpoint(fs::path(dir) / "exported.densa"); // rank 0 only
  context->barrier();
  writeWeights(net, fs::path(dir) / ("rank" + std::to_string(context->rank()) + ".pt"));
}

TEST(DistributedTraining, TwoRanksEqualOneProcessOnTheCombinedBatch) {
  if (!DistributedContext::supported(torch::kCPU)) {
    GTEST_SKIP() << "this LibTorch has no Gloo";
  }
  const auto dir =
      fs::temp_directory_path() / ("densa_distributed_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const int port = freePort();
  std::vector<pid_t> children;
  for (int rank = 0; rank < 2; ++rank) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string entry(*e);
      const bool ours = entry.rfind("RANK=", 0) == 0 || entry.rfind("WORLD_SIZE=", 0) == 0 ||
                        entry.rfind("MASTER_", 0) == 0 || entry.rfind("GLOO_", 0) == 0;
      if (!ours) {
        env.push_back(entry);
      }
    }
    env.push_back("RANK=" + std::to_string(rank));
    env.push_back("WORLD_SIZE=2");
    env.push_back("MASTER_ADDR=127.0.0.1");
    env.push_back("MASTER_PORT=" + std::to_string(port));
    env.push_back("DENSA_TEST_DISTRIBUTED_DIR=" + dir.string());
    std::vector<char*> envp;
    for (auto& e : env) {
      envp.push_back(e.data());
    }
    envp.push_back(nullptr);
    std::string exe = fs::read_symlink("/proc/self/exe").string();
    std::string filter = "--gtest_filter=DistributedWorker.*";
    std::vector<char*> argv{exe.data(), filter.data(), nullptr};
    const auto log = (dir / ("rank" + std::to_string(rank) + ".log")).string();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    ASSERT_EQ(rc, 0) << "cannot start rank " << rank;
    children.push_back(pid);
  }

  // Meanwhile: the single-process reference on the combined batch.
  auto reference = equivalenceNet(7);
  {
    Trainer trainer(reference, makeModelCard("dense-unet-2d", "tiny"), equivalenceOptions());
    const auto [input, target] = fullBatch();
    for (int i = 0; i < kSteps; ++i) {
      (void)trainer.step(input, target);
    }
  }

  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  for (std::size_t i = 0; i < children.size(); ++i) {
    int status = 0;
    pid_t done = 0;
    while ((done = ::waitpid(children[i], &status, WNOHANG)) == 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    if (done == 0) {
      for (const pid_t pid : children) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
      }
      FAIL() << "ranks timed out; rank logs:\n"
             << readText(dir / "rank0.log") << readText(dir / "rank1.log");
    }
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "rank " << i << " failed:\n"
        << readText(dir / ("rank" + std::to_string(i) + ".log"));
  }
  ASSERT_TRUE(readText(dir / "rank0.log").find("[  PASSED  ] 1 test") != std::string::npos)
      << readText(dir / "rank0.log");

  const auto rank0 = readWeights(dir / "rank0.pt");
  const auto rank1 = readWeights(dir / "rank1.pt");
  const auto single = weightsOf(reference);
  ASSERT_EQ(rank0.size(), single.size());
  double worst = 0.0;
  for (const auto& [name, w] : single) {
    EXPECT_TRUE(torch::equal(rank0.at(name), rank1.at(name))) << "ranks differ: " << name;
    worst = std::max(
        worst,
        (rank0.at(name).to(torch::kDouble) - w.to(torch::kDouble)).abs().max().item<double>());
  }
  EXPECT_LE(worst, kTolerance);
  RecordProperty("max_abs_weight_diff", std::to_string(worst));
  std::cout << "max |w(2 ranks) - w(1 process)| after " << kSteps << " steps: " << worst << "\n";
  const auto initial = weightsOf(equivalenceNet(7));
  EXPECT_FALSE(torch::equal(initial.at("conv0.weight"), single.at("conv0.weight")));
  EXPECT_EQ(readText(dir / "losses0.txt"), readText(dir / "losses1.txt")); // mean over ranks
  EXPECT_TRUE(fs::exists(dir / "exported.densa"));
  std::error_code ignored;
  fs::remove_all(dir, ignored);
}

TEST(DistributedSettings, ReadsTheStandardVariables) {
  const auto set = [](const char* k, const char* v) {
    ::setenv(k, v, 1);
  };
  const auto clear = [] {
    for (const char* k : {"WORLD_SIZE",
                          "RANK",
                          "MASTER_ADDR",
                          "MASTER_PORT",
                          "SLURM_NTASKS",
                          "SLURM_PROCID",
                          "GLOO_SOCKET_IFNAME"}) {
      ::unsetenv(k);
    }
  };
  clear();
  EXPECT_FALSE(distributedSettingsFromEnvironment().has_value());
  EXPECT_EQ(DistributedContext::fromEnvironment(torch::kCPU), nullptr);
  set("WORLD_SIZE", "4");
  set("RANK", "3");
  set("MASTER_ADDR", "node1");
  set("MASTER_PORT", "29511");
  const auto s = distributedSettingsFromEnvironment();
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->worldSize, 4);
  EXPECT_EQ(s->rank, 3);
  EXPECT_EQ(s->masterAddress, "node1");
  EXPECT_EQ(s->masterPort, 29511);
  set("RANK", "4");
  EXPECT_THROW((void)distributedSettingsFromEnvironment(), ModelError);
  set("RANK", "x");
  EXPECT_THROW((void)distributedSettingsFromEnvironment(), ModelError);
  ::unsetenv("RANK");
  EXPECT_THROW((void)distributedSettingsFromEnvironment(), ModelError);
  clear();
  set("SLURM_NTASKS", "2");
  set("SLURM_PROCID", "1");
  set("MASTER_ADDR", "127.0.0.1");
  set("MASTER_PORT", "29512");
  const auto slurm = distributedSettingsFromEnvironment();
  ASSERT_TRUE(slurm.has_value());
  EXPECT_EQ(slurm->rank, 1);
  EXPECT_EQ(slurm->worldSize, 2);
  clear();
}

TEST(DistributedSettings, ARankAloneIsAValidGroup) {
  if (!DistributedContext::supported(torch::kCPU)) {
    GTEST_SKIP() << "this LibTorch has no Gloo";
  }
  DistributedSettings s;
  s.masterPort = freePort();
  DistributedContext context(s, torch::kCPU);
  EXPECT_EQ(context.worldSize(), 1);
  auto t = torch::tensor({1.0, 3.0});
  context.allReduceMean({t});
  EXPECT_TRUE(torch::equal(t, torch::tensor({1.0, 3.0})));
  context.barrier();
  s.rank = 1;
  EXPECT_THROW(DistributedContext(s, torch::kCPU), ModelError);
}

} // namespace
} // namespace densa::models
