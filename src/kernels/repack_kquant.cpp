// Interleaved Q4_K / Q6_K weights (docs/kernels_kquant.md): the plain <-> x8 block conversion and the
// scalar twin of the group kernel. The SIMD group kernels live in kquant_avx2.cpp and
// kquant_avx512.cpp; this file has no intrinsics so that every path shares one definition of
// the layout.
#include <cstring>

// Keep `sum += d * isum - dmin * summs` unfused, as in dot_q45_k (scalar.cpp).
#pragma GCC optimize("fp-contract=off")

#include "kernels/blocks.hpp"

namespace dcq::kernels {

namespace {

// The 6-bit scale and min of sub-block j of a ggml Q4_K block (get_scale_min_k4).
void scale_min(const uint8_t* q, int j, int& sc, int& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Nibble of element l (0..31) of sub-block g of row r in an x8 block.
int packed_level(const BlockQ4_Kx8& b, int r, int g, int l) {
  const int h = l / 16, k = l % 16;
  const uint8_t q = b.qs[g][h][r][k % 8];
  return k < 8 ? q & 0x0F : q >> 4;
}

// Scale and min of sub-block g of row r in an x8 block.
void packed_scale_min(const BlockQ4_Kx8& b, int r, int g, int& sc, int& m) {
  sc = b.scales[g][r] & 63;
  const uint8_t lo = b.mins[8 * (g % 4) + r];
  m = (g < 4 ? lo & 0x0F : lo >> 4) | ((b.scales[g][r] >> 6) << 4);
}

}  // namespace

// Packing runs once per weight at load (~50 M values for a 110M model), so it decodes each row's
// levels with plain loops first instead of one element at a time.
void pack_q4_k_x8(const BlockQ4_K* const rows[8], BlockQ4_Kx8& out) {
  std::memset(out.mins, 0, sizeof(out.mins));
  uint8_t v[QK_K];
  for (int r = 0; r < kRows; ++r) {
    const BlockQ4_K& b = *rows[r];
    out.d[r] = b.d;
    out.dmin[r] = b.dmin;
    for (int g = 0; g < 8; ++g) {
      int sc, m;
      scale_min(b.scales, g, sc, m);
      out.scales[g][r] = static_cast<uint8_t>(sc | ((m >> 4) << 6));
      out.mins[8 * (g % 4) + r] |= static_cast<uint8_t>((m & 0x0F) << (g < 4 ? 0 : 4));
    }
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        v[64 * c + l] = b.qs[32 * c + l] & 0x0F;
        v[64 * c + 32 + l] = b.qs[32 * c + l] >> 4;
      }
    for (int g = 0; g < 8; ++g)
      for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 8; ++k) {
          const int e = 32 * g + 16 * h + k;
          out.qs[g][h][r][k] = static_cast<uint8_t>(v[e] | (v[e + 8] << 4));
        }
  }
}

void unpack_q4_k_x8(const BlockQ4_Kx8& in, int r, BlockQ4_K& out) {
  out.d = in.d[r];
  out.dmin = in.dmin[r];
  int sc[8], m[8];
  for (int g = 0; g < 8; ++g) packed_scale_min(in, r, g, sc[g], m[g]);
  // ggml's 12 bytes: scales/mins 0..3 whole in bytes 0..7 with the top 2 bits of 4..7 above
  // them, the low 4 bits of scales/mins 4..7 in bytes 8..11 (the inverse of scale_min).
  for (int j = 0; j < 4; ++j) {
    out.scales[j] = static_cast<uint8_t>(sc[j] | ((sc[j + 4] >> 4) << 6));
    out.scales[j + 4] = static_cast<uint8_t>(m[j] | ((m[j + 4] >> 4) << 6));
    out.scales[j + 8] = static_cast<uint8_t>((sc[j + 4] & 0x0F) | ((m[j + 4] & 0x0F) << 4));
  }
  std::memset(out.qs, 0, sizeof(out.qs));
  for (int g = 0; g < 8; ++g)
    for (int l = 0; l < 32; ++l)
      out.qs[32 * (g / 2) + l] |= static_cast<uint8_t>(packed_level(in, r, g, l) << (g % 2 == 0 ? 0 : 4));
}

namespace {

// Value e (0..255, 0..63 before the -32 offset) of row r in an x8 block.
int packed_level6(const BlockQ6_Kx8& b, int r, int e) {
  const int g = e / 32, i = e % 32, h = i / 16, k = i % 16;
  const uint8_t ql = b.q[g].ql[h][r][k % 8];
  const int low = k < 8 ? ql & 0x0F : ql >> 4;
  return low | (((b.q[g].qh[r][i % 8] >> (2 * (i / 8))) & 3) << 4);
}

}  // namespace

void pack_q6_k_x8(const BlockQ6_K* const rows[8], BlockQ6_Kx8& out) {
  uint8_t v[QK_K];
  for (int r = 0; r < kRows; ++r) {
    const BlockQ6_K& b = *rows[r];
    out.d[r] = b.d;
    for (int s = 0; s < 16; ++s) out.scales[s / 2][r][s % 2] = b.scales[s];
    for (int half = 0; half < 2; ++half) {
      const uint8_t* ql = b.ql + 64 * half;
      const uint8_t* qh = b.qh + 32 * half;
      uint8_t* o = v + 128 * half;
      for (int l = 0; l < 32; ++l) {
        o[l] = static_cast<uint8_t>((ql[l] & 0x0F) | ((qh[l] & 3) << 4));
        o[l + 32] = static_cast<uint8_t>((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4));
        o[l + 64] = static_cast<uint8_t>((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4));
        o[l + 96] = static_cast<uint8_t>((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4));
      }
    }
    for (int g = 0; g < 8; ++g) {
      for (int h = 0; h < 2; ++h)
        for (int k = 0; k < 8; ++k) {
          const int e = 32 * g + 16 * h + k;
          out.q[g].ql[h][r][k] = static_cast<uint8_t>((v[e] & 0x0F) | ((v[e + 8] & 0x0F) << 4));
        }
      for (int k = 0; k < 8; ++k) {
        const uint8_t* e = v + 32 * g + k;
        out.q[g].qh[r][k] = static_cast<uint8_t>((e[0] >> 4) | ((e[8] >> 4) << 2) | ((e[16] >> 4) << 4) | ((e[24] >> 4) << 6));
      }
    }
  }
}

void unpack_q6_k_x8(const BlockQ6_Kx8& in, int r, BlockQ6_K& out) {
  out.d = in.d[r];
  for (int s = 0; s < 16; ++s) out.scales[s] = in.scales[s / 2][r][s % 2];
  std::memset(out.ql, 0, sizeof(out.ql));
  std::memset(out.qh, 0, sizeof(out.qh));
  for (int e = 0; e < QK_K; ++e) {
    const int v = packed_level6(in, r, e);
    const int half = e / 128, i = e % 128, l = i % 32, quarter = i / 32;
    out.ql[64 * half + l + (quarter % 2) * 32] |= static_cast<uint8_t>((v & 0x0F) << (quarter < 2 ? 0 : 4));
    out.qh[32 * half + l] |= static_cast<uint8_t>((v >> 4) << (2 * quarter));
  }
}

namespace {

// Scalar twin of the Q6_K group kernels: dot_q6_k's integers and float chain per (row, token).
void group_dot_q6_k(int64_t n, const void* group, const void* const a[], int n_tok, float* out) {
  const auto* x = static_cast<const BlockQ6_Kx8*>(group);
  for (int t = 0; t < n_tok; ++t) {
    const auto* y = static_cast<const BlockQ8_K*>(a[t]);
    for (int r = 0; r < kRows; ++r) {
      float sum = 0;
      for (int64_t b = 0; b < n / QK_K; ++b) {
        int isum = 0;
        for (int s = 0; s < 16; ++s) {
          int dot = 0;
          for (int j = 0; j < 16; ++j) dot += (packed_level6(x[b], r, 16 * s + j) - 32) * int(y[b].qs[16 * s + j]);
          isum += x[b].scales[s / 2][r][s % 2] * dot;
        }
        sum += h2f(x[b].d[r]) * y[b].d * static_cast<float>(isum);
      }
      out[kRows * t + r] = sum;
    }
  }
}

// Scalar twin of the Q4_K group kernels: per (row, token) the integers and the float chain of
// dot_q45_k<false>, read from the x8 layout.
void group_dot_q4_k(int64_t n, const void* group, const void* const a[], int n_tok, float* out) {
  const auto* x = static_cast<const BlockQ4_Kx8*>(group);
  for (int t = 0; t < n_tok; ++t) {
    const auto* y = static_cast<const BlockQ8_K*>(a[t]);
    for (int r = 0; r < kRows; ++r) {
      float sum = 0;
      for (int64_t b = 0; b < n / QK_K; ++b) {
        int isum = 0, summs = 0;
        for (int g = 0; g < 8; ++g) {
          int sc, m;
          packed_scale_min(x[b], r, g, sc, m);
          int s = 0;
          for (int l = 0; l < 32; ++l) s += packed_level(x[b], r, g, l) * int(y[b].qs[32 * g + l]);
          isum += sc * s;
          summs += m * (y[b].bsums[2 * g] + y[b].bsums[2 * g + 1]);
        }
        const float d = h2f(x[b].d[r]) * y[b].d;
        const float dmin = h2f(x[b].dmin[r]) * y[b].d;
        sum += d * static_cast<float>(isum) - dmin * static_cast<float>(summs);
      }
      out[kRows * t + r] = sum;
    }
  }
}

}  // namespace

void fill_scalar_repack_kquant(KernelTable& t) {
  t.group_dot[static_cast<int>(GgmlType::Q4_K)] = group_dot_q4_k;
  t.group_dot[static_cast<int>(GgmlType::Q6_K)] = group_dot_q6_k;
}

}  // namespace dcq::kernels
