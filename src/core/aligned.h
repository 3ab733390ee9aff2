// std::vector storage aligned to a cache line. AMX tile loads and stores of 64-byte rows that
// straddle two cache lines run several times slower (measured here: 14.4 ns per 1 KB tile load
// 16 bytes off a line against 2.2 ns on it), and malloc aligns large blocks to 16 bytes only.
#pragma once
#include <cstddef>
#include <new>
#include <vector>

namespace attnlab {

template <typename T, std::size_t Align = 64>
struct AlignedAllocator {
  using value_type = T;
  template <typename U>
  struct rebind {
    using other = AlignedAllocator<U, Align>;
  };
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U, Align>&) {}
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(Align))); }
  void deallocate(T* p, std::size_t) { ::operator delete(p, std::align_val_t(Align)); }
  template <typename U>
  bool operator==(const AlignedAllocator<U, Align>&) const { return true; }
  template <typename U>
  bool operator!=(const AlignedAllocator<U, Align>&) const { return false; }
};

// a vector whose data() starts on a 64-byte boundary
template <typename T>
using aligned_vector = std::vector<T, AlignedAllocator<T>>;

}  // namespace attnlab
