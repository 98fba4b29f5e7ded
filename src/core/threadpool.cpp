// The fork-join pool. A job is n_threads tasks (task i = fn(i, n)); every thread, the caller included, claims tasks
// from one shared counter until none is left, so a worker the OS has descheduled (another process on the cores) holds
// up at most the task it already claimed: the others take the rest. Waiting threads spin for a few microseconds, then
// yield the CPU, then sleep, so that under contention they give their time slices to whoever has work.
//
// Sleeping is a futex on the generation word, not a mutex and condition variable: the kernel compares the word and
// sleeps in one step, so a new job published between a worker's last look and its sleep is never missed, and nobody
// takes a lock. (With a mutex, a worker descheduled while holding it — on its way into or out of the wait — kept the
// caller from publishing the next job until the OS ran that worker again.)
#include "core/threadpool.h"

#include <climits>
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#else
static inline void cpu_relax() {}
#endif

namespace llmforge {

namespace {
// How long a waiting thread polls before it stops burning its time slice. A pause is ~40-140 cycles on current x86
// cores, so kSpin polls are roughly 50-150 µs: long enough to bridge the gaps between the parallel regions of one
// decoding step, short enough that an idle or preempted pool hands the cores back quickly.
constexpr int kSpin = 2000;
// Then sched_yield() up to kYield times before a worker sleeps (a futex wait on the generation word).
constexpr int kYield = 64;

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) && std::atomic<uint32_t>::is_always_lock_free,
              "the generation word is used as a futex");

// Sleeps while *word == expected (returns at once if it differs; also on a signal or a spurious wake-up).
void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void futex_wake_all(std::atomic<uint32_t>* word) {
    syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
    for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
    stop_.store(true);
    generation_.fetch_add(1);
    wake_sleepers();
    for (auto& t : threads_) t.join();
}

// After generation_ changed. A worker adds itself to sleepers_ before its last look at generation_, and this reads
// sleepers_ after the change (both sequentially consistent): either the worker saw the new generation, or it is
// counted here and woken — and a wake that comes before it reached futex_wait makes that wait return at once.
void ThreadPool::wake_sleepers() {
    if (sleepers_.load() > 0) futex_wake_all(&generation_);
}

int ThreadPool::default_threads() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    unsigned n = std::thread::hardware_concurrency();
    return n ? static_cast<int>(n) : 1;
}

// Claims and runs tasks of generation `gen` until none is left. claim_ holds (generation << 32 | next task), so a
// thread that wakes late, after the job ended and the next began, cannot take a task of the wrong job.
void ThreadPool::work(uint32_t gen) {
    for (;;) {
        uint64_t s = claim_.load(std::memory_order_acquire);
        if ((s >> 32) != gen) return;
        const int task = static_cast<int>(s & 0xffffffffu);
        if (task >= n_threads_) return;
        if (!claim_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
        (*job_)(task, n_threads_);
        done_.fetch_add(1, std::memory_order_acq_rel);
    }
}

void ThreadPool::worker_loop() {
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = generation_.load(std::memory_order_acquire);
        for (int i = 0; g == seen && i < kSpin + kYield; ++i) {
            if (i < kSpin) cpu_relax();
            else sched_yield();
            g = generation_.load(std::memory_order_acquire);
        }
        if (g == seen) {
            sleepers_.fetch_add(1);
            while ((g = generation_.load()) == seen) futex_wait(&generation_, seen);
            sleepers_.fetch_sub(1);
        }
        seen = g;
        if (stop_.load()) return;
        work(g);
    }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
    if (n_threads_ == 1) {
        fn(0, 1);
        return;
    }
    job_ = &fn;
    done_.store(0, std::memory_order_relaxed);
    uint32_t gen = generation_.load(std::memory_order_relaxed) + 1;
    if (gen == 0) gen = 1;  // after 2^32 jobs: 0 is every worker's initial "seen"
    claim_.store(uint64_t{gen} << 32, std::memory_order_release);  // publishes job_ and done_ = 0 with the tasks
    generation_.store(gen);
    wake_sleepers();
    work(gen);
    for (int i = 0; done_.load(std::memory_order_acquire) != n_threads_; ++i) {
        if (i < kSpin) cpu_relax();
        else sched_yield();  // a worker holding a task was preempted: let it (or the other process) run
    }
    job_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    if (n_threads_ == 1 || n == 1) {
        fn(0, n);
        return;
    }
    run([&](int ith, int nth) {
        const int64_t chunk = (n + nth - 1) / nth;
        const int64_t b = ith * chunk;
        const int64_t e = b + chunk < n ? b + chunk : n;
        if (b < e) fn(b, e);
    });
}

}  // namespace llmforge
