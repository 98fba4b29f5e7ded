// Documents from files: plain text and Markdown (their structure read line by line), HTML through libxml2's parser,
// PDF through poppler, JSONL (one document per line).
#include <libxml/HTMLparser.h>
#include <libxml/tree.h>
#include <poppler/cpp/poppler-document.h>
#include <poppler/cpp/poppler-global.h>
#include <poppler/cpp/poppler-page.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "llmforge/error.h"
#include "llmforge/rag.h"
#include "llmforge/utf8.h"

namespace llmforge::rag {

namespace {

std::string lower(std::string s) {
    for (char& c : s) c = (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
    return s;
}

bool blank(std::string_view line) {
    for (char c : line)
        if (c != ' ' && c != '\t' && c != '\r' && c != '\f' && c != '\v') return false;
    return true;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// "###  Title ##" → 3 (Markdown's ATX heading: up to three spaces, 1–6 '#', then a space or the end); 0 otherwise.
int atx_level(std::string_view line) {
    size_t i = 0;
    while (i < 3 && i < line.size() && line[i] == ' ') ++i;
    size_t n = 0;
    while (i + n < line.size() && line[i + n] == '#') ++n;
    if (n == 0 || n > 6) return 0;
    if (i + n < line.size() && line[i + n] != ' ' && line[i + n] != '\t' && line[i + n] != '\r') return 0;
    return static_cast<int>(n);
}

// An underline (reStructuredText's adornment or Markdown's setext "===" / "---"): one punctuation character repeated,
// at least three times. Returns the character, or 0.
char underline_char(std::string_view line) {
    line = trim(line);
    if (line.size() < 3) return 0;
    const char c = line[0];
    if (!std::strchr("=-~^\"'`#*+:._", c)) return 0;
    for (char x : line)
        if (x != c) return 0;
    return c;
}

bool fence(std::string_view line) {
    size_t i = 0;
    while (i < 3 && i < line.size() && line[i] == ' ') ++i;
    return line.substr(i, 3) == "```" || line.substr(i, 3) == "~~~";
}

size_t utf8_chars(std::string_view s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

}  // namespace

std::vector<Block> text_blocks(std::string_view text, bool markdown) {
    std::vector<Block> out;
    // The lines as [begin, end) without their newline.
    std::vector<std::pair<size_t, size_t>> lines;
    for (size_t i = 0; i < text.size();) {
        size_t j = text.find('\n', i);
        if (j == std::string_view::npos) j = text.size();
        lines.emplace_back(i, j);
        i = j + 1;
    }
    auto line = [&](size_t k) { return text.substr(lines[k].first, lines[k].second - lines[k].first); };
    std::vector<size_t> para;  // line numbers of the paragraph being collected
    auto flush = [&] {
        if (!para.empty()) out.push_back({0, lines[para.front()].first, lines[para.back()].second});
        para.clear();
    };
    for (size_t k = 0; k < lines.size(); ++k) {
        const std::string_view l = line(k);
        if (markdown && fence(l)) {  // a fenced block: one paragraph up to the closing fence, blank lines and all
            flush();
            size_t e = k + 1;
            while (e < lines.size() && !fence(line(e))) ++e;
            const size_t last = std::min(e, lines.size() - 1);
            out.push_back({0, lines[k].first, lines[last].second});
            k = last;
            continue;
        }
        if (blank(l)) {
            flush();
            continue;
        }
        if (markdown && para.empty() && atx_level(l) > 0) {
            out.push_back({atx_level(l), lines[k].first, lines[k].second});
            continue;
        }
        const char u = underline_char(l);
        if (u) {
            // "Title" then "=====" (Markdown's setext, reStructuredText's adornment): the last line collected is a
            // heading; an overline ("=====", "Title", "=====") is dropped with it.
            const bool over = para.size() == 2 && underline_char(line(para[0])) == u;
            if ((para.size() == 1 || over) && !underline_char(line(para.back())) &&
                (markdown ? (u == '=' || u == '-') : utf8_chars(trim(l)) >= utf8_chars(trim(line(para.back()))))) {
                const size_t t = para.back();
                para.clear();
                out.push_back({u == '=' ? 1 : u == '-' ? 2 : 3, lines[t].first, lines[t].second});
                continue;
            }
            if (para.empty()) continue;  // a rule or an overline on its own
        }
        para.push_back(k);
    }
    flush();
    return out;
}

// ---------------------------------------------------------------------------------------------------------- HTML

namespace {

bool is_tag(const xmlNode* n, std::initializer_list<const char*> names) {
    if (n->type != XML_ELEMENT_NODE || !n->name) return false;
    const char* tag = reinterpret_cast<const char*>(n->name);
    for (const char* x : names)
        if (strcasecmp(tag, x) == 0) return true;
    return false;
}

std::string attr(const xmlNode* n, const char* name) {
    xmlChar* v = xmlGetProp(n, reinterpret_cast<const xmlChar*>(name));
    if (!v) return "";
    std::string s(reinterpret_cast<const char*>(v));
    xmlFree(v);
    return s;
}

bool has_word(const std::string& list, const char* word) {
    const size_t n = std::strlen(word);
    for (size_t i = list.find(word); i != std::string::npos; i = list.find(word, i + 1))
        if ((i == 0 || std::isspace(static_cast<unsigned char>(list[i - 1]))) &&
            (i + n == list.size() || std::isspace(static_cast<unsigned char>(list[i + n]))))
            return true;
    return false;
}

// Elements whose text is not the page's content.
bool skipped(const xmlNode* n) {
    if (n->type == XML_COMMENT_NODE || n->type == XML_PI_NODE) return true;
    if (n->type != XML_ELEMENT_NODE) return false;
    if (is_tag(n, {"script", "style", "noscript", "template", "head", "nav", "footer", "aside", "form", "button",
                   "select", "svg", "iframe", "object", "canvas", "math"}))
        return true;
    const std::string role = lower(attr(n, "role"));
    if (role == "navigation" || role == "search" || role == "banner" || role == "contentinfo" || role == "complementary") return true;
    if (attr(n, "hidden") != "" || lower(attr(n, "aria-hidden")) == "true") return true;
    return has_word(attr(n, "class"), "headerlink");  // Sphinx's "¶" beside each heading
}

bool block_tag(const xmlNode* n) {
    return is_tag(n, {"p", "div", "section", "article", "main", "body", "li", "ul", "ol", "dl", "dt", "dd", "table", "tr",
                      "thead", "tbody", "tfoot", "caption", "blockquote", "pre", "figure", "figcaption", "address",
                      "details", "summary", "hr", "fieldset", "legend"});
}

int heading_level(const xmlNode* n) {
    if (n->type != XML_ELEMENT_NODE || !n->name) return 0;
    const char* t = reinterpret_cast<const char*>(n->name);
    if ((t[0] == 'h' || t[0] == 'H') && t[1] >= '1' && t[1] <= '6' && t[2] == 0) return t[1] - '0';
    return 0;
}

const xmlNode* find_main(const xmlNode* n) {
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE) continue;
        if (is_tag(n, {"main"}) || lower(attr(n, "role")) == "main") return n;
        if (skipped(n)) continue;
        if (const xmlNode* m = find_main(n->children)) return m;
    }
    return nullptr;
}

const xmlNode* find_tag(const xmlNode* n, const char* tag) {
    for (; n; n = n->next) {
        if (is_tag(n, {tag})) return n;
        if (const xmlNode* m = find_tag(n->children, tag)) return m;
    }
    return nullptr;
}

// Collects the text of a DOM into Document::text and its blocks.
struct HtmlText {
    explicit HtmlText(Document& d) : doc(d) {}
    Document& doc;
    std::string para;   // the paragraph being collected (whitespace collapsed)
    int pre = 0;        // inside <pre>: keep whitespace
    int level = 0;      // inside a heading: its level

    void text(const char* s) {
        if (pre) {
            para += s;
            return;
        }
        for (const char* p = s; *p; ++p) {
            const bool sp = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f';
            if (sp) {
                if (!para.empty() && para.back() != ' ' && para.back() != '\n') para += ' ';
            } else {
                para += *p;
            }
        }
    }
    void flush() {
        std::string_view t = trim(para);
        if (!t.empty()) {
            if (!doc.text.empty()) doc.text += "\n\n";
            const size_t b = doc.text.size();
            doc.text += t;
            doc.blocks.push_back({level, b, doc.text.size()});
        }
        para.clear();
    }
    void walk(const xmlNode* n) {
        for (; n; n = n->next) {
            if (skipped(n)) continue;
            if (n->type == XML_TEXT_NODE || n->type == XML_CDATA_SECTION_NODE) {
                if (n->content) text(reinterpret_cast<const char*>(n->content));
                continue;
            }
            if (n->type != XML_ELEMENT_NODE) continue;
            if (is_tag(n, {"br"})) {
                if (pre) para += '\n';
                else if (!para.empty() && para.back() == ' ') para.back() = '\n';
                else para += '\n';
                continue;
            }
            if (is_tag(n, {"td", "th"}) && !para.empty() && para.back() != ' ') para += ' ';
            const int h = heading_level(n);
            const bool block = h > 0 || block_tag(n);
            if (block) flush();
            const int saved = level;
            if (h > 0) level = h;
            if (is_tag(n, {"pre"})) ++pre;
            walk(n->children);
            if (is_tag(n, {"pre"})) --pre;
            if (block) flush();
            level = saved;
        }
    }
};

bool declares_charset(const std::string& data) {
    const std::string head = lower(data.substr(0, 2048));
    return head.find("charset") != std::string::npos || head.rfind("<?xml", 0) == 0;
}

}  // namespace

Document html_document(const std::string& data, const std::string& source) {
    Document d;
    d.source = source;
    d.format = "html";
    if (data.size() > static_cast<size_t>(INT32_MAX)) throw_bad_input("%s: too large for the HTML parser", source.c_str());
    // Without a declared charset libxml2 assumes ISO-8859-1 (HTML 4); text that is valid UTF-8 is read as UTF-8.
    const char* enc = !declares_charset(data) && utf8_valid(data) ? "UTF-8" : nullptr;
    std::unique_ptr<xmlDoc, void (*)(xmlDoc*)> doc(
        htmlReadMemory(data.data(), static_cast<int>(data.size()), nullptr, enc,
                       HTML_PARSE_RECOVER | HTML_PARSE_NOERROR | HTML_PARSE_NOWARNING | HTML_PARSE_NONET),
        xmlFreeDoc);
    if (!doc) throw_bad_input("%s: cannot be parsed as HTML", source.c_str());
    const xmlNode* root = xmlDocGetRootElement(doc.get());
    if (const xmlNode* t = find_tag(root, "title")) {
        xmlChar* c = xmlNodeGetContent(t);
        if (c) {
            std::string s(reinterpret_cast<const char*>(c));
            xmlFree(c);
            HtmlText tmp(d);
            tmp.text(s.c_str());
            d.title = std::string(trim(tmp.para));
        }
    }
    HtmlText h(d);
    if (const xmlNode* m = find_main(root)) {
        h.walk(m->children);
    } else {
        const xmlNode* body = find_tag(root, "body");
        h.walk(body ? body->children : root);
    }
    h.flush();
    if (d.title.empty())
        for (const Block& b : d.blocks)
            if (b.level > 0) {
                d.title = d.text.substr(b.begin, b.end - b.begin);
                break;
            }
    return d;
}

// ----------------------------------------------------------------------------------------------------------- PDF

namespace {

std::string utf8_of(const poppler::ustring& u) {
    const poppler::byte_array b = u.to_utf8();
    return std::string(b.begin(), b.end());
}

void quiet_poppler(const std::string&, void*) {}

Document pdf_document(const std::string& data, const std::string& source) {
    static std::once_flag once;
    std::call_once(once, [] { poppler::set_debug_error_function(quiet_poppler, nullptr); });
    std::vector<char> bytes(data.begin(), data.end());
    std::unique_ptr<poppler::document> pdf(poppler::document::load_from_data(&bytes));
    if (!pdf) throw_bad_input("%s: not a readable PDF", source.c_str());
    if (pdf->is_locked()) throw_bad_input("%s: the PDF is encrypted", source.c_str());
    Document d;
    d.source = source;
    d.format = "pdf";
    d.title = std::string(trim(utf8_of(pdf->info_key("Title"))));
    for (int i = 0; i < pdf->pages(); ++i) {
        std::unique_ptr<poppler::page> p(pdf->create_page(i));
        if (!p) continue;
        std::string t = utf8_of(p->text());
        for (char& c : t)
            if (c == '\f') c = '\n';
        if (!utf8_valid(t)) continue;
        for (const Block& b : text_blocks(t, false)) {
            if (!d.text.empty()) d.text += "\n\n";
            const size_t at = d.text.size();
            d.text += t.substr(b.begin, b.end - b.begin);
            d.blocks.push_back({0, at, d.text.size()});  // a PDF's lines carry no heading marks: all paragraphs
        }
    }
    return d;
}

}  // namespace

// --------------------------------------------------------------------------------------------------- dispatching

std::string format_of(const std::string& path) {
    const std::filesystem::path p(path);
    const std::string ext = lower(p.extension().string());
    if (ext == ".txt" || ext == ".text" || ext == ".rst") return "text";
    if (ext == ".md" || ext == ".markdown") return "markdown";
    if (ext == ".html" || ext == ".htm" || ext == ".xhtml") return "html";
    if (ext == ".pdf") return "pdf";
    if (ext == ".jsonl") return "jsonl";
    if (ext.empty()) return "text";
    return "";
}

std::vector<Document> read_documents(const std::string& path, const std::string& data, const ReadOptions& o) {
    const std::string fmt = format_of(path);
    const std::string name = std::filesystem::path(path).filename().string();
    std::vector<Document> out;
    if (fmt == "text" || fmt == "markdown") {
        if (!utf8_valid(data)) throw_bad_input("%s: not UTF-8 text", path.c_str());
        if (data.find('\0') != std::string::npos) throw_bad_input("%s: a binary file (it holds NUL bytes)", path.c_str());
        Document d;
        d.source = path;
        d.format = fmt;
        d.text = data;
        d.blocks = text_blocks(d.text, fmt == "markdown");
        for (const Block& b : d.blocks)
            if (b.level > 0) {
                std::string_view t = std::string_view(d.text).substr(b.begin, b.end - b.begin);
                while (!t.empty() && t.front() == '#') t.remove_prefix(1);
                d.title = std::string(trim(t));
                break;
            }
        out.push_back(std::move(d));
    } else if (fmt == "html") {
        out.push_back(html_document(data, path));
    } else if (fmt == "pdf") {
        out.push_back(pdf_document(data, path));
    } else if (fmt == "jsonl") {
        size_t lineno = 0;
        for (size_t i = 0; i < data.size();) {
            size_t j = data.find('\n', i);
            if (j == std::string::npos) j = data.size();
            const std::string line = data.substr(i, j - i);
            i = j + 1;
            ++lineno;
            if (blank(line)) continue;
            nlohmann::json v;
            try {
                v = nlohmann::json::parse(line);
            } catch (const std::exception&) {
                throw_bad_input("%s:%zu: not a JSON line", path.c_str(), lineno);
            }
            if (!v.is_object() || !v.contains(o.text_field) || !v[o.text_field].is_string())
                throw_bad_input("%s:%zu: no string field '%s'", path.c_str(), lineno, o.text_field.c_str());
            Document d;
            d.source = path + "#" + std::to_string(lineno);
            d.format = "jsonl";
            d.text = v[o.text_field].get<std::string>();
            d.blocks = text_blocks(d.text, false);
            if (v.contains("title") && v["title"].is_string()) d.title = v["title"].get<std::string>();
            else if (v.contains("id") && (v["id"].is_string() || v["id"].is_number())) d.title = v["id"].is_string() ? v["id"].get<std::string>() : v["id"].dump();
            out.push_back(std::move(d));
        }
    } else {
        throw_bad_input("%s: unsupported format", path.c_str());
    }
    for (Document& d : out)
        if (d.title.empty()) d.title = name;
    return out;
}

}  // namespace llmforge::rag
