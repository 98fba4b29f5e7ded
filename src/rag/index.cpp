// The retrieval index: one SQLite database (dir/index.sqlite) with
//   meta(key, value)                       what built it: format version, chunk sizes, the token counter, the segmenter
//   files(id, path, hash, size, format)    every file indexed, with its content hash (what makes re-indexing incremental)
//   docs(id, file_id, source, title)       a file's documents (one, or one per JSONL line)
//   chunks(id, doc_id, ord, heading, text, begin, end, tokens, terms)
//                                          terms: the BM25 terms of heading + text (terms(), by the analyzer the meta
//                                          row "analyzer" names; none: plain), space-separated
//   chunks_fts                             FTS5 over chunks.terms (external content), tokenizer "ascii": it splits
//                                          exactly at the spaces, because a word holds only [a-z0-9] and non-ASCII
// Chunk ids are AUTOINCREMENT: never reused, so anything keyed by them (embeddings) cannot point at another chunk.
#include <unicode/uversion.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "core/hash.h"
#include "core/progress.h"
#include "core/sqlite_db.h"
#include "llmforge/embedder.h"
#include "llmforge/error.h"
#include "llmforge/log.h"
#include "llmforge/rag.h"
#include "llmforge/reranker.h"
#include "llmforge/tokenizer.h"
#include "rag/rag_internal.h"

namespace llmforge::rag {

namespace fs = std::filesystem;

std::map<std::string, std::string> read_meta(const SqliteDb& db) {
    std::map<std::string, std::string> m;
    SqliteStmt st(db, "SELECT key, value FROM meta");
    while (st.step()) m[st.text(0)] = st.text(1);
    return m;
}

void set_meta(const SqliteDb& db, const std::string& k, const std::string& v) {
    SqliteStmt st(db, "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    st.bind(1, k).bind(2, v).step();
}

int64_t count_rows(const SqliteDb& db, const char* table) {
    SqliteStmt st(db, (std::string("SELECT COUNT(*) FROM ") + table).c_str());
    st.step();
    return st.int64(0);
}

namespace {

constexpr const char* kFormat = "llmforge-rag 1";

std::string segmenter_name() { return std::string("icu ") + U_ICU_VERSION + " word break, NFKC_Casefold"; }

void create_schema(const SqliteDb& db) {
    db.exec("PRAGMA journal_mode=WAL");
    db.exec("PRAGMA synchronous=NORMAL");
    db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
    db.exec("CREATE TABLE IF NOT EXISTS files (id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, hash TEXT NOT NULL,"
            " size INTEGER NOT NULL, format TEXT NOT NULL)");
    db.exec("CREATE TABLE IF NOT EXISTS docs (id INTEGER PRIMARY KEY, file_id INTEGER NOT NULL, source TEXT NOT NULL,"
            " title TEXT NOT NULL)");
    db.exec("CREATE INDEX IF NOT EXISTS docs_file ON docs(file_id)");
    db.exec("CREATE TABLE IF NOT EXISTS chunks (id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id INTEGER NOT NULL,"
            " ord INTEGER NOT NULL, heading TEXT NOT NULL, text TEXT NOT NULL, begin INTEGER NOT NULL, end INTEGER NOT NULL,"
            " tokens INTEGER NOT NULL, terms TEXT NOT NULL)");
    db.exec("CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id)");
    db.exec("CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(terms, content='chunks', content_rowid='id', tokenize='ascii')");
}


// The files under the inputs, sorted, as absolute normalised paths. A missing input is a bad-input Error.
std::vector<std::string> collect(const std::vector<std::string>& inputs) {
    std::set<std::string> out;
    for (const std::string& in : inputs) {
        std::error_code ec;
        const fs::path p = fs::absolute(in, ec).lexically_normal();
        const fs::file_status s = fs::status(p, ec);
        if (ec || !fs::exists(s)) throw_bad_input("'%s': no such file or directory", in.c_str());
        if (fs::is_directory(s)) {
            fs::recursive_directory_iterator it(p, fs::directory_options::skip_permission_denied, ec), end;
            if (ec) throw_bad_input("'%s': cannot be listed: %s", in.c_str(), ec.message().c_str());
            for (; it != end; it.increment(ec)) {
                if (ec) break;
                const std::string name = it->path().filename().string();
                if (!name.empty() && name[0] == '.') {
                    if (it->is_directory(ec)) it.disable_recursion_pending();
                    continue;
                }
                if (it->is_regular_file(ec)) out.insert(it->path().lexically_normal().string());
            }
        } else {
            out.insert(p.string());
        }
    }
    return {out.begin(), out.end()};
}

bool read_file(const std::string& path, std::string& data, std::string& why) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        why = std::strerror(errno);
        return false;
    }
    data.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    if (f.bad()) {
        why = "read error";
        return false;
    }
    return true;
}

std::string join_terms(const std::vector<std::string>& w) {
    std::string s;
    for (const std::string& x : w) {
        if (!s.empty()) s += ' ';
        s += x;
    }
    return s;
}

}  // namespace

IndexStats build_index(const std::vector<std::string>& inputs, const std::string& dir, const IndexOptions& opt) {
    const auto t0 = std::chrono::steady_clock::now();
    IndexStats stats;
    const std::vector<std::string> files = collect(inputs);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw_bad_input("cannot create the index directory '%s': %s", dir.c_str(), ec.message().c_str());
    SqliteDb db((fs::path(dir) / "index.sqlite").string(), "index", true);
    create_schema(db);

    // What the chunks are made with: fixed when the index is created; a different choice later is an error.
    std::map<std::string, std::string> meta = read_meta(db);
    ChunkOptions co = opt.chunk;
    const bool fresh_index = !meta.count("format");
    if (!fresh_index && meta["format"] != kFormat)
        throw_bad_input("'%s' holds an index of format '%s'; this llmforge reads '%s'", dir.c_str(), meta["format"].c_str(), kFormat);
    auto fixed = [&](const std::string& key, int& value, int unset_below, int dflt) {
        const bool unset = value < unset_below;
        if (fresh_index) {
            if (unset) value = dflt;
            return;
        }
        const int have = std::stoi(meta[key]);
        if (unset) value = have;
        else if (value != have)
            throw_bad_input("the index in '%s' was built with %s %d, not %d: index into a new directory to change it", dir.c_str(),
                            key.c_str(), have, value);
    };
    fixed("max_tokens", co.max_tokens, 1, 256);
    fixed("overlap", co.overlap, 0, 32);
    const std::string counter = opt.tokenizer.empty() ? "words" : "tokenizer " + fs::path(opt.tokenizer).filename().string();
    if (!fresh_index && meta["counter"] != counter)
        throw_bad_input("the index in '%s' counts chunk sizes in %s, not %s: index into a new directory to change it", dir.c_str(),
                        meta["counter"].c_str(), counter.c_str());
    const Analyzer analyzer = opt.analyzer.empty() ? (fresh_index || !meta.count("analyzer") ? Analyzer::Plain : parse_analyzer(meta["analyzer"]))
                                                   : parse_analyzer(opt.analyzer);
    if (!fresh_index) {
        const std::string have = meta.count("analyzer") ? meta["analyzer"] : "plain";
        if (have != analyzer_name(analyzer))
            throw_bad_input("the index in '%s' was built with the %s analyzer, not %s: index into a new directory to change it",
                            dir.c_str(), have.c_str(), analyzer_name(analyzer));
    }
    std::shared_ptr<Vocab> vocab;
    if (!opt.tokenizer.empty()) {
        vocab = std::make_shared<Vocab>(Vocab::load(opt.tokenizer));
        co.count = [vocab](std::string_view s) { return vocab->encode(std::string(s), false).size(); };
    }
    if (fresh_index) {
        set_meta(db, "format", kFormat);
        set_meta(db, "max_tokens", std::to_string(co.max_tokens));
        set_meta(db, "overlap", std::to_string(co.overlap));
        set_meta(db, "counter", counter);
        set_meta(db, "segmenter", segmenter_name());
        set_meta(db, "analyzer", analyzer_name(analyzer));
    } else if (meta["segmenter"] != segmenter_name()) {
        log_line("warning: the index was segmented by %s; this build uses %s (words may differ: re-index into a new directory)",
                 meta["segmenter"].c_str(), segmenter_name().c_str());
    }

    // What the index has.
    std::map<std::string, std::pair<int64_t, std::string>> known;  // path → (id, hash)
    {
        SqliteStmt st(db, "SELECT id, path, hash FROM files");
        while (st.step()) known[st.text(1)] = {st.int64(0), st.text(2)};
    }

    SqliteStmt del_fts(db, "INSERT INTO chunks_fts(chunks_fts, rowid, terms) SELECT 'delete', c.id, c.terms FROM chunks c"
                           " JOIN docs d ON c.doc_id = d.id WHERE d.file_id = ?");
    SqliteStmt del_chunks(db, "DELETE FROM chunks WHERE doc_id IN (SELECT id FROM docs WHERE file_id = ?)");
    SqliteStmt del_docs(db, "DELETE FROM docs WHERE file_id = ?");
    SqliteStmt del_file(db, "DELETE FROM files WHERE id = ?");
    SqliteStmt ins_file(db, "INSERT INTO files (path, hash, size, format) VALUES (?, ?, ?, ?)");
    SqliteStmt ins_doc(db, "INSERT INTO docs (file_id, source, title) VALUES (?, ?, ?)");
    SqliteStmt ins_chunk(db, "INSERT INTO chunks (doc_id, ord, heading, text, begin, end, tokens, terms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)");
    SqliteStmt ins_fts(db, "INSERT INTO chunks_fts (rowid, terms) VALUES (?, ?)");
    auto run = [](SqliteStmt& st) {
        st.step();
        st.reset();
    };
    auto remove_file = [&](int64_t id) {
        for (SqliteStmt* st : {&del_fts, &del_chunks, &del_docs, &del_file}) {
            st->bind(1, id);
            run(*st);
        }
    };

    // Work in transactions of whole files, committed about once a second: an interruption keeps every file either as
    // it was or as it is now.
    db.exec("BEGIN IMMEDIATE");
    auto last_commit = std::chrono::steady_clock::now();
    auto maybe_commit = [&](bool force) {
        const auto now = std::chrono::steady_clock::now();
        if (force || now - last_commit > std::chrono::seconds(1)) {
            db.exec("COMMIT");
            db.exec("BEGIN IMMEDIATE");
            last_commit = now;
        }
    };

    uint64_t total_bytes = 0;
    for (const std::string& f : files) total_bytes += static_cast<uint64_t>(fs::file_size(f, ec) * !ec);
    Progress progress("indexing", static_cast<double>(total_bytes), "B", opt.progress);
    std::set<std::string> present;
    uint64_t done_bytes = 0;
    std::string data, why;
    bool stopped = false;
    for (const std::string& path : files) {
        if (opt.stop && opt.stop->load()) {
            stopped = true;
            break;
        }
        const uint64_t size = static_cast<uint64_t>(fs::file_size(path, ec) * !ec);
        done_bytes += size;
        const std::string fmt = format_of(path);
        if (fmt.empty()) {
            stats.skipped.push_back(path + ": unsupported format");
            progress.update(static_cast<double>(done_bytes));
            continue;
        }
        ++stats.files;
        present.insert(path);
        if (!read_file(path, data, why)) {
            stats.skipped.push_back(path + ": unreadable (" + why + ")");
            present.erase(path);  // dropped from the index below if it was there
            continue;
        }
        stats.bytes_read += data.size();
        const std::string hash = content_hash(data);
        auto old = known.find(path);
        if (old != known.end() && old->second.second == hash) {
            ++stats.unchanged;
            progress.update(static_cast<double>(done_bytes));
            continue;
        }
        std::vector<Document> docs;
        try {
            docs = read_documents(path, data, opt.read);
        } catch (const Error& e) {
            stats.skipped.push_back(e.what());
            present.erase(path);
            progress.update(static_cast<double>(done_bytes));
            continue;
        }
        if (old != known.end()) {
            remove_file(old->second.first);
            ++stats.changed;
        } else {
            ++stats.added;
        }
        ins_file.bind(1, std::string_view(path)).bind(2, std::string_view(hash)).bind(3, static_cast<int64_t>(data.size())).bind(4, std::string_view(fmt));
        run(ins_file);
        const int64_t file_id = sqlite3_last_insert_rowid(db.get());
        known[path] = {file_id, hash};
        for (const Document& d : docs) {
            ins_doc.bind(1, file_id).bind(2, std::string_view(d.source)).bind(3, std::string_view(d.title));
            run(ins_doc);
            const int64_t doc_id = sqlite3_last_insert_rowid(db.get());
            const std::vector<Chunk> chunks = chunk_document(d, co);
            for (size_t i = 0; i < chunks.size(); ++i) {
                const Chunk& c = chunks[i];
                const std::string_view text = std::string_view(d.text).substr(c.begin, c.end - c.begin);
                const std::string chunk_terms = join_terms(terms(c.heading + "\n" + std::string(text), analyzer));
                ins_chunk.bind(1, doc_id).bind(2, static_cast<int64_t>(i)).bind(3, std::string_view(c.heading)).bind(4, text)
                    .bind(5, static_cast<int64_t>(c.begin)).bind(6, static_cast<int64_t>(c.end)).bind(7, static_cast<int64_t>(c.tokens))
                    .bind(8, std::string_view(chunk_terms));
                run(ins_chunk);
                ins_fts.bind(1, static_cast<int64_t>(sqlite3_last_insert_rowid(db.get()))).bind(2, std::string_view(chunk_terms));
                run(ins_fts);
                ++stats.chunks_written;
            }
        }
        progress.update(static_cast<double>(done_bytes));
        maybe_commit(false);
    }
    // Files no longer among the inputs (or now unreadable) leave the index — unless the run was stopped before
    // seeing them all.
    if (!stopped)
        for (const auto& [path, v] : known)
            if (!present.count(path)) {
                remove_file(v.first);
                ++stats.removed;
            }
    db.exec("COMMIT");
    progress.finish();
    stats.documents = static_cast<size_t>(count_rows(db, "docs"));
    stats.chunks = static_cast<size_t>(count_rows(db, "chunks"));
    stats.interrupted = stopped;
    if (opt.embedder && !stopped) update_dense(db, dir, opt, stats);
    else if (read_meta(db).count("embed_model")) stats.vectors = static_cast<size_t>(count_rows(db, "embeddings"));
    stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return stats;
}

// ---------------------------------------------------------------------------------------------------------- queries

struct Index::Impl {
    std::unique_ptr<SqliteDb> db;
    std::string dir;
    Analyzer analyzer = Analyzer::Plain;
    std::unique_ptr<DenseSearch> dense;
    std::vector<Hit> bm25(const std::vector<std::string>& w, int k) const;
    // The BM25 score of each of `chunks` (0 where none of the terms is in it)
    std::vector<double> bm25_of(const std::vector<std::string>& w, const std::vector<int64_t>& chunks) const;
    std::vector<Hit> fetch(const std::vector<std::pair<int64_t, double>>& ranked) const;
};

Mode parse_mode(const std::string& name) {
    if (name == "bm25") return Mode::Bm25;
    if (name == "dense") return Mode::Dense;
    if (name == "hybrid") return Mode::Hybrid;
    throw_bad_input("unknown retrieval mode '%s' (bm25, dense or hybrid)", name.c_str());
}

const char* mode_name(Mode m) { return m == Mode::Bm25 ? "bm25" : m == Mode::Dense ? "dense" : "hybrid"; }

Fusion parse_fusion(const std::string& name) {
    if (name == "rrf") return Fusion::Rrf;
    if (name == "convex") return Fusion::Convex;
    throw_bad_input("unknown fusion '%s' (rrf or convex)", name.c_str());
}

const char* fusion_name(Fusion f) { return f == Fusion::Rrf ? "rrf" : "convex"; }

Index::Index(const std::string& dir) : impl_(std::make_unique<Impl>()) {
    const fs::path file = fs::path(dir) / "index.sqlite";
    std::error_code ec;
    if (!fs::is_regular_file(file, ec)) throw_bad_input("'%s' holds no llmforge index (no index.sqlite; build one with `llmforge rag index`)", dir.c_str());
    impl_->db = std::make_unique<SqliteDb>(file.string(), "index", false, true);
    impl_->dir = dir;
    std::map<std::string, std::string> meta;
    try {
        meta = read_meta(*impl_->db);
    } catch (const Error&) {
        throw_bad_input("'%s' is not an llmforge index (its database has no meta table)", file.c_str());
    }
    if (meta["format"] != kFormat) throw_bad_input("'%s' holds an index of format '%s'; this llmforge reads '%s'", dir.c_str(), meta["format"].c_str(), kFormat);
    if (meta.count("analyzer")) impl_->analyzer = parse_analyzer(meta["analyzer"]);
}

Index::~Index() = default;

size_t Index::documents() const { return static_cast<size_t>(count_rows(*impl_->db, "docs")); }
size_t Index::chunks() const { return static_cast<size_t>(count_rows(*impl_->db, "chunks")); }
Analyzer Index::analyzer() const { return impl_->analyzer; }

namespace {
// The columns every chunk query selects, after the id and score: the hit they describe.
constexpr const char* kHitColumns = "d.source, d.title, c.heading, c.text, c.begin, c.end";
Hit read_hit(const SqliteStmt& st, int64_t id, double score, int col) {
    Hit h;
    h.chunk = id;
    h.score = score;
    h.source = st.text(col);
    h.title = st.text(col + 1);
    h.heading = st.text(col + 2);
    h.text = st.text(col + 3);
    h.begin = static_cast<size_t>(st.int64(col + 4));
    h.end = static_cast<size_t>(st.int64(col + 5));
    return h;
}
}  // namespace

namespace {
// The FTS5 query of a query's distinct terms, OR-ed; each quoted, so that no word is read as FTS5 syntax (a word holds
// no '"').
std::string fts_match(const std::vector<std::string>& w) {
    std::string match;
    for (const std::string& x : w) match += (match.empty() ? "\"" : " OR \"") + x + "\"";
    return match;
}
}  // namespace

// BM25 over the query's terms: bm25() is lower-is-better (it returns minus the score); ties by chunk id, so rankings
// are deterministic.
std::vector<Hit> Index::Impl::bm25(const std::vector<std::string>& w, int k) const {
    std::vector<Hit> out;
    if (w.empty()) return out;  // only stopwords: no term to match
    const std::string match = fts_match(w);
    const std::string sql = std::string("SELECT c.id, -s.score, ") + kHitColumns +
                            " FROM (SELECT rowid AS id, bm25(chunks_fts) AS score FROM chunks_fts WHERE chunks_fts MATCH ?"
                            "  ORDER BY score, rowid LIMIT ?) s"
                            " JOIN chunks c ON c.id = s.id JOIN docs d ON d.id = c.doc_id ORDER BY s.score, c.id";
    SqliteStmt st(*db, sql.c_str());
    st.bind(1, std::string_view(match)).bind(2, static_cast<int64_t>(k));
    while (st.step()) out.push_back(read_hit(st, st.int64(0), st.real(1), 2));
    return out;
}

std::vector<double> Index::Impl::bm25_of(const std::vector<std::string>& w, const std::vector<int64_t>& chunks) const {
    std::vector<double> out(chunks.size(), 0.0);
    if (w.empty() || chunks.empty()) return out;
    std::string ids;
    for (int64_t id : chunks) ids += (ids.empty() ? "" : ",") + std::to_string(id);
    const std::string sql = "SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid IN (" + ids + ")";
    SqliteStmt st(*db, sql.c_str());
    st.bind(1, std::string_view(fts_match(w)));
    std::map<int64_t, double> score;
    while (st.step()) score[st.int64(0)] = st.real(1);
    for (size_t i = 0; i < chunks.size(); ++i)
        if (score.count(chunks[i])) out[i] = score[chunks[i]];
    return out;
}

// The chunks of a ranking (id, score), in its order.
std::vector<Hit> Index::Impl::fetch(const std::vector<std::pair<int64_t, double>>& ranked) const {
    std::vector<Hit> out;
    const std::string sql = std::string("SELECT ") + kHitColumns + " FROM chunks c JOIN docs d ON d.id = c.doc_id WHERE c.id = ?";
    SqliteStmt st(*db, sql.c_str());
    for (const auto& [id, score] : ranked) {
        st.bind(1, id);
        if (st.step()) out.push_back(read_hit(st, id, score, 0));
        st.reset();
    }
    return out;
}

std::vector<Hit> Index::query(const std::string& text, const QueryOptions& o) const {
    if (!o.reranker || o.k <= 0) return query_ranked(text, o);
    QueryOptions first = o;
    first.reranker = nullptr;
    first.k = std::max(o.k, o.rerank_top);
    std::vector<Hit> hits = query_ranked(text, first);
    for (size_t i = 0; i < hits.size(); ++i) {
        hits[i].retrieval_rank = static_cast<int>(i + 1);
        hits[i].score = o.reranker->score(text, passage_text(hits[i]));
    }
    std::stable_sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) { return a.score > b.score; });
    if (static_cast<int>(hits.size()) > o.k) hits.resize(static_cast<size_t>(o.k));
    return hits;
}

std::vector<Hit> Index::query_ranked(const std::string& text, const QueryOptions& o) const {
    std::vector<Hit> out;
    if (o.k <= 0) return out;
    std::vector<std::string> w = words(text);
    if (w.empty()) return out;  // no words: nothing to look for, in any mode
    w = analyze(std::move(w), impl_->analyzer);
    std::sort(w.begin(), w.end());
    w.erase(std::unique(w.begin(), w.end()), w.end());
    if (o.mode == Mode::Bm25) {
        out = impl_->bm25(w, o.k);
        for (size_t i = 0; i < out.size(); ++i) {
            out[i].bm25_rank = static_cast<int>(i + 1);
            out[i].bm25 = out[i].score;
        }
        return out;
    }
    if (!o.embedder) throw_bad_input("%s retrieval needs the index's embedding model", mode_name(o.mode));
    if (o.mode == Mode::Hybrid && o.fusion == Fusion::Convex && !(o.alpha >= 0 && o.alpha <= 1))
        throw_bad_input("convex fusion: alpha must be between 0 and 1 (got %g)", o.alpha);
    if (!impl_->dense) impl_->dense = std::make_unique<DenseSearch>(*impl_->db, impl_->dir);
    const int cand = o.mode == Mode::Hybrid ? std::max(o.k, o.candidates) : o.k;
    const std::vector<float> qv = o.embedder->embed(text);
    const std::vector<std::pair<int64_t, double>> dense =
        impl_->dense->search(qv, cand, o.ef > 0 ? o.ef : std::max({o.k, o.candidates, 64}), o.exact);
    if (o.mode == Mode::Dense) {
        out = impl_->fetch(dense);
        for (size_t i = 0; i < out.size(); ++i) {
            out[i].dense_rank = static_cast<int>(i + 1);
            out[i].similarity = out[i].score;
        }
        return out;
    }
    // hybrid: the union of the two candidate lists, each chunk with its ranks and scores
    struct Candidate {
        int bm25_rank = 0, dense_rank = 0;
        double bm25 = 0, similarity = 0;
    };
    const std::vector<Hit> lexical = impl_->bm25(w, cand);
    std::map<int64_t, Candidate> c;
    for (size_t i = 0; i < lexical.size(); ++i) {
        c[lexical[i].chunk].bm25_rank = static_cast<int>(i + 1);
        c[lexical[i].chunk].bm25 = lexical[i].score;
    }
    for (size_t i = 0; i < dense.size(); ++i) {
        c[dense[i].first].dense_rank = static_cast<int>(i + 1);
        c[dense[i].first].similarity = dense[i].second;
    }
    std::vector<std::pair<int64_t, double>> fused;
    if (o.fusion == Fusion::Rrf) {
        for (const auto& [id, x] : c) {
            double sc = 0;
            if (x.bm25_rank) sc += 1.0 / (o.rrf_k + x.bm25_rank);
            if (x.dense_rank) sc += 1.0 / (o.rrf_k + x.dense_rank);
            fused.emplace_back(id, sc);
        }
    } else {
        // convex (TM2C2): first the score each candidate lacks — BM25 for those only the dense ranking found, the
        // similarity for those only BM25 found
        std::vector<int64_t> no_bm25, no_sim;
        for (const auto& [id, x] : c) {
            if (!x.bm25_rank) no_bm25.push_back(id);
            if (!x.dense_rank) no_sim.push_back(id);
        }
        const std::vector<double> b = impl_->bm25_of(w, no_bm25), s = impl_->dense->similarity(qv, no_sim);
        for (size_t i = 0; i < no_bm25.size(); ++i) c[no_bm25[i]].bm25 = b[i];
        for (size_t i = 0; i < no_sim.size(); ++i) c[no_sim[i]].similarity = s[i];
        double max_bm25 = 0, max_sim = -1;
        for (const auto& [id, x] : c) {
            max_bm25 = std::max(max_bm25, x.bm25);
            max_sim = std::max(max_sim, x.similarity);
        }
        for (const auto& [id, x] : c) {
            const double lex = max_bm25 > 0 ? x.bm25 / max_bm25 : 0, sem = max_sim > -1 ? (x.similarity + 1) / (max_sim + 1) : 0;
            fused.emplace_back(id, (1 - o.alpha) * lex + o.alpha * sem);
        }
    }
    std::sort(fused.begin(), fused.end(), [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; });
    if (static_cast<int>(fused.size()) > o.k) fused.resize(static_cast<size_t>(o.k));
    out = impl_->fetch(fused);
    for (Hit& h : out) {
        const Candidate& x = c[h.chunk];
        h.bm25_rank = x.bm25_rank;
        h.dense_rank = x.dense_rank;
        h.bm25 = x.bm25;
        h.similarity = x.similarity;
    }
    return out;
}

std::string Index::embed_model() const {
    std::map<std::string, std::string> m = read_meta(*impl_->db);
    return m.count("embed_model") ? m["embed_model"] : "";
}

size_t Index::vectors() const { return embed_model().empty() ? 0 : static_cast<size_t>(count_rows(*impl_->db, "embeddings")); }

std::string passage_text(const Hit& h) {
    std::string s;
    // the title unless the heading path already starts with it
    if (!h.title.empty() && h.heading.compare(0, h.title.size(), h.title) != 0) s = h.title + "\n";
    if (!h.heading.empty()) s += h.heading + "\n";
    return s + h.text;
}

std::vector<Hit> Index::document_chunks(const std::string& gold) const {
    std::vector<Hit> out;
    // the source itself, or one ending in "/" + gold (compared exactly: no LIKE patterns)
    const std::string sql = std::string("SELECT c.id, ") + kHitColumns +
                            " FROM docs d JOIN chunks c ON c.doc_id = d.id"
                            " WHERE d.source = ?1 OR (length(d.source) > length(?1) AND substr(d.source, -length(?1) - 1) = '/' || ?1)"
                            " ORDER BY d.id, c.ord";
    SqliteStmt st(*impl_->db, sql.c_str());
    st.bind(1, std::string_view(gold));
    while (st.step()) out.push_back(read_hit(st, st.int64(0), 0.0, 1));
    return out;
}

std::vector<Hit> Index::all_chunks() const {
    std::vector<Hit> out;
    const std::string sql = std::string("SELECT c.id, ") + kHitColumns + " FROM chunks c JOIN docs d ON d.id = c.doc_id ORDER BY c.id";
    SqliteStmt st(*impl_->db, sql.c_str());
    while (st.step()) out.push_back(read_hit(st, st.int64(0), 0.0, 1));
    return out;
}

}  // namespace llmforge::rag
