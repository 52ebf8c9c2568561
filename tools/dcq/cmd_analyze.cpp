// dcq analyze FILE: entropy bounds, codec bits and decode speed per tensor.
#include <cstdio>

#include "cli.hpp"
#include "dcq/compress.hpp"

namespace dcq::cli {
namespace {

void print_text(const nlohmann::json& j) {
  std::printf("%-28s %-7s %10s  %-22s %9s %8s %7s  best stream bits (h0 / h1 / achieved)\n", "tensor", "type",
              "bytes", "transform", "stored", "ratio", "GB/s");
  for (const auto& t : j["tensors"]) {
    if (!t.contains("chosen")) continue;
    const auto& c = t["chosen"];
    const std::string tr = c["transform"].get<std::string>();
    std::string streams;
    for (const auto& s : t["streams"][tr]) {
      double best = 99;
      for (const auto& [k, v] : s["bits"].items()) best = std::min(best, v.get<double>());
      char buf[64];
      std::snprintf(buf, sizeof buf, " %.2f/%.2f/%.2f", s["h0"].get<double>(), s["h1"].get<double>(), best);
      streams += buf;
    }
    std::printf("%-28s %-7s %10llu  %-22s %9llu %7.3fx %7.2f %s\n", t["name"].get<std::string>().c_str(),
                t["type"].get<std::string>().c_str(), static_cast<unsigned long long>(t["bytes"].get<uint64_t>()),
                tr.c_str(), static_cast<unsigned long long>(c["stored_bytes"].get<uint64_t>()),
                c["ratio"].get<double>(), c["decode_gbps"].get<double>(), streams.c_str());
  }
  const auto& tot = j["totals"];
  std::printf("total: %llu -> %llu bytes of tensor data, ratio %.3fx, decode %.2f GB/s (one core)\n",
              static_cast<unsigned long long>(tot["tensor_bytes"].get<uint64_t>()),
              static_cast<unsigned long long>(tot["stored_bytes"].get<uint64_t>()), tot["ratio"].get<double>(),
              tot["decode_gbps"].get<double>());
}

const bool registered = register_command("analyze", [](CLI::App& app) {
  auto* sub = app.add_subcommand("analyze", "Entropy, codec bits and decode speed per tensor of a GGUF");
  auto common = add_common(sub);
  auto opt = std::make_shared<AnalyzeOptions>();
  sub->add_option("FILE", opt->input, "GGUF model")->required();
  sub->add_option("--level", opt->level, "zstd level analysed")->capture_default_str();
  sub->add_option("--repeat", opt->repeat, "Decode timing repetitions (best of)")->capture_default_str();
  sub->callback([common, opt] {
    common->apply();
    opt->threads = common->thread_count();
    const auto j = analyze(*opt);
    if (common->json) print_json(j);
    else print_text(j);
  });
});

}  // namespace
}  // namespace dcq::cli
