// The small part of Unicode the tokenizers need: UTF-8 decoding with llama.cpp's error policy,
// coarse general categories, White_Space, simple lowercase, first code point of NFD, and GPT-2's
// reversible byte <-> printable-character mapping.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace dcq::unicode {

enum Flag : uint16_t {
  kUndefined = 0x01,    // unassigned (Cn)
  kNumber = 0x02,       // \p{N}
  kLetter = 0x04,       // \p{L}
  kSeparator = 0x08,    // \p{Z}
  kMark = 0x10,         // \p{M}
  kPunctuation = 0x20,  // \p{P}
  kSymbol = 0x40,       // \p{S}
  kControl = 0x80,      // \p{C}
  kCategories = 0xFF,
  kWhitespace = 0x100,  // White_Space property (what \s means in the pre-tokenizer regexes)
};

// Flags of a code point; 0 for values beyond U+10FFFF (used as "outside the text").
uint16_t flags(uint32_t cpt);
uint32_t to_lower(uint32_t cpt);
// First code point of the canonical decomposition ("é" -> "e"); itself when none.
uint32_t nfd_first(uint32_t cpt);

// Byte length announced by a UTF-8 lead byte (1 for continuation/invalid bytes).
inline size_t utf8_len(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}
// Decodes UTF-8; every byte that does not start a well-formed sequence becomes U+FFFD, so any
// byte string decodes (llama.cpp's policy).
std::vector<uint32_t> decode_utf8(std::string_view s);
void append_utf8(std::string& out, uint32_t cpt);
std::string encode_utf8(const std::vector<uint32_t>& cpts);

// GPT-2's byte-level mapping: every byte to a printable code point (space -> U+0120, ...).
const std::string& gpt2_byte_to_utf8(uint8_t byte);
std::string gpt2_bytes_encode(std::string_view bytes);
// Inverse mapping; characters outside the 256-entry alphabet are kept as their UTF-8 bytes.
std::string gpt2_bytes_decode(std::string_view text);

}  // namespace dcq::unicode
