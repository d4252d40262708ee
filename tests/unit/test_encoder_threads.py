"""The encoder's threads on the real int8 model: one call, a lone text or a batch, runs on the
session's threads, which spin during the call and stop when it returns, with the embeddings of a
one-thread session."""
import time

import numpy as np
import pytest

from tagrouter.core.encoder import Encoder

LONG = "Explain how a hash map handles collisions, with an example in Python. " * 20
TEXTS = [LONG, "What is the capital of Australia?", LONG + " And in Go?"]


@pytest.fixture(scope="module")
def model_dir():
    from services.common.settings import DEFAULT_MODEL_DIR

    if not (DEFAULT_MODEL_DIR / "model.onnx").is_file():
        pytest.skip("no exported model: run `make model`")
    return DEFAULT_MODEL_DIR


def test_two_threads_give_the_embeddings_of_one_alone_and_in_a_batch(model_dir):
    one, two = Encoder(model_dir, intra_op_threads=1), Encoder(model_dir, intra_op_threads=2)
    assert (one.threads, two.threads) == (1, 2)
    for texts in ([LONG], TEXTS):
        a, b = one.encode(texts).embeddings, two.encode(texts).embeddings
        assert float(np.min(np.sum(a * b, axis=1))) > 0.9999


def test_the_threads_stop_spinning_when_a_call_returns(model_dir):
    # they spin between a call's steps, never after it: an idle tagger must leave both cores free
    encoder = Encoder(model_dir, intra_op_threads=2)
    assert encoder.session.get_session_options().get_session_config_entry("session.force_spinning_stop") == "1"
    for _ in range(10):
        encoder.encode([LONG])
        encoder.encode(TEXTS)
    started = time.process_time()
    time.sleep(0.5)
    assert time.process_time() - started < 0.1, "onnxruntime's threads kept spinning after the call"

