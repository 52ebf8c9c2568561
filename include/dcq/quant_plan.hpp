// Type mixes: which ggml type each tensor gets for a llama.cpp file type ("Q4_K_M", ...), decided
// exactly as llama.cpp's llama_model_quantize does (llama_tensor_get_type: tensor categories,
// per-layer "use more bits" rules, output/token-embedding rules, fallbacks for rows that are not
// a whole number of blocks, 1-D and norm tensors kept as they are).
//
// One deliberate difference: for a row width that no block type of the file type fits and for
// which llama.cpp defines no fallback (e.g. 172-wide ffn_down with Q4_0, Q8_0 or IQ4_NL), llama.cpp
// stops with "no tensor type fallback"; we choose F16, which is what the shared reference files
// hold (they were made with `--tensor-type ffn_down=f16`). The reason string says so.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dcq/ggml_type.hpp"
#include "dcq/model.hpp"

namespace dcq {

// Values are llama.cpp's llama_ftype, i.e. what GGUF stores in general.file_type.
enum class FileType : int32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q8_0 = 7, Q5_0 = 8, Q5_1 = 9,
  Q2_K = 10, Q3_K_S = 11, Q3_K_M = 12, Q3_K_L = 13, Q4_K_S = 14, Q4_K_M = 15,
  Q5_K_S = 16, Q5_K_M = 17, Q6_K = 18, IQ4_NL = 25, IQ4_XS = 30, BF16 = 32,
};

// Every supported file type, in llama-quantize's listing order.
const std::vector<FileType>& all_file_types();

// Parses llama-quantize's names, case-insensitively: "Q4_K_M", "q8_0", "F16", "BF16", "F32";
// also its aliases "Q3_K" (= Q3_K_M), "Q4_K" (= Q4_K_M), "Q5_K" (= Q5_K_M). nullopt if unknown.
std::optional<FileType> parse_file_type(std::string_view name);
std::string_view file_type_name(FileType ft);  // "Q4_K_M", "F32", ...

// general.file_type value of a file type, and back (nullopt for values we do not produce).
inline int64_t file_type_value(FileType ft) { return static_cast<int64_t>(ft); }
std::optional<FileType> file_type_from_value(int64_t value);

// The base tensor type of a file type (llama_ftype_get_default_type): Q4_K for Q4_K_M, ...
GgmlType file_type_default(FileType ft);

struct TypeChoice {
  GgmlType type;
  std::string reason;  // e.g. "fallback: row width 172 not a multiple of 256 (Q4_K) -> Q5_0 ..."
};

// The type llama-quantize gives tensor `t` of `model` (whose tensors are the source, usually
// F32/F16) for file type ft; `pure` is --pure (one type for all, only fallbacks applied).
// Layer-position rules depend on the other tensors, hence the model. Throws Error(bad_input)
// when t is not a tensor of model.
TypeChoice choose_tensor_type(FileType ft, const Model& model, const Tensor& t, bool pure);

// The same for every tensor of the model at once (index i <-> model.tensors[i]); linear time.
std::vector<TypeChoice> choose_tensor_types(FileType ft, const Model& model, bool pure);

// Converts tensor t (any type dcq can dequantize) to `type`: the bytes a GGUF tensor of that type
// holds (row_bytes(type, ne[0]) per row). Works in bounded chunks on n_threads threads (0: all
// cores); the result does not depend on the thread count. Throws Error(bad_input) when t's data
// size does not match its shape and type, when ne[0] is not a multiple of type's block size, or
// when a type has no (de)quantizer.
std::vector<uint8_t> convert_tensor(const Tensor& t, GgmlType type, int n_threads = 0);

}  // namespace dcq
