// fp16/bf16 conversions: exhaustive round trips and agreement with the compiler's own
// IEEE half conversion (GCC's _Float16, round to nearest even) and an independent bf16 rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "dcq/fp16.hpp"

using namespace dcq;

namespace {

bool half_is_nan(uint16_t h) { return (h & 0x7c00) == 0x7c00 && (h & 0x03ff) != 0; }

uint16_t compiler_half(float f) {
  const _Float16 h = static_cast<_Float16>(f);
  uint16_t u;
  std::memcpy(&u, &h, 2);
  return u;
}

// bf16 by exact arithmetic: the two neighbours of f on the bf16 grid, nearest wins, ties to
// the even mantissa. Independent of the bit trick in fp16.hpp.
uint16_t reference_bf16(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t lo = uint16_t(u >> 16);
  if ((u & 0xffff) == 0) return lo;
  const uint16_t hi = uint16_t(lo + 1);  // next magnitude (may carry into the exponent / inf)
  const double dl = std::fabs(double(bf16_to_float(lo)) - double(f));
  const double dh = std::fabs(double(bf16_to_float(hi)) - double(f));
  if (std::isinf(bf16_to_float(hi)) && !std::isinf(f)) {
    // Rounding past the largest finite value: overflow only from the halfway point on.
    return (u & 0xffff) >= 0x8000 && !((u & 0xffff) == 0x8000 && (lo & 1) == 0) ? hi : lo;
  }
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return (lo & 1) == 0 ? lo : hi;
}

std::vector<float> edge_floats() {
  std::vector<float> v = {0.0f, -0.0f, 1.0f, -1.0f, 65504.0f, -65504.0f, 65519.99f, 65520.0f, 65536.0f,
                          std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::max(), std::numeric_limits<float>::denorm_min(),
                          std::numeric_limits<float>::min(), 6.1035156e-05f /* 2^-14 */, 5.9604645e-08f /* 2^-24 */,
                          2.9802322e-08f /* 2^-25: ties to 0 */, 2.9802326e-08f, 8.940697e-08f /* 1.5 * 2^-24 */,
                          6.097555e-05f /* largest subnormal half */, 1e-10f, 0.1f, 1.0f / 3.0f, 1.0009766f};
  // Every exact halfway point between adjacent normal and subnormal halves (ties to even).
  for (uint32_t h = 0; h < 0x7bff; h += 37) {
    const double a = fp16_to_float(uint16_t(h)), b = fp16_to_float(uint16_t(h + 1));
    v.push_back(float((a + b) / 2));
    v.push_back(-float((a + b) / 2));
  }
  return v;
}

}  // namespace

TEST(Fp16, AllHalvesRoundTrip) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = fp16_to_float(uint16_t(h));
    if (half_is_nan(uint16_t(h))) {
      ASSERT_TRUE(std::isnan(f)) << h;
      const uint16_t back = float_to_fp16(f);
      ASSERT_TRUE(half_is_nan(back)) << h;
      ASSERT_EQ(back & 0x8000, h & 0x8000) << h;
      continue;
    }
    ASSERT_EQ(float_to_fp16(f), h) << "half " << h;
    // The compiler agrees on the value of every half.
    _Float16 c;
    const uint16_t hh = uint16_t(h);
    std::memcpy(&c, &hh, 2);
    ASSERT_EQ(float_bits(static_cast<float>(c)), float_bits(f)) << "half " << h;
  }
}

TEST(Fp16, FloatToHalfMatchesCompilerOnEdges) {
  for (float f : edge_floats()) EXPECT_EQ(float_to_fp16(f), compiler_half(f)) << f << " bits " << float_bits(f);
  EXPECT_TRUE(half_is_nan(float_to_fp16(std::numeric_limits<float>::quiet_NaN())));
}

TEST(Fp16, FloatToHalfMatchesCompilerOnRandomBits) {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<uint32_t> bits;
  std::normal_distribution<float> weights(0.0f, 0.02f);
  int checked = 0;
  for (int i = 0; i < 2000000; ++i) {
    const float f = (i & 1) ? bits_float(bits(rng)) : weights(rng);
    if (std::isnan(f)) continue;
    const uint16_t want = compiler_half(f);
    const uint16_t got = float_to_fp16(f);
    if (got != want) {
      FAIL() << "float bits " << float_bits(f) << ": got " << got << " want " << want;
    }
    ++checked;
  }
  EXPECT_GT(checked, 1990000);
}

TEST(Bf16, AllRoundTripAndRoundToNearestEven) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_float(uint16_t(h));
    if (std::isnan(f)) {
      ASSERT_TRUE(std::isnan(bf16_to_float(float_to_bf16(f)))) << h;  // NaNs stay NaN (made quiet)
      continue;
    }
    ASSERT_EQ(float_to_bf16(f), h) << h;
  }
  std::mt19937 rng(99);
  std::uniform_int_distribution<uint32_t> bits;
  for (int i = 0; i < 1000000; ++i) {
    const float f = bits_float(bits(rng));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_bf16(f), reference_bf16(f)) << float_bits(f);
  }
  // Ties go to even: 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125.
  EXPECT_EQ(float_to_bf16(bits_float(0x3f808000u)), 0x3f80);
  EXPECT_EQ(float_to_bf16(bits_float(0x3f818000u)), 0x3f82);
  EXPECT_EQ(float_to_bf16(bits_float(0x7f7fffffu)), 0x7f80);  // FLT_MAX rounds to infinity
  EXPECT_EQ(float_to_bf16(bits_float(0x7fa00000u)), 0x7fe0);  // signalling NaN made quiet, as ggml
}
