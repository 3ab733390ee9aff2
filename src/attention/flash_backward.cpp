// The backward of the CPU flash kernel (flash.h, docs/attention.md): per tile P = exp(S − L)
// recomputed from the saved log-sum-exp, D_i = rowsum(dO ∘ O), dS = P ∘ (dO Vᵀ − D), and
// dV += Pᵀ dO, dK += s·dSᵀ Q, dQ += s·dS K, each output summed by one task in a fixed order.
#include "attention/flash.h"
#include "attention/flash_tiles.h"

namespace attnlab {

using namespace flash_tiles;

namespace {

// Rows [0, T) of heads h0 .. h0 + nh − 1 of batch row b in x (layout l), D floats each: set to 0,
// or multiplied by c.
void zero_rows(float* x, const Layout& l, int b, int h0, int nh, int T, int D) {
  for (int h = h0; h < h0 + nh; h++)
    for (int i = 0; i < T; i++) std::fill_n(x + l.at(b, h) + size_t(i) * l.rs, D, 0.0f);
}
void scale_rows(float* x, const Layout& l, int b, int h0, int nh, int T, int D, float c) {
  for (int h = h0; h < h0 + nh; h++)
    for (int i = 0; i < T; i++) {
      float* row = x + l.at(b, h) + size_t(i) * l.rs;
      for (int d = 0; d < D; d++) row[d] *= c;
    }
}

// dq, dk, dv = 0: the backward of a call without queries or keys.
void zero_grads(float* dq, float* dk, float* dv, const FlashShape& sh, const Layout& lq, const Layout& lk) {
  const int B = sh.B, Hq = sh.Hq, Hkv = sh.Hkv, Tq = sh.Tq, Tk = sh.Tk, D = sh.D;
  for (int b = 0; b < B; b++) {
    for (int h = 0; h < Hq; h++)
      for (int i = 0; i < Tq; i++) std::fill_n(dq + lq.at(b, h) + size_t(i) * lq.rs, D, 0.0f);
    for (int g = 0; g < Hkv; g++)
      for (int j = 0; j < Tk; j++) {
        std::fill_n(dk + lk.at(b, g) + size_t(j) * lk.rs, D, 0.0f);
        std::fill_n(dv + lk.at(b, g) + size_t(j) * lk.rs, D, 0.0f);
      }
  }
}

// Kᵀ and Vᵀ of every (b, kv head) in panels (pack_panels) unless kt, vt are null (packed per key
// block by the fused backward); and K as padded rows [Tkp, Dp] into kpack unless it is null.
void pack_keys(float* kt, float* vt, float* kpack, const float* k, const float* v, const FlashShape& sh,
               const Layout& lk, int Dp, int Tkp, bool par) {
  const int Hkv = sh.Hkv, Tk = sh.Tk, D = sh.D;
#pragma omp parallel for schedule(static) if (par)
  for (int bg = 0; bg < sh.B * Hkv; bg++) {
    const size_t src = lk.at(bg / Hkv, bg % Hkv);
    if (kt) {
      pack_panels(kt + size_t(bg) * panel_floats(Tk, D), k + src, lk.rs, Tk, D);
      pack_panels(vt + size_t(bg) * panel_floats(Tk, D), v + src, lk.rs, Tk, D);
    }
    if (!kpack) continue;
    float* ko = kpack + size_t(bg) * Tkp * Dp;
    pack_rows(ko, k + src, lk.rs, Tk, D, Dp);
    std::fill(ko + size_t(Tk) * Dp, ko + size_t(Tkp) * Dp, 0.0f);
  }
}

}  // namespace

// Q and dO as padded rows into qpack, dopack (unless null: read in place), and D_i = rowsum(dO ∘ O)
// into delta [B,Hq,Tq].
void flash_tiles::pack_rows_and_delta(float* qpack, float* dopack, float* delta, const float* q, const float* dout,
                         const float* out, const FlashShape& sh, const Layout& lq, int Dp, bool par,
                         FlashWorkspace& ws) {
  const int Hq = sh.Hq, Tq = sh.Tq, D = sh.D;
  ensure_thread_tiles(ws, size_t(D) + 16);
#pragma omp parallel for schedule(static) if (par)
  for (int bh = 0; bh < sh.B * Hq; bh++) {
    const size_t base = lq.at(bh / Hq, bh % Hq);
    if (qpack) {
      pack_rows(qpack + size_t(bh) * Tq * Dp, q + base, lq.rs, Tq, D, Dp);
      pack_rows(dopack + size_t(bh) * Tq * Dp, dout + base, lq.rs, Tq, D, Dp);
    }
    // D_i is summed by the tile kernel that computes dP_ij = dO_i·v_j below, in the same order
    // (d = 0..D−1, one multiply-add per step), not by a faster reduction of its own. Reason:
    // at huge scores a row of P is exactly one-hot, O_i is then exactly v_max, and the true
    // dS_i,max = P(dP − D_i) is 0. Summed in another order, dP and D_i differed by an ulp of
    // |dO||v|, and that ulp, times K (huge as well), put a spurious gradient into Q and K of up
    // to 1e13 × the real gradients (tests/attention/test_abuse.cpp, flash vs naive). Summed the
    // same way, dP_max == D_i bit for bit and dS is 0, as in the naive backward.
    float* orow = ws.thread_tiles[omp_get_thread_num()].data();  // [D + 16]: O_i, zero-padded
    for (int i = 0; i < Tq; i++) {
      const float* a = dout + base + size_t(i) * lq.rs;
      std::copy_n(out + base + size_t(i) * lq.rs, D, orow);
      std::fill(orow + D, orow + D + 16, 0.0f);
      // one register: lane 0 = Σ_d a[d]·orow[d] (lanes 1..15, shifted rows, are ignored)
      float lanes[16];
      tile_kernel<1, 1>(D, a, 0, 1, orow, 1, lanes, 16, false);
      delta[size_t(bh) * Tq + i] = lanes[0];
    }
  }
}

namespace {

// One backward call: its shapes, buffers and schedule, and the tile steps its tasks run.
class Backward {
 public:
  Backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k, const float* v,
           const float* out, const float* lse, const FlashShape& sh, const FlashOptions& opt, FlashWorkspace& ws)
      : dq_(dq), dk_(dk), dv_(dv), dout_(dout), q_(q), k_(k), v_(v), lse_(lse), opt_(opt), B(sh.B), Hq(sh.Hq),
        Hkv(sh.Hkv), Tq(sh.Tq), Tk(sh.Tk), D(sh.D), group(Hq / Hkv), Dp(round16(D)), Tkp(round16(Tk)),
        nqb((Tq + BQ - 1) / BQ), nkb((Tk + BK - 1) / BK), lq(Hq, Tq, D, sh.ldq), lk(Hkv, Tk, D, sh.ldk) {
    par = double(B) * Hq * Tq * Tk * D >= kParallelMinWork;
    const int threads = par ? omp_get_max_threads() : 1;
    fused = opt.schedule == FlashSchedule::fused ||
            (opt.schedule == FlashSchedule::automatic && by_pairs(B * Hkv, threads));
    // Rows of K, Q and dO are read in place when they are contiguous (head-major) and need no
    // padding (D, and for K also Tk, multiples of 16); otherwise they are packed: fused, by each
    // task into its thread's tiles, one key block of K (and one block of Q and dO per tile) at a
    // time; split, into padded copies of the whole call. Kᵀ and Vᵀ (for S = Q Kᵀ and dP = dO Vᵀ)
    // in panels of BK keys: fused, each task transposes the key block it is on; split, every
    // (b, kv head) up front.
    rows_in_place = D == Dp && lq.rs == size_t(D);
    k_in_place = D == Dp && Tk == Tkp && lk.rs == size_t(D);
    kt = fused ? nullptr : grow(ws.kt, size_t(B) * Hkv * panel_floats(Tk, D));
    vt = fused ? nullptr : grow(ws.vt, size_t(B) * Hkv * panel_floats(Tk, D));
    kpack = k_in_place || fused ? nullptr : grow(ws.kp, size_t(B) * Hkv * Tkp * Dp);
    qpack = rows_in_place || fused ? nullptr : grow(ws.qp, size_t(B) * Hq * Tq * Dp);
    dopack = rows_in_place || fused ? nullptr : grow(ws.dop, size_t(B) * Hq * Tq * Dp);
    delta = grow(ws.delta, size_t(B) * Hq * Tq);
    pack_keys(kt, vt, kpack, k, v, sh, lk, Dp, Tkp, par);
    ks = k_in_place ? lk.rs : size_t(Dp);
    qs = rows_in_place ? lq.rs : size_t(Dp);  // Q and dO rows as read, in place or packed
    pack_rows_and_delta(qpack, dopack, delta, q, dout, out, sh, lq, Dp, par, ws);  // D_i = rowsum(dO ∘ O)
    // Fused, dQ of the task's heads accumulates in dq itself when its rows need no padding (scaled
    // in place at the end), else in a [group, Tq, Dp] buffer of the thread's.
    dq_in_place = D == Dp;
    dq_floats = fused && !dq_in_place ? size_t(group) * Tq * Dp : 0;
    // fused: the key block's Kᵀ and Vᵀ [2, D, BK], its K rows [BK, Dp] and a Q and dO block [2, BQ, Dp]
    kvt_floats = fused ? 2 * size_t(D) * BK + size_t(BK) * Dp + 2 * size_t(BQ) * Dp : 0;
    ensure_thread_tiles(ws, tile_floats() + kvt_floats + dq_floats);
  }

  void run(FlashWorkspace& ws) {
#pragma omp parallel if (par)
    {
      float* P = ws.thread_tiles[omp_get_thread_num()].data();
      if (fused) {
#pragma omp for collapse(2) schedule(static, 1)
        for (int b = 0; b < B; b++)
          for (int g = 0; g < Hkv; g++) fused_pair(P, b, g);
      } else {
        // dK_g, dV_g: one task per (b, kv head, key block); then dQ_h per (b, h, query block)
#pragma omp for collapse(3) schedule(static, 1)
        for (int b = 0; b < B; b++)
          for (int g = 0; g < Hkv; g++)
            for (int kb = 0; kb < nkb; kb++) key_block(P, nullptr, nullptr, 0, 0, b, g, kb);
#pragma omp for collapse(3) schedule(static, 1)
        for (int b = 0; b < B; b++)
          for (int h = 0; h < Hq; h++)
            for (int qb = 0; qb < nqb; qb++) split_dq(P, b, h, qb);
      }
    }
  }

 private:
  static constexpr int BQ = kFlashBlockQ, BK = kFlashBlockK;
  float *dq_, *dk_, *dv_;
  const float *dout_, *q_, *k_, *v_, *lse_;
  const FlashOptions& opt_;
  const int B, Hq, Hkv, Tq, Tk, D, group, Dp, Tkp, nqb, nkb;
  const Layout lq, lk;
  bool par = false, fused = false, rows_in_place = false, k_in_place = false, dq_in_place = false;
  float *kt = nullptr, *vt = nullptr, *kpack = nullptr, *qpack = nullptr, *dopack = nullptr, *delta = nullptr;
  size_t ks = 0, qs = 0, dq_floats = 0, kvt_floats = 0;

  // a thread's tiles: P, dS [BQ, BK]; acc1 [max(BQ,BK), Dp]; acc2 [BK, Dp]; then (fused) the key
  // block's Kᵀ, Vᵀ [2, D, BK] and the dQ buffer
  size_t tile_floats() const { return 2 * size_t(BQ) * BK + 2 * size_t(std::max(BQ, BK)) * Dp; }
  // rows of K (for dQ += dS K), Q and dO as read: in place, or the padded copies
  const float* krows(int b, int g) const {
    return k_in_place ? k_ + lk.at(b, g) : kpack + (size_t(b) * Hkv + g) * Tkp * Dp;
  }
  const float* qrows(int b, int h) const {
    return rows_in_place ? q_ + lq.at(b, h) : qpack + (size_t(b) * Hq + h) * Tq * Dp;
  }
  const float* dorows(int b, int h) const {
    return rows_in_place ? dout_ + lq.at(b, h) : dopack + (size_t(b) * Hq + h) * Tq * Dp;
  }

  // P and dS = P ∘ (dP − D) of the tile (queries i0.., keys j0..) of head h: P in P, dS in dS.
  // KT, VT: the key block's Kᵀ and Vᵀ panels [D, BK]; Qb, dOb: the query block's rows (stride rs).
  void tile_grads(float* P, float* dS, int b, int h, int i0, int mr, int j0, int nc, int ncp, const float* KT,
                  const float* VT, const float* Qb, const float* dOb, size_t rs) const {
    const TileCtx t = tile_ctx(opt_, Tq, Tk, b, h);
    const size_t bh = size_t(b) * Hq + h;
    tile_gemm(mr, ncp, D, Qb, rs, 1, KT, BK, P, BK, false);
    probs_from_lse(P, mr, ncp, nc, i0, j0, lse_ + bh * Tq + i0, t, tile_full(t, i0, mr, j0, nc, ncp));
    // dP = dO Vᵀ, then dS = P ∘ (dP − D_i) in place
    tile_gemm(mr, ncp, D, dOb, rs, 1, VT, BK, dS, BK, false);
    const float* Di = delta + bh * Tq + i0;
    for (int r = 0; r < mr; r++) {
      float* ds = dS + size_t(r) * BK;
      const float* p = P + size_t(r) * BK;
      const float dr = Di[r];
      for (int j = 0; j < ncp; j += 16) st(ds + j, ld(p + j) * (ld(ds + j) - dr));
    }
  }

  // dK_g, dV_g of key block kb, summed over the group's heads and the query blocks that see the
  // keys (in that order), written out scaled; with dQ non-null also dQ_h += dS K for every tile
  // (dQ_h at dQ + (h − g·group)·dq_hs, row stride dq_rs). pk: null = the split schedule (Kᵀ, Vᵀ
  // and the rows packed up front), else the thread's [kvt_floats], where this block's Kᵀ and Vᵀ
  // (and K rows, Q and dO blocks when they are not read in place) are packed as they are needed.
  void key_block(float* P, float* pk, float* dQ, size_t dq_hs, size_t dq_rs, int b, int g, int kb) const {
    float* dS = P + size_t(BQ) * BK;
    float* dK = dS + size_t(BQ) * BK;
    float* dV = dK + size_t(std::max(BQ, BK)) * Dp;
    const int j0 = kb * BK, nc = std::min(BK, Tk - j0), ncp = round16(nc);
    std::fill(dK, dK + size_t(ncp) * Dp, 0.0f);
    std::fill(dV, dV + size_t(ncp) * Dp, 0.0f);
    const float *KT, *VT, *Kb = nullptr;
    size_t kbs = ks;  // row stride of Kb
    float *qt = nullptr, *dot = nullptr;  // the packed Q and dO block (fused, rows not in place)
    if (pk) {
      const size_t src = lk.at(b, g) + size_t(j0) * lk.rs;
      float* kr = pk + 2 * size_t(D) * BK;
      pack_transposed(pk, k_ + src, lk.rs, nc, D, BK);
      pack_transposed(pk + size_t(D) * BK, v_ + src, lk.rs, nc, D, BK);
      KT = pk, VT = pk + size_t(D) * BK;
      if (!k_in_place) {  // K rows [ncp, Dp], padded rows zero (their dS is 0, but 0·garbage may not be)
        pack_rows(kr, k_ + src, lk.rs, nc, D, Dp);
        std::fill(kr + size_t(nc) * Dp, kr + size_t(ncp) * Dp, 0.0f);
        Kb = kr, kbs = Dp;
      }
      if (k_in_place) Kb = krows(b, g) + size_t(j0) * ks;
      if (!rows_in_place) qt = kr + size_t(BK) * Dp, dot = qt + size_t(BQ) * Dp;
    } else {
      KT = kt + (size_t(b) * Hkv + g) * panel_floats(Tk, D) + size_t(j0) * D;
      VT = vt + (size_t(b) * Hkv + g) * panel_floats(Tk, D) + size_t(j0) * D;
      Kb = krows(b, g) + size_t(j0) * ks;
    }
    for (int h = g * group; h < (g + 1) * group; h++)
      for (int qb = 0; qb < nqb; qb++) {
        const int i0 = qb * BQ, mr = std::min(BQ, Tq - i0);
        const KeyBand kr = block_keys(tile_ctx(opt_, Tq, Tk, b, h), i0, mr);
        if (kr.hi <= j0 || kr.lo >= j0 + nc) continue;  // no query of the block sees these keys
        const float *Qb = qt, *dOb = dot;
        size_t rs = Dp;
        if (qt) {
          pack_rows(qt, q_ + lq.at(b, h) + size_t(i0) * lq.rs, lq.rs, mr, D, Dp);
          pack_rows(dot, dout_ + lq.at(b, h) + size_t(i0) * lq.rs, lq.rs, mr, D, Dp);
        } else {
          Qb = qrows(b, h) + i0 * qs, dOb = dorows(b, h) + i0 * qs, rs = qs;
        }
        tile_grads(P, dS, b, h, i0, mr, j0, nc, ncp, KT, VT, Qb, dOb, rs);
        // dV += Pᵀ dO ;  dK += dSᵀ Q   (A read transposed: A(c, r) = P[r, c])
        tile_gemm(ncp, Dp, mr, P, 1, BK, dOb, rs, dV, Dp, true);
        tile_gemm(ncp, Dp, mr, dS, 1, BK, Qb, rs, dK, Dp, true);
        // dQ += dS K
        if (dQ) tile_gemm(mr, Dp, ncp, dS, BK, 1, Kb, kbs, dQ + size_t(h - g * group) * dq_hs + i0 * dq_rs, dq_rs, true);
      }
    write_key_grads(dk_, dv_, lk, b, g, j0, nc, D, Dp, opt_.scale, dK, dV);
  }

  // dQ rows [i0, i0 + mr) of head h ← s · dQ (row stride Dp)
  void write_dq(const float* dQ, int b, int h, int i0, int mr) const {
    float* dqo = dq_ + lq.at(b, h) + size_t(i0) * lq.rs;
    for (int r = 0; r < mr; r++)
      for (int d = 0; d < D; d++) dqo[size_t(r) * lq.rs + d] = opt_.scale * dQ[size_t(r) * Dp + d];
  }

  // fused: one task per (b, kv head), every key block once; dQ of the group's heads accumulates
  // over the key blocks in increasing order, as the split schedule sums it
  void fused_pair(float* P, int b, int g) const {
    float* kvt = P + tile_floats();
    if (dq_in_place) {
      zero_rows(dq_, lq, b, g * group, group, Tq, D);
      for (int kb = 0; kb < nkb; kb++) key_block(P, kvt, dq_ + lq.at(b, g * group), lq.sh, lq.rs, b, g, kb);
      scale_rows(dq_, lq, b, g * group, group, Tq, D, opt_.scale);
    } else {
      float* dqbuf = kvt + kvt_floats;  // [group, Tq, Dp]
      std::fill(dqbuf, dqbuf + dq_floats, 0.0f);
      for (int kb = 0; kb < nkb; kb++) key_block(P, kvt, dqbuf, size_t(Tq) * Dp, Dp, b, g, kb);
      for (int h = g * group; h < (g + 1) * group; h++) write_dq(dqbuf + size_t(h - g * group) * Tq * Dp, b, h, 0, Tq);
    }
  }

  // split: dQ_h of one query block, summing over the key blocks it sees
  void split_dq(float* P, int b, int h, int qb) const {
    float* dS = P + size_t(BQ) * BK;
    float* dQ = dS + size_t(BQ) * BK;
    const int g = h / group, i0 = qb * BQ, mr = std::min(BQ, Tq - i0);
    std::fill(dQ, dQ + size_t(mr) * Dp, 0.0f);
    const KeyBand kr = block_keys(tile_ctx(opt_, Tq, Tk, b, h), i0, mr);
    const float* K = krows(b, g);
    for (int j0 = kr.lo / BK * BK; j0 < kr.hi; j0 += BK) {
      const int nc = std::min(BK, Tk - j0), ncp = round16(nc);
      const size_t bg = size_t(b) * Hkv + g;
      const size_t pan = bg * panel_floats(Tk, D) + size_t(j0) * D;
      tile_grads(P, dS, b, h, i0, mr, j0, nc, ncp, kt + pan, vt + pan, qrows(b, h) + i0 * qs, dorows(b, h) + i0 * qs,
                 qs);
      tile_gemm(mr, Dp, ncp, dS, BK, 1, K + size_t(j0) * ks, ks, dQ, Dp, true);  // dQ += dS K
    }
    write_dq(dQ, b, h, i0, mr);
  }
};

}  // namespace

void flash_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                    const float* v, const float* out, const float* lse, const FlashShape& sh,
                    const FlashOptions& opt, FlashWorkspace& ws) {
  if (sh.Tq == 0 || sh.Tk == 0)
    return zero_grads(dq, dk, dv, sh, Layout(sh.Hq, sh.Tq, sh.D, sh.ldq), Layout(sh.Hkv, sh.Tk, sh.D, sh.ldk));
  if (opt.bf16 != Bf16Kernel::none) return backward_bf16(dq, dk, dv, dout, q, k, v, out, lse, sh, opt, ws);
  Backward pass(dq, dk, dv, dout, q, k, v, out, lse, sh, opt, ws);
  pass.run(ws);
}

}  // namespace attnlab
