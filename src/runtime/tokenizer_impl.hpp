// Private pieces shared by the tokenizer front end (tokenizer.cpp) and the three algorithms
// (tokenizer_spm.cpp, tokenizer_bpe.cpp, tokenizer_wpm.cpp). Nothing here is public API.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace dcq::tok {

// Token attributes as llama.cpp derives them from tokenizer.ggml.token_type; the special-token
// splitter and the decoder both branch on them.
enum Attr : uint32_t {
  kUndefined = 0,
  kUnknown = 1u << 0,
  kUnused = 1u << 1,
  kNormal = 1u << 2,
  kControl = 1u << 3,
  kUserDefined = 1u << 4,
  kByte = 1u << 5,
  kLstrip = 1u << 7,
  kRstrip = 1u << 8,
};

struct TokenData {
  std::string text;
  float score = 0.0f;
  uint32_t attr = kNormal;
};

// Hash/equality that accept string_view, so lookups of substrings allocate nothing.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

struct Vocab {
  std::vector<TokenData> tokens;
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> index;
  size_t max_len = 0;  // longest token text in bytes (bounds WordPiece's longest-match search)
  bool spm_words_independent = false;  // see spm_words_are_independent()

  int32_t find(std::string_view text) const {
    auto it = index.find(text);
    return it == index.end() ? -1 : it->second;
  }
  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
};

// BPE merge ranks: key is "left right" joined by one space, like the GGUF merges array itself
// (neither side may contain a plain space, since GPT-2 byte mapping turns spaces into U+0120).
struct BpeRanks {
  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> rank;
  int32_t find(std::string_view left, std::string_view right, std::string& scratch) const {
    scratch.assign(left);
    scratch += ' ';
    scratch += right;
    auto it = rank.find(std::string_view(scratch));
    return it == rank.end() ? -1 : it->second;
  }
};

// The byte-fallback token of one byte in a SentencePiece vocabulary: "<0xXX>", else the byte
// itself as a one-character token, else -1.
int32_t spm_byte_token(const Vocab& vocab, uint8_t byte);

// True when no token holds a non-"▁" character directly followed by "▁" (and every token is
// made of whole UTF-8 characters): then no SentencePiece merge can span the start of a word.
bool spm_words_are_independent(const Vocab& vocab);

// SentencePiece-style bigram merging by score over one already-escaped fragment (spaces are
// U+2581 here); appends ids to `out`.
void spm_tokenize(const Vocab& vocab, std::string_view text, int32_t unk, std::vector<int32_t>& out);

// Pre-tokenizer families of llama.cpp (tokenizer.ggml.pre selects one; several names share a
// family). Each is a fixed list of regex passes, implemented by hand in tokenizer_bpe.cpp.
enum class PreType {
  default_,        // llama.cpp's fallback regex list
  gpt2,            // gpt-2, mpt, olmo, jais, phi-2, ...
  llama3,          // llama-bpe, dbrx, smaug, chatglm4, ...
  qwen2,           // qwen2, stablelm2, ...: like llama3 with single digits
  deepseek_coder,  // deepseek-coder
  deepseek_llm,    // deepseek-llm
  falcon,          // falcon
  starcoder,       // starcoder, refact, command-r, smollm, codeshell, exaone, minerva
  poro,            // poro-chat, bloom, gpt3-finnish
  viking,          // viking
};

struct BpeOptions {
  PreType pre = PreType::default_;
  bool ignore_merges = false;  // a whole pre-token that is itself a token is emitted as is
};

// GPT-2 style BPE of one fragment: regex pre-tokenization, byte-to-unicode mapping, merges by
// rank. Appends ids to `out`.
void bpe_tokenize(const Vocab& vocab, const BpeRanks& ranks, const BpeOptions& opt, std::string_view text,
                  std::vector<int32_t>& out);

// The pre-tokenizer alone: the pieces (UTF-8, before byte mapping) BPE would merge within.
std::vector<std::string> bpe_pre_tokenize(PreType pre, std::string_view text);

// WordPiece (BERT) of one fragment: normalisation (lowercase, accent stripping), split on
// whitespace/punctuation/CJK, greedy longest-match with "▁"-prefixed word starts as llama.cpp
// stores them. Appends ids to `out`.
void wpm_tokenize(const Vocab& vocab, int32_t unk, std::string_view text, bool lowercase, bool strip_accents,
                  std::vector<int32_t>& out);

}  // namespace dcq::tok
