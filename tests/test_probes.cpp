// Retrieval probes: the texts byte for byte, needle depths, controls, determinism, the answers, and
// teacher-forced scores against a hand computation on a tiny model.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>
#include <string>

#include "common/error.h"
#include "config/config.h"
#include "eval/probe_scoring.h"
#include "eval/probes.h"
#include "model/gpt.h"
#include "runtime/runtime.h"
#include "test_helpers.h"

namespace extrap {
namespace {

using nlohmann::json;
namespace text = probe_text;

std::string as_text(const std::vector<int64_t>& tokens) {
  std::string out;
  for (int64_t token : tokens) out += char(token);
  return out;
}
std::string answer_text(const ProbeSequence& sequence, std::size_t a) {
  const auto& span = sequence.answers.at(a);
  return as_text({sequence.tokens.begin() + span.begin, sequence.tokens.begin() + span.end});
}

// Landmark's filler, " ".join([filler] * n), long enough for any test.
std::string filler_stream() {
  std::string stream = text::kFiller;
  while (stream.size() < 100000) stream += std::string(" ") + text::kFiller;
  return stream;
}

ProbeParams params_with(std::vector<double> depths, int64_t trials = 3) {
  ProbeParams params;
  params.depths = std::move(depths);
  params.trials = trials;
  params.seed = 11;
  return params;
}

const TokenStream kNoText;
const std::vector<int32_t> kByteLengths(257, 1);

TEST(Probes, PasskeyIsLandmarksTextByteForByte) {
  const std::string filler = filler_stream();
  for (double depth : {0.0, 0.3, 1.0}) {
    for (int64_t length : {300, 777, 2048}) {
      SCOPED_TRACE(std::to_string(depth) + " @ " + std::to_string(length));
      const auto trials = probe_trials(ProbeKind::kPasskey, params_with({depth}, 2), length, kNoText);
      for (const auto& trial : trials) {
        const std::string prompt = as_text(trial.prompt.tokens);
        EXPECT_EQ(int64_t(prompt.size()), length);
        const std::string key = answer_text(trial.prompt, 0);
        const int value = std::stoi(key);
        EXPECT_TRUE(value >= 1 && value <= 50000) << key;
        // "\n".join([task, prefix, needle, suffix, question]) + " " + key
        const std::string head = std::string(text::kPasskeyTask) + "\n";
        const std::string needle = "\n" + text::passkey_needle(key) + "\n";
        const std::string tail = std::string("\n") + text::kPasskeyQuestion + " " + key;
        ASSERT_EQ(prompt.substr(0, head.size()), head);
        ASSERT_EQ(prompt.substr(prompt.size() - tail.size()), tail);
        const auto at = prompt.find(needle);
        ASSERT_NE(at, std::string::npos);
        EXPECT_EQ(int64_t(at), trial.needle_begin);
        const std::string prefix = prompt.substr(head.size(), at - head.size());
        const std::string suffix = prompt.substr(at + needle.size(), prompt.size() - tail.size() - at - needle.size());
        // The haystack reads as the filler with the needle between two whole sentences.
        const std::string joined = prefix.empty() || suffix.empty() ? prefix + suffix : prefix + " " + suffix;
        EXPECT_EQ(joined, filler.substr(0, joined.size()));
        // Between whole sentences, unless at the end (the haystack is cut to the exact length).
        if (!prefix.empty() && !suffix.empty()) {
          EXPECT_EQ(prefix.back(), '.');
          EXPECT_EQ(filler[prefix.size()], ' ');
        }
        // At the requested depth of the haystack, to within one sentence.
        const double haystack = double(prefix.size() + suffix.size());
        EXPECT_LE(std::abs(double(prefix.size()) - depth * haystack), 23.0);
        // The control: the needle's lines gone, the haystack read as plain filler.
        std::string control = prompt;
        control.replace(at, needle.size(), prefix.empty() || suffix.empty() ? "" : " ");
        EXPECT_EQ(as_text(trial.control.tokens), control);
        EXPECT_EQ(answer_text(trial.control, 0), key);
      }
    }
  }
}

TEST(Probes, TrialsAreDeterministicPerSeedAndKeysFollowTheirDigits) {
  ProbeParams params = params_with({0.0, 0.5}, 4);
  const auto a = probe_trials(ProbeKind::kPasskey, params, 400, kNoText);
  const auto b = probe_trials(ProbeKind::kPasskey, params, 400, kNoText);
  ASSERT_EQ(a.size(), 8u);
  std::set<std::string> keys;
  for (std::size_t t = 0; t < a.size(); ++t) {
    EXPECT_EQ(a[t].prompt.tokens, b[t].prompt.tokens);
    keys.insert(answer_text(a[t].prompt, 0));
  }
  EXPECT_GT(keys.size(), 4u);
  params.seed = 12;
  const auto c = probe_trials(ProbeKind::kPasskey, params, 400, kNoText);
  EXPECT_NE(a[0].prompt.tokens, c[0].prompt.tokens);
  params.key_digits = 7;
  for (const auto& trial : probe_trials(ProbeKind::kPasskey, params, 400, kNoText)) {
    const std::string key = answer_text(trial.prompt, 0);
    EXPECT_EQ(key.size(), 7u);
    EXPECT_NE(key[0], '0');
  }
}

// The needles of a RULER prompt, in text order: (key, value).
std::vector<std::pair<std::string, std::string>> needles_in(const std::string& prompt) {
  std::vector<std::pair<std::string, std::string>> found;
  const std::string lead = "\nOne of the special magic numbers for ";
  for (auto at = prompt.find(lead); at != std::string::npos; at = prompt.find(lead, at + 1)) {
    const auto key_end = prompt.find(" is: ", at);
    const auto value_end = prompt.find(".\n", key_end);
    found.emplace_back(prompt.substr(at + lead.size(), key_end - at - lead.size()),
                       prompt.substr(key_end + 5, value_end - key_end - 5));
  }
  return found;
}

TEST(Probes, NeedleProbesAskWhatTheirNeedlesSay) {
  ProbeParams params = params_with({0.25}, 3);
  params.needles = 3;
  for (ProbeKind kind : {ProbeKind::kNiah, ProbeKind::kNiahMultikey, ProbeKind::kNiahMultivalue,
                         ProbeKind::kNiahMultiquery}) {
    SCOPED_TRACE(probe_name(kind));
    for (const auto& trial : probe_trials(kind, params, 1500, kNoText)) {
      const std::string prompt = as_text(trial.prompt.tokens);
      EXPECT_EQ(prompt.size(), 1500u);
      EXPECT_EQ(prompt.rfind(std::string(text::kNiahTask) + "\n", 0), 0u);
      const auto needles = needles_in(prompt);
      ASSERT_EQ(needles.size(), kind == ProbeKind::kNiah ? 1u : 3u);
      for (const auto& needle : needles) EXPECT_EQ(needle.second.size(), 7u);
      std::vector<std::string> answers;
      for (std::size_t a = 0; a < trial.prompt.answers.size(); ++a) answers.push_back(answer_text(trial.prompt, a));
      const std::string first_key = needles_in(prompt.substr(trial.needle_begin))[0].first;
      if (kind == ProbeKind::kNiah || kind == ProbeKind::kNiahMultikey) {
        std::set<std::string> keys;
        for (const auto& needle : needles) keys.insert(needle.first);
        EXPECT_EQ(keys.size(), needles.size());  // distractors have other keys
        const std::string question = text::niah_question({first_key}, false);
        EXPECT_NE(prompt.find("\n" + question + " " + answers[0]), std::string::npos);
        ASSERT_EQ(answers.size(), 1u);
        for (const auto& needle : needles) {
          if (needle.first == first_key) EXPECT_EQ(needle.second, answers[0]);
        }
        // The control keeps the distractors and loses only the asked needle.
        const auto kept = needles_in(as_text(trial.control.tokens));
        EXPECT_EQ(kept.size(), needles.size() - 1);
        for (const auto& needle : kept) EXPECT_NE(needle.first, first_key);
      } else if (kind == ProbeKind::kNiahMultivalue) {
        ASSERT_EQ(answers.size(), 3u);
        for (std::size_t n = 0; n < needles.size(); ++n) {
          EXPECT_EQ(needles[n].first, first_key);
          EXPECT_EQ(needles[n].second, answers[n]);  // answered in text order
        }
        EXPECT_NE(prompt.find(text::niah_question({first_key}, true) + " " + answers[0] + ", " + answers[1] + ", " +
                              answers[2]),
                  std::string::npos);
        EXPECT_TRUE(needles_in(as_text(trial.control.tokens)).empty());
      } else {
        ASSERT_EQ(answers.size(), 3u);
        const auto question_at = prompt.find("What are all the special magic numbers for ");
        ASSERT_NE(question_at, std::string::npos);
        const std::string asked = prompt.substr(question_at + 43, prompt.find(" mentioned", question_at) - question_at - 43);
        std::vector<std::string> keys;
        for (std::size_t a = 0; a < 3; ++a) {
          for (const auto& needle : needles) {
            if (needle.second == answers[a]) keys.push_back(needle.first);
          }
        }
        ASSERT_EQ(keys.size(), 3u);
        EXPECT_EQ(asked, keys[0] + ", " + keys[1] + ", and " + keys[2]);
        EXPECT_TRUE(needles_in(as_text(trial.control.tokens)).empty());
      }
    }
  }
}

TEST(Probes, MqarQueriesPairsOfItsContext) {
  ProbeParams params = params_with({0.0}, 5);
  params.needles = 6;
  for (const auto& trial : probe_trials(ProbeKind::kMqar, params, 500, kNoText)) {
    const std::string prompt = as_text(trial.prompt.tokens);
    EXPECT_LE(prompt.size(), 500u);
    EXPECT_GT(prompt.size(), 500u - 8);
    const auto line = prompt.find('\n');
    const std::string context = prompt.substr(0, line), control = as_text(trial.control.tokens);
    ASSERT_EQ(trial.prompt.answers.size(), 6u);
    for (std::size_t a = 0; a < 6; ++a) {
      const auto& span = trial.prompt.answers[a];
      const std::string key = prompt.substr(span.begin - 4, 3), value = answer_text(trial.prompt, a);
      EXPECT_NE((" " + context + " ").find(" " + key + ":" + value + " "), std::string::npos) << key;
      EXPECT_EQ(control.substr(0, control.find('\n')).find(key + ":"), std::string::npos) << key;
      EXPECT_EQ(answer_text(trial.control, a), value);
    }
  }
}

TEST(Probes, NaturalHaystackIsTheSplitText) {
  std::vector<uint16_t> stream;
  const std::string words = "alpha beta gamma delta epsilon zeta eta theta ";
  while (stream.size() < 20000) {
    for (char c : words) stream.push_back(uint8_t(c));
    stream.push_back(256);
  }
  ProbeParams params = params_with({0.5}, 3);
  params.haystack = Haystack::kNatural;
  for (const auto& trial : probe_trials(ProbeKind::kPasskey, params, 1000, TokenStream::of(stream))) {
    const std::string prompt = as_text(trial.prompt.tokens);
    EXPECT_EQ(prompt.size(), 1000u);
    EXPECT_EQ(prompt.find("grass"), std::string::npos);
    EXPECT_NE(prompt.find("gamma"), std::string::npos);
    const char before = prompt[trial.needle_begin - 1];
    EXPECT_TRUE(before == ' ' || before == '\n') << int(before);  // at a word start
  }
  const TokenStream short_stream = TokenStream::of(std::vector<uint16_t>(100, 'a'));
  EXPECT_NE(test::user_error_message([&] { probe_trials(ProbeKind::kPasskey, params, 1000, short_stream); })
                .find("--haystack natural"),
            std::string::npos);
}

TEST(Probes, LengthsAndParametersAreChecked) {
  const ProbeParams params = params_with({0.0, 1.0});
  for (ProbeKind kind : {ProbeKind::kPasskey, ProbeKind::kNiah, ProbeKind::kNiahMultikey, ProbeKind::kNiahMultivalue,
                         ProbeKind::kNiahMultiquery, ProbeKind::kMqar}) {
    SCOPED_TRACE(probe_name(kind));
    const int64_t minimum = probe_min_length(kind, params);
    EXPECT_NO_THROW(probe_trials(kind, params, minimum, kNoText));
    EXPECT_NE(test::user_error_message([&] { probe_trials(kind, params, minimum - 1, kNoText); }).find("too short"),
              std::string::npos);
  }
  const auto message = [&](ProbeParams p, int64_t length = 4096) {
    return test::user_error_message([&] { check_probe_params({ProbeKind::kPasskey}, p, {length}); });
  };
  EXPECT_EQ(message(params_with({0.0, 1.5})), "--depths: 1.5 is outside [0, 1] (0: the needle first, 1: last)");
  EXPECT_EQ(message(params_with({0.5, 0.5})), "--depths: a depth is given twice");
  EXPECT_EQ(message(params_with({0.5}, 0)), "--trials 0 is not a positive count");
  ProbeParams digits = params;
  digits.key_digits = 12;
  EXPECT_EQ(message(digits), "--key-digits 12 is not in 0..9 (0: keys 1..50000)");
  EXPECT_NE(message(params, 100).find("--lengths 100: too short for the passkey probe"), std::string::npos);
}

// ---- Scoring ------------------------------------------------------------------------------------

class ProbeScoring : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(3);
    const json document = {{"name", "probe"},
                           {"model", {{"d_model", 32}, {"n_layers", 2}, {"n_heads", 2}, {"d_mlp", 64}}},
                           {"position", {{"scheme", "rope"}}},
                           {"data", {{"dataset", "unused"}, {"train_length", 64}}}};
    config_ = config_from_json(document, "probe");
    model_ = build_model(config_);
    runtime_.place(model_);
    model_->eval();
  }
  nlohmann::json score(const ProbeParams& params, int64_t length, int64_t batch_tokens) {
    const ScoringContext context{kNoText, kByteLengths, config_.position_sampling, 64, batch_tokens, runtime_, 0};
    return score_probe([&](int64_t) { return model_; }, ProbeKind::kPasskey, params, length, context);
  }
  RunConfig config_;
  GPT model_{nullptr};
  Runtime runtime_{"cpu", Precision::kFp32};
};

TEST_F(ProbeScoring, TeacherForcedScoresEqualAHandComputation) {
  torch::NoGradGuard no_grad;
  const ProbeParams params = params_with({0.0, 1.0}, 2);
  const int64_t length = 320;
  const json row = score(params, length, 1 << 20);
  const auto trials = probe_trials(ProbeKind::kPasskey, params, length, kNoText);
  const auto positions = evaluation_positions(config_.position_sampling, length, torch::kCPU);
  double logprob = 0, control_logprob = 0;
  int64_t correct = 0, tokens = 0;
  std::vector<double> depth_logprob(2, 0.0);
  for (std::size_t t = 0; t < trials.size(); ++t) {
    for (const bool control : {false, true}) {
      const ProbeSequence& sequence = control ? trials[t].control : trials[t].prompt;
      const int64_t n = int64_t(sequence.tokens.size());
      const auto input = torch::tensor(sequence.tokens, torch::kInt64).unsqueeze(0);
      const auto logp = torch::log_softmax(model_->forward(input, positions.prefix(n)), -1)[0];
      for (int64_t j = sequence.answers[0].begin; j < sequence.answers[0].end; ++j) {
        const double lp = logp[j - 1][sequence.tokens[j]].item<double>();
        (control ? control_logprob : logprob) += lp;
        if (!control) {
          depth_logprob[t / 2] += lp;
          correct += logp[j - 1].argmax().item<int64_t>() == sequence.tokens[j];
          tokens += 1;
        }
      }
    }
  }
  EXPECT_EQ(row.at("trials"), 4);
  EXPECT_NEAR(row.at("answer_logprob").get<double>(), logprob / 4, 1e-4);
  EXPECT_NEAR(row.at("control").at("answer_logprob").get<double>(), control_logprob / 4, 1e-4);
  EXPECT_NEAR(row.at("token_accuracy").get<double>(), double(correct) / double(tokens), 1e-12);
  ASSERT_EQ(row.at("depths").size(), 2u);
  for (std::size_t d = 0; d < 2; ++d) {
    EXPECT_EQ(row["depths"][d]["depth"].get<double>(), params.depths[d]);
    EXPECT_NEAR(row["depths"][d]["answer_logprob"].get<double>(), depth_logprob[d] / 2, 1e-4);
  }
  EXPECT_EQ(row.at("exact_match").get<double>(), 0.0);  // an untrained model does not know the key
  // Batching and right padding change nothing (causal attention never reads the padding).
  const json one_per_batch = score(params, length, 1);
  EXPECT_NEAR(one_per_batch.at("answer_logprob").get<double>(), row.at("answer_logprob").get<double>(), 1e-4);
  EXPECT_NEAR(one_per_batch.at("control").at("answer_logprob").get<double>(),
              row.at("control").at("answer_logprob").get<double>(), 1e-4);
}

TEST_F(ProbeScoring, GreedyDecodingMatchesOneTokenAtATimeArgmax) {
  torch::NoGradGuard no_grad;
  const auto trials = probe_trials(ProbeKind::kPasskey, params_with({0.5}, 3), 300, kNoText);
  std::vector<const ProbeSequence*> prompts;
  for (const auto& trial : trials) prompts.push_back(&trial.prompt);
  const int64_t horizon = 300 + kGreedySlack;
  const auto positions = evaluation_positions(config_.position_sampling, horizon, torch::kCPU);
  for (int64_t batch_tokens : {int64_t(1), int64_t(1) << 20}) {  // one prompt per pass, or all in one (padded)
    const ScoringContext context{kNoText, kByteLengths, config_.position_sampling, 64, batch_tokens, runtime_, 0};
    const auto continuations = greedy_continuations([&](int64_t) { return model_; }, prompts, horizon, context);
    ASSERT_EQ(continuations.size(), 3u);
    for (std::size_t p = 0; p < prompts.size(); ++p) {
      const auto& answer = prompts[p]->answers[0];
      std::vector<int64_t> text(prompts[p]->tokens.begin(), prompts[p]->tokens.begin() + answer.begin);
      for (int64_t step = 0; step < answer.end - answer.begin + kGreedySlack; ++step) {
        const auto input = torch::tensor(text, torch::kInt64).unsqueeze(0);
        const auto logits = model_->forward(input, positions.prefix(int64_t(text.size())));
        text.push_back(logits[0][-1].argmax().item<int64_t>());
      }
      EXPECT_EQ(continuations[p], std::vector<int64_t>(text.begin() + answer.begin, text.end())) << p;
    }
  }
}

}  // namespace
}  // namespace extrap
