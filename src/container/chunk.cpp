// Chunk payloads: choosing transform + codec per stream, and decoding (docs/format.md,
// "Chunk payload").
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "dcq/container.hpp"
#include "dcq/error.hpp"

namespace dcq {
namespace {

constexpr size_t kStreamHeader = 12;
constexpr size_t kPayloadHeader = 2;
constexpr size_t kMaxStreams = 32;
constexpr size_t kSpeedFloorMinBytes = 64 * 1024;

struct Candidate {
  CodecSpec spec;
  std::vector<uint8_t> bytes;
  double seconds = 0;  // modelled decode time
};

// Every codec worth trying on one stream, encoded. Tiny streams only get raw and rANS o0: the
// order-1 tables alone would be larger than the stream.
// Every codec worth trying on one stream, encoded. Tiny streams skip order 1 (its tables would
// outweigh the stream). Unpacked 4-bit streams skip the LZ codecs: their redundancy is in the
// symbol statistics, which rANS captures. Elsewhere zstd level 1 probes for repeated content
// first, and the slow high levels (and lz4) run only when the probe beats rANS: most weight
// streams have none, and zstd -19 would otherwise dominate compression time.
std::vector<Candidate> stream_candidates(std::span<const uint8_t> s, bool nibbles, bool packed_nibbles,
                                         const ChunkEncodeOptions& o) {
  std::vector<Candidate> out;
  auto add = [&](CodecSpec spec) -> const Candidate& {
    Candidate c;
    c.bytes = codec_encode(spec, s);
    c.spec = spec;
    c.seconds = codec_decode_seconds(spec, c.bytes.size(), s.size());
    out.push_back(std::move(c));
    return out.back();
  };
  add({CodecId::raw, 0});
  if (s.empty()) return out;
  // Our Huffman coder: a little larger than rANS order 0, decoded faster (docs/bench_codec.md).
  // With 8-bit symbols only its raw-low-nibble variant is fast, at ~1 % more size.
  add({CodecId::huff, 0});
  if (!nibbles) add({CodecId::huff, kHuffLow4});
  // Packed 4-bit codes (block_fields 'n' fields): huff-nib decodes them straight into bytes.
  if (packed_nibbles) add({CodecId::huff, kHuffNibbles});
  size_t best_rans = add({CodecId::rans, 0}).bytes.size();
  best_rans = std::min(best_rans, add({CodecId::rans, kRansX32}).bytes.size());
  if (s.size() >= 4096) {
    best_rans = std::min(best_rans, add({CodecId::rans, kRansOrder1}).bytes.size());
    best_rans = std::min(best_rans, add({CodecId::rans, kRansOrder1 | kRansX32}).bytes.size());
  }
  // Pruned or coarsely quantized codes hold long runs of zeros: the run-length variant may pay.
  if (size_t(std::count(s.begin(), s.end(), uint8_t{0})) * 4 > s.size()) {
    add({CodecId::rans, static_cast<uint16_t>(kRansRle | kRansX32)});
    if (s.size() >= 4096) add({CodecId::rans, static_cast<uint16_t>(kRansRle | kRansOrder1 | kRansX32)});
  }
  if (nibbles) {
    add({CodecId::rans, kRansPack});
    add({CodecId::rans, kRansPack | kRansX32});
    return out;
  }
  const int level = std::clamp(o.zstd_level, 1, 22);
  const size_t probe = add({CodecId::zstd, 1}).bytes.size();
  if (double(probe) < 0.99 * double(best_rans)) {
    if (level > 1) add({CodecId::zstd, static_cast<uint16_t>(level)});
    add({CodecId::lz4, 0});
  }
  return out;
}

// Picks one candidate per stream: the smallest total size whose modelled decode time fits the
// budget. Lagrangian relaxation: each stream independently minimises size + lambda x seconds,
// and lambda is the smallest (found by bisection) that meets the budget; this trades bytes for
// time where it costs least across all streams (a greedy per-stream swap does not).
std::vector<size_t> choose(const std::vector<std::vector<Candidate>>& cands, double budget_seconds) {
  auto pick_for = [&](double lambda, double* seconds) {
    std::vector<size_t> pick(cands.size());
    double total = 0;
    for (size_t i = 0; i < cands.size(); ++i) {
      size_t best = 0;
      auto cost = [&](const Candidate& c) { return double(c.bytes.size()) + lambda * c.seconds; };
      for (size_t k = 1; k < cands[i].size(); ++k) {
        const auto &a = cands[i][k], &b = cands[i][best];
        if (cost(a) < cost(b) || (cost(a) == cost(b) && a.seconds < b.seconds)) best = k;
      }
      pick[i] = best;
      total += cands[i][best].seconds;
    }
    *seconds = total;
    return pick;
  };
  double t = 0;
  auto pick = pick_for(0, &t);
  if (t <= budget_seconds) return pick;
  // Few combinations (Q4_0 & co.: 3 streams): search them all. The relaxation below can miss
  // the best one, e.g. a big code stream entropy coded with the small scale streams raw.
  size_t combos = 1;
  for (const auto& c : cands) combos = std::min<size_t>(combos * c.size(), 1u << 20);
  if (combos <= 4096) {
    std::vector<size_t> cur(cands.size(), 0), best;
    double best_bytes = std::numeric_limits<double>::infinity(), best_time = 0;
    while (true) {
      double bytes = 0, sec = 0;
      for (size_t i = 0; i < cands.size(); ++i) {
        bytes += double(cands[i][cur[i]].bytes.size());
        sec += cands[i][cur[i]].seconds;
      }
      if (sec <= budget_seconds && (bytes < best_bytes || (bytes == best_bytes && sec < best_time)))
        best = cur, best_bytes = bytes, best_time = sec;
      size_t i = 0;
      while (i < cands.size() && ++cur[i] == cands[i].size()) cur[i++] = 0;
      if (i == cands.size()) break;
    }
    if (!best.empty()) return best;
  }
  double lo = 0, hi = 1e12;  // bytes per second: at 1e12 every stream takes its fastest codec
  for (int it = 0; it < 60; ++it) {
    const double mid = it < 30 ? std::sqrt(std::max(lo, 1.0) * hi) : 0.5 * (lo + hi);
    double tm = 0;
    pick_for(mid, &tm);
    if (tm <= budget_seconds) hi = mid;
    else lo = mid;
  }
  return pick_for(hi, &t);
}

void put_u16(std::vector<uint8_t>& v, uint16_t x) { v.push_back(uint8_t(x)); v.push_back(uint8_t(x >> 8)); }
void put_u32(std::vector<uint8_t>& v, uint32_t x) { for (int i = 0; i < 4; ++i) v.push_back(uint8_t(x >> (8 * i))); }

}  // namespace

EncodedChunk encode_chunk(GgmlType type, std::span<const uint8_t> rows, const ChunkEncodeOptions& o) {
  // The speed floor governs chunks that matter for throughput. A chunk under 64 KiB is a whole
  // small tensor (norms, biases, tiny models); it decodes in microseconds whatever the codec, so
  // it takes the smallest encoding.
  // The floor is what a reader measures (dcq verify): the two checksums of the chunk and the
  // transform's join are part of every chunk's decode time, so they come off the budget before
  // the codecs get theirs. The stored size is not known before the choice; the decoded size
  // bounds it (a payload larger than its rows is never kept over raw, up to the stream table).
  const bool floor_applies = o.min_decode_speed > 0 && rows.size() >= kSpeedFloorMinBytes;
  const double budget = floor_applies ? double(rows.size()) / o.min_decode_speed -
                                            checksum_seconds(rows.size() + kPayloadHeader + kMaxStreams * kStreamHeader,
                                                             rows.size())
                                      : std::numeric_limits<double>::infinity();
  EncodedChunk best;
  bool have = false;
  // Only the compression transforms: row_groups is a layout for the kernels, written on request
  // (dcq plan --repack), never chosen here (its stream is a permutation of the rows).
  for (uint8_t t = 0; t < kTransformCount; ++t) {
    const auto tid = static_cast<TransformId>(t);
    if (!transform_applies(tid, type)) continue;
    const auto streams = transform_split(tid, type, rows);
    std::vector<std::vector<Candidate>> cands;
    for (const auto& s : streams)
      cands.push_back(stream_candidates(s, tid == TransformId::block_fields_unpacked && s.size() > rows.size() / 2,
                                        tid == TransformId::block_fields && s.size() > rows.size() / 2, o));
    const double join = transform_join_cost(tid) * double(rows.size());
    const auto pick = choose(cands, budget - join);

    EncodedChunk e;
    e.transform = tid;
    e.n_streams = static_cast<uint16_t>(streams.size());
    e.payload.push_back(static_cast<uint8_t>(streams.size()));
    e.payload.push_back(0);
    size_t largest = 0;
    e.modelled_decode_seconds = join;
    for (size_t i = 0; i < streams.size(); ++i) {
      const auto& c = cands[i][pick[i]];
      e.payload.push_back(static_cast<uint8_t>(c.spec.id));
      e.payload.push_back(0);
      put_u16(e.payload, c.spec.param);
      put_u32(e.payload, static_cast<uint32_t>(c.bytes.size()));
      put_u32(e.payload, static_cast<uint32_t>(streams[i].size()));
      e.modelled_decode_seconds += c.seconds;
      if (streams[i].size() > streams[largest].size()) largest = i;
    }
    for (size_t i = 0; i < streams.size(); ++i) {
      const auto& b = cands[i][pick[i]].bytes;
      e.payload.insert(e.payload.end(), b.begin(), b.end());
    }
    e.codec = cands[largest][pick[largest]].spec.id;
    e.modelled_decode_seconds += checksum_seconds(e.payload.size(), rows.size());
    // Prefer the smaller payload; on a tie the simpler (lower id) transform stays.
    if (!have || e.payload.size() < best.payload.size()) {
      best = std::move(e);
      have = true;
    }
  }
  DCQ_ASSERT(have);
  return best;
}

std::vector<DcqStreamInfo> parse_payload(GgmlType type, TransformId t, std::span<const uint8_t> p,
                                         uint64_t decoded_size) {
  auto bad = [](const std::string& what) -> void { fail(ExitCode::integrity, "chunk payload " + what); };
  if (!transform_applies(t, type)) bad("uses a transform that does not apply to its tensor type");
  const auto sizes = transform_stream_sizes(t, type, static_cast<size_t>(decoded_size));
  if (p.size() < kPayloadHeader) bad("is shorter than its header");
  const size_t n = p[0];
  if (n == 0 || n > kMaxStreams || n != sizes.size()) bad("has a wrong stream count " + std::to_string(n));
  if (p[1] != 0) bad("has a non-zero reserved byte");
  if (p.size() < kPayloadHeader + n * kStreamHeader) bad("is shorter than its stream table");
  std::vector<DcqStreamInfo> s(n);
  uint64_t total = kPayloadHeader + n * kStreamHeader;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* h = p.data() + kPayloadHeader + i * kStreamHeader;
    uint16_t param;
    std::memcpy(&param, h + 2, 2);
    std::memcpy(&s[i].stored_size, h + 4, 4);
    std::memcpy(&s[i].raw_size, h + 8, 4);
    if (!codec_valid(h[0], param) || h[1] != 0) bad("stream " + std::to_string(i) + " names an unknown codec");
    s[i].codec = {static_cast<CodecId>(h[0]), param};
    if (s[i].raw_size != sizes[i]) bad("stream " + std::to_string(i) + " has a wrong raw size");
    total += s[i].stored_size;
  }
  if (total != p.size()) bad("stream sizes do not add up to the payload size");
  return s;
}

void decode_payload(GgmlType type, TransformId t, std::span<const uint8_t> p, std::span<uint8_t> out,
                    int64_t row_width) {
  const auto info = parse_payload(type, t, p, out.size());
  size_t at = kPayloadHeader + info.size() * kStreamHeader;
  if (t == TransformId::none) {
    // One stream: decode straight into the output, no copy.
    codec_decode(info[0].codec, p.subspan(at, info[0].stored_size), out);
    return;
  }
  // Raw streams are used in place; others decode into one scratch buffer per thread.
  thread_local std::vector<uint8_t> scratch;
  size_t need = 0;
  for (const auto& s : info)
    if (s.codec.id != CodecId::raw) need += s.raw_size;
  if (scratch.size() < need) scratch.resize(need);
  std::vector<std::span<const uint8_t>> streams;
  size_t used = 0;
  for (const auto& s : info) {
    auto in = p.subspan(at, s.stored_size);
    at += s.stored_size;
    if (s.codec.id == CodecId::raw) {
      if (in.size() != s.raw_size) fail(ExitCode::integrity, "chunk payload raw stream has a wrong size");
      streams.push_back(in);
      continue;
    }
    std::span<uint8_t> dst(scratch.data() + used, s.raw_size);
    codec_decode(s.codec, in, dst);
    streams.push_back(dst);
    used += s.raw_size;
  }
  transform_join(t, type, streams, out, row_width);
}

void describe_chunk(DcqChunk& c, const EncodedChunk& e, std::span<const uint8_t> rows, uint64_t offset) {
  c.transform = e.transform;
  c.codec = e.codec;
  c.n_streams = e.n_streams;
  c.offset = offset;
  c.stored_size = e.payload.size();
  c.xxh3_stored = xxh3(e.payload);
  c.xxh3_decoded = xxh3(rows);
  c.decoded_size = rows.size();
}

}  // namespace dcq
