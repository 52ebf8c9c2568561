#include "dcq/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "dcq/error.hpp"

namespace dcq {

int32_t argmax(std::span<const float> logits) {
  DCQ_ASSERT(!logits.empty());
  size_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (logits[i] > logits[best]) best = i;
  return static_cast<int32_t>(best);
}

Sampler::Sampler(const SamplerOptions& options) : o_(options), rng_(options.seed) {
  if (o_.temperature < 0) fail_usage("--temp must be >= 0");
  if (o_.top_k < 0) fail_usage("--top-k must be >= 0");
  if (!(o_.top_p > 0 && o_.top_p <= 1)) fail_usage("--top-p must be in (0, 1]");
  if (!(o_.min_p >= 0 && o_.min_p < 1)) fail_usage("--min-p must be in [0, 1)");
  if (!(o_.repeat_penalty > 0)) fail_usage("--repeat-penalty must be > 0");
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  cand_.clear();
  cand_.reserve(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) cand_.emplace_back(logits[i], static_cast<int32_t>(i));

  // Repeat penalty on the recent window (llama.cpp: divide positive logits, multiply negative).
  if (o_.repeat_penalty != 1.0f && !history.empty()) {
    const size_t from = history.size() > size_t(o_.repeat_last_n) ? history.size() - size_t(o_.repeat_last_n) : 0;
    std::unordered_set<int32_t> seen(history.begin() + int64_t(from), history.end());
    for (auto& [l, id] : cand_)
      if (seen.count(id)) l = l > 0 ? l / o_.repeat_penalty : l * o_.repeat_penalty;
  }
  if (o_.temperature == 0) {
    auto best = cand_.begin();
    for (auto it = cand_.begin(); it != cand_.end(); ++it)
      if (it->first > best->first) best = it;
    return best->second;
  }
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  std::sort(cand_.begin(), cand_.end(), by_logit);
  if (o_.top_k > 0 && size_t(o_.top_k) < cand_.size()) cand_.resize(size_t(o_.top_k));

  // Probabilities of what is left (at temperature 1, as llama.cpp applies top-p/min-p first).
  std::vector<double> p(cand_.size());
  const float max = cand_.front().first;
  double sum = 0;
  for (size_t i = 0; i < cand_.size(); ++i) sum += p[i] = std::exp(double(cand_[i].first - max));
  if (o_.top_p < 1.0f) {
    double cum = 0;
    size_t keep = cand_.size();
    for (size_t i = 0; i < cand_.size(); ++i) {
      cum += p[i] / sum;
      if (cum >= o_.top_p) { keep = i + 1; break; }
    }
    cand_.resize(keep);
  }
  if (o_.min_p > 0) {
    size_t keep = 1;
    while (keep < cand_.size() && p[keep] >= o_.min_p * p[0]) ++keep;  // p[0] is the max
    cand_.resize(keep);
  }
  // Temperature, then a draw.
  std::vector<double> w(cand_.size());
  for (size_t i = 0; i < cand_.size(); ++i) w[i] = std::exp(double(cand_[i].first - max) / o_.temperature);
  std::discrete_distribution<size_t> dist(w.begin(), w.end());
  return cand_[dist(rng_)].second;
}

}  // namespace dcq
