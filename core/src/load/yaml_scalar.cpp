#include "yaml_scalar.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>

namespace nodeplane::yaml {
namespace {

bool isDigits(std::string_view s, int base) {
  if (s.empty()) return false;
  for (char c : s) {
    bool ok = base == 16 ? std::isxdigit(static_cast<unsigned char>(c)) != 0
                         : (c >= '0' && c < static_cast<char>('0' + base));
    if (!ok) return false;
  }
  return true;
}

// Integer text (without sign) in `base`: int64 when it fits, else uint64, else a float.
Json integerValue(std::string_view digits, int base, bool negative) {
  std::uint64_t u = 0;
  auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), u, base);
  if (ec == std::errc() && p == digits.data() + digits.size()) {
    constexpr auto kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    if (!negative) {
      if (u <= kMax) return static_cast<std::int64_t>(u);
      return u;
    }
    if (u <= kMax + 1) return static_cast<std::int64_t>(0 - u);
  }
  // Too large for 64 bits: keep the magnitude as a float, as most YAML readers do.
  double d = 0;
  for (char c : digits) {
    int v = std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : (std::tolower(c) - 'a' + 10);
    d = d * base + v;
  }
  return negative ? -d : d;
}

bool isFloatText(std::string_view s) {
  // [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
  std::size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  std::size_t intDigits = 0, fracDigits = 0;
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++intDigits;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++fracDigits;
  }
  if (intDigits == 0 && fracDigits == 0) return false;
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    std::size_t expDigits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i, ++expDigits;
    if (expDigits == 0) return false;
  }
  return i == s.size();
}

}  // namespace

Json resolvePlainScalar(std::string_view s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return nullptr;
  if (s == "true" || s == "True" || s == "TRUE") return true;
  if (s == "false" || s == "False" || s == "FALSE") return false;

  char c0 = s[0];
  if (!(std::isdigit(static_cast<unsigned char>(c0)) || c0 == '-' || c0 == '+' || c0 == '.')) {
    return std::string(s);
  }
  if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
    int base = s[1] == 'x' ? 16 : 8;
    if (isDigits(s.substr(2), base)) return integerValue(s.substr(2), base, false);
    return std::string(s);
  }
  std::string_view body = s;
  bool negative = false;
  if (body[0] == '-' || body[0] == '+') {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  if (isDigits(body, 10)) return integerValue(body, 10, negative);
  if (body == ".inf" || body == ".Inf" || body == ".INF") {
    return negative ? -std::numeric_limits<double>::infinity()
                    : std::numeric_limits<double>::infinity();
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") return std::numeric_limits<double>::quiet_NaN();
  if (isFloatText(s)) {
    double d = 0;
    std::string_view f = s[0] == '+' ? s.substr(1) : s;
    auto [p, ec] = std::from_chars(f.data(), f.data() + f.size(), d);
    if (p == f.data() + f.size() && (ec == std::errc() || ec == std::errc::result_out_of_range)) {
      return d;
    }
  }
  return std::string(s);
}

bool isSafePlainString(std::string_view s) {
  if (!resolvePlainScalar(s).is_string()) return false;
  static constexpr std::string_view kYaml11[] = {"y",  "Y",   "yes", "Yes", "YES", "n",
                                                 "N",  "no",  "No",  "NO",  "on",  "On",
                                                 "ON", "off", "Off", "OFF"};
  for (auto w : kYaml11) {
    if (s == w) return false;
  }
  // YAML 1.1's base 60: [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+(\.[0-9_]*)? reads as a number there.
  std::size_t i = (!s.empty() && (s[0] == '-' || s[0] == '+')) ? 1 : 0;
  auto digit = [&](std::size_t k) {
    return k < s.size() && std::isdigit(static_cast<unsigned char>(s[k]));
  };
  if (!digit(i)) return true;
  while (digit(i) || (i < s.size() && s[i] == '_')) ++i;
  int groups = 0;
  while (i < s.size() && s[i] == ':') {
    std::size_t k = i + 1, n = 0;
    while (digit(k) && n < 3) ++k, ++n;
    if (n == 0 || n > 2 || (n == 2 && s[i + 1] > '5')) return true;
    i = k;
    ++groups;
  }
  if (groups == 0) return true;
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (digit(i) || (i < s.size() && s[i] == '_')) ++i;
  }
  return i != s.size();
}

TextProblem checkEncoding(std::string_view text) {
  int line = 1;
  int column = 1;
  auto at = [&](std::string message) { return TextProblem{line, column, std::move(message)}; };
  auto hex = [](unsigned char c) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%02X", c);
    return std::string(buf);
  };
  std::size_t i = 0;
  // A UTF-8 byte order mark is allowed (and ignored by yaml-cpp).
  if (text.starts_with("\xEF\xBB\xBF")) i = 3;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '\n') {
        ++line;
        column = 1;
        ++i;
        continue;
      }
      if (c == 0) return at("binary data (NUL byte): not UTF-8 text");
      if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7F) {
        return at("binary data (control character " + hex(c) + "): not UTF-8 text");
      }
      ++i;
      ++column;
      continue;
    }
    int len = 0;
    std::uint32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
    } else {
      return at("not UTF-8 text (invalid byte " + hex(c) + ")");
    }
    for (int k = 1; k < len; ++k) {
      if (i + k >= text.size()) return at("not UTF-8 text (truncated sequence)");
      auto cc = static_cast<unsigned char>(text[i + k]);
      if ((cc & 0xC0) != 0x80) return at("not UTF-8 text (invalid byte " + hex(c) + ")");
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF.
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return at("not UTF-8 text (invalid sequence)");
    }
    i += len;
    ++column;
  }
  return {};
}

std::vector<TextProblem> findTabIndentation(std::string_view text) {
  std::vector<TextProblem> out;
  int lineNo = 0;
  // While inside a block scalar: the indentation of the line that introduced it. Content lines
  // are the blank ones and those indented deeper than that.
  int blockParent = -1;
  std::size_t pos = 0;
  while (pos <= text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    ++lineNo;
    pos = end + 1;

    std::size_t spaces = 0;
    while (spaces < line.size() && line[spaces] == ' ') ++spaces;
    std::size_t ws = spaces;
    while (ws < line.size() && (line[ws] == ' ' || line[ws] == '\t')) ++ws;
    bool blank = ws == line.size();

    if (blockParent >= 0) {
      if (blank || static_cast<int>(spaces) > blockParent) continue;
      blockParent = -1;
    }
    if (blank) continue;
    if (ws > spaces && line[ws] != '#') {
      out.push_back({lineNo, static_cast<int>(spaces) + 1,
                     "tab character in indentation (YAML allows only spaces)"});
    }
    // Does this line open a block scalar? `key: |`, `- >-`, `key: |2 # comment`, ...
    std::string_view rest = line;
    if (auto hash = rest.find(" #"); hash != std::string_view::npos) rest = rest.substr(0, hash);
    while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) rest.remove_suffix(1);
    std::size_t k = rest.size();
    while (k > 0 && (std::isdigit(static_cast<unsigned char>(rest[k - 1])) || rest[k - 1] == '-' ||
                     rest[k - 1] == '+')) {
      --k;
    }
    if (k > 0 && (rest[k - 1] == '|' || rest[k - 1] == '>') &&
        (k == 1 || rest[k - 2] == ' ' || rest[k - 2] == '\t')) {
      blockParent = static_cast<int>(spaces);
    }
    if (end == text.size()) break;
  }
  return out;
}

}  // namespace nodeplane::yaml
