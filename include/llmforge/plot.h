// Line plots as standalone SVG files (no plotting library in Debian's C++ stack fits): training curves of one run or
// several runs side by side, one panel per quantity.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace llmforge {

struct PlotSeries {
    std::string label;
    std::vector<std::pair<double, double>> points;  // (x, y); non-finite y are left out
};
struct PlotPanel {
    std::string title;  // e.g. "mean reward"
    std::vector<PlotSeries> series;
};
// Panels stacked vertically, each with its own y range, a shared x label; written atomically.
void write_svg_plot(const std::string& path, const std::string& title, const std::string& xlabel, const std::vector<PlotPanel>& panels);

// A moving average over `window` points (window ≤ 1: unchanged).
std::vector<std::pair<double, double>> smooth(const std::vector<std::pair<double, double>>& pts, int window);

}  // namespace llmforge
