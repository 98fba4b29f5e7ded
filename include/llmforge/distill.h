// Knowledge distillation: the losses between a teacher's next-token distribution and a student's, and their gradients
// with respect to the student's logits.
//
// Per target position, with z_s and z_t the student's and teacher's logits and τ the temperature,
//   p = softmax(z_t / τ) (teacher),  q = softmax(z_s / τ) (student);
//   forward KL   D = KL(p ‖ q) = Σ p (log p − log q)                      (Hinton et al. 2015)
//   reverse KL   D = KL(q ‖ p) = Σ q (log q − log p)
//   JSD(β)       D = β·KL(p ‖ m) + (1 − β)·KL(q ‖ m),  m = β·p + (1 − β)·q  (Agarwal et al. 2024, "GKD"; TRL's
//                generalized_jsd_loss for 0 < β < 1)
// and the loss  L = α·τ²·D + (1 − α)·CE,  CE = −log softmax(z_s)[target] (the hard label, at temperature 1); the τ²
// keeps the soft term's gradients on the scale of the hard term's as τ changes (Hinton et al.). A batch's loss is
// the mean over its target positions (targets < 0 are not trained on).
//
// A teacher given by its top k tokens only (a cache, see below) is compared on k + 1 buckets: its k tokens and "the
// rest" — the teacher's remaining mass r_t = 1 − Σ_k p against the student's mass outside those k tokens r_s — so that
// both sides stay distributions and every divergence above is exact on that coarser partition. With k = V it is the
// full divergence.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "llmforge/model.h"
#include "llmforge/pretrain.h"

namespace llmforge {

class ThreadPool;

enum class Divergence { ForwardKL, ReverseKL, JSD };
Divergence parse_divergence(const std::string& name);  // forward-kl, reverse-kl, jsd (bad-input Error otherwise)
const char* divergence_name(Divergence d);

struct DistillLossConfig {
    Divergence divergence = Divergence::ForwardKL;
    float temperature = 1.0f;  // τ > 0
    float beta = 0.5f;         // JSD's mixture weight of the teacher, 0 < β < 1
    float alpha = 0.5f;        // weight of the distillation term; 1 − α on the hard-label cross-entropy
    void validate() const;     // bad-input Error for values out of range
};

// The teacher's distribution of one position at temperature τ, as k ids with their log-probabilities (largest first;
// ties by smaller id) and the log of the remaining mass (−inf when k = V). z: the teacher's logits [V].
void teacher_topk(const float* z, int64_t V, float tau, int k, int32_t* ids, float* logp, float* log_rest);

// One position: returns D (before α and τ²) and adds weight · ∂(τ²·D)/∂z_s into dz [V]. The teacher: ids/logp of k
// buckets and log_rest (ids null: k = V, bucket i is token i).
double divergence_row(const float* z_s, int64_t V, const int32_t* ids, const float* logp, int64_t k, float log_rest, const DistillLossConfig& c,
                      float weight, float* dz);

struct DistillLoss {
    double loss = 0;        // mean over target positions of α·τ²·D + (1 − α)·CE
    double divergence = 0;  // mean D
    double ce = 0;          // mean hard-label cross-entropy
    int64_t positions = 0;  // target positions
};

// A batch of N positions: student logits [N, V], targets [N] (< 0: skipped), the teacher either as full logits
// teacher_logits [N, V] (then ids/logp/log_rest null) or as top-k rows ids/logp [N, k] and log_rest [N]. Writes
// dz = ∂L/∂z_s [N, V] scaled by `scale` (zero rows where targets < 0).
DistillLoss distill_batch(const float* student_logits, const int32_t* targets, int64_t N, int64_t V, const float* teacher_logits,
                          const int32_t* ids, const float* logp, const float* log_rest, int64_t k, const DistillLossConfig& c, float scale,
                          float* dz, ThreadPool* pool = nullptr);

// ---- the teacher's top-k cache (llmforge distill-cache): the teacher runs once over every training window of the data
// (window w: tokens [w·T, w·T + T] of the train split, as DataLoader cuts them), or over a subset of them spread
// evenly, and each position's top k log-probabilities at temperature τ and the log of the remaining mass are kept, so
// that many student runs reuse them without running the teacher (a student then trains on the windows held). The
// file: the magic "LFKDTOPK", a u32 version (1), a u32 length and a JSON header (teacher and data hashes, T, k, τ, V,
// the windows held and in the split, the record layout); from the next 64-byte boundary the held windows' ids (u64,
// ascending); from the next, one record per position in window order: k ids (u16 when V ≤ 65536, else u32), k log-
// probabilities (f16 or f32), log_rest (f32), padded to 4 bytes. Written atomically.
struct TeacherCacheOptions {
    std::string teacher_path, data_dir, out;
    int64_t seq_len = 256;
    int64_t top_k = 32;
    int64_t batch_size = 8;  // windows per teacher pass
    int64_t max_windows = 0; // 0: every window of the split; else this many, spread evenly over it (students train on them)
    float temperature = 1.0f;
    DType precision = DType::F16;  // of the log-probabilities: F16 or F32
    int n_threads = 0;
    bool progress = true;
};

struct TeacherCacheReport {
    uint64_t windows = 0, positions = 0, bytes = 0;
    double seconds = 0;
    std::string teacher_hash, data_hash;
};

TeacherCacheReport build_teacher_cache(const TeacherCacheOptions& o);

// The hash of a prepared data directory's split: its tokenizer.json and the split's shards, names and bytes.
std::string data_split_hash(const std::string& data_dir, const std::string& split);

class MappedFile;

class TeacherCache {
public:
    explicit TeacherCache(const std::string& path);  // bad-input Error: not a cache, another version, truncated
    // Bad-input Errors naming what differs: the teacher file (by hash), the data (by hash), the sequence length,
    // the temperature, the vocabulary.
    void check(const std::string& teacher_path, int64_t n_vocab, const std::string& data_dir, int64_t seq_len, float temperature) const;
    // Position t of window w: k ids, k log-probabilities and the log of the remaining mass, renormalised so that the
    // k + 1 masses sum to 1 (f16 rounding leaves them a little off).
    void read(uint64_t w, int64_t t, int32_t* ids, float* logp, float* log_rest) const;
    int64_t k() const { return k_; }
    int64_t seq_len() const { return T_; }
    int64_t n_vocab() const { return V_; }
    uint64_t windows() const { return windows_; }              // windows held
    uint64_t split_windows() const { return split_windows_; }  // windows in the split it was made from
    const std::vector<uint64_t>& window_ids() const { return ids_; }  // the windows held, ascending
    float temperature() const { return tau_; }
    const std::string& path() const { return path_; }
    const std::string& teacher_hash() const { return teacher_hash_; }
    const std::string& data_hash() const { return data_hash_; }

private:
    std::string path_, teacher_hash_, data_hash_;
    std::shared_ptr<MappedFile> map_;
    const uint8_t* records_ = nullptr;
    int64_t k_ = 0, T_ = 0, V_ = 0;
    uint64_t windows_ = 0, split_windows_ = 0;
    std::vector<uint64_t> ids_;
    float tau_ = 1.0f;
    int id_bytes_ = 2, lp_bytes_ = 2;
    size_t record_ = 0;
};

// ---- llmforge distill: a student trained on prepared shards against a teacher's distributions, on the shared
// training loop (progress, validation, checkpoints, exact resume, MPI, the compute account)
struct DistillOptions {
    PretrainOptions train;             // data_dir (llmforge prepare's shards, in the teacher's tokenizer), out_dir, steps, …;
                                       // train.model: a fresh student's shape (n_vocab and n_ctx are set here)
    std::string teacher_path;
    std::string student_path;          // start from this model instead of a fresh one
    std::vector<int64_t> keep_layers;  // non-empty: the student is the teacher with only these blocks, in this order
    DistillLossConfig loss;
    std::string teacher_cache;         // non-empty: the teacher's top-k from this cache (distill-cache) in training;
                                       // the teacher itself still runs for validation
    // On-policy distillation (GKD, Agarwal et al. 2024): this share λ of the batches (drawn per batch from the seed
    // and the batch's windows, so a resumed run draws the same) keeps each row's first T − gen_tokens tokens as the
    // prompt and lets the student sample the rest at gen_temp; the loss is then the divergence alone (α = 1: no
    // labels) on the sampled positions, against the teacher run on the student's sequences.
    double on_policy = 0;
    int64_t gen_tokens = 0;  // 0: half the sequence
    float gen_temp = 1.0f;
};

struct DistillReport {
    PretrainResult result;
    int64_t teacher_params = 0, student_params = 0;
    double teacher_val_loss = -1;  // the teacher's cross-entropy on the first validation windows
    double last_val_kl = -1;       // KL(teacher ‖ student) at temperature 1 on them, at the last validation
};

// Bad-input Errors before training: another vocabulary than the teacher's (the student's, or the data's tokenizer),
// layers out of range, a sequence longer than the teacher's context.
DistillReport distill(const DistillOptions& opts);

// The teacher with only the blocks `keep` (renumbered 0, 1, …), sharing its storage: a pruned student's start.
Model prune_layers(const Model& m, const std::vector<int64_t>& keep);

}  // namespace llmforge
