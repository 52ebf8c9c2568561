// dcq compress IN -o OUT.dcq [--lossless | lossy options]: the second compression into a .dcq
// container. --lossless keeps the input byte for byte; otherwise the lossy stage (docs/lossy.md)
// calibrates, prunes, rescales and quantizes before the entropy coder.
#include <cstdio>

#include "cli.hpp"
#include "dcq/compress.hpp"
#include "dcq/error.hpp"

namespace dcq::cli {
namespace {

void print_summary(const nlohmann::json& j) {
  std::printf("%s -> %s: %s -> %s (ratio %.3fx), %zu tensors (%zu duplicates), %zu chunks, %.2f s\n",
              j["input"].get<std::string>().c_str(), j["output"].get<std::string>().c_str(),
              human_bytes(j["input_bytes"].get<uint64_t>()).c_str(),
              human_bytes(j["output_bytes"].get<uint64_t>()).c_str(), j["ratio"].get<double>(),
              j["tensors"].get<size_t>(), j["duplicates"].get<size_t>(), j["chunks"].get<size_t>(),
              j["seconds"].get<double>());
  if (!j.contains("lossy")) return;
  const auto& t = j["lossy"]["totals"];
  std::printf("lossy %s: %.3f bits/param stored, code entropy %.3f bits/weight; %.3fx smaller than plain INT8 (%s)",
              j["lossy"]["settings"]["quant"].get<std::string>().c_str(), t["bits_per_param"].get<double>(),
              t["entropy_bpw"].get<double>(), t["ratio_vs_int8"].get<double>(),
              human_bytes(t["int8_bytes"].get<uint64_t>()).c_str());
  if (t.contains("ratio_vs_lossless_only"))
    std::printf(", %.3fx smaller than lossless only (%s)", t["ratio_vs_lossless_only"].get<double>(),
                human_bytes(t["lossless_only_bytes"].get<uint64_t>()).c_str());
  std::printf("\n");
}

const bool registered = register_command("compress", [](CLI::App& app) {
  auto* sub = app.add_subcommand("compress", "Compress a model into a .dcq container (lossless, or double compression)");
  auto common = add_common(sub);
  auto opt = std::make_shared<LossyOptions>();
  auto lossless = std::make_shared<bool>(false);
  CompressOptions& c = opt->container;
  sub->add_option("INPUT", c.input, "Model: GGUF, safetensors (lossless: a file or a whole Hugging Face folder), llama2.c")->required();
  sub->add_option("-o,--output", c.output, "Output .dcq file")->required();
  sub->add_flag("--lossless", *lossless, "Lossless entropy coding only: the input is rebuilt byte for byte");
  sub->add_option("--level", c.level, "Effort: zstd level of zstd candidates (1..22)")->capture_default_str();
  sub->add_option("--chunk-size", c.chunk_size, "Target decoded bytes per chunk (whole rows)")->capture_default_str();
  sub->add_option("--min-decode-speed", c.min_decode_speed_gbps,
                  "Decode speed floor per chunk of >= 64 KiB, GB/s of output on one core, modelled with both "
                  "checksums and the join counted, as dcq verify measures it (0: smallest file)")->capture_default_str();
  sub->add_flag("--force", c.force, "Replace an existing output");
  auto* g = "Lossy stage (without --lossless)";
  sub->add_option("--calib", opt->calib, "Calibration text (UTF-8) run through the model")->group(g);
  sub->add_option("--calib-tokens", opt->calib_tokens, "Calibration tokens used")->capture_default_str()->group(g);
  sub->add_option("--calib-ctx", opt->calib_ctx, "Calibration chunk length")->capture_default_str()->group(g);
  sub->add_option("--rescale", opt->rescale, "Per-input-channel rescaling: none, smooth, entropy")
      ->capture_default_str()->group(g);
  sub->add_option("--alpha", opt->alpha, "smooth: migration strength in [0, 1]")->capture_default_str()->group(g);
  sub->add_option("--lambda", opt->lambda, "entropy: accuracy weight (1 = one bit per factor 4 in error)")
      ->capture_default_str()->group(g);
  sub->add_option("--quant", opt->quant, "int8, int2..int8, ecsq, or a llama.cpp type (Q4_0, Q4_K_M, ...)")
      ->capture_default_str()->group(g);
  sub->add_option("--group", opt->group, "intK: elements per scale (0: one per output channel)")
      ->capture_default_str()->group(g);
  sub->add_option("--target-bpw", opt->target_bpw, "ecsq: code entropy target, bits per weight")
      ->capture_default_str()->group(g);
  sub->add_option("--prune", opt->prune, "Share of each block's linear weights set to zero, [0, 1)")
      ->capture_default_str()->group(g);
  sub->add_option("--prune-by", opt->prune_by, "Pruning score: magnitude, linf (|W| max|x|), wanda (|W| ||x||)")
      ->capture_default_str()->group(g);
  sub->add_option("--report", opt->report, "Write the JSON report to this file")->group(g);
  sub->add_flag("!--no-baselines", opt->baselines, "Skip measuring the lossless-only container for the report")->group(g);
  sub->callback([common, opt, lossless, sub] {
    common->apply();
    opt->container.threads = common->thread_count();
    nlohmann::json j;
    if (*lossless) {
      for (const char* o : {"--calib", "--rescale", "--quant", "--prune", "--prune-by", "--target-bpw", "--group",
                            "--report"})
        if (sub->count(o)) fail_usage(std::string("compress: ") + o + " is a lossy option; drop --lossless to use it");
      j = compress(opt->container);
    } else {
      j = compress_lossy(*opt);
    }
    if (common->json) print_json(j);
    else if (!common->quiet) print_summary(j);
  });
});

}  // namespace
}  // namespace dcq::cli
