// Fuzz target: the .dcq reader must reject any malformed container with dcq::Error, never crash,
// never read out of bounds, never allocate from a forged size. Checksums would stop a fuzzer at
// the first byte it changes, so each input is parsed twice: as is, and with checksum checks off,
// which exercises the structural validation behind them (index, payload tables, codecs).
#include <cstdint>
#include <span>

#include "dcq/container.hpp"
#include "dcq/error.hpp"
#include "pipeline/compress_internal.hpp"

namespace {

void exercise(std::span<const uint8_t> bytes, bool verify) {
  try {
    const auto r = dcq::DcqReader::parse(bytes, "fuzz.dcq", {verify});
    const auto& ix = r.index();
    (void)r.metadata_json();
    for (size_t i = 0; i < ix.chunks.size(); ++i) {
      if (ix.chunks[i].decoded_size > (16u << 20)) continue;
      std::vector<uint8_t> out(ix.chunks[i].decoded_size);
      try {
        r.decode_chunk(i, out);
      } catch (const dcq::Error&) {
      }
    }
    if (ix.source_size <= (64u << 20)) dcq::rebuild_source(r, 1, [](std::span<const uint8_t>) {});
  } catch (const dcq::Error&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  exercise(bytes, true);
  exercise(bytes, false);
  return 0;
}
