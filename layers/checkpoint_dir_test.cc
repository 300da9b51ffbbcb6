// Loading the norm weights of Hugging Face checkpoint layouts (one file, a
// sharded checkpoint with its index, a model directory; nested text models
// under a prefix), on every backend. The checkpoints are written in
// save_pretrained's layouts by checkpoint_dir_testing.h with normgraph's own
// safetensors writer.

#include "layers/checkpoint_dir.h"

#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/tensor.h"
#include "core/tensor_util.h"
#include "core/testing/backends.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "layers/checkpoint_dir_testing.h"
#include "layers/gemma3_norm_stack.h"
#include "layers/qwen3_5_norm_stack.h"
#include "layers/safetensors/writer.h"

namespace normgraph {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::HfLayout;
using ::testing::Not;
using testing::WriteHfCheckpoint;

Qwen35NormStackConfig SmallQwen(Allocator* allocator,
                                DType dtype = DType::kBF16) {
  Qwen35NormStackConfig c;
  c.allocator = allocator;
  c.dtype = dtype;
  c.num_hidden_layers = 12;  // layers.10 and layers.11 sort after layers.2
  c.hidden_size = 24;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 8;
  c.linear_num_value_heads = 2;
  c.linear_value_head_dim = 6;
  return c;
}

std::string TempDir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t != nullptr ? t : "/tmp";
}

// A fresh directory for one test.
std::string FreshDir(const std::string& name) {
  static int counter = 0;
  const std::string dir =
      absl::StrCat(TempDir(), "/ckpt_", ::getpid(), "_", counter++, "_", name);
  std::string cmd = absl::StrCat("rm -rf '", dir, "'");
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return dir;
}

// Weights with distinct values, as a trained checkpoint would have.
NamedTensors Weights(Module& model, uint64_t seed) {
  absl::StatusOr<NamedTensors> w = RandomWeights(model, seed);
  EXPECT_TRUE(w.ok()) << w.status();
  return *w;
}

struct SlotState {
  TensorIdentity identity;
  uint64_t write_version;
};

std::vector<SlotState> SlotStates(Module& model) {
  std::vector<SlotState> out;
  model.ForEachSlot([&](absl::string_view, TensorSlot& slot) {
    out.push_back(
        {slot.tensor().Identity(), slot.tensor().storage()->write_version()});
  });
  return out;
}

void ExpectUntouched(Module& model, const std::vector<SlotState>& before) {
  size_t i = 0;
  model.ForEachSlot([&](absl::string_view name, TensorSlot& slot) {
    ASSERT_LT(i, before.size());
    EXPECT_EQ(slot.tensor().Identity(), before[i].identity) << name;
    EXPECT_EQ(slot.tensor().storage()->write_version(), before[i].write_version)
        << name << " was written";
    ++i;
  });
}

// Every parameter of `model` equals the tensor of the same name in `w`.
void ExpectHolds(Module& model, const NamedTensors& w) {
  int checked = 0;
  for (const auto& [name, t] : w) {
    Parameter* p = model.FindParameter(name.substr(6));  // below "model."
    ASSERT_NE(p, nullptr) << name;
    EXPECT_TRUE(BitwiseEqual(p->tensor(), t)) << name;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

class CheckpointDirTest : public BackendTest {
 protected:
  std::unique_ptr<Qwen35NormStack> Qwen(DType dtype = DType::kBF16) {
    auto m = Qwen35NormStack::Create(SmallQwen(&allocator(), dtype));
    EXPECT_TRUE(m.ok()) << m.status();
    return *std::move(m);
  }
};

TEST_P(CheckpointDirTest, SingleFileWithExtrasNeedsIgnoreUnexpected) {
  auto model = Qwen();
  const NamedTensors w = Weights(*model, 1);
  const std::string dir = FreshDir("single");
  HfLayout layout;
  ASSERT_TRUE(WriteHfCheckpoint(dir, w, layout).ok());

  absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
  ASSERT_TRUE(loc.ok()) << loc.status();
  EXPECT_EQ(loc->kind, CheckpointLocation::Kind::kFile);
  EXPECT_TRUE(loc->from_directory);
  EXPECT_EQ(loc->path, dir + "/model.safetensors");
  EXPECT_EQ(loc->config_json, "");

  const std::vector<SlotState> before = SlotStates(*model);
  CheckpointOptions strict;
  absl::StatusOr<CheckpointReport> r = LoadCheckpointFrom(*model, *loc, strict);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("no weight was changed"));
  EXPECT_THAT(r.status().message(),
              HasSubstr("tensors the model has no parameter for"));
  EXPECT_THAT(r.status().message(),
              HasSubstr("model.layers.*.mlp.down_proj.weight (x12)"));
  EXPECT_THAT(r.status().message(), HasSubstr("lm_head.weight"));
  ExpectUntouched(*model, before);

  CheckpointOptions lenient;
  lenient.ignore_unexpected = true;
  r = LoadCheckpointFrom(*model, *loc, lenient);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->load.loaded, static_cast<int>(w.size()));
  EXPECT_EQ(r->prefix, "model.");
  EXPECT_TRUE(r->prefix_detected);
  EXPECT_EQ(r->shards, 1);
  EXPECT_EQ(r->tensors, static_cast<int64_t>(w.size() + 2 + 2 * 12));
  ASSERT_EQ(r->ignored.size(), 2u + 2 * 12);
  // Natural order: layers.2 before layers.10.
  EXPECT_EQ(r->ignored[0], "lm_head.weight");
  EXPECT_EQ(r->ignored[1], "model.embed_tokens.weight");
  EXPECT_EQ(r->ignored[2], "model.layers.0.mlp.down_proj.weight");
  EXPECT_EQ(r->ignored[6], "model.layers.2.mlp.down_proj.weight");
  EXPECT_EQ(r->ignored[22], "model.layers.10.mlp.down_proj.weight");
  EXPECT_TRUE(r->conversions.empty());
  ExpectHolds(*model, w);
}

TEST_P(CheckpointDirTest, ShardedDirectoryIndexAndConfig) {
  auto model = Qwen();
  const NamedTensors w = Weights(*model, 2);
  const std::string dir = FreshDir("sharded");
  HfLayout layout;
  layout.max_shard_bytes = 300;  // several shards
  layout.config_json = testing::Qwen35ConfigJson(model->config(), false);
  ASSERT_TRUE(WriteHfCheckpoint(dir, w, layout).ok());

  for (const std::string& path : {dir, dir + "/model.safetensors.index.json"}) {
    SCOPED_TRACE(path);
    absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(path);
    ASSERT_TRUE(loc.ok()) << loc.status();
    EXPECT_EQ(loc->kind, CheckpointLocation::Kind::kSharded);
    EXPECT_EQ(loc->path, dir + "/model.safetensors.index.json");
    EXPECT_EQ(loc->config_json, dir + "/config.json");
    ASSERT_GT(loc->files.size(), 3u);
    EXPECT_THAT(loc->files[0], HasSubstr("model-00001-of-"));

    auto fresh = Qwen();
    CheckpointOptions options;
    options.ignore_unexpected = true;
    absl::StatusOr<CheckpointReport> r =
        LoadCheckpointFrom(*fresh, *loc, options);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->shards, static_cast<int>(loc->files.size()));
    EXPECT_EQ(r->load.loaded, static_cast<int>(w.size()));
    ExpectHolds(*fresh, w);
  }
}

TEST_P(CheckpointDirTest, ShardsAreValidatedBeforeAnyWrite) {
  auto model = Qwen();
  const NamedTensors first = Weights(*model, 3);
  ASSERT_TRUE(WeightSet::FromTensors(first).ok());
  {
    absl::StatusOr<WeightSet> set = WeightSet::FromTensors(first);
    ASSERT_TRUE(LoadWeights(*model, *set).ok());
  }
  const NamedTensors second = Weights(*model, 4);
  CheckpointOptions options;
  options.ignore_unexpected = true;

  // The last shard is truncated: shards 1..N-1 are fine, and still nothing is
  // written.
  {
    const std::string dir = FreshDir("truncated");
    HfLayout layout;
    layout.max_shard_bytes = 300;
    ASSERT_TRUE(WriteHfCheckpoint(dir, second, layout).ok());
    absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
    ASSERT_TRUE(loc.ok()) << loc.status();
    ASSERT_EQ(::truncate(loc->files.back().c_str(), 20), 0);
    const std::vector<SlotState> before = SlotStates(*model);
    absl::StatusOr<CheckpointReport> r =
        LoadCheckpointFrom(*model, *loc, options);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(r.status().message(),
                HasSubstr(absl::StrCat("shard ", loc->files.size(), " of ",
                                       loc->files.size())));
    EXPECT_THAT(r.status().message(), HasSubstr("no weight was changed"));
    ExpectUntouched(*model, before);
    ExpectHolds(*model, first);
  }
  // The last shard holds a wrongly shaped norm weight.
  {
    NamedTensors bad = second;
    Tensor wrong = *Tensor::Empty(CpuAllocator(), {25}, DType::kBF16);
    ASSERT_TRUE(Fill(wrong, 0.0f).ok());
    bad.back().second = wrong;  // model.norm.weight, written last
    ASSERT_EQ(bad.back().first, "model.norm.weight");
    const std::string dir = FreshDir("misshaped");
    HfLayout layout;
    layout.max_shard_bytes = 300;
    ASSERT_TRUE(WriteHfCheckpoint(dir, bad, layout).ok());
    absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
    ASSERT_TRUE(loc.ok()) << loc.status();
    const std::vector<SlotState> before = SlotStates(*model);
    absl::StatusOr<CheckpointReport> r =
        LoadCheckpointFrom(*model, *loc, options);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr("model.norm.weight"));
    EXPECT_THAT(r.status().message(), HasSubstr("no weight was changed"));
    ExpectUntouched(*model, before);
  }
}

TEST_P(CheckpointDirTest, IndexMustDescribeTheShards) {
  auto model = Qwen();
  const NamedTensors w = Weights(*model, 5);
  CheckpointOptions options;
  options.ignore_unexpected = true;
  const std::string dir = FreshDir("index");
  HfLayout layout;
  layout.max_shard_bytes = 300;
  ASSERT_TRUE(WriteHfCheckpoint(dir, w, layout).ok());
  const std::string index = dir + "/model.safetensors.index.json";

  // The index followed by a NUL and anything (a JSON parser reading to the
  // NUL alone would accept it).
  {
    std::ifstream in(index, std::ios::binary);
    std::string text((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
    ASSERT_TRUE(LocateCheckpoint(dir).ok());
    static constexpr char kNulThenGarbage[] = "\0{{{ not json";
    text.append(kNulThenGarbage, sizeof(kNulThenGarbage) - 1);
    ASSERT_TRUE(testing::WriteFileBytes(index, text).ok());
    absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
    ASSERT_FALSE(loc.ok());
    EXPECT_EQ(loc.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(loc.status().message(), HasSubstr("holds a NUL byte"));
  }

  // The index puts a tensor in the wrong shard.
  {
    ASSERT_TRUE(testing::WriteFileBytes(
                    index, R"({"weight_map": {"model.norm.weight": )"
                           R"("model-00001-of-00009.safetensors"}})")
                    .ok());
    absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
    // Either the shard is missing (fewer than 9 shards) or it disagrees.
    if (loc.ok()) {
      absl::StatusOr<CheckpointReport> r =
          LoadCheckpointFrom(*model, *loc, options);
      ASSERT_FALSE(r.ok());
      EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss);
      EXPECT_THAT(r.status().message(), HasSubstr("disagree"));
    } else {
      EXPECT_THAT(loc.status().message(), HasSubstr("looked at"));
    }
  }
  // A shard name that leaves the directory.
  for (const char* name : {"../model.safetensors", "/etc/passwd", "", ".."}) {
    ASSERT_TRUE(
        testing::WriteFileBytes(
            index, absl::StrCat(R"({"weight_map": {"model.norm.weight": ")",
                                name, R"("}})"))
            .ok());
    absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
    ASSERT_FALSE(loc.ok()) << name;
    EXPECT_EQ(loc.status().code(), absl::StatusCode::kDataLoss) << name;
    EXPECT_THAT(loc.status().message(), HasSubstr("not a plain file name"));
  }
  // A shard that does not exist: the message says where it looked.
  ASSERT_TRUE(testing::WriteFileBytes(
                  index, R"({"weight_map": {"model.norm.weight": "gone.st"}})")
                  .ok());
  absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
  ASSERT_FALSE(loc.ok());
  EXPECT_EQ(loc.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(loc.status().message(),
              HasSubstr(absl::StrCat("looked at ", dir, "/gone.st")));
  // Not JSON, no weight_map.
  for (const char* text : {"{", "[]", "{}", R"({"weight_map": {}})",
                           R"({"weight_map": {"a": 3}})"}) {
    ASSERT_TRUE(testing::WriteFileBytes(index, text).ok());
    loc = LocateCheckpoint(dir);
    ASSERT_FALSE(loc.ok()) << text;
    EXPECT_EQ(loc.status().code(), absl::StatusCode::kDataLoss) << text;
  }
  // A tensor named twice: a JSON document would keep the last value and
  // never check the first (here one outside the directory).
  ASSERT_TRUE(testing::WriteFileBytes(
                  index, R"({"weight_map": {"model.norm.weight": )"
                         R"("../../etc/passwd", "model.norm.weight": )"
                         R"("model-00001-of-00002.safetensors"}})")
                  .ok());
  loc = LocateCheckpoint(dir);
  ASSERT_FALSE(loc.ok());
  EXPECT_EQ(loc.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(loc.status().message(),
              HasSubstr("key 'model.norm.weight' appears twice"));
}

// transformers loads model.safetensors when a directory holds it and an index
// (one left over from an earlier sharded save): so does LocateCheckpoint.
TEST_P(CheckpointDirTest, SingleFileWinsOverAnIndexBesideIt) {
  auto model = Qwen();
  const NamedTensors w = Weights(*model, 2);
  const std::string dir = FreshDir("both");
  HfLayout layout;
  layout.max_shard_bytes = 300;
  ASSERT_TRUE(WriteHfCheckpoint(dir, w, layout).ok());
  const std::string single = FreshDir("both_single");
  HfLayout one_file;
  ASSERT_TRUE(WriteHfCheckpoint(single, Weights(*model, 3), one_file).ok());
  ASSERT_EQ(std::system(
                absl::StrCat("cp '", single, "/model.safetensors' '", dir, "/'")
                    .c_str()),
            0);
  absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
  ASSERT_TRUE(loc.ok()) << loc.status();
  EXPECT_EQ(loc->kind, CheckpointLocation::Kind::kFile);
  EXPECT_EQ(loc->path, dir + "/model.safetensors");
}

TEST_P(CheckpointDirTest, LocateSaysWhatItLookedFor) {
  const std::string dir = FreshDir("empty");
  ASSERT_EQ(std::system(absl::StrCat("mkdir -p '", dir, "'").c_str()), 0);
  absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
  ASSERT_FALSE(loc.ok());
  EXPECT_EQ(loc.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(loc.status().message(),
              HasSubstr("looked for model.safetensors, then "
                        "model.safetensors.index.json"));

  loc = LocateCheckpoint(dir + "/nothing.safetensors");
  ASSERT_FALSE(loc.ok());
  EXPECT_EQ(loc.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(loc.status().message(), HasSubstr("no such file or directory"));

  // Two candidate files and no index: ambiguous.
  ASSERT_TRUE(testing::WriteFileBytes(dir + "/a.safetensors", "x").ok());
  ASSERT_TRUE(testing::WriteFileBytes(dir + "/b.safetensors", "x").ok());
  loc = LocateCheckpoint(dir);
  ASSERT_FALSE(loc.ok());
  EXPECT_THAT(loc.status().message(),
              HasSubstr("a.safetensors, b.safetensors"));
  // One: taken.
  ASSERT_EQ(::unlink((dir + "/b.safetensors").c_str()), 0);
  loc = LocateCheckpoint(dir);
  ASSERT_TRUE(loc.ok()) << loc.status();
  EXPECT_EQ(loc->path, dir + "/a.safetensors");
}

// A location built by hand (not by LocateCheckpoint) that names no file, or
// several for one file, is an error, not a read past its list.
TEST_P(CheckpointDirTest, HandMadeLocationWithoutItsFilesIsAnError) {
  auto model = Qwen();
  for (size_t files : {0, 2}) {
    CheckpointLocation loc;
    loc.path = "/nowhere/model.safetensors";
    loc.files.assign(files, loc.path);
    absl::StatusOr<PreparedCheckpoint> prepared =
        PrepareCheckpoint(*model, loc, CheckpointOptions());
    ASSERT_FALSE(prepared.ok());
    EXPECT_EQ(prepared.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(prepared.status().message(),
                HasSubstr(absl::StrCat("names ", files,
                                       " files for a file checkpoint")));
  }
}

TEST_P(CheckpointDirTest, NestedTextModelPrefixes) {
  auto model = Qwen();
  const NamedTensors w = Weights(*model, 6);
  struct Case {
    std::string prefix;
    bool vision, mtp;
  };
  for (const Case& c : {Case{"model.language_model.", true, true},
                        Case{"language_model.model.", true, false},
                        Case{"", false, false}, Case{"model.", true, true}}) {
    SCOPED_TRACE(c.prefix);
    const std::string dir = FreshDir("nested");
    HfLayout layout;
    layout.prefix = c.prefix;
    layout.vision = c.vision;
    layout.mtp = c.mtp;
    layout.max_shard_bytes = 1000;
    ASSERT_TRUE(WriteHfCheckpoint(dir, w, layout).ok());
    absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
    ASSERT_TRUE(loc.ok()) << loc.status();
    auto fresh = Qwen();
    CheckpointOptions options;
    options.ignore_unexpected = true;
    absl::StatusOr<CheckpointReport> r =
        LoadCheckpointFrom(*fresh, *loc, options);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->prefix, c.prefix);
    EXPECT_EQ(r->load.loaded, static_cast<int>(w.size()));
    ExpectHolds(*fresh, w);
    if (c.mtp) {
      EXPECT_THAT(r->ignored,
                  ::testing::Contains("mtp.layers.0.input_layernorm.weight"));
    }

    // Given explicitly (without the trailing dot) it is the same.
    if (!c.prefix.empty()) {
      options.prefix = c.prefix.substr(0, c.prefix.size() - 1);
      auto again = Qwen();
      r = LoadCheckpointFrom(*again, *loc, options);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_FALSE(r->prefix_detected);
      ExpectHolds(*again, w);
    }
  }

  // A wrong explicit prefix: every parameter is missing, and the message says
  // which names it looked for.
  const std::string dir = FreshDir("wrongprefix");
  HfLayout layout;
  layout.prefix = "model.language_model.";
  ASSERT_TRUE(WriteHfCheckpoint(dir, w, layout).ok());
  CheckpointOptions options;
  options.ignore_unexpected = true;
  options.prefix = "model.";
  absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
  ASSERT_TRUE(loc.ok());
  absl::StatusOr<CheckpointReport> r =
      LoadCheckpointFrom(*model, *loc, options);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("parameters missing from the checkpoint: "
                        "model.layers.*.input_layernorm.weight (x12)"));
  options.prefix = "text.";
  r = LoadCheckpointFrom(*model, *loc, options);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("missing from the checkpoint (looked for them under "
                        "'text.')"));
  // A few missing are named one by one.
  NamedTensors most = w;
  most.pop_back();  // model.norm.weight
  const std::string dir2 = FreshDir("fewmissing");
  layout.extras = false;
  ASSERT_TRUE(WriteHfCheckpoint(dir2, most, layout).ok());
  options.prefix = std::string(kAutoPrefix);
  r = LoadCheckpointFrom(*model, *LocateCheckpoint(dir2), options);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("model.norm.weight: missing from the checkpoint "
                        "(looked for 'model.language_model.norm.weight')"));
}

TEST_P(CheckpointDirTest, NonFiniteWeightsAreRefused) {
  auto model = Qwen();
  NamedTensors w = Weights(*model, 7);
  // Copy the tensors: the originals may be shared.
  for (auto& [name, t] : w) t = *ToHost(t);
  std::vector<float> v = ToFloats(w[3].second);
  v[2] = std::numeric_limits<float>::quiet_NaN();
  v[5] = std::numeric_limits<float>::infinity();
  Tensor poisoned =
      *Tensor::Empty(CpuAllocator(), w[3].second.shape(), w[3].second.dtype());
  std::vector<float> host = v;
  ASSERT_TRUE(
      CopyInto(HostView{host.data(), DType::kF32, poisoned.shape()}, poisoned)
          .ok());
  w[3].second = poisoned;
  const std::string bad_name = w[3].first;
  const std::string dir = FreshDir("nan");
  HfLayout layout;
  layout.extras = false;
  ASSERT_TRUE(WriteHfCheckpoint(dir, w, layout).ok());
  absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
  ASSERT_TRUE(loc.ok());

  const std::vector<SlotState> before = SlotStates(*model);
  CheckpointOptions options;
  absl::StatusOr<CheckpointReport> r =
      LoadCheckpointFrom(*model, *loc, options);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(),
              HasSubstr(absl::StrCat(bad_name, ": 2 of ")));
  EXPECT_THAT(r.status().message(),
              HasSubstr("NaN or infinite (the first at index 2)"));
  EXPECT_THAT(r.status().message(), HasSubstr("no weight was changed"));
  ExpectUntouched(*model, before);

  options.check_finite = false;
  r = LoadCheckpointFrom(*model, *loc, options);
  EXPECT_TRUE(r.ok()) << r.status();
}

// The check looks at the values the model would get: a finite F32 value
// that rounds to infinity in the model's F16 is refused like an infinity.
TEST_P(CheckpointDirTest, ValuesThatOverflowTheModelDtypeAreRefused) {
  auto f32_model = Qwen(DType::kF32);
  NamedTensors w = Weights(*f32_model, 9);
  for (auto& [name, t] : w) t = *ToHost(t);
  std::vector<float> v = ToFloats(w[1].second);
  v[3] = 70000.0f;  // F16's largest finite value is 65504
  ASSERT_TRUE(CopyInto(HostView{v.data(), DType::kF32, w[1].second.shape()},
                       w[1].second)
                  .ok());
  const std::string dir = FreshDir("overflow");
  HfLayout layout;
  layout.extras = false;
  ASSERT_TRUE(WriteHfCheckpoint(dir, w, layout).ok());
  absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
  ASSERT_TRUE(loc.ok());
  // Into an F32 model the value is finite: loaded.
  absl::StatusOr<CheckpointReport> r =
      LoadCheckpointFrom(*f32_model, *loc, CheckpointOptions());
  EXPECT_TRUE(r.ok()) << r.status();
  auto f16_model = Qwen(DType::kF16);
  const std::vector<SlotState> before = SlotStates(*f16_model);
  r = LoadCheckpointFrom(*f16_model, *loc, CheckpointOptions());
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr(absl::StrCat(w[1].first, ": 1 of ")));
  EXPECT_THAT(r.status().message(),
              HasSubstr("NaN or infinite in F16 (the first at index 3)"));
  EXPECT_THAT(r.status().message(), HasSubstr("no weight was changed"));
  ExpectUntouched(*f16_model, before);

  // Prepared (and checked) for the F32 model, the copies cannot go into the
  // F16 one: they would be converted again, unchecked.
  absl::StatusOr<PreparedCheckpoint> prepared =
      PrepareCheckpoint(*f32_model, *loc, CheckpointOptions());
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  r = LoadPrepared(*f16_model, *prepared, CheckpointOptions());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(),
              HasSubstr("prepared for a model with other parameter dtypes"));
  EXPECT_THAT(r.status().message(),
              HasSubstr(" was prepared as F32, the model's is F16"));
  EXPECT_THAT(r.status().message(), HasSubstr("no weight was changed"));
  ExpectUntouched(*f16_model, before);
}

TEST_P(CheckpointDirTest, ConversionsAreReported) {
  auto bf16_model = Qwen(DType::kBF16);
  const NamedTensors w = Weights(*bf16_model, 8);
  const std::string dir = FreshDir("convert");
  HfLayout layout;
  layout.extras = false;
  ASSERT_TRUE(WriteHfCheckpoint(dir, w, layout).ok());
  absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
  ASSERT_TRUE(loc.ok());
  auto f32_model = Qwen(DType::kF32);
  absl::StatusOr<CheckpointReport> r =
      LoadCheckpointFrom(*f32_model, *loc, CheckpointOptions());
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->conversions.size(), 1u);
  EXPECT_EQ(r->conversions.begin()->first, "BF16 -> F32");
  EXPECT_EQ(r->conversions.begin()->second, static_cast<int>(w.size()));
  EXPECT_EQ(r->load.converted, static_cast<int>(w.size()));

  CheckpointOptions exact;
  exact.allow_dtype_conversion = false;
  auto again = Qwen(DType::kF32);
  r = LoadCheckpointFrom(*again, *loc, exact);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr("no weight was changed"));

  // Prepared with conversion allowed, loaded with it off: the copies are in
  // the model's dtype already, but converted all the same.
  absl::StatusOr<PreparedCheckpoint> prepared =
      PrepareCheckpoint(*again, *loc, CheckpointOptions());
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  const std::vector<SlotState> before = SlotStates(*again);
  r = LoadPrepared(*again, *prepared, exact);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("BF16 -> F32"));
  EXPECT_THAT(r.status().message(), HasSubstr("conversion is off"));
  EXPECT_THAT(r.status().message(), HasSubstr("no weight was changed"));
  ExpectUntouched(*again, before);
}

TEST_P(CheckpointDirTest, NonFloatNormTensorIsAnError) {
  auto model = Qwen();
  // model.norm.weight as I64, written by hand (the writer only writes floats).
  const int64_t n = 24;
  const std::string header =
      absl::StrCat(R"({"model.norm.weight":{"dtype":"I64","shape":[)", n,
                   R"(],"data_offsets":[0,)", 8 * n, "]}}");
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i)
    bytes[i] = static_cast<char>(header.size() >> (8 * i));
  bytes += header;
  bytes += std::string(8 * n, '\0');
  const std::string dir = FreshDir("i64");
  ASSERT_EQ(std::system(absl::StrCat("mkdir -p '", dir, "'").c_str()), 0);
  ASSERT_TRUE(testing::WriteFileBytes(dir + "/model.safetensors", bytes).ok());
  absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
  ASSERT_TRUE(loc.ok());
  CheckpointOptions options;
  options.allow_missing = true;
  absl::StatusOr<CheckpointReport> r =
      LoadCheckpointFrom(*model, *loc, options);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(),
              HasSubstr("model.norm.weight: dtype I64 is not a float type"));
}

TEST_P(CheckpointDirTest, Gemma3NestedLayout) {
  Gemma3NormStackConfig c;
  c.allocator = &allocator();
  c.num_hidden_layers = 3;
  c.hidden_size = 16;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 8;
  auto model = *Gemma3NormStack::Create(c);
  const NamedTensors w = Weights(*model, 9);
  const std::string dir = FreshDir("gemma");
  HfLayout layout;
  layout.prefix = "model.language_model.";
  layout.vision = true;
  layout.max_shard_bytes = 200;
  layout.config_json = testing::Gemma3ConfigJson(c, true);
  ASSERT_TRUE(WriteHfCheckpoint(dir, w, layout).ok());
  absl::StatusOr<CheckpointLocation> loc = LocateCheckpoint(dir);
  ASSERT_TRUE(loc.ok()) << loc.status();
  CheckpointOptions options;
  options.ignore_unexpected = true;
  absl::StatusOr<CheckpointReport> r =
      LoadCheckpointFrom(*model, *loc, options);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->prefix, "model.language_model.");
  ExpectHolds(*model, w);
}

TEST_P(CheckpointDirTest, PreparedCheckpointLoadsRepeatedly) {
  auto model = Qwen();
  const NamedTensors a = Weights(*model, 10), b = Weights(*model, 11);
  const std::string da = FreshDir("a"), db = FreshDir("b");
  HfLayout layout;
  layout.extras = false;
  ASSERT_TRUE(WriteHfCheckpoint(da, a, layout).ok());
  ASSERT_TRUE(WriteHfCheckpoint(db, b, layout).ok());
  CheckpointOptions options;
  absl::StatusOr<PreparedCheckpoint> pa =
      PrepareCheckpoint(*model, *LocateCheckpoint(da), options);
  absl::StatusOr<PreparedCheckpoint> pb =
      PrepareCheckpoint(*model, *LocateCheckpoint(db), options);
  ASSERT_TRUE(pa.ok() && pb.ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(LoadPrepared(*model, *pa, options).ok());
    ExpectHolds(*model, a);
    ASSERT_TRUE(LoadPrepared(*model, *pb, options).ok());
    ExpectHolds(*model, b);
  }
}

NG_INSTANTIATE_BACKEND_TEST(CheckpointDirTest);

TEST(NaturalLessTest, NumbersCompareAsNumbers) {
  std::vector<std::string> names = {"layers.10.x", "layers.2.x", "layers.1.x",
                                    "layers.02.x", "a",          "layers.x",
                                    "layers.1"};
  std::sort(names.begin(), names.end(),
            [](const auto& a, const auto& b) { return NaturalLess(a, b); });
  EXPECT_THAT(names, ElementsAre("a", "layers.1", "layers.1.x", "layers.2.x",
                                 "layers.02.x", "layers.10.x", "layers.x"));
  EXPECT_FALSE(NaturalLess("x", "x"));
  EXPECT_TRUE(NaturalLess("model-00002-of-00010", "model-00010-of-00010"));
}

TEST(SummarizeNamesTest, GroupsLayerIndices) {
  std::vector<std::string> names;
  for (int i = 0; i < 12; ++i) {
    names.push_back(absl::StrCat("model.layers.", i, ".mlp.up_proj.weight"));
  }
  names.push_back("lm_head.weight");
  EXPECT_EQ(SummarizeNames(names),
            "model.layers.*.mlp.up_proj.weight (x12), lm_head.weight");
  EXPECT_EQ(SummarizeNames(names, 1),
            "model.layers.*.mlp.up_proj.weight (x12), ... and 1 more");
  EXPECT_EQ(SummarizeNames({}), "");
}

TEST(DetectPrefixTest, KnownLayouts) {
  auto detect = [](std::vector<std::string> names) {
    absl::StatusOr<std::string> p = DetectPrefix(names);
    return p.ok() ? *p : absl::StrCat("error: ", p.status().message());
  };
  EXPECT_EQ(detect({"model.layers.0.input_layernorm.weight"}), "model.");
  EXPECT_EQ(detect({"layers.3.input_layernorm.weight"}), "");
  EXPECT_EQ(detect({"model.language_model.layers.0.input_layernorm.weight",
                    "model.visual.blocks.0.norm1.weight",
                    "mtp.layers.0.input_layernorm.weight"}),
            "model.language_model.");
  EXPECT_EQ(detect({"model.layers.0.input_layernorm.weight",
                    "mtp.layers.0.input_layernorm.weight"}),
            "model.");
  EXPECT_EQ(detect({"lm_head.weight"}), "model.");
  EXPECT_EQ(detect({"xlayers.0.input_layernorm.weight"}), "model.");
  EXPECT_THAT(detect({"a.layers.0.input_layernorm.weight",
                      "b.layers.0.input_layernorm.weight"}),
              HasSubstr("error: cannot tell which prefix"));
}

}  // namespace
}  // namespace normgraph
