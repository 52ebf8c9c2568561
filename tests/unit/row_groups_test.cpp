// Transform 4, row_groups (docs/format.md, "Transform 4"): its stream is byte for byte the layout
// kernels::interleave_rows writes (the loader hands it to the kernels as is), it round-trips, the
// reader refuses forged uses of it with the right exit code, and `dcq plan --repack` writes it for
// the streamed Q8_0 / Q4_0 matrices of a real model, which then still decompresses bit-exactly.
#include <gtest/gtest.h>

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <random>

#include "dcq/codec.hpp"
#include "dcq/compress.hpp"
#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "dcq/io.hpp"
#include "dcq/kernels.hpp"
#include "dcq/loader.hpp"
#include "pipeline/compress_internal.hpp"
#include "container_test_support.hpp"
#include "test_support.hpp"

using namespace dcq;
using dcq::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(rng());
  return v;
}

size_t block_bytes(GgmlType t) { return t == GgmlType::Q8_0 ? 34 : 18; }

using test::check_bytes;
using test::rehash_header_and_footer;

// A handcrafted single-tensor container: `rows` x `width` of `type` with random bytes, cut into
// chunks starting at `starts` (row numbers, first 0), each stored as one raw stream under
// `transform` (the stream split from the plain rows when the transform applies, else the plain
// rows). `raw_size_delta` forges the payload's stream raw size (the checksums stay right).
struct Forge {
  GgmlType type = GgmlType::Q8_0;
  int64_t width = 64, rows = 37;
  std::vector<uint64_t> starts = {0};
  TransformId transform = TransformId::row_groups;
  uint32_t version = kDcqRowGroupsVersion;
  int64_t raw_size_delta = 0;
};

std::vector<uint8_t> forge(const fs::path& path, const Forge& f) {
  const uint64_t row = *row_bytes(f.type, f.width);
  const auto data = random_bytes(row * uint64_t(f.rows), 7);
  DcqIndex ix;
  ix.source_format = DcqSourceFormat::gguf;
  ix.source_size = data.size();
  ix.source_xxh3 = xxh3(data);
  DcqTensor t;
  t.name = "blk.0.ffn_up.weight";
  t.type = f.type;
  t.ne = {f.width, f.rows};
  t.n_bytes = data.size();
  t.n_chunks = uint32_t(f.starts.size());
  ix.tensors.push_back(t);
  ix.segments.push_back({DcqSegment::tensor, 0, 0});
  DcqWriter w(path, true, f.version);
  const std::string meta = "{\"format\":\"dcq\"}";
  const std::span<const uint8_t> meta_bytes(reinterpret_cast<const uint8_t*>(meta.data()), meta.size());
  ix.metadata = {{CodecId::raw, 0}, w.write_payload(meta_bytes), meta.size(), meta.size(), xxh3(meta_bytes),
                 xxh3(meta_bytes)};
  ix.extras = {{CodecId::raw, 0}, w.write_payload({}), 0, 0, xxh3({}), xxh3({})};
  for (size_t k = 0; k < f.starts.size(); ++k) {
    const uint64_t r0 = f.starts[k], r1 = k + 1 < f.starts.size() ? f.starts[k + 1] : uint64_t(f.rows);
    const std::span<const uint8_t> plain(data.data() + r0 * row, (r1 - r0) * row);
    const auto stream = transform_applies(f.transform, f.type) ? transform_split(f.transform, f.type, plain, f.width)[0]
                                                               : std::vector<uint8_t>(plain.begin(), plain.end());
    std::vector<uint8_t> payload = {1, 0, uint8_t(CodecId::raw), 0, 0, 0};
    const uint32_t stored = uint32_t(stream.size()), raw = uint32_t(int64_t(stream.size()) + f.raw_size_delta);
    for (uint32_t x : {stored, raw})
      for (int i = 0; i < 4; ++i) payload.push_back(uint8_t(x >> (8 * i)));
    payload.insert(payload.end(), stream.begin(), stream.end());
    DcqChunk c;
    c.tensor = 0;
    c.transform = f.transform;
    c.codec = CodecId::raw;
    c.n_streams = 1;
    c.row_begin = r0;
    c.row_count = r1 - r0;
    c.offset = w.write_payload(payload);
    c.stored_size = payload.size();
    c.xxh3_stored = xxh3(payload);
    c.xxh3_decoded = xxh3(plain);
    ix.chunks.push_back(c);
  }
  w.finish(ix);
  return test::slurp(path);
}


// stories260K `type` compressed losslessly into dir/m.dcq.
fs::path lossless_dcq(const TempDir& dir, const std::string& type) {
  CompressOptions o;
  o.input = test::stories_gguf(type.c_str());
  o.output = dir / (type + ".dcq");
  o.level = 3;
  o.threads = 2;
  o.force = true;
  compress(o);
  return o.output;
}

}  // namespace

// The normative byte positions, checked on one group-column independently of any implementation.
TEST(RowGroups, StreamFollowsTheFormatsBytePositions) {
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    const size_t B = block_bytes(type), P = (B - 2) / 4, nb = 3, R = 21;
    const auto plain = random_bytes(R * nb * B, 1);
    const auto s = transform_split(TransformId::row_groups, type, plain, int64_t(nb * 32))[0];
    ASSERT_EQ(s.size(), plain.size());
    for (size_t b = 0; b < nb; ++b)
      for (size_t j = 0; j < 16; ++j) {
        const size_t blk = (j * nb + b) * B, col = b * 16 * B;
        EXPECT_EQ(s[col + 2 * j], plain[blk]);
        EXPECT_EQ(s[col + 2 * j + 1], plain[blk + 1]);
        for (size_t c = 0; c < P; ++c)
          for (size_t k = 0; k < 4; ++k) EXPECT_EQ(s[col + 32 + (c * 16 + j) * 4 + k], plain[blk + 2 + 4 * c + k]);
      }
    // Rows 16..20 stay plain where they were.
    EXPECT_TRUE(std::equal(s.begin() + 16 * nb * B, s.end(), plain.begin() + 16 * nb * B));
  }
}

// The stream is exactly what the kernels' interleave_rows writes, for whole groups, remainders,
// fewer rows than a group, one block per row and a wide row; join undoes split.
TEST(RowGroups, SplitIsInterleaveRowsAndJoinUndoesIt) {
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0})
    for (int64_t R : {1, 15, 16, 17, 37, 64})
      for (int64_t W : {32, 288 * 32}) {
        const auto plain = random_bytes(size_t(R) * size_t(W / 32) * block_bytes(type), uint32_t(R * 7 + W));
        std::vector<uint8_t> oracle(plain.size());
        kernels::interleave_rows(type, R, W, plain.data(), oracle.data());
        const auto streams = transform_split(TransformId::row_groups, type, plain, W);
        ASSERT_EQ(streams.size(), 1u);
        EXPECT_EQ(transform_stream_sizes(TransformId::row_groups, type, plain.size()),
                  std::vector<size_t>{plain.size()});
        EXPECT_TRUE(streams[0] == oracle) << type_name(type) << " R=" << R << " W=" << W;
        if (R >= 16) {
          EXPECT_FALSE(streams[0] == plain) << "a real permutation";
        }
        std::vector<uint8_t> back(plain.size());
        transform_join(TransformId::row_groups, type, {std::span<const uint8_t>(streams[0])}, back, W);
        EXPECT_TRUE(back == plain) << type_name(type) << " R=" << R << " W=" << W;
      }
  EXPECT_TRUE(transform_applies(TransformId::row_groups, GgmlType::Q8_0));
  EXPECT_TRUE(transform_applies(TransformId::row_groups, GgmlType::Q4_0));
  for (GgmlType t : {GgmlType::F16, GgmlType::F32, GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::IQ4_NL})
    EXPECT_FALSE(transform_applies(TransformId::row_groups, t)) << type_name(t);
  EXPECT_EQ(transform_name(TransformId::row_groups), "row_groups");
}

// Compress never picks the layout transform by itself: on real Q8_0 / Q4_0 rows the chosen
// transform is one of the compression transforms.
TEST(RowGroups, CompressDoesNotChooseIt) {
  // The chooser (and analyze) try ids 0..kTransformCount-1 only; the reader accepts one more.
  EXPECT_GE(uint8_t(TransformId::row_groups), kTransformCount);
  EXPECT_LT(uint8_t(TransformId::row_groups), kTransformIdCount);
  DCQ_REQUIRE_DATA();
  for (const char* type : {"Q8_0", "Q4_0"}) {
    const Model m = load_model(test::stories_gguf(type));
    for (const auto& t : m.tensors) {
      if (t.type != GgmlType::Q8_0 && t.type != GgmlType::Q4_0) continue;
      const auto e = encode_chunk(t.type, t.data, ChunkEncodeOptions{});
      EXPECT_LT(uint8_t(e.transform), kTransformCount) << t.name;
    }
  }
}

TEST(RowGroups, HandcraftedContainerDecodesToPlainRows) {
  TempDir tmp;
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0}) {
    Forge f;
    f.type = type;
    f.starts = {0, 32};  // 32 rows in two groups, then the 5 remaining plain rows
    const auto b = forge(tmp / "ok.dcq", f);
    EXPECT_EQ(check_bytes(b), 0);
    const auto r = DcqReader::parse(b, "ok.dcq");
    EXPECT_EQ(r.format_version(), 3u);
    std::vector<uint8_t> out(r.index().chunks[0].decoded_size);
    r.decode_chunk(0, out);  // checks xxh3_decoded: the plain rows
  }
}

TEST(RowGroups, ForgedUsesAreBadInputAndCorruptionIsIntegrity) {
  TempDir tmp;
  const auto p = tmp / "f.dcq";
  std::string msg;
  auto has = [&](const char* what) { return msg.find(what) != std::string::npos; };
  {  // on an F16 tensor
    Forge f;
    f.type = GgmlType::F16;
    EXPECT_EQ(check_bytes(forge(p, f), &msg), 3);
    EXPECT_TRUE(has("invalid transform 4")) << msg;
  }
  {  // a chunk starting at row 8
    Forge f;
    f.starts = {0, 8};
    EXPECT_EQ(check_bytes(forge(p, f), &msg), 3);
    EXPECT_TRUE(has("starts at row 8, not a multiple of 16")) << msg;
    f.starts = {0, 16};
    EXPECT_EQ(check_bytes(forge(p, f)), 0);
  }
  {  // the payload's stream is one block short of the chunk, checksums right
    Forge f;
    f.raw_size_delta = -34;
    EXPECT_EQ(check_bytes(forge(p, f), &msg), 3);
    EXPECT_TRUE(has("wrong raw size")) << msg;
  }
  {  // transform 4 in a file that says version 2
    auto b = forge(p, Forge{});
    const uint32_t v = 2;
    std::memcpy(b.data() + 4, &v, 4);
    std::memcpy(b.data() + b.size() - 64 + 32, &v, 4);
    rehash_header_and_footer(b);
    EXPECT_EQ(check_bytes(b, &msg), 3);
    EXPECT_TRUE(has("needs format version 3")) << msg;
  }
  {  // a flipped byte of the interleaved rows
    const auto good = forge(p, Forge{});
    const auto r = DcqReader::parse(good, "f.dcq");
    const auto& c = r.index().chunks[0];
    for (uint64_t at : {c.offset, c.offset + 14, c.offset + c.stored_size / 2, c.offset + c.stored_size - 1}) {
      auto b = good;
      b[at] ^= 0x20;
      EXPECT_EQ(check_bytes(b), 4) << at;
    }
  }
}

// Writes the container fuzz target's row_groups seeds (run with --gtest_also_run_disabled_tests):
// a sound one, a Q4_0 tensor of 37 rows in a row_groups chunk of 32 rows (2 groups) and one of
// the 5 rest, and two forged ones the reader refuses (a chunk at row 8; an F16 tensor).
TEST(RowGroups, DISABLED_WriteFuzzCorpusSeed) {
  const auto dir = test::source_dir() / "tests/fuzz/corpus/container";
  Forge f;
  f.type = GgmlType::Q4_0;
  f.starts = {0, 32};
  forge(dir / "row_groups.dcq", f);
  f.starts = {0, 8};
  forge(dir / "row_groups_row8.dcq", f);
  Forge h;
  h.type = GgmlType::F16;
  forge(dir / "row_groups_f16.dcq", h);
}

// The container fuzz target's row_groups seed stays a sound file (and stays small).
TEST(RowGroups, FuzzCorpusSeedIsSound) {
  const auto seed = test::source_dir() / "tests/fuzz/corpus/container/row_groups.dcq";
  const auto b = test::slurp(seed);
  ASSERT_FALSE(b.empty()) << seed;
  EXPECT_LT(b.size(), 16384u);
  EXPECT_EQ(check_bytes(b), 0);
  const auto r = DcqReader::parse(b, "seed.dcq");
  EXPECT_EQ(r.index().chunks[0].transform, TransformId::row_groups);
  for (const char* forged : {"row_groups_row8.dcq", "row_groups_f16.dcq"})
    EXPECT_EQ(check_bytes(test::slurp(seed.parent_path() / forged)), 3) << forged;
}

// repack_raw with interleave on real stories260K Q8_0 / Q4_0 containers, every tensor chosen: the
// matrices become one row_groups chunk whose stored rows are interleave_rows of the GGUF's
// tensor, token_embd.weight stays plain, the file is version 3, and decompressing it gives the
// source GGUF back bit for bit. Without interleave the file stays version 2 with no row_groups.
TEST(RowGroups, RepackOfRealModelsRoundTrips) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  for (const std::string type : {"Q8_0", "Q4_0"}) {
    const auto dcq = lossless_dcq(tmp, type);
    const Model src = load_model(test::stories_gguf(type.c_str()));
    std::vector<std::string> all;
    for (const auto& t : src.tensors) all.push_back(t.name);
    const auto out = tmp / (type + "-rg.dcq");
    const auto rep = repack_raw(dcq, out, all, true, true, true);
    const auto r = DcqReader::open(out);
    EXPECT_EQ(r.format_version(), 3u);
    // The tensor whose bytes serve the embedding lookup stays plain: in stories260K the tied
    // token_embd.weight is a duplicate of output.weight, which therefore keeps plain rows.
    const auto& tensors = r.index().tensors;
    std::string embedding;
    for (const auto& t : tensors)
      if (t.name == "token_embd.weight")
        embedding = t.duplicate_of == kDcqNoDuplicate ? t.name : tensors[t.duplicate_of].name;
    EXPECT_FALSE(embedding.empty());
    uint64_t grouped = 0;
    for (const auto& t : tensors) {
      if (t.n_chunks == 0) continue;
      const auto& c = r.index().chunks[t.first_chunk];
      const bool expect = (t.type == GgmlType::Q8_0 || t.type == GgmlType::Q4_0) && t.n_rows() >= 16 &&
                          t.name != embedding;
      EXPECT_EQ(c.transform == TransformId::row_groups, expect) << type << " " << t.name;
      if (c.transform != TransformId::row_groups) continue;
      ++grouped;
      ASSERT_EQ(t.n_chunks, 1u) << t.name;
      EXPECT_EQ(c.n_streams, 1u);
      EXPECT_EQ(c.stored_size, 14 + c.decoded_size);
      const Tensor& g = *src.find_tensor(t.name);
      std::vector<uint8_t> oracle(g.data.size());
      kernels::interleave_rows(g.type, int64_t(t.n_rows()), t.ne[0], g.data.data(), oracle.data());
      const auto rows = r.stored(c).subspan(14);
      EXPECT_TRUE(std::equal(rows.begin(), rows.end(), oracle.begin(), oracle.end())) << t.name;
    }
    EXPECT_GE(grouped, 7u) << type;  // 5 layers x 7 matrices in stories260K, at least the big ones
    EXPECT_EQ(rep["row_group_chunks"].get<uint64_t>(), grouped);
    // dcq decompress and dcq inspect (the CLI) on the repacked file.
    const auto back = tmp / (type + "-back.gguf");
    const auto d = test::run_dcq("decompress " + out.string() + " -o " + back.string() + " --force");
    ASSERT_EQ(d.exit_code, 0) << d.err;
    EXPECT_TRUE(test::slurp(back) == test::slurp(test::stories_gguf(type.c_str()))) << type;
    const auto in = test::run_dcq("inspect --json " + out.string());
    EXPECT_EQ(in.exit_code, 0) << in.err;
    EXPECT_NE(in.out.find("row_groups"), std::string::npos);

    const auto plain = tmp / (type + "-plain.dcq");
    const auto rep2 = repack_raw(dcq, plain, all, true, true, false);
    EXPECT_EQ(rep2["row_group_chunks"].get<uint64_t>(), 0u);
    const auto r2 = DcqReader::open(plain);
    EXPECT_EQ(r2.format_version(), 2u);
    for (const auto& c : r2.index().chunks) EXPECT_NE(c.transform, TransformId::row_groups);
    // Repacking the interleaved file again with plain rows undoes the layout.
    const auto again = tmp / (type + "-again.dcq");
    repack_raw(out, again, all, true, true, false);
    EXPECT_EQ(DcqReader::open(again).format_version(), 2u);
    EXPECT_TRUE(test::slurp(again) == test::slurp(plain)) << type;
  }
}

// `dcq plan --repack` interleaves by default, `--plain-rows` and `--all-raw` keep plain rows.
TEST(RowGroups, PlanRepackCliDefaultsToRowGroups) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  const auto dcq = lossless_dcq(tmp, "Q8_0");
  auto plan = [&](const std::string& flags, const fs::path& out) {
    const auto res = test::run_dcq("plan " + dcq.string() + " --mem-budget 40% --json --repack " + out.string() +
                                   " " + flags);
    EXPECT_EQ(res.exit_code, 0) << res.err;
    return nlohmann::json::parse(res.out)["repack"];
  };
  const auto a = plan("", tmp / "a.dcq");
  EXPECT_GT(a["row_group_chunks"].get<uint64_t>(), 0u);
  EXPECT_EQ(DcqReader::open(tmp / "a.dcq").format_version(), 3u);
  const auto b = plan("--plain-rows", tmp / "b.dcq");
  EXPECT_EQ(b["row_group_chunks"].get<uint64_t>(), 0u);
  EXPECT_EQ(DcqReader::open(tmp / "b.dcq").format_version(), 2u);
  const auto c = plan("--all-raw", tmp / "c.dcq");
  EXPECT_EQ(c["row_group_chunks"].get<uint64_t>(), 0u);
  const auto v = test::run_dcq("verify " + (tmp / "a.dcq").string());
  EXPECT_EQ(v.exit_code, 0) << v.err;
  const auto bad = test::run_dcq("plan " + dcq.string() + " --mem-budget 40% --plain-rows");
  EXPECT_EQ(bad.exit_code, 2);
}
