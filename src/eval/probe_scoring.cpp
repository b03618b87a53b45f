#include "eval/probe_scoring.h"

#include <chrono>

#include "common/process.h"
#include "common/stats.h"

namespace extrap {
namespace {

constexpr int64_t kPadToken = 256;  // end-of-text after a shorter sequence: causal, so never read

// What one answer of one sequence scored.
struct AnswerScore {
  int64_t tokens = 0, correct = 0;
  double logprob = 0;  // nats, summed over the answer's tokens
};
using SequenceScores = std::vector<AnswerScore>;  // one per answer span

// Scores the answer tokens of `sequences` (each at most `length` tokens, right-padded) from forward
// passes over `length` tokens, in batches of batch_tokens / length rows. With dynamic scaling a
// target is scored by the model of its position's piece (context_ends), as the LM protocols do.
std::vector<SequenceScores> score_sequences(const ModelFactory& make_model, const std::vector<const ProbeSequence*>& sequences,
                                            int64_t length, const ScoringContext& context) {
  const auto positions = evaluation_positions(context.sampling, length, context.runtime.device());
  const std::size_t per_batch = std::max<int64_t>(1, context.batch_tokens / length);
  std::vector<SequenceScores> scores(sequences.size());
  for (std::size_t s = 0; s < sequences.size(); ++s) scores[s].resize(sequences[s]->answers.size());
  int64_t begin = 0;
  for (int64_t end : context_ends(length, context.train_length, context.dynamic_step)) {
    GPT model{nullptr};  // built only when some target's predicting position falls in [begin, end)
    for (std::size_t b = 0; b < sequences.size(); b += per_batch) {
      const std::size_t rows = std::min(per_batch, sequences.size() - b);
      // (row, predicting position, target, sequence, answer) of every answer token scored here.
      std::vector<int64_t> row_index, position_index, target_token;
      std::vector<std::pair<std::size_t, std::size_t>> owner;
      for (std::size_t r = 0; r < rows; ++r) {
        const ProbeSequence& sequence = *sequences[b + r];
        for (std::size_t a = 0; a < sequence.answers.size(); ++a) {
          for (int64_t j = sequence.answers[a].begin; j < sequence.answers[a].end; ++j) {
            if (j - 1 < begin || j - 1 >= end) continue;
            row_index.push_back(int64_t(r));
            position_index.push_back(j - 1);
            target_token.push_back(sequence.tokens[j]);
            owner.emplace_back(b + r, a);
          }
        }
      }
      if (owner.empty()) continue;
      if (model.is_empty()) model = make_model(end);
      auto batch = torch::full({int64_t(rows), end}, kPadToken, torch::kInt64);
      for (std::size_t r = 0; r < rows; ++r) {
        const auto& tokens = sequences[b + r]->tokens;
        const int64_t used = std::min<int64_t>(end, int64_t(tokens.size()));
        std::copy(tokens.begin(), tokens.begin() + used, batch[int64_t(r)].data_ptr<int64_t>());
      }
      torch::Tensor logits;
      {
        const auto precision = context.runtime.precision_scope();
        logits = model->forward(batch.to(context.runtime.device()), positions.prefix(end));
      }
      const auto as_tensor = [&](const std::vector<int64_t>& v) {
        return torch::tensor(v, torch::kInt64).to(context.runtime.device());
      };
      const auto picked = logits.index({as_tensor(row_index), as_tensor(position_index)});  // [N, vocab]
      const auto targets = as_tensor(target_token).unsqueeze(-1);
      const auto logprob = torch::log_softmax(picked, -1).gather(-1, targets).squeeze(-1).to(torch::kCPU, torch::kFloat64);
      const auto correct = (picked.argmax(-1, true) == targets).squeeze(-1).to(torch::kCPU);
      const auto* lp = logprob.data_ptr<double>();
      const auto* ok = correct.data_ptr<bool>();
      for (std::size_t i = 0; i < owner.size(); ++i) {
        AnswerScore& score = scores[owner[i].first][owner[i].second];
        score.tokens += 1;
        score.correct += ok[i] ? 1 : 0;
        score.logprob += lp[i];
      }
    }
    begin = end;
  }
  return scores;
}

// {trials, exact_match, exact_match_ci, token_accuracy, answer_logprob, answers, answer_exact_match,
// answer_tokens} over the given sequences' scores.
nlohmann::json summarize(const std::vector<const SequenceScores*>& sequences) {
  int64_t exact = 0, answers = 0, exact_answers = 0, tokens = 0, correct = 0;
  double logprob = 0;
  for (const auto* scores : sequences) {
    bool all = true;
    for (const auto& answer : *scores) {
      const bool hit = answer.correct == answer.tokens;
      all = all && hit;
      exact_answers += hit ? 1 : 0;
      answers += 1;
      tokens += answer.tokens;
      correct += answer.correct;
      logprob += answer.logprob;
    }
    exact += all ? 1 : 0;
  }
  const int64_t trials = int64_t(sequences.size());
  const auto ci = wilson_interval(exact, trials);
  return {{"trials", trials},
          {"exact_match", double(exact) / double(trials)},
          {"exact_match_ci", {ci[0], ci[1]}},
          {"token_accuracy", double(correct) / double(tokens)},
          {"answer_logprob", logprob / double(trials)},
          {"answers", answers},
          {"answer_exact_match", double(exact_answers) / double(answers)},
          {"answer_tokens", double(tokens) / double(trials)}};
}

}  // namespace

nlohmann::json score_probe(const ModelFactory& make_model, ProbeKind kind, const ProbeParams& params, int64_t length,
                           const ScoringContext& context) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<ProbeTrial> trials = probe_trials(kind, params, length, context.stream);
  std::vector<const ProbeSequence*> sequences;
  int64_t tokens_fed = 0;
  for (const auto& trial : trials) sequences.push_back(&trial.prompt);
  for (const auto& trial : trials) sequences.push_back(&trial.control);
  for (const auto* sequence : sequences) tokens_fed += int64_t(sequence->tokens.size());
  const auto scores = score_sequences(make_model, sequences, length, context);

  const std::size_t n = trials.size();
  std::vector<const SequenceScores*> prompts, controls;
  for (std::size_t t = 0; t < n; ++t) {
    prompts.push_back(&scores[t]);
    controls.push_back(&scores[n + t]);
  }
  nlohmann::json row = summarize(prompts);
  row["control"] = summarize(controls);
  if (probe_has_depth(kind)) {
    nlohmann::json depths = nlohmann::json::array();
    for (double depth : params.depths) {
      std::vector<const SequenceScores*> at_depth;
      for (std::size_t t = 0; t < n; ++t) {
        if (trials[t].depth == depth) at_depth.push_back(&scores[t]);
      }
      nlohmann::json entry = summarize(at_depth);
      entry["depth"] = depth;
      depths.push_back(entry);
    }
    row["depths"] = depths;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  row["status"] = "ok";
  row["seconds"] = seconds;
  row["tokens_per_s"] = double(tokens_fed) / seconds;
  row["peak_rss_mib"] = peak_rss_mib();
  return row;
}

}  // namespace extrap
