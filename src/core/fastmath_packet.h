// The packet kernel behind core/fastmath.h, for loops that want tanh inside their own SIMD pass
// (GELU in ops.cpp) instead of through a scratch buffer. Needs Eigen; one packet is Eigen's
// widest float packet (16 floats with AVX-512, 8 with AVX2). Callers silence GCC 12's
// -Wmaybe-uninitialized around their loops: a known false positive of _mm512_undefined_ps
// inside Eigen's pexp, reported where the code is inlined.
#pragma once
#include <Eigen/Core>

namespace attnlab::fastmath {

using Packet = Eigen::internal::packet_traits<float>::type;
constexpr int kPacketSize = Eigen::internal::packet_traits<float>::size;

// tanh of every lane: the formula and accuracy of tanh_packets (fastmath.h).
inline Packet ptanh(const Packet& u) {
  namespace ei = Eigen::internal;
  using ei::padd;
  using ei::pmul;
  using ei::pset1;
  constexpr float c3 = -1.0f / 3, c5 = 2.0f / 15, c7 = -17.0f / 315, c9 = 62.0f / 2835,
                  c11 = -1382.0f / 155925, c13 = 21844.0f / 6081075, c15 = -929569.0f / 638512875.0f,
                  c17 = 6404582.0f / 10854718875.0f;
  const Packet a = ei::pabs(u);
  const Packet a2 = pmul(a, a);
  // |u| < 0.625: a + a·a²·P(a²), the Taylor series to a¹⁷
  Packet q = padd(pset1<Packet>(c15), pmul(a2, pset1<Packet>(c17)));
  q = padd(pset1<Packet>(c13), pmul(a2, q));
  q = padd(pset1<Packet>(c11), pmul(a2, q));
  q = padd(pset1<Packet>(c9), pmul(a2, q));
  q = padd(pset1<Packet>(c7), pmul(a2, q));
  q = padd(pset1<Packet>(c5), pmul(a2, q));
  q = padd(pset1<Packet>(c3), pmul(a2, q));
  const Packet small = padd(a, pmul(pmul(a, a2), q));
  // otherwise (1 − e)/(1 + e), e = exp(−2|u|) ∈ (0, 0.29]: no cancellation
  const Packet e = ei::pexp(pmul(pset1<Packet>(-2.0f), a));
  const Packet large = ei::pdiv(ei::psub(pset1<Packet>(1.0f), e), padd(pset1<Packet>(1.0f), e));
  const Packet r = ei::pselect(ei::pcmp_lt(a, pset1<Packet>(0.625f)), small, large);  // NaN: large, NaN
  // copysign(r, u): r ≥ 0 (or NaN), so or-ing in u's sign bit gives it u's sign
  return ei::por(r, ei::pand(u, pset1<Packet>(-0.0f)));
}

}  // namespace attnlab::fastmath
