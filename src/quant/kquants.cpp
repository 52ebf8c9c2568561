// K-quants: 256-element super-blocks of 16 or 32-element sub-blocks whose scales are themselves
// quantized (Q2_K .. Q6_K), plus Q8_K for activations. The quantizers reproduce ggml's
// quantize_row_*_ref (what llama-quantize runs without an importance matrix), including its
// iterative scale searches (make_qx_quants, make_q3_quants, make_qkx2_quants).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "dcq/error.hpp"
#include "dcq/fp16.hpp"
#include "dcq/quant_blocks.hpp"
#include "quant/quant_internal.hpp"

namespace dcq::quant_detail {

using namespace dcq::blocks;

namespace {

// Below this a group counts as all zero (ggml's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

// --- Lanes of candidate scales -------------------------------------------------------------
// The scale searches below try a fixed list of candidate scales per sub-block. ggml walks the
// list one candidate at a time, each with serial float sums; we run four candidates side by side
// in the lanes of a 16-byte vector (GCC/Clang vector extensions: SSE2 on plain x86-64). A lane
// holds one candidate and repeats ggml's scalar sequence of operations for it, in the same order
// and precision, so its sums are bit-identical to ggml's; only the bookkeeping (which candidate
// wins) is done afterwards, walking the candidates in ggml's order with ggml's comparisons.
typedef float F4 __attribute__((vector_size(16)));
typedef int32_t I4 __attribute__((vector_size(16)));

inline F4 splat(float v) { return F4{v, v, v, v}; }
inline I4 splat_i(int32_t v) { return I4{v, v, v, v}; }

// nearest_int in every lane (same bit trick, same tie rule).
inline I4 nearest_int4(F4 f) {
  const F4 v = f + splat(12582912.f);
  I4 i;
  std::memcpy(&i, &v, sizeof i);
  return (i & splat_i(0x007fffff)) - splat_i(0x00400000);
}

// Clamps levels to [lo, hi] and converts them to float (exact: they are small integers).
inline F4 clamp_levels(I4 l, int lo, int hi) {
  const I4 vlo = splat_i(lo), vhi = splat_i(hi);
  l = l < vlo ? vlo : l;
  l = l > vhi ? vhi : l;
  return __builtin_convertvector(l, F4);
}

// clamp(nearest_int(f), lo, hi) as floats. The exact route goes through nearest_int's bits for
// any f (NaN and out-of-range values included). The fast route, valid when every |f| < 2^22:
// f + 1.5 * 2^23 then lies in [2^23, 2^24) where floats are exactly the integers, so the add
// rounds f to nearest-even as nearest_int does and subtracting 1.5 * 2^23 back is exact; the
// clamp happens on floats (min/max instead of integer compare-and-blend, no conversion).
template <bool kFast>
inline F4 levels(F4 f, int lo, int hi) {
  if constexpr (kFast) {
    const F4 c = splat(12582912.f);
    const F4 vlo = c + splat(float(lo)), vhi = c + splat(float(hi));
    F4 v = f + c;
    v = v < vlo ? vlo : v;
    v = v > vhi ? vhi : v;
    return v - c;
  } else {
    return clamp_levels(nearest_int4(f), lo, hi);
  }
}

// Below this bound on |f| the fast route of levels() is exact.
constexpr float kFastLevelBound = 4194304.f;  // 2^22

// fabsf in every lane: clears the sign bit, as fabsf does.
inline F4 abs4(F4 f) {
  I4 i;
  std::memcpy(&i, &f, sizeof i);
  i &= splat_i(0x7fffffff);
  std::memcpy(&f, &i, sizeof f);
  return f;
}

inline F4 load4(const float* p) {
  F4 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

inline void store4(float* p, F4 v) { std::memcpy(p, &v, sizeof v); }

// The last step of every k-quant: levels against the final (rounded) scale d and offset dm,
// L[i] = clamp(nearest_int((x[i] + dm) / d), lo, hi) + bias for n (a multiple of 4) values,
// four at a time. Vector division and nearest_int's bit route give ggml's scalar results exactly
// for any input; kAddMin false computes x[i] / d as ggml does for the symmetric types.
template <bool kAddMin, typename T>
inline void requantize(const float* x, int n, float dm, float d, int lo, int hi, int bias, T* L) {
  const F4 vd = splat(d), vdm = splat(dm);
  for (int i = 0; i < n; i += 4) {
    F4 v = load4(x + i);
    if constexpr (kAddMin) v = v + vdm;
    I4 l = nearest_int4(v / vd);
    l = l < splat_i(lo) ? splat_i(lo) : l;
    l = l > splat_i(hi) ? splat_i(hi) : l;
    l += splat_i(bias);
    for (int k = 0; k < 4; ++k) L[i + k] = T(l[k]);
  }
}

// Symmetric quantization of N values to [-nmax, nmax-1] with the x^2-weighted (rmse_type 1)
// least-squares scale search of ggml's make_qx_quants: 18 candidate inverse scales around
// -nmax/max, keeping the one maximising sumlx^2/suml2. L receives levels offset by nmax.
template <int N, bool kFast>
float qx_candidates(int nmax, const float* x, int8_t* L, float max);

template <int N>
float qx_search(int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  bool finite = true;
  for (int i = 0; i < N; ++i) {
    const float ax = std::fabs(x[i]);
    finite = finite && ax <= 3.4e38f;  // false for inf and NaN
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(L, L + N, int8_t(0));
    return 0.f;
  }
  // Finite values give |iscale * x[i]| <= (nmax + 0.9) |x[i] / max| <= nmax + 1: fast levels.
  return finite ? qx_candidates<N, true>(nmax, x, L, max) : qx_candidates<N, false>(nmax, x, L, max);
}

template <int N, bool kFast>
float qx_candidates(int nmax, const float* x, int8_t* L, float max) {
  // The max-based start, scalar as in ggml; w * x[i] does not depend on the candidate.
  const float iscale0 = float(-nmax) / max;
  float wx[N];
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < N; ++i) {
    const int l = std::max(-nmax, std::min(nmax - 1, nearest_int(iscale0 * x[i])));
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    wx[i] = w * x[i];
    sumlx += wx[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  // Candidates is = -9..-1, 1..9 in lanes 0..17 (18..23 are padding, never read back).
  constexpr int kLanes = 24;
  alignas(16) float iscales[kLanes], slx[kLanes], sl2[kLanes];
  for (int k = 0; k < kLanes; ++k) {
    const int is = k < 9 ? k - 9 : k - 8;
    iscales[k] = -(float(nmax) + 0.1f * float(is)) / max;
  }
  for (int g = 0; g < kLanes; g += 8) {
    const F4 is0 = load4(iscales + g), is1 = load4(iscales + g + 4);
    F4 a0{}, a1{}, b0{}, b1{};
    for (int i = 0; i < N; ++i) {
      const F4 xi = splat(x[i]), w = splat(x[i] * x[i]), wxi = splat(wx[i]);
      const F4 l0 = levels<kFast>(is0 * xi, -nmax, nmax - 1);
      const F4 l1 = levels<kFast>(is1 * xi, -nmax, nmax - 1);
      a0 += wxi * l0;
      a1 += wxi * l1;
      b0 += w * l0 * l0;
      b1 += w * l1 * l1;
    }
    store4(slx + g, a0);
    store4(slx + g + 4, a1);
    store4(sl2 + g, b0);
    store4(sl2 + g + 4, b1);
  }
  int winner = -1;
  for (int k = 0; k < 18; ++k) {
    if (sl2[k] > 0 && slx[k] * slx[k] > best * sl2[k]) {
      scale = slx[k] / sl2[k];
      best = scale * slx[k];
      winner = k;
    }
  }
  if (winner >= 0) {
    for (int i = 0; i < N; ++i) {
      const int l = nearest_int(iscales[winner] * x[i]);
      L[i] = int8_t(nmax + std::max(-nmax, std::min(nmax - 1, l)));
    }
  }
  return scale;
}

// One pass of make_qkx2_quants' candidates in 4 * G lanes against a fixed min: the weighted
// sums of the levels, the least-squares scale and min (D, this_scale, this_min) and the error of
// each candidate, every lane in ggml's order of operations.
template <int N, int G, bool kMad, bool kFast>
void qkx2_lanes(int nmax, const float* x, const float* weights, const float* xm, const float* iscales, float sum_w,
                float sum_x, float* Ds, float* errors, float* tscales, float* tmins) {
  F4 is[G], sl[G], sl2[G], sxl[G], ts[G], tm[G], err[G];
  F4 lv[N][G];
  for (int k = 0; k < G; ++k) {
    is[k] = load4(iscales + 4 * k);
    sl[k] = sl2[k] = sxl[k] = err[k] = splat(0.f);
  }
  for (int i = 0; i < N; ++i) {
    const F4 w = splat(weights[i]), xi = splat(x[i]), d = splat(xm[i]);
    for (int k = 0; k < G; ++k) {
      const F4 l = levels<kFast>(is[k] * d, 0, nmax);
      lv[i][k] = l;
      const F4 wl = w * l;
      sl[k] += wl;
      sl2[k] += wl * l;
      sxl[k] += wl * xi;
    }
  }
  const F4 vsum_w = splat(sum_w), vsum_x = splat(sum_x);
  for (int k = 0; k < G; ++k) {
    const F4 D = vsum_w * sl2[k] - sl[k] * sl[k];
    ts[k] = (vsum_w * sxl[k] - vsum_x * sl[k]) / D;
    tm[k] = (sl2[k] * vsum_x - sl[k] * sxl[k]) / D;
    // ggml: a positive min is clamped to 0 and the scale refitted without it.
    const auto positive = tm[k] > splat(0.f);
    ts[k] = positive ? sxl[k] / sl2[k] : ts[k];
    tm[k] = positive ? splat(0.f) : tm[k];
    store4(Ds + 4 * k, D);
    store4(tscales + 4 * k, ts[k]);
    store4(tmins + 4 * k, tm[k]);
  }
  for (int i = 0; i < N; ++i) {
    const F4 w = splat(weights[i]), xi = splat(x[i]);
    for (int k = 0; k < G; ++k) {
      F4 diff = ts[k] * lv[i][k] + tm[k] - xi;
      diff = kMad ? abs4(diff) : diff * diff;
      err[k] += w * diff;
    }
  }
  for (int k = 0; k < G; ++k) store4(errors + 4 * k, err[k]);
}

// Asymmetric quantization x ~ scale * L + min with L in [0, nmax] (ggml's make_qkx2_quants):
// weighted least squares over nstep+1 candidate inverse scales. Returns the scale and stores
// -min (a non-negative offset) in the_min. kMad: absolute instead of squared error.
//
// In ggml the candidates are not independent: when one wins, `min` becomes its fitted min and
// the later candidates are computed against that new min (both the range max - min and the
// offsets x - min). So the lanes evaluate eight candidates speculatively against the current
// min; walking them in order, a win that moves the min discards the rest of the eight, which are
// re-evaluated from the next candidate on against the new min.
template <int N, bool kMad>
float qkx2_search(int nmax, const float* x, const float* weights, uint8_t* L, float* the_min, float rmin,
                  float rdelta, int nstep) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < N; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + N, uint8_t(0));
    *the_min = -min;
    return 0.f;
  }
  // The range-based start, scalar as in ggml.
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < N; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    float diff = scale * float(L[i]) + min - x[i];
    diff = kMad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  bool have_winner = false;
  float win_iscale = 0, win_min = 0;  // what the winner's levels were computed with
  float xm[N];
  int first = 0;
  while (first <= nstep) {
    alignas(16) float iscales[8], Ds[8], errors[8], tscales[8], tmins[8];
    for (int k = 0; k < 8; ++k) iscales[k] = (rmin + rdelta * float(first + k) + float(nmax)) / (max - min);
    for (int i = 0; i < N; ++i) xm[i] = x[i] - min;  // invariant across the candidates
    // The fast levels need |iscale * (x[i] - min)| < 2^22; sum_x is finite only if every x is.
    float max_xm = 0, max_is = 0;
    for (int i = 0; i < N; ++i) max_xm = std::max(max_xm, std::fabs(xm[i]));
    for (int k = 0; k < 8; ++k) max_is = std::max(max_is, std::fabs(iscales[k]));
    const bool fast = std::isfinite(sum_x) && max_xm * max_is < kFastLevelBound;  // false if NaN
    // Eight lanes keep six sums in flight; the last four or fewer candidates need only four.
    const int width = nstep + 1 - first > 4 ? 8 : 4;
    if (width == 8)
      fast ? qkx2_lanes<N, 2, kMad, true>(nmax, x, weights, xm, iscales, sum_w, sum_x, Ds, errors, tscales, tmins)
           : qkx2_lanes<N, 2, kMad, false>(nmax, x, weights, xm, iscales, sum_w, sum_x, Ds, errors, tscales, tmins);
    else
      fast ? qkx2_lanes<N, 1, kMad, true>(nmax, x, weights, xm, iscales, sum_w, sum_x, Ds, errors, tscales, tmins)
           : qkx2_lanes<N, 1, kMad, false>(nmax, x, weights, xm, iscales, sum_w, sum_x, Ds, errors, tscales, tmins);
    // ggml's walk over the candidates: D <= 0 is skipped, a strictly smaller error wins.
    int next = first + width;
    for (int k = 0; k < width && first + k <= nstep; ++k) {
      if (Ds[k] > 0 && errors[k] < best_error) {
        best_error = errors[k];
        scale = tscales[k];
        have_winner = true;
        win_iscale = iscales[k];
        win_min = min;
        const bool moved = std::memcmp(&tmins[k], &min, sizeof min) != 0;
        min = tmins[k];
        if (moved) {
          next = first + k + 1;  // the later lanes used the old min
          break;
        }
      }
    }
    first = next;
  }
  if (have_winner) {
    for (int i = 0; i < N; ++i) {
      const int l = nearest_int(win_iscale * (x[i] - win_min));
      L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    }
  }
  *the_min = -min;
  return scale;
}

// Q3_K's sub-block search (ggml's make_q3_quants with do_rmse): start from the max-based levels,
// then up to 5 passes moving single levels whenever that improves the x^2-weighted fit. Each
// move depends on the sums left by the previous one, so the lanes here are sub-blocks, not
// elements: 4 * G sub-blocks of 16 values side by side, each lane repeating ggml's scalar
// sequence for its own sub-block; a lane stops changing once its pass changed nothing (ggml's
// break) while the others go on.
template <int G>
void q3_lanes(int nmax, const float* x, int8_t* L, float* scales) {
  constexpr int n = 16;
  F4 xt[n][G];  // xt[i][k] lane j: element i of sub-block 4k + j
  for (int k = 0; k < G; ++k)
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < n; ++i) xt[i][k][j] = x[n * (4 * k + j) + i];
  I4 lt[n][G];
  F4 sumlx[G], suml2[G];
  I4 active[G];   // lanes whose search is still running (not all zero, not converged)
  I4 nonzero[G];  // lanes that are not all zero (ggml returns early for those)
  for (int k = 0; k < G; ++k) {
    F4 max = splat(0.f), amax = splat(0.f);
    for (int i = 0; i < n; ++i) {
      const F4 ax = abs4(xt[i][k]);
      const auto bigger = ax > amax;
      amax = bigger ? ax : amax;
      max = bigger ? xt[i][k] : max;
    }
    nonzero[k] = amax < splat(kGroupMaxEps) ? splat_i(0) : splat_i(-1);
    active[k] = nonzero[k];
    const F4 iscale = splat(float(-nmax)) / max;  // garbage in all-zero lanes, never used
    sumlx[k] = suml2[k] = splat(0.f);
    for (int i = 0; i < n; ++i) {
      I4 l = nearest_int4(iscale * xt[i][k]);
      l = l < splat_i(-nmax) ? splat_i(-nmax) : l;
      l = l > splat_i(nmax - 1) ? splat_i(nmax - 1) : l;
      lt[i][k] = l;
      const F4 lf = __builtin_convertvector(l, F4);
      const F4 w = xt[i][k] * xt[i][k];
      sumlx[k] += w * xt[i][k] * lf;
      suml2[k] += w * lf * lf;
    }
  }
  for (int itry = 0; itry < 5; ++itry) {
    I4 changed[G];
    for (int k = 0; k < G; ++k) changed[k] = splat_i(0);
    for (int i = 0; i < n; ++i) {
      for (int k = 0; k < G; ++k) {
        const F4 xi = xt[i][k];
        const F4 w = xi * xi;
        const F4 lf = __builtin_convertvector(lt[i][k], F4);
        const F4 slx0 = sumlx[k] - w * xi * lf;
        F4 slx = slx0;
        F4 sl2 = suml2[k] - w * lf * lf;
        I4 nl = nearest_int4(xi * sl2 / slx);
        nl = nl < splat_i(-nmax) ? splat_i(-nmax) : nl;
        nl = nl > splat_i(nmax - 1) ? splat_i(nmax - 1) : nl;
        const F4 nlf = __builtin_convertvector(nl, F4);
        slx += w * xi * nlf;
        sl2 += w * nlf * nlf;
        // ggml: slx > 0, a different level, sl2 > 0 and a better fit (in this order; the
        // comparisons have no side effects, so evaluating all of them is the same).
        const I4 accept = active[k] & (slx0 > splat(0.f)) & (nl != lt[i][k]) & (sl2 > splat(0.f)) &
                          (slx * slx * suml2[k] > sumlx[k] * sumlx[k] * sl2);
        lt[i][k] = accept ? nl : lt[i][k];
        sumlx[k] = accept ? slx : sumlx[k];
        suml2[k] = accept ? sl2 : suml2[k];
        changed[k] |= accept;
      }
    }
    bool any = false;
    for (int k = 0; k < G; ++k) {
      active[k] &= changed[k];
      for (int j = 0; j < 4; ++j) any = any || active[k][j] != 0;
    }
    if (!any) break;
  }
  for (int k = 0; k < G; ++k) {
    for (int j = 0; j < 4; ++j) {
      const int sb = 4 * k + j;
      if (nonzero[k][j] == 0) {  // all zero: levels 0 (not offset by nmax) and scale 0, as ggml
        std::fill(L + n * sb, L + n * sb + n, int8_t(0));
        scales[sb] = 0.f;
        continue;
      }
      const float a = sumlx[k][j], b2 = suml2[k][j];
      scales[sb] = b2 > 0.0f ? a / b2 : 0.0f;
      for (int i = 0; i < n; ++i) L[n * sb + i] = int8_t(lt[i][k][j] + nmax);
    }
  }
}

}  // namespace

// Non-template entry points (quant_internal.hpp): the shapes the k-quants use, and the tests.
void make_q3_quants_256(int nmax, const float* x, int8_t* L, float* scales) {
  q3_lanes<2>(nmax, x, L, scales);
  q3_lanes<2>(nmax, x + 128, L + 128, scales + 8);
}

float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  DCQ_ASSERT(n == 16);
  return qx_search<16>(nmax, x, L);
}

float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       float rmin, float rdelta, int nstep, bool use_mad) {
  DCQ_ASSERT(nstep >= 1);
  if (n == 32 && !use_mad) return qkx2_search<32, false>(nmax, x, weights, L, the_min, rmin, rdelta, nstep);
  if (n == 16 && use_mad) return qkx2_search<16, true>(nmax, x, weights, L, the_min, rmin, rdelta, nstep);
  DCQ_ASSERT(!"unsupported make_qkx2_quants shape");
  return 0.f;
}

namespace {

// Packs 256 2-bit values: byte l of each 32-byte group holds elements l, l+32, l+64, l+96.
void pack_2bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < QK_K; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}

// Q4_K / Q5_K share the first half: 8 asymmetric sub-blocks, then 6-bit scales and mins against
// fp16 super-scales, then the levels recomputed against the rounded scales.
void quantize_k_scales_mins(const float* x, int nmax, float rmin, float rdelta, int nstep, uint16_t& d_out,
                            uint16_t& dmin_out, uint8_t* scales_out, uint8_t* L) {
  float weights[32];
  float mins[QK_K / 32], scales[QK_K / 32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < QK_K / 32; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], rmin, rdelta, nstep, false);
    if (scales[j] > max_scale) max_scale = scales[j];
    if (mins[j] > max_min) max_min = mins[j];
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < QK_K / 32; ++j) {
    const uint8_t ls = std::min<uint8_t>(63, uint8_t(nearest_int(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, uint8_t(nearest_int(inv_min * mins[j])));
    if (j < 4) {
      scales_out[j] = ls;
      scales_out[j + 4] = lm;
    } else {
      scales_out[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
      scales_out[j - 4] |= uint8_t((ls >> 4) << 6);
      scales_out[j - 0] |= uint8_t((lm >> 4) << 6);
    }
  }
  d_out = float_to_fp16(max_scale / 63.f);
  dmin_out = float_to_fp16(max_min / 63.f);
  const float d_all = fp16_to_float(d_out), dmin_all = fp16_to_float(dmin_out);
  for (int j = 0; j < QK_K / 32; ++j) {
    uint8_t sc, m;
    get_scale_min_k4(j, scales_out, sc, m);
    const float d = d_all * float(sc);
    if (d == 0.0f) continue;
    const float dm = dmin_all * float(m);
    requantize<true>(x + 32 * j, 32, dm, d, 0, nmax, 0, L + 32 * j);
  }
}

}  // namespace

void quantize_q2_K(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  uint8_t L[QK_K];
  float weights[16], mins[QK_K / 16], scales[QK_K / 16];
  const float q4scale = 15.f;
  for (int64_t i = 0; i < nblocks; ++i, x += QK_K, out += sizeof(BlockQ2_K)) {
    BlockQ2_K b;
    float max_scale = 0, max_min = 0;  // the min is subtracted, so scales are never negative
    for (int j = 0; j < QK_K / 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], -0.5f, 0.1f, 15, true);
      if (scales[j] > max_scale) max_scale = scales[j];
      if (mins[j] > max_min) max_min = mins[j];
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) b.scales[j] = uint8_t(nearest_int(iscale * scales[j]));
      b.d = float_to_fp16(max_scale / q4scale);
    } else {
      std::memset(b.scales, 0, sizeof b.scales);
      b.d = float_to_fp16(0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < QK_K / 16; ++j) b.scales[j] |= uint8_t(nearest_int(iscale * mins[j]) << 4);
      b.dmin = float_to_fp16(max_min / q4scale);
    } else {
      b.dmin = float_to_fp16(0.f);
    }
    const float d_all = fp16_to_float(b.d), dmin_all = fp16_to_float(b.dmin);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = d_all * float(b.scales[j] & 0xF);
      if (d == 0.0f) continue;
      const float dm = dmin_all * float(b.scales[j] >> 4);
      requantize<true>(x + 16 * j, 16, dm, d, 0, 3, 0, L + 16 * j);
    }
    pack_2bit(L, b.qs);
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_q3_K(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t i = 0; i < nblocks; ++i, x += QK_K, out += sizeof(BlockQ3_K)) {
    BlockQ3_K b;
    float max_scale = 0, amax = 0;
    make_q3_quants_256(4, x, L, scales);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float scale = std::fabs(scales[j]);
      if (scale > amax) {
        amax = scale;
        max_scale = scales[j];
      }
    }
    std::memset(b.scales, 0, sizeof b.scales);
    if (max_scale != 0.0f) {
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < QK_K / 16; ++j) {
        // 6-bit scales: low 4 bits in bytes 0..7 (two per byte), high 2 bits in bytes 8..11.
        int8_t l = int8_t(nearest_int(iscale * scales[j]));
        l = int8_t(std::max<int>(-32, std::min<int>(31, l)) + 32);
        if (j < 8) b.scales[j] = uint8_t(l & 0xF);
        else b.scales[j - 8] |= uint8_t((l & 0xF) << 4);
        l = int8_t(l >> 4);
        b.scales[j % 4 + 8] |= uint8_t(l << (2 * (j / 4)));
      }
      b.d = float_to_fp16(1 / iscale);
    } else {
      b.d = float_to_fp16(0.f);
    }
    const float d_all = fp16_to_float(b.d);
    for (int j = 0; j < QK_K / 16; ++j) {
      int sc = j < 8 ? b.scales[j] & 0xF : b.scales[j - 8] >> 4;
      sc = (sc | (((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
      const float d = d_all * float(sc);
      if (d == 0.0f) continue;
      requantize<false>(x + 16 * j, 16, 0.f, d, -4, 3, 4, L + 16 * j);
    }
    // High bit of element j goes to bit (j / 32) of hmask[j % 32].
    std::memset(b.hmask, 0, sizeof b.hmask);
    uint8_t Lu[QK_K];
    for (int j = 0; j < QK_K; ++j) {
      // Levels are 0..7: bit 2 is the high bit. Branch-free (the branch mispredicted half the time).
      const int l = L[j];
      b.hmask[j % (QK_K / 8)] |= uint8_t((l >> 2) << (j / (QK_K / 8)));
      Lu[j] = uint8_t(l & 3);
    }
    pack_2bit(Lu, b.qs);
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_q4_K(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nblocks; ++i, x += QK_K, out += sizeof(BlockQ4_K)) {
    BlockQ4_K b;
    quantize_k_scales_mins(x, 15, -1.f, 0.1f, 20, b.d, b.dmin, b.scales, L);
    uint8_t* q = b.qs;
    for (int j = 0; j < QK_K; j += 64, q += 32)
      for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_q5_K(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  uint8_t L[QK_K];
  for (int64_t i = 0; i < nblocks; ++i, x += QK_K, out += sizeof(BlockQ5_K)) {
    BlockQ5_K b;
    quantize_k_scales_mins(x, 31, -0.5f, 0.1f, 15, b.d, b.dmin, b.scales, L);
    std::memset(b.qh, 0, sizeof b.qh);
    uint8_t* ql = b.qs;
    uint8_t m1 = 1, m2 = 2;
    for (int n = 0; n < QK_K; n += 64, ql += 32) {
      for (int j = 0; j < 32; ++j) {
        int l1 = L[n + j], l2 = L[n + j + 32];
        if (l1 > 15) {
          l1 -= 16;
          b.qh[j] |= m1;
        }
        if (l2 > 15) {
          l2 -= 16;
          b.qh[j] |= m2;
        }
        ql[j] = uint8_t(l1 | (l2 << 4));
      }
      m1 = uint8_t(m1 << 2);
      m2 = uint8_t(m2 << 2);
    }
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_q6_K(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  int8_t L[QK_K];
  float scales[QK_K / 16];
  for (int64_t i = 0; i < nblocks; ++i, x += QK_K, out += sizeof(BlockQ6_K)) {
    BlockQ6_K b;
    float max_scale = 0, max_abs_scale = 0;
    for (int ib = 0; ib < QK_K / 16; ++ib) {
      scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
      const float abs_scale = std::fabs(scales[ib]);
      if (abs_scale > max_abs_scale) {
        max_abs_scale = abs_scale;
        max_scale = scales[ib];
      }
    }
    if (max_abs_scale < kGroupMaxEps) {
      std::memset(&b, 0, sizeof b);  // an all-zero super-block
      std::memcpy(out, &b, sizeof b);
      continue;
    }
    const float iscale = -128.f / max_scale;
    b.d = float_to_fp16(1 / iscale);
    for (int ib = 0; ib < QK_K / 16; ++ib) b.scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
    const float d_all = fp16_to_float(b.d);
    for (int j = 0; j < QK_K / 16; ++j) {
      const float d = d_all * float(b.scales[j]);
      if (d == 0.0f) continue;
      requantize<false>(x + 16 * j, 16, 0.f, d, -32, 31, 32, L + 16 * j);
    }
    uint8_t* ql = b.ql;
    uint8_t* qh = b.qh;
    for (int j = 0; j < QK_K; j += 128, ql += 64, qh += 32) {
      for (int l = 0; l < 32; ++l) {
        const int q1 = L[j + l + 0], q2 = L[j + l + 32], q3 = L[j + l + 64], q4 = L[j + l + 96];
        ql[l + 0] = uint8_t((q1 & 0xF) | ((q3 & 0xF) << 4));
        ql[l + 32] = uint8_t((q2 & 0xF) | ((q4 & 0xF) << 4));
        qh[l] = uint8_t((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
      }
    }
    std::memcpy(out, &b, sizeof b);
  }
}

void quantize_q8_K(const float* x, void* y, int64_t nblocks) {
  auto* out = static_cast<uint8_t*>(y);
  for (int64_t i = 0; i < nblocks; ++i, x += QK_K, out += sizeof(BlockQ8_K)) {
    BlockQ8_K b;
    float max = 0, amax = 0;
    for (int j = 0; j < QK_K; ++j) {
      const float ax = std::fabs(x[j]);
      if (ax > amax) {
        amax = ax;
        max = x[j];
      }
    }
    if (amax == 0.0f) {
      // ggml leaves bsums untouched here; zero them so the output is deterministic.
      std::memset(&b, 0, sizeof b);
      std::memcpy(out, &b, sizeof b);
      continue;
    }
    // -127 (not -128) keeps -qs representable, which the IQ dot products rely on.
    const float iscale = -127.f / max;
    for (int j = 0; j < QK_K; ++j) b.qs[j] = int8_t(std::min(127, nearest_int(iscale * x[j])));
    for (int j = 0; j < QK_K / 16; ++j) {
      int sum = 0;
      for (int ii = 0; ii < 16; ++ii) sum += b.qs[j * 16 + ii];
      b.bsums[j] = int16_t(sum);
    }
    b.d = 1 / iscale;
    std::memcpy(out, &b, sizeof b);
  }
}

void dequantize_q2_K(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockQ2_K)) {
    BlockQ2_K b;
    std::memcpy(&b, in, sizeof b);
    const float d = fp16_to_float(b.d), min = fp16_to_float(b.dmin);
    const uint8_t* q = b.qs;
    int is = 0;
    for (int n = 0; n < QK_K; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2) {
        for (int half = 0; half < 2; ++half) {
          const uint8_t sc = b.scales[is++];
          const float dl = d * float(sc & 0xF), ml = min * float(sc >> 4);
          for (int l = 0; l < 16; ++l) *y++ = dl * float((q[l + 16 * half] >> shift) & 3) - ml;
        }
      }
    }
  }
}

void dequantize_q3_K(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockQ3_K)) {
    BlockQ3_K b;
    std::memcpy(&b, in, sizeof b);
    const float d_all = fp16_to_float(b.d);
    // Unpack the sixteen 6-bit scales.
    int scales[16];
    for (int j = 0; j < 16; ++j) {
      const int lo = j < 8 ? b.scales[j] & 0xF : b.scales[j - 8] >> 4;
      scales[j] = (lo | (((b.scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
    }
    const uint8_t* q = b.qs;
    uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < QK_K; n += 128, q += 32) {
      for (int shift = 0; shift < 8; shift += 2, m = uint8_t(m << 1)) {
        for (int half = 0; half < 2; ++half) {
          const float dl = d_all * float(scales[is++]);
          for (int l = 0; l < 16; ++l) {
            const int k = l + 16 * half;
            *y++ = dl * float(((q[k] >> shift) & 3) - ((b.hmask[k] & m) ? 0 : 4));
          }
        }
      }
    }
  }
}

void dequantize_q4_K(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockQ4_K)) {
    BlockQ4_K b;
    std::memcpy(&b, in, sizeof b);
    const float d = fp16_to_float(b.d), min = fp16_to_float(b.dmin);
    const uint8_t* q = b.qs;
    for (int j = 0, is = 0; j < QK_K; j += 64, q += 32, is += 2) {
      uint8_t sc, m;
      get_scale_min_k4(is + 0, b.scales, sc, m);
      const float d1 = d * float(sc), m1 = min * float(m);
      get_scale_min_k4(is + 1, b.scales, sc, m);
      const float d2 = d * float(sc), m2 = min * float(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
    }
  }
}

void dequantize_q5_K(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockQ5_K)) {
    BlockQ5_K b;
    std::memcpy(&b, in, sizeof b);
    const float d = fp16_to_float(b.d), min = fp16_to_float(b.dmin);
    const uint8_t* ql = b.qs;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < QK_K; j += 64, ql += 32, is += 2) {
      uint8_t sc, m;
      get_scale_min_k4(is + 0, b.scales, sc, m);
      const float d1 = d * float(sc), m1 = min * float(m);
      get_scale_min_k4(is + 1, b.scales, sc, m);
      const float d2 = d * float(sc), m2 = min * float(m);
      for (int l = 0; l < 32; ++l) *y++ = d1 * float((ql[l] & 0xF) + (b.qh[l] & u1 ? 16 : 0)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * float((ql[l] >> 4) + (b.qh[l] & u2 ? 16 : 0)) - m2;
      u1 = uint8_t(u1 << 2);
      u2 = uint8_t(u2 << 2);
    }
  }
}

void dequantize_q6_K(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockQ6_K)) {
    BlockQ6_K b;
    std::memcpy(&b, in, sizeof b);
    const float d = fp16_to_float(b.d);
    const uint8_t* ql = b.ql;
    const uint8_t* qh = b.qh;
    const int8_t* sc = b.scales;
    for (int n = 0; n < QK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      for (int l = 0; l < 32; ++l) {
        const int is = l / 16;
        const int q1 = ((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        // (d * scale) * q, in ggml's order.
        y[l + 0] = d * float(sc[is + 0]) * float(q1);
        y[l + 32] = d * float(sc[is + 2]) * float(q2);
        y[l + 64] = d * float(sc[is + 4]) * float(q3);
        y[l + 96] = d * float(sc[is + 6]) * float(q4);
      }
    }
  }
}

void dequantize_q8_K(const void* x, float* y, int64_t nblocks) {
  const auto* in = static_cast<const uint8_t*>(x);
  for (int64_t i = 0; i < nblocks; ++i, in += sizeof(BlockQ8_K), y += QK_K) {
    BlockQ8_K b;
    std::memcpy(&b, in, sizeof b);
    for (int j = 0; j < QK_K; ++j) y[j] = b.d * float(b.qs[j]);
  }
}

}  // namespace dcq::quant_detail
