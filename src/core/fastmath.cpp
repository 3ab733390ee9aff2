#include "core/fastmath.h"

#include <Eigen/Core>
#include <cmath>

#include "core/fastmath_packet.h"

namespace attnlab {

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
void tanh_packets(float* z, const float* u, int m) {
  using fastmath::kPacketSize;
  for (int i = 0; i < m; i += kPacketSize)
    Eigen::internal::pstore(z + i, fastmath::ptanh(Eigen::internal::pload<fastmath::Packet>(u + i)));
}
#pragma GCC diagnostic pop

}  // namespace attnlab
