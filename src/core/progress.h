// A progress line on stderr for long jobs: percentage, amount, rate and ETA. On a terminal it redraws one line;
// otherwise (logs, CI) it prints a line every few seconds. Thread-safe update().
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace llmforge {

class Progress {
public:
    // unit "B" formats amounts as bytes (KB/MB/GB); anything else prints plain counts followed by the unit.
    Progress(std::string label, double total, std::string unit, bool enabled = true);
    ~Progress();
    void update(double done);  // absolute amount done so far
    void resume_at(double done);  // a resumed job: `done` was done before this run; the rate and ETA count from here
    void add(double delta);
    void finish();             // prints the final line (once)
    void set_note(const std::string& note);  // shown after the counts (e.g. the current loss)

private:
    void draw(double done, bool final);
    std::string label_, unit_, note_;
    double total_, base_ = 0;
    bool enabled_, tty_, finished_ = false;
    std::atomic<double> done_{0};
    std::chrono::steady_clock::time_point start_, last_draw_;
    std::mutex mu_;
};

// Peak resident memory of this process so far, in bytes.
uint64_t peak_rss_bytes();

}  // namespace llmforge
