#include "runtime/unicode.hpp"

#include <algorithm>
#include <array>

#include "runtime/unicode_tables.hpp"

namespace dcq::unicode {
namespace {

constexpr uint32_t kMaxCpt = 0x110000;
constexpr uint32_t kReplacement = 0xFFFD;

// Returns the code point at s[off] and advances off; malformed input yields U+FFFD and one byte.
uint32_t next_cpt(std::string_view s, size_t& off) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[off + i]); };
  const auto cont = [&](size_t i) { return off + i < s.size() && (b(i) & 0xC0) == 0x80; };
  const uint8_t c = b(0);
  uint32_t cpt;
  size_t n;
  if (c < 0x80) cpt = c, n = 1;
  else if ((c & 0xE0) == 0xC0 && cont(1)) cpt = ((c & 0x1Fu) << 6) | (b(1) & 0x3Fu), n = 2;
  else if ((c & 0xF0) == 0xE0 && cont(1) && cont(2))
    cpt = ((c & 0x0Fu) << 12) | ((b(1) & 0x3Fu) << 6) | (b(2) & 0x3Fu), n = 3;
  else if ((c & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3))
    cpt = ((c & 0x07u) << 18) | ((b(1) & 0x3Fu) << 12) | ((b(2) & 0x3Fu) << 6) | (b(3) & 0x3Fu), n = 4;
  else cpt = kReplacement, n = 1;
  off += n;
  return cpt < kMaxCpt ? cpt : kReplacement;
}

struct Gpt2Maps {
  std::array<std::string, 256> to_utf8;
  std::array<int16_t, 512> from_cpt;  // code point (< 512) -> byte, -1 if not in the alphabet
  Gpt2Maps() {
    from_cpt.fill(-1);
    // Printable Latin-1 bytes map to themselves; the other 68 bytes to U+0100.. in byte order.
    auto printable = [](int b) { return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const uint32_t cpt = printable(b) ? static_cast<uint32_t>(b) : static_cast<uint32_t>(256 + n++);
      append_utf8(to_utf8[b], cpt);
      from_cpt[cpt] = static_cast<int16_t>(b);
    }
  }
};

const Gpt2Maps& gpt2_maps() {
  static const Gpt2Maps maps;
  return maps;
}

}  // namespace

uint16_t flags(uint32_t cpt) {
  if (cpt >= kMaxCpt) return 0;
  using tables::FlagRange;
  const FlagRange* end = tables::kFlagRanges + tables::kFlagRangesCount;
  const FlagRange* it = std::upper_bound(tables::kFlagRanges, end, cpt,
                                         [](uint32_t c, const FlagRange& r) { return c < r.start; });
  return (it - 1)->flags;
}

uint32_t to_lower(uint32_t cpt) {
  const auto* end = tables::kLowercase + tables::kLowercaseCount;
  const auto* it = std::lower_bound(tables::kLowercase, end, cpt,
                                    [](const tables::CodeMap& m, uint32_t c) { return m.from < c; });
  return it != end && it->from == cpt ? it->to : cpt;
}

uint32_t nfd_first(uint32_t cpt) {
  const auto* end = tables::kNfd + tables::kNfdCount;
  const auto* it = std::upper_bound(tables::kNfd, end, cpt,
                                    [](uint32_t c, const tables::NfdRange& r) { return c < r.first; });
  if (it == tables::kNfd) return cpt;
  --it;
  return cpt <= it->last ? it->nfd : cpt;
}

std::vector<uint32_t> decode_utf8(std::string_view s) {
  std::vector<uint32_t> out;
  out.reserve(s.size());
  for (size_t off = 0; off < s.size();) out.push_back(next_cpt(s, off));
  return out;
}

void append_utf8(std::string& out, uint32_t cpt) {
  if (cpt < 0x80) {
    out += static_cast<char>(cpt);
  } else if (cpt < 0x800) {
    out += static_cast<char>(0xC0 | (cpt >> 6));
    out += static_cast<char>(0x80 | (cpt & 0x3F));
  } else if (cpt < 0x10000) {
    out += static_cast<char>(0xE0 | (cpt >> 12));
    out += static_cast<char>(0x80 | ((cpt >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cpt & 0x3F));
  } else if (cpt < kMaxCpt) {
    out += static_cast<char>(0xF0 | (cpt >> 18));
    out += static_cast<char>(0x80 | ((cpt >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cpt >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cpt & 0x3F));
  } else {
    append_utf8(out, kReplacement);
  }
}

std::string encode_utf8(const std::vector<uint32_t>& cpts) {
  std::string out;
  out.reserve(cpts.size());
  for (uint32_t c : cpts) append_utf8(out, c);
  return out;
}

const std::string& gpt2_byte_to_utf8(uint8_t byte) { return gpt2_maps().to_utf8[byte]; }

std::string gpt2_bytes_encode(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += gpt2_maps().to_utf8[static_cast<uint8_t>(c)];
  return out;
}

std::string gpt2_bytes_decode(std::string_view text) {
  const auto& maps = gpt2_maps();
  std::string out;
  out.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    const size_t start = off;
    const uint32_t cpt = next_cpt(text, off);
    if (cpt < maps.from_cpt.size() && maps.from_cpt[cpt] >= 0) out += static_cast<char>(maps.from_cpt[cpt]);
    else out.append(text.substr(start, off - start));
  }
  return out;
}

}  // namespace dcq::unicode
