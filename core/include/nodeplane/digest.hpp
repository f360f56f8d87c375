// SHA-256 for plugins and the core alike: the digest an observed sensitive value may be reported
// as (FieldSchema::sensitive) must be computed the same way on both sides of the plugin boundary.
#pragma once

#include <openssl/evp.h>

#include <stdexcept>
#include <string>
#include <string_view>

#include "nodeplane/resource.hpp"
#include "nodeplane/text.hpp"

namespace nodeplane {

// Lower-case hex SHA-256 of `input`.
inline std::string sha256Hex(std::string_view input) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(input.data(), input.size(), md, &size, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");  // not expected: callers are guarded
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < size; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

// {"sha256": <hex>}: how a plugin reports an observed sensitive value it cannot read back (the
// SHA-256 of the value's jsonText()); the core's diff compares it with the desired value's.
inline Json observedDigest(const Json& value) {
  return Json{{"sha256", sha256Hex(jsonText(value))}};
}

}  // namespace nodeplane
