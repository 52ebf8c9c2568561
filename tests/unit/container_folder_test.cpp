// Folder containers (format version 2): a Hugging Face folder compressed as one .dcq is rebuilt
// file for file, byte for byte; corruption anywhere (a verbatim file, a tensor payload) is exit 4
// and leaves no output folder; a forged file name that would leave the output folder is refused;
// `dcq run` sees the same tensors as from the folder; `analyze` reads folders, files and .dcq.
#include <gtest/gtest.h>

#include <xxhash.h>

#include <cstring>
#include <fstream>

#include "dcq/compress.hpp"
#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "dcq/io.hpp"
#include "dcq/loader.hpp"
#include "test_support.hpp"

using namespace dcq;
using dcq::test::TempDir;
namespace fs = std::filesystem;

namespace {

fs::path model_dir(const std::string& name) { return test::data_dir() / "models" / name; }

nlohmann::json compress_dir(const fs::path& in, const fs::path& out) {
  CompressOptions o;
  o.input = in;
  o.output = out;
  o.level = 3;
  o.threads = 2;
  o.force = true;
  return compress(o);
}

// Every regular file of `a` equals the same-named file of `b`, and b has no other file.
void expect_same_folder(const fs::path& a, const fs::path& b) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(a)) {
    if (!e.is_regular_file()) continue;
    ++n;
    const auto other = b / e.path().filename();
    ASSERT_TRUE(fs::exists(other)) << other;
    EXPECT_TRUE(test::slurp(e.path()) == test::slurp(other)) << e.path().filename() << " differs";
  }
  size_t m = 0;
  for (const auto& e : fs::directory_iterator(b)) m += e.is_regular_file();
  EXPECT_EQ(n, m);
  EXPECT_GT(n, 0u);
}

std::string q(const fs::path& p) {
  std::string s = "'";  // (built with append: GCC 12 warns falsely on "'" + str)
  s.append(p.string());
  s.push_back('\'');
  return s;
}

// Rewrites the index of a container (stored raw after `edit`) and fixes the footer, so a forged
// index passes every checksum and only the structural checks can refuse it.
std::vector<uint8_t> forge_index(std::vector<uint8_t> bytes, const std::function<void(std::vector<uint8_t>&)>& edit) {
  auto get64 = [&](size_t at) {
    uint64_t x;
    std::memcpy(&x, bytes.data() + at, 8);
    return x;
  };
  const size_t f = bytes.size() - kDcqFooterSize;
  const uint64_t ix_off = get64(f), ix_size = get64(f + 8), raw_size = get64(f + 40);
  CodecSpec codec{static_cast<CodecId>(bytes[f + 36]), 0};
  std::memcpy(&codec.param, bytes.data() + f + 38, 2);
  std::vector<uint8_t> raw(raw_size);
  codec_decode(codec, std::span<const uint8_t>(bytes).subspan(ix_off, ix_size), raw);
  edit(raw);
  std::vector<uint8_t> footer(bytes.begin() + int64_t(f), bytes.end());
  bytes.resize(ix_off);
  bytes.insert(bytes.end(), raw.begin(), raw.end());
  auto put64 = [&](size_t at, uint64_t x) { std::memcpy(footer.data() + at, &x, 8); };
  put64(8, raw.size());
  put64(16, xxh3(raw));
  put64(24, bytes.size() + kDcqFooterSize);
  footer[36] = 0;  // raw index
  footer[38] = footer[39] = 0;
  put64(40, raw.size());
  put64(48, xxh3(std::span<const uint8_t>(footer).first(48)));
  bytes.insert(bytes.end(), footer.begin(), footer.end());
  return bytes;
}

void replace_all(std::vector<uint8_t>& v, const std::string& from, const std::string& to) {
  ASSERT_EQ(from.size(), to.size());
  size_t hits = 0;
  for (size_t i = 0; i + from.size() <= v.size(); ++i)
    if (std::memcmp(v.data() + i, from.data(), from.size()) == 0) {
      std::memcpy(v.data() + i, to.data(), to.size());
      ++hits;
    }
  ASSERT_GT(hits, 0u) << from;
}

// A tiny Hugging Face-like folder: config.json and two one-tensor shards (small enough for the
// fuzz corpus).
void write_tiny_folder(const fs::path& dir) {
  fs::create_directories(dir);
  const std::string cfg = "{\"model_type\": \"llama\"}\n";
  test::spit(dir / "config.json", std::vector<uint8_t>(cfg.begin(), cfg.end()));
  for (int k = 1; k <= 2; ++k) {
    std::string h = "{\"t" + std::to_string(k) + "\":{\"dtype\":\"BF16\",\"shape\":[4,8],\"data_offsets\":[0,64]}}";
    while ((8 + h.size()) % 8 != 0) h.push_back(' ');
    std::vector<uint8_t> b(8);
    const uint64_t n = h.size();
    std::memcpy(b.data(), &n, 8);
    b.insert(b.end(), h.begin(), h.end());
    for (int i = 0; i < 32; ++i) {  // small bf16 values: a compressible exponent byte
      b.push_back(uint8_t(i * 7 + k));
      b.push_back(uint8_t(0x3c + (i % 3)));
    }
    test::spit(dir / ("model-0000" + std::to_string(k) + "-of-00002.safetensors"), b);
  }
}

}  // namespace

TEST(ContainerFolder, ShardedFolderRoundTripsByteForByte) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  const auto in = model_dir("stories260K-hf-sharded");
  const auto j = compress_dir(in, tmp / "s.dcq");
  ASSERT_EQ(j["files"].size(), 4u);  // config, 2 shards, index json
  EXPECT_GT(j["ratio"].get<double>(), 1.05);
  EXPECT_TRUE(j["skipped"].empty());
  const auto r = DcqReader::open(tmp / "s.dcq");
  EXPECT_EQ(r.format_version(), 2u);
  EXPECT_EQ(r.index().source_format, DcqSourceFormat::folder);
  ASSERT_EQ(r.index().files.size(), 4u);
  EXPECT_EQ(r.index().files[0].name, "config.json");
  EXPECT_EQ(r.index().files[0].kind, DcqFile::verbatim);
  EXPECT_EQ(r.index().files[1].kind, DcqFile::safetensors);
  const auto v = verify({tmp / "s.dcq", 2});
  EXPECT_EQ(v["files"].size(), 4u);
  DecompressOptions d;
  d.input = tmp / "s.dcq";
  d.output = tmp / "out";
  d.threads = 2;
  decompress(d);
  expect_same_folder(in, tmp / "out");
  // Nothing but the output is left beside it (the temporary folder was renamed).
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(tmp.path())) entries += e.path().filename().string().find(".dcq-tmp") != std::string::npos;
  EXPECT_EQ(entries, 0u);
}

TEST(ContainerFolder, Bf16FolderRoundTripsThroughTheCli) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  const auto in = model_dir("stories260K-hf-bf16");
  auto c = test::run_dcq("compress " + q(in) + " -o " + q(tmp / "b.dcq") + " --lossless -q");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_EQ(test::run_dcq("verify " + q(tmp / "b.dcq") + " -q").exit_code, 0);
  c = test::run_dcq("decompress " + q(tmp / "b.dcq") + " -o " + q(tmp / "out") + " -q");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  expect_same_folder(in, tmp / "out");
  // An existing output folder is refused without --force (usage), replaced with it.
  c = test::run_dcq("decompress " + q(tmp / "b.dcq") + " -o " + q(tmp / "out") + " -q");
  EXPECT_EQ(c.exit_code, 2) << c.err;
  test::spit(tmp / "out" / "stale.txt", std::vector<uint8_t>{'x'});
  c = test::run_dcq("decompress " + q(tmp / "b.dcq") + " -o " + q(tmp / "out") + " --force -q");
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_FALSE(fs::exists(tmp / "out" / "stale.txt"));
  expect_same_folder(in, tmp / "out");
  // inspect lists the files.
  c = test::run_dcq("inspect " + q(tmp / "b.dcq"));
  ASSERT_EQ(c.exit_code, 0) << c.err;
  EXPECT_NE(c.out.find("config.json"), std::string::npos);
  EXPECT_NE(c.out.find("model.safetensors"), std::string::npos);
}

// Every writer writes version 2 (it may hold codec 4); a single file has an empty file table.
TEST(ContainerFolder, SingleFilesHaveNoFileTable) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  compress_dir(model_dir("stories260K-hf-bf16") / "model.safetensors", tmp / "one.dcq");
  const auto r = DcqReader::open(tmp / "one.dcq");
  EXPECT_EQ(r.format_version(), 2u);
  EXPECT_TRUE(r.index().files.empty());
  EXPECT_EQ(r.index().source_format, DcqSourceFormat::safetensors);
}

TEST(ContainerFolder, SubfoldersAreSkippedAndReported) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  const auto in = tmp / "in";
  fs::create_directories(in / "sub");
  for (const auto& e : fs::directory_iterator(model_dir("stories260K-hf-bf16"))) fs::copy_file(e.path(), in / e.path().filename());
  test::spit(in / "sub" / "x.txt", std::vector<uint8_t>{'x'});
  test::spit(in / "empty.txt", std::vector<uint8_t>{});
  const auto j = compress_dir(in, tmp / "c.dcq");
  ASSERT_EQ(j["skipped"].size(), 1u);
  EXPECT_EQ(j["skipped"][0], "sub");
  DecompressOptions d;
  d.input = tmp / "c.dcq";
  d.output = tmp / "out";
  decompress(d);
  EXPECT_TRUE(fs::exists(tmp / "out" / "empty.txt"));
  EXPECT_EQ(fs::file_size(tmp / "out" / "empty.txt"), 0u);
  EXPECT_FALSE(fs::exists(tmp / "out" / "sub"));
  fs::remove_all(in / "sub");
  expect_same_folder(in, tmp / "out");
  // An output inside the input folder is not stored in itself (second run: it exists already).
  compress_dir(in, in / "self.dcq");
  const auto again = compress_dir(in, in / "self.dcq");
  ASSERT_EQ(again["skipped"].size(), 1u);
  EXPECT_EQ(again["skipped"][0], "self.dcq");
}

TEST(ContainerFolder, CorruptionIsExit4AndLeavesNoOutput) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  compress_dir(model_dir("stories260K-hf-sharded"), tmp / "s.dcq");
  const auto good = test::slurp(tmp / "s.dcq");
  const auto r = DcqReader::open(tmp / "s.dcq");
  // The extras blob holds config.json and the index json verbatim; chunk 0 is tensor data.
  const uint64_t spots[] = {r.index().extras.offset + r.index().extras.stored_size / 2,
                            r.index().chunks[0].offset + r.index().chunks[0].stored_size / 2};
  for (const uint64_t at : spots) {
    auto bad = good;
    bad[at] ^= 0x20;
    test::spit(tmp / "bad.dcq", bad);
    EXPECT_EQ(test::run_dcq("verify " + q(tmp / "bad.dcq") + " -q").exit_code, 4) << at;
    const auto c = test::run_dcq("decompress " + q(tmp / "bad.dcq") + " -o " + q(tmp / "out") + " -q");
    EXPECT_EQ(c.exit_code, 4) << at << c.err;
    EXPECT_FALSE(fs::exists(tmp / "out"));
    for (const auto& e : fs::directory_iterator(tmp.path()))
      EXPECT_EQ(e.path().filename().string().find(".dcq-tmp"), std::string::npos) << "left behind: " << e.path();
  }
}

TEST(ContainerFolder, ForgedFileTablesAreRefused) {
  TempDir tmp;
  write_tiny_folder(tmp / "tiny");
  compress_dir(tmp / "tiny", tmp / "s.dcq");
  EXPECT_EQ(test::run_dcq("verify " + q(tmp / "s.dcq") + " -q").exit_code, 0);
  DecompressOptions d0;
  d0.input = tmp / "s.dcq";
  d0.output = tmp / "tiny-back";
  decompress(d0);
  expect_same_folder(tmp / "tiny", tmp / "tiny-back");
  const auto good = test::slurp(tmp / "s.dcq");
  struct Case { std::string from, to; };
  // Same length, so only the name changes: a path out of the folder, an absolute path, a NUL,
  // a duplicate name.
  const Case cases[] = {{"config.json", "../cfg.json"},
                        {"config.json", "/tmp/x.json"},
                        {"config.json", std::string("conf\0g.json", 11)},
                        {"model-00002-of-00002", "model-00001-of-00002"}};
  const char* corpus = std::getenv("DCQ_WRITE_FUZZ_CORPUS");  // regenerates tests/fuzz/corpus/container
  int k = 0;
  for (const auto& c : cases) {
    const auto bad = forge_index(good, [&](std::vector<uint8_t>& ix) { replace_all(ix, c.from, c.to); });
    test::spit(tmp / "bad.dcq", bad);
    if (corpus) test::spit(fs::path(corpus) / ("folder_forged_name_" + std::to_string(k) + ".dcq"), bad);
    ++k;
    EXPECT_EQ(test::run_dcq("verify " + q(tmp / "bad.dcq") + " -q").exit_code, 3) << c.to;
    const auto d = test::run_dcq("decompress " + q(tmp / "bad.dcq") + " -o " + q(tmp / "out") + " -q");
    EXPECT_EQ(d.exit_code, 3) << c.to;
    EXPECT_NE(d.err.find("file"), std::string::npos) << d.err;
    EXPECT_FALSE(fs::exists(tmp / "out"));
    EXPECT_FALSE(fs::exists(tmp / "cfg.json"));
  }
  // Forged numbers in the last file record (its tail: kind, reserved, size, xxh3, first segment,
  // segment count): each one is a one-line bad-input error, never a crash.
  const std::pair<size_t, uint8_t> fields[] = {{4, 1} /* n_segments + 1 */, {8, 1} /* first_segment + 1 */,
                                               {24, 1} /* size + 1 */, {28, 7} /* kind 7 */, {27, 1} /* reserved */};
  for (const auto& [back, add] : fields) {
    const auto bad = forge_index(good, [&, back = back, add = add](std::vector<uint8_t>& ix) { ix[ix.size() - back] += add; });
    test::spit(tmp / "bad.dcq", bad);
    if (corpus) test::spit(fs::path(corpus) / ("folder_forged_field_" + std::to_string(back) + ".dcq"), bad);
    const auto v = test::run_dcq("verify " + q(tmp / "bad.dcq") + " -q");
    EXPECT_EQ(v.exit_code, 3) << back << v.err;
    EXPECT_EQ(std::count(v.err.begin(), v.err.end(), '\n'), 1) << v.err;
  }
  // The forge itself is sound: an unchanged index re-stored raw still verifies.
  test::spit(tmp / "same.dcq", forge_index(good, [](std::vector<uint8_t>&) {}));
  EXPECT_EQ(test::run_dcq("verify " + q(tmp / "same.dcq") + " -q").exit_code, 0);
  if (corpus) test::spit(fs::path(corpus) / "folder_valid.dcq", test::slurp(tmp / "same.dcq"));
  // A newer version is refused by name.
  auto newer = good;
  newer[4] = 9;
  const uint64_t h = xxh3(std::span<const uint8_t>(newer).first(24));
  std::memcpy(newer.data() + 24, &h, 8);
  test::spit(tmp / "newer.dcq", newer);
  const auto n = test::run_dcq("verify " + q(tmp / "newer.dcq") + " -q");
  EXPECT_EQ(n.exit_code, 3);
  EXPECT_NE(n.err.find("format version 9 is newer"), std::string::npos) << n.err;
}

TEST(ContainerFolder, RunsLikeTheFolder) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  const auto in = model_dir("stories260K-hf-sharded");
  compress_dir(in, tmp / "s.dcq");
  const Model folder = load_model(in);
  const OpenedModel opened = open_weights(tmp / "s.dcq", {});
  const Model& m = opened.model();
  ASSERT_EQ(m.tensors.size(), folder.tensors.size());
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    EXPECT_EQ(m.tensors[i].name, folder.tensors[i].name);
    EXPECT_EQ(m.tensors[i].ne, folder.tensors[i].ne);
    ASSERT_EQ(m.tensors[i].data.size(), folder.tensors[i].data.size());
    EXPECT_EQ(std::memcmp(m.tensors[i].data.data(), folder.tensors[i].data.data(), m.tensors[i].data.size()), 0)
        << m.tensors[i].name;
  }
  EXPECT_EQ(m.metadata.size(), folder.metadata.size());
}

TEST(ContainerFolder, AnalyzeReadsFoldersFilesAndContainers) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  const auto in = model_dir("stories260K-hf-bf16");
  compress_dir(in, tmp / "b.dcq");
  for (const auto& p : {in, in / "model.safetensors", tmp / "b.dcq"}) {
    AnalyzeOptions o;
    o.input = p;
    o.level = 3;
    o.repeat = 1;
    o.threads = 2;
    const auto j = analyze(o);
    ASSERT_GT(j["tensors"].size(), 10u) << p;
    size_t compressed = 0;
    for (const auto& t : j["tensors"]) {
      if (t.contains("duplicate_of")) continue;
      if (p.extension() == ".dcq") {
        EXPECT_LE(t["h0"].get<double>(), 8.0);
        EXPECT_GT(t["h0"].get<double>(), 0.0);
        EXPECT_GT(t["decode_gbps"].get<double>(), 0.0);
        // The coder cannot beat the order-0 bound by much on these streams (rANS is order 0/1).
        EXPECT_GT(t["vs_bound"].get<double>(), 0.5) << t["name"];
        for (const auto& [tr, ss] : t["streams"].items())
          for (const auto& s : ss) EXPECT_LE(s["h0"].get<double>(), 8.0);
        compressed += t["ratio"].get<double>() > 1.0;
      } else {
        for (const auto& s : t["streams"]["none"]) EXPECT_LE(s["h0"].get<double>(), 8.0);
        compressed += t["chosen"]["ratio"].get<double>() > 1.0;
      }
    }
    // BF16 weights: the exponent byte compresses, so (nearly) every tensor does.
    EXPECT_GE(compressed, j["tensors"].size() * 3 / 4) << p;
    EXPECT_GT(j["totals"]["ratio"].get<double>(), 1.1) << p;
  }
}
