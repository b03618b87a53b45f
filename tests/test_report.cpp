// Results documents and `extrap report` on small hand-written documents: schema validation, the
// upgrade of older schemas, and golden tables for several treatments in both layouts.
#include <cmath>

#include <gtest/gtest.h>

#include "report/results.h"
#include "report/tables.h"
#include "test_helpers.h"

namespace extrap {
namespace {

using nlohmann::json;
using test::contains;
using test::user_error_message;

json part(double ppl, double accuracy, int64_t tokens) {
  const double nll = std::log(ppl);
  return {{"tokens", tokens}, {"nll", nll}, {"ppl", ppl}, {"bits_per_byte", nll / std::log(2.0)}, {"accuracy", accuracy}};
}

// An ok row scoring 256 targets; repeated rows get natural and copy parts with `copy_accuracy`.
json row(const std::string& treatment, const std::string& protocol, int64_t length, double ppl, double accuracy,
         double copy_accuracy = 0.0) {
  json entry = part(ppl, accuracy, 256);
  entry.update({{"treatment", treatment}, {"protocol", protocol}, {"length", length}, {"status", "ok"},
                {"windows", 256 / length}, {"seconds", 0.5}, {"tokens_per_s", 512.0},
                {"position_buckets", json::array({{{"begin", 0}, {"end", length}, {"tokens", 256}}})}});
  if (protocol == "repeated") {
    const int64_t windows = 256 / length, h = length / 2;
    entry["copy_offset"] = h;
    entry["natural"] = part(ppl, accuracy, windows * (h - 1));
    entry["copy"] = part(ppl / 2, copy_accuracy, windows * (length - h + 1));
  }
  return entry;
}

json unsupported(const std::string& treatment, const std::string& protocol, int64_t length, const std::string& why) {
  return {{"treatment", treatment}, {"protocol", protocol}, {"length", length}, {"status", "unsupported"}, {"error", why}};
}

json document(const std::string& run, const std::string& scheme, const json& treatments, const json& results) {
  return {{"schema", kResultsSchema},
          {"tool", {{"name", "extrap"}, {"version", "0.1.0"}, {"git_commit", "0123456789ab"}}},
          {"created", "2026-11-29T04:00:00Z"},
          {"run", {{"name", run}, {"checkpoint_step", 300},
                   {"config", {{"position", {{"scheme", scheme}}}, {"data", {{"train_length", 32}}}}}}},
          {"data", {{"checksum", "c0ffee"}, {"split", "test"}}},
          {"protocols", json::array({{{"name", "nonoverlap"}, {"max_tokens", 256}, {"tokens_scored", 256}},
                                     {{"name", "repeated"}, {"max_tokens", 256}}})},
          {"treatments", treatments},
          {"results", results}};
}

// A RoPE run under the baseline, an NTK treatment and a window that cannot run repeated at 64.
json rope_document() {
  const json treatments = json::array({{{"name", "baseline"}, {"overlay", json::object()}},
                                       {{"name", "NTK-mixed-logn†"},
                                        {"overlay", {{"position", {{"scaling", "ntk_mixed"}}}, {"attention", {{"logn", "inference"}}}}}},
                                       {{"name", "window"}, {"overlay", {{"attention", {{"window", "$train_length"}}}}}}});
  const json results = json::array({
      row("baseline", "nonoverlap", 32, 6.5, 0.4512), row("baseline", "nonoverlap", 64, 9.25, 0.3801),
      row("baseline", "repeated", 32, 6.7612, 0.4425, 0.4632), row("baseline", "repeated", 64, 12.5, 0.3012, 0.2144),
      row("NTK-mixed-logn†", "nonoverlap", 32, 6.5, 0.4512), row("NTK-mixed-logn†", "nonoverlap", 64, 7.1321, 0.4167),
      row("NTK-mixed-logn†", "repeated", 32, 6.7612, 0.4425, 0.4632),
      row("NTK-mixed-logn†", "repeated", 64, 7.5, 0.4721, 0.5518),
      row("window", "nonoverlap", 32, 6.5, 0.4512), row("window", "nonoverlap", 64, 6.6318, 0.4478),
      row("window", "repeated", 32, 6.7612, 0.4425, 0.4632),
      unsupported("window", "repeated", 64, "no whole segment of 32 tokens"),
  });
  return document("rope", "rope", treatments, results);
}

json alibi_document() {
  return document("alibi", "alibi", json::array({{{"name", "baseline"}, {"overlay", json::object()}}}),
                  json::array({row("baseline", "nonoverlap", 32, 7.0, 0.43), row("baseline", "nonoverlap", 64, 6.8812, 0.4325),
                               row("baseline", "repeated", 32, 7.25, 0.425, 0.43),
                               row("baseline", "repeated", 64, 7.1277, 0.4275, 0.4402)}));
}

ReportOptions su(TableFormat format = TableFormat::Terminal, const std::string& metric = "") {
  return {metric, format, "", ReportLayout::Su};
}

TEST(ResultsSchema, ValidDocumentsPass) {
  EXPECT_NO_THROW(validate_results(rope_document(), "rope.json"));
  EXPECT_NO_THROW(validate_results(alibi_document(), "alibi.json"));
  EXPECT_EQ(std::string(kResultsSchema), "extrap.eval/3");
}

TEST(ResultsSchema, TreatmentsAreChecked) {
  const json good = rope_document();
  auto message = [&](auto&& edit) {
    json broken = good;
    edit(broken);
    return user_error_message([&] { validate_results(broken, "r.json"); });
  };
  EXPECT_EQ(message([](json& d) { d.erase("treatments"); }), "r.json: missing field treatments");
  EXPECT_EQ(message([](json& d) { d["treatments"] = json::array(); }), "r.json: field treatments is empty");
  EXPECT_EQ(message([](json& d) { d["treatments"][1].erase("name"); }), "r.json: missing field treatments[].name");
  EXPECT_EQ(message([](json& d) { d["treatments"][1].erase("overlay"); }), "r.json: missing field treatments[].overlay");
  EXPECT_EQ(message([](json& d) { d["treatments"][2]["name"] = "baseline"; }),
            "r.json: treatments[].name \"baseline\" is listed twice");
  EXPECT_EQ(message([](json& d) { d["results"][0].erase("treatment"); }), "r.json: missing field results[].treatment");
  EXPECT_EQ(message([](json& d) { d["results"][0]["treatment"] = 3; }),
            "r.json: field results[].treatment has the wrong type");
  EXPECT_EQ(message([](json& d) { d["results"][0]["treatment"] = "PI"; }),
            "r.json: results[].treatment \"PI\" is not in treatments[]");
  EXPECT_EQ(message([](json& d) { d["results"][1]["length"] = 32; }),
            "r.json: results[] has two rows for treatment \"baseline\", protocol \"nonoverlap\", length 32");
  EXPECT_EQ(message([](json& d) { d["results"][0]["protocol"] = "sliding"; }),
            "r.json: results[].protocol \"sliding\" is not in protocols[]");
  EXPECT_EQ(message([](json& d) { d["schema"] = "extrap.eval/2"; }),
            "r.json: schema is \"extrap.eval/2\", expected extrap.eval/3 (extrap report reads the old schema from files)");
}

TEST(ResultsSchema, OlderDocumentsAreUpgradedToOneBaselineTreatment) {
  const json current = alibi_document();
  json v2 = current;
  v2["schema"] = "extrap.eval/2";
  v2.erase("treatments");
  for (auto& entry : v2["results"]) entry.erase("treatment");
  json expected = current;
  expected["upgraded_from"] = "extrap.eval/2";
  EXPECT_EQ(upgrade_results(v2), expected);

  // extrap.eval/1: one nonoverlap protocol object (with the train length) and rows without protocol.
  json v1 = v2;
  v1["schema"] = "extrap.eval/1";
  v1["protocol"] = current["protocols"][0];
  v1["protocol"]["train_length"] = 32;
  v1.erase("protocols");
  json nonoverlap_rows = json::array();
  for (const auto& entry : v1["results"]) {
    if (entry["protocol"] == "nonoverlap") nonoverlap_rows.push_back(entry);
  }
  for (auto& entry : nonoverlap_rows) entry.erase("protocol");
  v1["results"] = nonoverlap_rows;
  const json upgraded = upgrade_results(v1);
  EXPECT_EQ(upgraded.at("schema"), kResultsSchema);
  EXPECT_EQ(upgraded.at("upgraded_from"), "extrap.eval/1");
  EXPECT_EQ(upgraded.at("protocols"), json::array({current["protocols"][0]}));
  EXPECT_EQ(upgraded.at("treatments"), json::array({{{"name", "baseline"}, {"overlay", json::object()}}}));
  ASSERT_EQ(upgraded.at("results").size(), 2u);
  EXPECT_EQ(upgraded["results"][1], current["results"][1]);
  EXPECT_NO_THROW(validate_results(upgraded, "v1.json"));

  // A /2 document that already names its treatments keeps them.
  json transitional = rope_document();
  transitional["schema"] = "extrap.eval/2";
  expected = rope_document();
  expected["upgraded_from"] = "extrap.eval/2";
  EXPECT_EQ(upgrade_results(transitional), expected);
  // The current schema and unknown documents pass unchanged.
  EXPECT_EQ(upgrade_results(current), current);
  EXPECT_EQ(upgrade_results(json::array({1})), json::array({1}));
  json future = current;
  future["schema"] = "extrap.eval/9";
  EXPECT_EQ(upgrade_results(future), future);
}

TEST(Report, RunsLayoutHasOneLinePerTreatment) {
  const std::vector<json> documents{rope_document(), alibi_document()};
  EXPECT_EQ(render_report(documents, "ppl", TableFormat::Terminal),
            "run    scheme  treatment        train  32 nonoverlap  32 repeated  64 nonoverlap  64 repeated\n"
            "---------------------------------------------------------------------------------------------\n"
            "rope   rope    baseline            32           6.50         6.76           9.25        12.50\n"
            "rope   rope    NTK-mixed-logn†     32           6.50         6.76           7.13         7.50\n"
            "rope   rope    window              32           6.50         6.76           6.63          n/a\n"
            "alibi  alibi   baseline            32           7.00         7.25           6.88         7.13\n"
            "\n"
            "ppl on test split\n"
            "protocol nonoverlap: 256 targets at every length\n"
            "protocol repeated: a natural segment of ceil(L/2) tokens and its copy, at least 256 targets at length L\n"
            "n/a: rope / window @ 64 repeated: no whole segment of 32 tokens\n");
  EXPECT_EQ(render_report(documents, "acc", TableFormat::Csv, "copy"),
            "run,scheme,treatment,train,32 nonoverlap,32 repeated,64 nonoverlap,64 repeated\n"
            "rope,rope,baseline,32,-,46.32%,-,21.44%\n"
            "rope,rope,NTK-mixed-logn†,32,-,46.32%,-,55.18%\n"
            "rope,rope,window,32,-,46.32%,-,n/a\n"
            "alibi,alibi,baseline,32,-,43.00%,-,44.02%\n");
  // Only baselines: today's columns, no treatment column.
  EXPECT_EQ(render_report({alibi_document()}, "bpb", TableFormat::Csv),
            "run,scheme,train,32 nonoverlap,32 repeated,64 nonoverlap,64 repeated\n"
            "alibi,alibi,32,2.807,2.858,2.783,2.833\n");
}

TEST(Report, InputsSharingARunNameAreLabelledByTheConfigFieldThatDiffers) {
  // Two `--set` variants of one config: the same run name, one field apart.
  json seed1 = alibi_document(), seed2 = alibi_document();
  seed1["run"]["config"]["train"] = {{"seed", 1}, {"steps", 300}};
  seed2["run"]["config"]["train"] = {{"seed", 2}, {"steps", 300}};
  seed1["run"]["dir"] = "runs/alibi";
  seed2["run"]["dir"] = "runs/alibi-seed2";
  seed2["results"][0]["ppl"] = 7.5;
  seed2["data"]["checksum"] = "decaf";
  EXPECT_EQ(render_report({seed1, seed2, rope_document()}, "ppl", TableFormat::Csv),
            "run,scheme,treatment,train,32 nonoverlap,32 repeated,64 nonoverlap,64 repeated\n"
            "alibi (train.seed=1),alibi,baseline,32,7.00,7.25,6.88,7.13\n"
            "alibi (train.seed=2),alibi,baseline,32,7.50,7.25,6.88,7.13\n"
            "rope,rope,baseline,32,6.50,6.76,9.25,12.50\n"
            "rope,rope,NTK-mixed-logn†,32,6.50,6.76,7.13,7.50\n"
            "rope,rope,window,32,6.50,6.76,6.63,n/a\n");
  // The notes and warnings use the same labels.
  const std::string su_table = render_report({seed1, seed2}, su());
  EXPECT_TRUE(contains(su_table, "alibi (train.seed=2): alibi trained at 32 tokens\n")) << su_table;
  EXPECT_TRUE(contains(su_table, "warning: alibi (train.seed=2) was evaluated on other data or with other protocol "
                                 "parameters than alibi (train.seed=1)")) << su_table;
  // Equal configs from two run directories: the directories tell them apart.
  seed2["run"]["config"] = seed1["run"]["config"];
  EXPECT_TRUE(contains(render_report({seed1, seed2}, "ppl", TableFormat::Csv), "\nalibi (runs/alibi-seed2),alibi,32,"));
  // Several differing fields: the first three by path, then "...".
  seed2["run"]["config"]["train"] = {{"seed", 2}, {"steps", 600}};
  seed2["run"]["config"]["model"] = {{"d_model", 64}, {"n_layers", 4}};
  EXPECT_TRUE(contains(render_report({seed1, seed2}, "ppl", TableFormat::Csv),
                       "\n\"alibi (model.d_model=unset, model.n_layers=unset, train.seed=1, ...)\",alibi,32,"));
}

TEST(Report, SuLayoutHasNaturalAndRepeatedCopyColumnsPerLength) {
  EXPECT_EQ(render_report({rope_document()}, su()),
            "treatment        32 natural  32 repeated  64 natural  64 repeated\n"
            "-----------------------------------------------------------------\n"
            "baseline             45.12%       46.32%      38.01%       21.44%\n"
            "NTK-mixed-logn†      45.12%       46.32%      41.67%       55.18%\n"
            "window               45.12%       46.32%      44.78%          n/a\n"
            "\n"
            "acc on test split; natural: nonoverlap windows (Su's 不重复); repeated: copy part of repeated windows (Su's 重复)\n"
            "rope: rope trained at 32 tokens\n"
            "protocol nonoverlap: 256 targets at every length\n"
            "protocol repeated: a natural segment of ceil(L/2) tokens and its copy, at least 256 targets at length L\n"
            "n/a: rope / window @ 64 repeated: no whole segment of 32 tokens\n");
  EXPECT_EQ(render_report({rope_document()}, su(TableFormat::Markdown, "ppl")),
            "| treatment       | 32 natural | 32 repeated | 64 natural | 64 repeated |\n"
            "| :-------------- | ---------: | ----------: | ---------: | ----------: |\n"
            "| baseline        |       6.50 |        3.38 |       9.25 |        6.25 |\n"
            "| NTK-mixed-logn† |       6.50 |        3.38 |       7.13 |        3.75 |\n"
            "| window          |       6.50 |        3.38 |       6.63 |         n/a |\n"
            "\n"
            "ppl on test split; natural: nonoverlap windows (Su's 不重复); repeated: copy part of repeated windows (Su's 重复)\n"
            "rope: rope trained at 32 tokens\n"
            "protocol nonoverlap: 256 targets at every length\n"
            "protocol repeated: a natural segment of ceil(L/2) tokens and its copy, at least 256 targets at length L\n"
            "n/a: rope / window @ 64 repeated: no whole segment of 32 tokens\n");
  // Several runs add a run column; --part chooses what the repeated column covers.
  ReportOptions whole = su(TableFormat::Csv);
  whole.part = "window";
  EXPECT_EQ(render_report({rope_document(), alibi_document()}, whole),
            "run,treatment,32 natural,32 repeated,64 natural,64 repeated\n"
            "rope,baseline,45.12%,44.25%,38.01%,30.12%\n"
            "rope,NTK-mixed-logn†,45.12%,44.25%,41.67%,47.21%\n"
            "rope,window,45.12%,44.25%,44.78%,n/a\n"
            "alibi,baseline,43.00%,42.50%,43.25%,42.75%\n");
}

TEST(Report, SuLayoutNeedsNonoverlapOrRepeatedRows) {
  json sliding = alibi_document();
  sliding["protocols"] = json::array({{{"name", "sliding"}, {"max_tokens", 256}, {"stride", 0}, {"range_tokens", 256}}});
  sliding["results"] = json::array();
  EXPECT_TRUE(contains(user_error_message([&] { render_report({sliding}, su()); }), "--protocol nonoverlap,repeated"));
  // Only one of the two: its columns alone.
  json natural_only = alibi_document();
  natural_only["protocols"].erase(1);
  natural_only["results"] = json::array({natural_only["results"][0]});
  EXPECT_EQ(render_report({natural_only}, su(TableFormat::Csv)), "treatment,32 natural\nbaseline,43.00%\n");
  EXPECT_TRUE(contains(user_error_message([&] { render_report({natural_only}, su(TableFormat::Csv, "loss")); }),
                       "--metric loss"));
  EXPECT_EQ(parse_report_layout("su"), ReportLayout::Su);
  EXPECT_EQ(parse_report_layout("runs"), ReportLayout::Runs);
  EXPECT_EQ(user_error_message([] { parse_report_layout("wide"); }), "--layout wide: expected runs, su or probe");
}

TEST(Report, CsvQuotesNamesWithCommasAndQuotes) {
  json doc = alibi_document();
  doc["protocols"].erase(1);
  doc["treatments"].push_back({{"name", "w=64, \"sinks\""}, {"overlay", json::object()}});
  doc["results"] = json::array({row("baseline", "nonoverlap", 32, 7.0, 0.43), row("w=64, \"sinks\"", "nonoverlap", 32, 7.0, 0.41)});
  EXPECT_EQ(render_report({doc}, su(TableFormat::Csv)),
            "treatment,32 natural\nbaseline,43.00%\n\"w=64, \"\"sinks\"\"\",41.00%\n");
}

TEST(Report, AnInterruptedEvaluationIsFlagged) {
  json doc = alibi_document();
  EXPECT_FALSE(contains(render_report({doc}, su()), "stopped"));
  doc["complete"] = false;
  doc["results"].erase(3);
  const std::string table = render_report({doc}, su());
  EXPECT_TRUE(contains(table, "warning: alibi: the evaluation stopped after 3 result rows (interrupted)")) << table;
}

}  // namespace
}  // namespace extrap

namespace extrap {
namespace {

json probe_summary(int64_t trials, double exact, double token_accuracy) {
  return {{"trials", trials}, {"exact_match", exact}, {"exact_match_ci", {0.0, 1.0}}, {"token_accuracy", token_accuracy},
          {"answer_logprob", -3.25}, {"answers", trials}, {"answer_exact_match", exact}, {"answer_tokens", 5.0}};
}

json probe_row(int64_t length, double shallow, double deep) {
  json entry = probe_summary(4, (shallow + deep) / 2, 0.5);
  entry.update({{"treatment", "baseline"}, {"protocol", "passkey"}, {"length", length}, {"status", "ok"},
                {"seconds", 0.5}, {"control", probe_summary(4, 0.0, 0.1)}});
  json low = probe_summary(2, shallow, 0.5), high = probe_summary(2, deep, 0.5);
  low["depth"] = 0.0;
  high["depth"] = 1.0;
  entry["depths"] = {low, high};
  return entry;
}

json probe_document() {
  json doc = document("rope", "rope", json::array({{{"name", "baseline"}, {"overlay", json::object()}}}),
                      json::array({probe_row(32, 1.0, 0.5), probe_row(64, 0.5, 0.0),
                                   unsupported("baseline", "passkey", 128, "rope positions cover only 64")}));
  doc["protocols"] = json::array({{{"name", "passkey"}, {"kind", "probe"}, {"trials", 2}, {"depths", {0.0, 1.0}},
                                   {"haystack", "fixed"}, {"seed", 0}, {"key_digits", 0}}});
  return doc;
}

TEST(Report, ProbeLayoutIsADepthByLengthGrid) {
  const json doc = probe_document();
  EXPECT_NO_THROW(validate_results(doc, "probe.json"));
  const std::string grid = render_report({doc}, {"", TableFormat::Terminal, "", ReportLayout::Probe});
  EXPECT_EQ(grid,
            "rope: passkey, trained at 32\n"
            "depth       32    64  128\n"
            "-------------------------\n"
            "0.00     100.0  50.0  n/a\n"
            "1.00      50.0   0.0  n/a\n"
            "all       75.0  25.0  n/a\n"
            "control    0.0   0.0  n/a\n"
            "\n"
            "exact match (%: every answer token the argmax, teacher-forced); columns: prompt length in tokens; "
            "control: the same prompts without the needle\n");
  const std::string logprob = render_report({doc}, {"logprob", TableFormat::Csv, "", ReportLayout::Probe});
  EXPECT_TRUE(contains(logprob, "rope,baseline,passkey,all,-3.25,-3.25,n/a\n")) << logprob;
  // The runs layout shows a probe column's exact match.
  EXPECT_TRUE(contains(render_report({doc}, "ppl", TableFormat::Csv), "rope,rope,32,75.0%,25.0%,n/a")) << render_report({doc}, "ppl", TableFormat::Csv);
}

TEST(ResultsSchema, ProbeRowsNeedTheirSummaries) {
  json doc = probe_document();
  doc["results"][0].erase("control");
  EXPECT_EQ(user_error_message([&] { validate_results(doc, "p.json"); }), "p.json: missing field results[].control");
  doc = probe_document();
  doc["results"][1]["depths"][0].erase("exact_match");
  EXPECT_EQ(user_error_message([&] { validate_results(doc, "p.json"); }),
            "p.json: missing field results[].depths[].exact_match");
}

}  // namespace
}  // namespace extrap
