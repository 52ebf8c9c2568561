// Perplexity the way llama-perplexity computes it: the token stream is cut into chunks of n_ctx
// tokens, each chunk starts with BOS (replacing its first token) and is evaluated from an empty
// cache, only the second half of each chunk is scored, PPL = exp(mean NLL), and the ± estimate is
// PPL * sqrt(var(NLL) / (count - 1)).
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "dcq/engine.hpp"

namespace dcq {

// Log-probabilities of a base model at every scored position (dcq perplexity --save-logits), to
// compare a compressed model with (--kl-base). File: "DCQLOGP1", uint32 n_vocab, n_ctx, n_chunks,
// then n_chunks * n_ctx int32 tokens, then per scored position n_vocab float32 log-probabilities.
class BaseLogProbs {
 public:
  // Maps and validates the file; throws Error(bad_input) naming it on any inconsistency.
  static BaseLogProbs open(const std::filesystem::path& path);
  int n_vocab() const { return n_vocab_; }
  int n_ctx() const { return n_ctx_; }
  int n_chunks() const { return n_chunks_; }
  std::span<const int32_t> tokens() const { return tokens_; }
  // Log-probabilities at scored position `i` (0-based over all chunks).
  std::span<const float> at(int64_t i) const;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::shared_ptr<const void> keep_;
  int n_vocab_ = 0, n_ctx_ = 0, n_chunks_ = 0;
  std::span<const int32_t> tokens_;
  const uint8_t* logp_ = nullptr;
};

struct PerplexityOptions {
  int n_ctx = 0;          // chunk length (must equal the engine's context or be smaller)
  int max_chunks = 0;     // 0: all whole chunks
  int32_t bos = -1;       // written over the first token of each chunk; -1: keep it
  // Called after each chunk with (chunks done, running PPL).
  std::function<void(int, double)> progress;
  std::filesystem::path save_logprobs;  // write a BaseLogProbs file (replaced if present)
  const BaseLogProbs* kl_base = nullptr;  // compare with it: same text, chunking and vocabulary
};

struct PerplexityResult {
  double ppl = 0;
  double ppl_err = 0;
  double mean_nll = 0;
  int n_chunks = 0;
  int64_t n_scored = 0;               // tokens scored
  std::vector<double> chunk_mean_nll; // per chunk
  // With kl_base: mean KL(base || model) over scored positions, its ± (standard error), and the
  // share of positions where both models put the same token first.
  double kld_mean = 0;
  double kld_err = 0;
  double same_top = 0;
};

// Throws Error(bad_input) when the text is shorter than one chunk.
PerplexityResult perplexity(Engine& engine, std::span<const int32_t> tokens, const PerplexityOptions& options);

// -log softmax(logits)[tok], as llama.cpp's log_softmax (max-subtracted, sum in double).
double negative_log_likelihood(const float* logits, int n_vocab, int tok);

}  // namespace dcq
