// The CUDA kernels (src/cuda) against a naive CPU reference written here, independently of them:
// head-major attention forward/backward and linear attention forward/backward accumulated in
// double, one query at a time, with no tiling, no online softmax and no prefix sums. The reference
// itself is checked by central finite differences (that test runs on every machine).
//
// Tolerances, max |kernel − reference| / max(max |reference|, 1) per tensor (inputs are O(1)):
//   fp32                                   out, lse: 2e-5     dq, dk, dv: 1e-4
//   bf16 vs the reference on the same      (the kernels accumulate in fp32 on exactly those
//        bf16-rounded inputs               values, so the fp32 tolerances apply)
//   bf16 vs the reference on the original  2e-2 (what rounding the inputs costs a user)
//        fp32 inputs
// Every GPU test prints "SKIPPED ..." and passes when no device is visible or the build has no
// CUDA; tests/CMakeLists.txt turns that line into a CTest skip (label `cuda`).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "attention/attention.h"
#include "core/error.h"
#include "core/param.h"
#include "core/rng.h"
#include "cuda/cuda_attention.h"

#include "cuda_reference.h"  // tests/cuda/

using namespace attnlab;
using namespace cudatest;

// ---- CPU-only checks: run on every machine --------------------------------------------------

TEST_CASE("reference softmax attention gradients match finite differences") {
  check_reference_gradients(false);
}

TEST_CASE("reference linear attention gradients match finite differences") {
  check_reference_gradients(true);
}

TEST_CASE("shape checks name the offending size") {
  CudaAttnShape s{1, 4, 4, 8, 8, 48};
  CHECK_THROWS_WITH_AS(cuda_check_shape(s, true, "flash"), doctest::Contains("head dimension must be 32, 64 or 128"),
                       UserError);
  CHECK_NOTHROW(cuda_check_shape(s, false, "linear"));
  s.D = 64;
  s.Hkv = 3;
  CHECK_THROWS_WITH_AS(cuda_check_shape(s, true, "flash"), doctest::Contains("multiple of n_kv_heads"), UserError);
  s.Hkv = 4;
  s.Tq = 0;
  CHECK_THROWS_AS(cuda_check_shape(s, true, "flash"), UserError);
}

TEST_CASE("without a GPU the kernels refuse with a user error") {
  if (cuda_available()) {
    std::printf("(a CUDA device is visible: nothing to check here)\n");
    return;
  }
  CudaAttnShape s{1, 1, 1, 2, 2, 32};
  std::vector<float> x(64, 0.5f), o(64), l(2);
  CHECK_THROWS_AS(cuda_flash_forward(s, {}, x.data(), x.data(), x.data(), o.data(), l.data()), UserError);
  CHECK_THROWS_AS(cuda_linear_forward(s, {}, x.data(), x.data(), x.data(), o.data(), l.data()), UserError);
}

// ---- GPU checks ------------------------------------------------------------------------------

TEST_CASE("flash attention fp32 matches the reference") {
  if (skip_without_gpu("flash attention fp32")) return;
  std::uint64_t seed = 100;
  for (const Case& c : cases(CudaDType::f32)) check_case(c, false, seed++);
}

TEST_CASE("flash attention bf16 matches the reference") {
  if (skip_without_gpu("flash attention bf16")) return;
  std::uint64_t seed = 200;
  for (const Case& c : cases(CudaDType::bf16)) check_case(c, false, seed++);
}

TEST_CASE("linear attention fp32 matches the reference") {
  if (skip_without_gpu("linear attention fp32")) return;
  std::uint64_t seed = 300;
  for (const Case& c : cases(CudaDType::f32)) check_case(c, true, seed++);
}

TEST_CASE("linear attention bf16 matches the reference") {
  if (skip_without_gpu("linear attention bf16")) return;
  std::uint64_t seed = 400;
  for (const Case& c : cases(CudaDType::bf16)) check_case(c, true, seed++);
}

TEST_CASE("flash backward is deterministic and transfers are counted") {
  if (skip_without_gpu("determinism and transfer counts")) return;
  const Case c{2, 4, 2, 257, 257, 64, Mask::causal_padding, CudaDType::f32};
  const Inputs in = make_inputs(c, 7, false);
  const Problem& p = in.p;
  CudaAttnShape s{p.B, p.Hq, p.Hkv, p.Tq, p.Tk, p.D};
  CudaAttnOptions o;
  o.causal = true;
  o.key_keep = p.keep.data();
  std::vector<float> out(p.nq()), lse(p.rows());
  cuda_reset_transfer_stats();
  cuda_flash_forward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data());
  const CudaTransferStats t = cuda_transfer_stats();
  CHECK(t.h2d_bytes == 4 * (p.nq() + 2 * p.nkv()) + p.keep.size());
  CHECK(t.h2d_copies == 4);
  CHECK(t.d2h_bytes == 4 * (p.nq() + p.rows()));
  CHECK(t.d2h_copies == 2);
  std::vector<float> g1(p.nq() + 2 * p.nkv()), g2(g1.size());
  for (auto* g : {&g1, &g2})
    cuda_flash_backward(s, o, in.q.data(), in.k.data(), in.v.data(), out.data(), lse.data(),
                        in.dout.data(), g->data(), g->data() + p.nq(), g->data() + p.nq() + p.nkv());
  CHECK(std::memcmp(g1.data(), g2.data(), g1.size() * sizeof(float)) == 0);
}

TEST_CASE("model.device cuda: without a GPU, building the module is a clear user error") {
  if (cuda_available()) return;  // the GPU case is the next test
  AttentionSpec s;
  s.d_model = 64;
  s.n_heads = 2;
  s.device = AttnDevice::cuda;
  ParamStore store;
  Rng rng(1);
  bool threw = false;
  try {
    make_attention(s, store, rng);
  } catch (const UserError& e) {
    threw = std::string(e.what()).find("model.device is cuda") != std::string::npos;
  }
  CHECK(threw);
}

TEST_CASE("model.device cuda: the scaled_dot_product module on the GPU matches its CPU flash path") {
  if (skip_without_gpu("module seam")) return;
  // one causal self-attention module with projections, B=2, T=300, 4 heads × 32 (GQA 2), key
  // padding: forward outputs and all gradients (inputs and parameters) against device: cpu
  const int B = 2, T = 300, C = 128;
  std::vector<float> x(size_t(B) * T * C), dout(x.size());
  Rng data(3);
  for (auto& v : x) v = data.normal();
  for (auto& v : dout) v = data.normal();
  std::vector<unsigned char> keep(size_t(B) * T, 1);
  for (int t = 250; t < T; t++) keep[T + t] = 0;
  struct Run {
    std::vector<float> out, dx;
    std::vector<std::vector<float>> grads;
  };
  auto run = [&](const std::string& device) {
    AttentionSpec s;
    s.d_model = C;
    s.n_heads = 4;
    s.n_kv_heads = 2;
    s.causal = true;
    s.impl = AttnImpl::flash;
    s.device = attn_device(device);
    ParamStore store;
    Rng rng(9);
    auto a = make_attention(s, store, rng);
    Run r;
    r.out.resize(x.size());
    r.dx.assign(x.size(), 0.0f);
    a->forward(r.out.data(), x.data(), x.data(), B, T, T, AttnMask{keep.data()}, true, nullptr);
    store.zero_grad();
    a->backward(r.dx.data(), r.dx.data(), dout.data());
    for (auto& p : store.all()) r.grads.push_back(p.g);
    return r;
  };
  const Run cpu = run("cpu"), gpu = run("cuda");
  auto rel = [](const std::vector<float>& a, const std::vector<float>& b) {
    double worst = 0, scale = 1;
    for (size_t i = 0; i < a.size(); i++) {
      worst = std::max(worst, double(std::fabs(a[i] - b[i])));
      scale = std::max(scale, double(std::fabs(a[i])));
    }
    return worst / scale;
  };
  CHECK(rel(cpu.out, gpu.out) < 2e-5);
  CHECK(rel(cpu.dx, gpu.dx) < 1e-4);
  for (size_t i = 0; i < cpu.grads.size(); i++) CHECK(rel(cpu.grads[i], gpu.grads[i]) < 1e-4);
}
