// dcq verify FILE.dcq: decode everything and check every checksum. Exit 0 when sound, 4 naming
// the tensor and chunk when not (3 when the header or footer is unreadable).
#include <cstdio>

#include "cli.hpp"
#include "dcq/compress.hpp"

namespace dcq::cli {
namespace {

const bool registered = register_command("verify", [](CLI::App& app) {
  auto* sub = app.add_subcommand("verify", "Check every checksum of a .dcq container");
  auto common = add_common(sub);
  auto opt = std::make_shared<VerifyOptions>();
  sub->add_option("FILE", opt->input, ".dcq container")->required();
  sub->callback([common, opt] {
    common->apply();
    opt->threads = common->thread_count();
    const auto j = verify(*opt);
    if (common->json) print_json(j);
    else if (!common->quiet)
      std::printf("%s: ok, %zu tensors, %zu chunks, %s rebuilt (ratio %.3fx), decode %.2f GB/s per core\n",
                  j["input"].get<std::string>().c_str(), j["tensors"].get<size_t>(), j["chunks"].get<size_t>(),
                  human_bytes(j["source_bytes"].get<uint64_t>()).c_str(), j["ratio"].get<double>(),
                  j["decode_gbps_per_core"].get<double>());
  });
});

}  // namespace
}  // namespace dcq::cli
