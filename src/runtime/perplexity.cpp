#include "dcq/perplexity.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "dcq/error.hpp"

namespace dcq {

double negative_log_likelihood(const float* logits, int n_vocab, int tok) {
  float max = logits[0];
  for (int i = 1; i < n_vocab; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (int i = 0; i < n_vocab; ++i) sum += std::exp(logits[i] - max);
  return -(double(logits[tok] - max) - std::log(sum));
}

PerplexityResult perplexity(Engine& engine, std::span<const int32_t> tokens, const PerplexityOptions& o) {
  const int n_ctx = o.n_ctx > 0 ? o.n_ctx : engine.n_ctx();
  if (n_ctx < 4) fail_usage("perplexity: context of " + std::to_string(n_ctx) + " tokens is too small");
  if (n_ctx > engine.n_ctx()) fail_usage("perplexity: chunk longer than the engine's context");
  const int64_t available = int64_t(tokens.size()) / n_ctx;
  if (available < 1)
    fail_input("perplexity: the text has " + std::to_string(tokens.size()) + " tokens, fewer than one chunk of " +
               std::to_string(n_ctx));
  const int n_chunks = int(o.max_chunks > 0 ? std::min<int64_t>(o.max_chunks, available) : available);
  const int first = n_ctx / 2;
  const int n_vocab = engine.config().n_vocab;

  PerplexityResult r;
  double nll = 0, nll2 = 0;
  int64_t count = 0;
  std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
  for (int c = 0; c < n_chunks; ++c) {
    std::copy_n(tokens.begin() + int64_t(c) * n_ctx, n_ctx, chunk.begin());
    if (o.bos >= 0) chunk[0] = o.bos;
    engine.reset();
    const auto logits = engine.eval(chunk, /*all_logits=*/true);
    double chunk_nll = 0;
    // The logits at position j predict token j + 1; score positions first .. n_ctx - 2.
    for (int j = first; j < n_ctx - 1; ++j) {
      const double v = negative_log_likelihood(logits.data() + size_t(j) * n_vocab, n_vocab, chunk[size_t(j) + 1]);
      nll += v;
      nll2 += v * v;
      chunk_nll += v;
    }
    count += n_ctx - 1 - first;
    r.chunk_mean_nll.push_back(chunk_nll / double(n_ctx - 1 - first));
    if (o.progress) o.progress(c + 1, std::exp(nll / double(count)));
  }
  r.n_chunks = n_chunks;
  r.n_scored = count;
  const double mean = nll / double(count);
  r.mean_nll = mean;
  r.ppl = std::exp(mean);
  const double var = nll2 / double(count) - mean * mean;
  r.ppl_err = (var > 0 && count > 1) ? r.ppl * std::sqrt(var / double(count - 1)) : 0;
  return r;
}

}  // namespace dcq
