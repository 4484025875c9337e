// TensorBoard histograms of log10|g| for every layer at once (histograms.py's fast path; the
// numpy code there is the reference and the fallback). Built by radix_build.py.
//
// Input: float32 log10 values (already clamped; NaN and +-inf, from non-finite coordinates, are
// left out), layer after layer (`counts`: values per layer), and the bucket edges `limits`
// (B + 1, increasing). As numpy.histogram and TensorBoard's make_histogram: value v falls in
// bucket i with limits[i] <= v < limits[i+1] (the last bucket closed), v outside
// [limits[0], limits[B]] in none. Output per layer (and first the whole vector with
// `with_total`): counts (B) and the finite count, min, max, sum v, sum v^2 (float64; the sums in
// 16 lanes, so they equal numpy's pairwise sums up to rounding).
//
// Buckets: the float32 bits of v, ordered as v (sign flip), have 65536 top-16-bit prefixes; a
// table gives the range of buckets a prefix's values can fall in (one bucket for nearly all
// prefixes); only values of prefixes that straddle an edge are searched among the few edges.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <vector>

namespace {

inline uint32_t ordered_key(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u ^ (static_cast<uint32_t>(static_cast<int32_t>(u) >> 31) | 0x80000000u);
}

inline float key_value(uint32_t k) {
  const uint32_t u = (k >> 31) ? (k ^ 0x80000000u) : ~k;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// bucket of v: -1 below, B above (or NaN)
inline int64_t bucket_of(double v, const double* limits, int64_t B) {
  if (!(v >= limits[0]) || v > limits[B]) return v < limits[0] ? -1 : B;
  if (v == limits[B]) return B - 1;
  return std::upper_bound(limits, limits + B + 1, v) - limits - 1;
}

struct Range { int64_t lo, hi; };

// the buckets of the smallest and largest float32 of each top-16-bit key prefix
std::vector<Range> prefix_table(const double* limits, int64_t B) {
  std::vector<Range> table(1 << 16);
  for (uint32_t p = 0; p < (1u << 16); ++p) {
    const float a = key_value(p << 16), b = key_value((p << 16) | 0xFFFFu);
    if (!std::isfinite(a) || !std::isfinite(b)) { table[p] = {-1, B}; continue; }  // searched
    table[p] = {bucket_of(a, limits, B), bucket_of(b, limits, B)};
  }
  return table;
}

// the table of the last limits (TensorBoard's default buckets do not change): building it costs
// ~2 ms, more than binning a small model's gradient
std::shared_ptr<const std::vector<Range>> cached_table(const double* limits, int64_t B) {
  static std::mutex lock;
  static std::vector<double> key;
  static std::shared_ptr<const std::vector<Range>> table;
  std::lock_guard<std::mutex> guard(lock);
  if (!table || key.size() != static_cast<size_t>(B + 1) ||
      !std::equal(key.begin(), key.end(), limits)) {
    table = std::make_shared<const std::vector<Range>>(prefix_table(limits, B));
    key.assign(limits, limits + B + 1);
  }
  return table;  // shared: a caller keeps its table while another replaces the cache
}

struct Moments { double num = 0, mn = INFINITY, mx = -INFINITY, sum = 0.0, sq = 0.0; };

Moments moments(const float* v, int64_t n) {
  double s[16] = {0}, q[16] = {0};
  float mn = INFINITY, mx = -INFINITY;
  int64_t num = 0;
  for (int64_t i = 0; i < n; ++i) {
    const bool f = std::isfinite(v[i]);
    const double d = f ? v[i] : 0.0;
    s[i & 15] += d;
    q[i & 15] += d * d;
    num += f;
    mn = f ? std::min(mn, v[i]) : mn;
    mx = f ? std::max(mx, v[i]) : mx;
  }
  Moments m;
  m.num = static_cast<double>(num);
  for (int j = 0; j < 16; ++j) { m.sum += s[j]; m.sq += q[j]; }
  m.mn = mn;
  m.mx = mx;
  return m;
}

}  // namespace

std::vector<torch::Tensor> log10_histograms(torch::Tensor values, torch::Tensor counts_t,
                                            torch::Tensor limits_t, bool with_total) {
  TORCH_CHECK(values.dtype() == torch::kFloat32 && values.is_contiguous() &&
              values.device().is_cpu(), "log10_histograms: contiguous float32 CPU values");
  TORCH_CHECK(limits_t.dtype() == torch::kFloat64 && limits_t.numel() >= 2,
              "log10_histograms: float64 limits, at least 2");
  const int64_t G = counts_t.numel(), B = limits_t.numel() - 1, off = with_total ? 1 : 0;
  const int64_t* seg = counts_t.data_ptr<int64_t>();
  int64_t total = 0;
  for (int64_t g = 0; g < G; ++g) total += seg[g];
  TORCH_CHECK(total == values.numel(), "log10_histograms: counts sum to ", total, ", not ",
              values.numel());
  auto counts = torch::zeros({G + off, B}, torch::kInt64);
  auto stats = torch::zeros({G + off, 5}, torch::kFloat64);
  {
    pybind11::gil_scoped_release no_gil;
    const double* limits = limits_t.data_ptr<double>();
    const std::shared_ptr<const std::vector<Range>> held = cached_table(limits, B);
    const std::vector<Range>& table = *held;
    const float* v = values.data_ptr<float>();
    int64_t* c = counts.data_ptr<int64_t>();
    double* st = stats.data_ptr<double>();
    std::vector<int64_t> ways(4 * (B + 2));  // 4 interleaved counters per bucket (-1 .. B)
    Moments all;
    int64_t start = 0;
    for (int64_t g = 0; g < G; ++g) {
      const int64_t n = seg[g];
      std::fill(ways.begin(), ways.end(), 0);
      for (int64_t i = 0; i < n; ++i) {
        const float x = v[start + i];
        const Range r = table[ordered_key(x) >> 16];
        const int64_t b = r.lo == r.hi ? r.lo : bucket_of(x, limits, B);
        ++ways[(i & 3) * (B + 2) + b + 1];
      }
      int64_t* row = c + (g + off) * B;
      for (int64_t b = 0; b < B; ++b)
        for (int w = 0; w < 4; ++w) row[b] += ways[w * (B + 2) + b + 1];
      const Moments m = moments(v + start, n);
      double* out = st + (g + off) * 5;
      out[0] = m.num; out[1] = m.mn; out[2] = m.mx; out[3] = m.sum; out[4] = m.sq;
      all.num += m.num;
      all.mn = std::min(all.mn, m.mn); all.mx = std::max(all.mx, m.mx);
      all.sum += m.sum; all.sq += m.sq;
      if (with_total)
        for (int64_t b = 0; b < B; ++b) c[b] += row[b];
      start += n;
    }
    if (with_total) {
      st[0] = all.num; st[1] = all.mn; st[2] = all.mx; st[3] = all.sum; st[4] = all.sq;
    }
  }
  return {counts, stats};
}
