// Integer-code quantizers of the lossy stage and the ECSQ rate allocation. Codes are int8 (the
// engine's I8 format); a float scale per group of a row (int_k) or one step per tensor (ecsq).
#include <algorithm>
#include <array>
#include <cmath>

#include "dcq/error.hpp"
#include "dcq/lossy.hpp"
#include "dcq/parallel.hpp"

namespace dcq::lossy {

std::string QuantSpec::name() const {
  if (kind == QuantKind::ecsq) return "ecsq";
  std::string s = "int" + std::to_string(bits);
  if (group > 0) s += "-g" + std::to_string(group);
  return s;
}

double code_entropy(std::span<const int8_t> codes) {
  std::array<uint64_t, 256> h{};
  for (int8_t c : codes) ++h[uint8_t(c)];
  double bits = 0;
  const double n = double(codes.size());
  for (uint64_t k : h)
    if (k) bits -= double(k) * std::log2(double(k) / n);
  return n > 0 ? bits / n : 0.0;
}

ErrorWeights error_weights(const FloatTensor& t, const std::string& site, const Calibration* calib) {
  ErrorWeights w;
  if (!calib || calib->empty()) return w;
  if (site.empty()) {
    // The embedding: row r is looked up with the frequency of token r. A floor keeps tokens the
    // calibration text never used from being quantized to nothing.
    if (calib->token_freq.size() == size_t(t.rows())) {
      const double floor = 0.1 / double(std::max<int64_t>(1, t.rows()));
      for (double p : calib->token_freq) w.row.push_back(p + floor);
    }
    return w;
  }
  const auto it = calib->sites.find(site);
  if (it != calib->sites.end() && it->second.mean_sq.size() == size_t(t.cols())) w.col = it->second.mean_sq;
  return w;
}

namespace {

// Fills error / rel_error / entropy of q from the float tensor.
void measure(const FloatTensor& t, QuantTensor& q, const ErrorWeights& w) {
  const int64_t cols = t.cols(), rows = t.rows(), groups = cols / q.group;
  double err = 0, energy = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const double rw = w.row.empty() ? 1.0 : w.row[size_t(r)];
    double er = 0, en = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const size_t i = size_t(r * cols + c);
      const double x = t.data[i];
      const double d = x - double(q.scales[size_t(r * groups + c / q.group)]) * double(q.codes[i]);
      const double cw = w.col.empty() ? 1.0 : w.col[size_t(c)];
      er += cw * d * d;
      en += cw * x * x;
    }
    err += rw * er;
    energy += rw * en;
  }
  q.error = err;
  q.rel_error = energy > 0 ? err / energy : 0.0;
  q.entropy_bits = code_entropy(q.codes);
}

int8_t code_of(float x, float inv, int qmax) {
  const long v = std::lrint(double(x) * double(inv));
  return static_cast<int8_t>(std::clamp<long>(v, -qmax, qmax));
}

}  // namespace

QuantTensor quantize_int(const FloatTensor& t, int bits, int64_t group, const ErrorWeights& w) {
  if (bits < 2 || bits > 8) fail_usage("--bits must be 2..8, got " + std::to_string(bits));
  const int64_t cols = t.cols(), rows = t.rows();
  // A row that is not a whole number of groups (ffn_down rows of 172) gets one scale per row,
  // as llama.cpp falls back to another type for such rows.
  const int64_t g = group > 0 && cols % group == 0 ? group : cols;
  const int qmax = (1 << (bits - 1)) - 1;
  QuantTensor q;
  q.group = g;
  q.codes.resize(t.data.size());
  q.scales.resize(size_t(rows * (cols / g)));
  double scale_sum = 0;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g0 = 0; g0 < cols; g0 += g) {
      const float* x = t.data.data() + r * cols + g0;
      float amax = 0;
      for (int64_t k = 0; k < g; ++k) amax = std::max(amax, std::fabs(x[k]));
      const float scale = amax / float(qmax);
      const float inv = scale > 0 ? 1.0f / scale : 0.0f;
      q.scales[size_t(r * (cols / g) + g0 / g)] = scale;
      scale_sum += scale;
      for (int64_t k = 0; k < g; ++k) q.codes[size_t(r * cols + g0 + k)] = code_of(x[k], inv, qmax);
    }
  q.step = q.scales.empty() ? 0 : scale_sum / double(q.scales.size());
  measure(t, q, w);
  return q;
}

namespace {

// max |w| of every row.
std::vector<float> row_max(const FloatTensor& t) {
  const int64_t cols = t.cols();
  std::vector<float> m(size_t(t.rows()), 0.f);
  for (int64_t r = 0; r < t.rows(); ++r)
    for (int64_t c = 0; c < cols; ++c) m[size_t(r)] = std::max(m[size_t(r)], std::fabs(t.data[size_t(r * cols + c)]));
  return m;
}

// The step a row actually uses: the tensor's, unless the row's largest weight would not fit in
// +-127 codes; clipping heavy-tailed rows (not rate) was what limited fine steps.
float row_step(double step, float row_max_abs) { return float(std::max(step, double(row_max_abs) / 127.0)); }

}  // namespace

QuantTensor quantize_step(const FloatTensor& t, double step, const ErrorWeights& w) {
  if (!(step > 0)) fail_input(t.name + ": quantization step must be positive");
  QuantTensor q;
  q.group = t.cols();
  q.step = step;
  q.codes.resize(t.data.size());
  const auto rm = row_max(t);
  q.scales.resize(size_t(t.rows()));
  const int64_t cols = t.cols();
  for (int64_t r = 0; r < t.rows(); ++r) {
    const float s = row_step(step, rm[size_t(r)]);
    q.scales[size_t(r)] = s;
    const float inv = 1.0f / s;
    for (int64_t c = 0; c < cols; ++c) q.codes[size_t(r * cols + c)] = code_of(t.data[size_t(r * cols + c)], inv, 127);
  }
  measure(t, q, w);
  return q;
}

namespace {

// One tensor's rate/distortion curve on a grid of steps, measured on an evenly strided sample.
struct Curve {
  std::vector<double> step, bits, err;  // bits and err for the whole tensor
  double n = 0;
};

Curve curve_of(const EcsqTensor& e) {
  const FloatTensor& t = *e.tensor;
  const int64_t cols = t.cols();
  const size_t n = t.data.size();
  Curve c;
  c.n = double(n);
  double sq = 0;
  for (float x : t.data) sq += double(x) * x;
  const double rms = n ? std::sqrt(sq / double(n)) : 0;
  if (rms == 0) {
    c.step = {1.0};
    c.bits = {0.0};
    c.err = {0.0};
    return c;
  }
  const auto rm = row_max(t);
  constexpr size_t kSample = 1 << 18;
  const size_t stride = std::max<size_t>(1, n / kSample);
  const double scale_up = double(n) / double((n + stride - 1) / stride);
  // Steps from rms/128 (about 9 bits) to 8 * rms (mostly zeros), 8 per octave.
  for (int k = -56; k <= 24; ++k) {
    const double step = rms * std::exp2(double(k) / 8.0);
    std::array<uint64_t, 256> h{};
    double err = 0;
    uint64_t m = 0;
    for (size_t i = 0; i < n; i += stride, ++m) {
      const float s = row_step(step, rm[i / size_t(cols)]);
      const int8_t q = code_of(t.data[i], 1.0f / s, 127);
      ++h[uint8_t(q)];
      const double d = double(t.data[i]) - double(s) * q;
      const double cw = e.weights.col.empty() ? 1.0 : e.weights.col[i % size_t(cols)];
      const double rw = e.weights.row.empty() ? 1.0 : e.weights.row[i / size_t(cols)];
      err += cw * rw * d * d;
    }
    double bits = 0;
    for (uint64_t k2 : h)
      if (k2) bits -= double(k2) * std::log2(double(k2) / double(m));
    c.step.push_back(step);
    c.bits.push_back(bits * scale_up);
    c.err.push_back(err * scale_up * e.sensitivity);
  }
  return c;
}

}  // namespace

std::vector<double> allocate_ecsq_steps(const std::vector<EcsqTensor>& tensors, double target_bpw, int n_threads) {
  if (!(target_bpw > 0 && target_bpw <= 8)) fail_usage("--target-bpw must be in (0, 8]");
  std::vector<Curve> curves(tensors.size());
  parallel_for(tensors.size(), size_t(n_threads), [&](size_t i) { curves[i] = curve_of(tensors[i]); });
  double total_n = 0;
  for (const auto& c : curves) total_n += c.n;
  const double budget = target_bpw * total_n;
  // For a multiplier lam, each tensor takes the step minimising bits + lam * err; total bits grow
  // with lam, so bisect (in log space) for the largest lam within the budget.
  auto choose = [&](double lam, std::vector<size_t>& pick) {
    double bits = 0;
    pick.resize(curves.size());
    for (size_t t = 0; t < curves.size(); ++t) {
      const auto& c = curves[t];
      size_t best = 0;
      double best_cost = INFINITY;
      for (size_t k = 0; k < c.step.size(); ++k) {
        const double cost = c.bits[k] + lam * c.err[k];
        if (cost < best_cost) best_cost = cost, best = k;
      }
      pick[t] = best;
      bits += c.bits[best];
    }
    return bits;
  };
  std::vector<size_t> pick;
  double lo = -80, hi = 80;  // log2 lam
  for (int it = 0; it < 100; ++it) {
    const double mid = 0.5 * (lo + hi);
    if (choose(std::exp2(mid), pick) <= budget) lo = mid;
    else hi = mid;
  }
  choose(std::exp2(lo), pick);
  std::vector<double> steps(curves.size());
  for (size_t t = 0; t < curves.size(); ++t) steps[t] = curves[t].step[pick[t]];
  return steps;
}

}  // namespace dcq::lossy
