// llmforge plot METRICS.jsonl... --y KEY[,KEY...] [--labels A,B,...] [--x step] [--smooth N] [--title T] -o out.svg
// Curves from training runs' metrics.jsonl (pretrain, sft, reward, dpo, rlhf, grpo): one panel per key, one line per run.
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/mmap_file.h"
#include "llmforge/error.h"
#include "llmforge/plot.h"

namespace llmforge::cli {

void add_plot(CLI::App& app) {
    auto* cmd = app.add_subcommand("plot", "Plot quantities from runs' metrics.jsonl as an SVG: one panel per key, one line per run");
    struct Opts {
        std::vector<std::string> files, keys, labels;
        std::string x = "step", title, out;
        int smooth = 1;
    };
    auto o = std::make_shared<Opts>();
    cmd->add_option("metrics", o->files, "metrics.jsonl files (or run directories holding one)")->required();
    cmd->add_option("--y", o->keys, "keys to plot, one panel each (e.g. reward kl)")->required()->delimiter(',');
    cmd->add_option("--labels", o->labels, "a label per run")->delimiter(',')->default_str("the file names");
    cmd->add_option("--x", o->x, "the x key");
    cmd->add_option("--smooth", o->smooth, "moving average over N points (1: none)")->check(CLI::Range(1, 100000));
    cmd->add_option("--title", o->title, "title")->default_str("the run directories' names");
    cmd->add_option("-o,--output", o->out, "the SVG file")->required();
    cmd->callback([o] {
        if (!o->labels.empty() && o->labels.size() != o->files.size())
            throw_bad_input("--labels: %zu labels for %zu runs", o->labels.size(), o->files.size());
        std::vector<PlotPanel> panels(o->keys.size());
        for (size_t k = 0; k < o->keys.size(); ++k) panels[k].title = o->keys[k];
        for (size_t f = 0; f < o->files.size(); ++f) {
            std::string path = o->files[f];
            if (is_directory(path)) path += "/metrics.jsonl";
            if (!file_exists(path)) throw_bad_input("'%s' does not exist", path.c_str());
            std::ifstream in(path);
            std::vector<std::vector<std::pair<double, double>>> pts(o->keys.size());
            std::string line;
            size_t lineno = 0, bad = 0;
            while (std::getline(in, line)) {
                ++lineno;
                if (line.empty()) continue;
                nlohmann::json j;
                try {
                    j = nlohmann::json::parse(line);
                } catch (const nlohmann::json::exception&) {
                    ++bad;  // a torn last line of a crashed run, say
                    continue;
                }
                if (!j.is_object() || !j.contains(o->x) || !j[o->x].is_number()) continue;
                for (size_t k = 0; k < o->keys.size(); ++k)
                    if (j.contains(o->keys[k]) && j[o->keys[k]].is_number()) pts[k].emplace_back(j[o->x].get<double>(), j[o->keys[k]].get<double>());
            }
            const std::string label = o->labels.empty() ? o->files[f] : o->labels[f];
            for (size_t k = 0; k < o->keys.size(); ++k) panels[k].series.push_back({label, smooth(pts[k], o->smooth)});
            if (bad) std::fprintf(stderr, "llmforge: %s: %zu unreadable lines skipped\n", path.c_str(), bad);
        }
        size_t total = 0;
        for (const auto& p : panels)
            for (const auto& s : p.series) total += s.points.size();
        if (total == 0) throw_bad_input("none of the runs has the key(s) asked for");
        write_svg_plot(o->out, o->title, o->x, panels);
        std::fprintf(stderr, "llmforge: wrote %s (%zu panels, %zu runs)\n", o->out.c_str(), panels.size(), o->files.size());
    });
}

}  // namespace llmforge::cli
