// dcq run MODEL -p PROMPT -n N: generate text on the CPU. Text streams to stdout; timings (load,
// prompt and generation tokens/s, peak RSS) go to stderr; --json prints one document instead.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>

#include <spdlog/spdlog.h>

#include "cli.hpp"
#include "dcq/engine.hpp"
#include "dcq/error.hpp"
#include "dcq/io.hpp"
#include "dcq/kernels.hpp"
#include "dcq/loader.hpp"
#include "dcq/sampler.hpp"
#include "dcq/tokenizer.hpp"

namespace dcq::cli {
namespace {

struct RunOptions {
  std::filesystem::path model;
  std::string prompt;
  int n_predict = 64;
  int n_ctx = 0;
  SamplerOptions sampling;
  LoadOptions load;
  LoaderFlags loader;
};

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

uint64_t peak_rss_bytes() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return uint64_t(ru.ru_maxrss) * 1024;  // Linux reports KiB
}

void run(const RunOptions& opt, const Common& common) {
  const auto t_load = Clock::now();
  const OpenedModel opened = open_with(opt.model, opt.load, opt.loader, common.thread_count());
  const Tokenizer tok = Tokenizer::from_model(opened.model());
  WeightSource& weights = *opened.weights;
  const LlamaConfig cfg = LlamaConfig::from(weights);
  int n_ctx = opt.n_ctx > 0 ? opt.n_ctx : cfg.n_ctx_train;
  if (n_ctx <= 0) n_ctx = 512;
  if (cfg.n_ctx_train > 0 && n_ctx > cfg.n_ctx_train)
    spdlog::warn("context {} is above the model's trained context_length {}; quality may drop", n_ctx, cfg.n_ctx_train);
  Engine engine(weights, {n_ctx, common.thread_count()});
  const double load_s = seconds_since(t_load);

  std::vector<int32_t> ids = tok.encode(opt.prompt, /*add_bos=*/true);
  if (ids.empty()) fail_input("the prompt gives no tokens");
  if (int(ids.size()) > n_ctx)
    fail_input("prompt of " + std::to_string(ids.size()) + " tokens is longer than the context of " + std::to_string(n_ctx));
  const int n_prompt = int(ids.size());
  const int n_gen_max = std::min(opt.n_predict, n_ctx - n_prompt);
  if (n_gen_max < opt.n_predict)
    spdlog::warn("context of {} tokens leaves room for {} new tokens only", n_ctx, n_gen_max);

  Sampler sampler(opt.sampling);
  if (!common.json) {
    std::string shown = opt.prompt;
    std::fwrite(shown.data(), 1, shown.size(), stdout);
    std::fflush(stdout);
  }
  const auto t_prompt = Clock::now();
  auto logits = engine.eval(ids);
  const double prompt_s = seconds_since(t_prompt);

  std::string text;
  std::vector<int32_t> generated;
  const auto t_gen = Clock::now();
  for (int i = 0; i < n_gen_max; ++i) {
    const int32_t next = sampler.sample(logits, ids);
    if (next == tok.eos()) break;
    generated.push_back(next);
    ids.push_back(next);
    const std::string piece = tok.decode(next);
    text += piece;
    if (!common.json) {
      std::fwrite(piece.data(), 1, piece.size(), stdout);
      std::fflush(stdout);
    }
    if (i + 1 < n_gen_max) logits = engine.eval(std::span<const int32_t>(&ids.back(), 1));
  }
  const double gen_s = seconds_since(t_gen);
  const double prompt_tps = prompt_s > 0 ? n_prompt / prompt_s : 0;
  // The last sampled token is not evaluated, so n-1 evaluations produced n tokens after the prompt.
  const double gen_tps = gen_s > 0 ? double(generated.size()) / gen_s : 0;
  if (common.json) {
    nlohmann::ordered_json j;
    j["model"] = opt.model.string();
    j["prompt"] = opt.prompt;
    j["text"] = text;
    j["prompt_tokens"] = std::vector<int32_t>(ids.begin(), ids.begin() + n_prompt);
    j["tokens"] = generated;
    j["isa"] = std::string(kernels::isa_name(kernels::active_isa()));
    j["threads"] = common.thread_count();
    j["load_s"] = load_s;
    j["prompt_tokens_per_s"] = prompt_tps;
    j["gen_tokens_per_s"] = gen_tps;
    j["peak_rss_bytes"] = peak_rss_bytes();
    if (opened.dcq) j["loader"] = opened.dcq->stats().to_json();
    print_json(j);
  } else {
    std::fputc('\n', stdout);
    std::fflush(stdout);  // the text ends before the timings on stderr
    if (!common.quiet)
      std::fprintf(stderr, "load %.3f s | prompt %d tok, %.1f tok/s | gen %zu tok, %.1f tok/s | peak RSS %s | %s, %d threads\n",
                   load_s, n_prompt, prompt_tps, generated.size(), gen_tps, human_bytes(peak_rss_bytes()).c_str(),
                   std::string(kernels::isa_name(kernels::active_isa())).c_str(), common.thread_count());
    if (opened.dcq && common.verbose) std::fprintf(stderr, "loader: %s\n", opened.dcq->stats().to_json().dump().c_str());
  }
}

const bool registered = register_command("run", [](CLI::App& app) {
  auto* sub = app.add_subcommand("run", "Generate text from a prompt on the CPU");
  auto common = add_common(sub);
  auto opt = std::make_shared<RunOptions>();
  sub->add_option("MODEL", opt->model, "Model: GGUF, safetensors (file or folder) or llama2.c .bin")->required();
  sub->add_option("-p,--prompt", opt->prompt, "Prompt text")->required();
  sub->add_option("-n,--n-predict", opt->n_predict, "Tokens to generate")->check(CLI::Range(0, 1 << 20));
  sub->add_option("-c,--ctx-size", opt->n_ctx, "Context size (0: the model's)")->check(CLI::Range(0, 1 << 20));
  sub->add_option("--temp", opt->sampling.temperature, "Temperature (0: greedy)")->check(CLI::Range(0.0, 100.0));
  sub->add_option("--top-k", opt->sampling.top_k, "Top-k (0: off)")->check(CLI::Range(0, 1 << 24));
  sub->add_option("--top-p", opt->sampling.top_p, "Top-p (1: off)")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--min-p", opt->sampling.min_p, "Min-p (0: off)")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--repeat-penalty", opt->sampling.repeat_penalty, "Repeat penalty (1: off)")->check(CLI::Range(0.0, 100.0));
  sub->add_option("--seed", opt->sampling.seed, "Random seed");
  add_loader_flags(sub, opt->loader);
  add_load_options(sub, opt->load);
  sub->callback([common, opt] {
    common->apply();
    run(*opt, *common);
  });
});

}  // namespace
}  // namespace dcq::cli
