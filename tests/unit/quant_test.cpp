// Block formats against llama.cpp's own outputs: dequantization bit-exact with ggml's to_float,
// quantization byte-identical with llama-quantize (--pure, no imatrix), error budgets on a real
// model, thread-count independence and input validation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <tuple>
#include <vector>

#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/quant.hpp"
#include "quant/quant_internal.hpp"
#include "test_support.hpp"

using namespace dcq;

namespace {

// Below this a group counts as all zero (ggml's GROUP_MAX_EPS).
constexpr float kGroupMaxEps = 1e-15f;

// Oracle: ggml's make_qx_quants (rmse_type 1) transcribed one candidate at a time, the way the
// library computed it before its searches ran candidates in vector lanes. Symmetric quantization of n values to [-nmax, nmax-1] with the x^2-weighted (rmse_type 1)
// least-squares scale search of ggml's make_qx_quants: tries 19 candidate inverse scales around
// -nmax/max and keeps the one maximising sumlx^2/suml2. L receives levels offset by nmax.
float oracle_qx_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  float iscale = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::max(-nmax, std::min(nmax - 1, quant_detail::nearest_int(iscale * x[i])));
    L[i] = int8_t(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  float scale = suml2 != 0.0f ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(float(nmax) + 0.1f * float(is)) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(-nmax, std::min(nmax - 1, quant_detail::nearest_int(iscale * x[i])));
      const float w = x[i] * x[i];
      sumlx += w * x[i] * float(l);
      suml2 += w * float(l) * float(l);
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = quant_detail::nearest_int(iscale * x[i]);
        L[i] = int8_t(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Oracle: ggml's make_q3_quants transcribed one sub-block at a time. Q3_K's sub-block search (ggml's make_q3_quants with do_rmse): start from the max-based levels,
// then up to 5 passes moving single levels whenever that improves the x^2-weighted fit.
float oracle_q3_quants(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, int8_t(0));
    return 0.f;
  }
  const float iscale = float(-nmax) / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::max(-nmax, std::min(nmax - 1, quant_detail::nearest_int(iscale * x[i])));
    L[i] = int8_t(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * float(l);
    suml2 += w * float(l) * float(l);
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * float(L[i]);
      if (slx > 0) {
        float sl2 = suml2 - w * float(L[i]) * float(L[i]);
        int new_l = quant_detail::nearest_int(x[i] * sl2 / slx);
        new_l = std::max(-nmax, std::min(nmax - 1, new_l));
        if (new_l != L[i]) {
          slx += w * x[i] * float(new_l);
          sl2 += w * float(new_l) * float(new_l);
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = int8_t(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (!n_changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Oracle: ggml's make_qkx2_quants transcribed one candidate at a time. Asymmetric quantization x ~ scale * L + min with L in [0, nmax] (ggml's make_qkx2_quants):
// weighted least squares over nstep+1 candidate inverse scales. Returns the scale and stores
// -min (a non-negative offset) in the_min.
float oracle_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, uint8_t(0));
    *the_min = -min;
    return 0.f;
  }
  float iscale = float(nmax) / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = quant_detail::nearest_int(iscale * (x[i] - min));
    L[i] = uint8_t(std::max(0, std::min(nmax, l)));
    float diff = scale * float(L[i]) + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::max(0, std::min(nmax, quant_detail::nearest_int(iscale * (x[i] - min))));
      Laux[i] = uint8_t(l);
      const float w = weights[i];
      sum_l += w * float(l);
      sum_l2 += w * float(l) * float(l);
      sum_xl += w * float(l) * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * float(Laux[i]) + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        std::copy(Laux, Laux + n, L);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// synth256 file suffix -> the block type its 2-D tensors hold (k-quant files are named _S).
struct SynthFile {
  const char* file;
  GgmlType type;
};
const SynthFile kSynthFiles[] = {
    {"F16", GgmlType::F16},       {"BF16", GgmlType::BF16},     {"Q8_0", GgmlType::Q8_0},
    {"Q4_0", GgmlType::Q4_0},     {"Q4_1", GgmlType::Q4_1},     {"Q5_0", GgmlType::Q5_0},
    {"Q5_1", GgmlType::Q5_1},     {"Q2_K", GgmlType::Q2_K},     {"Q3_K_S", GgmlType::Q3_K},
    {"Q4_K_S", GgmlType::Q4_K},   {"Q5_K_S", GgmlType::Q5_K},   {"Q6_K", GgmlType::Q6_K},
    {"IQ4_NL", GgmlType::IQ4_NL}, {"IQ4_XS", GgmlType::IQ4_XS},
};

std::string synth_name(const SynthFile& f) { return f.file; }

std::vector<float> tensor_floats(const Tensor& t) {
  std::vector<float> v(size_t(t.n_elements()));
  dequantize(t.type, t.data.data(), v.data(), t.n_elements());
  return v;
}

class SynthDequant : public ::testing::TestWithParam<SynthFile> {};
class SynthQuantize : public ::testing::TestWithParam<SynthFile> {};

}  // namespace

// ggml's to_float of blk.0.attn_q.weight, compared bit for bit (memcmp, not a tolerance).
TEST_P(SynthDequant, BitExactWithGgml) {
  DCQ_REQUIRE_DATA();
  const SynthFile f = GetParam();
  const Model m = read_gguf(test::model_path(std::string("synth256/synth256-") + f.file + ".gguf"));
  const Tensor* t = m.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(t->type, f.type);
  const auto ref = test::slurp(test::data_dir() / "reference/synth256/dequant" /
                               (std::string(f.file) + ".blk.0.attn_q.weight.f32"));
  ASSERT_EQ(ref.size(), size_t(t->n_elements()) * 4);
  std::vector<float> out(size_t(t->n_elements()));
  dequantize(t->type, t->data.data(), out.data(), t->n_elements());
  EXPECT_EQ(std::memcmp(out.data(), ref.data(), ref.size()), 0) << f.file;
  // The threaded whole-tensor path gives the same bits.
  std::vector<float> out2(out.size());
  dequantize_tensor(t->type, t->data.data(), out2.data(), t->ne[0], t->n_rows(), 2);
  EXPECT_EQ(std::memcmp(out2.data(), ref.data(), ref.size()), 0) << f.file;
}

// Every 2-D tensor of synth256-F32 quantized here equals the bytes llama-quantize --pure wrote.
TEST_P(SynthQuantize, ByteIdenticalWithLlamaQuantize) {
  DCQ_REQUIRE_DATA();
  const SynthFile f = GetParam();
  const Model src = read_gguf(test::model_path("synth256/synth256-F32.gguf"));
  const Model ref = read_gguf(test::model_path(std::string("synth256/synth256-") + f.file + ".gguf"));
  int checked = 0;
  for (const Tensor& t : src.tensors) {
    if (t.ne.size() < 2) continue;
    const Tensor* r = ref.find_tensor(t.name);
    ASSERT_NE(r, nullptr) << t.name;
    ASSERT_EQ(r->type, f.type) << t.name;
    std::vector<uint8_t> out(r->data.size());
    const auto* x = reinterpret_cast<const float*>(t.data.data());
    quantize(r->type, x, out.data(), t.n_elements());
    size_t first_diff = 0;
    while (first_diff < out.size() && out[first_diff] == r->data[first_diff]) ++first_diff;
    EXPECT_EQ(first_diff, out.size()) << f.file << " " << t.name << ": first differing byte " << first_diff
                                      << " of " << out.size();
    ++checked;
  }
  EXPECT_EQ(checked, 16);  // token_embd, output, 2 layers x (q, k, v, o, gate, up, down)
}

INSTANTIATE_TEST_SUITE_P(AllTypes, SynthDequant, ::testing::ValuesIn(kSynthFiles),
                         [](const ::testing::TestParamInfo<SynthFile>& i) { return synth_name(i.param); });
INSTANTIATE_TEST_SUITE_P(AllTypes, SynthQuantize, ::testing::ValuesIn(kSynthFiles),
                         [](const ::testing::TestParamInfo<SynthFile>& i) { return synth_name(i.param); });

// The default mix (Q4_K + Q6_K) and every stories260K file (Q5_0/Q5_1/Q8_0/IQ4_NL/F16 on real
// weights with 64- and 172-wide rows): each tensor, quantized with the type it is stored in,
// equals llama.cpp's bytes.
TEST(Quantize, MixedFilesByteIdentical) {
  DCQ_REQUIRE_DATA();
  struct Case {
    const char* src;
    const char* dst;
  };
  const Case cases[] = {
      {"synth256/synth256-F32.gguf", "synth256/synth256-Q4_K_M.gguf"},
      {"stories260K/stories260K-F32.gguf", "stories260K/stories260K-Q4_K_M.gguf"},
      {"stories260K/stories260K-F32.gguf", "stories260K/stories260K-Q5_K_M.gguf"},
      {"stories260K/stories260K-F32.gguf", "stories260K/stories260K-Q3_K_M.gguf"},
      {"stories260K/stories260K-F32.gguf", "stories260K/stories260K-Q8_0.gguf"},
      {"stories260K/stories260K-F32.gguf", "stories260K/stories260K-Q4_0.gguf"},
      {"stories260K/stories260K-F32.gguf", "stories260K/stories260K-Q4_1.gguf"},
      {"stories260K/stories260K-F32.gguf", "stories260K/stories260K-Q5_0.gguf"},
      {"stories260K/stories260K-F32.gguf", "stories260K/stories260K-Q5_1.gguf"},
      {"stories260K/stories260K-F32.gguf", "stories260K/stories260K-IQ4_NL.gguf"},
      {"stories260K/stories260K-F32.gguf", "stories260K/stories260K-F16.gguf"},
      {"stories260K/stories260K-F32.gguf", "stories260K/stories260K-BF16.gguf"},
  };
  for (const auto& c : cases) {
    const Model src = read_gguf(test::model_path(c.src));
    const Model ref = read_gguf(test::model_path(c.dst));
    for (const Tensor& r : ref.tensors) {
      const Tensor* t = src.find_tensor(r.name);
      ASSERT_NE(t, nullptr) << c.dst << " " << r.name;
      ASSERT_EQ(t->type, GgmlType::F32);
      std::vector<uint8_t> out(r.data.size());
      quantize_tensor(r.type, reinterpret_cast<const float*>(t->data.data()), out.data(), t->ne[0], t->n_rows(), 1);
      EXPECT_TRUE(std::equal(out.begin(), out.end(), r.data.begin())) << c.dst << " " << r.name;
    }
  }
}

// Output bytes do not depend on the number of threads.
TEST(Quantize, ThreadCountIndependent) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.f, 0.02f);
  const int64_t n_per_row = 512, n_rows = 300;  // large enough to actually use threads
  std::vector<float> x(size_t(n_per_row * n_rows));
  for (auto& v : x) v = nd(rng);
  for (GgmlType t : {GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::IQ4_XS, GgmlType::Q6_K}) {
    const size_t bytes = *row_bytes(t, n_per_row) * size_t(n_rows);
    std::vector<uint8_t> one(bytes), two(bytes), seven(bytes), plain(bytes);
    quantize(t, x.data(), plain.data(), int64_t(x.size()));
    quantize_tensor(t, x.data(), one.data(), n_per_row, n_rows, 1);
    quantize_tensor(t, x.data(), two.data(), n_per_row, n_rows, 2);
    quantize_tensor(t, x.data(), seven.data(), n_per_row, n_rows, 7);
    EXPECT_EQ(one, plain) << type_name(t);
    EXPECT_EQ(two, plain) << type_name(t);
    EXPECT_EQ(seven, plain) << type_name(t);
  }
}

// Round trip on the real stories260K weights (64-wide rows: the 256-block types use token_embd
// viewed as 128 x 256): relative RMSE = rms(x - dq(q(x))) / rms(x) within a budget per type.
TEST(Quantize, RoundTripErrorBudgetOnRealWeights) {
  DCQ_REQUIRE_DATA();
  const Model m = read_gguf(test::model_path("stories260K/stories260K-F32.gguf"));
  const Tensor* t = m.find_tensor("token_embd.weight");
  ASSERT_NE(t, nullptr);
  const std::vector<float> x = tensor_floats(*t);  // 512 x 64 = 32768 values
  struct Budget {
    GgmlType type;
    double max_rel_rmse;  // ~1.2x the measured value
    double min_rel_rmse;  // ~0.5x: a quantizer that keeps too much precision is a bug too
  };
  const Budget budgets[] = {
      // measured: F16 0.00020, BF16 0.00165, Q8_0 0.0055, Q6_K 0.0175, Q5_1 0.039, Q5_0 0.044,
      // Q5_K 0.038, Q4_1 0.088, Q4_0 0.086, Q4_K 0.078, IQ4_NL 0.080, IQ4_XS 0.081, Q3_K 0.153,
      // Q2_K 0.341, Q8_K 0.0065
      {GgmlType::F16, 0.00025, 0.0001},  {GgmlType::BF16, 0.002, 0.0008},  {GgmlType::Q8_0, 0.0066, 0.0027},
      {GgmlType::Q6_K, 0.021, 0.009},    {GgmlType::Q5_1, 0.047, 0.02},    {GgmlType::Q5_0, 0.053, 0.022},
      {GgmlType::Q5_K, 0.045, 0.019},    {GgmlType::Q4_1, 0.105, 0.044},   {GgmlType::Q4_0, 0.104, 0.043},
      {GgmlType::Q4_K, 0.094, 0.039},    {GgmlType::IQ4_NL, 0.096, 0.04},  {GgmlType::IQ4_XS, 0.097, 0.04},
      {GgmlType::Q3_K, 0.18, 0.076},     {GgmlType::Q2_K, 0.41, 0.17},     {GgmlType::Q8_K, 0.0078, 0.0032},
  };
  double sumsq = 0;
  for (float v : x) sumsq += double(v) * v;
  const double rms = std::sqrt(sumsq / double(x.size()));
  for (const auto& b : budgets) {
    std::vector<uint8_t> q(*row_bytes(b.type, int64_t(x.size())));
    std::vector<float> y(x.size());
    quantize(b.type, x.data(), q.data(), int64_t(x.size()));
    dequantize(b.type, q.data(), y.data(), int64_t(y.size()));
    double err = 0;
    for (size_t i = 0; i < x.size(); ++i) err += (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    const double rel = std::sqrt(err / double(x.size())) / rms;
    EXPECT_LE(rel, b.max_rel_rmse) << type_name(b.type);
    EXPECT_GE(rel, b.min_rel_rmse) << type_name(b.type);
    std::printf("  round trip %-7s relative RMSE %.5f\n", std::string(type_name(b.type)).c_str(), rel);
  }
}

TEST(Quantize, RowNotAWholeNumberOfBlocksIsBadInput) {
  std::vector<float> x(172, 0.5f);
  std::vector<uint8_t> out(4096);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q4_K, GgmlType::IQ4_NL}) {
    try {
      quantize(t, x.data(), out.data(), 172);
      FAIL() << "expected an error for " << type_name(t);
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::bad_input);
      EXPECT_NE(std::string(e.what()).find("172"), std::string::npos) << e.what();
    }
    EXPECT_THROW(quantize_tensor(t, x.data(), out.data(), 172, 1, 1), Error);
    EXPECT_THROW(dequantize(t, out.data(), x.data(), 172), Error);
  }
  // Types without a quantizer are refused, not silently mis-written.
  EXPECT_THROW(quantize(GgmlType::IQ2_XXS, x.data(), out.data(), 256), Error);
  EXPECT_THROW(dequantize(GgmlType::IQ1_S, out.data(), x.data(), 256), Error);
  EXPECT_FALSE(can_quantize(GgmlType::IQ2_XXS));
  EXPECT_TRUE(can_quantize(GgmlType::IQ4_XS));
}

// Corner cases of the block searches: all-zero blocks, a single spike, constant blocks and tiny
// values must quantize without NaNs and dequantize close to the input.
TEST(Quantize, DegenerateBlocks) {
  const int64_t n = 256;
  std::vector<std::vector<float>> inputs;
  inputs.emplace_back(size_t(n), 0.0f);
  inputs.emplace_back(size_t(n), 0.25f);
  inputs.emplace_back(size_t(n), -1e-20f);
  std::vector<float> spike(size_t(n), 0.0f);
  spike[37] = -3.0f;
  inputs.push_back(spike);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                     GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                     GgmlType::Q8_K, GgmlType::IQ4_NL, GgmlType::IQ4_XS}) {
    for (const auto& x : inputs) {
      std::vector<uint8_t> q(*row_bytes(t, n));
      std::vector<float> y(static_cast<size_t>(n));
      quantize(t, x.data(), q.data(), n);
      dequantize(t, q.data(), y.data(), n);
      float amax = 0;
      for (float v : x) amax = std::max(amax, std::fabs(v));
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_TRUE(std::isfinite(y[size_t(i)])) << type_name(t);
        // Loose: every format reproduces a constant or a spike within 1/2 of the block range.
        EXPECT_LE(std::fabs(y[size_t(i)] - x[size_t(i)]), 0.5f * amax + 1e-6f) << type_name(t) << " i=" << i;
      }
    }
  }
}

// The library's scale searches evaluate candidate scales in vector lanes; bytes stay identical
// only if each lane repeats ggml's scalar arithmetic exactly. Pit them against the one-candidate-
// at-a-time oracle above on sub-blocks built to reach every branch: Gaussian and uniform values
// at many magnitudes, all-positive blocks (min clamped to 0), exact ties (multiples of 1/8),
// constant and all-zero blocks, single spikes, denormals and values whose squares overflow.
TEST(Quantize, ScaleSearchesMatchScalarOracle) {
  std::mt19937 rng(20261129);
  std::normal_distribution<float> nd(0.f, 1.f);
  std::uniform_real_distribution<float> ud(-1.f, 1.f);
  std::uniform_int_distribution<int> pick(0, 8);
  std::uniform_int_distribution<int> eighths(-24, 24);
  std::uniform_real_distribution<float> log_mag(-12.f, 12.f);
  auto bits = [](float f) {
    uint32_t u;
    std::memcpy(&u, &f, sizeof u);
    return u;
  };
  auto make_block = [&](int n, int kind) {
    std::vector<float> x(static_cast<size_t>(n));
    const float mag = std::pow(10.f, log_mag(rng));
    for (auto& v : x) {
      switch (kind) {
        case 0: v = nd(rng) * mag; break;
        case 1: v = ud(rng) * mag; break;
        case 2: v = std::fabs(nd(rng)) * mag + 0.5f * mag; break;  // all positive
        case 3: v = float(eighths(rng)) / 8.f; break;              // ties at every rounding
        case 4: v = 0.375f; break;                                 // constant
        case 5: v = 0.f; break;
        case 6: v = nd(rng) * 1e-39f; break;  // denormal: below GROUP_MAX_EPS
        case 7: v = nd(rng) * 3e19f; break;   // x^2 * x overflows to inf
        default: v = (&v == &x[3]) ? -2.5f * mag : 0.f; break;  // one spike
      }
    }
    return x;
  };
  int compared = 0;
  for (int iter = 0; iter < 6000; ++iter) {
    const int kind = pick(rng);
    // Q4_K and Q5_K: 32 values, av_x + |x| weights, squared error.
    for (const auto& [nmax, rmin, nstep] : {std::tuple{15, -1.f, 20}, std::tuple{31, -0.5f, 15}}) {
      const auto x = make_block(32, kind);
      float sum_x2 = 0;
      for (float v : x) sum_x2 += v * v;
      const float av_x = std::sqrt(sum_x2 / 32);
      std::vector<float> w(32);
      for (int l = 0; l < 32; ++l) w[size_t(l)] = av_x + std::fabs(x[size_t(l)]);
      uint8_t L[32], Lref[32], Laux[32];
      float m = -1, mref = -2;
      const float s = quant_detail::make_qkx2_quants(32, nmax, x.data(), w.data(), L, &m, rmin, 0.1f, nstep, false);
      const float sref = oracle_qkx2_quants(32, nmax, x.data(), w.data(), Lref, &mref, Laux, rmin, 0.1f, nstep, false);
      ASSERT_EQ(bits(s), bits(sref)) << "qkx2 n=32 nmax=" << nmax << " kind " << kind << " iter " << iter;
      ASSERT_EQ(bits(m), bits(mref)) << "qkx2 n=32 nmax=" << nmax << " kind " << kind << " iter " << iter;
      ASSERT_EQ(0, std::memcmp(L, Lref, sizeof L)) << "qkx2 n=32 nmax=" << nmax << " kind " << kind;
      ++compared;
    }
    {  // Q2_K: 16 values, |x| weights, absolute error.
      const auto x = make_block(16, kind);
      std::vector<float> w(16);
      for (int l = 0; l < 16; ++l) w[size_t(l)] = std::fabs(x[size_t(l)]);
      uint8_t L[16], Lref[16], Laux[16];
      float m = -1, mref = -2;
      const float s = quant_detail::make_qkx2_quants(16, 3, x.data(), w.data(), L, &m, -0.5f, 0.1f, 15, true);
      const float sref = oracle_qkx2_quants(16, 3, x.data(), w.data(), Lref, &mref, Laux, -0.5f, 0.1f, 15, true);
      ASSERT_EQ(bits(s), bits(sref)) << "qkx2 n=16 kind " << kind << " iter " << iter;
      ASSERT_EQ(bits(m), bits(mref)) << "qkx2 n=16 kind " << kind << " iter " << iter;
      ASSERT_EQ(0, std::memcmp(L, Lref, sizeof L)) << "qkx2 n=16 kind " << kind << " iter " << iter;
      ++compared;
    }
    {  // Q3_K: 16 sub-blocks of 16 searched side by side, each of its own kind.
      std::vector<float> x;
      for (int sb = 0; sb < 16; ++sb) {
        const auto part = make_block(16, sb == 0 ? kind : pick(rng));
        x.insert(x.end(), part.begin(), part.end());
      }
      int8_t L[256], Lref[256];
      float sc[16];
      quant_detail::make_q3_quants_256(4, x.data(), L, sc);
      for (int sb = 0; sb < 16; ++sb) {
        const float sref = oracle_q3_quants(16, 4, x.data() + 16 * sb, Lref + 16 * sb);
        ASSERT_EQ(bits(sc[sb]), bits(sref)) << "q3 sub-block " << sb << " iter " << iter;
      }
      ASSERT_EQ(0, std::memcmp(L, Lref, sizeof L)) << "q3 iter " << iter;
      ++compared;
    }
    {  // Q6_K: 16 values, nmax 32.
      const auto x = make_block(16, kind);
      int8_t L[16], Lref[16];
      const float s = quant_detail::make_qx_quants(16, 32, x.data(), L);
      const float sref = oracle_qx_quants(16, 32, x.data(), Lref);
      ASSERT_EQ(bits(s), bits(sref)) << "qx kind " << kind << " iter " << iter;
      ASSERT_EQ(0, std::memcmp(L, Lref, sizeof L)) << "qx kind " << kind << " iter " << iter;
      ++compared;
    }
  }
  EXPECT_EQ(compared, 6000 * 5);
}
