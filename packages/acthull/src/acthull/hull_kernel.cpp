// acthull's native hull kernel: y = sum_j c_j f_j(x) for per-layer or per-channel
// coefficients c over tabulated bases, forward in one pass and backward (grad_x and every
// <grad, f_j>) in one.
//
// One loop computes every base of the set per value (tanh once, the sigmoid once for
// sigmoid and silu), so the layer is read and written once per direction. The loop is a
// template over which of the five bases the set has: 32 variants, picked per call.
// Coefficient gradients are summed per block of kBlock values and then over blocks in
// order, so they do not depend on the number of threads. Built by acthull.native (one
// compiler call, no torch headers) and called through ctypes.
//
// Vector maths: glibc's libmvec has SIMD forms of tanh and exp; declaring them "simd"
// lets the loops vectorise without -ffast-math (which would also change NaN handling).
// target_clones compiles the loops for the targets acthull.native passes in ACT_TARGETS
// (AVX-512, AVX2 and baseline x86-64) and picks one when the library loads, so one build
// runs on any x86-64 CPU.
#include <stdint.h>

#include <utility>
#include <vector>

extern "C" {
__attribute__((simd("notinbranch"), nothrow, const)) float tanhf(float);
__attribute__((simd("notinbranch"), nothrow, const)) float expf(float);
__attribute__((simd("notinbranch"), nothrow, const)) double tanh(double);
__attribute__((simd("notinbranch"), nothrow, const)) double exp(double);
}

namespace {

constexpr int64_t kBlock = 4096;
// The bases' numbers come from acthull.fused.TABULATED, the one table of them, through
// acthull.native's compile flags; the library reports how many it was given.
enum Base : int64_t {
  kIdentity = ACT_BASE_IDENTITY,
  kRelu = ACT_BASE_RELU,
  kTanh = ACT_BASE_TANH,
  kSigmoid = ACT_BASE_SIGMOID,
  kSilu = ACT_BASE_SILU,
};
constexpr int64_t kBases = ACT_BASES;
static_assert(kBases == 5, "hull_kernel.cpp implements five bases: add the new one here");
constexpr unsigned bit(Base base) { return 1u << base; }
constexpr unsigned kSets = 1u << kBases;

inline float tanh_(float v) { return tanhf(v); }
inline double tanh_(double v) { return tanh(v); }
inline float exp_(float v) { return expf(v); }
inline double exp_(double v) { return exp(v); }

#define ACT_INLINE inline __attribute__((always_inline))

// y = sum over the set's bases of c[base] * base(x), over one block.
template <unsigned Set, typename T>
ACT_INLINE void forward_loop(const T* __restrict x, T* __restrict y, const T* c, int64_t n) {
  const T one = 1, c_id = c[kIdentity], c_relu = c[kRelu], c_tanh = c[kTanh],
          c_sigmoid = c[kSigmoid], c_silu = c[kSilu];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    T out = 0;
    if constexpr (Set & bit(kIdentity)) out += c_id * v;
    if constexpr (Set & bit(kRelu)) out += c_relu * (v < 0 ? T(0) : v);  // NaN passes
    if constexpr (Set & bit(kTanh)) out += c_tanh * tanh_(v);
    if constexpr (Set & (bit(kSigmoid) | bit(kSilu))) {
      const T s = one / (one + exp_(-v));
      if constexpr (Set & bit(kSigmoid)) out += c_sigmoid * s;
      if constexpr (Set & bit(kSilu)) out += c_silu * v * s;
    }
    y[i] = out;
  }
}

// gx = g * sum of c[base] * base'(x), and inner[base] = <g, base(x)>, over one block.
template <unsigned Set, typename T>
ACT_INLINE void backward_loop(const T* __restrict x, const T* __restrict g, T* __restrict gx,
                              const T* c, int64_t n, double* inner) {
  const T one = 1, c_id = c[kIdentity], c_relu = c[kRelu], c_tanh = c[kTanh],
          c_sigmoid = c[kSigmoid], c_silu = c[kSilu];
  T s_id = 0, s_relu = 0, s_tanh = 0, s_sigmoid = 0, s_silu = 0;
#pragma omp simd reduction(+ : s_id, s_relu, s_tanh, s_sigmoid, s_silu)
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i], gi = g[i];
    T slope = 0;
    if constexpr (Set & bit(kIdentity)) {
      slope += c_id;
      s_id += gi * v;
    }
    if constexpr (Set & bit(kRelu)) {
      // as torch's threshold_backward: slope 1 unless v <= 0 (so at NaN too); selects
      // between computed values: no branch in the loop
      const bool on = !(v <= 0);
      const T term = gi * v;
      slope += on ? c_relu : T(0);
      s_relu += on ? term : T(0);
    }
    if constexpr (Set & bit(kTanh)) {
      const T t = tanh_(v);
      slope += c_tanh * (one - t * t);
      s_tanh += gi * t;
    }
    if constexpr (Set & (bit(kSigmoid) | bit(kSilu))) {
      const T s = one / (one + exp_(-v));
      if constexpr (Set & bit(kSigmoid)) {
        slope += c_sigmoid * s * (one - s);
        s_sigmoid += gi * s;
      }
      if constexpr (Set & bit(kSilu)) {
        slope += c_silu * s * (one + v * (one - s));
        s_silu += gi * v * s;
      }
    }
    gx[i] = gi * slope;
  }
  inner[kIdentity] = s_id, inner[kRelu] = s_relu, inner[kTanh] = s_tanh;
  inner[kSigmoid] = s_sigmoid, inner[kSilu] = s_silu;
}

// The loop of the set ``set``, out of the kSets variants.
template <typename T, unsigned... Sets>
ACT_INLINE void forward_variant(unsigned set, const T* x, T* y, const T* c, int64_t n,
                                std::integer_sequence<unsigned, Sets...>) {
  ((set == Sets ? forward_loop<Sets>(x, y, c, n) : void()), ...);
}
template <typename T, unsigned... Sets>
ACT_INLINE void backward_variant(unsigned set, const T* x, const T* g, T* gx, const T* c,
                                 int64_t n, double* inner,
                                 std::integer_sequence<unsigned, Sets...>) {
  ((set == Sets ? backward_loop<Sets>(x, g, gx, c, n, inner) : void()), ...);
}

#if defined(__x86_64__) && defined(ACT_TARGETS)
#define ACT_CLONES __attribute__((target_clones(ACT_TARGETS)))
#else
#define ACT_CLONES
#endif

constexpr auto kAllSets = std::make_integer_sequence<unsigned, kSets>{};

ACT_CLONES void forward_block_f32(unsigned set, const float* x, float* y, const float* c,
                                  int64_t n) {
  forward_variant(set, x, y, c, n, kAllSets);
}
ACT_CLONES void forward_block_f64(unsigned set, const double* x, double* y, const double* c,
                                  int64_t n) {
  forward_variant(set, x, y, c, n, kAllSets);
}
ACT_CLONES void backward_block_f32(unsigned set, const float* x, const float* g, float* gx,
                                   const float* c, int64_t n, double* inner) {
  backward_variant(set, x, g, gx, c, n, inner, kAllSets);
}
ACT_CLONES void backward_block_f64(unsigned set, const double* x, const double* g,
                                   double* gx, const double* c, int64_t n, double* inner) {
  backward_variant(set, x, g, gx, c, n, inner, kAllSets);
}

// The set of bases present, and each one's summed coefficient in column ``channel`` of c
// (k x channels, row-major; a base listed twice is one term with its coefficients added).
template <typename T>
unsigned gather(const T* c, const int64_t* bases, int64_t k, int64_t channels,
                int64_t channel, T* by_base) {
  unsigned set = 0;
  for (int b = 0; b < kBases; ++b) by_base[b] = 0;
  for (int64_t j = 0; j < k; ++j) {
    set |= bit(Base(bases[j]));
    by_base[bases[j]] += c[j * channels + channel];
  }
  return set;
}

// The layer as ``rows`` runs of ``length`` values; row r takes column r % channels of the
// coefficients (per-layer coefficients: one row of every value, one column). The work
// items are each row's blocks, spread over threads; small layers stay on the calling one.
struct Layout {
  int64_t rows, channels, length;
  int64_t per_row() const { return (length + kBlock - 1) / kBlock; }
  int64_t items() const { return rows * per_row(); }
};
constexpr int64_t kParallelFrom = 8;  // items

// Where a work item's values lie, and the coefficients they take.
template <typename T>
struct Item {
  int64_t at, len;
  unsigned set;
  T by_base[kBases];
};

template <typename T>
Item<T> locate(int64_t item, Layout layout, const T* c, const int64_t* bases, int64_t k) {
  const int64_t per_row = layout.per_row(), row = item / per_row;
  const int64_t start = item % per_row * kBlock;
  Item<T> it;
  it.at = row * layout.length + start;
  it.len = layout.length - start < kBlock ? layout.length - start : kBlock;
  it.set = gather(c, bases, k, layout.channels, row % layout.channels, it.by_base);
  return it;
}

template <typename T, typename Block>
void forward_all(Block block, const T* x, T* y, const T* c, const int64_t* bases, int64_t k,
                 Layout layout, int threads) {
  const int64_t items = layout.items();
#pragma omp parallel for num_threads(threads) schedule(static) if (items >= kParallelFrom)
  for (int64_t item = 0; item < items; ++item) {
    const Item<T> it = locate(item, layout, c, bases, k);
    block(it.set, x + it.at, y + it.at, it.by_base, it.len);
  }
}

template <typename T, typename Block>
void backward_all(Block block, const T* x, const T* g, T* gx, const T* c, const int64_t* bases,
                  int64_t k, Layout layout, int threads, double* grad_c) {
  const int64_t items = layout.items();
  std::vector<double> inner(items * kBases);
#pragma omp parallel for num_threads(threads) schedule(static) if (items >= kParallelFrom)
  for (int64_t item = 0; item < items; ++item) {
    const Item<T> it = locate(item, layout, c, bases, k);
    block(it.set, x + it.at, g + it.at, gx + it.at, it.by_base, it.len, &inner[item * kBases]);
  }
  std::vector<double> sums(layout.channels * kBases);  // per channel and base
  const int64_t per_row = layout.per_row();
  for (int64_t item = 0; item < items; ++item) {  // in order: the same for any thread count
    const int64_t channel = item / per_row % layout.channels;
    for (int base = 0; base < kBases; ++base)
      sums[channel * kBases + base] += inner[item * kBases + base];
  }
  for (int64_t j = 0; j < k; ++j)
    for (int64_t channel = 0; channel < layout.channels; ++channel)
      grad_c[j * layout.channels + channel] = sums[channel * kBases + bases[j]];
}

}  // namespace

// x, y, g, gx: rows * length values; c and grad_c: k x channels.
extern "C" {

// What acthull.native checks when it loads the library: the interface and the bases.
int64_t act_hull_abi_version() { return 2; }
int64_t act_hull_bases() { return kBases; }

void act_hull_forward_f32(const float* x, float* y, const float* c, const int64_t* bases,
                          int64_t k, int64_t rows, int64_t channels, int64_t length,
                          int threads) {
  forward_all<float>(forward_block_f32, x, y, c, bases, k, {rows, channels, length}, threads);
}
void act_hull_forward_f64(const double* x, double* y, const double* c, const int64_t* bases,
                          int64_t k, int64_t rows, int64_t channels, int64_t length,
                          int threads) {
  forward_all<double>(forward_block_f64, x, y, c, bases, k, {rows, channels, length}, threads);
}
void act_hull_backward_f32(const float* x, const float* g, float* gx, const float* c,
                           const int64_t* bases, int64_t k, int64_t rows, int64_t channels,
                           int64_t length, int threads, double* grad_c) {
  backward_all<float>(backward_block_f32, x, g, gx, c, bases, k, {rows, channels, length},
                      threads, grad_c);
}
void act_hull_backward_f64(const double* x, const double* g, double* gx, const double* c,
                           const int64_t* bases, int64_t k, int64_t rows, int64_t channels,
                           int64_t length, int threads, double* grad_c) {
  backward_all<double>(backward_block_f64, x, g, gx, c, bases, k, {rows, channels, length},
                       threads, grad_c);
}

}  // extern "C"
