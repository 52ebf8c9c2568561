// Measured sensitivity: how much the model's output distribution moves per unit of a tensor's
// activation-weighted quantization error. Each tensor (or group of tensors quantized alike) is
// quantized alone at a probe step, the model runs over calibration tokens, and the mean
// KL(float || probed) over all positions divided by the probe's weighted error is the tensor's
// exchange rate between error and loss. Errors in attn_q/attn_k pass through a softmax, errors
// in ffn_down land in the residual stream: the raw error alone cannot tell them apart.
#include <algorithm>
#include <cmath>

#include "dcq/error.hpp"
#include "dcq/lossy.hpp"
#include "dcq/weights.hpp"

namespace dcq::lossy {
namespace {

// log_softmax of every row.
std::vector<float> log_probs(std::span<const float> logits, int n_vocab) {
  std::vector<float> out(logits.size());
  for (size_t r = 0; r < logits.size() / size_t(n_vocab); ++r) {
    const float* l = logits.data() + r * size_t(n_vocab);
    const float mx = *std::max_element(l, l + n_vocab);
    double sum = 0;
    for (int k = 0; k < n_vocab; ++k) sum += std::exp(double(l[k] - mx));
    const double lse = double(mx) + std::log(sum);
    for (int k = 0; k < n_vocab; ++k) out[r * size_t(n_vocab) + size_t(k)] = float(double(l[k]) - lse);
  }
  return out;
}

}  // namespace

std::vector<double> measure_sensitivity(const FloatModel& fm, const std::vector<SensitivityProbe>& probes,
                                        std::span<const int32_t> tokens, int n_ctx, int32_t bos, int n_threads) {
  if (tokens.size() < size_t(n_ctx)) fail_input("sensitivity: fewer calibration tokens than one chunk");
  const size_t n_chunks = tokens.size() / size_t(n_ctx);
  Model m = as_model(fm);
  auto run = [&](Model& model) {
    ModelWeights w(model);
    Engine e(w, {n_ctx, n_threads});
    std::vector<float> lp;
    std::vector<int32_t> chunk(tokens.begin(), tokens.begin() + ptrdiff_t(n_ctx));
    for (size_t c = 0; c < n_chunks; ++c) {
      std::copy(tokens.begin() + ptrdiff_t(c * size_t(n_ctx)), tokens.begin() + ptrdiff_t((c + 1) * size_t(n_ctx)),
                chunk.begin());
      if (bos >= 0) chunk[0] = bos;
      e.reset();
      const auto l = log_probs(e.eval(chunk, true), e.config().n_vocab);
      lp.insert(lp.end(), l.begin(), l.end());
    }
    return std::make_pair(lp, e.config().n_vocab);
  };
  const auto [base, n_vocab] = run(m);
  const size_t n_pos = base.size() / size_t(n_vocab);
  std::vector<double> sens(probes.size(), 0.0);
  for (size_t i = 0; i < probes.size(); ++i) {
    const SensitivityProbe& p = probes[i];
    if (!(p.error > 0)) continue;
    // Point the probed tensors at their dequantized codes for this run only.
    std::vector<float> deq(p.probe.codes.size());
    const FloatTensor* first = fm.find(p.tensors.front());
    const int64_t cols = first->cols(), groups = cols / p.probe.group;
    for (size_t k = 0; k < deq.size(); ++k)
      deq[k] = p.probe.scales[size_t(int64_t(k) / cols * groups + (int64_t(k) % cols) / p.probe.group)] * float(p.probe.codes[k]);
    std::vector<std::pair<Tensor*, std::span<const uint8_t>>> saved;
    for (auto& t : m.tensors)
      if (std::find(p.tensors.begin(), p.tensors.end(), t.name) != p.tensors.end()) {
        saved.emplace_back(&t, t.data);
        t.data = {reinterpret_cast<const uint8_t*>(deq.data()), deq.size() * sizeof(float)};
      }
    const auto probed = run(m).first;
    for (auto& [t, d] : saved) t->data = d;
    double kl = 0;
    for (size_t r = 0; r < n_pos; ++r) {
      const float* a = base.data() + r * size_t(n_vocab);
      const float* b = probed.data() + r * size_t(n_vocab);
      for (int k = 0; k < n_vocab; ++k) kl += std::exp(double(a[k])) * (double(a[k]) - double(b[k]));
    }
    sens[i] = std::max(kl / double(n_pos), 0.0) / p.error;
  }
  return sens;
}

}  // namespace dcq::lossy
