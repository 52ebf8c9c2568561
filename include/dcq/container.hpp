// The .dcq container (docs/format.md is normative; the constants and records here mirror it).
//
// DcqWriter streams a container: header, payloads in the order given, then index and footer.
// DcqReader opens one from the end and validates everything before trusting it: header and
// footer (magic, version, checksums), the index checksum, every count, offset, size, row range
// and layout segment, and that the gaps between payloads are zero — so a single changed byte
// anywhere is reported, as Error(integrity) (exit 4) for a checksum mismatch or Error(bad_input)
// (exit 3) for a wrong magic, an unknown version, a truncation or a forged structure.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dcq/codec.hpp"
#include "dcq/file.hpp"
#include "dcq/ggml_type.hpp"

namespace dcq {

class ByteReader;

// Format versions (changelog append-only, mirrored in docs/format.md "Versions"):
//   1  dcq 0.1.0  first version
//   2  dcq 0.2.0  codec 4 (huff), source_format 2 (a folder) and the file table
//   3  dcq 0.2.0  transform 4 (row_groups)
// Readers accept 1..kDcqNewestFormatVersion and refuse a newer one by name, so an older dcq says
// "newer version" instead of failing on an unknown codec or transform halfway through a file.
// A writer writes kDcqFormatVersion (2) unless some chunk uses row_groups, then
// kDcqRowGroupsVersion: every ordinary file stays readable by a dcq that predates row_groups.
inline constexpr uint32_t kDcqFormatVersion = 2;
inline constexpr uint32_t kDcqRowGroupsVersion = 3;
inline constexpr uint32_t kDcqNewestFormatVersion = 3;
inline constexpr uint32_t kDcqHeaderSize = 32;
inline constexpr uint32_t kDcqFooterSize = 64;
inline constexpr uint32_t kDcqPayloadAlignment = 16;
inline constexpr uint32_t kDcqNoDuplicate = 0xFFFFFFFFu;
inline constexpr uint64_t kDcqMaxChunkBytes = 1ull << 30;     // decoded size of one chunk
inline constexpr uint64_t kDcqMaxMetadataBytes = 64ull << 20;  // decoded JSON metadata
inline constexpr uint64_t kDcqMaxExtrasBytes = 1ull << 30;     // decoded non-tensor bytes
inline constexpr uint64_t kDcqMaxIndexBytes = 256ull << 20;    // decoded index
inline constexpr uint64_t kDcqMaxVerbatimFile = 64ull << 20;   // a non-safetensors file of a folder
inline constexpr size_t kDcqMaxFileName = 255;

enum class DcqSourceFormat : uint32_t { gguf = 0, safetensors = 1, folder = 2 };

struct DcqBlob {
  CodecSpec codec;
  uint64_t offset = 0, stored_size = 0, raw_size = 0, xxh3_stored = 0, xxh3_raw = 0;
};

struct DcqTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  std::vector<int64_t> ne;
  uint64_t n_bytes = 0;
  uint32_t first_chunk = 0, n_chunks = 0;
  uint32_t duplicate_of = kDcqNoDuplicate;
  uint64_t row_bytes() const;  // bytes of one row (ne[0] elements)
  uint64_t n_rows() const;     // product of ne[1..]; 0 when any dimension is 0
};

struct DcqChunk {
  uint32_t tensor = 0;
  TransformId transform = TransformId::none;
  CodecId codec = CodecId::raw;  // codec of the largest stream (summary)
  uint16_t n_streams = 1;
  uint64_t row_begin = 0, row_count = 0;
  uint64_t offset = 0, stored_size = 0, xxh3_stored = 0, xxh3_decoded = 0;
  uint64_t decoded_size = 0;  // derived: row_count x row bytes (not stored)
};

struct DcqSegment {
  enum Kind : uint8_t { extras = 0, tensor = 1 };
  Kind kind = extras;
  uint64_t a = 0, b = 0;  // extras: offset, length; tensor: index, 0
};

// One file of a folder container (version 2): a contiguous range of layout segments.
struct DcqFile {
  enum Kind : uint8_t { safetensors = 0, verbatim = 1 };
  std::string name;  // a plain file name (no '/', '\\', NUL, '.', '..')
  Kind kind = verbatim;
  uint64_t size = 0, xxh3 = 0;
  uint32_t first_segment = 0, n_segments = 0;
};

struct DcqIndex {
  DcqSourceFormat source_format = DcqSourceFormat::gguf;
  uint64_t source_size = 0, source_xxh3 = 0;
  DcqBlob metadata, extras;
  std::vector<DcqTensor> tensors;
  std::vector<DcqChunk> chunks;
  std::vector<DcqSegment> segments;
  std::vector<DcqFile> files;  // version 2, folder containers only; empty for a single file
  // Bytes a segment contributes to the rebuilt stream.
  uint64_t segment_bytes(const DcqSegment& s) const {
    return s.kind == DcqSegment::extras ? s.b : tensors[s.a].n_bytes;
  }
};

// True when `name` may be created inside a folder: not empty, at most kDcqMaxFileName bytes, no
// '/', '\\' or NUL, not "." or "..". Checked when writing and when reading a file table.
bool dcq_safe_file_name(std::string_view name);

// One stream of a chunk payload, as the payload header describes it.
struct DcqStreamInfo {
  CodecSpec codec;
  uint32_t stored_size = 0, raw_size = 0;
};

// Encoding one chunk: candidates are tried and the smallest payload whose modelled decode speed
// meets the floor is kept (raw when nothing helps). Deterministic: depends only on the bytes.
struct ChunkEncodeOptions {
  int zstd_level = 19;
  double min_decode_speed = 1.5e9;  // bytes/s of decoded output, one core (modelled, checksums and join included)
};
struct EncodedChunk {
  std::vector<uint8_t> payload;
  TransformId transform = TransformId::none;
  CodecId codec = CodecId::raw;
  uint16_t n_streams = 1;
  double modelled_decode_seconds = 0;
};
EncodedChunk encode_chunk(GgmlType type, std::span<const uint8_t> rows, const ChunkEncodeOptions& options);
// Fills the index entry of a chunk encoded as `e` from `rows` and written at `offset`: encoding
// fields, sizes and both checksums (tensor and row range are the caller's).
void describe_chunk(DcqChunk& c, const EncodedChunk& e, std::span<const uint8_t> rows, uint64_t offset);
// Parses a payload header (validated against the transform's stream sizes for `decoded_size`).
std::vector<DcqStreamInfo> parse_payload(GgmlType type, TransformId t, std::span<const uint8_t> payload,
                                         uint64_t decoded_size);
// Decodes a payload into `out` (out.size() = decoded size). Throws Error(integrity) on failure.
// `row_width`: the tensor's ne[0], needed by row_groups (see transform_join).
void decode_payload(GgmlType type, TransformId t, std::span<const uint8_t> payload, std::span<uint8_t> out,
                    int64_t row_width = 0);

class DcqWriter {
 public:
  // `version`: what the header says (written first, so the caller decides it up front):
  // kDcqRowGroupsVersion exactly when some chunk will use row_groups (finish() checks both ways),
  // else kDcqFormatVersion; only tests write an older one (a version-1 file has no file table and
  // no codec 4).
  DcqWriter(const std::filesystem::path& path, bool force, uint32_t version = kDcqFormatVersion);
  // Writes one payload at the next aligned offset and returns that offset.
  uint64_t write_payload(std::span<const uint8_t> bytes);
  // Writes index and footer and renames the file into place. The index's offsets must be ones
  // returned by write_payload.
  void finish(const DcqIndex& index);

 private:
  AtomicFile out_;
  uint32_t version_ = 1;
};

struct DcqReadOptions {
  bool verify_checksums = true;  // false only for fuzzing the parser behind the checksums
};

class DcqReader {
 public:
  static DcqReader open(const std::filesystem::path& path, const DcqReadOptions& options = {});
  // Over bytes the caller keeps alive (fuzzing, tests).
  static DcqReader parse(std::span<const uint8_t> bytes, const std::string& source, const DcqReadOptions& options = {});

  // A GGUF file seen as a container, so that the loader streams and budgets a GGUF as it does a
  // .dcq whose tensors are stored raw (`dcq run X.gguf --mem-budget B`, `--read-throttle R`): each
  // tensor is one raw chunk at its place in the file, except the token embedding of a model with
  // an output matrix, which is cut into row chunks of about `row_chunk_bytes` (a token reads its
  // row's chunk). "Bare" chunks: no payload header and no checksums (a GGUF carries none); the
  // GGUF header (up to the tensor data) is the extras blob. Throws Error(bad_input) as read_gguf.
  static DcqReader open_gguf(const std::filesystem::path& path, uint64_t row_chunk_bytes);
  // The same over GGUF bytes the caller keeps alive (fuzzing, tests).
  static DcqReader parse_gguf_view(std::span<const uint8_t> bytes, const std::string& source, uint64_t row_chunk_bytes);
  bool bare() const { return bare_; }
  // Bytes before a raw chunk's rows: the one-stream payload header (docs/format.md), none when bare.
  uint64_t raw_header_bytes() const { return bare_ ? 0 : 14; }

  const DcqIndex& index() const { return index_; }
  const std::string& source() const { return source_; }
  uint32_t format_version() const { return version_; }
  uint64_t file_size() const { return bytes_.size(); }

  std::span<const uint8_t> stored(const DcqChunk& c) const { return bytes_.subspan(c.offset, c.stored_size); }
  // Checks the stored checksum, decodes and checks the decoded checksum. `out` has the chunk's
  // decoded size. Throws Error(integrity) naming the file, tensor and chunk.
  void decode_chunk(size_t chunk, std::span<uint8_t> out) const;
  // The same from a copy of the chunk's stored bytes the caller read itself (the loader reads
  // small chunks with pread: mapping and dropping their pages would cost TLB shootdowns).
  void decode_chunk(size_t chunk, std::span<const uint8_t> payload, std::span<uint8_t> out) const;
  // Only the stored checksum (cheap; for inspect).
  void check_stored(size_t chunk) const;
  std::vector<uint8_t> read_blob(const DcqBlob& blob, const char* what) const;
  std::string metadata_json() const;
  std::string chunk_name(size_t chunk) const;  // "tensor 'x' chunk 3 (rows 0..63)"

 private:
  DcqReader() = default;
  void parse_all(const DcqReadOptions& options);
  void check_payload(size_t chunk, std::span<const uint8_t> payload) const;  // stored checksum
  void parse_files(ByteReader& r);
  void index_gguf(uint64_t row_chunk_bytes);  // open_gguf / parse_gguf_view over bytes_
  std::shared_ptr<MappedFile> file_;
  std::span<const uint8_t> bytes_;
  std::string source_;
  uint32_t version_ = 0;
  bool verify_ = true;
  bool bare_ = false;  // open_gguf
  DcqIndex index_;
};

}  // namespace dcq
