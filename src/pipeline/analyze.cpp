// `dcq analyze`: how compressible each tensor is and what the lossless stage achieves — per
// stream entropy bounds (order 0 and 1), bits per symbol reached by each codec, the encoding the
// compressor would choose, and measured decode speed.
#include <algorithm>
#include <chrono>
#include <limits>

#include "dcq/compress.hpp"
#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/io.hpp"
#include "pipeline/compress_internal.hpp"

namespace dcq {
namespace {

std::vector<CodecSpec> analyzed_codecs(int level) {
  return {{CodecId::zstd, static_cast<uint16_t>(level)}, {CodecId::lz4, 0}, {CodecId::rans, 0},
       {CodecId::rans, kRansOrder1}, {CodecId::rans, kRansX32}, {CodecId::rans, kRansOrder1 | kRansX32}};
}

}  // namespace

nlohmann::json analyze(const AnalyzeOptions& o) {
  const auto fmt = detect_format(o.input);
  if (fmt != ModelFormat::gguf) fail_input(o.input.string() + ": analyze needs a GGUF input (got " + std::string(format_name(fmt)) + ")");
  const int level = std::clamp(o.level, 1, 22);
  const Model m = read_gguf(o.input);
  const uint64_t chunk_size = 256 * 1024;
  ChunkEncodeOptions eo;
  eo.zstd_level = level;
  nlohmann::json tensors = nlohmann::json::array();
  uint64_t total_bytes = 0, total_stored = 0;
  double total_decode = 0;
  std::vector<nlohmann::json> per(m.tensors.size());
  std::vector<uint64_t> stored_of(m.tensors.size()), bytes_of(m.tensors.size());
  std::vector<double> decode_of(m.tensors.size());
  parallel_for(m.tensors.size(), static_cast<size_t>(std::max(1, o.threads)), [&](size_t ti) {
    const auto& t = m.tensors[ti];
    nlohmann::json e{{"name", t.name}, {"type", type_name(t.type)}, {"bytes", t.n_bytes()}};
    if (t.n_bytes() == 0) {
      per[ti] = e;
      return;
    }
    // Streams of each transform over the whole tensor: entropy and codec bits per symbol.
    nlohmann::json tr = nlohmann::json::object();
    for (uint8_t k = 0; k < kTransformCount; ++k) {
      const auto tid = static_cast<TransformId>(k);
      if (!transform_applies(tid, t.type)) continue;
      auto streams = transform_split(tid, t.type, t.data);
      nlohmann::json sj = nlohmann::json::array();
      for (const auto& s : streams) {
        nlohmann::json x{{"symbols", s.size()}, {"h0", entropy_order0(s)}, {"h1", entropy_order1(s)}};
        nlohmann::json bits = nlohmann::json::object();
        for (auto spec : analyzed_codecs(level)) {
          auto sp = spec;
          const auto enc = codec_encode(sp, s);
          bits[codec_name(spec)] = s.empty() ? 0.0 : 8.0 * double(enc.size()) / double(s.size());
        }
        x["bits"] = bits;
        sj.push_back(std::move(x));
      }
      tr[std::string(transform_name(tid))] = sj;
    }
    e["streams"] = tr;
    // What compress chooses, chunk by chunk, and how fast it decodes (best of `repeat`).
    const uint64_t rb = *row_bytes(t.type, t.row_width());
    const uint64_t per_chunk = std::max<uint64_t>(1, chunk_size / rb);
    uint64_t stored = 0;
    double best = std::numeric_limits<double>::infinity();
    std::vector<EncodedChunk> chunks;
    std::vector<std::span<const uint8_t>> parts;
    for (uint64_t r = 0; r < static_cast<uint64_t>(t.n_rows()); r += per_chunk) {
      const uint64_t n = std::min<uint64_t>(per_chunk, t.n_rows() - r);
      parts.push_back(t.data.subspan(r * rb, n * rb));
      chunks.push_back(encode_chunk(t.type, parts.back(), eo));
      stored += chunks.back().payload.size();
    }
    std::vector<uint8_t> out;
    for (int rep = 0; rep < std::max(1, o.repeat); ++rep) {
      const double c0 = thread_cpu_seconds();
      for (size_t c = 0; c < chunks.size(); ++c) {
        out.resize(parts[c].size());
        decode_payload(t.type, chunks[c].transform, chunks[c].payload, out);
      }
      best = std::min(best, thread_cpu_seconds() - c0);
    }
    e["chosen"] = {{"transform", std::string(transform_name(chunks[0].transform))},
                   {"codec", codec_name({chunks[0].codec, 0}).substr(0, codec_name({chunks[0].codec, 0}).find('-'))},
                   {"stored_bytes", stored},
                   {"bits_per_byte", 8.0 * double(stored) / double(t.n_bytes())},
                   {"ratio", double(t.n_bytes()) / double(stored)},
                   {"decode_gbps", double(t.n_bytes()) / best / 1e9}};
    per[ti] = e;
    stored_of[ti] = stored;
    bytes_of[ti] = t.n_bytes();
    decode_of[ti] = best;
  });
  for (size_t i = 0; i < per.size(); ++i) {
    tensors.push_back(per[i]);
    total_bytes += bytes_of[i];
    total_stored += stored_of[i];
    total_decode += decode_of[i];
  }
  return {{"file", o.input.string()},
          {"tensors", tensors},
          {"totals",
           {{"tensor_bytes", total_bytes},
            {"stored_bytes", total_stored},
            {"ratio", total_stored ? double(total_bytes) / double(total_stored) : 0.0},
            {"decode_gbps", total_decode > 0 ? double(total_bytes) / total_decode / 1e9 : 0.0}}}};
}

}  // namespace dcq
