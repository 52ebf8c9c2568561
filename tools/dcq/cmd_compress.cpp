// dcq compress IN -o OUT.dcq --lossless: the lossless second compression into a .dcq container.
#include <cstdio>

#include "cli.hpp"
#include "dcq/compress.hpp"
#include "dcq/error.hpp"

namespace dcq::cli {
namespace {

const bool registered = register_command("compress", [](CLI::App& app) {
  auto* sub = app.add_subcommand("compress", "Compress a model into a .dcq container");
  auto common = add_common(sub);
  auto opt = std::make_shared<CompressOptions>();
  auto lossless = std::make_shared<bool>(false);
  sub->add_option("INPUT", opt->input, "GGUF model or a .safetensors file")->required();
  sub->add_option("-o,--output", opt->output, "Output .dcq file")->required();
  sub->add_flag("--lossless", *lossless, "Lossless entropy coding only (required for now)");
  sub->add_option("--level", opt->level, "Effort: zstd level of zstd candidates (1..22)")->capture_default_str();
  sub->add_option("--chunk-size", opt->chunk_size, "Target decoded bytes per chunk (whole rows)")->capture_default_str();
  sub->add_option("--min-decode-speed", opt->min_decode_speed_gbps,
                  "Modelled decode speed floor per chunk, GB/s on one core (0: smallest)")->capture_default_str();
  sub->add_flag("--force", opt->force, "Replace an existing output");
  sub->callback([common, opt, lossless] {
    common->apply();
    if (!*lossless) fail_usage("compress: only --lossless is implemented; pass --lossless");
    opt->threads = common->thread_count();
    const auto j = compress(*opt);
    if (common->json) {
      print_json(j);
    } else if (!common->quiet) {
      std::printf("%s -> %s: %s -> %s (ratio %.3fx), %zu tensors (%zu duplicates), %zu chunks, %.2f s\n",
                  j["input"].get<std::string>().c_str(), j["output"].get<std::string>().c_str(),
                  human_bytes(j["input_bytes"].get<uint64_t>()).c_str(),
                  human_bytes(j["output_bytes"].get<uint64_t>()).c_str(), j["ratio"].get<double>(),
                  j["tensors"].get<size_t>(), j["duplicates"].get<size_t>(), j["chunks"].get<size_t>(),
                  j["seconds"].get<double>());
    }
  });
});

}  // namespace
}  // namespace dcq::cli
