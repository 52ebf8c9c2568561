// Structured pruning on the real stories260K model: a removed unit really is skipped (the
// written GGUF, rebuilt without the block or with zeroed halves, gives the skip mask's logits),
// the prefix reuse changes no number, searches are deterministic per seed and exhaustive search
// finds the brute-force optimum, CCDS covers every cluster, and the CLI's bad-input paths.
#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "dcq/engine.hpp"
#include "dcq/gguf.hpp"
#include "dcq/prune.hpp"
#include "dcq/tokenizer.hpp"
#include "test_support.hpp"

namespace dcq {
namespace {

using test::run_dcq;
using test::stories_gguf;
using test::TempDir;

std::filesystem::path text_path(const char* name) { return test::data_dir() / "text" / name; }

std::string text_prefix(const char* name, size_t bytes) {
  std::ifstream f(text_path(name), std::ios::binary);
  std::string s(bytes, '\0');
  f.read(s.data(), std::streamsize(bytes));
  s.resize(size_t(f.gcount()));
  return s;
}

// Calibration samples: consecutive windows of `len` tokens from the start of TinyStories.
std::vector<std::vector<int32_t>> samples(const Model& m, int n, int len) {
  const Tokenizer tok = Tokenizer::from_model(m);
  const auto ids = tok.encode(text_prefix("tinystories_val.txt", 40000), false);
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < n; ++i) {
    std::vector<int32_t> v(ids.begin() + i * len, ids.begin() + (i + 1) * len);
    v[0] = tok.bos();
    out.push_back(v);
  }
  return out;
}

std::vector<float> logits(const Model& m, const std::vector<int32_t>& toks, std::vector<uint8_t> sa = {},
                          std::vector<uint8_t> sf = {}) {
  ModelWeights w(m);
  EngineOptions o(int(toks.size()), 1);
  o.skip_attn = std::move(sa);
  o.skip_ffn = std::move(sf);
  Engine e(w, o);
  const auto l = e.eval(toks, true);
  return {l.begin(), l.end()};
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b) {
  ASSERT_EQ(a.size(), b.size());
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  EXPECT_LE(worst, 1e-6f);
}

UnitMask mask_of(int n, std::initializer_list<int> removed) {
  UnitMask m(size_t(n), 0);
  for (int u : removed) m[size_t(u)] = 1;
  return m;
}

TEST(Prune, RemovedBlocksAreSkippedAndTheRebuiltModelMatches) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  for (const char* type : {"F32", "Q4_0"}) {
    SCOPED_TRACE(type);
    const Model m = read_gguf(stories_gguf(type));
    const auto toks = samples(m, 1, 48)[0];
    const UnitMask mask = mask_of(5, {1, 3});
    std::vector<uint8_t> sa, sf;
    mask_to_skips(PruneUnits::blocks, mask, sa, sf);
    const auto skipped = logits(m, toks, sa, sf);
    const auto out = dir / (std::string(type) + "-blocks.gguf");
    write_pruned_gguf(m, PruneUnits::blocks, mask, out, false);
    const Model p = read_gguf(out);
    EXPECT_EQ(p.find_kv("llama.block_count")->as_int("n"), 3);
    EXPECT_EQ(p.tensors.size(), m.tensors.size() - 2 * 9);
    EXPECT_EQ(p.find_tensor("blk.3.attn_q.weight"), nullptr);
    // blk.2 of the pruned model is blk.4 of the source, byte for byte, same type.
    const Tensor* a = p.find_tensor("blk.2.ffn_down.weight");
    const Tensor* b = m.find_tensor("blk.4.ffn_down.weight");
    ASSERT_TRUE(a && b);
    EXPECT_EQ(a->type, b->type);
    EXPECT_TRUE(std::equal(a->data.begin(), a->data.end(), b->data.begin(), b->data.end()));
    expect_close(logits(p, toks), skipped);
    // And the skip really changes the output (the test could not pass by accident).
    const auto full = logits(m, toks);
    EXPECT_GT(std::fabs(full[100] - skipped[100]) + std::fabs(full[1000] - skipped[1000]), 1e-3f);
  }
}

TEST(Prune, SublayerZerosEqualTheSkipMask) {
  DCQ_REQUIRE_DATA();
  TempDir dir;
  for (const char* type : {"F32", "Q4_0", "Q4_K_M"}) {
    SCOPED_TRACE(type);
    const Model m = read_gguf(stories_gguf(type));
    const auto toks = samples(m, 1, 48)[0];
    const UnitMask mask = mask_of(10, {0, 5, 9});  // blk.0 attention, blk.2 FFN, blk.4 FFN
    std::vector<uint8_t> sa, sf;
    mask_to_skips(PruneUnits::sublayers, mask, sa, sf);
    EXPECT_EQ(sa, (std::vector<uint8_t>{1, 0, 0, 0, 0}));
    EXPECT_EQ(sf, (std::vector<uint8_t>{0, 0, 1, 0, 1}));
    const auto skipped = logits(m, toks, sa, sf);
    const auto out = dir / (std::string(type) + "-sub.gguf");
    write_pruned_gguf(m, PruneUnits::sublayers, mask, out, false);
    Model p = read_gguf(out);
    EXPECT_EQ(p.tensors.size(), m.tensors.size());
    const Tensor* z = p.find_tensor("blk.2.ffn_down.weight");
    ASSERT_TRUE(z);
    EXPECT_EQ(z->type, m.find_tensor("blk.2.ffn_down.weight")->type);
    EXPECT_TRUE(std::all_of(z->data.begin(), z->data.end(), [](uint8_t b) { return b == 0; }));
    // dcq's engine reads dcq.pruned.* and skips the halves.
    expect_close(logits(p, toks), skipped);
    // Without the metadata the zeros are computed, as llama.cpp does: still the identity.
    p.erase_kv("dcq.pruned.attn");
    p.erase_kv("dcq.pruned.ffn");
    expect_close(logits(p, toks), skipped);
  }
}

TEST(Prune, PrefixReuseGivesTheFullEvaluation) {
  DCQ_REQUIRE_DATA();
  const Model m = read_gguf(stories_gguf("F32"));
  ModelWeights w(m);
  for (PruneUnits u : {PruneUnits::blocks, PruneUnits::sublayers}) {
    PruneEvaluator ev(w, u, samples(m, 3, 40), 1);
    const int n = ev.n_units();
    for (const UnitMask& mask : {mask_of(n, {0}), mask_of(n, {2}), mask_of(n, {n - 1}), mask_of(n, {1, n - 2}),
                                 mask_of(n, {})}) {
      EXPECT_NEAR(ev.fitness(mask), ev.fitness_full(mask), 1e-12);
      EXPECT_EQ(ev.fitness(mask), ev.fitness(mask));  // memoized
    }
    EXPECT_LT(ev.evaluations(), ev.lookups());
  }
}

TEST(Prune, EvalFromEqualsEval) {
  DCQ_REQUIRE_DATA();
  const Model m = read_gguf(stories_gguf("Q8_0"));
  ModelWeights w(m);
  const auto toks = samples(m, 1, 32)[0];
  struct Rec : ActivationObserver {
    void observe(int, LinearSite, const float*, int, int) override {}
    void observe_residual(int u, const float* x, int n, int width) override {
      res.resize(std::max(res.size(), size_t(u) + 1));
      res[size_t(u)].assign(x, x + size_t(n) * width);
    }
    std::vector<std::vector<float>> res;
  } rec;
  Engine e(w, {64, 1});
  e.set_observer(&rec);
  const auto l = e.eval(toks, false);
  const std::vector<float> ref(l.begin(), l.end());
  e.set_observer(nullptr);
  ASSERT_EQ(rec.res.size(), 11u);
  for (int unit = 0; unit <= 10; ++unit) {
    SCOPED_TRACE(unit);
    e.reset();
    const auto got = e.eval_from(unit, rec.res[size_t(unit)], false);
    ASSERT_EQ(got.size(), ref.size());
    EXPECT_TRUE(std::equal(got.begin(), got.end(), ref.begin()));
  }
}

TEST(Prune, SearchIsDeterministicPerSeed) {
  DCQ_REQUIRE_DATA();
  const Model m = read_gguf(stories_gguf("F32"));
  ModelWeights w(m);
  PruneEvaluator ev(w, PruneUnits::sublayers, samples(m, 4, 48), 1);
  SearchOptions o;
  o.sparsity = 3;
  o.population = 8;
  o.generations = 5;
  o.seed = 7;
  const SearchResult a = search_mask(ev, o), b = search_mask(ev, o);
  EXPECT_EQ(a.mask, b.mask);
  EXPECT_EQ(a.fitness, b.fitness);
  ASSERT_EQ(a.history.size(), 5u);
  ASSERT_EQ(b.history.size(), 5u);
  for (size_t g = 0; g < a.history.size(); ++g) {
    EXPECT_EQ(a.history[g].best, b.history[g].best);
    EXPECT_EQ(a.history[g].mean, b.history[g].mean);
    if (g) { EXPECT_LE(a.history[g].best, a.history[g - 1].best); }  // elitism
  }
  o.seed = 8;  // another seed starts from another population
  const SearchResult c = search_mask(ev, o);
  EXPECT_NE(c.history[0].mean, a.history[0].mean);
  o.method = PruneMethod::random;
  EXPECT_EQ(search_mask(ev, o).mask, search_mask(ev, o).mask);
}

// Brute force in the test itself (full evaluations, no memo, no prefix reuse).
UnitMask brute_force(PruneEvaluator& ev, int k, double& best) {
  const int n = ev.n_units();
  UnitMask best_mask;
  best = INFINITY;
  for (uint32_t bits = 0; bits < (1u << n); ++bits) {
    if (__builtin_popcount(bits) != k) continue;
    UnitMask m(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) m[size_t(i)] = (bits >> i) & 1;
    const double f = ev.fitness_full(m);
    if (f < best) {
      best = f;
      best_mask = m;
    }
  }
  return best_mask;
}

TEST(Prune, ExhaustiveAndEvopFindTheBruteForceOptimum) {
  DCQ_REQUIRE_DATA();
  const Model m = read_gguf(stories_gguf("F32"));
  ModelWeights w(m);
  struct Case {
    PruneUnits units;
    int k;
  };
  for (const Case c : {Case{PruneUnits::blocks, 1}, Case{PruneUnits::sublayers, 2}}) {
    SCOPED_TRACE(std::string(units_name(c.units)));
    PruneEvaluator ev(w, c.units, samples(m, 6, 48), 1);
    double best = 0;
    const UnitMask truth = brute_force(ev, c.k, best);
    SearchOptions o;
    o.sparsity = c.k;
    o.method = PruneMethod::exhaustive;
    const SearchResult ex = search_mask(ev, o);
    EXPECT_EQ(ex.mask, truth);
    EXPECT_NEAR(ex.fitness, best, 1e-12);
    EXPECT_EQ(ex.masks_evaluated, int64_t(combinations(ev.n_units(), c.k)));
    o.method = PruneMethod::evop;
    o.population = 10;
    o.generations = 6;
    o.seed = 1;
    const SearchResult evo = search_mask(ev, o);
    EXPECT_EQ(evo.mask, truth) << evo.fitness << " vs " << best << ", " << evo.masks_evaluated << " masks";
    // Too large a space is refused.
    o.method = PruneMethod::exhaustive;
    o.exhaustive_limit = 3;
    try {
      search_mask(ev, o);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ExitCode::usage);
    }
  }
}

TEST(Prune, HeuristicsGiveValidMasks) {
  DCQ_REQUIRE_DATA();
  const Model m = read_gguf(stories_gguf("F32"));
  ModelWeights w(m);
  PruneEvaluator ev(w, PruneUnits::sublayers, samples(m, 4, 48), 1);
  ASSERT_EQ(ev.influence().size(), 10u);
  for (double x : ev.influence()) {
    EXPECT_GT(x, 0.0);
    EXPECT_LT(x, 2.0);
  }
  for (PruneMethod method : {PruneMethod::shortgpt, PruneMethod::sleb, PruneMethod::random}) {
    for (int k : {1, 3, 4}) {
      SCOPED_TRACE(std::string(method_name(method)) + " " + std::to_string(k));
      SearchOptions o;
      o.method = method;
      o.sparsity = k;
      const SearchResult r = search_mask(ev, o);
      ASSERT_EQ(r.mask.size(), 10u);
      EXPECT_EQ(std::count(r.mask.begin(), r.mask.end(), 1), k);
      EXPECT_NEAR(r.fitness, ev.fitness_full(r.mask), 1e-12);
      if (method == PruneMethod::shortgpt) {  // the k lowest influences
        const auto& inf = ev.influence();
        double worst_removed = 0, best_kept = INFINITY;
        for (int u = 0; u < 10; ++u)
          (r.mask[size_t(u)] ? worst_removed = std::max(worst_removed, inf[size_t(u)])
                             : best_kept = std::min(best_kept, inf[size_t(u)]));
        EXPECT_LE(worst_removed, best_kept);
      }
      if (method == PruneMethod::sleb && k == 1) {  // greedy's first step is the best single removal
        double best = 0;
        EXPECT_EQ(r.mask, brute_force(ev, 1, best));
      }
    }
  }
}

TEST(Prune, KmeansAndCcdsCoverEveryCluster) {
  // Four well-separated groups of 2-D points are recovered exactly, for any seed.
  std::vector<float> pts;
  const float centres[4][2] = {{0, 0}, {10, 0}, {0, 10}, {10, 10}};
  for (int i = 0; i < 40; ++i) {
    pts.push_back(centres[i % 4][0] + 0.1f * float(i % 7));
    pts.push_back(centres[i % 4][1] - 0.1f * float(i % 5));
  }
  for (uint64_t seed : {0, 1, 2}) {
    const auto a = kmeans(pts, 40, 2, 4, seed);
    std::set<int> ids(a.begin(), a.end());
    EXPECT_EQ(ids.size(), 4u);
    for (int i = 4; i < 40; ++i) EXPECT_EQ(a[size_t(i)], a[size_t(i % 4)]);
  }
  DCQ_REQUIRE_DATA();
  const Model m = read_gguf(stories_gguf("F32"));
  ModelWeights w(m);
  const Tokenizer tok = Tokenizer::from_model(m);
  const auto ids = tok.encode(text_prefix("tinystories_val.txt", 15000), false);
  Engine e(w, {64, 1});
  CalibOptions o;
  o.n_samples = 10;
  o.sample_tokens = 64;
  o.clusters = 4;
  o.seed = 3;
  const CalibSet c = select_calibration(e, ids, tok.bos(), o, "tinystories");
  ASSERT_EQ(c.samples.size(), 10u);
  EXPECT_EQ(c.n_clusters, 4);
  EXPECT_EQ(std::set<int>(c.cluster.begin(), c.cluster.end()).size(), 4u);
  EXPECT_EQ(std::set<int>(c.window.begin(), c.window.end()).size(), 10u);  // no window twice
  for (const auto& s : c.samples) {
    EXPECT_EQ(s.size(), 64u);
    EXPECT_EQ(s[0], tok.bos());
  }
  const CalibSet again = select_calibration(e, ids, tok.bos(), o, "tinystories");
  EXPECT_EQ(again.window, c.window);
  o.sampling = CalibSampling::random;
  const CalibSet r = select_calibration(e, ids, tok.bos(), o, "tinystories");
  EXPECT_EQ(r.samples.size(), 10u);
  EXPECT_EQ(std::set<int>(r.window.begin(), r.window.end()).size(), 10u);
  o.n_samples = 1000;
  test::expect_bad_input([&] { select_calibration(e, ids, tok.bos(), o, "tinystories"); }, "tinystories", "fewer");
}

class PruneCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!test::data_available()) GTEST_SKIP() << "shared test data not found";
    calib = dir / "calib.txt";
    std::ofstream(calib) << text_prefix("tinystories_val.txt", 12000);
    eval = dir / "eval.txt";
    std::ofstream(eval) << text_prefix("wikitext2-test.txt", 6000);
  }
  std::string base(const std::string& extra) {
    return stories_gguf("F32").string() + " --structured --calib " + calib.string() +
           " --calib-samples 6 --calib-tokens 64 --clusters 3 --threads 1 " + extra;
  }
  TempDir dir;
  std::filesystem::path calib, eval;
};

TEST_F(PruneCli, BlocksJsonAndDcqOutput) {
  const auto out = dir / "p.gguf";
  const auto r = run_dcq("prune " + base("--sparsity 2 --method exhaustive --json --eval " + eval.string() +
                                         " --eval-ctx 64 -o " + out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["sparsity"], 2);
  EXPECT_EQ(j["removed"].size(), 2u);
  EXPECT_EQ(j["masks_evaluated"], 10);
  EXPECT_GT(j["calib_ppl"].get<double>(), j["calib_ppl_unpruned"].get<double>());
  EXPECT_GT(j["eval"]["ppl"].get<double>(), 1.0);
  const Model p = read_gguf(out);
  EXPECT_EQ(p.find_kv("llama.block_count")->as_int("n"), 3);
  // The same run into a .dcq: a lossless container of that very GGUF, and no intermediate left.
  const auto dcq = dir / "p.dcq";
  const auto r2 = run_dcq("prune " + base("--sparsity 2 --method exhaustive -q -o " + dcq.string()));
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  const auto back = dir / "back.gguf";
  ASSERT_EQ(run_dcq("decompress " + dcq.string() + " -o " + back.string()).exit_code, 0);
  EXPECT_EQ(test::slurp(back), test::slurp(out));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), std::filesystem::directory_iterator{}), 5);
}

TEST_F(PruneCli, SublayersEvopJson) {
  const auto out = dir / "s.gguf";
  const auto r = run_dcq("prune " + base("--units sublayers --sparsity 0.3 --population 8 --generations 4 --seed 5 "
                                         "--json -o " + out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["sparsity"], 3);  // 0.3 of 10 sub-layers
  EXPECT_EQ(j["history"].size(), 4u);
  EXPECT_EQ(j["mask"].get<std::string>().size(), 10u);
  const std::string mask = j["mask"];
  EXPECT_EQ(std::count(mask.begin(), mask.end(), '1'), 3);
  EXPECT_EQ(j["calibration"]["sample_clusters"].size(), 6u);
}

TEST_F(PruneCli, BadInputIsOneLineWithExitCodeAndNoOutput) {
  const auto out = dir / "bad.gguf";
  struct Case {
    std::string args;
    int code;
    std::string fragment;
  };
  const auto short_text = dir / "short.txt";
  std::ofstream(short_text) << "Once upon a time there was a cat.";
  // A one-block model (block pruning needs two).
  const auto one = dir / "one.gguf";
  write_pruned_gguf(read_gguf(stories_gguf("F32")), PruneUnits::blocks, mask_of(5, {0, 1, 2, 3}), one, false);
  const std::vector<Case> cases = {
      {base("--sparsity 0 -o " + out.string()), 3, "removes none"},
      {base("--sparsity 5 -o " + out.string()), 3, "removes every"},
      {base("--units sublayers --sparsity 10 -o " + out.string()), 3, "removes every"},
      {base("--sparsity 1 --method magic -o " + out.string()), 2, "unknown --method"},
      {base("--sparsity 1 --units heads -o " + out.string()), 2, "unknown --units"},
      {base("--sparsity 1.5 -o " + out.string()), 2, "sparsity"},
      {stories_gguf("F32").string() + " --structured --sparsity 1 --calib " + calib.string() +
           " --calib-samples 500 -o " + out.string(), 3, "fewer than the 500"},
      {stories_gguf("F32").string() + " --structured --sparsity 1 --calib " + short_text.string() + " -o " +
           out.string(), 3, "short.txt"},
      {stories_gguf("F32").string() + " --sparsity 1 --calib " + calib.string() + " -o " + out.string(), 2,
       "--structured"},
      {one.string() + " --structured --sparsity 1 --calib " + calib.string() + " -o " + out.string(), 3,
       "at least 2"},
      {(dir / "missing.gguf").string() + " --structured --sparsity 1 --calib " + calib.string() + " -o " +
           out.string(), 3, "missing.gguf"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.args);
    const auto r = run_dcq("prune " + c.args);
    EXPECT_EQ(r.exit_code, c.code) << r.err;
    EXPECT_NE(r.err.find(c.fragment), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
    EXPECT_FALSE(std::filesystem::exists(out));
  }
}

}  // namespace
}  // namespace dcq
