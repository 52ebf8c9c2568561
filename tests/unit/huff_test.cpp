// Codec 4 "huff" (src/codec/huff.cpp): exact round trips on every code stream of the real
// stories260K files and on edge cases, optimal length-limited code lengths, size against the
// order-0 entropy, and corrupt or forged streams rejected with Error, never a crash (this test is
// labelled "parser": tools/test.sh reruns it under ASan/UBSan).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <queue>
#include <random>

#include "codec/huff.hpp"
#include "dcq/codec.hpp"
#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "test_support.hpp"

using namespace dcq;
using namespace dcq::test;

namespace {

std::vector<uint8_t> round_trip(uint16_t low_bits, const std::vector<uint8_t>& in) {
  CodecSpec spec{CodecId::huff, low_bits};
  const auto enc = codec_encode(spec, in);
  std::vector<uint8_t> out(in.size(), 0xAA);
  codec_decode(spec, enc, out);
  EXPECT_EQ(out, in) << "huff-lo" << low_bits << " on " << in.size() << " bytes";
  return enc;
}

// Unlimited Huffman cost in bits (sum of freq x length), the optimum a limit can only match.
uint64_t huffman_cost(const std::vector<uint64_t>& freq) {
  std::priority_queue<uint64_t, std::vector<uint64_t>, std::greater<>> q;
  for (auto f : freq)
    if (f) q.push(f);
  uint64_t cost = 0;
  while (q.size() > 1) {
    const uint64_t a = q.top();
    q.pop();
    const uint64_t b = q.top();
    q.pop();
    cost += a + b;
    q.push(a + b);
  }
  return cost;
}

// The code streams (and all other streams) of every block tensor of a stories260K file.
std::vector<std::vector<uint8_t>> stories_streams(const std::string& type, bool codes_only) {
  const Model m = read_gguf(stories_gguf(type));
  std::vector<std::vector<uint8_t>> out;
  for (const auto& t : m.tensors) {
    for (auto tid : {TransformId::block_fields_unpacked, TransformId::block_fields, TransformId::byte_planes,
                     TransformId::none}) {
      if (!transform_applies(tid, t.type)) continue;
      auto streams = transform_split(tid, t.type, t.data);
      if (codes_only) {
        // The largest stream is the codes.
        auto it = std::max_element(streams.begin(), streams.end(),
                                   [](auto& a, auto& b) { return a.size() < b.size(); });
        out.push_back(std::move(*it));
      } else {
        for (auto& s : streams) out.push_back(std::move(s));
      }
      break;  // the first (most specific) transform that applies
    }
  }
  return out;
}

}  // namespace

TEST(Huff, RoundTripsEveryStreamOfEveryStoriesType) {
  DCQ_REQUIRE_DATA();
  for (const char* type : kStoriesTypes) {
    size_t n = 0;
    for (const auto& s : stories_streams(type, false)) {
      round_trip(0, s);
      round_trip(kHuffLow4, s);
      n += s.size();
    }
    EXPECT_GT(n, 100000u) << type;
  }
}

TEST(Huff, EdgeCasesRoundTrip) {
  std::mt19937 rng(11);
  std::vector<std::vector<uint8_t>> inputs{{}, {7}, {0, 255}, {1, 2, 3}, std::vector<uint8_t>(100000, 9)};
  for (size_t n = 1; n < 40; ++n) {
    std::vector<uint8_t> v(n);
    for (auto& b : v) b = static_cast<uint8_t>(rng() % 5);
    inputs.push_back(v);
  }
  std::vector<uint8_t> all(256 * 40);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint8_t>(i * 7);
  inputs.push_back(all);
  std::vector<uint8_t> skew(1 << 20, 3);  // one symbol a million times, every other once
  for (int s = 0; s < 256; ++s) skew[size_t(s) * 4099] = static_cast<uint8_t>(s);
  inputs.push_back(skew);
  std::vector<uint8_t> fib;  // Fibonacci frequencies: unlimited Huffman would need 25-bit codes
  uint64_t a = 1, b = 1;
  for (int s = 0; s < 26; ++s) {
    for (uint64_t k = 0; k < a; ++k) fib.push_back(static_cast<uint8_t>(s * 9));
    const uint64_t c = a + b;
    a = b;
    b = c;
  }
  std::shuffle(fib.begin(), fib.end(), rng);
  inputs.push_back(fib);
  for (const auto& in : inputs) {
    round_trip(0, in);
    round_trip(kHuffLow4, in);
    round_trip(kHuffNibbles, in);
  }
  // Packed nibbles: every length around the 8 streams and the 4-byte groups, and bytes whose
  // two nibbles differ (the order within a byte matters).
  for (size_t n = 0; n < 300; n += (n < 80 ? 1 : 37)) {
    std::vector<uint8_t> v(n);
    for (auto& x : v) x = static_cast<uint8_t>((rng() % 6) | (rng() % 3 + 7) << 4);
    round_trip(kHuffNibbles, v);
  }
  // A constant stream costs two bytes whatever its length.
  CodecSpec spec{CodecId::huff, 0};
  EXPECT_EQ(codec_encode(spec, std::vector<uint8_t>(100000, 9)).size(), 2u);
}

TEST(Huff, NibblesRoundTripRealPackedCodesAtTheUnpackedSize) {
  DCQ_REQUIRE_DATA();
  // The packed 4-bit code field of every block tensor (block_fields) decodes straight into its
  // bytes, and costs what huff on the same codes unpacked (one per byte) costs: the symbols are
  // the same, only their order differs, and 6-bit codes lose nothing on 16-symbol alphabets.
  for (const char* type : {"Q4_0", "Q4_1", "Q4_K_M"}) {
    const Model m = read_gguf(stories_gguf(type));
    size_t packed_bytes = 0, nib_stored = 0, unpacked_stored = 0, huffman_streams = 0, tensors = 0;
    for (const auto& t : m.tensors) {
      if (!transform_applies(TransformId::block_fields_unpacked, t.type)) continue;
      auto packed = transform_split(TransformId::block_fields, t.type, t.data);
      auto unpacked = transform_split(TransformId::block_fields_unpacked, t.type, t.data);
      auto largest = [](auto& v) {
        return *std::max_element(v.begin(), v.end(), [](auto& a, auto& b) { return a.size() < b.size(); });
      };
      const auto codes = largest(packed), symbols = largest(unpacked);
      ASSERT_EQ(symbols.size(), 2 * codes.size());
      const auto enc = round_trip(kHuffNibbles, codes);
      huffman_streams += enc[0] == 1;
      CodecSpec h{CodecId::huff, 0};
      unpacked_stored += codec_encode(h, symbols).size();
      nib_stored += enc.size();
      packed_bytes += codes.size();
      ++tensors;
    }
    ASSERT_GT(packed_bytes, 50000u) << type;
    EXPECT_GT(huffman_streams, 5u) << type;
    std::printf("%s packed codes: huff-nib %zu bytes, huff on the unpacked symbols %zu\n", type, nib_stored,
                unpacked_stored);
    // 16 more bytes of stream sizes per tensor (8 streams instead of 4), plus padding.
    EXPECT_LT(double(nib_stored), 1.002 * double(unpacked_stored) + 20.0 * double(tensors)) << type;
    // Q4_0/Q4_1 codes are skewed; k-quant codes are nearly uniform (their sub-block scales and
    // mins spread them over all 16 values), so there only the overhead is bounded.
    const bool k_quant = std::string(type) == "Q4_K_M";
    EXPECT_LT(double(nib_stored), (k_quant ? 1.01 : 0.99) * double(packed_bytes)) << type;
  }
  // Any bytes at all (scales, f16 planes): exact round trips.
  for (const auto& s : stories_streams("Q4_K_M", false)) round_trip(kHuffNibbles, s);
}

TEST(Huff, LengthsAreOptimalCompleteAndLimited) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t nsym = 2 + rng() % 255;
    std::vector<uint64_t> freq(nsym);
    for (auto& f : freq) f = (rng() % 4 == 0) ? 0 : 1 + (rng() % (trial % 2 ? 1000000 : 50));
    freq[0] = std::max<uint64_t>(freq[0], 1);
    freq[1] = std::max<uint64_t>(freq[1], 1);
    const auto lens = huff::limited_lengths(freq, huff::kMaxLen);
    uint64_t kraft = 0, cost = 0;
    unsigned longest = 0;
    for (size_t s = 0; s < nsym; ++s) {
      EXPECT_EQ(lens[s] == 0, freq[s] == 0);
      if (lens[s]) kraft += uint64_t{1} << (huff::kMaxLen - lens[s]);
      cost += freq[s] * lens[s];
      longest = std::max<unsigned>(longest, lens[s]);
    }
    EXPECT_EQ(kraft, uint64_t{1} << huff::kMaxLen) << "trial " << trial;
    EXPECT_LE(longest, huff::kMaxLen);
    EXPECT_GE(cost, huffman_cost(freq));
    // Without a binding limit, package-merge is exactly Huffman.
    const auto wide = huff::limited_lengths(freq, 30);
    uint64_t wide_cost = 0;
    for (size_t s = 0; s < nsym; ++s) wide_cost += freq[s] * wide[s];
    EXPECT_EQ(wide_cost, huffman_cost(freq)) << "trial " << trial;
  }
}

TEST(Huff, CodeStreamsWithinTwoPercentOfOrder0Entropy) {
  DCQ_REQUIRE_DATA();
  // Per whole tensor (the chunks of stories260K), table overhead excluded: kind, alphabet size,
  // 4-bit lengths and 12 bytes of stream sizes = 2 + ceil(nsym/2) + 12 bytes (22 for 4-bit codes,
  // 142 for 8-bit ones) per stream, plus up to 4 bytes of stream padding.
  for (const char* type : {"Q4_0", "Q8_0"}) {
    double coded_bits = 0, h0_bits = 0;
    for (const auto& s : stories_streams(type, true)) {
      CodecSpec spec{CodecId::huff, 0};
      const auto enc = codec_encode(spec, s);
      ASSERT_EQ(enc[0], 1) << "a Huffman stream";
      const size_t table = 2 + (size_t(enc[1]) + 2) / 2 + 12;
      coded_bits += 8.0 * double(enc.size() - table);
      h0_bits += entropy_order0(s) * double(s.size());
    }
    EXPECT_GT(h0_bits, 0);
    std::printf("%s codes: huff / H0 = %.4f\n", type, coded_bits / h0_bits);
    EXPECT_LT(coded_bits, 1.02 * h0_bits) << type << ": " << coded_bits / h0_bits;
  }
}

TEST(Huff, EveryByteFlipAndTruncationIsCaughtOrHarmless) {
  DCQ_REQUIRE_DATA();
  // A small real code stream: every corruption either throws Error(integrity) or decodes to
  // some bytes of the right size (which the container's checksum then rejects).
  const auto streams = stories_streams("Q4_0", true);
  auto s = *std::min_element(streams.begin(), streams.end(), [](auto& a, auto& b) { return a.size() < b.size(); });
  std::vector<uint8_t> packed;  // the same codes packed two per byte, for huff-nib
  for (size_t i = 0; i + 1 < s.size(); i += 2) packed.push_back(static_cast<uint8_t>(s[i] | s[i + 1] << 4));
  for (uint16_t low : {uint16_t{0}, kHuffLow4, kHuffNibbles}) {
    CodecSpec spec{CodecId::huff, low};
    if (low == kHuffNibbles) s = packed;
    const auto enc = codec_encode(spec, s);
    std::vector<uint8_t> out(s.size());
    size_t thrown = 0;
    for (size_t i = 0; i < enc.size(); ++i) {
      for (uint8_t x : {uint8_t{0x01}, uint8_t{0x80}, uint8_t{0xFF}}) {
        auto bad = enc;
        bad[i] ^= x;
        try {
          codec_decode(spec, bad, out);
        } catch (const Error& e) {
          EXPECT_EQ(e.code(), ExitCode::integrity);
          ++thrown;
        }
      }
    }
    std::printf("huff-lo%u: %zu of %zu flips detected by the codec\n", unsigned(low), thrown, 3 * enc.size());
    EXPECT_GT(thrown, enc.size() / 4) << "most corruptions are detected by the codec itself";
    for (size_t n = 0; n < enc.size(); ++n) {
      auto cut = std::vector<uint8_t>(enc.begin(), enc.begin() + ptrdiff_t(n));
      EXPECT_THROW(codec_decode(spec, cut, out), Error) << "truncated to " << n;
    }
    auto longer = enc;
    longer.push_back(0);
    EXPECT_THROW(codec_decode(spec, longer, out), Error);
    std::vector<uint8_t> shorter_out(s.size() - 1);
    EXPECT_THROW(codec_decode(spec, enc, shorter_out), Error);
  }
}

TEST(Huff, ForgedHeadersAreRejected) {
  std::vector<uint8_t> in(5000);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>((i * i) % 13);
  CodecSpec spec{CodecId::huff, 0};
  const auto enc = codec_encode(spec, in);
  std::vector<uint8_t> out(in.size());
  auto expect_bad = [&](std::vector<uint8_t> bad, const char* what) {
    EXPECT_THROW(codec_decode(spec, bad, out), Error) << what;
  };
  auto b = enc;
  b[0] = 2;
  expect_bad(b, "unknown kind");
  b = enc;
  b[2] = static_cast<uint8_t>((b[2] & 0xF0) | 12);
  expect_bad(b, "length above 11");
  b = enc;
  b[2] = 0x11;  // two 1-bit codes plus others: Kraft sum above 1
  expect_bad(b, "over-full code");
  b = enc;
  for (int k = 0; k < 4; ++k) b[2 + 7 + k] = 0xFF;  // stream 0 size 4 GiB
  expect_bad(b, "stream size beyond the input");
  expect_bad({0, 1, 2}, "constant stream with a trailing byte");
  EXPECT_FALSE(codec_valid(static_cast<uint8_t>(CodecId::huff), 3));
  EXPECT_FALSE(codec_valid(5, 0));
  // Constant kind with a symbol out of range for 4 raw low bits.
  std::vector<uint8_t> const_lo = {0, 16};
  const_lo.resize(2 + out.size() / 2);
  EXPECT_THROW(codec_decode({CodecId::huff, kHuffLow4}, const_lo, out), Error);

  // Packed nibbles: 16 symbols at most, codes of at most 6 bits, 8 streams (7 sizes).
  const CodecSpec nib{CodecId::huff, kHuffNibbles};
  CodecSpec nib_enc = nib;
  const auto e = codec_encode(nib_enc, in);
  ASSERT_EQ(e[0], 1);
  ASSERT_EQ(e[1], 12);  // symbols 0..12
  codec_decode(nib, e, out);
  EXPECT_EQ(out, in);
  auto expect_bad_nib = [&](std::vector<uint8_t> bad, const char* what) {
    EXPECT_THROW(codec_decode(nib, bad, out), Error) << what;
  };
  b = e;
  b[2] = static_cast<uint8_t>((b[2] & 0xF0) | 7);
  expect_bad_nib(b, "length 7 above the nibble limit 6");
  b = e;
  b[1] = 16;
  expect_bad_nib(b, "17 symbols");
  b = e;
  b[2 + 7 + 4 * 6 + 3] = 0x80;  // stream 6 size 2 GiB
  expect_bad_nib(b, "stream size beyond the input");
  b = e;
  b.erase(b.begin() + 9);  // one size byte less: every stream shifts
  expect_bad_nib(b, "shifted streams");
  expect_bad_nib({0, 16}, "constant symbol 16");
  expect_bad_nib({0, 5, 0}, "constant stream with a trailing byte");
  std::vector<uint8_t> five(out.size(), 0x55);
  codec_decode(nib, std::vector<uint8_t>{0, 5}, out);
  EXPECT_EQ(out, five) << "constant kind: both nibbles of every byte";
  for (uint16_t p : {uint16_t{0x101}, uint16_t{0x200}, uint16_t{0x104}, uint16_t{8}})
    EXPECT_FALSE(codec_valid(static_cast<uint8_t>(CodecId::huff), p)) << p;
  EXPECT_THROW(codec_decode({CodecId::huff, 0x101}, e, out), Error);
}

TEST(Huff, ModelledSpeedGrowsWithShorterCodes) {
  const CodecSpec h{CodecId::huff, 0};
  EXPECT_GT(codec_decode_speed(h, 38, 80), 2.0 * codec_decode_speed(h, 77, 80));
  EXPECT_GE(codec_decode_speed(h, 80, 80), 0.9e9);
  EXPECT_EQ(codec_name({CodecId::huff, kHuffLow4}), "huff-lo4");
  // Packed nibbles: one lookup per byte whatever the code lengths, faster than unpacked 4-bit
  // symbols (two output bytes each) at the same bits.
  const CodecSpec nib{CodecId::huff, kHuffNibbles};
  EXPECT_EQ(codec_name(nib), "huff-nib");
  EXPECT_EQ(codec_decode_speed(nib, 76, 80), codec_decode_speed(nib, 40, 80));
  EXPECT_GT(codec_decode_speed(nib, 76, 80), 0.5 * codec_decode_speed(h, 38, 80));
}
