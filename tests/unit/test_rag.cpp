// Retrieval: words and sentences (ICU), document readers, chunking, and the index's incremental updates. BM25's numbers
// are checked against an independent computation in tests/reference/test_rag_bm25.py.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <cmath>
#include <set>

#include "llmforge/error.h"
#include "llmforge/rag.h"

namespace fs = std::filesystem;
using namespace llmforge;
using namespace llmforge::rag;

namespace {

fs::path temp_dir(const std::string& name) {
    const fs::path p = fs::temp_directory_path() / ("llmforge-rag-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(p);
    fs::create_directories(p);
    return p;
}

void write(const fs::path& p, const std::string& s) {
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << s;
}

std::string slice(const Document& d, size_t b, size_t e) { return d.text.substr(b, e - b); }

// A one-page PDF with the given text in Helvetica and a Title, its cross-reference table at the right offsets.
std::string tiny_pdf(const std::string& text, const std::string& title) {
    const std::string content = "BT /F1 12 Tf 72 720 Td (" + text + ") Tj ET";
    std::vector<std::string> objs = {
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        "<< /Length " + std::to_string(content.size()) + " >>\nstream\n" + content + "\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        "<< /Title (" + title + ") >>"};
    std::string pdf = "%PDF-1.4\n";
    std::vector<size_t> at;
    for (size_t i = 0; i < objs.size(); ++i) {
        at.push_back(pdf.size());
        pdf += std::to_string(i + 1) + " 0 obj\n" + objs[i] + "\nendobj\n";
    }
    const size_t xref = pdf.size();
    pdf += "xref\n0 " + std::to_string(objs.size() + 1) + "\n0000000000 65535 f \n";
    for (size_t a : at) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%010zu 00000 n \n", a);
        pdf += buf;
    }
    pdf += "trailer\n<< /Size " + std::to_string(objs.size() + 1) + " /Root 1 0 R /Info 6 0 R >>\nstartxref\n" + std::to_string(xref) + "\n%%EOF\n";
    return pdf;
}

}  // namespace

TEST(Rag, WordsFoldCaseAndSplitAtAsciiPunctuation) {
    EXPECT_EQ(words("Hello, World! Don't stop: 3.14 e-mail"),
              (std::vector<std::string>{"hello", "world", "don", "t", "stop", "3", "14", "e", "mail"}));
    // NFKC case folding: full-width letters and digits, ligatures, German sharp s.
    EXPECT_EQ(words("ＡＢＣ １２３ ﬁle Straße"), (std::vector<std::string>{"abc", "123", "file", "strasse"}));
    EXPECT_TRUE(words("  ... !!! ").empty());
    EXPECT_TRUE(words("").empty());
    EXPECT_THROW(words(std::string("bad \xff utf8")), Error);
}

TEST(Rag, WordsSegmentChineseAndJapaneseWithTheDictionary) {
    // ICU's dictionary segments Chinese into words, not characters, and mixed text keeps the English words whole.
    const std::vector<std::string> zh = words("我们今天去北京大学");
    EXPECT_GE(zh.size(), 3u);
    EXPECT_LT(zh.size(), 9u);  // fewer words than characters
    EXPECT_TRUE(std::find(zh.begin(), zh.end(), "北京大学") != zh.end() || std::find(zh.begin(), zh.end(), "北京") != zh.end());
    const std::vector<std::string> mixed = words("用Python读取文件，然后运行pip install。");
    EXPECT_NE(std::find(mixed.begin(), mixed.end(), "python"), mixed.end());
    EXPECT_NE(std::find(mixed.begin(), mixed.end(), "pip"), mixed.end());
    EXPECT_NE(std::find(mixed.begin(), mixed.end(), "文件"), mixed.end());
    const std::vector<std::string> ja = words("東京で日本語を勉強します");
    EXPECT_NE(std::find(ja.begin(), ja.end(), "日本語"), ja.end());
    // Every word is [a-z0-9] or non-ASCII: what FTS5's ascii tokenizer keeps whole.
    for (const auto& w : mixed)
        for (char c : w) EXPECT_TRUE(c < 0 || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) << w;
}

TEST(Rag, EnglishAnalyzerDropsStopwordsAndStems) {
    // The stems are NLTK's (checked over the Python documentation in tests/reference/test_rag_bm25.py).
    EXPECT_EQ(terms("How do I read files line by line?", Analyzer::English), (std::vector<std::string>{"read", "file", "line", "line"}));
    EXPECT_EQ(terms("Reading the generators' running", Analyzer::English), (std::vector<std::string>{"read", "gener", "run"}));
    // Digits, non-ASCII and CJK words are kept as they are; plain is words().
    EXPECT_EQ(terms("Python 3 用 Python 读取 café", Analyzer::English), words("python 3 用 python 读取 café"));
    EXPECT_EQ(terms("Is it the one?", Analyzer::Plain), words("Is it the one?"));
    EXPECT_TRUE(terms("what is it", Analyzer::English).empty());
    EXPECT_EQ(terms("How do I read files line by line?", Analyzer::Stop), (std::vector<std::string>{"read", "files", "line", "line"}));
    EXPECT_EQ(parse_analyzer("stop"), Analyzer::Stop);
    EXPECT_TRUE(std::is_sorted(english_stopwords().begin(), english_stopwords().end()));
    EXPECT_EQ(parse_analyzer("english"), Analyzer::English);
    EXPECT_STREQ(analyzer_name(parse_analyzer("plain")), "plain");
    EXPECT_THROW(parse_analyzer("porter"), Error);
}

TEST(Rag, IndexKeepsItsAnalyzer) {
    const fs::path dir = temp_dir("analyzer");
    write(dir / "docs" / "a.txt", "Reading files line by line.\n");
    write(dir / "docs" / "b.txt", "The generator yields values.\n");
    IndexOptions o;
    o.progress = false;
    o.analyzer = "english";
    build_index({(dir / "docs").string()}, (dir / "kb").string(), o);
    Index kb((dir / "kb").string());
    EXPECT_EQ(kb.analyzer(), Analyzer::English);
    const auto hits = kb.query("how to read a file", {});
    ASSERT_EQ(hits.size(), 1u);  // "read" and "file" meet "Reading" and "files"; "how", "to", "a" match nothing
    EXPECT_NE(hits[0].source.find("a.txt"), std::string::npos);
    EXPECT_TRUE(kb.query("what is it", {}).empty());
    // Updating keeps it (unset) and refuses another; an index without the choice is plain.
    o.analyzer.clear();
    write(dir / "docs" / "c.txt", "Generators read lazily.\n");
    EXPECT_EQ(build_index({(dir / "docs").string()}, (dir / "kb").string(), o).added, 1u);
    EXPECT_EQ(Index((dir / "kb").string()).query("generators", {}).size(), 2u);
    o.analyzer = "plain";
    EXPECT_THROW(build_index({(dir / "docs").string()}, (dir / "kb").string(), o), Error);
    o.analyzer.clear();
    build_index({(dir / "docs").string()}, (dir / "kb2").string(), o);
    EXPECT_EQ(Index((dir / "kb2").string()).analyzer(), Analyzer::Plain);
    EXPECT_EQ(Index((dir / "kb").string()).query("read", {}).size(), 2u);   // "Reading" and "read"
    const auto plain = Index((dir / "kb2").string()).query("read", {});  // only "read"
    ASSERT_EQ(plain.size(), 1u);
    EXPECT_NE(plain[0].source.find("c.txt"), std::string::npos);
    fs::remove_all(dir);
}

TEST(Rag, SentencesEndAtChineseAndEnglishPunctuation) {
    const std::string t = "今天天气很好。我们去公园吧！你去吗？ OK. Then we go.";
    const auto s = sentences(t);
    ASSERT_EQ(s.size(), 5u);
    EXPECT_EQ(t.substr(s[0].first, s[0].second - s[0].first), "今天天气很好。");
    EXPECT_EQ(t.substr(s[2].first, s[2].second - s[2].first), "你去吗？ ");
    EXPECT_EQ(s.back().second, t.size());
    for (size_t i = 1; i < s.size(); ++i) EXPECT_EQ(s[i].first, s[i - 1].second);
}

TEST(Rag, MarkdownAndRestructuredTextStructure) {
    const std::string md = "# Title\n\nFirst para\nstill first.\n\n## Sub\n\n```\ncode\n\nmore code\n```\n\nSetext\n======\n\nlast\n";
    const auto b = text_blocks(md, true);
    ASSERT_EQ(b.size(), 6u);
    EXPECT_EQ(b[0].level, 1);
    EXPECT_EQ(md.substr(b[1].begin, b[1].end - b[1].begin), "First para\nstill first.");
    EXPECT_EQ(b[2].level, 2);
    EXPECT_EQ(md.substr(b[3].begin, b[3].end - b[3].begin), "```\ncode\n\nmore code\n```");  // one block, blank line and all
    EXPECT_EQ(b[4].level, 1);
    EXPECT_EQ(md.substr(b[4].begin, b[4].end - b[4].begin), "Setext");
    const std::string rst = "=====\nTitle\n=====\n\nIntro text.\n\nSection\n-------\n\nBody.\n\nx\n---------- not an underline\n";
    const auto r = text_blocks(rst, false);
    ASSERT_GE(r.size(), 4u);
    EXPECT_EQ(r[0].level, 1);
    EXPECT_EQ(rst.substr(r[0].begin, r[0].end - r[0].begin), "Title");
    EXPECT_EQ(r[2].level, 2);
    EXPECT_EQ(rst.substr(r[2].begin, r[2].end - r[2].begin), "Section");
    EXPECT_EQ(r.back().level, 0);
}

TEST(Rag, HtmlMainContentHeadingsAndEntities) {
    const std::string html =
        "<!DOCTYPE html><html><head><title>The &amp; page</title><style>p{}</style><script>var x = '<p>no</p>';</script></head>"
        "<body><nav><a href=/>Home</a> menu</nav><div role=\"main\"><h1>Main <a class=\"headerlink\">¶</a></h1>"
        "<p>First   paragraph\n with &lt;b&gt; text &eacute;.</p><ul><li>one</li><li>two</li></ul>"
        "<h2>Second</h2><pre>  keep\n  spaces</pre><!-- hidden --></div><footer>copyright</footer></body></html>";
    const Document d = html_document(html, "x.html");
    EXPECT_EQ(d.title, "The & page");
    ASSERT_EQ(d.blocks.size(), 6u);
    EXPECT_EQ(d.blocks[0].level, 1);
    EXPECT_EQ(slice(d, d.blocks[0].begin, d.blocks[0].end), "Main");
    EXPECT_EQ(slice(d, d.blocks[1].begin, d.blocks[1].end), "First paragraph with <b> text é.");
    EXPECT_EQ(slice(d, d.blocks[2].begin, d.blocks[2].end), "one");
    EXPECT_EQ(d.blocks[4].level, 2);
    EXPECT_EQ(slice(d, d.blocks[5].begin, d.blocks[5].end), "keep\n  spaces");
    EXPECT_EQ(d.text.find("menu"), std::string::npos);
    EXPECT_EQ(d.text.find("copyright"), std::string::npos);
    EXPECT_EQ(d.text.find("var x"), std::string::npos);
    // No charset declared, UTF-8 text: read as UTF-8 (libxml2 would assume ISO-8859-1).
    const Document u = html_document("<p>naïve 中文</p>", "u.html");
    EXPECT_EQ(u.text, "naïve 中文");
}

TEST(Rag, PdfAndJsonlDocuments) {
    const auto pdf = read_documents("a.pdf", tiny_pdf("Hello from a PDF page", "Tiny PDF"));
    ASSERT_EQ(pdf.size(), 1u);
    EXPECT_EQ(pdf[0].title, "Tiny PDF");
    EXPECT_NE(pdf[0].text.find("Hello from a PDF page"), std::string::npos);
    EXPECT_THROW(read_documents("b.pdf", "%PDF-1.4 garbage"), Error);
    const auto j = read_documents("d.jsonl", "{\"text\": \"alpha beta\", \"title\": \"A\"}\n\n{\"text\": \"gamma\", \"id\": 7}\n");
    ASSERT_EQ(j.size(), 2u);
    EXPECT_EQ(j[0].source, "d.jsonl#1");
    EXPECT_EQ(j[0].title, "A");
    EXPECT_EQ(j[1].source, "d.jsonl#3");
    EXPECT_EQ(j[1].title, "7");
    try {
        read_documents("e.jsonl", "{\"body\": \"x\"}\n");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("e.jsonl:1: no string field 'text'"), std::string::npos) << e.what();
    }
    EXPECT_THROW(read_documents("f.txt", std::string("bad \xc3 utf8")), Error);
    EXPECT_EQ(format_of("x.docx"), "");
    EXPECT_EQ(format_of("README"), "text");
}

TEST(Rag, ChunksFitStayInSectionsAndOverlap) {
    Document d;
    d.source = "t.md";
    std::string text = "# A\n\n";
    for (int p = 0; p < 6; ++p) {
        for (int s = 0; s < 5; ++s) text += "Sentence " + std::to_string(p) + "-" + std::to_string(s) + " has exactly six words. ";
        text += "\n\n";
    }
    text += "## B\n\nShort section.\n";
    d.text = text;
    d.blocks = text_blocks(d.text, true);
    ChunkOptions o;
    o.max_tokens = 40;  // a paragraph is 5 sentences × 7 words (with the numbers) = 35 words: one per chunk
    o.overlap = 8;
    const auto chunks = chunk_document(d, o);
    ASSERT_GE(chunks.size(), 7u);
    for (const Chunk& c : chunks) {
        EXPECT_LE(c.tokens, 40);
        EXPECT_EQ(static_cast<size_t>(c.tokens), words(slice(d, c.begin, c.end)).size());
        EXPECT_LE(c.end, d.text.size());
    }
    EXPECT_EQ(chunks.front().heading, "A");
    EXPECT_EQ(chunks.back().heading, "A > B");
    EXPECT_EQ(slice(d, chunks.back().begin, chunks.back().end), "Short section.");
    // The second chunk repeats the first's last sentence (7 words ≤ 8), then its own paragraph would overflow: so the
    // paragraph starts its own chunk, carrying only what leaves room for it.
    const std::string c1 = slice(d, chunks[1].begin, chunks[1].end);
    EXPECT_EQ(c1.find("Sentence 1-0"), 0u) << c1;  // 7 + 35 > 40: no room to carry
    // Smaller chunks cut paragraphs at sentences, and then the overlap shows.
    o.max_tokens = 16;
    const auto small = chunk_document(d, o);
    int overlapping = 0;
    for (size_t i = 1; i < small.size(); ++i)
        if (small[i].heading == small[i - 1].heading && small[i].begin < small[i - 1].end) ++overlapping;
    EXPECT_GT(overlapping, 5);
    // A sentence longer than a chunk is cut at words.
    Document longs;
    longs.text = std::string("word ") + std::string(200, 'x') + " ";
    for (int i = 0; i < 100; ++i) longs.text += strprintf("w%d ", i);
    longs.blocks = text_blocks(longs.text, false);
    o.max_tokens = 10;
    for (const Chunk& c : chunk_document(longs, o)) EXPECT_LE(c.tokens, 10);
}

TEST(Rag, IndexIsIncrementalAndQueriesAreSafe) {
    const fs::path dir = temp_dir("incr");
    const fs::path docs = dir / "docs", kb = dir / "kb";
    for (int i = 0; i < 1000; ++i)
        write(docs / strprintf("d%d", i / 100) / strprintf("f%d.txt", i),
              strprintf("Document %d talks about topic%d and nothing else.\n", i, i % 37));
    write(docs / "image.png", "\x89PNG not text");
    write(docs / ".hidden.txt", "never indexed");
    IndexOptions o;
    o.progress = false;
    IndexStats s = build_index({docs.string()}, kb.string(), o);
    EXPECT_EQ(s.files, 1000u);
    EXPECT_EQ(s.added, 1000u);
    ASSERT_EQ(s.skipped.size(), 1u);
    EXPECT_NE(s.skipped[0].find("image.png: unsupported format"), std::string::npos);
    EXPECT_EQ(s.chunks, 1000u);
    // Edit one file of the 1,000: only it is read and re-indexed.
    write(docs / "d3" / "f345.txt", "Document 345 now talks about zebras.\n");
    s = build_index({docs.string()}, kb.string(), o);
    EXPECT_EQ(s.changed, 1u);
    EXPECT_EQ(s.unchanged, 999u);
    EXPECT_EQ(s.added, 0u);
    EXPECT_EQ(s.chunks_written, 1u);
    Index index(kb.string());
    auto hits = index.query("zebras", {});
    ASSERT_EQ(hits.size(), 1u);
    EXPECT_NE(hits[0].source.find("f345.txt"), std::string::npos);
    EXPECT_GT(hits[0].score, 0);
    EXPECT_TRUE(index.query("topic345", {}).empty());  // the old text is gone
    // A deleted file leaves the index; an unparseable one is named and skipped.
    fs::remove(docs / "d0" / "f7.txt");
    write(docs / "bad.txt", std::string("\xff\xfe broken"));
    s = build_index({docs.string()}, kb.string(), o);
    EXPECT_EQ(s.removed, 1u);
    EXPECT_EQ(s.documents, 999u);
    bool named = false;
    for (const auto& k : s.skipped) named = named || k.find("bad.txt: not UTF-8 text") != std::string::npos;
    EXPECT_TRUE(named);
    // Queries: empty, punctuation only, a language the index lacks, FTS5 syntax in the words.
    EXPECT_TRUE(index.query("", {}).empty());
    EXPECT_TRUE(index.query("?!", {}).empty());
    EXPECT_TRUE(index.query("Привет мир", {}).empty());
    EXPECT_TRUE(index.query("人工智能", {}).empty());
    EXPECT_FALSE(index.query("\"document\" OR NEAR(topic1 AND", {}).empty());
    QueryOptions k3;
    k3.k = 3;
    EXPECT_EQ(index.query("document", k3).size(), 3u);
    // Different chunk sizes on an existing index are refused; no index at all is named.
    IndexOptions other = o;
    other.chunk.max_tokens = 64;
    EXPECT_THROW(build_index({docs.string()}, kb.string(), other), Error);
    EXPECT_THROW(Index((dir / "nothing").string()), Error);
    EXPECT_THROW(build_index({(dir / "missing").string()}, kb.string(), o), Error);
    fs::remove_all(dir);
}

TEST(Rag, ModesAndFusionsByName) {
    for (Mode m : {Mode::Bm25, Mode::Dense, Mode::Hybrid}) EXPECT_EQ(parse_mode(mode_name(m)), m);
    for (Fusion f : {Fusion::Rrf, Fusion::Convex}) EXPECT_EQ(parse_fusion(fusion_name(f)), f);
    EXPECT_STREQ(fusion_name(Fusion::Convex), "convex");
    EXPECT_THROW(parse_fusion("max"), Error);
    EXPECT_THROW(parse_mode("fuzzy"), Error);
    EXPECT_EQ(QueryOptions().fusion, Fusion::Rrf);  // reciprocal rank unless asked otherwise
}

TEST(Rag, RetrievalMetricsByHand) {
    // one gold document at rank 3 of 10
    EXPECT_DOUBLE_EQ(recall_at({3}, 1, 5), 1.0);
    EXPECT_DOUBLE_EQ(recall_at({3}, 1, 2), 0.0);
    EXPECT_DOUBLE_EQ(reciprocal_rank({3}), 1.0 / 3);
    EXPECT_DOUBLE_EQ(ndcg_at({3}, 1), 1.0 / 2.0);  // 1/log2(4) over 1/log2(2)
    // two gold documents at ranks 1 and 3: DCG 1 + 1/2, ideal 1 + 1/log2(3)
    EXPECT_NEAR(ndcg_at({1, 3}, 2), 1.5 / (1.0 + 1.0 / std::log2(3.0)), 1e-15);
    EXPECT_DOUBLE_EQ(recall_at({1, 3}, 2, 2), 0.5);
    // nothing found in the first 10
    EXPECT_DOUBLE_EQ(reciprocal_rank({}), 0.0);
    EXPECT_DOUBLE_EQ(reciprocal_rank({11}), 0.0);
    EXPECT_DOUBLE_EQ(ndcg_at({}, 3), 0.0);
    // the bootstrap: the mean exactly; an interval around it that narrows with more questions
    std::vector<double> v;
    for (int i = 0; i < 100; ++i) v.push_back(i % 4 == 0 ? 1.0 : 0.0);
    const Estimate e = bootstrap_mean(v, 2000, 7);
    EXPECT_DOUBLE_EQ(e.mean, 0.25);
    EXPECT_LT(e.lo, 0.25);
    EXPECT_GT(e.hi, 0.25);
    EXPECT_NEAR(e.hi - e.lo, 2 * 1.96 * std::sqrt(0.25 * 0.75 / 100), 0.04);  // the normal approximation's width
    const Estimate none = bootstrap_mean(v, 0, 7);
    EXPECT_EQ(none.lo, none.hi);
}

TEST(Rag, CitationMarksAreReadAndStripped) {
    // single, lists, adjacent marks; repeats counted once, in order of first citation; out-of-range numbers dropped
    EXPECT_EQ(citations("It is [2]. Also [1, 3] and [3][4].", 4), (std::vector<int>{2, 1, 3, 4}));
    EXPECT_EQ(citations("see [5] and [0] and [2]", 3), (std::vector<int>{2}));
    // not citation marks: text in brackets, an empty pair, an unclosed one, a list element like x[1:2]
    EXPECT_EQ(citations("a list [a, b], [] and [1 then x[1:2]", 5), std::vector<int>{});
    EXPECT_EQ(citations("[ 2 ,3 ]", 5), (std::vector<int>{2, 3}));
    EXPECT_EQ(strip_citations("It is so [2]. Also [1, 3] and [3][4]."), "It is so. Also and.");
    EXPECT_EQ(strip_citations("no marks [x]"), "no marks [x]");
    // a gold answer cited at the end of each paragraph, blank lines kept
    EXPECT_EQ(cite_answer("First part.\n\nSecond part.\n", 2), "First part. [2]\n\nSecond part. [2]\n");
    EXPECT_EQ(cite_answer("One line", 1), "One line [1]");
    EXPECT_EQ(citations(cite_answer("A.\n\nB.", 3), 3), std::vector<int>{3});
    EXPECT_EQ(strip_citations(cite_answer("A.\n\nB.", 3)), "A.\n\nB.");
}

TEST(Rag, GroundedPromptSnippetsAndRelevance) {
    Hit a, b;
    a.title = "Python FAQ";
    a.heading = "Python FAQ > Strings";
    a.text = "Strings are immutable.  \n";
    EXPECT_EQ(source_label(a), "Python FAQ > Strings");  // the heading path starts with the title: said once
    Hit d = a;
    d.heading = "Strings";
    EXPECT_EQ(source_label(d), "Python FAQ > Strings");
    d.heading.clear();
    EXPECT_EQ(source_label(d), "Python FAQ");
    b.title = "库";
    b.heading = "库";  // the heading path is the title: said once
    b.text = "第一句。第二句讲文件。";
    EXPECT_EQ(grounded_prompt("Why?", {a, b}),
              "Sources:\n\n[1] Python FAQ > Strings\nStrings are immutable.\n\n[2] 库\n第一句。第二句讲文件。\n\nQuestion: Why?");
    // the snippet starts at the sentence sharing most words with the question; cut at a whole character
    Hit c;
    c.text = "Lists are mutable.\nStrings cannot change: they are immutable objects. Tuples too.";
    EXPECT_EQ(best_snippet(c, "are strings immutable"), "Strings cannot change: they are immutable objects. Tuples too.");
    EXPECT_EQ(best_snippet(c, "nothing shared"), "Lists are mutable. Strings cannot change: they are immutable objects. Tuples too.");
    EXPECT_EQ(best_snippet(c, "are strings immutable", 20), "Strings cannot chang…");
    EXPECT_EQ(best_snippet(b, "文件", 7), "第二…");  // from the sentence with 文件; 3-byte characters: 6 bytes fit in 7, never part of one
    // relevance: a score counts only from a ranking the hit is in
    Relevance r{4.0, 0.5};
    Hit h;
    h.bm25_rank = 1, h.bm25 = 3.9;
    EXPECT_FALSE(relevant(h, r));
    h.bm25 = 4.0;
    EXPECT_TRUE(relevant(h, r));
    h.bm25_rank = 0, h.dense_rank = 2, h.similarity = 0.6;
    EXPECT_TRUE(relevant(h, r));
    h.similarity = 0.4;
    EXPECT_FALSE(relevant(h, r));
    // the lead of a ranking: the first hit against the first hit of another document
    auto hit = [](const std::string& src, double score) {
        Hit x;
        x.source = src;
        x.score = score;
        return x;
    };
    EXPECT_DOUBLE_EQ(lead({hit("a", 10), hit("a", 9), hit("b", 6), hit("c", 5)}), 0.4);  // a's second chunk is not a rival
    EXPECT_DOUBLE_EQ(lead({hit("a", 10), hit("b", 10)}), 0.0);
    EXPECT_DOUBLE_EQ(lead({hit("a", 10), hit("a", 2)}), 1.0);  // no other document in view
    EXPECT_DOUBLE_EQ(lead({}), 0.0);
    EXPECT_DOUBLE_EQ(lead({hit("a", 0.032), hit("b", 0.024)}), 0.25);  // fused scores alike
    // a pooled ratio: Σ num / Σ den, not the mean of the ratios
    const Estimate q = bootstrap_ratio({1, 0, 3}, {1, 2, 3}, 0, 1);
    EXPECT_DOUBLE_EQ(q.mean, 4.0 / 6.0);
    const Estimate q2 = bootstrap_ratio({1, 0, 3, 2}, {1, 2, 3, 4}, 500, 1);
    EXPECT_LE(q2.lo, q2.mean);
    EXPECT_GE(q2.hi, q2.mean);
}

TEST(Rag, HeadingPairsComeFromTheSections) {
    const fs::path dir = temp_dir("headings");
    std::string long_section;
    for (int i = 0; i < 12; ++i) long_section += "Sentence number " + std::to_string(i) + " tells how the oven bakes the loaf evenly. ";
    write(dir / "docs" / "a.md", "# Kettles\n\nKettles are common.\n\n## Boiling water\n\nA kettle boils water with an element.\n\n"
                                 "## Module contents\n\nThe kettle module holds kettles.\n");
    write(dir / "docs" / "b.md", "# Bread\n\n## Module contents\n\nThe bread module holds loaves.\n\n## Baking the loaf\n\n" +
                                     long_section + "\n");
    IndexOptions o;
    o.progress = false;
    o.chunk.max_tokens = 40;
    o.chunk.overlap = 0;
    build_index({(dir / "docs").string()}, (dir / "kb").string(), o);
    Index index((dir / "kb").string());
    std::vector<std::string> baking;  // the chunks under "Bread > Baking the loaf"
    for (const Hit& h : index.all_chunks())
        if (h.heading == "Bread > Baking the loaf") baking.push_back(h.text);
    ASSERT_GE(baking.size(), 3u);
    // "Kettles" and "Bread" are one word; "Module contents" ends two paths: only two pairs, in the index's order
    const std::vector<QueryPassage> p = heading_pairs(index, 1);
    ASSERT_EQ(p.size(), 2u);
    EXPECT_EQ(p[0].query, "Boiling water");
    EXPECT_EQ(p[0].passage, "A kettle boils water with an element.");  // the text alone: no title, no heading
    EXPECT_EQ(p[1].query, "Baking the loaf");
    EXPECT_NE(std::find(baking.begin(), baking.end(), p[1].passage), baking.end());
    // seeded: the same seed draws the same chunk, and the seeds draw every chunk of the section between them
    std::set<std::string> drawn;
    for (uint64_t s = 1; s <= 64; ++s) {
        const std::vector<QueryPassage> q = heading_pairs(index, s);
        ASSERT_EQ(q.size(), 2u);
        drawn.insert(q[1].passage);
        if (s == 1) {
            EXPECT_EQ(q[1].passage, p[1].passage);
        }
    }
    EXPECT_EQ(drawn.size(), baking.size());
    fs::remove_all(dir);
}

TEST(Rag, InverseClozePairsComeFromTheChunks) {
    const fs::path dir = temp_dir("ict");
    write(dir / "docs" / "a.md", "# Kettles\n\nA kettle boils water with an element. It switches off when the water boils. Descale it "
                                 "with vinegar now and then.\n\n# Short\n\nOne sentence only here.\n");
    write(dir / "docs" / "b.txt", "Bread needs flour and water and salt. Yeast makes the dough rise slowly. Bake it in a hot oven. Hi.\n");
    IndexOptions o;
    o.progress = false;
    build_index({(dir / "docs").string()}, (dir / "kb").string(), o);
    Index index((dir / "kb").string());
    const std::vector<Hit> chunks = index.all_chunks();
    ASSERT_EQ(chunks.size(), 3u);
    auto one_line = [](const std::string& t) {
        std::string s;
        for (char c : t) {
            if (c == ' ' || c == '\n') {
                if (!s.empty() && s.back() != ' ') s += ' ';
            } else {
                s += c;
            }
        }
        while (!s.empty() && s.back() == ' ') s.pop_back();
        return s;
    };
    // never the 1-sentence chunk, never "Hi." (fewer than 4 words); at most 2 per chunk; the passage is the chunk's
    // passage_text without the sentence (keep_sentence 0)
    const std::vector<QueryPassage> p = inverse_cloze_pairs(index, 2, 7, 0.0);
    EXPECT_EQ(p.size(), 4u);  // 2 of the kettle's 3 sentences, 2 of the bread's 3 eligible ones
    for (const QueryPassage& x : p) {
        EXPECT_NE(x.query, "Hi.");
        EXPECT_EQ(x.query.find("One sentence"), std::string::npos);
        bool from_a_chunk = false;
        for (const Hit& h : chunks) {
            const size_t at = h.text.find(x.query);
            if (at == std::string::npos) continue;
            Hit rest = h;
            rest.text = h.text.substr(0, at) + h.text.substr(at + x.query.size());
            // the sentence's trailing space went with it
            if (at + x.query.size() < h.text.size() && h.text[at + x.query.size()] == ' ') rest.text.erase(at, 1);
            from_a_chunk = from_a_chunk || one_line(passage_text(rest)) == one_line(x.passage);
        }
        EXPECT_TRUE(from_a_chunk) << x.query << " | " << x.passage;
        EXPECT_EQ(x.passage.find(x.query), std::string::npos);
    }
    // seeded; keep_sentence 1 keeps the sentence in the passage
    const std::vector<QueryPassage> again = inverse_cloze_pairs(index, 2, 7, 0.0);
    ASSERT_EQ(again.size(), p.size());
    for (size_t i = 0; i < p.size(); ++i) EXPECT_EQ(again[i].query, p[i].query);
    for (const QueryPassage& x : inverse_cloze_pairs(index, 5, 3, 1.0)) EXPECT_NE(x.passage.find(x.query), std::string::npos);
    EXPECT_EQ(inverse_cloze_pairs(index, 5, 3).size(), 6u);  // every eligible sentence
    // cloze_questions: the same draws, the chunk kept as a hit (its id, source and headings; its text without the sentence)
    const std::vector<ClozeQuestion> cq = cloze_questions(index, 2, 7, 0.0);
    ASSERT_EQ(cq.size(), p.size());
    for (size_t i = 0; i < cq.size(); ++i) {
        EXPECT_EQ(cq[i].query, p[i].query);
        EXPECT_EQ(passage_text(cq[i].passage), p[i].passage);
        const auto whole = std::find_if(chunks.begin(), chunks.end(), [&](const Hit& h) { return h.chunk == cq[i].passage.chunk; });
        ASSERT_NE(whole, chunks.end());
        EXPECT_EQ(whole->source, cq[i].passage.source);
        EXPECT_NE(whole->text.find(cq[i].query), std::string::npos);
    }
    fs::remove_all(dir);
}
