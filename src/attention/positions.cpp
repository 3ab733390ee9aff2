// Positions applied inside attention: RoPE rotations and ALiBi slopes (see positions.h).
#include "attention/positions.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace attnlab {

// x: [B, T, Hx, D], row (b, t) at x + (b·T + t)·stride, head h of that row at h·D.
// Pair i of a head, (x[2i], x[2i+1]), at absolute position p = pos0 + t becomes
//   x'[2i]   = x[2i]·cos(pθ_i) − x[2i+1]·sin(pθ_i)
//   x'[2i+1] = x[2i]·sin(pθ_i) + x[2i+1]·cos(pθ_i)
// i.e. (x[2i] + i·x[2i+1])·e^{i·pθ_i} in complex form; sign −1 multiplies by e^{−i·pθ_i}, the
// inverse (= transpose) of the rotation, which is also its backward.
//
// The angles pθ_i are formed in double (p·θ_0 = p radians, and a float angle of a few thousand
// radians would already be off by ~1e-4), cos/sin rounded once to float. The rotation is
// elementwise, so the result does not depend on the thread count.
void rope_rotate(float* x, int B, int T, int Hx, int D, int stride, int pos0, float base, int sign) {
  ATTNLAB_CHECK(D % 2 == 0 && B >= 0 && T >= 0 && Hx >= 0 && stride >= Hx * D);
  ATTNLAB_CHECK(sign == 1 || sign == -1);
  if (B == 0 || T == 0 || Hx == 0 || D == 0) return;
  const int half = D / 2;
  constexpr int kChunk = 64;  // pairs whose cos/sin are computed at once (stack arrays, no allocation)
  // one decoding step rotates a few rows: not worth waking the thread team
  const bool par = size_t(B) * T * Hx * D >= 16384;
#pragma omp parallel for schedule(static) if (par)
  for (int t = 0; t < T; t++) {
    const double p = double(pos0) + double(t);
    float cs[kChunk], sn[kChunk];
    for (int i0 = 0; i0 < half; i0 += kChunk) {
      const int n = std::min(kChunk, half - i0);
      for (int k = 0; k < n; k++) {
        const double theta = std::pow(double(base), -2.0 * double(i0 + k) / double(D));  // θ_i
        const double a = p * theta;
        cs[k] = float(std::cos(a));
        sn[k] = float(sign * std::sin(a));
      }
      for (int b = 0; b < B; b++) {
        float* row = x + (size_t(b) * T + t) * size_t(stride);
        for (int h = 0; h < Hx; h++) {
          float* v = row + size_t(h) * D + 2 * i0;
          for (int k = 0; k < n; k++) {
            const float x0 = v[2 * k], x1 = v[2 * k + 1];
            v[2 * k] = x0 * cs[k] - x1 * sn[k];
            v[2 * k + 1] = x0 * sn[k] + x1 * cs[k];
          }
        }
      }
    }
  }
}

// Press et al. 2022, section 3 and the authors' code: for H a power of two the slopes are the
// geometric sequence starting at 2^(−8/H) with that ratio, m_h = 2^(−8(h+1)/H). Otherwise, with
// P the largest power of two below H, heads 0..P−1 get the P-head slopes and heads P..H−1 get
// every other slope of the 2P-head sequence, starting with the first: 2^(−8(2k+1)/(2P)),
// k = h − P. A slope is an exact power of two (exact in float) only when its exponent is an
// integer: for every head when H ≤ 8. For 9 ≤ H < 16 heads P..H−1 get exponents −(2k+1)/2, and
// from H = 16 the P-head exponents −8(h+1)/P are fractions too (P = 16: every other head). Those
// slopes are irrational (2^(−1/2), ...): exp2 in double, rounded once to float.
float alibi_slope(int h, int H) {
  ATTNLAB_CHECK(H > 0 && h >= 0 && h < H);
  int P = 1;
  while (P * 2 <= H) P *= 2;
  if (h < P) return float(std::exp2(-8.0 * double(h + 1) / double(P)));
  const int k = h - P;
  return float(std::exp2(-8.0 * double(2 * k + 1) / double(2 * P)));
}

}  // namespace attnlab
