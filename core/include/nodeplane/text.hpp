// Text that came from files or the host (interface names, field values, kernel messages) on its
// way to a terminal, a log or a message: the one place that decides what is shown escaped.
// Header-only so plugins and the core use the same rules; no type of the ABI is defined here.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace nodeplane {

// Length of the valid UTF-8 sequence (RFC 3629: no overlong forms, no surrogates, nothing above
// U+10FFFF) that starts at s[i], or 0 when none starts there.
inline std::size_t utf8SequenceLength(std::string_view s, std::size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  const std::size_t len = (c & 0xe0) == 0xc0   ? 2
                          : (c & 0xf0) == 0xe0 ? 3
                          : (c & 0xf8) == 0xf0 ? 4
                                               : 0;
  if (len == 0 || i + len > s.size()) return 0;
  char32_t cp = c & (0x7f >> len);
  for (std::size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  constexpr char32_t kLeast[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kLeast[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

// The code point of a valid sequence of `len` bytes at s[i] (see utf8SequenceLength).
inline char32_t utf8CodePoint(std::string_view s, std::size_t i, std::size_t len) {
  const auto c = static_cast<unsigned char>(s[i]);
  if (len == 1) return c;
  char32_t cp = c & (0x7f >> len);
  for (std::size_t k = 1; k < len; ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
  return cp;
}

inline bool isValidUtf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = utf8SequenceLength(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// `s` safe to print: control characters (C0, DEL, C1) and bytes that are not UTF-8 are written
// as escapes (\n, \r, \t, \x1b, \u0085, \xff); everything else, including valid non-ASCII text
// and backslashes, is kept as it is. A name such as "br\x1b[2J" cannot clear a terminal, and
// "a\nerror: forged" cannot forge a line.
inline std::string printable(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t len = utf8SequenceLength(s, i);
    const auto c = static_cast<unsigned char>(s[i]);
    if (len == 0) {  // not UTF-8: show the byte
      out += {'\\', 'x', kHex[c >> 4], kHex[c & 0xf]};
      ++i;
      continue;
    }
    const char32_t cp = utf8CodePoint(s, i, len);
    if (cp == '\n') {
      out += "\\n";
    } else if (cp == '\r') {
      out += "\\r";
    } else if (cp == '\t') {
      out += "\\t";
    } else if (cp < 0x20 || cp == 0x7f) {
      out += {'\\', 'x', kHex[cp >> 4], kHex[cp & 0xf]};
    } else if (cp >= 0x80 && cp < 0xa0) {  // C1 controls (U+0085, the 8-bit CSI U+009B, ...)
      out += {'\\', 'u', '0', '0', kHex[cp >> 4], kHex[cp & 0xf]};
    } else {
      out.append(s.substr(i, len));
    }
    i += len;
  }
  return out;
}

// JSON text that never throws. nlohmann's dump() throws type_error 316 on a string that is not
// UTF-8 (an interface name is any bytes to the kernel); here such bytes become U+FFFD, in every
// JSON nodeplane writes to stdout.
inline std::string jsonText(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// printable() for text of several lines: each line is escaped, the line breaks are kept. Only
// for text whose line breaks are its own (a report); a name or value inside it must already have
// gone through printable(), or a "\n" in it would start a line of its own.
inline std::string printableLines(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    const auto nl = s.find('\n');
    out += printable(s.substr(0, nl));
    if (nl == std::string_view::npos) break;
    out += '\n';
    s.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace nodeplane
