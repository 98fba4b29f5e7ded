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

// ---- llmforge distill: a student trained on prepared shards against a teacher's distributions, on the shared
// training loop (progress, validation, checkpoints, exact resume, MPI, the compute account)
struct DistillOptions {
    PretrainOptions train;             // data_dir (llmforge prepare's shards, in the teacher's tokenizer), out_dir, steps, …;
                                       // train.model: a fresh student's shape (n_vocab and n_ctx are set here)
    std::string teacher_path;
    std::string student_path;          // start from this model instead of a fresh one
    std::vector<int64_t> keep_layers;  // non-empty: the student is the teacher with only these blocks, in this order
    DistillLossConfig loss;
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
