#include "pipeline/type_choice.hpp"

#include <algorithm>
#include <cstdio>

#include "dcq/error.hpp"
#include "dcq/quant.hpp"
#include "dcq/quant_plan.hpp"
#include "dcq/safetensors.hpp"

namespace dcq::pipeline {

TypePlan plan_types(const Model& model, const std::string& type, bool pure, bool float_only) {
  TypePlan p;
  std::optional<FileType> ft;
  if (!type.empty()) {
    ft = parse_file_type(type);
    if (!ft) fail_usage("unknown type '" + type + "' (a tensor type such as Q4_0 or a file type such as Q4_K_M)");
  }
  std::vector<TypeChoice> choices;
  if (ft) choices = choose_tensor_types(*ft, model, pure);
  for (size_t i = 0; i < model.tensors.size(); ++i) {
    p.types.push_back(ft ? choices[i].type : model.tensors[i].type);
    p.reasons.push_back(ft ? choices[i].reason : std::string());
    if (float_only && traits(p.types.back()).quantized) {
      p.types.back() = GgmlType::F32;
      p.reasons.back() = "safetensors holds only F32/F16/BF16";
    }
  }
  if (ft && !float_only) {
    // The order llama-quantize sets them in, so that a new key lands where it would.
    p.metadata_updates.emplace_back("general.quantization_version", GgufValue{uint32_t(2)});
    p.metadata_updates.emplace_back("general.file_type", GgufValue{uint32_t(file_type_value(*ft))});
  }
  return p;
}

std::vector<size_t> llama_quantize_order(const Model& model) {
  // llama.cpp's weight_name_comparer: tensors outside blocks first (layer -1), then by block
  // number, then by name.
  auto layer = [](const std::string& name) {
    int l = -1;
    if (std::sscanf(name.c_str(), "blk.%d.", &l) != 1) l = -1;
    return l;
  };
  std::vector<size_t> order(model.tensors.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const auto& na = model.tensors[a].name;
    const auto& nb = model.tensors[b].name;
    const int la = layer(na), lb = layer(nb);
    return la != lb ? la < lb : na < nb;
  });
  return order;
}

void write_safetensors_converted(const Model& model, const TypePlan& plan,
                                 const std::filesystem::path& output, bool force, int threads) {
  Model out;
  out.source = model.source;
  out.format = ModelFormat::safetensors;
  out.metadata = model.metadata;
  for (size_t i = 0; i < model.tensors.size(); ++i) {
    const Tensor& t = model.tensors[i];
    Tensor c = t;
    c.type = plan.types[i];
    if (t.type != c.type) {
      const std::vector<uint8_t> bytes = convert_tensor(t, c.type, threads);
      auto buf = out.allocate(bytes.size());
      std::copy(bytes.begin(), bytes.end(), buf.begin());
      c.data = buf;
    }
    out.tensors.push_back(std::move(c));
  }
  write_safetensors_model(out, output, force);
}

}  // namespace dcq::pipeline
