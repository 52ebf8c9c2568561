#include <unordered_set>

#include "dcq/byte_reader.hpp"
#include "dcq/error.hpp"
#include "dcq/gguf.hpp"

namespace dcq {
namespace {

constexpr int kMaxArrayDepth = 8;  // nested arrays deeper than this are refused as hostile

// Smallest encoded size of a value of each type: bounds a forged array count before allocating.
uint64_t min_encoded_size(GgufType t) {
  switch (t) {
    case GgufType::UINT8: case GgufType::INT8: case GgufType::BOOL: return 1;
    case GgufType::UINT16: case GgufType::INT16: return 2;
    case GgufType::UINT32: case GgufType::INT32: case GgufType::FLOAT32: return 4;
    case GgufType::UINT64: case GgufType::INT64: case GgufType::FLOAT64: return 8;
    case GgufType::STRING: return 8;
    case GgufType::ARRAY: return 12;
  }
  return 1;
}

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufType::FLOAT64); }

class Parser {
 public:
  Parser(std::span<const uint8_t> bytes, const std::string& source, bool header_only = false)
      : r_(bytes, source), header_only_(header_only) {}

  Model parse() {
    Model m;
    m.source = r_.source();
    m.format = ModelFormat::gguf;
    const auto magic = r_.read<uint32_t>("magic");
    if (magic != kGgufMagic) r_.malformed("not a GGUF file (bad magic)");
    m.gguf_version = r_.read<uint32_t>("version");
    if (m.gguf_version == 1) r_.malformed("GGUF version 1 is not supported (only 2 and 3)");
    if (m.gguf_version < 2 || m.gguf_version > 3)
      r_.malformed("unsupported GGUF version " + std::to_string(m.gguf_version) + " (only 2 and 3)");
    const auto n_tensors = r_.read<uint64_t>("tensor count");
    const auto n_kv = r_.read<uint64_t>("metadata count");
    // Each key/value needs at least 13 bytes and each tensor info 24: a count that cannot fit in
    // the rest of the file is forged, and is refused before anything is allocated.
    if (n_kv > r_.remaining() / 13)
      r_.malformed("metadata count " + std::to_string(n_kv) + " exceeds what the file can hold");
    if (n_tensors > r_.remaining() / 24)
      r_.malformed("tensor count " + std::to_string(n_tensors) + " exceeds what the file can hold");

    std::unordered_set<std::string> keys;
    m.metadata.reserve(n_kv);
    for (uint64_t i = 0; i < n_kv; ++i) {
      const size_t at = r_.offset();
      GgufKV kv;
      kv.key = read_string("metadata key");
      if (!keys.insert(kv.key).second)
        r_.malformed("duplicate metadata key '" + kv.key + "' at offset " + std::to_string(at));
      const auto t = r_.read<uint32_t>("value type of '" + kv.key + "'");
      if (!valid_value_type(t))
        r_.malformed("metadata key '" + kv.key + "' has unknown value type " + std::to_string(t));
      kv.value = read_value(static_cast<GgufType>(t), kv.key, 0);
      m.metadata.push_back(std::move(kv));
    }
    m.alignment = gguf_alignment(m.metadata, r_.source());

    struct Info {
      uint64_t offset;
    };
    std::vector<Info> infos;
    std::unordered_set<std::string> names;
    m.tensors.reserve(n_tensors);
    infos.reserve(n_tensors);
    for (uint64_t i = 0; i < n_tensors; ++i) {
      Tensor t;
      t.name = read_string("tensor name");
      if (!names.insert(t.name).second) r_.malformed("duplicate tensor name '" + t.name + "'");
      const auto n_dims = r_.read<uint32_t>("dimension count of '" + t.name + "'");
      if (n_dims > kGgufMaxDims)
        r_.malformed("tensor '" + t.name + "' has " + std::to_string(n_dims) + " dimensions (max 4)");
      uint64_t n_el = 1;
      for (uint32_t d = 0; d < n_dims; ++d) {
        const auto ne = r_.read<int64_t>("shape of '" + t.name + "'");
        if (ne < 0) r_.malformed("tensor '" + t.name + "' has negative dimension " + std::to_string(ne));
        if (mul_overflows(n_el, static_cast<uint64_t>(ne), &n_el) || n_el > uint64_t(INT64_MAX))
          r_.malformed("tensor '" + t.name + "' shape overflows");
        t.ne.push_back(ne);
      }
      const auto raw_type = r_.read<uint32_t>("type of '" + t.name + "'");
      const auto tt = type_traits(raw_type);
      if (!tt) r_.malformed("tensor '" + t.name + "' has unknown type " + std::to_string(raw_type));
      t.type = static_cast<GgmlType>(raw_type);
      if (t.row_width() % tt->block_size != 0)
        r_.malformed("tensor '" + t.name + "' row width " + std::to_string(t.row_width()) +
                     " is not a multiple of the " + std::string(tt->name) + " block size " +
                     std::to_string(tt->block_size));
      uint64_t nbytes = 0;
      if (mul_overflows(n_el / tt->block_size, tt->type_size, &nbytes) || (!header_only_ && nbytes > r_.size()))
        r_.malformed("tensor '" + t.name + "' data (" + std::to_string(nbytes) + " bytes) runs past the end of the file");
      const auto off = r_.read<uint64_t>("data offset of '" + t.name + "'");
      if (off % m.alignment != 0)
        r_.malformed("tensor '" + t.name + "' data offset " + std::to_string(off) +
                     " is not a multiple of the alignment " + std::to_string(m.alignment));
      infos.push_back({off});
      m.tensors.push_back(std::move(t));
    }

    if (header_only_) return m;  // the data lives elsewhere (a .dcq container's chunks)
    const uint64_t data_start = align_up(r_.offset(), m.alignment);
    if (data_start > r_.size() && n_tensors > 0)
      r_.truncated("tensor data section", data_start);
    const uint64_t data_size = r_.size() > data_start ? r_.size() - data_start : 0;
    for (size_t i = 0; i < m.tensors.size(); ++i) {
      auto& t = m.tensors[i];
      const uint64_t nbytes = t.n_bytes();
      // Like ggml, the data section must hold every tensor including its padding to the
      // alignment: a file cut inside the last tensor's padding is truncated, not valid.
      uint64_t end = 0;
      if (add_overflows(infos[i].offset, align_up(nbytes, m.alignment), &end) || end > data_size)
        r_.malformed("tensor '" + t.name + "' data (offset " + std::to_string(infos[i].offset) +
                     ", " + std::to_string(nbytes) + " bytes) runs past the end of the file");
      r_.seek(data_start + infos[i].offset, "tensor data");
      t.data = r_.read_bytes(nbytes, "tensor data of '" + t.name + "'");
    }
    return m;
  }

 private:
  std::string read_string(const std::string& what) {
    const auto len = r_.read<uint64_t>(what + " length");
    auto b = r_.read_bytes(len, what);
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }

  GgufValue read_value(GgufType t, const std::string& key, int depth) {
    GgufValue v;
    switch (t) {
      case GgufType::UINT8: v.v = r_.read<uint8_t>(key); break;
      case GgufType::INT8: v.v = r_.read<int8_t>(key); break;
      case GgufType::UINT16: v.v = r_.read<uint16_t>(key); break;
      case GgufType::INT16: v.v = r_.read<int16_t>(key); break;
      case GgufType::UINT32: v.v = r_.read<uint32_t>(key); break;
      case GgufType::INT32: v.v = r_.read<int32_t>(key); break;
      case GgufType::FLOAT32: v.v = r_.read<float>(key); break;
      case GgufType::BOOL: {
        const auto b = r_.read<uint8_t>(key);
        if (b > 1) r_.malformed("metadata key '" + key + "' has bool value " + std::to_string(b));
        v.v = b != 0;
        break;
      }
      case GgufType::STRING: v.v = read_string("value of '" + key + "'"); break;
      case GgufType::UINT64: v.v = r_.read<uint64_t>(key); break;
      case GgufType::INT64: v.v = r_.read<int64_t>(key); break;
      case GgufType::FLOAT64: v.v = r_.read<double>(key); break;
      case GgufType::ARRAY: {
        if (depth >= kMaxArrayDepth)
          r_.malformed("metadata key '" + key + "' nests arrays deeper than " +
                       std::to_string(kMaxArrayDepth));
        const auto et = r_.read<uint32_t>("array type of '" + key + "'");
        if (!valid_value_type(et))
          r_.malformed("metadata key '" + key + "' has unknown array element type " + std::to_string(et));
        const auto n = r_.read<uint64_t>("array length of '" + key + "'");
        const auto elem = static_cast<GgufType>(et);
        if (n > r_.remaining() / min_encoded_size(elem))
          r_.malformed("metadata key '" + key + "' array length " + std::to_string(n) +
                       " exceeds what the file can hold");
        GgufArray a;
        a.elem = elem;
        a.items.reserve(n);
        for (uint64_t i = 0; i < n; ++i) a.items.push_back(read_value(elem, key, depth + 1));
        v.v = std::move(a);
        break;
      }
    }
    return v;
  }

  ByteReader r_;
  bool header_only_ = false;
};

}  // namespace

bool looks_like_gguf(std::span<const uint8_t> head) {
  return head.size() >= 4 && head[0] == 'G' && head[1] == 'G' && head[2] == 'U' && head[3] == 'F';
}

uint64_t gguf_alignment(const std::vector<GgufKV>& metadata, const std::string& source) {
  for (const auto& kv : metadata) {
    if (kv.key != "general.alignment") continue;
    const auto* a = std::get_if<uint32_t>(&kv.value.v);
    if (!a) fail_input(source + ": general.alignment must be a u32");
    if (*a == 0 || (*a & (*a - 1)) != 0)
      fail_input(source + ": general.alignment " + std::to_string(*a) + " is not a power of two");
    return *a;
  }
  return kGgufDefaultAlignment;
}

Model parse_gguf(std::span<const uint8_t> bytes, const std::string& source_name) {
  return Parser(bytes, source_name).parse();
}

Model parse_gguf_header(std::span<const uint8_t> bytes, const std::string& source_name) {
  return Parser(bytes, source_name, /*header_only=*/true).parse();
}

Model read_gguf(const std::filesystem::path& path) {
  auto map = MappedFile::open(path);
  Model m = parse_gguf(map->bytes(), path.string());
  m.source = path;
  m.keep(map);
  return m;
}

}  // namespace dcq
