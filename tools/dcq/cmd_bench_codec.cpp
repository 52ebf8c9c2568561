// dcq bench codec MODEL: size and single-core decode speed of every codec on the code streams of
// 256 KiB chunks of a block-quantized model (docs/bench_codec.md), plus the other per-chunk
// decode costs (transform join, XXH3 of stored and decoded bytes).
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <map>

#include "cli.hpp"
#include "dcq/codec.hpp"
#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "dcq/io.hpp"
#include "dcq/model.hpp"

namespace dcq::cli {
namespace {

struct BenchCodecOptions {
  std::string model;
  size_t chunk_bytes = 262144;
  size_t chunks = 8;
  int repeats = 20;
};

double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// Best (smallest) thread CPU time of `repeats` runs of f over all chunks.
template <class F>
double best_seconds(int repeats, F&& f) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = thread_seconds();
    f();
    best = std::min(best, thread_seconds() - t0);
  }
  return best;
}

struct Row {
  std::string stream, codec;
  double bits_per_symbol = 0, gbps = 0, h0 = 0;
  double modelled_gbps = 0;  // what the chooser's fixed model says (0: not modelled)
};

void run(const BenchCodecOptions& o, bool json) {
  const Model m = load_model(o.model);
  // Chunks of whole blocks from the largest tensors of the model's main block type.
  std::vector<std::pair<GgmlType, std::span<const uint8_t>>> chunks;
  std::vector<const Tensor*> ts;
  for (const auto& t : m.tensors)
    if (t.type == GgmlType::Q8_0 || t.type == GgmlType::Q4_0) ts.push_back(&t);
  std::stable_sort(ts.begin(), ts.end(), [](auto* a, auto* b) { return a->n_bytes() > b->n_bytes(); });
  for (const Tensor* t : ts) {
    const size_t bb = traits(t->type).type_size;
    const size_t step = o.chunk_bytes / bb * bb;
    for (size_t at = 0; at + step <= t->data.size() && chunks.size() < o.chunks; at += step)
      chunks.push_back({t->type, t->data.subspan(at, step)});
    if (chunks.size() >= o.chunks) break;
  }
  if (chunks.empty()) fail_usage(o.model + ": no Q8_0/Q4_0 tensor with a whole chunk of data");
  const GgmlType type = chunks[0].first;
  size_t decoded = 0;
  for (auto& c : chunks) decoded += c.second.size();

  std::vector<Row> rows;
  // Code streams: Q8_0 -> the qs bytes (block_fields); Q4_0 -> unpacked nibbles (one per byte)
  // and the packed qs bytes (two nibbles per byte).
  struct StreamKind {
    std::string name;
    TransformId t;
    size_t index;
    bool nibbles;
  };
  std::vector<StreamKind> kinds;
  if (type == GgmlType::Q8_0) kinds = {{"Q8_0 codes (8-bit)", TransformId::block_fields, 2, false}};
  else
    kinds = {{"Q4_0 codes unpacked (4-bit)", TransformId::block_fields_unpacked, 2, true},
             {"Q4_0 codes packed (2x4-bit)", TransformId::block_fields, 2, false}};
  // The f16 scales (one per block) are small streams: their fixed per-stream set-up cost shows.
  kinds.push_back({"f16 scale low bytes", TransformId::block_fields, 0, false});
  kinds.push_back({"f16 scale high bytes", TransformId::block_fields, 1, false});
  for (const auto& k : kinds) {
    std::vector<std::vector<uint8_t>> streams;
    for (auto& c : chunks) streams.push_back(transform_split(k.t, c.first, c.second)[k.index]);
    size_t symbols = 0;
    double h0 = 0;
    for (auto& s : streams) symbols += s.size(), h0 += entropy_order0(s) * double(s.size());
    std::vector<CodecSpec> specs = {{CodecId::raw, 0},
                                    {CodecId::zstd, 19},
                                    {CodecId::rans, 0},
                                    {CodecId::rans, kRansX32},
                                    {CodecId::rans, kRansOrder1 | kRansX32}};
    if (k.nibbles) specs.push_back({CodecId::rans, kRansPack | kRansX32});
    specs.push_back({CodecId::huff, 0});
    if (!k.nibbles) specs.push_back({CodecId::huff, kHuffLow4});
    if (type != GgmlType::Q8_0 && !k.nibbles && k.index == 2) specs.push_back({CodecId::huff, kHuffNibbles});
    for (auto spec : specs) {
      std::vector<std::vector<uint8_t>> enc;
      std::vector<CodecSpec> used;
      size_t stored = 0;
      for (auto& s : streams) {
        CodecSpec sp = spec;
        enc.push_back(codec_encode(sp, s));
        used.push_back(sp);
        stored += enc.back().size();
      }
      std::vector<uint8_t> out(streams[0].size());
      const double sec = best_seconds(o.repeats, [&] {
        for (size_t i = 0; i < enc.size(); ++i) {
          out.resize(streams[i].size());
          codec_decode(used[i], enc[i], out);
        }
      });
      for (size_t i = 0; i < enc.size(); ++i) {
        out.resize(streams[i].size());
        codec_decode(used[i], enc[i], out);
        if (out != streams[i]) fail(ExitCode::internal, codec_name(spec) + " does not round-trip");
      }
      rows.push_back({k.name, codec_name(spec), 8.0 * double(stored) / double(symbols), double(symbols) / sec / 1e9,
                      h0 / double(symbols)});
      double modelled = 0;
      for (size_t i = 0; i < enc.size(); ++i) modelled += codec_decode_seconds(used[i], enc[i].size(), streams[i].size());
      rows.back().modelled_gbps = double(symbols) / modelled / 1e9;
    }
    // The join of this transform, on the whole chunks (output bytes per second).
    std::vector<std::vector<std::vector<uint8_t>>> split;
    for (auto& c : chunks) split.push_back(transform_split(k.t, c.first, c.second));
    std::vector<uint8_t> out(chunks[0].second.size());
    const double sec = best_seconds(o.repeats, [&] {
      for (size_t i = 0; i < chunks.size(); ++i) {
        std::vector<std::span<const uint8_t>> v(split[i].begin(), split[i].end());
        out.resize(chunks[i].second.size());
        transform_join(k.t, chunks[i].first, v, out);
      }
    });
    rows.push_back({k.name, "join " + std::string(transform_name(k.t)), 0, double(decoded) / sec / 1e9, 0,
                    1e-9 / transform_join_cost(k.t)});
  }
  // Whole chunks as `dcq compress --lossless` encodes them with the default floor, decoded the
  // way DcqReader::decode_chunk does (XXH3 of the stored bytes, payload, XXH3 of the output):
  // the number the chooser's model (encode_chunk's modelled_decode_seconds) must not exceed.
  {
    std::vector<EncodedChunk> enc;
    double modelled = 0;
    size_t stored = 0;
    for (auto& c : chunks) {
      enc.push_back(encode_chunk(c.first, c.second, ChunkEncodeOptions{}));
      modelled += enc.back().modelled_decode_seconds;
      stored += enc.back().payload.size();
    }
    std::vector<uint8_t> out(chunks[0].second.size());
    uint64_t sum = 0;
    const double sec = best_seconds(o.repeats, [&] {
      for (size_t i = 0; i < chunks.size(); ++i) {
        out.resize(chunks[i].second.size());
        sum += xxh3(enc[i].payload);
        decode_payload(chunks[i].first, enc[i].transform, enc[i].payload, out);
        sum += xxh3(out);
      }
    });
    for (size_t i = 0; i < chunks.size(); ++i) {
      out.resize(chunks[i].second.size());
      decode_payload(chunks[i].first, enc[i].transform, enc[i].payload, out);
      if (!std::equal(out.begin(), out.end(), chunks[i].second.begin()))
        fail(ExitCode::internal, "default chunk encoding does not round-trip");
    }
    rows.push_back({"whole chunk, default encoding", "checksums+payload", 8.0 * double(stored) / double(decoded),
                    double(decoded) / sec / 1e9 + double(sum & 1) * 0, 0, double(decoded) / modelled / 1e9});
  }
  uint64_t sink = 0;
  const double xs = best_seconds(o.repeats, [&] {
    for (auto& c : chunks) sink += xxh3(c.second);
  });
  rows.push_back({"whole chunk", "xxh3", 0, double(decoded) / xs / 1e9, double(sink & 1) * 0});

  if (json) {
    nlohmann::json j = nlohmann::json::array();
    for (auto& r : rows)
      j.push_back({{"stream", r.stream}, {"codec", r.codec}, {"bits_per_symbol", r.bits_per_symbol},
                   {"decode_gbps", r.gbps}, {"order0_bits", r.h0}, {"modelled_gbps", r.modelled_gbps}});
    print_json(j);
    return;
  }
  std::printf("%s: %zu chunks of %zu bytes (%s); one core, thread CPU time, best of %d\n", o.model.c_str(),
              chunks.size(), chunks[0].second.size(), std::string(type_name(type)).c_str(), o.repeats);
  std::printf("%-30s %-24s %10s %8s %14s %10s\n", "stream", "codec", "bits/sym", "H0", "decode GB/s", "modelled");
  for (auto& r : rows) {
    if (r.bits_per_symbol > 0)
      std::printf("%-30s %-24s %10.4f %8.4f %14.3f %10.3f\n", r.stream.c_str(), r.codec.c_str(), r.bits_per_symbol,
                  r.h0, r.gbps, r.modelled_gbps);
    else
      std::printf("%-30s %-24s %10s %8s %14.3f %10.3f\n", r.stream.c_str(), r.codec.c_str(), "", "", r.gbps,
                  r.modelled_gbps);
  }
  std::printf("(decode GB/s: symbols of output per ns for codecs; chunk bytes for the join and xxh3)\n");
}

const bool registered = register_command("bench-codec", [](CLI::App& app) {
  auto* sub = bench_group(app)->add_subcommand("codec", "Codec size and decode speed on Q8_0/Q4_0 code streams");
  auto common = add_common(sub);
  auto o = std::make_shared<BenchCodecOptions>();
  sub->add_option("MODEL", o->model, "A Q8_0 or Q4_0 model (e.g. dcq synth --preset stories110M)")->required();
  sub->add_option("--chunks", o->chunks, "How many 256 KiB chunks")->check(CLI::Range(1, 1000));
  sub->add_option("--chunk-size", o->chunk_bytes, "Chunk size in bytes")->check(CLI::Range(1024, 1 << 26));
  sub->add_option("--repeats", o->repeats, "Best of N runs")->check(CLI::Range(1, 1000));
  sub->callback([common, o] {
    common->apply();
    run(*o, common->json);
  });
});

}  // namespace
}  // namespace dcq::cli
