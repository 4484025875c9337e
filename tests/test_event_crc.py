"""The C CRC-32C for TensorBoard event files gives the same checksums and the same files."""
import io
import logging
import os

import torch

from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.summary.writer import record_writer

from lightning_sig.speedups import event_crc_is_slow, fast_masked_crc32c, use_fast_event_crc


def test_fast_checksum_equals_tensorboards():
    for data in [b"", b"a", b"123456789", os.urandom(5000), bytes(range(256)) * 3]:
        assert fast_masked_crc32c(data) == masked_crc32c(data)
    # CRC-32C check value of "123456789" is 0xE3069283; masked: rotate right 15, add delta
    crc = 0xE3069283
    assert fast_masked_crc32c(b"123456789") == \
        ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def test_use_fast_event_crc_writes_identical_records(monkeypatch):
    monkeypatch.setattr(record_writer, "masked_crc32c", masked_crc32c)  # restored afterwards
    records = [b"", b"event", os.urandom(3000)]

    def write_all() -> bytes:
        buffer = io.BytesIO()
        writer = record_writer.RecordWriter(buffer)
        for record in records:
            writer.write(record)
        return buffer.getvalue()

    slow = write_all()
    assert use_fast_event_crc() is True
    assert record_writer.masked_crc32c is fast_masked_crc32c
    assert use_fast_event_crc() is True  # idempotent
    assert write_all() == slow


def test_event_crc_is_slow_follows_the_switch(monkeypatch):
    monkeypatch.setattr(record_writer, "masked_crc32c", masked_crc32c)  # restored afterwards
    assert event_crc_is_slow() is True  # TensorBoard's pure-Python checksum, C one installed
    assert use_fast_event_crc() is True
    assert event_crc_is_slow() is False


def test_gradient_callback_hints_the_c_checksum_once_per_process(monkeypatch, tmp_path, caplog):
    # a fit with a TensorBoardLogger and TensorBoard's pure-Python checksum: one info line
    # naming enable_speedups(), once per process; the checksum itself is left as it was
    import pytorch_lightning as pl
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
    from torch.utils.data import DataLoader, TensorDataset

    from lightning_sig import CombinedNet, GradientQuantileCallback
    from lightning_sig.lightning import grad_writer

    monkeypatch.setattr(record_writer, "masked_crc32c", masked_crc32c)
    monkeypatch.setattr(grad_writer, "_CRC_HINTED", False)
    g = torch.Generator().manual_seed(0)
    data = DataLoader(TensorDataset(torch.rand(8, 3, 32, 32, generator=g),
                                    torch.randint(0, 10, (8,), generator=g)), batch_size=4)

    def fit(logger) -> None:
        pl.Trainer(max_steps=1, logger=logger, callbacks=[GradientQuantileCallback()],
                   enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, default_root_dir=tmp_path).fit(
            CombinedNet(activation="tanh"), data)

    with caplog.at_level(logging.INFO):
        fit(CSVLogger(tmp_path / "csv"))  # no TensorBoard writer: nothing to say
        assert "enable_speedups()" not in caplog.text
        fit(TensorBoardLogger(tmp_path / "tb"))
        fit(TensorBoardLogger(tmp_path / "tb"))
    assert caplog.text.count("enable_speedups()") == 1
    assert record_writer.masked_crc32c is masked_crc32c  # not switched by the callback
    monkeypatch.setattr(grad_writer, "_CRC_HINTED", False)
    assert use_fast_event_crc() is True  # the C checksum on: nothing to say
    assert grad_writer.GradientWriter.hint_event_crc(
        pl.Trainer(logger=TensorBoardLogger(tmp_path / "tb2"))) is False
