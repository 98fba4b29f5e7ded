// Read-only memory-mapped files, and atomic writes (temp file + fsync + rename).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace llmforge {

class MappedFile {
public:
    // Maps the whole file read-only. Throws a bad-input Error if it cannot be opened.
    // use_mmap = false reads the file into anonymous memory backed by transparent huge pages instead (llama.cpp's
    // --no-mmap): it costs the copy and the memory, but streaming the weights then needs far fewer TLB entries.
    static std::shared_ptr<MappedFile> open(const std::string& path, bool use_mmap = true);
    ~MappedFile();
    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    MappedFile() = default;
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    size_t map_size_ = 0;
};

// Writes a file atomically: the bytes go to PATH.tmp.PID, which is fsync'ed and renamed over PATH.
// Usage: AtomicWriter w(path); w.write(...); ...; w.commit();  (destroyed without commit → temp file removed)
class AtomicWriter {
public:
    explicit AtomicWriter(const std::string& path);
    ~AtomicWriter();
    void write(const void* data, size_t n);
    void write_zeros(size_t n);
    uint64_t offset() const { return offset_; }
    void commit();

private:
    std::string path_, tmp_;
    int fd_ = -1;
    uint64_t offset_ = 0;
    bool committed_ = false;
};

// Removes the temporary files (NAME.tmp.PID) in dir that writers killed before they finished left behind, unless
// their process still runs. (AtomicWriter does this for its own path by itself.)
void remove_stale_temporaries_in(const std::string& dir);

bool file_exists(const std::string& path);
bool is_directory(const std::string& path);
// All of standard input (until end of file).
std::string read_stdin();
std::string read_text_file(const std::string& path);  // throws a bad-input Error if missing

}  // namespace llmforge
