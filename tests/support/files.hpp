// Temporary directories and small file helpers shared by every test tier.
#pragma once

#include <cstddef>
#include <filesystem>
#include <string>

namespace nodeplane::testing {

// The whole file, or "" when it cannot be read.
std::string slurp(const std::filesystem::path& p);

// Replaces `path` with `text`, making its parent directories first.
void writeFile(const std::filesystem::path& path, const std::string& text);

// Appends `text` to `path` (created when absent).
void appendFile(const std::filesystem::path& path, const std::string& text);

// How often `needle` occurs in `text` (overlapping occurrences counted): "said once" checks.
std::size_t countOf(const std::string& text, const std::string& needle);

// A sysfs fixture tree under tests/fixtures/sysfs/.
std::filesystem::path sysfsFixture(const std::string& name);
// A proc fixture tree under tests/fixtures/proc/ (absent for a case without one: a missing root).
std::filesystem::path procFixture(const std::string& name);

// A fresh directory under /tmp, removed with everything in it at the end of the test. Throws
// (failing the test with the reason) when it cannot be made.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& s) const { return path_ / s; }
  void write(const std::string& name, const std::string& text) const {
    writeFile(path_ / name, text);
  }

 private:
  std::filesystem::path path_;
};

}  // namespace nodeplane::testing
