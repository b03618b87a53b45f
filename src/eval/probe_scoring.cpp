#include "eval/probe_scoring.h"

#include <algorithm>
#include <chrono>

#include "common/process.h"
#include "common/stats.h"
#include "eval/probe_tokens.h"
#include "eval/treatment.h"

namespace extrap {
namespace {

constexpr int64_t kPadToken = 0;  // any valid id (every tokenizer has 0) after a shorter sequence: causal, so never read

// What one answer of one sequence scored.
struct AnswerScore {
  int64_t tokens = 0, correct = 0;
  double logprob = 0;  // nats, summed over the answer's tokens
};
using SequenceScores = std::vector<AnswerScore>;  // one per answer span

// Every process's answer scores summed across the group: each answer was scored by one of them.
void share_scores(std::vector<SequenceScores>& scores, const ScoringContext& context) {
  if (context.group == nullptr || !context.group->distributed()) return;
  std::vector<double> packed;
  for (const auto& sequence : scores) {
    for (const auto& a : sequence) packed.insert(packed.end(), {double(a.tokens), double(a.correct), a.logprob});
  }
  auto tensor = torch::tensor(packed, torch::kFloat64);
  context.sum_({tensor});
  const double* summed = tensor.data_ptr<double>();
  for (auto& sequence : scores) {
    for (auto& a : sequence) {
      a.tokens = int64_t(summed[0]);
      a.correct = int64_t(summed[1]);
      a.logprob = summed[2];
      summed += 3;
    }
  }
}

// Every process's greedy continuations, shared across the group: each prompt was decoded by one.
void share_continuations(std::vector<std::vector<int64_t>>& continuations, const ScoringContext& context) {
  if (context.group == nullptr || !context.group->distributed()) return;
  std::size_t longest = 0;
  for (const auto& c : continuations) longest = std::max(longest, c.size());
  longest = std::size_t(context.group->sum(double(longest)));  // a bound every process agrees on
  auto packed = torch::zeros({int64_t(continuations.size()), int64_t(longest) + 1}, torch::kInt64);
  for (std::size_t p = 0; p < continuations.size(); ++p) {
    packed[int64_t(p)][0] = int64_t(continuations[p].size());
    for (std::size_t i = 0; i < continuations[p].size(); ++i) packed[int64_t(p)][int64_t(i) + 1] = continuations[p][i];
  }
  context.sum_({packed});
  for (std::size_t p = 0; p < continuations.size(); ++p) {
    const auto row = packed[int64_t(p)];
    const int64_t size = row[0].item<int64_t>();
    continuations[p].assign(row.data_ptr<int64_t>() + 1, row.data_ptr<int64_t>() + 1 + size);
  }
}

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
      if (!context.owns(int64_t(b / per_batch))) continue;
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
  share_scores(scores, context);
  return scores;
}

// Whether `needle` occurs in `haystack` as a contiguous run of tokens.
bool contains_run(const std::vector<int64_t>& haystack, const std::vector<int64_t>& needle) {
  return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end()) != haystack.end();
}

// Whether every answer's tokens occur in the prompt's greedy continuation.
std::vector<bool> greedy_found(const std::vector<const ProbeSequence*>& prompts,
                               const std::vector<std::vector<int64_t>>& continuations) {
  std::vector<bool> found;
  for (std::size_t p = 0; p < prompts.size(); ++p) {
    const ProbeSequence& prompt = *prompts[p];
    bool all = true;
    for (const auto& answer : prompt.answers) {
      all = all && contains_run(continuations[p], {prompt.tokens.begin() + answer.begin, prompt.tokens.begin() + answer.end});
    }
    found.push_back(all);
  }
  return found;
}

nlohmann::json greedy_summary(const std::vector<bool>& found) {
  const int64_t hits = std::count(found.begin(), found.end(), true), trials = int64_t(found.size());
  const auto ci = wilson_interval(hits, trials);
  return {{"trials", trials}, {"found", double(hits) / double(trials)}, {"found_ci", {ci.first, ci.second}}};
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
          {"exact_match_ci", {ci.first, ci.second}},
          {"token_accuracy", double(correct) / double(tokens)},
          {"answer_logprob", logprob / double(trials)},
          {"answers", answers},
          {"answer_exact_match", double(exact_answers) / double(answers)},
          {"answer_tokens", double(tokens) / double(trials)}};
}

}  // namespace

std::vector<std::vector<int64_t>> greedy_continuations(const ModelFactory& make_model,
                                                       const std::vector<const ProbeSequence*>& prompts, int64_t horizon,
                                                       const ScoringContext& context) {
  const auto positions = evaluation_positions(context.sampling, horizon, context.runtime.device());
  GPT model = make_model(horizon);
  const std::size_t per_batch = std::max<int64_t>(1, context.batch_tokens / horizon);
  std::vector<std::vector<int64_t>> continuations(prompts.size());
  for (std::size_t b = 0; b < prompts.size(); b += per_batch) {
    if (!context.owns(int64_t(b / per_batch))) continue;
    const std::size_t rows = std::min(per_batch, prompts.size() - b);
    std::vector<std::vector<int64_t>> text(rows);
    std::vector<int64_t> start(rows), steps(rows);
    int64_t most_steps = 0;
    for (std::size_t r = 0; r < rows; ++r) {
      const ProbeSequence& prompt = *prompts[b + r];
      start[r] = prompt.answers.front().begin;
      steps[r] = prompt.answers.back().end - start[r] + kGreedySlack;
      most_steps = std::max(most_steps, steps[r]);
      text[r].assign(prompt.tokens.begin(), prompt.tokens.begin() + start[r]);
    }
    for (int64_t step = 0; step < most_steps; ++step) {
      int64_t width = 0;
      for (const auto& t : text) width = std::max<int64_t>(width, int64_t(t.size()));
      auto batch = torch::full({int64_t(rows), width}, kPadToken, torch::kInt64);
      std::vector<int64_t> last(rows);
      for (std::size_t r = 0; r < rows; ++r) {
        std::copy(text[r].begin(), text[r].end(), batch[int64_t(r)].data_ptr<int64_t>());
        last[r] = int64_t(text[r].size()) - 1;
      }
      torch::Tensor logits;
      {
        const auto precision = context.runtime.precision_scope();
        logits = model->forward(batch.to(context.runtime.device()), positions.prefix(width));
      }
      const auto& device = context.runtime.device();
      const auto next = logits.index({torch::arange(int64_t(rows), torch::kInt64).to(device),
                                      torch::tensor(last, torch::kInt64).to(device)})
                            .argmax(-1)
                            .to(torch::kCPU);
      for (std::size_t r = 0; r < rows; ++r) {
        if (step < steps[r]) text[r].push_back(next[int64_t(r)].item<int64_t>());
      }
    }
    for (std::size_t r = 0; r < rows; ++r) continuations[b + r].assign(text[r].begin() + start[r], text[r].end());
  }
  share_continuations(continuations, context);
  return continuations;
}

nlohmann::json score_probe(const ModelFactory& make_model, ProbeKind kind, const ProbeParams& params, int64_t length,
                           const ScoringContext& context) {
  const auto start = std::chrono::steady_clock::now();
  const bool subword = context.tokenizer != nullptr && context.tokenizer->type() != "byte";
  EncodedTrials built;
  if (subword) {
    built = encoded_probe_trials(kind, params, length, *context.probe_text, *context.tokenizer);
  } else {
    built = {probe_trials(kind, params, length, context.stream), length};
  }
  const std::vector<ProbeTrial>& trials = built.trials;
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
  std::vector<bool> found;
  if (params.greedy) {
    const int64_t horizon = length + kGreedySlack;
    if (context.max_length > 0 && horizon > context.max_length) {
      row["greedy"] = {{"error", "greedy decoding runs to " + std::to_string(horizon) + " positions; the scheme covers " +
                                     std::to_string(context.max_length)}};
    } else {
      const std::vector<const ProbeSequence*> prompts(sequences.begin(), sequences.begin() + n);
      found = greedy_found(prompts, greedy_continuations(make_model, prompts, horizon, context));
      row["greedy"] = greedy_summary(found);
    }
  }
  if (probe_has_depth(kind)) {
    nlohmann::json depths = nlohmann::json::array();
    for (double depth : params.depths) {
      std::vector<const SequenceScores*> at_depth;
      std::vector<bool> found_at_depth;
      for (std::size_t t = 0; t < n; ++t) {
        if (trials[t].depth != depth) continue;
        at_depth.push_back(&scores[t]);
        if (!found.empty()) found_at_depth.push_back(found[t]);
      }
      nlohmann::json entry = summarize(at_depth);
      entry["depth"] = depth;
      if (!found.empty()) entry["greedy"] = greedy_summary(found_at_depth);
      depths.push_back(entry);
    }
    row["depths"] = depths;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  row["status"] = "ok";
  if (subword) {
    int64_t shortest = length, longest = 0;
    for (const auto& trial : trials) {
      shortest = std::min<int64_t>(shortest, int64_t(trial.prompt.tokens.size()));
      longest = std::max<int64_t>(longest, int64_t(trial.prompt.tokens.size()));
    }
    row["prompt_bytes"] = built.prompt_bytes;
    row["prompt_tokens"] = {shortest, longest};
  }
  row["seconds"] = seconds;
  row["tokens_per_s"] = double(tokens_fed) / seconds;
  row["peak_rss_mib"] = peak_rss_mib();
  return row;
}

}  // namespace extrap
