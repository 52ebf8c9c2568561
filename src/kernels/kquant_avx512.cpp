// AVX-512 (BW + VNNI) kernels of the Q4_K / Q6_K dots: one 512-bit register holds two 32-value
// sub-blocks (Q4_K) or four 16-value groups (Q6_K), and vpdpwssd adds the scaled pair sums into
// the accumulator in one step. Same exact integers and the scalar twin's float steps per output,
// so results are bit-identical with dot_q45_k / dot_q6_k (scalar.cpp) and with the AVX2 tiles.
#include <immintrin.h>

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// Keep `sum += d * isum - dmin * summs` unfused, as in the scalar twin.
#pragma GCC optimize("fp-contract=off")

#include <cstring>

#include "kernels/blocks.hpp"

namespace dcq::kernels {

namespace {

inline float f16(uint16_t h) { return _cvtsh_ss(h); }

// The 8 scales (bytes 0..7) and 8 mins (bytes 8..15) of a Q4_K block's 12 packed bytes: bytes
// 0..3 hold scales 0..3 (low 6 bits) and the top 2 bits of scales 4..7, bytes 4..7 the same for
// the mins, bytes 8..11 the low 4 bits of scales 4..7 (low nibble) and mins 4..7 (high nibble).
inline __m128i unpack_scales_mins(const uint8_t* q) {
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

inline int hsum4(__m128i m) {
  m = _mm_add_epi32(m, _mm_unpackhi_epi64(m, m));
  m = _mm_add_epi32(m, _mm_shuffle_epi32(m, 1));
  return _mm_cvtsi128_si32(m);
}

// Word indices: 16 copies of a, then 16 of b (vpermw picks a sub-block's scale per half).
inline __m512i pick2(int a, int b) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_set1_epi16(static_cast<int16_t>(a))),
                            _mm256_set1_epi16(static_cast<int16_t>(b)), 1);
}

// R Q4_K rows x T tokens: out[t * R + r] = dot(w[r], a[t]). Chunk c of a block holds sub-blocks
// 2c (low nibbles) and 2c + 1 (high nibbles), and the activations of both are the 64 bytes at
// qs + 64c: one register each.
template <int R, int T>
void q4_k_tile(int64_t n, const void* const w[], const void* const a[], float* out) {
  const BlockQ4_K* x[R];
  const BlockQ8_K* y[T];
  for (int r = 0; r < R; ++r) x[r] = static_cast<const BlockQ4_K*>(w[r]);
  for (int t = 0; t < T; ++t) y[t] = static_cast<const BlockQ8_K*>(a[t]);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  // Low half shifted by 0 (low nibbles), high half by 4 (high nibbles).
  const __m512i shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
  const __m512i pick[4] = {pick2(0, 1), pick2(2, 3), pick2(4, 5), pick2(6, 7)};
  float sum[R * T];
  for (int i = 0; i < R * T; ++i) sum[i] = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    __m128i pairs[T];  // sum of each 32-value sub-block (|sum| <= 32 * 128 fits int16)
    for (int t = 0; t < T; ++t) {
      const auto* bs = reinterpret_cast<const __m128i*>(y[t][b].bsums);
      pairs[t] = _mm_hadd_epi16(_mm_loadu_si128(bs), _mm_loadu_si128(bs + 1));
    }
    __m512i sc[R];
    __m128i mn[R];
    for (int r = 0; r < R; ++r) {
      const __m128i sm = unpack_scales_mins(x[r][b].scales);
      sc[r] = _mm512_castsi128_si512(_mm_cvtepu8_epi16(sm));
      mn[r] = _mm_cvtepu8_epi16(_mm_srli_si128(sm, 8));
    }
    __m512i acc[R * T];
    for (int i = 0; i < R * T; ++i) acc[i] = _mm512_setzero_si512();
    for (int c = 0; c < 4; ++c) {
      for (int r = 0; r < R; ++r) {
        const __m512i q = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[r][b].qs + 32 * c)));
        const __m512i lv = _mm512_and_si512(_mm512_srlv_epi16(q, shift), low4);
        const __m512i s = _mm512_permutexvar_epi16(pick[c], sc[r]);
        for (int t = 0; t < T; ++t) {
          const __m512i p = _mm512_maddubs_epi16(lv, _mm512_loadu_si512(y[t][b].qs + 64 * c));
          acc[t * R + r] = _mm512_dpwssd_epi32(acc[t * R + r], p, s);
        }
      }
    }
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < R; ++r) {
        const int summs = hsum4(_mm_madd_epi16(mn[r], pairs[t]));
        const float d = f16(x[r][b].d) * y[t][b].d;
        const float dmin = f16(x[r][b].dmin) * y[t][b].d;
        sum[t * R + r] += d * static_cast<float>(_mm512_reduce_add_epi32(acc[t * R + r])) -
                          dmin * static_cast<float>(summs);
      }
  }
  for (int i = 0; i < R * T; ++i) out[i] = sum[i];
}

// R Q6_K rows x T tokens. Half h of a block: ql[64h..64h+63] gives the low 4 bits of values
// 0..63 (low nibbles) and 64..127 (high nibbles) of the half, qh[32h..] their top 2 bits at
// shifts 0/2 and 4/6. Levels are stored +32: sum q*y = sum (q+32)*y - 32 * sum y per group.
template <int R, int T>
void q6_k_tile(int64_t n, const void* const w[], const void* const a[], float* out) {
  const BlockQ6_K* x[R];
  const BlockQ8_K* y[T];
  for (int r = 0; r < R; ++r) x[r] = static_cast<const BlockQ6_K*>(w[r]);
  for (int t = 0; t < T; ++t) y[t] = static_cast<const BlockQ8_K*>(a[t]);
  const __m512i low4 = _mm512_set1_epi8(0x0F), low2 = _mm512_set1_epi8(0x03);
  const __m512i sh_a = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);  // 0 | 2
  const __m512i sh_b = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);    // 4 | 6
  // Word indices: 8 copies each of groups 0, 1, 2, 3 (values 0..63) or 4..7 (values 64..127).
  const __m512i pick_a = _mm512_set_epi64(0x0003000300030003, 0x0003000300030003, 0x0002000200020002,
                                          0x0002000200020002, 0x0001000100010001, 0x0001000100010001, 0, 0);
  const __m512i pick_b = _mm512_add_epi16(pick_a, _mm512_set1_epi16(4));
  float sum[R * T];
  for (int i = 0; i < R * T; ++i) sum[i] = 0;
  for (int64_t b = 0; b < n / QK_K; ++b) {
    __m512i acc[R * T];
    for (int i = 0; i < R * T; ++i) acc[i] = _mm512_setzero_si512();
    for (int h = 0; h < 2; ++h) {
      for (int r = 0; r < R; ++r) {
        const __m512i ql = _mm512_loadu_si512(x[r][b].ql + 64 * h);
        const __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[r][b].qh + 32 * h)));
        const __m512i va = _mm512_or_si512(_mm512_and_si512(ql, low4),
                                           _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_a), low2), 4));
        const __m512i vb = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low4),
                                           _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(qh, sh_b), low2), 4));
        const __m512i s8 = _mm512_castsi128_si512(
            _mm_cvtepi8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(x[r][b].scales + 8 * h))));
        const __m512i sa = _mm512_permutexvar_epi16(pick_a, s8), sb = _mm512_permutexvar_epi16(pick_b, s8);
        for (int t = 0; t < T; ++t) {
          const int8_t* q8 = y[t][b].qs + 128 * h;
          __m512i& ac = acc[t * R + r];
          ac = _mm512_dpwssd_epi32(ac, _mm512_maddubs_epi16(va, _mm512_loadu_si512(q8)), sa);
          ac = _mm512_dpwssd_epi32(ac, _mm512_maddubs_epi16(vb, _mm512_loadu_si512(q8 + 64)), sb);
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      const __m256i s16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[r][b].scales)));
      for (int t = 0; t < T; ++t) {
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][b].bsums));
        const __m256i m = _mm256_madd_epi16(s16, bs);
        const int corr = hsum4(_mm_add_epi32(_mm256_castsi256_si128(m), _mm256_extracti128_si256(m, 1)));
        sum[t * R + r] += f16(x[r][b].d) * y[t][b].d *
                          static_cast<float>(_mm512_reduce_add_epi32(acc[t * R + r]) - 32 * corr);
      }
    }
  }
  for (int i = 0; i < R * T; ++i) out[i] = sum[i];
}

template <int R, int T> struct Q4K { static void run(int64_t n, const void* const w[], const void* const a[], float* o) { q4_k_tile<R, T>(n, w, a, o); } };
template <int R, int T> struct Q6K { static void run(int64_t n, const void* const w[], const void* const a[], float* o) { q6_k_tile<R, T>(n, w, a, o); } };

template <template <int, int> class K>
float dot(int64_t n, const void* w, const void* a) {
  float out;
  K<1, 1>::run(n, &w, &a, &out);
  return out;
}
template <template <int, int> class K>
void row4(int64_t n, const void* w, const void* const a[4], float out[4]) {
  K<1, 4>::run(n, &w, a, out);
}
}  // namespace

void fill_avx512_kquant(KernelTable& t) {
  t.vec_dot[static_cast<int>(GgmlType::Q4_K)] = dot<Q4K>;
  t.vec_dot[static_cast<int>(GgmlType::Q6_K)] = dot<Q6K>;
  t.row4[static_cast<int>(GgmlType::Q4_K)] = row4<Q4K>;
  t.row4[static_cast<int>(GgmlType::Q6_K)] = row4<Q6K>;
}

}  // namespace dcq::kernels
