#include "data/corpus.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/files.h"

namespace extrap {

namespace {

// ---- Brown ----------------------------------------------------------------------------------

bool is_brown_file_name(const std::string& name) {
  return name.size() == 4 && name[0] == 'c' && name[1] >= 'a' && name[1] <= 'r' &&
         std::isdigit(static_cast<unsigned char>(name[2])) && std::isdigit(static_cast<unsigned char>(name[3]));
}

// `Atlanta's/np$` -> `Atlanta's`; the tag follows the last slash (words may contain slashes).
std::string brown_word(const std::string& token) {
  const auto slash = token.rfind('/');
  return slash == std::string::npos ? token : token.substr(0, slash);
}

bool is_closing_punctuation(const std::string& word) {
  return word.find_first_not_of(",.;:?!)]") == std::string::npos;
}

std::vector<std::string> sentence_words(const std::string& line) {
  std::istringstream tokens(line);
  std::vector<std::string> words;
  for (std::string token; tokens >> token;) {
    std::string word = brown_word(token);
    if (!word.empty()) words.push_back(std::move(word));
  }
  // These files repeat every sentence-final ; ? ! : token ("laws ;/. ;/."); keep one.
  const auto n = words.size();
  if (n >= 2 && words[n - 1] == words[n - 2] && is_closing_punctuation(words[n - 1])) words.pop_back();
  return words;
}

// One tagged sentence to plain text. Brown marks double quotes as `` (open) and '' (close);
// lone single quotes carry no direction, so they alternate open/close within the sentence.
std::string detag_sentence(const std::string& line) {
  std::string out;
  bool glue_next = false;
  bool single_quote_open = false;
  for (std::string word : sentence_words(line)) {
    bool attach_left = false;
    bool attach_right = false;
    if (word == "``") {
      word = "\"";
      attach_right = true;
    } else if (word == "''") {
      word = "\"";
      attach_left = true;
    } else if (word == "'") {
      (single_quote_open ? attach_left : attach_right) = true;
      single_quote_open = !single_quote_open;
    } else if (word == "(" || word == "[") {
      attach_right = true;
    } else if (is_closing_punctuation(word)) {
      attach_left = true;
    }
    if (!out.empty() && !glue_next && !attach_left) out += ' ';
    out += word;
    glue_next = attach_right;
  }
  return out;
}

// ---- KJV ------------------------------------------------------------------------------------

// Splits a `bible -f` label such as `Ge1:1` or `1Sa3:4` into its book abbreviation; returns
// false when the field is not a label.
bool parse_verse_label(const std::string& label, std::string& book) {
  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  const auto is_letter = [](char c) { return std::isalpha(static_cast<unsigned char>(c)) != 0; };
  std::size_t i = 0;
  if (i < label.size() && is_digit(label[i])) ++i;
  const std::size_t letters_begin = i;
  while (i < label.size() && is_letter(label[i])) ++i;
  if (i == letters_begin) return false;
  const std::size_t book_end = i;
  while (i < label.size() && is_digit(label[i])) ++i;
  if (i == book_end || i == label.size() || label[i] != ':') return false;
  const std::size_t verse_begin = ++i;
  while (i < label.size() && is_digit(label[i])) ++i;
  if (i == verse_begin || i != label.size()) return false;
  book = label.substr(0, book_end);
  return true;
}

std::string two_digits(std::size_t n) { return (n < 10 ? "0" : "") + std::to_string(n); }

// ---- Shared ---------------------------------------------------------------------------------

void require_regular_file(const fs::path& path, const std::string& what) {
  if (!fs::is_regular_file(path)) throw UserError(path.string() + ": " + what + " not found");
}

// A directory means its regular files with `extension` directly inside (not recursive), sorted;
// anything else must be one regular file, whatever its name.
std::vector<fs::path> input_files(const fs::path& path, const std::string& extension, const std::string& what) {
  if (!fs::is_directory(path)) {
    require_regular_file(path, what);
    return {path};
  }
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(path)) {
    if (entry.is_regular_file() && entry.path().extension() == extension) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string join(const std::vector<std::string>& items) {
  std::string joined;
  for (const auto& item : items) joined += (joined.empty() ? "" : ", ") + item;
  return joined;
}

// ---- JSON Lines -----------------------------------------------------------------------------

// At most 60 bytes of a value for an error message, cut at a UTF-8 character boundary.
std::string excerpt(std::string_view text) {
  constexpr std::size_t kLimit = 60;
  if (text.size() <= kLimit) return std::string(text);
  std::size_t cut = kLimit;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut)) + "...";
}

// nlohmann's "[json.exception.parse_error.101] parse error at line 1, column 9: syntax error ...";
// the line is always 1 (one JSON Lines line is parsed at a time), so the message keeps the column on.
std::string parse_problem(const nlohmann::json::parse_error& e) {
  const std::string what = e.what();
  const auto column = what.find("column ");
  return column == std::string::npos ? what : what.substr(column);
}

// "an array", "a number", ... for the errors.
std::string type_phrase(const nlohmann::json& value) {
  const std::string name = value.type_name();
  return value.is_null() ? name : (name[0] == 'a' || name[0] == 'o' ? "an " : "a ") + name;
}

// The text of one non-blank JSON Lines line; `where` is `file:line` for the errors.
std::string jsonl_text(std::string_view line, const std::string& field, const std::string& where) {
  nlohmann::json object;
  try {
    object = nlohmann::json::parse(line.begin(), line.end());
  } catch (const nlohmann::json::parse_error& e) {
    throw UserError(where + ": not valid JSON (" + parse_problem(e) + "): " + excerpt(line));
  }
  if (!object.is_object()) {
    throw UserError(where + ": expected a JSON object, got " + type_phrase(object) + ": " + excerpt(line));
  }
  const auto it = object.find(field);
  if (it == object.end()) {
    throw UserError(where + ": no \"" + field + "\" field (choose one with --text-field): " + excerpt(line));
  }
  if (!it->is_string()) {
    throw UserError(where + ": field \"" + field + "\" is " + type_phrase(*it) + " (" + excerpt(it->dump()) +
                    "), expected a string");
  }
  if (it->get_ref<const std::string&>().empty()) throw UserError(where + ": field \"" + field + "\" is an empty string");
  return it->get<std::string>();
}

// ---- Source code ----------------------------------------------------------------------------

// path::extension() is the part from the last dot, so only single-dot extensions can ever match.
void check_extensions(const std::vector<std::string>& extensions) {
  if (extensions.empty()) throw UserError("no file extensions given for the code corpus (such as .c,.h)");
  for (const auto& extension : extensions) {
    if (extension.size() < 2 || extension[0] != '.' || extension.find_first_of("./", 1) != std::string::npos) {
      throw UserError("extension \"" + extension + "\": expected a dot and a suffix without dots or slashes, such as .c");
    }
  }
}

// Relative paths (with /) of the regular files under root with one of the extensions, in byte
// order. Symbolic links are skipped, file or directory: they would repeat a file of the tree or
// reach outside it.
std::vector<std::string> source_file_names(const fs::path& root, const std::vector<std::string>& extensions) {
  std::vector<std::string> names;
  try {
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      const auto extension = entry.path().extension().string();
      if (entry.is_regular_file() && !entry.is_symlink() &&
          std::find(extensions.begin(), extensions.end(), extension) != extensions.end()) {
        names.push_back(entry.path().lexically_relative(root).generic_string());
      }
    }
  } catch (const fs::filesystem_error& e) {
    throw UserError(root.string() + ": cannot read the source tree: " + e.what());
  }
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

std::string detag_brown(const std::string& tagged) {
  std::string text;
  for (const auto& line : split_lines(tagged)) {
    const std::string sentence = detag_sentence(line);
    if (!sentence.empty()) text += sentence + "\n";
  }
  return text;
}

std::vector<RawDocument> read_brown(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw UserError(dir.string() + ": Brown corpus directory not found");
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file() && is_brown_file_name(entry.path().filename().string())) files.push_back(entry.path());
  }
  if (files.empty()) throw UserError(dir.string() + ": no Brown corpus files (ca01 ... cr09) found");
  std::sort(files.begin(), files.end());
  std::vector<RawDocument> docs;
  for (const auto& file : files) docs.push_back({file.filename().string(), detag_brown(read_text_file(file))});
  return docs;
}

std::vector<RawDocument> read_kjv(const fs::path& file) {
  require_regular_file(file, "KJV text (the output of `bible -f gen1:1-rev22:21`)");
  std::vector<RawDocument> docs;
  std::map<std::string, std::size_t> doc_of_book;
  for (const auto& line : split_lines(read_text_file(file))) {
    const auto label_end = line.find_first_of(" \t");
    std::string book;
    if (!parse_verse_label(line.substr(0, label_end), book)) continue;
    const auto text_begin = label_end == std::string::npos ? line.size() : line.find_first_not_of(" \t", label_end);
    const auto [it, is_new] = doc_of_book.emplace(book, docs.size());
    if (is_new) docs.push_back({two_digits(docs.size() + 1) + "_" + book, ""});
    if (text_begin != std::string::npos) docs[it->second].text += line.substr(text_begin);
    docs[it->second].text += "\n";
  }
  if (docs.empty()) throw UserError(file.string() + ": no verses found (expected lines like `Ge1:1 In the beginning ...`)");
  return docs;
}

std::vector<RawDocument> read_text(const fs::path& path) {
  std::vector<RawDocument> docs;
  for (const auto& file : input_files(path, ".txt", "text file or directory")) {
    std::string text = read_text_file(file);
    if (!text.empty()) docs.push_back({file.filename().string(), std::move(text)});
  }
  if (docs.empty()) throw UserError(path.string() + ": no non-empty text documents found");
  return docs;
}

std::vector<RawDocument> read_jsonl(const fs::path& path, const std::string& text_field) {
  std::vector<RawDocument> docs;
  for (const auto& file : input_files(path, ".jsonl", "JSON Lines file or directory")) {
    const std::string content = read_text_file(file);
    std::size_t line_number = 0;
    for (std::size_t begin = 0; begin < content.size();) {
      const auto end = std::min(content.find('\n', begin), content.size());
      std::string_view line(content.data() + begin, end - begin);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      ++line_number;
      begin = end + 1;
      if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;  // JSON's whitespace
      const std::string where = file.string() + ":" + std::to_string(line_number);
      docs.push_back({file.filename().string() + ":" + std::to_string(line_number), jsonl_text(line, text_field, where)});
    }
  }
  if (docs.empty()) throw UserError(path.string() + ": no JSON Lines documents found");
  return docs;
}

std::vector<RawDocument> read_code(const fs::path& root, const std::vector<std::string>& extensions) {
  check_extensions(extensions);
  if (!fs::is_directory(root)) throw UserError(root.string() + ": source directory not found");
  std::vector<RawDocument> docs;
  for (auto& name : source_file_names(root, extensions)) {
    std::string text = read_text_file(root / name);
    docs.push_back({std::move(name), std::move(text)});
  }
  if (docs.empty()) throw UserError(root.string() + ": no files with the extensions " + join(extensions) + " found");
  return docs;
}

}  // namespace extrap
