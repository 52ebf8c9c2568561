// dcq convert against llama.cpp's own files: quantizing F32 reproduces llama-quantize's output
// byte for byte (whole files: metadata, tensor order, mixes, fallbacks, data), and llama2.c's
// checkpoint converts to exactly llama.cpp's converter output.
#include <gtest/gtest.h>

#include "dcq/convert.hpp"
#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/synth.hpp"
#include "test_support.hpp"

using namespace dcq;
using dcq::test::TempDir;

namespace {
void expect_identical_conversion(const std::string& in, const std::string& type, bool pure,
                                 const std::string& expected) {
  SCOPED_TRACE(in + " -> " + type + " vs " + expected);
  TempDir dir;
  ConvertOptions o;
  o.input = test::model_path(in);
  o.output = dir / "out.gguf";
  o.type = type;
  o.pure = pure;
  o.threads = 2;
  convert(o);
  EXPECT_EQ(test::slurp(o.output), test::slurp(test::model_path(expected)));
}
}  // namespace

TEST(Convert, StoriesMixesEqualLlamaQuantize) {
  DCQ_REQUIRE_DATA();
  for (const char* t : {"F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "IQ4_NL", "Q4_K_M",
                        "Q5_K_M", "Q3_K_M"})
    expect_identical_conversion("stories260K/stories260K-F32.gguf", t, false,
                                std::string("stories260K/stories260K-") + t + ".gguf");
}

TEST(Convert, Synth256PureTypesEqualLlamaQuantize) {
  DCQ_REQUIRE_DATA();
  const std::pair<const char*, const char*> cases[] = {
      {"F16", "F16"}, {"BF16", "BF16"}, {"Q8_0", "Q8_0"}, {"Q4_0", "Q4_0"}, {"Q4_1", "Q4_1"},
      {"Q5_0", "Q5_0"}, {"Q5_1", "Q5_1"}, {"IQ4_NL", "IQ4_NL"}, {"IQ4_XS", "IQ4_XS"},
      {"Q2_K", "Q2_K"}, {"Q3_K_S", "Q3_K_S"}, {"Q4_K_S", "Q4_K_S"}, {"Q5_K_S", "Q5_K_S"},
      {"Q6_K", "Q6_K"}};
  for (const auto& [type, file] : cases)
    expect_identical_conversion("synth256/synth256-F32.gguf", type, true,
                                std::string("synth256/synth256-") + file + ".gguf");
  expect_identical_conversion("synth256/synth256-F32.gguf", "Q4_K_M", false, "synth256/synth256-Q4_K_M.gguf");
}

TEST(Convert, Llama2cCheckpointEqualsLlamaCppConverter) {
  DCQ_REQUIRE_DATA();
  expect_identical_conversion("stories260K/stories260K.bin", "", false, "stories260K/stories260K-F32.gguf");
}

TEST(Convert, KeepingTypesCopiesExactly) {
  DCQ_REQUIRE_DATA();
  expect_identical_conversion("stories260K/stories260K-Q4_K_M.gguf", "", false, "stories260K/stories260K-Q4_K_M.gguf");
}

TEST(Convert, RefusesBadRequests) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  ConvertOptions o;
  o.input = test::model_path("stories260K/stories260K-F32.gguf");
  o.output = dir / "out.bin";
  try {
    convert(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::usage);
  }
  o.output = dir / "out.gguf";
  o.type = "Q9_9";
  try {
    convert(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::usage);
  }
  EXPECT_FALSE(std::filesystem::exists(o.output));
}

TEST(Convert, UpdatedKeysMoveToTheEndAsInLlamaQuantize) {
  // llama.cpp's gguf_set_val_* removes an existing key and appends it. dcq synth writes
  // general.quantization_version among the hyper-parameters; after quantizing it must come last
  // but one, before general.file_type (this is what made 110M synth files differ from
  // llama-quantize's before).
  TempDir dir;
  SynthOptions so;
  so.preset = "synth256";
  so.output = dir / "in.gguf";
  synth(so);
  ASSERT_NE(read_gguf(so.output).metadata.back().key, "general.quantization_version");
  ConvertOptions o;
  o.input = so.output;
  o.output = dir / "out.gguf";
  o.type = "Q4_0";
  convert(o);
  const Model m = read_gguf(o.output);
  ASSERT_GE(m.metadata.size(), 2u);
  EXPECT_EQ(m.metadata[m.metadata.size() - 2].key, "general.quantization_version");
  EXPECT_EQ(m.metadata.back().key, "general.file_type");
  EXPECT_EQ(m.metadata.back().value.as_int("ft"), 2);
  size_t n = 0;
  for (const auto& kv : m.metadata) n += kv.key == "general.file_type";
  EXPECT_EQ(n, 1u);
}
