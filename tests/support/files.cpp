#include "files.hpp"

#include <stdlib.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

namespace nodeplane::testing {

std::size_t countOf(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  if (needle.empty()) return 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void writeFile(const std::filesystem::path& path, const std::string& text) {
  if (path.has_parent_path()) std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

void appendFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::app) << text;
}

std::filesystem::path sysfsFixture(const std::string& name) {
  return std::filesystem::path(NODEPLANE_SOURCE_DIR) / "tests/fixtures/sysfs" / name;
}

std::filesystem::path procFixture(const std::string& name) {
  return std::filesystem::path(NODEPLANE_SOURCE_DIR) / "tests/fixtures/proc" / name;
}

TempDir::TempDir() {
  std::string tmpl = "/tmp/nodeplane-test-XXXXXX";
  if (!::mkdtemp(tmpl.data()))
    throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace nodeplane::testing
