#pragma once
#include <cstdint>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace extrap {

namespace fs = std::filesystem;

std::string read_text_file(const fs::path& path);
nlohmann::json read_json_file(const fs::path& path);

// Writes via a temporary file in the same directory, fsync and rename, so a crash or Ctrl-C
// leaves either the old file or the new one, never a torn one.
void write_file_atomic(const fs::path& path, const std::string& contents);
void write_json_atomic(const fs::path& path, const nlohmann::json& value);
// Throws UserError("<what> <path>: ...") unless `path` can be written as a file (its directory is
// created when missing): checked before long work whose result goes there.
void check_writable_file(const fs::path& path, const std::string& what);

// Makes a file or directory written under a temporary name durable, then renames it into place.
void fsync_path(const fs::path& path);
void rename_durable(const fs::path& from, const fs::path& to);

// FNV-1a 64-bit over a byte range, as 16 hex digits: the dataset checksum.
std::string fnv1a64_hex(const void* data, std::size_t size);

std::string utc_timestamp();

}  // namespace extrap
