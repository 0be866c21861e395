#include "resumable/distributed/mpi_rendezvous.h"

#include <stdexcept>
#include <vector>

#ifdef RESUMABLE_WITH_MPI
#include <mpi.h>
#endif

namespace resumable {

#ifdef RESUMABLE_WITH_MPI

bool mpi_rendezvous_available() { return true; }

std::string mpi_broadcast_and_finalize(const std::string& value) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized && MPI_Init(nullptr, nullptr) != MPI_SUCCESS)
    throw std::runtime_error("MPI_Init failed (is this process started by mpirun?)");
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int length = rank == 0 ? static_cast<int>(value.size()) : 0;
  MPI_Bcast(&length, 1, MPI_INT, 0, MPI_COMM_WORLD);
  std::vector<char> buffer(value.begin(), value.end());
  buffer.resize(length);
  MPI_Bcast(buffer.data(), length, MPI_CHAR, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  return std::string(buffer.begin(), buffer.end());
}

#else

bool mpi_rendezvous_available() { return false; }

std::string mpi_broadcast_and_finalize(const std::string&) {
  throw std::runtime_error(
      "this trainer was built without MPI: set MASTER_ADDR and MASTER_PORT for mpirun launches");
}

#endif

}  // namespace resumable
