// A small fork-join thread pool: the calling thread takes part. A job of n threads is n tasks, fn(0, n) … fn(n-1, n),
// which the threads claim one by one, so a task may run on any thread (and several on one, in turn): a task must not
// wait for another. Workers spin briefly, then yield, then sleep, so the many short parallel regions of decoding stay
// cheap while the cores are free, and a pool sharing its cores with other processes degrades gracefully. No lock is
// taken to start or finish a job: a worker the OS stops at any point holds nothing the caller waits for.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>
#include <vector>

namespace llmforge {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }
    // Runs fn(ith, nth) for every ith in [0, nth) and returns when all are done.
    void run(const std::function<void(int ith, int nth)>& fn);
    // Splits [0, n) into one contiguous range per worker.
    void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

    static int default_threads();  // physical cores available to this process (at least 1)

private:
    void worker_loop();
    void work(uint32_t gen);
    int n_threads_;
    std::vector<std::thread> threads_;
    const std::function<void(int, int)>* job_ = nullptr;
    void wake_sleepers();
    std::atomic<uint32_t> generation_{0};  // bumped per job: wakes the workers (a futex word)
    std::atomic<uint64_t> claim_{0};       // generation << 32 | next unclaimed task
    std::atomic<int> done_{0};             // tasks of the current job finished
    std::atomic<int> sleepers_{0};         // workers that sleep, or are about to, on generation_
    std::atomic<bool> stop_{false};
};

}  // namespace llmforge
