// tensor.cc: tensor creation, inspection and lifetime; random numbers; build and device information.
#include <ATen/Parallel.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/cuda.h>

#include <dlfcn.h>
#include <malloc.h>

#include <mutex>
#include <vector>

#include "common.h"

#ifdef MSM_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#endif

using msm::T;
using msm::wrap;

static at::TensorOptions opts(int dtype, int dev_type, int dev_index) {
  return at::TensorOptions().dtype(msm::dtype(dtype)).device(msm::device(dev_type, dev_index));
}

static std::vector<int64_t> dims(const int64_t *shape, int ndim) {
  if (ndim < 0 || ndim > 8) throw std::invalid_argument("rank " + std::to_string(ndim) + " out of range [0, 8]");
  return std::vector<int64_t>(shape, shape + ndim);
}

// Before any thread allocates: glibc gives every thread that allocates its own malloc arena, and Go runs cgo calls
// on whichever OS thread a goroutine is on, so libtorch's tensors spread over many arenas that each keep freed
// memory (3x the peak RSS of a training run). Two arenas keep the speed with the footprint of one caller thread.
// An explicit MALLOC_ARENA_MAX wins.
//
// Large tensors should not go back to the kernel on every free: glibc serves blocks above its mmap threshold (128 KiB
// at first, raised dynamically only when such a block is freed) with mmap and unmaps them on free, and trims the
// heap above 128 KiB of free top, so each training step faults its activations in again (page faults and system
// time: 4.1 s of 7 s for 24 steps of the bench-loop model). The threshold is fixed at glibc's largest, 32 MiB, the
// heap is trimmed only above 1 GiB free and grows 256 MiB at a time: the bench-loop model's training loop goes from
// ~3,830 to ~4,250 tokens/s (system time 4.1 s -> 2.8 s), peak RSS +20 MB. MALLOC_*_ set in the environment win.
__attribute__((constructor)) static void msm_limit_arenas() {
#ifdef M_ARENA_MAX
  if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
#endif
#if defined(M_MMAP_THRESHOLD) && defined(M_TRIM_THRESHOLD) && defined(M_TOP_PAD)
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") == nullptr) mallopt(M_MMAP_THRESHOLD, 32 << 20);
  if (std::getenv("MALLOC_TRIM_THRESHOLD_") == nullptr) mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (std::getenv("MALLOC_TOP_PAD_") == nullptr) mallopt(M_TOP_PAD, 256 << 20);
#endif
}

extern "C" {

void msm_free_str(char *s) { std::free(s); }

const char *msm_version(void) { return TORCH_VERSION; }

const char *msm_blas_core(void) {
  // openblas_get_corename is OpenBLAS's own (libtorch does not wrap it): looked up, so other BLASes link too.
  auto f = reinterpret_cast<const char *(*)(void)>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  return f != nullptr ? f() : "";
}

int msm_cuda_built(void) {
#ifdef MSM_CUDA
  return 1;
#else
  return 0;
#endif
}

int msm_cuda_device_count(void) {
#ifdef MSM_CUDA
  try {
    return static_cast<int>(torch::cuda::device_count());
  } catch (...) {
    return 0;
  }
#else
  return 0;
#endif
}

char *msm_cuda_device_name(int index, char *buf, int len) {
  MSM_TRY
#ifdef MSM_CUDA
  auto *p = at::cuda::getDeviceProperties(index);
  std::snprintf(buf, len, "%s (%d SMs, %.1f GiB)", p->name, p->multiProcessorCount,
                p->totalGlobalMem / 1073741824.0);
#else
  (void)index;
  (void)buf;
  (void)len;
  msm::device(1, index);
#endif
  MSM_CATCH
}

char *msm_cuda_mem_info(int index, int64_t *allocated, int64_t *peak, int64_t *reserved, int64_t *total) {
  MSM_TRY
#ifdef MSM_CUDA
  auto s = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
  const size_t agg = 0;  // StatType::AGGREGATE, whose namespace moved between libtorch versions
  *allocated = s.allocated_bytes[agg].current;
  *peak = s.allocated_bytes[agg].peak;
  *reserved = s.reserved_bytes[agg].current;
  *total = static_cast<int64_t>(at::cuda::getDeviceProperties(index)->totalGlobalMem);
#else
  (void)allocated;
  (void)peak;
  (void)reserved;
  (void)total;
  msm::device(1, index);
#endif
  MSM_CATCH
}

char *msm_cuda_reset_peak(int index) {
  MSM_TRY
#ifdef MSM_CUDA
  c10::cuda::CUDACachingAllocator::resetPeakStats(index);
#else
  msm::device(1, index);
#endif
  MSM_CATCH
}

char *msm_cuda_synchronize(int index) {
  MSM_TRY
#ifdef MSM_CUDA
  c10::cuda::CUDAGuard g(static_cast<c10::DeviceIndex>(index));
  c10::cuda::device_synchronize();
#else
  msm::device(1, index);
#endif
  MSM_CATCH
}

char *msm_cuda_set_device(int index) {
  MSM_TRY
#ifdef MSM_CUDA
  c10::cuda::set_device(static_cast<c10::DeviceIndex>(index));
#else
  msm::device(1, index);
#endif
  MSM_CATCH
}

void msm_set_num_threads(int n) {
  if (n > 0) at::set_num_threads(n);
}

int msm_num_threads(void) { return at::get_num_threads(); }

char *msm_from_data(const void *data, int dtype, const int64_t *shape, int ndim, int dev_type, int dev_index,
                    msm_tensor *out) {
  MSM_TRY
  auto d = dims(shape, ndim);
  auto cpu = at::empty(d, at::TensorOptions().dtype(msm::dtype(dtype)));
  if (cpu.numel() > 0) std::memcpy(cpu.data_ptr(), data, cpu.numel() * cpu.element_size());
  auto dev = msm::device(dev_type, dev_index);
  *out = wrap(dev.is_cpu() ? cpu : cpu.to(dev));
  MSM_CATCH
}

char *msm_empty(int dtype, const int64_t *shape, int ndim, int dev_type, int dev_index, msm_tensor *out) {
  MSM_TRY
  *out = wrap(at::empty(dims(shape, ndim), opts(dtype, dev_type, dev_index)));
  MSM_CATCH
}

char *msm_full(double value, int dtype, const int64_t *shape, int ndim, int dev_type, int dev_index,
               msm_tensor *out) {
  MSM_TRY
  *out = wrap(at::full(dims(shape, ndim), value, opts(dtype, dev_type, dev_index)));
  MSM_CATCH
}

char *msm_arange(int64_t start, int64_t end, int dtype, int dev_type, int dev_index, msm_tensor *out) {
  MSM_TRY
  *out = wrap(at::arange(start, end, opts(dtype, dev_type, dev_index)));
  MSM_CATCH
}

char *msm_copy_out(msm_tensor h, void *dst, int64_t nbytes) {
  MSM_TRY
  auto t = T(h).detach().to(at::kCPU).contiguous();
  int64_t n = t.numel() * t.element_size();
  if (n != nbytes)
    throw std::invalid_argument("copy out: tensor has " + std::to_string(n) + " bytes, buffer " +
                                std::to_string(nbytes));
  if (n > 0) std::memcpy(dst, t.data_ptr(), n);
  MSM_CATCH
}

char *msm_info(msm_tensor h, int *dtype, int *ndim, int64_t *shape, int *dev_type, int *dev_index,
               int *requires_grad) {
  MSM_TRY
  auto &t = T(h);
  if (!t.defined()) throw std::invalid_argument("undefined tensor");
  *dtype = msm::dtype_code(t.scalar_type());
  *ndim = static_cast<int>(t.dim());
  if (*ndim > 8) throw std::invalid_argument("rank above 8 is not supported");
  for (int i = 0; i < *ndim; i++) shape[i] = t.size(i);
  *dev_type = t.device().is_cuda() ? 1 : 0;
  *dev_index = t.device().has_index() ? t.device().index() : 0;
  *requires_grad = t.requires_grad() ? 1 : 0;
  MSM_CATCH
}

char *msm_item(msm_tensor h, double *out) {
  MSM_TRY
  *out = T(h).item<double>();
  MSM_CATCH
}

void msm_free(msm_tensor h) { msm::release(h); }

char *msm_shallow_clone(msm_tensor h, msm_tensor *out) {
  MSM_TRY
  *out = wrap(T(h));
  MSM_CATCH
}

// ---- random numbers ----

char *msm_gen_new(uint64_t seed, int dev_type, int dev_index, msm_gen *out) {
  MSM_TRY
  auto dev = msm::device(dev_type, dev_index);
  at::Generator g;
  if (dev.is_cpu()) {
    g = at::make_generator<at::CPUGeneratorImpl>(seed);
  } else {
#ifdef MSM_CUDA
    g = at::make_generator<at::CUDAGeneratorImpl>(dev.index());
    g.set_current_seed(seed);
#endif
  }
  *out = reinterpret_cast<msm_gen>(new at::Generator(g));
  MSM_CATCH
}

void msm_gen_free(msm_gen g) { delete reinterpret_cast<at::Generator *>(g); }

static at::Generator gen_or_default(msm_gen g) {
  if (g != 0) return *reinterpret_cast<at::Generator *>(g);
  return at::detail::getDefaultCPUGenerator();
}

char *msm_gen_get_state(msm_gen g, msm_tensor *out) {
  MSM_TRY
  auto gen = gen_or_default(g);
  std::lock_guard<std::mutex> lock(gen.mutex());
  *out = wrap(gen.get_state());
  MSM_CATCH
}

char *msm_gen_set_state(msm_gen g, msm_tensor state) {
  MSM_TRY
  auto gen = gen_or_default(g);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(T(state));
  MSM_CATCH
}

char *msm_cuda_get_rng_state(int index, msm_tensor *out) {
  MSM_TRY
#ifdef MSM_CUDA
  auto gen = at::cuda::detail::getDefaultCUDAGenerator(index);
  std::lock_guard<std::mutex> lock(gen.mutex());
  *out = wrap(gen.get_state());
#else
  (void)out;
  msm::device(1, index);
#endif
  MSM_CATCH
}

char *msm_cuda_set_rng_state(int index, msm_tensor state) {
  MSM_TRY
#ifdef MSM_CUDA
  auto gen = at::cuda::detail::getDefaultCUDAGenerator(index);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(T(state));
#else
  (void)state;
  msm::device(1, index);
#endif
  MSM_CATCH
}

char *msm_manual_seed(uint64_t seed) {
  MSM_TRY
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
#ifdef MSM_CUDA
  for (int i = 0; i < msm_cuda_device_count(); i++) {
    auto gen = at::cuda::detail::getDefaultCUDAGenerator(i);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_current_seed(seed);
  }
#endif
  MSM_CATCH
}

char *msm_rand(int kind, double a, double b, msm_gen g, int dtype, const int64_t *shape, int ndim, int dev_type,
               int dev_index, msm_tensor *out) {
  MSM_TRY
  auto o = opts(dtype, dev_type, dev_index);
  c10::optional<at::Generator> gen;
  if (g != 0) gen = *reinterpret_cast<at::Generator *>(g);
  at::Tensor t = at::empty(dims(shape, ndim), o);
  if (kind == 0)
    t.normal_(a, b, gen);
  else
    t.uniform_(a, b, gen);
  *out = wrap(t);
  MSM_CATCH
}

char *msm_dropout(msm_tensor x, double p, msm_gen g, int flags, msm_tensor *out) {
  MSM_TRY
  msm::GradGuard guard(flags);
  auto &t = T(x);
  if (p <= 0) {
    *out = wrap(t.view_as(t));
  } else {
    c10::optional<at::Generator> gen;
    if (g != 0) gen = *reinterpret_cast<at::Generator *>(g);
    auto keep = at::empty_like(t).bernoulli_(1 - p, gen);
    *out = wrap(t * keep / (1 - p));
  }
  MSM_CATCH
}

}  // extern "C"
