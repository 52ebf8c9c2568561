// Calibration: the float model runs over calibration text in dcq's own engine while an observer
// accumulates, per linear layer input channel, max |x| and mean x^2.
#include <algorithm>
#include <cmath>

#include "dcq/error.hpp"
#include "dcq/lossy.hpp"
#include "dcq/weights.hpp"

namespace dcq::lossy {
namespace {

class StatsObserver final : public ActivationObserver {
 public:
  explicit StatsObserver(Calibration& c) : c_(c) {}
  void observe(int layer, LinearSite site, const float* x, int n_tok, int width) override {
    ChannelStats& s = c_.sites[site_key(layer, site)];
    if (s.max_abs.empty()) {
      s.max_abs.assign(size_t(width), 0.f);
      s.mean_sq.assign(size_t(width), 0.0);  // a running sum until finish()
    }
    for (int t = 0; t < n_tok; ++t) {
      const float* row = x + size_t(t) * size_t(width);
      for (int j = 0; j < width; ++j) {
        s.max_abs[size_t(j)] = std::max(s.max_abs[size_t(j)], std::fabs(row[j]));
        s.mean_sq[size_t(j)] += double(row[j]) * double(row[j]);
      }
    }
    s.n_rows += n_tok;
  }
  void finish() {
    for (auto& [k, s] : c_.sites)
      for (auto& v : s.mean_sq) v /= double(std::max<int64_t>(1, s.n_rows));
  }

 private:
  Calibration& c_;
};

}  // namespace

Calibration calibrate(const FloatModel& model, std::span<const int32_t> tokens, int n_ctx, int32_t bos,
                      int n_threads) {
  if (n_ctx < 2) fail_usage("calibration context must be at least 2 tokens");
  if (tokens.size() < size_t(n_ctx))
    fail_input("calibration text has " + std::to_string(tokens.size()) + " tokens, fewer than one chunk of " +
               std::to_string(n_ctx) + "; give more text or a smaller --calib-ctx");
  const Model m = as_model(model);
  ModelWeights w(m);
  Engine engine(w, {n_ctx, n_threads});
  Calibration c;
  c.token_freq.assign(size_t(engine.config().n_vocab), 0.0);
  StatsObserver obs(c);
  engine.set_observer(&obs);
  std::vector<int32_t> chunk(static_cast<size_t>(n_ctx));
  for (size_t off = 0; off + size_t(n_ctx) <= tokens.size(); off += size_t(n_ctx)) {
    std::copy(tokens.begin() + ptrdiff_t(off), tokens.begin() + ptrdiff_t(off) + n_ctx, chunk.begin());
    if (bos >= 0) chunk[0] = bos;
    for (int32_t id : chunk)
      if (id >= 0 && size_t(id) < c.token_freq.size()) c.token_freq[size_t(id)] += 1;
    engine.reset();
    // all_logits so that the classifier's input is observed for every position.
    engine.eval(chunk, /*all_logits=*/true);
    ++c.n_chunks;
    c.n_tokens += n_ctx;
  }
  obs.finish();
  for (auto& f : c.token_freq) f /= double(c.n_tokens);
  return c;
}

}  // namespace dcq::lossy
