// The values normgraph loads from checkpoints that transformers' own
// save_pretrained wrote: for every folder with a normgraph_expected.json, the
// stack built from its config.json, loaded from its checkpoint (one file or
// sharded, the text model under its prefix, everything else ignored), holds in
// every norm weight exactly what transformers saved (the first elements bit
// for bit, the sum as transformers computed it), and nothing else was loaded.

#include <dirent.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/tensor_util.h"
#include "gtest/gtest.h"
#include "layers/checkpoint_dir.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/hf_config.h"
#include "layers/qwen3_5_norm_stack.h"
#include "nlohmann/json.hpp"

namespace normgraph {
namespace {

constexpr char kDir[] = "testdata/hf_checkpoints";

std::vector<std::string> CheckpointFolders() {
  std::vector<std::string> folders;
  if (DIR* dir = opendir(kDir)) {
    while (dirent* e = readdir(dir)) {
      const std::string folder = absl::StrCat(kDir, "/", e->d_name);
      if (e->d_name[0] != '.' &&
          std::ifstream(folder + "/normgraph_expected.json").good()) {
        folders.push_back(e->d_name);
      }
    }
    closedir(dir);
  }
  std::sort(folders.begin(), folders.end());
  return folders;
}

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return nlohmann::json::parse(text.str());
}

absl::StatusOr<std::unique_ptr<Module>> StackFor(const HfModelConfig& c) {
  if (c.family == HfFamily::kQwen35) {
    Qwen35NormStackConfig q = c.qwen;
    if (c.dtype) q.dtype = *c.dtype;
    auto stack = Qwen35NormStack::Create(q);
    if (!stack.ok()) return stack.status();
    return std::unique_ptr<Module>(std::move(*stack));
  }
  Gemma3NormStackConfig g = c.gemma;
  if (c.dtype) g.dtype = *c.dtype;
  auto stack = Gemma3NormStack::Create(g);
  if (!stack.ok()) return stack.status();
  return std::unique_ptr<Module>(std::move(*stack));
}

class HfCheckpointValuesTest : public testing::TestWithParam<std::string> {};

TEST(HfCheckpointFolders, Exist) {
  EXPECT_GE(CheckpointFolders().size(), 4u) << "checkpoints in " << kDir;
}

TEST_P(HfCheckpointValuesTest, NormWeightsHoldWhatTransformersSaved) {
  const std::string folder = absl::StrCat(kDir, "/", GetParam());
  const nlohmann::json want = ReadJson(folder + "/normgraph_expected.json");
  absl::StatusOr<HfModelConfig> config = ReadHfConfig(folder + "/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  absl::StatusOr<std::unique_ptr<Module>> model = StackFor(*config);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<CheckpointLocation> location = LocateCheckpoint(folder);
  ASSERT_TRUE(location.ok()) << location.status();
  CheckpointOptions options;
  options.ignore_unexpected = true;
  absl::StatusOr<CheckpointReport> report =
      LoadCheckpointFrom(**model, *location, options);
  ASSERT_TRUE(report.ok()) << report.status();

  const std::string prefix = want["prefix"];
  EXPECT_EQ(report->prefix, prefix);
  const nlohmann::json& norms = want["norm_weights"];
  EXPECT_EQ(report->load.loaded, static_cast<int>(norms.size()));
  EXPECT_TRUE(report->load.missing.empty());
  EXPECT_EQ(report->ignored.size() + norms.size(), want["tensors"].size());
  absl::flat_hash_map<std::string, Parameter*> params;
  (*model)->ForEachParameter(
      [&](const std::string& name, Parameter& p) { params[name] = &p; });
  EXPECT_EQ(params.size(), norms.size());
  for (const auto& [name, expected] : norms.items()) {
    ASSERT_TRUE(absl::StartsWith(name, prefix)) << name;
    const std::string param_name =
        absl::StrCat(kModelPrefix, name.substr(prefix.size()));
    auto it = params.find(param_name);
    ASSERT_NE(it, params.end()) << param_name << " (checkpoint " << name << ")";
    const std::vector<float> got = ToFloats(it->second->tensor());
    ASSERT_EQ(got.size(), expected["shape"][0].get<size_t>()) << param_name;
    const std::vector<double> first = expected["first"];
    for (size_t i = 0; i < first.size(); ++i) {
      // bf16 -> the parameter's dtype is exact for every dtype normgraph
      // builds these stacks in (bf16 or f32).
      EXPECT_EQ(got[i], first[i]) << param_name << "[" << i << "]";
    }
    double sum = 0;
    for (float v : got) sum += v;
    const double want_sum = expected["sum"];
    EXPECT_NEAR(sum, want_sum, 1e-5 * (1 + std::fabs(want_sum))) << param_name;
  }
}

INSTANTIATE_TEST_SUITE_P(Folders, HfCheckpointValuesTest,
                         testing::ValuesIn(CheckpointFolders()),
                         [](const testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

}  // namespace
}  // namespace normgraph
