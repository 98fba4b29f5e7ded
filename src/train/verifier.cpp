// Rewards from a program the user supplies: `sh -c CMD` reads one JSON object on standard input ({"prompt", "answer",
// and the prompt line's other fields}) and prints a number — started once per answer (run_verifier) or kept running
// and fed one object per line (PersistentVerifier). A program that crashes, hangs past the time-out, or prints anything
// but one finite number gives no reward for that answer (the caller skips it and counts why).
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "llmforge/align.h"
#include "llmforge/error.h"

namespace llmforge::align {

namespace {

// write() to a pipe whose reader has gone: EPIPE, without the SIGPIPE that would end the process. The signal is blocked
// in this thread for the call and a pending one taken back (POSIX: a SIGPIPE from write() goes to the writing thread),
// so the library changes no process-wide signal disposition.
ssize_t write_no_sigpipe(int fd, const void* data, size_t n) {
    sigset_t pipe_only, old;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    sigset_t pending;
    sigpending(&pending);
    const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
    const ssize_t k = write(fd, data, n);
    const int err = errno;
    if (k < 0 && err == EPIPE && !was_pending) {
        const timespec zero{0, 0};
        while (sigtimedwait(&pipe_only, nullptr, &zero) == -1 && errno == EINTR) {}
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = err;
    return k;
}

// Starts `sh -c command` in its own process group (so a time-out kills everything it started), its standard input and
// output on non-blocking pipes, its standard error on /dev/null (its complaints would break the progress line).
pid_t spawn(const std::string& command, int& wfd, int& rfd) {
    int in_pipe[2], out_pipe[2];
    if (pipe2(in_pipe, O_CLOEXEC) != 0) throw_runtime("verifier: pipe() failed: %s", std::strerror(errno));
    if (pipe2(out_pipe, O_CLOEXEC) != 0) {
        close(in_pipe[0]);
        close(in_pipe[1]);
        throw_runtime("verifier: pipe() failed: %s", std::strerror(errno));
    }
    const pid_t pid = fork();
    if (pid < 0) {
        for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1]}) close(fd);
        throw_runtime("verifier: fork() failed: %s", std::strerror(errno));
    }
    if (pid == 0) {
        setpgid(0, 0);
        dup2(in_pipe[0], 0);
        dup2(out_pipe[1], 1);
        const int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, 2);
        execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    setpgid(pid, pid);
    close(in_pipe[0]);
    close(out_pipe[1]);
    wfd = in_pipe[1];
    rfd = out_pipe[0];
    fcntl(wfd, F_SETFL, O_NONBLOCK);
    fcntl(rfd, F_SETFL, O_NONBLOCK);
    return pid;
}

// Exactly one finite number, surrounded by white space at most.
VerifierResult parse_number(const std::string& out) {
    VerifierResult r;
    const size_t b = out.find_first_not_of(" \t\r\n"), e = out.find_last_not_of(" \t\r\n");
    if (b == std::string::npos) {
        r.status = VerifierResult::Status::Garbage;
        r.detail = "printed nothing";
        return r;
    }
    const std::string num = out.substr(b, e - b + 1);
    char* end = nullptr;
    errno = 0;
    const double v = std::strtod(num.c_str(), &end);
    if (end != num.c_str() + num.size() || errno == ERANGE || !std::isfinite(v)) {
        r.status = VerifierResult::Status::Garbage;
        r.detail = "printed '" + num.substr(0, 40) + "'";
        return r;
    }
    r.value = v;
    return r;
}

// Waits for the program to exit until `until`, then kills its process group and waits for it. *st gets its wait status
// (left as it was when waitpid fails); returns whether it had to be killed.
template <class TimePoint>
bool reap(pid_t pid, TimePoint until, int* st) {
    while (true) {
        const pid_t w = waitpid(pid, st, WNOHANG);
        if (w == pid || (w < 0 && errno != EINTR)) return false;
        if (std::chrono::steady_clock::now() > until) {
            kill(-pid, SIGKILL);
            waitpid(pid, st, 0);
            return true;
        }
        usleep(1000);
    }
}

std::string exit_detail(int st) {
    return WIFEXITED(st) ? "exit status " + std::to_string(WEXITSTATUS(st)) : "killed by signal " + std::to_string(WTERMSIG(st));
}

}  // namespace

VerifierResult run_verifier(const std::string& command, const std::string& input, double timeout_s) {
    VerifierResult r;
    int wfd = -1, rfd = -1;
    const pid_t pid = spawn(command, wfd, rfd);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    size_t written = 0;
    if (input.empty()) {
        close(wfd);
        wfd = -1;
    }
    std::string out;
    while (rfd >= 0) {
        const auto left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) {
            r.status = VerifierResult::Status::Timeout;
            break;
        }
        pollfd fds[2];
        int n = 0;
        fds[n++] = {rfd, POLLIN, 0};
        if (wfd >= 0) fds[n++] = {wfd, POLLOUT, 0};
        const int rc = poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::ceil(left * 1000)));
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) break;
        if (n == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            const ssize_t k = write_no_sigpipe(wfd, input.data() + written, input.size() - written);
            if (k > 0) written += static_cast<size_t>(k);
            if (k < 0 && errno != EAGAIN) written = input.size();  // the program stopped reading: fine
            if (written >= input.size()) {
                close(wfd);
                wfd = -1;
            }
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[4096];
            const ssize_t k = read(rfd, buf, sizeof(buf));
            if (k > 0) {
                if (out.size() < (1 << 16)) out.append(buf, static_cast<size_t>(k));
            } else if (k == 0 || errno != EAGAIN) {
                close(rfd);
                rfd = -1;
            }
        }
    }
    if (wfd >= 0) close(wfd);
    if (rfd >= 0) close(rfd);
    if (r.status == VerifierResult::Status::Timeout) kill(-pid, SIGKILL);
    int st = 0;
    // after its output closed the program has (almost always) exited; wait for it within what is left of the time
    if (reap(pid, deadline, &st) && r.status == VerifierResult::Status::Ok) r.status = VerifierResult::Status::Timeout;
    if (r.status == VerifierResult::Status::Timeout) return r;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        r.status = VerifierResult::Status::Failed;
        r.detail = exit_detail(st);
        return r;
    }
    return parse_number(out);
}

struct PersistentVerifier::Impl {
    std::string command;
    pid_t pid = -1;
    int wfd = -1, rfd = -1;
    std::string buf;  // output read but not yet taken as an answer

    // Ends the running program: closes its pipes; kill_now kills its process group at once, else it gets `grace`
    // seconds to exit on its own first. Returns its wait status (-1 when none could be had).
    int stop(bool kill_now, double grace = 1.0) {
        if (wfd >= 0) close(wfd);
        if (rfd >= 0) close(rfd);
        wfd = rfd = -1;
        buf.clear();
        if (pid <= 0) return -1;
        if (kill_now) kill(-pid, SIGKILL);
        int st = -1;
        reap(pid, std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(grace * 1000)), &st);
        kill(-pid, SIGKILL);  // whatever it started and left behind
        pid = -1;
        return st;
    }
};

PersistentVerifier::PersistentVerifier(std::string command) : impl_(std::make_unique<Impl>()) { impl_->command = std::move(command); }

PersistentVerifier::~PersistentVerifier() { impl_->stop(false); }

VerifierResult PersistentVerifier::score(const std::string& json_line, double timeout_s) {
    Impl& m = *impl_;
    if (m.pid <= 0) m.pid = spawn(m.command, m.wfd, m.rfd);
    const std::string in = json_line + "\n";
    size_t written = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    VerifierResult r;
    while (true) {
        const size_t nl = m.buf.find('\n');
        if (nl != std::string::npos) {  // its answer to this line
            const std::string line = m.buf.substr(0, nl);
            m.buf.erase(0, nl + 1);
            return parse_number(line);
        }
        const auto left = std::chrono::duration<double>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) {
            m.stop(true);
            r.status = VerifierResult::Status::Timeout;
            return r;
        }
        pollfd fds[2];
        int n = 0;
        fds[n++] = {m.rfd, POLLIN, 0};
        if (written < in.size()) fds[n++] = {m.wfd, POLLOUT, 0};
        const int rc = poll(fds, static_cast<nfds_t>(n), static_cast<int>(std::ceil(left * 1000)));
        if (rc < 0 && errno == EINTR) continue;
        if (rc < 0) throw_runtime("verifier: poll() failed: %s", std::strerror(errno));
        if (n == 2 && (fds[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
            const ssize_t k = write_no_sigpipe(m.wfd, in.data() + written, in.size() - written);
            if (k > 0) written += static_cast<size_t>(k);
            if (k < 0 && errno != EAGAIN) written = in.size();  // it closed its input: its exit shows on the output
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            char chunk[4096];
            const ssize_t k = read(m.rfd, chunk, sizeof(chunk));
            if (k > 0) {
                m.buf.append(chunk, static_cast<size_t>(k));
                if (m.buf.size() > (1u << 20) && m.buf.find('\n') == std::string::npos) {  // a line without end
                    m.stop(true);
                    r.status = VerifierResult::Status::Garbage;
                    r.detail = "printed more than 1 MiB without a line break";
                    return r;
                }
            } else if (k == 0 || errno != EAGAIN) {  // it exited
                if (m.buf.find_first_not_of(" \t\r") != std::string::npos) {  // its last answer had no line break
                    const std::string last = m.buf;
                    m.stop(false, std::max(0.0, std::min(left, 1.0)));
                    return parse_number(last);
                }
                const int st = m.stop(false, std::max(0.0, std::min(left, 1.0)));
                r.status = VerifierResult::Status::Failed;
                r.detail = st == -1 ? "exited" : WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "exited without answering" : exit_detail(st);
                return r;
            }
        }
    }
}

}  // namespace llmforge::align
