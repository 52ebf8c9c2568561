// dcq perplexity MODEL -f TEXT -c N: perplexity as llama-perplexity computes it.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <optional>

#include "cli.hpp"
#include "dcq/engine.hpp"
#include "dcq/error.hpp"
#include "dcq/io.hpp"
#include "dcq/loader.hpp"
#include "dcq/perplexity.hpp"
#include "dcq/tokenizer.hpp"

namespace dcq::cli {
namespace {

struct PplOptions {
  std::filesystem::path model;
  std::filesystem::path text;
  int n_ctx = 512;
  int chunks = 0;
  std::filesystem::path save_logits;
  std::filesystem::path kl_base;
  LoadOptions load;
  LoaderFlags loader;
};

void run(const PplOptions& opt, const Common& common) {
  std::ifstream f(opt.text, std::ios::binary);
  if (!f) fail_input(opt.text.string() + ": cannot open the text file");
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (text.empty()) fail_input(opt.text.string() + ": the text file is empty");
  const OpenedModel opened = open_with(opt.model, opt.load, opt.loader, common.thread_count());
  const Tokenizer tok = Tokenizer::from_model(opened.model());
  WeightSource& weights = *opened.weights;
  Engine engine(weights, {opt.n_ctx, common.thread_count()});
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int32_t> ids = tok.encode(text, /*add_bos=*/true);
  if (int64_t(ids.size()) < opt.n_ctx)
    fail_input(opt.text.string() + ": " + std::to_string(ids.size()) + " tokens, fewer than one chunk of " +
               std::to_string(opt.n_ctx));
  PerplexityOptions po;
  po.n_ctx = opt.n_ctx;
  po.max_chunks = opt.chunks;
  po.bos = tok.bos();
  po.save_logprobs = opt.save_logits;
  std::optional<BaseLogProbs> base;
  if (!opt.kl_base.empty()) {
    base = BaseLogProbs::open(opt.kl_base);
    po.kl_base = &*base;
  }
  if (!common.json && !common.quiet)
    po.progress = [](int c, double ppl) { std::fprintf(stderr, "[%d]%.4f%s", c, ppl, c % 10 == 0 ? "\n" : ","); };
  const PerplexityResult r = perplexity(engine, ids, po);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (common.json) {
    nlohmann::ordered_json j;
    j["model"] = opt.model.string();
    j["text"] = opt.text.string();
    j["n_ctx"] = opt.n_ctx;
    j["n_tokens"] = ids.size();
    j["chunks"] = r.n_chunks;
    j["scored_tokens"] = r.n_scored;
    j["ppl"] = r.ppl;
    j["ppl_err"] = r.ppl_err;
    j["mean_nll"] = r.mean_nll;
    if (base) {
      j["kld_mean"] = r.kld_mean;
      j["kld_err"] = r.kld_err;
      j["same_top_token"] = r.same_top;
    }
    j["seconds"] = secs;
    if (opened.dcq) j["loader"] = opened.dcq->stats().to_json();
    print_json(j);
  } else {
    if (!common.quiet) std::fprintf(stderr, "\n");
    std::printf("Final estimate: PPL = %.4f +/- %.5f  (%d chunks of %d, %lld tokens scored, %.1f s)\n", r.ppl,
                r.ppl_err, r.n_chunks, opt.n_ctx, static_cast<long long>(r.n_scored), secs);
    if (base)
      std::printf("KL divergence vs %s: mean %.6f +/- %.6f, same top token %.2f %%\n", opt.kl_base.string().c_str(),
                  r.kld_mean, r.kld_err, 100.0 * r.same_top);
    if (opened.dcq && common.verbose) std::fprintf(stderr, "loader: %s\n", opened.dcq->stats().to_json().dump().c_str());
  }
}

const bool registered = register_command("perplexity", [](CLI::App& app) {
  auto* sub = app.add_subcommand("perplexity", "Perplexity of a model on a text (llama.cpp's method)");
  auto common = add_common(sub);
  auto opt = std::make_shared<PplOptions>();
  sub->add_option("MODEL", opt->model, "Model: GGUF, safetensors (file or folder) or llama2.c .bin")->required();
  sub->add_option("-f,--file", opt->text, "Text file")->required();
  sub->add_option("-c,--ctx-size", opt->n_ctx, "Chunk length in tokens")->check(CLI::Range(8, 1 << 20));
  sub->add_option("--chunks", opt->chunks, "Only the first K chunks (0: all)")->check(CLI::Range(0, 1 << 30));
  sub->add_option("--save-logits", opt->save_logits, "Write the log-probabilities of every scored position");
  sub->add_option("--kl-base", opt->kl_base, "Compare with a --save-logits file of a base model (KL divergence)");
  add_load_options(sub, opt->load);
  add_loader_flags(sub, opt->loader);
  sub->callback([common, opt] {
    common->apply();
    run(*opt, *common);
  });
});

}  // namespace
}  // namespace dcq::cli
