// common.h: helpers shared by the shim's translation units. Not part of the C ABI.
#pragma once

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/grad_mode.h>
#include <torch/version.h>

#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

#include "msmtorch.h"

#define MSM_TORCH_AT_LEAST(maj, min) \
  (TORCH_VERSION_MAJOR > (maj) || (TORCH_VERSION_MAJOR == (maj) && TORCH_VERSION_MINOR >= (min)))

namespace msm {

inline char *err(const std::string &s) {
  char *p = static_cast<char *>(std::malloc(s.size() + 1));
  if (p != nullptr) std::memcpy(p, s.c_str(), s.size() + 1);
  return p;
}

inline at::Tensor &T(msm_tensor h) {
  if (h == 0) throw std::invalid_argument("nil tensor handle");
  return *reinterpret_cast<at::Tensor *>(h);
}

inline msm_tensor wrap(at::Tensor t) { return reinterpret_cast<msm_tensor>(new at::Tensor(std::move(t))); }

inline void release(msm_tensor h) { delete reinterpret_cast<at::Tensor *>(h); }

inline at::ScalarType dtype(int d) {
  switch (d) {
    case MSM_F32: return at::kFloat;
    case MSM_BF16: return at::kBFloat16;
    case MSM_F16: return at::kHalf;
    case MSM_I64: return at::kLong;
    case MSM_I32: return at::kInt;
    case MSM_BOOL: return at::kBool;
    case MSM_U8: return at::kByte;
    case MSM_F64: return at::kDouble;
  }
  throw std::invalid_argument("unknown dtype code " + std::to_string(d));
}

inline int dtype_code(at::ScalarType s) {
  switch (s) {
    case at::kFloat: return MSM_F32;
    case at::kBFloat16: return MSM_BF16;
    case at::kHalf: return MSM_F16;
    case at::kLong: return MSM_I64;
    case at::kInt: return MSM_I32;
    case at::kBool: return MSM_BOOL;
    case at::kByte: return MSM_U8;
    case at::kDouble: return MSM_F64;
    default: break;
  }
  throw std::invalid_argument(std::string("unsupported dtype ") + c10::toString(s));
}

inline at::Device device(int type, int index) {
  if (type == 0) return at::Device(at::kCPU);
  if (type == 1) {
#ifndef MSM_CUDA
    throw std::invalid_argument(
        "device cuda:" + std::to_string(index) +
        " requested, but libmsmtorch was built without CUDA; rebuild it against a CUDA libtorch "
        "(make shim LIBTORCH=/path/to/libtorch, or a pip torch with CUDA)");
#else
    return at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(index));
#endif
  }
  throw std::invalid_argument("unknown device type " + std::to_string(type));
}

// GradGuard sets grad mode for the duration of one call: on only if the caller asked for it and the thread's mode
// is on (so ops called back from inside a custom autograd function's forward record nothing).
struct GradGuard {
  explicit GradGuard(int flags) {
    if ((flags & MSM_FLAG_GRAD) == 0 && at::GradMode::is_enabled()) g.emplace(false);
  }
  c10::optional<at::AutoGradMode> g;  // set only when the mode must change: the common call touches no state
};

// Fused kernels (kernels.cc): one pass each way on float32 contiguous CPU tensors, the composite ops otherwise.
at::Tensor rms_norm(const at::Tensor &x, const at::Tensor &w, double eps);  // w * (x / sqrt(mean(x^2) + eps))
at::Tensor swiglu(const at::Tensor &g, const at::Tensor &u);                // silu(g) * u
// The per-row weighted cross-entropy (N) of float32 CPU logits (N, V), 0 where the target is ignore_index; an
// undefined tensor where the fused kernel does not apply.
at::Tensor cross_entropy_rows(const at::Tensor &logits, const at::Tensor &target, const at::Tensor *weight,
                              int64_t ignore_index);
// softmax(scale * scores) over the keys each query (scores (B, ..., T, S), query t at key position t + S - T) may
// see, causal and/or by a bool mask (1 or B, T, S), 0 elsewhere; undefined where the fused kernel does not apply.
at::Tensor masked_softmax(const at::Tensor &scores, const at::Tensor *mask, bool causal, double scale);
// x (B, H, T, D) rotated by cos/sin (B, T, D) in the half-split layout of Llama and Qwen (rotate_half).
at::Tensor rope(const at::Tensor &x, const at::Tensor &c, const at::Tensor &s);
// One AdamW step of p (grad g, moments m and v) in one pass; false (nothing done) unless all are float32 CPU.
bool adamw_cpu(const at::Tensor &p, const at::Tensor &g, const at::Tensor &m, const at::Tensor &v, double decay,
               double beta1, double beta2, double bc2_sqrt, double eps, double step_size);

}  // namespace msm

#define MSM_TRY try {
#define MSM_CATCH                                                   \
  }                                                                 \
  catch (const c10::Error &e) {                                     \
    return msm::err(e.what_without_backtrace());                    \
  }                                                                 \
  catch (const std::exception &e) {                                 \
    return msm::err(e.what());                                      \
  }                                                                 \
  catch (...) {                                                     \
    return msm::err("unknown C++ exception");                       \
  }                                                                 \
  return nullptr;
