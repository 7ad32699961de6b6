"""Where PyTorch runs on a CPU: cores, caches, chunk sizes and the kernels' OpenMP settings."""

import os

from helpers.models import torch_runtime
from helpers.models.gears_decoder import cpu_chunk_rows


def test_available_cores_respect_the_affinity_mask():
    cores = torch_runtime.available_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0)) <= (os.cpu_count() or cores)


def test_decoder_chunks_fill_one_cores_l2(monkeypatch):
    l2 = torch_runtime.cpu_cache_bytes(2)
    if l2 is not None:  # Linux reports it: the most rows whose (rows × 2 × 64) float32 buffer fits, in [256, 16384]
        fitting = l2 // (2 * 64 * 4)
        assert cpu_chunk_rows(64) == min(16384, max(256, fitting))
    monkeypatch.setattr("helpers.models.gears_decoder.cpu_cache_bytes", lambda level: 64 * 1024)
    assert cpu_chunk_rows(64) == 256  # a tiny cache: the floor
    monkeypatch.setattr("helpers.models.gears_decoder.cpu_cache_bytes", lambda level: 64 * 1024 * 1024)
    assert cpu_chunk_rows(64) == 16384  # a huge one: the ceiling
    monkeypatch.setattr("helpers.models.gears_decoder.cpu_cache_bytes", lambda level: 512 * 1024)
    assert cpu_chunk_rows(64) == 1024 and cpu_chunk_rows(128) == 512
    monkeypatch.setattr("helpers.models.gears_decoder.cpu_cache_bytes", lambda level: None)
    assert cpu_chunk_rows(64) == 4096  # unknown cache: the size tuned on a 2 MiB-L2 core


def test_thread_environment_keeps_what_the_user_set(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert torch_runtime.thread_environment() == {"OMP_NUM_THREADS": str(torch_runtime.available_cores()),
                                                  "OMP_WAIT_POLICY": "PASSIVE"}
    monkeypatch.setenv("OMP_NUM_THREADS", "7")
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert torch_runtime.thread_environment() == {"OMP_NUM_THREADS": "7", "OMP_WAIT_POLICY": "ACTIVE"}


def test_vector_width_names_the_instruction_set_and_torchs_kernels():
    width = torch_runtime.cpu_vector_width()
    assert "torch kernels:" in width and width.split()[0] in {"avx512", "avx2", "avx", "sse", os.uname().machine}
