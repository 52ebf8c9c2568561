// Running from a .dcq: the lazy source gives the same tokens as the GGUF it was made from, at any
// memory budget, never holds more than the budget, and refuses corrupt chunks and tiny budgets.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "dcq/compress.hpp"
#include "dcq/container.hpp"
#include "dcq/engine.hpp"
#include "dcq/error.hpp"
#include "dcq/io.hpp"
#include "dcq/loader.hpp"
#include "dcq/sampler.hpp"
#include "dcq/tokenizer.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace dcq;

namespace {

// Greedy continuation of "Once upon a time" (token ids, prompt excluded).
std::vector<int32_t> greedy(WeightSource& w, const Model& meta, int n) {
  const Tokenizer tok = Tokenizer::from_model(meta);
  Engine e(w, {0, 1});
  std::vector<int32_t> ids = tok.encode("Once upon a time", true);
  auto logits = e.eval(ids);
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) {
    const int32_t next = argmax(logits);
    out.push_back(next);
    logits = e.eval(std::span<const int32_t>(&next, 1));
  }
  return out;
}

// Small chunks so that an embedding row costs little and a 20% budget is above the working set.
fs::path make_dcq(const fs::path& dir, const std::string& type) {
  CompressOptions o;
  o.input = test::model_path("stories260K/stories260K-" + type + ".gguf");
  o.output = dir / (type + ".dcq");
  o.chunk_size = 4096;
  compress(o);
  return o.output;
}

}  // namespace

TEST(LoaderBudget, ParsesBytesSuffixesAndPercent) {
  EXPECT_TRUE(MemBudget::parse("").unlimited);
  EXPECT_EQ(MemBudget::parse("1000").resolve(10), 1000u);
  EXPECT_EQ(MemBudget::parse("2K").resolve(10), 2048u);
  EXPECT_EQ(MemBudget::parse("3M").resolve(10), 3u << 20);
  EXPECT_EQ(MemBudget::parse("50%").resolve(1000), 500u);
  for (const char* bad : {"x", "-5", "0", "5Q", "%", "12.5.1"}) {
    try {
      (void)MemBudget::parse(bad);
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::usage) << bad;
    }
  }
}

// Step 1 and 2: same 32 greedy tokens as the GGUF at every budget, and the cache's own
// accounting never goes above the budget.
TEST(LoaderGreedy, DcqMatchesGgufAtEveryBudget) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  for (const std::string type : {"Q8_0", "Q4_K_M"}) {
    const Model gguf = load_model(test::model_path("stories260K/stories260K-" + type + ".gguf"));
    ModelWeights gw(gguf);
    const auto want = greedy(gw, gguf, 32);
    ASSERT_EQ(want.size(), 32u);
    const fs::path dcq = make_dcq(dir.path(), type);
    uint64_t last_decoded = 0;
    for (const char* budget : {"", "100%", "50%", "20%"}) {
      DcqWeights w(dcq, MemBudget::parse(budget));
      ASSERT_NE(w.model(), nullptr);
      EXPECT_EQ(greedy(w, *w.model(), 32), want) << type << " budget " << budget;
      const auto& s = w.stats();
      EXPECT_GT(s.misses, 0u);
      EXPECT_GT(s.bytes_decoded, 0u);
      if (*budget) {
        EXPECT_LE(s.peak_resident_bytes, s.budget_bytes) << type << " " << budget;
      }
      const std::string b = budget;
      if (b.empty() || b == "100%") {
        // Everything fits: each tensor is decoded about once (embedding chunks come on top).
        EXPECT_LE(s.bytes_decoded, s.weight_bytes + s.min_working_set) << type << " " << b;
      } else {
        // Streaming: the unpinned tensors are decoded again on every token, the pinned ones hit.
        EXPECT_GT(s.bytes_decoded, s.weight_bytes) << type << " " << b;
        EXPECT_GT(s.hits, 0u) << type << " " << b;
        EXPECT_GT(s.bytes_decoded, last_decoded) << type << " " << b;  // less memory, more decoding
      }
      last_decoded = s.bytes_decoded;
    }
  }
}

TEST(LoaderBudget, BelowWorkingSetIsResourceError) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");
  try {
    DcqWeights w(dcq, MemBudget::parse("2K"));
    ADD_FAILURE() << "a 2 KiB budget was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ExitCode::resource);
    EXPECT_NE(std::string(e.what()).find("working set"), std::string::npos) << e.what();
  }
  const auto r = test::run_dcq("run " + dcq.string() + " -p 'Once upon a time' -n 4 --temp 0 --mem-budget 1%");
  EXPECT_EQ(r.exit_code, 5) << r.err;
}

// The CLI: `dcq run X.dcq` prints the GGUF's tokens; statistics appear in --json.
TEST(LoaderCli, RunDcqEqualsRunGguf) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const fs::path gguf = test::model_path("stories260K/stories260K-Q8_0.gguf");
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");
  const std::string args = " -p 'Once upon a time' -n 32 --temp 0 --json";
  const auto a = test::run_dcq("run " + gguf.string() + args);
  const auto b = test::run_dcq("run " + dcq.string() + args + " --mem-budget 30%");
  ASSERT_EQ(a.exit_code, 0) << a.err;
  ASSERT_EQ(b.exit_code, 0) << b.err;
  const auto ja = nlohmann::json::parse(a.out), jb = nlohmann::json::parse(b.out);
  EXPECT_EQ(ja["tokens"], jb["tokens"]);
  EXPECT_EQ(ja["tokens"].size(), 32u);
  ASSERT_TRUE(jb.contains("loader"));
  EXPECT_LE(jb["loader"]["peak_resident_bytes"].get<uint64_t>(), jb["loader"]["budget_bytes"].get<uint64_t>());
  // Perplexity on a slice of the text: the same number from both.
  auto text = test::slurp(test::data_dir() / "text/tinystories_val.txt");
  text.resize(std::min<size_t>(text.size(), 8000));
  test::spit(dir.path() / "slice.txt", text);
  const std::string pargs = " -f " + (dir.path() / "slice.txt").string() + " -c 64 --chunks 3 --json";
  const auto pa = test::run_dcq("perplexity " + gguf.string() + pargs);
  const auto pb = test::run_dcq("perplexity " + dcq.string() + pargs + " --mem-budget 50%");
  ASSERT_EQ(pa.exit_code, 0) << pa.err;
  ASSERT_EQ(pb.exit_code, 0) << pb.err;
  EXPECT_EQ(nlohmann::json::parse(pa.out)["ppl"], nlohmann::json::parse(pb.out)["ppl"]);
  EXPECT_EQ(nlohmann::json::parse(pb.out)["chunks"], 3);
}

// Step 3: the prefetch thread decodes ahead without changing a token or exceeding the budget.
TEST(LoaderPrefetch, SameTokensWithinBudgetAndDecodesAhead) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");
  std::vector<int32_t> want;
  for (const char* budget : {"", "50%", "20%"}) {
    for (const bool prefetch : {false, true}) {
      DcqWeights w(dcq, MemBudget::parse(budget), prefetch);
      const auto got = greedy(w, *w.model(), 16);
      if (want.empty()) want = got;
      EXPECT_EQ(got, want) << budget << " prefetch " << prefetch;
      const auto& s = w.stats();
      if (*budget) {
        EXPECT_LE(s.peak_resident_bytes, s.budget_bytes) << budget << " prefetch " << prefetch;
      }
      if (prefetch && *budget) {
        // Unlimited: after the first pass (which teaches the order) everything is resident.
        EXPECT_GT(s.prefetched, 0u) << budget;
      } else if (!prefetch) {
        EXPECT_EQ(s.prefetched, 0u) << budget;
      }
    }
  }
}

// Chunks of one tensor decoded by several threads: same tokens, same accounting.
TEST(LoaderThreads, ParallelChunkDecodingGivesSameTokens) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const fs::path dcq = make_dcq(dir.path(), "Q4_K_M");
  DcqWeights one(dcq, MemBudget::parse("20%"), false, 1), two(dcq, MemBudget::parse("20%"), false, 2);
  EXPECT_EQ(greedy(one, *one.model(), 16), greedy(two, *two.model(), 16));
  EXPECT_EQ(one.stats().bytes_decoded, two.stats().bytes_decoded);
  EXPECT_LE(two.stats().peak_resident_bytes, two.stats().budget_bytes);
}

// A corrupted chunk payload is found when that chunk is decoded: exit 4 naming tensor and chunk.
TEST(LoaderIntegrity, CorruptChunkGivesExit4DuringRun) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");
  size_t at = 0;
  std::string tensor;
  {
    const auto r = DcqReader::open(dcq);
    const auto& ix = r.index();
    for (const auto& t : ix.tensors)
      if (t.name == "blk.2.ffn_down.weight" && t.n_chunks > 0) {
        const auto& c = ix.chunks[t.first_chunk];
        at = size_t(c.offset + c.stored_size / 2);
        tensor = t.name;
      }
  }
  ASSERT_FALSE(tensor.empty());
  auto bytes = test::slurp(dcq);
  bytes[at] ^= 0x5A;
  test::spit(dcq, bytes);
  const auto r = test::run_dcq("run " + dcq.string() + " -p 'Once upon a time' -n 8 --temp 0");
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find(tensor), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("chunk"), std::string::npos) << r.err;
  // Decoded ahead on the prefetch thread, under a budget: the same error, on the engine's thread.
  const auto p = test::run_dcq("run " + dcq.string() + " -p 'Once upon a time' -n 8 --temp 0 --prefetch --mem-budget 50%");
  EXPECT_EQ(p.exit_code, 4) << p.err;
  EXPECT_NE(p.err.find(tensor), std::string::npos) << p.err;
}
