// FlashAttention on the CPU (Dao et al. 2022; FlashAttention-2, Dao 2023): exact attention in
// tiles with an online softmax,
//   forward   per tile: m' = max(m, rowmax S), l = l·e^(m−m') + Σ e^(S−m'), O = O·e^(m−m') + e^(S−m') V;
//             at the end O /= l and L = m + log l (the log-sum-exp)
//   backward  P = exp(S − L) recomputed per tile, D_i = rowsum(dO ∘ O), dS = P ∘ (dO Vᵀ − D)
//             (flash_backward.cpp)
// The masks and the memory bound are in flash.h and docs/attention.md; the tile building blocks
// in flash_tiles.h.
#include "attention/flash.h"
#include "attention/flash_tiles.h"

namespace attnlab {

using namespace flash_tiles;

void flash_exp(float* y, const float* x, int n) {
  for (int i = 0; i + 16 <= n; i += 16) st(y + i, vexp(ld(x + i)));
}

// ---- forward -------------------------------------------------------------------------------

void flash_forward(float* out, float* lse, const float* q, const float* k, const float* v, const FlashShape& sh,
                   const FlashOptions& opt, FlashWorkspace& ws) {
  const int B = sh.B, Hq = sh.Hq, Hkv = sh.Hkv, Tq = sh.Tq, Tk = sh.Tk, D = sh.D;
  const int group = Hq / Hkv, Dp = round16(D), Tkp = round16(Tk);
  constexpr int BQ = kFlashBlockQ, BK = kFlashBlockK;
  if (Tq == 0) return;
  if (opt.bf16 != Bf16Kernel::none) return forward_bf16(out, lse, q, k, v, sh, opt, ws);
  const Layout lq(Hq, Tq, D, sh.ldq), lk(Hkv, Tk, D, sh.ldk);
  const bool par = double(B) * Hq * Tq * Tk * D >= kParallelMinWork;
  const int threads = par ? omp_get_max_threads() : 1;
  // Kᵀ in panels (pack_panels) and V as rows [Tk', D'] of a (b, kv head). V is read in place when
  // its rows are already contiguous and need no padding (head-major, D and Tk multiples of 16);
  // otherwise it is packed, and so is each query block of a token-major Q (rows H·D floats apart
  // land in few L1 sets, as flash_tiles.h says of Kᵀ). Fused (FlashSchedule), each task packs
  // the pair it works on into its thread's tiles (O(Tk·D) a thread); split, all pairs are packed
  // up front into the workspace (O(B·Hkv·Tk·D)) and the tasks are query blocks.
  const bool v_in_place = D == Dp && Tk == Tkp && lk.rs == size_t(D), q_in_place = lq.rs == size_t(D);
  const bool per_pair = opt.schedule == FlashSchedule::fused ||
                        (opt.schedule == FlashSchedule::automatic && by_pairs(B * Hkv, threads));
  const size_t kt_floats = panel_floats(Tk, D), vp_floats = v_in_place ? 0 : size_t(Tkp) * Dp;
  const size_t vs = v_in_place ? lk.rs : size_t(Dp);  // row stride of V as read
  auto pack_pair = [&](float* kto, float* vo, int bg) {
    const size_t src = lk.at(bg / Hkv, bg % Hkv);
    pack_panels(kto, k + src, lk.rs, Tk, D);
    if (v_in_place) return;
    pack_rows(vo, v + src, lk.rs, Tk, D, Dp);
    std::fill(vo + size_t(Tk) * Dp, vo + size_t(Tkp) * Dp, 0.0f);
  };
  float* kt = nullptr;
  float* vpack = nullptr;
  if (!per_pair) {
    kt = grow(ws.kt, size_t(B) * Hkv * kt_floats);
    vpack = v_in_place ? nullptr : grow(ws.vp, size_t(B) * Hkv * vp_floats);
#pragma omp parallel for schedule(static) if (par)
    for (int bg = 0; bg < B * Hkv; bg++)
      pack_pair(kt + size_t(bg) * kt_floats, vpack ? vpack + size_t(bg) * vp_floats : nullptr, bg);
  }
  // a thread's tiles: S [BQ, BK], acc [BQ, Dp], the running max and sum [2, BQ], the query block
  // [BQ, D] when Q is packed; then (fused) the pair's Kᵀ panels and V rows
  const size_t tile_floats = size_t(BQ) * BK + size_t(BQ) * Dp + 2 * BQ + size_t(BQ) * D;
  ensure_thread_tiles(ws, tile_floats + (per_pair ? kt_floats + vp_floats : 0));
  const int nqb = (Tq + BQ - 1) / BQ;

  // queries [qb·BQ, +BQ) of head h against every visible key block; KT, V: the head's kv pair
  auto query_block = [&](float* S, float* acc, float* mrow, float* lrow, int b, int h, int qb, const float* KT,
                         const float* V) {
    const int i0 = qb * BQ, mr = std::min(BQ, Tq - i0);
    const TileCtx t = tile_ctx(opt, Tq, Tk, b, h);
    const float* Q = q + lq.at(b, h) + size_t(i0) * lq.rs;
    size_t qs = lq.rs;
    if (!q_in_place) {
      float* qt = lrow + BQ;
      pack_rows(qt, Q, lq.rs, mr, D, D);
      Q = qt, qs = D;
    }
    std::fill(acc, acc + size_t(mr) * Dp, 0.0f);
    std::fill(mrow, mrow + mr, kNegInf);
    std::fill(lrow, lrow + mr, 0.0f);
    const KeyBand kr = block_keys(t, i0, mr);
    for (int j0 = kr.lo / BK * BK; j0 < kr.hi; j0 += BK) {
      const int nc = std::min(BK, Tk - j0), ncp = round16(nc);
      // S = Q Kᵀ for this tile (scale and mask below)
      tile_gemm(mr, ncp, D, Q, qs, 1, KT + size_t(j0) * D, BK, S, BK, false);
      online_softmax(S, acc, Dp, mrow, lrow, mr, ncp, nc, i0, j0, t);
      // O += P V
      tile_gemm(mr, Dp, ncp, S, BK, 1, V + size_t(j0) * vs, vs, acc, Dp, true);
    }
    finish_rows(out + lq.at(b, h) + size_t(i0) * lq.rs, lq.rs, lse + (size_t(b) * Hq + h) * Tq + i0, acc, Dp, mrow,
                lrow, mr, D);
  };

#pragma omp parallel if (par)
  {
    float* S = ws.thread_tiles[omp_get_thread_num()].data();  // [BQ, BK] scores, then P
    float* acc = S + size_t(BQ) * BK;                          // [BQ, Dp] unnormalised O
    float* mrow = acc + size_t(BQ) * Dp;                       // running max per row
    float* lrow = mrow + BQ;                                   // running Σ exp(s − m)
    if (per_pair) {
      float* kto = S + tile_floats;  // the pair's Kᵀ panels, then its V rows [Tkp, Dp] if packed
      float* vo = kto + kt_floats;
#pragma omp for schedule(static, 1)
      for (int bg = 0; bg < B * Hkv; bg++) {
        const int b = bg / Hkv, g = bg % Hkv;
        pack_pair(kto, vo, bg);
        const float* V = v_in_place ? v + lk.at(b, g) : vo;
        for (int h = g * group; h < (g + 1) * group; h++)
          for (int qb = 0; qb < nqb; qb++) query_block(S, acc, mrow, lrow, b, h, qb, kto, V);
      }
    } else {
#pragma omp for collapse(3) schedule(static, 1)
      for (int b = 0; b < B; b++)
        for (int h = 0; h < Hq; h++)
          for (int qb = 0; qb < nqb; qb++) {
            const size_t bg = size_t(b) * Hkv + h / group;
            const float* V = v_in_place ? v + lk.at(b, h / group) : vpack + bg * vp_floats;
            query_block(S, acc, mrow, lrow, b, h, qb, kt + bg * kt_floats, V);
          }
    }
  }
}

// ---- attention weights for inspection ------------------------------------------------------

void flash_weights(float* P, const float* q, const float* k, const float* lse, const FlashShape& sh,
                   const FlashOptions& opt) {
  const int B = sh.B, Hq = sh.Hq, Hkv = sh.Hkv, Tq = sh.Tq, Tk = sh.Tk, D = sh.D;
  const int group = Hq / Hkv, off = Tk - Tq;
  const Layout lq(Hq, Tq, D, sh.ldq), lk(Hkv, Tk, D, sh.ldk);
#pragma omp parallel for collapse(2) schedule(static) if (double(B) * Hq * Tq * Tk * D >= kParallelMinWork)
  for (int b = 0; b < B; b++)
    for (int h = 0; h < Hq; h++) {
      const unsigned char* keep = opt.key_keep ? opt.key_keep + size_t(b) * Tk : nullptr;
      const float slope = opt.alibi_slopes ? opt.alibi_slopes[h] : 0.0f;
      const float* K = k + lk.at(b, h / group);
      for (int i = 0; i < Tq; i++) {
        const size_t row = (size_t(b) * Hq + h) * Tq + i;
        float* w = P + row * Tk;
        std::fill(w, w + Tk, 0.0f);
        const float L = lse[row];
        if (L == kNegInf) continue;
        const int p = i + off;
        const KeyBand bd = key_band(p, Tk, opt.causal, opt.window);
        const float* Qi = q + lq.at(b, h) + size_t(i) * lq.rs;
        // The scores are recomputed here in another summation order than the tile GEMM of the
        // forward, so they differ from the forward's by a few ulps of |s|. exp(s − L) with the
        // saved L would turn that difference into a factor exp(±ulps): harmless for scores of
        // size ~1, but at |s| ≳ 1e7 (huge inputs with scale none) an ulp is > 1 and the weights
        // came out as 0, off by percents, or inf. So the row is normalised by its own maximum
        // and sum instead (L only says whether the row sees any key): the weights are a softmax
        // of the recomputed scores, sum to 1 and agree with the forward's to the scores' rounding.
        float mx = kNegInf;
        for (int j = bd.lo; j < bd.hi; j++) {
          if (!key_kept(keep, j)) continue;
          const float* Kj = K + size_t(j) * lk.rs;
          float s = 0.0f;
          for (int d = 0; d < D; d++) s += Qi[d] * Kj[d];
          s *= opt.scale;
          if (opt.alibi_slopes) s -= slope * float(std::abs(p - j));
          w[j] = s;
          mx = std::max(mx, s);
        }
        float sum = 0.0f;
        for (int j = bd.lo; j < bd.hi; j++) {
          if (!key_kept(keep, j)) continue;
          w[j] = std::exp(w[j] - mx);
          sum += w[j];
        }
        for (int j = bd.lo; j < bd.hi; j++) w[j] /= sum;  // padded keys stay 0
      }
    }
}

}  // namespace attnlab
