// Tokenizers built from GGUF metadata (tokenizer.ggml.*): SentencePiece-style ("llama"),
// BPE ("gpt2") with llama.cpp's pre-tokenizer variants (tokenizer.ggml.pre), WordPiece ("bert").
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dcq/model.hpp"

namespace dcq {

class Tokenizer {
 public:
  // Throws Error(bad_input) naming the model when the tokenizer metadata is missing or unsupported.
  static Tokenizer from_model(const Model& model);
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;

  // Token ids of `text`; with add_bos, the BOS id first when the vocabulary uses one.
  // add_bos is llama.cpp's add_special: BOS (if the vocabulary asks for one, e.g.
  // tokenizer.ggml.add_bos_token), EOS if tokenizer.ggml.add_eos_token, [CLS]/[SEP] for WordPiece.
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const;
  // parse_special: control tokens written in the text ("<s>", "<|endoftext|>") become their ids;
  // otherwise only user-defined tokens are matched and control tokens are plain text.
  std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;
  // The text a token stands for, as it should be printed when streaming (byte tokens as bytes,
  // SentencePiece's U+2581 as a space).
  std::string decode(int32_t id) const;
  // Whole-sequence text: control tokens omitted, and SentencePiece's leading space removed from
  // the first text token (at the start or right after a leading BOS).
  std::string decode(const std::vector<int32_t>& ids) const;
  // The vocabulary entry itself ("<s>", "\xe2\x96\x81Once", "<0x0A>"); empty if out of range.
  std::string token_text(int32_t id) const;

  int32_t bos() const;  // -1 when none
  int32_t eos() const;  // -1 when none
  int32_t n_vocab() const;
  std::string_view kind() const;  // "spm", "bpe", "wpm"

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace dcq
