#include "dcq/convert.hpp"

#include <chrono>
#include <spdlog/spdlog.h>

#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/quant.hpp"
#include "pipeline/row_stream.hpp"
#include "pipeline/type_choice.hpp"

namespace dcq {
namespace {

bool has_extension(const std::filesystem::path& p, const char* ext) { return p.extension() == ext; }

}  // namespace

ConvertReport convert(const ConvertOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  const bool to_gguf = has_extension(o.output, ".gguf");
  const bool to_safetensors = has_extension(o.output, ".safetensors");
  if (!to_gguf && !to_safetensors)
    fail_usage(o.output.string() + ": output must end in .gguf or .safetensors");
  check_can_write(o.output, o.force);

  Model m = load_model(o.input, o.load);
  pipeline::TypePlan plan = pipeline::plan_types(m, o.type, o.pure, to_safetensors);

  ConvertReport rep;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const auto& t = m.tensors[i];
    rep.input_bytes += t.n_bytes();
    rep.tensors.push_back({t.name, t.type, plan.types[i], plan.reasons[i]});
    if (t.type != plan.types[i] && !can_dequantize(t.type))
      fail_input(o.input.string() + ": tensor '" + t.name + "' has type " +
                 std::string(type_name(t.type)) + ", which dcq cannot convert");
  }
  // llama.cpp's gguf_set_val_* removes an existing key and appends it: do the same, so a
  // re-quantized file keeps llama-quantize's key order.
  for (const auto& [k, v] : plan.metadata_updates) {
    m.erase_kv(k);
    m.metadata.push_back({k, v});
  }
  if (!o.type.empty() && to_gguf) {
    // Quantizing: write tensors in llama-quantize's order, so its files are reproduced exactly.
    const auto order = pipeline::llama_quantize_order(m);
    std::vector<Tensor> tensors;
    std::vector<GgmlType> types;
    for (size_t i : order) tensors.push_back(m.tensors[i]), types.push_back(plan.types[i]);
    m.tensors = std::move(tensors);
    plan.types = std::move(types);
  }

  if (to_gguf) {
    std::vector<GgufTensorInfo> infos;
    for (size_t i = 0; i < m.tensors.size(); ++i)
      infos.push_back({m.tensors[i].name, plan.types[i], m.tensors[i].ne});
    GgufWriter w(o.output, o.force, m.metadata, infos, m.gguf_version);
    for (size_t i = 0; i < m.tensors.size(); ++i) {
      const Tensor& t = m.tensors[i];
      if (t.type == plan.types[i]) {
        w.write(t.data);
        continue;
      }
      const int64_t width = t.row_width();
      const uint64_t src_row = *row_bytes(t.type, width);
      pipeline::stream_quantized_rows(w, plan.types[i], width, t.n_rows(), o.threads,
                                      [&](int64_t r, float* out) {
                                        dequantize(t.type, t.data.data() + r * src_row, out, width);
                                      });
    }
    w.commit();
  } else {
    pipeline::write_safetensors_converted(m, plan, o.output, o.force, o.threads);
  }
  rep.output_bytes = std::filesystem::file_size(o.output);
  rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (const auto& c : rep.tensors)
    if (!c.reason.empty()) spdlog::debug("{}: {} ({})", c.name, type_name(c.to), c.reason);
  return rep;
}

}  // namespace dcq
