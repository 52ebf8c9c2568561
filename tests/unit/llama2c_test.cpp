// llama2.c reader: the real stories260K.bin + tok512.bin against llama.cpp's own conversion
// (stories260K-F32.gguf), and handcrafted corrupt checkpoints/tokenizers.
#include <gtest/gtest.h>

#include <cstring>

#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/io.hpp"
#include "dcq/llama2c.hpp"
#include "test_support.hpp"

using namespace dcq;
using dcq::test::TempDir;
using dcq::test::expect_bad_input;
using dcq::test::expect_same_tensors;

namespace {

std::filesystem::path stories(const std::string& f) { return test::model_path("stories260K/" + f); }

// A small synthetic checkpoint: every float is its own index, so views can be checked.
std::vector<uint8_t> synth_checkpoint(int32_t dim, int32_t hidden, int32_t layers, int32_t heads, int32_t kv,
                                      int32_t vocab, int32_t seq) {
  const int64_t V = vocab < 0 ? -vocab : vocab, kv_dim = dim / heads * kv;
  int64_t n = V * dim + layers * (2 * dim + 2 * dim * dim + 2 * kv_dim * dim + 3 * hidden * dim) + dim +
              int64_t(seq) * (dim / heads);
  if (vocab < 0) n += V * dim;
  std::vector<uint8_t> b(28 + n * 4);
  const int32_t h[7] = {dim, hidden, layers, heads, kv, vocab, seq};
  std::memcpy(b.data(), h, 28);
  for (int64_t i = 0; i < n; ++i) {
    const float f = static_cast<float>(i);
    std::memcpy(b.data() + 28 + i * 4, &f, 4);
  }
  return b;
}

// Same GGUF type and value, floats compared bit for bit.
bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type() != b.type()) return false;
  if (a.type() == GgufType::STRING) return a.as_string("a") == b.as_string("b");
  if (a.type() == GgufType::FLOAT32) return std::memcmp(&std::get<float>(a.v), &std::get<float>(b.v), 4) == 0;
  return a.as_int("a") == b.as_int("b");
}

void put_i32(std::vector<uint8_t>& b, size_t at, int32_t v) { std::memcpy(b.data() + at, &v, 4); }

}  // namespace

TEST(Llama2c, StoriesTensorsEqualLlamaCppConversion) {
  DCQ_REQUIRE_DATA();
  const Model ours = read_llama2c_model(stories("stories260K.bin"));
  const Model ref = read_gguf(stories("stories260K-F32.gguf"));
  EXPECT_EQ(ours.format, ModelFormat::llama2c);
  expect_same_tensors(ours, ref);
}

TEST(Llama2c, StoriesWrittenGgufIsByteIdenticalToLlamaCpp) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  const Model ours = read_llama2c_model(stories("stories260K.bin"));
  const Model ref = read_gguf(stories("stories260K-F32.gguf"));
  // Metadata first, key by key, for a readable failure.
  ASSERT_EQ(ours.metadata.size(), ref.metadata.size());
  for (size_t i = 0; i < ref.metadata.size(); ++i) {
    SCOPED_TRACE(ref.metadata[i].key);
    EXPECT_EQ(ours.metadata[i].key, ref.metadata[i].key);
    EXPECT_EQ(ours.metadata[i].value.type(), ref.metadata[i].value.type());
  }
  write_gguf(ours, dir / "out.gguf", false);
  EXPECT_EQ(test::slurp(dir / "out.gguf"), test::slurp(stories("stories260K-F32.gguf")));
}

TEST(Llama2c, LoadModelDispatchesAndTakesTokenizerOption) {
  DCQ_REQUIRE_DATA();
  LoadOptions opt;
  opt.tokenizer = stories("tok512.bin");
  const Model m = load_model(stories("stories260K.bin"), opt);
  EXPECT_EQ(m.format, ModelFormat::llama2c);
  const auto& toks = m.find_kv("tokenizer.ggml.tokens")->as_array("t").items;
  ASSERT_EQ(toks.size(), 512u);
  EXPECT_EQ(toks[1].as_string("t"), "<s>");
  EXPECT_EQ(toks[259].as_string("t"), "\xe2\x96\x81t");  // " t" with SentencePiece's space
  EXPECT_EQ(m.find_kv("llama.context_length")->as_int("c"), 128);
  EXPECT_EQ(m.find_kv("llama.rope.dimension_count")->as_int("r"), 8);
}

TEST(Llama2c, ContextLengthOverrideAndNoTokenizer) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  std::filesystem::copy_file(stories("stories260K.bin"), dir / "m.bin");
  Llama2cOptions opt;
  opt.context_length = 512;
  const Model m = read_llama2c_model(dir / "m.bin", opt);
  EXPECT_EQ(m.find_kv("llama.context_length")->as_int("c"), 512);
  EXPECT_EQ(m.find_kv("tokenizer.ggml.tokens"), nullptr);  // none beside it
  expect_same_tensors(m, read_gguf(stories("stories260K-F32.gguf")));
}

TEST(Llama2c, VocabFromGgufCopiesTokenizerKeys) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  std::filesystem::copy_file(stories("stories260K.bin"), dir / "m.bin");
  Llama2cOptions opt;
  opt.vocab_from = stories("stories260K-Q8_0.gguf");
  const Model m = read_llama2c_model(dir / "m.bin", opt);
  const Model ref = read_gguf(stories("stories260K-F32.gguf"));
  EXPECT_EQ(m.metadata.front().key, "tokenizer.ggml.tokens");
  for (const char* k : {"tokenizer.ggml.tokens", "tokenizer.ggml.scores", "tokenizer.ggml.token_type"}) {
    const auto& a = m.find_kv(k)->as_array(k).items;
    const auto& b = ref.find_kv(k)->as_array(k).items;
    ASSERT_EQ(a.size(), b.size()) << k;
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(same_value(a[i], b[i])) << k << " " << i;
  }
}

TEST(Llama2c, SeveralTokenizersBesideIsAnError) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  std::filesystem::copy_file(stories("stories260K.bin"), dir / "m.bin");
  std::filesystem::copy_file(stories("tok512.bin"), dir / "tok512.bin");
  std::filesystem::copy_file(stories("tok512.bin"), dir / "tok513.bin");
  expect_bad_input([&] { read_llama2c_model(dir / "m.bin"); }, (dir / "m.bin").string(), "--tokenizer");
}

TEST(Llama2c, UnsharedClassifierAndGqaLayout) {
  TempDir dir;
  // dim 8, hidden 12, 2 layers, 4 heads, 2 kv heads, vocab 5 with its own classifier, seq 3.
  const auto b = synth_checkpoint(8, 12, 2, 4, 2, -5, 3);
  test::spit(dir / "s.bin", b);
  const Model m = read_llama2c_model(dir / "s.bin");
  ASSERT_EQ(m.tensors.size(), 3u + 2 * 9);
  auto first = [&](const char* name) {
    const Tensor* t = m.find_tensor(name);
    EXPECT_NE(t, nullptr) << name;
    float f;
    std::memcpy(&f, t->data.data(), 4);
    return static_cast<int64_t>(f);
  };
  // Float index of each array's start: embd 0, rms_att 40, wq 56, wk 184, wv 248, wo 312,
  // rms_ffn 440, w1 456, w2 648, w3 840, rms_final 1032, freq 1040 (3*2), wcls 1046.
  EXPECT_EQ(first("token_embd.weight"), 0);
  EXPECT_EQ(first("blk.0.attn_norm.weight"), 40);
  EXPECT_EQ(first("blk.1.attn_norm.weight"), 48);
  EXPECT_EQ(first("blk.0.attn_q.weight"), 56);
  EXPECT_EQ(first("blk.1.attn_k.weight"), 184 + 32);
  EXPECT_EQ(first("blk.1.attn_v.weight"), 248 + 32);
  EXPECT_EQ(first("blk.1.ffn_down.weight"), 648 + 96);
  EXPECT_EQ(first("output_norm.weight"), 1032);
  EXPECT_EQ(first("output.weight"), 1046);
  EXPECT_EQ(m.find_tensor("blk.0.attn_k.weight")->ne, (std::vector<int64_t>{8, 4}));
  EXPECT_EQ(m.find_tensor("blk.0.ffn_down.weight")->ne, (std::vector<int64_t>{12, 8}));
  EXPECT_EQ(m.find_tensor("output.weight")->ne, (std::vector<int64_t>{8, 5}));
}

TEST(Llama2c, TruncationAtEveryHeaderBoundaryIsBadInput) {
  TempDir dir;
  const auto good = synth_checkpoint(8, 12, 2, 4, 2, 5, 3);
  const auto p = dir / "t.bin";
  // Every header field boundary, inside the weights, and one byte short or long.
  std::vector<size_t> cuts{0, 1, 3, 4, 8, 12, 16, 20, 24, 27, 28, 29, 100, good.size() - 1};
  for (size_t cut : cuts) {
    SCOPED_TRACE(cut);
    test::spit(p, std::vector<uint8_t>(good.begin(), good.begin() + static_cast<long>(cut)));
    expect_bad_input([&] { read_llama2c_model(p); }, p.string());
  }
  auto longer = good;
  longer.push_back(0);
  test::spit(p, longer);
  expect_bad_input([&] { read_llama2c_model(p); }, p.string(), "implies");
}

TEST(Llama2c, ForgedHeadersAreBadInput) {
  TempDir dir;
  const auto good = synth_checkpoint(8, 12, 2, 4, 2, 5, 3);
  const auto p = dir / "f.bin";
  struct Case { size_t field; int32_t value; const char* fragment; };
  const Case cases[] = {
      {0, 0, "dim"},           {0, -8, "dim"},          {1, 0, "hidden_dim"},
      {2, -1, "n_layers"},     {3, 0, "n_heads"},       {4, 0, "n_kv_heads"},
      {5, 0, "vocab_size"},    {5, INT32_MIN, "vocab_size"}, {6, 0, "seq_len"},
      {3, 3, "multiple"},      {4, 3, "multiple"},      {4, 8, "multiple"},
      {3, 8, "odd"},           // head size 1
      {0, 1 << 30, "overflow"},  {2, INT32_MAX, "implies"}, {5, -INT32_MAX, "implies"},
      {1, INT32_MAX, "implies"}, {6, INT32_MAX, "implies"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(std::to_string(c.field) + "=" + std::to_string(c.value));
    auto b = good;
    put_i32(b, c.field * 4, c.value);
    test::spit(p, b);
    expect_bad_input([&] { read_llama2c_model(p); }, p.string(), c.fragment);
  }
  // llama2.c's newer export formats start with a magic: named, not misread as dims.
  auto v1 = good;
  std::memcpy(v1.data(), "24ka", 4);
  test::spit(p, v1);
  expect_bad_input([&] { read_llama2c_model(p); }, p.string(), "ak42");
}

TEST(Llama2c, CorruptTokenizersAreBadInput) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  const auto tok = test::slurp(stories("tok512.bin"));
  const auto p = dir / "tok.bin";
  // Truncated inside max_token_length, a score, a length, a text; and extra bytes.
  for (size_t cut : {size_t(0), size_t(2), size_t(4), size_t(6), size_t(10), size_t(14), tok.size() - 1}) {
    SCOPED_TRACE(cut);
    test::spit(p, std::vector<uint8_t>(tok.begin(), tok.begin() + static_cast<long>(cut)));
    expect_bad_input([&] { parse_llama2c_tokenizer(test::slurp(p), 512, p.string()); }, p.string());
  }
  auto extra = tok;
  extra.push_back(0);
  expect_bad_input([&] { parse_llama2c_tokenizer(extra, 512, "tok-extra.bin"); }, "tok-extra.bin", "bytes follow");
  auto neg = tok;
  put_i32(neg, 8, -1);  // first token's length
  expect_bad_input([&] { parse_llama2c_tokenizer(neg, 512, "tok-neg.bin"); }, "tok-neg.bin", "negative");
  auto huge = tok;
  put_i32(huge, 8, INT32_MAX);
  expect_bad_input([&] { parse_llama2c_tokenizer(huge, 512, "tok-huge.bin"); }, "tok-huge.bin", "truncated");
  expect_bad_input([&] { parse_llama2c_tokenizer(tok, INT32_MAX, "tok-big.bin"); }, "tok-big.bin", "too short");
  // A tokenizer for another vocabulary size, through the model reader.
  std::filesystem::copy_file(stories("stories260K.bin"), dir / "m.bin");
  Llama2cOptions opt;
  opt.tokenizer = dir / "small.bin";
  test::spit(opt.tokenizer, std::vector<uint8_t>(tok.begin(), tok.begin() + 200));
  expect_bad_input([&] { read_llama2c_model(dir / "m.bin", opt); }, opt.tokenizer.string());
}

TEST(Llama2c, TokenTypesFollowLlamaCppRules) {
  // max_len, then (score, len, text) for: id0, id1, id2, empty, byte, normal with spaces.
  std::vector<uint8_t> b(4, 0);
  auto add = [&](float s, const std::string& t) {
    const int32_t n = static_cast<int32_t>(t.size());
    b.insert(b.end(), reinterpret_cast<const uint8_t*>(&s), reinterpret_cast<const uint8_t*>(&s) + 4);
    b.insert(b.end(), reinterpret_cast<const uint8_t*>(&n), reinterpret_cast<const uint8_t*>(&n) + 4);
    b.insert(b.end(), t.begin(), t.end());
  };
  add(0, "x"), add(0, "\n<s>\n"), add(0, "\n</s>\n"), add(0, ""), add(0, "<0x0A>"), add(-1.5f, " a b");
  const auto toks = parse_llama2c_tokenizer(b, 6, "t.bin");
  ASSERT_EQ(toks.size(), 6u);
  EXPECT_EQ(toks[0].text, "<unk>");
  EXPECT_EQ(toks[0].type, 2);
  EXPECT_EQ(toks[1].text, "<s>");
  EXPECT_EQ(toks[1].type, 3);
  EXPECT_EQ(toks[2].text, "</s>");
  EXPECT_EQ(toks[3].type, 3);
  EXPECT_EQ(toks[4].type, 6);
  EXPECT_EQ(toks[5].type, 1);
  EXPECT_EQ(toks[5].text, "\xe2\x96\x81" "a" "\xe2\x96\x81" "b");
  EXPECT_EQ(toks[5].score, -1.5f);
  // Byte-token detection follows sscanf("<0x%02hhX>") exactly, odd spellings included.
  auto type_of = [](const std::string& text) {
    std::vector<uint8_t> t(4, 0);
    for (const std::string& s : {std::string("a"), std::string("b"), std::string("c"), text}) {
      const float score = 0;
      const int32_t n = static_cast<int32_t>(s.size());
      t.insert(t.end(), reinterpret_cast<const uint8_t*>(&score), reinterpret_cast<const uint8_t*>(&score) + 4);
      t.insert(t.end(), reinterpret_cast<const uint8_t*>(&n), reinterpret_cast<const uint8_t*>(&n) + 4);
      t.insert(t.end(), s.begin(), s.end());
    }
    return parse_llama2c_tokenizer(t, 4, "t.bin")[3].type;
  };
  EXPECT_EQ(type_of("<0xff>"), 6);
  EXPECT_EQ(type_of("<0x7"), 6);
  EXPECT_EQ(type_of("<0x +7>"), 6);
  EXPECT_EQ(type_of("<0x-"), 1);
  EXPECT_EQ(type_of("<0x+-1"), 1);
  EXPECT_EQ(type_of("<0xZZ>"), 1);
  EXPECT_EQ(type_of("<0"), 1);
}
