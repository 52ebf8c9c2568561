// The CPU inference engine for llama-architecture models: configuration from metadata, KV cache,
// and a forward pass that evaluates a batch of tokens (one weight pass for the whole batch).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "dcq/weights.hpp"

namespace dcq {

struct LlamaConfig {
  int n_embd = 0;       // model width
  int n_layer = 0;
  int n_head = 0;
  int n_head_kv = 0;    // < n_head: grouped-query attention
  int n_ff = 0;         // feed-forward width
  int n_vocab = 0;      // rows of token_embd
  int head_dim = 0;     // n_embd / n_head
  int n_rot = 0;        // RoPE dimensions per head
  int n_ctx_train = 0;  // context_length from metadata (0 when absent)
  float rms_eps = 1e-5f;
  float rope_freq_base = 10000.f;
  float rope_freq_scale = 1.f;  // 1 / linear scaling factor
  bool tied_output = false;     // no output.weight: logits use token_embd

  // Reads and validates general.architecture == "llama" and the llama.* keys; throws
  // Error(bad_input) naming the source on an unknown architecture or inconsistent shapes.
  static LlamaConfig from(const WeightSource& w);
};

struct EngineOptions {
  int n_ctx = 0;      // KV cache length; 0: the model's context_length
  int n_threads = 1;
};

class Engine {
 public:
  Engine(WeightSource& weights, const EngineOptions& options);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const LlamaConfig& config() const { return cfg_; }
  int n_ctx() const { return n_ctx_; }
  int n_past() const { return n_past_; }
  // Forgets the cached positions (a new sequence starts at position 0).
  void reset() { n_past_ = 0; }

  // Evaluates `tokens` at positions n_past()..n_past()+n-1 and appends them to the KV cache.
  // Returns the logits of every token (n * n_vocab, row per token) when all_logits, else of the
  // last token only. Throws Error(bad_input) when the context would overflow or an id is bad.
  std::span<const float> eval(std::span<const int32_t> tokens, bool all_logits = false);

 private:
  struct State;
  void forward_layer(int layer, int n_tok);

  WeightSource& w_;
  LlamaConfig cfg_;
  int n_ctx_ = 0;
  int n_past_ = 0;
  std::unique_ptr<State> st_;
};

}  // namespace dcq
