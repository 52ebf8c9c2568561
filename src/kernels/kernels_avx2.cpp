// AVX2 (+FMA, F16C) kernels. Compiled with -mavx2 -mfma -mf16c; only called when cpuid says so.
#include <immintrin.h>

#include "kernels/blocks.hpp"

namespace dcq::kernels {

void fill_avx2(KernelTable& t) { (void)t; }

}  // namespace dcq::kernels
