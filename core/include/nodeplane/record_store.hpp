// A plugin's ownership records: one JSON object per object it took, <dir>/<name>.json, for the
// objects that cannot carry a mark of their own (a PCI function's driver, a VF count, a vGPU).
// The name is the resource's: a new record takes only a plain file name (recordNameProblem),
// and no call reaches outside the directory ("../x", "a/b"); a record written under an older,
// looser rule can still be read and removed. Writes are atomic and durable
// (writeFileAtomically); a listing skips the .tmp file of an interrupted write. What a record
// holds is its kind's business: the store reads and writes JSON, and the kind checks that what
// it read is a record of its own (saying what to do when it is not).
#pragma once

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "nodeplane/error.hpp"
#include "nodeplane/plugin_util.hpp"
#include "nodeplane/resource.hpp"

namespace nodeplane {

// "" when `name` can name a record file: 1 to 200 letters, digits, '.', '_' or '-', not starting
// with '.'; otherwise what is wrong with it.
inline std::string recordNameProblem(const std::string& name) {
  if (name.empty()) return "it is empty";
  if (name.size() > 200) return "it is longer than 200 characters";
  if (name[0] == '.') return "it starts with '.'";
  for (char c : name)  // ASCII, whatever the locale
    if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z') && !(c >= '0' && c <= '9') && c != '.' &&
        c != '_' && c != '-')
      return "it has a character other than letters, digits, '.', '_' and '-'";
  return "";
}

class RecordStore {
 public:
  // `what` names a record in messages: "VfioDevice record".
  RecordStore(std::filesystem::path dir, std::string what)
      : dir_(std::move(dir)), what_(std::move(what)) {}

  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path path(const std::string& name) const { return dir_ / (name + ".json"); }

  // nullopt when there is none; an error when the name is not a file name or the file cannot be
  // read. Text that is not JSON reads as a discarded value.
  Result<std::optional<Json>> read(const std::string& name) const {
    if (auto bad = checkName(name, false); !bad) return std::unexpected(bad.error());
    std::error_code ec;
    if (!std::filesystem::exists(path(name), ec)) return std::optional<Json>();
    auto j = parse(path(name));
    if (!j) return std::unexpected(j.error());
    return std::optional<Json>(std::move(*j));
  }

  // Every record as (name, JSON), sorted by name.
  Result<std::vector<std::pair<std::string, Json>>> list() const {
    std::vector<std::pair<std::string, Json>> out;
    std::error_code ec;
    if (!std::filesystem::exists(dir_, ec)) return out;
    for (std::filesystem::directory_iterator it(dir_, ec);
         !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
      const std::filesystem::path p = it->path();
      if (p.extension() != ".json") continue;  // the .tmp file of an interrupted write
      auto j = parse(p);
      if (!j) return std::unexpected(j.error());
      out.emplace_back(p.stem().string(), std::move(*j));
    }
    if (ec) return fail(ErrorKind::kTerminal, "cannot list " + dir_.string() + ": " + ec.message());
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.first < b.first; });
    return out;
  }

  Result<void> write(const std::string& name, const Json& record) const {
    if (auto bad = checkName(name, true); !bad) return bad;
    return writeFileAtomically(path(name), record.dump(2) + "\n");
  }

  Result<void> remove(const std::string& name) const {
    if (auto bad = checkName(name, false); !bad) return bad;
    std::error_code ec;
    std::filesystem::remove(path(name), ec);
    if (ec)
      return fail(ErrorKind::kTerminal,
                  "cannot remove " + path(name).string() + ": " + ec.message());
    return {};
  }

  // A record's identity: 16 random hex digits.
  static std::string newUid() {
    std::random_device rd;
    std::uniform_int_distribution<int> hex(0, 15);
    std::string s;
    for (int i = 0; i < 16; ++i) s += "0123456789abcdef"[hex(rd)];
    return s;
  }

 private:
  // strict: a plain file name; else only what stays in the directory (not empty, no '/' or NUL,
  // not "." or "..").
  Result<void> checkName(const std::string& name, bool strict) const {
    std::string problem;
    if (strict)
      problem = recordNameProblem(name);
    else if (name.empty() || name == "." || name == ".." ||
             name.find_first_of(std::string("/\0", 2)) != std::string::npos)
      problem = "it would name a file outside " + dir_.string();
    if (!problem.empty())
      return fail(ErrorKind::kTerminal,
                  "no " + what_ + " for the name \"" + name + "\": " + problem);
    return {};
  }

  Result<Json> parse(const std::filesystem::path& p) const {
    std::ifstream in(p);
    if (!in) return fail(ErrorKind::kTerminal, "cannot read " + p.string());
    std::stringstream text;
    text << in.rdbuf();
    return Json::parse(text.str(), nullptr, false);
  }

  std::filesystem::path dir_;
  std::string what_;
};

}  // namespace nodeplane
