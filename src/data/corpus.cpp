#include "data/corpus.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>

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

void require_regular_file(const fs::path& path, const std::string& what) {
  if (!fs::is_regular_file(path)) throw UserError(path.string() + ": " + what + " not found");
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
  std::vector<fs::path> files;
  if (fs::is_directory(path)) {
    for (const auto& entry : fs::directory_iterator(path)) {
      if (entry.is_regular_file() && entry.path().extension() == ".txt") files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
  } else {
    require_regular_file(path, "text file or directory");
    files.push_back(path);
  }
  std::vector<RawDocument> docs;
  for (const auto& file : files) {
    std::string text = read_text_file(file);
    if (!text.empty()) docs.push_back({file.filename().string(), std::move(text)});
  }
  if (docs.empty()) throw UserError(path.string() + ": no non-empty text documents found");
  return docs;
}

}  // namespace extrap
