#include "core/progress.h"

#include "llmforge/error.h"
#include "llmforge/log.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

namespace llmforge {

namespace {

std::string amount(double v, const std::string& unit) {
    char buf[48];
    if (unit == "B") {
        const char* u[] = {"B", "KB", "MB", "GB", "TB"};
        int i = 0;
        while (v >= 1000 && i < 4) { v /= 1000; ++i; }
        std::snprintf(buf, sizeof(buf), i ? "%.1f %s" : "%.0f %s", v, u[i]);
    } else {
        std::snprintf(buf, sizeof(buf), v < 10 && v != static_cast<long long>(v) ? "%.2f %s" : "%.0f %s", v, unit.c_str());
    }
    return buf;
}

std::string clock_time(double s) {
    if (!(s >= 0) || s > 360000) return "--:--";
    const long t = static_cast<long>(s + 0.5);
    char buf[32];
    if (t >= 3600) std::snprintf(buf, sizeof(buf), "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
    else std::snprintf(buf, sizeof(buf), "%ld:%02ld", t / 60, t % 60);
    return buf;
}

}  // namespace

Progress::Progress(std::string label, double total, std::string unit, bool enabled)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled), tty_(log_terminal()) {
    start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::set_note(const std::string& note) {
    std::lock_guard<std::mutex> lock(mu_);
    note_ = note;
}

void Progress::add(double delta) {
    double cur = done_.load();
    while (!done_.compare_exchange_weak(cur, cur + delta)) {}
    update(cur + delta);
}

void Progress::update(double done) {
    done_ = done;
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    const double since = std::chrono::duration<double>(now - last_draw_).count();
    if (since < (tty_ ? 0.2 : 5.0)) return;
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    last_draw_ = now;
    draw(done, false);
}

void Progress::resume_at(double done) {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = base_ = done;
    start_ = last_draw_ = std::chrono::steady_clock::now();
}

void Progress::finish() {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_ || !enabled_) { finished_ = true; return; }
    finished_ = true;
    draw(done_.load(), true);
}

void Progress::draw(double done, bool final) {
    const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    const double frac = total_ > 0 ? std::min(1.0, done / total_) : 0.0;
    const double rate = el > 0 ? (done - base_) / el : 0;
    const double eta = rate > 0 ? (total_ - done) / rate : -1;
    constexpr int width = 24;
    std::string bar(width, ' ');
    const int filled = static_cast<int>(frac * width);
    for (int i = 0; i < filled; ++i) bar[static_cast<size_t>(i)] = '=';
    if (filled < width) bar[static_cast<size_t>(filled)] = '>';
    log_text(strprintf("%s%s [%s] %3.0f%% %s/%s %s/s %s %s%s%s%s", tty_ ? "\r" : "", label_.c_str(), bar.c_str(), frac * 100,
                    amount(done, unit_).c_str(), amount(total_, unit_).c_str(), amount(rate, unit_).c_str(), final ? "in" : "ETA",
                    clock_time(final ? el : eta).c_str(), note_.empty() ? "" : "  ", note_.c_str(), (final || !tty_) ? "\n" : "\x1b[K"));
}

uint64_t peak_rss_bytes() {
    struct rusage ru {};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<uint64_t>(ru.ru_maxrss) * 1024;
}

}  // namespace llmforge
