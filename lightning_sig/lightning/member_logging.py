"""Old import path of the members' loggers, kept so that pickles made before they moved load.

The per-member loggers and evaluation metrics now live in :mod:`lightning_sig.members.loggers`.
A whole-module ``torch.save(module)`` made before the move names
``lightning_sig.lightning.member_logging.MemberEvalMetrics`` (every module of ours holds two,
also with ``num_members = 1``: tests/data/old_checkpoint/combined_net_module.pt); ``torch.load``
finds it here. New code imports from :mod:`lightning_sig.members.loggers`; nothing in the
package imports this module.
"""
from __future__ import annotations

from lightning_sig.members.loggers import DEFAULT_MEMBER_LOG_DIR, MemberEvalMetrics, \
    MemberLogger, check_member_log_dir

__all__ = ["DEFAULT_MEMBER_LOG_DIR", "check_member_log_dir", "MemberLogger", "MemberEvalMetrics"]
