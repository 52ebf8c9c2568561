// GGUF reader/writer on llama.cpp's real files: exact round trip, metadata, validation.
#include <gtest/gtest.h>

#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "test_support.hpp"

using namespace dcq;
using dcq::test::TempDir;

TEST(Gguf, ReadsStoriesMetadataAndTensors) {
  DCQ_REQUIRE_DATA();
  const Model m = read_gguf(test::model_path("stories260K/stories260K-F32.gguf"));
  EXPECT_EQ(m.gguf_version, 3u);
  EXPECT_EQ(m.find_kv("general.architecture")->as_string("a"), "llama");
  EXPECT_EQ(m.find_kv("llama.embedding_length")->as_int("e"), 64);
  EXPECT_EQ(m.find_kv("llama.block_count")->as_int("b"), 5);
  EXPECT_EQ(m.find_kv("llama.context_length")->as_int("c"), 128);
  EXPECT_EQ(m.find_kv("tokenizer.ggml.tokens")->as_array("t").items.size(), 512u);
  const Tensor* emb = m.find_tensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, GgmlType::F32);
  ASSERT_EQ(emb->ne.size(), 2u);
  EXPECT_EQ(emb->ne[0], 64);
  EXPECT_EQ(emb->ne[1], 512);
  const Tensor* down = m.find_tensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->ne[0], 172);
}

TEST(Gguf, RewriteIsByteIdenticalForEverySharedFile) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  for (const auto& p : test::all_shared_ggufs()) {
    SCOPED_TRACE(p.string());
    const Model m = read_gguf(p);
    const auto out = dir / "copy.gguf";
    write_gguf(m, out, /*force=*/true);
    EXPECT_EQ(test::slurp(out), test::slurp(p));
  }
}

TEST(Gguf, OpeningReadsMetadataOnly) {
  DCQ_REQUIRE_DATA();
  // Tensor data must be views into the mapping, not copies.
  const Model m = read_gguf(test::model_path("synth256/synth256-F32.gguf"));
  const uint8_t* lo = nullptr;
  const uint8_t* hi = nullptr;
  for (const auto& t : m.tensors) {
    if (!lo || t.data.data() < lo) lo = t.data.data();
    if (!hi || t.data.data() + t.data.size() > hi) hi = t.data.data() + t.data.size();
  }
  EXPECT_LE(static_cast<size_t>(hi - lo), std::filesystem::file_size(test::model_path("synth256/synth256-F32.gguf")));
}

TEST(Gguf, MissingFileIsBadInput) {
  try {
    read_gguf("/nonexistent/x.gguf");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::bad_input);
    EXPECT_NE(std::string(e.what()).find("/nonexistent/x.gguf"), std::string::npos);
  }
}

// ---- Hostile input: handcrafted corrupt files (tests/fuzz/corpus/gguf, made by hand from the
// GGUF spec: one file per defect) must each be refused with a one-line bad_input error naming
// the file; the valid one must parse.
namespace {
std::filesystem::path corpus_dir() { return test::source_dir() / "tests/fuzz/corpus/gguf"; }
}  // namespace

TEST(GgufCorrupt, ValidCorpusFileParses) {
  const Model m = read_gguf(corpus_dir() / "valid.gguf");
  ASSERT_EQ(m.tensors.size(), 2u);
  EXPECT_EQ(m.tensors[1].type, GgmlType::Q8_0);
  const auto& nested = m.find_kv("arr.nested")->as_array("arr.nested");
  ASSERT_EQ(nested.items.size(), 2u);
  EXPECT_EQ(nested.items[0].as_array("x").items[1].as_int("x"), 2);
  EXPECT_EQ(nested.items[1].as_array("x").items[0].as_string("x"), "x");
}

TEST(GgufCorrupt, EveryDefectIsRefusedWithItsName) {
  size_t n = 0;
  for (const auto& e : std::filesystem::directory_iterator(corpus_dir())) {
    if (e.path().filename() == "valid.gguf") continue;
    SCOPED_TRACE(e.path().string());
    try {
      read_gguf(e.path());
      ADD_FAILURE() << "accepted a corrupt file";
    } catch (const Error& err) {
      EXPECT_EQ(err.code(), ExitCode::bad_input);
      const std::string msg = err.what();
      EXPECT_NE(msg.find(e.path().filename().string()), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    }
    ++n;
  }
  EXPECT_GE(n, 30u);
}

TEST(GgufCorrupt, SpecificMessages) {
  auto msg = [](const char* f) {
    try {
      read_gguf(corpus_dir() / f);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(msg("bad_magic.gguf").find("bad magic"), std::string::npos);
  EXPECT_NE(msg("version1.gguf").find("version 1"), std::string::npos);
  EXPECT_NE(msg("forged_kv_count.gguf").find("metadata count"), std::string::npos);
  EXPECT_NE(msg("dup_tensor.gguf").find("duplicate tensor name 'a'"), std::string::npos);
  EXPECT_NE(msg("dup_key.gguf").find("duplicate metadata key 'k'"), std::string::npos);
  EXPECT_NE(msg("unknown_type.gguf").find("unknown type 77"), std::string::npos);
  EXPECT_NE(msg("overflow_shape.gguf").find("overflows"), std::string::npos);
  EXPECT_NE(msg("row_not_block.gguf").find("not a multiple"), std::string::npos);
  EXPECT_NE(msg("data_past_end.gguf").find("past the end"), std::string::npos);
}

TEST(GgufCorrupt, EveryTruncationIsRefused) {
  const auto bytes = test::slurp(corpus_dir() / "valid.gguf");
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    SCOPED_TRACE(cut);
    EXPECT_THROW(parse_gguf(std::span<const uint8_t>(bytes.data(), cut), "t.gguf"), Error);
  }
}

TEST(GgufCorrupt, ByteFlipsNeverCrash) {
  DCQ_REQUIRE_DATA();
  // A real file's header region, every byte flipped in turn: parse or refuse, nothing else.
  auto bytes = test::slurp(test::model_path("stories260K/stories260K-Q4_0.gguf"));
  const Model m = parse_gguf(bytes, "x.gguf");
  const size_t header_end = static_cast<size_t>(m.tensors.front().data.data() - bytes.data());
  size_t refused = 0;
  for (size_t i = 0; i < header_end; i += 7) {
    auto copy = bytes;
    copy[i] ^= 0xff;
    try {
      parse_gguf(copy, "x.gguf");
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::bad_input);
      ++refused;
    }
  }
  EXPECT_GT(refused, 0u);
}
