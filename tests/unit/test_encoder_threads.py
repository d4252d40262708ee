"""Threads by need on the real int8 model: a lone long text on an idle tagger gets a second
onnxruntime thread (its own session), a batch never does, and both give the same embedding."""
import time

import numpy as np
import pytest

from tagrouter.core.encoder import WIDE_MIN_TOKENS, WIDE_THREADS, Encoder


@pytest.fixture(scope="module")
def encoder():
    from services.common.settings import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "model.onnx").is_file():
        pytest.skip("no exported model: run `make model`")
    return Encoder(DEFAULT_MODEL_DIR, intra_op_threads=1)


LONG = "Explain how a hash map handles collisions, with an example in Python. " * 20


def test_a_batch_keeps_one_thread_even_with_a_spare_core(encoder):
    encoder.encode([LONG, LONG + " again"], spare_core=True)
    encoder.encode([LONG])  # no spare core: the usual session
    assert encoder._wide is None


def test_a_lone_long_text_uses_the_wide_session_with_the_same_embedding(encoder):
    assert encoder.count_tokens(LONG) >= WIDE_MIN_TOKENS
    narrow = encoder.encode([LONG]).embeddings
    wide = encoder.encode([LONG], spare_core=True).embeddings
    assert encoder._wide is not None
    assert encoder._wide.get_session_options().intra_op_num_threads == WIDE_THREADS
    assert float(np.dot(narrow[0], wide[0])) > 0.9999


def test_the_wide_session_stops_spinning_when_its_run_returns(encoder):
    # its threads spin between a run's steps, never after: an idle tagger must leave both cores free
    for _ in range(20):
        encoder.encode([LONG], spare_core=True)
    assert encoder._wide.get_session_options().get_session_config_entry("session.force_spinning_stop") == "1"
    started = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - started < 0.1, "onnxruntime's threads kept spinning after the run"
