#include "dcq/weights.hpp"

#include "dcq/error.hpp"

namespace dcq {

std::string scale_tensor_name(std::string_view weight_name) {
  constexpr std::string_view suffix = ".weight";
  if (weight_name.ends_with(suffix))
    return std::string(weight_name.substr(0, weight_name.size() - suffix.size())) + ".scale";
  return std::string(weight_name) + ".scale";
}

int64_t TensorInfo::n_rows() const {
  int64_t r = 1;
  for (size_t i = 1; i < ne.size(); ++i) r *= ne[i];
  return r;
}

WeightBlocks WeightSource::acquire_rows(std::string_view name, int64_t row0, int64_t row1) {
  WeightBlocks all = acquire(name);
  DCQ_ASSERT(!all.interleaved);  // sources serve interleaved rows only to whole-matrix acquires
  if (row0 < 0 || row1 < row0 || row1 > all.n_rows)
    fail_input(describe() + ": rows " + std::to_string(row0) + ".." + std::to_string(row1) +
               " outside tensor " + std::string(name));
  const uint64_t stride = all.data.size() / uint64_t(all.n_rows ? all.n_rows : 1);
  all.data = all.data.subspan(size_t(row0) * stride, size_t(row1 - row0) * stride);
  all.row0 = row0;
  all.n_rows = row1 - row0;
  return all;
}

std::optional<TensorInfo> ModelWeights::info(std::string_view name) const {
  const Tensor* t = model_.find_tensor(name);
  if (!t) return std::nullopt;
  return TensorInfo{t->type, t->ne};
}

WeightBlocks ModelWeights::acquire(std::string_view name) {
  const Tensor* t = model_.find_tensor(name);
  if (!t) fail_input(describe() + ": tensor " + std::string(name) + " is missing");
  WeightBlocks w;
  w.info = TensorInfo{t->type, t->ne};
  w.row0 = 0;
  w.n_rows = w.info.n_rows();
  w.data = t->data;
  const auto rb = row_bytes(t->type, w.info.row_width());
  if (!rb || *rb * uint64_t(w.n_rows) != t->data.size())
    fail_input(describe() + ": tensor " + std::string(name) + " has " + std::to_string(t->data.size()) +
               " bytes, not what its shape and type need");
  return w;
}

}  // namespace dcq
