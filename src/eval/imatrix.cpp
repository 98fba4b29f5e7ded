// The importance matrix (see compute_imatrix in llmforge/eval.h): Σ x² per input column of every weight matrix over a
// calibration text, as llama-imatrix collects it.
#include <algorithm>
#include <cmath>
#include <map>

#include "llmforge/error.h"
#include "llmforge/eval.h"
#include "llmforge/transformer.h"

namespace llmforge {

ImportanceMatrix compute_imatrix(const Model& m, const std::vector<int32_t>& tokens, ThreadPool& pool, const ImatrixOptions& o) {
    const int64_t C = o.n_ctx;
    if (C < 2) throw_bad_input("imatrix: a context of %lld tokens is too short", static_cast<long long>(C));
    int64_t chunks = static_cast<int64_t>(tokens.size()) / C;
    if (o.max_chunks >= 0) chunks = std::min(chunks, o.max_chunks);
    if (chunks < 1)
        throw_bad_input("imatrix: the text has %zu tokens, fewer than one chunk of %lld (-c)", tokens.size(), static_cast<long long>(C));
    const int64_t batch = std::min(o.n_batch, C);
    struct Stat {
        std::vector<double> sums;
        int64_t rows = 0;
        int32_t ncall = 0;
    };
    std::map<std::string, Stat> stats;
    Transformer tr(m, pool, C, batch, o.kv_type);
    tr.set_linear_observer([&](const Tensor& w, const float* x, int64_t n) {
        if (n < 16) return;  // llama-imatrix skips small batches
        if (!(w.name.rfind("blk.", 0) == 0 || (o.process_output && w.name == "output.weight"))) return;
        const int64_t cols = w.cols();
        Stat& s = stats[w.name];
        if (s.sums.empty()) s.sums.assign(static_cast<size_t>(cols), 0.0);
        ++s.ncall;
        s.rows += n;
        for (int64_t i = 0; i < n; ++i) {
            const float* row = x + i * cols;
            for (int64_t j = 0; j < cols; ++j) s.sums[static_cast<size_t>(j)] += static_cast<double>(row[j]) * row[j];
        }
    });
    const int32_t bos = m.vocab ? m.vocab->bos : 1;
    std::vector<int32_t> chunk(static_cast<size_t>(C));
    for (int64_t c = 0; c < chunks; ++c) {
        std::copy(tokens.begin() + c * C, tokens.begin() + (c + 1) * C, chunk.begin());
        if (o.add_bos) chunk[0] = bos;
        tr.reset();
        for (int64_t s = 0; s < C; s += batch) (void)tr.eval(chunk.data() + s, std::min(batch, C - s));
        if (o.progress) o.progress(c + 1, chunks);
    }
    ImportanceMatrix im;
    im.chunks = static_cast<int32_t>(chunks);
    im.dataset = o.dataset;
    for (auto& [name, s] : stats) {
        ImportanceMatrix::Entry e;
        e.ncall = s.ncall;
        e.sums.resize(s.sums.size());
        for (size_t j = 0; j < s.sums.size(); ++j) {
            const double v = s.sums[j] / static_cast<double>(s.rows) * s.ncall;
            if (!std::isfinite(v)) throw_bad_input("imatrix: the inputs of '%s' are not finite", name.c_str());
            e.sums[j] = static_cast<float>(v);
        }
        im.entries[name] = std::move(e);
    }
    if (im.entries.empty()) throw_bad_input("imatrix: no pass had 16 tokens or more (raise -b / -c)");
    return im;
}

}  // namespace llmforge
