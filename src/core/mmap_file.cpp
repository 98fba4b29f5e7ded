#include "core/mmap_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "llmforge/error.h"

namespace llmforge {

std::shared_ptr<MappedFile> MappedFile::open(const std::string& path, bool use_mmap) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw_bad_input("cannot open '%s': %s", path.c_str(), std::strerror(errno));
    struct stat st{};
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        if (S_ISDIR(st.st_mode)) throw_bad_input("'%s' is a directory, not a file", path.c_str());
        throw_bad_input("'%s' is not a regular file", path.c_str());
    }
    std::shared_ptr<MappedFile> f(new MappedFile());
    f->path_ = path;
    f->size_ = static_cast<size_t>(st.st_size);
    const size_t huge = size_t(2) << 20;
    if (f->size_ > 0 && !use_mmap) {
        f->map_size_ = f->size_;
        void* p = mmap(nullptr, f->size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            ::close(fd);
            throw_runtime("cannot allocate %zu bytes for '%s'", f->size_, path.c_str());
        }
        madvise(p, f->size_, MADV_HUGEPAGE);
        f->data_ = static_cast<const uint8_t*>(p);
        for (size_t done = 0; done < f->size_;) {
            const ssize_t r = ::pread(fd, static_cast<char*>(p) + done, f->size_ - done, static_cast<off_t>(done));
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) {
                ::close(fd);
                throw_bad_input("cannot read '%s': %s", path.c_str(), r < 0 ? std::strerror(errno) : "unexpected end of file");
            }
            done += static_cast<size_t>(r);
        }
    } else if (f->size_ > 0) {
        // Map at a 2 MiB-aligned address, so the kernel can map large page-cache folios with huge-page entries
        // (fewer TLB misses while the weights stream through), and populate the page tables up front (as llama.cpp
        // does) instead of faulting while decoding.
        void* p = MAP_FAILED;
        void* area = mmap(nullptr, f->size_ + huge, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (area != MAP_FAILED) {
            const uintptr_t a = reinterpret_cast<uintptr_t>(area);
            const uintptr_t aligned = (a + huge - 1) & ~(huge - 1);
            p = mmap(reinterpret_cast<void*>(aligned), f->size_, PROT_READ, MAP_PRIVATE | MAP_FIXED | MAP_POPULATE, fd, 0);
            if (p == MAP_FAILED) {
                munmap(area, f->size_ + huge);
            } else {  // give back the unused head and tail of the reservation
                if (aligned > a) munmap(area, aligned - a);
                const uintptr_t end = aligned + ((f->size_ + 4095) & ~size_t(4095)), area_end = a + f->size_ + huge;
                if (area_end > end) munmap(reinterpret_cast<void*>(end), area_end - end);
                madvise(p, f->size_, MADV_HUGEPAGE);
            }
        }
        if (p == MAP_FAILED) p = mmap(nullptr, f->size_, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            const int e = errno;
            ::close(fd);
            throw_runtime("cannot map '%s': %s", path.c_str(), std::strerror(e));
        }
        f->data_ = static_cast<const uint8_t*>(p);
        f->map_size_ = f->size_;
    }
    ::close(fd);
    return f;
}

MappedFile::~MappedFile() {
    if (data_) munmap(const_cast<uint8_t*>(data_), map_size_);
}

namespace {
// Removes dir's entries NAME.tmp.PID (NAME starting with `prefix`, or any NAME when prefix is empty) whose process
// no longer runs.
void remove_dead_temporaries(const std::string& dir, const std::string& prefix) {
    DIR* d = ::opendir(dir.c_str());
    if (!d) return;
    while (const dirent* e = ::readdir(d)) {
        const std::string name = e->d_name;
        const size_t at = name.rfind(".tmp.");
        if (at == std::string::npos || at == 0 || at + 5 >= name.size()) continue;
        if (!prefix.empty() && (at + 5 != prefix.size() || name.compare(0, prefix.size(), prefix) != 0)) continue;  // prefix: "NAME.tmp."
        const std::string digits = name.substr(at + 5);
        if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) continue;
        const pid_t pid = static_cast<pid_t>(std::stol(digits));
        if (pid == getpid() || ::kill(pid, 0) == 0 || errno != ESRCH) continue;  // its writer may still be at work
        ::unlink((dir + "/" + name).c_str());
    }
    ::closedir(d);
}

// Temporary files PATH.tmp.PID left by writers that were killed (kill -9, a crash, a power cut) before they could
// remove them: removed when PATH is next written, unless their process still runs.
void remove_stale_temporaries(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
    remove_dead_temporaries(dir.empty() ? "/" : dir, (slash == std::string::npos ? path : path.substr(slash + 1)) + ".tmp.");
}
}  // namespace

void remove_stale_temporaries_in(const std::string& dir) { remove_dead_temporaries(dir, ""); }

AtomicWriter::AtomicWriter(const std::string& path) : path_(path) {
    remove_stale_temporaries(path);
    tmp_ = path + ".tmp." + std::to_string(getpid());
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) throw_runtime("cannot write '%s': cannot create '%s': %s", path_.c_str(), tmp_.c_str(), std::strerror(errno));
}

AtomicWriter::~AtomicWriter() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicWriter::write_out(const char* p, size_t n) {
    const uint64_t at = offset_ - buf_.size();  // where p's bytes go
    uint64_t done = 0;
    while (done < n) {
        const ssize_t w = ::write(fd_, p + done, n - done);
        if (w < 0) {
            if (errno == EINTR) continue;
            throw_runtime("cannot write '%s': %s (after %llu bytes; '%s' is left as it was)", path_.c_str(), std::strerror(errno),
                          static_cast<unsigned long long>(at + done), path_.c_str());
        }
        done += static_cast<uint64_t>(w);
    }
}

void AtomicWriter::flush(size_t n) {
    write_out(buf_.data(), n);
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(n));
}

void AtomicWriter::write(const void* data, size_t n) {
    const char* p = static_cast<const char*>(data);
    // fill the buffer up to its block; a full block goes out
    const size_t fill = std::min(n, kBlock - buf_.size());
    buf_.insert(buf_.end(), p, p + fill);
    offset_ += fill;
    p += fill;
    n -= fill;
    if (buf_.size() < kBlock) return;
    flush(kBlock);
    // whole blocks straight from the caller's bytes, the rest buffered
    const size_t whole = n / kBlock * kBlock;
    if (whole > 0) {
        write_out(p, whole);
        offset_ += whole;
        p += whole;
        n -= whole;
    }
    buf_.insert(buf_.end(), p, p + n);
    offset_ += n;
}

void AtomicWriter::write_zeros(size_t n) {
    static const char zeros[4096] = {};
    while (n > 0) {
        size_t k = n < sizeof(zeros) ? n : sizeof(zeros);
        write(zeros, k);
        n -= k;
    }
}

void AtomicWriter::commit() {
    if (!buf_.empty()) flush(buf_.size());
    if (::fsync(fd_) != 0) throw_runtime("cannot write '%s': fsync: %s ('%s' is left as it was)", path_.c_str(), std::strerror(errno), path_.c_str());
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) throw_runtime("cannot write '%s': close: %s ('%s' is left as it was)", path_.c_str(), std::strerror(errno), path_.c_str());
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
        throw_runtime("cannot rename '%s' to '%s': %s", tmp_.c_str(), path_.c_str(), std::strerror(errno));
    committed_ = true;
}

std::shared_ptr<void> alloc_huge_pages(size_t n) {
    constexpr size_t huge = size_t(2) << 20;
    const size_t len = std::max<size_t>(n, 1);
    void* area = mmap(nullptr, len + huge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (area == MAP_FAILED) throw_runtime("cannot allocate %zu bytes: %s", n, std::strerror(errno));
    const uintptr_t a = reinterpret_cast<uintptr_t>(area), aligned = (a + huge - 1) & ~(huge - 1);
    const size_t span = (len + 4095) & ~size_t(4095);
    if (aligned > a) munmap(area, aligned - a);  // the unused head and tail of the reservation
    if (a + len + huge > aligned + span) munmap(reinterpret_cast<void*>(aligned + span), a + len + huge - (aligned + span));
    madvise(reinterpret_cast<void*>(aligned), span, MADV_HUGEPAGE);
    return std::shared_ptr<void>(reinterpret_cast<void*>(aligned), [span](void* p) { munmap(p, span); });
}

void release_mapped_range(const void* p, size_t n) {
    const uintptr_t b = reinterpret_cast<uintptr_t>(p), page = 4096;
    const uintptr_t first = (b + page - 1) & ~(page - 1), last = (b + n) & ~(page - 1);
    if (last > first) madvise(reinterpret_cast<void*>(first), last - first, MADV_DONTNEED);
}

bool file_exists(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string read_stdin() {
    std::string s;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), stdin)) > 0) s.append(buf, n);
    if (std::ferror(stdin)) throw_runtime("cannot read standard input: %s", std::strerror(errno));
    return s;
}

std::string read_text_file(const std::string& path) {
    if (is_directory(path)) throw_bad_input("'%s' is a directory, not a file", path.c_str());
    std::ifstream in(path, std::ios::binary);
    if (!in) throw_bad_input("cannot open '%s': %s", path.c_str(), std::strerror(errno));
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace llmforge
