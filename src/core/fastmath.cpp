#include "core/fastmath.h"

#include <Eigen/Core>
#include <cmath>

#include "core/fastmath_packet.h"

namespace attnlab {

#if defined(__GNUC__) && !defined(__clang__)  // a GCC-only warning
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
void tanh_packets(float* z, const float* u, int m) {
  using fastmath::kPacketSize;
  for (int i = 0; i < m; i += kPacketSize)
    Eigen::internal::pstore(z + i, fastmath::ptanh(Eigen::internal::pload<fastmath::Packet>(u + i)));
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

}  // namespace attnlab
