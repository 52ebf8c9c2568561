// Shared by the container tests (container_test.cpp, row_groups_test.cpp).
#pragma once
#include <xxhash.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <vector>

#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "pipeline/compress_internal.hpp"

namespace dcq::test {

// Outcome of opening and fully decoding container bytes: 0 when sound, else the exit code.
// `message` (optional) gets the error's text.
inline int check_bytes(const std::vector<uint8_t>& bytes, std::string* message = nullptr) {
  try {
    const auto r = DcqReader::parse(bytes, "t.dcq");
    (void)r.metadata_json();
    rebuild_source(r, 1, [](std::span<const uint8_t>) {});
    return 0;
  } catch (const Error& e) {
    if (message) *message = e.what();
    return static_cast<int>(e.code());
  }
}

// After a test edits header or footer bytes: their own checksums made valid again, so that the
// reader gets past them to the check under test.
inline void rehash_header_and_footer(std::vector<uint8_t>& b) {
  const uint64_t h = XXH3_64bits(b.data(), 24);
  std::memcpy(b.data() + 24, &h, 8);
  uint8_t* f = b.data() + b.size() - 64;
  const uint64_t fh = XXH3_64bits(f, 48);
  std::memcpy(f + 48, &fh, 8);
}

}  // namespace dcq::test
