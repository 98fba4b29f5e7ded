// Internal: what the index's files share (index.cpp: the database and BM25; dense.cpp: the vectors).
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/hash.h"
#include "core/sqlite_db.h"
#include "llmforge/rag.h"

namespace llmforge::rag {

using llmforge::content_hash;  // core/hash.h
std::map<std::string, std::string> read_meta(const SqliteDb& db);
void set_meta(const SqliteDb& db, const std::string& k, const std::string& v);
int64_t count_rows(const SqliteDb& db, const char* table);
// terms() of a text whose words() are w
std::vector<std::string> analyze(std::vector<std::string> w, Analyzer a);

// Brings the dense vectors up to date after the chunks changed: the vectors of removed chunks go, chunks without one
// are embedded (transactions committed about once a second; the stop flag ends it early), and the HNSW graph is built
// again from all of them and swapped in (dir/dense-<n>.hnsw, then the meta row that names it).
void update_dense(const SqliteDb& db, const std::string& dir, const IndexOptions& o, IndexStats& stats);

// The dense side of an open index: the graph loaded on first use, searches by a query vector.
class DenseSearch {
public:
    DenseSearch(const SqliteDb& db, std::string dir);
    ~DenseSearch();
    // (chunk id, cosine similarity) of the k nearest vectors, best first
    std::vector<std::pair<int64_t, double>> search(const std::vector<float>& q, int k, int ef, bool exact);
    // The cosine similarity of q to each chunk's stored vector (after a search: the vectors are checked then)
    std::vector<double> similarity(const std::vector<float>& q, const std::vector<int64_t>& chunks) const;

private:
    struct Graph;
    const SqliteDb& db_;
    std::string dir_;
    std::unique_ptr<Graph> g_;
};

}  // namespace llmforge::rag
