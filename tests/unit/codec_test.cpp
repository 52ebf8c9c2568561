// Codecs and transforms: exact round trips on synthetic and real tensor data, corrupt streams
// rejected without crashing, entropy estimates, stream layouts of every block type.
#include <gtest/gtest.h>

#include <random>

#include "dcq/codec.hpp"
#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "test_support.hpp"

using namespace dcq;

namespace {

std::vector<CodecSpec> all_specs() {
  return {{CodecId::raw, 0},          {CodecId::zstd, 3},           {CodecId::zstd, 19},
          {CodecId::lz4, 0},          {CodecId::rans, 0},           {CodecId::rans, kRansOrder1},
          {CodecId::rans, kRansX32},  {CodecId::rans, kRansOrder1 | kRansX32},
          {CodecId::rans, kRansPack}, {CodecId::rans, kRansRle}};
}

// Skewed bytes shaped like 4-bit codes: a discretised normal around 8.
std::vector<uint8_t> nibble_like(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(8.0, 2.5);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(std::clamp(std::lround(nd(rng)), 0L, 15L));
  return v;
}

}  // namespace

TEST(Codec, EveryCodecRoundTripsSkewedRandomAndTinyInputs) {
  std::mt19937 rng(7);
  std::vector<std::vector<uint8_t>> inputs{nibble_like(100000, 1), {42}, {1, 2, 3}, nibble_like(5000, 2)};
  std::vector<uint8_t> noise(70000);
  for (auto& b : noise) b = static_cast<uint8_t>(rng());
  inputs.push_back(noise);
  for (const auto& in : inputs) {
    for (auto spec : all_specs()) {
      auto s = spec;
      const auto enc = codec_encode(s, in);
      EXPECT_TRUE(codec_valid(static_cast<uint8_t>(s.id), s.param)) << codec_name(s);
      std::vector<uint8_t> out(in.size());
      codec_decode(s, enc, out);
      EXPECT_EQ(out, in) << codec_name(spec) << " on " << in.size() << " bytes";
    }
  }
}

TEST(Codec, RansOnNibblesComesWithinTwoPercentOfOrder0Entropy) {
  const auto in = nibble_like(256 * 1024, 3);
  const double h0 = entropy_order0(in);
  CodecSpec s{CodecId::rans, kRansX32};
  const auto enc = codec_encode(s, in);
  const double bits = 8.0 * double(enc.size()) / double(in.size());
  EXPECT_GT(h0, 3.0);
  EXPECT_LT(bits, h0 * 1.02) << "h0 " << h0 << " achieved " << bits;
}

TEST(Codec, EntropyEstimates) {
  std::vector<uint8_t> constant(1000, 5), uniform(256 * 64), alternating(1000);
  for (size_t i = 0; i < uniform.size(); ++i) uniform[i] = static_cast<uint8_t>(i);
  for (size_t i = 0; i < alternating.size(); ++i) alternating[i] = static_cast<uint8_t>(i % 2 ? 200 : 3);
  EXPECT_DOUBLE_EQ(entropy_order0(constant), 0.0);
  EXPECT_NEAR(entropy_order0(uniform), 8.0, 1e-9);
  EXPECT_NEAR(entropy_order1(uniform), 0.0, 1e-9);  // each byte follows from the previous one
  EXPECT_NEAR(entropy_order0(alternating), 1.0, 1e-9);
  EXPECT_NEAR(entropy_order1(alternating), 0.0, 1e-9);
}

TEST(Codec, CorruptStreamsThrowIntegrityOrDecodeWrongNeverCrash) {
  const auto in = nibble_like(20000, 4);
  for (auto spec : all_specs()) {
    if (spec.id == CodecId::raw) continue;
    auto s = spec;
    const auto enc = codec_encode(s, in);
    int thrown = 0;
    for (size_t pos = 0; pos < enc.size(); pos += std::max<size_t>(1, enc.size() / 97)) {
      auto bad = enc;
      bad[pos] ^= 0x5A;
      std::vector<uint8_t> out(in.size());
      try {
        codec_decode(s, bad, out);
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ExitCode::integrity) << codec_name(s) << ": " << e.what();
        ++thrown;
      }
    }
    // Wrong output sizes are always refused; truncated LZ streams too. htscodecs' rANS decoder
    // stays in bounds on a truncated stream but may not notice it: the container's checksum of
    // the decoded bytes is what catches that.
    std::vector<uint8_t> out(in.size());
    if (s.id == CodecId::rans) {
      try {
        codec_decode(s, std::span(enc).first(enc.size() / 2), out);
      } catch (const Error& e) {
        EXPECT_EQ(e.code(), ExitCode::integrity);
      }
    } else {
      EXPECT_THROW(codec_decode(s, std::span(enc).first(enc.size() / 2), out), Error) << codec_name(s);
    }
    std::vector<uint8_t> longer(in.size() + 1);
    EXPECT_THROW(codec_decode(s, enc, longer), Error) << codec_name(s);
    (void)thrown;
  }
}

TEST(Codec, ValidityOfIdsAndParameters) {
  EXPECT_TRUE(codec_valid(0, 0));
  EXPECT_FALSE(codec_valid(0, 1));
  EXPECT_TRUE(codec_valid(1, 19));
  EXPECT_FALSE(codec_valid(1, 0));
  EXPECT_FALSE(codec_valid(1, 23));
  EXPECT_FALSE(codec_valid(2, 3));
  EXPECT_TRUE(codec_valid(3, kRansOrder1 | kRansX32 | kRansPack));
  EXPECT_FALSE(codec_valid(3, kRansStripe));
  EXPECT_FALSE(codec_valid(3, 0x100));
  EXPECT_TRUE(codec_valid(4, 0));  // huff (tests/unit/huff_test.cpp)
  EXPECT_FALSE(codec_valid(4, 1));
  EXPECT_FALSE(codec_valid(5, 0));
  // The rans order byte stored in the stream must match the index's parameter.
  const auto in = nibble_like(5000, 5);
  CodecSpec s{CodecId::rans, kRansOrder1};
  const auto enc = codec_encode(s, in);
  std::vector<uint8_t> out(in.size());
  EXPECT_THROW(codec_decode({CodecId::rans, static_cast<uint16_t>(s.param ^ kRansOrder1)}, enc, out), Error);
}

TEST(Transform, SplitJoinIsExactOnRealTensorsOfEveryType) {
  DCQ_REQUIRE_DATA();
  const char* files[] = {"synth256/synth256-F32.gguf",   "synth256/synth256-F16.gguf",   "synth256/synth256-BF16.gguf",
                         "synth256/synth256-Q8_0.gguf",  "synth256/synth256-Q4_0.gguf",  "synth256/synth256-Q4_1.gguf",
                         "synth256/synth256-Q5_0.gguf",  "synth256/synth256-Q5_1.gguf",  "synth256/synth256-Q2_K.gguf",
                         "synth256/synth256-Q3_K_S.gguf", "synth256/synth256-Q4_K_S.gguf", "synth256/synth256-Q5_K_S.gguf",
                         "synth256/synth256-Q6_K.gguf",  "synth256/synth256-IQ4_NL.gguf", "synth256/synth256-IQ4_XS.gguf"};
  for (const char* f : files) {
    const Model m = read_gguf(test::model_path(f));
    const Tensor& t = *m.find_tensor("blk.0.attn_q.weight");
    int applied = 0;
    for (uint8_t k = 0; k < kTransformCount; ++k) {
      const auto tid = static_cast<TransformId>(k);
      if (!transform_applies(tid, t.type)) continue;
      ++applied;
      const auto streams = transform_split(tid, t.type, t.data);
      const auto sizes = transform_stream_sizes(tid, t.type, t.data.size());
      ASSERT_EQ(streams.size(), sizes.size());
      std::vector<std::span<const uint8_t>> views;
      for (size_t i = 0; i < streams.size(); ++i) {
        EXPECT_EQ(streams[i].size(), sizes[i]);
        views.emplace_back(streams[i]);
      }
      std::vector<uint8_t> out(t.data.size());
      transform_join(tid, t.type, views, out);
      EXPECT_TRUE(std::equal(out.begin(), out.end(), t.data.begin())) << f << " " << transform_name(tid);
      if (tid == TransformId::block_fields_unpacked) {
        // The largest stream holds one symbol per element: 4-bit (or 5-bit for Q5_0/Q5_1).
        const auto& codes = *std::max_element(streams.begin(), streams.end(),
                                              [](const auto& a, const auto& b) { return a.size() < b.size(); });
        const bool q5 = t.type == GgmlType::Q5_0 || t.type == GgmlType::Q5_1;
        EXPECT_LT(*std::max_element(codes.begin(), codes.end()), q5 ? 32 : 16) << f;
        if (t.type != GgmlType::Q6_K) {
          EXPECT_EQ(codes.size(), static_cast<size_t>(t.n_elements())) << f;
        }
      }
    }
    EXPECT_GE(applied, 2) << f << ": no structural transform applies";
  }
}

TEST(Transform, BlockFieldsSeparateScalesFromCodes) {
  // Q8_0: d (f16, split into low and high byte) then 32 codes.
  std::vector<uint8_t> blk(34 * 3);
  for (size_t i = 0; i < blk.size(); ++i) blk[i] = static_cast<uint8_t>(i);
  const auto s = transform_split(TransformId::block_fields, GgmlType::Q8_0, blk);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0], (std::vector<uint8_t>{0, 34, 68}));
  EXPECT_EQ(s[1], (std::vector<uint8_t>{1, 35, 69}));
  EXPECT_EQ(s[2].size(), 96u);
  EXPECT_EQ(s[2][0], 2);
  EXPECT_EQ(s[2][32], 36);
  // F32 byte planes: plane k holds byte k of every element.
  std::vector<uint8_t> f(16);
  for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<uint8_t>(i);
  const auto p = transform_split(TransformId::byte_planes, GgmlType::F32, f);
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[3], (std::vector<uint8_t>{3, 7, 11, 15}));
  EXPECT_FALSE(transform_applies(TransformId::byte_planes, GgmlType::Q4_0));
  EXPECT_FALSE(transform_applies(TransformId::block_fields_unpacked, GgmlType::Q8_0));
}
