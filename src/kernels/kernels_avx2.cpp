// AVX2 (+FMA, F16C) kernels. Compiled with -mavx2 -mfma -mf16c; only called when cpuid says so.
// Integer block sums are exact (as in the scalar twin); only the float accumulation order differs.
#include <immintrin.h>

#include <cmath>
#include <cstring>

#include "kernels/blocks.hpp"

namespace dcq::kernels {

namespace {

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// ---------------------------------------------------------------- float formats

float dot_f32(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 8), _mm256_loadu_ps(y + i + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 16), _mm256_loadu_ps(y + i + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i + 24), _mm256_loadu_ps(y + i + 24), s3);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i), s0);
  float sum = hsum(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  for (; i < n; ++i) sum += x[i] * y[i];
  return sum;
}

inline __m256 load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 load_bf16(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}

template <bool bf16>
float dot_half(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  auto load = [](const uint16_t* p) { return bf16 ? load_bf16(p) : load_f16(p); };
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    s0 = _mm256_fmadd_ps(load(x + i), load(y + i), s0);
    s1 = _mm256_fmadd_ps(load(x + i + 8), load(y + i + 8), s1);
  }
  for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load(x + i), load(y + i), s0);
  float sum = hsum(_mm256_add_ps(s0, s1));
  for (; i < n; ++i)
    sum += bf16 ? bf16_to_float(x[i]) * bf16_to_float(y[i]) : f16(x[i]) * f16(y[i]);
  return sum;
}

void quantize_f16(const float* x, void* dst, int64_t n) {
  auto* h = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) h[i] = float_to_fp16(x[i]);
}

// ---------------------------------------------------------------- Q8_0 / Q8_1 activations

// ggml's x86 quantize_row_q8_0/q8_1: d = amax/127, q = round_even(x * 127/amax).
template <typename Block, bool with_sum>
void quantize_q8(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<Block*>(dst);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / QK; ++b, x += QK) {
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int j = 0; j < 4; ++j) {
      v[j] = _mm256_loadu_ps(x + 8 * j);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[j]));
    }
    __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(amax, 1), _mm256_castps256_ps128(amax));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    const float mx = _mm_cvtss_f32(m4);
    const float d = mx / 127.f;
    y[b].d = float_to_fp16(d);
    const __m256 id = _mm256_set1_ps(mx != 0.f ? 127.f / mx : 0.f);
    __m256i q[4];
    for (int j = 0; j < 4; ++j)
      q[j] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[j], id), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    if constexpr (with_sum) {
      const __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
      __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      t = _mm_hadd_epi32(t, t);
      t = _mm_hadd_epi32(t, t);
      y[b].s = float_to_fp16(d * static_cast<float>(_mm_cvtsi128_si32(t)));
    }
    // Pack 32 x int32 -> int8 and undo the lane interleaving of the pack instructions.
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[b].qs), p);
  }
}

// ---------------------------------------------------------------- legacy 32-blocks

// Sum of 32 products of signed bytes as 8 int32 lanes (maddubs needs an unsigned operand, so the
// sign of x moves onto y; |x| <= 128, |y| <= 127 cannot saturate the int16 pairs).
inline __m256i dot_i8(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), _mm256_set1_epi16(1));
}
// Unsigned levels (0..31) times signed bytes.
inline __m256i dot_u8(__m256i x, __m256i y) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(x, y), _mm256_set1_epi16(1));
}
// 16 packed bytes -> 32 nibbles: low nibbles in bytes 0..15, high nibbles in 16..31 (ggml order).
inline __m256i nibbles(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m256i both = _mm256_set_m128i(_mm_srli_epi16(b, 4), b);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0F));
}
// 32 bits -> 32 bytes, 0xFF where the bit is set.
inline __m256i bits_to_bytes(const uint8_t* qh4) {
  uint32_t bits;
  std::memcpy(&bits, qh4, 4);
  const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2,
                                        3, 3, 3, 3, 3, 3, 3, 3);
  __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int>(bits)), shuf);
  const __m256i mask = _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe);
  v = _mm256_or_si256(v, mask);
  return _mm256_cmpeq_epi8(v, _mm256_set1_epi64x(-1));
}
inline int hsum_i32(__m256i v) {
  __m128i t = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  t = _mm_add_epi32(t, _mm_unpackhi_epi64(t, t));
  t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 1));
  return _mm_cvtsi128_si32(t);
}
inline __m256i load32(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

float dot_q8_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ8_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / QK; ++b)
    sum += (f16(x[b].d) * f16(y[b].d)) * static_cast<float>(hsum_i32(dot_i8(load32(x[b].qs), load32(y[b].qs))));
  return sum;
}

float dot_q4_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0;
  const __m256i eight = _mm256_set1_epi8(8);
  for (int64_t b = 0; b < n / QK; ++b) {
    const float d = f16(x[b].d) * f16(y[b].d);
    const __m256i q = _mm256_sub_epi8(nibbles(x[b].qs), eight);
    sum += d * static_cast<float>(hsum_i32(dot_i8(q, load32(y[b].qs))));
  }
  return sum;
}

float dot_q4_1(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ4_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  // Lane-wise FMA accumulation with the min terms summed apart, as ggml's AVX2 kernel does
  // (llama.cpp's logits on synth256-Q4_1 are reproduced exactly this way).
  __m256 acc = _mm256_setzero_ps();
  float summs = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    summs += f16(x[b].m) * f16(y[b].s);
    const __m256 d = _mm256_set1_ps(f16(x[b].d) * f16(y[b].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(dot_u8(nibbles(x[b].qs), load32(y[b].qs))), acc);
  }
  return hsum(acc) + summs;
}

float dot_q5_0(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_0*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    const float d = f16(x[b].d) * f16(y[b].d);
    // level - 16 = nibble | (bit ? 0 : 0xF0) as a signed byte.
    const __m256i hi = _mm256_andnot_si256(bits_to_bytes(x[b].qh), _mm256_set1_epi8(static_cast<char>(0xF0)));
    const __m256i q = _mm256_or_si256(nibbles(x[b].qs), hi);
    sum += d * static_cast<float>(hsum_i32(dot_i8(q, load32(y[b].qs))));
  }
  return sum;
}

float dot_q5_1(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockQ5_1*>(w);
  const auto* y = static_cast<const BlockQ8_1*>(a);
  float sum = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    const float d = f16(x[b].d) * f16(y[b].d);
    const __m256i hi = _mm256_and_si256(bits_to_bytes(x[b].qh), _mm256_set1_epi8(0x10));
    const __m256i q = _mm256_or_si256(nibbles(x[b].qs), hi);
    sum += d * static_cast<float>(hsum_i32(dot_u8(q, load32(y[b].qs)))) + f16(x[b].m) * f16(y[b].s);
  }
  return sum;
}

float dot_iq4_nl(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const BlockIQ4NL*>(w);
  const auto* y = static_cast<const BlockQ8_0*>(a);
  const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
  const __m256i lut = _mm256_set_m128i(table, table);
  float sum = 0;
  for (int64_t b = 0; b < n / QK; ++b) {
    const float d = f16(x[b].d) * f16(y[b].d);
    const __m256i q = _mm256_shuffle_epi8(lut, nibbles(x[b].qs));
    sum += d * static_cast<float>(hsum_i32(dot_i8(q, load32(y[b].qs))));
  }
  return sum;
}

// ---------------------------------------------------------------- attention (F16 KV cache)

// Same steps as attention_f16_scalar (q rounded to F16, online softmax, F16 accumulator rounded
// after every update) with F16C conversions; heads whose size is not a multiple of 8 use the twin.
void attention(const float* q, const uint16_t* k, const uint16_t* v, int64_t stride, int n_kv, int head_dim,
               float scale, float* out) {
  if (head_dim % 8 != 0 || head_dim > 256) return attention_f16_scalar(q, k, v, stride, n_kv, head_dim, scale, out);
  const int nv = head_dim / 8;
  __m256 qv[32];
  __m128i acc[32];
  for (int i = 0; i < nv; ++i) {
    qv[i] = _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(q + 8 * i), _MM_FROUND_TO_NEAREST_INT));
    acc[i] = _mm_setzero_si128();
  }
  float sum = 0, max = -INFINITY;
  for (int p = 0; p < n_kv; ++p) {
    const uint16_t* kr = k + p * stride;
    const uint16_t* vr = v + p * stride;
    __m256 dot = _mm256_setzero_ps();
    for (int i = 0; i < nv; ++i) dot = _mm256_fmadd_ps(load_f16(kr + 8 * i), qv[i], dot);
    const float s = hsum(dot) * scale;
    float ms = 1.0f, vs = 1.0f;
    if (s > max) {
      const float old = max;
      max = s;
      ms = std::exp(old - max);
      const __m256 m = _mm256_set1_ps(ms);
      for (int i = 0; i < nv; ++i)
        acc[i] = _mm256_cvtps_ph(_mm256_mul_ps(_mm256_cvtph_ps(acc[i]), m), _MM_FROUND_TO_NEAREST_INT);
    } else {
      vs = std::exp(s - max);
    }
    const __m256 vsv = _mm256_set1_ps(vs);
    for (int i = 0; i < nv; ++i)
      acc[i] = _mm256_cvtps_ph(_mm256_fmadd_ps(load_f16(vr + 8 * i), vsv, _mm256_cvtph_ps(acc[i])), _MM_FROUND_TO_NEAREST_INT);
    sum = sum * ms + vs;
  }
  const __m256 inv = _mm256_set1_ps(sum == 0.0f ? 0.0f : 1.0f / sum);
  for (int i = 0; i < nv; ++i) _mm256_storeu_ps(out + 8 * i, _mm256_mul_ps(_mm256_cvtph_ps(acc[i]), inv));
}

}  // namespace

void fill_avx2(KernelTable& t) {
  auto set = [&](GgmlType type, VecDotFn f) { t.vec_dot[static_cast<int>(type)] = f; };
  set(GgmlType::F32, dot_f32);
  set(GgmlType::F16, dot_half<false>);
  set(GgmlType::BF16, dot_half<true>);
  set(GgmlType::Q8_0, dot_q8_0);
  set(GgmlType::Q4_0, dot_q4_0);
  set(GgmlType::Q4_1, dot_q4_1);
  set(GgmlType::Q5_0, dot_q5_0);
  set(GgmlType::Q5_1, dot_q5_1);
  set(GgmlType::IQ4_NL, dot_iq4_nl);
  t.quantize[static_cast<int>(GgmlType::F16)] = quantize_f16;
  t.quantize[static_cast<int>(GgmlType::Q8_0)] = quantize_q8<BlockQ8_0, false>;
  t.quantize[static_cast<int>(GgmlType::Q8_1)] = quantize_q8<BlockQ8_1, true>;
  t.attention = attention;
}

}  // namespace dcq::kernels
