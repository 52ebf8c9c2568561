// A GGUF under a memory budget or on simulated slow storage (docs/loader.md, "GGUF input"): the
// file is seen as a container of bare raw chunks in place (DcqReader::open_gguf) and goes through
// the same loader as a .dcq. The GGUF's own tokens at every budget, the cache within the budget,
// every byte through the simulated device under a throttle, bad files refused with one line.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include <nlohmann/json.hpp>

#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/io.hpp"
#include "dcq/loader.hpp"
#include "dcq/weights.hpp"
#include "loader_test_support.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace dcq;
using dcq::test::greedy;

namespace {

fs::path gguf_path(const std::string& type) { return test::model_path("stories260K/stories260K-" + type + ".gguf"); }

}  // namespace

// The view's chunks are the tensors' rows where the file has them; the header is the extras blob.
TEST(LoaderGguf, ViewCoversEveryTensorInPlace) {
  DCQ_REQUIRE_DATA();
  for (const char* type : {"Q8_0", "Q4_K_M", "F32"}) {
    const Model m = load_model(gguf_path(type));
    const DcqReader r = DcqReader::open_gguf(gguf_path(type), kRowChunkBytes);
    ASSERT_TRUE(r.bare());
    EXPECT_EQ(r.raw_header_bytes(), 0u);
    const DcqIndex& ix = r.index();
    ASSERT_EQ(ix.tensors.size(), m.tensors.size()) << type;
    for (size_t i = 0; i < m.tensors.size(); ++i) {
      const Tensor& t = m.tensors[i];
      const DcqTensor& dt = ix.tensors[i];
      EXPECT_EQ(dt.name, t.name);
      EXPECT_EQ(dt.type, t.type);
      EXPECT_EQ(dt.n_bytes, t.n_bytes());
      uint64_t row = 0;
      for (uint32_t c = dt.first_chunk; c < dt.first_chunk + dt.n_chunks; ++c) {
        const DcqChunk& ch = ix.chunks[c];
        EXPECT_EQ(ch.row_begin, row) << t.name;
        std::vector<uint8_t> out(ch.decoded_size);
        r.decode_chunk(c, out);
        const auto want = t.data.subspan(row * dt.row_bytes(), ch.decoded_size);
        EXPECT_TRUE(std::equal(out.begin(), out.end(), want.begin(), want.end())) << t.name << " chunk " << c;
        row += ch.row_count;
      }
      EXPECT_EQ(row, dt.n_rows()) << t.name;
      // The embedding of a model with its own output matrix is read by rows: small chunks.
      if (t.name == "token_embd.weight") {
        EXPECT_GT(dt.n_chunks, 1u) << type;
      } else {
        EXPECT_EQ(dt.n_chunks, 1u) << t.name;
      }
    }
    const auto header = r.read_blob(ix.extras, "extras");
    const Model h = parse_gguf_header(header, "extras");
    EXPECT_EQ(h.metadata.size(), m.metadata.size());
    EXPECT_EQ(h.tensors.size(), m.tensors.size());
  }
}

// Same greedy tokens as the GGUF read whole, at budgets that pin part of it and stream the rest
// (zero-copy views of the file where the rows allow), the cache never above the budget.
TEST(LoaderGguf, BudgetedGgufGivesItsOwnTokens) {
  DCQ_REQUIRE_DATA();
  for (const char* type : {"Q8_0", "Q4_0", "Q4_K_M", "F32"}) {
    const Model gguf = load_model(gguf_path(type));
    ModelWeights gw(gguf);
    const auto want = greedy(gw, gguf, 16);
    for (const char* budget : {"60%", "30%"}) {
      DcqWeights w(DcqReader::open_gguf(gguf_path(type), kRowChunkBytes), MemBudget::parse(budget), false, 2, 0, true);
      EXPECT_EQ(greedy(w, *w.model(), 16, 2), want) << type << " " << budget;
      const auto s = w.stats();
      EXPECT_LE(s.peak_resident_bytes, s.budget_bytes) << type << " " << budget;
      EXPECT_GT(s.bytes_read, s.weight_bytes) << type << " " << budget << ": tensors are read again every token";
      if (std::string(type) != "F32") {
        EXPECT_GT(s.zero_copy_acquires, 0u) << type << " " << budget;
      }
    }
  }
}

// Under --read-throttle every byte comes through the simulated device with pread (no view of the
// file): the wall time is never below the device time of what was read.
TEST(LoaderGguf, ReadThrottleSendsEveryByteThroughTheDevice) {
  DCQ_REQUIRE_DATA();
  const Model gguf = load_model(gguf_path("Q8_0"));
  ModelWeights gw(gguf);
  const auto want = greedy(gw, gguf, 16);
  const double rate = 50e6;
  for (const char* budget : {"", "35%"}) {
    DcqWeights w(DcqReader::open_gguf(gguf_path("Q8_0"), kRowChunkBytes), MemBudget::parse(budget), false, 1, rate,
                 true);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(greedy(w, *w.model(), 16), want) << budget;
    const double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const auto s = w.stats();
    EXPECT_EQ(s.zero_copy_acquires, 0u) << budget;
    EXPECT_GT(s.read_wait_seconds, 0.0) << budget;
    EXPECT_GE(wall, 0.95 * double(s.bytes_read) / rate) << budget;
    if (*budget == 0) {
      EXPECT_EQ(s.bytes_read, s.weight_bytes) << "unlimited: every tensor read once";
    } else {
      EXPECT_GT(s.bytes_read, s.weight_bytes) << budget;
    }
  }
}

// The CLI: `run` and `perplexity` take --mem-budget and --read-throttle on a GGUF with the plain
// run's results; a truncated GGUF is one line and exit 3, a format without the loader exit 2.
TEST(LoaderGguf, CliRunsAGgufUnderABudget) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const std::string g = gguf_path("Q4_0").string();
  auto run = [&](const std::string& model, const std::string& extra) {
    return test::run_dcq("run " + model + " -p 'Once upon a time' -n 12 --temp 0 --json -q" + extra);
  };
  const auto plain = run(g, "");
  ASSERT_EQ(plain.exit_code, 0) << plain.err;
  const auto want = nlohmann::json::parse(plain.out)["tokens"];
  for (const std::string extra : {" --mem-budget 40%", " --read-throttle 200", " --mem-budget 50% --read-throttle 100"}) {
    const auto r = run(g, extra);
    ASSERT_EQ(r.exit_code, 0) << extra << ": " << r.err;
    const auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["tokens"], want) << extra;
    EXPECT_TRUE(j.contains("loader")) << extra;
  }
  const std::string ppl = "perplexity " + g + " -f " + (test::data_dir() / "text/tinystories_val.txt").string() +
                          " -c 64 --chunks 3 --json -q";
  const auto p0 = test::run_dcq(ppl), p1 = test::run_dcq(ppl + " --mem-budget 40% --read-throttle 100");
  ASSERT_EQ(p0.exit_code, 0) << p0.err;
  ASSERT_EQ(p1.exit_code, 0) << p1.err;
  EXPECT_EQ(nlohmann::json::parse(p0.out)["ppl"], nlohmann::json::parse(p1.out)["ppl"]);

  // `plan` and `bench memory` read a GGUF the same way; `plan --repack` wants a .dcq (exit 2).
  const auto plan = test::run_dcq("plan " + g + " --mem-budget 40% --json");
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  const auto pj = nlohmann::json::parse(plan.out);
  EXPECT_LE(pj["pinned_bytes"].get<uint64_t>() + pj["working_set_bytes"].get<uint64_t>(), pj["budget_bytes"].get<uint64_t>());
  EXPECT_GT(pj["streamed_bytes_per_token"].get<uint64_t>(), 0u);
  const auto repack = test::run_dcq("plan " + g + " --mem-budget 40% --repack " + (dir.path() / "x.dcq").string());
  EXPECT_EQ(repack.exit_code, 2) << repack.err;
  EXPECT_FALSE(fs::exists(dir.path() / "x.dcq"));
  const auto bench = test::run_dcq("bench memory " + g + " --budgets 40% --tokens 4 --repeats 1 --json");
  ASSERT_EQ(bench.exit_code, 0) << bench.err;
  EXPECT_TRUE(nlohmann::json::parse(bench.out)["budgets"][0]["tokens_equal_resident"].get<bool>());

  // A GGUF cut short: the reader's one-line error naming the file, exit 3, not a crash.
  auto bytes = test::slurp(gguf_path("Q4_0"));
  bytes.resize(bytes.size() / 2);
  test::spit(dir.path() / "cut.gguf", bytes);
  const auto cut = run((dir.path() / "cut.gguf").string(), " --mem-budget 40%");
  EXPECT_EQ(cut.exit_code, 3) << cut.err;
  EXPECT_NE(cut.err.find("cut.gguf"), std::string::npos) << cut.err;
  EXPECT_EQ(std::count(cut.err.begin(), cut.err.end(), '\n'), 1) << cut.err;
  // llama2.c has no loader path: a usage error, not silently resident.
  const auto l2 = test::run_dcq("run " + test::model_path("stories260K/stories260K.bin").string() +
                                " -p 'Once' -n 2 --temp 0 --mem-budget 50%");
  EXPECT_EQ(l2.exit_code, 2) << l2.err;
  EXPECT_NE(l2.err.find("stories260K.bin: --mem-budget"), std::string::npos) << l2.err;
}
