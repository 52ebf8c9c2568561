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
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const;
  // The text a token stands for, as it should be printed when streaming (byte tokens as bytes,
  // SentencePiece's U+2581 as a space).
  std::string decode(int32_t id) const;
  std::string decode(const std::vector<int32_t>& ids) const;

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
