#include "yaml_events.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <algorithm>
#include <atomic>
#include <istream>
#include <memory>
#include <streambuf>
#include <thread>
#include <unordered_map>
#include <utility>

#include "yaml_scalar.hpp"

namespace nodeplane::yaml {
namespace {

constexpr std::string_view kTagPrefix = "tag:yaml.org,2002:";

// Reads a string_view in place: yaml-cpp wants an istream, and copying a large file is a waste.
class ViewBuf : public std::streambuf {
 public:
  explicit ViewBuf(std::string_view s) {
    char* p = const_cast<char*>(s.data());
    setg(p, p, p + s.size());
  }
};

// Thrown from inside the handler to stop yaml-cpp when a limit is hit.
struct LimitExceeded {
  YAML::Mark mark;
  std::string message;
};

class JsonBuilder : public YAML::EventHandler {
 public:
  JsonBuilder(const std::string& file, const Limits& limits, int lineOffset,
              std::atomic<std::size_t>& aliasNodes)
      : file_(file), limits_(limits), lineOffset_(lineOffset), aliasNodes_(aliasNodes) {}

  Document take() { return std::move(doc_); }

  void OnDocumentStart(const YAML::Mark& mark) override { doc_.where = loc(mark); }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (frames_.empty() || !frames_.back().expectingKey()) {
      placeScalar(mark, anchor, nullptr);
    } else {
      takeKey(mark, "null");  // `~: x`, `null: x`: the text is gone; a key is a string
    }
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (!frames_.empty() && frames_.back().expectingKey()) {
      takeKey(mark, value);
      return;
    }
    placeScalar(mark, anchor, resolve(mark, tag, value));
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) throw LimitExceeded{mark, "unknown alias"};
    const Anchored& a = it->second;
    if (aliasNodes_.fetch_add(a.nodes) + a.nodes > limits_.maxAliasNodes) {
      throw LimitExceeded{mark, "aliases expand to more than " +
                                    std::to_string(limits_.maxAliasNodes) +
                                    " nodes (alias expansion limit; is this a \"billion laughs\" "
                                    "document?)"};
    }
    if (static_cast<int>(frames_.size()) + a.height > limits_.maxDepth) throwTooDeep(mark);
    if (!frames_.empty() && frames_.back().expectingKey()) {
      takeKey(mark, a.value.is_string()
                        ? a.value.get<std::string>()
                        : a.value.dump(-1, ' ', false, Json::error_handler_t::replace));
      return;
    }
    Slot s = slot(mark);
    *s.node = a.value;
    finishChild(a.nodes, a.height);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value) override {
    checkContainerTag(mark, tag, "seq");
    open(mark, anchor, Json::array());
  }
  void OnSequenceEnd() override { close(); }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value) override {
    checkContainerTag(mark, tag, "map");
    open(mark, anchor, Json::object());
  }
  void OnMapEnd() override { close(); }

 private:
  struct Frame {
    Json* node = nullptr;
    std::unique_ptr<Json> owned;  // a key node, or a value dropped because its key is a duplicate
    std::string path;
    SourceLocation where;
    YAML::anchor_t anchor = 0;
    bool isMap = false;
    bool isKey = false;    // this container is a mapping key
    bool discard = false;  // inside a dropped value: record nothing
    bool haveKey = false;  // maps: a key was read, its value is next
    bool dropValue = false;
    std::string key;
    SourceLocation keyWhere;
    std::size_t index = 0;  // sequences: next element
    std::size_t nodes = 1;  // nodes in this subtree
    int height = 1;

    bool expectingKey() const { return isMap && !haveKey; }
  };
  struct Slot {
    Json* node;
    std::string path;
    bool discard;
  };
  struct Anchored {
    Json value;
    std::size_t nodes = 1;
    int height = 1;
  };

  SourceLocation loc(const YAML::Mark& m) const {
    return SourceLocation{file_, lineOffset_ + m.line + 1, m.column + 1};
  }

  void addError(const SourceLocation& where, std::string field, std::string message) {
    Error e;
    e.kind = ErrorKind::kInvalidInput;
    e.where = where;
    e.field = std::move(field);
    e.message = std::move(message);
    doc_.errors.push_back(std::move(e));
  }

  [[noreturn]] void throwTooDeep(const YAML::Mark& mark) const {
    throw LimitExceeded{mark, "nesting deeper than " + std::to_string(limits_.maxDepth) +
                                  " levels (nesting depth limit)"};
  }

  Json resolve(const YAML::Mark& mark, const std::string& tag, const std::string& value) {
    if (tag == "?") return resolvePlainScalar(value);
    if (tag == "!") return value;  // quoted, or the non-specific tag `! x`: always a string
    if (tag.starts_with(kTagPrefix)) {
      std::string_view t = std::string_view(tag).substr(kTagPrefix.size());
      if (t == "str" || t == "binary" || t == "timestamp") return value;
      Json v = resolvePlainScalar(value);
      bool ok = (t == "null" && v.is_null()) || (t == "bool" && v.is_boolean()) ||
                (t == "int" && v.is_number_integer()) || (t == "float" && v.is_number());
      if (t == "float" && v.is_number_integer()) v = v.get<double>();
      if (ok) return v;
      addError(loc(mark), currentPath(), "\"" + value + "\" is not a valid !!" + std::string(t));
      return value;
    }
    addError(loc(mark), currentPath(), "unsupported tag \"" + tag + "\"");
    return value;
  }

  void checkContainerTag(const YAML::Mark& mark, const std::string& tag, std::string_view kind) {
    if (tag.empty() || tag == "?" || tag == "!" ||
        tag == std::string(kTagPrefix) + std::string(kind)) {
      return;
    }
    addError(loc(mark), currentPath(), "unsupported tag \"" + tag + "\"");
  }

  // The path the next value would get (for errors raised before it is placed).
  std::string currentPath() const {
    if (frames_.empty()) return {};
    const Frame& f = frames_.back();
    if (f.isMap) return f.haveKey ? join(f.path, f.key) : f.path;
    return f.path + "[" + std::to_string(f.index) + "]";
  }

  static std::string join(const std::string& path, const std::string& key) {
    return path.empty() ? key : path + "." + key;
  }

  // A key was read for the mapping on top of the stack.
  void takeKey(const YAML::Mark& mark, std::string key) { takeKey(loc(mark), std::move(key)); }
  void takeKey(SourceLocation where, std::string key) {
    Frame& f = frames_.back();
    f.haveKey = true;
    f.dropValue = false;
    f.keyWhere = std::move(where);
    f.key = std::move(key);
    if (f.node->contains(f.key)) {
      f.dropValue = true;
      if (!f.discard) {
        std::string path = join(f.path, f.key);
        std::string first;
        if (auto it = doc_.locations.find(path); it != doc_.locations.end()) {
          first = " (first at line " + std::to_string(it->second.line) + ")";
        }
        addError(f.keyWhere, path, "duplicate key \"" + f.key + "\"" + first);
      }
    }
  }

  // Where the next value goes: the document root, the pending key of a mapping, or the end of a
  // sequence. Records its location.
  Slot slot(const YAML::Mark& mark) {
    if (frames_.empty()) {
      doc_.where = loc(mark);  // the root node, not the `---` line
      return Slot{&doc_.value, {}, false};
    }
    Frame& f = frames_.back();
    if (f.isMap) {
      std::string path = join(f.path, f.key);
      bool discard = f.discard || f.dropValue;
      f.haveKey = false;
      if (discard) {
        scratch_ = nullptr;
        return Slot{&scratch_, std::move(path), true};
      }
      doc_.locations.emplace(path, f.keyWhere);
      Json* node = &(*f.node)[f.key];
      return Slot{node, std::move(path), false};
    }
    std::string path = f.path + "[" + std::to_string(f.index++) + "]";
    if (!f.discard) doc_.locations.emplace(path, loc(mark));
    f.node->push_back(nullptr);
    return Slot{&f.node->back(), std::move(path), f.discard};
  }

  void placeScalar(const YAML::Mark& mark, YAML::anchor_t anchor, Json value) {
    Slot s = slot(mark);
    *s.node = std::move(value);
    if (anchor != 0) anchors_[anchor] = Anchored{*s.node, 1, 1};
    finishChild(1, 1);
  }

  void finishChild(std::size_t nodes, int height) {
    if (frames_.empty()) return;
    Frame& f = frames_.back();
    f.nodes += nodes;
    if (height + 1 > f.height) f.height = height + 1;
  }

  void open(const YAML::Mark& mark, YAML::anchor_t anchor, Json empty) {
    if (static_cast<int>(frames_.size()) >= limits_.maxDepth) throwTooDeep(mark);
    Frame f;
    f.isMap = empty.is_object();
    f.anchor = anchor;
    f.where = loc(mark);
    if (!frames_.empty() && frames_.back().expectingKey()) {
      f.isKey = true;
      f.discard = true;
      f.owned = std::make_unique<Json>(std::move(empty));
      f.node = f.owned.get();
      f.path = frames_.back().path;
    } else {
      Slot s = slot(mark);
      if (s.discard) {
        f.discard = true;
        f.owned = std::make_unique<Json>(std::move(empty));
        f.node = f.owned.get();
      } else {
        *s.node = std::move(empty);
        f.node = s.node;
      }
      f.path = std::move(s.path);
    }
    frames_.push_back(std::move(f));
  }

  void close() {
    Frame f = std::move(frames_.back());
    frames_.pop_back();
    if (f.anchor != 0) anchors_[f.anchor] = Anchored{*f.node, f.nodes, f.height};
    if (f.isKey) {
      addError(
          f.where, f.path,
          "a mapping key must be a string, got " + std::string(f.isMap ? "a mapping" : "a list"));
      takeKey(f.where, f.node->dump(-1, ' ', false, Json::error_handler_t::replace));
      return;
    }
    finishChild(f.nodes, f.height);
  }

  const std::string& file_;
  const Limits& limits_;
  int lineOffset_;                        // lines before the text yaml-cpp sees
  std::atomic<std::size_t>& aliasNodes_;  // shared by every document of the file
  Document doc_;
  std::vector<Frame> frames_;
  std::unordered_map<YAML::anchor_t, Anchored> anchors_;
  Json scratch_;
};

// A `---` line: it starts a document wherever it is (YAML forbids it inside scalars), so the text
// can be cut there, to resume after a syntax error and to parse large files on several threads.
struct Marker {
  std::size_t offset = 0;
  int line = 0;  // 0-based
};

// The document markers of `text`; none when the text has directives (`%YAML`, `%TAG`), which
// belong to the document after them and would be cut off.
std::vector<Marker> documentMarkers(std::string_view text) {
  std::vector<Marker> out;
  int line = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view l = text.substr(pos, end - pos);
    if (l.starts_with('%')) return {};
    if (l.starts_with("---") && (l.size() == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\r')) {
      out.push_back({pos, line});
    }
    pos = end + 1;
    ++line;
  }
  return out;
}

// Parses text[begin, end) (starting at line `line`); after a syntax error or a limit, goes on at
// the next document marker.
Stream parseRange(std::string_view text, std::size_t begin, int line, std::size_t end,
                  const std::vector<Marker>& markers, const std::string& fileName,
                  const Limits& limits, std::atomic<std::size_t>& aliasNodes) {
  Stream out;
  while (begin < end) {
    ViewBuf buf(text.substr(begin, end - begin));
    std::istream in(&buf);
    int errorLine = -1;
    auto fatal = [&](const YAML::Mark& m, std::string message) {
      Error e;
      e.kind = ErrorKind::kInvalidInput;
      e.where.file = fileName;
      if (!m.is_null()) {
        e.where.line = line + m.line + 1;
        e.where.column = m.column + 1;
        errorLine = line + m.line;
      }
      e.message = std::move(message);
      out.errors.push_back(std::move(e));
    };
    try {
      YAML::Parser parser(in);
      for (;;) {
        JsonBuilder builder(fileName, limits, line, aliasNodes);
        try {
          if (!parser.HandleNextDocument(builder)) break;
        } catch (const LimitExceeded& e) {
          fatal(e.mark, e.message);
          break;
        }
        out.documents.push_back(builder.take());
      }
    } catch (const YAML::Exception& e) {
      fatal(e.mark, "YAML syntax error: " + e.msg);
    }
    if (errorLine < 0) break;
    // Resume at the first document marker from the error on (it may be the error itself:
    // yaml-cpp does not end a flow collection at `---`).
    auto next = std::find_if(markers.begin(), markers.end(), [&](const Marker& m) {
      return m.line >= errorLine && m.offset > begin;
    });
    if (next == markers.end() || next->offset >= end) break;
    begin = next->offset;
    line = next->line;
  }
  return out;
}

}  // namespace

Stream parseStream(std::string_view text, const std::string& fileName, const Limits& limits) {
  std::vector<Marker> markers = documentMarkers(text);
  std::atomic<std::size_t> aliasNodes = 0;

  // Large files: cut at document markers into about equal parts, one thread each. yaml-cpp scans
  // a few MB/s, so a 10 000-document file takes a second on one core.
  constexpr std::size_t kMinChunkBytes = 256 * 1024;
  unsigned threads = std::clamp(std::thread::hardware_concurrency(), 1u, 8u);
  threads = std::min<std::size_t>(threads, text.size() / kMinChunkBytes);
  std::vector<std::pair<std::size_t, int>> starts = {{0, 0}};  // (offset, line) of each part
  for (unsigned k = 1; k < threads && !markers.empty(); ++k) {
    std::size_t target = text.size() * k / threads;
    auto it = std::lower_bound(markers.begin(), markers.end(), target,
                               [](const Marker& m, std::size_t t) { return m.offset < t; });
    if (it != markers.end() && it->offset > starts.back().first) {
      starts.push_back({it->offset, it->line});
    }
  }
  std::vector<Stream> parts(starts.size());
  auto run = [&](std::size_t i) {
    std::size_t end = i + 1 < starts.size() ? starts[i + 1].first : text.size();
    parts[i] = parseRange(text, starts[i].first, starts[i].second, end, markers, fileName, limits,
                          aliasNodes);
  };
  if (parts.size() == 1) {
    run(0);
  } else {
    std::vector<std::jthread> workers;
    for (std::size_t i = 1; i < parts.size(); ++i) workers.emplace_back(run, i);
    run(0);
  }

  Stream out;
  for (auto& p : parts) {
    for (auto& d : p.documents) out.documents.push_back(std::move(d));
    for (auto& e : p.errors) out.errors.push_back(std::move(e));
  }
  for (std::size_t i = 0; i < out.documents.size(); ++i) {
    out.documents[i].index = static_cast<int>(i) + 1;
  }
  return out;
}

}  // namespace nodeplane::yaml
