#include "data/tasks.h"

#include <algorithm>
#include <charconv>

#include "common/error.h"

namespace extrap {
namespace {

// ---- Building and reading examples ---------------------------------------------------------

// Appends prompt and answer parts in order.
struct ExampleBuilder {
  TaskExample example;
  explicit ExampleBuilder(int64_t size) { example.size = size; }
  void prompt(const std::string& text) { append(text, 0); }
  void answer(const std::string& text) { append(text, 1); }
  void append(const std::string& text, uint8_t mark) {
    example.text += text;
    example.answer.insert(example.answer.end(), text.size(), mark);
  }
};

int64_t draw(SplitMix64& rng, int64_t n) { return int64_t(rng.next() % uint64_t(n)); }

std::string random_letters(int64_t n, int64_t vocab, SplitMix64& rng) {
  std::string text;
  for (int64_t i = 0; i < n; ++i) text += char('a' + draw(rng, vocab));
  return text;
}

std::string random_digits(int64_t n, SplitMix64& rng) {
  std::string text;
  for (int64_t i = 0; i < n; ++i) text += char('0' + draw(rng, 10));
  return text;
}

bool is_letter(char c, int64_t vocab) { return c >= 'a' && c < 'a' + vocab; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool all_digits(const std::string& text) { return !text.empty() && std::all_of(text.begin(), text.end(), is_digit); }

// The example a checker expects, compared with the one given.
std::string compare(const TaskExample& given, const TaskExample& expected) {
  if (given.answer.size() != given.text.size()) return "the answer mask has another length than the text";
  if (given.text != expected.text) {
    return "answer \"" + given.answer_text() + "\" is wrong (expected \"" + expected.answer_text() + "\")";
  }
  if (given.answer != expected.answer) return "the answer mask does not mark exactly the answer bytes";
  return "";
}

// The prompt before the first '|' of an example, or "" with `error` set.
std::string before_bar(const TaskExample& example, std::string& error) {
  const auto bar = example.text.find('|');
  if (bar == std::string::npos || bar == 0) error = "no prompt before a '|'";
  return bar == std::string::npos ? "" : example.text.substr(0, bar);
}

const TaskParam kVocab{"vocab", 26, 2, 26, "alphabet size: the first K lowercase letters"};

// ---- copy, copy_sep, reverse: a letter string and its transformation after '|' ---------------

std::string joined(const std::string& letters) {
  std::string text;
  for (std::size_t i = 0; i < letters.size(); ++i) text += (i ? "," : "") + std::string(1, letters[i]);
  return text;
}

std::string reversed(std::string text) {
  std::reverse(text.begin(), text.end());
  return text;
}

std::pair<int64_t, int64_t> copy_lengths(int64_t n, const TaskParams&) { return {2 * n + 1, 2 * n + 1}; }
std::pair<int64_t, int64_t> copy_sep_lengths(int64_t n, const TaskParams&) { return {4 * n - 1, 4 * n - 1}; }

TaskExample string_example(const std::string& prompt, const std::string& answer, int64_t n) {
  ExampleBuilder b(n);
  b.prompt(prompt + "|");
  b.answer(answer);
  return b.example;
}

TaskExample copy_generate(int64_t n, const TaskParams& p, SplitMix64& rng) {
  const auto s = random_letters(n, p.at("vocab"), rng);
  return string_example(s, s, n);
}
TaskExample copy_sep_generate(int64_t n, const TaskParams& p, SplitMix64& rng) {
  const auto s = joined(random_letters(n, p.at("vocab"), rng));
  return string_example(s, s, n);
}
TaskExample reverse_generate(int64_t n, const TaskParams& p, SplitMix64& rng) {
  const auto s = random_letters(n, p.at("vocab"), rng);
  return string_example(s, reversed(s), n);
}

std::string check_letters(const std::string& prompt, int64_t vocab) {
  for (char c : prompt) {
    if (!is_letter(c, vocab)) return std::string("prompt byte '") + c + "' is not one of the first " + std::to_string(vocab) + " letters";
  }
  return "";
}

std::string copy_check(const TaskExample& e, const TaskParams& p) {
  std::string error;
  const auto prompt = before_bar(e, error);
  if (error.empty()) error = check_letters(prompt, p.at("vocab"));
  return error.empty() ? compare(e, string_example(prompt, prompt, 0)) : error;
}
std::string reverse_check(const TaskExample& e, const TaskParams& p) {
  std::string error;
  const auto prompt = before_bar(e, error);
  if (error.empty()) error = check_letters(prompt, p.at("vocab"));
  return error.empty() ? compare(e, string_example(prompt, reversed(prompt), 0)) : error;
}
std::string copy_sep_check(const TaskExample& e, const TaskParams& p) {
  std::string error;
  const auto prompt = before_bar(e, error);
  std::string letters;
  for (std::size_t i = 0; i < prompt.size(); i += 2) letters += prompt[i];
  if (error.empty() && joined(letters) != prompt) error = "the prompt is not letters separated by ','";
  if (error.empty()) error = check_letters(letters, p.at("vocab"));
  return error.empty() ? compare(e, string_example(prompt, prompt, 0)) : error;
}

// ---- mqar: key-value pairs, then queried keys whose values are the answers --------------------

int64_t queries_for(int64_t n, const TaskParams& p) { return std::min(n, p.at("queries")); }
int64_t mqar_max_size(const TaskParams& p) { return p.at("vocab"); }
std::pair<int64_t, int64_t> mqar_lengths(int64_t n, const TaskParams& p) {
  const int64_t length = 2 * n + 1 + 2 * queries_for(n, p);
  return {length, length};
}

TaskExample mqar_generate(int64_t n, const TaskParams& p, SplitMix64& rng) {
  std::string keys;
  for (int64_t k = 0; k < p.at("vocab"); ++k) keys += char('a' + k);
  for (int64_t i = 0; i < n; ++i) std::swap(keys[i], keys[i + draw(rng, int64_t(keys.size()) - i)]);
  keys.resize(n);
  const auto values = random_digits(n, rng);
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  const int64_t queries = queries_for(n, p);
  for (int64_t i = 0; i < queries; ++i) std::swap(order[i], order[i + draw(rng, n - i)]);
  ExampleBuilder b(n);
  for (int64_t i = 0; i < n; ++i) b.prompt({keys[i], values[i]});
  b.prompt("|");
  for (int64_t i = 0; i < queries; ++i) {
    b.prompt(std::string(1, keys[order[i]]));
    b.answer(std::string(1, values[order[i]]));
  }
  return b.example;
}

std::string mqar_check(const TaskExample& e, const TaskParams& p) {
  std::string error;
  const auto pairs = before_bar(e, error);
  if (!error.empty()) return error;
  if (pairs.size() % 2 != 0) return "the prompt is not key-value pairs";
  std::map<char, char> value_of;
  for (std::size_t i = 0; i < pairs.size(); i += 2) {
    if (!is_letter(pairs[i], p.at("vocab")) || !is_digit(pairs[i + 1]) || !value_of.emplace(pairs[i], pairs[i + 1]).second) {
      return "the prompt is not pairs of distinct keys and digit values";
    }
  }
  const std::string queries = e.text.substr(pairs.size() + 1);
  const auto n = int64_t(value_of.size());
  if (int64_t(queries.size()) != 2 * queries_for(n, p)) return "not " + std::to_string(queries_for(n, p)) + " queries";
  ExampleBuilder expected(n);
  expected.prompt(pairs + "|");
  std::string asked;
  for (std::size_t i = 0; i < queries.size(); i += 2) {
    const char key = queries[i];
    if (!value_of.count(key) || asked.find(key) != std::string::npos) return "query key is unknown or repeated";
    asked += key;
    expected.prompt(std::string(1, key));
    expected.answer(std::string(1, value_of.at(key)));
  }
  return compare(e, expected.example);
}

// ---- passkey: a digit string hidden in letters, asked for after '|' ---------------------------

std::pair<int64_t, int64_t> passkey_lengths(int64_t n, const TaskParams& p) {
  const int64_t length = n + 2 * p.at("digits") + 2;
  return {length, length};
}

TaskExample passkey_generate(int64_t n, const TaskParams& p, SplitMix64& rng) {
  const auto haystack = random_letters(n, 26, rng);
  const auto depth = draw(rng, n + 1);
  const auto key = random_digits(p.at("digits"), rng);
  ExampleBuilder b(n);
  b.prompt(haystack.substr(0, depth) + "=" + key + haystack.substr(depth) + "|");
  b.answer(key);
  return b.example;
}

std::string passkey_check(const TaskExample& e, const TaskParams& p) {
  std::string error;
  const auto prompt = before_bar(e, error);
  if (!error.empty()) return error;
  const auto digits = std::size_t(p.at("digits"));
  const auto needle = prompt.find('=');
  if (needle == std::string::npos || prompt.find('=', needle + 1) != std::string::npos) {
    return "the prompt has not exactly one '=' followed by the key";
  }
  const std::string key = prompt.substr(needle + 1, digits);
  std::string haystack = prompt.substr(0, needle) + prompt.substr(needle + 1 + digits);
  if (!all_digits(key) || key.size() != digits || haystack.empty() || !check_letters(haystack, 26).empty()) {
    return "the prompt is not letters around '=' and a " + std::to_string(digits) + "-digit key";
  }
  ExampleBuilder expected(int64_t(haystack.size()));
  expected.prompt(prompt + "|");
  expected.answer(key);
  return compare(e, expected.example);
}

// ---- counting: CoPE's variable counting, "a=0;b=0;a++;b++;a++;print a=" and the count ----------

int64_t digit_count(int64_t value) { return value < 10 ? 1 : 1 + digit_count(value / 10); }

std::pair<int64_t, int64_t> counting_lengths(int64_t n, const TaskParams& p) {
  const int64_t variables = p.at("variables"), fixed = 4 * variables + 4 * n + 8;
  // With one variable the count is n; with several it is anywhere in 0..n.
  return {fixed + digit_count(variables == 1 ? n : 0), fixed + digit_count(n)};
}

TaskExample counting_generate(int64_t n, const TaskParams& p, SplitMix64& rng) {
  const int64_t variables = p.at("variables");
  std::vector<int64_t> counts(variables, 0);
  ExampleBuilder b(n);
  for (int64_t v = 0; v < variables; ++v) b.prompt(std::string(1, char('a' + v)) + "=0;");
  for (int64_t i = 0; i < n; ++i) {
    const int64_t v = draw(rng, variables);
    ++counts[v];
    b.prompt(std::string(1, char('a' + v)) + "++;");
  }
  const int64_t printed = draw(rng, variables);
  b.prompt("print " + std::string(1, char('a' + printed)) + "=");
  b.answer(std::to_string(counts[printed]));
  return b.example;
}

std::string counting_check(const TaskExample& e, const TaskParams& p) {
  const auto print = e.text.rfind(";print ");
  if (print == std::string::npos || print + 8 >= e.text.size() || e.text[print + 8] != '=') {
    return "no \";print x=\" at the end";
  }
  std::map<char, int64_t> counts;
  int64_t increments = 0;
  std::size_t at = 0;
  ExampleBuilder expected(0);
  while (at <= print) {  // statements "x=0;" and "x++;"
    const std::string statement = e.text.substr(at, 4);
    const char name = statement[0];
    if (statement.size() == 4 && statement.substr(1) == "=0;" && is_letter(name, p.at("variables")) && !counts.count(name) && increments == 0) {
      counts[name] = 0;
    } else if (statement.size() == 4 && statement.substr(1) == "++;" && counts.count(name)) {
      ++counts[name];
      ++increments;
    } else {
      return "statement \"" + statement + "\" is not an initialisation or an increment of a declared variable";
    }
    at += 4;
  }
  const char printed = e.text[print + 7];
  if (int64_t(counts.size()) != p.at("variables") || !counts.count(printed) || at != print + 1) {
    return "not every variable is declared, or the printed one is unknown";
  }
  expected.prompt(e.text.substr(0, print + 9));
  expected.answer(std::to_string(counts[printed]));
  return compare(e, expected.example);
}

// ---- addition: two n-digit numbers and their (n+1)-digit sum ---------------------------------

std::pair<int64_t, int64_t> addition_lengths(int64_t n, const TaskParams&) { return {3 * n + 3, 3 * n + 3}; }

// The (n+1)-digit sum of two n-digit strings, most significant digit first.
std::string digit_sum(const std::string& a, const std::string& b) {
  std::string sum(a.size() + 1, '0');
  int carry = 0;
  for (std::size_t i = a.size(); i-- > 0;) {
    const int digit = (a[i] - '0') + (b[i] - '0') + carry;
    sum[i + 1] = char('0' + digit % 10);
    carry = digit / 10;
  }
  sum[0] = char('0' + carry);
  return sum;
}

TaskExample addition_example(const std::string& a, const std::string& b, const TaskParams& p) {
  ExampleBuilder builder(int64_t(a.size()));
  builder.prompt(a + "+" + b + "=");
  const auto sum = digit_sum(a, b);
  builder.answer(p.at("reversed") ? reversed(sum) : sum);
  return builder.example;
}

TaskExample addition_generate(int64_t n, const TaskParams& p, SplitMix64& rng) {
  const auto a = random_digits(n, rng);
  return addition_example(a, random_digits(n, rng), p);
}

std::string addition_check(const TaskExample& e, const TaskParams& p) {
  const auto plus = e.text.find('+'), equals = e.text.find('=');
  if (plus == std::string::npos || equals == std::string::npos || equals < plus) return "not \"A+B=\"";
  const std::string a = e.text.substr(0, plus), b = e.text.substr(plus + 1, equals - plus - 1);
  if (!all_digits(a) || !all_digits(b) || a.size() != b.size()) return "the operands are not two numbers of equal digits";
  return compare(e, addition_example(a, b, p));
}

int64_t unbounded(const TaskParams&) { return 0; }

}  // namespace

std::string TaskExample::answer_text() const {
  std::string text;
  for (std::size_t i = 0; i < this->text.size() && i < answer.size(); ++i) {
    if (answer[i]) text += this->text[i];
  }
  return text;
}

const std::vector<TaskSpec>& registered_tasks() {
  static const std::vector<TaskSpec> tasks = {
      {"addition", "n-digit addition with an (n+1)-digit sum: 0123+4567=[04690] (reversed=1: [09640])",
       "n digits per operand", "Lee et al. 2023 (reversed answers); Kazemnejad et al. 2023", 1,
       {{"reversed", 0, 0, 1, "1: the sum is written least significant digit first"}}, unbounded, addition_lengths,
       addition_generate, addition_check},
      {"copy", "copy n letters after '|': qvxk|[qvxk]", "n letters", "Kazemnejad et al. 2023; Ruoss et al. 2023", 1,
       {kVocab}, unbounded, copy_lengths, copy_generate, copy_check},
      {"copy_sep", "copy n comma-separated letters after '|': q,v,x|[q,v,x]", "n letters",
       "Kazemnejad et al. 2023 (copy); separators between items", 1, {kVocab}, unbounded, copy_sep_lengths,
       copy_sep_generate, copy_sep_check},
      {"counting", "CoPE's variable counting: a=0;b=0;a++;b++;a++;print a=[2]", "n increments",
       "Golovneva et al. 2024 (CoPE), counting task", 1,
       {{"variables", 2, 1, 26, "variables a, b, ... each initialised to 0; the increments pick one at random"}},
       unbounded, counting_lengths, counting_generate, counting_check},
      {"mqar", "multi-query associative recall: n key-digit pairs, then queried keys: a3c7f1|c[7]a[3]", "n pairs",
       "Arora et al. 2023 (Zoology, MQAR); Ba et al. 2016 (associative recall)", 1,
       {{"vocab", 26, 2, 26, "keys: the first K lowercase letters (n <= K)"},
        {"queries", 4, 1, 26, "keys queried (at most n), distinct, in random order"}},
       mqar_max_size, mqar_lengths, mqar_generate, mqar_check},
      {"passkey", "a d-digit key after '=' at a random depth in n random letters: xq=48213zmw|[48213]",
       "n haystack letters", "Mohtashami & Jaggi 2023 (passkey retrieval)", 1,
       {{"digits", 5, 1, 20, "digits of the key"}}, unbounded, passkey_lengths, passkey_generate, passkey_check},
      {"reverse", "reverse n letters after '|': qvxk|[kxvq]", "n letters", "Kazemnejad et al. 2023", 1, {kVocab},
       unbounded, copy_lengths, reverse_generate, reverse_check},
  };
  return tasks;
}

const TaskSpec& find_task(const std::string& name) {
  std::string known;
  for (const auto& task : registered_tasks()) {
    if (task.name == name) return task;
    known += (known.empty() ? "" : ", ") + std::string(task.name);
  }
  throw UserError("--task: unknown task '" + name + "' (known: " + known + ")");
}

TaskParams resolve_task_params(const TaskSpec& task, const std::map<std::string, std::string>& given) {
  TaskParams params;
  for (const auto& p : task.params) params[p.name] = p.default_value;
  for (const auto& [key, text] : given) {
    const auto found = std::find_if(task.params.begin(), task.params.end(), [&](const TaskParam& p) { return key == p.name; });
    if (found == task.params.end()) {
      std::string names;
      for (const auto& p : task.params) names += (names.empty() ? "" : ", ") + std::string(p.name);
      throw UserError("--param " + key + ": not a parameter of task " + task.name + " (its parameters: " +
                      (names.empty() ? "none" : names) + ")");
    }
    int64_t value = 0;
    const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (error != std::errc() || end != text.data() + text.size()) {
      throw UserError("--param " + key + "=" + text + ": not an integer");
    }
    if (value < found->min || value > found->max) {
      throw UserError("--param " + key + "=" + text + ": must be in [" + std::to_string(found->min) + ", " +
                      std::to_string(found->max) + "]");
    }
    params[key] = value;
  }
  return params;
}

LengthRange parse_length_range(const std::string& text, const std::string& option) {
  const auto colon = text.find(':');
  LengthRange range;
  const auto parse = [](const std::string& part, int64_t& value) {
    const auto [end, error] = std::from_chars(part.data(), part.data() + part.size(), value);
    return !part.empty() && error == std::errc() && end == part.data() + part.size();
  };
  if (colon == std::string::npos || !parse(text.substr(0, colon), range.low) || !parse(text.substr(colon + 1), range.high) ||
      range.low < 1 || range.low > range.high) {
    throw UserError(option + " " + text + ": expected A:B with 1 <= A <= B (example lengths in tokens)");
  }
  return range;
}

std::vector<int64_t> sizes_for_lengths(const TaskSpec& task, const TaskParams& params, LengthRange range,
                                       const std::string& option) {
  const int64_t max_size = task.max_size(params);
  std::vector<int64_t> sizes;
  for (int64_t s = task.min_size; (max_size == 0 || s <= max_size) && task.length_bounds(s, params).first <= range.high; ++s) {
    if (task.length_bounds(s, params).second >= range.low) sizes.push_back(s);
  }
  if (sizes.empty()) {
    const auto shortest = task.length_bounds(task.min_size, params).first;
    std::string limits = "the shortest has " + std::to_string(shortest) + " tokens";
    if (max_size > 0) limits += ", the longest " + std::to_string(task.length_bounds(max_size, params).second);
    throw UserError(option + " " + std::to_string(range.low) + ":" + std::to_string(range.high) + ": no " + task.name +
                    " example has a length in that range (" + limits + ")");
  }
  return sizes;
}

TaskExample generate_in_range(const TaskSpec& task, const TaskParams& params, const std::vector<int64_t>& sizes,
                              LengthRange range, SplitMix64& rng) {
  constexpr int kAttempts = 100000;
  for (int attempt = 0; attempt < kAttempts; ++attempt) {
    TaskExample example = task.generate(sizes[draw(rng, int64_t(sizes.size()))], params, rng);
    if (range.contains(example.tokens())) return example;
  }
  throw UserError(std::string("could not generate ") + task.name + " examples of " + std::to_string(range.low) + " to " +
                  std::to_string(range.high) + " tokens; widen the length range");
}

std::string render_task_example(const std::string& text, const std::vector<uint8_t>& answer) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const bool open = answer[i] && (i == 0 || !answer[i - 1]);
    const bool close = answer[i] && (i + 1 == text.size() || !answer[i + 1]);
    out += (open ? "[" : "") + std::string(1, text[i]) + (close ? "]" : "");
  }
  return out;
}

}  // namespace extrap
