// F32 / F16 matmuls in "lane order" on 512-bit registers (AVX-512 F; F16 via vcvtph2ps).
//
// Lane order (llama.cpp's tinyBLAS, which ggml-cpu uses for every F32 / F16 matmul whose width is
// a multiple of 16 on AVX-512): each output keeps ONE 16-lane accumulator, lane l summing
// w[i] * x[i] for i = l (mod 16) with an FMA per step of 16, then the 16 lanes are summed by
// halving (lanes l and l + 8, then l and l + 4, l + 2, l + 1). Every output is one independent
// chain, so a register tile of R rows x T tokens computes each output exactly as one row against
// one token does: batched prompts equal token-by-token evaluation by construction, with no passes
// or parked accumulators (the previous ggml-order tile needed four passes per chunk). The scalar
// twin is dot_lanes_scalar (scalar.cpp).
//
// F16: weights are widened per step; activations arrive already rounded to F16 and widened to
// float once per token (panel_act), since the products of the widened values are the same.
#include <immintrin.h>

#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// The reduction must stay additions in the twin's order (explicit fmadd calls are unaffected).
#pragma GCC optimize("fp-contract=off")

#include <algorithm>
#include <cstring>

#include "kernels/blocks.hpp"

namespace dcq::kernels {

namespace {

constexpr int kLanes = 16;
constexpr int kTileRows = 4;  // 4 x 6 tile: 24 accumulators + 4 weight vectors + 1 token vector of 32 zmm
constexpr int kTileToks = 6;

// Halving sum of the 16 lanes, the twin's tree.
inline float reduce_halving(__m512 v) {
  const __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                                 _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));         // lanes 0, 1: q0 + q2, q1 + q3
  q = _mm_add_ss(q, _mm_movehdup_ps(q));          // lane 0: (q0 + q2) + (q1 + q3)
  return _mm_cvtss_f32(q);
}

template <bool F16>
inline __m512 load_w(const void* row, int64_t k) {
  if constexpr (F16)
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(row) + k)));
  else
    return _mm512_loadu_ps(static_cast<const float*>(row) + k);
}

// R rows x T tokens; y[t * y_stride + r].
template <bool F16, int R, int T>
void tile(int64_t n, const uint8_t* w, size_t w_stride, const float* a, size_t a_stride, float* y, int64_t y_stride) {
  __m512 acc[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) acc[r][t] = _mm512_setzero_ps();
  for (int64_t k = 0; k < n; k += kLanes) {
    __m512 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load_w<F16>(w + r * w_stride, k);
    for (int t = 0; t < T; ++t) {
      const __m512 yv = _mm512_loadu_ps(a + t * a_stride + k);
      for (int r = 0; r < R; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], yv, acc[r][t]);
    }
  }
  for (int t = 0; t < T; ++t)
    for (int r = 0; r < R; ++r) y[t * y_stride + r] = reduce_halving(acc[r][t]);
}

// The next row block's weights (the R rows after these, contiguous) are prefetched into L2 a
// slice per token tile: a prompt reads every weight from DRAM once, and without this each block's
// first tile stalled on its rows' misses (a 1-thread F32 prompt paid ~50 ms of weight streaming
// on top of its compute; llama.cpp's tinyBLAS hid it). Prefetches do not change results.
template <bool F16, int R>
void rows_panel(int64_t n, const uint8_t* w, size_t w_stride, const float* a, size_t a_stride, int64_t n_tok,
                float* y, int64_t y_stride) {
  const size_t ahead = size_t(R) * w_stride;  // bytes of the next block
  const int64_t tiles = n_tok / kTileToks;
  const size_t slice = tiles > 0 ? (ahead / size_t(tiles) + 63) / 64 * 64 : 0;
  const uint8_t* next = w + ahead;
  int64_t t = 0;
  for (int64_t i = 0; t + kTileToks <= n_tok; t += kTileToks, ++i) {
    for (size_t o = size_t(i) * slice; o < std::min(ahead, size_t(i + 1) * slice); o += 64)
      _mm_prefetch(reinterpret_cast<const char*>(next + o), _MM_HINT_T1);
    tile<F16, R, kTileToks>(n, w, w_stride, a + t * a_stride, a_stride, y + t * y_stride, y_stride);
  }
  const float* at = a + t * a_stride;
  float* yt = y + t * y_stride;
  switch (n_tok - t) {
    case 1: return tile<F16, R, 1>(n, w, w_stride, at, a_stride, yt, y_stride);
    case 2: return tile<F16, R, 2>(n, w, w_stride, at, a_stride, yt, y_stride);
    case 3: return tile<F16, R, 3>(n, w, w_stride, at, a_stride, yt, y_stride);
    case 4: return tile<F16, R, 4>(n, w, w_stride, at, a_stride, yt, y_stride);
    case 5: return tile<F16, R, 5>(n, w, w_stride, at, a_stride, yt, y_stride);
    default: return;
  }
}

template <bool F16>
void panel(int64_t n, const void* w, size_t w_stride, int n_rows, const float* a, size_t a_stride, int64_t n_tok,
           float* y, int64_t y_stride) {
  const auto* wb = static_cast<const uint8_t*>(w);
  // Generation (one token): rows one after another. Each output is one FMA chain either way, so a
  // single row is latency-bound at ~16 floats per 4 cycles, still above one core's DRAM rate; a
  // 4-row tile instead walks four short streams 1.5-3 KB apart at once, which the hardware
  // prefetchers follow worse: measured on the 110M synth (Zen 4, 2 threads, idle) F16 67 -> 105
  // tok/s with this path (docs/benchmarks.md, "Engine speed", session 4).
  if (n_tok == 1) {
    for (int r = 0; r < n_rows; ++r) tile<F16, 1, 1>(n, wb + size_t(r) * w_stride, w_stride, a, a_stride, y + r, y_stride);
    return;
  }
  for (int r = 0; r < n_rows; r += kTileRows) {
    const uint8_t* wr = wb + size_t(r) * w_stride;
    switch (n_rows - r < kTileRows ? n_rows - r : kTileRows) {
      case 1: rows_panel<F16, 1>(n, wr, w_stride, a, a_stride, n_tok, y + r, y_stride); break;
      case 2: rows_panel<F16, 2>(n, wr, w_stride, a, a_stride, n_tok, y + r, y_stride); break;
      case 3: rows_panel<F16, 3>(n, wr, w_stride, a, a_stride, n_tok, y + r, y_stride); break;
      default: rows_panel<F16, 4>(n, wr, w_stride, a, a_stride, n_tok, y + r, y_stride); break;
    }
  }
}

// One row against one activation in its own format (the public vec_dot on lane-order widths).
float lane_dot_f32(int64_t n, const void* w, const void* a) {
  float out;
  tile<false, 1, 1>(n, static_cast<const uint8_t*>(w), 0, static_cast<const float*>(a), 0, &out, 0);
  return out;
}

float lane_dot_f16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m512 acc = _mm512_setzero_ps();
  for (int64_t k = 0; k < n; k += kLanes) acc = _mm512_fmadd_ps(load_w<true>(x, k), load_w<true>(y, k), acc);
  return reduce_halving(acc);
}

// x rounded to F16 (nearest even, as quantize_f16) and widened back to float.
void round_f16(const float* x, void* dst, int64_t n) {
  auto* out = static_cast<float*>(dst);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
  for (; i < n; ++i) out[i] = fp16_to_float(float_to_fp16(x[i]));
}

}  // namespace

void fill_avx512_gemm(KernelTable& t) {
  t.panel_lanes = kLanes;
  t.panel[static_cast<int>(GgmlType::F32)] = panel<false>;
  t.panel[static_cast<int>(GgmlType::F16)] = panel<true>;
  t.lane_dot[static_cast<int>(GgmlType::F32)] = lane_dot_f32;
  t.lane_dot[static_cast<int>(GgmlType::F16)] = lane_dot_f16;
  t.panel_act[static_cast<int>(GgmlType::F16)] = round_f16;
}

}  // namespace dcq::kernels
