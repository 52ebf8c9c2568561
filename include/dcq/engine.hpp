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
namespace kernels {
class ThreadPool;
}

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

// Where a linear layer reads its input; calibration observes the activations there.
enum class LinearSite {
  attn_in,      // attn_norm output: input of attn_q, attn_k, attn_v
  attn_out_in,  // attention output: input of attn_output
  ffn_in,       // ffn_norm output: input of ffn_gate, ffn_up
  ffn_down_in,  // silu(gate) * up: input of ffn_down
  output_in,    // output_norm output: input of the classifier (layer = -1)
};

// Sees every linear layer's input activations (n_tok rows of `width` floats) during eval.
class ActivationObserver {
 public:
  virtual ~ActivationObserver() = default;
  virtual void observe(int layer, LinearSite site, const float* x, int n_tok, int width) = 0;
  // The residual stream entering sub-layer `unit` (2 * layer: attention, 2 * layer + 1: FFN;
  // 2 * n_layer: the final norm's input), before any skip applies. Structured pruning reads it
  // (ShortGPT's influence, prefix reuse across candidates). Default: ignored.
  virtual void observe_residual(int unit, const float* x, int n_tok, int width) {
    (void)unit, (void)x, (void)n_tok, (void)width;
  }
};

struct EngineOptions {
  EngineOptions() = default;
  EngineOptions(int ctx, int threads) : n_ctx(ctx), n_threads(threads) {}
  int n_ctx = 0;      // KV cache length; 0: the model's context_length
  int n_threads = 1;
  // A pool to run on (not owned; its size replaces n_threads), e.g. one pool for two engines that
  // take turns (`dcq bench memory --paired`): a second pool would keep its own workers spinning
  // beside the first one's. nullptr: the engine makes its own pool of n_threads.
  kernels::ThreadPool* pool = nullptr;
  // Structured pruning: a skipped sub-layer is the identity (its residual branch adds nothing),
  // so its weights are never read. Empty, or one flag per layer. A model pruned by `dcq prune
  // --units sublayers` also lists skipped layers in its metadata (dcq.pruned.attn, dcq.pruned.ffn:
  // arrays of layer indices); those are always skipped, in addition to these.
  std::vector<uint8_t> skip_attn, skip_ffn;
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
  // Calibration hook (nullptr: none). Not owned.
  void set_observer(ActivationObserver* observer) { observer_ = observer; }
  // Changes which sub-layers are skipped (structured pruning search); forgets cached positions.
  void set_skips(std::vector<uint8_t> skip_attn, std::vector<uint8_t> skip_ffn);

  // Evaluates `tokens` at positions n_past()..n_past()+n-1 and appends them to the KV cache.
  // Returns the logits of every token (n * n_vocab, row per token) when all_logits, else of the
  // last token only. Throws Error(bad_input) when the context would overflow or an id is bad.
  std::span<const float> eval(std::span<const int32_t> tokens, bool all_logits = false);
  // Like eval, but starts at sub-layer `unit` (numbered as in observe_residual) from `hidden`, the
  // residual stream entering it (n rows of n_embd, at positions n_past()..n_past()+n-1). The
  // sub-layers before `unit` are not run and their KV cache is not filled, which is sound because
  // no layer reads another layer's cache: a pruning search evaluates many masks that share an
  // unpruned prefix from residuals observed once. Same numbers as eval for the same stream.
  std::span<const float> eval_from(int unit, std::span<const float> hidden, bool all_logits = false);

 private:
  struct State;
  // One transformer block over n_tok rows; with drop > 0 only rows drop.. leave it (last layer).
  // from_ffn: start at the FFN half (the attention half already ran or is not wanted).
  void forward_layer(int layer, int n_tok, int drop, bool from_ffn = false);
  std::span<const float> finish(int n_tok, int first);  // final norm and classifier
  void attention_block(int layer, int n_tok, int drop);
  void ffn_block(int layer, int n_tok);

  WeightSource& w_;
  LlamaConfig cfg_;
  int n_ctx_ = 0;
  int n_past_ = 0;
  std::vector<uint8_t> skip_attn_, skip_ffn_;
  std::vector<uint8_t> pruned_attn_, pruned_ffn_;  // from metadata (dcq.pruned.*): always skipped
  ActivationObserver* observer_ = nullptr;
  std::unique_ptr<State> st_;
};

}  // namespace dcq
