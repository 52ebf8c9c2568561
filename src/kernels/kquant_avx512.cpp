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

// ---------------------------------------------------------------- interleaved Q4_K (BlockQ4_Kx8)
// 8 rows x T tokens (1..4): out[8 t + r]. Per sub-block g, each 64-byte load holds 8 bytes of
// each row in its own 64-bit lane; the nibbles meet an 8-byte broadcast of the activations in
// vpdpbusd (unsigned levels x signed activations, 4 products per 32-bit lane), so each row owns
// 2 lanes of the accumulator. The sub-block's integer sums are then scaled by one vpmulld with the
// row's scale duplicated into both lanes. Mins: vpmaddwd of (min of g, min of g + 1) word pairs
// with the matching pair of activation sub-block sums, one 32-bit lane per row. Every integer is
// exact, and the float step per row is dot_q45_k's, in 8 float lanes: bit-identical.
template <int T>
void q4_k_x8(int64_t n, const void* group, const void* const a[], float* out) {
  const auto* x = static_cast<const BlockQ4_Kx8*>(group);
  const BlockQ8_K* y[T];
  for (int t = 0; t < T; ++t) y[t] = static_cast<const BlockQ8_K*>(a[t]);
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  // Per 128-bit lane (mins of sub-blocks 2L and 2L + 1, rows 0..7): bytes to (row, parity) pairs.
  const __m512i pair_rows = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 8, 1, 9, 2, 10, 3, 11, 4, 12, 5, 13, 6, 14, 7, 15));
  // Activation sub-block pair sums: dword i = (sum of sub-block 2i, 2i + 1), i = 0, 1 for the low
  // 8 lanes and i + 1 for the high 8 (idx01 / idx23).
  const __m512i idx01 = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  const __m512i idx23 = _mm512_add_epi32(idx01, _mm512_set1_epi32(2));
  __m256 sum[T];
  for (int t = 0; t < T; ++t) sum[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const BlockQ4_Kx8& xb = x[b];
    const __m512i raw = _mm512_loadu_si512(xb.scales);
    // The 64 six-bit mins as bytes [g][r], then as words (min g, min g + 1) per row.
    const __m256i ml = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.mins));
    __m512i m8 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_and_si256(ml, _mm256_set1_epi8(0x0F))),
                                    _mm256_and_si256(_mm256_srli_epi16(ml, 4), _mm256_set1_epi8(0x0F)), 1);
    m8 = _mm512_or_si512(m8, _mm512_and_si512(_mm512_srli_epi16(raw, 2), _mm512_set1_epi8(0x30)));
    m8 = _mm512_shuffle_epi8(m8, pair_rows);
    const __m512i m01 = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(m8));
    const __m512i m23 = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(m8, 1));
    __m512i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
    for (int g = 0; g < 8; ++g) {
      // Row r's scale in 32-bit lanes 2r and 2r + 1.
      __m512i sc = _mm512_cvtepu8_epi64(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(xb.scales[g])));
      sc = _mm512_shuffle_epi32(_mm512_and_si512(sc, _mm512_set1_epi64(0x3F)), _MM_PERM_CCAA);
      __m512i acc[T];
      for (int t = 0; t < T; ++t) acc[t] = _mm512_setzero_si512();
      for (int h = 0; h < 2; ++h) {
        const __m512i w = _mm512_loadu_si512(xb.qs[g][h]);
        const __m512i lo = _mm512_and_si512(w, low4);
        const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(w, 4), low4);
        for (int t = 0; t < T; ++t) {
          const int8_t* q = y[t][b].qs + 32 * g + 16 * h;
          int64_t q0, q1;
          std::memcpy(&q0, q, 8);
          std::memcpy(&q1, q + 8, 8);
          acc[t] = _mm512_dpbusd_epi32(acc[t], lo, _mm512_set1_epi64(q0));
          acc[t] = _mm512_dpbusd_epi32(acc[t], hi, _mm512_set1_epi64(q1));
        }
      }
      for (int t = 0; t < T; ++t) isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(acc[t], sc));
    }
    const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.d)));
    const __m256 dmx = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.dmin)));
    for (int t = 0; t < T; ++t) {
      const auto* bs = reinterpret_cast<const __m128i*>(y[t][b].bsums);
      const __m512i pairs = _mm512_castsi128_si512(_mm_hadd_epi16(_mm_loadu_si128(bs), _mm_loadu_si128(bs + 1)));
      const __m512i mm = _mm512_add_epi32(_mm512_madd_epi16(m01, _mm512_permutexvar_epi32(idx01, pairs)),
                                          _mm512_madd_epi16(m23, _mm512_permutexvar_epi32(idx23, pairs)));
      const __m256i summs = _mm256_add_epi32(_mm512_castsi512_si256(mm), _mm512_extracti64x4_epi64(mm, 1));
      // Lanes 2r + 2r + 1 -> row r.
      const __m256i is = _mm512_cvtepi64_epi32(_mm512_add_epi32(isum[t], _mm512_srli_epi64(isum[t], 32)));
      const __m256 dy = _mm256_set1_ps(y[t][b].d);
      const __m256 d = _mm256_mul_ps(dx, dy), dmin = _mm256_mul_ps(dmx, dy);
      sum[t] = _mm256_add_ps(sum[t], _mm256_sub_ps(_mm256_mul_ps(d, _mm256_cvtepi32_ps(is)),
                                                   _mm256_mul_ps(dmin, _mm256_cvtepi32_ps(summs))));
    }
  }
  for (int t = 0; t < T; ++t) _mm256_storeu_ps(out + kRows * t, sum[t]);
}

// Interleaved Q6_K (BlockQ6_Kx8), 8 rows x T tokens: the Q4_K scheme with 6-bit levels (the low
// nibble or'd with its top 2 bits, 0..63) and one scale per 16 values, so each 64-byte load is
// one sub-block of 8 rows. Levels are stored +32: sum (q - 32) y = sum q y - 32 sum y, the second
// term per row as vpmaddwd of (scale 2g, 2g + 1) with the activations' 16-value sums.
template <int T>
void q6_k_x8(int64_t n, const void* group, const void* const a[], float* out) {
  const auto* x = static_cast<const BlockQ6_Kx8*>(group);
  const BlockQ8_K* y[T];
  for (int t = 0; t < T; ++t) y[t] = static_cast<const BlockQ8_K*>(a[t]);
  const __m512i low4 = _mm512_set1_epi8(0x0F), top2 = _mm512_set1_epi8(0x30);
  // Dword g of the 16 bsums = (sum of sub-block 2g, 2g + 1): g = 2i in the low 8 lanes, 2i + 1 high.
  const __m512i idx_lo = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
  __m256 sum[T];
  for (int t = 0; t < T; ++t) sum[t] = _mm256_setzero_ps();
  for (int64_t b = 0; b < n / QK_K; ++b) {
    const BlockQ6_Kx8& xb = x[b];
    __m512i sw[4];  // scales as words (row, h) of sub-block pairs g = 2i, 2i + 1
    for (int i = 0; i < 4; ++i)
      sw[i] = _mm512_cvtepi8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb.scales[2 * i])));
    __m512i isum[T];
    for (int t = 0; t < T; ++t) isum[t] = _mm512_setzero_si512();
    for (int g = 0; g < 8; ++g) {
      // Scale (row r, h) in 32-bit lane 2r + h, then duplicated into lanes 2r and 2r + 1 per h.
      const __m512i s32 = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.scales[g])));
      const __m512i sc[2] = {_mm512_shuffle_epi32(s32, _MM_PERM_CCAA), _mm512_shuffle_epi32(s32, _MM_PERM_DDBB)};
      const __m512i qh = _mm512_loadu_si512(xb.q[g].qh);
      // Top bits of (h, low nibble / high nibble) at bits 0-1, 2-3, 4-5, 6-7, moved to bits 4-5.
      const __m512i top[2][2] = {
          {_mm512_and_si512(_mm512_slli_epi16(qh, 4), top2), _mm512_and_si512(_mm512_slli_epi16(qh, 2), top2)},
          {_mm512_and_si512(qh, top2), _mm512_and_si512(_mm512_srli_epi16(qh, 2), top2)}};
      for (int h = 0; h < 2; ++h) {
        const __m512i w = _mm512_loadu_si512(xb.q[g].ql[h]);
        const __m512i lo = _mm512_or_si512(_mm512_and_si512(w, low4), top[h][0]);
        const __m512i hi = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(w, 4), low4), top[h][1]);
        for (int t = 0; t < T; ++t) {
          const int8_t* q = y[t][b].qs + 32 * g + 16 * h;
          int64_t q0, q1;
          std::memcpy(&q0, q, 8);
          std::memcpy(&q1, q + 8, 8);
          __m512i acc = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo, _mm512_set1_epi64(q0));
          acc = _mm512_dpbusd_epi32(acc, hi, _mm512_set1_epi64(q1));
          isum[t] = _mm512_add_epi32(isum[t], _mm512_mullo_epi32(acc, sc[h]));
        }
      }
    }
    const __m256 dx = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb.d)));
    for (int t = 0; t < T; ++t) {
      const __m512i bs = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(y[t][b].bsums)));
      __m512i corr = _mm512_setzero_si512();
      for (int i = 0; i < 4; ++i) {
        const __m512i idx = _mm512_add_epi32(idx_lo, _mm512_set1_epi32(2 * i));
        corr = _mm512_add_epi32(corr, _mm512_madd_epi16(sw[i], _mm512_permutexvar_epi32(idx, bs)));
      }
      const __m256i c8 = _mm256_add_epi32(_mm512_castsi512_si256(corr), _mm512_extracti64x4_epi64(corr, 1));
      const __m256i is = _mm256_sub_epi32(_mm512_cvtepi64_epi32(_mm512_add_epi32(isum[t], _mm512_srli_epi64(isum[t], 32))),
                                          _mm256_slli_epi32(c8, 5));
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

// The activations of every k-quant matmul, as the scalar twin quantize_q8_k (ggml's
// quantize_row_q8_K_ref) computes them, bit for bit: the first element of largest magnitude sets
// iscale = -127 / max; levels are nearest-even roundings of iscale * x (one float product each,
// vcvtps2dq in the default rounding mode, as nearbyint), clamped at 127; bsums are exact. It was
// ~10 % of a 1-thread Q4_K_M prompt as a scalar loop (nearbyint per element).
void quantize_q8_k(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  const __m512 sign = _mm512_set1_ps(-0.0f);
  for (int64_t b = 0; b < n / QK_K; ++b, x += QK_K) {
    __m512 m = _mm512_setzero_ps();
    for (int i = 0; i < QK_K; i += 16) m = _mm512_max_ps(_mm512_andnot_ps(sign, _mm512_loadu_ps(x + i)), m);
    const float amax = _mm512_reduce_max_ps(m);
    if (amax == 0.f) {
      std::memset(&y[b], 0, sizeof(BlockQ8_K));
      continue;
    }
    float max = 0;
    const __m512 va = _mm512_set1_ps(amax);
    for (int i = 0; i < QK_K; i += 16) {
      const __mmask16 k = _mm512_cmp_ps_mask(_mm512_andnot_ps(sign, _mm512_loadu_ps(x + i)), va, _CMP_EQ_OQ);
      if (k) {
        max = x[i + __builtin_ctz(k)];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m512 vs = _mm512_set1_ps(iscale);
    const __m512i top = _mm512_set1_epi32(127);
    for (int i = 0; i < QK_K; i += 16) {
      // The int8 store keeps the low byte, as the twin's cast does: identical for the levels in
      // [-128, 127], and for a block whose max is so small that iscale overflows (conversions of
      // inf / NaN give 0x80000000 in both, stored as 0).
      const __m512i q = _mm512_min_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(vs, _mm512_loadu_ps(x + i))), top);
      const __m128i q8 = _mm512_cvtepi32_epi8(q);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y[b].qs + i), q8);
      y[b].bsums[i / 16] = static_cast<int16_t>(_mm512_reduce_add_epi32(_mm512_cvtepi8_epi32(q8)));
    }
    y[b].d = 1.f / iscale;
  }
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
  t.group_dot[static_cast<int>(GgmlType::Q4_K)] = group_q4_k;
  t.group_dot[static_cast<int>(GgmlType::Q6_K)] = group_q6_k;
  t.quantize[static_cast<int>(GgmlType::Q8_K)] = quantize_q8_k;
}

}  // namespace dcq::kernels
