// dcq bench sweep MODEL --calib TEXT --eval TEXT -o DIR: compression ratio against perplexity.
#include <cstdio>

#include "cli.hpp"
#include "dcq/bench.hpp"

namespace dcq::cli {
namespace {

const bool registered = register_command("bench-sweep", [](CLI::App& app) {
  auto* sub = bench_group(app)->add_subcommand("sweep", "File size vs perplexity over lossy settings and llama.cpp types");
  auto common = add_common(sub);
  auto o = std::make_shared<SweepOptions>();
  sub->add_option("MODEL", o->model, "Source model (F32 best)")->required();
  sub->add_option("--calib", o->calib, "Calibration text")->required();
  sub->add_option("--eval", o->eval, "Evaluation text (apart from the calibration text)")->required();
  sub->add_option("--configs", o->configs, "JSON array of settings {name, quant, rescale, ...}; default: built-in grid");
  sub->add_option("-o,--output", o->out_dir, "Output folder (resumable)")->required();
  sub->add_option("--baselines", o->baselines, "llama.cpp types built as baselines")->delimiter(',')->capture_default_str();
  sub->add_option("-c,--ctx-size", o->n_ctx, "Perplexity chunk length")->capture_default_str()->check(CLI::Range(8, 1 << 20));
  sub->add_option("--chunks", o->max_chunks, "At most this many chunks (0: all)")->capture_default_str()->check(CLI::Range(0, 1 << 30));
  sub->add_option("--calib-tokens", o->calib_tokens, "Calibration tokens")->capture_default_str()->check(CLI::Range(1, 1 << 30));
  sub->callback([common, o] {
    common->apply();
    o->threads = common->thread_count();
    const auto r = bench_sweep(*o);
    if (common->json) {
      print_json(r);
      return;
    }
    if (common->quiet) return;
    std::printf("%-34s %-18s %10s %9s %10s %6s\n", "point", "kind", "bytes", "PPL", "KLD", "front");
    for (const auto& p : r["points"])
      std::printf("%-34s %-18s %10llu %9.4f %10.6f %6s\n", p["name"].get<std::string>().c_str(),
                  p["kind"].get<std::string>().c_str(), (unsigned long long)p["bytes"].get<uint64_t>(),
                  p["ppl"].get<double>(), p["kld"].get<double>(), p["pareto"].get<bool>() ? "*" : "");
    for (const auto& v : r["versus_baselines"])
      if (v.contains("ratio"))
        std::printf("at %s's perplexity (%.4f, %llu B): %s, %llu B, %.3fx smaller\n", v["baseline"].get<std::string>().c_str(),
                    v["baseline_ppl"].get<double>(), (unsigned long long)v["baseline_bytes"].get<uint64_t>(),
                    v["dcq"].get<std::string>().c_str(), (unsigned long long)v["dcq_bytes"].get<uint64_t>(), v["ratio"].get<double>());
      else
        std::printf("at %s's perplexity (%.4f): no dcq point as good\n", v["baseline"].get<std::string>().c_str(),
                    v["baseline_ppl"].get<double>());
  });
});

}  // namespace
}  // namespace dcq::cli
