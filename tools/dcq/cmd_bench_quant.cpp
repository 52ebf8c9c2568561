// dcq bench quant MODEL --types ...: quantization and dequantization speed per block type.
#include <cstdio>
#include <sstream>

#include "cli.hpp"
#include "dcq/bench.hpp"

namespace dcq::cli {
namespace {

const bool registered = register_command("bench-quant", [](CLI::App& app) {
  auto* sub = bench_group(app)->add_subcommand("quant", "Quantize/dequantize speed per block type");
  auto common = add_common(sub);
  auto o = std::make_shared<QuantBenchOptions>();
  o->types = {"Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"};
  sub->add_option("MODEL", o->model, "Source model (F32 best)")->required();
  sub->add_option("--types", o->types, "Block types to measure")->delimiter(',');
  sub->add_option("--repeats", o->repeats, "Best of N runs")->check(CLI::Range(1, 100));
  sub->callback([common, o] {
    common->apply();
    o->threads = common->thread_count();
    const auto rows = bench_quant(*o);
    if (common->json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& r : rows)
        j.push_back({{"type", r.type}, {"quantize_seconds", r.quantize_seconds},
                     {"quantize_mparams_per_s", r.quantize_mparams_per_s},
                     {"dequantize_gb_per_s", r.dequantize_gb_per_s}, {"parameters", r.parameters},
                     {"bytes", r.bytes}, {"threads", o->threads}});
      print_json(j);
      return;
    }
    std::printf("%-8s %12s %14s %16s\n", "type", "quantize s", "Mweights/s", "dequant GB/s/core");
    for (const auto& r : rows)
      std::printf("%-8s %12.3f %14.1f %16.2f\n", r.type.c_str(), r.quantize_seconds,
                  r.quantize_mparams_per_s, r.dequantize_gb_per_s);
  });
});

}  // namespace
}  // namespace dcq::cli
