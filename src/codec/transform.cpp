// Transforms that expose the block structure of tensor data (docs/format.md, "Transforms").
#include <cstring>

#include "dcq/codec.hpp"
#include "dcq/error.hpp"

namespace dcq {
namespace {

// One field of a block struct: 'h' f16 (two streams: low bytes, high bytes), 'n' packed 4-bit
// codes, 'b' bytes kept as they are. Offsets follow ggml's ggml-common.h struct order.
struct Field {
  uint16_t offset;
  uint16_t size;
  char kind;
};

struct Layout {
  uint32_t block_bytes = 0;
  std::vector<Field> fields;
  bool q5 = false;  // Q5_0/Q5_1: qh (4 bytes) joins the nibbles when unpacked
};

Layout make_layout(std::initializer_list<std::pair<uint16_t, char>> spec, bool q5 = false) {
  Layout l;
  l.q5 = q5;
  for (auto [size, kind] : spec) {
    l.fields.push_back({static_cast<uint16_t>(l.block_bytes), size, kind});
    l.block_bytes += size;
  }
  return l;
}

const Layout* block_layout(GgmlType t) {
  static const Layout q4_0 = make_layout({{2, 'h'}, {16, 'n'}});
  static const Layout q4_1 = make_layout({{2, 'h'}, {2, 'h'}, {16, 'n'}});
  static const Layout q5_0 = make_layout({{2, 'h'}, {4, 'b'}, {16, 'n'}}, true);
  static const Layout q5_1 = make_layout({{2, 'h'}, {2, 'h'}, {4, 'b'}, {16, 'n'}}, true);
  static const Layout q8_0 = make_layout({{2, 'h'}, {32, 'b'}});
  static const Layout q2_k = make_layout({{16, 'b'}, {64, 'b'}, {2, 'h'}, {2, 'h'}});
  static const Layout q3_k = make_layout({{32, 'b'}, {64, 'b'}, {12, 'b'}, {2, 'h'}});
  static const Layout q4_k = make_layout({{2, 'h'}, {2, 'h'}, {12, 'b'}, {128, 'n'}});
  static const Layout q5_k = make_layout({{2, 'h'}, {2, 'h'}, {12, 'b'}, {32, 'b'}, {128, 'n'}});
  static const Layout q6_k = make_layout({{128, 'n'}, {64, 'b'}, {16, 'b'}, {2, 'h'}});
  static const Layout iq4_xs = make_layout({{2, 'h'}, {2, 'b'}, {4, 'b'}, {128, 'n'}});
  switch (t) {
    case GgmlType::Q4_0: case GgmlType::IQ4_NL: return &q4_0;
    case GgmlType::Q4_1: return &q4_1;
    case GgmlType::Q5_0: return &q5_0;
    case GgmlType::Q5_1: return &q5_1;
    case GgmlType::Q8_0: return &q8_0;
    case GgmlType::Q2_K: return &q2_k;
    case GgmlType::Q3_K: return &q3_k;
    case GgmlType::Q4_K: return &q4_k;
    case GgmlType::Q5_K: return &q5_k;
    case GgmlType::Q6_K: return &q6_k;
    case GgmlType::IQ4_XS: return &iq4_xs;
    default: return nullptr;
  }
}

size_t plane_count(GgmlType t) {
  switch (t) {
    case GgmlType::F16: case GgmlType::BF16: return 2;
    case GgmlType::F32: return 4;
    default: return 0;
  }
}

// Stream sizes per block for the block transforms (unpacked or not).
std::vector<size_t> per_block_sizes(const Layout& l, bool unpacked) {
  std::vector<size_t> s;
  for (const auto& f : l.fields) {
    if (f.kind == 'h') {
      s.push_back(1);
      s.push_back(1);
    } else if (f.kind == 'n' && unpacked) {
      s.push_back(2u * f.size);
    } else if (f.kind == 'b' && unpacked && l.q5 && f.size == 4) {
      // qh joins the nibbles: no stream of its own
    } else {
      s.push_back(f.size);
    }
  }
  return s;
}

// Copies a `n`-byte field of every block from a dense stream. Sizes known at compile time let
// the copy become a few vector moves instead of a memcpy call per block.
template <size_t N>
void copy_fixed(uint8_t* base, size_t stride, const uint8_t* src, size_t blocks) {
  for (size_t b = 0; b < blocks; ++b) std::memcpy(base + b * stride, src + b * N, N);
}
void copy_field(uint8_t* base, size_t stride, const uint8_t* src, size_t n, size_t blocks) {
  switch (n) {
    case 2: return copy_fixed<2>(base, stride, src, blocks);
    case 4: return copy_fixed<4>(base, stride, src, blocks);
    case 12: return copy_fixed<12>(base, stride, src, blocks);
    case 16: return copy_fixed<16>(base, stride, src, blocks);
    case 32: return copy_fixed<32>(base, stride, src, blocks);
    case 64: return copy_fixed<64>(base, stride, src, blocks);
    case 128: return copy_fixed<128>(base, stride, src, blocks);
    default:
      for (size_t b = 0; b < blocks; ++b) std::memcpy(base + b * stride, src + b * n, n);
  }
}

// Packs N low and N high nibbles per block into N bytes. N known at compile time lets the
// compiler vectorise the inner loop (a runtime N kept it scalar: 9 GB/s instead of ~20).
template <size_t N>
void pack_nibbles(uint8_t* base, size_t stride, const uint8_t* src, size_t blocks) {
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* sym = src + b * 2 * N;
    uint8_t tmp[N];
    for (size_t j = 0; j < N; ++j) tmp[j] = static_cast<uint8_t>((sym[j] & 15) | (sym[j + N] << 4));
    std::memcpy(base + b * stride, tmp, N);
  }
}

// row_groups (docs/format.md, "Transform 4"): the interleaved layout of the Q8_0 / Q4_0 kernels.
// Written with our own loops from the format's byte positions (codec sits below nothing that
// knows the kernels' structs); tests check it byte for byte against kernels::interleave_rows.
// A block is a 2-byte f16 scale then `pieces` x 4 code bytes (Q8_0: 8, Q4_0: 4).
struct RowGroupShape {
  size_t block_bytes = 0, pieces = 0;
  size_t blocks_per_row = 0, rows = 0;
};

RowGroupShape row_group_shape(GgmlType type, size_t bytes, int64_t row_width) {
  DCQ_ASSERT(type == GgmlType::Q8_0 || type == GgmlType::Q4_0);
  // Not checkable from the bytes alone: a caller that forgot the row width is a bug, not bad input.
  DCQ_ASSERT(row_width > 0 && row_width % 32 == 0);
  RowGroupShape s;
  s.block_bytes = type == GgmlType::Q8_0 ? 34 : 18;
  s.pieces = (s.block_bytes - 2) / 4;
  s.blocks_per_row = size_t(row_width) / 32;
  const size_t row_bytes = s.blocks_per_row * s.block_bytes;
  DCQ_ASSERT(bytes % row_bytes == 0);
  s.rows = bytes / row_bytes;
  return s;
}

// Plain rows -> row_groups stream (kToGroups) or back; `src` and `dst` are the two sides. One
// group-column (16 blocks of one block column) is contiguous in the stream: 16 scales, then
// piece c of rows 0..15 for each c in turn.
template <bool kToGroups>
void row_groups_permute(const RowGroupShape& s, const uint8_t* src, uint8_t* dst) {
  constexpr size_t kGroup = size_t(kRowGroupRows);
  auto copy = [&](size_t plain_at, size_t grouped_at, size_t n) {
    if constexpr (kToGroups) std::memcpy(dst + grouped_at, src + plain_at, n);
    else std::memcpy(dst + plain_at, src + grouped_at, n);
  };
  const size_t bs = s.block_bytes, nb = s.blocks_per_row, row_stride = nb * bs;
  const size_t groups = s.rows / kGroup;
  for (size_t g = 0; g < groups; ++g) {
    for (size_t b = 0; b < nb; ++b) {
      const size_t col = (g * nb + b) * kGroup * bs;
      for (size_t r = 0; r < kGroup; ++r) {
        const size_t blk = (g * kGroup + r) * row_stride + b * bs;
        copy(blk, col + 2 * r, 2);
        for (size_t c = 0; c < s.pieces; ++c) copy(blk + 2 + 4 * c, col + 2 * kGroup + (c * kGroup + r) * 4, 4);
      }
    }
  }
  // The R mod 16 remaining rows keep the plain layout, at the same place on both sides.
  const size_t done = groups * kGroup * row_stride, total = s.rows * row_stride;
  if (total > done) std::memcpy(dst + done, src + done, total - done);
}

}  // namespace

std::string_view transform_name(TransformId t) {
  switch (t) {
    case TransformId::none: return "none";
    case TransformId::byte_planes: return "byte_planes";
    case TransformId::block_fields: return "block_fields";
    case TransformId::block_fields_unpacked: return "block_fields_unpacked";
    case TransformId::row_groups: return "row_groups";
  }
  return "unknown";
}

bool transform_applies(TransformId t, GgmlType type) {
  switch (t) {
    case TransformId::none: return true;
    case TransformId::byte_planes: return plane_count(type) != 0;
    case TransformId::block_fields: return block_layout(type) != nullptr;
    case TransformId::block_fields_unpacked: {
      const Layout* l = block_layout(type);
      if (!l) return false;
      for (const auto& f : l->fields)
        if (f.kind == 'n') return true;
      return false;
    }
    case TransformId::row_groups: return type == GgmlType::Q8_0 || type == GgmlType::Q4_0;
  }
  return false;
}

std::vector<size_t> transform_stream_sizes(TransformId t, GgmlType type, size_t n) {
  DCQ_ASSERT(transform_applies(t, type));
  if (t == TransformId::none) return {n};
  if (t == TransformId::row_groups) {
    DCQ_ASSERT(n % (type == GgmlType::Q8_0 ? 34 : 18) == 0);
    return {n};
  }
  if (t == TransformId::byte_planes) {
    const size_t p = plane_count(type);
    DCQ_ASSERT(n % p == 0);
    return std::vector<size_t>(p, n / p);
  }
  const Layout& l = *block_layout(type);
  DCQ_ASSERT(n % l.block_bytes == 0);
  const size_t blocks = n / l.block_bytes;
  auto s = per_block_sizes(l, t == TransformId::block_fields_unpacked);
  for (auto& x : s) x *= blocks;
  return s;
}

std::vector<std::vector<uint8_t>> transform_split(TransformId t, GgmlType type, std::span<const uint8_t> in,
                                                  int64_t row_width) {
  const auto sizes = transform_stream_sizes(t, type, in.size());
  std::vector<std::vector<uint8_t>> out(sizes.size());
  for (size_t i = 0; i < sizes.size(); ++i) out[i].resize(sizes[i]);
  if (t == TransformId::none) {
    if (!in.empty()) std::memcpy(out[0].data(), in.data(), in.size());
    return out;
  }
  if (t == TransformId::row_groups) {
    row_groups_permute<true>(row_group_shape(type, in.size(), row_width), in.data(), out[0].data());
    return out;
  }
  if (t == TransformId::byte_planes) {
    const size_t p = sizes.size(), n = in.size() / p;
    for (size_t i = 0; i < n; ++i)
      for (size_t k = 0; k < p; ++k) out[k][i] = in[i * p + k];
    return out;
  }
  const Layout& l = *block_layout(type);
  const bool unpacked = t == TransformId::block_fields_unpacked;
  const size_t blocks = in.size() / l.block_bytes;
  for (size_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = in.data() + b * l.block_bytes;
    size_t s = 0;
    for (const auto& f : l.fields) {
      const uint8_t* src = blk + f.offset;
      if (f.kind == 'h') {
        out[s++][b] = src[0];
        out[s++][b] = src[1];
      } else if (f.kind == 'n' && unpacked) {
        uint8_t* dst = out[s++].data() + b * 2u * f.size;
        if (l.q5) {
          // 5-bit symbols: element j < 16 takes qh bit j, element j + 16 takes qh bit j + 16.
          uint32_t qh;
          std::memcpy(&qh, blk + f.offset - 4, 4);
          for (size_t j = 0; j < 16; ++j) {
            dst[j] = static_cast<uint8_t>((src[j] & 15) | (((qh >> j) & 1) << 4));
            dst[j + 16] = static_cast<uint8_t>((src[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
          }
        } else {
          for (size_t j = 0; j < f.size; ++j) {
            dst[j] = src[j] & 15;
            dst[j + f.size] = src[j] >> 4;
          }
        }
      } else if (f.kind == 'b' && unpacked && l.q5 && f.size == 4) {
        // folded into the symbols above
      } else {
        std::memcpy(out[s++].data() + b * f.size, src, f.size);
      }
    }
  }
  return out;
}

void transform_join(TransformId t, GgmlType type, const std::vector<std::span<const uint8_t>>& streams,
                    std::span<uint8_t> out, int64_t row_width) {
  const auto sizes = transform_stream_sizes(t, type, out.size());
  DCQ_ASSERT(sizes.size() == streams.size());
  for (size_t i = 0; i < sizes.size(); ++i) DCQ_ASSERT(streams[i].size() == sizes[i]);
  if (t == TransformId::none) {
    if (!out.empty()) std::memcpy(out.data(), streams[0].data(), out.size());
    return;
  }
  if (t == TransformId::row_groups) {
    row_groups_permute<false>(row_group_shape(type, out.size(), row_width), streams[0].data(), out.data());
    return;
  }
  if (t == TransformId::byte_planes) {
    const size_t p = sizes.size(), n = out.size() / p;
    if (p == 2) {
      const uint8_t *a = streams[0].data(), *b = streams[1].data();
      for (size_t i = 0; i < n; ++i) {
        out[2 * i] = a[i];
        out[2 * i + 1] = b[i];
      }
    } else {
      const uint8_t *a = streams[0].data(), *b = streams[1].data(), *c = streams[2].data(), *d = streams[3].data();
      for (size_t i = 0; i < n; ++i) {
        out[4 * i] = a[i];
        out[4 * i + 1] = b[i];
        out[4 * i + 2] = c[i];
        out[4 * i + 3] = d[i];
      }
    }
    return;
  }
  const Layout& l = *block_layout(type);
  const bool unpacked = t == TransformId::block_fields_unpacked;
  const size_t blocks = out.size() / l.block_bytes;
  // Field by field (not block by block): each inner loop has one source stream and a fixed
  // stride, which the compiler turns into tight code.
  size_t s = 0;
  for (const auto& f : l.fields) {
    uint8_t* base = out.data() + f.offset;
    const size_t stride = l.block_bytes;
    if (f.kind == 'h') {
      const uint8_t *lo = streams[s].data(), *hi = streams[s + 1].data();
      for (size_t b = 0; b < blocks; ++b) {
        base[b * stride] = lo[b];
        base[b * stride + 1] = hi[b];
      }
      s += 2;
    } else if (f.kind == 'n' && unpacked) {
      const uint8_t* src = streams[s++].data();
      if (l.q5) {
        for (size_t b = 0; b < blocks; ++b) {
          const uint8_t* sym = src + b * 32;
          uint8_t* qs = base + b * stride;
          for (size_t j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>((sym[j] & 15) | (sym[j + 16] << 4));
          // Bit 4 of each of the 32 symbols, packed 8 at a time: with one 0/1 flag per byte of a
          // little-endian u64, the multiply gathers flag i into bit 56 + i.
          uint32_t qh = 0;
          for (size_t g = 0; g < 4; ++g) {
            uint64_t x;
            std::memcpy(&x, sym + 8 * g, 8);
            x = (x >> 4) & 0x0101010101010101ull;
            qh |= static_cast<uint32_t>((x * 0x0102040810204080ull) >> 56) << (8 * g);
          }
          std::memcpy(qs - 4, &qh, 4);
        }
      } else if (f.size == 16) {
        pack_nibbles<16>(base, stride, src, blocks);
      } else if (f.size == 128) {
        pack_nibbles<128>(base, stride, src, blocks);
      } else {
        const size_t n = f.size;
        for (size_t b = 0; b < blocks; ++b) {
          const uint8_t* sym = src + b * 2 * n;
          uint8_t* qs = base + b * stride;
          for (size_t j = 0; j < n; ++j) qs[j] = static_cast<uint8_t>((sym[j] & 15) | (sym[j + n] << 4));
        }
      }
    } else if (f.kind == 'b' && unpacked && l.q5 && f.size == 4) {
      // written with the symbols
    } else {
      const uint8_t* src = streams[s++].data();
      copy_field(base, stride, src, f.size, blocks);
    }
  }
}

double transform_join_cost(TransformId t) {
  // Seconds per decoded byte on one core, measured on 256 KiB of Q4_0/Q8_0/Q5_0/Q4_K/F32 data
  // (slowest type of each, rounded down).
  switch (t) {
    case TransformId::none: return 0.0;
    case TransformId::byte_planes: return 1.0 / 30e9;
    case TransformId::block_fields: return 1.0 / 14e9;  // Q4_0/Q8_0 15.9-17.1 GB/s under load
    case TransformId::block_fields_unpacked: return 1.0 / 4.5e9;
    // Q8_0/Q4_0 7.1-7.6 GB/s on 2 busy cores (128 rows x 2048 chunk); read in place when raw,
    // so this is paid only by a reader that decodes the chunk to plain rows.
    case TransformId::row_groups: return 1.0 / 6e9;
  }
  return 0.0;
}

}  // namespace dcq
