// IQ4_NL and IQ4_XS: 4-bit indices into a fixed non-linear table (kIq4nlValues). The quantizer
// is ggml's quantize_row_iq4_nl_impl as llama-quantize calls it (quantize_iq4_nl /
// quantize_iq4_xs, 7 extra scale trials each side, no importance matrix).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "dcq/fp16.hpp"
#include "dcq/quant_blocks.hpp"
#include "quant/quant_internal.hpp"

namespace dcq::quant_detail {

using namespace dcq::blocks;

namespace {

constexpr float kGroupMaxEps = 1e-15f;
constexpr int kNtry = 7;

constexpr float kValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// Index of the table value nearest to x, with exactly the comparisons of ggml's bisection
// (best_index_int8): below/above the table the end points, else the neighbours lo <= x < hi and
// `x - lo < hi - x ? lo : hi` (ties to the upper one).
inline int best_index(float x) {
  if (x <= kValues[0]) return 0;
  if (x >= kValues[15]) return 15;
  int ml = 0;
  for (int k = 1; k < 15; ++k) ml += kValues[k] <= x ? 1 : 0;
  return x - kValues[ml] < kValues[ml + 1] - x ? ml : ml + 1;
}

// The table value best_index(x[j]) picks, for 32 values at once. Branch-free so the compiler
// vectorizes it: lo = the largest of entries 0..14 that is <= x (entry 0 if none), hi = the
// smallest of entries 1..14 above x (entry 15 if none). Outside the table this gives (v0, v1)
// resp. (v14, v15), where the final comparison returns the end point, as the bisection does.
// This is the quantizer's inner loop (16 trial scales per element).
inline void nearest_values(const float* x, float* q) {
  for (int j = 0; j < 32; ++j) {
    const float xj = x[j];
    float lo = kValues[0], hi = kValues[15];
    for (int k = 1; k < 15; ++k) lo = kValues[k] <= xj ? kValues[k] : lo;
    for (int k = 14; k >= 1; --k) hi = kValues[k] > xj ? kValues[k] : hi;
    q[j] = xj - lo < hi - xj ? lo : hi;
  }
}

// sumqx = sum w q x and sumq2 = sum w q q with w = x^2, for the levels picked at inverse scale id,
// accumulated in element order as ggml does.
inline void trial_sums(const float* xb, float id, float& sumqx, float& sumq2) {
  float al[32], q[32];
  for (int j = 0; j < 32; ++j) al[j] = id * xb[j];
  nearest_values(al, q);
  sumqx = sumq2 = 0;
  for (int j = 0; j < 32; ++j) {
    const float w = xb[j] * xb[j];
    sumqx += w * q[j] * xb[j];
    sumq2 += w * q[j] * q[j];
  }
}

// Best scale for one 32-element block under x^2 weights: start from -max/-127, then try the
// inverse scales (itry - 127) / max for itry in [-7, 7] and keep the best sumqx^2 / sumq2.
// Returns 0 for an all-zero block.
float block_scale(const float* xb) {
  float amax = 0, max = 0;
  for (int j = 0; j < 32; ++j) {
    const float ax = std::fabs(xb[j]);
    if (ax > amax) {
      amax = ax;
      max = xb[j];
    }
  }
  if (amax < kGroupMaxEps) return 0;
  const float v0 = float(kIq4nlValues[0]);
  float d = -max / v0;
  float sumqx, sumq2;
  trial_sums(xb, 1 / d, sumqx, sumq2);
  d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
  float best = d * sumqx;
  for (int itry = -kNtry; itry <= kNtry; ++itry) {
    trial_sums(xb, float(itry + kIq4nlValues[0]) / max, sumqx, sumq2);
    if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
      d = sumqx / sumq2;
      best = d * sumqx;
    }
  }
  return d;
}

// Element j of a 32-element group in the low nibble of byte j, element j + 16 in the high one.
inline void pack_nibbles(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < 16; ++j) qs[j] = uint8_t(L[j] | (L[16 + j] << 4));
}

}  // namespace

void quantize_iq4_nl(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < nblocks; ++i, x += QK4_NL, out += sizeof(BlockIQ4_NL)) {
    BlockIQ4_NL b;
    const float d = block_scale(x);
    b.d = float_to_fp16(d);
    // Levels are re-chosen against the float scale (not its fp16 rounding), as in ggml.
    const float id = d != 0.0f ? 1 / d : 0;
    uint8_t L[QK4_NL];
    for (int j = 0; j < QK4_NL; ++j) L[j] = uint8_t(best_index(id * x[j]));
    pack_nibbles(L, b.qs);
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_iq4_xs(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < nblocks; ++i, x += QK_K, out += sizeof(BlockIQ4_XS)) {
    BlockIQ4_XS b;
    float scales[QK_K / 32];
    float max_scale = 0, amax_scale = 0;
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      scales[ib] = block_scale(x + 32 * ib);
      const float abs_d = std::fabs(scales[ib]);
      if (abs_d > amax_scale) {
        amax_scale = abs_d;
        max_scale = scales[ib];
      }
    }
    // 6-bit sub-block scales l in [-32, 31] against d = -max_scale / 32, stored offset by 32.
    const float d = -max_scale / 32;
    b.d = float_to_fp16(d);
    b.scales_h = 0;
    std::memset(b.scales_l, 0, sizeof b.scales_l);
    const float id = d != 0.0f ? 1 / d : 0.f;
    uint8_t L[QK_K];
    for (int ib = 0; ib < QK_K / 32; ++ib) {
      int l = nearest_int(id * scales[ib]);
      l = std::max(-32, std::min(31, l));
      const float dl = d * float(l);
      const float idl = dl != 0.0f ? 1 / dl : 0.f;
      for (int j = 0; j < 32; ++j) L[32 * ib + j] = uint8_t(best_index(idl * x[32 * ib + j]));
      l += 32;
      if (ib % 2 == 0) b.scales_l[ib / 2] = uint8_t(l & 0xF);
      else b.scales_l[ib / 2] |= uint8_t((l & 0xF) << 4);
      b.scales_h = uint16_t(b.scales_h | ((l >> 4) << (2 * ib)));
    }
    for (int g = 0; g < QK_K / 32; ++g) pack_nibbles(L + 32 * g, b.qs + 16 * g);
    std::memcpy(out, &b, sizeof b);
  }
}

void dequantize_iq4_nl(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockIQ4_NL), y += QK4_NL) {
    BlockIQ4_NL b;
    std::memcpy(&b, in, sizeof b);
    const float d = fp16_to_float(b.d);
    for (int j = 0; j < QK4_NL / 2; ++j) {
      y[j] = d * float(kIq4nlValues[b.qs[j] & 0xF]);
      y[j + QK4_NL / 2] = d * float(kIq4nlValues[b.qs[j] >> 4]);
    }
  }
}

void dequantize_iq4_xs(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockIQ4_XS)) {
    BlockIQ4_XS b;
    std::memcpy(&b, in, sizeof b);
    const float d = fp16_to_float(b.d);
    const uint8_t* qs = b.qs;
    for (int ib = 0; ib < QK_K / 32; ++ib, y += 32, qs += 16) {
      const int ls = ((b.scales_l[ib / 2] >> 4 * (ib % 2)) & 0xF) | (((b.scales_h >> 2 * ib) & 3) << 4);
      const float dl = d * float(ls - 32);
      for (int j = 0; j < 16; ++j) {
        y[j] = dl * float(kIq4nlValues[qs[j] & 0xF]);
        y[j + 16] = dl * float(kIq4nlValues[qs[j] >> 4]);
      }
    }
  }
}

}  // namespace dcq::quant_detail
