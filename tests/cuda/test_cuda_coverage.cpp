// GPU tests for what test_cuda_attention.cpp's grid of cases does not reach (issue: "CUDA: ready
// for its first GPU run"): causal with Tq > Tk at D = 64 and 128, sequences over 257, many
// (batch, head) rows, linear attention at odd head dims and with the small chunks of a 99 KiB
// device, one-hot softmax rows (exact zero gradients), bitwise repeatability of every kernel, and
// the bytes the backward and bf16 calls move. Without a GPU each prints "SKIPPED ..." (a CTest
// skip). The reference, inputs and tolerances are cuda_reference.h's.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "cuda/cuda_attention.h"
#include "cuda/internal.h"
#include "cuda_reference.h"  // tests/cuda/

using namespace attnlab;
using namespace cudatest;

namespace {

CudaAttnShape shape_of(const Problem& p) { return {p.B, p.Hq, p.Hkv, p.Tq, p.Tk, p.D}; }

CudaAttnOptions options_of(const Problem& p, CudaDType dt) {
  CudaAttnOptions o;
  o.scale = float(p.scale);
  o.causal = p.causal;
  o.key_keep = p.keep.empty() ? nullptr : p.keep.data();
  o.dtype = dt;
  return o;
}

// forward + backward outputs of one call pair, concatenated: out, stat, dq, dk, dv
std::vector<float> run_pair(const Inputs& in, CudaDType dt, bool linear) {
  const Problem& p = in.p;
  const CudaAttnShape s = shape_of(p);
  const CudaAttnOptions o = options_of(p, dt);
  std::vector<float> r(2 * p.nq() + p.rows() + 2 * p.nkv());
  float* out = r.data();
  float* stat = out + p.nq();
  float* dq = stat + p.rows();
  float* dk = dq + p.nq();
  float* dv = dk + p.nkv();
  if (linear) {
    cuda_linear_forward(s, o, in.q.data(), in.k.data(), in.v.data(), out, stat);
    cuda_linear_backward(s, o, in.q.data(), in.k.data(), in.v.data(), out, stat, in.dout.data(), dq,
                         dk, dv);
  } else {
    cuda_flash_forward(s, o, in.q.data(), in.k.data(), in.v.data(), out, stat);
    cuda_flash_backward(s, o, in.q.data(), in.k.data(), in.v.data(), out, stat, in.dout.data(), dq,
                        dk, dv);
  }
  return r;
}

}  // namespace

TEST_CASE("causal with more queries than keys at D = 64 and 128") {
  if (skip_without_gpu("causal Tq > Tk")) return;
  std::uint64_t seed = 500;
  for (int D : {64, 128})
    for (Mask m : {Mask::causal, Mask::causal_padding})
      for (CudaDType dt : {CudaDType::f32, CudaDType::bf16})
        for (bool linear : {false, true}) check_case({2, 4, 2, 130, 63, D, m, dt}, linear, seed++);
}

TEST_CASE("sequences longer than 257 and many (batch, head) rows") {
  if (skip_without_gpu("long sequences, many rows")) return;
  std::uint64_t seed = 600;
  for (bool linear : {false, true}) {
    check_case({1, 2, 1, 600, 600, 64, Mask::causal_padding, CudaDType::f32}, linear, seed++);
    check_case({1, 2, 2, 333, 700, 128, Mask::causal, CudaDType::bf16}, linear, seed++);
    // B·Hq = 1040 query rows (1040 grid rows in y for flash, blocks in x for linear), GQA 4:1
    check_case({130, 8, 2, 40, 70, 32, Mask::padding, CudaDType::f32}, linear, seed++);
  }
}

TEST_CASE("linear attention at head dims other than 32, 64, 128") {
  if (skip_without_gpu("linear attention, odd head dims")) return;
  std::uint64_t seed = 700;
  for (int D : {1, 7, 48, 96, 100, 127})
    for (Mask m : {Mask::none, Mask::causal_padding})
      check_case({2, 2, 1, 70, 90, D, m, CudaDType::f32}, true, seed++);
}

TEST_CASE("linear attention with the chunk a 99 KiB device gets (sm_86, sm_89)") {
  if (skip_without_gpu("linear attention, 99 KiB chunks")) return;
  REQUIRE(linear_chunk(128, 99 * 1024) == 8);
  struct Uncap {  // the cap is process-wide: lift it however this test ends
    ~Uncap() { cuda_set_linear_smem_cap(0); }
  } uncap;
  cuda_set_linear_smem_cap(99 * 1024);
  std::uint64_t seed = 800;
  for (Mask m : {Mask::none, Mask::causal, Mask::causal_padding})
    for (CudaDType dt : {CudaDType::f32, CudaDType::bf16})
      check_case({2, 4, 2, 130, 100, 128, m, dt}, true, seed++);
  cuda_set_linear_smem_cap(60 * 1024);  // C = 1 at D = 120: every query is its own chunk
  REQUIRE(linear_chunk(120, 60 * 1024) == 1);
  check_case({1, 2, 1, 40, 40, 120, Mask::causal, CudaDType::f32}, true, seed++);
}

TEST_CASE("flash: a one-hot softmax row gives exactly zero dq and dk") {
  if (skip_without_gpu("flash one-hot rows")) return;
  // s_ij = q_i·k_j with q_i = (1, 0, …) and k_j = (128·j, x, …): the scores of a causal row are
  // 128 apart, so every row's softmax is one-hot on its diagonal key in fp32 (exp(−128) = 0) and
  // dq, dk are 0 exactly; dv_j = dO_j. A δ summed in another order than dP leaves ulps × 128·j.
  for (CudaDType dt : {CudaDType::f32, CudaDType::bf16})
    for (int D : {32, 64, 128}) {
      Inputs in = make_inputs({1, 2, 1, 63, 63, D, Mask::causal, dt}, 900 + D, false);
      Problem& p = in.p;
      p.scale = 1.0;
      for (std::size_t r = 0; r < p.nq() / D; r++)
        for (int d = 0; d < D; d++) in.q[r * D + d] = d == 0 ? 1.0f : 0.0f;
      for (int j = 0; j < p.Tk; j++) in.k[std::size_t(j) * D] = 128.0f * float(j);
      const std::vector<float> r = run_pair(in, dt, false);
      const float* out = r.data();
      const float* dq = out + p.nq() + p.rows();
      const float* dk = dq + p.nq();
      const float* dv = dk + p.nkv();
      int nonzero_dq = 0, nonzero_dk = 0, wrong_out = 0, wrong_dv = 0;
      for (std::size_t i = 0; i < p.nq(); i++) nonzero_dq += dq[i] != 0.0f;
      for (std::size_t i = 0; i < p.nkv(); i++) nonzero_dk += dk[i] != 0.0f;
      const bool bf = dt == CudaDType::bf16;
      for (int h = 0; h < p.Hq; h++)
        for (int i = 0; i < p.Tq; i++)
          for (int d = 0; d < D; d++) {
            const float v = bf ? round_bf16(in.v[std::size_t(i) * D + d]) : in.v[std::size_t(i) * D + d];
            wrong_out += out[p.qi(0, h, i) + d] != v;  // the diagonal key's value, exactly
          }
      for (int j = 0; j < p.Tk; j++)  // both query heads put dO_j on key j
        for (int d = 0; d < D; d++) {
          double want = 0.0;
          for (int h = 0; h < p.Hq; h++)
            want += bf ? round_bf16(in.dout[p.qi(0, h, j) + d]) : in.dout[p.qi(0, h, j) + d];
          wrong_dv += std::abs(dv[std::size_t(j) * D + d] - want) > 1e-6 * (1 + std::abs(want));
        }
      INFO(fmt::format("D={} {}: dq≠0 {}, dk≠0 {}, out≠v {}, dv wrong {}", D, bf ? "bf16" : "fp32",
                       nonzero_dq, nonzero_dk, wrong_out, wrong_dv));
      CHECK(nonzero_dq == 0);
      CHECK(nonzero_dk == 0);
      CHECK(wrong_out == 0);
      CHECK(wrong_dv == 0);
    }
}

TEST_CASE("every kernel gives bitwise the same result when repeated") {
  if (skip_without_gpu("determinism of every kernel")) return;
  // no kernel uses atomics, so only a race (a missing barrier) can make two runs differ
  std::uint64_t seed = 1000;
  for (bool linear : {false, true})
    for (CudaDType dt : {CudaDType::f32, CudaDType::bf16})
      for (int D : {32, 64, 128}) {
        const Inputs in = make_inputs({2, 4, 2, 257, 300, D, Mask::causal_padding, dt}, seed++, linear);
        const std::vector<float> first = run_pair(in, dt, linear);
        for (int rep = 0; rep < 3; rep++) {
          const std::vector<float> again = run_pair(in, dt, linear);
          INFO(fmt::format("{} D={} {} repeat {}", linear ? "linear" : "flash", D,
                           dt == CudaDType::bf16 ? "bf16" : "fp32", rep));
          CHECK(std::memcmp(first.data(), again.data(), first.size() * sizeof(float)) == 0);
        }
      }
}

TEST_CASE("transfers of the backward and of bf16 calls are the expected bytes") {
  if (skip_without_gpu("transfer counts, backward and bf16")) return;
  for (CudaDType dt : {CudaDType::f32, CudaDType::bf16}) {
    const Inputs in = make_inputs({2, 4, 2, 65, 70, 64, Mask::padding, dt}, 1100, false);
    const Problem& p = in.p;
    const CudaAttnShape s = shape_of(p);
    const CudaAttnOptions o = options_of(p, dt);
    std::vector<float> out(p.nq()), lse(p.rows()), dq(p.nq()), dk(p.nkv()), dv(p.nkv());
    // bf16 is rounded on the device: the host sends fp32 either way
    cuda_reset_transfer_stats();
    cuda_flash_forward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data());
    CudaTransferStats t = cuda_transfer_stats();
    CHECK(t.h2d_bytes == 4 * (p.nq() + 2 * p.nkv()) + p.keep.size());
    CHECK(t.h2d_copies == 4);
    CHECK(t.d2h_bytes == 4 * (p.nq() + p.rows()));
    CHECK(t.d2h_copies == 2);
    // backward: q, k, v, dout, out, lse and the mask in; dq, dk, dv out
    cuda_reset_transfer_stats();
    cuda_flash_backward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data(),
                        in.dout.data(), dq.data(), dk.data(), dv.data());
    t = cuda_transfer_stats();
    CHECK(t.h2d_bytes == 4 * (3 * p.nq() + 2 * p.nkv() + p.rows()) + p.keep.size());
    CHECK(t.h2d_copies == 7);
    CHECK(t.d2h_bytes == 4 * (p.nq() + 2 * p.nkv()));
    CHECK(t.d2h_copies == 3);
    // linear: the same in as the flash forward; out and den back
    cuda_reset_transfer_stats();
    cuda_linear_forward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data());
    t = cuda_transfer_stats();
    CHECK(t.h2d_bytes == 4 * (p.nq() + 2 * p.nkv()) + p.keep.size());
    CHECK(t.d2h_bytes == 4 * (p.nq() + p.rows()));
    cuda_reset_transfer_stats();
    cuda_linear_backward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data(),
                         in.dout.data(), dq.data(), dk.data(), dv.data());
    t = cuda_transfer_stats();
    CHECK(t.h2d_bytes == 4 * (3 * p.nq() + 2 * p.nkv() + p.rows()) + p.keep.size());
    CHECK(t.h2d_copies == 7);
    CHECK(t.d2h_bytes == 4 * (p.nq() + 2 * p.nkv()));
    CHECK(t.d2h_copies == 3);
  }
}
