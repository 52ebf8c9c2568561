// Where the forward pass gets its weights. The engine asks for tensors by name, one layer at a
// time, and gives them back when done, so a source may keep only part of the model resident
// (a mmapped GGUF keeps everything; an on-demand .dcq decoder works within a memory budget).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dcq/ggml_type.hpp"
#include "dcq/gguf_value.hpp"
#include "dcq/model.hpp"

namespace dcq {

// Shape and type of a tensor, known without making its data resident.
struct TensorInfo {
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;  // ggml order: ne[0] is the row width
  int64_t row_width() const { return ne.empty() ? 1 : ne[0]; }
  int64_t n_rows() const;
};

// A resident tensor, or a row range of one: `data` holds rows [row0, row0 + n_rows) contiguously.
struct WeightBlocks {
  TensorInfo info;
  int64_t row0 = 0;
  int64_t n_rows = 0;
  std::span<const uint8_t> data;
  // The rows are in kernels::interleave_rows' layout (a source asked with want_interleaved), not
  // ggml's plain rows; such blocks are only handed out by acquire(), never by acquire_rows().
  bool interleaved = false;
};

// The scale tensor that goes with an I8 code tensor (dcq's lossy formats): "x.weight" -> "x.scale".
// F32, shape [n_cols / group, n_rows].
std::string scale_tensor_name(std::string_view weight_name);

class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // Model metadata (GGUF keys such as llama.embedding_length); nullptr when absent.
  virtual const GgufValue* find_kv(std::string_view key) const = 0;
  virtual std::optional<TensorInfo> info(std::string_view name) const = 0;
  // Makes the tensor resident; the span stays valid until release(name). Throws Error(bad_input)
  // when the tensor is missing.
  virtual WeightBlocks acquire(std::string_view name) = 0;
  // Only rows [row0, row1) (an embedding lookup needs one row, not the table).
  virtual WeightBlocks acquire_rows(std::string_view name, int64_t row0, int64_t row1);
  virtual void release(std::string_view name) { (void)name; }
  // True when every tensor stays resident once acquired (no memory budget): the engine may then
  // keep its own repacked copy of a matrix for the whole run.
  virtual bool all_resident() const { return false; }
  // The caller keeps its own copy of `name` (the engine's repacked matrix) and will not acquire it
  // whole again: the source may free its copy (a later acquire makes it resident again).
  virtual void discard(std::string_view name) { (void)name; }
  // The caller multiplies by matrix `name` and would take its rows in kernels::interleave_rows'
  // layout (the engine asks this of a source that is not all_resident, for the matrices the kernels
  // want interleaved). A source that can deliver them so, without costing more than plain rows,
  // marks the acquired blocks `interleaved`; others ignore the wish. Called before the first acquire.
  virtual void want_interleaved(std::string_view name) { (void)name; }
  // Name used in error messages (usually the file).
  virtual std::string describe() const = 0;
  // The whole model when it is in memory (the tokenizer reads its metadata); may be nullptr.
  virtual const Model* model() const { return nullptr; }
};

// Every tensor of an in-memory (mmapped) Model is resident: acquire/release cost nothing.
class ModelWeights final : public WeightSource {
 public:
  explicit ModelWeights(const Model& model) : model_(model) {}
  const GgufValue* find_kv(std::string_view key) const override { return model_.find_kv(key); }
  std::optional<TensorInfo> info(std::string_view name) const override;
  WeightBlocks acquire(std::string_view name) override;
  bool all_resident() const override { return true; }
  std::string describe() const override { return model_.source.string(); }
  const Model* model() const override { return &model_; }

 private:
  const Model& model_;
};

}  // namespace dcq
