#include "core/comm.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#ifdef ATTNLAB_HAVE_MPI
#include <mpi.h>
#endif

namespace attnlab {

namespace {

int env_int(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return *end == '\0' && n > 0 && n < (1 << 24) ? int(n) : 0;
}

#ifdef ATTNLAB_HAVE_MPI
void check_mpi(int rc, const char* what) {
  if (rc == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING] = {0};
  int len = 0;
  MPI_Error_string(rc, msg, &len);
  throw std::runtime_error(fmt::format("{} failed: {}", what, msg));
}
#endif

}  // namespace

Comm& Comm::world() {
  static Comm w;
  return w;
}

void Comm::allreduce_sum(float* x, size_t n, size_t bucket_floats) {
  if (size_ == 1) return;
#ifdef ATTNLAB_HAVE_MPI
  const auto t0 = std::chrono::steady_clock::now();
  for (size_t off = 0; off < n; off += bucket_floats) {
    const size_t len = std::min(bucket_floats, n - off);
    check_mpi(MPI_Allreduce(MPI_IN_PLACE, x + off, int(len), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD), "MPI_Allreduce");
    allreduce_calls++;
  }
  allreduce_bytes += double(n) * sizeof(float);
  allreduce_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
#else
  (void)x, (void)n, (void)bucket_floats;
#endif
}

std::vector<double> Comm::allgather(const std::vector<double>& mine) {
  if (size_ == 1) return mine;
  std::vector<double> all(mine.size() * size_t(size_));
#ifdef ATTNLAB_HAVE_MPI
  check_mpi(MPI_Allgather(mine.data(), int(mine.size()), MPI_DOUBLE, all.data(), int(mine.size()), MPI_DOUBLE,
                          MPI_COMM_WORLD),
            "MPI_Allgather");
#endif
  return all;
}

std::vector<uint64_t> Comm::allgather(uint64_t mine) {
  if (size_ == 1) return {mine};
  std::vector<uint64_t> all(static_cast<size_t>(size_));
#ifdef ATTNLAB_HAVE_MPI
  check_mpi(MPI_Allgather(&mine, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, MPI_COMM_WORLD), "MPI_Allgather");
#endif
  return all;
}

bool Comm::any(bool mine) {
  if (size_ == 1) return mine;
  int v = mine ? 1 : 0;
#ifdef ATTNLAB_HAVE_MPI
  check_mpi(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD), "MPI_Allreduce");
#endif
  return v != 0;
}

void Comm::abort(int status) {
#ifdef ATTNLAB_HAVE_MPI
  if (size_ > 1) MPI_Abort(MPI_COMM_WORLD, status);
#endif
  std::exit(status);
}

MpiSession::MpiSession(int* argc, char*** argv) {
  const int n = launcher_size();
  if (n <= 1) return;
#ifdef ATTNLAB_HAVE_MPI
  int provided = 0;
  // funneled: only the main thread calls MPI; OpenMP threads compute between the calls
  MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
  initialised_ = true;
  Comm& w = Comm::world();
  MPI_Comm_rank(MPI_COMM_WORLD, &w.rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &w.size_);
#else
  (void)argc, (void)argv;
  if (env_int("OMPI_COMM_WORLD_RANK") == 0 && env_int("PMI_RANK") == 0 && env_int("PMIX_RANK") == 0)
    std::fprintf(stderr,
                 "error: started by an MPI launcher as one of %d processes, but this attnlab was built without "
                 "MPI (ATTNLAB_MPI=OFF: libopenmpi-dev was not found when it was configured), so each process "
                 "would train alone; install libopenmpi-dev (scripts/setup.sh), reconfigure and rebuild, or run "
                 "without mpirun\n",
                 n);
  std::exit(2);
#endif
}

MpiSession::~MpiSession() {
#ifdef ATTNLAB_HAVE_MPI
  if (initialised_) MPI_Finalize();
#endif
}

bool built_with_mpi() {
#ifdef ATTNLAB_HAVE_MPI
  return true;
#else
  return false;
#endif
}

int launcher_size() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"}) {
    const int n = env_int(v);
    if (n > 0) return n;
  }
  return 1;
}

std::string mpi_library() {
#ifdef ATTNLAB_HAVE_MPI
  char v[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int len = 0;
  MPI_Get_library_version(v, &len);
  std::string s(v, size_t(len));
  const size_t nl = s.find_first_of("\n,");
  return nl == std::string::npos ? s : s.substr(0, nl);
#else
  return "none";
#endif
}

}  // namespace attnlab
