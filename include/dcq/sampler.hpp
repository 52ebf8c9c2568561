// Next-token selection: greedy at temperature 0, else llama.cpp's usual chain (repeat penalty ->
// top-k -> top-p -> min-p -> temperature -> draw) with a seeded generator (same seed, same text).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace dcq {

struct SamplerOptions {
  float temperature = 0.8f;   // 0: greedy (argmax)
  int top_k = 40;             // 0: off
  float top_p = 0.95f;        // 1: off
  float min_p = 0.05f;        // 0: off
  float repeat_penalty = 1.0f;  // 1: off
  int repeat_last_n = 64;
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerOptions& options);
  // Picks the next token from the logits; `history` is the sequence so far (for the penalty).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

 private:
  SamplerOptions o_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;
};

// Index of the largest logit (the lowest index on ties).
int32_t argmax(std::span<const float> logits);

}  // namespace dcq
