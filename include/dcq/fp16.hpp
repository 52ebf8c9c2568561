// Scalar conversions between float and the 16-bit float formats, with ggml's exact semantics
// (round to nearest even; BF16 NaNs kept quiet) so that block formats are bit-exact.
#pragma once

#include <cstdint>
#include <cstring>

namespace dcq {

inline uint32_t float_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline float bits_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }

inline float fp16_to_float(uint16_t h) {
  // Exact: every half is representable as a float.
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  if (exp == 0x1f) return bits_float(sign | 0x7f800000u | (mant << 13));
  if (exp == 0) {
    if (mant == 0) return bits_float(sign);
    // Subnormal half: normalise into a float.
    int e = -1;
    do { ++e; mant <<= 1; } while ((mant & 0x400) == 0);
    mant &= 0x3ff;
    return bits_float(sign | uint32_t(127 - 15 - e) << 23 | (mant << 13));
  }
  return bits_float(sign | (exp + (127 - 15)) << 23 | (mant << 13));
}

inline uint16_t float_to_fp16(float f) {
  // Round to nearest even, as F16C's _cvtss_sh(x, 0) and ggml's scalar fallback do.
  const uint32_t x = float_bits(f);
  const uint32_t sign = (x >> 16) & 0x8000;
  const uint32_t ax = x & 0x7fffffffu;
  if (ax >= 0x7f800000u) return uint16_t(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 | ((ax >> 13) & 0x3ff) : 0));
  if (ax >= 0x477ff000u) return uint16_t(sign | 0x7c00);  // rounds to infinity
  if (ax < 0x38800000u) {
    // Result is subnormal (or zero): shift the implicit-1 mantissa into place, round to even.
    if (ax < 0x33000000u) return uint16_t(sign);  // below half the smallest subnormal
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7fffff) | 0x800000;
    const uint32_t shift = 126 - e;  // 14 + (113 - e) - 1 ... places the value at 2^-24 units
    const uint32_t half = 1u << (shift - 1);
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    if (rem > half || (rem == half && (r & 1))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t r = ax - 0x38000000u;  // rebias exponent 127 -> 15 (in the float's bit positions)
  r += 0xfff + ((r >> 13) & 1);   // round to nearest even on the 13 dropped bits
  return uint16_t(sign | (r >> 13));
}

inline float bf16_to_float(uint16_t h) { return bits_float(uint32_t(h) << 16); }

inline uint16_t float_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 64);  // keep NaN quiet
  return uint16_t((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

}  // namespace dcq
