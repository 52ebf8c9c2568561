#include "dcq/byte_reader.hpp"
#include "dcq/error.hpp"
#include "dcq/gguf.hpp"

namespace dcq {
namespace {

class Out {
 public:
  template <class T>
  void put(T v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    bytes.insert(bytes.end(), p, p + sizeof(T));
  }
  void put_string(const std::string& s) {
    put<uint64_t>(s.size());
    bytes.insert(bytes.end(), s.begin(), s.end());
  }
  void put_value(const GgufValue& v) {
    std::visit(
        [&](const auto& x) {
          using T = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<T, std::string>) {
            put_string(x);
          } else if constexpr (std::is_same_v<T, GgufArray>) {
            put<uint32_t>(static_cast<uint32_t>(x.elem));
            put<uint64_t>(x.items.size());
            for (const auto& item : x.items) {
              DCQ_ASSERT(item.type() == x.elem);
              put_value(item);
            }
          } else if constexpr (std::is_same_v<T, bool>) {
            put<uint8_t>(x ? 1 : 0);
          } else {
            put<T>(x);
          }
        },
        v.v);
  }
  std::vector<uint8_t> bytes;
};

uint64_t tensor_bytes(const GgufTensorInfo& t) {
  int64_t n = 1;
  for (auto d : t.ne) n *= d;
  const auto& tr = traits(t.type);
  DCQ_ASSERT(t.ne.empty() || t.ne[0] % tr.block_size == 0);
  return static_cast<uint64_t>(n / tr.block_size) * tr.type_size;
}

}  // namespace

std::vector<uint8_t> gguf_header_bytes(const std::vector<GgufKV>& metadata,
                                       const std::vector<GgufTensorInfo>& tensors, uint32_t version) {
  const uint64_t alignment = gguf_alignment(metadata, "output");
  Out o;
  o.put<uint32_t>(kGgufMagic);
  o.put<uint32_t>(version);
  o.put<uint64_t>(tensors.size());
  o.put<uint64_t>(metadata.size());
  for (const auto& kv : metadata) {
    o.put_string(kv.key);
    o.put<uint32_t>(static_cast<uint32_t>(kv.value.type()));
    o.put_value(kv.value);
  }
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    o.put_string(t.name);
    o.put<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (auto d : t.ne) o.put<int64_t>(d);
    o.put<uint32_t>(static_cast<uint32_t>(t.type));
    o.put<uint64_t>(offset);
    offset += align_up(tensor_bytes(t), alignment);
  }
  o.bytes.resize(align_up(o.bytes.size(), alignment), 0);
  return std::move(o.bytes);
}

GgufWriter::GgufWriter(const std::filesystem::path& path, bool force,
                       const std::vector<GgufKV>& metadata, std::vector<GgufTensorInfo> tensors,
                       uint32_t version)
    : out_(path, force), tensors_(std::move(tensors)) {
  alignment_ = gguf_alignment(metadata, path.string());
  for (const auto& t : tensors_) sizes_.push_back(tensor_bytes(t));
  out_.write(gguf_header_bytes(metadata, tensors_, version));
  // Skip over empty tensors so that write() always targets one that still needs bytes.
  while (current_ < sizes_.size() && sizes_[current_] == 0) ++current_;
}

void GgufWriter::write(std::span<const uint8_t> bytes) {
  while (!bytes.empty()) {
    DCQ_ASSERT(current_ < tensors_.size());
    const uint64_t want = sizes_[current_] - written_in_current_;
    const size_t n = static_cast<size_t>(std::min<uint64_t>(want, bytes.size()));
    out_.write(bytes.data(), n);
    bytes = bytes.subspan(n);
    written_in_current_ += n;
    if (written_in_current_ == sizes_[current_]) {
      out_.write_zeros(align_up(sizes_[current_], alignment_) - sizes_[current_]);
      written_in_current_ = 0;
      ++current_;
      while (current_ < sizes_.size() && sizes_[current_] == 0) ++current_;
    }
  }
}

void GgufWriter::commit() {
  DCQ_ASSERT(current_ == tensors_.size());
  out_.commit();
}

void write_gguf(const Model& model, const std::filesystem::path& path, bool force) {
  std::vector<GgufTensorInfo> infos;
  infos.reserve(model.tensors.size());
  for (const auto& t : model.tensors) infos.push_back({t.name, t.type, t.ne});
  GgufWriter w(path, force, model.metadata, std::move(infos), model.gguf_version);
  for (const auto& t : model.tensors) w.write(t.data);
  w.commit();
}

}  // namespace dcq
