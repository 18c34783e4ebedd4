// kernels.cc: fused CPU kernels for the elementwise work of a training step. Written as composite ATen ops, an
// RMSNorm reads and writes its (rows, C) tensors about 5 times forward and 10 times backward, SwiGLU (silu(g) * u)
// 3 and 6 times, a rotary embedding 5 and 5 (and a copy), attention's scaling, masking and softmax 4 and 3,
// cross-entropy's log-softmax and loss 6, an AdamW update 8; on a CPU these passes over memory cost as much as a
// layer's matmuls. Here each is one pass (or two), as autograd Functions where they are differentiated.
//
// They serve float32 CPU tensors (contiguous, or the rotary embedding's transposed view); everything else (CUDA,
// bf16) takes the composite path in ops.cc. Loops run in a fixed order with fixed blocking, independent of the
// thread count, so results are bit-reproducible on a given CPU. The inner loops are plain C++ written for the
// vectorizer (built with -O3), cloned for x86-64-v4 (AVX-512) and v3 (AVX2, FMA) and picked at load time; the
// v4 and v3 clones fuse the same multiply-adds, the portable one has no FMA and may round differently.
#include <torch/csrc/autograd/custom_function.h>

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common.h"

// x86-64-v3/v4 as clone targets need GCC 11; older compilers and clang build the portable loops only.
#if defined(__x86_64__) && defined(__GNUC__) && __GNUC__ >= 11 && !defined(__clang__) && !defined(__CUDACC__)
#define MSM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MSM_CLONES
#endif

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

constexpr int kLanes = 16;          // independent accumulators of a row sum (vectorizable, fixed order)
constexpr int64_t kRowBlock = 64;   // rows per partial sum of a weight gradient (fixed: reproducible sums)
constexpr int64_t kGrain = 32768;   // floats per parallel task

// lane_sum returns the sum of term(i) for i in [0, n), accumulated in kLanes independent sums (the vectorizer
// keeps them in registers) added in a fixed order at the end.
template <class F>
inline float lane_sum(int64_t n, F term) {
  float acc[kLanes] = {0};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; l++) acc[l] += term(i + l);
  for (; i < n; i++) acc[0] += term(i);
  float s = 0;
  for (int l = 0; l < kLanes; l++) s += acc[l];
  return s;
}

// rms_forward: y = w * (x * rstd), rstd = 1 / sqrt(mean(x^2) + eps) per row, for rows [r0, r1).
MSM_CLONES void rms_forward(const float *x, const float *w, float *y, float *rstd, int64_t r0, int64_t r1, int64_t C,
                            float eps) {
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = x + r * C;
    float *yr = y + r * C;
    const float ss = lane_sum(C, [&](int64_t i) { return xr[i] * xr[i]; });
    const float s = 1.0f / std::sqrt(ss / static_cast<float>(C) + eps);
    rstd[r] = s;
    for (int64_t i = 0; i < C; i++) yr[i] = w[i] * (xr[i] * s);
  }
}

// rms_backward for rows [r0, r1): dx = rstd * (dy*w - xhat * mean(dy*w*xhat)), xhat = x * rstd (dx may be null);
// dwpart (C) = sum over the rows of dy * xhat (null: not wanted).
MSM_CLONES void rms_backward(const float *x, const float *w, const float *rstd, const float *dy, float *dx,
                             float *dwpart, int64_t r0, int64_t r1, int64_t C) {
  if (dwpart != nullptr) std::memset(dwpart, 0, sizeof(float) * C);
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = x + r * C, *dyr = dy + r * C;
    const float s = rstd[r];
    if (dx != nullptr) {
      // mean(dy * w * xhat) = s * mean(dy * w * x)
      const float m = s * lane_sum(C, [&](int64_t i) { return dyr[i] * w[i] * xr[i]; }) / static_cast<float>(C);
      float *dxr = dx + r * C;
      for (int64_t i = 0; i < C; i++) dxr[i] = s * (dyr[i] * w[i] - (xr[i] * s) * m);
    }
    if (dwpart != nullptr)
      for (int64_t i = 0; i < C; i++) dwpart[i] += dyr[i] * (xr[i] * s);
  }
}

// sum_blocks adds nb partial rows of C floats into out in block order.
MSM_CLONES void sum_blocks(const float *parts, int64_t nb, int64_t C, float *out) {
  std::memcpy(out, parts, sizeof(float) * C);
  for (int64_t b = 1; b < nb; b++)
    for (int64_t i = 0; i < C; i++) out[i] += parts[b * C + i];
}

// exp_f is expf in float arithmetic that vectorizes (range reduction by ln 2, a degree-6 polynomial on
// [-ln2/2, ln2/2], scaling by 2^n through the exponent bits; within 2 ulp of expf). Inputs are clamped to
// [-87, 88], so exp_f(-inf) is ~1.6e-38, not 0: callers use it where that is harmless (sigmoid).
inline float exp_f(float x) {
  x = std::min(std::max(x, -87.0f), 88.0f);
  // n = x / ln 2 rounded to the nearest integer: adding and subtracting 1.5 * 2^23 rounds a float of magnitude
  // below 2^22 to an integer in the default rounding mode (a branch-free floor for the vectorizer).
  const float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
#if defined(__has_builtin)
#if __has_builtin(__builtin_bit_cast)
#define MSM_BIT_CAST 1
#endif
#endif
#ifdef MSM_BIT_CAST
  return p * __builtin_bit_cast(float, bits);  // a memcpy here would keep GCC from vectorizing the loop
#else
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
#endif
}

// swiglu_forward: y = g * sigmoid(g) * u over n floats.
MSM_CLONES void swiglu_forward(const float *g, const float *u, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float s = 1.0f / (1.0f + exp_f(-g[i]));
    y[i] = (g[i] * s) * u[i];
  }
}

// swiglu_backward: dg = dy * u * s * (1 + g * (1 - s)), du = dy * g * s, s = sigmoid(g). Both are written (the
// common case: gate and up projections both trained); swiglu_backward_g and _u write one.
MSM_CLONES void swiglu_backward(const float *g, const float *u, const float *dy, float *dg, float *du, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float s = 1.0f / (1.0f + exp_f(-g[i]));
    dg[i] = dy[i] * u[i] * (s * (1.0f + g[i] * (1.0f - s)));
    du[i] = dy[i] * (g[i] * s);
  }
}

MSM_CLONES void swiglu_backward_g(const float *g, const float *u, const float *dy, float *dg, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float s = 1.0f / (1.0f + exp_f(-g[i]));
    dg[i] = dy[i] * u[i] * (s * (1.0f + g[i] * (1.0f - s)));
  }
}

MSM_CLONES void swiglu_backward_u(const float *g, const float *dy, float *du, int64_t n) {
  for (int64_t i = 0; i < n; i++) {
    const float s = 1.0f / (1.0f + exp_f(-g[i]));
    du[i] = dy[i] * (g[i] * s);
  }
}

// ce_forward, for rows [r0, r1) of logits x (rows, V): mx[r] = max(x[r]), ls[r] = log(sum(exp(x[r] - mx[r]))),
// loss[r] = w[r] * (ls[r] - (x[r][t[r]] - mx[r])), 0 where t[r] is ignore. The max and the log-sum are kept apart
// (as log_softmax computes x - max - log-sum): their sum would lose the precision of large logits.
MSM_CLONES void ce_forward(const float *x, const int64_t *t, const float *w, float *mxo, float *ls, float *loss,
                           int64_t r0, int64_t r1, int64_t V, int64_t ignore) {
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = x + r * V;
    float mx[kLanes];
    for (int l = 0; l < kLanes; l++) mx[l] = -INFINITY;
    int64_t i = 0;
    for (; i + kLanes <= V; i += kLanes)
      for (int l = 0; l < kLanes; l++) mx[l] = std::max(mx[l], xr[i + l]);
    for (; i < V; i++) mx[0] = std::max(mx[0], xr[i]);
    float m = mx[0];
    for (int l = 1; l < kLanes; l++) m = std::max(m, mx[l]);
    const float sum = lane_sum(V, [&](int64_t j) { return exp_f(xr[j] - m); });
    mxo[r] = m;
    ls[r] = std::log(sum);
    loss[r] = t[r] == ignore ? 0.0f : w[r] * (ls[r] - (xr[t[r]] - m));
  }
}

// ce_backward for rows [r0, r1): dx[r] = c * (exp(x[r] - mx[r] - ls[r]) - onehot(t[r])), c = dl[r] * w[r] (0 if
// ignored).
MSM_CLONES void ce_backward(const float *x, const int64_t *t, const float *w, const float *mx, const float *ls,
                            const float *dl, float *dx, int64_t r0, int64_t r1, int64_t V, int64_t ignore) {
  for (int64_t r = r0; r < r1; r++) {
    const float *xr = x + r * V;
    float *dxr = dx + r * V;
    if (t[r] == ignore) {
      std::memset(dxr, 0, sizeof(float) * V);
      continue;
    }
    const float c = dl[r] * w[r], m = mx[r], l = ls[r];
    for (int64_t i = 0; i < V; i++) dxr[i] = c * exp_f((xr[i] - m) - l);
    dxr[t[r]] -= c;
  }
}

// softmax_rows, for rows [r0, r1) of scores x (rows, S), row r being query t = r % T: y = softmax(scale * x) over
// the keys the query may see, 0 elsewhere. It sees key j if j <= t + S - T (when causal) and mask[(r / per_batch
// when the mask has a batch, else 0), t, j] (when there is a mask). A row that sees no key is all zero.
MSM_CLONES void softmax_rows(const float *x, const bool *mask, float *y, int64_t r0, int64_t r1, int64_t T,
                             int64_t S, int64_t per_batch, bool mask_batched, bool causal, float scale) {
  for (int64_t r = r0; r < r1; r++) {
    const int64_t t = r % T;
    const int64_t n = causal ? std::min(S, t + S - T + 1) : S;  // keys past n are never seen
    const float *xr = x + r * S;
    float *yr = y + r * S;
    const bool *mr = mask != nullptr ? mask + ((mask_batched ? r / per_batch : 0) * T + t) * S : nullptr;
    float m = -INFINITY;
    for (int64_t j = 0; j < n; j++) {
      const float v = (mr == nullptr || mr[j]) ? xr[j] * scale : -INFINITY;
      yr[j] = v;
      m = std::max(m, v);
    }
    if (m == -INFINITY) {
      std::memset(yr, 0, sizeof(float) * S);
      continue;
    }
    float acc[kLanes] = {0};
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes)
      for (int l = 0; l < kLanes; l++) {
        const float e = yr[j + l] == -INFINITY ? 0.0f : exp_f(yr[j + l] - m);
        yr[j + l] = e;
        acc[l] += e;
      }
    for (; j < n; j++) {
      const float e = yr[j] == -INFINITY ? 0.0f : exp_f(yr[j] - m);
      yr[j] = e;
      acc[0] += e;
    }
    float sum = 0;
    for (int l = 0; l < kLanes; l++) sum += acc[l];
    const float inv = 1.0f / sum;
    for (j = 0; j < n; j++) yr[j] *= inv;
    for (j = n; j < S; j++) yr[j] = 0.0f;
  }
}

// softmax_rows_backward: dx = scale * y * (dy - sum(dy * y)) per row (0 where y is).
MSM_CLONES void softmax_rows_backward(const float *y, const float *dy, float *dx, int64_t r0, int64_t r1, int64_t S,
                                      float scale) {
  for (int64_t r = r0; r < r1; r++) {
    const float *yr = y + r * S, *dyr = dy + r * S;
    float *dxr = dx + r * S;
    const float d = lane_sum(S, [&](int64_t j) { return dyr[j] * yr[j]; });
    for (int64_t j = 0; j < S; j++) dxr[j] = scale * (yr[j] * (dyr[j] - d));
  }
}

// rope_row rotates one head's vector x (D, stride 1) by cos/sin c, s (D): y[i] = x[i] c[i] - x[i+h] s[i],
// y[i+h] = x[i+h] c[i+h] + x[i] s[i+h] (h = D/2, rotate_half's layout). backward: the transposed rotation.
MSM_CLONES void rope_rows(const float *x, const float *c, const float *s, float *y, int64_t h, bool backward) {
  if (!backward) {
    for (int64_t i = 0; i < h; i++) {
      y[i] = x[i] * c[i] - x[i + h] * s[i];
      y[i + h] = x[i + h] * c[i + h] + x[i] * s[i + h];
    }
  } else {
    for (int64_t i = 0; i < h; i++) {
      y[i] = x[i] * c[i] + x[i + h] * s[i + h];
      y[i + h] = x[i + h] * c[i + h] - x[i] * s[i];
    }
  }
}

// rope_apply runs rope_rows over x (B, H, T, D) with any strides of its first three axes (the last of stride 1)
// into y (B, H, T, D) contiguous, with c, s (B, T, D) contiguous.
void rope_apply(const at::Tensor &x, const at::Tensor &c, const at::Tensor &s, at::Tensor &y, bool backward) {
  const int64_t B = x.size(0), H = x.size(1), T = x.size(2), D = x.size(3);
  const int64_t sb = x.stride(0), sh = x.stride(1), st = x.stride(2);
  const float *xp = x.data_ptr<float>(), *cp = c.data_ptr<float>(), *sp = s.data_ptr<float>();
  float *yp = y.data_ptr<float>();
  at::parallel_for(0, B * H * T, std::max<int64_t>(1, kGrain / D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; r++) {
      const int64_t t = r % T, hh = (r / T) % H, b = r / (T * H);
      rope_rows(xp + b * sb + hh * sh + t * st, cp + (b * T + t) * D, sp + (b * T + t) * D, yp + r * D, D / 2,
                backward);
    }
  });
}

struct RMSNormFn : public torch::autograd::Function<RMSNormFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &x, const at::Tensor &w, double eps) {
    const int64_t C = x.size(-1), R = x.numel() / C;
    auto y = at::empty_like(x);
    auto rstd = at::empty({R}, x.options());
    const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>();
    float *yp = y.data_ptr<float>(), *sp = rstd.data_ptr<float>();
    at::parallel_for(0, R, std::max<int64_t>(1, kGrain / C), [&](int64_t r0, int64_t r1) {
      rms_forward(xp, wp, yp, sp, r0, r1, C, static_cast<float>(eps));
    });
    ctx->save_for_backward({x, w, rstd});
    return y;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &w = saved[1], &rstd = saved[2];
    const auto dy = grads[0].contiguous();
    const int64_t C = x.size(-1), R = x.numel() / C;
    const bool want_dx = ctx->needs_input_grad(0), want_dw = ctx->needs_input_grad(1);
    at::Tensor dx, dw, parts;
    const int64_t nb = (R + kRowBlock - 1) / kRowBlock;
    if (want_dx) dx = at::empty_like(x);
    if (want_dw) parts = at::empty({std::max<int64_t>(nb, 1), C}, x.options());
    const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(), *sp = rstd.data_ptr<float>(),
                *dyp = dy.data_ptr<float>();
    float *dxp = want_dx ? dx.data_ptr<float>() : nullptr, *pp = want_dw ? parts.data_ptr<float>() : nullptr;
    // One task per block of kRowBlock rows: each block's weight-gradient partial is summed in block order below.
    at::parallel_for(0, nb, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; b++)
        rms_backward(xp, wp, sp, dyp, dxp, pp != nullptr ? pp + b * C : nullptr, b * kRowBlock,
                     std::min(R, (b + 1) * kRowBlock), C);
    });
    if (want_dw) {
      dw = at::empty({C}, x.options());
      if (nb == 0) {
        dw.zero_();
      } else {
        sum_blocks(pp, nb, C, dw.data_ptr<float>());
      }
    }
    return {dx, dw, at::Tensor()};
  }
};

struct SwiGLUFn : public torch::autograd::Function<SwiGLUFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &g, const at::Tensor &u) {
    auto y = at::empty_like(g);
    const float *gp = g.data_ptr<float>(), *up = u.data_ptr<float>();
    float *yp = y.data_ptr<float>();
    at::parallel_for(0, g.numel(), kGrain, [&](int64_t i0, int64_t i1) {
      swiglu_forward(gp + i0, up + i0, yp + i0, i1 - i0);
    });
    ctx->save_for_backward({g, u});
    return y;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &g = saved[0], &u = saved[1];
    const auto dy = grads[0].contiguous();
    const bool want_g = ctx->needs_input_grad(0), want_u = ctx->needs_input_grad(1);
    at::Tensor dg, du;
    if (want_g) dg = at::empty_like(g);
    if (want_u) du = at::empty_like(u);
    const float *gp = g.data_ptr<float>(), *up = u.data_ptr<float>(), *dyp = dy.data_ptr<float>();
    float *dgp = want_g ? dg.data_ptr<float>() : nullptr, *dup = want_u ? du.data_ptr<float>() : nullptr;
    at::parallel_for(0, g.numel(), kGrain, [&](int64_t i0, int64_t i1) {
      if (dgp != nullptr && dup != nullptr) {
        swiglu_backward(gp + i0, up + i0, dyp + i0, dgp + i0, dup + i0, i1 - i0);
      } else if (dgp != nullptr) {
        swiglu_backward_g(gp + i0, up + i0, dyp + i0, dgp + i0, i1 - i0);
      } else if (dup != nullptr) {
        swiglu_backward_u(gp + i0, dyp + i0, dup + i0, i1 - i0);
      }
    });
    return {dg, du};
  }
};

// adamw_update is one AdamW step over n floats, the same float operations in the same order as the single-tensor
// path (p *= 1 - lr*wd; m = m*b1 + (1-b1)*g; v = v*b2 + (1-b2)*g*g; p += -step_size * m / (sqrt(v)/bc2_sqrt + eps))
// in one pass instead of eight.
MSM_CLONES void adamw_update(float *p, const float *g, float *m, float *v, int64_t n, float decay, float b1,
                             float one_minus_b1, float b2, float one_minus_b2, float bc2_sqrt, float eps,
                             float neg_step_size) {
  for (int64_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float mi = m[i] * b1 + one_minus_b1 * gi;
    const float vi = v[i] * b2 + one_minus_b2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay + neg_step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
  }
}

// CrossEntropyFn: the per-row loss w * (logsumexp(x) - x[t]) of logits x (N, V) against targets t (N), 0 where t
// is ignore_index; the weights w (N) are data, not trained.
struct CrossEntropyFn : public torch::autograd::Function<CrossEntropyFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &x, const at::Tensor &t, const at::Tensor &w,
                            int64_t ignore) {
    const int64_t N = x.size(0), V = x.size(1);
    auto mx = at::empty({N}, x.options()), ls = at::empty({N}, x.options()), loss = at::empty({N}, x.options());
    const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>();
    const int64_t *tp = t.data_ptr<int64_t>();
    for (int64_t r = 0; r < N; r++)
      if (tp[r] != ignore && (tp[r] < 0 || tp[r] >= V))
        throw std::invalid_argument("cross_entropy: target " + std::to_string(tp[r]) + " is out of bounds (" +
                                    std::to_string(V) + " classes)");
    float *mp = mx.data_ptr<float>(), *lp = ls.data_ptr<float>(), *op = loss.data_ptr<float>();
    at::parallel_for(0, N, std::max<int64_t>(1, kGrain / V), [&](int64_t r0, int64_t r1) {
      ce_forward(xp, tp, wp, mp, lp, op, r0, r1, V, ignore);
    });
    ctx->save_for_backward({x, t, w, mx, ls});
    ctx->saved_data["ignore"] = ignore;
    return loss;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &t = saved[1], &w = saved[2], &mx = saved[3], &ls = saved[4];
    const int64_t ignore = ctx->saved_data["ignore"].toInt();
    const auto dl = grads[0].contiguous();
    const int64_t N = x.size(0), V = x.size(1);
    auto dx = at::empty_like(x);
    const float *xp = x.data_ptr<float>(), *wp = w.data_ptr<float>(), *mp = mx.data_ptr<float>(),
                *lp = ls.data_ptr<float>(), *dlp = dl.data_ptr<float>();
    const int64_t *tp = t.data_ptr<int64_t>();
    float *dxp = dx.data_ptr<float>();
    at::parallel_for(0, N, std::max<int64_t>(1, kGrain / V), [&](int64_t r0, int64_t r1) {
      ce_backward(xp, tp, wp, mp, lp, dlp, dxp, r0, r1, V, ignore);
    });
    return {dx, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// MaskedSoftmaxFn: softmax(scale * scores) over the last axis of scores (..., T, S) where the query may see the
// key (causal and/or a bool mask (1 or B, T, S)), 0 elsewhere: attention's scaling, masking and softmax in one pass.
struct MaskedSoftmaxFn : public torch::autograd::Function<MaskedSoftmaxFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &x, const at::Tensor &mask, bool causal,
                            double scale) {
    const int64_t S = x.size(-1), T = x.size(-2), R = x.numel() / S, B = x.size(0);
    auto y = at::empty_like(x);
    const bool *mp = mask.numel() > 0 ? mask.data_ptr<bool>() : nullptr;
    const bool batched = mask.numel() > 0 && mask.size(0) > 1;
    const float *xp = x.data_ptr<float>();
    float *yp = y.data_ptr<float>();
    at::parallel_for(0, R, std::max<int64_t>(1, kGrain / S), [&](int64_t r0, int64_t r1) {
      softmax_rows(xp, mp, yp, r0, r1, T, S, R / B, batched, causal, static_cast<float>(scale));
    });
    ctx->save_for_backward({y});
    ctx->saved_data["scale"] = scale;
    return y;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    const auto y = ctx->get_saved_variables()[0];
    const auto dy = grads[0].contiguous();
    const int64_t S = y.size(-1), R = y.numel() / S;
    auto dx = at::empty_like(y);
    const float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    const float *yp = y.data_ptr<float>(), *dyp = dy.data_ptr<float>();
    float *dxp = dx.data_ptr<float>();
    at::parallel_for(0, R, std::max<int64_t>(1, kGrain / S), [&](int64_t r0, int64_t r1) {
      softmax_rows_backward(yp, dyp, dxp, r0, r1, S, scale);
    });
    return {dx, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

// RopeFn: rotary embedding of x (B, H, T, D), which may be a transposed view of (B, T, H, D) (the projections'
// layout), by cos/sin tables (B, T, D) without grad; the result is contiguous, as attention wants it.
struct RopeFn : public torch::autograd::Function<RopeFn> {
  static at::Tensor forward(AutogradContext *ctx, const at::Tensor &x, const at::Tensor &c, const at::Tensor &s) {
    auto y = at::empty(x.sizes(), x.options());
    rope_apply(x, c, s, y, false);
    ctx->save_for_backward({c, s});
    return y;
  }

  static variable_list backward(AutogradContext *ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto dy = grads[0];
    if (dy.stride(-1) != 1) dy = dy.contiguous();
    auto dx = at::empty(dy.sizes(), dy.options());
    rope_apply(dy, saved[0], saved[1], dx, true);
    return {dx, at::Tensor(), at::Tensor()};
  }
};

bool cpu_float(const at::Tensor &t) {
  return t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && t.numel() > 0;
}

}  // namespace

namespace msm {

at::Tensor rms_norm(const at::Tensor &x, const at::Tensor &w, double eps) {
  if (cpu_float(x) && cpu_float(w) && w.dim() == 1 && x.dim() >= 1 && x.size(-1) == w.size(0))
    return RMSNormFn::apply(x, w, eps);
  // HF's order: normalise in float32, cast back to x's dtype, then scale by the weight.
  auto xf = x.to(at::kFloat);
  xf = xf * at::rsqrt(xf.pow(2).mean({-1}, true) + eps);
  return w * xf.to(x.scalar_type());
}

at::Tensor cross_entropy_rows(const at::Tensor &logits, const at::Tensor &target, const at::Tensor *weight,
                              int64_t ignore_index) {
  if (!cpu_float(logits) || logits.dim() != 2 || !target.device().is_cpu() ||
      (weight != nullptr && (!cpu_float(*weight) || weight->requires_grad())))
    return at::Tensor();
  auto t = target.to(at::kLong).contiguous();
  auto w = weight != nullptr ? weight->contiguous() : at::ones({logits.size(0)}, logits.options());
  return CrossEntropyFn::apply(logits, t, w, ignore_index);
}

at::Tensor masked_softmax(const at::Tensor &scores, const at::Tensor *mask, bool causal, double scale) {
  if (!cpu_float(scores) || scores.dim() < 3) return at::Tensor();
  const int64_t B = scores.size(0), T = scores.size(-2), S = scores.size(-1);
  at::Tensor m = at::empty({0}, scores.options().dtype(at::kBool));
  if (mask != nullptr) {
    if (!mask->device().is_cpu() || mask->scalar_type() != at::kBool || mask->dim() != 3 || mask->size(1) != T ||
        mask->size(2) != S || (mask->size(0) != 1 && mask->size(0) != B))
      return at::Tensor();
    m = mask->contiguous();
  }
  return MaskedSoftmaxFn::apply(scores, m, causal, scale);
}

at::Tensor rope(const at::Tensor &x, const at::Tensor &c, const at::Tensor &s) {
  if (x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() == 4 && x.stride(3) == 1 && x.size(3) % 2 == 0 &&
      x.numel() > 0 && cpu_float(c) && cpu_float(s) && !c.requires_grad() && !s.requires_grad() && c.dim() == 3 &&
      c.sizes() == s.sizes() && c.size(0) == x.size(0) && c.size(1) == x.size(2) && c.size(2) == x.size(3))
    return RopeFn::apply(x, c, s);
  auto cu = c.unsqueeze(1), su = s.unsqueeze(1);
  const int64_t h = x.size(-1) / 2;
  return x * cu + at::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1) * su;
}

bool adamw_cpu(const at::Tensor &p, const at::Tensor &g, const at::Tensor &m, const at::Tensor &v, double decay,
               double beta1, double beta2, double bc2_sqrt, double eps, double step_size) {
  if (!cpu_float(p) || !cpu_float(g) || !cpu_float(m) || !cpu_float(v) || g.sizes() != p.sizes() ||
      m.sizes() != p.sizes() || v.sizes() != p.sizes())
    return false;
  float *pp = p.data_ptr<float>(), *mp = m.data_ptr<float>(), *vp = v.data_ptr<float>();
  const float *gp = g.data_ptr<float>();
  at::parallel_for(0, p.numel(), kGrain, [&](int64_t i0, int64_t i1) {
    adamw_update(pp + i0, gp + i0, mp + i0, vp + i0, i1 - i0, static_cast<float>(decay), static_cast<float>(beta1),
                 static_cast<float>(1 - beta1), static_cast<float>(beta2), static_cast<float>(1 - beta2),
                 static_cast<float>(bc2_sqrt), static_cast<float>(eps), static_cast<float>(-step_size));
  });
  // As ATen's in-place ops do: a graph that saved one of them now refuses to use it.
  for (auto *t : {&p, &m, &v}) t->unsafeGetTensorImpl()->bump_version();
  return true;
}

at::Tensor swiglu(const at::Tensor &g, const at::Tensor &u) {
  if (cpu_float(g) && cpu_float(u) && g.sizes() == u.sizes()) return SwiGLUFn::apply(g, u);
  return at::silu(g) * u;
}

}  // namespace msm
