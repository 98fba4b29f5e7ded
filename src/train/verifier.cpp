// Rewards from a program the user supplies: `sh -c CMD` reads one JSON object on standard input ({"prompt", "answer",
// and the prompt line's other fields}) and prints a number. A program that crashes, hangs past the time-out, or prints
// anything but one finite number gives no reward for that answer (the caller skips it and counts why).
#include <fcntl.h>
#include <poll.h>
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

VerifierResult run_verifier(const std::string& command, const std::string& input, double timeout_s) {
    static const bool sigpipe_ignored = [] {  // a program that exits without reading its input must not kill us
        signal(SIGPIPE, SIG_IGN);
        return true;
    }();
    (void)sigpipe_ignored;
    VerifierResult r;
    int in_pipe[2], out_pipe[2];
    if (pipe(in_pipe) != 0) throw_runtime("verifier: pipe() failed: %s", std::strerror(errno));
    if (pipe(out_pipe) != 0) {
        close(in_pipe[0]);
        close(in_pipe[1]);
        throw_runtime("verifier: pipe() failed: %s", std::strerror(errno));
    }
    const pid_t pid = fork();
    if (pid < 0) throw_runtime("verifier: fork() failed: %s", std::strerror(errno));
    if (pid == 0) {  // the child: its own process group (so a time-out kills everything it started)
        setpgid(0, 0);
        dup2(in_pipe[0], 0);
        dup2(out_pipe[1], 1);
        const int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) dup2(devnull, 2);  // the verifier's complaints would break the progress line
        close(in_pipe[0]);
        close(in_pipe[1]);
        close(out_pipe[0]);
        close(out_pipe[1]);
        execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
        _exit(127);
    }
    setpgid(pid, pid);
    close(in_pipe[0]);
    close(out_pipe[1]);
    fcntl(in_pipe[1], F_SETFL, O_NONBLOCK);
    fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
    size_t written = 0;
    int wfd = in_pipe[1], rfd = out_pipe[0];
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
            const ssize_t k = write(wfd, input.data() + written, input.size() - written);
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
    while (true) {
        const pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) break;
        if (std::chrono::steady_clock::now() > deadline) {
            kill(-pid, SIGKILL);
            waitpid(pid, &st, 0);
            if (r.status == VerifierResult::Status::Ok) r.status = VerifierResult::Status::Timeout;
            break;
        }
        usleep(1000);
    }
    if (r.status == VerifierResult::Status::Timeout) return r;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        r.status = VerifierResult::Status::Failed;
        r.detail = WIFEXITED(st) ? "exit status " + std::to_string(WEXITSTATUS(st)) : "killed by signal " + std::to_string(WTERMSIG(st));
        return r;
    }
    // exactly one number, surrounded by white space at most
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

}  // namespace llmforge::align
