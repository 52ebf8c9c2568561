// FloatModel: the model as floats for the lossy stages, and the llama layer map they share.
#include <cstring>

#include "dcq/error.hpp"
#include "dcq/lossy.hpp"
#include "dcq/quant.hpp"
#include "dcq/weights.hpp"

namespace dcq::lossy {

FloatTensor* FloatModel::find(std::string_view name) {
  for (auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

const FloatTensor* FloatModel::find(std::string_view name) const {
  return const_cast<FloatModel*>(this)->find(name);
}

FloatModel to_float(const Model& model) {
  FloatModel f;
  f.source = model.source.string();
  f.metadata = model.metadata;
  for (const auto& t : model.tensors) {
    if (!can_dequantize(t.type))
      fail_input(f.source + ": tensor " + t.name + " has type " + std::string(type_name(t.type)) +
                 ", which dcq cannot dequantize");
    FloatTensor ft;
    ft.name = t.name;
    ft.ne = t.ne;
    ft.source_type = t.type;
    ft.data.resize(size_t(t.n_elements()));
    if (!ft.data.empty()) dequantize_tensor(t.type, t.data.data(), ft.data.data(), t.row_width(), t.n_rows(), 1);
    f.tensors.push_back(std::move(ft));
  }
  return f;
}

Model as_model(const FloatModel& f) {
  Model m;
  m.source = f.source;
  m.metadata = f.metadata;
  for (const auto& t : f.tensors) {
    Tensor x;
    x.name = t.name;
    x.type = GgmlType::F32;
    x.ne = t.ne;
    x.data = {reinterpret_cast<const uint8_t*>(t.data.data()), t.data.size() * sizeof(float)};
    m.tensors.push_back(std::move(x));
  }
  return m;
}

LlamaConfig config_of(const FloatModel& model) {
  const Model m = as_model(model);
  ModelWeights w(m);
  return LlamaConfig::from(w);
}

std::string site_key(int layer, LinearSite site) {
  const char* s = "";
  switch (site) {
    case LinearSite::attn_in: s = "attn_in"; break;
    case LinearSite::attn_out_in: s = "attn_out_in"; break;
    case LinearSite::ffn_in: s = "ffn_in"; break;
    case LinearSite::ffn_down_in: s = "ffn_down_in"; break;
    case LinearSite::output_in: return "output_in";
  }
  return "blk." + std::to_string(layer) + "." + s;
}

std::vector<LinearLayer> linear_layers(const FloatModel& model, const LlamaConfig& cfg) {
  std::vector<LinearLayer> out;
  auto blk = [](int l, const char* n) { return "blk." + std::to_string(l) + "." + n + ".weight"; };
  out.push_back({"token_embd.weight", ""});
  for (int l = 0; l < cfg.n_layer; ++l) {
    for (const char* n : {"attn_q", "attn_k", "attn_v"}) out.push_back({blk(l, n), site_key(l, LinearSite::attn_in)});
    out.push_back({blk(l, "attn_output"), site_key(l, LinearSite::attn_out_in)});
    for (const char* n : {"ffn_gate", "ffn_up"}) out.push_back({blk(l, n), site_key(l, LinearSite::ffn_in)});
    out.push_back({blk(l, "ffn_down"), site_key(l, LinearSite::ffn_down_in)});
  }
  if (model.find("output.weight")) out.push_back({"output.weight", site_key(-1, LinearSite::output_in)});
  return out;
}

}  // namespace dcq::lossy
