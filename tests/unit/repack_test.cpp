// Interleaved (repacked) Q8_0 / Q4_0 weights: every path's group kernels against the plain-layout
// scalar twin, bit for bit (the perplexity and greedy tests rely on it), remainder rows included,
// 1..9 tokens (group calls of 1..4 tokens), threaded; the row gather of the embedding lookup; and
// the engine on a real model with and without repacking.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>

#include "dcq/engine.hpp"
#include "dcq/fp16.hpp"
#include "dcq/io.hpp"
#include "dcq/kernels.hpp"
#include "dcq/weights.hpp"
#include "kernels/blocks.hpp"  // the kernel tables, to call group_dot / lane_group directly
#include "test_support.hpp"

namespace {

using namespace dcq;
namespace k = dcq::kernels;

struct IsaGuard {
  k::Isa saved = k::active_isa();
  ~IsaGuard() { k::set_isa(saved); }
};

std::vector<uint8_t> random_blocks(GgmlType type, int64_t rows, int64_t cols, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> dist(1e-4f, 1e-2f);
  std::vector<uint8_t> w(*row_bytes(type, cols) * size_t(rows));
  for (auto& v : w) v = static_cast<uint8_t>(byte(gen));  // Q8_0 level -128 included
  const size_t block = type == GgmlType::Q8_0 ? 34 : 18;
  for (size_t off = 0; off < w.size(); off += block) {
    const uint16_t d = float_to_fp16(dist(gen));
    w[off] = uint8_t(d & 0xFF);
    w[off + 1] = uint8_t(d >> 8);
  }
  return w;
}

TEST(Repack, InterleavedMatmulIsBitIdenticalWithPlainScalar) {
  IsaGuard guard;
  int checked = 0;
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    for (int64_t cols : {32, 96, 768}) {
      for (int64_t rows : {16, 37, 64}) {  // 37: two 16-row groups and 5 plain remainder rows
        const auto plain = random_blocks(type, rows, cols, uint32_t(rows * cols));
        std::vector<uint8_t> packed(plain.size());
        k::interleave_rows(type, rows, cols, plain.data(), packed.data());
        EXPECT_NE(packed, plain);
        const int64_t n_tok = 9;
        std::mt19937 g{uint32_t(cols)};
        std::normal_distribution<float> nd(0.f, 2.f);
        std::vector<float> x(size_t(cols * n_tok));
        for (auto& v : x) v = nd(g);
        const k::Matrix wp{type, cols, rows, plain.data()};
        k::Matrix wi{type, cols, rows, packed.data()};
        wi.interleaved = true;
        k::set_isa(k::Isa::scalar);
        std::vector<float> ref(size_t(rows * n_tok));
        k::matmul(wp, x.data(), n_tok, ref.data(), nullptr);
        for (k::Isa isa : {k::Isa::scalar, k::Isa::avx2, k::Isa::avx512}) {
          if (!k::cpu_supports(isa)) continue;
          k::set_isa(isa);
          const std::string what = std::string(type_name(type)) + " " + std::to_string(rows) + "x" +
                                   std::to_string(cols) + " " + std::string(k::isa_name(isa));
          for (int64_t nt : {int64_t(1), int64_t(2), int64_t(3), int64_t(4), int64_t(7), n_tok}) {
            std::vector<float> got(size_t(rows * nt));
            k::matmul(wi, x.data(), nt, got.data(), nullptr);
            EXPECT_EQ(got, std::vector<float>(ref.begin(), ref.begin() + rows * nt)) << what << " tokens " << nt;
          }
          k::ThreadPool pool(2);
          std::vector<float> threaded(ref.size());
          k::matmul(wi, x.data(), n_tok, threaded.data(), &pool);
          EXPECT_EQ(threaded, ref) << what << " threaded";
          ++checked;
        }
        // The row gather (embedding lookup of a tied, repacked output matrix).
        std::vector<float> a(static_cast<size_t>(cols)), b(static_cast<size_t>(cols));
        for (int64_t r = 0; r < rows; ++r) {
          k::dequantize_row(wp, r, a.data());
          k::dequantize_row(wi, r, b.data());
          ASSERT_EQ(a, b) << type_name(type) << " row " << r;
        }
      }
    }
  }
  EXPECT_GE(checked, 18);
}

// The group_dot face of the Q8_0 / Q4_0 lane kernels (lane_group_dot: computes the per-token
// LaneAct itself, more than kLaneTokens tokens in one call) and lane_group with matmul's LaneAct,
// on each path's table, against the plain-row scalar dot.
TEST(Repack, LaneGroupEntriesMatchPlainDot) {
  std::vector<std::pair<std::string, k::KernelTable>> tables;
  tables.emplace_back("scalar", k::KernelTable{});
  k::fill_scalar(tables.back().second);
  if (k::cpu_supports(k::Isa::avx2)) {
    tables.emplace_back("avx2", k::KernelTable{});
    k::fill_scalar(tables.back().second);
    k::fill_avx2(tables.back().second);
  }
  if (k::cpu_supports(k::Isa::avx512)) {
    tables.emplace_back("avx512", k::KernelTable{});
    k::fill_scalar(tables.back().second);
    k::fill_avx512_repack(tables.back().second);
  }
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    const int64_t rows = k::kLaneRows, cols = 160, n_tok = 6;
    const auto plain = random_blocks(type, rows, cols, 7);
    std::vector<uint8_t> packed(plain.size());
    k::interleave_rows(type, rows, cols, plain.data(), packed.data());
    std::mt19937 g{3};
    std::normal_distribution<float> nd(0.f, 1.f);
    const size_t astride = *row_bytes(GgmlType::Q8_0, cols), rstride = *row_bytes(type, cols);
    std::vector<uint8_t> act(astride * n_tok);
    std::vector<float> x(static_cast<size_t>(cols));
    std::vector<const void*> a;
    for (int64_t t = 0; t < n_tok; ++t) {
      for (auto& v : x) v = nd(g);
      k::quantize_activation_reference(GgmlType::Q8_0, x.data(), act.data() + t * astride, cols);
      a.push_back(act.data() + t * astride);
    }
    std::vector<float> ref(size_t(rows * n_tok));
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t r = 0; r < rows; ++r) ref[t * rows + r] = k::vec_dot_reference(type, cols, plain.data() + r * rstride, a[t]);
    for (const auto& [name, table] : tables) {
      std::vector<float> got(ref.size(), -1.f);
      table.group_dot[static_cast<int>(type)](cols, packed.data(), a.data(), int(n_tok), got.data());
      EXPECT_EQ(got, ref) << type_name(type) << " group_dot " << name;
      std::vector<k::LaneAct> la(size_t(cols / 32 * 4));
      const k::LaneAct* lp[4];
      for (int t = 0; t < 4; ++t) {
        k::lane_act(cols, a[t], k::lane_offset(type), la.data() + t * (cols / 32));
        lp[t] = la.data() + t * (cols / 32);
      }
      for (int nt = 1; nt <= 4; ++nt) {
        std::vector<float> part(size_t(rows * nt), -1.f);
        table.lane_group[static_cast<int>(type)](cols, packed.data(), a.data(), lp, nt, part.data());
        EXPECT_EQ(part, std::vector<float>(ref.begin(), ref.begin() + rows * nt)) << type_name(type) << " lane " << name << " " << nt;
      }
    }
  }
}

TEST(Repack, SimdPathsPackOnlyLegacyTypes) {
  IsaGuard guard;
  k::set_isa(k::Isa::scalar);
  EXPECT_FALSE(k::interleave_pays(GgmlType::Q8_0, 64, 64));
  for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
    if (!k::cpu_supports(isa)) continue;
    k::set_isa(isa);
    EXPECT_TRUE(k::interleave_pays(GgmlType::Q8_0, 64, 64));
    EXPECT_TRUE(k::interleave_pays(GgmlType::Q4_0, 16, 32));   // Q8_0 / Q4_0: groups of 16 rows
    EXPECT_FALSE(k::interleave_pays(GgmlType::Q4_0, 15, 32));
    EXPECT_TRUE(k::interleave_pays(GgmlType::Q4_K, 8, 256));   // k-quants: groups of 8 rows
    EXPECT_FALSE(k::interleave_pays(GgmlType::Q4_0, 64, 48));
    EXPECT_FALSE(k::interleave_pays(GgmlType::Q4_1, 64, 64));
    EXPECT_FALSE(k::interleave_pays(GgmlType::F32, 64, 64));
    setenv("DCQ_REPACK", "0", 1);
    EXPECT_FALSE(k::interleave_pays(GgmlType::Q8_0, 64, 64));
    unsetenv("DCQ_REPACK");
  }
}

// The engine's repacked run gives the same logits, bit for bit, as the plain layout.
TEST(Repack, EngineLogitsEqualWithAndWithoutRepacking) {
  DCQ_REQUIRE_DATA();
  IsaGuard guard;
  if (!k::cpu_supports(k::Isa::avx2)) GTEST_SKIP() << "no AVX2";
  for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
    if (!k::cpu_supports(isa)) continue;
    k::set_isa(isa);
    for (const auto& path : {dcq::test::synth_gguf("Q8_0"), dcq::test::synth_gguf("Q4_0"),
                             dcq::test::stories_gguf("Q8_0"), dcq::test::stories_gguf("Q4_0")}) {
      const std::string name = path.filename().string();
      const Model model = load_model(path);
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
      EXPECT_EQ(packed, plain) << name << " " << k::isa_name(isa);
    }
  }
}

}  // namespace
