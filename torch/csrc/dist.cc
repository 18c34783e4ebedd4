// dist.cc: c10d process groups (TCPStore rendezvous; Gloo on CPU, NCCL on CUDA) and the collectives the trainer
// uses. Gradient buckets are flattened into one buffer per call so that a collective moves one tensor.
#include <algorithm>
#include <chrono>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common.h"

#include <torch/csrc/autograd/custom_function.h>

#ifndef MSM_NO_DIST
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifndef MSM_NO_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#ifdef MSM_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#endif

using msm::T;

#ifndef MSM_NO_DIST
namespace {

#if MSM_TORCH_AT_LEAST(2, 0)
using PGBase = c10d::Backend;
#else
using PGBase = c10d::ProcessGroup;
#endif

struct PG {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<PGBase> pg;
  int rank = 0, world = 1;
  bool cuda = false;  // NCCL: collectives run on CUDA tensors
  std::chrono::milliseconds timeout{0};
  int64_t barriers = 0;  // barriers passed: the generation of the next one (every rank calls them in the same order)
};

PG &P(msm_pg h) {
  if (h == 0) throw std::invalid_argument("dist: nil process group");
  return *reinterpret_cast<PG *>(h);
}

void wait(c10::intrusive_ptr<c10d::Work> w) {
  if (!w->wait()) throw std::runtime_error("dist: collective did not complete");
}

// flat runs fn on one contiguous buffer holding all of ts, then copies the result back.
template <typename F>
void flat(const msm_tensor *ts, int n, F fn) {
  std::vector<at::Tensor> v;
  for (int i = 0; i < n; i++) v.push_back(T(ts[i]));
  if (n == 1 && v[0].is_contiguous()) {
    fn(v[0]);
    return;
  }
  std::vector<at::Tensor> flats;
  for (auto &t : v) flats.push_back(t.reshape({-1}));
  auto buf = at::cat(flats);
  fn(buf);
  int64_t off = 0;
  for (auto &t : v) {
    t.copy_(buf.narrow(0, off, t.numel()).view_as(t));
    off += t.numel();
  }
}

// gather_flat all-gathers every rank's 1-D shard (each of the same length) into one flat tensor, in rank order.
at::Tensor gather_flat(PG &p, const at::Tensor &shard) {
  at::NoGradGuard ng;
  std::vector<at::Tensor> src{shard.contiguous()};
  std::vector<std::vector<at::Tensor>> dst(1);
  for (int i = 0; i < p.world; i++) dst[0].push_back(at::empty_like(src[0]));
  wait(p.pg->allgather(dst, src));
  return at::cat(dst[0]);
}

// ShardGather is the autograd function of a sharded weight: forward all-gathers the shards into the first numel
// elements of the whole (flat) tensor; backward sums the whole tensor's gradient over the ranks and hands each rank
// the part of its shard. NCCL reduce-scatters; Gloo (which has no reduce-scatter) all-reduces the whole gradient
// and keeps the slice, moving world times the bytes.
struct ShardGather : public torch::autograd::Function<ShardGather> {
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, const at::Tensor &shard, int64_t h, int64_t numel) {
    ctx->saved_data["pg"] = h;
    ctx->saved_data["len"] = shard.numel();
    return gather_flat(P(static_cast<msm_pg>(h)), shard).narrow(0, 0, numel);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grad) {
    auto &p = P(static_cast<msm_pg>(ctx->saved_data["pg"].toInt()));
    const int64_t len = ctx->saved_data["len"].toInt();
    at::NoGradGuard ng;
    auto full = at::zeros({len * p.world}, grad[0].options());
    full.narrow(0, 0, grad[0].numel()).copy_(grad[0].reshape({-1}));
    at::Tensor mine;
    if (p.cuda) {
      std::vector<at::Tensor> out{at::empty({len}, full.options())};
      std::vector<std::vector<at::Tensor>> in{full.split(len)};
      wait(p.pg->reduce_scatter(out, in));
      mine = out[0];
    } else {
      std::vector<at::Tensor> v{full};
      wait(p.pg->allreduce(v));
      mine = full.narrow(0, static_cast<int64_t>(p.rank) * len, len).clone();
    }
    return {mine, at::Tensor(), at::Tensor()};
  }
};

}  // namespace
#endif

extern "C" {

char *msm_pg_gather_shard(msm_pg h, msm_tensor shard, int64_t numel, int flags, msm_tensor *out) {
  MSM_TRY
#ifdef MSM_NO_DIST
  (void)h, (void)shard, (void)numel, (void)flags, (void)out;
  throw std::runtime_error("dist: libmsmtorch was built without c10d");
#else
  auto &p = P(h);
  auto s = T(shard);
  if (s.dim() != 1) throw std::invalid_argument("dist: a shard is one-dimensional");
  if (numel < 0 || numel > s.numel() * p.world) throw std::invalid_argument("dist: shard gather: numel out of range");
  at::Tensor full;
  if ((flags & MSM_FLAG_GRAD) && at::GradMode::is_enabled() && s.requires_grad()) {
    full = ShardGather::apply(s, static_cast<int64_t>(h), numel);
  } else {
    full = gather_flat(p, s).narrow(0, 0, numel);
  }
  *out = msm::wrap(full);
#endif
  MSM_CATCH
}

char *msm_pg_new(const char *backend, const char *host, int port, int rank, int world, int timeout_ms, msm_pg *out) {
  MSM_TRY
#ifdef MSM_NO_DIST
  (void)backend, (void)host, (void)port, (void)rank, (void)world, (void)timeout_ms, (void)out;
  throw std::runtime_error("dist: libmsmtorch was built without c10d");
#else
  auto timeout = std::chrono::milliseconds(timeout_ms);
  c10d::TCPStoreOptions so;
  so.port = static_cast<uint16_t>(port);
  so.isServer = rank == 0;
  so.numWorkers = static_cast<size_t>(world);
  so.waitWorkers = true;
  so.timeout = timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), so);
  auto *p = new PG();
  p->store = store;
  p->rank = rank;
  p->world = world;
  p->timeout = timeout;
  std::string b(backend);
  try {
    if (b == "gloo") {
#ifdef MSM_NO_GLOO
      throw std::runtime_error("dist: libmsmtorch was built without Gloo (install libgloo-dev and rebuild)");
#else
      auto o = c10d::ProcessGroupGloo::Options::create();
      o->timeout = timeout;
      std::string h(host);
      if (const char *ifname = std::getenv("GLOO_SOCKET_IFNAME")) {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(ifname));
      } else if (h == "127.0.0.1" || h == "localhost") {
        o->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      } else {
        o->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      }
      p->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, o);
#endif
    } else if (b == "nccl") {
#ifdef MSM_NCCL
      auto o = c10d::ProcessGroupNCCL::Options::create();
      o->timeout = timeout;
      p->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, o);
      p->cuda = true;
#else
      throw std::runtime_error("dist: backend nccl needs libmsmtorch built against a CUDA libtorch with NCCL");
#endif
    } else {
      throw std::invalid_argument("dist: unknown backend \"" + b + "\" (want gloo or nccl)");
    }
  } catch (...) {
    delete p;
    throw;
  }
  *out = reinterpret_cast<msm_pg>(p);
#endif
  MSM_CATCH
}

void msm_pg_free(msm_pg pg) {
#ifndef MSM_NO_DIST
  delete reinterpret_cast<PG *>(pg);
#else
  (void)pg;
#endif
}

char *msm_pg_allreduce(msm_pg h, const msm_tensor *ts, int n, int op) {
  MSM_TRY
#ifdef MSM_NO_DIST
  (void)h, (void)ts, (void)n, (void)op;
  throw std::runtime_error("dist: libmsmtorch was built without c10d");
#else
  auto &p = P(h);
  at::NoGradGuard ng;
  c10d::AllreduceOptions o;
  switch (op) {
    case 0:
    case 1: o.reduceOp = c10d::ReduceOp::SUM; break;
    case 2: o.reduceOp = c10d::ReduceOp::MAX; break;
    case 3: o.reduceOp = c10d::ReduceOp::MIN; break;
    default: throw std::invalid_argument("dist: unknown reduce op " + std::to_string(op));
  }
  flat(ts, n, [&](at::Tensor &buf) {
    std::vector<at::Tensor> v{buf};
    wait(p.pg->allreduce(v, o));
    if (op == 1) buf.div_(p.world);
  });
#endif
  MSM_CATCH
}

char *msm_pg_broadcast(msm_pg h, const msm_tensor *ts, int n, int root) {
  MSM_TRY
#ifdef MSM_NO_DIST
  (void)h, (void)ts, (void)n, (void)root;
  throw std::runtime_error("dist: libmsmtorch was built without c10d");
#else
  auto &p = P(h);
  at::NoGradGuard ng;
  c10d::BroadcastOptions o;
  o.rootRank = root;
  flat(ts, n, [&](at::Tensor &buf) {
    std::vector<at::Tensor> v{buf};
    wait(p.pg->broadcast(v, o));
  });
#endif
  MSM_CATCH
}

char *msm_pg_allgather(msm_pg h, msm_tensor in, msm_tensor *outs, int world) {
  MSM_TRY
#ifdef MSM_NO_DIST
  (void)h, (void)in, (void)outs, (void)world;
  throw std::runtime_error("dist: libmsmtorch was built without c10d");
#else
  auto &p = P(h);
  at::NoGradGuard ng;
  if (world != p.world) throw std::invalid_argument("dist: all_gather needs one output per rank");
  std::vector<at::Tensor> src{T(in).contiguous()};
  std::vector<std::vector<at::Tensor>> dst(1);
  for (int i = 0; i < world; i++) dst[0].push_back(at::empty_like(src[0]));
  wait(p.pg->allgather(dst, src));
  for (int i = 0; i < world; i++) outs[i] = msm::wrap(dst[0][i]);
#endif
  MSM_CATCH
}

// msm_pg_barrier returns once every rank has entered it, and blocks the calling thread until then on every
// backend. It goes through the group's TCPStore rather than a collective: an NCCL collective's wait() only makes
// the current CUDA stream wait and returns at once, so a barrier built from one let ranks >= 1 read files that rank
// 0 was still writing, or exit while it was still saving.
//
// Each barrier is a generation g (every rank calls them in the same order). A rank sets "msm/barrier/g/<rank>" (to
// name the missing ranks on a timeout) and adds 1 to "msm/barrier/g/n"; the rank that brings n to world sets
// "msm/barrier/g/done", which every rank polls for (a TCPStore wait that times out cannot be cancelled in 1.13 and
// leaves the connection out of step). Rank 0 serves the store, so it leaves last: the others add 1 to
// "msm/barrier/g/left" once they have seen done, and rank 0 returns when all have (else a rank still polling
// would find the store gone when rank 0 exits right after a barrier, as on a stop). The last to arrive at g deletes
// the keys of g-1: every rank has left g-1 by then.
char *msm_pg_barrier(msm_pg h, int timeout_ms) {
  MSM_TRY
#ifdef MSM_NO_DIST
  (void)h, (void)timeout_ms;
  throw std::runtime_error("dist: libmsmtorch was built without c10d");
#else
  auto &p = P(h);
  auto timeout = timeout_ms > 0 ? std::chrono::milliseconds(timeout_ms) : p.timeout;
  const int64_t gen = p.barriers++;
  auto key = [](int64_t g, const std::string &k) { return "msm/barrier/" + std::to_string(g) + "/" + k; };
  const std::string done = key(gen, "done"), left = key(gen, "left");
  const auto start = std::chrono::steady_clock::now();
  // poll waits until ready() or the timeout; then the error ends with what().
  auto poll = [&](auto ready, auto what) {
    auto pause = std::chrono::milliseconds(1);
    while (!ready()) {
      if (std::chrono::steady_clock::now() - start >= timeout) {
        std::ostringstream msg;
        msg << "dist: barrier " << gen << " timed out after " << timeout.count() / 1000.0 << "s on rank " << p.rank
            << " of " << p.world << ": " << what();
        throw std::runtime_error(msg.str());
      }
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
  };
  p.store->set(key(gen, std::to_string(p.rank)), std::vector<uint8_t>{1});
  if (p.store->add(key(gen, "n"), 1) == p.world) {
    p.store->set(done, std::vector<uint8_t>{1});
    if (gen > 0) {
      for (int r = 0; r < p.world; r++) p.store->deleteKey(key(gen - 1, std::to_string(r)));
      for (const char *k : {"n", "done", "left"}) p.store->deleteKey(key(gen - 1, k));
    }
  }
  poll([&] { return p.store->check({done}); },
       [&] {
         std::ostringstream ranks;
         int n = 0;
         for (int r = 0; r < p.world; r++) {
           if (!p.store->check({key(gen, std::to_string(r))})) ranks << (n++ ? ", " : "") << r;
         }
         return std::string(n == 1 ? "rank " : "ranks ") + ranks.str() + " did not arrive";
       });
  if (p.rank != 0) {
    p.store->add(left, 1);
  } else if (p.world > 1) {
    poll([&] { return p.store->add(left, 0) == p.world - 1; },
         [&] {
           return "only " + std::to_string(p.store->add(left, 0)) + " of the other " + std::to_string(p.world - 1) +
                  " ranks saw it complete";
         });
  }
#endif
  MSM_CATCH
}

}  // extern "C"
