// Gradient exchange between data-parallel training processes. The trainer talks only to this interface: MPI
// (OpenMPI, launched by mpirun) implements it on CPUs, and NCCL can implement it for GPUs without the trainer changing.
#pragma once
#include <cstddef>
#include <memory>

namespace llmforge {

class Communicator {
public:
    virtual ~Communicator() = default;
    virtual int rank() const = 0;
    virtual int size() const = 0;
    // In place: every process ends with the element-wise sum over all processes.
    virtual void allreduce_sum(float* data, size_t n) = 0;
    virtual void allreduce_sum(double* data, size_t n) = 0;
    virtual const char* backend() const = 0;  // "single", "mpi"
};

// This process's communicator: MPI's world when started by mpirun (and llmforge was built with MPI), otherwise a
// single-process one. Initialised on first use, finalised at exit.
Communicator& world();
bool built_with_mpi();

}  // namespace llmforge
