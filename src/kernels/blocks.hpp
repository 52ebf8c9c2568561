// Block layouts of ggml's formats (byte-exact with ggml-common.h) and the kernel table that each
// ISA fills. Private to src/kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "dcq/fp16.hpp"
#include "dcq/ggml_type.hpp"

namespace dcq::kernels {

constexpr int QK = 32;    // legacy block size
constexpr int QK_K = 256;  // k-quant super-block size

struct BlockQ4_0 { uint16_t d; uint8_t qs[16]; };
struct BlockQ4_1 { uint16_t d, m; uint8_t qs[16]; };
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ5_1 { uint16_t d, m; uint8_t qh[4]; uint8_t qs[16]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[32]; };
struct BlockQ8_1 { uint16_t d, s; int8_t qs[32]; };  // s = d * sum(qs)
struct BlockIQ4NL { uint16_t d; uint8_t qs[16]; };
struct BlockQ2_K { uint8_t scales[16]; uint8_t qs[64]; uint16_t d, dmin; };
struct BlockQ3_K { uint8_t hmask[32]; uint8_t qs[64]; uint8_t scales[12]; uint16_t d; };
struct BlockQ4_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qs[128]; };
struct BlockQ5_K { uint16_t d, dmin; uint8_t scales[12]; uint8_t qh[32]; uint8_t qs[128]; };
struct BlockQ6_K { uint8_t ql[128]; uint8_t qh[64]; int8_t scales[16]; uint16_t d; };
struct BlockIQ4XS { uint16_t d; uint16_t scales_h; uint8_t scales_l[4]; uint8_t qs[128]; };
struct BlockQ8_K { float d; int8_t qs[256]; int16_t bsums[16]; };

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36 &&
              sizeof(BlockIQ4NL) == 18);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockIQ4XS) == 136 &&
              sizeof(BlockQ8_K) == 292);

// Groups of interleaved k-quant rows (BlockQ4_Kx8 / BlockQ6_Kx8 below) hold 8 rows.
constexpr int kRows = 8;

// "One lane per row" layouts of Q8_0 / Q4_0 weights, 16 rows per group (docs/kernels.md,
// "Session 5: one lane per row"). Group g holds, for each block column b in order, one x16 block:
// the 16 rows' fp16 scales together (one cvtph gives all 16 lane scales), then the levels in
// 4-byte chunks, chunk c of row r at qs[c][r]. A 64-byte load of qs[c] puts row r's 4 bytes in
// 32-bit lane r, so vpdpbusd against the token's 4 bytes of chunk c (broadcast) accumulates every
// row's block sum in its own lane: no horizontal reduction. AVX2 reads the same layout as two
// ymm halves (rows 0..7, 8..15). Rows past the last full group follow in ggml's plain layout;
// the byte count equals the plain matrix's.
constexpr int kLaneRows = 16;
constexpr int kLaneTokens = 4;  // tokens per LaneGroupFn call (register budget, see the kernels)
struct BlockQ8_0x16 {
  uint16_t d[16];        // scale of row r
  int8_t qs[8][16][4];   // [c][r][k] = level 4c + k of row r (signed, as in BlockQ8_0)
};
struct BlockQ4_0x16 {
  uint16_t d[16];        // scale of row r
  uint8_t qs[4][16][4];  // [c][r][k] = BlockQ4_0::qs[4c + k] of row r: low nibble element 4c + k, high 16 + 4c + k
};
static_assert(sizeof(BlockQ8_0x16) == 16 * sizeof(BlockQ8_0) && sizeof(BlockQ4_0x16) == 16 * sizeof(BlockQ4_0));

// Interleaved Q4_K (docs/kernels_kquant.md): 8 rows' super-blocks of one block column, 1152
// bytes like the 8 plain blocks, so the packed matrix keeps its byte count. The 6-bit scales are
// unpacked to one byte each (the hot loop only masks them); the mins, also 6-bit, have their low
// 4 bits in `mins` and their top 2 bits in the spare top bits of the scale bytes. Sub-block g is
// 2 x 64 bytes of quants: in each 64, row r's 8 bytes form one 64-bit lane (low nibbles =
// elements 16h + 0..7 of the sub-block, high nibbles = 16h + 8..15), so one 512-bit load covers
// 8 rows and one 8-byte broadcast of activations serves them all.
struct BlockQ4_Kx8 {
  uint16_t d[8];            // row r's super-block scale (fp16)
  uint16_t dmin[8];         // row r's super-block min scale (fp16)
  uint8_t scales[8][8];     // [g][r]: bits 0..5 scale of sub-block g, bits 6..7 = bits 4..5 of its min
  uint8_t mins[32];         // byte 8g + r (g < 4): low nibble bits 0..3 of min (g, r), high of (g + 4, r)
  uint8_t qs[8][2][8][8];   // [g][h][r][k]: low nibble element 16h + k of sub-block g, high 16h + 8 + k
};
static_assert(sizeof(BlockQ4_Kx8) == 8 * sizeof(BlockQ4_K));
// Plain <-> interleaved Q4_K (repack_kquant.cpp): pack 8 rows' blocks, or rebuild row r's block.
void pack_q4_k_x8(const BlockQ4_K* const rows[8], BlockQ4_Kx8& out);
void unpack_q4_k_x8(const BlockQ4_Kx8& in, int r, BlockQ4_K& out);
// Interleaved Q6_K: 8 rows' super-blocks, 1680 bytes like the 8 plain blocks. The low 4 bits
// of the levels as in BlockQ4_Kx8 (sub-block 2g + h of 16 values is 64 bytes, one 64-bit lane
// per row), followed by their top 2 bits in 64 bytes whose bytes line up with those lanes, so the
// kernel reads each x8 block front to back (a separate top-bit array ~1 KiB away stalled on
// every load once the weights came from DRAM); the int8 scales ordered (row, sub-block pair)
// for a madd with pairs of activation sums.
struct BlockQ6_Kx8 {
  uint16_t d[8];             // row r's super-block scale (fp16)
  int8_t scales[8][8][2];    // [g][r][h]: scale of sub-block 2g + h (values 32g + 16h ..) of row r
  struct {
    uint8_t ql[2][8][8];     // [h][r][k]: low 4 bits, low nibble value 32g + 16h + k, high 32g + 16h + 8 + k
    uint8_t qh[8][8];        // [r][k]: top 2 bits of values 32g + k, + 8 + k, + 16 + k, + 24 + k (bits 0-1 .. 6-7)
  } q[8];                    // [g]
};
static_assert(sizeof(BlockQ6_Kx8) == 8 * sizeof(BlockQ6_K));
void pack_q6_k_x8(const BlockQ6_K* const rows[8], BlockQ6_Kx8& out);
void unpack_q6_k_x8(const BlockQ6_Kx8& in, int r, BlockQ6_K& out);

// The non-linear 4-bit grid of IQ4_NL / IQ4_XS.
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

inline float h2f(uint16_t h) { return fp16_to_float(h); }

// Round to nearest, ties to even (what _mm256_round_ps(_MM_ROUND_NEAREST) and ggml's
// nearest_int do for the magnitudes seen here).
int nearest_even(float x);

using VecDotFn = float (*)(int64_t n, const void* w, const void* act);
using QuantizeFn = void (*)(const float* x, void* dst, int64_t n);
// Four independent dot products at once (w[i] with a[i]; pointers may repeat): each result is
// computed exactly as VecDotFn would, the four chains only interleave to hide latency.
using VecDot4Fn = void (*)(int64_t n, const void* const w[4], const void* const a[4], float out[4]);
// A 4 x 4 tile of a batch: out[4 * t + r] = dot(w[r], a[t]), each exactly as VecDotFn computes it.
using Gemm4x4Fn = void (*)(int64_t n, const void* const w[4], const void* const a[4], float out[16]);
// dcq's I8 codes with a float scale per `group` codes, against float activations.
using I8DotFn = float (*)(int64_t n, const int8_t* w, const float* x, const float* scales, int64_t group);
// One I8 row against four token rows x[0..3] (the batch kernel: each code is widened once and
// used four times). Each out[i] is within the I8 budget of I8DotFn(n, w, x[i], ...).
using I8Dot4Fn = void (*)(int64_t n, const int8_t* w, const float* const x[4], const float* scales, int64_t group,
                          float out[4]);
// One weight row against four token rows (a batch without a 4x4 tile: the row's scales and levels
// are decoded once for the four tokens): out[t] = dot(w, a[t]), each exactly as VecDotFn computes it.
using Row4Fn = void (*)(int64_t n, const void* w, const void* const a[4], float out[4]);
// A group of 8 interleaved k-quant rows (BlockQ4_Kx8 / BlockQ6_Kx8 blocks) against n_tok (1..4)
// Q8_K activation rows: out[8 * t + r] = dot(row r, a[t]), each exactly as VecDotFn computes it on
// the plain row (the same integer block sums and float chain: bit-identical). Q8_0 / Q4_0 entries
// (16-row groups, out[16 * t + r]) compute lane_act and call a LaneGroupFn (lane_group_dot).
using GroupDotFn = void (*)(int64_t n, const void* group, const void* const a[], int n_tok, float* out);
// Per token block, what the lane kernels need besides its levels, computed once per matmul (not
// once per group of rows): the scale as a float, and the correction of the unsigned weight bytes
// (Q8_0: level + 128, Q4_0: nibble = level + 8), corr = -offset * (sum of the block's 32 levels).
struct LaneAct {
  float d;
  int32_t corr;
};
inline int lane_offset(GgmlType type) { return type == GgmlType::Q8_0 ? 128 : 8; }
// out[b] for the n / 32 blocks of the Q8_0 activation row a.
inline void lane_act(int64_t n, const void* a, int offset, LaneAct* out) {
  const auto* y = static_cast<const BlockQ8_0*>(a);
  for (int64_t b = 0; b < n / QK; ++b) {
    int32_t s = 0;
    for (int k = 0; k < QK; ++k) s += y[b].qs[k];
    out[b] = {fp16_to_float(y[b].d), -offset * s};
  }
}
// A group of 16 lane-interleaved rows (BlockQ8_0x16 / BlockQ4_0x16 blocks, n / 32 of them) against
// n_tok (1..kLaneTokens) Q8_0 activation rows a[t] with act[t] = their lane_act:
// out[16 * t + r] = dot(row r, a[t]), bit-identical with VecDotFn on the plain row.
using LaneGroupFn = void (*)(int64_t n, const void* group, const void* const a[], const LaneAct* const act[],
                             int n_tok, float* out);
// The GroupDotFn face of a LaneGroupFn (the group_dot entry of Q8_0 / Q4_0, for callers without
// the per-matmul token data): computes lane_act itself.
template <LaneGroupFn F, GgmlType T>
void lane_group_dot(int64_t n, const void* group, const void* const a[], int n_tok, float* out) {
  const int64_t nb = n / QK;
  std::vector<LaneAct> buf(size_t(nb) * size_t(n_tok));
  std::vector<const LaneAct*> act(static_cast<size_t>(n_tok));
  for (int t = 0; t < n_tok; ++t) {
    act[size_t(t)] = buf.data() + size_t(t) * size_t(nb);
    lane_act(n, a[t], lane_offset(T), buf.data() + size_t(t) * size_t(nb));
  }
  for (int t0 = 0; t0 < n_tok; t0 += kLaneTokens)
    F(n, group, a + t0, act.data() + t0, n_tok - t0 < kLaneTokens ? n_tok - t0 : kLaneTokens, out + kLaneRows * t0);
}
// F32 / F16 weights in lane order (gemm_avx2.cpp / gemm_avx512.cpp; widths that are a multiple of
// panel_lanes only): rows w[0..n_rows) (any count, byte stride w_stride) against n_tok float
// activation rows (a + t * a_stride; F16 activations already rounded to F16, see panel_act):
// y[t * y_stride + r] = dot_lanes_scalar(type, panel_lanes, n, row r, token t), bit for bit.
using PanelFn = void (*)(int64_t n, const void* w, size_t w_stride, int n_rows, const float* a, size_t a_stride,
                         int64_t n_tok, float* y, int64_t y_stride);
using AttentionFn = void (*)(const float* q, const uint16_t* k, const uint16_t* v, int64_t stride, int n_kv,
                             int head_dim, float scale, float* out);

constexpr int kMaxType = 40;
struct KernelTable {
  VecDotFn vec_dot[kMaxType] = {};      // by weight type
  QuantizeFn quantize[kMaxType] = {};   // by activation type
  VecDot4Fn vec_dot4[kMaxType] = {};    // optional
  Gemm4x4Fn gemm4x4[kMaxType] = {};     // optional (batches of 4+ tokens)
  Row4Fn row4[kMaxType] = {};           // optional (batches, types without gemm4x4)
  GroupDotFn group_dot[kMaxType] = {};  // interleaved Q8_0 / Q4_0 / Q4_K / Q6_K (every path has one)
  LaneGroupFn lane_group[kMaxType] = {};  // Q8_0 / Q4_0 in 16-row lane groups (every path has one)
  bool interleave_pays = false;         // this path packs Q8_0 / Q4_0 weights (AVX2, AVX-512)
  PanelFn panel[kMaxType] = {};         // optional, by weight type (F32, F16)
  VecDotFn lane_dot[kMaxType] = {};     // one row x one token in the panel's order (vec_dot's width check)
  QuantizeFn panel_act[kMaxType] = {};  // by weight type: activations as floats (nullptr: x as is)
  int panel_lanes = 0;                  // the lane count of panel / lane_dot (n % panel_lanes == 0)
  AttentionFn attention = nullptr;
  I8DotFn dot_i8 = nullptr;
  I8Dot4Fn dot_i8_4 = nullptr;
};

// Fills every entry with the scalar reference.
void fill_scalar(KernelTable& t);
// Override the entries they speed up (defined in *_avx2.cpp / *_avx512.cpp).
void fill_avx2(KernelTable& t);
void fill_avx2_kquant(KernelTable& t);  // kquant_avx2.cpp: Q4_K / Q6_K dots as R rows x T tokens templates
void fill_avx512(KernelTable& t);
void fill_avx512_repack(KernelTable& t);  // repack_avx512.cpp: VNNI kernels of the interleaved layout
void fill_avx512_kquant(KernelTable& t);  // kquant_avx512.cpp: Q4_K / Q6_K dots on 512-bit registers
void fill_scalar_repack_kquant(KernelTable& t);  // repack_kquant.cpp: scalar twins of the Q4_K / Q6_K group kernels
void fill_avx2_gemm(KernelTable& t);    // gemm_avx2.cpp: F32 / F16 panels in 16-lane order, 8-lane registers
void fill_avx512_gemm(KernelTable& t);  // gemm_avx512.cpp: F32 / F16 panels in 16-lane order

// Scalar twin of the lane-order kernels: `lanes` float accumulators, accumulator l summing
// fma(w[i], x[i], acc) for i = l (mod lanes), then summed by halving (l + lanes / 2, ..., l + 1).
// type F32 (float activations) or F16 (F16 weights and activations); n % lanes == 0.
float dot_lanes_scalar(GgmlType type, int lanes, int64_t n, const void* w, const void* a);

void attention_f16_scalar(const float* q, const uint16_t* k, const uint16_t* v, int64_t stride, int n_kv,
                          int head_dim, float scale, float* out);

// Dequantizes one row (a whole number of blocks) of a weight type into floats.
void dequantize_row_scalar(GgmlType type, const void* src, float* dst, int64_t n);

}  // namespace dcq::kernels
