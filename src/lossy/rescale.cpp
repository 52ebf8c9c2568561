// Compression-aware rescaling (paper 1; mechanism of SmoothQuant/AWQ): input channel j of the
// linear layers reading one activation site is multiplied by s_j, and the producer of that
// channel divided by s_j, so the float model computes the same function while the quantizer sees
// a different weight distribution.
//
// Which producer absorbs 1/s (llama): attn_norm for Q/K/V, ffn_norm for gate/up, ffn_up's rows for
// ffn_down (silu(g) * (u / s) = h / s), attn_v's rows for attn_output (with grouped-query attention
// one V row serves several heads, so those heads share a scale), output_norm for the classifier.
#include <algorithm>
#include <cmath>
#include <functional>

#include "dcq/error.hpp"
#include "dcq/lossy.hpp"
#include "dcq/parallel.hpp"

namespace dcq::lossy {
namespace {

struct Site {
  std::string key;
  std::vector<FloatTensor*> consumers;
  FloatTensor* producer = nullptr;
  bool producer_rows = false;  // divide rows of the producer (ffn_up, attn_v) instead of elements
  int head_group = 1;          // attn_output: query heads per KV head
  int head_dim = 0;
  ChannelStats stats;          // per channel of the site (after merging heads of a KV group)
};

// attn_output's channel h*hd+d is produced by V row (h/group)*hd+d: merge the statistics of the
// heads that share a V row, so one scale serves them all.
ChannelStats merge_heads(const ChannelStats& s, int n_head, int group, int hd) {
  ChannelStats m;
  m.n_rows = s.n_rows;
  m.max_abs.assign(size_t(n_head / group * hd), 0.f);
  m.mean_sq.assign(m.max_abs.size(), 0.0);
  for (int h = 0; h < n_head; ++h)
    for (int d = 0; d < hd; ++d) {
      const size_t from = size_t(h * hd + d), to = size_t((h / group) * hd + d);
      m.max_abs[to] = std::max(m.max_abs[to], s.max_abs[from]);
      m.mean_sq[to] += s.mean_sq[from] / group;
    }
  return m;
}

// The per-column scale vector of the consumers from the per-channel one of the site.
std::vector<double> column_scales(const Site& site, const std::vector<double>& s) {
  if (site.head_group <= 1 && site.head_dim == 0) return s;
  const int64_t cols = site.consumers.front()->cols();
  std::vector<double> c(static_cast<size_t>(cols));
  for (int64_t j = 0; j < cols; ++j) {
    const int64_t h = j / site.head_dim, d = j % site.head_dim;
    c[size_t(j)] = s[size_t((h / site.head_group) * site.head_dim + d)];
  }
  return c;
}

void scale_columns(FloatTensor& t, const std::vector<double>& s) {
  const int64_t cols = t.cols();
  for (int64_t r = 0; r < t.rows(); ++r)
    for (int64_t c = 0; c < cols; ++c) t.data[size_t(r * cols + c)] = float(double(t.data[size_t(r * cols + c)]) * s[size_t(c)]);
}

void divide_producer(const Site& site, const std::vector<double>& s) {
  FloatTensor& p = *site.producer;
  if (!site.producer_rows) {
    for (size_t j = 0; j < p.data.size(); ++j) p.data[j] = float(double(p.data[j]) / s[j]);
    return;
  }
  const int64_t cols = p.cols();
  for (int64_t r = 0; r < p.rows(); ++r)
    for (int64_t c = 0; c < cols; ++c) p.data[size_t(r * cols + c)] = float(double(p.data[size_t(r * cols + c)]) / s[size_t(r)]);
}

std::vector<double> smooth_scales(const Site& site, double alpha) {
  const size_t n = site.stats.max_abs.size();
  std::vector<double> wmax(n, 0.0);
  for (const FloatTensor* t : site.consumers) {
    const int64_t cols = t->cols();
    for (int64_t r = 0; r < t->rows(); ++r)
      for (int64_t c = 0; c < cols; ++c) {
        const size_t ch = site.head_dim ? size_t(((c / site.head_dim) / site.head_group) * site.head_dim + c % site.head_dim)
                                        : size_t(c);
        wmax[ch] = std::max(wmax[ch], double(std::fabs(t->data[size_t(r * cols + c)])));
      }
  }
  std::vector<double> s(n, 1.0);
  for (size_t j = 0; j < n; ++j) {
    const double x = site.stats.max_abs[j];
    if (x > 0 && wmax[j] > 0) s[j] = std::clamp(std::pow(x, alpha) / std::pow(wmax[j], 1 - alpha), 1e-4, 1e4);
  }
  return s;
}

// s_j = (rms_j / geomean(rms))^gamma: gamma = 1 equalises the activation-weighted error of every
// column (the high-rate optimum for a uniform quantizer followed by an entropy coder).
std::vector<double> power_scales(const Site& site, double gamma) {
  const size_t n = site.stats.mean_sq.size();
  std::vector<double> rms(n);
  double log_sum = 0, peak = 0;
  for (size_t j = 0; j < n; ++j) peak = std::max(peak, site.stats.mean_sq[j]);
  for (size_t j = 0; j < n; ++j) {
    rms[j] = std::sqrt(std::max(site.stats.mean_sq[j], peak * 1e-8 + 1e-30));
    log_sum += std::log(rms[j]);
  }
  const double gm = std::exp(log_sum / double(std::max<size_t>(1, n)));
  std::vector<double> s(n);
  for (size_t j = 0; j < n; ++j) s[j] = std::clamp(std::pow(rms[j] / gm, gamma), 1e-4, 1e4);
  return s;
}

// bits/weight + lambda/2 * log2(weighted output error) of the site's consumers quantized after
// scaling by s: at high rate one bit buys a factor 4 in error, so lambda = 1 is neutral.
double entropy_cost(const Site& site, const std::vector<double>& s, const RescaleOptions& o) {
  const std::vector<double> cs = column_scales(site, s);
  double bits = 0, err = 0, n = 0;
  const std::vector<double> site_cols = column_scales(site, std::vector<double>(site.stats.mean_sq.begin(), site.stats.mean_sq.end()));
  for (const FloatTensor* t : site.consumers) {
    FloatTensor x = *t;
    scale_columns(x, cs);
    ErrorWeights w;
    w.col.resize(size_t(x.cols()));
    // The scaled layer sees x_j / s_j, so column j's error weighs mean(x_j^2) / s_j^2.
    for (size_t j = 0; j < w.col.size(); ++j) w.col[j] = site_cols[j] / (cs[j] * cs[j]);
    QuantTensor q;
    if (o.quant.kind == QuantKind::ecsq) {
      double sq = 0;
      for (float v : t->data) sq += double(v) * v;
      const double sigma = std::sqrt(sq / double(std::max<size_t>(1, t->data.size())));
      q = quantize_step(x, sigma * std::exp2(2.05 - o.quant.target_bpw), w);
    } else {
      q = quantize_int(x, o.quant.bits, o.quant.group, w);
    }
    bits += q.entropy_bits * double(x.data.size());
    err += q.error;
    n += double(x.data.size());
  }
  return bits / n + 0.5 * o.lambda * std::log2(std::max(err, 1e-300));
}

std::string blk(int l, const char* n) { return "blk." + std::to_string(l) + "." + n + ".weight"; }

}  // namespace

std::vector<RescaleGroup> rescale(FloatModel& model, const Calibration& calib, const RescaleOptions& o,
                                  int n_threads) {
  if (o.mode == RescaleMode::none) return {};
  if (calib.empty()) fail_usage("--rescale needs calibration text (--calib)");
  if (o.mode == RescaleMode::smooth && !(o.alpha >= 0 && o.alpha <= 1)) fail_usage("--alpha must be in [0, 1]");
  if (o.mode == RescaleMode::entropy && !(o.lambda > 0)) fail_usage("--lambda must be > 0");
  const LlamaConfig cfg = config_of(model);
  auto need = [&](const std::string& name) {
    FloatTensor* t = model.find(name);
    if (!t) fail_input(model.source + ": tensor " + name + " is missing");
    return t;
  };
  std::vector<Site> sites;
  auto stats = [&](const std::string& key) -> const ChannelStats& {
    const auto it = calib.sites.find(key);
    if (it == calib.sites.end()) fail_input("calibration has no statistics for " + key);
    return it->second;
  };
  for (int l = 0; l < cfg.n_layer; ++l) {
    Site a{site_key(l, LinearSite::attn_in), {need(blk(l, "attn_q")), need(blk(l, "attn_k")), need(blk(l, "attn_v"))},
           need(blk(l, "attn_norm")), false, 1, 0, stats(site_key(l, LinearSite::attn_in))};
    Site o2{site_key(l, LinearSite::attn_out_in), {need(blk(l, "attn_output"))}, need(blk(l, "attn_v")), true,
            cfg.n_head / cfg.n_head_kv, cfg.head_dim,
            merge_heads(stats(site_key(l, LinearSite::attn_out_in)), cfg.n_head, cfg.n_head / cfg.n_head_kv, cfg.head_dim)};
    Site f{site_key(l, LinearSite::ffn_in), {need(blk(l, "ffn_gate")), need(blk(l, "ffn_up"))}, need(blk(l, "ffn_norm")),
           false, 1, 0, stats(site_key(l, LinearSite::ffn_in))};
    Site d{site_key(l, LinearSite::ffn_down_in), {need(blk(l, "ffn_down"))}, need(blk(l, "ffn_up")), true, 1, 0,
           stats(site_key(l, LinearSite::ffn_down_in))};
    sites.push_back(std::move(a));
    sites.push_back(std::move(o2));
    sites.push_back(std::move(f));
    sites.push_back(std::move(d));
  }
  // The classifier: only when it is its own matrix. A copy of the embedding stays one (the
  // container then stores it once), which is worth more than rescaling it.
  if (FloatTensor* out = model.find("output.weight")) {
    const FloatTensor* emb = model.find("token_embd.weight");
    const bool copy = emb && emb->data == out->data;
    if (!copy)
      sites.push_back({site_key(-1, LinearSite::output_in), {out}, need("output_norm.weight"), false, 1, 0,
                       stats(site_key(-1, LinearSite::output_in))});
  }

  std::vector<RescaleGroup> report(sites.size());
  std::vector<std::vector<double>> scales(sites.size());
  // Choosing reads only the site's own consumers; ffn_up is read by two sites but only written
  // below, after every choice is made.
  parallel_for(sites.size(), size_t(n_threads), [&](size_t i) {
    const Site& s = sites[i];
    RescaleGroup& g = report[i];
    g.site = s.key;
    for (const FloatTensor* c : s.consumers) g.consumers.push_back(c->name);
    g.folded_into = s.producer->name;
    if (o.mode == RescaleMode::smooth) {
      scales[i] = smooth_scales(s, o.alpha);
      g.exponent = o.alpha;
      return;
    }
    double best = INFINITY;
    for (int k = 0; k <= 8; ++k) {
      const double gamma = k / 8.0;
      auto cand = power_scales(s, gamma);
      const double cost = entropy_cost(s, cand, o);
      if (cost < best) best = cost, scales[i] = std::move(cand), g.exponent = gamma;
    }
  });
  for (size_t i = 0; i < sites.size(); ++i) {
    const auto cs = column_scales(sites[i], scales[i]);
    for (FloatTensor* c : sites[i].consumers) scale_columns(*c, cs);
    divide_producer(sites[i], scales[i]);
    const auto [lo, hi] = std::minmax_element(scales[i].begin(), scales[i].end());
    report[i].min_scale = *lo;
    report[i].max_scale = *hi;
  }
  return report;
}

}  // namespace dcq::lossy
