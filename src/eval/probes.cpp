#include "eval/probes.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "common/error.h"
#include "common/random.h"

namespace extrap {
namespace {

struct ProbeEntry {
  ProbeKind kind;
  const char* name;
};
constexpr ProbeEntry kProbeTable[] = {{ProbeKind::kPasskey, "passkey"},
                                      {ProbeKind::kNiah, "niah"},
                                      {ProbeKind::kNiahMultikey, "niah_multikey"},
                                      {ProbeKind::kNiahMultivalue, "niah_multivalue"},
                                      {ProbeKind::kNiahMultiquery, "niah_multiquery"},
                                      {ProbeKind::kMqar, "mqar"}};

constexpr int64_t kEndOfText = 256;  // the byte tokenizer's separator, read as a line break in haystacks

// RULER names its needles with random words; these 16 x 16 "adjective-noun" keys are ours.
constexpr const char* kAdjectives[] = {"amber", "brave",  "calm",  "damp",  "eager", "faint", "grand", "hollow",
                                       "icy",   "jolly",  "keen",  "lucky", "misty", "noble", "odd",   "proud"};
constexpr const char* kNouns[] = {"anchor", "badger", "candle", "dragon", "falcon", "garden", "harbor", "island",
                                  "jacket", "kettle", "lantern", "meadow", "needle", "orchard", "pepper", "quarry"};
constexpr int64_t kKeyCount = 16 * 16;
constexpr const char* kLongestKey = "hollow-lantern";  // 14 characters, as long as any key
constexpr int64_t kNiahValueDigits = 7;   // RULER's magic numbers: 7 digits
constexpr int64_t kMqarKeyLetters = 3;
constexpr int64_t kMqarValueDigits = 3;

std::string niah_key(int64_t index) { return std::string(kAdjectives[index / 16]) + "-" + kNouns[index % 16]; }

// A number with exactly `digits` digits, uniform.
std::string random_digits(SplitMix64& rng, int64_t digits) {
  const uint64_t low = uint64_t(std::pow(10.0, double(digits - 1)));
  return std::to_string(low + rng.next() % (9 * low));
}

std::string passkey(SplitMix64& rng, int64_t key_digits) {
  return key_digits == 0 ? std::to_string(1 + rng.next() % 50000) : random_digits(rng, key_digits);
}

// `count` distinct values of [0, range), in draw order.
std::vector<int64_t> distinct_draws(SplitMix64& rng, int64_t count, int64_t range) {
  std::vector<int64_t> drawn;
  std::set<int64_t> seen;
  while (int64_t(drawn.size()) < count) {
    const int64_t value = int64_t(rng.next() % uint64_t(range));
    if (seen.insert(value).second) drawn.push_back(value);
  }
  return drawn;
}

void append(std::vector<int64_t>& tokens, const std::string& text) {
  const auto more = probe_tokens(text);
  tokens.insert(tokens.end(), more.begin(), more.end());
}

int64_t token_count(const std::string& text) { return int64_t(probe_tokens(text).size()); }

// ---- Haystacks ---------------------------------------------------------------------------------

// Irrelevant text as tokens, with the places a needle may go: `unit_start[i]` is true where a
// sentence (fixed filler) or a word (natural text) begins at token i. In the fixed filler each
// sentence after the first follows a one-token " " separator, which a needle put there replaces,
// so the needle's lines sit between whole sentences exactly as in Landmark's generator.
struct HaystackText {
  std::vector<int64_t> tokens;
  std::vector<bool> unit_start;
  bool separated = false;
};

HaystackText fixed_haystack(int64_t count) {
  static const std::vector<std::string> sentences = {"The grass is green.", "The sky is blue.", "The sun is yellow.",
                                                     "Here we go.", "There and back again."};
  HaystackText hay;
  hay.separated = true;
  for (std::size_t s = 0; int64_t(hay.tokens.size()) < count; ++s) {
    if (s > 0) append(hay.tokens, " ");
    hay.unit_start.resize(hay.tokens.size(), false);
    hay.unit_start.push_back(true);
    append(hay.tokens, sentences[s % sentences.size()]);
  }
  hay.tokens.resize(count);
  hay.unit_start.resize(count, false);
  return hay;
}

HaystackText natural_haystack(const TokenStream& stream, int64_t count, SplitMix64& rng) {
  if (int64_t(stream.size()) < count + 1) {
    throw UserError("--haystack natural: the evaluated split has " + std::to_string(stream.size()) +
                    " tokens, fewer than the " + std::to_string(count + 1) + " a prompt of this length needs");
  }
  const int64_t start = int64_t(rng.next() % uint64_t(int64_t(stream.size()) - count));
  HaystackText hay;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t token = stream[start + i];
    hay.tokens.push_back(token == kEndOfText ? '\n' : token);
    const int64_t before = i == 0 ? ' ' : hay.tokens[i - 1];
    hay.unit_start.push_back(before == ' ' || before == '\n');
  }
  return hay;
}

// ---- Assembling a prompt ------------------------------------------------------------------------

struct Needle {
  std::string text;
  double depth = 0;
  bool asked = false;  // the question asks about it: the control leaves it out
};

// A prompt as `head`, the haystack with the needles (each on its own line), `tail`, then the
// answers (each preceded by its joiner, e.g. " " or ", "; only the answer tokens are scored).
struct PromptLayout {
  std::string head, tail;
  std::vector<Needle> needles;
  std::vector<std::string> joiners, answers;
};

int64_t fixed_tokens(const PromptLayout& layout) {
  int64_t total = token_count(layout.head) + token_count(layout.tail);
  for (const auto& needle : layout.needles) total += token_count("\n" + needle.text + "\n");
  for (std::size_t a = 0; a < layout.answers.size(); ++a) total += token_count(layout.joiners[a] + layout.answers[a]);
  return total;
}

// The insertion point nearest to depth * haystack tokens: a unit start in [0, size], or size (the end).
int64_t insertion_point(const HaystackText& hay, int64_t size, double depth) {
  const double target = depth * double(size);
  int64_t best = size;
  for (int64_t i = 0; i <= size; ++i) {
    if ((i == size || hay.unit_start[i]) && std::abs(double(i) - target) < std::abs(double(best) - target)) best = i;
  }
  return best;
}

// `hay` must hold at least `size` + needles + 1 tokens; the haystack used has exactly `size`.
struct Assembled {
  ProbeSequence prompt, control;
  int64_t needle_begin = -1;
};

Assembled assemble(const PromptLayout& layout, const HaystackText& hay, int64_t size) {
  std::vector<int64_t> at(layout.needles.size());
  std::set<int64_t> dropped;  // separators replaced by a needle
  for (std::size_t n = 0; n < layout.needles.size(); ++n) {
    at[n] = insertion_point(hay, size, layout.needles[n].depth);
    if (hay.separated && at[n] > 0 && at[n] < size) dropped.insert(at[n] - 1);
  }
  const int64_t end = size + int64_t(dropped.size());  // haystack tokens read, so `size` remain
  for (auto& point : at) point = point == size ? end : point;

  Assembled out;
  auto build = [&](ProbeSequence& sequence, bool with_asked) {
    const auto placed = [&](std::size_t n) { return with_asked || !layout.needles[n].asked; };
    const auto needle_at = [&](int64_t point) {
      for (std::size_t n = 0; n < at.size(); ++n) {
        if (at[n] == point && placed(n)) return true;
      }
      return false;
    };
    auto& tokens = sequence.tokens;
    append(tokens, layout.head);
    for (int64_t i = 0; i <= end; ++i) {
      for (std::size_t n = 0; n < layout.needles.size(); ++n) {
        if (at[n] != i || !placed(n)) continue;
        if (with_asked && n == 0) out.needle_begin = int64_t(tokens.size());
        append(tokens, "\n" + layout.needles[n].text + "\n");
      }
      if (i == end) break;
      // A separator stays unless a needle of this sequence replaces it (the control reads as plain text).
      if (!(dropped.count(i) && needle_at(i + 1))) tokens.push_back(hay.tokens[i]);
    }
    append(tokens, layout.tail);
    for (std::size_t a = 0; a < layout.answers.size(); ++a) {
      append(tokens, layout.joiners[a]);
      const int64_t begin = int64_t(tokens.size());
      append(tokens, layout.answers[a]);
      sequence.answers.push_back({begin, int64_t(tokens.size())});
    }
  };
  build(out.prompt, true);
  build(out.control, false);
  return out;
}

// ---- The probes ---------------------------------------------------------------------------------

std::string join_keys(const std::vector<std::string>& keys) {
  if (keys.size() == 1) return keys[0];
  std::string text;
  for (std::size_t k = 0; k + 1 < keys.size(); ++k) text += (k ? ", " : "") + keys[k];
  return text + ", and " + keys.back();
}

// `widest`: every key and value as long as they can be (for the minimum length).
PromptLayout needle_layout(ProbeKind kind, const ProbeParams& params, double depth, SplitMix64& rng,
                           bool widest = false) {
  PromptLayout layout;
  if (kind == ProbeKind::kPasskey) {
    const std::string key = widest ? std::string(std::max<int64_t>(5, params.key_digits), '9')
                                   : passkey(rng, params.key_digits);
    layout.head = std::string(probe_text::kPasskeyTask) + "\n";
    layout.needles = {{probe_text::passkey_needle(key), depth, true}};
    layout.tail = std::string("\n") + probe_text::kPasskeyQuestion;
    layout.joiners = {" "};
    layout.answers = {key};
    return layout;
  }
  const int64_t count = kind == ProbeKind::kNiah ? 1 : params.needles;
  const auto key_ids = distinct_draws(rng, kind == ProbeKind::kNiahMultivalue ? 1 : count, kKeyCount);
  std::vector<std::string> keys, values;
  for (int64_t n = 0; n < count; ++n) {
    keys.push_back(widest ? kLongestKey : niah_key(key_ids[std::min<std::size_t>(n, key_ids.size() - 1)]));
    values.push_back(random_digits(rng, kNiahValueDigits));
  }
  const bool all_asked = kind == ProbeKind::kNiahMultivalue || kind == ProbeKind::kNiahMultiquery;
  for (int64_t n = 0; n < count; ++n) {
    layout.needles.push_back({probe_text::niah_needle(keys[n], values[n]), n == 0 ? depth : rng.uniform(),
                              n == 0 || all_asked});
  }
  layout.head = std::string(probe_text::kNiahTask) + "\n";
  std::vector<int64_t> order(count);
  for (int64_t n = 0; n < count; ++n) order[n] = n;
  if (kind == ProbeKind::kNiahMultivalue) {  // values answered in the order the text gives them
    std::stable_sort(order.begin(), order.end(),
                     [&](int64_t a, int64_t b) { return layout.needles[a].depth < layout.needles[b].depth; });
  }
  const std::vector<std::string> asked_keys =
      kind == ProbeKind::kNiahMultiquery ? keys : std::vector<std::string>{keys[0]};
  layout.tail = "\n" + probe_text::niah_question(asked_keys, all_asked);
  const int64_t answered = all_asked ? count : 1;
  for (int64_t a = 0; a < answered; ++a) {
    layout.joiners.push_back(a == 0 ? " " : ", ");
    layout.answers.push_back(values[order[a]]);
  }
  return layout;
}

// MQAR (Zoology): "key:value" pairs, a line break, then `needles` of the pairs queried again; the
// answers are the queried values. The pairs fill the length; the control drops the queried pairs.
int64_t mqar_pair_tokens() {
  return token_count(std::string(kMqarKeyLetters, 'a') + ":" + std::string(kMqarValueDigits, '0') + " ");
}

Assembled mqar_prompt(const ProbeParams& params, int64_t length, SplitMix64& rng) {
  const int64_t pair_tokens = mqar_pair_tokens();
  const int64_t pairs = (length + 1 - params.needles * pair_tokens) / pair_tokens;
  const auto key_ids = distinct_draws(rng, pairs, 26 * 26 * 26);
  std::vector<std::string> keys, values;
  for (int64_t id : key_ids) {
    keys.push_back({char('a' + id / 676), char('a' + id / 26 % 26), char('a' + id % 26)});
    values.push_back(random_digits(rng, kMqarValueDigits));
  }
  const auto queried = distinct_draws(rng, params.needles, pairs);
  const std::set<int64_t> queried_set(queried.begin(), queried.end());
  Assembled out;
  auto build = [&](ProbeSequence& sequence, bool with_queried) {
    std::string context;
    for (int64_t p = 0; p < pairs; ++p) {
      if (!with_queried && queried_set.count(p)) continue;
      context += (context.empty() ? "" : " ") + keys[p] + ":" + values[p];
    }
    append(sequence.tokens, context + "\n");
    for (std::size_t q = 0; q < queried.size(); ++q) {
      append(sequence.tokens, (q ? " " : "") + keys[queried[q]] + ":");
      const int64_t begin = int64_t(sequence.tokens.size());
      append(sequence.tokens, values[queried[q]]);
      sequence.answers.push_back({begin, int64_t(sequence.tokens.size())});
    }
  };
  build(out.prompt, true);
  build(out.control, false);
  return out;
}

uint64_t trial_seed(uint64_t seed, ProbeKind kind, int64_t length, std::size_t depth_index, int64_t trial) {
  uint64_t h = splitmix64(seed ^ 0x9e0beULL);
  for (uint64_t part : {uint64_t(kind), uint64_t(length), uint64_t(depth_index), uint64_t(trial)}) h = splitmix64(h ^ part);
  return h;
}

}  // namespace

const char* probe_name(ProbeKind kind) {
  for (const auto& entry : kProbeTable) {
    if (entry.kind == kind) return entry.name;
  }
  return "?";
}

bool find_probe(const std::string& name, ProbeKind& kind) {
  for (const auto& entry : kProbeTable) {
    if (name == entry.name) {
      kind = entry.kind;
      return true;
    }
  }
  return false;
}

bool probe_has_depth(ProbeKind kind) { return kind != ProbeKind::kMqar; }

std::vector<int64_t> probe_tokens(const std::string& text) {
  std::vector<int64_t> tokens;
  tokens.reserve(text.size());
  for (unsigned char c : text) tokens.push_back(c);
  return tokens;
}

namespace probe_text {
std::string passkey_needle(const std::string& key) {
  return "The pass key is " + key + ". Remember it. " + key + " is the pass key.";
}
std::string niah_needle(const std::string& key, const std::string& value) {
  return "One of the special magic numbers for " + key + " is: " + value + ".";
}
std::string niah_question(const std::vector<std::string>& keys, bool several_values) {
  const std::string query = join_keys(keys);
  if (!several_values) {
    return "What is the special magic number for " + query + " mentioned in the provided text? The special magic "
           "number for " + query + " mentioned in the provided text is";
  }
  return "What are all the special magic numbers for " + query + " mentioned in the provided text? The special "
         "magic numbers for " + query + " mentioned in the provided text are";
}
}  // namespace probe_text

int64_t probe_min_length(ProbeKind kind, const ProbeParams& params) {
  if (kind == ProbeKind::kMqar) return 2 * params.needles * mqar_pair_tokens() - 1;  // a context pair per query
  SplitMix64 rng(0);
  return fixed_tokens(needle_layout(kind, params, 0.0, rng, /*widest=*/true));  // and no haystack
}

void require_probe_length(ProbeKind kind, const ProbeParams& params, int64_t length) {
  const int64_t minimum = probe_min_length(kind, params);
  if (length < minimum) {
    throw UserError("--lengths " + std::to_string(length) + ": too short for the " + probe_name(kind) +
                    " probe (its prompt and answers need at least " + std::to_string(minimum) + " tokens)");
  }
}

std::vector<ProbeTrial> probe_trials(ProbeKind kind, const ProbeParams& params, int64_t length,
                                     const TokenStream& natural_text) {
  require_probe_length(kind, params, length);
  std::vector<ProbeTrial> trials;
  const std::vector<double> depths = probe_has_depth(kind) ? params.depths : std::vector<double>{0.0};
  for (std::size_t d = 0; d < depths.size(); ++d) {
    for (int64_t t = 0; t < params.trials; ++t) {
      SplitMix64 rng(trial_seed(params.seed, kind, length, d, t));
      Assembled built;
      if (kind == ProbeKind::kMqar) {
        built = mqar_prompt(params, length, rng);
      } else {
        const PromptLayout layout = needle_layout(kind, params, depths[d], rng);
        const int64_t size = length - fixed_tokens(layout);
        const int64_t needed = size + int64_t(layout.needles.size()) + 1;
        const HaystackText hay = params.haystack == Haystack::kFixed ? fixed_haystack(needed)
                                                                     : natural_haystack(natural_text, needed, rng);
        built = assemble(layout, hay, size);
      }
      trials.push_back({depths[d], std::move(built.prompt), std::move(built.control), built.needle_begin});
    }
  }
  return trials;
}

void check_probe_params(const std::vector<ProbeKind>& kinds, const ProbeParams& params,
                        const std::vector<int64_t>& lengths) {
  if (kinds.empty()) return;
  if (params.depths.empty()) throw UserError("--depths: no depth given");
  for (double depth : params.depths) {
    if (!(depth >= 0.0 && depth <= 1.0)) {
      throw UserError("--depths: " + nlohmann::json(depth).dump() + " is outside [0, 1] (0: the needle first, 1: last)");
    }
  }
  if (std::set<double>(params.depths.begin(), params.depths.end()).size() != params.depths.size()) {
    throw UserError("--depths: a depth is given twice");
  }
  if (params.trials < 1) throw UserError("--trials " + std::to_string(params.trials) + " is not a positive count");
  if (params.needles < 1) throw UserError("--needles " + std::to_string(params.needles) + " is not a positive count");
  if (params.needles > kKeyCount) {
    throw UserError("--needles " + std::to_string(params.needles) + ": at most " + std::to_string(kKeyCount));
  }
  if (params.key_digits < 0 || params.key_digits > 9) {
    throw UserError("--key-digits " + std::to_string(params.key_digits) + " is not in 0..9 (0: keys 1..50000)");
  }
  for (ProbeKind kind : kinds) {
    for (int64_t length : lengths) require_probe_length(kind, params, length);
  }
}

nlohmann::json probe_json(ProbeKind kind, const ProbeParams& params) {
  nlohmann::json json = {{"name", probe_name(kind)}, {"trials", params.trials}, {"seed", params.seed},
                         {"kind", "probe"}};
  if (probe_has_depth(kind)) {
    json["depths"] = params.depths;
    json["haystack"] = params.haystack == Haystack::kFixed ? "fixed" : "natural";
  }
  if (kind == ProbeKind::kPasskey) json["key_digits"] = params.key_digits;
  if (kind != ProbeKind::kPasskey && kind != ProbeKind::kNiah) json["needles"] = params.needles;
  return json;
}

}  // namespace extrap
