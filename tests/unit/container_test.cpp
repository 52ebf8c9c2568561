// The .dcq container: byte-exact round trips of every shared GGUF, and fault detection — every
// single-byte flip in header, payloads, padding, index and footer is reported, truncation at any
// length is a clean error, and a newer format version is refused by name.
#include <gtest/gtest.h>

#include <cstring>

#include "dcq/compress.hpp"
#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/io.hpp"
#include "pipeline/compress_internal.hpp"
#include "container_test_support.hpp"
#include "test_support.hpp"

using namespace dcq;
using dcq::test::TempDir;

namespace {

nlohmann::json compress_to(const std::filesystem::path& in, const std::filesystem::path& out, int threads = 2) {
  CompressOptions o;
  o.input = in;
  o.output = out;
  o.level = 3;  // fast for tests; the codec choice logic is the same
  o.threads = threads;
  o.force = true;
  return compress(o);
}

void round_trip(const std::filesystem::path& gguf, const TempDir& tmp) {
  const auto dcq_path = tmp / "m.dcq", back = tmp / "m.gguf";
  compress_to(gguf, dcq_path);
  verify({dcq_path, 2});
  DecompressOptions d;
  d.input = dcq_path;
  d.output = back;
  d.force = true;
  d.threads = 2;
  decompress(d);
  const auto a = test::slurp(gguf), b = test::slurp(back);
  ASSERT_EQ(a.size(), b.size()) << gguf;
  EXPECT_TRUE(a == b) << gguf << " does not round-trip byte for byte";
}

using test::check_bytes;
using test::rehash_header_and_footer;

struct Regions {
  uint64_t index_offset, index_size, size;
};
Regions regions(const std::vector<uint8_t>& b) {
  Regions r{};
  r.size = b.size();
  std::memcpy(&r.index_offset, b.data() + b.size() - 64, 8);
  std::memcpy(&r.index_size, b.data() + b.size() - 56, 8);
  return r;
}

// A stories260K Q4_0 container shared by the fault tests (compressed once).
const std::vector<uint8_t>& sample_container() {
  static const std::vector<uint8_t> bytes = [] {
    TempDir tmp;
    compress_to(test::model_path("stories260K/stories260K-Q4_0.gguf"), tmp / "s.dcq");
    return test::slurp(tmp / "s.dcq");
  }();
  return bytes;
}


}  // namespace

TEST(Container, StoriesGgufsRoundTripByteForByte) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  for (auto t : test::kStoriesTypes) round_trip(test::stories_gguf(t), tmp);
}

TEST(Container, Synth256GgufsRoundTripByteForByte) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  for (auto t : test::kSynthTypes) round_trip(test::synth_gguf(t), tmp);
}

TEST(Container, SafetensorsFilesRoundTripByteForByte) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  for (auto f : {"stories260K-hf-f32/model.safetensors", "stories260K-hf-bf16/model.safetensors",
                 "stories260K-hf-sharded/model-00001-of-00002.safetensors"})
    round_trip(test::model_path(f), tmp);
  const auto r = DcqReader::open(tmp / "m.dcq");
  EXPECT_EQ(r.index().source_format, DcqSourceFormat::safetensors);
}

TEST(Container, BeatsXzOnStoriesAndStoresDuplicatesOnce) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  // xz -9e ratios measured on these files (docs/benchmarks.md); the default settings must beat them.
  const std::pair<const char*, double> xz[] = {{"F32", 1.252}, {"BF16", 1.650}, {"Q8_0", 1.251}, {"Q4_0", 1.215}, {"Q4_K_M", 1.179}};
  for (auto [t, ratio] : xz) {
    CompressOptions o;
    o.input = test::model_path(std::string("stories260K/stories260K-") + t + ".gguf");
    o.output = tmp / "m.dcq";
    o.force = true;
    o.threads = 2;
    const auto j = compress(o);
    EXPECT_GT(j["ratio"].get<double>(), ratio) << t;
  }
  // synth256 ties token_embd and output only in the F32 file? stories' F32 output.weight is a copy
  // of the tied embedding: it must be stored once.
  const auto j = compress_to(test::model_path("stories260K/stories260K-F32.gguf"), tmp / "f.dcq");
  EXPECT_GE(j["duplicates"].get<int>(), 1);
}

// The speed floor is a promise about what a reader measures (dcq verify: both XXH3 checksums,
// every stream's codec, the join). Recomputed here from the payload bytes alone, with the same
// fixed model the chooser uses, for every chunk >= 64 KiB of real Q8_0/Q4_0 tensors encoded with
// the defaults: it must fit the default floor's budget, and the codes must still be entropy coded
// (all-raw would trivially fit). Deterministic: a model, not a timing.
TEST(Container, DefaultChunksFitTheDecodeFloorWithChecksumsCounted) {
  DCQ_REQUIRE_DATA();
  const ChunkEncodeOptions defaults;
  EXPECT_EQ(defaults.min_decode_speed, CompressOptions{}.min_decode_speed_gbps * 1e9);
  EXPECT_GE(defaults.min_decode_speed, 1.5e9);  // issue 3's target is the default
  for (const char* type : {"Q8_0", "Q4_0"}) {
    const Model m = load_model(test::synth_gguf(type));
    size_t checked = 0;
    for (const auto& t : m.tensors) {
      if (t.data.size() < 64 * 1024 || (t.type != GgmlType::Q8_0 && t.type != GgmlType::Q4_0)) continue;
      // The first 256 KiB of whole rows, as compress cuts a chunk.
      const size_t row = t.data.size() / size_t(t.n_rows());
      const auto rows = t.data.subspan(0, std::min<size_t>(t.data.size(), 262144 / row * row));
      const auto e = encode_chunk(t.type, rows, defaults);
      double seconds = transform_join_cost(e.transform) * double(rows.size()) +
                       checksum_seconds(e.payload.size(), rows.size());
      for (const auto& s : parse_payload(t.type, e.transform, e.payload, rows.size()))
        seconds += codec_decode_seconds(s.codec, s.stored_size, s.raw_size);
      const double budget = double(rows.size()) / defaults.min_decode_speed;
      EXPECT_LE(seconds, budget) << type << " " << t.name << ": modelled " << double(rows.size()) / seconds / 1e9
                                 << " GB/s";
      EXPECT_NEAR(seconds, e.modelled_decode_seconds, 1e-9) << t.name;
      EXPECT_LT(double(e.payload.size()), 0.985 * double(rows.size())) << type << " " << t.name << " left raw";
      std::vector<uint8_t> back(rows.size());
      decode_payload(t.type, e.transform, e.payload, back);
      EXPECT_TRUE(std::equal(back.begin(), back.end(), rows.begin())) << t.name;
      ++checked;
    }
    EXPECT_GE(checked, 3u) << type;
  }
}

TEST(Container, OutputIsIdenticalForAnyThreadCount) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  const auto in = test::model_path("synth256/synth256-Q4_K_M.gguf");
  compress_to(in, tmp / "a.dcq", 1);
  compress_to(in, tmp / "b.dcq", 2);
  compress_to(in, tmp / "c.dcq", 5);
  const auto a = test::slurp(tmp / "a.dcq");
  EXPECT_TRUE(a == test::slurp(tmp / "b.dcq"));
  EXPECT_TRUE(a == test::slurp(tmp / "c.dcq"));
}

TEST(Container, SampleIsSound) {
  DCQ_REQUIRE_DATA();
  EXPECT_EQ(check_bytes(sample_container()), 0);
}

TEST(Container, EveryHeaderAndFooterByteFlipIsDetected) {
  DCQ_REQUIRE_DATA();
  const auto& good = sample_container();
  for (size_t pos = 0; pos < 32; ++pos) {
    auto b = good;
    b[pos] ^= 0x01;
    const int rc = check_bytes(b);
    EXPECT_EQ(rc, pos < 4 ? 3 : 4) << "header byte " << pos;
  }
  for (size_t k = 0; k < 64; ++k) {
    auto b = good;
    const size_t pos = b.size() - 64 + k;
    b[pos] ^= 0x80;
    const int rc = check_bytes(b);
    EXPECT_EQ(rc, k >= 56 ? 3 : 4) << "footer byte " << k;
  }
}

TEST(Container, EveryIndexByteFlipIsDetected) {
  DCQ_REQUIRE_DATA();
  const auto& good = sample_container();
  const auto r = regions(good);
  for (uint64_t pos = r.index_offset; pos < r.index_offset + r.index_size; ++pos) {
    auto b = good;
    b[pos] ^= 0x10;
    EXPECT_EQ(check_bytes(b), 4) << "index byte " << pos;
  }
}

TEST(Container, PayloadAndPaddingByteFlipsAreDetected) {
  DCQ_REQUIRE_DATA();
  const auto& good = sample_container();
  const auto r = regions(good);
  // Every byte of the first 4 KiB (first payloads and their padding), then a stride over the rest.
  size_t tested = 0;
  for (uint64_t pos = 32; pos < r.index_offset; pos += (pos < 4096 ? 1 : 61)) {
    auto b = good;
    b[pos] ^= 0xFF;
    const int rc = check_bytes(b);
    EXPECT_EQ(rc, 4) << "payload byte " << pos;
    ++tested;
  }
  EXPECT_GT(tested, 5000u);
}

TEST(Container, TruncationAtAnyLengthIsACleanError) {
  DCQ_REQUIRE_DATA();
  const auto& good = sample_container();
  for (size_t len = 0; len < good.size(); len += (len < 200 || len > good.size() - 200 ? 1 : 997)) {
    std::vector<uint8_t> b(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    EXPECT_EQ(check_bytes(b), 3) << "truncated to " << len;
  }
  auto longer = good;
  longer.push_back(0);
  EXPECT_EQ(check_bytes(longer), 3);
}

TEST(Container, NewerFormatVersionIsRefusedByName) {
  DCQ_REQUIRE_DATA();
  auto b = sample_container();
  const uint32_t v = kDcqNewestFormatVersion + 1;
  std::memcpy(b.data() + 4, &v, 4);
  std::memcpy(b.data() + b.size() - 64 + 32, &v, 4);
  rehash_header_and_footer(b);
  try {
    DcqReader::parse(b, "new.dcq");
    FAIL() << "a newer version was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::bad_input);
    EXPECT_NE(std::string(e.what()).find("format version " + std::to_string(v) + " is newer"), std::string::npos) << e.what();
  }
}

// Ordinary files stay version 2 (readable by a dcq that predates row_groups); version 3 is
// written only with a row_groups chunk (tests/unit/row_groups_test.cpp).
TEST(Container, OrdinaryFilesAreVersion2) {
  DCQ_REQUIRE_DATA();
  EXPECT_EQ(DcqReader::parse(sample_container(), "t.dcq").format_version(), 2u);
  EXPECT_EQ(kDcqFormatVersion, 2u);
  EXPECT_EQ(kDcqNewestFormatVersion, 3u);
}

TEST(Container, CorruptChunkErrorNamesTensorAndChunk) {
  DCQ_REQUIRE_DATA();
  auto b = sample_container();
  const auto r = DcqReader::parse(b, "t.dcq");
  const auto& c = r.index().chunks[5];
  b[c.offset + c.stored_size / 2] ^= 0x01;
  try {
    rebuild_source(DcqReader::parse(b, "t.dcq"), 1, [](std::span<const uint8_t>) {});
    FAIL() << "corruption not detected";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::integrity);
    const std::string msg = e.what();
    EXPECT_NE(msg.find("tensor '" + r.index().tensors[c.tensor].name + "' chunk 5"), std::string::npos) << msg;
  }
}
