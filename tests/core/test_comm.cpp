// core/comm in one process (the world of size 1, as every unit test runs): the collectives leave
// their data as a single rank's, on_every_rank passes errors through unchanged, and the launcher's
// environment is read the way MpiSession reads it. The multi-process paths are tested under mpirun
// by tests/e2e/mpi.sh.
#include <doctest/doctest.h>
#include <stdlib.h>

#include <string>
#include <vector>

#include "core/comm.h"

using namespace attnlab;

TEST_CASE("comm: one process is a world of size 1 whose collectives are the identity") {
  Comm& w = Comm::world();
  CHECK(w.size() == 1);
  CHECK(w.rank() == 0);
  CHECK(w.root());
  std::vector<float> g = {1.5f, -2.0f, 3.25f};
  w.reset_counters();
  w.allreduce_sum(g.data(), g.size(), 2);
  CHECK(g == std::vector<float>{1.5f, -2.0f, 3.25f});
  CHECK(w.allreduce_calls == 0);  // nothing to send, nothing counted
  CHECK(w.allgather(std::vector<double>{0.5, 7.0}) == std::vector<double>{0.5, 7.0});
  CHECK(w.allgather(uint64_t(42)) == std::vector<uint64_t>{42});
  CHECK(w.any(true));
  CHECK_FALSE(w.any(false));
}

TEST_CASE("comm: on_every_rank in one process runs the function once and passes its error through") {
  Comm& w = Comm::world();
  int calls = 0;
  on_every_rank(w, [&] { calls++; });
  CHECK(calls == 1);
  try {
    on_every_rank(w, [] { user_error("bad key {}", "x"); });
    FAIL("no error");
  } catch (const CollectiveError&) {
    FAIL("one process: the error must stay a plain UserError (printed as always)");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()) == "bad key x");
  }
}

TEST_CASE("comm: the job size comes from the launcher's environment") {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"}) unsetenv(v);
  CHECK(launcher_size() == 1);
  setenv("PMI_SIZE", "3", 1);
  CHECK(launcher_size() == 3);
  setenv("OMPI_COMM_WORLD_SIZE", "4", 1);  // Open MPI's own variable first
  CHECK(launcher_size() == 4);
  setenv("OMPI_COMM_WORLD_SIZE", "four", 1);  // not a number: the next one
  CHECK(launcher_size() == 3);
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"}) unsetenv(v);
  CHECK(launcher_size() == 1);
}

TEST_CASE("comm: the MPI library is named exactly when the build has MPI") {
  if (built_with_mpi())
    CHECK(mpi_library() != "none");
  else
    CHECK(mpi_library() == "none");
}
