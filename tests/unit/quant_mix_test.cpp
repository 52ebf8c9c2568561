// Type mixes against llama.cpp: the type chosen for every tensor equals what llama-quantize
// stored in the shared stories260K / synth256 files; fallbacks, tied embeddings, layer order.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <sstream>

#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/quant_plan.hpp"
#include "test_support.hpp"

using namespace dcq;

namespace {

// Plans `ft` for src and compares with the tensor types of the reference file; returns choices by name.
std::map<std::string, TypeChoice> plan_and_compare(const std::string& src_rel, const std::string& ref_rel,
                                                   const std::string& ft_name, bool pure) {
  const Model src = read_gguf(test::model_path(src_rel));
  const Model ref = read_gguf(test::model_path(ref_rel));
  std::map<std::string, TypeChoice> by_name;
  const auto ft = parse_file_type(ft_name);
  EXPECT_TRUE(ft.has_value()) << ft_name;
  if (!ft) return by_name;
  // The file records the same llama_ftype value (llama.cpp's F32 converter output has none).
  if (const GgufValue* v = ref.find_kv("general.file_type")) {
    EXPECT_EQ(v->as_int("general.file_type"), file_type_value(*ft)) << ref_rel;
  } else {
    EXPECT_EQ(*ft, FileType::F32) << ref_rel;
  }
  const auto choices = choose_tensor_types(*ft, src, pure);
  EXPECT_EQ(choices.size(), src.tensors.size());
  EXPECT_EQ(ref.tensors.size(), src.tensors.size());
  for (size_t i = 0; i < src.tensors.size(); ++i) {
    const Tensor* r = ref.find_tensor(src.tensors[i].name);
    EXPECT_NE(r, nullptr) << src.tensors[i].name;
    if (!r) continue;
    EXPECT_EQ(type_name(choices[i].type), type_name(r->type))
        << ref_rel << " " << src.tensors[i].name << " (" << choices[i].reason << ")";
    by_name[src.tensors[i].name] = choices[i];
  }
  return by_name;
}

Tensor make_tensor(std::string name, std::vector<int64_t> ne) {
  Tensor t;
  t.name = std::move(name);
  t.ne = std::move(ne);
  return t;
}

GgufKV kv_u32(std::string key, uint32_t v) { return GgufKV{std::move(key), GgufValue{v}}; }

// A llama model with n_layer layers of only attn_v / ffn_down / norm tensors, in shuffled file order.
Model synthetic_llama(int n_layer, bool with_output, int64_t width, uint32_t n_head_kv = 8) {
  Model m;
  m.metadata.push_back(GgufKV{"general.architecture", GgufValue{std::string("llama")}});
  m.metadata.push_back(kv_u32("llama.block_count", uint32_t(n_layer)));
  m.metadata.push_back(kv_u32("llama.attention.head_count", 8));
  m.metadata.push_back(kv_u32("llama.attention.head_count_kv", n_head_kv));
  m.tensors.push_back(make_tensor("token_embd.weight", {width, 1000}));
  if (with_output) m.tensors.push_back(make_tensor("output.weight", {width, 1000}));
  for (int i = 0; i < n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    m.tensors.push_back(make_tensor(p + "attn_v.weight", {width, width}));
    m.tensors.push_back(make_tensor(p + "ffn_down.weight", {width, width}));
    m.tensors.push_back(make_tensor(p + "attn_norm.weight", {width}));
  }
  std::mt19937 rng(3);
  std::shuffle(m.tensors.begin(), m.tensors.end(), rng);
  return m;
}

}  // namespace

TEST(QuantMix, StoriesMixFilesMatchLlamaCpp) {
  DCQ_REQUIRE_DATA();
  for (const char* t : {"Q4_K_M", "Q5_K_M", "Q3_K_M", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "IQ4_NL", "F16", "BF16", "F32"}) {
    SCOPED_TRACE(t);
    const auto got = plan_and_compare("stories260K/stories260K-F32.gguf", std::string("stories260K/stories260K-") + t + ".gguf", t, false);
    ASSERT_FALSE(got.empty());
    // 172-wide ffn_down: no block type fits, every file keeps it F16, with a reason saying why.
    const auto& down = got.at("blk.0.ffn_down.weight");
    EXPECT_EQ(down.type, std::string_view(t) == "F32" ? GgmlType::F32 : std::string_view(t) == "BF16" ? GgmlType::BF16 : GgmlType::F16);
    if (std::string_view(t) != "F32" && std::string_view(t) != "F16" && std::string_view(t) != "BF16") {
      EXPECT_NE(down.reason.find("fallback: row width 172 not a multiple of"), std::string::npos) << down.reason;
    }
    EXPECT_EQ(got.at("blk.0.attn_norm.weight").type, GgmlType::F32);
    EXPECT_NE(got.at("blk.0.attn_norm.weight").reason.find("1-D"), std::string::npos);
  }
  // Spot checks of the reasons on the k-quant mix (64-wide rows fall back from 256-blocks).
  const auto q4km = plan_and_compare("stories260K/stories260K-F32.gguf", "stories260K/stories260K-Q4_K_M.gguf", "Q4_K_M", false);
  EXPECT_EQ(q4km.at("blk.2.attn_v.weight").type, GgmlType::Q8_0);
  EXPECT_NE(q4km.at("blk.2.attn_v.weight").reason.find("use-more-bits"), std::string::npos) << q4km.at("blk.2.attn_v.weight").reason;
  EXPECT_NE(q4km.at("blk.2.attn_v.weight").reason.find("(Q6_K) -> Q8_0"), std::string::npos) << q4km.at("blk.2.attn_v.weight").reason;
  EXPECT_EQ(q4km.at("blk.0.ffn_down.weight").reason,
            "fallback: row width 172 not a multiple of 256 (Q4_K) -> Q5_0 does not fit either (multiple of 32) -> F16");
}

TEST(QuantMix, Synth256DefaultAndPureFilesMatchLlamaCpp) {
  DCQ_REQUIRE_DATA();
  const auto q4km = plan_and_compare("synth256/synth256-F32.gguf", "synth256/synth256-Q4_K_M.gguf", "Q4_K_M", false);
  ASSERT_FALSE(q4km.empty());
  EXPECT_EQ(q4km.at("output.weight").type, GgmlType::Q6_K);
  EXPECT_EQ(q4km.at("blk.1.ffn_down.weight").type, GgmlType::Q6_K);
  EXPECT_EQ(q4km.at("blk.0.ffn_down.weight").type, GgmlType::Q4_K);
  for (const char* t : {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q4_K_S", "Q5_K_S", "Q6_K", "IQ4_NL", "IQ4_XS", "F16", "BF16"}) {
    SCOPED_TRACE(t);
    plan_and_compare("synth256/synth256-F32.gguf", std::string("synth256/synth256-") + t + ".gguf", t, true);
  }
}

TEST(QuantMix, FileTypeNamesAndValues) {
  EXPECT_EQ(parse_file_type("q4_k_m"), FileType::Q4_K_M);
  EXPECT_EQ(parse_file_type("Q4_K"), FileType::Q4_K_M);
  EXPECT_EQ(parse_file_type("Q3_K"), FileType::Q3_K_M);
  EXPECT_EQ(parse_file_type("Q5_K"), FileType::Q5_K_M);
  EXPECT_EQ(parse_file_type("bf16"), FileType::BF16);
  EXPECT_FALSE(parse_file_type("Q4_K_X").has_value());
  EXPECT_FALSE(parse_file_type("").has_value());
  // llama_ftype numbering, as written to general.file_type.
  EXPECT_EQ(file_type_value(FileType::F32), 0);
  EXPECT_EQ(file_type_value(FileType::Q4_0), 2);
  EXPECT_EQ(file_type_value(FileType::Q8_0), 7);
  EXPECT_EQ(file_type_value(FileType::Q4_K_M), 15);
  EXPECT_EQ(file_type_value(FileType::IQ4_NL), 25);
  EXPECT_EQ(file_type_value(FileType::BF16), 32);
  EXPECT_FALSE(file_type_from_value(4).has_value());  // Q4_1_SOME_F16, removed from llama.cpp
  for (FileType ft : all_file_types()) {
    EXPECT_EQ(parse_file_type(file_type_name(ft)), ft);
    EXPECT_EQ(file_type_from_value(file_type_value(ft)), ft);
  }
  EXPECT_EQ(file_type_default(FileType::Q3_K_L), GgmlType::Q3_K);
  EXPECT_EQ(file_type_default(FileType::IQ4_XS), GgmlType::IQ4_XS);
}

// Layer rules follow llama.cpp's numeric layer order (blk.10 after blk.9), whatever the file order.
TEST(QuantMix, UseMoreBitsLayersInNumericOrder) {
  const Model m = synthetic_llama(16, true, 256);
  const auto choices = choose_tensor_types(FileType::Q4_K_M, m, false);
  std::map<std::string, GgmlType> got;
  for (size_t i = 0; i < m.tensors.size(); ++i) got[m.tensors[i].name] = choices[i].type;
  // use_more_bits(i, 16): i < 2, i >= 14, (i - 2) % 3 == 2.
  for (int i = 0; i < 16; ++i) {
    const bool more = i < 2 || i >= 14 || (i - 2) % 3 == 2;
    const GgmlType want = more ? GgmlType::Q6_K : GgmlType::Q4_K;
    EXPECT_EQ(got["blk." + std::to_string(i) + ".attn_v.weight"], want) << i;
    EXPECT_EQ(got["blk." + std::to_string(i) + ".ffn_down.weight"], want) << i;
    EXPECT_EQ(got["blk." + std::to_string(i) + ".attn_norm.weight"], GgmlType::F32) << i;
  }
  EXPECT_EQ(got["output.weight"], GgmlType::Q6_K);
  EXPECT_EQ(got["token_embd.weight"], GgmlType::Q4_K);
  // Q3_K_M: the first two attn_v get Q5_K, the rest Q4_K; ffn_down of layer 0 (< 16/16) Q5_K.
  const auto q3 = choose_tensor_types(FileType::Q3_K_M, m, false);
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const auto& n = m.tensors[i].name;
    if (n == "blk.1.attn_v.weight") { EXPECT_EQ(q3[i].type, GgmlType::Q5_K); }
    if (n == "blk.2.attn_v.weight") { EXPECT_EQ(q3[i].type, GgmlType::Q4_K); }
    if (n == "blk.0.ffn_down.weight") { EXPECT_EQ(q3[i].type, GgmlType::Q5_K); }
    if (n == "blk.1.ffn_down.weight") { EXPECT_EQ(q3[i].type, GgmlType::Q4_K); }
  }
  // Pure: one type everywhere (but 1-D tensors).
  const auto pure = choose_tensor_types(FileType::Q4_K_M, m, true);
  for (size_t i = 0; i < m.tensors.size(); ++i)
    EXPECT_EQ(pure[i].type, m.tensors[i].ne.size() == 1 ? GgmlType::F32 : GgmlType::Q4_K) << m.tensors[i].name;
}

// Without output.weight the token embedding is the output matrix and gets its rules.
TEST(QuantMix, TiedEmbeddingsFollowOutputRules) {
  const Model tied = synthetic_llama(4, false, 256);
  const Tensor* emb = nullptr;
  for (const auto& t : tied.tensors)
    if (t.name == "token_embd.weight") emb = &t;
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(choose_tensor_type(FileType::Q4_K_M, tied, *emb, false).type, GgmlType::Q6_K);
  EXPECT_EQ(choose_tensor_type(FileType::Q8_0, tied, *emb, false).type, GgmlType::Q8_0);
  EXPECT_EQ(choose_tensor_type(FileType::Q4_0, tied, *emb, false).type, GgmlType::Q6_K);
  const Model narrow = synthetic_llama(4, false, 96);  // 96: multiple of 32, not of 256
  for (const auto& t : narrow.tensors) {
    if (t.name != "token_embd.weight") continue;
    const TypeChoice c = choose_tensor_type(FileType::Q4_K_M, narrow, t, false);
    EXPECT_EQ(c.type, GgmlType::Q8_0);
    EXPECT_NE(c.reason.find("tied token_embd"), std::string::npos) << c.reason;
  }
  // GQA >= 4 moves Q2_K's attn_v to Q4_K (else Q3_K).
  const Model gqa = synthetic_llama(4, true, 256, 2);
  for (size_t i = 0; i < gqa.tensors.size(); ++i)
    if (gqa.tensors[i].name == "blk.0.attn_v.weight") {
      EXPECT_EQ(choose_tensor_types(FileType::Q2_K, gqa, false)[i].type, GgmlType::Q4_K);
    }
}

TEST(QuantMix, FallbackChain) {
  // 64-wide rows: 256-block types fall back to their 32-block partner; 48: F16.
  Model m = synthetic_llama(2, true, 64);
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    if (m.tensors[i].name != "blk.0.attn_v.weight") continue;
    EXPECT_EQ(choose_tensor_types(FileType::Q2_K, m, true)[i].type, GgmlType::Q4_0);
    EXPECT_EQ(choose_tensor_types(FileType::Q3_K_S, m, true)[i].type, GgmlType::Q4_0);
    EXPECT_EQ(choose_tensor_types(FileType::Q4_K_S, m, true)[i].type, GgmlType::Q5_0);
    EXPECT_EQ(choose_tensor_types(FileType::Q5_K_S, m, true)[i].type, GgmlType::Q5_1);
    EXPECT_EQ(choose_tensor_types(FileType::Q6_K, m, true)[i].type, GgmlType::Q8_0);
    EXPECT_EQ(choose_tensor_types(FileType::IQ4_XS, m, true)[i].type, GgmlType::IQ4_NL);
    EXPECT_EQ(choose_tensor_types(FileType::Q8_0, m, true)[i].type, GgmlType::Q8_0);
  }
  m = synthetic_llama(2, true, 48);
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    if (m.tensors[i].name != "blk.0.attn_v.weight") continue;
    const TypeChoice c = choose_tensor_types(FileType::Q4_0, m, true)[i];
    EXPECT_EQ(c.type, GgmlType::F16);
    EXPECT_NE(c.reason.find("row width 48 not a multiple of 32"), std::string::npos) << c.reason;
  }
  // A tensor that is not in the model is an input error.
  const Tensor stranger = make_tensor("blk.9.nothing.weight", {64, 64});
  EXPECT_THROW(choose_tensor_type(FileType::Q4_0, m, stranger, false), Error);
}

// Golden data from llama.cpp itself: `llama-quantize --dry-run` (build 10573) on llama models
// with dim 256, FFN 512, vocab 512, 8 heads, n_kv_head KV heads and n_layer layers (9 tensors a
// layer, shuffled in the file). Per file type: how many 2-D tensors keep the base type, and
// every tensor that gets another type.
namespace {

struct DryRun {
  int n_layer;
  uint32_t n_kv_head;
  const char* ftype;
  int n_base;
  const char* others;
};

const DryRun kDryRuns[] = {
    {16, 8, "Q2_K", 65,
      "output=Q6_K blk.0.attn_output=Q3_K blk.0.attn_v=Q3_K blk.0.ffn_down=Q3_K blk.1.attn_output=Q3_K "
      "blk.1.attn_v=Q3_K blk.1.ffn_down=Q3_K blk.2.attn_output=Q3_K blk.2.attn_v=Q3_K "
      "blk.2.ffn_down=Q3_K blk.3.attn_output=Q3_K blk.3.attn_v=Q3_K blk.3.ffn_down=Q3_K "
      "blk.4.attn_output=Q3_K blk.4.attn_v=Q3_K blk.4.ffn_down=Q3_K blk.5.attn_output=Q3_K "
      "blk.5.attn_v=Q3_K blk.5.ffn_down=Q3_K blk.6.attn_output=Q3_K blk.6.attn_v=Q3_K "
      "blk.6.ffn_down=Q3_K blk.7.attn_output=Q3_K blk.7.attn_v=Q3_K blk.7.ffn_down=Q3_K "
      "blk.8.attn_output=Q3_K blk.8.attn_v=Q3_K blk.8.ffn_down=Q3_K blk.9.attn_output=Q3_K "
      "blk.9.attn_v=Q3_K blk.9.ffn_down=Q3_K blk.10.attn_output=Q3_K blk.10.attn_v=Q3_K "
      "blk.10.ffn_down=Q3_K blk.11.attn_output=Q3_K blk.11.attn_v=Q3_K blk.11.ffn_down=Q3_K "
      "blk.12.attn_output=Q3_K blk.12.attn_v=Q3_K blk.12.ffn_down=Q3_K blk.13.attn_output=Q3_K "
      "blk.13.attn_v=Q3_K blk.13.ffn_down=Q3_K blk.14.attn_output=Q3_K blk.14.attn_v=Q3_K "
      "blk.14.ffn_down=Q3_K blk.15.attn_output=Q3_K blk.15.attn_v=Q3_K blk.15.ffn_down=Q3_K"},
    {16, 8, "Q3_K_S", 113,
      "output=Q6_K"},
    {16, 8, "Q3_K_M", 65,
      "output=Q6_K blk.0.attn_output=Q4_K blk.0.attn_v=Q5_K blk.0.ffn_down=Q5_K blk.1.attn_output=Q4_K "
      "blk.1.attn_v=Q5_K blk.1.ffn_down=Q4_K blk.2.attn_output=Q4_K blk.2.attn_v=Q4_K "
      "blk.2.ffn_down=Q4_K blk.3.attn_output=Q4_K blk.3.attn_v=Q4_K blk.3.ffn_down=Q4_K "
      "blk.4.attn_output=Q4_K blk.4.attn_v=Q4_K blk.4.ffn_down=Q4_K blk.5.attn_output=Q4_K "
      "blk.5.attn_v=Q4_K blk.5.ffn_down=Q4_K blk.6.attn_output=Q4_K blk.6.attn_v=Q4_K "
      "blk.6.ffn_down=Q4_K blk.7.attn_output=Q4_K blk.7.attn_v=Q4_K blk.7.ffn_down=Q4_K "
      "blk.8.attn_output=Q4_K blk.8.attn_v=Q4_K blk.8.ffn_down=Q4_K blk.9.attn_output=Q4_K "
      "blk.9.attn_v=Q4_K blk.9.ffn_down=Q4_K blk.10.attn_output=Q4_K blk.10.attn_v=Q4_K "
      "blk.10.ffn_down=Q4_K blk.11.attn_output=Q4_K blk.11.attn_v=Q4_K blk.11.ffn_down=Q4_K "
      "blk.12.attn_output=Q4_K blk.12.attn_v=Q4_K blk.12.ffn_down=Q4_K blk.13.attn_output=Q4_K "
      "blk.13.attn_v=Q4_K blk.13.ffn_down=Q4_K blk.14.attn_output=Q4_K blk.14.attn_v=Q4_K "
      "blk.14.ffn_down=Q4_K blk.15.attn_output=Q4_K blk.15.attn_v=Q4_K blk.15.ffn_down=Q4_K"},
    {16, 8, "Q3_K_L", 65,
      "output=Q6_K blk.0.attn_output=Q5_K blk.0.attn_v=Q5_K blk.0.ffn_down=Q5_K blk.1.attn_output=Q5_K "
      "blk.1.attn_v=Q5_K blk.1.ffn_down=Q5_K blk.2.attn_output=Q5_K blk.2.attn_v=Q5_K "
      "blk.2.ffn_down=Q5_K blk.3.attn_output=Q5_K blk.3.attn_v=Q5_K blk.3.ffn_down=Q5_K "
      "blk.4.attn_output=Q5_K blk.4.attn_v=Q5_K blk.4.ffn_down=Q5_K blk.5.attn_output=Q5_K "
      "blk.5.attn_v=Q5_K blk.5.ffn_down=Q5_K blk.6.attn_output=Q5_K blk.6.attn_v=Q5_K "
      "blk.6.ffn_down=Q5_K blk.7.attn_output=Q5_K blk.7.attn_v=Q5_K blk.7.ffn_down=Q5_K "
      "blk.8.attn_output=Q5_K blk.8.attn_v=Q5_K blk.8.ffn_down=Q5_K blk.9.attn_output=Q5_K "
      "blk.9.attn_v=Q5_K blk.9.ffn_down=Q5_K blk.10.attn_output=Q5_K blk.10.attn_v=Q5_K "
      "blk.10.ffn_down=Q5_K blk.11.attn_output=Q5_K blk.11.attn_v=Q5_K blk.11.ffn_down=Q5_K "
      "blk.12.attn_output=Q5_K blk.12.attn_v=Q5_K blk.12.ffn_down=Q5_K blk.13.attn_output=Q5_K "
      "blk.13.attn_v=Q5_K blk.13.ffn_down=Q5_K blk.14.attn_output=Q5_K blk.14.attn_v=Q5_K "
      "blk.14.ffn_down=Q5_K blk.15.attn_output=Q5_K blk.15.attn_v=Q5_K blk.15.ffn_down=Q5_K"},
    {16, 8, "Q4_K_S", 107,
      "output=Q6_K blk.0.attn_v=Q5_K blk.0.ffn_down=Q5_K blk.1.attn_v=Q5_K blk.1.ffn_down=Q5_K "
      "blk.2.attn_v=Q5_K blk.3.attn_v=Q5_K"},
    {16, 8, "Q4_K_M", 97,
      "output=Q6_K blk.0.attn_v=Q6_K blk.0.ffn_down=Q6_K blk.1.attn_v=Q6_K blk.1.ffn_down=Q6_K "
      "blk.4.attn_v=Q6_K blk.4.ffn_down=Q6_K blk.7.attn_v=Q6_K blk.7.ffn_down=Q6_K blk.10.attn_v=Q6_K "
      "blk.10.ffn_down=Q6_K blk.13.attn_v=Q6_K blk.13.ffn_down=Q6_K blk.14.attn_v=Q6_K "
      "blk.14.ffn_down=Q6_K blk.15.attn_v=Q6_K blk.15.ffn_down=Q6_K"},
    {16, 8, "Q5_K_S", 113,
      "output=Q6_K"},
    {16, 8, "Q5_K_M", 97,
      "output=Q6_K blk.0.attn_v=Q6_K blk.0.ffn_down=Q6_K blk.1.attn_v=Q6_K blk.1.ffn_down=Q6_K "
      "blk.4.attn_v=Q6_K blk.4.ffn_down=Q6_K blk.7.attn_v=Q6_K blk.7.ffn_down=Q6_K blk.10.attn_v=Q6_K "
      "blk.10.ffn_down=Q6_K blk.13.attn_v=Q6_K blk.13.ffn_down=Q6_K blk.14.attn_v=Q6_K "
      "blk.14.ffn_down=Q6_K blk.15.attn_v=Q6_K blk.15.ffn_down=Q6_K"},
    {16, 8, "Q6_K", 114,
      ""},
    {16, 8, "IQ4_NL", 111,
      "output=Q6_K blk.0.ffn_down=Q5_K blk.1.ffn_down=Q5_K"},
    {16, 8, "IQ4_XS", 111,
      "output=Q6_K blk.0.ffn_down=Q5_K blk.1.ffn_down=Q5_K"},
    {16, 8, "Q4_0", 113,
      "output=Q6_K"},
    {16, 8, "Q8_0", 114,
      ""},
    {16, 2, "Q2_K", 65,
      "output=Q6_K blk.0.attn_output=Q3_K blk.0.attn_v=Q4_K blk.0.ffn_down=Q3_K blk.1.attn_output=Q3_K "
      "blk.1.attn_v=Q4_K blk.1.ffn_down=Q3_K blk.2.attn_output=Q3_K blk.2.attn_v=Q4_K "
      "blk.2.ffn_down=Q3_K blk.3.attn_output=Q3_K blk.3.attn_v=Q4_K blk.3.ffn_down=Q3_K "
      "blk.4.attn_output=Q3_K blk.4.attn_v=Q4_K blk.4.ffn_down=Q3_K blk.5.attn_output=Q3_K "
      "blk.5.attn_v=Q4_K blk.5.ffn_down=Q3_K blk.6.attn_output=Q3_K blk.6.attn_v=Q4_K "
      "blk.6.ffn_down=Q3_K blk.7.attn_output=Q3_K blk.7.attn_v=Q4_K blk.7.ffn_down=Q3_K "
      "blk.8.attn_output=Q3_K blk.8.attn_v=Q4_K blk.8.ffn_down=Q3_K blk.9.attn_output=Q3_K "
      "blk.9.attn_v=Q4_K blk.9.ffn_down=Q3_K blk.10.attn_output=Q3_K blk.10.attn_v=Q4_K "
      "blk.10.ffn_down=Q3_K blk.11.attn_output=Q3_K blk.11.attn_v=Q4_K blk.11.ffn_down=Q3_K "
      "blk.12.attn_output=Q3_K blk.12.attn_v=Q4_K blk.12.ffn_down=Q3_K blk.13.attn_output=Q3_K "
      "blk.13.attn_v=Q4_K blk.13.ffn_down=Q3_K blk.14.attn_output=Q3_K blk.14.attn_v=Q4_K "
      "blk.14.ffn_down=Q3_K blk.15.attn_output=Q3_K blk.15.attn_v=Q4_K blk.15.ffn_down=Q3_K"},
    {16, 2, "Q3_K_S", 113,
      "output=Q6_K"},
    {16, 2, "Q3_K_M", 65,
      "output=Q6_K blk.0.attn_output=Q4_K blk.0.attn_v=Q5_K blk.0.ffn_down=Q5_K blk.1.attn_output=Q4_K "
      "blk.1.attn_v=Q5_K blk.1.ffn_down=Q4_K blk.2.attn_output=Q4_K blk.2.attn_v=Q4_K "
      "blk.2.ffn_down=Q4_K blk.3.attn_output=Q4_K blk.3.attn_v=Q4_K blk.3.ffn_down=Q4_K "
      "blk.4.attn_output=Q4_K blk.4.attn_v=Q4_K blk.4.ffn_down=Q4_K blk.5.attn_output=Q4_K "
      "blk.5.attn_v=Q4_K blk.5.ffn_down=Q4_K blk.6.attn_output=Q4_K blk.6.attn_v=Q4_K "
      "blk.6.ffn_down=Q4_K blk.7.attn_output=Q4_K blk.7.attn_v=Q4_K blk.7.ffn_down=Q4_K "
      "blk.8.attn_output=Q4_K blk.8.attn_v=Q4_K blk.8.ffn_down=Q4_K blk.9.attn_output=Q4_K "
      "blk.9.attn_v=Q4_K blk.9.ffn_down=Q4_K blk.10.attn_output=Q4_K blk.10.attn_v=Q4_K "
      "blk.10.ffn_down=Q4_K blk.11.attn_output=Q4_K blk.11.attn_v=Q4_K blk.11.ffn_down=Q4_K "
      "blk.12.attn_output=Q4_K blk.12.attn_v=Q4_K blk.12.ffn_down=Q4_K blk.13.attn_output=Q4_K "
      "blk.13.attn_v=Q4_K blk.13.ffn_down=Q4_K blk.14.attn_output=Q4_K blk.14.attn_v=Q4_K "
      "blk.14.ffn_down=Q4_K blk.15.attn_output=Q4_K blk.15.attn_v=Q4_K blk.15.ffn_down=Q4_K"},
    {16, 2, "Q3_K_L", 65,
      "output=Q6_K blk.0.attn_output=Q5_K blk.0.attn_v=Q5_K blk.0.ffn_down=Q5_K blk.1.attn_output=Q5_K "
      "blk.1.attn_v=Q5_K blk.1.ffn_down=Q5_K blk.2.attn_output=Q5_K blk.2.attn_v=Q5_K "
      "blk.2.ffn_down=Q5_K blk.3.attn_output=Q5_K blk.3.attn_v=Q5_K blk.3.ffn_down=Q5_K "
      "blk.4.attn_output=Q5_K blk.4.attn_v=Q5_K blk.4.ffn_down=Q5_K blk.5.attn_output=Q5_K "
      "blk.5.attn_v=Q5_K blk.5.ffn_down=Q5_K blk.6.attn_output=Q5_K blk.6.attn_v=Q5_K "
      "blk.6.ffn_down=Q5_K blk.7.attn_output=Q5_K blk.7.attn_v=Q5_K blk.7.ffn_down=Q5_K "
      "blk.8.attn_output=Q5_K blk.8.attn_v=Q5_K blk.8.ffn_down=Q5_K blk.9.attn_output=Q5_K "
      "blk.9.attn_v=Q5_K blk.9.ffn_down=Q5_K blk.10.attn_output=Q5_K blk.10.attn_v=Q5_K "
      "blk.10.ffn_down=Q5_K blk.11.attn_output=Q5_K blk.11.attn_v=Q5_K blk.11.ffn_down=Q5_K "
      "blk.12.attn_output=Q5_K blk.12.attn_v=Q5_K blk.12.ffn_down=Q5_K blk.13.attn_output=Q5_K "
      "blk.13.attn_v=Q5_K blk.13.ffn_down=Q5_K blk.14.attn_output=Q5_K blk.14.attn_v=Q5_K "
      "blk.14.ffn_down=Q5_K blk.15.attn_output=Q5_K blk.15.attn_v=Q5_K blk.15.ffn_down=Q5_K"},
    {16, 2, "Q4_K_S", 107,
      "output=Q6_K blk.0.attn_v=Q5_K blk.0.ffn_down=Q5_K blk.1.attn_v=Q5_K blk.1.ffn_down=Q5_K "
      "blk.2.attn_v=Q5_K blk.3.attn_v=Q5_K"},
    {16, 2, "Q4_K_M", 97,
      "output=Q6_K blk.0.attn_v=Q6_K blk.0.ffn_down=Q6_K blk.1.attn_v=Q6_K blk.1.ffn_down=Q6_K "
      "blk.4.attn_v=Q6_K blk.4.ffn_down=Q6_K blk.7.attn_v=Q6_K blk.7.ffn_down=Q6_K blk.10.attn_v=Q6_K "
      "blk.10.ffn_down=Q6_K blk.13.attn_v=Q6_K blk.13.ffn_down=Q6_K blk.14.attn_v=Q6_K "
      "blk.14.ffn_down=Q6_K blk.15.attn_v=Q6_K blk.15.ffn_down=Q6_K"},
    {16, 2, "Q5_K_S", 113,
      "output=Q6_K"},
    {16, 2, "Q5_K_M", 97,
      "output=Q6_K blk.0.attn_v=Q6_K blk.0.ffn_down=Q6_K blk.1.attn_v=Q6_K blk.1.ffn_down=Q6_K "
      "blk.4.attn_v=Q6_K blk.4.ffn_down=Q6_K blk.7.attn_v=Q6_K blk.7.ffn_down=Q6_K blk.10.attn_v=Q6_K "
      "blk.10.ffn_down=Q6_K blk.13.attn_v=Q6_K blk.13.ffn_down=Q6_K blk.14.attn_v=Q6_K "
      "blk.14.ffn_down=Q6_K blk.15.attn_v=Q6_K blk.15.ffn_down=Q6_K"},
    {16, 2, "Q6_K", 114,
      ""},
    {16, 2, "IQ4_NL", 95,
      "output=Q6_K blk.0.attn_v=Q5_K blk.0.ffn_down=Q5_K blk.1.attn_v=Q5_K blk.1.ffn_down=Q5_K "
      "blk.2.attn_v=Q5_K blk.3.attn_v=Q5_K blk.4.attn_v=Q5_K blk.5.attn_v=Q5_K blk.6.attn_v=Q5_K "
      "blk.7.attn_v=Q5_K blk.8.attn_v=Q5_K blk.9.attn_v=Q5_K blk.10.attn_v=Q5_K blk.11.attn_v=Q5_K "
      "blk.12.attn_v=Q5_K blk.13.attn_v=Q5_K blk.14.attn_v=Q5_K blk.15.attn_v=Q5_K"},
    {16, 2, "IQ4_XS", 95,
      "output=Q6_K blk.0.attn_v=Q5_K blk.0.ffn_down=Q5_K blk.1.attn_v=Q5_K blk.1.ffn_down=Q5_K "
      "blk.2.attn_v=Q5_K blk.3.attn_v=Q5_K blk.4.attn_v=Q5_K blk.5.attn_v=Q5_K blk.6.attn_v=Q5_K "
      "blk.7.attn_v=Q5_K blk.8.attn_v=Q5_K blk.9.attn_v=Q5_K blk.10.attn_v=Q5_K blk.11.attn_v=Q5_K "
      "blk.12.attn_v=Q5_K blk.13.attn_v=Q5_K blk.14.attn_v=Q5_K blk.15.attn_v=Q5_K"},
    {16, 2, "Q4_0", 113,
      "output=Q6_K"},
    {16, 2, "Q8_0", 114,
      ""},
    {12, 8, "Q2_K", 49,
      "output=Q6_K blk.0.attn_output=Q3_K blk.0.attn_v=Q3_K blk.0.ffn_down=Q3_K blk.1.attn_output=Q3_K "
      "blk.1.attn_v=Q3_K blk.1.ffn_down=Q3_K blk.2.attn_output=Q3_K blk.2.attn_v=Q3_K "
      "blk.2.ffn_down=Q3_K blk.3.attn_output=Q3_K blk.3.attn_v=Q3_K blk.3.ffn_down=Q3_K "
      "blk.4.attn_output=Q3_K blk.4.attn_v=Q3_K blk.4.ffn_down=Q3_K blk.5.attn_output=Q3_K "
      "blk.5.attn_v=Q3_K blk.5.ffn_down=Q3_K blk.6.attn_output=Q3_K blk.6.attn_v=Q3_K "
      "blk.6.ffn_down=Q3_K blk.7.attn_output=Q3_K blk.7.attn_v=Q3_K blk.7.ffn_down=Q3_K "
      "blk.8.attn_output=Q3_K blk.8.attn_v=Q3_K blk.8.ffn_down=Q3_K blk.9.attn_output=Q3_K "
      "blk.9.attn_v=Q3_K blk.9.ffn_down=Q3_K blk.10.attn_output=Q3_K blk.10.attn_v=Q3_K "
      "blk.10.ffn_down=Q3_K blk.11.attn_output=Q3_K blk.11.attn_v=Q3_K blk.11.ffn_down=Q3_K"},
    {12, 8, "Q3_K_S", 85,
      "output=Q6_K"},
    {12, 8, "Q3_K_M", 49,
      "output=Q6_K blk.0.attn_output=Q4_K blk.0.attn_v=Q5_K blk.0.ffn_down=Q4_K blk.1.attn_output=Q4_K "
      "blk.1.attn_v=Q5_K blk.1.ffn_down=Q4_K blk.2.attn_output=Q4_K blk.2.attn_v=Q4_K "
      "blk.2.ffn_down=Q4_K blk.3.attn_output=Q4_K blk.3.attn_v=Q4_K blk.3.ffn_down=Q4_K "
      "blk.4.attn_output=Q4_K blk.4.attn_v=Q4_K blk.4.ffn_down=Q4_K blk.5.attn_output=Q4_K "
      "blk.5.attn_v=Q4_K blk.5.ffn_down=Q4_K blk.6.attn_output=Q4_K blk.6.attn_v=Q4_K "
      "blk.6.ffn_down=Q4_K blk.7.attn_output=Q4_K blk.7.attn_v=Q4_K blk.7.ffn_down=Q4_K "
      "blk.8.attn_output=Q4_K blk.8.attn_v=Q4_K blk.8.ffn_down=Q4_K blk.9.attn_output=Q4_K "
      "blk.9.attn_v=Q4_K blk.9.ffn_down=Q4_K blk.10.attn_output=Q4_K blk.10.attn_v=Q4_K "
      "blk.10.ffn_down=Q4_K blk.11.attn_output=Q4_K blk.11.attn_v=Q4_K blk.11.ffn_down=Q4_K"},
    {12, 8, "Q3_K_L", 49,
      "output=Q6_K blk.0.attn_output=Q5_K blk.0.attn_v=Q5_K blk.0.ffn_down=Q5_K blk.1.attn_output=Q5_K "
      "blk.1.attn_v=Q5_K blk.1.ffn_down=Q5_K blk.2.attn_output=Q5_K blk.2.attn_v=Q5_K "
      "blk.2.ffn_down=Q5_K blk.3.attn_output=Q5_K blk.3.attn_v=Q5_K blk.3.ffn_down=Q5_K "
      "blk.4.attn_output=Q5_K blk.4.attn_v=Q5_K blk.4.ffn_down=Q5_K blk.5.attn_output=Q5_K "
      "blk.5.attn_v=Q5_K blk.5.ffn_down=Q5_K blk.6.attn_output=Q5_K blk.6.attn_v=Q5_K "
      "blk.6.ffn_down=Q5_K blk.7.attn_output=Q5_K blk.7.attn_v=Q5_K blk.7.ffn_down=Q5_K "
      "blk.8.attn_output=Q5_K blk.8.attn_v=Q5_K blk.8.ffn_down=Q5_K blk.9.attn_output=Q5_K "
      "blk.9.attn_v=Q5_K blk.9.ffn_down=Q5_K blk.10.attn_output=Q5_K blk.10.attn_v=Q5_K "
      "blk.10.ffn_down=Q5_K blk.11.attn_output=Q5_K blk.11.attn_v=Q5_K blk.11.ffn_down=Q5_K"},
    {12, 8, "Q4_K_S", 80,
      "output=Q6_K blk.0.attn_v=Q5_K blk.0.ffn_down=Q5_K blk.1.attn_v=Q5_K blk.2.attn_v=Q5_K "
      "blk.3.attn_v=Q5_K"},
    {12, 8, "Q4_K_M", 73,
      "output=Q6_K blk.0.attn_v=Q6_K blk.0.ffn_down=Q6_K blk.3.attn_v=Q6_K blk.3.ffn_down=Q6_K "
      "blk.6.attn_v=Q6_K blk.6.ffn_down=Q6_K blk.9.attn_v=Q6_K blk.9.ffn_down=Q6_K blk.10.attn_v=Q6_K "
      "blk.10.ffn_down=Q6_K blk.11.attn_v=Q6_K blk.11.ffn_down=Q6_K"},
    {12, 8, "Q5_K_S", 85,
      "output=Q6_K"},
    {12, 8, "Q5_K_M", 73,
      "output=Q6_K blk.0.attn_v=Q6_K blk.0.ffn_down=Q6_K blk.3.attn_v=Q6_K blk.3.ffn_down=Q6_K "
      "blk.6.attn_v=Q6_K blk.6.ffn_down=Q6_K blk.9.attn_v=Q6_K blk.9.ffn_down=Q6_K blk.10.attn_v=Q6_K "
      "blk.10.ffn_down=Q6_K blk.11.attn_v=Q6_K blk.11.ffn_down=Q6_K"},
    {12, 8, "Q6_K", 86,
      ""},
    {12, 8, "IQ4_NL", 84,
      "output=Q6_K blk.0.ffn_down=Q5_K"},
    {12, 8, "IQ4_XS", 84,
      "output=Q6_K blk.0.ffn_down=Q5_K"},
    {12, 8, "Q4_0", 85,
      "output=Q6_K"},
    {12, 8, "Q8_0", 86,
      ""},
};

Model dry_run_model(int n_layer, uint32_t n_kv_head) {
  Model m;
  m.metadata.push_back(GgufKV{"general.architecture", GgufValue{std::string("llama")}});
  m.metadata.push_back(kv_u32("llama.block_count", uint32_t(n_layer)));
  m.metadata.push_back(kv_u32("llama.attention.head_count", 8));
  m.metadata.push_back(kv_u32("llama.attention.head_count_kv", n_kv_head));
  const int64_t dim = 256, ff = 512, vocab = 512, kv = dim * n_kv_head / 8;
  m.tensors.push_back(make_tensor("token_embd.weight", {dim, vocab}));
  m.tensors.push_back(make_tensor("output.weight", {dim, vocab}));
  m.tensors.push_back(make_tensor("output_norm.weight", {dim}));
  for (int i = 0; i < n_layer; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    m.tensors.push_back(make_tensor(p + "attn_norm.weight", {dim}));
    m.tensors.push_back(make_tensor(p + "attn_q.weight", {dim, dim}));
    m.tensors.push_back(make_tensor(p + "attn_k.weight", {dim, kv}));
    m.tensors.push_back(make_tensor(p + "attn_v.weight", {dim, kv}));
    m.tensors.push_back(make_tensor(p + "attn_output.weight", {dim, dim}));
    m.tensors.push_back(make_tensor(p + "ffn_gate.weight", {dim, ff}));
    m.tensors.push_back(make_tensor(p + "ffn_up.weight", {dim, ff}));
    m.tensors.push_back(make_tensor(p + "ffn_down.weight", {ff, dim}));
    m.tensors.push_back(make_tensor(p + "ffn_norm.weight", {dim}));
  }
  std::mt19937 rng(11);
  std::shuffle(m.tensors.begin(), m.tensors.end(), rng);
  return m;
}

}  // namespace

TEST(QuantMix, MatchesLlamaQuantizeDryRunOnDeepModels) {
  for (const DryRun& d : kDryRuns) {
    SCOPED_TRACE(std::string(d.ftype) + " n_layer " + std::to_string(d.n_layer) + " n_kv_head " + std::to_string(d.n_kv_head));
    const Model m = dry_run_model(d.n_layer, d.n_kv_head);
    const auto ft = parse_file_type(d.ftype);
    ASSERT_TRUE(ft.has_value());
    const GgmlType base = file_type_default(*ft);
    const auto choices = choose_tensor_types(*ft, m, false);
    std::map<std::string, std::string> want;
    std::istringstream in(d.others);
    for (std::string item; in >> item;) {
      const auto eq = item.find('=');
      want[item.substr(0, eq) + ".weight"] = item.substr(eq + 1);
    }
    int n_base = 0;
    for (size_t i = 0; i < m.tensors.size(); ++i) {
      const Tensor& t = m.tensors[i];
      if (t.ne.size() < 2) {
        EXPECT_EQ(choices[i].type, GgmlType::F32) << t.name;
        continue;
      }
      const auto it = want.find(t.name);
      if (it == want.end()) {
        EXPECT_EQ(type_name(choices[i].type), type_name(base)) << t.name << " (" << choices[i].reason << ")";
        ++n_base;
      } else {
        EXPECT_EQ(type_name(choices[i].type), it->second) << t.name << " (" << choices[i].reason << ")";
      }
    }
    EXPECT_EQ(n_base, d.n_base);
  }
}

// convert_tensor: the bytes llama.cpp wrote, from F32 and from F16 sources, any thread count.
TEST(QuantMix, ConvertTensorReproducesReferenceFiles) {
  DCQ_REQUIRE_DATA();
  const Model src = read_gguf(test::model_path("synth256/synth256-F32.gguf"));
  const Model q4km = read_gguf(test::model_path("synth256/synth256-Q4_K_M.gguf"));
  for (const Tensor& r : q4km.tensors) {
    const Tensor* t = src.find_tensor(r.name);
    ASSERT_NE(t, nullptr);
    for (int threads : {1, 2, 5}) {
      const auto out = convert_tensor(*t, r.type, threads);
      ASSERT_EQ(out.size(), r.data.size()) << r.name;
      EXPECT_TRUE(std::equal(out.begin(), out.end(), r.data.begin())) << r.name << " threads " << threads;
    }
  }
  // F16 -> F32 is exact, so converting the F16 file's tensor to F32 gives its floats, and
  // F16 -> F16 copies.
  const Model f16 = read_gguf(test::model_path("synth256/synth256-F16.gguf"));
  const Tensor* h = f16.find_tensor("blk.0.ffn_up.weight");
  ASSERT_NE(h, nullptr);
  EXPECT_TRUE(std::equal(h->data.begin(), h->data.end(), convert_tensor(*h, GgmlType::F16).begin()));
  const auto back = convert_tensor(*h, GgmlType::F32);
  const Tensor* f = src.find_tensor("blk.0.ffn_up.weight");
  const auto again = convert_tensor(*f, GgmlType::F16);
  EXPECT_TRUE(std::equal(again.begin(), again.end(), h->data.begin()));
  EXPECT_EQ(back.size(), f->data.size());
  // Shape and size validation.
  Tensor bad = *f;
  bad.data = bad.data.subspan(0, bad.data.size() - 4);
  EXPECT_THROW(convert_tensor(bad, GgmlType::Q8_0), Error);
  const Model stories = read_gguf(test::model_path("stories260K/stories260K-F32.gguf"));
  try {
    convert_tensor(*stories.find_tensor("blk.0.ffn_down.weight"), GgmlType::Q4_K);
    FAIL() << "172-wide rows cannot become Q4_K";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::bad_input);
    EXPECT_NE(std::string(e.what()).find("172"), std::string::npos) << e.what();
  }
}
