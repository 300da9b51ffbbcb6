#include "layers/hf_config.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "layers/checkpoint_dir_testing.h"

namespace normgraph {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<HfModelConfig> Parse(const std::string& json) {
  return ParseHfConfig(json, "config.json");
}

std::string Error(const std::string& json) {
  absl::StatusOr<HfModelConfig> c = Parse(json);
  return c.ok() ? "ok" : std::string(c.status().message());
}

TEST(HfConfigTest, Qwen35TextConfig) {
  absl::StatusOr<HfModelConfig> c = Parse(R"({
    "architectures": ["Qwen3_5ForCausalLM"], "model_type": "qwen3_5_text",
    "hidden_size": 64, "num_hidden_layers": 6, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 16, "linear_num_value_heads": 4,
    "linear_value_head_dim": 8, "rms_norm_eps": 1e-05, "dtype": "bfloat16",
    "layer_types": ["linear_attention", "full_attention", "linear_attention",
                    "linear_attention", "linear_attention", "full_attention"]
  })");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->family, HfFamily::kQwen35);
  EXPECT_EQ(c->family_name(), "qwen3_5");
  EXPECT_EQ(c->model_type, "qwen3_5_text");
  EXPECT_EQ(c->outer_model_type, "");
  EXPECT_EQ(c->architecture, "Qwen3_5ForCausalLM");
  EXPECT_EQ(c->qwen.hidden_size, 64);
  EXPECT_EQ(c->qwen.num_hidden_layers, 6);
  EXPECT_EQ(c->qwen.num_attention_heads, 4);
  EXPECT_EQ(c->qwen.num_key_value_heads, 2);
  EXPECT_EQ(c->qwen.head_dim, 16);
  EXPECT_EQ(c->qwen.linear_num_value_heads, 4);
  EXPECT_EQ(c->qwen.linear_value_head_dim, 8);
  EXPECT_FLOAT_EQ(c->qwen.rms_norm_eps, 1e-5f);
  ASSERT_EQ(c->qwen.layer_types.size(), 6u);
  EXPECT_EQ(c->qwen.layer_types[1], Qwen35LayerType::kFullAttention);
  EXPECT_EQ(c->qwen.layer_types[3], Qwen35LayerType::kLinearAttention);
  ASSERT_TRUE(c->dtype.has_value());
  EXPECT_EQ(*c->dtype, DType::kBF16);
  EXPECT_EQ(c->num_hidden_layers(), 6);
  EXPECT_EQ(c->hidden_size(), 64);
}

TEST(HfConfigTest, MissingKeysAreTransformersDefaults) {
  // save_pretrained leaves out values equal to the class defaults.
  absl::StatusOr<HfModelConfig> c =
      Parse(R"({"model_type": "qwen3_5_text", "torch_dtype": "float32"})");
  ASSERT_TRUE(c.ok()) << c.status();
  const Qwen35NormStackConfig defaults;
  EXPECT_EQ(c->qwen.num_hidden_layers, defaults.num_hidden_layers);
  EXPECT_EQ(c->qwen.hidden_size, defaults.hidden_size);
  EXPECT_EQ(c->qwen.head_dim, defaults.head_dim);
  ASSERT_EQ(c->qwen.layer_types.size(), 32u);
  EXPECT_EQ(c->qwen.layer_types[3], Qwen35LayerType::kFullAttention);
  EXPECT_EQ(c->qwen.layer_types[4], Qwen35LayerType::kLinearAttention);
  EXPECT_EQ(*c->dtype, DType::kF32);

  c = Parse(R"({"model_type": "gemma3_text", "num_hidden_layers": 2})");
  ASSERT_TRUE(c.ok()) << c.status();
  const Gemma3NormStackConfig g;
  EXPECT_EQ(c->family, HfFamily::kGemma3);
  EXPECT_EQ(c->gemma.num_hidden_layers, 2);
  EXPECT_EQ(c->gemma.hidden_size, g.hidden_size);
  EXPECT_FALSE(c->dtype.has_value());

  // Qwen3-Next: the pattern from full_attention_interval. Its config class's
  // defaults are not Qwen3.5's (hidden size 2048), and normgraph does not
  // have them: every key that sizes a norm must be in the file.
  const std::string next_sizes =
      R"("hidden_size": 16, "num_attention_heads": 2,
         "num_key_value_heads": 1, "head_dim": 8, "linear_num_value_heads": 2,
         "linear_value_head_dim": 4, "rms_norm_eps": 1e-6)";
  c = Parse(absl::StrCat(R"({"model_type": "qwen3_next", "num_hidden_layers": 4,
                "full_attention_interval": 2, )",
                         next_sizes, "}"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->qwen.hidden_size, 16);
  ASSERT_EQ(c->qwen.layer_types.size(), 4u);
  EXPECT_EQ(c->qwen.layer_types[0], Qwen35LayerType::kLinearAttention);
  EXPECT_EQ(c->qwen.layer_types[1], Qwen35LayerType::kFullAttention);
}

TEST(HfConfigTest, ModelTypesWithoutKnownDefaultsNeedEverySize) {
  absl::StatusOr<HfModelConfig> c = Parse(
      R"({"model_type": "qwen3_next", "num_hidden_layers": 48,
          "full_attention_interval": 4})");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("'hidden_size' is missing"));
  EXPECT_THAT(c.status().message(), HasSubstr("model_type 'qwen3_next'"));
  // The MoE variant nested in its multimodal config: named under text_config.
  c = Parse(R"({"model_type": "qwen3_5_moe", "text_config": {
                 "num_hidden_layers": 2, "hidden_size": 16,
                 "num_attention_heads": 2, "num_key_value_heads": 1,
                 "head_dim": 8, "linear_num_value_heads": 2,
                 "linear_value_head_dim": 4, "rms_norm_eps": 1e-6}})");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(),
              HasSubstr("'text_config.layer_types' or "
                        "'full_attention_interval' is missing"));
}

TEST(HfConfigTest, NestedTextConfig) {
  Gemma3NormStackConfig g;
  g.num_hidden_layers = 3;
  g.hidden_size = 16;
  absl::StatusOr<HfModelConfig> c =
      Parse(testing::Gemma3ConfigJson(g, /*nested=*/true));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->outer_model_type, "gemma3");
  EXPECT_EQ(c->model_type, "gemma3_text");
  EXPECT_EQ(c->architecture, "Gemma3ForConditionalGeneration");
  EXPECT_EQ(c->gemma.num_hidden_layers, 3);
  EXPECT_EQ(c->gemma.hidden_size, 16);

  Qwen35NormStackConfig q;
  q.num_hidden_layers = 5;
  q.hidden_size = 40;
  c = Parse(testing::Qwen35ConfigJson(q, /*nested=*/true));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->outer_model_type, "qwen3_5");
  EXPECT_EQ(c->qwen.num_hidden_layers, 5);
  EXPECT_EQ(c->qwen.hidden_size, 40);
  EXPECT_EQ(*c->dtype, DType::kBF16);

  // No text_config at all: the text config's defaults.
  c = Parse(R"({"model_type": "gemma3"})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->gemma.num_hidden_layers, 26);
  EXPECT_THAT(Error(R"({"model_type": "gemma3",
                        "text_config": {"model_type": "qwen3_5_text"}})"),
              HasSubstr("does not belong to 'gemma3'"));
  // transformers reads a qwen3_5_moe's text_config as Qwen3_5MoeTextConfig
  // whatever type it names (the dense model's defaults differ): another
  // text type of the family is refused, not read with the wrong defaults.
  EXPECT_THAT(Error(R"({"model_type": "qwen3_5_moe",
                        "text_config": {"model_type": "qwen3_5_text"}})"),
              HasSubstr("does not belong to 'qwen3_5_moe' (its text model is "
                        "'qwen3_5_moe_text')"));
  EXPECT_THAT(Error(R"({"model_type": "qwen3_5",
                        "text_config": {"model_type": "qwen3_5_moe_text"}})"),
              HasSubstr("does not belong to 'qwen3_5'"));
}

// Gemma3's layer_types (sliding or full attention: the same norms) must be a
// pattern transformers accepts: one known entry per layer.
TEST(HfConfigTest, Gemma3LayerTypesAreValidated) {
  absl::StatusOr<HfModelConfig> c =
      Parse(R"({"model_type": "gemma3_text", "num_hidden_layers": 2,
                "layer_types": ["sliding_attention", "full_attention"]})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->gemma.num_hidden_layers, 2);
  EXPECT_THAT(Error(R"({"model_type": "gemma3_text", "num_hidden_layers": 4,
                        "layer_types": ["full_attention"]})"),
              HasSubstr("layer_types has 1 entries for num_hidden_layers = 4"));
  EXPECT_THAT(Error(R"({"model_type": "gemma3", "text_config": {
                        "num_hidden_layers": 1, "layer_types": ["linear"]}})"),
              HasSubstr("text_config.layer_types[0] = 'linear'"));
  EXPECT_THAT(Error(R"({"model_type": "gemma3_text", "layer_types": 3})"),
              HasSubstr("layer_types is not a list"));
}

TEST(HfConfigTest, BadValuesAreRefusedWithTheKey) {
  EXPECT_THAT(Error("{"), HasSubstr("not valid JSON"));
  EXPECT_THAT(Error("[1]"), HasSubstr("not a JSON object"));
  EXPECT_THAT(Error("{}"), HasSubstr("no \"model_type\""));
  EXPECT_THAT(Error(R"({"model_type": "llama"})"),
              HasSubstr("model_type 'llama' is not one normgraph models; "
                        "supported: qwen3_5_text, qwen3_5"));
  EXPECT_THAT(
      Error(
          R"({"model_type": "qwen3_5_text", "num_hidden_layers": 2147483647})"),
      HasSubstr("num_hidden_layers = 2147483647 is outside the supported "
                "range 1 to 1024"));
  EXPECT_THAT(Error(R"({"model_type": "qwen3_5_text", "hidden_size": -64})"),
              HasSubstr("hidden_size = -64 is outside"));
  EXPECT_THAT(Error(R"({"model_type": "qwen3_5_text", "hidden_size": 0})"),
              HasSubstr("hidden_size = 0 is outside"));
  EXPECT_THAT(Error(R"({"model_type": "gemma3_text", "head_dim": "8"})"),
              HasSubstr("head_dim = \"8\" is not an integer"));
  EXPECT_THAT(Error(R"({"model_type": "gemma3_text", "head_dim": 8.5})"),
              HasSubstr("head_dim = 8.5 is not an integer"));
  EXPECT_THAT(Error(R"({"model_type": "gemma3",
                "text_config": {"num_hidden_layers": 99999999999999999999}})"),
              HasSubstr("text_config.num_hidden_layers"));
  EXPECT_THAT(Error(R"({"model_type": "gemma3_text", "rms_norm_eps": -1})"),
              HasSubstr("rms_norm_eps = -1 is not a number in (0, 1]"));
  EXPECT_THAT(Error(R"({"model_type": "qwen3_5_text", "num_hidden_layers": 2,
                        "layer_types": ["full_attention"]})"),
              HasSubstr("layer_types has 1 entries for num_hidden_layers = 2"));
  EXPECT_THAT(Error(R"({"model_type": "qwen3_5_text", "num_hidden_layers": 1,
                        "layer_types": ["sliding_attention"]})"),
              HasSubstr("layer_types[0] = 'sliding_attention'; valid: "
                        "linear_attention, full_attention"));
  EXPECT_THAT(Error(R"({"model_type": "qwen3_5_text", "dtype": 3})"),
              HasSubstr("dtype is not a string"));
  // An unknown name is refused, never replaced by the default.
  EXPECT_THAT(
      Error(R"({"model_type": "qwen3_5_text", "torch_dtype": "float64"})"),
      HasSubstr("torch_dtype 'float64' is not a dtype normgraph runs"));
}

// A size or eps written as null would fail in transformers (save_pretrained
// leaves a defaulted key out instead): refused, not read as the default.
// Keys normgraph does not read may be null, as real configs have them.
TEST(HfConfigTest, NullSizesAreRefused) {
  EXPECT_THAT(Error(R"({"model_type": "qwen3_5_text",
                        "num_hidden_layers": null})"),
              HasSubstr("num_hidden_layers is null"));
  EXPECT_THAT(Error(R"({"model_type": "gemma3", "text_config":
                        {"head_dim": null}})"),
              HasSubstr("text_config.head_dim is null"));
  EXPECT_THAT(Error(R"({"model_type": "gemma3_text", "rms_norm_eps": null})"),
              HasSubstr("rms_norm_eps is null"));
  EXPECT_EQ(Error(R"({"model_type": "gemma3_text", "pad_token_id": null,
                      "final_logit_softcapping": null})"),
            "ok");
  EXPECT_EQ(Error(R"({"model_type": "qwen3_5_text", "layer_types": null,
                      "full_attention_interval": null})"),
            "ok");
}

// eps is added in float32: a value float32 holds as 0 or as a subnormal
// is refused (1e-46 would make an all-zero row's norm infinite).
TEST(HfConfigTest, EpsMustBeANormalFloat32) {
  EXPECT_THAT(Error(R"({"model_type": "gemma3_text", "rms_norm_eps": 1e-46})"),
              HasSubstr("below float32's smallest normal number"));
  EXPECT_THAT(Error(R"({"model_type": "gemma3_text", "rms_norm_eps": 1e-39})"),
              HasSubstr("below float32's smallest normal number"));
  absl::StatusOr<HfModelConfig> c =
      Parse(R"({"model_type": "gemma3_text", "rms_norm_eps": 1.2e-38})");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->gemma.rms_norm_eps, 1.2e-38f);
}

// nlohmann's parser stops at a NUL byte: what follows would go unread.
TEST(HfConfigTest, ANulByteIsRefused) {
  const std::string json =
      std::string(R"({"model_type": "gemma3_text"})") + '\0' + "{{{ garbage";
  EXPECT_THAT(Error(json), HasSubstr("a NUL byte at offset 29"));
}

TEST(HfConfigTest, ReadFromFile) {
  absl::StatusOr<HfModelConfig> c = ReadHfConfig("/nonexistent/config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("/nonexistent/config.json"));

  const char* tmp = std::getenv("TEST_TMPDIR");
  const std::string path =
      absl::StrCat(tmp != nullptr ? tmp : "/tmp", "/hf_config_test.json");
  ASSERT_TRUE(
      testing::WriteFileBytes(path, R"({"model_type": "gemma3_text"})").ok());
  c = ReadHfConfig(path);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->source, path);
}

}  // namespace
}  // namespace normgraph
