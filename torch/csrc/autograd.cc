// autograd.cc: backward, gradients, and activation checkpointing through a Go callback.
#include <torch/csrc/autograd/autograd.h>
#include <torch/csrc/autograd/custom_function.h>

#include <vector>

#include "common.h"

using msm::T;
using msm::wrap;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The Go side registers the function that runs a checkpointed block; see torch/checkpoint.go.
typedef char *(*msm_ckpt_fn)(uint64_t id, msm_tensor *in, int nin, msm_tensor *out, int maxout, int *nout);
static msm_ckpt_fn g_ckpt = nullptr;

extern "C" void msm_set_checkpoint_callback(msm_ckpt_fn fn) { g_ckpt = fn; }

namespace {

constexpr int kMaxOut = 16;

// call_go runs the Go block id on ins and returns its outputs. The handles passed in are borrowed by Go for the
// call; the handles Go returns become ours.
variable_list call_go(uint64_t id, const variable_list &ins) {
  if (g_ckpt == nullptr) throw std::runtime_error("checkpoint: no Go callback registered");
  std::vector<msm_tensor> hin;
  hin.reserve(ins.size());
  for (auto &t : ins) hin.push_back(msm::wrap(t));
  msm_tensor hout[kMaxOut];
  int nout = 0;
  char *e = g_ckpt(id, hin.data(), static_cast<int>(hin.size()), hout, kMaxOut, &nout);
  for (auto h : hin) msm::release(h);
  if (e != nullptr) {
    std::string msg(e);
    std::free(e);
    throw std::runtime_error(msg);
  }
  variable_list outs;
  for (int k = 0; k < nout; k++) {
    outs.push_back(T(hout[k]));
    msm::release(hout[k]);
  }
  return outs;
}

// CheckpointFn runs a block without keeping its activations; backward runs it again with grad on and
// backpropagates through the fresh graph. Parameter gradients accumulate into the leaves' .grad as in a plain
// backward (the reentrant scheme of torch.utils.checkpoint).
struct CheckpointFn : public torch::autograd::Function<CheckpointFn> {
  // inputs must reach apply as a TensorList: a std::vector would be taken for one non-tensor argument.
  static variable_list forward(AutogradContext *ctx, at::TensorList inputs, int64_t id) {
    ctx->saved_data["id"] = id;
    // The last input is a grad-requiring placeholder (see msm_checkpoint); the block never sees it.
    variable_list in(inputs.begin(), inputs.end() - 1);
    ctx->save_for_backward(in);
    return call_go(static_cast<uint64_t>(id), in);
  }

  static variable_list backward(AutogradContext *ctx, variable_list grad_out) {
    auto id = static_cast<uint64_t>(ctx->saved_data["id"].toInt());
    auto saved = ctx->get_saved_variables();
    variable_list det;
    for (auto &s : saved) {
      auto d = s.detach();
      d.requires_grad_(s.requires_grad() && at::isFloatingType(s.scalar_type()));
      det.push_back(d);
    }
    variable_list outs;
    {
      at::AutoGradMode on(true);
      outs = call_go(id, det);
    }
    variable_list o2, g2;
    for (size_t k = 0; k < outs.size() && k < grad_out.size(); k++) {
      if (outs[k].requires_grad() && grad_out[k].defined()) {
        o2.push_back(outs[k]);
        g2.push_back(grad_out[k]);
      }
    }
    if (!o2.empty()) torch::autograd::backward(o2, g2);
    variable_list grads;
    for (auto &d : det) grads.push_back(d.requires_grad() ? d.grad() : at::Tensor());
    grads.push_back(at::Tensor());  // placeholder
    grads.push_back(at::Tensor());  // id
    return grads;
  }
};

}  // namespace

extern "C" {

char *msm_backward(msm_tensor loss, msm_tensor grad) {
  MSM_TRY
  at::AutoGradMode on(true);
  at::Tensor g;
  if (grad != 0) g = T(grad);
  T(loss).backward(g);
  MSM_CATCH
}

char *msm_grad(msm_tensor t, msm_tensor *out) {
  MSM_TRY
  auto g = T(t).grad();
  *out = g.defined() ? wrap(g) : 0;
  MSM_CATCH
}

char *msm_set_grad(msm_tensor t, msm_tensor g) {
  MSM_TRY
  T(t).mutable_grad() = g == 0 ? at::Tensor() : T(g);
  MSM_CATCH
}

char *msm_set_requires_grad(msm_tensor t, int on) {
  MSM_TRY
  T(t).requires_grad_(on != 0);
  MSM_CATCH
}

char *msm_checkpoint(uint64_t id, const msm_tensor *in, int nin, int flags, msm_tensor *out, int maxout, int *nout) {
  MSM_TRY
  variable_list ins;
  for (int k = 0; k < nin; k++) ins.push_back(T(in[k]));
  variable_list outs;
  if ((flags & MSM_FLAG_GRAD) && at::GradMode::is_enabled()) {
    // A placeholder that requires grad makes the outputs part of the graph even when no input does (a first
    // layer fed by an embedding of frozen weights, with trainable LoRA weights inside the block).
    ins.push_back(at::empty({0}, at::TensorOptions().dtype(at::kFloat)).requires_grad_(true));
    outs = CheckpointFn::apply(at::TensorList(ins), static_cast<int64_t>(id));
  } else {
    at::AutoGradMode off(false);
    outs = call_go(id, ins);
  }
  if (static_cast<int>(outs.size()) > maxout) throw std::invalid_argument("checkpoint: too many outputs");
  for (size_t k = 0; k < outs.size(); k++) out[k] = wrap(outs[k]);
  *nout = static_cast<int>(outs.size());
  MSM_CATCH
}

}  // extern "C"
