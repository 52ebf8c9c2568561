// CCDS, EvoP's cluster-based calibration sampling: cut the text into windows, embed each one
// (mean of the final normalized hidden state over its tokens), cluster the embeddings with
// k-means, and draw round-robin across clusters so that the calibration set covers every kind of
// text the source holds, not only the most frequent kind.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "dcq/error.hpp"
#include "dcq/prune.hpp"
#include "prune/rng.hpp"

namespace dcq {
namespace {

using prune_detail::Rng;

// Sums the classifier's input rows (LinearSite::output_in) of one eval.
class MeanEmbedding final : public ActivationObserver {
 public:
  void observe(int layer, LinearSite site, const float* x, int n_tok, int width) override {
    if (layer != -1 || site != LinearSite::output_in) return;
    sum.assign(size_t(width), 0.0);
    for (int t = 0; t < n_tok; ++t)
      for (int i = 0; i < width; ++i) sum[size_t(i)] += x[size_t(t) * width + i];
    rows = n_tok;
  }
  std::vector<double> sum;
  int rows = 0;
};

double dist2(const float* a, const float* b, int dim) {
  double d = 0;
  for (int i = 0; i < dim; ++i) {
    const double e = double(a[i]) - double(b[i]);
    d += e * e;
  }
  return d;
}

}  // namespace

std::vector<int> kmeans(std::span<const float> points, int n, int dim, int k, uint64_t seed) {
  DCQ_ASSERT(n >= 1 && dim >= 1 && points.size() == size_t(n) * size_t(dim));
  k = std::clamp(k, 1, n);
  Rng rng(seed);
  const float* p = points.data();
  // k-means++: the first centre uniformly, each next one with probability proportional to the
  // squared distance to the nearest centre chosen so far.
  std::vector<float> centres(size_t(k) * dim);
  std::vector<double> d2(size_t(n), std::numeric_limits<double>::infinity());
  int pick = rng.below(n);
  for (int c = 0; c < k; ++c) {
    std::copy(p + size_t(pick) * dim, p + size_t(pick + 1) * dim, centres.begin() + ptrdiff_t(c) * dim);
    if (c + 1 == k) break;
    double total = 0;
    for (int i = 0; i < n; ++i) {
      d2[size_t(i)] = std::min(d2[size_t(i)], dist2(p + size_t(i) * dim, &centres[size_t(c) * dim], dim));
      total += d2[size_t(i)];
    }
    if (!(total > 0)) {  // fewer distinct points than k: take the next unused index
      pick = (pick + 1) % n;
      continue;
    }
    double r = rng.uniform() * total;
    pick = -1;
    for (int i = 0; i < n; ++i) {
      if (!(d2[size_t(i)] > 0)) continue;
      pick = i;  // rounding may leave r >= 0 after the last one: it is then the pick
      r -= d2[size_t(i)];
      if (r < 0) break;
    }
  }
  // Lloyd's iterations until no point moves (bounded). Ties go to the lower cluster index.
  std::vector<int> assign(size_t(n), -1);
  for (int iter = 0; iter < 100; ++iter) {
    bool moved = false;
    for (int i = 0; i < n; ++i) {
      int best = 0;
      double bd = std::numeric_limits<double>::infinity();
      for (int c = 0; c < k; ++c) {
        const double d = dist2(p + size_t(i) * dim, &centres[size_t(c) * dim], dim);
        if (d < bd) { bd = d; best = c; }
      }
      if (assign[size_t(i)] != best) { assign[size_t(i)] = best; moved = true; }
    }
    // An emptied cluster takes the point farthest from its centre, so every cluster has members.
    std::vector<int> count(size_t(k), 0);
    for (int a : assign) ++count[size_t(a)];
    for (int c = 0; c < k; ++c) {
      if (count[size_t(c)] > 0) continue;
      int far = -1;
      double fd = -1;
      for (int i = 0; i < n; ++i) {
        if (count[size_t(assign[size_t(i)])] < 2) continue;
        const double d = dist2(p + size_t(i) * dim, &centres[size_t(assign[size_t(i)]) * dim], dim);
        if (d > fd) { fd = d; far = i; }
      }
      if (far < 0) break;
      --count[size_t(assign[size_t(far)])];
      assign[size_t(far)] = c;
      ++count[size_t(c)];
      moved = true;
    }
    // New centres: member means.
    std::vector<double> acc(size_t(k) * dim, 0.0);
    for (int i = 0; i < n; ++i)
      for (int j = 0; j < dim; ++j) acc[size_t(assign[size_t(i)]) * dim + j] += p[size_t(i) * dim + j];
    for (int c = 0; c < k; ++c)
      if (count[size_t(c)] > 0)
        for (int j = 0; j < dim; ++j)
          centres[size_t(c) * dim + j] = static_cast<float>(acc[size_t(c) * dim + j] / count[size_t(c)]);
    if (!moved) break;
  }
  return assign;
}

CalibSet select_calibration(Engine& engine, std::span<const int32_t> tokens, int32_t bos, const CalibOptions& o,
                            const std::string& source) {
  if (o.n_samples < 1) fail_usage("--calib-samples must be at least 1");
  if (o.sample_tokens < 2) fail_usage("--calib-tokens must be at least 2");
  if (o.clusters < 1) fail_usage("--clusters must be at least 1");
  if (o.sample_tokens > engine.n_ctx())
    fail_usage("calibration samples of " + std::to_string(o.sample_tokens) + " tokens exceed the context of " +
               std::to_string(engine.n_ctx()));
  const int64_t windows = int64_t(tokens.size()) / o.sample_tokens;
  if (windows < o.n_samples)
    fail_input(source + ": " + std::to_string(tokens.size()) + " tokens make " + std::to_string(windows) +
               " calibration samples of " + std::to_string(o.sample_tokens) + " tokens, fewer than the " +
               std::to_string(o.n_samples) + " requested");
  // Candidate windows, evenly spaced when the text offers more than max_candidates.
  const int n_cand = int(std::min<int64_t>(windows, std::max(o.max_candidates, o.n_samples)));
  std::vector<int> cand(static_cast<size_t>(n_cand));
  for (int i = 0; i < n_cand; ++i) cand[size_t(i)] = int(int64_t(i) * windows / n_cand);
  auto window = [&](int w) {
    std::vector<int32_t> v(tokens.begin() + ptrdiff_t(w) * o.sample_tokens,
                           tokens.begin() + ptrdiff_t(w + 1) * o.sample_tokens);
    if (bos >= 0) v[0] = bos;
    return v;
  };

  CalibSet out;
  out.n_candidates = int(windows);
  Rng rng(o.seed ^ 0xcc1d5ull);
  std::vector<int> chosen;  // indices into cand
  if (o.sampling == CalibSampling::random) {
    std::vector<int> order(static_cast<size_t>(n_cand));
    std::iota(order.begin(), order.end(), 0);
    for (int i = 0; i < o.n_samples; ++i) {
      std::swap(order[size_t(i)], order[size_t(i + rng.below(n_cand - i))]);
      chosen.push_back(order[size_t(i)]);
    }
    out.cluster.assign(chosen.size(), 0);
    out.n_clusters = 1;
    out.cluster_sizes = {n_cand};
  } else {
    // Embed every candidate with the unpruned model.
    const int dim = engine.config().n_embd;
    std::vector<float> emb(size_t(n_cand) * dim);
    MeanEmbedding obs;
    engine.set_skips({}, {});
    engine.set_observer(&obs);
    for (int i = 0; i < n_cand; ++i) {
      engine.reset();
      engine.eval(window(cand[size_t(i)]), true);
      for (int j = 0; j < dim; ++j) emb[size_t(i) * dim + j] = static_cast<float>(obs.sum[size_t(j)] / obs.rows);
    }
    engine.set_observer(nullptr);
    engine.reset();
    const int k = std::min(o.clusters, n_cand);
    const std::vector<int> assign = kmeans(emb, n_cand, dim, k, o.seed);
    std::vector<std::vector<int>> members(static_cast<size_t>(k));
    for (int i = 0; i < n_cand; ++i) members[size_t(assign[size_t(i)])].push_back(i);
    for (auto& m : members)  // a seeded random order within each cluster
      for (size_t i = m.size(); i > 1; --i) std::swap(m[i - 1], m[size_t(rng.below(int(i)))]);
    std::vector<size_t> next(size_t(k), 0);
    while (int(chosen.size()) < o.n_samples) {
      for (int c = 0; c < k && int(chosen.size()) < o.n_samples; ++c) {
        if (next[size_t(c)] >= members[size_t(c)].size()) continue;
        chosen.push_back(members[size_t(c)][next[size_t(c)]++]);
        out.cluster.push_back(c);
      }
    }
    out.n_clusters = k;
    for (const auto& m : members) out.cluster_sizes.push_back(int(m.size()));
  }
  for (int c : chosen) {
    out.window.push_back(cand[size_t(c)]);
    out.samples.push_back(window(cand[size_t(c)]));
  }
  return out;
}

}  // namespace dcq
