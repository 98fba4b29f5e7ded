#include "llmforge/comm.h"

#include <algorithm>
#include <cstdlib>
#include <string>

#include "llmforge/error.h"

#ifdef LLMFORGE_HAVE_MPI
#define OMPI_SKIP_MPICXX 1  // the C API only (no deprecated C++ bindings to link)
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace llmforge {

namespace {

class Single final : public Communicator {
public:
    int rank() const override { return 0; }
    int size() const override { return 1; }
    void allreduce_sum(float*, size_t) override {}
    void allreduce_sum(double*, size_t) override {}
    const char* backend() const override { return "single"; }
};

bool launched_by_mpirun() {
    for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
        if (std::getenv(v)) return true;
    return false;
}

#ifdef LLMFORGE_HAVE_MPI
class Mpi final : public Communicator {
public:
    Mpi() {
        int inited = 0;
        MPI_Initialized(&inited);
        if (!inited && MPI_Init(nullptr, nullptr) != MPI_SUCCESS) throw_runtime("MPI_Init failed");
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
    }
    ~Mpi() override {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin) MPI_Finalize();
    }
    int rank() const override { return rank_; }
    int size() const override { return size_; }
    void allreduce_sum(float* d, size_t n) override { reduce(d, n, MPI_FLOAT); }
    void allreduce_sum(double* d, size_t n) override { reduce(d, n, MPI_DOUBLE); }
    const char* backend() const override { return "mpi"; }

private:
    void reduce(void* d, size_t n, MPI_Datatype t) {
        // in chunks: MPI counts are ints
        const size_t chunk = size_t(1) << 28;
        const size_t elem = t == MPI_FLOAT ? 4 : 8;
        for (size_t off = 0; off < n; off += chunk) {
            const int c = static_cast<int>(std::min(chunk, n - off));
            if (MPI_Allreduce(MPI_IN_PLACE, static_cast<char*>(d) + off * elem, c, t, MPI_SUM, MPI_COMM_WORLD) != MPI_SUCCESS)
                throw_runtime("MPI_Allreduce failed");
        }
    }
    int rank_ = 0, size_ = 1;
};
#endif

}  // namespace

bool built_with_mpi() {
#ifdef LLMFORGE_HAVE_MPI
    return true;
#else
    return false;
#endif
}

Communicator& world() {
    static std::unique_ptr<Communicator> c = []() -> std::unique_ptr<Communicator> {
#ifdef LLMFORGE_HAVE_MPI
        if (launched_by_mpirun()) return std::make_unique<Mpi>();
#else
        if (launched_by_mpirun()) throw_runtime("started by mpirun, but this llmforge was built without MPI (install libopenmpi-dev and rebuild)");
#endif
        return std::make_unique<Single>();
    }();
    return *c;
}

}  // namespace llmforge
