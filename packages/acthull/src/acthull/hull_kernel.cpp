// acthull's native hull kernel: y = sum_j c_j f_j(x) for per-layer or per-channel
// coefficients c over tabulated bases, forward in one pass and backward (grad_x and every
// <grad, f_j>) in one. Per channel, a channel's values lie in runs (standard feature
// maps) or interleaved with the other channels' (channels-last maps, dense features).
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

#include <algorithm>
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

// Where a loop reads its coefficients: base b's for value i is of[b][i * Stride] (Stride
// 0: one for the whole loop, per layer or per channel of a run; 1: one per value, the
// channels' coefficients repeated along rows of interleaved channels).
template <typename T>
struct Coefficients {
  const T* of[kBases];
};

// y = sum over the set's bases of c[base] * base(x), over n values.
template <unsigned Set, int Stride, typename T>
ACT_INLINE void forward_loop(const T* __restrict x, T* __restrict y, Coefficients<T> c,
                             int64_t n) {
  const T one = 1;
  const T *__restrict c_id = c.of[kIdentity], *__restrict c_relu = c.of[kRelu],
                      *__restrict c_tanh = c.of[kTanh], *__restrict c_sigmoid = c.of[kSigmoid],
                      *__restrict c_silu = c.of[kSilu];
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i];
    const int64_t at = i * Stride;
    T out = 0;
    if constexpr (Set & bit(kIdentity)) out += c_id[at] * v;
    if constexpr (Set & bit(kRelu)) out += c_relu[at] * (v < 0 ? T(0) : v);  // NaN passes
    if constexpr (Set & bit(kTanh)) out += c_tanh[at] * tanh_(v);
    if constexpr (Set & (bit(kSigmoid) | bit(kSilu))) {
      const T s = one / (one + exp_(-v));
      if constexpr (Set & bit(kSigmoid)) out += c_sigmoid[at] * s;
      if constexpr (Set & bit(kSilu)) out += c_silu[at] * v * s;
    }
    y[i] = out;
  }
}

// gx = g * sum of c[base] * base'(x) over n values, and each base's <g, base(x)>: summed
// into inner[base] (Stride 0), or its terms written to inner[base * n + i] (Stride 1,
// for the caller to sum per channel).
template <unsigned Set, int Stride, typename T>
ACT_INLINE void backward_loop(const T* __restrict x, const T* __restrict g, T* __restrict gx,
                              Coefficients<T> c, int64_t n, T* __restrict inner) {
  const T one = 1;
  const T *__restrict c_id = c.of[kIdentity], *__restrict c_relu = c.of[kRelu],
                      *__restrict c_tanh = c.of[kTanh], *__restrict c_sigmoid = c.of[kSigmoid],
                      *__restrict c_silu = c.of[kSilu];
  const int64_t w = n * Stride;  // Stride 1: each base's row of terms in ``inner``
  T *__restrict t_id = inner + kIdentity * w, *__restrict t_relu = inner + kRelu * w,
                *__restrict t_tanh = inner + kTanh * w,
                *__restrict t_sigmoid = inner + kSigmoid * w,
                *__restrict t_silu = inner + kSilu * w;
  T s_id = 0, s_relu = 0, s_tanh = 0, s_sigmoid = 0, s_silu = 0;
// a term of base b's inner product: summed over the loop, or kept per value
#define ACT_TERM(b, term)     \
  if constexpr (Stride == 0)  \
    s_##b += (term);          \
  else                        \
    t_##b[i] = (term);
#pragma omp simd reduction(+ : s_id, s_relu, s_tanh, s_sigmoid, s_silu)
  for (int64_t i = 0; i < n; ++i) {
    const T v = x[i], gi = g[i];
    const int64_t at = i * Stride;
    T slope = 0;
    if constexpr (Set & bit(kIdentity)) {
      slope += c_id[at];
      ACT_TERM(id, gi * v)
    }
    if constexpr (Set & bit(kRelu)) {
      // as torch's threshold_backward: slope 1 unless v <= 0 (so at NaN too); selects
      // between computed values (the coefficient loaded first): no branch in the loop
      const bool on = !(v <= 0);
      const T term = gi * v, coefficient = c_relu[at];
      slope += on ? coefficient : T(0);
      ACT_TERM(relu, on ? term : T(0))
    }
    if constexpr (Set & bit(kTanh)) {
      const T t = tanh_(v);
      slope += c_tanh[at] * (one - t * t);
      ACT_TERM(tanh, gi * t)
    }
    if constexpr (Set & (bit(kSigmoid) | bit(kSilu))) {
      const T s = one / (one + exp_(-v));
      if constexpr (Set & bit(kSigmoid)) {
        slope += c_sigmoid[at] * s * (one - s);
        ACT_TERM(sigmoid, gi * s)
      }
      if constexpr (Set & bit(kSilu)) {
        slope += c_silu[at] * s * (one + v * (one - s));
        ACT_TERM(silu, gi * v * s)
      }
    }
    gx[i] = gi * slope;
  }
#undef ACT_TERM
  if constexpr (Stride == 0) {
    inner[kIdentity] = s_id, inner[kRelu] = s_relu, inner[kTanh] = s_tanh;
    inner[kSigmoid] = s_sigmoid, inner[kSilu] = s_silu;
  }
}

// The loop of the set ``set``, out of the kSets variants.
template <int Stride, typename T, unsigned... Sets>
ACT_INLINE void forward_variant(unsigned set, const T* x, T* y, Coefficients<T> c, int64_t n,
                                std::integer_sequence<unsigned, Sets...>) {
  ((set == Sets ? forward_loop<Sets, Stride>(x, y, c, n) : void()), ...);
}
template <int Stride, typename T, unsigned... Sets>
ACT_INLINE void backward_variant(unsigned set, const T* x, const T* g, T* gx,
                                 Coefficients<T> c, int64_t n, T* inner,
                                 std::integer_sequence<unsigned, Sets...>) {
  ((set == Sets ? backward_loop<Sets, Stride>(x, g, gx, c, n, inner) : void()), ...);
}

#if defined(__x86_64__) && defined(ACT_TARGETS)
#define ACT_CLONES __attribute__((target_clones(ACT_TARGETS)))
#else
#define ACT_CLONES
#endif

constexpr auto kAllSets = std::make_integer_sequence<unsigned, kSets>{};

// One block of n values; ``per_value``: a coefficient per value (Stride 1), else one.
template <typename T>
ACT_INLINE void forward_block(unsigned set, bool per_value, const T* x, T* y,
                              Coefficients<T> c, int64_t n) {
  if (per_value)
    forward_variant<1>(set, x, y, c, n, kAllSets);
  else
    forward_variant<0>(set, x, y, c, n, kAllSets);
}
template <typename T>
ACT_INLINE void backward_block(unsigned set, bool per_value, const T* x, const T* g, T* gx,
                               Coefficients<T> c, int64_t n, T* inner) {
  if (per_value)
    backward_variant<1>(set, x, g, gx, c, n, inner, kAllSets);
  else
    backward_variant<0>(set, x, g, gx, c, n, inner, kAllSets);
}

ACT_CLONES void forward_block_f32(unsigned set, bool per_value, const float* x, float* y,
                                  Coefficients<float> c, int64_t n) {
  forward_block(set, per_value, x, y, c, n);
}
ACT_CLONES void forward_block_f64(unsigned set, bool per_value, const double* x, double* y,
                                  Coefficients<double> c, int64_t n) {
  forward_block(set, per_value, x, y, c, n);
}
ACT_CLONES void backward_block_f32(unsigned set, bool per_value, const float* x,
                                   const float* g, float* gx, Coefficients<float> c,
                                   int64_t n, float* inner) {
  backward_block(set, per_value, x, g, gx, c, n, inner);
}
ACT_CLONES void backward_block_f64(unsigned set, bool per_value, const double* x,
                                   const double* g, double* gx, Coefficients<double> c,
                                   int64_t n, double* inner) {
  backward_block(set, per_value, x, g, gx, c, n, inner);
}

// How the kernel walks the layer. Runs: ``rows`` runs of ``length`` values, run r taking
// column r % channels of the coefficients (per-layer coefficients: one run of every
// value, one column); a work item is a block of up to kBlock values of a run. Interleaved:
// ``rows`` rows of ``length`` == channels values, value i of a row taking column i
// (channels-last feature maps, a dense layer's features); a work item is as many whole
// rows as fit in kBlock values (at least one), one loop with a coefficient per value.
// Items are spread over threads; small layers stay on the calling one.
struct Layout {
  int64_t rows, channels, length;
  bool interleaved;
  int64_t rows_per_item() const { return length < kBlock ? kBlock / length : 1; }
  int64_t per_run() const { return (length + kBlock - 1) / kBlock; }
  int64_t items() const {
    return interleaved ? (rows + rows_per_item() - 1) / rows_per_item() : rows * per_run();
  }
  // the coefficient table's columns: the channels, or an item's values (interleaved)
  int64_t columns() const { return interleaved ? rows_per_item() * length : channels; }
};
constexpr int64_t kParallelFrom = 8;  // items

// The coefficient table (kBases x layout.columns()): base b's coefficient for channel ch,
// summed over the columns of c (k x channels, row-major) that take base b (a base listed
// twice is one term), repeated along an item's rows when interleaved; and the set of
// bases present.
template <typename T>
unsigned gather(const T* c, const int64_t* bases, int64_t k, Layout layout,
                std::vector<T>& table) {
  const int64_t columns = layout.columns(), channels = layout.channels;
  unsigned set = 0;
  table.assign(kBases * columns, T(0));
  for (int64_t j = 0; j < k; ++j) {
    set |= bit(Base(bases[j]));
    for (int64_t column = 0; column < columns; ++column)
      table[bases[j] * columns + column] += c[j * channels + column % channels];
  }
  return set;
}

// Where a work item's n values lie, and the coefficients they take.
template <typename T>
struct Item {
  int64_t at, n;
  Coefficients<T> c;
};

template <typename T>
Item<T> locate(int64_t item, Layout layout, const std::vector<T>& table) {
  const int64_t columns = layout.columns();
  Item<T> it;
  if (layout.interleaved) {
    const int64_t first = item * layout.rows_per_item();
    it.at = first * layout.length;
    it.n = std::min(layout.rows_per_item(), layout.rows - first) * layout.length;
    for (int b = 0; b < kBases; ++b) it.c.of[b] = &table[b * columns];
    return it;
  }
  const int64_t per_run = layout.per_run(), run = item / per_run;
  const int64_t start = item % per_run * kBlock;
  it.at = run * layout.length + start;
  it.n = std::min(layout.length - start, kBlock);
  for (int b = 0; b < kBases; ++b)
    it.c.of[b] = &table[b * columns + run % layout.channels];
  return it;
}

template <typename T, typename Block>
void forward_all(Block block, const T* x, T* y, const T* c, const int64_t* bases, int64_t k,
                 Layout layout, int threads) {
  std::vector<T> table;
  const unsigned set = gather(c, bases, k, layout, table);
  const int64_t items = layout.items();
#pragma omp parallel for num_threads(threads) schedule(static) if (items >= kParallelFrom)
  for (int64_t item = 0; item < items; ++item) {
    const Item<T> it = locate(item, layout, table);
    block(set, layout.interleaved, x + it.at, y + it.at, it.c, it.n);
  }
}

template <typename T, typename Block>
void backward_all(Block block, const T* x, const T* g, T* gx, const T* c, const int64_t* bases,
                  int64_t k, Layout layout, int threads, double* grad_c) {
  std::vector<T> table;
  const unsigned set = gather(c, bases, k, layout, table);
  const int64_t items = layout.items(), channels = layout.channels;
  // each item's <g, base(x)> per base, and per channel when interleaved
  const int64_t width = layout.interleaved ? kBases * channels : kBases;
  std::vector<double> inner(items * width, 0.0);
#pragma omp parallel for num_threads(threads) schedule(static) if (items >= kParallelFrom)
  for (int64_t item = 0; item < items; ++item) {
    const Item<T> it = locate(item, layout, table);
    double* sums = &inner[item * width];
    if (!layout.interleaved) {
      T found[kBases];
      block(set, false, x + it.at, g + it.at, gx + it.at, it.c, it.n, found);
      for (int b = 0; b < kBases; ++b)
        if (set & bit(Base(b))) sums[b] = found[b];
      continue;
    }
    thread_local std::vector<T> terms;  // the item's terms, a row of n per base
    terms.resize(kBases * it.n);
    block(set, true, x + it.at, g + it.at, gx + it.at, it.c, it.n, terms.data());
    for (int b = 0; b < kBases; ++b) {
      if (!(set & bit(Base(b)))) continue;
      const T* of = &terms[b * it.n];
      for (int64_t at = 0; at < it.n; at += channels)  // row by row
        for (int64_t channel = 0; channel < channels; ++channel)
          sums[b * channels + channel] += of[at + channel];
    }
  }
  // per channel and base, summed over items in order: the same for any thread count
  std::vector<double> total(channels * kBases, 0.0);
  for (int64_t item = 0; item < items; ++item) {
    const double* sums = &inner[item * width];
    for (int b = 0; b < kBases; ++b) {
      if (layout.interleaved) {
        for (int64_t channel = 0; channel < channels; ++channel)
          total[channel * kBases + b] += sums[b * channels + channel];
      } else {
        total[(item / layout.per_run() % channels) * kBases + b] += sums[b];
      }
    }
  }
  for (int64_t j = 0; j < k; ++j)
    for (int64_t channel = 0; channel < channels; ++channel)
      grad_c[j * channels + channel] = total[channel * kBases + bases[j]];
}

}  // namespace

// x, y, g, gx: rows * length values; c and grad_c: k x channels; interleaved: 0 or 1 (see
// Layout).
extern "C" {

// What acthull.native checks when it loads the library: the interface and the bases.
int64_t act_hull_abi_version() { return 3; }
int64_t act_hull_bases() { return kBases; }

void act_hull_forward_f32(const float* x, float* y, const float* c, const int64_t* bases,
                          int64_t k, int64_t rows, int64_t channels, int64_t length,
                          int64_t interleaved, int threads) {
  const Layout layout{rows, channels, length, interleaved != 0};
  forward_all<float>(forward_block_f32, x, y, c, bases, k, layout, threads);
}
void act_hull_forward_f64(const double* x, double* y, const double* c, const int64_t* bases,
                          int64_t k, int64_t rows, int64_t channels, int64_t length,
                          int64_t interleaved, int threads) {
  const Layout layout{rows, channels, length, interleaved != 0};
  forward_all<double>(forward_block_f64, x, y, c, bases, k, layout, threads);
}
void act_hull_backward_f32(const float* x, const float* g, float* gx, const float* c,
                           const int64_t* bases, int64_t k, int64_t rows, int64_t channels,
                           int64_t length, int64_t interleaved, int threads,
                           double* grad_c) {
  const Layout layout{rows, channels, length, interleaved != 0};
  backward_all<float>(backward_block_f32, x, g, gx, c, bases, k, layout, threads, grad_c);
}
void act_hull_backward_f64(const double* x, const double* g, double* gx, const double* c,
                           const int64_t* bases, int64_t k, int64_t rows, int64_t channels,
                           int64_t length, int64_t interleaved, int threads,
                           double* grad_c) {
  const Layout layout{rows, channels, length, interleaved != 0};
  backward_all<double>(backward_block_f64, x, g, gx, c, bases, k, layout, threads, grad_c);
}

}  // extern "C"
