// `dcq decompress` and `dcq verify`: rebuild the source from a .dcq in file order, checking
// every checksum on the way; decompress writes through an AtomicFile so a corrupt container
// never leaves an output behind.
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>

#include "dcq/compress.hpp"
#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "dcq/file.hpp"
#include "pipeline/compress_internal.hpp"

namespace dcq {

RebuildStats rebuild_source(const DcqReader& reader, int threads,
                            const std::function<void(std::span<const uint8_t>)>& sink,
                            const std::function<void(size_t)>& on_file) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  const auto& ix = reader.index();
  RebuildStats st;
  using State = std::unique_ptr<XXH3_state_t, decltype(&XXH3_freeState)>;
  State h(XXH3_createState(), XXH3_freeState), hf(XXH3_createState(), XXH3_freeState);
  XXH3_64bits_reset(h.get());
  XXH3_64bits_reset(hf.get());  // an update on a state never reset is undefined (it can spin)
  uint64_t total = 0, file_total = 0;
  auto emit = [&](std::span<const uint8_t> s) {
    XXH3_64bits_update(h.get(), s.data(), s.size());
    XXH3_64bits_update(hf.get(), s.data(), s.size());
    total += s.size();
    file_total += s.size();
    sink(s);
  };
  const auto extras = reader.read_blob(ix.extras, "extras");
  const size_t nt = static_cast<size_t>(std::max(1, threads));
  const size_t window = nt * 2;
  std::vector<std::vector<uint8_t>> bufs(window);
  std::vector<double> cpu(window);
  auto do_segment = [&](const DcqSegment& seg) {
    if (seg.kind == DcqSegment::extras) {
      emit(std::span<const uint8_t>(extras).subspan(seg.a, seg.b));
      return;
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
  };
  if (ix.files.empty()) {
    for (const auto& seg : ix.segments) do_segment(seg);
  } else {
    // A folder: the same stream, cut at the file boundaries, each file checked on its own so a
    // mismatch names the file.
    for (size_t fi = 0; fi < ix.files.size(); ++fi) {
      const auto& f = ix.files[fi];
      XXH3_64bits_reset(hf.get());
      file_total = 0;
      if (on_file) on_file(fi);
      for (uint32_t k = 0; k < f.n_segments; ++k) do_segment(ix.segments[f.first_segment + k]);
      if (file_total != f.size || XXH3_64bits_digest(hf.get()) != f.xxh3)
        fail(ExitCode::integrity, reader.source() + ": rebuilt file '" + f.name + "' does not match its recorded size and checksum");
    }
    if (on_file) on_file(ix.files.size());
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

namespace {

// Removes a half-built folder unless it was renamed into place.
struct TempDir {
  std::filesystem::path path;
  bool keep = false;
  ~TempDir() {
    if (keep || path.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// A folder container: every file is built in a temporary folder beside the output, which is
// renamed into place only after every checksum matched (so a corrupt container leaves nothing).
RebuildStats decompress_folder(const DcqReader& r, const DecompressOptions& o) {
  namespace fs = std::filesystem;
  const auto& ix = r.index();
  const fs::path out = o.output.has_filename() ? o.output : o.output.parent_path();
  const fs::path parent = out.parent_path().empty() ? fs::path(".") : out.parent_path();
  TempDir tmp;
  tmp.path = parent / (out.filename().string() + ".dcq-tmp." + std::to_string(::getpid()));
  std::error_code ec;
  fs::remove_all(tmp.path, ec);
  if (!fs::create_directory(tmp.path, ec) || ec)
    fail_input(o.output.string() + ": cannot create a temporary folder beside it: " + ec.message());
  std::unique_ptr<AtomicFile> file;
  const auto st = rebuild_source(
      r, o.threads, [&](std::span<const uint8_t> s) { file->write(s); },
      [&](size_t fi) {
        // The previous file is complete and its checksum matched (rebuild_source checks it
        // before moving on), so it can be committed inside the temporary folder.
        if (file) file->commit();
        file.reset();
        if (fi < ix.files.size()) file = std::make_unique<AtomicFile>(tmp.path / ix.files[fi].name, false);
      });
  if (fs::exists(out, ec)) {  // check_can_write refused it already unless --force
    const fs::path old = parent / (out.filename().string() + ".dcq-old." + std::to_string(::getpid()));
    fs::rename(out, old, ec);
    if (ec) fail_input(o.output.string() + ": cannot replace: " + ec.message());
    fs::rename(tmp.path, out, ec);
    if (ec) {
      std::error_code ec2;
      fs::rename(old, out, ec2);
      fail_input(o.output.string() + ": cannot move the rebuilt folder into place: " + ec.message());
    }
    tmp.keep = true;
    fs::remove_all(old, ec);
  } else {
    fs::rename(tmp.path, out, ec);
    if (ec) fail_input(o.output.string() + ": cannot move the rebuilt folder into place: " + ec.message());
    tmp.keep = true;
  }
  return st;
}

}  // namespace

nlohmann::json decompress(const DecompressOptions& o) {
  check_can_write(o.output, o.force);
  const auto r = DcqReader::open(o.input);
  (void)r.metadata_json();  // checks the metadata blob too: no corruption goes unreported
  RebuildStats st;
  if (r.index().source_format == DcqSourceFormat::folder) {
    st = decompress_folder(r, o);
  } else {
    AtomicFile out(o.output, o.force);
    st = rebuild_source(r, o.threads, [&](std::span<const uint8_t> s) { out.write(s); });
    out.commit();
  }
  auto j = stats_json(r, st);
  j["input"] = o.input.string();
  j["output"] = o.output.string();
  if (!r.index().files.empty()) {
    j["files"] = nlohmann::json::array();
    for (const auto& f : r.index().files) j["files"].push_back({{"name", f.name}, {"size", f.size}});
  }
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
  if (!r.index().files.empty()) {
    j["files"] = nlohmann::json::array();  // each one's size and checksum matched
    for (const auto& f : r.index().files) j["files"].push_back({{"name", f.name}, {"size", f.size}});
  }
  j["status"] = "ok";
  return j;
}

}  // namespace dcq
