// Unstructured pruning for compressibility: the lowest-scoring weights of each per-block linear
// layer become exact zeros, which the entropy coder then stores almost for free.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "dcq/error.hpp"
#include "dcq/lossy.hpp"

namespace dcq::lossy {

std::map<std::string, int64_t> prune(FloatModel& model, const Calibration* calib, double ratio, PruneBy by) {
  if (!(ratio >= 0 && ratio < 1)) fail_usage("--prune must be in [0, 1), got " + std::to_string(ratio));
  std::map<std::string, int64_t> zeros;
  if (ratio == 0) return zeros;
  if (by != PruneBy::magnitude && (!calib || calib->empty()))
    fail_usage("--prune-by linf/wanda needs calibration text (--calib)");
  const LlamaConfig cfg = config_of(model);
  for (const LinearLayer& l : linear_layers(model, cfg)) {
    if (l.site.empty() || l.site == "output_in") continue;  // per-block linear layers only
    FloatTensor& t = *model.find(l.tensor);
    const int64_t cols = t.cols();
    std::vector<double> act(size_t(cols), 1.0);
    if (by != PruneBy::magnitude) {
      const ChannelStats& s = calib->sites.at(l.site);
      for (int64_t c = 0; c < cols; ++c)
        act[size_t(c)] = by == PruneBy::linf ? double(s.max_abs[size_t(c)])
                                             : std::sqrt(s.mean_sq[size_t(c)] * double(s.n_rows));  // ||x_j||_2
    }
    const size_t n = t.data.size();
    const size_t k = size_t(std::llround(ratio * double(n)));
    std::vector<double> score(n);
    for (size_t i = 0; i < n; ++i) score[i] = std::fabs(double(t.data[i])) * act[i % size_t(cols)];
    std::vector<uint32_t> idx(n);
    std::iota(idx.begin(), idx.end(), 0u);
    // Exactly k zeros: the k smallest scores, ties broken by position (deterministic).
    std::nth_element(idx.begin(), idx.begin() + ptrdiff_t(k), idx.end(), [&](uint32_t a, uint32_t b) {
      return score[a] < score[b] || (score[a] == score[b] && a < b);
    });
    for (size_t i = 0; i < k; ++i) t.data[idx[i]] = 0.f;
    zeros[t.name] = int64_t(k);
  }
  return zeros;
}

}  // namespace dcq::lossy
