// SVG line plots (see plot.h).
#include "llmforge/plot.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/mmap_file.h"

namespace llmforge {

namespace {
const char* const kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

std::string num(double v) {
    std::ostringstream s;
    s.precision(3);
    s << v;
    return s.str();
}

std::string esc(const std::string& t) {
    std::string o;
    for (char c : t) {
        if (c == '<') o += "&lt;";
        else if (c == '>') o += "&gt;";
        else if (c == '&') o += "&amp;";
        else o += c;
    }
    return o;
}
}  // namespace

std::vector<std::pair<double, double>> smooth(const std::vector<std::pair<double, double>>& pts, int window) {
    if (window <= 1) return pts;
    std::vector<std::pair<double, double>> out;
    double sum = 0;
    int n = 0;
    for (size_t i = 0; i < pts.size(); ++i) {
        sum += pts[i].second;
        ++n;
        if (n > window) {
            sum -= pts[i - static_cast<size_t>(window)].second;
            --n;
        }
        out.emplace_back(pts[i].first, sum / n);
    }
    return out;
}

void write_svg_plot(const std::string& path, const std::string& title, const std::string& xlabel, const std::vector<PlotPanel>& panels) {
    const double W = 860, PH = 260, L = 70, R = 170, T = 56, gap = 44, Bm = 40;
    const double H = T + static_cast<double>(panels.size()) * (PH + gap) - gap + Bm;
    double x0 = 1e300, x1 = -1e300;
    for (const auto& p : panels)
        for (const auto& s : p.series)
            for (const auto& [x, y] : s.points) {
                x0 = std::min(x0, x);
                x1 = std::max(x1, x);
            }
    if (!(x1 > x0)) {
        x0 = 0;
        x1 = 1;
    }
    std::ostringstream s;
    s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
    s << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    s << "<text x=\"" << L << "\" y=\"22\" font-size=\"15\">" << esc(title) << "</text>\n";
    auto X = [&](double x) { return L + (W - L - R) * (x - x0) / (x1 - x0); };
    for (size_t pi = 0; pi < panels.size(); ++pi) {
        const PlotPanel& p = panels[pi];
        const double top = T + static_cast<double>(pi) * (PH + gap);
        double y0 = 1e300, y1 = -1e300;
        for (const auto& sr : p.series)
            for (const auto& [x, y] : sr.points)
                if (std::isfinite(y)) {
                    y0 = std::min(y0, y);
                    y1 = std::max(y1, y);
                }
        if (!(y1 >= y0)) {
            y0 = 0;
            y1 = 1;
        }
        if (y1 - y0 < 1e-12) {
            y0 -= 0.5;
            y1 += 0.5;
        }
        const double pad = 0.05 * (y1 - y0);
        y0 -= pad;
        y1 += pad;
        auto Y = [&](double y) { return top + PH * (1 - (y - y0) / (y1 - y0)); };
        s << "<text x=\"" << L << "\" y=\"" << top - 6 << "\" font-size=\"13\">" << esc(p.title) << "</text>\n";
        s << "<rect x=\"" << L << "\" y=\"" << top << "\" width=\"" << W - L - R << "\" height=\"" << PH << "\" fill=\"none\" stroke=\"#999\"/>\n";
        for (int i = 0; i <= 4; ++i) {
            const double y = y0 + (y1 - y0) * i / 4;
            s << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << Y(y) << "\" y2=\"" << Y(y) << "\" stroke=\"#e5e5e5\"/>";
            s << "<text x=\"" << L - 6 << "\" y=\"" << Y(y) + 4 << "\" text-anchor=\"end\">" << num(y) << "</text>\n";
            const double x = x0 + (x1 - x0) * i / 4;
            s << "<text x=\"" << X(x) << "\" y=\"" << top + PH + 15 << "\" text-anchor=\"middle\">" << num(x) << "</text>\n";
        }
        for (size_t si = 0; si < p.series.size(); ++si) {
            const PlotSeries& sr = p.series[si];
            const char* color = kColors[si % (sizeof(kColors) / sizeof(kColors[0]))];
            s << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.6\" points=\"";
            for (const auto& [x, y] : sr.points)
                if (std::isfinite(y)) s << X(x) << "," << Y(y) << " ";
            s << "\"/>\n";
            s << "<text x=\"" << W - R + 10 << "\" y=\"" << top + 16 + 16 * static_cast<double>(si) << "\" fill=\"" << color << "\">" << esc(sr.label)
              << "</text>\n";
        }
    }
    s << "<text x=\"" << (W - R + L) / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">" << esc(xlabel) << "</text>\n</svg>\n";
    const std::string text = s.str();
    AtomicWriter w(path);
    w.write(text.data(), text.size());
    w.commit();
}

}  // namespace llmforge
