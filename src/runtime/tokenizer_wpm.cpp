// WordPiece ("bert" vocabularies) as llama.cpp runs it: BERT normalisation (accents stripped via
// the first code point of NFD, lowercase), split at whitespace, punctuation, ASCII symbols and CJK
// ideographs, then greedy longest-prefix matching inside each word. llama.cpp's converter stores
// word-initial pieces with a leading U+2581 (and continuation pieces without "##"), so each word
// is looked up as "▁" + word.
#include <algorithm>

#include "runtime/tokenizer_impl.hpp"
#include "runtime/unicode.hpp"

namespace dcq::tok {
namespace {

namespace U = dcq::unicode;

// BERT's CJK ideograph blocks (including the Hugging Face quirk of starting extension E at
// U+2B920).
bool is_chinese_char(uint32_t c) {
  return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
         (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
         (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

std::vector<std::string> split_words(std::string_view text, bool lowercase, bool strip_accents) {
  std::vector<std::string> words(1);
  for (uint32_t cpt : U::decode_utf8(text)) {
    if (strip_accents) cpt = U::nfd_first(cpt);
    const uint16_t f = U::flags(cpt);
    if (f & U::kWhitespace) {
      if (!words.back().empty()) words.emplace_back();
      continue;
    }
    if (cpt == 0 || cpt == 0xFFFD || (f & U::kControl)) continue;
    if (strip_accents && (f & U::kMark)) continue;
    std::string s;
    U::append_utf8(s, lowercase ? U::to_lower(cpt) : cpt);
    if ((f & U::kPunctuation) || (cpt < 0x7F && (f & U::kSymbol)) || is_chinese_char(cpt)) {
      if (!words.back().empty()) words.emplace_back();
      words.back() = std::move(s);  // a word of its own
      words.emplace_back();
    } else {
      words.back() += s;
    }
  }
  return words;
}

}  // namespace

void wpm_tokenize(const Vocab& vocab, int32_t unk, std::string_view text, bool lowercase, bool strip_accents,
                  std::vector<int32_t>& out) {
  for (const std::string& word : split_words(text, lowercase, strip_accents)) {
    if (word.empty()) continue;
    const std::string w = "\xe2\x96\x81" + word;
    const size_t n = w.size();
    const size_t before = out.size();
    for (size_t i = 0; i < n; ++i) {
      bool found = false;
      // Longest vocabulary entry starting at byte i.
      for (size_t j = std::min(n, i + vocab.max_len + 1); j > i; --j) {
        if (int32_t id = vocab.find(std::string_view(w).substr(i, j - i)); id >= 0) {
          out.push_back(id);
          i = j - 1;
          found = true;
          break;
        }
      }
      if (!found) {  // an unmatchable remainder makes the whole word unknown
        out.resize(before);
        break;
      }
    }
    if (out.size() == before && unk >= 0) out.push_back(unk);
  }
}

}  // namespace dcq::tok
