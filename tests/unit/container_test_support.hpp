// Shared by the container tests (container_test.cpp, row_groups_test.cpp).
#pragma once
#include <cstdint>
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

}  // namespace dcq::test
