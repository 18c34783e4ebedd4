/* msmtorch.h: the C ABI between Go and libtorch.
 *
 * Every function that can fail returns a heap-allocated error message (free it with msm_free_str) or NULL on
 * success; results come back through out-parameters. No C++ exception ever crosses this boundary, and no function
 * keeps thread-local state between calls: grad mode travels as a flag with each call.
 *
 * A tensor handle owns one reference to an at::Tensor; msm_free releases it. Handles are never shared between two
 * owners on the Go side.
 */
#ifndef MSMTORCH_H
#define MSMTORCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Handles are integers, not pointers, so that Go's cgo pointer checks never scan arrays of them. 0 is "none". */
typedef uintptr_t msm_tensor;
typedef uintptr_t msm_gen;
typedef uintptr_t msm_pg;

/* dtypes, in the same order as torch.DType in Go */
enum {
  MSM_F32 = 0,
  MSM_BF16 = 1,
  MSM_F16 = 2,
  MSM_I64 = 3,
  MSM_I32 = 4,
  MSM_BOOL = 5,
  MSM_U8 = 6,
  MSM_F64 = 7,
};

/* flags passed with every op */
enum {
  MSM_FLAG_GRAD = 1, /* record autograd history (ANDed with the thread's grad mode) */
};

void msm_free_str(char *s);

/* build and runtime information */
const char *msm_version(void);      /* libtorch version the shim was built against */
int msm_cuda_built(void);           /* 1 if the shim was built with CUDA support */
const char *msm_blas_core(void);     /* OpenBLAS's kernel set ("" if libtorch does not use OpenBLAS) */
int msm_cuda_device_count(void);    /* 0 on a CPU build */
char *msm_cuda_device_name(int index, char *buf, int len);
char *msm_cuda_mem_info(int index, int64_t *allocated, int64_t *peak, int64_t *reserved, int64_t *total);
char *msm_cuda_reset_peak(int index);
char *msm_cuda_synchronize(int index);
char *msm_cuda_set_device(int index); /* the current device of the calling thread and of new threads' defaults */
void msm_set_num_threads(int n);
int msm_num_threads(void);

/* tensors */
char *msm_from_data(const void *data, int dtype, const int64_t *shape, int ndim, int dev_type, int dev_index,
                    msm_tensor *out);
char *msm_empty(int dtype, const int64_t *shape, int ndim, int dev_type, int dev_index, msm_tensor *out);
char *msm_full(double value, int dtype, const int64_t *shape, int ndim, int dev_type, int dev_index, msm_tensor *out);
char *msm_arange(int64_t start, int64_t end, int dtype, int dev_type, int dev_index, msm_tensor *out);
char *msm_copy_out(msm_tensor t, void *dst, int64_t nbytes); /* contiguous CPU copy of t's data into dst */
char *msm_info(msm_tensor t, int *dtype, int *ndim, int64_t *shape /* [8] */, int *dev_type, int *dev_index,
               int *requires_grad);
char *msm_item(msm_tensor t, double *out);
void msm_free(msm_tensor t);
char *msm_shallow_clone(msm_tensor t, msm_tensor *out); /* a second handle to the same tensor */

/* random numbers */
char *msm_gen_new(uint64_t seed, int dev_type, int dev_index, msm_gen *out);
void msm_gen_free(msm_gen g);
char *msm_gen_get_state(msm_gen g, msm_tensor *out);        /* g == NULL: the default CPU generator */
char *msm_gen_set_state(msm_gen g, msm_tensor state);
char *msm_cuda_get_rng_state(int index, msm_tensor *out);
char *msm_cuda_set_rng_state(int index, msm_tensor state);
char *msm_manual_seed(uint64_t seed);                        /* all default generators */
char *msm_rand(int kind /* 0 normal, 1 uniform */, double a, double b, msm_gen g, int dtype, const int64_t *shape,
               int ndim, int dev_type, int dev_index, msm_tensor *out);
char *msm_dropout(msm_tensor x, double p, msm_gen g, int flags, msm_tensor *out);

/* the op dispatcher: op codes are listed in ops.def */
char *msm_op(int op, const msm_tensor *in, int nin, const int64_t *iargs, int niargs, const double *dargs, int ndargs,
             int flags, msm_tensor *out, int maxout, int *nout);
const char *msm_op_name(int op); /* NULL past the last op */
/* The same for the common case (at most 3 tensors, 4 integers, 2 floats, one result), with every argument passed
 * by value so that a call from Go passes no pointers: the per-op overhead is then libtorch's own. */
typedef struct {
  msm_tensor t;
  char *err;
} msm_result;
msm_result msm_op_small(int op, msm_tensor a, msm_tensor b, msm_tensor c, int nin, int64_t i0, int64_t i1, int64_t i2,
                        int64_t i3, int nia, double d0, double d1, int nda, int flags);

/* autograd */
char *msm_backward(msm_tensor loss, msm_tensor grad /* may be NULL */);
char *msm_grad(msm_tensor t, msm_tensor *out); /* *out = NULL when t has no grad */
char *msm_set_grad(msm_tensor t, msm_tensor g); /* g == NULL clears */
char *msm_set_requires_grad(msm_tensor t, int on);

/* activation checkpointing: runs the Go function registered under id now (no graph kept) and again in backward */
char *msm_checkpoint(uint64_t id, const msm_tensor *in, int nin, int flags, msm_tensor *out, int maxout, int *nout);

/* optimizer kernels */
char *msm_adamw(const msm_tensor *params, const msm_tensor *exp_avg, const msm_tensor *exp_avg_sq,
                const double *weight_decay, int n, int64_t step, double lr, double beta1, double beta2, double eps,
                int fused);
char *msm_grad_norm(const msm_tensor *params, int n, double *out);                  /* global L2 norm of grads */
char *msm_clip_grad_norm(const msm_tensor *params, int n, double max_norm, double *total);

/* distributed (c10d) */
char *msm_pg_new(const char *backend, const char *host, int port, int rank, int world, int timeout_ms, msm_pg *out);
void msm_pg_free(msm_pg pg);
char *msm_pg_allreduce(msm_pg pg, const msm_tensor *ts, int n, int op /* 0 sum, 1 avg, 2 max, 3 min */);
char *msm_pg_broadcast(msm_pg pg, const msm_tensor *ts, int n, int root);
char *msm_pg_allgather(msm_pg pg, msm_tensor in, msm_tensor *outs, int world);
char *msm_pg_barrier(msm_pg pg, int timeout_ms /* <= 0: the group's timeout */);
/* all-gather of 1-D shards of one length into the first numel elements of the whole; differentiable (backward
   reduce-scatters) when flags has MSM_FLAG_GRAD, grad mode is on and the shard requires grad */
char *msm_pg_gather_shard(msm_pg pg, msm_tensor shard, int64_t numel, int flags, msm_tensor *out);

#ifdef __cplusplus
}
#endif
#endif
