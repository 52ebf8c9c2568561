// The CLI contract of docs/cli.md: exit codes, one-line errors, --json documents, --force.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

using dcq::test::run_dcq;
using dcq::test::TempDir;

TEST(Cli, VersionAndHelp) {
  auto r = run_dcq("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("dcq "), std::string::npos);
  EXPECT_EQ(run_dcq("--help").exit_code, 0);
  EXPECT_EQ(run_dcq("inspect --help").exit_code, 0);
}

TEST(Cli, UsageErrorsExit2) {
  EXPECT_EQ(run_dcq("").exit_code, 2);
  EXPECT_EQ(run_dcq("nosuchcommand").exit_code, 2);
  EXPECT_EQ(run_dcq("inspect --bogus-flag x").exit_code, 2);
  EXPECT_EQ(run_dcq("synth --preset synth256 --threads -3 -o /tmp/x.gguf").exit_code, 2);
  auto r = run_dcq("synth --preset nosuch -o /tmp/never.gguf");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("unknown synth preset"), std::string::npos);
}

TEST(Cli, BadInputExit3WithOneLineNamingTheFile) {
  TempDir dir;
  auto r = run_dcq("inspect /nonexistent/model.gguf");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("/nonexistent/model.gguf"), std::string::npos);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  dcq::test::spit(dir / "junk.gguf", {'G', 'G', 'U', 'F', 9, 0, 0, 0});
  r = run_dcq("inspect " + (dir / "junk.gguf").string());
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("junk.gguf"), std::string::npos);
  EXPECT_TRUE(r.out.empty());
}

TEST(Cli, InspectJsonIsOneDocument) {
  DCQ_REQUIRE_DATA();
  auto r = run_dcq("inspect --json " + dcq::test::model_path("stories260K/stories260K-Q4_0.gguf").string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["format"], "gguf");
  EXPECT_EQ(j["tensors"].size(), 48u);
  EXPECT_EQ(j["metadata"]["general.architecture"], "llama");
  EXPECT_EQ(j["totals"]["file_bytes"], 277024);
  EXPECT_EQ(j["metadata"]["tokenizer.ggml.tokens"]["count"], 512);
}

TEST(Cli, SynthIsDeterministicForAnyThreadCountAndNeedsForce) {
  TempDir dir;
  const auto a = (dir / "a.gguf").string(), b = (dir / "b.gguf").string();
  ASSERT_EQ(run_dcq("synth --preset synth256 --type F16 --seed 7 --threads 1 -o " + a).exit_code, 0);
  ASSERT_EQ(run_dcq("synth --preset synth256 --type F16 --seed 7 --threads 2 -o " + b).exit_code, 0);
  EXPECT_EQ(dcq::test::slurp(a), dcq::test::slurp(b));
  // Existing output without --force: usage error, file untouched.
  const auto before = dcq::test::slurp(a);
  auto r = run_dcq("synth --preset synth256 --type F32 --seed 7 -o " + a);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("--force"), std::string::npos);
  EXPECT_EQ(dcq::test::slurp(a), before);
  ASSERT_EQ(run_dcq("synth --preset synth256 --type F16 --seed 8 --force -o " + a).exit_code, 0);
  EXPECT_NE(dcq::test::slurp(a), before);
  // No temporary files left behind.
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) (void)e, ++n;
  EXPECT_EQ(n, 2u);
}

TEST(Cli, SynthWritesTheRequestedShape) {
  TempDir dir;
  const auto p = (dir / "m.gguf").string();
  ASSERT_EQ(run_dcq("synth --dim 128 --ffn 256 --layers 3 --heads 4 --kv-heads 2 --vocab 300 --type F32 -o " + p).exit_code, 0);
  auto r = run_dcq("inspect --json " + p);
  ASSERT_EQ(r.exit_code, 0);
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["metadata"]["llama.block_count"], 3);
  EXPECT_EQ(j["totals"]["tensors"], 1 + 3 * 9 + 2);
  for (const auto& t : j["tensors"])
    if (t["name"] == "blk.0.attn_k.weight") {
      EXPECT_EQ(t["shape"], nlohmann::json::array({128, 64}));
    }
}
