// bf16 products for train.precision: bf16 (docs/architecture.md, "bf16 mixed precision").
//
//   C[M,N] = alpha · bf16(op(A)) · bf16(op(B)) + beta · C        (fp32 C, fp32 accumulation)
//
// bf16(x) rounds an fp32 value to bfloat16 (8 significant bits) to nearest, ties to even. The
// inputs are rounded while they are packed into tiles; the products and their sums are fp32, so
// only the inputs lose precision. Two kernels share the packed layout:
//   amx         Intel AMX (TDPBF16PS, 16x16 fp32 tiles), Sapphire Rapids and later;
//   avx512bf16  AVX512-BF16 (VDPBF16PS), e.g. AMD Zen 4, Intel Cooper Lake.
// Each element of C is one sequence of pair products summed along K in order, whatever the tile,
// block or thread that computes it: the bits depend on the shape and the kernel only, not on the
// thread count. The two kernels may differ in the last bits (the instructions round differently
// inside a pair).
//
// While a kernel is set (gemm_set_bf16_kernel, GemmBf16Scope), sgemm (core/gemm.h) sends every
// product here, few rows included. Kernels outside sgemm are not switched by it: the flash
// attention module reads gemm_bf16_kernel() and passes it to its kernel (FlashOptions::bf16),
// which then runs its tile products through the tile interface below.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace attnlab {

enum class Bf16Kernel { none, avx512bf16, amx };

const char* bf16_kernel_name(Bf16Kernel k);

// The fastest kernel this CPU and OS offer (AMX needs the kernel's permission to use the tile
// state, asked for once), or the one ATTNLAB_BF16_KERNEL names (amx | avx512bf16 | none, the last
// as on a CPU without either): a kernel the machine lacks is a UserError. none when there is neither.
Bf16Kernel bf16_kernel_best();
// Whether this machine can run kernel k (asks for AMX permission when k is amx).
bool bf16_kernel_supported(Bf16Kernel k);
// The bf16 kernels this machine can run, fastest first (empty: none).
std::vector<Bf16Kernel> bf16_kernels_supported();

// The kernel sgemm uses from now on: none = fp32 products; k must be supported. Not thread-safe:
// set it between runs (the trainer does, for train.precision: bf16).
void gemm_set_bf16_kernel(Bf16Kernel k);
// The kernel sgemm uses now (none = fp32).
Bf16Kernel gemm_bf16_kernel();

// The bf16 product with kernel k (not none); same arguments as sgemm.
void bf16_gemm(Bf16Kernel k, bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float* A,
               int lda, const float* B, int ldb, float beta, float* C, int ldc);

// ---- Tiles, for kernels that fuse their own products (the bf16 flash kernel) ------------------
// The packed layout of bf16_gemm: a tile is 16 rows x 32 values along K, bf16, as 16 lines of 16
// (even k, odd k) pairs; an A tile holds 16 rows of op(A), a B tile 16 columns of op(B) in AMX's
// "VNNI" order (line p = the pair (2p, 2p + 1) of K for each of the 16 columns). Values outside
// the matrix are packed as zeros.
constexpr int kBf16TileElems = 512;

// Packs the logical matrix X [R, K] -- X(r, k) = x[r·ld + k] when k_contig, else x[k·ld + r] --
// as RT x KT tiles, tile (t, kt) (rows 16t.., K values 32kt..) at out + (t·KT + kt)·512: A tiles
// (rows of X as rows of A), or with b_layout B tiles (rows of X as columns of B). Rounds to bf16.
void bf16_tiles_pack(const float* x, int ld, bool k_contig, int R, int K, int RT, int KT, bool b_layout,
                     uint16_t* out);

// C [16·MT, 16·NT] (row stride ldc) (+)= A·B over KT tiles of K, with kernel k (amx or avx512bf16):
// A row-tile t, K tile kt at a + t·a_ts + kt·512 (likewise B column-tile t at b + t·b_ts + kt·512).
// MT and NT even. Each element sums its pairs in order along K (the bits do not depend on the
// caller's blocking). With k = amx the calling thread must hold a Bf16TileScope.
void bf16_tiles_product(Bf16Kernel k, const uint16_t* a, size_t a_ts, const uint16_t* b, size_t b_ts, int MT,
                        int NT, int KT, float* C, size_t ldc, bool accumulate);

// AMX: configures this thread's tile registers (16 rows x 64 bytes, all eight) and releases them
// at the end of the scope (no-op for the other kernels); bf16_gemm's threads hold one too.
class Bf16TileScope {
 public:
  explicit Bf16TileScope(Bf16Kernel k);
  ~Bf16TileScope();
  Bf16TileScope(const Bf16TileScope&) = delete;
  Bf16TileScope& operator=(const Bf16TileScope&) = delete;

 private:
  [[maybe_unused]] bool amx_;
};

// fp32 -> bf16 bits, to nearest, ties to even (NaN stays NaN); and back (exact).
inline uint16_t to_bf16(float x) {
  uint32_t u;
  __builtin_memcpy(&u, &x, 4);
  if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu)) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
inline float from_bf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float x;
  __builtin_memcpy(&x, &u, 4);
  return x;
}

// sgemm uses kernel k for the scope's life, then the one before.
class GemmBf16Scope {
 public:
  explicit GemmBf16Scope(Bf16Kernel k) : prev_(gemm_bf16_kernel()) { gemm_set_bf16_kernel(k); }
  ~GemmBf16Scope() { gemm_set_bf16_kernel(prev_); }
  GemmBf16Scope(const GemmBf16Scope&) = delete;
  GemmBf16Scope& operator=(const GemmBf16Scope&) = delete;

 private:
  Bf16Kernel prev_;
};

}  // namespace attnlab
