// repack_raw: a copy of a container with chosen tensors stored raw (docs/loader.md, "Repack").
// Only the container's public reader/writer API is used: payloads are copied in their file order,
// the chosen tensors' chunks are decoded (checksums checked) and written as one raw stream.
#include <algorithm>
#include <set>

#include "dcq/error.hpp"
#include "dcq/loader.hpp"

namespace dcq {
namespace {
constexpr size_t kRawPayloadHeader = 2 + 12;  // n_streams, reserved, one stream header
}  // namespace

nlohmann::json repack_raw(const std::filesystem::path& input, const std::filesystem::path& output,
                          const std::vector<std::string>& store_raw, bool force) {
  std::error_code ec;
  if (std::filesystem::equivalent(input, output, ec)) fail_usage("--repack: the output must differ from the input");
  const auto r = DcqReader::open(input);
  DcqIndex ix = r.index();
  std::set<uint32_t> raw_tensors;
  for (const auto& name : store_raw) {
    bool found = false;
    for (uint32_t i = 0; i < ix.tensors.size(); ++i)
      if (ix.tensors[i].name == name) {
        raw_tensors.insert(ix.tensors[i].duplicate_of == kDcqNoDuplicate ? i : ix.tensors[i].duplicate_of);
        found = true;
      }
    if (!found) fail_input(input.string() + ": tensor " + name + " is missing");
  }
  // Payloads in file order: blobs (-1: metadata, -2: extras) and chunks.
  std::vector<std::pair<uint64_t, int64_t>> order;
  order.push_back({ix.metadata.offset, -1});
  order.push_back({ix.extras.offset, -2});
  for (size_t c = 0; c < ix.chunks.size(); ++c) order.push_back({ix.chunks[c].offset, int64_t(c)});
  std::sort(order.begin(), order.end());

  DcqWriter w(output, force, ix.files.empty() ? 1 : kDcqFolderFormatVersion);  // a folder keeps its file table
  uint64_t raw_chunks = 0;
  std::vector<uint8_t> decoded;
  for (const auto& [offset, what] : order) {
    if (what < 0) {
      DcqBlob& b = what == -1 ? ix.metadata : ix.extras;
      DcqChunk view;  // stored() reads any payload range by offset and size
      view.offset = b.offset;
      view.stored_size = b.stored_size;
      b.offset = w.write_payload(r.stored(view));
      continue;
    }
    DcqChunk& c = ix.chunks[size_t(what)];
    if (!raw_tensors.count(c.tensor) || c.codec == CodecId::raw) {
      c.offset = w.write_payload(r.stored(c));
      continue;
    }
    decoded.resize(c.decoded_size);
    r.decode_chunk(size_t(what), decoded);
    // Transform "none", one raw stream (docs/format.md, "Chunk payload"). Built here rather than
    // by encode_chunk, whose speed floor leaves chunks under 64 KiB to the smallest encoding.
    std::vector<uint8_t> payload;
    payload.reserve(kRawPayloadHeader + decoded.size());
    const uint32_t n = static_cast<uint32_t>(decoded.size());  // a chunk is at most 1 GiB
    const uint8_t header[kRawPayloadHeader] = {1, 0, uint8_t(CodecId::raw), 0, 0, 0,
                                               uint8_t(n), uint8_t(n >> 8), uint8_t(n >> 16), uint8_t(n >> 24),
                                               uint8_t(n), uint8_t(n >> 8), uint8_t(n >> 16), uint8_t(n >> 24)};
    payload.insert(payload.end(), header, header + kRawPayloadHeader);
    payload.insert(payload.end(), decoded.begin(), decoded.end());
    (void)parse_payload(ix.tensors[c.tensor].type, TransformId::none, payload, c.decoded_size);  // self-check
    c.transform = TransformId::none;
    c.codec = CodecId::raw;
    c.n_streams = 1;
    c.offset = w.write_payload(payload);
    c.stored_size = payload.size();
    c.xxh3_stored = xxh3(payload);
    ++raw_chunks;
  }
  w.finish(ix);
  return {{"input", input.string()},
          {"output", output.string()},
          {"input_bytes", std::filesystem::file_size(input)},
          {"output_bytes", std::filesystem::file_size(output)},
          {"raw_tensors", raw_tensors.size()},
          {"raw_chunks", raw_chunks}};
}

}  // namespace dcq
