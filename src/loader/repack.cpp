// repack_raw: a copy of a container with chosen tensors stored raw (docs/loader.md, "Repack").
// Only the container's public reader/writer API is used: payloads are copied in their file order,
// the chosen tensors' chunks are decoded (checksums checked) and written as one raw stream.
//
// A chosen tensor becomes ONE raw chunk (when it fits the 1 GiB chunk limit): then its rows are
// contiguous in the file, 14 bytes after a 16-byte aligned payload start, and the loader serves
// it straight from the mmap without a copy (zero-copy, docs/loader.md). Split into several raw
// chunks, the rows would be interrupted by payload headers and alignment padding. With
// `interleave`, a Q8_0 / Q4_0 matrix's one chunk uses transform row_groups: the stored rows are
// already in the layout the kernels read fastest (kernels::interleave_rows).
#include <algorithm>
#include <cstring>
#include <set>

#include "dcq/error.hpp"
#include "dcq/loader.hpp"

namespace dcq {
namespace {
constexpr size_t kRawPayloadHeader = 2 + 12;  // n_streams, reserved, one stream header

// One raw stream under transform `t` (docs/format.md, "Chunk payload"): `none` with the plain
// rows, or `row_groups` with the interleaved rows. Built here rather than by encode_chunk, whose
// speed floor leaves chunks under 64 KiB to the smallest encoding and which never picks row_groups.
std::vector<uint8_t> raw_payload(std::span<const uint8_t> stream) {
  const uint32_t n = static_cast<uint32_t>(stream.size());  // a chunk is at most 1 GiB
  const uint8_t header[kRawPayloadHeader] = {1, 0, uint8_t(CodecId::raw), 0, 0, 0,
                                             uint8_t(n), uint8_t(n >> 8), uint8_t(n >> 16), uint8_t(n >> 24),
                                             uint8_t(n), uint8_t(n >> 8), uint8_t(n >> 16), uint8_t(n >> 24)};
  std::vector<uint8_t> payload(kRawPayloadHeader + stream.size());
  std::memcpy(payload.data(), header, kRawPayloadHeader);
  if (!stream.empty()) std::memcpy(payload.data() + kRawPayloadHeader, stream.data(), stream.size());
  return payload;
}

// Whether a chosen tensor is stored in the kernels' interleaved layout: Q8_0 / Q4_0 with at least
// one group of 16 rows, in one chunk. Not the token embedding: it is read a row at a time (the
// lookup of each token's row), which wants plain rows.
bool wants_row_groups(const DcqTensor& t, bool is_embedding) {
  return (t.type == GgmlType::Q8_0 || t.type == GgmlType::Q4_0) && !is_embedding &&
         t.n_rows() >= uint64_t(kRowGroupRows) && t.n_bytes <= kDcqMaxChunkBytes;
}
}  // namespace

nlohmann::json repack_raw(const std::filesystem::path& input, const std::filesystem::path& output,
                          const std::vector<std::string>& store_raw, bool force, bool one_chunk, bool interleave,
                          uint64_t row_chunk_bytes) {
  std::error_code ec;
  if (std::filesystem::equivalent(input, output, ec)) fail_usage("--repack: the output must differ from the input");
  const auto r = DcqReader::open(input);
  const DcqIndex& in = r.index();
  std::set<uint32_t> raw_tensors;
  for (const auto& name : store_raw) {
    bool found = false;
    for (uint32_t i = 0; i < in.tensors.size(); ++i)
      if (in.tensors[i].name == name) {
        raw_tensors.insert(in.tensors[i].duplicate_of == kDcqNoDuplicate ? i : in.tensors[i].duplicate_of);
        found = true;
      }
    if (!found) fail_input(input.string() + ": tensor " + name + " is missing");
  }

  // The tensor whose bytes serve the token embedding (itself, or the earlier one it duplicates).
  uint32_t embedding = kDcqNoDuplicate;
  bool has_output = false;
  for (uint32_t i = 0; i < in.tensors.size(); ++i) {
    if (in.tensors[i].name == "token_embd.weight")
      embedding = in.tensors[i].duplicate_of == kDcqNoDuplicate ? i : in.tensors[i].duplicate_of;
    has_output |= in.tensors[i].name == "output.weight";
  }
  // The embedding read by rows, stored raw in small chunks (`row_chunk_bytes`).
  const bool rechunk_embedding = row_chunk_bytes > 0 && has_output && embedding != kDcqNoDuplicate &&
                                 !raw_tensors.count(embedding) && in.tensors[embedding].n_chunks > 0;

  // The new chunk list, in tensor order: a chosen tensor that fits one chunk gets one chunk
  // (`old_range` maps it to its old chunks), everything else keeps its chunks. `want` is the
  // transform of a chosen tensor's new raw chunks.
  DcqIndex ix = in;
  ix.chunks.clear();
  std::vector<std::pair<uint32_t, uint32_t>> old_range;  // new chunk -> old chunks [first, end)
  std::vector<TransformId> want(ix.tensors.size(), TransformId::none);
  for (uint32_t t = 0; t < ix.tensors.size(); ++t) {
    DcqTensor& tt = ix.tensors[t];
    const uint32_t first = tt.first_chunk, n = tt.n_chunks;
    tt.first_chunk = uint32_t(ix.chunks.size());
    if (n == 0) continue;
    if (rechunk_embedding && t == embedding) {
      const uint64_t rb = tt.row_bytes(), rows = tt.n_rows();
      const uint64_t per = std::max<uint64_t>(1, row_chunk_bytes / std::max<uint64_t>(1, rb));
      tt.n_chunks = 0;
      for (uint64_t row = 0; row < rows; row += per) {
        DcqChunk c = in.chunks[first];
        c.row_begin = row;
        c.row_count = std::min(per, rows - row);
        c.decoded_size = c.row_count * rb;
        ix.chunks.push_back(c);
        old_range.push_back({first, first + n});
        ++tt.n_chunks;
      }
      continue;
    }
    if (one_chunk && interleave && raw_tensors.count(t) && wants_row_groups(tt, t == embedding))
      want[t] = TransformId::row_groups;
    if (one_chunk && raw_tensors.count(t) && tt.n_bytes <= kDcqMaxChunkBytes && n > 1) {
      DcqChunk c = in.chunks[first];
      c.row_begin = 0;
      c.row_count = tt.n_rows();
      c.decoded_size = tt.n_bytes;
      ix.chunks.push_back(c);
      old_range.push_back({first, first + n});
      tt.n_chunks = 1;
    } else {
      for (uint32_t k = first; k < first + n; ++k) {
        ix.chunks.push_back(in.chunks[k]);
        old_range.push_back({k, k + 1});
      }
    }
  }
  // Version 3 exactly when some chunk ends up row_groups: re-encoded ones, and any an input
  // written this way keeps for tensors not re-encoded now.
  bool any_row_groups = false;
  for (size_t c = 0; c < ix.chunks.size(); ++c) {
    const uint32_t t = ix.chunks[c].tensor;
    any_row_groups |= raw_tensors.count(t) ? want[t] == TransformId::row_groups
                                           : ix.chunks[c].transform == TransformId::row_groups;
  }

  // Payloads in file order. First, right after the header, the chunks served as views (a chosen
  // tensor's one raw chunk), back to back in tensor order, i.e. in the order a forward pass reads
  // them: a token then maps the fewest 2 MiB blocks (none holds another tensor's bytes: 20 blocks
  // for 40 MiB of views instead of 32 when they sat among the pinned tensors' chunks) and one
  // madvise gives a whole run of released blocks back (docs/loader.md, "Repack"). Then the blobs
  // (-1: metadata, -2: extras) and the other chunks, at their first old chunk's position.
  auto is_view_chunk = [&](size_t c) {
    const uint32_t t = ix.chunks[c].tensor;
    return raw_tensors.count(t) && ix.tensors[t].n_chunks == 1;  // (a re-chunked embedding is not chosen)
  };
  std::vector<std::pair<uint64_t, int64_t>> order;  // (position key, what)
  const uint64_t after_views = uint64_t(ix.chunks.size());
  order.push_back({after_views + ix.metadata.offset, -1});
  order.push_back({after_views + ix.extras.offset, -2});
  for (size_t c = 0; c < ix.chunks.size(); ++c)
    order.push_back({is_view_chunk(c) ? uint64_t(c) : after_views + in.chunks[old_range[c].first].offset, int64_t(c)});
  std::sort(order.begin(), order.end());

  // Version 2 or 3 holds a folder's file table and every codec.
  DcqWriter w(output, force, any_row_groups ? kDcqRowGroupsVersion : kDcqFormatVersion);
  uint64_t raw_chunks = 0, row_group_chunks = 0, row_chunks = 0;
  std::vector<uint8_t> decoded, embedding_rows;  // embedding_rows: the whole decoded embedding, once
  // Old chunks [k0, k1) decoded back to back into `out` (every checksum checked).
  auto decode_old = [&](uint32_t k0, uint32_t k1, std::vector<uint8_t>& out, uint64_t bytes) {
    out.resize(bytes);
    uint64_t at = 0;
    for (uint32_t k = k0; k < k1; ++k) {
      r.decode_chunk(k, std::span<uint8_t>(out.data() + at, in.chunks[k].decoded_size));
      at += in.chunks[k].decoded_size;
    }
    DCQ_ASSERT(at == bytes);
  };
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
    const auto [o0, o1] = old_range[size_t(what)];
    if (rechunk_embedding && c.tensor == embedding) {  // rows cut from the decoded table, stored raw
      if (embedding_rows.empty()) decode_old(o0, o1, embedding_rows, in.tensors[c.tensor].n_bytes);
      const auto rows = std::span<const uint8_t>(embedding_rows).subspan(c.row_begin * ix.tensors[c.tensor].row_bytes(),
                                                                        c.decoded_size);
      // Stored raw: a token reads one row, and a raw chunk costs a pread, a copy and its checksums
      // (~5 us for 16 KiB) where a compressed one costs its decode (rANS: ~60 us, 2 % of a 110M
      // Q4_0 token), for ~5 % more file over the table (Q4_0/Q8_0 codes barely compress).
      // (encode_chunk leaves chunks under 64 KiB to the smallest encoding, whatever the speed floor.)
      EncodedChunk e;
      e.payload = raw_payload(rows);
      describe_chunk(c, e, rows, w.write_payload(e.payload));
      ++row_chunks;
      continue;
    }
    const TransformId t = want[c.tensor];
    if (!raw_tensors.count(c.tensor) ||
        (o1 - o0 == 1 && c.codec == CodecId::raw && c.n_streams == 1 && c.transform == t)) {
      c.offset = w.write_payload(r.stored(in.chunks[o0]));
      row_group_chunks += c.transform == TransformId::row_groups;
      continue;
    }
    decode_old(o0, o1, decoded, c.decoded_size);
    const DcqTensor& tt = ix.tensors[c.tensor];
    const auto payload = t == TransformId::row_groups ? raw_payload(transform_split(t, tt.type, decoded, tt.ne[0])[0])
                                                      : raw_payload(decoded);
    (void)parse_payload(tt.type, t, payload, c.decoded_size);  // self-check
    DCQ_ASSERT(t != TransformId::row_groups || c.row_begin == 0);
    row_group_chunks += t == TransformId::row_groups;
    c.transform = t;
    c.codec = CodecId::raw;
    c.n_streams = 1;
    c.offset = w.write_payload(payload);
    c.stored_size = payload.size();
    c.xxh3_stored = xxh3(payload);
    c.xxh3_decoded = xxh3(decoded);
    ++raw_chunks;
  }
  w.finish(ix);
  return {{"input", input.string()},
          {"output", output.string()},
          {"input_bytes", std::filesystem::file_size(input)},
          {"output_bytes", std::filesystem::file_size(output)},
          {"raw_tensors", raw_tensors.size()},
          {"raw_chunks", raw_chunks},
          {"row_group_chunks", row_group_chunks},
          {"row_chunks", row_chunks}};
}

}  // namespace dcq
