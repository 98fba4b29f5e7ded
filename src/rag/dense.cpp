// Dense retrieval: every chunk's embedding in the database (embeddings(chunk_id, vec): n_embd float32 values, keyed by
// the chunk's never-reused id), and an HNSW graph over them (hnswlib, chosen over FAISS by bench/bench_ann.sh: see
// BENCHMARKS.md) in dir/dense-<n>.hnsw, named by the meta row dense_file with its content hash, so that a graph is
// either the one the database names or ignored.
#include <fcntl.h>
#include <hnswlib/hnswlib.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "core/progress.h"
#include "core/threadpool.h"
#include "llmforge/embedder.h"
#include "llmforge/error.h"
#include "llmforge/log.h"
#include "rag/rag_internal.h"

namespace llmforge::rag {

namespace fs = std::filesystem;

namespace {
constexpr size_t kM = 16, kEfConstruction = 200;

// The largest chunk id with a vector (-1: none).
int64_t last_embedding_id(const SqliteDb& db) {
    SqliteStmt st(db, "SELECT COALESCE(MAX(chunk_id), -1) FROM embeddings");
    st.step();
    return st.int64(0);
}

// The bytes HierarchicalNSW::saveIndex writes: its 13 header fields, the level-0 block, then each element's upper-level
// link lists with their sizes (hnswlib's format).
template <class G>
uint64_t hnsw_file_size(const G& g) {
    uint64_t n = sizeof(g.offsetLevel0_) + sizeof(g.max_elements_) + sizeof(g.cur_element_count) + sizeof(g.size_data_per_element_) +
                 sizeof(g.label_offset_) + sizeof(g.offsetData_) + sizeof(g.maxlevel_) + sizeof(g.enterpoint_node_) + sizeof(g.maxM_) +
                 sizeof(g.maxM0_) + sizeof(g.M_) + sizeof(g.mult_) + sizeof(g.ef_construction_);
    n += static_cast<uint64_t>(g.cur_element_count) * g.size_data_per_element_;
    for (size_t i = 0; i < g.cur_element_count; ++i)
        n += sizeof(unsigned int) + (g.element_levels_[i] > 0 ? g.size_links_per_element_ * static_cast<size_t>(g.element_levels_[i]) : 0);
    return n;
}  // the graph's degree and build breadth (bench/bench_ann.sh: recall@10 0.99 at ef 32)

}  // namespace

void update_dense(const SqliteDb& db, const std::string& dir, const IndexOptions& o, IndexStats& stats) {
    Embedder& emb = *o.embedder;
    const int64_t D = emb.dim();
    db.exec("CREATE TABLE IF NOT EXISTS embeddings (chunk_id INTEGER PRIMARY KEY, vec BLOB NOT NULL)");
    std::map<std::string, std::string> meta = read_meta(db);
    if (meta.count("embed_model") &&
        (meta["embed_model"] != o.embed_model || meta["embed_stamp"] != o.embed_stamp || meta["embed_dim"] != std::to_string(D))) {
        log_line("rag index: the embedding model changed (%s → %s): every chunk is embedded again", meta["embed_model"].c_str(), o.embed_model.c_str());
        db.exec("DELETE FROM embeddings");
    }
    db.exec("BEGIN IMMEDIATE");
    set_meta(db, "embed_model", o.embed_model);
    set_meta(db, "embed_stamp", o.embed_stamp);
    set_meta(db, "embed_dim", std::to_string(D));
    db.exec("DELETE FROM embeddings WHERE chunk_id NOT IN (SELECT id FROM chunks)");
    db.exec("COMMIT");

    // the chunks without a vector, as the model reads them
    std::vector<std::pair<int64_t, std::string>> todo;
    {
        SqliteStmt st(db, "SELECT c.id, d.title, c.heading, c.text FROM chunks c JOIN docs d ON d.id = c.doc_id"
                          " WHERE c.id NOT IN (SELECT chunk_id FROM embeddings) ORDER BY c.id");
        while (st.step()) {
            Hit h;
            h.title = st.text(1);
            h.heading = st.text(2);
            h.text = st.text(3);
            todo.emplace_back(st.int64(0), passage_text(h));
        }
    }
    bool stopped = false;
    if (!todo.empty()) {
        Progress progress("embedding", static_cast<double>(todo.size()), "chunks", o.progress);
        SqliteStmt ins(db, "INSERT INTO embeddings (chunk_id, vec) VALUES (?, ?)");
        db.exec("BEGIN IMMEDIATE");
        auto last_commit = std::chrono::steady_clock::now();
        for (const auto& [id, text] : todo) {
            if (o.stop && o.stop->load()) {
                stopped = true;
                break;
            }
            const std::vector<float> v = emb.embed(text);
            ins.bind(1, id).bind_blob(2, v.data(), v.size() * sizeof(float));
            ins.step();
            ins.reset();
            ++stats.embedded;
            progress.add(1);
            const auto now = std::chrono::steady_clock::now();
            if (now - last_commit > std::chrono::seconds(1)) {
                db.exec("COMMIT");
                db.exec("BEGIN IMMEDIATE");
                last_commit = now;
            }
        }
        db.exec("COMMIT");
        progress.finish();
    }
    stats.vectors = static_cast<size_t>(count_rows(db, "embeddings"));
    if (stopped) {
        stats.interrupted = true;
        return;  // the graph stays the previous one; queries say the vectors are out of date until a run completes
    }
    // the graph matches the vectors when their number and their last chunk id are the graph's (chunk ids are never
    // reused: a replaced chunk raises the last id even where the count stays)
    if (meta.count("dense_count") && meta["dense_count"] == std::to_string(stats.vectors) && meta.count("dense_last_id") &&
        meta["dense_last_id"] == std::to_string(last_embedding_id(db)) && stats.embedded == 0 && meta["embed_model"] == o.embed_model &&
        meta["embed_stamp"] == o.embed_stamp && fs::exists(fs::path(dir) / meta["dense_file"]))
        return;  // nothing changed

    // the graph, from every vector; written under a new name, then named in the meta table, then the old one removed
    const size_t n = stats.vectors;
    std::vector<float> vecs(n * static_cast<size_t>(D));
    std::vector<int64_t> ids(n);
    {
        SqliteStmt st(db, "SELECT chunk_id, vec FROM embeddings ORDER BY chunk_id");
        size_t i = 0;
        while (st.step() && i < n) {
            const auto [p, bytes] = st.blob(1);
            if (bytes != static_cast<size_t>(D) * sizeof(float)) throw_bad_input("'%s': a stored vector has %zu bytes, not %lld", dir.c_str(), bytes,
                                                                                static_cast<long long>(D) * 4);
            ids[i] = st.int64(0);
            std::memcpy(vecs.data() + i * static_cast<size_t>(D), p, bytes);
            ++i;
        }
    }
    const int64_t stamp = meta.count("dense_stamp") ? std::stoll(meta["dense_stamp"]) + 1 : 1;
    const std::string name = "dense-" + std::to_string(stamp) + ".hnsw";
    const fs::path file = fs::path(dir) / name, tmp = fs::path(dir) / (name + ".tmp");
    {
        Progress progress("building the graph", static_cast<double>(n), "vectors", o.progress);
        hnswlib::InnerProductSpace space(static_cast<size_t>(D));
        hnswlib::HierarchicalNSW<float> g(&space, std::max<size_t>(n, 1), kM, kEfConstruction, 100);
        ThreadPool pool(o.threads);
        pool.parallel_for(static_cast<int64_t>(n), [&](int64_t b0, int64_t b1) {
            for (int64_t i = b0; i < b1; ++i) {
                g.addPoint(vecs.data() + static_cast<size_t>(i) * static_cast<size_t>(D), static_cast<hnswlib::labeltype>(ids[static_cast<size_t>(i)]));
                progress.add(1);
            }
        });
        progress.finish();
        g.saveIndex(tmp.string());
        // hnswlib writes through an unchecked std::ofstream: a full disk would leave the file short without a word, and
        // the index would point at a broken graph. Check its size against what the format holds, and that it reached
        // the disk.
        const uint64_t want = hnsw_file_size(g);
        std::error_code fec;
        const uint64_t got = fs::file_size(tmp, fec);
        const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
        const bool synced = fd >= 0 && ::fsync(fd) == 0;
        if (fd >= 0) ::close(fd);
        if (fec || got != want || !synced) {
            fs::remove(tmp, fec);
            throw_runtime("rag index: cannot write '%s': %s (the index keeps its previous graph)", file.c_str(),
                          got != want ? strprintf("only %llu of its %llu bytes were written (is the disk full?)", static_cast<unsigned long long>(got),
                                                  static_cast<unsigned long long>(want)).c_str()
                                      : "it could not be synced to the disk");
        }
    }
    std::error_code ec;
    fs::rename(tmp, file, ec);
    if (ec) throw_runtime("rag index: cannot rename '%s': %s", tmp.c_str(), ec.message().c_str());
    const std::string old = meta.count("dense_file") ? meta["dense_file"] : "";
    db.exec("BEGIN IMMEDIATE");
    set_meta(db, "dense_file", name);
    set_meta(db, "dense_hash", file_content_hash(file.string()));
    set_meta(db, "dense_count", std::to_string(n));
    set_meta(db, "dense_last_id", std::to_string(n ? ids.back() : -1));
    set_meta(db, "dense_stamp", std::to_string(stamp));
    db.exec("COMMIT");
    if (!old.empty() && old != name) fs::remove(fs::path(dir) / old, ec);
}

// ---------------------------------------------------------------------------------------------------------- searches

namespace {
// The cosine similarity of two unit vectors, summed in double (exact search and the scores fusion looks up)
double dot(const float* a, const float* b, size_t n) {
    double s = 0;
    for (size_t c = 0; c < n; ++c) s += static_cast<double>(a[c]) * b[c];
    return s;
}
}  // namespace

struct DenseSearch::Graph {
    std::unique_ptr<hnswlib::InnerProductSpace> space;
    std::unique_ptr<hnswlib::HierarchicalNSW<float>> hnsw;
    int64_t dim = 0;
    std::vector<float> all;       // exact search: every vector, loaded on first use
    std::vector<int64_t> all_ids;
};

DenseSearch::DenseSearch(const SqliteDb& db, std::string dir) : db_(db), dir_(std::move(dir)) {}
DenseSearch::~DenseSearch() = default;

std::vector<std::pair<int64_t, double>> DenseSearch::search(const std::vector<float>& q, int k, int ef, bool exact) {
    if (!g_) {
        std::map<std::string, std::string> meta = read_meta(db_);
        if (!meta.count("embed_model"))
            throw_bad_input("'%s' has no dense vectors: build them with `llmforge rag index … --embed-model MODEL`", dir_.c_str());
        const int64_t have = count_rows(db_, "embeddings"), chunks = count_rows(db_, "chunks");
        if (!meta.count("dense_count") || std::to_string(have) != meta["dense_count"] || have != chunks ||
            (meta.count("dense_last_id") && meta["dense_last_id"] != std::to_string(last_embedding_id(db_))))
            throw_bad_input("'%s': the dense vectors are out of date (%lld of %lld chunks embedded, the graph holds %s): run `llmforge rag index` again",
                            dir_.c_str(), static_cast<long long>(have), static_cast<long long>(chunks),
                            meta.count("dense_count") ? meta["dense_count"].c_str() : "none");
        auto g = std::make_unique<Graph>();
        g->dim = std::stoll(meta["embed_dim"]);
        const std::string file = (fs::path(dir_) / meta["dense_file"]).string();
        std::error_code ec;
        if (!fs::is_regular_file(file, ec) || file_content_hash(file) != meta["dense_hash"])
            throw_bad_input("'%s': the graph file '%s' is missing or not the one the index wrote: run `llmforge rag index` again", dir_.c_str(),
                            meta["dense_file"].c_str());
        g->space = std::make_unique<hnswlib::InnerProductSpace>(static_cast<size_t>(g->dim));
        try {
            g->hnsw = std::make_unique<hnswlib::HierarchicalNSW<float>>(g->space.get(), file);
        } catch (const std::exception& e) {
            throw_bad_input("'%s': cannot read the graph: %s", file.c_str(), e.what());
        }
        g_ = std::move(g);
    }
    if (static_cast<int64_t>(q.size()) != g_->dim)
        throw_bad_input("the query's embedding has %zu values; the index's vectors have %lld (another embedding model?)", q.size(),
                        static_cast<long long>(g_->dim));
    std::vector<std::pair<int64_t, double>> out;
    if (k <= 0) return out;
    if (exact) {
        if (g_->all_ids.empty()) {
            SqliteStmt st(db_, "SELECT chunk_id, vec FROM embeddings ORDER BY chunk_id");
            while (st.step()) {
                const auto [p, bytes] = st.blob(1);
                if (bytes != static_cast<size_t>(g_->dim) * sizeof(float)) throw_bad_input("'%s': a stored vector has the wrong size", dir_.c_str());
                g_->all_ids.push_back(st.int64(0));
                const float* f = static_cast<const float*>(p);
                g_->all.insert(g_->all.end(), f, f + g_->dim);
            }
        }
        const size_t n = g_->all_ids.size(), D = static_cast<size_t>(g_->dim);
        for (size_t i = 0; i < n; ++i) out.emplace_back(g_->all_ids[i], dot(q.data(), &g_->all[i * D], D));
        const size_t m = std::min(out.size(), static_cast<size_t>(k));
        std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(m), out.end(),
                          [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
        out.resize(m);
        return out;
    }
    g_->hnsw->setEf(static_cast<size_t>(std::max(ef, k)));
    auto pq = g_->hnsw->searchKnn(q.data(), static_cast<size_t>(k));
    while (!pq.empty()) {  // largest distance (1 − cosine) first
        out.emplace_back(static_cast<int64_t>(pq.top().second), 1.0 - static_cast<double>(pq.top().first));
        pq.pop();
    }
    std::reverse(out.begin(), out.end());
    std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    return out;
}

std::vector<double> DenseSearch::similarity(const std::vector<float>& q, const std::vector<int64_t>& chunks) const {
    std::vector<double> out;
    out.reserve(chunks.size());
    SqliteStmt st(db_, "SELECT vec FROM embeddings WHERE chunk_id = ?");
    for (int64_t id : chunks) {
        st.bind(1, id);
        if (!st.step()) throw_bad_input("'%s': chunk %lld has no vector: run `llmforge rag index` again", dir_.c_str(), static_cast<long long>(id));
        const auto [p, bytes] = st.blob(0);
        if (bytes != q.size() * sizeof(float)) throw_bad_input("'%s': a stored vector has the wrong size", dir_.c_str());
        out.push_back(dot(q.data(), static_cast<const float*>(p), q.size()));
        st.reset();
    }
    return out;
}

}  // namespace llmforge::rag
