// On-disk block layouts of ggml's quantized types, byte for byte as ggml-common.h defines them.
// Every multi-byte field is little-endian (fp16 scales are stored as raw uint16 bits). The
// static_asserts pin each size to traits(type).type_size so a layout change cannot go unnoticed.
// Shared by src/quant (scalar reference) and src/kernels (fast paths).
#pragma once

#include <cstdint>

namespace dcq::blocks {

inline constexpr int QK4_0 = 32, QK4_1 = 32, QK5_0 = 32, QK5_1 = 32, QK8_0 = 32, QK8_1 = 32;
inline constexpr int QK_K = 256;    // elements per k-quant super-block
inline constexpr int QK4_NL = 32;
inline constexpr int K_SCALE_SIZE = 12;

// The 16 non-linear levels of IQ4_NL / IQ4_XS (ggml's kvalues_iq4nl).
inline constexpr int8_t kIq4nlValues[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                            1,    13,   25,  38,  53,  69,  89,  113};

// x = d * (q - 8); q in the low nibble for element j, high nibble for element j + 16.
struct BlockQ4_0 { uint16_t d; uint8_t qs[QK4_0 / 2]; };
// x = d * q + m.
struct BlockQ4_1 { uint16_t d; uint16_t m; uint8_t qs[QK4_1 / 2]; };
// x = d * (q - 16); bit 4 of element j is bit j of qh.
struct BlockQ5_0 { uint16_t d; uint8_t qh[4]; uint8_t qs[QK5_0 / 2]; };
struct BlockQ5_1 { uint16_t d; uint16_t m; uint8_t qh[4]; uint8_t qs[QK5_1 / 2]; };
struct BlockQ8_0 { uint16_t d; int8_t qs[QK8_0]; };
// s = d * sum(qs): used for activations only.
struct BlockQ8_1 { uint16_t d; uint16_t s; int8_t qs[QK8_1]; };

// 16 sub-blocks of 16: x = d * (scales & 15) * q - dmin * (scales >> 4), q 2 bits.
struct BlockQ2_K { uint8_t scales[QK_K / 16]; uint8_t qs[QK_K / 4]; uint16_t d; uint16_t dmin; };
// 16 sub-blocks of 16, 6-bit signed scales packed in 12 bytes, q 3 bits (low 2 in qs, high in hmask).
struct BlockQ3_K { uint8_t hmask[QK_K / 8]; uint8_t qs[QK_K / 4]; uint8_t scales[12]; uint16_t d; };
// 8 sub-blocks of 32, 6-bit scales and mins packed in 12 bytes (see get_scale_min_k4).
struct BlockQ4_K { uint16_t d; uint16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qs[QK_K / 2]; };
struct BlockQ5_K { uint16_t d; uint16_t dmin; uint8_t scales[K_SCALE_SIZE]; uint8_t qh[QK_K / 8]; uint8_t qs[QK_K / 2]; };
// 16 sub-blocks of 16, int8 scales, q 6 bits (low 4 in ql, high 2 in qh).
struct BlockQ6_K { uint8_t ql[QK_K / 2]; uint8_t qh[QK_K / 4]; int8_t scales[QK_K / 16]; uint16_t d; };
// Activations: float scale, int8 quants and sums of each group of 16.
struct BlockQ8_K { float d; int8_t qs[QK_K]; int16_t bsums[QK_K / 16]; };

struct BlockIQ4_NL { uint16_t d; uint8_t qs[QK4_NL / 2]; };
// 8 sub-blocks of 32, 6-bit scales (low 4 bits in scales_l, high 2 in scales_h), offset by 32.
struct BlockIQ4_XS { uint16_t d; uint16_t scales_h; uint8_t scales_l[QK_K / 64]; uint8_t qs[QK_K / 2]; };

static_assert(sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20 && sizeof(BlockQ5_0) == 22 &&
              sizeof(BlockQ5_1) == 24 && sizeof(BlockQ8_0) == 34 && sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84 && sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 &&
              sizeof(BlockQ5_K) == 176 && sizeof(BlockQ6_K) == 210 && sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockIQ4_NL) == 18 && sizeof(BlockIQ4_XS) == 136);
static_assert(alignof(BlockQ4_0) <= 2 && alignof(BlockQ3_K) <= 2, "blocks must pack without padding");

// Unpacks the 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K block.
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t& d, uint8_t& m) {
  if (j < 4) {
    d = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    d = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    m = uint8_t((q[j + 4] >> 4) | ((q[j - 0] >> 6) << 4));
  }
}

}  // namespace dcq::blocks
