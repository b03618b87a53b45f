// Inference-time treatments (src/eval/treatment.cpp): what an overlay changes in a trained run's
// config, "$train_length" substitution, refusals and file errors, and the shipped presets in
// configs/eval/. The end-to-end evaluation under treatments is in test_train_eval.cpp.
#include <algorithm>
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "config/config.h"
#include "eval/treatment.h"
#include "test_helpers.h"

namespace extrap {
namespace {

using nlohmann::json;
using test::contains;
using test::user_error_message;
namespace fs = std::filesystem;

fs::path source_path(const std::string& relative) { return fs::path(__FILE__).parent_path().parent_path() / relative; }

// A 4-layer model trained at 64 tokens; `patch` is merged over it (JSON merge patch).
RunConfig trained(const json& patch = json::object()) {
  json document = {{"name", "t"},
                   {"model", {{"d_model", 32}, {"n_layers", 4}, {"n_heads", 2}}},
                   {"position", {{"scheme", "rope"}}},
                   {"data", {{"dataset", "unused"}, {"train_length", 64}}}};
  document.merge_patch(patch);
  return config_from_json(document, "trained.json");
}

Treatment treatment(const json& entry) {
  Treatment t{entry.at("name").get<std::string>(), entry};
  t.overlay.erase("name");
  return t;
}

// The scheme a layer runs with.
const PositionConfig& layer_scheme(const RunConfig& config, int64_t layer) { return config.layer_position(layer); }

// Every layer's scheme and attention, as JSON, to compare configs layer by layer.
json layers_json(const RunConfig& config) {
  json layers = json::array();
  for (std::size_t l = 0; l < config.layers.size(); ++l) {
    layers.push_back({{"position", layer_scheme(config, int64_t(l)).to_json()},
                      {"attention", attention_json(config.layers[l].attention)}});
  }
  return layers;
}

TEST(Treatments, BaselineChangesNothing) {
  const RunConfig config = trained({{"position", {{"base", 500.0}}}, {"attention", {{"window", 16}}}});
  const RunConfig same = apply_treatment(config, baseline_treatment());
  EXPECT_EQ(baseline_treatment().name, "baseline");
  EXPECT_EQ(layers_json(same), layers_json(config));
  EXPECT_EQ(same.position_sampling.eval, config.position_sampling.eval);
}

TEST(Treatments, PositionOverlayKeepsTheTrainedParametersAndChangesOnlyWhatItNames) {
  const RunConfig config = trained({{"position", {{"base", 500.0}, {"rotary_dims", 8}, {"mixed_exponent", 0.5}}}});
  const RunConfig pi = apply_treatment(config, treatment({{"name", "PI"}, {"position", {{"scaling", "pi"}}}}));
  json expected = config.position.params;
  expected["scaling"] = "pi";
  EXPECT_EQ(pi.position.scheme, "rope");
  EXPECT_EQ(pi.position.params, expected);  // base 500, rotary_dims 8, mixed_exponent 0.5 kept
  for (std::size_t l = 0; l < pi.layers.size(); ++l) {
    EXPECT_EQ(attention_json(pi.layers[l].attention), attention_json(config.layers[l].attention)) << l;
  }
  // The trained config itself is untouched.
  EXPECT_EQ(config.position.params.at("scaling"), "none");
}

TEST(Treatments, SwitchingRopeToReropeKeepsBaseAndRotaryDimsAndDropsRopeOnlyParameters) {
  const RunConfig config =
      trained({{"position", {{"base", 500.0}, {"rotary_dims", 8}, {"scaling", "ntk_mixed"}, {"mixed_exponent", 0.5}}}});
  test::CapturedLog log;
  const RunConfig rerope = apply_treatment(
      config, treatment({{"name", "ReRoPE-w/4"}, {"position", {{"scheme", "rerope"}, {"window", "$train_length/4"}}}}));
  EXPECT_EQ(rerope.position.scheme, "rerope");
  EXPECT_EQ(rerope.position.params, (json{{"base", 500.0}, {"rotary_dims", 8}, {"window", 16}, {"leaky_factor", 0.0}}));
  // Every dropped value is named, defaults included: they were part of the trained model too.
  EXPECT_TRUE(contains(log.text(), "treatment \"ReRoPE-w/4\": position: switching rope -> \"rerope\" drops factor = "
                                   "0.0, factors_file = \"\", high_freq_factor = 4.0, long_factor = [], low_freq_factor = "
                                   "1.0, mixed_exponent = 0.5, original_length = 0, resonance = false, scaling = "
                                   "\"ntk_mixed\", short_factor = [], yarn_alpha = 1.0, yarn_beta = 32.0, "
                                   "yarn_temperature = true"))
      << log.text();

  // And back (InvLeaky → RoPE): the trained window and leaky factor do not carry over.
  const RunConfig invleaky =
      trained({{"position", {{"scheme", "rerope"}, {"base", 2000.0}, {"window", 32}, {"leaky_factor", 0.0625}}}});
  const RunConfig rope = apply_treatment(invleaky, treatment({{"name", "RoPE"}, {"position", {{"scheme", "rope"}}}}));
  json expected = trained().position.params;  // rope's defaults
  expected["base"] = 2000.0;
  EXPECT_EQ(rope.position.params, expected);
  EXPECT_TRUE(contains(log.text(), "switching rerope -> \"rope\" drops leaky_factor = 0.0625, window = 32")) << log.text();
  // Within one scheme the inference-time extras are kept unless overridden.
  const RunConfig leaky = apply_treatment(invleaky, treatment({{"name", "k16"}, {"position", {{"leaky_factor", 16.0}}}}));
  EXPECT_EQ(leaky.position.params.at("window"), 32);
  EXPECT_EQ(leaky.position.params.at("leaky_factor"), 16.0);
}

TEST(Treatments, TrainLengthStringsAreSubstitutedAnywhere) {
  const RunConfig config = trained();
  const RunConfig windowed = apply_treatment(
      config, treatment({{"name", "w"},
                         {"attention", {{"window", "$train_length"}, {"sinks", "$train_length/16"}}},
                         {"layers", json::array({{{"layers", {1}}, {"attention", {{"window", "$train_length/3"}}}}})}}));
  for (int64_t l : {0, 2, 3}) {
    EXPECT_EQ(windowed.layers[l].attention.window, 64) << l;
    EXPECT_EQ(windowed.layers[l].attention.sinks, 4) << l;
  }
  EXPECT_EQ(windowed.layers[1].attention.window, 21);  // floor(64 / 3)
  const RunConfig tiny = trained({{"data", {{"train_length", 2}}}});
  const RunConfig at_least_one =
      apply_treatment(tiny, treatment({{"name", "w"}, {"attention", {{"window", "$train_length/4"}}}}));
  EXPECT_EQ(at_least_one.layers[0].attention.window, 1);

  const RunConfig multiples = apply_treatment(
      config, treatment({{"name", "m"}, {"attention", {{"window", "$train_length*3/4"}, {"sinks", "$train_length*2"}}}}));
  EXPECT_EQ(multiples.layers[0].attention.window, 48);  // floor(64 * 3 / 4)
  EXPECT_EQ(multiples.layers[0].attention.sinks, 128);

  for (const char* bad : {"$train_length*0", "$train_length*", "$train_length*x/2", "$train_length*3/", "$train_length/0",
                          "$train_length/", "$train_length/x", "$train_length+1", "$train_length/99999999999999999999"}) {
    SCOPED_TRACE(bad);
    const std::string message = user_error_message(
        [&] { apply_treatment(config, treatment({{"name", "bad"}, {"attention", {{"window", bad}}}})); });
    EXPECT_TRUE(contains(message, "treatment \"bad\".attention.window: \"" + std::string(bad) + "\": expected"))
        << message;
  }
}

TEST(Treatments, RopeTreatmentsRefuseNonRopeModelsNamingTheTreatment) {
  const RunConfig alibi = trained({{"position", {{"scheme", "alibi"}}}});
  for (const json& entry : {json{{"name", "NTK-mixed"}, {"position", {{"scaling", "ntk_mixed"}}}},
                            json{{"name", "HWFA2-ReRoPE"},
                                 {"layers", json::array({{{"layers", {2}}, {"position", {{"scheme", "rerope"}}}}})}}}) {
    SCOPED_TRACE(entry.dump());
    const std::string message = user_error_message([&] { apply_treatment(alibi, treatment(entry)); });
    EXPECT_TRUE(contains(message, "treatment \"" + entry.at("name").get<std::string>() + "\"")) << message;
    EXPECT_TRUE(contains(message, "alibi")) << message;
    EXPECT_FALSE(contains(message, "\n")) << message;
  }
  // Switching to a scheme of another family is refused too; attention-only treatments fit any model.
  EXPECT_TRUE(contains(user_error_message([&] {
                         apply_treatment(trained(), treatment({{"name", "x"}, {"position", {{"scheme", "alibi"}}}}));
                       }),
                       "treatment \"x\".position.scheme: cannot switch a layer trained with rope to alibi"));
  // Parameters the weights were trained with are not inference-time knobs.
  EXPECT_TRUE(contains(user_error_message([&] {
                         apply_treatment(trained(), treatment({{"name", "b"}, {"position", {{"base", 500.0}}}}));
                       }),
                       "treatment \"b\".position.base: fixed by the trained weights; a treatment may set rope's "
                       "inference-time parameters only (scaling, factor, mixed_exponent, yarn_alpha, yarn_beta, "
                       "yarn_temperature, low_freq_factor, high_freq_factor, original_length, short_factor, "
                       "long_factor, factors_file, resonance)"));
  EXPECT_TRUE(contains(user_error_message([&] {
                         apply_treatment(trained(), treatment({{"name", "r"},
                                                               {"position", {{"scheme", "rerope"}, {"rotary_dims", 8}}}}));
                       }),
                       "treatment \"r\".position.rotary_dims: fixed by the trained weights"));
  const RunConfig logn = apply_treatment(alibi, treatment({{"name", "logn†"}, {"attention", {{"logn", "inference"}}}}));
  EXPECT_EQ(logn.layers[3].attention.logn, LognMode::kInference);
}

TEST(Treatments, LayersOverlayChangesOnlyTheSelectedLayers) {
  // The shipped HWFA2 pair: configs/hwfa2.json (window 64 everywhere but the full layer 2) and
  // configs/eval/hwfa2.json (layer 2 switches to ReRoPE with w = L_train / 2).
  const RunConfig hwfa2 = load_config(source_path("configs/hwfa2.json").string());
  const auto treatments = load_treatments({source_path("configs/eval/hwfa2.json").string()});
  ASSERT_EQ(treatments.size(), 2u);
  EXPECT_EQ(treatments[0].name, "HWFA2-ReRoPE");
  EXPECT_EQ(treatments[1].name, "HWFA2-ReRoPE-logn†");
  const json before = layers_json(hwfa2);
  for (const auto& t : treatments) {
    SCOPED_TRACE(t.name);
    const RunConfig treated = apply_treatment(hwfa2, t);
    const json after = layers_json(treated);
    ASSERT_EQ(after.size(), 4u);
    for (int64_t l : {0, 1, 3}) EXPECT_EQ(after[l], before[l]) << "layer " << l;
    EXPECT_EQ(after[2]["position"], (json{{"scheme", "rerope"}, {"base", 10000.0}, {"rotary_dims", 0}, {"window", 64},
                                          {"leaky_factor", 0.0}}));
    json attention = before[2]["attention"];
    if (t.name == "HWFA2-ReRoPE-logn†") attention["logn"] = "inference";
    EXPECT_EQ(after[2]["attention"], attention);
    EXPECT_EQ(treated.position.scheme, "rope");  // the model-wide scheme stays
  }
  // Negative layer indices count from the end; an index out of range is an error naming the entry.
  const RunConfig last = apply_treatment(
      trained(), treatment({{"name", "last"}, {"layers", json::array({{{"layers", {-1}}, {"attention", {{"window", 8}}}}})}}));
  EXPECT_EQ(last.layers[3].attention.window, 8);
  EXPECT_EQ(last.layers[2].attention.window, 0);
  EXPECT_TRUE(contains(user_error_message([&] {
                         apply_treatment(trained(), treatment({{"name", "far"},
                                                               {"layers", json::array({{{"layers", {7}},
                                                                                        {"attention", {{"window", 8}}}}})}}));
                       }),
                       "treatment \"far\".layers[0].layers"));
}

TEST(Treatments, AttentionOverlayReachesEveryLayerAndKeepsTheirOwnSettings) {
  const RunConfig config = trained({{"layers", json::array({{{"layers", {1}}, {"attention", {{"window", 16}}}}})}});
  const RunConfig logn =
      apply_treatment(config, treatment({{"name", "logn†"}, {"attention", {{"logn", "inference"}}}}));
  for (int64_t l = 0; l < 4; ++l) {
    EXPECT_EQ(logn.layers[l].attention.logn, LognMode::kInference) << l;
    EXPECT_EQ(logn.layers[l].attention.window, l == 1 ? 16 : 0) << l;
  }
  const RunConfig spread =
      apply_treatment(config, treatment({{"name", "spread"}, {"position_sampling", {{"eval", "spread"}}}}));
  EXPECT_EQ(spread.position_sampling.eval, EvalPositions::kSpread);
  EXPECT_EQ(layers_json(spread), layers_json(config));
}

TEST(Treatments, TrainingTimeAttentionSettingsAreRefused) {
  const RunConfig config = trained();
  for (const json& attention : {json{{"qk_norm", "key"}}, json{{"qk_bias", true}}, json{{"cosine_scale", "position"}},
                                json{{"window_receptive_field", 0.5}}, json{{"logn_floor", 4}}, json{{"sink_logit", true}},
                                json{{"output_gate", "head"}}, json{{"ssmax", true}}}) {
    SCOPED_TRACE(attention.dump());
    const std::string message =
        user_error_message([&] { apply_treatment(config, treatment({{"name", "t"}, {"attention", attention}})); });
    EXPECT_TRUE(contains(message, "treatment \"t\".attention." + attention.begin().key() +
                                      ": unknown key (known here: window, sinks, logn, temperature, "
                                      "temperature_scale, temperature_floor)"))
        << message;
  }
  // A layer trained with log-n keeps it: logn† (or none) on top is refused, in either overlay form.
  const RunConfig logn = trained({{"attention", {{"logn", "train"}}}});
  EXPECT_TRUE(contains(user_error_message([&] {
                         apply_treatment(logn, treatment({{"name", "l"}, {"attention", {{"logn", "inference"}}}}));
                       }),
                       "treatment \"l\".attention.logn: this layer was trained with logn = \"train\""));
  EXPECT_TRUE(contains(
      user_error_message([&] {
        apply_treatment(logn, treatment({{"name", "l"},
                                         {"layers", json::array({{{"layers", {0}}, {"attention", {{"logn", "none"}}}}})}}));
      }),
      "treatment \"l\".layers[0].attention.logn"));
  EXPECT_NO_THROW(apply_treatment(logn, treatment({{"name", "w"}, {"attention", {{"window", 64}}}})));
}

TEST(Treatments, FullSelectsTheLayersTrainedWithFullAttention) {
  for (const auto& [file, full] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
           {"configs/hwfa2.json", {2}}, {"configs/hwfa2_f2.json", {1, 2}}}) {
    SCOPED_TRACE(file);
    const RunConfig hwfa2 = load_config(source_path(file).string());
    const RunConfig treated = apply_treatment(
        hwfa2, treatment({{"name", "s"}, {"layers", json::array({{{"layers", "full"}, {"position", {{"scheme", "rerope"}}}}})}}));
    for (int64_t l = 0; l < 4; ++l) {
      const bool switched = std::find(full.begin(), full.end(), l) != full.end();
      EXPECT_EQ(layer_scheme(treated, l).scheme, switched ? "rerope" : "rope") << l;
      EXPECT_EQ(treated.layers[l].attention.window, switched ? 0 : 64) << l;
    }
  }
  // "full" means trained with full attention: a model-wide window overlay in the same treatment
  // does not change which layers it selects.
  const RunConfig hwfa2 = load_config(source_path("configs/hwfa2.json").string());
  const RunConfig both = apply_treatment(
      hwfa2, treatment({{"name", "s"}, {"attention", {{"window", 128}}},
                        {"layers", json::array({{{"layers", "full"}, {"position", {{"scheme", "rerope"}}}}})}}));
  for (int64_t l = 0; l < 4; ++l) EXPECT_EQ(layer_scheme(both, l).scheme, l == 2 ? "rerope" : "rope") << l;
  const RunConfig windowed = trained({{"attention", {{"window", 16}}}});
  EXPECT_TRUE(contains(user_error_message([&] {
                         apply_treatment(windowed, treatment({{"name", "s"},
                                                              {"layers", json::array({{{"layers", "full"},
                                                                                       {"position", {{"scheme", "rerope"}}}}})}}));
                       }),
                       "treatment \"s\".layers[0].layers: \"full\" selects no layer"));
}

TEST(Treatments, DynamicStepIsOnForDynamicNtkAndCanBeSetOrTurnedOff) {
  const RunConfig config = trained();
  const auto step = [&](const json& entry) {
    const Treatment t = treatment(entry);
    return dynamic_step(t, apply_treatment(config, t));
  };
  EXPECT_EQ(step({{"name", "d"}, {"position", {{"scaling", "dynamic_ntk"}}}}), 64);
  EXPECT_EQ(step({{"name", "d"}, {"layers", json::array({{{"layers", {1}}, {"position", {{"scaling", "dynamic_ntk"}}}}})}}),
            64);
  EXPECT_EQ(step({{"name", "d"}, {"position", {{"scaling", "dynamic_ntk"}}}, {"dynamic", false}}), 0);
  EXPECT_EQ(step({{"name", "d"}, {"position", {{"scaling", "yarn"}}}}), 0);
  EXPECT_EQ(step({{"name", "d"}, {"position", {{"scaling", "yarn"}}}, {"dynamic", true}}), 64);
  EXPECT_EQ(step({{"name", "d"}, {"position", {{"scaling", "yarn"}}}, {"dynamic", "$train_length/4"}}), 16);
  EXPECT_EQ(step({{"name", "d"}, {"position", {{"scaling", "pi"}}}, {"dynamic", 5}}), 5);
  EXPECT_EQ(step({{"name", "base"}}), 0);
  // A model trained with dynamic_ntk is dynamic as it stands (its baseline too).
  const RunConfig dynamic_trained = trained({{"position", {{"scaling", "dynamic_ntk"}}}});
  EXPECT_EQ(dynamic_step(baseline_treatment(), apply_treatment(dynamic_trained, baseline_treatment())), 64);
  // The factor follows the token count, so spread positions cannot go with it.
  EXPECT_TRUE(contains(user_error_message([&] {
                         step({{"name", "d"}, {"position", {{"scaling", "yarn"}}}, {"dynamic", true},
                               {"position_sampling", {{"eval", "spread"}}}});
                       }),
                       "treatment \"d\".dynamic: the factor follows the token count"));
  for (const json& bad : {json(0), json(-3), json(2.5), json("often")}) {
    SCOPED_TRACE(bad.dump());
    const std::string message = user_error_message([&] { step({{"name", "d"}, {"dynamic", bad}}); });
    EXPECT_TRUE(contains(message, "treatment \"d\".dynamic: expected true, false or a step")) << message;
  }
}

TEST(Treatments, PositionsATreatedSchemeCannotTakeAreRefused) {
  // ReRoPE merges its passes by token distance: spread evaluation positions no longer match it.
  const RunConfig config = trained({{"position_sampling", {{"train", "random"}}}});
  EXPECT_NO_THROW(apply_treatment(config, treatment({{"name", "r"}, {"position", {{"scheme", "rerope"}}}})));
  const std::string message = user_error_message([&] {
    apply_treatment(config, treatment({{"name", "r"}, {"position", {{"scheme", "rerope"}}},
                                       {"position_sampling", {{"eval", "spread"}}}}));
  });
  EXPECT_TRUE(contains(message, "treatment \"r\": position_sampling.eval: rerope merges its score passes")) << message;
}

TEST(Treatments, UnknownKeysAndBadValuesAreErrorsNamingTheTreatment) {
  const RunConfig config = trained();
  const std::vector<std::pair<json, std::string>> cases{
      {{{"name", "a"}, {"positon", {{"scaling", "pi"}}}}, "treatment \"a\".positon: unknown key"},
      {{{"name", "b"}, {"position", {{"scalling", "pi"}}}},
       "treatment \"b\".position.scalling: not a parameter of rope, which this layer was trained with (its parameters: "
       "base, rotary_dims, scaling"},
      {{{"name", "c"}, {"position", {{"scaling", "ntk"}}}}, "treatment \"c\": position.scaling: \"ntk\" is not one of none, pi"},
      {{{"name", "d"}, {"attention", {{"lognn", "inference"}}}}, "treatment \"d\".attention.lognn"},
      {{{"name", "e"}, {"layers", json::array({{{"layers", {1}}, {"attn", json::object()}}})}},
       "treatment \"e\".layers[0].attn: unknown key"},
      {{{"name", "f"}, {"position_sampling", {{"train", "random"}}}}, "treatment \"f\".position_sampling.train: unknown key"},
      {{{"name", "g"}, {"position_sampling", {{"eval", "random"}}}},
       "treatment \"g\": position_sampling.eval: \"random\" is not one of ordinary, spread"},
      {{{"name", "h"}, {"layers", {{"layers", {1}}}}}, "treatment \"h\".layers"},
      {{{"name", "i"}, {"position", {{"scheme", 3}}}},
       "treatment \"i\".position.scheme: expected a scheme name (a string), got an integer"},
      {{{"name", "j"}, {"layers", json::array({{{"layers", {1}}, {"position", {{"scheme", json::array()}}}}})}},
       "treatment \"j\".layers[0].position.scheme: expected a scheme name (a string), got an array"},
  };
  for (const auto& [entry, expected] : cases) {
    SCOPED_TRACE(entry.dump());
    const std::string message = user_error_message([&] { apply_treatment(config, treatment(entry)); });
    EXPECT_TRUE(contains(message, expected)) << message;
    EXPECT_FALSE(contains(message, "\n")) << message;
  }
}

class TreatmentFiles : public test::TempDirTest {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    const fs::path path = root_ / name;
    std::ofstream(path) << text;
    return path.string();
  }
};

TEST_F(TreatmentFiles, FilesHoldOneTreatmentOrAListAndCommentsAreDropped) {
  const auto one = write("one.json", R"({"name": "PI", "_comment": "x", "position": {"scaling": "pi"}})");
  const auto list = write("list.json", R"({"_comment": "y", "treatments": [
      {"name": "logn†", "attention": {"logn": "inference"}},
      {"name": "YaRN", "position": {"scaling": "yarn"}}]})");
  const auto treatments = load_treatments({one, list});
  ASSERT_EQ(treatments.size(), 3u);
  EXPECT_EQ(treatments[0].name, "PI");
  EXPECT_EQ(treatments[0].overlay, (json{{"position", {{"scaling", "pi"}}}}));
  EXPECT_EQ(treatments[1].name, "logn†");
  EXPECT_EQ(treatments[2].overlay, (json{{"position", {{"scaling", "yarn"}}}}));
  EXPECT_TRUE(load_treatments({}).empty());
}

TEST_F(TreatmentFiles, DuplicateReservedAndMissingNamesAndMissingFilesAreErrors) {
  const auto a = write("a.json", R"({"treatments": [{"name": "PI", "position": {"scaling": "pi"}}]})");
  const auto b = write("b.json", R"({"name": "PI", "position": {"scaling": "yarn"}})");
  std::string message = user_error_message([&] { load_treatments({a, b}); });
  EXPECT_TRUE(contains(message, b + ": treatments[0]: duplicate treatment name \"PI\"")) << message;
  const auto twice = write("twice.json", R"({"treatments": [{"name": "x"}, {"name": "x"}]})");
  EXPECT_TRUE(contains(user_error_message([&] { load_treatments({twice}); }), "treatments[1]: duplicate"));
  const auto nameless = write("nameless.json", R"({"treatments": [{"name": "x"}, {"position": {}}]})");
  message = user_error_message([&] { load_treatments({nameless}); });
  EXPECT_TRUE(contains(message, nameless + ": treatments[1]: each treatment needs a \"name\"")) << message;
  const auto reserved = write("reserved.json", R"({"name": "baseline", "attention": {"logn": "inference"}})");
  EXPECT_EQ(user_error_message([&] { load_treatments({reserved}); }),
            reserved + ": treatments[0]: the name \"baseline\" is reserved for the untreated model");
  const auto not_list = write("not_list.json", R"({"treatments": {"name": "x"}})");
  EXPECT_TRUE(contains(user_error_message([&] { load_treatments({not_list}); }), "expected an array"));
  const auto malformed = write("malformed.json", R"({"treatments": [)");
  EXPECT_TRUE(contains(user_error_message([&] { load_treatments({malformed}); }), "malformed JSON"));
  const std::string missing = (root_ / "missing.json").string();
  EXPECT_EQ(user_error_message([&] { load_treatments({missing}); }), missing + ": treatments file not found");
}

// Every shipped preset loads and applies to the model it is written for.
TEST(Treatments, ShippedPresetsApply) {
  const std::vector<std::pair<std::string, std::string>> presets{
      {"configs/eval/su_table.json", "configs/rope.json"},     {"configs/eval/rope_scaling.json", "configs/rope.json"},
      {"configs/eval/rerope.json", "configs/rope.json"},       {"configs/eval/windows.json", "configs/rope.json"},
      {"configs/eval/hwfa2.json", "configs/hwfa2.json"},       {"configs/eval/invleaky.json", "configs/invleaky_rerope.json"}};
  for (const auto& [preset, model] : presets) {
    SCOPED_TRACE(preset);
    const RunConfig config = load_config(source_path(model).string());
    const auto treatments = load_treatments({source_path(preset).string()});
    EXPECT_GE(treatments.size(), 2u);
    for (const auto& t : treatments) EXPECT_NO_THROW(apply_treatment(config, t)) << t.name;
  }
  // su_table.json holds every row of Su's comparison tables that a single RoPE model can give.
  const auto su = load_treatments({source_path("configs/eval/su_table.json").string()});
  std::vector<std::string> names;
  for (const auto& t : su) names.push_back(t.name);
  EXPECT_EQ(names, (std::vector<std::string>{"logn†", "PI", "NTK-old", "NTK-fixed", "NTK-fixed-logn†", "NTK-mixed",
                                             "NTK-mixed-logn†", "NTK-aware", "dynamic-NTK", "YaRN", "YaRN-logn†",
                                             "ReRoPE-w/4", "ReRoPE-w/4-logn†", "ReRoPE-w/2", "ReRoPE-w/2-logn†",
                                             "Leaky-w/4-k16-logn†", "window", "window+4sinks"}));
  // Su's window ablation (T6: w = 64..384 at 512) in rerope.json, at a model trained at 128.
  const RunConfig rope = load_config(source_path("configs/rope.json").string());
  std::vector<int64_t> windows;
  for (const auto& t : load_treatments({source_path("configs/eval/rerope.json").string()})) {
    if (t.overlay.contains("attention")) continue;
    const RunConfig treated = apply_treatment(rope, t);
    if (treated.position.params.at("leaky_factor") == 0.0) windows.push_back(treated.position.params.at("window"));
  }
  EXPECT_EQ(windows, (std::vector<int64_t>{16, 32, 64, 96}));
}

}  // namespace
}  // namespace extrap
