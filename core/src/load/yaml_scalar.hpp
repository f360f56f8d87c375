// Plain-scalar resolution (YAML 1.2 core schema) and the checks run on a file's raw text before
// yaml-cpp sees it (encoding, tab indentation), shared by the loader and the emitter.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "nodeplane/resource.hpp"

namespace nodeplane::yaml {

// A plain (unquoted) scalar as the YAML 1.2 core schema reads it: null (`null`, `~`, empty),
// booleans (`true`/`false` in three spellings), integers (decimal, 0x, 0o), floats (incl. .inf,
// .nan); anything else is a string.
Json resolvePlainScalar(std::string_view text);

// True when `text`, written without quotes, would read back as the same string. The emitter
// quotes everything else; YAML 1.1 booleans (yes/no/on/off/y/n) and base-60 numbers (a PCI
// address "0000:41:00.0", "1:30") are quoted too, for other readers (PyYAML, Ansible).
bool isSafePlainString(std::string_view text);

// A problem of the raw text with its 1-based position.
struct TextProblem {
  int line = 0;
  int column = 0;
  std::string message;
};

// The first byte that makes `text` not UTF-8 text: a NUL or other control character ("binary
// data"), or an invalid UTF-8 sequence. Empty message when the text is fine.
TextProblem checkEncoding(std::string_view text);

// Lines whose indentation contains a tab. yaml-cpp accepts some of them silently (counting a tab as
// one column) and rejects others with a message about the wrong line. Block-scalar content
// (`key: |`) is skipped, since tabs inside it are data.
std::vector<TextProblem> findTabIndentation(std::string_view text);

}  // namespace nodeplane::yaml
