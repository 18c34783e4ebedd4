// ops.cc: msm_op, the one entry point for tensor ops. Each case reads its tensors from in[], integers from ia[] and
// floats from da[] as the Go wrapper in torch/ops.go passes them, and writes its results to out[].
#include <cmath>
#include <vector>

#include "common.h"

using msm::T;
using msm::wrap;

namespace {

enum Op {
#define OP(name, str) OP_##name,
#include "ops.def"
#undef OP
  OP_COUNT
};

const char *kNames[] = {
#define OP(name, str) str,
#include "ops.def"
#undef OP
};

struct Args {
  const msm_tensor *in;
  int nin;
  const int64_t *ia;
  int nia;
  const double *da;
  int nda;

  const at::Tensor &t(int i) const {
    if (i >= nin) throw std::invalid_argument("missing tensor argument " + std::to_string(i));
    return T(in[i]);
  }
  int64_t i(int k) const {
    if (k >= nia) throw std::invalid_argument("missing integer argument " + std::to_string(k));
    return ia[k];
  }
  double d(int k) const {
    if (k >= nda) throw std::invalid_argument("missing float argument " + std::to_string(k));
    return da[k];
  }
  std::vector<int64_t> ints(int from = 0) const {
    return std::vector<int64_t>(ia + std::min(from, nia), ia + nia);
  }
  std::vector<at::Tensor> all() const {
    std::vector<at::Tensor> v;
    v.reserve(nin);
    for (int k = 0; k < nin; k++) v.push_back(T(in[k]));
    return v;
  }
};

// attention computes softmax(q k^T * scale + mask) v for q (B, Hq, T, D) and k, v (B, Hkv, S, D), S >= T.
// causal: query t sits at key position t + S - T and sees keys up to it. seg (B, S), if given: a query only sees
// keys of its own segment (documents packed in one row; padding as a segment of its own).
at::Tensor attention(const at::Tensor &q, at::Tensor k, at::Tensor v, const at::Tensor *seg, bool causal,
                     double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "attention: q, k, v must be (B, H, T, D), got ",
              q.sizes(), ", ", k.sizes(), ", ", v.sizes());
  const int64_t Hq = q.size(1), T = q.size(2), D = q.size(3), Hkv = k.size(1), S = k.size(2);
  TORCH_CHECK(Hkv > 0 && Hq % Hkv == 0, "attention: ", Hq, " query heads is not a multiple of ", Hkv, " kv heads");
  TORCH_CHECK(S >= T, "attention: ", S, " keys for ", T, " queries");
  if (scale <= 0) scale = 1.0 / std::sqrt(static_cast<double>(D));
  at::Tensor mask;  // bool (B or 1, 1, T, S), true = may attend
  const bool explicit_mask = seg != nullptr || (causal && T != S);
  if (explicit_mask) {
    auto dev = q.device();
    mask = at::ones({1, T, S}, at::TensorOptions().dtype(at::kBool).device(dev));
    if (causal) {
      auto qi = at::arange(S - T, S, at::TensorOptions().dtype(at::kLong).device(dev));
      auto kj = at::arange(0, S, at::TensorOptions().dtype(at::kLong).device(dev));
      mask = kj.unsqueeze(0).le(qi.unsqueeze(1)).unsqueeze(0);  // (1, T, S)
    }
    if (seg != nullptr) {
      TORCH_CHECK(seg->dim() == 2 && seg->size(1) == S, "attention: segment ids must be (B, ", S, "), got ",
                  seg->sizes());
      auto sq = seg->narrow(1, S - T, T);
      mask = mask.logical_and(sq.unsqueeze(2).eq(seg->unsqueeze(1)));  // (B, T, S)
    }
    mask = mask.unsqueeze(1);
  }
#if MSM_TORCH_AT_LEAST(2, 5)
  // grouped-query attention without copies of k and v (enable_gqa, torch 2.5+)
  c10::optional<at::Tensor> m;
  if (explicit_mask) m = mask;
  return at::scaled_dot_product_attention(q, k, v, m, 0.0, causal && !explicit_mask, scale, Hq != Hkv);
#elif MSM_TORCH_AT_LEAST(2, 1)
  if (Hq != Hkv) {
    k = k.repeat_interleave(Hq / Hkv, 1);
    v = v.repeat_interleave(Hq / Hkv, 1);
  }
  c10::optional<at::Tensor> m;
  if (explicit_mask) m = mask;
  return at::scaled_dot_product_attention(q, k, v, m, 0.0, causal && !explicit_mask, scale);
#else
  // Grouped-query attention without copies of k and v: query head h uses kv head h / G (G = Hq / Hkv, as
  // repeat_interleave pairs them), so the G query heads of a kv head are stacked along the query axis, (B, Hkv,
  // G*T, D), and multiply k and v as they are (a broadcast over G would be copied inside matmul).
  const int64_t B = q.size(0), G = Hq / Hkv;
  auto scores = at::matmul(q.reshape({B, Hkv, G * T, D}), k.transpose(-2, -1));  // (B, Hkv, G*T, S)
  // float32 on the CPU: scaling, masking and softmax in one pass each way (kernels.cc)
  at::Tensor m3;
  if (explicit_mask) m3 = mask.squeeze(1);  // (B or 1, T, S)
  auto fused = msm::masked_softmax(scores.view({B, Hkv * G, T, S}), explicit_mask ? &m3 : nullptr, causal, scale);
  if (fused.defined()) return at::matmul(fused.view({B, Hkv, G * T, S}), v).view({B, Hq, T, D});
  scores = scores.mul_(scale).view({B, Hkv, G, T, S});
  if (explicit_mask) {
    scores = scores.masked_fill(mask.unsqueeze(1).logical_not(), -std::numeric_limits<double>::infinity());
  } else if (causal) {
    auto upper = at::ones({T, S}, at::TensorOptions().dtype(at::kBool).device(q.device())).triu(1);
    scores = scores.masked_fill(upper, -std::numeric_limits<double>::infinity());
  }
  auto p = at::softmax(scores, -1, at::kFloat).to(q.scalar_type()).view({B, Hkv, G * T, S});
  return at::matmul(p, v).view({B, Hq, T, D});
#endif
}

// cross_entropy returns the loss of logits (N, C) against target (N), with ignore_index and optional per-token
// weights (N). reduction 0: per token (N), 1: sum, 2: mean over the weight of non-ignored tokens.
at::Tensor cross_entropy(const at::Tensor &logits, const at::Tensor &target, const at::Tensor *weight,
                         int64_t ignore_index, int64_t reduction) {
  TORCH_CHECK(logits.dim() == 2, "cross_entropy: logits must be (N, C), got ", logits.sizes());
  TORCH_CHECK(target.dim() == 1 && target.size(0) == logits.size(0), "cross_entropy: target must be (",
              logits.size(0), "), got ", target.sizes());
  auto lf = logits.scalar_type() == at::kDouble ? logits : logits.to(at::kFloat);
  auto tgt = target.to(at::kLong);
  at::Tensor wt;
  if (weight != nullptr) {
    TORCH_CHECK(weight->sizes() == target.sizes(), "cross_entropy: weight must be (", target.size(0), "), got ",
                weight->sizes());
    wt = weight->to(lf.scalar_type());
  }
  auto valid = tgt.ne(ignore_index).to(lf.scalar_type());
  at::Tensor w = weight != nullptr ? wt * valid : valid;
  auto l = msm::cross_entropy_rows(lf, tgt, weight != nullptr ? &wt : nullptr, ignore_index);  // fused, float32 CPU
  if (!l.defined()) {
    l = at::cross_entropy_loss(lf, tgt, {}, at::Reduction::None, ignore_index);  // 0 where ignored
    if (weight != nullptr) l = l * w;
  }
  if (reduction == 0) return l;
  if (reduction == 1) return l.sum();
  return l.sum() / w.sum();
}

std::vector<at::Tensor> run(int op, const Args &a) {
  switch (static_cast<Op>(op)) {
    case OP_VIEW: return {a.t(0).view(a.ints())};
    case OP_RESHAPE: return {a.t(0).reshape(a.ints())};
    case OP_TRANSPOSE: return {a.t(0).transpose(a.i(0), a.i(1))};
    case OP_PERMUTE: return {a.t(0).permute(a.ints())};
    case OP_CONTIGUOUS: return {a.t(0).contiguous()};
    case OP_NARROW: return {a.t(0).narrow(a.i(0), a.i(1), a.i(2))};
    case OP_SLICE: return {a.t(0).slice(a.i(0), a.i(1), a.i(2), a.i(3))};
    case OP_CAT: return {at::cat(a.all(), a.i(0))};
    case OP_STACK: return {at::stack(a.all(), a.i(0))};
    case OP_SPLIT: return a.t(0).split(a.i(0), a.i(1));
    case OP_CHUNK: return a.t(0).chunk(a.i(0), a.i(1));
    case OP_INDEX_SELECT: return {a.t(0).index_select(a.i(0), a.t(1))};
    case OP_GATHER: return {a.t(0).gather(a.i(0), a.t(1))};
    case OP_SCATTER: return {a.t(0).scatter(a.i(0), a.t(1), a.t(2))};
    case OP_MASKED_FILL: return {a.t(0).masked_fill(a.t(1), a.d(0))};
    case OP_WHERE: return {at::where(a.t(0), a.t(1), a.t(2))};
    case OP_UNSQUEEZE: return {a.t(0).unsqueeze(a.i(0))};
    case OP_SQUEEZE: return {a.t(0).squeeze(a.i(0))};
    case OP_EXPAND: return {a.t(0).expand(a.ints())};
    case OP_REPEAT_INTERLEAVE: return {a.t(0).repeat_interleave(a.i(0), a.i(1))};
    case OP_FLATTEN: return {a.t(0).flatten(a.i(0), a.i(1))};
    case OP_TO: {
      auto &x = a.t(0);
      auto dt = a.i(0) < 0 ? x.scalar_type() : msm::dtype(static_cast<int>(a.i(0)));
      auto dev = a.i(1) < 0 ? x.device() : msm::device(static_cast<int>(a.i(1)), static_cast<int>(a.i(2)));
      // Small host -> CUDA copies (a step's batch) go from page-locked memory without waiting: a pageable copy
      // makes the host wait for all the work queued on the device before it. The caching host allocator keeps
      // the pinned block until the copy has run, so the source may be freed at once. Large ones (weights being
      // loaded) stay pageable: the allocator would keep their pinned blocks for the life of the process.
      if (x.device().is_cpu() && dev.is_cuda() && x.numel() * x.element_size() <= (int64_t(64) << 20))
        return {x.to(dt).pin_memory().to(dev, dt, /*non_blocking=*/true)};
      return {x.to(dev, dt)};
    }
    case OP_CLONE: return {a.t(0).clone()};
    case OP_DETACH: return {a.t(0).detach()};
    case OP_MATMUL: return {at::matmul(a.t(0), a.t(1))};
    case OP_BMM: return {at::bmm(a.t(0), a.t(1))};
    case OP_LINEAR: {
      c10::optional<at::Tensor> bias;
      if (a.nin > 2) bias = a.t(2);
      return {at::linear(a.t(0), a.t(1), bias)};
    }
    case OP_ADD: return {a.nda > 0 ? at::add(a.t(0), a.t(1), a.d(0)) : at::add(a.t(0), a.t(1))};
    case OP_SUB: return {at::sub(a.t(0), a.t(1))};
    case OP_MUL: return {at::mul(a.t(0), a.t(1))};
    case OP_DIV: return {at::div(a.t(0), a.t(1))};
    case OP_ADD_SCALAR: return {at::add(a.t(0), a.d(0))};
    case OP_MUL_SCALAR: return {at::mul(a.t(0), a.d(0))};
    case OP_POW: return {at::pow(a.t(0), a.d(0))};
    case OP_RSQRT: return {at::rsqrt(a.t(0))};
    case OP_SQRT: return {at::sqrt(a.t(0))};
    case OP_EXP: return {at::exp(a.t(0))};
    case OP_LOG: return {at::log(a.t(0))};
    case OP_NEG: return {at::neg(a.t(0))};
    case OP_ABS: return {at::abs(a.t(0))};
    case OP_SILU: return {at::silu(a.t(0))};
    case OP_GELU: return {at::gelu(a.t(0), a.nia > 0 && a.i(0) == 1 ? "tanh" : "none")};
    case OP_SIGMOID: return {at::sigmoid(a.t(0))};
    case OP_TANH: return {at::tanh(a.t(0))};
    case OP_RELU: return {at::relu(a.t(0))};
    case OP_CLAMP: {
      c10::optional<at::Scalar> lo, hi;
      if (a.i(0)) lo = a.d(0);
      if (a.i(1)) hi = a.d(1);
      return {at::clamp(a.t(0), lo, hi)};
    }
    case OP_SUM: return {a.t(0).sum(a.ints(1), a.i(0) != 0)};
    case OP_MEAN: return {a.t(0).mean(a.ints(1), a.i(0) != 0)};
    case OP_SUM_ALL: return {a.t(0).sum()};
    case OP_MEAN_ALL: return {a.t(0).mean()};
    case OP_MAX: {
      auto r = a.t(0).max(a.i(0), a.i(1) != 0);
      return {std::get<0>(r), std::get<1>(r)};
    }
    case OP_MAX_ALL: return {a.t(0).max()};
    case OP_ARGMAX: return {a.t(0).argmax(a.i(0), a.i(1) != 0)};
    case OP_NORM: return {a.t(0).norm(a.d(0))};
    case OP_SOFTMAX: return {at::softmax(a.t(0), a.i(0))};
    case OP_LOG_SOFTMAX: return {at::log_softmax(a.t(0), a.i(0))};
    case OP_CROSS_ENTROPY: return {cross_entropy(a.t(0), a.t(1), a.nin > 2 ? &a.t(2) : nullptr, a.i(0), a.i(1))};
    case OP_EMBEDDING: return {at::embedding(a.t(0), a.t(1))};
    case OP_ATTENTION:
      return {attention(a.t(0), a.t(1), a.t(2), a.nin > 3 ? &a.t(3) : nullptr, a.i(0) != 0, a.d(0))};
    case OP_ROPE_TABLE: {
      // pos (B, T) integer positions, inv_freq (D/2) fp32 -> cos, sin (B, T, D) in dtype i0, computed in fp32.
      auto freqs = a.t(0).to(at::kFloat).unsqueeze(-1) * a.t(1).to(at::kFloat);
      auto emb = at::cat({freqs, freqs}, -1);
      auto dt = msm::dtype(static_cast<int>(a.i(0)));
      return {emb.cos().to(dt), emb.sin().to(dt)};
    }
    case OP_ROPE: return {msm::rope(a.t(0), a.t(1), a.t(2))};
    case OP_RMSNORM: return {msm::rms_norm(a.t(0), a.t(1), a.d(0))};
    case OP_SWIGLU: return {msm::swiglu(a.t(0), a.t(1))};
    case OP_EQ: return {a.t(0).eq(a.t(1))};
    case OP_NE: return {a.t(0).ne(a.t(1))};
    case OP_LT: return {a.t(0).lt(a.t(1))};
    case OP_GT: return {a.t(0).gt(a.t(1))};
    case OP_EQ_SCALAR: return {a.t(0).eq(a.d(0))};
    case OP_LOGICAL_AND: return {a.t(0).logical_and(a.t(1))};
    case OP_LOGICAL_NOT: return {a.t(0).logical_not()};
    case OP_ALL_FINITE: {
      at::Tensor ok;
      for (int k = 0; k < a.nin; k++) {
        auto f = at::isfinite(a.t(k)).all();
        ok = ok.defined() ? ok.logical_and(f) : f;
      }
      return {ok};
    }
    case OP_COPY_: {
      at::NoGradGuard ng;
      const_cast<at::Tensor &>(a.t(0)).copy_(a.t(1));
      return {};
    }
    case OP_ZERO_: {
      at::NoGradGuard ng;
      const_cast<at::Tensor &>(a.t(0)).zero_();
      return {};
    }
    case OP_ADD_: {
      at::NoGradGuard ng;
      const_cast<at::Tensor &>(a.t(0)).add_(a.t(1), a.nda > 0 ? a.d(0) : 1.0);
      return {};
    }
    case OP_MUL_SCALAR_: {
      at::NoGradGuard ng;
      const_cast<at::Tensor &>(a.t(0)).mul_(a.d(0));
      return {};
    }
    case OP_TOPK: {
      auto r = a.t(0).topk(a.i(0), a.i(1));
      return {std::get<0>(r), std::get<1>(r)};
    }
    case OP_SORT: {
      auto r = a.t(0).sort(a.i(0), a.i(1) != 0);
      return {std::get<0>(r), std::get<1>(r)};
    }
    case OP_CUMSUM: return {a.t(0).cumsum(a.i(0))};
    case OP_TRIL: return {a.t(0).tril(a.i(0))};
    case OP_COUNT: break;
  }
  throw std::invalid_argument("unknown op code " + std::to_string(op));
}

}  // namespace

extern "C" {

const char *msm_op_name(int op) {
  if (op < 0 || op >= OP_COUNT) return nullptr;
  return kNames[op];
}

char *msm_op(int op, const msm_tensor *in, int nin, const int64_t *ia, int nia, const double *da, int nda, int flags,
             msm_tensor *out, int maxout, int *nout) {
  MSM_TRY
  msm::GradGuard guard(flags);
  Args a{in, nin, ia, nia, da, nda};
  auto r = run(op, a);
  if (static_cast<int>(r.size()) > maxout)
    throw std::invalid_argument(std::string(kNames[op]) + ": " + std::to_string(r.size()) +
                                " results, room for " + std::to_string(maxout));
  for (size_t k = 0; k < r.size(); k++) out[k] = wrap(std::move(r[k]));
  *nout = static_cast<int>(r.size());
  MSM_CATCH
}

msm_result msm_op_small(int op, msm_tensor a, msm_tensor b, msm_tensor c, int nin, int64_t i0, int64_t i1, int64_t i2,
                        int64_t i3, int nia, double d0, double d1, int nda, int flags) {
  msm_result res{0, nullptr};
  const msm_tensor in[3] = {a, b, c};
  const int64_t ia[4] = {i0, i1, i2, i3};
  const double da[2] = {d0, d1};
  int nout = 0;
  res.err = msm_op(op, in, nin, ia, nia, da, nda, flags, &res.t, 1, &nout);
  if (res.err == nullptr && nout != 1) {
    res.err = msm::err(std::string(kNames[op]) + ": no result");
  }
  return res;
}

}  // extern "C"
