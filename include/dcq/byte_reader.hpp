// Bounds-checked little-endian reads over untrusted bytes. Every read that would pass the end
// throws Error(bad_input) with the file name, the field being read and its offset.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "dcq/error.hpp"

namespace dcq {

class ByteReader {
 public:
  ByteReader(std::span<const uint8_t> bytes, std::string source)
      : bytes_(bytes), source_(std::move(source)) {}

  size_t offset() const { return pos_; }
  size_t size() const { return bytes_.size(); }
  size_t remaining() const { return bytes_.size() - pos_; }
  const std::string& source() const { return source_; }

  template <class T>
  T read(std::string_view what) {
    require(sizeof(T), what);
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::span<const uint8_t> read_bytes(uint64_t n, std::string_view what) {
    require(n, what);
    auto s = bytes_.subspan(pos_, static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

  void seek(uint64_t pos, std::string_view what) {
    if (pos > bytes_.size()) truncated(what, pos);
    pos_ = static_cast<size_t>(pos);
  }

  void require(uint64_t n, std::string_view what) const {
    if (n > remaining()) truncated(what, pos_);
  }

  [[noreturn]] void truncated(std::string_view what, uint64_t at) const {
    fail_input(source_ + ": truncated: " + std::string(what) + " at offset " + std::to_string(at) +
               " runs past the end of the file (" + std::to_string(bytes_.size()) + " bytes)");
  }
  [[noreturn]] void malformed(const std::string& problem) const {
    fail_input(source_ + ": " + problem);
  }

 private:
  std::span<const uint8_t> bytes_;
  std::string source_;
  size_t pos_ = 0;
};

// Overflow-checked arithmetic for sizes read from files.
inline bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_mul_overflow(a, b, out); }
inline bool add_overflows(uint64_t a, uint64_t b, uint64_t* out) { return __builtin_add_overflow(a, b, out); }
inline uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

}  // namespace dcq
