// Perplexity the way llama-perplexity computes it: the token stream is cut into chunks of n_ctx
// tokens, each chunk starts with BOS (replacing its first token) and is evaluated from an empty
// cache, only the second half of each chunk is scored, PPL = exp(mean NLL), and the ± estimate is
// PPL * sqrt(var(NLL) / (count - 1)).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "dcq/engine.hpp"

namespace dcq {

struct PerplexityOptions {
  int n_ctx = 0;          // chunk length (must equal the engine's context or be smaller)
  int max_chunks = 0;     // 0: all whole chunks
  int32_t bos = -1;       // written over the first token of each chunk; -1: keep it
  // Called after each chunk with (chunks done, running PPL).
  std::function<void(int, double)> progress;
};

struct PerplexityResult {
  double ppl = 0;
  double ppl_err = 0;
  double mean_nll = 0;
  int n_chunks = 0;
  int64_t n_scored = 0;               // tokens scored
  std::vector<double> chunk_mean_nll; // per chunk
};

// Throws Error(bad_input) when the text is shorter than one chunk.
PerplexityResult perplexity(Engine& engine, std::span<const int32_t> tokens, const PerplexityOptions& options);

// -log softmax(logits)[tok], as llama.cpp's log_softmax (max-subtracted, sum in double).
double negative_log_likelihood(const float* logits, int n_vocab, int tok);

}  // namespace dcq
