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

// What one node costs in memory, roughly: the Json value and its place in the parent (a vector
// slot, or a map entry with its key's std::string). String characters are counted on top.
constexpr std::size_t kNodeBytes = 64;
// One entry of Document::locations: a map node, the path and a SourceLocation (its file name
// counted on top).
constexpr std::size_t kLocationBytes = 128;

// What one file's parse has spent, shared by the threads that parse its parts.
struct Budget {
  std::atomic<std::size_t> aliasBytes = 0;  // copies made for aliases and anchors
  std::atomic<std::size_t> bytes = 0;       // everything built: values, locations, copies
};

std::size_t scalarBytes(const Json& v) {
  return kNodeBytes + (v.is_string() ? v.get_ref<const std::string&>().size() : 0);
}

std::string byteCount(std::size_t n) {
  if (n >= 1024 * 1024 && n % (1024 * 1024) == 0) return std::to_string(n >> 20) + " MiB";
  return std::to_string(n) + " bytes";
}

const char* describeKind(const Json& v) {
  if (v.is_object()) return "a mapping";
  if (v.is_array()) return "a list";
  if (v.is_null()) return "null";
  return "a scalar";
}

// `s` cut to at most `n` bytes, not inside a UTF-8 sequence.
std::string utf8Prefix(const std::string& s, std::size_t n) {
  if (s.size() <= n) return s;
  while (n > 0 && (static_cast<unsigned char>(s[n]) & 0xC0) == 0x80) --n;
  return s.substr(0, n);
}

class JsonBuilder : public YAML::EventHandler {
 public:
  JsonBuilder(const std::string& file, const Limits& limits, int lineOffset, Budget& budget)
      : file_(file), limits_(limits), lineOffset_(lineOffset), budget_(budget) {}

  Document take() { return std::move(doc_); }

  void OnDocumentStart(const YAML::Mark& mark) override { doc_.where = loc(mark); }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    if (frames_.empty() || !frames_.back().expectingKey()) {
      placeScalar(mark, anchor, nullptr);
    } else {
      takeKey(loc(mark), "null");  // `~: x`, `null: x`: the text is gone; a key is a string
    }
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    if (!frames_.empty() && frames_.back().expectingKey()) {
      // `<<` written plain is the YAML 1.1 merge key; quoted, it is an ordinary key.
      takeKey(loc(mark), value, tag == "?" && value == "<<");
      return;
    }
    placeScalar(mark, anchor, resolve(mark, tag, value));
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    auto it = anchors_.find(anchor);
    if (it == anchors_.end()) throw LimitExceeded{mark, "unknown alias"};
    const Anchored& a = it->second;
    charge(mark, a.bytes);
    if (static_cast<int>(frames_.size()) + a.height > limits_.maxDepth) throwTooDeep(mark);
    if (!frames_.empty() && frames_.back().expectingKey()) {
      takeKey(loc(mark), a.value.is_string()
                             ? a.value.get<std::string>()
                             : a.value.dump(-1, ' ', false, Json::error_handler_t::replace));
      return;
    }
    const Frame* parent = frames_.empty() ? nullptr : &frames_.back();
    bool mergeSource = parent && (parent->isMap ? parent->mergeNext : parent->path.ends_with("<<"));
    Slot s = slot(mark);
    *s.node = a.value;
    // A merge source: its fields' locations are those of the anchored mapping.
    if (mergeSource) aliasOrigin_[s.path] = a.path;
    finishChild(a.bytes, a.height);
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
    std::unique_ptr<Json> merge;  // maps: the value of the merge key `<<`, merged at the end
    std::string path;
    SourceLocation where;
    YAML::Mark mark;
    SourceLocation mergeWhere;
    YAML::anchor_t anchor = 0;
    bool isMap = false;
    bool isKey = false;    // this container is a mapping key
    bool discard = false;  // inside a dropped value: record nothing
    bool haveKey = false;  // maps: a key was read, its value is next
    bool dropValue = false;
    bool mergeNext = false;  // maps: the key read is `<<`
    std::string key;
    SourceLocation keyWhere;
    std::size_t index = 0;           // sequences: next element
    std::size_t bytes = kNodeBytes;  // estimated size of this subtree
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
    std::string path;  // where it was written: the field locations of its copies are there
    std::size_t bytes = kNodeBytes;
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

  // Counts `bytes` copied by an alias or an anchor against the file's budget.
  void charge(const YAML::Mark& mark, std::size_t bytes) {
    if (budget_.aliasBytes.fetch_add(bytes, std::memory_order_relaxed) + bytes >
        limits_.maxAliasBytes) {
      throw LimitExceeded{mark, "aliases and anchors expand to more than " +
                                    byteCount(limits_.maxAliasBytes) +
                                    " (alias expansion limit; is this a \"billion laughs\" "
                                    "document?)"};
    }
    spend(mark, bytes);
  }

  // Counts `bytes` of memory the parsed file takes against its budget.
  void spend(const YAML::Mark& mark, std::size_t bytes) {
    if (budget_.bytes.fetch_add(bytes, std::memory_order_relaxed) + bytes > limits_.maxBytes) {
      throw LimitExceeded{mark, "the parsed file takes more than " + byteCount(limits_.maxBytes) +
                                    " of memory (values and their locations; memory limit per "
                                    "file: split it into several files)"};
    }
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
  void takeKey(SourceLocation where, std::string key, bool merge = false) {
    Frame& f = frames_.back();
    f.haveKey = true;
    f.dropValue = false;
    f.mergeNext = false;
    f.keyWhere = std::move(where);
    f.bytes += key.size();
    if (key.size() > limits_.maxKeyBytes) {
      f.key = utf8Prefix(key, 40) + "...";
      f.dropValue = true;
      if (!f.discard) {
        addError(f.keyWhere, join(f.path, f.key),
                 "a key of " + std::to_string(key.size()) + " bytes is longer than the limit of " +
                     byteCount(limits_.maxKeyBytes));
      }
      return;
    }
    f.key = std::move(key);
    if (merge) {
      f.mergeNext = !f.merge;
      if (!f.merge) return;
      f.dropValue = true;
      if (!f.discard) {
        addError(f.keyWhere, join(f.path, f.key),
                 "duplicate merge key \"<<\" (first at line " + std::to_string(f.mergeWhere.line) +
                     "); merge several mappings with <<: [*a, *b]");
      }
      return;
    }
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
    spend(mark, kNodeBytes + kLocationBytes + file_.size() + f.path.size() + f.key.size());
    if (f.isMap) {
      std::string path = join(f.path, f.key);
      bool discard = f.discard || f.dropValue;
      f.haveKey = false;
      if (f.mergeNext) {  // held apart, merged when the mapping ends
        f.mergeNext = false;
        f.merge = std::make_unique<Json>();
        f.mergeWhere = f.keyWhere;
        return Slot{f.merge.get(), std::move(path), f.discard};
      }
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
    if (value.is_string()) spend(mark, value.get_ref<const std::string&>().size());
    Slot s = slot(mark);
    *s.node = std::move(value);
    std::size_t bytes = scalarBytes(*s.node);
    if (anchor != 0) {
      charge(mark, bytes);
      anchors_[anchor] = Anchored{*s.node, std::move(s.path), bytes, 1};
    }
    finishChild(bytes, 1);
  }

  void finishChild(std::size_t bytes, int height) {
    if (frames_.empty()) return;
    Frame& f = frames_.back();
    f.bytes += bytes;
    if (height + 1 > f.height) f.height = height + 1;
  }

  // The field locations under `from` again under `to` (a merged field keeps the line it was
  // written on).
  void copyLocations(const YAML::Mark& mark, const std::string& from, const std::string& to) {
    std::vector<std::pair<std::string, SourceLocation>> found;
    auto& locations = doc_.locations;
    for (auto it = locations.lower_bound(from);
         it != locations.end() && it->first.starts_with(from); ++it) {
      std::string_view rest = std::string_view(it->first).substr(from.size());
      if (!rest.empty() && rest[0] != '.' && rest[0] != '[') continue;
      found.emplace_back(to + std::string(rest), it->second);
    }
    for (auto& [path, where] : found) {
      charge(mark, kNodeBytes + path.size());
      locations.emplace(std::move(path), std::move(where));
    }
  }

  // YAML 1.1 merge (https://yaml.org/type/merge.html): the keys of the `<<` mapping, or of each
  // mapping of a `<<` list in order, that the mapping does not have yet. Keys written in the
  // mapping win; in a list, an earlier mapping wins over a later one.
  void applyMerge(Frame& f) {
    Json& m = *f.merge;
    std::string base = join(f.path, "<<");
    std::vector<std::pair<Json*, std::string>> sources;  // (mapping, its path)
    if (m.is_array()) {
      for (std::size_t i = 0; i < m.size(); ++i) {
        sources.emplace_back(&m[i], base + "[" + std::to_string(i) + "]");
      }
    } else {
      sources.emplace_back(&m, base);
    }
    for (const auto& [src, path] : sources) {
      if (!src->is_object()) {
        if (!f.discard) {
          addError(f.mergeWhere, path,
                   "the merge key << takes a mapping or a list of mappings, got " +
                       std::string(describeKind(*src)));
        }
        return;
      }
    }
    for (const auto& [src, path] : sources) {
      std::string origin = path;
      if (auto it = aliasOrigin_.find(path); it != aliasOrigin_.end()) origin = it->second;
      for (auto& [key, value] : src->items()) {
        if (f.node->contains(key)) continue;
        if (!f.discard) copyLocations(f.mark, join(origin, key), join(f.path, key));
        (*f.node)[key] = std::move(value);
      }
    }
  }

  void open(const YAML::Mark& mark, YAML::anchor_t anchor, Json empty) {
    if (static_cast<int>(frames_.size()) >= limits_.maxDepth) throwTooDeep(mark);
    Frame f;
    f.isMap = empty.is_object();
    f.anchor = anchor;
    f.where = loc(mark);
    f.mark = mark;
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
    if (f.merge) applyMerge(f);
    if (f.anchor != 0) {
      charge(f.mark, f.bytes);
      anchors_[f.anchor] = Anchored{*f.node, f.path, f.bytes, f.height};
    }
    if (f.isKey) {
      addError(
          f.where, f.path,
          "a mapping key must be a string, got " + std::string(f.isMap ? "a mapping" : "a list"));
      takeKey(f.where, f.node->dump(-1, ' ', false, Json::error_handler_t::replace));
      return;
    }
    finishChild(f.bytes, f.height);
  }

  const std::string& file_;
  const Limits& limits_;
  int lineOffset_;  // lines before the text yaml-cpp sees
  Budget& budget_;  // shared by every document of the file
  Document doc_;
  std::vector<Frame> frames_;
  std::unordered_map<YAML::anchor_t, Anchored> anchors_;
  std::unordered_map<std::string, std::string> aliasOrigin_;  // merge source path -> anchor path
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
                  const Limits& limits, Budget& budget) {
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
        JsonBuilder builder(fileName, limits, line, budget);
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
  Budget budget;

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
    parts[i] =
        parseRange(text, starts[i].first, starts[i].second, end, markers, fileName, limits, budget);
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
