// Codecs: raw, zstd, lz4 (HC encoder, safe decoder) and htscodecs' static rANS 4x16/32x16.
#include <htscodecs/rANS_static4x16.h>
#include <lz4.h>
#include <lz4hc.h>
#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "dcq/codec.hpp"
#include "dcq/error.hpp"
#include "huff.hpp"

namespace dcq {
namespace {

// CAT (0x20) is chosen by htscodecs itself for tiny or incompressible input.
constexpr uint16_t kRansAllowedBits = kRansOrder1 | kRansX32 | 0x20 | kRansRle | kRansPack;

[[noreturn]] void corrupt(CodecSpec spec, const std::string& what) {
  fail(ExitCode::integrity, codec_name(spec) + " stream does not decode: " + what);
}

struct ZstdCtx {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~ZstdCtx() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};
ZstdCtx& zstd_ctx() {
  // One context per thread: contexts are not thread-safe and are costly to create per chunk.
  thread_local ZstdCtx ctx;
  return ctx;
}

}  // namespace

std::string codec_name(CodecSpec spec) {
  switch (spec.id) {
    case CodecId::raw: return "raw";
    case CodecId::zstd: return "zstd-" + std::to_string(spec.param);
    case CodecId::lz4: return "lz4";
    case CodecId::rans: {
      std::string s = (spec.param & kRansOrder1) ? "rans-o1" : "rans-o0";
      if (spec.param & kRansX32) s += "-x32";
      if (spec.param & kRansRle) s += "-rle";
      if (spec.param & kRansPack) s += "-pack";
      return s;
    }
    case CodecId::huff:
      if (spec.param == kHuffNibbles) return "huff-nib";
      return spec.param ? "huff-lo" + std::to_string(spec.param) : "huff";
  }
  return "codec-" + std::to_string(static_cast<int>(spec.id));
}

bool codec_valid(uint8_t id, uint16_t param) {
  switch (static_cast<CodecId>(id)) {
    case CodecId::raw: return param == 0;
    case CodecId::zstd: return param >= 1 && param <= 22;
    case CodecId::lz4: return param == 0;
    case CodecId::rans: return (param & ~kRansAllowedBits) == 0;
    case CodecId::huff: return huff::param_valid(param);
  }
  return false;
}

std::vector<uint8_t> codec_encode(CodecSpec& spec, std::span<const uint8_t> in) {
  DCQ_ASSERT(codec_valid(static_cast<uint8_t>(spec.id), spec.param));
  std::vector<uint8_t> out;
  switch (spec.id) {
    case CodecId::raw: out.assign(in.begin(), in.end()); break;
    case CodecId::zstd: {
      out.resize(ZSTD_compressBound(in.size()));
      auto& ctx = zstd_ctx();
      ZSTD_CCtx_reset(ctx.c, ZSTD_reset_session_and_parameters);
      ZSTD_CCtx_setParameter(ctx.c, ZSTD_c_compressionLevel, spec.param);
      ZSTD_CCtx_setParameter(ctx.c, ZSTD_c_checksumFlag, 0);  // the container checksums
      const size_t n = ZSTD_compress2(ctx.c, out.data(), out.size(), in.data(), in.size());
      DCQ_ASSERT(!ZSTD_isError(n));
      out.resize(n);
      break;
    }
    case CodecId::lz4: {
      DCQ_ASSERT(in.size() <= LZ4_MAX_INPUT_SIZE);
      out.resize(static_cast<size_t>(LZ4_compressBound(static_cast<int>(in.size()))));
      const int n = LZ4_compress_HC(reinterpret_cast<const char*>(in.data()), reinterpret_cast<char*>(out.data()),
                                    static_cast<int>(in.size()), static_cast<int>(out.size()), 9);
      DCQ_ASSERT(n > 0 || in.empty());
      out.resize(static_cast<size_t>(n));
      break;
    }
    case CodecId::rans: {
      DCQ_ASSERT(in.size() < (1u << 31));
      unsigned int cap = rans_compress_bound_4x16(static_cast<unsigned>(in.size()), spec.param);
      out.resize(cap);
      unsigned int n = cap;
      // htscodecs takes a non-const input pointer but does not write through it.
      auto* r = rans_compress_to_4x16(const_cast<uint8_t*>(in.data()), static_cast<unsigned>(in.size()),
                                      out.data(), &n, spec.param);
      DCQ_ASSERT(r != nullptr && n >= 1);
      out.resize(n);
      spec.param = out[0];  // htscodecs may drop flags that do not help (or pick CAT)
      break;
    }
    case CodecId::huff: out = huff::encode(spec.param, in); break;
  }
  return out;
}

void codec_decode(CodecSpec spec, std::span<const uint8_t> in, std::span<uint8_t> out) {
  if (!codec_valid(static_cast<uint8_t>(spec.id), spec.param)) corrupt(spec, "unknown codec or parameter");
  switch (spec.id) {
    case CodecId::raw:
      if (in.size() != out.size()) corrupt(spec, "raw size differs from the decoded size");
      if (!in.empty()) std::memcpy(out.data(), in.data(), in.size());
      return;
    case CodecId::zstd: {
      const auto content = ZSTD_getFrameContentSize(in.data(), in.size());
      if (content != out.size()) corrupt(spec, "frame content size differs from the decoded size");
      const size_t n = ZSTD_decompressDCtx(zstd_ctx().d, out.data(), out.size(), in.data(), in.size());
      if (ZSTD_isError(n) || n != out.size()) corrupt(spec, ZSTD_isError(n) ? ZSTD_getErrorName(n) : "short frame");
      return;
    }
    case CodecId::lz4: {
      if (in.size() > LZ4_MAX_INPUT_SIZE || out.size() > LZ4_MAX_INPUT_SIZE) corrupt(spec, "block too large");
      if (out.empty() && in.size() <= 1) return;
      const int n = LZ4_decompress_safe(reinterpret_cast<const char*>(in.data()), reinterpret_cast<char*>(out.data()),
                                        static_cast<int>(in.size()), static_cast<int>(out.size()));
      if (n < 0 || static_cast<size_t>(n) != out.size()) corrupt(spec, "malformed block");
      return;
    }
    case CodecId::rans: {
      if (in.empty() || in.size() >= (1u << 31) || out.size() >= (1u << 31)) corrupt(spec, "bad stream size");
      // The first stored byte is htscodecs' own order byte: it must match what the index says.
      if (in[0] != (spec.param & 0xFF)) corrupt(spec, "order byte differs from the codec parameter");
      unsigned int n = static_cast<unsigned>(out.size());
      if (out.empty()) {
        // htscodecs needs a buffer even for nothing; decode into a scratch byte.
        uint8_t scratch[1];
        n = 0;
        auto* r = rans_uncompress_to_4x16(const_cast<uint8_t*>(in.data()), static_cast<unsigned>(in.size()), scratch, &n);
        if (!r || n != 0) corrupt(spec, "malformed stream");
        return;
      }
      auto* r = rans_uncompress_to_4x16(const_cast<uint8_t*>(in.data()), static_cast<unsigned>(in.size()), out.data(), &n);
      if (!r || n != out.size()) corrupt(spec, "malformed stream");
      return;
    }
    case CodecId::huff: huff::decode(spec.param, in, out); return;
  }
  corrupt(spec, "unknown codec");
}

double codec_decode_speed(CodecSpec spec) {
  // Output bytes per second of one stream on one core of the reference machine (2-core AVX-512
  // VM, htscodecs 1.3 with its run-time SIMD choice, zstd 1.5.4), measured on 256 KiB streams
  // of Q4_0/Q8_0 codes (docs/benchmarks.md, "Lossless"); rounded down. Both rANS and zstd's
  // Huffman literals top out near 1.5 GB/s on 8-bit symbols here.
  switch (spec.id) {
    case CodecId::raw: return 30e9;
    case CodecId::lz4: return 2.5e9;
    case CodecId::zstd: return 1.4e9;
    case CodecId::rans: {
      if (spec.param & 0x20) return 30e9;  // CAT: a copy
      const bool o1 = spec.param & kRansOrder1, x32 = spec.param & kRansX32;
      double s = o1 ? (x32 ? 0.95e9 : 0.5e9) : (x32 ? 1.45e9 : 0.75e9);
      if (spec.param & kRansPack) s *= 1.3;  // half the symbols to decode, then a cheap unpack
      if (spec.param & kRansRle) s *= 0.6;
      return s;
    }
    case CodecId::huff: return 1.0e9;  // 8-bit symbols, one per lookup: the slowest case
  }
  return 1e9;
}

double codec_decode_speed(CodecSpec spec, size_t stored_bytes, size_t decoded_bytes) {
  if (spec.id == CodecId::zstd && decoded_bytes > 0) {
    // zstd's literals are Huffman coded with a multi-symbol table too: measured 1.42 GB/s at 7.7
    // bits per byte (Q8_0 codes), 2.5 at 3.8 (unpacked Q4_0 codes), 2.0 at 3.3 on a 14.5 KB
    // stream of f16 scale high bytes including its set-up (docs/bench_codec.md).
    const double bits = 8.0 * double(stored_bytes) / double(decoded_bytes);
    return codec_decode_speed(spec) * std::clamp(1.0 + 0.2 * (7.7 - bits), 1.0, 1.75);
  }
  if (spec.id != CodecId::huff || decoded_bytes == 0) return codec_decode_speed(spec);
  // Packed nibbles: one lookup per output byte whatever the code lengths; measured 1.75 GB/s of
  // packed Q4_0 codes (docs/bench_codec.md, 2026-11-29), rounded down.
  if (spec.param == kHuffNibbles) return 1.6e9;
  // One 2048-entry lookup costs about the same whatever it yields (measured ~1.1e9 lookups/s
  // per core on the reference machine, docs/bench_codec.md) and yields up to 3 symbols; it
  // yields more the shorter the codes. Fitted on 256 KiB chunks: 7.7 bits -> 1.15 GB/s,
  // 3.8 bits (Q4_0 codes) -> 2.8 GB/s, rounded down. With raw low bits the coded part is the
  // high part only, and merging the low nibbles costs ~10 %.
  double bits = 8.0 * double(stored_bytes) / double(decoded_bytes);
  if (spec.param) bits -= spec.param;
  const double per_lookup = std::clamp(1.0 + (8.0 - bits) * 0.35, 1.0, 3.0);
  return 1.0e9 * per_lookup * (spec.param ? 0.9 : 1.0);
}

namespace {

// Fixed cost of decoding one stream, whatever its length: reading and building the tables. On a
// 256 KiB chunk this is noise for the code stream but not for the two f16 scale streams (7-15 KB
// each), where it can exceed the per-byte cost. Fitted with `dcq bench codec` on the scale
// streams of the stories110M-shape Q8_0/Q4_0 synth (7710 and 14563 bytes; docs/bench_codec.md):
// time of the stream minus its bytes at codec_decode_speed, the larger of the two, rounded up.
double codec_setup_seconds(CodecSpec spec) {
  switch (spec.id) {
    case CodecId::raw: return 0;  // used in place
    case CodecId::lz4: return 0.2e-6;
    case CodecId::zstd: return 2e-6;  // frame header + literal Huffman table
    case CodecId::rans:
      if (spec.param & 0x20) return 0.2e-6;  // CAT: a copy
      if (spec.param & kRansOrder1) return 30e-6;  // up to 256 frequency tables
      return (spec.param & kRansX32) ? 15e-6 : 7e-6;  // 32 interleaved states cost more to start
    case CodecId::huff: return 6e-6;  // code lengths, canonical codes, 2048/4096-entry table
  }
  return 0;
}

}  // namespace

double codec_decode_seconds(CodecSpec spec, size_t stored_bytes, size_t decoded_bytes) {
  if (decoded_bytes == 0) return 0;
  return codec_setup_seconds(spec) + double(decoded_bytes) / codec_decode_speed(spec, stored_bytes, decoded_bytes);
}

double checksum_seconds(size_t stored_bytes, size_t decoded_bytes) {
  // XXH3-64 (libxxhash) measured 13-21 GB/s per core on 256 KiB chunks in cache, depending on
  // the load of the machine. The stored bytes come from a mapped file, whose page faults the
  // reader pays in the same thread: 14 GB/s for them and 18 GB/s for the decoded bytes.
  return double(stored_bytes) / 14e9 + double(decoded_bytes) / 18e9;
}

uint64_t xxh3(std::span<const uint8_t> s) { return XXH3_64bits(s.data(), s.size()); }

double entropy_order0(std::span<const uint8_t> s) {
  if (s.empty()) return 0;
  std::array<uint64_t, 256> f{};
  for (uint8_t b : s) ++f[b];
  double h = 0, n = static_cast<double>(s.size());
  for (auto c : f)
    if (c) h -= double(c) / n * std::log2(double(c) / n);
  return h;
}

double entropy_order1(std::span<const uint8_t> s) {
  if (s.size() < 2) return entropy_order0(s);
  auto f = std::make_unique<std::array<uint32_t, 65536>>();
  f->fill(0);
  std::array<uint64_t, 256> ctx{};
  for (size_t i = 1; i < s.size(); ++i) {
    ++(*f)[size_t(s[i - 1]) << 8 | s[i]];
    ++ctx[s[i - 1]];
  }
  double h = 0;
  const double n = double(s.size() - 1);
  for (size_t c = 0; c < 256; ++c) {
    if (!ctx[c]) continue;
    for (size_t x = 0; x < 256; ++x) {
      const double k = (*f)[c << 8 | x];
      if (k) h -= k / n * std::log2(k / double(ctx[c]));
    }
  }
  return h;
}

}  // namespace dcq
