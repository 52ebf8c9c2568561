// Hugging Face llama tensor names <-> GGUF tensor names, the q/k row permutation between the two
// RoPE layouts, and llama.cpp's tensor order.
//
// Hugging Face's llama conversion reorders the rows of each attention head of q_proj/k_proj so that
// RoPE rotates the two halves of a head ("rotate-half" layout); GGUF (like Meta's and llama2.c's
// checkpoints) keeps rotation pairs interleaved. llama.cpp's convert_hf_to_gguf.py undoes it with
// permute(w, n_head, n_head_kv): view the rows as [heads, 2, head_dim/2] and swap the last two axes.
// With head h, half i in {0,1} and pair index j < head_dim/2:
//     gguf_row(h*head_dim + 2*j + i) = hf_row(h*head_dim + i*head_dim/2 + j)
// For k_proj the head count is n_head_kv.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace dcq::io {

// "model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight"; nullopt when not a llama name.
std::optional<std::string> hf_to_gguf_name(std::string_view hf_name);
// The inverse; nullopt when the GGUF name has no Hugging Face llama counterpart.
std::optional<std::string> gguf_to_hf_name(std::string_view gguf_name);

// Which rotation permutation a GGUF tensor needs: none, q (n_head) or k (n_head_kv).
enum class RopePermute { none, q, k };
RopePermute rope_permute_of(std::string_view gguf_name);

// Row index in the Hugging Face tensor that holds GGUF row `gguf_row` of a q/k matrix whose rows
// form `n_head` heads of `head_dim` rows (head_dim even).
inline int64_t hf_row_of_gguf_row(int64_t gguf_row, int64_t head_dim) {
  const int64_t h = gguf_row / head_dim, r = gguf_row % head_dim;
  return h * head_dim + (r % 2) * (head_dim / 2) + r / 2;
}

// Sort key reproducing llama.cpp's tensor order in stories260K-F32.gguf: token_embd, output_norm,
// output, then per block attn_q, attn_k, attn_v, attn_output, attn_norm, ffn_gate, ffn_down,
// ffn_up, ffn_norm (a bias right after its weight). Unknown names sort last, in input order.
struct TensorRank {
  int64_t block;  // -1 for the global tensors
  int slot;
  auto operator<=>(const TensorRank&) const = default;
};
TensorRank llama_tensor_rank(std::string_view gguf_name);
// The order of Hugging Face checkpoints such as stories260K-hf-*: embed_tokens, norm, lm_head,
// then per layer input_layernorm, post_attention_layernorm, q, k, v, o, gate, down, up.
TensorRank hf_tensor_rank(std::string_view gguf_name);

}  // namespace dcq::io
