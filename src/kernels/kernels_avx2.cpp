// AVX2 (+FMA, F16C) kernels. Compiled with -mavx2 -mfma -mf16c; only called when cpuid says so.
// Integer block sums are exact (as in the scalar twin); only the float accumulation order differs.
#include <immintrin.h>

// With -mfma GCC would fuse `sum += d * isum` into one FMA, which rounds differently from the
// scalar twin (and from llama.cpp on stories260K-Q8_0: PPL 3.4976 fused vs 3.5018 unfused vs
// 3.5012 llama.cpp). Explicit _mm256_fmadd_ps calls below are unaffected.
#pragma GCC optimize("fp-contract=off")

#include <algorithm>
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

// A batch tile of 4 rows x 4 tokens, each output bit-identical with dot_f32 (the engine's batched
// prompt must equal token-by-token evaluation): dot_f32 keeps four 8-lane accumulators s0..s3
// over steps of 32, so the tile runs four passes, pass j computing every output's s_j (8 register
// accumulators for 2 rows x 4 tokens, each token's 8 floats loaded once for both rows and each
// row's once for the four tokens), then combines them exactly as dot_f32 does.
void gemm4x4_f32(int64_t n, const void* const w[4], const void* const a[4], float out[16]) {
  const float* y[4] = {static_cast<const float*>(a[0]), static_cast<const float*>(a[1]),
                       static_cast<const float*>(a[2]), static_cast<const float*>(a[3])};
  const int64_t n32 = n / 32 * 32, n8 = n / 8 * 8;
  for (int half = 0; half < 2; ++half) {
    const float* x[2] = {static_cast<const float*>(w[2 * half]), static_cast<const float*>(w[2 * half + 1])};
    // Passes over the whole row would use 32 of every 128 bytes per pass and stream the tile
    // from L2 four times; chunks of 256 elements keep a chunk of the 2 rows and 4 tokens (6 KiB)
    // in L1 for its four passes, the accumulators parked in s between chunks.
    __m256 s[4][2][4];  // [pass][row][token]
    for (int j = 0; j < 4; ++j)
      for (int r = 0; r < 2; ++r)
        for (int t = 0; t < 4; ++t) s[j][r][t] = _mm256_setzero_ps();
    constexpr int64_t kChunk = 256;
    for (int64_t c = 0; c < n32; c += kChunk) {
      const int64_t ce = std::min(c + kChunk, n32);
      for (int j = 0; j < 4; ++j) {
        __m256 acc[2][4];
        for (int r = 0; r < 2; ++r)
          for (int t = 0; t < 4; ++t) acc[r][t] = s[j][r][t];
        for (int64_t i = c + 8 * j; i < ce; i += 32) {
          const __m256 w0 = _mm256_loadu_ps(x[0] + i), w1 = _mm256_loadu_ps(x[1] + i);
          for (int t = 0; t < 4; ++t) {
            const __m256 yv = _mm256_loadu_ps(y[t] + i);
            acc[0][t] = _mm256_fmadd_ps(w0, yv, acc[0][t]);
            acc[1][t] = _mm256_fmadd_ps(w1, yv, acc[1][t]);
          }
        }
        for (int r = 0; r < 2; ++r)
          for (int t = 0; t < 4; ++t) s[j][r][t] = acc[r][t];
      }
    }
    for (int64_t i = n32; i < n8; i += 8) {  // dot_f32's steps of 8 after the last step of 32 go into s0
      const __m256 w0 = _mm256_loadu_ps(x[0] + i), w1 = _mm256_loadu_ps(x[1] + i);
      for (int t = 0; t < 4; ++t) {
        const __m256 yv = _mm256_loadu_ps(y[t] + i);
        s[0][0][t] = _mm256_fmadd_ps(w0, yv, s[0][0][t]);
        s[0][1][t] = _mm256_fmadd_ps(w1, yv, s[0][1][t]);
      }
    }
    for (int r = 0; r < 2; ++r) {
      for (int t = 0; t < 4; ++t) {
        float sum = hsum(_mm256_add_ps(_mm256_add_ps(s[0][r][t], s[1][r][t]), _mm256_add_ps(s[2][r][t], s[3][r][t])));
        for (int64_t i = n8; i < n; ++i) sum += x[r][i] * y[t][i];
        out[4 * t + 2 * half + r] = sum;
      }
    }
  }
}

inline __m256 load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
inline __m256 load_bf16(const uint16_t* p) {
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), 16));
}

template <bool bf16>
float dot_half(int64_t n, const void* w, const void* a) {
  // Products of two halves (or two bfloats) are exact in float; summing them in double makes the
  // result independent of the order, i.e. equal to the scalar twin.
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  auto load = [](const uint16_t* p) { return bf16 ? load_bf16(p) : load_f16(p); };
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 p = _mm256_mul_ps(load(x + i), load(y + i));
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(p)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(p, 1)));
  }
  const __m256d t = _mm256_add_pd(s0, s1);
  __m128d u = _mm_add_pd(_mm256_castpd256_pd128(t), _mm256_extractf128_pd(t, 1));
  u = _mm_add_sd(u, _mm_unpackhi_pd(u, u));
  double sum = _mm_cvtsd_f64(u);
  for (; i < n; ++i)
    sum += bf16 ? double(bf16_to_float(x[i]) * bf16_to_float(y[i])) : double(f16(x[i]) * f16(y[i]));
  return static_cast<float>(sum);
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

// Four Q8_0-activation dots at once. Per lane exactly dot_q8_0/dot_q4_0's arithmetic:
// sum_i += (dx * dy) * float(isum) in block order, unfused.
inline __m128i hsum4_i32(__m256i a, __m256i b, __m256i c, __m256i d) {
  const __m256i ab = _mm256_hadd_epi32(a, b), cd = _mm256_hadd_epi32(c, d);
  const __m256i abcd = _mm256_hadd_epi32(ab, cd);  // per 128-bit half: a, b, c, d partial sums
  return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

template <typename Block, typename Levels>
void dot4_q8act(int64_t n, const void* const w[4], const void* const a[4], float out[4], Levels levels) {
  const Block* x[4] = {static_cast<const Block*>(w[0]), static_cast<const Block*>(w[1]),
                       static_cast<const Block*>(w[2]), static_cast<const Block*>(w[3])};
  const BlockQ8_0* y[4] = {static_cast<const BlockQ8_0*>(a[0]), static_cast<const BlockQ8_0*>(a[1]),
                           static_cast<const BlockQ8_0*>(a[2]), static_cast<const BlockQ8_0*>(a[3])};
  __m128 sum = _mm_setzero_ps();
  for (int64_t b = 0; b < n / QK; ++b) {
    __m256i p[4];
    float d[4];
    for (int i = 0; i < 4; ++i) {
      p[i] = dot_i8(levels(x[i][b]), load32(y[i][b].qs));
      d[i] = f16(x[i][b].d) * f16(y[i][b].d);
    }
    const __m128 isum = _mm_cvtepi32_ps(hsum4_i32(p[0], p[1], p[2], p[3]));
    sum = _mm_add_ps(sum, _mm_mul_ps(_mm_loadu_ps(d), isum));
  }
  _mm_storeu_ps(out, sum);
}

void dot4_q8_0(int64_t n, const void* const w[4], const void* const a[4], float out[4]) {
  dot4_q8act<BlockQ8_0>(n, w, a, out, [](const BlockQ8_0& blk) { return load32(blk.qs); });
}

void dot4_q4_0(int64_t n, const void* const w[4], const void* const a[4], float out[4]) {
  dot4_q8act<BlockQ4_0>(n, w, a, out,
                        [](const BlockQ4_0& blk) { return _mm256_sub_epi8(nibbles(blk.qs), _mm256_set1_epi8(8)); });
}

void dot4_iq4_nl(int64_t n, const void* const w[4], const void* const a[4], float out[4]) {
  const __m128i table = _mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues));
  const __m256i lut = _mm256_set_m128i(table, table);
  dot4_q8act<BlockIQ4NL>(n, w, a, out, [&](const BlockIQ4NL& blk) { return _mm256_shuffle_epi8(lut, nibbles(blk.qs)); });
}

void dot4_q5_0(int64_t n, const void* const w[4], const void* const a[4], float out[4]) {
  dot4_q8act<BlockQ5_0>(n, w, a, out, [](const BlockQ5_0& blk) {
    const __m256i hi = _mm256_andnot_si256(bits_to_bytes(blk.qh), _mm256_set1_epi8(static_cast<char>(0xF0)));
    return _mm256_or_si256(nibbles(blk.qs), hi);
  });
}

// Batches: 4 rows x 4 tokens, each row's levels unpacked once per block and each token's bytes
// loaded once; per output exactly dot4_q8act's arithmetic.
template <typename Block, typename Levels>
void gemm4x4_q8act(int64_t n, const void* const w[4], const void* const a[4], float out[16], Levels levels) {
  const Block* x[4] = {static_cast<const Block*>(w[0]), static_cast<const Block*>(w[1]),
                       static_cast<const Block*>(w[2]), static_cast<const Block*>(w[3])};
  const BlockQ8_0* y[4] = {static_cast<const BlockQ8_0*>(a[0]), static_cast<const BlockQ8_0*>(a[1]),
                           static_cast<const BlockQ8_0*>(a[2]), static_cast<const BlockQ8_0*>(a[3])};
  __m128 sum[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};  // per token
  for (int64_t b = 0; b < n / QK; ++b) {
    __m256i q[4], aq[4];
    float dx[4];
    for (int r = 0; r < 4; ++r) {
      q[r] = levels(x[r][b]);
      aq[r] = _mm256_sign_epi8(q[r], q[r]);
      dx[r] = f16(x[r][b].d);
    }
    const __m128 dxv = _mm_loadu_ps(dx);
    for (int t = 0; t < 4; ++t) {
      const __m256i yv = load32(y[t][b].qs);
      __m256i p[4];
      for (int r = 0; r < 4; ++r)
        p[r] = _mm256_madd_epi16(_mm256_maddubs_epi16(aq[r], _mm256_sign_epi8(yv, q[r])), _mm256_set1_epi16(1));
      const __m128 isum = _mm_cvtepi32_ps(hsum4_i32(p[0], p[1], p[2], p[3]));
      const __m128 d = _mm_mul_ps(dxv, _mm_set1_ps(f16(y[t][b].d)));
      sum[t] = _mm_add_ps(sum[t], _mm_mul_ps(d, isum));
    }
  }
  for (int t = 0; t < 4; ++t) _mm_storeu_ps(out + 4 * t, sum[t]);
}

void gemm4x4_q8_0(int64_t n, const void* const w[4], const void* const a[4], float out[16]) {
  gemm4x4_q8act<BlockQ8_0>(n, w, a, out, [](const BlockQ8_0& blk) { return load32(blk.qs); });
}

void gemm4x4_q4_0(int64_t n, const void* const w[4], const void* const a[4], float out[16]) {
  gemm4x4_q8act<BlockQ4_0>(n, w, a, out,
                           [](const BlockQ4_0& blk) { return _mm256_sub_epi8(nibbles(blk.qs), _mm256_set1_epi8(8)); });
}

// ---------------------------------------------------------------- Q8_0 / Q4_0 lane groups

// The 16-row lane layout (blocks.hpp, BlockQ8_0x16 / BlockQ4_0x16) as two ymm halves, rows
// 8h..8h+7 in the 32-bit lanes of half h: each chunk's products land in their row's lane (madd
// with ones sums a lane's two pairs), no horizontal reduction. Per (row, token) exactly
// dot_q8_0's / dot_q4_0's arithmetic: exact integer block sums, then sum += (dx * dy) * float(isum)
// in block order, unfused: bit-identical with the scalar twin and the plain layout. A half's
// weights are loaded once per block for the NT tokens.
inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// Q8_0 keeps the sign trick (maddubs(|w|, sign(y, w))): with unsigned level + 128 a pair of
// products reaches 2 * 255 * 127 and saturates int16; |w| <= 128 and |y| <= 127 stay below 32767.
// So the correction of lane_act is not needed here.
template <int NT>
void lane_q8_0(int64_t n, const void* group, const void* const a[], const LaneAct* const act[], float* out) {
  const auto* x = static_cast<const BlockQ8_0x16*>(group);
  const BlockQ8_0* y[NT];
  for (int t = 0; t < NT; ++t) y[t] = static_cast<const BlockQ8_0*>(a[t]);
  __m256 acc[NT][2];
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < n / QK; ++b) {
    for (int h = 0; h < 2; ++h) {
      const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].d + 8 * h)));
      __m256i w[8];
      for (int c = 0; c < 8; ++c) w[c] = load32(x[b].qs[c][8 * h]);
      for (int t = 0; t < NT; ++t) {
        __m256i isum = _mm256_setzero_si256();
        for (int c = 0; c < 8; ++c) {
          const __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w[c], w[c]), _mm256_sign_epi8(bcast4(y[t][b].qs + 4 * c), w[c]));
          isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p, ones));
        }
        const __m256 d = _mm256_mul_ps(dx, _mm256_set1_ps(act[t][b].d));
        acc[t][h] = _mm256_add_ps(acc[t][h], _mm256_mul_ps(d, _mm256_cvtepi32_ps(isum)));
      }
    }
  }
  for (int t = 0; t < NT; ++t)
    for (int h = 0; h < 2; ++h) _mm256_storeu_ps(out + 16 * t + 8 * h, acc[t][h]);
}

// Q4_0: the nibbles are unsigned (level + 8), so maddubs(nibble, y) needs no sign trick; a pair is
// at most 2 * 15 * 128 = 3840, so all 8 maddubs of a block add up in int16 (<= 30720) before one
// madd; the offset comes off as lane_act's corr = -8 * sum(y).
template <int NT>
void lane_q4_0(int64_t n, const void* group, const void* const a[], const LaneAct* const act[], float* out) {
  const auto* x = static_cast<const BlockQ4_0x16*>(group);
  const BlockQ8_0* y[NT];
  for (int t = 0; t < NT; ++t) y[t] = static_cast<const BlockQ8_0*>(a[t]);
  __m256 acc[NT][2];
  for (int t = 0; t < NT; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
  const __m256i ones = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(0x0F);
  for (int64_t b = 0; b < n / QK; ++b) {
    for (int h = 0; h < 2; ++h) {
      const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[b].d + 8 * h)));
      __m256i lo[4], hi[4];  // level + 8 of elements 4c.. and 16 + 4c.., rows 8h.. in lanes
      for (int c = 0; c < 4; ++c) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[b].qs[c][8 * h]));
        lo[c] = _mm256_and_si256(v, low4);
        hi[c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      }
      for (int t = 0; t < NT; ++t) {
        __m256i s16 = _mm256_setzero_si256();
        for (int c = 0; c < 4; ++c) {
          s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(lo[c], bcast4(y[t][b].qs + 4 * c)));
          s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(hi[c], bcast4(y[t][b].qs + 16 + 4 * c)));
        }
        const __m256i isum = _mm256_add_epi32(_mm256_madd_epi16(s16, ones), _mm256_set1_epi32(act[t][b].corr));
        const __m256 d = _mm256_mul_ps(dx, _mm256_set1_ps(act[t][b].d));
        acc[t][h] = _mm256_add_ps(acc[t][h], _mm256_mul_ps(d, _mm256_cvtepi32_ps(isum)));
      }
    }
  }
  for (int t = 0; t < NT; ++t)
    for (int h = 0; h < 2; ++h) _mm256_storeu_ps(out + 16 * t + 8 * h, acc[t][h]);
}

template <template <int> class K>
void lane_dispatch(int64_t n, const void* group, const void* const a[], const LaneAct* const act[], int n_tok,
                   float* out) {
  static_assert(kLaneTokens == 4);
  switch (n_tok) {
    case 1: return K<1>::run(n, group, a, act, out);
    case 2: return K<2>::run(n, group, a, act, out);
    case 3: return K<3>::run(n, group, a, act, out);
    default: return K<4>::run(n, group, a, act, out);
  }
}
template <int NT> struct LaneQ8_0 {
  static void run(int64_t n, const void* g, const void* const a[], const LaneAct* const s[], float* o) { lane_q8_0<NT>(n, g, a, s, o); }
};
template <int NT> struct LaneQ4_0 {
  static void run(int64_t n, const void* g, const void* const a[], const LaneAct* const s[], float* o) { lane_q4_0<NT>(n, g, a, s, o); }
};

// ---------------------------------------------------------------- dcq I8 codes

// Codes widened to float and multiplied with float activations. Per group the products go into
// vector lanes; the group's lane sums are scaled into a running vector (one FMA per group, one
// horizontal sum per row), and the group's last group % 8 elements into a scalar. Compared with
// the scalar twin only the float summation order differs.
inline __m256 widen8(const int8_t* p) {
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
}

template <int T>
inline void dot_i8_rows(int64_t n, const int8_t* w, const float* const* x, const float* scales, int64_t group,
                        float* out) {
  __m256 total[T];
  float tail[T];
  for (int i = 0; i < T; ++i) total[i] = _mm256_setzero_ps(), tail[i] = 0.f;
  const int64_t vec = group & ~int64_t(7);
  for (int64_t g0 = 0, g = 0; g0 < n; g0 += group, ++g) {
    __m256 part[T];
    for (int i = 0; i < T; ++i) part[i] = _mm256_setzero_ps();
    for (int64_t k = g0; k < g0 + vec; k += 8) {
      const __m256 wf = widen8(w + k);
      for (int i = 0; i < T; ++i) part[i] = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x[i] + k), part[i]);
    }
    const __m256 sc = _mm256_set1_ps(scales[g]);
    for (int i = 0; i < T; ++i) total[i] = _mm256_fmadd_ps(sc, part[i], total[i]);
    if (vec != group) {
      for (int i = 0; i < T; ++i) {
        float t = 0.f;
        for (int64_t k = g0 + vec; k < g0 + group; ++k) t += float(w[k]) * x[i][k];
        tail[i] += scales[g] * t;
      }
    }
  }
  for (int i = 0; i < T; ++i) out[i] = hsum(total[i]) + tail[i];
}

float dot_i8(int64_t n, const int8_t* w, const float* x, const float* scales, int64_t group) {
  float out;
  dot_i8_rows<1>(n, w, &x, scales, group, &out);
  return out;
}

void dot_i8_4(int64_t n, const int8_t* w, const float* const x[4], const float* scales, int64_t group, float out[4]) {
  dot_i8_rows<4>(n, w, x, scales, group, out);
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
    // q.k summed in double from exact products, as ggml's vec_dot_f16 does for heads under 64
    // (its leftover loop), and order-independent so this equals the scalar twin.
    __m256d d0 = _mm256_setzero_pd(), d1 = _mm256_setzero_pd();
    for (int i = 0; i < nv; ++i) {
      const __m256 prod = _mm256_mul_ps(load_f16(kr + 8 * i), qv[i]);
      d0 = _mm256_add_pd(d0, _mm256_cvtps_pd(_mm256_castps256_ps128(prod)));
      d1 = _mm256_add_pd(d1, _mm256_cvtps_pd(_mm256_extractf128_ps(prod, 1)));
    }
    const __m256d t = _mm256_add_pd(d0, d1);
    __m128d u = _mm_add_pd(_mm256_castpd256_pd128(t), _mm256_extractf128_pd(t, 1));
    u = _mm_add_sd(u, _mm_unpackhi_pd(u, u));
    const float s = static_cast<float>(_mm_cvtsd_f64(u)) * scale;
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
  t.dot_i8 = dot_i8;
  t.dot_i8_4 = dot_i8_4;
  t.vec_dot4[static_cast<int>(GgmlType::Q8_0)] = dot4_q8_0;
  t.vec_dot4[static_cast<int>(GgmlType::Q4_0)] = dot4_q4_0;
  t.vec_dot4[static_cast<int>(GgmlType::Q5_0)] = dot4_q5_0;
  t.vec_dot4[static_cast<int>(GgmlType::IQ4_NL)] = dot4_iq4_nl;
  t.gemm4x4[static_cast<int>(GgmlType::Q8_0)] = gemm4x4_q8_0;
  t.gemm4x4[static_cast<int>(GgmlType::Q4_0)] = gemm4x4_q4_0;
  t.gemm4x4[static_cast<int>(GgmlType::F32)] = gemm4x4_f32;
  t.lane_group[static_cast<int>(GgmlType::Q8_0)] = lane_dispatch<LaneQ8_0>;
  t.lane_group[static_cast<int>(GgmlType::Q4_0)] = lane_dispatch<LaneQ4_0>;
  t.group_dot[static_cast<int>(GgmlType::Q8_0)] = lane_group_dot<lane_dispatch<LaneQ8_0>, GgmlType::Q8_0>;
  t.group_dot[static_cast<int>(GgmlType::Q4_0)] = lane_group_dot<lane_dispatch<LaneQ4_0>, GgmlType::Q4_0>;
  t.interleave_pays = true;
}

}  // namespace dcq::kernels
