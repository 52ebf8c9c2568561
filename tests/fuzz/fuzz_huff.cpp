// Fuzz target: the huff codec (src/codec/huff.cpp) must reject any malformed stream with
// dcq::Error, never crash, never read or write out of bounds. Input layout: byte 0 selects the
// parameter (bit 0: 4 raw low bits; bit 1: packed nibbles, which wins) and bytes 1-2 the decoded size (little-endian, < 64 KiB);
// the rest is the stored stream. The rest is also encoded and must decode back exactly.
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <span>
#include <vector>

#include "dcq/codec.hpp"
#include "dcq/error.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const uint16_t param = (data[0] & 2) ? dcq::kHuffNibbles : (data[0] & 1) ? dcq::kHuffLow4 : 0;
  const dcq::CodecSpec spec{dcq::CodecId::huff, param};
  const size_t n = size_t(data[1]) | size_t(data[2]) << 8;
  const std::span<const uint8_t> stored(data + 3, size - 3);
  // Exactly n bytes of output: a vector of that size, so ASan sees any write past it.
  std::vector<uint8_t> out(n);
  try {
    dcq::codec_decode(spec, stored, out);
  } catch (const dcq::Error&) {
  }
  auto s = spec;
  const auto enc = dcq::codec_encode(s, stored);
  std::vector<uint8_t> back(stored.size());
  dcq::codec_decode(s, enc, back);
  if (!std::equal(back.begin(), back.end(), stored.begin())) std::abort();
  return 0;
}
