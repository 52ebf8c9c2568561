// Running from a .dcq: the lazy source gives the same tokens as the GGUF it was made from, at any
// memory budget, never holds more than the budget, and refuses corrupt chunks and tiny budgets.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dcq/compress.hpp"
#include "dcq/container.hpp"
#include "dcq/engine.hpp"
#include "dcq/error.hpp"
#include "dcq/io.hpp"
#include "dcq/kernels.hpp"
#include "dcq/loader.hpp"
#include "dcq/sampler.hpp"
#include "dcq/tokenizer.hpp"
#include "loader_test_support.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace dcq;
using dcq::test::greedy;

namespace {

// Small chunks so that an embedding row costs little and a 20% budget is above the working set.
fs::path make_dcq(const fs::path& dir, const std::string& type) {
  CompressOptions o;
  o.input = test::model_path("stories260K/stories260K-" + type + ".gguf");
  o.output = dir / (type + ".dcq");
  o.chunk_size = 4096;
  compress(o);
  return o.output;
}

// The first 8 kB of TinyStories: a few perplexity chunks of 64 tokens.
fs::path text_slice(const fs::path& dir) {
  auto text = test::slurp(test::data_dir() / "text/tinystories_val.txt");
  text.resize(std::min<size_t>(text.size(), 8000));
  test::spit(dir / "slice.txt", text);
  return dir / "slice.txt";
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

// Without a budget the engine repacks a .dcq's Q8_0 / Q4_0 / Q4_K / Q6_K matrices as it does a
// GGUF's (same kernels, same speed) and the loader frees its decoded copies: the model is
// resident once. Same tokens as the GGUF on every kernel path.
TEST(LoaderGreedy, UnbudgetedDcqIsRepackedAndResidentOnce) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const auto isa = kernels::active_isa();
  fs::path q8;
  for (const std::string type : {"Q8_0", "Q4_0", "Q4_K_M"}) {
    const Model gguf = load_model(test::model_path("stories260K/stories260K-" + type + ".gguf"));
    const fs::path dcq = make_dcq(dir.path(), type);
    if (type == "Q8_0") q8 = dcq;
    for (const auto path : {kernels::Isa::scalar, kernels::Isa::avx2, kernels::Isa::avx512}) {
      if (!kernels::cpu_supports(path)) continue;
      kernels::set_isa(path);
      ModelWeights gw(gguf);
      const auto want = greedy(gw, gguf, 16);
      DcqWeights w(dcq);
      EXPECT_TRUE(w.all_resident());
      EXPECT_EQ(greedy(w, *w.model(), 16), want) << type << " " << kernels::isa_name(path);
      // What the kernels repack (the path decides) must have been handed back by the loader.
      uint64_t repacked = 0;
      const bool tied = gguf.find_tensor("output.weight") == nullptr;
      for (const auto& t : gguf.tensors) {
        const bool matrix = t.name.rfind("blk.", 0) == 0 ? t.name.find("norm") == std::string::npos
                                                          : t.name == (tied ? "token_embd.weight" : "output.weight");
        if (matrix && kernels::interleave_pays(t.type, t.n_rows(), t.row_width())) repacked += t.data.size();
      }
      if (path != kernels::Isa::scalar) {
        EXPECT_GT(repacked, 0u) << type;
      }
      const auto& s = w.stats();
      EXPECT_LE(s.resident_bytes + repacked, s.weight_bytes + s.min_working_set) << type << " " << kernels::isa_name(path);
    }
    kernels::set_isa(isa);
  }
  // Under a budget nothing is repacked (tensors come and go).
  DcqWeights b(q8, MemBudget::parse("100%"));
  EXPECT_FALSE(b.all_resident());
}

// Under a budget the engine keeps no copies of its own: it asks the loader for interleaved rows
// (WeightSource::want_interleaved), and the loader interleaves each matrix in place as it decodes
// it, pinned or streamed, with or without prefetch. The bytes handed out are exactly
// kernels::interleave_rows of the GGUF's rows, and the tokens are the GGUF's on every kernel path.
TEST(LoaderGreedy, BudgetedDcqServesInterleavedRows) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const auto isa = kernels::active_isa();
  for (const std::string type : {"Q8_0", "Q4_0", "Q4_K_M"}) {
    const Model gguf = load_model(test::model_path("stories260K/stories260K-" + type + ".gguf"));
    const fs::path dcq = make_dcq(dir.path(), type);
    for (const auto path : {kernels::Isa::scalar, kernels::Isa::avx2, kernels::Isa::avx512}) {
      if (!kernels::cpu_supports(path)) continue;
      kernels::set_isa(path);
      ModelWeights gw(gguf);
      const auto want = greedy(gw, gguf, 16);
      for (const bool prefetch : {false, true}) {
        DcqWeights w(dcq, MemBudget::parse("40%"), prefetch);
        EXPECT_EQ(greedy(w, *w.model(), 16), want) << type << " " << kernels::isa_name(path) << " prefetch " << prefetch;
      }
      // One matrix directly: interleaved exactly when the kernels want it, same bytes as theirs.
      DcqWeights w(dcq, MemBudget::parse("40%"));
      // [64, 172]: 64 columns are whole Q8_0 / Q4_0 blocks; Q4_K_M keeps its Q8_0 classifier.
      const Tensor& t = *gguf.find_tensor(type == "Q4_K_M" ? "output.weight" : "blk.1.ffn_up.weight");
      const bool pays = kernels::interleave_pays(t.type, t.n_rows(), t.row_width());
      if (path != kernels::Isa::scalar) {
        EXPECT_TRUE(pays) << type << " " << type_name(t.type);
      }
      w.want_interleaved(t.name);
      const WeightBlocks b = w.acquire(t.name);
      EXPECT_EQ(b.interleaved, pays) << type << " " << kernels::isa_name(path);
      std::vector<uint8_t> expect(t.data.begin(), t.data.end());
      if (pays) kernels::interleave_rows(t.type, t.n_rows(), t.row_width(), t.data.data(), expect.data());
      EXPECT_TRUE(std::equal(b.data.begin(), b.data.end(), expect.begin(), expect.end())) << type;
      w.release(t.name);
      // A tensor nobody asked for stays plain.
      const Tensor& q = *gguf.find_tensor("blk.1.attn_q.weight");
      const WeightBlocks p = w.acquire(q.name);
      EXPECT_FALSE(p.interleaved);
      EXPECT_TRUE(std::equal(p.data.begin(), p.data.end(), q.data.begin(), q.data.end())) << type;
      w.release(q.name);
    }
    kernels::set_isa(isa);
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
  const fs::path slice = text_slice(dir.path());
  const std::string pargs = " -f " + slice.string() + " -c 64 --chunks 3 --json";
  const auto pa = test::run_dcq("perplexity " + gguf.string() + pargs);
  const auto pb = test::run_dcq("perplexity " + dcq.string() + pargs + " --mem-budget 50%");
  ASSERT_EQ(pa.exit_code, 0) << pa.err;
  ASSERT_EQ(pb.exit_code, 0) << pb.err;
  EXPECT_EQ(nlohmann::json::parse(pa.out)["ppl"], nlohmann::json::parse(pb.out)["ppl"]);
  EXPECT_EQ(nlohmann::json::parse(pb.out)["chunks"], 3);
}

// `dcq perplexity --prefetch`: the decoded-ahead weights give the GGUF's perplexity at a 40 %
// budget (every token streams most of the model through the prefetcher), within the budget.
TEST(LoaderPrefetch, PerplexityAt40PercentEqualsGguf) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const fs::path gguf = test::model_path("stories260K/stories260K-Q8_0.gguf");
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");
  const fs::path slice = text_slice(dir.path());
  const std::string pargs = " -f " + slice.string() + " -c 64 --chunks 3 --json --threads 2";
  const auto pa = test::run_dcq("perplexity " + gguf.string() + pargs);
  const auto pb = test::run_dcq("perplexity " + dcq.string() + pargs + " --mem-budget 40% --prefetch --prefetch-depth 3");
  ASSERT_EQ(pa.exit_code, 0) << pa.err;
  ASSERT_EQ(pb.exit_code, 0) << pb.err;
  const auto ja = nlohmann::json::parse(pa.out), jb = nlohmann::json::parse(pb.out);
  EXPECT_EQ(ja["ppl"], jb["ppl"]);
  EXPECT_EQ(jb["chunks"], 3);
  const auto& l = jb["loader"];
  EXPECT_GT(l["prefetched"].get<uint64_t>(), 0u);  // the option reached the loader
  EXPECT_GT(l["misses"].get<uint64_t>(), 10u);     // and the budget made it stream
  EXPECT_LE(l["peak_resident_bytes"].get<uint64_t>(), l["budget_bytes"].get<uint64_t>());
  // Depth 0 is refused like on `dcq run`.
  EXPECT_EQ(test::run_dcq("perplexity " + dcq.string() + pargs + " --prefetch --prefetch-depth 0").exit_code, 2);
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
  // The plans come from decode speeds measured at open: under load two opens may pin a
  // different small tensor, and then decode different bytes. Same plan, same bytes.
  if (one.plan().pinned_by_index == two.plan().pinned_by_index) {
    EXPECT_EQ(one.stats().bytes_decoded, two.stats().bytes_decoded);
  }
  EXPECT_LE(two.stats().peak_resident_bytes, two.stats().budget_bytes);
}

// The prefetcher decodes several tensors ahead, each one's chunks in parallel on its own decoder
// pool: the greedy tokens are the GGUF's at every budget, prefetch depth and decoder/compute
// thread count, the cache's accounting (queued prefetches included) never exceeds the budget, and
// under a budget tensors really come from the prefetcher.
TEST(LoaderPrefetch, ParallelDecodeAheadSameTokensAtEveryBudgetAndThreadCount) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const Model gguf = load_model(test::model_path("stories260K/stories260K-Q8_0.gguf"));
  ModelWeights gw(gguf);
  const auto want = greedy(gw, gguf, 12);
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");  // 4 KiB chunks: many per tensor
  for (const char* budget : {"", "60%", "40%", "20%"}) {
    for (const int threads : {1, 2, 3}) {
      for (const int depth : {1, 3}) {
        DcqWeights w(dcq, MemBudget::parse(budget), true, threads);
        w.set_prefetch_depth(depth);
        const std::string what = std::string(budget) + " threads " + std::to_string(threads) + " depth " +
                                 std::to_string(depth);
        EXPECT_EQ(greedy(w, *w.model(), 12, threads), want) << what;
        const auto& s = w.stats();
        if (*budget) {
          EXPECT_LE(s.peak_resident_bytes, s.budget_bytes) << what;
          EXPECT_GT(s.prefetched, 0u) << what;
        }
      }
    }
  }
}

// A chunk that goes bad while running (the file changed in place after the order was learned) is
// decoded by the prefetch worker's pool: the checksum error reaches the engine's thread as
// Error(integrity) naming the tensor, and the bad buffer is never handed out.
TEST(LoaderPrefetch, CorruptChunkDecodedAheadIsIntegrityError) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");
  for (const int threads : {1, 2}) {
    const fs::path copy = dir.path() / ("c" + std::to_string(threads) + ".dcq");
    fs::copy_file(dcq, copy);
    DcqWeights w(copy, MemBudget::parse("20%"), true, threads);
    w.set_prefetch_depth(3);
    // A streamed layer weight (decoded again on every token, so ahead by the prefetcher).
    std::string tensor;
    for (const auto& t : w.plan().tensors)
      if (tensor.empty() && !t.pinned && !t.row_access && t.name.find("blk.2.") == 0 && t.bytes > 8192)
        tensor = t.name;
    ASSERT_FALSE(tensor.empty());
    (void)greedy(w, *w.model(), 3, threads);  // learns the order
    ASSERT_GT(w.stats().prefetched, 0u);
    uint64_t at = 0;
    {
      const auto r = DcqReader::open(copy);
      for (const auto& t : r.index().tensors)
        if (t.name == tensor) {
          const auto& c = r.index().chunks[t.first_chunk + t.n_chunks / 2];
          at = c.offset + c.stored_size / 2;
        }
    }
    {  // in place: the running reader's mapping sees the page cache
      std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
      f.seekg(std::streamoff(at));
      char b = 0;
      f.read(&b, 1);
      b = char(b ^ 0x5A);
      f.seekp(std::streamoff(at));
      f.write(&b, 1);
    }
    try {
      (void)greedy(w, *w.model(), 3, threads);
      ADD_FAILURE() << "corrupt chunk of " << tensor << " was used (threads " << threads << ")";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::integrity) << e.what();
      EXPECT_NE(std::string(e.what()).find(tensor), std::string::npos) << e.what();
    }
  }
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
  // With the prefetcher and parallel decoding, under a budget: the same error, exit 4.
  for (const char* extra : {" --prefetch --mem-budget 50%", " --prefetch --threads 2 --mem-budget 20%"}) {
    const auto p = test::run_dcq("run " + dcq.string() + " -p 'Once upon a time' -n 8 --temp 0" + extra);
    EXPECT_EQ(p.exit_code, 4) << extra << ": " << p.err;
    EXPECT_NE(p.err.find(tensor), std::string::npos) << p.err;
  }
}

// The speed-adaptive plan: pinned bytes plus the streaming window it needs stay within the budget
// at every budget, less memory never streams less, the row-read embedding table is streamed
// first, and the loader follows the plan (its own accounting stays below the budget).
TEST(LoaderPlan, RespectsBudgetAndStreamsMoreWithLessMemory) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");
  const auto reader = DcqReader::open(dcq);
  uint64_t last_streamed = 0;
  for (const char* budget : {"100%", "80%", "60%", "40%", "30%", "20%"}) {
    PlanOptions po;
    po.budget = MemBudget::parse(budget);
    po.measured_speeds = false;  // deterministic
    const LoadPlan p = make_plan(reader, po);
    EXPECT_LE(p.pinned_bytes + p.working_set, p.budget_bytes) << budget;
    EXPECT_LE(p.working_set, p.min_working_set) << budget;
    uint64_t pinned = 0, streamed = 0;
    for (const auto& t : p.tensors) {
      if (t.pinned) {
        pinned += t.bytes;
      } else {
        streamed += t.bytes_per_pass;
      }
      if (t.name == "token_embd.weight") {
        EXPECT_TRUE(t.row_access);
        if (std::string(budget) != "100%") {
          EXPECT_FALSE(t.pinned) << budget << ": rows cost one chunk per token";
        }
      }
    }
    EXPECT_EQ(pinned, p.pinned_bytes) << budget;
    EXPECT_EQ(streamed, p.streamed_bytes_per_token) << budget;
    EXPECT_GE(p.streamed_bytes_per_token, last_streamed) << budget;
    last_streamed = p.streamed_bytes_per_token;
    if (std::string(budget) != "100%") {
      EXPECT_GT(p.streamed_bytes_per_token, 0u) << budget;
      EXPECT_GT(p.decode_seconds_per_token, 0) << budget;
      EXPECT_FALSE(p.store_raw.empty()) << budget;
    }
    DcqWeights w(dcq, po.budget);
    // The loader plans with measured speeds (a different but equally valid choice): it follows it.
    EXPECT_EQ(w.stats().pinned_bytes, w.plan().pinned_bytes) << budget;
    EXPECT_LE(w.plan().pinned_bytes + w.plan().working_set, w.stats().budget_bytes) << budget;
    (void)greedy(w, *w.model(), 4);
    EXPECT_LE(w.stats().peak_resident_bytes, w.stats().budget_bytes) << budget;
  }
  // 100%: everything fits, nothing is decoded twice.
  PlanOptions all;
  all.budget = MemBudget::parse("200%");
  all.measured_speeds = false;
  EXPECT_EQ(make_plan(reader, all).streamed_bytes_per_token, 0u);
}

// Same greedy tokens as the GGUF at more budgets, with two decoder threads and a (fast)
// simulated slow device; the measured wall time is never below the device time of what was read.
TEST(LoaderGreedy, DcqMatchesGgufWithThreadsAndReadThrottle) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const Model gguf = load_model(test::model_path("stories260K/stories260K-Q8_0.gguf"));
  ModelWeights gw(gguf);
  const auto want = greedy(gw, gguf, 16);
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");
  const double rate = 50e6;  // 50 MB/s
  for (const char* budget : {"75%", "35%", "25%"}) {
    DcqWeights w(dcq, MemBudget::parse(budget), false, 2, rate);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(greedy(w, *w.model(), 16), want) << budget;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto& s = w.stats();
    EXPECT_GT(s.bytes_read, 0u);
    EXPECT_LT(s.bytes_read, s.bytes_decoded) << "the stored bytes are compressed";
    EXPECT_GE(wall, 0.95 * double(s.bytes_read) / rate) << budget;
    EXPECT_GT(s.read_wait_seconds, 0) << budget;
    EXPECT_LE(s.peak_resident_bytes, s.budget_bytes) << budget;
  }
}

// Flags: bad budgets and throttles exit 2 with one line; `plan --json` agrees with the library.
TEST(LoaderCli, PlanAndBadFlags) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");
  const auto ok = test::run_dcq("plan " + dcq.string() + " --mem-budget 40% --json");
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  const auto j = nlohmann::json::parse(ok.out);
  EXPECT_LE(j["pinned_bytes"].get<uint64_t>() + j["working_set_bytes"].get<uint64_t>(), j["budget_bytes"].get<uint64_t>());
  EXPECT_GT(j["streamed_bytes_per_token"].get<uint64_t>(), 0u);
  EXPECT_GT(j["compute_seconds_per_token"].get<double>(), 0);
  EXPECT_GT(j["predicted_tok_s"].get<double>(), 0);
  EXPECT_LE(j["predicted_tok_s"].get<double>(), j["resident_tok_s"].get<double>());
  size_t distinct = 0;
  const auto reader = DcqReader::open(dcq);
  for (const auto& t : reader.index().tensors) distinct += t.duplicate_of == kDcqNoDuplicate;
  EXPECT_EQ(j["tensors"].size(), distinct);
  const auto text = test::run_dcq("plan " + dcq.string() + " --mem-budget 40%");
  EXPECT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("streamed"), std::string::npos);
  const std::string run = "run " + dcq.string() + " -p 'Once upon a time' -n 2 --temp 0";
  for (const std::string& bad : std::vector<std::string>{"plan " + dcq.string() + " --mem-budget 0", "plan " + dcq.string() + " --mem-budget abc",
                                "plan " + dcq.string() + " --mem-budget 50% --read-throttle -5",
                                run + " --mem-budget 0", run + " --read-throttle x", run + " --read-throttle -1",
                                "bench memory " + dcq.string() + " --budgets 50%,zz",
                                "bench memory " + dcq.string() + " --read-throttle -3"}) {
    const auto r = test::run_dcq(bad);
    EXPECT_EQ(r.exit_code, 2) << bad << "\n" << r.err;
    std::string e = r.err;
    while (!e.empty() && e.back() == '\n') e.pop_back();
    EXPECT_FALSE(e.empty()) << bad;
    EXPECT_EQ(e.find('\n'), std::string::npos) << bad << ": " << r.err;
  }
  const auto small = test::run_dcq("plan " + dcq.string() + " --mem-budget 1K");
  EXPECT_EQ(small.exit_code, 5) << small.err;
}

// `dcq bench memory`: one row per budget, the tokens of the resident run, the cache within budget.
TEST(LoaderCli, BenchMemoryReportsEveryBudget) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");
  const auto r = test::run_dcq("bench memory " + dcq.string() + " --budgets 100%,30% --tokens 4 --repeats 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["budgets"].size(), 2u);
  const double res_max = j["resident"]["gen_tok_s"].get<double>(), res_min = j["resident"]["gen_tok_s_min"].get<double>();
  for (const auto& b : j["budgets"]) {
    // One ratio per round (that round's budget run over that round's resident run): each lies
    // between the slowest budget run over the fastest resident one and the reverse.
    const auto rounds = b["gen_vs_resident_rounds"].get<std::vector<double>>();
    ASSERT_EQ(rounds.size(), 2u) << b.dump();
    int at_least = 0;
    for (double x : rounds) {
      EXPECT_GE(x, b["gen_tok_s_min"].get<double>() / res_max * (1 - 1e-12)) << b.dump();
      EXPECT_LE(x, b["gen_tok_s"].get<double>() / res_min * (1 + 1e-12)) << b.dump();
      at_least += x >= 0.9;
    }
    EXPECT_DOUBLE_EQ(b["gen_vs_resident_median"].get<double>(), (rounds[0] + rounds[1]) / 2);
    EXPECT_EQ(b["rounds_at_least_0_9"].get<int>(), at_least);
    EXPECT_TRUE(b["tokens_equal_resident"].get<bool>()) << b.dump();
    EXPECT_LE(b["peak_cache_bytes"].get<uint64_t>(), b["budget_bytes"].get<uint64_t>());
    EXPECT_GT(b["gen_tok_s"].get<double>(), 0);
    EXPECT_GT(b["peak_rss_bytes"].get<uint64_t>(), 0u);
    EXPECT_GT(b["limit_tok_s"].get<double>(), 0);
  }
  const auto csv = test::run_dcq("bench memory " + dcq.string() + " --budgets 50% --tokens 2 --repeats 1 --csv");
  ASSERT_EQ(csv.exit_code, 0) << csv.err;
  EXPECT_EQ(std::count(csv.out.begin(), csv.out.end(), '\n'), 3) << csv.out;  // header, resident, 50%
  // An earlier result re-printed and drawn without running: one point per budget, same numbers.
  const fs::path res = dir.path() / "bench.json", svg = dir.path() / "bench.svg";
  test::spit(res, std::vector<uint8_t>(r.out.begin(), r.out.end()));
  const auto again = test::run_dcq("bench memory " + dcq.string() + " --from-json " + res.string() + " --svg " +
                                   svg.string() + " --json");
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(nlohmann::json::parse(again.out), j);
  const auto bytes = test::slurp(svg);
  const std::string drawn(bytes.begin(), bytes.end());
  EXPECT_EQ(drawn.rfind("<svg", 0), 0u);
  size_t points = 0;
  for (size_t at = drawn.find("<circle"); at != std::string::npos; at = drawn.find("<circle", at + 1)) ++points;
  EXPECT_EQ(points, 2u);
  EXPECT_NE(drawn.find(">30%<"), std::string::npos);
  // Peak memory against the budget too: one diamond per budget, labelled with its peak RSS.
  size_t diamonds = 0;
  for (size_t at = drawn.find("fill=\"#e80\""); at != std::string::npos; at = drawn.find("fill=\"#e80\"", at + 1)) ++diamonds;
  EXPECT_EQ(diamonds, 2u);
  const auto rss30 = std::to_string(int(j["budgets"][1]["peak_rss_bytes"].get<double>() / 1048576.0 + 0.5)) + " MiB<";
  EXPECT_NE(drawn.find(rss30), std::string::npos) << rss30;
}

// `dcq bench memory --paired`: per budget, and for the resident-against-resident control, one
// ratio per round (both engines in one process), their median, and the same tokens on both sides.
TEST(LoaderCli, BenchMemoryPairedRatiosPerRound) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");
  const auto r = test::run_dcq("bench memory " + dcq.string() + " --budgets 30% --tokens 6 --repeats 3 --paired --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  for (const auto& pr : {j["budgets"][0]["paired"], j["paired_control"]}) {
    ASSERT_TRUE(pr.is_object()) << j.dump();
    auto rounds = pr["rounds"].get<std::vector<double>>();
    ASSERT_EQ(rounds.size(), 3u) << pr.dump();
    std::sort(rounds.begin(), rounds.end());
    EXPECT_DOUBLE_EQ(pr["gen_vs_resident"].get<double>(), rounds[1]);
    EXPECT_GT(pr["gen_vs_resident_all_tokens"].get<double>(), 0.0);
    EXPECT_GT(rounds[0], 0.0);
    EXPECT_TRUE(pr["tokens_equal_resident"].get<bool>()) << pr.dump();
    EXPECT_GT(pr["gen_tok_s"].get<double>(), 0);
    EXPECT_GT(pr["resident_tok_s"].get<double>(), 0);
  }
  const auto text = test::run_dcq("bench memory " + dcq.string() + " --budgets 30% --tokens 3 --repeats 1 --paired");
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("paired 30%"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("paired control"), std::string::npos) << text.out;
}

// --from-json on a file that is not an earlier result: one bad-input line naming it, no chart.
TEST(LoaderCli, FromJsonRejectsWhatIsNotAResult) {
  test::TempDir dir;
  const fs::path bad = dir.path() / "bad.json", partial = dir.path() / "partial.json", svg = dir.path() / "o.svg";
  const std::string not_json = "{bad", no_budgets = R"({"model":"m","threads":2,"prefetch":false,"resident":{"gen_tok_s":1}})";
  test::spit(bad, std::vector<uint8_t>(not_json.begin(), not_json.end()));
  test::spit(partial, std::vector<uint8_t>(no_budgets.begin(), no_budgets.end()));
  for (const fs::path& f : {bad, partial}) {
    const auto r = test::run_dcq("bench memory x.dcq --from-json " + f.string() + " --svg " + svg.string());
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_NE(r.err.find(f.string()), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(fs::exists(svg));
  }
}

// Repack: the streamed tensors of a plan stored raw; same tokens, raw chunks, and the planner on
// the repacked file sees those tensors as cheap to stream.
TEST(LoaderRepack, StreamedTensorsStoredRawSameTokens) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const fs::path dcq = make_dcq(dir.path(), "Q8_0");
  PlanOptions po;
  po.budget = MemBudget::parse("40%");
  po.measured_speeds = false;
  const auto plan = make_plan(DcqReader::open(dcq), po);
  ASSERT_FALSE(plan.store_raw.empty());
  const fs::path out = dir.path() / "raw.dcq";
  const auto rep = repack_raw(dcq, out, plan.store_raw, false);
  EXPECT_GT(rep["raw_chunks"].get<uint64_t>(), 0u);
  EXPECT_GT(fs::file_size(out), fs::file_size(dcq));  // raw is larger: the price of zero decode
  const auto r = DcqReader::open(out);
  for (const auto& t : r.index().tensors) {
    if (std::find(plan.store_raw.begin(), plan.store_raw.end(), t.name) == plan.store_raw.end()) continue;
    for (uint32_t c = t.first_chunk; c < t.first_chunk + t.n_chunks; ++c) {
      EXPECT_EQ(r.index().chunks[c].codec, CodecId::raw) << t.name;
    }
  }
  DcqWeights a(dcq, po.budget), b(out, po.budget);
  EXPECT_EQ(greedy(a, *a.model(), 16), greedy(b, *b.model(), 16));
  const auto v = test::run_dcq("verify " + out.string());
  EXPECT_EQ(v.exit_code, 0) << v.err;
  // Refuses to overwrite without force, and to write over its input.
  EXPECT_THROW(repack_raw(dcq, out, plan.store_raw, false), Error);
  EXPECT_THROW(repack_raw(dcq, dcq, plan.store_raw, true), Error);
}
