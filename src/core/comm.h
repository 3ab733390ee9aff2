// The processes of one job (data-parallel training over MPI, docs/distributed.md).
//
// One process is the world of size 1: every call below is then a no-op or a copy, and nothing
// of MPI is touched. Under `mpirun -np N` (a build with ATTNLAB_MPI) every process is one rank
// of N; the collectives are MPI's, on MPI_COMM_WORLD. A build without MPI that finds itself
// started by a launcher with N > 1 refuses to run (see launcher_size()).
//
// Collectives must be called by every rank in the same order with the same sizes, like MPI's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace attnlab {

// A UserError that every rank of the job throws at the same point (the CLI then exits 2 on each
// without aborting the job). Any other UserError met under mpirun aborts the whole job, since the
// other ranks would wait for this one forever.
struct CollectiveError : UserError {
  using UserError::UserError;
};
// Thrown on a rank instead of a CollectiveError that another rank reports: the CLI exits 2
// without printing it, so an error every rank meets is printed once.
struct ReportedElsewhere : CollectiveError {
  ReportedElsewhere() : CollectiveError("reported by another rank") {}
};

class Comm {
 public:
  // The job's world; the first call fixes it (call MpiSession first in main).
  static Comm& world();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool root() const { return rank_ == 0; }

  // x[i] = Σ over ranks of x[i], in place, as MPI_Allreduce(MPI_SUM) calls of at most
  // `bucket_floats` floats each. Counts the bytes and the seconds (below).
  void allreduce_sum(float* x, size_t n, size_t bucket_floats = kBucketFloats);
  // Every rank's `mine` (the same size on each), concatenated in rank order.
  std::vector<double> allgather(const std::vector<double>& mine);
  std::vector<uint64_t> allgather(uint64_t mine);
  // True on every rank when `mine` is true on any.
  bool any(bool mine);

  // What allreduce_sum has moved and cost since the last reset (per rank: the size of its
  // buffers, not what the MPI library sent on the wire).
  double allreduce_bytes = 0.0;
  double allreduce_seconds = 0.0;
  int allreduce_calls = 0;
  void reset_counters() { allreduce_bytes = allreduce_seconds = 0.0, allreduce_calls = 0; }

  // Ends the whole job at once with `status` (MPI_Abort); in one process, std::exit.
  [[noreturn]] void abort(int status);

  // 4 Mi floats = 16 MiB per MPI_Allreduce call.
  static constexpr size_t kBucketFloats = size_t(1) << 22;

 private:
  friend class MpiSession;
  int rank_ = 0, size_ = 1;
};

// Runs `f` on every rank. If it throws a UserError on any rank, it throws on every rank: the
// lowest rank that failed throws its own error, every other rank ReportedElsewhere. So an error
// that all ranks meet (a bad config) is printed once, and one that only some meet (a file missing
// on one host) is printed by one of them, and no rank is left waiting in a collective.
template <typename F>
void on_every_rank(Comm& comm, F&& f) {
  if (comm.size() == 1) {
    f();
    return;
  }
  std::string err;
  try {
    f();
  } catch (const UserError& e) {
    err = e.what();
  }
  const auto failed = comm.allgather(uint64_t(!err.empty()));
  for (int r = 0; r < comm.size(); r++) {
    if (!failed[size_t(r)]) continue;
    if (r == comm.rank()) {
      if (r == 0) throw CollectiveError(err);
      throw CollectiveError(fmt::format("rank {} of {}: {}", r, comm.size(), err));
    }
    throw ReportedElsewhere();
  }
}

// MPI_Init / MPI_Finalize for main(): initialises MPI only when the process was started by an
// MPI launcher (so that every other use of the binary never touches MPI), and finalises it on
// the way out unless the job was aborted.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

 private:
  bool initialised_ = false;
};

// Whether this binary was built with MPI (ATTNLAB_MPI).
bool built_with_mpi();
// The job size an MPI launcher (Open MPI's mpirun, or a PMI/PMIx launcher such as srun) gave
// this process in its environment; 1 when none did.
int launcher_size();
// "Open MPI v4.1.4, ..." (MPI_Get_library_version, first line), or "none".
std::string mpi_library();

}  // namespace attnlab
