#include "io/hf_names.hpp"

#include <array>
#include <charconv>

namespace dcq::io {
namespace {

struct NamePair {
  std::string_view hf;    // suffix after "model.layers.N." (block) or whole name (global)
  std::string_view gguf;  // suffix after "blk.N." (block) or whole name (global)
};

// Global tensors, in llama.cpp's order.
constexpr std::array<NamePair, 3> kGlobal{{
    {"model.embed_tokens", "token_embd"},
    {"model.norm", "output_norm"},
    {"lm_head", "output"},
}};

// Per-block tensors, in llama.cpp's order.
constexpr std::array<NamePair, 9> kBlock{{
    {"self_attn.q_proj", "attn_q"},
    {"self_attn.k_proj", "attn_k"},
    {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"},
    {"input_layernorm", "attn_norm"},
    {"mlp.gate_proj", "ffn_gate"},
    {"mlp.down_proj", "ffn_down"},
    {"mlp.up_proj", "ffn_up"},
    {"post_attention_layernorm", "ffn_norm"},
}};

// Splits "<base>.weight" / "<base>.bias"; returns false for any other ending.
bool split_kind(std::string_view name, std::string_view* base, std::string_view* kind) {
  for (std::string_view k : {std::string_view(".weight"), std::string_view(".bias")}) {
    if (name.size() > k.size() && name.ends_with(k)) {
      *base = name.substr(0, name.size() - k.size());
      *kind = k;
      return true;
    }
  }
  return false;
}

// Parses "<prefix><decimal>.<rest>"; the number has no sign or leading zero (except "0").
bool split_block(std::string_view name, std::string_view prefix, int64_t* block, std::string_view* rest) {
  if (!name.starts_with(prefix)) return false;
  name.remove_prefix(prefix.size());
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot > 9) return false;
  if (name[0] == '0' && dot > 1) return false;
  const auto digits = name.substr(0, dot);
  const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), *block);
  if (r.ec != std::errc() || r.ptr != digits.data() + digits.size()) return false;
  *rest = name.substr(dot + 1);
  return true;
}

}  // namespace

std::optional<std::string> hf_to_gguf_name(std::string_view hf_name) {
  std::string_view base, kind;
  if (!split_kind(hf_name, &base, &kind)) return std::nullopt;
  for (const auto& p : kGlobal)
    if (base == p.hf) return std::string(p.gguf) + std::string(kind);
  int64_t block = 0;
  std::string_view rest;
  if (!split_block(base, "model.layers.", &block, &rest)) return std::nullopt;
  for (const auto& p : kBlock)
    if (rest == p.hf) return "blk." + std::to_string(block) + "." + std::string(p.gguf) + std::string(kind);
  return std::nullopt;
}

std::optional<std::string> gguf_to_hf_name(std::string_view gguf_name) {
  std::string_view base, kind;
  if (!split_kind(gguf_name, &base, &kind)) return std::nullopt;
  for (const auto& p : kGlobal)
    if (base == p.gguf) return std::string(p.hf) + std::string(kind);
  int64_t block = 0;
  std::string_view rest;
  if (!split_block(base, "blk.", &block, &rest)) return std::nullopt;
  for (const auto& p : kBlock)
    if (rest == p.gguf) return "model.layers." + std::to_string(block) + "." + std::string(p.hf) + std::string(kind);
  return std::nullopt;
}

RopePermute rope_permute_of(std::string_view gguf_name) {
  std::string_view base, kind;
  if (!split_kind(gguf_name, &base, &kind)) return RopePermute::none;
  int64_t block = 0;
  std::string_view rest;
  if (!split_block(base, "blk.", &block, &rest)) return RopePermute::none;
  if (rest == "attn_q") return RopePermute::q;
  if (rest == "attn_k") return RopePermute::k;
  return RopePermute::none;
}

namespace {

TensorRank rank_in(std::string_view gguf_name, const std::array<std::string_view, 9>& block_order) {
  constexpr TensorRank kUnknown{INT64_MAX, 0};
  std::string_view base, kind;
  if (!split_kind(gguf_name, &base, &kind)) return kUnknown;
  const int bias = kind == ".bias" ? 1 : 0;
  for (size_t i = 0; i < kGlobal.size(); ++i)
    if (base == kGlobal[i].gguf) return {-1, static_cast<int>(2 * i) + bias};
  int64_t block = 0;
  std::string_view rest;
  if (!split_block(base, "blk.", &block, &rest)) return kUnknown;
  for (size_t i = 0; i < block_order.size(); ++i)
    if (rest == block_order[i]) return {block, static_cast<int>(2 * i) + bias};
  return kUnknown;
}

}  // namespace

TensorRank llama_tensor_rank(std::string_view gguf_name) {
  static constexpr std::array<std::string_view, 9> kOrder{"attn_q", "attn_k", "attn_v", "attn_output", "attn_norm",
                                                          "ffn_gate", "ffn_down", "ffn_up", "ffn_norm"};
  return rank_in(gguf_name, kOrder);
}

TensorRank hf_tensor_rank(std::string_view gguf_name) {
  static constexpr std::array<std::string_view, 9> kOrder{"attn_norm", "ffn_norm", "attn_q", "attn_k", "attn_v",
                                                          "attn_output", "ffn_gate", "ffn_down", "ffn_up"};
  return rank_in(gguf_name, kOrder);
}

}  // namespace dcq::io
