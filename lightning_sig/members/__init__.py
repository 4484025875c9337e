"""Members mode: S seeds' networks trained in one process, each logged as a separate run.

Why: the paper's study is 25 seeds of tiny networks (Sec. 3); one such network leaves a GPU, and
much of a CPU step, idle. With ``num_members = S > 1`` our LightningModules hold S independent
copies of the paper network ("members"); member s is the run a separate process would make
with ``seed_everything(member_seeds[s])``: its own initialisation, data order, loss, l2 term
r/2·Σθ_s² (Sec. 2.2) and Adam state, its own TensorBoard run directory.

Layout: every member quantity is stacked on dim 0. Parameters have shape (S, ...) under the
single network's names (``features.0.weight`` (S, 3, 3, 3, 3)); convolutions run as one grouped
convolution (``groups = S``), dense layers as one batched matmul; training batches are
(S, B, 3, 32, 32) images and (S, B) labels; logits (S, B, 10); losses, metrics and seeds (S,).

Modules (imports flow one way, interface → loggers → steps ← gradients, networks; nothing here
imports a module that imports this package back):

* :mod:`~lightning_sig.members.interface`: the one declared interface (``typing.Protocol`` s)
  of what the rest of the package calls on a members module, stacked network or logger, with
  ``forward``'s shapes for S = 1 and S > 1, and :func:`member_seeds_of`, the mode test.
* :mod:`~lightning_sig.members.networks`: :class:`MemberConvNet` (S nets as one), the seeds,
  the members' losses and l2 terms, the Trainer settings refused.
* :mod:`~lightning_sig.members.gradients`: the gradients per member, or as one (S, N) tensor
  of rows, total and data-loss (g − r·θ).
* :mod:`~lightning_sig.members.batches`: the member batches (each member's own epoch order,
  (S, B, ...) a step), the training loader of ``CIFAR10DataModule`` with ``member_seeds``.
* :mod:`~lightning_sig.members.loggers`: :class:`MemberLogger` (member s's own run directory)
  and :class:`MemberEvalMetrics` (each member's validation/test loss and accuracy).
* :mod:`~lightning_sig.members.steps`: :class:`MemberStepsMixin`, the members' half of our
  LightningModules (training step, evaluation logging, setup, the interface's methods).

Outside this package: the sweep's ``--members`` groups stay in
:mod:`lightning_sig.experiments.sweep_members`, a step of the sweep's one-way flow
(plan → launch → task) that takes only ``DEFAULT_MEMBER_LOG_DIR`` from here. Old paths kept
for pickles made before this package existed: ``lightning_sig.nn.members`` and
``lightning_sig.lightning.member_logging`` re-export their names (a pickle names the module
that defined each class); :mod:`lightning_sig.lightning.data` re-exports ``MemberBatchSampler``
and ``MemberCollate``.

This ``__init__`` imports nothing: importing :mod:`~lightning_sig.members.interface` (as the
gradient-statistics layer does) must not pull in torch networks or Lightning code.
"""
