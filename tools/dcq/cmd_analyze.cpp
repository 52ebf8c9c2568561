// dcq analyze FILE: entropy bounds, codec bits and decode speed per tensor (of a .dcq: what it
// stores against the order-0 bound of its streams).
#include <cstdio>

#include "cli.hpp"
#include "dcq/compress.hpp"

namespace dcq::cli {
namespace {

// A .dcq: what the container stores per tensor against the order-0 entropy of its streams.
void print_dcq(const nlohmann::json& j) {
  std::printf("%-36s %-5s %10s %10s %8s %6s %6s %7s %7s  %s\n", "tensor", "type", "bytes", "stored", "ratio", "H0", "bits",
              "vs H0", "GB/s", "transform / stream codecs");
  for (const auto& t : j["tensors"]) {
    if (t.contains("duplicate_of")) {
      std::printf("%-36s %-5s %10llu %10s   (same bytes as %s)\n", t["name"].get<std::string>().c_str(),
                  t["type"].get<std::string>().c_str(), static_cast<unsigned long long>(t["bytes"].get<uint64_t>()),
                  "0", t["duplicate_of"].get<std::string>().c_str());
      continue;
    }
    if (!t.contains("stored_bytes")) continue;
    std::string how;
    for (const auto& [tr, n] : t["transforms"].items()) how += (how.empty() ? "" : ",") + tr;
    for (const auto& [tr, ss] : t["streams"].items())
      for (const auto& s : ss) {
        std::string c;
        for (const auto& [k, v] : s["codecs"].items()) c += (c.empty() ? "" : "+") + k;
        how += " " + c;
      }
    std::printf("%-36s %-5s %10llu %10llu %7.3fx %6.3f %6.3f %7.3f %7.2f  %s\n", t["name"].get<std::string>().c_str(),
                t["type"].get<std::string>().c_str(), static_cast<unsigned long long>(t["bytes"].get<uint64_t>()),
                static_cast<unsigned long long>(t["stored_bytes"].get<uint64_t>()), t["ratio"].get<double>(),
                t["h0"].get<double>(), t["bits_per_byte"].get<double>(), t["vs_bound"].get<double>(),
                t["decode_gbps"].get<double>(), how.c_str());
  }
  const auto& tot = j["totals"];
  std::printf("total: %llu -> %llu bytes of tensor data, ratio %.3fx, %.3fx the order-0 bound (%llu bytes), "
              "decode %.2f GB/s (one core)\n",
              static_cast<unsigned long long>(tot["tensor_bytes"].get<uint64_t>()),
              static_cast<unsigned long long>(tot["stored_bytes"].get<uint64_t>()), tot["ratio"].get<double>(),
              tot["vs_bound"].get<double>(), static_cast<unsigned long long>(tot["entropy_bound_bytes"].get<uint64_t>()),
              tot["decode_gbps"].get<double>());
}

void print_text(const nlohmann::json& j) {
  if (j.value("format", "") == "dcq") return print_dcq(j);
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
  auto* sub = app.add_subcommand("analyze", "Entropy, codec bits and decode speed per tensor (GGUF, safetensors file or folder, .dcq)");
  auto common = add_common(sub);
  auto opt = std::make_shared<AnalyzeOptions>();
  sub->add_option("FILE", opt->input, "GGUF, safetensors file or Hugging Face folder, or .dcq")->required();
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
