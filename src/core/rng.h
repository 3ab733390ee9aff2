// Deterministic random numbers: xoshiro256** seeded by splitmix64.
// The whole state is four integers, so it can be saved in a checkpoint and a
// resumed run draws exactly the numbers an uninterrupted one would.
#pragma once
#include <array>
#include <cmath>
#include <cstdint>

namespace attnlab {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    uint64_t x = seed;
    for (auto& s : s_) s = splitmix64(x);
  }

  uint64_t next_u64() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  // uniform in [0, 1), 24 random bits
  float uniform() { return float(next_u64() >> 40) * (1.0f / 16777216.0f); }

  // uniform integer in [0, n)
  uint64_t below(uint64_t n) { return next_u64() % n; }

  // standard normal (Box-Muller, one value per call, no cached spare: keeps the state simple)
  float normal() {
    double u1 = (double(next_u64() >> 11) + 1.0) * (1.0 / 9007199254740993.0);  // (0,1]
    double u2 = double(next_u64() >> 11) * (1.0 / 9007199254740992.0);
    return float(std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2));
  }

  std::array<uint64_t, 4> state() const { return s_; }
  void set_state(const std::array<uint64_t, 4>& s) { s_ = s; }

  // a child generator with an independent stream, derived deterministically
  Rng fork(uint64_t stream) const {
    uint64_t x = s_[0] ^ (0x9E3779B97F4A7C15ull * (stream + 1));
    Rng r;
    for (auto& s : r.s_) s = splitmix64(x);
    return r;
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  static uint64_t splitmix64(uint64_t& x) {
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  std::array<uint64_t, 4> s_{};
};

}  // namespace attnlab
