// Retrieval: documents → sections and paragraphs → chunks → an index in SQLite (chunks, metadata, an FTS5 BM25 index
// over words that ICU segments), and queries against it.
//
//   rag::IndexOptions o;                                       // chunk sizes, the token counter, a stop flag
//   rag::IndexStats s = rag::build_index({"docs/"}, "kb", o);  // incremental: only new or changed files are read
//   rag::Index kb("kb");
//   for (const rag::Hit& h : kb.query("how do I read a file?", {})) …
//
// Words: ICU's word break iterator (dictionary-based for Chinese, Japanese, Thai, …) with NFKC case folding, so BM25
// works on CJK text as on English. BM25 is SQLite FTS5's: Robertson's formula with k1 = 1.2, b = 0.75 and the idf
// log((N − n + 0.5) / (n + 0.5)) floored at 1e-6, over the chunk's terms: its words, or with the English analyzer
// its words without English stopwords and Porter-stemmed (chosen when the index is made, applied to queries alike).
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llmforge {
class Embedder;
class Reranker;
}

namespace llmforge::rag {

// ---- text ----------------------------------------------------------------------------------------------------------

// The words of a UTF-8 text as the index sees them: ICU word segments that hold a letter, a digit or an ideograph,
// NFKC-case-folded, split at characters that are not letters, marks or digits ("don't" → "don", "t"; "3.14" → "3",
// "14"; "foo_bar" → "foo", "bar"), so that a word never holds ASCII punctuation or spaces (what FTS5's ascii tokenizer
// splits at). Invalid UTF-8 is a bad-input Error.
std::vector<std::string> words(std::string_view text);
// The byte ranges [begin, end) of the ICU word segments that words() reads (before folding and splitting).
std::vector<std::pair<size_t, size_t>> word_spans(std::string_view text);
// How words become BM25 terms, fixed when an index is made. Plain: the words as they are. Stop: without the English
// stopwords (english_stopwords(): articles, pronouns, auxiliary verbs, common prepositions and conjunctions, question
// words). English: those dropped and each word of ASCII letters Porter-stemmed as NLTK's PorterStemmer stems it
// ("reading", "reads" → "read"), other words (digits, CJK, accented) as they are — what Lucene's EnglishAnalyzer does,
// with its own word list.
enum class Analyzer { Plain, Stop, English };
Analyzer parse_analyzer(const std::string& name);  // plain | stop | english (a bad-input Error otherwise)
const char* analyzer_name(Analyzer a);
const std::vector<std::string>& english_stopwords();  // sorted
std::vector<std::string> terms(std::string_view text, Analyzer a);
// Sentence boundaries (ICU's sentence break rules: "." "?" "!" and "。" "？" "！" …) as byte ranges [begin, end) of
// text, covering it; trailing spaces stay with their sentence.
std::vector<std::pair<size_t, size_t>> sentences(std::string_view text);

// ---- documents -----------------------------------------------------------------------------------------------------

// A piece of a document's text: a heading (level 1–6) or a paragraph (level 0), as the byte range [begin, end) of
// Document::text.
struct Block {
    int level = 0;
    size_t begin = 0, end = 0;
};

struct Document {
    std::string source;   // the file, with "#<line>" for a line of a JSONL file
    std::string title;    // <title>, the first heading, the PDF's Title, the JSONL "title" field, or the file's name
    std::string format;   // text, markdown, html, pdf, jsonl
    std::string text;     // the text as extracted (for text and Markdown files: the file itself)
    std::vector<Block> blocks;
};

struct ReadOptions {
    std::string text_field = "text";    // JSONL: the field with the text ("title" and "id" are used when present)
};

// The format of a file by its name ("" when llmforge does not read it): .txt .text .rst .md .markdown .html .htm
// .xhtml .pdf .jsonl; a file without an extension counts as text.
std::string format_of(const std::string& path);
// Reads one file's documents (a JSONL file gives one per line); data is the file's bytes. A file that cannot be parsed
// (not UTF-8, a broken PDF, a JSONL line without the text field, …) is a bad-input Error naming it.
std::vector<Document> read_documents(const std::string& path, const std::string& data, const ReadOptions& o = {});
// The structure of plain text or Markdown (headings: "#" lines and underlined lines; paragraphs: blank-line separated;
// a fenced code block is one paragraph).
std::vector<Block> text_blocks(std::string_view text, bool markdown);
// HTML through libxml2's parser: the text of the main content (<main> or role="main" when present; never <script>,
// <style>, navigation or footers), headings h1–h6 as headings and block elements as paragraphs.
Document html_document(const std::string& data, const std::string& source);

// ---- chunks --------------------------------------------------------------------------------------------------------

struct ChunkOptions {
    int max_tokens = 256;    // a chunk's size
    int overlap = 32;        // tokens of the previous chunk's last sentences that a chunk of the same section repeats
    // The tokens of a text; empty: words() (for CJK text, one per word).
    std::function<size_t(std::string_view)> count;
};

struct Chunk {
    std::string heading;     // the section's headings, " > "-joined
    size_t begin = 0, end = 0;  // in Document::text; the chunk's text is that slice
    int tokens = 0;
};

// Structure-aware chunking: sections (by headings), then whole paragraphs while they fit, then sentences, then words
// (a sentence longer than a chunk). Chunks never cross a section. Every chunk has at most max_tokens tokens except a
// single word that is longer.
std::vector<Chunk> chunk_document(const Document& d, const ChunkOptions& o);

// ---- the index -----------------------------------------------------------------------------------------------------

struct IndexOptions {
    ReadOptions read;
    // Dense vectors: every chunk's embedding (passage_text) by this model, kept in the database and searched through
    // an HNSW graph (hnswlib; dir/dense-<n>.hnsw). Chunks already embedded by the same model (embed_model: its
    // identity, recorded in the index) are not embedded again; another model re-embeds every chunk.
    Embedder* embedder = nullptr;
    std::string embed_model;     // the model's path (what queries load)
    std::string embed_stamp;     // its size and modification time: a model changed in place is noticed
    int threads = 0;         // building the graph (0: the machine's cores)
    // Chunk sizes: max_tokens < 1 and overlap < 0 mean "as the index has them" (256 and 32 for a new index).
    ChunkOptions chunk{0, -1, {}};
    std::string tokenizer;   // the file whose tokenizer counts chunk sizes (recorded in the index; "" = words)
    std::string analyzer;    // how words become BM25 terms: "plain" or "english"; "" = as the index has it (a new one: plain)
    const std::atomic<bool>* stop = nullptr;
    bool progress = true;    // a progress line in the log
};

struct IndexStats {
    size_t files = 0;        // supported files found in the inputs
    size_t added = 0, changed = 0, unchanged = 0, removed = 0;
    std::vector<std::string> skipped;   // "path: reason" (unsupported format, unreadable, cannot be parsed)
    size_t documents = 0, chunks = 0;   // in the index afterwards
    size_t chunks_written = 0;          // by this run
    uint64_t bytes_read = 0;
    size_t embedded = 0;                // chunks embedded by this run
    size_t vectors = 0;                 // dense vectors in the index afterwards (0: none)
    double seconds = 0;
    bool interrupted = false;           // the stop flag was set: the files not reached are as they were
};

// Brings the index in directory `dir` (created if needed; its database is dir/index.sqlite) up to date with the files
// under `inputs` (files and directories, walked recursively; names starting with "." are skipped). A file whose content
// hash is unchanged is not read again; files no longer among the inputs are removed. Work is committed in
// transactions of whole files, so an index interrupted (even by kill -9) keeps every file either as it was or as it
// is now. Chunk options that differ from the index's are a bad-input Error (rebuild into a new directory).
IndexStats build_index(const std::vector<std::string>& inputs, const std::string& dir, const IndexOptions& o);

struct Hit {
    int64_t chunk = 0;       // the chunk's id in the index
    double score = 0;        // BM25, cosine similarity or the fused score, as the mode says, or the reranker's (higher is better)
    int bm25_rank = 0, dense_rank = 0;  // the chunk's rank (from 1) in each ranking the mode uses (0: not in its candidates)
    double bm25 = 0, similarity = 0;    // the chunk's BM25 score and cosine similarity, where its rank is not 0 (convex fusion: both, always)
    int retrieval_rank = 0;             // reranked: the chunk's rank (from 1) before reranking (0: not reranked)
    std::string source, title, heading, text;
    size_t begin = 0, end = 0;
};

// The text of a hit as an embedding model reads it: the document's title and the section's headings (where they add
// to each other), then the chunk's text, one per line.
std::string passage_text(const Hit& h);

// How a query ranks chunks: BM25 over words; dense: the cosine similarity of embeddings (the index's embedding model);
// hybrid: the two rankings, each taken to `candidates` chunks, fused as Fusion says.
enum class Mode { Bm25, Dense, Hybrid };
Mode parse_mode(const std::string& name);  // bm25 | dense | hybrid (a bad-input Error otherwise)
const char* mode_name(Mode m);

// How hybrid retrieval fuses its two rankings:
//  - rrf: reciprocal-rank fusion (Cormack, Clarke and Büttcher 2009): score = Σ 1 / (rrf_k + rank) over the rankings a
//    chunk is in. Ranks only: a ranking's confidence (how far its first chunk leads) is lost.
//  - convex: a convex combination of the two scores, each scaled to [0, 1] between its theoretical minimum and the best
//    candidate's score (Bruch, Gai and Ingber 2023, "An Analysis of Fusion Functions for Hybrid Retrieval", TM2C2):
//      score = (1 − alpha) · bm25 / max bm25 + alpha · (cos + 1) / (max cos + 1)
//    over the union of the two candidate lists, with every candidate's BM25 and cosine similarity computed (BM25 0
//    where none of the query's terms is in the chunk), the maxima taken over that union. alpha weighs the dense side;
//    its best value depends on how good the embedding model is (rag eval measures it).
enum class Fusion { Rrf, Convex };
Fusion parse_fusion(const std::string& name);  // rrf | convex (a bad-input Error otherwise)
const char* fusion_name(Fusion f);

struct QueryOptions {
    int k = 5;
    Mode mode = Mode::Bm25;
    Embedder* embedder = nullptr;  // dense and hybrid: the model that embeds the query (the index's)
    int candidates = 100;          // hybrid: how deep each ranking is fused
    Fusion fusion = Fusion::Rrf;   // hybrid: how
    int rrf_k = 60;                // rrf: the fusion's constant
    double alpha = 0.5;            // convex: the dense score's weight, in [0, 1]
    int ef = 0;                    // dense: the HNSW search's breadth (0: max(k, candidates, 64))
    bool exact = false;            // dense: compare with every vector instead of searching the graph
    // A cross-encoder that reorders the first max(k, rerank_top) chunks of the mode's ranking by its scores (each
    // chunk's passage_text with the query); null: no reranking.
    Reranker* reranker = nullptr;
    int rerank_top = 20;
};

class Index {
public:
    explicit Index(const std::string& dir);   // a bad-input Error if dir holds no llmforge index
    ~Index();
    Index(const Index&) = delete;
    Index& operator=(const Index&) = delete;
    // The k best chunks for the query as o.mode says. BM25 ranks by the query's terms (any of them: an OR query); a
    // query without words gives no hits in any mode, and BM25 finds none for one whose terms no chunk has (or that has
    // no terms: only stopwords, under the English analyzer). Dense and hybrid
    // need o.embedder and an index with vectors made by that model (a bad-input Error otherwise, saying what to do).
    std::vector<Hit> query(const std::string& text, const QueryOptions& o) const;
    // The embedding model the index's vectors were made with ("" if it has none), and how many chunks have one.
    std::string embed_model() const;
    size_t vectors() const;
    size_t documents() const;
    size_t chunks() const;
    Analyzer analyzer() const;   // how its words become BM25 terms (an index made before analyzers: plain)
    // The chunks, in order, of the documents whose source matches `gold` (source_matches), score 0.
    std::vector<Hit> document_chunks(const std::string& gold) const;
    // Every chunk, in the order of their ids (the whole indexed text in memory), score 0.
    std::vector<Hit> all_chunks() const;

private:
    std::vector<Hit> query_ranked(const std::string& text, const QueryOptions& o) const;  // query() before reranking
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// ---- grounded answers ----------------------------------------------------------------------------------------------
// What a grounded answer is told to do (the system prompt of rag ask, and of the fine-tuning data rag sft-data writes):
// answer from the numbered sources only, cite them as [n], and say so when they do not hold the answer.
extern const char* const kGroundedInstruction;
// Where a hit is: its document's title and its section's headings, " > "-joined, the title once (the heading path when
// it starts with the title).
std::string source_label(const Hit& h);
// The user turn of a grounded answer: the sources numbered from 1 — "[n] " source_label, then the chunk's text — then
// "Question: " and the question.
std::string grounded_prompt(const std::string& question, const std::vector<Hit>& sources);
// The sources an answer cites: the distinct n of "[n]", "[n, m]" and "[n][m]" with 1 <= n <= n_sources, in the order
// of their first citation.
std::vector<int> citations(std::string_view answer, size_t n_sources);
// A passage of a hit's text on one line, at most max_bytes (cut at a character, "…" added): from the sentence that
// shares the most words with the question (the first sentence when none does).
std::string best_snippet(const Hit& h, const std::string& question, size_t max_bytes = 240);
// A text on one line: whitespace runs become one space, none at the ends; longer than max_bytes: cut at a whole
// character and "…" added.
std::string one_line(std::string_view text, size_t max_bytes = SIZE_MAX);
// When a hit counts as relevant enough to answer from: its BM25 score or its cosine similarity (whichever rankings it
// is in) reaches the threshold. Raw BM25 depends on the corpus (its size and word statistics): calibrate on yours.
// min_lead asks more of the question as a whole: the best hit must lead the best hit of any other document by this
// share of its score (lead()), or the question is not answered at all — a ranking whose first document barely beats
// the next is a guess.
struct Relevance {
    double min_bm25 = 4.0;
    double min_similarity = 0.5;
    double min_lead = 0;
};
bool relevant(const Hit& h, const Relevance& r);
// How far a ranking's first document stands out: (s1 − s2) / |s1| for s1 the first hit's score and s2 the score of the
// first hit from another document; 1 when no other document is among the hits, 0 when there are none (or s1 is 0).
// Meant for rankings whose scores grow with relevance from 0: BM25 and hybrid's fused scores.
double lead(const std::vector<Hit>& ranking);
// An answer without its citation marks (what ROUGE compares): every "[n]"-style mark citations() reads is removed with
// the spaces before it.
std::string strip_citations(std::string_view answer);
// A gold answer as a grounded answer cites it: " [n]" at the end of each paragraph (blank-line separated).
std::string cite_answer(const std::string& answer, int n);

// ---- training pairs without labels -------------------------------------------------------------------------------
// The inverse cloze task (Lee, Chang and Toutanova 2019): a sentence of a chunk is a query and the chunk is its
// passage — without that sentence, except in keep_sentence of the pairs, so that a model learns what surrounds a
// sentence rather than only to match its words. Up to per_chunk pairs per chunk, from sentences of 4 to 64 words (a
// chunk needs two sentences); the passage is passage_text. Seeded: the same index and seed give the same pairs.
struct QueryPassage {
    std::string query, passage;
};
std::vector<QueryPassage> inverse_cloze_pairs(const Index& index, int per_chunk, uint64_t seed, double keep_sentence = 0.1);
// Headings as queries (title–body pairs, as E5 and Contriever pre-train on): a section's heading — the last part of
// its heading path, of two words or more — is the query and the text of one of its chunks (drawn with the seed; without
// the title and heading passage_text adds) the passage. A heading that ends several paths ("Module contents" on many
// pages) names no one passage and is left out. One pair per heading path, in the index's order.
std::vector<QueryPassage> heading_pairs(const Index& index, uint64_t seed);
// The same task with the chunk kept as a hit (its text without the sentence, except in keep_sentence of them): a
// question whose source is known, for grounded-answer practice (rag sft-data --cloze). The same draws as
// inverse_cloze_pairs, so its pairs are these with passage_text(passage).
struct ClozeQuestion {
    std::string query;
    Hit passage;
};
std::vector<ClozeQuestion> cloze_questions(const Index& index, int per_chunk, uint64_t seed, double keep_sentence = 0.1);

// ---- evaluation ----------------------------------------------------------------------------------------------------

// A question and the documents that answer it: Hit::source values ("path", or "path#line" for a JSONL line), or
// their ends after a '/' (so that a question set travels with its corpus to another directory).
struct QaItem {
    std::string question;
    std::vector<std::string> gold;
    std::string answer;   // the gold answer ("answer", optional): what an answer's ROUGE-L is measured against
};
// Whether a hit's source is the gold document: the same, or gold is its end after a '/'.
bool source_matches(const std::string& source, const std::string& gold);
// A JSONL file of {"question": "...", "gold": "source" | ["source", ...]}; a line without them is a bad-input Error
// naming it.
std::vector<QaItem> read_qa(const std::string& path);

struct EvalOptions {
    QueryOptions query;      // the mode (and its embedding model); k is set by the evaluation
    int k = 5;               // recall@k
    int bootstrap = 1000;    // resamples of the questions for the 95 % intervals (0: none)
    uint64_t seed = 1;
    const std::atomic<bool>* stop = nullptr;
    bool progress = true;
};

// A mean over the questions and its 95 % bootstrap interval (percentiles 2.5 and 97.5 of the resampled means).
struct Estimate {
    double mean = 0, lo = 0, hi = 0;
};

struct RetrievalEval {
    size_t questions = 0;
    int k = 0;
    Estimate recall;  // recall@k: the share of a question's gold documents among the first k documents
    Estimate mrr;     // MRR@10: 1 / the rank of the first gold document (0 beyond 10)
    Estimate ndcg;    // nDCG@10, binary relevance: Σ 1/log2(rank + 1) over gold documents in the first 10, over the best possible
    std::vector<std::vector<int>> ranks;  // per question, the ranks (from 1) of its gold documents found in the first 10
    std::vector<double> rr;               // per question, its reciprocal rank (MRR@10's terms)
};

// Ranks documents for each question — the chunks' ranking with each document at the rank of its best chunk — and
// scores them against the gold documents.
RetrievalEval evaluate_retrieval(const Index& index, const std::vector<QaItem>& qa, const EvalOptions& o);

// A ratio of sums, Σ num / Σ den over the questions, and its bootstrap interval (resampling the questions).
Estimate bootstrap_ratio(const std::vector<double>& num, const std::vector<double>& den, int resamples, uint64_t seed);
// The metrics of one question from its gold documents' ranks (1-based, any order): what evaluate_retrieval averages.
double recall_at(const std::vector<int>& ranks, size_t n_gold, int k);
double reciprocal_rank(const std::vector<int>& ranks, int cutoff = 10);
double ndcg_at(const std::vector<int>& ranks, size_t n_gold, int cutoff = 10);
// The mean of values and its bootstrap interval.
Estimate bootstrap_mean(const std::vector<double>& values, int resamples, uint64_t seed);

}  // namespace llmforge::rag
