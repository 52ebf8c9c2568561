// `dcq decompress` and `dcq verify`: rebuild the source from a .dcq in file order, checking
// every checksum on the way; decompress writes through an AtomicFile so a corrupt container
// never leaves an output behind.
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <memory>

#include "dcq/compress.hpp"
#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "pipeline/compress_internal.hpp"

namespace dcq {

RebuildStats rebuild_source(const DcqReader& reader, int threads,
                            const std::function<void(std::span<const uint8_t>)>& sink) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const auto& ix = reader.index();
  RebuildStats st;
  std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)> h(XXH3_createState(), XXH3_freeState);
  XXH3_64bits_reset(h.get());
  uint64_t total = 0;
  auto emit = [&](std::span<const uint8_t> s) {
    XXH3_64bits_update(h.get(), s.data(), s.size());
    total += s.size();
    sink(s);
  };
  const auto extras = reader.read_blob(ix.extras, "extras");
  const size_t nt = static_cast<size_t>(std::max(1, threads));
  const size_t window = nt * 2;
  std::vector<std::vector<uint8_t>> bufs(window);
  std::vector<double> cpu(window);
  for (const auto& seg : ix.segments) {
    if (seg.kind == DcqSegment::extras) {
      emit(std::span<const uint8_t>(extras).subspan(seg.a, seg.b));
      continue;
    }
    const auto* t = &ix.tensors[seg.a];
    if (t->duplicate_of != kDcqNoDuplicate) t = &ix.tensors[t->duplicate_of];
    for (uint32_t start = 0; start < t->n_chunks; start += static_cast<uint32_t>(window)) {
      const size_t n = std::min<size_t>(window, t->n_chunks - start);
      parallel_for(n, nt, [&](size_t k) {
        const size_t ci = t->first_chunk + start + k;
        bufs[k].resize(ix.chunks[ci].decoded_size);
        const double c0 = thread_cpu_seconds();
        reader.decode_chunk(ci, bufs[k]);
        cpu[k] = thread_cpu_seconds() - c0;
      });
      for (size_t k = 0; k < n; ++k) {
        emit(bufs[k]);
        st.decoded_bytes += bufs[k].size();
        st.decode_cpu_seconds += cpu[k];
      }
    }
  }
  if (total != ix.source_size || XXH3_64bits_digest(h.get()) != ix.source_xxh3)
    fail(ExitCode::integrity, reader.source() + ": rebuilt source does not match its recorded size and checksum");
  st.wall_seconds = std::chrono::duration<double>(clock::now() - t0).count();
  return st;
}

namespace {

nlohmann::json stats_json(const DcqReader& r, const RebuildStats& st) {
  return {{"source_bytes", r.index().source_size},
          {"container_bytes", r.file_size()},
          {"ratio", double(r.index().source_size) / double(r.file_size())},
          {"tensors", r.index().tensors.size()},
          {"chunks", r.index().chunks.size()},
          {"decoded_tensor_bytes", st.decoded_bytes},
          {"decode_cpu_seconds", st.decode_cpu_seconds},
          {"decode_gbps_per_core", st.decode_cpu_seconds > 0 ? double(st.decoded_bytes) / st.decode_cpu_seconds / 1e9 : 0.0},
          {"seconds", st.wall_seconds}};
}

}  // namespace

nlohmann::json decompress(const DecompressOptions& o) {
  check_can_write(o.output, o.force);
  const auto r = DcqReader::open(o.input);
  (void)r.metadata_json();  // checks the metadata blob too: no corruption goes unreported
  AtomicFile out(o.output, o.force);
  const auto st = rebuild_source(r, o.threads, [&](std::span<const uint8_t> s) { out.write(s); });
  out.commit();
  auto j = stats_json(r, st);
  j["input"] = o.input.string();
  j["output"] = o.output.string();
  return j;
}

nlohmann::json verify(const VerifyOptions& o) {
  const auto r = DcqReader::open(o.input);
  const auto meta = r.metadata_json();
  if (!nlohmann::json::accept(meta)) fail(ExitCode::integrity, o.input.string() + ": metadata is not valid JSON");
  const auto st = rebuild_source(r, o.threads, [](std::span<const uint8_t>) {});
  auto j = stats_json(r, st);
  j["input"] = o.input.string();
  j["format_version"] = r.format_version();
  j["status"] = "ok";
  return j;
}

}  // namespace dcq
