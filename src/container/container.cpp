// .dcq writer and reader (docs/format.md). The reader checks, in this order: header magic,
// header checksum, version; footer magic, footer checksum, sizes; index checksum; then parses
// the index validating every field; then the payload layout (bounds, alignment, overlap, zero
// gaps). Nothing read from the file is used before it has been checked.
#include <algorithm>
#include <array>
#include <cstring>
#include <unordered_set>

#include <sys/mman.h>
#include <unistd.h>

#include "dcq/byte_reader.hpp"
#include "dcq/container.hpp"
#include "dcq/error.hpp"

namespace dcq {
namespace {

constexpr std::array<uint8_t, 4> kMagic{'D', 'C', 'Q', '1'};
constexpr std::array<uint8_t, 8> kFooterMagic{'D', 'C', 'Q', '1', 'E', 'N', 'D', 0};

template <class T>
void put(std::vector<uint8_t>& v, T x) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &x, sizeof(T));
  v.insert(v.end(), b, b + sizeof(T));
}
template <class T>
T get(const uint8_t* p) {
  T x;
  std::memcpy(&x, p, sizeof(T));
  return x;
}

void put_blob(std::vector<uint8_t>& v, const DcqBlob& b) {
  put<uint8_t>(v, static_cast<uint8_t>(b.codec.id));
  put<uint8_t>(v, 0);
  put<uint16_t>(v, b.codec.param);
  put<uint32_t>(v, 0);
  put(v, b.offset);
  put(v, b.stored_size);
  put(v, b.raw_size);
  put(v, b.xxh3_stored);
  put(v, b.xxh3_raw);
}

std::vector<uint8_t> serialize_index(const DcqIndex& ix, uint32_t version) {
  std::vector<uint8_t> v;
  put<uint32_t>(v, static_cast<uint32_t>(ix.source_format));
  put<uint32_t>(v, 0);
  put(v, ix.source_size);
  put(v, ix.source_xxh3);
  put_blob(v, ix.metadata);
  put_blob(v, ix.extras);
  put<uint32_t>(v, static_cast<uint32_t>(ix.tensors.size()));
  for (const auto& t : ix.tensors) {
    DCQ_ASSERT(!t.name.empty() && t.name.size() <= 0xFFFF);
    put<uint16_t>(v, static_cast<uint16_t>(t.name.size()));
    v.insert(v.end(), t.name.begin(), t.name.end());
    put<uint32_t>(v, static_cast<uint32_t>(t.type));
    put<uint32_t>(v, static_cast<uint32_t>(t.ne.size()));
    for (auto d : t.ne) put<int64_t>(v, d);
    put(v, t.n_bytes);
    put(v, t.first_chunk);
    put(v, t.n_chunks);
    put(v, t.duplicate_of);
  }
  put<uint32_t>(v, static_cast<uint32_t>(ix.chunks.size()));
  for (const auto& c : ix.chunks) {
    put(v, c.tensor);
    put<uint8_t>(v, static_cast<uint8_t>(c.transform));
    put<uint8_t>(v, static_cast<uint8_t>(c.codec));
    put<uint16_t>(v, c.n_streams);
    put(v, c.row_begin);
    put(v, c.row_count);
    put(v, c.offset);
    put(v, c.stored_size);
    put(v, c.xxh3_stored);
    put(v, c.xxh3_decoded);
    put<uint64_t>(v, 0);
  }
  put<uint32_t>(v, static_cast<uint32_t>(ix.segments.size()));
  for (const auto& s : ix.segments) {
    put<uint8_t>(v, s.kind);
    put(v, s.a);
    put(v, s.b);
  }
  if (version >= 2) {
    put<uint32_t>(v, static_cast<uint32_t>(ix.files.size()));
    for (const auto& f : ix.files) {
      DCQ_ASSERT(dcq_safe_file_name(f.name));
      put<uint16_t>(v, static_cast<uint16_t>(f.name.size()));
      v.insert(v.end(), f.name.begin(), f.name.end());
      put<uint8_t>(v, f.kind);
      put<uint8_t>(v, 0);
      put<uint16_t>(v, 0);
      put(v, f.size);
      put(v, f.xxh3);
      put(v, f.first_segment);
      put(v, f.n_segments);
    }
  } else {
    DCQ_ASSERT(ix.files.empty() && ix.source_format != DcqSourceFormat::folder);
  }
  return v;
}

}  // namespace

bool dcq_safe_file_name(std::string_view name) {
  if (name.empty() || name.size() > kDcqMaxFileName || name == "." || name == "..") return false;
  return name.find_first_of(std::string_view("/\\\0", 3)) == std::string_view::npos;
}

uint64_t DcqTensor::row_bytes() const {
  const auto r = dcq::row_bytes(type, ne.empty() ? 1 : ne[0]);
  return r ? *r : 0;
}

uint64_t DcqTensor::n_rows() const {
  uint64_t n = 1;
  for (size_t i = 1; i < ne.size(); ++i) n *= static_cast<uint64_t>(ne[i]);
  if (!ne.empty() && ne[0] == 0) return 0;
  return n;
}

// ---- writer ----

DcqWriter::DcqWriter(const std::filesystem::path& path, bool force, uint32_t version)
    : out_(path, force), version_(version) {
  DCQ_ASSERT(version >= 1 && version <= kDcqNewestFormatVersion);
  std::vector<uint8_t> h;
  h.insert(h.end(), kMagic.begin(), kMagic.end());
  put<uint32_t>(h, version_);
  put<uint32_t>(h, kDcqHeaderSize);
  put<uint32_t>(h, kDcqPayloadAlignment);
  put<uint64_t>(h, 0);
  put<uint64_t>(h, xxh3(h));
  DCQ_ASSERT(h.size() == kDcqHeaderSize);
  out_.write(h);
}

uint64_t DcqWriter::write_payload(std::span<const uint8_t> bytes) {
  out_.write_zeros(align_up(out_.offset(), kDcqPayloadAlignment) - out_.offset());
  const uint64_t at = out_.offset();
  out_.write(bytes);
  return at;
}

void DcqWriter::finish(const DcqIndex& index) {
  out_.write_zeros(align_up(out_.offset(), 8) - out_.offset());
  DCQ_ASSERT(version_ >= 2 || index.files.empty());
  // Version 3 exactly when a chunk uses row_groups: older readers keep reading every other file.
  const bool row_groups = std::any_of(index.chunks.begin(), index.chunks.end(),
                                      [](const DcqChunk& c) { return c.transform == TransformId::row_groups; });
  DCQ_ASSERT(row_groups == (version_ >= kDcqRowGroupsVersion));
  const auto raw = serialize_index(index, version_);
  DCQ_ASSERT(raw.size() <= kDcqMaxIndexBytes);
  // The index is mostly names and small integers: zstd shrinks it 2-3x, which matters for
  // small models where it is a few percent of the file.
  CodecSpec codec{CodecId::zstd, 19};
  const auto ix = codec_encode(codec, raw);
  const uint64_t index_offset = out_.offset();
  out_.write(ix);
  std::vector<uint8_t> f;
  put<uint64_t>(f, index_offset);
  put<uint64_t>(f, ix.size());
  put<uint64_t>(f, xxh3(ix));
  put<uint64_t>(f, out_.offset() + kDcqFooterSize);
  put<uint32_t>(f, version_);
  put<uint8_t>(f, static_cast<uint8_t>(codec.id));
  put<uint8_t>(f, 0);
  put<uint16_t>(f, codec.param);
  put<uint64_t>(f, raw.size());
  put<uint64_t>(f, xxh3(f));
  f.insert(f.end(), kFooterMagic.begin(), kFooterMagic.end());
  DCQ_ASSERT(f.size() == kDcqFooterSize);
  out_.write(f);
  out_.commit();
}

// ---- reader ----

DcqReader DcqReader::open(const std::filesystem::path& path, const DcqReadOptions& options) {
  DcqReader r;
  r.file_ = MappedFile::open(path);
  r.bytes_ = r.file_->bytes();
  r.source_ = path.string();
  r.parse_all(options);
  return r;
}

DcqReader DcqReader::parse(std::span<const uint8_t> bytes, const std::string& source, const DcqReadOptions& options) {
  DcqReader r;
  r.bytes_ = bytes;
  r.source_ = source;
  r.parse_all(options);
  return r;
}

void DcqReader::parse_all(const DcqReadOptions& options) {
  verify_ = options.verify_checksums;
  const auto& src = source_;
  auto bad = [&](const std::string& what) { fail_input(src + ": " + what); };
  auto integrity = [&](const std::string& what) { fail(ExitCode::integrity, src + ": " + what); };
  const uint64_t size = bytes_.size();
  if (size < 4 || std::memcmp(bytes_.data(), kMagic.data(), 4) != 0) bad("not a .dcq file (bad magic)");
  if (size < kDcqHeaderSize + kDcqFooterSize)
    bad("truncated: " + std::to_string(size) + " bytes is shorter than a .dcq header and footer");

  // Header.
  const uint8_t* h = bytes_.data();
  if (verify_ && get<uint64_t>(h + 24) != xxh3(bytes_.subspan(0, 24)))
    integrity("header checksum mismatch (the header is corrupt)");
  version_ = get<uint32_t>(h + 4);
  if (version_ == 0) bad("format version 0 is not a valid .dcq version");
  if (version_ > kDcqNewestFormatVersion)
    bad("format version " + std::to_string(version_) + " is newer than this dcq supports (" +
        std::to_string(kDcqNewestFormatVersion) + "); upgrade dcq");
  const uint32_t align = get<uint32_t>(h + 12);
  if (get<uint32_t>(h + 8) != kDcqHeaderSize) bad("header size is not 32");
  if (align < 8 || align > 4096 || (align & (align - 1)) != 0) bad("bad payload alignment " + std::to_string(align));
  if (get<uint64_t>(h + 16) != 0) bad("reserved header field is not zero");

  // Footer.
  const uint8_t* f = bytes_.data() + size - kDcqFooterSize;
  if (std::memcmp(f + 56, kFooterMagic.data(), 8) != 0)
    bad("no .dcq footer at the end (the file is truncated or was not completely written)");
  if (verify_ && get<uint64_t>(f + 48) != xxh3({f, 48})) integrity("footer checksum mismatch (the footer is corrupt)");
  const uint64_t index_offset = get<uint64_t>(f), index_size = get<uint64_t>(f + 8);
  if (get<uint64_t>(f + 24) != size)
    bad("file is " + std::to_string(size) + " bytes but its footer says " + std::to_string(get<uint64_t>(f + 24)) +
        " (truncated or extended)");
  if (get<uint32_t>(f + 32) != version_) bad("footer format version differs from the header's");
  const CodecSpec ix_codec{static_cast<CodecId>(f[36]), get<uint16_t>(f + 38)};
  const uint64_t index_raw_size = get<uint64_t>(f + 40);
  if (f[37] != 0) bad("reserved footer field is not zero");
  if ((ix_codec.id != CodecId::raw && ix_codec.id != CodecId::zstd) || !codec_valid(f[36], ix_codec.param))
    bad("footer names an unknown index codec " + std::to_string(f[36]));
  if (index_raw_size > kDcqMaxIndexBytes) bad("index is implausibly large (" + std::to_string(index_raw_size) + " bytes)");
  const uint64_t index_end = size - kDcqFooterSize;
  if (index_offset < kDcqHeaderSize || index_offset % 8 != 0 || index_offset > index_end ||
      index_end - index_offset != index_size)
    bad("footer index offset/size do not fit the file");
  const auto ix_stored = bytes_.subspan(index_offset, index_size);
  if (verify_ && get<uint64_t>(f + 16) != xxh3(ix_stored)) integrity("index checksum mismatch (the index is corrupt)");
  std::vector<uint8_t> ix_bytes(index_raw_size);
  try {
    codec_decode(ix_codec, ix_stored, ix_bytes);
  } catch (const Error& e) {
    bad(std::string("index does not decode: ") + e.what());
  }

  // Index.
  ByteReader r(ix_bytes, src + " (index)");
  auto& ix = index_;
  const auto sf = r.read<uint32_t>("source format");
  if (sf > 2 || (sf == 2 && version_ < 2)) bad("unknown source format " + std::to_string(sf));
  ix.source_format = static_cast<DcqSourceFormat>(sf);
  if (r.read<uint32_t>("reserved") != 0) bad("reserved index field is not zero");
  ix.source_size = r.read<uint64_t>("source size");
  ix.source_xxh3 = r.read<uint64_t>("source checksum");
  auto read_blob_rec = [&](DcqBlob& b, const char* what) {
    const auto id = r.read<uint8_t>(what);
    const auto res = r.read<uint8_t>(what);
    const auto param = r.read<uint16_t>(what);
    const auto res2 = r.read<uint32_t>(what);
    if (!codec_valid(id, param) || res != 0 || res2 != 0) bad(std::string(what) + " blob names an unknown codec");
    b.codec = {static_cast<CodecId>(id), param};
    b.offset = r.read<uint64_t>(what);
    b.stored_size = r.read<uint64_t>(what);
    b.raw_size = r.read<uint64_t>(what);
    b.xxh3_stored = r.read<uint64_t>(what);
    b.xxh3_raw = r.read<uint64_t>(what);
  };
  read_blob_rec(ix.metadata, "metadata");
  read_blob_rec(ix.extras, "extras");
  if (ix.metadata.raw_size > kDcqMaxMetadataBytes) bad("metadata blob is implausibly large");
  if (ix.extras.raw_size > kDcqMaxExtrasBytes || ix.extras.raw_size > ix.source_size)
    bad("extras blob is larger than the source");

  const auto n_tensors = r.read<uint32_t>("tensor count");
  if (n_tensors > r.remaining() / 38) bad("tensor count " + std::to_string(n_tensors) + " exceeds the index");
  ix.tensors.resize(n_tensors);
  uint64_t chunks_so_far = 0, tensor_bytes = 0;
  std::unordered_set<std::string> names;
  for (uint32_t i = 0; i < n_tensors; ++i) {
    auto& t = ix.tensors[i];
    const auto len = r.read<uint16_t>("tensor name length");
    if (len == 0) bad("tensor " + std::to_string(i) + " has an empty name");
    const auto nb = r.read_bytes(len, "tensor name");
    t.name.assign(reinterpret_cast<const char*>(nb.data()), nb.size());
    const auto raw_type = r.read<uint32_t>("tensor type");
    const auto tt = type_traits(raw_type);
    if (!tt) bad("tensor '" + t.name + "' has unknown type " + std::to_string(raw_type));
    t.type = static_cast<GgmlType>(raw_type);
    const auto nd = r.read<uint32_t>("dimension count");
    if (nd < 1 || nd > 4) bad("tensor '" + t.name + "' has " + std::to_string(nd) + " dimensions");
    uint64_t n_el = 1;
    for (uint32_t d = 0; d < nd; ++d) {
      const auto ne = r.read<int64_t>("shape");
      if (ne < 0 || mul_overflows(n_el, uint64_t(ne), &n_el) || n_el > (1ull << 60))
        bad("tensor '" + t.name + "' has a bad shape");
      t.ne.push_back(ne);
    }
    if (t.ne[0] % tt->block_size != 0) bad("tensor '" + t.name + "' row width is not whole blocks");
    const uint64_t expect = n_el / uint64_t(tt->block_size) * tt->type_size;
    t.n_bytes = r.read<uint64_t>("tensor bytes");
    if (t.n_bytes != expect) bad("tensor '" + t.name + "' byte count does not match its type and shape");
    t.first_chunk = r.read<uint32_t>("first chunk");
    t.n_chunks = r.read<uint32_t>("chunk count");
    t.duplicate_of = r.read<uint32_t>("duplicate of");
    if (t.first_chunk != chunks_so_far) bad("tensor '" + t.name + "' chunks are not in tensor order");
    chunks_so_far += t.n_chunks;
    if (t.duplicate_of != kDcqNoDuplicate) {
      if (t.duplicate_of >= i || ix.tensors[t.duplicate_of].duplicate_of != kDcqNoDuplicate ||
          ix.tensors[t.duplicate_of].n_bytes != t.n_bytes || t.n_chunks != 0)
        bad("tensor '" + t.name + "' is a duplicate of an invalid tensor");
    }
    if (add_overflows(tensor_bytes, t.n_bytes, &tensor_bytes) || tensor_bytes > ix.source_size)
      bad("tensor bytes exceed the source size");
    if (!names.insert(t.name).second) bad("duplicate tensor name '" + t.name + "'");
  }
  const auto n_chunks = r.read<uint32_t>("chunk count");
  if (n_chunks != chunks_so_far) bad("chunk count differs from the sum over tensors");
  if (n_chunks > r.remaining() / 64) bad("chunk count " + std::to_string(n_chunks) + " exceeds the index");
  ix.chunks.resize(n_chunks);
  for (uint32_t i = 0; i < n_chunks; ++i) {
    auto& c = ix.chunks[i];
    c.tensor = r.read<uint32_t>("chunk tensor");
    const auto tr = r.read<uint8_t>("chunk transform");
    const auto co = r.read<uint8_t>("chunk codec");
    c.n_streams = r.read<uint16_t>("chunk stream count");
    c.row_begin = r.read<uint64_t>("chunk row");
    c.row_count = r.read<uint64_t>("chunk rows");
    c.offset = r.read<uint64_t>("chunk offset");
    c.stored_size = r.read<uint64_t>("chunk size");
    c.xxh3_stored = r.read<uint64_t>("chunk checksum");
    c.xxh3_decoded = r.read<uint64_t>("chunk checksum");
    if (r.read<uint64_t>("chunk reserved") != 0) bad("chunk " + std::to_string(i) + " reserved field is not zero");
    if (c.tensor >= n_tensors) bad("chunk " + std::to_string(i) + " names tensor " + std::to_string(c.tensor));
    const auto& t = ix.tensors[c.tensor];
    if (i < t.first_chunk || i >= t.first_chunk + uint64_t(t.n_chunks)) bad("chunk " + std::to_string(i) + " is outside its tensor's chunk range");
    if (tr >= kTransformIdCount || !transform_applies(static_cast<TransformId>(tr), t.type))
      bad("chunk " + std::to_string(i) + " has an invalid transform " + std::to_string(tr));
    if (co >= kCodecCount) bad("chunk " + std::to_string(i) + " has an unknown codec " + std::to_string(co));
    c.transform = static_cast<TransformId>(tr);
    c.codec = static_cast<CodecId>(co);
    const uint64_t expect_begin = i == t.first_chunk ? 0 : ix.chunks[i - 1].row_begin + ix.chunks[i - 1].row_count;
    if (c.row_begin != expect_begin || c.row_count == 0 || c.row_count > t.n_rows() - c.row_begin)
      bad("chunk " + std::to_string(i) + " of tensor '" + t.name + "' has a bad row range");
    if (i + 1 == t.first_chunk + uint64_t(t.n_chunks) && c.row_begin + c.row_count != t.n_rows())
      bad("chunks of tensor '" + t.name + "' do not cover its rows");
    if (c.transform == TransformId::row_groups) {
      // Groups of 16 rows counted from the chunk's first row must be the tensor's own groups, so
      // that the chunks' streams, concatenated, are the whole tensor's interleaved layout (the
      // plain remainder rows then only ever end the tensor's last chunk).
      const std::string what = "chunk " + std::to_string(i) + " of tensor '" + t.name + "' ";
      if (version_ < kDcqRowGroupsVersion)
        bad(what + "uses transform 4 (row_groups), which needs format version 3, not " + std::to_string(version_));
      if (c.row_begin % kRowGroupRows != 0)
        bad(what + "uses row_groups but starts at row " + std::to_string(c.row_begin) + ", not a multiple of 16");
      if (c.n_streams != 1) bad(what + "uses row_groups with " + std::to_string(c.n_streams) + " streams, not 1");
    }
    c.decoded_size = c.row_count * t.row_bytes();  // <= n_bytes, no overflow
    if (c.decoded_size > kDcqMaxChunkBytes) bad("chunk " + std::to_string(i) + " is larger than 1 GiB decoded");
  }
  for (const auto& t : ix.tensors)
    if (t.n_chunks == 0 && t.duplicate_of == kDcqNoDuplicate && t.n_bytes != 0)
      bad("tensor '" + t.name + "' has no chunks");
  const auto n_seg = r.read<uint32_t>("segment count");
  if (n_seg > r.remaining() / 17) bad("segment count exceeds the index");
  ix.segments.resize(n_seg);
  std::vector<uint8_t> seen(n_tensors, 0);
  uint64_t extras_used = 0, total = 0;
  for (uint32_t i = 0; i < n_seg; ++i) {
    auto& s = ix.segments[i];
    const auto kind = r.read<uint8_t>("segment kind");
    s.a = r.read<uint64_t>("segment");
    s.b = r.read<uint64_t>("segment");
    if (kind == DcqSegment::extras) {
      s.kind = DcqSegment::extras;
      if (s.a != extras_used || s.b == 0 || s.b > ix.extras.raw_size - extras_used) bad("layout segment " + std::to_string(i) + " misuses the extras blob");
      extras_used += s.b;
      total += s.b;
    } else if (kind == DcqSegment::tensor) {
      s.kind = DcqSegment::tensor;
      if (s.a >= n_tensors || s.b != 0 || seen[s.a]) bad("layout segment " + std::to_string(i) + " names a bad tensor");
      seen[s.a] = 1;
      total += ix.tensors[s.a].n_bytes;  // sum bounded by source_size (checked above)
    } else {
      bad("layout segment " + std::to_string(i) + " has unknown kind " + std::to_string(kind));
    }
  }
  if (version_ >= 2) parse_files(r);  // versions 2 and 3
  if (r.remaining() != 0) bad("index has " + std::to_string(r.remaining()) + " unexpected trailing bytes");
  if (extras_used != ix.extras.raw_size) bad("layout does not use the whole extras blob");
  if (std::find(seen.begin(), seen.end(), 0) != seen.end()) bad("layout leaves out a tensor");
  if (total != ix.source_size) bad("layout does not add up to the source size");

  // Payload regions: inside [header, index), aligned, disjoint, zero in between.
  struct Region { uint64_t at, size; };
  std::vector<Region> regions;
  auto add_region = [&](uint64_t at, uint64_t sz, const std::string& what) {
    uint64_t end;
    if (at < kDcqHeaderSize || at % align != 0 || add_overflows(at, sz, &end) || end > index_offset)
      bad(what + " lies outside the payload region");
    regions.push_back({at, sz});
  };
  add_region(ix.metadata.offset, ix.metadata.stored_size, "metadata blob");
  add_region(ix.extras.offset, ix.extras.stored_size, "extras blob");
  for (uint32_t i = 0; i < n_chunks; ++i) add_region(ix.chunks[i].offset, ix.chunks[i].stored_size, chunk_name(i));
  std::sort(regions.begin(), regions.end(), [](const Region& a, const Region& b) { return a.at < b.at; });
  uint64_t pos = kDcqHeaderSize;
  auto check_gap = [&](uint64_t from, uint64_t to) {
    for (uint64_t k = from; k < to; ++k)
      if (bytes_[k] != 0) integrity("non-zero byte at offset " + std::to_string(k) + " in padding (corrupt)");
  };
  // Reading the gaps faults in the page-cache folio around each (a whole folio, up to 2 MiB, on
  // current kernels): through our own file mapping, give the pages back every few MiB, so that
  // opening a file does not map most of it at once (measured: 112 MiB of a 138 MiB file).
  uint64_t dropped = 0;
  auto drop_behind = [&](uint64_t upto) {
    constexpr uint64_t kStep = 4u << 20;
    if (!file_ || upto < dropped + kStep) return;
    const auto page = uint64_t(::sysconf(_SC_PAGESIZE));
    const uint64_t lo = (uintptr_t(bytes_.data()) + dropped) / page * page;
    const uint64_t hi = (uintptr_t(bytes_.data()) + upto) / page * page;
    if (hi > lo) (void)::madvise(reinterpret_cast<void*>(lo), size_t(hi - lo), MADV_DONTNEED);
    dropped = upto;
  };
  for (const auto& g : regions) {
    if (g.at < pos) bad("payloads overlap at offset " + std::to_string(g.at));
    check_gap(pos, g.at);
    drop_behind(g.at);
    pos = g.at + g.size;
  }
  check_gap(pos, index_offset);
}

void DcqReader::parse_files(ByteReader& r) {
  auto bad = [&](const std::string& what) { fail_input(source_ + ": " + what); };
  auto& ix = index_;
  const auto n = r.read<uint32_t>("file count");
  if (n > r.remaining() / 29) bad("file count " + std::to_string(n) + " exceeds the index");
  if ((ix.source_format == DcqSourceFormat::folder) != (n > 0))
    bad(ix.source_format == DcqSourceFormat::folder ? "folder container has no files" : "single-file container has a file table");
  ix.files.resize(n);
  std::unordered_set<std::string> names;
  uint64_t next_segment = 0;
  for (uint32_t i = 0; i < n; ++i) {
    auto& f = ix.files[i];
    const auto len = r.read<uint16_t>("file name length");
    const auto nb = r.read_bytes(len, "file name");
    f.name.assign(reinterpret_cast<const char*>(nb.data()), nb.size());
    // A name must stay inside the output folder: a forged "../x" or "/etc/x" is refused here,
    // before anything is created.
    if (!dcq_safe_file_name(f.name)) bad("file " + std::to_string(i) + " has an unsafe name (a path, '.', '..' or NUL)");
    if (!names.insert(f.name).second) bad("duplicate file name '" + f.name + "'");
    const auto kind = r.read<uint8_t>("file kind");
    if (kind > DcqFile::verbatim) bad("file '" + f.name + "' has unknown kind " + std::to_string(kind));
    f.kind = static_cast<DcqFile::Kind>(kind);
    if (r.read<uint8_t>("reserved") != 0 || r.read<uint16_t>("reserved") != 0) bad("file '" + f.name + "' reserved field is not zero");
    f.size = r.read<uint64_t>("file size");
    f.xxh3 = r.read<uint64_t>("file checksum");
    f.first_segment = r.read<uint32_t>("file first segment");
    f.n_segments = r.read<uint32_t>("file segment count");
    if (f.first_segment != next_segment || f.n_segments > ix.segments.size() - next_segment)
      bad("file '" + f.name + "' segments are not the next ones of the layout");
    next_segment += f.n_segments;
    uint64_t bytes = 0;  // bounded: all segments together add up to source_size (checked by the caller)
    for (uint32_t k = 0; k < f.n_segments; ++k) {
      const auto& s = ix.segments[f.first_segment + k];
      if (f.kind == DcqFile::verbatim && s.kind != DcqSegment::extras) bad("verbatim file '" + f.name + "' holds a tensor");
      bytes += ix.segment_bytes(s);
    }
    if (bytes != f.size) bad("file '" + f.name + "' segments do not add up to its size");
    if (f.kind == DcqFile::verbatim && f.size > kDcqMaxVerbatimFile) bad("verbatim file '" + f.name + "' is larger than 64 MiB");
  }
  if (next_segment != ix.segments.size() && n > 0) bad("file table does not cover the layout");
}

std::string DcqReader::chunk_name(size_t i) const {
  const auto& c = index_.chunks[i];
  const std::string t = c.tensor < index_.tensors.size() ? index_.tensors[c.tensor].name : "?";
  return "tensor '" + t + "' chunk " + std::to_string(i) + " (rows " + std::to_string(c.row_begin) + ".." +
         std::to_string(c.row_begin + c.row_count) + ")";
}

void DcqReader::check_stored(size_t i) const { check_payload(i, stored(index_.chunks[i])); }

void DcqReader::check_payload(size_t i, std::span<const uint8_t> payload) const {
  if (verify_ && xxh3(payload) != index_.chunks[i].xxh3_stored)
    fail(ExitCode::integrity, source_ + ": " + chunk_name(i) + ": stored bytes checksum mismatch (corrupt)");
}

void DcqReader::decode_chunk(size_t i, std::span<uint8_t> out) const {
  decode_chunk(i, stored(index_.chunks[i]), out);
}

void DcqReader::decode_chunk(size_t i, std::span<const uint8_t> payload, std::span<uint8_t> out) const {
  const auto& c = index_.chunks[i];
  DCQ_ASSERT(out.size() == c.decoded_size && payload.size() == c.stored_size);
  if (bare_) {  // the rows as they are in the GGUF
    std::memcpy(out.data(), payload.data(), out.size());
    return;
  }
  check_payload(i, payload);
  const auto& t = index_.tensors[c.tensor];
  if (verify_) {
    // The stored bytes matched their checksum, so a payload table that contradicts the index
    // (stream count or sizes) was written that way: a forged file, bad input (docs/format.md,
    // "Conventions"). Codec streams that fail to decode stay integrity errors below.
    try {
      (void)parse_payload(t.type, c.transform, payload, c.decoded_size);
    } catch (const Error& e) {
      if (e.code() == ExitCode::internal) throw;
      fail_input(source_ + ": " + chunk_name(i) + ": " + e.what());
    }
  }
  try {
    decode_payload(t.type, c.transform, payload, out, t.ne[0]);
  } catch (const Error& e) {
    fail(e.code() == ExitCode::internal ? ExitCode::internal : ExitCode::integrity,
         source_ + ": " + chunk_name(i) + ": " + e.what());
  }
  if (verify_ && xxh3(out) != c.xxh3_decoded)
    fail(ExitCode::integrity, source_ + ": " + chunk_name(i) + ": decoded bytes checksum mismatch (corrupt)");
}

std::vector<uint8_t> DcqReader::read_blob(const DcqBlob& b, const char* what) const {
  const auto s = bytes_.subspan(b.offset, b.stored_size);
  if (verify_ && xxh3(s) != b.xxh3_stored)
    fail(ExitCode::integrity, source_ + ": " + what + " blob stored bytes checksum mismatch (corrupt)");
  std::vector<uint8_t> out(b.raw_size);
  try {
    codec_decode(b.codec, s, out);
  } catch (const Error& e) {
    fail(ExitCode::integrity, source_ + ": " + what + " blob: " + e.what());
  }
  if (verify_ && xxh3(out) != b.xxh3_raw)
    fail(ExitCode::integrity, source_ + ": " + what + " blob decoded checksum mismatch (corrupt)");
  return out;
}

std::string DcqReader::metadata_json() const {
  const auto b = read_blob(index_.metadata, "metadata");
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

}  // namespace dcq
