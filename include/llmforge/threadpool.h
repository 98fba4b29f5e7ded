// A small fork-join thread pool: the calling thread takes part as worker 0.
// Workers spin briefly before sleeping, so the many short parallel regions of decoding stay cheap.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
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
    // Runs fn(ith, nth) on every worker and returns when all are done.
    void run(const std::function<void(int ith, int nth)>& fn);
    // Splits [0, n) into one contiguous range per worker.
    void parallel_for(int64_t n, const std::function<void(int64_t begin, int64_t end)>& fn);

    static int default_threads();  // physical cores available to this process (at least 1)

private:
    void worker_loop(int ith);
    int n_threads_;
    std::vector<std::thread> threads_;
    const std::function<void(int, int)>* job_ = nullptr;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int> pending_{0};
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::condition_variable cv_;
};

}  // namespace llmforge
