// AVX-512 (F/BW/DQ/VL + VNNI) kernels; only called when cpuid says so. Never AMX.
#include <immintrin.h>

#include "kernels/blocks.hpp"

namespace dcq::kernels {

void fill_avx512(KernelTable& t) { (void)t; }

}  // namespace dcq::kernels
