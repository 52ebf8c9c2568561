// A small seeded generator with our own range reduction: std::uniform_int_distribution is
// implementation-defined, and a search must give the same mask for a seed on every platform.
#pragma once

#include <cstdint>

namespace dcq::prune_detail {

class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed ^ 0x6a09e667f3bcc909ull) {}
  uint64_t next() {  // splitmix64
    uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), 1 <= n < 2^31 (multiply-shift; the bias, n / 2^32, is negligible here).
  int below(int n) { return static_cast<int>(((next() >> 32) * uint64_t(n)) >> 32); }
  double uniform() { return double(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_;
};

}  // namespace dcq::prune_detail

#include <vector>

namespace dcq::prune_detail {

// Lexicographic order of masks, written out: GCC 12's -Wstringop-overread misfires on
// std::vector<uint8_t>'s own operator< (a memcmp it cannot bound).
struct MaskLess {
  bool operator()(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) const {
    const size_t n = a.size() < b.size() ? a.size() : b.size();
    for (size_t i = 0; i < n; ++i)
      if (a[i] != b[i]) return a[i] < b[i];
    return a.size() < b.size();
  }
};

}  // namespace dcq::prune_detail
