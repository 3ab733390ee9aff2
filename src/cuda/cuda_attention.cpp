// The host side of the CUDA backend (cuda_attention.h): checks, device buffers, the counted
// host<->device copies, bf16 conversion, and the device-resident benchmark. The kernels are in
// flash_forward.cu, flash_backward.cu and linear_attention.cu.
//
// Every call allocates its device buffers and frees them on return (cudaMalloc/cudaFree per call):
// simple and leak-free, and small next to the copies this seam makes anyway. A device-resident
// model would keep a workspace instead (docs/cuda.md).
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "core/error.h"
#include "cuda/cuda_attention.h"
#include "cuda/internal.h"

namespace attnlab {

namespace {

void ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(fmt::format("CUDA: {}: {}", what, cudaGetErrorString(e)));
}

// The first cudaFree / cudaEventDestroy error of the current API call (destructors cannot
// throw); with_cleanup_checked reports it once the call's buffers are gone.
thread_local cudaError_t t_cleanup_error = cudaSuccess;
thread_local const char* t_cleanup_what = nullptr;
void note_cleanup(cudaError_t e, const char* what) {
  if (e != cudaSuccess && t_cleanup_error == cudaSuccess) {
    t_cleanup_error = e;
    t_cleanup_what = what;
  }
}

// Runs body (which owns the call's DevBufs and Events, destroyed when it returns) and throws if
// freeing any of them failed. When body itself throws, that error is the one reported.
template <typename Body>
auto with_cleanup_checked(const char* what, Body&& body) {
  t_cleanup_error = cudaSuccess;
  auto finish = [&] {
    const cudaError_t e = t_cleanup_error;
    t_cleanup_error = cudaSuccess;
    if (e != cudaSuccess)
      throw std::runtime_error(
          fmt::format("CUDA: {}: {} failed: {}", what, t_cleanup_what, cudaGetErrorString(e)));
  };
  if constexpr (std::is_void_v<decltype(body())>) {
    body();
    finish();
  } else {
    auto r = body();
    finish();
    return r;
  }
}

// One device allocation, freed on scope exit (the result of cudaFree is checked, above).
class DevBuf {
 public:
  DevBuf() = default;
  explicit DevBuf(std::size_t bytes) {
    if (bytes) ok(cudaMalloc(&p_, bytes), "cudaMalloc");
  }
  ~DevBuf() {
    if (p_) note_cleanup(cudaFree(p_), "cudaFree");
  }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  DevBuf(DevBuf&& o) noexcept : p_(o.p_) { o.p_ = nullptr; }
  DevBuf& operator=(DevBuf&& o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }
  void* get() const { return p_; }
  float* f() const { return static_cast<float*>(p_); }

 private:
  void* p_ = nullptr;
};

// A CUDA event, destroyed on scope exit (also when the timing throws).
class Event {
 public:
  Event() { ok(cudaEventCreate(&e_), "cudaEventCreate"); }
  ~Event() { note_cleanup(cudaEventDestroy(e_), "cudaEventDestroy"); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t get() const { return e_; }

 private:
  cudaEvent_t e_ = nullptr;
};

// host -> new device buffer (counted)
DevBuf upload(const void* host, std::size_t bytes) {
  DevBuf d(bytes);
  ok(cudaMemcpy(d.get(), host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy host->device");
  cuda_count_transfer(true, bytes);
  return d;
}

// device -> host (counted); also the point where a kernel's asynchronous error surfaces
void download(void* host, const DevBuf& d, std::size_t bytes) {
  ok(cudaMemcpy(host, d.get(), bytes, cudaMemcpyDeviceToHost), "cudaMemcpy device->host");
  cuda_count_transfer(false, bytes);
}

void require_device(const char* what) {
  if (!cuda_available())
    user_error("{}: no CUDA device is visible ({}); use device: cpu, or run on a machine with a GPU",
               what, cuda_device_name());
}

// An input on the device in the kernel's dtype: the fp32 upload, plus a bf16 copy when asked.
struct DevInput {
  DevBuf f32, bf;
  const void* ptr() const { return bf.get() ? bf.get() : f32.get(); }
};
DevInput upload_input(const float* host, std::size_t n, CudaDType dt) {
  DevInput in;
  in.f32 = upload(host, n * sizeof(float));
  if (dt == CudaDType::bf16) {
    in.bf = DevBuf(n * 2);
    cudak::to_bf16(in.f32.f(), in.bf.get(), n);
  }
  return in;
}

cudak::FlashArgs flash_args(const CudaAttnShape& s, const CudaAttnOptions& o) {
  cudak::FlashArgs a;
  a.B = s.B;
  a.Hq = s.Hq;
  a.Hkv = s.Hkv;
  a.Tq = s.Tq;
  a.Tk = s.Tk;
  a.D = s.D;
  a.scale = o.scale != 0.0f ? o.scale : 1.0f / std::sqrt(float(s.D));
  a.causal = o.causal;
  a.bf16 = o.dtype == CudaDType::bf16;
  return a;
}

cudak::LinearArgs linear_args(const CudaAttnShape& s, const CudaAttnOptions& o) {
  cudak::LinearArgs a;
  a.B = s.B;
  a.Hq = s.Hq;
  a.Hkv = s.Hkv;
  a.Tq = s.Tq;
  a.Tk = s.Tk;
  a.D = s.D;
  a.causal = o.causal;
  int dev = 0, limit = 0;
  ok(cudaGetDevice(&dev), "cudaGetDevice");
  ok(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev),
     "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  std::size_t cap = std::size_t(limit);
  if (cuda_linear_smem_cap() != 0) cap = std::min(cap, cuda_linear_smem_cap());
  a.C = linear_chunk(s.D, cap);
  if (a.C == 0)
    user_error("CUDA linear attention: head dimension {} needs {} bytes of shared memory per block "
               "even with chunks of 1 query; this device allows {}",
               s.D, linear_smem_bytes(s.D, 1), cap);
  return a;
}

struct Sizes {
  std::size_t q, kv, rows, keep;  // elements of q/out, of k/v, of lse/den, of key_keep
  explicit Sizes(const CudaAttnShape& s)
      : q(std::size_t(s.B) * s.Hq * s.Tq * s.D),
        kv(std::size_t(s.B) * s.Hkv * s.Tk * s.D),
        rows(std::size_t(s.B) * s.Hq * s.Tq),
        keep(std::size_t(s.B) * s.Tk) {}
};

DevBuf upload_keep(const unsigned char* key_keep, std::size_t n) {
  return key_keep ? upload(key_keep, n) : DevBuf();
}

}  // namespace

bool cuda_available() {
  static const bool available = [] {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear the sticky "no driver / no device" error
      return false;
    }
    return n > 0;
  }();
  return available;
}

CudaVersions cuda_versions() {
  CudaVersions v;
  if (cudaDriverGetVersion(&v.driver) != cudaSuccess) v.driver = 0;
  if (cudaRuntimeGetVersion(&v.runtime) != cudaSuccess) v.runtime = 0;
  cudaGetLastError();
  return v;
}

std::string cuda_device_name() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return fmt::format("none: {}", cudaGetErrorString(e));
  }
  if (n == 0) return "none: no CUDA device";
  int dev = 0;
  ok(cudaGetDevice(&dev), "cudaGetDevice");
  cudaDeviceProp p{};
  ok(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
  return fmt::format("{} (sm_{}{}, {} SMs, {:.0f} GiB)", p.name, p.major, p.minor, p.multiProcessorCount,
                     double(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
}

void cuda_flash_forward(const CudaAttnShape& s, const CudaAttnOptions& o, const float* q,
                        const float* k, const float* v, float* out, float* lse) {
  cuda_check_shape(s, true, "cuda_flash_forward");
  require_device("cuda_flash_forward");
  with_cleanup_checked("cuda_flash_forward", [&] {
    const Sizes n(s);
    const DevInput dq = upload_input(q, n.q, o.dtype), dk = upload_input(k, n.kv, o.dtype),
                   dv = upload_input(v, n.kv, o.dtype);
    const DevBuf keep = upload_keep(o.key_keep, n.keep);
    DevBuf d_out(n.q * sizeof(float)), d_lse(n.rows * sizeof(float));
    cudak::FlashArgs a = flash_args(s, o);
    a.q = dq.ptr();
    a.k = dk.ptr();
    a.v = dv.ptr();
    a.key_keep = static_cast<const unsigned char*>(keep.get());
    cudak::flash_forward(a, d_out.f(), d_lse.f());
    download(out, d_out, n.q * sizeof(float));
    download(lse, d_lse, n.rows * sizeof(float));
  });
}

void cuda_flash_backward(const CudaAttnShape& s, const CudaAttnOptions& o, const float* q,
                         const float* k, const float* v, const float* out, const float* lse,
                         const float* dout, float* dq, float* dk, float* dv) {
  cuda_check_shape(s, true, "cuda_flash_backward");
  require_device("cuda_flash_backward");
  with_cleanup_checked("cuda_flash_backward", [&] {
    const Sizes n(s);
    const DevInput iq = upload_input(q, n.q, o.dtype), ik = upload_input(k, n.kv, o.dtype),
                   iv = upload_input(v, n.kv, o.dtype), ido = upload_input(dout, n.q, o.dtype);
    const DevBuf d_out = upload(out, n.q * sizeof(float)), d_lse = upload(lse, n.rows * sizeof(float));
    const DevBuf keep = upload_keep(o.key_keep, n.keep);
    DevBuf delta(n.rows * sizeof(float)), d_dq(n.q * sizeof(float)), d_dk(n.kv * sizeof(float)),
        d_dv(n.kv * sizeof(float));
    cudak::FlashArgs a = flash_args(s, o);
    a.q = iq.ptr();
    a.k = ik.ptr();
    a.v = iv.ptr();
    a.key_keep = static_cast<const unsigned char*>(keep.get());
    cudak::flash_backward(a, d_out.f(), d_lse.f(), ido.ptr(), delta.f(), d_dq.f(), d_dk.f(), d_dv.f());
    download(dq, d_dq, n.q * sizeof(float));
    download(dk, d_dk, n.kv * sizeof(float));
    download(dv, d_dv, n.kv * sizeof(float));
  });
}

void cuda_linear_forward(const CudaAttnShape& s, const CudaAttnOptions& o, const float* q,
                         const float* k, const float* v, float* out, float* den) {
  cuda_check_shape(s, false, "cuda_linear_forward");
  require_device("cuda_linear_forward");
  with_cleanup_checked("cuda_linear_forward", [&] {
    const Sizes n(s);
    DevBuf dq = upload(q, n.q * sizeof(float)), dk = upload(k, n.kv * sizeof(float)),
           dv = upload(v, n.kv * sizeof(float));
    if (o.dtype == CudaDType::bf16) {  // the linear kernels read fp32: round the values instead
      cudak::round_bf16(dq.f(), n.q);
      cudak::round_bf16(dk.f(), n.kv);
      cudak::round_bf16(dv.f(), n.kv);
    }
    const DevBuf keep = upload_keep(o.key_keep, n.keep);
    DevBuf d_out(n.q * sizeof(float)), d_den(n.rows * sizeof(float));
    cudak::LinearArgs a = linear_args(s, o);
    a.q = dq.f();
    a.k = dk.f();
    a.v = dv.f();
    a.key_keep = static_cast<const unsigned char*>(keep.get());
    cudak::linear_forward(a, d_out.f(), d_den.f());
    download(out, d_out, n.q * sizeof(float));
    download(den, d_den, n.rows * sizeof(float));
  });
}

void cuda_linear_backward(const CudaAttnShape& s, const CudaAttnOptions& o, const float* q,
                          const float* k, const float* v, const float* out, const float* den,
                          const float* dout, float* dq, float* dk, float* dv) {
  cuda_check_shape(s, false, "cuda_linear_backward");
  require_device("cuda_linear_backward");
  with_cleanup_checked("cuda_linear_backward", [&] {
    const Sizes n(s);
    DevBuf iq = upload(q, n.q * sizeof(float)), ik = upload(k, n.kv * sizeof(float)),
           iv = upload(v, n.kv * sizeof(float)), ido = upload(dout, n.q * sizeof(float));
    if (o.dtype == CudaDType::bf16) {
      cudak::round_bf16(iq.f(), n.q);
      cudak::round_bf16(ik.f(), n.kv);
      cudak::round_bf16(iv.f(), n.kv);
      cudak::round_bf16(ido.f(), n.q);
    }
    const DevBuf d_out = upload(out, n.q * sizeof(float)), d_den = upload(den, n.rows * sizeof(float));
    const DevBuf keep = upload_keep(o.key_keep, n.keep);
    DevBuf d_dq(n.q * sizeof(float)), d_dk(n.kv * sizeof(float)), d_dv(n.kv * sizeof(float));
    cudak::LinearArgs a = linear_args(s, o);
    a.q = iq.f();
    a.k = ik.f();
    a.v = iv.f();
    a.key_keep = static_cast<const unsigned char*>(keep.get());
    cudak::linear_backward(a, d_out.f(), d_den.f(), ido.f(), d_dq.f(), d_dk.f(), d_dv.f());
    download(dq, d_dq, n.q * sizeof(float));
    download(dk, d_dk, n.kv * sizeof(float));
    download(dv, d_dv, n.kv * sizeof(float));
  });
}

CudaBenchResult cuda_bench_attention(const CudaAttnShape& s, bool causal, CudaDType dtype, int iters) {
  cuda_check_shape(s, true, "cuda_bench_attention");
  require_device("cuda_bench_attention");
  if (iters < 1) user_error("cuda_bench_attention: iters must be ≥ 1, got {}", iters);
  return with_cleanup_checked("cuda_bench_attention", [&] {
    const Sizes n(s);
    // inputs made on the device: nothing crosses the bus in or around the timed region
    DevBuf q(n.q * 4), k(n.kv * 4), v(n.kv * 4), dout(n.q * 4);
    cudak::fill_uniform(q.f(), n.q, 1, -1.0f, 1.0f);
    cudak::fill_uniform(k.f(), n.kv, 2, -1.0f, 1.0f);
    cudak::fill_uniform(v.f(), n.kv, 3, -1.0f, 1.0f);
    cudak::fill_uniform(dout.f(), n.q, 4, -1.0f, 1.0f);
    DevBuf qb, kb, vb, dob;
    CudaAttnOptions o;
    o.causal = causal;
    o.dtype = dtype;
    cudak::FlashArgs a = flash_args(s, o);
    a.q = q.get();
    a.k = k.get();
    a.v = v.get();
    const void* dO = dout.get();
    if (dtype == CudaDType::bf16) {
      qb = DevBuf(n.q * 2);
      kb = DevBuf(n.kv * 2);
      vb = DevBuf(n.kv * 2);
      dob = DevBuf(n.q * 2);
      cudak::to_bf16(q.f(), qb.get(), n.q);
      cudak::to_bf16(k.f(), kb.get(), n.kv);
      cudak::to_bf16(v.f(), vb.get(), n.kv);
      cudak::to_bf16(dout.f(), dob.get(), n.q);
      a.q = qb.get();
      a.k = kb.get();
      a.v = vb.get();
      dO = dob.get();
    }
    DevBuf out(n.q * 4), lse(n.rows * 4), delta(n.rows * 4), dq(n.q * 4), dk(n.kv * 4), dv(n.kv * 4);

    const Event ev0, ev1;
    const cudaEvent_t t0 = ev0.get(), t1 = ev1.get();
    auto time_ms = [&](auto&& body) {
      std::vector<double> ms;
      body();  // warm-up (and the shared-memory opt-ins)
      ok(cudaDeviceSynchronize(), "warm-up");
      for (int it = 0; it < iters; it++) {
        ok(cudaEventRecord(t0), "cudaEventRecord");
        body();
        ok(cudaEventRecord(t1), "cudaEventRecord");
        ok(cudaEventSynchronize(t1), "cudaEventSynchronize");
        float m = 0.0f;
        ok(cudaEventElapsedTime(&m, t0, t1), "cudaEventElapsedTime");
        ms.push_back(m);
      }
      std::sort(ms.begin(), ms.end());
      return ms[ms.size() / 2];
    };
    CudaBenchResult r;
    r.fwd_ms = time_ms([&] { cudak::flash_forward(a, out.f(), lse.f()); });
    r.fwd_bwd_ms = time_ms([&] {
      cudak::flash_forward(a, out.f(), lse.f());
      cudak::flash_backward(a, out.f(), lse.f(), dO, delta.f(), dq.f(), dk.f(), dv.f());
    });
    r.fwd_flops = 4.0 * s.B * s.Hq * double(s.Tq) * s.Tk * s.D * (causal ? 0.5 : 1.0);
    r.fwd_bwd_flops = 3.5 * r.fwd_flops;
    return r;
  });
}

}  // namespace attnlab
