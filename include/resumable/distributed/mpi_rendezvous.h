// Under mpirun there is no MASTER_ADDR: rank 0 opens the TCPStore and MPI tells everyone where.
// MPI is used for this one broadcast and finalized right after; all training traffic goes through
// c10d. Built without MPI, mpi_rendezvous_available() is false and launches need MASTER_ADDR/PORT.
#pragma once

#include <string>

namespace resumable {

bool mpi_rendezvous_available();

// Collective over MPI_COMM_WORLD: returns rank 0's `value` on every rank, then finalizes MPI.
// Throws std::runtime_error if MPI is unavailable or fails.
std::string mpi_broadcast_and_finalize(const std::string& value);

}  // namespace resumable
