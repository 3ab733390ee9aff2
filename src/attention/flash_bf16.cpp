// The bf16 flash kernel (train.precision: bf16): the fp32 kernel's tiles and online softmax
// (flash.cpp, flash_backward.cpp) with every tile product on bf16 inputs and fp32 accumulation,
// on AMX or AVX512-BF16 (core/gemm_bf16.h). Only the products' operands are rounded to bf16: Q,
// K, V and dO as they are packed into tiles, and P and dS as they enter the products that read
// them. The scores, the softmax with its running max and sum, D_i = rowsum(dO ∘ O), dS itself
// and every accumulator stay fp32:
//   forward   S = bf16(Q) bf16(K)ᵀ ;  P = exp(S − m) (online, fp32) ;  O += bf16(P) bf16(V)
//   backward  P = exp(S − L) ;  dP = bf16(dO) bf16(V)ᵀ ;  dS = P ∘ (dP − D)
//             dV += bf16(P)ᵀ bf16(dO) ;  dK += bf16(dS)ᵀ bf16(Q) ;  dQ += bf16(dS) bf16(K)
// One task per (b, kv head), as the fp32 kernel's fused schedule: every output element is summed
// by one task in a fixed order, so the bits do not depend on the thread count (they may differ
// between the AMX and AVX512-BF16 kernels, as bf16_gemm's do). Tiles are zero-padded to
// multiples of 32 queries, keys and D.
#include "attention/flash.h"
#include "attention/flash_tiles.h"
#include "core/gemm_bf16.h"

namespace attnlab {

using namespace flash_tiles;

namespace {

constexpr int BQ = kFlashBlockQ, BK = kFlashBlockK;
constexpr size_t kTE = kBf16TileElems;
inline int r32(int n) { return (n + 31) / 32 * 32; }

// The four ways an fp32 block X [rows, cols] (row stride ld) enters a tile product, packed as
// tiles (t, kt) at out + (t·KT + kt)·512, KT = the K extent / 32 (rounded up):
//   as_a   A = X     (A's rows = X's rows, K = cols)      as_at  A = Xᵀ  (K = rows)
//   as_b   B = X     (K = rows, B's columns = cols)       as_bt  B = Xᵀ  (K = cols)
void as_a(const float* x, size_t ld, int rows, int cols, uint16_t* out) {
  bf16_tiles_pack(x, int(ld), true, rows, cols, r32(rows) / 16, r32(cols) / 32, false, out);
}
void as_at(const float* x, size_t ld, int rows, int cols, uint16_t* out) {
  bf16_tiles_pack(x, int(ld), false, cols, rows, r32(cols) / 16, r32(rows) / 32, false, out);
}
void as_b(const float* x, size_t ld, int rows, int cols, uint16_t* out) {
  bf16_tiles_pack(x, int(ld), false, cols, rows, r32(cols) / 16, r32(rows) / 32, true, out);
}
void as_bt(const float* x, size_t ld, int rows, int cols, uint16_t* out) {
  bf16_tiles_pack(x, int(ld), true, rows, cols, r32(rows) / 16, r32(cols) / 32, true, out);
}

// C [r32(m), r32(n)] (row stride ldc) (+)= A·B over KT tiles of K: A packed with KT tiles per
// row tile, B's column tiles b_ts elements apart.
void prod(Bf16Kernel kk, const uint16_t* a, int m, const uint16_t* b, size_t b_ts, int n, int KT, float* C,
          size_t ldc, bool acc) {
  bf16_tiles_product(kk, a, size_t(KT) * kTE, b, b_ts, r32(m) / 16, r32(n) / 16, KT, C, ldc, acc);
}

}  // namespace

void flash_tiles::forward_bf16(float* out, float* lse, const float* q, const float* k, const float* v,
                               const FlashShape& sh, const FlashOptions& opt, FlashWorkspace& ws) {
  const int B = sh.B, Hq = sh.Hq, Hkv = sh.Hkv, Tq = sh.Tq, Tk = sh.Tk, D = sh.D;
  const int group = Hq / Hkv, Dp = r32(D), KD = Dp / 32, KK = r32(Tk) / 32;  // K tiles along D, along the keys
  const Layout lq(Hq, Tq, D, sh.ldq), lk(Hkv, Tk, D, sh.ldk);
  const bool par = double(B) * Hq * Tq * Tk * D >= kParallelMinWork;
  const Bf16Kernel kk = opt.bf16;
  // a thread's fp32 tiles: S [BQ, BK], acc [BQ, Dp], the running max and sum [2, BQ]; its bf16
  // tiles: the pair's Kᵀ (B tiles, r32(Tk)/16 column tiles of KD), its V (B tiles, Dp/16 column
  // tiles of KK), a query block and a P tile (A tiles)
  const size_t kt_el = size_t(2 * KK) * KD * kTE, v_el = size_t(Dp / 16) * KK * kTE;
  const size_t q_el = size_t(BQ / 16) * KD * kTE, p_el = size_t(BQ / 16) * (BK / 32) * kTE;
  ensure_thread_tiles(ws, size_t(BQ) * BK + size_t(BQ) * Dp + 2 * BQ);
  ensure_thread_bf16(ws, kt_el + v_el + q_el + p_el);
  const int nqb = (Tq + BQ - 1) / BQ;
#pragma omp parallel if (par)
  {
    const int tid = omp_get_thread_num();
    float* S = ws.thread_tiles[tid].data();
    float* acc = S + size_t(BQ) * BK;
    float* mrow = acc + size_t(BQ) * Dp;
    float* lrow = mrow + BQ;
    uint16_t* KT = ws.thread_bf16[tid].data();
    uint16_t* Vt = KT + kt_el;
    uint16_t* Qt = Vt + v_el;
    uint16_t* Pt = Qt + q_el;
    const Bf16TileScope tiles(kk);
#pragma omp for schedule(static, 1)
    for (int bg = 0; bg < B * Hkv; bg++) {
      const int b = bg / Hkv, g = bg % Hkv;
      as_bt(k + lk.at(b, g), lk.rs, Tk, D, KT);  // for S = Q Kᵀ
      as_b(v + lk.at(b, g), lk.rs, Tk, D, Vt);   // for O += P V
      for (int h = g * group; h < (g + 1) * group; h++) {
        const TileCtx t = tile_ctx(opt, Tq, Tk, b, h);
        for (int qb = 0; qb < nqb; qb++) {
          const int i0 = qb * BQ, mr = std::min(BQ, Tq - i0);
          as_a(q + lq.at(b, h) + size_t(i0) * lq.rs, lq.rs, mr, D, Qt);
          std::fill(acc, acc + size_t(BQ) * Dp, 0.0f);  // every row: the products run over r32(mr) rows
          std::fill(mrow, mrow + mr, kNegInf);
          std::fill(lrow, lrow + mr, 0.0f);
          const KeyBand kr = block_keys(t, i0, mr);
          for (int j0 = kr.lo / BK * BK; j0 < kr.hi; j0 += BK) {
            const int nc = std::min(BK, Tk - j0), ncp = r32(nc);
            prod(kk, Qt, mr, KT + size_t(j0 / 16) * KD * kTE, size_t(KD) * kTE, ncp, KD, S, BK, false);
            online_softmax(S, acc, Dp, mrow, lrow, mr, ncp, nc, i0, j0, t);
            as_a(S, BK, mr, ncp, Pt);
            prod(kk, Pt, mr, Vt + size_t(j0 / 32) * kTE, size_t(KK) * kTE, Dp, ncp / 32, acc, Dp, true);
          }
          finish_rows(out + lq.at(b, h) + size_t(i0) * lq.rs, lq.rs, lse + (size_t(b) * Hq + h) * Tq + i0, acc, Dp,
                      mrow, lrow, mr, D);
        }
      }
    }
  }
}

namespace {

// One backward call in bf16: its shapes and buffers, and the tile steps of one (b, kv head).
class BackwardBf16 {
 public:
  BackwardBf16(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
               const float* lse, const float* delta, const FlashShape& sh, const FlashOptions& opt)
      : dq_(dq), dk_(dk), dv_(dv), dout_(dout), q_(q), k_(k), v_(v), lse_(lse), delta_(delta), opt_(opt), kk(opt.bf16),
        Hq(sh.Hq), Hkv(sh.Hkv), Tq(sh.Tq), Tk(sh.Tk), D(sh.D), group(Hq / Hkv), Dp(r32(D)), KD(Dp / 32),
        nqb((Tq + BQ - 1) / BQ), nkb((Tk + BK - 1) / BK), lq(Hq, Tq, D, sh.ldq), lk(Hkv, Tk, D, sh.ldk) {}

  // per thread, fp32: P, dS [BQ, BK], dK, dV [BK, Dp], dQ of the group's heads [group, nqb·BQ, Dp]
  size_t floats() const { return 2 * size_t(BQ) * BK + 2 * size_t(BK) * Dp + dq_floats(); }
  // bf16: the key block's Kᵀ, Vᵀ (B tiles over D) and K (B tiles over keys); Pᵀ then dSᵀ (one
  // buffer, in turn) and dS as A tiles; then every query block of the group's heads, Q and dO as
  // A tiles and as B tiles, packed once per task and read by every key block
  size_t elems() const { return 5 * op_elems() + size_t(group) * nqb * 4 * q_elems(); }

  void pair(float* f, uint16_t* e, int b, int g) const {
    float* dQ = f + 2 * size_t(BQ) * BK + 2 * size_t(BK) * Dp;
    std::fill(dQ, dQ + dq_floats(), 0.0f);
    uint16_t* qd = e + 5 * op_elems();
    for (int h = g * group; h < (g + 1) * group; h++)
      for (int qb = 0; qb < nqb; qb++) {
        const int i0 = qb * BQ, mr = std::min(BQ, Tq - i0);
        const float* Qr = q_ + lq.at(b, h) + size_t(i0) * lq.rs;
        const float* dOr = dout_ + lq.at(b, h) + size_t(i0) * lq.rs;
        uint16_t* at = qd + (size_t(h - g * group) * nqb + qb) * 4 * q_elems();
        as_a(Qr, lq.rs, mr, D, at);                    // S = Q Kᵀ
        as_a(dOr, lq.rs, mr, D, at + q_elems());       // dP = dO Vᵀ
        as_b(Qr, lq.rs, mr, D, at + 2 * q_elems());    // dK += dSᵀ Q
        as_b(dOr, lq.rs, mr, D, at + 3 * q_elems());   // dV += Pᵀ dO
      }
    for (int kb = 0; kb < nkb; kb++) key_block(f, e, dQ, b, g, kb);
    const size_t hs = size_t(nqb) * BQ * Dp;
    for (int h = g * group; h < (g + 1) * group; h++)
      for (int i = 0; i < Tq; i++) {
        float* o = dq_ + lq.at(b, h) + size_t(i) * lq.rs;
        const float* a = dQ + size_t(h - g * group) * hs + size_t(i) * Dp;
        for (int d = 0; d < D; d++) o[d] = opt_.scale * a[d];
      }
  }

 private:
  float *dq_, *dk_, *dv_;
  const float *dout_, *q_, *k_, *v_, *lse_, *delta_;
  const FlashOptions& opt_;
  const Bf16Kernel kk;
  const int Hq, Hkv, Tq, Tk, D, group, Dp, KD, nqb, nkb;
  const Layout lq, lk;

  size_t dq_floats() const { return size_t(group) * nqb * BQ * Dp; }
  // room for one operand's tiles: a [64, Dp] or [64, 64] block, as A or B tiles
  size_t op_elems() const { return size_t(BQ / 16) * KD * 2 * kTE; }
  // a query block [BQ, Dp] of Q or dO: BQ/16 row tiles of KD (as A) or Dp/16 column tiles of
  // BQ/32 (as B), the same count
  size_t q_elems() const { return size_t(BQ / 16) * KD * kTE; }

  // dK, dV of key block kb summed over the group's heads and the query blocks that see it, and
  // dQ (row stride Dp, head after head) += dS K of every tile
  void key_block(float* f, uint16_t* e, float* dQ, int b, int g, int kb) const {
    float* P = f;
    float* dS = P + size_t(BQ) * BK;
    float* dK = dS + size_t(BQ) * BK;
    float* dV = dK + size_t(BK) * Dp;
    const size_t te = op_elems();
    uint16_t *kT = e, *vT = e + te, *kB = e + 2 * te, *pT = e + 3 * te, *sA = e + 4 * te;
    const int j0 = kb * BK, nc = std::min(BK, Tk - j0), ncp = r32(nc), KN = ncp / 32;
    const size_t src = lk.at(b, g) + size_t(j0) * lk.rs;
    as_bt(k_ + src, lk.rs, nc, D, kT);  // S = Q Kᵀ
    as_bt(v_ + src, lk.rs, nc, D, vT);  // dP = dO Vᵀ
    as_b(k_ + src, lk.rs, nc, D, kB);   // dQ += dS K
    std::fill(dK, dK + size_t(BK) * Dp, 0.0f);
    std::fill(dV, dV + size_t(BK) * Dp, 0.0f);
    for (int h = g * group; h < (g + 1) * group; h++) {
      const TileCtx t = tile_ctx(opt_, Tq, Tk, b, h);
      const size_t bh = size_t(b) * Hq + h;
      for (int qb = 0; qb < nqb; qb++) {
        const int i0 = qb * BQ, mr = std::min(BQ, Tq - i0), KQ = r32(mr) / 32;
        const KeyBand kr = block_keys(t, i0, mr);
        if (kr.hi <= j0 || kr.lo >= j0 + nc) continue;  // no query of the block sees these keys
        const size_t qe = q_elems();
        const uint16_t* qA = e + 5 * te + (size_t(h - g * group) * nqb + qb) * 4 * qe;
        const uint16_t *dA = qA + qe, *qB = qA + 2 * qe, *dB = qA + 3 * qe;
        prod(kk, qA, mr, kT, size_t(KD) * kTE, ncp, KD, P, BK, false);
        probs_from_lse(P, mr, ncp, nc, i0, j0, lse_ + bh * Tq + i0, t, tile_full(t, i0, mr, j0, nc, ncp));
        prod(kk, dA, mr, vT, size_t(KD) * kTE, ncp, KD, dS, BK, false);  // dP, then dS = P ∘ (dP − D_i)
        for (int r = 0; r < mr; r++) {
          float* ds = dS + size_t(r) * BK;
          const float* p = P + size_t(r) * BK;
          const float dr = delta_[bh * Tq + i0 + r];
          for (int j = 0; j < ncp; j += 16) st(ds + j, ld(p + j) * (ld(ds + j) - dr));
        }
        as_at(P, BK, mr, ncp, pT);  // dV += Pᵀ dO
        prod(kk, pT, ncp, dB, size_t(KQ) * kTE, Dp, KQ, dV, Dp, true);
        as_at(dS, BK, mr, ncp, pT);  // dK += dSᵀ Q
        prod(kk, pT, ncp, qB, size_t(KQ) * kTE, Dp, KQ, dK, Dp, true);
        as_a(dS, BK, mr, ncp, sA);  // dQ += dS K
        prod(kk, sA, mr, kB, size_t(KN) * kTE, Dp, KN, dQ + size_t(h - g * group) * nqb * BQ * Dp + size_t(i0) * Dp,
             Dp, true);
      }
    }
    write_key_grads(dk_, dv_, lk, b, g, j0, nc, D, Dp, opt_.scale, dK, dV);
  }
};

}  // namespace

void flash_tiles::backward_bf16(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                const float* v, const float* out, const float* lse, const FlashShape& sh,
                                const FlashOptions& opt, FlashWorkspace& ws) {
  const Layout lq(sh.Hq, sh.Tq, sh.D, sh.ldq);
  const bool par = double(sh.B) * sh.Hq * sh.Tq * sh.Tk * sh.D >= kParallelMinWork;
  float* delta = grow(ws.delta, size_t(sh.B) * sh.Hq * sh.Tq);
  pack_rows_and_delta(nullptr, nullptr, delta, q, dout, out, sh, lq, sh.D, par, ws);  // D_i = rowsum(dO ∘ O)
  const BackwardBf16 pass(dq, dk, dv, dout, q, k, v, lse, delta, sh, opt);
  ensure_thread_tiles(ws, pass.floats());
  ensure_thread_bf16(ws, pass.elems());
#pragma omp parallel if (par)
  {
    const int tid = omp_get_thread_num();
    const Bf16TileScope tiles(opt.bf16);
#pragma omp for collapse(2) schedule(static, 1)
    for (int b = 0; b < sh.B; b++)
      for (int g = 0; g < sh.Hkv; g++) pass.pair(ws.thread_tiles[tid].data(), ws.thread_bf16[tid].data(), b, g);
  }
}

}  // namespace attnlab
