// Interleaved (repacked) Q4_K / Q6_K weights (docs/kernels_kquant.md): the x8 layout round-trips every
// bit of the plain blocks; every path's group kernels equal the plain-layout scalar dot bit for
// bit on random and extreme blocks, remainder rows, 1..9 tokens, threaded; and the engine gives
// the same logits with and without repacking on a real Q4_K_M file.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include "dcq/engine.hpp"
#include "dcq/fp16.hpp"
#include "dcq/io.hpp"
#include "dcq/kernels.hpp"
#include "dcq/quant_blocks.hpp"
#include "dcq/weights.hpp"
#include "test_support.hpp"

namespace {

using namespace dcq;
namespace k = dcq::kernels;

struct IsaGuard {
  k::Isa saved = k::active_isa();
  ~IsaGuard() { k::set_isa(saved); }
};

// Random rows: every level, scale and min bit random; d and dmin small positive fp16.
std::vector<uint8_t> random_rows(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> dist(1e-4f, 1e-2f);
  std::vector<uint8_t> w(*row_bytes(type, cols) * size_t(rows));
  for (auto& v : w) v = static_cast<uint8_t>(byte(gen));
  if (type == GgmlType::Q4_K) {
    auto* b = reinterpret_cast<blocks::BlockQ4_K*>(w.data());
    for (size_t i = 0; i < w.size() / sizeof(*b); ++i) {
      b[i].d = float_to_fp16(dist(gen));
      b[i].dmin = float_to_fp16(dist(gen));
    }
  } else if (type == GgmlType::Q2_K) {
    auto* b = reinterpret_cast<blocks::BlockQ2_K*>(w.data());
    for (size_t i = 0; i < w.size() / sizeof(*b); ++i) {
      b[i].d = float_to_fp16(dist(gen));
      b[i].dmin = float_to_fp16(dist(gen));
    }
  } else if (type == GgmlType::Q3_K) {
    auto* b = reinterpret_cast<blocks::BlockQ3_K*>(w.data());
    for (size_t i = 0; i < w.size() / sizeof(*b); ++i) b[i].d = float_to_fp16(dist(gen));
  } else if (type == GgmlType::IQ4_XS) {
    auto* b = reinterpret_cast<blocks::BlockIQ4_XS*>(w.data());
    for (size_t i = 0; i < w.size() / sizeof(*b); ++i) b[i].d = float_to_fp16(dist(gen));
  } else if (type == GgmlType::Q5_K) {
    auto* b = reinterpret_cast<blocks::BlockQ5_K*>(w.data());
    for (size_t i = 0; i < w.size() / sizeof(*b); ++i) {
      b[i].d = float_to_fp16(dist(gen));
      b[i].dmin = float_to_fp16(dist(gen));
    }
  } else {
    auto* b = reinterpret_cast<blocks::BlockQ6_K*>(w.data());
    for (size_t i = 0; i < w.size() / sizeof(*b); ++i) b[i].d = float_to_fp16(dist(gen));
  }
  return w;
}

// The largest integer sums the kernels can meet: every level at its maximum (Q4_K 15, Q6_K 63),
// Q4_K scales and mins 63, Q6_K scales `q6_scale` (127 or -128).
std::vector<uint8_t> extreme_rows(GgmlType type, int64_t rows, int64_t cols, int8_t q6_scale) {
  std::vector<uint8_t> w(*row_bytes(type, cols) * size_t(rows), 0xFF);
  if (type == GgmlType::Q4_K) {
    auto* b = reinterpret_cast<blocks::BlockQ4_K*>(w.data());
    for (size_t i = 0; i < w.size() / sizeof(*b); ++i) b[i].d = b[i].dmin = float_to_fp16(0.01f);
  } else {
    auto* b = reinterpret_cast<blocks::BlockQ6_K*>(w.data());
    for (size_t i = 0; i < w.size() / sizeof(*b); ++i) {
      b[i].d = float_to_fp16(0.01f);
      for (auto& sc : b[i].scales) sc = q6_scale;
    }
  }
  return w;
}

void expect_interleaved_equals_plain(GgmlType type, const std::vector<uint8_t>& plain, int64_t rows, int64_t cols,
                                     const std::vector<float>& x, int64_t n_tok, const std::string& what, int& checked) {
  std::vector<uint8_t> packed(plain.size());
  k::interleave_rows(type, rows, cols, plain.data(), packed.data());
  EXPECT_NE(packed, plain) << what;
  const k::Matrix wp{type, cols, rows, plain.data()};
  k::Matrix wi{type, cols, rows, packed.data()};
  wi.interleaved = true;
  k::set_isa(k::Isa::scalar);
  std::vector<float> ref(size_t(rows * n_tok));
  k::matmul(wp, x.data(), n_tok, ref.data(), nullptr);
  for (k::Isa isa : {k::Isa::scalar, k::Isa::avx2, k::Isa::avx512}) {
    if (!k::cpu_supports(isa)) continue;
    k::set_isa(isa);
    const std::string w = what + " " + std::string(k::isa_name(isa));
    for (int64_t nt : {int64_t(1), int64_t(2), int64_t(3), int64_t(4), int64_t(7), n_tok}) {
      std::vector<float> got(size_t(rows * nt));
      k::matmul(wi, x.data(), nt, got.data(), nullptr);
      EXPECT_EQ(got, std::vector<float>(ref.begin(), ref.begin() + rows * nt)) << w << " tokens " << nt;
    }
    k::ThreadPool pool(2);
    std::vector<float> threaded(ref.size());
    k::matmul(wi, x.data(), n_tok, threaded.data(), &pool);
    EXPECT_EQ(threaded, ref) << w << " threaded";
    ++checked;
  }
  // The row gather rebuilds ggml's block exactly (every scale / min bit included).
  std::vector<float> a(static_cast<size_t>(cols)), b(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    k::dequantize_row(wp, r, a.data());
    k::dequantize_row(wi, r, b.data());
    ASSERT_EQ(a, b) << what << " row " << r;
  }
}

TEST(RepackKQuant, InterleavedMatmulIsBitIdenticalWithPlainScalar) {
  IsaGuard guard;
  int checked = 0;
  const int64_t n_tok = 9;
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    for (int64_t cols : {256, 768}) {
      std::mt19937 g{uint32_t(cols)};
      std::normal_distribution<float> nd(0.f, 2.f);
      std::vector<float> x(size_t(cols * n_tok));
      for (auto& v : x) v = nd(g);
      const std::string name = std::string(type_name(type)) + " ";
      for (int64_t rows : {8, 21, 64}) {  // 21: two groups and 5 plain remainder rows
        const std::string what = name + std::to_string(rows) + "x" + std::to_string(cols);
        expect_interleaved_equals_plain(type, random_rows(type, rows, cols, uint32_t(rows * cols)), rows, cols, x, n_tok,
                                        what + " random", checked);
      }
      // Extremes: every activation of one sign at the largest magnitude, then alternating signs.
      std::vector<float> same(x.size(), 3.f), alt(x.size());
      for (size_t i = 0; i < alt.size(); ++i) alt[i] = (i % 2 ? -1.f : 1.f) * float(1 + i % 7);
      for (int8_t q6_scale : {int8_t(127), int8_t(-128)}) {
        const auto w = extreme_rows(type, 16, cols, q6_scale);
        expect_interleaved_equals_plain(type, w, 16, cols, same, n_tok, name + "extreme same-sign", checked);
        expect_interleaved_equals_plain(type, w, 16, cols, alt, n_tok, name + "extreme alternating", checked);
      }
    }
  }
  EXPECT_GE(checked, 2 * 2 * 7);
}

// The AVX2 dots of Q2_K, Q3_K, Q5_K and IQ4_XS (also used by the AVX-512 path), plain layout: the 1-token dot
// and the 4-token batch rows against the scalar twin, bit for bit, on random blocks (all levels,
// fifth bits, scales and mins) and on all-0xFF blocks (largest levels and scales) against
// same-sign maximal activations.
TEST(KernelsKQuant, Q2_KQ3_KQ5_KAndIQ4_XSDotsAreBitIdenticalWithScalarOnEveryPath) {
  IsaGuard guard;
  const int64_t rows = 13, cols = 768, n_tok = 9;
  std::mt19937 g{7};
  std::normal_distribution<float> nd(0.f, 2.f);
  std::vector<float> x(size_t(cols * n_tok)), same(size_t(cols * n_tok), 3.f);
  for (auto& v : x) v = nd(g);
  int checked = 0;
  for (GgmlType type : {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q5_K, GgmlType::IQ4_XS}) {
    const std::vector<uint8_t> random = random_rows(type, rows, cols, 5);
    std::vector<uint8_t> extreme(random.size(), 0xFF);
    const size_t block = *row_bytes(type, blocks::QK_K);
    for (size_t off = 0; off < extreme.size(); off += block) {
      const uint16_t d = float_to_fp16(0.01f);  // Q5_K / IQ4_XS lead with d (and dmin), Q2_K ends with d, dmin, Q3_K with d
      const size_t at = type == GgmlType::Q2_K ? block - 4 : type == GgmlType::Q3_K ? block - 2 : 0;
      std::memcpy(&extreme[off + at], &d, 2);
      if (type == GgmlType::Q2_K || type == GgmlType::Q5_K) std::memcpy(&extreme[off + at + 2], &d, 2);
    }
    const std::vector<uint8_t>& extreme_c = extreme;
    for (const std::vector<uint8_t>* w : {&random, &extreme_c}) {
      for (const std::vector<float>* xs : {&x, &same}) {
        const k::Matrix m{type, cols, rows, w->data()};
        k::set_isa(k::Isa::scalar);
        std::vector<float> ref(size_t(rows * n_tok));
        k::matmul(m, xs->data(), n_tok, ref.data(), nullptr);
        for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
          if (!k::cpu_supports(isa)) continue;
          k::set_isa(isa);
          for (int64_t nt : {int64_t(1), int64_t(4), n_tok}) {
            std::vector<float> got(size_t(rows * nt));
            k::matmul(m, xs->data(), nt, got.data(), nullptr);
            EXPECT_EQ(got, std::vector<float>(ref.begin(), ref.begin() + rows * nt))
                << type_name(type) << " " << k::isa_name(isa) << " tokens " << nt;
          }
          ++checked;
        }
      }
    }
  }
  if (checked == 0) GTEST_SKIP() << "no AVX2";
}

TEST(RepackKQuant, SimdPathsPackQ4_KAndQ6_KOfWholeSuperBlocks) {
  IsaGuard guard;
  k::set_isa(k::Isa::scalar);
  EXPECT_FALSE(k::interleave_pays(GgmlType::Q4_K, 64, 256));
  for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
    if (!k::cpu_supports(isa)) continue;
    k::set_isa(isa);
    EXPECT_TRUE(k::interleave_pays(GgmlType::Q4_K, 8, 256));
    EXPECT_FALSE(k::interleave_pays(GgmlType::Q4_K, 7, 256));
    EXPECT_FALSE(k::interleave_pays(GgmlType::Q4_K, 64, 32));
    EXPECT_TRUE(k::interleave_pays(GgmlType::Q6_K, 64, 768));
    EXPECT_FALSE(k::interleave_pays(GgmlType::Q6_K, 64, 128));
    EXPECT_FALSE(k::interleave_pays(GgmlType::Q5_K, 64, 256));
    setenv("DCQ_REPACK", "0", 1);
    EXPECT_FALSE(k::interleave_pays(GgmlType::Q4_K, 64, 256));
    unsetenv("DCQ_REPACK");
  }
}

// synth256-Q4_K_M (llama.cpp's mix: Q4_K with Q6_K tensors): the repacked engine gives the same
// logits, bit for bit, as the plain layout, for a batch (all logits) and a single token.
TEST(RepackKQuant, EngineLogitsEqualWithAndWithoutRepackingQ4_K_M) {
  DCQ_REQUIRE_DATA();
  IsaGuard guard;
  if (!k::cpu_supports(k::Isa::avx2)) GTEST_SKIP() << "no AVX2";
  const Model model = load_model(dcq::test::synth_gguf("Q4_K_M"));
  for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
    if (!k::cpu_supports(isa)) continue;
    k::set_isa(isa);
    const std::vector<int32_t> toks = {1, 5, 9, 14, 30, 2, 7};
    auto run = [&](bool repack) {
      if (!repack) setenv("DCQ_REPACK", "0", 1);
      ModelWeights w(model);
      EngineOptions o;
      o.n_ctx = 32;
      o.n_threads = 2;
      Engine e(w, o);
      std::vector<float> out;
      const auto a = e.eval(std::span<const int32_t>(toks.data(), 5), true);
      out.assign(a.begin(), a.end());
      const auto b = e.eval(std::span<const int32_t>(toks.data() + 5, 1), false);
      out.insert(out.end(), b.begin(), b.end());
      unsetenv("DCQ_REPACK");
      return out;
    };
    const auto packed = run(true), plain = run(false);
    ASSERT_FALSE(packed.empty());
    EXPECT_EQ(packed, plain) << k::isa_name(isa);
  }
}

}  // namespace
