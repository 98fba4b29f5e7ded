// Helpers shared by the text metrics (src/eval/*.cpp); not part of the public API.
#pragma once
#include <memory>
#include <string>
#include <vector>

namespace llmforge::metrics::detail {

// re.sub(pattern, replacement, s) with PCRE2 in UTF mode: Python's pattern, its \1 written as $1.
class RegexSub {
public:
    RegexSub(const std::string& pattern, std::string replacement);
    std::string operator()(const std::string& in) const;

private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
    std::string repl_;
};

std::string join_words(const std::vector<std::string>& w);  // ' '.join(w)
std::string py_strip(const std::string& s);                 // str.strip()
std::string fixed(double v, int width);                     // f"{v:.{width}f}"

}  // namespace llmforge::metrics::detail
