// The one error type of nodeplane, shared by the core and every plugin.
#pragma once

#include <expected>
#include <string>
#include <utility>

namespace nodeplane {

// Where a resource or one of its fields was written: 1-based line and column.
struct SourceLocation {
  std::string file;
  int line = 0;
  int column = 0;

  bool empty() const { return file.empty(); }
  std::string str() const {
    if (file.empty()) return {};
    std::string s = file;
    if (line > 0) s += ":" + std::to_string(line);
    if (column > 0) s += ":" + std::to_string(column);
    return s;
  }
};

enum class ErrorKind {
  kInvalidInput,  // the desired state is wrong: fix the file
  kRetryable,     // the host was not ready: a later pass may succeed
  kTerminal,      // the host refused: needs a person
  kConflict,      // an object exists that nodeplane does not own
};

inline const char* toString(ErrorKind k) {
  switch (k) {
    case ErrorKind::kInvalidInput:
      return "invalid";
    case ErrorKind::kRetryable:
      return "retryable";
    case ErrorKind::kTerminal:
      return "error";
    case ErrorKind::kConflict:
      return "conflict";
  }
  return "error";
}

struct Error {
  ErrorKind kind = ErrorKind::kTerminal;
  std::string message;
  std::string resource;  // "Kind/name", empty when the error is not about one resource
  std::string field;     // field path, e.g. "spec.addresses[1]"
  SourceLocation where;
  std::string hint;  // what to do about it
  // A conflict because the object is in use (a VF a VM has open): the daemon holds the step,
  // looks at the object again on a timer (its user may go without an event) and proceeds once
  // nobody uses it. Set with inUse().
  bool inUse = false;

  // "file:line:col: Kind/name spec.mtu: message (hint)"
  std::string str() const {
    std::string s;
    if (!where.empty()) s += where.str() + ": ";
    if (!resource.empty()) s += resource + (field.empty() ? ": " : " ");
    if (!field.empty()) s += field + ": ";
    s += message;
    if (!hint.empty()) s += " (" + hint + ")";
    return s;
  }
};

template <class T>
using Result = std::expected<T, Error>;

inline std::unexpected<Error> fail(ErrorKind kind, std::string message, std::string field = {},
                                   std::string hint = {}) {
  Error e;
  e.kind = kind;
  e.message = std::move(message);
  e.field = std::move(field);
  e.hint = std::move(hint);
  return std::unexpected<Error>(std::move(e));
}

// A conflict because the object is in use now (Error::inUse): "0000:41:00.5 is in use by
// VirtualMachine/vm1: its vGPU is not changed until it is free".
inline std::unexpected<Error> inUse(std::string message, std::string hint = {}) {
  Error e;
  e.kind = ErrorKind::kConflict;
  e.message = std::move(message);
  e.hint = std::move(hint);
  e.inUse = true;
  return std::unexpected<Error>(std::move(e));
}

}  // namespace nodeplane
