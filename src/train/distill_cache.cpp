// The teacher's top-k cache (include/llmforge/distill.h): built once by `llmforge distill-cache`, read by
// `llmforge distill --teacher-cache` in place of running the teacher on every training batch.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/hash.h"
#include "core/json_int.h"
#include "core/mmap_file.h"
#include "core/progress.h"
#include "core/threadpool.h"
#include "llmforge/data.h"
#include "llmforge/distill.h"
#include "llmforge/error.h"
#include "llmforge/log.h"
#include "llmforge/train.h"

namespace llmforge {

namespace {

constexpr char kMagic[8] = {'L', 'F', 'K', 'D', 'T', 'O', 'P', 'K'};
constexpr uint32_t kVersion = 1;

size_t record_bytes(int64_t k, int id_bytes, int lp_bytes) {
    const size_t r = static_cast<size_t>(k) * static_cast<size_t>(id_bytes + lp_bytes) + 4;
    return (r + 3) & ~size_t{3};
}

}  // namespace

std::string data_split_hash(const std::string& dir, const std::string& split) {
    std::string acc = "tokenizer.json " + file_content_hash(dir + "/tokenizer.json") + "\n";
    for (int i = 0;; ++i) {
        char name[64];
        std::snprintf(name, sizeof(name), "%s_%03d.bin", split.c_str(), i);
        if (!file_exists(dir + "/" + name)) break;
        acc += std::string(name) + " " + file_content_hash(dir + "/" + name) + "\n";
    }
    return content_hash(acc);
}

TeacherCacheReport build_teacher_cache(const TeacherCacheOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    if (o.out.empty()) throw_bad_input("distill-cache: no output file (-o)");
    if (o.precision != DType::F16 && o.precision != DType::F32) throw_bad_input("--precision: f16 or f32");
    if (o.batch_size < 1) throw_bad_input("--batch-size must be at least 1");
    if (!file_exists(o.data_dir + "/tokenizer.json"))
        throw_bad_input("'%s' is not a directory written by llmforge prepare (no tokenizer.json)", o.data_dir.c_str());
    if (!(o.temperature > 0) || !std::isfinite(o.temperature)) throw_bad_input("--temp must be a positive number");
    const Model teacher = load_model(o.teacher_path);
    if (teacher.config.encoder) throw_bad_input("'%s' is an encoder: a teacher must predict next tokens", o.teacher_path.c_str());
    const int64_t V = teacher.config.n_vocab, T = o.seq_len, k = o.top_k;
    if (k < 1 || k > V) throw_bad_input("--top-k must be between 1 and the teacher's vocabulary (%lld)", static_cast<long long>(V));
    if (T < 1 || T > teacher.config.n_ctx)
        throw_bad_input("--seq-len %lld: between 1 and the teacher's context (%lld)", static_cast<long long>(T), static_cast<long long>(teacher.config.n_ctx));

    TeacherCacheReport rep;
    rep.teacher_hash = file_content_hash(o.teacher_path);
    rep.data_hash = data_split_hash(o.data_dir, "train");
    DataLoader data(o.data_dir, "train", 1, T, 0, false);  // the windows once each, in order
    const uint64_t W = data.windows();
    std::vector<uint64_t> chosen;  // all, or max_windows spread evenly over the split
    const uint64_t N = o.max_windows > 0 ? std::min<uint64_t>(W, static_cast<uint64_t>(o.max_windows)) : W;
    for (uint64_t i = 0; i < N; ++i) chosen.push_back(static_cast<uint64_t>(static_cast<unsigned __int128>(i) * W / N));
    data.restrict_to(chosen);
    rep.windows = N;
    rep.positions = rep.windows * static_cast<uint64_t>(T);
    const int id_bytes = V <= 65536 ? 2 : 4, lp_bytes = o.precision == DType::F16 ? 2 : 4;
    const size_t rec = record_bytes(k, id_bytes, lp_bytes);

    nlohmann::json meta = {{"format", "llmforge teacher top-k cache"},
                           {"teacher", o.teacher_path},
                           {"teacher_hash", rep.teacher_hash},
                           {"data", o.data_dir},
                           {"split", "train"},
                           {"data_hash", rep.data_hash},
                           {"seq_len", T},
                           {"top_k", k},
                           {"temperature", o.temperature},
                           {"n_vocab", V},
                           {"windows", rep.windows},
                           {"split_windows", W},
                           {"id_bytes", id_bytes},
                           {"logp", dtype_name(o.precision)},
                           {"record_bytes", rec}};
    const std::string js = meta.dump();
    AtomicWriter w(o.out);
    w.write(kMagic, 8);
    const uint32_t head[2] = {kVersion, static_cast<uint32_t>(js.size())};
    w.write(head, sizeof head);
    w.write(js.data(), js.size());
    w.write_zeros((64 - w.offset() % 64) % 64);
    w.write(chosen.data(), chosen.size() * sizeof(uint64_t));
    w.write_zeros((64 - w.offset() % 64) % 64);

    ThreadPool pool(o.n_threads > 0 ? o.n_threads : ThreadPool::default_threads());
    TrainableModel tt(teacher, pool, false, true);  // frozen: read in place, forward only
    tt.set_keep_logits(true);
    const int64_t B = o.batch_size;
    std::vector<int32_t> in(static_cast<size_t>(B * T)), tg(static_cast<size_t>(B * T)), one_in, one_tg;
    std::vector<int32_t> ids(static_cast<size_t>(B * T * k));
    std::vector<float> lp(static_cast<size_t>(B * T * k)), rest(static_cast<size_t>(B * T));
    std::vector<uint8_t> out;
    log_text(strprintf("llmforge: caching the top %lld of %s's next-token distributions at τ %g over %llu of %llu windows of %lld tokens (%s, %.1f MB)\n",
                       static_cast<long long>(k), o.teacher_path.c_str(), static_cast<double>(o.temperature),
                       static_cast<unsigned long long>(rep.windows), static_cast<unsigned long long>(W), static_cast<long long>(T), o.out.c_str(),
                       static_cast<double>(rep.positions * rec) / 1e6));
    Progress prog("teacher", static_cast<double>(rep.windows), "windows", o.progress);
    for (uint64_t w0 = 0; w0 < rep.windows; w0 += static_cast<uint64_t>(B)) {
        const int64_t n = std::min<int64_t>(B, static_cast<int64_t>(rep.windows - w0));
        for (int64_t r = 0; r < n; ++r) {
            data.next_batch(one_in, one_tg);
            std::copy(one_in.begin(), one_in.end(), in.begin() + r * T);
            std::copy(one_tg.begin(), one_tg.end(), tg.begin() + r * T);
        }
        tt.forward(in.data(), tg.data(), n, T);
        const float* z = tt.logits();
        pool.parallel_for(n * T, [&](int64_t b, int64_t e) {
            for (int64_t p = b; p < e; ++p)
                teacher_topk(z + p * V, V, o.temperature, static_cast<int>(k), ids.data() + p * k, lp.data() + p * k, rest.data() + p);
        });
        out.assign(static_cast<size_t>(n * T) * rec, 0);
        for (int64_t p = 0; p < n * T; ++p) {
            uint8_t* d = out.data() + static_cast<size_t>(p) * rec;
            for (int64_t i = 0; i < k; ++i) {
                const int32_t id = ids[static_cast<size_t>(p * k + i)];
                if (id_bytes == 2) {
                    const uint16_t v = static_cast<uint16_t>(id);
                    std::memcpy(d + i * 2, &v, 2);
                } else {
                    std::memcpy(d + i * 4, &id, 4);
                }
            }
            uint8_t* l = d + k * id_bytes;
            for (int64_t i = 0; i < k; ++i) {
                const float v = lp[static_cast<size_t>(p * k + i)];
                if (lp_bytes == 2) {
                    const uint16_t h = f32_to_f16(std::max(v, -65504.0f));
                    std::memcpy(l + i * 2, &h, 2);
                } else {
                    std::memcpy(l + i * 4, &v, 4);
                }
            }
            std::memcpy(l + k * lp_bytes, &rest[static_cast<size_t>(p)], 4);
        }
        w.write(out.data(), out.size());
        prog.update(static_cast<double>(w0 + static_cast<uint64_t>(n)));
    }
    prog.finish();
    w.commit();
    rep.bytes = w.offset();
    rep.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return rep;
}

TeacherCache::TeacherCache(const std::string& path) : path_(path) {
    map_ = MappedFile::open(path);
    const uint8_t* p = map_->data();
    const size_t size = map_->size();
    if (size < 16 || std::memcmp(p, kMagic, 8) != 0) throw_bad_input("'%s' is not a teacher cache (written by llmforge distill-cache)", path.c_str());
    uint32_t head[2];
    std::memcpy(head, p + 8, sizeof head);
    if (head[0] != kVersion) throw_bad_input("'%s': teacher cache version %u (this llmforge reads version %u)", path.c_str(), head[0], kVersion);
    if (head[1] > size - 16) throw_bad_input("'%s' is truncated (its header runs past the end of the file)", path.c_str());
    nlohmann::json meta = nlohmann::json::parse(p + 16, p + 16 + head[1], nullptr, false);
    if (meta.is_discarded() || !meta.is_object()) throw_bad_input("'%s': the teacher cache's header is not valid JSON", path.c_str());
    try {
        const std::string what = "'" + path + "': the teacher cache's ";
        teacher_hash_ = meta.at("teacher_hash").get<std::string>();
        data_hash_ = meta.at("data_hash").get<std::string>();
        T_ = json_integer(meta.at("seq_len"), 1, INT32_MAX, what + "seq_len");
        k_ = json_integer(meta.at("top_k"), 1, INT32_MAX, what + "top_k");
        V_ = json_integer(meta.at("n_vocab"), 1, INT32_MAX, what + "n_vocab");
        windows_ = static_cast<uint64_t>(json_integer(meta.at("windows"), 1, int64_t{1} << 40, what + "windows"));
        split_windows_ = static_cast<uint64_t>(json_integer(meta.at("split_windows"), 1, int64_t{1} << 40, what + "split_windows"));
        tau_ = meta.at("temperature").get<float>();
        id_bytes_ = static_cast<int>(json_integer(meta.at("id_bytes"), 2, 4, what + "id_bytes"));
        const std::string lp = meta.at("logp").get<std::string>();
        lp_bytes_ = lp == "f16" ? 2 : lp == "f32" ? 4 : 0;
        record_ = static_cast<size_t>(json_integer(meta.at("record_bytes"), 1, INT32_MAX, what + "record_bytes"));
    } catch (const nlohmann::json::exception& e) {
        throw_bad_input("'%s': the teacher cache's header is incomplete (%s)", path.c_str(), e.what());
    }
    if (T_ < 1 || k_ < 1 || V_ < k_ || (id_bytes_ != 2 && id_bytes_ != 4) || lp_bytes_ == 0 || record_ != record_bytes(k_, id_bytes_, lp_bytes_) ||
        windows_ == 0 || windows_ > split_windows_ || split_windows_ > (uint64_t{1} << 40))
        throw_bad_input("'%s': the teacher cache's header is inconsistent", path.c_str());
    const uint64_t ids_at = (16 + uint64_t{head[1]} + 63) / 64 * 64, off = (ids_at + windows_ * 8 + 63) / 64 * 64;
    const uint64_t need = off + windows_ * static_cast<uint64_t>(T_) * record_;
    if (size != need)
        throw_bad_input("'%s' is %s: %zu bytes where its header promises %llu", path.c_str(), size < need ? "truncated" : "longer than its header says",
                        size, static_cast<unsigned long long>(need));
    ids_.resize(windows_);
    std::memcpy(ids_.data(), p + ids_at, windows_ * 8);
    for (size_t i = 0; i < ids_.size(); ++i)
        if (ids_[i] >= split_windows_ || (i > 0 && ids_[i] <= ids_[i - 1])) throw_bad_input("'%s': the teacher cache's window list is corrupt", path.c_str());
    records_ = p + off;
}

void TeacherCache::check(const std::string& teacher_path, int64_t n_vocab, const std::string& data_dir, int64_t seq_len, float temperature) const {
    if (n_vocab != V_)
        throw_bad_input("the teacher cache '%s' has a vocabulary of %lld tokens, the teacher %lld: it was made for another teacher", path_.c_str(),
                        static_cast<long long>(V_), static_cast<long long>(n_vocab));
    const std::string th = file_content_hash(teacher_path);
    if (th != teacher_hash_)
        throw_bad_input("the teacher cache '%s' was made for another teacher (hash %s; '%s' has %s)", path_.c_str(), teacher_hash_.c_str(),
                        teacher_path.c_str(), th.c_str());
    const std::string dh = data_split_hash(data_dir, "train");
    if (dh != data_hash_)
        throw_bad_input("the teacher cache '%s' was made for other data (hash %s; the train split of '%s' has %s)", path_.c_str(), data_hash_.c_str(),
                        data_dir.c_str(), dh.c_str());
    if (seq_len != T_)
        throw_bad_input("the teacher cache '%s' holds windows of %lld tokens: train with --seq-len %lld", path_.c_str(), static_cast<long long>(T_),
                        static_cast<long long>(T_));
    if (temperature != tau_)
        throw_bad_input("the teacher cache '%s' holds the teacher's distributions at τ %g: train with --temp %g", path_.c_str(), static_cast<double>(tau_),
                        static_cast<double>(tau_));
}

void TeacherCache::read(uint64_t w, int64_t t, int32_t* ids, float* logp, float* log_rest) const {
    if (t < 0 || t >= T_) throw_bad_input("teacher cache '%s': no window %llu position %lld", path_.c_str(), static_cast<unsigned long long>(w),
                                                           static_cast<long long>(t));
    const auto it = std::lower_bound(ids_.begin(), ids_.end(), w);
    if (it == ids_.end() || *it != w) throw_bad_input("teacher cache '%s' does not hold window %llu", path_.c_str(), static_cast<unsigned long long>(w));
    const uint64_t i = static_cast<uint64_t>(it - ids_.begin());
    const uint8_t* d = records_ + (i * static_cast<uint64_t>(T_) + static_cast<uint64_t>(t)) * record_;
    for (int64_t i = 0; i < k_; ++i) {
        if (id_bytes_ == 2) {
            uint16_t v;
            std::memcpy(&v, d + i * 2, 2);
            ids[i] = v;
        } else {
            std::memcpy(ids + i, d + i * 4, 4);
        }
        if (ids[i] < 0 || ids[i] >= V_) throw_bad_input("teacher cache '%s' is corrupt: token id %d outside the vocabulary", path_.c_str(), ids[i]);
    }
    const uint8_t* l = d + k_ * id_bytes_;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t i = 0; i < k_; ++i) {
        if (lp_bytes_ == 2) {
            uint16_t h;
            std::memcpy(&h, l + i * 2, 2);
            logp[i] = f16_to_f32(h);
        } else {
            std::memcpy(logp + i, l + i * 4, 4);
        }
        mx = std::max(mx, static_cast<double>(logp[i]));
    }
    std::memcpy(log_rest, l + k_ * lp_bytes_, 4);
    if (!std::isfinite(mx) || std::isnan(*log_rest)) throw_bad_input("teacher cache '%s' is corrupt: a log-probability is not a number", path_.c_str());
    // renormalise: the k + 1 masses sum to 1
    double s = std::exp(std::max(static_cast<double>(*log_rest), -1e30) - mx);
    for (int64_t i = 0; i < k_; ++i) s += std::exp(static_cast<double>(logp[i]) - mx);
    const double lz = mx + std::log(s);
    for (int64_t i = 0; i < k_; ++i) logp[i] = static_cast<float>(logp[i] - lz);
    if (std::isfinite(*log_rest)) *log_rest = static_cast<float>(*log_rest - lz);
}

}  // namespace llmforge
