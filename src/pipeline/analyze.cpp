// `dcq analyze`: how compressible each tensor is and what the lossless stage achieves — per
// stream entropy bounds (order 0 and 1), bits per symbol reached by each codec, the encoding the
// compressor would choose, and measured decode speed. Inputs: GGUF, a safetensors file or a
// Hugging Face folder (its *.safetensors shards, tensors as stored), or a .dcq, for which the
// report is what the container actually stores (see analyze_dcq).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <limits>
#include <map>

#include "dcq/compress.hpp"
#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/io.hpp"
#include "dcq/safetensors.hpp"
#include "pipeline/compress_internal.hpp"

namespace dcq {
namespace {

std::vector<CodecSpec> analyzed_codecs(int level) {
  return {{CodecId::zstd, static_cast<uint16_t>(level)}, {CodecId::lz4, 0}, {CodecId::rans, 0},
       {CodecId::rans, kRansOrder1}, {CodecId::rans, kRansX32}, {CodecId::rans, kRansOrder1 | kRansX32}};
}

// A tensor as stored in the input file: name, type, ggml shape, bytes.
struct RawTensor {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  std::span<const uint8_t> data;
  uint64_t n_bytes() const { return data.size(); }
  int64_t row_width() const { return ne.empty() ? 1 : ne[0]; }
  int64_t n_rows() const {
    int64_t n = 1;
    for (size_t i = 1; i < ne.size(); ++i) n *= ne[i];
    return n;
  }
};

std::string short_codec(CodecId id) {
  const auto n = codec_name({id, 0});
  return n.substr(0, n.find('-'));
}

// A .dcq: per tensor, decode its chunks (timed in thread CPU time, best of `repeat`), split each
// decoded chunk into the streams of the transform the container chose, and set the order-0
// entropy of each stream against the bits its codec actually spent. The entropy bound is per
// chunk (what a static order-0 coder of that chunk could reach), summed over chunks.
nlohmann::json analyze_dcq(const AnalyzeOptions& o) {
  const auto r = DcqReader::open(o.input);
  const auto& ix = r.index();
  std::vector<nlohmann::json> per(ix.tensors.size());
  std::vector<uint64_t> bytes_of(ix.tensors.size()), stored_of(ix.tensors.size()), dup_bytes_of(ix.tensors.size());
  std::vector<double> bound_of(ix.tensors.size()), decode_of(ix.tensors.size());
  parallel_for(ix.tensors.size(), static_cast<size_t>(std::max(1, o.threads)), [&](size_t ti) {
    const auto& t = ix.tensors[ti];
    nlohmann::json e{{"name", t.name}, {"type", type_name(t.type)}, {"bytes", t.n_bytes}};
    if (t.duplicate_of != kDcqNoDuplicate) {
      e["duplicate_of"] = ix.tensors[t.duplicate_of].name;
      e["stored_bytes"] = 0;
      dup_bytes_of[ti] = t.n_bytes;
      per[ti] = e;
      return;
    }
    if (t.n_chunks == 0) {
      per[ti] = e;
      return;
    }
    std::map<std::string, uint64_t> transforms, codecs;
    // Per stream position of the transform: symbols, entropy-bound bits, stored bytes.
    struct Acc { uint64_t symbols = 0, stored = 0; double bound_bits = 0; std::map<std::string, uint64_t> codecs; };
    std::map<std::string, std::vector<Acc>> streams;  // by transform
    uint64_t stored = 0;
    double bound_bits = 0, best = std::numeric_limits<double>::infinity();
    std::vector<std::vector<uint8_t>> decoded(t.n_chunks);
    for (int rep = 0; rep < std::max(1, o.repeat); ++rep) {
      double cpu = 0;
      for (uint32_t k = 0; k < t.n_chunks; ++k) {
        const auto& c = ix.chunks[t.first_chunk + k];
        decoded[k].resize(c.decoded_size);
        const double c0 = thread_cpu_seconds();
        r.decode_chunk(t.first_chunk + k, decoded[k]);  // checks both checksums too
        cpu += thread_cpu_seconds() - c0;
      }
      best = std::min(best, cpu);
    }
    for (uint32_t k = 0; k < t.n_chunks; ++k) {
      const auto& c = ix.chunks[t.first_chunk + k];
      stored += c.stored_size;
      const std::string tr(transform_name(c.transform));
      ++transforms[tr];
      ++codecs[short_codec(c.codec)];
      const auto info = parse_payload(t.type, c.transform, r.stored(c), c.decoded_size);
      const auto split = transform_split(c.transform, t.type, decoded[k], t.ne[0]);
      auto& acc = streams[tr];
      acc.resize(std::max(acc.size(), split.size()));
      for (size_t s = 0; s < split.size() && s < info.size(); ++s) {
        const double b = entropy_order0(split[s]) * double(split[s].size());
        acc[s].symbols += split[s].size();
        acc[s].stored += info[s].stored_size;
        acc[s].bound_bits += b;
        ++acc[s].codecs[codec_name(info[s].codec)];
        bound_bits += b;
      }
      decoded[k] = {};
    }
    nlohmann::json sj = nlohmann::json::object();
    for (const auto& [tr, acc] : streams) {
      auto arr = nlohmann::json::array();
      for (const auto& a : acc)
        arr.push_back({{"symbols", a.symbols},
                       {"h0", a.symbols ? a.bound_bits / double(a.symbols) : 0.0},
                       {"bits", a.symbols ? 8.0 * double(a.stored) / double(a.symbols) : 0.0},
                       {"codecs", a.codecs}});
      sj[tr] = arr;
    }
    const double bound_bytes = bound_bits / 8.0;
    e["stored_bytes"] = stored;
    e["chunks"] = t.n_chunks;
    e["transforms"] = transforms;
    e["codecs"] = codecs;
    e["streams"] = sj;
    e["h0"] = 8.0 * bound_bytes / double(t.n_bytes);  // bits per byte the order-0 bound allows
    e["bits_per_byte"] = 8.0 * double(stored) / double(t.n_bytes);
    e["ratio"] = double(t.n_bytes) / double(std::max<uint64_t>(stored, 1));
    e["entropy_bound_bytes"] = uint64_t(bound_bytes + 0.5);
    e["vs_bound"] = bound_bytes > 0 ? double(stored) / bound_bytes : 0.0;  // 1.0 = at the order-0 bound
    e["decode_gbps"] = best > 0 ? double(t.n_bytes) / best / 1e9 : 0.0;
    per[ti] = e;
    bytes_of[ti] = t.n_bytes;
    stored_of[ti] = stored;
    bound_of[ti] = bound_bytes;
    decode_of[ti] = best;
  });
  nlohmann::json tensors = nlohmann::json::array();
  uint64_t total_bytes = 0, total_stored = 0, dup_bytes = 0;
  double total_bound = 0, total_decode = 0;
  for (size_t i = 0; i < per.size(); ++i) {
    tensors.push_back(per[i]);
    dup_bytes += dup_bytes_of[i];
    total_bytes += bytes_of[i];
    total_stored += stored_of[i];
    total_bound += bound_of[i];
    total_decode += decode_of[i];
  }
  nlohmann::json j{{"file", o.input.string()},
                   {"format", "dcq"},
                   {"tensors", tensors},
                   {"totals",
                    {{"tensor_bytes", total_bytes},
                     {"stored_bytes", total_stored},
                     {"entropy_bound_bytes", uint64_t(total_bound + 0.5)},
                     {"vs_bound", total_bound > 0 ? double(total_stored) / total_bound : 0.0},
                     {"container_bytes", r.file_size()},
                     {"source_bytes", ix.source_size},
                     {"ratio", total_stored ? double(total_bytes) / double(total_stored) : 0.0},
                     // Counting the duplicates (stored once) too: the ratio on all tensor bytes.
                     {"duplicate_bytes", dup_bytes},
                     {"ratio_with_duplicates", total_stored ? double(total_bytes + dup_bytes) / double(total_stored) : 0.0},
                     {"decode_gbps", total_decode > 0 ? double(total_bytes) / total_decode / 1e9 : 0.0}}}};
  return j;
}

}  // namespace

nlohmann::json analyze(const AnalyzeOptions& o) {
  const bool folder = std::filesystem::is_directory(o.input);
  const auto fmt = folder ? ModelFormat::safetensors : detect_format(o.input);
  if (fmt == ModelFormat::dcq) return analyze_dcq(o);
  if (fmt != ModelFormat::gguf && fmt != ModelFormat::safetensors)
    fail_input(o.input.string() + ": analyze needs a GGUF, safetensors (file or folder) or .dcq input (got " +
               std::string(format_name(fmt)) + ")");
  const int level = std::clamp(o.level, 1, 22);
  // The tensors exactly as the lossless stage sees them (safetensors: names and bytes as stored,
  // shape reversed into ggml order), from mappings kept alive here.
  std::vector<std::shared_ptr<MappedFile>> maps;
  std::vector<RawTensor> tensors_in;
  if (fmt == ModelFormat::gguf) {
    maps.push_back(MappedFile::open(o.input));
    const Model g = parse_gguf(maps.back()->bytes(), o.input.string());
    for (const auto& t : g.tensors) tensors_in.push_back({t.name, t.type, t.ne, t.data});
  } else {
    std::vector<std::filesystem::path> files;
    if (folder) {
      for (const auto& e : std::filesystem::directory_iterator(o.input))
        if (e.is_regular_file() && e.path().extension() == ".safetensors") files.push_back(e.path());
      std::sort(files.begin(), files.end());
      if (files.empty()) fail_input(o.input.string() + ": folder holds no *.safetensors file");
    } else {
      files.push_back(o.input);
    }
    for (const auto& f : files) {
      maps.push_back(MappedFile::open(f));
      const auto st = parse_safetensors(maps.back()->bytes(), f.string());
      for (const auto& t : st.tensors) {
        std::vector<int64_t> ne(t.shape.rbegin(), t.shape.rend());
        if (ne.empty()) ne.push_back(1);
        tensors_in.push_back({t.name, t.type, ne, t.data});
      }
    }
  }
  struct View { const std::vector<RawTensor>& tensors; } m{tensors_in};
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
          {"format", folder ? std::string("folder") : std::string(format_name(fmt))},
          {"tensors", tensors},
          {"totals",
           {{"tensor_bytes", total_bytes},
            {"stored_bytes", total_stored},
            {"ratio", total_stored ? double(total_bytes) / double(total_stored) : 0.0},
            {"decode_gbps", total_decode > 0 ? double(total_bytes) / total_decode / 1e9 : 0.0}}}};
}

}  // namespace dcq
