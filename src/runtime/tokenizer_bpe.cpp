// Byte-level BPE ("gpt2" vocabularies) as llama.cpp runs it:
//  1. pre-tokenize: the text (as code points) is cut by a fixed list of regex passes chosen by
//     tokenizer.ggml.pre; each pass splits every current piece into its matches and the gaps
//     between them. The regexes are implemented by hand below, reproducing what llama.cpp's
//     hand-written splitters and its std::regex fallback (which sees every non-ASCII code point
//     as one representative byte of its category) produce;
//  2. map every byte of a piece to GPT-2's printable alphabet;
//  3. merge adjacent symbols by merge rank (lowest first, leftmost on ties) until none applies.
#include <queue>

#include "runtime/tokenizer_impl.hpp"
#include "runtime/unicode.hpp"

namespace dcq::tok {
namespace {

namespace U = dcq::unicode;

constexpr uint32_t kOutside = 0xFFFFFFFF;  // "no code point here": before/after the piece

// A view of one piece of the text being split; positions are absolute code point indices.
struct Piece {
  const std::vector<uint32_t>& cpts;
  size_t begin, end;
  uint32_t cpt(size_t pos) const { return pos >= begin && pos < end ? cpts[pos] : kOutside; }
  uint16_t flags(size_t pos) const { return pos >= begin && pos < end ? U::flags(cpts[pos]) : 0; }
};

bool is_ws(uint16_t f) { return f & U::kWhitespace; }
bool is_letter(uint16_t f) { return f & U::kLetter; }
bool is_number(uint16_t f) { return f & U::kNumber; }

// Length of an English contraction ('s 't 're 've 'm 'll 'd) at pos, 0 if none.
size_t contraction(const Piece& p, size_t pos, bool any_case) {
  if (p.cpt(pos) != '\'' || pos + 1 >= p.end) return 0;
  auto at = [&](size_t i) { return any_case ? U::to_lower(p.cpt(i)) : p.cpt(i); };
  const uint32_t a = at(pos + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
  if (pos + 2 >= p.end) return 0;
  const uint32_t b = at(pos + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  return 0;
}

// GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
void split_gpt2(const Piece& p, std::vector<size_t>& out) {
  size_t prev = p.begin;
  auto emit = [&](size_t end) {
    if (end > prev) out.push_back(end - prev);
    prev = end;
  };
  for (size_t pos = p.begin; pos < p.end;) {
    const uint32_t c = p.cpt(pos);
    if (size_t n = contraction(p, pos, false)) {
      emit(pos += n);
      continue;
    }
    // An optional leading space belongs to the run that follows it.
    const uint16_t f = c == ' ' ? p.flags(pos + 1) : p.flags(pos);
    const size_t start = pos + (c == ' ' ? 1 : 0);
    auto run = [&](auto in_class) {
      size_t q = start;
      while (in_class(p.flags(q))) ++q;
      emit(pos = q);
    };
    if (is_letter(f)) { run(is_letter); continue; }
    if (is_number(f)) { run(is_number); continue; }
    auto other = [](uint16_t g) { return g != 0 && !(g & (U::kWhitespace | U::kLetter | U::kNumber)); };
    if (other(f)) { run(other); continue; }
    size_t n = 0;
    while (is_ws(p.flags(pos + n))) ++n;
    if (n > 1 && p.cpt(pos + n) != kOutside) emit(pos += n - 1);  // \s+(?!\S): leave one for the next word
    else if (n > 0) emit(pos += n);
    else emit(++pos);
  }
}

// Llama 3 (digits_max 3) and Qwen2 (digits_max 1):
// (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
// \s*[\r\n]+|\s+(?!\S)|\s+
void split_llama3(const Piece& p, size_t digits_max, std::vector<size_t>& out) {
  size_t prev = p.begin;
  auto emit = [&](size_t end) {
    if (end > prev) out.push_back(end - prev);
    prev = end;
  };
  auto newline = [](uint32_t c) { return c == '\r' || c == '\n'; };
  for (size_t pos = p.begin; pos < p.end;) {
    const uint32_t c = p.cpt(pos);
    const uint16_t f = p.flags(pos);
    if (size_t n = contraction(p, pos, true)) {
      emit(pos += n);
      continue;
    }
    if (!newline(c) && !is_number(f) && (is_letter(f) || is_letter(p.flags(pos + 1)))) {
      ++pos;  // the optional non-letter prefix, or the first letter
      while (is_letter(p.flags(pos))) ++pos;
      emit(pos);
      continue;
    }
    if (is_number(f)) {
      size_t group = pos;
      while (is_number(p.flags(pos))) {
        if (++pos - group >= digits_max) {
          emit(pos);
          group = pos;
        }
      }
      emit(pos);
      continue;
    }
    uint16_t f2 = c == ' ' ? p.flags(pos + 1) : f;
    if (!(f2 & (U::kWhitespace | U::kLetter | U::kNumber)) && f != 0) {
      pos += c == ' ' ? 1 : 0;
      while (!(f2 & (U::kWhitespace | U::kLetter | U::kNumber)) && f2 != 0) f2 = p.flags(++pos);
      while (newline(p.cpt(pos))) ++pos;
      emit(pos);
      continue;
    }
    size_t n = 0, last_newline_end = 0;
    for (; is_ws(p.flags(pos + n)); ++n)
      if (newline(p.cpt(pos + n))) last_newline_end = pos + n + 1;
    if (last_newline_end > 0) emit(pos = last_newline_end);  // \s*[\r\n]+
    else if (n > 1 && p.cpt(pos + n) != kOutside) emit(pos += n - 1);
    else if (n > 0) emit(pos += n);
    else emit(++pos);
  }
}

// ---- passes that llama.cpp runs through std::regex ----
// In those, ASCII keeps its own meaning and every other code point is seen as one byte standing
// for its category (letter, number, punctuation, mark, symbol) or as a whitespace byte; so
// e.g. \p{P} means "ASCII punctuation or any non-ASCII punctuation". The classes below encode
// that view directly.

bool ascii_punct(uint32_t c) {  // Unicode category P within ASCII
  return (c >= '!' && c <= '#') || (c >= '%' && c <= '*') || (c >= ',' && c <= '/') || c == ':' || c == ';' ||
         c == '?' || c == '@' || (c >= '[' && c <= ']') || c == '_' || c == '{' || c == '}';
}
bool re_ws(uint32_t c) {  // \s
  return c < 128 ? (c == ' ' || (c >= '\t' && c <= '\r')) : is_ws(U::flags(c));
}
bool re_category(uint32_t c, uint16_t cat) {  // a non-ASCII code point's collapsed category
  const uint16_t f = U::flags(c);
  return !(f & U::kWhitespace) && (f & U::kCategories) == cat;
}
bool re_punct(uint32_t c) { return c < 128 ? ascii_punct(c) : re_category(c, U::kPunctuation); }
bool re_letter(uint32_t c) {
  return c < 128 ? ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') : re_category(c, U::kLetter);
}
bool re_number(uint32_t c) { return c < 128 ? (c >= '0' && c <= '9') : re_category(c, U::kNumber); }

// A regex pass: the length of the match starting at pos (0: none). Matching is leftmost-first
// and non-overlapping, as with std::regex_iterator.
using Matcher = size_t (*)(const Piece&, size_t);

template <bool (*In)(uint32_t)>
size_t match_run(const Piece& p, size_t pos) {
  size_t q = pos;
  while (q < p.end && In(p.cpts[q])) ++q;
  return q - pos;
}
template <bool (*In)(uint32_t)>
size_t match_one(const Piece& p, size_t pos) {
  return In(p.cpts[pos]) ? 1 : 0;
}
// \s?X+
template <bool (*In)(uint32_t)>
size_t match_ws_opt_run(const Piece& p, size_t pos) {
  if (re_ws(p.cpts[pos]) && pos + 1 < p.end && In(p.cpts[pos + 1])) return 1 + match_run<In>(p, pos + 1);
  return match_run<In>(p, pos);
}
// " ?X+"
template <bool (*In)(uint32_t)>
size_t match_space_opt_run(const Piece& p, size_t pos) {
  if (p.cpts[pos] == ' ' && pos + 1 < p.end && In(p.cpts[pos + 1])) return 1 + match_run<In>(p, pos + 1);
  return match_run<In>(p, pos);
}

bool newline_char(uint32_t c) { return c == '\r' || c == '\n'; }
// [\p{P}\$\+<=>\^~\|]+ (default) and the same with '`' (falcon)
bool punct_default(uint32_t c) {
  return re_punct(c) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '~' || c == '|';
}
bool punct_falcon(uint32_t c) { return punct_default(c) || c == '`'; }
// [0-9][0-9][0-9]
size_t match_three_digits(const Piece& p, size_t pos) {
  auto d = [&](size_t i) { return i < p.end && p.cpts[i] >= '0' && p.cpts[i] <= '9'; };
  return d(pos) && d(pos + 1) && d(pos + 2) ? 3 : 0;
}
// [一-龥ࠀ-一가-퟿]+ (no category escapes: llama.cpp matches code points, with non-ASCII
// whitespace replaced by a vertical tab, so it never matches those)
bool cjk_hangul(uint32_t c) {
  if (c > 127 && is_ws(U::flags(c))) return false;
  return (c >= 0x4E00 && c <= 0x9FA5) || (c >= 0x0800 && c <= 0x4E00) || (c >= 0xAC00 && c <= 0xD7FF);
}
// " ?[^(\s|.,!?…。，、।۔،)]+"
bool poro_word(uint32_t c) {
  if (c > 127 && is_ws(U::flags(c))) return false;
  switch (c) {
    case '(': case '|': case '.': case ',': case '!': case '?': case ')':
    case 0x2026: case 0x3002: case 0xFF0C: case 0x3001: case 0x0964: case 0x06D4: case 0x060C:
      return false;
    default:
      return !(c < 128 && (c == ' ' || (c >= '\t' && c <= '\r')));
  }
}

// DeepSeek LLM's letter class [A-Za-zµÀ-ÖØ-öø-ƺ...𞤀-𞥃] (cased letters), from its tokenizer.json
// as llama.cpp lists it; inclusive ranges.
constexpr uint32_t kDeepseekLetters[][2] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA}, {0x1BC, 0x1BF},
    {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377}, {0x37B, 0x37D}, {0x37F, 0x37F},
    {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481},
    {0x48A, 0x52F}, {0x531, 0x556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D},
    {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC},
    {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102},
    {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
    {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
    {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3},
    {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF},
    {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F}, {0x104B0, 0x104D3},
    {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};
bool deepseek_letter(uint32_t c) {
  for (const auto& r : kDeepseekLetters) {
    if (c < r[0]) return false;  // sorted
    if (c <= r[1]) return true;
  }
  return false;
}
// [!-/:-~！-／：-～‘-‟　-。] (U+3000 is whitespace, which llama.cpp hides from this class)
bool deepseek_punct(uint32_t c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x7E) || (c >= 0xFF01 && c <= 0xFF0F) ||
         (c >= 0xFF1A && c <= 0xFF5E) || (c >= 0x2018 && c <= 0x201F) || (c >= 0x3001 && c <= 0x3002);
}

// One split pass: every current piece is replaced by its matches and the gaps between them.
template <typename Split>
std::vector<size_t> apply(const std::vector<uint32_t>& cpts, const std::vector<size_t>& pieces, Split split) {
  std::vector<size_t> out;
  out.reserve(pieces.size() * 2);
  size_t begin = 0;
  for (size_t len : pieces) {
    split(Piece{cpts, begin, begin + len}, out);
    begin += len;
  }
  return out;
}

std::vector<size_t> apply_matcher(const std::vector<uint32_t>& cpts, const std::vector<size_t>& pieces, Matcher m) {
  return apply(cpts, pieces, [m](const Piece& p, std::vector<size_t>& out) {
    size_t gap = p.begin;
    for (size_t pos = p.begin; pos < p.end;) {
      const size_t n = m(p, pos);
      if (n == 0) {
        ++pos;
        continue;
      }
      if (pos > gap) out.push_back(pos - gap);
      out.push_back(n);
      pos += n;
      gap = pos;
    }
    if (p.end > gap) out.push_back(p.end - gap);
  });
}

// \s+$: the whitespace at the very end of a piece becomes a piece of its own.
void split_trailing_ws(const Piece& p, std::vector<size_t>& out) {
  size_t start = p.end;
  while (start > p.begin && re_ws(p.cpts[start - 1])) --start;
  if (start > p.begin) out.push_back(start - p.begin);
  if (p.end > start) out.push_back(p.end - start);
}

// The pieces (code point lengths) of `cpts` for one pre-tokenizer family.
std::vector<size_t> pre_tokenize(PreType pre, const std::vector<uint32_t>& cpts) {
  std::vector<size_t> pieces{cpts.size()};
  auto gpt2 = [&] { pieces = apply(cpts, pieces, split_gpt2); };
  auto pass = [&](Matcher m) { pieces = apply_matcher(cpts, pieces, m); };
  switch (pre) {
    case PreType::gpt2:
      gpt2();
      break;
    case PreType::llama3:
      pieces = apply(cpts, pieces, [](const Piece& p, std::vector<size_t>& o) { split_llama3(p, 3, o); });
      break;
    case PreType::qwen2:
      pieces = apply(cpts, pieces, [](const Piece& p, std::vector<size_t>& o) { split_llama3(p, 1, o); });
      break;
    case PreType::deepseek_coder:
      pass(match_one<newline_char>);
      pass(match_ws_opt_run<re_letter>);
      pass(match_ws_opt_run<re_punct>);
      pass(match_run<cjk_hangul>);
      pass(match_one<re_number>);
      break;
    case PreType::deepseek_llm:
      pass(match_one<newline_char>);
      pass(match_ws_opt_run<deepseek_letter>);
      pass(match_ws_opt_run<deepseek_punct>);
      pieces = apply(cpts, pieces, split_trailing_ws);
      pass(match_run<cjk_hangul>);
      pass(match_run<re_number>);
      break;
    case PreType::falcon:
      pass(match_run<punct_falcon>);
      gpt2();
      pass(match_three_digits);
      break;
    case PreType::starcoder:
      pass(match_one<re_number>);
      gpt2();
      break;
    case PreType::poro:
      pass(match_space_opt_run<poro_word>);
      break;
    case PreType::viking:
      pass(match_space_opt_run<poro_word>);
      pass(match_one<re_number>);
      break;
    case PreType::default_:
      pass(match_run<punct_default>);
      gpt2();
      pass(match_run<re_number>);
      pass(match_three_digits);
      break;
  }
  return pieces;
}

struct Symbol {
  int prev, next;
  size_t offset, n;  // bytes within the byte-encoded word; n = 0 once merged away
};
struct Bigram {
  int left, right;
  int32_t rank;
  size_t size;
};
struct BigramOrder {  // lowest rank first, then leftmost
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  }
};

void bpe_word(const Vocab& vocab, const BpeRanks& ranks, bool ignore_merges, const std::string& word,
              std::vector<int32_t>& out) {
  if (word.empty()) return;
  if (ignore_merges) {
    if (int32_t id = vocab.find(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  std::vector<Symbol> symbols;
  for (size_t off = 0; off < word.size();) {
    const size_t n = std::min(U::utf8_len(static_cast<uint8_t>(word[off])), word.size() - off);
    const int i = static_cast<int>(symbols.size());
    symbols.push_back({i - 1, off + n == word.size() ? -1 : i + 1, off, n});
    off += n;
  }
  const std::string_view w = word;
  std::string scratch;
  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const int32_t rank = ranks.find(w.substr(symbols[l].offset, symbols[l].n), w.substr(symbols[r].offset, symbols[r].n),
                                    scratch);
    if (rank >= 0) queue.push({l, r, rank, symbols[l].n + symbols[r].n});
  };
  for (int i = 1; i < static_cast<int>(symbols.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& l = symbols[b.left];
    Symbol& r = symbols[b.right];
    // Both still alive means still adjacent; the size tells whether either grew since.
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  for (int i = 0; i != -1; i = symbols[i].next) {
    const std::string_view piece = w.substr(symbols[i].offset, symbols[i].n);
    if (int32_t id = vocab.find(piece); id >= 0) {
      out.push_back(id);
      continue;
    }
    // No token for the merged piece: llama.cpp falls back to single raw bytes that happen to be
    // tokens (only ASCII can be) and drops the rest.
    for (char c : piece)
      if (int32_t id = vocab.find(std::string_view(&c, 1)); id >= 0) out.push_back(id);
  }
}

}  // namespace

std::vector<std::string> bpe_pre_tokenize(PreType pre, std::string_view text) {
  const std::vector<uint32_t> cpts = U::decode_utf8(text);
  std::vector<std::string> words;
  size_t begin = 0;
  for (size_t len : pre_tokenize(pre, cpts)) {
    words.emplace_back();
    for (size_t i = begin; i < begin + len; ++i) U::append_utf8(words.back(), cpts[i]);
    begin += len;
  }
  return words;
}

void bpe_tokenize(const Vocab& vocab, const BpeRanks& ranks, const BpeOptions& opt, std::string_view text,
                  std::vector<int32_t>& out) {
  const std::vector<uint32_t> cpts = U::decode_utf8(text);
  const std::vector<size_t> pieces = pre_tokenize(opt.pre, cpts);
  size_t begin = 0;
  std::string utf8, word;
  for (size_t len : pieces) {
    // Re-encode from code points (malformed input became U+FFFD, as in llama.cpp), then map
    // every byte into GPT-2's alphabet.
    utf8.clear();
    for (size_t i = begin; i < begin + len; ++i) U::append_utf8(utf8, cpts[i]);
    begin += len;
    word.clear();
    for (char b : utf8) word += U::gpt2_byte_to_utf8(static_cast<uint8_t>(b));
    bpe_word(vocab, ranks, opt.ignore_merges, word, out);
  }
}

}  // namespace dcq::tok
