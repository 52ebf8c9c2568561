// `dcq compress --lossless`: GGUF, safetensors or a Hugging Face folder -> .dcq (a folder is one
// container: every shard's tensors are chunked, other files kept verbatim). Tensor bytes are cut into chunks of whole rows and
// encoded in parallel (a bounded window of chunks at a time, written in order, so memory stays
// a few chunks per thread and the file is identical for any thread count); everything else of
// the source goes into the extras blob so decompress rebuilds it byte for byte.
#include <spdlog/spdlog.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <thread>
#include <unordered_map>

#include "dcq/compress.hpp"
#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "dcq/gguf.hpp"
#include "dcq/io.hpp"
#include "dcq/safetensors.hpp"
#include "dcq/version.hpp"
#include "pipeline/compress_internal.hpp"

namespace dcq {
namespace {

struct SourceTensor {
  std::string name;
  GgmlType type;
  std::vector<int64_t> ne;
  std::span<const uint8_t> data;  // into the source mapping
};
struct Source {
  uint32_t gguf_version = 0;
  uint64_t alignment = 0;
  std::vector<SourceTensor> tensors;  // in header order
};

struct Job {
  uint32_t tensor;
  uint64_t row_begin, row_count;
  std::span<const uint8_t> bytes;
};

DcqBlob make_blob(DcqWriter& w, std::span<const uint8_t> raw, int level) {
  DcqBlob b;
  b.codec = {CodecId::zstd, static_cast<uint16_t>(std::clamp(level, 1, 22))};
  auto stored = codec_encode(b.codec, raw);
  b.offset = w.write_payload(stored);
  b.stored_size = stored.size();
  b.raw_size = raw.size();
  b.xxh3_stored = xxh3(stored);
  b.xxh3_raw = xxh3(raw);
  return b;
}

}  // namespace

nlohmann::json compress(const CompressOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  if (o.level < 1 || o.level > 22) fail_usage("--level must be 1..22, got " + std::to_string(o.level));
  if (o.chunk_size < 1024 || o.chunk_size > kDcqMaxChunkBytes)
    fail_usage("--chunk-size must be 1 KiB..1 GiB, got " + std::to_string(o.chunk_size));
  if (o.min_decode_speed_gbps < 0) fail_usage("--min-decode-speed must be >= 0");
  const bool folder = std::filesystem::is_directory(o.input);
  const auto fmt = folder ? ModelFormat::safetensors : detect_format(o.input);
  if (fmt == ModelFormat::dcq) fail_input(o.input.string() + ": is already a .dcq container");
  if (fmt != ModelFormat::gguf && fmt != ModelFormat::safetensors)
    fail_input(o.input.string() + ": lossless compression supports GGUF and safetensors input (got " +
               std::string(format_name(fmt)) + ")");
  check_can_write(o.output, o.force);

  // The input files: one, or every regular file of the folder sorted by name (so the container
  // does not depend on directory order). Both formats are read from our own mapping so each
  // tensor's offset in its file is known.
  struct InputFile {
    std::string name;
    DcqFile::Kind kind = DcqFile::verbatim;
    std::shared_ptr<MappedFile> map;
    std::span<const uint8_t> bytes;
  };
  std::vector<InputFile> inputs;
  std::vector<std::string> skipped;
  if (folder) {
    std::vector<std::filesystem::directory_entry> entries;
    for (const auto& e : std::filesystem::directory_iterator(o.input)) entries.push_back(e);
    std::sort(entries.begin(), entries.end(), [](const auto& x, const auto& y) { return x.path().filename() < y.path().filename(); });
    std::error_code ec;
    const auto out_abs = std::filesystem::weakly_canonical(o.output, ec);
    for (const auto& e : entries) {
      const std::string name = e.path().filename().string();
      if (!out_abs.empty() && std::filesystem::weakly_canonical(e.path(), ec) == out_abs) {
        spdlog::warn("{}: '{}' is the output; it is not stored", o.input.string(), name);
        skipped.push_back(name);
        continue;
      }
      if (!e.is_regular_file(ec)) {
        spdlog::warn("{}: '{}' is not a regular file (a subfolder?); it is not stored", o.input.string(), name);
        skipped.push_back(name);
        continue;
      }
      if (!dcq_safe_file_name(name)) fail_input(o.input.string() + ": file name '" + name + "' cannot be stored (over 255 bytes)");
      InputFile f;
      f.name = name;
      f.kind = e.path().extension() == ".safetensors" ? DcqFile::safetensors : DcqFile::verbatim;
      if (f.kind == DcqFile::verbatim && e.file_size() > kDcqMaxVerbatimFile)
        fail_input(e.path().string() + ": " + std::to_string(e.file_size()) +
                   " bytes; files other than *.safetensors are stored verbatim and may be at most 64 MiB");
      f.map = MappedFile::open(e.path());
      f.bytes = f.map->bytes();
      inputs.push_back(std::move(f));
    }
    if (std::none_of(inputs.begin(), inputs.end(), [](const InputFile& f) { return f.kind == DcqFile::safetensors; }))
      fail_input(o.input.string() + ": folder holds no *.safetensors file");
  } else {
    InputFile f;
    f.name = o.input.filename().string();
    f.kind = DcqFile::safetensors;  // (not recorded for a single file)
    f.map = MappedFile::open(o.input);
    f.bytes = f.map->bytes();
    inputs.push_back(std::move(f));
  }

  Source m;
  DcqIndex ix;
  ix.source_format = folder ? DcqSourceFormat::folder
                            : fmt == ModelFormat::gguf ? DcqSourceFormat::gguf : DcqSourceFormat::safetensors;
  std::vector<uint8_t> extras;
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> whole(XXH3_createState(), XXH3_freeState);
  XXH3_64bits_reset(whole.get());
  std::unordered_map<std::string, std::string> tensor_file;  // names must be unique across shards
  for (const auto& in : inputs) {
    const auto src = in.bytes;
    const std::string where = folder ? (o.input / in.name).string() : o.input.string();
    DcqFile df;
    df.name = in.name;
    df.kind = in.kind;
    df.size = src.size();
    df.xxh3 = xxh3(src);
    df.first_segment = static_cast<uint32_t>(ix.segments.size());
    XXH3_64bits_update(whole.get(), src.data(), src.size());
    ix.source_size += src.size();
    auto add_extras = [&](uint64_t from, uint64_t to) {
      if (to <= from) return;
      if (extras.size() + (to - from) > kDcqMaxExtrasBytes)
        fail_input(where + ": the non-tensor bytes of the input exceed 1 GiB");
      ix.segments.push_back({DcqSegment::extras, extras.size(), to - from});
      extras.insert(extras.end(), src.begin() + from, src.begin() + to);
    };
    if (in.kind == DcqFile::verbatim) {
      add_extras(0, src.size());
    } else {
      const size_t first_tensor = m.tensors.size();
      if (fmt == ModelFormat::gguf) {
        const Model g = parse_gguf(src, where);
        m.gguf_version = g.gguf_version;
        m.alignment = g.alignment;
        for (const auto& t : g.tensors) m.tensors.push_back({t.name, t.type, t.ne, t.data});
      } else {
        const auto st = parse_safetensors(src, where);
        for (const auto& t : st.tensors) {
          // safetensors shapes are outermost first; ggml order is innermost first.
          std::vector<int64_t> ne(t.shape.rbegin(), t.shape.rend());
          m.tensors.push_back({t.name, t.type, ne, t.data});
        }
      }
      for (size_t i = first_tensor; i < m.tensors.size(); ++i)
        if (const auto [it, fresh] = tensor_file.emplace(m.tensors[i].name, in.name); !fresh)
          fail_input(where + ": tensor '" + m.tensors[i].name + "' is also in " + it->second +
                     "; a folder container needs unique tensor names");
      // Layout: tensors in file order, the rest into the extras blob.
      std::vector<uint64_t> offsets(m.tensors.size() - first_tensor);
      for (size_t i = 0; i < offsets.size(); ++i) {
        const auto& t = m.tensors[first_tensor + i];
        offsets[i] = t.data.empty() && t.data.data() == nullptr ? 0 : static_cast<uint64_t>(t.data.data() - src.data());
      }
      std::vector<size_t> order(offsets.size());
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return offsets[x] < offsets[y]; });
      uint64_t pos = 0;
      for (size_t i : order) {
        if (offsets[i] < pos)
          fail_input(where + ": tensor '" + m.tensors[first_tensor + i].name + "' overlaps another; cannot rebuild exactly");
        add_extras(pos, offsets[i]);
        ix.segments.push_back({DcqSegment::tensor, first_tensor + i, 0});
        pos = offsets[i] + m.tensors[first_tensor + i].data.size();
      }
      add_extras(pos, src.size());
    }
    df.n_segments = static_cast<uint32_t>(ix.segments.size() - df.first_segment);
    if (folder) ix.files.push_back(std::move(df));
  }
  ix.source_xxh3 = XXH3_64bits_digest(whole.get());

  // Tensors, duplicates, chunk jobs.
  std::unordered_map<uint64_t, std::vector<uint32_t>> by_hash;
  std::vector<Job> jobs;
  size_t duplicates = 0;
  for (size_t i = 0; i < m.tensors.size(); ++i) {
    const auto& t = m.tensors[i];
    DcqTensor d;
    if (t.name.empty() || t.name.size() > 0xFFFF) fail_input(o.input.string() + ": tensor name of length " + std::to_string(t.name.size()) + " cannot be stored");
    d.name = t.name;
    d.type = t.type;
    d.ne = t.ne;
    if (d.ne.empty()) d.ne.push_back(1);
    d.n_bytes = t.data.size();
    DCQ_ASSERT(!row_bytes(d.type, d.ne[0]) || d.n_bytes == *row_bytes(d.type, d.ne[0]) * d.n_rows());
    d.first_chunk = static_cast<uint32_t>(jobs.size());
    if (d.n_bytes > 0) {
      auto& same = by_hash[xxh3(t.data) ^ d.n_bytes];
      for (uint32_t k : same)
        if (ix.tensors[k].n_bytes == d.n_bytes && std::memcmp(m.tensors[k].data.data(), t.data.data(), d.n_bytes) == 0) {
          d.duplicate_of = k;
          break;
        }
      if (d.duplicate_of == kDcqNoDuplicate) {
        same.push_back(static_cast<uint32_t>(i));
        const uint64_t rb = d.row_bytes(), rows = d.n_rows();
        const uint64_t per = std::max<uint64_t>(1, o.chunk_size / rb);
        for (uint64_t r = 0; r < rows; r += per) {
          const uint64_t n = std::min(per, rows - r);
          if (n * rb > kDcqMaxChunkBytes) fail_input(o.input.string() + ": tensor '" + t.name + "' has rows over 1 GiB");
          jobs.push_back({static_cast<uint32_t>(i), r, n, t.data.subspan(r * rb, n * rb)});
          ++d.n_chunks;
        }
      } else {
        ++duplicates;
      }
    }
    ix.tensors.push_back(std::move(d));
  }

  DcqWriter w(o.output, o.force);
  ChunkEncodeOptions eo;
  eo.zstd_level = o.level;
  eo.min_decode_speed = o.min_decode_speed_gbps * 1e9;
  std::map<std::string, uint64_t> codec_count, transform_count;
  double modelled_seconds = 0;
  const size_t threads = static_cast<size_t>(std::max(1, o.threads));
  const size_t window = threads * 4;
  std::vector<EncodedChunk> enc;
  for (size_t start = 0; start < jobs.size(); start += window) {
    const size_t n = std::min(window, jobs.size() - start);
    enc.assign(n, {});
    parallel_for(n, threads, [&](size_t k) {
      const auto& j = jobs[start + k];
      enc[k] = encode_chunk(m.tensors[j.tensor].type, j.bytes, eo);
    });
    for (size_t k = 0; k < n; ++k) {
      const auto& j = jobs[start + k];
      auto& e = enc[k];
      DcqChunk c;
      c.tensor = j.tensor;
      c.row_begin = j.row_begin;
      c.row_count = j.row_count;
      describe_chunk(c, e, j.bytes, w.write_payload(e.payload));
      ix.chunks.push_back(c);
      ++codec_count[codec_name({e.codec, 0}).substr(0, codec_name({e.codec, 0}).find('-'))];
      ++transform_count[std::string(transform_name(e.transform))];
      modelled_seconds += e.modelled_decode_seconds;
      e = {};
    }
  }
  ix.extras = make_blob(w, extras, std::max(o.level, 19));

  nlohmann::json meta;
  meta["format"] = "dcq";
  meta["format_version"] = kDcqFormatVersion;
  meta["writer"] = "dcq " + version();
  const std::string source_file = folder ? std::filesystem::absolute(o.input).lexically_normal().filename().string()
                                         : o.input.filename().string();
  meta["source"] = {{"file", o.source_name.empty() ? source_file : o.source_name},
                    {"format", folder ? std::string("folder") : std::string(format_name(fmt))},
                    {"size", ix.source_size}, {"xxh3", ix.source_xxh3}};
  nlohmann::json files_json = nlohmann::json::array();
  for (const auto& f : ix.files)
    files_json.push_back({{"name", f.name}, {"kind", f.kind == DcqFile::safetensors ? "safetensors" : "verbatim"}, {"size", f.size}});
  if (folder) {
    meta["source"]["files"] = files_json;
    if (!skipped.empty()) meta["source"]["skipped"] = skipped;
  }
  if (fmt == ModelFormat::gguf) {
    meta["source"]["gguf_version"] = m.gguf_version;
    meta["source"]["alignment"] = m.alignment;
  }
  std::vector<std::string> stages = o.stages;
  stages.push_back("lossless");
  meta["pipeline"] = {{"stages", stages},
                      {"level", o.level},
                      {"chunk_size", o.chunk_size},
                      {"min_decode_speed_gbps", o.min_decode_speed_gbps},
                      {"codecs", codec_count},
                      {"transforms", transform_count},
                      {"duplicate_tensors", duplicates}};
  if (!o.lossy.is_null()) meta["pipeline"]["lossy"] = o.lossy;
  const std::string mj = meta.dump();
  ix.metadata = make_blob(w, {reinterpret_cast<const uint8_t*>(mj.data()), mj.size()}, o.level);
  w.finish(ix);

  const auto out_bytes = std::filesystem::file_size(o.output);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t tensor_bytes = 0;
  for (const auto& j : jobs) tensor_bytes += j.bytes.size();
  nlohmann::json stored = nlohmann::json::object();  // per tensor: stored payload bytes
  for (const auto& t : ix.tensors) stored[t.name] = 0;
  for (const auto& c : ix.chunks) stored[ix.tensors[c.tensor].name] = stored[ix.tensors[c.tensor].name].get<uint64_t>() + c.stored_size;
  nlohmann::json report = {{"input", o.input.string()},
          {"output", o.output.string()},
          {"input_bytes", ix.source_size},
          {"output_bytes", out_bytes},
          {"ratio", out_bytes ? double(ix.source_size) / double(out_bytes) : 0.0},
          {"tensors", ix.tensors.size()},
          {"duplicates", duplicates},
          {"chunks", ix.chunks.size()},
          {"extras_bytes", extras.size()},
          {"modelled_decode_gbps", modelled_seconds > 0 ? double(tensor_bytes) / modelled_seconds / 1e9 : 0.0},
          {"codecs", codec_count},
          {"transforms", transform_count},
          {"tensor_stored_bytes", stored},
          {"seconds", secs}};
  if (folder) {
    report["files"] = files_json;
    report["skipped"] = skipped;
  }
  return report;
}

}  // namespace dcq
