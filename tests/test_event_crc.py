"""The C CRC-32C for TensorBoard event files gives the same checksums and the same files."""
import io
import os

from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.summary.writer import record_writer

from lightning_sig.speedups import fast_masked_crc32c, use_fast_event_crc


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
