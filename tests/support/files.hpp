// Temporary directories and small file helpers shared by the unit and integration tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace nodeplane::testing {

inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void writeFile(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

#ifdef NODEPLANE_SOURCE_DIR
// A sysfs fixture tree under tests/fixtures/sysfs/.
inline std::filesystem::path sysfsFixture(const std::string& name) {
  return std::filesystem::path(NODEPLANE_SOURCE_DIR) / "tests/fixtures/sysfs" / name;
}
#endif

// A fresh directory under /tmp, removed with everything in it at the end of the test.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/nodeplane-test-XXXXXX";
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
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
