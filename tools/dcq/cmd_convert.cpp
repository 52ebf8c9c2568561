// dcq convert IN -o OUT: any readable model to GGUF or safetensors, keeping or changing types.
#include <cstdio>

#include "cli.hpp"
#include "dcq/convert.hpp"

namespace dcq::cli {
namespace {

const bool registered = register_command("convert", [](CLI::App& app) {
  auto* sub = app.add_subcommand("convert", "Convert a model to GGUF or safetensors (by the output's extension), "
                                            "quantizing or dequantizing");
  auto common = add_common(sub);
  auto o = std::make_shared<ConvertOptions>();
  sub->add_option("IN", o->input, "GGUF, safetensors (file or folder) or llama2.c .bin")->required();
  sub->add_option("-o,--output", o->output, "Output .gguf or .safetensors")->required();
  sub->add_option("--type", o->type, "Tensor type (F32, F16, BF16, Q8_0, Q4_K, ...) or llama.cpp "
                                     "file type (Q4_K_M, Q5_K_M, ...); default: keep");
  sub->add_flag("--pure", o->pure, "Use --type for every 2-D tensor (no mix rules), like llama-quantize --pure");
  add_load_options(sub, o->load);
  sub->add_flag("--force", o->force, "Replace an existing output");
  sub->callback([common, o] {
    common->apply();
    o->threads = common->thread_count();
    const ConvertReport r = convert(*o);
    if (common->json) {
      nlohmann::json j{{"input", o->input.string()}, {"output", o->output.string()},
                       {"input_tensor_bytes", r.input_bytes}, {"output_bytes", r.output_bytes},
                       {"seconds", r.seconds}};
      auto& ts = j["tensors"] = nlohmann::json::array();
      for (const auto& t : r.tensors)
        ts.push_back({{"name", t.name}, {"from", type_name(t.from)}, {"to", type_name(t.to)},
                      {"reason", t.reason}});
      print_json(j);
    } else {
      std::printf("%s -> %s: %s of tensors -> %s file, %zu tensors, %.2f s\n", o->input.string().c_str(),
                  o->output.string().c_str(), human_bytes(r.input_bytes).c_str(),
                  human_bytes(r.output_bytes).c_str(), r.tensors.size(), r.seconds);
    }
  });
});

}  // namespace
}  // namespace dcq::cli
