// Config loading: extends chains, --set overrides, and errors that name the file and the key.
// Also the learning-rate schedule.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <initializer_list>

#include <gtest/gtest.h>

#include "test_helpers.h"

#include "common/error.h"
#include "config/config.h"
#include "position/scheme_info.h"
#include "train/schedule.h"

namespace extrap {
namespace {

using test::contains;
using test::user_error_message;

namespace fs = std::filesystem;
using nlohmann::json;

class ConfigTest : public test::TempDirTest {
 protected:

  // Writes `text` to root/name and returns the path as a string.
  std::string write(const std::string& name, const std::string& text) {
    const fs::path path = root_ / name;
    fs::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary) << text;
    return path.string();
  }
  std::string write(const std::string& name, const json& document) { return write(name, document.dump(2)); }

  // A valid config; the dataset directory need not exist for load_config.
  static json base_config() {
    return {{"model", {{"d_model", 32}, {"n_layers", 1}, {"n_heads", 2}}},
            {"position", {{"scheme", "rope"}, {"base", 500.0}}},
            {"data", {{"dataset", "/nonexistent/extrap-data"}, {"train_length", 32}}},
            {"train", {{"steps", 10}}}};
  }

  // Loads `path` expecting a UserError whose message holds every one of `parts`; returns it.
  static std::string expect_error(const std::string& path, std::initializer_list<std::string> parts,
                                  const std::vector<std::string>& overrides = {}) {
    std::string message;
    try {
      load_config(path, overrides);
      ADD_FAILURE() << path << ": expected a UserError";
    } catch (const UserError& e) {
      message = e.what();
    }
    for (const auto& part : parts) {
      EXPECT_NE(message.find(part), std::string::npos) << "missing \"" << part << "\" in: " << message;
    }
    return message;
  }

  // Writes base_config() with `key.path` replaced by `value` (JSON pointer) and expects an error
  // naming the file and the dotted key.
  void expect_bad_value(const std::string& pointer, const json& value, const std::string& dotted_key) {
    json document = base_config();
    document[json::json_pointer(pointer)] = value;
    const std::string path = write("bad.json", document);
    expect_error(path, {"bad.json", dotted_key});
  }

};

TEST_F(ConfigTest, LoadsAValidConfigWithDefaults) {
  const RunConfig config = load_config(write("tiny.json", base_config()));
  EXPECT_EQ(config.name, "tiny");  // the file's stem when no name is given
  EXPECT_EQ(config.resolved.at("name"), "tiny");
  EXPECT_EQ(config.model.d_model, 32);
  EXPECT_EQ(config.model.d_mlp, 128);  // 0 means 4 * d_model
  EXPECT_EQ(config.resolved.at("model").at("d_mlp"), 128);
  EXPECT_EQ(config.model.vocab_size, ModelConfig{}.vocab_size);
  EXPECT_EQ(config.train.steps, 10);
  EXPECT_EQ(config.train.batch_size, TrainConfig{}.batch_size);
  EXPECT_EQ(config.position.scheme, "rope");
  // The given parameter over the scheme's defaults, all spelled out in the resolved document.
  json expected = resolve_scheme_params(find_scheme("rope"), json::object());
  expected["base"] = 500.0;
  EXPECT_EQ(config.position.params, expected);
  expected["scheme"] = "rope";
  EXPECT_EQ(config.resolved.at("position"), expected);
  // The resolved document reloads to the same config (this is what a run directory stores).
  EXPECT_EQ(config_from_json(config.resolved, "config.json").resolved, config.resolved);
}

TEST_F(ConfigTest, MissingFile) {
  expect_error((root_ / "absent.json").string(), {"absent.json", "not found"});
}

TEST_F(ConfigTest, MalformedJson) {
  const std::string path = write("broken.json", std::string(R"({"model": {"d_model": 32,}})"));
  expect_error(path, {"broken.json", "malformed JSON"});
}

TEST_F(ConfigTest, UnknownTopLevelKey) {
  json document = base_config();
  document["modle"] = {{"d_model", 32}};
  expect_error(write("typo.json", document), {"typo.json", "modle", "unknown key"});
}

TEST_F(ConfigTest, UnknownNestedKey) {
  json document = base_config();
  document["model"]["d_modle"] = 64;
  expect_error(write("typo.json", document), {"typo.json", "model.d_modle", "unknown key"});
}

TEST_F(ConfigTest, WrongType) {
  expect_bad_value("/model/d_model", "big", "model.d_model");
  expect_bad_value("/model/d_model", 32.5, "model.d_model");
  expect_bad_value("/train/lr", "fast", "train.lr");
  expect_bad_value("/model/bias", 1, "model.bias");
}

TEST_F(ConfigTest, DModelNotDivisibleByHeads) {
  json document = base_config();
  document["model"]["d_model"] = 30;
  document["model"]["n_heads"] = 4;
  expect_error(write("heads.json", document), {"heads.json", "model.d_model", "model.n_heads"});
}

TEST_F(ConfigTest, OddRopeHeadDimension) {
  json document = base_config();
  document["model"]["d_model"] = 6;
  document["model"]["n_heads"] = 2;
  expect_error(write("odd.json", document), {"odd.json", "model.d_model", "odd"});
  document["position"] = {{"scheme", "alibi"}};  // only RoPE needs pairs
  EXPECT_NO_THROW(load_config(write("odd_alibi.json", document)));
}

TEST_F(ConfigTest, NonPositiveTrainLength) {
  expect_bad_value("/data/train_length", 0, "data.train_length");
  expect_bad_value("/data/train_length", -8, "data.train_length");
}

TEST_F(ConfigTest, NegativeLearningRate) {
  expect_bad_value("/train/lr", -0.001, "train.lr");
  expect_bad_value("/train/lr", 0.0, "train.lr");
}

TEST_F(ConfigTest, OtherImpossibleValues) {
  expect_bad_value("/model/dropout", 1.0, "model.dropout");
  expect_bad_value("/model/n_heads", 0, "model.n_heads");
  expect_bad_value("/data/dataset", "", "data.dataset");
  expect_bad_value("/position/base", 0.5, "position.base");
  expect_bad_value("/position/base", "big", "position.base");
  expect_bad_value("/position/bsae", 5.0, "position.bsae");
}

TEST_F(ConfigTest, UnknownScheme) {
  json document = base_config();
  document["position"] = {{"scheme", "xpos_typo"}};
  expect_error(write("scheme.json", document), {"scheme.json", "position.scheme", "xpos_typo", "alibi", "rope"});
}

TEST_F(ConfigTest, ExtendsChainMergesParentsUnderChildren) {
  json grandparent = base_config();
  grandparent["model"]["n_layers"] = 3;
  grandparent["train"]["lr"] = 0.01;
  grandparent["seed"] = 99;
  write("base/grandparent.json", grandparent);
  write("base/parent.json", json{{"extends", "grandparent.json"}, {"train", {{"steps", 20}}}});
  const std::string child = write("runs/child.json", json{{"extends", "../base/parent.json"},
                                                          {"model", {{"d_model", 64}}},
                                                          {"train", {{"batch_size", 8}}}});
  const RunConfig config = load_config(child);
  EXPECT_EQ(config.name, "child");
  EXPECT_EQ(config.model.d_model, 64);     // child
  EXPECT_EQ(config.model.n_layers, 3);     // grandparent, kept beside the child's model key
  EXPECT_EQ(config.model.n_heads, 2);      // grandparent
  EXPECT_EQ(config.train.batch_size, 8);   // child
  EXPECT_EQ(config.train.steps, 20);       // parent over grandparent
  EXPECT_DOUBLE_EQ(config.train.lr, 0.01); // grandparent
  EXPECT_EQ(config.seed, 99u);
  EXPECT_EQ(config.position.params.at("base"), 500.0);
  EXPECT_FALSE(config.resolved.contains("extends"));
}

TEST_F(ConfigTest, ExtendsWithAnotherSchemeDropsTheParentsSchemeParams) {
  write("parent.json", base_config());  // rope with base 500
  const std::string child = write("child.json", json{{"extends", "parent.json"}, {"position", {{"scheme", "alibi"}}}});
  const RunConfig config = load_config(child);
  EXPECT_EQ(config.position.scheme, "alibi");
  EXPECT_EQ(config.position.params, json::object());
}

TEST_F(ConfigTest, ExtendsErrors) {
  write("a.json", json{{"extends", "b.json"}, {"seed", 1}});
  write("b.json", json{{"extends", "a.json"}, {"seed", 2}});
  expect_error((root_ / "a.json").string(), {"a.json", "cycle"});
  const std::string self = write("self.json", json{{"extends", "self.json"}});
  expect_error(self, {"self.json", "cycle"});
  const std::string orphan = write("orphan.json", json{{"extends", "missing_parent.json"}});
  expect_error(orphan, {"missing_parent.json", "not found"});
  const std::string bad = write("bad_extends.json", json{{"extends", 3}});
  expect_error(bad, {"bad_extends.json", "extends"});
}

TEST_F(ConfigTest, SetOverridesApply) {
  const std::string path = write("tiny.json", base_config());
  const RunConfig config =
      load_config(path, {"model.d_model=64", "train.lr=0.005", "name=renamed", "model.bias=false", "position.base=800"});
  EXPECT_EQ(config.model.d_model, 64);
  EXPECT_EQ(config.model.d_mlp, 256);
  EXPECT_DOUBLE_EQ(config.train.lr, 0.005);
  EXPECT_EQ(config.name, "renamed");
  EXPECT_FALSE(config.model.bias);
  EXPECT_EQ(config.position.params.at("base").get<double>(), 800.0);
  EXPECT_EQ(config.resolved.at("model").at("d_model"), 64);
}

TEST_F(ConfigTest, SetOverrideErrors) {
  const std::string path = write("tiny.json", base_config());
  // Errors a --set causes name the --set argument, not the file.
  expect_error(path, {"--set model.d_modle=64: model.d_modle: unknown key"}, {"model.d_modle=64"});
  expect_error(path, {"--set model.d_model=big: model.d_model"}, {"model.d_model=big"});
  expect_error(path, {"--set model.d_model: expected key=value"}, {"model.d_model"});
  expect_error(path, {"--set model.d_model.width=3", "d_model is not an object"}, {"model.d_model.width=3"});
  expect_error(path, {"--set model.n_heads=3: model.d_model", "not divisible"}, {"train.lr=0.01", "model.n_heads=3"});
  expect_error(path, {"--set train.lr=-1e-07: train.lr: must be in [1e-12, 10], got -1e-07"}, {"train.lr=-1e-07"});
  // An error already in the file still names the file.
  json broken = base_config();
  broken["train"]["steps"] = 0;
  expect_error(write("broken.json", broken), {"broken.json: train.steps: must be at least 1"}, {"train.lr=0.01"});
}

TEST_F(ConfigTest, SetSchemeDropsTheOldSchemesParams) {
  const std::string path = write("tiny.json", base_config());  // rope with base 500
  const RunConfig config = load_config(path, {"position.scheme=alibi"});
  EXPECT_EQ(config.position.scheme, "alibi");
  EXPECT_EQ(config.position.params, json::object());
  EXPECT_EQ(config.resolved.at("position"), (json{{"scheme", "alibi"}}));
  // Parameters set after the switch belong to the new scheme.
  const RunConfig learned = load_config(path, {"position.scheme=learned", "position.max_positions=64"});
  EXPECT_EQ(learned.position.params, (json{{"max_positions", 64}}));
  // Re-stating the same scheme keeps its parameters.
  EXPECT_EQ(load_config(path, {"position.scheme=rope"}).position.params.at("base"), 500.0);
}

TEST_F(ConfigTest, OneSwitchingRuleForExtendsAndSetKeepsTrainedParamsAndNamesEveryDroppedValue) {
  // rope -> xpos keeps `base` (a trained parameter both have); rope -> rerope keeps base and
  // rotary_dims but drops the inference-time scaling, default or not.
  json document = base_config();
  document["position"] = {{"scheme", "rope"}, {"base", 500.0}, {"scaling", "none"}, {"factor", 0.0}};
  const std::string path = write("rope.json", document);
  test::CapturedLog log;
  const RunConfig xpos = load_config(path, {"position.scheme=xpos"});
  EXPECT_EQ(xpos.position.params.at("base"), 500.0);
  EXPECT_TRUE(contains(log.text(), "--set position.scheme=xpos: position: switching rope -> \"xpos\" drops "
                                   "factor = 0.0, scaling = \"none\""))
      << log.text();
  write("child.json", json{{"extends", "rope.json"}, {"position", {{"scheme", "rerope"}, {"window", 8}}}});
  const RunConfig rerope = load_config((root_ / "child.json").string());
  EXPECT_EQ(rerope.position.params.at("base"), 500.0);
  EXPECT_EQ(rerope.position.params.at("window"), 8);
  EXPECT_TRUE(contains(log.text(), "child.json: position: switching rope -> \"rerope\" drops")) << log.text();
}

// ---- Learning-rate schedule -------------------------------------------------------------------

TEST(LearningRateSchedule, WarmupIsLinearAndPeaksAtItsEnd) {
  const double lr = 1e-3;
  const int64_t total = 100, warmup = 10;
  for (int64_t step = 0; step < warmup; ++step) {
    EXPECT_NEAR(learning_rate(step, total, warmup, lr, 0.1), lr * double(step + 1) / double(warmup), 1e-15) << step;
  }
  EXPECT_DOUBLE_EQ(learning_rate(warmup - 1, total, warmup, lr, 0.1), lr);
  EXPECT_DOUBLE_EQ(learning_rate(warmup, total, warmup, lr, 0.1), lr);  // cosine starts at the peak
  for (int64_t step = 0; step < total + 5; ++step) {
    EXPECT_LE(learning_rate(step, total, warmup, lr, 0.1), lr * (1 + 1e-12)) << step;
  }
}

TEST(LearningRateSchedule, CosineDecaysToTheFloor) {
  const double lr = 2e-3, ratio = 0.1;
  const int64_t total = 100, warmup = 10;
  double previous = learning_rate(warmup, total, warmup, lr, ratio);
  for (int64_t step = warmup + 1; step < total; ++step) {
    const double current = learning_rate(step, total, warmup, lr, ratio);
    EXPECT_LT(current, previous) << step;
    EXPECT_GT(current, lr * ratio) << step;
    previous = current;
  }
  // Half way through the decay: the midpoint of peak and floor.
  EXPECT_NEAR(learning_rate(55, total, warmup, lr, ratio), lr * (ratio + 1.0) / 2.0, 1e-15);
  // The floor is reached at `total` steps and held after it.
  EXPECT_NEAR(learning_rate(total, total, warmup, lr, ratio), lr * ratio, 1e-15);
  EXPECT_NEAR(learning_rate(total + 50, total, warmup, lr, ratio), lr * ratio, 1e-15);
  // The last update (step total - 1) is within one step of cosine of the floor.
  EXPECT_NEAR(learning_rate(total - 1, total, warmup, lr, ratio), lr * ratio, lr * 1e-3);
}

TEST(LearningRateSchedule, DegenerateSchedules) {
  EXPECT_DOUBLE_EQ(learning_rate(0, 10, 0, 1.0, 0.1), 1.0);   // no warmup: starts at the peak
  EXPECT_DOUBLE_EQ(learning_rate(3, 5, 5, 1.0, 0.1), 0.8);    // all warmup
  EXPECT_DOUBLE_EQ(learning_rate(7, 5, 5, 1.0, 0.1), 1.0);    // warmup >= total: constant after it
  EXPECT_DOUBLE_EQ(learning_rate(9, 10, 0, 1.0, 1.0), 1.0);   // min ratio 1: constant
}

// ---- Per-layer schemes, attention modifiers, position sampling ---------------------------------

json hwfa_config() {
  // Su's HWFA (methods.md §3.7): window + RoPE on all layers but the last; the last is full
  // attention, NoPE, log n; window from the receptive-field rule with alpha = 3/4.
  return {{"model", {{"d_model", 32}, {"n_layers", 4}, {"n_heads", 2}}},
          {"position", {{"scheme", "rope"}}},
          {"attention", {{"window_receptive_field", 0.75}}},
          {"layers", json::array({{{"layers", {-1}},
                                   {"position", {{"scheme", "nope"}}},
                                   {"attention", {{"window_receptive_field", 0.0}, {"logn", "train"}}}}})},
          {"data", {{"dataset", "/nonexistent/extrap-data"}, {"train_length", 128}}}};
}

TEST_F(ConfigTest, HwfaLayersAndReceptiveField) {
  const RunConfig config = load_config(write("hwfa.json", hwfa_config()));
  ASSERT_EQ(config.layers.size(), 4u);
  // (w - 1) * 3 + 1 <= 0.75 * 128 = 96 gives w = 32 (receptive field 94; w = 33 would give 97).
  for (int layer = 0; layer < 3; ++layer) {
    EXPECT_EQ(config.layers[layer].scheme_group, -1) << layer;
    EXPECT_EQ(config.layers[layer].attention.window, 32) << layer;
    EXPECT_EQ(config.layers[layer].attention.logn, LognMode::kNone) << layer;
  }
  EXPECT_EQ(config.layers[3].scheme_group, 0);
  EXPECT_EQ(config.layer_schemes[0].scheme, "nope");
  EXPECT_EQ(config.layers[3].attention.window, 0);
  EXPECT_EQ(config.layers[3].attention.logn, LognMode::kTrain);
  // The resolved document spells the window out and reads back to the same layers.
  const RunConfig again = config_from_json(config.resolved, "resolved");
  for (int layer = 0; layer < 4; ++layer) {
    EXPECT_EQ(again.layers[layer].attention.window, config.layers[layer].attention.window) << layer;
    EXPECT_EQ(again.layers[layer].attention.logn, config.layers[layer].attention.logn) << layer;
    EXPECT_EQ(again.layers[layer].scheme_group, config.layers[layer].scheme_group) << layer;
  }
  // With 8 layers (7 windowed) the rule gives w = 14: 13 * 7 + 1 = 92 <= 96 < 14 * 7 + 1.
  json eight = hwfa_config();
  eight["model"]["n_layers"] = 8;
  EXPECT_EQ(load_config(write("hwfa8.json", eight)).layers[0].attention.window, 14);
}

TEST_F(ConfigTest, ShippedHwfaConfigsFollowSusRecipes) {
  const auto shipped = [](const char* name) {
    return load_config((fs::path(__FILE__).parent_path().parent_path() / "configs" / name).string());
  };
  // HWFA at N = 128 with 4 layers: (w - 1) * 3 + 1 <= 96 gives w = 32 on layers 0-2; the last layer
  // is full attention, NoPE, log-n.
  const RunConfig hwfa = shipped("hwfa.json");
  for (int layer = 0; layer < 3; ++layer) {
    EXPECT_EQ(hwfa.layers[layer].attention.window, 32) << layer;
    EXPECT_EQ(hwfa.layers[layer].scheme_group, -1) << layer;
  }
  EXPECT_EQ(hwfa.position.scheme, "rope");
  EXPECT_EQ(hwfa.layer_schemes.at(hwfa.layers[3].scheme_group).scheme, "nope");
  EXPECT_EQ(hwfa.layers[3].attention.window, 0);
  EXPECT_EQ(hwfa.layers[3].attention.logn, LognMode::kTrain);
  // HWFA2: RoPE everywhere, full attention on the middle layer(s), window 64 elsewhere.
  for (const auto& [name, full] : std::vector<std::pair<const char*, std::vector<int>>>{{"hwfa2.json", {2}},
                                                                                        {"hwfa2_f2.json", {1, 2}}}) {
    const RunConfig hwfa2 = shipped(name);
    for (int layer = 0; layer < 4; ++layer) {
      const bool is_full = std::find(full.begin(), full.end(), layer) != full.end();
      EXPECT_EQ(hwfa2.layers[layer].attention.window, is_full ? 0 : 64) << name << " " << layer;
      EXPECT_EQ(hwfa2.layers[layer].scheme_group, -1) << name << " " << layer;  // the model-wide rope
    }
  }
}

TEST_F(ConfigTest, LayerSelectionsBySliceAndIndex) {
  json document = base_config();
  document["model"]["n_layers"] = 6;
  document["layers"] = json::array({{{"layers", "1:-2"}, {"attention", {{"window", 8}}}},
                                    {{"layers", {0, -1}}, {"position", {{"scheme", "alibi"}}}}});
  const RunConfig config = load_config(write("slices.json", document));
  const int64_t windows[] = {0, 8, 8, 8, 0, 0};
  const int groups[] = {1, -1, -1, -1, -1, 1};
  for (int layer = 0; layer < 6; ++layer) {
    EXPECT_EQ(config.layers[layer].attention.window, windows[layer]) << layer;
    EXPECT_EQ(config.layers[layer].scheme_group, groups[layer]) << layer;
  }
}

TEST_F(ConfigTest, BadLayerOverridesNameTheEntry) {
  const auto with_layers = [&](const json& layers) {
    json document = base_config();
    document["model"]["n_layers"] = 3;
    document["layers"] = layers;
    return write("layers.json", document);
  };
  expect_error(with_layers(json::array({{{"layers", {3}}}})), {"layers.json", "layers[0].layers", "layer 3"});
  expect_error(with_layers(json::array({{{"layers", {0}}}, {{"layers", "0:2"}}})),
               {"layers[1].layers", "also set by layers[0]"});
  expect_error(with_layers(json::array({{{"layers", {0}}, {"attention", {{"windw", 4}}}}})),
               {"layers[0].attention.windw", "unknown"});
  expect_error(with_layers(json::array({{{"layers", {0}}, {"position", {{"scheme", "learned"}}}}})),
               {"layers[0].position.scheme", "input embedding"});
  expect_error(with_layers(json::array({{{"layers", {1}}, {"position", {{"scheme", "rope"}, {"base", 0.5}}}}})),
               {"layers[0].position.base"});
  expect_error(with_layers(json::array({{{"layers", "x:1"}}})), {"layers[0].layers", "slice"});
  expect_error(with_layers(json::array({{{"layers", {0}}, {"extra", 1}}})), {"layers[0].extra", "unknown key"});
}

TEST_F(ConfigTest, BadAttentionSettingsAndImpossibleCombinations) {
  expect_bad_value("/attention/window", -1, "attention.window");
  expect_bad_value("/attention/logn", "sometimes", "attention.logn");
  expect_bad_value("/attention/qk_norm", "layer", "attention.qk_norm");
  expect_bad_value("/attention/window_receptive_field", 1.5, "attention.window_receptive_field");
  expect_bad_value("/attention/sinks", 4, "attention.sinks");  // sinks without a window
  json document = base_config();
  document["attention"] = {{"window", 8}, {"window_receptive_field", 0.5}};
  expect_error(write("both.json", document), {"attention.window_receptive_field", "not both"});
  document = base_config();
  document["attention"] = {{"qk_bias", true}};  // model.bias defaults to true
  expect_error(write("qkbias.json", document), {"attention.qk_bias", "model.bias"});
  document["model"]["bias"] = false;
  EXPECT_TRUE(load_config(write("qkbias_ok.json", document)).layers[0].attention.qk_bias);
}

TEST_F(ConfigTest, PositionSamplingChecks) {
  json document = base_config();
  document["position_sampling"] = {{"train", "random"}};
  EXPECT_EQ(load_config(write("random.json", document)).position_sampling.range, 8 * 32);  // 0 means 8 x train_length
  expect_bad_value("/position_sampling/train", "shuffled", "position_sampling.train");
  expect_bad_value("/position_sampling/range", 16, "position_sampling.range");
  // Float positions cannot index a learned table; random integer positions need a table that covers the range.
  document = base_config();
  document["position"] = {{"scheme", "learned"}};
  document["position_sampling"] = {{"train", "equal_mean"}};
  expect_error(write("learned_float.json", document), {"position_sampling.train", "learned"});
  document["position_sampling"] = {{"train", "random"}, {"range", 256}};
  expect_error(write("learned_range.json", document), {"position_sampling.range", "max_positions"});
  document["position"]["max_positions"] = 256;
  EXPECT_NO_THROW(load_config(write("learned_ok.json", document)));
  // Spread evaluation positions reach range - 1 as well, even with ordinary training positions.
  document["position"]["max_positions"] = 32;
  document["position_sampling"] = {{"eval", "spread"}};
  expect_error(write("learned_spread.json", document), {"position_sampling.range", "256 exceeds the 32 positions"});
  // xPos's decay factors stay in float32 for 69478 positions at scale_base 512.
  document = base_config();
  document["position"] = {{"scheme", "xpos"}};
  document["position_sampling"] = {{"train", "random"}, {"range", 100000}};
  expect_error(write("xpos_range.json", document), {"position_sampling.range", "100000 exceeds the 69478 positions xpos"});
  document["position_sampling"]["range"] = 65536;
  EXPECT_NO_THROW(load_config(write("xpos_ok.json", document)));
  // ReRoPE's two passes are merged by token distance: remapped positions would break the merge.
  document = base_config();
  document["position"] = {{"scheme", "rerope"}};
  for (const json& sampling : {json{{"train", "random"}}, json{{"train", "equal_mean"}}, json{{"eval", "spread"}}}) {
    SCOPED_TRACE(sampling.dump());
    document["position_sampling"] = sampling;
    expect_error(write("rerope_sampled.json", document), {"position_sampling." + sampling.begin().key(), "rerope merges"});
  }
}

TEST_F(ConfigTest, MiddleLayersFollowSusHwfa2Placement) {
  json document = base_config();
  const auto middle = [&](int64_t n_layers, const std::string& selection) {
    document["model"]["n_layers"] = n_layers;
    document["layers"] = json::array({{{"layers", selection}, {"attention", {{"window", 0}}}}});
    document["attention"] = {{"window", 8}};
    std::vector<int64_t> full;
    const RunConfig config = load_config(write("middle.json", document));
    for (int64_t l = 0; l < n_layers; ++l)
      if (config.layers[l].attention.window == 0) full.push_back(l);
    return full;
  };
  EXPECT_EQ(middle(4, "middle:1"), (std::vector<int64_t>{2}));       // n/2
  EXPECT_EQ(middle(24, "middle:1"), (std::vector<int64_t>{12}));
  EXPECT_EQ(middle(24, "middle:2"), (std::vector<int64_t>{8, 16}));  // n/3, 2n/3
  EXPECT_EQ(middle(4, "middle:2"), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(middle(3, "middle:3"), (std::vector<int64_t>{0, 1, 2}));
  for (const char* bad : {"middle:0", "middle:5", "middle:", "middle:x"}) {
    document["model"]["n_layers"] = 4;
    document["layers"] = json::array({{{"layers", bad}}});
    expect_error(write("middle_bad.json", document), {"layers[0].layers", "expected \"middle:F\""});
  }
  // "every:K": every K-th layer counting from 1, as Llama 4's no_rope_layer_interval places NoPE.
  EXPECT_EQ(middle(12, "every:4"), (std::vector<int64_t>{3, 7, 11}));
  EXPECT_EQ(middle(4, "every:1"), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(middle(5, "every:5"), (std::vector<int64_t>{4}));
  for (const char* bad : {"every:0", "every:6", "every:", "every:-1"}) {
    document["model"]["n_layers"] = 5;
    document["layers"] = json::array({{{"layers", bad}}});
    expect_error(write("every_bad.json", document), {"layers[0].layers", "expected \"every:K\" with 1 <= K <= model.n_layers = 5"});
  }
}

}  // namespace
}  // namespace extrap
