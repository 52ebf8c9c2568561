// Element-wise and attention ops of the llama forward pass, written to follow ggml-cpu's
// arithmetic (accumulation precision, RoPE theta recurrence, F16 KV cache) so that logits track
// llama.cpp's closely.
#include <cmath>
#include <vector>

#include "dcq/kernels.hpp"
#include "kernels/blocks.hpp"

namespace dcq::kernels {

void rmsnorm(float* out, const float* x, const float* weight, int64_t n, float eps) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += double(x[i] * x[i]);
  const float mean = static_cast<float>(sum / double(n));
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * scale) * weight[i];
}

void softmax(float* x, int64_t n) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; ++i) max = std::fmax(max, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - max);
    sum += x[i];
  }
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void swiglu(float* out, const float* gate, const float* up, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

void rope_normal(float* x, int n_heads, int head_dim, int n_rot, int pos, float freq_base,
                 float freq_scale) {
  // ggml's rope cache: theta starts at pos and is multiplied by base^(-2/n_rot) per pair, in
  // float; the rounding of that recurrence is part of llama.cpp's numbers.
  thread_local std::vector<float> cs;
  cs.resize(size_t(n_rot));
  const float theta_scale = std::pow(freq_base, -2.0f / float(n_rot));
  float theta = static_cast<float>(pos);
  for (int i = 0; i < n_rot; i += 2) {
    const float t = freq_scale * theta;
    cs[i] = std::cos(t);
    cs[i + 1] = std::sin(t);
    theta *= theta_scale;
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + size_t(h) * head_dim;
    for (int i = 0; i < n_rot; i += 2) {
      const float c = cs[i], s = cs[i + 1];
      const float x0 = v[i], x1 = v[i + 1];
      v[i] = x0 * c - x1 * s;
      v[i + 1] = x0 * s + x1 * c;
    }
  }
}

void attention_f16_scalar(const float* q, const uint16_t* k, const uint16_t* v, int64_t stride, int n_kv,
                          int head_dim, float scale, float* out) {
  thread_local std::vector<uint16_t> qh, acc;
  qh.resize(size_t(head_dim));
  acc.assign(size_t(head_dim), 0);
  for (int d = 0; d < head_dim; ++d) qh[d] = float_to_fp16(q[d]);
  float sum = 0, max = -INFINITY;
  for (int p = 0; p < n_kv; ++p) {
    const uint16_t* kr = k + size_t(p) * stride;
    const uint16_t* vr = v + size_t(p) * stride;
    double dot = 0;  // products of halves are exact in float
    for (int d = 0; d < head_dim; ++d) dot += double(h2f(kr[d]) * h2f(qh[d]));
    const float s = static_cast<float>(dot) * scale;
    float ms = 1.0f, vs = 1.0f;
    if (s > max) {
      const float old = max;
      max = s;
      ms = std::exp(old - max);
      for (int d = 0; d < head_dim; ++d) acc[d] = float_to_fp16(h2f(acc[d]) * ms);
    } else {
      vs = std::exp(s - max);
    }
    for (int d = 0; d < head_dim; ++d) acc[d] = float_to_fp16(std::fma(h2f(vr[d]), vs, h2f(acc[d])));
    sum = sum * ms + vs;
  }
  const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
  for (int d = 0; d < head_dim; ++d) out[d] = h2f(acc[d]) * inv;
}

}  // namespace dcq::kernels
