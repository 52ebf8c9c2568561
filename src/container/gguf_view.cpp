// DcqReader::open_gguf: a GGUF file seen as a container of bare raw chunks (container.hpp).
#include <algorithm>

#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "dcq/gguf.hpp"

namespace dcq {

DcqReader DcqReader::open_gguf(const std::filesystem::path& path, uint64_t row_chunk_bytes) {
  DcqReader r;
  r.file_ = MappedFile::open(path);
  r.bytes_ = r.file_->bytes();
  r.source_ = path.string();
  r.index_gguf(row_chunk_bytes);
  return r;
}

DcqReader DcqReader::parse_gguf_view(std::span<const uint8_t> bytes, const std::string& source,
                                     uint64_t row_chunk_bytes) {
  DcqReader r;
  r.bytes_ = bytes;
  r.source_ = source;
  r.index_gguf(row_chunk_bytes);
  return r;
}

void DcqReader::index_gguf(uint64_t row_chunk_bytes) {
  bare_ = true;
  verify_ = false;  // no checksums to check (the extras blob then decodes as the raw bytes it is)
  version_ = 0;
  // The GGUF reader checks everything (counts, types, shapes, every tensor's range in the file);
  // only the data spans of its tensors are used here, as offsets into the same mapping.
  const Model m = parse_gguf(bytes_, source_);
  DcqIndex& ix = index_;
  ix.source_format = DcqSourceFormat::gguf;
  ix.source_size = bytes_.size();
  uint64_t data_start = bytes_.size();
  for (const Tensor& t : m.tensors)
    if (t.n_bytes() > 0) data_start = std::min<uint64_t>(data_start, uint64_t(t.data.data() - bytes_.data()));
  ix.extras.codec = {CodecId::raw, 0};
  ix.extras.offset = 0;
  ix.extras.stored_size = ix.extras.raw_size = data_start;
  ix.segments.push_back({DcqSegment::extras, 0, data_start});
  const bool has_output = m.find_tensor("output.weight") != nullptr;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const Tensor& t = m.tensors[i];
    DcqTensor dt;
    dt.name = t.name;
    dt.type = t.type;
    dt.ne = t.ne;
    dt.n_bytes = t.n_bytes();
    dt.first_chunk = uint32_t(ix.chunks.size());
    const uint64_t rows = dt.n_rows(), rb = dt.row_bytes();
    // Whole rows per chunk: the embedding read by rows in small chunks, any other tensor in one
    // (a zero-copy view) unless it exceeds the largest chunk a container may hold.
    uint64_t per = std::max<uint64_t>(rows, 1);
    if (t.name == "token_embd.weight" && has_output && row_chunk_bytes > 0)
      per = std::max<uint64_t>(1, row_chunk_bytes / std::max<uint64_t>(1, rb));
    else if (dt.n_bytes > kDcqMaxChunkBytes)
      per = std::max<uint64_t>(1, kDcqMaxChunkBytes / std::max<uint64_t>(1, rb));
    const uint64_t base = dt.n_bytes > 0 ? uint64_t(t.data.data() - bytes_.data()) : 0;  // an empty span may point nowhere
    uint64_t r0 = 0;
    do {  // an empty tensor gets one empty chunk, as the writer gives it
      DcqChunk c;
      c.tensor = uint32_t(i);
      c.transform = TransformId::none;
      c.codec = CodecId::raw;
      c.n_streams = 1;
      c.row_begin = r0;
      c.row_count = std::min(per, rows - r0);
      c.offset = base + r0 * rb;
      c.decoded_size = c.stored_size = c.row_count * rb;
      ix.chunks.push_back(c);
      r0 += c.row_count;
    } while (r0 < rows);
    dt.n_chunks = uint32_t(ix.chunks.size()) - dt.first_chunk;
    ix.tensors.push_back(std::move(dt));
    ix.segments.push_back({DcqSegment::tensor, i, 0});
  }
}

}  // namespace dcq
