// Documents in packed windows (data.reset_positions, data.mask_documents): the document rule, reset
// positions, and whole models under every scheme and kernel: masking keeps earlier documents out
// of later ones, masking with reset scores a packed document exactly as if it opened a window, and
// with the options off (or nothing to separate) nothing changes, bit for bit.
#include <gtest/gtest.h>

#include "test_helpers.h"

#include "config/config.h"
#include "model/documents.h"
#include "model/gpt.h"

namespace extrap {
namespace {

using test::kCpu;
using test::max_abs_diff;
using test::user_error_message;
using nlohmann::json;

// ---- The rule ---------------------------------------------------------------------------------

TEST(DocumentRule, StartsAtTheWindowAndAtEveryEndOfText) {
  const int64_t e = 256;
  const auto tokens = torch::tensor(std::vector<int64_t>{5, e, 7, 8, e, e, 9, 3, e, 1, 2, 3, 4, 5, 6, e}).view({2, 8});
  const auto starts = document_starts(tokens, e);
  EXPECT_TRUE(torch::equal(starts, torch::tensor({0, 1, 1, 1, 4, 5, 5, 5, 0, 0, 0, 0, 0, 0, 0, 7}).view({2, 8})));
  // The same as the segment ids s[0] = 0, s[t] = s[t-1] + (x[t] == EOT): a token's document starts at
  // the first token with its id (an EOT at token 0 opens no second document).
  for (int64_t b = 0; b < 2; ++b) {
    std::vector<int64_t> segment(8, 0);
    for (int64_t t = 1; t < 8; ++t) segment[t] = segment[t - 1] + (tokens[b][t].item<int64_t>() == e);
    for (int64_t t = 0; t < 8; ++t) {
      const int64_t first = std::find(segment.begin(), segment.end(), segment[t]) - segment.begin();
      EXPECT_EQ(starts[b][t].item<int64_t>(), first) << "row " << b << " token " << t;
    }
  }
  // The id is the dataset's, not the byte tokenizer's.
  EXPECT_TRUE(torch::equal(document_starts(tokens, 5), torch::tensor({0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 5, 5}).view({2, 8})));
}

TEST(DocumentRule, PositionsRestartAtZeroAfterEachEndOfText) {
  const int64_t e = 3;
  const auto tokens = torch::tensor(std::vector<int64_t>{1, 2, e, 4, 5, e, e, 6}).view({1, 8});
  const auto starts = document_starts(tokens, e);
  const auto reset = reset_positions(Positions::arange(8, kCpu), starts);
  EXPECT_FALSE(reset.is_arange);
  EXPECT_TRUE(torch::equal(reset.values, torch::tensor({0., 1., 0., 1., 2., 0., 0., 1.}, torch::kFloat64).view({1, 8})));
  // Sampled positions (random, spread) restart too: each document takes the window's first ones.
  const auto sampled = test::explicit_positions({3, 10, 11, 20, 31, 40, 52, 60});
  EXPECT_TRUE(torch::equal(reset_positions(sampled, starts).values,
                           torch::tensor({3., 10., 3., 10., 11., 3., 3., 10.}, torch::kFloat64).view({1, 8})));
}

TEST(DocumentRule, LayoutIsUnchangedWithoutASecondDocument) {
  const auto base = Positions::arange(6, kCpu);
  const auto tokens = torch::tensor({9, 1, 2, 3, 4, 5, 9, 5, 4, 3, 2, 1}, torch::kInt64).view({2, 6});  // EOT only at 0
  for (const DocumentOptions options : {DocumentOptions{}, DocumentOptions{true, true, 9}}) {
    const auto layout = window_layout(tokens, base, options);
    EXPECT_TRUE(layout.positions.is_arange);
    EXPECT_TRUE(layout.positions.values.is_same(base.values));
    EXPECT_FALSE(layout.documents.defined());
  }
  const auto packed = window_layout(tokens, base, {false, true, 3});  // token 3 opens documents
  EXPECT_TRUE(packed.positions.is_arange) << "masking alone keeps the window's positions";
  ASSERT_TRUE(packed.documents.defined());
  EXPECT_EQ(packed.documents.view().row(1)[5], 3);
  EXPECT_FALSE(window_layout(tokens, base, {true, false, 3}).documents.defined()) << "reset alone masks nothing";
}

TEST(DocumentRule, TheEndOfTextComesFromTheDatasetMetadata) {
  DataConfig data;
  EXPECT_EQ(document_options(data, json::object(), "D").end_of_text, -1);  // off: not needed
  data.mask_documents = true;
  EXPECT_EQ(document_options(data, {{"tokenizer", {{"end_of_text", 50256}}}}, "D").end_of_text, 50256);
  EXPECT_EQ(user_error_message([&] { document_options(data, {{"tokenizer", {{"type", "byte"}}}}, "data/x"); }),
            "data/x: metadata.json has no tokenizer.end_of_text, the token that data.reset_positions and "
            "data.mask_documents need to find where documents start");
}

// ---- Config -----------------------------------------------------------------------------------

json config_document(const json& position, const json& data = json::object(), const json& attention = json::object()) {
  json document = {{"model", {{"vocab_size", 64}, {"d_model", 32}, {"n_layers", 2}, {"n_heads", 2}, {"d_mlp", 64}}},
                   {"position", position},
                   {"attention", attention},
                   {"data", {{"dataset", "unused"}, {"train_length", 48}}}};
  document["data"].update(data);
  return document;
}

TEST(DocumentConfig, OffByDefaultRecordedAndTypeChecked) {
  const RunConfig plain = config_from_json(config_document({{"scheme", "rope"}}), "c.json");
  EXPECT_FALSE(plain.data.reset_positions);
  EXPECT_FALSE(plain.data.mask_documents);
  EXPECT_EQ(plain.resolved["data"]["reset_positions"], false);
  EXPECT_EQ(plain.resolved["data"]["mask_documents"], false);
  const RunConfig packed =
      config_from_json(config_document({{"scheme", "rope"}}, {{"reset_positions", true}, {"mask_documents", true}}), "c.json");
  EXPECT_TRUE(packed.data.reset_positions && packed.data.mask_documents);
  EXPECT_EQ(user_error_message([] { config_from_json(config_document({{"scheme", "rope"}}, {{"mask_documents", 1}}), "c.json"); }),
            "c.json: data.mask_documents: expected a boolean, got 1");
  EXPECT_EQ(user_error_message(
                [] { config_from_json(config_document({{"scheme", "rope"}}, {{"reset_positions", "yes"}}), "c.json"); }),
            "c.json: data.reset_positions: expected a boolean, got \"yes\"");
}

TEST(DocumentConfig, ReRopeResetNeedsMasking) {
  const json rerope = {{"scheme", "rerope"}, {"window", 8}};
  EXPECT_EQ(user_error_message([&] { config_from_json(config_document(rerope, {{"reset_positions", true}}), "c.json"); }),
            "c.json: data.reset_positions: rerope merges its score passes by token distance, which reset positions "
            "follow only within a document (set data.mask_documents too)");
  config_from_json(config_document(rerope, {{"reset_positions", true}, {"mask_documents", true}}), "c.json");
  config_from_json(config_document(rerope, {{"mask_documents", true}}), "c.json");
}

TEST(DocumentConfig, DualChunkRefusesResetPositionsEvenWithMasking) {
  const json dca = {{"scheme", "dual_chunk"}};
  EXPECT_EQ(user_error_message([&] {
              config_from_json(config_document(dca, {{"reset_positions", true}, {"mask_documents", true}}), "c.json");
            }),
            "c.json: data.reset_positions: dual_chunk merges its score passes by chunks of the window, which reset "
            "positions do not follow (leave reset_positions off)");
  config_from_json(config_document(dca, {{"mask_documents", true}}), "c.json");
}

// ---- Whole models -----------------------------------------------------------------------------

constexpr int64_t kLength = 40;
constexpr int64_t kEot = 63;  // the last id of the tests' 64-token vocabulary

const AttentionKernel kKernels[] = {AttentionKernel::kFusedCpu, AttentionKernel::kTiled, AttentionKernel::kBlockwise};

GPT tiny_model(const RunConfig& config, AttentionKernel kernel) {
  torch::manual_seed(5);
  GPT model = build_model(config);
  model->eval();
  model->set_attention_block(8);
  model->set_attention_kernel(kernel, torch::kFloat32);
  return model;
}

// Two rows: row 0 holds documents opening at 0, 11, 25 (one token) and 26; row 1 at 0 and 30.
torch::Tensor packed_tokens() {
  torch::manual_seed(6);
  auto tokens = torch::randint(kEot, {2, kLength}, torch::kInt64);
  for (int64_t t : {11, 25, 26}) tokens[0][t] = kEot;
  for (int64_t t : {0, 30}) tokens[1][t] = kEot;
  return tokens;
}

torch::Tensor logits(GPT& model, const torch::Tensor& tokens, const DocumentOptions& options) {
  torch::NoGradGuard no_grad;
  return model->forward(tokens, Positions::arange(tokens.size(1), kCpu), options);
}

TEST(DocumentModels, EarlierDocumentsNeverReachLaterOnes) {
  const auto tokens = packed_tokens();
  auto edited = tokens.clone();
  edited[0].slice(0, 0, 11).add_(1).remainder_(kEot);  // row 0's first document, end-of-text kept
  for (const char* scheme : {"rope", "alibi", "learned", "t5"}) {
    const RunConfig config = config_from_json(config_document({{"scheme", scheme}}), "c.json");
    for (const auto kernel : kKernels) {
      GPT model = tiny_model(config, kernel);
      for (const bool reset : {false, true}) {
        SCOPED_TRACE(testing::Message() << scheme << " kernel " << int(kernel) << (reset ? " reset" : ""));
        const DocumentOptions masked{reset, true, kEot};
        const auto before = logits(model, tokens, masked), after = logits(model, edited, masked);
        EXPECT_GT(max_abs_diff(before[0].slice(0, 0, 11), after[0].slice(0, 0, 11)), 1e-3);
        EXPECT_EQ(max_abs_diff(before[0].slice(0, 11, kLength), after[0].slice(0, 11, kLength)), 0.0);
        EXPECT_EQ(max_abs_diff(before[1], after[1]), 0.0);
        // Unmasked, the later documents do see it: the check above could fail.
        const DocumentOptions unmasked{reset, false, kEot};
        EXPECT_GT(max_abs_diff(logits(model, tokens, unmasked)[0].slice(0, 11, kLength),
                               logits(model, edited, unmasked)[0].slice(0, 11, kLength)),
                  1e-3);
      }
    }
  }
}

// Each document of a packed window against the same tokens opening a window of their own (its
// end-of-text first, then filler that contains no other): same logits, up to float rounding.
void expect_packed_equals_alone(const RunConfig& config) {
  const auto tokens = packed_tokens();
  const DocumentOptions options{true, true, kEot};
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> documents{{0, 11, 25}, {0, 25, 26}, {0, 26, kLength},
                                                                     {1, 30, kLength}};
  for (const auto kernel : kKernels) {
    SCOPED_TRACE(testing::Message() << "kernel " << int(kernel));
    GPT model = tiny_model(config, kernel);
    const auto packed = logits(model, tokens, options);
    for (const auto& [row, begin, end] : documents) {
      torch::manual_seed(7);
      auto alone = torch::randint(kEot, {1, kLength}, torch::kInt64);
      alone[0].slice(0, 0, kLength - begin).copy_(tokens[row].slice(0, begin, kLength));
      const auto expected = logits(model, alone, options)[0].slice(0, 0, end - begin);
      EXPECT_LT(max_abs_diff(packed[row].slice(0, begin, end), expected), 2e-5) << "row " << row << " document at " << begin;
    }
  }
}

TEST(DocumentModels, MaskedResetDocumentsScoreAsIfAlone) {
  const json schemes[] = {{{"scheme", "rope"}},
                          {{"scheme", "alibi"}},
                          {{"scheme", "learned"}},
                          {{"scheme", "sinusoidal"}},
                          {{"scheme", "fire"}},
                          {{"scheme", "fire"}, {"init_L", 6.0}},  // the normaliser psi(max(L, p_i)) of reset p_i
                          {{"scheme", "t5"}, {"init_std", 0.5}},
                          {{"scheme", "kerple"}},
                          {{"scheme", "sandwich"}},
                          {{"scheme", "dpb"}},
                          {{"scheme", "xpos"}},
                          {{"scheme", "rerope"}, {"window", 6}},
                          {{"scheme", "nope"}}};
  for (const auto& position : schemes) {
    SCOPED_TRACE(position.dump());
    expect_packed_equals_alone(config_from_json(config_document(position, {{"reset_positions", true}, {"mask_documents", true}}), "c.json"));
  }
  // Per-query scales count the document's keys: log-n with a window, and CosA's position scale.
  SCOPED_TRACE("window + log-n, cosine by position");
  expect_packed_equals_alone(config_from_json(
      config_document({{"scheme", "rope"}}, json::object(), {{"window", 9}, {"logn", "train"}, {"logn_floor", 2}}),
      "c.json"));
  expect_packed_equals_alone(config_from_json(
      config_document({{"scheme", "nope"}}, json::object(), {{"qk_norm", "cosine"}, {"cosine_scale", "position"}}),
      "c.json"));
}

TEST(DocumentModels, OffOrNothingToSeparateIsBitIdentical) {
  const auto tokens = packed_tokens();
  auto single = tokens.clone();
  single.masked_fill_(single == kEot, 1);
  single.select(1, 0).fill_(kEot);  // an end-of-text at token 0 opens no second document
  for (const char* scheme : {"rope", "alibi", "learned", "fire"}) {
    const RunConfig config = config_from_json(config_document({{"scheme", scheme}}), "c.json");
    for (const auto kernel : kKernels) {
      SCOPED_TRACE(testing::Message() << scheme << " kernel " << int(kernel));
      GPT model = tiny_model(config, kernel);
      torch::NoGradGuard no_grad;
      const auto plain = model->forward(tokens, Positions::arange(kLength, kCpu));
      EXPECT_TRUE(torch::equal(logits(model, tokens, {false, false, kEot}), plain));
      EXPECT_TRUE(torch::equal(logits(model, single, {true, true, kEot}),
                               model->forward(single, Positions::arange(kLength, kCpu))));
      EXPECT_FALSE(torch::equal(logits(model, tokens, {true, true, kEot}), plain));
    }
  }
}

}  // namespace
}  // namespace extrap
