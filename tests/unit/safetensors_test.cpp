// safetensors reader/writer: the shared Hugging Face folders against llama.cpp's GGUF
// (stories260K-F32.gguf), the GGUF -> safetensors -> GGUF round trip, and handcrafted corrupt files.
#include <gtest/gtest.h>

#include <cstring>

#include <nlohmann/json.hpp>

#include "dcq/error.hpp"
#include "dcq/fp16.hpp"
#include "dcq/gguf.hpp"
#include "dcq/io.hpp"
#include "dcq/safetensors.hpp"
#include "io/hf_names.hpp"
#include "io/safetensors_internal.hpp"
#include "test_support.hpp"

using namespace dcq;
using dcq::test::TempDir;
using dcq::test::expect_bad_input;
using dcq::test::expect_same_tensors;

namespace {

std::filesystem::path stories_gguf() { return test::model_path("stories260K/stories260K-F32.gguf"); }
std::filesystem::path hf(const std::string& kind) { return test::model_path("stories260K-hf-" + kind); }

// A safetensors file from a header JSON text and a data section of `data_bytes` bytes.
std::vector<uint8_t> make_file(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> b(8 + header.size() + data_bytes, 0x3f);
  const uint64_t n = header.size();
  std::memcpy(b.data(), &n, 8);
  std::memcpy(b.data() + 8, header.data(), header.size());
  return b;
}

const char* kTwo =
    R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
    R"("b":{"dtype":"BF16","shape":[4],"data_offsets":[24,32]}})";

}  // namespace

TEST(Safetensors, NameMappingBothWays) {
  EXPECT_EQ(io::hf_to_gguf_name("model.layers.12.self_attn.q_proj.weight"), "blk.12.attn_q.weight");
  EXPECT_EQ(io::hf_to_gguf_name("model.layers.0.mlp.down_proj.weight"), "blk.0.ffn_down.weight");
  EXPECT_EQ(io::hf_to_gguf_name("model.layers.3.post_attention_layernorm.weight"), "blk.3.ffn_norm.weight");
  EXPECT_EQ(io::hf_to_gguf_name("lm_head.weight"), "output.weight");
  EXPECT_EQ(io::hf_to_gguf_name("model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(io::hf_to_gguf_name("model.layers.01.mlp.up_proj.weight"), std::nullopt);
  EXPECT_EQ(io::hf_to_gguf_name("model.layers.x.mlp.up_proj.weight"), std::nullopt);
  EXPECT_EQ(io::hf_to_gguf_name("model.layers.1.mlp.up_proj"), std::nullopt);
  EXPECT_EQ(io::gguf_to_hf_name("blk.4.attn_output.weight"), "model.layers.4.self_attn.o_proj.weight");
  EXPECT_EQ(io::gguf_to_hf_name("output_norm.weight"), "model.norm.weight");
  EXPECT_EQ(io::gguf_to_hf_name("rope_freqs.weight"), std::nullopt);
  // The permutation is llama.cpp's permute(): within a head, HF row i*hd/2 + j -> GGUF row 2j + i.
  EXPECT_EQ(io::hf_row_of_gguf_row(0, 8), 0);
  EXPECT_EQ(io::hf_row_of_gguf_row(1, 8), 4);
  EXPECT_EQ(io::hf_row_of_gguf_row(2, 8), 1);
  EXPECT_EQ(io::hf_row_of_gguf_row(7, 8), 7);
  EXPECT_EQ(io::hf_row_of_gguf_row(9, 8), 12);
}

TEST(Safetensors, F32FolderEqualsLlamaCppGgufTensors) {
  DCQ_REQUIRE_DATA();
  const Model m = read_safetensors_model(hf("f32"));
  EXPECT_EQ(m.format, ModelFormat::safetensors);
  expect_same_tensors(m, read_gguf(stories_gguf()));
  EXPECT_EQ(m.find_kv("general.architecture")->as_string("a"), "llama");
  EXPECT_EQ(m.find_kv("llama.context_length")->as_int("c"), 512);
  EXPECT_EQ(m.find_kv("llama.embedding_length")->as_int("e"), 64);
  EXPECT_EQ(m.find_kv("llama.feed_forward_length")->as_int("f"), 172);
  EXPECT_EQ(m.find_kv("llama.block_count")->as_int("b"), 5);
  EXPECT_EQ(m.find_kv("llama.attention.head_count")->as_int("h"), 8);
  EXPECT_EQ(m.find_kv("llama.attention.head_count_kv")->as_int("h"), 4);
  EXPECT_EQ(m.find_kv("llama.rope.dimension_count")->as_int("r"), 8);
  EXPECT_EQ(m.find_kv("llama.vocab_size")->as_int("v"), 512);
  EXPECT_FLOAT_EQ(static_cast<float>(m.find_kv("llama.attention.layer_norm_rms_epsilon")->as_float("e")), 1e-5f);
  EXPECT_FLOAT_EQ(static_cast<float>(m.find_kv("llama.rope.freq_base")->as_float("r")), 10000.0f);
  EXPECT_EQ(m.find_kv("general.file_type")->as_int("t"), 0);
  EXPECT_EQ(m.find_kv("safetensors.metadata.format")->as_string("f"), "pt");
  EXPECT_EQ(m.find_kv("tokenizer.ggml.tokens"), nullptr);
}

TEST(Safetensors, ShardedFolderAndSingleFileEqualLlamaCppGgufTensors) {
  DCQ_REQUIRE_DATA();
  const Model ref = read_gguf(stories_gguf());
  expect_same_tensors(read_safetensors_model(hf("sharded")), ref);
  expect_same_tensors(read_safetensors_model(hf("sharded") / "model.safetensors.index.json"), ref);
  expect_same_tensors(read_safetensors_model(hf("f32") / "model.safetensors"), ref);
}

TEST(Safetensors, Bf16FolderEqualsF32RoundedToBf16) {
  DCQ_REQUIRE_DATA();
  const Model m = read_safetensors_model(hf("bf16"));
  const Model ref = read_gguf(stories_gguf());
  EXPECT_EQ(m.find_kv("general.file_type")->as_int("t"), 32);
  ASSERT_EQ(m.tensors.size(), ref.tensors.size());
  for (size_t i = 0; i < ref.tensors.size(); ++i) {
    const auto& t = m.tensors[i];
    const auto& r = ref.tensors[i];
    SCOPED_TRACE(r.name);
    ASSERT_EQ(t.name, r.name);
    ASSERT_EQ(t.type, GgmlType::BF16);
    ASSERT_EQ(t.ne, r.ne);
    const int64_t n = r.n_elements();
    size_t bad = 0;
    for (int64_t k = 0; k < n; ++k) {
      float f;
      uint16_t h;
      std::memcpy(&f, r.data.data() + 4 * k, 4);
      std::memcpy(&h, t.data.data() + 2 * k, 2);
      bad += h != float_to_bf16(f);
    }
    EXPECT_EQ(bad, 0u);
  }
}

TEST(Safetensors, LoadModelWithVocabFrom) {
  DCQ_REQUIRE_DATA();
  LoadOptions opt;
  opt.vocab_from = stories_gguf();
  const Model m = load_model(hf("sharded"), opt);
  const Model ref = read_gguf(stories_gguf());
  size_t n = 0;
  for (const auto& kv : ref.metadata) {
    if (!kv.key.starts_with("tokenizer.")) continue;
    ++n;
    const auto* v = m.find_kv(kv.key);
    ASSERT_NE(v, nullptr) << kv.key;
    EXPECT_EQ(v->type(), kv.value.type()) << kv.key;
  }
  EXPECT_EQ(n, 9u);
  EXPECT_EQ(m.find_kv("tokenizer.ggml.tokens")->as_array("t").items[300].as_string("t"),
            ref.find_kv("tokenizer.ggml.tokens")->as_array("t").items[300].as_string("t"));
  // A vocabulary of the wrong size is refused.
  opt.vocab_from = test::data_dir() / "vocab" / "ggml-vocab-llama-spm.gguf";
  expect_bad_input([&] { load_model(hf("f32"), opt); }, opt.vocab_from.string(), "does not match");
}

TEST(Safetensors, WriterReproducesTheSharedHuggingFaceFile) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  const Model ref = read_gguf(stories_gguf());
  write_safetensors_model(ref, dir / "model.safetensors", false);
  // Same tensors, names, header layout and bytes as the independently made Hugging Face file.
  EXPECT_EQ(test::slurp(dir / "model.safetensors"), test::slurp(hf("f32") / "model.safetensors"));
  const auto cfg = nlohmann::json::parse(test::slurp(dir / "config.json"));
  const auto want = nlohmann::json::parse(test::slurp(hf("f32") / "config.json"));
  for (const auto& [k, v] : want.items()) {
    if (k == "max_position_embeddings") continue;  // the GGUF says 128 (llama.cpp's converter)
    EXPECT_EQ(cfg[k], v) << k;
  }
  EXPECT_EQ(cfg["max_position_embeddings"], 128);
  // Refuses to overwrite without force; replaces with it.
  try {
    write_safetensors_model(ref, dir / "model.safetensors", false);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::usage);
  }
  write_safetensors_model(ref, dir / "model.safetensors", true);
}

TEST(Safetensors, RoundTripGgufSafetensorsGgufKeepsEveryTensor) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  const Model ref = read_gguf(stories_gguf());
  write_safetensors_model(ref, dir / "model.safetensors", false);
  const Model back = read_safetensors_model(dir.path());
  expect_same_tensors(back, ref);
  EXPECT_EQ(back.find_kv("llama.context_length")->as_int("c"), 128);
  // And once more from the safetensors model itself (its metadata drives the second config).
  TempDir dir2;
  write_safetensors_model(back, dir2 / "model.safetensors", false);
  EXPECT_EQ(test::slurp(dir2 / "model.safetensors"), test::slurp(dir / "model.safetensors"));
  // BF16 too.
  TempDir dir3;
  const Model bf = read_safetensors_model(hf("bf16"));
  write_safetensors_model(bf, dir3 / "model.safetensors", false);
  EXPECT_EQ(test::slurp(dir3 / "model.safetensors"), test::slurp(hf("bf16") / "model.safetensors"));
  expect_same_tensors(read_safetensors_model(dir3.path()), bf);
}

TEST(Safetensors, WriterRefusesQuantizedTensors) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  const Model q = read_gguf(test::model_path("stories260K/stories260K-Q8_0.gguf"));
  expect_bad_input([&] { write_safetensors_model(q, dir / "model.safetensors", false); }, "stories260K-Q8_0.gguf",
                   "dequantize");
  EXPECT_FALSE(std::filesystem::exists(dir / "model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir / "config.json"));
}

TEST(Safetensors, ParsesValidHandmadeFile) {
  const auto b = make_file(kTwo, 32);
  const auto f = parse_safetensors(b, "ok.safetensors");
  ASSERT_EQ(f.tensors.size(), 2u);
  EXPECT_EQ(f.tensors[0].name, "a");
  EXPECT_EQ(f.tensors[0].shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(f.tensors[0].data.data(), b.data() + 8 + std::strlen(kTwo));
  EXPECT_EQ(f.tensors[1].type, GgmlType::BF16);
  ASSERT_EQ(f.metadata.size(), 1u);
  EXPECT_EQ(f.metadata[0].second, "pt");
}

TEST(Safetensors, CorruptHeadersAreBadInput) {
  const std::string name = "bad.safetensors";
  auto bad = [&](const std::vector<uint8_t>& b, const std::string& fragment) {
    SCOPED_TRACE(fragment);
    expect_bad_input([&] { parse_safetensors(b, name); }, name, fragment);
  };
  const auto good = make_file(kTwo, 32);
  // Truncations: inside the length, inside the header, inside the data.
  for (size_t cut : {size_t(0), size_t(7), size_t(8), size_t(20), size_t(8 + std::strlen(kTwo)), good.size() - 1}) {
    SCOPED_TRACE(cut);
    expect_bad_input([&] { parse_safetensors(std::vector<uint8_t>(good.begin(), good.begin() + long(cut)), name); },
                     name);
  }
  // Forged header length: past the end, and huge.
  auto forged = good;
  const uint64_t too_long = good.size();
  std::memcpy(forged.data(), &too_long, 8);
  bad(forged, "header length");
  const uint64_t huge = ~0ull;
  std::memcpy(forged.data(), &huge, 8);
  bad(forged, "header length");
  bad(make_file("{\"a\":", 0), "invalid JSON");
  bad(make_file("[1,2]", 0), "not a JSON object");
  bad(make_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16),
      "duplicate name 'a'");
  bad(make_file(R"({"w":{"dtype":"I32","shape":[2],"data_offsets":[0,8]}})", 8), "dtype 'I32'");
  bad(make_file(R"({"w":{"dtype":"Q9","shape":[2],"data_offsets":[0,8]}})", 8), "'w'");
  bad(make_file(R"({"w":{"dtype":"F32","shape":[2,-1],"data_offsets":[0,8]}})", 8), "shape");
  bad(make_file(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8), "shape");
  bad(make_file(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8), "overflow");
  bad(make_file(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,8]}})", 8), "overflow");
  bad(make_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), "needs 12");
  bad(make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), "outside");
  bad(make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 8), "outside");
  bad(make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,7]}})", 8), "outside");
  bad(make_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0]}})", 8), "data_offsets");
  bad(make_file(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", 8), "dtype");
  bad(make_file(R"({"w":[1]})", 8), "'w'");
  bad(make_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
      "overlap");
  bad(make_file(R"({"__metadata__":{"format":1}})", 0), "__metadata__");
  bad(make_file(R"({"__metadata__":[]})", 0), "__metadata__");
}

TEST(Safetensors, BrokenFoldersAreBadInput) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  namespace fs = std::filesystem;
  const auto d = dir.path();
  // Missing shard.
  fs::create_directories(d / "s1");
  fs::copy_file(hf("sharded") / "config.json", d / "s1" / "config.json");
  fs::copy_file(hf("sharded") / "model.safetensors.index.json", d / "s1" / "model.safetensors.index.json");
  fs::copy_file(hf("sharded") / "model-00001-of-00002.safetensors", d / "s1" / "model-00001-of-00002.safetensors");
  expect_bad_input([&] { read_safetensors_model(d / "s1"); }, "model-00002-of-00002.safetensors", "missing");
  // Duplicate names across shards: the first shard also as the second one.
  fs::copy_file(hf("sharded") / "model-00001-of-00002.safetensors", d / "s1" / "model-00002-of-00002.safetensors");
  expect_bad_input([&] { read_safetensors_model(d / "s1"); }, "model-00002-of-00002.safetensors", "also appears");
  // A shard name escaping the folder.
  fs::create_directories(d / "s2");
  fs::copy_file(hf("sharded") / "config.json", d / "s2" / "config.json");
  test::spit(d / "s2" / "model.safetensors.index.json",
             std::vector<uint8_t>{'{', '"', 'w', 'e', 'i', 'g', 'h', 't', '_', 'm', 'a', 'p', '"', ':', '{', '"', 'x', '"',
                                  ':', '"', '.', '.', '/', 'x', '"', '}', '}'});
  expect_bad_input([&] { read_safetensors_model(d / "s2"); }, "model.safetensors.index.json", "relative path");
  // Missing config.json.
  fs::create_directories(d / "s3");
  fs::copy_file(hf("f32") / "model.safetensors", d / "s3" / "model.safetensors");
  expect_bad_input([&] { read_safetensors_model(d / "s3"); }, "config.json", "missing");
  // A config that disagrees with the tensors (wrong head dimension -> q_proj shape mismatch).
  auto cfg = nlohmann::json::parse(test::slurp(hf("f32") / "config.json"));
  cfg["intermediate_size"] = 170;
  const auto text = cfg.dump();
  test::spit(d / "s3" / "config.json", std::vector<uint8_t>(text.begin(), text.end()));
  expect_bad_input([&] { read_safetensors_model(d / "s3"); }, "model.safetensors", "implies");
  cfg["intermediate_size"] = 172;
  cfg["num_key_value_heads"] = 3;
  const auto text2 = cfg.dump();
  test::spit(d / "s3" / "config.json", std::vector<uint8_t>(text2.begin(), text2.end()));
  expect_bad_input([&] { read_safetensors_model(d / "s3"); }, "config.json", "num_key_value_heads");
  cfg["num_key_value_heads"] = 4;
  cfg["num_hidden_layers"] = 6;
  const auto text3 = cfg.dump();
  test::spit(d / "s3" / "config.json", std::vector<uint8_t>(text3.begin(), text3.end()));
  expect_bad_input([&] { read_safetensors_model(d / "s3"); }, "config.json", "lacks");
}

TEST(Safetensors, FuzzCorpusTinyLlamaConvertsFully) {
  // The fuzz corpus holds a valid tiny llama so the fuzz target reaches the conversion's end.
  const auto path = test::source_dir() / "tests/fuzz/corpus/safetensors/tiny-llama.safetensors";
  const auto bytes = test::slurp(path);
  const auto file = parse_safetensors(bytes, path.string());
  io::HfConfig c;
  c.hidden = 4, c.n_ff = 6, c.n_layer = 1, c.n_head = 2, c.n_head_kv = 1, c.head_dim = 2, c.vocab = 3;
  std::vector<io::SourcedTensor> ts;
  for (const auto& t : file.tensors) ts.push_back({t, path.string()});
  const Model m = io::hf_llama_to_model(ts, c, "config.json", "tiny");
  ASSERT_EQ(m.tensors.size(), 12u);
  EXPECT_EQ(m.tensors[0].name, "token_embd.weight");
  EXPECT_EQ(m.tensors[2].name, "output.weight");
  EXPECT_EQ(m.tensors[2].type, GgmlType::BF16);
  // q rows [r0 r1 | r2 r3] (2 heads of 2): a head of 2 has one pair, so the order is unchanged;
  // k likewise. The permutation on real heads is covered by the stories260K comparisons.
  const Tensor* q = m.find_tensor("blk.0.attn_q.weight");
  EXPECT_EQ(q->ne, (std::vector<int64_t>{4, 4}));
}

TEST(Safetensors, GgufFromHfFolderHasLlamaCppDataSection) {
  DCQ_REQUIRE_DATA();
  // Metadata differs by design (config.json vs llama.cpp's llama2.c converter: context 512 vs
  // 128, rope.freq_base, file_type...), but the tensor infos and data section are identical.
  TempDir dir;
  LoadOptions opt;
  opt.vocab_from = stories_gguf();
  const Model m = load_model(hf("sharded"), opt);
  write_gguf(m, dir / "from-hf.gguf", false);
  const Model ref = read_gguf(stories_gguf());
  std::vector<GgufTensorInfo> infos;
  for (const auto& t : ref.tensors) infos.push_back({t.name, t.type, t.ne});
  const auto ref_bytes = test::slurp(stories_gguf());
  const size_t data_size = ref_bytes.size() - gguf_header_bytes(ref.metadata, infos, 3).size();
  const auto ours = test::slurp(dir / "from-hf.gguf");
  ASSERT_GT(ours.size(), data_size);
  EXPECT_TRUE(std::equal(ours.end() - long(data_size), ours.end(), ref_bytes.end() - long(data_size)));
  const Model back = read_gguf(dir / "from-hf.gguf");
  expect_same_tensors(back, ref);
  EXPECT_EQ(back.find_kv("llama.context_length")->as_int("c"), 512);
}
