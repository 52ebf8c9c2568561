// The legacy 32-element block types: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (and Q8_1 for activations).
// Quantizers follow ggml's quantize_row_*_ref, which is what llama-quantize runs without an
// importance matrix; dequantizers follow dequantize_row_*. Blocks are copied through a local
// struct so callers may pass unaligned buffers.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "dcq/fp16.hpp"
#include "dcq/quant_blocks.hpp"
#include "quant/quant_internal.hpp"

namespace dcq::quant_detail {

using namespace dcq::blocks;

namespace {

// Largest |x| of a block together with its signed value (the first one met on ties): the
// symmetric types map that value to the most negative level.
inline float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

inline void min_max(const float* x, int n, float& min, float& max) {
  min = FLT_MAX;
  max = -FLT_MAX;
  for (int j = 0; j < n; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
}

// Packs the fifth bits of 32 5-bit values (element j -> bit j) as ggml does.
inline void store_qh(uint8_t* dst, uint32_t qh) {
  for (int b = 0; b < 4; ++b) dst[b] = uint8_t(qh >> (8 * b));
}
inline uint32_t load_qh(const uint8_t* src) {
  return uint32_t(src[0]) | uint32_t(src[1]) << 8 | uint32_t(src[2]) << 16 | uint32_t(src[3]) << 24;
}

}  // namespace

void quantize_q4_0(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < nblocks; ++i, x += QK4_0, out += sizeof(BlockQ4_0)) {
    BlockQ4_0 b;
    const float d = signed_absmax(x, QK4_0) / -8;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = float_to_fp16(d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      // Truncation after +8.5 rounds half up; values stay within [0, 16].
      const int q0 = std::min(15, int(x[j] * id + 8.5f));
      const int q1 = std::min(15, int(x[j + QK4_0 / 2] * id + 8.5f));
      b.qs[j] = uint8_t(q0 | (q1 << 4));
    }
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_q4_1(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < nblocks; ++i, x += QK4_1, out += sizeof(BlockQ4_1)) {
    BlockQ4_1 b;
    float min, max;
    min_max(x, QK4_1, min, max);
    const float d = (max - min) / ((1 << 4) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = float_to_fp16(d);
    b.m = float_to_fp16(min);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      const int q0 = std::min(15, int((x[j] - min) * id + 0.5f));
      const int q1 = std::min(15, int((x[j + QK4_1 / 2] - min) * id + 0.5f));
      b.qs[j] = uint8_t(q0 | (q1 << 4));
    }
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_q5_0(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < nblocks; ++i, x += QK5_0, out += sizeof(BlockQ5_0)) {
    BlockQ5_0 b;
    const float d = signed_absmax(x, QK5_0) / -16;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = float_to_fp16(d);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int q0 = std::min(31, int(x[j] * id + 16.5f));
      const int q1 = std::min(31, int(x[j + QK5_0 / 2] * id + 16.5f));
      b.qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= uint32_t((q0 & 0x10) >> 4) << j;
      qh |= uint32_t((q1 & 0x10) >> 4) << (j + QK5_0 / 2);
    }
    store_qh(b.qh, qh);
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_q5_1(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < nblocks; ++i, x += QK5_1, out += sizeof(BlockQ5_1)) {
    BlockQ5_1 b;
    float min, max;
    min_max(x, QK5_1, min, max);
    const float d = (max - min) / ((1 << 5) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = float_to_fp16(d);
    b.m = float_to_fp16(min);
    uint32_t qh = 0;
    for (int j = 0; j < QK5_1 / 2; ++j) {
      // No clamp here in ggml: a value rounding to 32 wraps to 0 through the bit masks, and
      // byte identity needs the same wrap.
      const uint8_t q0 = uint8_t(int((x[j] - min) * id + 0.5f));
      const uint8_t q1 = uint8_t(int((x[j + QK5_1 / 2] - min) * id + 0.5f));
      b.qs[j] = uint8_t((q0 & 0x0F) | ((q1 & 0x0F) << 4));
      qh |= uint32_t((q0 & 0x10u) >> 4) << j;
      qh |= uint32_t((q1 & 0x10u) >> 4) << (j + QK5_1 / 2);
    }
    store_qh(b.qh, qh);
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_q8_0(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < nblocks; ++i, x += QK8_0, out += sizeof(BlockQ8_0)) {
    BlockQ8_0 b;
    float amax = 0.0f;
    for (int j = 0; j < QK8_0; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = float_to_fp16(d);
    for (int j = 0; j < QK8_0; ++j) b.qs[j] = int8_t(round_half_away(x[j] * id));
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_q8_1(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < nblocks; ++i, x += QK8_1, out += sizeof(BlockQ8_1)) {
    BlockQ8_1 b;
    float amax = 0.0f;
    for (int j = 0; j < QK8_1; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / ((1 << 7) - 1);
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b.d = float_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < QK8_1; ++j) {
      b.qs[j] = int8_t(round_half_away(x[j] * id));
      sum += b.qs[j];
    }
    b.s = float_to_fp16(float(sum) * d);
    std::memcpy(out, &b, sizeof b);
  }
}

void dequantize_q4_0(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockQ4_0), y += QK4_0) {
    BlockQ4_0 b;
    std::memcpy(&b, in, sizeof b);
    const float d = fp16_to_float(b.d);
    for (int j = 0; j < QK4_0 / 2; ++j) {
      y[j] = float((b.qs[j] & 0x0F) - 8) * d;
      y[j + QK4_0 / 2] = float((b.qs[j] >> 4) - 8) * d;
    }
  }
}

void dequantize_q4_1(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockQ4_1), y += QK4_1) {
    BlockQ4_1 b;
    std::memcpy(&b, in, sizeof b);
    const float d = fp16_to_float(b.d), m = fp16_to_float(b.m);
    for (int j = 0; j < QK4_1 / 2; ++j) {
      y[j] = float(b.qs[j] & 0x0F) * d + m;
      y[j + QK4_1 / 2] = float(b.qs[j] >> 4) * d + m;
    }
  }
}

void dequantize_q5_0(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockQ5_0), y += QK5_0) {
    BlockQ5_0 b;
    std::memcpy(&b, in, sizeof b);
    const float d = fp16_to_float(b.d);
    const uint32_t qh = load_qh(b.qh);
    for (int j = 0; j < QK5_0 / 2; ++j) {
      const int h0 = int((qh >> j) << 4) & 0x10;
      const int h1 = int(qh >> (j + 12)) & 0x10;
      y[j] = float(((b.qs[j] & 0x0F) | h0) - 16) * d;
      y[j + QK5_0 / 2] = float(((b.qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

void dequantize_q5_1(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockQ5_1), y += QK5_1) {
    BlockQ5_1 b;
    std::memcpy(&b, in, sizeof b);
    const float d = fp16_to_float(b.d), m = fp16_to_float(b.m);
    const uint32_t qh = load_qh(b.qh);
    for (int j = 0; j < QK5_1 / 2; ++j) {
      const int h0 = int((qh >> j) << 4) & 0x10;
      const int h1 = int(qh >> (j + 12)) & 0x10;
      y[j] = float((b.qs[j] & 0x0F) | h0) * d + m;
      y[j + QK5_1 / 2] = float((b.qs[j] >> 4) | h1) * d + m;
    }
  }
}

void dequantize_q8_0(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockQ8_0), y += QK8_0) {
    BlockQ8_0 b;
    std::memcpy(&b, in, sizeof b);
    const float d = fp16_to_float(b.d);
    for (int j = 0; j < QK8_0; ++j) y[j] = float(b.qs[j]) * d;
  }
}

// ggml defines no to_float for Q8_1 (it only feeds dot products); this is the obvious inverse.
void dequantize_q8_1(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockQ8_1), y += QK8_1) {
    BlockQ8_1 b;
    std::memcpy(&b, in, sizeof b);
    const float d = fp16_to_float(b.d);
    for (int j = 0; j < QK8_1; ++j) y[j] = float(b.qs[j]) * d;
  }
}

}  // namespace dcq::quant_detail
