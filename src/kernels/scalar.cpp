// Scalar reference kernels: activation quantizers and dot products for every supported weight
// format. Integer sums inside a block are exact; blocks are combined in float the way ggml's
// generic kernels do, so these are the twins every SIMD path is tested against.
#include <cmath>
#include <cstring>
#include <string>

#include "dcq/error.hpp"
#include "dcq/quant.hpp"
#include "kernels/blocks.hpp"

namespace dcq::kernels {

int nearest_even(float x) { return static_cast<int>(std::nearbyint(x)); }

namespace {

// ---------------------------------------------------------------- activation quantizers

void quantize_f32(const float* x, void* dst, int64_t n) { std::memcpy(dst, x, size_t(n) * 4); }

void quantize_f16(const float* x, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = float_to_fp16(x[i]);
}

void quantize_bf16(const float* x, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = float_to_bf16(x[i]);
}

// ggml-cpu's x86 quantize_row_q8_0: scale by 127/amax (not 1/d), round half to even.
template <typename Block, bool with_sum>
void quantize_q8_legacy(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<Block*>(dst);
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    float amax = 0;
    for (int j = 0; j < QK; ++j) amax = std::fmax(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    const float id = amax != 0.f ? 127.f / amax : 0.f;
    y[b].d = float_to_fp16(d);
    int sum = 0;
    for (int j = 0; j < QK; ++j) {
      const int q = nearest_even(x[j] * id);
      y[b].qs[j] = static_cast<int8_t>(q);
      sum += q;
    }
    if constexpr (with_sum) y[b].s = float_to_fp16(d * static_cast<float>(sum));
  }
}

// ggml's quantize_row_q8_K_ref: scale -127/max of the signed extreme, clamp at 127, group sums.
void quantize_q8_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    float max = 0, amax = 0;
    for (int j = 0; j < QK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) { amax = ax; max = x[j]; }
    }
    if (amax == 0.f) {
      std::memset(&y[b], 0, sizeof(BlockQ8_K));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; ++j) {
      const int v = nearest_even(iscale * x[j]);
      y[b].qs[j] = static_cast<int8_t>(v < 127 ? v : 127);
    }
    for (int g = 0; g < QK_K / 16; ++g) {
      int s = 0;
      for (int j = 0; j < 16; ++j) s += y[b].qs[g * 16 + j];
      y[b].bsums[g] = static_cast<int16_t>(s);
    }
    y[b].d = 1.f / iscale;
  }
}

// ---------------------------------------------------------------- float formats

float dot_f32(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * double(y[i]);
  return static_cast<float>(s);
}

float dot_f16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(fp16_to_float(x[i])) * double(fp16_to_float(y[i]));
  return static_cast<float>(s);
}

float dot_bf16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(bf16_to_float(x[i])) * double(bf16_to_float(y[i]));
  return static_cast<float>(s);
}

// ---------------------------------------------------------------- legacy 32-blocks

// Unpacks the 32 integer levels of a legacy block (low nibbles first, as ggml stores them).
inline void unpack_nibbles(const uint8_t* qs, int offset, int8_t* out) {
  for (int j = 0; j < 16; ++j) {
    out[j] = static_cast<int8_t>((qs[j] & 0x0F) - offset);
    out[j + 16] = static_cast<int8_t>((qs[j] >> 4) - offset);
  }
}
inline void unpack_5bit(const uint8_t* qs, const uint8_t* qh4, int offset, int8_t* out) {
  uint32_t qh;
  std::memcpy(&qh, qh4, 4);
  for (int j = 0; j < 16; ++j) {
    const int h0 = ((qh >> j) & 1) << 4;
    const int h1 = ((qh >> (j + 16)) & 1) << 4;
    out[j] = static_cast<int8_t>(((qs[j] & 0x0F) | h0) - offset);
    out[j + 16] = static_cast<int8_t>(((qs[j] >> 4) | h1) - offset);
  }
}
inline int dot32(const int8_t* a, const int8_t* b) {
  int s = 0;
  for (int j = 0; j < QK; ++j) s += int(a[j]) * int(b[j]);
  return s;
}

float dot_q4_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0;
  int8_t v[QK];
  for (int64_t b = 0; b < n / QK; ++b) {
    unpack_nibbles(x[b].qs, 8, v);
    sum += (h2f(x[b].d) * h2f(y[b].d)) * static_cast<float>(dot32(v, y[b].qs));
  }
  return sum;
}

float dot_q4_1(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  float sum = 0;
  int8_t v[QK];
  for (int64_t b = 0; b < n / QK; ++b) {
    unpack_nibbles(x[b].qs, 0, v);
    sum += (h2f(x[b].d) * h2f(y[b].d)) * static_cast<float>(dot32(v, y[b].qs)) + h2f(x[b].m) * h2f(y[b].s);
  }
  return sum;
}

float dot_q5_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0;
  int8_t v[QK];
  for (int64_t b = 0; b < n / QK; ++b) {
    unpack_5bit(x[b].qs, x[b].qh, 16, v);
    sum += (h2f(x[b].d) * h2f(y[b].d)) * static_cast<float>(dot32(v, y[b].qs));
  }
  return sum;
}

float dot_q5_1(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  float sum = 0;
  int8_t v[QK];
  for (int64_t b = 0; b < n / QK; ++b) {
    unpack_5bit(x[b].qs, x[b].qh, 0, v);
    sum += (h2f(x[b].d) * h2f(y[b].d)) * static_cast<float>(dot32(v, y[b].qs)) + h2f(x[b].m) * h2f(y[b].s);
  }
  return sum;
}

float dot_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / QK; ++b)
    sum += (h2f(x[b].d) * h2f(y[b].d)) * static_cast<float>(dot32(x[b].qs, y[b].qs));
  return sum;
}

float dot_iq4_nl(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ4NL*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0;
  int8_t v[QK];
  for (int64_t b = 0; b < n / QK; ++b) {
    for (int j = 0; j < 16; ++j) {
      v[j] = kIq4nlValues[x[b].qs[j] & 0x0F];
      v[j + 16] = kIq4nlValues[x[b].qs[j] >> 4];
    }
    sum += (h2f(x[b].d) * h2f(y[b].d)) * static_cast<float>(dot32(v, y[b].qs));
  }
  return sum;
}

// ---------------------------------------------------------------- k-quants (256-blocks)

// The 6-bit scale and min of sub-block j of a Q4_K/Q5_K block (ggml's get_scale_min_k4).
inline void scale_min_k4(int j, const uint8_t* q, int& d, int& m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Sum over groups of `group` values of scale[g] * (v . q8), all in integers.
inline int scaled_isum(const int8_t* v, const int8_t* q8, const int* scale, int group) {
  int total = 0;
  for (int g = 0; g < QK_K / group; ++g) {
    int s = 0;
    for (int j = 0; j < group; ++j) s += int(v[g * group + j]) * int(q8[g * group + j]);
    total += scale[g] * s;
  }
  return total;
}

float dot_q2_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ2_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  int8_t v[QK_K];
  int sc[16];
  for (int64_t b = 0; b < n / QK_K; ++b) {
    int summs = 0;
    for (int g = 0; g < 16; ++g) {
      sc[g] = x[b].scales[g] & 0x0F;
      summs += y[b].bsums[g] * (x[b].scales[g] >> 4);
    }
    // 128 values per half: 4 bit-planes (shift 0,2,4,6) of 32 bytes.
    for (int half = 0; half < 2; ++half)
      for (int plane = 0; plane < 4; ++plane)
        for (int l = 0; l < 32; ++l)
          v[half * 128 + plane * 32 + l] = static_cast<int8_t>((x[b].qs[half * 32 + l] >> (2 * plane)) & 3);
    const float dall = y[b].d * h2f(x[b].d);
    const float dmin = y[b].d * h2f(x[b].dmin);
    sum += dall * static_cast<float>(scaled_isum(v, y[b].qs, sc, 16)) - dmin * static_cast<float>(summs);
  }
  return sum;
}

float dot_q3_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ3_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  int8_t v[QK_K];
  int sc[16];
  for (int64_t b = 0; b < n / QK_K; ++b) {
    uint8_t m = 1;
    for (int half = 0; half < 2; ++half)
      for (int plane = 0; plane < 4; ++plane, m <<= 1)
        for (int l = 0; l < 32; ++l) {
          const int q = (x[b].qs[half * 32 + l] >> (2 * plane)) & 3;
          v[half * 128 + plane * 32 + l] = static_cast<int8_t>(q - ((x[b].hmask[l] & m) ? 0 : 4));
        }
    // 16 six-bit scales: low 4 bits in bytes 0..7 (two per byte), high 2 bits in bytes 8..11.
    const uint8_t* s = x[b].scales;
    for (int g = 0; g < 16; ++g) {
      const int lo = (g < 8) ? (s[g] & 0x0F) : (s[g - 8] >> 4);
      const int hi = (s[8 + (g % 4)] >> (2 * (g / 4))) & 3;
      sc[g] = (lo | (hi << 4)) - 32;
    }
    sum += h2f(x[b].d) * y[b].d * static_cast<float>(scaled_isum(v, y[b].qs, sc, 16));
  }
  return sum;
}

template <bool five>
float dot_q45_k(int64_t n, const void* w, const void* a) {
  using Block = std::conditional_t<five, BlockQ5_K, BlockQ4_K>;
  const auto* x = static_cast<const Block*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  int8_t v[QK_K];
  int sc[8];
  for (int64_t b = 0; b < n / QK_K; ++b) {
    for (int chunk = 0; chunk < 4; ++chunk)
      for (int l = 0; l < 32; ++l) {
        const uint8_t q = x[b].qs[chunk * 32 + l];
        int lo = q & 0x0F, hi = q >> 4;
        if constexpr (five) {
          lo += (x[b].qh[l] >> (2 * chunk)) & 1 ? 16 : 0;
          hi += (x[b].qh[l] >> (2 * chunk + 1)) & 1 ? 16 : 0;
        }
        v[chunk * 64 + l] = static_cast<int8_t>(lo);
        v[chunk * 64 + 32 + l] = static_cast<int8_t>(hi);
      }
    int summs = 0;
    for (int g = 0; g < 8; ++g) {
      int d, m;
      scale_min_k4(g, x[b].scales, d, m);
      sc[g] = d;
      summs += m * (y[b].bsums[2 * g] + y[b].bsums[2 * g + 1]);
    }
    const float d = h2f(x[b].d) * y[b].d;
    const float dmin = h2f(x[b].dmin) * y[b].d;
    sum += d * static_cast<float>(scaled_isum(v, y[b].qs, sc, 32)) - dmin * static_cast<float>(summs);
  }
  return sum;
}

float dot_q6_k(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ6_K*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  int8_t v[QK_K];
  int sc[16];
  for (int64_t b = 0; b < n / QK_K; ++b) {
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = x[b].ql + half * 64;
      const uint8_t* qh = x[b].qh + half * 32;
      int8_t* o = v + half * 128;
      for (int l = 0; l < 32; ++l) {
        o[l] = static_cast<int8_t>(((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32);
        o[l + 32] = static_cast<int8_t>(((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32);
        o[l + 64] = static_cast<int8_t>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
        o[l + 96] = static_cast<int8_t>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
      }
    }
    for (int g = 0; g < 16; ++g) sc[g] = x[b].scales[g];
    sum += h2f(x[b].d) * y[b].d * static_cast<float>(scaled_isum(v, y[b].qs, sc, 16));
  }
  return sum;
}

float dot_iq4_xs(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ4XS*>(w);
  const auto* y = static_cast<const BlockQ8_K*>(a);
  float sum = 0;
  int8_t v[QK_K];
  int sc[8];
  for (int64_t b = 0; b < n / QK_K; ++b) {
    for (int g = 0; g < 8; ++g) {
      const int ls = ((x[b].scales_l[g / 2] >> (4 * (g % 2))) & 0x0F) | (((x[b].scales_h >> (2 * g)) & 3) << 4);
      sc[g] = ls - 32;
      const uint8_t* qs = x[b].qs + 16 * g;
      for (int j = 0; j < 16; ++j) {
        v[32 * g + j] = kIq4nlValues[qs[j] & 0x0F];
        v[32 * g + 16 + j] = kIq4nlValues[qs[j] >> 4];
      }
    }
    sum += h2f(x[b].d) * y[b].d * static_cast<float>(scaled_isum(v, y[b].qs, sc, 32));
  }
  return sum;
}

}  // namespace

// Per group: the integer-valued products summed in float, then scaled (the SIMD twins keep the
// same grouping, so they differ only by summation order inside a group).
static float dot_i8_scalar(int64_t n, const int8_t* w, const float* x, const float* scales, int64_t group) {
  double sum = 0;
  for (int64_t g0 = 0, g = 0; g0 < n; g0 += group, ++g) {
    float acc = 0;
    for (int64_t k = g0; k < g0 + group; ++k) acc += float(w[k]) * x[k];
    sum += double(scales[g]) * acc;
  }
  return float(sum);
}

static void dot_i8_4_scalar(int64_t n, const int8_t* w, const float* const x[4], const float* scales, int64_t group,
                            float out[4]) {
  for (int i = 0; i < 4; ++i) out[i] = dot_i8_scalar(n, w, x[i], scales, group);
}

// Lane groups of 16 rows (BlockQ8_0x16 / BlockQ4_0x16): each row's block sum is the exact
// integer dot_q8_0 / dot_q4_0 computes, then sum += (dx * dy) * float(isum) in block order, so
// every output is bit-identical with the plain layout (the twin of the SIMD lane kernels; the
// token data of lane_act is not needed without the unsigned-weight trick).
static void lane_q8_0(int64_t n, const void* group, const void* const a[], const LaneAct* const[], int n_tok,
                      float* out) {
  const auto* x = static_cast<const BlockQ8_0x16*>(group);
  for (int t = 0; t < n_tok; ++t) {
    const auto* y = static_cast<const BlockQ8_0*>(a[t]);
    for (int r = 0; r < kLaneRows; ++r) {
      float sum = 0;
      for (int64_t b = 0; b < n / QK; ++b) {
        int32_t isum = 0;
        for (int c = 0; c < 8; ++c)
          for (int k = 0; k < 4; ++k) isum += int32_t(x[b].qs[c][r][k]) * y[b].qs[4 * c + k];
        sum += (h2f(x[b].d[r]) * h2f(y[b].d)) * static_cast<float>(isum);
      }
      out[kLaneRows * t + r] = sum;
    }
  }
}

static void lane_q4_0(int64_t n, const void* group, const void* const a[], const LaneAct* const[], int n_tok,
                      float* out) {
  const auto* x = static_cast<const BlockQ4_0x16*>(group);
  for (int t = 0; t < n_tok; ++t) {
    const auto* y = static_cast<const BlockQ8_0*>(a[t]);
    for (int r = 0; r < kLaneRows; ++r) {
      float sum = 0;
      for (int64_t b = 0; b < n / QK; ++b) {
        int32_t isum = 0;
        for (int c = 0; c < 4; ++c)
          for (int k = 0; k < 4; ++k) {
            const int v = x[b].qs[c][r][k];
            isum += ((v & 0x0F) - 8) * y[b].qs[4 * c + k] + ((v >> 4) - 8) * y[b].qs[16 + 4 * c + k];
          }
        sum += (h2f(x[b].d[r]) * h2f(y[b].d)) * static_cast<float>(isum);
      }
      out[kLaneRows * t + r] = sum;
    }
  }
}

void fill_scalar(KernelTable& t) {
  auto set = [&](GgmlType type, VecDotFn f) { t.vec_dot[static_cast<int>(type)] = f; };
  set(GgmlType::F32, dot_f32);
  set(GgmlType::F16, dot_f16);
  set(GgmlType::BF16, dot_bf16);
  set(GgmlType::Q4_0, dot_q4_0);
  set(GgmlType::Q4_1, dot_q4_1);
  set(GgmlType::Q5_0, dot_q5_0);
  set(GgmlType::Q5_1, dot_q5_1);
  set(GgmlType::Q8_0, dot_q8_0);
  set(GgmlType::IQ4_NL, dot_iq4_nl);
  set(GgmlType::Q2_K, dot_q2_k);
  set(GgmlType::Q3_K, dot_q3_k);
  set(GgmlType::Q4_K, dot_q45_k<false>);
  set(GgmlType::Q5_K, dot_q45_k<true>);
  set(GgmlType::Q6_K, dot_q6_k);
  set(GgmlType::IQ4_XS, dot_iq4_xs);
  auto q = [&](GgmlType type, QuantizeFn f) { t.quantize[static_cast<int>(type)] = f; };
  q(GgmlType::F32, quantize_f32);
  q(GgmlType::F16, quantize_f16);
  q(GgmlType::BF16, quantize_bf16);
  q(GgmlType::Q8_0, quantize_q8_legacy<BlockQ8_0, false>);
  q(GgmlType::Q8_1, quantize_q8_legacy<BlockQ8_1, true>);
  q(GgmlType::Q8_K, quantize_q8_k);
  t.attention = attention_f16_scalar;
  t.dot_i8 = dot_i8_scalar;
  t.dot_i8_4 = dot_i8_4_scalar;
  t.lane_group[static_cast<int>(GgmlType::Q8_0)] = lane_q8_0;
  t.lane_group[static_cast<int>(GgmlType::Q4_0)] = lane_q4_0;
  t.group_dot[static_cast<int>(GgmlType::Q8_0)] = lane_group_dot<lane_q8_0, GgmlType::Q8_0>;
  t.group_dot[static_cast<int>(GgmlType::Q4_0)] = lane_group_dot<lane_q4_0, GgmlType::Q4_0>;
  fill_scalar_repack_kquant(t);  // interleaved Q4_K
}

float dot_lanes_scalar(GgmlType type, int lanes, int64_t n, const void* w, const void* a) {
  DCQ_ASSERT((type == GgmlType::F32 || type == GgmlType::F16) && lanes > 0 && lanes <= 16 &&
             (lanes & (lanes - 1)) == 0 && n % lanes == 0);
  auto value = [&](const void* p, int64_t i) {
    return type == GgmlType::F32 ? static_cast<const float*>(p)[i] : fp16_to_float(static_cast<const uint16_t*>(p)[i]);
  };
  float acc[16] = {};
  for (int64_t i = 0; i < n; i += lanes)
    for (int l = 0; l < lanes; ++l) acc[l] = std::fma(value(w, i + l), value(a, i + l), acc[l]);
  for (int half = lanes / 2; half >= 1; half /= 2)
    for (int l = 0; l < half; ++l) acc[l] = acc[l] + acc[l + half];
  return acc[0];
}

void dequantize_row_scalar(GgmlType type, const void* src, float* dst, int64_t n) {
  // The block-format library is bit-exact with ggml's to_float (get_rows uses exactly that).
  dequantize(type, src, dst, n);
}

}  // namespace dcq::kernels
