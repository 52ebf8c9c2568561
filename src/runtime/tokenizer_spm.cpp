// SentencePiece-style tokenization ("llama" vocabularies), the way llama.cpp's llm_tokenizer_spm
// does it: start from single UTF-8 characters, repeatedly merge the adjacent pair whose
// concatenation is the best-scoring vocabulary entry, then map every surviving piece to its
// token or, failing that, to byte-fallback tokens.
#include <algorithm>
#include <queue>

#include "runtime/tokenizer_impl.hpp"

namespace dcq::tok {
namespace {

// Byte length of the UTF-8 sequence a lead byte announces. Continuation and invalid bytes count
// as one, so malformed text still splits into symbols (later emitted as byte tokens).
size_t utf8_len(uint8_t lead) {
  static constexpr uint8_t kLen[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLen[lead >> 4];
}

struct Symbol {
  int prev;
  int next;
  size_t offset;  // into the fragment
  size_t n;       // bytes; 0 once merged into its left neighbour
};

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;  // bytes of the merged text, to detect pairs made stale by an earlier merge
};

// Highest score first; among equal scores the leftmost pair, which is what makes the result
// deterministic and equal to llama.cpp's.
struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  }
};

}  // namespace

int32_t spm_byte_token(const Vocab& vocab, uint8_t byte) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const char name[6] = {'<', '0', 'x', kHex[byte >> 4], kHex[byte & 15], '>'};
  if (int32_t id = vocab.find(std::string_view(name, 6)); id >= 0) return id;
  const char raw = static_cast<char>(byte);
  return vocab.find(std::string_view(&raw, 1));
}

bool spm_words_are_independent(const Vocab& vocab) {
  constexpr std::string_view kSpace = "\xe2\x96\x81";
  for (const auto& t : vocab.tokens) {
    const std::string_view w = t.text;
    std::string_view prev;
    for (size_t off = 0; off < w.size();) {
      const auto lead = static_cast<uint8_t>(w[off]);
      const size_t n = utf8_len(lead);
      if ((lead & 0xC0) == 0x80 || off + n > w.size()) return false;  // not whole characters
      for (size_t k = 1; k < n; ++k)
        if ((static_cast<uint8_t>(w[off + k]) & 0xC0) != 0x80) return false;
      const std::string_view ch = w.substr(off, n);
      if (ch == kSpace && off > 0 && prev != kSpace) return false;  // "x▁" inside a token
      prev = ch;
      off += n;
    }
  }
  return true;
}

void spm_tokenize(const Vocab& vocab, std::string_view text, int32_t unk, std::vector<int32_t>& out) {
  constexpr std::string_view kSpace = "\xe2\x96\x81";
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (size_t off = 0; off < text.size();) {
    const size_t n = std::min(utf8_len(static_cast<uint8_t>(text[off])), text.size() - off);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, index + 1, off, n});
    off += n;
  }
  if (symbols.empty()) return;
  const int n_symbols = static_cast<int>(symbols.size());

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const std::string_view merged = text.substr(symbols[left].offset, symbols[left].n + symbols[right].n);
    const int32_t id = vocab.find(merged);
    if (id < 0) return;
    queue.push({left, right, vocab.tokens[id].score, merged.size()});
  };
  auto symbol_text = [&](int i) { return text.substr(symbols[i].offset, symbols[i].n); };

  // Merging is local: when no token contains a non-space character followed by "▁", no merge
  // can reach across the start of a word, so each word is merged on its own (same result as
  // one pass over the whole text, but with a small, cache-friendly queue).
  for (int begin = 0; begin < n_symbols;) {
    int end = begin + 1;
    if (vocab.spm_words_independent)
      while (end < n_symbols && !(symbol_text(end) == kSpace && symbol_text(end - 1) != kSpace)) ++end;
    else
      end = n_symbols;
    symbols[begin].prev = -1;
    symbols[end - 1].next = -1;

    for (int i = begin + 1; i < end; ++i) try_add(i - 1, i);
    while (!queue.empty()) {
      const Bigram b = queue.top();
      queue.pop();
      Symbol& left = symbols[b.left];
      Symbol& right = symbols[b.right];
      if (left.n == 0 || right.n == 0 || left.n + right.n != b.size) continue;  // stale
      left.n += right.n;
      right.n = 0;
      left.next = right.next;
      if (right.next >= 0) symbols[right.next].prev = b.left;
      try_add(left.prev, b.left);
      try_add(b.left, left.next);
    }

    // Every merged piece is a vocabulary entry by construction; only unmerged single
    // characters can be missing, and those become byte tokens.
    for (int i = begin; i != -1; i = symbols[i].next) {
      const std::string_view piece = symbol_text(i);
      if (int32_t id = vocab.find(piece); id >= 0) {
        out.push_back(id);
        continue;
      }
      for (char c : piece) {
        const int32_t id = spm_byte_token(vocab, static_cast<uint8_t>(c));
        if (id >= 0) out.push_back(id);
        else if (unk >= 0) out.push_back(unk);
      }
    }
    begin = end;
  }
}

}  // namespace dcq::tok
