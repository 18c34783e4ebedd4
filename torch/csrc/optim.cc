// optim.cc: the AdamW update and gradient-norm clipping over a whole parameter list in one call.
#include <cmath>
#include <map>
#include <vector>

#include "common.h"

using msm::T;

extern "C" {

// msm_adamw applies one AdamW step (decoupled weight decay, bias correction) to every parameter that has a grad,
// as torch.optim.AdamW's single-tensor path does (float32 CPU tensors in one pass, kernels.cc). fused: use
// at::_fused_adamw_ on CUDA where available.
char *msm_adamw(const msm_tensor *params, const msm_tensor *exp_avg, const msm_tensor *exp_avg_sq,
                const double *weight_decay, int n, int64_t step, double lr, double beta1, double beta2, double eps,
                int fused) {
  MSM_TRY
  at::NoGradGuard ng;
#if defined(MSM_CUDA) && MSM_TORCH_AT_LEAST(2, 1)
  if (fused) {
    // Group by (device, dtype, weight decay): the fused kernel takes one decay per call.
    std::map<std::tuple<int, int, double>, std::vector<int>> groups;
    for (int i = 0; i < n; i++) {
      auto &p = T(params[i]);
      if (!p.grad().defined()) continue;
      if (!p.is_cuda()) throw std::invalid_argument("adamw: fused kernel needs CUDA parameters");
      groups[{p.device().index(), static_cast<int>(p.scalar_type()), weight_decay[i]}].push_back(i);
    }
    for (auto &kv : groups) {
      std::vector<at::Tensor> ps, gs, ms, vs, steps;
      for (int i : kv.second) {
        auto &p = T(params[i]);
        ps.push_back(p);
        gs.push_back(p.grad());
        ms.push_back(T(exp_avg[i]));
        vs.push_back(T(exp_avg_sq[i]));
        steps.push_back(at::full({}, static_cast<double>(step), p.options().dtype(at::kFloat)));
      }
      at::_fused_adamw_(ps, gs, ms, vs, {}, steps, lr, beta1, beta2, std::get<2>(kv.first), eps, false, false,
                        c10::nullopt, c10::nullopt);
    }
    return nullptr;
  }
#else
  (void)fused;
#endif
  const double bc1 = 1 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1 - std::pow(beta2, static_cast<double>(step));
  const double step_size = lr / bc1;
  const double bc2_sqrt = std::sqrt(bc2);
  for (int i = 0; i < n; i++) {
    auto &p = T(params[i]);
    auto g = p.grad();
    if (!g.defined()) continue;
    auto &m = T(exp_avg[i]);
    auto &v = T(exp_avg_sq[i]);
    if (msm::adamw_cpu(p, g, m, v, 1 - lr * weight_decay[i], beta1, beta2, bc2_sqrt, eps, step_size)) continue;
    p.mul_(1 - lr * weight_decay[i]);
    m.mul_(beta1).add_(g, 1 - beta1);
    v.mul_(beta2).addcmul_(g, g, 1 - beta2);
    auto denom = (v.sqrt() / bc2_sqrt).add_(eps);
    p.addcdiv_(m, denom, -step_size);
  }
  MSM_CATCH
}

static at::Tensor total_norm(const msm_tensor *params, int n, std::vector<at::Tensor> *grads) {
  std::vector<at::Tensor> norms;
  for (int i = 0; i < n; i++) {
    auto g = T(params[i]).grad();
    if (!g.defined()) continue;
    if (grads != nullptr) grads->push_back(g);
    norms.push_back(g.detach().norm(2).to(at::kFloat));
  }
  if (norms.empty()) return at::zeros({}, at::kFloat);
  auto dev = norms[0].device();
  for (auto &x : norms) x = x.to(dev);
  return at::stack(norms).norm(2);
}

char *msm_grad_norm(const msm_tensor *params, int n, double *out) {
  MSM_TRY
  at::NoGradGuard ng;
  *out = total_norm(params, n, nullptr).item<double>();
  MSM_CATCH
}

// msm_clip_grad_norm scales all grads so that their global L2 norm is at most max_norm, as
// torch.nn.utils.clip_grad_norm_ does, and returns the norm before clipping.
char *msm_clip_grad_norm(const msm_tensor *params, int n, double max_norm, double *total) {
  MSM_TRY
  at::NoGradGuard ng;
  std::vector<at::Tensor> grads;
  auto norm = total_norm(params, n, &grads);
  auto coef = at::clamp(max_norm / (norm + 1e-6), c10::nullopt, 1.0);
  for (auto &g : grads) g.mul_(coef.to(g.device()));
  *total = norm.item<double>();
  MSM_CATCH
}

}  // extern "C"
