#include "dcq/inspect.hpp"

#include "dcq/compress.hpp"
#include "dcq/error.hpp"

namespace dcq {

nlohmann::ordered_json inspect(const InspectOptions& options) {
  // .dcq containers are described by the lossless pipeline (src/pipeline/verify_inspect.cpp).
  if (detect_format(options.input) == ModelFormat::dcq) return nlohmann::ordered_json(inspect_dcq(options.input));
  const Model m = load_model(options.input, options.load);
  nlohmann::ordered_json j;
  j["file"] = options.input.string();
  j["format"] = format_name(m.format);
  if (m.format == ModelFormat::gguf) {
    j["gguf_version"] = m.gguf_version;
    j["alignment"] = m.alignment;
  }
  auto meta = nlohmann::ordered_json::object();
  for (const auto& kv : m.metadata) meta[kv.key] = to_json(kv.value, options.max_array_items);
  j["metadata"] = meta;
  auto tensors = nlohmann::ordered_json::array();
  uint64_t params = 0, bytes = 0;
  const uint8_t* base = nullptr;
  for (const auto& t : m.tensors)
    if (!t.data.empty() && (!base || t.data.data() < base)) base = t.data.data();
  for (const auto& t : m.tensors) {
    nlohmann::ordered_json e{{"name", t.name}, {"type", type_name(t.type)}, {"shape", t.ne},
                     {"bytes", t.n_bytes()}};
    if (m.format == ModelFormat::gguf && base) e["offset"] = t.data.data() - base;
    tensors.push_back(std::move(e));
    params += static_cast<uint64_t>(t.n_elements());
    bytes += t.n_bytes();
  }
  j["tensors"] = tensors;
  std::error_code ec;
  // A folder (sharded safetensors) counts the bytes of all its files.
  uint64_t file_bytes = 0;
  if (std::filesystem::is_directory(options.input, ec)) {
    for (const auto& e : std::filesystem::directory_iterator(options.input, ec))
      if (e.is_regular_file(ec)) file_bytes += e.file_size(ec);
  } else {
    file_bytes = std::filesystem::file_size(options.input, ec);
  }
  j["totals"] = {{"tensors", m.tensors.size()},
                 {"parameters", params},
                 {"tensor_bytes", bytes},
                 {"file_bytes", file_bytes},
                 {"bits_per_weight", params ? 8.0 * double(bytes) / double(params) : 0.0}};
  return j;
}

}  // namespace dcq
