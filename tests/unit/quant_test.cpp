// Block formats against llama.cpp's own outputs: dequantization bit-exact with ggml's to_float,
// quantization byte-identical with llama-quantize (--pure, no imatrix), error budgets on a real
// model, thread-count independence and input validation.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/quant.hpp"
#include "test_support.hpp"

using namespace dcq;

namespace {

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
