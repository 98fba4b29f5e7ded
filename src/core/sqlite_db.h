// A thin RAII layer over SQLite's C API, shared by the stores that keep their data in SQLite (the arena's votes, the
// retrieval index). Header-only: whoever includes it links sqlite3. Failures are llmforge Errors naming the database
// and the statement.
#pragma once
#include <sqlite3.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <thread>

#include "llmforge/error.h"

namespace llmforge {

class SqliteDb {
public:
    // Opens (or creates, with `create`) the database at path; `what` names it in messages ("arena database").
    SqliteDb(const std::string& path, const std::string& what, bool create, bool read_only = false) : what_(what + " " + path) {
        const int flags = read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0);
        const int rc = sqlite3_open_v2(path.c_str(), &db_, flags | SQLITE_OPEN_FULLMUTEX, nullptr);
        if (rc != SQLITE_OK) {
            const std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
            sqlite3_close(db_);
            db_ = nullptr;
            throw_runtime("%s: %s", what_.c_str(), msg.c_str());
        }
        sqlite3_busy_timeout(db_, 10000);  // other writers (threads or processes): wait, do not fail
    }
    ~SqliteDb() { sqlite3_close(db_); }
    SqliteDb(const SqliteDb&) = delete;
    SqliteDb& operator=(const SqliteDb&) = delete;

    sqlite3* get() const { return db_; }
    const std::string& what() const { return what_; }
    void check(int rc, std::string_view doing) const {
        if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW)
            throw_runtime("%s: %.*s: %s", what_.c_str(), static_cast<int>(doing.size()), doing.data(), sqlite3_errmsg(db_));
    }
    // Runs SQL without results. Several connections opening a fresh database at once can get SQLITE_BUSY from a
    // journal-mode switch without the busy handler being consulted (SQLite returns it at once where waiting could
    // deadlock): retried for up to 10 s.
    void exec(const char* sql) const {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        for (int attempt = 0;; ++attempt) {
            char* err = nullptr;
            const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err);
            if (rc == SQLITE_OK) return;
            const std::string m = err ? err : sqlite3_errstr(rc);
            sqlite3_free(err);
            if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || std::chrono::steady_clock::now() > deadline)
                throw_runtime("%s: %s", what_.c_str(), m.c_str());
            std::this_thread::sleep_for(std::chrono::milliseconds(2 + (attempt * 7 + static_cast<int>(reinterpret_cast<uintptr_t>(this) >> 4)) % 23));
        }
    }

private:
    sqlite3* db_ = nullptr;
    std::string what_;
};

// A prepared statement: bind(i, …) from 1, step(), then the columns from 0.
class SqliteStmt {
public:
    SqliteStmt(const SqliteDb& db, const char* sql) : db_(db), sql_(sql) { db.check(sqlite3_prepare_v2(db.get(), sql, -1, &s_, nullptr), sql); }
    ~SqliteStmt() { sqlite3_finalize(s_); }
    SqliteStmt(const SqliteStmt&) = delete;
    SqliteStmt& operator=(const SqliteStmt&) = delete;

    sqlite3_stmt* get() const { return s_; }
    SqliteStmt& bind(int i, int64_t v) { db_.check(sqlite3_bind_int64(s_, i, v), sql_); return *this; }
    SqliteStmt& bind(int i, double v) { db_.check(sqlite3_bind_double(s_, i, v), sql_); return *this; }
    SqliteStmt& bind(int i, std::string_view v) {
        db_.check(sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT), sql_);
        return *this;
    }
    SqliteStmt& bind_blob(int i, const void* p, size_t n) {
        db_.check(sqlite3_bind_blob(s_, i, p, static_cast<int>(n), SQLITE_TRANSIENT), sql_);
        return *this;
    }
    // SQLITE_ROW → true, SQLITE_DONE → false; anything else throws. rc_out (optional) gets the raw code first.
    bool step(int* rc_out = nullptr) {
        const int rc = sqlite3_step(s_);
        if (rc_out) {
            *rc_out = rc;
            if (rc == SQLITE_CONSTRAINT) return false;
        }
        db_.check(rc, sql_);
        return rc == SQLITE_ROW;
    }
    void reset() {
        sqlite3_reset(s_);
        sqlite3_clear_bindings(s_);
    }
    int64_t int64(int col) const { return sqlite3_column_int64(s_, col); }
    double real(int col) const { return sqlite3_column_double(s_, col); }
    // a blob column's bytes (valid until the next step or reset)
    std::pair<const void*, size_t> blob(int col) const {
        const void* p = sqlite3_column_blob(s_, col);
        return {p, static_cast<size_t>(sqlite3_column_bytes(s_, col))};
    }
    std::string text(int col) const {
        const auto* p = sqlite3_column_text(s_, col);
        return p ? std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(s_, col))) : std::string();
    }

private:
    const SqliteDb& db_;
    std::string sql_;  // a copy: callers may pass a temporary (the SQL of an error message)
    sqlite3_stmt* s_ = nullptr;
};

}  // namespace llmforge
