// The GradientQuantileCallback's per-step copies of a small model's gradient into its buffer
// rows (step_buffer.py), one call for all of a step's tensors. For the paper nets (1,130
// coordinates in 20 tensors) a flat torch concatenation, the flat g - r*theta in torch ops and
// the numpy copies into the rows cost more per step than the statistics of that step.
//
// copy_into_row: the tensors one after another into `row` (bit copies; fp16/bf16 upcast, sparse
// made dense, non-contiguous ones gathered).
// data_gradient_into_row: row[j] = g[j] - theta[j] * float(r), per coordinate in float32, the
// values of torch's `g - theta.mul(r)` for a float32 theta and a Python float r (the scalar is
// rounded to float32 first, then one product and one difference, each rounded; compiled with
// -ffp-contract=off: no fused multiply-add). The floating-point mode (denormals) is the
// caller's, as for torch's ops on the same thread.
#include "row_copy.h"

#include <torch/extension.h>

#include <cstring>
#include <vector>

namespace {

// t as a contiguous strided float32 tensor: itself when it is one (the usual case), else a copy
// (sparse made dense, fp16/bf16 upcast exactly)
torch::Tensor as_float32(const torch::Tensor& t) {
  TORCH_CHECK(t.device().is_cpu() && t.is_floating_point(),
              "row_copy: every tensor must be a floating-point CPU tensor");
  if (t.dtype() == torch::kFloat32 && t.layout() == torch::kStrided && t.is_contiguous())
    return t;
  torch::Tensor c = t.layout() == torch::kStrided ? t : t.to_dense();
  return c.to(torch::kFloat32).contiguous();
}

float* checked_row(const torch::Tensor& row, int64_t n, const char* name) {
  TORCH_CHECK(row.dtype() == torch::kFloat32 && row.is_contiguous() && row.device().is_cpu(),
              name, ": the row must be a contiguous float32 CPU tensor");
  TORCH_CHECK(n == row.numel(), name, ": ", n, " values for a row of ", row.numel());
  return row.data_ptr<float>();
}

int64_t total_numel(const std::vector<torch::Tensor>& parts) {
  int64_t n = 0;
  for (const torch::Tensor& t : parts) n += t.numel();
  return n;
}

// The two writes every row copy below shares (checked contiguous float32 data): n values of g,
// and n values of g - p * rf (one product and one difference, each rounded to float32). Each
// returns the position after what it wrote.
float* copy_values(const float* g, int64_t n, float* out) {
  if (n) std::memcpy(out, g, static_cast<size_t>(n) * sizeof(float));
  return out + n;
}

float* data_gradient_values(const float* __restrict g, const float* __restrict p, float rf,
                            int64_t n, float* __restrict out) {
  for (int64_t j = 0; j < n; ++j) out[j] = g[j] - p[j] * rf;
  return out + n;
}

}  // namespace

void copy_into_row(std::vector<torch::Tensor> parts, torch::Tensor row) {
  float* out = checked_row(row, total_numel(parts), "copy_into_row");
  for (const torch::Tensor& part : parts) {
    const torch::Tensor t = as_float32(part);
    out = copy_values(t.data_ptr<float>(), t.numel(), out);
  }
}

void data_gradient_into_row(std::vector<torch::Tensor> grads, std::vector<torch::Tensor> params,
                            double r, torch::Tensor row) {
  float* out = checked_row(row, total_numel(grads), "data_gradient_into_row");
  TORCH_CHECK(grads.size() == params.size(), "data_gradient_into_row: ", grads.size(),
              " gradients for ", params.size(), " parameters");
  const float rf = static_cast<float>(r);
  for (size_t i = 0; i < grads.size(); ++i) {
    TORCH_CHECK(grads[i].dtype() == torch::kFloat32 && params[i].dtype() == torch::kFloat32,
                "data_gradient_into_row: float32 gradients and parameters only");
    const torch::Tensor gt = as_float32(grads[i]), pt = as_float32(params[i]);
    const int64_t n = gt.numel();
    TORCH_CHECK(pt.numel() == n, "data_gradient_into_row: gradient ", i, " has ", n,
                " values, its parameter ", pt.numel());
    out = data_gradient_values(gt.data_ptr<float>(), pt.data_ptr<float>(), rf, n, out);
  }
}

// StepRows: the GradientQuantileCallback's lane for steady steps
// (lightning_sig/gradients/step_lane.py). Holds the layout's parameters (row order) and the
// trainable parameters that had no gradient, so that a step costs no list conversion.
// record(r, rows_g, rows_d, index): the parameters' gradients one after another into row
// `index` of `rows_g` (as copy_into_row), and, with `rows_d` given, g - theta * float(r) into
// row `index` of `rows_d` (as data_gradient_into_row; both through the same helpers, so the
// same float32 operations). Checked first, nothing written when any check fails (returns
// false: the caller takes its general path): every gradient defined, strided, contiguous,
// float32 on the CPU with its parameter's size (the parameters float32 and contiguous when
// rows_d is given); no tensor of `absent` with a gradient (the layout has not changed); rows
// (capacity, N) contiguous float32 CPU with N the gradients' values and 0 <= index < capacity.
StepRows::StepRows(std::vector<torch::Tensor> params, std::vector<torch::Tensor> absent)
    : params_(std::move(params)), absent_(std::move(absent)) {
  grads_.reserve(params_.size());
}

bool StepRows::record(double r, torch::Tensor rows_g, c10::optional<torch::Tensor> rows_d,
                      int64_t index) {
  for (const torch::Tensor& p : absent_)
    if (p.grad().defined()) return false;
  const bool data = rows_d.has_value() && rows_d->defined();
  grads_.clear();
  int64_t n = 0;
  for (const torch::Tensor& p : params_) {
    const torch::Tensor& g = p.grad();
    if (!g.defined() || g.layout() != torch::kStrided || !g.is_contiguous() ||
        g.scalar_type() != torch::kFloat32 || !g.device().is_cpu() || g.numel() != p.numel())
      return false;
    if (data && (p.scalar_type() != torch::kFloat32 || !p.is_contiguous())) return false;
    grads_.push_back(g);
    n += g.numel();
  }
  auto row_ok = [&](const torch::Tensor& rows) {
    return rows.dim() == 2 && rows.scalar_type() == torch::kFloat32 && rows.is_contiguous() &&
           rows.device().is_cpu() && rows.size(1) == n && index >= 0 && index < rows.size(0);
  };
  const bool ok = row_ok(rows_g) && (!data || row_ok(*rows_d));
  if (ok) {
    float* out = rows_g.data_ptr<float>() + index * n;
    for (const torch::Tensor& g : grads_) out = copy_values(g.data_ptr<float>(), g.numel(), out);
    if (data) {
      const float rf = static_cast<float>(r);
      float* d = rows_d->data_ptr<float>() + index * n;
      for (size_t i = 0; i < grads_.size(); ++i)
        d = data_gradient_values(grads_[i].data_ptr<float>(), params_[i].data_ptr<float>(), rf,
                                 grads_[i].numel(), d);
    }
  }
  grads_.clear();  // no gradient kept alive between steps
  return ok;
}
