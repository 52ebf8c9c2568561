// Lossless codecs and block-structure transforms (docs/format.md, "Codecs" and "Transforms").
//
// A codec maps one byte stream to stored bytes and back. A transform splits a run of whole rows
// of one tensor into several streams whose statistics are simpler (f16 scales apart from codes,
// 4-bit codes one symbol per byte, float byte planes) and joins them back. Ids are frozen: they
// are written to disk.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "dcq/ggml_type.hpp"

namespace dcq {

enum class CodecId : uint8_t { raw = 0, zstd = 1, lz4 = 2, rans = 3, huff = 4 };
inline constexpr uint8_t kCodecCount = 5;

// huff codec parameter: how many low bits of every byte are stored raw (0 or 4), or kHuffNibbles:
// every byte is two 4-bit symbols (packed codes of Q4_0 & co.), decoded straight into the bytes.
inline constexpr uint16_t kHuffLow4 = 4;
inline constexpr uint16_t kHuffNibbles = 0x100;

// htscodecs order-byte flags, as stored in the rans codec parameter.
inline constexpr uint16_t kRansOrder1 = 0x01, kRansX32 = 0x04, kRansStripe = 0x08,
                          kRansRle = 0x40, kRansPack = 0x80;

struct CodecSpec {
  CodecId id = CodecId::raw;
  uint16_t param = 0;  // zstd: level; rans: order byte; huff: raw low bits or kHuffNibbles; others: 0
  bool operator==(const CodecSpec&) const = default;
};

std::string codec_name(CodecSpec spec);  // "raw", "zstd-19", "lz4", "rans-o1", "rans-o0-x32-pack", "huff", "huff-lo4", "huff-nib"
// True when the id is known and the parameter valid for it (checked on every value from disk).
bool codec_valid(uint8_t id, uint16_t param);

// Encodes `in`; the result may be larger than `in` (the caller compares sizes). For rans, `spec`
// is updated to the order byte htscodecs actually wrote (it drops flags that do not apply).
std::vector<uint8_t> codec_encode(CodecSpec& spec, std::span<const uint8_t> in);
// Decodes exactly out.size() bytes into `out`. Throws Error(integrity) when the stored bytes do
// not decode to exactly that many bytes (corruption or a forged file), never reads past `in`.
void codec_decode(CodecSpec spec, std::span<const uint8_t> in, std::span<uint8_t> out);

// Modelled decode speed of a codec on this kind of data, in bytes of output per second on one
// core of the reference machine (docs/benchmarks.md). A fixed model rather than a measurement so
// the choice of codec, and so the file, never depends on timing or on the thread count.
double codec_decode_speed(CodecSpec spec);
// The same for one encoded stream: for huff the speed depends on how many symbols one table
// lookup yields, i.e. on the coded bits per symbol, which the stored size gives (still a fixed
// function of the file's bytes, never of timing). Other codecs: as above.
double codec_decode_speed(CodecSpec spec, size_t stored_bytes, size_t decoded_bytes);
// Modelled seconds to decode one stream: the codec's fixed per-stream set-up (frequency tables,
// Huffman lookup tables, frame header), which dominates the small scale streams of a chunk, plus
// decoded_bytes at the speed above. This is what the chunk chooser adds up.
double codec_decode_seconds(CodecSpec spec, size_t stored_bytes, size_t decoded_bytes);
// Modelled seconds of the two XXH3-64 checksums a reader computes per chunk (of the stored
// payload, which comes from the page cache, and of the decoded bytes, still in cache).
double checksum_seconds(size_t stored_bytes, size_t decoded_bytes);

// Transform ids 0..kTransformCount-1 compress: compress (encode_chunk) and analyze try them.
// row_groups (4) is not a compression transform but a *layout*: its one stream is the rows in the
// interleaved order the Q8_0 / Q4_0 kernels read (kernels::interleave_rows), so a loader can hand
// the stored bytes to them without a copy. It is written only on request (dcq plan --repack) and
// needs format version 3. kTransformIdCount counts every id a reader accepts.
enum class TransformId : uint8_t {
  none = 0,
  byte_planes = 1,
  block_fields = 2,
  block_fields_unpacked = 3,
  row_groups = 4,
};
inline constexpr uint8_t kTransformCount = 4;
inline constexpr uint8_t kTransformIdCount = 5;
// Rows per group of row_groups (docs/format.md, "Transform 4").
inline constexpr int64_t kRowGroupRows = 16;
std::string_view transform_name(TransformId t);

// Whether the transform applies to a tensor of this type (row_groups: Q8_0 and Q4_0).
bool transform_applies(TransformId t, GgmlType type);
// Sizes of the streams `split` produces for `decoded_bytes` bytes (a whole number of blocks; for
// row_groups whole rows, one stream of the same size, so no row width is needed here).
std::vector<size_t> transform_stream_sizes(TransformId t, GgmlType type, size_t decoded_bytes);
// Splits whole rows into streams. Requires transform_applies and whole blocks. `row_width` is the
// tensor's ne[0] (elements per row): row_groups needs it (and whole rows); the other transforms
// ignore it, so callers that never see row_groups may leave it 0.
std::vector<std::vector<uint8_t>> transform_split(TransformId t, GgmlType type, std::span<const uint8_t> in,
                                                  int64_t row_width = 0);
// Joins streams (sizes as transform_stream_sizes says; checked) into `out`. `row_width`: as above.
void transform_join(TransformId t, GgmlType type, const std::vector<std::span<const uint8_t>>& streams,
                    std::span<uint8_t> out, int64_t row_width = 0);
// Modelled cost of the join, in seconds per decoded byte (0 for none).
double transform_join_cost(TransformId t);

// Empirical entropy in bits per symbol: order 0, and order 1 (conditioned on the previous byte).
double entropy_order0(std::span<const uint8_t> s);
double entropy_order1(std::span<const uint8_t> s);

// XXH3-64 of a byte range (the checksum of docs/format.md).
uint64_t xxh3(std::span<const uint8_t> s);

}  // namespace dcq
