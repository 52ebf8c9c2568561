// dcq decompress IN.dcq -o OUT: rebuild the original model file byte for byte.
#include <cstdio>

#include "cli.hpp"
#include "dcq/compress.hpp"

namespace dcq::cli {
namespace {

const bool registered = register_command("decompress", [](CLI::App& app) {
  auto* sub = app.add_subcommand("decompress", "Rebuild the original file (or folder) from a .dcq container");
  auto common = add_common(sub);
  auto opt = std::make_shared<DecompressOptions>();
  sub->add_option("INPUT", opt->input, ".dcq container")->required();
  sub->add_option("-o,--output", opt->output, "Output file (a folder for a folder container)")->required();
  sub->add_flag("--force", opt->force, "Replace an existing output");
  sub->callback([common, opt] {
    common->apply();
    opt->threads = common->thread_count();
    const auto j = decompress(*opt);
    if (common->json) print_json(j);
    else if (!common->quiet)
      std::printf("%s -> %s: %s, %.2f GB/s per core, %.2f s\n", j["input"].get<std::string>().c_str(),
                  j["output"].get<std::string>().c_str(), human_bytes(j["source_bytes"].get<uint64_t>()).c_str(),
                  j["decode_gbps_per_core"].get<double>(), j["seconds"].get<double>());
  });
});

}  // namespace
}  // namespace dcq::cli
