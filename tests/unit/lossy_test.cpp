// The lossy stage of double compression on the real stories260K model: rescaling keeps the float
// model's function, pruning zeroes exactly the requested share, every produced format runs in the
// engine from the .dcq and computes what its codes say, ECSQ meets its rate, bad input fails cleanly.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "dcq/engine.hpp"
#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "dcq/gguf.hpp"
#include "dcq/loader.hpp"
#include "dcq/lossy.hpp"
#include "dcq/tokenizer.hpp"
#include "dcq/weights.hpp"
#include "test_support.hpp"

namespace dcq {
namespace {

using namespace lossy;
using test::data_dir;
using test::run_dcq;
using test::stories_gguf;

const std::vector<int32_t> kPrompt = {1, 403, 407, 261, 378};  // BOS "Once upon a time"

std::vector<int32_t> calib_tokens(const Model& m, size_t bytes, size_t offset = 0) {
  const std::string text = read_text_file(data_dir() / "text" / "tinystories_val.txt").substr(offset, bytes);
  return Tokenizer::from_model(m).encode(text, false);
}

std::vector<float> logits_of(const Model& m, std::span<const int32_t> tokens) {
  ModelWeights w(m);
  Engine e(w, {128, 1});
  const auto l = e.eval(tokens, true);
  return {l.begin(), l.end()};
}

std::vector<float> logits_of_file(const std::filesystem::path& p, std::span<const int32_t> tokens) {
  OpenedModel om = open_weights(p, {});
  Engine e(*om.weights, {128, 1});
  const auto l = e.eval(tokens, true);
  return {l.begin(), l.end()};
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) d = std::max(d, std::fabs(a[i] - b[i]));
  return d;
}

struct Stories {
  Model model = read_gguf(stories_gguf("F32"));
  FloatModel fm = to_float(model);
  std::vector<int32_t> ids = calib_tokens(model, 20000);
  Calibration calib = calibrate(fm, ids, 256, 1, 2);
};

TEST(Lossy, CalibrationSeesEveryLinearInput) {
  DCQ_REQUIRE_DATA();
  Stories s;
  const LlamaConfig cfg = config_of(s.fm);
  for (const auto& l : linear_layers(s.fm, cfg)) {
    if (l.site.empty()) continue;
    ASSERT_TRUE(s.calib.sites.count(l.site)) << l.site;
    const ChannelStats& st = s.calib.sites.at(l.site);
    EXPECT_EQ(st.max_abs.size(), size_t(s.fm.find(l.tensor)->cols())) << l.tensor;
    EXPECT_EQ(st.n_rows, s.calib.n_tokens) << l.site;
    for (size_t j = 0; j < st.max_abs.size(); ++j) {
      ASSERT_GE(double(st.max_abs[j]) * st.max_abs[j], st.mean_sq[j] * (1 - 1e-6)) << l.site << " channel " << j;
      ASSERT_GT(st.mean_sq[j], 0) << l.site << " channel " << j;
    }
  }
  EXPECT_GT(s.calib.token_freq[1], 0);  // BOS starts every chunk
}

TEST(Lossy, RescalingLeavesTheFloatModelsOutputsUnchanged) {
  DCQ_REQUIRE_DATA();
  Stories s;
  const auto base = logits_of(as_model(s.fm), kPrompt);
  for (const RescaleMode mode : {RescaleMode::smooth, RescaleMode::entropy}) {
    FloatModel f = s.fm;
    RescaleOptions o;
    o.mode = mode;
    o.alpha = 0.5;
    const auto groups = rescale(f, s.calib, o, 2);
    // 5 layers x 4 sites; the classifier is a copy of the embedding in this file, so it is kept.
    ASSERT_EQ(groups.size(), 20u);
    double spread = 0;
    for (const auto& g : groups) spread = std::max(spread, g.max_scale / g.min_scale);
    EXPECT_GT(spread, 1.5) << "the scales must actually change the weights";
    EXPECT_NE(f.find("blk.0.attn_q.weight")->data, s.fm.find("blk.0.attn_q.weight")->data);
    // Same function: only float rounding may differ, mostly the F16 KV cache rounding the
    // rescaled V rows differently (2^-11 relative); a wrong fold moves logits by whole units.
    const auto after = logits_of(as_model(f), kPrompt);
    EXPECT_LT(max_abs_diff(base, after), 1e-2) << int(mode);
  }
}

TEST(Lossy, PruningRemovesExactlyTheRequestedShareByScore) {
  DCQ_REQUIRE_DATA();
  Stories s;
  for (const PruneBy by : {PruneBy::magnitude, PruneBy::linf, PruneBy::wanda}) {
    FloatModel f = s.fm;
    const auto zeros = prune(f, &s.calib, 0.3, by);
    EXPECT_EQ(zeros.size(), 35u);  // 7 linear layers x 5 blocks
    for (const auto& [name, k] : zeros) {
      const FloatTensor& t = *f.find(name);
      EXPECT_EQ(k, std::llround(0.3 * double(t.data.size()))) << name;
      // The trained weights hold no exact zeros, so every zero now is a pruned weight.
      EXPECT_EQ(std::count(t.data.begin(), t.data.end(), 0.f), k) << name;
    }
    // Score order, checked on one layer with its own statistics.
    const std::string name = "blk.2.ffn_down.weight";
    const ChannelStats& st = s.calib.sites.at("blk.2.ffn_down_in");
    const FloatTensor& t = *f.find(name);
    const FloatTensor& orig = *s.fm.find(name);
    double max_removed = 0, min_kept = INFINITY;
    for (size_t i = 0; i < t.data.size(); ++i) {
      const size_t c = i % size_t(t.cols());
      const double a = by == PruneBy::magnitude ? 1.0
                       : by == PruneBy::linf    ? double(st.max_abs[c])
                                                : std::sqrt(st.mean_sq[c]);
      const double score = std::fabs(double(orig.data[i])) * a;
      if (t.data[i] == 0.f) max_removed = std::max(max_removed, score);
      else min_kept = std::min(min_kept, score);
    }
    EXPECT_LE(max_removed, min_kept) << int(by);
  }
  FloatModel f = s.fm;
  EXPECT_THROW(prune(f, &s.calib, 1.0, PruneBy::magnitude), Error);
  EXPECT_THROW(prune(f, &s.calib, -0.1, PruneBy::magnitude), Error);
}

TEST(Lossy, IntQuantizerBoundsAndEcsqAllocationMeetsItsRate) {
  DCQ_REQUIRE_DATA();
  Stories s;
  const FloatTensor& t = *s.fm.find("blk.1.ffn_gate.weight");
  for (int bits : {8, 4, 2}) {
    const QuantTensor q = quantize_int(t, bits, 32, {});
    const int qmax = (1 << (bits - 1)) - 1;
    for (int8_t c : q.codes) ASSERT_LE(std::abs(int(c)), qmax);
    // Round to nearest: every error within half a step of its group.
    for (size_t i = 0; i < t.data.size(); ++i) {
      const float sc = q.scales[i / 32];
      ASSERT_LE(std::fabs(t.data[i] - sc * q.codes[i]), 0.5f * sc * 1.0001f + 1e-12f);
    }
    EXPECT_LE(q.entropy_bits, bits + 1e-9);
  }
  EXPECT_EQ(quantize_int(t, 8, 50, {}).group, 64);  // 64 columns are not groups of 50: one scale per row
  std::vector<EcsqTensor> e;
  const LlamaConfig cfg = config_of(s.fm);
  for (const auto& l : linear_layers(s.fm, cfg)) e.push_back({s.fm.find(l.tensor), error_weights(*s.fm.find(l.tensor), l.site, &s.calib)});
  for (double target : {2.5, 4.0, 6.0}) {
    const auto steps = allocate_ecsq_steps(e, target, 2);
    double bits = 0, n = 0;
    for (size_t i = 0; i < e.size(); ++i) {
      const auto q = quantize_step(*e[i].tensor, steps[i], e[i].weights);
      bits += q.entropy_bits * double(q.codes.size());
      n += double(q.codes.size());
    }
    EXPECT_LE(bits / n, target + 0.05) << target;
    EXPECT_GE(bits / n, target - 0.35) << target;  // the grid is 8 steps per octave
  }
}

// Every format the pipeline writes runs from the .dcq, and the engine computes exactly what the
// codes and scales say: the same logits as an F32 model holding scale * code.
TEST(Lossy, EveryProducedFormatRunsFromTheContainer) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const std::string calib = (dir / "calib.txt").string();
  const std::string text = read_text_file(data_dir() / "text" / "tinystories_val.txt").substr(0, 30000);
  test::spit(calib, std::vector<uint8_t>(text.begin(), text.end()));
  const std::string in = stories_gguf("F32").string();
  const auto f32 = logits_of(read_gguf(stories_gguf("F32")), kPrompt);
  struct Case {
    std::string args;
    float max_gap;  // from the float model's logits
  };
  // Sanity bounds on the largest logit gap from the float model (a broken format gives garbage,
  // gaps of tens); the exact check is the comparison with scale * code below.
  for (const Case& c : {Case{"--quant int8", 0.5f}, Case{"--quant int4 --group 32", 8.0f},
                        Case{"--quant ecsq --target-bpw 5 --calib " + calib, 4.0f},
                        Case{"--quant int8 --rescale entropy --prune 0.2 --prune-by wanda --calib " + calib, 4.0f},
                        Case{"--quant Q4_0 --rescale smooth --calib " + calib, 4.0f}}) {
    const auto out = dir / "m.dcq";
    const auto r = run_dcq("compress " + in + " -o " + out.string() + " --force --no-baselines --json " + c.args);
    ASSERT_EQ(r.exit_code, 0) << c.args << "\n" << r.err;
    const auto j = nlohmann::json::parse(r.out);
    const auto from_dcq = logits_of_file(out, kPrompt);
    EXPECT_LT(max_abs_diff(f32, from_dcq), c.max_gap) << c.args;
    // The embedded GGUF, dequantized to floats by hand, gives the same logits.
    ASSERT_EQ(run_dcq("decompress " + out.string() + " -o " + (dir / "m.gguf").string() + " --force").exit_code, 0);
    const Model g = read_gguf(dir / "m.gguf");
    if (c.args.find("Q4_0") == std::string::npos) {
      Model f = g;
      std::vector<std::vector<float>> keep;
      std::vector<Tensor> tensors;
      for (const auto& t : g.tensors) {
        if (t.type != GgmlType::I8) {
          if (!t.name.ends_with(".scale")) tensors.push_back(t);
          continue;
        }
        const Tensor* sc = g.find_tensor(scale_tensor_name(t.name));
        ASSERT_NE(sc, nullptr) << t.name;
        const auto* codes = reinterpret_cast<const int8_t*>(t.data.data());
        const auto* scales = reinterpret_cast<const float*>(sc->data.data());
        const int64_t cols = t.row_width(), groups = sc->ne[0], group = cols / groups;
        std::vector<float> v(size_t(t.n_elements()));
        for (size_t i = 0; i < v.size(); ++i)
          v[i] = scales[int64_t(i) / cols * groups + (int64_t(i) % cols) / group] * float(codes[i]);
        keep.push_back(std::move(v));
        Tensor x{t.name, GgmlType::F32, t.ne, {reinterpret_cast<const uint8_t*>(keep.back().data()), keep.back().size() * 4}};
        tensors.push_back(x);
      }
      f.tensors = tensors;
      // Only float summation order differs (the I8 kernels against the F32 ones).
      const auto ref = logits_of(f, kPrompt);
      EXPECT_LT(max_abs_diff(ref, from_dcq), 5e-3) << c.args;
      EXPECT_GT(j["lossy"]["totals"]["ratio_vs_int8"].get<double>(), 1.0) << c.args;
    }
    EXPECT_EQ(j["lossy"]["tensors"].size(), c.args.find("Q4_0") == std::string::npos ? 37u : g.tensors.size());
  }
}

TEST(Lossy, BadInputFailsWithOneLineAndNoOutput) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const std::string in = stories_gguf("F32").string();
  const auto out = dir / "x.dcq";
  const std::string o = " -o " + out.string();
  test::spit(dir / "short.txt", {'O', 'n', 'c', 'e'});
  test::spit(dir / "latin1.txt", std::vector<uint8_t>(4000, 0xE9));
  struct Case {
    std::string args;
    int code;
    std::string fragment;
  };
  for (const Case& c : {
           Case{"--prune 1.0", 2, "--prune"},
           Case{"--prune -0.5", 2, "--prune"},
           Case{"--prune-by foo --prune 0.1", 2, "--prune-by"},
           Case{"--rescale entropy", 2, "--calib"},
           Case{"--rescale bogus", 2, "--rescale"},
           Case{"--quant ecsq --target-bpw 0", 2, "--target-bpw"},
           Case{"--quant int9", 2, "int9"},
           Case{"--calib " + (dir / "missing.txt").string(), 3, "missing.txt"},
           Case{"--calib " + (dir / "short.txt").string(), 3, "short.txt"},
           Case{"--calib " + (dir / "latin1.txt").string(), 3, "UTF-8"},
           Case{"--lossless --prune 0.5", 2, "--prune"},
       }) {
    const auto r = run_dcq("compress " + in + o + " " + c.args);
    EXPECT_EQ(r.exit_code, c.code) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.fragment), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << c.args << "\n" << r.err;
    EXPECT_FALSE(std::filesystem::exists(out)) << c.args;
  }
  // A model the engine cannot run: a vocabulary-only GGUF.
  const auto r = run_dcq("compress " + (data_dir() / "vocab" / "ggml-vocab-llama-spm.gguf").string() + o);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_FALSE(std::filesystem::exists(out));
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos) << e.path();
}

TEST(Lossy, OutputIsTheSameForAnyThreadCount) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const std::string text = read_text_file(data_dir() / "text" / "tinystories_val.txt").substr(0, 20000);
  test::spit(dir / "calib.txt", std::vector<uint8_t>(text.begin(), text.end()));
  const std::string args = "compress " + stories_gguf("F32").string() + " --no-baselines --quant ecsq --target-bpw 4 " +
                           "--rescale entropy --prune 0.1 --prune-by linf --calib " + (dir / "calib.txt").string();
  ASSERT_EQ(run_dcq(args + " -o " + (dir / "a.dcq").string() + " --threads 1").exit_code, 0);
  ASSERT_EQ(run_dcq(args + " -o " + (dir / "b.dcq").string() + " --threads 2").exit_code, 0);
  EXPECT_EQ(test::slurp(dir / "a.dcq"), test::slurp(dir / "b.dcq"));
}

// A two-point sweep: files written, the Pareto flags consistent, and a second run reuses every
// point instead of recomputing it.
TEST(Sweep, WritesResultsAndPlotAndResumes) {
  DCQ_REQUIRE_DATA();
  test::TempDir dir;
  const std::string text = read_text_file(data_dir() / "text" / "tinystories_val.txt");
  test::spit(dir / "calib.txt", std::vector<uint8_t>(text.begin(), text.begin() + 20000));
  test::spit(dir / "eval.txt", std::vector<uint8_t>(text.begin() + 20000, text.begin() + 40000));
  const std::string cfg = R"([{"name": "e4", "quant": "ecsq", "target_bpw": 4, "rescale": "entropy"}])";
  test::spit(dir / "grid.json", std::vector<uint8_t>(cfg.begin(), cfg.end()));
  const std::string args = "bench sweep " + stories_gguf("F32").string() + " --calib " + (dir / "calib.txt").string() +
                           " --eval " + (dir / "eval.txt").string() + " --configs " + (dir / "grid.json").string() +
                           " --baselines Q4_0 -c 128 --chunks 4 --json -o " + (dir / "out").string();
  const auto r1 = run_dcq(args);
  ASSERT_EQ(r1.exit_code, 0) << r1.err;
  const auto j = nlohmann::json::parse(r1.out);
  ASSERT_EQ(j["points"].size(), 3u);
  std::map<std::string, nlohmann::json> by;
  for (const auto& p : j["points"]) by[p["name"]] = p;
  ASSERT_TRUE(by.count("Q4_0") && by.count("Q4_0+lossless") && by.count("e4"));
  // The lossless copy has the same perplexity and fewer bytes, so the plain GGUF is dominated.
  EXPECT_DOUBLE_EQ(by["Q4_0"]["ppl"].get<double>(), by["Q4_0+lossless"]["ppl"].get<double>());
  EXPECT_LT(by["Q4_0+lossless"]["bytes"].get<uint64_t>(), by["Q4_0"]["bytes"].get<uint64_t>());
  EXPECT_FALSE(by["Q4_0"]["pareto"].get<bool>());
  EXPECT_EQ(by["Q4_0"]["bytes"].get<uint64_t>(), std::filesystem::file_size(stories_gguf("Q4_0")));
  EXPECT_GT(by["e4"]["kld"].get<double>(), 0);
  const auto svg_bytes = test::slurp(dir / "out" / "plot.svg");
  const std::string svg(svg_bytes.begin(), svg_bytes.end());
  EXPECT_NE(svg.find("<svg"), std::string::npos);
  EXPECT_NE(svg.find(">e4"), std::string::npos);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);  // the front has at least two points
  const auto csv = test::slurp(dir / "out" / "results.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 4);
  const auto before = std::filesystem::last_write_time(dir / "out" / "points" / "e4.dcq");
  const auto r2 = run_dcq(args);
  ASSERT_EQ(r2.exit_code, 0) << r2.err;
  EXPECT_EQ(std::filesystem::last_write_time(dir / "out" / "points" / "e4.dcq"), before);
  EXPECT_EQ(nlohmann::json::parse(r2.out)["points"], j["points"]);
}

}  // namespace
}  // namespace dcq
