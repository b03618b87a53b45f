#pragma once
// Synthetic length-generalization tasks (docs/data.md, "Task datasets"): generators of printable
// ASCII examples whose answer bytes are marked, and a checker per task that recomputes the answer
// from the rest of the example. Every task has a size parameter (items to copy, increments to
// count, digits, key-value pairs, haystack letters) that drives the example's token length.
// Torch-free.
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/random.h"

namespace extrap {

// One example: its bytes (one token each) and, per byte, 1 where it is an answer token that the
// loss must predict and exact match scores.
struct TaskExample {
  std::string text;
  std::vector<uint8_t> answer;
  int64_t size = 0;  // the task's size parameter
  int64_t tokens() const { return int64_t(text.size()); }
  std::string answer_text() const;  // the answer bytes, in order
};

// Integer task options, resolved: every parameter of the task with its value.
using TaskParams = std::map<std::string, int64_t>;

struct TaskParam {
  const char* name;
  int64_t default_value, min, max;
  const char* description;
};

// A registered task. Token lengths grow with the size: length_bounds(s) is the [min, max] token
// length of an example of size s (most tasks have one length per size).
struct TaskSpec {
  const char* name;
  const char* description;  // with a sample example
  const char* size_name;    // what the size counts
  const char* reference;
  int64_t min_size;
  std::vector<TaskParam> params;
  int64_t (*max_size)(const TaskParams&);  // 0: unbounded
  std::pair<int64_t, int64_t> (*length_bounds)(int64_t size, const TaskParams&);
  TaskExample (*generate)(int64_t size, const TaskParams&, SplitMix64&);
  // "" when the example is right: its answer mask and answer bytes are exactly what the prompt
  // asks for. Otherwise what is wrong.
  std::string (*check)(const TaskExample&, const TaskParams&);
};

const std::vector<TaskSpec>& registered_tasks();
// Throws UserError naming the task and the known ones.
const TaskSpec& find_task(const std::string& name);
// Defaults overlaid with `given` ("vocab" -> "10"); throws UserError for an unknown parameter of
// the task, a value that is not an integer or one out of its range.
TaskParams resolve_task_params(const TaskSpec& task, const std::map<std::string, std::string>& given);

// An inclusive range of example token lengths, "A:B" on the command line.
struct LengthRange {
  int64_t low = 0, high = 0;
  bool contains(int64_t length) const { return length >= low && length <= high; }
};
// "A:B" with 1 <= A <= B; throws UserError naming `option`.
LengthRange parse_length_range(const std::string& text, const std::string& option);

// The sizes whose examples can have a length in `range`, ascending; throws UserError naming
// `option` when there is none.
std::vector<int64_t> sizes_for_lengths(const TaskSpec& task, const TaskParams& params, LengthRange range,
                                       const std::string& option);
// An example with a length in `range`: a size drawn uniformly from `sizes`, then the generator,
// redrawn while the length falls outside the range (only sizes at the range's ends can miss it).
TaskExample generate_in_range(const TaskSpec& task, const TaskParams& params, const std::vector<int64_t>& sizes,
                              LengthRange range, SplitMix64& rng);

// The example with its answer in brackets: "abc|[abc]".
std::string render_task_example(const std::string& text, const std::vector<uint8_t>& answer);

}  // namespace extrap
