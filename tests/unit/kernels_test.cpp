// Kernels: every SIMD path against its scalar twin (named error budgets), the scalar path against
// plain float arithmetic on dequantized weights, activation quantizers, ops and threading.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "dcq/error.hpp"
#include "dcq/fp16.hpp"
#include "dcq/io.hpp"
#include "dcq/kernels.hpp"
#include "dcq/quant.hpp"
#include "test_support.hpp"

namespace {

using namespace dcq;
namespace k = dcq::kernels;

std::vector<float> random_floats(size_t n, uint32_t seed, float scale = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

// Restores the ISA chosen at start-up when a test switches paths.
struct IsaGuard {
  k::Isa saved = k::active_isa();
  ~IsaGuard() { k::set_isa(saved); }
};

const char* kTypes[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL",
                        "Q2_K", "Q3_K_S", "Q4_K_S", "Q5_K_S", "Q6_K", "IQ4_XS"};

// Each SIMD path computes the same integer block sums as the scalar path; only the order of the
// float accumulation differs. Budget: 1e-5 of sum |w_i * x_i| per row.
TEST(Kernels, EverySimdPathMatchesScalarOnRealTensors) {
  DCQ_REQUIRE_DATA();
  IsaGuard guard;
  for (const char* type : kTypes) {
    const Model m = load_model(test::model_path(std::string("synth256/synth256-") + type + ".gguf"));
    const Tensor* t = m.find_tensor("blk.0.attn_q.weight");
    ASSERT_NE(t, nullptr);
    const k::Matrix w{t->type, t->ne[0], t->ne[1], t->data.data()};
    // 5 tokens: the 4-token batch kernels plus a remainder; the 1-token (4-row) case below.
    const int n_tok = 5;
    const auto x = random_floats(size_t(w.n_cols) * n_tok, 7, 0.5f);
    k::set_isa(k::Isa::scalar);
    std::vector<float> ref(size_t(w.n_rows) * n_tok);
    k::matmul(w, x.data(), n_tok, ref.data(), nullptr);
    // Scale of each output: sum |w| |x| from the dequantized row.
    std::vector<float> row(size_t(w.n_cols));
    std::vector<double> mag(ref.size());
    for (int64_t r = 0; r < w.n_rows; ++r) {
      k::dequantize_row(w, r, row.data());
      for (int tt = 0; tt < n_tok; ++tt) {
        double s = 0, a = 0;
        for (int64_t c = 0; c < w.n_cols; ++c) {
          s += double(row[c]) * x[size_t(tt) * w.n_cols + c];
          a += std::fabs(double(row[c]) * x[size_t(tt) * w.n_cols + c]);
        }
        mag[size_t(tt) * w.n_rows + r] = a;
        // Scalar kernel vs float math on dequantized weights: only activation rounding differs
        // (8-bit: well under 2 % of the magnitude; F32 exact to float rounding).
        const double budget = t->type == GgmlType::F32 ? 1e-6 * a : 0.02 * a;
        ASSERT_NEAR(ref[size_t(tt) * w.n_rows + r], s, budget) << type << " row " << r;
      }
    }
    for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
      if (!k::cpu_supports(isa)) continue;
      k::set_isa(isa);
      std::vector<float> got(ref.size());
      k::matmul(w, x.data(), n_tok, got.data(), nullptr);
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], ref[i], 1e-5 * mag[i] + 1e-7) << type << " " << k::isa_name(isa) << " at " << i;
      std::vector<float> one(size_t(w.n_rows));
      k::matmul(w, x.data() + w.n_cols, 1, one.data(), nullptr);  // token 1 alone
      for (int64_t r = 0; r < w.n_rows; ++r)
        ASSERT_NEAR(one[size_t(r)], ref[size_t(w.n_rows + r)], 1e-5 * mag[size_t(w.n_rows + r)] + 1e-7) << type << " 1-token";
    }
  }
}

// dcq's I8 codes (int8 code, float scale per `group` codes of a row; activations stay float).
// The SIMD paths change only the float summation order. Budget (kI8Budget): 1e-5 of
// sum |scale * code * x| per output, against the scalar twin; the scalar twin itself is held to
// the exact (double) sum within 1e-6 of the same magnitude.
constexpr double kI8Budget = 1e-5;

struct I8Case {
  int64_t cols, group;
};

std::vector<I8Case> i8_cases() {
  std::vector<I8Case> cases;
  for (int64_t cols : {64, 172, 256, 4096}) {
    for (int64_t group : {int64_t(32), int64_t(64), int64_t(128), cols, int64_t(43), int64_t(4)})
      if (group <= cols && cols % group == 0) cases.push_back({cols, group});
  }
  return cases;
}

TEST(Kernels, I8EveryPathMatchesScalarTwinOnRandomCodes) {
  IsaGuard guard;
  std::mt19937 gen(5);
  std::uniform_int_distribution<int> code(-127, 127);
  std::uniform_real_distribution<float> scale(1e-3f, 5e-2f);
  int checked = 0;
  for (const I8Case c : i8_cases()) {
    const int64_t rows = 37, n_tok = 6;  // 37 rows: row tiles of 16 plus a remainder
    std::vector<int8_t> codes(size_t(rows * c.cols));
    for (auto& v : codes) v = static_cast<int8_t>(code(gen));
    std::vector<float> scales(size_t(rows * (c.cols / c.group)));
    for (auto& v : scales) v = scale(gen);
    const auto x = random_floats(size_t(c.cols * n_tok), uint32_t(c.cols + c.group));
    const k::Matrix w{GgmlType::I8, c.cols, rows, reinterpret_cast<const uint8_t*>(codes.data()), scales.data(), c.group};
    // Exact sums and magnitudes in double.
    std::vector<double> exact(size_t(rows * n_tok)), mag(exact.size());
    for (int64_t t = 0; t < n_tok; ++t)
      for (int64_t r = 0; r < rows; ++r) {
        double s = 0, a = 0;
        for (int64_t i = 0; i < c.cols; ++i) {
          const double p = double(scales[size_t(r * (c.cols / c.group) + i / c.group)]) *
                           codes[size_t(r * c.cols + i)] * x[size_t(t * c.cols + i)];
          s += p;
          a += std::fabs(p);
        }
        exact[size_t(t * rows + r)] = s;
        mag[size_t(t * rows + r)] = a;
      }
    k::set_isa(k::Isa::scalar);
    std::vector<float> ref(exact.size());
    k::matmul(w, x.data(), n_tok, ref.data(), nullptr);
    for (size_t i = 0; i < ref.size(); ++i)
      ASSERT_NEAR(ref[i], exact[i], 1e-6 * mag[i]) << "scalar cols " << c.cols << " group " << c.group;
    for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
      if (!k::cpu_supports(isa)) continue;
      k::set_isa(isa);
      std::vector<float> got(ref.size());
      k::matmul(w, x.data(), n_tok, got.data(), nullptr);  // 4-token tiles + 2 single tokens
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], ref[i], kI8Budget * mag[i])
            << k::isa_name(isa) << " cols " << c.cols << " group " << c.group << " at " << i;
      for (int64_t r = 0; r < rows; ++r) {  // the one-row dot of token 3 alone
        const float one = k::vec_dot_i8(c.cols, codes.data() + r * c.cols, x.data() + 3 * c.cols,
                                        scales.data() + r * (c.cols / c.group), c.group);
        ASSERT_NEAR(one, ref[size_t(3 * rows + r)], kI8Budget * mag[size_t(3 * rows + r)])
            << k::isa_name(isa) << " dot cols " << c.cols << " group " << c.group;
      }
      k::ThreadPool pool(2);
      std::vector<float> threaded(ref.size());
      k::matmul(w, x.data(), n_tok, threaded.data(), &pool);
      EXPECT_EQ(threaded, got) << "threads change I8 results";
      ++checked;
    }
  }
  if (k::cpu_supports(k::Isa::avx2)) {
    EXPECT_GE(checked, 13);
  }
}

// The Q8_0 / Q4_0 kernels (AVX2 maddubs, AVX-512 VNNI) promise more than the 1e-5 budget: exact
// integer block sums and the scalar twin's float chain, so results are bit-identical with it
// (llama.cpp's perplexities are matched to 0.1 %, and single-token and batched evaluation must
// agree exactly). Random blocks, extreme levels (-128 in Q8_0) included; 3 and 24 blocks per
// row (odd and even block counts), 1 and 5 tokens, 9 rows (4-row groups plus a remainder).
TEST(Kernels, Q8_0AndQ4_0PathsAreBitIdenticalWithScalarTwin) {
  IsaGuard guard;
  std::mt19937 gen(17);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> dist(1e-4f, 1e-2f);
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    for (int64_t cols : {96, 768}) {
      const int64_t rows = 9, n_tok = 5;
      const size_t stride = *row_bytes(type, cols);
      std::vector<uint8_t> wbytes(stride * rows);
      for (auto& v : wbytes) v = static_cast<uint8_t>(byte(gen));
      const size_t block = type == GgmlType::Q8_0 ? 34 : 18;
      for (size_t off = 0; off < wbytes.size(); off += block) {  // valid, finite scales
        const uint16_t d = float_to_fp16(dist(gen));
        wbytes[off] = uint8_t(d & 0xFF);
        wbytes[off + 1] = uint8_t(d >> 8);
      }
      const auto x = random_floats(size_t(cols * n_tok), uint32_t(cols), 2.f);
      const k::Matrix w{type, cols, rows, wbytes.data()};
      k::set_isa(k::Isa::scalar);
      std::vector<float> ref(size_t(rows * n_tok));
      k::matmul(w, x.data(), n_tok, ref.data(), nullptr);
      for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
        if (!k::cpu_supports(isa)) continue;
        k::set_isa(isa);
        std::vector<float> got(ref.size());
        k::matmul(w, x.data(), n_tok, got.data(), nullptr);
        EXPECT_EQ(got, ref) << type_name(type) << " " << cols << " " << k::isa_name(isa) << " batch";
        for (int64_t t = 0; t < n_tok; ++t) {
          std::vector<float> one(static_cast<size_t>(rows));
          k::matmul(w, x.data() + t * cols, 1, one.data(), nullptr);
          EXPECT_EQ(one, std::vector<float>(ref.begin() + t * rows, ref.begin() + (t + 1) * rows))
              << type_name(type) << " " << cols << " " << k::isa_name(isa) << " token " << t;
        }
      }
    }
  }
}

// Q4_K / Q6_K batches go one row x 4 tokens (row4: the row's scales and levels decoded once per
// four tokens). Their SIMD dots are exact integers and the scalar twin's float steps, so the batch
// kernels must give the scalar path's bits, and each token alone the batch's. Real tensors
// (synth256), 9 tokens (two 4-token groups and a remainder).
TEST(Kernels, KQuantBatchesAreBitIdenticalWithScalarAndTokenByToken) {
  DCQ_REQUIRE_DATA();
  IsaGuard guard;
  int checked = 0;
  for (const char* file : {"Q4_K_S", "Q6_K"}) {
    const Model m = load_model(test::model_path(std::string("synth256/synth256-") + file + ".gguf"));
    for (const Tensor& t : m.tensors) {
      if (t.ne.size() != 2 || (t.type != GgmlType::Q4_K && t.type != GgmlType::Q6_K)) continue;
      const k::Matrix w{t.type, t.ne[0], t.ne[1], t.data.data()};
      const int n_tok = 9;
      const auto x = random_floats(size_t(w.n_cols) * n_tok, 11, 0.5f);
      k::set_isa(k::Isa::scalar);
      std::vector<float> ref(size_t(w.n_rows) * n_tok);
      k::matmul(w, x.data(), n_tok, ref.data(), nullptr);
      for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
        if (!k::cpu_supports(isa)) continue;
        k::set_isa(isa);
        std::vector<float> got(ref.size());
        k::matmul(w, x.data(), n_tok, got.data(), nullptr);
        EXPECT_EQ(got, ref) << file << " " << t.name << " " << k::isa_name(isa) << " batch";
        for (int tt = 0; tt < n_tok; ++tt) {
          std::vector<float> one(size_t(w.n_rows));
          k::matmul(w, x.data() + size_t(tt) * w.n_cols, 1, one.data(), nullptr);
          EXPECT_EQ(one, std::vector<float>(ref.begin() + tt * w.n_rows, ref.begin() + (tt + 1) * w.n_rows))
              << file << " " << t.name << " " << k::isa_name(isa) << " token " << tt;
        }
        ++checked;
      }
      break;  // one tensor of each file
    }
  }
  if (k::cpu_supports(k::Isa::avx2)) {
    EXPECT_GE(checked, 2);
  }
}

// The Q4_K / Q6_K SIMD tiles regroup the integer sums (vectorized scale/min unpacking, bsums pairs,
// 512-bit registers holding two sub-blocks with vpdpwssd on AVX-512). Random block bytes cover
// every packed scale/min bit pattern; the extreme rounds set all levels and scales to their
// maxima against activations of -128/127 (the largest int16 pair sums), where a wrong unpacking,
// a saturating step or a lost bit would show. Activations are built directly as Q8_K blocks
// (bsums consistent with qs). Every dot must equal the scalar twin's bits (row4 batches are
// checked against it on real tensors above).
TEST(Kernels, KQuantTilesMatchScalarOnRandomAndExtremeBlocks) {
  IsaGuard guard;
  constexpr int64_t cols = 512, rows = 5, n_tok = 5;  // 2 super-blocks; 4 + 1 tokens
  std::mt19937 rng(29);
  for (GgmlType type : {GgmlType::Q4_K, GgmlType::Q6_K}) {
    const size_t row_b = *row_bytes(type, cols);
    for (int round = 0; round < 3; ++round) {  // 0: random, 1: +127 / max, 2: -128 / max
      std::vector<uint8_t> wbytes(row_b * rows);
      for (auto& b : wbytes) b = uint8_t(rng());
      const size_t block = row_b / (cols / 256);
      for (size_t off = 0; off < wbytes.size(); off += block) {
        uint8_t* blk = wbytes.data() + off;
        const uint16_t d = float_to_fp16(0.01f + 0.001f * float(rng() % 100));
        if (type == GgmlType::Q4_K) {  // d, dmin, scales[12], qs[128]
          std::memcpy(blk, &d, 2);
          std::memcpy(blk + 2, &d, 2);
          if (round > 0) std::memset(blk + 4, 0xFF, 12 + 128);  // scales/mins 63, levels 15
        } else {  // ql[128], qh[64], scales[16], d
          std::memcpy(blk + 208, &d, 2);
          if (round > 0) {
            std::memset(blk, 0xFF, 192);                      // levels 63 (stored +32)
            std::memset(blk + 192, round == 1 ? 127 : 0x80, 16);  // scales +-127/128
          }
        }
      }
      const size_t act_b = *row_bytes(GgmlType::Q8_K, cols);
      std::vector<uint8_t> act(act_b * n_tok);
      for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t b = 0; b < cols / 256; ++b) {
          uint8_t* blk = act.data() + t * act_b + b * 292;  // float d, int8 qs[256], int16 bsums[16]
          const float dy = 0.02f * float(1 + t);
          std::memcpy(blk, &dy, 4);
          auto* qs = reinterpret_cast<int8_t*>(blk + 4);
          for (int i = 0; i < 256; ++i)
            qs[i] = round == 0 ? int8_t(rng()) : round == 1 ? int8_t(127) : int8_t(-128);
          for (int g = 0; g < 16; ++g) {
            int16_t sum = 0;
            for (int i = 0; i < 16; ++i) sum = int16_t(sum + qs[16 * g + i]);
            std::memcpy(blk + 4 + 256 + 2 * g, &sum, 2);
          }
        }
      std::vector<float> ref(size_t(rows * n_tok));
      for (int64_t t = 0; t < n_tok; ++t)
        for (int64_t r = 0; r < rows; ++r)
          ref[size_t(t * rows + r)] = k::vec_dot_reference(type, cols, wbytes.data() + r * row_b, act.data() + t * act_b);
      for (float v : ref) ASSERT_TRUE(std::isfinite(v));
      for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
        if (!k::cpu_supports(isa)) continue;
        k::set_isa(isa);
        for (int64_t t = 0; t < n_tok; ++t)
          for (int64_t r = 0; r < rows; ++r)
            EXPECT_EQ(k::vec_dot(type, cols, wbytes.data() + r * row_b, act.data() + t * act_b), ref[size_t(t * rows + r)])
                << type_name(type) << " round " << round << " " << k::isa_name(isa) << " r" << r << " t" << t;
      }
    }
  }
}

// F32 batches use register tiles on AVX-512; each output must still be computed exactly as the
// same token alone computes it (the engine's batched prompt equals token-by-token evaluation).
TEST(Kernels, F32BatchEqualsTokenByTokenOnEveryPath) {
  IsaGuard guard;
  for (int64_t cols : {64, 200, 768}) {  // 200: a tail after the 64-wide steps
    const int64_t rows = 11, n_tok = 7;
    const auto wf = random_floats(size_t(rows * cols), uint32_t(cols), 0.1f);
    const auto x = random_floats(size_t(cols * n_tok), uint32_t(cols + 1));
    const k::Matrix w{GgmlType::F32, cols, rows, reinterpret_cast<const uint8_t*>(wf.data())};
    for (k::Isa isa : {k::Isa::scalar, k::Isa::avx2, k::Isa::avx512}) {
      if (!k::cpu_supports(isa)) continue;
      k::set_isa(isa);
      std::vector<float> batch(size_t(rows * n_tok));
      k::matmul(w, x.data(), n_tok, batch.data(), nullptr);
      for (int64_t t = 0; t < n_tok; ++t) {
        std::vector<float> one(static_cast<size_t>(rows));
        k::matmul(w, x.data() + t * cols, 1, one.data(), nullptr);
        EXPECT_EQ(one, std::vector<float>(batch.begin() + t * rows, batch.begin() + (t + 1) * rows))
            << cols << " " << k::isa_name(isa) << " token " << t;
      }
    }
  }
}

// F32 / F16 widths that are a multiple of the path's lane count go through the lane-order panels
// (gemm_avx2.cpp / gemm_avx512.cpp, llama.cpp's tinyBLAS order): every output of matmul (batch
// tiles of 4 x 6 (AVX-512) or 2 x 3 (AVX2) rows x tokens and their remainders, 2 threads) and of vec_dot must equal the
// scalar twin dot_lanes_scalar bit for bit; the twin itself stays within kLaneBudget of the exact
// sum. Widths 40, 172 and 200 are not multiples of 16: they keep ggml's AVX-512 vec_dot order
// (F32; F16 sums exact products in double), which must still give batch == token alone. F32 on
// the AVX2 path must equal the AVX-512 path bit for bit at every width.
constexpr double kLaneBudget = 1e-5;  // of sum |w_i x_i|, twin against the exact double sum

TEST(Kernels, LaneOrderF32F16AreBitIdenticalWithScalarTwin) {
  IsaGuard guard;
  k::ThreadPool pool(2);
  for (GgmlType type : {GgmlType::F32, GgmlType::F16}) {
    for (int64_t cols : {16, 40, 64, 172, 200, 768, 1024}) {
      const int64_t rows = 37, n_tok = 13;  // 4 + 4 + 3 rows; 6 + 6 + 1 and 3 x 4 + 1 tokens
      const auto wf = random_floats(size_t(rows * cols), uint32_t(cols + 7), 0.1f);
      const auto x = random_floats(size_t(cols * n_tok), uint32_t(cols + 8));
      std::vector<uint16_t> wh(wf.size());
      for (size_t i = 0; i < wf.size(); ++i) wh[i] = float_to_fp16(wf[i]);
      const bool f16 = type == GgmlType::F16;
      const auto* wdata = f16 ? reinterpret_cast<const uint8_t*>(wh.data()) : reinterpret_cast<const uint8_t*>(wf.data());
      const size_t row_b = size_t(cols) * (f16 ? 2 : 4);
      // Activations in the dot's format: floats, or rounded to F16.
      std::vector<uint16_t> xh(x.size());
      if (f16) k::quantize_activation_reference(GgmlType::F16, x.data(), xh.data(), int64_t(x.size()));
      auto act = [&](int64_t t) -> const void* { return f16 ? static_cast<const void*>(xh.data() + t * cols) : x.data() + t * cols; };
      const k::Matrix w{type, cols, rows, wdata};
      std::vector<float> avx2_batch;
      for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
        if (!k::cpu_supports(isa)) continue;
        k::set_isa(isa);
        const int lanes = k::lane_width();
        ASSERT_EQ(lanes, 16);  // both SIMD paths: the same 16-lane order, the same bits
        std::vector<float> batch(size_t(rows * n_tok));
        k::matmul(w, x.data(), n_tok, batch.data(), &pool);
        // F32 at any width and F16 at lane widths: the AVX2 path reproduces the AVX-512 bits.
        if (isa == k::Isa::avx2) {
          avx2_batch = batch;
        } else if (!avx2_batch.empty() && (!f16 || cols % lanes == 0)) {
          ASSERT_EQ(avx2_batch, batch) << type_name(type) << " " << cols;
        }
        for (int64_t t = 0; t < n_tok; ++t) {
          std::vector<float> one(static_cast<size_t>(rows));
          k::matmul(w, x.data() + t * cols, 1, one.data(), nullptr);
          for (int64_t r = 0; r < rows; ++r) {
            const float got = batch[size_t(t * rows + r)];
            const std::string where = std::string(type_name(type)) + " " + std::to_string(cols) + " " +
                                      std::string(k::isa_name(isa)) + " r" + std::to_string(r) + " t" + std::to_string(t);
            ASSERT_EQ(one[size_t(r)], got) << where;
            ASSERT_EQ(k::vec_dot(type, cols, wdata + r * row_b, act(t)), got) << where;
            if (cols % lanes != 0) continue;
            ASSERT_EQ(k::vec_dot_lanes_reference(type, lanes, cols, wdata + r * row_b, act(t)), got) << where;
            double exact = 0, mag = 0;
            for (int64_t i = 0; i < cols; ++i) {
              const double wi = f16 ? fp16_to_float(wh[size_t(r * cols + i)]) : wf[size_t(r * cols + i)];
              const double xi = f16 ? fp16_to_float(xh[size_t(t * cols + i)]) : x[size_t(t * cols + i)];
              exact += wi * xi;
              mag += std::fabs(wi * xi);
            }
            ASSERT_NEAR(got, exact, kLaneBudget * mag) << where;
          }
        }
      }
    }
  }
}

// Activation quantization must be bit-identical on every path: it decides which integers the
// block sums see, and llama.cpp's numbers depend on them.
TEST(Kernels, ActivationQuantizersAreBitIdenticalOnEveryPath) {
  IsaGuard guard;
  auto x = random_floats(4096, 11, 2.f);
  for (size_t i = 0; i < 64; ++i) x[i] = float(int(i) - 32) * 0.5f;  // exact ties
  for (GgmlType at : {GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q8_1, GgmlType::Q8_K}) {
    const size_t bytes = *row_bytes(at, 4096);
    std::vector<uint8_t> ref(bytes), got(bytes);
    k::quantize_activation_reference(at, x.data(), ref.data(), 4096);
    for (k::Isa isa : {k::Isa::scalar, k::Isa::avx2, k::Isa::avx512}) {
      if (!k::cpu_supports(isa)) continue;
      k::set_isa(isa);
      k::quantize_activation(at, x.data(), got.data(), 4096);
      EXPECT_EQ(got, ref) << type_name(at) << " " << k::isa_name(isa);
    }
  }
}

TEST(Kernels, AttentionPathsAgree) {
  IsaGuard guard;
  for (int hd : {8, 32, 64, 128}) {
    const int n = 37, stride = 3 * hd;
    const auto q = random_floats(size_t(hd), 21), kv = random_floats(size_t(stride) * n * 2, 22);
    std::vector<uint16_t> kh(size_t(stride) * n), vh(kh.size());
    for (size_t i = 0; i < kh.size(); ++i) { kh[i] = float_to_fp16(kv[i]); vh[i] = float_to_fp16(kv[kh.size() + i]); }
    k::set_isa(k::Isa::scalar);
    std::vector<float> ref(static_cast<size_t>(hd)), got(static_cast<size_t>(hd));
    k::attention_f16(q.data(), kh.data() + hd, vh.data() + hd, stride, n, hd, 0.125f, ref.data());
    for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
      if (!k::cpu_supports(isa)) continue;
      k::set_isa(isa);
      k::attention_f16(q.data(), kh.data() + hd, vh.data() + hd, stride, n, hd, 0.125f, got.data());
      // Score sums differ in float order only; the F16 accumulator may then round one ulp apart.
      for (int d = 0; d < hd; ++d) EXPECT_NEAR(got[d], ref[d], 2e-3f * (1 + std::fabs(ref[d]))) << hd << " " << d;
    }
  }
}

TEST(Kernels, Q8_0ActivationsFollowGgml) {
  // amax 127 -> d = 1, values round half to even: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -3.5 -> -4.
  std::vector<float> x(32, 0.f);
  x[0] = 127.f; x[1] = 0.5f; x[2] = 1.5f; x[3] = 2.5f; x[4] = -3.5f; x[5] = -127.f;
  std::vector<uint8_t> q(34);
  k::quantize_activation(GgmlType::Q8_0, x.data(), q.data(), 32);
  EXPECT_EQ(q[0] | (q[1] << 8), 0x3C00);  // d = 1.0 in F16
  const auto* qs = reinterpret_cast<const int8_t*>(q.data() + 2);
  EXPECT_EQ(qs[0], 127);
  EXPECT_EQ(qs[1], 0);
  EXPECT_EQ(qs[2], 2);
  EXPECT_EQ(qs[3], 2);
  EXPECT_EQ(qs[4], -4);
  EXPECT_EQ(qs[5], -127);
  // All-zero block: scale 0, no NaN.
  std::vector<float> z(32, 0.f);
  k::quantize_activation(GgmlType::Q8_0, z.data(), q.data(), 32);
  for (uint8_t b : q) EXPECT_EQ(b, 0);
}

TEST(Kernels, ActivationTypesAreGgmlVecDotTypes) {
  EXPECT_EQ(k::activation_type(GgmlType::F32), GgmlType::F32);
  EXPECT_EQ(k::activation_type(GgmlType::F16), GgmlType::F16);
  EXPECT_EQ(k::activation_type(GgmlType::BF16), GgmlType::BF16);
  EXPECT_EQ(k::activation_type(GgmlType::Q4_0), GgmlType::Q8_0);
  EXPECT_EQ(k::activation_type(GgmlType::IQ4_NL), GgmlType::Q8_0);
  EXPECT_EQ(k::activation_type(GgmlType::Q5_1), GgmlType::Q8_1);
  EXPECT_EQ(k::activation_type(GgmlType::Q4_K), GgmlType::Q8_K);
  EXPECT_EQ(k::activation_type(GgmlType::IQ4_XS), GgmlType::Q8_K);
  EXPECT_THROW(k::activation_type(GgmlType::IQ2_XXS), Error);
  EXPECT_FALSE(k::supports_weight_type(GgmlType::IQ2_XXS));
}

TEST(Kernels, OpsBehave) {
  // RoPE at position 0 is the identity; at any position it keeps each pair's length.
  auto x = random_floats(64, 3);
  auto y = x;
  k::rope_normal(y.data(), 8, 8, 8, 0, 10000.f, 1.f);
  EXPECT_EQ(x, y);
  k::rope_normal(y.data(), 8, 8, 8, 17, 10000.f, 1.f);
  for (size_t i = 0; i < 64; i += 2)
    EXPECT_NEAR(std::hypot(x[i], x[i + 1]), std::hypot(y[i], y[i + 1]), 1e-5);
  EXPECT_NE(x, y);
  // The first pair rotates by exactly pos radians.
  std::vector<float> e = {1, 0};
  k::rope_normal(e.data(), 1, 2, 2, 1, 10000.f, 1.f);
  EXPECT_NEAR(e[0], std::cos(1.f), 1e-6);
  EXPECT_NEAR(e[1], std::sin(1.f), 1e-6);

  auto s = random_floats(100, 4, 3.f);
  k::softmax(s.data(), 100);
  double sum = 0;
  for (float v : s) { EXPECT_GE(v, 0.f); sum += v; }
  EXPECT_NEAR(sum, 1.0, 1e-6);

  std::vector<float> v = {3.f, 4.f}, w = {1.f, 2.f}, out(2);
  k::rmsnorm(out.data(), v.data(), w.data(), 2, 0.f);  // rms = sqrt(12.5)
  EXPECT_NEAR(out[0], 3.f / std::sqrt(12.5f), 1e-6);
  EXPECT_NEAR(out[1], 2 * 4.f / std::sqrt(12.5f), 1e-6);

  std::vector<float> g = {0.f, 2.f}, u = {5.f, 3.f}, o(2);
  k::swiglu(o.data(), g.data(), u.data(), 2);
  EXPECT_EQ(o[0], 0.f);
  EXPECT_NEAR(o[1], 2.f / (1.f + std::exp(-2.f)) * 3.f, 1e-6);
}

TEST(Kernels, AttentionIsSoftmaxWeightedValues) {
  // 3 positions, head_dim 4: compare with the textbook formula (F16 rounding budget).
  const int hd = 4, n = 3;
  const auto q = random_floats(hd, 1), kf = random_floats(hd * n, 2), vf = random_floats(hd * n, 3);
  std::vector<uint16_t> kh(kf.size()), vh(vf.size());
  for (size_t i = 0; i < kf.size(); ++i) { kh[i] = float_to_fp16(kf[i]); vh[i] = float_to_fp16(vf[i]); }
  std::vector<float> out(hd);
  k::attention_f16(q.data(), kh.data(), vh.data(), hd, n, hd, 0.5f, out.data());
  std::vector<float> sc(n);
  for (int p = 0; p < n; ++p) {
    float s = 0;
    for (int d = 0; d < hd; ++d) s += q[d] * fp16_to_float(kh[p * hd + d]);
    sc[p] = s * 0.5f;
  }
  k::softmax(sc.data(), n);
  for (int d = 0; d < hd; ++d) {
    float want = 0;
    for (int p = 0; p < n; ++p) want += sc[p] * fp16_to_float(vh[p * hd + d]);
    EXPECT_NEAR(out[d], want, 5e-3) << d;
  }
}

TEST(Kernels, ThreadCountDoesNotChangeResults) {
  const int64_t rows = 301, cols = 256;
  const auto wf = random_floats(size_t(rows * cols), 9, 0.1f);
  const auto x = random_floats(size_t(cols) * 4, 10);
  const k::Matrix w{GgmlType::F32, cols, rows, reinterpret_cast<const uint8_t*>(wf.data())};
  std::vector<float> y1(size_t(rows) * 4), y3(y1.size());
  k::matmul(w, x.data(), 4, y1.data(), nullptr);
  k::ThreadPool pool(3);
  k::matmul(w, x.data(), 4, y3.data(), &pool);
  EXPECT_EQ(y1, y3);
  // The pool covers every index exactly once.
  std::vector<int> hits(1000, 0);
  pool.parallel_for(1000, [&](int64_t b, int64_t e) { for (int64_t i = b; i < e; ++i) ++hits[size_t(i)]; });
  for (int h : hits) ASSERT_EQ(h, 1);
}

TEST(Kernels, IsaSelection) {
  EXPECT_TRUE(k::cpu_supports(k::Isa::scalar));
  EXPECT_TRUE(k::cpu_supports(k::best_isa()));
  IsaGuard guard;
  for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
    if (k::cpu_supports(isa)) {
      k::set_isa(isa);
      EXPECT_EQ(k::active_isa(), isa);
    } else {
      EXPECT_THROW(k::set_isa(isa), Error);
    }
  }
  // DCQ_ISA through the CLI: an unknown name is a usage error.
  DCQ_REQUIRE_DATA();
  const auto model = test::model_path("stories260K/stories260K-Q4_0.gguf").string();
  auto r = test::run_dcq("run " + model + " -p hi -n 1 --temp 0");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = test::CliResult{};
  const std::string cmd = "DCQ_ISA=sse9 " + std::string(DCQ_BINARY) + " run " + model + " -p hi -n 1 >/dev/null 2>&1";
  const int rc = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 2);
}

// Q8_K activations (every k-quant matmul) on the SIMD paths against the scalar twin, on blocks that
// probe each step: the largest magnitude appearing twice with opposite signs (the first one sets
// the sign of the scale), max = -127 / +127 so that iscale = +-1 and x.5 values are exact rounding
// ties (nearest even), all-zero and all-negative-zero blocks (zeroed), denormals, a lone extreme.
TEST(Kernels, Q8_KQuantizerIsBitIdenticalOnEdgeBlocks) {
  IsaGuard guard;
  constexpr int kB = 256;
  std::vector<float> x(size_t(kB) * 8);
  auto block = [&](int b) { return x.data() + size_t(b) * kB; };
  const auto r = random_floats(x.size(), 5, 3.f);
  std::copy(r.begin(), r.end(), x.begin());
  block(0)[7] = 9.f, block(0)[200] = -9.f;  // +max first
  block(1)[3] = -9.f, block(1)[100] = 9.f;  // -max first
  for (int j = 0; j < kB; ++j) block(2)[j] = float(j % 64) - 31.5f;  // ties at iscale = -1 (max -127 below)
  block(2)[kB - 1] = -127.f;
  for (int j = 0; j < kB; ++j) block(3)[j] = 0.5f * float(j - 128);  // ties, max +127 at j = 2
  block(3)[2] = 127.f;
  std::fill(block(4), block(4) + kB, 0.f);
  std::fill(block(5), block(5) + kB, -0.f);
  for (int j = 0; j < kB; ++j) block(6)[j] = float(j - 100) * 1e-41f;  // denormals
  std::fill(block(7), block(7) + kB, 1e-3f);
  block(7)[255] = -3e4f;
  const size_t bytes = *row_bytes(GgmlType::Q8_K, int64_t(x.size()));
  std::vector<uint8_t> ref(bytes), got(bytes);
  k::quantize_activation_reference(GgmlType::Q8_K, x.data(), ref.data(), int64_t(x.size()));
  for (k::Isa isa : {k::Isa::avx2, k::Isa::avx512}) {
    if (!k::cpu_supports(isa)) continue;
    k::set_isa(isa);
    std::fill(got.begin(), got.end(), 0xAB);
    k::quantize_activation(GgmlType::Q8_K, x.data(), got.data(), int64_t(x.size()));
    for (size_t b = 0; b < 8; ++b) {
      const size_t bb = bytes / 8;
      EXPECT_EQ(std::vector<uint8_t>(got.begin() + b * bb, got.begin() + (b + 1) * bb),
                std::vector<uint8_t>(ref.begin() + b * bb, ref.begin() + (b + 1) * bb))
          << k::isa_name(isa) << " block " << b;
    }
  }
}

// matmul_multi (the engine's fused Q/K/V, gate/up and epilogue pass) must give, matrix by matrix,
// exactly matmul's bits on every path, for the row-split kinds (F32 / F16 lane-order panels,
// interleaved Q4_K / Q6_K, including a mixed Q4_K + Q6_K call and plain remainder rows) and the
// fallback (Q8_0 plain rows), with 1..64 tokens, 1 and 2 threads; the epilogue must see each row of
// [0, n_rows) exactly once and only after that row's outputs of every matrix are final.
TEST(Kernels, MatmulMultiEqualsSeparateMatmulsOnEveryPath) {
  IsaGuard guard;
  const int64_t cols = 512;
  auto make = [&](GgmlType type, int64_t rows, uint32_t seed) {
    const auto f = random_floats(size_t(rows * cols), seed, 0.05f);
    std::vector<uint8_t> bytes(size_t(rows) * *row_bytes(type, cols));
    if (type == GgmlType::F32) std::memcpy(bytes.data(), f.data(), bytes.size());
    else quantize(type, f.data(), bytes.data(), rows * cols);
    return bytes;
  };
  struct Case {
    std::vector<GgmlType> types;
    int64_t rows;
  };
  const std::vector<Case> cases = {{{GgmlType::F32, GgmlType::F32, GgmlType::F32}, 52},
                                   {{GgmlType::F16, GgmlType::F16}, 40},
                                   {{GgmlType::Q4_K, GgmlType::Q4_K, GgmlType::Q6_K}, 72},
                                   {{GgmlType::Q6_K, GgmlType::Q4_K}, 61},  // 5 plain remainder rows
                                   {{GgmlType::Q8_0, GgmlType::Q8_0}, 48}};
  k::ThreadPool pool2(2);
  for (k::Isa isa : {k::Isa::scalar, k::Isa::avx2, k::Isa::avx512}) {
    if (!k::cpu_supports(isa)) continue;
    k::set_isa(isa);
    for (const Case& c : cases) {
      std::vector<std::vector<uint8_t>> plain, packed;
      std::vector<k::Matrix> ms;
      for (size_t i = 0; i < c.types.size(); ++i) {
        plain.push_back(make(c.types[i], c.rows, uint32_t(100 + i)));
        k::Matrix m{c.types[i], cols, c.rows, plain.back().data()};
        if (k::interleave_pays(m.type, m.n_rows, m.n_cols)) {
          packed.emplace_back(plain.back().size());
          k::interleave_rows(m.type, m.n_rows, m.n_cols, plain.back().data(), packed.back().data());
          m.data = packed.back().data();
          m.interleaved = true;
        }
        ms.push_back(m);
      }
      for (int64_t n_tok : {1, 5, 64}) {
        const auto x = random_floats(size_t(cols * n_tok), uint32_t(7 * n_tok));
        for (k::ThreadPool* pool : {static_cast<k::ThreadPool*>(nullptr), &pool2}) {
          std::vector<std::vector<float>> want(ms.size()), got(ms.size());
          std::vector<k::MatmulJob> jobs;
          for (size_t i = 0; i < ms.size(); ++i) {
            want[i].assign(size_t(c.rows * n_tok), 0.f);
            got[i].assign(size_t(c.rows * n_tok), -1.f);
            k::matmul(ms[i], x.data(), n_tok, want[i].data(), pool);
            jobs.push_back({ms[i], got[i].data()});
          }
          // Epilogue: counts each row and records the sum of every matrix's outputs of that row.
          std::vector<int> seen(size_t(c.rows), 0);
          std::vector<float> sums(size_t(c.rows * n_tok), 0.f);
          k::matmul_multi(jobs, x.data(), n_tok, pool, [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
              ++seen[size_t(r)];
              for (int64_t t = 0; t < n_tok; ++t)
                for (auto& g : got) sums[size_t(t * c.rows + r)] += g[size_t(t * c.rows + r)];
            }
          });
          const std::string what = std::string(k::isa_name(isa)) + " " + std::string(type_name(c.types[0])) + " rows " +
                                   std::to_string(c.rows) + " tokens " + std::to_string(n_tok) +
                                   (pool ? " 2 threads" : " 1 thread");
          for (size_t i = 0; i < ms.size(); ++i) EXPECT_EQ(want[i], got[i]) << what << " matrix " << i;
          EXPECT_EQ(seen, std::vector<int>(size_t(c.rows), 1)) << what;
          std::vector<float> want_sums(sums.size(), 0.f);
          for (size_t e = 0; e < want_sums.size(); ++e)
            for (auto& wv : want) want_sums[e] += wv[e];
          EXPECT_EQ(want_sums, sums) << what;
        }
      }
    }
  }
}

}  // namespace
