// The .dcq part of `dcq inspect`: what the container holds, after checking its structure and
// every stored checksum (cheap: no decoding).
#include <map>

#include "dcq/compress.hpp"
#include "dcq/container.hpp"
#include "dcq/error.hpp"

namespace dcq {

nlohmann::json inspect_dcq(const std::filesystem::path& path) {
  const auto r = DcqReader::open(path);
  const auto& ix = r.index();
  for (size_t i = 0; i < ix.chunks.size(); ++i) r.check_stored(i);
  (void)r.read_blob(ix.extras, "extras");
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(r.metadata_json());
  } catch (const nlohmann::json::exception&) {
    fail(ExitCode::integrity, path.string() + ": metadata is not valid JSON");
  }
  nlohmann::json j;
  j["file"] = path.string();
  j["format"] = "dcq";
  j["format_version"] = r.format_version();
  j["metadata"] = meta;
  auto tensors = nlohmann::json::array();
  uint64_t params = 0, bytes = 0, stored_total = 0;
  for (size_t ti = 0; ti < ix.tensors.size(); ++ti) {
    const auto& t = ix.tensors[ti];
    uint64_t stored = 0;
    std::map<std::string, uint64_t> codecs, transforms;
    for (uint32_t k = 0; k < t.n_chunks; ++k) {
      const auto& c = ix.chunks[t.first_chunk + k];
      stored += c.stored_size;
      ++transforms[std::string(transform_name(c.transform))];
      const auto info = parse_payload(t.type, c.transform, r.stored(c), c.decoded_size);
      for (const auto& s : info) ++codecs[codec_name(s.codec)];
    }
    uint64_t n_el = 1;
    for (auto d : t.ne) n_el *= static_cast<uint64_t>(d);
    nlohmann::json e{{"name", t.name}, {"type", type_name(t.type)}, {"shape", t.ne}, {"bytes", t.n_bytes},
                     {"stored_bytes", stored}, {"chunks", t.n_chunks}, {"stream_codecs", codecs},
                     {"transforms", transforms}};
    if (t.duplicate_of != kDcqNoDuplicate) e["duplicate_of"] = ix.tensors[t.duplicate_of].name;
    tensors.push_back(std::move(e));
    params += n_el;
    bytes += t.n_bytes;
    stored_total += stored;
  }
  j["tensors"] = tensors;
  if (!ix.files.empty()) {
    auto files = nlohmann::json::array();
    for (const auto& f : ix.files) {
      uint64_t n_tensors = 0;
      for (uint32_t k = 0; k < f.n_segments; ++k) n_tensors += ix.segments[f.first_segment + k].kind == DcqSegment::tensor;
      files.push_back({{"name", f.name}, {"kind", f.kind == DcqFile::safetensors ? "safetensors" : "verbatim"},
                       {"size", f.size}, {"tensors", n_tensors}});
    }
    j["files"] = files;
  }
  j["totals"] = {{"tensors", ix.tensors.size()},
                 {"parameters", params},
                 {"tensor_bytes", bytes},
                 {"stored_tensor_bytes", stored_total},
                 {"file_bytes", r.file_size()},
                 {"source_bytes", ix.source_size},
                 {"ratio", double(ix.source_size) / double(r.file_size())},
                 {"bits_per_weight", params ? 8.0 * double(r.file_size()) / double(params) : 0.0}};
  return j;
}

}  // namespace dcq
