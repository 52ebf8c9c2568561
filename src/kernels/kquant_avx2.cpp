// AVX2 (+FMA, F16C) kernels of the k-quant dots (Q4_K, Q6_K): R rows x T tokens templates.
// Compiled with -mavx2 -mfma -mf16c; only called when cpuid says so. Kept apart from
// kernels_avx2.cpp so the k-quant layouts can evolve without touching the legacy-block kernels.
#include <immintrin.h>

// Keep `sum += d * isum - dmin * summs` unfused, as in the scalar twin.
#pragma GCC optimize("fp-contract=off")

#include <cstring>
#include <type_traits>

#include "kernels/blocks.hpp"

namespace dcq::kernels {

namespace {

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

inline int hsum_i32(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

inline __m256i load32(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
// ---------------------------------------------------------------- k-quants
// Same integers as the scalar twin (sub-block sums times integer scales, exact), same float
// combination per super-block, so results are bit-identical with it.

inline __m256i load32u(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

// Broadcasts int16 word j of v (both 128-bit halves hold the same 8 words) to all 16 words.
inline __m256i bcast_word(__m256i v, int j) {
  const __m256i idx = _mm256_set1_epi16(static_cast<int16_t>((2 * j) | ((2 * j + 1) << 8)));
  return _mm256_shuffle_epi8(v, idx);
}

// The 8 six-bit scales and 8 mins of a Q4_K/Q5_K block as 16 bytes (scales in 0..7, mins in
// 8..15), unpacked from its 12 bytes with 32-bit masks instead of one byte at a time. Bytes 0..3
// hold scales 0..3 (low 6 bits) and the top 2 bits of scales 4..7; bytes 4..7 the same for the
// mins; bytes 8..11 the low nibbles of scales 4..7 and (high nibble) of mins 4..7.
inline __m128i unpack_scales_mins_k4(const uint8_t* q) {
  uint32_t u[3];
  std::memcpy(u, q, 12);
  const uint32_t six = 0x3f3f3f3f, nib = 0x0f0f0f0f, two = 0x03030303;
  const uint32_t sc_lo = u[0] & six;
  const uint32_t sc_hi = (u[2] & nib) | (((u[0] >> 6) & two) << 4);
  const uint32_t mn_lo = u[1] & six;
  const uint32_t mn_hi = ((u[2] >> 4) & nib) | (((u[1] >> 6) & two) << 4);
  return _mm_set_epi32(static_cast<int>(mn_hi), static_cast<int>(mn_lo), static_cast<int>(sc_hi),
                       static_cast<int>(sc_lo));
}

// R Q4_K rows against T token rows: out[t * R + r] = dot(w[r], a[t]). (R, T) = (1, 1) is the
// dot, (1, 4) a batch row (the row decoded once for four tokens). (4, 1), four rows of one token,
// measured slower than one row at a time (docs/kernels.md), so it is not used. Per output exactly
// the same integers (sub-block sums times scales; the order of exact integer additions does not
// matter) and the scalar twin's float steps, so every shape gives the scalar bits.
// Bit `bit` (0..7) of every byte moved to bit 4, other bits cleared: the fifth bit of a Q5_K
// level. Word shifts do not leak across bytes here (the source bit stays within its byte).
template <int bit>
inline __m256i bit_to_4(__m256i v) {
  const __m256i m = _mm256_set1_epi8(0x10);
  if constexpr (bit < 4) return _mm256_and_si256(_mm256_slli_epi16(v, 4 - bit), m);
  else if constexpr (bit == 4) return _mm256_and_si256(v, m);
  else return _mm256_and_si256(_mm256_srli_epi16(v, bit - 4), m);
}

// Q5_K (five): Q4_K's layout plus qh, whose bit 2c (2c + 1) of byte l is the fifth bit of value
// l of sub-block 2c (2c + 1); levels up to 31 keep maddubs pair sums <= 2 * 31 * 128.
template <int R, int T, bool five = false>
void dot_q4_k_tile(int64_t n, const void* const w[R], const void* const a[T], float out[R * T]) {
  using Block = std::conditional_t<five, BlockQ5_K, BlockQ4_K>;
  const Block* x[R];
  const BlockQ8_K* y[T];
  for (int r = 0; r < R; ++r) x[r] = static_cast<const Block*>(w[r]);
  for (int t = 0; t < T; ++t) y[t] = static_cast<const BlockQ8_K*>(a[t]);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  float sum[R * T];
  for (int i = 0; i < R * T; ++i) sum[i] = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    __m128i pairs[T];  // bsums of each 32-value sub-block (|sum| <= 32 * 128 fits int16)
    for (int t = 0; t < T; ++t) {
      const auto* bs = reinterpret_cast<const __m128i*>(y[t][b].bsums);
      pairs[t] = _mm_hadd_epi16(_mm_loadu_si128(bs), _mm_loadu_si128(bs + 1));
    }
    __m256i sc[R];
    __m128i mn[R];
    for (int r = 0; r < R; ++r) {
      const __m128i sm = unpack_scales_mins_k4(x[r][b].scales);
      sc[r] = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(sm));
      mn[r] = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));
    }
    __m256i acc[R * T];
    for (int i = 0; i < R * T; ++i) acc[i] = _mm256_setzero_si256();
    auto chunk = [&]<int c>() {
      for (int r = 0; r < R; ++r) {
        const __m256i q = load32u(x[r][b].qs + 32 * c);
        __m256i lo = _mm256_and_si256(q, low4);
        __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), low4);
        if constexpr (five) {
          const __m256i qh = load32u(x[r][b].qh);
          lo = _mm256_or_si256(lo, bit_to_4<2 * c>(qh));
          hi = _mm256_or_si256(hi, bit_to_4<2 * c + 1>(qh));
        }
        const __m256i slo = bcast_word(sc[r], 2 * c), shi = bcast_word(sc[r], 2 * c + 1);
        for (int t = 0; t < T; ++t) {
          const __m256i plo = _mm256_maddubs_epi16(lo, load32(y[t][b].qs + 64 * c));
          const __m256i phi = _mm256_maddubs_epi16(hi, load32(y[t][b].qs + 64 * c + 32));
          __m256i& ac = acc[t * R + r];
          ac = _mm256_add_epi32(ac, _mm256_madd_epi16(plo, slo));
          ac = _mm256_add_epi32(ac, _mm256_madd_epi16(phi, shi));
        }
      }
    };
    chunk.template operator()<0>();
    chunk.template operator()<1>();
    chunk.template operator()<2>();
    chunk.template operator()<3>();
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r) {
        __m128i m = _mm_madd_epi16(mn[r], pairs[t]);
        m = _mm_add_epi32(m, _mm_unpackhi_epi64(m, m));
        m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 1));
        const int summs = _mm_cvtsi128_si32(m);
        const float d = f16(x[r][b].d) * y[t][b].d;
        const float dmin = f16(x[r][b].dmin) * y[t][b].d;
        sum[t * R + r] += d * static_cast<float>(hsum_i32(acc[t * R + r])) - dmin * static_cast<float>(summs);
      }
  }
  for (int i = 0; i < R * T; ++i) out[i] = sum[i];
}

// R Q6_K rows against T token rows, as dot_q4_k_tile. Levels are stored +32 (0..63):
// sum q*y = sum (q+32)*y - 32 * sum y, and sum y per group of 16 is in bsums.
template <int R, int T>
void dot_q6_k_tile(int64_t n, const void* const w[R], const void* const a[T], float out[R * T]) {
  const BlockQ6_K* x[R];
  const BlockQ8_K* y[T];
  for (int r = 0; r < R; ++r) x[r] = static_cast<const BlockQ6_K*>(w[r]);
  for (int t = 0; t < T; ++t) y[t] = static_cast<const BlockQ8_K*>(a[t]);
  const __m256i low4 = _mm256_set1_epi8(0x0F), low2 = _mm256_set1_epi8(0x03);
  // Group 2k in the low 128-bit half, group 2k + 1 in the high half (of 8 int16 scales).
  const __m256i pick[4] = {
      _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3),
      _mm256_setr_epi8(4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 4, 5, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7, 6, 7),
      _mm256_setr_epi8(8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 8, 9, 10, 11, 10, 11, 10, 11, 10, 11, 10, 11, 10,
                       11, 10, 11, 10, 11),
      _mm256_setr_epi8(12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 12, 13, 14, 15, 14, 15, 14, 15, 14,
                       15, 14, 15, 14, 15, 14, 15, 14, 15)};
  float sum[R * T];
  for (int i = 0; i < R * T; ++i) sum[i] = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    __m256i acc[R * T];
    for (int i = 0; i < R * T; ++i) acc[i] = _mm256_setzero_si256();
    for (int h = 0; h < 2; ++h) {
      for (int r = 0; r < R; ++r) {
        const __m256i ql0 = load32u(x[r][b].ql + 64 * h), ql1 = load32u(x[r][b].ql + 64 * h + 32);
        const __m256i qh = load32u(x[r][b].qh + 32 * h);
        const __m256i s8 = _mm256_broadcastsi128_si256(
            _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[r][b].scales + 8 * h))));
        const __m256i v[4] = {
            _mm256_or_si256(_mm256_and_si256(ql0, low4), _mm256_slli_epi16(_mm256_and_si256(qh, low2), 4)),
            _mm256_or_si256(_mm256_and_si256(ql1, low4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), low2), 4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), low4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), low2), 4)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), low4),
                            _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), low2), 4))};
        for (int k = 0; k < 4; ++k) {
          const __m256i scale = _mm256_shuffle_epi8(s8, pick[k]);  // groups 8h+2k, 8h+2k+1
          for (int t = 0; t < T; ++t) {
            const __m256i p = _mm256_maddubs_epi16(v[k], load32(y[t][b].qs + 128 * h + 32 * k));
            acc[t * R + r] = _mm256_add_epi32(acc[t * R + r], _mm256_madd_epi16(p, scale));
          }
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[r][b].scales)));
      for (int t = 0; t < T; ++t) {
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][b].bsums));
        const int corr = hsum_i32(_mm256_madd_epi16(s16, bs));
        sum[t * R + r] +=
            f16(x[r][b].d) * y[t][b].d * static_cast<float>(hsum_i32(acc[t * R + r]) - 32 * corr);
      }
    }
  }
  for (int i = 0; i < R * T; ++i) out[i] = sum[i];
}

// R IQ4_XS rows x T tokens, as dot_q4_k_tile. Each 32-value sub-block is 16 bytes (low nibbles
// values 0..15, high 16..31); pshufb maps the nibbles to the signed IQ4_NL grid. maddubs needs an
// unsigned operand, so it takes |v| and y carrying v's sign (pair sums <= 2 * 127 * 127, exact;
// Q8_K levels lie in [-127, 127], so negating one cannot overflow),
// then madd with the sub-block's signed 6-bit scale minus 32. Exact integers and dot_iq4_xs's float
// step: bit-identical with the scalar twin.
template <int R, int T>
void dot_iq4_xs_tile(int64_t n, const void* const w[R], const void* const a[T], float out[R * T]) {
  const BlockIQ4XS* x[R];
  const BlockQ8_K* y[T];
  for (int r = 0; r < R; ++r) x[r] = static_cast<const BlockIQ4XS*>(w[r]);
  for (int t = 0; t < T; ++t) y[t] = static_cast<const BlockQ8_K*>(a[t]);
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  const __m256i grid = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(kIq4nlValues)));
  float sum[R * T];
  for (int i = 0; i < R * T; ++i) sum[i] = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    __m256i acc[R * T];
    for (int i = 0; i < R * T; ++i) acc[i] = _mm256_setzero_si256();
    for (int r = 0; r < R; ++r) {
      const BlockIQ4XS& xb = x[r][b];
      for (int g = 0; g < 8; ++g) {
        const int ls = ((xb.scales_l[g / 2] >> (4 * (g % 2))) & 0x0F) | (((xb.scales_h >> (2 * g)) & 3) << 4);
        const __m256i sc = _mm256_set1_epi16(static_cast<int16_t>(ls - 32));
        const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.qs + 16 * g));
        const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low4);
        const __m256i v = _mm256_shuffle_epi8(grid, nib);
        const __m256i av = _mm256_sign_epi8(v, v);
        for (int t = 0; t < T; ++t) {
          const __m256i p = _mm256_maddubs_epi16(av, _mm256_sign_epi8(load32(y[t][b].qs + 32 * g), v));
          acc[t * R + r] = _mm256_add_epi32(acc[t * R + r], _mm256_madd_epi16(p, sc));
        }
      }
    }
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r)
        sum[t * R + r] += f16(x[r][b].d) * y[t][b].d * static_cast<float>(hsum_i32(acc[t * R + r]));
  }
  for (int i = 0; i < R * T; ++i) out[i] = sum[i];
}
template <int R, int T> struct IQ4XSTile {
  static void run(int64_t n, const void* const w[R], const void* const a[T], float* o) { dot_iq4_xs_tile<R, T>(n, w, a, o); }
};

// R Q2_K rows x T tokens, as dot_q4_k_tile. Each half's 32 bytes hold 4 bit-planes (shift 0, 2,
// 4, 6) of 32 values, i.e. 16-value sub-blocks 8h + 2p and 8h + 2p + 1 in the two 128-bit lanes:
// one maddubs with the matching 32 activations (pair sums <= 2 * 3 * 128), one madd with the two
// sub-blocks' 4-bit scales (8 words each). Mins: madd of the 16 mins with the 16 bsums. Exact
// integers and dot_q2_k's float step: bit-identical with the scalar twin.
template <int R, int T>
void dot_q2_k_tile(int64_t n, const void* const w[R], const void* const a[T], float out[R * T]) {
  const BlockQ2_K* x[R];
  const BlockQ8_K* y[T];
  for (int r = 0; r < R; ++r) x[r] = static_cast<const BlockQ2_K*>(w[r]);
  for (int t = 0; t < T; ++t) y[t] = static_cast<const BlockQ8_K*>(a[t]);
  const __m256i three = _mm256_set1_epi8(3);
  const __m128i low4 = _mm_set1_epi8(0x0F);
  float sum[R * T];
  for (int i = 0; i < R * T; ++i) sum[i] = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    __m256i acc[R * T];
    for (int i = 0; i < R * T; ++i) acc[i] = _mm256_setzero_si256();
    __m256i mins[R];
    for (int r = 0; r < R; ++r) {
      const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x[r][b].scales));
      const __m128i sc = _mm_and_si128(s8, low4);
      mins[r] = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(s8, 4), low4));
      for (int h = 0; h < 2; ++h) {
        const __m256i q = load32u(x[r][b].qs + 32 * h);
        for (int p = 0; p < 4; ++p) {
          const int g = 8 * h + 2 * p;
          // Words 0..7 = scale of sub-block g, 8..15 = of g + 1.
          const __m256i scw = _mm256_cvtepu8_epi16(
              _mm_shuffle_epi8(sc, _mm_setr_epi8(char(g), char(g), char(g), char(g), char(g), char(g), char(g), char(g),
                                                 char(g + 1), char(g + 1), char(g + 1), char(g + 1), char(g + 1),
                                                 char(g + 1), char(g + 1), char(g + 1))));
          const __m256i v = _mm256_and_si256(_mm256_srli_epi16(q, 2 * p), three);
          for (int t = 0; t < T; ++t) {
            const __m256i pr = _mm256_maddubs_epi16(v, load32(y[t][b].qs + 128 * h + 32 * p));
            acc[t * R + r] = _mm256_add_epi32(acc[t * R + r], _mm256_madd_epi16(pr, scw));
          }
        }
      }
    }
    for (int t = 0; t < T; ++t) {
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][b].bsums));
      for (int r = 0; r < R; ++r) {
        const int summs = hsum_i32(_mm256_madd_epi16(mins[r], bs));
        const float dall = y[t][b].d * f16(x[r][b].d);
        const float dmin = y[t][b].d * f16(x[r][b].dmin);
        sum[t * R + r] += dall * static_cast<float>(hsum_i32(acc[t * R + r])) - dmin * static_cast<float>(summs);
      }
    }
  }
  for (int i = 0; i < R * T; ++i) out[i] = sum[i];
}
template <int R, int T> struct Q2KTile {
  static void run(int64_t n, const void* const w[R], const void* const a[T], float* o) { dot_q2_k_tile<R, T>(n, w, a, o); }
};

// Bit `bit` (0..7) of every byte moved to bit 2, other bits cleared (Q3_K's high bit).
template <int bit>
inline __m256i bit_to_2(__m256i v) {
  const __m256i m = _mm256_set1_epi8(0x04);
  if constexpr (bit < 2) return _mm256_and_si256(_mm256_slli_epi16(v, 2 - bit), m);
  else if constexpr (bit == 2) return _mm256_and_si256(v, m);
  else return _mm256_and_si256(_mm256_srli_epi16(v, bit - 2), m);
}

// R Q3_K rows x T tokens: Q2_K's bit-planes plus hmask bit 4h + p of byte l (set: +0, clear: -4).
// maddubs takes u = low 2 bits | hmask bit << 2 (0..7) and the -4 goes into a correction per
// 16-value sub-block: sum (u - 4) y = sum u y - 4 bsum. The signed 6-bit scales (minus 32) are
// decoded once per row and block. Exact integers and dot_q3_k's float step: bit-identical.
template <int R, int T>
void dot_q3_k_tile(int64_t n, const void* const w[R], const void* const a[T], float out[R * T]) {
  const BlockQ3_K* x[R];
  const BlockQ8_K* y[T];
  for (int r = 0; r < R; ++r) x[r] = static_cast<const BlockQ3_K*>(w[r]);
  for (int t = 0; t < T; ++t) y[t] = static_cast<const BlockQ8_K*>(a[t]);
  const __m256i three = _mm256_set1_epi8(3);
  float sum[R * T];
  for (int i = 0; i < R * T; ++i) sum[i] = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    __m256i acc[R * T];
    for (int i = 0; i < R * T; ++i) acc[i] = _mm256_setzero_si256();
    __m256i scales[R];
    for (int r = 0; r < R; ++r) {
      // Scale g: low 4 bits in byte g (g < 8) or the high nibble of byte g - 8, top 2 bits at
      // shift 2 (g / 4) of byte 8 + g % 4; decoded for all 16 at once with 64/32-bit masks.
      uint64_t lo8;
      uint32_t hi4;
      std::memcpy(&lo8, x[r][b].scales, 8);
      std::memcpy(&hi4, x[r][b].scales + 8, 4);
      const uint64_t n4 = 0x0F0F0F0F0F0F0F0Full;
      const uint32_t m2 = 0x03030303u;
      const __m128i lo = _mm_set_epi64x(static_cast<long long>((lo8 >> 4) & n4), static_cast<long long>(lo8 & n4));
      const __m128i hi = _mm_set_epi32(static_cast<int>((hi4 >> 6) & m2), static_cast<int>((hi4 >> 4) & m2),
                                       static_cast<int>((hi4 >> 2) & m2), static_cast<int>(hi4 & m2));
      const __m128i sc8 = _mm_sub_epi8(_mm_or_si128(lo, _mm_slli_epi16(hi, 4)), _mm_set1_epi8(32));
      scales[r] = _mm256_cvtepi8_epi16(sc8);
      const __m256i hm = load32u(x[r][b].hmask);
      auto half = [&]<int h>() {
        const __m256i q = load32u(x[r][b].qs + 32 * h);
        auto plane = [&]<int p>() {
          constexpr int g = 8 * h + 2 * p;
          const __m256i scw = _mm256_cvtepi8_epi16(
              _mm_shuffle_epi8(sc8, _mm_setr_epi8(g, g, g, g, g, g, g, g, g + 1, g + 1, g + 1, g + 1, g + 1, g + 1, g + 1, g + 1)));
          const __m256i u = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(q, 2 * p), three), bit_to_2<4 * h + p>(hm));
          for (int t = 0; t < T; ++t) {
            const __m256i pr = _mm256_maddubs_epi16(u, load32(y[t][b].qs + 128 * h + 32 * p));
            acc[t * R + r] = _mm256_add_epi32(acc[t * R + r], _mm256_madd_epi16(pr, scw));
          }
        };
        plane.template operator()<0>();
        plane.template operator()<1>();
        plane.template operator()<2>();
        plane.template operator()<3>();
      };
      half.template operator()<0>();
      half.template operator()<1>();
    }
    for (int t = 0; t < T; ++t) {
      const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][b].bsums));
      for (int r = 0; r < R; ++r) {
        const int corr = hsum_i32(_mm256_madd_epi16(scales[r], bs));
        sum[t * R + r] += f16(x[r][b].d) * y[t][b].d * static_cast<float>(hsum_i32(acc[t * R + r]) - 4 * corr);
      }
    }
  }
  for (int i = 0; i < R * T; ++i) out[i] = sum[i];
}
template <int R, int T> struct Q3KTile {
  static void run(int64_t n, const void* const w[R], const void* const a[T], float* o) { dot_q3_k_tile<R, T>(n, w, a, o); }
};

template <template <int, int> class K>
float kq_dot(int64_t n, const void* w, const void* a) {
  float out;
  K<1, 1>::run(n, &w, &a, &out);
  return out;
}
template <template <int, int> class K>
void kq_row4(int64_t n, const void* w, const void* const a[4], float out[4]) {
  K<1, 4>::run(n, &w, a, out);
}
// ---------------------------------------------------------------- interleaved Q4_K (BlockQ4_Kx8)
// 8 rows x T tokens (1..4): out[8 t + r]. Each 32 bytes of a sub-block's quants hold 8 bytes of
// 4 rows, one row per 64-bit lane, so one 8-byte broadcast of activations serves 4 rows. maddubs
// gives word sums of 2 products (|.| <= 2 * 15 * 128); the 4 of a sub-block add in words
// (<= 15360, no saturation) before one madd with the row's scale in all 4 words of its lane. Mins
// as in the AVX-512 kernel: madd of (min g, min g + 1) word pairs with the activation pair sums.
// Exact integers, dot_q45_k's float step per row in 8 lanes: bit-identical with the scalar twin.
template <int T>
void q4_k_x8(int64_t n, const void* group, const void* const a[], float* out) {
  const auto* x = static_cast<const BlockQ4_Kx8*>(group);
  const BlockQ8_K* y[T];
  for (int t = 0; t < T; ++t) y[t] = static_cast<const BlockQ8_K*>(a[t]);
  const __m256i low4 = _mm256_set1_epi8(0x0F), six = _mm256_set1_epi8(0x3F), top2 = _mm256_set1_epi8(0x30);
  // Per 128-bit lane (mins of sub-blocks 2L and 2L + 1, rows 0..7): bytes to (row, parity) pairs.
  const __m256i pair_rows = _mm256_broadcastsi128_si256(_mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15));
  // Byte r of 8 scale bytes into the 4 words of 64-bit lane r: rows 0..3 (lo) and 4..7 (hi).
  const __m256i spread_lo = _mm256_setr_epi8(0, -1, 0, -1, 0, -1, 0, -1, 1, -1, 1, -1, 1, -1, 1, -1,
                                             2, -1, 2, -1, 2, -1, 2, -1, 3, -1, 3, -1, 3, -1, 3, -1);
  const __m256i spread_hi = _mm256_add_epi8(spread_lo, _mm256_setr_epi8(4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0,
                                                                        4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0));
  __m256 sum[T];
  for (int t = 0; t < T; ++t) sum[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const BlockQ4_Kx8& xb = x[b];
    const __m256i raw0 = load32u(xb.scales[0]), raw1 = load32u(xb.scales[4]);
    const __m256i ml = load32u(xb.mins);
    // Mins as bytes [g][r] (g 0..3, then 4..7), then as words (min g, min g + 1) per row.
    const __m256i m03 = _mm256_shuffle_epi8(
        _mm256_or_si256(_mm256_and_si256(ml, low4), _mm256_and_si256(_mm256_srli_epi16(raw0, 2), top2)), pair_rows);
    const __m256i m47 = _mm256_shuffle_epi8(
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ml, 4), low4), _mm256_and_si256(_mm256_srli_epi16(raw1, 2), top2)),
        pair_rows);
    const __m256i mw[4] = {_mm256_cvtepu8_epi16(_mm256_castsi256_si128(m03)), _mm256_cvtepu8_epi16(_mm256_extracti128_si256(m03, 1)),
                           _mm256_cvtepu8_epi16(_mm256_castsi256_si128(m47)), _mm256_cvtepu8_epi16(_mm256_extracti128_si256(m47, 1))};
    __m256i isum[T][2];
    for (int t = 0; t < T; ++t) isum[t][0] = isum[t][1] = _mm256_setzero_si256();
    for (int g = 0; g < 8; ++g) {
      const __m256i sc8 = _mm256_and_si256(
          _mm256_broadcastsi128_si256(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(xb.scales[g]))), six);
      const __m256i scw[2] = {_mm256_shuffle_epi8(sc8, spread_lo), _mm256_shuffle_epi8(sc8, spread_hi)};
      for (int half = 0; half < 2; ++half) {  // rows 4 half .. 4 half + 3
        __m256i p[T];
        for (int t = 0; t < T; ++t) p[t] = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
          const __m256i w = load32u(xb.qs[g][h][4 * half]);
          const __m256i lo = _mm256_and_si256(w, low4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(w, 4), low4);
          for (int t = 0; t < T; ++t) {
            const int8_t* q = y[t][b].qs + 32 * g + 16 * h;
            long long q0, q1;
            std::memcpy(&q0, q, 8);
            std::memcpy(&q1, q + 8, 8);
            p[t] = _mm256_add_epi16(p[t], _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_set1_epi64x(q0)),
                                                           _mm256_maddubs_epi16(hi, _mm256_set1_epi64x(q1))));
          }
        }
        for (int t = 0; t < T; ++t) isum[t][half] = _mm256_add_epi32(isum[t][half], _mm256_madd_epi16(p[t], scw[half]));
      }
    }
    const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.d)));
    const __m256 dmx = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.dmin)));
    for (int t = 0; t < T; ++t) {
      const auto* bs = reinterpret_cast<const __m128i*>(y[t][b].bsums);
      const __m256i pairs = _mm256_castsi128_si256(_mm_hadd_epi16(_mm_loadu_si128(bs), _mm_loadu_si128(bs + 1)));
      __m256i summs = _mm256_madd_epi16(mw[0], _mm256_permutevar8x32_epi32(pairs, _mm256_set1_epi32(0)));
      summs = _mm256_add_epi32(summs, _mm256_madd_epi16(mw[1], _mm256_permutevar8x32_epi32(pairs, _mm256_set1_epi32(1))));
      summs = _mm256_add_epi32(summs, _mm256_madd_epi16(mw[2], _mm256_permutevar8x32_epi32(pairs, _mm256_set1_epi32(2))));
      summs = _mm256_add_epi32(summs, _mm256_madd_epi16(mw[3], _mm256_permutevar8x32_epi32(pairs, _mm256_set1_epi32(3))));
      // hadd gives rows 0 1 4 5 | 2 3 6 7; the 64-bit permute puts them in order.
      const __m256i is = _mm256_permute4x64_epi64(_mm256_hadd_epi32(isum[t][0], isum[t][1]), 0xD8);
      const __m256 dy = _mm256_set1_ps(y[t][b].d);
      const __m256 d = _mm256_mul_ps(dx, dy), dmin = _mm256_mul_ps(dmx, dy);
      sum[t] = _mm256_add_ps(sum[t], _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(is)),
                                                   _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(summs))));
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + kRows * t, sum[t]);
}

// Interleaved Q6_K (BlockQ6_Kx8), 8 rows x T tokens: 6-bit levels 0..63 (stored +32), so the two
// maddubs of a 16-value sub-block add in words without saturating (2 * 2 * 63 * 128 = 32256)
// before the madd with the row's signed scale; -32 * sum(scale * bsum) per row as in AVX-512.
template <int T>
void q6_k_x8(int64_t n, const void* group, const void* const a[], float* out) {
  const auto* x = static_cast<const BlockQ6_Kx8*>(group);
  const BlockQ8_K* y[T];
  for (int t = 0; t < T; ++t) y[t] = static_cast<const BlockQ8_K*>(a[t]);
  const __m256i low4 = _mm256_set1_epi8(0x0F), top2 = _mm256_set1_epi8(0x30);
  // Word (row, h) of the 8 words of one 128-bit half (rows 4 half .. + 3) into the 4 words of
  // the row's 64-bit lane: rows 0, 1 of the half in the low lane, 2, 3 in the high one.
  auto spread = [](int h) {
    alignas(32) int8_t c[32];
    for (int lane = 0; lane < 2; ++lane)
      for (int j = 0; j < 2; ++j)
        for (int k = 0; k < 4; ++k) {
          const int word = 2 * (2 * lane + j) + h;
          c[16 * lane + 8 * j + 2 * k] = static_cast<int8_t>(2 * word);
          c[16 * lane + 8 * j + 2 * k + 1] = static_cast<int8_t>(2 * word + 1);
        }
    return _mm256_load_si256(reinterpret_cast<const __m256i*>(c));
  };
  const __m256i spread_h[2] = {spread(0), spread(1)};
  __m256 sum[T];
  for (int t = 0; t < T; ++t) sum[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const BlockQ6_Kx8& xb = x[b];
    __m256i isum[T][2];
    for (int t = 0; t < T; ++t) isum[t][0] = isum[t][1] = _mm256_setzero_si256();
    __m256i corr[T];
    for (int t = 0; t < T; ++t) corr[t] = _mm256_setzero_si256();
    for (int g = 0; g < 8; ++g) {
      const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.scales[g])));
      const __m256i sh[2] = {_mm256_broadcastsi128_si256(_mm256_castsi256_si128(s16)),
                             _mm256_broadcastsi128_si256(_mm256_extracti128_si256(s16, 1))};
      for (int t = 0; t < T; ++t) {  // -32 correction: words (row, h) x (bsum 2g, 2g + 1)
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][b].bsums));
        corr[t] = _mm256_add_epi32(corr[t], _mm256_madd_epi16(s16, _mm256_permutevar8x32_epi32(bs, _mm256_set1_epi32(g))));
      }
      for (int half = 0; half < 2; ++half) {
        const __m256i qh = load32u(xb.q[g].qh[4 * half]);
        const __m256i top[2][2] = {
            {_mm256_and_si256(_mm256_slli_epi16(qh, 4), top2), _mm256_and_si256(_mm256_slli_epi16(qh, 2), top2)},
            {_mm256_and_si256(qh, top2), _mm256_and_si256(_mm256_srli_epi16(qh, 2), top2)}};
        for (int h = 0; h < 2; ++h) {
          const __m256i scw = _mm256_shuffle_epi8(sh[half], spread_h[h]);
          const __m256i w = load32u(xb.q[g].ql[h][4 * half]);
          const __m256i lo = _mm256_or_si256(_mm256_and_si256(w, low4), top[h][0]);
          const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(w, 4), low4), top[h][1]);
          for (int t = 0; t < T; ++t) {
            const int8_t* q = y[t][b].qs + 32 * g + 16 * h;
            long long q0, q1;
            std::memcpy(&q0, q, 8);
            std::memcpy(&q1, q + 8, 8);
            const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_set1_epi64x(q0)),
                                               _mm256_maddubs_epi16(hi, _mm256_set1_epi64x(q1)));
            isum[t][half] = _mm256_add_epi32(isum[t][half], _mm256_madd_epi16(p, scw));
          }
        }
      }
    }
    const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.d)));
    for (int t = 0; t < T; ++t) {
      const __m256i is = _mm256_sub_epi32(_mm256_permute4x64_epi64(_mm256_hadd_epi32(isum[t][0], isum[t][1]), 0xD8),
                                          _mm256_slli_epi32(corr[t], 5));
      const __m256 dy = _mm256_set1_ps(y[t][b].d);
      sum[t] = _mm256_add_ps(sum[t], _mm256_mul_ps(_mm256_mul_ps(dx, dy), _mm256_cvtepi32_ps(is)));
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + kRows * t, sum[t]);
}

void group_q6_k(int64_t n, const void* group, const void* const a[], int n_tok, float* out) {
  switch (n_tok) {
    case 1: return q6_k_x8<1>(n, group, a, out);
    case 2: return q6_k_x8<2>(n, group, a, out);
    case 3: return q6_k_x8<3>(n, group, a, out);
    default: return q6_k_x8<4>(n, group, a, out);
  }
}

void group_q4_k(int64_t n, const void* group, const void* const a[], int n_tok, float* out) {
  switch (n_tok) {
    case 1: return q4_k_x8<1>(n, group, a, out);
    case 2: return q4_k_x8<2>(n, group, a, out);
    case 3: return q4_k_x8<3>(n, group, a, out);
    default: return q4_k_x8<4>(n, group, a, out);
  }
}

template <int R, int T> struct Q4KTile {
  static void run(int64_t n, const void* const w[R], const void* const a[T], float* o) { dot_q4_k_tile<R, T>(n, w, a, o); }
};
template <int R, int T> struct Q5KTile {
  static void run(int64_t n, const void* const w[R], const void* const a[T], float* o) { dot_q4_k_tile<R, T, true>(n, w, a, o); }
};
template <int R, int T> struct Q6KTile {
  static void run(int64_t n, const void* const w[R], const void* const a[T], float* o) { dot_q6_k_tile<R, T>(n, w, a, o); }
};


}  // namespace

namespace {

// Q8_K activations, bit for bit the scalar twin quantize_q8_k (see kquant_avx512.cpp): the first
// element of largest magnitude sets iscale = -127 / max, levels are vcvtps2dq (nearest even) of
// one float product each, clamped at 127; bsums exact.
void quantize_q8_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    __m256 m = _mm256_setzero_ps();
    for (int i = 0; i < QK_K; i += 8) m = _mm256_max_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), m);
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    if (amax == 0.f) {
      std::memset(&y[b], 0, sizeof(BlockQ8_K));
      continue;
    }
    float max = 0;
    const __m256 va = _mm256_set1_ps(amax);
    for (int i = 0; i < QK_K; i += 8) {
      const int k = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)), va, _CMP_EQ_OQ));
      if (k) {
        max = x[i + __builtin_ctz(unsigned(k))];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 vs = _mm256_set1_ps(iscale);
    const __m256i top = _mm256_set1_epi32(127);
    for (int i = 0; i < QK_K; i += 16) {
      // Each level's low byte, sign-extended (the twin's int8 cast: identical for levels in
      // [-128, 127], and 0 for the 0x80000000 of an overflowed iscale), then packed exactly;
      // packs interleave 128-bit lanes, permute4x64 puts them back in order.
      auto level = [&](const float* p) {
        const __m256i q = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(p))), top);
        return _mm256_srai_epi32(_mm256_slli_epi32(q, 24), 24);
      };
      const __m256i q0 = level(x + i), q1 = level(x + i + 8);
      const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(q0, q1), 0xD8);
      const __m128i b8 = _mm_packs_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs + i), b8);
      __m256i s = _mm256_add_epi32(q0, q1);
      __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
      y[b].bsums[i / 16] = static_cast<int16_t>(_mm_cvtsi128_si32(s4));
    }
    y[b].d = 1.f / iscale;
  }
}

}  // namespace

void fill_avx2_kquant(KernelTable& t) {
  t.quantize[static_cast<int>(GgmlType::Q8_K)] = quantize_q8_k;
  t.vec_dot[static_cast<int>(GgmlType::Q4_K)] = kq_dot<Q4KTile>;
  t.vec_dot[static_cast<int>(GgmlType::Q6_K)] = kq_dot<Q6KTile>;
  t.row4[static_cast<int>(GgmlType::Q4_K)] = kq_row4<Q4KTile>;
  t.row4[static_cast<int>(GgmlType::Q6_K)] = kq_row4<Q6KTile>;
  t.group_dot[static_cast<int>(GgmlType::Q4_K)] = group_q4_k;
  t.group_dot[static_cast<int>(GgmlType::Q6_K)] = group_q6_k;
  // Q5_K (Q5_K_M's main type; the AVX-512 path keeps these too).
  t.vec_dot[static_cast<int>(GgmlType::Q5_K)] = kq_dot<Q5KTile>;
  t.row4[static_cast<int>(GgmlType::Q5_K)] = kq_row4<Q5KTile>;
  t.vec_dot[static_cast<int>(GgmlType::IQ4_XS)] = kq_dot<IQ4XSTile>;
  t.row4[static_cast<int>(GgmlType::IQ4_XS)] = kq_row4<IQ4XSTile>;
  t.vec_dot[static_cast<int>(GgmlType::Q2_K)] = kq_dot<Q2KTile>;
  t.row4[static_cast<int>(GgmlType::Q2_K)] = kq_row4<Q2KTile>;
  t.vec_dot[static_cast<int>(GgmlType::Q3_K)] = kq_dot<Q3KTile>;
  t.row4[static_cast<int>(GgmlType::Q3_K)] = kq_row4<Q3KTile>;
}

}  // namespace dcq::kernels
