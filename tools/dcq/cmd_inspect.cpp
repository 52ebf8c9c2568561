// dcq inspect FILE: format, metadata, tensors and totals of any model file.
#include <cstdio>

#include "cli.hpp"
#include "dcq/inspect.hpp"

namespace dcq::cli {
namespace {

void print_text(const nlohmann::ordered_json& j) {
  std::printf("file:    %s\nformat:  %s\n", j["file"].get<std::string>().c_str(),
              j["format"].get<std::string>().c_str());
  if (j.contains("gguf_version"))
    std::printf("gguf:    v%d, alignment %d\n", j["gguf_version"].get<int>(), j["alignment"].get<int>());
  std::printf("\nmetadata (%zu keys):\n", j["metadata"].size());
  for (const auto& [k, v] : j["metadata"].items()) {
    std::string s = v.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
    if (s.size() > 100) s = s.substr(0, 97) + "...";
    std::printf("  %-44s %s\n", k.c_str(), s.c_str());
  }
  if (j.contains("files")) {  // a folder .dcq
    std::printf("\nfiles (%zu):\n", j["files"].size());
    for (const auto& f : j["files"])
      std::printf("  %-44s %-11s %12llu B  %llu tensors\n", f["name"].get<std::string>().c_str(),
                  f["kind"].get<std::string>().c_str(), static_cast<unsigned long long>(f["size"].get<uint64_t>()),
                  static_cast<unsigned long long>(f["tensors"].get<uint64_t>()));
  }
  std::printf("\ntensors (%zu):\n", j["tensors"].size());
  for (const auto& t : j["tensors"]) {
    std::string shape;
    for (const auto& d : t["shape"]) shape += (shape.empty() ? "" : " x ") + std::to_string(d.get<int64_t>());
    std::printf("  %-36s %-8s %-16s %10llu B", t["name"].get<std::string>().c_str(),
                t["type"].get<std::string>().c_str(), shape.c_str(),
                static_cast<unsigned long long>(t["bytes"].get<uint64_t>()));
    if (t.contains("offset")) std::printf("  @%llu", static_cast<unsigned long long>(t["offset"].get<uint64_t>()));
    std::printf("\n");
  }
  const auto& tot = j["totals"];
  std::printf("\ntotal: %llu parameters, %s of tensor data, %.3f bits per weight, file %s\n",
              static_cast<unsigned long long>(tot["parameters"].get<uint64_t>()),
              human_bytes(tot["tensor_bytes"].get<uint64_t>()).c_str(),
              tot["bits_per_weight"].get<double>(), human_bytes(tot["file_bytes"].get<uint64_t>()).c_str());
}

const bool registered = register_command("inspect", [](CLI::App& app) {
  auto* sub = app.add_subcommand("inspect", "Show format, metadata, tensors and totals of a model file");
  auto common = add_common(sub);
  auto opt = std::make_shared<InspectOptions>();
  sub->add_option("FILE", opt->input, "GGUF, safetensors (file or folder), llama2.c .bin or .dcq")->required();
  add_load_options(sub, opt->load);
  sub->callback([common, opt] {
    common->apply();
    const auto j = inspect(*opt);
    if (common->json) print_json(j);
    else print_text(j);
  });
});

}  // namespace
}  // namespace dcq::cli
