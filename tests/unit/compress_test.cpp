// The lossless CLI: compress / decompress / verify / analyze / inspect exit codes and messages.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "dcq/container.hpp"
#include "test_support.hpp"

using dcq::test::run_dcq;
using dcq::test::TempDir;

namespace {

std::string q(const std::filesystem::path& p) {
  std::string s(1, '\'');
  s.append(p.string());
  s.push_back('\'');
  return s;
}

}  // namespace

TEST(CompressCli, RoundTripAndVerify) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  const auto in = dcq::test::model_path("stories260K/stories260K-Q8_0.gguf");
  auto r = run_dcq("compress " + q(in) + " -o " + q(tmp / "m.dcq") + " --lossless --level 3 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_GT(j["ratio"].get<double>(), 1.1);
  r = run_dcq("verify " + q(tmp / "m.dcq"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ok"), std::string::npos);
  r = run_dcq("decompress " + q(tmp / "m.dcq") + " -o " + q(tmp / "back.gguf"));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(dcq::test::slurp(in) == dcq::test::slurp(tmp / "back.gguf"));
  r = run_dcq("inspect " + q(tmp / "m.dcq") + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto ij = nlohmann::json::parse(r.out);
  EXPECT_EQ(ij["format"], "dcq");
  EXPECT_EQ(ij["tensors"].size(), 48u);
}

TEST(CompressCli, UsageErrors) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  const auto in = dcq::test::model_path("stories260K/stories260K-Q4_0.gguf");
  // Lossy options with --lossless contradict each other.
  EXPECT_EQ(run_dcq("compress " + q(in) + " -o " + q(tmp / "m.dcq") + " --lossless --quant int8").exit_code, 2);
  EXPECT_FALSE(std::filesystem::exists(tmp / "m.dcq"));
  dcq::test::spit(tmp / "exists.dcq", {1, 2, 3});
  EXPECT_EQ(run_dcq("compress " + q(in) + " -o " + q(tmp / "exists.dcq") + " --lossless").exit_code, 2);
  EXPECT_EQ(run_dcq("compress " + q(in) + " -o " + q(tmp / "m.dcq") + " --lossless --level 40").exit_code, 2);
  // Not a GGUF: a .dcq given to compress, a GGUF given to verify.
  EXPECT_EQ(run_dcq("verify " + q(in)).exit_code, 3);
}

TEST(CompressCli, CorruptionExitsFourNamingTensorAndChunkAndWritesNothing) {
  DCQ_REQUIRE_DATA();
  TempDir tmp;
  const auto in = dcq::test::model_path("stories260K/stories260K-Q4_0.gguf");
  ASSERT_EQ(run_dcq("compress " + q(in) + " -o " + q(tmp / "m.dcq") + " --lossless --level 3").exit_code, 0);
  auto bytes = dcq::test::slurp(tmp / "m.dcq");
  const auto reader = dcq::DcqReader::parse(bytes, "m.dcq");
  const auto& c = reader.index().chunks[10];
  const std::string tensor = reader.index().tensors[c.tensor].name;
  bytes[c.offset + 20] ^= 0x40;
  dcq::test::spit(tmp / "bad.dcq", bytes);
  auto r = run_dcq("verify " + q(tmp / "bad.dcq"));
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_NE(r.err.find(tensor), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("chunk 10"), std::string::npos) << r.err;
  r = run_dcq("decompress " + q(tmp / "bad.dcq") + " -o " + q(tmp / "out.gguf"));
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_FALSE(std::filesystem::exists(tmp / "out.gguf"));
  for (const auto& e : std::filesystem::directory_iterator(tmp.path()))
    EXPECT_EQ(e.path().string().find(".tmp."), std::string::npos) << "temporary left behind: " << e.path();
  EXPECT_EQ(run_dcq("inspect " + q(tmp / "bad.dcq")).exit_code, 4);
  // Truncated: a broken footer is bad input (3).
  bytes = dcq::test::slurp(tmp / "m.dcq");
  bytes.resize(bytes.size() - 10);
  dcq::test::spit(tmp / "short.dcq", bytes);
  r = run_dcq("verify " + q(tmp / "short.dcq"));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.err.find("truncated"), std::string::npos) << r.err;
}

TEST(CompressCli, AnalyzeReportsEntropyAndCodecBits) {
  DCQ_REQUIRE_DATA();
  const auto in = dcq::test::model_path("stories260K/stories260K-Q4_0.gguf");
  const auto r = run_dcq("analyze " + q(in) + " --json --level 3 --repeat 1");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  bool found = false;
  for (const auto& t : j["tensors"]) {
    if (t["name"] != "blk.0.ffn_up.weight") continue;
    found = true;
    const auto& codes = t["streams"]["block_fields_unpacked"][2];
    const double h0 = codes["h0"].get<double>();
    EXPECT_GT(h0, 2.0);
    EXPECT_LT(h0, 4.0);
    // rANS order 0 on the unpacked codes comes within 2 % of their order-0 entropy (+ table).
    EXPECT_LT(codes["bits"]["rans-o0"].get<double>(), h0 * 1.02 + 0.15);
    EXPECT_GT(t["chosen"]["decode_gbps"].get<double>(), 0.0);
  }
  EXPECT_TRUE(found);
  EXPECT_GT(j["totals"]["ratio"].get<double>(), 1.1);
}
