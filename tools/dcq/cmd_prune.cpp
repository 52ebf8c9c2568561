// dcq prune MODEL -o OUT --structured --sparsity S: remove transformer blocks or sub-layers chosen
// by a mask search on a calibration text (docs/pruning.md).
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <fstream>

#include "cli.hpp"
#include "dcq/compress.hpp"
#include "dcq/engine.hpp"
#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "dcq/gguf.hpp"
#include "dcq/io.hpp"
#include "dcq/perplexity.hpp"
#include "dcq/prune.hpp"
#include "dcq/tokenizer.hpp"

namespace dcq::cli {
namespace {

struct PruneCliOptions {
  std::filesystem::path model, output, calib, eval_text;
  bool structured = false;
  double sparsity = -1;
  std::string units = "blocks", method = "evop", sampling = "ccds";
  int calib_samples = 32, calib_tokens = 128, clusters = 4;
  int population = 32, generations = 20;
  uint64_t seed = 0;
  int64_t exhaustive_limit = 20000;
  int eval_ctx = 256, eval_chunks = 0;
  bool force = false;
  LoadOptions load;
};

std::string read_text(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) fail_input(p.string() + ": cannot open the text file");
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (text.empty()) fail_input(p.string() + ": the text file is empty");
  return text;
}

bool ends_with_dcq(const std::filesystem::path& p) { return p.extension() == ".dcq"; }

// Removes a file when the scope ends (the intermediate GGUF of a .dcq output).
struct RemoveOnExit {
  std::filesystem::path path;
  ~RemoveOnExit() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove(path, ec);
  }
};

void run(const PruneCliOptions& o, const Common& common) {
  const auto t_start = std::chrono::steady_clock::now();
  if (!o.structured) fail_usage("prune: only structured pruning is implemented; pass --structured");
  if (o.sparsity < 0) fail_usage("prune: --sparsity is required");
  const PruneUnits units = parse_units(o.units);
  const PruneMethod method = parse_method(o.method);
  const CalibSampling sampling = parse_sampling(o.sampling);
  check_can_write(o.output, o.force);

  Model model = load_model(o.model, o.load);
  ModelWeights weights(model);
  const Tokenizer tok = Tokenizer::from_model(model);
  const std::string src = o.model.string();
  const LlamaConfig cfg = LlamaConfig::from(weights);
  if (units == PruneUnits::blocks && cfg.n_layer < 2)
    fail_input(src + ": " + std::to_string(cfg.n_layer) + " block; block pruning needs at least 2");
  const int n_units = unit_count(units, cfg.n_layer);
  SearchOptions so;
  so.method = method;
  so.sparsity = sparsity_count(o.sparsity, n_units, src);
  so.population = o.population;
  so.generations = o.generations;
  so.seed = o.seed;
  so.exhaustive_limit = o.exhaustive_limit;
  if (method == PruneMethod::exhaustive && combinations(n_units, so.sparsity) > double(so.exhaustive_limit))
    fail_usage("prune: exhaustive search over " + std::to_string(int64_t(std::min(9e18, combinations(n_units, so.sparsity)))) +
               " masks exceeds --exhaustive-limit " + std::to_string(so.exhaustive_limit) + " (use --method evop)");
  if (o.calib.empty()) fail_usage("prune: --calib TEXT is required (the calibration text)");

  // Calibration set.
  const auto t_calib = std::chrono::steady_clock::now();
  const std::string text = read_text(o.calib);
  const std::vector<int32_t> ids = tok.encode(text, /*add_bos=*/false);
  CalibOptions co;
  co.n_samples = o.calib_samples;
  co.sample_tokens = o.calib_tokens;
  co.clusters = o.clusters;
  co.sampling = sampling;
  co.seed = o.seed;
  CalibSet calib;
  {
    Engine embedder(weights, {o.calib_tokens, common.thread_count()});
    calib = select_calibration(embedder, ids, tok.bos(), co, o.calib.string());
  }
  const double calib_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_calib).count();

  // Search.
  const auto t_search = std::chrono::steady_clock::now();
  PruneEvaluator ev(weights, units, calib.samples, common.thread_count());
  const double base_nll = ev.fitness(UnitMask(size_t(n_units), 0));
  const SearchResult r = search_mask(ev, so);
  const double search_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_search).count();

  // Output: the GGUF, then (for .dcq) its lossless compression.
  RemoveOnExit tmp;
  std::filesystem::path gguf_path = o.output;
  if (ends_with_dcq(o.output)) {
    gguf_path = o.output;
    gguf_path += ".prune-tmp.gguf";
    tmp.path = gguf_path;
  }
  write_pruned_gguf(model, units, r.mask, gguf_path, o.force || !tmp.path.empty());
  nlohmann::json compressed;
  if (!tmp.path.empty()) {
    CompressOptions c;
    c.input = gguf_path;
    c.output = o.output;
    c.force = o.force;
    c.threads = common.thread_count();
    compressed = compress(c);
  }
  const uint64_t gguf_bytes = std::filesystem::file_size(gguf_path);

  // Final perplexity of the written model (reloaded: this also checks that it loads).
  nlohmann::ordered_json eval_j;
  if (!o.eval_text.empty()) {
    Model pruned = read_gguf(gguf_path);
    ModelWeights pw(pruned);
    Engine engine(pw, {o.eval_ctx, common.thread_count()});
    const std::vector<int32_t> eval_ids = tok.encode(read_text(o.eval_text), true);
    PerplexityOptions po;
    po.n_ctx = o.eval_ctx;
    po.max_chunks = o.eval_chunks;
    po.bos = tok.bos();
    const PerplexityResult p = perplexity(engine, eval_ids, po);
    eval_j["text"] = o.eval_text.string();
    eval_j["n_ctx"] = o.eval_ctx;
    eval_j["chunks"] = p.n_chunks;
    eval_j["ppl"] = p.ppl;
    eval_j["ppl_err"] = p.ppl_err;
  }
  const double total_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();

  std::vector<std::string> removed;
  std::string mask_str;
  for (int u = 0; u < n_units; ++u) {
    mask_str += r.mask[size_t(u)] ? '1' : '0';
    if (r.mask[size_t(u)]) removed.push_back(unit_name(units, u));
  }
  if (common.json) {
    nlohmann::ordered_json j;
    j["model"] = src;
    j["output"] = o.output.string();
    j["units"] = units_name(units);
    j["method"] = method_name(method);
    j["n_units"] = n_units;
    j["sparsity"] = so.sparsity;
    j["mask"] = mask_str;
    j["removed"] = removed;
    j["seed"] = o.seed;
    nlohmann::ordered_json cj;
    cj["text"] = o.calib.string();
    cj["sampling"] = o.sampling;
    cj["samples"] = calib.samples.size();
    cj["sample_tokens"] = o.calib_tokens;
    cj["windows"] = calib.n_candidates;
    cj["clusters"] = calib.n_clusters;
    cj["cluster_sizes"] = calib.cluster_sizes;
    cj["sample_windows"] = calib.window;
    cj["sample_clusters"] = calib.cluster;
    cj["seconds"] = calib_secs;
    j["calibration"] = cj;
    j["calib_nll_unpruned"] = base_nll;
    j["calib_ppl_unpruned"] = std::exp(base_nll);
    j["calib_nll"] = r.fitness;
    j["calib_ppl"] = std::exp(r.fitness);
    nlohmann::ordered_json hist = nlohmann::ordered_json::array();
    for (const auto& g : r.history) hist.push_back({{"best", g.best}, {"mean", g.mean}});
    j["history"] = hist;
    if (method == PruneMethod::evop) {
      j["population"] = so.population;
      j["generations"] = so.generations;
    }
    if (method == PruneMethod::shortgpt) j["influence"] = ev.influence();
    j["masks_evaluated"] = r.masks_evaluated;
    j["search_seconds"] = search_secs;
    j["gguf_bytes"] = gguf_bytes;
    if (!compressed.is_null()) j["dcq"] = compressed;
    if (!eval_j.empty()) j["eval"] = eval_j;
    j["seconds"] = total_secs;
    print_json(j);
  } else if (!common.quiet) {
    std::printf("%s: removed %zu of %d %s by %s: %s (mask %s)\n", src.c_str(), removed.size(), n_units,
                std::string(units_name(units)).c_str(), std::string(method_name(method)).c_str(),
                [&] {
                  std::string s;
                  for (const auto& x : removed) s += (s.empty() ? "" : " ") + x;
                  return s;
                }().c_str(),
                mask_str.c_str());
    std::printf("calibration PPL %.4f -> %.4f (%zu samples of %d tokens, %s), %lld masks in %.2f s\n",
                std::exp(base_nll), std::exp(r.fitness), calib.samples.size(), o.calib_tokens, o.sampling.c_str(),
                static_cast<long long>(r.masks_evaluated), search_secs);
    if (!eval_j.empty())
      std::printf("eval PPL %.4f +/- %.5f on %s (%d chunks of %d)\n", eval_j["ppl"].get<double>(),
                  eval_j["ppl_err"].get<double>(), o.eval_text.string().c_str(), eval_j["chunks"].get<int>(),
                  o.eval_ctx);
    std::printf("wrote %s (%s)\n", o.output.string().c_str(),
                human_bytes(std::filesystem::file_size(o.output)).c_str());
  }
}

const bool registered = register_command("prune", [](CLI::App& app) {
  auto* sub = app.add_subcommand("prune", "Structured pruning: remove blocks or sub-layers chosen by a search");
  auto common = add_common(sub);
  auto opt = std::make_shared<PruneCliOptions>();
  sub->add_option("MODEL", opt->model, "Model: GGUF, safetensors (file or folder) or llama2.c .bin")->required();
  sub->add_option("-o,--output", opt->output, "Output GGUF, or .dcq (the GGUF, losslessly compressed)")->required();
  sub->add_flag("--structured", opt->structured, "Structured pruning (required for now)");
  sub->add_option("--sparsity", opt->sparsity, "Units to remove: a count, or a fraction in (0, 1)")->required();
  sub->add_option("--units", opt->units, "blocks or sublayers (attention and FFN halves)")->capture_default_str();
  sub->add_option("--method", opt->method, "evop, shortgpt, sleb, random or exhaustive")->capture_default_str();
  sub->add_option("--calib", opt->calib, "Calibration text file");
  sub->add_option("--calib-samples", opt->calib_samples, "Calibration samples")->capture_default_str();
  sub->add_option("--calib-tokens", opt->calib_tokens, "Tokens per calibration sample")->capture_default_str();
  sub->add_option("--clusters", opt->clusters, "k-means clusters (CCDS)")->capture_default_str();
  sub->add_option("--calib-sampling", opt->sampling, "ccds or random")->capture_default_str();
  sub->add_option("--population", opt->population, "EvoP population")->capture_default_str();
  sub->add_option("--generations", opt->generations, "EvoP generations")->capture_default_str();
  sub->add_option("--seed", opt->seed, "Seed of sampling and search")->capture_default_str();
  sub->add_option("--exhaustive-limit", opt->exhaustive_limit, "Largest mask space exhaustive search accepts")
      ->capture_default_str();
  sub->add_option("--eval", opt->eval_text, "Text to measure the pruned model's perplexity on");
  sub->add_option("--eval-ctx", opt->eval_ctx, "Chunk length of --eval")->check(CLI::Range(8, 1 << 20))->capture_default_str();
  sub->add_option("--eval-chunks", opt->eval_chunks, "Only the first K chunks of --eval (0: all)")
      ->check(CLI::Range(0, 1 << 30));
  sub->add_flag("--force", opt->force, "Replace an existing output");
  add_load_options(sub, opt->load);
  sub->callback([common, opt] {
    common->apply();
    run(*opt, *common);
  });
});

}  // namespace
}  // namespace dcq::cli
