// Exact gradient statistics in linear time: order statistics by radix selection on the float32
// bits, moments in fixed-order float64 lanes. Built at first use by radix_build.py; its numpy
// twin (radix_numpy.py) gives the same values (tested); quantile_engine.py describes the
// algorithm and is the only caller.
//
// Input: float32 `parts` read as one logical array of rows * N values, each row cut into the
// G segments of `sizes` (a layer each; a segment may span parts and a part hold many segments).
// Output per row: [the whole row if with_total], then each segment ("groups"):
//   counts (3): finite F, non-finite, finite values with |x| <= threshold (key <= tkey)
//   sums (2):   sum |x| and sum x^2 over the finite values, float64
//   order (L, 2): the order statistics of ranks (lo, hi) of numpy's "linear" rule of |x|
//                 (and, if is_signed, of x) as float64; NaN when F == 0.
// Keys: |x| as its low 31 bits (ordered as |x|; +inf and NaN above every finite value), x as its
// bits with the sign bit flipped (x >= +0) or all bits flipped (x <= -0), ordered as x.
// Selection: a row of at most kSortMax values radix-sorts all its finite keys at once, carrying
// their segments (small_row); otherwise a segment of at most kSortMax values sorts its finite
// keys, and a larger one counts a
// histogram of the top 16 key bits (in the same pass as the moments), finds the buckets of the
// wanted ranks by a cumulative scan, and counts the low bits of the values in those buckets in a
// second pass: the wanted key is bucket << shift | digit. The row's histogram is the sum of its
// segments', and its second pass is shared with theirs: two reads of the data in all.
// Moments: element i of a segment (counted across parts) adds to lane i % 16 of 16 sequential
// float64 sums, combined as a fixed binary tree; the row's sums add the segments' in order.
// Compiled with -ffp-contract=off: no fused multiply-add, no reassociation.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace {

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef double v8d __attribute__((vector_size(64)));

constexpr int64_t kSortMax = 2048;  // segments up to this size sort their keys
constexpr int64_t kSortAllMax = 256;  // groups up to this size sort all keys, not per rank
constexpr int64_t kBuckets = 1 << 16;
constexpr int kWays = 4;  // interleaved histograms: value i counts in way i % 4 (runs of one
                          // bucket, e.g. exact zeros, would serialise on one counter)
constexpr int kMaxCompare = 16;  // pass 2 compares with up to this many buckets, else a table
constexpr int64_t kFlush = int64_t(1) << 26;  // values per int32 lane-counter flush
const double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Span { const float* p; int64_t n; };
typedef std::vector<Span> Spans;

struct AbsKeys {
  static constexpr int kShift = 15;
  static constexpr uint32_t kZero = 0;  // the key of +0 and -0
  static inline uint32_t key(uint32_t u) { return u & 0x7FFFFFFFu; }
#if defined(__AVX512F__)
  static inline __m512i vkey(__m512i u) { return _mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)); }
#elif defined(__AVX2__)
  static inline __m256i vkey(__m256i u) { return _mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF)); }
#endif
  static inline bool finite(uint32_t k) { return k < 0x7F800000u; }
  static inline double value(uint32_t k) { float f; std::memcpy(&f, &k, 4); return f; }
};

struct SignedKeys {
  static constexpr int kShift = 16;
  static constexpr uint32_t kZero = 0x80000000u;  // the key of +0
  static inline uint32_t key(uint32_t u) {
    return u ^ (static_cast<uint32_t>(static_cast<int32_t>(u) >> 31) | 0x80000000u);
  }
#if defined(__AVX512F__)
  static inline __m512i vkey(__m512i u) {
    return _mm512_xor_si512(u, _mm512_or_si512(_mm512_srai_epi32(u, 31),
                                                _mm512_set1_epi32(static_cast<int>(0x80000000u))));
  }
#elif defined(__AVX2__)
  static inline __m256i vkey(__m256i u) {
    return _mm256_xor_si256(u, _mm256_or_si256(_mm256_srai_epi32(u, 31),
                                                _mm256_set1_epi32(static_cast<int>(0x80000000u))));
  }
#endif
  static inline bool finite(uint32_t k) { return k - 0x00800000u < 0xFF000000u; }
  static inline double value(uint32_t k) {
    uint32_t u = (k >> 31) ? (k ^ 0x80000000u) : ~k;
    float f; std::memcpy(&f, &u, 4); return f;
  }
};

// IEEE arithmetic for the duration of a call (a caller's flush-to-zero / denormals-are-zero
// mode, e.g. torch.set_flush_denormal(True), would change the sums of subnormal values)
struct IeeeDenormals {
#if defined(__x86_64__) || defined(__i386__)
  unsigned int saved = _mm_getcsr();
  IeeeDenormals() { _mm_setcsr(saved & ~0x8040u); }
  ~IeeeDenormals() { _mm_setcsr(saved); }
#endif
};

inline uint32_t bits(const float* p) { uint32_t u; std::memcpy(&u, p, 4); return u; }

// numpy "linear": virtual index v = (F - 1) q between ranks floor(v) and floor(v) + 1 (both
// F - 1 at the top); the upper one is not needed when v is an integer (weight 0)
inline void rank_plan(int64_t F, double q, int64_t* lo, int64_t* hi) {
  const double virt = static_cast<double>(F - 1) * q;
  if (virt >= static_cast<double>(F - 1)) { *lo = *hi = F - 1; return; }
  const double low = std::floor(virt);
  *lo = static_cast<int64_t>(low);
  *hi = virt == low ? *lo : *lo + 1;
}

inline double tree16(const double* l) {
  return (((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))) +
         (((l[8] + l[9]) + (l[10] + l[11])) + ((l[12] + l[13]) + (l[14] + l[15])));
}

struct Group {
  int64_t F = 0, nonfinite = 0, small = 0;
  double sum_abs = 0.0, sum_sq = 0.0;
  uint32_t kmin = 0xFFFFFFFFu, kmax = 0;  // extremes of the finite |x| keys
};

// One pass over a segment: its moments, the extremes of its |x| keys and (hist != nullptr) the
// histogram of the top 16 bits of the |x| keys.
class MomentScan {
 public:
  MomentScan(uint32_t tkey, uint32_t* hist) : tkey_(tkey), hist_(hist) {}
  void span(const float* p, int64_t n);
  Group finish(int64_t n);

 private:
  uint32_t tkey_;
  uint32_t* hist_;
  double la_[16] = {0}, ls_[16] = {0};
  int64_t lane_ = 0, F_ = 0, small_ = 0, bucket0_ = 0;
  uint32_t kmin_ = 0xFFFFFFFFu, kmax_ = 0;
  void scalar(const float* p) {
    const uint32_t k = bits(p) & 0x7FFFFFFFu;
    const bool f = k < 0x7F800000u;
    const double a = f ? std::fabs(static_cast<double>(*p)) : 0.0;
    la_[lane_] += a;
    ls_[lane_] += a * a;
    F_ += f;
    small_ += k <= tkey_;
    if (f) { kmin_ = std::min(kmin_, k); kmax_ = std::max(kmax_, k); }
    if (hist_) ++hist_[(lane_ & (kWays - 1)) * kBuckets + (k >> AbsKeys::kShift)];
    lane_ = (lane_ + 1) & 15;
  }
};

void MomentScan::span(const float* p, int64_t n) {
  int64_t i = 0;
  for (; i < n && lane_ != 0; ++i) scalar(p + i);
  const v8f inf = {INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY, INFINITY};
  const v8u low31 = {0x7FFFFFFFu, 0x7FFFFFFFu, 0x7FFFFFFFu, 0x7FFFFFFFu,
                     0x7FFFFFFFu, 0x7FFFFFFFu, 0x7FFFFFFFu, 0x7FFFFFFFu};
  v8d a0, a1, s0, s1;
  std::memcpy(&a0, la_, 64); std::memcpy(&a1, la_ + 8, 64);
  std::memcpy(&s0, ls_, 64); std::memcpy(&s1, ls_ + 8, 64);
  v8u mn = ~v8u{0, 0, 0, 0, 0, 0, 0, 0}, mx = {0, 0, 0, 0, 0, 0, 0, 0};
  uint32_t* __restrict h = hist_;
  while (i + 16 <= n) {
    const int64_t stop = std::min(n, i + kFlush);
    v8i cf = {0, 0, 0, 0, 0, 0, 0, 0}, cs = cf;
    for (; i + 16 <= stop; i += 16) {
      __builtin_prefetch(p + i + 1024);  // the next 4 KiB page (4 KiB pages stop the prefetcher)
      v8u ux, uy;
      std::memcpy(&ux, p + i, 32); std::memcpy(&uy, p + i + 8, 32);
      ux &= low31; uy &= low31;
      if (h) {
#if defined(__AVX512F__)
        // values of bucket 0 (zeros, e.g. 60 % of a ReLU net's gradient) are only counted:
        // increments of one counter wait for each other
        const __m512i k16 = _mm512_and_si512(_mm512_loadu_si512(p + i),
                                             _mm512_set1_epi32(0x7FFFFFFF));
        const __mmask16 other = _mm512_test_epi32_mask(k16, _mm512_set1_epi32(~0x7FFF));
        alignas(64) uint32_t b[16];
        if (other == 0xFFFF) {
          _mm512_store_si512(b, _mm512_srli_epi32(k16, AbsKeys::kShift));
          for (int j = 0; j < 16; ++j) ++h[(j % kWays) * kBuckets + b[j]];
        } else {
          const int count = __builtin_popcount(other);
          _mm512_mask_compressstoreu_epi32(b, other, _mm512_srli_epi32(k16, AbsKeys::kShift));
          bucket0_ += 16 - count;
          for (int j = 0; j < count; ++j) ++h[(j % kWays) * kBuckets + b[j]];
        }
#else
        const v8u bx = ux >> AbsKeys::kShift, by = uy >> AbsKeys::kShift;
        for (int j = 0; j < 8; ++j) ++h[(j % kWays) * kBuckets + bx[j]];
        for (int j = 0; j < 8; ++j) ++h[(j % kWays) * kBuckets + by[j]];
#endif
      }
      v8f x = (v8f)ux, y = (v8f)uy;
      const v8i fx = x < inf, fy = y < inf;  // NaN compares false
      const v8u kx = ux & (v8u)fx, ky = uy & (v8u)fy;  // non-finite -> 0 (for the max)
      const v8u nx = ux | ~(v8u)fx, ny = uy | ~(v8u)fy;  // non-finite -> ~0 (for the min)
      mn = nx < mn ? nx : mn; mn = ny < mn ? ny : mn;
      mx = kx > mx ? kx : mx; mx = ky > mx ? ky : mx;
      x = (v8f)kx; y = (v8f)ky;
      cf -= fx; cf -= fy;
      cs -= (v8i)(ux <= tkey_); cs -= (v8i)(uy <= tkey_);
      const v8d dx = __builtin_convertvector(x, v8d), dy = __builtin_convertvector(y, v8d);
      a0 += dx; s0 += dx * dx; a1 += dy; s1 += dy * dy;
    }
    for (int j = 0; j < 8; ++j) { F_ += cf[j]; small_ += cs[j]; }
  }
  std::memcpy(la_, &a0, 64); std::memcpy(la_ + 8, &a1, 64);
  std::memcpy(ls_, &s0, 64); std::memcpy(ls_ + 8, &s1, 64);
  for (int j = 0; j < 8; ++j) {  // (only read when the segment has a finite value)
    kmin_ = std::min(kmin_, static_cast<uint32_t>(mn[j]));
    kmax_ = std::max(kmax_, static_cast<uint32_t>(mx[j]));
  }
  for (; i < n; ++i) scalar(p + i);
  if (hist_) hist_[0] += static_cast<uint32_t>(bucket0_);
  bucket0_ = 0;
}

Group MomentScan::finish(int64_t n) {
  Group g;
  g.F = F_; g.nonfinite = n - F_; g.small = small_;
  g.sum_abs = tree16(la_); g.sum_sq = tree16(ls_);
  if (F_ > 0) { g.kmin = kmin_; g.kmax = kmax_; }
  return g;
}

// The ranks a group needs from its histogram: ascending, distinct, without 0 and F - 1
// (the extremes, known from the first pass).
std::vector<int64_t> inner_ranks(int64_t F, const std::vector<double>& levels) {
  std::vector<int64_t> out;
  for (double q : levels) {
    int64_t lo, hi;
    rank_plan(F, q, &lo, &hi);
    for (int64_t r : {lo, hi}) if (r > 0 && r < F - 1) out.push_back(r);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// rank r lies in bucket b above `below` finite keys of lower buckets; `slot`: b's digit counts
struct Wanted { int64_t rank; uint32_t bucket; int64_t below; int slot; };

struct RadixGroup {
  int64_t F = 0;
  uint32_t kmin = 0xFFFFFFFFu, kmax = 0;
  std::vector<int64_t> ranks;
  std::vector<Wanted> wanted;
  std::vector<uint32_t> found;  // key of each wanted rank
};

template <class K>
class Selector {
 public:
  explicit Selector(const std::vector<double>& levels) : levels_(levels) {}
  // the bucket tables (~1.8 MB, zeroed) only once a group is large enough to need them: a
  // small model's rows (every group <= kSortMax) only sort, and zeroing them cost ~0.3 ms a call
  void ensure_tables() {
    if (!hist_.empty()) return;
    hist_.assign(kWays * kBuckets, 0);
    total_hist_.assign(kBuckets, 0);
    table_.assign(kBuckets, 0);
  }
  // order statistics of every group of one row (`order`: (groups, L, 2)); for AbsKeys the
  // first pass also fills `groups` (moments), which the signed pass then reads
  void row(const std::vector<Spans>& segs, const std::vector<int64_t>& sizes,
           std::vector<Group>* groups, bool with_total, uint32_t tkey, double* order);

 private:
  static constexpr int64_t kDigits = int64_t(1) << K::kShift;
  std::vector<double> levels_;
  std::vector<uint32_t> hist_;        // one segment's bucket counts, kWays ways; way 0 sums
  std::vector<uint64_t> total_hist_;  // the row's bucket counts
  std::vector<uint32_t> table_;       // bucket -> (segment slot + 1) | (row slot + 1) << 16
  std::vector<std::vector<uint32_t>> seg_sub_, row_sub_;  // digit counts per slot
  std::vector<uint32_t> scratch_;
  std::vector<int64_t> ranks_;
  // a small row (N <= kSortMax): all its finite keys with their segment, sorted together
  std::vector<uint32_t> keys_, keys_tmp_, seg_keys_;
  std::vector<uint32_t> segid_, segid_tmp_;
  std::vector<int64_t> seg_start_;
  void emit_sorted(const uint32_t* keys, int64_t F, double* out) const;
  void small_row(const std::vector<Spans>& segs, int64_t G, bool with_total, double* order);

  void first_pass(const Spans& spans, int64_t n, Group* g, uint32_t tkey, bool with_hist);
  void merge_ways(const Group& g, int64_t n);
  void sorted(const Spans& spans, int64_t F, double* out, bool add_to_total);
  void plan(RadixGroup* g, std::vector<std::vector<uint32_t>>* subs, bool from_total);
  void mark(const RadixGroup& g, bool row, bool on);
  void count_digits(const Spans& spans, const std::vector<uint32_t>& marked);
  void resolve(RadixGroup* g, std::vector<std::vector<uint32_t>>* subs);
  void emit(const RadixGroup& g, double* out) const;
};

template <>
void Selector<AbsKeys>::first_pass(const Spans& spans, int64_t n, Group* g, uint32_t tkey,
                                   bool with_hist) {
  MomentScan scan(tkey, with_hist ? hist_.data() : nullptr);
  for (const Span& s : spans) scan.span(s.p, s.n);
  *g = scan.finish(n);
}

template <>
void Selector<SignedKeys>::first_pass(const Spans& spans, int64_t n, Group* g, uint32_t,
                                      bool with_hist) {
  uint32_t kmin = 0xFFFFFFFFu, kmax = 0;
  uint32_t* __restrict h = hist_.data();
  for (const Span& s : spans) {
    for (int64_t i = 0; i < s.n; ++i) {
      const uint32_t k = SignedKeys::key(bits(s.p + i));
      const bool f = SignedKeys::finite(k);
      kmin = std::min(kmin, f ? k : 0xFFFFFFFFu);
      kmax = std::max(kmax, f ? k : 0u);
      if (with_hist) ++h[(i & (kWays - 1)) * kBuckets + (k >> SignedKeys::kShift)];
    }
  }
  g->kmin = kmin;
  g->kmax = kmax;
}

// way 0 := the sum of the ways; the other ways cleared (finite buckets, or all)
template <class K>
void Selector<K>::merge_ways(const Group& g, int64_t n) {
  if (g.F == n && g.F > 0) {
    for (uint32_t b = g.kmin >> K::kShift; b <= (g.kmax >> K::kShift); ++b)
      for (int w = 1; w < kWays; ++w) {
        hist_[b] += hist_[w * kBuckets + b];
        hist_[w * kBuckets + b] = 0;
      }
  } else if (g.F < n) {  // non-finite buckets too: sum everything
    for (int w = 1; w < kWays; ++w)
      for (int64_t b = 0; b < kBuckets; ++b) {
        hist_[b] += hist_[w * kBuckets + b];
        hist_[w * kBuckets + b] = 0;
      }
  }
}

template <class K>
void Selector<K>::sorted(const Spans& spans, int64_t F, double* out, bool add_to_total) {
  scratch_.clear();
  for (const Span& s : spans)
    for (int64_t i = 0; i < s.n; ++i) {
      const uint32_t k = K::key(bits(s.p + i));
      if (K::finite(k)) {
        scratch_.push_back(k);
        if (add_to_total) ++total_hist_[k >> K::kShift];
      }
    }
  // select the needed ranks (ascending; each nth_element leaves the larger keys to its right)
  ranks_.clear();
  for (size_t l = 0; l < levels_.size() && F > 0; ++l) {
    int64_t lo, hi;
    rank_plan(F, levels_[l], &lo, &hi);
    ranks_.push_back(lo);
    ranks_.push_back(hi);
  }
  std::sort(ranks_.begin(), ranks_.end());
  ranks_.erase(std::unique(ranks_.begin(), ranks_.end()), ranks_.end());
  if (F <= kSortAllMax) {  // a small group: one sort beats a selection per rank
    std::sort(scratch_.begin(), scratch_.end());
  } else {
    auto first = scratch_.begin();
    for (int64_t r : ranks_) {
      std::nth_element(first, scratch_.begin() + r, scratch_.end());
      first = scratch_.begin() + r + 1;
    }
  }
  emit_sorted(scratch_.data(), F, out);
}

// the level pairs from keys whose wanted ranks hold their order statistics
template <class K>
void Selector<K>::emit_sorted(const uint32_t* keys, int64_t F, double* out) const {
  for (size_t l = 0; l < levels_.size(); ++l) {
    if (F == 0) { out[2 * l] = out[2 * l + 1] = kNaN; continue; }
    int64_t lo, hi;
    rank_plan(F, levels_[l], &lo, &hi);
    out[2 * l] = K::value(keys[lo]);
    out[2 * l + 1] = K::value(keys[hi]);
  }
}

// The order statistics of a small row (N <= kSortMax) and of each of its segments: one LSD
// radix sort (digits of 11, 11 and 10 bits, stable, the three histograms counted in one read; a
// digit all keys share is skipped) of the row's finite keys
// carrying their segment, then one pass that deals the sorted keys out to their segments, which
// leaves every segment sorted too. Branch-free: measured 4x faster than sorting each segment
// with std::sort and merging the runs for the paper nets' rows (1,130 values in 10 segments).
template <class K>
void Selector<K>::small_row(const std::vector<Spans>& segs, int64_t G, bool with_total,
                            double* order) {
  const int64_t L = levels_.size();
  const int off = with_total ? 1 : 0;
  keys_.clear();
  segid_.clear();
  seg_start_.assign(G + 1, 0);
  for (int64_t s = 0; s < G; ++s) {
    for (const Span& sp : segs[s])
      for (int64_t i = 0; i < sp.n; ++i) {
        const uint32_t k = K::key(bits(sp.p + i));
        if (K::finite(k)) { keys_.push_back(k); segid_.push_back(static_cast<uint32_t>(s)); }
      }
    seg_start_[s + 1] = static_cast<int64_t>(keys_.size());
  }
  const size_t F = keys_.size();
  keys_tmp_.resize(F);
  segid_tmp_.resize(F);
  uint32_t *a = keys_.data(), *b = keys_tmp_.data();
  uint32_t *sa = segid_.data(), *sb = segid_tmp_.data();
  // three digits of 11, 11 and 10 bits (2048 buckets: three scatter passes instead of four)
  uint32_t counts[3][2048] = {{0}};  // 24 KiB on the stack
  for (size_t i = 0; i < F; ++i) {
    const uint32_t k = a[i];
    ++counts[0][k & 2047u]; ++counts[1][(k >> 11) & 2047u]; ++counts[2][k >> 22];
  }
  for (int pass = 0; pass < 3 && F > 1; ++pass) {
    const int shift = 11 * pass;
    const int buckets = pass < 2 ? 2048 : 1024;
    uint32_t* count = counts[pass];
    if (count[(a[0] >> shift) & 2047u] == F) continue;  // one digit for all: order unchanged
    uint32_t sum = 0;
    for (int d = 0; d < buckets; ++d) { const uint32_t c = count[d]; count[d] = sum; sum += c; }
    for (size_t i = 0; i < F; ++i) {
      const uint32_t pos = count[(a[i] >> shift) & 2047u]++;
      b[pos] = a[i];
      sb[pos] = sa[i];
    }
    std::swap(a, b);
    std::swap(sa, sb);
  }
  if (with_total) emit_sorted(a, static_cast<int64_t>(F), order);
  seg_keys_.resize(F);
  std::vector<int64_t> next(seg_start_.begin(), seg_start_.end() - 1);
  for (size_t i = 0; i < F; ++i) seg_keys_[next[sa[i]]++] = a[i];
  for (int64_t s = 0; s < G; ++s)
    emit_sorted(seg_keys_.data() + seg_start_[s], seg_start_[s + 1] - seg_start_[s],
                order + (s + off) * L * 2);
}

// each rank's bucket by a cumulative scan of the finite buckets; one digit-count slot per
// distinct bucket
template <class K>
void Selector<K>::plan(RadixGroup* g, std::vector<std::vector<uint32_t>>* subs, bool from_total) {
  g->wanted.clear();
  if (g->F == 0 || g->ranks.empty()) return;
  const uint32_t b0 = g->kmin >> K::kShift, b1 = g->kmax >> K::kShift;
  int64_t below = 0;
  size_t r = 0;
  int slots = 0;
  for (uint32_t b = b0; b <= b1 && r < g->ranks.size(); ++b) {
    const int64_t c = from_total ? static_cast<int64_t>(total_hist_[b]) : hist_[b];
    bool used = false;
    while (r < g->ranks.size() && g->ranks[r] < below + c) {
      if (!used) {
        used = true;
        if (static_cast<int>(subs->size()) <= slots) subs->emplace_back(kDigits, 0);
        ++slots;
      }
      g->wanted.push_back({g->ranks[r], b, below, slots - 1});
      ++r;
    }
    below += c;
  }
}

template <class K>
void Selector<K>::mark(const RadixGroup& g, bool row, bool on) {
  const uint32_t shift = row ? 16 : 0;
  for (const Wanted& w : g.wanted) {
    if (on) table_[w.bucket] |= uint32_t(w.slot + 1) << shift;
    else table_[w.bucket] &= ~(uint32_t(0xFFFFu) << shift);
  }
}

// pass 2: digit counts of the values in marked buckets. With at most kMaxCompare marked
// buckets, vector compares find the (rare) values in them; else a table lookup per value.
template <class K>
void Selector<K>::count_digits(const Spans& spans, const std::vector<uint32_t>& marked) {
  const uint32_t* __restrict t = table_.data();
  const uint32_t mask = static_cast<uint32_t>(kDigits - 1);
  auto count = [&](uint32_t k) {
    const uint32_t e = t[k >> K::kShift];
    if (e & 0xFFFFu) ++seg_sub_[(e & 0xFFFFu) - 1][k & mask];
    if (e >> 16) ++row_sub_[(e >> 16) - 1][k & mask];
  };
  const int W = static_cast<int>(marked.size());
  int64_t zeros = 0;
  for (const Span& s : spans) {
    int64_t i = 0;
#if defined(__AVX512F__)
    if (W <= kMaxCompare) {
      __m512i w[kMaxCompare];
      for (int j = 0; j < W; ++j) w[j] = _mm512_set1_epi32(static_cast<int>(marked[j]));
      alignas(64) uint32_t keys[16];
      for (; i + 16 <= s.n; i += 16) {
        __builtin_prefetch(s.p + i + 1024);
        const __m512i k = K::vkey(_mm512_loadu_si512(s.p + i));
        const __m512i b = _mm512_srli_epi32(k, K::kShift);
        __mmask16 m = 0;
        for (int j = 0; j < W; ++j) m |= _mm512_cmpeq_epi32_mask(b, w[j]);
        const __mmask16 zero = m & _mm512_cmpeq_epi32_mask(k, _mm512_set1_epi32(K::kZero));
        zeros += __builtin_popcount(zero);  // the zero key, counted at the end
        m &= ~zero;
        if (m) _mm512_store_si512(keys, k);
        while (m) {
          count(keys[__builtin_ctz(m)]);
          m &= m - 1;
        }
      }
    }
#elif defined(__AVX2__)
    if (W <= kMaxCompare) {
      __m256i w[kMaxCompare];
      for (int j = 0; j < W; ++j) w[j] = _mm256_set1_epi32(static_cast<int>(marked[j]));
      alignas(32) uint32_t keys[8];
      for (; i + 8 <= s.n; i += 8) {
        if ((i & 15) == 0) __builtin_prefetch(s.p + i + 1024);
        const __m256i k = K::vkey(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(s.p + i)));
        const __m256i b = _mm256_srli_epi32(k, K::kShift);
        __m256i any = _mm256_setzero_si256();
        for (int j = 0; j < W; ++j) any = _mm256_or_si256(any, _mm256_cmpeq_epi32(b, w[j]));
        int m = _mm256_movemask_ps(_mm256_castsi256_ps(any));
        if (m) _mm256_store_si256(reinterpret_cast<__m256i*>(keys), k);
        while (m) {
          count(keys[__builtin_ctz(m)]);
          m &= m - 1;
        }
      }
    }
#endif
    for (; i < s.n; ++i) {
      const uint32_t k = K::key(bits(s.p + i));
      if (t[k >> K::kShift]) count(k);
    }
  }
  const uint32_t e = t[K::kZero >> K::kShift];  // zeros only counted where marked
  if (zeros && (e & 0xFFFFu)) seg_sub_[(e & 0xFFFFu) - 1][K::kZero & mask] += zeros;
  if (zeros && (e >> 16)) row_sub_[(e >> 16) - 1][K::kZero & mask] += zeros;
}

template <class K>
void Selector<K>::resolve(RadixGroup* g, std::vector<std::vector<uint32_t>>* subs) {
  g->found.assign(g->wanted.size(), 0);
  size_t i = 0;
  while (i < g->wanted.size()) {  // the ranks of a slot are consecutive and ascending
    const int slot = g->wanted[i].slot;
    std::vector<uint32_t>& sub = (*subs)[slot];
    int64_t below = g->wanted[i].below, digit = 0;
    for (; i < g->wanted.size() && g->wanted[i].slot == slot; ++i) {
      while (below + sub[digit] <= g->wanted[i].rank) below += sub[digit++];
      g->found[i] = (g->wanted[i].bucket << K::kShift) | static_cast<uint32_t>(digit);
    }
    std::fill(sub.begin(), sub.end(), 0u);
  }
}

template <class K>
void Selector<K>::emit(const RadixGroup& g, double* out) const {
  for (size_t l = 0; l < levels_.size(); ++l) {
    if (g.F == 0) { out[2 * l] = out[2 * l + 1] = kNaN; continue; }
    int64_t rr[2];
    rank_plan(g.F, levels_[l], &rr[0], &rr[1]);
    for (int s = 0; s < 2; ++s) {
      uint32_t k;
      if (rr[s] == 0) k = g.kmin;
      else if (rr[s] == g.F - 1) k = g.kmax;
      else k = g.found[std::lower_bound(g.ranks.begin(), g.ranks.end(), rr[s]) - g.ranks.begin()];
      out[2 * l + s] = K::value(k);
    }
  }
}

template <class K>
void Selector<K>::row(const std::vector<Spans>& segs, const std::vector<int64_t>& sizes,
                      std::vector<Group>* groups, bool with_total, uint32_t tkey,
                      double* order) {
  const int64_t G = static_cast<int64_t>(sizes.size()), L = levels_.size();
  const int off = with_total ? 1 : 0;
  int64_t N = 0;
  for (int64_t s : sizes) N += s;
  const bool total_radix = with_total && N > kSortMax;
  bool radix_any = total_radix;
  for (int64_t s : sizes) radix_any = radix_any || s > kSortMax;
  if (radix_any) ensure_tables();
  if (!radix_any && N <= kSortMax) {  // a small row: moments, then one sort of all its keys
    if (!std::is_same<K, AbsKeys>::value) {  // the signed pass: the |x| pass did the moments
      small_row(segs, G, with_total, order);
      return;
    }
    for (int64_t s = 0; s < G; ++s) first_pass(segs[s], sizes[s], &(*groups)[s + off], tkey, false);
    if (with_total) {
      Group& t = (*groups)[0];
      t = Group();
      for (int64_t s = 0; s < G; ++s) {
        const Group& g = (*groups)[s + 1];
        t.F += g.F; t.nonfinite += g.nonfinite; t.small += g.small;
        t.sum_abs += g.sum_abs; t.sum_sq += g.sum_sq;
      }
    }
    small_row(segs, G, with_total, order);
    return;
  }
  std::vector<RadixGroup> rg(G);
  RadixGroup total;
  total.F = (*groups)[0].F;
  for (int64_t s = 0; s < G; ++s) {  // pass 1
    Group& g = (*groups)[s + off];
    const bool radix = sizes[s] > kSortMax;
    first_pass(segs[s], sizes[s], &g, tkey, radix);
    rg[s].F = g.F; rg[s].kmin = g.kmin; rg[s].kmax = g.kmax;
    if (!radix) {
      sorted(segs[s], g.F, order + (s + off) * L * 2, total_radix);
    } else {
      merge_ways(g, sizes[s]);
      rg[s].ranks = inner_ranks(g.F, levels_);
      plan(&rg[s], &seg_sub_, false);
      const uint32_t b0 = g.kmin >> K::kShift, b1 = g.kmax >> K::kShift;
      for (uint32_t b = b0; total_radix && g.F > 0 && b <= b1; ++b) total_hist_[b] += hist_[b];
      if (g.F == sizes[s]) {  // only finite buckets were touched
        for (uint32_t b = b0; g.F > 0 && b <= b1; ++b) hist_[b] = 0;
      } else {
        std::fill(hist_.begin(), hist_.begin() + kBuckets, 0u);
      }
    }
    if (g.F > 0) { total.kmin = std::min(total.kmin, g.kmin); total.kmax = std::max(total.kmax, g.kmax); }
  }
  if (with_total) {
    Group& t = (*groups)[0];
    t.F = t.nonfinite = t.small = 0;
    t.sum_abs = t.sum_sq = 0.0;
    for (int64_t s = 0; s < G; ++s) {
      const Group& g = (*groups)[s + 1];
      t.F += g.F; t.nonfinite += g.nonfinite; t.small += g.small;
      t.sum_abs += g.sum_abs; t.sum_sq += g.sum_sq;
    }
    total.F = t.F;
    // here N > kSortMax (smaller rows took small_row): the total is selected by radix
    total.ranks = inner_ranks(t.F, levels_);
    plan(&total, &row_sub_, true);
    if (total.F > 0)
      std::fill(total_hist_.begin() + (total.kmin >> K::kShift),
                total_hist_.begin() + (total.kmax >> K::kShift) + 1, uint64_t(0));
    mark(total, true, true);
  }
  std::vector<uint32_t> marked;
  for (int64_t s = 0; s < G; ++s) {  // pass 2: digits of the wanted buckets
    const bool own = !rg[s].wanted.empty();
    if (own) mark(rg[s], false, true);
    if (own || !total.wanted.empty()) {
      marked.clear();
      for (const RadixGroup* g : {&rg[s], &total})
        for (const Wanted& w : g->wanted) marked.push_back(w.bucket);
      std::sort(marked.begin(), marked.end());
      marked.erase(std::unique(marked.begin(), marked.end()), marked.end());
      count_digits(segs[s], marked);
    }
    if (own) {
      resolve(&rg[s], &seg_sub_);
      mark(rg[s], false, false);
    }
    if (sizes[s] > kSortMax) emit(rg[s], order + (s + off) * L * 2);
  }
  if (total_radix) {
    resolve(&total, &row_sub_);
    mark(total, true, false);
    emit(total, order);
  }
}

}  // namespace

// parts: float32 CPU tensors (contiguous, any shape) read one after another as rows * N values;
// sizes: (G,) int64, the segments of a row; levels: (L,) float64; tkey: the |x| key of the
// largest float32 at most the threshold. Returns [counts (R, 3) int64, sums (R, 2) float64,
// abs order (R, L, 2) float64, signed order (R or 0, L, 2) float64], R = rows * (G + with_total).
std::vector<torch::Tensor> radix_table(std::vector<torch::Tensor> parts, torch::Tensor sizes_t,
                                       int64_t rows, torch::Tensor levels_t, int64_t tkey,
                                       bool with_total, bool is_signed) {
  std::vector<Span> pieces;
  int64_t M = 0;
  for (const torch::Tensor& t : parts) {
    TORCH_CHECK(t.dtype() == torch::kFloat32 && t.is_contiguous() && t.device().is_cpu(),
                "radix_table: every part must be a contiguous float32 CPU tensor");
    if (t.numel()) pieces.push_back({t.data_ptr<float>(), t.numel()});
    M += t.numel();
  }
  TORCH_CHECK(sizes_t.dtype() == torch::kInt64 && levels_t.dtype() == torch::kFloat64,
              "radix_table: sizes int64, levels float64");
  std::vector<int64_t> sizes(sizes_t.data_ptr<int64_t>(),
                             sizes_t.data_ptr<int64_t>() + sizes_t.numel());
  std::vector<double> levels(levels_t.data_ptr<double>(),
                             levels_t.data_ptr<double>() + levels_t.numel());
  int64_t N = 0;
  for (int64_t s : sizes) {
    TORCH_CHECK(s >= 0 && s < (int64_t(1) << 32), "radix_table: segment sizes in [0, 2^32)");
    N += s;
  }
  TORCH_CHECK(M == rows * N, "radix_table: ", M, " values, not rows * N = ", rows * N);
  const int64_t G = sizes.size(), per_row = G + (with_total ? 1 : 0);
  const int64_t R = rows * per_row, L = levels.size();
  auto counts = torch::zeros({R, 3}, torch::kInt64);
  auto sums = torch::zeros({R, 2}, torch::kFloat64);
  auto abs_order = torch::empty({R, L, 2}, torch::kFloat64);
  auto signed_order = torch::empty({is_signed ? R : 0, L, 2}, torch::kFloat64);
  {
    pybind11::gil_scoped_release no_gil;
    IeeeDenormals ieee;
    Selector<AbsKeys> abs_sel(levels);
    Selector<SignedKeys> signed_sel(levels);
    size_t piece = 0;
    int64_t used = 0;  // values of pieces[piece] already assigned
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<Spans> segs(G);
      for (int64_t s = 0; s < G; ++s) {
        int64_t need = sizes[s];
        while (need > 0) {
          const int64_t take = std::min(need, pieces[piece].n - used);
          segs[s].push_back({pieces[piece].p + used, take});
          used += take; need -= take;
          if (used == pieces[piece].n) { ++piece; used = 0; }
        }
      }
      std::vector<Group> groups(per_row);
      abs_sel.row(segs, sizes, &groups, with_total, static_cast<uint32_t>(tkey),
                  abs_order.data_ptr<double>() + r * per_row * L * 2);
      if (is_signed)
        signed_sel.row(segs, sizes, &groups, with_total, 0,
                       signed_order.data_ptr<double>() + r * per_row * L * 2);
      int64_t* c = counts.data_ptr<int64_t>() + r * per_row * 3;
      double* m = sums.data_ptr<double>() + r * per_row * 2;
      for (int64_t i = 0; i < per_row; ++i) {
        c[3 * i] = groups[i].F; c[3 * i + 1] = groups[i].nonfinite; c[3 * i + 2] = groups[i].small;
        m[2 * i] = groups[i].sum_abs; m[2 * i + 1] = groups[i].sum_sq;
      }
    }
  }
  return {counts, sums, abs_order, signed_order};
}
