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
// Parameter kNibbles: every byte is two 4-bit symbols, decoded straight into packed bytes.
inline constexpr uint16_t kNibbles = 0x100;
inline constexpr unsigned kNibMaxLen = 6;    // longest code: two always fit a 12-bit index
inline constexpr unsigned kNibStreams = 8;   // interleaved bit streams
inline constexpr unsigned kNibSizesBytes = 4 * (kNibStreams - 1);

// True when the codec parameter (0, 4 raw low bits, or kNibbles) is one this codec defines.
bool param_valid(uint16_t param);

// Optimal code lengths (package-merge) limited to `max_len` for the symbols 0..freq.size()-1;
// zero frequency -> length 0. Needs at least two used symbols and 2^max_len >= their count.
// Deterministic: ties are broken by symbol index.
std::vector<uint8_t> limited_lengths(std::span<const uint64_t> freq, unsigned max_len);

std::vector<uint8_t> encode(uint16_t low_bits, std::span<const uint8_t> in);
// Throws Error(integrity) unless `in` decodes to exactly out.size() bytes.
void decode(uint16_t low_bits, std::span<const uint8_t> in, std::span<uint8_t> out);

}  // namespace dcq::huff
