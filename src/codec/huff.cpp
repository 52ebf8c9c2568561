// Codec 4 "huff" (docs/format.md, "Codecs"): length-limited canonical Huffman, four interleaved
// bit streams, multi-symbol table decoding.
//
// Why our own coder: htscodecs rANS and zstd's Huffman both top out near 1.5 GB/s on these
// streams, before checksums and transform joins. Quantized codes have small alphabets (4/5-bit
// codes unpacked one per byte) or smooth 8-bit ones, so a code limited to 11 bits lets one
// 2048-entry table lookup emit up to three symbols, and four independent streams keep the
// table-load latency off the critical path. For 8-bit codes whose low bits are nearly uniform
// (Q8_0) the low nibble can be stored raw (param 4): only the high nibble is Huffman coded, so the
// multi-symbol table applies there too, at almost no cost in size.
#include "huff.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <string>

#include "dcq/error.hpp"

namespace dcq::huff {
namespace {

constexpr uint32_t kTableSize = 1u << kMaxLen;
constexpr uint32_t kTableMask = kTableSize - 1;
constexpr uint8_t kKindConstant = 0, kKindHuffman = 1;

[[noreturn]] void corrupt(const std::string& what) {
  fail(ExitCode::integrity, "huff stream does not decode: " + what);
}

// Reads the nsym 4-bit code lengths that follow the 2-byte stream header into `lens` and checks
// them: each <= max_len, a zero padding nibble, and a complete code (Kraft sum exactly 1), so
// every table entry is filled and no lookup can hit a hole. Shared by both stream layouts.
void read_code_lengths(std::span<const uint8_t> in, size_t nsym, unsigned max_len, uint8_t* lens) {
  uint32_t kraft = 0;  // in units of 2^-max_len
  unsigned nonzero = 0;
  for (size_t s = 0; s < nsym; ++s) {
    const unsigned len = (in[2 + s / 2] >> (4 * (s & 1))) & 15;
    if (len > max_len) corrupt("code length above the limit");
    if (len) kraft += 1u << (max_len - len), ++nonzero;
    lens[s] = static_cast<uint8_t>(len);
  }
  if ((nsym & 1) && (in[2 + nsym / 2] >> 4) != 0) corrupt("non-zero padding nibble");
  if (nonzero < 2 || kraft != (1u << max_len)) corrupt("code lengths do not form a complete code");
}

uint32_t reverse_bits(uint32_t code, unsigned len) {
  uint32_t r = 0;
  for (unsigned i = 0; i < len; ++i) r |= ((code >> i) & 1u) << (len - 1 - i);
  return r;
}

// Canonical codes (MSB-first, as Huffman codes are usually written), ordered by (length,
// symbol); returned bit-reversed because the streams are read least-significant bit first.
std::vector<uint32_t> canonical_reversed(std::span<const uint8_t> lens) {
  std::vector<uint32_t> codes(lens.size(), 0);
  uint32_t code = 0;
  unsigned prev = 0;
  for (unsigned len = 1; len <= kMaxLen; ++len)
    for (size_t s = 0; s < lens.size(); ++s) {
      if (lens[s] != len) continue;
      code <<= (len - prev);
      prev = len;
      codes[s] = reverse_bits(code, len);
      ++code;
    }
  return codes;
}

// Little-endian u32 at `at`; the caller has checked that 4 bytes are there.
uint32_t get_u32(std::span<const uint8_t> in, size_t at) {
  return uint32_t(in[at]) | uint32_t(in[at + 1]) << 8 | uint32_t(in[at + 2]) << 16 | uint32_t(in[at + 3]) << 24;
}

// Little-endian bit writer for one stream.
struct BitWriter {
  std::vector<uint8_t> bytes;
  uint64_t acc = 0;
  unsigned n = 0;
  void put(uint32_t bits, unsigned len) {
    acc |= uint64_t(bits) << n;
    n += len;
    while (n >= 8) {
      bytes.push_back(uint8_t(acc));
      acc >>= 8;
      n -= 8;
    }
  }
  void flush() {
    if (n) bytes.push_back(uint8_t(acc));
    acc = 0;
    n = 0;
  }
};

// Segment k of the n output symbols: [begin, end). Streams 0..2 take n/4 symbols, stream 3 the rest.
size_t seg_begin(size_t n, unsigned k) { return k * (n / kStreams); }
size_t seg_end(size_t n, unsigned k) { return k + 1 == kStreams ? n : (k + 1) * (n / kStreams); }

size_t low_bytes(size_t n, unsigned low_bits) { return (n * low_bits + 7) / 8; }

struct Tables {
  // single[i]: symbol | length << 8 of the one code that the low bits of i start with.
  std::array<uint16_t, kTableSize> single;
  // multi[i]: bits 0-5 = bits consumed (<= kMaxLen); bytes 3, 2, 1 = the first, second, third
  // symbol; bits 62-63 = how many symbols. Bytes 0-3 are written with one 4-byte store ending at
  // the output cursor, which moves down (see step_fast), so the first symbol lands highest. The
  // layout makes each field one instruction away: shift by the entry (x86 masks the count to 6
  // bits), store its low half, shift it right by 62.
  std::array<uint64_t, kTableSize> multi;
};

void build_tables(std::span<const uint8_t> lens, Tables& t) {
  const auto codes = canonical_reversed(lens);
  for (size_t s = 0; s < lens.size(); ++s) {
    const unsigned len = lens[s];
    if (!len) continue;
    for (uint32_t fill = 0; fill < (1u << (kMaxLen - len)); ++fill)
      t.single[codes[s] | fill << len] = static_cast<uint16_t>(s | len << 8);
  }
  for (uint32_t i = 0; i < kTableSize; ++i) {
    unsigned used = t.single[i] >> 8, count = 1;
    uint32_t e = uint32_t(t.single[i] & 0xFF) << 24;
    while (count < 3) {
      // The symbol after `used` bits is known only if its whole code lies within the index.
      const uint16_t next = t.single[i >> used];
      const unsigned len = next >> 8;
      if (used + len > kMaxLen) break;
      e |= uint32_t(next & 0xFF) << (24 - 8 * count);
      used += len;
      ++count;
    }
    t.multi[i] = uint64_t(e | used) | uint64_t(count) << 62;
  }
}

// One stream's cursor: bits not yet consumed in `bits` (the lowest `avail` are valid), `ip` the
// next byte not yet counted in `avail`, `op` one past the next output position (filled downward).
struct Cursor {
  uint64_t bits = 0;
  unsigned avail = 0;
  const uint8_t* ip = nullptr;
  const uint8_t* begin = nullptr;
  const uint8_t* end = nullptr;
  uint8_t* op = nullptr;
  uint8_t* floor = nullptr;  // first output position of the segment
};

// The fast path reads 8 stream bytes as one integer: that is their little-endian value only on a
// little-endian host (all targets dcq builds for).
static_assert(std::endian::native == std::endian::little);

inline uint64_t load_le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

// Fast-path state of one stream: only three registers, so four streams fit the x86-64 register
// file. `bits` holds the next unconsumed bits with a sentinel 1 just above them (after a refill:
// 56 bits, sentinel at bit 56); counting its leading zeros at the next refill tells how many bits
// the lookups consumed, so the lookups themselves need not count.
struct Fast {
  uint64_t bits;
  size_t pos;   // bit position in the stream of bits' bit 0 at the last refill
  uint8_t* op;  // one past the next output position (filled downward)
};
constexpr uint64_t kSentinel = uint64_t{1} << 56;

// Needs 8 readable bytes at begin + pos / 8 after the update.
inline void refill_fast(Fast& f, const uint8_t* begin) {
  f.pos += static_cast<size_t>(__builtin_clzll(f.bits) - 7);
  f.bits = ((load_le64(begin + (f.pos >> 3)) >> (f.pos & 7)) & (kSentinel - 1)) | kSentinel;
}

inline size_t fast_position(const Fast& f) { return f.pos + static_cast<size_t>(__builtin_clzll(f.bits) - 7); }

inline void step_fast(Fast& f, const uint64_t* multi) {
  const uint64_t e = multi[f.bits & kTableMask];
  const auto low = static_cast<uint32_t>(e);
  f.bits >>= (e & 63);
  std::memcpy(f.op - 4, &low, 4);
  f.op -= e >> 62;
}

// The rest of one stream, one symbol at a time, every read checked.
void decode_tail(Cursor& c, const Tables& t) {
  while (c.op > c.floor) {
    while (c.avail <= 56 && c.ip < c.end) {
      c.bits |= uint64_t(*c.ip++) << c.avail;
      c.avail += 8;
    }
    const uint16_t e = t.single[c.bits & kTableMask];
    const unsigned len = e >> 8;
    if (len > c.avail) corrupt("a bit stream ends early");
    c.bits >>= len;
    c.avail -= len;
    *--c.op = static_cast<uint8_t>(e);
  }
  // Exactly the stream's bytes were needed, and the padding bits of the last one are zero.
  const size_t size = size_t(c.end - c.begin);
  const size_t pos = size_t(c.ip - c.begin) * 8 - c.avail;
  if ((pos + 7) / 8 != size) corrupt("a bit stream is longer than its symbols");
  if (c.avail >= 8 || (c.bits & ((uint64_t{1} << c.avail) - 1)) != 0) corrupt("non-zero padding bits");
}

void decode_symbols(const Tables& t, std::array<Cursor, kStreams>& cs) {
  const uint64_t* multi = t.multi.data();
  Fast f[kStreams];
  for (unsigned k = 0; k < kStreams; ++k) f[k] = {kSentinel, 0, cs[k].op};
  // The fast loop may run while every stream has 8 bytes to load at its position (checked on
  // the position before the refill; the refill consumed at most 55 bits since) and 16 output
  // positions left.
  auto ok = [&](unsigned k) {
    const size_t size = size_t(cs[k].end - cs[k].begin);
    return size >= 16 && fast_position(f[k]) / 8 + 8 <= size && f[k].op - cs[k].floor >= 16;
  };
  // Four streams advance in lock step so the four table loads of a step overlap. Each group
  // refills (56 bits) and then takes five lookups of at most kMaxLen = 11 bits (<= 55) and at
  // most 3 symbols each (15 symbols, the 4-byte store reaching 16 below the cursor).
  static_assert(5 * kMaxLen < 56);
  Fast f0 = f[0], f1 = f[1], f2 = f[2], f3 = f[3];
  const uint8_t *b0 = cs[0].begin, *b1 = cs[1].begin, *b2 = cs[2].begin, *b3 = cs[3].begin;
  while (true) {
    f[0] = f0, f[1] = f1, f[2] = f2, f[3] = f3;
    if (!(ok(0) && ok(1) && ok(2) && ok(3))) break;
    refill_fast(f0, b0), refill_fast(f1, b1), refill_fast(f2, b2), refill_fast(f3, b3);
    for (int k = 0; k < 5; ++k) {
      step_fast(f0, multi), step_fast(f1, multi), step_fast(f2, multi), step_fast(f3, multi);
    }
  }
  for (unsigned k = 0; k < kStreams; ++k) {
    // Hand over to the checked tail: byte-aligned cursor plus the partial byte.
    Cursor& c = cs[k];
    const size_t pos = fast_position(f[k]);
    c.op = f[k].op;
    c.ip = c.begin + pos / 8;
    c.bits = 0;
    c.avail = 0;
    if ((pos & 7) && c.ip < c.end) {
      c.bits = *c.ip++ >> (pos & 7);
      c.avail = 8 - unsigned(pos & 7);
    }
    decode_tail(c, t);
  }
}


// ---- Packed nibbles (param kNibbles) ----
//
// Every output byte is two 4-bit symbols, decoded straight into the byte: codes are limited to
// kNibMaxLen = 6 bits, so any two fit one 12-bit table index and every lookup yields exactly one
// output byte. A fixed yield per lookup means the eight streams advance in lock step with one
// shared output offset (constant store offsets, no per-lookup count), and no unpacked stream or
// nibble join exists at all.

constexpr uint32_t kNibTableSize = 1u << (2 * kNibMaxLen);
constexpr uint32_t kNibSingleSize = 1u << kNibMaxLen;

struct NibTables {
  std::array<uint8_t, kNibSingleSize> single;  // symbol | length << 4 (length <= 6 needs 3 bits)
  // pair[i]: bits 0-7 = bits consumed by the two codes the low bits of i start with; bits 8-15
  // = the packed byte (first-coded symbol, the high nibble, in bits 12-15).
  std::array<uint16_t, kNibTableSize> pair;
};

void build_nib_tables(std::span<const uint8_t> lens, NibTables& t) {
  const auto codes = canonical_reversed(lens);
  for (size_t s = 0; s < lens.size(); ++s) {
    const unsigned len = lens[s];
    if (!len) continue;
    for (uint32_t fill = 0; fill < (1u << (kNibMaxLen - len)); ++fill)
      t.single[codes[s] | fill << len] = static_cast<uint8_t>(s | len << 4);
  }
  // A complete code: the pairs' entries tile the table exactly.
  for (size_t a = 0; a < lens.size(); ++a) {
    if (!lens[a]) continue;
    for (size_t b = 0; b < lens.size(); ++b) {
      if (!lens[b]) continue;
      const unsigned used = lens[a] + lens[b];
      const uint32_t base = codes[a] | codes[b] << lens[a];
      const auto e = static_cast<uint16_t>(used | (a << 4 | b) << 8);
      for (uint32_t fill = 0; fill < (1u << (2 * kNibMaxLen - used)); ++fill) t.pair[base | fill << used] = e;
    }
  }
}

size_t nib_seg_begin(size_t n, unsigned k) { return k * (n / kNibStreams); }
size_t nib_seg_end(size_t n, unsigned k) { return k + 1 == kNibStreams ? n : (k + 1) * (n / kNibStreams); }

// The rest of one stream, one byte (two single-symbol lookups) at a time, every read checked.
void decode_nib_tail(Cursor& c, const NibTables& t) {
  constexpr uint64_t mask = kNibSingleSize - 1;
  while (c.op > c.floor) {
    while (c.avail <= 56 && c.ip < c.end) {
      c.bits |= uint64_t(*c.ip++) << c.avail;
      c.avail += 8;
    }
    const uint8_t hi = t.single[c.bits & mask];
    const unsigned lh = hi >> 4;
    const uint8_t lo = t.single[(c.bits >> lh) & mask];
    const unsigned len = lh + (lo >> 4);
    if (len > c.avail) corrupt("a bit stream ends early");
    c.bits >>= len;
    c.avail -= len;
    *--c.op = static_cast<uint8_t>((hi & 15) << 4 | (lo & 15));
  }
  const size_t size = size_t(c.end - c.begin);
  const size_t pos = size_t(c.ip - c.begin) * 8 - c.avail;
  if ((pos + 7) / 8 != size) corrupt("a bit stream is longer than its symbols");
  if (c.avail >= 8 || (c.bits & ((uint64_t{1} << c.avail) - 1)) != 0) corrupt("non-zero padding bits");
}

void decode_nib_streams(const NibTables& t, std::array<Cursor, kNibStreams>& cs, size_t n) {
  constexpr unsigned S = kNibStreams;
  // Each group refills every stream (56 bits) and takes kSteps lookups of at most 12 bits.
  constexpr unsigned kSteps = 4;
  static_assert(kSteps * 2 * kNibMaxLen <= 56);
  const uint16_t* pair = t.pair.data();
  const size_t q = n / S;  // bytes in segments 0..S-2; the last one has at least as many
  uint64_t bits[S];
  size_t pos[S];
  for (unsigned k = 0; k < S; ++k) bits[k] = kSentinel, pos[k] = 0;
  // Bytes decoded per stream so far (the same for all). The u16 store of a step also writes the
  // byte below its output: a group needs kSteps + 1 bytes left in every segment.
  size_t done = 0;
  uint8_t* ends[S];
  for (unsigned k = 0; k < S; ++k) ends[k] = cs[k].op;
  auto room = [&](unsigned k) {
    const size_t size = size_t(cs[k].end - cs[k].begin);
    const size_t p = pos[k] + static_cast<size_t>(__builtin_clzll(bits[k]) - 7);
    return size >= 8 + p / 8 ? (size - 8 - p / 8) / (kSteps * 2 * kNibMaxLen / 8) + 1 : 0;
  };
  while (true) {
    // How many groups every stream can take without a check: a group reads 8 bytes at its
    // position and consumes at most 6; the output needs kSteps + 1 bytes left per group.
    size_t groups = q > done + kSteps ? (q - done - 1) / kSteps : 0;
    for (unsigned k = 0; k < S; ++k) groups = std::min(groups, room(k));
    if (groups == 0) break;
    for (size_t g = 0; g < groups; ++g) {
    for (unsigned k = 0; k < S; ++k) {
      Fast f{bits[k], pos[k], nullptr};
      refill_fast(f, cs[k].begin);
      bits[k] = f.bits, pos[k] = f.pos;
    }
    for (unsigned j = 0; j < kSteps; ++j) {
      for (unsigned k = 0; k < S; ++k) {
        const uint16_t e = pair[bits[k] & (kNibTableSize - 1)];
        bits[k] >>= (e & 63);
        std::memcpy(ends[k] - done - 2 - j, &e, 2);
      }
    }
    done += kSteps;
    }
  }
  for (unsigned k = 0; k < S; ++k) {
    Cursor& c = cs[k];
    const size_t p = pos[k] + static_cast<size_t>(__builtin_clzll(bits[k]) - 7);
    c.op -= done;
    c.ip = c.begin + p / 8;
    c.bits = 0;
    c.avail = 0;
    if ((p & 7) && c.ip < c.end) {
      c.bits = *c.ip++ >> (p & 7);
      c.avail = 8 - unsigned(p & 7);
    }
    decode_nib_tail(c, t);
  }
}

std::vector<uint8_t> encode_nibbles(std::span<const uint8_t> in) {
  const size_t n = in.size();
  DCQ_ASSERT(n < (size_t{1} << 31));
  std::vector<uint64_t> freq(16, 0);
  for (uint8_t b : in) ++freq[b & 15], ++freq[b >> 4];
  size_t used = 0, nsym = 0;
  for (size_t s = 0; s < 16; ++s)
    if (freq[s]) ++used, nsym = s + 1;
  std::vector<uint8_t> out;
  if (used <= 1) return {kKindConstant, static_cast<uint8_t>(nsym ? nsym - 1 : 0)};
  freq.resize(nsym);
  const auto lens = limited_lengths(freq, kNibMaxLen);
  const auto codes = canonical_reversed(lens);
  out.push_back(kKindHuffman);
  out.push_back(static_cast<uint8_t>(nsym - 1));
  for (size_t s = 0; s < nsym; s += 2)
    out.push_back(static_cast<uint8_t>(lens[s] | (s + 1 < nsym ? lens[s + 1] << 4 : 0)));
  const size_t sizes_at = out.size();
  out.resize(out.size() + kNibSizesBytes);
  for (unsigned k = 0; k < kNibStreams; ++k) {
    BitWriter w;
    // Bytes from the segment's last to its first; of each byte the high nibble first.
    for (size_t i = nib_seg_end(n, k); i > nib_seg_begin(n, k); --i) {
      const unsigned hi = in[i - 1] >> 4, lo = in[i - 1] & 15;
      w.put(codes[hi], lens[hi]);
      w.put(codes[lo], lens[lo]);
    }
    w.flush();
    if (k + 1 < kNibStreams) {
      const auto sz = static_cast<uint32_t>(w.bytes.size());
      for (int b = 0; b < 4; ++b) out[sizes_at + 4 * k + b] = static_cast<uint8_t>(sz >> (8 * b));
    }
    out.insert(out.end(), w.bytes.begin(), w.bytes.end());
  }
  return out;
}

void decode_nibbles(std::span<const uint8_t> in, std::span<uint8_t> out) {
  const size_t n = out.size();
  if (n >= (size_t{1} << 31)) corrupt("stream too large");
  if (in.size() < 2) corrupt("stream too short");
  if (in[0] == kKindConstant) {
    if (in.size() != 2) corrupt("constant stream has a wrong size");
    if (in[1] >= 16) corrupt("symbol out of range");
    if (n) std::memset(out.data(), in[1] * 0x11, n);
    return;
  }
  if (in[0] != kKindHuffman) corrupt("unknown stream kind");
  const size_t nsym = size_t(in[1]) + 1;
  if (nsym > 16 || nsym < 2) corrupt("alphabet size out of range");
  const size_t lens_bytes = (nsym + 1) / 2;
  size_t at = 2 + lens_bytes + kNibSizesBytes;
  if (in.size() < at) corrupt("header truncated");
  std::array<uint8_t, 16> lens{};
  read_code_lengths(in, nsym, kNibMaxLen, lens.data());
  std::array<Cursor, kNibStreams> cs;
  for (unsigned k = 0; k < kNibStreams; ++k) {
    const size_t sz = k + 1 < kNibStreams ? get_u32(in, 2 + lens_bytes + 4 * k) : in.size() - at;
    if (sz > in.size() - at) corrupt("stream sizes exceed the stored bytes");
    cs[k].begin = cs[k].ip = in.data() + at;
    cs[k].end = cs[k].begin + sz;
    at += sz;
    cs[k].floor = out.data() + nib_seg_begin(n, k);
    cs[k].op = out.data() + nib_seg_end(n, k);
  }
  NibTables t;
  build_nib_tables(std::span<const uint8_t>(lens.data(), nsym), t);
  decode_nib_streams(t, cs, n);
}

}  // namespace

bool param_valid(uint16_t param) { return param == 0 || param == 4 || param == kNibbles; }

std::vector<uint8_t> limited_lengths(std::span<const uint64_t> freq, unsigned max_len) {
  std::vector<uint16_t> order;
  for (size_t s = 0; s < freq.size(); ++s)
    if (freq[s]) order.push_back(static_cast<uint16_t>(s));
  const size_t m = order.size();
  DCQ_ASSERT(m >= 2 && max_len < 32 && m <= (size_t{1} << max_len));
  std::stable_sort(order.begin(), order.end(), [&](uint16_t a, uint16_t b) { return freq[a] < freq[b]; });

  // Package-merge: items are leaves (node < m) or packages of two items of the previous list.
  // The first 2m - 2 items of the last list are the optimal length-limited code: a symbol's
  // length is the number of times its leaf occurs in them.
  struct Node {
    uint64_t w;
    int32_t a, b;  // children, or -1 for a leaf
  };
  std::vector<Node> nodes;
  nodes.reserve(m * max_len * 2);
  for (auto s : order) nodes.push_back({freq[s], -1, -1});
  std::vector<int32_t> prev(m), cur;
  for (size_t i = 0; i < m; ++i) prev[i] = int32_t(i);
  const size_t keep = 2 * m - 2;
  for (unsigned level = 1; level < max_len; ++level) {
    cur.clear();
    size_t li = 0, pi = 0;
    while (cur.size() < keep && (li < m || pi + 1 < prev.size())) {
      const bool have_pkg = pi + 1 < prev.size();
      const uint64_t pw = have_pkg ? nodes[prev[pi]].w + nodes[prev[pi + 1]].w : 0;
      if (li < m && (!have_pkg || nodes[li].w <= pw)) {
        cur.push_back(int32_t(li++));
      } else {
        nodes.push_back({pw, prev[pi], prev[pi + 1]});
        cur.push_back(int32_t(nodes.size() - 1));
        pi += 2;
      }
    }
    prev.swap(cur);
  }
  std::vector<uint8_t> lens(freq.size(), 0);
  std::vector<int32_t> stack;
  for (size_t i = 0; i < keep && i < prev.size(); ++i) {
    stack.push_back(prev[i]);
    while (!stack.empty()) {
      const int32_t x = stack.back();
      stack.pop_back();
      if (nodes[x].a < 0) {
        ++lens[order[x]];
      } else {
        stack.push_back(nodes[x].a);
        stack.push_back(nodes[x].b);
      }
    }
  }
  return lens;
}

std::vector<uint8_t> encode(uint16_t low_bits, std::span<const uint8_t> in) {
  DCQ_ASSERT(param_valid(low_bits));
  if (low_bits == kNibbles) return encode_nibbles(in);
  const size_t n = in.size();
  DCQ_ASSERT(n < (size_t{1} << 32));
  const size_t alphabet = size_t{256} >> low_bits;
  std::vector<uint64_t> freq(alphabet, 0);
  for (uint8_t b : in) ++freq[b >> low_bits];
  size_t used = 0, nsym = 0;
  for (size_t s = 0; s < alphabet; ++s)
    if (freq[s]) ++used, nsym = s + 1;

  std::vector<uint8_t> out;
  if (used <= 1) {
    out = {kKindConstant, static_cast<uint8_t>(nsym ? nsym - 1 : 0)};
  } else {
    freq.resize(nsym);
    const auto lens = limited_lengths(freq, kMaxLen);
    const auto codes = canonical_reversed(lens);
    out.push_back(kKindHuffman);
    out.push_back(static_cast<uint8_t>(nsym - 1));
    for (size_t s = 0; s < nsym; s += 2)
      out.push_back(static_cast<uint8_t>(lens[s] | (s + 1 < nsym ? lens[s + 1] << 4 : 0)));
    const size_t sizes_at = out.size();
    out.resize(out.size() + kSizesBytes);
    for (unsigned k = 0; k < kStreams; ++k) {
      BitWriter w;
      // The decoder fills each segment from its end down: write the symbols in that order.
      for (size_t i = seg_end(n, k); i > seg_begin(n, k); --i) {
        const unsigned s = in[i - 1] >> low_bits;
        w.put(codes[s], lens[s]);
      }
      w.flush();
      if (k + 1 < kStreams) {
        const auto sz = static_cast<uint32_t>(w.bytes.size());
        for (int b = 0; b < 4; ++b) out[sizes_at + 4 * k + b] = static_cast<uint8_t>(sz >> (8 * b));
      }
      out.insert(out.end(), w.bytes.begin(), w.bytes.end());
    }
  }
  if (low_bits == 4) {
    for (size_t i = 0; i < n; i += 2)
      out.push_back(static_cast<uint8_t>((in[i] & 15) | (i + 1 < n ? (in[i + 1] & 15) << 4 : 0)));
  }
  return out;
}

void decode(uint16_t low_bits, std::span<const uint8_t> in, std::span<uint8_t> out) {
  if (!param_valid(low_bits)) corrupt("unknown parameter");
  if (low_bits == kNibbles) return decode_nibbles(in, out);
  const size_t n = out.size();
  if (n >= (size_t{1} << 32)) corrupt("stream too large");
  const size_t alphabet = size_t{256} >> low_bits;
  const size_t nlow = low_bytes(n, low_bits);
  if (in.size() < 2 + nlow) corrupt("stream too short");
  const auto body = in.first(in.size() - nlow);
  const auto low = in.last(nlow);

  if (body[0] == kKindConstant) {
    if (body.size() != 2) corrupt("constant stream has a wrong size");
    if (body[1] >= alphabet) corrupt("symbol out of range");
    if (n) std::memset(out.data(), body[1], n);
  } else if (body[0] == kKindHuffman) {
    const size_t nsym = size_t(body[1]) + 1;
    if (nsym > alphabet || nsym < 2) corrupt("alphabet size out of range");
    const size_t lens_bytes = (nsym + 1) / 2;
    size_t at = 2 + lens_bytes + kSizesBytes;
    if (body.size() < at) corrupt("header truncated");
    std::array<uint8_t, 256> lens{};
    read_code_lengths(body, nsym, kMaxLen, lens.data());
    std::array<Cursor, kStreams> cs;
    for (unsigned k = 0; k < kStreams; ++k) {
      const size_t sz = k + 1 < kStreams ? get_u32(body, 2 + lens_bytes + 4 * k) : body.size() - at;
      if (sz > body.size() - at) corrupt("stream sizes exceed the stored bytes");
      cs[k].begin = cs[k].ip = body.data() + at;
      cs[k].end = cs[k].begin + sz;
      at += sz;
      cs[k].floor = out.data() + seg_begin(n, k);
      cs[k].op = out.data() + seg_end(n, k);
    }
    // 20 KiB on the stack: a thread_local would cost a TLS address call inside the hot loop.
    Tables t;
    build_tables(std::span<const uint8_t>(lens.data(), nsym), t);
    decode_symbols(t, cs);
  } else {
    corrupt("unknown stream kind");
  }

  if (low_bits == 4) {
    // out holds the high nibbles; merge the stored low nibbles (two per byte) below them.
    const uint8_t* lo = low.data();
    const size_t pairs = n / 2;
    uint8_t* o = out.data();
    for (size_t j = 0; j < pairs; ++j) {
      o[2 * j] = static_cast<uint8_t>(o[2 * j] << 4 | (lo[j] & 15));
      o[2 * j + 1] = static_cast<uint8_t>(o[2 * j + 1] << 4 | lo[j] >> 4);
    }
    if (n & 1) {
      if (lo[pairs] >> 4) corrupt("non-zero padding nibble");
      o[n - 1] = static_cast<uint8_t>(o[n - 1] << 4 | (lo[pairs] & 15));
    }
  }
}

}  // namespace dcq::huff
