// Codec 4 "huff": our own length-limited canonical Huffman coder (docs/format.md, "Codecs").
// Internal to dcq_codec; reached through codec_encode/codec_decode with CodecId::huff.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace dcq::huff {

inline constexpr unsigned kMaxLen = 11;   // longest code, also the decode table index width
inline constexpr unsigned kStreams = 4;   // interleaved bit streams
inline constexpr unsigned kSizesBytes = 4 * (kStreams - 1);

// True when `low_bits` (the codec parameter) is one this codec defines.
bool param_valid(uint16_t low_bits);

// Optimal code lengths (package-merge) limited to `max_len` for the symbols 0..freq.size()-1;
// zero frequency -> length 0. Needs at least two used symbols and 2^max_len >= their count.
// Deterministic: ties are broken by symbol index.
std::vector<uint8_t> limited_lengths(std::span<const uint64_t> freq, unsigned max_len);

std::vector<uint8_t> encode(uint16_t low_bits, std::span<const uint8_t> in);
// Throws Error(integrity) unless `in` decodes to exactly out.size() bytes.
void decode(uint16_t low_bits, std::span<const uint8_t> in, std::span<uint8_t> out);

}  // namespace dcq::huff
