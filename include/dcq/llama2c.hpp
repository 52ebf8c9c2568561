// llama2.c checkpoints (Karpathy's "version 0" export, as run.c reads it) and tok*.bin
// tokenizers, converted to the GGUF-named llama Model that llama.cpp's
// examples/convert-llama2c-to-ggml writes.
//
// Checkpoint: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; a negative vocab_size means a separate classifier), then float32 arrays:
//   token_embedding [vocab, dim], rms_att [L, dim], wq [L, dim, dim], wk [L, kv_dim, dim],
//   wv [L, kv_dim, dim], wo [L, dim, dim], rms_ffn [L, dim], w1 [L, hidden, dim],
//   w2 [L, dim, hidden], w3 [L, hidden, dim], rms_final [dim],
//   freq_cis_real + freq_cis_imag [seq_len, head_size/2] each (unused), wcls [vocab, dim] if unshared
// with kv_dim = dim * n_kv_heads / n_heads. The file must end exactly there.
// Tokenizer: u32 max_token_length, then per token f32 score, i32 length, bytes.
//
// Every header field is validated (positive, divisible, sizes computed without overflow and
// compared with the file size) before any weight is touched; failures throw Error(bad_input)
// naming the file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "dcq/io.hpp"
#include "dcq/model.hpp"

namespace dcq {

struct Llama2cConfig {
  int32_t dim = 0, hidden_dim = 0, n_layers = 0, n_heads = 0, n_kv_heads = 0;
  int32_t vocab_size = 0;       // absolute value
  bool shared_classifier = true;  // false when the file stores a separate wcls
  int32_t seq_len = 0;
};

// Validates the header of checkpoint `bytes` (the whole file) and its size. Throws Error(bad_input).
Llama2cConfig parse_llama2c_config(std::span<const uint8_t> bytes, const std::string& source);

struct Llama2cToken {
  std::string text;  // as llama.cpp stores it: spaces as U+2581, ids 0/1/2 as <unk>, <s>, </s>
  float score = 0;
  int32_t type = 1;  // llama_token_type: 1 normal, 2 unknown, 3 control, 6 byte
};

// Parses a tok*.bin holding exactly `vocab_size` tokens. Throws Error(bad_input).
std::vector<Llama2cToken> parse_llama2c_tokenizer(std::span<const uint8_t> bytes, int32_t vocab_size,
                                                  const std::string& source);

struct Llama2cOptions {
  // tok*.bin; empty: the only tok*.bin beside the checkpoint (none: no tokenizer, logged).
  std::filesystem::path tokenizer;
  // A GGUF whose tokenizer.* keys are copied instead of reading a tok*.bin.
  std::filesystem::path vocab_from;
  // llama.context_length. 0 writes what llama.cpp's converter writes (its default n_ctx, 128,
  // whatever the checkpoint's seq_len), so that the model equals its GGUF byte for byte.
  uint32_t context_length = 0;
};

inline constexpr uint32_t kLlama2cConverterContext = 128;

// Builds the Model from checkpoint bytes and optional tokenizer bytes (both kept alive by the
// caller): tensors, names, order and metadata exactly as llama.cpp's converter writes them.
Model parse_llama2c_model(std::span<const uint8_t> checkpoint, const std::string& source,
                          const std::vector<Llama2cToken>* tokens, uint32_t context_length = 0);

// Reads a checkpoint file (mmapped; tensors are views into it). Throws Error(bad_input).
Model read_llama2c_model(const std::filesystem::path& path, const Llama2cOptions& options = {});

}  // namespace dcq
