// A structural check of a pickle before libtorch's unpickler sees it. That unpickler trusts the
// numbers it reads: a memo index of 2^31 makes it resize its memo table to tens of gigabytes, a
// string length past the end makes it allocate that length first. Our checksum stops damage, but a
// forged file (or one whose checksum was recomputed) reaches the unpickler, and reading a
// checkpoint must never take the machine down. So every opcode is walked once, cheaply: lengths
// must fit in what is left, memo indices must grow one at a time as every real pickler writes
// them, and the stream must end with STOP. No torch here: the walk only needs the opcode table.
#pragma once

#include <string>
#include <string_view>

namespace resumable {

// Throws CheckpointError "ORIGIN: pickle record: PROBLEM at byte N" on a pickle that libtorch
// could not read safely; returns on anything Python's or libtorch's pickler writes (protocol 0-5).
void check_pickle_structure(std::string_view pickle, const std::string& origin);

}  // namespace resumable
